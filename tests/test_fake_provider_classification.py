"""Every failure the fake providers send, over real HTTP, is classified as DESIGN §2 says.

Each request goes through httpx to the fake server; the error is the
``httpx.HTTPStatusError`` that ``response.raise_for_status()`` raises (its body read), and
:func:`failover.classify` must put it in the right class: credit errors cool the platform,
rate limits cool the pair for ``Retry-After``, bad keys are auth problems, overload and 5xx are
transient, and the request's own faults leave health alone.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from failover import Classification, ErrorKind, classify
from failover.testing import Behaviour, FakeProviderServer
from failover.testing.fake import OPENAI_COMPATIBLE_PLATFORMS, PLATFORMS

pytestmark = pytest.mark.anyio

TEXT_PLATFORMS = (*OPENAI_COMPATIBLE_PLATFORMS, "anthropic")
FAKE_KEY = "sk-fake-classification-key-0123456789"
# The server is plain HTTP; one shared context spares every client loading the CA bundle.
TLS = ssl.create_default_context()


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=7) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, verify=TLS) as http_client:
        yield http_client


async def send(client: httpx.AsyncClient, server: FakeProviderServer, platform: str) -> None:
    """One well-formed request to ``platform``'s main endpoint; raises on an error status."""
    base = server.base_url(platform)
    auth = {"authorization": f"Bearer {FAKE_KEY}"}
    if platform in OPENAI_COMPATIBLE_PLATFORMS:
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        response = await client.post(f"{base}/chat/completions", json=chat, headers=auth)
    elif platform == "anthropic":
        message = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        response = await client.post(
            f"{base}/v1/messages", json=message, headers={"x-api-key": FAKE_KEY}
        )
    elif platform == "stability":
        response = await client.post(
            f"{base}/v2beta/stable-image/edit/inpaint",
            files={"image": ("image.png", b"png"), "mask": ("mask.png", b"png")},
            data={"prompt": "remove the cup"},
            headers=auth,
        )
    elif platform == "replicate":
        response = await client.post(
            f"{base}/v1/predictions", json={"version": "v1", "input": {}}, headers=auth
        )
    else:
        response = await client.post(
            f"{base}/fal-ai/flux/dev", json={"prompt": "a cat"}, headers=auth
        )
    response.raise_for_status()


async def verdict(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str, behaviour: Behaviour
) -> tuple[Classification, httpx.HTTPStatusError]:
    server.set_behaviour(platform, behaviour)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await send(client, server, platform)
    return classify(caught.value), caught.value


# Each provider's real status for "out of credits" (DESIGN §2).
CREDIT_STATUS = {
    "openai": 429,
    "groq": 429,
    "xai": 429,
    "together": 429,
    "google": 429,
    "anthropic": 400,
    "stability": 402,
    "replicate": 402,
    "fal": 403,
}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_out_of_credits_is_credit_exhausted(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, error = await verdict(client, server, platform, Behaviour.out_of_credits())
    assert error.response.status_code == CREDIT_STATUS[platform]
    assert result.kind is ErrorKind.CREDIT_EXHAUSTED
    assert result.status_code == CREDIT_STATUS[platform]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_rate_limit_is_rate_limited_with_retry_after(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, error = await verdict(client, server, platform, Behaviour.rate_limited(retry_after=3))
    assert error.response.status_code == 429
    assert result == Classification(ErrorKind.RATE_LIMITED, retry_after=3.0, status_code=429)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_rate_limit_without_retry_after(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, _ = await verdict(client, server, platform, Behaviour.rate_limited(retry_after=None))
    assert result == Classification(ErrorKind.RATE_LIMITED, retry_after=None, status_code=429)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_bad_key_is_auth(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, _ = await verdict(client, server, platform, Behaviour.bad_key())
    assert result == Classification(ErrorKind.AUTH, status_code=401)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_overloaded_is_transient(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, error = await verdict(client, server, platform, Behaviour.overloaded())
    expected_status = 529 if platform == "anthropic" else 503
    assert error.response.status_code == expected_status
    assert result == Classification(ErrorKind.TRANSIENT, status_code=expected_status)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_server_errors_are_transient(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    """JSON error bodies for 408/500/503, a gateway's HTML page for 502/504."""
    for status in (408, 500, 502, 503, 504):
        result, _ = await verdict(client, server, platform, Behaviour.flaky(1.0, status=status))
        assert result == Classification(ErrorKind.TRANSIENT, status_code=status)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_content_policy_is_the_requests_fault(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, _ = await verdict(client, server, platform, Behaviour.content_policy())
    assert result.kind is ErrorKind.REQUEST
    assert result.reason == "content_policy"


@pytest.mark.parametrize("platform", TEXT_PLATFORMS)
async def test_context_length_is_a_context_window_error(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, _ = await verdict(client, server, platform, Behaviour.context_length_exceeded())
    assert result.kind is ErrorKind.REQUEST
    assert result.reason == "context_window"


@pytest.mark.parametrize("platform", ["stability", "replicate", "fal"])
async def test_image_prompt_too_long_is_the_requests_fault(
    client: httpx.AsyncClient, server: FakeProviderServer, platform: str
) -> None:
    result, error = await verdict(client, server, platform, Behaviour.context_length_exceeded())
    assert error.response.status_code in (400, 422)
    assert result.kind is ErrorKind.REQUEST


async def test_hanging_provider_times_out_as_transient(server: FakeProviderServer) -> None:
    server.set_behaviour("groq", Behaviour.hanging())
    async with httpx.AsyncClient(timeout=0.2, verify=TLS) as short_client:
        with pytest.raises(httpx.TimeoutException) as caught:
            await send(short_client, server, "groq")
    assert classify(caught.value).kind is ErrorKind.TRANSIENT


async def test_connection_cut_is_transient(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    server.set_behaviour("fal", Behaviour.stream_cut())
    with pytest.raises(httpx.TransportError) as caught:
        await send(client, server, "fal")
    assert classify(caught.value).kind is ErrorKind.TRANSIENT


async def test_the_echoed_key_is_not_what_classification_keeps(
    client: httpx.AsyncClient, server: FakeProviderServer
) -> None:
    """OpenAI echoes the (masked) key in its 401; the verdict carries no text at all."""
    result, error = await verdict(client, server, "openai", Behaviour.bad_key())
    assert "Incorrect API key provided" in error.response.text
    assert FAKE_KEY not in error.response.text
    assert FAKE_KEY not in repr(result)


async def test_server_closes_its_port_and_tasks() -> None:
    """After the ``async with`` block nothing listens and no task is left behind."""
    before = _task_count()
    async with FakeProviderServer() as running, httpx.AsyncClient(verify=TLS) as http_client:
        port = running.port
        response = await http_client.get(f"{running.url}/_admin/info")
        assert response.status_code == 200
    assert _task_count() == before
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


def _task_count() -> int:
    """Tasks alive in the current event loop (asyncio or trio)."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(
                count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
            )

        return count(trio.lowlevel.current_root_task())
    import asyncio

    return len(asyncio.all_tasks())
