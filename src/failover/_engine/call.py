"""One call in progress: what it was given, and what has happened to it so far.

A :class:`Call` is made for every call that records anything (a span, a skip, a failure);
the plain happy path of a quiet route never makes one (``drive_async``). Whatever runs the
call (the walk, a hedge lane, the last resort) shares the one object, so attempts are
numbered and counted once, whoever made them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover._core.errors import Attempt
from failover._core.spec import Requirement

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from failover._engine.book import Book
    from failover._engine.route import Pair, Route

Operation = Callable[..., Any]


class Call:
    """The call context: the route, the operation and its arguments, the call span, the
    attempt records, and the counters every driver shares."""

    __slots__ = (
        "args",
        "attempts",
        "book",
        "context",
        "func",
        "kwargs",
        "order_reason",
        "requirement",
        "route",
        "span",
        "tracer",
        "tries",
    )

    def __init__(
        self,
        book: Book,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        tracer: Tracer | None = None,
        span: Span | None = None,
    ) -> None:
        self.book = book
        self.route = route
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.tracer = tracer
        self.span = span
        #: Every platform's record: failures, cancellations and skips (successes are not
        #: recorded: the answer says who answered).
        self.attempts: list[Attempt] = []
        #: Attempts started so far, all drivers together (numbers each attempt span).
        self.tries = 0
        #: Why the order is what it is (set by an ordering strategy that says so).
        self.order_reason = ""
        #: What a platform must offer to be tried (the call's ``require``, then whatever a
        #: ``context_window`` failure adds); ``None``: anything goes.
        self.requirement: Requirement | None = None

    @property
    def operation(self) -> str:
        return self.route.operation

    def skip(self, pair: Pair, reason: str) -> None:
        """Record that ``pair`` is passed over for ``reason``."""
        self.book.skipped(self, pair, reason)


class Run:
    """One platform's attempts within one call: made on its first failure, for retries."""

    __slots__ = ("attempt", "memo", "pair", "started")

    def __init__(self, pair: Pair, started: float) -> None:
        self.pair = pair
        self.started = started
        self.attempt = 1
        #: The retry strategy's state (a ``RetryRun``), kept across this platform's failures.
        self.memo: Any = None
