"""Shared fleet state from synchronous callers: ``with manager:`` runs the fleet link on a
thread the manager owns; threads without an event loop share breakers, cool-downs and probe
leases with every other process, and with async callers of the same manager.

Cross-process and cross-thread observation needs real time: every wait is bounded.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import anyio
import pytest

from failover import PlatformManager, Transient
from failover.redis import RedisSharedState
from failover.testing import FakeClock
from test_redis_support import (
    OP,
    PrivateRedis,
    manager,
    pair_state,
    read_line,
    spawn,
    tell,
    unique_namespace,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

STARTUP = 30.0  # seconds a worker may take to import and connect on a loaded machine
BACKGROUND = "failover-background"


def background_threads() -> int:
    return sum(thread.name == BACKGROUND for thread in threading.enumerate())


def failing(spec: Any) -> str:
    if spec.name == "openai":
        raise Transient("503 from the provider")
    return str(spec.name)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Block until ``predicate()`` (bounded; fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.002)


# -- the background thread ---------------------------------------------------------------------


def test_with_manager_runs_the_fleet_link_on_its_own_thread_and_joins_it(
    redis_url: str, namespace: str
) -> None:
    m = manager(redis_url, namespace)
    assert background_threads() == 0
    with m:
        assert m.shared_state.connected  # loaded before `with` returned
        assert background_threads() == 1
        assert m.with_fallback_sync(OP, failing)[1].name == "groq"
    assert background_threads() == 0
    assert not m.shared_state.connected
    m.close()  # twice is fine


def test_with_manager_and_redis_down_returns_and_serves_calls_locally() -> None:
    server = PrivateRedis()  # never started: nothing answers on its port
    m = PlatformManager(
        {OP: [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b")]},
        environ={"OPENAI_API_KEY": "sk-a", "GROQ_API_KEY": "gsk-b"},
        shared_state=RedisSharedState(server.url, unique_namespace(), max_backoff=0.2),
    )
    started = time.monotonic()
    with m:
        assert time.monotonic() - started < 5
        assert not m.shared_state.connected
        for _ in range(3):
            assert m.with_fallback_sync(OP, failing)[1].name == "groq"
        assert pair_state(m)["state"] == "open"  # local state carries on
    assert background_threads() == 0


# -- across processes ----------------------------------------------------------------------------


async def test_a_pair_opened_by_sync_callers_is_skipped_by_another_process_within_100ms(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]]
) -> None:
    watcher = spawn("watch", url=redis_url, namespace=namespace, backend="asyncio")
    workers.append(watcher)
    assert (await read_line(watcher, STARTUP))["event"] == "ready"
    opened_at = 0.0

    def failing_and_timed(spec: Any) -> str:
        nonlocal opened_at
        if spec.name == "openai":
            opened_at = time.time()  # the third raise opens the pair at once
        return failing(spec)

    def open_it() -> None:
        with manager(redis_url, namespace) as opener:
            for _ in range(3):
                opener.with_fallback_sync(OP, failing_and_timed)

    await anyio.to_thread.run_sync(open_it)
    report = await read_line(watcher, 10)
    assert report["event"] == "skipped"
    assert report["calls"] == ["groq"]  # it never tried the open pair
    latency = report["at"] - opened_at
    assert 0 <= latency < 0.1, f"propagation took {latency * 1000:.1f} ms"


async def test_after_the_ttl_two_sync_processes_of_25_threads_send_one_probe(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]]
) -> None:
    ttl = 1.0
    for _ in range(2):
        workers.append(
            spawn("sync_crowd", url=redis_url, namespace=namespace, ttl=ttl, callers=25, hold=0.3)
        )
    for worker in workers:
        ready = await read_line(worker, STARTUP)
        assert ready == {"event": "ready", "background": 1}
    async with manager(redis_url, namespace, cache_ttl_seconds=ttl) as opener:
        opener.force_open("openai", OP)
        start_at = time.time() + ttl + 0.3
        for worker in workers:
            tell(worker, start_at=start_at)
        reports = [await read_line(worker, 20) for worker in workers]
    answers = [answer for report in reports for answer in report["answers"]]
    assert len(answers) == 50
    assert answers.count("openai") == 1  # one probe fleet-wide, not one per process
    assert not any(report["in_loop"] for report in reports)  # no caller had an event loop
    for worker in workers:
        tell(worker)
        assert (await read_line(worker, 10)) == {"event": "closed", "background": 0}


# -- sync threads beside async callers of the same manager -------------------------------------


async def test_sync_threads_beside_async_with_take_fleet_leases(
    redis_url: str, namespace: str, anyio_backend: str
) -> None:
    """Manager A runs its fleet link on this test's event loop (``async with``); manager B on
    its own thread (``with``). Twenty threads call each synchronously after the TTL: the
    fleet sends exactly one probe."""
    ttl = 30.0
    a = manager(redis_url, namespace, FakeClock(), cache_ttl_seconds=ttl)
    b = manager(redis_url, namespace, FakeClock(), cache_ttl_seconds=ttl)
    answers: list[str] = []
    lock = threading.Lock()
    probing = threading.Event()
    release = threading.Event()

    def op(spec: Any) -> str:
        if spec.name == "openai":
            probing.set()
            release.wait(10)
        return str(spec.name)

    def call(m: PlatformManager) -> None:
        answer, _ = m.with_fallback_sync(OP, op)
        with lock:
            answers.append(answer)

    async with a:
        with b:
            b.force_open("openai", OP)
            await wait_for(lambda: pair_state(a)["state"] == "open", 5, "A to hear B's open")
            a.clock.advance(ttl + 1)
            b.clock.advance(ttl + 1)
            threads = [threading.Thread(target=call, args=(m,)) for m in (a, b) for _ in range(20)]
            for thread in threads:
                thread.start()
            await anyio.to_thread.run_sync(probing.wait, 10)
            await wait_for(lambda: len(answers) == 39, 10, "39 answers from the fallback")
            release.set()
            for thread in threads:
                await anyio.to_thread.run_sync(thread.join, 10)
    assert sorted(answers) == ["groq"] * 39 + ["openai"]
    assert background_threads() == 0


# -- the hot path ------------------------------------------------------------------------------


def _commandstats(server: PrivateRedis) -> dict[str, int]:
    out = subprocess.run(
        ["redis-cli", "-p", str(server.port), "info", "commandstats"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    calls: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line.split(":", 1)
            calls[name.removeprefix("cmdstat_")] = int(fields.split(",")[0].split("=")[1])
    return calls


def test_sync_calls_make_no_redis_round_trip_on_the_happy_path() -> None:
    server = PrivateRedis()
    server.start()
    try:
        m = manager(server.url, unique_namespace())
        with m:
            before = _commandstats(server)

            def calls() -> None:
                for _ in range(100):
                    m.with_fallback_sync(OP, lambda spec: spec.name)

            threads = [threading.Thread(target=calls) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            after = _commandstats(server)
        assert pair_state(m)["total_requests"] == 400
        changed = {name for name in after if after[name] != before.get(name)}
        assert changed == {"info"}, changed  # only our own INFO: nothing from 400 calls
    finally:
        server.kill()


def test_a_sync_failure_cooldown_reaches_the_fleet(redis_url: str, namespace: str) -> None:
    """A credit error from a sync caller cools the platform in another manager too."""
    from failover import CreditExhausted

    def out_of_credit(spec: Any) -> str:
        if spec.name == "openai":
            raise CreditExhausted("insufficient_quota")
        return str(spec.name)

    with manager(redis_url, namespace) as a, manager(redis_url, namespace) as b:
        assert a.with_fallback_sync(OP, out_of_credit)[1].name == "groq"

        def cooled() -> bool:
            return bool(b.get_health_status()["openai"]["cooldown_until"])

        wait_until(cooled, 5, "B to hear A's cool-down")
        assert b.get_platform_sync(OP).name == "groq"


def test_a_manager_with_shared_state_never_entered_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without ``with``/``async with`` the fleet link never runs: the first half-open probe
    logs one warning (and the process decides on its own state)."""
    import logging

    clock = FakeClock()
    m = PlatformManager(
        {OP: [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b")]},
        environ={"OPENAI_API_KEY": "sk-a", "GROQ_API_KEY": "gsk-b"},
        clock=clock,
        cache_ttl_seconds=30,
        shared_state=RedisSharedState(PrivateRedis().url, unique_namespace()),
    )
    with caplog.at_level(logging.WARNING, logger="failover"):
        for _ in range(3):
            m.with_fallback_sync(OP, failing)
        clock.advance(31)
        for _ in range(2):
            clock.advance(31)
            m.with_fallback_sync(OP, failing)
    warned = [r for r in caplog.records if "was not entered" in r.getMessage()]
    assert len(warned) == 1
