"""Hedging: when a platform is slow to answer, start the next one in parallel.

With ``Policy(hedge=Hedge(delay=...))`` on an operation, the chain starts the first usable
platform; if it has not answered after ``delay`` seconds (or after that platform's observed
p95 with ``delay_from_p95=True``), the next usable platform starts beside it, up to
``max_hedges`` extra platforms. The first success wins; the others are cancelled cleanly:
their breaker permits are given back and nothing is counted against them. A platform that
fails is replaced by the next one at once, as in the plain chain.

Each platform runs as a *lane*: the ordinary walk over that one platform (admission,
bulkhead, retries, attempt spans, bookkeeping), so a hedge behaves exactly like a fallback
except for when it starts. Attempt spans of lanes started beside a running one carry
``failover.hedge=true``. This module holds the setting and its decision (``hedge_delay``); the
racing itself is the driver's (``failover._engine.drive_async.hedge``).

Hedging trades money for latency: a hedged call may be billed by two or more providers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from failover._core import validate
from failover.policies.base import PairView, Strategy


@dataclass(frozen=True, slots=True)
class Hedge:
    """Start up to ``max_hedges`` more platforms when the running one is slower than ``delay``.

    ``delay_from_p95=True`` uses the running platform's observed p95 response time instead,
    once it has ``min_samples`` timed calls (``delay`` until then). Set per operation
    (``operation_policies={"text_generation": Policy(hedge=Hedge(0.8))}``) or for the
    manager; ``max_hedges=0`` switches an inherited hedge off. Off by default.
    """

    delay: float = 1.0
    max_hedges: int = 1
    delay_from_p95: bool = False
    min_samples: int = 20

    def __post_init__(self) -> None:
        # inf is allowed: a hedge that never starts (switched off).
        delay = validate.seconds(
            "delay", self.delay, at_least=0, allow_inf=True, label="Hedge.delay"
        )
        object.__setattr__(self, "delay", delay)
        for name in ("max_hedges", "min_samples"):
            validate.integer(name, getattr(self, name), at_least=0, label=f"Hedge.{name}")
        validate.flag("delay_from_p95", self.delay_from_p95, label="Hedge.delay_from_p95")

    @property
    def enabled(self) -> bool:
        return self.max_hedges > 0 and not math.isinf(self.delay)

    def delay_for(self, pair: PairView) -> float:
        """Seconds to give ``pair`` before hedging it."""
        if self.delay_from_p95:
            stats = pair.stats
            if stats.timed_count >= self.min_samples:
                p95 = stats.p95_response_time
                if p95 is not None:
                    return p95
        return self.delay


#: Hedging switched off (to override an inherited :class:`Hedge`).
NO_HEDGE = Hedge(max_hedges=0)


class HedgeStrategy(Strategy):
    """The ``hedge_delay`` hook of one operation's :class:`Hedge`."""

    __slots__ = ("hedge",)

    name = "hedge"

    def __init__(self, hedge: Hedge) -> None:
        self.hedge = hedge

    def hedge_delay(self, pair: PairView, fired: int) -> float | None:
        if fired >= self.hedge.max_hedges:
            return None
        return self.hedge.delay_for(pair)
