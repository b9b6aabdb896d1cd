"""Hedging, driven: start the next platform beside a slow one, keep the first answer.

The decision (how long to give a platform) is :class:`~failover.policies.hedge.Hedge`'s; this
is the racing. Each platform runs as a *lane*: :func:`~.walk.on_platform` on that one
platform, with the same call, so admission, bulkheads, retries, attempt spans and the books
are exactly the walk's. The first answer wins; the other lanes are cancelled and their
permits given back, nothing counted against them. A lane that fails is replaced at once by
the next platform, as in the plain walk.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from failover._engine import decide
from failover._engine.drive_async.walk import drive
from failover._engine.walk import lane
from failover._observe.telemetry import current_recording_span

if TYPE_CHECKING:
    from failover._core.spec import PlatformSpec
    from failover._engine.book import Book
    from failover._engine.call import Call, Operation
    from failover._engine.route import Pair

Answer = tuple[Any, "PlatformSpec"]


async def _discard(result: Any) -> None:
    """Close an answer nobody will read (a stream would otherwise hold its connection)."""
    aclose = getattr(result, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        closing = aclose()
        if inspect.isawaitable(closing):
            await closing


def _marked_as_hedge(func: Operation) -> Operation:
    """``func``, marking the attempt span it runs in as a hedge."""

    def hedged(platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
        span = current_recording_span()
        if span is not None:
            span.set_attribute("failover.hedge", True)
        return func(platform, *args, **kwargs)

    return hedged


class _Race:
    """The lanes of one hedged call and what they produced."""

    def __init__(self, book: Book, call: Call, order: Sequence[Pair]) -> None:
        self.book = book
        self.call = call
        self.hedges = 0
        self.last_start = book.clock.now()
        self.last_pair: Pair | None = None
        self.pending = list(reversed(order))  # pop() takes the next platform
        self.hedge_func: Operation | None = None  # made when the first hedge starts
        self.running = 0
        self.started = 0
        self.winner: list[Answer] = []
        self.fatal: list[Exception] = []
        self.changed = anyio.Event()

    async def lane(self, pair: Pair, func: Operation) -> None:
        try:
            answer: Answer | int = 0
            # Lanes share the call's attempt budget: a lane starting after it is spent is idle.
            if self.call.tries < self.book.settings.max_attempts:
                answer = await drive(self.book, self.call, lane(self.book, self.call, pair, func))
        except Exception as exc:
            self.fatal.append(exc)  # the request's own fault: the whole call ends with it
        else:
            if type(answer) is tuple:
                if not self.winner:
                    self.winner.append(answer)
                elif answer[0] is not self.winner[0][0]:
                    # Another lane answered in the same instant: nobody will read this one
                    # (unless both lanes handed back one shared object).
                    await _discard(answer[0])
        finally:
            self.running -= 1
            self.changed.set()

    def next_usable(self) -> Pair | None:
        """The next platform that would admit an attempt; those that would not are skipped."""
        clock = self.book.clock
        while self.pending:
            pair = self.pending.pop()
            skip = pair.unavailable_reason(clock)
            if skip is None:
                return pair
            self.book.skipped(self.call, pair, skip)
        return None

    async def run(
        self, lanes: anyio.abc.TaskGroup, hedge_delay: Callable[[Pair, int], float | None]
    ) -> None:
        """Keep the lanes going until one answers, a request fault ends the call, or no
        platform is left: a lane starts at once when one fails, and one more each time the
        newest has run ``hedge_delay`` without an answer (while it gives one)."""
        clock = self.book.clock
        target = 1  # lanes that should be running: 1 + hedges fired
        while not self.winner and not self.fatal:
            self.fill(lanes, target)
            if self.running == 0:
                return
            self.changed = anyio.Event()
            assert self.last_pair is not None
            delay = hedge_delay(self.last_pair, self.hedges) if self.may_start() else None
            if delay is None:
                await self.changed.wait()
                continue
            with clock.cancel_scope(max(self.last_start + delay - clock.now(), 0.0)):
                await self.changed.wait()
            if not self.changed.is_set():
                self.hedges += 1
                target += 1

    def may_start(self) -> bool:
        """Whether another lane may start: platforms left, attempts left, fallback on."""
        settings = self.book.settings
        return (
            bool(self.pending)
            and self.started < settings.max_attempts
            and (not self.started or settings.fallback_enabled)
        )

    def fill(self, lanes: anyio.abc.TaskGroup, target: int) -> None:
        """Start lanes until ``target`` run (or none may start)."""
        while self.running < target and self.may_start():
            pair = self.next_usable()
            if pair is None:
                return
            func = self.lane_func()
            self.running += 1
            self.started += 1
            self.last_start, self.last_pair = self.book.clock.now(), pair
            lanes.start_soon(self.lane, pair, func)

    def lane_func(self) -> Operation:
        if not self.running:
            return self.call.func
        if self.hedge_func is None:  # started beside a running lane: a hedge
            self.hedge_func = _marked_as_hedge(self.call.func)
        return self.hedge_func


async def race(
    book: Book,
    call: Call,
    order: Sequence[Pair],
    hedge_delay: Callable[[Pair, int], float | None],
) -> Answer:
    """Race the platforms of ``order``, hedging after ``hedge_delay(pair)`` seconds."""
    state = _Race(book, call, order)
    async with anyio.create_task_group() as lanes:
        await state.run(lanes, hedge_delay)
        lanes.cancel_scope.cancel()
    if call.span is not None:
        call.span.set_attribute("failover.hedges", state.hedges)
    # An answer that arrived with a request fault of another lane still answers the call.
    if state.fatal and not state.winner:
        raise state.fatal[0]
    if state.winner:
        return state.winner[0]
    route = call.route
    if not state.started and route.pairs and route.last_resort is not None:
        from failover._engine.resort import last_resort

        answer: Answer = await drive(book, call, last_resort(book, call, order, route.last_resort))
        return answer
    max_attempts = book.settings.max_attempts
    reason = None
    if state.started >= max_attempts and state.pending:
        reason = f"max_attempts={max_attempts} reached"
    raise decide.give_up(call, reason)
