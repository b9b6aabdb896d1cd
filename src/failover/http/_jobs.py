"""Long-running jobs: submit, poll with backoff, cancel at the provider when the caller stops.

Replicate's predictions, FAL's queue and Black Forest Labs' tasks answer a submission with a
job to follow. :func:`follow` polls it inside the fallback attempt that submitted it:

* Polling is part of that one attempt. A poll is not an attempt and is never reported to the
  platform's health; a poll that fails transiently is repeated (up to
  :attr:`Polling.poll_errors` in a row) rather than failing the job.
* The job ends the attempt: succeeded, the result is collected; failed or canceled at the
  provider, or over :attr:`Polling.timeout`, the attempt fails (``Transient``, or
  ``BadRequest(reason="content_policy")`` for a moderated job) and the chain moves on.
* Whatever stops the wait early (the caller's cancellation, the call's deadline, the attempt's
  timeout, a failed poll) cancels the job at the provider, in a shielded scope bounded by
  :attr:`Polling.cancel_seconds`, before the stop goes on. A job that could still run is never
  left running while the chain submits the same request elsewhere, so it is not billed twice.
* Closing the adapter (the manager's ``close`` / ``aclose``) cancels at the provider every
  job still followed, each within :attr:`Polling.cancel_seconds`, before its clients close:
  an attempt abandoned after its timeout (its thread still polling) does not leave its job
  running, and billed, once the manager is closed. The adapter keeps them in a
  :class:`Followed`; a follower whose job was cancelled by the close does not cancel it again
  (its next poll fails with the adapter's "is closed" error).
* The attempt span carries ``failover.job.id``, ``failover.job.state``,
  ``failover.job.polls`` and, while queued, ``failover.job.queue_position``; a job cancelled
  at the provider adds ``failover.job.cancelled``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

import anyio

from failover._core import validate
from failover._core.classify.providers import CONTENT_POLICY_WORDS, JOB_REFUSED_WORDS
from failover._core.errors import BadRequest, Closed, ProviderError, Transient
from failover._core.spec import PlatformSpec
from failover._observe.telemetry import current_recording_span
from failover.http._blocking import blocking

JOB_ID: Final = "failover.job.id"
JOB_STATE: Final = "failover.job.state"
JOB_POLLS: Final = "failover.job.polls"
JOB_QUEUE_POSITION: Final = "failover.job.queue_position"
JOB_CANCELLED: Final = "failover.job.cancelled"

#: The timeout of the request being sent, when it is not the client's: a cancellation in
#: blocking mode (no cancel scope there) sets it to :attr:`Polling.cancel_seconds`.
REQUEST_TIMEOUT: Final[ContextVar[float | None]] = ContextVar(
    "failover_http_request_timeout", default=None
)


class JobState(StrEnum):
    """Where a provider's job is, in words common to every provider."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


@dataclass(slots=True)
class Job:
    """One job at a provider: its id, state, the provider's own word for it and its data
    (links to poll, cancel and fetch; the output once done)."""

    id: str
    state: JobState
    provider_state: str
    data: Mapping[str, Any] = field(default_factory=dict)
    queue_position: int | None = None
    error: str | None = None
    polls: int = 0


@dataclass(frozen=True, slots=True)
class Polling:
    """How jobs are followed: the first wait, its growth factor, the longest wait, how long
    a job may take, how many failed polls in a row are tolerated, and how long cancelling
    at the provider may take.

    ``Polling(interval=0)`` polls back to back (useful against a local fake server).
    """

    interval: float = 1.0
    factor: float = 1.5
    max_interval: float = 10.0
    timeout: float = 900.0
    poll_errors: int = 3
    cancel_seconds: float = 10.0

    def __post_init__(self) -> None:
        validate.number("interval", self.interval, at_least=0, label="Polling.interval")
        validate.number("factor", self.factor, at_least=1, label="Polling.factor")
        validate.number("max_interval", self.max_interval, at_least=0, label="Polling.max_interval")
        validate.seconds("timeout", self.timeout, allow_inf=True)
        validate.integer("poll_errors", self.poll_errors, at_least=0, label="Polling.poll_errors")
        validate.number(
            "cancel_seconds", self.cancel_seconds, above=0, label="Polling.cancel_seconds"
        )

    def waits(self) -> Callable[[], float]:
        """The successive waits between polls."""
        current = self.interval

        def next_wait() -> float:
            nonlocal current
            wait, current = current, min(current * self.factor, self.max_interval)
            return wait

        return next_wait


@dataclass(eq=False, slots=True)
class Following:
    """One job being followed: its adapter and platform, its latest known state and its
    polling. ``taken``: closing the adapter took it (and cancels it at the provider)."""

    provider: JobProvider
    platform: PlatformSpec
    job: Job
    polling: Polling
    taken: bool = False


class Followed:
    """The jobs an adapter is following, from submission to their end, so that closing the
    adapter can cancel at the provider those still running. Thread-safe: any number of
    threads (and tasks) follow jobs while another thread may close."""

    __slots__ = ("_closed", "_jobs", "_lock")

    def __init__(self) -> None:
        self._jobs: set[Following] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the adapter started closing (:meth:`take` ran)."""
        return self._closed

    def add(self, following: Following) -> bool:
        """Track a submitted job; ``False`` when the adapter is closing (it is not tracked)."""
        with self._lock:
            if self._closed:
                return False
            self._jobs.add(following)
            return True

    def update(self, following: Following, job: Job) -> None:
        """The job's latest state, as a poll found it."""
        with self._lock:
            following.job = job

    def discard(self, following: Following) -> bool:
        """Stop tracking a job that ended; ``True`` when closing took it (so cancelled it)."""
        with self._lock:
            self._jobs.discard(following)
            return following.taken

    def take(self) -> list[Following]:
        """Close: every job still running, each marked taken (its follower leaves it to the
        caller, who cancels it). Jobs submitted from now on are not tracked."""
        with self._lock:
            self._closed = True
            jobs, self._jobs = self._jobs, set()
            running = [following for following in jobs if not following.job.state.finished]
            for following in running:
                following.taken = True
        return running


class JobProvider(Protocol):
    """What :func:`follow` needs from a provider's adapter."""

    @property
    def _followed(self) -> Followed:
        """The jobs being followed (see :class:`Followed`)."""
        ...

    async def poll(self, platform: PlatformSpec, job: Job) -> Job: ...

    async def cancel(self, platform: PlatformSpec, job: Job) -> bool:
        """Cancel ``job`` at the provider; ``False`` when the API has no way to."""
        ...


def record(job: Job, *, cancelled: bool = False) -> None:
    """Put the job's id and state on the current (attempt) span."""
    span = current_recording_span()
    if span is None:
        return
    attributes: dict[str, str | int | bool] = {
        JOB_ID: job.id,
        JOB_STATE: job.state.value,
        JOB_POLLS: job.polls,
    }
    if job.queue_position is not None:
        attributes[JOB_QUEUE_POSITION] = job.queue_position
    if cancelled:
        attributes[JOB_CANCELLED] = True
    span.set_attributes(attributes)


async def follow(provider: JobProvider, platform: PlatformSpec, job: Job, polling: Polling) -> Job:
    """Poll ``job`` until it succeeds; see the module docstring for every other ending.

    In blocking mode (the synchronous API) the waits are ``time.sleep`` and the timeout is a
    deadline checked between polls; whatever stops the wait early (``KeyboardInterrupt``, a
    failed poll, the timeout) still cancels the job at the provider.

    The job is in ``provider._followed`` from submission to its end, so that closing the
    adapter cancels it (and the follower, finding it taken, stops without cancelling it
    again).
    """
    record(job)
    followed = provider._followed
    following = Following(provider, platform, job, polling)
    finished = False
    try:
        if not followed.add(following):
            raise _closed(provider)
        if blocking():
            job = await _poll_until_done(provider, platform, following, polling, time.monotonic())
            timed_out = not job.state.finished
        else:
            with anyio.move_on_after(polling.timeout) as deadline:
                job = await _poll_until_done(provider, platform, following, polling, None)
            timed_out = deadline.cancelled_caught
        if timed_out:
            raise Transient(
                f"{platform.name}: job still {job.provider_state} after {polling.timeout:g} s",
                status_code=None,
            )
        finished = True
    finally:
        # A job taken by the adapter's close is being cancelled there: not twice.
        if not followed.discard(following) and not finished:
            await _cancel(provider, platform, job, polling)
    if job.state is JobState.SUCCEEDED:
        return job
    raise job_error(platform, job)


async def _poll_until_done(
    provider: JobProvider,
    platform: PlatformSpec,
    following: Following,
    polling: Polling,
    started: float | None,
) -> Job:
    """Poll until the job finishes; with ``started`` (blocking mode), also until
    ``polling.timeout`` has passed since then (the job is returned unfinished). Each poll's
    answer updates ``following``."""
    job = following.job
    followed = provider._followed
    next_wait = polling.waits()
    errors = 0
    while not job.state.finished:
        wait = next_wait()
        if started is None:
            await anyio.sleep(wait)
        else:
            left = started + polling.timeout - time.monotonic()
            time.sleep(max(0.0, min(wait, left)))  # noqa: ASYNC251 - blocking mode, no loop
            if wait >= left:
                return job
        if following.taken:  # the adapter's close took the job (and cancels it): no more polls
            raise _closed(provider)
        try:
            polled = await provider.poll(platform, job)
        except Transient:
            errors += 1
            if errors > polling.poll_errors:
                raise
            continue
        errors = 0
        polled.polls = job.polls + 1
        job = polled
        followed.update(following, job)
        record(job)
    return job


async def _cancel(
    provider: JobProvider, platform: PlatformSpec, job: Job, polling: Polling
) -> None:
    """The follower's cancellation of a job whose wait stopped early (on the attempt span)."""
    if job.state.finished:
        return
    try:
        if await _send_cancel(provider, platform, job, polling):
            record(job, cancelled=True)
    except ProviderError:
        pass
    except RuntimeError:
        # The adapter closed under the follower (it cancelled what it still followed): the
        # closed client's error is not the attempt's.
        if not provider._followed.closed:
            raise


async def cancel_taken(following: Following) -> None:
    """Cancel at the provider a job the adapter's close took from its follower: within
    :attr:`Polling.cancel_seconds`, every error swallowed (closing goes on), no span work."""
    with contextlib.suppress(Exception):
        await _send_cancel(following.provider, following.platform, following.job, following.polling)


async def _send_cancel(
    provider: JobProvider, platform: PlatformSpec, job: Job, polling: Polling
) -> bool:
    """Ask the provider to cancel ``job``, within ``polling.cancel_seconds``: in a shielded
    scope, or in blocking mode (nothing to shield from) as the cancel request's timeout
    (httpx applies it to each of connecting, writing, reading and waiting for the pool)."""
    if blocking():
        token = REQUEST_TIMEOUT.set(polling.cancel_seconds)
        try:
            return await provider.cancel(platform, job)
        finally:
            REQUEST_TIMEOUT.reset(token)
    with anyio.CancelScope(shield=True), anyio.move_on_after(polling.cancel_seconds):
        return await provider.cancel(platform, job)
    return False


def _closed(provider: JobProvider) -> Closed:
    """The error of a job followed while its adapter closes (the adapter's own)."""
    return Closed(f"{type(provider).__name__} is closed")


def job_error(platform: PlatformSpec, job: Job) -> ProviderError:
    """The attempt's failure for a job that failed or was canceled at the provider."""
    detail = (job.error or job.provider_state)[:200]
    text = detail.lower()
    if any(word in text for word in (*CONTENT_POLICY_WORDS, *JOB_REFUSED_WORDS)):
        return BadRequest(
            f"{platform.name}: job {job.id} refused: {detail}",
            reason="content_policy",
            status_code=None,
        )
    return Transient(f"{platform.name}: job {job.id} {job.state.value}: {detail}", status_code=None)
