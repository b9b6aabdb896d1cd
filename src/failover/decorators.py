"""``@fallback``: run a function down an operation's fallback chain."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from failover._core.errors import ConfigError
from failover._core.spec import PlatformSpec, check_operation_name
from failover._engine.drive_async import start

if TYPE_CHECKING:
    from failover._engine.book import Book
    from failover._engine.route import Route
    from failover._manager import PlatformManager

P = ParamSpec("P")
R = TypeVar("R")

PlatformFunction = Callable[Concatenate[PlatformSpec, P], Awaitable[R]]


_default_manager: Callable[[], PlatformManager] | None = None


def _process_default() -> PlatformManager:
    """``failover.default_manager()``, imported once (``failover`` imports this module)."""
    global _default_manager
    if _default_manager is None:
        from failover import default_manager

        _default_manager = default_manager
    return _default_manager()


def _is_async(func: object) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _check_platform_parameter(func: Callable[..., Any], role: str) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins and some C callables: nothing to check
        return
    positional = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
    ]
    if not positional:
        name = getattr(func, "__qualname__", repr(func))
        raise TypeError(
            f"{role} {name} must take the chosen platform as its first positional parameter, "
            f"e.g. `async def {getattr(func, '__name__', 'f')}(platform: PlatformSpec, ...)`"
        )


def _signature_without_platform(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].kind is not inspect.Parameter.VAR_POSITIONAL:
        parameters = parameters[1:]
    return signature.replace(parameters=parameters)


class FallbackFunction(Generic[P, R]):
    """The result of ``@fallback``: call it like the function minus its first parameter."""

    # Copied from the decorated function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(
        self,
        operation: str,
        func: PlatformFunction[P, R],
        manager: PlatformManager | None,
    ) -> None:
        self.operation = operation
        self.__wrapped__ = func
        self._manager = manager
        self._implementations: dict[str, PlatformFunction[P, R]] = {}
        #: What a call runs: the function, or the dispatcher once implementations exist.
        self._target: Callable[..., Any] = func
        #: (manager, its book, the operation's route) from the last call: looked up once.
        self._bound: tuple[PlatformManager, Book, Route] | None = None
        functools.update_wrapper(self, func)
        # inspect.signature() would follow __wrapped__ and show ``platform``; callers never pass it.
        signature = _signature_without_platform(func)
        if signature is not None:
            self.__signature__ = signature

    @property
    def manager(self) -> PlatformManager:
        """The manager given to ``@fallback``, or the process default at call time."""
        manager = self._manager
        return manager if manager is not None else _process_default()

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        manager = self._manager
        if manager is None:
            manager = _process_default()
        bound = self._bound
        if bound is None or bound[0] is not manager:
            bound = self._bound = (manager, *manager._call_path(self.operation))
        # The engine directly, not with_fallback: one coroutine frame less per call.
        result, _ = await start(bound[1], bound[2], self._target, args, kwargs, None)
        return result  # type: ignore[no-any-return]

    async def call_with_platform(self, *args: P.args, **kwargs: P.kwargs) -> tuple[R, PlatformSpec]:
        """Like calling it, but also returns the platform that answered."""
        book, route = self.manager._call_path(self.operation)
        return await start(book, route, self._target, args, kwargs, None)

    def _dispatch(self, platform: PlatformSpec, /, *args: Any, **kwargs: Any) -> Awaitable[R]:
        implementation = self._implementations.get(platform.name, self.__wrapped__)
        return implementation(platform, *args, **kwargs)

    def platform(self, name: str) -> Callable[[PlatformFunction[P, R]], PlatformFunction[P, R]]:
        """Register the implementation used when ``name`` is the chosen platform.

        ::

            @erase.platform("stability")
            async def _(platform, image, mask): ...
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"platform name must be a non-empty string, got {name!r}", key="name")

        def register(func: PlatformFunction[P, R]) -> PlatformFunction[P, R]:
            if not _is_async(func):
                raise TypeError(
                    f"{getattr(func, '__qualname__', func)!r} must be an async function "
                    f"to implement {self.operation!r} on {name!r}"
                )
            _check_platform_parameter(func, "platform implementation")
            if name in self._implementations:
                raise ConfigError(
                    f"{self.__wrapped__.__qualname__} already has an implementation for {name!r}",
                    key=name,
                )
            self._implementations[name] = func
            self._target = self._dispatch
            return func

        return register


def fallback(
    operation: str, *, manager: PlatformManager | None = None
) -> Callable[[PlatformFunction[P, R]], FallbackFunction[P, R]]:
    """Run the decorated ``async def f(platform, ...)`` down ``operation``'s fallback chain.

    The wrapper takes the same arguments minus ``platform`` and returns what the first
    platform to succeed returned. ``manager`` defaults to :func:`failover.default_manager`,
    resolved at call time. A plain ``def`` is rejected here: use
    ``PlatformManager.with_fallback`` for synchronous callables.
    """
    check_operation_name(operation, where="@fallback")

    def decorate(func: PlatformFunction[P, R]) -> FallbackFunction[P, R]:
        if not _is_async(func):
            raise TypeError(
                f"@fallback({operation!r}) needs an async function, but "
                f"{getattr(func, '__qualname__', func)!r} is not; for a plain function use "
                f"`await manager.with_fallback({operation!r}, func, ...)`"
            )
        _check_platform_parameter(func, f"@fallback({operation!r}) function")
        return FallbackFunction(operation, func, manager)

    return decorate
