"""The rules: an HTTP status and the words of its body -> :class:`Classification` (DESIGN §2).

:func:`classify_status` decides from a status code and lower-cased body text;
:func:`classify_words` decides from a message alone, for exceptions that carry no status.
Generic words live here (credit, quota, billing, payment, balance; rate limit; bad key); the
codes and phrases particular providers write are in :mod:`.providers`.
"""

from __future__ import annotations

import re
from typing import Final

from failover._core.classify.kinds import TRANSIENT, Classification, ErrorKind
from failover._core.classify.providers import (
    BAD_KEY_WORDS,
    CONTENT_POLICY_WORDS,
    CONTEXT_WINDOW_WORDS,
    CREDIT_REQUEST_WORDS,
    LOCKED_ACCOUNT_WORDS,
    QUOTA_CODES,
    RATE_LIMIT_CODES,
    RATE_LIMIT_HINTS,
)
from failover._core.classify.retry_after import retry_after_in_words

#: Credit, quota and billing words. "balance" must not match "load balancer".
_CREDIT_PATTERN: Final = re.compile(
    r"insufficient_quota|credit|quota|billing|payment|prepaid|prepayment|(?<!load )balance(?!r)"
)
#: Rate-limit words in a plain message.
_RATE_LIMIT_WORDS: Final = ("rate limit", "rate_limit", "too many requests")
#: Bad-key words in a plain message.
_AUTH_WORDS: Final = ("invalid api key", "invalid_api_key", "incorrect api key", "unauthorized")


def has(text: str, words: tuple[str, ...]) -> bool:
    """Whether any of ``words`` occurs in ``text``."""
    return any(word in text for word in words)


def credit(text: str) -> bool:
    """Whether ``text`` speaks of credit, quota, billing, payment or balance."""
    return _CREDIT_PATTERN.search(text) is not None


def request_reason(text: str) -> str:
    """Why a request was refused: ``content_policy``, ``context_window`` or ``bad_request``."""
    if has(text, CONTENT_POLICY_WORDS):
        return "content_policy"
    if has(text, CONTEXT_WINDOW_WORDS):
        return "context_window"
    return "bad_request"


def classify_status(
    status: int, text: str = "", retry_after: float | None = None
) -> Classification:
    """Classify an HTTP status with its (lower-cased) body text, as DESIGN §2 describes."""
    if status == 402:
        return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
    if status == 429:
        # An empty account can arrive as a 429 (OpenAI's insufficient_quota, Gemini's billing
        # RESOURCE_EXHAUSTED). A rate-limit message may mention billing ("add a payment
        # method to raise your limit"), so an explicit rate-limit code wins over credit words,
        # and so does a wait the message names ("please retry in 37.5s").
        if has(text, QUOTA_CODES):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        in_words = retry_after_in_words(text)
        if retry_after is None:
            retry_after = in_words
        if has(text, RATE_LIMIT_CODES) or has(text, RATE_LIMIT_HINTS) or in_words is not None:
            return Classification(
                ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status
            )
        if credit(text):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        return Classification(ErrorKind.RATE_LIMITED, retry_after=retry_after, status_code=status)
    if status == 401:
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 403:
        if credit(text) or has(text, LOCKED_ACCOUNT_WORDS):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        # A moderated prompt answered with 403 is the request's fault, not a bad key
        # (cooling the platform would punish everyone else).
        if has(text, CONTENT_POLICY_WORDS):
            return Classification(ErrorKind.REQUEST, reason="content_policy", status_code=status)
        return Classification(ErrorKind.AUTH, status_code=status)
    if status == 408 or status >= 500:
        return Classification(ErrorKind.TRANSIENT, status_code=status)
    if status == 404:
        return Classification(ErrorKind.REQUEST, reason="not_found", status_code=status)
    if 400 <= status < 500:
        if has(text, CREDIT_REQUEST_WORDS):
            return Classification(ErrorKind.CREDIT_EXHAUSTED, status_code=status)
        if has(text, BAD_KEY_WORDS):
            return Classification(ErrorKind.AUTH, status_code=status)
        if status == 413:
            return Classification(ErrorKind.REQUEST, reason="context_window", status_code=status)
        return Classification(ErrorKind.REQUEST, reason=request_reason(text), status_code=status)
    return Classification(ErrorKind.TRANSIENT, status_code=status)


def classify_words(text: str) -> Classification:
    """Classify a message that comes without a status (lower-cased); transient if it says
    nothing failover recognises."""
    if credit(text):
        return Classification(ErrorKind.CREDIT_EXHAUSTED)
    if has(text, _RATE_LIMIT_WORDS):
        return Classification(ErrorKind.RATE_LIMITED)
    if has(text, _AUTH_WORDS):
        return Classification(ErrorKind.AUTH)
    if has(text, CONTENT_POLICY_WORDS):
        return Classification(ErrorKind.REQUEST, reason="content_policy")
    if has(text, CONTEXT_WINDOW_WORDS):
        return Classification(ErrorKind.REQUEST, reason="context_window")
    return TRANSIENT
