"""Configuration: PlatformManager.from_env, failover.toml and the process default manager."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import failover
from failover import (
    ConfigError,
    PlatformManager,
    PlatformSpec,
    UnknownOperation,
    default_manager,
    set_default_manager,
)
from failover.testing import FakeClock, ScriptedOperation

OP = "image_editing"


@pytest.fixture(autouse=True)
def fresh_default() -> Iterator[None]:
    """Every test starts and ends without a process default manager."""
    set_default_manager(None)
    yield
    set_default_manager(None)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in (
        "FAILOVER_CONFIG",
        "AI_FALLBACK_ENABLED",
        "AI_CACHE_TTL_SECONDS",
        "AI_COST_OPTIMIZATION",
        "AI_MONITORING_ENABLED",
    ):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def write(tmp_path: Path, text: str, name: str = "failover.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def from_file(tmp_path: Path, text: str, **environ: str) -> PlatformManager:
    path = write(tmp_path, text)
    return PlatformManager.from_env(environ={"FAILOVER_CONFIG": path, **environ})


def config_error(tmp_path: Path, text: str, **environ: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        PlatformManager.from_env(environ={"FAILOVER_CONFIG": path, **environ})
    assert caught.value.source == path, "the error must name the file"
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value


# -- the environment ---------------------------------------------------------------------------


def test_no_configuration_gives_the_builtin_table_and_defaults() -> None:
    manager = PlatformManager.from_env(environ={})

    assert manager.operations == (
        "image_generation",
        "image_editing",
        "text_generation",
        "video_generation",
    )
    assert [spec.name for spec in manager.platforms(OP)] == ["stability", "replicate", "fal"]
    assert manager.cache_ttl_seconds == 300
    assert manager.failure_threshold == 3
    assert manager.fallback_enabled is True
    assert manager.cost_optimization is False
    assert manager.monitoring_enabled is True


@pytest.mark.parametrize(
    ("variable", "text", "attribute", "value"),
    [
        ("AI_FALLBACK_ENABLED", "false", "fallback_enabled", False),
        ("AI_FALLBACK_ENABLED", "1", "fallback_enabled", True),
        ("AI_COST_OPTIMIZATION", "TRUE", "cost_optimization", True),
        ("AI_COST_OPTIMIZATION", " off ", "cost_optimization", False),
        ("AI_MONITORING_ENABLED", "no", "monitoring_enabled", False),
        ("AI_CACHE_TTL_SECONDS", "60", "cache_ttl_seconds", 60.0),
        ("AI_CACHE_TTL_SECONDS", "0.5", "cache_ttl_seconds", 0.5),
    ],
)
def test_ai_variables_are_honoured(variable: str, text: str, attribute: str, value: Any) -> None:
    manager = PlatformManager.from_env(environ={variable: text})

    assert getattr(manager, attribute) == value


def test_blank_ai_variable_means_unset() -> None:
    manager = PlatformManager.from_env(
        environ={"AI_CACHE_TTL_SECONDS": " ", "AI_FALLBACK_ENABLED": ""}
    )

    assert manager.cache_ttl_seconds == 300
    assert manager.fallback_enabled is True


@pytest.mark.anyio
async def test_fallback_disabled_by_env_tries_only_the_first_usable_platform() -> None:
    manager = PlatformManager.from_env(
        environ={"AI_FALLBACK_ENABLED": "false"},
        priorities={OP: [("alpha", "a"), ("beta", "b")]},
        clock=FakeClock(),
    )
    operation = ScriptedOperation({"alpha": [ConnectionError("down")]})

    with pytest.raises(failover.AllPlatformsFailed, match="fallback disabled"):
        await manager.with_fallback(OP, operation)

    assert operation.calls == ["alpha"]


@pytest.mark.anyio
async def test_cost_optimization_by_env_orders_by_estimated_cost() -> None:
    manager = PlatformManager.from_env(
        environ={"AI_COST_OPTIMIZATION": "true"},
        priorities={
            OP: [
                PlatformSpec("alpha", "a", estimated_cost=0.3),
                PlatformSpec("beta", "b", estimated_cost=0.1),
            ]
        },
    )

    assert (await manager.get_platform(OP)).name == "beta"
    assert (await manager.get_platform(OP, quality_boost=True)).name == "alpha"


@pytest.mark.anyio
async def test_monitoring_disabled_by_env_records_no_health() -> None:
    manager = PlatformManager.from_env(
        environ={"AI_MONITORING_ENABLED": "false"}, priorities={OP: [("alpha", "a")]}
    )

    await manager.with_fallback(OP, ScriptedOperation({}))

    assert manager.get_health_status()["alpha"]["total_requests"] == 0


@pytest.mark.anyio
async def test_ttl_from_env_sets_how_long_an_open_pair_is_skipped() -> None:
    clock = FakeClock()
    manager = PlatformManager.from_env(
        environ={"AI_CACHE_TTL_SECONDS": "30"},
        priorities={OP: [("alpha", "a"), ("beta", "b")]},
        clock=clock,
    )
    manager.force_open("alpha", OP)

    clock.advance(29)
    assert (await manager.get_platform(OP)).name == "beta"
    clock.advance(1)
    assert (await manager.get_platform(OP)).name == "alpha"


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("AI_FALLBACK_ENABLED", "maybe", "expected true or false"),
        ("AI_COST_OPTIMIZATION", "2", "expected true or false"),
        ("AI_MONITORING_ENABLED", "enabled", "expected true or false"),
        ("AI_CACHE_TTL_SECONDS", "five minutes", "expected a number of seconds"),
        ("AI_CACHE_TTL_SECONDS", "0", "> 0"),
        ("AI_CACHE_TTL_SECONDS", "-10", "> 0"),
        ("AI_CACHE_TTL_SECONDS", "inf", "> 0"),
        ("AI_CACHE_TTL_SECONDS", "nan", "> 0"),
    ],
)
def test_bad_ai_variable_names_the_variable(variable: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        PlatformManager.from_env(environ={variable: text})

    assert caught.value.source == variable
    assert caught.value.key == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert repr(text) in str(caught.value)


# -- the file ----------------------------------------------------------------------------------

FULL = """
[failover]
cache_ttl_seconds = 120
failure_threshold = 5
fallback_enabled = false
cost_optimization = true
monitoring_enabled = false
max_attempts = 2
attempt_timeout = 30
deadline = 90.5

[priorities]
image_editing = ["stability/sd-3.5-large", "replicate/flux", "fal/fal-3d"]
text_generation = [
    "groq/llama-3.3-70b-versatile",
    { name = "openai", model = "gpt-4o-mini", estimated_cost = 0.0009 },
    { name = "local", model = "llama", api_key_env = "" },
]

[operations.image_editing]
attempt_timeout = 45

[platforms.stability]
api_key_env = "MY_STABILITY_KEY"
estimated_cost = 0.05
attempt_timeout = 60
"""


def test_toml_file_sets_everything(tmp_path: Path) -> None:
    manager = from_file(tmp_path, FULL)

    assert manager.cache_ttl_seconds == 120
    assert manager.failure_threshold == 5
    assert manager.fallback_enabled is False
    assert manager.cost_optimization is True
    assert manager.monitoring_enabled is False
    assert manager.operations == ("image_editing", "text_generation")
    stability, replicate, fal = manager.platforms(OP)
    assert (stability.name, stability.model) == ("stability", "sd-3.5-large")
    assert stability.api_key_env == "MY_STABILITY_KEY"
    assert stability.estimated_cost == 0.05
    assert replicate.api_key_env == "REPLICATE_API_TOKEN"  # the well-known default
    assert [spec.priority for spec in (stability, replicate, fal)] == [0, 1, 2]
    _groq, openai, local = manager.platforms("text_generation")
    assert openai.estimated_cost == 0.0009
    assert local.api_key_env is None
    assert manager.breaker("stability", OP).fail_max == 5
    # Policies: platform over operation over manager; the deadline is per call.
    pairs = manager._pairs
    assert pairs[("stability", OP)].policy.attempt_timeout == 60
    assert pairs[("replicate", OP)].policy.attempt_timeout == 45
    assert pairs[("groq", "text_generation")].policy.attempt_timeout == 30
    assert manager._routes[OP].deadline == 90.5


def test_config_path_argument_wins_over_variable(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[failover]\ncache_ttl_seconds = 11\n", "chosen.toml")
    ignored = write(tmp_path, "[failover]\ncache_ttl_seconds = 22\n", "ignored.toml")

    manager = PlatformManager.from_env(environ={"FAILOVER_CONFIG": ignored}, config_path=chosen)

    assert manager.cache_ttl_seconds == 11


def test_platform_table_without_priorities_adjusts_the_builtin_table(tmp_path: Path) -> None:
    manager = from_file(
        tmp_path, '[platforms.fal]\nestimated_cost = 0.5\napi_key_env = "FAL_TOKEN"\n'
    )

    fal = next(spec for spec in manager.platforms(OP) if spec.name == "fal")
    assert fal.estimated_cost == 0.5
    assert fal.api_key_env == "FAL_TOKEN"
    assert "text_generation" in manager.operations


def test_precedence_kwargs_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[failover]\ncache_ttl_seconds = 100\nfailure_threshold = 7\ncost_optimization = true\n",
    )
    environ = {"FAILOVER_CONFIG": path, "AI_CACHE_TTL_SECONDS": "200", "AI_COST_OPTIMIZATION": "0"}

    from_env_and_file = PlatformManager.from_env(environ=environ)
    with_kwargs = PlatformManager.from_env(environ=environ, cache_ttl_seconds=300.5)

    assert from_env_and_file.cache_ttl_seconds == 200  # env over file
    assert from_env_and_file.cost_optimization is False  # env over file
    assert from_env_and_file.failure_threshold == 7  # file over default
    assert from_env_and_file.monitoring_enabled is True  # default
    assert with_kwargs.cache_ttl_seconds == 300.5  # kwargs over env


def test_from_env_reads_os_environ_by_default(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, "[failover]\nfailure_threshold = 4\n")
    clean_env.setenv("FAILOVER_CONFIG", path)
    clean_env.setenv("AI_CACHE_TTL_SECONDS", "42")

    manager = PlatformManager.from_env()

    assert manager.failure_threshold == 4
    assert manager.cache_ttl_seconds == 42


# -- every bad setting: one ConfigError naming the file, the key and what is wrong -----------------


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[failover]\ncache_ttl = 300\n", "failover.cache_ttl", "unknown key failover.cache_ttl"),
        ("cache_ttl_seconds = 300\n", "cache_ttl_seconds", "put it under \\[failover\\]"),
        ("[policy]\nretry = 3\n", "policy", "unknown key policy"),
        (
            "[failover]\ncache_ttl_seconds = 0\n",
            "failover.cache_ttl_seconds",
            "must be a number > 0",
        ),
        ("[failover]\ncache_ttl_seconds = -5\n", "failover.cache_ttl_seconds", "> 0, got -5"),
        ("[failover]\ncache_ttl_seconds = '300'\n", "failover.cache_ttl_seconds", "a number"),
        ("[failover]\ncache_ttl_seconds = inf\n", "failover.cache_ttl_seconds", "a number"),
        ("[failover]\nfailure_threshold = 0\n", "failover.failure_threshold", ">= 1, got 0"),
        ("[failover]\nfailure_threshold = -1\n", "failover.failure_threshold", ">= 1"),
        ("[failover]\nfailure_threshold = 2.5\n", "failover.failure_threshold", "an integer"),
        ("[failover]\nmax_attempts = 0\n", "failover.max_attempts", ">= 1"),
        ("[failover]\nfallback_enabled = 'no'\n", "failover.fallback_enabled", "true or false"),
        ("[failover]\nattempt_timeout = 0\n", "failover.attempt_timeout", "> 0"),
        ("[failover]\ndeadline = -1\n", "failover.deadline", "> 0"),
        ("[failover]\nopen_backoff = 0.5\n", "failover.open_backoff", ">= 1"),
        ("[failover]\ncontinue_on = 'content_policy'\n", "failover.continue_on", "list of strings"),
        ("failover = 3\n", "failover", "failover must be a table"),
        ("priorities = ['stability/x']\n", "priorities", "priorities must be a table"),
        ("[priorities]\nimage_editing = []\n", "priorities.image_editing", "non-empty list"),
        ("[priorities]\nimage_editing = 'a/b'\n", "priorities.image_editing", "non-empty list"),
        (
            "[priorities]\nimage_editing = ['stability/a', 'replicate/b', 'stability/c']\n",
            "priorities.image_editing",
            "lists platform 'stability' twice",
        ),
        (
            "[priorities]\nimage_editing = ['stability']\n",
            "priorities.image_editing[0]",
            "must look like 'platform/model', got 'stability'",
        ),
        (
            "[priorities]\nimage_editing = ['a/b', '/flux']\n",
            "priorities.image_editing[1]",
            "'platform/model'",
        ),
        (
            "[priorities]\nimage_editing = ['Stability AI/sd']\n",
            "priorities.image_editing[0]",
            "lowercase identifier",
        ),
        (
            "[priorities]\nimage_editing = [3]\n",
            "priorities.image_editing[0]",
            "'platform/model' or a table",
        ),
        (
            "[priorities]\nimage_editing = [{ name = 'a' }]\n",
            "priorities.image_editing[0]",
            "needs both 'name' and 'model'",
        ),
        (
            "[priorities]\nimage_editing = [{ name = 'a', model = 'b', cost = 1 }]\n",
            "priorities.image_editing[0].cost",
            "unknown key",
        ),
        (
            "[priorities]\nimage_editing = [{name = 'a', model = 'b', estimated_cost = 'x'}]\n",
            "priorities.image_editing[0].estimated_cost",
            "must be a number, got 'x'",
        ),
        ("[priorities]\n'Image Editing' = ['a/b']\n", "priorities.Image Editing", "lowercase"),
        (
            "[platforms.stability]\nestimated_cost = 'x'\n",
            "platforms.stability.estimated_cost",
            "a number",
        ),
        (
            "[platforms.stability]\nestimated_cost = -1\n",
            "platforms.stability.estimated_cost",
            ">= 0",
        ),
        (
            "[platforms.stability]\nattempt_timeout = 0\n",
            "platforms.stability.attempt_timeout",
            "> 0",
        ),
        ("[platforms.stability]\napi_key_env = 3\n", "platforms.stability.api_key_env", "a string"),
        ("[platforms.stability]\nmodel = 'x'\n", "platforms.stability.model", "unknown key"),
        ("[platforms]\nstability = 3\n", "platforms.stability", "must be a table"),
        ("[platforms.nobody]\nestimated_cost = 1\n", "platforms.nobody", "in no priority list"),
        (
            "[operations.image_edditing]\nattempt_timeout = 3\n",
            "operations.image_edditing",
            "unknown operation type 'image_edditing'; operations with a priority list: "
            "image_generation, image_editing, text_generation",
        ),
        (
            "[priorities]\ntext_generation = ['g/l']\n[operations.image_editing]\ndeadline = 3\n",
            "operations.image_editing",
            "operations with a priority list: text_generation",
        ),
        (
            "[operations.image_editing]\nretries = 3\n",
            "operations.image_editing.retries",
            "unknown",
        ),
        ("[operations.image_editing]\ndeadline = 0\n", "operations.image_editing.deadline", "> 0"),
    ],
)
def test_bad_file_setting_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    error = config_error(tmp_path, text)

    assert error.key == key
    assert key.split(".")[-1].split("[")[0] in str(error)
    assert re.search(message, str(error)), f"{message!r} not in {str(error)!r}"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[failover]\ncache_ttl_seconds = = 3\n")

    assert "not valid TOML" in str(error)
    assert "line 2" in str(error)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nowhere.toml")

    with pytest.raises(ConfigError, match="config file not found") as caught:
        PlatformManager.from_env(environ={"FAILOVER_CONFIG": path})

    assert caught.value.source == path


def test_file_error_reported_even_when_env_is_also_bad(tmp_path: Path) -> None:
    # The file is read first; one error at a time, the first one found.
    error = config_error(tmp_path, "[failover]\nbogus = 1\n", AI_FALLBACK_ENABLED="maybe")

    assert error.key == "failover.bogus"


def test_unknown_operation_in_policies_kwarg_names_bad_and_known() -> None:
    with pytest.raises(UnknownOperation) as caught:
        PlatformManager.from_env(
            environ={}, operation_policies={"image_edditing": failover.Policy(deadline=3)}
        )

    assert "'image_edditing'" in str(caught.value)
    assert "image_editing" in str(caught.value)


# -- the process default -----------------------------------------------------------------------


def test_default_manager_is_built_once_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AI_CACHE_TTL_SECONDS", "77")

    first = default_manager()

    assert first is default_manager()
    assert first.cache_ttl_seconds == 77
    clean_env.setenv("AI_CACHE_TTL_SECONDS", "88")
    assert default_manager() is first  # read once, not per call


def test_default_manager_reads_failover_config(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("FAILOVER_CONFIG", write(tmp_path, "[priorities]\nimage_editing = ['a/b']\n"))

    assert default_manager().operations == ("image_editing",)


def test_set_default_manager_replaces_and_none_rebuilds(clean_env: pytest.MonkeyPatch) -> None:
    mine = PlatformManager({OP: [("alpha", "a")]})

    set_default_manager(mine)
    assert default_manager() is mine

    set_default_manager(None)
    rebuilt = default_manager()
    assert rebuilt is not mine
    assert OP in rebuilt.operations


def test_set_default_manager_rejects_other_objects() -> None:
    with pytest.raises(ConfigError, match="expected a PlatformManager, got dict"):
        set_default_manager({})  # type: ignore[arg-type]


def test_failed_from_env_leaves_default_manager_unchanged(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = PlatformManager({OP: [("alpha", "a")]})
    set_default_manager(mine)
    clean_env.setenv("FAILOVER_CONFIG", write(tmp_path, "[failover]\nfailure_threshold = 0\n"))

    with pytest.raises(ConfigError):
        PlatformManager.from_env()

    assert default_manager() is mine


def test_bad_env_makes_default_manager_raise_until_fixed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AI_MONITORING_ENABLED", "sometimes")

    for _ in range(2):  # nothing half-built is kept between attempts
        with pytest.raises(ConfigError, match="AI_MONITORING_ENABLED"):
            default_manager()

    clean_env.setenv("AI_MONITORING_ENABLED", "false")
    assert default_manager().monitoring_enabled is False


# -- the constructor reads the AI_* variables, as the original manager did ------------------


def test_constructor_reads_the_ai_variables_it_is_not_given() -> None:
    environ = {
        "AI_CACHE_TTL_SECONDS": "60",
        "AI_FALLBACK_ENABLED": "false",
        "AI_COST_OPTIMIZATION": "yes",
        "AI_MONITORING_ENABLED": "0",
    }
    manager = PlatformManager(environ=environ)
    assert manager.cache_ttl_seconds == 60.0
    assert manager.fallback_enabled is False
    assert manager.cost_optimization is True
    assert manager.monitoring_enabled is False


def test_explicit_arguments_win_over_the_ai_variables() -> None:
    environ = {"AI_CACHE_TTL_SECONDS": "60", "AI_FALLBACK_ENABLED": "not-a-bool"}
    manager = PlatformManager(cache_ttl_seconds=120, fallback_enabled=True, environ=environ)
    assert manager.cache_ttl_seconds == 120
    assert manager.fallback_enabled is True  # the bad variable is never read


def test_trust_env_false_ignores_the_ai_variables() -> None:
    manager = PlatformManager(environ={"AI_CACHE_TTL_SECONDS": "60"}, trust_env=False)
    assert manager.cache_ttl_seconds == 300
    assert manager.fallback_enabled is True


def test_constructor_reads_os_environ_by_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AI_CACHE_TTL_SECONDS", "45")
    assert PlatformManager().cache_ttl_seconds == 45.0


def test_a_bad_ai_variable_read_by_the_constructor_is_named() -> None:
    with pytest.raises(ConfigError, match="AI_CACHE_TTL_SECONDS"):
        PlatformManager(environ={"AI_CACHE_TTL_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="trust_env"):
        PlatformManager(trust_env="no")  # type: ignore[arg-type]
