"""The async driver's call: the fast path, the observed call, and the effects the walk asks for.

:func:`start` picks the path (the quiet fast path, or the observed call with its span and
metrics); :func:`run` orders the platforms and hands them to the walk
(:mod:`failover._engine.walk`) or to hedging; :func:`drive` runs a walk, executing each effect
it yields by awaiting: the operation inside its timeout and attempt span (:func:`attempt`), a
retry's sleep, a bulkhead slot (:func:`acquire_slot`), the fleet's probe lease.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Mapping, Sequence
from logging import DEBUG
from threading import get_ident
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio

from failover._core.breaker import CLOSED
from failover._engine import decide
from failover._engine.call import Call, Operation
from failover._engine.effects import Invoke, Lease, Sleep, Slot, Tried
from failover._engine.spans import attempt_span, call_scope
from failover._engine.walk import Steps, resume, walk
from failover._observe.scrub import get_logger
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
    if not book.threaded and book.owner != get_ident():
        book.enter(get_ident())
    # A call that requires capabilities needs admission's checks: not the fast path.
    if route.plain and book.telemetry.quiet() and not (context and "require" in context):
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
        # pair.ready(), inlined: this runs on every call.
        if (
            pair.key_seen
            and pair.platform.cooldown.until == 0.0
            and pair.cooldown.until == 0.0
            and pair.breaker.state is CLOSED
        ):
            debug = logger.isEnabledFor(DEBUG)
            if debug:
                decide.selected(route.operation, pair)
            now = book.now
            started = now()
            try:
                # Unpacking empty args and kwargs costs more than the rest of the call: skipped.
                if kwargs:
                    result = func(pair.spec, *args, **kwargs)
                else:
                    result = func(pair.spec, *args) if args else func(pair.spec)
                if type(result) is CoroutineType or isinstance(result, Awaitable):
                    result = await result
            except BaseException as exc:
                call = Call(book, route, func, args, kwargs, context)
                call.tries = 1
                failed = Tried(False, exc, started, now(), _cancelled(exc))
                answer: Answer = await drive(book, call, resume(book, call, order, failed))
                book.finish(call, answer[1].name)
                return answer
            ended = now()
            if pair.breaker.consecutive_failures:  # a success ends the streak: locked
                book.ready_success(pair, ended - started, ended)
            elif book.monitoring:
                stats = pair.stats
                if stats.note(ended, ended - started):  # lock-free (failover._core.health)
                    book.settle(stats)
            if debug:
                decide.completed(route.operation, pair)
            return result, pair.spec
    call = Call(book, route, func, args, kwargs, context)
    walked: Answer = await drive(book, call, walk(book, call, order))
    book.finish(call, walked[1].name)
    return walked


def _cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is the caller's cancellation (or another non-``Exception``)."""
    return not isinstance(exc, Exception) or isinstance(exc, anyio.get_cancelled_exc_class())


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
    with call_scope(book, call, instruments, anyio.get_cancelled_exc_class()):
        return await _within_deadline(book, call)


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

    with book.guard:
        order = decide.plan(call)
    pipeline = call.route.pipeline
    if pipeline is not None and pipeline.wrappers:
        call.func = pipeline.wrap(call.operation, call.func)
    try:
        if pipeline is not None and pipeline.hedge_delay is not None:
            answer = await race(book, call, order, pipeline.hedge_delay)
        else:
            answer = await drive(book, call, walk(book, call, order))
    except Exception:
        book.finish(call, None)
        raise
    book.finish(call, answer[1].name)
    return answer


async def drive(book: Book, call: Call, steps: Steps) -> Any:
    """Run a walk to its end, executing each effect it yields; what a wait raised (a
    cancellation, a deadline) is thrown into the walk where it waited."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            if book.threaded:
                with book.lock:
                    effect = steps.send(reply) if error is None else steps.throw(error)
            else:
                effect = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        reply = error = None
        try:
            if type(effect) is Invoke:
                reply = await _invoke(book, call, effect)
            elif type(effect) is Sleep:
                await book.clock.sleep(effect.seconds)
            elif type(effect) is Slot:
                reply = await acquire_slot(effect.limiter, book.clock)
            else:
                assert type(effect) is Lease
                assert book.fleet is not None
                reply = await book.fleet.acquire_probe(effect.pair, effect.permit)
        except BaseException as exc:
            error = exc


async def _invoke(book: Book, call: Call, effect: Invoke) -> Tried:
    clock = book.clock
    pipeline = call.route.pipeline
    started = clock.now()
    try:
        if call.tracer is None and (pipeline is None or not pipeline.timeouts):
            # attempt() and invoke() inlined: nothing to time out and no span to open.
            result = effect.func(effect.pair.spec, *call.args, **call.kwargs)
            if type(result) is CoroutineType or isinstance(result, Awaitable):
                result = await result
        else:
            result = await attempt(book, call, effect.pair, effect.func)
    except BaseException as exc:
        return Tried(False, exc, started, clock.now(), _cancelled(exc))
    return Tried(True, result, started, clock.now())


async def acquire_slot(limiter: Limiter, clock: Clock) -> bool:
    """Take a slot of ``limiter``, waiting up to its ``max_wait``; ``False`` if none came."""
    if limiter.try_acquire():
        return True
    if limiter.max_wait <= 0:
        return False
    handed = _LoopWaiter()
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
    with attempt_span(book, call, pair, anyio.get_cancelled_exc_class()):
        if limit is None:
            return await invoke(func, pair.spec, call.args, call.kwargs)
        return await _timed(book.clock, limit, func, pair.spec, call.args, call.kwargs)


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


class _LoopWaiter:
    """A bulkhead waiter on this event loop, which another thread (a synchronous caller
    releasing its slot) may hand the slot to: ``set`` is then scheduled on the loop."""

    __slots__ = ("_event", "_soon", "_thread")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._thread = get_ident()
        self._soon = _call_soon_threadsafe()

    def set(self) -> None:
        if get_ident() == self._thread:
            self._event.set()
        else:
            self._soon(self._event.set)

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


def _call_soon_threadsafe() -> Any:
    """This event loop's way to run a callback soon from another thread (asyncio or trio)."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return functools.partial(asyncio.get_running_loop().call_soon_threadsafe)
