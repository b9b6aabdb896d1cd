"""What the walk asks its driver to do: the only points where a call waits.

The walk (:mod:`failover._engine.walk`) is a generator of these effects: it decides, books,
and yields an effect whenever something must happen in time (run the operation, sleep before
a retry, wait for a bulkhead slot, ask the fleet for a probe lease). A driver executes each
effect its own way (``drive_async`` awaits, a synchronous driver blocks) and sends the outcome
back. An exception the driver meets while waiting (cancellation, a deadline) is thrown into
the walk at the effect that waited, so the walk's own cleanup runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from failover._core.breaker import Permit
    from failover._engine.call import Operation
    from failover._engine.route import Pair
    from failover.policies.bulkhead import Limiter


class Invoke(NamedTuple):
    """Run one attempt: ``func`` on ``pair`` (in its attempt timeout and span) -> :class:`Tried`."""

    pair: Pair
    func: Operation


class Sleep(NamedTuple):
    """Wait ``seconds`` on the manager's clock -> ``None``."""

    seconds: float


class Slot(NamedTuple):
    """Wait up to its ``max_wait`` for a slot of ``limiter`` (none was free) -> ``bool``."""

    limiter: Limiter


class Lease(NamedTuple):
    """Ask the fleet for the probe lease of ``permit`` on ``pair`` -> ``bool`` (if not, the
    fleet gave the permit back)."""

    pair: Pair
    permit: Permit


Effect = Invoke | Sleep | Slot | Lease


class Tried:
    """How an :class:`Invoke` went: its answer, or the exception and whether it was the
    caller's cancellation (never counted, re-raised unchanged)."""

    __slots__ = ("cancelled", "ended", "ok", "started", "value")

    def __init__(
        self, ok: bool, value: Any, started: float, ended: float, cancelled: bool = False
    ) -> None:
        self.ok = ok
        self.value = value
        self.started = started
        self.ended = ended
        self.cancelled = cancelled
