"""The vocabulary of a verdict: :class:`ErrorKind` and :class:`Classification`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


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
