"""Where the endpoints get their data: one snapshot per refresh interval, shared by every client.

No background task: the first request after the interval takes a new snapshot (and compares it
with the last, for the feed); the others reuse it. With no page open, the dashboard costs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio

from failover.web._feed import Feed, compare

Source = Callable[[], Awaitable[dict[str, Any]]]


class Hub:
    """Snapshots from ``source`` at most once per ``refresh`` seconds, and the feed."""

    def __init__(
        self,
        source: Source,
        refresh: float,
        feed: Feed,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._now = now
        self.refresh = refresh
        self.feed = feed
        self._taken_at = -float("inf")
        self._current: dict[str, Any] | None = None
        self._encoded = ""
        self._lock = anyio.Lock()
        self.version = 0

    async def current(self) -> dict[str, Any]:
        """The latest snapshot, taken now if the last one is older than ``refresh``."""
        async with self._lock:
            if self._current is None or self._now() - self._taken_at >= self.refresh:
                fresh = await self.source()
                self._taken_at = self._now()
                compare(self._current, fresh, self.feed)
                encoded = json.dumps(fresh["operations"], sort_keys=True)
                if encoded != self._encoded:
                    self.version += 1
                    self._encoded = encoded
                self._current = fresh
            return self._current

    async def updates(
        self, feed_from: int = 0
    ) -> AsyncGenerator[tuple[dict[str, Any], list[dict[str, Any]]], None]:
        """Stream of ``(snapshot, new feed lines)``; yields when either changed, or every
        15 s so proxies keep the connection open."""
        seen_version, seen_feed, quiet_since = -1, feed_from, time.monotonic()
        while True:
            current = await self.current()
            lines = self.feed.since(seen_feed)
            if self.version != seen_version or lines or time.monotonic() - quiet_since >= 15:
                seen_version = self.version
                if lines:
                    seen_feed = lines[-1]["seq"]
                quiet_since = time.monotonic()
                yield current, lines
            await anyio.sleep(self.refresh)
