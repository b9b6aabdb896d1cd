"""Policies as immutable values: validation, precedence, and the retry bookkeeping that drives
tenacity's own strategy objects (no event loop needed)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import tenacity

from failover import NO_RETRY, Classification, ConfigError, ErrorKind, Policy, Retry, Transient
from failover.policies.policy import ResolvedPolicy
from failover.policies.retry import RetryRun

TRANSIENT = Classification(ErrorKind.TRANSIENT)


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["attempt_timeout", "deadline"])
@pytest.mark.parametrize("value", [0, -1, math.nan, True, "5", [5]])
def test_bad_timeouts_raise_a_config_error_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Policy(**{key: value})
    assert caught.value.key == key
    assert key in str(caught.value)


def test_timeouts_are_stored_as_floats_and_inf_is_allowed() -> None:
    policy = Policy(attempt_timeout=5, deadline=math.inf)
    assert policy.attempt_timeout == 5.0
    assert isinstance(policy.attempt_timeout, float)
    assert policy.deadline == math.inf


def test_policy_retry_must_be_a_failover_retry() -> None:
    with pytest.raises(ConfigError, match=r"failover\.Retry"):
        Policy(retry=tenacity.stop_after_attempt(3))  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["stop", "wait", "retry"])
def test_retry_strategies_must_be_callable(field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Retry(**{field: 3})  # type: ignore[arg-type]
    assert caught.value.key == field


def test_policies_are_immutable_values() -> None:
    policy = Policy(attempt_timeout=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempt_timeout = 2  # type: ignore[misc]
    assert Policy(attempt_timeout=1) == policy
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_RETRY.stop = tenacity.stop_never  # type: ignore[misc]


# -- precedence -----------------------------------------------------------------------------------


def test_then_lets_every_field_the_more_specific_policy_sets_win() -> None:
    retry = Retry(tenacity.stop_after_attempt(2), tenacity.wait_none())
    manager = Policy(retry=retry, attempt_timeout=5, deadline=60)
    operation = Policy(attempt_timeout=7)
    platform = Policy(retry=NO_RETRY)
    combined = manager.then(operation).then(platform)
    assert combined == Policy(retry=NO_RETRY, attempt_timeout=7, deadline=60)
    assert manager.then(Policy()) is manager  # nothing set: nothing to merge
    assert manager == Policy(retry=retry, attempt_timeout=5, deadline=60)  # unchanged


def test_resolved_policy_maps_the_off_switches_to_none() -> None:
    resolved = ResolvedPolicy.of(
        Policy(retry=NO_RETRY, attempt_timeout=math.inf, deadline=math.inf)
    )
    assert resolved == ResolvedPolicy(retry=None, attempt_timeout=None, deadline=None)
    assert ResolvedPolicy.of(Policy()) == ResolvedPolicy(None, None, None)
    retry = Retry()
    assert ResolvedPolicy.of(Policy(retry=retry, attempt_timeout=3)).retry is retry


# -- RetryRun: tenacity strategies driven by our loop --------------------------------------------


def waits(retry: Retry, *, spacing: float = 0.0, limit: int = 20) -> list[float]:
    """The waits a run asks for when every attempt fails instantly, ``spacing`` apart."""
    run = RetryRun(retry, started=100.0)
    now = 100.0
    result: list[float] = []
    for attempt in range(1, limit + 1):
        wait = run.next_wait(Transient(), TRANSIENT, attempt, now)
        if wait is None:
            return result
        result.append(wait)
        now += wait + spacing
    raise AssertionError("never stopped")


def test_stop_after_attempt_and_wait_fixed() -> None:
    assert waits(Retry(tenacity.stop_after_attempt(4), tenacity.wait_fixed(2))) == [2.0] * 3


def test_exponential_wait_grows_and_is_capped() -> None:
    retry = Retry(
        tenacity.stop_after_attempt(6), tenacity.wait_exponential(multiplier=1, min=1, max=8)
    )
    assert waits(retry) == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_random_exponential_stays_within_its_bounds() -> None:
    retry = Retry(tenacity.stop_after_attempt(8), tenacity.wait_random_exponential(1, max=5))
    result = waits(retry)
    assert len(result) == 7
    assert all(0 <= wait <= 5 for wait in result)


def test_stop_after_delay_measures_from_the_first_attempt() -> None:
    retry = Retry(tenacity.stop_after_delay(10), tenacity.wait_fixed(3))
    # Failures at 0, 3, 6, 9 -> retried; at 12 -> 12s since the start: stop.
    assert waits(retry) == [3.0] * 4
    # The attempts' own duration counts too.
    assert waits(retry, spacing=2) == [3.0, 3.0]


def test_combined_stops_with_or_and_and() -> None:
    either = tenacity.stop_after_attempt(3) | tenacity.stop_after_delay(100)
    assert len(waits(Retry(either, tenacity.wait_fixed(1)))) == 2
    both = tenacity.stop_after_attempt(3) & tenacity.stop_after_delay(5)
    assert len(waits(Retry(both, tenacity.wait_fixed(1)))) == 5


def test_stop_before_delay_accounts_for_the_upcoming_wait() -> None:
    retry = Retry(tenacity.stop_before_delay(10), tenacity.wait_fixed(4))
    # After the failure at 4, waiting 4 more starts the next attempt at 8 (< 10): retry;
    # after the failure at 8, the next would start at 12: stop.
    assert waits(retry) == [4.0, 4.0]


def test_only_transient_failures_are_retried() -> None:
    run = RetryRun(Retry(tenacity.stop_never, tenacity.wait_none(), tenacity.retry_always), 0.0)
    for kind in ErrorKind:
        verdict = Classification(kind)
        expected = 0.0 if kind is ErrorKind.TRANSIENT else None
        assert run.next_wait(Transient(), verdict, 1, 0.0) == expected, kind


def test_retry_predicate_narrows_which_transient_failures_are_retried() -> None:
    retry = Retry(
        tenacity.stop_after_attempt(5),
        tenacity.wait_none(),
        tenacity.retry_if_exception_type(TimeoutError),
    )
    run = RetryRun(retry, 0.0)
    assert run.next_wait(ConnectionError(), TRANSIENT, 1, 0.0) is None
    assert run.next_wait(TimeoutError(), TRANSIENT, 1, 0.0) == 0.0


def test_retry_if_not_exception_type_cannot_retry_a_cancellation() -> None:
    # tenacity#529: this predicate says yes to a cancellation; the kind check says no first.
    retry = Retry(
        tenacity.stop_after_attempt(5),
        tenacity.wait_none(),
        tenacity.retry_if_not_exception_type(ValueError),
    )
    run = RetryRun(retry, 0.0)
    cancelled = Classification(ErrorKind.CANCELLED)
    assert run.next_wait(KeyboardInterrupt(), cancelled, 1, 0.0) is None


def test_a_negative_wait_is_clamped_to_zero() -> None:
    retry = Retry(tenacity.stop_after_attempt(3), lambda state: -5.0)
    assert RetryRun(retry, 0.0).next_wait(Transient(), TRANSIENT, 1, 0.0) == 0.0


def test_runs_are_independent_of_each_other() -> None:
    # One Retry value shared by concurrent calls: each call's run keeps its own count.
    retry = Retry(tenacity.stop_after_attempt(3), tenacity.wait_fixed(1))
    first, second = RetryRun(retry, 0.0), RetryRun(retry, 0.0)
    assert first.next_wait(Transient(), TRANSIENT, 1, 0.0) == 1.0
    assert first.next_wait(Transient(), TRANSIENT, 2, 1.0) == 1.0
    assert first.next_wait(Transient(), TRANSIENT, 3, 2.0) is None
    assert second.next_wait(Transient(), TRANSIENT, 1, 0.0) == 1.0
