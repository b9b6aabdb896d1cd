"""The feed of recent switches and transitions, as the old manager logged them.

Two sources, neither on the hot path:

- the ``failover`` logger's records, through a logging handler (the library already says
  "Marking X unhealthy", "Credit issue on X", "Breaker X/op: open -> half_open" there; the
  handler sees what the logger's level lets through: WARNING by default, INFO for transitions
  and rate limits);
- the difference between two snapshots: which platform an operation now selects ("Selected"),
  and which platforms completed calls since the last look ("Completed ... using"). Logging
  these per call would cost every call; comparing snapshots costs nothing per call.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from failover._observe.scrub import ScrubbingFilter, get_logger

#: How many feed lines a page gets when it opens.
FEED_SIZE: Final = 200


class Feed:
    """A bounded list of feed lines, each with a sequence number a client resumes from."""

    def __init__(self, clock: Callable[[], float], size: int = FEED_SIZE) -> None:
        self._lines: deque[dict[str, Any]] = deque(maxlen=size)
        self._numbers = itertools.count(1)
        self._clock = clock
        self.last = 0

    def add(self, level: str, text: str) -> None:
        self.last = next(self._numbers)
        self._lines.append({"seq": self.last, "time": self._clock(), "level": level, "text": text})

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Lines after ``seq``, oldest first."""
        return [line for line in self._lines if line["seq"] > seq]


class FeedHandler(logging.Handler):
    """Copies the ``failover`` logger's records into every live :class:`Feed`.

    One handler for the process, however many dashboards: a record does not say which manager
    it came from, and a feed that is no longer referenced drops out by itself.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.feeds: weakref.WeakSet[Feed] = weakref.WeakSet()
        # Records of child loggers reach a handler without passing the parent's filter.
        self.addFilter(ScrubbingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        level, text = record.levelname.lower(), record.getMessage()
        for feed in list(self.feeds):
            feed.add(level, text)


_HANDLER: Final = FeedHandler()


def attach(feed: Feed) -> None:
    """Copy the ``failover`` logger's records into ``feed`` while it lives."""
    logger = get_logger("failover")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    _HANDLER.feeds.add(feed)


def _selected(operation: dict[str, Any]) -> str | None:
    return next((row["platform"] for row in operation["platforms"] if row["usable"]), None)


def compare(old: dict[str, Any] | None, new: dict[str, Any], feed: Feed) -> None:
    """Feed lines for what changed between two snapshots: switches and completed calls."""
    if old is None:
        return
    before = {operation["name"]: operation for operation in old["operations"]}
    for operation in new["operations"]:
        previous = before.get(operation["name"])
        if previous is None:
            continue
        name = operation["name"]
        was, now = _selected(previous), _selected(operation)
        if was != now:
            if now is None:
                feed.add("warning", f"No usable platform for {name} (was {was})")
            else:
                feed.add("info", f"Selected platform {now} for {name} (was {was or 'none'})")
        _completed(previous, operation, feed)


def _completed(old: dict[str, Any], new: dict[str, Any], feed: Feed) -> None:
    counts = {row["platform"]: row["requests"] - row["failures"] for row in old["platforms"]}
    done = []
    for row in new["platforms"]:
        answered = row["requests"] - row["failures"] - counts.get(row["platform"], 0)
        if answered > 0:
            done.append(f"{row['platform']} ×{answered}")
    if done:
        feed.add("debug", f"Completed {new['name']} using {', '.join(done)}")
