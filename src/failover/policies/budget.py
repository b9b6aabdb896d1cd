"""Spending caps: skip a platform once what it cost this period reaches its cap.

:class:`BudgetOrder` is an ordering (``PlatformManager(ordering=BudgetOrder(...))``): it
returns the platforms under their caps, in the order its ``then`` gives, and names the others
as skipped with reason ``over_budget``. It learns what each success cost through
``observe`` (the estimate, or its ``cost`` function) and ``manager.record_cost``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover._core import validate
from failover._core.errors import ConfigError
from failover._core.kinds import SkipReason
from failover._core.spec import PlatformSpec
from failover.policies.ordering import Observation, Ordered, OrderFunction

if TYPE_CHECKING:
    from failover._core.clock import Clock


class BudgetOrder:
    """Skip a platform (reason ``over_budget``) once its spend cap for the period is used up.

    ``caps`` maps platform names to the most to spend per ``period`` seconds (windows aligned
    on wall-clock time, so ``period=86400`` resets at midnight UTC). Spend is the platform's
    ``estimated_cost`` per successful attempt, or what ``cost(platform, result)`` returns
    (``None``: use the estimate), plus whatever :meth:`charge` reports. A platform is skipped
    when the next call's estimate would take it over its cap. Platforms without a cap are
    never skipped. ``then`` orders the platforms that remain (default: as given).
    """

    def __init__(
        self,
        caps: Mapping[str, float],
        period: float = 86_400.0,
        *,
        then: OrderFunction | None = None,
        cost: Callable[[PlatformSpec, Any], float | None] | None = None,
    ) -> None:
        if not isinstance(caps, Mapping) or not caps:
            raise ConfigError(
                f"caps must be a non-empty mapping of platform name -> spend per period, "
                f"got {caps!r}",
                key="caps",
            )
        self.caps = {
            str(name): validate.number(f"caps[{name!r}]", value, at_least=0, kind="a finite number")
            for name, value in caps.items()
        }
        self.period = validate.number("period", period, above=0, kind="a finite number")
        if then is not None and not callable(then):
            raise ConfigError(f"then must be an ordering callable, got {then!r}", key="then")
        if cost is not None and not callable(cost):
            raise ConfigError(f"cost must be callable, got {cost!r}", key="cost")
        self.then = then
        self.cost = cost
        self._clock: Clock | None = None
        self._window = -1
        self._spent: dict[str, float] = {}

    def bind(self, clock: Clock) -> None:
        """Use the manager's clock for periods (called by :class:`PlatformManager`)."""
        self._clock = clock
        bind = getattr(self.then, "bind", None)
        if bind is not None:
            bind(clock)

    def _roll(self) -> None:
        wall = self._clock.wall() if self._clock is not None else time.time()
        window = int(wall // self.period)
        if window != self._window:
            self._window = window
            self._spent.clear()

    def spent(self, platform: str) -> float:
        """What ``platform`` has spent in the current period."""
        self._roll()
        return self._spent.get(platform, 0.0)

    def charge(self, platform: str, amount: float) -> None:
        """Add ``amount`` to ``platform``'s spend in the current period (a reported cost)."""
        amount = validate.number("amount", amount, at_least=0, kind="a finite number")
        self._roll()
        self._spent[platform] = self._spent.get(platform, 0.0) + amount

    def record_cost(self, platform: PlatformSpec, operation: str, cost: float) -> None:
        """Book a success's real ``cost`` in place of its estimate (``manager.record_cost``)."""
        forward = getattr(self.then, "record_cost", None)
        if forward is not None:
            forward(platform, operation, cost)
        if platform.name not in self.caps:
            return
        self._roll()
        spent = self._spent.get(platform.name, 0.0) + cost - platform.estimated_cost
        self._spent[platform.name] = max(spent, 0.0)

    def observe(self, observation: Observation) -> None:
        forward = getattr(self.then, "observe", None)
        if forward is not None:
            forward(observation)
        if not observation.ok or observation.platform.name not in self.caps:
            return
        amount: float | None = None
        if self.cost is not None and observation.duration is not None:
            amount = self.cost(observation.platform, observation.result)
        if amount is None:
            amount = observation.platform.estimated_cost
        self.charge(observation.platform.name, amount)

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Ordered:
        self._roll()
        base = platforms if self.then is None else self.then(operation, platforms, context)
        caps = self.caps
        spent = self._spent
        kept: list[PlatformSpec] = []
        skipped: dict[str, str] = {}
        for spec in base:
            cap = caps.get(spec.name)
            used = spent.get(spec.name, 0.0)
            if cap is not None and (used >= cap or used + spec.estimated_cost > cap):
                skipped[spec.name] = SkipReason.OVER_BUDGET
            else:
                kept.append(spec)
        inner = getattr(base, "reason", "") or ("priority" if self.then is None else "custom")
        reason = f"budget ({len(skipped)} over budget) then {inner}"
        return Ordered(kept, reason, skipped)
