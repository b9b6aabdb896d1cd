"""What the policies cost per call.

Run: ``.venv/bin/python benchmarks/bench_policies.py`` (``--quick`` for a short run).

* ``happy path``: one ``with_fallback`` call that succeeds on the first platform, with no
  hedging, bulkhead, chaos or ordering strategy configured. This is the number that must not
  move when the policies exist but are not configured.
* ``bulkhead slot``: the same call with a ``Bulkhead`` on the platform (a slot taken and
  given back per attempt); the difference to the happy path is the cost of a slot.
* ``latency strategy``: the same call with ``ordering=LatencyOrder()`` (EWMA fed by every
  attempt); the difference is the strategy's cost per call.
* ``chaos (rates 0)``: chaos switched on with every rate at 0: the cost of rolling the dice.

Each figure is the best of many batches (microseconds per call, asyncio backend, no tracer
installed); the scenarios take turns batch by batch, so background load inflates them alike.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio

import failover
from failover import PlatformManager, PlatformSpec

OP = "text_generation"
PRIORITIES = {OP: [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]}


def answer(platform: PlatformSpec) -> str:
    return "ok"


async def batch(manager: PlatformManager, calls: int) -> float:
    """Microseconds per ``with_fallback`` call over one batch of ``calls``."""
    with_fallback = manager.with_fallback
    started = time.perf_counter()
    for _ in range(calls):
        await with_fallback(OP, answer)
    return (time.perf_counter() - started) / calls * 1e6


def scenarios() -> dict[str, Callable[[], PlatformManager]]:
    """Manager factories by scenario; policy scenarios only where the policies exist."""
    found: dict[str, Callable[[], PlatformManager]] = {
        "happy path": lambda: PlatformManager(PRIORITIES, environ={}),
    }
    bulkhead = getattr(failover, "Bulkhead", None)
    latency = getattr(failover, "LatencyOrder", None)
    chaos = getattr(failover, "Chaos", None)
    policy = failover.Policy
    if bulkhead is not None:
        found["bulkhead slot"] = lambda: PlatformManager(
            PRIORITIES,
            environ={},
            policy=policy(bulkhead=bulkhead(100)),  # type: ignore[call-arg]
        )
    if latency is not None:
        found["latency strategy"] = lambda: PlatformManager(
            PRIORITIES, environ={}, ordering=latency()
        )
    if chaos is not None:
        found["chaos (rates 0)"] = lambda: PlatformManager(
            PRIORITIES, environ={}, chaos=chaos(fault_rate=0.0, seed=1)
        )
    return found


async def main(calls: int, rounds: int) -> dict[str, float]:
    """Best batch per scenario; scenarios take turns so background load hits them alike."""
    managers = {name: factory() for name, factory in scenarios().items()}
    for manager in managers.values():
        await batch(manager, calls // 10)  # warm up
    best = dict.fromkeys(managers, float("inf"))
    for _ in range(rounds):
        for name, manager in managers.items():
            best[name] = min(best[name], await batch(manager, calls))
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=40, help="batches per scenario")
    options = parser.parse_args()
    calls, rounds = (500, 3) if options.quick else (options.calls, options.rounds)
    logging.getLogger("failover").setLevel(logging.ERROR)  # "Chaos enabled" is a warning
    results: dict[str, Any] = anyio.run(main, calls, rounds)
    base = results["happy path"]
    print(f"failover {failover.__version__}, Python {sys.version.split()[0]}")
    for name, micros in results.items():
        extra = "" if name == "happy path" else f"  (+{micros - base:.2f} µs)"
        print(f"{name:<18} {micros:7.2f} µs/call{extra}")
