"""The attempt span, for either driver: one CLIENT span per attempt while a tracer records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from failover._core.classify import classify
from failover._core.kinds import Outcome
from failover._observe.telemetry import use_span

if TYPE_CHECKING:
    from failover._engine.book import Book
    from failover._engine.call import Call
    from failover._engine.route import Pair


@contextmanager
def attempt_span(
    book: Book, call: Call, pair: Pair, cancelled: type[BaseException]
) -> Iterator[None]:
    """The attempt's span around the operation (``call.tracer`` must be set): a cancelled
    attempt is marked so, a failed one gets its error type and kind."""
    assert call.tracer is not None
    telemetry = book.telemetry
    span = telemetry.start_attempt(
        call.tracer, pair.spec, pair.operation, call.tries, pair.breaker.state.value
    )
    with use_span(span, end_on_exit=True):
        try:
            yield
        except cancelled:
            span.set_attribute("failover.outcome", Outcome.CANCELLED.value)
            raise
        except BaseException as exc:
            kind = classify(exc, pair.classifiers).label
            telemetry.fail_span(span, exc, type(exc).__qualname__, kind)
            raise
