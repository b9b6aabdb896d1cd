"""Resilience policies as immutable values, and how they compose.

The order in which they wrap one call is fixed and documented (``docs/policies.md``)::

    deadline (whole call)                        Policy.deadline
      └─ ordering: which platforms, in what order  PlatformManager(ordering=...)  [over_budget]
           └─ chain: platform after platform       PlatformManager(max_attempts=...)
                └─ hedging: next platform in parallel after a delay   Policy.hedge
                     └─ retry on the same platform  Policy.retry (tenacity stop/wait/retry)
                          └─ breaker admission       one permit per attempt  [open, credit, ...]
                               └─ bulkhead slot      Policy.bulkhead  [bulkhead_full]
                                    └─ attempt timeout   Policy.attempt_timeout
                                         └─ chaos        PlatformManager(chaos=...), FAILOVER_CHAOS
                                              └─ your operation

Why this order: the deadline bounds everything, hedges and waits included. The order is
decided once per call. A hedge is a whole platform run started early, so it sits on the
chain, above retries. Each retry is admitted again (the breaker may have opened meanwhile).
Admission comes before the bulkhead because it is free and never waits: no call queues for
a slot on a platform it would skip anyway, and a slot is held only while an attempt runs.
The attempt timeout is inside the bulkhead so queueing does not eat an attempt's time.
Chaos is innermost so injected faults and latency meet every real policy.

tenacity's strategy objects are accepted as they are (``stop_after_attempt(3) |
stop_after_delay(10)``, ``wait_random_exponential(...)``, ``retry_if_exception_type(...)``);
failover drives them from its own loop: retry state is built only after a failure, waits use
the injected clock (``anyio.sleep`` by default), and cancellation is never retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final

from failover._core import validate
from failover._core.classify import Classification, ErrorKind
from failover._core.errors import ConfigError
from failover.policies.bulkhead import NO_BULKHEAD, Bulkhead
from failover.policies.hedge import Hedge

if TYPE_CHECKING:
    from tenacity.retry import RetryBaseT
    from tenacity.stop import StopBaseT
    from tenacity.wait import WaitBaseT

    #: No retry on the same platform: fall back instead (the default). Built on first use.
    NO_RETRY: Retry

_testing_attempts: int | None = None


def set_testing_attempts(attempts: int | None) -> None:
    """Used by :func:`failover.testing.set_testing`: cap retries and skip waits."""
    global _testing_attempts
    _testing_attempts = attempts


# tenacity is imported on first use (a Retry built, a retry run), not by ``import failover``.
# The default strategies are built once and shared, as plain class-level defaults would be:
# tenacity strategies are immutable values, and ``Retry() == Retry()`` holds.
_defaults: dict[str, Any] = {}


def _default_stop() -> StopBaseT:
    stop = _defaults.get("stop")
    if stop is None:
        import tenacity

        stop = _defaults["stop"] = tenacity.stop_after_attempt(3)
    return stop


def _default_wait() -> WaitBaseT:
    wait = _defaults.get("wait")
    if wait is None:
        import tenacity

        wait = _defaults["wait"] = tenacity.wait_random_exponential(multiplier=0.5, max=10)
    return wait


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry a *transient* failure on the same platform before falling back.

    ``stop`` and ``wait`` are tenacity strategies. ``retry`` (optional) is a tenacity retry
    predicate that further narrows which transient failures are retried; rate limits, credit,
    auth and request errors are never retried on the same platform, whatever it says.
    """

    stop: StopBaseT = field(default_factory=_default_stop)
    wait: WaitBaseT = field(default_factory=_default_wait)
    retry: RetryBaseT | None = None

    def __post_init__(self) -> None:
        for name in ("stop", "wait"):
            if not callable(getattr(self, name)):
                raise ConfigError(
                    f"Retry.{name} must be a tenacity strategy, got {getattr(self, name)!r}",
                    key=name,
                )
        if self.retry is not None and not callable(self.retry):
            raise ConfigError(
                f"Retry.retry must be a tenacity retry predicate, got {self.retry!r}",
                key="retry",
            )


_no_retry: Retry | None = None


def __getattr__(name: str) -> Any:
    # NO_RETRY is built on first use so that importing failover does not import tenacity.
    global _no_retry
    if name == "NO_RETRY":
        if _no_retry is None:
            import tenacity

            _no_retry = Retry(stop=tenacity.stop_after_attempt(1), wait=tenacity.wait_none())
        return _no_retry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: What a call does when every platform is unavailable (open or cooling down), nothing tried.
WHEN_ALL_UNAVAILABLE: Final = ("probe_soonest", "wait", "fail")


def check_when_all_unavailable(value: object) -> str:
    """``value`` if it is one of :data:`WHEN_ALL_UNAVAILABLE`, else a ``ConfigError``."""
    return validate.one_of("when_all_unavailable", value, WHEN_ALL_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Policy:
    """Retry, attempt timeout and call deadline; ``None`` means "inherit".

    Set per manager, per operation and per platform; the most specific setting wins
    (platform over operation over manager). ``deadline`` bounds a whole call across all
    platforms, so it is read from the manager and operation policies only. Use
    :data:`NO_RETRY` or ``math.inf`` to switch an inherited setting off.

    ``when_all_unavailable`` (``"probe_soonest"``, ``"wait"`` or ``"fail"``) and ``max_wait``
    (seconds, for ``"wait"``) say what a call does when every platform is open or cooling
    down; like ``deadline`` they concern the whole call, so only manager and operation
    policies may set them.

    ``hedge`` (a :class:`~failover.Hedge`, per operation like ``deadline``) races slow
    platforms; ``bulkhead`` (a :class:`~failover.Bulkhead`, any level) caps concurrent
    attempts per platform. Both are off unless set.
    """

    retry: Retry | None = None
    attempt_timeout: float | None = None
    deadline: float | None = None
    when_all_unavailable: str | None = None
    max_wait: float | None = None
    hedge: Hedge | None = None
    bulkhead: Bulkhead | None = None

    def __post_init__(self) -> None:
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise ConfigError(
                f"Policy.retry must be a failover.Retry, got {type(self.retry).__name__}",
                key="retry",
            )
        for name, kind in (("hedge", Hedge), ("bulkhead", Bulkhead)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                wanted, got = kind.__name__, type(value).__name__
                raise ConfigError(f"Policy.{name} must be a failover.{wanted}, got {got}", key=name)
        if self.when_all_unavailable is not None:
            check_when_all_unavailable(self.when_all_unavailable)
        for name in ("attempt_timeout", "deadline", "max_wait"):
            value = getattr(self, name)
            if value is not None:
                # inf is allowed: no timeout, no deadline, wait as long as it takes.
                value = validate.seconds(
                    name, value, above=0, allow_inf=True, label=f"Policy.{name}"
                )
                object.__setattr__(self, name, value)

    def then(self, more_specific: Policy) -> Policy:
        """This policy with every field ``more_specific`` sets taking precedence."""
        changes = {
            f.name: getattr(more_specific, f.name)
            for f in fields(more_specific)
            if getattr(more_specific, f.name) is not None
        }
        if not changes:
            return self
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Policy(**values)


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """What the chain uses for one pair: ``None`` where nothing is configured."""

    retry: Retry | None
    attempt_timeout: float | None
    deadline: float | None
    bulkhead: Bulkhead | None = None

    @classmethod
    def of(cls, policy: Policy) -> ResolvedPolicy:
        retry = policy.retry
        if retry is not None and retry is _no_retry:  # not built yet: nobody can pass it
            retry = None
        timeout = policy.attempt_timeout
        deadline = policy.deadline
        return cls(
            retry=retry,
            attempt_timeout=None if timeout is None or math.isinf(timeout) else timeout,
            deadline=None if deadline is None or math.isinf(deadline) else deadline,
            bulkhead=None if policy.bulkhead is NO_BULKHEAD else policy.bulkhead,
        )


class RetryRun:
    """Retry bookkeeping for one platform within one call, created after its first failure."""

    __slots__ = ("_state", "retry")

    def __init__(self, retry: Retry, started: float) -> None:
        import tenacity  # loaded already: the Retry's strategies are tenacity objects

        self.retry = retry
        self._state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        self._state.start_time = started

    def next_wait(
        self, error: BaseException, verdict: Classification, attempt_number: int, now: float
    ) -> float | None:
        """Seconds to wait before retrying the same platform, or ``None`` to move on."""
        if verdict.kind is not ErrorKind.TRANSIENT:
            return None
        if _testing_attempts is not None and attempt_number >= _testing_attempts:
            return None
        state = self._state
        state.attempt_number = attempt_number
        state.set_exception((type(error), error, error.__traceback__))
        state.outcome_timestamp = now
        retry = self.retry
        if retry.retry is not None and not retry.retry(state):
            return None
        # tenacity's order: the wait is computed first, so stop_before_delay can see it.
        wait = float(retry.wait(state))
        state.upcoming_sleep = wait
        if retry.stop(state):
            return None
        state.idle_for += wait
        if _testing_attempts is not None:
            return 0.0
        return max(wait, 0.0)
