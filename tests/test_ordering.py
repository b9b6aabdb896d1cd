"""Ordering strategies: latency with a tolerance band, weighted round robin, budgets per period."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    AllPlatformsFailed,
    BudgetOrder,
    ConfigError,
    LatencyOrder,
    PlatformManager,
    PlatformSpec,
    WeightedRoundRobin,
)
from failover._engine import decide
from failover._engine.call import Call
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "text_generation"


def specs(*names: str, cost: float = 0.0) -> list[PlatformSpec]:
    return [PlatformSpec(name, f"{name}-m", estimated_cost=cost) for name in names]


def order(manager: PlatformManager) -> list[str]:
    call = Call(manager._book, manager._routes[OP], lambda platform: None, (), {}, None)
    return [pair.spec.name for pair in decide.plan(call)]


async def feed(manager: PlatformManager, name: str, seconds: float, times: int = 1) -> None:
    for _ in range(times):
        await manager.report_success(name_spec(manager, name), OP, response_time=seconds)


def name_spec(manager: PlatformManager, name: str) -> PlatformSpec:
    return next(spec for spec in manager.platforms(OP) if spec.name == name)


# -- latency -----------------------------------------------------------------------------------


async def test_latency_order_puts_the_clearly_faster_platform_first() -> None:
    strategy = LatencyOrder(tolerance=0.2, alpha=0.5, min_samples=3)
    manager = PlatformManager({OP: specs("alpha", "beta")}, environ={}, ordering=strategy)
    assert order(manager) == ["alpha", "beta"]
    await feed(manager, "alpha", 1.0, 3)
    await feed(manager, "beta", 0.5, 3)
    assert order(manager) == ["beta", "alpha"]
    assert (await manager.get_platform(OP)).name == "beta"
    assert strategy.estimate("beta", OP) == pytest.approx(0.5)


async def test_tolerance_band_prevents_flapping_between_similar_platforms() -> None:
    strategy = LatencyOrder(tolerance=0.2, alpha=1.0, min_samples=1)
    manager = PlatformManager({OP: specs("alpha", "beta")}, environ={}, ordering=strategy)
    await feed(manager, "alpha", 1.0)
    await feed(manager, "beta", 1.0)
    seen = []
    # beta jitters 10 % either side of alpha: inside the band, the order never changes.
    for sample in (0.9, 1.1, 0.85, 1.15, 0.95, 1.05) * 5:
        await feed(manager, "beta", sample)
        seen.append(tuple(order(manager)))
    assert set(seen) == {("alpha", "beta")}
    # Clearly faster (by more than the band): beta moves ahead, and stays ahead while it is
    # merely similar again.
    await feed(manager, "beta", 0.7)
    assert order(manager) == ["beta", "alpha"]
    await feed(manager, "beta", 1.1)
    assert order(manager) == ["beta", "alpha"]
    await feed(manager, "beta", 1.3)  # alpha clearly faster now
    assert order(manager) == ["alpha", "beta"]


async def test_latency_order_learns_from_calls_and_timeouts() -> None:
    clock = FakeClock(autojump=True)
    strategy = LatencyOrder(alpha=1.0, min_samples=1)
    manager = PlatformManager(
        {OP: specs("alpha", "beta")}, clock=clock, environ={}, ordering=strategy
    )

    async def slow_alpha(platform: PlatformSpec) -> str:
        await clock.sleep(2.0 if platform.name == "alpha" else 0.2)
        return platform.name

    assert (await manager.with_fallback(OP, slow_alpha))[0] == "alpha"
    assert strategy.estimate("alpha", OP) == pytest.approx(2.0)
    manager.force_open("alpha", OP)
    assert (await manager.with_fallback(OP, slow_alpha))[0] == "beta"
    manager.reset("alpha", OP)
    assert (await manager.with_fallback(OP, slow_alpha))[0] == "beta"


# -- weighted round robin ------------------------------------------------------------------------


async def test_weighted_round_robin_proportions_are_exact_and_interleaved() -> None:
    manager = PlatformManager(
        {OP: specs("alpha", "beta", "gamma")},
        environ={},
        ordering=WeightedRoundRobin({"alpha": 3, "beta": 1}),
    )
    firsts = [order(manager) for _ in range(4_000)]
    assert Counter(first[0] for first in firsts) == Counter(alpha=3_000, beta=1_000)
    assert all(first[2] == "gamma" for first in firsts)  # not an equal: keeps its place
    assert [first[0] for first in firsts[:4]].count("beta") == 1  # smooth, not bursts
    assert all(sorted(first[:2]) == ["alpha", "beta"] for first in firsts)


async def test_round_robin_without_weights_rotates_platforms_of_equal_priority() -> None:
    platforms = [
        PlatformSpec("alpha", "a", priority=0),
        PlatformSpec("beta", "b", priority=0),
        PlatformSpec("gamma", "g", priority=1),
    ]
    manager = PlatformManager({OP: platforms}, environ={}, ordering=WeightedRoundRobin())
    firsts = Counter(order(manager)[0] for _ in range(100))
    assert firsts == Counter(alpha=50, beta=50)


# -- budget ------------------------------------------------------------------------------------


async def test_budget_skips_a_platform_over_its_cap_until_the_period_rolls_over() -> None:
    clock = FakeClock(wall_start=1_767_225_600.0)  # midnight UTC
    strategy = BudgetOrder({"alpha": 1.0}, period=3600)
    manager = PlatformManager(
        {OP: specs("alpha", "beta", cost=0.4)}, clock=clock, environ={}, ordering=strategy
    )

    async def answer(platform: PlatformSpec) -> str:
        return platform.name

    answered = [(await manager.with_fallback(OP, answer))[0] for _ in range(4)]
    assert answered == ["alpha", "alpha", "beta", "beta"]  # a third 0.4 would pass 1.0
    assert strategy.spent("alpha") == pytest.approx(0.8)
    manager.force_open("beta", OP)
    with pytest.raises(AllPlatformsFailed) as info:
        await manager.get_platform(OP)
    assert (await_skips(manager)) == [("alpha", "over_budget"), ("beta", "open")]
    # get_platform does not offer an over-budget platform at all.
    assert [(a.platform, a.skip_reason) for a in info.value.attempts] == [("beta", "open")]
    clock.advance(3599)
    assert order(manager) == ["beta"]
    clock.advance(1)  # next hour: the budget is fresh
    assert order(manager) == ["alpha", "beta"]
    assert strategy.spent("alpha") == 0.0


def await_skips(manager: PlatformManager) -> list[tuple[str, str | None]]:
    route = manager._routes[OP]
    call = Call(manager._book, route, lambda platform: None, (), {}, None)
    plan = decide.plan(call)
    skips = [(a.platform, a.skip_reason) for a in call.attempts]
    skips += [(pair.spec.name, pair.unavailable_reason(manager.clock)) for pair in plan]
    return skips


async def test_budget_uses_reported_costs() -> None:
    strategy = BudgetOrder(
        {"alpha": 1.0}, cost=lambda platform, result: result["cost"] if result else None
    )
    manager = PlatformManager(
        {OP: specs("alpha", "beta", cost=0.01)}, clock=FakeClock(), environ={}, ordering=strategy
    )

    async def priced(platform: PlatformSpec) -> dict[str, float]:
        return {"cost": 0.6}

    await manager.with_fallback(OP, priced)
    assert strategy.spent("alpha") == pytest.approx(0.6)
    await manager.report_success(name_spec(manager, "alpha"), OP)
    assert strategy.spent("alpha") == pytest.approx(0.61)  # a hand report books the estimate
    manager.record_cost("alpha", OP, 0.5)  # ...and record_cost replaces it
    assert strategy.spent("alpha") == pytest.approx(1.1)
    assert order(manager) == ["beta"]


# -- the span ----------------------------------------------------------------------------------


@pytest.fixture
def tracing() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


@pytest.mark.parametrize(
    ("ordering", "order_attribute", "reason_start"),
    [
        (lambda: None, ("alpha", "beta"), "priority"),
        (lambda: BudgetOrder({"alpha": 0.0}), ("beta",), "budget (1 over budget) then priority"),
        (
            lambda: WeightedRoundRobin({"alpha": 1, "beta": 3}),
            ("beta", "alpha"),
            "weighted round robin",
        ),
        (LatencyOrder, ("alpha", "beta"), "latency ewma, band 20% + 0s"),
    ],
)
async def test_chosen_order_and_reason_are_on_the_call_span(
    tracing: tuple[InMemorySpanExporter, TracerProvider],
    ordering: Any,
    order_attribute: tuple[str, ...],
    reason_start: str,
) -> None:
    exporter, provider = tracing
    manager = PlatformManager(
        {OP: specs("alpha", "beta")}, environ={}, ordering=ordering(), tracer_provider=provider
    )

    async def answer(platform: PlatformSpec) -> str:
        return platform.name

    await manager.with_fallback(OP, answer)
    call = next(span for span in exporter.get_finished_spans() if span.name.startswith("failover"))
    attributes = call.attributes or {}
    assert tuple(attributes["failover.order"]) == order_attribute  # type: ignore[arg-type]
    assert str(attributes["failover.order.reason"]).startswith(reason_start)


def test_strategy_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        LatencyOrder(tolerance=1.5)
    with pytest.raises(ConfigError, match="alpha"):
        LatencyOrder(alpha=0)
    with pytest.raises(ConfigError, match="weights"):
        WeightedRoundRobin({"alpha": -1})
    with pytest.raises(ConfigError, match="caps"):
        BudgetOrder({})
    with pytest.raises(ConfigError, match="period"):
        BudgetOrder({"alpha": 1.0}, period=0)


async def test_a_strategy_that_fails_to_observe_does_not_fail_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cost callback that cannot read the answer: the answer still reaches the caller."""

    def cost(platform: PlatformSpec, result: Any) -> float:
        return float(result["usage"]["cost"])  # this answer has no usage: KeyError

    strategy = BudgetOrder({"alpha": 1.0}, cost=cost)
    manager = PlatformManager(
        {OP: specs("alpha", "beta", cost=0.01)}, clock=FakeClock(), environ={}, ordering=strategy
    )

    async def operation(platform: PlatformSpec) -> dict[str, str]:
        return {"text": f"answer from {platform.name}"}

    with caplog.at_level("WARNING", logger="failover"):
        result, platform = await manager.with_fallback(OP, operation)
    assert (result, platform.name) == ({"text": "answer from alpha"}, "alpha")
    assert manager.get_health_status()["alpha"]["total_requests"] == 1
    assert strategy.spent("alpha") == 0.0
    warnings = [r.getMessage() for r in caplog.records if "failed to observe" in r.getMessage()]
    assert warnings == [
        "Ordering strategy BudgetOrder failed to observe text_generation on alpha: KeyError"
    ]
