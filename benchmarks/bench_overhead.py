"""What failover adds to one successful call, next to a bare await and pybreaker.

Run: ``.venv/bin/python benchmarks/bench_overhead.py`` (``--quick`` for a short run,
``--backend trio`` or ``--backend both`` for trio).

All four variants run in the same process and event loop, interleaved round by round (the
order rotating each round) so a noisy neighbour hurts them alike:

* ``bare await``: ``await op(spec)``, the operation alone (the floor);
* ``pybreaker calling()``: ``with cb.calling(): await op(spec)``, pybreaker's guard for code
  it cannot call itself (the reference the issue sets: failover should cost no more);
* ``with_fallback``: ``await manager.with_fallback(op_type, op)``: admission, health
  recording, no retry, no timeout, no tracer installed (the defaults);
* ``@fallback``: the decorated function, which adds one more call layer.

Each figure is the median over rounds of the mean time per call in a round (nanoseconds,
``time.perf_counter_ns``). "overhead" subtracts the bare await; the ratio compares that
overhead with pybreaker ``calling()``'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pybreaker

from _harness import interleave
from failover import PlatformManager, PlatformSpec, fallback

OP = "text_generation"
SPEC = PlatformSpec("alpha", "a-1")


async def operation(platform: PlatformSpec) -> str:
    return "ok"


def variants() -> dict[str, Callable[[], Awaitable[Any]]]:
    """The calls to time, by name; each returns a fresh awaitable per call."""
    manager = PlatformManager(
        {OP: [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]}, environ={}
    )
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=300)
    with_fallback = manager.with_fallback

    @fallback(OP, manager=manager)
    async def decorated(platform: PlatformSpec) -> str:
        return "ok"

    async def bare() -> str:
        return await operation(SPEC)

    async def pybreaker_calling() -> str:
        with breaker.calling():
            return await operation(SPEC)

    async def failover_with_fallback() -> tuple[str, PlatformSpec]:
        return await with_fallback(OP, operation)

    async def failover_decorator() -> str:
        return await decorated()

    return {
        "bare await": bare,
        "pybreaker calling()": pybreaker_calling,
        "failover with_fallback": failover_with_fallback,
        "failover @fallback": failover_decorator,
    }


async def measure(calls: int, rounds: int) -> dict[str, float]:
    """Median ns per call of every variant, rounds interleaved (``_harness.interleave``)."""
    samples = await interleave(variants(), rounds, calls, warmup=max(calls // 10, 100))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(backend: str, results: dict[str, float], calls: int, rounds: int) -> None:
    bare = results["bare await"]
    reference = results["pybreaker calling()"] - bare
    print(f"{backend}: median of {rounds} rounds x {calls} calls, ns per call")
    print(f"  {'variant':<24} {'per call':>9} {'overhead':>9} {'vs calling()':>13}")
    for name, per_call in results.items():
        overhead = per_call - bare
        ratio = "" if name == "bare await" else f"{overhead / reference:12.2f}x"
        print(f"  {name:<24} {per_call:9.0f} {overhead:9.0f} {ratio:>13}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    parser.add_argument("--calls", type=int, default=None, help="calls per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant")
    args = parser.parse_args()
    calls = args.calls or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (5 if args.quick else 15)
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print(f"Python {sys.version.split()[0]}, pybreaker {_version('pybreaker')}")
    for backend in backends:
        results = anyio.run(measure, calls, rounds, backend=backend)
        report(backend, results, calls, rounds)
    return 0


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    sys.exit(main())
