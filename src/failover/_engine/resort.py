"""The last resort, walked: when the walk found every platform unavailable and tried nothing.

What to do is :class:`~failover.policies.last_resort.LastResort`'s (``probe_soonest`` or
``wait``) and which pair is :mod:`failover.policies.last_resort`'s selection; this takes the
probe (or waits, sleeping between :func:`~failover.policies.last_resort.wait_step`
decisions), asks the fleet for its lease, and makes the one attempt the last resort allows,
through the walk's own :func:`~failover._engine.walk.slots` and the call's book. Like the walk,
a generator of effects: any driver runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from failover._core.breaker import Permit
from failover._core.classify import ErrorKind, classify
from failover._core.errors import AllPlatformsFailed
from failover._engine.effects import Invoke, Lease, Sleep, Tried
from failover._engine.unavailable import describe
from failover._engine.walk import Steps, slots
from failover._observe.scrub import get_logger
from failover.policies.last_resort import (
    EVENT,
    Candidate,
    LastResort,
    Probe,
    by_recovery,
    recovery,
    skip_reason_of,
    take_probe,
    wait_step,
)

if TYPE_CHECKING:
    from failover._engine.book import Book
    from failover._engine.call import Call
    from failover._engine.route import Pair

logger = get_logger("failover")


def last_resort(book: Book, call: Call, order: Sequence[Pair], setting: LastResort) -> Steps:
    """Take a probe (or wait for a platform), then make the one attempt the last resort
    allows. Its outcome counts as any attempt's."""
    clock = book.clock
    if any(pair.unavailable_reason(clock) is None for pair in order):
        # Passed over for another reason (a full bulkhead, a probe lease another process
        # holds): not the situation this is for.
        raise AllPlatformsFailed(call.operation, call.attempts)
    if setting.mode == "wait":
        probe = yield from _wait(book, call, order, setting)
    else:
        probe = yield from _probe(book, call, order, setting)
    pair = probe.candidate.pair
    held = yield from _slots(book, call, probe)
    call.tries += 1
    try:
        tried: Tried = yield Invoke(pair, call.func)
    finally:
        for limiter in held:
            limiter.release()
    duration = tried.ended - tried.started
    if tried.ok:
        probe.end(True)
        book.answered(call, pair, probe.permit, tried.value, duration)
        logger.info(
            "Last resort for %s: %s answered after %.2fs", call.operation, pair.spec.name, duration
        )
        return tried.value, pair.spec
    probe.end(False)
    if tried.cancelled:
        book.cancelled(call, pair, probe.permit, duration, setting.mode)
        raise tried.value
    raise _failed(book, call, probe, tried.value, duration, setting)


def _failed(
    book: Book,
    call: Call,
    probe: Probe[Pair],
    error: Exception,
    duration: float,
    setting: LastResort,
) -> Exception:
    """Book the failed attempt; the exception the call ends with."""
    pair = probe.candidate.pair
    clock = book.clock
    verdict = classify(error, pair.classifiers)
    if verdict.kind is ErrorKind.CALLER_BUG:
        book.caller_bug(call, pair, probe.permit, error, duration, setting.mode)
        return error
    book.attempt_failed(call, pair, probe.permit, error, verdict, duration, setting.mode)
    after = recovery(pair, clock.now())
    logger.warning(
        "Last resort for %s: %s failed too (%s, %s)%s",
        call.operation,
        pair.spec.name,
        type(error).__qualname__,
        verdict.kind.value,
        ""
        if after is None or after.usable_at <= clock.now()
        else f"; unavailable for {after.usable_at - clock.now():.1f}s more ({after.reason})",
    )
    if verdict.kind is ErrorKind.REQUEST and verdict.reason not in book.settings.continue_on:
        return error
    return AllPlatformsFailed(
        call.operation,
        call.attempts,
        reason=f"every platform unavailable; the last resort, {pair.spec.name}, failed",
    )


def _slots(book: Book, call: Call, probe: Probe[Pair]) -> Steps:
    """A bulkhead bounds the last resort's request like any other; a full one gives the
    probe back and ends the call."""
    pipeline = call.route.pipeline
    if pipeline is None or not pipeline.slot:
        return []
    pair = probe.candidate.pair
    try:
        held = yield from slots(book, call, pair, probe.permit)
    except BaseException:
        probe.end(False)
        raise
    if held is None:
        probe.end(False)
        raise AllPlatformsFailed(
            call.operation,
            call.attempts,
            reason=f"every platform unavailable; the last resort, {pair.spec.name}, is "
            "bulkhead_full",
        )
    return held


# -- "probe_soonest" -------------------------------------------------------------------------


def _probe(book: Book, call: Call, order: Sequence[Pair], setting: LastResort) -> Steps:
    clock = book.clock
    for rank, candidate in enumerate(by_recovery(order, clock.now())):
        probe = take_probe(candidate, clock.now())
        if probe is None or not (yield from _fleet_lease(book, probe)):
            continue
        remaining = max(candidate.usable_at - clock.now(), 0.0)
        book.telemetry.event(
            call.span,
            EVENT,
            {
                "failover.last_resort.mode": setting.mode,
                "failover.last_resort.result": "probe",
                "failover.platform": candidate.pair.spec.name,
                "failover.last_resort.reason": candidate.reason,
                "failover.last_resort.remaining": remaining,
            },
        )
        logger.warning(
            "No platform is usable for %s; probing %s (%s) early as a last resort: it "
            "recovers %s (%s, %.1fs left)",
            call.operation,
            candidate.pair.spec.name,
            candidate.pair.spec.model,
            "soonest" if rank == 0 else "soonest of those without a probe out",
            candidate.reason,
            remaining,
        )
        return probe
    book.telemetry.event(
        call.span,
        EVENT,
        {"failover.last_resort.mode": setting.mode, "failover.last_resort.result": "none"},
    )
    reason = describe(order, clock) or "every platform unavailable"
    logger.debug("No platform is usable for %s and none can be probed: %s", call.operation, reason)
    raise AllPlatformsFailed(call.operation, call.attempts, reason=reason)


# -- "wait" ----------------------------------------------------------------------------------


def _wait(book: Book, call: Call, order: Sequence[Pair], setting: LastResort) -> Steps:
    """Wait until a platform admits an attempt; raise when none can within ``max_wait``."""
    clock = book.clock
    started = clock.now()
    budget_end = started + setting.max_wait
    awaited: Candidate[Any] | None = None
    try:
        while True:
            now = clock.now()
            probe = yield from _usable(book, call, order, now)
            if probe is not None:
                _waited(book, call, probe.candidate, clock.now() - started, "usable", setting)
                return probe
            step = wait_step(order, now, budget_end, setting.max_wait)
            awaited = step.awaited
            if step.wake is None:
                break
            yield Sleep(step.wake - now)
    except BaseException:
        _waited(book, call, awaited, clock.now() - started, "cut_short", setting)
        raise
    _waited(book, call, awaited, clock.now() - started, "gave_up", setting)
    raise AllPlatformsFailed(
        call.operation, call.attempts, reason=f"every platform unavailable; {step.failure}"
    )


def _usable(book: Book, call: Call, order: Sequence[Pair], now: float) -> Steps:
    """A permit on the first pair of ``order`` that admits one now (with its fleet lease)."""
    clock = book.clock
    for pair in order:
        if pair.unavailable_reason(clock) is not None:
            continue
        admission = pair.admit(clock)
        if not isinstance(admission, Permit):
            continue
        reason = skip_reason_of(call.attempts, pair)
        probe = Probe(Candidate(pair, now, reason, False), admission, ())
        if (yield from _fleet_lease(book, probe)):
            return probe
    return None


def _waited(
    book: Book,
    call: Call,
    awaited: Candidate[Any] | None,
    waited: float,
    result: str,
    setting: LastResort,
) -> None:
    """Record, trace and log how a wait ended."""
    spec = None if awaited is None else awaited.pair.spec
    reason = None if awaited is None else awaited.reason
    if awaited is not None:
        book.waited(call, awaited.pair, awaited.reason, waited, setting.mode)
    book.telemetry.event(
        call.span,
        EVENT,
        {
            "failover.last_resort.mode": setting.mode,
            "failover.last_resort.result": result,
            "failover.platform": None if spec is None else spec.name,
            "failover.last_resort.reason": reason,
            "failover.last_resort.waited": waited,
        },
    )
    name = "no platform" if spec is None else spec.name
    if result == "usable":
        logger.warning(
            "No platform was usable for %s; waited %.2fs as a last resort until %s (%s) "
            "became usable",
            call.operation,
            waited,
            name,
            reason,
        )
    else:
        logger.warning(
            "No platform is usable for %s; waited %.2fs of max_wait=%gs as a last resort "
            "for %s (%s), then %s",
            call.operation,
            waited,
            setting.max_wait,
            name,
            reason,
            "was cut short (cancelled or past the call's deadline)"
            if result == "cut_short"
            else "gave up",
        )


def _fleet_lease(book: Book, probe: Probe[Pair]) -> Steps:
    """Whether a probe permit also won the fleet-wide lease; if not, everything is given back."""
    permit = probe.permit
    if not permit.is_probe or book.fleet is None:
        return True
    try:
        leased = yield Lease(probe.candidate.pair, permit)
    except BaseException:
        probe.end(False)  # acquire_probe gave the breaker permit back
        raise
    if not leased:
        probe.end(False)
    return leased
