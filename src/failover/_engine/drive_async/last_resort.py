"""The last resort, driven: when the walk found every platform unavailable and tried nothing.

What to do is :class:`~failover.policies.last_resort.LastResort`'s (``probe_soonest`` or
``wait``) and which pair is :mod:`failover.policies.last_resort`'s selection; this module takes
the probe (or waits, sleeping between :func:`~failover.policies.last_resort.wait_step`
decisions), asks the fleet for its lease, and makes the one attempt the last resort allows,
through the walk's own :func:`~.walk.slots` and :func:`~.walk.attempt` and the call's book.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from failover._core.breaker import Permit
from failover._core.classify import ErrorKind, classify
from failover._core.errors import AllPlatformsFailed
from failover._engine.drive_async.walk import attempt, slots
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
    from failover._core.spec import PlatformSpec
    from failover._engine.book import Book
    from failover._engine.call import Call
    from failover._engine.route import Pair

logger = get_logger("failover")


async def last_resort(
    book: Book, call: Call, order: Sequence[Pair], setting: LastResort
) -> tuple[Any, PlatformSpec]:
    """Take a probe (or wait for a platform), then make the one attempt the last resort
    allows. Its outcome counts as any attempt's."""
    clock = book.clock
    if any(pair.unavailable_reason(clock) is None for pair in order):
        # Passed over for another reason (a full bulkhead, a probe lease another process
        # holds): not the situation this is for.
        raise AllPlatformsFailed(call.operation, call.attempts)
    if setting.mode == "wait":
        probe = await _wait(book, call, order, setting)
    else:
        probe = await _probe(book, call, order, setting)
    pair = probe.candidate.pair
    held = await _slots(book, call, probe)
    call.tries += 1
    started = clock.now()
    try:
        result = await attempt(book, call, pair, call.func)
    except BaseException as exc:
        duration = clock.now() - started
        if not isinstance(exc, Exception) or isinstance(exc, anyio.get_cancelled_exc_class()):
            probe.end(False)
            book.cancelled(call, pair, probe.permit, duration, setting.mode)
            raise
        error = exc
    else:
        duration = clock.now() - started
        probe.end(True)
        book.answered(call, pair, probe.permit, result, duration)
        logger.info(
            "Last resort for %s: %s answered after %.2fs", call.operation, pair.spec.name, duration
        )
        return result, pair.spec
    finally:
        for limiter in held:
            limiter.release()
    raise _failed(book, call, probe, error, duration, setting)


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
    probe.end(False)
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


async def _slots(book: Book, call: Call, probe: Probe[Pair]) -> list[Any]:
    """A bulkhead bounds the last resort's request like any other; a full one gives the
    probe back and ends the call."""
    pipeline = call.route.pipeline
    if pipeline is None or not pipeline.slot:
        return []
    pair = probe.candidate.pair
    try:
        held = await slots(book, call, pair, probe.permit)
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


async def _probe(book: Book, call: Call, order: Sequence[Pair], setting: LastResort) -> Probe[Pair]:
    clock = book.clock
    for rank, candidate in enumerate(by_recovery(order, clock.now())):
        probe = take_probe(candidate, clock.now())
        if probe is None or not await _fleet_lease(book, probe):
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
    logger.debug(
        "No platform is usable for %s and none can be probed now (each has a probe out "
        "or cannot recover by time)",
        call.operation,
    )
    raise AllPlatformsFailed(
        call.operation, call.attempts, reason="every platform unavailable, none can be probed now"
    )


# -- "wait" ----------------------------------------------------------------------------------


async def _wait(book: Book, call: Call, order: Sequence[Pair], setting: LastResort) -> Probe[Pair]:
    """Wait until a platform admits an attempt; raise when none can within ``max_wait``."""
    clock = book.clock
    started = clock.now()
    budget_end = started + setting.max_wait
    awaited: Candidate[Any] | None = None
    try:
        while True:
            now = clock.now()
            probe = await _usable(book, call, order, now)
            if probe is not None:
                _waited(book, call, probe.candidate, clock.now() - started, "usable", setting)
                return probe
            step = wait_step(order, now, budget_end, setting.max_wait)
            awaited = step.awaited
            if step.wake is None:
                break
            await clock.sleep(step.wake - now)
    except BaseException:
        _waited(book, call, awaited, clock.now() - started, "cut_short", setting)
        raise
    _waited(book, call, awaited, clock.now() - started, "gave_up", setting)
    raise AllPlatformsFailed(
        call.operation, call.attempts, reason=f"every platform unavailable; {step.failure}"
    )


async def _usable(book: Book, call: Call, order: Sequence[Pair], now: float) -> Probe[Pair] | None:
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
        if await _fleet_lease(book, probe):
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


async def _fleet_lease(book: Book, probe: Probe[Pair]) -> bool:
    """Whether a probe permit also won the fleet-wide lease; if not, everything is given back."""
    permit = probe.permit
    if not permit.is_probe or book.fleet is None:
        return True
    try:
        leased = await book.fleet.acquire_probe(probe.candidate.pair, permit)
    except BaseException:
        probe.end(False)  # acquire_probe gave the breaker permit back
        raise
    if not leased:
        probe.end(False)
    return leased
