"""Retry a transient failure on the same platform, with tenacity's own strategies.

tenacity's ``stop_*``, ``wait_*`` and ``retry_*`` objects are accepted as they are
(``stop_after_attempt(3) | stop_after_delay(10)``, ``wait_random_exponential(...)``); failover
drives them from its own loop: retry state is built only after a failure (a call that succeeds
first time never builds any), waits are the driver's (the injected clock), and cancellation is
never retried. tenacity itself is imported when a :class:`Retry` is built, not by
``import failover``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover._core.classify import Classification, ErrorKind
from failover._core.errors import ConfigError
from failover.policies.base import PlatformRun, Strategy

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


class RetryStrategy(Strategy):
    """The ``retry_wait`` hook for a route whose pairs retry (their ``Policy.retry``)."""

    __slots__ = ()

    name = "retry"

    def retry_wait(
        self, run: PlatformRun, error: BaseException, verdict: Classification, now: float
    ) -> float | None:
        retry = run.pair.policy.retry
        if retry is None:
            return None
        state = run.memo
        if state is None:
            state = run.memo = RetryRun(retry, run.started)
        wait: float | None = state.next_wait(error, verdict, run.attempt, now)
        return wait


#: Shared: it keeps no state of its own (a call's retry state lives on its platform run).
RETRY = RetryStrategy()
