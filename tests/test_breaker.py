"""The per-pair breaker as a pure state machine: no event loop, time from a FakeClock."""

from __future__ import annotations

import math
from typing import Any

import pybreaker
import pytest

from failover import ConfigError, PlatformManager
from failover._core.breaker import (
    CLOSED_PERMIT,
    BreakerSettings,
    BreakerState,
    PairBreaker,
    Permit,
)
from failover._core.kinds import Cause
from failover._engine.mirror import PybreakerMirror
from failover.testing import FakeClock

Transition = tuple[BreakerState, BreakerState, str]

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


def make(**settings: Any) -> tuple[PairBreaker, FakeClock, list[Transition]]:
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = PairBreaker(
        BreakerSettings(**settings),
        clock,
        listener=lambda change: transitions.append((change.old, change.new, change.reason)),
    )
    return breaker, clock, transitions


def fail(breaker: PairBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.admit()
        assert permit is not None
        breaker.on_failure(permit)


def succeed(breaker: PairBreaker) -> None:
    permit = breaker.admit()
    assert permit is not None
    breaker.on_success(permit)


def opened(**settings: Any) -> tuple[PairBreaker, FakeClock, list[Transition]]:
    """A breaker that has just opened after reaching its failure threshold."""
    breaker, clock, transitions = make(**settings)
    fail(breaker, breaker.settings.failure_threshold)
    assert breaker.state is OPEN
    return breaker, clock, transitions


# -- closed -> open ---------------------------------------------------------------------------


def test_new_breaker_is_closed_and_admits_with_the_shared_closed_permit() -> None:
    breaker, _, transitions = make()
    assert breaker.state is CLOSED
    assert breaker.current_state() is CLOSED
    assert breaker.admit() is CLOSED_PERMIT
    assert breaker.would_admit()
    assert transitions == []


def test_three_consecutive_failures_open_the_pair() -> None:
    breaker, clock, transitions = make()
    fail(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 2
    fail(breaker)
    assert breaker.state is OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.open_until == clock.now() + 300.0
    assert transitions == [(CLOSED, OPEN, "3 consecutive failures")]
    assert breaker.admit() is None
    assert not breaker.would_admit()


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_failure_threshold_is_configurable(threshold: int) -> None:
    breaker, _, _ = make(failure_threshold=threshold)
    fail(breaker, threshold - 1)
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker, _, _ = make()
    fail(breaker, 2)
    succeed(breaker)
    assert breaker.consecutive_failures == 0
    fail(breaker, 2)
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN


def test_open_pair_refuses_until_the_ttl_has_passed() -> None:
    breaker, clock, _ = opened(reset_timeout=300)
    clock.advance(299.9)
    assert breaker.current_state() is OPEN
    assert breaker.admit() is None
    clock.advance(0.1)
    assert breaker.current_state() is HALF_OPEN
    assert breaker.would_admit()


# -- half-open ----------------------------------------------------------------------------------


def test_after_the_ttl_it_reads_half_open_and_admits_one_probe() -> None:
    breaker, clock, transitions = opened()
    clock.advance(300)
    assert breaker.current_state() is HALF_OPEN
    assert breaker.state is OPEN  # not moved until someone asks to be admitted
    probe = breaker.admit()
    assert probe is not None
    assert probe.is_probe
    assert probe.lease_until == clock.now() + 60.0
    assert breaker.state is HALF_OPEN
    assert transitions[-1] == (OPEN, HALF_OPEN, "open duration elapsed")
    assert breaker.admit() is None
    assert not breaker.would_admit()


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_half_open_admits_at_most_half_open_max_calls_probes(limit: int) -> None:
    breaker, clock, _ = opened(half_open_max_calls=limit)
    clock.advance(300)
    probes = [breaker.admit() for _ in range(limit + 3)]
    assert all(isinstance(p, Permit) and p.is_probe for p in probes[:limit])
    assert probes[limit:] == [None, None, None]
    assert len(breaker.probes) == limit


def test_probe_lease_expiry_lets_the_next_caller_probe() -> None:
    breaker, clock, _ = opened(probe_lease_seconds=30)
    clock.advance(300)
    hung = breaker.admit()
    assert hung is not None
    clock.advance(29.9)
    assert breaker.admit() is None
    assert not breaker.would_admit()
    clock.advance(0.1)
    assert breaker.would_admit()
    second = breaker.admit()
    assert second is not None
    assert second.is_probe
    assert second is not hung
    assert breaker.probes == (second,)


def test_probe_success_closes_the_pair() -> None:
    breaker, clock, transitions = opened()
    clock.advance(300)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_success(probe)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.probes == ()
    assert breaker.admit() is CLOSED_PERMIT
    assert transitions[-1] == (HALF_OPEN, CLOSED, "probe succeeded")


def test_success_threshold_needs_that_many_probe_successes() -> None:
    breaker, clock, _ = opened(success_threshold=3, half_open_max_calls=1)
    clock.advance(300)
    for expected_successes in (1, 2):
        probe = breaker.admit()
        assert probe is not None
        breaker.on_success(probe)
        assert breaker.state is HALF_OPEN
        assert breaker.probe_successes == expected_successes
    probe = breaker.admit()
    assert probe is not None
    breaker.on_success(probe)
    assert breaker.state is CLOSED


def test_probe_failure_reopens_for_another_ttl() -> None:
    breaker, clock, transitions = opened()
    clock.advance(300)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_failure(probe)
    assert breaker.state is OPEN
    assert breaker.open_until == clock.now() + 300.0
    assert transitions[-1] == (HALF_OPEN, OPEN, "probe failed")
    assert breaker.admit() is None


def test_probe_failure_after_partial_successes_reopens_and_forgets_them() -> None:
    breaker, clock, _ = opened(success_threshold=2)
    clock.advance(300)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_success(probe)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_failure(probe)
    assert breaker.state is OPEN
    assert breaker.probe_successes == 0


def test_open_backoff_grows_each_reopen_and_is_capped_by_max_open_seconds() -> None:
    breaker, clock, _ = opened(reset_timeout=10, open_backoff=2, max_open_seconds=50)
    assert breaker.open_until - clock.now() == 10.0  # the first open is the plain TTL
    durations = []
    for _ in range(4):
        clock.advance(breaker.open_until - clock.now())
        probe = breaker.admit()
        assert probe is not None
        breaker.on_failure(probe)
        durations.append(breaker.open_until - clock.now())
    assert durations == [20.0, 40.0, 50.0, 50.0]
    # A successful probe forgets the growth: the next open is the plain TTL again.
    clock.advance(50)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_success(probe)
    fail(breaker, 3)
    assert breaker.open_until - clock.now() == 10.0


def test_without_backoff_every_reopen_lasts_the_ttl() -> None:
    breaker, clock, _ = opened(reset_timeout=10)
    for _ in range(3):
        clock.advance(10)
        probe = breaker.admit()
        assert probe is not None
        breaker.on_failure(probe)
        assert breaker.open_until - clock.now() == 10.0


# -- release and stale results ------------------------------------------------------------------


def test_release_never_counts_in_closed_state() -> None:
    breaker, _, transitions = make()
    fail(breaker, 2)
    for _ in range(10):
        permit = breaker.admit()
        assert permit is not None
        breaker.release(permit)
    assert breaker.consecutive_failures == 2
    assert breaker.state is CLOSED
    assert transitions == []


def test_release_of_a_probe_frees_its_slot_and_changes_no_state() -> None:
    breaker, clock, transitions = opened()
    clock.advance(300)
    probe = breaker.admit()
    assert probe is not None
    before = list(transitions)
    breaker.release(probe)
    assert breaker.state is HALF_OPEN
    assert breaker.probes == ()
    assert breaker.probe_successes == 0
    assert transitions == before
    again = breaker.admit()
    assert again is not None
    assert again.is_probe


def test_result_of_a_probe_whose_lease_expired_is_ignored() -> None:
    breaker, clock, _ = opened(probe_lease_seconds=30)
    clock.advance(300)
    hung = breaker.admit()
    assert hung is not None
    clock.advance(31)
    # No one else asked in the meantime: the late answer is still stale.
    breaker.on_success(hung)
    assert breaker.state is HALF_OPEN
    assert breaker.probes == ()
    late_failure = breaker.admit()
    assert late_failure is not None
    clock.advance(31)
    breaker.on_failure(late_failure)
    assert breaker.state is HALF_OPEN


def test_result_of_a_replaced_probe_is_ignored() -> None:
    breaker, clock, _ = opened(probe_lease_seconds=30)
    clock.advance(300)
    hung = breaker.admit()
    assert hung is not None
    clock.advance(30)
    current = breaker.admit()
    assert current is not None
    breaker.on_failure(hung)  # stale: must not reopen while `current` is probing
    assert breaker.state is HALF_OPEN
    breaker.on_success(current)
    assert breaker.state is CLOSED


def test_probe_result_after_the_state_moved_on_is_ignored() -> None:
    breaker, clock, _ = opened(half_open_max_calls=2)
    clock.advance(300)
    first, second = breaker.admit(), breaker.admit()
    assert first is not None
    assert second is not None
    breaker.on_success(first)
    assert breaker.state is CLOSED
    breaker.on_failure(second)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0


def test_closed_permit_failures_arriving_after_the_pair_opened_are_ignored() -> None:
    breaker, _clock, transitions = make()
    permits = [breaker.admit() for _ in range(5)]
    for permit in permits[:3]:
        assert permit is not None
        breaker.on_failure(permit)
    assert breaker.state is OPEN
    open_until = breaker.open_until
    for permit in permits[3:]:
        assert permit is not None
        breaker.on_failure(permit)
        breaker.on_success(permit)
    assert breaker.state is OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.open_until == open_until
    assert len(transitions) == 1


# -- outcomes reported without a permit ---------------------------------------------------------


def test_reported_outcomes_drive_the_same_machine() -> None:
    breaker, clock, _ = make()
    breaker.report_failure()
    breaker.report_failure()
    breaker.report_success()
    assert breaker.consecutive_failures == 0
    for _ in range(3):
        breaker.report_failure()
    assert breaker.state is OPEN
    clock.advance(300)
    breaker.report_failure()  # a failure once the TTL passed is a failed probe
    assert breaker.state is OPEN
    assert breaker.open_until == clock.now() + 300
    clock.advance(300)
    breaker.report_success()
    assert breaker.state is CLOSED


# -- manual control -----------------------------------------------------------------------------


def test_force_open_for_the_ttl_or_for_given_seconds() -> None:
    breaker, clock, transitions = make()
    breaker.force_open()
    assert breaker.state is OPEN
    assert breaker.open_until == clock.now() + 300
    assert transitions == [(CLOSED, OPEN, "forced open")]
    breaker.force_open(5)
    assert breaker.open_until == clock.now() + 5
    clock.advance(5)
    assert breaker.current_state() is HALF_OPEN


def test_isolate_stays_open_until_reset() -> None:
    breaker, clock, _ = make()
    breaker.isolate()
    assert math.isinf(breaker.open_until)
    clock.advance(1e9)
    assert breaker.current_state() is OPEN
    assert breaker.admit() is None
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.admit() is CLOSED_PERMIT


def test_force_closed_pins_the_pair_closed_until_reset() -> None:
    breaker, _, transitions = opened()
    breaker.force_closed()
    assert breaker.state is CLOSED
    assert transitions[-1] == (OPEN, CLOSED, "forced closed")
    fail(breaker, 10)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 10
    breaker.reset()
    assert breaker.consecutive_failures == 0
    fail(breaker, 3)
    assert breaker.state is OPEN


def test_force_open_releases_a_force_closed_pin() -> None:
    breaker, _, _ = make()
    breaker.force_closed()
    breaker.force_open()
    assert breaker.state is OPEN
    assert not breaker.pinned_closed


def test_force_half_open_admits_probes_at_once() -> None:
    breaker, _, transitions = opened()
    breaker.force_half_open()
    assert breaker.state is HALF_OPEN
    assert transitions[-1] == (OPEN, HALF_OPEN, "forced half-open")
    probe = breaker.admit()
    assert probe is not None
    assert probe.is_probe


def test_reset_clears_everything() -> None:
    breaker, clock, transitions = opened(open_backoff=2)
    clock.advance(300)
    probe = breaker.admit()
    assert probe is not None
    breaker.on_failure(probe)
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.reopen_count == 0
    assert breaker.probes == ()
    assert transitions[-1] == (OPEN, CLOSED, "reset")
    breaker.reset()  # already closed: no transition reported
    assert transitions[-1] == (OPEN, CLOSED, "reset")


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("failure_threshold", 0),
        ("failure_threshold", 2.5),
        ("failure_threshold", True),
        ("failure_threshold", "3"),
        ("half_open_max_calls", 0),
        ("success_threshold", -1),
        ("reset_timeout", 0),
        ("reset_timeout", -5),
        ("reset_timeout", math.inf),
        ("reset_timeout", math.nan),
        ("reset_timeout", "300"),
        ("probe_lease_seconds", 0),
        ("max_open_seconds", False),
        ("open_backoff", 0.5),
        ("open_backoff", math.nan),
        ("open_backoff", "2"),
    ],
)
def test_bad_breaker_settings_raise_a_config_error_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        BreakerSettings(**{key: value})
    assert caught.value.key == key
    assert key in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_numeric_settings_are_stored_as_floats() -> None:
    settings = BreakerSettings(reset_timeout=10, probe_lease_seconds=2, max_open_seconds=60)
    assert settings.reset_timeout == 10.0
    assert isinstance(settings.reset_timeout, float)
    assert isinstance(settings.probe_lease_seconds, float)
    assert isinstance(settings.max_open_seconds, float)


# -- the pybreaker mirror -----------------------------------------------------------------------


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str | None, str]] = []

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.changes.append((getattr(old_state, "name", None), new_state.name))


def mirrored(**settings: Any) -> tuple[PairBreaker, PybreakerMirror, FakeClock, Recorder]:
    """A breaker wired to its mirror the way the manager wires them."""
    clock = FakeClock()
    machine = PairBreaker(BreakerSettings(**settings), clock)
    mirror = PybreakerMirror(machine, "stability:image_editing")

    machine.listener = lambda change: mirror.replay(change.new)
    recorder = Recorder()
    mirror.breaker.add_listener(recorder)
    return machine, mirror, clock, recorder


def test_mirror_copies_settings_and_name() -> None:
    _, mirror, _, _ = mirrored(failure_threshold=4, reset_timeout=30, success_threshold=2)
    cb = mirror.breaker
    assert cb.fail_max == 4
    assert cb.reset_timeout == 30
    assert cb.success_threshold == 2
    assert cb.name == "stability:image_editing"
    assert cb.current_state == "closed"


def test_our_transitions_reach_pybreaker_state_and_its_listeners() -> None:
    machine, mirror, clock, recorder = mirrored()
    fail(machine, 3)
    assert mirror.breaker.current_state == "open"
    clock.advance(300)
    probe = machine.admit()
    assert probe is not None
    assert mirror.breaker.current_state == "half-open"
    machine.on_success(probe)
    assert mirror.breaker.current_state == "closed"
    assert recorder.changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_fail_counter_is_mirrored() -> None:
    machine, mirror, _, _ = mirrored(failure_threshold=5)
    for expected in (1, 2, 3):
        fail(machine)
        mirror.sync_failures()
        assert mirror.breaker.fail_counter == expected
    succeed(machine)
    mirror.sync_failures()
    assert mirror.breaker.fail_counter == 0


def test_user_open_drives_our_machine_and_notifies_listeners_once() -> None:
    machine, mirror, clock, recorder = mirrored()
    mirror.breaker.open()
    assert machine.state is OPEN
    assert machine.admit() is None
    assert machine.open_until == clock.now() + 300
    assert mirror.breaker.current_state == "open"
    assert recorder.changes == [("closed", "open")]


def test_user_close_drives_our_machine_and_notifies_listeners_once() -> None:
    machine, mirror, _, recorder = mirrored()
    fail(machine, 3)
    recorder.changes.clear()
    mirror.breaker.close()
    assert machine.state is CLOSED
    assert machine.consecutive_failures == 0
    assert not machine.pinned_closed
    assert machine.admit() is CLOSED_PERMIT
    assert mirror.breaker.current_state == "closed"
    assert recorder.changes == [("open", "closed")]


def test_user_half_open_drives_our_machine() -> None:
    machine, mirror, _, recorder = mirrored()
    fail(machine, 3)
    recorder.changes.clear()
    mirror.breaker.half_open()
    assert machine.state is HALF_OPEN
    probe = machine.admit()
    assert probe is not None
    assert probe.is_probe
    assert machine.admit() is None
    assert recorder.changes == [("open", "half-open")]


def test_manager_exposes_the_mirrored_pybreaker_per_pair() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {"image_editing": [("stability", "sd"), ("replicate", "flux")]},
        clock=clock,
        environ={"STABILITY_API_KEY": "k", "REPLICATE_API_TOKEN": "k"},
    )
    cb = manager.breaker("stability", "image_editing")
    assert isinstance(cb, pybreaker.CircuitBreaker)
    assert cb is manager.breaker("stability", "image_editing")
    assert cb is not manager.breaker("replicate", "image_editing")
    recorder = Recorder()
    cb.add_listener(recorder)

    manager.force_open("stability", "image_editing")
    assert cb.current_state == "open"
    manager.reset("stability", "image_editing")
    assert cb.current_state == "closed"
    cb.open()
    health = manager.get_health_status()
    assert health["stability"]["operations"]["image_editing"]["state"] == "open"
    assert health["replicate"]["operations"]["image_editing"]["state"] == "closed"
    assert recorder.changes == [("closed", "open"), ("open", "closed"), ("closed", "open")]


def test_a_remote_open_keeps_the_later_deadline_and_respects_a_pinned_close() -> None:
    breaker, clock, transitions = make()
    assert breaker.open_until_deadline(clock.now() + 50, Cause.REMOTE_OPEN)
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == clock.now() + 50
    assert not breaker.open_until_deadline(clock.now() + 10, Cause.REMOTE_OPEN)  # earlier: kept
    assert breaker.open_until == clock.now() + 50
    assert not breaker.open_until_deadline(clock.now() - 1, Cause.REMOTE_OPEN)  # already past
    breaker.force_closed()
    assert not breaker.open_until_deadline(clock.now() + 500, Cause.REMOTE_OPEN)
    assert breaker.state is BreakerState.CLOSED
    assert [t[1] for t in transitions] == [BreakerState.OPEN, BreakerState.CLOSED]
