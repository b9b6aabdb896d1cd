"""Concurrency at scale (asyncio and trio): 1,000 callers against one half-open pair, hung
probes whose lease runs out, and a happy path that never waits on a lock.

Extends the 100-caller tests in ``test_chain.py`` to 1,000 callers and adds what they do not
show: the refused callers' histories, a second wave after a lease expires, and proofs that a
protected call neither suspends nor touches a lock when nothing fails.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import failover
from failover import AllPlatformsFailed, PlatformManager, PlatformSpec, Transient, fallback
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
ALPHA = PlatformSpec("alpha", "a-1")
BETA = PlatformSpec("beta", "b-1")
CALLERS = 1_000


def make(**kwargs: Any) -> tuple[PlatformManager, FakeClock]:
    clock = FakeClock()
    kwargs.setdefault("priorities", {TEXT: [ALPHA, BETA]})
    return PlatformManager(clock=clock, environ={}, **kwargs), clock


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(100_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{what} never became true")


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_1000_concurrent_callers_at_half_open_admit_exactly_the_probe_limit(
    limit: int,
) -> None:
    manager, clock = make(half_open_max_calls=limit, cache_ttl_seconds=60)
    manager.force_open("alpha", TEXT)
    clock.advance(60)
    breaker = manager._pairs[("alpha", TEXT)].breaker
    gate = anyio.Event()
    probing = peak = 0
    answered: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        nonlocal probing, peak
        if platform.name == "alpha":
            probing += 1
            peak = max(peak, probing)
            await gate.wait()
            probing -= 1
        return platform.name

    async def caller() -> None:
        result, _ = await manager.with_fallback(TEXT, operation)
        answered.append(result)

    async with anyio.create_task_group() as tg:
        for _ in range(CALLERS):
            tg.start_soon(caller)
        await wait_until(lambda: len(answered) == CALLERS - limit, "every non-probe answered")
        assert probing == limit
        assert breaker.probes_in_flight() == limit
        assert manager.get_health_status()["alpha"]["operations"][TEXT]["skip_reason"] == "open"
        gate.set()
    assert peak == limit
    assert answered.count("alpha") == limit
    assert answered.count("beta") == CALLERS - limit
    assert breaker.state.value == "closed"
    assert breaker.probes == ()
    health = manager.get_health_status()
    assert health["alpha"]["total_requests"] == limit
    assert health["beta"]["total_requests"] == CALLERS - limit


async def test_1000_callers_without_a_fallback_get_one_probe_and_999_refusals_naming_open() -> None:
    manager, clock = make(priorities={TEXT: [ALPHA]}, cache_ttl_seconds=60)
    manager.force_open("alpha", TEXT)
    clock.advance(60)
    gate = anyio.Event()
    refused: list[AllPlatformsFailed] = []
    answered: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        await gate.wait()
        return "probe"

    async def caller() -> None:
        try:
            answered.append((await manager.with_fallback(TEXT, operation))[0])
        except AllPlatformsFailed as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(CALLERS):
            tg.start_soon(caller)
        await wait_until(lambda: len(refused) == CALLERS - 1, "the refusals")
        gate.set()
    assert answered == ["probe"]
    histories = {tuple((a.platform, a.outcome, a.skip_reason) for a in e.attempts) for e in refused}
    assert histories == {(("alpha", "skipped", "open"),)}


async def test_a_hung_probe_loses_its_lease_and_exactly_one_of_1000_callers_probes_next() -> None:
    manager, clock = make(cache_ttl_seconds=300, probe_lease_seconds=30)
    manager.force_open("alpha", TEXT)
    clock.advance(300)
    breaker = manager._pairs[("alpha", TEXT)].breaker
    hung = anyio.Event()
    second_gate = anyio.Event()
    alpha_calls: list[int] = []
    answered: list[str] = []

    async def operation(platform: PlatformSpec, wave: int) -> str:
        if platform.name == "alpha":
            alpha_calls.append(wave)
            if wave == 0:
                await hung.wait()  # never set before the end: a hung request
                raise Transient("finally gave up")
            await second_gate.wait()
        return platform.name

    async def caller(wave: int) -> None:
        answered.append((await manager.with_fallback(TEXT, operation, wave))[0])

    async with anyio.create_task_group() as tg:
        for _ in range(CALLERS):
            tg.start_soon(caller, 0)
        await wait_until(lambda: len(answered) == CALLERS - 1, "the first wave")
        assert alpha_calls == [0]
        clock.advance(29.999)  # the lease still holds: a second wave falls back
        for _ in range(CALLERS):
            tg.start_soon(caller, 1)
        await wait_until(lambda: len(answered) == 2 * CALLERS - 1, "the second wave")
        assert alpha_calls == [0]
        clock.advance(0.001)  # the lease runs out
        for _ in range(CALLERS):
            tg.start_soon(caller, 2)
        await wait_until(lambda: len(answered) == 3 * CALLERS - 2, "the third wave")
        assert alpha_calls == [0, 2]  # exactly one new probe
        assert breaker.probes_in_flight() == 1
        second_gate.set()
        await wait_until(lambda: breaker.state.value == "closed", "the new probe to close it")
        hung.set()  # the stale probe fails at last: ignored
    assert breaker.state.value == "closed"
    assert breaker.consecutive_failures == 0
    assert answered.count("alpha") == 1
    assert manager.get_health_status()["alpha"]["operations"][TEXT]["failures"] == 1


# -- no lock on the happy path --------------------------------------------------------------------

HOT_MODULES = (
    "_engine/drive_async/walk.py",
    "_engine/walk.py",
    "_engine/decide.py",
    "_engine/call.py",
    "_core/pair.py",
    "_core/breaker.py",
    "_core/health.py",
    "policies/policy.py",
    "decorators.py",
)
LOCK_NAMES = {"Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "CapacityLimiter"}


@pytest.mark.parametrize("module", HOT_MODULES)
def test_the_hot_path_modules_create_no_locks(module: str) -> None:
    """No lock, semaphore, condition or capacity limiter is made in the modules a call runs."""
    source = (Path(failover.__file__).parent / module).read_text()
    made = [
        node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in LOCK_NAMES)
            or (isinstance(node.func, ast.Name) and node.func.id in LOCK_NAMES)
        )
    ]
    assert made == [], f"{module} makes {made}"
    assert "import threading" not in source


async def test_a_manager_used_from_one_thread_never_takes_its_lock() -> None:
    """The book holds the one lock of the call path (for threads sharing a manager); a call
    path used from one thread, async or not, never acquires it."""
    manager = PlatformManager({TEXT: [("alpha", "a"), ("beta", "b")]}, environ={})
    book = manager._book
    taken: list[str] = []

    class Recording:
        def __enter__(self) -> None:
            taken.append("enter")

        def __exit__(self, *exc: object) -> None:
            return None

        def acquire(self, *args: object) -> bool:
            taken.append("acquire")
            return True

        def release(self) -> None:
            return None

    book.lock = Recording()  # type: ignore[assignment]
    flaky = ScriptedOperation({"alpha": [Transient()] + ["ok"] * 50})
    for _ in range(20):
        await manager.with_fallback(TEXT, flaky)
    assert not book.threaded
    assert taken == []


def run_without_suspending(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion in one step; fail if it ever suspends (waits)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the call suspended: it waited on something")


class LockWatch:
    """A profiler hook that records every lock acquisition (C-level and anyio's)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            name = getattr(arg, "__qualname__", "")
            owner = type(getattr(arg, "__self__", None)).__name__
            if name.endswith(("acquire", "__enter__")) and "lock" in owner.lower():
                self.seen.append(f"{owner}.{name}")
        elif event == "call":
            code = frame.f_code
            if code.co_name in ("acquire", "acquire_nowait", "wait") and (
                "anyio" in code.co_filename or "threading" in code.co_filename
            ):
                self.seen.append(f"{code.co_filename}:{code.co_name}")


async def test_1000_happy_path_calls_never_suspend_and_never_touch_a_lock() -> None:
    manager, _ = make()

    async def operation(platform: PlatformSpec, number: int) -> int:
        return number * 2  # answers at once: any suspension would be failover's own

    @fallback(TEXT, manager=manager)
    async def decorated(platform: PlatformSpec, number: int) -> int:
        return number + 1

    # Warm up (logging caches, lazily resolved telemetry), then watch.
    run_without_suspending(manager.with_fallback(TEXT, operation, 0))
    run_without_suspending(decorated(0))
    watch = LockWatch()
    sys.setprofile(watch)
    try:
        results = [
            run_without_suspending(manager.with_fallback(TEXT, operation, number))
            for number in range(CALLERS)
        ]
        decorated_results = [run_without_suspending(decorated(number)) for number in range(100)]
    finally:
        sys.setprofile(None)
    assert watch.seen == []
    assert [(result, spec.name) for result, spec in results] == [
        (number * 2, "alpha") for number in range(CALLERS)
    ]
    assert decorated_results == [number + 1 for number in range(100)]
    assert manager.get_health_status()["alpha"]["total_requests"] == CALLERS + 102


async def test_the_lock_watch_does_see_a_lock() -> None:
    """The watch is not blind: an anyio lock and a threading lock are both caught."""
    import threading

    watch = LockWatch()
    lock = anyio.Lock()
    sys.setprofile(watch)
    try:
        async with lock:
            pass
        with threading.Lock():
            pass
    finally:
        sys.setprofile(None)
    assert len(watch.seen) >= 2


async def test_1000_concurrent_happy_callers_all_answer_from_the_first_platform() -> None:
    manager, _ = make()
    answered: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        await anyio.lowlevel.checkpoint()  # every caller interleaves with the others
        return platform.name

    async def caller() -> None:
        answered.append((await manager.with_fallback(TEXT, operation))[0])

    async with anyio.create_task_group() as tg:
        for _ in range(CALLERS):
            tg.start_soon(caller)
    assert answered == ["alpha"] * CALLERS
    assert manager.get_health_status()["beta"]["total_requests"] == 0
