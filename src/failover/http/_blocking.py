"""The synchronous side of the adapters: one provider program, two ways to send.

Every adapter's provider logic (building the request, sending it, classifying a failure,
parsing the answer, following a job) is written once, as coroutines whose only suspension
points are the adapter's own I/O: sending a request, reading a body, waiting between polls.
The async API awaits them on the event loop. The synchronous API runs the same coroutine with
:func:`run_blocking`: it marks the current context as blocking, and in that context each I/O
point uses a pooled ``httpx.Client`` and ``time.sleep`` instead, so the coroutine never
suspends and finishes in a single step, in the caller's thread, with no event loop anywhere.

:class:`SyncClients` holds the ``httpx.Client`` of each platform: httpx's sync client is
thread-safe, so one per platform serves every thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Final, TypeVar

import httpx

from failover._core.errors import Closed

T = TypeVar("T")

_BLOCKING: Final[ContextVar[bool]] = ContextVar("failover_http_blocking", default=False)


def blocking() -> bool:
    """Whether the adapter code running now was started by :func:`run_blocking`."""
    return _BLOCKING.get()


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an adapter coroutine to completion in this thread, sending with blocking I/O."""
    token = _BLOCKING.set(True)
    try:
        try:
            coroutine.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
        # Only an await outside the adapters' I/O points gets here (a bug, not a user error).
        coroutine.close()
        raise RuntimeError("an adapter awaited something other than its own I/O in blocking mode")
    finally:
        _BLOCKING.reset(token)


class SyncClients:
    """One ``httpx.Client`` per platform, made on first use by any thread, closed together."""

    __slots__ = ("_clients", "_closed", "_lock")

    def __init__(self) -> None:
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, name: str, make: Callable[[], httpx.Client], owner: str) -> httpx.Client:
        client = self._clients.get(name)
        if client is not None:
            return client
        with self._lock:  # two threads' first calls must not both make (and leak) a client
            client = self._clients.get(name)
            if client is None:
                if self._closed:
                    raise Closed(f"{owner} is closed")
                client = self._clients[name] = make()
            return client

    def names(self) -> list[str]:
        return sorted(self._clients)

    def close(self) -> None:
        """Close every client (a call in flight on one fails with a closed-client error)."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()
