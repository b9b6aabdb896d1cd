"""failover.sdk: SDK clients without their own retries, so failover sees the first error.

The helpers' constructor arguments are checked on stand-ins; what they are for, a rate-limited
primary answered by the fallback at once, is checked through every official SDK against the
fake provider server (``sdk_support``).
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import pytest

from failover import ConfigError, PlatformManager, PlatformSpec
from failover.sdk import DEFAULT_TIMEOUT, anthropic_client, genai_client, openai_client
from failover.testing import Behaviour, FakeProviderServer
from sdk_support import SDKS, Sdk, fal_pointed_at, sdk_fixture  # noqa: F401  (the sdk fixture)

pytestmark = pytest.mark.anyio


class StandIn:
    """Records what the helper passed to the SDK's constructor."""

    def __init__(self, **options: Any) -> None:
        self.options = options


@pytest.fixture
def stand_in_anthropic(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("anthropic")
    module.Anthropic = type("Anthropic", (StandIn,), {})  # type: ignore[attr-defined]
    module.AsyncAnthropic = type("AsyncAnthropic", (StandIn,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anthropic", module)
    return module


def test_the_client_has_no_retries_and_a_bounded_timeout(
    stand_in_anthropic: types.ModuleType,
) -> None:
    client = anthropic_client(api_key="k")
    assert type(client).__name__ == "AsyncAnthropic"
    assert client.options == {"timeout": DEFAULT_TIMEOUT, "max_retries": 0, "api_key": "k"}
    client = anthropic_client(sync=True, timeout=5, max_retries=1)
    assert type(client).__name__ == "Anthropic"
    assert client.options == {"timeout": 5, "max_retries": 1}  # an explicit choice is kept


def test_the_real_clients_take_the_settings() -> None:
    import anthropic
    import openai

    client = openai_client(api_key="k", timeout=7)
    assert isinstance(client, openai.AsyncOpenAI)
    assert (client.max_retries, client.timeout) == (0, 7)
    blocking = anthropic_client(api_key="k", sync=True)
    assert isinstance(blocking, anthropic.Anthropic)
    assert (blocking.max_retries, blocking.timeout) == (0, DEFAULT_TIMEOUT)


def test_a_missing_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ImportError, match="pip install anthropic"):
        anthropic_client()
    monkeypatch.setitem(sys.modules, "google.genai", None)
    with pytest.raises(ImportError, match="genai_client needs the google-genai SDK"):
        genai_client()


@pytest.mark.parametrize(("keyword", "value"), [("timeout", 0), ("timeout", "5"), ("sync", 1)])
def test_bad_settings_name_the_parameter(
    stand_in_anthropic: types.ModuleType, keyword: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=keyword):
        anthropic_client(**{keyword: value})


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), "5"])
def test_genai_client_refuses_a_bad_timeout(timeout: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        genai_client(timeout=timeout)  # type: ignore[arg-type]


# -- google-genai ------------------------------------------------------------------------------


@pytest.fixture
def stand_in_genai(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.genai

    monkeypatch.setattr(google.genai, "Client", type("Client", (StandIn,), {}))


def test_genai_client_sets_milliseconds_and_one_attempt(stand_in_genai: None) -> None:
    client = genai_client(api_key="k", timeout=2.5)
    http_options = client.options["http_options"]
    assert client.options["api_key"] == "k"
    assert http_options.timeout == 2500  # google-genai counts milliseconds
    assert http_options.retry_options.attempts == 1  # aiohttp's hidden retry stays off too
    assert genai_client().options["http_options"].timeout == DEFAULT_TIMEOUT * 1000


def test_genai_client_keeps_what_http_options_already_say(stand_in_genai: None) -> None:
    from google.genai import types as genai_types

    retries = genai_types.HttpRetryOptions(attempts=3)
    given = genai_types.HttpOptions(base_url="http://127.0.0.1:1/", retry_options=retries)
    http_options = genai_client(http_options=given).options["http_options"]
    assert http_options.retry_options is retries  # an explicit choice is kept
    assert (http_options.base_url, http_options.timeout) == ("http://127.0.0.1:1/", 60_000)
    assert (given.timeout, given.retry_options) == (None, retries)  # the caller's is unchanged
    as_dict = genai_client(http_options={"timeout": 1234}).options["http_options"]
    assert (as_dict.timeout, as_dict.retry_options.attempts) == (1234, 1)


async def test_genai_client_timeout_is_in_seconds() -> None:
    """A reply after 0.2 s comes within a 1 s timeout (not 1 ms); no reply times out."""
    from google.genai import types as genai_types

    behaviour = Behaviour.sequence([Behaviour.healthy(latency=0.2), Behaviour.hanging()])
    async with FakeProviderServer(behaviours={"google": behaviour}) as server:
        import httpx

        async with httpx.AsyncClient() as http:  # runs on asyncio and trio alike
            base_url = f"{server.url}/google"
            options = genai_types.HttpOptions(base_url=base_url, httpx_async_client=http)
            client = genai_client(api_key="k", http_options=options, timeout=1)
            reply = await client.aio.models.generate_content(model="gemini", contents="hi")
            assert reply.text.startswith("Fake google reply")
            started = time.perf_counter()
            with pytest.raises(httpx.TimeoutException):
                await client.aio.models.generate_content(model="gemini", contents="hi")
            assert 0.9 < time.perf_counter() - started < 5
        assert server.stats()["google"]["total"] == 2


async def test_genai_own_async_client_runs_on_asyncio_only(anyio_backend: str) -> None:
    """Why docs/sdks.md gives google-genai an httpx client on trio: its own async client keeps
    a connection pool per asyncio loop. (When this starts passing on trio, update the docs.)"""
    async with FakeProviderServer() as server:
        client = genai_client(api_key="k", http_options={"base_url": f"{server.url}/google"})
        try:
            if anyio_backend == "asyncio":
                await client.aio.models.generate_content(model="gemini", contents="hi")
            else:
                with pytest.raises(RuntimeError, match="no running event loop"):
                    await client.aio.models.generate_content(model="gemini", contents="hi")
        finally:
            await client.aio.aclose()


# -- the scenario of docs/sdks.md, through every SDK ---------------------------------------------


async def test_with_the_official_sdk_a_rate_limited_primary_falls_back_at_once(sdk: Sdk) -> None:
    manager = PlatformManager(
        {
            sdk.operation: [
                PlatformSpec(sdk.platform, sdk.model, api_key_env=None),
                PlatformSpec("backup", "local", api_key_env=None),
            ]
        }
    )
    behaviours = {sdk.platform: Behaviour.rate_limited(retry_after=20)}
    async with FakeProviderServer(behaviours=behaviours) as server:

        async def operation(platform: PlatformSpec) -> Any:
            if platform.name == "backup":
                return "served by the backup"
            return await sdk.call(server, DEFAULT_TIMEOUT)

        started = time.perf_counter()
        _, spec = await manager.with_fallback(sdk.operation, operation)
        elapsed = time.perf_counter() - started
        requests = server.stats()[sdk.platform]["total"]
    assert spec.name == "backup"
    assert requests == 1  # default openai/anthropic clients send 3 over 40 s; fal-client 10
    assert elapsed < 5
    status = manager.get_health_status()[sdk.platform]["operations"][sdk.operation]
    assert status["skip_reason"] == "rate_limited"  # a cool-down, not a breaker failure


def test_fal_client_ships_ten_attempts_a_request() -> None:
    """docs/sdks.md's fal-client figures (10 requests) and advice (set MAX_ATTEMPTS to 1)
    rest on this module constant; if fal-client renames or changes it, this says so."""
    import fal_client.client

    assert fal_client.client.MAX_ATTEMPTS == 10
    assert 429 in fal_client.client.RETRY_CODES


async def test_fal_client_with_its_shipped_attempts_retries_a_rate_limit(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default that docs/sdks.md measures: fal-client sends a rate-limited request again
    (here 3 attempts, its back-off shortened so the test does not wait it out)."""
    if anyio_backend == "trio":
        pytest.skip("fal-client's async client waits with asyncio.sleep (retries): asyncio only")
    import fal_client
    import fal_client.client

    monkeypatch.setattr(fal_client.client, "_get_retry_delay", lambda *args, **kwargs: 0.0)
    behaviours = {"fal": Behaviour.rate_limited(retry_after=20)}
    async with FakeProviderServer(behaviours=behaviours) as server:
        with fal_pointed_at(server, attempts=3):
            client = fal_client.AsyncClient(key="k")
            with pytest.raises(fal_client.client.FalClientHTTPError):
                await client.subscribe("fal-ai/flux/schnell", {"prompt": "a fox"})
            await (await client._client).aclose()
        assert server.stats()["fal"] == {"total": 3, "rate_limited": 3}
