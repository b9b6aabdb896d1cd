"""The fake's image and video endpoints that go beyond one request and one answer: the jobs
of Replicate (predictions), FAL (queue) and Black Forest Labs (tasks), and the direct image
answers of OpenAI images, Pollinations and Hugging Face.

A :class:`JobScript` says how a platform's jobs run: how many polls they stay queued (with a
falling queue position), how many more they run, and how they end (``succeeded``,
``failed``, ``moderated``, or ``never``). The default finishes at once, as the server always
did: Replicate's creating request answers ``succeeded``. :class:`JobBook` holds every job the
server made and counts, per platform, submissions, polls and cancellations.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

from failover.testing.fake.shapes import FAKE_PNG, Reply, Request, json_reply

JobOutcome = Literal["succeeded", "failed", "moderated", "never"]
_OUTCOMES: Final = ("succeeded", "failed", "moderated", "never")

#: What the fake serves for a video (an MP4 ``ftyp`` box: enough to be recognised).
FAKE_MP4: Final = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_PNG_B64: Final = base64.b64encode(FAKE_PNG).decode()


@dataclass(frozen=True, slots=True)
class JobScript:
    """How a platform's jobs run: ``queued`` polls in the queue, then ``running`` polls at
    work, then ``outcome``. ``JobScript()`` finishes on submission."""

    queued: int = 0
    running: int = 0
    outcome: JobOutcome = "succeeded"

    def __post_init__(self) -> None:
        for name in ("queued", "running"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.outcome not in _OUTCOMES:
            raise ValueError(f"outcome must be one of {_OUTCOMES}, got {self.outcome!r}")


@dataclass(slots=True)
class FakeJob:
    id: str
    platform: str
    model: str
    video: bool
    script: JobScript
    polls: int = 0
    canceled: bool = False
    output: str = ""

    @property
    def phase(self) -> str:
        """``queued``, ``running``, ``canceled`` or the script's outcome."""
        if self.canceled:
            return "canceled"
        if self.polls < self.script.queued:
            return "queued"
        if self.polls < self.script.queued + self.script.running:
            return "running"
        return "running" if self.script.outcome == "never" else self.script.outcome

    @property
    def queue_position(self) -> int:
        return max(self.script.queued - self.polls - 1, 0)


@dataclass(slots=True)
class JobBook:
    """Every job the server made, and per platform what happened to them."""

    scripts: dict[str, JobScript] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def create(self, platform: str, model: str, rng: random.Random, server_url: str) -> FakeJob:
        job_id = f"{rng.getrandbits(100):025x}"
        video = "video" in model.lower()
        job = FakeJob(job_id, platform, model, video, self.scripts.get(platform, JobScript()))
        job.output = f"{server_url}/_files/{rng.getrandbits(64):016x}.{'mp4' if video else 'png'}"
        self.jobs[job_id] = job
        self.count(platform, "submitted")
        return job

    def poll(self, platform: str, job_id: str) -> FakeJob | None:
        job = self.jobs.get(job_id)
        if job is None or job.platform != platform:
            return None
        if job.phase in ("queued", "running"):
            job.polls += 1
        self.count(platform, "polls")
        return job

    def cancel(self, platform: str, job_id: str) -> FakeJob | None:
        job = self.jobs.get(job_id)
        if job is None or job.platform != platform:
            return None
        if job.phase in ("queued", "running"):
            job.canceled = True
            self.count(platform, "canceled")
        return job

    def count(self, platform: str, what: str) -> None:
        self.counts.setdefault(platform, Counter())[what] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        return {platform: dict(sorted(counts.items())) for platform, counts in self.counts.items()}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


# -- Replicate ----------------------------------------------------------------------------------

_REPLICATE_STATUS: Final = {
    "queued": "starting",
    "running": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "moderated": "failed",
    "canceled": "canceled",
}


def replicate_prediction(job: FakeJob, request: Request, server_url: str, status: int) -> Reply:
    body = request.json if isinstance(request.json, dict) and status == 201 else {}
    phase = job.phase
    error = None
    if phase == "failed":
        error = "CUDA out of memory. Tried to allocate 2.00 GiB"
    elif phase == "moderated":
        error = (
            "NSFW content detected in the output. Try running it again, or try a different prompt."
        )
    api = f"{server_url}/replicate/v1/predictions/{job.id}"
    version = body.get("version", "fake-version")
    return json_reply(
        status,
        {
            "id": job.id,
            "model": job.model,
            "version": version if isinstance(version, str) else "fake-version",
            "status": _REPLICATE_STATUS[phase],
            "output": [job.output] if phase == "succeeded" else None,
            "error": error,
            "logs": "",
            "created_at": _now(),
            "started_at": None if phase == "queued" else _now(),
            "completed_at": _now() if phase not in ("queued", "running") else None,
            "metrics": {"predict_time": 0.01} if phase == "succeeded" else {},
            "urls": {"get": api, "cancel": f"{api}/cancel"},
        },
    )


def replicate_not_found() -> Reply:
    return json_reply(404, {"detail": "Not found.", "status": 404, "title": "Not found"})


# -- FAL queue -----------------------------------------------------------------------------------


def fal_queue_status(job: FakeJob, app: str, server_url: str, *, submitted: bool = False) -> Reply:
    """A status answer; a submission is always ``IN_QUEUE``, as FAL answers one."""
    root = f"{server_url}/fal/queue/{'/'.join(app.split('/')[:2])}/requests/{job.id}"
    phase = "queued" if submitted else job.phase
    word = {"queued": "IN_QUEUE", "running": "IN_PROGRESS"}.get(phase, "COMPLETED")
    body: dict[str, object] = {
        "status": word,
        "request_id": job.id,
        "response_url": root,
        "status_url": f"{root}/status",
        "cancel_url": f"{root}/cancel",
    }
    if word == "IN_QUEUE":
        body["queue_position"] = job.queue_position
    if word == "COMPLETED":
        body["logs"] = None
        body["metrics"] = {"inference_time": 0.01}
    return json_reply(200, body)


def fal_queue_result(job: FakeJob) -> Reply:
    phase = job.phase
    if phase in ("queued", "running"):
        return json_reply(400, {"detail": "Request is still in progress"})
    if phase == "canceled":
        return json_reply(400, {"detail": "Request was cancelled"})
    if phase == "failed":
        return json_reply(500, {"detail": "Internal Server Error"})
    if phase == "moderated":
        return json_reply(
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "prompt"],
                        "msg": "The content could not be processed because it contained "
                        "material flagged by a content checker.",
                        "type": "content_policy_violation",
                    }
                ]
            },
        )
    if job.video:
        return json_reply(
            200, {"video": {"url": job.output, "content_type": "video/mp4"}, "seed": 1}
        )
    return json_reply(
        200,
        {
            "images": [{"url": job.output, "width": 8, "height": 8, "content_type": "image/png"}],
            "seed": 1,
            "has_nsfw_concepts": [False],
            "timings": {"inference": 0.01},
        },
    )


def fal_cancel(job: FakeJob) -> Reply:
    if job.canceled:
        return json_reply(202, {"status": "CANCELLATION_REQUESTED"})
    return json_reply(400, {"status": "ALREADY_COMPLETED"})


# -- Black Forest Labs ----------------------------------------------------------------------

_BFL_STATUS: Final = {
    "queued": "Pending",
    "running": "Pending",
    "succeeded": "Ready",
    "failed": "Error",
    "moderated": "Content Moderated",
    "canceled": "Error",
}


def bfl_submitted(job: FakeJob, server_url: str) -> Reply:
    polling = f"{server_url}/flux_pro/v1/get_result?id={job.id}"
    return json_reply(200, {"id": job.id, "polling_url": polling})


def bfl_result(job: FakeJob | None, job_id: str) -> Reply:
    if job is None:
        return json_reply(200, {"id": job_id, "status": "Task not found", "result": None})
    status = _BFL_STATUS[job.phase]
    result = {"sample": job.output, "prompt": ""} if status == "Ready" else None
    return json_reply(200, {"id": job.id, "status": status, "result": result, "progress": None})


# -- direct image answers ---------------------------------------------------------------------


def openai_images(request: Request, rng: random.Random, server_url: str) -> Reply:
    data = request.json if isinstance(request.json, dict) else {}
    item: dict[str, object]
    if data.get("response_format") == "url":
        item = {"url": f"{server_url}/_files/{rng.getrandbits(64):016x}.png"}
    else:
        item = {"b64_json": _PNG_B64}
    answer: dict[str, object] = {"created": int(time.time()), "data": [item]}
    if "response_format" not in data:
        answer["output_format"] = "png"
    return json_reply(200, answer)


def image_bytes() -> Reply:
    return Reply(200, FAKE_PNG, content_type="image/png")
