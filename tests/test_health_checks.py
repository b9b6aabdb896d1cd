"""Background health checks: a recovered pair closes, an outage is learned, with no user request.

Time is a :class:`FakeClock`: the checker sleeps on it, so ``clock.advance`` moves it on; a
check runs as a task of the manager's background task group, awaited with
``wait_all_tasks_blocked`` (no real sleeps).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from failover import (
    AuthFailed,
    ConfigError,
    CreditExhausted,
    HealthChecks,
    PlatformManager,
    PlatformSpec,
    Transient,
)
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

OP = "video_generation"
PRIORITIES = {OP: [("replicate", "minimax/video-01"), ("fal", "kling")]}
ENVIRON = {"REPLICATE_API_TOKEN": "r8-test", "FAL_KEY": "fal-test"}


class Probe:
    """A check whose answer the test sets; counts its calls."""

    def __init__(self, answer: BaseException | None = None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, spec: PlatformSpec) -> None:
        self.calls.append((spec.name, spec.model))
        if self.answer is not None:
            raise self.answer


def make(probe: Callable[[PlatformSpec], Any], **settings: Any) -> PlatformManager:
    checks = HealthChecks({"replicate": probe}, **settings)
    return PlatformManager(
        PRIORITIES, environ=ENVIRON, clock=FakeClock(), health_checks=checks, cache_ttl_seconds=300
    )


def state(manager: PlatformManager, platform: str = "replicate") -> dict[str, Any]:
    found: dict[str, Any] = manager.get_health_status()[platform]["operations"][OP]
    return found


async def tick(manager: PlatformManager, seconds: float) -> None:
    """Move the manager's fake time on and let the checker (and its checks) run."""
    assert isinstance(manager.clock, FakeClock)
    await wait_all_tasks_blocked()
    manager.clock.advance(seconds)
    await wait_all_tasks_blocked()


async def open_pair(manager: PlatformManager) -> None:
    async def down(spec: PlatformSpec) -> str:
        if spec.name == "replicate":
            raise Transient("503")
        return spec.name

    for _ in range(3):
        await manager.with_fallback(OP, down)
    assert state(manager)["state"] == "open"


async def test_a_recovered_pair_closes_without_a_user_request(anyio_backend: str) -> None:
    probe = Probe(Transient("still down"))
    manager = make(probe, interval=10)
    async with manager:
        await open_pair(manager)
        await tick(manager, 10)
        assert probe.calls == [("replicate", "minimax/video-01")]
        assert state(manager)["state"] == "open"  # a failed check leaves it open
        assert state(manager)["last_check_ok"] is False
        assert state(manager)["last_check_error"] == "transient"
        probe.answer = None  # the provider is back
        await tick(manager, 10)
        assert len(probe.calls) == 2
        assert state(manager)["state"] == "closed"
        assert state(manager)["last_check_ok"] is True
        assert state(manager)["total_requests"] == 3  # the user's three, no more
        calls: list[str] = []

        async def op(spec: PlatformSpec) -> str:
            calls.append(spec.name)
            return spec.name

        assert (await manager.with_fallback(OP, op))[0] == "replicate"
        assert calls == ["replicate"]  # served by the primary again, no probe spent


async def test_checks_are_bounded_by_interval_and_concurrency(anyio_backend: str) -> None:
    release = anyio.Event()
    running = 0
    peak = 0
    calls = 0

    async def slow(spec: PlatformSpec) -> None:
        nonlocal running, peak, calls
        calls += 1
        running += 1
        peak = max(peak, running)
        try:
            await release.wait()
        finally:
            running -= 1

    priorities = {
        OP: [("replicate", "a"), ("fal", "b")],
        "image_generation": [("replicate", "c"), ("fal", "d")],
    }
    manager = PlatformManager(
        priorities,
        environ=ENVIRON,
        clock=FakeClock(),
        health_checks=HealthChecks(
            {"replicate": slow, "fal": slow}, interval=10, idle_after=60, max_concurrent=2
        ),
    )
    async with manager:
        await tick(manager, 60)  # all four pairs idle: four due
        assert (calls, peak) == (2, 2)  # two in flight, two waiting for a slot
        await tick(manager, 1)
        assert calls == 2
        release.set()
        await tick(manager, 1)
        assert calls == 4
        assert peak == 2
        await tick(manager, 5)  # within the interval: nothing more
        assert calls == 4


async def test_idle_pairs_are_checked_and_an_outage_is_learned(anyio_backend: str) -> None:
    probe = Probe(Transient("down"))
    manager = make(probe, interval=10, idle_after=60)
    async with manager:
        await tick(manager, 30)
        assert probe.calls == []  # not idle long enough
        await tick(manager, 30)
        assert len(probe.calls) == 1
        assert state(manager)["consecutive_failures"] == 1
        await tick(manager, 10)  # the last check counts as activity: idle again at 60 s
        assert len(probe.calls) == 1
        await tick(manager, 50)
        await tick(manager, 60)
        assert len(probe.calls) == 3
        assert state(manager)["state"] == "open"  # three failed checks opened it
        assert state(manager)["total_requests"] == 0  # and no user paid for it


async def test_without_idle_after_a_healthy_pair_is_never_checked(anyio_backend: str) -> None:
    probe = Probe()
    manager = make(probe, interval=1)
    async with manager:
        for _ in range(5):
            await tick(manager, 100)
    assert probe.calls == []


async def test_a_pair_in_use_is_not_idle(anyio_backend: str) -> None:
    probe = Probe()
    manager = make(probe, interval=10, idle_after=60)

    async def ok(spec: PlatformSpec) -> str:
        return spec.name

    async with manager:
        for _ in range(4):
            await tick(manager, 40)
            await manager.with_fallback(OP, ok)
    assert probe.calls == []


async def test_a_half_open_pair_that_fails_its_check_opens_again(anyio_backend: str) -> None:
    probe = Probe(Transient("down"))
    manager = make(probe, interval=400)
    async with manager:
        await open_pair(manager)
        await tick(manager, 299)
        assert probe.calls == []  # the first check waits for the interval
        await tick(manager, 101)  # past the open duration: half-open, then the check
        assert len(probe.calls) == 1
        assert state(manager)["state"] == "open"
        assert state(manager)["total_requests"] == 3


async def test_credit_and_auth_failures_cool_the_platform(anyio_backend: str) -> None:
    probe = Probe(AuthFailed("401 invalid key"))
    manager = make(probe, interval=10, idle_after=20)
    async with manager:
        await tick(manager, 20)
        health = manager.get_health_status()["replicate"]
        assert health["cooldown_reason"] == "auth"
        probe.answer = None  # the key was rotated
        await tick(manager, 10)
        assert manager.get_health_status()["replicate"]["cooldown_reason"] is None
    probe = Probe(CreditExhausted("insufficient credit"))
    manager = make(probe, interval=10, idle_after=20)
    async with manager:
        await tick(manager, 20)
        assert manager.get_health_status()["replicate"]["cooldown_reason"] == "credit"
        probe.answer = None
        await tick(manager, 10)
        # A credit cool-down runs its course: a check cannot prove credits are back.
        assert manager.get_health_status()["replicate"]["cooldown_reason"] == "credit"
        assert len(probe.calls) == 1


async def test_a_check_that_proves_more_may_end_credit_and_rate_limit_cool_downs(
    anyio_backend: str,
) -> None:
    """``cooldowns=`` lists what a passing check may end (a check that generates something
    proves credits are back)."""
    from failover import RateLimited

    probe = Probe(CreditExhausted("insufficient credit"))
    manager = make(probe, interval=10, idle_after=20, cooldowns=("auth", "credit", "rate_limited"))
    async with manager:
        await tick(manager, 20)
        assert manager.get_health_status()["replicate"]["cooldown_reason"] == "credit"
        probe.answer = None
        await tick(manager, 10)
        assert manager.get_health_status()["replicate"]["cooldown_reason"] is None
        assert state(manager)["last_check"] is not None
        probe.answer = RateLimited("slow down", retry_after=600)
        await tick(manager, 20)
        assert state(manager)["cooldown_reason"] == "rate_limited"
        probe.answer = None
        await tick(manager, 10)
        assert state(manager)["cooldown_reason"] is None
        assert len(probe.calls) == 4


async def test_a_check_that_times_out_is_labelled(anyio_backend: str) -> None:
    async def hangs(spec: PlatformSpec) -> None:
        await anyio.sleep_forever()

    manager = make(hangs, interval=10, idle_after=10, timeout=5)
    async with manager:
        await tick(manager, 10)
        await tick(manager, 5)
        assert state(manager)["last_check_error"] == "health_check_timeout"
        assert state(manager)["consecutive_failures"] == 1


async def test_an_operator_s_open_is_left_alone(anyio_backend: str) -> None:
    probe = Probe()
    manager = make(probe, interval=10)
    async with manager:
        manager.force_open("replicate", OP)
        await tick(manager, 10)
        await tick(manager, 10)
        assert probe.calls == []
        assert state(manager)["state"] == "open"
        manager.reset("replicate", OP)
        await open_pair(manager)
        await tick(manager, 10)
        assert len(probe.calls) == 1
        assert state(manager)["state"] == "closed"


async def test_a_bug_in_the_check_changes_nothing_and_is_logged(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe(KeyError("oops"))
    manager = make(probe, interval=10, idle_after=10)
    with caplog.at_level(logging.ERROR, logger="failover"):
        async with manager:
            await tick(manager, 10)
            assert len(probe.calls) == 1
            assert state(manager)["consecutive_failures"] == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "Health check of replicate for video_generation raised KeyError: a bug in the check, "
        "not the platform's failure (nothing changed)"
    ]


async def test_a_plain_function_check_runs_off_the_event_loop(anyio_backend: str) -> None:
    threads: list[int] = []

    def blocking(spec: PlatformSpec) -> None:
        threads.append(threading.get_ident())

    manager = make(blocking, interval=10, idle_after=10)
    async with manager:
        loop_thread = threading.get_ident()
        await tick(manager, 10)
        await anyio.to_thread.run_sync(lambda: None)  # let the worker thread hand back
        await tick(manager, 0)
    assert len(threads) == 1
    assert threads[0] != loop_thread
    assert state(manager)["last_check_ok"] is True


async def test_checks_stop_with_the_manager(anyio_backend: str) -> None:
    probe = Probe()
    manager = make(probe, interval=10, idle_after=10)
    async with manager:
        await tick(manager, 10)
    assert len(probe.calls) == 1
    assert isinstance(manager.clock, FakeClock)
    manager.clock.advance(100)
    await wait_all_tasks_blocked()
    assert len(probe.calls) == 1


def test_checks_run_on_the_manager_s_thread_with_manager() -> None:
    """Synchronous programs: ``with manager:`` runs the checks on its background thread."""
    done = threading.Event()
    seen: list[str] = []

    def check(spec: PlatformSpec) -> None:
        seen.append(threading.current_thread().name)
        done.set()

    manager = PlatformManager(
        PRIORITIES,
        environ=ENVIRON,
        health_checks=HealthChecks({"replicate": check}, interval=0.05, idle_after=0.05),
    )
    started = time.monotonic()
    with manager:
        assert done.wait(10), "no check within 10 s"
    assert time.monotonic() - started < 10
    assert seen
    assert not any(name == "MainThread" for name in seen)
    assert sum(t.name == "failover-background" for t in threading.enumerate()) == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"checks": []}, "health_checks.checks must be a mapping of platform name"),
        ({"checks": {"replicate": 3}}, "health_checks.checks['replicate'] must be callable"),
        ({"checks": {}, "interval": 0}, "health_checks.interval"),
        ({"checks": {}, "idle_after": -1}, "health_checks.idle_after"),
        ({"checks": {}, "timeout": float("nan")}, "health_checks.timeout"),
        ({"checks": {}, "max_concurrent": 0}, "health_checks.max_concurrent"),
        ({"cooldowns": ["credits"]}, "health_checks.cooldowns must be one of 'auth', 'credit'"),
        ({"cooldowns": "auth"}, "health_checks.cooldowns must be a collection of strings"),
    ],
)
def test_bad_settings_get_one_clear_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HealthChecks(**settings)


def test_a_check_for_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ConfigError, match="names platform 'replicat', which is in no priority"):
        PlatformManager(
            PRIORITIES, environ=ENVIRON, health_checks=HealthChecks({"replicat": Probe()})
        )
    with pytest.raises(ConfigError, match=r"health_checks must be a failover\.HealthChecks"):
        PlatformManager(PRIORITIES, environ=ENVIRON, health_checks={"replicate": Probe()})  # type: ignore[arg-type]


def test_health_has_no_check_fields_without_checks() -> None:
    manager = PlatformManager(PRIORITIES, environ=ENVIRON)
    assert "last_check" not in manager.get_health_status()["replicate"]["operations"][OP]


@pytest.mark.redis
async def test_with_shared_state_one_process_checks_each_pair(anyio_backend: str) -> None:
    """Two managers sharing state (as two processes would): the check runs once, and the
    pair it closes closes in both."""
    from failover.redis import RedisSharedState
    from test_redis_support import delete_namespace, require_redis, unique_namespace, wait_for

    url, namespace = require_redis(), unique_namespace()
    probe = Probe()

    def member() -> PlatformManager:
        return PlatformManager(
            PRIORITIES,
            environ=ENVIRON,
            clock=FakeClock(),
            health_checks=HealthChecks({"replicate": probe}, interval=10),
            shared_state=RedisSharedState(url, namespace),
        )

    a, b = member(), member()
    try:
        async with a, b:
            await open_pair(a)
            await wait_for(lambda: state(b)["state"] == "open", 5, "B to hear A's open")
            assert isinstance(a.clock, FakeClock)
            assert isinstance(b.clock, FakeClock)
            await wait_all_tasks_blocked()
            a.clock.advance(10)
            b.clock.advance(10)
            await wait_for(lambda: len(probe.calls) >= 1, 5, "a check")
            await wait_for(
                lambda: state(a)["state"] == state(b)["state"] == "closed", 5, "both to close"
            )
            await wait_for(lambda: "last_check" in state(b) and state(b)["last_check"], 5, "B")
            assert len(probe.calls) == 1
    finally:
        await delete_namespace(url, namespace)


async def test_each_check_is_a_root_span_with_its_outcome_and_transition(
    anyio_backend: str,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    probe = Probe(Transient("503 from replicate, key sk-secret-canary"))
    manager = PlatformManager(
        PRIORITIES,
        environ={**ENVIRON, "REPLICATE_API_TOKEN": "sk-secret-canary"},
        clock=FakeClock(),
        tracer_provider=provider,
        health_checks=HealthChecks({"replicate": probe}, interval=10),
    )
    async with manager:
        await open_pair(manager)
        exporter.clear()
        await tick(manager, 10)
        probe.answer = None
        await tick(manager, 10)
    failed, passed = exporter.get_finished_spans()
    for span in (failed, passed):
        assert span.name == "failover health_check replicate"
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is None
        assert span.attributes is not None
        assert span.attributes["failover.operation"] == OP
        assert span.attributes["failover.check.reason"] == "open"
    assert failed.attributes is not None
    assert failed.attributes["failover.check.outcome"] == "failed"
    assert failed.attributes["failover.error.kind"] == "transient"
    assert failed.status.status_code is StatusCode.ERROR
    assert "sk-secret-canary" not in str(failed.status.description)
    assert all("sk-secret-canary" not in str(event.attributes) for event in failed.events)
    assert passed.attributes is not None
    assert passed.attributes["failover.check.outcome"] == "passed"
    transitions = [e for e in passed.events if e.name == "failover.breaker.transition"]
    assert [(e.attributes or {}).get("failover.breaker.reason") for e in transitions] == [
        "health check passed"
    ]
    provider.shutdown()


# -- with the HTTP adapters' own check, against the fake providers ------------------------------

HI = [{"role": "user", "content": "hi"}]


async def test_an_adapter_check_closes_a_recovered_pair_and_ends_a_key_cool_down(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``manager.set_health_check(platform, text.check)``: the provider's cheapest read-only
    request decides; no chat request is spent on the recovery."""
    from failover.http import TextGeneration
    from failover.testing import Behaviour, FakeProviderServer
    from test_redis_support import wait_for

    keys = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "GROQ_API_KEY": "gsk_test_0123456789"}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)  # the adapters read the process environment
    async with FakeProviderServer(seed=7) as server:
        manager = PlatformManager(
            {"text_generation": [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b")]},
            clock=FakeClock(),
            health_checks=HealthChecks(interval=10),
        )
        text = TextGeneration(
            manager, base_urls={name: server.base_url(name) for name in ("openai", "groq")}
        )
        manager.set_health_check("openai", text.check)

        def openai() -> dict[str, Any]:
            found: dict[str, Any] = manager.get_health_status()["openai"]
            return found

        async with manager:
            server.set_behaviour("openai", Behaviour.overloaded())
            for _ in range(3):
                await text.complete(HI)
            assert openai()["operations"]["text_generation"]["state"] == "open"
            server.set_behaviour("openai", Behaviour.healthy())
            chats = server.stats()["openai"]["total"]
            await tick(manager, 10)
            await wait_for(
                lambda: openai()["operations"]["text_generation"]["state"] == "closed",
                10,
                "the check to close the pair",
            )
            assert openai()["operations"]["text_generation"]["last_check_ok"] is True
            assert server.stats()["openai"]["total"] == chats + 1  # one lookup, no chat
            # A rejected key: the platform cools down for auth, then a rotated key ends it.
            server.set_behaviour("openai", Behaviour.bad_key())
            assert (await text.complete(HI)).platform == "groq"
            assert openai()["cooldown_reason"] == "auth"
            server.set_behaviour("openai", Behaviour.healthy())
            await tick(manager, 10)
            await wait_for(lambda: openai()["cooldown_reason"] is None, 10, "the key cool-down")


async def test_a_check_that_proves_nothing_changes_nothing(anyio_backend: str) -> None:
    """FAL has no cheap request to ask: its adapter check is inconclusive, nothing moves."""
    from failover import CheckInconclusive

    async def cannot_tell(spec: PlatformSpec) -> None:
        raise CheckInconclusive("no request to ask")

    manager = make(cannot_tell, interval=10)
    async with manager:
        await open_pair(manager)
        await tick(manager, 10)
        assert state(manager)["state"] == "open"
        assert state(manager)["last_check_ok"] is None
        assert state(manager)["last_check_error"] == "inconclusive"


def test_set_health_check_needs_health_checks_and_a_known_platform() -> None:
    plain = PlatformManager(PRIORITIES, environ=ENVIRON)
    with pytest.raises(ConfigError, match="set_health_check needs health checks configured"):
        plain.set_health_check("replicate", Probe())
    manager = PlatformManager(PRIORITIES, environ=ENVIRON, health_checks=HealthChecks())
    with pytest.raises(ConfigError, match="platform 'replicat' is in no priority list"):
        manager.set_health_check("replicat", Probe())
    with pytest.raises(ConfigError, match="the health check of 'replicate' must be callable"):
        manager.set_health_check("replicate", "not a function")  # type: ignore[arg-type]


def test_a_platform_check_raises_what_it_found() -> None:
    from failover import AuthFailed, BadRequest, CheckInconclusive, RateLimited
    from failover.http import CheckProblem, KeyStatus, ModelStatus, PlatformCheck

    def found(**fields: Any) -> PlatformCheck:
        settings: dict[str, Any] = {
            "platform": "openai",
            "model": "gpt-4o-mini",
            "key": KeyStatus.ACCEPTED,
            "model_status": ModelStatus.FOUND,
        }
        return PlatformCheck(**(settings | fields))

    found().raise_for_problem()  # ok: nothing raised
    cases: list[tuple[dict[str, Any], type[BaseException]]] = [
        ({"key": KeyStatus.REJECTED, "model_status": ModelStatus.NOT_CHECKED}, AuthFailed),
        ({"model_status": ModelStatus.MISSING}, BadRequest),
        ({"problem": CheckProblem.OUT_OF_CREDITS}, CreditExhausted),
        ({"problem": CheckProblem.RATE_LIMITED}, RateLimited),
        ({"problem": CheckProblem.UNREACHABLE}, Transient),
        ({"problem": CheckProblem.PROVIDER_ERROR}, Transient),
        (
            {"key": KeyStatus.NOT_CHECKED, "model_status": ModelStatus.NOT_CHECKED},
            CheckInconclusive,
        ),
    ]
    for fields, raised in cases:
        with pytest.raises(raised):
            found(**fields).raise_for_problem()
    with pytest.raises(BadRequest) as missing:
        found(model_status=ModelStatus.MISSING).raise_for_problem()
    assert missing.value.reason == "not_found"


@pytest.mark.redis
async def test_an_operator_s_open_in_another_process_is_not_checked_here(
    anyio_backend: str, redis_url: str, namespace: str
) -> None:
    """``force_open`` in one process reaches the others as the operator's: their health checks
    leave it alone (a passing check would otherwise close it fleet-wide)."""
    from failover.redis import RedisSharedState
    from test_redis_support import wait_for

    probe = Probe()

    def member(**settings: Any) -> PlatformManager:
        return PlatformManager(
            PRIORITIES,
            environ=ENVIRON,
            clock=FakeClock(),
            shared_state=RedisSharedState(redis_url, namespace),
            **settings,
        )

    operator = member()
    checks = HealthChecks({"replicate": probe, "fal": probe}, interval=10, max_concurrent=2)
    checked = member(health_checks=checks)
    async with operator, checked:
        operator.force_open("replicate", OP, 600)
        await wait_for(lambda: state(checked)["state"] == "open", 5, "the open to arrive")
        # A control: fal opened by failures is checked in the same round.
        fal = checked.platforms(OP)[1]
        for _ in range(3):
            checked.report_failure_sync(fal, OP, Transient("503"))
        assert isinstance(checked.clock, FakeClock)
        await tick(checked, 10)
        await wait_for(lambda: len(probe.calls) >= 1, 5, "the control's check")
        await tick(checked, 10)
        assert probe.calls == [("fal", "kling")]
        assert state(checked)["state"] == "open"
        operator.reset("replicate", OP)
        await wait_for(lambda: state(checked)["state"] == "closed", 5, "the reset to arrive")
