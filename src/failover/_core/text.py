"""Text of objects failover did not make: exceptions and the values of bad arguments.

An exception reaches failover from anyone's code, and so does a wrong argument. Its
``__str__`` or ``__repr__`` may raise, return something that is not a string, recurse past
the interpreter's limit (a list nested 3,000 deep), refuse outright (an ``int`` of more than
4,300 digits) or be ten megabytes long. Whatever failover writes about such an object (a
classification's words, a span's status, a log line, a ``ConfigError``) goes through here, so
writing it never raises and never costs more than the bounded length it shows.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXCEPTION_TEXT_LIMIT", "SHOWN_LIMIT", "exception_text", "shown"]

#: How much of an exception's text is read by default (the classifier reads bodies as far).
EXCEPTION_TEXT_LIMIT: Final = 4096
#: How long a value shown in an error message may be.
SHOWN_LIMIT: Final = 200


def exception_text(exc: BaseException, limit: int = EXCEPTION_TEXT_LIMIT) -> str:
    """``str(exc)``, at most ``limit`` characters; a placeholder naming the type when it
    cannot be had."""
    try:
        text = str(exc)
    except Exception:  # a raising __str__, or one that returns something else
        return f"<{_type_name(exc)}: message unavailable>"
    return text if len(text) <= limit else text[:limit]


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` for an error message: at most ``limit`` characters (an ellipsis marks
    a cut), a description when the value will not say what it is."""
    if isinstance(value, int) and not isinstance(value, bool) and _digits(value) > limit:
        return f"<an integer of {_digits(value)} digits>"
    try:
        text = repr(value)
    except Exception:  # RecursionError for deep nesting is an Exception too
        return f"<a {_type_name(value)} that cannot be shown>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digits(value: int) -> int:
    """Decimal digits of ``value``, without converting it to text (which Python refuses
    above ``sys.get_int_max_str_digits()``)."""
    magnitude = abs(value)
    if magnitude.bit_length() < 64:
        return len(str(magnitude))
    # log10(2) * bits over-counts by at most one; a power of ten settles it.
    digits = int(magnitude.bit_length() * 0.30102999566398120) + 1
    return digits - 1 if magnitude < 10 ** (digits - 1) else digits


def _type_name(value: object) -> str:
    name = getattr(type(value), "__qualname__", None)
    return name if isinstance(name, str) else "object"
