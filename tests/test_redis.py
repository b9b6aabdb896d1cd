"""RedisSharedState against a real Redis: what is shared, when, and what an outage costs.

Two managers in one process stand for two processes here (each RedisSharedState has its own
process id); ``test_redis_fleet.py`` repeats the key cases across real OS processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import coredis
import pytest

from failover import (
    AllPlatformsFailed,
    ConfigError,
    CreditExhausted,
    PlatformManager,
    RateLimited,
)
from failover._engine.fleet import SharedEvent
from failover.redis import RedisSharedState, decode_message, display_url
from failover.testing import FakeClock
from test_redis_support import (
    ENVIRON,
    PRIORITIES,
    PrivateRedis,
    delete_namespace,
    failing_primary,
    free_port,
    manager,
    pair_state,
    unique_namespace,
    wait_for,
)

pytestmark = pytest.mark.anyio

OP = "text_generation"


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    name = unique_namespace()
    yield name
    await delete_namespace(redis_url, name)


async def open_primary(m: PlatformManager, threshold: int = 3) -> None:
    for _ in range(threshold):
        answer, _ = await m.with_fallback(OP, failing_primary)
        assert answer == "groq"
    assert pair_state(m)["state"] == "open"


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "localhost:6379",
        "http://localhost:6379",
        "redis://",
        "redis://localhost:notaport",
        "redis://localhost:99999",
        "redis://localhost/zero",
        "unix://",
    ],
)
def test_malformed_url_is_a_config_error_at_construction(url: str) -> None:
    with pytest.raises(ConfigError, match="url") as caught:
        RedisSharedState(url)
    assert caught.value.key == "url"


def test_non_string_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="url must be a Redis URL"):
        RedisSharedState(6379)  # type: ignore[arg-type]


def test_error_text_never_shows_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSharedState("redis://user:hunter2-secret@localhost:notaport/0")
    assert "hunter2-secret" not in str(caught.value)
    assert display_url("redis://:pw-secret@h:1/0") == "redis://:***@h:1/0"


@pytest.mark.parametrize("namespace", ["", "a b", "a:b", "ns*", 5])
def test_bad_namespace_is_a_config_error(namespace: Any) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        RedisSharedState("redis://localhost:6379/0", namespace)


@pytest.mark.parametrize("name", ["connect_timeout", "command_timeout", "max_backoff"])
def test_bad_timeouts_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RedisSharedState("redis://localhost:6379/0", **{name: 0})


def test_manager_rejects_something_that_is_not_a_backend() -> None:
    with pytest.raises(ConfigError, match="shared_state"):
        PlatformManager(PRIORITIES, environ=ENVIRON, shared_state=object())


def test_messages_round_trip_and_malformed_ones_are_ignored() -> None:
    from failover.redis import encode_message

    event = SharedEvent("open", "openai", OP, 123, "open")
    assert decode_message(encode_message(event, "pid-1")) == ("pid-1", event)
    for junk in ("", "{", "[]", '{"v": 2}', '{"v":1,"pid":"p","kind":"boom","platform":"x"}', 7):
        assert decode_message(junk) is None


# -- propagation -----------------------------------------------------------------------------


async def test_open_pair_reaches_another_manager_with_its_deadline(
    redis_url: str, namespace: str
) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    async with a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        assert pair_state(b)["open_until"] == pair_state(a)["open_until"]
        assert pair_state(b)["consecutive_failures"] == 0  # counts stay per process
        calls: list[str] = []

        async def op(spec: Any) -> str:
            calls.append(spec.name)
            return str(spec.name)

        assert (await b.with_fallback(OP, op))[0] == "groq"
        assert calls == ["groq"]


async def test_remote_transitions_are_not_published_again(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    async with a, b:
        published: list[SharedEvent] = []
        original = b.shared_state.publish
        b.shared_state.publish = lambda event: (published.append(event), original(event))
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        a.reset("openai", OP)
        await wait_for(lambda: pair_state(b)["state"] == "closed", 2, "b to see the reset")
        assert published == []


async def test_credit_cooldown_is_shared_platform_wide_with_key_expiry(
    redis_url: str, namespace: str
) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)

    async def out_of_credits(spec: Any) -> str:
        if spec.name == "openai":
            raise CreditExhausted("insufficient_quota")
        return str(spec.name)

    async with a, b:
        assert (await a.with_fallback(OP, out_of_credits))[0] == "groq"
        await wait_for(
            lambda: b.get_health_status()["openai"]["cooldown_reason"] == "credit",
            2,
            "b to see the credit cool-down",
        )
        assert (
            b.get_health_status()["openai"]["cooldown_until"]
            == (a.get_health_status()["openai"]["cooldown_until"])
        )
        client = coredis.Redis.from_url(redis_url, decode_responses=True)
        async with client:
            ttl = await client.pttl(f"failover:{namespace}:cool:{{openai}}")
        assert 29_000 < ttl <= 30_000


async def test_rate_limit_cooldown_is_shared_for_the_pair(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)

    async def limited(spec: Any) -> str:
        if spec.name == "openai":
            raise RateLimited("slow down", retry_after=12)
        return str(spec.name)

    async with a, b:
        await a.with_fallback(OP, limited)
        await wait_for(
            lambda: pair_state(b)["cooldown_reason"] == "rate_limited", 2, "b to see the 429"
        )
        assert pair_state(b)["skip_reason"] == "rate_limited"
        clock.advance(12.5)
        assert pair_state(b)["usable"] is True


async def test_a_starting_process_loads_the_current_state_first(
    redis_url: str, namespace: str
) -> None:
    clock = FakeClock()
    a = manager(redis_url, namespace, clock)
    async with a:
        await open_primary(a)
        a.isolate("groq", OP)
        await a.shared_state.stop(2.0)  # flushed: the keys are in Redis
    late = manager(redis_url, namespace, clock)
    async with late:
        # No waiting: __aenter__ returns once the shared state is loaded.
        assert pair_state(late)["state"] == "open"
        assert pair_state(late, "groq")["isolated"] is True


async def test_isolate_is_kept_without_expiry_and_reset_clears_it(
    redis_url: str, namespace: str
) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    key = f"failover:{namespace}:open:{{openai:{OP}}}"
    async with client, a, b:
        a.isolate("openai", OP)
        await wait_for(lambda: pair_state(b)["isolated"], 2, "b to see the isolation")
        assert math.isinf(b._pair("openai", OP).breaker.open_until)
        assert await client.pttl(key) == -1
        a.reset("openai")
        await wait_for(lambda: pair_state(b)["state"] == "closed", 2, "b to see the reset")
        assert await client.exists([key]) == 0


async def test_a_successful_call_never_touches_redis(redis_url: str, namespace: str) -> None:
    m = manager(redis_url, namespace)
    async with m:
        shared = m.shared_state

        class Untouchable:
            def __getattr__(self, name: str) -> Any:
                raise AssertionError(f"Redis used on the happy path: {name}")

        def no_publish(event: SharedEvent) -> None:
            raise AssertionError(f"published on the happy path: {event}")

        client, shared._client = shared._client, Untouchable()
        shared.publish = no_publish
        try:
            for _ in range(200):
                assert (await m.with_fallback(OP, lambda spec: spec.name))[0] == "openai"
        finally:
            shared._client = client
            del shared.publish


# -- the fleet-wide probe --------------------------------------------------------------------


async def test_one_probe_for_two_managers_with_25_callers_each(
    redis_url: str, namespace: str
) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    async with a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        clock.advance(31)
        in_flight = peak = probes = 0
        release = anyio.Event()

        async def op(spec: Any) -> str:
            nonlocal in_flight, peak, probes
            if spec.name == "openai":
                probes += 1
                in_flight += 1
                peak = max(peak, in_flight)
                await release.wait()
                in_flight -= 1
            return str(spec.name)

        answers: list[str] = []

        async def call(m: PlatformManager) -> None:
            answers.append((await m.with_fallback(OP, op))[0])

        async with anyio.create_task_group() as tasks:
            for m in (a, b) * 25:
                tasks.start_soon(call, m)
            await wait_for(lambda: len(answers) == 49, 5, "49 callers to fall back")
            release.set()
        assert (probes, peak) == (1, 1)
        assert sorted(answers).count("openai") == 1
        await wait_for(
            lambda: pair_state(a)["state"] == pair_state(b)["state"] == "closed",
            2,
            "the successful probe to close the pair everywhere",
        )


async def test_refused_probe_gives_the_local_permit_back(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    async with a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        clock.advance(31)
        holding = anyio.Event()
        release = anyio.Event()

        async def slow(spec: Any) -> str:
            if spec.name == "openai":
                holding.set()
                await release.wait()
            return str(spec.name)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(a.with_fallback, OP, slow)
            await holding.wait()
            result, _ = await b.with_fallback(OP, slow)
            assert result == "groq"
            assert b._pair("openai", OP).breaker.probes == ()
            release.set()


async def test_cancelled_probe_releases_its_lease(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    a, b = manager(redis_url, namespace, clock), manager(redis_url, namespace, clock)
    client = coredis.Redis.from_url(redis_url, decode_responses=True)
    lease_key = f"failover:{namespace}:probe:{{openai:{OP}}}:0"
    async with client, a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        clock.advance(31)
        holding = anyio.Event()

        async def hang(spec: Any) -> str:
            if spec.name == "openai":
                holding.set()
                await anyio.sleep_forever()
            return str(spec.name)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(a.with_fallback, OP, hang)
            await holding.wait()
            assert await client.exists([lease_key]) == 1
            tasks.cancel_scope.cancel()
        assert a._pair("openai", OP).breaker.probes == ()
        started = time.monotonic()
        while await client.exists([lease_key]):
            assert time.monotonic() - started < 2, "lease still held after cancellation"
            await anyio.sleep(0.005)
        calls: list[str] = []

        async def record(spec: Any) -> str:
            calls.append(spec.name)
            return str(spec.name)

        assert (await b.with_fallback(OP, record))[0] == "openai"  # b may probe now
        assert calls == ["openai"]


# -- outages and bad servers -----------------------------------------------------------------


async def test_unreachable_at_start_warns_once_and_runs_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="failover")
    m = manager(f"redis://127.0.0.1:{free_port()}/0", unique_namespace())
    with anyio.fail_after(5):
        async with m:
            await open_primary(m)
            for _ in range(20):
                assert (await m.with_fallback(OP, lambda spec: spec.name))[0] == "groq"
            assert m.shared_state.connected is False
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "carrying on with this process's own breaker state" in warnings[0]


async def test_wrong_password_is_a_clear_warning_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = PrivateRedis(password="right-horse-battery")
    server.start()
    try:
        caplog.set_level(logging.WARNING, logger="failover")
        url = f"redis://:wrong-staple-99@127.0.0.1:{server.port}/0"
        m = manager(url, unique_namespace())
        with anyio.fail_after(5):
            async with m:
                assert (await m.with_fallback(OP, lambda spec: spec.name))[0] == "openai"
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "refused the credentials" in text
        assert "wrong-staple-99" not in text
        assert text.count("refused the credentials") == 1
    finally:
        server.kill()


async def test_redis_outage_fails_no_call_and_state_converges_after_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    server = PrivateRedis()
    server.start()
    namespace = unique_namespace()
    a, b = manager(server.url, namespace), manager(server.url, namespace)
    failures: list[BaseException] = []
    calls = 0
    try:
        with anyio.fail_after(30):
            async with a, b:

                async def load(m: PlatformManager) -> None:
                    nonlocal calls
                    while True:
                        try:
                            await m.with_fallback(OP, lambda spec: spec.name)
                            calls += 1
                        except Exception as exc:
                            failures.append(exc)
                        await anyio.sleep(0.001)

                async with anyio.create_task_group() as tasks:
                    for m in (a, b, a, b):
                        tasks.start_soon(load, m)
                    await wait_for(lambda: calls > 50, 5, "load to start")
                    server.kill()
                    await wait_for(
                        lambda: not a.shared_state.connected and not b.shared_state.connected,
                        5,
                        "both to notice the outage",
                    )
                    before = calls
                    # During the outage a opens a pair on its own; b cannot hear of it yet.
                    a.force_open("groq", OP, 60)
                    await wait_for(lambda: calls > before + 50, 5, "calls during the outage")
                    assert pair_state(b, "groq")["state"] == "closed"
                    server.start()
                    await wait_for(
                        lambda: a.shared_state.connected and b.shared_state.connected,
                        10,
                        "both to reconnect",
                    )
                    await wait_for(
                        lambda: pair_state(b, "groq")["state"] == "open", 5, "state to converge"
                    )
                    tasks.cancel_scope.cancel()
    finally:
        server.kill()
    assert failures == []
    messages = [r.getMessage() for r in caplog.records]
    lost = [m for m in messages if "was lost" in m]
    back = [m for m in messages if "is back after" in m]
    assert len(lost) == 2, lost  # one per manager, not one per call
    assert len(back) == 2, back


# -- the fleet's view ------------------------------------------------------------------------


async def test_fleet_view_lists_open_pairs_cooldowns_and_probe_leases(
    redis_url: str, namespace: str
) -> None:
    a = manager(redis_url, namespace)

    async def groq_out_of_credits(spec: Any) -> str:
        raise CreditExhausted("credit balance is too low")

    async with a:
        await open_primary(a)
        with pytest.raises(AllPlatformsFailed):
            await a.with_fallback(OP, groq_out_of_credits)
        token = await a.shared_state.acquire_probe(("openai", OP), 20_000, 1)
        assert token
        await a.shared_state.stop(2.0)
        view = await RedisSharedState(redis_url, namespace).fleet_view()
    assert view["namespace"] == namespace
    [opened] = view["open"]
    assert (opened["platform"], opened["operation"], opened["isolated"]) == ("openai", OP, False)
    assert 25 < opened["remaining_seconds"] <= 30
    [cooling] = view["cooling"]
    assert (cooling["platform"], cooling["operation"], cooling["reason"]) == (
        "groq",
        None,
        "credit",
    )
    [probe] = view["probes"]
    assert probe["holder"] == a.shared_state.process_id
    assert 15 < probe["expires_in"] <= 20


async def test_one_instance_cannot_serve_two_running_managers(
    redis_url: str, namespace: str
) -> None:
    shared = RedisSharedState(redis_url, namespace)
    first = PlatformManager(PRIORITIES, environ=ENVIRON, shared_state=shared)
    second = PlatformManager(PRIORITIES, environ=ENVIRON, shared_state=shared)
    async with first:
        with pytest.raises(RuntimeError, match="already running for another manager"):
            await second.__aenter__()
    async with second:  # free again once the first manager closed
        assert shared.connected


async def test_closing_from_another_task_is_refused_clearly(redis_url: str, namespace: str) -> None:
    m = manager(redis_url, namespace)
    async with m:
        errors: list[BaseException] = []

        async def close_elsewhere() -> None:
            try:
                await m.aclose()
            except RuntimeError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(close_elsewhere)
        assert len(errors) == 1
        assert "from the task that entered it" in str(errors[0])
    # The owning task still closes it cleanly.
    assert m._closed
