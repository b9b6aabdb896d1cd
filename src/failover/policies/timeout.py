"""The attempt timeout: how long one attempt on a platform may take.

``Policy(attempt_timeout=...)`` at any level; the driver bounds each attempt with it and turns
its expiry into :class:`AttemptTimeout`, a transient failure of that platform.
"""

from __future__ import annotations

from failover._core.errors import AttemptTimeout
from failover.policies.base import PairView, Strategy

__all__ = ["ATTEMPT_TIMEOUT", "AttemptTimeout", "AttemptTimeoutStrategy"]


class AttemptTimeoutStrategy(Strategy):
    """The ``attempt_limit`` hook, read from each pair's resolved policy."""

    __slots__ = ()

    name = "attempt_timeout"

    def attempt_limit(self, pair: PairView) -> float | None:
        return pair.policy.attempt_timeout


#: Shared: the timeout itself is per pair (its policy).
ATTEMPT_TIMEOUT = AttemptTimeoutStrategy()
