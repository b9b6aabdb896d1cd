"""What the ``failover`` subcommands share: the error they raise, argument types, running async.

A handler raises :class:`CommandError` for a failure the user can act on; ``main`` prints it as
one line and exits with its ``code``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, Final

import anyio

PROG: Final = "failover"
BACKENDS: Final = ("asyncio", "trio")


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def require(modules: Sequence[str], extra: str, what: str) -> None:
    """Fail with an install hint when an optional dependency is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(f"{what} needs {', '.join(missing)}: pip install 'failover[{extra}]'")


def run_async(backend: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` on a fresh event loop of ``backend`` (``asyncio`` or ``trio``)."""
    if backend == "trio":
        require(["trio"], "dev", "--backend trio")
    return anyio.run(functools.partial(func, *args, **kwargs), backend=backend)


# -- argument types: argparse turns their ArgumentTypeError into a usage error (exit 2) ---------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value
