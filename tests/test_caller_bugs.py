"""The caller's own bugs are not provider failures: raised at once, unchanged, nothing counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from failover import Closed, PlatformManager, PlatformSpec, Policy
from failover._config.load import settings_from_toml
from failover._core.classify import CALLER_BUGS, ErrorKind, classify

pytestmark = pytest.mark.anyio

OP = "text_generation"
SPECS = [PlatformSpec("primary", "p-1"), PlatformSpec("secondary", "s-1")]


def _unbound() -> None:
    def inner() -> int:
        if False:
            value = 1
        return value

    inner()


BUGS: list[Exception] = [
    TypeError("unexpected keyword argument 'prompt'"),
    NameError("name 'reponse' is not defined"),
    AttributeError("'dict' object has no attribute 'choices'"),
    ImportError("cannot import name 'Client'"),
    AssertionError("expected a PNG"),
    NotImplementedError("video for this platform"),
    KeyError("quota"),
    IndexError("list index out of range"),
    ZeroDivisionError("division by zero"),
]


def untouched(manager: PlatformManager) -> None:
    """Every pair as a fresh manager has it: closed, no failures, no requests, no cool-down."""
    health = manager.get_health_status()
    for name in ("primary", "secondary"):
        assert health[name]["total_requests"] == 0
        assert health[name]["cooldown_reason"] is None
        detail = health[name]["operations"][OP]
        assert detail["state"] == "closed"
        assert detail["consecutive_failures"] == 0
        assert detail["last_error_kind"] is None


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: type(bug).__name__)
@pytest.mark.parametrize("policy", [None, Policy(deadline=30)], ids=["fast path", "walk"])
async def test_a_bug_propagates_unchanged_and_counts_nothing(
    bug: Exception, policy: Policy | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="failover")
    manager = PlatformManager({OP: SPECS}, environ={}, failure_threshold=1, policy=policy)
    tried: list[str] = []

    async def buggy(platform: PlatformSpec) -> str:
        tried.append(platform.name)
        raise bug

    for _ in range(3):
        with pytest.raises(type(bug)) as raised:
            await manager.with_fallback(OP, buggy)
        assert raised.value is bug
    assert tried == ["primary"] * 3  # no fallback
    untouched(manager)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 3  # once per call
    message = errors[0].getMessage()
    assert "primary" in message
    assert OP in message
    assert type(bug).__name__ in message
    assert str(bug.args[0]) not in message  # its text may quote the payload


async def test_unbound_local_error_is_a_bug() -> None:
    manager = PlatformManager({OP: SPECS}, environ={})

    async def buggy(platform: PlatformSpec) -> None:
        _unbound()

    with pytest.raises(UnboundLocalError):
        await manager.with_fallback(OP, buggy)
    untouched(manager)


def test_the_sync_api_does_the_same() -> None:
    manager = PlatformManager({OP: SPECS}, environ={}, failure_threshold=1)

    def buggy(platform: PlatformSpec) -> None:
        raise KeyError("choices")

    with pytest.raises(KeyError):
        manager.with_fallback_sync(OP, buggy)
    untouched(manager)


async def test_a_value_error_is_still_the_providers() -> None:
    """A provider's malformed answer raises ValueError (JSONDecodeError): it falls back."""
    manager = PlatformManager({OP: SPECS}, environ={})

    async def malformed(platform: PlatformSpec) -> str:
        if platform.name == "primary":
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return "ok"

    assert (await manager.with_fallback(OP, malformed))[1].name == "secondary"
    assert manager.get_health_status()["primary"]["total_requests"] == 1


async def test_a_platform_can_opt_back_in() -> None:
    manager = PlatformManager(
        {OP: SPECS}, environ={}, failure_threshold=1, caller_bugs_fall_back=["primary"]
    )

    async def parser_breaks_on_primary(platform: PlatformSpec) -> str:
        if platform.name == "primary":
            raise KeyError("choices")
        return "ok"

    assert (await manager.with_fallback(OP, parser_breaks_on_primary))[1].name == "secondary"
    detail = manager.get_health_status()["primary"]["operations"][OP]
    assert detail["state"] == "open"
    assert detail["last_error_kind"] == "transient"


def test_opting_in_from_toml_and_naming_an_unknown_platform() -> None:
    kwargs = settings_from_toml(
        {
            "priorities": {OP: ["groq/llama", "openai/gpt"]},
            "platforms": {"groq": {"caller_bugs_fall_back": True}},
        },
        "failover.toml",
    )
    assert kwargs["caller_bugs_fall_back"] == ["groq"]
    manager = PlatformManager(environ={}, **kwargs)
    assert classify(KeyError("x"), manager._pairs["groq", OP].classifiers).kind is (
        ErrorKind.TRANSIENT
    )
    assert classify(KeyError("x"), manager._pairs["openai", OP].classifiers).kind is (
        ErrorKind.CALLER_BUG
    )
    from failover import ConfigError

    with pytest.raises(ConfigError, match="caller_bugs_fall_back names platform 'nope'"):
        PlatformManager({OP: SPECS}, environ={}, caller_bugs_fall_back=["nope"])


async def test_a_bug_reported_by_hand_counts_nothing() -> None:
    manager = PlatformManager({OP: SPECS}, environ={}, failure_threshold=1)
    await manager.report_failure(SPECS[0], OP, TypeError("oops"))
    untouched(manager)


def test_the_documented_set() -> None:
    expected: set[Any] = {
        Closed,
        TypeError,
        NameError,
        AttributeError,
        ImportError,
        AssertionError,
        NotImplementedError,
        LookupError,
        ZeroDivisionError,
        RecursionError,
    }
    assert set(CALLER_BUGS) == expected
    assert issubclass(UnboundLocalError, NameError)
    assert classify(ValueError("odd")).kind is ErrorKind.TRANSIENT
