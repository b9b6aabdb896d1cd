"""RedisSharedState beyond one server: Redis Cluster and Sentinel, started here from redis-server.

The cluster has three primaries and no replicas; the Sentinel set-up has one master, one
replica and three sentinels. Both run on free loopback ports and are stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import coredis
import pytest

from failover import AllPlatformsFailed, ConfigError, CreditExhausted, PlatformManager, Transient
from failover._redis_topology import KeyLayout, parse_url
from failover.redis import RedisSharedState
from failover.testing import FakeClock
from redis_topology_support import PrivateCluster, PrivateSentinel, redis_cli, require_version
from test_redis_support import ENVIRON, PRIORITIES, unique_namespace, wait_for

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
    whole = [
        shared.event_key(SharedEvent(kind, platform, None, None, ""))
        for kind in ("open", "closed", "cool", "reset")
    ]
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
    assert keys.parse_probe(key) == ("openai", OP, "2")


# -- helpers ---------------------------------------------------------------------------------


def manager(url: str, namespace: str, clock: FakeClock | None = None, **kwargs: Any) -> Any:
    settings: dict[str, Any] = {
        "failure_threshold": 3,
        "cache_ttl_seconds": 30,
        "environ": ENVIRON,
        "clock": clock,
        "shared_state": RedisSharedState(url, namespace, max_backoff=0.2),
    }
    settings.update(kwargs)
    return PlatformManager(PRIORITIES, **settings)


def pair_state(m: PlatformManager, platform: str = "openai") -> dict[str, Any]:
    status: dict[str, Any] = m.get_health_status()[platform]["operations"][OP]
    return status


async def failing_primary(spec: Any) -> str:
    if spec.name == "openai":
        raise Transient("503 from the provider")
    return str(spec.name)


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
