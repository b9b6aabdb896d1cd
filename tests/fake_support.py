"""The fake provider server on an event loop of its own, for tests of synchronous code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio.from_thread

from failover.testing import FakeProviderServer


@contextmanager
def fake_server_in_thread(seed: int) -> Iterator[FakeProviderServer]:
    """A running :class:`FakeProviderServer` served from a background thread's event loop:
    the calling thread has none, as in a synchronous program."""
    with anyio.from_thread.start_blocking_portal() as portal:
        fake = FakeProviderServer(seed=seed)
        with portal.wrap_async_context_manager(fake):
            yield fake
