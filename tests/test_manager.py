"""PlatformManager: the pinned API of DESIGN §1, on asyncio and trio."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import pybreaker
import pytest

from failover import (
    AllPlatformsFailed,
    ConfigError,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Transient,
    UnknownOperation,
)
from failover._core.health import RESERVOIR_SIZE
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

TRIO = [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]
OP = "image_editing"


def make_manager(clock: FakeClock | None = None, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("priorities", {OP: TRIO, "text_generation": [("alpha", "a-chat")]})
    return PlatformManager(clock=clock or FakeClock(), environ={}, **kwargs)


def names(manager: PlatformManager, operation: str = OP) -> list[str]:
    return [spec.name for spec in manager.platforms(operation)]


# -- get_platform ------------------------------------------------------------------------------


async def test_get_platform_returns_first_platform_in_priority_order() -> None:
    manager = make_manager()

    spec = await manager.get_platform(OP)

    assert isinstance(spec, PlatformSpec)
    assert (spec.name, spec.model) == ("alpha", "a-1")
    assert spec.operation_types == frozenset({OP, "text_generation"})
    assert names(manager) == ["alpha", "beta", "gamma"]


async def test_get_platform_skips_open_pair_and_returns_next() -> None:
    manager = make_manager()
    manager.force_open("alpha", OP)

    spec = await manager.get_platform(OP)

    assert spec.name == "beta"
    # The other operation of alpha is a different pair: still usable.
    assert (await manager.get_platform("text_generation")).name == "alpha"


async def test_get_platform_raises_all_platforms_failed_with_skip_reasons() -> None:
    clock = FakeClock()
    manager = make_manager(clock)
    manager.force_open("alpha", OP)
    await manager.report_failure(PlatformSpec("beta", "b-1"), OP, CreditExhausted("402"))
    await manager.report_failure(PlatformSpec("gamma", "g-1"), OP, Transient("x"))
    manager.isolate("gamma", OP)

    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.get_platform(OP)

    error = caught.value
    assert isinstance(error, RuntimeError)
    assert [(a.platform, a.outcome, a.skip_reason) for a in error.attempts] == [
        ("alpha", "skipped", "open"),
        ("beta", "skipped", "credit"),
        ("gamma", "skipped", "open"),
    ]
    assert error.reason == "every platform unavailable; the next usable is alpha (open) in 300.0s"
    assert "alpha/a-1: skipped (open)" in str(error)
    assert "beta/b-1: skipped (credit)" in str(error)


async def test_get_platform_skips_platform_whose_key_variable_is_missing() -> None:
    manager = PlatformManager(
        {OP: [("stability", "sd-3.5-large"), ("replicate", "flux")]},
        clock=FakeClock(),
        environ={"REPLICATE_API_TOKEN": "r8_not_a_real_token_123"},
    )

    spec = await manager.get_platform(OP)

    assert spec.name == "replicate"
    assert spec.api_key_env == "REPLICATE_API_TOKEN"


async def test_get_platform_with_unknown_operation_names_bad_and_known_ones() -> None:
    manager = make_manager()

    with pytest.raises(UnknownOperation) as caught:
        await manager.get_platform("image_edditing")

    message = str(caught.value)
    assert "'image_edditing'" in message
    assert "image_editing" in message
    assert "text_generation" in message
    assert caught.value.operation == "image_edditing"
    assert OP in caught.value.known
    assert isinstance(caught.value, ConfigError)


async def test_get_platform_context_reaches_cost_ordering() -> None:
    manager = make_manager(
        priorities={
            OP: [
                PlatformSpec("alpha", "a-1", estimated_cost=0.05),
                PlatformSpec("beta", "b-1", estimated_cost=0.01),
                PlatformSpec("gamma", "g-1", estimated_cost=0.01),
            ]
        },
        cost_optimization=True,
    )

    assert (await manager.get_platform(OP)).name == "beta"  # cheapest; tie keeps priority
    assert (await manager.get_platform(OP, quality_boost=True)).name == "alpha"


# -- with_fallback -----------------------------------------------------------------------------


async def test_with_fallback_async_operation_falls_back_and_returns_platform() -> None:
    operation = ScriptedOperation({"alpha": [Transient("503")], "beta": ["from-beta"]})
    manager = make_manager()

    result, spec = await manager.with_fallback(OP, operation, b"image", mask=b"mask")

    assert result == "from-beta"
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"]


async def test_with_fallback_passes_platform_and_arguments() -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    async def edit(platform: PlatformSpec, image: bytes, mask: bytes) -> str:
        seen.append((platform.name, image, mask))
        return f"{platform.model}:{len(image)}"

    manager = make_manager()

    result, spec = await manager.with_fallback(OP, edit, b"img", mask=b"m")

    assert (result, spec.name) == ("a-1:3", "alpha")
    assert seen == [("alpha", b"img", b"m")]


async def test_with_fallback_plain_function_result_is_returned() -> None:
    calls: list[str] = []

    def edit(platform: PlatformSpec, image: bytes) -> bytes:
        calls.append(platform.name)
        if platform.name == "alpha":
            raise ConnectionError("refused")
        return image[::-1]

    manager = make_manager()

    result, spec = await manager.with_fallback(OP, edit, b"abc")

    assert result == b"cba"
    assert spec.name == "beta"
    assert calls == ["alpha", "beta"]


async def test_with_fallback_plain_function_returning_awaitable_is_awaited() -> None:
    async def later(value: str) -> str:
        await anyio.lowlevel.checkpoint()
        return value

    def edit(platform: PlatformSpec) -> Awaitable[str]:
        return later(f"awaited-{platform.name}")

    manager = make_manager()

    result, spec = await manager.with_fallback(OP, edit)

    assert result == "awaited-alpha"
    assert spec.name == "alpha"


async def test_with_fallback_failure_in_awaitable_of_plain_function_falls_back() -> None:
    async def failing() -> str:
        raise Transient("boom")

    async def fine() -> str:
        return "ok"

    def edit(platform: PlatformSpec) -> Awaitable[str]:
        return failing() if platform.name == "alpha" else fine()

    result, spec = await make_manager().with_fallback(OP, edit)

    assert (result, spec.name) == ("ok", "beta")


async def test_with_fallback_after_success_no_other_platform_is_called() -> None:
    operation = ScriptedOperation({})
    manager = make_manager()

    for _ in range(3):
        await manager.with_fallback(OP, operation)

    assert operation.calls == ["alpha", "alpha", "alpha"]


async def test_with_fallback_unknown_operation_raises_before_calling() -> None:
    operation = ScriptedOperation({})

    with pytest.raises(UnknownOperation, match="'nope'"):
        await make_manager().with_fallback("nope", operation)

    assert operation.calls == []


async def test_with_fallback_all_failing_raises_with_every_attempt() -> None:
    operation = ScriptedOperation(
        {"alpha": [Transient("1")], "beta": [ConnectionError("2")], "gamma": [Transient("3")]}
    )

    with pytest.raises(AllPlatformsFailed) as caught:
        await make_manager().with_fallback(OP, operation)

    attempts = caught.value.attempts
    assert [(a.platform, a.outcome, a.error_type) for a in attempts] == [
        ("alpha", "failure", "Transient"),
        ("beta", "failure", "ConnectionError"),
        ("gamma", "failure", "Transient"),
    ]
    assert all(a.duration is not None for a in attempts)
    assert isinstance(caught.value.last_error, Transient)


# -- report_success / report_failure (the old manual flow) ---------------------------------------


async def test_manual_flow_three_failures_open_the_pair() -> None:
    clock = FakeClock()
    manager = make_manager(clock)
    spec = await manager.get_platform(OP)

    for count in range(1, 3):
        await manager.report_failure(spec, OP, Transient("503"), response_time=0.5)
        assert manager.get_health_status()["alpha"]["consecutive_failures"] == count
        assert (await manager.get_platform(OP)).name == "alpha"
    await manager.report_failure(spec, OP, Transient("503"), response_time=0.5)

    detail = manager.get_health_status()["alpha"]["operations"][OP]
    assert detail["state"] == "open"
    assert (await manager.get_platform(OP)).name == "beta"
    assert manager.breaker("alpha", OP).current_state == "open"

    clock.advance(300)
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "half_open"
    probe = await manager.get_platform(OP)
    assert probe.name == "alpha"
    await manager.report_success(probe, OP, response_time=0.2)
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "closed"
    assert manager.get_health_status()["alpha"]["consecutive_failures"] == 0


async def test_manual_success_resets_consecutive_failures() -> None:
    manager = make_manager()
    spec = await manager.get_platform(OP)

    await manager.report_failure(spec, OP, Transient("x"))
    await manager.report_failure(spec, OP, Transient("x"))
    await manager.report_success(spec, OP)
    await manager.report_failure(spec, OP, Transient("x"))

    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "closed"
    assert manager.get_health_status()["alpha"]["consecutive_failures"] == 1


async def test_manual_credit_failure_cools_whole_platform_for_ttl() -> None:
    clock = FakeClock()
    manager = make_manager(clock, cache_ttl_seconds=60)
    spec = await manager.get_platform(OP)

    await manager.report_failure(spec, OP, CreditExhausted("insufficient credits"))

    assert (await manager.get_platform(OP)).name == "beta"
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.get_platform("text_generation")  # alpha's other operation, too
    assert caught.value.attempts[0].skip_reason == "credit"
    health = manager.get_health_status()["alpha"]
    assert health["is_healthy"] is False
    assert health["cooldown_reason"] == "credit"
    assert health["operations"][OP]["state"] == "closed"  # a cool-down, not a breaker trip
    assert health["operations"][OP]["last_error_kind"] == "credit_exhausted"

    clock.advance(60)
    assert (await manager.get_platform(OP)).name == "alpha"
    assert (await manager.get_platform("text_generation")).name == "alpha"
    assert manager.get_health_status()["alpha"]["is_healthy"] is True


async def test_report_failure_accepts_platform_name_string() -> None:
    manager = make_manager()

    await manager.report_failure(PlatformSpec("beta", "other-model"), OP, Transient("x"))

    assert manager.get_health_status()["beta"]["consecutive_failures"] == 1


@pytest.mark.parametrize("error", ["503 from provider", 503, None, Transient])
async def test_report_failure_with_non_exception_is_a_clear_error(error: Any) -> None:
    manager = make_manager()
    spec = await manager.get_platform(OP)

    with pytest.raises(ConfigError, match=r"report_failure\(error=...\) must be an exception"):
        await manager.report_failure(spec, OP, error)

    assert manager.get_health_status()["alpha"]["total_requests"] == 0


async def test_report_for_platform_not_in_operation_names_configured_ones() -> None:
    manager = make_manager()

    with pytest.raises(ConfigError, match=r"'zeta' is not configured for 'image_editing'") as c:
        await manager.report_success(PlatformSpec("zeta", "z"), OP)
    assert "alpha, beta, gamma" in str(c.value)
    with pytest.raises(UnknownOperation):
        await manager.report_success(PlatformSpec("alpha", "a-1"), "nope")


async def test_report_with_negative_response_time_is_rejected() -> None:
    manager = make_manager()

    with pytest.raises(ConfigError, match="response_time"):
        await manager.report_success(PlatformSpec("alpha", "a-1"), OP, response_time=-1)


async def test_reported_cancellation_counts_nothing() -> None:
    manager = make_manager()
    spec = await manager.get_platform(OP)

    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise

    await manager.report_failure(spec, OP, caught[0])

    health = manager.get_health_status()["alpha"]
    assert health["total_requests"] == 0
    assert health["consecutive_failures"] == 0


# -- get_health_status -------------------------------------------------------------------------

PLATFORM_KEYS = {
    "is_healthy",
    "consecutive_failures",
    "total_requests",
    "failure_rate",
    "avg_response_time",
    "last_success",
    "last_failure",
}
OPERATION_KEYS = {"state", "open_until", "last_error_kind", "cost", "p95_response_time"}


async def test_health_status_has_the_old_keys_and_is_json_serialisable() -> None:
    clock = FakeClock()
    manager = make_manager(clock)
    operation = ScriptedOperation({"alpha": [Transient("1")]})
    await manager.with_fallback(OP, operation)
    manager.force_open("gamma", OP)

    status = manager.get_health_status()

    assert set(status) == {"alpha", "beta", "gamma"}
    for health in status.values():
        assert health.keys() >= PLATFORM_KEYS
        for detail in health["operations"].values():
            assert detail.keys() >= OPERATION_KEYS
    assert json.loads(json.dumps(status)) == status
    alpha, beta = status["alpha"], status["beta"]
    assert alpha["total_requests"] == 1
    assert alpha["failure_rate"] == 1.0
    assert alpha["last_success"] is None
    assert beta["last_failure"] is None
    assert set(alpha["operations"]) == {OP, "text_generation"}
    for value in (alpha["last_failure"], beta["last_success"]):
        assert isinstance(value, str)
        assert datetime.fromisoformat(value).tzinfo is not None
    open_until = status["gamma"]["operations"][OP]["open_until"]
    assert datetime.fromisoformat(open_until).timestamp() == pytest.approx(clock.wall() + 300)
    assert status["gamma"]["is_healthy"] is False
    assert status["beta"]["is_healthy"] is True


async def test_health_timestamps_follow_the_clock() -> None:
    clock = FakeClock(wall_start=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    manager = make_manager(clock)

    clock.advance(90)
    await manager.report_success(PlatformSpec("alpha", "a-1"), OP)

    assert manager.get_health_status()["alpha"]["last_success"] == "2026-01-01T00:01:30+00:00"


async def test_health_per_operation_detail() -> None:
    manager = make_manager(
        priorities={OP: [PlatformSpec("alpha", "a-1", estimated_cost=0.04), ("beta", "b-1")]},
        failure_threshold=2,
    )
    alpha = PlatformSpec("alpha", "a-1")
    for seconds in [0.1] * 18 + [2.0, 3.0]:
        await manager.report_success(alpha, OP, response_time=seconds)

    detail = manager.get_health_status()["alpha"]["operations"][OP]
    assert detail["state"] == "closed"
    assert detail["open_until"] is None
    assert detail["last_error_kind"] is None
    assert detail["total_requests"] == 20
    assert detail["cost"] == pytest.approx(20 * 0.04)
    assert detail["p95_response_time"] == 2.0
    assert detail["avg_response_time"] == pytest.approx((18 * 0.1 + 5.0) / 20)
    assert manager.get_health_status()["alpha"]["cost"] == pytest.approx(0.8)

    await manager.report_failure(alpha, OP, TimeoutError())
    await manager.report_failure(alpha, OP, Transient("x"))
    detail = manager.get_health_status()["alpha"]["operations"][OP]
    assert detail["state"] == "open"
    assert detail["open_until"] is not None
    assert detail["last_error_kind"] == "transient"
    assert detail["cost"] == pytest.approx(0.8)  # failures cost nothing
    assert detail["failures"] == 2


async def test_health_cost_counts_successes_of_with_fallback() -> None:
    manager = make_manager(
        priorities={
            OP: [
                PlatformSpec("alpha", "a-1", estimated_cost=0.5),
                PlatformSpec("beta", "b-1", estimated_cost=0.25),
            ]
        }
    )
    operation = ScriptedOperation({"alpha": [Transient("x"), "ok"]})

    await manager.with_fallback(OP, operation)  # alpha fails, beta answers
    await manager.with_fallback(OP, operation)  # alpha answers

    status = manager.get_health_status()
    assert status["alpha"]["cost"] == pytest.approx(0.5)
    assert status["beta"]["cost"] == pytest.approx(0.25)


async def test_memory_per_pair_is_bounded() -> None:
    manager = make_manager()
    alpha = PlatformSpec("alpha", "a-1")

    for index in range(10_000):
        await manager.report_success(alpha, OP, response_time=index / 1000)

    stats = manager._pair("alpha", OP).stats
    assert len(stats.recent_times()) == RESERVOIR_SIZE
    assert sorted(stats.recent_times()) == [
        index / 1000 for index in range(10_000 - RESERVOIR_SIZE, 10_000)
    ]
    assert stats.total_requests == 10_000
    detail = manager.get_health_status()["alpha"]["operations"][OP]
    assert detail["total_requests"] == 10_000
    # The p95 reflects recent traffic only: the ring holds the last RESERVOIR_SIZE times.
    assert detail["p95_response_time"] > 9.0


async def test_reset_health_by_platform_operation_or_all() -> None:
    manager = make_manager()
    alpha, beta = PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1")
    for spec in (alpha, beta):
        await manager.report_success(spec, OP, response_time=0.1)
    await manager.report_success(alpha, "text_generation", response_time=0.1)

    def totals() -> dict[tuple[str, str], int]:
        return {
            (name, op): detail["total_requests"]
            for name, health in manager.get_health_status().items()
            for op, detail in health["operations"].items()
        }

    manager.reset_health(platform="alpha", operation=OP)
    assert totals() == {
        ("alpha", OP): 0,
        ("alpha", "text_generation"): 1,
        ("beta", OP): 1,
        ("gamma", OP): 0,
    }
    manager.reset_health(operation="text_generation")
    assert totals()[("alpha", "text_generation")] == 0
    assert totals()[("beta", OP)] == 1
    manager.reset_health(platform="beta")
    assert totals()[("beta", OP)] == 0

    await manager.report_success(alpha, OP)
    manager.reset_health()
    assert set(totals().values()) == {0}


async def test_reset_health_keeps_breaker_state_and_rejects_unknown_names() -> None:
    manager = make_manager()
    manager.force_open("alpha", OP)

    manager.reset_health()

    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "open"
    with pytest.raises(ConfigError, match="unknown platform 'zeta'"):
        manager.reset_health(platform="zeta")
    with pytest.raises(UnknownOperation):
        manager.reset_health(operation="nope")


async def test_monitoring_disabled_records_no_health() -> None:
    manager = make_manager(monitoring_enabled=False)
    operation = ScriptedOperation({"alpha": [Transient("x")]})

    for _ in range(3):
        await manager.with_fallback(OP, operation)
    await manager.report_success(PlatformSpec("beta", "b-1"), OP, response_time=1.0)

    for health in manager.get_health_status().values():
        assert health["total_requests"] == 0
        assert health["last_success"] is None
        assert health["last_failure"] is None
        assert health["cost"] == 0.0
    # The breaker still protects: alpha opened after 3 failures.
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "open"


# -- manual control ----------------------------------------------------------------------------


async def test_breaker_returns_the_pairs_pybreaker_object() -> None:
    manager = make_manager(failure_threshold=4, cache_ttl_seconds=30)

    breaker = manager.breaker("alpha", OP)

    assert isinstance(breaker, pybreaker.CircuitBreaker)
    assert breaker is manager.breaker(PlatformSpec("alpha", "a-1"), OP)
    assert breaker is not manager.breaker("alpha", "text_generation")
    assert breaker.fail_max == 4
    assert breaker.reset_timeout == 30
    assert breaker.name == "alpha:image_editing"


async def test_pybreaker_listeners_see_transitions_and_open_drives_the_pair() -> None:
    manager = make_manager()
    breaker = manager.breaker("alpha", OP)
    seen: list[tuple[str, str]] = []

    class Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            seen.append((old_state.name, new_state.name))

    breaker.add_listener(Listener())
    for _ in range(3):
        await manager.report_failure(PlatformSpec("alpha", "a-1"), OP, Transient("x"))
    assert seen == [("closed", "open")]

    breaker.close()
    assert (await manager.get_platform(OP)).name == "alpha"
    breaker.open()
    assert (await manager.get_platform(OP)).name == "beta"


async def test_isolate_holds_until_reset() -> None:
    clock = FakeClock()
    manager = make_manager(clock)

    manager.isolate("alpha", OP)
    clock.advance(10**6)

    assert (await manager.get_platform(OP)).name == "beta"
    detail = manager.get_health_status()["alpha"]["operations"][OP]
    assert detail["isolated"] is True
    assert detail["open_until"] is None  # open until reset: no finite deadline
    manager.reset("alpha", OP)
    assert (await manager.get_platform(OP)).name == "alpha"


async def test_force_open_for_seconds_then_half_open() -> None:
    clock = FakeClock()
    manager = make_manager(clock)

    manager.force_open("alpha", OP, seconds=5)
    assert (await manager.get_platform(OP)).name == "beta"
    clock.advance(5)

    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "half_open"
    assert (await manager.get_platform(OP)).name == "alpha"
    with pytest.raises(ConfigError, match="seconds"):
        manager.force_open("alpha", OP, seconds=0)


async def test_force_closed_keeps_pair_closed_through_failures() -> None:
    manager = make_manager()
    manager.force_closed("alpha", OP)
    operation = ScriptedOperation({"alpha": [Transient("x")]})

    for _ in range(6):
        await manager.with_fallback(OP, operation)

    assert operation.calls == ["alpha", "beta"] * 6
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "closed"
    manager.reset("alpha", OP)
    for _ in range(3):
        await manager.report_failure(PlatformSpec("alpha", "a-1"), OP, Transient("x"))
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "open"


async def test_reset_platform_clears_every_pair_and_its_cooldown() -> None:
    manager = make_manager()
    alpha = PlatformSpec("alpha", "a-1")
    manager.force_open("alpha", OP)
    manager.force_open("alpha", "text_generation")
    await manager.report_failure(alpha, OP, CreditExhausted("quota"))

    manager.reset("alpha")

    assert (await manager.get_platform(OP)).name == "alpha"
    assert (await manager.get_platform("text_generation")).name == "alpha"
    with pytest.raises(ConfigError, match="unknown platform 'zeta'"):
        manager.reset("zeta")


async def test_manual_control_of_unconfigured_pair_is_a_config_error() -> None:
    manager = make_manager()

    with pytest.raises(ConfigError, match="'beta' is not configured for 'text_generation'"):
        manager.isolate("beta", "text_generation")
    with pytest.raises(UnknownOperation):
        manager.breaker("alpha", "nope")


# -- construction ------------------------------------------------------------------------------


async def test_priorities_accept_tuples_and_platform_specs_mixed() -> None:
    manager = PlatformManager(
        {
            OP: [
                ("stability", "sd-3.5-large"),
                PlatformSpec("custom", "c-1", estimated_cost=0.5, estimated_time=3.0),
            ]
        },
        environ={"STABILITY_API_KEY": "sk-canary-not-real"},
        clock=FakeClock(),
    )

    stability, custom = manager.platforms(OP)

    assert stability.api_key_env == "STABILITY_API_KEY"
    assert stability.estimated_cost == 0.04  # the well-known default
    assert stability.priority == 0
    assert custom.estimated_cost == 0.5
    assert custom.api_key_env is None
    assert custom.operation_types == frozenset({OP})


@pytest.mark.parametrize("ttl", [300, 0.25, 1e-3])
async def test_cache_ttl_accepts_int_or_float(ttl: float) -> None:
    clock = FakeClock()
    manager = make_manager(clock, cache_ttl_seconds=ttl)
    manager.force_open("alpha", OP)

    assert manager.cache_ttl_seconds == ttl
    clock.advance(ttl * 0.99)
    assert (await manager.get_platform(OP)).name == "beta"
    clock.advance(ttl * 0.01 + 1e-9)
    assert (await manager.get_platform(OP)).name == "alpha"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache_ttl_seconds": 0}, "cache_ttl_seconds must be a number > 0"),
        ({"cache_ttl_seconds": "300"}, "cache_ttl_seconds must be a number"),
        ({"cache_ttl_seconds": True}, "cache_ttl_seconds must be a number"),
        ({"failure_threshold": 0}, "failure_threshold must be an integer >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold must be an integer"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"fallback_enabled": "yes"}, "fallback_enabled must be True or False"),
        ({"priorities": {OP: []}}, "is empty"),
        ({"priorities": {OP: [("alpha", "a"), ("alpha", "b")]}}, "lists platform 'alpha' twice"),
        ({"priorities": {OP: [("alpha",)]}}, r"\(name, model\) string pairs"),
        ({"priorities": [(OP, TRIO)]}, "priorities must be a mapping"),
        ({"priorities": {"Image Editing": TRIO}}, "lowercase identifier"),
    ],
)
def test_bad_arguments_raise_one_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_manager(**kwargs)


def test_construction_needs_no_event_loop_and_no_async_with() -> None:
    manager = make_manager()

    result, spec = anyio.run(manager.with_fallback, OP, ScriptedOperation({}))

    assert (result, spec.name) == ("ok", "alpha")


async def test_async_with_runs_closers_once_in_reverse_order() -> None:
    closed: list[str] = []

    def closer(name: str) -> Any:
        async def close() -> None:
            await anyio.lowlevel.checkpoint()
            closed.append(name)

        return close

    async with make_manager() as manager:
        manager.add_closer(closer("first"))
        manager.add_closer(closer("second"))
        result, _ = await manager.with_fallback(OP, ScriptedOperation({}))
        assert result == "ok"
        assert closed == []

    assert closed == ["second", "first"]
    await manager.aclose()
    assert closed == ["second", "first"]


async def test_every_closer_runs_even_when_one_fails() -> None:
    closed: list[str] = []

    async def broken() -> None:
        raise OSError("socket already gone")

    async def close() -> None:
        closed.append("client")

    manager = make_manager()
    manager.add_closer(close)
    manager.add_closer(broken)
    with pytest.raises(OSError, match="already gone"):
        await manager.aclose()
    assert closed == ["client"]


async def test_aclose_without_async_with_runs_closers() -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("client")

    manager = make_manager()
    manager.add_closer(close)

    await manager.aclose()
    await manager.aclose()

    assert closed == ["client"]


async def test_default_table_when_priorities_is_none() -> None:
    manager = PlatformManager(clock=FakeClock(), environ={})

    assert manager.operations == (
        "image_generation",
        "image_editing",
        "text_generation",
        "video_generation",
    )
    assert names(manager, "image_generation") == [
        "pollinations",
        "huggingface",
        "fal",
        "flux_pro",
        "stability",
        "replicate",
    ]
    assert names(manager, "text_generation") == [
        "groq",
        "xai",
        "google",
        "together",
        "openai",
        "anthropic",
    ]
    # pollinations needs no key, so it is usable with an empty environment.
    assert (await manager.get_platform("image_generation")).name == "pollinations"
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.get_platform("text_generation")
    assert {a.skip_reason for a in caught.value.attempts} == {"missing_api_key"}


async def test_default_table_has_real_video_models_needing_keys() -> None:
    manager = PlatformManager(clock=FakeClock(), environ={})
    operation = ScriptedOperation({})

    assert [(spec.name, spec.api_key_env) for spec in manager.platforms("video_generation")] == [
        ("replicate", "REPLICATE_API_TOKEN"),
        ("fal", "FAL_KEY"),
    ]
    assert all("/" in spec.model for spec in manager.platforms("video_generation"))
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback("video_generation", operation)
    assert {a.skip_reason for a in caught.value.attempts} == {"missing_api_key"}
    assert operation.calls == []


async def test_default_table_keyless_image_platforms_work_with_no_keys() -> None:
    manager = PlatformManager(clock=FakeClock(), environ={})

    keyless = [s.name for s in manager.platforms("image_generation") if s.api_key_env is None]
    assert keyless == ["pollinations", "huggingface"]


async def test_key_values_never_reach_repr_health_or_errors() -> None:
    canary = "sk-canary-0123456789abcdef"
    manager = PlatformManager(
        {OP: [("stability", "sd-3.5-large"), ("replicate", "flux")]},
        clock=FakeClock(),
        environ={"STABILITY_API_KEY": canary, "REPLICATE_API_TOKEN": canary + "-r8"},
    )

    async def leaky(platform: PlatformSpec) -> str:
        raise Transient(f"401 Incorrect API key provided: {canary}")

    spec = await manager.get_platform(OP)
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(OP, leaky)

    assert canary not in repr(spec)
    assert "STABILITY_API_KEY" in repr(spec)
    assert canary not in str(caught.value)
    assert canary not in json.dumps(manager.get_health_status())
    assert canary not in repr(manager)


async def test_key_values_never_reach_log_records(caplog: pytest.LogCaptureFixture) -> None:
    canary = "canary-value-that-is-long"
    manager = PlatformManager(
        {OP: [("stability", "sd-3.5-large"), ("replicate", "flux")]},
        clock=FakeClock(),
        environ={"STABILITY_API_KEY": canary, "REPLICATE_API_TOKEN": "r8_other_value"},
    )

    async def leaky(platform: PlatformSpec) -> str:
        if platform.name == "stability":
            raise CreditExhausted(f"key {canary} is out of credit")
        return "ok"

    with caplog.at_level(logging.DEBUG, logger="failover"):
        result, spec = await manager.with_fallback(OP, leaky)

    assert (result, spec.name) == ("ok", "replicate")
    assert any("Credit issue on stability" in record.getMessage() for record in caplog.records)
    assert all(canary not in record.getMessage() for record in caplog.records)
    await manager.aclose()


def test_manager_repr_names_operations_and_platforms() -> None:
    text = repr(make_manager())

    assert "image_editing" in text
    assert "alpha" in text


# -- get_platform(attempt=N), as the original manager's retry loops call it --------------------


def _three_platforms(**settings: Any) -> PlatformManager:
    specs = [PlatformSpec(name, f"{name}-1", api_key_env=None) for name in ("a", "b", "c")]
    return PlatformManager({OP: specs}, clock=FakeClock(), **settings)


async def test_get_platform_attempt_walks_the_usable_platforms_in_order() -> None:
    manager = _three_platforms()
    manager.isolate("b", OP)
    assert (await manager.get_platform(OP, attempt=0)).name == "a"
    assert (await manager.get_platform(OP, attempt=1)).name == "c"  # b is skipped
    assert manager.get_platform_sync(OP, attempt=1).name == "c"
    with pytest.raises(AllPlatformsFailed, match=r"attempt=2 asked for but only 2 usable"):
        await manager.get_platform(OP, attempt=2)


async def test_get_platform_honours_max_attempts() -> None:
    manager = _three_platforms(max_attempts=2)
    assert (await manager.get_platform(OP, attempt=1)).name == "b"
    with pytest.raises(AllPlatformsFailed, match=r"attempt=2 is past max_attempts=2"):
        await manager.get_platform(OP, attempt=2)
    with pytest.raises(AllPlatformsFailed, match=r"attempt=1 is past max_attempts=1"):
        await manager.get_platform(OP, attempt=1, max_attempts=1)


@pytest.mark.parametrize(
    ("settings", "parameter"),
    [
        ({"attempt": -1}, "attempt"),
        ({"attempt": "1"}, "attempt"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
async def test_get_platform_rejects_a_bad_attempt(settings: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        await _three_platforms().get_platform(OP, **settings)


async def test_a_platform_spec_takes_its_key_variable_from_the_known_table() -> None:
    assert PlatformSpec("openai", "gpt-4o-mini").api_key_env == "OPENAI_API_KEY"
    assert PlatformSpec("openai", "gpt-4o-mini", api_key_env=None).api_key_env is None
    assert PlatformSpec("mine", "m-1").api_key_env is None
    spec = PlatformSpec("openai", "gpt-4o-mini")
    assert spec == PlatformSpec("openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    assert "OPENAI_API_KEY" in repr(spec)
    manager = PlatformManager({OP: [spec]}, environ={})
    with pytest.raises(AllPlatformsFailed, match="no platform has its API key: set OPENAI_API_KEY"):
        await manager.get_platform(OP)


async def test_the_error_names_every_variable_to_set() -> None:
    manager = PlatformManager(
        {OP: [("groq", "llama"), ("openai", "gpt-4o-mini"), ("anthropic", "claude")]}, environ={}
    )
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(OP, lambda platform: None)
    assert caught.value.reason == (
        "no platform has its API key: set GROQ_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY"
    )
