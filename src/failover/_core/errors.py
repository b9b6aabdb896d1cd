"""failover's exceptions.

A shallow hierarchy users can catch at the level they care about:

* :class:`ProviderError` and its kinds are raised *by users' operations* (or by the
  ``failover.http`` adapters) to tell failover what went wrong without status-code guessing.
* :class:`AllPlatformsFailed` is raised *by failover* when no platform answered.
* :class:`ConfigError` is raised for bad configuration or API misuse, naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from failover._core.text import shown

if TYPE_CHECKING:
    from failover._core.classify import ErrorKind


class FailoverError(Exception):
    """Base class of every exception failover defines."""


class CheckInconclusive(FailoverError):
    """Raised by a health check that could not tell whether the platform is healthy (its
    provider has no request to ask, say): the check changes nothing."""


class Closed(FailoverError, RuntimeError):
    """Something closed was used: a manager entered again after it closed, or an HTTP
    adapter called after its manager (or the adapter itself) closed it. The caller's bug:
    nothing is counted against a platform for it."""


class ConfigError(FailoverError, ValueError):
    """A setting or argument is wrong. The message names where, which key, and what is wrong."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        super().__init__(f"{source}: {message}" if source else message)


class UnknownOperation(ConfigError, LookupError):
    """An operation type the manager has no priority list for."""

    def __init__(self, operation: object, known: Sequence[str]):
        self.operation = operation
        self.known = tuple(known)
        said = shown(operation)
        super().__init__(
            f"unknown operation type {said}; known: {', '.join(self.known) or '(none)'}",
            key=operation if isinstance(operation, str) else said,
        )


class ProviderError(FailoverError):
    """An error from a provider, already classified by whoever raises it.

    Raise a subclass from an operation (``raise CreditExhausted("out of credits")``) and
    failover applies the matching consequence without looking at status codes or messages.
    """

    kind_name: ClassVar[str] = "transient"

    def __init__(self, message: str = "", *, status_code: int | None = None):
        self.status_code = status_code
        super().__init__(message or type(self).__name__)


class Transient(ProviderError):
    """A failure worth retrying or falling back from: 5xx, timeout, connection error."""

    kind_name = "transient"


class RateLimited(ProviderError):
    """The provider asked us to slow down; ``retry_after`` seconds when it said so."""

    kind_name = "rate_limited"

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
    ):
        if retry_after is not None:
            # Imported here: validate raises this module's ConfigError.
            from failover._core import validate

            # inf is allowed: a provider that says "not before the end of time" is believed
            # (the chain caps every wait at rate_limit_max_seconds).
            retry_after = validate.number(
                "retry_after",
                retry_after,
                at_least=0,
                allow_inf=True,
                kind="",
                label="RateLimited(retry_after=...)",
            )
        self.retry_after = retry_after
        super().__init__(message, status_code=status_code)


class CreditExhausted(ProviderError):
    """Out of credits, quota or billing: the whole platform cools down (never permanently)."""

    kind_name = "credit_exhausted"


class AuthFailed(ProviderError):
    """The key was refused (401/403): the whole platform cools down, logged as a key problem."""

    kind_name = "auth"


class BadRequest(ProviderError):
    """The request's own fault; platform health is untouched.

    ``reason`` is ``"bad_request"`` (default: raised at once), ``"content_policy"`` or
    ``"context_window"`` (default: the next platform is tried).
    """

    kind_name = "request"

    def __init__(
        self, message: str = "", *, reason: str = "bad_request", status_code: int | None = 400
    ):
        self.reason = reason
        super().__init__(message, status_code=status_code)


class AttemptTimeout(TimeoutError):
    """An attempt ran past its ``attempt_timeout``; a transient failure of that platform,
    labelled ``attempt_timeout`` in health and telemetry (the caller's limit, not the
    provider's error)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"attempt timed out after {seconds:g}s")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one platform during one call.

    ``outcome`` is ``"success"``, ``"failure"``, ``"skipped"`` or ``"cancelled"``. For a skip,
    ``skip_reason`` says why (``open``, ``credit``, ``auth``, ``rate_limited``,
    ``missing_api_key``, ...). ``error`` keeps the original exception for inspection; it is
    never part of any message failover writes.

    ``last_resort`` is set on what the chain did after every platform was found unavailable
    (see ``when_all_unavailable``): ``"probe_soonest"`` on the early probe's attempt,
    ``"wait"`` on a ``"skipped"`` record of the wait, whose ``duration`` is the time waited.
    """

    platform: str
    model: str
    operation: str
    outcome: str
    attempt: int = 0
    error_type: str | None = None
    error_kind: ErrorKind | None = None
    status_code: int | None = None
    duration: float | None = None
    skip_reason: str | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)
    last_resort: str | None = None

    def describe(self) -> str:
        """One line for humans; contains no message text from the provider."""
        if self.outcome == "skipped":
            line = f"{self.platform}/{self.model}: skipped ({self.skip_reason})"
            if self.last_resort == "wait" and self.duration is not None:
                line += f", waited {self.duration:.3f}s for it as a last resort"
            return line
        parts = [f"{self.platform}/{self.model}: {self.outcome}"]
        if self.error_type:
            detail = self.error_type
            if self.error_kind is not None:
                detail += f", {self.error_kind.value}"
            if self.status_code is not None:
                detail += f", HTTP {self.status_code}"
            parts.append(f"({detail})")
        if self.duration is not None:
            parts.append(f"after {self.duration:.3f}s")
        if self.last_resort == "probe_soonest":
            parts.append("(last-resort probe)")
        return " ".join(parts)


class AllPlatformsFailed(FailoverError, RuntimeError):
    """No platform could serve the operation. ``attempts`` tells the whole story."""

    def __init__(self, operation: str, attempts: Sequence[Attempt], reason: str | None = None):
        self.operation = operation
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        self.reason = reason
        lines = [f"all platforms failed for {operation!r}"]
        if reason:
            lines[0] += f" ({reason})"
        if not self.attempts:
            lines.append("  no platform was tried")
        lines.extend(f"  - {attempt.describe()}" for attempt in self.attempts)
        super().__init__("\n".join(lines))

    @property
    def last_error(self) -> BaseException | None:
        """The exception of the last failed attempt, if any."""
        for attempt in reversed(self.attempts):
            if attempt.error is not None:
                return attempt.error
        return None
