"""The synchronous driver: the same walk, with blocking waits, for code without an event loop.

It runs the very walk the async driver runs (:mod:`failover._engine.walk`), executing each
effect by blocking: the operation in the caller's thread (or, when an attempt timeout or a
deadline bounds it, in a worker thread the caller stops waiting for: a late result is
discarded and counts for nothing), sleeps with the clock's blocking sleep, bulkhead slots
with a ``threading.Event``, the fleet's probe lease through the manager's background loop
(:meth:`FleetLink.acquire_probe_blocking`). Every decision and booking happens under the
manager's lock, so any number of threads may call one manager at once, with or without an
event loop elsewhere.

What cannot run synchronously is refused before anything is counted: hedging (it races
platforms concurrently) and a strategy that wraps operations only asynchronously.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Mapping, Sequence
from logging import DEBUG
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, NoReturn

from failover._core.breaker import CLOSED
from failover._core.errors import Closed, ConfigError
from failover._core.health import SETTLE_AT
from failover._engine import decide
from failover._engine.call import Call, Operation
from failover._engine.effects import Invoke, Lease, Sleep, Slot, Tried
from failover._engine.spans import attempt_span, call_scope
from failover._engine.walk import Steps, resume, walk
from failover._observe.scrub import get_logger
from failover.policies.timeout import AttemptTimeout

if TYPE_CHECKING:
    from concurrent.futures import Future
    from queue import SimpleQueue

    from failover._core.spec import PlatformSpec
    from failover._engine.book import Book
    from failover._engine.route import Pair, Route
    from failover.policies.bulkhead import Limiter

logger = get_logger("failover")

Answer = tuple[Any, "PlatformSpec"]
#: What a worker thread runs: the future it answers, the operation, and its arguments.
_Task = tuple["Future[Any]", Operation, "PlatformSpec", Any, Any]


class OutOfTime(BaseException):
    """The call's deadline passed while it waited (thrown into the walk, like a cancellation,
    so the walk gives its permit back; the call then ends with ``AllPlatformsFailed``)."""


class Misused(ConfigError):
    """The operation cannot run synchronously (it returned an awaitable). Like a cancelled
    attempt it counts for nothing: its permit goes back and it ends the call unchanged."""


class Workers:
    """The daemon threads that run bounded attempts (timeouts, deadlines); made on demand.

    Daemon threads, not a ``ThreadPoolExecutor``'s: an abandoned attempt (its caller stopped
    waiting) may hang in an SDK for ever, and the interpreter joins an executor's threads at
    exit, so a script would never end. Every submitted attempt gets a thread at once (an idle
    one, or a new one): an attempt never waits in a queue while its timeout runs. A thread
    idle for ``IDLE_SECONDS`` ends.
    """

    IDLE_SECONDS: Final = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: SimpleQueue[_Task | None] | None = None
        #: Threads waiting for a task and not yet promised one.
        self._idle = 0
        self._threads = 0
        self._closed = False

    def submit(self, func: Operation, spec: PlatformSpec, args: Any, kwargs: Any) -> Future[Any]:
        # concurrent.futures and queue on first use: import failover stays light.
        from concurrent.futures import Future
        from queue import SimpleQueue

        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise Closed("this PlatformManager is closed: make a new one")
            if self._tasks is None:
                self._tasks = SimpleQueue()
            self._tasks.put((future, func, spec, args, kwargs))
            if self._idle:
                self._idle -= 1  # promised to this task
                return future
            self._threads += 1
            name = f"failover-attempt-{self._threads}"
        threading.Thread(target=self._work, args=(self._tasks,), name=name, daemon=True).start()
        return future

    def _work(self, tasks: SimpleQueue[_Task | None]) -> None:
        from queue import Empty

        while True:
            try:
                task = tasks.get(timeout=self.IDLE_SECONDS)
            except Empty:
                with self._lock:
                    if not self._idle:
                        continue  # promised to a task on its way: take it
                    self._idle -= 1
                    self._threads -= 1
                    return
            if task is None:  # shut down
                return
            future, func, spec, args, kwargs = task
            if future.set_running_or_notify_cancel():
                try:
                    result = func(spec, *args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del task, future, func, spec, args, kwargs  # nothing kept alive while idle
            with self._lock:
                if self._closed:
                    return
                self._idle += 1

    def shutdown(self) -> None:
        """Cancel what has not started and let idle threads end; a running attempt goes on
        in its (daemon) thread and its result is dropped."""
        with self._lock:
            self._closed = True
            tasks, idle = self._tasks, self._idle
            self._idle = 0
        if tasks is None:
            return
        while True:
            try:
                task = tasks.get_nowait()
            except Exception:  # queue.Empty
                break
            if task is not None:
                task[0].cancel()
        for _ in range(idle):
            tasks.put(None)


def call_sync(
    book: Book,
    workers: Workers,
    route: Route,
    func: Operation,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    context: Mapping[str, Any] | None,
) -> Answer:
    """One call down ``route``, blocking until it is answered.

    The fast path (as the async ``_fast``, in this one frame: it is the hot path of every
    synchronous call): the first platform's attempt in the caller's thread when the route has
    nothing to apply per attempt, nobody records anything and that platform is ready.
    """
    # A synchronous caller is one thread among any number: every update is locked from the
    # first synchronous call on (an owner thread's unlocked update could race the next
    # thread's first one).
    book.threaded = True
    # A call that requires capabilities needs admission's checks: not the fast path.
    # telemetry.quiet(), inlined while only the API's globals can tell (Telemetry.peek).
    telemetry = book.telemetry
    peek = telemetry.peek
    if not (
        route.plain
        and (
            peek[0]._TRACER_PROVIDER is None and peek[1]._METER_PROVIDER is None
            if peek is not None
            else telemetry.quiet()
        )
        and not (context and "require" in context)
    ):
        return _observed(book, workers, Call(book, route, func, args, kwargs, context))
    order = route.pairs if route.ordering is None else route.order(context)
    pair = order[0] if order else None
    # pair.ready(), inlined: this runs on every call.
    if pair is None or not (
        pair.key_seen
        and pair.platform.cooldown.until == 0.0
        and pair.cooldown.until == 0.0
        and pair.breaker.state is CLOSED
    ):
        call = Call(book, route, func, args, kwargs, context)
        walked: Answer = drive(book, workers, call, walk(book, call, order))
        book.finish(call, walked[1].name)
        return walked
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
    except BaseException as exc:
        call = Call(book, route, func, args, kwargs, context)
        call.tries = 1
        failed = Tried(False, exc, started, now(), not isinstance(exc, Exception))
        answer: Answer = drive(book, workers, call, resume(book, call, order, failed))
        book.finish(call, answer[1].name)
        return answer
    ended = now()
    if type(result) is CoroutineType:
        _refuse_awaitable(result, func)
    if pair.breaker.consecutive_failures:  # a success ends the streak: under the lock
        book.ready_success(pair, ended - started, ended)
    elif book.monitoring:
        # PairStats.note, inlined (a frame less on the hot path of every synchronous call).
        stats = pair.stats
        stats.last_success = ended
        times = stats.times
        times.append(ended - started)
        if len(times) > SETTLE_AT:
            book.settle(stats)
    if debug:
        decide.completed(route.operation, pair)
    return result, pair.spec


def _refuse_awaitable(result: CoroutineType[Any, Any, Any], func: Operation) -> NoReturn:
    """Raise :class:`Misused`: the operation handed back a coroutine (an ``async def``, or a
    plain function returning one) and nothing would run it. It is closed, so no "never
    awaited" warning and no side effect. (The caller checks the type: the answer of a plain
    function pays one check.)"""
    result.close()
    raise Misused(_misuse(func), key="operation_func")


def _misuse(func: Operation) -> str:
    name = getattr(func, "__qualname__", repr(func))
    wrapped = getattr(func, "__failover_in_thread__", None)
    if wrapped is not None:
        return (
            f"in_thread({name}) is for async code: give with_fallback_sync() {name} itself "
            "(it runs in the calling thread already)"
        )
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return (
            f"with_fallback_sync() got the async function {name}: await "
            "manager.with_fallback(...) instead, or give it a plain function"
        )
    return (
        f"{name} returned a coroutine to a synchronous call: return the result itself, or "
        "use the async API (await manager.with_fallback(...), or @fallback on an async def)"
    )


def _observed(book: Book, workers: Workers, call: Call) -> Answer:
    """The call inside its span and call-duration metric (when anyone records them)."""
    telemetry = book.telemetry
    tracer = call.tracer = telemetry.tracer()
    instruments = telemetry.instruments()
    if tracer is None and instruments is None:
        return run(book, workers, call)
    with call_scope(book, call, instruments, OutOfTime):
        return run(book, workers, call)


def run(book: Book, workers: Workers, call: Call) -> Answer:
    """Order the platforms and walk them, within the route's deadline when it has one."""
    route = call.route
    pipeline = route.pipeline
    if pipeline is not None and pipeline.hedge_delay is not None:
        raise ConfigError(
            f"{call.operation} hedges (Policy.hedge): racing platforms needs concurrency; "
            "use the async API for it (await manager.with_fallback(...), or @fallback on an "
            "async def), or set hedge=NO_HEDGE for this operation",
            key="hedge",
        )
    with book.lock:
        order = decide.plan(call)
    if pipeline is not None and pipeline.wrappers:
        call.func = pipeline.wrap(call.operation, call.func, blocking=True)
    ends = None if route.deadline is None else book.clock.now() + route.deadline
    try:
        answer: Answer = drive(book, workers, call, walk(book, call, order), ends)
    except OutOfTime:
        book.finish(call, None)
        raise decide.give_up(call, f"deadline of {route.deadline:g}s exceeded") from None
    except Exception:
        book.finish(call, None)
        raise
    book.finish(call, answer[1].name)
    return answer


def drive(book: Book, workers: Workers, call: Call, steps: Steps, ends: float | None = None) -> Any:
    """Run a walk to its end, executing each effect by blocking (never past ``ends``)."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            with book.lock:
                effect = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        reply = error = None
        try:
            if type(effect) is Invoke:
                reply = _invoke(book, workers, call, effect, ends)
            elif type(effect) is Sleep:
                _sleep(book, effect.seconds, ends)
            elif type(effect) is Slot:
                reply = _acquire_slot(book, effect.limiter, ends)
            else:
                assert type(effect) is Lease
                assert book.fleet is not None
                reply = book.fleet.acquire_probe_blocking(effect.pair, effect.permit)
        except BaseException as exc:
            error = exc


def _remaining(book: Book, ends: float | None) -> float:
    """Seconds left before ``ends`` (``inf`` without a deadline); :class:`OutOfTime` if none."""
    if ends is None:
        return math.inf
    left = ends - book.clock.now()
    if left <= 0:
        raise OutOfTime
    return left


def _invoke(book: Book, workers: Workers, call: Call, effect: Invoke, ends: float | None) -> Tried:
    clock = book.clock
    pair = effect.pair
    started = clock.now()
    try:
        if call.tracer is None:
            result = _attempt(book, workers, call, pair, effect.func, ends)
        else:
            with attempt_span(book, call, pair, OutOfTime):
                result = _attempt(book, workers, call, pair, effect.func, ends)
    except BaseException as exc:
        uncounted = not isinstance(exc, Exception) or isinstance(exc, Misused)
        return Tried(False, exc, started, clock.now(), uncounted)
    return Tried(True, result, started, clock.now())


def _attempt(
    book: Book, workers: Workers, call: Call, pair: Pair, func: Operation, ends: float | None
) -> Any:
    """One attempt: inline, or in a worker thread when a timeout or the deadline bounds it."""
    pipeline = call.route.pipeline
    limit = None if pipeline is None or not pipeline.timeouts else pipeline.attempt_limit(pair)
    left = _remaining(book, ends)
    if limit is None and math.isinf(left):
        result = func(pair.spec, *call.args, **call.kwargs)
        if type(result) is CoroutineType:
            _refuse_awaitable(result, func)
        return result
    future = workers.submit(func, pair.spec, call.args, call.kwargs)
    wait = left if limit is None else min(limit, left)
    try:
        result = future.result(timeout=wait)
    except TimeoutError:  # concurrent.futures.TimeoutError is TimeoutError since 3.11
        future.cancel()  # not started yet: never runs; running: its result is dropped
        if limit is not None and limit <= left:
            raise AttemptTimeout(limit) from None
        raise OutOfTime from None
    if type(result) is CoroutineType:
        _refuse_awaitable(result, func)
    return result


def _sleep(book: Book, seconds: float, ends: float | None) -> None:
    left = _remaining(book, ends)
    sleep = getattr(book.clock, "sleep_blocking", None) or time.sleep
    sleep(min(seconds, left))
    if seconds >= left:
        raise OutOfTime


def _acquire_slot(book: Book, limiter: Limiter, ends: float | None) -> bool:
    """Wait up to the limiter's ``max_wait`` (and the deadline) for a slot handed over."""
    handed = threading.Event()
    with book.lock:
        if limiter.try_acquire():
            return True
        limiter.enqueue(handed)
    try:
        wait = min(limiter.max_wait, _remaining(book, ends))
        got = handed.wait(None if math.isinf(wait) else wait)
    except BaseException:  # interrupted (or out of time): leave the queue, pass on a slot
        with book.lock:
            limiter.leave(handed, handed.is_set())
        raise
    with book.lock:
        if got or handed.is_set():
            return True  # the releaser passed its slot on: in_use already counts it
        limiter.leave(handed, False)
    if wait < limiter.max_wait:
        raise OutOfTime
    return False
