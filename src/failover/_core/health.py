"""Health counters per pair: requests, failures, response times (avg and p95), cost.

Memory per pair is bounded whatever the traffic: the last response times are kept as C
doubles (``array('d')``: 8 bytes a time, no float object kept alive) for the p95; the average
is a running sum. Recording is O(1) and allocation-light.

The happy path notes a success without a lock, from any number of threads: it appends the
response time to the array (one C call, atomic under the GIL) and sets ``last_success``.
:meth:`PairStats.settle`, under the engine's lock, counts the noted successes into the
counters in one batch and drops the times that fell out of the last ``RESERVOIR_SIZE``;
whoever reads the counters settles first, so what they read is exact. At most
``SETTLE_AT - RESERVOIR_SIZE`` noted successes wait for it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Final, NamedTuple

#: How many recent response times a pair keeps for its p95.
RESERVOIR_SIZE: Final = 128
#: Past this many entries in ``PairStats.times`` (the kept times and the noted ones after
#: them), the thread noting a success settles them.
SETTLE_AT: Final = RESERVOIR_SIZE + 128


class PairStats:
    """Counters of one (platform, operation) pair. Times are monotonic clock readings."""

    __slots__ = (
        "cost",
        "failures",
        "last_error_kind",
        "last_failure",
        "last_request_fault",
        "last_success",
        "request_faults",
        "successes",
        "timed_count",
        "timed_sum",
        "times",
        "unit_cost",
    )

    def __init__(self, unit_cost: float = 0.0) -> None:
        self.successes = 0
        self.failures = 0
        self.timed_sum = 0.0
        self.timed_count = 0
        self.cost = 0.0
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_error_kind: str | None = None
        #: The request's own faults (bad request, content policy, context window, not found):
        #: not failures of the platform, but a pair that keeps getting them falls through.
        self.request_faults = 0
        self.last_request_fault: str | None = None
        #: The cost a success adds (the platform's estimate) when it is settled.
        self.unit_cost = unit_cost
        #: The last ``min(timed_count, RESERVOIR_SIZE)`` timed outcomes, oldest first, then
        #: the response times of successes noted and not yet settled.
        self.times: array[float] = array("d")

    @property
    def total_requests(self) -> int:
        return self.successes + self.failures

    @property
    def failure_rate(self) -> float:
        total = self.successes + self.failures
        return self.failures / total if total else 0.0

    @property
    def avg_response_time(self) -> float | None:
        return self.timed_sum / self.timed_count if self.timed_count else None

    @property
    def p95_response_time(self) -> float | None:
        return percentile(self.recent_times(), 0.95)

    def note(self, now: float, seconds: float) -> bool:
        """A success noted without a lock (any number of threads at once); ``True`` when the
        caller should :meth:`settle` now, under the lock. (The synchronous driver inlines it.)"""
        self.last_success = now
        times = self.times
        times.append(seconds)
        return len(times) > SETTLE_AT

    def settle(self) -> None:
        """Count the successes noted since the last settle (under the engine's lock: any
        number of threads may go on noting meanwhile; what they append waits for the next)."""
        times = self.times
        count = self.timed_count
        kept = count if count < RESERVOIR_SIZE else RESERVOIR_SIZE
        noted = len(times) - kept
        if noted <= 0:
            return
        total = sum(times[kept : kept + noted])
        over = kept + noted - RESERVOIR_SIZE
        if over > 0:
            del times[:over]  # the oldest; appends meanwhile land after the noted ones
        self.successes += noted
        self.timed_count = count + noted
        self.timed_sum += total
        if self.unit_cost:
            self.cost += noted * self.unit_cost

    def record_time(self, seconds: float) -> None:
        """A timed outcome booked directly (under the engine's lock)."""
        times = self.times
        count = self.timed_count
        # Before the noted successes (a thread may be appending one now): they stay noted.
        if count < RESERVOIR_SIZE:
            times.insert(count, seconds)
        else:
            times.insert(RESERVOIR_SIZE, seconds)
            del times[0]
        self.timed_sum += seconds
        self.timed_count = count + 1

    def record_success(self, now: float, seconds: float | None) -> None:
        self.successes += 1
        self.last_success = now
        if self.unit_cost:
            self.cost += self.unit_cost
        if seconds is not None:
            self.record_time(seconds)

    def record_failure(self, now: float, seconds: float | None, kind: str) -> None:
        self.failures += 1
        self.last_failure = now
        self.last_error_kind = kind
        if seconds is not None:
            self.record_time(seconds)

    def record_request_fault(self, reason: str | None) -> None:
        self.request_faults += 1
        self.last_request_fault = reason or "bad_request"

    def recent_times(self) -> list[float]:
        """The last settled response times, oldest first (:meth:`settle` first)."""
        count = self.timed_count
        return self.times[: count if count < RESERVOIR_SIZE else RESERVOIR_SIZE].tolist()


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


class Totals(NamedTuple):
    """A platform's view: its pairs' counters added up."""

    total_requests: int
    failures: int
    failure_rate: float
    avg_response_time: float | None
    p95_response_time: float | None
    cost: float
    last_success: float | None
    last_failure: float | None


def aggregate(stats: Iterable[PairStats]) -> Totals:
    """Totals across several pairs (a platform's view)."""
    failures = successes = timed_count = 0
    timed_sum = cost = 0.0
    last_success: float | None = None
    last_failure: float | None = None
    times: list[float] = []
    for item in stats:
        successes += item.successes
        failures += item.failures
        timed_sum += item.timed_sum
        timed_count += item.timed_count
        cost += item.cost
        last_success = _latest(last_success, item.last_success)
        last_failure = _latest(last_failure, item.last_failure)
        times.extend(item.recent_times())
    total = successes + failures
    return Totals(
        total_requests=total,
        failures=failures,
        failure_rate=failures / total if total else 0.0,
        avg_response_time=timed_sum / timed_count if timed_count else None,
        p95_response_time=percentile(times, 0.95),
        cost=cost,
        last_success=last_success,
        last_failure=last_failure,
    )


def _latest(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current
