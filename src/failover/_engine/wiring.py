"""A manager's policies, wired to its routes: each route's :class:`~failover.policies.Pipeline`.

Built once with the manager and rebuilt when chaos is switched on or off at runtime
(``manager.chaos``). Owns the bulkhead limiters (shared by every route of a platform) and the
chaos control, and feeds outcomes reported by hand to the strategies that learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover.policies import ORDER, RouteSettings, compose
from failover.policies.bulkhead import build_limiters
from failover.policies.chaos import Chaos, ChaosControl
from failover.policies.ordering import Observation

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._engine.route import Pair, Route
    from failover.policies.hedge import Hedge
    from failover.policies.last_resort import LastResort


class PolicyWiring:
    """Builds and installs every route's pipeline; see the module docstring."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        hedges: Mapping[str, Hedge | None],
        last_resorts: Mapping[str, LastResort | None],
        ordering: object,
        clock: Clock,
        chaos: Sequence[Chaos],
    ) -> None:
        self.routes = routes
        self.hedges = dict(hedges)
        self.last_resorts = dict(last_resorts)
        self.ordering = ordering
        #: The composition as it was when the manager was built: registering or removing a
        #: strategy later does not change this manager, even when chaos rebuilds its pipelines.
        self.factories = tuple(ORDER.values())
        bind = getattr(ordering, "bind", None)
        if bind is not None:
            bind(clock)
        self.limiters = build_limiters(pair for route in routes.values() for pair in route.pairs)
        self.chaos = ChaosControl(clock, self.install)
        if chaos:
            self.chaos.enable(*chaos)  # installs
        else:
            self.install()

    def install(self) -> None:
        """(Re)build every route's pipeline (``None`` where no policy applies)."""
        for operation, route in self.routes.items():
            settings = RouteSettings(
                operation=operation,
                pairs=route.pairs,
                deadline=route.deadline,
                hedge=self.hedges.get(operation),
                last_resort=self.last_resorts.get(operation),
                ordering=route.ordering,
                chaos=self.chaos,
                limiters=self.limiters,
            )
            route.install(compose(settings, self.factories))

    def reported(
        self,
        pair: Pair,
        ok: bool,
        duration: float | None,
        error: BaseException | None = None,
    ) -> None:
        """Feed an outcome reported by hand to the ordering strategy."""
        observe = getattr(self.ordering, "observe", None)
        if observe is not None:
            observe(Observation(pair.spec, pair.operation, ok, duration, None, error))

    def cost_recorded(self, pair: Pair, cost: float) -> None:
        """Tell the strategy a success really cost ``cost`` (not the estimate)."""
        record: Any = getattr(self.ordering, "record_cost", None)
        if record is not None:
            record(pair.spec, pair.operation, cost)
