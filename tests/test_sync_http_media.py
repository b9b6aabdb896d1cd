"""The synchronous image and video adapters (``generate_sync``, ``inpaint_sync``,
``erase_sync``) against the fake provider server on a background event loop: each provider,
fallback by error kind, jobs polled with blocking sleeps and cancelled at the provider when
the wait stops early, many threads, clients closed with the manager."""

from __future__ import annotations

import struct
import threading
import time
import types
import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from failover import PlatformManager
from failover.http import (
    ImageEditing,
    ImageGeneration,
    InvalidArgument,
    MediaResult,
    Polling,
    VideoGeneration,
)
from failover.http import _jobs as jobs_module
from failover.testing import Behaviour, FakeProviderServer
from failover.testing.fake.media import JobScript
from fake_support import fake_server_in_thread

KEYS = {
    "STABILITY_API_KEY": "sk-test-stability-0123456789",
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


def png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\x10\x20\x30" * width) * height)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


IMAGE, MASK = png(16, 16), png(16, 16)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with fake_server_in_thread(seed=11) as fake:
        yield fake


def manager_for(operation: str, *names: str, **kwargs: Any) -> PlatformManager:
    kwargs.setdefault("environ", KEYS)
    return PlatformManager({operation: [(name, MODELS[name]) for name in names]}, **kwargs)


def urls(server: FakeProviderServer, manager: PlatformManager, operation: str) -> dict[str, str]:
    return {s.name: server.adapter_base_url(s.name) for s in manager.platforms(operation)}


def images_for(
    server: FakeProviderServer, manager: PlatformManager, polling: Polling = FAST
) -> ImageGeneration:
    base_urls = urls(server, manager, "image_generation")
    return ImageGeneration(manager, base_urls=base_urls, polling=polling)


def health(manager: PlatformManager, name: str) -> dict[str, Any]:
    status: dict[str, Any] = manager.get_health_status()[name]
    return status


@pytest.mark.parametrize("name", list(MODELS))
def test_each_provider_generates_an_image(server: FakeProviderServer, name: str) -> None:
    with manager_for("image_generation", name) as manager:
        picture = images_for(server, manager).generate_sync("a lighthouse", width=64, height=64)
    assert isinstance(picture, MediaResult)
    assert picture.platform == name
    assert picture.media_type.startswith("image/")
    assert picture.data


@pytest.mark.parametrize("name", ["stability", "openai", "replicate", "fal", "flux_pro"])
def test_each_editor_inpaints_and_erases(server: FakeProviderServer, name: str) -> None:
    with manager_for("image_editing", name) as manager:
        editor = ImageEditing(
            manager, base_urls=urls(server, manager, "image_editing"), polling=FAST
        )
        inpainted = editor.inpaint_sync(IMAGE, MASK, "a red umbrella")
        erased = editor.erase_sync(IMAGE, MASK)
    assert inpainted.platform == erased.platform == name
    assert inpainted.data
    assert erased.data


@pytest.mark.parametrize("name", ["replicate", "fal"])
def test_video_jobs_are_polled_until_they_succeed(server: FakeProviderServer, name: str) -> None:
    server.set_job_script(name, JobScript(queued=1, running=2))
    other = "fal" if name == "replicate" else "replicate"
    server.set_behaviour(other, Behaviour.overloaded())
    base_urls = {n: server.adapter_base_url(n) for n in (name, other)}
    with PlatformManager(environ=KEYS) as manager:  # the built-in table's video models
        videos = VideoGeneration(manager, base_urls=base_urls, polling=FAST)
        clip = videos.generate_sync("a paper boat", duration=5)
    assert clip.platform == name
    assert clip.media_type == "video/mp4"
    assert clip.data is not None
    assert clip.data[4:8] == b"ftyp"
    assert clip.job_id is not None
    assert server.job_stats()[name]["polls"] >= 3
    assert server.job_stats()[name].get("canceled", 0) == 0


@pytest.mark.parametrize(
    ("name", "behaviour", "kind"),
    [
        ("stability", Behaviour.out_of_credits(), "credit_exhausted"),
        ("replicate", Behaviour.out_of_credits(), "credit_exhausted"),
        ("fal", Behaviour.out_of_credits(), "credit_exhausted"),
        ("huggingface", Behaviour.rate_limited(retry_after=3), "rate_limited"),
        ("openai", Behaviour.bad_key(), "auth"),
        ("replicate", Behaviour.overloaded(), "transient"),
    ],
)
def test_provider_errors_are_classified_and_fall_back(
    server: FakeProviderServer, name: str, behaviour: Behaviour, kind: str
) -> None:
    server.set_behaviour(name, behaviour)
    with manager_for("image_generation", name, "pollinations") as manager:
        picture = images_for(server, manager).generate_sync("a cat")
        pair = health(manager, name)["operations"]["image_generation"]
    assert picture.platform == "pollinations"
    assert pair["last_error_kind"] == kind


@pytest.mark.parametrize("name", ["replicate", "fal", "flux_pro"])
def test_a_failed_job_falls_back(server: FakeProviderServer, name: str) -> None:
    server.set_job_script(name, JobScript(running=1, outcome="failed"))
    with manager_for("image_generation", name, "pollinations") as manager:
        picture = images_for(server, manager).generate_sync("a cat")
        status = health(manager, name)
    assert picture.platform == "pollinations"
    assert status["consecutive_failures"] == 1
    assert server.job_stats()[name].get("canceled", 0) == 0


def test_a_job_over_its_time_is_cancelled_and_the_next_platform_answers(
    server: FakeProviderServer,
) -> None:
    server.set_job_script("replicate", JobScript(outcome="never"))
    polling = Polling(interval=0.001, max_interval=0.001, timeout=0.05)
    with manager_for("image_generation", "replicate", "fal") as manager:
        picture = images_for(server, manager, polling).generate_sync("a cat")
    assert picture.platform == "fal"
    assert server.job_stats()["replicate"]["canceled"] == 1
    assert server.job_stats()["fal"] == {"polls": 1, "submitted": 1}  # billed once, elsewhere


@pytest.mark.parametrize("name", ["replicate", "fal"])
def test_an_interrupted_wait_cancels_the_job_at_the_provider(
    server: FakeProviderServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.set_job_script(name, JobScript(outcome="never"))

    def sleep(seconds: float) -> None:  # Ctrl-C arrives while the caller waits between polls
        if server.job_stats().get(name, {}).get("polls", 0) >= 2:
            raise KeyboardInterrupt
        time.sleep(seconds)

    clock = types.SimpleNamespace(sleep=sleep, monotonic=time.monotonic)
    monkeypatch.setattr(jobs_module, "time", clock)
    with manager_for("image_generation", name) as manager:
        with pytest.raises(KeyboardInterrupt):
            images_for(server, manager).generate_sync("a cat")
        status = health(manager, name)
    assert server.job_stats()[name]["canceled"] == 1
    assert status["consecutive_failures"] == 0  # an interrupted call counts nothing


def test_bad_input_is_refused_before_anything_is_sent(server: FakeProviderServer) -> None:
    with manager_for("image_editing", "stability") as manager:
        editor = ImageEditing(manager, base_urls=urls(server, manager, "image_editing"))
        with pytest.raises(InvalidArgument):
            editor.inpaint_sync(b"not an image", MASK, "x")
        with pytest.raises(InvalidArgument):
            editor.erase_sync(IMAGE, png(8, 8))
    assert server.stats()["stability"]["total"] == 0


def test_many_threads_and_clients_closed_with_the_manager(server: FakeProviderServer) -> None:
    server.set_behaviour("stability", Behaviour.flaky(0.5))
    threads, calls = 12, 4
    platforms: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    manager = manager_for("image_generation", "stability", "pollinations")
    images = images_for(server, manager)

    def work() -> None:
        try:
            for _ in range(calls):
                name = images.generate_sync("a cat").platform
                with lock:
                    platforms.append(name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    stats = server.stats()
    stability = health(manager, "stability")["operations"]["image_generation"]
    pollinations = health(manager, "pollinations")["operations"]["image_generation"]
    clients = [images.adapter(name).sync_client(name) for name in ("stability", "pollinations")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.close()
    assert errors == []
    assert len(platforms) == threads * calls
    assert stability["total_requests"] == stats["stability"]["total"]
    assert stability["total_requests"] - stability["failures"] == platforms.count("stability")
    assert pollinations["total_requests"] == platforms.count("pollinations")
    assert all(client.is_closed for client in clients)
    assert [w for w in caught if w.category is ResourceWarning] == []
