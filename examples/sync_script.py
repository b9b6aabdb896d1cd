"""failover from a plain script: no event loop anywhere, the same fallbacks.

The first platform is out of credits, the second fails now and then, the third answers.
``python examples/sync_script.py``
"""

from __future__ import annotations

import random

from failover import CreditExhausted, PlatformManager, PlatformSpec, Transient, fallback

manager = PlatformManager(
    {
        "text_generation": [
            PlatformSpec("groq", "llama-3.3-70b-versatile", api_key_env=None),
            PlatformSpec("xai", "grok-3-mini", api_key_env=None),
            PlatformSpec("openai", "gpt-4o-mini", api_key_env=None),
        ]
    }
)
dice = random.Random(7)


@fallback("text_generation", manager=manager)
def summarise(platform: PlatformSpec, text: str) -> str:
    """Your provider call goes here: a plain, blocking function (an SDK's sync client)."""
    if platform.name == "groq":
        raise CreditExhausted("groq: out of credits")
    if platform.name == "xai" and dice.random() < 0.3:
        raise Transient("xai: 503")
    return f"{platform.name}: {text[:20]}..."


def main() -> None:
    with manager:  # closes what the manager owns on the way out
        for number in range(10):
            print("answered", summarise(f"document number {number} to summarise"))
        for name, health in manager.get_health_status().items():
            print(f"{name}: {health['total_requests']} requests, healthy={health['is_healthy']}")


if __name__ == "__main__":
    main()
