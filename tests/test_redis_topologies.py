"""RedisSharedState beyond one server: Redis Cluster and Sentinel, started here from redis-server.

The cluster has three primaries and no replicas; the Sentinel set-up has one master, one
replica and three sentinels. Both run on free loopback ports and are stopped by PID. A
Sentinel failover (``SENTINEL FAILOVER``, or the master killed) happens during traffic: no call
may fail, and the fleet converges through the new master on what the operator did last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import coredis
import pytest

from failover import AllPlatformsFailed, ConfigError, CreditExhausted, PlatformManager
from failover._redis_topology import KeyLayout, check_reachable, parse_url
from failover.redis import RedisSharedState
from failover.testing import FakeClock
from redis_topology_support import (
    PrivateCluster,
    PrivateSentinel,
    free_ports,
    redis_cli,
    require_version,
)
from test_redis_support import (
    failing_primary,
    manager,
    pair_state,
    unique_namespace,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.redis_topology]

OP = "text_generation"


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "service", "db", "tls"),
    [
        ("redis://h:1/2", "server", (("h", 1),), None, 2, False),
        ("rediss://h", "server", (("h", 6379),), None, 0, True),
        ("redis+cluster://a:7000,b:7001", "cluster", (("a", 7000), ("b", 7001)), None, 0, False),
        ("rediss+cluster://a", "cluster", (("a", 6379),), None, 0, True),
        ("redis+sentinel://s1,s2:5/m", "sentinel", (("s1", 26379), ("s2", 5)), "m", 0, False),
        ("redis+sentinel://s:1/mymaster/3", "sentinel", (("s", 1),), "mymaster", 3, False),
        ("rediss+sentinel://[::1]:1/svc", "sentinel", (("::1", 1),), "svc", 0, True),
    ],
)  # fmt: skip
def test_the_url_scheme_selects_the_topology(
    url: str, kind: str, nodes: tuple[tuple[str, int], ...], service: str | None, db: int, tls: bool
) -> None:
    topology = parse_url(url)
    assert (topology.kind, topology.nodes, topology.service, topology.db, topology.tls) == (
        kind,
        nodes,
        service,
        db,
        tls,
    )


def test_credentials_go_to_the_data_nodes() -> None:
    topology = parse_url("redis+sentinel://app:s%40cret@s1:1,s2:2/mymaster")
    assert (topology.username, topology.password) == ("app", "s@cret")


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://",
        "redis+cluster://a:1,,b:2",
        "redis+cluster://a:notaport",
        "redis+cluster://a:0",
        "redis+cluster://a:1/3",
        "redis+cluster://a:1?ssl_cert_reqs=none",
        "redis+sentinel://s:1",
        "redis+sentinel://s:1/mymaster/zero",
        "redis+sentinel://s:1/mymaster/0/extra",
        "redis+valkey://h:1",
    ],
)
def test_malformed_topology_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSharedState(url)
    assert caught.value.key == "url"


def test_the_password_never_shows_in_a_topology_url_error() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSharedState("redis+cluster://u:hunter2@a:1,,b")
    assert "hunter2" not in str(caught.value)
    assert "u:***@" in str(caught.value)


# -- key naming ------------------------------------------------------------------------------


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def cluster_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (CRC16 of the hash tag when there is one)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start != -1 and end > start + 1:
        key = key[start + 1 : end]
    return _crc16(key.encode()) % 16384


@pytest.mark.parametrize("platform", ["openai", "my:platform", "we}ird{", "ünï"])
def test_every_key_of_a_pair_and_of_a_platform_shares_one_slot(platform: str) -> None:
    shared = RedisSharedState("redis+cluster://a:1", "ns")
    from failover._engine.fleet import SharedEvent

    pair = [
        shared.event_key(SharedEvent(kind, platform, OP, None, ""))
        for kind in ("open", "closed", "cool", "reset")
    ] + [shared.probe_key((platform, OP), slot) for slot in range(4)]
    # The lease and void scripts take the void key with the lease keys; an epoch goes with
    # the state it guards.
    pair += [shared.void_key((platform, OP), "host:1:ab:7"), shared.epoch_key(platform, OP)]
    whole = [
        shared.event_key(SharedEvent(kind, platform, None, None, ""))
        for kind in ("open", "closed", "cool", "reset")
    ] + [shared.epoch_key(platform, None)]
    assert len({cluster_slot(key) for key in pair}) == 1, pair
    assert len({cluster_slot(key) for key in whole}) == 1, whole


def test_the_slot_function_is_the_servers() -> None:
    """The test's own CRC16 agrees with Redis's reference values (so the test above can fail)."""
    assert cluster_slot("123456789") == 12739
    assert cluster_slot("foo") == 12182
    assert cluster_slot("{user1000}.following") == cluster_slot("{user1000}.followers")


def test_probe_keys_are_read_back_for_the_fleet_view() -> None:
    keys = KeyLayout("ns")
    key = keys.probe("openai", OP, 2)
    assert keys.is_probe(key)
    assert not keys.is_void(key)
    assert keys.parse_probe(key) == ("openai", OP, "2")
    void = keys.void("openai", OP, "host:1:ab:7")
    assert keys.is_probe(void)
    assert keys.is_void(void)
    assert keys.is_epoch(keys.pair("epoch", "openai", OP))
    assert keys.is_epoch(keys.platform("epoch", "openai"))
    assert not keys.is_epoch(keys.pair("open", "openai", OP))


async def test_the_reachability_ping_goes_to_the_master_the_sentinels_name(
    sentinel: PrivateSentinel,
) -> None:
    topology = parse_url(sentinel.url)
    await check_reachable(topology, 2.0)
    # The sentinels still answer, but they name a master that is gone.
    sentinel.procs.kill(sentinel.master())
    with pytest.raises(OSError):
        await check_reachable(topology, 2.0)


async def test_the_reachability_ping_takes_any_cluster_node(cluster: PrivateCluster) -> None:
    dead = free_ports(1)[0]
    await check_reachable(parse_url(f"redis+cluster://127.0.0.1:{dead},{cluster.url[16:]}"), 2.0)
    with pytest.raises(OSError):
        await check_reachable(parse_url(f"redis+cluster://127.0.0.1:{dead}"), 2.0)


# -- helpers ---------------------------------------------------------------------------------


async def open_primary(m: PlatformManager) -> None:
    for _ in range(3):
        assert (await m.with_fallback(OP, failing_primary))[0] == "groq"
    assert pair_state(m)["state"] == "open"


# -- Redis Cluster ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    require_version(6)
    running = PrivateCluster(masters=3).start()
    try:
        yield running
    finally:
        running.stop()


async def test_cluster_shares_opens_cooldowns_and_resets(cluster: PrivateCluster) -> None:
    namespace = unique_namespace()
    clock = FakeClock()
    a, b = manager(cluster.url, namespace, clock), manager(cluster.url, namespace, clock)

    async def out_of_credits(spec: Any) -> str:
        raise CreditExhausted("insufficient_quota")

    async with a, b:
        assert a.shared_state.connected
        assert b.shared_state.connected
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        assert pair_state(b)["open_until"] == pair_state(a)["open_until"]
        with pytest.raises(AllPlatformsFailed):  # openai open, groq out of credits
            await a.with_fallback(OP, out_of_credits)
        await wait_for(
            lambda: b.get_health_status()["groq"]["cooldown_reason"] == "credit",
            2,
            "b to see groq's credit cool-down",
        )
        # The keys live on more than one primary, each pair's keys in one slot.
        holders = {
            port
            for port in cluster.data_ports
            if int(redis_cli(port, "DBSIZE").split()[-1] or 0) > 0
        }
        assert len(holders) >= 2, holders
        a.reset("openai", OP)
        a.reset("groq")
        await wait_for(
            lambda: (
                pair_state(b)["state"] == "closed"
                and b.get_health_status()["groq"]["cooldown_reason"] is None
            ),
            2,
            "b to see both resets",
        )
        late = manager(cluster.url, namespace, clock)
        a.force_open("groq", OP, 60)
        await wait_for(lambda: pair_state(b, "groq")["state"] == "open", 2, "b to see it")
        async with late:  # a starting process loads the state from every primary
            assert pair_state(late, "groq")["state"] == "open"


async def test_cluster_sends_one_probe_for_the_fleet(cluster: PrivateCluster) -> None:
    namespace = unique_namespace()
    clock = FakeClock()
    a, b = manager(cluster.url, namespace, clock), manager(cluster.url, namespace, clock)
    async with a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        clock.advance(31)
        probes = 0
        release = anyio.Event()

        async def op(spec: Any) -> str:
            nonlocal probes
            if spec.name == "openai":
                probes += 1
                await release.wait()
            return str(spec.name)

        answers: list[str] = []

        async def call(m: PlatformManager) -> None:
            answers.append((await m.with_fallback(OP, op))[0])

        async with anyio.create_task_group() as tasks:
            for m in (a, b) * 10:
                tasks.start_soon(call, m)
            await wait_for(lambda: len(answers) == 19, 5, "19 callers to fall back")
            view = await a.shared_state.fleet_view()
            assert [(p["platform"], p["operation"]) for p in view["probes"]] == [("openai", OP)]
            release.set()
        assert probes == 1
        await wait_for(
            lambda: pair_state(a)["state"] == pair_state(b)["state"] == "closed",
            2,
            "the successful probe to close the pair everywhere",
        )


# -- Sentinel --------------------------------------------------------------------------------


@pytest.fixture
def sentinel() -> Iterator[PrivateSentinel]:
    require_version(6)
    running = PrivateSentinel(sentinels=3).start()
    try:
        yield running
    finally:
        running.stop()


def on(m: PlatformManager, port: int) -> bool:
    """Whether ``m``'s shared-state session is connected to the server on ``port``."""
    client = m.shared_state._client
    location = getattr(getattr(client, "connection_pool", None), "location", None)
    return m.shared_state.connected and getattr(location, "port", None) == port


async def keys_on(port: int, namespace: str) -> list[str]:
    client = coredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    async with client:
        return sorted([key async for key in client.scan_iter(match=f"failover:{namespace}:*")])


async def test_sentinel_shares_state_through_the_current_master(
    sentinel: PrivateSentinel,
) -> None:
    namespace = unique_namespace()
    clock = FakeClock()
    a, b = manager(sentinel.url, namespace, clock), manager(sentinel.url, namespace, clock)
    async with a, b:
        await open_primary(a)
        await wait_for(lambda: pair_state(b)["state"] == "open", 2, "b to see the open pair")
        assert await keys_on(sentinel.master(), namespace) == [
            f"failover:{namespace}:open:{{openai:{OP}}}"
        ]


@pytest.mark.parametrize("how", ["sentinel_failover", "master_killed"])
async def test_a_master_failover_during_traffic_fails_no_call_and_converges(
    sentinel: PrivateSentinel, how: str
) -> None:
    namespace = unique_namespace()
    a, b = manager(sentinel.url, namespace), manager(sentinel.url, namespace)
    failures: list[BaseException] = []
    calls = 0

    async def load(m: PlatformManager) -> None:
        nonlocal calls
        while True:
            try:
                await m.with_fallback(OP, lambda spec: spec.name)
                calls += 1
            except Exception as exc:
                failures.append(exc)
            await anyio.sleep(0.001)

    def groq(m: PlatformManager) -> str:
        return str(pair_state(m, "groq")["state"])

    with anyio.fail_after(90):
        async with a, b, anyio.create_task_group() as tasks:
            for m in (a, b, a, b):
                tasks.start_soon(load, m)
            await wait_for(lambda: calls > 50, 5, "load to start")
            a.force_open("groq", OP, 120)
            await wait_for(lambda: groq(b) == "open", 2, "b to see groq forced open")
            old_master = await anyio.to_thread.run_sync(sentinel.start_failover, how)
            # The operator acts while the master changes: the reset may reach the old master
            # just before it is demoted (and be lost there), or wait in b's queue while b
            # reconnects, and a re-pushes its open groq when it reconnects. The reset's epoch
            # must still win everywhere.
            b.reset("groq", OP)
            new_master = await anyio.to_thread.run_sync(sentinel.new_master_after, old_master)
            before = calls
            await wait_for(lambda: calls > before + 50, 10, "calls after the failover")
            await wait_for(lambda: on(a, new_master) and on(b, new_master), 15, "reconnected")
            await wait_for(lambda: groq(a) == groq(b) == "closed", 10, "the reset everywhere")
            # A transition made after the failover reaches the other process through the new
            # master (one platform stays usable, so no call needs a last-resort probe) ...
            b.force_open("openai", OP, 120)
            await wait_for(lambda: pair_state(a)["state"] == "open", 10, "a to see b's open")
            # ... and the new master holds the fleet's state: no open groq came back.
            expected = [
                f"failover:{namespace}:epoch:{{groq:{OP}}}",
                f"failover:{namespace}:epoch:{{openai:{OP}}}",
                f"failover:{namespace}:open:{{openai:{OP}}}",
            ]
            deadline = anyio.current_time() + 10
            while await keys_on(new_master, namespace) != expected:
                assert anyio.current_time() < deadline, await keys_on(new_master, namespace)
                await anyio.sleep(0.05)
            assert groq(a) == groq(b) == "closed"
            tasks.cancel_scope.cancel()
    assert failures == []
    assert calls > 100
