"""How long a provider asks us to wait: ``Retry-After`` and ``retry-after-ms``, or the wait
its message writes in words; capped."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Final

from failover._core.classify.providers import WAIT_PHRASES

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


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The provider's wait hint in seconds from a response's (case-insensitive) headers:
    ``retry-after-ms`` (OpenAI, more precise), else ``Retry-After`` (seconds or an HTTP
    date); capped by :func:`parse_retry_after`."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return parse_retry_after(float(milliseconds) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def retry_after_header(headers: Mapping[str, object]) -> float | None:
    """``Retry-After`` from headers that may be case-sensitive (a plain dict on a hand-made
    error, ``email.message.Message`` on urllib's ``HTTPError``): either spelling is read."""
    value = headers.get("retry-after")
    return parse_retry_after(headers.get("Retry-After") if value is None else value)


_WAIT_PHRASES: Final = tuple(re.compile(pattern) for pattern in WAIT_PHRASES)
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
#: A duration's units: seconds = amount * multiplier / divisor (milliseconds divide, so
#: "820ms" is 0.82 s exactly, not 0.8200000000000001).
_UNITS: Final = {"h": (3600.0, 1.0), "m": (60.0, 1.0), "s": (1.0, 1.0), "ms": (1.0, 1000.0)}


def retry_after_in_words(text: str) -> float | None:
    """The wait a (lower-cased) error message writes in words, in seconds, capped: "please
    retry in 37.5s", "try again in 2h42m9.504s", "resets in ~30s" (the phrases of
    :data:`~.providers.WAIT_PHRASES`); ``None`` when it names none."""
    for phrase in _WAIT_PHRASES:
        match = phrase.search(text)
        if match is None:
            continue
        duration = match.group(1)
        parts = _DURATION_PART.findall(duration)
        if not parts:  # a bare number: seconds
            return parse_retry_after(float(duration))
        return parse_retry_after(
            sum(float(amount) * _UNITS[unit][0] / _UNITS[unit][1] for amount, unit in parts)
        )
    return None
