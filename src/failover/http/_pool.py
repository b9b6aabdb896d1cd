"""The connection side every adapter shares: pool limits, the pool itself, and one TLS context
per process.

Pool limits are httpx's defaults (:data:`DEFAULT_LIMITS`: up to 100 connections per platform,
20 of them kept alive while idle). The pool is httpcore's with one method replaced
(:class:`FairAssignment`), because httpcore's own way of handing connections to waiting requests
(1.0.x, ``_assign_requests_to_connections``) is where most of a client's time goes once a
platform has a queue (``benchmarks/bench_http.py``, 200 concurrent callers):

* every idle connection is handed to *every* waiting request in the same pass; all but one of
  them wake up, find the connection taken, and scan the pool again (a pass per loser);
* the keep-alive limit compares the number of *all* connections with
  ``max_keepalive_connections``, so beyond 20 open connections each one that goes idle is
  closed and a new one opened for the next request;
* each pass probes the socket of every idle connection (a ``poll`` system call and anyio's
  attribute lookup), including those already handed to a request that has not started yet.

That was 55% of the client's CPU at 200 callers, for raw httpx and for failover alike, and
the reason a round could run at a third of the next one's rate (encode/httpcore#1035 describes
the first two). :class:`FairAssignment` hands each idle connection to one request (the newest
first, so that after a burst the surplus expires), counts only idle connections against the
keep-alive limit (the oldest closed, once the waiting requests are served), and probes an idle
socket when its connection is about to be reused, sweeping the rest for expiry at most once
per :data:`SWEEP_SECONDS`. The rest of httpcore's pool (the
request queue, waiting with the pool timeout, the retry when a connection turns out
unavailable, closing) is unchanged. It is used when the installed httpcore has the method and
state it replaces (:func:`fair_pool_supported`); else the client keeps httpcore's own pool.
Clients speak HTTP/1.1 only, where a connection serves one request at a time.

An ``httpx.AsyncClient`` made without ``verify=`` builds its own ``ssl.SSLContext`` and loads
the CA bundle into it: about 330 KB and tens of milliseconds of a blocked event loop per
client, even for a plain ``http://`` base URL. Every adapter client instead gets
:func:`tls_context`: one verifying context per process, built once in a worker thread
(:func:`prepare_tls`) so the first call does not stall the loop; a client whose base URL is
plain HTTP gets :data:`PLAIN_HTTP_CONTEXT`, which holds no trust anchors at all: it is never
used for plain HTTP, and an ``https://`` URL sent through it fails verification instead of
passing unverified.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import anyio.to_thread
import httpcore
import httpx

#: Up to 100 connections per platform, 20 of them kept alive (httpx's defaults; see above).
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0
)

#: How often the pool probes all its idle connections for expiry (a server that closed one,
#: or ``keepalive_expiry`` passed); a connection about to be reused is probed every time.
SWEEP_SECONDS: Final = 1.0

#: The context of clients whose base URL is plain HTTP: verification on, nothing trusted.
PLAIN_HTTP_CONTEXT: Final = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The process's verifying TLS context (certifi's CA bundle, as httpx uses by default)."""
    global _context
    context = _context
    if context is not None:
        return context
    with _lock:
        if _context is None:
            _context = httpx.create_ssl_context()
        return _context


def tls_ready() -> bool:
    """Whether :func:`tls_context` is built (then calling it costs nothing)."""
    return _context is not None


async def prepare_tls() -> None:
    """Build the TLS context in a worker thread, once, so no event loop waits on the CA file."""
    if _context is None:
        await anyio.to_thread.run_sync(tls_context)


def context_for(url: str) -> ssl.SSLContext:
    """The context for a client whose base URL is ``url``."""
    return PLAIN_HTTP_CONTEXT if url.startswith("http://") else tls_context()


# -- the pool ------------------------------------------------------------------------------------


class FairAssignment:
    """httpcore's ``_assign_requests_to_connections``, replaced (see the module docstring).

    httpcore calls it, under the pool's lock, whenever a request joins or leaves the pool; it
    returns the connections to close. It reads the pool's ``_requests`` (each with the
    ``connection`` it was handed, or ``None`` while it waits) and replaces ``_connections``.
    A connection handed to a request that has not started on it yet still reads as idle: it
    is neither handed out again nor closed.
    """

    _connections: list[Any]
    _requests: list[Any]
    _max_connections: int
    _max_keepalive_connections: int
    create_connection: Callable[[Any], Any]
    #: ``time.monotonic()`` after which the next pass probes every idle connection.
    next_sweep: float = 0.0

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        now = time.monotonic()
        sweep = now >= self.next_sweep
        if sweep:
            self.next_sweep = now + SWEEP_SECONDS
        kept, free = self._open_and_free(closing, sweep)
        for request in self._requests:
            if request.connection is not None:
                continue
            origin = request.request.url.origin
            connection = _take_free(free, origin, kept, closing, probed=sweep)
            if connection is None:
                if len(kept) >= self._max_connections:
                    if not free:
                        break  # nothing left to hand out in this pass
                    # Full: close an idle connection to another origin to make room.
                    _close(free.pop(0), kept, closing)
                connection = self.create_connection(origin)
                kept.append(connection)
            request.assign_to_connection(connection)
        for idle in free[: max(0, len(free) - self._max_keepalive_connections)]:
            _close(idle, kept, closing)
        self._connections = kept
        return closing

    def _open_and_free(self, closing: list[Any], sweep: bool) -> tuple[list[Any], list[Any]]:
        """The connections still open, and those of them idle and not handed out (oldest
        first); on a sweep, expired idle ones go to ``closing`` instead."""
        taken = {id(request.connection) for request in self._requests}
        kept: list[Any] = []
        free: list[Any] = []  # oldest first
        for connection in self._connections:
            if connection.is_closed():
                continue
            if id(connection) not in taken and connection.is_idle():
                if sweep and connection.has_expired():
                    closing.append(connection)
                    continue
                free.append(connection)
            kept.append(connection)
        return kept, free


def _take_free(
    free: list[Any], origin: Any, kept: list[Any], closing: list[Any], *, probed: bool
) -> Any:
    """The newest free connection to ``origin`` that is still usable, taken out of ``free``
    (an expired one met on the way is closed), or ``None``. ``probed``: this pass has just
    probed every free connection.

    Newest first, so a lighter load after a burst keeps reusing the same few connections and
    the others expire (httpcore reuses the oldest, which keeps every one of them alive)."""
    for index in range(len(free) - 1, -1, -1):
        connection = free[index]
        if not connection.can_handle_request(origin):
            continue
        del free[index]
        if probed or not connection.has_expired():
            return connection
        _close(connection, kept, closing)
    return None


def _close(connection: Any, kept: list[Any], closing: list[Any]) -> None:
    kept.remove(connection)
    closing.append(connection)


class AsyncPool(FairAssignment, httpcore.AsyncConnectionPool):
    """httpcore's async pool with :class:`FairAssignment`."""


class SyncPool(FairAssignment, httpcore.ConnectionPool):
    """httpcore's blocking pool with :class:`FairAssignment` (its calls hold the pool's lock)."""


@functools.cache
def fair_pool_supported() -> bool:
    """Whether the installed httpcore's pools have the method and state
    :class:`FairAssignment` replaces (httpcore 1.0.3 and later)."""
    probe = httpcore.ConnectionPool()
    return callable(getattr(probe, "_assign_requests_to_connections", None)) and all(
        hasattr(probe, name)
        for name in ("_requests", "_connections", "_max_connections", "_max_keepalive_connections")
    )


def _pool_options(url: str, limits: httpx.Limits) -> dict[str, Any]:
    return {
        "ssl_context": context_for(url),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def async_transport(url: str, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """The transport of a platform's ``httpx.AsyncClient`` (base URL ``url``)."""
    transport = httpx.AsyncHTTPTransport(verify=context_for(url), limits=limits)
    if fair_pool_supported() and hasattr(transport, "_pool"):
        transport._pool = AsyncPool(**_pool_options(url, limits))
    return transport


def sync_transport(url: str, limits: httpx.Limits) -> httpx.HTTPTransport:
    """The transport of a platform's ``httpx.Client`` (base URL ``url``)."""
    transport = httpx.HTTPTransport(verify=context_for(url), limits=limits)
    if fair_pool_supported() and hasattr(transport, "_pool"):
        transport._pool = SyncPool(**_pool_options(url, limits))
    return transport
