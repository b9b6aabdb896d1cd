"""The decisions of a call: order, admit, classify and book a failure, wait or move on, give up.

Synchronous, free of I/O and of the event loop: each function looks at the call, the pair and
the clock and says what happens next, booking through :class:`~failover._engine.book.Book`.
A driver (``drive_async``; a synchronous one can sit beside it) only sequences them and does
the waiting: awaiting the operation, sleeping before a retry, queueing for a bulkhead slot,
asking the fleet for a probe lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from failover._core.breaker import Permit
from failover._core.classify import ErrorKind, classify
from failover._core.errors import AllPlatformsFailed
from failover._core.kinds import SkipReason
from failover._core.spec import Requirement, requirement
from failover._observe.scrub import get_logger
from failover.policies.ordering import annotate_order, is_builtin, order_reason

if TYPE_CHECKING:
    from failover._engine.book import Book
    from failover._engine.call import Call, Run
    from failover._engine.route import Pair

logger = get_logger("failover")

NO_REQUIREMENT = Requirement()


def plan(call: Call) -> Sequence[Pair]:
    """The pairs ``call`` tries, in order: the route's ordering, then the ``plan`` hooks.

    Platforms a strategy leaves out are recorded as skipped by the strategy itself.
    """
    route = call.route
    context = call.context
    if context and "require" in context:
        call.requirement = requirement(context["require"])
    pipeline = route.pipeline
    order: Sequence[Pair]
    if pipeline is None or not pipeline.plan:
        order = route.pairs if route.ordering is None else route.order(call.context)
    else:
        # Priority and cost order are the route's own; a strategy orders from priority.
        order = route.order(call.context) if is_builtin(route.ordering) else route.pairs
        for hook in pipeline.plan:
            order = hook(call, order)
    if call.span is not None:
        reason = call.order_reason or order_reason(route.ordering, call.context)
        annotate_order(call.span, order, reason)
    return order


def stop_reason(book: Book, call: Call, platforms_started: int) -> str | None:
    """Why ``call`` may not start another platform, or ``None`` if it may."""
    settings = book.settings
    if call.tries >= settings.max_attempts:
        return f"max_attempts={settings.max_attempts} reached"
    if platforms_started and not settings.fallback_enabled:
        return "fallback disabled"
    return None


def admit(book: Book, call: Call, pair: Pair) -> Permit | None:
    """A permit for one attempt on ``pair``, or ``None`` (the skip is recorded).

    The pair decides first (key, cool-downs, breaker); then any strategy's ``admit`` hook.
    A probe permit may still need the fleet's lease: that is the driver's to ask.
    """
    needs = call.requirement
    if needs is not None and needs.unmet(pair.spec):
        book.skipped(call, pair, SkipReason.INCAPABLE)
        return None
    admission = pair.admit(book.clock)
    if not isinstance(admission, Permit):
        book.skipped(call, pair, admission)
        return None
    pipeline = call.route.pipeline
    if pipeline is not None and pipeline.admit:
        return admitted(book, call, pair, admission)
    return admission


def admitted(book: Book, call: Call, pair: Pair, permit: Permit) -> Permit | None:
    """``permit`` (the pair admitted an attempt) unless a strategy's ``admit`` hook passes the
    pair over: then the permit goes back and the skip is recorded."""
    pipeline = call.route.pipeline
    if pipeline is not None:
        for hook in pipeline.admit:
            try:
                reason = hook(call, pair)
            except BaseException:
                book.give_back(pair, permit)  # a probe slot must not wait for its lease
                raise
            if reason is not None:
                book.give_back(pair, permit)
                book.skipped(call, pair, reason)
                return None
    return permit


def after_failure(
    book: Book,
    call: Call,
    run: Run,
    permit: Permit,
    error: Exception,
    duration: float,
) -> float | None:
    """Book ``error`` on ``run``'s platform; how long to wait before retrying it, or ``None``
    to move on. Raises ``error`` itself when it is the caller's own bug (booked uncounted), or
    the request's own fault and its reason is not one that goes on to the next platform
    (``continue_on``)."""
    pair = run.pair
    verdict = classify(error, pair.classifiers)
    if verdict.kind is ErrorKind.CALLER_BUG:
        book.caller_bug(call, pair, permit, error, duration)
        raise error
    book.attempt_failed(call, pair, permit, error, verdict, duration)
    settings = book.settings
    if verdict.kind is ErrorKind.REQUEST:
        continue_on = call.route.continue_on or settings.continue_on
        if verdict.reason not in continue_on:
            raise error
        book.fell_through(pair, verdict.reason)
        window = pair.spec.context_window
        if verdict.reason == "context_window" and window is not None:
            # Only a platform with a larger window can take what this one could not.
            call.requirement = (call.requirement or NO_REQUIREMENT).beyond(window)
    pipeline = call.route.pipeline
    if pipeline is None or not pipeline.retry_wait or call.tries >= settings.max_attempts:
        return None
    wait = pipeline.next_wait(run, error, verdict, book.clock.now())
    if wait is None:
        return None
    unavailable = pair.unavailable_reason(book.clock)
    if unavailable is not None:
        # This failure opened the pair: fall back now instead of waiting to be refused.
        book.skipped(call, pair, unavailable)
        return None
    book.telemetry.event(
        call.span,
        "failover.retry",
        {
            "failover.platform": pair.spec.name,
            "failover.attempt": call.tries,
            "failover.retry.wait": wait,
            "error.type": type(error).__qualname__,
        },
    )
    logger.info(
        "Retrying %s on %s in %.2fs (attempt %d failed: %s)",
        call.operation,
        pair.spec.name,
        wait,
        run.attempt,
        type(error).__qualname__,
    )
    return wait


def selected(operation: str, pair: Pair) -> None:
    """Log the platform a call is about to try (DEBUG, as the old manager's selection line)."""
    logger.debug("Selected platform %s (%s) for %s", pair.spec.name, pair.spec.model, operation)


def completed(operation: str, pair: Pair) -> None:
    """Log the platform that answered (DEBUG, as the old manager's completion line)."""
    logger.debug("Completed %s using %s", operation, pair.spec.name)


def give_up(call: Call, reason: str | None) -> AllPlatformsFailed:
    """The exception ``call`` ends with when no platform answered."""
    if not call.route.pairs:
        reason = "no platforms configured"
    return AllPlatformsFailed(call.operation, call.attempts, reason=reason)
