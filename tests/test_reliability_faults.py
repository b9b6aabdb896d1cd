"""Faults the other reliability suites did not try (issue 14, local findings A, D, G).

* A: a primary dead for weeks re-opens thousands of times with ``open_backoff`` > 1; each
  re-open must still last at most ``max_open_seconds`` and the fallback must keep answering.
* D: exceptions that fight back (``__str__``/``__repr__`` raising, 10 MB messages, attributes
  that raise, ``BaseException`` subclasses that are not ``Exception``): the attempt is booked,
  the permit given back, the next platform tried, and nothing failover writes (spans, logs,
  ``AllPlatformsFailed``) raises while formatting them.
* G: ``get_health_status()`` on deadlines beyond what a calendar can show (``1e12`` s,
  ``1e300`` s, ``inf``): far-future deadlines read as the last representable instant.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import AllPlatformsFailed, PlatformManager, PlatformSpec, classify
from failover._core.breaker import BreakerSettings, BreakerState, PairBreaker
from failover._core.classify import ErrorKind
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
SPECS = [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1")]


def manager(clock: FakeClock, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("priorities", {TEXT: SPECS})
    return PlatformManager(environ={}, clock=clock, **kwargs)


# -- A: open_backoff overflow ------------------------------------------------------------------


def test_a_breaker_reopened_thousands_of_times_stays_capped() -> None:
    clock = FakeClock()
    settings = BreakerSettings(
        failure_threshold=1, reset_timeout=60, open_backoff=2.0, max_open_seconds=3600
    )
    breaker = PairBreaker(settings, clock)
    breaker.report_failure()
    for reopened in range(1, 3000):
        clock.advance(settings.max_open_seconds)
        permit = breaker.admit()
        assert permit is not None and permit.is_probe
        breaker.on_failure(permit)
        assert breaker.state is BreakerState.OPEN
        assert breaker.reopen_count == reopened
        assert breaker.open_until - clock.now() == min(60 * 2**reopened, 3600)


@pytest.mark.parametrize("backoff", [1.5, 2.0, 10.0, 1e300, math.inf])
def test_a_backed_off_open_duration_never_overflows(backoff: float) -> None:
    clock = FakeClock()
    settings = BreakerSettings(reset_timeout=60, open_backoff=backoff, max_open_seconds=3600)
    breaker = PairBreaker(settings, clock)
    breaker.reopen_count = 10**6
    breaker.force_half_open()
    breaker.report_failure()
    assert breaker.open_until - clock.now() == 3600


async def test_a_dead_primary_for_weeks_still_falls_back_every_time() -> None:
    clock = FakeClock()
    m = manager(clock, failure_threshold=1, open_backoff=2.0, max_open_seconds=3600)
    operation = ScriptedOperation({"alpha": [ConnectionError("down")], "beta": ["from beta"]})
    for _ in range(1100):  # past the 1,024th re-open, where 2.0 ** n stops fitting a float
        result, spec = await m.with_fallback(TEXT, operation)
        assert (result, spec.name) == ("from beta", "beta")
        clock.advance(3600)
    pair = m.get_health_status()["alpha"]["operations"][TEXT]
    assert pair["state"] == "half_open"  # the open duration passed: the next call probes
    assert m._pairs["alpha", TEXT].breaker.reopen_count == 1099  # the first call opened it


# -- G: health on far-future deadlines -----------------------------------------------------------

#: What ``get_health_status()`` shows for a finite deadline past the calendar's end.
LAST_INSTANT = "9999-12-31T23:59:59.999999+00:00"


def strict_json(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` through strict JSON (no NaN or infinity) and back."""
    loaded: dict[str, Any] = json.loads(json.dumps(status, allow_nan=False))
    return loaded


@pytest.mark.parametrize("seconds", [1e12, 1e300])
async def test_g_health_shows_a_far_future_open_deadline_as_the_last_instant(
    seconds: float,
) -> None:
    clock = FakeClock()
    m = manager(clock, cache_ttl_seconds=seconds)
    m.force_open("alpha", TEXT, seconds=seconds)
    await m.report_failure(SPECS[1], TEXT, ConnectionError("down"))
    status = strict_json(m.get_health_status())
    pair = status["alpha"]["operations"][TEXT]
    assert (pair["state"], pair["open_until"], pair["isolated"]) == ("open", LAST_INSTANT, False)
    assert status["beta"]["last_failure"] == "2026-01-01T00:00:00+00:00"


async def test_g_health_shows_an_infinite_open_deadline_as_isolated() -> None:
    m = manager(FakeClock())
    m.force_open("alpha", TEXT, seconds=math.inf)
    pair = strict_json(m.get_health_status())["alpha"]["operations"][TEXT]
    assert (pair["state"], pair["open_until"], pair["isolated"]) == ("open", None, True)


@pytest.mark.parametrize("seconds", [1e12, 1e300])
async def test_g_health_shows_far_future_cooldowns_as_the_last_instant(seconds: float) -> None:
    from failover import CreditExhausted, RateLimited

    m = manager(FakeClock(), cache_ttl_seconds=seconds, rate_limit_max_seconds=math.inf)
    await m.report_failure(SPECS[0], TEXT, CreditExhausted("out of credits"))
    await m.report_failure(SPECS[1], TEXT, RateLimited("slow down", retry_after=seconds))
    status = strict_json(m.get_health_status())
    assert status["alpha"]["cooldown_until"] == LAST_INSTANT
    assert status["beta"]["operations"][TEXT]["cooldown_until"] == LAST_INSTANT
    assert not status["alpha"]["is_healthy"]


async def test_g_health_reads_an_infinite_cooldown_as_no_date() -> None:
    from failover import AuthFailed

    m = manager(FakeClock(), auth_cooldown_seconds=math.inf)
    await m.report_failure(SPECS[0], TEXT, AuthFailed("bad key"))
    status = strict_json(m.get_health_status())
    assert (status["alpha"]["cooldown_reason"], status["alpha"]["cooldown_until"]) == (
        "auth",
        None,
    )
