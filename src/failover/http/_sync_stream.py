"""A streamed answer for synchronous code: ``for piece in stream``."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Self

from failover.http._blocking import run_blocking
from failover.http._result import TextResult
from failover.http._streaming import TextStream


class SyncTextStream:
    """An answer arriving in pieces, read with blocking I/O: ``for piece in stream``.

    The synchronous twin of :class:`TextStream` (it reads one, in blocking mode): the same
    pieces, the same :class:`StreamInterrupted` after the first piece, the same closing on
    the end of the answer, an error, ``close()`` / ``with`` and the manager's close.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: TextStream) -> None:
        self._stream = stream

    # -- what is known so far (see TextStream) -----------------------------------------------

    @property
    def platform(self) -> str:
        return self._stream.platform

    @property
    def text(self) -> str:
        return self._stream.text

    @property
    def model(self) -> str:
        return self._stream.model

    @property
    def finish_reason(self) -> str | None:
        return self._stream.finish_reason

    @property
    def input_tokens(self) -> int | None:
        return self._stream.input_tokens

    @property
    def output_tokens(self) -> int | None:
        return self._stream.output_tokens

    @property
    def closed(self) -> bool:
        return self._stream.closed

    @property
    def complete(self) -> bool:
        return self._stream.complete

    def result(self) -> TextResult:
        return self._stream.result()

    # -- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return run_blocking(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def collect(self) -> TextResult:
        """Read the rest of the answer and return it whole."""
        with self:
            for _ in self:
                pass
        return self.result()

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call more than once."""
        self._stream.close_blocking()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._stream).replace("<TextStream", "<SyncTextStream", 1)
