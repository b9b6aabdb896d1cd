"""Usage-aware order: rank platforms by what recent traffic says about them.

:class:`UsageOrder` is an ordering (``PlatformManager(ordering=UsageOrder())``) that learns
from every attempt (``observe``): a platform's recent failure rate, its response time and its
estimated cost, weighed together into one score (lower is better). Unlike
:class:`~failover.LatencyOrder` it sees failures (a platform failing half its calls goes
down the list however fast it fails); unlike :class:`~failover.BudgetOrder` it never skips a
platform; unlike :class:`~failover.WeightedRoundRobin` it does not spread load on purpose.
It keeps exploring: every ``explore_every``-th call of an operation starts on the demoted
platform it has heard from least recently, so a recovered platform can win its place back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from failover._core import validate
from failover._core.classify import ErrorKind, classify
from failover._core.spec import PlatformSpec
from failover.policies.ordering import Observation, Ordered

#: Failures that say something about the platform (not the request's own fault).
_PROVIDER_KINDS = frozenset(
    {ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.CREDIT_EXHAUSTED, ErrorKind.AUTH}
)


class _Usage:
    """What one (platform, operation) has shown: EWMAs of failure and latency."""

    __slots__ = ("failure", "heard", "latency", "samples")

    def __init__(self) -> None:
        self.failure = 0.0
        self.latency: float | None = None
        self.samples = 0
        self.heard = 0  # the operation's call count when last observed


class UsageOrder:
    """Best score first: ``success_weight * failure rate + latency_weight * latency share +
    cost_weight * cost share`` (each share relative to the slowest or dearest platform).

    ``alpha`` weighs the newest sample of the failure and latency averages; a platform is
    ranked once it has ``min_samples`` of them (before that it keeps its place, and
    exploration measures it). Hysteresis: a platform moves ahead of
    the one before it only when its score is lower by more than ``band``, so platforms of
    similar standing do not swap on every sample. Exploration: every ``explore_every``-th
    call (``0``: never) puts first the platform, not first already, heard from least recently:
    one call in ``explore_every`` at most pays for a look at a demoted platform. Only
    provider failures count (transient, rate limited, credit, auth); the request's own faults
    say nothing about the platform.
    """

    def __init__(
        self,
        *,
        success_weight: float = 1.0,
        latency_weight: float = 0.3,
        cost_weight: float = 0.1,
        alpha: float = 0.2,
        min_samples: int = 5,
        band: float = 0.1,
        explore_every: int = 50,
    ) -> None:
        self.weights = tuple(
            validate.number(name, value, at_least=0, kind="a finite number")
            for name, value in (
                ("success_weight", success_weight),
                ("latency_weight", latency_weight),
                ("cost_weight", cost_weight),
            )
        )
        self.alpha = validate.number("alpha", alpha, above=0, at_most=1)
        self.min_samples = validate.integer("min_samples", min_samples, at_least=1)
        self.band = validate.number("band", band, at_least=0, kind="a finite number")
        self.explore_every = validate.integer("explore_every", explore_every, at_least=0)
        self._usage: dict[tuple[str, str], _Usage] = {}
        self._calls: dict[str, int] = {}
        self._last: dict[str, list[str]] = {}  # the order chosen last, for hysteresis

    def observe(self, observation: Observation) -> None:
        error = observation.error
        failed = not observation.ok
        if failed and (error is None or classify(error).kind not in _PROVIDER_KINDS):
            return
        operation = observation.operation
        key = (observation.platform.name, operation)
        usage = self._usage.get(key)
        if usage is None:
            usage = self._usage[key] = _Usage()
        alpha = self.alpha
        usage.failure += alpha * ((1.0 if failed else 0.0) - usage.failure)
        seconds = observation.duration
        if seconds is not None and (not failed or isinstance(error, TimeoutError)):
            latency = usage.latency
            usage.latency = seconds if latency is None else latency + alpha * (seconds - latency)
        usage.samples += 1
        usage.heard = self._calls.get(operation, 0)

    def scores(self, operation: str, platforms: Sequence[PlatformSpec]) -> dict[str, float | None]:
        """Each platform's score now (lower is better); ``None`` until it has ``min_samples``."""
        figures = {spec.name: self._figures(spec, operation) for spec in platforms}
        measured = [figure for figure in figures.values() if figure is not None]
        slowest = max((latency for _, latency in measured), default=0.0)
        dearest = max((spec.estimated_cost for spec in platforms), default=0.0)
        success_weight, latency_weight, cost_weight = self.weights
        scores: dict[str, float | None] = {}
        for spec in platforms:
            figure = figures[spec.name]
            if figure is None:
                scores[spec.name] = None
                continue
            failure, latency = figure
            latency_share = latency / slowest if slowest > 0 else 0.0
            cost_share = spec.estimated_cost / dearest if dearest > 0 else 0.0
            scores[spec.name] = (
                success_weight * failure + latency_weight * latency_share + cost_weight * cost_share
            )
        return scores

    def _figures(self, spec: PlatformSpec, operation: str) -> tuple[float, float] | None:
        """Failure rate and latency once measured enough; ``None`` before."""
        usage = self._usage.get((spec.name, operation))
        if usage is None or usage.samples < self.min_samples:
            return None
        latency = usage.latency
        if latency is None:
            latency = spec.estimated_time
        return usage.failure, latency

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Ordered:
        count = self._calls[operation] = self._calls.get(operation, 0) + 1
        given = {spec.name: spec for spec in platforms}
        start = [name for name in self._last.get(operation, ()) if name in given]
        start += [name for name in given if name not in start]
        scores = self.scores(operation, platforms)
        order = start
        for index in range(1, len(order)):
            position = index
            while position > 0 and self._clearly_better(
                scores[order[position]], scores[order[position - 1]]
            ):
                order[position - 1], order[position] = order[position], order[position - 1]
                position -= 1
        self._last[operation] = list(order)
        reason = "usage: failure rate, latency, cost"
        every = self.explore_every
        if every and count % every == 0 and len(order) > 1:
            stale = min(order[1:], key=lambda name: self._heard(name, operation))
            order = [stale, *(name for name in order if name != stale)]
            reason = f"usage, exploring {stale}"
        return Ordered([given[name] for name in order], reason)

    def _clearly_better(self, mine: float | None, theirs: float | None) -> bool:
        # An unmeasured platform keeps its place until exploration has measured it.
        return mine is not None and theirs is not None and mine < theirs - self.band

    def _heard(self, name: str, operation: str) -> int:
        usage = self._usage.get((name, operation))
        return -1 if usage is None else usage.heard
