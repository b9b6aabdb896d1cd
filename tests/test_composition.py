"""The documented composition order, proven by recording the order in which each layer is entered.

deadline -> ordering -> hedging -> retry -> breaker admission -> bulkhead -> attempt timeout
-> chaos -> operation (``docs/policies.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest
import tenacity

from failover import (
    Bulkhead,
    Chaos,
    Hedge,
    PlatformManager,
    PlatformSpec,
    Policy,
    Retry,
    Transient,
)
from failover._core.breaker import PairBreaker, Permit
from failover.policies.bulkhead import Limiter
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "text_generation"
DEADLINE, HEDGE_DELAY, TIMEOUT, RETRY_WAIT = 100.0, 50.0, 20.0, 0.5


class RecordingClock(FakeClock):
    """A fake clock that names the layer behind each timer it is asked for."""

    def __init__(self, entries: list[str]) -> None:
        super().__init__(autojump=True)
        self.entries = entries

    def cancel_scope(self, seconds: float) -> anyio.CancelScope:
        labels = {DEADLINE: "deadline", TIMEOUT: "attempt timeout"}
        self.entries.append(labels.get(seconds, "hedge timer"))
        return super().cancel_scope(seconds)

    async def sleep(self, seconds: float) -> None:
        self.entries.append("retry wait" if seconds == RETRY_WAIT else "chaos")
        await super().sleep(seconds)


async def test_layers_are_entered_in_the_documented_order(monkeypatch: pytest.MonkeyPatch) -> None:
    entries: list[str] = []
    admit = PairBreaker.admit
    try_acquire = Limiter.try_acquire

    def recording_admit(self: PairBreaker) -> Permit | None:
        entries.append("breaker admission")
        return admit(self)

    def recording_try_acquire(self: Limiter) -> bool:
        entries.append("bulkhead")
        return try_acquire(self)

    monkeypatch.setattr(PairBreaker, "admit", recording_admit)
    monkeypatch.setattr(Limiter, "try_acquire", recording_try_acquire)

    def ordering(
        operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Sequence[PlatformSpec]:
        entries.append("ordering")
        return platforms

    failures = [Transient("503", status_code=503)]

    async def operation(platform: PlatformSpec) -> str:
        entries.append("operation")
        if failures:
            raise failures.pop()
        return "ok"

    manager = PlatformManager(
        {OP: [("alpha", "a"), ("beta", "b")]},
        clock=RecordingClock(entries),
        environ={},
        ordering=ordering,
        policy=Policy(
            deadline=DEADLINE,
            attempt_timeout=TIMEOUT,
            retry=Retry(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(RETRY_WAIT)),
            bulkhead=Bulkhead(5),
        ),
        operation_policies={OP: Policy(hedge=Hedge(delay=HEDGE_DELAY))},
        chaos=Chaos(latency_rate=1.0, latency=0.0),
    )

    assert (await manager.with_fallback(OP, operation))[0] == "ok"

    one_attempt = ["breaker admission", "bulkhead", "attempt timeout", "chaos", "operation"]
    assert entries == [
        "deadline",
        "ordering",
        "hedge timer",
        *one_attempt,
        "retry wait",
        *one_attempt,
    ]
