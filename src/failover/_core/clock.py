"""Time, injected: the breaker, cool-downs, retry waits and timeouts all read it from here.

A :class:`Clock` gives monotonic seconds, sleeps, and cancel scopes with a deadline on its own
time line. The default is the event loop's real time; :class:`failover.testing.FakeClock`
moves only when a test advances it, so tests of TTLs, waits and timeouts never sleep.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, runtime_checkable


class Scope(Protocol):
    """A cancel scope as :meth:`Clock.cancel_scope` returns it (an ``anyio.CancelScope``)."""

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...


@runtime_checkable
class Clock(Protocol):
    """What failover needs from time."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch matching :meth:`now`, for human-readable timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock's time line (cancellable)."""
        ...

    def cancel_scope(self, seconds: float) -> Scope:
        """A cancel scope that cancels itself once ``seconds`` have passed on this clock."""
        ...


def to_wall(clock: Clock, monotonic: float) -> float:
    """Convert a reading of ``clock.now()`` into epoch seconds."""
    return clock.wall() - (clock.now() - monotonic)
