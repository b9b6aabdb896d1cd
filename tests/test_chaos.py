"""Chaos injection: rates hold statistically, faults meet the real policies, off unless enabled."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    Chaos,
    ConfigError,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Transient,
)
from failover.policies.chaos import parse_chaos
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "image_editing"
PLATFORMS = [("alpha", "a-1"), ("beta", "b-1")]


def make_manager(clock: FakeClock | None = None, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("environ", {})
    return PlatformManager({OP: PLATFORMS}, clock=clock or FakeClock(autojump=True), **kwargs)


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, platform: PlatformSpec) -> str:
        self.calls.append(platform.name)
        return f"real {platform.name}"


def within_binomial_bounds(hits: int, calls: int, rate: float, sigmas: float = 4.0) -> bool:
    mean = calls * rate
    sigma = math.sqrt(calls * rate * (1 - rate))
    return abs(hits - mean) <= sigmas * sigma


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_fault_rate_holds_over_10000_calls(seed: int) -> None:
    # Faults on alpha fall back to beta; the breaker would open after 3 in a row, so keep
    # it closed to count every roll.
    manager = make_manager(chaos=Chaos(fault_rate=0.1, platforms="alpha", seed=seed))
    manager.force_closed("alpha", OP)
    operation = Counting()
    answered: dict[str, int] = {"alpha": 0, "beta": 0}
    for _ in range(10_000):
        _, spec = await manager.with_fallback(OP, operation)
        answered[spec.name] += 1
    assert manager.chaos.injected["fault"] == answered["beta"]
    assert within_binomial_bounds(answered["beta"], 10_000, 0.1)
    assert operation.calls.count("alpha") == answered["alpha"]  # faulted calls never ran


async def test_latency_and_result_rates_hold_and_the_same_seed_repeats() -> None:
    runs = []
    for _ in range(2):
        manager = make_manager(
            chaos=Chaos(latency_rate=0.25, latency=0.5, result_rate=0.05, result="fake", seed=7)
        )
        operation = Counting()
        results = [(await manager.with_fallback(OP, operation))[0] for _ in range(10_000)]
        runs.append(results)
        assert within_binomial_bounds(manager.chaos.injected["latency"], 10_000, 0.25)
        assert within_binomial_bounds(results.count("fake"), 10_000, 0.05)
        assert manager.chaos.injected["result"] == results.count("fake")
        assert len(operation.calls) == 10_000 - results.count("fake")
    assert runs[0] == runs[1]


async def test_injected_latency_trips_the_attempt_timeout() -> None:
    clock = FakeClock(autojump=True)
    manager = make_manager(
        clock,
        chaos=Chaos(latency_rate=1.0, latency=5.0, platforms=["alpha"]),
        policy=Policy(attempt_timeout=1.0),
    )
    # autojump sleeps past the timeout at once; the timeout scope fires on advance.
    _result, spec = await manager.with_fallback(OP, Counting())
    assert spec.name == "beta"
    assert manager.get_health_status()["alpha"]["operations"][OP]["failures"] == 1


@pytest.mark.parametrize(
    ("fault", "kind", "skip"),
    [
        ("credit", CreditExhausted, "credit"),
        ("rate_limited", RateLimited, "rate_limited"),
        (503, Transient, None),
    ],
)
async def test_provider_shaped_faults_have_their_real_consequences(
    fault: Any, kind: type[BaseException], skip: str | None
) -> None:
    manager = make_manager(chaos=Chaos(fault_rate=1.0, fault=fault, platforms="alpha"))
    _, spec = await manager.with_fallback(OP, Counting())
    assert spec.name == "beta"
    status = manager.get_health_status()["alpha"]
    assert status["operations"][OP]["last_error_kind"] == kind.kind_name  # type: ignore[attr-defined]
    reason = status["cooldown_reason"] or status["operations"][OP]["cooldown_reason"]
    assert reason == skip
    assert status["operations"][OP]["consecutive_failures"] == (1 if skip is None else 0)
    assert manager.chaos.injected["fault"] == 1


async def test_any_exception_class_instance_or_factory_can_be_injected() -> None:
    class Boom(Exception):
        pass

    for fault in (Boom, Boom("boom"), lambda: Boom("made")):
        manager = make_manager(chaos=Chaos(fault_rate=1.0, fault=fault, platforms="alpha"))
        _, spec = await manager.with_fallback(OP, Counting())
        assert spec.name == "beta"


async def test_chaos_is_off_unless_enabled_and_switches_at_runtime() -> None:
    manager = make_manager()
    assert not manager.chaos.enabled
    assert manager._routes[OP].plain
    operation = Counting()
    await manager.with_fallback(OP, operation)
    manager.chaos.enable(Chaos(result_rate=1.0, result="fake"))
    assert (await manager.with_fallback(OP, operation))[0] == "fake"
    manager.chaos.disable()
    assert manager._routes[OP].plain
    assert (await manager.with_fallback(OP, operation))[0] == "real alpha"
    manager.chaos.enable()  # the rules given last time
    assert (await manager.with_fallback(OP, operation))[0] == "fake"


async def test_operations_filter_limits_where_chaos_applies() -> None:
    manager = PlatformManager(
        {OP: PLATFORMS, "text_generation": PLATFORMS},
        clock=FakeClock(),
        environ={},
        chaos=Chaos(result_rate=1.0, result="fake", operations=["text_generation"]),
    )
    assert (await manager.with_fallback(OP, Counting()))[0] == "real alpha"
    assert (await manager.with_fallback("text_generation", Counting()))[0] == "fake"


async def test_failover_chaos_environment_variable_enables_chaos() -> None:
    manager = make_manager(environ={"FAILOVER_CHAOS": "fault=1:credit,platforms=alpha"})
    assert manager.chaos.enabled
    _, spec = await manager.with_fallback(OP, Counting())
    assert spec.name == "beta"
    assert make_manager(environ={"FAILOVER_CHAOS": "off"}).chaos.enabled is False


def test_failover_chaos_syntax() -> None:
    rules = parse_chaos(
        "fault=0.1:credit,latency=0.2:1.5s,platforms=stability|fal,seed=3; latency=1:250ms"
    )
    assert rules[0] == Chaos(
        fault_rate=0.1,
        fault="credit",
        latency_rate=0.2,
        latency=1.5,
        platforms=frozenset({"stability", "fal"}),
        seed=3,
    )
    assert rules[1] == Chaos(latency_rate=1.0, latency=0.25)
    assert parse_chaos("fault=0.5:502")[0].fault == 502
    assert parse_chaos("") == ()
    for bad, named in (
        ("fault=2", "fault"),
        ("latency=0.1", "latency"),
        ("latency=0.1:soon", "latency"),
        ("fault=0.1:teapot", "fault"),
        ("chance=0.1", "chance"),
        ("fault", "fault"),
        ("seed=x", "seed"),
    ):
        with pytest.raises(ConfigError, match="FAILOVER_CHAOS") as info:
            parse_chaos(bad)
        assert info.value.key == named


def test_chaos_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="fault_rate"):
        Chaos(fault_rate=1.5)
    with pytest.raises(ConfigError, match="latency"):
        Chaos(latency=-1)
    with pytest.raises(ConfigError, match="fault"):
        Chaos(fault=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="4xx or 5xx"):
        Chaos(fault=200)
    with pytest.raises(ConfigError, match="chaos"):
        make_manager(chaos=["fault=1"])


@pytest.fixture
def tracing() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


async def test_injections_are_marked_in_spans_and_logs(
    tracing: tuple[InMemorySpanExporter, TracerProvider], caplog: pytest.LogCaptureFixture
) -> None:
    exporter, provider = tracing
    manager = make_manager(
        tracer_provider=provider,
        chaos=Chaos(fault_rate=1.0, latency_rate=1.0, latency=0.1, platforms="alpha"),
    )
    with caplog.at_level(logging.WARNING, logger="failover"):
        await manager.with_fallback(OP, Counting())
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert (spans["generate_content a-1"].attributes or {})["failover.chaos"] == "latency,fault"
    assert "failover.chaos" not in (spans["generate_content b-1"].attributes or {})
    messages = [record.getMessage() for record in caplog.records]
    rule = "[rule fault=1,latency=1:0.1s,platforms=alpha]"
    assert f"Chaos: injecting latency (0.1s) into alpha for image_editing {rule}" in messages
    assert f"Chaos: injecting fault (transient) into alpha for image_editing {rule}" in messages


async def test_an_async_result_factory_is_awaited() -> None:
    async def fake(platform: PlatformSpec) -> str:
        return f"fake from {platform.name}"

    manager = make_manager(chaos=Chaos(result_rate=1.0, result=fake))
    result, spec = await manager.with_fallback(OP, Counting())
    assert (result, spec.name) == ("fake from alpha", "alpha")
