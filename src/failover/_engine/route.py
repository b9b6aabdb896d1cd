"""Built routes: an operation's pairs in priority order, with their policies.

:class:`Pair` is the core's :class:`~failover._core.pair.PairState` plus what only the engine
needs: the pair's resolved policy and its pybreaker mirror (built on first use).
:class:`Route` is one operation: its pairs, how to order them per call, and its
:class:`~failover.policies.Pipeline` (``None`` when no policy applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover._core.breaker import BreakerState, PairBreaker
from failover._core.classify import Classifier
from failover._core.pair import PairState, PlatformState
from failover._core.spec import PlatformSpec
from failover.policies.ordering import Ordering, cost_order, priority_order
from failover.policies.policy import ResolvedPolicy

if TYPE_CHECKING:
    from failover._engine.mirror import PybreakerMirror
    from failover.policies import Pipeline


class Pair(PairState):
    """One (platform, operation) as the engine runs it."""

    __slots__ = ("_mirror", "policy")

    def __init__(
        self,
        spec: PlatformSpec,
        operation: str,
        platform: PlatformState,
        breaker: PairBreaker,
        policy: ResolvedPolicy,
        classifiers: tuple[Classifier, ...],
        environ: Mapping[str, str] | None,
    ) -> None:
        super().__init__(spec, operation, platform, breaker, classifiers, environ)
        self.policy = policy
        self._mirror: PybreakerMirror | None = None

    @property
    def mirror(self) -> PybreakerMirror:
        """The ``pybreaker.CircuitBreaker`` mirror, built (and caught up) on first use.

        Until someone asks for it there is nothing to keep in step: no pybreaker import and
        no pybreaker object per pair.
        """
        mirror = self._mirror
        if mirror is None:
            from failover._engine.mirror import PybreakerMirror

            mirror = PybreakerMirror(self.breaker, f"{self.spec.name}:{self.operation}")
            mirror.catch_up()
            self._mirror = mirror
        return mirror

    def replay_transition(self, new: BreakerState) -> None:
        """Apply a pair-breaker transition to the mirror, if one has been built."""
        if self._mirror is not None:
            self._mirror.replay(new)

    def record_failure_counters(self) -> None:
        if self._mirror is not None:
            self._mirror.sync_failures()


class Route:
    """The pairs of one operation in priority order, and the ordering to apply per call."""

    __slots__ = (
        "_by_name",
        "_cost_order",
        "continue_on",
        "deadline",
        "last_resort",
        "operation",
        "ordering",
        "pairs",
        "pipeline",
        "plain",
        "windowed",
    )

    def __init__(
        self,
        operation: str,
        pairs: Sequence[Pair],
        ordering: Ordering | None,
        deadline: float | None,
    ) -> None:
        self.operation = operation
        self.pairs: tuple[Pair, ...] = tuple(pairs)
        self.ordering = ordering
        self._by_name = {pair.spec.name: pair for pair in self.pairs}
        self._cost_order = tuple(sorted(self.pairs, key=lambda pair: pair.spec.estimated_cost))
        self.pipeline: Pipeline | None = None
        self.deadline = deadline
        self.last_resort: Any = None
        #: The request-fault reasons that go on to the next platform, when the operation's
        #: policy changes the manager's ``continue_on`` (``content_policy_fallback``).
        self.continue_on: frozenset[str] | None = None
        #: A pair counts its calls in a rate window: every success must reach its breaker,
        #: which the fast path (that books a success only on a pair with failures) skips.
        self.windowed = any(pair.breaker.window is not None for pair in self.pairs)
        #: No deadline, no policy acting per attempt, no rate window: the fast path applies.
        self.plain = deadline is None and not self.windowed

    def install(self, pipeline: Pipeline | None) -> None:
        """Use ``pipeline`` from the next call on (rebuilt when chaos is switched)."""
        self.pipeline = pipeline
        self.last_resort = None if pipeline is None else pipeline.last_resort
        if pipeline is not None and pipeline.deadline is not None:
            self.deadline = pipeline.deadline
        self.plain = (
            self.deadline is None
            and not self.windowed
            and (pipeline is None or not pipeline.per_attempt)
        )

    def order(self, context: Mapping[str, Any] | None) -> Sequence[Pair]:
        ordering = self.ordering
        if ordering is None or ordering is priority_order:
            return self.pairs
        if ordering is cost_order:
            if context and context.get("quality_boost"):
                return self.pairs
            return self._cost_order
        specs = ordering(self.operation, [pair.spec for pair in self.pairs], context or {})
        # dict.fromkeys: a strategy naming a platform twice must not get it tried twice.
        names = dict.fromkeys(spec.name for spec in specs if spec.name in self._by_name)
        return [self._by_name[name] for name in names]
