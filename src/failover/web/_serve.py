"""Serve an ASGI app with hypercorn on whichever event loop anyio runs (asyncio or trio).

The listening socket is bound here, before hypercorn starts, so the caller learns the real
port at once (``port=0`` picks a free one) and a client connecting early waits in the backlog
instead of being refused.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus
from hypercorn.config import Config


async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled, then shut down gracefully (open event streams get
    half a second); ``task_status.started`` receives the base URL."""
    listener = socket.create_server((host, port))
    bound_host, bound_port = listener.getsockname()[:2]
    config = Config()
    # hypercorn adopts the descriptor (and closes it): ours lets go of it without closing.
    config.bind = [f"fd://{listener.detach()}"]
    # An open event stream would otherwise hold a shutdown for hypercorn's default 3 s.
    config.graceful_timeout = 0.5
    config.accesslog = None
    config.errorlog = None
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    stop = anyio.Event()

    async def run() -> None:
        # Shielded: hypercorn shuts down cleanly when asked, not when cancelled mid-way.
        with anyio.CancelScope(shield=True):
            if _in_trio():
                from hypercorn.trio import serve as serve_trio

                await serve_trio(app, config, shutdown_trigger=stop.wait)
            else:
                from hypercorn.asyncio import serve as serve_asyncio

                await serve_asyncio(app, config, shutdown_trigger=stop.wait)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        task_status.started(f"http://{shown}:{bound_port}")
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()


def _in_trio() -> bool:
    # Without importing trio: a program that never imported it is not running on it.
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


@asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 8000) -> AsyncIterator[str]:
    """Serve ``app`` in the background for the ``async with`` block; yields the base URL."""
    async with anyio.create_task_group() as tasks:
        url: str = await tasks.start(serve, app, host, port)
        try:
            yield url
        finally:
            tasks.cancel_scope.cancel()
