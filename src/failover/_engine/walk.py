"""The walk: platform after platform, attempt after attempt, until one answers.

Driver-neutral: every function here is a generator that decides (through
:mod:`failover._engine.decide` and the policies' hooks), books (through the call's
:class:`~failover._engine.book.Book`) and yields an :mod:`~failover._engine.effects` effect
whenever the call must wait. ``drive_async`` runs it on asyncio or trio; a synchronous driver
runs the very same walk with blocking waits. Each function handles one layer and says which:
:func:`walk` goes down the order, :func:`admit` admits one platform, :func:`on_platform` makes
its attempts (retries included), :func:`slots` takes its bulkhead slots.

Cancellation from the caller is never counted, never retried, never converted: the permit is
given back and the exception re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from logging import DEBUG
from typing import TYPE_CHECKING, Any

from failover._core.breaker import CLOSED_PERMIT, Permit
from failover._core.kinds import SkipReason
from failover._engine import decide
from failover._engine.call import Call, Operation, Run
from failover._engine.effects import Effect, Invoke, Lease, Sleep, Slot, Tried
from failover._engine.unavailable import describe
from failover._observe.scrub import get_logger

if TYPE_CHECKING:
    from failover._core.spec import PlatformSpec
    from failover._engine.book import Book
    from failover._engine.route import Pair
    from failover.policies.bulkhead import Limiter

logger = get_logger("failover")

Answer = tuple[Any, "PlatformSpec"]
#: A step of the walk: yields effects, receives their outcomes, returns ``R``.
Steps = Generator[Effect, Any, Any]


def walk(book: Book, call: Call, order: Sequence[Pair], *, begun: int = 0) -> Steps:
    """Platform after platform of ``order`` (from index ``begun``, the ones before it already
    tried) until one answers; then the last resort, or :class:`AllPlatformsFailed`."""
    platforms = begun
    reason: str | None = None
    fleet = book.fleet
    settings = book.settings
    clock = book.clock
    hooks = call.route.pipeline is not None and bool(call.route.pipeline.admit)
    for index in range(begun, len(order)):
        if call.tries >= settings.max_attempts or (platforms and not settings.fallback_enabled):
            reason = decide.stop_reason(book, call, platforms)
            break
        pair = order[index]
        # admit() and decide.admit, inlined: passing over many unavailable platforms costs
        # no generator and no extra call per platform.
        needs = call.requirement  # read each time: a context-window failure raises it
        if needs is not None and needs.unmet(pair.spec):
            book.skipped(call, pair, SkipReason.INCAPABLE)
            continue
        admission = pair.admit(clock)
        if type(admission) is not Permit:
            book.skipped(call, pair, admission)  # type: ignore[arg-type]
            continue
        permit = decide.admitted(book, call, pair, admission) if hooks else admission
        if permit is None:
            continue
        if permit.is_probe and fleet is not None and not (yield Lease(pair, permit)):
            book.skipped(call, pair, SkipReason.OPEN)
            continue
        answer = yield from on_platform(book, call, pair, permit)
        if type(answer) is tuple:
            return answer
        if answer:
            platforms += 1
    route = call.route
    if call.tries == 0 and route.pairs and route.last_resort is not None:
        from failover._engine.resort import last_resort

        return (yield from last_resort(book, call, order, route.last_resort))
    if reason is None and call.tries == 0:
        reason = describe(order, book.clock)
    raise decide.give_up(call, reason)


def resume(book: Book, call: Call, order: Sequence[Pair], failed: Tried) -> Steps:
    """The walk after the fast path's first attempt (on ``order[0]``, with the closed permit)
    came back ``failed``."""
    answer = yield from on_platform(book, call, order[0], CLOSED_PERMIT, failed=failed)
    if type(answer) is tuple:
        return answer
    return (yield from walk(book, call, order, begun=1))


def admit(book: Book, call: Call, pair: Pair) -> Steps:
    """A permit for one attempt on ``pair`` (:func:`decide.admit`, plus the fleet's lease for
    a probe when state is shared), or ``None`` with the skip recorded."""
    permit = decide.admit(book, call, pair)
    if permit is None:
        return None
    if permit.is_probe and book.fleet is not None and not (yield Lease(pair, permit)):
        book.skipped(call, pair, SkipReason.OPEN)
        return None
    return permit


def on_platform(
    book: Book,
    call: Call,
    pair: Pair,
    permit: Permit,
    *,
    func: Operation | None = None,
    failed: Tried | None = None,
) -> Steps:
    """Attempts on ``pair`` until it answers (the answer) or the call moves on (how many
    attempts were made on it: 0 when none could start). ``failed`` is a first attempt that
    already failed (the fast path's)."""
    pipeline = call.route.pipeline
    if failed is None and logger.isEnabledFor(DEBUG):
        decide.selected(call.operation, pair)
    run: Run | None = None
    made = 0 if failed is None else 1
    while True:
        if failed is None:
            held = (
                (yield from slots(book, call, pair, permit)) if pipeline and pipeline.slot else ()
            )
            if held is None:
                return made
            call.tries += 1
            made += 1
            try:
                tried: Tried = yield Invoke(pair, func or call.func)
            finally:
                for limiter in held:
                    limiter.release()
            if tried.ok:
                book.answered(
                    call, pair, permit, tried.value, tried.ended - tried.started, tried.ended
                )
                return tried.value, pair.spec
            failed = tried
        error, started, duration = failed.value, failed.started, failed.ended - failed.started
        if failed.cancelled:
            book.cancelled(call, pair, permit, duration)
            raise error
        failed = None
        if run is None:
            run = Run(pair, started)
        else:
            run.attempt += 1
        wait = decide.after_failure(book, call, run, permit, error, duration)
        if wait is None:
            return made
        if wait > 0:
            yield Sleep(wait)
        readmitted = yield from admit(book, call, pair)
        if readmitted is None:
            return made
        permit = readmitted


def lane(book: Book, call: Call, pair: Pair, func: Operation) -> Steps:
    """One lane of a hedged call: ``pair`` admitted, then its attempts with ``func``."""
    permit = yield from admit(book, call, pair)
    if permit is None:
        return 0
    return (yield from on_platform(book, call, pair, permit, func=func))


def slots(book: Book, call: Call, pair: Pair, permit: Permit) -> Steps:
    """The bulkhead slots an attempt on ``pair`` must hold, or ``None`` when one did not come
    in time (the permit is given back and the pair skipped, uncounted)."""
    assert call.route.pipeline is not None
    held: list[Limiter] = []
    try:
        for hook in call.route.pipeline.slot:
            limiter = hook(pair)
            if limiter is None:
                continue
            if not limiter.try_acquire() and (limiter.max_wait <= 0 or not (yield Slot(limiter))):
                for taken in held:
                    taken.release()
                book.give_back(pair, permit)
                book.skipped(call, pair, SkipReason.BULKHEAD_FULL)
                return None
            held.append(limiter)
    except BaseException:  # cancelled while queued for a slot
        for taken in held:
            taken.release()
        book.give_back(pair, permit)
        raise
    return held
