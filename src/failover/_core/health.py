"""Health counters per pair: requests, failures, response times (avg and p95), cost.

Memory per pair is bounded whatever the traffic: response times go into a fixed-size ring
of C doubles (``array('d')``: 8 bytes a time, no float object kept alive) used for the p95;
the average is a running sum. Recording is O(1) and allocation-light.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Final, NamedTuple

#: How many recent response times a pair keeps for its p95.
RESERVOIR_SIZE: Final = 128


class PairStats:
    """Counters of one (platform, operation) pair. Times are monotonic clock readings."""

    __slots__ = (
        "_ring",
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
    )

    def __init__(self) -> None:
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
        #: The last RESERVOIR_SIZE timed outcomes; ``timed_count`` is its write cursor (the
        #: ring holds ``min(timed_count, RESERVOIR_SIZE)`` entries).
        self._ring: array[float] = array("d")

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
        return percentile(self._ring, 0.95)

    def record_time(self, seconds: float) -> None:
        count = self.timed_count
        self.timed_sum += seconds
        self.timed_count = count + 1
        if count < RESERVOIR_SIZE:
            self._ring.append(seconds)
        else:
            self._ring[count % RESERVOIR_SIZE] = seconds

    def record_success(self, now: float, seconds: float | None, cost: float) -> None:
        self.successes += 1
        self.last_success = now
        if cost:
            self.cost += cost
        if seconds is not None:
            # record_time, inlined: this runs on every successful call.
            count = self.timed_count
            self.timed_sum += seconds
            self.timed_count = count + 1
            if count < RESERVOIR_SIZE:
                self._ring.append(seconds)
            else:
                self._ring[count % RESERVOIR_SIZE] = seconds

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
        return list(self._ring)


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
