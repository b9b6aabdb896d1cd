"""Real time for the engine: the default :class:`~failover._core.clock.Clock`."""

from __future__ import annotations

import time

import anyio


class MonotonicClock:
    """Real time: ``time.monotonic`` and anyio's own deadlines and sleep.

    Wall-clock time is read afresh each time (never as an offset fixed at construction), so a
    step of the system clock after start (NTP, a VM resumed) shows in timestamps at once.
    Nothing that crosses processes is a wall-clock time (``failover._engine.fleet``).
    """

    __slots__ = ()

    #: ``time.monotonic`` itself: read on every attempt, so no Python frame around it.
    now = staticmethod(time.monotonic)

    def wall(self) -> float:
        return time.time()

    def to_wall(self, monotonic: float) -> float:
        return time.time() - (time.monotonic() - monotonic)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def cancel_scope(self, seconds: float) -> anyio.CancelScope:
        return anyio.CancelScope(deadline=anyio.current_time() + seconds)
