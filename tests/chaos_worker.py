"""One process of the fault-injection fleet (``tests/test_fleet_chaos.py``).

``python tests/chaos_worker.py JSON``: calls ``text_generation`` every few milliseconds through
a manager sharing state on the given Redis, and answers commands (JSON lines on stdin) with
JSON lines on stdout. The primary (openai) is dead; groq and anthropic answer. Its wall clock
is offset by ``FAILOVER_TEST_WALL_SKEW`` seconds: a skewed host.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from failover import PlatformManager, Transient
from failover._engine.clock import MonotonicClock
from failover.redis import RedisSharedState

OP = "text_generation"
PRIORITIES = {
    OP: [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b"), ("anthropic", "claude-3-haiku")]
}
ENVIRON = {"OPENAI_API_KEY": "sk-a", "GROQ_API_KEY": "gsk-b", "ANTHROPIC_API_KEY": "sk-ant-c"}


class SkewedClock(MonotonicClock):
    """This host's wall clock, ``skew`` seconds off (what a badly synchronised host reads)."""

    __slots__ = ("skew",)

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def wall(self) -> float:
        return time.time() + self.skew

    def to_wall(self, monotonic: float) -> float:
        return time.time() + self.skew - (time.monotonic() - monotonic)


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def emit(**message: Any) -> None:
    print(json.dumps(message), flush=True)


async def main(params: dict[str, Any]) -> None:
    logs = Counter()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.WARNING)
    manager = PlatformManager(
        PRIORITIES,
        failure_threshold=3,
        cache_ttl_seconds=params["ttl"],
        probe_lease_seconds=params["lease"],
        environ=ENVIRON,
        clock=SkewedClock(float(os.environ.get("FAILOVER_TEST_WALL_SKEW", "0"))),
        shared_state=RedisSharedState(params["url"], params["namespace"]),
    )
    probes: list[float] = []  # wall times (this machine's true clock) of primary attempts
    stats = {"calls": 0, "failed": 0, "cancelled": 0}
    hang_primary = params.get("hang_primary", False)
    paused = False  # set by the "pause" command, cleared by "resume"

    async def op(spec: Any) -> str:
        if spec.name == "openai":
            probes.append(time.time())
            if hang_primary:
                emit(event="probing")
                await anyio.sleep_forever()
            raise Transient("503 from the provider")
        return str(spec.name)

    async def traffic() -> None:
        while True:
            while paused:
                await anyio.sleep(0.01)
            try:
                if params.get("cancel"):
                    # Random short deadlines: some cut a lease request in flight.
                    with anyio.move_on_after(random.uniform(0, 0.004)) as scope:
                        await manager.with_fallback(OP, op)
                    stats["cancelled"] += scope.cancelled_caught
                else:
                    await manager.with_fallback(OP, op)
                stats["calls"] += 1
            except Exception:
                stats["failed"] += 1
            await anyio.sleep(0.01)

    def state(platform: str) -> str:
        value: str = manager.get_health_status()[platform]["operations"][OP]["state"]
        return value

    async with manager, anyio.create_task_group() as tasks:
        tasks.start_soon(traffic)
        emit(event="ready")
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line.strip():
                break
            command = json.loads(line)
            what = command["do"]
            if what == "reset":
                manager.reset(command["platform"], OP)
            elif what == "force_open":
                manager.force_open(command["platform"], OP, command["seconds"])
            elif what in ("pause", "resume"):
                paused = what == "pause"
            shared = manager.shared_state
            assert isinstance(shared, RedisSharedState)
            emit(
                event="state",
                states={name: state(name) for name in ("openai", "groq", "anthropic")},
                connected=shared.connected,
                probes=probes,
                logs=logs.lines,
                **stats,
            )
        tasks.cancel_scope.cancel()


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    anyio.run(main, arguments, backend=arguments.get("backend", "asyncio"))
