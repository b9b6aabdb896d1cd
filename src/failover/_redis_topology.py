"""Where the fleet's Redis is, how to reach it, and how its keys are named.

Three topologies, chosen by the URL's scheme:

- one server: ``redis://``, ``rediss://`` (TLS) or ``unix://``, passed to coredis' own
  ``Redis.from_url`` as they are (so its query options keep working);
- Redis Cluster (or a managed cluster mode, or Valkey): ``redis+cluster://host:port,host:port``
  (``rediss+cluster://`` for TLS), any reachable subset of the nodes, through
  ``coredis.RedisCluster`` and its cluster pub/sub;
- Sentinel: ``redis+sentinel://host:port,host:port/service_name[/db]``
  (``rediss+sentinel://`` for TLS to the data nodes), through ``coredis.Sentinel``: every
  session asks the sentinels for the current primary, so a failover costs one reconnect.

coredis itself has no multi-host URL (its cluster ``from_url`` takes one startup node), hence
the ``+cluster`` / ``+sentinel`` schemes. Credentials in the URL are those of the data nodes.

Keys are named so that everything about one pair lives in one cluster slot: the part in braces
(a hash tag) is ``{platform:operation}`` for a pair and ``{platform}`` for a platform, so a
command or script touching several keys of one pair or one platform never crosses slots.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import coredis
from coredis.connection import TCPLocation
from coredis.retry import NoRetryPolicy

from failover._core.errors import ConfigError

if TYPE_CHECKING:
    Client = coredis.Redis[str] | coredis.RedisCluster[str]

__all__ = [
    "KeyLayout",
    "Topology",
    "check_reachable",
    "display_url",
    "open_client",
    "parse_url",
    "publish",
]

Kind = Literal["server", "cluster", "sentinel"]

_SERVER_SCHEMES: Final = ("redis", "rediss", "unix")
_MULTI_HOST_SCHEMES: Final[dict[str, tuple[Kind, bool]]] = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_DEFAULT_PORTS: Final = {"server": 6379, "cluster": 6379, "sentinel": 26379}
_PUBLISH_SCRIPT: Final = "return redis.call('PUBLISH', KEYS[1], ARGV[1])"


def display_url(url: str) -> str:
    """``url`` without its password, for logs and errors (works on malformed URLs too)."""
    scheme, separator, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not separator or "@" not in netloc:
        return url
    userinfo, _, host = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


@dataclass(frozen=True, slots=True)
class Topology:
    """A parsed Redis URL: which kind of deployment, and the nodes to start from."""

    kind: Kind
    url: str
    #: The server (one entry), the cluster's startup nodes, or the sentinels.
    nodes: tuple[tuple[str, int], ...] = ()
    unix_path: str | None = None
    #: The Sentinel service (master group) name.
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def _fail(url: str, problem: str) -> ConfigError:
    space = "" if problem.startswith(":") else " "
    return ConfigError(f"url {display_url(url)!r}{space}{problem}", key="url")


def parse_url(url: object) -> Topology:
    """The topology ``url`` names; a :class:`ConfigError` (key ``url``) if it is malformed."""
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"url must be a Redis URL such as 'redis://localhost:6379/0', got {url!r}", key="url"
        )
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _MULTI_HOST_SCHEMES:
        return _parse_multi_host(url, *_MULTI_HOST_SCHEMES[scheme])
    return _parse_server(url)


def _parse_server(url: str) -> Topology:
    shown = display_url(url) if "://" in url else url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"url {shown!r} is malformed: {exc}", key="url") from None
    if parts.scheme not in _SERVER_SCHEMES:
        raise ConfigError(
            f"url {shown!r} must start with redis://, rediss://, unix://, redis+cluster:// or "
            "redis+sentinel://",
            key="url",
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise _fail(url, "names no socket path")
        return Topology("server", url, unix_path=parts.path)
    if not parts.hostname:
        raise _fail(url, "names no host")
    if port == 0:
        raise _fail(url, "has port 0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise _fail(url, ": the path must be a database number")
    return Topology(
        "server",
        url,
        ((parts.hostname, port or 6379),),
        db=int(db or 0),
        tls=parts.scheme == "rediss",
    )


def _parse_multi_host(url: str, kind: Kind, tls: bool) -> Topology:
    rest = url.partition("://")[2]
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    if query or "?" in netloc:
        raise _fail(url, "takes no query options with this scheme")
    userinfo, at, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if at else ("", "", "")
    nodes = tuple(_parse_node(url, host, _DEFAULT_PORTS[kind]) for host in hosts.split(","))
    segments = [segment for segment in path.split("/") if segment]
    service: str | None = None
    if kind == "sentinel":
        if not segments:
            raise _fail(url, "names no service: redis+sentinel://host:port,.../service_name")
        service = unquote(segments.pop(0))
    if len(segments) > 1 or (segments and not segments[0].isdigit()):
        raise _fail(url, ": the path after the hosts must be a database number")
    db = int(segments[0]) if segments else 0
    if kind == "cluster" and db != 0:
        raise _fail(url, f"names database {db}, but a Redis Cluster only has database 0")
    return Topology(
        kind,
        url,
        nodes,
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=tls,
    )


def _parse_node(url: str, host: str, default_port: int) -> tuple[str, int]:
    if not host:
        raise _fail(url, "names an empty host (hosts are separated by commas)")
    try:
        parts = urlsplit(f"//{host}")
        port = parts.port
    except ValueError:
        raise _fail(url, f"names a malformed host {host!r}") from None
    if not parts.hostname or port == 0:
        raise _fail(url, f"names a malformed host {host!r}")
    return parts.hostname, port or default_port


async def check_reachable(topology: Topology, timeout: float) -> None:
    """Raise unless the topology's data node answers a ``PING`` within ``timeout``.

    Checked before building a client, so a server that is down or hung (it accepts
    connections but answers nothing) costs one raw connection and leaves nothing half-open
    behind, nor coredis' own error logs for a handshake that never ends. Any answer counts
    (``-NOAUTH`` too: the credentials are the client's business), except ``-LOADING``. Over
    TLS a plain ``PING`` would not be understood: connecting is enough. A cluster needs one
    listed node to answer. Under Sentinel the sentinels are asked for the current master and
    that master must answer: a sentinel alone says nothing about whether writes can go through
    (while the master is down and not yet replaced, every sentinel still answers).
    """
    if topology.unix_path is not None:
        with anyio.fail_after(timeout):
            await _ping(await anyio.connect_unix(topology.unix_path), tls=False)
        return
    error: Exception = OSError("no node to connect to")
    # Each node gets the whole timeout: one hung node must not hide the others.
    for host, port in topology.nodes:
        try:
            with anyio.fail_after(timeout):
                if topology.kind == "sentinel":
                    assert topology.service is not None
                    host, port = await _master_address(host, port, topology.service)
                await _ping(await anyio.connect_tcp(host, port), tls=topology.tls)
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            error = exc
            continue
        return
    raise error


async def _ping(stream: anyio.abc.ByteStream, *, tls: bool) -> None:
    async with stream:
        if tls:
            return
        await stream.send(b"*1\r\n$4\r\nPING\r\n")
        reply = await stream.receive()
        if reply.startswith(b"-LOADING"):
            raise ConnectionError("Redis is loading its data set")


async def _master_address(host: str, port: int, service: str) -> tuple[str, int]:
    """The master the sentinel at ``host:port`` names for ``service`` (raw RESP, no client)."""
    name = service.encode()
    command = b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nGET-MASTER-ADDR-BY-NAME\r\n"
    command += b"$%d\r\n%s\r\n" % (len(name), name)
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(command)
        reply = b""
        # Whole once it is `*2 $n host $n port` (five lines), or any other line (null, error).
        while not (
            reply.count(b"\r\n") >= 5 or (b"\r\n" in reply and not reply.startswith(b"*2\r\n"))
        ):
            reply += await stream.receive()
    lines = reply.split(b"\r\n")
    if not reply.startswith(b"*2\r\n") or len(lines) < 5 or not lines[4].isdigit():
        raise ConnectionError(f"the sentinel at {host}:{port} names no master for {service!r}")
    return lines[2].decode(), int(lines[4])


@asynccontextmanager
async def open_client(
    topology: Topology, *, connect_timeout: float, stream_timeout: float
) -> AsyncIterator[Client]:
    """A connected client for ``topology`` (decoding responses, never retrying on its own)."""
    timeouts: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "stream_timeout": stream_timeout,
    }
    if topology.kind == "server":
        server = coredis.Redis.from_url(
            topology.url, decode_responses=True, retry_policy=NoRetryPolicy(), **timeouts
        )
        _close_streams_of_ended_connections(server.connection_pool)
        async with server:
            yield server
    elif topology.kind == "cluster":
        cluster = coredis.RedisCluster(
            startup_nodes=[TCPLocation(host, port) for host, port in topology.nodes],
            username=topology.username,
            password=topology.password,
            ssl=topology.tls,
            decode_responses=True,
            retry_policy=NoRetryPolicy(),
            **timeouts,
        )
        _close_streams_of_ended_connections(cluster.connection_pool)
        try:
            async with cluster:
                yield cluster
        finally:
            _close_layout_streams(cluster)
    else:
        assert topology.service is not None
        if topology.tls:
            timeouts["ssl_context"] = ssl.create_default_context()
        sentinel = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in topology.nodes],
            # No read timeout towards the sentinels: the switch watch waits for news
            # indefinitely (pub/sub keep-alive pings find a dead sentinel); discovery runs
            # under the session's own deadline.
            sentinel_kwargs={"connect_timeout": connect_timeout, "stream_timeout": None},
            decode_responses=True,
            retry_policy=NoRetryPolicy(),
            username=topology.username,
            password=topology.password,
            db=topology.db,
            **timeouts,
        )
        for watcher in sentinel.sentinels:
            _close_streams_of_ended_connections(watcher.connection_pool)
        async with sentinel, anyio.create_task_group() as tasks:
            primary = sentinel.primary_for(topology.service)
            _close_streams_of_ended_connections(primary.connection_pool)
            async with primary:
                await tasks.start(_watch_switch, sentinel, topology.service)
                yield primary
            tasks.cancel_scope.cancel()


class MasterSwitched(Exception):
    """The sentinels moved the service to another master: the session must reconnect."""


async def _watch_switch(
    sentinel: Any, service: str, *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    """Raise :class:`MasterSwitched` when a sentinel announces a new master for ``service``.

    After a failover the old master keeps accepting writes until the sentinels demote it (up
    to their 10 s refresh later), and what is written there in between is lost; following
    ``+switch-master`` moves the session to the new master as soon as it is elected.
    """
    started = False
    while True:
        for client in sentinel.sentinels:
            switched = False
            try:
                pubsub = client.pubsub(retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True)
                async with pubsub:
                    await pubsub.subscribe("+switch-master")
                    if not started:
                        started = True
                        task_status.started()
                    async for message in pubsub:
                        if str(message["data"]).split(" ", 1)[0] == service:
                            switched = True
                            break
            except (OSError, TimeoutError, coredis.exceptions.RedisError):
                continue
            if switched:
                raise MasterSwitched(f"the sentinels moved {service!r} to a new master")
        # No sentinel to listen to now: the session still ends when the old master is
        # demoted; try the sentinels again in a moment.
        if not started:
            started = True
            task_status.started()
        await anyio.sleep(1.0)


_CONNECTION_STREAMS: Final = (
    "_write_buffer_in",
    "_write_buffer_out",
    "_push_message_buffer_in",
    "_push_message_buffer_out",
    "_streamed_message_buffer_in",
    "_streamed_message_buffer_out",
)


def _close_streams_of_ended_connections(pool: Any) -> None:
    """Have every connection ``pool`` makes close its memory streams when it ends.

    coredis 6.9 builds six memory streams per connection and closes them only once connected
    (``BaseConnection.run`` opens the socket first): a connect that fails (a master just
    killed, still named by the sentinels; a node that went away under a pipeline) leaves them
    to be reported unclosed (ResourceWarning) when collected. Only the pools of this module's
    own clients are touched; a coredis without these internals is left as it is.
    """
    if hasattr(pool, "_construct_connection"):  # one server, a Sentinel service, sentinels
        construct = pool._construct_connection

        async def construct_closing(*args: Any, **kwargs: Any) -> Any:
            return _closing_when_done(await construct(*args, **kwargs))

        pool._construct_connection = construct_closing
    elif hasattr(pool, "_wrap_connection"):  # a cluster
        wrap = pool._wrap_connection

        async def wrap_closing(connection: Any, **kwargs: Any) -> None:
            await wrap(_closing_when_done(connection), **kwargs)

        pool._wrap_connection = wrap_closing


def _closing_when_done(connection: Any) -> Any:
    run = getattr(connection, "run", None)
    if run is None:
        return connection

    async def run_closing(**kwargs: Any) -> None:
        try:
            await run(**kwargs)
        finally:
            # A connection is never run twice, so its streams are done with here.
            for name in _CONNECTION_STREAMS:
                stream = getattr(connection, name, None)
                if stream is not None:
                    stream.close()

    connection.run = run_closing
    return connection


def _close_layout_streams(cluster: Any) -> None:
    # coredis 6.9 never closes its cluster layout's error stream: without this, every session
    # leaves a pair of memory streams to be reported unclosed (ResourceWarning) when collected.
    layout = getattr(cluster.connection_pool, "cluster_layout", None)
    for stream in getattr(layout, "_error_stream", ()):
        stream.close()


def publish(topology: Topology, pipe: Any, channel: str, message: str) -> None:
    """Queue ``message`` for the channel on ``pipe``.

    On a cluster a keyless ``PUBLISH`` goes to whichever node the pipeline picks, and messages
    sent through different nodes may overtake each other on the cluster bus (an ``open``
    arriving after its ``closed``). Sent from a script keyed by the channel's name, every
    message of this process goes through the node owning that slot, in order; the cluster
    still broadcasts it to subscribers on every node.
    """
    if topology.kind == "cluster":
        pipe.eval(_PUBLISH_SCRIPT, [channel], [message])
    else:
        pipe.publish(channel, message)


class KeyLayout:
    """The key names of one namespace (see ``docs/fleet.md``, "Key layout").

    Keys of one pair share the hash tag ``{platform:operation}``, keys of one platform the tag
    ``{platform}``: anything used together in one command or script must be named here.
    """

    __slots__ = ("channel", "prefix")

    def __init__(self, namespace: str) -> None:
        self.prefix = f"failover:{namespace}:"
        self.channel = self.prefix + "events"

    def pair(self, kind: str, platform: str, operation: str) -> str:
        """The ``kind`` key of a pair (``open``, ``cool``, ...), in the pair's slot."""
        return f"{self.prefix}{kind}:{{{platform}:{operation}}}"

    def platform(self, kind: str, platform: str) -> str:
        """The ``kind`` key of a whole platform (its cool-down), in the platform's slot."""
        return f"{self.prefix}{kind}:{{{platform}}}"

    def probe(self, platform: str, operation: str, slot: int) -> str:
        """Probe lease number ``slot`` of a pair, in the pair's slot."""
        return f"{self.pair('probe', platform, operation)}:{slot}"

    def void(self, platform: str, operation: str, request: str) -> str:
        """The mark of a voided lease request, in the pair's slot (the lease script reads it)."""
        return f"{self.pair('probe', platform, operation)}:void:{request}"

    def is_probe(self, key: str) -> bool:
        """A probe lease or a voided request's mark (neither is breaker state)."""
        return key.startswith(self.prefix + "probe:")

    def is_void(self, key: str) -> bool:
        return self.is_probe(key) and "}:void:" in key

    def is_epoch(self, key: str) -> bool:
        return key.startswith(self.prefix + "epoch:")

    def parse_probe(self, key: str) -> tuple[str, str, str]:
        """``(platform, operation, slot)`` of a probe key (best effort, for display)."""
        rest = key[len(self.prefix + "probe:") :]
        tag, _, slot = rest.rpartition(":")
        platform, _, operation = tag.strip("{}").partition(":")
        return platform, operation, slot
