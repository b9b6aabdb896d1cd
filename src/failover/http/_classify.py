"""httpx errors and responses -> failover's error kinds and exceptions: the httpx adapter.

The decisions, the provider body dialects and ``Retry-After`` are the core's
(:mod:`failover._core.classify`), which reads httpx's errors by duck typing and needs none of
this module. What is here needs httpx itself: its response and exception classes
(:func:`classify_response`, :func:`classify_http`, :func:`to_provider_error`), reading a
streamed error body (:func:`read_error_body`, :class:`BodyReader`, the
:func:`raise_for_provider_status` hook), and the exceptions' short, scrubbed text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Final

import anyio
import httpx

from failover._core.classify import (
    MAX_ERROR_BODY_BYTES,
    Classification,
    ErrorBody,
    ErrorKind,
    classify_answer,
    classify_body,
    parse_error_body,
    retry_after_of,
)
from failover._core.errors import (
    AuthFailed,
    BadRequest,
    CreditExhausted,
    ProviderError,
    RateLimited,
    Transient,
)
from failover._core.text import exception_text
from failover._observe.scrub import Scrubber

#: Longest provider message kept in an exception's text.
MAX_MESSAGE_CHARS: Final = 200

_DEFAULT_SCRUB: Final = Scrubber()


def classify_response(response: httpx.Response) -> Classification:
    """Classify a finished (non-2xx) response. Its body is used if it was read."""
    return classify_answer(response.status_code, response.headers, _content_read(response))


def _content_read(response: httpx.Response) -> bytes:
    """The body if it was read, else ``b""`` (a streamed response nobody read)."""
    try:
        return response.content
    except httpx.ResponseNotRead:
        return b""


def classify_http(exc: BaseException) -> Classification | None:
    """A per-platform classifier for httpx exceptions (``None`` for anything else)::

        PlatformManager(..., classifiers={"groq": [failover.http.classify_http]})

    ``HTTPStatusError`` is classified from its response; timeouts and transport errors are
    transient.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        return classify_response(exc.response)
    if isinstance(exc, httpx.RequestError):
        return Classification(ErrorKind.TRANSIENT)
    return None


def error_for(verdict: Classification, message: str) -> ProviderError:
    """The failover exception for a verdict."""
    kind = verdict.kind
    status = verdict.status_code
    if kind is ErrorKind.RATE_LIMITED:
        return RateLimited(message, retry_after=verdict.retry_after, status_code=status)
    if kind is ErrorKind.CREDIT_EXHAUSTED:
        return CreditExhausted(message, status_code=status)
    if kind is ErrorKind.AUTH:
        return AuthFailed(message, status_code=status)
    if kind is ErrorKind.REQUEST:
        return BadRequest(message, reason=verdict.reason or "bad_request", status_code=status)
    return Transient(message, status_code=status)


def describe(status: int | None, body: ErrorBody, scrub: Callable[[str], str]) -> str:
    """A short, scrubbed one-liner: ``HTTP 429 rate_limit_exceeded: Rate limit reached ...``."""
    head = f"HTTP {status}" if status is not None else "stream error"
    if body.codes:
        head += " " + "/".join(body.codes[:2])
    message = body.message
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return scrub(f"{head}: {message}" if message else head)


def error_from_body(
    status: int | None,
    body: ErrorBody,
    retry_after: float | None = None,
    scrub: Callable[[str], str] = _DEFAULT_SCRUB,
) -> ProviderError:
    """The failover exception for a provider error body (``status=None`` inside a stream)."""
    return error_for(classify_body(status, body, retry_after), describe(status, body, scrub))


def to_provider_error(
    error: httpx.Response | BaseException, *, scrub: Callable[[str], str] = _DEFAULT_SCRUB
) -> ProviderError:
    """failover's exception for an httpx response (its body used if read) or exception.

    ``CreditExhausted``, ``RateLimited(retry_after=...)``, ``AuthFailed``,
    ``BadRequest(reason=...)`` or ``Transient``, with ``status_code`` and a short message
    scrubbed of keys (key-shaped tokens, plus the values of the variables ``scrub`` knows).
    A :class:`ProviderError` is returned as it is; anything else unknown becomes ``Transient``.
    """
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, httpx.HTTPStatusError):
        error = error.response
    if isinstance(error, httpx.Response):
        return error_from_body(
            error.status_code,
            parse_error_body(_content_read(error)),
            retry_after_of(error.headers),
            scrub,
        )
    if isinstance(error, httpx.TimeoutException):
        return Transient(f"timeout ({type(error).__name__})", status_code=None)
    detail = scrub(exception_text(error, 2 * MAX_MESSAGE_CHARS))[:MAX_MESSAGE_CHARS]
    name = type(error).__name__
    return Transient(f"{name}: {detail}" if detail else name, status_code=None)


async def read_error_body(response: httpx.Response, limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
    """Up to ``limit`` bytes of a response's body, then the response is closed.

    A body that was already read is returned as it is. Reading stops early for a huge body;
    the connection is then closed rather than drained.
    """
    try:
        return response.content[:limit]
    except httpx.ResponseNotRead:
        pass
    reader = BodyReader(response)
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = await reader.next_bytes()
            if chunk is None:
                break
            parts.append(chunk)
            size += len(chunk)
    finally:
        await reader.aclose()
    return b"".join(parts)[:limit]


class BodyReader:
    """Reads a streamed response's (decoded) body chunk by chunk and closes it cleanly.

    Closing a half-read httpx response leaves httpx's and httpcore's nested async generators
    suspended; trio then warns as each is garbage collected (encode/httpx#3686). So
    :meth:`aclose` closes the response *first* (which closes the connection: it cannot be
    reused mid-body) and then steps the iterator through what was already received until
    the read fails on the closed socket: the error runs through every generator and all of
    them finish.

    A response of a synchronous ``httpx.Client`` (the adapters' blocking mode) is read with
    its plain iterator, so these coroutines never suspend for it (see ``_blocking``).
    """

    __slots__ = ("_finished", "_iterator", "_sync_iterator", "response")

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._sync_iterator: Iterator[bytes] | None = None
        if isinstance(response.stream, httpx.SyncByteStream):
            self._sync_iterator = response.iter_bytes()
        else:
            self._iterator = response.aiter_bytes()
        self._finished = False

    @property
    def blocking(self) -> bool:
        """Whether the body is read with blocking I/O (a synchronous client's response)."""
        return self._sync_iterator is not None

    async def next_bytes(self) -> bytes | None:
        """The next chunk, or ``None`` at the end of the body."""
        try:
            if self._sync_iterator is not None:
                chunk = next(self._sync_iterator, None)
                if chunk is None:
                    self._finished = True
                return chunk
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            self._finished = True
            return None
        except BaseException:
            self._finished = True  # an exception ran through the generators: they are done
            raise

    async def finish(self, limit: int = MAX_ERROR_BODY_BYTES) -> None:
        """Read what is left of a body whose content is complete (a stream's final marker has
        arrived), so the connection can go back to the pool; then close the response."""
        if self._sync_iterator is not None:
            self._finish_blocking(limit)
            return
        try:
            with anyio.move_on_after(_FINISH_SECONDS):
                size = 0
                while size <= limit:
                    chunk = await self.next_bytes()
                    if chunk is None:
                        break
                    size += len(chunk)
        except Exception:  # a broken tail: the connection is closed below, nothing is lost
            pass
        finally:
            await self.aclose()

    def _finish_blocking(self, limit: int) -> None:
        # The client's read timeout bounds each chunk; the size limit bounds the rest.
        try:
            size = 0
            while size <= limit:
                chunk = next(self._sync_iterator, None) if self._sync_iterator else None
                if chunk is None:
                    break
                size += len(chunk)
        except Exception:  # a broken tail: the connection is closed below, nothing is lost
            pass
        finally:
            self.close_blocking()

    def close_blocking(self) -> None:
        """Close a synchronous client's response (no event loop needed)."""
        self._finished = True
        self.response.close()
        if self._sync_iterator is not None:
            self._sync_iterator.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Close the response and finish the iterator (shielded from cancellation)."""
        if self._sync_iterator is not None:
            self.close_blocking()
            return
        with anyio.CancelScope(shield=True):
            await self.response.aclose()
            if self._finished:
                return
            self._finished = True
            # Bytes already received are still handed out (they are bounded: the socket is
            # closed); then comes the end of the body or a ReadError on the closed socket.
            with anyio.move_on_after(_FINISH_SECONDS), contextlib.suppress(Exception):
                while True:
                    await self._iterator.__anext__()


#: How long closing waits for a half-read body's iterator to notice the closed connection.
_FINISH_SECONDS: Final = 1.0


async def raise_for_provider_status(response: httpx.Response) -> None:
    """An httpx response hook: raise failover's exception for any 4xx/5xx response.

    ::

        client = httpx.AsyncClient(event_hooks={"response": [raise_for_provider_status]})

    The error body (at most 64 KiB) is read so its code and message can be classified, and
    the response is closed. 1xx/2xx/3xx responses pass through untouched.
    """
    if response.status_code < 400:
        return
    content = await read_error_body(response)
    raise error_from_body(
        response.status_code, parse_error_body(content), retry_after_of(response.headers)
    )
