"""Breaker state shared by a fleet of processes through Redis (DESIGN §6), built on coredis.

Use it as ``PlatformManager(..., shared_state=RedisSharedState(url))`` inside
``async with manager:``. Each process still decides admission from its own state, so a
successful call never waits for Redis. What goes through Redis:

- transitions (a pair opens or closes, a platform or pair cools down, an operator resets):
  written as keys that expire at the deadline, and announced on one pub/sub channel so every
  other process applies them at once;
- the half-open probe: a fleet-wide lease (``SET NX PX``), so the fleet sends
  ``half_open_max_calls`` probes per pair, not that many per process.

Key layout (``<ns>`` is the namespace; the braces are cluster hash tags, so each pair's keys
share one slot: see ``failover._redis_topology``)::

    failover:<ns>:open:{<platform>:<operation>}        open pair (no expiry when isolated)
    failover:<ns>:cool:{<platform>}                    platform cool-down (credit, auth)
    failover:<ns>:cool:{<platform>:<operation>}        pair cool-down (rate limited)
    failover:<ns>:probe:{<platform>:<operation>}:<n>   probe lease n, value = holder token
    failover:<ns>:events                               pub/sub channel

Values and messages are the same JSON object: ``{"v": 1, "pid", "kind", "platform",
"operation", "until_ms", "reason"}``; a process ignores messages carrying its own ``pid``.

A Redis outage never fails a user call: the process carries on with local state, logs one
warning, reconnects with backoff, re-syncs (loads the fleet's keys, pushes its own open pairs
and cool-downs) and logs the recovery. Requires the ``redis`` extra (``pip install
failover[redis]``).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio.abc import TaskStatus

from failover._core import validate
from failover._core.errors import ConfigError
from failover._engine.fleet import EVENT_KINDS, FleetLink, SharedEvent
from failover._observe.scrub import get_logger
from failover._redis_topology import (
    KeyLayout,
    check_reachable,
    display_url,
    open_client,
    parse_url,
    publish,
)

try:
    import coredis
    from coredis.exceptions import AuthenticationError, AuthorizationError
    from coredis.retry import NoRetryPolicy
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "failover.redis needs coredis: install the extra with `pip install failover[redis]`"
    ) from exc

if TYPE_CHECKING:
    from failover._redis_topology import Client

__all__ = ["RedisSharedState", "decode_message", "display_url", "key_prefix"]

logger = get_logger("failover.redis")

MESSAGE_VERSION: Final = 1
_BAD_NAMESPACE_CHARS: Final = frozenset("*?[]\\:{} \t\r\n")

# Compare-and-delete, so a late release never frees a lease someone else took since.
_RELEASE_SCRIPT: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def key_prefix(namespace: str) -> str:
    """The prefix of every key (and the channel) of ``namespace``."""
    return KeyLayout(namespace).prefix


def _check_namespace(namespace: object) -> str:
    if (
        not isinstance(namespace, str)
        or not namespace
        or any(char in _BAD_NAMESPACE_CHARS for char in namespace)
    ):
        raise ConfigError(
            "namespace must be a non-empty string without spaces, ':' or glob characters, "
            f"got {namespace!r}",
            key="namespace",
        )
    return namespace


def encode_message(event: SharedEvent, pid: str) -> str:
    return json.dumps(
        {
            "v": MESSAGE_VERSION,
            "pid": pid,
            "kind": event.kind,
            "platform": event.platform,
            "operation": event.operation,
            "until_ms": event.until_ms,
            "reason": event.reason,
        },
        separators=(",", ":"),
    )


def decode_message(data: object) -> tuple[str, SharedEvent] | None:
    """``(pid, event)`` from a key value or channel message, or ``None`` if malformed."""
    try:
        raw = json.loads(data) if isinstance(data, str | bytes) else None
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
        return None
    pid, kind, platform = raw.get("pid"), raw.get("kind"), raw.get("platform")
    operation, until_ms, reason = raw.get("operation"), raw.get("until_ms"), raw.get("reason", "")
    if (
        not isinstance(pid, str)
        or kind not in EVENT_KINDS
        or not isinstance(platform, str)
        or not (operation is None or isinstance(operation, str))
        or not (until_ms is None or (isinstance(until_ms, int) and not isinstance(until_ms, bool)))
        or not isinstance(reason, str)
    ):
        return None
    return pid, SharedEvent(kind, platform, operation, until_ms, reason)


def leaf_exception(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class RedisSharedState:
    """Shares breaker transitions, cool-downs and probe leases through Redis.

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...``,
    ``unix:///path.sock``, ``redis+cluster://host:port,host:port`` (Redis Cluster) or
    ``redis+sentinel://host:port,host:port/service_name[/db]`` (Sentinel); checked at
    construction (a malformed one raises :class:`~failover.ConfigError`). ``namespace``
    separates fleets sharing one Redis.
    Nothing connects until the manager's ``async with`` starts :meth:`run`. One instance
    serves one manager at a time.
    """

    def __init__(
        self,
        url: str,
        namespace: str = "default",
        *,
        connect_timeout: float = 1.0,
        command_timeout: float = 0.5,
        max_backoff: float = 5.0,
        max_queue: int = 10_000,
    ) -> None:
        self.topology = parse_url(url)
        self.url = self.topology.url
        self.namespace = _check_namespace(namespace)
        self.connect_timeout = validate.number("connect_timeout", connect_timeout, above=0)
        self.command_timeout = validate.number("command_timeout", command_timeout, above=0)
        self.max_backoff = validate.number("max_backoff", max_backoff, above=0)
        validate.integer("max_queue", max_queue, at_least=1)
        #: Identifies this process's messages (host, pid and a random part).
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.keys = KeyLayout(self.namespace)
        self.prefix = self.keys.prefix
        self.channel = self.keys.channel
        self._queue: collections.deque[SharedEvent | tuple[str, str]] = collections.deque(
            maxlen=max_queue
        )
        self._wakeup: anyio.Event | None = None
        self._flushed: anyio.Event | None = None
        self._stopping: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._writing = False
        self._client: Client | None = None
        self._tokens = itertools.count(1)
        self._link: FleetLink | None = None
        self._session_pubsub: Any = None
        #: Whether the last session reached Redis (``False`` while running on local state).
        self.connected = False

    def __repr__(self) -> str:
        return (
            f"RedisSharedState({display_url(self.url)!r}, namespace={self.namespace!r}, "
            f"connected={self.connected})"
        )

    # -- keys ----------------------------------------------------------------------------------

    def event_key(self, event: SharedEvent) -> str:
        """The key holding ``event``'s state (``open``/``cool``; ``closed``/``reset`` delete it)."""
        kind = "open" if event.kind in ("open", "closed") else "cool"
        if event.operation is None:
            return self.keys.platform(kind, event.platform)
        return self.keys.pair(kind, event.platform, event.operation)

    def probe_key(self, pair_key: tuple[str, str], slot: int) -> str:
        return self.keys.probe(pair_key[0], pair_key[1], slot)

    def _open_client(self) -> AbstractAsyncContextManager[Client]:
        return open_client(
            self.topology,
            connect_timeout=self.connect_timeout,
            stream_timeout=max(self.command_timeout, 1.0),
        )

    # -- the call path (never blocks on Redis, never raises for an outage) ---------------------

    def publish(self, event: SharedEvent) -> None:
        self._queue.append(event)
        if self._wakeup is not None:
            self._wakeup.set()

    def release_probe(self, pair_key: tuple[str, str], token: str) -> None:
        self._queue.append((token, self.probe_key(pair_key, int(token.rsplit(":", 1)[1]))))
        if self._wakeup is not None:
            self._wakeup.set()

    async def acquire_probe(
        self, pair_key: tuple[str, str], lease_ms: int, slots: int
    ) -> str | None:
        client = self._client
        if client is None:
            return ""
        token_base = f"{self.process_id}:{next(self._tokens)}"
        try:
            with anyio.fail_after(self.command_timeout):
                for slot in range(slots):
                    token = f"{token_base}:{slot}"
                    taken = await client.set(
                        self.probe_key(pair_key, slot),
                        token,
                        condition=coredis.PureToken.NX,
                        px=max(int(lease_ms), 1),
                    )
                    if taken:
                        return token
        except Exception as exc:
            logger.debug(
                "Probe lease not checked with Redis (%s): deciding locally", type(exc).__name__
            )
            return ""
        return None

    async def stop(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            while (self._queue or self._writing) and self._client is not None:
                self._flushed = anyio.Event()
                await self._flushed.wait()
        if self._stopping is not None and self._stopped is not None:
            self._stopping.set()
            with anyio.move_on_after(timeout):
                await self._stopped.wait()

    # -- the background task -------------------------------------------------------------------

    async def run(
        self, link: FleetLink, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, sync, listen and write until cancelled; reconnect with backoff on outage."""
        if self._stopped is not None and not self._stopped.is_set():
            raise RuntimeError(
                "this RedisSharedState is already running for another manager; "
                "give each PlatformManager its own instance"
            )
        self._wakeup = anyio.Event()
        self._stopping = stopping = anyio.Event()
        self._stopped = anyio.Event()
        started = False
        down_since: float | None = None
        delay = 0.05
        shown = display_url(self.url)
        try:
            while not stopping.is_set():
                try:
                    async with self._session(link) as session:
                        synced = session
                        self.connected = True
                        if down_since is not None:
                            logger.warning(
                                "Redis shared state at %s is back after %.1fs: re-synced "
                                "%d shared entries",
                                shown,
                                time.monotonic() - down_since,
                                synced,
                            )
                            down_since = None
                        else:
                            logger.info(
                                "Sharing breaker state through Redis at %s (namespace %r, "
                                "%d shared entries loaded)",
                                shown,
                                self.namespace,
                                synced,
                            )
                        delay = 0.05
                        if not started:
                            started = True
                            task_status.started()
                        await self._serve()
                except Exception as exc:
                    self._client = None
                    self.connected = False
                    if down_since is None:
                        down_since = time.monotonic()
                        self._log_outage(shown, leaf_exception(exc), first_attempt=not started)
                    else:
                        logger.debug(
                            "Redis at %s still unavailable: %r", shown, leaf_exception(exc)
                        )
                if not started:
                    started = True
                    task_status.started()
                with anyio.move_on_after(delay * (0.5 + random.random() / 2)):
                    await stopping.wait()
                delay = min(delay * 2, self.max_backoff)
        finally:
            self._client = None
            self.connected = False
            self._wakeup = None
            if self._flushed is not None:
                self._flushed.set()
            self._stopped.set()

    def _log_outage(self, shown: str, exc: BaseException, *, first_attempt: bool) -> None:
        if isinstance(exc, AuthenticationError | AuthorizationError):
            logger.warning(
                "Redis at %s refused the credentials (%s): check the user and password in the "
                "URL. Carrying on with this process's own breaker state; retrying in the "
                "background.",
                shown,
                exc,
            )
            return
        what = "is unreachable" if first_attempt else "was lost"
        logger.warning(
            "Redis shared state at %s %s (%s: %s): carrying on with this process's own "
            "breaker state; reconnecting in the background.",
            shown,
            what,
            type(exc).__name__,
            exc,
        )

    async def _check_reachable(self) -> None:
        await check_reachable(self.topology, self.connect_timeout)

    @asynccontextmanager
    async def _session(self, link: FleetLink) -> AsyncIterator[int]:
        """One connection: subscribe, load the fleet's state, push ours; yields entries synced."""
        await self._check_reachable()
        async with self._open_client() as client:
            pubsub = client.pubsub(retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True)
            async with pubsub:
                with anyio.fail_after(self.connect_timeout + 5 * self.command_timeout):
                    await pubsub.subscribe(self.channel)
                    loaded = await self._load(client, link)
                    pushed = link.snapshot()
                    if pushed:
                        await self._write(client, pushed)
                self._session_pubsub = pubsub
                self._client = client
                try:
                    yield loaded + len(pushed)
                finally:
                    self._client = None

    async def _serve(self) -> None:
        client = self._client
        pubsub = self._session_pubsub
        stopping = self._stopping
        assert client is not None
        assert stopping is not None

        async def listen() -> None:
            async for message in pubsub:
                if message["type"] in ("message", "pmessage"):
                    self._receive(message["data"])
            raise ConnectionError("Redis subscription ended")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._writer, client)
            tasks.start_soon(listen)
            # Stopping leaves the subscription while the connection is still up, so coredis
            # can unsubscribe cleanly; cancelling from outside would close it under its feet.
            await stopping.wait()
            tasks.cancel_scope.cancel()

    def _receive(self, data: object) -> None:
        decoded = decode_message(data)
        if decoded is None:
            logger.debug("Ignoring a malformed shared-state message")
            return
        pid, event = decoded
        if pid != self.process_id and self._link is not None:
            self._link.apply(event)

    async def _load(self, client: Client, link: FleetLink) -> int:
        self._link = link
        keys = [
            key
            async for key in client.scan_iter(match=self.prefix + "*", count=500)
            if not self.keys.is_probe(key) and key != self.channel
        ]
        applied = 0
        for start in range(0, len(keys), 500):
            for value in await client.mget(keys[start : start + 500]):
                decoded = decode_message(value)
                if decoded is not None:
                    link.apply(decoded[1])
                    applied += 1
        return applied

    async def _writer(self, client: Client) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._flushed is not None:
                    self._flushed.set()
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
            batch = list(self._queue)
            self._queue.clear()
            self._writing = True
            try:
                await self._write(client, batch)
            except BaseException:
                # Not written (Redis went away, or we are being stopped): put the batch back
                # in front, so closes, resets and probe releases are sent after reconnecting.
                # The deque's maxlen still bounds memory (when full, the newest entries go).
                self._queue.extendleft(reversed(batch))
                raise
            finally:
                self._writing = False

    async def _write(self, client: Client, batch: Iterable[SharedEvent | tuple[str, str]]) -> None:
        link = self._link
        now_ms = link.wall_ms() if link is not None else int(time.time() * 1000)
        releases: list[tuple[str, str]] = []
        async with client.pipeline(transaction=False) as pipe:
            for item in batch:
                if isinstance(item, tuple):
                    releases.append(item)
                    continue
                message = encode_message(item, self.process_id)
                key = self.event_key(item)
                if item.kind in ("open", "cool"):
                    if item.until_ms is None:
                        pipe.set(key, message)
                    elif item.until_ms - now_ms > 0:
                        pipe.set(key, message, px=item.until_ms - now_ms)
                    else:
                        continue
                elif item.kind == "closed":
                    pipe.delete([key])
                else:  # reset
                    pipe.delete(
                        [key, self.event_key(SharedEvent("closed", item.platform, item.operation))]
                    )
                publish(self.topology, pipe, self.channel, message)
        for token, key in releases:
            await client.eval(_RELEASE_SCRIPT, [key], [token])

    # -- the fleet's view (for `failover health --redis`) --------------------------------------

    async def fleet_view(self) -> dict[str, Any]:
        """Open pairs, cooling platforms/pairs and probe leases now in Redis, as a plain dict.

        Connects for the duration of the call; raises coredis errors when Redis is unreachable.
        """
        await self._check_reachable()
        now_ms = int(time.time() * 1000)
        view: dict[str, Any] = {
            "namespace": self.namespace,
            "open": [],
            "cooling": [],
            "probes": [],
        }
        async with self._open_client() as client:
            with anyio.fail_after(self.connect_timeout + 10 * self.command_timeout):
                keys = sorted(
                    [key async for key in client.scan_iter(match=self.prefix + "*", count=500)]
                )
                values = await client.mget(keys) if keys else ()
                ttls = [await client.pttl(key) for key in keys]
        for key, value, ttl in zip(keys, values, ttls, strict=True):
            remaining = None if ttl < 0 else ttl / 1000
            if self.keys.is_probe(key):
                platform, operation, slot = self.keys.parse_probe(key)
                holder = (value or "").rsplit(":", 2)[0]
                view["probes"].append(
                    {
                        "platform": platform,
                        "operation": operation,
                        "slot": int(slot) if slot.isdigit() else slot,
                        "holder": holder,
                        "expires_in": remaining,
                    }
                )
                continue
            decoded = decode_message(value)
            if decoded is None:
                continue
            pid, event = decoded
            entry = {
                "platform": event.platform,
                "operation": event.operation,
                "reason": event.reason,
                "remaining_seconds": None
                if event.until_ms is None
                else max(event.until_ms - now_ms, 0) / 1000,
                "until": None if event.until_ms is None else event.until_ms / 1000,
                "isolated": event.until_ms is None,
                "by": pid,
            }
            view["open" if event.kind == "open" else "cooling"].append(entry)
        return view
