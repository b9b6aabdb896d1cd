"""How an SDK's own retries delay failover, measured against the fake provider server.

The primary (openai) answers every request with a 429 and ``Retry-After: 20``; the fallback
(groq) is healthy. Both are called through the official ``openai`` SDK, once with a default
client (``max_retries=2``) and once with ``failover.sdk.openai_client()`` (``max_retries=0``).
Prints, per client, the time until the fallback answered and the requests the primary got.
Needs ``pip install openai``; ``--default`` also measures the default client (about 40 s).
"""

from __future__ import annotations

import sys
import time

import anyio

from failover import PlatformManager, PlatformSpec
from failover.sdk import openai_client
from failover.testing import Behaviour, FakeProviderServer


async def measure(server: FakeProviderServer, safe: bool) -> tuple[float, int]:
    import openai

    clients = {}
    for name in ("openai", "groq"):
        options = {"api_key": "sk-fake", "base_url": server.base_url(name)}
        clients[name] = openai_client(**options) if safe else openai.AsyncOpenAI(**options)
    manager = PlatformManager(
        {
            "text_generation": [
                PlatformSpec("openai", "gpt-4o-mini", api_key_env=None),
                PlatformSpec("groq", "llama-3.3-70b-versatile", api_key_env=None),
            ]
        }
    )

    async def chat(platform: PlatformSpec) -> str:
        reply = await clients[platform.name].chat.completions.create(
            model=platform.model, messages=[{"role": "user", "content": "hi"}]
        )
        return str(reply.choices[0].message.content)

    server.reset_stats()
    started = time.perf_counter()
    _, spec = await manager.with_fallback("text_generation", chat)
    elapsed = time.perf_counter() - started
    assert spec.name == "groq"
    for client in clients.values():
        await client.close()
    return elapsed, server.stats()["openai"]["total"]


async def main() -> None:
    behaviours = {"openai": Behaviour.rate_limited(retry_after=20)}
    async with FakeProviderServer(behaviours=behaviours) as server:
        runs = [("failover.sdk.openai_client()", True)]
        if "--default" in sys.argv:
            runs.append(("openai.AsyncOpenAI() default", False))
        for label, safe in runs:
            elapsed, primary = await measure(server, safe)
            print(
                f"{label}: fallback answered after {elapsed:.2f}s, primary got {primary} request(s)"
            )


if __name__ == "__main__":
    anyio.run(main)
