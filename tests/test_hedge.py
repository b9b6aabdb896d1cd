"""Hedging: a slow platform gets a parallel hedge after the delay; first success wins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import tenacity
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    NO_HEDGE,
    AllPlatformsFailed,
    ConfigError,
    Hedge,
    PlatformManager,
    PlatformSpec,
    Policy,
    Retry,
    Transient,
)
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

OP = "text_generation"
PLATFORMS = [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]


def make_manager(clock: FakeClock, hedge: Hedge | None, **kwargs: Any) -> PlatformManager:
    return PlatformManager(
        {OP: PLATFORMS},
        clock=clock,
        environ={},
        operation_policies={OP: Policy(hedge=hedge)},
        **kwargs,
    )


class Timed:
    """An operation answering after ``latency[name]`` seconds on the fake clock."""

    def __init__(self, clock: FakeClock, latency: dict[str, float], fail: set[str] = set()):  # noqa: B006
        self.clock = clock
        self.latency = latency
        self.fail = fail
        self.started: list[tuple[str, float]] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, platform: PlatformSpec) -> str:
        self.started.append((platform.name, self.clock.now()))
        try:
            await self.clock.sleep(self.latency.get(platform.name, 0.0))
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(platform.name)
            raise
        if platform.name in self.fail:
            raise Transient("503", status_code=503)
        self.finished.append(platform.name)
        return f"answer from {platform.name}"


def health(manager: PlatformManager, name: str) -> dict[str, Any]:
    return manager.get_health_status()[name]["operations"][OP]  # type: ignore[no-any-return]


async def run(manager: PlatformManager, operation: Timed, out: list[Any]) -> None:
    out.append(await manager.with_fallback(OP, operation))


async def test_hedge_starts_next_platform_only_after_the_delay() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    operation = Timed(clock, {"alpha": 10.0, "beta": 0.5})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha"]
        clock.advance(0.999)
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha"]
        clock.advance(0.001)
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha", "beta"]
        assert operation.started[1][1] == pytest.approx(1001.0)
        clock.advance(0.5)
    assert out == [("answer from beta", manager.platforms(OP)[1])]


async def test_loser_is_cancelled_and_not_counted_as_a_failure() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    operation = Timed(clock, {"alpha": 10.0, "beta": 0.5})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
    assert len(out) == 1
    assert operation.cancelled == ["alpha"]
    assert operation.finished == ["beta"]
    alpha, beta = health(manager, "alpha"), health(manager, "beta")
    assert (alpha["failures"], alpha["total_requests"], alpha["consecutive_failures"]) == (0, 0, 0)
    assert alpha["state"] == "closed"
    assert (beta["failures"], beta["total_requests"]) == (0, 1)
    # A cancelled hedge gives its permit back: a later call on alpha is admitted at once.
    assert (await manager.get_platform(OP)).name == "alpha"


async def test_first_success_wins_even_when_the_original_answers_first() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    operation = Timed(clock, {"alpha": 1.5, "beta": 1.0})  # beta would answer at 2.0
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
        await anyio.wait_all_tasks_blocked()
        clock.advance(5.0)
    assert [result for result, _ in out] == ["answer from alpha"]
    assert operation.finished == ["alpha"]
    assert operation.cancelled == ["beta"]
    assert health(manager, "beta")["total_requests"] == 0


async def test_at_most_max_hedges_extra_platforms_run() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0, max_hedges=1))
    operation = Timed(clock, {"alpha": 100.0, "beta": 100.0, "gamma": 0.1})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        for _ in range(5):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha", "beta"]
        clock.advance(95.0)  # alpha answers at 1100, beta would at 1101
    assert out[0][0] == "answer from alpha"


async def test_a_failed_platform_is_replaced_at_once_without_using_a_hedge() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=5.0, max_hedges=1))
    operation = Timed(clock, {"alpha": 0.1, "beta": 100.0, "gamma": 0.2}, fail={"alpha"})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.1)  # alpha fails: beta starts now, as a plain fallback
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha", "beta"]
        assert operation.started[1][1] == pytest.approx(1000.1)
        clock.advance(5.0)  # beta slow for the delay: gamma hedges it
        await anyio.wait_all_tasks_blocked()
        assert [name for name, _ in operation.started] == ["alpha", "beta", "gamma"]
        clock.advance(0.2)
    assert out[0][0] == "answer from gamma"
    assert health(manager, "alpha")["failures"] == 1
    assert operation.cancelled == ["beta"]


async def test_all_lanes_failing_raises_all_platforms_failed_with_every_attempt() -> None:
    clock = FakeClock(autojump=True)
    manager = make_manager(clock, Hedge(delay=1.0, max_hedges=2))
    operation = Timed(clock, {}, fail={"alpha", "beta", "gamma"})
    with pytest.raises(AllPlatformsFailed) as info:
        await manager.with_fallback(OP, operation)
    assert [(a.platform, a.outcome) for a in info.value.attempts] == [
        ("alpha", "failure"),
        ("beta", "failure"),
        ("gamma", "failure"),
    ]


async def test_delay_from_p95_uses_the_platforms_observed_p95() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=30.0, delay_from_p95=True, min_samples=20))
    alpha = manager.platforms(OP)[0]
    for index in range(20):
        await manager.report_success(alpha, OP, response_time=0.1 * (index + 1))
    # p95 (nearest rank) of 0.1 .. 2.0 is 1.9
    operation = Timed(clock, {"alpha": 100.0, "beta": 0.1})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.89)
        await anyio.wait_all_tasks_blocked()
        assert len(operation.started) == 1
        clock.advance(0.01)
        await anyio.wait_all_tasks_blocked()
        assert len(operation.started) == 2
        clock.advance(0.1)
    assert out[0][0] == "answer from beta"


async def test_caller_cancellation_cancels_every_lane_and_counts_nothing() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    operation = Timed(clock, {"alpha": 100.0, "beta": 100.0})
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, [])
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    assert sorted(operation.cancelled) == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        assert health(manager, name)["failures"] == 0
        assert health(manager, name)["state"] == "closed"


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


async def test_each_hedge_has_its_own_attempt_span_marked_as_hedge(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0), tracer_provider=provider)
    operation = Timed(clock, {"alpha": 10.0, "beta": 0.5})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
    finished = {span.name: span for span in spans.get_finished_spans()}
    call = finished[f"failover {OP}"]
    alpha, beta = finished["chat a-1"], finished["chat b-1"]
    assert alpha.parent is not None
    assert alpha.parent.span_id == call.context.span_id
    assert beta.parent is not None
    assert beta.parent.span_id == call.context.span_id
    assert (alpha.attributes or {}).get("failover.hedge") is None
    assert (alpha.attributes or {}).get("failover.outcome") == "cancelled"
    assert (beta.attributes or {}).get("failover.hedge") is True
    attributes = call.attributes or {}
    assert attributes["failover.platform"] == "beta"
    assert attributes["failover.hedges"] == 1
    assert tuple(attributes["failover.order"]) == ("alpha", "beta", "gamma")  # type: ignore[arg-type]


def test_hedge_values_are_validated_and_platform_level_hedges_rejected() -> None:
    with pytest.raises(ConfigError, match=r"Hedge\.delay"):
        Hedge(delay=-1)
    with pytest.raises(ConfigError, match=r"Hedge\.max_hedges"):
        Hedge(max_hedges=-1)
    with pytest.raises(ConfigError, match=r"Policy\.hedge"):
        Policy(hedge=0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"platform_policies\['alpha'\]\.hedge"):
        PlatformManager(
            {OP: PLATFORMS}, environ={}, platform_policies={"alpha": Policy(hedge=Hedge(1.0))}
        )


async def test_no_hedge_switches_an_inherited_hedge_off() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {OP: PLATFORMS},
        clock=clock,
        environ={},
        policy=Policy(hedge=Hedge(delay=1.0)),
        operation_policies={OP: Policy(hedge=NO_HEDGE)},
    )
    operation = Timed(clock, {"alpha": 5.0})
    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(3.0)
        await anyio.wait_all_tasks_blocked()
        assert len(operation.started) == 1
        clock.advance(2.0)
    assert out[0][0] == "answer from alpha"


async def test_deadline_cancels_every_lane_and_counts_nothing() -> None:
    clock = FakeClock()
    manager = PlatformManager(
        {OP: PLATFORMS},
        clock=clock,
        environ={},
        operation_policies={OP: Policy(hedge=Hedge(delay=1.0, max_hedges=2), deadline=2.5)},
    )
    operation = Timed(clock, {"alpha": 100.0, "beta": 100.0, "gamma": 100.0})
    failures: list[AllPlatformsFailed] = []

    async def call() -> None:
        with pytest.raises(AllPlatformsFailed) as info:
            await manager.with_fallback(OP, operation)
        failures.append(info.value)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        for _ in range(3):
            await anyio.wait_all_tasks_blocked()
            clock.advance(1.0)
    assert [name for name, _ in operation.started] == ["alpha", "beta", "gamma"]
    assert sorted(operation.cancelled) == ["alpha", "beta", "gamma"]
    assert "deadline of 2.5s exceeded" in str(failures[0])
    assert sorted(a.outcome for a in failures[0].attempts) == ["cancelled"] * 3
    for name in ("alpha", "beta", "gamma"):
        assert health(manager, name)["failures"] == 0


class Closable:
    """An answer that must be closed when nobody reads it (like a stream)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_an_answer_arriving_with_the_winner_is_closed_not_leaked() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    answers: list[Closable] = []

    async def operation(platform: PlatformSpec) -> Closable:
        # alpha starts at 0 and answers at 2; beta starts at 1 (the hedge) and answers at 2.
        await clock.sleep(2.0 if platform.name == "alpha" else 1.0)
        answers.append(Closable(platform.name))
        return answers[-1]

    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
    assert len(answers) == 2
    ((result, platform),) = out
    assert result is answers[0]
    assert platform.name == answers[0].name
    assert [answer.closed for answer in answers] == [False, True]


async def test_an_answer_arriving_with_a_request_fault_still_answers_the_call() -> None:
    from failover import BadRequest

    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))

    async def operation(platform: PlatformSpec) -> str:
        await clock.sleep(2.0 if platform.name == "alpha" else 1.0)
        if platform.name == "beta":
            raise BadRequest("malformed", reason="bad_request", status_code=400)
        return "answer from alpha"

    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
    assert [(result, spec.name) for result, spec in out] == [("answer from alpha", "alpha")]


async def test_one_shared_answer_handed_back_by_both_lanes_is_not_closed() -> None:
    clock = FakeClock()
    manager = make_manager(clock, Hedge(delay=1.0))
    shared = Closable("shared")

    async def operation(platform: PlatformSpec) -> Closable:
        await clock.sleep(2.0 if platform.name == "alpha" else 1.0)
        return shared

    out: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(run, manager, operation, out)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
    assert out[0][0] is shared
    assert shared.closed is False


async def test_hedge_lanes_share_one_calls_max_attempts() -> None:
    clock = FakeClock(autojump=True)
    manager = PlatformManager(
        {OP: [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1")]},
        clock=clock,
        environ={},
        max_attempts=2,
        policy=Policy(
            hedge=Hedge(delay=0.5),
            retry=Retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none()),
        ),
        when_all_unavailable="fail",
    )
    operation = ScriptedOperation({"alpha": [Transient()], "beta": [Transient()]})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(OP, operation)
    assert len(operation.calls) == 2
