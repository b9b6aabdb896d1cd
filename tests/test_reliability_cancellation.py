"""Cancellation at every point of a call, and no double work (asyncio and trio).

The matrix cancels a traced, metered call (in-memory exporter and metric reader) at each point:
during an attempt, during an attempt on a fallback platform, during a retry wait, by the
caller's own deadline, by the call's deadline (``Policy(deadline=...)``), when a sibling task
in the caller's task group fails, and during a half-open probe. Each time:

* the cancellation is never counted as a failure (breaker counters, health, metrics),
* it reaches the caller unchanged (the very exception object the operation saw),
* no permit is leaked (no probe slot held afterwards),
* every span that was started has ended,
* health reads exactly as it did just before the cancellation.

Then "no double work": once an attempt succeeds no other platform (and no retry) is called,
and no retry starts after a cancellation, checked over random scripts with Hypothesis.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from failover import (
    AllPlatformsFailed,
    AuthFailed,
    BadRequest,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Retry,
    Transient,
)
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
SPECS = [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1"), PlatformSpec("gamma", "g-1")]


class OpenSpans(SpanProcessor):
    """Remembers every span started and crosses it off when it ends."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span.name)
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.pop(span.context.span_id, None)


@dataclass
class Rig:
    manager: PlatformManager
    clock: FakeClock
    spans: OpenSpans
    reader: InMemoryMetricReader
    seen_inside: list[BaseException] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def attempts(self) -> Counter[tuple[str, str]]:
        """``failover.attempts`` by (platform, outcome), as exported."""
        counts: Counter[tuple[str, str]] = Counter()
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "failover.attempts":
                        for point in metric.data.data_points:  # type: ignore[union-attr]
                            attributes = point.attributes or {}
                            key = (
                                str(attributes["failover.platform"]),
                                str(attributes["failover.outcome"]),
                            )
                            counts[key] += int(point.value)  # type: ignore[union-attr]
        return counts

    def health(self) -> dict[str, Any]:
        """Health as JSON, minus the two fields a held probe slot legitimately changes."""
        status = json.loads(json.dumps(self.manager.get_health_status()))
        for platform in status.values():
            for detail in platform["operations"].values():
                detail.pop("usable")
                detail.pop("skip_reason")
        return status

    def breakers(self) -> dict[str, tuple[str, int]]:
        return {
            pair.spec.name: (pair.breaker.state.value, pair.breaker.consecutive_failures)
            for pair in self.manager._pairs.values()
        }

    def probes_held(self) -> int:
        return sum(len(pair.breaker.probes) for pair in self.manager._pairs.values())


def rig(**kwargs: Any) -> Rig:
    clock = FakeClock()
    spans = OpenSpans()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(spans)
    reader = InMemoryMetricReader()
    kwargs.setdefault("failure_threshold", 1)
    manager = PlatformManager(
        {TEXT: SPECS},
        clock=clock,
        environ={},
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        **kwargs,
    )
    return Rig(manager, clock, spans, reader)


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(10_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{what} never became true")


RETRY_AT_ONCE = Policy(retry=Retry(tenacity.stop_after_attempt(5), tenacity.wait_none()))
RETRY_AFTER_10S = Policy(retry=Retry(tenacity.stop_after_attempt(3), tenacity.wait_fixed(10)))


@dataclass
class Point:
    """One place to cancel: how to set the manager up and how to cancel there."""

    name: str
    manager_kwargs: dict[str, Any]
    #: Which platform hangs (the others fail with Transient before it is reached).
    hangs_on: str | None
    #: The attempt outcome counted as "cancelled" in metrics (None: no attempt was cut).
    cut_attempt: str | None
    prepare: Callable[[Rig], None] = lambda rig: None


POINTS = [
    Point("during_an_attempt", {"policy": RETRY_AT_ONCE}, "alpha", "alpha"),
    Point("during_a_fallback_attempt", {"policy": RETRY_AT_ONCE}, "beta", "beta"),
    Point("during_a_retry_wait", {"policy": RETRY_AFTER_10S, "failure_threshold": 5}, None, None),
    Point("by_the_callers_deadline", {"policy": RETRY_AT_ONCE}, "alpha", "alpha"),
    Point("by_the_calls_deadline", {"policy": Policy(deadline=5)}, "alpha", "alpha"),
    Point("when_a_sibling_task_fails", {"policy": RETRY_AT_ONCE}, "alpha", "alpha"),
    Point(
        "during_a_half_open_probe",
        {"cache_ttl_seconds": 60},
        "alpha",
        "alpha",
        prepare=lambda rig: (rig.manager.force_open("alpha", TEXT), rig.clock.advance(60))[-1],
    ),
]


def operation_for(rig: Rig, point: Point) -> Callable[[PlatformSpec], Awaitable[str]]:
    async def operation(platform: PlatformSpec) -> str:
        rig.calls.append(platform.name)
        if point.hangs_on is None or platform.name != point.hangs_on:
            if point.hangs_on == "beta" or point.hangs_on is None:
                raise Transient("upstream hiccup")
            return platform.name
        try:
            await rig.clock.sleep(1_000)
        except BaseException as exc:
            rig.seen_inside.append(exc)
            raise
        return "never"

    return operation


@pytest.mark.parametrize("point", POINTS, ids=[point.name for point in POINTS])
async def test_cancellation_matrix(point: Point) -> None:
    rig_ = rig(**point.manager_kwargs)
    point.prepare(rig_)
    operation = operation_for(rig_, point)
    outside: list[BaseException] = []
    cancelled = anyio.get_cancelled_exc_class()

    async def caller() -> None:
        try:
            if point.name == "by_the_callers_deadline":
                with rig_.clock.cancel_scope(5) as scope:
                    await rig_.manager.with_fallback(TEXT, operation)
                assert scope.cancelled_caught
            else:
                await rig_.manager.with_fallback(TEXT, operation)
        except AllPlatformsFailed as exc:
            outside.append(exc)  # the call's own deadline ended it: a result, not a crash
        except BaseException as exc:
            outside.append(exc)
            raise

    before: dict[str, Any] = {}
    failures_before: Counter[tuple[str, str]] = Counter()

    def snapshot() -> None:
        before.update(health=rig_.health(), breakers=rig_.breakers(), metrics=rig_.attempts())

    group_error: BaseException | None = None
    with anyio.CancelScope() as outer:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(caller)
                await wait_until(lambda: rig_.clock.sleepers == 1, "the call to reach the point")
                snapshot()
                failures_before.update(before["metrics"])
                if point.name in ("by_the_callers_deadline", "by_the_calls_deadline"):
                    rig_.clock.advance(5)
                elif point.name == "when_a_sibling_task_fails":
                    raise ValueError("a sibling failed")
                else:
                    outer.cancel()
        except BaseExceptionGroup as group:
            group_error = group

    # 1. what the caller saw
    if point.name == "by_the_calls_deadline":
        # The call's own deadline is failover's: it ends the call with the full history.
        assert len(outside) == 1
        assert isinstance(outside[0], AllPlatformsFailed)
        assert outside[0].reason == "deadline of 5s exceeded"
        assert [(a.platform, a.outcome) for a in outside[0].attempts] == [("alpha", "cancelled")]
    elif point.name == "by_the_callers_deadline":
        assert outside == []  # the caller's scope swallowed its own cancellation
        assert len(rig_.seen_inside) == 1
        assert isinstance(rig_.seen_inside[0], cancelled)
    else:
        assert len(outside) == 1
        assert isinstance(outside[0], cancelled), f"converted into {outside[0]!r}"
        if rig_.seen_inside:
            assert outside[0] is rig_.seen_inside[0]
    if point.name == "when_a_sibling_task_fails":
        assert group_error is not None
        assert [type(exc) for exc in group_error.exceptions] == [ValueError]  # type: ignore[attr-defined]
    else:
        assert group_error is None
    # 2. nothing counted, nothing leaked, nothing left open
    assert rig_.breakers() == before["breakers"]
    assert rig_.health() == before["health"]
    assert rig_.probes_held() == 0
    assert rig_.spans.started, "tracing was on"
    assert rig_.spans.open == {}, f"spans left open: {rig_.spans.open}"
    metrics = rig_.attempts()
    for (platform, outcome), count in metrics.items():
        if outcome != "cancelled":
            assert count == failures_before[(platform, outcome)], (platform, outcome)
    cut = sum(count for (_, outcome), count in metrics.items() if outcome == "cancelled")
    assert cut == (0 if point.cut_attempt is None else 1)
    if point.cut_attempt is not None:
        assert metrics[(point.cut_attempt, "cancelled")] == 1
    # 3. no retry or fallback started after the cancellation, even once time moves on
    calls = list(rig_.calls)
    rig_.clock.advance(10_000)
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    assert rig_.calls == calls
    assert calls[-1] == (point.hangs_on or "alpha")
    # 4. the pair is usable again (a probe slot was given back)
    if point.name == "during_a_half_open_probe":
        assert rig_.manager.get_health_status()["alpha"]["operations"][TEXT]["usable"]


# -- no double work ---------------------------------------------------------------------------

OUTCOMES: dict[str, Callable[[], BaseException] | None] = {
    "ok": None,
    "transient": lambda: Transient("503"),
    "rate_limited": lambda: RateLimited("429", retry_after=1),
    "credit": lambda: CreditExhausted("402"),
    "auth": lambda: AuthFailed("401"),
    "content_policy": lambda: BadRequest("flagged", reason="content_policy"),
    "bad_request": lambda: BadRequest("malformed"),
}

scripts = st.fixed_dictionaries(
    {
        spec.name: st.lists(st.sampled_from(sorted(OUTCOMES)), min_size=1, max_size=4)
        for spec in SPECS
    }
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(
    script=scripts,
    retries=st.integers(1, 3),
    threshold=st.integers(1, 3),
    max_attempts=st.integers(1, 8),
    calls=st.integers(1, 4),
)
@settings(max_examples=150)
def test_no_double_work_over_random_scripts(
    backend: str,
    script: dict[str, list[str]],
    retries: int,
    threshold: int,
    max_attempts: int,
    calls: int,
) -> None:
    """Per call: invocations are exactly the recorded attempts; a success is the last one."""
    clock = FakeClock(autojump=True)
    manager = PlatformManager(
        {TEXT: SPECS},
        clock=clock,
        environ={},
        failure_threshold=threshold,
        max_attempts=max_attempts,
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(retries), tenacity.wait_fixed(1))),
    )
    positions = dict.fromkeys(script, 0)
    log: list[tuple[int, str, str]] = []

    async def operation(platform: PlatformSpec, call: int) -> str:
        outcomes = script[platform.name]
        outcome = outcomes[min(positions[platform.name], len(outcomes) - 1)]
        positions[platform.name] += 1
        log.append((call, platform.name, outcome))
        await anyio.lowlevel.checkpoint()
        error = OUTCOMES[outcome]
        if error is not None:
            raise error()
        return platform.name

    async def main() -> None:
        for call in range(calls):
            try:
                result, spec = await manager.with_fallback(TEXT, operation, call)
            except AllPlatformsFailed as exc:
                tried = [(a.platform, a.outcome) for a in exc.attempts if a.outcome != "skipped"]
                mine = [(platform, "failure") for c, platform, _ in log if c == call]
                assert tried == mine
                assert all(outcome != "ok" for c, _, outcome in log if c == call)
            except BadRequest:
                assert [o for c, _, o in log if c == call][-1] == "bad_request"
            else:
                mine_ = [(platform, outcome) for c, platform, outcome in log if c == call]
                assert mine_[-1] == (spec.name, "ok")
                assert result == spec.name
                assert [o for _, o in mine_].count("ok") == 1
            assert len([entry for entry in log if entry[0] == call]) <= max_attempts
            count = len(log)
            for _ in range(20):  # nothing runs on behind the caller's back
                await anyio.lowlevel.checkpoint()
            assert len(log) == count

    anyio.run(main, backend=backend)


async def test_no_other_platform_or_retry_after_a_success_under_concurrency() -> None:
    clock = FakeClock(autojump=True)
    manager = PlatformManager(
        {TEXT: SPECS},
        clock=clock,
        environ={},
        failure_threshold=1_000,
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(3), tenacity.wait_fixed(0.5))),
    )
    log: list[tuple[int, str, int]] = []
    answered: dict[int, str] = {}

    async def operation(platform: PlatformSpec, call: int) -> str:
        attempt = sum(1 for c, _, _ in log if c == call)
        log.append((call, platform.name, attempt))
        await anyio.lowlevel.checkpoint()
        # Calls fail a number of times that depends on the call: 0..4 failures.
        if attempt < call % 5:
            raise Transient("503")
        return platform.name

    async def caller(call: int) -> None:
        answered[call] = (await manager.with_fallback(TEXT, operation, call))[0]

    async with anyio.create_task_group() as tg:
        for call in range(500):
            tg.start_soon(caller, call)
    for call in range(500):
        mine = [(platform, attempt) for c, platform, attempt in log if c == call]
        failures = call % 5
        assert len(mine) == failures + 1  # exactly one success, and it was the last
        expected = ["alpha"] * min(failures + 1, 3) + ["beta"] * max(failures + 1 - 3, 0)
        assert [platform for platform, _ in mine] == expected
        assert answered[call] == expected[-1]
