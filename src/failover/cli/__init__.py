"""The ``failover`` command: ``demo``, ``fake-providers``, ``check-config`` and ``health``.

Each subcommand is an ``_add_<name>(subparsers)`` function that declares its arguments and
sets ``handler``; :data:`COMMANDS` lists them in the order ``--help`` shows. A handler returns
the exit code. Errors are printed as one line (``failover: error: ...``) unless ``--debug``
asks for the traceback.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from failover import __version__
from failover._core.errors import ConfigError
from failover._observe.scrub import ScrubbingFilter, get_logger
from failover.cli.fleet import add_health

if TYPE_CHECKING:
    from failover._config.check import ConfigReport
    from failover.testing.fake import Behaviour

PROG: Final = "failover"
BACKENDS: Final = ("asyncio", "trio")


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- shared helpers ---------------------------------------------------------------------------


def _require(modules: Sequence[str], extra: str, what: str) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(f"{what} needs {', '.join(missing)}: pip install 'failover[{extra}]'")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def _run_async(backend: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if backend == "trio":
        _require(["trio"], "dev", "--backend trio")
    return anyio.run(functools.partial(func, *args, **kwargs), backend=backend)


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


# -- failover demo ------------------------------------------------------------------------------


def _scenario_help() -> str:
    try:
        from failover._demo.scenarios import SCENARIOS
    except ImportError:  # the http extra is missing; the command itself will say so
        return "the scenario to play (default: %(default)s)"
    lines = "; ".join(f"{name}: {scenario.description}" for name, scenario in SCENARIOS.items())
    return f"the scenario to play (default: %(default)s). {lines}"


def _add_demo(subparsers: Any) -> None:
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
        type=_positive_int,
        default=200,
        metavar="N",
        help="how many requests to send (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="how many requests are in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
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
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    _require(["httpx", "h11"], "http", "failover demo")
    from failover._demo.report import PlainReporter, RichReporter
    from failover._demo.runner import DemoOptions, run_demo

    options = DemoOptions(
        requests=args.requests,
        concurrency=args.concurrency,
        scenario=args.scenario,
        seed=args.seed,
        rate=args.rate,
    )
    endpoint = args.otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    reporter: PlainReporter | RichReporter
    if args.json:
        reporter = PlainReporter(sys.stderr, progress=False)
    elif sys.stdout.isatty() and importlib.util.find_spec("rich") is not None:
        from rich.console import Console

        reporter = RichReporter(Console())
    else:
        reporter = PlainReporter(sys.stdout)
    stop_tracing = _start_tracing(endpoint, reporter.note) if endpoint else None
    try:
        with _library_logs(reporter.note if args.verbose else None), reporter:
            result = _run_async(args.backend, run_demo, options, reporter, base_environ=os.environ)
    finally:
        if stop_tracing is not None:
            stop_tracing()
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        reporter.finished(result)
    return 0


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


# -- failover fake-providers --------------------------------------------------------------------


def _add_fake_providers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fake-providers",
        help="run the fake AI-provider server in the foreground (Ctrl-C stops it)",
        description=(
            "Serve provider-shaped endpoints (OpenAI-compatible chat completions for openai, "
            "groq, xai, together and google; Anthropic messages; Stability, Replicate and FAL "
            "image endpoints) that fail like the real ones. Change a platform's behaviour at "
            "runtime with POST /_admin/behaviour."
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8765,
        metavar="N",
        help="TCP port (default: %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed for the draws")
    parser.add_argument(
        "--behaviour",
        action="append",
        default=[],
        metavar="PLATFORM=KIND",
        help="a starting behaviour, e.g. stability=out_of_credits or "
        '\'replicate={"kind": "flaky", "error_rate": 0.5}\' (repeatable; \'*\' = all)',
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="asyncio",
        help="the event loop to run on (default: %(default)s)",
    )
    parser.set_defaults(handler=_fake_providers)


def _parse_behaviours(specs: Sequence[str]) -> dict[str, Behaviour]:
    from failover.testing.fake import PLATFORMS, Behaviour

    behaviours: dict[str, Behaviour] = {}
    for spec in specs:
        platform, sep, text = spec.partition("=")
        if not sep or not platform or not text:
            raise CommandError(f"--behaviour must look like PLATFORM=KIND, got {spec!r}", 2)
        if platform != "*" and platform not in PLATFORMS:
            raise CommandError(
                f"--behaviour: unknown platform {platform!r}; known: {', '.join(PLATFORMS)}", 2
            )
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else text
            behaviour = Behaviour.from_dict(data)
        except ValueError as exc:
            raise CommandError(f"--behaviour {platform}: {exc}", 2) from None
        for name in PLATFORMS if platform == "*" else (platform,):
            behaviours[name] = behaviour
    return behaviours


def _fake_providers(args: argparse.Namespace) -> int:
    _require(["h11"], "http", "failover fake-providers")
    from failover.testing.fake import PLATFORMS, FakeProviderServer

    behaviours = _parse_behaviours(args.behaviour)

    async def serve() -> None:
        try:
            server = FakeProviderServer(
                args.port, host=args.host, seed=args.seed, behaviours=behaviours
            )
            async with server:
                print(f"fake providers listening on {server.url}", flush=True)
                for platform in PLATFORMS:
                    print(f"  {platform:<10} {server.base_url(platform)}", flush=True)
                print(f"  admin      {server.url}/_admin/behaviour  (Ctrl-C stops)", flush=True)
                await anyio.sleep_forever()
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from None

    try:
        _run_async(args.backend, serve)
    except KeyboardInterrupt:
        print("fake providers stopped", flush=True)
    return 0


# -- failover check-config ----------------------------------------------------------------------


def _add_check_config(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate a failover.toml and show what it resolves to",
        description=(
            "Validate a TOML config and print the resolved priority list per operation, "
            "which platforms are usable in this environment, and which would be skipped and "
            "why. Exits 1 naming every problem found."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the TOML file (e.g. failover.toml)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--strict", action="store_true", help="treat warnings as problems (exit 1)")
    parser.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from failover._config.check import check_config

    report: ConfigReport = anyio.run(check_config, args.file, dict(os.environ))
    if args.strict:
        report.problems.extend(f"(strict) {warning}" for warning in report.warnings)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_report(report, sys.stdout)
    return 0 if report.ok else 1


def _print_report(report: ConfigReport, out: TextIO) -> None:
    if not report.ok:
        count = len(report.problems)
        print(f"{report.source}: {count} problem{'s' if count != 1 else ''}", file=out)
        for problem in report.problems:
            print(f"  - {problem}", file=out)
    else:
        print(f"{report.source}: OK", file=out)
    if report.operations:
        settings = ", ".join(f"{key}={value}" for key, value in report.settings.items())
        print(f"settings: {settings or '(defaults)'}; order: {report.ordering}", file=out)
        for operation, checks in report.operations.items():
            usable = sum(check.usable for check in checks)
            print(f"\n{operation}  ({usable} of {len(checks)} usable)", file=out)
            width = max(len(f"{check.name}/{check.model}") for check in checks)
            for index, check in enumerate(checks, 1):
                label = f"{check.name}/{check.model}".ljust(width)
                why = check.why_skipped()
                key = check.api_key_env or "no key needed"
                status = f"usable   ({key})" if why is None else f"skipped: {why}"
                print(f"  {index}. {label}  {status}", file=out)
    if report.warnings:
        print("\nwarnings:", file=out)
        for warning in report.warnings:
            print(f"  - {warning}", file=out)


# -- entry point --------------------------------------------------------------------------------

#: The subcommands, in the order ``failover --help`` lists them.
COMMANDS: Final[tuple[Callable[[Any], None], ...]] = (
    _add_demo,
    _add_fake_providers,
    _add_check_config,
    add_health,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``failover`` argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback when something fails",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Keep AI features working when AI providers fail.",
        epilog="Start with: failover demo",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    original_add_parser = subparsers.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", [common])
        return original_add_parser(name, **kwargs)

    subparsers.add_parser = add_parser  # type: ignore[method-assign]
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``failover`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    debug = bool(getattr(args, "debug", False))
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BaseException as raised:
        if debug or not isinstance(raised, Exception):
            raise
        exc = _single(raised)
        if not isinstance(exc, CommandError | ConfigError | OSError):
            print(
                f"{PROG}: error: {type(exc).__name__}: {_one_line(exc)} "
                "(run with --debug for details)",
                file=sys.stderr,
            )
            return 1
        code = exc.code if isinstance(exc, CommandError) else 1
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return code


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
