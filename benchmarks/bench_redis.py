"""What sharing breaker state through Redis costs a successful call, and how fast it spreads.

Run: ``.venv/bin/python benchmarks/bench_redis.py`` (``--quick`` for a short run, ``--backend
trio`` or ``both``, ``--redis URL``; needs a Redis, by default ``redis://127.0.0.1:6379/0``).

1. Happy-path overhead. Three variants in the same process and event loop, interleaved round
   by round with the order rotating: a bare await; ``with_fallback`` on an in-memory manager;
   ``with_fallback`` on a manager sharing state through Redis (inside ``async with``, its
   listener running). Figures are the median over rounds of the mean ns per call; the ratio
   compares the two managers' whole per-call times.

2. Open-state propagation across processes on loopback. A second OS process listens with its
   own manager; this process opens a pair (``force_open``) every few milliseconds and notes the
   wall-clock time; the listener notes when it applied each open. Latency = applied - opened:
   the queue hop to the background writer, ``SET PX`` + ``PUBLISH``, pub/sub delivery, decoding
   and applying. p50/p90/p99/max over the samples.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from failover import PlatformManager, PlatformSpec
from failover.redis import RedisSharedState

OP = "text_generation"
PRIORITIES = {OP: [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]}
SPEC = PlatformSpec("alpha", "a-1")


async def operation(platform: PlatformSpec) -> str:
    return "ok"


async def time_round(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        await call()
    return (clock() - started) / calls


async def measure_overhead(url: str, calls: int, rounds: int) -> dict[str, float]:
    """Median ns per call: bare await, in-memory manager, Redis-sharing manager."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    local = PlatformManager(PRIORITIES, environ={})
    shared = PlatformManager(PRIORITIES, environ={}, shared_state=RedisSharedState(url, namespace))
    async with local, shared:
        if not shared.shared_state.connected:
            raise SystemExit(f"no Redis at {url}: start one or pass --redis")
        local_call, shared_call = local.with_fallback, shared.with_fallback

        async def bare() -> str:
            return await operation(SPEC)

        async def in_memory() -> Any:
            return await local_call(OP, operation)

        async def redis_shared() -> Any:
            return await shared_call(OP, operation)

        timed = {"bare await": bare, "in-memory": in_memory, "redis-shared": redis_shared}
        samples: dict[str, list[float]] = {name: [] for name in timed}
        for call in timed.values():
            await time_round(call, max(calls // 10, 100))
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            names = list(timed)
            for round_number in range(rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(await time_round(timed[name], calls))
                gc.collect()
        finally:
            if gc_was_enabled:
                gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def report_overhead(backend: str, results: dict[str, float], calls: int, rounds: int) -> None:
    bare = results["bare await"]
    print(f"{backend}: happy path, median of {rounds} rounds x {calls} calls, ns per call")
    print(f"  {'variant':<14} {'per call':>9} {'overhead':>9}")
    for name, per_call in results.items():
        print(f"  {name:<14} {per_call:9.0f} {per_call - bare:9.0f}")
    ratio = results["redis-shared"] / results["in-memory"]
    print(f"  redis-shared / in-memory: {ratio:.3f}x (aim <= 1.1x)")


# -- propagation ------------------------------------------------------------------------------


async def listen(url: str, namespace: str, samples: int) -> None:
    """The listening process: note the wall time each remote open is applied."""
    manager = PlatformManager(PRIORITIES, environ={}, shared_state=RedisSharedState(url, namespace))
    shared = manager.shared_state
    applied: list[float] = []
    receive = shared._receive
    pair = manager._pair("alpha", OP)

    def timed_receive(data: object) -> None:
        was_open = pair.breaker.state.value == "open"
        receive(data)
        if not was_open and pair.breaker.state.value == "open":
            applied.append(time.time())

    shared._receive = timed_receive
    async with manager:
        print(json.dumps({"ready": True}), flush=True)
        with anyio.move_on_after(60):
            while len(applied) < samples:
                await anyio.sleep(0.05)
    print(json.dumps({"applied": applied}), flush=True)


def start_listener(url: str, namespace: str, samples: int, backend: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--listen", url, namespace, str(samples), backend],
        stdout=subprocess.PIPE,
        text=True,
    )


async def measure_propagation(url: str, backend: str, samples: int) -> list[float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    listener = start_listener(url, namespace, samples, backend)
    assert listener.stdout is not None
    stdout = listener.stdout
    try:
        line = await anyio.to_thread.run_sync(stdout.readline)
        assert json.loads(line)["ready"]
        manager = PlatformManager(
            PRIORITIES, environ={}, shared_state=RedisSharedState(url, namespace)
        )
        opened: list[float] = []
        async with manager:
            for _ in range(samples):
                opened.append(time.time())
                manager.force_open("alpha", OP, 60)
                await anyio.sleep(0.01)
                manager.reset("alpha", OP)
                await anyio.sleep(0.01)
        line = await anyio.to_thread.run_sync(stdout.readline)
        applied = json.loads(line)["applied"]
    finally:
        listener.kill()
        listener.wait()
        stdout.close()
    if len(applied) != len(opened):
        raise SystemExit(f"listener applied {len(applied)} of {len(opened)} opens")
    return [(a - o) * 1000 for a, o in zip(applied, opened, strict=True)]


def report_propagation(backend: str, latencies_ms: list[float]) -> None:
    ordered = sorted(latencies_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    print(
        f"{backend}: open-state propagation to another process, {len(ordered)} samples, ms: "
        f"p50 {pct(50):.2f}  p90 {pct(90):.2f}  p99 {pct(99):.2f}  max {ordered[-1]:.2f}"
    )


def main() -> int:
    # The propagation run opens a pair hundreds of times; those warnings are not the point.
    logging.getLogger("failover").setLevel(logging.ERROR)
    if len(sys.argv) > 1 and sys.argv[1] == "--listen":
        url, namespace, samples, backend = sys.argv[2:6]
        anyio.run(listen, url, namespace, int(samples), backend=backend)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, rounds and samples")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", metavar="URL")
    parser.add_argument("--calls", type=int, default=None, help="calls per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant")
    parser.add_argument("--samples", type=int, default=None, help="propagation samples")
    args = parser.parse_args()
    calls = args.calls or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (5 if args.quick else 15)
    samples = args.samples or (50 if args.quick else 300)
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print(f"Python {sys.version.split()[0]}, Redis at {args.redis}")
    for backend in backends:
        results = anyio.run(measure_overhead, args.redis, calls, rounds, backend=backend)
        report_overhead(backend, results, calls, rounds)
        latencies = anyio.run(measure_propagation, args.redis, backend, samples, backend=backend)
        report_propagation(backend, latencies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
