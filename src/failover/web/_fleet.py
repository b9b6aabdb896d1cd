"""The fleet view: each process publishes its snapshot to Redis; ``failover dashboard --redis``
reads them all.

Keys live under their own prefix (``failover-dashboard:<namespace>:<host:pid>``), apart from the
shared breaker state, so nothing that reads that state ever meets them. Each key expires after
three publishing intervals: a process that stops (or crashes) drops out of the view by itself.
What crosses hosts is the snapshot as the publishing process saw it, with remaining durations,
never a deadline on one host's clock.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from failover._core import validate
from failover._observe.scrub import get_logger
from failover.web._snapshot import merge, process_id, snapshot

if TYPE_CHECKING:
    import coredis

    from failover._manager import PlatformManager

logger = get_logger("failover.web")


def key_prefix(namespace: str) -> str:
    return f"failover-dashboard:{namespace}:"


def _client(url: str) -> coredis.Redis[str]:
    import coredis

    return coredis.Redis.from_url(url, decode_responses=True)


async def publish_health(
    manager: PlatformManager,
    redis_url: str,
    namespace: str = "default",
    interval: float = 2.0,
    *,
    process: str | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Publish ``manager``'s snapshot every ``interval`` seconds until cancelled.

    ``process`` names this process in the view (default ``host:pid``). Run it beside the
    application (``task_group.start_soon(publish_health, manager, url)``).
    A Redis outage never reaches the application: it is logged once, and publishing resumes
    when Redis answers again.
    """
    interval = validate.number("interval", interval, above=0, at_most=3600)
    validate.name("namespace", namespace)
    key = key_prefix(namespace) + (process_id() if process is None else process)
    ttl_ms = max(int(interval * 3000), 1)
    failing = False
    client = _client(redis_url)
    async with client:
        task_status.started()
        while True:
            try:
                await client.set(key, json.dumps(snapshot(manager)), px=ttl_ms)
                if failing:
                    logger.info("Publishing the dashboard summary to Redis again")
                failing = False
            except Exception as exc:  # an outage must not end the application's task group
                if not failing:
                    logger.warning(
                        "Cannot publish the dashboard summary to Redis (%s); retrying",
                        type(exc).__name__,
                    )
                failing = True
            await anyio.sleep(interval)


async def read_fleet(client: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """Every live process's snapshot, by process id."""
    prefix = key_prefix(namespace)
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for key, value in zip(chunk, await client.mget(chunk), strict=True):
            if value is not None:
                found[key.removeprefix(prefix)] = json.loads(value)
    return found


def fleet_snapshot(found: dict[str, dict[str, Any]], process: str | None = None) -> dict[str, Any]:
    """The merged view of ``found`` (or one ``process``'s), with the processes listed."""
    chosen = found if process is None else {k: v for k, v in found.items() if k == process}
    merged = merge(list(chosen.values()))
    merged["processes"] = sorted(found)
    return merged


def create_fleet_app(
    redis_url: str, namespace: str = "default", *, refresh: float = 1.0, process: str | None = None
) -> Any:
    """The dashboard of every process publishing to ``redis_url`` (read-only, always).

    ``/health`` is 200 when at least one process publishes and every operation has a usable
    platform somewhere in the fleet; its body is the merged snapshot.
    """
    from failover.web._app import build
    from failover.web._feed import Feed, attach
    from failover.web._hub import Hub

    refresh = validate.number("refresh", refresh, above=0, at_most=60)
    validate.name("namespace", namespace)

    async def source() -> dict[str, Any]:
        async with _client(redis_url) as client:
            found = await read_fleet(client, namespace)
        return fleet_snapshot(found, process)

    hub = Hub(source, refresh, Feed(time.time))

    async def health() -> tuple[dict[str, Any], bool]:
        merged = await hub.current()
        return merged, bool(merged["processes"]) and merged["ok"]

    feed = hub.feed
    attach(feed)
    app = build(hub, health, admin=False, title=f"failover fleet {namespace}")
    app.state.failover_feed = feed
    return app
