"""A worker loop (Celery-style): several threads take jobs from a queue and call providers
through one shared manager, synchronously. ``python examples/sync_worker.py``
"""

from __future__ import annotations

import queue
import threading

from failover import PlatformManager, PlatformSpec, RateLimited, fallback

manager = PlatformManager(
    {
        "image_generation": [
            PlatformSpec("stability", "sd-3.5-large", api_key_env=None),
            PlatformSpec("replicate", "flux", api_key_env=None),
        ]
    }
)


@fallback("image_generation", manager=manager)
def generate(platform: PlatformSpec, prompt: str) -> bytes:
    """Your provider call goes here (blocking)."""
    if platform.name == "stability":
        raise RateLimited("stability: slow down", retry_after=30)
    return f"{platform.name}:{prompt}".encode()


def worker(jobs: queue.Queue[str | None], done: list[str], lock: threading.Lock) -> None:
    while (prompt := jobs.get()) is not None:
        image, platform = generate.call_with_platform(prompt)
        with lock:
            done.append(f"{prompt} -> {platform.name} ({len(image)} bytes)")


def main() -> None:
    jobs: queue.Queue[str | None] = queue.Queue()
    done: list[str] = []
    lock = threading.Lock()
    workers = [threading.Thread(target=worker, args=(jobs, done, lock)) for _ in range(4)]
    for thread in workers:
        thread.start()
    for number in range(40):
        jobs.put(f"a lighthouse, take {number}")
    for _ in workers:
        jobs.put(None)
    for thread in workers:
        thread.join()
    print(f"answered {len(done)} jobs; e.g. {done[0]}")
    # A rate limit cools the (platform, operation) pair, not the whole platform.
    pair = manager.get_health_status()["stability"]["operations"]["image_generation"]
    print(f"stability: {pair['cooldown_reason']} until {pair['cooldown_until']}")


if __name__ == "__main__":
    main()
