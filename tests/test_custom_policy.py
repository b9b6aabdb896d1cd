"""A policy defined only here: one class, one registration, and the engine applies it.

Proves the policy interface (``failover.policies.Strategy``) is the whole contract: nothing in
the engine knows these strategies, yet their hooks run at their declared place in the order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from failover import AllPlatformsFailed, Chaos, ConfigError, PlatformManager, PlatformSpec
from failover.policies import ORDER, RouteSettings, Strategy, register, unregister
from failover.policies.base import CallView, PairView
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

OP = "text_generation"
PRIORITIES = {OP: [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1")]}


class FeatureFlags(Strategy):
    """Skip the platforms a feature flag turns off (``admit``) and count answers (``observe``)."""

    name = "feature_flags"

    def __init__(self, off: set[str]) -> None:
        self.off = off
        self.seen: list[tuple[str, bool]] = []

    def admit(self, call: CallView, pair: PairView) -> str | None:
        return "flagged_off" if pair.spec.name in self.off else None

    def observe(
        self,
        pair: PairView,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        self.seen.append((pair.spec.name, ok))


class Tagging(Strategy):
    """Wrap the operation so its result says which wrappers it went through (``wrap``)."""

    name = "tagging"

    def wrap(self, operation: str, func: Any) -> Any:
        async def tagged(platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
            result = func(platform, *args, **kwargs)
            if hasattr(result, "__await__"):
                result = await result
            return f"tagged({result})"

        return tagged


@pytest.fixture
def flags() -> Iterator[FeatureFlags]:
    strategy = FeatureFlags({"alpha"})
    register("feature_flags", lambda route: strategy, before="bulkhead")
    yield strategy
    unregister("feature_flags")


async def test_a_registered_strategy_skips_and_observes(flags: FeatureFlags) -> None:
    manager = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
    result, spec = await manager.with_fallback(OP, ScriptedOperation({"beta": ["ok"]}))
    assert (result, spec.name) == ("ok", "beta")
    assert flags.seen == [("beta", True)]
    flags.off.add("beta")
    with pytest.raises(AllPlatformsFailed) as failed:
        await manager.with_fallback(OP, ScriptedOperation({}))
    assert [(a.platform, a.skip_reason) for a in failed.value.attempts] == [
        ("alpha", "flagged_off"),
        ("beta", "flagged_off"),
    ]
    # Admitted by the breaker, then refused by the strategy: the permit went back.
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "closed"


def test_registration_takes_its_declared_place_in_the_order(flags: FeatureFlags) -> None:
    names = list(ORDER)
    assert names.index("retry") < names.index("feature_flags") < names.index("bulkhead")


async def test_managers_built_before_registration_are_unaffected() -> None:
    before = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
    register("feature_flags", lambda route: FeatureFlags({"alpha"}), before="bulkhead")
    try:
        after = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
        _, spec = await before.with_fallback(OP, ScriptedOperation({"alpha": ["ok"]}))
        assert spec.name == "alpha"
        _, spec = await after.with_fallback(OP, ScriptedOperation({"beta": ["ok"]}))
        assert spec.name == "beta"
    finally:
        unregister("feature_flags")
    assert "feature_flags" not in ORDER


async def test_wrappers_nest_in_the_declared_order() -> None:
    """Registered before chaos, the tagging wrapper is outside it: it sees chaos's result."""
    register("tagging", lambda route: Tagging(), before="chaos")
    try:
        manager = PlatformManager(
            PRIORITIES,
            clock=FakeClock(),
            environ={},
            chaos=Chaos(result_rate=1.0, result="from chaos"),
        )
        result, _ = await manager.with_fallback(OP, ScriptedOperation({"alpha": ["real"]}))
    finally:
        unregister("tagging")
    assert result == "tagged(from chaos)"


def test_a_factory_sees_the_route_and_may_decline() -> None:
    seen: list[RouteSettings] = []

    def factory(route: RouteSettings) -> Strategy | None:
        seen.append(route)
        return None

    register("declines", factory, before="last_resort")
    try:
        manager = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
    finally:
        unregister("declines")
    assert [route.operation for route in seen] == [OP]
    assert [pair.spec.name for pair in seen[0].pairs] == ["alpha", "beta"]
    assert manager._routes[OP].plain  # declined: nothing added to the call path


def test_registration_is_checked() -> None:
    with pytest.raises(ConfigError, match="before must be one of"):
        register("x", lambda route: None, before="nowhere")
    with pytest.raises(ConfigError, match="new, non-empty"):
        register("retry", lambda route: None, before="chaos")
    with pytest.raises(ConfigError, match="factory must be callable"):
        register("x", 5, before="chaos")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="built in"):
        unregister("retry")


def test_a_strategy_lists_only_the_hooks_it_overrides() -> None:
    assert FeatureFlags(set()).hooks() == ("admit", "observe")
    assert Tagging().hooks() == ("wrap",)


class Reordering(Strategy):
    """A ``plan`` hook that keeps the order it is given (records that it saw it)."""

    name = "reordering"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def plan(self, call: CallView, order: Sequence[Any]) -> Sequence[Any]:
        self.seen.append([pair.spec.name for pair in order])
        return order


async def test_a_plan_hook_starts_from_the_cost_order() -> None:
    strategy = Reordering()
    register("reordering", lambda route: strategy, before="hedge")
    try:
        manager = PlatformManager(
            {OP: [PlatformSpec("alpha", "a", estimated_cost=2.0), PlatformSpec("beta", "b")]},
            clock=FakeClock(),
            environ={},
            cost_optimization=True,
        )
        _, spec = await manager.with_fallback(OP, ScriptedOperation({"beta": ["ok"]}))
    finally:
        unregister("reordering")
    assert strategy.seen == [["beta", "alpha"]]
    assert spec.name == "beta"


async def test_unregistering_does_not_change_a_built_manager_even_when_chaos_rebuilds() -> None:
    register("feature_flags", lambda route: FeatureFlags({"alpha"}), before="bulkhead")
    try:
        manager = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
    finally:
        unregister("feature_flags")
    manager.chaos.enable(Chaos(latency_rate=1.0, latency=0.0))
    manager.chaos.disable()
    _, spec = await manager.with_fallback(OP, ScriptedOperation({"beta": ["ok"]}))
    assert spec.name == "beta"  # alpha still flagged off


class Raising(Strategy):
    name = "raising"

    def __init__(self, where: str) -> None:
        self.where = where

    def admit(self, call: CallView, pair: PairView) -> str | None:
        if self.where == "admit":
            raise RuntimeError("admit broke")
        return None

    def observe(
        self,
        pair: PairView,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        if self.where == "observe":
            raise RuntimeError("observe broke")


async def test_a_raising_observe_does_not_fail_an_answered_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    register("raising", lambda route: Raising("observe"), before="bulkhead")
    try:
        manager = PlatformManager(PRIORITIES, clock=FakeClock(), environ={})
    finally:
        unregister("raising")
    result, _ = await manager.with_fallback(OP, ScriptedOperation({"alpha": ["ok"]}))
    assert result == "ok"
    assert any("failed to observe" in record.getMessage() for record in caplog.records)


async def test_a_raising_admit_gives_the_probe_permit_back() -> None:
    clock = FakeClock()
    register("raising", lambda route: Raising("admit"), before="bulkhead")
    try:
        manager = PlatformManager(PRIORITIES, clock=clock, environ={})
    finally:
        unregister("raising")
    manager.force_open("alpha", OP, seconds=10)
    clock.advance(11)  # half-open: the next admission takes its one probe permit
    with pytest.raises(RuntimeError, match="admit broke"):
        await manager.with_fallback(OP, ScriptedOperation({}))
    breaker = manager._pairs["alpha", OP].breaker
    assert breaker.probes_in_flight() == 0
