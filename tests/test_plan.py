"""failover._config.plan and build: arguments checked whole into a plan, then built."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from failover import Chaos, ConfigError, PlatformManager, Policy
from failover._config.build import build_routes
from failover._config.plan import ENV_DEFAULTS, ManagerPlan, make_plan, with_env_defaults
from failover._core.breaker import BreakerState
from failover._engine.route import Pair
from failover._observe import scrub

TEXT = "text_generation"
IMAGE = "image_editing"


def plan(**changes: Any) -> ManagerPlan:
    """A plan from PlatformManager's defaults, with ``changes``."""
    parameters = inspect.signature(PlatformManager.__init__).parameters
    kwargs = {
        name: parameter.default
        for name, parameter in parameters.items()
        if name not in ("self", "tracer_provider", "meter_provider", "trust_env")
    }
    kwargs["priorities"] = {
        TEXT: [("groq", "llama"), ("openai", "gpt")],
        IMAGE: [("stability", "sd"), ("groq", "vision")],
    }
    kwargs["environ"] = {}
    kwargs.update(changes)
    # The settings the AI_* variables may give default to None ("not given") in the signature.
    kwargs.update(with_env_defaults({key: kwargs[key] for key in ENV_DEFAULTS}, {}, True))
    return make_plan(**kwargs)


def test_plan_is_frozen_and_holds_checked_values() -> None:
    made = plan(cache_ttl_seconds=120, policy=Policy(deadline=30))
    with pytest.raises(AttributeError):  # an immutable record
        made.cache_ttl_seconds = 1  # type: ignore[misc]
    assert made.cache_ttl_seconds == 120.0
    assert made.breaker.reset_timeout == 120.0
    assert made.engine.auth_cooldown_seconds == 480.0
    assert [spec.name for spec in made.specs[TEXT]] == ["groq", "openai"]
    assert made.operation_policies[TEXT].deadline == 30
    assert made.api_key_envs == {"GROQ_API_KEY", "OPENAI_API_KEY", "STABILITY_API_KEY"}


def test_pairs_without_a_platform_policy_share_one_resolved_policy() -> None:
    made = plan(platform_policies={"openai": Policy(attempt_timeout=5)})
    policies = made.pair_policies
    assert policies["groq", TEXT] is not policies["openai", TEXT]
    assert policies["openai", TEXT].attempt_timeout == 5
    assert policies["stability", IMAGE] is policies["groq", IMAGE]


def test_a_bad_argument_registers_nothing() -> None:
    live = set(scrub._LIVE)
    with pytest.raises(ConfigError, match=r"chaos must be a failover\.Chaos"):
        PlatformManager(priorities={TEXT: [("groq", "llama")]}, environ={}, chaos=["x"])  # type: ignore[list-item]
    assert set(scrub._LIVE) == live


def test_chaos_rules_come_from_the_plan() -> None:
    rule = Chaos(fault_rate=0.5)
    assert plan(chaos=rule).chaos == (rule,)
    assert plan(environ={"FAILOVER_CHAOS": ""}).chaos == ()


def test_build_gives_each_platform_one_state_and_each_pair_its_breaker() -> None:
    heard: list[tuple[str, BreakerState]] = []

    def listener_for(pair: Pair) -> Any:
        return lambda change: heard.append((pair.spec.name, change.new))

    built = build_routes(plan(), listener_for)
    groq_text, groq_image = built.pairs["groq", TEXT], built.pairs["groq", IMAGE]
    assert groq_text.platform is groq_image.platform is built.platforms["groq"]
    assert groq_text.breaker is not groq_image.breaker
    assert [pair.spec.name for pair in built.routes[TEXT].pairs] == ["groq", "openai"]
    groq_text.breaker.isolate()
    assert heard == [("groq", BreakerState.OPEN)]
