"""The failure-rate and slow-call breaker: opt-in rate rules beside the consecutive count."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from failover import BreakerPolicy, ConfigError, PlatformManager, PlatformSpec, Policy
from failover._config.load import settings_from_toml
from failover._core.breaker import (
    MAX_BUCKETS,
    BreakerSettings,
    BreakerState,
    PairBreaker,
    RateWindow,
)
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "text_generation"
SPECS = [PlatformSpec("primary", "p-1"), PlatformSpec("secondary", "s-1")]


class TwoInThree:
    """The primary fails two calls in three, never three in a row; the secondary answers."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.primary_calls = 0
        self.failed_attempts = 0

    async def __call__(self, platform: PlatformSpec) -> str:
        self.clock.advance(1.0)
        if platform.name == "primary":
            self.primary_calls += 1
            if self.primary_calls % 3:
                self.failed_attempts += 1
                raise ConnectionError("upstream reset")
        return platform.name


async def _run_300(**settings: Any) -> tuple[PlatformManager, TwoInThree]:
    clock = FakeClock()
    manager = PlatformManager({OP: SPECS}, clock=clock, environ={}, **settings)
    operation = TwoInThree(clock)
    for _ in range(300):
        await manager.with_fallback(OP, operation)
    return manager, operation


async def test_a_provider_failing_two_calls_in_three_stays_closed_by_default() -> None:
    manager, operation = await _run_300()
    assert operation.failed_attempts == 200
    assert manager.get_health_status()["primary"]["operations"][OP]["state"] == "closed"


async def test_the_failure_rate_opens_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="failover")
    _, operation = await _run_300(
        failure_rate_threshold=0.5, minimum_calls=10, window_seconds=60, cache_ttl_seconds=120
    )
    # Opened after its first 10 calls, then one probe per 120 s open period (each call
    # advances the clock 1 s): far fewer failed attempts than the 200 without the rule.
    assert operation.failed_attempts < 20
    assert "Marking primary unhealthy for text_generation: failure rate 70%" in caplog.text


def test_the_window_forgets_what_is_older_than_it() -> None:
    clock = FakeClock()
    breaker = PairBreaker(
        BreakerSettings(failure_rate_threshold=0.5, minimum_calls=4, window_seconds=10), clock
    )
    for _ in range(2):  # 2 failures, then 10 s later 2 more calls: only those are counted
        permit = breaker.admit()
        assert permit is not None
        breaker.on_failure(permit, 0.1)
        breaker.on_success(permit, 0.1)  # a success between: never two failures in a row
    assert breaker.window is not None
    assert breaker.window.calls == 4
    clock.advance(10)
    breaker.window.advance(clock.now())
    assert breaker.window.calls == 0
    permit = breaker.admit()
    assert permit is not None
    breaker.on_failure(permit, 0.1)
    assert breaker.state is BreakerState.CLOSED  # 1 call in the window: below minimum_calls


def test_the_rate_rule_needs_minimum_calls() -> None:
    clock = FakeClock()
    breaker = PairBreaker(
        BreakerSettings(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=5),
        clock,
    )
    for _ in range(4):
        permit = breaker.admit()
        assert permit is not None
        breaker.on_failure(permit, 0.1)
    assert breaker.state is BreakerState.CLOSED
    permit = breaker.admit()
    assert permit is not None
    breaker.on_failure(permit, 0.1)
    assert breaker.state is BreakerState.OPEN


async def test_slow_calls_open_the_pair() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {OP: SPECS},
        clock=clock,
        environ={},
        slow_call_seconds=2,
        slow_call_rate_threshold=0.5,
        minimum_calls=4,
    )

    async def slow_primary(platform: PlatformSpec) -> str:
        clock.advance(3.0 if platform.name == "primary" else 0.1)
        return platform.name

    served = [(await manager.with_fallback(OP, slow_primary))[0] for _ in range(6)]
    assert served == ["primary"] * 4 + ["secondary"] * 2
    assert manager.get_health_status()["primary"]["operations"][OP]["state"] == "open"


async def test_settings_per_operation_and_platform() -> None:
    manager = PlatformManager(
        {OP: SPECS, "image_editing": SPECS},
        environ={},
        operation_policies={OP: Policy(breaker=BreakerPolicy(failure_rate_threshold=0.5))},
        platform_policies={"secondary": Policy(breaker=BreakerPolicy(minimum_calls=3))},
    )
    pairs = manager._pairs
    assert pairs["primary", OP].breaker.settings.failure_rate_threshold == 0.5
    assert pairs["primary", OP].breaker.settings.minimum_calls == 10
    assert pairs["secondary", OP].breaker.settings.failure_rate_threshold == 0.5
    assert pairs["secondary", OP].breaker.settings.minimum_calls == 3
    assert pairs["primary", "image_editing"].breaker.window is None
    # The routes with a window leave the fast path (it would not count successes).
    assert not manager._routes[OP].plain
    assert manager._routes["image_editing"].plain


def test_toml_sets_them_at_every_level() -> None:
    kwargs = settings_from_toml(
        {
            "failover": {"failure_rate_threshold": 0.5, "window_seconds": 30},
            "priorities": {OP: ["groq/llama", "openai/gpt"]},
            "operations": {OP: {"minimum_calls": 20}},
            "platforms": {"openai": {"slow_call_seconds": 5, "slow_call_rate_threshold": 0.9}},
        },
        "failover.toml",
    )
    manager = PlatformManager(environ={}, **kwargs)
    groq = manager._pairs["groq", OP].breaker.settings
    openai = manager._pairs["openai", OP].breaker.settings
    assert (groq.failure_rate_threshold, groq.window_seconds, groq.minimum_calls) == (0.5, 30, 20)
    assert openai.slow_call_seconds == 5
    assert openai.slow_call_rate_threshold == 0.9


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"window_seconds": -1}, "window_seconds"),
        ({"slow_call_seconds": 2}, "slow_call_rate_threshold"),
        ({"slow_call_rate_threshold": 0.5}, "slow_call_seconds"),
    ],
)
def test_bad_settings_name_the_parameter(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        PlatformManager({OP: SPECS}, environ={}, **settings)


def test_a_bad_breaker_policy_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"BreakerPolicy\.failure_rate_threshold"):
        BreakerPolicy(failure_rate_threshold=2)
    with pytest.raises(ConfigError, match="slow_call_rate_threshold"):
        PlatformManager(
            {OP: SPECS},
            environ={},
            platform_policies={"primary": Policy(breaker=BreakerPolicy(slow_call_seconds=1))},
        )


def test_memory_per_pair_is_bounded() -> None:
    """A day-long window keeps 60 buckets like a minute-long one: under 1.8 KB a pair."""
    for seconds in (10.0, 60.0, 86_400.0):
        window = RateWindow(seconds)
        size = sys.getsizeof(window) + sys.getsizeof(window._counts)
        assert size <= 1800, (seconds, size)
    assert len(RateWindow(86_400.0)._counts) == 3 * MAX_BUCKETS
    plain = PairBreaker(BreakerSettings(), FakeClock())
    assert plain.window is None  # nothing kept without a rate rule
