"""The fleet view: processes publish their snapshots to Redis; the fleet dashboard, ``failover
dashboard --redis`` and ``failover top`` read them."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from failover import PlatformManager, PlatformSpec
from failover.cli import main
from failover.web import create_fleet_app, publish_health, serving
from failover.web._fleet import _client, fleet_snapshot, key_prefix, read_fleet
from test_redis_support import delete_namespace, require_redis, unique_namespace

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

PRIORITIES = {"text_generation": [("groq", "llama"), ("openai", "gpt-4o-mini")]}
KEYS = {"GROQ_API_KEY": "gsk-test-0123456789", "OPENAI_API_KEY": "sk-test-0123456789"}


async def ok(platform: PlatformSpec) -> str:
    return platform.name


async def test_two_processes_publish_and_the_fleet_view_merges_them() -> None:
    url, namespace = require_redis(), unique_namespace()
    first = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    second = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    for _ in range(3):
        await first.with_fallback("text_generation", ok)
    await second.with_fallback("text_generation", ok)
    second.isolate("groq", "text_generation")
    found: dict[str, Any] = {}
    try:
        async with anyio.create_task_group() as tasks:
            for name, manager in (("host-a:1", first), ("host-b:2", second)):
                await tasks.start(
                    partial(publish_health, manager, url, namespace, 0.2, process=name)
                )

            async def read() -> None:
                async with _client(url) as client:
                    found.update(await read_fleet(client, namespace))

            deadline = time.monotonic() + 10
            while len(found) < 2 and time.monotonic() < deadline:
                await read()
                await anyio.sleep(0.05)
            app = create_fleet_app(url, namespace, refresh=0.05)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://d") as http:
                health = await http.get("/health")
                state = (await http.get("/api/state")).json()
            tasks.cancel_scope.cancel()
    finally:
        await delete_namespace_keys(url, namespace)
    assert sorted(found) == ["host-a:1", "host-b:2"]
    merged = state["snapshot"]
    groq = merged["operations"][0]["platforms"][0]
    assert (groq["platform"], groq["requests"], groq["state"], groq["processes"]) == (
        "groq",
        4,
        "open",
        2,
    )
    assert merged["processes"] == ["host-a:1", "host-b:2"]
    assert health.status_code == 200  # openai is usable
    only_a = fleet_snapshot(found, "host-a:1")["operations"][0]["platforms"][0]
    assert (only_a["requests"], only_a["state"]) == (3, "closed")


async def test_the_fleet_health_is_503_when_no_process_publishes() -> None:
    url, namespace = require_redis(), unique_namespace()
    app = create_fleet_app(url, namespace)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://d"
    ) as http:
        response = await http.get("/health")
    assert response.status_code == 503
    assert response.json()["processes"] == []


async def delete_namespace_keys(url: str, namespace: str) -> None:
    async with _client(url) as client:
        keys = [key async for key in client.scan_iter(match=key_prefix(namespace) + "*")]
        if keys:
            await client.delete(keys)
    await delete_namespace(url, namespace)


async def test_failover_top_prints_one_frame_from_a_dashboard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from failover.web import create_app

    manager = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    manager.isolate("groq", "text_generation")
    async with serving(create_app(manager), "127.0.0.1", 0) as url:
        code = await anyio.to_thread.run_sync(main, ["top", "--url", url, "--once"])
    out = capsys.readouterr().out
    assert code == 0
    assert "text_generation" in out
    assert "groq" in out
    assert "open" in out
    assert "openai" in out


def test_failover_dashboard_serves_the_fleet_from_redis() -> None:
    url = require_redis()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "dashboard",
            "--redis",
            url,
            "--namespace",
            unique_namespace(),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        found = re.search(r"dashboard: (http://\S+?)/ ", line)
        assert found, line
        response = httpx.get(found.group(1) + "/health", timeout=10)
        assert response.status_code == 503  # nobody publishes in a fresh namespace
        assert response.json()["processes"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
