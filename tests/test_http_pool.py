"""The adapters' connection pool: httpcore's pool with a fair hand-out of connections.

The assignment (the same for the async and the blocking pool) is tested on the blocking one
with stand-in connections (no sockets, no event loop): each idle connection goes to one
waiting request, the keep-alive limit counts idle connections, a connection handed to a
request that has not started on it is neither reused nor closed, and idle sockets are probed
once per sweep or when about to be reused. Then the platforms' clients against the fake
provider server (asyncio and trio).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from httpcore._sync.connection_pool import PoolRequest

from failover import PlatformManager
from failover.http import OpenAICompatibleChat, StabilityImages, TextGeneration, TextResult
from failover.http._pool import AsyncPool, SyncPool, fair_pool_supported
from failover.testing import FakeProviderServer

HERE = "http://here.test"
THERE = "http://there.test"


class Connection:
    """Stands in for an httpcore connection: an origin, a state, an expiry the test sets."""

    def __init__(self, url: str = HERE, state: str = "idle", *, expired: bool = False) -> None:
        self.origin = httpcore.URL(url).origin
        self.state = state
        self.expired = expired
        self.probes = 0

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin

    def is_idle(self) -> bool:
        return self.state == "idle"

    def is_available(self) -> bool:  # HTTP/1.1: one request at a time
        return self.is_idle()

    def is_closed(self) -> bool:
        return self.state == "closed"

    def has_expired(self) -> bool:
        self.probes += 1
        return self.expired


def waiting(url: str = HERE) -> Any:
    return PoolRequest(httpcore.Request("POST", f"{url}/chat/completions"))


def handed(connection: Connection) -> Any:
    """A request in the pool that was handed ``connection``."""
    request = waiting()
    request.assign_to_connection(connection)
    return request


def pool(
    connections: list[Connection],
    requests: list[Any],
    *,
    max_connections: int = 10,
    keepalive: int = 10,
    swept: bool = False,
) -> Any:
    """A pool holding ``connections`` with ``requests`` in its queue; ``swept``: a sweep has
    just run, so this pass probes only a connection it is about to reuse."""
    made = SyncPool(max_connections=max_connections, max_keepalive_connections=keepalive)
    made._connections = list(connections)
    made._requests = list(requests)
    made.create_connection = lambda origin: Connection(str(origin), "new")
    if swept:
        made.next_sweep = math.inf
    return made


def test_the_installed_httpcore_gets_the_fair_assignment() -> None:
    assert fair_pool_supported()


def test_an_idle_connection_goes_to_one_waiting_request() -> None:
    idle = Connection()
    requests = [waiting(), waiting(), waiting()]
    closing = pool([idle], requests)._assign_requests_to_connections()
    assert requests[0].connection is idle
    others = [requests[1].connection, requests[2].connection]
    assert all(isinstance(made, Connection) and made.state == "new" for made in others)
    assert others[0] is not others[1]
    assert closing == []


def test_a_full_pool_leaves_the_rest_waiting() -> None:
    busy, idle = Connection(state="active"), Connection()
    requests = [handed(busy), waiting(), waiting(), waiting()]
    subject = pool([busy, idle], requests, max_connections=2)
    assert subject._assign_requests_to_connections() == []
    assert requests[1].connection is idle
    assert requests[2].connection is None
    assert requests[3].connection is None
    assert subject._connections == [busy, idle]


def test_the_keepalive_limit_counts_idle_connections_only() -> None:
    busy = [Connection(state="active") for _ in range(30)]
    idle = Connection()
    subject = pool([*busy, idle], [handed(c) for c in busy], max_connections=100, keepalive=20)
    assert subject._assign_requests_to_connections() == []
    assert idle in subject._connections


def test_idle_connections_beyond_the_keepalive_limit_close_oldest_first() -> None:
    idle = [Connection() for _ in range(5)]
    subject = pool(idle, [], keepalive=2)
    assert subject._assign_requests_to_connections() == idle[:3]
    assert subject._connections == idle[3:]


def test_waiting_requests_are_served_before_surplus_idle_connections_close() -> None:
    idle = [Connection() for _ in range(3)]
    requests = [waiting(), waiting()]
    subject = pool(idle, requests, keepalive=0)
    assert subject._assign_requests_to_connections() == [idle[0]]
    assert [request.connection for request in requests] == [idle[2], idle[1]]


def test_the_newest_idle_connection_is_reused_so_the_others_can_expire() -> None:
    idle = [Connection() for _ in range(3)]
    for _ in range(3):  # one call after another: each time the same connection
        request = waiting()
        subject = pool(idle, [request], swept=True)
        subject._assign_requests_to_connections()
        assert request.connection is idle[2]


def test_a_connection_handed_out_but_not_started_is_neither_reused_nor_closed() -> None:
    taken = Connection()  # still idle: its request has not run yet
    requests = [handed(taken), waiting()]
    subject = pool([taken], requests, keepalive=0)
    assert subject._assign_requests_to_connections() == []
    assert requests[1].connection is not taken
    assert taken in subject._connections


def test_closed_connections_leave_the_pool_and_free_their_slot() -> None:
    closed = Connection(state="closed")
    request = waiting()
    subject = pool([closed], [request], max_connections=1)
    assert subject._assign_requests_to_connections() == []
    assert request.connection is not None
    assert subject._connections == [request.connection]


def test_a_full_pool_closes_an_idle_connection_to_another_origin() -> None:
    elsewhere = Connection(THERE)
    request = waiting(HERE)
    subject = pool([elsewhere], [request], max_connections=1)
    assert subject._assign_requests_to_connections() == [elsewhere]
    assert request.connection is not None
    assert request.connection is not elsewhere
    assert subject._connections == [request.connection]


def test_a_sweep_probes_idle_connections_and_closes_the_expired() -> None:
    fresh, stale, busy = Connection(), Connection(expired=True), Connection(state="active")
    subject = pool([fresh, stale, busy], [handed(busy)])
    assert subject._assign_requests_to_connections() == [stale]
    assert subject._connections == [fresh, busy]
    assert (fresh.probes, stale.probes, busy.probes) == (1, 1, 0)


def test_between_sweeps_only_a_connection_about_to_be_reused_is_probed() -> None:
    spare, fresh, stale = Connection(), Connection(), Connection(expired=True)
    request = waiting()
    subject = pool([spare, fresh, stale], [request], swept=True)
    assert subject._assign_requests_to_connections() == [stale]
    assert request.connection is fresh
    assert (spare.probes, fresh.probes, stale.probes) == (0, 1, 1)
    assert subject._connections == [spare, fresh]


# -- the platforms' clients ----------------------------------------------------------------------

KEYS = {"GROQ_API_KEY": "gsk_test_groq_0123456789", "STABILITY_API_KEY": "sk-stab-test-0123"}
MESSAGES = [{"role": "user", "content": "tell me something nice"}]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=7) as fake:
        yield fake


def pool_of(client: Any) -> Any:
    return client._transport._pool


def test_each_platform_client_gets_the_fair_pool() -> None:
    chat, images = OpenAICompatibleChat(), StabilityImages()
    assert isinstance(pool_of(chat.client("groq")), AsyncPool)
    assert isinstance(pool_of(chat.sync_client("groq")), SyncPool)
    assert isinstance(pool_of(images.client("stability")), AsyncPool)
    assert isinstance(pool_of(images.sync_client("stability")), SyncPool)
    chat.close()
    images.close()


def test_a_transport_given_by_the_caller_is_used_as_it_is() -> None:
    transport = httpx.AsyncHTTPTransport()
    chat = OpenAICompatibleChat(transport=transport)
    assert chat.client("groq")._transport is transport
    chat.close()


@pytest.mark.anyio
async def test_200_callers_calling_in_turn_reuse_at_most_100_connections(
    server: FakeProviderServer,
) -> None:
    async with PlatformManager({"text_generation": [("groq", "llama-3.3-70b-versatile")]}) as m:
        chat = TextGeneration(m, base_urls={"groq": server.base_url("groq")})
        results: list[TextResult] = []

        async def caller() -> None:
            for _ in range(3):
                results.append(await chat.complete(MESSAGES))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(200):
                    group.start_soon(caller)
        kept = len(pool_of(chat.adapter("groq").client("groq")).connections)
    assert len(results) == 600
    assert server.stats()["groq"] == {"total": 600, "ok": 600}
    # Each connection that goes idle goes to a waiting call: 100 (the default limit) serve
    # all 600 calls. httpcore's own assignment closed every connection that went idle while
    # more than 20 were open and opened a new one for the next call: 600 for 600 calls.
    assert server.connections_accepted <= 100
    assert kept <= 20
