"""Closing a manager (so its media adapters) cancels at the provider the jobs still being
followed: the job of an attempt abandoned after its ``attempt_timeout`` (its worker thread
still polling), or of a task still polling when ``aclose()`` runs, is not left running (and
billed). A job that already ended is left alone. Against the fake provider server."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from failover import AllPlatformsFailed, PlatformManager, PlatformSpec, Policy
from failover.http import ImageGeneration, MediaResult, Polling, ReplicatePredictions
from failover.testing import FakeProviderServer
from failover.testing.fake.media import JobScript
from fake_support import fake_server_in_thread

KEYS = {"REPLICATE_API_TOKEN": "r8_test_0123456789abcdef"}
MODEL = "black-forest-labs/flux-schnell"
#: Polls every 20 ms; the job's own timeout is far away, so only closing can stop it.
SLOW = Polling(interval=0.02, factor=1, timeout=60, cancel_seconds=5)


@pytest.fixture
def sync_server() -> Iterator[FakeProviderServer]:
    with fake_server_in_thread(seed=5) as fake:
        yield fake


@pytest.fixture
async def server() -> AsyncIterator[FakeProviderServer]:
    async with FakeProviderServer(seed=5) as fake:
        yield fake


def manager_for(**kwargs: Any) -> PlatformManager:
    return PlatformManager({"image_generation": [("replicate", MODEL)]}, environ=KEYS, **kwargs)


def stats(server: FakeProviderServer) -> dict[str, int]:
    return server.job_stats().get("replicate", {})


def requests_sent(server: FakeProviderServer) -> int:
    return server.stats()["replicate"]["total"]


def wait_for(predicate: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


async def wait_until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.lowlevel.checkpoint()


class Watched(ReplicatePredictions):
    """Replicate, telling when an attempt's generate ended (even one nobody waits for)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended = threading.Event()

    async def generate(self, platform: PlatformSpec, prompt: str, options: Any) -> MediaResult:
        try:
            return await super().generate(platform, prompt, options)
        finally:
            self.ended.set()


def test_closing_the_manager_cancels_the_job_of_an_abandoned_attempt(
    sync_server: FakeProviderServer,
) -> None:
    sync_server.set_job_script("replicate", JobScript(outcome="never"))
    adapter = Watched(sync_server.adapter_base_url("replicate"), polling=SLOW, environ=KEYS)
    manager = manager_for(policy=Policy(attempt_timeout=0.3))
    images = ImageGeneration(manager, adapters={"replicate": adapter})
    with pytest.raises(AllPlatformsFailed):
        images.generate_sync("a cat")  # the attempt is abandoned; its thread goes on polling
    wait_for(lambda: stats(sync_server).get("polls", 0) >= 1)
    assert not adapter.ended.is_set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.close()  # raises nothing
    assert stats(sync_server)["submitted"] == 1
    assert stats(sync_server).get("canceled", 0) == 1  # cancelled at the provider by close
    # The abandoned thread then ends (its next poll finds the adapter closed), without a
    # second cancellation and without polling on.
    assert adapter.ended.wait(10)
    sent = requests_sent(sync_server)
    time.sleep(0.1)
    assert requests_sent(sync_server) == sent
    assert stats(sync_server).get("canceled", 0) == 1
    assert [w for w in caught if w.category is ResourceWarning] == []


def test_a_job_that_ended_is_not_cancelled_by_close(sync_server: FakeProviderServer) -> None:
    sync_server.set_job_script("replicate", JobScript(queued=3))
    adapter = Watched(sync_server.adapter_base_url("replicate"), polling=SLOW, environ=KEYS)
    manager = manager_for(policy=Policy(attempt_timeout=0.01))
    images = ImageGeneration(manager, adapters={"replicate": adapter})
    with pytest.raises(AllPlatformsFailed):
        images.generate_sync("a cat")  # abandoned before its job ends
    assert adapter.ended.wait(10)  # the abandoned attempt saw its job succeed
    assert stats(sync_server) == {"polls": 3, "submitted": 1}
    sent = requests_sent(sync_server)
    manager.close()
    assert requests_sent(sync_server) == sent  # no cancellation was sent
    assert stats(sync_server) == {"polls": 3, "submitted": 1}


@pytest.mark.anyio
async def test_aclose_cancels_the_job_a_task_is_following(server: FakeProviderServer) -> None:
    server.set_job_script("replicate", JobScript(outcome="never"))
    manager = manager_for()
    images = ImageGeneration(
        manager, base_urls={"replicate": server.adapter_base_url("replicate")}, polling=SLOW
    )
    ended: list[BaseException] = []

    async def follow() -> None:
        try:
            await images.generate("a cat")
        except Exception as exc:
            ended.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        await wait_until(lambda: stats(server).get("polls", 0) >= 2)
        await manager.aclose()  # raises nothing
        assert stats(server).get("canceled", 0) == 1  # cancelled before the clients closed
    assert len(ended) == 1  # the follower ended, on the closed adapter's error
    after = stats(server)
    await anyio.sleep(0.1)
    assert stats(server) == after  # it stopped polling
    assert (after["submitted"], after["canceled"]) == (1, 1)  # cancelled once, by aclose


@pytest.mark.anyio
async def test_aclose_leaves_a_finished_job_alone(server: FakeProviderServer) -> None:
    server.set_job_script("replicate", JobScript(queued=2))
    manager = manager_for()
    images = ImageGeneration(
        manager, base_urls={"replicate": server.adapter_base_url("replicate")}, polling=SLOW
    )
    picture = await images.generate("a cat")
    assert picture.job_id is not None
    sent = requests_sent(server)
    await manager.aclose()
    assert requests_sent(server) == sent
    assert stats(server) == {"polls": 2, "submitted": 1}
