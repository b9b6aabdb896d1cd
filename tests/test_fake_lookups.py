"""The fake providers' read-only endpoints (what ``failover.http``'s checks ask) and the model
catalogue, over real HTTP, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from failover.cli import main
from failover.testing.fake import Behaviour, FakeProviderServer
from failover.testing.fake.lookups import SAMPLE_MODELS

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
MESSAGES = {
    "model": "claude-9",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=7) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http_client:
        yield http_client


async def get(client: httpx.AsyncClient, server: FakeProviderServer, path: str) -> httpx.Response:
    return await client.get(f"{server.url}{path}", headers={"authorization": "Bearer sk-x"})


# -- successes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["openai", "groq", "xai", "together"])
async def test_an_openai_compatible_model_lookup_answers_the_model_object(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    response = await get(client, server, f"/{platform}/v1/models/meta-llama/Llama-3-8b")
    assert response.status_code == 200
    assert response.json() == {
        "id": "meta-llama/Llama-3-8b",
        "object": "model",
        "created": 1_715_367_049,
        "owned_by": platform,
    }


async def test_lists_answer_in_each_providers_shape(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    openai = (await get(client, server, "/openai/v1/models")).json()
    assert openai["object"] == "list"
    assert [item["id"] for item in openai["data"]] == list(SAMPLE_MODELS["openai"])
    together = (await get(client, server, "/together/v1/models")).json()
    assert isinstance(together, list)  # Together's list is a bare array
    assert "llama-3.2-3b-instruct-turbo" in [item["id"] for item in together]
    anthropic = (await get(client, server, "/anthropic/v1/models")).json()
    assert anthropic["has_more"] is False
    assert anthropic["data"][0]["type"] == "model"
    pollinations = (await get(client, server, "/pollinations/models")).json()
    assert pollinations == list(SAMPLE_MODELS["pollinations"])


async def test_account_balance_and_model_endpoints(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    assert (await get(client, server, "/stability/v1/user/balance")).json() == {"credits": 42.5}
    assert (await get(client, server, "/flux_pro/v1/credits")).json() == {"credits": 42.5}
    assert (await get(client, server, "/replicate/v1/account")).json()["type"] == "user"
    assert (await get(client, server, "/huggingface/api/whoami-v2")).json()["name"] == "fake-user"
    model = (
        await get(client, server, "/replicate/v1/models/black-forest-labs/flux-schnell")
    ).json()
    assert (model["owner"], model["name"]) == ("black-forest-labs", "flux-schnell")
    version = await get(client, server, "/replicate/v1/models/a/b/versions/abc")
    assert version.json()["name"] == "b"
    hub = (await get(client, server, "/huggingface/api/models/org/repo")).json()
    assert hub["id"] == "org/repo"
    anthropic = (await get(client, server, "/anthropic/v1/models/claude-3-5-haiku-latest")).json()
    assert anthropic["id"] == "claude-3-5-haiku-latest"
    gemini = (await get(client, server, "/google/v1beta/models/gemini-2.5-flash-lite")).json()
    assert gemini["name"] == "models/gemini-2.5-flash-lite"
    assert "generateContent" in gemini["supportedGenerationMethods"]


# -- the catalogue ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "path", "status", "code"),
    [
        ("openai", "/openai/v1/models/gpt-5", 404, "model_not_found"),
        ("groq", "/groq/v1/models/gpt-5", 404, "model_not_found"),
        ("anthropic", "/anthropic/v1/models/gpt-5", 404, "not_found_error"),
        ("google", "/google/v1beta/models/gpt-5", 404, "NOT_FOUND"),
        ("replicate", "/replicate/v1/models/gpt/5", 404, None),
    ],
)
async def test_a_model_outside_the_catalogue_gets_the_providers_404(
    client: httpx.AsyncClient,
    server: FakeProviderServer,
    platform: str,
    path: str,
    status: int,
    code: str | None,
) -> None:
    server.set_models(platform, ["something-else"])
    response = await get(client, server, path)
    assert response.status_code == status
    body: Any = response.json()
    if code is not None:
        assert code in str(body)
    assert server.stats()[platform] == {"total": 1, "model_not_found": 1}


async def test_the_hub_hides_a_missing_repository_from_anonymous_callers(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_models("huggingface", ["org/repo"])
    with_token = await get(client, server, "/huggingface/api/models/org/other")
    anonymous = await client.get(f"{server.url}/huggingface/api/models/org/other")
    assert with_token.status_code == 404
    assert anonymous.status_code == 401
    for response in (with_token, anonymous):
        assert response.headers["x-error-code"] == "RepoNotFound"
        assert response.json() == {"error": "Repository not found"}


async def test_the_catalogue_applies_to_chat_requests_too(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_models("openai", ["gpt-4o"])
    server.set_models("anthropic", ["claude-3-5-haiku-latest"])
    chat = await client.post(f"{server.base_url('openai')}/chat/completions", json=CHAT)
    assert chat.status_code == 404
    assert chat.json()["error"]["code"] == "model_not_found"
    assert "gpt-4o-mini" in chat.json()["error"]["message"]
    messages = await client.post(f"{server.base_url('anthropic')}/v1/messages", json=MESSAGES)
    assert messages.status_code == 404
    assert messages.json()["error"] == {"type": "not_found_error", "message": "model: claude-9"}
    server.set_models("openai", None)
    assert server.models("openai") is None
    assert (
        await client.post(f"{server.base_url('openai')}/chat/completions", json=CHAT)
    ).is_success


async def test_a_catalogue_makes_lists_exact(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_models("together", ["b-model", "a-model"])
    listed = (await get(client, server, "/together/v1/models")).json()
    assert [item["id"] for item in listed] == ["a-model", "b-model"]


async def test_set_models_checks_what_it_gets(server: FakeProviderServer) -> None:
    with pytest.raises(ValueError, match="unknown platform"):
        server.set_models("nope", ["x"])
    with pytest.raises(ValueError, match="model names"):
        server.set_models("openai", "gpt-4o")  # a string, not a list of names
    with pytest.raises(ValueError, match="model names"):
        server.set_models("openai", ["gpt-4o", ""])
    server.set_models("*", ["only"])
    assert server.models("pollinations") == frozenset({"only"})


async def test_models_given_to_the_constructor() -> None:
    async with FakeProviderServer(models={"groq": ["llama-3.3-70b-versatile"]}) as server:
        assert server.models("groq") == frozenset({"llama-3.3-70b-versatile"})
        assert server.models("openai") is None


async def test_the_admin_endpoint_sets_and_shows_catalogues(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    answer = await client.post(
        f"{server.url}/_admin/models", json={"platform": "openai", "models": ["gpt-4o"]}
    )
    assert answer.status_code == 200
    assert answer.json()["openai"] == ["gpt-4o"]
    assert (await client.get(f"{server.url}/_admin/models")).json()["groq"] is None
    assert server.models("openai") == frozenset({"gpt-4o"})
    cleared = await client.post(
        f"{server.url}/_admin/models", json={"platform": "openai", "models": None}
    )
    assert cleared.json()["openai"] is None
    for bad in ({"platform": "openai", "models": "gpt-4o"}, {"models": []}, [1]):
        refused = await client.post(f"{server.url}/_admin/models", json=bad)
        assert refused.status_code == 400


# -- behaviours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "path", "status", "text"),
    [
        ("openai", "/openai/v1/models/gpt-4o", 401, "invalid_api_key"),
        ("anthropic", "/anthropic/v1/models/claude-3-5-haiku-latest", 401, "authentication_error"),
        ("google", "/google/v1beta/models/gemini-2.5-flash", 401, "UNAUTHENTICATED"),
        ("stability", "/stability/v1/user/balance", 401, '"message"'),  # the v1 shape
        ("replicate", "/replicate/v1/account", 401, "Unauthenticated"),
        ("huggingface", "/huggingface/api/whoami-v2", 401, "Invalid credentials"),
        ("flux_pro", "/flux_pro/v1/credits", 403, "Not authenticated"),
    ],
)
async def test_a_bad_key_gets_the_providers_answer_on_lookups(
    client: httpx.AsyncClient,
    server: FakeProviderServer,
    platform: str,
    path: str,
    status: int,
    text: str,
) -> None:
    server.set_behaviour(platform, Behaviour.bad_key())
    response = await get(client, server, path)
    assert response.status_code == status
    assert text in response.text
    assert server.stats()[platform] == {"total": 1, "auth": 1}


async def test_an_empty_account_still_lists_and_its_balance_reads_zero(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_behaviour("*", Behaviour.out_of_credits())
    assert (await get(client, server, "/stability/v1/user/balance")).json() == {"credits": 0.0}
    assert (await get(client, server, "/flux_pro/v1/credits")).json() == {"credits": 0.0}
    assert (await get(client, server, "/openai/v1/models/gpt-4o")).status_code == 200
    server.set_behaviour("openai", Behaviour.content_policy())
    assert (await get(client, server, "/openai/v1/models/gpt-4o")).status_code == 200


async def test_lookups_follow_failing_behaviours(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_behaviour("groq", Behaviour.overloaded())
    assert (await get(client, server, "/groq/v1/models/x")).status_code == 503
    server.set_behaviour("groq", Behaviour.rate_limited(retry_after=3))
    limited = await get(client, server, "/groq/v1/models/x")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"


async def test_a_post_to_a_lookup_path_is_not_a_lookup(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    response = await client.post(f"{server.url}/stability/v1/user/balance")
    assert response.status_code == 404
    assert server.stats()["stability"] == {"total": 1, "not_found": 1}


# -- the command --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("openai", "--models must look like PLATFORM=MODEL[,MODEL...]"),
        ("openai=", "--models must look like PLATFORM=MODEL[,MODEL...]"),
        ("nope=x", "--models: unknown platform 'nope'"),
    ],
)
def test_fake_providers_rejects_bad_models_options(
    option: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake-providers", "--port", "0", "--models", option]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
