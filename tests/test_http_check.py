"""Discovery: each adapter's ``check`` against the fake providers over real HTTP (key accepted,
rejected, model missing, unreachable, keyless, not set), the requests it sends to the real
APIs (through a mock transport: nothing leaves the machine), ``check_platforms``, and that a
check moves no breaker. Async tests run on asyncio and trio."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import pytest

from failover import KNOWN_PLATFORMS, ConfigError, PlatformManager, PlatformSpec
from failover.http import (
    AnthropicMessages,
    BlackForestLabs,
    CheckProblem,
    FalQueue,
    HuggingFaceImages,
    ImageEditing,
    KeyStatus,
    ModelStatus,
    OpenAICompatibleChat,
    OpenAIImages,
    PlatformCheck,
    PollinationsImages,
    ReplicatePredictions,
    StabilityImages,
    TextGeneration,
    check_platforms,
    check_platforms_sync,
)
from failover.http._base import ChatAdapter
from failover.http._media_base import MediaAdapter
from failover.testing import Behaviour, FakeProviderServer

KEY = "sk-check-0123456789abcdefKEY"
ENV = {known.api_key_env: KEY for known in KNOWN_PLATFORMS.values() if known.api_key_env}
ENV_WITH_HF = {**ENV, "HF_TOKEN": "hf_check0123456789abcdef"}

Adapter = ChatAdapter | MediaAdapter


@dataclass(frozen=True)
class Case:
    """One provider's check: how to make its adapter against the fake, and its platform."""

    id: str
    make: Callable[[FakeProviderServer, dict[str, str]], Adapter]
    spec: PlatformSpec
    found: ModelStatus = ModelStatus.FOUND  # what a good check says of the model


def chat(platform: str) -> Callable[[FakeProviderServer, dict[str, str]], Adapter]:
    return lambda server, env: OpenAICompatibleChat(server.base_url(platform), environ=env)


def media(kind: type[MediaAdapter], platform: str) -> Callable[..., Adapter]:
    return lambda server, env: kind(server.adapter_base_url(platform), environ=env)


CASES = [
    Case("openai", chat("openai"), PlatformSpec("openai", "gpt-4o-mini")),
    Case("groq", chat("groq"), PlatformSpec("groq", "llama-3.3-70b-versatile")),
    Case("xai", chat("xai"), PlatformSpec("xai", "grok-3-mini")),
    Case("together", chat("together"), PlatformSpec("together", "llama-3.2-3b-instruct-turbo")),
    Case(
        "google",  # the real layout: Gemini's OpenAI-compatible base; the check asks natively
        lambda server, env: OpenAICompatibleChat(f"{server.url}/google/v1beta/openai", environ=env),
        PlatformSpec("google", "gemini-2.5-flash-lite"),
    ),
    Case(
        "anthropic",
        lambda server, env: AnthropicMessages(server.base_url("anthropic"), environ=env),
        PlatformSpec("anthropic", "claude-3-5-haiku-latest"),
    ),
    Case(
        "openai-images",
        media(OpenAIImages, "openai"),
        PlatformSpec("openai", "gpt-image-1"),
    ),
    Case(
        "stability",
        media(StabilityImages, "stability"),
        PlatformSpec("stability", "sd-3.5-large"),
        ModelStatus.NOT_CHECKED,
    ),
    Case("replicate", media(ReplicatePredictions, "replicate"), PlatformSpec("replicate", "flux")),
    Case(
        "huggingface",
        media(HuggingFaceImages, "huggingface"),
        PlatformSpec("huggingface", "black-forest-labs/FLUX.1-schnell"),
    ),
    Case(
        "flux_pro",
        media(BlackForestLabs, "flux_pro"),
        PlatformSpec("flux_pro", "flux-schnell"),
        ModelStatus.NOT_CHECKED,
    ),
]
KEYED = CASES  # every case above sends a key (Hugging Face: HF_TOKEN is set)
WITH_MODEL_LOOKUP = [case for case in CASES if case.found is ModelStatus.FOUND]


def server_name(case: Case) -> str:
    return case.spec.name


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=3) as running:
        yield running


def assert_no_key(result: PlatformCheck) -> None:
    text = repr(result) + json.dumps(result.to_json()) + result.summary()
    for value in ENV_WITH_HF.values():
        assert value not in text
        assert value[4:-4] not in text


# -- over real HTTP, against the fake providers ---------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_a_good_key_is_accepted_and_the_model_found(
    server: FakeProviderServer, case: Case
) -> None:
    async with case.make(server, ENV_WITH_HF) as adapter:
        result = await adapter.check(case.spec)
    assert (result.key, result.model_status, result.problem) == (
        KeyStatus.ACCEPTED,
        case.found,
        None,
    )
    assert result.ok
    assert not result.misconfigured
    assert result.status == "ok"
    assert (result.platform, result.model) == (case.spec.name, case.spec.model)
    assert server.stats()[server_name(case)]["total"] >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("case", KEYED, ids=lambda case: case.id)
async def test_a_bad_key_is_reported_rejected(server: FakeProviderServer, case: Case) -> None:
    server.set_behaviour(server_name(case), Behaviour.bad_key())
    async with case.make(server, ENV_WITH_HF) as adapter:
        result = await adapter.check(case.spec)
    assert result.key is KeyStatus.REJECTED
    assert result.model_status is ModelStatus.NOT_CHECKED
    assert result.problem is None
    assert result.misconfigured
    assert not result.ok
    assert result.status == "failed"
    assert result.summary().startswith("key rejected: HTTP 40")
    assert_no_key(result)


@pytest.mark.anyio
@pytest.mark.parametrize("case", WITH_MODEL_LOOKUP, ids=lambda case: case.id)
async def test_a_missing_model_is_reported_missing(server: FakeProviderServer, case: Case) -> None:
    server.set_models(server_name(case), ["some-other-model"])
    async with case.make(server, ENV_WITH_HF) as adapter:
        result = await adapter.check(case.spec)
    assert result.model_status is ModelStatus.MISSING
    assert result.key is KeyStatus.ACCEPTED  # the provider said so only after authenticating
    assert result.problem is None
    assert result.misconfigured
    assert not result.ok
    assert "model missing" in result.summary()


@pytest.mark.anyio
async def test_replicate_checks_each_model_an_alias_stands_for(
    server: FakeProviderServer,
) -> None:
    server.set_models("replicate", ["black-forest-labs/flux-schnell"])
    async with ReplicatePredictions(server.adapter_base_url("replicate"), environ=ENV) as adapter:
        result = await adapter.check(PlatformSpec("replicate", "flux"))
    assert result.model_status is ModelStatus.MISSING
    assert "black-forest-labs/flux-fill-pro" in result.detail  # the edit model is missing
    assert "flux-schnell:" not in result.detail
    assert server.stats()["replicate"] == {"total": 3, "ok": 2, "model_not_found": 1}


@pytest.mark.anyio
async def test_keyless_platforms_need_no_key(server: FakeProviderServer) -> None:
    async with PollinationsImages(server.adapter_base_url("pollinations"), environ={}) as adapter:
        free = await adapter.check(PlatformSpec("pollinations", "free"))
        flux = await adapter.check(PlatformSpec("pollinations", "flux"))
        server.set_models("pollinations", ["turbo"])
        gone = await adapter.check(PlatformSpec("pollinations", "flux"))
    assert (free.key, free.model_status, free.ok) == (KeyStatus.NOT_NEEDED, ModelStatus.FOUND, True)
    assert (flux.key, flux.model_status) == (KeyStatus.NOT_NEEDED, ModelStatus.FOUND)
    assert (gone.key, gone.model_status, gone.ok) == (
        KeyStatus.NOT_NEEDED,
        ModelStatus.MISSING,
        False,
    )
    assert gone.misconfigured


@pytest.mark.anyio
async def test_hugging_face_without_a_token_checks_the_model_anonymously(
    server: FakeProviderServer,
) -> None:
    spec = PlatformSpec("huggingface", "black-forest-labs/FLUX.1-schnell")
    async with HuggingFaceImages(server.adapter_base_url("huggingface"), environ={}) as adapter:
        found = await adapter.check(spec)
        server.set_models("huggingface", ["org/other"])
        # The Hub answers an anonymous caller 401 (with X-Error-Code: RepoNotFound) for a
        # repository it will not show: that is a missing model, not a rejected key.
        missing = await adapter.check(spec)
    assert (found.key, found.model_status, found.ok) == (
        KeyStatus.NOT_NEEDED,
        ModelStatus.FOUND,
        True,
    )
    assert (missing.key, missing.model_status) == (KeyStatus.NOT_NEEDED, ModelStatus.MISSING)
    assert server.stats()["huggingface"]["total"] == 2  # no whoami without a token


@pytest.mark.anyio
async def test_a_key_that_is_not_set_sends_nothing(server: FakeProviderServer) -> None:
    async with OpenAICompatibleChat(server.base_url("openai"), environ={}) as adapter:
        result = await adapter.check(PlatformSpec("openai", "gpt-4o-mini"))
    assert (result.key, result.model_status, result.problem) == (
        KeyStatus.NOT_SET,
        ModelStatus.NOT_CHECKED,
        None,
    )
    assert result.detail == "nothing sent (OPENAI_API_KEY is empty)"
    assert not result.ok
    assert not result.misconfigured
    assert server.stats()["openai"] == {"total": 0}


@pytest.mark.anyio
async def test_fal_sends_nothing_and_says_why(server: FakeProviderServer) -> None:
    async with FalQueue(server.adapter_base_url("fal"), environ=ENV) as adapter:
        result = await adapter.check(PlatformSpec("fal", "fal-3d"))
    assert (result.key, result.model_status, result.problem) == (
        KeyStatus.NOT_CHECKED,
        ModelStatus.NOT_CHECKED,
        None,
    )
    assert "FAL has no read-only request" in result.detail
    assert not result.ok  # nothing proves the platform works: a probe must not pass on it
    assert result.status == "not_checked"
    assert server.stats()["fal"] == {"total": 0}


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.anyio
async def test_an_unreachable_provider_is_not_a_bad_key() -> None:
    base = f"http://127.0.0.1:{refused_port()}/v1"
    async with OpenAICompatibleChat(base, environ=ENV) as adapter:
        result = await adapter.check(PlatformSpec("openai", "gpt-4o-mini"))
    assert result.problem is CheckProblem.UNREACHABLE
    assert result.key is KeyStatus.NOT_CHECKED
    assert result.model_status is ModelStatus.NOT_CHECKED
    assert not result.ok
    assert not result.misconfigured
    assert result.status == "unreachable"
    assert "ConnectError" in result.detail


@pytest.mark.anyio
async def test_a_provider_that_never_answers_is_unreachable_within_the_timeout(
    server: FakeProviderServer,
) -> None:
    server.set_behaviour("anthropic", Behaviour.hanging())
    async with AnthropicMessages(server.base_url("anthropic"), environ=ENV) as adapter:
        started = time.monotonic()
        result = await adapter.check(
            PlatformSpec("anthropic", "claude-3-5-haiku-latest"), timeout=0.3
        )
    assert time.monotonic() - started < 5
    assert result.problem is CheckProblem.UNREACHABLE
    assert result.key is KeyStatus.NOT_CHECKED


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [
        (Behaviour.overloaded(), CheckProblem.PROVIDER_ERROR),
        (Behaviour.flaky(1.0, status=502), CheckProblem.PROVIDER_ERROR),
        (Behaviour.rate_limited(retry_after=1), CheckProblem.RATE_LIMITED),
    ],
)
async def test_a_failing_provider_is_a_problem_not_a_verdict(
    server: FakeProviderServer, behaviour: Behaviour, problem: CheckProblem
) -> None:
    server.set_behaviour("groq", behaviour)
    async with OpenAICompatibleChat(server.base_url("groq"), environ=ENV) as adapter:
        result = await adapter.check(PlatformSpec("groq", "llama-3.3-70b-versatile"))
    assert result.problem is problem
    assert result.key is KeyStatus.NOT_CHECKED
    assert result.model_status is ModelStatus.NOT_CHECKED
    assert not result.ok
    assert not result.misconfigured


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "platform", "model"),
    [(StabilityImages, "stability", "core"), (BlackForestLabs, "flux_pro", "flux-dev")],
)
async def test_an_empty_balance_is_out_of_credits_with_the_key_accepted(
    server: FakeProviderServer, kind: type[MediaAdapter], platform: str, model: str
) -> None:
    server.set_behaviour(platform, Behaviour.out_of_credits())
    async with kind(server.adapter_base_url(platform), environ=ENV) as adapter:
        result = await adapter.check(PlatformSpec(platform, model))
    assert result.problem is CheckProblem.OUT_OF_CREDITS
    assert result.key is KeyStatus.ACCEPTED
    assert "balance 0 credits" in result.detail
    assert not result.ok
    assert result.status == "out_of_credits"


def test_check_sync_in_plain_threads_with_no_event_loop() -> None:
    """The synchronous twin, against a fake server that runs in its own thread."""
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        cm = portal.wrap_async_context_manager(FakeProviderServer(seed=4))
        server = cm.__enter__()
        try:
            portal.call(server.set_models, "groq", ["llama-3.3-70b-versatile"])
            adapter = OpenAICompatibleChat(server.base_url("groq"), environ=ENV)
            good = adapter.check_sync(PlatformSpec("groq", "llama-3.3-70b-versatile"))
            missing = adapter.check_sync(PlatformSpec("groq", "llama-9"))
            adapter.close()
        finally:
            cm.__exit__(None, None, None)
    assert good.ok
    assert (missing.key, missing.model_status) == (KeyStatus.ACCEPTED, ModelStatus.MISSING)


# -- the requests sent to the real APIs (a mock transport answers; nothing leaves) ---------------


@dataclass
class Recorder:
    requests: list[httpx.Request]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith(("/balance", "/credits")):
            return httpx.Response(200, json={"credits": 12.5})
        if request.url.host == "image.pollinations.ai":
            return httpx.Response(200, json=["flux", "turbo"])
        if path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "wanted"}]})
        return httpx.Response(200, json={"id": "anything"})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder([])


REAL_REQUESTS: list[tuple[Callable[..., Adapter], PlatformSpec, list[str], str]] = [
    (
        OpenAICompatibleChat,
        PlatformSpec("openai", "gpt-4o-mini"),
        ["https://api.openai.com/v1/models/gpt-4o-mini"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("groq", "llama-3.3-70b-versatile"),
        ["https://api.groq.com/openai/v1/models/llama-3.3-70b-versatile"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("groq", "meta-llama/llama-4-scout-17b-16e-instruct"),
        ["https://api.groq.com/openai/v1/models/meta-llama/llama-4-scout-17b-16e-instruct"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("xai", "grok-3-mini"),
        ["https://api.x.ai/v1/models/grok-3-mini"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("mistral", "wanted", api_key_env="MISTRAL_API_KEY"),
        ["https://api.mistral.ai/v1/models/wanted"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("together", "wanted"),
        ["https://api.together.xyz/v1/models"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("deepseek", "wanted", api_key_env="DEEPSEEK_API_KEY"),
        ["https://api.deepseek.com/v1/models"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("openrouter", "wanted", api_key_env="OPENROUTER_API_KEY"),
        ["https://openrouter.ai/api/v1/key", "https://openrouter.ai/api/v1/models"],
        "authorization",
    ),
    (
        OpenAICompatibleChat,
        PlatformSpec("google", "gemini-2.5-flash-lite"),
        ["https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-lite"],
        "x-goog-api-key",
    ),
    (
        AnthropicMessages,
        PlatformSpec("anthropic", "claude-3-5-haiku-latest"),
        ["https://api.anthropic.com/v1/models/claude-3-5-haiku-latest"],
        "x-api-key",
    ),
    (
        StabilityImages,
        PlatformSpec("stability", "sd-3.5-large"),
        ["https://api.stability.ai/v1/user/balance"],
        "authorization",
    ),
    (
        OpenAIImages,
        PlatformSpec("openai", "gpt-image-1"),
        ["https://api.openai.com/v1/models/gpt-image-1"],
        "authorization",
    ),
    (
        PollinationsImages,
        PlatformSpec("pollinations", "flux"),
        ["https://image.pollinations.ai/models"],
        "",
    ),
    (
        HuggingFaceImages,
        PlatformSpec("huggingface", "free"),
        [
            "https://huggingface.co/api/whoami-v2",
            "https://huggingface.co/api/models/black-forest-labs/FLUX.1-schnell",
        ],
        "authorization",
    ),
    (
        ReplicatePredictions,
        PlatformSpec("replicate", "flux"),
        [
            "https://api.replicate.com/v1/account",
            "https://api.replicate.com/v1/models/black-forest-labs/flux-fill-pro",
            "https://api.replicate.com/v1/models/black-forest-labs/flux-schnell",
        ],
        "authorization",
    ),
    (
        ReplicatePredictions,
        PlatformSpec("replicate", "owner/name:abc123"),
        [
            "https://api.replicate.com/v1/account",
            "https://api.replicate.com/v1/models/owner/name/versions/abc123",
        ],
        "authorization",
    ),
    (
        BlackForestLabs,
        PlatformSpec("flux_pro", "flux-schnell"),
        ["https://api.bfl.ml/v1/credits"],
        "x-key",
    ),
    (FalQueue, PlatformSpec("fal", "fal-3d"), [], ""),
]


@pytest.mark.parametrize(
    ("kind", "spec", "urls", "key_header"),
    REAL_REQUESTS,
    ids=[f"{spec.name}-{spec.model}" for _, spec, _, _ in REAL_REQUESTS],
)
def test_the_requests_each_provider_is_sent(
    recorder: Recorder,
    kind: Callable[..., Adapter],
    spec: PlatformSpec,
    urls: list[str],
    key_header: str,
) -> None:
    env = {**ENV_WITH_HF, "MISTRAL_API_KEY": KEY, "DEEPSEEK_API_KEY": KEY}
    env["OPENROUTER_API_KEY"] = KEY
    adapter = kind(sync_transport=httpx.MockTransport(recorder), environ=env)
    result = adapter.check_sync(spec)
    adapter.close()
    assert [str(request.url) for request in recorder.requests] == urls
    for request in recorder.requests:
        assert request.method == "GET"
        assert request.content == b""
        if key_header:
            assert key_header in request.headers
        if key_header == "x-goog-api-key":
            assert "authorization" not in request.headers  # Gemini is asked natively
        if not key_header:
            assert not {"authorization", "x-key", "x-api-key"} & set(request.headers)
    if key_header == "x-api-key":
        assert recorder.requests[0].headers["anthropic-version"] == "2023-06-01"
    assert result.problem is None, result
    assert_no_key(result)


def test_xais_real_bad_key_answer_is_a_rejected_key() -> None:
    """xAI answers a bad key with 400 and ``"Incorrect API key provided"``."""

    def xai(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "code": "Client specified an invalid argument",
                "error": f"Incorrect API key provided: {KEY[:2]}***{KEY[-2:]}. You can obtain "
                "an API key from https://console.x.ai.",
            },
        )

    adapter = OpenAICompatibleChat(sync_transport=httpx.MockTransport(xai), environ=ENV)
    result = adapter.check_sync(PlatformSpec("xai", "grok-3-mini"))
    adapter.close()
    assert result.key is KeyStatus.REJECTED
    assert result.misconfigured


def test_a_gemini_404_through_its_openai_endpoint_is_not_used() -> None:
    """A base URL of one's own (not Gemini's ``.../openai``) is asked the OpenAI way."""
    urls: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={"id": "gemini-2.5-flash"})

    adapter = OpenAICompatibleChat(
        "https://gateway.example/v1", sync_transport=httpx.MockTransport(gateway), environ=ENV
    )
    assert adapter.check_sync(PlatformSpec("google", "gemini-2.5-flash")).ok
    adapter.close()
    assert urls == ["https://gateway.example/v1/models/gemini-2.5-flash"]


def test_an_unreadable_answer_is_a_provider_error() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>maintenance</html>")

    adapter = StabilityImages(sync_transport=httpx.MockTransport(broken), environ=ENV)
    result = adapter.check_sync(PlatformSpec("stability", "core"))
    adapter.close()
    assert result.problem is CheckProblem.PROVIDER_ERROR
    assert result.key is KeyStatus.NOT_CHECKED
    assert "unreadable answer" in result.detail


def test_a_custom_adapter_without_a_plan_sends_nothing() -> None:
    sent: list[httpx.Request] = []

    class Mine(ChatAdapter):
        default_base_urls: ClassVar[Mapping[str, str]] = {"mine": "https://mine.example"}

    adapter = Mine(
        sync_transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    )
    result = adapter.check_sync(PlatformSpec("mine", "m1", api_key_env="MINE_KEY"), timeout=1)
    assert result.key is KeyStatus.NOT_SET
    result = Mine(environ={"MINE_KEY": KEY}).check_sync(
        PlatformSpec("mine", "m1", api_key_env="MINE_KEY")
    )
    assert (result.key, result.model_status) == (KeyStatus.NOT_CHECKED, ModelStatus.NOT_CHECKED)
    assert result.detail == "Mine has no check"
    assert sent == []


def test_bad_arguments_are_refused_before_anything_is_sent() -> None:
    adapter = OpenAICompatibleChat(environ=ENV)
    with pytest.raises(TypeError, match="platform must be a PlatformSpec"):
        adapter.check_sync("openai")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout must be seconds > 0, got 0"):
        adapter.check_sync(PlatformSpec("openai", "gpt-4o-mini"), timeout=0)


# -- check_platforms: every platform of a manager -------------------------------------------------


def manager(env: dict[str, str]) -> PlatformManager:
    return PlatformManager(
        {
            "text_generation": [
                ("groq", "llama-3.3-70b-versatile"),
                ("openai", "gpt-4o-mini"),
                ("anthropic", "claude-9"),
                ("local", "llama"),
            ],
            "image_editing": [
                ("stability", "sd-3.5-large"),
                ("replicate", "flux"),
                ("fal", "fal-3d"),
            ],
            "image_generation": [("replicate", "flux"), ("pollinations", "free")],
        },
        environ=env,
    )


def fake_urls(server: FakeProviderServer) -> dict[str, str]:
    names = ("groq", "openai", "anthropic", "stability", "replicate", "fal", "pollinations")
    return {name: server.adapter_base_url(name) for name in names}


def expect(results: list[PlatformCheck]) -> dict[str, tuple[str, str, str]]:
    return {
        f"{r.platform}/{r.model}": (r.status, r.key.value, r.model_status.value) for r in results
    }


EXPECTED = {
    "groq/llama-3.3-70b-versatile": ("ok", "accepted", "found"),
    "openai/gpt-4o-mini": ("failed", "rejected", "not_checked"),
    "anthropic/claude-9": ("failed", "accepted", "missing"),
    "local/llama": ("not_checked", "not_checked", "not_checked"),
    "stability/sd-3.5-large": ("ok", "accepted", "not_checked"),
    "replicate/flux": ("not_checked", "not_set", "not_checked"),
    "fal/fal-3d": ("not_checked", "not_checked", "not_checked"),
    "pollinations/free": ("ok", "not_needed", "found"),
}


def env_without_replicate() -> dict[str, str]:
    return {name: value for name, value in ENV.items() if name != "REPLICATE_API_TOKEN"}


@pytest.mark.anyio
async def test_check_platforms_checks_each_platform_and_model_once(
    server: FakeProviderServer,
) -> None:
    server.set_behaviour("openai", Behaviour.bad_key())
    server.set_models("anthropic", ["claude-3-5-haiku-latest"])
    env = env_without_replicate()
    results = await check_platforms(manager(env), base_urls=fake_urls(server), environ=env)
    assert list(expect(results)) == list(EXPECTED)  # priority-list order, each pair once
    assert expect(results) == EXPECTED
    local = next(r for r in results if r.platform == "local")
    assert "no adapter for 'local'" in local.detail
    assert server.stats()["replicate"]["total"] == 0


def test_check_platforms_sync_gives_the_same_results() -> None:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        cm = portal.wrap_async_context_manager(FakeProviderServer(seed=5))
        server = cm.__enter__()
        try:
            portal.call(server.set_behaviour, "openai", Behaviour.bad_key())
            portal.call(server.set_models, "anthropic", ["claude-3-5-haiku-latest"])
            env = env_without_replicate()
            results = check_platforms_sync(manager(env), base_urls=fake_urls(server), environ=env)
        finally:
            cm.__exit__(None, None, None)
    assert expect(results) == EXPECTED


@pytest.mark.anyio
async def test_check_platforms_runs_the_checks_at_once(server: FakeProviderServer) -> None:
    names = ("openai", "groq", "xai", "together")
    server.set_behaviour("*", Behaviour.hanging())
    many = PlatformManager({"text_generation": [(name, "m") for name in names]}, environ=ENV)
    started = time.monotonic()
    results = await check_platforms(
        many, base_urls={n: server.base_url(n) for n in names}, timeout=0.5, environ=ENV
    )
    assert time.monotonic() - started < 1.9  # one after the other would take 2 s
    assert {r.problem for r in results} == {CheckProblem.UNREACHABLE}


@pytest.mark.anyio
async def test_check_platforms_uses_a_given_adapter_and_leaves_it_open(
    server: FakeProviderServer,
) -> None:
    mine = OpenAICompatibleChat(server.base_url("groq"), environ=ENV)
    only = PlatformManager({"text_generation": [("groq", "llama-3.3-70b-versatile")]}, environ=ENV)
    results = await check_platforms(only, adapters={"groq": mine}, environ=ENV)
    assert [r.ok for r in results] == [True]
    assert (await mine.check(PlatformSpec("groq", "llama-3.3-70b-versatile"))).ok  # still open
    await mine.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_urls": {"opneai": "http://127.0.0.1:1"}}, "base_urls names 'opneai'"),
        ({"base_urls": {"groq": "ftp://x"}}, "base_urls['groq'] must be an http(s) URL"),
        ({"adapters": {"groq": object()}}, "adapters['groq'] must be an adapter"),
        ({"timeout": -1}, "timeout must be seconds > 0"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1"),
    ],
)
async def test_check_platforms_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    only = PlatformManager({"text_generation": [("groq", "llama-3.3-70b-versatile")]}, environ=ENV)
    with pytest.raises(ConfigError, match=re.escape(message)):
        await check_platforms(only, environ=ENV, **kwargs)


@pytest.mark.anyio
async def test_a_check_moves_no_breaker_and_counts_nothing(server: FakeProviderServer) -> None:
    """Discovery goes around the manager: bad keys and missing models leave health as it was."""
    server.set_behaviour("openai", Behaviour.bad_key())
    server.set_models("groq", ["other"])
    async with PlatformManager(
        {"text_generation": [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b-versatile")]},
        failure_threshold=1,
        environ=ENV,
    ) as watched:
        before = watched.get_health_status()
        urls = {"openai": server.base_url("openai"), "groq": server.base_url("groq")}
        for _ in range(3):
            results = await check_platforms(watched, base_urls=urls, environ=ENV)
            assert {r.status for r in results} == {"failed"}
        assert watched.get_health_status() == before
        spec = (await watched.get_platform("text_generation")).name
        assert spec == "openai"  # still first: nothing cooled it down


@pytest.mark.anyio
async def test_the_facades_check_through_their_adapters(server: FakeProviderServer) -> None:
    async with PlatformManager(
        {
            "text_generation": [("groq", "llama-3.3-70b-versatile")],
            "image_editing": [("stability", "core")],
        },
        environ=ENV,
    ) as facade_manager:
        text = TextGeneration(
            facade_manager,
            adapters={"groq": OpenAICompatibleChat(server.base_url("groq"), environ=ENV)},
        )
        editor = ImageEditing(
            facade_manager,
            base_urls={"stability": server.adapter_base_url("stability")},
            environ=ENV,
        )
        groq = facade_manager.platforms("text_generation")[0]
        stability = facade_manager.platforms("image_editing")[0]
        assert (await text.check(groq)).ok
        assert (await editor.check(stability)).ok


@pytest.fixture(autouse=True)
def no_real_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Traffic goes only to loopback addresses: a name lookup for any other host fails."""
    real = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in ("127.0.0.1", "localhost", "::1", None):
            raise AssertionError(f"a test tried to reach {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
