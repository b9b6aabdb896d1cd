"""The official SDKs, each making one call to the fake provider server (for ``test_sdk*.py``).

Every :class:`Sdk` builds the real SDK's client as ``docs/sdks.md`` recommends (no retries of
its own, a bounded timeout), makes one call to its platform on a
:class:`~failover.testing.FakeProviderServer` and closes the client. ``KEY`` is the key every
client sends: a canary, shaped like no provider's key, so that finding it in what failover
writes can only mean it leaked (the scrubber's key patterns would not hide it).

openai, anthropic and google-genai run on asyncio and trio (google-genai's own async client
is asyncio-only: on trio it gets an ``httpx.AsyncClient``, as ``docs/sdks.md`` says);
replicate and fal-client run on asyncio only (``Sdk.asyncio_only`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import sniffio

from failover.sdk import anthropic_client, genai_client, openai_client
from failover.testing import FakeProviderServer

KEY = "CanaryToken0123456789abcdefXYZ"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Sdk:
    """One official SDK: the fake platform it calls and one call through it."""

    name: str
    platform: str
    model: str
    operation: str
    #: ``call(server, timeout)``: one request (or job) through a fresh client, closed after.
    call: Callable[[FakeProviderServer, float], Awaitable[object]]
    #: Why its async client runs on asyncio only (``None``: trio too).
    asyncio_only: str | None = None

    def __str__(self) -> str:
        return self.name


async def call_openai(server: FakeProviderServer, timeout: float) -> object:
    client = openai_client(api_key=KEY, base_url=server.base_url("openai"), timeout=timeout)
    try:
        return await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        await client.close()


async def call_anthropic(server: FakeProviderServer, timeout: float) -> object:
    client = anthropic_client(api_key=KEY, base_url=server.base_url("anthropic"), timeout=timeout)
    try:
        return await client.messages.create(
            model="claude-3-haiku-20240307", max_tokens=16, messages=MESSAGES
        )
    finally:
        await client.close()


async def call_genai(server: FakeProviderServer, timeout: float) -> object:
    http_options: dict[str, object] = {"base_url": f"{server.url}/google"}
    own_client = None
    if sniffio.current_async_library() == "trio":
        # google-genai's own async client keeps a pool per asyncio loop: on trio it is given
        # an httpx client, which runs on any anyio backend.
        own_client = http_options["httpx_async_client"] = httpx.AsyncClient()
    client = genai_client(api_key=KEY, http_options=http_options, timeout=timeout)
    try:
        return await client.aio.models.generate_content(
            model="gemini-2.5-flash-lite", contents="hi"
        )
    finally:
        await client.aio.aclose()
        if own_client is not None:
            await own_client.aclose()


async def call_replicate(server: FakeProviderServer, timeout: float) -> object:
    import replicate

    # The transport is the SDK's default one, passed in only so the test can close it
    # (replicate's client wraps it in its RetryTransport all the same).
    transport = httpx.AsyncHTTPTransport()
    client = replicate.Client(
        api_token=KEY, base_url=server.base_url("replicate"), transport=transport
    )
    try:
        # wait=N: Prefer: wait=N and a read timeout of N + 0.5 s on the creating request.
        wait = max(1, math.ceil(timeout))
        return await client.async_run(
            "black-forest-labs/flux-schnell", input={"prompt": "a fox"}, wait=wait
        )
    finally:
        await transport.aclose()


@contextmanager
def fal_pointed_at(server: FakeProviderServer, attempts: int = 1) -> Iterator[None]:
    """fal-client's URLs at the fake server, and its requests per call (``MAX_ATTEMPTS``,
    10 as shipped): module constants, the only place fal-client keeps them."""
    import fal_client.client

    module = fal_client.client
    saved = (module.RUN_URL_FORMAT, module.QUEUE_URL_FORMAT, module.MAX_ATTEMPTS)
    module.RUN_URL_FORMAT = f"{server.url}/fal/"
    module.QUEUE_URL_FORMAT = f"{server.url}/fal/queue/"
    module.MAX_ATTEMPTS = attempts
    try:
        yield
    finally:
        module.RUN_URL_FORMAT, module.QUEUE_URL_FORMAT, module.MAX_ATTEMPTS = saved


async def call_fal(server: FakeProviderServer, timeout: float) -> object:
    import fal_client

    with fal_pointed_at(server):
        client = fal_client.AsyncClient(key=KEY, default_timeout=timeout)
        try:
            # client_timeout must be over 1 s (it also sets the server-side start timeout).
            return await client.subscribe(
                "fal-ai/flux/schnell", {"prompt": "a fox"}, client_timeout=max(timeout, 1.5)
            )
        finally:
            # fal-client's AsyncClient has no close(); its httpx client is a cached property.
            http = await client._client
            await http.aclose()


ASYNCIO_ONLY = "{}'s async client waits with asyncio.sleep (polling, retries): asyncio only"

SDKS = (
    Sdk("openai", "openai", "gpt-4o-mini", "text_generation", call_openai),
    Sdk(
        "anthropic",
        "anthropic",
        "claude-3-haiku-20240307",
        "text_generation",
        call_anthropic,
    ),
    Sdk("google-genai", "google", "gemini-2.5-flash-lite", "text_generation", call_genai),
    Sdk(
        "replicate",
        "replicate",
        "black-forest-labs/flux-schnell",
        "image_generation",
        call_replicate,
        ASYNCIO_ONLY.format("replicate"),
    ),
    Sdk(
        "fal-client",
        "fal",
        "fal-ai/flux/schnell",
        "image_generation",
        call_fal,
        ASYNCIO_ONLY.format("fal-client"),
    ),
)


#: Every SDK, once per anyio backend (a test module imports it to use it), skipping the
#: asyncio-only ones on trio with their reason.
@pytest.fixture(params=SDKS, ids=str, name="sdk")
def sdk_fixture(request: pytest.FixtureRequest, anyio_backend: str) -> Sdk:
    chosen: Sdk = request.param
    if anyio_backend == "trio" and chosen.asyncio_only:
        pytest.skip(chosen.asyncio_only)
    return chosen
