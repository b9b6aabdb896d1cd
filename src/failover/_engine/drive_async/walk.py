"""The async walk: platform after platform, attempt after attempt, until one answers.

Each function here handles one layer and says which (as httpx's ``send`` chain does):
:func:`start` picks the path (the quiet fast path, or the observed call with its span and
metrics), :func:`run` orders the platforms and hands them to the walk (or to hedging),
:func:`walk` goes down the order, :func:`on_platform` makes a platform's attempts (retries
included), :func:`attempt` runs one inside its timeout and attempt span. Every decision is
:mod:`failover._engine.decide`'s; everything recorded goes through the call's book.

Cancellation from the caller is never counted, never retried, never converted: the permit is
given back and the exception re-raised unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping, Sequence
from logging import DEBUG
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio

from failover._core.breaker import CLOSED_PERMIT, Permit
from failover._core.classify import classify
from failover._core.kinds import Outcome, SkipReason
from failover._engine import decide
from failover._engine.call import Call, Operation, Run
from failover._observe.scrub import get_logger
from failover._observe.telemetry import use_span
from failover.policies.timeout import AttemptTimeout

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._core.spec import PlatformSpec
    from failover._engine.book import Book
    from failover._engine.route import Pair, Route
    from failover.policies.bulkhead import Limiter

Answer = tuple[Any, "PlatformSpec"]

logger = get_logger("failover")


def start(
    book: Book,
    route: Route,
    func: Operation,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    context: Mapping[str, Any] | None,
) -> Awaitable[Answer]:
    """The coroutine of one call down ``route``: the fast path while a route has no deadline,
    no policy acting per attempt and nobody records anything, else the observed call."""
    if route.plain and book.telemetry.quiet():
        return _fast(book, route, func, args, kwargs, context)
    return _observed(book, route, func, args, kwargs, context)


async def _fast(
    book: Book,
    route: Route,
    func: Operation,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    context: Mapping[str, Any] | None,
) -> Answer:
    """The first platform's attempt with nothing to record unless it fails.

    Taken only when the first platform is ready (key present, no cool-down, breaker closed:
    admission would hand out the shared closed permit and record nothing). Anything else, or
    a failure, continues as the ordinary walk with a :class:`Call`.
    """
    order = route.pairs if route.ordering is None else route.order(context)
    if order:
        pair = order[0]
        if pair.ready():
            debug = logger.isEnabledFor(DEBUG)
            if debug:
                decide.selected(route.operation, pair)
            clock = book.clock
            started = clock.now()
            try:
                result = func(pair.spec, *args, **kwargs)
                if type(result) is CoroutineType or isinstance(result, Awaitable):
                    result = await result
            except BaseException as exc:
                call = Call(book, route, func, args, kwargs, context)
                call.tries = 1
                answer = await on_platform(book, call, pair, CLOSED_PERMIT, failed=(exc, started))
                if type(answer) is tuple:
                    return answer
                return await walk(book, call, order, begun=1)
            ended = clock.now()
            book.ready_success(pair, ended - started, ended)
            if debug:
                decide.completed(route.operation, pair)
            return result, pair.spec
    call = Call(book, route, func, args, kwargs, context)
    return await walk(book, call, order)


async def _observed(
    book: Book,
    route: Route,
    func: Operation,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    context: Mapping[str, Any] | None,
) -> Answer:
    """The call inside its span and call-duration metric (when anyone records them)."""
    telemetry = book.telemetry
    tracer = telemetry.tracer()
    instruments = telemetry.instruments()
    call = Call(book, route, func, args, kwargs, context, tracer)
    if tracer is None and instruments is None:
        return await _within_deadline(book, call)
    started = book.clock.now()
    span = call.span = None if tracer is None else telemetry.start_call(tracer, route.operation)
    outcome = Outcome.FAILURE
    try:
        if span is None:
            answer = await _within_deadline(book, call)
        else:
            with use_span(span, end_on_exit=False):
                answer = await _within_deadline(book, call)
        outcome = Outcome.SUCCESS
        return answer
    except anyio.get_cancelled_exc_class():
        outcome = Outcome.CANCELLED
        raise
    except BaseException as exc:
        if span is not None:
            telemetry.fail_span(span, exc, type(exc).__qualname__)
        raise
    finally:
        if span is not None:
            span.end()
        if instruments is not None:
            instruments.call_duration.record(
                book.clock.now() - started,
                {"failover.operation": route.operation, "failover.outcome": outcome.value},
            )


async def _within_deadline(book: Book, call: Call) -> Answer:
    """:func:`run`, inside the route's deadline when it has one."""
    deadline = call.route.deadline
    if deadline is None:
        return await run(book, call)
    with book.clock.cancel_scope(deadline) as scope:
        return await run(book, call)
    # Only reached when the deadline scope swallowed its own cancellation.
    assert scope.cancelled_caught
    book.finish(call, None)
    raise decide.give_up(call, f"deadline of {deadline:g}s exceeded")


async def run(book: Book, call: Call) -> Answer:
    """Order the platforms, then walk them (or race them, when the route hedges)."""
    from failover._engine.drive_async.hedge import race

    order = decide.plan(call)
    pipeline = call.route.pipeline
    if pipeline is not None and pipeline.wrappers:
        call.func = pipeline.wrap(call.operation, call.func)
    try:
        if pipeline is not None and pipeline.hedge_delay is not None:
            answer = await race(book, call, order, pipeline.hedge_delay)
        else:
            answer = await walk(book, call, order)
    except Exception:
        book.finish(call, None)
        raise
    book.finish(call, answer[1].name)
    return answer


async def walk(book: Book, call: Call, order: Sequence[Pair], *, begun: int = 0) -> Answer:
    """Platform after platform of ``order`` (from index ``begun``, the ones before it already
    tried), until one answers; then the last resort, or :class:`AllPlatformsFailed`."""
    platforms = begun
    reason: str | None = None
    for index in range(begun, len(order)):
        reason = decide.stop_reason(book, call, platforms)
        if reason is not None:
            break
        pair = order[index]
        permit = await admit(book, call, pair)
        if permit is None:
            continue
        answer = await on_platform(book, call, pair, permit)
        if type(answer) is tuple:
            return answer
        if answer:
            platforms += 1
    if call.tries == 0 and call.route.pairs and call.route.last_resort is not None:
        from failover._engine.drive_async.last_resort import last_resort

        return await last_resort(book, call, order, call.route.last_resort)
    raise decide.give_up(call, reason)


async def admit(book: Book, call: Call, pair: Pair) -> Permit | None:
    """:func:`decide.admit`, plus the fleet's lease for a probe when state is shared."""
    permit = decide.admit(book, call, pair)
    if permit is None:
        return None
    fleet = book.fleet
    if permit.is_probe and fleet is not None and not await fleet.acquire_probe(pair, permit):
        book.skipped(call, pair, SkipReason.OPEN)
        return None
    return permit


async def on_platform(
    book: Book,
    call: Call,
    pair: Pair,
    permit: Permit,
    *,
    func: Operation | None = None,
    failed: tuple[BaseException, float] | None = None,
) -> Answer | int:
    """Attempts on ``pair`` until it answers (the answer) or the call moves on (how many
    attempts were made on it: 0 when none could start). ``failed`` is a first attempt that
    already failed (the fast path's)."""
    clock = book.clock
    pipeline = call.route.pipeline
    if failed is None and logger.isEnabledFor(DEBUG):
        decide.selected(call.operation, pair)
    run: Run | None = None
    made = 0 if failed is None else 1
    while True:
        if failed is None:
            held = await slots(book, call, pair, permit) if pipeline and pipeline.slot else ()
            if held is None:
                return made
            call.tries += 1
            made += 1
            started = clock.now()
            try:
                result = await attempt(book, call, pair, func or call.func)
            except BaseException as exc:
                failed = (exc, started)
            else:
                ended = clock.now()
                book.answered(call, pair, permit, result, ended - started, ended)
                return result, pair.spec
            finally:
                for limiter in held:
                    limiter.release()
        error, started = failed
        failed = None
        duration = clock.now() - started
        if not isinstance(error, Exception) or isinstance(error, anyio.get_cancelled_exc_class()):
            book.cancelled(call, pair, permit, duration)
            raise error
        if run is None:
            run = Run(pair, started)
        else:
            run.attempt += 1
        wait = decide.after_failure(book, call, run, permit, error, duration)
        if wait is None:
            return made
        if wait > 0:
            await clock.sleep(wait)
        readmitted = await admit(book, call, pair)
        if readmitted is None:
            return made
        permit = readmitted


async def slots(book: Book, call: Call, pair: Pair, permit: Permit) -> list[Limiter] | None:
    """The bulkhead slots an attempt on ``pair`` must hold, or ``None`` when one did not come
    in time (the permit is given back and the pair skipped, uncounted)."""
    assert call.route.pipeline is not None
    held: list[Limiter] = []
    try:
        for hook in call.route.pipeline.slot:
            limiter = hook(pair)
            if limiter is None:
                continue
            if not await acquire_slot(limiter, book.clock):
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


async def acquire_slot(limiter: Limiter, clock: Clock) -> bool:
    """Take a slot of ``limiter``, waiting up to its ``max_wait``; ``False`` if none came."""
    if limiter.try_acquire():
        return True
    if limiter.max_wait <= 0:
        return False
    handed = anyio.Event()
    limiter.enqueue(handed)
    try:
        if math.isinf(limiter.max_wait):
            await handed.wait()
        else:
            with clock.cancel_scope(limiter.max_wait):
                await handed.wait()
    except BaseException:
        # Cancelled by the caller: pass on a slot handed over meanwhile, or leave the queue.
        limiter.leave(handed, handed.is_set())
        raise
    if handed.is_set():
        return True  # the releaser passed its slot on: in_use already counts it
    limiter.leave(handed, False)
    return False


async def attempt(book: Book, call: Call, pair: Pair, func: Operation) -> Any:
    """One attempt: the operation inside the attempt timeout, and its attempt span."""
    pipeline = call.route.pipeline
    limit = None if pipeline is None or not pipeline.timeouts else pipeline.attempt_limit(pair)
    if call.tracer is None:
        if limit is None:
            return await invoke(func, pair.spec, call.args, call.kwargs)
        return await _timed(book.clock, limit, func, pair.spec, call.args, call.kwargs)
    telemetry = book.telemetry
    span = telemetry.start_attempt(
        call.tracer, pair.spec, pair.operation, call.tries, pair.breaker.state.value
    )
    with use_span(span, end_on_exit=True):
        try:
            if limit is None:
                return await invoke(func, pair.spec, call.args, call.kwargs)
            return await _timed(book.clock, limit, func, pair.spec, call.args, call.kwargs)
        except anyio.get_cancelled_exc_class():
            span.set_attribute("failover.outcome", Outcome.CANCELLED.value)
            raise
        except BaseException as exc:
            kind = classify(exc, pair.classifiers).kind.value
            telemetry.fail_span(span, exc, type(exc).__qualname__, kind)
            raise


async def _timed(
    clock: Clock,
    seconds: float,
    func: Operation,
    spec: PlatformSpec,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> Any:
    with clock.cancel_scope(seconds) as scope:
        return await invoke(func, spec, args, kwargs)
    assert scope.cancelled_caught
    raise AttemptTimeout(seconds)


async def invoke(
    func: Operation, spec: PlatformSpec, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Call ``func(spec, *args, **kwargs)``; await the result when it is awaitable."""
    result = func(spec, *args, **kwargs)
    if type(result) is CoroutineType or isinstance(result, Awaitable):
        return await result
    return result
