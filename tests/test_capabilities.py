"""Capabilities: platforms declare a context window and features; calls require some."""

from __future__ import annotations

from typing import Any

import pytest

from failover import (
    AllPlatformsFailed,
    BadRequest,
    ConfigError,
    PlatformManager,
    PlatformSpec,
    Policy,
)
from failover._config.load import settings_from_toml

pytestmark = pytest.mark.anyio

TEXT = "text_generation"
EDIT = "image_editing"
SMALL = PlatformSpec("small", "s", context_window=8_000, features=frozenset({"json"}))
MEDIUM = PlatformSpec("medium", "m", context_window=32_000)
LARGE = PlatformSpec("large", "l", context_window=200_000, features={"json", "vision"})  # type: ignore[arg-type]


def test_the_spec_stays_backward_compatible() -> None:
    plain = PlatformSpec("groq", "llama")
    assert plain.context_window is None
    assert plain.features == frozenset()
    assert repr(plain) == (
        "PlatformSpec(name='groq', model='llama', operation_types=frozenset(), priority=0, "
        "estimated_cost=0.0, estimated_time=0.0, api_key_env='GROQ_API_KEY')"
    )
    assert LARGE.features == frozenset({"json", "vision"})
    with pytest.raises(ConfigError, match="context_window"):
        PlatformSpec("x", "y", context_window=0)


def test_the_built_in_table_fills_the_well_known_ones() -> None:
    manager = PlatformManager(environ={})
    claude = manager._pairs["anthropic", TEXT].spec
    assert claude.context_window == 200_000
    assert "vision" in claude.features
    assert "mask" in manager._pairs["stability", EDIT].spec.features


async def _served(manager: PlatformManager, **context: Any) -> tuple[str, list[str]]:
    tried: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        tried.append(platform.name)
        return platform.name

    result, _ = await manager.with_fallback(TEXT, operation, failover_context=context)
    return result, tried


async def test_a_call_requiring_capabilities_skips_the_platforms_that_lack_them() -> None:
    manager = PlatformManager({TEXT: [SMALL, MEDIUM, LARGE]}, environ={})
    assert await _served(manager, require={"context_window": 20_000}) == ("medium", ["medium"])
    assert await _served(manager, require=["vision"]) == ("large", ["large"])
    assert await _served(manager, require={"features": ["json"]}) == ("small", ["small"])
    assert await _served(manager) == ("small", ["small"])
    spec = await manager.get_platform(TEXT, require={"context_window": 100_000})
    assert spec.name == "large"
    with pytest.raises(AllPlatformsFailed) as failed:
        await _served(manager, require=["mask"])
    reasons = {attempt.platform: attempt.skip_reason for attempt in failed.value.attempts}
    assert reasons == dict.fromkeys(["small", "medium", "large"], "incapable")
    with pytest.raises(ConfigError, match="require"):
        await _served(manager, require=42)


def test_the_sync_api_honours_require() -> None:
    manager = PlatformManager({TEXT: [SMALL, MEDIUM, LARGE]}, environ={})
    _, spec = manager.with_fallback_sync(
        TEXT, lambda platform: platform.name, failover_context={"require": ["vision"]}
    )
    assert spec.name == "large"


async def test_after_a_context_window_failure_only_larger_windows_are_tried() -> None:
    unknown = PlatformSpec("unknown", "u")  # declares no window: still tried
    manager = PlatformManager({TEXT: [MEDIUM, SMALL, unknown, LARGE]}, environ={})
    tried: list[str] = []

    async def operation(platform: PlatformSpec) -> str:
        tried.append(platform.name)
        if platform.name in ("medium", "unknown"):
            raise BadRequest("prompt is too long", reason="context_window")
        return platform.name

    result, _ = await manager.with_fallback(TEXT, operation)
    assert result == "large"
    assert tried == ["medium", "unknown", "large"]  # small (8k < 32k) was not tried


async def test_content_policy_fallback_per_operation() -> None:
    specs = [PlatformSpec("strict", "a"), PlatformSpec("lenient", "b")]

    async def refuse(platform: PlatformSpec) -> str:
        if platform.name == "strict":
            raise BadRequest("rejected by our safety system", reason="content_policy")
        return platform.name

    default = PlatformManager({TEXT: specs, EDIT: specs}, environ={})
    assert (await default.with_fallback(TEXT, refuse))[0] == "lenient"
    manager = PlatformManager(
        {TEXT: specs, EDIT: specs},
        environ={},
        operation_policies={EDIT: Policy(content_policy_fallback=False)},
    )
    assert (await manager.with_fallback(TEXT, refuse))[0] == "lenient"
    with pytest.raises(BadRequest):
        await manager.with_fallback(EDIT, refuse)
    with pytest.raises(ConfigError, match="content_policy_fallback"):
        PlatformManager(
            {TEXT: specs},
            environ={},
            platform_policies={"strict": Policy(content_policy_fallback=False)},
        )


def test_toml_declares_capabilities_and_the_setting() -> None:
    kwargs = settings_from_toml(
        {
            "priorities": {TEXT: ["groq/llama", {"name": "mine", "model": "x", "features": ["a"]}]},
            "platforms": {"groq": {"context_window": 4096, "features": ["json"]}},
            "operations": {TEXT: {"content_policy_fallback": False}},
        },
        "failover.toml",
    )
    manager = PlatformManager(environ={}, **kwargs)
    groq = manager._pairs["groq", TEXT].spec
    assert (groq.context_window, groq.features) == (4096, frozenset({"json"}))
    assert manager._pairs["mine", TEXT].spec.features == frozenset({"a"})
    assert manager._routes[TEXT].continue_on is not None
    assert "content_policy" not in manager._routes[TEXT].continue_on
