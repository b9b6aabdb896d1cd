"""Blocking operations in async code: run them off the event loop, timeouts honoured."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from failover._core.errors import ConfigError
from failover._core.spec import PlatformSpec

P = ParamSpec("P")
R = TypeVar("R")


def in_thread(
    func: Callable[Concatenate[PlatformSpec, P], R],
) -> Callable[Concatenate[PlatformSpec, P], Awaitable[R]]:
    """``func`` (a plain, blocking function) as an async operation that runs in a worker
    thread, so it neither stalls the event loop nor escapes ``attempt_timeout``::

        await manager.with_fallback("text_generation", failover.in_thread(call_openai), prompt)

    When the attempt times out (or the caller is cancelled) the call moves on at once; the
    thread cannot be interrupted, so it finishes in the background and its late result is
    discarded and counts for nothing. An ``async def`` needs no thread: it is refused.
    """
    if _is_async(func):
        raise ConfigError(
            f"in_thread() is for blocking functions; {_name(func)} is async: pass it to "
            "with_fallback as it is",
            key="func",
        )

    @functools.wraps(func)
    async def threaded(platform: PlatformSpec, /, *args: P.args, **kwargs: P.kwargs) -> R:
        import anyio.to_thread  # on first use: import failover stays light

        call = functools.partial(func, platform, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    threaded.__failover_in_thread__ = func  # type: ignore[attr-defined]  # for the sync API's error
    return threaded


def _is_async(func: object) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return (
        inspect.iscoroutinefunction(func)
        or inspect.isasyncgenfunction(func)
        or (
            inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004
        )
    )


def _name(func: object) -> str:
    return str(getattr(func, "__qualname__", None) or repr(func))
