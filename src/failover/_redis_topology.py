"""Where the fleet's Redis is, how to reach it, and how its keys are named.

Three topologies, chosen by the URL's scheme:

- one server: ``redis://``, ``rediss://`` (TLS) or ``unix://``, passed to coredis' own
  ``Redis.from_url`` as they are (so its query options keep working);
- Redis Cluster (or a managed cluster mode, or Valkey): ``redis+cluster://host:port,host:port``
  (``rediss+cluster://`` for TLS), any reachable subset of the nodes, through
  ``coredis.RedisCluster``; the channel uses sharded pub/sub (Redis/Valkey 7+);
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

__all__ = ["KeyLayout", "Topology", "display_url", "open_client", "parse_url"]

Kind = Literal["server", "cluster", "sentinel"]

_SERVER_SCHEMES: Final = ("redis", "rediss", "unix")
_MULTI_HOST_SCHEMES: Final[dict[str, tuple[Kind, bool]]] = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_DEFAULT_PORTS: Final = {"server": 6379, "cluster": 6379, "sentinel": 26379}


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
    """Raise ``OSError``/``TimeoutError`` unless one of the nodes accepts a connection.

    Checked before building a client, so a server that is down costs one refused connect
    and leaves nothing half-open behind.
    """
    if topology.unix_path is not None:
        with anyio.fail_after(timeout):
            stream: anyio.abc.ByteStream = await anyio.connect_unix(topology.unix_path)
        await stream.aclose()
        return
    error: Exception = OSError("no node to connect to")
    for host, port in topology.nodes:
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
        except (OSError, TimeoutError) as exc:
            error = exc
            continue
        await stream.aclose()
        return
    raise error


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
        async with cluster:
            yield cluster
    else:
        assert topology.service is not None
        if topology.tls:
            timeouts["ssl_context"] = ssl.create_default_context()
        sentinel = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in topology.nodes],
            sentinel_kwargs={"connect_timeout": connect_timeout, "stream_timeout": stream_timeout},
            decode_responses=True,
            retry_policy=NoRetryPolicy(),
            username=topology.username,
            password=topology.password,
            db=topology.db,
            **timeouts,
        )
        async with sentinel:
            primary = sentinel.primary_for(topology.service)
            async with primary:
                yield primary


def subscription(topology: Topology, client: Client) -> Any:
    """A pub/sub object for ``client``: sharded on a cluster, so one shard orders the channel."""
    if topology.kind == "cluster":
        assert isinstance(client, coredis.RedisCluster)
        return client.sharded_pubsub(retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True)
    return client.pubsub(retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True)


def publish(topology: Topology, pipe: Any, channel: str, message: str) -> None:
    """Queue ``message`` on ``pipe``: ``SPUBLISH`` on a cluster (matching :func:`subscription`)."""
    if topology.kind == "cluster":
        pipe.spublish(channel, message)
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

    def is_probe(self, key: str) -> bool:
        return key.startswith(self.prefix + "probe:")

    def parse_probe(self, key: str) -> tuple[str, str, str]:
        """``(platform, operation, slot)`` of a probe key (best effort, for display)."""
        rest = key[len(self.prefix + "probe:") :]
        tag, _, slot = rest.rpartition(":")
        platform, _, operation = tag.strip("{}").partition(":")
        return platform, operation, slot
