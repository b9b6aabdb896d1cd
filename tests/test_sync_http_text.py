"""The synchronous text adapter (``TextGeneration.complete_sync`` / ``stream_sync``) against
the fake provider server, run on a background event loop: no event loop in the calling
threads. Fallback, classification, timeouts, streaming, many threads, closing."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import httpx
import pytest

from failover import AllPlatformsFailed, Closed, ConfigError, PlatformManager, Transient
from failover.http import (
    InvalidArgument,
    OpenAICompatibleChat,
    StreamInterrupted,
    SyncTextStream,
    TextGeneration,
    TextResult,
    TokenPrice,
)
from failover.testing import Behaviour, FakeProviderServer

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
MESSAGES = [{"role": "user", "content": "tell me something nice"}]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with anyio.from_thread.start_blocking_portal() as portal:
        fake = FakeProviderServer(seed=7)
        with portal.wrap_async_context_manager(fake):
            yield fake


@pytest.fixture(autouse=True)
def _fresh(server: FakeProviderServer) -> None:
    server.set_behaviour("*", Behaviour.healthy())
    server.reset_stats()


def manager_for(*names: str, **kwargs: Any) -> PlatformManager:
    return PlatformManager({"text_generation": [(name, MODELS[name]) for name in names]}, **kwargs)


def chat_for(manager: PlatformManager, server: FakeProviderServer, **kwargs: Any) -> TextGeneration:
    names = [spec.name for spec in manager.platforms("text_generation")]
    return TextGeneration(manager, base_urls={n: server.base_url(n) for n in names}, **kwargs)


def health_of(manager: PlatformManager, name: str) -> dict[str, Any]:
    pair: dict[str, Any] = manager.get_health_status()[name]["operations"]["text_generation"]
    return pair


def test_complete_sync_answers_without_an_event_loop(server: FakeProviderServer) -> None:
    with manager_for("groq", "anthropic") as manager:
        reply = chat_for(manager, server).complete_sync(MESSAGES)
    assert isinstance(reply, TextResult)
    assert reply.platform == "groq"
    assert reply.text.startswith("Fake groq reply:")
    assert server.stats()["groq"]["total"] == 1


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        (Behaviour.out_of_credits(), "credit_exhausted"),
        (Behaviour.rate_limited(retry_after=5), "rate_limited"),
        (Behaviour.bad_key(), "auth"),
        (Behaviour.overloaded(), "transient"),
    ],
)
def test_each_failure_is_classified_and_falls_back(
    server: FakeProviderServer, behaviour: Behaviour, kind: str
) -> None:
    server.set_behaviour("groq", behaviour)
    with manager_for("groq", "anthropic") as manager:
        reply = chat_for(manager, server).complete_sync(MESSAGES)
        health = health_of(manager, "groq")
    assert reply.platform == "anthropic"
    assert (health["failures"], health["last_error_kind"]) == (1, kind)


def test_bad_arguments_are_raised_before_anything_is_sent(server: FakeProviderServer) -> None:
    with manager_for("groq", "anthropic") as manager:
        chat = chat_for(manager, server)
        with pytest.raises(InvalidArgument, match="messages must be a non-empty list"):
            chat.complete_sync([])
        with pytest.raises(InvalidArgument, match="'model' is set by the adapter"):
            chat.stream_sync(MESSAGES, model="other")
    assert server.stats()["groq"]["total"] == server.stats()["anthropic"]["total"] == 0


def test_a_hanging_provider_times_out_and_the_next_answers(server: FakeProviderServer) -> None:
    server.set_behaviour("groq", Behaviour.hanging())
    with manager_for("groq", "openai") as manager:
        chat = TextGeneration(
            manager,
            adapters={"groq": OpenAICompatibleChat(server.base_url("groq"), timeout=0.3)},
            base_urls={"openai": server.base_url("openai")},
        )
        reply = chat.complete_sync(MESSAGES)
        assert health_of(manager, "groq")["last_error_kind"] == "transient"
    assert reply.platform == "openai"


def test_everything_failing_raises_all_platforms_failed(server: FakeProviderServer) -> None:
    server.set_behaviour("*", Behaviour.overloaded())
    with manager_for("groq", "anthropic") as manager, pytest.raises(AllPlatformsFailed):
        chat_for(manager, server).complete_sync(MESSAGES)


def test_prices_book_the_cost(server: FakeProviderServer) -> None:
    with manager_for("groq") as manager:
        chat = chat_for(manager, server, prices={"groq": TokenPrice(1e6, 1e6)})
        reply = chat.complete_sync(MESSAGES)
        cost = manager.get_health_status()["groq"]["operations"]["text_generation"]
    assert reply.input_tokens is not None
    assert cost["cost"] > 0


def test_call_sync_is_an_operation_for_with_fallback_sync(server: FakeProviderServer) -> None:
    server.set_behaviour("groq", Behaviour.out_of_credits())
    with manager_for("groq", "openai") as manager:
        chat = chat_for(manager, server)
        reply, platform = manager.with_fallback_sync("text_generation", chat.call_sync, MESSAGES)
    assert isinstance(reply, TextResult)
    assert platform.name == reply.platform == "openai"


# -- streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["groq", "anthropic"])
def test_stream_sync_yields_the_pieces(server: FakeProviderServer, name: str) -> None:
    with manager_for(name) as manager:
        with chat_for(manager, server).stream_sync(MESSAGES) as stream:
            assert isinstance(stream, SyncTextStream)
            pieces = list(stream)
        assert stream.complete
        assert stream.closed
    assert len(pieces) > 1
    assert "".join(pieces) == stream.text
    assert stream.text.startswith(f"Fake {name} reply:")
    assert stream.result().platform == name


@pytest.mark.parametrize(("name", "events_before_cut"), [("groq", 1), ("anthropic", 3)])
def test_a_cut_before_the_first_chunk_falls_back(
    server: FakeProviderServer, name: str, events_before_cut: int
) -> None:
    server.set_behaviour(name, Behaviour.stream_cut(after_chunks=events_before_cut))
    with manager_for(name, "openai") as manager:
        result = chat_for(manager, server).stream_sync(MESSAGES).collect()
        failed = health_of(manager, name)
    assert result.platform == "openai"
    assert (failed["failures"], failed["last_error_kind"]) == (1, "transient")


def read_into(stream: SyncTextStream, received: list[str]) -> None:
    with stream:
        for piece in stream:
            received.append(piece)


@pytest.mark.parametrize(("name", "events_before_cut"), [("groq", 3), ("anthropic", 5)])
def test_a_cut_after_the_first_chunk_raises_stream_interrupted(
    server: FakeProviderServer, name: str, events_before_cut: int
) -> None:
    server.set_behaviour(name, Behaviour.stream_cut(after_chunks=events_before_cut))
    received: list[str] = []
    with manager_for(name, "openai") as manager:
        stream = chat_for(manager, server).stream_sync(MESSAGES)
        with pytest.raises(StreamInterrupted) as caught:
            read_into(stream, received)
        health = health_of(manager, name)
    assert caught.value.platform == name
    assert caught.value.partial_text == "".join(received) == stream.text != ""
    assert isinstance(caught.value.error, Transient)
    assert server.stats()["openai"]["total"] == 0  # never switched provider mid-answer
    assert stream.closed
    assert not stream.complete
    assert health["failures"] == 1  # the break still told the platform's health


def test_an_unread_stream_is_closed_by_the_manager(server: FakeProviderServer) -> None:
    with manager_for("groq") as manager:
        stream = chat_for(manager, server).stream_sync(MESSAGES)
        assert not stream.closed
    assert stream.closed


# -- threads and closing ----------------------------------------------------------------------


def test_many_threads_share_one_pooled_client_per_platform(server: FakeProviderServer) -> None:
    server.set_behaviour("groq", Behaviour.flaky(0.5))
    threads, calls = 16, 5
    platforms: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with manager_for("groq", "anthropic") as manager:
        chat = chat_for(manager, server)

        def work() -> None:
            try:
                for _ in range(calls):
                    name = chat.complete_sync(MESSAGES).platform
                    with lock:
                        platforms.append(name)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        groq, anthropic = (health_of(manager, n) for n in ("groq", "anthropic"))
        adapters = {name: chat.adapter(name) for name in ("groq", "anthropic")}
        clients = {name: adapters[name].sync_client(name) for name in adapters}
    assert errors == []
    assert len(platforms) == threads * calls
    stats = server.stats()
    assert groq["total_requests"] == stats["groq"]["total"]
    assert groq["total_requests"] - groq["failures"] == platforms.count("groq")
    assert anthropic["total_requests"] == stats["anthropic"]["total"]
    assert anthropic["total_requests"] == platforms.count("anthropic")
    assert all(client.is_closed for client in clients.values())


def test_clients_close_with_the_manager_without_resource_warnings(
    server: FakeProviderServer,
) -> None:
    manager = manager_for("groq", "anthropic")
    chat = chat_for(manager, server)
    chat.complete_sync(MESSAGES)
    client = chat.adapter("groq").sync_client("groq")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.close()
        del chat
    assert client.is_closed
    assert [w for w in caught if w.category is ResourceWarning] == []
    adapter = OpenAICompatibleChat(server.base_url("groq"))
    adapter.close()
    with pytest.raises(RuntimeError, match="closed"):
        adapter.sync_client("groq")


def test_a_custom_sync_transport_is_used() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "model": "m",
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            },
        )

    with manager_for("groq") as manager:
        adapter = OpenAICompatibleChat(sync_transport=httpx.MockTransport(handler))
        reply = TextGeneration(manager, adapters={"groq": adapter}).complete_sync(MESSAGES)
    assert reply.text == "hi"


def test_an_unknown_adapter_is_still_refused() -> None:
    with manager_for("groq") as manager, pytest.raises(ConfigError):
        TextGeneration(manager, adapters={"groq": object()})  # type: ignore[dict-item]


def test_the_docs_example_runs() -> None:
    import pathlib
    import subprocess
    import sys

    page = (pathlib.Path(__file__).parent.parent / "docs" / "sync.md").read_text()
    section = page.split("## The HTTP adapters in synchronous code", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    src = str(pathlib.Path(__file__).parent.parent / "src")
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["openai", "openai True", "replicate image/png"]


def test_a_call_after_the_manager_closed_raises_closed_and_counts_nothing(
    server: FakeProviderServer,
) -> None:
    """Blocks nest (a helper's own `with manager:` does not close the caller's manager); after
    the outermost block, a call through the adapter is the caller's bug: `Closed`, raised at
    once, nothing counted against any platform, no breaker opened."""

    def helper(manager: PlatformManager, chat: TextGeneration) -> str:
        with manager:
            return chat.complete_sync(MESSAGES).text

    with manager_for("groq", "openai", failure_threshold=1) as manager:
        chat = chat_for(manager, server)
        helper(manager, chat)
        assert chat.complete_sync(MESSAGES).text  # still open after the helper's block
    with pytest.raises(Closed, match="is closed"):
        chat.complete_sync(MESSAGES)
    health = manager.get_health_status()
    for name in ("groq", "openai"):
        assert health[name]["operations"]["text_generation"]["state"] == "closed"
        assert health[name]["operations"]["text_generation"]["failures"] == 0
    assert health["groq"]["total_requests"] == 2
    with pytest.raises(Closed, match="make a new one"), manager:
        pass
