"""Keep secrets out of everything failover writes.

The values of every configured ``api_key_env`` variable (read when scrubbing, so a key set
later is covered too) and anything shaped like a bearer token or a provider key are replaced
by ``[REDACTED]`` in log lines, span attributes, events and exception text. Providers echo
keys back in their errors (OpenAI: "Incorrect API key provided: sk-..."), so scrubbing looks at
the text itself, not only at where it came from.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Final

from failover._core.text import exception_text

REDACTED: Final = "[REDACTED]"
#: How much of an exception's message a log line keeps.
_EXCEPTION_LOG_CHARS: Final = 2048

_KEY_SHAPES: Final = re.compile(
    r"(?:sk|pk|rk|gsk|xai|key|r8|hf|fal)[-_][A-Za-z0-9_\-\*\.]{6,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=:/\+\*]{6,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
)
#: Values shorter than this are not scrubbed by value (they would redact ordinary words).
_MIN_SECRET_LENGTH: Final = 6


class Scrubber:
    """Redacts the values of the given environment variables, and key-shaped tokens."""

    __slots__ = ("__weakref__", "_environ", "_names")

    def __init__(self, names: Iterable[str] = (), environ: Mapping[str, str] | None = None):
        self._names: frozenset[str] = frozenset(names)
        self._environ = os.environ if environ is None else environ

    def with_names(self, names: Iterable[str]) -> Scrubber:
        return Scrubber(self._names | frozenset(names), self._environ)

    def secrets(self) -> list[str]:
        values = []
        for name in self._names:
            value = self._environ.get(name)
            if value and len(value) >= _MIN_SECRET_LENGTH:
                values.append(value)
        # Longest first, so a key that contains another is redacted whole.
        return sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets():
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _KEY_SHAPES.sub(REDACTED, text)


#: Every live manager's scrubber: log records are scrubbed against all of them, because a
#: record does not say which manager it came from.
_LIVE: weakref.WeakSet[Scrubber] = weakref.WeakSet()
_DEFAULT = Scrubber()


def register(scrubber: Scrubber) -> None:
    """Include ``scrubber``'s secrets in what failover's loggers redact (while it lives)."""
    _LIVE.add(scrubber)


def scrub_everywhere(text: str) -> str:
    """Redact the secrets of every live manager, and key-shaped tokens, from ``text``."""
    for scrubber in list(_LIVE):
        text = scrubber(text)
    return _DEFAULT(text)


class ScrubbingFilter(logging.Filter):
    """Formats a record's message and redacts secrets from it (and from exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # An argument whose __str__ raises: a filter that raises would fail the
            # library's own call at the logging line, so the template stands in.
            message = f"{record.msg} <arguments that cannot be shown>"
        cleaned = scrub_everywhere(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks carry provider messages; keep the type, drop the traceback.
            exc = record.exc_info[1]
            record.exc_info = None
            record.exc_text = None
            text = scrub_everywhere(exception_text(exc, 2 * _EXCEPTION_LOG_CHARS))
            record.msg = f"{record.msg} [{type(exc).__name__}: {text[:_EXCEPTION_LOG_CHARS]}]"
        return True


_FILTER: Final = ScrubbingFilter()


def get_logger(name: str = "failover") -> logging.Logger:
    """A ``failover`` logger with the scrubbing filter installed (filters do not propagate,
    so every logger the library logs through must come from here)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
