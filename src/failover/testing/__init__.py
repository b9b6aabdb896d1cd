"""Helpers for testing code that uses failover: a fake clock, scripted platforms, a testing
switch, and (with the ``http`` extra) a fake provider HTTP server.

::

    from failover.testing import FakeClock, ScriptedOperation, set_testing

    clock = FakeClock()
    manager = PlatformManager({...}, clock=clock)
    clock.advance(301)          # the TTL passes, instantly
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from failover._core import validate
from failover._core.spec import PlatformSpec
from failover.policies.retry import set_testing_attempts

if TYPE_CHECKING:
    from failover.testing.fake import Behaviour, FakeProviderServer

__all__ = [
    "Behaviour",
    "FakeClock",
    "FakeProviderServer",
    "ScriptedOperation",
    "is_testing",
    "set_testing",
]

_testing = False


def set_testing(testing: bool, *, attempts: int = 1) -> None:
    """Make retries instant in your test suite: waits are skipped and at most ``attempts``
    attempts are made per platform. Breakers and fallback behave as in production."""
    global _testing
    validate.integer("attempts", attempts, at_least=1)  # a ConfigError is a ValueError
    _testing = bool(testing)
    set_testing_attempts(attempts if testing else None)


def is_testing() -> bool:
    return _testing


class FakeClock:
    """A clock that moves only when told to.

    ``advance(seconds)`` moves time, wakes sleepers whose time has come and fires the cancel
    scopes made by ``cancel_scope()`` whose deadline passed. With ``autojump=True``, ``sleep``
    advances the clock itself and returns at once (handy for retry waits).
    """

    def __init__(
        self, start: float = 1_000.0, *, wall_start: float = 1_767_225_600.0, autojump: bool = False
    ) -> None:
        self._now = float(start)
        self._wall_offset = wall_start - start
        self.autojump = autojump
        self._counter = itertools.count()
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._scopes: list[tuple[float, int, anyio.CancelScope]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        if self.autojump:
            self.advance(seconds)
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), event))
        await event.wait()

    def sleep_blocking(self, seconds: float) -> None:
        """A synchronous caller's sleep (retry waits of ``with_fallback_sync``): time jumps
        ahead at once, as with ``autojump`` (no other thread is there to advance it)."""
        if seconds > 0:
            self.advance(seconds)

    def cancel_scope(self, seconds: float) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        heapq.heappush(self._scopes, (self._now + seconds, next(self._counter), scope))
        return scope

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back; got advance({seconds!r})")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)[2].set()
        while self._scopes and self._scopes[0][0] <= self._now:
            heapq.heappop(self._scopes)[2].cancel()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock (to wait until a retry wait began)."""
        return len(self._sleepers)


class ScriptedOperation:
    """An operation whose outcome per platform follows a script.

    ``script`` maps a platform name to a list of outcomes consumed one per call: an exception
    instance is raised, a callable is called with the platform (and awaited if it returns an
    awaitable), anything else is returned. The last outcome repeats. ``calls`` records the
    platform names called, in order.
    """

    def __init__(self, script: Mapping[str, Iterable[Any]], default: Any = "ok") -> None:
        self._script = {name: list(outcomes) for name, outcomes in script.items()}
        self._default = default
        self.calls: list[str] = []

    async def __call__(self, platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
        outcome = self._next(platform)
        if callable(outcome):
            result = outcome(platform)
            if hasattr(result, "__await__"):
                result = await result
            return result
        await anyio.lowlevel.checkpoint()
        return outcome

    def blocking(self, platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
        """The same script as a plain function, for ``with_fallback_sync`` and sync
        ``@fallback`` (``calls`` records both)."""
        outcome = self._next(platform)
        return outcome(platform) if callable(outcome) else outcome

    def _next(self, platform: PlatformSpec) -> Any:
        """The next outcome for ``platform`` (an exception is raised here)."""
        self.calls.append(platform.name)
        outcomes = self._script.get(platform.name)
        if not outcomes:
            outcome = self._default
        elif len(outcomes) == 1:
            outcome = outcomes[0]
        else:
            outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def __getattr__(name: str) -> Callable[..., Any] | type:
    if name in ("FakeProviderServer", "Behaviour"):
        from failover.testing import fake

        return getattr(fake, name)  # type: ignore[no-any-return]
    raise AttributeError(f"module 'failover.testing' has no attribute {name!r}")
