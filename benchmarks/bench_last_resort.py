"""What a call costs while every platform of its operation is open and nothing can be probed.

Compares ``when_all_unavailable="fail"`` with ``"probe_soonest"`` when every pair already has
its probe out (the state of all but the first few calls during an outage): both raise
``AllPlatformsFailed`` without calling anything; the difference is the last resort's selection.

Run: ``.venv/bin/python benchmarks/bench_last_resort.py``
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time

import anyio

from failover import AllPlatformsFailed, PlatformManager, PlatformSpec
from failover.testing import FakeClock

OPERATION = "text_generation"
SPECS = [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1"), PlatformSpec("gamma", "g-1")]
CALLS = 5_000
ROUNDS = 5


async def operation(platform: PlatformSpec) -> str:
    return "ok"


async def refused_call_ns(mode: str) -> float:
    manager = PlatformManager(
        {OPERATION: SPECS}, clock=FakeClock(), environ={}, when_all_unavailable=mode
    )
    for spec in SPECS:
        manager.force_open(spec, OPERATION, 300)
        if mode != "fail":
            manager._pairs[(spec.name, OPERATION)].breaker.admit_early_probe()
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(CALLS):
            with contextlib.suppress(AllPlatformsFailed):
                await manager.with_fallback(OPERATION, operation)
        rounds.append((time.perf_counter_ns() - started) / CALLS)
    return statistics.median(rounds)


async def main() -> None:
    logging.getLogger("failover").setLevel(logging.ERROR)
    print(f"median of {ROUNDS} rounds x {CALLS} calls, 3 platforms all open, ns per call")
    for mode in ("fail", "probe_soonest"):
        print(f"  {mode:14s} {await refused_call_ns(mode):8.0f}")


if __name__ == "__main__":
    anyio.run(main)
