"""What kind of failure is this exception? :func:`classify` reads what it carries and decides.

Pure, no I/O, standard library only. It reads, in order: the platform's own classifiers;
httpx's errors (below); failover's own exception types; a status found by duck typing
(``status_code``, ``.response.status_code``, ``status``, ``code``) with its headers and body
text; and finally the message's words. Anything failover cannot classify counts as transient.

**httpx without importing httpx.** httpx is failover's HTTP layer, and its errors get the
provider-aware reading (body dialects, ``retry-after-ms``, Gemini's ``RetryInfo``) with no
set-up. The core imports nothing outside the standard library, so it recognises httpx's
errors by their classes' names: an exception raised from the ``httpx`` package (or from
``httpx2``, its fork under another name) whose class hierarchy includes ``HTTPStatusError``
is read through its ``.response`` (``status_code``, ``headers``, ``content``: all
duck-typed), and one that includes ``RequestError`` (timeouts, refused and dropped
connections) is transient. A registration hook installed by
``failover.http`` on import was the alternative, and was rejected: the verdict on one and the
same exception would then depend on whether something happened to import ``failover.http``
first, so an application calling httpx directly would see its errors read one way in a
script and another in its test suite. The names are httpx's public exception hierarchy; the
check costs one string comparison for any other exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from failover._core import validate
from failover._core.classify.body import classify_answer
from failover._core.classify.kinds import (
    ATTEMPT_TIMEOUT,
    CALLER_BUG,
    CANCELLED,
    TRANSIENT,
    Classification,
    Classifier,
    ErrorKind,
)
from failover._core.classify.retry_after import retry_after_header
from failover._core.classify.rules import classify_status, classify_words
from failover._core.errors import AttemptTimeout, BadRequest, Closed, ProviderError, RateLimited
from failover._core.text import exception_text

#: Programming errors: raised by an operation, they are the caller's bug, not the provider's
#: failure (``ErrorKind.CALLER_BUG``). ``NameError`` covers ``UnboundLocalError``,
#: ``ImportError`` covers ``ModuleNotFoundError``, ``LookupError`` covers ``KeyError`` and
#: ``IndexError``. Not ``ValueError``: a provider's malformed answer raises one
#: (``json.JSONDecodeError``, ``UnicodeDecodeError``), so it stays transient. ``Closed``: an
#: HTTP adapter used after it was closed.
CALLER_BUGS: Final = (
    Closed,
    TypeError,
    NameError,
    AttributeError,
    ImportError,
    AssertionError,
    NotImplementedError,
    LookupError,
    ZeroDivisionError,
    RecursionError,
)


def is_caller_bug(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`CALLER_BUGS` (and carries no HTTP status: an SDK error
    subclassing ``TypeError`` with a ``status_code`` is the provider's answer)."""
    return isinstance(exc, CALLER_BUGS) and _status_of(exc) is None


def caller_bugs_as_failures(exc: BaseException) -> Classification | None:
    """A platform classifier that opts back in: the programming errors of :data:`CALLER_BUGS`
    count as that platform's transient failures (for code that genuinely fails per provider,
    such as a per-provider response parser)."""
    return TRANSIENT if is_caller_bug(exc) else None


#: The httpx exception classes read here, by name (see the module docstring), and the
#: packages they come from: httpx, and httpx2, its fork under another name (pydantic/httpx2,
#: which google-genai uses; its timeouts reach failover unwrapped).
_HTTPX_STATUS_ERROR: Final = "HTTPStatusError"
_HTTPX_REQUEST_ERROR: Final = "RequestError"
_HTTPX_PACKAGES: Final = ("httpx", "httpx2")


def classify(exc: BaseException, classifiers: tuple[Classifier, ...] = ()) -> Classification:
    """Classify ``exc``. ``classifiers`` (per platform) are asked first, in order.

    Never raises for an exception: a classifier that raises, or answers anything but a
    :class:`Classification`, has no say, and an exception whose text or
    attributes cannot be read is transient. Only the first 4,096 characters of its message
    are read.
    """
    # asyncio's CancelledError and trio's Cancelled are BaseExceptions, like KeyboardInterrupt
    # and SystemExit: none is the platform's fault. Checking the class, not the running
    # loop's cancellation type, keeps this usable outside an event loop.
    if not isinstance(exc, Exception):
        validate.instance("exc", exc, BaseException, "an exception")
        return CANCELLED
    if type(classifiers) is not tuple:  # the engine passes tuples; users may pass anything
        classifiers = validate.callables("classifiers", classifiers)
    for classifier in classifiers:
        try:
            verdict = classifier(exc)
        except Exception:
            # A classifier is asked about exceptions nobody chose (a raising __str__, a
            # proxy whose attributes raise): one that fails has no say, and the failure is
            # still booked. Raising here would lose the attempt and leak the permit.
            continue
        if isinstance(verdict, Classification):
            return verdict
    try:
        return _classify_builtin(exc, classifiers)
    except Exception:
        # Reading the exception raised (a property, a __getattr__): it says nothing
        # failover can trust, and "transient" is what an unknown failure is.
        return TRANSIENT


def _classify_builtin(exc: Exception, classifiers: tuple[Classifier, ...]) -> Classification:
    """:func:`classify` after the platform's own classifiers had no verdict."""
    if type(exc).__module__.startswith("httpx"):
        verdict = _classify_httpx(exc)
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
        retry_after = retry_after_header(headers) if headers else None
        return classify_status(status, _body_text(exc), retry_after)
    if isinstance(exc, AttemptTimeout):
        return ATTEMPT_TIMEOUT
    if isinstance(exc, CALLER_BUGS):
        # A KeyError('quota') or an AttributeError on `.balance` is a bug in the caller's
        # code: its message must not cool a platform, nor its raising open a breaker.
        return CALLER_BUG
    if isinstance(exc, OSError | ArithmeticError):
        # Timeouts and connection errors are OSErrors; an OverflowError's words say nothing
        # a provider meant.
        return TRANSIENT
    return classify_words(_body_text(exc))


def _classify_httpx(exc: Exception) -> Classification | None:
    """httpx's ``HTTPStatusError`` by its response, any ``RequestError`` as transient;
    ``None`` for httpx's other exceptions (they take the generic path)."""
    names = {
        cls.__name__
        for cls in type(exc).__mro__
        if cls.__module__.partition(".")[0] in _HTTPX_PACKAGES
    }
    if _HTTPX_STATUS_ERROR in names:
        response = exc.response  # type: ignore[attr-defined]
        try:
            content = response.content
        except Exception:  # httpx.ResponseNotRead: a streamed body nobody read
            content = b""
        return classify_answer(response.status_code, response.headers, content)
    if _HTTPX_REQUEST_ERROR in names:
        return TRANSIENT
    return None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


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
    parts.append(exception_text(exc))
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
