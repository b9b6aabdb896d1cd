"""The pybreaker mirror is built on first ``manager.breaker()`` call and catches up then."""

from __future__ import annotations

import subprocess
import sys

import pybreaker
import pytest

from failover import PlatformManager, PlatformSpec, Transient
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "image_editing"
PRIORITIES = {OP: [("alpha", "a-1"), ("beta", "b-1")]}


def make_manager(clock: FakeClock) -> PlatformManager:
    return PlatformManager(
        priorities=PRIORITIES, clock=clock, environ={}, failure_threshold=3, cache_ttl_seconds=30
    )


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        self.changes.append((getattr(old_state, "name", "?"), getattr(new_state, "name", "?")))


def test_import_failover_does_not_import_pybreaker() -> None:
    code = "import sys, failover; print('pybreaker' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


async def test_late_mirror_catches_up_with_failure_count() -> None:
    manager = make_manager(FakeClock())
    spec = await manager.get_platform(OP)
    await manager.report_failure(spec, OP, Transient("503"))
    await manager.report_failure(spec, OP, Transient("503"))

    breaker = manager.breaker("alpha", OP)

    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 2
    await manager.report_failure(spec, OP, Transient("503"))
    assert breaker.current_state == "open"
    assert breaker.fail_counter == 3


async def test_late_mirror_catches_up_with_open_and_half_open_then_follows() -> None:
    clock = FakeClock()
    manager = make_manager(clock)
    spec = await manager.get_platform(OP)
    for _ in range(3):
        await manager.report_failure(spec, OP, Transient("503"))

    breaker = manager.breaker("alpha", OP)
    recorder = Recorder()
    breaker.add_listener(recorder)

    assert breaker.current_state == "open"
    assert breaker.fail_counter == 3
    assert recorder.changes == []
    clock.advance(31)
    seen: list[str] = []

    async def probe(platform: PlatformSpec) -> str:
        seen.append(breaker.current_state)
        return platform.name

    assert (await manager.with_fallback(OP, probe))[0] == "alpha"
    assert seen == ["half-open"]
    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 0
    assert recorder.changes == [("open", "half-open"), ("half-open", "closed")]


async def test_late_mirror_of_a_half_open_pair_reads_half_open() -> None:
    clock = FakeClock()
    manager = make_manager(clock)
    spec = await manager.get_platform(OP)
    for _ in range(3):
        await manager.report_failure(spec, OP, Transient("503"))
    clock.advance(31)
    seen: list[tuple[str, int]] = []

    async def probe(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            breaker = manager.breaker("alpha", OP)  # first asked for during the probe
            seen.append((breaker.current_state, breaker.fail_counter))
            raise Transient("503")
        return platform.name

    assert (await manager.with_fallback(OP, probe))[0] == "beta"
    assert seen == [("half-open", 3)]
    assert manager.breaker("alpha", OP).current_state == "open"
    manager.breaker("alpha", OP).close()  # and the user's hand still drives the pair
    assert (await manager.get_platform(OP)).name == "alpha"
