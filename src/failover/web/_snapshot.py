"""One dashboard snapshot: every operation's platforms in order, with what a person checks.

The snapshot is a plain JSON-ready dict built from ``manager.get_health_status()`` (the public
view) plus each pair's recent response times for the p50, which the health view does not carry.
The page, ``failover top``, the fleet summary in Redis and ``/metrics`` all read this one shape,
so they cannot disagree about what "cooling" or "open" means.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from failover._core.clock import to_wall
from failover._core.health import percentile

if TYPE_CHECKING:
    from failover._manager import PlatformManager

#: The row states, most serious last (the fleet view shows the most serious of its processes).
STATES: Final = ("closed", "half_open", "cooling", "missing_key", "open")


def process_id() -> str:
    """``host:pid``: names this process in the fleet view."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _seconds_left(iso: str | None, now_wall: float) -> float | None:
    if iso is None:
        return None
    return max(datetime.fromisoformat(iso).timestamp() - now_wall, 0.0)


def _row(
    name: str, platform: dict[str, Any], pair: dict[str, Any], now_wall: float, p50: float | None
) -> dict[str, Any]:
    state = pair["state"]
    reason: str | None = None
    until: str | None = None
    if state == "open":
        reason = "isolated" if pair["isolated"] else "failures"
        until = pair["open_until"]
    elif pair["skip_reason"] == "missing_api_key":
        state, reason = "missing_key", "missing_api_key"
    elif platform["cooldown_reason"] is not None:
        state, reason, until = "cooling", platform["cooldown_reason"], platform["cooldown_until"]
    elif pair["cooldown_reason"] is not None:
        state, reason, until = "cooling", pair["cooldown_reason"], pair["cooldown_until"]
    return {
        "platform": name,
        "model": pair["model"],
        "state": state,
        "reason": reason,
        "seconds_left": _seconds_left(until, now_wall),
        "usable": pair["usable"],
        "requests": pair["total_requests"],
        "failures": pair["failures"],
        "failure_rate": pair["failure_rate"],
        "p50": p50,
        "p95": pair["p95_response_time"],
        "cost": pair["cost"],
        "last_error_kind": pair["last_error_kind"],
    }


def snapshot(manager: PlatformManager) -> dict[str, Any]:
    """What the page shows now, for one process."""
    health = manager.get_health_status()
    clock = manager.clock
    now_wall = to_wall(clock, clock.now())
    pairs = manager._pairs  # read-only: the p50 needs the pair's recent times
    operations = []
    for operation in manager.operations:
        rows = []
        for spec in manager.platforms(operation):
            platform = health[spec.name]
            times = pairs[(spec.name, operation)].stats.recent_times()
            p50 = percentile(times, 0.5)
            rows.append(_row(spec.name, platform, platform["operations"][operation], now_wall, p50))
        operations.append({"name": operation, "platforms": rows, "usable": _usable(rows)})
    return {
        "time": now_wall,
        "operations": operations,
        "ok": all(item["usable"] for item in operations),
    }


def _usable(rows: list[dict[str, Any]]) -> bool:
    return any(row["usable"] for row in rows)


def worst(states: list[str]) -> str:
    """The most serious of ``states`` (the fleet view's state of a pair)."""
    return max(states, key=STATES.index, default="closed")


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' snapshots as one: counts add up, the most serious state wins."""
    by_operation: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for item in snapshots:
        for operation in item["operations"]:
            rows = by_operation.setdefault(operation["name"], {})
            for row in operation["platforms"]:
                rows.setdefault((row["platform"], row["model"]), []).append(row)
    operations = []
    for name, rows in by_operation.items():
        merged = [_merge_rows(group) for group in rows.values()]
        operations.append({"name": name, "platforms": merged, "usable": _usable(merged)})
    return {
        "time": max((item["time"] for item in snapshots), default=0.0),
        "operations": operations,
        "ok": all(item["usable"] for item in operations),
    }


def _merge_rows(group: list[dict[str, Any]]) -> dict[str, Any]:
    first = group[0]
    requests = sum(row["requests"] for row in group)
    failures = sum(row["failures"] for row in group)
    state = worst([row["state"] for row in group])
    serious = next(row for row in group if row["state"] == state)
    lefts = [row["seconds_left"] for row in group if row["seconds_left"] is not None]
    return {
        **first,
        "state": state,
        "reason": serious["reason"],
        "seconds_left": max(lefts) if lefts else None,
        "usable": any(row["usable"] for row in group),
        "requests": requests,
        "failures": failures,
        "failure_rate": failures / requests if requests else 0.0,
        # Percentiles do not add up: the slowest process's figure is the honest bound.
        "p50": _max_or_none(row["p50"] for row in group),
        "p95": _max_or_none(row["p95"] for row in group),
        "cost": math.fsum(row["cost"] for row in group),
        "last_error_kind": next(
            (row["last_error_kind"] for row in group if row["last_error_kind"]), None
        ),
        "processes": len(group),
    }


def _max_or_none(values: Any) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None
