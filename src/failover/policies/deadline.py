"""The deadline: how long a whole call may take, across every platform, wait and retry.

``Policy(deadline=...)`` per manager or operation. The driver runs the call inside it; when it
passes, the call ends with :class:`~failover.AllPlatformsFailed` ("deadline ... exceeded").
"""

from __future__ import annotations

from failover.policies.base import Strategy


class Deadline(Strategy):
    """The ``call_limit`` hook of one operation."""

    __slots__ = ("seconds",)

    name = "deadline"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def call_limit(self) -> float | None:
        return self.seconds
