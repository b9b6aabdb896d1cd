"""Image and video APIs that run jobs: Replicate predictions, the FAL queue and Black Forest
Labs' FLUX tasks. Each submits, then :func:`~failover.http._jobs.follow` polls and cancels."""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from failover._core.errors import Transient
from failover._core.spec import PlatformSpec
from failover.http import _check_plans
from failover.http._check import CheckPlan
from failover.http._jobs import Job, JobState, follow
from failover.http._media_base import ERASE, GENERATE, INPAINT, VIDEO, MediaAdapter
from failover.http._media_input import ImageInfo
from failover.http._media_result import MediaResult

_VERSION: Final = re.compile(r"^[0-9a-f]{64}$")


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _guess_type(url: object, fallback: str) -> str:
    if isinstance(url, str):
        guessed, _ = mimetypes.guess_type(url.partition("?")[0])
        if guessed:
            return guessed
    return fallback


def _inputs(options: Mapping[str, Any], *names: str) -> dict[str, Any]:
    given = {name: options[name] for name in names if options.get(name) is not None}
    return {**given, **options.get("extra", {})}


class ReplicatePredictions(MediaAdapter):
    """Replicate's predictions API, ``Authorization: Bearer <key>``.

    A model named ``owner/name`` is run through ``POST /v1/models/owner/name/predictions``;
    ``owner/name:version`` or a bare 64-hex version through ``POST /v1/predictions``. The
    request asks ``Prefer: wait`` (Replicate holds it up to a minute); an unfinished
    prediction is polled at ``GET /v1/predictions/<id>`` and cancelled at
    ``POST /v1/predictions/<id>/cancel``. States: starting, processing, succeeded, failed,
    canceled. :attr:`aliases` maps the built-in table's short names to real models.
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {"replicate": "https://api.replicate.com"}
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, INPAINT, ERASE, VIDEO})
    aliases: ClassVar[Mapping[tuple[str, str], str]] = {
        (GENERATE, "flux"): "black-forest-labs/flux-schnell",
        (INPAINT, "flux"): "black-forest-labs/flux-fill-pro",
        (ERASE, "flux"): "black-forest-labs/flux-fill-pro",
    }
    #: How long Replicate may hold the creating request (``Prefer: wait=<seconds>``, 1-60).
    wait_seconds: ClassVar[int] = 60

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        inputs = {"prompt": prompt, **_inputs(options, "width", "height", "seed")}
        inputs["output_format"] = options["output_format"]
        return await self._run(platform, GENERATE, inputs, "image/png")

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        inputs = {
            "image": data_uri(image, info.media_type),
            "mask": data_uri(mask, "image/png"),
            "prompt": prompt,
            "output_format": options["output_format"],
            **_inputs(options, "seed"),
        }
        return await self._run(platform, INPAINT, inputs, "image/png")

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        inputs = {
            "image": data_uri(image, info.media_type),
            "mask": data_uri(mask, "image/png"),
            "output_format": options["output_format"],
            **_inputs(options, "seed"),
        }
        return await self._run(platform, ERASE, inputs, "image/png")

    async def generate_video(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        inputs = {"prompt": prompt, **_inputs(options, "seed", "duration")}
        return await self._run(platform, VIDEO, inputs, "video/mp4")

    async def _run(
        self, platform: PlatformSpec, task: str, inputs: dict[str, Any], media_type: str
    ) -> MediaResult:
        model = self.aliases.get((task, platform.model), platform.model)
        owner_name, _, version = model.partition(":")
        if _VERSION.match(owner_name):
            owner_name, version = "", owner_name
        if version:
            path, body = "v1/predictions", {"version": version, "input": inputs}
        else:
            path, body = f"v1/models/{owner_name}/predictions", {"input": inputs}
        prefer = {"prefer": f"wait={self.wait_seconds}"}
        response = await self.request(platform, "POST", path, json=body, headers=prefer)
        submitted = self._job(await self.json_of(platform, response))
        job = await follow(self, platform, submitted, self.polling)
        output = job.data.get("output")
        url = output[0] if isinstance(output, list) and output else output
        return await self.from_link(platform, url, _guess_type(url, media_type), job_id=job.id)

    async def poll(self, platform: PlatformSpec, job: Job) -> Job:
        url = _link(job, "get") or f"v1/predictions/{job.id}"
        response = await self.request(platform, "GET", url)
        return self._job(await self.json_of(platform, response))

    async def cancel(self, platform: PlatformSpec, job: Job) -> bool:
        url = _link(job, "cancel") or f"v1/predictions/{job.id}/cancel"
        await self.request(platform, "POST", url)
        return True

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET /v1/account``, then each model the platform's name stands for (an alias
        of the built-in table names one model per task)."""
        aliased = [
            self.aliases[(task, platform.model)]
            for task in sorted(self.capabilities)
            if (task, platform.model) in self.aliases
        ]
        return _check_plans.replicate(list(dict.fromkeys(aliased)) or [platform.model])

    @staticmethod
    def _job(data: Any) -> Job:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise Transient("replicate: the answer is not a prediction", status_code=None)
        status = str(data.get("status"))
        state = _REPLICATE_STATES.get(status, JobState.RUNNING)
        error = data.get("error")
        return Job(data["id"], state, status, data, error=str(error) if error else None)


_REPLICATE_STATES: Final = {
    "starting": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
    "aborted": JobState.CANCELED,
}


def _link(job: Job, name: str) -> str | None:
    urls = job.data.get("urls")
    link = urls.get(name) if isinstance(urls, Mapping) else job.data.get(name)
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


class FalQueue(MediaAdapter):
    """FAL's queue API, ``Authorization: Key <key>``.

    ``POST https://queue.fal.run/<app>`` submits (the answer names ``request_id`` and its
    ``status_url``, ``response_url`` and ``cancel_url``); ``GET .../requests/<id>/status``
    reports ``IN_QUEUE`` (with ``queue_position``), ``IN_PROGRESS`` or ``COMPLETED``;
    ``GET .../requests/<id>`` returns the result; ``PUT .../requests/<id>/cancel`` cancels.
    The app is the platform's model when it has a ``/`` (``fal-ai/flux/schnell``), else
    ``fal-ai/<model>`` (``fal-ai/<model>/inpaint`` for edits).
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {"fal": "https://queue.fal.run"}
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, INPAINT, ERASE, VIDEO})

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Key {key}"}

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        inputs = {"prompt": prompt, **_inputs(options, "seed", "negative_prompt")}
        if options.get("width") and options.get("height"):
            inputs["image_size"] = {"width": options["width"], "height": options["height"]}
        inputs["output_format"] = options["output_format"]
        return await self._run(platform, self._app(platform, ""), inputs, "image/png")

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        inputs = {
            "image_url": data_uri(image, info.media_type),
            "mask_url": data_uri(mask, "image/png"),
            "prompt": prompt,
            **_inputs(options, "seed"),
        }
        return await self._run(platform, self._app(platform, "/inpaint"), inputs, "image/png")

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        inputs = {
            "image_url": data_uri(image, info.media_type),
            "mask_url": data_uri(mask, "image/png"),
            **_inputs(options, "seed"),
        }
        return await self._run(platform, self._app(platform, "/inpaint"), inputs, "image/png")

    async def generate_video(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        inputs = {"prompt": prompt, **_inputs(options, "seed", "duration")}
        return await self._run(platform, self._app(platform, ""), inputs, "video/mp4")

    @staticmethod
    def _app(platform: PlatformSpec, suffix: str) -> str:
        model = platform.model
        return model if "/" in model else f"fal-ai/{model}{suffix}"

    async def _run(
        self, platform: PlatformSpec, app: str, inputs: dict[str, Any], media_type: str
    ) -> MediaResult:
        response = await self.request(platform, "POST", app, json=inputs)
        submitted = self._job(await self.json_of(platform, response), app)
        job = await follow(self, platform, submitted, self.polling)
        url = job.data.get("response_url")
        result_url = url if isinstance(url, str) else f"{_app_root(app)}/requests/{job.id}"
        result = await self.json_of(platform, await self.request(platform, "GET", result_url))
        link, kind = _fal_output(result, media_type)
        return await self.from_link(platform, link, kind, job_id=job.id)

    async def poll(self, platform: PlatformSpec, job: Job) -> Job:
        url = job.data.get("status_url")
        app = str(job.data.get("_app", ""))
        status_url = url if isinstance(url, str) else f"{_app_root(app)}/requests/{job.id}/status"
        response = await self.request(platform, "GET", status_url)
        data = {**job.data, **(await self.json_of(platform, response))}
        return self._job(data, app)

    async def cancel(self, platform: PlatformSpec, job: Job) -> bool:
        url = job.data.get("cancel_url")
        app = str(job.data.get("_app", ""))
        cancel_url = url if isinstance(url, str) else f"{_app_root(app)}/requests/{job.id}/cancel"
        await self.request(platform, "PUT", cancel_url)
        return True

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """Nothing is sent: FAL has no read-only request that checks a key."""
        return _check_plans.fal()

    @staticmethod
    def _job(data: Any, app: str) -> Job:
        if not isinstance(data, Mapping) or not isinstance(data.get("request_id"), str):
            raise Transient("fal: the answer is not a queued request", status_code=None)
        status = str(data.get("status", "IN_QUEUE"))
        state = _FAL_STATES.get(status, JobState.RUNNING)
        position = data.get("queue_position")
        error = data.get("error")
        if state is JobState.SUCCEEDED and error:
            state = JobState.FAILED
        return Job(
            data["request_id"],
            state,
            status,
            {**data, "_app": app},
            queue_position=position if isinstance(position, int) else None,
            error=str(error) if error else None,
        )


_FAL_STATES: Final = {
    "IN_QUEUE": JobState.QUEUED,
    "IN_PROGRESS": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
}


def _app_root(app: str) -> str:
    """FAL addresses a request under the app's first two path segments (``fal-ai/flux``)."""
    return "/".join(app.split("/")[:2])


def _fal_output(result: Any, media_type: str) -> tuple[object, str]:
    if not isinstance(result, Mapping):
        return None, media_type
    for key in ("images", "image", "video"):
        item = result.get(key)
        if isinstance(item, list):
            item = item[0] if item else None
        if isinstance(item, Mapping):
            kind = item.get("content_type")
            return item.get("url"), kind if isinstance(kind, str) else media_type
    return None, media_type


class BlackForestLabs(MediaAdapter):
    """Black Forest Labs' FLUX API, ``x-key: <key>``.

    ``POST /v1/<model>`` submits a task (the answer is ``{id, polling_url}``);
    ``GET /v1/get_result?id=<id>`` reports ``Pending``, ``Ready`` (with ``result.sample``, a
    link valid for ten minutes), ``Error``, ``Request Moderated``, ``Content Moderated`` or
    ``Task not found``. Edits go to ``flux-pro-1.0-fill``. The API has no cancel endpoint:
    a task keeps running (and is billed) once submitted, so cancelling only stops the wait.
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {"flux_pro": "https://api.bfl.ml"}
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, INPAINT, ERASE})
    aliases: ClassVar[Mapping[str, str]] = {"flux-schnell": "flux-dev"}
    fill_model: ClassVar[str] = "flux-pro-1.0-fill"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-key": key}

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        body = {"prompt": prompt, **_inputs(options, "width", "height", "seed")}
        body["output_format"] = "jpeg" if options["output_format"] == "jpeg" else "png"
        model = self.aliases.get(platform.model, platform.model)
        return await self._run(platform, model, body)

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        body = {
            "image": base64.b64encode(image).decode(),
            "mask": base64.b64encode(mask).decode(),
            "prompt": prompt,
            **_inputs(options, "seed"),
        }
        return await self._run(platform, self.fill_model, body)

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        return await self.inpaint(platform, image, mask, "", info, options)

    async def _run(self, platform: PlatformSpec, model: str, body: dict[str, Any]) -> MediaResult:
        response = await self.request(platform, "POST", f"v1/{model}", json=body)
        data = await self.json_of(platform, response)
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise Transient(f"{platform.name}: the answer is not a task", status_code=None)
        submitted = Job(data["id"], JobState.QUEUED, "Pending", data)
        job = await follow(self, platform, submitted, self.polling)
        result = job.data.get("result")
        link = result.get("sample") if isinstance(result, Mapping) else None
        return await self.from_link(platform, link, _guess_type(link, "image/jpeg"), job_id=job.id)

    async def poll(self, platform: PlatformSpec, job: Job) -> Job:
        url = job.data.get("polling_url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            response = await self.request(platform, "GET", url)
        else:
            response = await self.request(platform, "GET", "v1/get_result", params={"id": job.id})
        data = await self.json_of(platform, response)
        if not isinstance(data, Mapping):
            raise Transient(f"{platform.name}: the answer is not a task", status_code=None)
        status = str(data.get("status"))
        state = _BFL_STATES.get(status, JobState.FAILED)
        merged = {**job.data, **data}
        return Job(job.id, state, status, merged, error=status if state.finished else None)

    async def cancel(self, platform: PlatformSpec, job: Job) -> bool:
        """Nothing to call: BFL cannot cancel a task."""
        return False

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET /v1/credits``: the key and the credits left."""
        return _check_plans.black_forest_labs()


_BFL_STATES: Final = {
    "Pending": JobState.RUNNING,
    "Ready": JobState.SUCCEEDED,
    "Error": JobState.FAILED,
    "Request Moderated": JobState.FAILED,
    "Content Moderated": JobState.FAILED,
    "Task not found": JobState.FAILED,
}
