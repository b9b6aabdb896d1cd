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
* The attempt span carries ``failover.job.id``, ``failover.job.state``,
  ``failover.job.polls`` and, while queued, ``failover.job.queue_position``; a job cancelled
  at the provider adds ``failover.job.cancelled``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol

import anyio

from failover._core import validate
from failover._core.classify.providers import CONTENT_POLICY_WORDS, JOB_REFUSED_WORDS
from failover._core.errors import BadRequest, ProviderError, Transient
from failover._core.spec import PlatformSpec
from failover._observe.telemetry import current_recording_span
from failover.http._blocking import blocking

JOB_ID: Final = "failover.job.id"
JOB_STATE: Final = "failover.job.state"
JOB_POLLS: Final = "failover.job.polls"
JOB_QUEUE_POSITION: Final = "failover.job.queue_position"
JOB_CANCELLED: Final = "failover.job.cancelled"


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


class JobProvider(Protocol):
    """What :func:`follow` needs from a provider's adapter."""

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
    """
    record(job)
    finished = False
    try:
        if blocking():
            job = await _poll_until_done(provider, platform, job, polling, time.monotonic())
            timed_out = not job.state.finished
        else:
            with anyio.move_on_after(polling.timeout) as deadline:
                job = await _poll_until_done(provider, platform, job, polling, None)
            timed_out = deadline.cancelled_caught
        if timed_out:
            raise Transient(
                f"{platform.name}: job still {job.provider_state} after {polling.timeout:g} s",
                status_code=None,
            )
        finished = True
    finally:
        if not finished:
            await _cancel(provider, platform, job, polling)
    if job.state is JobState.SUCCEEDED:
        return job
    raise job_error(platform, job)


async def _poll_until_done(
    provider: JobProvider,
    platform: PlatformSpec,
    job: Job,
    polling: Polling,
    started: float | None,
) -> Job:
    """Poll until the job finishes; with ``started`` (blocking mode), also until
    ``polling.timeout`` has passed since then (the job is returned unfinished)."""
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
        record(job)
    return job


async def _cancel(
    provider: JobProvider, platform: PlatformSpec, job: Job, polling: Polling
) -> None:
    if job.state.finished:
        return
    if blocking():  # nothing to shield from; the client's timeout bounds the request
        with contextlib.suppress(ProviderError):
            if await provider.cancel(platform, job):
                record(job, cancelled=True)
        return
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(polling.cancel_seconds),
        contextlib.suppress(ProviderError),
    ):
        if await provider.cancel(platform, job):
            record(job, cancelled=True)


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
