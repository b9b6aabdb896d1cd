"""httpx errors and responses -> failover's error kinds and exceptions.

The decisions are :func:`failover._core.classify.classify_status`'s (status code plus body words);
this module reads what an httpx response carries so that function sees the right words: the
provider's error code, type and message from the JSON body shapes providers really send, and
the wait from ``Retry-After``, ``retry-after-ms`` or Gemini's ``RetryInfo``. A few structured
facts a word list cannot see (Gemini's ``API_KEY_INVALID`` arrives as a 400) are read here.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx

from failover._core.classify import Classification, ErrorKind, classify_status, parse_retry_after
from failover._core.errors import (
    AuthFailed,
    BadRequest,
    CreditExhausted,
    ProviderError,
    RateLimited,
    Transient,
)
from failover._observe.scrub import Scrubber

#: Error bodies are read up to this many bytes; the rest is dropped unread.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
#: Longest provider message kept in an exception's text.
MAX_MESSAGE_CHARS: Final = 200

_DEFAULT_SCRUB: Final = Scrubber()

# The status an error *type* arrives with, for errors that come without one: an error event
# in the middle of a server-sent-events stream (Anthropic's ``event: error``, OpenAI's
# ``data: {"error": ...}``).
_STATUS_OF_TYPE: Final = {
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "invalid_request_error": 400,
}
_GOOGLE_RETRY_DELAY: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_TAG: Final = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What a provider's error body says: its codes (type, code, status, name, reason) and
    its human message. Both empty when the body is not a known JSON shape."""

    codes: tuple[str, ...] = ()
    message: str = ""
    retry_delay: float | None = None

    def text(self) -> str:
        """Lower-cased words for :func:`classify_status`."""
        return " ".join((*self.codes, self.message)).lower()


def parse_error_body(content: bytes | str) -> ErrorBody:
    """Read the error shapes of OpenAI-compatible APIs, Anthropic, Gemini, Stability,
    Replicate and FAL (see docs/providers.md); anything else gives its raw text as message."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    text = text[:MAX_ERROR_BODY_BYTES]
    try:
        data = json.loads(text)
    except ValueError:
        if text.lstrip().startswith("<"):  # a gateway's HTML page: keep its words
            text = _TAG.sub(" ", text)
        return ErrorBody(message=" ".join(text.split())[:4096])
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        data = data[0]  # Gemini's OpenAI-compatible endpoint wraps its error in a list
    if not isinstance(data, Mapping):
        return ErrorBody(message=str(data)[:4096])
    codes: list[str] = []
    messages: list[str] = []
    retry_delay: float | None = None
    error = data.get("error")
    if isinstance(error, Mapping):
        # OpenAI {"error": {message, type, param, code}}, Anthropic {"type": "error",
        # "error": {type, message}}, Gemini {"error": {code, message, status, details}}.
        _add_codes(codes, error, ("type", "code", "status"))
        _add_message(messages, error.get("message"))
        details = error.get("details")
        if isinstance(details, list):
            for detail in details:
                if not isinstance(detail, Mapping):
                    continue
                _add_codes(codes, detail, ("reason",))
                delay = detail.get("retryDelay")
                if isinstance(delay, str) and (match := _GOOGLE_RETRY_DELAY.match(delay)):
                    retry_delay = parse_retry_after(float(match.group(1)))
    elif isinstance(error, str):
        _add_message(messages, error)  # xAI: {"code": "...", "error": "..."}
    # Stability {"name", "errors": [...]}, Replicate {"title", "detail"}, FAL {"detail"},
    # and plain {"message"} / {"code"} bodies.
    _add_codes(codes, data, ("name", "title", "code"))
    if error is None:
        _add_codes(codes, data, ("type",))
    errors = data.get("errors")
    if isinstance(errors, list):
        for item in errors:
            _add_message(messages, item)
    detail = data.get("detail")
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc", "msg", "type"}]
        for item in detail:
            if isinstance(item, Mapping):
                _add_codes(codes, item, ("type",))
                _add_message(messages, item.get("msg"))
    else:
        _add_message(messages, detail)
    _add_message(messages, data.get("message"))
    return ErrorBody(tuple(codes), " ".join(messages)[:4096], retry_delay)


def _add_codes(codes: list[str], source: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = source.get(key)
        if isinstance(value, str) and value and value not in codes and len(value) <= 100:
            codes.append(value)


def _add_message(messages: list[str], value: object) -> None:
    if isinstance(value, str) and value.strip():
        messages.append(" ".join(value.split()))


def retry_after_of(headers: httpx.Headers | Mapping[str, str]) -> float | None:
    """The provider's wait hint in seconds: ``retry-after-ms`` (OpenAI, more precise), else
    ``Retry-After`` (seconds or an HTTP date); capped by :func:`parse_retry_after`."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return parse_retry_after(float(milliseconds) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def classify_body(
    status: int | None, body: ErrorBody, retry_after: float | None = None
) -> Classification:
    """Classify a provider error from its status (``None`` for an error event inside a
    stream, which is then inferred from the error type) and its parsed body."""
    codes = {code.lower() for code in body.codes}
    if status is None:
        status = next((_STATUS_OF_TYPE[c] for c in codes if c in _STATUS_OF_TYPE), 500)
    if retry_after is None:
        retry_after = body.retry_delay
    if "api_key_invalid" in codes:  # Gemini answers a bad key with 400 INVALID_ARGUMENT
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 429 and body.retry_delay is not None and "insufficient_quota" not in codes:
        # Gemini's per-minute and per-day quotas say "exceeded your current quota ...
        # billing" but come with a RetryInfo delay: a wait, not an empty account.
        return Classification(ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status)
    return classify_status(status, body.text(), retry_after)


def classify_response(response: httpx.Response) -> Classification:
    """Classify a finished (non-2xx) response. Its body is used if it was read."""
    try:
        content = response.content
    except httpx.ResponseNotRead:
        content = b""
    return classify_body(
        response.status_code, parse_error_body(content), retry_after_of(response.headers)
    )


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
        try:
            content = error.content
        except httpx.ResponseNotRead:
            content = b""
        return error_from_body(
            error.status_code, parse_error_body(content), retry_after_of(error.headers), scrub
        )
    if isinstance(error, httpx.TimeoutException):
        return Transient(f"timeout ({type(error).__name__})", status_code=None)
    detail = scrub(str(error))[:MAX_MESSAGE_CHARS]
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
    """

    __slots__ = ("_finished", "_iterator", "response")

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._iterator = response.aiter_bytes()
        self._finished = False

    async def next_bytes(self) -> bytes | None:
        """The next chunk, or ``None`` at the end of the body."""
        try:
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

    async def aclose(self) -> None:
        """Close the response and finish the iterator (shielded from cancellation)."""
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
