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
    #: A programming error in the caller's operation (see ``classify``): not the provider's
    #: failure; it propagates at once and changes no breaker, cool-down or counter.
    CALLER_BUG = "caller_bug"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one error.

    ``reason`` refines ``REQUEST`` errors (``bad_request``, ``content_policy``,
    ``context_window``, ``not_found``) and labels an attempt timeout (``attempt_timeout``, a
    ``TRANSIENT`` failure); ``retry_after`` is the provider's hint in seconds.
    """

    kind: ErrorKind
    reason: str | None = None
    retry_after: float | None = None
    status_code: int | None = None

    @property
    def label(self) -> str:
        """What health (``last_error_kind``) and telemetry (``failover.error.kind``) show: the
        kind, or for a labelled transient failure (an attempt timeout) its reason."""
        if self.reason is not None and self.kind is ErrorKind.TRANSIENT:
            return self.reason
        return self.kind.value


#: A per-platform classifier: return a verdict, or ``None`` to fall through to the defaults.
Classifier = Callable[[BaseException], "Classification | None"]

TRANSIENT: Final = Classification(ErrorKind.TRANSIENT)
CANCELLED: Final = Classification(ErrorKind.CANCELLED)
CALLER_BUG: Final = Classification(ErrorKind.CALLER_BUG)
ATTEMPT_TIMEOUT: Final = Classification(ErrorKind.TRANSIENT, reason="attempt_timeout")
