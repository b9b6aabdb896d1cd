"""Time, injected: the breaker, cool-downs, retry waits and timeouts all read it from here.

A :class:`Clock` gives monotonic seconds, sleeps, and cancel scopes with a deadline on its own
time line. The default is the event loop's real time; :class:`failover.testing.FakeClock`
moves only when a test advances it, so tests of TTLs, waits and timeouts never sleep.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio


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

    def cancel_scope(self, seconds: float) -> anyio.CancelScope:
        """A cancel scope that cancels itself once ``seconds`` have passed on this clock."""
        ...


class MonotonicClock:
    """Real time: ``time.monotonic`` and anyio's own deadlines and sleep."""

    __slots__ = ("_wall_offset",)

    def __init__(self) -> None:
        self._wall_offset = time.time() - time.monotonic()

    #: ``time.monotonic`` itself: read on every attempt, so no Python frame around it.
    now = staticmethod(time.monotonic)

    def wall(self) -> float:
        return time.monotonic() + self._wall_offset

    def to_wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def cancel_scope(self, seconds: float) -> anyio.CancelScope:
        return anyio.CancelScope(deadline=anyio.current_time() + seconds)


def to_wall(clock: Clock, monotonic: float) -> float:
    """Convert a reading of ``clock.now()`` into epoch seconds."""
    return clock.wall() - (clock.now() - monotonic)
