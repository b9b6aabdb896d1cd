"""The last resort: what a call does when every platform is open or cooling down.

``when_all_unavailable``: ``"probe_soonest"`` (default) sends one early probe to the platform
whose cool-down ends soonest; ``"wait"`` waits up to ``max_wait`` for one to become usable;
``"fail"`` raises at once. Time is a FakeClock: nothing here sleeps for real.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    AllPlatformsFailed,
    BadRequest,
    ConfigError,
    CreditExhausted,
    Hedge,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Transient,
    fallback,
)
from failover._config.load import settings_from_toml
from failover._core.breaker import BreakerState
from failover._engine.route import Pair
from failover.policies.last_resort import by_recovery, take_probe
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
IMAGE = "image_editing"
TTL = 300.0

ALPHA = PlatformSpec("alpha", "a-1")
BETA = PlatformSpec("beta", "b-1")
GAMMA = PlatformSpec("gamma", "g-1")
KEYED = PlatformSpec("keyed", "k-1", api_key_env="KEYED_API_KEY")


def make(
    priorities: Mapping[str, Sequence[PlatformSpec]] | None = None, **kwargs: Any
) -> tuple[PlatformManager, FakeClock]:
    clock = FakeClock()
    if priorities is None:
        priorities = {TEXT: [ALPHA, BETA, GAMMA], IMAGE: [ALPHA, BETA]}
    kwargs.setdefault("environ", {})
    kwargs.setdefault("failure_threshold", 1)
    return PlatformManager(priorities, cache_ttl_seconds=TTL, clock=clock, **kwargs), clock


def pair(manager: PlatformManager, platform: str, operation: str = TEXT) -> Pair:
    return manager._pairs[(platform, operation)]


async def open_all(manager: PlatformManager, clock: FakeClock, order: Sequence[str]) -> None:
    """Open every listed TEXT pair with a transient failure, 10s apart, ``order[0]`` first,
    so ``order[0]``'s open period ends soonest."""
    for name in order:
        await manager.report_failure(pair(manager, name).spec, TEXT, Transient("503"))
        clock.advance(10)
    assert all(pair(manager, name).breaker.state is BreakerState.OPEN for name in order)


async def wait_until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Let other tasks run until ``predicate()`` holds (no time passes)."""
    for _ in range(10_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{what} never became true")


def last_resorts(error: AllPlatformsFailed) -> list[tuple[str, str, str | None]]:
    return [(a.platform, a.outcome, a.last_resort) for a in error.attempts if a.last_resort]


# -- probe_soonest (the default) -------------------------------------------------------------


async def test_all_open_probes_the_soonest_once_and_success_closes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, clock = make()
    await open_all(manager, clock, ["beta", "gamma", "alpha"])
    operation = ScriptedOperation({})

    with caplog.at_level(logging.INFO, logger="failover"):
        result, spec = await manager.with_fallback(TEXT, operation)

    assert (result, spec.name) == ("ok", "beta")
    assert operation.calls == ["beta"]
    assert pair(manager, "beta").breaker.state is BreakerState.CLOSED
    assert pair(manager, "alpha").breaker.state is BreakerState.OPEN
    assert pair(manager, "gamma").breaker.state is BreakerState.OPEN
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "probing beta (b-1) early as a last resort" in m
        and "it recovers soonest (open, 270.0s left)" in m
        for m in messages
    ), messages
    assert any("Last resort for text_generation: beta answered" in m for m in messages)
    # The next call finds beta closed: an ordinary call, no probe.
    await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["beta", "beta"]


async def test_failed_probe_raises_with_the_history_and_reopens_the_pair(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, clock = make()
    await open_all(manager, clock, ["gamma", "alpha", "beta"])
    operation = ScriptedOperation({"gamma": [Transient("still down")]})

    with (
        caplog.at_level(logging.INFO, logger="failover"),
        pytest.raises(AllPlatformsFailed) as caught,
    ):
        await manager.with_fallback(TEXT, operation)
    assert (
        "Last resort for text_generation: gamma failed too (Transient, transient); "
        "unavailable for 300.0s more (open)"
    ) in [r.getMessage() for r in caplog.records]

    assert operation.calls == ["gamma"]
    error = caught.value
    assert [(a.platform, a.outcome, a.skip_reason) for a in error.attempts] == [
        ("alpha", "skipped", "open"),
        ("beta", "skipped", "open"),
        ("gamma", "skipped", "open"),
        ("gamma", "failure", None),
    ]
    assert last_resorts(error) == [("gamma", "failure", "probe_soonest")]
    assert error.reason == "every platform unavailable; the last resort, gamma, failed"
    assert "gamma/g-1: failure (Transient, transient) after 0.000s (last-resort probe)" in str(
        error
    )
    breaker = pair(manager, "gamma").breaker
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == clock.now() + TTL  # re-opened for a fresh period
    assert breaker.probes == ()


async def test_probe_failure_with_open_backoff_extends_the_open_period() -> None:
    manager, clock = make(open_backoff=2.0)
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [Transient("no")]}))
    assert pair(manager, "alpha").breaker.open_until == clock.now() + 2 * TTL


async def test_request_fault_of_the_probe_is_raised_and_leaves_health_alone() -> None:
    manager, clock = make()
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    open_until = pair(manager, "alpha").breaker.open_until
    operation = ScriptedOperation({"alpha": [BadRequest("malformed")]})

    with pytest.raises(BadRequest):
        await manager.with_fallback(TEXT, operation)

    breaker = pair(manager, "alpha").breaker
    assert (breaker.state, breaker.open_until, breaker.probes) == (
        BreakerState.OPEN,
        open_until,
        (),
    )


async def test_concurrent_callers_do_not_exceed_the_probe_limit() -> None:
    manager, clock = make()
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    release = anyio.Event()
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    served: list[str] = []
    refused: list[AllPlatformsFailed] = []

    async def slow(platform: PlatformSpec) -> str:
        in_flight[platform.name] = in_flight.get(platform.name, 0) + 1
        peak[platform.name] = max(peak.get(platform.name, 0), in_flight[platform.name])
        await release.wait()
        in_flight[platform.name] -= 1
        return platform.name

    async def caller() -> None:
        try:
            _, spec = await manager.with_fallback(TEXT, slow)
        except AllPlatformsFailed as exc:
            refused.append(exc)
        else:
            served.append(spec.name)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller)
        # Every caller either holds a probe or has already been refused, without time passing.
        await wait_until(lambda: len(refused) + sum(in_flight.values()) == 50, "all decided")
        assert len(refused) == 47
        assert peak == {"alpha": 1, "beta": 1, "gamma": 1}  # one probe per pair, the limit
        release.set()

    assert sorted(served) == ["alpha", "beta", "gamma"]
    assert {exc.reason for exc in refused} == {
        "every platform unavailable and each that can recover has a probe out; "
        "if none succeeds, the next usable is alpha (open) in 270.0s"
    }
    assert all(not last_resorts(exc) for exc in refused)
    assert clock.now() == 1_030.0  # nobody waited


async def test_half_open_max_calls_bounds_early_probes_per_pair() -> None:
    manager, clock = make({TEXT: [ALPHA]}, half_open_max_calls=2)
    await open_all(manager, clock, ["alpha"])
    release = anyio.Event()
    calls: list[str] = []
    refused: list[AllPlatformsFailed] = []

    async def slow(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        await release.wait()
        return "ok"

    async def caller() -> None:
        try:
            await manager.with_fallback(TEXT, slow)
        except AllPlatformsFailed as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await wait_until(lambda: len(calls) + len(refused) == 5)
        assert (len(calls), len(refused)) == (2, 3)
        # The pair stays open for ordinary callers while the early probes are out.
        assert pair(manager, "alpha").breaker.state is BreakerState.OPEN
        release.set()
    assert pair(manager, "alpha").breaker.state is BreakerState.CLOSED


async def test_cancelled_probe_gives_its_slot_back() -> None:
    manager, clock = make({TEXT: [ALPHA]})
    await open_all(manager, clock, ["alpha"])
    started = anyio.Event()

    async def hang(platform: PlatformSpec) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.with_fallback, TEXT, hang)
            await started.wait()
            scope.cancel()
    breaker = pair(manager, "alpha").breaker
    assert (breaker.state, breaker.probes) == (BreakerState.OPEN, ())
    # The slot is free again: the next call probes.
    operation = ScriptedOperation({})
    assert (await manager.with_fallback(TEXT, operation))[0] == "ok"
    assert operation.calls == ["alpha"]


async def test_missing_key_platforms_are_never_probed() -> None:
    manager, clock = make({TEXT: [KEYED, ALPHA]})
    await open_all(manager, clock, ["alpha"])
    operation = ScriptedOperation({})
    assert (await manager.with_fallback(TEXT, operation))[1].name == "alpha"
    assert operation.calls == ["alpha"]

    only_keyed, _ = make({TEXT: [KEYED]})
    with pytest.raises(AllPlatformsFailed) as caught:
        await only_keyed.with_fallback(TEXT, operation)
    assert operation.calls == ["alpha"]
    assert [(a.platform, a.skip_reason) for a in caught.value.attempts] == [
        ("keyed", "missing_api_key")
    ]


async def test_an_isolated_pair_is_never_probed() -> None:
    manager, clock = make({TEXT: [ALPHA, BETA]})
    await open_all(manager, clock, ["alpha", "beta"])
    manager.isolate("alpha", TEXT)
    manager.isolate("beta", TEXT)
    operation = ScriptedOperation({})
    with pytest.raises(AllPlatformsFailed, match="each is isolated until reset"):
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == []


async def test_credit_cooldown_probe_clears_it_across_operations() -> None:
    manager, clock = make()
    # alpha out of credits (platform-wide, 300s); beta and gamma open for longer.
    await manager.with_fallback(
        TEXT, ScriptedOperation({"alpha": [CreditExhausted("balance")]}), failover_context=None
    )  # beta answers
    manager.force_open("beta", TEXT, 400)
    manager.force_open("gamma", TEXT, 400)
    manager.force_open("beta", IMAGE, 400)
    clock.advance(5)
    operation = ScriptedOperation({})

    assert (await manager.with_fallback(TEXT, operation))[1].name == "alpha"
    assert operation.calls == ["alpha"]
    assert manager.get_health_status()["alpha"]["cooldown_reason"] is None
    # The platform-wide cool-down is lifted for the other operation too.
    assert (await manager.get_platform(IMAGE)).name == "alpha"


async def test_cooldown_probe_slot_admits_one_probe_and_failure_keeps_the_cooldown() -> None:
    manager, clock = make({TEXT: [ALPHA], IMAGE: [ALPHA]})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [CreditExhausted("")]}))
    cooldown = pair(manager, "alpha").platform.cooldown
    until = cooldown.until
    release = anyio.Event()
    calls: list[str] = []
    refused: list[str] = []

    async def out_of_credits(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        await release.wait()
        raise CreditExhausted("still no credits")

    async def caller(operation: str) -> None:
        try:
            await manager.with_fallback(operation, out_of_credits)
        except AllPlatformsFailed as exc:
            refused.append(exc.reason or "")

    clock.advance(60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(caller, TEXT)
        tg.start_soon(caller, IMAGE)  # same platform cool-down: its one slot is taken
        await wait_until(lambda: len(calls) + len(refused) == 2)
        assert (calls, refused) == (
            ["alpha"],
            [
                "every platform unavailable and each that can recover has a probe out; "
                "if none succeeds, the next usable is alpha (credit) in 240.0s"
            ],
        )
        release.set()
    assert cooldown.probe_until == 0.0
    assert cooldown.until == clock.now() + TTL > until  # the failure extended it
    assert cooldown.reason == "credit"


async def test_a_hung_cooldown_probe_loses_its_slot_when_its_lease_ends() -> None:
    manager, clock = make({TEXT: [ALPHA]}, probe_lease_seconds=10)
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [CreditExhausted("")]}))
    gates = [anyio.Event(), anyio.Event()]
    calls: list[int] = []
    refused: list[int] = []

    async def hang(platform: PlatformSpec) -> str:
        index = len(calls)
        calls.append(index)
        await gates[index].wait()
        raise CreditExhausted("still none")

    async def caller(number: int) -> None:
        try:
            await manager.with_fallback(TEXT, hang)
        except AllPlatformsFailed:
            refused.append(number)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller, 1)
        await wait_until(lambda: calls == [0])
        tg.start_soon(caller, 2)
        await wait_until(lambda: refused == [2])
        clock.advance(11)  # the first probe's lease has run out: its slot is free again
        tg.start_soon(caller, 3)
        await wait_until(lambda: calls == [0, 1])
        gates[0].set()  # the late first probe ends: it must not free the second's slot
        await wait_until(lambda: refused == [2, 1])
        tg.start_soon(caller, 4)
        await wait_until(lambda: refused == [2, 1, 4])
        assert calls == [0, 1]
        gates[1].set()


async def test_rate_limit_cooldown_probe_success_clears_the_pair_cooldown() -> None:
    manager, clock = make({TEXT: [ALPHA, BETA]})
    failing = ScriptedOperation(
        {"alpha": [RateLimited("slow down", retry_after=30)], "beta": [Transient("x")]}
    )
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, failing)
    assert not last_resorts(caught.value)  # both were tried: no last resort
    clock.advance(10)
    # alpha's rate limit (20s left) ends before beta's open period (290s): alpha is probed.
    operation = ScriptedOperation({})
    assert (await manager.with_fallback(TEXT, operation))[1].name == "alpha"
    assert operation.calls == ["alpha"]
    cooldown = pair(manager, "alpha").cooldown
    assert (cooldown.until, cooldown.reason, cooldown.probe_until) == (0.0, None, 0.0)
    assert pair(manager, "beta").breaker.state is BreakerState.OPEN


async def test_selection_orders_by_recovery_and_skips_probing_pairs() -> None:
    manager, clock = make()
    manager.force_open("alpha", TEXT, 50)
    manager.force_open("beta", TEXT, 20)
    manager.force_open("gamma", TEXT, 30)
    pairs = manager._routes[TEXT].pairs
    ranked = by_recovery(pairs, clock.now())
    assert [(c.pair.spec.name, c.usable_at - clock.now(), c.reason) for c in ranked] == [
        ("beta", 20.0, "open"),
        ("gamma", 30.0, "open"),
        ("alpha", 50.0, "open"),
    ]
    probe = take_probe(ranked[0], clock.now())
    assert probe is not None
    assert probe.permit.is_probe
    assert take_probe(by_recovery(pairs, clock.now())[0], clock.now()) is None
    assert [c.pair.spec.name for c in by_recovery(pairs, clock.now()) if not c.probing] == [
        "gamma",
        "alpha",
    ]


async def test_get_platform_keeps_its_contract() -> None:
    manager, clock = make()
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    with pytest.raises(AllPlatformsFailed, match=r"the next usable is alpha \(open\) in 270.0s"):
        await manager.get_platform(TEXT)
    assert all(pair(manager, n).breaker.probes == () for n in ("alpha", "beta", "gamma"))


async def test_fallback_decorator_uses_the_last_resort() -> None:
    manager, clock = make()
    await open_all(manager, clock, ["gamma", "alpha", "beta"])

    @fallback(TEXT, manager=manager)
    async def generate(platform: PlatformSpec, prompt: str) -> str:
        return f"{platform.name}:{prompt}"

    assert await generate("hi") == "gamma:hi"


async def test_hedged_operations_have_the_last_resort_too() -> None:
    manager, clock = make(operation_policies={TEXT: Policy(hedge=Hedge(delay=1.0))})
    await open_all(manager, clock, ["gamma", "alpha", "beta"])
    operation = ScriptedOperation({})
    assert (await manager.with_fallback(TEXT, operation))[1].name == "gamma"
    assert operation.calls == ["gamma"]
    assert pair(manager, "gamma").breaker.state is BreakerState.CLOSED


async def test_last_resort_span_event() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    manager, clock = make(tracer_provider=provider)
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    exporter.clear()

    await manager.with_fallback(TEXT, ScriptedOperation({}))

    (call,) = [s for s in exporter.get_finished_spans() if s.name == "failover text_generation"]
    events = [e for e in call.events if e.name == "failover.last_resort"]
    assert [dict(e.attributes or {}) for e in events] == [
        {
            "failover.last_resort.mode": "probe_soonest",
            "failover.last_resort.result": "probe",
            "failover.platform": "alpha",
            "failover.last_resort.reason": "open",
            "failover.last_resort.remaining": 270.0,
        }
    ]
    assert (call.attributes or {})["failover.platform"] == "alpha"
    attempt_spans = [s for s in exporter.get_finished_spans() if s.name == "chat a-1"]
    assert len(attempt_spans) == 1


# -- fail ------------------------------------------------------------------------------------


async def test_fail_raises_without_calling_anything() -> None:
    manager, clock = make(when_all_unavailable="fail")
    await open_all(manager, clock, ["alpha", "beta", "gamma"])
    operation = ScriptedOperation({})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == []
    assert (
        caught.value.reason
        == "every platform unavailable; the next usable is alpha (open) in 270.0s"
    )
    assert not last_resorts(caught.value)
    assert clock.sleepers == 0


async def test_per_operation_setting_overrides_the_manager() -> None:
    manager, _ = make(operation_policies={IMAGE: Policy(when_all_unavailable="fail")})
    for operation_type in (TEXT, IMAGE):
        for name in ("alpha", "beta", "gamma")[: 3 if operation_type == TEXT else 2]:
            manager.force_open(name, operation_type, 60)
    operation = ScriptedOperation({})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(IMAGE, operation)
    assert operation.calls == []
    assert (await manager.with_fallback(TEXT, operation))[1].name == "alpha"


# -- wait ------------------------------------------------------------------------------------


async def test_wait_calls_the_first_platform_to_become_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager, clock = make(when_all_unavailable="wait", max_wait=10)
    manager.force_open("alpha", TEXT, 8)
    manager.force_open("beta", TEXT, 4)
    manager.force_open("gamma", TEXT, 6)
    operation = ScriptedOperation({})
    results: list[str] = []

    async def call() -> None:
        results.append((await manager.with_fallback(TEXT, operation))[1].name)

    with caplog.at_level(logging.INFO, logger="failover"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_until(lambda: clock.sleepers == 1, "the wait")
            assert operation.calls == []
            clock.advance(3.9)
            await wait_until(lambda: clock.sleepers == 1)
            assert operation.calls == []
            clock.advance(0.1)
    assert results == ["beta"]
    assert operation.calls == ["beta"]
    assert any(
        "waited 4.00s as a last resort until beta (open) became usable" in r.getMessage()
        for r in caplog.records
    )


async def test_wait_gives_up_at_once_when_nothing_recovers_within_max_wait() -> None:
    manager, clock = make(when_all_unavailable="wait", max_wait=5)
    for name, seconds in (("alpha", 20), ("beta", 8), ("gamma", 30)):
        manager.force_open(name, TEXT, seconds)
    operation = ScriptedOperation({})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == []
    assert clock.now() == 1_000.0
    assert caught.value.reason == (
        "every platform unavailable; the soonest, beta, recovers in 8.0s, beyond max_wait=5s"
    )
    assert [(a.platform, a.outcome, a.duration, a.last_resort) for a in caught.value.attempts][
        -1
    ] == ("beta", "skipped", 0.0, "wait")


async def test_wait_honours_max_wait_while_a_probe_is_out() -> None:
    manager, clock = make({TEXT: [ALPHA]}, when_all_unavailable="wait", max_wait=3)
    manager.force_open("alpha", TEXT, 1)
    clock.advance(1)
    release = anyio.Event()
    prober_done = anyio.Event()
    calls: list[str] = []
    errors: list[AllPlatformsFailed] = []

    async def slow(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        await release.wait()
        return "ok"

    async def prober() -> None:
        await manager.with_fallback(TEXT, slow)  # the ordinary half-open probe
        prober_done.set()

    async def waiter() -> None:
        try:
            await manager.with_fallback(TEXT, slow)
        except AllPlatformsFailed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(prober)
        await wait_until(lambda: calls == ["alpha"])
        tg.start_soon(waiter)
        for _ in range(3):  # it looks again every second while the probe is out
            await wait_until(lambda: clock.sleepers == 1, "the waiter sleeping")
            clock.advance(1)
        await wait_until(lambda: bool(errors), "the waiter giving up")
        release.set()
    assert calls == ["alpha"]
    assert errors[0].reason == "every platform unavailable; waited max_wait=3s"
    assert [(a.outcome, a.duration, a.last_resort) for a in errors[0].attempts][-1] == (
        "skipped",
        3.0,
        "wait",
    )


async def test_wait_sees_a_probe_succeed_before_its_lease_ends() -> None:
    manager, clock = make({TEXT: [ALPHA]}, when_all_unavailable="wait", max_wait=30)
    manager.force_open("alpha", TEXT, 1)
    clock.advance(1)
    release = anyio.Event()
    calls: list[str] = []
    served: list[str] = []

    async def slow(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        if len(calls) == 1:
            await release.wait()
        return "ok"

    async def call() -> None:
        served.append((await manager.with_fallback(TEXT, slow))[1].name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_until(lambda: calls == ["alpha"])
        tg.start_soon(call)
        await wait_until(lambda: clock.sleepers == 1, "the waiter sleeping")
        release.set()  # the probe succeeds: alpha closes
        await wait_until(lambda: served == ["alpha"])
        clock.advance(1)
    assert served == ["alpha", "alpha"]
    assert calls == ["alpha", "alpha"]


async def test_wait_honours_the_callers_cancel_scope() -> None:
    manager, clock = make(when_all_unavailable="wait", max_wait=60)
    for name in ("alpha", "beta", "gamma"):
        manager.force_open(name, TEXT, 20)
    operation = ScriptedOperation({})
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.with_fallback, TEXT, operation)
            await wait_until(lambda: clock.sleepers == 1, "the wait")
            scope.cancel()
    assert scope.cancelled_caught
    assert operation.calls == []
    clock.advance(30)  # the abandoned wait left nothing behind
    assert all(pair(manager, n).breaker.probes == () for n in ("alpha", "beta", "gamma"))


async def test_wait_honours_the_call_deadline() -> None:
    manager, clock = make(when_all_unavailable="wait", max_wait=60, policy=Policy(deadline=5))
    for name in ("alpha", "beta", "gamma"):
        manager.force_open(name, TEXT, 20)
    operation = ScriptedOperation({})
    errors: list[AllPlatformsFailed] = []

    async def call() -> None:
        try:
            await manager.with_fallback(TEXT, operation)
        except AllPlatformsFailed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_until(lambda: clock.sleepers == 1, "the wait")
        clock.advance(5)
    assert operation.calls == []
    assert errors[0].reason == "deadline of 5s exceeded"
    assert last_resorts(errors[0]) == [("alpha", "skipped", "wait")]
    assert errors[0].attempts[-1].duration == 5.0


async def test_wait_for_a_missing_key_or_isolated_platform_fails_at_once() -> None:
    manager, _ = make({TEXT: [KEYED, ALPHA]}, when_all_unavailable="wait")
    manager.isolate("alpha", TEXT)
    with pytest.raises(AllPlatformsFailed, match="no platform can become usable by waiting"):
        await manager.with_fallback(TEXT, ScriptedOperation({}))


# -- configuration ---------------------------------------------------------------------------


def test_bad_settings_are_one_clear_config_error() -> None:
    with pytest.raises(
        ConfigError,
        match="when_all_unavailable must be one of 'probe_soonest', 'wait', 'fail', got 'retry'",
    ) as caught:
        make(when_all_unavailable="retry")
    assert caught.value.key == "when_all_unavailable"
    with pytest.raises(ConfigError, match="max_wait must be a number > 0, got 0"):
        make(max_wait=0)
    with pytest.raises(ConfigError, match=r"Policy\.max_wait must be seconds > 0, got -1"):
        Policy(max_wait=-1)
    with pytest.raises(
        ConfigError, match="when_all_unavailable is set both as a keyword and in policy="
    ):
        make(when_all_unavailable="wait", policy=Policy(when_all_unavailable="fail"))
    with pytest.raises(ConfigError, match=r"platform_policies\['alpha'\].when_all_unavailable"):
        make(platform_policies={"alpha": Policy(when_all_unavailable="wait")})
    with pytest.raises(ConfigError, match="when_all_unavailable must be one of"):
        make(operation_policies={TEXT: Policy(when_all_unavailable="Wait")})


def test_settings_compose_like_other_policies() -> None:
    manager, _ = make(
        when_all_unavailable="wait",
        max_wait=7,
        operation_policies={IMAGE: Policy(when_all_unavailable="probe_soonest")},
    )
    text, image = manager._routes[TEXT].last_resort, manager._routes[IMAGE].last_resort
    assert text is not None
    assert (text.mode, text.max_wait) == ("wait", 7.0)
    assert image is not None
    assert image.mode == "probe_soonest"
    default, _ = make()
    route = default._routes[TEXT].last_resort
    assert route is not None
    assert (route.mode, route.max_wait) == ("probe_soonest", 30.0)
    failing, _ = make(policy=Policy(when_all_unavailable="fail"))
    assert failing._routes[TEXT].last_resort is None


def test_toml_keys() -> None:
    kwargs = settings_from_toml(
        {
            "failover": {"when_all_unavailable": "wait", "max_wait": 12},
            "priorities": {TEXT: ["alpha/a-1"]},
            "operations": {TEXT: {"when_all_unavailable": "fail"}},
        },
        "failover.toml",
    )
    assert kwargs["policy"] == Policy(when_all_unavailable="wait", max_wait=12.0)
    assert kwargs["operation_policies"] == {TEXT: Policy(when_all_unavailable="fail")}
    with pytest.raises(ConfigError, match=r"failover\.toml: .*when_all_unavailable must be one of"):
        settings_from_toml({"failover": {"when_all_unavailable": "never"}}, "failover.toml")
    assert math.isfinite(kwargs["policy"].max_wait)


# -- many processes --------------------------------------------------------------------------


class StubFleet:
    """A shared state that grants or refuses every probe lease, and records what it was asked."""

    def __init__(self, grant: bool) -> None:
        self.grant = grant
        self.asked: list[tuple[str, str]] = []
        self.released: list[tuple[str, str]] = []

    async def run(self, link: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await anyio.sleep_forever()

    def publish(self, event: Any) -> None:
        pass

    async def acquire_probe(
        self, pair_key: tuple[str, str], lease_ms: int, slots: int
    ) -> str | None:
        self.asked.append(pair_key)
        return "token" if self.grant else None

    def release_probe(self, pair_key: tuple[str, str], token: str) -> None:
        self.released.append(pair_key)

    async def stop(self, timeout: float) -> None:
        pass


async def test_the_early_probe_also_takes_the_fleet_wide_lease() -> None:
    fleet = StubFleet(grant=True)
    manager, clock = make(shared_state=fleet)
    await open_all(manager, clock, ["beta", "alpha", "gamma"])
    operation = ScriptedOperation({})
    assert (await manager.with_fallback(TEXT, operation))[1].name == "beta"
    assert fleet.asked == [("beta", TEXT)]
    assert fleet.released == [("beta", TEXT)]


async def test_no_early_probe_while_another_process_holds_the_lease() -> None:
    fleet = StubFleet(grant=False)
    manager, clock = make(shared_state=fleet)
    await open_all(manager, clock, ["beta", "alpha", "gamma"])
    operation = ScriptedOperation({})
    with pytest.raises(AllPlatformsFailed, match="every platform unavailable; the next usable"):
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == []
    assert fleet.asked == [("beta", TEXT), ("alpha", TEXT), ("gamma", TEXT)]
    assert all(pair(manager, n).breaker.probes == () for n in ("alpha", "beta", "gamma"))
