"""One call, three paths: the plain walk, a hedged walk and the last resort record the same.

The same scenarios run through a manager without policies, one whose operation hedges (with a
delay no attempt reaches, so the race never starts a second lane) and, where every platform is
unavailable, through the last resort reached from either. The attempt records and the call
span's totals must be identical: an attempt means one thing whichever driver made it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    AllPlatformsFailed,
    BadRequest,
    CreditExhausted,
    Hedge,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Transient,
)
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

OP = "text_generation"
SPAN_TOTALS = ("failover.platform", "failover.attempts", "failover.fallbacks")


@dataclass(frozen=True)
class Scenario:
    name: str
    script: dict[str, list[Any]]
    keyless: tuple[str, ...] = ()  #: platforms whose key variable is not set
    opened: tuple[str, ...] = ()  #: platforms forced open before the call
    expected: dict[str, Any] = field(default_factory=dict)  #: the span totals


SCENARIOS = [
    Scenario(
        "no key on alpha, beta answers",
        {"beta": ["ok"]},
        keyless=("alpha",),
        expected={"failover.platform": "beta", "failover.attempts": 1, "failover.fallbacks": 0},
    ),
    Scenario(
        "alpha transient, beta answers",
        {"alpha": [Transient()], "beta": ["ok"]},
        expected={"failover.platform": "beta", "failover.attempts": 2, "failover.fallbacks": 1},
    ),
    Scenario(
        "alpha open, beta answers",
        {"beta": ["ok"]},
        opened=("alpha",),
        expected={"failover.platform": "beta", "failover.attempts": 1, "failover.fallbacks": 1},
    ),
    Scenario(
        "alpha out of credits, beta rate limited, gamma answers",
        {"alpha": [CreditExhausted()], "beta": [RateLimited(retry_after=5)], "gamma": ["ok"]},
        expected={"failover.platform": "gamma", "failover.attempts": 3, "failover.fallbacks": 2},
    ),
    Scenario(
        "every platform fails",
        {"alpha": [Transient()], "beta": [Transient()], "gamma": [Transient()]},
        expected={"failover.attempts": 3, "failover.fallbacks": 2},
    ),
    Scenario(
        "no key on alpha, beta's request fault ends the call",
        {"beta": [BadRequest("bad")]},
        keyless=("alpha",),
        expected={"failover.attempts": 1, "failover.fallbacks": 0},
    ),
    Scenario(
        "every platform open: the last resort probes the soonest",
        {"alpha": ["ok"]},
        opened=("alpha", "beta", "gamma"),
        expected={"failover.platform": "alpha", "failover.attempts": 1, "failover.fallbacks": 2},
    ),
    Scenario(
        "every platform open, no key on gamma: the probe fails",
        {"alpha": [Transient()]},
        keyless=("gamma",),
        opened=("alpha", "beta"),
        expected={"failover.attempts": 1, "failover.fallbacks": 1},
    ),
]


@pytest.fixture
def tracing() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def make_manager(
    scenario: Scenario, provider: TracerProvider, hedge: Hedge | None
) -> PlatformManager:
    specs = [
        PlatformSpec(name, f"{name}-1", api_key_env=f"{name.upper()}_KEY")
        for name in ("alpha", "beta", "gamma")
    ]
    environ = {f"{name.upper()}_KEY": "k" for name in ("alpha", "beta", "gamma")}
    for name in scenario.keyless:
        del environ[f"{name.upper()}_KEY"]
    manager = PlatformManager(
        {OP: specs},
        clock=FakeClock(),
        environ=environ,
        tracer_provider=provider,
        policy=Policy(hedge=hedge),
    )
    for name in scenario.opened:
        manager.force_open(name, OP, seconds=60 + 10 * ["alpha", "beta", "gamma"].index(name))
    return manager


async def run_call(
    scenario: Scenario, tracing: tuple[InMemorySpanExporter, TracerProvider], hedge: Hedge | None
) -> tuple[list[tuple[Any, ...]], dict[str, Any], str]:
    """The call's attempt records, its span totals and how it ended."""
    exporter, provider = tracing
    exporter.clear()
    manager = make_manager(scenario, provider, hedge)
    operation = ScriptedOperation(scenario.script)
    records: Sequence[Any] = ()
    try:
        _, spec = await manager.with_fallback(OP, operation)
        ended = f"answered by {spec.name}"
    except AllPlatformsFailed as failed:
        records = failed.attempts
        ended = "AllPlatformsFailed"
    except BadRequest:
        ended = "BadRequest"
    call = next(span for span in exporter.get_finished_spans() if span.name == f"failover {OP}")
    attributes = call.attributes or {}
    totals = {key: attributes[key] for key in SPAN_TOTALS if key in attributes}
    described = [
        (a.platform, a.outcome, a.attempt, a.skip_reason, a.error_kind, a.last_resort)
        for a in records
    ]
    return described, totals, ended


PATHS: dict[str, Hedge | None] = {"plain": None, "hedged": Hedge(delay=5)}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_plain_and_hedged_calls_record_the_same(
    scenario: Scenario, tracing: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    plain = await run_call(scenario, tracing, PATHS["plain"])
    hedged = await run_call(scenario, tracing, PATHS["hedged"])
    assert hedged == plain
    assert plain[1] == scenario.expected


async def test_the_last_resort_counts_like_the_walk(
    tracing: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    """A probe that answers after the walk passed every platform over: one attempt, each
    platform passed over a fallback, exactly as a walk that skipped them and then answered."""
    last_resort = next(s for s in SCENARIOS if s.name.startswith("every platform open:"))
    walked = Scenario(
        "beta and gamma open, alpha answers third in line",
        {"alpha": ["ok"]},
        opened=("beta", "gamma"),
    )
    _, probed, _ = await run_call(last_resort, tracing, None)
    exporter, provider = tracing
    exporter.clear()
    manager = make_manager(walked, provider, None)
    manager._routes[OP].pairs = tuple(reversed(manager._routes[OP].pairs))  # gamma, beta, alpha
    await manager.with_fallback(OP, ScriptedOperation(walked.script))
    call = next(span for span in exporter.get_finished_spans() if span.name == f"failover {OP}")
    attributes = call.attributes or {}
    assert probed == {key: attributes[key] for key in SPAN_TOTALS}
