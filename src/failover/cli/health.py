"""``failover health --redis URL``: the fleet's view of provider health, from any machine.

Reads what the processes of one namespace share in Redis (open pairs, cooling platforms and
pairs with the time left, who holds a probe lease) without joining the fleet.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import anyio

from failover.cli._common import CommandError, require


def add_parser(subparsers: Any) -> None:
    """Declare ``failover health``."""
    parser = subparsers.add_parser(
        "health",
        help="show the fleet's shared view of provider health (from Redis)",
        description=(
            "Show what the processes sharing state through Redis currently agree on: open "
            "pairs, platforms and pairs cooling down with the time left, and who holds a "
            "half-open probe lease. Read-only: it does not join the fleet."
        ),
    )
    parser.add_argument(
        "--redis", required=True, metavar="URL", help="the Redis URL the fleet shares state in"
    )
    parser.add_argument(
        "--namespace",
        default="default",
        metavar="NS",
        help="the fleet's namespace (default: default)",
    )
    parser.add_argument("--json", action="store_true", help="print the view as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the fleet view; 0 when Redis answered, 1 (one clear line) when it did not."""
    require(["coredis"], "redis", "failover health --redis")
    from coredis.exceptions import AuthenticationError, AuthorizationError, RedisError

    from failover.redis import RedisSharedState, display_url, leaf_exception

    shared = RedisSharedState(args.redis, args.namespace)
    shown = display_url(args.redis)
    try:
        view = anyio.run(shared.fleet_view)
    except Exception as raised:
        exc = leaf_exception(raised)
        if isinstance(exc, AuthenticationError | AuthorizationError):
            raise CommandError(f"Redis at {shown} refused the credentials: {exc}") from None
        if isinstance(exc, OSError | TimeoutError | RedisError):
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise CommandError(f"cannot reach Redis at {shown}: {text}") from None
        raise
    view["redis"] = shown
    if args.json:
        json.dump(view, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_view(view, sys.stdout)
    return 0


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "until reset"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min left"
    return f"{seconds:.1f}s left"


def _holder(process_id: str) -> str:
    host, _, rest = process_id.partition(":")
    pid = rest.split(":", 1)[0]
    return f"{host} pid {pid}" if pid else process_id


def print_view(view: dict[str, Any], out: TextIO) -> None:
    """The fleet view as a short human-readable report."""
    out.write(f"Fleet {view['namespace']!r} at {view['redis']}\n")
    if not (view["open"] or view["cooling"] or view["probes"]):
        out.write("  nothing open, cooling or probing: every platform is usable fleet-wide\n")
        return
    if view["open"]:
        out.write("\nopen pairs\n")
        for entry in view["open"]:
            state = "isolated" if entry["isolated"] else "open"
            out.write(
                f"  {entry['platform']} / {entry['operation']:<20} {state}, "
                f"{_left(entry['remaining_seconds'])} (opened by {_holder(entry['by'])})\n"
            )
    if view["cooling"]:
        out.write("\ncooling down\n")
        for entry in view["cooling"]:
            scope = entry["operation"] or "all operations"
            out.write(
                f"  {entry['platform']} ({scope}): {entry['reason']}, "
                f"{_left(entry['remaining_seconds'])}\n"
            )
    if view["probes"]:
        out.write("\nprobe leases\n")
        for entry in view["probes"]:
            out.write(
                f"  {entry['platform']} / {entry['operation']} #{entry['slot']}: held by "
                f"{_holder(entry['holder'])}, {_left(entry['expires_in'])}\n"
            )
