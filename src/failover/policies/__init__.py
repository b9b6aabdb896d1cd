"""Resilience policies, one module each, behind one interface (:class:`Strategy`), composed in
one declared order.

The order in which they apply to one call (``docs/policies.md``)::

    deadline (whole call)                        deadline.py      Policy.deadline
      └─ ordering: which platforms, in what order  ordering.py    PlatformManager(ordering=...)
           │                                       budget.py      BudgetOrder  [over_budget]
           └─ chain: platform after platform       (the engine)   PlatformManager(max_attempts=...)
                └─ hedging: next platform in parallel after a delay   hedge.py   Policy.hedge
                     └─ retry on the same platform  retry.py      Policy.retry (tenacity)
                          └─ breaker admission       (the core)   one permit per attempt [open, ...]
                               └─ bulkhead slot      bulkhead.py  Policy.bulkhead  [bulkhead_full]
                                    └─ attempt timeout   timeout.py   Policy.attempt_timeout
                                         └─ chaos        chaos.py     PlatformManager(chaos=...)
                                              └─ your operation
    and when every platform was unavailable:     last_resort.py   when_all_unavailable

Why this order: the deadline bounds everything, hedges and waits included. The order is
decided once per call. A hedge is a whole platform run started early, so it sits on the
chain, above retries. Each retry is admitted again (the breaker may have opened meanwhile).
Admission comes before the bulkhead because it is free and never waits: no call queues for
a slot on a platform it would skip anyway, and a slot is held only while an attempt runs.
The attempt timeout is inside the bulkhead so queueing does not eat an attempt's time.
Chaos is innermost so injected faults and latency meet every real policy.

:data:`ORDER` declares that order; :func:`register` adds a strategy of one's own at a chosen
place in it; :func:`compose` builds a route's :class:`Pipeline` from the strategies that
apply to it (``None`` when none does: the engine's plain walk pays nothing for policies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from failover._core.errors import ConfigError
from failover._observe.scrub import get_logger
from failover.policies.base import HOOKS, CallView, PairView, PlatformRun, Strategy
from failover.policies.bulkhead import BulkheadStrategy
from failover.policies.chaos import ChaosStrategy
from failover.policies.deadline import Deadline
from failover.policies.hedge import HedgeStrategy
from failover.policies.ordering import OrderingStrategy, is_builtin
from failover.policies.retry import RETRY
from failover.policies.timeout import ATTEMPT_TIMEOUT

if TYPE_CHECKING:
    from failover._core.classify import Classification
    from failover.policies.bulkhead import Limiter
    from failover.policies.chaos import ChaosControl
    from failover.policies.hedge import Hedge
    from failover.policies.last_resort import LastResort

logger = get_logger("failover")

__all__ = [
    "HOOKS",
    "ORDER",
    "CallView",
    "PairView",
    "Pipeline",
    "PlatformRun",
    "RouteSettings",
    "Strategy",
    "compose",
    "register",
    "unregister",
]


class RouteSettings(NamedTuple):
    """What a strategy factory sees of one operation's route when it is built."""

    operation: str
    pairs: Sequence[PairView]
    deadline: float | None
    hedge: Hedge | None
    last_resort: LastResort | None
    ordering: Callable[..., Sequence[Any]] | None
    chaos: ChaosControl | None
    limiters: Mapping[tuple[str, str], Limiter]


#: Builds a route's strategy from its settings, or ``None`` when it does not apply.
Factory = Callable[[RouteSettings], Strategy | None]


def _deadline(route: RouteSettings) -> Strategy | None:
    return None if route.deadline is None else Deadline(route.deadline)


def _ordering(route: RouteSettings) -> Strategy | None:
    if is_builtin(route.ordering):
        return None
    assert route.ordering is not None
    return OrderingStrategy(route.ordering, route.pairs)


def _hedge(route: RouteSettings) -> Strategy | None:
    hedge = route.hedge
    return None if hedge is None or not hedge.enabled else HedgeStrategy(hedge)


def _retry(route: RouteSettings) -> Strategy | None:
    return RETRY if any(pair.policy.retry is not None for pair in route.pairs) else None


def _bulkhead(route: RouteSettings) -> Strategy | None:
    keys = {pair.key for pair in route.pairs}
    limiters = {key: limiter for key, limiter in route.limiters.items() if key in keys}
    return BulkheadStrategy(limiters) if limiters else None


def _timeout(route: RouteSettings) -> Strategy | None:
    timed = any(pair.policy.attempt_timeout is not None for pair in route.pairs)
    return ATTEMPT_TIMEOUT if timed else None


def _chaos(route: RouteSettings) -> Strategy | None:
    if route.chaos is None:
        return None
    armed = route.chaos.armed_for(route.operation)
    return ChaosStrategy(route.chaos, armed) if armed else None


def _last_resort(route: RouteSettings) -> Strategy | None:
    return route.last_resort


#: The composition order: strategy names, outermost first, each with its factory.
ORDER: dict[str, Factory] = {
    "deadline": _deadline,
    "ordering": _ordering,
    "hedge": _hedge,
    "retry": _retry,
    "bulkhead": _bulkhead,
    "attempt_timeout": _timeout,
    "chaos": _chaos,
    "last_resort": _last_resort,
}


def register(name: str, factory: Factory, *, before: str) -> None:
    """Add a strategy to the composition, just outside ``before`` (one of :data:`ORDER`).

    ``factory(route)`` is called for each operation's route when a manager is built and
    returns the route's :class:`Strategy`, or ``None`` where it does not apply. Managers
    built before the call are unaffected.
    """
    if not isinstance(name, str) or not name or name in ORDER:
        raise ConfigError(
            f"strategy name must be a new, non-empty string, got {name!r}", key="name"
        )
    if before not in ORDER:
        raise ConfigError(f"before must be one of {', '.join(ORDER)}, got {before!r}", key="before")
    if not callable(factory):
        raise ConfigError(f"factory must be callable, got {factory!r}", key="factory")
    items = list(ORDER.items())
    index = [key for key, _ in items].index(before)
    items.insert(index, (name, factory))
    ORDER.clear()
    ORDER.update(items)


def unregister(name: str) -> None:
    """Remove a strategy added with :func:`register`."""
    if name in _BUILT_IN:
        raise ConfigError(f"{name!r} is built in and cannot be removed", key="name")
    ORDER.pop(name, None)


_BUILT_IN = frozenset(ORDER)


def _overriding(strategies: Sequence[Strategy], hook: str) -> tuple[Any, ...]:
    return tuple(getattr(s, hook) for s in strategies if hook in s.hooks())


class Pipeline:
    """One route's strategies, as bound hooks grouped by hook, in :data:`ORDER`.

    The engine asks only the groups that are non-empty; ``per_attempt`` says whether any
    strategy acts while platforms are tried (if not, the plain walk runs).
    """

    __slots__ = (
        "admit",
        "deadline",
        "hedge_delay",
        "last_resort",
        "observe",
        "per_attempt",
        "plan",
        "retry_wait",
        "slot",
        "strategies",
        "timeouts",
        "wrappers",
    )

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        self.strategies = tuple(strategies)
        limits = [limit() for limit in _overriding(strategies, "call_limit")]
        finite = [limit for limit in limits if limit is not None and not math.isinf(limit)]
        #: The tightest call limit (seconds), or ``None``.
        self.deadline: float | None = min(finite) if finite else None
        self.plan: tuple[Callable[[CallView, Sequence[Any]], Sequence[Any]], ...] = _overriding(
            strategies, "plan"
        )
        hedges = _overriding(strategies, "hedge_delay")
        self.hedge_delay: Callable[[PairView, int], float | None] | None = (
            hedges[0] if hedges else None
        )
        self.admit: tuple[Callable[[CallView, PairView], str | None], ...] = _overriding(
            strategies, "admit"
        )
        self.slot: tuple[Callable[[PairView], Limiter | None], ...] = _overriding(
            strategies, "slot"
        )
        self.timeouts: tuple[Callable[[PairView], float | None], ...] = _overriding(
            strategies, "attempt_limit"
        )
        #: The strategies that wrap the operation, in :data:`ORDER`.
        self.wrappers = tuple(s for s in strategies if "wrap" in s.hooks())
        self.retry_wait: tuple[
            Callable[[PlatformRun, BaseException, Classification, float], float | None], ...
        ] = _overriding(strategies, "retry_wait")
        self.observe: tuple[Callable[..., None], ...] = _overriding(strategies, "observe")
        resorts = [resort() for resort in _overriding(strategies, "exhausted")]
        self.last_resort: LastResort | None = next((r for r in resorts if r is not None), None)
        self.per_attempt = bool(
            self.plan
            or self.hedge_delay
            or self.admit
            or self.slot
            or self.timeouts
            or self.wrappers
            or self.retry_wait
            or self.observe
        )

    def attempt_limit(self, pair: PairView) -> float | None:
        """The tightest attempt limit for ``pair`` (seconds), or ``None``."""
        limit: float | None = None
        for timeout in self.timeouts:
            seconds = timeout(pair)
            if seconds is not None and (limit is None or seconds < limit):
                limit = seconds
        return limit

    def wrap(
        self, operation: str, func: Callable[..., Any], *, blocking: bool = False
    ) -> Callable[..., Any]:
        """``func`` wrapped by every ``wrap`` hook, the first in :data:`ORDER` outermost
        (``wrap_blocking`` for a synchronous call: a strategy without one is refused)."""
        for strategy in reversed(self.wrappers):
            if not blocking:
                func = strategy.wrap(operation, func)
                continue
            wrapped = strategy.wrap_blocking(operation, func)
            if wrapped is None:
                raise ConfigError(
                    f"policy {strategy.name!r} wraps operations of async calls only: await "
                    "manager.with_fallback(...) to use it",
                    key=strategy.name,
                )
            func = wrapped
        return func

    def next_wait(
        self, run: PlatformRun, error: BaseException, verdict: Classification, now: float
    ) -> float | None:
        """Seconds to wait before retrying ``run``'s platform, or ``None`` to move on."""
        for retry_wait in self.retry_wait:
            wait = retry_wait(run, error, verdict, now)
            if wait is not None:
                return wait
        return None

    def observed(
        self,
        pair: PairView,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        for observe in self.observe:
            try:
                observe(pair, ok, duration, result, error)
            except Exception as exc:
                # The attempt's outcome is already booked: a strategy's bookkeeping error
                # must not turn an answer into a failed call, nor replace the provider's error.
                logger.warning(
                    "Policy %s failed to observe %s on %s: %s",
                    getattr(getattr(observe, "__self__", None), "name", observe),
                    pair.operation,
                    pair.spec.name,
                    type(exc).__qualname__,
                )


def compose(route: RouteSettings, factories: Sequence[Factory] | None = None) -> Pipeline | None:
    """The pipeline of ``route``: every strategy that applies to it, from ``factories`` (a
    snapshot of :data:`ORDER` taken when a manager was built; default: the current order)."""
    chosen = ORDER.values() if factories is None else factories
    strategies = [s for s in (factory(route) for factory in chosen) if s is not None]
    return Pipeline(strategies) if strategies else None
