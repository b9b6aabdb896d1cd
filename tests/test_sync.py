"""The synchronous API: the same engine, state and semantics as the async one, from threads.

Sync tests run in plain threads; where async code takes part it runs on both anyio backends.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import tenacity
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import failover
from failover import (
    AllPlatformsFailed,
    AttemptTimeout,
    BudgetOrder,
    Bulkhead,
    Chaos,
    Closed,
    ConfigError,
    CreditExhausted,
    Hedge,
    PlatformManager,
    PlatformSpec,
    Policy,
    Retry,
    SyncFallbackFunction,
    Transient,
    fallback,
)
from failover.testing import FakeClock, ScriptedOperation

OP = "text_generation"
PLATFORMS = [
    PlatformSpec("alpha", "a-1"),
    PlatformSpec("beta", "b-1"),
    PlatformSpec("gamma", "g-1"),
]


def make(**kwargs: Any) -> PlatformManager:
    kwargs.setdefault("clock", FakeClock())
    return PlatformManager({OP: PLATFORMS}, environ={}, **kwargs)


async def answer_with_name_async(platform: PlatformSpec) -> str:
    return platform.name


def answer_with_name(platform: PlatformSpec) -> str:
    return platform.name


def run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()


# -- the seed API, synchronously -----------------------------------------------------------------


def test_with_fallback_sync_falls_back_and_books_like_the_async_twin() -> None:
    manager = make()
    operation = ScriptedOperation(
        {"alpha": [CreditExhausted()], "beta": [Transient()], "gamma": ["ok"]}
    )
    result, spec = manager.with_fallback_sync(OP, operation.blocking)
    assert (result, spec.name) == ("ok", "gamma")
    health = manager.get_health_status()
    assert health["alpha"]["cooldown_reason"] == "credit"
    assert health["beta"]["operations"][OP]["consecutive_failures"] == 1
    assert health["gamma"]["total_requests"] == 1
    assert manager.get_platform_sync(OP).name == "beta"  # alpha cools down, beta is closed


def test_sync_and_async_callers_share_one_state(anyio_backend: str) -> None:
    manager = make()
    twice = ScriptedOperation({"alpha": [Transient(), Transient()], "beta": ["ok", "ok"]})
    manager.with_fallback_sync(OP, twice.blocking)
    manager.with_fallback_sync(
        OP, ScriptedOperation({"alpha": [Transient()], "beta": ["ok"]}).blocking
    )

    async def third() -> None:
        await manager.with_fallback(OP, ScriptedOperation({"alpha": [Transient()], "beta": ["ok"]}))

    anyio.run(third, backend=anyio_backend)
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "open"
    assert manager.get_platform_sync(OP).name == "beta"


def test_report_sync_twins_have_the_async_errors_and_effects() -> None:
    manager = make(failure_threshold=2)
    alpha = PLATFORMS[0]
    manager.report_failure_sync(alpha, OP, Transient(), response_time=0.5)
    manager.report_failure_sync(alpha, OP, Transient())
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "open"
    manager.reset("alpha", OP)
    manager.report_success_sync(alpha, OP, response_time=0.25)
    assert manager.get_health_status()["alpha"]["avg_response_time"] == pytest.approx(0.375)
    with pytest.raises(ConfigError, match="must be an exception instance"):
        manager.report_failure_sync(alpha, OP, "boom")  # type: ignore[arg-type]
    with pytest.raises(AllPlatformsFailed):
        make().get_platform_sync("video_generation")  # no platforms configured for it


def test_fallback_on_a_plain_def_is_a_plain_function_with_per_platform_implementations() -> None:
    manager = make()

    @fallback(OP, manager=manager)
    def reply(platform: PlatformSpec, prompt: str) -> str:
        if platform.name == "alpha":
            raise Transient("down")
        return f"{platform.name}: {prompt}"

    @reply.platform("beta")
    def on_beta(platform: PlatformSpec, prompt: str) -> str:
        return f"beta says {prompt}"

    assert isinstance(reply, SyncFallbackFunction)
    assert reply("hi") == "beta says hi"
    assert reply.call_with_platform("yo")[1].name == "beta"
    with pytest.raises(TypeError, match="must be a plain function"):

        @reply.platform("gamma")  # type: ignore[arg-type]
        async def on_gamma(platform: PlatformSpec, prompt: str) -> str:
            return prompt


# -- bad input ------------------------------------------------------------------------------------


def test_an_async_function_at_a_sync_entry_point_is_refused_and_counts_nothing() -> None:
    manager = make()

    async def fetch(platform: PlatformSpec) -> str:
        return "never"

    with pytest.raises(ConfigError, match=r"with_fallback_sync\(\) got the async function .*fetch"):
        manager.with_fallback_sync(OP, fetch)
    assert all(item["total_requests"] == 0 for item in manager.get_health_status().values())


def test_a_plain_function_returning_a_coroutine_is_refused_and_the_coroutine_closed() -> None:
    manager = make()

    async def work() -> str:
        return "never"

    def edit(platform: PlatformSpec) -> Any:
        return work()  # the seed's pattern, at a synchronous entry point

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would fail the test
        with pytest.raises(ConfigError, match="returned a coroutine to a synchronous call"):
            manager.with_fallback_sync(OP, edit)
    assert all(item["total_requests"] == 0 for item in manager.get_health_status().values())


def test_hedging_is_refused_synchronously_before_anything_is_counted() -> None:
    manager = make(policy=Policy(hedge=Hedge(delay=0.5)))
    with pytest.raises(ConfigError, match="racing platforms needs concurrency"):
        manager.with_fallback_sync(OP, answer_with_name)
    assert all(item["total_requests"] == 0 for item in manager.get_health_status().values())


# -- policies in sync code ------------------------------------------------------------------------


def test_retry_waits_with_the_clock_and_uses_tenacity_objects() -> None:
    clock = FakeClock()
    retry = Retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(2))
    manager = make(clock=clock, policy=Policy(retry=retry))
    operation = ScriptedOperation({"alpha": [Transient(), Transient(), "ok"]})
    started = clock.now()
    assert manager.with_fallback_sync(OP, operation.blocking)[1].name == "alpha"
    assert operation.calls == ["alpha", "alpha", "alpha"]
    assert clock.now() - started == pytest.approx(4.0)


def test_attempt_timeout_is_enforced_and_the_late_result_discarded() -> None:
    finished = threading.Event()

    def slow_then_fast(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            time.sleep(0.5)
            finished.set()
            return "late"
        return "quick"

    manager = PlatformManager(
        {OP: PLATFORMS}, environ={}, platform_policies={"alpha": Policy(attempt_timeout=0.05)}
    )
    started = time.monotonic()
    result, spec = manager.with_fallback_sync(OP, slow_then_fast)
    assert (result, spec.name) == ("quick", "beta")
    assert time.monotonic() - started < 0.45  # did not wait for the slow attempt
    assert finished.wait(5)  # the thread ran to its end in the background ...
    alpha = manager.get_health_status()["alpha"]["operations"][OP]
    assert (alpha["failures"], alpha["total_requests"]) == (
        1,
        1,
    )  # ... and its answer counted nothing
    assert alpha["last_error_kind"] == "attempt_timeout"  # transient, labelled as a timeout
    manager.close()


def test_the_deadline_bounds_a_synchronous_call() -> None:
    def hang(platform: PlatformSpec) -> str:
        time.sleep(0.5)
        return "late"

    manager = PlatformManager({OP: PLATFORMS}, environ={}, policy=Policy(deadline=0.05))
    with pytest.raises(AllPlatformsFailed, match=r"deadline of 0\.05s exceeded") as failed:
        manager.with_fallback_sync(OP, hang)
    assert [a.outcome for a in failed.value.attempts] == ["cancelled"]
    assert manager.get_health_status()["alpha"]["operations"][OP]["failures"] == 0
    manager.close()


def test_a_full_bulkhead_skips_the_platform_for_a_waiting_thread() -> None:
    manager = make(platform_policies={"alpha": Policy(bulkhead=Bulkhead(1))})
    inside, release = threading.Event(), threading.Event()
    answers: dict[int, str] = {}

    def hold(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            inside.set()
            release.wait(10)
        return platform.name

    def first(_: int) -> None:
        answers[0] = manager.with_fallback_sync(OP, hold)[1].name

    holder = threading.Thread(target=first, args=(0,))
    holder.start()
    assert inside.wait(10)
    assert manager.with_fallback_sync(OP, hold)[1].name == "beta"  # alpha's one slot is taken
    release.set()
    holder.join(10)
    assert answers[0] == "alpha"


def test_chaos_budget_and_the_last_resort_work_synchronously() -> None:
    clock = FakeClock()
    manager = make(
        clock=clock,
        chaos=Chaos(fault_rate=1.0, platforms="alpha"),
        ordering=BudgetOrder({"beta": 0.0}),
    )
    assert manager.with_fallback_sync(OP, answer_with_name)[1].name == "gamma"
    manager.chaos.disable()
    for name in ("alpha", "gamma"):
        manager.force_open(name, OP, seconds=30)
    # beta is over budget (left out by the ordering), alpha and gamma are open: the last
    # resort probes the one that recovers soonest.
    assert manager.with_fallback_sync(OP, answer_with_name)[1].name in ("alpha", "gamma")
    probing = make(clock=clock)
    for spec in PLATFORMS:
        probing.force_open(spec.name, OP, seconds=60 + PLATFORMS.index(spec))
    assert probing.with_fallback_sync(OP, answer_with_name)[1].name == "alpha"  # probed soonest


def test_synchronous_calls_are_traced_like_async_ones() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    manager = make(tracer_provider=provider)
    manager.with_fallback_sync(
        OP, ScriptedOperation({"alpha": [Transient()], "beta": ["ok"]}).blocking
    )
    spans = {span.name: span for span in exporter.get_finished_spans()}
    call = spans[f"failover {OP}"].attributes or {}
    assert (call["failover.platform"], call["failover.attempts"], call["failover.fallbacks"]) == (
        "beta",
        2,
        1,
    )
    assert {"chat a-1", "chat b-1"} <= set(spans)


# -- threads ---------------------------------------------------------------------------------------


def test_half_open_admits_exactly_its_probes_across_200_threads() -> None:
    clock = FakeClock()
    manager = make(clock=clock, half_open_max_calls=2)
    manager.force_open("alpha", OP, seconds=10)
    clock.advance(11)
    gate = threading.Event()
    probes: list[int] = []
    lock = threading.Lock()

    def probe_blocks(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            with lock:
                probes.append(1)
            gate.wait(10)
        return platform.name

    served: list[str] = []

    def caller(_: int) -> None:
        name = manager.with_fallback_sync(OP, probe_blocks)[1].name
        with lock:
            served.append(name)

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(200)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while sum(1 for name in served) < 198 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the threads' progress (bounded), not waiting for a result
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(probes) == 2
    assert served.count("alpha") == 2
    assert served.count("beta") == 198
    assert manager.get_health_status()["alpha"]["operations"][OP]["state"] == "closed"


def test_counters_reconcile_exactly_under_200_threads(anyio_backend: str) -> None:
    manager = make(failure_threshold=10**6)
    calls_per_thread = 25

    def flaky(platform: PlatformSpec, index: int) -> str:
        if platform.name == "alpha" and index % 3 == 0:
            raise Transient("flaky")
        return platform.name

    def caller(thread: int) -> None:
        for index in range(calls_per_thread):
            manager.with_fallback_sync(OP, flaky, thread * calls_per_thread + index)

    async def async_callers() -> None:
        async def one(index: int) -> None:
            await manager.with_fallback(OP, flaky, index)

        async with anyio.create_task_group() as group:
            for index in range(300):
                group.start_soon(one, index)

    runner = threading.Thread(
        target=anyio.run, args=(async_callers,), kwargs={"backend": anyio_backend}
    )
    runner.start()
    run_threads(200, caller)
    runner.join(60)
    total = 200 * calls_per_thread + 300
    alpha_failures = sum(1 for index in range(200 * calls_per_thread) if index % 3 == 0) + sum(
        1 for index in range(300) if index % 3 == 0
    )
    health = manager.get_health_status()
    assert health["alpha"]["total_requests"] == total
    assert health["alpha"]["operations"][OP]["failures"] == alpha_failures
    assert health["beta"]["total_requests"] == alpha_failures
    assert manager._book.threaded


def test_the_manual_flow_reconciles_exactly_under_threads() -> None:
    """The original manager's flow (get_platform, call, report) from many threads at once,
    with the interpreter switching threads as often as it can: no count is lost."""
    import sys

    manager = make(failure_threshold=10**6)
    calls_per_thread = 200

    def caller(thread: int) -> None:
        for index in range(calls_per_thread):
            spec = manager.get_platform_sync(OP)
            if index % 4 == 0:
                manager.report_failure_sync(spec, OP, Transient("flaky"))
            else:
                manager.report_success_sync(spec, OP, response_time=0.01)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        run_threads(16, caller)
    finally:
        sys.setswitchinterval(interval)
    alpha = manager.get_health_status()["alpha"]
    assert alpha["total_requests"] == 16 * calls_per_thread
    assert alpha["operations"][OP]["failures"] == 16 * calls_per_thread // 4
    assert manager._book.threaded


def test_synchronous_calls_lock_from_the_first_and_async_ones_from_the_second_thread() -> None:
    """A synchronous caller is one thread among any number: its first call turns locking on.
    Async callers on one event loop (the manual flow's async twins too) never take the lock."""
    manager = make()

    async def async_callers() -> None:
        spec = await manager.get_platform(OP)
        await manager.report_success(spec, OP)
        await manager.with_fallback(OP, answer_with_name_async)

    anyio.run(async_callers)
    assert not manager._book.threaded
    manager.with_fallback_sync(OP, answer_with_name)
    assert manager._book.threaded
    other = make()
    other.get_platform_sync(OP)
    assert other._book.threaded


# -- blocking operations in async code -------------------------------------------------------------

pytestmark_async = pytest.mark.anyio


@pytestmark_async
async def test_a_blocking_operation_in_async_code_honours_the_attempt_timeout() -> None:
    def blocking(platform: PlatformSpec) -> str:
        if platform.name == "alpha":
            time.sleep(0.5)
        return platform.name

    manager = PlatformManager(
        {OP: PLATFORMS}, environ={}, platform_policies={"alpha": Policy(attempt_timeout=0.05)}
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        started = anyio.current_time()
        result, _ = await manager.with_fallback(OP, failover.in_thread(blocking))
        elapsed = anyio.current_time() - started
        group.cancel_scope.cancel()
    assert result == "beta"
    assert elapsed < 0.4  # the attempt timeout held
    assert ticks >= 2  # the event loop kept running meanwhile
    assert isinstance(AttemptTimeout(0.05), TimeoutError)


# -- lifecycle -------------------------------------------------------------------------------------


def test_with_blocks_nest_and_a_closed_manager_cannot_be_entered() -> None:
    closed: list[str] = []
    manager = make()
    manager.add_closer(_async_noop, blocking=lambda: closed.append("closed"))
    with manager:
        with manager:
            pass
        assert closed == []  # the inner block left the manager open
        manager.with_fallback_sync(OP, answer_with_name)
    assert closed == ["closed"]
    with pytest.raises(Closed, match="is closed"):
        manager.__enter__()
    manager.close()  # safe to call again
    assert closed == ["closed"]


async def _async_noop() -> None:
    return None


def test_with_inside_async_code_is_refused_when_closing_needs_an_event_loop(
    anyio_backend: str,
) -> None:
    """A manager with async-only closers cannot be closed by `with` inside a coroutine (its
    own event loop cannot run in this thread's): refused on entering, with the fix named."""
    needs_loop, blocking_only = make(), make()
    needs_loop.add_closer(_async_noop)
    blocking_only.add_closer(_async_noop, blocking=lambda: None)

    async def main() -> None:
        with pytest.raises(ConfigError, match="async with manager"), needs_loop:
            pass
        with blocking_only:  # closes without an event loop: allowed
            pass
        async with needs_loop:
            pass

    anyio.run(main, backend=anyio_backend)
    assert needs_loop._closed
    assert blocking_only._closed


HUNG_ATTEMPT_SCRIPT = """
import time
from failover import PlatformManager, Policy

def operation(platform):
    if platform.name == "alpha":
        time.sleep(3600)  # an SDK call that never returns
    return platform.name

with PlatformManager(
    {"text_generation": [("alpha", "a-1"), ("beta", "b-1")]},
    environ={},
    platform_policies={"alpha": Policy(attempt_timeout=0.1)},
) as manager:
    print(manager.with_fallback_sync("text_generation", operation)[0], flush=True)
"""


def test_a_hung_abandoned_attempt_does_not_keep_a_script_from_exiting() -> None:
    import subprocess
    import sys

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HUNG_ATTEMPT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "beta"
    assert time.monotonic() - started < 20  # not the hour the abandoned attempt would take


def test_every_bounded_attempt_gets_a_thread_at_once() -> None:
    """Forty threads each make a bounded attempt that takes 0.2 s, with a 1 s timeout: none
    waits in a queue behind the others (an executor's few threads would time them out)."""
    manager = PlatformManager(
        {OP: PLATFORMS}, environ={}, platform_policies={"alpha": Policy(attempt_timeout=1.0)}
    )
    barrier = threading.Barrier(40)

    def slow(platform: PlatformSpec) -> str:
        time.sleep(0.2)
        return platform.name

    answers: list[str] = []

    def caller(index: int) -> None:
        barrier.wait(10)
        answers.append(manager.with_fallback_sync(OP, slow)[1].name)

    run_threads(40, caller)
    assert answers == ["alpha"] * 40
    assert manager.get_health_status()["alpha"]["operations"][OP]["failures"] == 0
    workers = [t for t in threading.enumerate() if t.name.startswith("failover-attempt")]
    assert workers
    assert all(t.daemon for t in workers)
    manager.close()
    with pytest.raises(Closed):
        manager._workers.submit(slow, PlatformSpec("alpha", "a-1"), (), {})


def test_in_thread_refuses_an_async_def_and_is_refused_by_the_sync_api() -> None:
    async def already_async(platform: PlatformSpec) -> str:
        return platform.name

    def blocking_sdk(platform: PlatformSpec) -> str:
        return platform.name

    with pytest.raises(ConfigError, match="in_thread\\(\\) is for blocking functions"):
        failover.in_thread(already_async)
    manager = make()
    with pytest.raises(ConfigError, match=r"in_thread\(.*blocking_sdk\) is for async code"):
        manager.with_fallback_sync(OP, failover.in_thread(blocking_sdk))
    assert manager.get_health_status()["alpha"]["total_requests"] == 0
