"""A real Flask app on a threaded WSGI server, its views falling back across the fake providers
through the synchronous API, and a worker loop and a script without any event loop."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from werkzeug.serving import make_server

from failover import PlatformManager, PlatformSpec, fallback
from failover.testing import Behaviour, FakeProviderServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OP = "text_generation"


@pytest.fixture
def providers() -> Iterator[FakeProviderServer]:
    """The fake provider server on its own event loop thread: groq is out of credits, xai
    fails one request in two, openai answers."""
    behaviours = {
        "groq": Behaviour.out_of_credits(),
        "xai": Behaviour.flaky(0.5),
        "openai": Behaviour.healthy(),
    }
    with anyio.from_thread.start_blocking_portal() as portal:
        server = FakeProviderServer(seed=7, behaviours=behaviours)
        with portal.wrap_async_context_manager(server):
            yield server


def make_app(manager: PlatformManager, server: FakeProviderServer) -> Any:
    from flask import Flask, jsonify

    client = httpx.Client(headers={"Authorization": "Bearer test-key"}, timeout=10)

    @fallback(OP, manager=manager)
    def complete(platform: PlatformSpec, prompt: str) -> str:
        response = client.post(
            f"{server.base_url(platform.name)}/chat/completions",
            json={"model": platform.model, "messages": [{"role": "user", "content": prompt}]},
        )
        response.raise_for_status()  # failover classifies the provider's error from it
        return str(response.json()["choices"][0]["message"]["content"])

    app = Flask(__name__)

    @app.get("/ask/<int:number>")
    def ask(number: int) -> Any:
        text, platform = complete.call_with_platform(f"question {number}")
        return jsonify({"platform": platform.name, "text": text})

    @app.get("/health")
    def health() -> Any:
        return jsonify(manager.get_health_status())

    app.teardown_appcontext(lambda error: None)
    return app, client


def test_a_threaded_flask_app_answers_32_concurrent_clients(
    providers: FakeProviderServer,
) -> None:
    manager = PlatformManager(
        {OP: [("groq", "llama"), ("xai", "grok"), ("openai", "gpt-4o-mini")]},
        environ={"GROQ_API_KEY": "k", "XAI_API_KEY": "k", "OPENAI_API_KEY": "k"},
        failure_threshold=10**6,  # keep xai in the running: every request exercises fallback
    )
    app, upstream = make_app(manager, providers)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(32) as pool:
            replies = list(pool.map(lambda n: client.get(f"{base}/ask/{n}"), range(320)))
        assert [reply.status_code for reply in replies] == [200] * 320
        served = [reply.json()["platform"] for reply in replies]
        assert set(served) <= {"xai", "openai"}  # groq is out of credits
        health = manager.get_health_status()
    finally:
        server.shutdown()
        serving.join(10)
        upstream.close()
    stats = providers.stats()
    # Every request failover made reached the fake server, and every one is in health:
    for name in ("xai", "openai"):
        assert health[name]["total_requests"] == stats[name]["total"]
        assert served.count(name) == stats[name].get("ok", 0)
    assert health["xai"]["operations"][OP]["failures"] == stats["xai"]["total"] - served.count(
        "xai"
    )
    # Out of credits: cooled down for the TTL after the first answer (a few concurrent
    # requests may have been on their way already).
    assert 1 <= stats["groq"]["total"] <= 32
    assert health["groq"]["cooldown_reason"] == "credit"


@pytest.mark.parametrize(
    ("example", "expected"),
    [("sync_script.py", "answered"), ("sync_worker.py", "stability: rate_limited until")],
)
def test_examples_without_an_event_loop_run(example: str, expected: str) -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "answered" in completed.stdout
    assert expected in completed.stdout
