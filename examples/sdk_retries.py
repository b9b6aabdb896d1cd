"""How an SDK's own retries delay failover, measured against the fake provider server.

For each official SDK, its primary platform answers every request with a 429 and
``Retry-After: 20``; the fallback is healthy. One call goes through failover with the client
``docs/sdks.md`` recommends (and, with ``--default``, one with the SDK's defaults); the script
prints the time until the fallback answered and how many requests the primary received.
``--credit`` makes the primary out of credits instead, ``--hang`` makes it never answer (with
``--default``, pick the SDKs: the defaults of openai, anthropic and fal-client wait many
minutes for a hung request, google-genai's forever).

    python examples/sdk_retries.py                        # every SDK, recommended clients
    python examples/sdk_retries.py --default              # and the defaults (about 2 minutes)
    python examples/sdk_retries.py --default fal-client   # one SDK
    python examples/sdk_retries.py --hang --default replicate

Needs the SDKs: ``pip install openai anthropic google-genai replicate fal-client``. Text SDKs
fall back to groq through ``failover.sdk.openai_client()``; replicate and fal-client fall back
to each other. fal-client has no base-URL setting, so its module's URLs are pointed at the
fake server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager

import anyio

from failover import PlatformManager, PlatformSpec
from failover.sdk import anthropic_client, genai_client, openai_client
from failover.testing import Behaviour, FakeProviderServer

KEY = "fake-key-for-the-fake-server"
#: The recommended bound on one request or job, in seconds (``--hang`` waits this long).
TIMEOUT = 5.0
Call = Callable[[PlatformSpec], Awaitable[object]]


async def text_clients(
    sdk: str, server: FakeProviderServer, default: bool, stack: AsyncExitStack
) -> Call:
    """The primary's call through ``sdk``, the fallback's (groq) through the openai SDK."""
    groq = openai_client(api_key=KEY, base_url=server.base_url("groq"))
    stack.push_async_callback(groq.close)
    if sdk == "openai":
        import openai

        options = {"api_key": KEY, "base_url": server.base_url("openai")}
        client = (
            openai.AsyncOpenAI(**options) if default else openai_client(**options, timeout=TIMEOUT)
        )
        stack.push_async_callback(client.close)
    elif sdk == "anthropic":
        import anthropic

        options = {"api_key": KEY, "base_url": server.base_url("anthropic")}
        client = (
            anthropic.AsyncAnthropic(**options)
            if default
            else anthropic_client(**options, timeout=TIMEOUT)
        )
        stack.push_async_callback(client.close)
    else:
        from google import genai

        http_options = {"base_url": f"{server.url}/google"}
        client = (
            genai.Client(api_key=KEY, http_options=http_options)
            if default
            else genai_client(api_key=KEY, http_options=http_options, timeout=TIMEOUT)
        )
        stack.push_async_callback(client.aio.aclose)

    async def chat(platform: PlatformSpec) -> object:
        messages = [{"role": "user", "content": "hi"}]
        if platform.name == "groq":
            return await groq.chat.completions.create(model=platform.model, messages=messages)
        if sdk == "openai":
            return await client.chat.completions.create(model=platform.model, messages=messages)
        if sdk == "anthropic":
            return await client.messages.create(
                model=platform.model, max_tokens=64, messages=messages
            )
        return await client.aio.models.generate_content(model=platform.model, contents="hi")

    return chat


@contextmanager
def fal_attempts(attempts: int) -> Iterator[None]:
    """fal-client's requests per call (its module constant ``MAX_ATTEMPTS``, 10 as shipped)."""
    import fal_client.client

    shipped = fal_client.client.MAX_ATTEMPTS
    fal_client.client.MAX_ATTEMPTS = attempts
    try:
        yield
    finally:
        fal_client.client.MAX_ATTEMPTS = shipped


async def image_clients(
    sdk: str, server: FakeProviderServer, default: bool, stack: AsyncExitStack
) -> Call:
    """replicate and fal-client, the primary ``sdk`` and the other one as the fallback."""
    import fal_client
    import fal_client.client
    import replicate

    fal_client.client.RUN_URL_FORMAT = f"{server.url}/fal/"
    fal_client.client.QUEUE_URL_FORMAT = f"{server.url}/fal/queue/"
    replicate_ = replicate.Client(api_token=KEY, base_url=server.base_url("replicate"))
    fal = fal_client.AsyncClient(key=KEY)
    if sdk == "fal-client" and not default:
        stack.enter_context(fal_attempts(1))
    bound = None if default else TIMEOUT

    async def generate(platform: PlatformSpec) -> object:
        if platform.name == "replicate":
            wait: bool | int = True if bound is None else int(bound)
            return await replicate_.async_run(platform.model, input={"prompt": "a fox"}, wait=wait)
        return await fal.subscribe(platform.model, {"prompt": "a fox"}, client_timeout=bound)

    return generate


SDKS = {
    "openai": ("text_generation", "openai", "gpt-4o-mini", "groq", "llama-3.3-70b-versatile"),
    "anthropic": ("text_generation", "anthropic", "claude-3-haiku", "groq", "llama-3.3-70b"),
    "google-genai": ("text_generation", "google", "gemini-2.5-flash-lite", "groq", "llama-3.3"),
    "replicate": (
        "image_generation",
        "replicate",
        "black-forest-labs/flux-schnell",
        "fal",
        "fal-ai/flux/schnell",
    ),
    "fal-client": (
        "image_generation",
        "fal",
        "fal-ai/flux/schnell",
        "replicate",
        "black-forest-labs/flux-schnell",
    ),
}


async def measure(sdk: str, server: FakeProviderServer, default: bool) -> tuple[float, int]:
    operation, primary, model, fallback, fallback_model = SDKS[sdk]
    manager = PlatformManager(
        {
            operation: [
                PlatformSpec(primary, model, api_key_env=None),
                PlatformSpec(fallback, fallback_model, api_key_env=None),
            ]
        }
    )
    async with AsyncExitStack() as stack:
        build = text_clients if operation == "text_generation" else image_clients
        call = await build(sdk, server, default, stack)
        server.reset_stats()
        started = time.perf_counter()
        _, spec = await manager.with_fallback(operation, call)
        elapsed = time.perf_counter() - started
    assert spec.name == fallback, spec
    return elapsed, server.stats()[primary]["total"]


async def main(args: list[str]) -> None:
    defaults = "--default" in args
    failure = Behaviour.rate_limited(retry_after=20)
    if "--credit" in args:
        failure = Behaviour.out_of_credits()
    elif "--hang" in args:
        failure = Behaviour.hanging()
    chosen = [arg for arg in args if not arg.startswith("--")] or list(SDKS)
    for sdk in chosen:
        primary = SDKS[sdk][1]
        async with FakeProviderServer(behaviours={primary: failure}) as server:
            runs = [("recommended", False)] + ([("default", True)] if defaults else [])
            for label, default in runs:
                elapsed, requests = await measure(sdk, server, default)
                print(
                    f"{sdk:13} {label:11}: fallback answered after {elapsed:6.2f} s, "
                    f"primary got {requests} request(s)"
                )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
