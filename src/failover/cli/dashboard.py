"""``failover dashboard``: the live page for a whole fleet (``--redis``) or for one process.

With ``--redis`` it shows what every process publishing to that Redis reports
(``failover.web.publish_health``), merged, or one of them with ``--process``. Without it, it
serves a manager built from the environment and ``failover.toml``, like the application's own
would be: useful to see which platforms are configured and which keys are missing.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from failover.cli._common import BACKENDS, require, run_async
from failover.cli._dashboard_common import WEB_MODULES, add_serving_arguments, feed_at_info


def add_parser(subparsers: Any) -> None:
    """Declare ``failover dashboard``."""
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the live dashboard page for a fleet (--redis) or this configuration",
        description=(
            "Serve the live dashboard (the page, /health, /metrics, the event stream). With "
            "--redis, for every process that publishes its health there; without, for a "
            "manager built from the environment and $FAILOVER_CONFIG. Read-only."
        ),
    )
    parser.add_argument("--redis", metavar="URL", help="show the fleet sharing this Redis")
    parser.add_argument(
        "--namespace", default="default", metavar="NS", help="the fleet's namespace"
    )
    parser.add_argument(
        "--process", metavar="HOST:PID", help="with --redis: show this one process only"
    )
    add_serving_arguments(parser)
    parser.add_argument("--backend", choices=BACKENDS, default="asyncio", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    require(WEB_MODULES, "web", "failover dashboard")
    if args.redis:
        require(["coredis"], "redis", "failover dashboard --redis")
        from failover.web import create_fleet_app

        app = create_fleet_app(args.redis, args.namespace, process=args.process)
    else:
        from failover._manager import PlatformManager
        from failover.web import create_app

        feed_at_info()
        app = create_app(PlatformManager.from_env())
    run_async(args.backend, _serve, app, args.host, args.port)
    return 0


async def _serve(app: Any, host: str, port: int) -> None:
    from failover.web import serving

    async with serving(app, host, port) as url:
        print(f"dashboard: {url}/ (Ctrl-C to stop)", flush=True)
        await anyio.sleep_forever()
