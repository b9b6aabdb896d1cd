"""The books of a call: the only writer of attempts, skips, outcomes and call-span totals.

Every driver (the walk, a hedge lane, the last resort) and the hand-reported outcomes of
``report_success``/``report_failure`` record through one :class:`Book`, so an attempt has one
meaning and the call span's ``failover.attempts``, ``failover.fallbacks`` and
``failover.platform`` one formula (:meth:`Book.finish`) whichever path the call took.

Applying an outcome follows DESIGN §2: a transient failure counts toward the pair's breaker;
credit and auth errors cool the whole platform; a rate limit cools the pair; the request's own
faults leave the pair's health alone; a cancelled attempt gives its permit back uncounted.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from logging import DEBUG
from threading import get_ident
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from failover._core.breaker import CLOSED_PERMIT, BreakerState, Permit
from failover._core.classify import Classification, ErrorKind
from failover._core.errors import Attempt
from failover._core.kinds import Outcome, SkipReason
from failover._core.pair import COOLDOWN_REASON
from failover._observe.scrub import get_logger

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._core.health import PairStats
    from failover._engine.call import Call
    from failover._engine.fleet import FleetLink
    from failover._engine.route import Pair
    from failover._observe.telemetry import Telemetry

logger = get_logger("failover")

_UNGUARDED: Final = nullcontext()

#: Request-fault reasons that move on to the next platform by default; others raise at once.
DEFAULT_CONTINUE_ON: Final = frozenset({"content_policy", "context_window", "not_found"})

#: A pair passed over for one request-fault reason is logged at WARNING at most this often.
FALL_THROUGH_WARNING_SECONDS: Final = 60.0

#: How the INFO line of a call served by another platform says why the ones before did not.
_WHY: Final = {
    ErrorKind.CREDIT_EXHAUSTED: "out of credits",
    ErrorKind.RATE_LIMITED: "rate limited",
    ErrorKind.AUTH: "key refused",
    ErrorKind.TRANSIENT: "failed",
    ErrorKind.REQUEST: "request fault",
}
_SKIPPED_WHY: Final[dict[str, str]] = {
    SkipReason.CREDIT: "out of credits",
    SkipReason.AUTH: "key refused",
    SkipReason.RATE_LIMITED: "rate limited",
    SkipReason.OPEN: "breaker open",
}


class EngineSettings(NamedTuple):
    """The manager-wide settings the engine applies to every call."""

    max_attempts: int
    fallback_enabled: bool
    monitoring_enabled: bool
    continue_on: frozenset[str]
    cooldown_seconds: float
    auth_cooldown_seconds: float
    rate_limit_max_seconds: float


class Book:
    """Records outcomes and applies their consequences; one per manager, no per-call state."""

    __slots__ = (
        "_warned",
        "clock",
        "fleet",
        "lock",
        "monitoring",
        "now",
        "owner",
        "settings",
        "telemetry",
        "threaded",
    )

    def __init__(self, settings: EngineSettings, clock: Clock, telemetry: Telemetry) -> None:
        self.settings = settings
        #: Held around every decision and booking once the manager is shared between threads
        #: (``threaded``); a manager used from one thread only never takes it.
        self.lock = threading.RLock()
        self.threaded = False
        #: The thread of the first call (``None`` before it).
        self.owner: int | None = None
        #: ``settings.monitoring_enabled``, read on every success.
        self.monitoring = settings.monitoring_enabled
        self.clock = clock
        #: ``clock.now``, looked up once: the hot paths read it twice per call.
        self.now = clock.now
        self.telemetry = telemetry
        #: Set by the manager when state is shared across processes (probe leases, cool-downs).
        self.fleet: FleetLink | None = None
        #: (platform, operation, reason) -> when a fall-through was last logged at WARNING:
        #: bounded by pairs times request-fault reasons.
        self._warned: dict[tuple[str, str, str], float] = {}

    # -- threads ---------------------------------------------------------------------------------

    def enter(self, thread: int) -> None:
        """A call begins on ``thread``: from the second thread on, every update is locked.

        The async entry points call this only while ``threaded`` is off. (The one update that
        may be under way on the first thread at the very moment a second thread first calls
        is not covered: at most one outcome counted wrongly, once in a manager's life.)
        """
        if self.owner is None:
            self.owner = thread
        elif thread != self.owner:
            self.threaded = True

    def arrive(self) -> None:
        """:meth:`enter` for the current thread (what every entry point does first; the hot
        paths inline it)."""
        if not self.threaded and self.owner != get_ident():
            self.enter(get_ident())

    @property
    def guard(self) -> AbstractContextManager[Any]:
        """The lock while the manager is shared between threads, else nothing to hold."""
        return self.lock if self.threaded else _UNGUARDED

    # -- a call's records ----------------------------------------------------------------------

    def skipped(self, call: Call, pair: Pair, reason: str) -> None:
        """``pair`` was passed over for ``reason``: a skip record, a span event, a log line."""
        records = pair.skip_records  # looked up inline: this runs once per platform passed over
        record = None if records is None else records.get(reason)
        call.attempts.append(pair.skip_record(reason) if record is None else record)
        # The telemetry hook is called only when it has something to record.
        telemetry = self.telemetry
        if call.span is not None or telemetry.instruments() is not None:
            telemetry.skipped(call.span, pair.spec.name, pair.operation, reason)
        if logger.isEnabledFor(DEBUG):
            logger.debug(
                "Skipping unhealthy platform %s for %s: %s", pair.spec.name, pair.operation, reason
            )

    def answered(
        self,
        call: Call,
        pair: Pair,
        permit: Permit,
        result: Any,
        duration: float,
        now: float | None = None,
    ) -> None:
        """An attempt of ``call`` answered: the pair's success, and the call's totals."""
        self.succeeded(pair, permit, duration, now)
        pipeline = call.route.pipeline
        if pipeline is not None and pipeline.observe:
            pipeline.observed(pair, True, duration, result)

    def attempt_failed(
        self,
        call: Call,
        pair: Pair,
        permit: Permit,
        error: Exception,
        verdict: Classification,
        duration: float,
        last_resort: str | None = None,
    ) -> None:
        """An attempt of ``call`` failed with ``error``, classified as ``verdict``."""
        self.failed(pair, permit, verdict, duration)
        pipeline = call.route.pipeline
        if pipeline is not None and pipeline.observe:
            pipeline.observed(pair, False, duration, None, error)
        self._record(
            call,
            pair,
            Outcome.FAILURE,
            duration,
            last_resort,
            error=error,
            error_kind=verdict.kind,
            status_code=verdict.status_code,
        )

    @staticmethod
    def _record(
        call: Call,
        pair: Pair,
        outcome: Outcome,
        duration: float,
        last_resort: str | None,
        *,
        error: Exception | None = None,
        error_kind: ErrorKind | None = None,
        status_code: int | None = None,
    ) -> None:
        """Append the record of the attempt ``call`` just made on ``pair``."""
        spec = pair.spec
        call.attempts.append(
            Attempt(
                spec.name,
                spec.model,
                pair.operation,
                outcome,
                attempt=call.tries,
                error_type=None if error is None else type(error).__qualname__,
                error_kind=error_kind,
                status_code=status_code,
                duration=duration,
                error=error,
                last_resort=last_resort,
            )
        )

    def cancelled(
        self,
        call: Call,
        pair: Pair,
        permit: Permit,
        duration: float,
        last_resort: str | None = None,
    ) -> None:
        """An attempt of ``call`` was cancelled: its permit back, nothing counted."""
        self.give_back(pair, permit)
        self._record(call, pair, Outcome.CANCELLED, duration, last_resort)
        self.count(pair, Outcome.CANCELLED, duration)

    def caller_bug(
        self,
        call: Call,
        pair: Pair,
        permit: Permit,
        error: Exception,
        duration: float,
        last_resort: str | None = None,
    ) -> None:
        """The operation raised a programming error: booked like a cancellation (permit back,
        no breaker, cool-down or health count), recorded, and logged once at ERROR."""
        self.give_back(pair, permit)
        self._record(
            call,
            pair,
            Outcome.FAILURE,
            duration,
            last_resort,
            error=error,
            error_kind=ErrorKind.CALLER_BUG,
        )
        # The type only: the message of a bug can quote the payload it choked on.
        logger.error(
            "%s raised by the %s operation on %s: a bug in the calling code, not a provider "
            "failure; raised as is, no fallback, nothing counted",
            type(error).__qualname__,
            pair.operation,
            pair.spec.name,
        )

    def waited(self, call: Call, pair: Pair, reason: str, seconds: float, last_resort: str) -> None:
        """The last resort waited ``seconds`` for ``pair`` (unavailable for ``reason``)."""
        spec = pair.spec
        call.attempts.append(
            Attempt(
                spec.name,
                spec.model,
                pair.operation,
                Outcome.SKIPPED,
                skip_reason=reason,
                duration=seconds,
                last_resort=last_resort,
            )
        )

    def finish(self, call: Call, answered_by: str | None) -> None:
        """The call span's totals, by one formula whatever path the call took.

        ``failover.attempts``: attempts made (failed, cancelled, and the one that answered).
        ``failover.fallbacks``: platforms the call moved past, tried or passed over; a
        platform skipped only because its key is not set was never in the running.
        """
        if answered_by is not None and call.attempts and logger.isEnabledFor(logging.INFO):
            self._served_by(call, answered_by)
        span = call.span
        if span is None:
            return
        made = 0
        involved: set[str] = set()
        for attempt in call.attempts:
            if attempt.outcome != Outcome.SKIPPED:
                made += 1
                involved.add(attempt.platform)
            elif attempt.skip_reason != SkipReason.MISSING_API_KEY:
                involved.add(attempt.platform)
        attributes: dict[str, Any] = {}
        if answered_by is not None:
            made += 1
            involved.discard(answered_by)
            attributes["failover.platform"] = answered_by
            fallbacks = len(involved)
        else:
            fallbacks = max(len(involved) - 1, 0)
        attributes["failover.attempts"] = made
        attributes["failover.fallbacks"] = fallbacks
        span.set_attributes(attributes)

    def _served_by(self, call: Call, answered_by: str) -> None:
        """One INFO line when ``call`` was answered by another platform than its first
        choice, naming why each one before did not (a platform whose key is not set was
        never a choice)."""
        why: dict[str, str] = {}
        for attempt in call.attempts:
            if attempt.platform == answered_by or attempt.skip_reason == SkipReason.MISSING_API_KEY:
                continue
            why[attempt.platform] = _reason_of(attempt)
        if why:
            logger.info(
                "%s served by %s; %s",
                call.operation,
                answered_by,
                "; ".join(f"{name}: {reason}" for name, reason in why.items()),
            )

    def fell_through(self, pair: Pair, reason: str | None) -> None:
        """``pair`` was passed over for a request fault: WARNING, at most once a minute per
        pair and reason (a 404 on the primary would otherwise send every request on, unseen,
        or flood the log)."""
        key = (pair.spec.name, pair.operation, reason or "bad_request")
        now = self.clock.now()
        last = self._warned.get(key)
        if last is not None and now - last < FALL_THROUGH_WARNING_SECONDS:
            return
        self._warned[key] = now
        logger.warning(
            "%s passed over for %s: request fault (%s), trying the next platform",
            pair.spec.name,
            pair.operation,
            key[2],
        )

    # -- a pair's outcomes (also reported by hand) ---------------------------------------------

    def give_back(self, pair: Pair, permit: Permit) -> None:
        """Return a permit (and its fleet lease) without an outcome: nothing is counted."""
        pair.breaker.release(permit)
        if self.fleet is not None:
            self.fleet.probe_ended(permit)

    def succeeded(
        self,
        pair: Pair,
        permit: Permit | None,
        duration: float | None,
        now: float | None = None,
    ) -> None:
        """Record a success; ``permit`` is ``None`` for an outcome reported by hand.

        ``now`` is the clock reading the attempt ended at, when the caller has one: the
        success is stamped with it instead of reading the clock again.
        """
        breaker = pair.breaker
        had_failures = breaker.consecutive_failures
        if permit is None:
            breaker.report_success(duration)
        elif permit.is_probe:
            breaker.on_success(permit)
            if self.fleet is not None:
                self.fleet.probe_ended(permit)
        elif had_failures or breaker.window is not None:
            # Without a rate window, a closed permit on a pair without failures changes nothing.
            breaker.on_success(permit, duration)
        if had_failures:
            pair.record_failure_counters()
        if self.settings.monitoring_enabled:
            pair.stats.record_success(self.clock.now() if now is None else now, duration)
            if duration is not None:
                instruments = self.telemetry.instruments()
                if instruments is not None:
                    attributes = pair.metric_attributes[Outcome.SUCCESS]
                    instruments.attempts.add(1, attributes)
                    instruments.attempt_duration.record(duration, attributes)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Completed %s using %s", pair.operation, pair.spec.name)

    def ready_success(self, pair: Pair, duration: float, now: float) -> None:
        """A success on a pair that was ready (closed, nothing cooling) while nobody records
        spans or metrics, and that had failed before: :meth:`succeeded` without what cannot
        apply. (Without a failure streak the fast paths note the success lock-free.)"""
        with self.guard:
            breaker = pair.breaker
            if breaker.consecutive_failures:  # a success ends the streak
                breaker.on_success(CLOSED_PERMIT)
                pair.record_failure_counters()
            if self.monitoring:
                pair.stats.record_success(now, duration)

    def settle(self, stats: PairStats) -> None:
        """Count the successes noted lock-free on ``stats`` (see ``failover._core.health``).

        Always under the lock, even before the manager is shared between threads: a second
        thread's first settle must not overlap one of the first thread's (it happens once
        every 128 successes, so the lock costs nothing that shows)."""
        with self.lock:
            stats.settle()

    def failed(
        self, pair: Pair, permit: Permit | None, verdict: Classification, duration: float | None
    ) -> None:
        """Apply DESIGN §2's consequences; ``permit`` is ``None`` for a hand-reported failure."""
        kind = verdict.kind
        if kind is ErrorKind.TRANSIENT:
            if permit is None:
                pair.breaker.report_failure(duration)
            else:
                pair.breaker.on_failure(permit, duration)
            pair.record_failure_counters()
        elif permit is not None:
            # Not the pair's own sickness: no breaker count, whatever the permit was.
            pair.breaker.release(permit)
        now = self.clock.now()
        if kind in COOLDOWN_REASON:
            self._cool(pair, verdict, now)
        if self.settings.monitoring_enabled:
            if kind is ErrorKind.REQUEST:
                pair.stats.record_request_fault(verdict.reason)
            else:
                pair.stats.record_failure(now, duration, verdict.label)
        if duration is not None:
            # Metrics count every failed attempt, the request's own faults included.
            self.count(pair, Outcome.FAILURE, duration)
        if self.fleet is not None:
            self.fleet.after_failure(pair, permit)

    def check_failed(self, pair: Pair, verdict: Classification) -> None:
        """A background health check failed with ``verdict``: what a failed attempt does to
        the breaker and the cool-downs, nothing to health counters or metrics (a check is
        not a request). A pair still open stays as it is; a half-open one opens again; a
        closed one counts a failure."""
        kind = verdict.kind
        if kind is ErrorKind.TRANSIENT:
            breaker = pair.breaker
            if breaker.current_state() is not BreakerState.OPEN:
                breaker.report_failure()
                pair.record_failure_counters()
        elif kind in COOLDOWN_REASON:
            self._cool(pair, verdict, self.clock.now())
        if self.fleet is not None:
            self.fleet.after_failure(pair, None)

    def _cool(self, pair: Pair, verdict: Classification, now: float) -> None:
        """Credit, auth: the whole platform cools down; a rate limit: the pair."""
        settings = self.settings
        spec = pair.spec
        kind = verdict.kind
        reason = COOLDOWN_REASON[kind]
        if kind is ErrorKind.RATE_LIMITED:
            wait = settings.cooldown_seconds if verdict.retry_after is None else verdict.retry_after
            wait = min(wait, settings.rate_limit_max_seconds)
            pair.cooldown.set(now + wait, reason)
            self.telemetry.cooldown(spec.name, pair.operation, reason, wait, "pair")
            logger.info(
                "Rate limited on %s for %s: skipping it for %gs", spec.name, pair.operation, wait
            )
            return
        credit = kind is ErrorKind.CREDIT_EXHAUSTED
        seconds = settings.cooldown_seconds if credit else settings.auth_cooldown_seconds
        pair.platform.cooldown.set(now + seconds, reason)
        self.telemetry.cooldown(spec.name, pair.operation, reason, seconds, "platform")
        if credit:
            logger.warning(
                "Credit issue on %s (%s): skipping it for %gs across all operations",
                spec.name,
                pair.operation,
                seconds,
            )
        else:
            logger.warning(
                "API key problem on %s (check %s): skipping it for %gs across all operations",
                spec.name,
                spec.api_key_env or "its key",
                seconds,
            )

    def count(self, pair: Pair, outcome: Outcome, duration: float) -> None:
        instruments = self.telemetry.instruments()
        if instruments is None:
            return
        attributes = pair.metric_attributes[outcome]
        instruments.attempts.add(1, attributes)
        instruments.attempt_duration.record(duration, attributes)


def _reason_of(attempt: Attempt) -> str:
    """Why an attempt (or skip) did not answer, in a few words, with no provider text."""
    if attempt.outcome == Outcome.SKIPPED:
        reason = attempt.skip_reason or "skipped"
        return _SKIPPED_WHY.get(reason, reason)
    if attempt.outcome == Outcome.CANCELLED:
        return "cancelled"
    kind = attempt.error_kind
    words = _WHY.get(kind, "failed") if kind is not None else "failed"
    detail = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error_type
    return f"{words} ({detail})" if detail else words
