"""Spans, events and metrics of a call, read back from the SDK's in-memory exporter and reader.

Each scenario asserts the whole tree: span names, kinds, parent links, attributes, events and
status. Providers are handed to the manager (``tracer_provider=``/``meter_provider=``); the
process-wide providers are never set here (see ``test_telemetry_lazy.py`` for that).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import tenacity
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

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
from failover._observe.telemetry import gen_ai_operation
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

OP = "image_editing"
PLATFORMS = [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]


@dataclass
class Otel:
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(exporter, tracer_provider, reader, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def make_manager(otel: Otel, clock: FakeClock | None = None, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("priorities", {OP: PLATFORMS})
    return PlatformManager(
        clock=clock or FakeClock(),
        environ={},
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        **kwargs,
    )


def tree(spans: list[ReadableSpan]) -> list[tuple[int, str, SpanKind]]:
    """(depth, name, kind) in depth-first order, children by start time; checks one root."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans if span.context is not None}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        assert parent is None or parent in ids, f"{span.name} has a parent outside the trace"
        by_parent.setdefault(parent, []).append(span)
    roots = by_parent.get(None, [])
    assert len(roots) == 1, [span.name for span in roots]
    assert len({span.context.trace_id for span in spans if span.context is not None}) == 1
    rows: list[tuple[int, str, SpanKind]] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        rows.append((depth, span.name, span.kind))
        assert span.context is not None
        for child in sorted(by_parent.get(span.context.span_id, []), key=start_time):
            walk(child, depth + 1)

    walk(roots[0], 0)
    return rows


def start_time(span: ReadableSpan) -> int:
    return span.start_time or 0


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def attempts_of(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted((span for span in spans if span.kind is SpanKind.CLIENT), key=start_time)


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(event.name, dict(event.attributes or {})) for event in span.events]


def call_attributes(span: ReadableSpan) -> dict[str, Any]:
    """The call span's attributes, less the order the ordering strategy reports (checked
    here to be the configured priority order, when present)."""
    attributes = dict(span.attributes or {})
    order = attributes.pop("failover.order", None)
    reason = attributes.pop("failover.order.reason", None)
    if order is not None:
        assert tuple(order) == tuple(name for name, _ in PLATFORMS)
        assert reason == "priority"
    return attributes


def attempt_attributes(platform: str, model: str, attempt: int, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.output.type": "image",
        "gen_ai.provider.name": platform,
        "gen_ai.request.model": model,
        "failover.operation": OP,
        "failover.platform": platform,
        "failover.attempt": attempt,
        "failover.breaker.state": "closed",
        **extra,
    }


def metric_points(otel: Otel, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    data = otel.reader.get_metrics_data()
    points: dict[frozenset[tuple[str, Any]], Any] = {}
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "failover"
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        points[frozenset((point.attributes or {}).items())] = point
    return points


def attrs(**values: Any) -> frozenset[tuple[str, Any]]:
    return frozenset((f"failover.{key}", value) for key, value in values.items())


# -- span trees --------------------------------------------------------------------------------


async def test_success_on_first_platform(otel: Otel) -> None:
    manager = make_manager(otel)

    result, spec = await manager.with_fallback(OP, ScriptedOperation({}, default="png"))

    assert (result, spec.name) == ("png", "alpha")
    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.platform": "alpha",
        "failover.attempts": 1,
        "failover.fallbacks": 0,
    }
    assert call.status.status_code is StatusCode.UNSET
    assert events(call) == []
    (attempt,) = attempts_of(spans)
    assert dict(attempt.attributes or {}) == attempt_attributes("alpha", "a-1", 1)
    assert attempt.status.status_code is StatusCode.UNSET
    assert events(attempt) == []
    assert call.start_time is not None
    assert attempt.start_time is not None
    assert call.end_time is not None
    assert attempt.end_time is not None
    assert call.start_time <= attempt.start_time <= attempt.end_time <= call.end_time


async def test_skip_of_open_pair_then_success(otel: Otel) -> None:
    manager = make_manager(otel)
    manager.force_open("alpha", OP)

    _, spec = await manager.with_fallback(OP, ScriptedOperation({}, default="png"))

    assert spec.name == "beta"
    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content b-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.platform": "beta",
        "failover.attempts": 1,
        "failover.fallbacks": 1,
    }
    assert events(call) == [
        (
            "failover.platform.skipped",
            {"failover.platform": "alpha", "failover.skip.reason": "open"},
        )
    ]
    (attempt,) = attempts_of(spans)
    assert dict(attempt.attributes or {}) == attempt_attributes("beta", "b-1", 1)


async def test_missing_key_skip_is_an_event_but_not_a_fallback(otel: Otel) -> None:
    manager = make_manager(
        otel,
        priorities={
            OP: [
                PlatformSpec("alpha", "a-1", api_key_env="ALPHA_KEY"),
                PlatformSpec("beta", "b-1"),
            ]
        },
    )

    await manager.with_fallback(OP, ScriptedOperation({}))

    call = one(otel.spans(), "failover image_editing")
    assert (call.attributes or {})["failover.fallbacks"] == 0
    assert events(call) == [
        (
            "failover.platform.skipped",
            {"failover.platform": "alpha", "failover.skip.reason": "missing_api_key"},
        )
    ]


async def test_credit_error_then_success(otel: Otel) -> None:
    manager = make_manager(otel, cache_ttl_seconds=120)
    operation = ScriptedOperation({"alpha": [CreditExhausted("402 payment required")]})

    _, spec = await manager.with_fallback(OP, operation)

    assert spec.name == "beta"
    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
        (1, "generate_content b-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.platform": "beta",
        "failover.attempts": 2,
        "failover.fallbacks": 1,
    }
    assert call.status.status_code is StatusCode.UNSET
    assert events(call) == [
        (
            "failover.platform.cooldown",
            {
                "failover.platform": "alpha",
                "failover.operation": OP,
                "failover.cooldown.reason": "credit",
                "failover.cooldown.seconds": 120.0,
                "failover.cooldown.scope": "platform",
            },
        )
    ]
    failed, answered = attempts_of(spans)
    assert dict(failed.attributes or {}) == attempt_attributes(
        "alpha",
        "a-1",
        1,
        **{"error.type": "CreditExhausted", "failover.error.kind": "credit_exhausted"},
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "CreditExhausted: 402 payment required"
    assert events(failed) == [
        (
            "exception",
            {
                "exception.type": "failover._core.errors.CreditExhausted",
                "exception.message": "402 payment required",
            },
        )
    ]
    assert dict(answered.attributes or {}) == attempt_attributes("beta", "b-1", 2)
    assert answered.status.status_code is StatusCode.UNSET


async def test_retry_wait_then_success(otel: Otel) -> None:
    clock = FakeClock(autojump=True)
    manager = make_manager(
        otel,
        clock,
        policy=Policy(
            retry=Retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(2.5))
        ),
    )
    operation = ScriptedOperation({"alpha": [Transient("503 overloaded"), "png"]})
    before = clock.now()

    _, spec = await manager.with_fallback(OP, operation)

    assert spec.name == "alpha"
    assert clock.now() - before == 2.5
    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
        (1, "generate_content a-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.platform": "alpha",
        "failover.attempts": 2,
        "failover.fallbacks": 0,
    }
    assert events(call) == [
        (
            "failover.retry",
            {
                "failover.platform": "alpha",
                "failover.attempt": 1,
                "failover.retry.wait": 2.5,
                "error.type": "Transient",
            },
        )
    ]
    first, second = attempts_of(spans)
    assert dict(first.attributes or {}) == attempt_attributes(
        "alpha", "a-1", 1, **{"error.type": "Transient", "failover.error.kind": "transient"}
    )
    assert dict(second.attributes or {}) == attempt_attributes("alpha", "a-1", 2)
    # The retry event sits between the two attempts in time.
    (retry_event,) = call.events
    assert first.end_time is not None
    assert second.start_time is not None
    assert first.end_time <= retry_event.timestamp <= second.start_time


async def test_all_platforms_failed(otel: Otel) -> None:
    manager = make_manager(otel, failure_threshold=1)
    operation = ScriptedOperation(
        {
            "alpha": [Transient("503")],
            "beta": [RateLimited("slow down", retry_after=30)],
            "gamma": [AuthFailed("401 invalid key")],
        }
    )

    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(OP, operation)

    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
        (1, "generate_content b-1", SpanKind.CLIENT),
        (1, "generate_content g-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.attempts": 3,
        "failover.fallbacks": 2,
        "error.type": "AllPlatformsFailed",
    }
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description is not None
    assert call.status.description.startswith(
        "AllPlatformsFailed: all platforms failed for 'image_editing'"
    )
    assert events(call) == [
        (
            "failover.breaker.transition",
            {
                "failover.pair": "alpha:image_editing",
                "failover.platform": "alpha",
                "failover.operation": OP,
                "failover.breaker.from": "closed",
                "failover.breaker.to": "open",
                "failover.breaker.reason": "1 consecutive failures",
            },
        ),
        (
            "failover.platform.cooldown",
            {
                "failover.platform": "beta",
                "failover.operation": OP,
                "failover.cooldown.reason": "rate_limited",
                "failover.cooldown.seconds": 30.0,
                "failover.cooldown.scope": "pair",
            },
        ),
        (
            "failover.platform.cooldown",
            {
                "failover.platform": "gamma",
                "failover.operation": OP,
                "failover.cooldown.reason": "auth",
                "failover.cooldown.seconds": 1200.0,
                "failover.cooldown.scope": "platform",
            },
        ),
        (
            "exception",
            {
                "exception.type": "failover._core.errors.AllPlatformsFailed",
                "exception.message": str(caught.value),
            },
        ),
    ]
    kinds = [
        (
            (span.attributes or {})["failover.platform"],
            (span.attributes or {})["error.type"],
            (span.attributes or {})["failover.error.kind"],
            span.status.status_code,
        )
        for span in attempts_of(spans)
    ]
    assert kinds == [
        ("alpha", "Transient", "transient", StatusCode.ERROR),
        ("beta", "RateLimited", "rate_limited", StatusCode.ERROR),
        ("gamma", "AuthFailed", "auth", StatusCode.ERROR),
    ]


async def test_half_open_probe_records_its_transitions_on_the_probing_call(otel: Otel) -> None:
    clock = FakeClock()
    manager = make_manager(otel, clock, failure_threshold=1, cache_ttl_seconds=60)
    await manager.with_fallback(OP, ScriptedOperation({"alpha": [Transient("503")]}))
    otel.exporter.clear()
    clock.advance(61)

    await manager.with_fallback(OP, ScriptedOperation({}))

    spans = otel.spans()
    assert tree(spans) == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
    ]
    call = one(spans, "failover image_editing")
    transitions = [
        (attributes["failover.breaker.from"], attributes["failover.breaker.to"])
        for name, attributes in events(call)
        if name == "failover.breaker.transition"
    ]
    assert transitions == [("open", "half_open"), ("half_open", "closed")]
    (probe,) = attempts_of(spans)
    assert (probe.attributes or {})["failover.breaker.state"] == "half_open"


async def test_request_fault_that_raises_marks_both_spans(otel: Otel) -> None:
    manager = make_manager(otel)

    with pytest.raises(BadRequest):
        await manager.with_fallback(OP, ScriptedOperation({"alpha": [BadRequest("bad size")]}))

    spans = otel.spans()
    call = one(spans, "failover image_editing")
    assert call_attributes(call) == {
        "failover.operation": OP,
        "failover.attempts": 1,
        "failover.fallbacks": 0,
        "error.type": "BadRequest",
    }
    assert call.status.description == "BadRequest: bad size"
    (attempt,) = attempts_of(spans)
    assert (attempt.attributes or {})["failover.error.kind"] == "request"


async def test_deadline_sets_the_call_summary(otel: Otel) -> None:
    clock = FakeClock()
    manager = make_manager(otel, clock, policy=Policy(deadline=5))

    async def hangs(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            raise Transient("503")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with anyio.create_task_group() as tg:

        async def call() -> None:
            with pytest.raises(AllPlatformsFailed, match="deadline"):
                await manager.with_fallback(OP, hangs)

        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        clock.advance(5)

    call_span = one(otel.spans(), "failover image_editing")
    assert (call_span.attributes or {})["failover.attempts"] == 2
    assert (call_span.attributes or {})["failover.fallbacks"] == 1
    assert (call_span.attributes or {})["error.type"] == "AllPlatformsFailed"
    cut = attempts_of(otel.spans())[-1]
    assert (cut.attributes or {})["failover.outcome"] == "cancelled"


# -- context inside the operation --------------------------------------------------------------


async def test_operation_spans_and_its_tasks_nest_under_the_attempt(otel: Otel) -> None:
    manager = make_manager(otel)
    tracer = otel.tracer_provider.get_tracer("app")
    seen: list[int] = []

    async def operation(platform: PlatformSpec) -> str:
        seen.append(otel_trace.get_current_span().get_span_context().span_id)

        async def part(index: int) -> None:
            await anyio.lowlevel.checkpoint()
            with tracer.start_as_current_span(f"part {index}"):
                await anyio.lowlevel.checkpoint()

        with tracer.start_as_current_span("provider request"):
            async with anyio.create_task_group() as tg:
                for index in range(2):
                    tg.start_soon(part, index)
        return "png"

    await manager.with_fallback(OP, operation)

    spans = otel.spans()
    rows = tree(spans)
    assert rows[:3] == [
        (0, "failover image_editing", SpanKind.INTERNAL),
        (1, "generate_content a-1", SpanKind.CLIENT),
        (2, "provider request", SpanKind.INTERNAL),
    ]
    assert sorted(rows[3:]) == [
        (3, "part 0", SpanKind.INTERNAL),
        (3, "part 1", SpanKind.INTERNAL),
    ]
    (attempt,) = attempts_of(spans)
    assert seen == [attempt.context.span_id]
    # After the call the caller's context is back to what it was.
    assert not otel_trace.get_current_span().get_span_context().is_valid


async def test_call_span_nests_under_the_callers_span(otel: Otel) -> None:
    manager = make_manager(otel)
    tracer = otel.tracer_provider.get_tracer("app")

    with tracer.start_as_current_span("handle request"):
        await manager.with_fallback(OP, ScriptedOperation({}))

    assert tree(otel.spans()) == [
        (0, "handle request", SpanKind.INTERNAL),
        (1, "failover image_editing", SpanKind.INTERNAL),
        (2, "generate_content a-1", SpanKind.CLIENT),
    ]


# -- metrics ----------------------------------------------------------------------------------


async def test_metrics_count_attempts_transitions_and_durations(otel: Otel) -> None:
    clock = FakeClock()
    manager = make_manager(otel, clock, failure_threshold=1)

    async def operation(platform: PlatformSpec) -> str:
        clock.advance({"alpha": 0.5, "beta": 0.25, "gamma": 2.0}[platform.name])
        if platform.name == "alpha":
            raise Transient("503")
        if platform.name == "beta":
            raise CreditExhausted("quota")
        return "png"

    await manager.with_fallback(OP, operation)
    await manager.with_fallback(OP, operation)  # alpha open, beta cooling: two skips

    attempts = metric_points(otel, "failover.attempts")
    assert {key: point.value for key, point in attempts.items()} == {
        attrs(platform="alpha", operation=OP, outcome="failure"): 1,
        attrs(platform="beta", operation=OP, outcome="failure"): 1,
        attrs(platform="gamma", operation=OP, outcome="success"): 2,
        attrs(platform="alpha", operation=OP, outcome="skipped", **{"skip.reason": "open"}): 1,
        attrs(platform="beta", operation=OP, outcome="skipped", **{"skip.reason": "credit"}): 1,
    }
    durations = metric_points(otel, "failover.attempt.duration")
    assert {key: (point.count, point.sum) for key, point in durations.items()} == {
        attrs(platform="alpha", operation=OP, outcome="failure"): (1, 0.5),
        attrs(platform="beta", operation=OP, outcome="failure"): (1, 0.25),
        attrs(platform="gamma", operation=OP, outcome="success"): (2, 4.0),
    }
    calls = metric_points(otel, "failover.call.duration")
    assert {key: (point.count, point.sum) for key, point in calls.items()} == {
        attrs(operation=OP, outcome="success"): (2, 4.75),
    }
    transitions = metric_points(otel, "failover.breaker.transitions")
    assert {key: point.value for key, point in transitions.items()} == {
        attrs(
            platform="alpha", operation=OP, **{"breaker.from": "closed", "breaker.to": "open"}
        ): 1,
    }


async def test_failed_call_and_request_faults_are_measured(otel: Otel) -> None:
    manager = make_manager(otel, priorities={OP: [("alpha", "a-1")]})

    with pytest.raises(BadRequest):
        await manager.with_fallback(OP, ScriptedOperation({"alpha": [BadRequest("bad")]}))

    attempts = metric_points(otel, "failover.attempts")
    assert {key: point.value for key, point in attempts.items()} == {
        attrs(platform="alpha", operation=OP, outcome="failure"): 1,
    }
    calls = metric_points(otel, "failover.call.duration")
    assert {key: point.count for key, point in calls.items()} == {
        attrs(operation=OP, outcome="failure"): 1,
    }
    # The request's own fault is counted as an attempt but leaves the pair's health alone.
    assert manager.get_health_status()["alpha"]["total_requests"] == 0


async def test_metric_instruments_have_units_and_low_cardinality_attributes(otel: Otel) -> None:
    manager = make_manager(otel, failure_threshold=1)

    await manager.with_fallback(OP, ScriptedOperation({"alpha": [Transient("x")]}))

    data = otel.reader.get_metrics_data()
    assert data is not None
    units = {
        metric.name: metric.unit
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
    assert units == {
        "failover.attempts": "{attempt}",
        "failover.breaker.transitions": "{transition}",
        "failover.attempt.duration": "s",
        "failover.call.duration": "s",
    }
    allowed = {
        "failover.platform",
        "failover.operation",
        "failover.outcome",
        "failover.skip.reason",
        "failover.breaker.from",
        "failover.breaker.to",
    }
    for name in units:
        for key in metric_points(otel, name):
            assert {attribute for attribute, _ in key} <= allowed


# -- switched off ------------------------------------------------------------------------------


async def test_monitoring_disabled_records_no_spans_and_no_metrics(otel: Otel) -> None:
    manager = make_manager(otel, monitoring_enabled=False, failure_threshold=1)
    tracer = otel.tracer_provider.get_tracer("app")

    with tracer.start_as_current_span("handle request"):
        await manager.with_fallback(OP, ScriptedOperation({"alpha": [CreditExhausted("x")]}))
        await manager.with_fallback(OP, ScriptedOperation({"beta": [Transient("x")]}))

    (only,) = otel.spans()  # the application's own span, with nothing of failover's on it
    assert only.name == "handle request"
    assert events(only) == []
    assert metric_points(otel, "failover.attempts") == {}
    assert metric_points(otel, "failover.breaker.transitions") == {}
    assert manager._telemetry.tracer() is None
    assert manager._telemetry.instruments() is None


async def test_ai_monitoring_enabled_false_from_the_environment(otel: Otel) -> None:
    manager = PlatformManager.from_env(
        environ={"AI_MONITORING_ENABLED": "false"},
        priorities={OP: PLATFORMS},
        clock=FakeClock(),
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    assert manager.monitoring_enabled is False

    await manager.with_fallback(OP, ScriptedOperation({}))

    assert otel.spans() == []
    assert metric_points(otel, "failover.attempts") == {}


async def test_sdk_disabled_provider_is_treated_as_no_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = TracerProvider()
    meter_provider = MeterProvider()
    manager = PlatformManager(
        {OP: PLATFORMS},
        clock=FakeClock(),
        environ={},
        tracer_provider=provider,
        meter_provider=meter_provider,
    )

    await manager.with_fallback(OP, ScriptedOperation({}))

    assert manager._telemetry.tracer() is None
    assert manager._telemetry.instruments() is None
    meter_provider.shutdown()


def test_gen_ai_operation_names() -> None:
    assert gen_ai_operation("text_generation") == ("chat", "text")
    assert gen_ai_operation("image_generation") == ("generate_content", "image")
    assert gen_ai_operation("image_editing") == ("generate_content", "image")
    assert gen_ai_operation("video_generation") == ("generate_content", "video")
    assert gen_ai_operation("image_upscaling") == ("generate_content", "image")
    assert gen_ai_operation("speech_audio") == ("generate_content", "speech")
    assert gen_ai_operation("text_embedding") == ("embeddings", None)
    assert gen_ai_operation("chat_summary") == ("chat", "text")
    assert gen_ai_operation("ocr") == ("generate_content", None)


async def test_text_generation_attempt_is_a_chat_span(otel: Otel) -> None:
    manager = PlatformManager(
        {"text_generation": [PlatformSpec("groq", "llama-3.3", api_key_env=None)]},
        clock=FakeClock(),
        environ={},
        tracer_provider=otel.tracer_provider,
    )

    await manager.with_fallback("text_generation", ScriptedOperation({}))

    (attempt,) = attempts_of(otel.spans())
    assert attempt.name == "chat llama-3.3"
    assert (attempt.attributes or {})["gen_ai.operation.name"] == "chat"
    assert (attempt.attributes or {})["gen_ai.provider.name"] == "groq"
