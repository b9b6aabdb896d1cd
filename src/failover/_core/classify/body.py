"""A provider's error answer (status, headers, body) -> :class:`Classification`.

:func:`parse_error_body` reads the JSON error dialects providers really send (see
:mod:`.providers` and docs/providers.md) into an :class:`ErrorBody`: its codes and message.
:func:`classify_body` hands those words to :func:`.rules.classify_status`, after the few
structured facts a word list cannot see (Gemini's ``API_KEY_INVALID`` arrives as a 400, its
``RetryInfo`` delay turns a quota message into a wait). :func:`classify_answer` does both from
the raw parts of any HTTP client's response.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from failover._core.classify.kinds import Classification, ErrorKind
from failover._core.classify.providers import BAD_KEY_CODES, QUOTA_CODES, STATUS_OF_ERROR_TYPE
from failover._core.classify.retry_after import parse_retry_after, retry_after_of
from failover._core.classify.rules import classify_status

#: Error bodies are read up to this many bytes; the rest is dropped unread.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024

_GOOGLE_RETRY_DELAY: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_TAG: Final = re.compile(r"<[^>]*>")


class ErrorBody(NamedTuple):
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


def classify_body(
    status: int | None, body: ErrorBody, retry_after: float | None = None
) -> Classification:
    """Classify a provider error from its status (``None`` for an error event inside a
    stream, which is then inferred from the error type) and its parsed body."""
    codes = {code.lower() for code in body.codes}
    if status is None:
        status = next((STATUS_OF_ERROR_TYPE[c] for c in codes if c in STATUS_OF_ERROR_TYPE), 500)
    if retry_after is None:
        retry_after = body.retry_delay
    if not codes.isdisjoint(BAD_KEY_CODES):
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 429 and body.retry_delay is not None and codes.isdisjoint(QUOTA_CODES):
        # Gemini's per-minute and per-day quotas say "exceeded your current quota ...
        # billing" but come with a RetryInfo delay: a wait, not an empty account.
        return Classification(ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status)
    return classify_status(status, body.text(), retry_after)


def classify_answer(
    status: int, headers: Mapping[str, str], content: bytes | str
) -> Classification:
    """Classify a provider's error answer from its parts, whatever the HTTP client: the
    status, the (case-insensitive) headers and the body read so far (``b""`` if unread)."""
    return classify_body(status, parse_error_body(content), retry_after_of(headers))
