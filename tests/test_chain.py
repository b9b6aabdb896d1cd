"""The fallback chain, through PlatformManager: DESIGN §2's table row by row, then breakers
under concurrency, cancellation, retry, timeouts, deadlines, policies and ordering.

Time is a FakeClock: nothing here sleeps for real.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pybreaker
import pytest
import tenacity

import failover.policies.policy
import failover.policies.retry
from failover import (
    NO_RETRY,
    AllPlatformsFailed,
    AttemptTimeout,
    AuthFailed,
    BadRequest,
    Classification,
    CreditExhausted,
    ErrorKind,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Retry,
    Transient,
)
from failover._engine.route import Pair
from failover.testing import FakeClock, ScriptedOperation

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
IMAGE = "image_editing"

ALPHA = PlatformSpec("alpha", "a-1", estimated_cost=0.03)
BETA = PlatformSpec("beta", "b-1", estimated_cost=0.01)
GAMMA = PlatformSpec("gamma", "g-1", estimated_cost=0.01)


def make(
    clock: FakeClock | None = None,
    priorities: Mapping[str, Sequence[PlatformSpec]] | None = None,
    **kwargs: Any,
) -> tuple[PlatformManager, FakeClock]:
    clock = clock or FakeClock()
    if priorities is None:
        priorities = {TEXT: [ALPHA, BETA, GAMMA], IMAGE: [ALPHA, BETA]}
    kwargs.setdefault("environ", {})
    return PlatformManager(priorities, clock=clock, **kwargs), clock


def pair(manager: PlatformManager, platform: str, operation: str = TEXT) -> Pair:
    return manager._pairs[(platform, operation)]


def detail(manager: PlatformManager, platform: str, operation: str = TEXT) -> dict[str, Any]:
    operations: dict[str, Any] = manager.get_health_status()[platform]["operations"]
    return dict(operations[operation])


async def usable(manager: PlatformManager, operation: str = TEXT) -> str:
    return (await manager.get_platform(operation)).name


async def skip_reasons_of_get_platform(manager: PlatformManager) -> dict[str, str | None]:
    """Why get_platform skips alpha, read with beta and gamma briefly forced open."""
    manager.force_open("beta", TEXT)
    manager.force_open("gamma", TEXT)
    try:
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.get_platform(TEXT)
    finally:
        manager.reset("beta", TEXT)
        manager.reset("gamma", TEXT)
    return {a.platform: a.skip_reason for a in caught.value.attempts}


async def wait_until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Let other tasks run until ``predicate()`` holds (no time passes)."""
    for _ in range(10_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{what} never became true")


def outcomes(error: AllPlatformsFailed) -> list[tuple[str, str, str | None]]:
    return [(a.platform, a.outcome, a.skip_reason) for a in error.attempts]


# == DESIGN §2, one test per row =================================================================


@pytest.mark.parametrize(
    "error",
    [
        Transient("upstream hiccup"),
        TimeoutError("read timed out"),
        ConnectionError("reset by peer"),
        httpx.HTTPStatusError(
            "503",
            request=httpx.Request("POST", "https://alpha.example/v1"),
            response=httpx.Response(503, request=httpx.Request("POST", "https://alpha.example")),
        ),
        httpx.HTTPStatusError(
            "408",
            request=httpx.Request("POST", "https://alpha.example/v1"),
            response=httpx.Response(408, request=httpx.Request("POST", "https://alpha.example")),
        ),
    ],
)
async def test_row_transient_counts_opens_the_pair_after_three_and_falls_back(
    error: Exception,
) -> None:
    manager, _ = make()
    operation = ScriptedOperation({"alpha": [error]})
    for expected_failures in (1, 2, 3):
        result, spec = await manager.with_fallback(TEXT, operation)
        assert (result, spec.name) == ("ok", "beta")
        assert pair(manager, "alpha").breaker.consecutive_failures == expected_failures
    assert operation.calls == ["alpha", "beta"] * 3
    assert detail(manager, "alpha")["state"] == "open"
    assert detail(manager, "alpha")["last_error_kind"] == "transient"
    # Open: skipped without being called.
    result, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls[-1:] == ["beta"]
    assert operation.calls.count("alpha") == 3
    # The breaker is per pair: alpha still serves the other operation.
    assert await usable(manager, IMAGE) == "alpha"


async def test_row_rate_limited_cools_the_pair_for_retry_after_and_is_not_retried() -> None:
    manager, clock = make(
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(5), tenacity.wait_none()))
    )
    operation = ScriptedOperation({"alpha": [RateLimited(retry_after=30), "alpha-ok"]})
    result, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"]  # not retried on alpha
    assert pair(manager, "alpha").breaker.consecutive_failures == 0
    assert await usable(manager) == "beta"
    assert await usable(manager, IMAGE) == "alpha"  # only the pair cools
    clock.advance(29.9)
    assert await usable(manager) == "beta"
    clock.advance(0.1)
    result, spec = await manager.with_fallback(TEXT, operation)
    assert (result, spec.name) == ("alpha-ok", "alpha")


async def test_row_rate_limited_retry_after_is_capped() -> None:
    manager, clock = make(cache_ttl_seconds=300, rate_limit_max_seconds=120)
    operation = ScriptedOperation({"alpha": [RateLimited(retry_after=3000)]})
    await manager.with_fallback(TEXT, operation)
    clock.advance(119)
    assert await usable(manager) == "beta"
    clock.advance(1)
    assert await usable(manager) == "alpha"


async def test_row_rate_limited_without_retry_after_cools_the_pair_for_the_ttl() -> None:
    manager, clock = make(cache_ttl_seconds=300)
    operation = ScriptedOperation({"alpha": [RateLimited()]})
    await manager.with_fallback(TEXT, operation)
    assert (await skip_reasons_of_get_platform(manager))["alpha"] == "rate_limited"
    clock.advance(299)
    assert await usable(manager) == "beta"
    clock.advance(1)
    assert await usable(manager) == "alpha"


async def test_row_credit_cools_the_whole_platform_across_operations_then_comes_back() -> None:
    manager, clock = make(cache_ttl_seconds=300)
    operation = ScriptedOperation({"alpha": [CreditExhausted("out of credits")]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"]
    # The other operation never called alpha, yet skips it: the platform is out of credits.
    image_call = ScriptedOperation({})
    _, spec = await manager.with_fallback(IMAGE, image_call)
    assert spec.name == "beta"
    assert image_call.calls == ["beta"]
    assert (await skip_reasons_of_get_platform(manager))["alpha"] == "credit"
    health = manager.get_health_status()["alpha"]
    assert health["is_healthy"] is False
    assert health["cooldown_reason"] == "credit"
    assert pair(manager, "alpha").breaker.consecutive_failures == 0  # not a breaker matter
    assert detail(manager, "alpha")["state"] == "closed"
    clock.advance(299)
    assert await usable(manager, IMAGE) == "beta"
    clock.advance(1)
    # Never permanent: back for both operations after the TTL.
    assert await usable(manager) == "alpha"
    assert await usable(manager, IMAGE) == "alpha"
    _result, spec = await manager.with_fallback(IMAGE, ScriptedOperation({}))
    assert spec.name == "alpha"


async def test_row_credit_exhausted_again_and_again_is_still_never_permanent() -> None:
    manager, clock = make(cache_ttl_seconds=60)
    operation = ScriptedOperation({"alpha": [CreditExhausted()]})
    for _ in range(5):
        await manager.with_fallback(TEXT, operation)
        assert await usable(manager) == "beta"
        clock.advance(60)
        assert await usable(manager) == "alpha"
    assert operation.calls.count("alpha") == 5


async def test_row_auth_cools_the_whole_platform_for_auth_cooldown_seconds() -> None:
    manager, clock = make(cache_ttl_seconds=300, auth_cooldown_seconds=1000)
    operation = ScriptedOperation({"alpha": [AuthFailed("bad key", status_code=401)]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert await usable(manager, IMAGE) == "beta"
    assert (await skip_reasons_of_get_platform(manager))["alpha"] == "auth"
    clock.advance(999)
    assert await usable(manager) == "beta"
    clock.advance(1)
    assert await usable(manager) == "alpha"
    assert await usable(manager, IMAGE) == "alpha"


async def test_row_auth_cooldown_defaults_to_longer_than_the_ttl() -> None:
    manager, clock = make(cache_ttl_seconds=300)
    await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [AuthFailed()]}))
    clock.advance(300)
    assert await usable(manager) == "beta"
    clock.advance(900)
    assert await usable(manager) == "alpha"


async def test_row_plain_bad_request_raises_the_original_error_at_once() -> None:
    manager, _ = make()
    error = BadRequest("'messages' is required")
    operation = ScriptedOperation({"alpha": [error]})
    with pytest.raises(BadRequest) as caught:
        await manager.with_fallback(TEXT, operation)
    assert caught.value is error
    assert operation.calls == ["alpha"]  # no other platform tried
    assert pair(manager, "alpha").breaker.consecutive_failures == 0
    health = manager.get_health_status()["alpha"]
    assert health["is_healthy"] is True
    assert health["total_requests"] == 0
    assert detail(manager, "alpha")["last_error_kind"] is None


async def test_row_http_400_raises_the_original_httpx_error() -> None:
    manager, _ = make()
    request = httpx.Request("POST", "https://alpha.example/v1")
    error = httpx.HTTPStatusError(
        "400", request=request, response=httpx.Response(400, text="bad field", request=request)
    )
    operation = ScriptedOperation({"alpha": [error]})
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await manager.with_fallback(TEXT, operation)
    assert caught.value is error
    assert operation.calls == ["alpha"]


@pytest.mark.parametrize("reason", ["content_policy", "context_window"])
async def test_row_content_policy_and_context_window_go_on_with_health_untouched(
    reason: str,
) -> None:
    manager, _ = make()
    operation = ScriptedOperation({"alpha": [BadRequest("no", reason=reason)]})
    for _ in range(5):
        _result, spec = await manager.with_fallback(TEXT, operation)
        assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"] * 5  # never opened, never cooled
    assert pair(manager, "alpha").breaker.consecutive_failures == 0
    assert manager.get_health_status()["alpha"]["total_requests"] == 0
    assert detail(manager, "alpha")["state"] == "closed"


async def test_row_request_faults_that_go_on_are_configurable() -> None:
    goes_on, _ = make(continue_on={"bad_request"})
    operation = ScriptedOperation({"alpha": [BadRequest("no")]})
    _, spec = await goes_on.with_fallback(TEXT, operation)
    assert spec.name == "beta"

    raises, _ = make(continue_on=())
    policy_error = BadRequest("no", reason="content_policy")
    operation = ScriptedOperation({"alpha": [policy_error]})
    with pytest.raises(BadRequest) as caught:
        await raises.with_fallback(TEXT, operation)
    assert caught.value is policy_error
    assert operation.calls == ["alpha"]


async def test_row_cancelled_by_a_cancel_scope_counts_nothing_and_reraises_unchanged() -> None:
    manager, _ = make(failure_threshold=1)
    started = anyio.Event()
    inside: list[BaseException] = []
    outside: list[BaseException] = []
    calls: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        started.set()
        try:
            await anyio.sleep_forever()
        except BaseException as exc:
            inside.append(exc)
            raise
        return "never"

    async def caller() -> None:
        try:
            await manager.with_fallback(TEXT, operation)
        except BaseException as exc:
            outside.append(exc)
            raise

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert calls == ["alpha"]  # not retried, no fallback
    assert len(outside) == 1
    assert isinstance(outside[0], anyio.get_cancelled_exc_class())
    assert outside[0] is inside[0]
    breaker = pair(manager, "alpha").breaker
    assert breaker.consecutive_failures == 0
    assert breaker.state.value == "closed"  # threshold 1, yet not opened
    assert manager.get_health_status()["alpha"]["total_requests"] == 0
    assert await usable(manager) == "alpha"


async def test_row_cancelled_by_a_failing_sibling_counts_nothing() -> None:
    manager, _ = make(failure_threshold=1)
    started = anyio.Event()
    calls: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        started.set()
        await anyio.sleep_forever()
        return "never"

    async def sibling() -> None:
        await started.wait()
        raise ValueError("sibling failed")

    async def run_both() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.with_fallback, TEXT, operation)
            tg.start_soon(sibling)

    with pytest.raises(ExceptionGroup) as caught:
        await run_both()
    assert [type(exc) for exc in caught.value.exceptions] == [ValueError]
    assert calls == ["alpha"]
    assert pair(manager, "alpha").breaker.consecutive_failures == 0
    assert manager.get_health_status()["alpha"]["total_requests"] == 0


async def test_row_cancelled_half_open_probe_leaves_the_probe_slot_free() -> None:
    manager, clock = make(cache_ttl_seconds=300)
    for _ in range(3):
        await manager.report_failure(ALPHA, TEXT, Transient())
    clock.advance(300)
    breaker = pair(manager, "alpha").breaker
    started = anyio.Event()

    async def hanging(platform: PlatformSpec) -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.with_fallback, TEXT, hanging)
            await started.wait()
            assert len(breaker.probes) == 1
            assert await usable(manager) == "beta"  # the one probe slot is taken
            scope.cancel()
    assert breaker.probes == ()
    assert breaker.state.value == "half_open"
    assert await usable(manager) == "alpha"
    operation = ScriptedOperation({})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "alpha"  # the freed slot let this call probe, and it closed the pair
    assert breaker.state.value == "closed"


# == half-open under concurrency and probe leases =================================================


@pytest.mark.parametrize("limit", [1, 3])
async def test_half_open_admits_exactly_half_open_max_calls_of_100_concurrent_callers(
    limit: int,
) -> None:
    manager, clock = make(half_open_max_calls=limit, cache_ttl_seconds=60)
    manager.force_open("alpha", TEXT)
    clock.advance(60)
    gate = anyio.Event()
    in_flight = peak = 0
    results: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        nonlocal in_flight, peak
        if platform.name == "alpha":
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await gate.wait()
            finally:
                in_flight -= 1
        return platform.name

    async def caller() -> None:
        result, _ = await manager.with_fallback(TEXT, operation)
        results.append(result)

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(caller)
        await wait_until(lambda: len(results) == 100 - limit, "the non-probes to fall back")
        assert in_flight == limit
        assert len(pair(manager, "alpha").breaker.probes) == limit
        assert results == ["beta"] * (100 - limit)
        gate.set()
    assert peak == limit
    assert results.count("alpha") == limit
    assert detail(manager, "alpha")["state"] == "closed"


async def test_half_open_callers_without_a_fallback_are_refused_with_reason_open() -> None:
    manager, clock = make(priorities={TEXT: [ALPHA]}, cache_ttl_seconds=60)
    manager.force_open("alpha", TEXT)
    clock.advance(60)
    gate = anyio.Event()
    refused: list[AllPlatformsFailed] = []
    answered: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        await gate.wait()
        return "probe-ok"

    async def caller() -> None:
        try:
            result, _ = await manager.with_fallback(TEXT, operation)
            answered.append(result)
        except AllPlatformsFailed as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(caller)
        await wait_until(lambda: len(refused) == 99, "99 refusals")
        gate.set()
    assert answered == ["probe-ok"]
    assert {tuple(outcomes(exc)) for exc in refused} == {(("alpha", "skipped", "open"),)}


async def test_a_hung_probe_loses_its_lease_and_the_next_caller_probes() -> None:
    manager, clock = make(cache_ttl_seconds=300, probe_lease_seconds=30)
    manager.force_open("alpha", TEXT)
    clock.advance(300)
    release_hung = anyio.Event()
    hung_started = anyio.Event()

    async def hangs(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            hung_started.set()
            await release_hung.wait()
            raise Transient("finally failed")
        return platform.name

    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.with_fallback, TEXT, hangs)
        await hung_started.wait()
        assert await usable(manager) == "beta"
        clock.advance(29)
        assert await usable(manager) == "beta"
        clock.advance(1)  # the lease runs out
        assert await usable(manager) == "alpha"
        fresh = ScriptedOperation({})
        _, spec = await manager.with_fallback(TEXT, fresh)
        assert spec.name == "alpha"
        assert detail(manager, "alpha")["state"] == "closed"
        release_hung.set()  # the stale probe now fails: ignored by the breaker
    assert detail(manager, "alpha")["state"] == "closed"
    assert pair(manager, "alpha").breaker.consecutive_failures == 0


# == cancellation with a FakeClock ===============================================================


async def test_cancellation_during_an_attempt_is_not_counted_or_retried() -> None:
    manager, clock = make(
        failure_threshold=1,
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(5), tenacity.wait_none())),
    )
    calls: list[str] = []

    async def slow(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        await clock.sleep(100)
        return "late"

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.with_fallback, TEXT, slow)
            await wait_until(lambda: clock.sleepers == 1, "the attempt to start sleeping")
            scope.cancel()
    assert scope.cancelled_caught
    assert calls == ["alpha"]
    assert pair(manager, "alpha").breaker.consecutive_failures == 0
    assert detail(manager, "alpha")["state"] == "closed"
    assert manager.get_health_status()["alpha"]["total_requests"] == 0


async def test_cancellation_during_a_retry_wait_stops_the_call_cleanly() -> None:
    manager, clock = make(
        failure_threshold=5,
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(3), tenacity.wait_fixed(10))),
    )
    operation = ScriptedOperation({"alpha": [Transient("blip")]})
    outside: list[BaseException] = []

    async def caller() -> None:
        try:
            await manager.with_fallback(TEXT, operation)
        except BaseException as exc:
            outside.append(exc)
            raise

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await wait_until(lambda: clock.sleepers == 1, "the retry wait to begin")
            assert operation.calls == ["alpha"]
            scope.cancel()
    assert scope.cancelled_caught
    assert len(outside) == 1
    assert isinstance(outside[0], anyio.get_cancelled_exc_class())
    assert operation.calls == ["alpha"]  # no retry after the cancelled wait, no fallback
    assert pair(manager, "alpha").breaker.consecutive_failures == 1  # only the real failure
    assert clock.now() == 1_000.0


# == retry on the same platform (tenacity strategies) =============================================


def retry_manager(retry: Retry, **kwargs: Any) -> tuple[PlatformManager, FakeClock]:
    kwargs.setdefault("failure_threshold", 10)
    return make(FakeClock(autojump=True), policy=Policy(retry=retry), **kwargs)


async def test_retry_stop_after_attempt_and_wait_fixed() -> None:
    manager, clock = retry_manager(Retry(tenacity.stop_after_attempt(3), tenacity.wait_fixed(2)))
    operation = ScriptedOperation({"alpha": [Transient(), Transient(), "third time"]})
    result, spec = await manager.with_fallback(TEXT, operation)
    assert (result, spec.name) == ("third time", "alpha")
    assert operation.calls == ["alpha"] * 3
    assert clock.now() == 1_004.0  # two waits of 2s on the fake clock
    assert pair(manager, "alpha").breaker.consecutive_failures == 0


async def test_retry_gives_up_after_stop_and_falls_back() -> None:
    manager, clock = retry_manager(Retry(tenacity.stop_after_attempt(2), tenacity.wait_fixed(1)))
    operation = ScriptedOperation({"alpha": [Transient()]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "alpha", "beta"]
    assert clock.now() == 1_001.0


@pytest.mark.parametrize(("wait", "attempts"), [(4, 4), (1, 5)])
async def test_retry_with_combined_stops_uses_the_fake_clock(wait: float, attempts: int) -> None:
    stop = tenacity.stop_after_attempt(5) | tenacity.stop_after_delay(10)
    manager, _ = retry_manager(Retry(stop, tenacity.wait_fixed(wait)), max_attempts=10)
    operation = ScriptedOperation({"alpha": [Transient()]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    # wait 4s: attempts at t=0, 4, 8, 12 -> the delay stops it; wait 1s: 5 attempts first.
    assert operation.calls.count("alpha") == attempts


async def test_retry_and_combination_needs_both_stops() -> None:
    stop = tenacity.stop_after_attempt(2) & tenacity.stop_after_delay(5)
    manager, _ = retry_manager(Retry(stop, tenacity.wait_fixed(1)), max_attempts=20)
    operation = ScriptedOperation({"alpha": [Transient()]})
    await manager.with_fallback(TEXT, operation)
    # Attempts at t=0..5: the attempt count alone would stop at 2, the delay holds it to t=5.
    assert operation.calls.count("alpha") == 6


async def test_stop_before_delay_sees_the_upcoming_wait() -> None:
    stop = tenacity.stop_before_delay(10)
    manager, clock = retry_manager(Retry(stop, tenacity.wait_fixed(4)), max_attempts=20)
    operation = ScriptedOperation({"alpha": [Transient()]})
    await manager.with_fallback(TEXT, operation)
    # t=0, 4 -> the next attempt would start at 8 (< 10): made; after it, 12 would not be.
    assert operation.calls.count("alpha") == 3
    assert clock.now() == 1_008.0


async def test_retry_if_exception_type_narrows_which_transient_failures_are_retried() -> None:
    retry = Retry(
        tenacity.stop_after_attempt(3),
        tenacity.wait_none(),
        tenacity.retry_if_exception_type(TimeoutError),
    )
    manager, _ = retry_manager(retry)
    connection = ScriptedOperation({"alpha": [ConnectionError("reset")]})
    await manager.with_fallback(TEXT, connection)
    assert connection.calls == ["alpha", "beta"]
    timeout = ScriptedOperation({"alpha": [TimeoutError("slow")]})
    await manager.with_fallback(TEXT, timeout)
    assert timeout.calls == ["alpha", "alpha", "alpha", "beta"]


@pytest.mark.parametrize(
    "error",
    [
        CreditExhausted(),
        RateLimited(retry_after=1),
        AuthFailed(),
        BadRequest(reason="content_policy"),
        BadRequest(reason="context_window"),
    ],
)
async def test_credit_rate_auth_and_request_faults_are_never_retried(error: Exception) -> None:
    manager, _ = retry_manager(
        Retry(tenacity.stop_after_attempt(5), tenacity.wait_none(), tenacity.retry_always)
    )
    operation = ScriptedOperation({"alpha": [error]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"]


async def test_retry_state_is_built_only_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = failover.policies.retry.RetryRun

    def counting(*args: Any) -> Any:
        built.append(args)
        return real(*args)

    monkeypatch.setattr(failover.policies.retry, "RetryRun", counting)
    manager, _ = retry_manager(Retry(tenacity.stop_after_attempt(3), tenacity.wait_none()))
    for _ in range(10):
        await manager.with_fallback(TEXT, ScriptedOperation({}))
    assert built == []
    await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [Transient(), "ok"]}))
    assert len(built) == 1


# == attempt timeout and deadline =================================================================


async def test_attempt_timeout_counts_as_a_transient_failure_and_falls_back() -> None:
    manager, clock = make(failure_threshold=1, policy=Policy(attempt_timeout=5))
    results: list[tuple[str, str]] = []

    async def operation(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            await clock.sleep(100)
        return platform.name

    async def caller() -> None:
        result, spec = await manager.with_fallback(TEXT, operation)
        results.append((result, spec.name))

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "alpha to start")
        clock.advance(4.9)
        await anyio.lowlevel.checkpoint()
        assert results == []
        clock.advance(0.1)
    assert results == [("beta", "beta")]
    assert detail(manager, "alpha")["state"] == "open"  # counted: threshold 1
    # Counted as transient (it opened the pair), labelled as the caller's own time limit.
    assert detail(manager, "alpha")["last_error_kind"] == "attempt_timeout"


async def test_attempt_timeout_is_reported_as_attempt_timeout() -> None:
    manager, clock = make(priorities={TEXT: [ALPHA]}, policy=Policy(attempt_timeout=5))
    errors: list[AllPlatformsFailed] = []

    async def operation(platform: PlatformSpec) -> str:
        await clock.sleep(100)
        return "late"

    async def caller() -> None:
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.with_fallback(TEXT, operation)
        errors.append(caught.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "alpha to start")
        clock.advance(5)
    (attempt,) = errors[0].attempts
    assert attempt.outcome == "failure"
    assert attempt.error_type == "AttemptTimeout"
    assert attempt.error_kind is ErrorKind.TRANSIENT
    assert isinstance(attempt.error, AttemptTimeout)
    assert attempt.duration == 5.0


async def test_deadline_raises_all_platforms_failed_and_does_not_count_the_cut_attempt() -> None:
    manager, clock = make(failure_threshold=1, policy=Policy(deadline=10))
    calls: list[str] = []
    errors: list[AllPlatformsFailed] = []

    async def operation(platform: PlatformSpec) -> str:
        calls.append(platform.name)
        if platform.name == "alpha":
            clock.advance(4)
            raise Transient("first failure")
        await clock.sleep(100)
        return "late"

    async def caller() -> None:
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.with_fallback(TEXT, operation)
        errors.append(caught.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "beta to start")
        clock.advance(6)
    (error,) = errors
    assert error.reason == "deadline of 10s exceeded"
    assert "deadline of 10s exceeded" in str(error)
    assert calls == ["alpha", "beta"]  # gamma never started
    assert [(a.platform, a.outcome) for a in error.attempts] == [
        ("alpha", "failure"),
        ("beta", "cancelled"),
    ]
    assert pair(manager, "alpha").breaker.consecutive_failures == 1
    assert pair(manager, "beta").breaker.consecutive_failures == 0  # the cut attempt
    assert detail(manager, "beta")["state"] == "closed"
    assert manager.get_health_status()["beta"]["total_requests"] == 0


async def test_deadline_cuts_a_retry_wait() -> None:
    retry = Retry(tenacity.stop_after_attempt(10), tenacity.wait_fixed(30))
    manager, clock = make(failure_threshold=10, policy=Policy(retry=retry, deadline=20))
    operation = ScriptedOperation({"alpha": [Transient()]})
    errors: list[AllPlatformsFailed] = []

    async def caller() -> None:
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.with_fallback(TEXT, operation)
        errors.append(caught.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "the retry wait")
        clock.advance(20)
    assert errors[0].reason == "deadline of 20s exceeded"
    assert operation.calls == ["alpha"]


# == policies: per manager, per operation, per platform ===========================================


async def test_policy_precedence_platform_over_operation_over_manager() -> None:
    manager, _ = make(
        FakeClock(autojump=True),
        failure_threshold=10,
        policy=Policy(retry=Retry(tenacity.stop_after_attempt(2), tenacity.wait_none())),
        operation_policies={
            TEXT: Policy(retry=Retry(tenacity.stop_after_attempt(3), tenacity.wait_none()))
        },
        platform_policies={"beta": Policy(retry=NO_RETRY)},
        max_attempts=20,
    )
    text = ScriptedOperation({name: [Transient()] for name in ("alpha", "beta", "gamma")})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, text)
    # alpha: the operation's 3; beta: its own NO_RETRY; gamma: the operation's 3.
    assert text.calls == ["alpha"] * 3 + ["beta"] + ["gamma"] * 3

    image = ScriptedOperation({"alpha": [Transient()], "beta": [Transient()]})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(IMAGE, image)
    # alpha: the manager's 2; beta: NO_RETRY still (platform policies span operations).
    assert image.calls == ["alpha"] * 2 + ["beta"]


async def test_a_more_specific_policy_can_switch_an_inherited_timeout_off() -> None:
    manager, clock = make(
        policy=Policy(attempt_timeout=5),
        platform_policies={"alpha": Policy(attempt_timeout=math.inf)},
    )
    results: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        await clock.sleep(50)
        return platform.name

    async def caller() -> None:
        result, _ = await manager.with_fallback(TEXT, operation)
        results.append(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "alpha to start")
        clock.advance(50)  # far past the manager's 5s: alpha has no timeout
    assert results == ["alpha"]


async def test_operation_deadline_overrides_the_managers() -> None:
    manager, clock = make(
        policy=Policy(deadline=5), operation_policies={IMAGE: Policy(deadline=math.inf)}
    )
    results: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        await clock.sleep(50)
        return platform.name

    async def caller() -> None:
        result, _ = await manager.with_fallback(IMAGE, operation)
        results.append(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "alpha to start")
        clock.advance(50)
    assert results == ["alpha"]


# == chain shape: max_attempts, fallback switch, ordering, keys ==================================


async def test_max_attempts_bounds_the_platforms_tried() -> None:
    specs = [PlatformSpec(name, f"{name}-1") for name in ("p1", "p2", "p3", "p4")]
    manager, _ = make(priorities={TEXT: specs}, max_attempts=2)
    operation = ScriptedOperation({name: [Transient()] for name in ("p1", "p2", "p3", "p4")})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["p1", "p2"]
    assert caught.value.reason == "max_attempts=2 reached"


async def test_max_attempts_counts_retries_too() -> None:
    manager, _ = retry_manager(
        Retry(tenacity.stop_after_attempt(5), tenacity.wait_none()), max_attempts=3
    )
    operation = ScriptedOperation({"alpha": [Transient()]})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["alpha"] * 3
    assert caught.value.reason == "max_attempts=3 reached"


async def test_default_max_attempts_is_five() -> None:
    specs = [PlatformSpec(f"p{i}", "m") for i in range(7)]
    manager, _ = make(priorities={TEXT: specs})
    operation = ScriptedOperation({spec.name: [Transient()] for spec in specs})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, operation)
    assert len(operation.calls) == 5


async def test_fallback_disabled_tries_only_the_first_usable_platform() -> None:
    manager, _ = make(fallback_enabled=False)
    operation = ScriptedOperation({"alpha": [Transient("down")]})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["alpha"]
    assert caught.value.reason == "fallback disabled"
    # A skipped platform is not "tried": the first *usable* one is.
    manager.force_open("alpha", TEXT)
    operation = ScriptedOperation({"beta": [Transient("down")]})
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["beta"]
    assert outcomes(caught.value)[0] == ("alpha", "skipped", "open")


async def test_cost_ordering_puts_the_cheapest_first_and_ties_keep_priority() -> None:
    manager, _ = make(cost_optimization=True)
    assert await usable(manager) == "beta"
    operation = ScriptedOperation({name: [Transient()] for name in ("alpha", "beta", "gamma")})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["beta", "gamma", "alpha"]


async def test_quality_boost_keeps_priority_order_under_cost_optimization() -> None:
    manager, _ = make(cost_optimization=True)
    assert (await manager.get_platform(TEXT, quality_boost=True)).name == "alpha"
    operation = ScriptedOperation({})
    _, spec = await manager.with_fallback(TEXT, operation, failover_context={"quality_boost": True})
    assert spec.name == "alpha"


async def test_without_cost_optimization_priority_order_is_kept() -> None:
    manager, _ = make()
    operation = ScriptedOperation({name: [Transient()] for name in ("alpha", "beta", "gamma")})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["alpha", "beta", "gamma"]


async def test_custom_ordering_receives_the_call_context() -> None:
    seen: list[tuple[str, list[str], dict[str, Any]]] = []

    def by_region(
        operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Sequence[PlatformSpec]:
        seen.append((operation, [spec.name for spec in platforms], dict(context)))
        if context.get("region") == "eu":
            return [spec for spec in platforms if spec.name != "alpha"][::-1]
        return platforms

    manager, _ = make(ordering=by_region)
    assert (await manager.get_platform(TEXT, region="eu", tier=2)).name == "gamma"
    assert seen[-1] == (TEXT, ["alpha", "beta", "gamma"], {"region": "eu", "tier": 2})
    assert (await manager.get_platform(TEXT)).name == "alpha"
    assert seen[-1][2] == {}
    operation = ScriptedOperation({"gamma": [Transient()], "beta": [Transient()]})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, operation, failover_context={"region": "eu"})
    assert operation.calls == ["gamma", "beta"]  # alpha left out by the strategy


async def test_an_ordering_that_names_a_platform_twice_tries_it_once() -> None:
    def twice(
        operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Sequence[PlatformSpec]:
        return [platforms[1], platforms[1], platforms[0]]

    manager, _ = make(ordering=twice, when_all_unavailable="fail")
    operation = ScriptedOperation({"beta": [Transient()], "alpha": [Transient()]})
    with pytest.raises(AllPlatformsFailed):
        await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["beta", "alpha"]


async def test_missing_api_key_is_skipped_and_picked_up_once_the_key_appears() -> None:
    environ: dict[str, str] = {}
    keyed = PlatformSpec("alpha", "a-1", api_key_env="ALPHA_API_KEY")
    manager, _ = make(priorities={TEXT: [keyed, BETA]}, environ=environ)  # no error here
    operation = ScriptedOperation({})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["beta"]
    manager.force_open("beta", TEXT)
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.get_platform(TEXT)
    assert outcomes(caught.value) == [
        ("alpha", "skipped", "missing_api_key"),
        ("beta", "skipped", "open"),
    ]
    manager.reset("beta", TEXT)
    environ["ALPHA_API_KEY"] = "sk-test-value"
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "alpha"


async def test_after_a_success_no_other_platform_is_called() -> None:
    manager, _ = make()
    operation = ScriptedOperation({"alpha": [Transient(), "ok"]})
    await manager.with_fallback(TEXT, operation)
    assert operation.calls == ["alpha", "beta"]
    operation.calls.clear()
    for _ in range(3):
        _, spec = await manager.with_fallback(TEXT, operation)
        assert spec.name == "alpha"
    assert operation.calls == ["alpha"] * 3


async def test_all_platforms_failed_carries_every_attempt_without_provider_text() -> None:
    secret = "PROVIDER-SAID-sk-live-abcdef0123456789"
    keyed = PlatformSpec("delta", "d-1", api_key_env="DELTA_API_KEY")
    manager, clock = make(priorities={TEXT: [ALPHA, BETA, keyed, GAMMA]}, cache_ttl_seconds=300)
    await manager.report_failure(BETA, TEXT, CreditExhausted(secret))
    request = httpx.Request("POST", "https://gamma.example/v1")
    gamma_error = httpx.HTTPStatusError(
        f"Server error {secret}",
        request=request,
        response=httpx.Response(503, text=secret, request=request),
    )

    async def operation(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            clock.advance(1.5)
            raise Transient(secret)
        clock.advance(0.25)
        raise gamma_error

    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.with_fallback(TEXT, operation)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert error.operation == TEXT
    assert [
        (a.platform, a.model, a.outcome, a.error_type, a.error_kind, a.duration, a.skip_reason)
        for a in error.attempts
    ] == [
        ("alpha", "a-1", "failure", "Transient", ErrorKind.TRANSIENT, 1.5, None),
        ("beta", "b-1", "skipped", None, None, None, "credit"),
        ("delta", "d-1", "skipped", None, None, None, "missing_api_key"),
        ("gamma", "g-1", "failure", "HTTPStatusError", ErrorKind.TRANSIENT, 0.25, None),
    ]
    assert error.attempts[3].status_code == 503
    assert error.attempts[3].error is gamma_error
    assert error.last_error is gamma_error
    text = str(error)
    assert secret not in text
    assert secret not in repr(error)
    for name in ("alpha", "beta", "delta", "gamma", "credit", "missing_api_key", "HTTP 503"):
        assert name in text


# == breakers through the chain ===================================================================


async def test_success_threshold_needs_that_many_probe_successes_through_the_chain() -> None:
    manager, clock = make(success_threshold=2, cache_ttl_seconds=60)
    manager.force_open("alpha", TEXT)
    clock.advance(60)
    operation = ScriptedOperation({})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "alpha"
    assert detail(manager, "alpha")["state"] == "half_open"
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "alpha"
    assert detail(manager, "alpha")["state"] == "closed"


async def test_open_backoff_makes_each_failed_probe_reopen_for_longer() -> None:
    manager, clock = make(
        cache_ttl_seconds=10, open_backoff=3, max_open_seconds=60, failure_threshold=1
    )
    operation = ScriptedOperation({"alpha": [Transient()]})
    await manager.with_fallback(TEXT, operation)
    open_for = []
    for _ in range(3):
        breaker = pair(manager, "alpha").breaker
        wait = breaker.open_until - clock.now()
        open_for.append(wait)
        clock.advance(wait)
        await manager.with_fallback(TEXT, operation)  # the probe fails
    assert open_for == [10.0, 30.0, 60.0]
    assert operation.calls.count("alpha") == 4


async def test_many_concurrent_failures_open_the_pair_once() -> None:
    manager, _ = make()
    transitions: list[tuple[str, str]] = []

    class Recorder(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            transitions.append((old_state.name, new_state.name))

    manager.breaker("alpha", TEXT).add_listener(Recorder())
    gate = anyio.Event()
    waiting = 0
    results: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        nonlocal waiting
        if platform.name == "alpha":
            waiting += 1
            await gate.wait()
            raise Transient("down")
        return platform.name

    async def caller() -> None:
        result, _ = await manager.with_fallback(TEXT, operation)
        results.append(result)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller)
        await wait_until(lambda: waiting == 50, "all 50 calls to reach alpha")
        gate.set()
    assert results == ["beta"] * 50
    assert transitions == [("closed", "open")]
    # The 47 failures that arrived after the pair opened were admitted before it: not counted.
    assert pair(manager, "alpha").breaker.consecutive_failures == 3
    assert manager.breaker("alpha", TEXT).fail_counter == 3


async def test_a_failed_probe_is_not_retried_on_the_reopened_pair() -> None:
    retry = Retry(tenacity.stop_after_attempt(5), tenacity.wait_none())
    manager, clock = make(FakeClock(autojump=True), policy=Policy(retry=retry))
    manager.force_open("alpha", TEXT)
    clock.advance(300)
    operation = ScriptedOperation({"alpha": [Transient()]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha", "beta"]
    assert detail(manager, "alpha")["state"] == "open"


async def test_deadline_and_attempt_timeout_expiring_together_count_nothing() -> None:
    manager, clock = make(failure_threshold=1, policy=Policy(attempt_timeout=10, deadline=10))
    errors: list[AllPlatformsFailed] = []

    async def operation(platform: PlatformSpec) -> str:
        await clock.sleep(100)
        return "late"

    async def caller() -> None:
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.with_fallback(TEXT, operation)
        errors.append(caught.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await wait_until(lambda: clock.sleepers == 1, "alpha to start")
        clock.advance(10)
    assert errors[0].reason == "deadline of 10s exceeded"
    assert [(a.platform, a.outcome) for a in errors[0].attempts] == [("alpha", "cancelled")]
    assert detail(manager, "alpha")["state"] == "closed"
    assert pair(manager, "alpha").breaker.consecutive_failures == 0


# == what the chain logs ==========================================================================


async def test_the_chain_logs_what_the_old_manager_said(caplog: pytest.LogCaptureFixture) -> None:
    manager, _ = make(priorities={TEXT: [ALPHA, BETA, GAMMA], IMAGE: [GAMMA, BETA]})
    caplog.set_level(logging.DEBUG, logger="failover")
    for _ in range(3):
        await manager.with_fallback(TEXT, ScriptedOperation({"alpha": [Transient()]}))
    await manager.with_fallback(TEXT, ScriptedOperation({"beta": [CreditExhausted()]}))
    with pytest.raises(AllPlatformsFailed):  # gamma refuses the key, beta is out of credits
        await manager.with_fallback(IMAGE, ScriptedOperation({"gamma": [AuthFailed()]}))
    messages = [record.getMessage() for record in caplog.records if record.name == "failover"]
    text = "\n".join(messages)
    assert "Marking alpha unhealthy for text_generation after 3 consecutive failures" in text
    assert "Credit issue on beta" in text
    assert "API key problem on gamma" in text
    assert "Skipping unhealthy platform alpha for text_generation: open" in text
    assert "Selected platform gamma" in text
    assert "Completed text_generation using beta" in text
    assert "Skipping unhealthy platform beta for image_editing: credit" in text


async def test_a_failure_that_opens_the_pair_falls_back_without_waiting_to_retry() -> None:
    retry = Retry(tenacity.stop_after_attempt(5), tenacity.wait_fixed(30))
    manager, clock = make(FakeClock(autojump=True), policy=Policy(retry=retry))
    operation = ScriptedOperation({"alpha": [Transient()]})
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "beta"
    assert operation.calls == ["alpha"] * 3 + ["beta"]  # the third failure opened alpha
    assert clock.now() == 1_060.0  # two waits, not a third one spent on an open pair


async def test_a_platforms_own_classifier_decides_the_consequence() -> None:
    def model_loading_is_a_wait(exc: BaseException) -> Classification | None:
        if "model loading" in str(exc):
            return Classification(ErrorKind.RATE_LIMITED, retry_after=20)
        return None

    manager, clock = make(failure_threshold=1, classifiers={"alpha": [model_loading_is_a_wait]})
    operation = ScriptedOperation(
        {"alpha": [RuntimeError("model loading"), "warm"], "beta": [RuntimeError("model loading")]}
    )
    _, spec = await manager.with_fallback(TEXT, operation)
    assert spec.name == "gamma"  # beta has no such classifier: its error was transient
    assert detail(manager, "alpha")["state"] == "closed"  # a wait, not a breaker failure
    assert detail(manager, "alpha")["cooldown_reason"] == "rate_limited"
    assert detail(manager, "beta")["state"] == "open"
    clock.advance(20)
    result, spec = await manager.with_fallback(TEXT, operation)
    assert (result, spec.name) == ("warm", "alpha")
