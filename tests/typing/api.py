"""The public API as type checkers see it; checked by ``mypy --strict src tests/typing``.

Never imported or run. ``typing.assert_type`` pins what each call returns. Deliberately wrong
calls carry ``# type: ignore[<code>]``: under ``--strict`` (``warn_unused_ignores``) an ignore
that no longer suppresses an error fails the check, so each wrong call is proven rejected.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, assert_type

import pybreaker

from failover import (
    AllPlatformsFailed,
    Attempt,
    FallbackFunction,
    PlatformManager,
    PlatformSpec,
    SyncFallbackFunction,
    fallback,
)

manager = PlatformManager(
    {
        "image_editing": [("stability", "sd-3.5-large"), PlatformSpec("fal", "fal-3d")],
        "text_generation": [("groq", "llama-3.3-70b-versatile")],
    },
    failure_threshold=3,
    cache_ttl_seconds=2.5,
)


@fallback("image_editing", manager=manager)
async def erase(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
    return image


@fallback("text_generation")
async def chat(platform: PlatformSpec, prompt: str, *, temperature: float = 0.0) -> str:
    return prompt


@erase.platform("stability")
async def erase_on_stability(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
    return mask


async def edit_async(platform: PlatformSpec, image: bytes, strength: float) -> dict[str, int]:
    return {}


def edit_sync(platform: PlatformSpec, image: bytes) -> list[bytes]:
    return [image]


def edit_returning_awaitable(platform: PlatformSpec, image: bytes) -> Awaitable[int]:
    async def later() -> int:
        return len(image)

    return later()


def plain(platform: PlatformSpec, image: bytes) -> bytes:
    return image


async def no_platform(image: bytes) -> bytes:
    return image


async def decorated() -> None:
    as_declared: FallbackFunction[[bytes, bytes], bytes] = erase
    assert_type(await as_declared(b"", b""), bytes)
    assert_type(await erase(b"", b""), bytes)
    assert_type(await erase(image=b"", mask=b""), bytes)
    assert_type(await erase.call_with_platform(b"", b""), tuple[bytes, PlatformSpec])
    assert_type(await chat("hi", temperature=0.2), str)

    await erase(b"")  # type: ignore[call-arg]
    await erase(b"", "mask")  # type: ignore[arg-type]
    await erase(b"", b"", b"")  # type: ignore[call-arg]
    await erase(PlatformSpec("x", "y"), b"", b"")  # type: ignore[arg-type, call-arg]
    await chat("hi", temperature="hot")  # type: ignore[arg-type]
    await chat("hi", top_p=1.0)  # type: ignore[call-arg]


def registration_and_decoration_errors() -> None:
    fallback("image_editing")(no_platform)  # type: ignore[arg-type]

    @erase.platform("fal")  # type: ignore[arg-type]
    async def wrong_arguments(platform: PlatformSpec, image: str, mask: bytes) -> bytes:
        return mask

    @erase.platform("fal")  # type: ignore[arg-type]
    async def wrong_result(platform: PlatformSpec, image: bytes, mask: bytes) -> str:
        return ""


async def manager_api() -> None:
    assert_type(await manager.get_platform("image_editing"), PlatformSpec)
    assert_type(await manager.get_platform("image_editing", quality_boost=True), PlatformSpec)

    assert_type(
        await manager.with_fallback("image_editing", edit_async, b"", 0.5),
        tuple[dict[str, int], PlatformSpec],
    )
    assert_type(
        await manager.with_fallback("image_editing", edit_async, image=b"", strength=0.5),
        tuple[dict[str, int], PlatformSpec],
    )
    assert_type(
        await manager.with_fallback("image_editing", edit_sync, b""),
        tuple[list[bytes], PlatformSpec],
    )
    assert_type(
        await manager.with_fallback("image_editing", edit_returning_awaitable, b""),
        tuple[int, PlatformSpec],
    )
    # with_fallback is overloaded (async and plain operations): a wrong call matches neither.
    await manager.with_fallback("image_editing", edit_async, b"")  # type: ignore[call-overload]
    await manager.with_fallback("image_editing", edit_async, b"", "x")  # type: ignore[call-overload]
    await manager.with_fallback("image_editing", edit_sync, "text")  # type: ignore[call-overload]

    spec = PlatformSpec("stability", "sd-3.5-large")
    await manager.report_success(spec, "image_editing", response_time=1.8)
    await manager.report_failure(spec, "image_editing", TimeoutError(), response_time=None)
    await manager.report_failure(spec, "image_editing", "timeout")  # type: ignore[arg-type]

    status = manager.get_health_status()
    assert_type(status, dict[str, Any])
    assert_type(manager.breaker(spec, "image_editing"), pybreaker.CircuitBreaker)
    manager.reset_health(platform="stability", operation=None)


def errors(error: AllPlatformsFailed) -> None:
    assert_type(error.attempts, tuple[Attempt, ...])
    assert_type(error.attempts[0].skip_reason, str | None)
    assert_type(error.last_error, BaseException | None)


@fallback("image_editing", manager=manager)
def erase_blocking(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
    return image


@erase_blocking.platform("stability")
def erase_blocking_on_stability(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
    return mask


def synchronous_api() -> None:
    blocking: SyncFallbackFunction[[bytes, bytes], bytes] = erase_blocking
    assert_type(blocking(b"", b""), bytes)
    assert_type(erase_blocking(b"", b""), bytes)
    assert_type(erase_blocking(image=b"", mask=b""), bytes)
    assert_type(erase_blocking.call_with_platform(b"", b""), tuple[bytes, PlatformSpec])
    erase_blocking(b"")  # type: ignore[call-arg]
    erase_blocking(b"", "mask")  # type: ignore[arg-type]

    @erase_blocking.platform("fal")  # type: ignore[arg-type]
    async def async_implementation(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
        return mask

    answered = manager.with_fallback_sync("image_editing", edit_sync, b"")
    assert_type(answered, tuple[list[bytes], PlatformSpec])
    manager.with_fallback_sync("image_editing", edit_sync, "text")  # type: ignore[arg-type]
    assert_type(manager.get_platform_sync("image_editing"), PlatformSpec)
    manager.report_success_sync(PlatformSpec("fal", "fal-3d"), "image_editing", response_time=1.0)
    manager.report_failure_sync(PlatformSpec("fal", "fal-3d"), "image_editing", RuntimeError())
    with manager as same:
        assert_type(same, PlatformManager)
