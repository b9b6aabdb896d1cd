"""The optional policies of one route, in the order they compose.

A route whose operation has no hedge, no bulkhead, no armed chaos and no ordering strategy
has ``route.policies = None`` and the chain runs exactly as it would without this module.
Otherwise :class:`RoutePolicies` gives the chain, per call: the plan (order, its reason,
platforms a strategy skips), the operation wrapped for chaos, a bulkhead slot per attempt,
and feedback for strategies that learn. The manager rebuilds it when chaos is switched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover._engine.chain import Route, cost_order, priority_order
from failover._observe.scrub import get_logger
from failover.policies.bulkhead import SKIP_BULKHEAD_FULL, Bulkhead, Limiter
from failover.policies.chaos import Chaos, ChaosControl
from failover.policies.ordering import Observation, annotate_order, order_reason, ordering_name

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from failover._core.clock import Clock
    from failover._core.errors import Attempt
    from failover._core.pair import Pair
    from failover.policies.chaos import _Armed
    from failover.policies.hedge import Hedge

logger = get_logger("failover")


class RoutePolicies:
    """What one route adds to the plain chain; see the module docstring."""

    __slots__ = (
        "_by_name",
        "_last_order",
        "_last_specs",
        "_specs",
        "chaos",
        "chaos_control",
        "hedge",
        "lane",
        "lanes",
        "limiters",
        "observer",
        "strategy",
    )

    def __init__(
        self,
        route: Route,
        *,
        hedge: Hedge | None,
        limiters: Mapping[tuple[str, str], Limiter],
        strategy: Callable[..., Sequence[Any]] | None,
        chaos_control: ChaosControl | None,
        chaos: tuple[_Armed, ...],
        lane: bool = False,
    ) -> None:
        self.hedge = hedge
        self.limiters = dict(limiters)
        self.strategy = strategy
        self.observer: Callable[[Observation], None] | None = getattr(strategy, "observe", None)
        self.chaos_control = chaos_control
        self.chaos = chaos
        self.lane = lane
        self._specs = tuple(pair.spec for pair in route.pairs)
        self._by_name = {pair.spec.name: pair for pair in route.pairs}
        self._last_specs: object = None
        self._last_order: Sequence[Pair] = ()
        self.lanes: dict[str, Route] = {}
        if hedge is not None:
            # Each hedge lane walks one platform with the same policies, minus the hedge.
            for pair in route.pairs:
                lane_route = Route(route.operation, (pair,), None, None)
                lane_route.policies = RoutePolicies(
                    lane_route,
                    hedge=None,
                    limiters=self.limiters,
                    strategy=None,
                    chaos_control=chaos_control,
                    chaos=chaos,
                    lane=True,
                )
                if lane_route.policies.observer is None:
                    lane_route.policies.observer = self.observer
                self.lanes[pair.spec.name] = lane_route

    @staticmethod
    def needed(
        hedge: Hedge | None,
        limiters: Mapping[tuple[str, str], Limiter],
        strategy: object,
        chaos: tuple[_Armed, ...],
    ) -> bool:
        return bool(hedge is not None or limiters or strategy is not None or chaos)

    # -- per call ----------------------------------------------------------------------------

    def plan(
        self,
        route: Route,
        context: Mapping[str, Any] | None,
        skipped: Callable[[Pair, str, list[Attempt], Span | None], None],
        attempts: list[Attempt],
        call_span: Span | None,
    ) -> Sequence[Pair]:
        """The pairs to try in order; platforms the strategy skips are recorded as skipped."""
        strategy = self.strategy
        if strategy is None:
            order = route.order(context)
            if call_span is not None and not self.lane:
                annotate_order(call_span, order, order_reason(route.ordering, context))
            return order
        specs = strategy(route.operation, self._specs, context or {})
        by_name = self._by_name
        if specs is self._last_specs:  # the strategy returned its cached order again
            order = self._last_order
        else:
            # dict.fromkeys: a strategy naming a platform twice must not get it tried twice.
            names = dict.fromkeys(spec.name for spec in specs if spec.name in by_name)
            order = [by_name[name] for name in names]
            self._last_specs, self._last_order = specs, order
        skips = getattr(specs, "skipped", None)
        if skips:
            for name, why in skips.items():
                pair = by_name.get(name)
                if pair is not None:
                    skipped(pair, why, attempts, call_span)
        if call_span is not None and not self.lane:
            reason = getattr(specs, "reason", "") or ordering_name(strategy)
            annotate_order(call_span, order, reason)
        return order

    def wrap(self, operation: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` with armed chaos rolled before each call (``func`` itself when none)."""
        if not self.chaos or self.chaos_control is None:
            return func
        return self.chaos_control.wrap(self.chaos, operation, func)

    async def slot(self, pair: Pair, clock: Clock) -> Limiter | str | None:
        """A bulkhead slot for one attempt on ``pair``: the limiter to release afterwards,
        ``None`` when ``pair`` has no bulkhead, or the skip reason when none came in time."""
        limiter = self.limiters.get((pair.spec.name, pair.operation))
        if limiter is None:
            return None
        if limiter.try_acquire() or await limiter.acquire(clock):
            return limiter
        return SKIP_BULKHEAD_FULL

    def observe(
        self,
        pair: Pair,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        observer = self.observer
        if observer is None:
            return
        try:
            observer(Observation(pair.spec, pair.operation, ok, duration, result, error))
        except Exception as exc:
            # The attempt's outcome is already booked: a strategy's bookkeeping error must not
            # turn an answer into a failed call, nor replace the provider's error.
            logger.warning(
                "Ordering strategy %s failed to observe %s on %s: %s",
                ordering_name(getattr(observer, "__self__", observer)),
                pair.operation,
                pair.spec.name,
                type(exc).__qualname__,
            )


def build_limiters(pairs: Iterable[Pair]) -> dict[tuple[str, str], Limiter]:
    """One :class:`Limiter` per bulkhead: per platform (shared across its operations when
    they resolve to the same :class:`Bulkhead`) or per pair."""
    shared: dict[tuple[Bulkhead, str], Limiter] = {}
    limiters: dict[tuple[str, str], Limiter] = {}
    for pair in pairs:
        bulkhead = pair.policy.bulkhead
        if bulkhead is None:
            continue
        name = pair.spec.name
        if bulkhead.per == "pair":
            limiters[pair.key] = Limiter(bulkhead, f"{name}:{pair.operation}")
            continue
        limiter = shared.get((bulkhead, name))
        if limiter is None:
            limiter = shared[(bulkhead, name)] = Limiter(bulkhead, name)
        limiters[pair.key] = limiter
    return limiters


class PolicyWiring:
    """A manager's optional policies: builds each route's :class:`RoutePolicies` (or leaves
    it ``None``), owns the bulkhead limiters and ``manager.chaos``, feeds strategies."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        hedges: Mapping[str, Hedge | None],
        ordering: object,
        clock: Clock,
        chaos: Sequence[Chaos],
    ) -> None:
        self.routes = routes
        self.hedges = {
            operation: hedge
            for operation, hedge in hedges.items()
            if hedge is not None and hedge.enabled
        }
        builtin = ordering is None or ordering is priority_order or ordering is cost_order
        self.strategy: Callable[..., Sequence[Any]] | None = (
            None if builtin else ordering  # type: ignore[assignment]
        )
        bind = getattr(ordering, "bind", None)
        if bind is not None and not builtin:
            bind(clock)
        self.limiters = build_limiters(pair for route in routes.values() for pair in route.pairs)
        self.chaos = ChaosControl(clock, self.install)
        if chaos:
            self.chaos.enable(*chaos)  # installs
        else:
            self.install()

    def install(self) -> None:
        """(Re)build every route's policies; ``None`` where nothing applies."""
        for operation, route in self.routes.items():
            hedge = self.hedges.get(operation)
            limiters = {
                pair.key: self.limiters[pair.key]
                for pair in route.pairs
                if pair.key in self.limiters
            }
            armed = self.chaos.armed_for(operation)
            if not RoutePolicies.needed(hedge, limiters, self.strategy, armed):
                route.policies = None
                continue
            route.policies = RoutePolicies(
                route,
                hedge=hedge,
                limiters=limiters,
                strategy=self.strategy,
                chaos_control=self.chaos,
                chaos=armed,
            )

    def reported(
        self,
        pair: Pair,
        ok: bool,
        duration: float | None,
        error: BaseException | None = None,
    ) -> None:
        """Feed an outcome reported by hand to the ordering strategy."""
        observe = getattr(self.strategy, "observe", None)
        if observe is not None:
            observe(Observation(pair.spec, pair.operation, ok, duration, None, error))

    def cost_recorded(self, pair: Pair, cost: float) -> None:
        """Tell the strategy a success really cost ``cost`` (not the estimate)."""
        record = getattr(self.strategy, "record_cost", None)
        if record is not None:
            record(pair.spec, pair.operation, cost)
