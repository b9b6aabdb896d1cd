"""Bulkheads: concurrent attempts per platform are capped; a full platform is skipped, uncounted."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import anyio
import pytest

from failover import (
    NO_BULKHEAD,
    AllPlatformsFailed,
    Bulkhead,
    ConfigError,
    PlatformManager,
    PlatformSpec,
    Policy,
)
from failover._engine.drive_async.walk import acquire_slot
from failover.policies.bulkhead import Limiter
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "image_editing"


class Gate:
    """An operation that holds every call until ``open()``, tracking concurrency per platform."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.served: Counter[str] = Counter()

    def open(self) -> None:
        self.opened.set()

    async def __call__(self, platform: PlatformSpec) -> str:
        name = platform.name
        self.running[name] += 1
        self.peak[name] = max(self.peak[name], self.running[name])
        try:
            await self.opened.wait()
        finally:
            self.running[name] -= 1
        self.served[name] += 1
        return name


async def call(manager: PlatformManager, operation: Gate, outcomes: list[Any]) -> None:
    try:
        result, _ = await manager.with_fallback(OP, operation)
        outcomes.append(result)
    except AllPlatformsFailed as exc:
        outcomes.append(exc)


def operation_health(manager: PlatformManager, name: str) -> dict[str, Any]:
    return manager.get_health_status()[name]["operations"][OP]  # type: ignore[no-any-return]


async def test_500_concurrent_callers_never_exceed_the_limit_and_overflow_moves_on() -> None:
    manager = PlatformManager(
        {OP: [("alpha", "a"), ("beta", "b")]},
        clock=FakeClock(),
        environ={},
        policy=Policy(bulkhead=Bulkhead(10)),
    )
    operation = Gate()
    outcomes: list[Any] = []
    async with anyio.create_task_group() as group:
        for _ in range(500):
            group.start_soon(call, manager, operation, outcomes)
        await anyio.wait_all_tasks_blocked()
        assert operation.running == Counter(alpha=10, beta=10)
        operation.open()
    assert operation.peak == Counter(alpha=10, beta=10)
    assert operation.served == Counter(alpha=10, beta=10)
    failures = [item for item in outcomes if isinstance(item, AllPlatformsFailed)]
    assert len(failures) == 480
    for failure in failures:
        assert [(a.platform, a.outcome, a.skip_reason) for a in failure.attempts] == [
            ("alpha", "skipped", "bulkhead_full"),
            ("beta", "skipped", "bulkhead_full"),
        ]
    for name in ("alpha", "beta"):
        health = operation_health(manager, name)
        assert (health["state"], health["failures"], health["consecutive_failures"]) == (
            "closed",
            0,
            0,
        )


async def test_500_callers_queue_for_slots_with_max_wait_and_all_succeed() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {OP: [("alpha", "a"), ("beta", "b")]},
        clock=clock,
        environ={},
        platform_policies={"alpha": Policy(bulkhead=Bulkhead(10, max_wait=math.inf))},
    )
    running = 0
    peak = 0

    async def slow(platform: PlatformSpec) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await clock.sleep(1.0)
        finally:
            running -= 1
        return platform.name

    results: list[str] = []

    async def one() -> None:
        results.append((await manager.with_fallback(OP, slow))[0])

    async with anyio.create_task_group() as group:
        for _ in range(500):
            group.start_soon(one)
        while len(results) < 500:
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
    assert peak == 10
    assert Counter(results) == Counter(alpha=500)


async def test_a_call_that_waits_past_max_wait_moves_to_the_next_platform() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {OP: [("alpha", "a"), ("beta", "b")]},
        clock=clock,
        environ={},
        platform_policies={"alpha": Policy(bulkhead=Bulkhead(1, max_wait=2.0))},
    )
    operation = Gate()
    outcomes: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(call, manager, operation, outcomes)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(call, manager, operation, outcomes)
        await anyio.wait_all_tasks_blocked()
        assert operation.running == Counter(alpha=1)  # the second one is queued
        clock.advance(1.999)
        await anyio.wait_all_tasks_blocked()
        assert operation.running == Counter(alpha=1)
        clock.advance(0.001)
        await anyio.wait_all_tasks_blocked()
        assert operation.running == Counter(alpha=1, beta=1)
        operation.open()
    assert sorted(outcomes) == ["alpha", "beta"]


@pytest.mark.parametrize(("per", "expected"), [("platform", 1), ("pair", 2)])
async def test_platform_bulkhead_is_shared_across_operations_pair_bulkhead_is_not(
    per: str, expected: int
) -> None:
    manager = PlatformManager(
        {OP: [("alpha", "a")], "text_generation": [("alpha", "a-chat")]},
        clock=FakeClock(),
        environ={},
        platform_policies={"alpha": Policy(bulkhead=Bulkhead(1, per=per))},  # type: ignore[arg-type]
    )
    operation = Gate()
    outcomes: list[Any] = []
    async with anyio.create_task_group() as group:
        for name in (OP, "text_generation"):
            group.start_soon(one_call, manager, name, operation, outcomes)
        await anyio.wait_all_tasks_blocked()
        assert operation.running["alpha"] == expected
        operation.open()
    assert outcomes.count("alpha") == expected


async def one_call(
    manager: PlatformManager, operation_name: str, operation: Gate, outcomes: list[Any]
) -> None:
    try:
        outcomes.append((await manager.with_fallback(operation_name, operation))[0])
    except AllPlatformsFailed as exc:
        outcomes.append(exc)


async def test_cancelled_waiter_leaves_the_queue_and_leaks_no_slot() -> None:
    clock = FakeClock()
    limiter = Limiter(Bulkhead(1, max_wait=math.inf), "alpha")
    assert await acquire_slot(limiter, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(acquire_slot, limiter, clock)
        await anyio.wait_all_tasks_blocked()
        assert limiter.waiting == 1
        group.cancel_scope.cancel()  # the waiter's caller gives up
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_use == 0
    assert await acquire_slot(limiter, clock)


async def test_slots_are_handed_to_waiters_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = Limiter(Bulkhead(1, max_wait=math.inf), "alpha")
    assert await acquire_slot(limiter, clock)
    order: list[int] = []

    async def waiter(index: int) -> None:
        await acquire_slot(limiter, clock)
        order.append(index)
        limiter.release()

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(waiter, index)
            await anyio.wait_all_tasks_blocked()
        assert not limiter.try_acquire()  # a newcomer may not barge ahead of the queue
        limiter.release()
    assert order == [0, 1, 2, 3, 4]
    assert limiter.in_use == 0


async def test_no_bulkhead_overrides_an_inherited_one() -> None:
    manager = PlatformManager(
        {OP: [("alpha", "a")]},
        clock=FakeClock(),
        environ={},
        policy=Policy(bulkhead=Bulkhead(1)),
        platform_policies={"alpha": Policy(bulkhead=NO_BULKHEAD)},
    )
    operation = Gate()
    outcomes: list[Any] = []
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(call, manager, operation, outcomes)
        await anyio.wait_all_tasks_blocked()
        assert operation.running["alpha"] == 3
        operation.open()
    assert manager._routes[OP].plain  # nothing configured: the plain walk


def test_bulkhead_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_concurrent"):
        Bulkhead(0)
    with pytest.raises(ConfigError, match="max_wait"):
        Bulkhead(1, max_wait=-1)
    with pytest.raises(ConfigError, match="per"):
        Bulkhead(1, per="process")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Policy\.bulkhead"):
        Policy(bulkhead=3)  # type: ignore[arg-type]


async def test_a_probe_cancelled_while_queued_for_a_slot_gives_its_permit_back() -> None:
    clock = FakeClock()
    alpha = PlatformSpec("alpha", "a-1")
    manager = PlatformManager(
        {"image_editing": [alpha], "image_generation": [alpha]},
        clock=clock,
        environ={},
        policy=Policy(bulkhead=Bulkhead(1, max_wait=math.inf)),
        when_all_unavailable="fail",
    )
    manager.force_open("alpha", "image_editing", seconds=10)
    clock.advance(10)  # image_editing is half-open: its next caller is the probe
    holder = Gate()
    async with anyio.create_task_group() as group:
        group.start_soon(manager.with_fallback, "image_generation", holder)  # takes the slot
        await anyio.wait_all_tasks_blocked()
        group.start_soon(manager.with_fallback, "image_editing", Gate())  # probe, queued
        await anyio.wait_all_tasks_blocked()
        breaker = manager._pairs[("alpha", "image_editing")].breaker
        assert len(breaker.probes) == 1
        group.cancel_scope.cancel()
    assert breaker.probes == ()
    assert breaker.would_admit()
