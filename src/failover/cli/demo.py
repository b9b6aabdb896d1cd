"""``failover demo``: fake providers failing like real ones, a burst of requests, a health table.

The machinery (scenarios, the runner, the reporters) lives in :mod:`failover.cli._demo`; this
module declares the arguments, picks the output (rich, plain or JSON) and keeps the library's own
log lines out of the progress bar.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from failover._observe.scrub import ScrubbingFilter, get_logger
from failover.cli._common import BACKENDS, positive_int, rate, require, run_async
from failover.cli._dashboard_common import add_serving_arguments, demo_watcher

if TYPE_CHECKING:
    from failover.cli._demo.report import PlainReporter, RichReporter


def add_parser(subparsers: Any) -> None:
    """Declare ``failover demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="watch failover keep a burst of AI requests answered (no API keys needed)",
        description=(
            "Start fake AI providers that fail like real ones (out of credits, flaky, rate "
            "limited, ...), build a manager from the bundled demo config (image_editing: "
            "stability -> replicate -> fal; text_generation: groq -> openai -> anthropic), "
            "send a burst of requests, log every platform switch and end with a health table."
        ),
    )
    parser.add_argument(
        "--requests",
        type=positive_int,
        default=200,
        metavar="N",
        help="how many requests to send (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=8,
        metavar="N",
        help="how many requests are in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=rate,
        default=20.0,
        metavar="R",
        help="requests sent per second, like traffic arriving (default: %(default)s; "
        "0 = as fast as --concurrency allows)",
    )
    parser.add_argument("--scenario", default="default", metavar="NAME", help=_scenario_help())
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for the request mix and the fake providers' draws (default: %(default)s)",
    )
    parser.add_argument(
        "--otlp",
        metavar="ENDPOINT",
        default=None,
        help="send traces and metrics over OTLP/HTTP, e.g. http://localhost:4318 for Jaeger "
        "(default: $OTEL_EXPORTER_OTLP_ENDPOINT if set)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (requests, succeeded, failed, fell_back, by_platform, "
        "health) instead of the table; the running commentary goes to stderr",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show failover's own log lines"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    dashboard = parser.add_argument_group("live dashboard")
    dashboard.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the live dashboard while the demo runs (needs the web extra)",
    )
    add_serving_arguments(dashboard)
    dashboard.add_argument(
        "--hold",
        type=rate,
        default=float("inf"),
        metavar="S",
        help="with --dashboard: keep the page up S seconds after the burst (default: until Ctrl-C)",
    )
    parser.set_defaults(handler=run)


def _scenario_help() -> str:
    try:
        from failover.cli._demo.scenarios import SCENARIOS
    except ImportError:  # the http extra is missing; the command itself will say so
        return "the scenario to play (default: %(default)s)"
    lines = "; ".join(f"{name}: {scenario.description}" for name, scenario in SCENARIOS.items())
    return f"the scenario to play (default: %(default)s). {lines}"


def run(args: argparse.Namespace) -> int:
    """Play the scenario; print the health table, or one JSON object with ``--json``."""
    require(["httpx", "h11"], "http", "failover demo")
    from failover.cli._demo.runner import DemoOptions, run_demo

    options = DemoOptions(
        requests=args.requests,
        concurrency=args.concurrency,
        scenario=args.scenario,
        seed=args.seed,
        rate=args.rate,
    )
    endpoint = args.otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    reporter = _reporter(as_json=args.json)
    stop_tracing = _start_tracing(endpoint, reporter.note) if endpoint else None
    try:
        with _library_logs(reporter.note if args.verbose else None), reporter:
            watch = (
                demo_watcher(args.host, args.port, args.hold, reporter.note)
                if args.dashboard
                else None
            )
            result = run_async(
                args.backend, run_demo, options, reporter, base_environ=os.environ, watch=watch
            )
    finally:
        if stop_tracing is not None:
            stop_tracing()
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        reporter.finished(result)
    return 0


def _reporter(*, as_json: bool) -> PlainReporter | RichReporter:
    """Commentary on stderr under ``--json`` (stdout is the object); colour only on a terminal."""
    from failover.cli._demo.report import PlainReporter, RichReporter

    if as_json:
        return PlainReporter(sys.stderr, progress=False)
    if sys.stdout.isatty() and importlib.util.find_spec("rich") is not None:
        from rich.console import Console

        return RichReporter(Console())
    return PlainReporter(sys.stdout)


def _start_tracing(endpoint: str, note: Callable[[str], None]) -> Callable[[], None] | None:
    """Export traces and metrics over OTLP/HTTP; say so, and go on, if it cannot."""
    try:
        from failover.telemetry import configure
    except ImportError as exc:  # the otlp extra is missing; the message says what to install
        note(f"--otlp {endpoint}: not sending traces: {exc}")
        return None
    export = configure(service_name="failover-demo", endpoint=endpoint)
    note(f"sending traces to {endpoint} (service failover-demo; open Jaeger to see them)")
    return export.shutdown


class _SinkHandler(logging.Handler):
    """Hands each formatted record to a function (the demo's reporter)."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink(f"{record.name}: {self.format(record)}")


@contextmanager
def _library_logs(sink: Callable[[str], None] | None) -> Iterator[None]:
    """Route the ``failover`` logger's records to ``sink`` (INFO and up), or hide them.

    Without this, Python's last-resort handler would print the library's warnings (a credit
    issue, a breaker opening) in the middle of the progress bar.
    """
    logger = get_logger("failover")
    handler = logging.NullHandler() if sink is None else _SinkHandler(sink)
    # Records of child loggers reach this handler without passing the parent's filter.
    handler.addFilter(ScrubbingFilter())
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    if sink is not None and (logger.level == logging.NOTSET or logger.level > logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
