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
        assert permit is not None
        assert permit.is_probe
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


# -- D: exceptions that fight back -----------------------------------------------------------------


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ refused")


class ReprRaises(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refused")


class BothRaise(StrRaises, ReprRaises):
    pass


class StrNotAString(Exception):
    def __str__(self) -> Any:
        return 42


class AttributesRaise(StrRaises):
    """Every attribute classification looks at raises, as a broken proxy object's would."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no reading {name}")

    @property
    def status_code(self) -> int:
        raise RuntimeError("status_code refused")

    @property
    def response(self) -> Any:
        raise RuntimeError("response refused")


class NotAnException(BaseException):
    """A ``BaseException`` that is not an ``Exception``: not the platform's fault."""


def hostile() -> list[Exception]:
    return [
        StrRaises("quota"),
        ReprRaises("boom"),
        BothRaise(),
        StrNotAString(),
        AttributesRaise(),
        ValueError("x" * 10_000_000),
    ]


HOSTILE_IDS = ["str_raises", "repr_raises", "both_raise", "str_not_str", "attrs_raise", "10MB"]


@pytest.mark.parametrize("error", hostile(), ids=HOSTILE_IDS)
def test_d_classify_reads_a_hostile_exception_as_transient(error: Exception) -> None:
    assert classify(error).kind is ErrorKind.TRANSIENT


def test_d_a_classifier_that_raises_has_no_say() -> None:
    def refuses(exc: BaseException) -> Any:
        return "quota" in str(exc)[1000]  # a classifier with a bug of its own

    assert classify(StrRaises(), (refuses,)).kind is ErrorKind.TRANSIENT


def test_d_a_10mb_message_is_read_in_bounded_time() -> None:
    import time

    error = ValueError("x" * 10_000_000 + " out of credits")
    started = time.perf_counter()
    for _ in range(20):
        classify(error)
    assert time.perf_counter() - started < 1.0


def traced(clock: FakeClock, **kwargs: Any) -> tuple[PlatformManager, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return manager(clock, tracer_provider=provider, **kwargs), exporter


@pytest.mark.parametrize("error", hostile(), ids=HOSTILE_IDS)
async def test_d_a_hostile_probe_failure_is_booked_and_the_next_platform_answers(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    m, exporter = traced(clock, failure_threshold=1)
    m.force_open("alpha", TEXT, seconds=60)
    clock.advance(60)
    operation = ScriptedOperation({"alpha": [error], "beta": ["from beta"]})
    with caplog.at_level(logging.DEBUG, logger="failover"):
        result, spec = await m.with_fallback(TEXT, operation)
    assert (result, spec.name) == ("from beta", "beta")
    breaker = m._pairs["alpha", TEXT].breaker
    assert (breaker.state, breaker.reopen_count, breaker.probes) == (BreakerState.OPEN, 1, ())
    assert m.get_health_status()["alpha"]["operations"][TEXT]["failures"] == 1
    failed = [span for span in exporter.get_finished_spans() if "a-1" in span.name]
    assert len(failed) == 1
    assert failed[0].attributes is not None
    assert failed[0].attributes["error.type"] == type(error).__qualname__
    for event in failed[0].events:
        assert len(str((event.attributes or {}).get("exception.message", ""))) <= 2048
    assert all(len(record.getMessage()) < 10_000 for record in caplog.records)


@pytest.mark.parametrize("error", hostile(), ids=HOSTILE_IDS)
async def test_d_every_platform_failing_hostilely_still_tells_the_whole_story(
    error: Exception,
) -> None:
    clock = FakeClock()
    m, _ = traced(clock)
    operation = ScriptedOperation({"alpha": [error], "beta": [error]})
    with pytest.raises(AllPlatformsFailed) as raised:
        await m.with_fallback(TEXT, operation)
    attempts = raised.value.attempts
    assert [(a.platform, a.outcome, a.error_type) for a in attempts] == [
        ("alpha", "failure", type(error).__qualname__),
        ("beta", "failure", type(error).__qualname__),
    ]
    assert raised.value.last_error is error
    assert len(str(raised.value)) < 1000


async def test_d_a_base_exception_from_a_probe_gives_the_permit_back() -> None:
    clock = FakeClock()
    m, _ = traced(clock)
    m.force_open("alpha", TEXT, seconds=60)
    clock.advance(60)
    error = NotAnException("not the platform's fault")
    operation = ScriptedOperation({"alpha": [error]})
    with pytest.raises(NotAnException) as raised:
        await m.with_fallback(TEXT, operation)
    assert raised.value is error
    breaker = m._pairs["alpha", TEXT].breaker
    assert (breaker.state, breaker.probes, breaker.consecutive_failures) == (
        BreakerState.HALF_OPEN,
        (),
        0,
    )
    assert breaker.would_admit()


@pytest.mark.parametrize("error", hostile(), ids=HOSTILE_IDS)
async def test_d_report_failure_books_a_hostile_exception(error: Exception) -> None:
    m = manager(FakeClock(), failure_threshold=1)
    await m.report_failure(SPECS[0], TEXT, error)
    assert m.get_health_status()["alpha"]["operations"][TEXT]["state"] == "open"


async def test_d_report_failure_of_a_base_exception_counts_nothing() -> None:
    m = manager(FakeClock(), failure_threshold=1)
    before = m.get_health_status()
    await m.report_failure(SPECS[0], TEXT, NotAnException())
    assert m.get_health_status() == before


def test_d_failovers_log_filter_survives_hostile_records(caplog: pytest.LogCaptureFixture) -> None:
    from failover._observe.scrub import get_logger

    logger = get_logger("failover")
    with caplog.at_level(logging.DEBUG, logger="failover"):
        logger.warning("argument %s", BothRaise())
        try:
            raise BothRaise()
        except BothRaise:
            logger.exception("failed")
        try:
            raise ValueError("y" * 10_000_000)
        except ValueError:
            logger.exception("failed big")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("argument ")
    assert messages[1].startswith("failed [BothRaise")
    assert messages[2].startswith("failed big [ValueError: yyy")
    assert len(messages[2]) < 10_000
