"""failover.sdk: SDK clients without their own retries, so failover sees the first error."""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import pytest

from failover import ConfigError, PlatformManager, PlatformSpec
from failover.sdk import DEFAULT_TIMEOUT, anthropic_client, openai_client
from failover.testing import Behaviour, FakeProviderServer

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


def test_a_missing_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ImportError, match="pip install anthropic"):
        anthropic_client()


@pytest.mark.parametrize(("keyword", "value"), [("timeout", 0), ("timeout", "5"), ("sync", 1)])
def test_bad_settings_name_the_parameter(
    stand_in_anthropic: types.ModuleType, keyword: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=keyword):
        anthropic_client(**{keyword: value})


async def test_with_the_official_sdk_a_rate_limited_primary_falls_back_at_once() -> None:
    openai = pytest.importorskip("openai")
    behaviours = {"openai": Behaviour.rate_limited(retry_after=20)}
    async with FakeProviderServer(behaviours=behaviours) as server:
        clients = {
            name: openai_client(api_key="sk-test", base_url=server.base_url(name))
            for name in ("openai", "groq")
        }
        assert isinstance(clients["openai"], openai.AsyncOpenAI)
        manager = PlatformManager(
            {
                "text_generation": [
                    PlatformSpec("openai", "gpt-4o-mini", api_key_env=None),
                    PlatformSpec("groq", "llama", api_key_env=None),
                ]
            }
        )

        async def chat(platform: PlatformSpec) -> str:
            reply = await clients[platform.name].chat.completions.create(
                model=platform.model, messages=[{"role": "user", "content": "hi"}]
            )
            return str(reply.choices[0].message.content)

        started = time.perf_counter()
        _, spec = await manager.with_fallback("text_generation", chat)
        elapsed = time.perf_counter() - started
        for client in clients.values():
            await client.close()
    assert spec.name == "groq"
    assert server.stats()["openai"]["total"] == 1  # a default client sends 3, over 40 s
    assert elapsed < 5
    status = manager.get_health_status()["openai"]["operations"]["text_generation"]
    assert status["skip_reason"] == "rate_limited"  # a cool-down, not a breaker failure
