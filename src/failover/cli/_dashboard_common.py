"""What ``failover dashboard``, ``failover demo --dashboard`` and ``failover top`` share."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from failover._observe.scrub import get_logger
from failover.cli._common import port, require

if TYPE_CHECKING:
    from failover._manager import PlatformManager

WEB_MODULES = ["starlette", "hypercorn", "prometheus_client"]


def add_serving_arguments(parser: argparse.ArgumentParser, default_port: int = 8000) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: %(default)s; the page has no login: keep it "
        "on loopback or behind your proxy)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=default_port,
        help="the port to listen on (default: %(default)s; 0 picks a free one)",
    )


def feed_at_info() -> None:
    """Let the feed see transitions and rate limits (INFO), not only warnings: the command
    owns the process's logging, so this changes nothing for an application."""
    logger = get_logger("failover")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


def demo_watcher(
    host: str, port_number: int, hold: float, note: Callable[[str], None]
) -> Callable[[PlatformManager], Any]:
    """``failover demo --dashboard``: serve the demo manager's page during the burst and for
    ``hold`` seconds after it."""
    require(WEB_MODULES, "web", "failover demo --dashboard")

    @asynccontextmanager
    async def watch(manager: PlatformManager) -> AsyncIterator[None]:
        from failover.web import create_app, serving

        feed_at_info()
        async with serving(create_app(manager, title="failover demo"), host, port_number) as url:
            note(f"dashboard: {url}/ (open it to watch the fallbacks)")
            yield
            if hold > 0:
                shown = "until interrupted" if hold == float("inf") else f"for {hold:g}s"
                note(f"burst done; the dashboard stays up {shown} (Ctrl-C to stop)")
                await anyio.sleep(hold)

    return watch
