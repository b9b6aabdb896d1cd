"""Streamed answers: fallback until the first chunk, never after it.

A streaming operation opens the response and reads server-sent events *inside* the fallback
attempt until the first piece of text arrives, so an error, a timeout or a cut before it is an
ordinary failed attempt and the chain moves on. It then hands back a :class:`TextStream` that
goes on reading *outside* the chain: from then on the answer belongs to that provider, and a
failure raises :class:`StreamInterrupted` (carrying the text received so far) instead of
switching provider mid-answer. The response is closed on every path: the end of the answer,
an error, cancellation, ``aclose()``/``async with``, and the adapter's own close.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol, Self

import anyio.lowlevel
import httpx

from failover._core.errors import FailoverError, ProviderError, Transient
from failover.http._classify import BodyReader, to_provider_error
from failover.http._result import TextResult

#: A server-sent-events line longer than this is treated as a broken stream.
MAX_LINE_BYTES: Final = 1024 * 1024


class StreamInterrupted(FailoverError):
    """A streamed answer broke after its first chunk; failover did not switch provider.

    ``partial_text`` is everything received before the break, ``platform`` the provider that
    was answering, ``error`` (also ``__cause__``) the classified failure. The provider's
    health has already been told.
    """

    def __init__(self, platform: str, partial_text: str, error: ProviderError) -> None:
        self.platform = platform
        self.partial_text = partial_text
        self.error = error
        super().__init__(
            f"the answer from {platform} broke off after {len(partial_text)} characters "
            f"({type(error).__name__}: {error}); it was not restarted on another platform"
        )


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event: its ``event`` name (``"message"`` when none) and its ``data``."""

    event: str
    data: str


class EventReader:
    """Server-sent events from a streamed response, one at a time."""

    __slots__ = ("_body", "_buffer")

    def __init__(self, response: httpx.Response) -> None:
        self._body = BodyReader(response)
        self._buffer = b""

    async def next_event(self) -> ServerSentEvent | None:
        """The next event, or ``None`` when the body ends."""
        event = ""
        data: list[str] = []
        while True:
            line = await self._next_line()
            if line is None or not line:
                if data:
                    return ServerSentEvent(event or "message", "\n".join(data))
                if line is None:
                    return None
                event = ""
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value

    async def _next_line(self) -> str | None:
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                line = self._buffer[:index]
                self._buffer = self._buffer[index + 1 :]
                return line.rstrip(b"\r").decode("utf-8", "replace")
            if len(self._buffer) > MAX_LINE_BYTES:
                raise Transient("server-sent event line too long", status_code=None)
            chunk = await self._body.next_bytes()
            if chunk is None:
                rest, self._buffer = self._buffer, b""
                return rest.rstrip(b"\r").decode("utf-8", "replace") if rest else None
            self._buffer += chunk

    async def finish(self) -> None:
        """The answer is complete: read the body's tail (keeps the connection) and close."""
        await self._body.finish()

    @property
    def blocking(self) -> bool:
        return self._body.blocking

    def close_blocking(self) -> None:
        self._body.close_blocking()

    async def aclose(self) -> None:
        await self._body.aclose()


class StreamDecoder(Protocol):
    """A provider's stream protocol: turns events into text and remembers the metadata."""

    model: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    done: bool

    def feed(self, event: ServerSentEvent) -> str | None:
        """Text carried by ``event`` (or ``None``); raises a ProviderError for an error event."""
        ...


#: Told once how a stream ended: ``None`` for a complete answer, else the failure.
StreamObserver = Callable[["TextStream", ProviderError | None], Awaitable[None]]


class TextStream:
    """An answer arriving in pieces: ``async for piece in stream``.

    Use it with ``async with`` (or call :meth:`aclose`) so the connection is released as soon
    as you stop reading; it also closes itself at the end of the answer, on an error and on
    cancellation. After the end, ``text``, ``finish_reason`` and the token counts are final;
    :meth:`collect` reads what is left and returns a :class:`TextResult`.
    """

    def __init__(
        self,
        platform: str,
        model: str,
        response: httpx.Response,
        decoder: StreamDecoder,
        scrub: Callable[[str], str],
    ) -> None:
        self.platform = platform
        self._requested_model = model
        self._reader = EventReader(response)
        self._decoder = decoder
        self._scrub = scrub
        self._parts: list[str] = []
        self._pending: str | None = None
        self._closed = False
        self._complete = False
        self.observer: StreamObserver | None = None

    # -- what is known so far ----------------------------------------------------------------

    @property
    def text(self) -> str:
        """All text received so far (the whole answer once the stream has ended)."""
        return "".join(self._parts)

    @property
    def model(self) -> str:
        return self._decoder.model or self._requested_model

    @property
    def finish_reason(self) -> str | None:
        return self._decoder.finish_reason

    @property
    def input_tokens(self) -> int | None:
        return self._decoder.input_tokens

    @property
    def output_tokens(self) -> int | None:
        return self._decoder.output_tokens

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def blocking(self) -> bool:
        """Whether the answer is read with blocking I/O (see :class:`SyncTextStream`)."""
        return self._reader.blocking

    def close_blocking(self) -> None:
        """Close a blocking stream without an event loop. Safe to call more than once."""
        self._pending = None
        if not self._closed:
            self._closed = True
            self._reader.close_blocking()

    @property
    def complete(self) -> bool:
        """Whether the provider finished the answer (not just: the stream was closed)."""
        return self._complete

    def result(self) -> TextResult:
        """The answer so far as a :class:`TextResult` (the whole answer once complete)."""
        return TextResult(
            self.text,
            self.model,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            self.platform,
        )

    # -- reading -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Read up to the first piece of text. Called inside the fallback attempt, so any
        failure here is an ordinary (classified) attempt failure and the response is closed."""
        try:
            first = await self._read_text()
        except BaseException:
            await self._close()
            raise
        if first is None:
            await self._close(complete=True)
        else:
            self._pending = first

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        if self._closed:
            if self._complete and self.observer is not None:
                await self._notify(None)
            raise StopAsyncIteration
        try:
            # Pieces often come from an already-received buffer without any checkpoint; a
            # cancelled consumer is noticed here, and the connection closed, all the same.
            if not self._reader.blocking:
                await anyio.lowlevel.checkpoint_if_cancelled()
            piece = await self._read_text()
        except ProviderError as error:
            await self._close()
            await self._notify(error)
            raise StreamInterrupted(self.platform, self.text, error) from error
        except BaseException:
            await self._close()  # cancellation or a programming error: nothing to report
            raise
        if piece is None:
            await self._close(complete=True)
            await self._notify(None)
            raise StopAsyncIteration
        return piece

    async def collect(self) -> TextResult:
        """Read the rest of the answer and return it whole."""
        async with self:
            async for _ in self:
                pass
        return self.result()

    async def _read_text(self) -> str | None:
        """The next non-empty piece of text, or ``None`` when the answer is complete.

        Transport errors, error events and an early end become failover exceptions.
        """
        decoder = self._decoder
        while not decoder.done:
            try:
                event = await self._reader.next_event()
            except httpx.HTTPError as exc:
                raise to_provider_error(exc, scrub=self._scrub) from exc
            if event is None:
                if decoder.finish_reason is not None:
                    return None  # some servers end without their final marker
                raise Transient("the stream ended before the answer was complete")
            piece = decoder.feed(event)
            if piece:
                self._parts.append(piece)
                return piece
        return None

    async def _notify(self, error: ProviderError | None) -> None:
        observer, self.observer = self.observer, None
        if observer is not None:
            await observer(self, error)

    # -- closing -----------------------------------------------------------------------------

    async def _close(self, *, complete: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if complete:
            self._complete = True
            await self._reader.finish()
        else:
            await self._reader.aclose()

    async def aclose(self) -> None:
        """Stop reading and release the connection. Safe to call more than once."""
        self._pending = None
        await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"a TextStream from {self.platform} was garbage collected without being "
                "closed; use 'async with' or aclose() so its connection is released",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    def __repr__(self) -> str:
        state = "complete" if self._complete else "closed" if self._closed else "open"
        return f"<TextStream {self.platform}/{self.model} {state}, {len(self.text)} chars>"
