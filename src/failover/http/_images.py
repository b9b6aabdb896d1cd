"""Image APIs that answer a request with the image itself: Stability (v2beta stable-image),
OpenAI images, Pollinations and Hugging Face Inference."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx

from failover._core.errors import BadRequest, Transient
from failover._core.spec import PlatformSpec
from failover.http import _check_plans
from failover.http._check import CheckPlan
from failover.http._media_base import ERASE, GENERATE, INPAINT, MediaAdapter
from failover.http._media_input import ImageInfo
from failover.http._media_result import MediaResult

#: What OpenAI's edit endpoint is asked to do for :meth:`OpenAIImages.erase` (it needs a prompt).
ERASE_PROMPT: Final = "Remove what is in the masked area and fill it in from its surroundings."
#: Stability's aspect ratios; a width and height are sent as the nearest one.
STABILITY_ASPECT_RATIOS: Final = (
    "21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21",
)  # fmt: skip


def _options(options: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The named options that were given (not ``None``)."""
    return {name: options[name] for name in names if options.get(name) is not None}


def _result(
    platform: PlatformSpec, response: httpx.Response, *, seed: int | None = None
) -> MediaResult:
    media_type = response.headers.get("content-type", "image/png").partition(";")[0].strip()
    if not media_type.startswith(("image/", "video/")):
        raise Transient(
            f"{platform.name}: expected an image, got {media_type or 'no content type'}",
            status_code=response.status_code,
        )
    return MediaResult(
        response.content,
        media_type,
        platform.name,
        platform.model,
        platform.estimated_cost or None,
        seed=seed,
    )


class StabilityImages(MediaAdapter):
    """Stability AI's v2beta stable-image API: multipart form posts with
    ``Authorization: Bearer <key>`` and ``Accept: image/*``; the image comes back as bytes.

    ``generate`` posts to ``generate/ultra``, ``generate/core`` or ``generate/sd3`` (chosen by
    the platform's model: ``ultra``, ``core``, else an SD3 model such as ``sd3.5-large``,
    ``sd-3.5-large`` also accepted); ``inpaint`` and ``erase`` to ``edit/inpaint`` and
    ``edit/erase``. A ``finish-reason: CONTENT_FILTERED`` answer (a blurred image) is the
    request's fault: ``BadRequest(reason="content_policy")``.
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {"stability": "https://api.stability.ai"}
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, INPAINT, ERASE})

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        model = platform.model.lower()
        form: dict[str, Any] = {"prompt": prompt, **_options(options, "negative_prompt", "seed")}
        if model in ("ultra", "core"):
            endpoint = model
        else:
            endpoint = "sd3"
            form["model"] = model.replace("sd-3", "sd3", 1)
        form["output_format"] = _stability_format(options["output_format"], endpoint)
        ratio = _aspect_ratio(options.get("width"), options.get("height"))
        if ratio is not None:
            form["aspect_ratio"] = ratio
        form.update(options.get("extra", {}))
        # A multipart body is required even without a file.
        files = {"none": ("", b"")}
        return await self._post(platform, f"v2beta/stable-image/generate/{endpoint}", form, files)

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        form = {
            "prompt": prompt,
            "output_format": _stability_format(options["output_format"], "edit"),
            **_options(options, "negative_prompt", "seed"),
            **options.get("extra", {}),
        }
        files = _image_files(image, mask, info)
        return await self._post(platform, "v2beta/stable-image/edit/inpaint", form, files)

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        form = {
            "output_format": _stability_format(options["output_format"], "edit"),
            **_options(options, "seed"),
            **options.get("extra", {}),
        }
        files = _image_files(image, mask, info)
        return await self._post(platform, "v2beta/stable-image/edit/erase", form, files)

    async def _post(
        self, platform: PlatformSpec, path: str, form: Mapping[str, Any], files: Mapping[str, Any]
    ) -> MediaResult:
        data = {name: str(value) for name, value in form.items()}
        response = await self.request(
            platform, "POST", path, data=data, files=files, headers={"accept": "image/*"}
        )
        if response.headers.get("finish-reason", "SUCCESS") == "CONTENT_FILTERED":
            raise BadRequest(
                f"{platform.name}: the image was filtered by content moderation",
                reason="content_policy",
                status_code=response.status_code,
            )
        seed = response.headers.get("seed")
        return _result(platform, response, seed=int(seed) if seed and seed.isdigit() else None)

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET /v1/user/balance``: the key and the credits left."""
        return _check_plans.stability()


def _stability_format(output_format: str, endpoint: str) -> str:
    # SD3 writes png and jpeg only; the result's media type says what came back.
    return "png" if endpoint == "sd3" and output_format == "webp" else output_format


def _aspect_ratio(width: int | None, height: int | None) -> str | None:
    if width is None or height is None:
        return None

    def distance(ratio: str) -> float:
        across, down = ratio.split(":")
        return abs(int(across) / int(down) - width / height)

    return min(STABILITY_ASPECT_RATIOS, key=distance)


def _image_files(image: bytes, mask: bytes, info: ImageInfo) -> dict[str, Any]:
    return {
        "image": (f"image.{info.extension}", image, info.media_type),
        "mask": ("mask.png", mask, "application/octet-stream"),
    }


class OpenAIImages(MediaAdapter):
    """OpenAI's images API: ``POST images/generations`` (JSON) and ``images/edits``
    (multipart), ``Authorization: Bearer <key>``; the image comes back base64 in
    ``data[0].b64_json`` (or as ``data[0].url``).

    OpenAI's mask marks the area to edit as *transparent* pixels of a PNG (the other adapters
    repaint where the mask is white). ``erase`` is an edit with :data:`ERASE_PROMPT`.
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {"openai": "https://api.openai.com/v1"}
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, INPAINT, ERASE})

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        body: dict[str, Any] = {"model": platform.model, "prompt": prompt, "n": 1}
        body.update(self._format(platform, options))
        size = _size(options)
        if size is not None:
            body["size"] = size
        body.update(options.get("extra", {}))
        response = await self.request(platform, "POST", "images/generations", json=body)
        return await self._answer(platform, response, options)

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        form: dict[str, Any] = {"model": platform.model, "prompt": prompt, "n": 1}
        form.update(self._format(platform, options))
        size = _size(options)
        if size is not None:
            form["size"] = size
        form.update(options.get("extra", {}))
        files = {
            "image": (f"image.{info.extension}", image, info.media_type),
            "mask": ("mask.png", mask, "image/png"),
        }
        data = {name: str(value) for name, value in form.items()}
        response = await self.request(platform, "POST", "images/edits", data=data, files=files)
        return await self._answer(platform, response, options)

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        return await self.inpaint(platform, image, mask, ERASE_PROMPT, info, options)

    @staticmethod
    def _format(platform: PlatformSpec, options: Mapping[str, Any]) -> dict[str, str]:
        if platform.model.startswith("dall-e"):
            return {"response_format": "b64_json"}
        return {"output_format": options["output_format"]}

    async def _answer(
        self, platform: PlatformSpec, response: httpx.Response, options: Mapping[str, Any]
    ) -> MediaResult:
        data = await self.json_of(platform, response)
        try:
            item = data["data"][0]
        except (KeyError, IndexError, TypeError):
            raise Transient(f"{platform.name}: no image in the answer", status_code=None) from None
        encoded = item.get("b64_json") if isinstance(item, Mapping) else None
        if isinstance(encoded, str):
            try:
                image = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise Transient(
                    f"{platform.name}: malformed image data", status_code=None
                ) from None
            fmt = data.get("output_format") or options["output_format"]
            return MediaResult(
                image,
                f"image/{fmt}",
                platform.name,
                platform.model,
                platform.estimated_cost or None,
            )
        url = item.get("url") if isinstance(item, Mapping) else None
        return await self.from_link(platform, url, "image/png")

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET models/{model}``."""
        base_url = self.base_url_for(platform.name)
        return _check_plans.openai_compatible("openai", platform.model, base_url)


def _size(options: Mapping[str, Any]) -> str | None:
    width, height = options.get("width"), options.get("height")
    return None if width is None or height is None else f"{width}x{height}"


class PollinationsImages(MediaAdapter):
    """Pollinations: ``GET /prompt/<prompt>?width=&height=&seed=&model=&nologo=true``, no
    key; the image comes back as bytes. The platform's model is sent unless it is ``free``
    (the built-in table's name for Pollinations' default model)."""

    default_base_urls: ClassVar[Mapping[str, str]] = {
        "pollinations": "https://image.pollinations.ai"
    }
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE})

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        params: dict[str, Any] = {**_options(options, "width", "height", "seed"), "nologo": "true"}
        if platform.model != "free":
            params["model"] = platform.model
        if options.get("negative_prompt"):
            params["negative_prompt"] = options["negative_prompt"]
        params.update(options.get("extra", {}))
        path = "prompt/" + quote(prompt, safe="")
        response = await self.request(platform, "GET", path, params=params)
        return _result(platform, response, seed=options.get("seed"))

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET /models`` (keyless): the model is in the list."""
        return _check_plans.pollinations(platform.model)


class HuggingFaceImages(MediaAdapter):
    """Hugging Face Inference: ``POST /models/<model>`` with ``{"inputs": prompt,
    "parameters": {...}}``; the image comes back as bytes.

    The token is optional (the built-in table declares the platform keyless): ``HF_TOKEN`` is
    sent as ``Authorization: Bearer`` when it is set. The model ``free`` stands for
    :attr:`default_model`.
    """

    default_base_urls: ClassVar[Mapping[str, str]] = {
        "huggingface": "https://api-inference.huggingface.co"
    }
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE})
    optional_key_env: ClassVar[str | None] = "HF_TOKEN"
    default_model: ClassVar[str] = "black-forest-labs/FLUX.1-schnell"

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        model = self.default_model if platform.model == "free" else platform.model
        parameters = {**_options(options, "width", "height", "seed", "negative_prompt")}
        parameters.update(options.get("extra", {}))
        body: dict[str, Any] = {"inputs": prompt}
        if parameters:
            body["parameters"] = parameters
        accept = f"image/{options['output_format']}"
        response = await self.request(
            platform, "POST", f"models/{model}", json=body, headers={"accept": accept}
        )
        return _result(platform, response, seed=options.get("seed"))

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """The Hub's ``whoami-v2`` (when ``HF_TOKEN`` is set) and model info."""
        model = self.default_model if platform.model == "free" else platform.model
        return _check_plans.huggingface(model, self.base_url_for(platform.name))
