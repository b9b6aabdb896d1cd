"""``ImageGeneration``, ``ImageEditing``, ``VideoGeneration``: image and video calls down the
manager's fallback chain, each in one object (like ``TextGeneration`` for text)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from failover._core.errors import ConfigError
from failover._core.spec import IMAGE_EDITING, IMAGE_GENERATION, VIDEO_GENERATION, PlatformSpec
from failover.http._blocking import run_blocking
from failover.http._check import FacadeChecks
from failover.http._images import (
    HuggingFaceImages,
    OpenAIImages,
    PollinationsImages,
    StabilityImages,
)
from failover.http._jobs import Polling
from failover.http._media_base import ERASE, GENERATE, INPAINT, VIDEO, MediaAdapter
from failover.http._media_input import (
    check_mask,
    check_output_format,
    check_prompt,
    check_size,
    image_info,
)
from failover.http._media_jobs import BlackForestLabs, FalQueue, ReplicatePredictions
from failover.http._media_result import MediaResult

if TYPE_CHECKING:
    from failover._manager import PlatformManager

#: The adapter each well-known platform name speaks.
MEDIA_ADAPTERS: Final[Mapping[str, type[MediaAdapter]]] = {
    "stability": StabilityImages,
    "openai": OpenAIImages,
    "pollinations": PollinationsImages,
    "huggingface": HuggingFaceImages,
    "replicate": ReplicatePredictions,
    "fal": FalQueue,
    "flux_pro": BlackForestLabs,
}


class _MediaOperation(FacadeChecks):
    """The shared part: one adapter per platform of the operation, checked at construction
    for what the operation needs; their clients close with the manager."""

    default_operation: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        manager: PlatformManager | None = None,
        adapters: Mapping[str, MediaAdapter] | None = None,
        *,
        operation: str | None = None,
        base_urls: Mapping[str, str] | None = None,
        polling: Polling | None = None,
        download: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if manager is None:
            from failover import default_manager

            manager = default_manager()
        if environ is None:
            environ = manager.environ  # the keys the manager counts as present are the ones sent
        operation = operation or self.default_operation
        names = [spec.name for spec in manager.platforms(operation)]
        adapters = dict(adapters or {})
        base_urls = dict(base_urls or {})
        for label, mapping in (("adapters", adapters), ("base_urls", base_urls)):
            unknown = sorted(set(mapping) - set(names))
            if unknown:
                raise ConfigError(
                    f"{label} names {unknown[0]!r}, which is not a platform of {operation!r} "
                    f"(platforms: {', '.join(names) or '(none)'})",
                    key=label,
                )
        self._adapters: dict[str, MediaAdapter] = {}
        for name in names:
            given, base_url = adapters.get(name), base_urls.get(name)
            self._adapters[name] = self._adapter_for(
                name, given, base_url, polling=polling, download=download, environ=environ
            )
        self.manager = manager
        self.operation = operation
        manager.add_closer(self.aclose, blocking=self.close)

    def _adapter_for(
        self,
        name: str,
        given: MediaAdapter | None,
        base_url: str | None,
        **options: Any,
    ) -> MediaAdapter:
        if given is not None and not isinstance(given, MediaAdapter):
            raise ConfigError(
                f"adapters[{name!r}] must be a MediaAdapter such as StabilityImages(), "
                f"got {type(given).__name__}",
                key=name,
            )
        adapter = given
        if adapter is None:
            kind = MEDIA_ADAPTERS.get(name)
            if kind is None:
                raise ConfigError(
                    f"no image or video adapter for platform {name!r}: pass "
                    f"adapters={{{name!r}: ReplicatePredictions(base_url=...)}} or similar "
                    f"(known: {', '.join(MEDIA_ADAPTERS)})",
                    key=name,
                )
            adapter = kind(base_url, **options)
        missing = sorted(self.needs - adapter.capabilities)
        if missing:
            raise ConfigError(
                f"{type(adapter).__name__} for platform {name!r} cannot {missing[0]}, which "
                f"{type(self).__name__} needs",
                key=name,
            )
        return adapter

    def adapter(self, platform: PlatformSpec | str) -> MediaAdapter:
        """The adapter that calls ``platform``."""
        name = platform.name if isinstance(platform, PlatformSpec) else platform
        try:
            return self._adapters[name]
        except KeyError:
            raise ConfigError(
                f"platform {name!r} is not a platform of {self.operation!r} "
                f"(platforms: {', '.join(self._adapters) or '(none)'})",
                key=name,
            ) from None

    def _through_chain_sync(
        self,
        attempt: Callable[..., Coroutine[Any, Any, MediaResult]],
        args: tuple[Any, ...],
        context: Mapping[str, Any],
    ) -> MediaResult:
        """The synchronous chain: each attempt runs the async adapter code with blocking I/O
        (see ``_blocking``), so the two APIs share every request and parse."""

        def blocking_attempt(platform: PlatformSpec, *args: Any) -> MediaResult:
            return run_blocking(attempt(platform, *args))

        result: MediaResult
        result, _ = self.manager.with_fallback_sync(
            self.operation, blocking_attempt, *args, **context
        )
        return result

    def _book(self, platform: PlatformSpec, result: MediaResult) -> MediaResult:
        if result.cost:
            self.manager.record_cost(platform, self.operation, result.cost)
        return result

    async def aclose(self) -> None:
        """Close every adapter's clients. Run by the manager's ``aclose``; safe twice."""
        for adapter in dict.fromkeys(self._adapters.values()):
            await adapter.aclose()

    def close(self) -> None:
        """Close every adapter's synchronous clients. Run by the manager's ``close``."""
        for adapter in dict.fromkeys(self._adapters.values()):
            adapter.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.operation}: {', '.join(self._adapters)}>"


def _options(
    output_format: object,
    width: object,
    height: object,
    seed: object,
    negative_prompt: object,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The checked options every adapter method receives."""
    check_size(width, height)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        from failover.http._base import InvalidArgument

        raise InvalidArgument(f"seed must be an int >= 0, got {seed!r}")
    if negative_prompt is not None:
        check_prompt(negative_prompt)
    return {
        "output_format": check_output_format(output_format),
        "width": width,
        "height": height,
        "seed": seed,
        "negative_prompt": negative_prompt,
        "extra": dict(extra),
    }


class ImageGeneration(_MediaOperation):
    """Images from whichever ``image_generation`` platform is healthy now::

        async with PlatformManager() as manager:          # the built-in table
            images = ImageGeneration(manager)
            picture = await images.generate("a lighthouse at dawn", width=1024, height=768)
            print(picture.platform, picture.media_type, len(picture.data))

    Each platform gets its adapter (``adapters[name]``, else the well-known name's:
    :data:`MEDIA_ADAPTERS`); ``base_urls[name]`` overrides an address. Options: ``width``,
    ``height``, ``output_format`` (png, jpeg, webp), ``seed``, ``negative_prompt`` and any
    extra field of the provider's request. Bad options raise ``InvalidArgument`` before
    anything is sent.
    """

    default_operation: ClassVar[str] = IMAGE_GENERATION
    needs: ClassVar[frozenset[str]] = frozenset({GENERATE})

    async def generate(
        self,
        prompt: str,
        *,
        width: int | None = None,
        height: int | None = None,
        output_format: str = "png",
        seed: int | None = None,
        negative_prompt: str | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """One image from the first platform that makes one (``result.platform`` says which)."""
        check_prompt(prompt)
        options = _options(output_format, width, height, seed, negative_prompt, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        result: MediaResult
        result, _ = await self.manager.with_fallback(
            self.operation, self._generate_on, prompt, options, **context
        )
        return result

    def generate_sync(
        self,
        prompt: str,
        *,
        width: int | None = None,
        height: int | None = None,
        output_format: str = "png",
        seed: int | None = None,
        negative_prompt: str | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """:meth:`generate` for synchronous code (no event loop needed; any thread)."""
        check_prompt(prompt)
        options = _options(output_format, width, height, seed, negative_prompt, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        return self._through_chain_sync(self._generate_on, (prompt, options), context)

    async def __call__(self, platform: PlatformSpec, /, prompt: str, **options: Any) -> MediaResult:
        """Call one platform: ``manager.with_fallback("image_generation", images, prompt)``."""
        output_format = options.pop("output_format", "png")
        checked = _options(
            output_format,
            options.pop("width", None),
            options.pop("height", None),
            options.pop("seed", None),
            options.pop("negative_prompt", None),
            options,
        )
        return await self._generate_on(platform, check_prompt(prompt), checked)

    async def _generate_on(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        result = await self.adapter(platform).generate(platform, prompt, options)
        return self._book(platform, result)


class ImageEditing(_MediaOperation):
    """Image edits from whichever ``image_editing`` platform is healthy now::

        editor = ImageEditing(manager)
        edited = await editor.inpaint(photo_png, mask_png, "a red umbrella")
        cleaned = await editor.erase(photo_png, mask_png)

    ``image`` and ``mask`` are PNG, JPEG or WebP bytes of the same size (white in the mask:
    repaint; OpenAI instead edits where the mask is transparent). A file that is not an
    image, or a mask of another size, raises ``InvalidArgument`` before anything is sent.
    """

    default_operation: ClassVar[str] = IMAGE_EDITING
    needs: ClassVar[frozenset[str]] = frozenset({INPAINT, ERASE})

    async def inpaint(
        self,
        image: bytes,
        mask: bytes,
        prompt: str,
        *,
        output_format: str = "png",
        seed: int | None = None,
        negative_prompt: str | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """``image`` repainted under ``mask`` as ``prompt`` describes."""
        info = image_info("image", image)
        check_mask(info, image_info("mask", mask))
        check_prompt(prompt)
        options = _options(output_format, None, None, seed, negative_prompt, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        result: MediaResult
        result, _ = await self.manager.with_fallback(
            self.operation, self._inpaint_on, bytes(image), bytes(mask), prompt, options, **context
        )
        return result

    async def erase(
        self,
        image: bytes,
        mask: bytes,
        *,
        output_format: str = "png",
        seed: int | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """What is under ``mask`` removed and filled in from its surroundings."""
        info = image_info("image", image)
        check_mask(info, image_info("mask", mask))
        options = _options(output_format, None, None, seed, None, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        result: MediaResult
        result, _ = await self.manager.with_fallback(
            self.operation, self._erase_on, bytes(image), bytes(mask), options, **context
        )
        return result

    def inpaint_sync(
        self,
        image: bytes,
        mask: bytes,
        prompt: str,
        *,
        output_format: str = "png",
        seed: int | None = None,
        negative_prompt: str | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """:meth:`inpaint` for synchronous code."""
        check_mask(image_info("image", image), image_info("mask", mask))
        check_prompt(prompt)
        options = _options(output_format, None, None, seed, negative_prompt, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        args = (bytes(image), bytes(mask), prompt, options)
        return self._through_chain_sync(self._inpaint_on, args, context)

    def erase_sync(
        self,
        image: bytes,
        mask: bytes,
        *,
        output_format: str = "png",
        seed: int | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """:meth:`erase` for synchronous code."""
        check_mask(image_info("image", image), image_info("mask", mask))
        options = _options(output_format, None, None, seed, None, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        return self._through_chain_sync(
            self._erase_on, (bytes(image), bytes(mask), options), context
        )

    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        image: bytes,
        mask: bytes,
        prompt: str | None = None,
        **options: Any,
    ) -> MediaResult:
        """Call one platform: ``manager.with_fallback("image_editing", editor, image, mask,
        prompt)`` inpaints; without a prompt it erases."""
        check_mask(image_info("image", image), image_info("mask", mask))
        checked = _options(
            options.pop("output_format", "png"),
            None,
            None,
            options.pop("seed", None),
            options.pop("negative_prompt", None),
            options,
        )
        if prompt is None:
            return await self._erase_on(platform, bytes(image), bytes(mask), checked)
        return await self._inpaint_on(
            platform, bytes(image), bytes(mask), check_prompt(prompt), checked
        )

    async def _inpaint_on(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        options: Mapping[str, Any],
    ) -> MediaResult:
        info = image_info("image", image)
        adapter = self.adapter(platform)
        result = await adapter.inpaint(platform, image, mask, prompt, info, options)
        return self._book(platform, result)

    async def _erase_on(
        self, platform: PlatformSpec, image: bytes, mask: bytes, options: Mapping[str, Any]
    ) -> MediaResult:
        info = image_info("image", image)
        result = await self.adapter(platform).erase(platform, image, mask, info, options)
        return self._book(platform, result)


class VideoGeneration(_MediaOperation):
    """Videos from whichever ``video_generation`` platform is healthy now (Replicate and FAL
    run them as jobs: submitted, polled, cancelled if the caller stops waiting)::

        videos = VideoGeneration(manager)
        clip = await videos.generate("a paper boat on a river", duration=5)
    """

    default_operation: ClassVar[str] = VIDEO_GENERATION
    needs: ClassVar[frozenset[str]] = frozenset({VIDEO})

    async def generate(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """One video from the first platform that makes one."""
        check_prompt(prompt)
        options = _options("png", None, None, seed, None, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        result: MediaResult
        result, _ = await self.manager.with_fallback(
            self.operation, self._generate_on, prompt, options, **context
        )
        return result

    def generate_sync(
        self,
        prompt: str,
        *,
        seed: int | None = None,
        failover_context: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> MediaResult:
        """:meth:`generate` for synchronous code: jobs are polled with blocking sleeps and
        cancelled at the provider if the wait stops early."""
        check_prompt(prompt)
        options = _options("png", None, None, seed, None, extra)
        context = {} if failover_context is None else {"failover_context": failover_context}
        return self._through_chain_sync(self._generate_on, (prompt, options), context)

    async def _generate_on(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        result = await self.adapter(platform).generate_video(platform, prompt, options)
        return self._book(platform, result)
