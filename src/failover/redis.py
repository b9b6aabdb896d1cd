"""Breaker state shared by a fleet of processes through Redis (DESIGN §6), built on coredis.

Use it as ``PlatformManager(..., shared_state=RedisSharedState(url))`` inside
``async with manager:`` (or ``with manager:`` in synchronous programs: the link then runs on a
thread the manager owns). Each process still decides admission from its own state, so a
successful call never waits for Redis. What goes through Redis:

- transitions (a pair opens or closes, a platform or pair cools down, an operator resets):
  written as keys that expire at the deadline, and announced on one pub/sub channel so every
  other process applies them at once;
- the half-open probe: a fleet-wide lease (``SET NX PX``, in a script), so the fleet sends
  ``half_open_max_calls`` probes per pair, not that many per process. A lease request whose
  answer never comes (cancelled caller, timeout, hung server) is voided from the background
  task, so it cannot hold a lease nobody will release.

Key layout (``<ns>`` is the namespace; the braces are cluster hash tags, so each pair's keys
share one slot: see ``failover._redis_topology``)::

    failover:<ns>:open:{<platform>:<operation>}        open pair (no expiry when isolated)
    failover:<ns>:cool:{<platform>}                    platform cool-down (credit, auth)
    failover:<ns>:cool:{<platform>:<operation>}        pair cool-down (rate limited)
    failover:<ns>:probe:{<platform>:<operation>}:<n>   probe lease n, value = holder token
    failover:<ns>:probe:{<platform>:<operation>}:void:<request>   a voided lease request
    failover:<ns>:epoch:{<platform>}                   newest operator epoch of a platform
    failover:<ns>:epoch:{<platform>:<operation>}       ... and of a pair (no expiry)
    failover:<ns>:events                               pub/sub channel

Values and messages are the same JSON object: ``{"v": 2, "pid", "kind", "platform",
"operation", "ttl_ms", "epoch", "reason"}``; a process ignores messages carrying its own
``pid``. ``ttl_ms`` is the time left when written; a loading process reads the key's own
``PTTL`` instead, so no host's wall clock ever matters.

A Redis outage never fails a user call: the process carries on with local state, logs one
warning, reconnects with backoff (cut short as soon as a cheap ``PING`` is answered again),
re-syncs (loads the fleet's keys, pushes its own open pairs and cool-downs) and logs the
recovery. Requires the ``redis`` extra (``pip install
failover[redis]``).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from failover._core import validate
from failover._core.errors import ConfigError
from failover._engine.background import soon_from_thread
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
    from coredis.exceptions import AuthenticationError, AuthorizationError
    from coredis.retry import NoRetryPolicy
    from coredis.tokens import PureToken
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "failover.redis needs coredis: install the extra with `pip install failover[redis]`"
    ) from exc

if TYPE_CHECKING:
    from failover._redis_topology import Client

__all__ = ["RedisSharedState", "decode_message", "display_url", "key_prefix"]

logger = get_logger("failover.redis")

MESSAGE_VERSION: Final = 2
_BAD_NAMESPACE_CHARS: Final = frozenset("*?[]\\:{} \t\r\n")

#: While Redis is down, how often a cheap ``PING`` checks whether it is back (seconds), so
#: the reconnect back-off never delays convergence.
READY_POLL_SECONDS: Final = 0.2

# Compare-and-delete, so a late release never frees a lease someone else took since.
_RELEASE_SCRIPT: Final = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
# KEYS: the request's void key, then one key per slot. Returns the slot taken, or -1. A
# request voided before it ran (it was stuck in a hung server) takes nothing.
_ACQUIRE_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[1] .. ':' .. (i - 2), 'NX', 'PX', ARGV[2]) then
    return i - 2
  end
end
return -1
"""
# Same KEYS: voids a request whose answer never came, whichever of the two runs first.
_VOID_SCRIPT: Final = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local freed = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] .. ':' .. (i - 2) then
    redis.call('DEL', KEYS[i])
    freed = freed + 1
  end
end
return freed
"""
# Keeps the highest operator epoch: a late write never lowers it.
_EPOCH_SCRIPT: Final = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, known = pcall(cjson.decode, current)
  if ok and type(known) == 'table' and tonumber(known['epoch'] or 0) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class _Queued(NamedTuple):
    """An event waiting to be written, with when (manager clock) it was queued."""

    event: SharedEvent
    at: float | None


class _Script(NamedTuple):
    """A lease release (or a void) waiting to be run."""

    script: str
    keys: list[str]
    args: list[str]


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
            "ttl_ms": event.ttl_ms,
            "epoch": event.epoch,
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
    operation, ttl_ms, reason = raw.get("operation"), raw.get("ttl_ms"), raw.get("reason", "")
    epoch = raw.get("epoch", 0)
    if (
        not isinstance(pid, str)
        or kind not in EVENT_KINDS
        or not isinstance(platform, str)
        or not (operation is None or isinstance(operation, str))
        or not (ttl_ms is None or _is_int(ttl_ms))
        or not (_is_int(epoch) and epoch >= 0)
        or not isinstance(reason, str)
    ):
        return None
    return pid, SharedEvent(kind, platform, operation, ttl_ms, reason, epoch)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def leaf_exception(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _CancelledConnectFilter(logging.Filter):
    """Drops coredis' ``Connection attempt failed unexpectedly!`` ERROR for a connection
    attempt that failed with no error of its own: one failover cancelled (a command that timed
    out against a hung server) or that was cut short. coredis logs it with no exception
    (``NoneType: None``), once per attempt; failover already says, once, that the shared state
    was lost. Any other coredis record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Connection attempt failed unexpectedly!":
            return True
        error = record.exc_info[1] if record.exc_info else None
        # asyncio's CancelledError or trio's Cancelled, by name: logging may run outside any
        # event loop, where anyio cannot say which one is in use.
        cancelled = type(error).__name__ in ("CancelledError", "Cancelled")
        return error is not None and not isinstance(error, TimeoutError) and not cancelled


_CONNECT_FILTER: Final = _CancelledConnectFilter()


def _quiet_cancelled_connects() -> None:
    """Attach :class:`_CancelledConnectFilter` to coredis' logger (once)."""
    coredis_logger = logging.getLogger("coredis")
    if _CONNECT_FILTER not in coredis_logger.filters:
        coredis_logger.addFilter(_CONNECT_FILTER)


class RedisSharedState:
    """Shares breaker transitions, cool-downs and probe leases through Redis.

    ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...``,
    ``unix:///path.sock``, ``redis+cluster://host:port,host:port`` (Redis Cluster) or
    ``redis+sentinel://host:port,host:port/service_name[/db]`` (Sentinel); checked at
    construction (a malformed one raises :class:`~failover.ConfigError`). ``namespace``
    separates fleets sharing one Redis.
    Nothing connects until the manager's ``async with`` (or ``with``) starts :meth:`run`. One
    instance serves one manager at a time.
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
        self._queue: collections.deque[_Queued | _Script] = collections.deque(maxlen=max_queue)
        self._wakeup: anyio.Event | None = None
        self._flushed: anyio.Event | None = None
        self._stopping: anyio.Event | None = None
        self._stopped: anyio.Event | None = None
        self._writing = False
        self._loop_thread: int | None = None
        self._loop_token: anyio.lowlevel.EventLoopToken | None = None
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

    def void_key(self, pair_key: tuple[str, str], request: str) -> str:
        return self.keys.void(pair_key[0], pair_key[1], request)

    def epoch_key(self, platform: str, operation: str | None) -> str:
        if operation is None:
            return self.keys.platform("epoch", platform)
        return self.keys.pair("epoch", platform, operation)

    def _open_client(self) -> AbstractAsyncContextManager[Client]:
        return open_client(
            self.topology,
            connect_timeout=self.connect_timeout,
            stream_timeout=max(self.command_timeout, 1.0),
        )

    # -- the call path (never blocks on Redis, never raises for an outage) ---------------------

    def _now(self) -> float | None:
        link = self._link
        return link.clock.now() if link is not None else None

    def _enqueue(self, item: _Queued | _Script) -> None:
        # Any thread may queue (synchronous callers too); only the loop's thread may touch
        # its Event, so other threads hand the wake-up to the loop without waiting for it.
        self._queue.append(item)
        if self._wakeup is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wakeup.set()
        elif self._loop_token is not None:
            soon_from_thread(self._loop_token, self._wake)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def publish(self, event: SharedEvent) -> None:
        self._enqueue(_Queued(event, self._now()))

    def release_probe(self, pair_key: tuple[str, str], token: str) -> None:
        key = self.probe_key(pair_key, int(token.rsplit(":", 1)[1]))
        self._enqueue(_Script(_RELEASE_SCRIPT, [key], [token]))

    async def acquire_probe(
        self, pair_key: tuple[str, str], lease_ms: int, slots: int
    ) -> str | None:
        client = self._client
        if client is None:
            return ""
        request = f"{self.process_id}:{next(self._tokens)}"
        keys = [self.void_key(pair_key, request)]
        keys += [self.probe_key(pair_key, slot) for slot in range(slots)]
        px = str(max(int(lease_ms), 1))
        answered = False
        try:
            with anyio.fail_after(self.command_timeout):
                slot = await client.eval(_ACQUIRE_SCRIPT, keys, [request, px])
            answered = True
        except Exception as exc:
            logger.debug(
                "Probe lease not checked with Redis (%s): deciding locally", type(exc).__name__
            )
            return ""
        finally:
            if not answered:
                # The request may still run (it is in a socket or a hung server): void it
                # from the background task, since this caller may be gone. The void outlives
                # any lease the request could take.
                self._enqueue(_Script(_VOID_SCRIPT, keys, [request, str(2 * int(px))]))
        if isinstance(slot, int) and slot >= 0:
            return f"{request}:{slot}"
        return None

    async def claim_check(self, pair_key: tuple[str, str], ttl_ms: int) -> bool | None:
        """Claim the pair's background health check for ``ttl_ms`` (``SET NX PX``): ``True``
        when this process runs it, ``False`` when another does, ``None`` when Redis cannot
        be asked now (the caller decides locally)."""
        client = self._client
        if client is None:
            return None
        key = self.keys.pair("check", *pair_key)
        try:
            with anyio.fail_after(self.command_timeout):
                taken = await client.set(
                    key, self.process_id, condition=PureToken.NX, px=max(int(ttl_ms), 1)
                )
        except Exception as exc:
            logger.debug("Health check not claimed in Redis (%s)", type(exc).__name__)
            return None
        return bool(taken)

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
        _quiet_cancelled_connects()
        if self._stopped is not None and not self._stopped.is_set():
            raise RuntimeError(
                "this RedisSharedState is already running for another manager; "
                "give each PlatformManager its own instance"
            )
        self._link = link
        self._loop_thread = threading.get_ident()
        self._loop_token = anyio.lowlevel.current_token()
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
                await self._back_off(delay * (0.5 + random.random() / 2), stopping)
                delay = min(delay * 2, self.max_backoff)
        finally:
            self._client = None
            self.connected = False
            self._wakeup = None
            self._loop_token = None
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

    async def _back_off(self, delay: float, stopping: anyio.Event) -> None:
        """Wait ``delay`` before the next attempt, or less: until a silent server answers again.

        Full attempts back off, but a ``PING`` every :data:`READY_POLL_SECONDS` notices the
        server's return at once, so convergence does not depend on how long it was away.
        """
        server_was_silent = False
        with anyio.move_on_after(delay):
            while not stopping.is_set():
                try:
                    await self._check_reachable(min(self.connect_timeout, READY_POLL_SECONDS))
                except Exception:
                    server_was_silent = True
                else:
                    if server_was_silent:
                        return
                with anyio.move_on_after(READY_POLL_SECONDS):
                    await stopping.wait()

    async def _check_reachable(self, timeout: float | None = None) -> None:
        """Raise unless Redis answers a ``PING`` within ``timeout`` (``connect_timeout``).

        Checked before building a client, so a server that is down or hung costs one raw
        connection and leaves nothing half-open behind (see
        :func:`failover._redis_topology.check_reachable`).
        """
        await check_reachable(self.topology, self.connect_timeout if timeout is None else timeout)

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
                        await self._write(client, [_Queued(event, None) for event in pushed])
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
        """Apply the fleet's keys: operator epochs first, then state with its server-side TTL."""
        keys = [
            key
            async for key in client.scan_iter(match=self.prefix + "*", count=500)
            if not self.keys.is_probe(key) and key != self.channel
        ]
        epochs = [key for key in keys if self.keys.is_epoch(key)]
        states = [key for key in keys if not self.keys.is_epoch(key)]
        for start in range(0, len(epochs), 500):
            for value in await client.mget(epochs[start : start + 500]):
                decoded = decode_message(value)
                if decoded is not None:
                    link.apply(decoded[1])
        applied = 0
        for start in range(0, len(states), 500):
            chunk = states[start : start + 500]
            async with client.pipeline(transaction=False) as pipe:
                values_request = pipe.mget(chunk)
                ttl_requests = [pipe.pttl(key) for key in chunk]
            values = await values_request
            for value, ttl_request in zip(values, ttl_requests, strict=True):
                decoded = decode_message(value)
                ttl = await ttl_request
                if decoded is None or ttl == -2:
                    continue
                # The server's own countdown: no host's clock is read.
                event = dataclasses.replace(decoded[1], ttl_ms=None if ttl < 0 else ttl)
                link.apply(event)
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

    async def _write(self, client: Client, batch: Iterable[_Queued | _Script]) -> None:
        now, link = self._now(), self._link
        scripts: list[_Script] = []
        async with client.pipeline(transaction=False) as pipe:
            for item in batch:
                if isinstance(item, _Script):
                    scripts.append(item)
                    continue
                event = item.event
                if link is not None and event.epoch < link.epoch(event.platform, event.operation):
                    continue  # an operator acted since (heard while it waited): it would undo that
                if event.ttl_ms is not None and item.at is not None and now is not None:
                    # Held in the queue (during an outage, say): only the time left goes out.
                    held_ms = int((now - item.at) * 1000)
                    event = dataclasses.replace(event, ttl_ms=event.ttl_ms - held_ms)
                message = encode_message(event, self.process_id)
                key = self.event_key(event)
                if event.kind in ("open", "cool"):
                    if event.ttl_ms is None:
                        pipe.set(key, message)
                    elif event.ttl_ms > 0:
                        pipe.set(key, message, px=event.ttl_ms)
                    else:
                        continue
                elif event.kind == "closed":
                    pipe.delete([key])
                else:  # reset
                    closed = SharedEvent("closed", event.platform, event.operation)
                    pipe.delete([key, self.event_key(closed)])
                if event.epoch:
                    marker = SharedEvent(
                        "reset", event.platform, event.operation, None, "epoch", event.epoch
                    )
                    pipe.eval(
                        _EPOCH_SCRIPT,
                        [self.epoch_key(event.platform, event.operation)],
                        [str(event.epoch), encode_message(marker, self.process_id)],
                    )
                publish(self.topology, pipe, self.channel, message)
        for script in scripts:
            await client.eval(script.script, script.keys, script.args)

    # -- the fleet's view (for `failover health --redis`) --------------------------------------

    async def fleet_view(self) -> dict[str, Any]:
        """Open pairs, cooling platforms/pairs and probe leases now in Redis, as a plain dict.

        Connects for the duration of the call; raises coredis errors when Redis is unreachable.
        """
        await self._check_reachable()
        now = time.time()
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
            if self.keys.is_epoch(key) or self.keys.is_void(key):
                continue
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
            # The key's own TTL (the server's clock); "until" is only shown on this host's.
            entry = {
                "platform": event.platform,
                "operation": event.operation,
                "reason": event.reason,
                "remaining_seconds": remaining,
                "until": None if remaining is None else now + remaining,
                "isolated": remaining is None,
                "by": pid,
            }
            view["open" if event.kind == "open" else "cooling"].append(entry)
        return view
