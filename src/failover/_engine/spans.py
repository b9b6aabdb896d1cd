"""The attempt span, for either driver: one CLIENT span per attempt while a tracer records."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from failover._core.classify import classify
from failover._core.kinds import Outcome
from failover._observe.telemetry import use_span

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span

    from failover._engine.book import Book
    from failover._engine.call import Call
    from failover._engine.route import Pair


class attempt_span:
    """The attempt's span around the operation (``call.tracer`` must be set): a cancelled
    attempt is marked so, a failed one gets its error type and kind. A class rather than a
    generator-based context manager: it runs once per attempt while spans are recorded."""

    __slots__ = ("_book", "_cancelled", "_pair", "_scope", "_span")

    def __init__(self, book: Book, call: Call, pair: Pair, cancelled: type[BaseException]) -> None:
        assert call.tracer is not None
        self._book = book
        self._pair = pair
        self._cancelled = cancelled
        self._span: Span = book.telemetry.start_attempt(
            call.tracer, pair.spec, pair.operation, call.tries, pair.breaker.state.value
        )
        self._scope: AbstractContextManager[Any] = use_span(self._span, end_on_exit=True)

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc is not None:
            if isinstance(exc, self._cancelled):
                self._span.set_attribute("failover.outcome", Outcome.CANCELLED.value)
            else:
                kind = classify(exc, self._pair.classifiers).label
                self._book.telemetry.fail_span(self._span, exc, type(exc).__qualname__, kind)
        return self._scope.__exit__(exc_type, exc, tb)


class call_scope:
    """The call's span (``failover <operation>``) and its call-duration metric around a whole
    call, for either driver, while anyone records them. ``cancelled`` is the driver's
    cancellation: such a call is counted ``cancelled`` and its span is not marked failed."""

    __slots__ = ("_book", "_call", "_cancelled", "_instruments", "_scope", "_started")

    def __init__(
        self, book: Book, call: Call, instruments: Any, cancelled: type[BaseException]
    ) -> None:
        self._book = book
        self._call = call
        self._instruments = instruments
        self._cancelled = cancelled
        self._started = book.clock.now()
        tracer = call.tracer
        span = call.span = (
            None if tracer is None else book.telemetry.start_call(tracer, call.operation)
        )
        self._scope = None if span is None else use_span(span, end_on_exit=False)

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._call.span
        outcome = Outcome.SUCCESS
        if exc is not None:
            outcome = Outcome.CANCELLED if isinstance(exc, self._cancelled) else Outcome.FAILURE
        if self._scope is not None:
            self._scope.__exit__(exc_type, exc, tb)
        if span is not None:
            if outcome is Outcome.FAILURE:
                assert exc is not None
                self._book.telemetry.fail_span(span, exc, type(exc).__qualname__)
            span.end()
        if self._instruments is not None:
            self._instruments.call_duration.record(
                self._book.clock.now() - self._started,
                {"failover.operation": self._call.operation, "failover.outcome": outcome.value},
            )
