"""Timing helpers shared by the benchmarks: interleaved rounds, robust summaries, environment.

Machines here are noisy (a shared 2-core VM), so every benchmark follows three rules:

* variants run in the same process and event loop, **interleaved round by round**, the order
  rotating each round, so background load hits them alike;
* a figure is the **median over rounds**, reported with its spread (interquartile range and
  min–max), never a single run;
* comparisons are **ratios computed within a round** (each round times every variant), then
  summarised over rounds the same way: absolute times drift, ratios hold.

Per-call cost is read from the thread's CPU clock (``time.thread_time_ns``) by default: time
the thread spends descheduled by a noisy neighbour is not counted, which makes the figures
far steadier than wall time; the wall clock is recorded beside it. Cases whose point is
waiting (simulated latency, timeouts) use wall time.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

#: ``clock() -> int`` nanoseconds.
NanoClock = Callable[[], int]
AsyncCall = Callable[[], Awaitable[Any]]


async def time_round(call: AsyncCall, calls: int, clock: NanoClock = time.perf_counter_ns) -> float:
    """Mean nanoseconds per call over ``calls`` sequential awaits of ``call()``."""
    started = clock()
    for _ in range(calls):
        await call()
    return (clock() - started) / calls


@dataclass(frozen=True)
class Spread:
    """A figure over repeated runs: median, quartiles, extremes and the sample count."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        if not ordered:
            raise ValueError("no samples")
        if len(ordered) >= 2:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))

    def scaled(self, factor: float) -> Spread:
        return Spread(
            self.median * factor,
            self.q1 * factor,
            self.q3 * factor,
            self.low * factor,
            self.high * factor,
            self.runs,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "q1": self.q1,
            "q3": self.q3,
            "min": self.low,
            "max": self.high,
            "runs": self.runs,
        }

    def text(self, digits: int = 0, unit: str = "") -> str:
        """``median [q1–q3]`` for tables."""
        return f"{self.median:.{digits}f}{unit} [{self.q1:.{digits}f}–{self.q3:.{digits}f}]"


async def interleave(
    timed: Mapping[str, AsyncCall],
    rounds: int,
    calls: int | Mapping[str, int],
    clock: NanoClock = time.perf_counter_ns,
    warmup: int | None = None,
    between_rounds: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Ns per call of every variant, one sample per round, rounds interleaved.

    ``calls`` may differ per variant (slow variants need fewer calls for the same batch
    time). The garbage collector is off while a batch runs and collects between rounds, so
    a collection never lands inside one variant's batch only. ``between_rounds`` runs after
    each round (e.g. to clear an in-memory exporter).
    """
    per_variant = (
        dict.fromkeys(timed, calls) if isinstance(calls, int) else {n: calls[n] for n in timed}
    )
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for name, call in timed.items():  # warm up caches and lazy set-up
        await time_round(call, warmup or max(per_variant[name] // 5, 20), clock)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        names = list(timed)
        for round_number in range(rounds):
            # Rotate the order each round, so no variant always runs right after another.
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(await time_round(timed[name], per_variant[name], clock))
            if between_rounds is not None:
                between_rounds()
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def calibrate(call_ns: float, target_ms: float = 4.0, low: int = 50, high: int = 5_000) -> int:
    """Calls per batch so one batch takes about ``target_ms`` of CPU."""
    if call_ns <= 0:
        return high
    return max(low, min(high, int(target_ms * 1e6 / call_ns)))


async def estimate(call: AsyncCall, clock: NanoClock = time.thread_time_ns) -> float:
    """A rough ns-per-call figure, to size batches."""
    await time_round(call, 50, clock)
    return min([await time_round(call, 200, clock) for _ in range(3)])


def ratios(
    samples: Mapping[str, Sequence[float]], numerator: str, denominator: str, floor: str | None
) -> list[float]:
    """Per-round ratio of ``numerator``'s to ``denominator``'s cost (less ``floor``'s)."""
    values = []
    for index, top in enumerate(samples[numerator]):
        base = samples[floor][index] if floor is not None else 0.0
        bottom = samples[denominator][index] - base
        if bottom > 0:
            values.append((top - base) / bottom)
    return values


def versions(distributions: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``distributions`` (``"not installed"`` for the missing)."""
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load: list[float] | None = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
    }
