"""``@fallback``: run a function down an operation's fallback chain."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from failover._core.errors import ConfigError
from failover._core.spec import PlatformSpec, check_operation_name
from failover._engine.drive_async import start
from failover._engine.drive_sync import call_sync

if TYPE_CHECKING:
    from failover._engine.book import Book
    from failover._engine.drive_sync import Workers
    from failover._engine.route import Route
    from failover._manager import PlatformManager

    #: What a decorated call needs (a plain tuple: it is unpacked on every call).
    _Path = tuple[PlatformManager, Book, Route, Workers, Callable[..., Any]]

P = ParamSpec("P")
R = TypeVar("R")

PlatformFunction = Callable[Concatenate[PlatformSpec, P], Awaitable[R]]
BlockingPlatformFunction = Callable[Concatenate[PlatformSpec, P], R]


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


class _Decorated(Generic[P, R]):
    """What both kinds of ``@fallback`` function share: the operation, the manager, the
    per-platform implementations, and what a call runs."""

    # Slots for what a call reads (faster than the instance dict, which update_wrapper fills
    # with the decorated function's attributes).
    __slots__ = ("__dict__", "__weakref__", "_bound", "_manager", "_target")

    # Copied from the decorated function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(
        self, operation: str, func: Callable[..., Any], manager: PlatformManager | None
    ) -> None:
        self.operation = operation
        self.__wrapped__ = func
        self._manager = manager
        self._implementations: dict[str, Callable[..., Any]] = {}
        #: What a call runs: the function, or the dispatcher once implementations exist.
        self._target: Callable[..., Any] = func
        #: What a call needs, from the last call: the manager, its book, the operation's route,
        #: its attempt workers and the target. Looked up once; again when the target changes.
        self._bound: _Path | None = None
        functools.update_wrapper(self, func)  # type: ignore[arg-type]
        # inspect.signature() would follow __wrapped__ and show ``platform``; callers never pass it.
        signature = _signature_without_platform(func)
        if signature is not None:
            self.__signature__ = signature

    @property
    def manager(self) -> PlatformManager:
        """The manager given to ``@fallback``, or the process default at call time."""
        manager = self._manager
        return manager if manager is not None else _process_default()

    def _path(self) -> _Path:
        manager = self._manager
        if manager is None:
            manager = _process_default()
        bound = self._bound
        if bound is None or bound[0] is not manager:
            target = self._target
            book, route = manager._call_path(self.operation)
            bound = self._bound = (manager, book, route, manager._workers, target)
            if self._target is not target:  # an implementation registered meanwhile
                self._bound = None  # (_register sets _target, then clears _bound)
        return bound

    def _dispatch(self, platform: PlatformSpec, /, *args: Any, **kwargs: Any) -> Any:
        implementation = self._implementations.get(platform.name, self.__wrapped__)
        return implementation(platform, *args, **kwargs)

    def _register(self, name: object, func: Callable[..., Any], *, asynchronous: bool) -> None:
        if _is_async(func) is not asynchronous:
            kind = "an async function" if asynchronous else "a plain function"
            raise TypeError(
                f"{getattr(func, '__qualname__', func)!r} must be {kind} "
                f"to implement {self.operation!r} on {name!r}, like the function it implements"
            )
        _check_platform_parameter(func, "platform implementation")
        if name in self._implementations:
            raise ConfigError(
                f"{self.__wrapped__.__qualname__} already has an implementation for {name!r}",
                key=str(name),
            )
        self._implementations[str(name)] = func
        self._target = self._dispatch
        self._bound = None


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"platform name must be a non-empty string, got {name!r}", key="name")


class FallbackFunction(_Decorated[P, R]):
    """The result of ``@fallback`` on an ``async def``: await it like the function minus its
    first parameter."""

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # The engine directly, not with_fallback: one coroutine frame less per call; and the
        # manager's book and route looked up once (the hot path of every decorated call).
        bound = self._bound
        if bound is None or (self._manager is None and bound[0] is not _process_default()):
            bound = self._path()
        return (await start(bound[1], bound[2], bound[4], args, kwargs, None))[0]  # type: ignore[no-any-return]

    async def call_with_platform(self, *args: P.args, **kwargs: P.kwargs) -> tuple[R, PlatformSpec]:
        """Like calling it, but also returns the platform that answered."""
        book, route = self.manager._call_path(self.operation)
        return await start(book, route, self._target, args, kwargs, None)

    def platform(self, name: str) -> Callable[[PlatformFunction[P, R]], PlatformFunction[P, R]]:
        """Register the implementation used when ``name`` is the chosen platform.

        ::

            @erase.platform("stability")
            async def _(platform, image, mask): ...
        """
        _check_name(name)

        def register(func: PlatformFunction[P, R]) -> PlatformFunction[P, R]:
            self._register(name, func, asynchronous=True)
            return func

        return register


class SyncFallbackFunction(_Decorated[P, R]):
    """The result of ``@fallback`` on a plain ``def``: call it like the function minus its
    first parameter; the fallback chain runs synchronously (``with_fallback_sync``)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # What a call needs, looked up once (the hot path of every decorated synchronous
        # call); rebound if the process default changed.
        bound = self._bound
        if bound is None or (self._manager is None and bound[0] is not _process_default()):
            bound = self._path()
        _, book, route, workers, target = bound
        return call_sync(book, workers, route, target, args, kwargs, None)[0]  # type: ignore[no-any-return]

    def call_with_platform(self, *args: P.args, **kwargs: P.kwargs) -> tuple[R, PlatformSpec]:
        """Like calling it, but also returns the platform that answered."""
        _, book, route, workers, target = self._path()
        answer: tuple[R, PlatformSpec] = call_sync(book, workers, route, target, args, kwargs, None)
        return answer

    def platform(
        self, name: str
    ) -> Callable[[BlockingPlatformFunction[P, R]], BlockingPlatformFunction[P, R]]:
        """Register the plain function used when ``name`` is the chosen platform."""
        _check_name(name)

        def register(func: BlockingPlatformFunction[P, R]) -> BlockingPlatformFunction[P, R]:
            self._register(name, func, asynchronous=False)
            return func

        return register


def fallback(operation: str, *, manager: PlatformManager | None = None) -> _Decorator:
    """Run the decorated ``f(platform, ...)`` down ``operation``'s fallback chain.

    The wrapper takes the same arguments minus ``platform`` and returns what the first
    platform to succeed returned. On an ``async def`` the wrapper is awaited
    (:class:`FallbackFunction`); on a plain ``def`` it is a plain function that runs the chain
    synchronously (:class:`SyncFallbackFunction`). ``manager`` defaults to
    :func:`failover.default_manager`, resolved at call time.
    """
    check_operation_name(operation, where="@fallback")
    return _Decorator(operation, manager)


class _Decorator:
    """``@fallback(operation)``, typed for both kinds of function."""

    __slots__ = ("manager", "operation")

    def __init__(self, operation: str, manager: PlatformManager | None) -> None:
        self.operation = operation
        self.manager = manager

    @overload
    def __call__(  # type: ignore[overload-overlap]  # an async def matches the first
        self, func: PlatformFunction[P, R]
    ) -> FallbackFunction[P, R]: ...

    @overload
    def __call__(self, func: BlockingPlatformFunction[P, R]) -> SyncFallbackFunction[P, R]: ...

    def __call__(self, func: Callable[..., Any]) -> Any:
        _check_platform_parameter(func, f"@fallback({self.operation!r}) function")
        if _is_async(func):
            return FallbackFunction(self.operation, func, self.manager)
        return SyncFallbackFunction(self.operation, func, self.manager)
