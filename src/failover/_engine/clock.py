"""Real time for the engine: the default :class:`~failover._core.clock.Clock`."""

from __future__ import annotations

import time

import anyio


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
