"""Image and video adapters against the fake provider server over real HTTP (asyncio and trio):
each provider's answer, jobs polled and cancelled at the provider, fallback on failed jobs and
classified errors, bad input refused before anything is sent, keys, the shared TLS context."""

from __future__ import annotations

import gc
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import AllPlatformsFailed, BadRequest, ConfigError, PlatformManager, PlatformSpec
from failover.http import (
    HuggingFaceImages,
    ImageEditing,
    ImageGeneration,
    InvalidArgument,
    MediaResult,
    Polling,
    VideoGeneration,
)
from failover.http._pool import PLAIN_HTTP_CONTEXT, tls_context
from failover.testing import Behaviour, FakeProviderServer
from failover.testing.fake.media import JobScript

pytestmark = pytest.mark.anyio

KEYS = {
    "STABILITY_API_KEY": "sk-stability-test-0123456789",
    "REPLICATE_API_TOKEN": "r8_test_0123456789abcdef",
    "FAL_KEY": "fal-test-key-0123456789",
    "BFL_API_KEY": "bfl-test-key-0123456789",
    "OPENAI_API_KEY": "sk-test-openai-0123456789",
}
MODELS = {
    "stability": "sd3.5-large",
    "openai": "gpt-image-1",
    "pollinations": "free",
    "huggingface": "free",
    "replicate": "black-forest-labs/flux-schnell",
    "fal": "fal-ai/flux/schnell",
    "flux_pro": "flux-pro-1.1",
}
FAST = Polling(interval=0, cancel_seconds=5)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\x10\x20\x30" * width) * height)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


IMAGE, MASK = png(16, 16), png(16, 16)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=11) as fake:
        yield fake


def manager_for(operation: str, *names: str, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("environ", KEYS)
    return PlatformManager({operation: [(name, MODELS[name]) for name in names]}, **kwargs)


def urls(server: FakeProviderServer, manager: PlatformManager, operation: str) -> dict[str, str]:
    return {s.name: server.adapter_base_url(s.name) for s in manager.platforms(operation)}


def images_for(server: FakeProviderServer, manager: PlatformManager) -> ImageGeneration:
    base_urls = urls(server, manager, "image_generation")
    return ImageGeneration(manager, base_urls=base_urls, polling=FAST)


def editor_for(server: FakeProviderServer, manager: PlatformManager) -> ImageEditing:
    return ImageEditing(manager, base_urls=urls(server, manager, "image_editing"), polling=FAST)


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.lowlevel.checkpoint()


def health(manager: PlatformManager, name: str) -> dict[str, Any]:
    status: dict[str, Any] = manager.get_health_status()[name]
    return status


# -- each provider -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
async def test_each_provider_generates_an_image(server: FakeProviderServer, name: str) -> None:
    async with manager_for("image_generation", name) as manager:
        picture = await images_for(server, manager).generate("a lighthouse", width=512, height=512)
    assert isinstance(picture, MediaResult)
    assert (picture.platform, picture.model) == (name, MODELS[name])
    assert picture.media_type == "image/png"
    assert picture.data is not None
    assert picture.data.startswith(PNG_SIGNATURE)
    assert "bytes" in repr(picture)
    assert "\\x89" not in repr(picture)


@pytest.mark.parametrize("name", ["stability", "openai", "replicate", "fal", "flux_pro"])
async def test_each_editor_inpaints_and_erases(server: FakeProviderServer, name: str) -> None:
    async with manager_for("image_editing", name) as manager:
        editor = editor_for(server, manager)
        painted = await editor.inpaint(IMAGE, MASK, "a red umbrella")
        erased = await editor.erase(IMAGE, MASK)
    assert painted.platform == erased.platform == name
    assert painted.data is not None
    assert painted.data.startswith(PNG_SIGNATURE)
    assert erased.data is not None
    assert erased.data.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("name", ["replicate", "fal"])
async def test_video_generation_on_the_default_models(
    server: FakeProviderServer, name: str
) -> None:
    async with PlatformManager(environ=KEYS) as manager:
        base_urls = {name: server.adapter_base_url(name)}
        other = "fal" if name == "replicate" else "replicate"
        server.set_behaviour(other, Behaviour.overloaded())
        base_urls[other] = server.adapter_base_url(other)
        videos = VideoGeneration(manager, base_urls=base_urls, polling=FAST)
        clip = await videos.generate("a paper boat on a river", duration=5)
    assert clip.platform == name
    assert clip.media_type == "video/mp4"
    assert clip.data is not None
    assert clip.data[4:8] == b"ftyp"
    assert clip.job_id


async def test_download_false_keeps_the_link(server: FakeProviderServer) -> None:
    async with manager_for("image_generation", "replicate") as manager:
        images = ImageGeneration(
            manager, base_urls=urls(server, manager, "image_generation"), download=False
        )
        picture = await images.generate("a cat")
    assert picture.data is None
    assert picture.url is not None
    assert picture.url.startswith(server.url)


async def test_keyless_platforms_work_with_no_keys_set(server: FakeProviderServer) -> None:
    async with PlatformManager(environ={}) as manager:
        picture = await images_for(server, manager).generate("a cat")
    assert picture.platform == "pollinations"
    assert server.stats()["pollinations"] == {"total": 1, "ok": 1}


async def test_hugging_face_sends_hf_token_only_when_set() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})

    platform = PlatformSpec("huggingface", "free")
    for environ in ({}, {"HF_TOKEN": "hf_test_token_0123456789"}):
        adapter = HuggingFaceImages(transport=httpx.MockTransport(answer), environ=environ)
        async with adapter:
            await adapter.generate(platform, "a cat", {"output_format": "png"})
    assert seen == [None, "Bearer hf_test_token_0123456789"]


# -- jobs ----------------------------------------------------------------------------------------


async def test_a_replicate_job_is_polled_until_it_succeeds(server: FakeProviderServer) -> None:
    server.set_job_script("replicate", JobScript(queued=1, running=2))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with manager_for("image_generation", "replicate", tracer_provider=provider) as manager:
        picture = await images_for(server, manager).generate("a cat")
        status = health(manager, "replicate")
    assert picture.job_id is not None
    assert server.job_stats()["replicate"] == {"polls": 3, "submitted": 1}
    # polls are not attempts: one request counted, one success
    assert status["total_requests"] == 1
    assert status["consecutive_failures"] == 0
    (attempt,) = [s for s in exporter.get_finished_spans() if s.name.startswith("generate_content")]
    assert attempt.attributes is not None
    assert attempt.attributes["failover.job.id"] == picture.job_id
    assert attempt.attributes["failover.job.state"] == "succeeded"
    assert attempt.attributes["failover.job.polls"] == 3


async def test_fal_queue_positions_reach_the_attempt_span(server: FakeProviderServer) -> None:
    server.set_job_script("fal", JobScript(queued=3, running=1))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with manager_for("image_generation", "fal", tracer_provider=provider) as manager:
        await images_for(server, manager).generate("a cat")
    (attempt,) = [s for s in exporter.get_finished_spans() if s.name.startswith("generate_content")]
    assert attempt.attributes is not None
    assert attempt.attributes["failover.job.queue_position"] == 0
    assert server.job_stats()["fal"]["polls"] == 4


@pytest.mark.parametrize("name", ["replicate", "fal"])
async def test_the_callers_cancellation_cancels_the_job_at_the_provider(
    server: FakeProviderServer, name: str
) -> None:
    server.set_job_script(name, JobScript(outcome="never"))
    async with manager_for("image_generation", name) as manager:
        images = images_for(server, manager)
        async with anyio.create_task_group() as group:
            group.start_soon(images.generate, "a cat")
            await wait_until(lambda: server.job_stats().get(name, {}).get("polls", 0) >= 2)
            group.cancel_scope.cancel()
        status = health(manager, name)
    assert server.job_stats()[name]["canceled"] == 1
    assert status["consecutive_failures"] == 0  # a cancelled call counts nothing


async def test_a_job_over_its_time_is_cancelled_and_the_next_platform_answers(
    server: FakeProviderServer,
) -> None:
    server.set_job_script("replicate", JobScript(outcome="never"))
    async with manager_for("image_generation", "replicate", "fal") as manager:
        images = ImageGeneration(
            manager,
            base_urls=urls(server, manager, "image_generation"),
            polling=Polling(interval=0.001, max_interval=0.001, timeout=0.05),
        )
        picture = await images.generate("a cat")
    assert picture.platform == "fal"
    assert server.job_stats()["replicate"]["canceled"] == 1
    assert server.job_stats()["fal"] == {"polls": 1, "submitted": 1}  # billed once, elsewhere


@pytest.mark.parametrize("name", ["replicate", "fal", "flux_pro"])
async def test_a_failed_job_falls_back(server: FakeProviderServer, name: str) -> None:
    server.set_job_script(name, JobScript(running=1, outcome="failed"))
    async with manager_for("image_generation", name, "pollinations") as manager:
        picture = await images_for(server, manager).generate("a cat")
        status = health(manager, name)
    assert picture.platform == "pollinations"
    assert status["consecutive_failures"] == 1
    assert server.job_stats()[name].get("canceled", 0) == 0  # it had ended: nothing to cancel


@pytest.mark.parametrize("name", ["replicate", "fal", "flux_pro"])
async def test_a_moderated_job_is_the_requests_fault(server: FakeProviderServer, name: str) -> None:
    server.set_job_script(name, JobScript(outcome="moderated"))
    async with manager_for("image_generation", name, "pollinations") as manager:
        picture = await images_for(server, manager).generate("a cat")
        status = health(manager, name)
    assert picture.platform == "pollinations"  # content policy goes on to the next platform
    assert status["consecutive_failures"] == 0  # and is not held against the platform


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "behaviour", "kind"),
    [
        ("stability", Behaviour.out_of_credits(), "credit_exhausted"),
        ("replicate", Behaviour.out_of_credits(), "credit_exhausted"),
        ("fal", Behaviour.out_of_credits(), "credit_exhausted"),
        ("flux_pro", Behaviour.out_of_credits(), "credit_exhausted"),
        ("huggingface", Behaviour.rate_limited(retry_after=3), "rate_limited"),
        ("pollinations", Behaviour.rate_limited(retry_after=3), "rate_limited"),
        ("openai", Behaviour.bad_key(), "auth"),
        ("huggingface", Behaviour.bad_key(), "auth"),
        ("replicate", Behaviour.overloaded(), "transient"),
    ],
)
async def test_provider_errors_are_classified_and_fall_back(
    server: FakeProviderServer, name: str, behaviour: Behaviour, kind: str
) -> None:
    server.set_behaviour(name, behaviour)
    other = "pollinations" if name != "pollinations" else "huggingface"
    async with manager_for("image_generation", name, other) as manager:
        picture = await images_for(server, manager).generate("a cat")
        detail = health(manager, name)["operations"]["image_generation"]
    assert picture.platform == other
    assert detail["last_error_kind"] == kind


async def test_stability_content_filtered_image_is_refused(server: FakeProviderServer) -> None:
    server.set_behaviour("stability", Behaviour.content_policy())
    async with manager_for("image_generation", "stability") as manager:
        with pytest.raises(AllPlatformsFailed) as caught:
            await images_for(server, manager).generate("a cat")
    assert caught.value.attempts[-1].error_type == "BadRequest"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda e: e.inpaint(b"GIF89a not really", MASK, "x"), "image"),
        (lambda e: e.inpaint("not bytes", MASK, "x"), "image"),
        (lambda e: e.inpaint(IMAGE, png(8, 8), "x"), "mask"),
        (lambda e: e.erase(IMAGE, b""), "mask"),
        (lambda e: e.inpaint(IMAGE, MASK, ""), "prompt"),
        (lambda e: e.inpaint(IMAGE, MASK, "x", output_format="gif"), "output_format"),
        (lambda e: e.erase(IMAGE, MASK, seed=-1), "seed"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(
    server: FakeProviderServer, call: Callable[[ImageEditing], Any], parameter: str
) -> None:
    async with manager_for("image_editing", "stability", "replicate") as manager:
        with pytest.raises(InvalidArgument, match=parameter) as caught:
            await call(editor_for(server, manager))
        assert health(manager, "stability")["total_requests"] == 0
    assert isinstance(caught.value, BadRequest)
    assert server.stats()["stability"]["total"] == server.stats()["replicate"]["total"] == 0


@pytest.mark.parametrize(
    ("options", "parameter"),
    [({"width": 10, "height": 512}, "width"), ({"height": 10_000}, "height")],
)
async def test_bad_image_options_are_refused(
    server: FakeProviderServer, options: dict[str, Any], parameter: str
) -> None:
    async with manager_for("image_generation", "stability") as manager:
        with pytest.raises(InvalidArgument, match=parameter):
            await images_for(server, manager).generate("a cat", **options)
    assert server.stats()["stability"]["total"] == 0


async def test_configuration_mistakes_are_named(server: FakeProviderServer) -> None:
    async with manager_for("image_editing", "stability") as manager:
        with pytest.raises(ConfigError, match="base_urls names 'fal'"):
            ImageEditing(manager, base_urls={"fal": server.url})
    manager = PlatformManager({"image_editing": [("pollinations", "free")]}, environ={})
    with pytest.raises(ConfigError, match="cannot erase"):
        ImageEditing(manager)
    manager = PlatformManager({"video_generation": [("mystery", "m")]}, environ={})
    with pytest.raises(ConfigError, match="no image or video adapter for platform 'mystery'"):
        VideoGeneration(manager)
    with pytest.raises(ConfigError, match="polling"):
        HuggingFaceImages(polling=1.0)  # type: ignore[arg-type]


# -- connections ---------------------------------------------------------------------------------


async def test_clients_share_one_tls_context_and_stay_small(server: FakeProviderServer) -> None:
    https = PlatformSpec("stability", "core")
    plain = PlatformSpec("replicate", "flux")
    async with manager_for("image_generation", "stability") as manager:
        images = images_for(server, manager)
        adapter = images.adapter("stability")
        assert adapter.client("stability")._transport._pool._ssl_context is PLAIN_HTTP_CONTEXT  # type: ignore[attr-defined]
    from failover.http import ReplicatePredictions, StabilityImages

    tls_context()  # built once per process, before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        secure = StabilityImages()
        local = ReplicatePredictions(f"{server.url}/replicate")
        clients = [secure.client(https), local.client(plain)]
        per_client = (tracemalloc.get_traced_memory()[0] - before) / len(clients)
    finally:
        tracemalloc.stop()
    assert per_client <= 50 * 1024, per_client
    assert clients[0]._transport._pool._ssl_context is tls_context()  # type: ignore[attr-defined]
    await secure.aclose()
    await local.aclose()
