"""What kind of failure is this? Exceptions and HTTP-shaped errors -> :class:`ErrorKind`.

Pure functions, no I/O: they read what an exception carries (failover's own types, a
``status_code`` or ``.response.status_code`` found by duck typing, a JSON body, message words)
and decide. Anything failover cannot classify counts as transient.
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from failover._core.errors import BadRequest, ProviderError, RateLimited


class ErrorKind(enum.StrEnum):
    """The failure classes that drive what happens to a platform (DESIGN §2)."""

    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    CREDIT_EXHAUSTED = "credit_exhausted"
    AUTH = "auth"
    REQUEST = "request"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one error.

    ``reason`` refines ``REQUEST`` errors (``bad_request``, ``content_policy``,
    ``context_window``, ``not_found``); ``retry_after`` is the provider's hint in seconds.
    """

    kind: ErrorKind
    reason: str | None = None
    retry_after: float | None = None
    status_code: int | None = None


#: A per-platform classifier: return a verdict, or ``None`` to fall through to the defaults.
Classifier = Callable[[BaseException], "Classification | None"]

TRANSIENT: Final = Classification(ErrorKind.TRANSIENT)
CANCELLED: Final = Classification(ErrorKind.CANCELLED)

#: Credit, quota and billing words. "balance" must not match "load balancer".
_CREDIT_PATTERN: Final = re.compile(
    r"insufficient_quota|credit|quota|billing|payment|prepaid|prepayment|(?<!load )balance(?!r)"
)
#: A 429 that says when to come back (Gemini's RetryInfo, per-minute limits) is a rate limit
#: even when its message mentions quota.
_RATE_LIMIT_HINTS: Final = ("retryinfo", "retrydelay", "retry_delay", "per minute", "perminute")
_CONTENT_POLICY_WORDS: Final = (
    "content_policy",
    "content policy",
    "content_filter",
    "safety system",
    "moderation",
    "content filtering",
    "flagged as sensitive",
    "nsfw",
)
_CONTEXT_WINDOW_WORDS: Final = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "maximum number of tokens",
)
_RATE_LIMIT_WORDS: Final = ("rate limit", "rate_limit", "too many requests")
#: Explicit rate-limit codes in provider bodies (not the generic "Too Many Requests" reason).
_RATE_LIMIT_CODES: Final = (
    "rate_limit_exceeded",
    "rate_limit_error",
    "rate limit reached",
    "rate limit exceeded",
)
_AUTH_WORDS: Final = ("invalid api key", "invalid_api_key", "incorrect api key", "unauthorized")

#: Exception types that signal a bug, never a provider's answer: their message words are ignored.
_PROGRAMMING_ERRORS: Final = (
    LookupError,
    AttributeError,
    TypeError,
    NameError,
    ImportError,
    AssertionError,
    NotImplementedError,
    ArithmeticError,
    RecursionError,
)

#: Upper bound on any Retry-After a provider sends (a hostile or buggy header cannot park
#: a platform for a day). The manager applies its own, configurable cap on top.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date).

    Returns ``None`` when the value is missing or unreadable; clamps to
    ``[0, MAX_RETRY_AFTER_SECONDS]``.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            # Imported here: email.utils pulls in socket, urllib and calendar (~10 ms at
            # import time) and only an HTTP-date Retry-After needs it.
            import email.utils

            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
    else:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _status_of(exc: BaseException) -> int | None:
    for candidate in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        getattr(exc, "status", None),
        getattr(exc, "code", None),
    ):
        if (
            isinstance(candidate, int)
            and not isinstance(candidate, bool)
            and 100 <= candidate <= 599
        ):
            return candidate
    return None


def _headers_of(exc: BaseException) -> Mapping[str, Any] | None:
    for owner in (getattr(exc, "response", None), exc):
        headers = getattr(owner, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            return headers  # type: ignore[no-any-return]
    return None


def _body_text(exc: BaseException) -> str:
    """Everything the error says about itself, lower-cased, for word matching."""
    parts: list[str] = []
    body = getattr(exc, "body", None)
    if body is not None:
        parts.append(_to_text(body))
    for attr in ("code", "type"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            parts.append(value)
    response = getattr(exc, "response", None)
    if response is not None:
        text = _response_text(response)
        if text:
            parts.append(text)
    parts.append(str(exc))
    return " ".join(parts).lower()


def _response_text(response: object) -> str:
    # httpx raises ResponseNotRead for a streamed response whose body was not read; any
    # such failure just means there is no body to look at.
    try:
        text = getattr(response, "text", None)
    except Exception:
        return ""
    if isinstance(text, str):
        return text[:4096]
    content = getattr(response, "content", None)
    if isinstance(content, bytes):
        return content[:4096].decode("utf-8", "replace")
    return ""


def _to_text(body: object) -> str:
    if isinstance(body, str):
        return body[:4096]
    if isinstance(body, bytes):
        return body[:4096].decode("utf-8", "replace")
    try:
        return json.dumps(body, default=str)[:4096]
    except (TypeError, ValueError):
        return ""


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(word in text for word in words)


def _credit(text: str) -> bool:
    return _CREDIT_PATTERN.search(text) is not None


def _request_reason(text: str) -> str:
    if _has(text, _CONTENT_POLICY_WORDS):
        return "content_policy"
    if _has(text, _CONTEXT_WINDOW_WORDS):
        return "context_window"
    return "bad_request"


def classify_status(
    status: int, text: str = "", retry_after: float | None = None
) -> Classification:
    """Classify an HTTP status with its (lower-cased) body text, as DESIGN §2 describes."""
    if status == 402:
        return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
    if status == 429:
        # OpenAI's insufficient_quota and Gemini's billing RESOURCE_EXHAUSTED arrive as 429.
        # A rate-limit message may mention billing ("add a payment method to raise your
        # limit"), so an explicit rate-limit code wins over credit words.
        if "insufficient_quota" in text:
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        if _has(text, _RATE_LIMIT_CODES) or _has(text, _RATE_LIMIT_HINTS):
            return Classification(
                ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status
            )
        if _credit(text):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        return Classification(ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status)
    if status == 401:
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 403:
        # FAL: 403 "User is locked. Reason: Exhausted balance."
        if _credit(text) or "locked" in text:
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        # Stability answers a moderated prompt with 403 content_moderation: the request's
        # fault, not a bad key (cooling the platform would punish everyone else).
        if _has(text, _CONTENT_POLICY_WORDS):
            return Classification(ErrorKind.REQUEST, reason="content_policy", status_code=status)
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 408 or status >= 500:
        return Classification(ErrorKind.TRANSIENT, status_code=status)
    if status == 404:
        return Classification(ErrorKind.REQUEST, reason="not_found", status_code=status)
    if 400 <= status < 500:
        # Anthropic: 400 "Your credit balance is too low".
        if "credit balance" in text or _has(text, ("billing", "insufficient credit")):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        if status == 413:
            return Classification(ErrorKind.REQUEST, reason="context_window", status_code=status)
        return Classification(ErrorKind.REQUEST, reason=_request_reason(text), status_code=status)
    return Classification(ErrorKind.TRANSIENT, status_code=status)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def classify(exc: BaseException, classifiers: tuple[Classifier, ...] = ()) -> Classification:
    """Classify ``exc``. ``classifiers`` (per platform) are asked first, in order."""
    # asyncio's CancelledError and trio's Cancelled are BaseExceptions, like KeyboardInterrupt
    # and SystemExit: none is the platform's fault. Checking the class, not the running
    # loop's cancellation type, keeps this usable outside an event loop.
    if not isinstance(exc, Exception):
        return CANCELLED
    for classifier in classifiers:
        verdict = classifier(exc)
        if verdict is not None:
            return verdict
    if type(exc).__module__.startswith("httpx"):
        # httpx is failover's HTTP layer: its errors get the provider-aware reading of
        # failover.http (body shapes, retry-after-ms, Gemini's RetryInfo) without any set-up.
        from failover.http._classify import classify_http

        verdict = classify_http(exc)
        if verdict is not None:
            return verdict
    if isinstance(exc, ExceptionGroup):
        # An operation that fans out (a task group) fails with a group: its first leaf speaks
        # for it, so a CreditExhausted inside still cools the platform.
        return classify(_first_leaf(exc), classifiers)
    if isinstance(exc, ProviderError):
        return Classification(
            ErrorKind(type(exc).kind_name),
            reason=exc.reason if isinstance(exc, BadRequest) else None,
            retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
            status_code=exc.status_code,
        )
    status = _status_of(exc)
    if status is not None:
        headers = _headers_of(exc)
        retry_after = None
        if headers:
            # httpx headers ignore case; a plain dict from a hand-made error does not.
            value = headers.get("retry-after")
            retry_after = parse_retry_after(headers.get("Retry-After") if value is None else value)
        return classify_status(status, _body_text(exc), retry_after)
    if isinstance(exc, (OSError, *_PROGRAMMING_ERRORS)):
        # Timeouts and connection errors are OSErrors; a KeyError('quota') or an
        # AttributeError on `.balance` is a bug in the caller's code, and its message must
        # not cool a whole platform as if the provider had said "out of credits".
        return TRANSIENT
    text = _body_text(exc)
    if text:
        if _credit(text):
            return Classification(ErrorKind.CREDIT_EXHAUSTED)
        if _has(text, _RATE_LIMIT_WORDS):
            return Classification(ErrorKind.RATE_LIMITED)
        if _has(text, _AUTH_WORDS):
            return Classification(ErrorKind.AUTH)
        if _has(text, _CONTENT_POLICY_WORDS):
            return Classification(ErrorKind.REQUEST, reason="content_policy")
        if _has(text, _CONTEXT_WINDOW_WORDS):
            return Classification(ErrorKind.REQUEST, reason="context_window")
    return TRANSIENT
