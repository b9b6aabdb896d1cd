"""Streamed answers over real HTTP (asyncio and trio): fallback before the first chunk, never
after it; the response closed on every path (end, error, cancellation, early exit, close)."""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import PlatformManager, PlatformSpec, RateLimited, Transient
from failover.http import (
    AnthropicMessages,
    OpenAICompatibleChat,
    StreamInterrupted,
    TextGeneration,
    TextStream,
    TokenPrice,
)
from failover.testing import Behaviour, FakeProviderServer

pytestmark = pytest.mark.anyio

KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789",
    "GROQ_API_KEY": "gsk_test_groq_0123456789",
    "GOOGLE_API_KEY": "AIzaTestGoogleKey0123456789abcdef",
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789",
}
MODELS = {
    "groq": "llama-3.3-70b-versatile",
    "openai": "gpt-4o-mini",
    "google": "gemini-2.5-flash-lite",
    "anthropic": "claude-3-5-haiku-latest",
}
MESSAGES = [{"role": "user", "content": "write a short poem"}]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=11) as fake:
        yield fake


def manager_for(*names: str, **kwargs: Any) -> PlatformManager:
    return PlatformManager({"text_generation": [(name, MODELS[name]) for name in names]}, **kwargs)


def chat_for(manager: PlatformManager, server: FakeProviderServer, **kwargs: Any) -> TextGeneration:
    names = [spec.name for spec in manager.platforms("text_generation")]
    return TextGeneration(manager, base_urls={n: server.base_url(n) for n in names}, **kwargs)


def pair_health(manager: PlatformManager, name: str) -> dict[str, Any]:
    return manager.get_health_status()[name]["operations"]["text_generation"]  # type: ignore[no-any-return]


# -- complete answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
async def test_a_stream_yields_the_answer_piece_by_piece(
    server: FakeProviderServer, name: str
) -> None:
    async with manager_for(name) as manager:
        stream = await chat_for(manager, server).stream(MESSAGES)
        pieces = []
        async with stream:
            async for piece in stream:
                pieces.append(piece)
    assert len(pieces) >= 5
    assert "".join(pieces) == stream.text
    assert stream.text.startswith(f"Fake {name} reply:")
    assert stream.complete
    assert stream.closed
    assert stream.finish_reason == ("end_turn" if name == "anthropic" else "stop")
    assert stream.input_tokens == 4
    assert stream.output_tokens == len(stream.text.split())
    assert stream.model == MODELS[name]
    result = stream.result()
    assert (result.text, result.platform) == (stream.text, name)


@pytest.mark.parametrize("name", ["groq", "anthropic"])
async def test_complete_streams_give_their_connection_back_to_the_pool(
    server: FakeProviderServer, name: str
) -> None:
    async with manager_for(name) as manager:
        chat = chat_for(manager, server)
        texts = [(await (await chat.stream(MESSAGES)).collect()).text for _ in range(3)]
        texts.append((await chat.complete(MESSAGES)).text)
    assert all(text.startswith(f"Fake {name}") for text in texts)
    assert server.connections_accepted == 1


async def test_collect_reads_the_rest_and_streamed_usage_becomes_cost(
    server: FakeProviderServer,
) -> None:
    price = TokenPrice(input=1.0, output=3.0)
    async with manager_for("groq") as manager:
        chat = chat_for(manager, server, prices={"groq": price})
        result = await (await chat.stream(MESSAGES)).collect()
        cost = manager.get_health_status()["groq"]["cost"]
    assert result.text.startswith("Fake groq reply:")
    assert cost == pytest.approx(price.cost(result.input_tokens, result.output_tokens))


async def test_the_attempt_span_gets_the_response_model(server: FakeProviderServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with manager_for("anthropic", tracer_provider=provider) as manager:
        await (await chat_for(manager, server).stream(MESSAGES)).collect()
    provider.shutdown()
    (attempt,) = [span for span in exporter.get_finished_spans() if span.name.startswith("chat")]
    attributes = dict(attempt.attributes or {})
    assert attributes["gen_ai.response.model"] == MODELS["anthropic"]
    assert attributes["gen_ai.usage.input_tokens"] == 4  # Anthropic says so in message_start


# -- before the first chunk: an ordinary attempt ------------------------------------------------


@pytest.mark.parametrize(("name", "events_before_cut"), [("groq", 1), ("anthropic", 3)])
async def test_a_cut_before_the_first_chunk_falls_back(
    server: FakeProviderServer, name: str, events_before_cut: int
) -> None:
    other = "openai" if name != "openai" else "groq"
    server.set_behaviour(name, Behaviour.stream_cut(after_chunks=events_before_cut))
    async with manager_for(name, other) as manager:
        async with await chat_for(manager, server).stream(MESSAGES) as stream:
            text = "".join([piece async for piece in stream])
        failed = pair_health(manager, name)
    assert stream.platform == other
    assert text.startswith(f"Fake {other} reply:")
    assert (failed["failures"], failed["last_error_kind"]) == (1, "transient")


async def test_an_error_status_before_the_stream_falls_back_by_kind(
    server: FakeProviderServer,
) -> None:
    server.set_behaviour("groq", Behaviour.rate_limited(retry_after=9))
    server.set_behaviour("google", Behaviour.out_of_credits())
    async with manager_for("groq", "google", "anthropic") as manager:
        stream = await chat_for(manager, server).stream(MESSAGES)
        await stream.collect()
        health = manager.get_health_status()
    assert stream.platform == "anthropic"
    assert health["groq"]["operations"]["text_generation"]["skip_reason"] == "rate_limited"
    assert health["google"]["cooldown_reason"] == "credit"


async def test_a_provider_silent_before_the_first_chunk_times_out_and_falls_back(
    server: FakeProviderServer,
) -> None:
    server.set_behaviour("groq", Behaviour.hanging())
    async with manager_for("groq", "openai") as manager:
        chat = TextGeneration(
            manager,
            adapters={"groq": OpenAICompatibleChat(server.base_url("groq"), timeout=0.3)},
            base_urls={"openai": server.base_url("openai")},
        )
        with anyio.fail_after(5):
            stream = await chat.stream(MESSAGES)
            await stream.collect()
    assert stream.platform == "openai"


# -- after the first chunk: the answer belongs to that provider ---------------------------------


async def read_into(stream: TextStream, received: list[str]) -> None:
    async with stream:
        async for piece in stream:
            received.append(piece)


@pytest.mark.parametrize(
    ("name", "events_before_cut", "words"), [("groq", 3, 2), ("anthropic", 5, 2)]
)
async def test_a_cut_after_the_first_chunk_raises_with_the_partial_text(
    server: FakeProviderServer, name: str, events_before_cut: int, words: int
) -> None:
    server.set_behaviour(name, Behaviour.stream_cut(after_chunks=events_before_cut))
    async with manager_for(name, "openai") as manager:
        stream = await chat_for(manager, server).stream(MESSAGES)
        received: list[str] = []
        with pytest.raises(StreamInterrupted) as caught:
            await read_into(stream, received)
        health = pair_health(manager, name)
    interrupted = caught.value
    assert interrupted.platform == name
    assert interrupted.partial_text == "".join(received) == stream.text
    assert len(received) == words
    assert interrupted.partial_text.startswith("Fake")
    assert isinstance(interrupted.error, Transient)
    assert interrupted.__cause__ is interrupted.error
    assert "not restarted on another platform" in str(interrupted)
    assert server.stats()["openai"]["total"] == 0  # never switched provider mid-answer
    assert stream.closed
    assert not stream.complete
    # The attempt succeeded at the first chunk; the break was reported afterwards.
    assert health["total_requests"] == 2
    assert health["last_error_kind"] == "transient"
    assert health["consecutive_failures"] == 1


def sse(events: Iterable[tuple[str | None, dict[str, Any] | str]]) -> bytes:
    out = b""
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out += (f"event: {name}\n" if name else "").encode() + f"data: {payload}\n\n".encode()
    return out


def delta(text: str) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


def rate_limit_event() -> tuple[str, dict[str, Any]]:
    error = {"type": "rate_limit_error", "message": "Number of request tokens has exceeded"}
    return ("error", {"type": "error", "error": error})


def sse_transport(body: bytes) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx.MockTransport(handler)


ANTHROPIC = PlatformSpec("anthropic", "claude", api_key_env="ANTHROPIC_API_KEY")
START = ("message_start", {"type": "message_start", "message": {"model": "claude-x", "usage": {}}})


async def test_an_error_event_mid_stream_is_classified_and_raised_as_interrupted() -> None:
    body = sse([START, delta("Hello"), delta(" there"), rate_limit_event()])
    async with AnthropicMessages(transport=sse_transport(body)) as adapter:
        stream = await adapter.stream(ANTHROPIC, MESSAGES)
        with pytest.raises(StreamInterrupted) as caught:
            await stream.collect()
    assert caught.value.partial_text == "Hello there"
    assert isinstance(caught.value.error, RateLimited)
    assert stream.closed


async def test_an_error_event_before_the_first_chunk_is_an_attempt_failure() -> None:
    body = sse([START, rate_limit_event()])
    async with AnthropicMessages(transport=sse_transport(body)) as adapter:
        with pytest.raises(RateLimited, match="rate_limit_error"):
            await adapter.stream(ANTHROPIC, MESSAGES)


async def test_openai_streams_without_done_marker_end_on_finish_reason() -> None:
    def chunk(content: str | None, finish: str | None = None) -> tuple[None, dict[str, Any]]:
        choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
        return (None, {"model": "m-1", "choices": [choice]})

    spec = PlatformSpec("openai", "m", api_key_env="OPENAI_API_KEY")
    complete = sse([chunk("Hi"), chunk(" you"), chunk(None, "length")])
    async with OpenAICompatibleChat(transport=sse_transport(complete)) as adapter:
        result = await (await adapter.stream(spec, MESSAGES)).collect()
    assert (result.text, result.finish_reason, result.model) == ("Hi you", "length", "m-1")
    truncated = sse([chunk("Hi"), chunk(" you")])
    async with OpenAICompatibleChat(transport=sse_transport(truncated)) as adapter:
        stream = await adapter.stream(spec, MESSAGES)
        with pytest.raises(StreamInterrupted, match="ended before the answer was complete"):
            await stream.collect()


async def test_an_empty_answer_is_a_complete_stream_with_no_pieces() -> None:
    spec = PlatformSpec("openai", "m", api_key_env="OPENAI_API_KEY")
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}
    body = sse([(None, {"choices": [choice]}), (None, "[DONE]")])
    async with OpenAICompatibleChat(transport=sse_transport(body)) as adapter:
        stream = await adapter.stream(spec, MESSAGES)
        assert stream.complete
        assert [piece async for piece in stream] == []


# -- closing on every path ----------------------------------------------------------------------


def one_connection_chat(manager: PlatformManager, server: FakeProviderServer) -> TextGeneration:
    """groq through a pool of ONE connection: a leaked response would block the next call."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(5.0, pool=1.0)
    adapter = OpenAICompatibleChat(server.base_url("groq"), limits=limits, timeout=timeout)
    return TextGeneration(manager, adapters={"groq": adapter})


async def test_leaving_async_with_early_releases_the_connection(
    server: FakeProviderServer,
) -> None:
    async with manager_for("groq") as manager:
        chat = one_connection_chat(manager, server)
        for _ in range(3):
            async with await chat.stream(MESSAGES) as stream:
                async for _piece in stream:
                    break
            assert stream.closed
            assert not stream.complete
        with anyio.fail_after(5):
            assert (await chat.complete(MESSAGES)).platform == "groq"
        assert pair_health(manager, "groq")["failures"] == 0  # stopping early is no failure


async def test_caller_cancellation_while_reading_pieces_closes_the_stream(
    server: FakeProviderServer,
) -> None:
    async with manager_for("groq") as manager:
        chat = one_connection_chat(manager, server)
        stream = await chat.stream(MESSAGES)
        with anyio.CancelScope() as scope:
            async for _piece in stream:
                scope.cancel()
        assert scope.cancelled_caught
        assert stream.closed
        assert not stream.complete
        with anyio.fail_after(5):
            assert (await chat.complete(MESSAGES)).platform == "groq"
        assert pair_health(manager, "groq")["failures"] == 0


async def test_caller_cancellation_before_the_first_chunk_counts_nothing(
    server: FakeProviderServer,
) -> None:
    server.set_behaviour("groq", Behaviour.hanging())
    async with manager_for("groq") as manager:
        chat = one_connection_chat(manager, server)
        with anyio.move_on_after(0.3) as scope:
            await chat.stream(MESSAGES)
        assert scope.cancelled_caught
        server.set_behaviour("groq", Behaviour.healthy())
        with anyio.fail_after(5):
            assert (await chat.complete(MESSAGES)).platform == "groq"
        health = pair_health(manager, "groq")
    assert (health["failures"], health["state"]) == (0, "closed")


async def test_closing_the_manager_closes_streams_left_open(server: FakeProviderServer) -> None:
    async with manager_for("anthropic") as manager:
        stream = await chat_for(manager, server).stream(MESSAGES)
        assert not stream.closed
    assert stream.closed
    assert [piece async for piece in stream] == []  # the buffered first piece was dropped


async def test_a_stream_dropped_without_closing_warns(server: FakeProviderServer) -> None:
    async with manager_for("groq") as manager:
        stream: TextStream | None = await chat_for(manager, server).stream(MESSAGES)
        # Recorded, not raised: on trio, httpx's own half-read generators warn as well.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = None
            gc.collect()
    ours = [item for item in caught if "without being closed" in str(item.message)]
    assert len(ours) == 1
    assert ours[0].category is ResourceWarning
    assert stream is None
