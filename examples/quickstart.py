"""A fallback across three image-editing platforms, end to end, with no API keys.

The first platform is out of credits, the second is flaky, the third answers. failover cools
the first down (credit), opens the second's breaker after three failures, and keeps every
request answered. Run it with ``make demo`` or ``python examples/quickstart.py``.
"""

from __future__ import annotations

import logging
import os
import sys

import anyio

from failover import (
    AllPlatformsFailed,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Transient,
    fallback,
)

# The providers here are pretend ones, so no key is needed: api_key_env=None says so (left
# out, each would wait for its usual variable, STABILITY_API_KEY and so on).
manager = PlatformManager(
    priorities={
        "image_editing": [
            PlatformSpec("stability", "sd-3.5-large", estimated_cost=0.04, api_key_env=None),
            PlatformSpec("replicate", "flux", estimated_cost=0.03, api_key_env=None),
            PlatformSpec("fal", "fal-3d", estimated_cost=0.025, api_key_env=None),
        ]
    },
    failure_threshold=3,
    cache_ttl_seconds=300,
)

calls: list[str] = []


@fallback("image_editing", manager=manager)
async def erase(platform: PlatformSpec, image: bytes, mask: bytes) -> bytes:
    """Pretend to call the provider: each one misbehaves in its own way."""
    calls.append(platform.name)
    await anyio.sleep(0.001)
    if platform.name == "stability":
        raise CreditExhausted("402 payment_required", status_code=402)
    if platform.name == "replicate":
        raise Transient("503 service unavailable", status_code=503)
    return b"edited-by-" + platform.name.encode()


async def main() -> int:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from failover.telemetry import configure
        except ImportError:
            print("(tracing needs the otlp extra: pip install 'failover[otlp]')")
        else:
            configure(service_name="failover-quickstart")
    for request in range(1, 6):
        calls.clear()
        try:
            png, platform = await erase.call_with_platform(b"image", b"mask")
        except AllPlatformsFailed as exc:
            print(f"request {request}: failed\n{exc}")
            return 1
        print(
            f"request {request}: {png.decode()!r} from {platform.name} (tried {' -> '.join(calls)})"
        )
    print()
    print(
        f"{'platform':<10} {'healthy':<8} {'state':<10} {'requests':>8} {'failures':>8}  cool-down"
    )
    for name, health in manager.get_health_status().items():
        detail = health["operations"]["image_editing"]
        cooldown = health["cooldown_reason"] or "-"
        print(
            f"{name:<10} {health['is_healthy']!s:<8} {detail['state']:<10} "
            f"{health['total_requests']:>8} {detail['failures']:>8}  {cooldown}"
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="  [%(name)s] %(message)s")
    sys.exit(anyio.run(main))
