"""A fleet of separate OS processes sharing breaker state through a real Redis.

Cross-process observation needs real time: every wait is bounded, and workers report what
they saw (with wall-clock times) as JSON lines on stdout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import coredis
import pytest

from failover import PlatformManager, Transient
from failover.redis import RedisSharedState
from failover.testing import Behaviour, FakeProviderServer
from test_redis_support import (
    ENVIRON,
    PRIORITIES,
    delete_namespace,
    finish,
    read_line,
    spawn,
    tell,
    unique_namespace,
)

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

OP = "text_generation"
STARTUP = 30.0  # seconds a worker may take to import and connect on a loaded machine


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    name = unique_namespace()
    yield name
    await delete_namespace(redis_url, name)
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"failover-test:{name}:*")]
        if keys:
            await client.delete(keys)


def local_manager(url: str, namespace: str, **kwargs: Any) -> PlatformManager:
    settings: dict[str, Any] = {
        "failure_threshold": 3,
        "cache_ttl_seconds": 30,
        "environ": ENVIRON,
        "shared_state": RedisSharedState(url, namespace),
    }
    settings.update(kwargs)
    return PlatformManager(PRIORITIES, **settings)


async def test_an_open_pair_is_skipped_by_another_process_within_100ms(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]], anyio_backend: str
) -> None:
    watcher = spawn("watch", url=redis_url, namespace=namespace, backend=anyio_backend)
    workers.append(watcher)
    assert (await read_line(watcher, STARTUP))["event"] == "ready"
    opened_at = 0.0
    failures = 0

    async def failing(spec: Any) -> str:
        nonlocal opened_at, failures
        if spec.name == "openai":
            failures += 1
            opened_at = time.time()  # the third raise opens the pair at once
            raise Transient("503")
        return str(spec.name)

    async with local_manager(redis_url, namespace) as opener:
        for _ in range(3):
            await opener.with_fallback(OP, failing)
        report = await read_line(watcher, 10)
    assert failures == 3
    assert report["event"] == "skipped"
    assert report["answered"] == "groq"
    assert report["calls"] == ["groq"]  # it never tried the open pair
    latency = report["at"] - opened_at
    assert 0 <= latency < 0.1, f"propagation took {latency * 1000:.1f} ms"


async def test_after_the_ttl_two_processes_of_25_callers_send_one_probe(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]], anyio_backend: str
) -> None:
    ttl = 1.0
    for _ in range(2):
        workers.append(
            spawn(
                "crowd",
                url=redis_url,
                namespace=namespace,
                ttl=ttl,
                callers=25,
                hold=0.3,
                backend=anyio_backend,
            )
        )
    for worker in workers:
        assert (await read_line(worker, STARTUP))["event"] == "ready"
    async with local_manager(redis_url, namespace, cache_ttl_seconds=ttl) as opener:
        opener.force_open("openai", OP)
        start_at = time.time() + ttl + 0.3
        for worker in workers:
            tell(worker, start_at=start_at)
        reports = [await read_line(worker, 20) for worker in workers]
    answers = [answer for report in reports for answer in report["answers"]]
    assert len(answers) == 50
    assert answers.count("openai") == 1
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    async with client:
        peak = await client.get(f"failover-test:{namespace}:peak")
        total = await client.get(f"failover-test:{namespace}:total")
    assert (peak, total) == ("1", "1")


async def test_a_dead_probe_holders_lease_expires_and_another_process_probes(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]], anyio_backend: str
) -> None:
    ttl, lease = 1.0, 1.0
    holder = spawn(
        "crowd",
        url=redis_url,
        namespace=namespace,
        ttl=ttl,
        lease=lease,
        callers=1,
        hang=True,
        backend=anyio_backend,
    )
    workers.append(holder)
    assert (await read_line(holder, STARTUP))["event"] == "ready"
    lease_key = f"failover:{namespace}:probe:{{openai:{OP}}}:0"
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    async with client, local_manager(redis_url, namespace, cache_ttl_seconds=ttl) as survivor:
        survivor.force_open("openai", OP)
        tell(holder, start_at=time.time() + ttl + 0.1)
        assert (await read_line(holder, 10))["event"] == "probing"
        holder.kill()
        killed_at = time.time()
        remaining = await client.pttl(lease_key) / 1000
        assert 0 < remaining <= lease
        probed_at = None
        refused = 0

        async def record(spec: Any) -> str:
            nonlocal probed_at
            if spec.name == "openai":
                probed_at = time.time()
            return str(spec.name)

        with anyio.fail_after(lease + 5):
            while probed_at is None:
                answer, _ = await survivor.with_fallback(OP, record)
                refused += answer == "groq"
                await anyio.sleep(0.01)
    assert refused > 0  # the dead holder's lease kept the survivor out at first
    waited = probed_at - killed_at
    assert remaining - 0.05 <= waited <= remaining + 1.5, (waited, remaining)
    assert survivor.get_health_status()["openai"]["operations"][OP]["state"] == "closed"


async def _run_fleet(
    redis_url: str | None,
    namespace: str,
    workers: list[subprocess.Popen[str]],
    backend: str,
    stagger: float,
) -> tuple[int, list[dict[str, Any]]]:
    async with FakeProviderServer(seed=7) as server:
        server.set_behaviour("openai", Behaviour.flaky(1.0, status=503, latency=0.05))
        server.set_behaviour("groq", Behaviour.healthy(latency=0.005))
        fleet = [
            spawn(
                "fleet",
                url=redis_url,
                namespace=namespace,
                server=server.url,
                seconds=1.0,
                think=0.01,
                backend=backend,
            )
            for _ in range(4)
        ]
        workers.extend(fleet)
        for worker in fleet:
            assert (await read_line(worker, STARTUP))["event"] == "ready"
        start_at = time.time() + 0.3
        for index, worker in enumerate(fleet):
            tell(worker, start_at=start_at + index * stagger)
        reports = [await read_line(worker, 30) for worker in fleet]
        total: int = server.stats()["openai"]["total"]
        for worker in fleet:
            finish(worker)  # closes their keep-alive connections before the server stops
    return total, reports


async def test_a_fleet_of_four_spends_threshold_plus_in_flight_on_a_dead_primary(
    redis_url: str, namespace: str, workers: list[subprocess.Popen[str]], anyio_backend: str
) -> None:
    threshold, stagger = 3, 0.25
    alone, alone_reports = await _run_fleet(None, namespace, workers, anyio_backend, stagger)
    shared, shared_reports = await _run_fleet(redis_url, namespace, workers, anyio_backend, stagger)
    for report in alone_reports + shared_reports:
        assert report["failures"] == 0
        assert report["answers"].get("groq", 0) > 0
    # Without sharing every process discovers the outage on its own.
    assert alone == 4 * threshold
    assert [report["primary_attempts"] for report in alone_reports] == [threshold] * 4
    # With sharing: the first process's threshold, plus at most the one call each other
    # process already had in flight when the news arrived.
    assert shared == sum(report["primary_attempts"] for report in shared_reports)
    assert threshold <= shared <= threshold + 3, shared_reports
