"""Successes noted lock-free on the happy path, settled by whoever reads: exact counters.

The fast paths (both drivers) note a success by appending its response time to the pair's
``PairStats.times`` without a lock; :meth:`PairStats.settle` counts them in, under the
engine's lock. These tests hold the result to a plain model, and the engine's health to the
calls that were made, with threads switching as often as the interpreter allows.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover import PlatformManager, PlatformSpec, Transient
from failover._core.health import RESERVOIR_SIZE, SETTLE_AT, PairStats, percentile

OP = "text_generation"
UNIT_COST = 0.25


def make(**kwargs: Any) -> PlatformManager:
    # An estimated cost per success, to see each success counted once through settle.
    priorities = {
        OP: [
            PlatformSpec("alpha", "a-1", estimated_cost=UNIT_COST),
            PlatformSpec("beta", "b-1", estimated_cost=UNIT_COST),
        ]
    }
    return PlatformManager(priorities, environ={}, **kwargs)


@contextmanager
def switching_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


# -- PairStats against a model ---------------------------------------------------------------

#: note(seconds): the fast path's lock-free success; success/failure(seconds or None): booked
#: directly under the lock; settle: a reader.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("note"), st.integers(1, 10_000)),
        st.tuples(st.just("success"), st.one_of(st.none(), st.integers(1, 10_000))),
        st.tuples(st.just("failure"), st.one_of(st.none(), st.integers(1, 10_000))),
        st.tuples(st.just("settle"), st.none()),
    ),
    max_size=400,
)


class Model:
    """What the counters mean: every outcome counted, the last RESERVOIR_SIZE times kept."""

    def __init__(self) -> None:
        self.successes = self.failures = 0
        self.kept: list[float] = []  # every settled time, in the order it was counted
        self.timed_sum = 0.0
        self.pending: list[float] = []
        self.last_success: float | None = None

    def settle(self) -> None:
        self.successes += len(self.pending)
        self.kept.extend(self.pending)
        self.timed_sum += sum(self.pending)
        self.pending.clear()


def note(stats: PairStats, now: float, seconds: float) -> None:
    """The fast paths' noting (the engine settles under its lock)."""
    if stats.note(now, seconds):
        stats.settle()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2 * RESERVOIR_SIZE), steps)
def test_settled_counters_match_the_model(
    filled: int, script: list[tuple[str, int | None]]
) -> None:
    stats, model = PairStats(UNIT_COST), Model()
    # Start with the ring part-filled, full or wrapped: each case moves times differently.
    script = [("success", 1 + index % 7) for index in range(filled)] + script
    for now, (step, value) in enumerate(script):
        seconds = None if value is None else value / 1000
        if step == "note":
            assert seconds is not None
            note(stats, now, seconds)
            model.pending.append(seconds)
            model.last_success = now
            # The noter settles past SETTLE_AT entries; otherwise a reader does.
            if len(model.pending) + min(len(model.kept), RESERVOIR_SIZE) > SETTLE_AT:
                model.settle()
        elif step == "success":
            stats.record_success(now, seconds)
            model.successes += 1
            model.last_success = now
            if seconds is not None:
                model.kept.append(seconds)
                model.timed_sum += seconds
        elif step == "failure":
            stats.record_failure(now, seconds, "transient")
            model.failures += 1
            if seconds is not None:
                model.kept.append(seconds)
                model.timed_sum += seconds
        else:
            stats.settle()
            model.settle()
        # Never more than the ring and one batch of noted times, whatever the traffic.
        assert len(stats.times) <= SETTLE_AT
    stats.settle()
    model.settle()
    assert stats.successes == model.successes
    assert stats.failures == model.failures
    assert stats.timed_count == len(model.kept)
    assert stats.timed_sum == pytest.approx(model.timed_sum)
    assert stats.cost == pytest.approx(model.successes * UNIT_COST)
    assert stats.last_success == model.last_success
    assert stats.recent_times() == model.kept[-RESERVOIR_SIZE:]
    assert stats.p95_response_time == percentile(model.kept[-RESERVOIR_SIZE:], 0.95)
    assert len(stats.times) == min(len(model.kept), RESERVOIR_SIZE)


def test_a_time_booked_directly_goes_before_the_noted_ones() -> None:
    """A failure booked while successes wait to be settled: each is counted once, as what
    it is (the failure's time is not taken for a success's, nor the reverse)."""
    stats = PairStats()
    for index in range(RESERVOIR_SIZE):
        stats.record_success(index, 1.0)
    note(stats, 200, 5.0)
    note(stats, 201, 6.0)
    stats.record_failure(202, 9.0, "transient")
    assert stats.successes == RESERVOIR_SIZE  # the noted two wait
    assert stats.timed_sum == RESERVOIR_SIZE * 1.0 + 9.0
    stats.settle()
    assert (stats.successes, stats.failures) == (RESERVOIR_SIZE + 2, 1)
    assert stats.timed_sum == RESERVOIR_SIZE * 1.0 + 9.0 + 5.0 + 6.0
    assert stats.recent_times()[-3:] == [9.0, 5.0, 6.0]
    assert len(stats.recent_times()) == RESERVOIR_SIZE


# -- the engine ------------------------------------------------------------------------------


def flaky(platform: PlatformSpec, index: int) -> str:
    if platform.name == "alpha" and index % 5 == 0:
        raise Transient("flaky")
    return platform.name


def test_health_is_exact_while_threads_note_and_readers_read() -> None:
    """Sixteen threads call, two more read health all the while: every read is a consistent
    prefix (never more than was called, never going back), and the last one is exact."""
    manager = make(failure_threshold=10**6)
    calls_per_thread = 400
    done = threading.Event()
    seen: list[int] = []

    def caller(thread: int) -> None:
        for index in range(calls_per_thread):
            manager.with_fallback_sync(OP, flaky, thread * calls_per_thread + index)

    def reader() -> None:
        last = 0
        while not done.is_set():
            total = manager.get_health_status()["alpha"]["total_requests"]
            assert last <= total <= 16 * calls_per_thread
            last = total
            seen.append(total)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    with switching_often():
        for thread in readers:
            thread.start()
        try:
            run_threads(16, caller)
        finally:
            done.set()
            for thread in readers:
                thread.join(60)
    total = 16 * calls_per_thread
    failures = sum(1 for index in range(total) if index % 5 == 0)
    health = manager.get_health_status()
    alpha, beta = health["alpha"], health["beta"]
    assert alpha["total_requests"] == total
    assert alpha["operations"][OP]["failures"] == failures
    assert alpha["cost"] == pytest.approx((total - failures) * UNIT_COST)
    assert beta["total_requests"] == failures
    assert beta["cost"] == pytest.approx(failures * UNIT_COST)
    pair = manager._pair("alpha", OP)
    assert len(pair.stats.recent_times()) == RESERVOIR_SIZE
    assert pair.stats.timed_count == total
    assert seen  # the readers did read while the callers ran


def test_noted_times_stay_bounded_without_any_reader() -> None:
    manager = make()
    with switching_often():
        run_threads(8, lambda _: [manager.with_fallback_sync(OP, flaky, 1) for _ in range(500)])
    times = manager._pair("alpha", OP).stats.times
    # At most one batch past the ring, plus what the other threads appended meanwhile.
    assert len(times) <= SETTLE_AT + 8


@pytest.mark.parametrize("calls", [1, SETTLE_AT - RESERVOIR_SIZE + 1, 3 * SETTLE_AT])
def test_async_calls_are_counted_exactly_on_read(anyio_backend: str, calls: int) -> None:
    manager = make()

    async def main() -> None:
        for index in range(calls):
            await manager.with_fallback(OP, answer_async, index)

    anyio.run(main, backend=anyio_backend)
    assert not manager._book.threaded  # the unlocked path: one event loop, one thread
    alpha = manager.get_health_status()["alpha"]
    assert alpha["total_requests"] == calls
    assert alpha["cost"] == pytest.approx(calls * UNIT_COST)
    assert alpha["last_success"] is not None
    assert len(manager._pair("alpha", OP).stats.recent_times()) == min(calls, RESERVOIR_SIZE)


async def answer_async(platform: PlatformSpec, index: int) -> str:
    return platform.name


def test_a_reset_forgets_the_successes_waiting_to_be_settled() -> None:
    manager = make()
    for index in range(10):
        manager.with_fallback_sync(OP, flaky, 1 + index * 5)  # never a multiple of 5: alpha
    manager.reset_health()
    assert manager.get_health_status()["alpha"]["total_requests"] == 0
    manager.with_fallback_sync(OP, flaky, 1)
    assert manager.get_health_status()["alpha"]["total_requests"] == 1


def test_a_recorded_cost_replaces_the_estimate_of_a_noted_success() -> None:
    manager = make()
    manager.with_fallback_sync(OP, flaky, 1)
    manager.record_cost("alpha", OP, 2.0)
    # Booked against the estimate the success will add when it is settled.
    assert manager.get_health_status()["alpha"]["cost"] == pytest.approx(2.0)


def test_with_monitoring_off_nothing_is_noted() -> None:
    manager = make(monitoring_enabled=False)
    for index in range(SETTLE_AT + 5):
        manager.with_fallback_sync(OP, flaky, 1 + index * 5)
    assert len(manager._pair("alpha", OP).stats.times) == 0
    assert manager.get_health_status()["alpha"]["total_requests"] == 0


def test_the_sync_and_async_fast_paths_note_alike(anyio_backend: str) -> None:
    sync_manager, async_manager = make(), make()
    for index in range(SETTLE_AT + 7):
        sync_manager.with_fallback_sync(OP, flaky, 1 + index * 5)

    async def main() -> None:
        for index in range(SETTLE_AT + 7):
            await async_manager.with_fallback(OP, answer_async, index)

    anyio.run(main, backend=anyio_backend)

    def view(manager: PlatformManager) -> dict[str, Any]:
        alpha = manager.get_health_status()["alpha"]
        return {key: alpha[key] for key in ("total_requests", "failure_rate", "cost")}

    assert (
        view(sync_manager)
        == view(async_manager)
        == {
            "total_requests": SETTLE_AT + 7,
            "failure_rate": 0.0,
            "cost": pytest.approx((SETTLE_AT + 7) * UNIT_COST),
        }
    )


def test_health_read_from_another_thread_than_the_async_callers_stays_exact(
    anyio_backend: str,
) -> None:
    """Reading health settles (it writes): from a thread other than the event loop's it
    turns the manager's lock on, so it never settles alongside the loop's own bookings."""
    manager = make(failure_threshold=10**6)
    calls = 20_000
    done = threading.Event()

    async def flaky_async(platform: PlatformSpec, index: int) -> str:
        return flaky(platform, index)

    async def main() -> None:
        for index in range(calls):
            await manager.with_fallback(OP, flaky_async, index)

    def loop() -> None:
        try:
            anyio.run(main, backend=anyio_backend)
        finally:
            done.set()

    caller = threading.Thread(target=loop)
    reads = 0
    with switching_often():
        caller.start()
        while not done.is_set():
            manager.get_health_status()
            reads += 1
        caller.join(60)
    failures = sum(1 for index in range(calls) if index % 5 == 0)
    alpha = manager.get_health_status()["alpha"]
    stats = manager._pair("alpha", OP).stats
    assert reads > 1
    assert manager._book.threaded  # the reader's first read turned the lock on
    assert alpha["total_requests"] == calls
    assert (stats.successes, stats.failures) == (calls - failures, failures)
    assert stats.timed_count == calls
    assert alpha["cost"] == pytest.approx((calls - failures) * UNIT_COST)
