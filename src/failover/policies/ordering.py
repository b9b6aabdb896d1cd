"""Ordering: which platforms a call tries, in what order.

An ordering is any callable ``(operation, platforms, context) -> platforms``: fixed priority
(:func:`priority_order`), cheapest first (:func:`cost_order`), the strategies here (latency,
weighted round robin) and :class:`~failover.BudgetOrder` (``failover.policies.budget``).
The strategies return :class:`Ordered`, a tuple that also says *why*
(``failover.order.reason`` on the call span) and which platforms to skip (``over_budget``).
Strategies that learn from traffic have an ``observe(observation)`` method: the engine calls
it after every attempt (and for outcomes reported by hand), and only for strategies that have
it. A strategy that needs the manager's clock has ``bind(clock)``, called once when the
manager is built. :class:`OrderingStrategy` is how the engine sees them (the ``plan`` and
``observe`` hooks).

Each strategy keeps its state per operation and is cheap per call: the latency order is
recomputed only after a new observation, not on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from failover._core import validate
from failover._core.errors import ConfigError
from failover._core.spec import PlatformSpec
from failover._observe.scrub import get_logger
from failover.policies.base import CallView, PairView, Strategy

if TYPE_CHECKING:
    from opentelemetry.trace import Span


logger = get_logger("failover")

OrderFunction = Callable[[str, Sequence[PlatformSpec], Mapping[str, Any]], Sequence[PlatformSpec]]


class Ordering(Protocol):
    """Decides the order in which an operation's platforms are tried for one call.

    ``platforms`` arrive in priority order; return them (or a subset) in the order to try.
    ``context`` holds the keywords given to ``get_platform(**context)`` or
    ``with_fallback(..., failover_context={...})``.
    """

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Sequence[PlatformSpec]: ...


def priority_order(
    operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
) -> Sequence[PlatformSpec]:
    """Fixed priority: as configured."""
    return platforms


def cost_order(
    operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
) -> Sequence[PlatformSpec]:
    """Cheapest first (ties keep priority), unless the call asks for ``quality_boost``."""
    if context.get("quality_boost"):
        return platforms
    return sorted(platforms, key=lambda spec: spec.estimated_cost)


def is_builtin(ordering: object) -> bool:
    """Fixed priority or cost order: the route orders these itself, with no strategy."""
    return ordering is None or ordering is priority_order or ordering is cost_order


class Ordered(tuple["PlatformSpec", ...]):
    """Platforms in the order to try, with the ``reason`` and the platforms to ``skipped``."""

    reason: str
    skipped: Mapping[str, str]

    def __new__(
        cls,
        platforms: Iterable[PlatformSpec],
        reason: str = "",
        skipped: Mapping[str, str] | None = None,
    ) -> Ordered:
        ordered = super().__new__(cls, platforms)
        ordered.reason = reason
        ordered.skipped = skipped or {}
        return ordered


class Observation(NamedTuple):
    """One attempt's outcome as an ordering strategy sees it (immutable; a named tuple,
    because one is made per attempt).

    ``duration`` is ``None`` for an outcome reported by hand without a response time;
    ``result`` is the operation's return value on success (for cost extraction), never logged.
    """

    platform: PlatformSpec
    operation: str
    ok: bool
    duration: float | None
    result: Any = None
    error: BaseException | None = None


# -- latency -----------------------------------------------------------------------------------


class LatencyOrder:
    """Fastest first by an EWMA of response times, with a tolerance band against flapping.

    A platform moves ahead of the one before it only when its average is lower by more than
    ``tolerance`` (a fraction: 0.2 = 20 %) plus ``tolerance_seconds``; inside the band the
    current order stays, so two platforms of similar speed do not swap on every sample.
    ``alpha`` weighs the newest sample. A platform is placed by its estimate once it has
    ``min_samples`` samples (before that by its ``estimated_time`` if set); an unmeasured
    platform keeps its place. Failures do not feed the average, except attempt timeouts,
    which count as their duration (a timeout is slowness).
    """

    def __init__(
        self,
        *,
        tolerance: float = 0.2,
        tolerance_seconds: float = 0.0,
        alpha: float = 0.3,
        min_samples: int = 3,
    ) -> None:
        self.tolerance = validate.fraction("tolerance", tolerance, upper_open=True)
        self.tolerance_seconds = validate.number(
            "tolerance_seconds", tolerance_seconds, at_least=0, kind="a finite number"
        )
        self.alpha = validate.fraction("alpha", alpha)
        validate.number("alpha", self.alpha, above=0, kind="")
        self.min_samples = validate.integer("min_samples", min_samples, at_least=1)
        self._reason = f"latency ewma, band {self.tolerance:.0%} + {self.tolerance_seconds:g}s"
        # (platform, operation) -> [ewma, samples]
        self._ewma: dict[tuple[str, str], list[float]] = {}
        # operation -> (platforms given, their names, Ordered); dropped when it may be stale
        self._cache: dict[str, tuple[Sequence[PlatformSpec], tuple[str, ...], Ordered]] = {}
        self._positions: dict[str, dict[str, int]] = {}  # operation -> name -> cached position
        self._last: dict[str, Ordered] = {}  # the order chosen last, for hysteresis

    def estimate(self, platform: str, operation: str) -> float | None:
        """The current EWMA of ``platform`` for ``operation`` in seconds (``None``: unmeasured)."""
        entry = self._ewma.get((platform, operation))
        return None if entry is None else entry[0]

    def observe(self, observation: Observation) -> None:
        seconds = observation.duration
        if seconds is None:
            return
        if not observation.ok and not isinstance(observation.error, TimeoutError):
            return
        key = (observation.platform.name, observation.operation)
        entry = self._ewma.get(key)
        if entry is None:
            self._ewma[key] = [seconds, 1.0]
        else:
            entry[0] += self.alpha * (seconds - entry[0])
            entry[1] += 1
        # Only a sample that moves its platform across a neighbour's band can change the
        # order; otherwise the cached order stays valid and calls stay O(1).
        operation = observation.operation
        cached = self._cache.get(operation)
        if cached is not None and self._may_move(cached[2], key[0], operation):
            del self._cache[operation]

    def _may_move(self, order: Ordered, name: str, operation: str) -> bool:
        index = self._positions[operation].get(name)
        if index is None:
            return True
        mine = self._latency(order[index], operation)
        if index > 0 and self._clearly_faster(mine, self._latency(order[index - 1], operation)):
            return True
        return index + 1 < len(order) and self._clearly_faster(
            self._latency(order[index + 1], operation), mine
        )

    def _clearly_faster(self, mine: float | None, theirs: float | None) -> bool:
        if mine is None or theirs is None:
            return False
        return mine < theirs * (1.0 - self.tolerance) - self.tolerance_seconds

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Ordered:
        cached = self._cache.get(operation)
        if cached is not None:
            if cached[0] is platforms:
                return cached[2]
            names = cached[1]
            if len(names) == len(platforms) and all(
                spec.name == name for spec, name in zip(platforms, names, strict=True)
            ):
                return cached[2]
        ordered = self._order(operation, platforms, self._last.get(operation))
        self._last[operation] = ordered
        self._cache[operation] = (platforms, tuple(spec.name for spec in platforms), ordered)
        self._positions[operation] = {spec.name: index for index, spec in enumerate(ordered)}
        return ordered

    def _latency(self, spec: PlatformSpec, operation: str) -> float | None:
        entry = self._ewma.get((spec.name, operation))
        if entry is not None and entry[1] >= self.min_samples:
            return entry[0]
        return spec.estimated_time if spec.estimated_time > 0 else None

    def _order(
        self, operation: str, platforms: Sequence[PlatformSpec], previous: Ordered | None
    ) -> Ordered:
        given = {spec.name: spec for spec in platforms}
        # Start from the order chosen last time (hysteresis), new platforms in given order.
        start = [spec.name for spec in previous or () if spec.name in given]
        start += [name for name in given if name not in start]
        order = [given[name] for name in start]
        latency = {spec.name: self._latency(spec, operation) for spec in order}
        for index in range(1, len(order)):
            position = index
            while position > 0 and self._clearly_faster(
                latency[order[position].name], latency[order[position - 1].name]
            ):
                order[position - 1], order[position] = order[position], order[position - 1]
                position -= 1
        return Ordered(order, self._reason)


# -- weighted round robin ------------------------------------------------------------------------


class WeightedRoundRobin:
    """Spread calls across platforms that are equals, in proportion to their weights.

    With ``weights={"groq": 3, "together": 1}`` the named platforms are the equals: they keep
    the places they hold in the priority list, but which of them comes first rotates (smooth
    weighted round robin: 3 of every 4 calls start on groq, interleaved, not in bursts); the
    others follow in the same rotation. Without ``weights``, platforms of equal
    ``PlatformSpec.priority`` are equals, each with weight 1. Others keep their place.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        if weights is not None:
            if not isinstance(weights, Mapping) or not weights:
                raise ConfigError(
                    f"weights must be a non-empty mapping of platform name -> weight, "
                    f"got {weights!r}",
                    key="weights",
                )
            weights = {
                str(name): validate.number(
                    f"weights[{name!r}]", value, above=0, kind="a finite number"
                )
                for name, value in weights.items()
            }
        self.weights = weights
        # (operation, group) -> current weight per member
        self._current: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}

    def _groups(self, platforms: Sequence[PlatformSpec]) -> list[list[int]]:
        if self.weights is not None:
            members = [i for i, spec in enumerate(platforms) if spec.name in self.weights]
            return [members] if len(members) > 1 else []
        by_priority: dict[int, list[int]] = {}
        for index, spec in enumerate(platforms):
            by_priority.setdefault(spec.priority, []).append(index)
        return [group for group in by_priority.values() if len(group) > 1]

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Ordered:
        order = list(platforms)
        picks: list[str] = []
        for group in self._groups(platforms):
            names = tuple(platforms[i].name for i in group)
            weights = self.weights
            weight = {name: weights[name] if weights else 1.0 for name in names}
            current = self._current.setdefault((operation, names), dict.fromkeys(names, 0.0))
            total = 0.0
            for name in names:
                current[name] += weight[name]
                total += weight[name]
            chosen = max(names, key=lambda name: current[name])
            current[chosen] -= total
            rotated = [
                chosen,
                *sorted((n for n in names if n != chosen), key=lambda n: -current[n]),
            ]
            by_name = {platforms[i].name: platforms[i] for i in group}
            for slot, name in zip(group, rotated, strict=True):
                order[slot] = by_name[name]
            picks.append(chosen)
        reason = "weighted round robin: " + (", ".join(picks) if picks else "no equals")
        return Ordered(order, reason)


def ordering_name(ordering: object) -> str:
    """A short name for an ordering callable, for ``failover.order.reason``."""
    name = getattr(ordering, "__name__", None) or type(ordering).__name__
    return str(name)


def order_reason(ordering: object, context: Mapping[str, Any] | None) -> str:
    """Why a route's ordering chose its order, when it does not say so itself."""
    if ordering is None:
        return "priority"
    if ordering is priority_order:
        return "priority"
    if ordering is cost_order:
        quality = bool(context and context.get("quality_boost"))
        return "priority (quality_boost)" if quality else "cost"
    return ordering_name(ordering)


class OrderingStrategy(Strategy):
    """The ``plan`` and ``observe`` hooks of an ordering strategy (not priority or cost,
    which the route applies itself)."""

    __slots__ = ("_by_name", "_last_order", "_last_specs", "_specs", "learns", "strategy")

    name = "ordering"

    def __init__(self, strategy: OrderFunction, pairs: Sequence[PairView]) -> None:
        self.strategy = strategy
        self._specs = tuple(pair.spec for pair in pairs)
        self._by_name = {pair.spec.name: pair for pair in pairs}
        self._last_specs: object = None
        self._last_order: Sequence[PairView] = ()
        #: The strategy's own ``observe(observation)``, when it learns from traffic.
        self.learns: Callable[[Observation], None] | None = getattr(strategy, "observe", None)

    def plan(self, call: CallView, order: Sequence[Any]) -> Sequence[Any]:
        specs = self.strategy(call.operation, self._specs, call.context or {})
        by_name = self._by_name
        if specs is self._last_specs:  # the strategy returned its cached order again
            planned = self._last_order
        else:
            # dict.fromkeys: a strategy naming a platform twice must not get it tried twice.
            names = dict.fromkeys(spec.name for spec in specs if spec.name in by_name)
            planned = [by_name[name] for name in names]
            self._last_specs, self._last_order = specs, planned
        call.order_reason = getattr(specs, "reason", "") or ordering_name(self.strategy)
        skips: Mapping[str, str] | None = getattr(specs, "skipped", None)
        if skips:
            for name, why in skips.items():
                pair = by_name.get(name)
                if pair is not None:
                    call.skip(pair, why)
        return planned

    def observe(
        self,
        pair: PairView,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        learns = self.learns
        if learns is None:
            return
        try:
            learns(Observation(pair.spec, pair.operation, ok, duration, result, error))
        except Exception as exc:
            # The attempt's outcome is already booked: a strategy's bookkeeping error must not
            # turn an answer into a failed call, nor replace the provider's error.
            logger.warning(
                "Ordering strategy %s failed to observe %s on %s: %s",
                ordering_name(self.strategy),
                pair.operation,
                pair.spec.name,
                type(exc).__qualname__,
            )


def annotate_order(span: Span, order: Sequence[PairView], reason: str) -> None:
    """Put the chosen order and its reason on the call span."""
    span.set_attributes(
        {
            "failover.order": [pair.spec.name for pair in order],
            "failover.order.reason": reason,
        }
    )
