"""The fake provider server, over real HTTP, on asyncio and trio."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from failover.testing.fake import (
    OPENAI_COMPATIBLE_PLATFORMS,
    PLATFORMS,
    Behaviour,
    FakeProviderServer,
    serve_forever,
)

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello politely"}]}
MESSAGES = {
    "model": "claude-3-haiku-20240307",
    "max_tokens": 64,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
}
IMAGE_PLATFORMS = ("stability", "replicate", "fal")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def server_log() -> Iterator[_ListHandler]:
    """Capture the server's log at DEBUG; a warning or error from it fails the test."""
    logger = logging.getLogger("failover.testing.fake_providers")
    handler = _ListHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    problems = [r.getMessage() for r in handler.records if r.levelno >= logging.WARNING]
    assert problems == []


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=1234) as running:
        yield running


@pytest.fixture
async def client(server: FakeProviderServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http_client:
        yield http_client


async def call(
    client: httpx.AsyncClient,
    server: FakeProviderServer,
    platform: str,
    *,
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> httpx.Response:
    """POST a valid request to ``platform``'s main endpoint."""
    base = server.base_url(platform)
    if platform in OPENAI_COMPATIBLE_PLATFORMS:
        body = {**CHAT, "stream": True} if stream else CHAT
        return await client.post(f"{base}/chat/completions", json=body, headers=headers)
    if platform == "anthropic":
        body = {**MESSAGES, "stream": True} if stream else MESSAGES
        return await client.post(f"{base}/v1/messages", json=body, headers=headers)
    if platform == "stability":
        return await client.post(
            f"{base}/v2beta/stable-image/edit/inpaint",
            files={"image": ("image.png", b"fake image"), "mask": ("mask.png", b"fake mask")},
            data={"prompt": "remove the cat", "output_format": "png"},
            headers=headers,
        )
    if platform == "replicate":
        return await client.post(
            f"{base}/v1/predictions",
            json={"version": "abc123", "input": {"prompt": "a cat"}},
            headers=headers,
        )
    assert platform == "fal"
    return await client.post(f"{base}/fal-ai/flux/dev", json={"prompt": "a cat"}, headers=headers)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Let other tasks run until ``predicate()`` holds (fails after 5 s)."""
    with anyio.fail_after(5):
        while not predicate():
            await anyio.lowlevel.checkpoint()


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


# -- addresses ------------------------------------------------------------------------------


async def test_addresses(server: FakeProviderServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.base_url("openai") == f"{server.url}/openai/v1"
    assert server.base_url("groq") == f"{server.url}/groq/v1"
    assert server.base_url("anthropic") == f"{server.url}/anthropic"
    assert server.base_url("stability") == f"{server.url}/stability"
    with pytest.raises(ValueError, match="unknown platform 'nope'"):
        server.base_url("nope")


def test_port_is_unknown_before_start() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        _ = FakeProviderServer().port
    assert FakeProviderServer(8123).url == "http://127.0.0.1:8123"


@pytest.mark.parametrize("port", [-1, 65536, "80", True])
def test_bad_port(port: Any) -> None:
    with pytest.raises(ValueError, match="port"):
        FakeProviderServer(port)


def test_starting_behaviours() -> None:
    server = FakeProviderServer(behaviours={"fal": Behaviour.out_of_credits()})
    assert server.behaviour("fal") == Behaviour.out_of_credits()
    assert server.behaviour("openai") == Behaviour.healthy()
    with pytest.raises(ValueError, match="unknown platform"):
        FakeProviderServer(behaviours={"openia": Behaviour.healthy()})
    with pytest.raises(ValueError, match="must be a Behaviour"):
        server.set_behaviour("fal", "out_of_credits")  # type: ignore[arg-type]


# -- success shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("platform", OPENAI_COMPATIBLE_PLATFORMS)
async def test_chat_completion_shape(
    server: FakeProviderServer, client: httpx.AsyncClient, platform: str
) -> None:
    response = await call(client, server, platform)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith(f"Fake {platform} reply:")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 3  # "Say hello politely"
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert server.stats()[platform] == {"total": 1, "ok": 1}


async def test_anthropic_message_shape(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    response = await call(client, server, "anthropic")
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["model"] == "claude-3-haiku-20240307"
    assert body["content"][0]["type"] == "text"
    assert body["content"][0]["text"].startswith("Fake anthropic reply:")
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {
        "input_tokens": 4,  # "Be brief." + "Say hello"
        "output_tokens": len(body["content"][0]["text"].split()),
    }
    assert "request-id" in response.headers


async def test_stability_inpaint(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    response = await call(client, server, "stability")
    assert response.status_code == 200
    body = response.json()
    assert body["finish_reason"] == "SUCCESS"
    assert isinstance(body["seed"], int)
    assert base64.b64decode(body["image"]).startswith(PNG_SIGNATURE)

    raw = await call(client, server, "stability", headers={"accept": "image/*"})
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "image/png"
    assert raw.headers["finish-reason"] == "SUCCESS"
    assert raw.content.startswith(PNG_SIGNATURE)
    assert server.stats()["stability"] == {"total": 2, "ok": 2}


async def test_replicate_prediction(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    response = await call(client, server, "replicate")
    assert response.status_code == 201
    prediction = response.json()
    assert prediction["status"] == "succeeded"
    assert prediction["error"] is None
    assert prediction["version"] == "abc123"
    image = await client.get(prediction["output"][0])
    assert image.status_code == 200
    assert image.content.startswith(PNG_SIGNATURE)

    polled = await client.get(prediction["urls"]["get"])
    assert polled.status_code == 200
    assert polled.json()["id"] == prediction["id"]
    assert polled.json()["status"] == "succeeded"

    by_model = await client.post(
        f"{server.base_url('replicate')}/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "a cat"}},
    )
    assert by_model.status_code == 201
    assert by_model.json()["model"] == "black-forest-labs/flux-schnell"
    # image downloads are not platform requests
    assert server.stats()["replicate"] == {"total": 3, "ok": 3}


async def test_fal_request(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    response = await call(client, server, "fal")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert len(body["request_id"]) == 36
    image = body["images"][0]
    assert image["content_type"] == "image/png"
    download = await client.get(image["url"])
    assert download.content.startswith(PNG_SIGNATURE)


async def test_unknown_platform_and_endpoint(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{server.url}/mistral/v1/chat/completions", json=CHAT)
    assert response.status_code == 404
    assert "unknown platform 'mistral'" in response.json()["error"]["message"]

    response = await client.get(f"{server.base_url('openai')}/chat/completions")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert server.stats()["openai"] == {"total": 1, "not_found": 1}


async def test_malformed_requests_get_the_providers_400(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.base_url('openai')}/chat/completions"
    no_model = await client.post(url, json={"messages": CHAT["messages"]})
    assert no_model.status_code == 400
    assert no_model.json()["error"]["type"] == "invalid_request_error"
    assert no_model.json()["error"]["param"] == "model"

    not_json = await client.post(
        url, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400

    no_max_tokens = await client.post(
        f"{server.base_url('anthropic')}/v1/messages",
        json={k: v for k, v in MESSAGES.items() if k != "max_tokens"},
    )
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert server.stats()["openai"] == {"total": 2, "bad_request": 2}
    assert server.stats()["anthropic"] == {"total": 1, "bad_request": 1}


# -- streaming ------------------------------------------------------------------------------


async def test_openai_stream(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    response = await call(client, server, "groq", stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("Fake groq reply:")
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == len(text.split())
    assert usage_chunk["usage"]["total_tokens"] == usage_chunk["usage"]["prompt_tokens"] + len(
        text.split()
    )


async def test_anthropic_stream(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    response = await call(client, server, "anthropic", stream=True)
    assert response.status_code == 200
    events = [
        line[len("event: ") :] for line in response.text.splitlines() if line.startswith("event: ")
    ]
    payloads = [json.loads(item) for item in sse_data(response.text)]
    assert [p["type"] for p in payloads] == events
    deltas = events.count("content_block_delta")
    assert deltas >= 3
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text.startswith("Fake anthropic reply:")
    assert payloads[0]["message"]["usage"]["input_tokens"] == 4
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    assert payloads[-2]["usage"]["output_tokens"] == len(text.split())


async def test_gemini_native_api(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    """Gemini's own generateContent, as google-genai calls it (base ``/google``)."""
    url = f"{server.url}/google/v1beta/models/gemini-2.5-flash-lite"
    body = {"contents": [{"role": "user", "parts": [{"text": "say hi"}]}]}
    response = await client.post(f"{url}:generateContent", json=body)
    assert response.status_code == 200
    answer = response.json()
    candidate = answer["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"][0]["text"].startswith("Fake google reply:")
    assert candidate["finishReason"] == "STOP"
    assert answer["modelVersion"] == "gemini-2.5-flash-lite"
    assert answer["usageMetadata"]["promptTokenCount"] == 2

    streamed = await client.post(f"{url}:streamGenerateContent?alt=sse", json=body)
    chunks = [json.loads(item) for item in sse_data(streamed.text)]
    text = "".join(chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks)
    assert text.startswith("Fake google reply:")
    assert [c["candidates"][0].get("finishReason") for c in chunks][-2:] == [None, "STOP"]

    missing = await client.post(f"{url}:generateContent", json={})
    assert missing.status_code == 400
    assert missing.json()["error"]["status"] == "INVALID_ARGUMENT"
    server.set_behaviour("google", Behaviour.out_of_credits())
    refused = await client.post(f"{url}:generateContent", json=body)
    assert refused.status_code == 429
    assert "credits are depleted" in refused.json()["error"]["message"]
    assert server.stats()["google"] == {"total": 4, "ok": 2, "bad_request": 1, "credit": 1}


async def read_stream_until_cut(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> list[str]:
    """The ``data:`` lines received before the connection dropped (fails if it did not)."""
    received: list[str] = []
    try:
        async with client.stream("POST", url, json={**body, "stream": True}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received.append(line)
    except httpx.RemoteProtocolError:
        return received
    pytest.fail(f"the stream was not cut: {received}")


@pytest.mark.parametrize("after_chunks", [0, 1, 3])
async def test_stream_cut(
    server: FakeProviderServer, client: httpx.AsyncClient, after_chunks: int
) -> None:
    server.set_behaviour("openai", Behaviour.stream_cut(after_chunks=after_chunks))
    url = f"{server.base_url('openai')}/chat/completions"
    received = await read_stream_until_cut(client, url, CHAT)
    assert len(received) == after_chunks
    assert all("chat.completion.chunk" in line for line in received)

    server.set_behaviour("anthropic", Behaviour.stream_cut(after_chunks=after_chunks))
    url = f"{server.base_url('anthropic')}/v1/messages"
    received = await read_stream_until_cut(client, url, MESSAGES)
    assert len(received) == after_chunks

    # the server still serves other requests afterwards
    server.set_behaviour("openai", Behaviour.healthy())
    assert (await call(client, server, "openai")).status_code == 200
    assert server.stats()["openai"] == {"total": 2, "ok": 1, "stream_cut": 1}


async def test_stream_cut_on_a_plain_request_drops_the_body(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    server.set_behaviour("stability", Behaviour.stream_cut())
    with pytest.raises(httpx.RemoteProtocolError):
        await call(client, server, "stability")
    assert server.stats()["stability"] == {"total": 1, "stream_cut": 1}


# -- failure behaviours ---------------------------------------------------------------------

OUT_OF_CREDITS = {
    "openai": (429, lambda b: b["error"]["code"] == "insufficient_quota"),
    "groq": (429, lambda b: b["error"]["type"] == "insufficient_quota"),
    "xai": (429, lambda b: b["error"]["code"] == "insufficient_quota"),
    "together": (429, lambda b: b["error"]["code"] == "insufficient_quota"),
    "google": (
        429,
        lambda b: (
            b["error"]["status"] == "RESOURCE_EXHAUSTED" and "credits" in b["error"]["message"]
        ),
    ),
    "anthropic": (
        400,
        lambda b: (
            b["type"] == "error"
            and b["error"]["type"] == "invalid_request_error"
            and "credit balance is too low" in b["error"]["message"]
        ),
    ),
    "stability": (
        402,
        lambda b: b["name"] == "payment_required" and "credits" in b["errors"][0],
    ),
    "replicate": (
        402,
        lambda b: b["title"] == "Insufficient credit" and b["status"] == 402,
    ),
    "fal": (403, lambda b: "Exhausted balance" in b["detail"]),
}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_out_of_credits(
    server: FakeProviderServer, client: httpx.AsyncClient, platform: str
) -> None:
    server.set_behaviour(platform, Behaviour.out_of_credits())
    response = await call(client, server, platform)
    status, check = OUT_OF_CREDITS[platform]
    assert response.status_code == status
    assert check(response.json()), response.text
    assert "retry-after" not in response.headers
    assert server.stats()[platform] == {"total": 1, "credit": 1}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_rate_limited(
    server: FakeProviderServer, client: httpx.AsyncClient, platform: str
) -> None:
    server.set_behaviour(platform, Behaviour.rate_limited(retry_after=2))
    response = await call(client, server, platform)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    body = response.json()
    if platform == "google":
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    elif platform in OPENAI_COMPATIBLE_PLATFORMS:
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["type"] == "requests"
        assert "gpt-4o-mini" in body["error"]["message"]
        assert response.headers["retry-after-ms"] == "2000"
    elif platform == "anthropic":
        assert body["error"]["type"] == "rate_limit_error"
    elif platform == "stability":
        assert body["name"] == "rate_limit_exceeded"
    elif platform == "replicate":
        assert body["status"] == 429
        assert body["detail"] == "Request was throttled. Your rate limit resets in ~2s."
    # a rate-limit answer must not read like a quota/billing one
    text = response.text.lower()
    assert not any(word in text for word in ("quota", "credit", "billing", "balance"))
    assert server.stats()[platform] == {"total": 1, "rate_limited": 1}


async def test_rate_limited_retry_after_variants(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    server.set_behaviour("anthropic", Behaviour.rate_limited(retry_after=None))
    response = await call(client, server, "anthropic")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    server.set_behaviour("anthropic", Behaviour.rate_limited(retry_after=0.5))
    response = await call(client, server, "anthropic")
    assert response.headers["retry-after"] == "1"


AUTH_CHECKS = {
    "google": lambda b: b["error"]["status"] == "UNAUTHENTICATED",
    "anthropic": lambda b: (
        b["error"]
        == {
            "type": "authentication_error",
            "message": "invalid x-api-key",
        }
    ),
    "stability": lambda b: b["name"] == "unauthorized",
    "replicate": lambda b: b["title"] == "Unauthenticated",
    "fal": lambda b: "No user found" in b["detail"],
}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_bad_key(
    server: FakeProviderServer, client: httpx.AsyncClient, platform: str
) -> None:
    key = "sk-proj-SECRETSECRETSECRET0123456789wxyz"
    server.set_behaviour(platform, Behaviour.bad_key())
    response = await call(client, server, platform, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert key not in response.text
    body = response.json()
    if platform in AUTH_CHECKS:
        assert AUTH_CHECKS[platform](body), response.text
    else:  # OpenAI-style: echoes the key, masked the way OpenAI masks it
        error = body["error"]
        assert error["code"] == "invalid_api_key"
        assert error["type"] == "invalid_request_error"
        masked = "sk-proj-" + "*" * (len(key) - 12) + "wxyz"
        assert f"Incorrect API key provided: {masked}." in error["message"]
    assert server.stats()[platform] == {"total": 1, "auth": 1}


async def test_bad_key_without_a_key(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    server.set_behaviour("openai", Behaviour.bad_key())
    response = await call(client, server, "openai")
    assert response.status_code == 401
    assert "You didn't provide an API key" in response.json()["error"]["message"]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_overloaded(
    server: FakeProviderServer, client: httpx.AsyncClient, platform: str
) -> None:
    server.set_behaviour(platform, Behaviour.overloaded())
    response = await call(client, server, platform)
    if platform == "anthropic":
        assert response.status_code == 529
        assert response.json() == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }
    else:
        assert response.status_code == 503
        assert "overloaded" in response.text.lower()
    assert server.stats()[platform] == {"total": 1, "overloaded": 1}


async def test_content_policy_and_context_length(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    expectations = {
        ("openai", "content_policy"): (400, "content_policy_violation"),
        ("openai", "context_length_exceeded"): (400, "context_length_exceeded"),
        ("anthropic", "content_policy"): (400, "content filtering policy"),
        ("anthropic", "context_length_exceeded"): (400, "prompt is too long"),
        ("stability", "content_policy"): (403, "content_moderation"),
        ("fal", "content_policy"): (422, "content_policy_violation"),
        ("replicate", "context_length_exceeded"): (422, "Input validation failed"),
        ("google", "context_length_exceeded"): (400, "exceeds the maximum number of tokens"),
    }
    for (platform, kind), (status, needle) in expectations.items():
        server.set_behaviour(platform, Behaviour.from_dict(kind))
        response = await call(client, server, platform)
        assert response.status_code == status, (platform, kind)
        assert needle in response.text, (platform, kind)
    stats = server.stats()
    assert stats["openai"] == {"total": 2, "content_policy": 1, "context_length_exceeded": 1}
    assert stats["stability"] == {"total": 1, "content_policy": 1}


async def test_flaky_is_reproducible_and_counts_exactly(client: httpx.AsyncClient) -> None:
    statuses: list[list[int]] = []
    for _ in range(2):
        async with FakeProviderServer(seed=99) as server:
            server.set_behaviour("xai", Behaviour.flaky(0.5))
            run = [(await call(client, server, "xai")).status_code for _ in range(40)]
            stats = server.stats()["xai"]
        assert set(run) == {200, 503}
        assert stats == {"total": 40, "ok": run.count(200), "error_503": run.count(503)}
        statuses.append(run)
    assert statuses[0] == statuses[1]


async def test_flaky_statuses(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    server.set_behaviour("openai", Behaviour.flaky(1.0, status=500))
    response = await call(client, server, "openai")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"

    server.set_behaviour("anthropic", Behaviour.flaky(1.0, status=529))
    response = await call(client, server, "anthropic")
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"

    server.set_behaviour("replicate", Behaviour.flaky(1.0, status=502))
    response = await call(client, server, "replicate")
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "502 Bad Gateway" in response.text

    server.set_behaviour("fal", Behaviour.flaky(0.0, status=500))
    assert (await call(client, server, "fal")).status_code == 200
    stats = server.stats()
    assert stats["openai"] == {"total": 1, "error_500": 1}
    assert stats["replicate"] == {"total": 1, "error_502": 1}
    assert stats["fal"] == {"total": 1, "ok": 1}


async def test_healthy_latency(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    server.set_behaviour("together", Behaviour.healthy(latency=0.2, jitter=0.05))
    start = anyio.current_time()
    response = await call(client, server, "together")
    assert response.status_code == 200
    assert anyio.current_time() - start >= 0.15


async def test_hanging_exceeds_client_timeout(server: FakeProviderServer) -> None:
    server.set_behaviour("openai", Behaviour.hanging())
    async with httpx.AsyncClient(timeout=0.2) as short:
        with pytest.raises(httpx.ReadTimeout):
            await call(short, server, "openai")
    # the server goes on serving after the client gave up
    server.set_behaviour("openai", Behaviour.healthy())
    async with httpx.AsyncClient(timeout=5) as normal:
        assert (await call(normal, server, "openai")).status_code == 200
    assert server.stats()["openai"] == {"total": 2, "hang": 1, "ok": 1}


async def test_hanging_for_some_seconds_then_answers(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    server.set_behaviour("anthropic", Behaviour.hanging(seconds=0.1))
    start = anyio.current_time()
    response = await call(client, server, "anthropic")
    assert response.status_code == 200
    assert anyio.current_time() - start >= 0.1
    assert server.stats()["anthropic"] == {"total": 1, "hang": 1}


async def test_shutdown_is_prompt_with_hanging_requests() -> None:
    with anyio.fail_after(10):
        async with httpx.AsyncClient(timeout=30) as client, anyio.create_task_group() as tg:
            async with FakeProviderServer(behaviours={"openai": Behaviour.hanging()}) as server:

                async def hang() -> None:
                    with pytest.raises(httpx.RemoteProtocolError):
                        await call(client, server, "openai")

                for _ in range(5):
                    tg.start_soon(hang)
                await wait_until(lambda: server.stats()["openai"].get("hang") == 5)
                start = anyio.current_time()
            assert anyio.current_time() - start < 1.0
            # leaving the task group waits for the five clients: each saw the server go away


async def test_sequence(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    twice_then_ok = Behaviour.sequence([Behaviour.out_of_credits(), Behaviour.flaky(1.0)])
    server.set_behaviour("openai", twice_then_ok)
    statuses = [(await call(client, server, "openai")).status_code for _ in range(4)]
    assert statuses == [429, 503, 200, 200]
    assert server.stats()["openai"] == {"total": 4, "credit": 1, "error_503": 1, "ok": 2}

    # setting it again starts over; `then` replaces the healthy default
    server.set_behaviour(
        "openai", Behaviour.sequence([Behaviour.healthy()], then=Behaviour.bad_key())
    )
    statuses = [(await call(client, server, "openai")).status_code for _ in range(3)]
    assert statuses == [200, 401, 401]


async def test_malformed_request_does_not_consume_a_sequence_step(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    server.set_behaviour("openai", Behaviour.sequence([Behaviour.overloaded()]))
    bad = await client.post(f"{server.base_url('openai')}/chat/completions", json={})
    assert bad.status_code == 400
    assert (await call(client, server, "openai")).status_code == 503
    assert (await call(client, server, "openai")).status_code == 200


# -- admin and statistics --------------------------------------------------------------------


async def test_admin_endpoint_switches_behaviour(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    admin = f"{server.url}/_admin"
    response = await client.post(
        f"{admin}/behaviour",
        json={"platform": "stability", "behaviour": {"kind": "out_of_credits"}},
    )
    assert response.status_code == 200
    assert response.json() == {"platform": "stability", "behaviour": {"kind": "out_of_credits"}}
    assert server.behaviour("stability") == Behaviour.out_of_credits()
    assert (await call(client, server, "stability")).status_code == 402

    response = await client.post(
        f"{admin}/behaviour",
        json={"platform": "groq", "behaviour": {"kind": "rate_limited", "retry_after": 7}},
    )
    assert response.status_code == 200
    limited = await call(client, server, "groq")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")

    current = (await client.get(f"{admin}/behaviour")).json()
    assert current["stability"] == {"kind": "out_of_credits"}
    assert current["groq"] == {"kind": "rate_limited", "retry_after": 7}
    assert current["fal"] == {"kind": "healthy", "latency": 0.0, "jitter": 0.0}

    stats = (await client.get(f"{admin}/stats")).json()
    assert stats == server.stats()
    assert stats["stability"] == {"total": 1, "credit": 1}
    assert stats["groq"] == {"total": 1, "rate_limited": 1}

    # the provider recovers mid-run: every platform back to healthy
    response = await client.post(
        f"{admin}/behaviour", json={"platform": "*", "behaviour": "healthy"}
    )
    assert response.status_code == 200
    assert all(server.behaviour(p) == Behaviour.healthy() for p in PLATFORMS)
    assert (await call(client, server, "stability")).status_code == 200

    assert (await client.post(f"{admin}/reset")).status_code == 200
    assert all(counts == {"total": 0} for counts in server.stats().values())

    info = (await client.get(f"{admin}/info")).json()
    assert info["platforms"]["openai"] == server.base_url("openai")
    assert (await client.get(server.url)).json() == info


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"platform": "stability", "behaviour": {"kind": "broke"}}, "unknown behaviour kind"),
        ({"platform": "nowhere", "behaviour": "healthy"}, "unknown platform 'nowhere'"),
        ({"platform": "fal", "behaviour": {"kind": "flaky", "error_rate": 2}}, "error_rate"),
        ({"platform": "fal", "behaviour": {"kind": "bad_key", "status": 500}}, "unknown param"),
        ({"behaviour": "healthy"}, "'platform'"),
        ([1, 2], "expected"),
    ],
)
async def test_admin_rejects_bad_input(
    server: FakeProviderServer, client: httpx.AsyncClient, payload: Any, message: str
) -> None:
    response = await client.post(f"{server.url}/_admin/behaviour", json=payload)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert server.behaviour("fal") == Behaviour.healthy()
    assert (await client.post(f"{server.url}/_admin/nope")).status_code == 404
    not_json = await client.post(f"{server.url}/_admin/behaviour", content=b"{")
    assert not_json.status_code == 400


async def test_stats_reconcile_across_platforms(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    server.set_behaviour("stability", Behaviour.out_of_credits())
    server.set_behaviour("replicate", Behaviour.sequence([Behaviour.flaky(1.0, status=500)] * 2))
    for platform in ("stability", "replicate", "fal") * 3:
        await call(client, server, platform)
    await call(client, server, "openai")
    assert server.stats() == {
        **{platform: {"total": 0} for platform in PLATFORMS},
        "stability": {"total": 3, "credit": 3},
        "replicate": {"total": 3, "error_500": 2, "ok": 1},
        "fal": {"total": 3, "ok": 3},
        "openai": {"total": 1, "ok": 1},
    }
    server.reset_stats()
    assert server.stats()["stability"] == {"total": 0}
    assert server.behaviour("stability") == Behaviour.out_of_credits()


# -- HTTP robustness -------------------------------------------------------------------------


async def test_concurrent_requests(server: FakeProviderServer) -> None:
    for platform in PLATFORMS:
        server.set_behaviour(platform, Behaviour.healthy(latency=0.05))
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(index: int) -> None:
            response = await call(client, server, PLATFORMS[index % len(PLATFORMS)])
            statuses.append(response.status_code)

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for index in range(225):
                tg.start_soon(one, index)
        elapsed = anyio.current_time() - start
    assert len(statuses) == 225
    assert set(statuses) == {200, 201}  # replicate creates predictions: 201
    assert sum(counts["ok"] for counts in server.stats().values()) == 225
    assert server.connections_accepted > 10  # they really were in flight together
    assert elapsed < 225 * 0.05  # not one after the other


async def test_keep_alive_reuses_one_connection(
    server: FakeProviderServer, client: httpx.AsyncClient
) -> None:
    for _ in range(20):
        assert (await call(client, server, "anthropic")).status_code == 200
        assert (await call(client, server, "stability")).status_code == 200
    assert server.connections_accepted == 1


async def test_chunked_request_body(server: FakeProviderServer, client: httpx.AsyncClient) -> None:
    payload = json.dumps(MESSAGES).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 7):
            yield payload[start : start + 7]

    response = await client.post(
        f"{server.base_url('anthropic')}/v1/messages",
        content=pieces(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["usage"]["input_tokens"] == 4


async def raw_exchange(server: FakeProviderServer, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    received = b""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(request)
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    return received


async def test_raw_http_edge_cases(server: FakeProviderServer) -> None:
    garbage = await raw_exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ")

    body = json.dumps(CHAT).encode()
    post = (
        b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    )
    # two pipelined requests, the second asking to close
    pipelined = await raw_exchange(
        server, post + b"\r\n" + body + post + b"Connection: close\r\n\r\n" + body
    )
    assert pipelined.count(b"HTTP/1.1 200 OK") == 2
    assert pipelined.count(b'"object":"chat.completion"') == 2

    # HTTP/1.0 without keep-alive: one answer, then the server closes
    old = await raw_exchange(server, b"GET /_admin/stats HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200 OK")
    assert b'"openai":{"total":2,"ok":2}' in old

    # Expect: 100-continue
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(post + b"Expect: 100-continue\r\n\r\n")
            interim = await stream.receive()
            assert interim.startswith(b"HTTP/1.1 100 ")
            await stream.send(body)
            final = b""
            while b'"usage"' not in final:
                final += await stream.receive()
            assert final.startswith(b"HTTP/1.1 200 OK")


async def test_request_logging_never_shows_keys_or_bodies(
    server: FakeProviderServer, client: httpx.AsyncClient, server_log: _ListHandler
) -> None:
    key = "sk-live-VERYSECRETKEY-0123456789"
    secret_prompt = "my-private-prompt-text"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": secret_prompt}]}
    headers = {"authorization": f"Bearer {key}", "x-api-key": key}
    for behaviour in (Behaviour.healthy(), Behaviour.bad_key(), Behaviour.rate_limited()):
        server.set_behaviour("openai", behaviour)
        await client.post(
            f"{server.base_url('openai')}/chat/completions?key={key}", json=body, headers=headers
        )
    logged = "\n".join(record.getMessage() for record in server_log.records)
    assert "/openai/v1/chat/completions -> 401 (auth)" in logged
    assert key not in logged
    assert "VERYSECRET" not in logged
    assert secret_prompt not in logged


# -- lifecycle ------------------------------------------------------------------------------


async def test_serve_forever() -> None:
    async with anyio.create_task_group() as tg:
        running: FakeProviderServer = await tg.start(serve_forever, 0)
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await call(client, running, "fal")).status_code == 200
        tg.cancel_scope.cancel()
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", running.port)


async def test_clean_shutdown_with_an_idle_keep_alive_connection() -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        async with FakeProviderServer() as server:
            assert (await call(client, server, "openai")).status_code == 200
            assert server.connections_accepted == 1
            start = anyio.current_time()
        assert anyio.current_time() - start < 1.0
        with pytest.raises(httpx.TransportError):
            await call(client, server, "openai")
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", server.port)


async def test_server_can_be_restarted() -> None:
    server = FakeProviderServer(behaviours={"fal": Behaviour.bad_key()})
    for _ in range(2):
        async with server, httpx.AsyncClient(timeout=5) as client:
            assert (await call(client, server, "fal")).status_code == 401
            with pytest.raises(RuntimeError, match="already running"):
                await server.__aenter__()
    assert server.stats()["fal"] == {"total": 2, "auth": 2}


# -- behaviours as values --------------------------------------------------------------------

ALL_BEHAVIOURS = [
    Behaviour.healthy(),
    Behaviour.healthy(latency=0.5, jitter=0.1),
    Behaviour.flaky(0.25),
    Behaviour.flaky(1, status=529, latency=0.01),
    Behaviour.out_of_credits(),
    Behaviour.rate_limited(),
    Behaviour.rate_limited(retry_after=None),
    Behaviour.hanging(),
    Behaviour.hanging(seconds=3),
    Behaviour.bad_key(),
    Behaviour.overloaded(),
    Behaviour.stream_cut(),
    Behaviour.stream_cut(after_chunks=0),
    Behaviour.content_policy(),
    Behaviour.context_length_exceeded(),
    Behaviour.sequence([Behaviour.flaky(1.0), Behaviour.rate_limited(1)]),
    Behaviour.sequence([Behaviour.out_of_credits()], then=Behaviour.hanging()),
]


@pytest.mark.parametrize("behaviour", ALL_BEHAVIOURS, ids=repr)
def test_behaviour_round_trips_through_json(behaviour: Behaviour) -> None:
    data = json.loads(json.dumps(behaviour.to_dict()))
    assert Behaviour.from_dict(data) == behaviour
    assert repr(behaviour).startswith(f"Behaviour.{behaviour.kind}(")


def test_behaviour_defaults_and_shorthand() -> None:
    assert Behaviour.from_dict("overloaded") == Behaviour.overloaded()
    assert Behaviour.from_dict({"kind": "rate_limited"}).retry_after == 2.0
    assert Behaviour.stream_cut().after_chunks == 1
    assert Behaviour.sequence([Behaviour.bad_key()]).then == Behaviour.healthy()
    assert Behaviour.sequence(iter([Behaviour.bad_key()])).steps == (Behaviour.bad_key(),)
    with pytest.raises(AttributeError):
        Behaviour.healthy().latency = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Behaviour.flaky(1.5), "error_rate must be <= 1.0"),
        (lambda: Behaviour.flaky(-0.1), "error_rate must be a finite number >= 0"),
        (lambda: Behaviour.flaky(True), "error_rate must be a number"),
        (lambda: Behaviour.flaky(0.5, status=404), "status must be 408 or a 5xx"),
        (lambda: Behaviour.flaky(0.5, status=503.0), "status must be an int"),
        (lambda: Behaviour.healthy(latency=-1), "latency must be a finite number"),
        (lambda: Behaviour.healthy(latency=float("inf")), "latency must be a finite number"),
        (lambda: Behaviour.healthy(jitter="1"), "jitter must be a number"),
        (lambda: Behaviour.rate_limited(retry_after=-2), "retry_after"),
        (lambda: Behaviour.hanging(seconds=float("nan")), "seconds"),
        (lambda: Behaviour.stream_cut(after_chunks=-1), "after_chunks must be >= 0"),
        (lambda: Behaviour.stream_cut(after_chunks=1.5), "after_chunks must be an int"),
        (lambda: Behaviour.sequence([]), "at least one step"),
        (lambda: Behaviour.sequence([Behaviour.sequence([Behaviour()])]), "another sequence"),
        (lambda: Behaviour.sequence(["healthy"]), "must be Behaviour objects"),
        (lambda: Behaviour("exploding"), "unknown behaviour kind 'exploding'"),
        (lambda: Behaviour("out_of_credits", latency=1), "'latency' is not a parameter"),
        (lambda: Behaviour("healthy", steps=(Behaviour(),)), "'steps' and 'then'"),
        (lambda: Behaviour.from_dict({"kind": "hanging", "secs": 1}), "unknown parameter"),
        (lambda: Behaviour.from_dict({"latency": 1}), "unknown behaviour kind None"),
        (lambda: Behaviour.from_dict({"kind": "sequence"}), "needs 'steps'"),
        (lambda: Behaviour.from_dict(["healthy"]), "must be a JSON object"),
    ],
)
def test_behaviour_validation(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()
