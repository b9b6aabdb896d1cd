"""``failover top``: the dashboard's data as a live terminal table (rich), for servers without
a browser.

It reads a running dashboard (``--url``, its ``api/state``) or the fleet's summaries in Redis
(``--redis``): the same snapshot the page shows, redrawn in place every ``--interval`` seconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from failover.cli._common import CommandError, rate, require, run_async

STYLES = {
    "closed": "green",
    "half_open": "yellow",
    "cooling": "cyan",
    "missing_key": "dim",
    "open": "bold red",
}


def add_parser(subparsers: Any) -> None:
    """Declare ``failover top``."""
    parser = subparsers.add_parser(
        "top",
        help="a live terminal view of provider health (from a dashboard URL or Redis)",
        description="Show every operation's platforms, their state, traffic and latency, "
        "redrawn in place. Reads a running dashboard (--url) or a fleet's Redis (--redis).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running dashboard, e.g. http://127.0.0.1:8000")
    source.add_argument("--redis", metavar="URL", help="the Redis the fleet publishes to")
    parser.add_argument("--namespace", default="default", metavar="NS")
    parser.add_argument(
        "--interval", type=rate, default=1.0, metavar="S", help="seconds between redraws"
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require(["rich"], "cli", "failover top")
    if args.url:
        require(["httpx"], "http", "failover top --url")
        read = _from_url(args.url.rstrip("/"))
    else:
        require(["coredis"], "redis", "failover top --redis")
        read = _from_redis(args.redis, args.namespace)
    run_async("asyncio", _loop, read, max(args.interval, 0.1), args.once)
    return 0


def _from_url(url: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    import httpx

    async def read() -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(url + "/api/state")
                response.raise_for_status()
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot read the dashboard at {url}: {exc}") from None
        snapshot: dict[str, Any] = response.json()["snapshot"]
        return snapshot

    return read


def _from_redis(url: str, namespace: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    from failover.web._fleet import _client, fleet_snapshot, read_fleet

    async def read() -> dict[str, Any]:
        async with _client(url) as client:
            return fleet_snapshot(await read_fleet(client, namespace))

    return read


async def _loop(read: Callable[[], Awaitable[dict[str, Any]]], interval: float, once: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if once:
        console.print(render(await read()))
        return
    with Live(render(await read()), console=console, auto_refresh=False) as live:
        while True:
            await anyio.sleep(interval)
            live.update(render(await read()), refresh=True)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def render(snapshot: dict[str, Any]) -> Any:
    """One frame: a table per operation (rich escapes nothing it is given as ``Text``)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    tables: list[Any] = []
    for operation in snapshot["operations"]:
        table = Table(title=Text(operation["name"]), title_justify="left", expand=True)
        for column in ("#", "platform", "model", "state", "requests", "fail %", "p50", "p95"):
            table.add_column(column, justify="right" if column in ("#", "requests") else "left")
        for index, row in enumerate(operation["platforms"], 1):
            state = row["state"].replace("_", "-")
            why = ", ".join(
                part
                for part in (
                    row["reason"] if row["state"] != "missing_key" else None,
                    None if row["seconds_left"] is None else f"{row['seconds_left']:.0f}s left",
                )
                if part
            )
            table.add_row(
                str(index),
                Text(row["platform"]),
                Text(row["model"]),
                Text(f"{state} {why}".strip(), style=STYLES.get(row["state"], "")),
                str(row["requests"]),
                f"{row['failure_rate'] * 100:.1f}" if row["requests"] else "-",
                _seconds(row["p50"]),
                _seconds(row["p95"]),
            )
        tables.append(table)
    ok = snapshot["ok"]
    status = Text(
        "every operation has a usable platform" if ok else "an operation has no usable platform",
        style="green" if ok else "bold red",
    )
    return Group(status, *tables)
