"""Where a manager's background services run: the fleet link, proactive probes.

A service is an ``async`` callable taking ``task_status`` (it calls ``task_status.started()``
once ready, then runs until cancelled) with an optional ``stop(timeout)`` that lets it finish
cleanly first. :class:`Background` runs them in one of two homes, with the same code:

- ``async with manager:`` -- a task group in the task that entered the manager, on the
  caller's own event loop (asyncio or trio);
- ``with manager:`` -- an asyncio event loop on a thread the manager owns and joins on the
  way out, for programs without an event loop (WSGI servers, Celery, scripts).

Either way, :meth:`Background.run_coroutine` lets a thread other than the loop's run a
coroutine there and wait for it (a synchronous caller asking the fleet for a probe lease), and
:attr:`Background.thread` says which thread the loop is on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

if TYPE_CHECKING:
    from anyio.abc import TaskGroup, TaskStatus
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")


class Service(Protocol):
    """One background service of a manager."""

    async def __call__(self, *, task_status: TaskStatus[None]) -> None:
        """Start (then ``task_status.started()``) and run until cancelled."""
        ...


#: How long a service's ``stop`` may take to flush before it is cancelled (seconds).
STOP_TIMEOUT = 1.0


class Background:
    """Runs a manager's services; started by ``async with``/``with``, stopped by closing."""

    def __init__(
        self,
        services: Sequence[Service],
        stops: Sequence[Callable[[float], Awaitable[None]]] = (),
    ) -> None:
        self.services = tuple(services)
        self.stops = tuple(stops)
        #: The event loop's thread while running (``None`` otherwise).
        self.thread: int | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._stop: anyio.Event | None = None
        # async home: the task group and the task that entered it
        self._tasks: TaskGroup | None = None
        self.owner_task: int | None = None
        # thread home: the portal (its loop thread) and the main task's future
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._main: Any = None

    @property
    def running(self) -> bool:
        return self._tasks is not None or self._portal is not None

    @property
    def in_thread(self) -> bool:
        """Whether the services run on a thread of their own (``with manager:``)."""
        return self._portal is not None

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every service in order, report started, run until asked to stop."""
        self._stop = stop = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        self.thread = threading.get_ident()
        started = False
        try:
            async with anyio.create_task_group() as tasks:
                for service in self.services:
                    await tasks.start(service)
                task_status.started()
                started = True
                await stop.wait()
                with anyio.CancelScope(shield=True):
                    for service_stop in self.stops:
                        await service_stop(STOP_TIMEOUT)
                tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # A service that fails to start raises its own error, not a group of one.
            if not started and len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self.thread = None
            self._token = None

    # -- async home ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the services in a task group of the current task (``async with manager:``)."""
        tasks = anyio.create_task_group()
        await tasks.__aenter__()
        try:
            await tasks.start(self._run)
        except BaseException:
            tasks.cancel_scope.cancel()
            await tasks.__aexit__(None, None, None)
            raise
        self._tasks = tasks
        self.owner_task = anyio.get_current_task().id

    async def stop(self) -> None:
        """Stop the services started by :meth:`start` (from the task that started them)."""
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        if self._stop is not None:
            self._stop.set()
        await tasks.__aexit__(None, None, None)
        self.owner_task = None

    # -- thread home ---------------------------------------------------------------------------

    def start_thread(self) -> None:
        """Run the services on an event loop in a thread of their own (``with manager:``)."""
        portal_cm = anyio.from_thread.start_blocking_portal("asyncio", name="failover-background")
        portal = portal_cm.__enter__()
        try:
            self._main, _ = portal.start_task(self._run, name="failover-background")
        except BaseException as exc:
            portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._portal_cm, self._portal = portal_cm, portal

    def stop_thread(self) -> None:
        """Stop the services started by :meth:`start_thread` and join their thread."""
        portal_cm, portal = self._portal_cm, self._portal
        self._portal_cm = self._portal = None
        if portal_cm is None or portal is None:
            return
        try:
            if self._stop is not None:
                portal.call(self._stop.set)
            self._main.result()
        finally:
            portal_cm.__exit__(None, None, None)

    # -- from other threads --------------------------------------------------------------------

    def can_wait_here(self) -> bool:
        """Whether this thread may block on the loop (running, and not the loop's own thread)."""
        return self._token is not None and self.thread != threading.get_ident()

    def run_coroutine(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``func(*args)`` on the loop and wait for it (see :meth:`can_wait_here`).

        Raises :class:`RuntimeError` when the loop is not running (any more).
        """
        token = self._token
        if token is None:
            raise RuntimeError("the manager's background loop is not running")
        return anyio.from_thread.run(_awaited, func, args, token=token)

    def call_soon(self, func: Callable[[], object]) -> None:
        """Schedule ``func()`` on the loop from any thread, without waiting (no-op if stopped)."""
        token = self._token
        if token is None:
            return
        soon_from_thread(token, func)


async def _awaited(func: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await func(*args)


def soon_from_thread(token: anyio.lowlevel.EventLoopToken, func: Callable[[], object]) -> None:
    """Schedule ``func()`` on the loop of ``token`` from another thread, without waiting.

    ``anyio.from_thread.run_sync`` waits for the loop; a thread holding the manager's lock must
    not (the loop may be waiting for that lock), so this goes to the loop's own thread-safe
    hand-off: asyncio's ``call_soon_threadsafe``, trio's ``run_sync_soon``.
    """
    native = token.native_token
    schedule = getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon  # type: ignore[attr-defined]
    with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
        schedule(func)
