"""The ``failover`` command: ``demo``, ``fake-providers``, ``check-config``, ``health``,
``dashboard`` and ``top``.

Each subcommand is a module with ``add_parser(subparsers)``, which declares its arguments and
sets ``handler``; :data:`COMMANDS` lists them in the order ``--help`` shows. A handler returns
the exit code. Errors are printed as one line (``failover: error: ...``) unless ``--debug``
asks for the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from failover import __version__
from failover._core.errors import ConfigError
from failover.cli import check_config, dashboard, demo, fake_providers, health, top
from failover.cli._common import PROG, CommandError

#: Each subcommand's ``add_parser``, in the order ``failover --help`` lists them.
COMMANDS: Final[tuple[Callable[[Any], None], ...]] = (
    demo.add_parser,
    fake_providers.add_parser,
    check_config.add_parser,
    health.add_parser,
    dashboard.add_parser,
    top.add_parser,
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

    # Every subcommand accepts --debug after its name too, without declaring it itself.
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
