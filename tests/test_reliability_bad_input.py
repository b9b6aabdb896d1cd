"""Bad input corpus: malformed configurations and API misuses, each one clear error.

Every case raises exactly the expected exception type, its message names the field or
argument at fault, and nothing is left half-configured (a failed ``from_env`` or
``set_default_manager`` leaves the previous default manager in place; a refused report
changes no counter). ``docs/errors.md`` lists every case with its message; it is generated
from this corpus, and a test fails when the two drift apart::

    .venv/bin/python tests/test_reliability_bad_input.py > docs/errors.md
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import tenacity

import failover
from failover import (
    Closed,
    ConfigError,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    UnknownOperation,
    fallback,
    in_thread,
    set_default_manager,
)

TEXT = "text_generation"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def manager(**kwargs: Any) -> PlatformManager:
    kwargs.setdefault("priorities", {TEXT: [("groq", "llama"), ("openai", "gpt")]})
    return PlatformManager(environ={}, **kwargs)


def toml(text: str) -> Callable[[Path], Any]:
    """A case that loads a failover.toml with ``text`` through ``from_env``."""

    def load(directory: Path) -> Any:
        path = directory / "failover.toml"
        path.write_text(textwrap.dedent(text))
        return PlatformManager.from_env(environ={}, config_path=str(path))

    load.toml = textwrap.dedent(text).strip()  # type: ignore[attr-defined]
    return load


def toml_bytes(data: bytes) -> Callable[[Path], Any]:
    """A case that loads a failover.toml of raw ``data`` (not necessarily UTF-8)."""

    def load(directory: Path) -> Any:
        path = directory / "failover.toml"
        path.write_bytes(data)
        return PlatformManager.from_env(environ={}, config_path=str(path))

    return load


def env(**variables: str) -> Callable[[Path], Any]:
    def load(directory: Path) -> Any:
        return PlatformManager.from_env(environ=variables)

    return load


async def _no_platform_parameter(*, text: str) -> str:
    return text


async def _report_non_exception() -> None:
    m = manager()
    await m.report_failure(m.platforms(TEXT)[0], TEXT, "HTTP 500")  # type: ignore[arg-type]


async def _unknown_operation() -> None:
    await manager().get_platform("text_generaton")


async def _unknown_operation_with_fallback() -> None:
    async def op(platform: PlatformSpec) -> str:
        return "never called"

    await manager().with_fallback("image_edit", op)


async def _context_not_mapping() -> None:
    async def op(platform: PlatformSpec) -> str:
        return "never called"

    await manager().with_fallback(TEXT, op, failover_context="quality_boost")


async def _negative_response_time() -> None:
    m = manager()
    await m.report_success(m.platforms(TEXT)[0], TEXT, response_time=-0.5)


async def _platform_not_in_operation() -> None:
    await manager().report_success(PlatformSpec("stability", "sd"), TEXT)


async def _get_platform_unhashable() -> None:
    await manager().get_platform([])  # type: ignore[arg-type]


async def _report_failure_spec_not_a_spec() -> None:
    await manager().report_failure({}, TEXT, ValueError("x"))  # type: ignore[arg-type]


async def _report_success_unhashable_operation() -> None:
    m = manager()
    await m.report_success(m.platforms(TEXT)[0], [])  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    id: str
    what: str
    call: Callable[..., Any]
    error: type[BaseException]
    names: str  # the field or argument the message must name


async def _async_operation(platform: PlatformSpec) -> str:
    return platform.name


def _enter_closed() -> None:
    closed = manager()
    closed.close()
    with closed:
        pass


CORPUS: list[Case] = [
    # -- PlatformManager(...) -------------------------------------------------------------
    Case(
        "priorities_not_a_mapping",
        "priorities given as a list",
        lambda _: PlatformManager([("groq", "llama")]),  # type: ignore[arg-type]
        ConfigError,
        "priorities",
    ),
    Case(
        "empty_priority_list",
        "an operation with no platforms",
        lambda _: manager(priorities={TEXT: []}),
        ConfigError,
        "priorities['text_generation']",
    ),
    Case(
        "platform_listed_twice",
        "the same platform twice in one list",
        lambda _: manager(priorities={TEXT: [("groq", "a"), ("groq", "b")]}),
        ConfigError,
        "'groq'",
    ),
    Case(
        "priority_entry_not_a_pair",
        "an entry that is not (name, model)",
        lambda _: manager(priorities={TEXT: [("groq",)]}),
        ConfigError,
        "priorities['text_generation']",
    ),
    Case(
        "priority_list_is_a_string",
        "a list given as one string",
        lambda _: manager(priorities={TEXT: "groq/llama"}),
        ConfigError,
        "priorities['text_generation']",
    ),
    Case(
        "bad_operation_name",
        "an operation type that is not snake_case",
        lambda _: manager(priorities={"Text Generation": [("groq", "llama")]}),
        ConfigError,
        "Text Generation",
    ),
    Case(
        "ttl_zero",
        "zero TTL",
        lambda _: manager(cache_ttl_seconds=0),
        ConfigError,
        "cache_ttl_seconds",
    ),
    Case(
        "ttl_negative",
        "negative TTL",
        lambda _: manager(cache_ttl_seconds=-300),
        ConfigError,
        "cache_ttl_seconds",
    ),
    Case(
        "ttl_not_a_number",
        "TTL given as text",
        lambda _: manager(cache_ttl_seconds="300"),
        ConfigError,
        "cache_ttl_seconds",
    ),
    Case(
        "threshold_zero",
        "zero failure threshold",
        lambda _: manager(failure_threshold=0),
        ConfigError,
        "failure_threshold",
    ),
    Case(
        "threshold_negative",
        "negative failure threshold",
        lambda _: manager(failure_threshold=-3),
        ConfigError,
        "failure_threshold",
    ),
    Case(
        "threshold_fractional",
        "fractional failure threshold",
        lambda _: manager(failure_threshold=2.5),
        ConfigError,
        "failure_threshold",
    ),
    Case(
        "half_open_max_calls_zero",
        "no probe allowed at half-open",
        lambda _: manager(half_open_max_calls=0),
        ConfigError,
        "half_open_max_calls",
    ),
    Case(
        "success_threshold_zero",
        "zero success threshold",
        lambda _: manager(success_threshold=0),
        ConfigError,
        "success_threshold",
    ),
    Case(
        "probe_lease_zero",
        "a probe lease of zero seconds",
        lambda _: manager(probe_lease_seconds=0),
        ConfigError,
        "probe_lease_seconds",
    ),
    Case(
        "open_backoff_below_one",
        "an open backoff that shrinks",
        lambda _: manager(open_backoff=0.5),
        ConfigError,
        "open_backoff",
    ),
    Case(
        "max_attempts_zero",
        "no attempt allowed",
        lambda _: manager(max_attempts=0),
        ConfigError,
        "max_attempts",
    ),
    Case(
        "flag_not_a_bool",
        'fallback_enabled="yes"',
        lambda _: manager(fallback_enabled="yes"),
        ConfigError,
        "fallback_enabled",
    ),
    Case(
        "continue_on_a_string",
        "continue_on given as one string",
        lambda _: manager(continue_on="content_policy"),
        ConfigError,
        "continue_on",
    ),
    Case(
        "operation_policy_for_unknown_operation",
        "operation_policies for an operation with no list",
        lambda _: manager(operation_policies={"image_editing": Policy(attempt_timeout=5)}),
        UnknownOperation,
        "image_editing",
    ),
    Case(
        "classifier_for_unknown_platform",
        "classifiers for a platform in no list",
        lambda _: manager(classifiers={"stability": [lambda exc: None]}),
        ConfigError,
        "stability",
    ),
    Case(
        "when_all_unavailable_unknown",
        "an unknown last-resort mode",
        lambda _: manager(when_all_unavailable="sometimes"),
        ConfigError,
        "when_all_unavailable",
    ),
    # -- PlatformSpec, Policy, errors -------------------------------------------------------
    Case(
        "cost_not_a_number",
        "estimated_cost given as text",
        lambda _: PlatformSpec("groq", "llama", estimated_cost="cheap"),  # type: ignore[arg-type]
        ConfigError,
        "estimated_cost",
    ),
    Case(
        "cost_negative",
        "a negative estimated cost",
        lambda _: PlatformSpec("groq", "llama", estimated_cost=-0.01),
        ConfigError,
        "estimated_cost",
    ),
    Case(
        "attempt_timeout_zero",
        "Policy(attempt_timeout=0)",
        lambda _: Policy(attempt_timeout=0),
        ConfigError,
        "attempt_timeout",
    ),
    Case(
        "deadline_negative",
        "Policy(deadline=-1)",
        lambda _: Policy(deadline=-1),
        ConfigError,
        "deadline",
    ),
    Case(
        "retry_not_a_retry",
        "Policy(retry=<a tenacity stop>)",
        lambda _: Policy(retry=tenacity.stop_after_attempt(3)),  # type: ignore[arg-type]
        ConfigError,
        "retry",
    ),
    Case(
        "retry_after_negative",
        "RateLimited(retry_after=-1)",
        lambda _: RateLimited("slow down", retry_after=-1),
        ConfigError,
        "retry_after",
    ),
    # -- failover.toml and the environment ------------------------------------------------
    Case(
        "toml_unknown_key",
        "an unknown key under [failover]",
        toml("[failover]\nretries = 3\n"),
        ConfigError,
        "failover.retries",
    ),
    Case(
        "toml_unknown_table",
        "an unknown top-level table",
        toml("[retry]\nattempts = 3\n"),
        ConfigError,
        "retry",
    ),
    Case(
        "toml_syntax_error",
        "a TOML syntax error",
        toml("[failover\ncache_ttl_seconds = 300\n"),
        ConfigError,
        "failover.toml",
    ),
    Case(
        "toml_ttl_zero",
        "cache_ttl_seconds = 0 in the file",
        toml("[failover]\ncache_ttl_seconds = 0\n"),
        ConfigError,
        "failover.cache_ttl_seconds",
    ),
    Case(
        "toml_cost_not_a_number",
        'estimated_cost = "cheap" in the file',
        toml('[platforms.groq]\nestimated_cost = "cheap"\n'),
        ConfigError,
        "platforms.groq.estimated_cost",
    ),
    Case(
        "toml_entry_without_model",
        "a priority entry without a model",
        toml('[priorities]\ntext_generation = ["groq"]\n'),
        ConfigError,
        "priorities.text_generation[0]",
    ),
    Case(
        "toml_platform_twice",
        "the same platform twice in the file",
        toml('[priorities]\ntext_generation = ["groq/a", "groq/b"]\n'),
        ConfigError,
        "priorities.text_generation",
    ),
    Case(
        "toml_operations_unknown",
        "[operations.x] for an operation with no list",
        toml(
            '[priorities]\ntext_generation = ["groq/a"]\n'
            "[operations.image_editing]\nattempt_timeout = 5\n"
        ),
        ConfigError,
        "operations.image_editing",
    ),
    Case(
        "toml_missing_file",
        "a config path that does not exist",
        lambda directory: PlatformManager.from_env(
            environ={}, config_path=str(directory / "missing.toml")
        ),
        ConfigError,
        "missing.toml",
    ),
    Case(
        "env_ttl_not_a_number",
        "AI_CACHE_TTL_SECONDS=soon",
        env(AI_CACHE_TTL_SECONDS="soon"),
        ConfigError,
        "AI_CACHE_TTL_SECONDS",
    ),
    Case(
        "env_ttl_negative",
        "AI_CACHE_TTL_SECONDS=-1",
        env(AI_CACHE_TTL_SECONDS="-1"),
        ConfigError,
        "AI_CACHE_TTL_SECONDS",
    ),
    Case(
        "env_flag_not_a_bool",
        "AI_FALLBACK_ENABLED=maybe",
        env(AI_FALLBACK_ENABLED="maybe"),
        ConfigError,
        "AI_FALLBACK_ENABLED",
    ),
    # -- API misuse -------------------------------------------------------------------------
    Case(
        "unknown_operation",
        "get_platform() with a misspelt operation",
        lambda _: _unknown_operation(),
        UnknownOperation,
        "text_generaton",
    ),
    Case(
        "unknown_operation_with_fallback",
        "with_fallback() with an unknown operation",
        lambda _: _unknown_operation_with_fallback(),
        UnknownOperation,
        "image_edit",
    ),
    Case(
        "decorated_function_without_platform",
        "@fallback on a function with no positional platform parameter",
        lambda _: fallback(TEXT, manager=manager())(_no_platform_parameter),
        TypeError,
        "platform",
    ),
    Case(
        "report_failure_not_an_exception",
        "report_failure() given a string",
        lambda _: _report_non_exception(),
        ConfigError,
        "error",
    ),
    Case(
        "report_negative_response_time",
        "report_success(response_time=-0.5)",
        lambda _: _negative_response_time(),
        ConfigError,
        "response_time",
    ),
    Case(
        "report_platform_not_configured",
        "report_success() for a platform not in the operation's list",
        lambda _: _platform_not_in_operation(),
        ConfigError,
        "stability",
    ),
    Case(
        "failover_context_not_a_mapping",
        "with_fallback(failover_context='...')",
        lambda _: _context_not_mapping(),
        ConfigError,
        "failover_context",
    ),
    Case(
        "force_open_zero_seconds",
        "force_open(seconds=0)",
        lambda _: manager().force_open("groq", TEXT, seconds=0),
        ConfigError,
        "seconds",
    ),
    Case(
        "reset_unknown_platform",
        "reset() of a platform that is not configured",
        lambda _: manager().reset("stability"),
        ConfigError,
        "stability",
    ),
    Case(
        "record_cost_negative",
        "record_cost(cost=-1)",
        lambda _: manager().record_cost("groq", TEXT, -1),
        ConfigError,
        "cost",
    ),
    Case(
        "set_default_manager_not_a_manager",
        "set_default_manager() given a dict",
        lambda _: set_default_manager({"priorities": {}}),  # type: ignore[arg-type]
        ConfigError,
        "manager=",
    ),
    Case(
        "in_thread_async_function",
        "in_thread() given an async def",
        lambda _: in_thread(_async_operation),
        ConfigError,
        "_async_operation",
    ),
    Case(
        "enter_closed_manager",
        "`with manager:` after the manager closed",
        lambda _: _enter_closed(),
        Closed,
        "closed",
    ),
    # -- found by fuzzing (issue 14): unhashable, huge, nested and non-UTF-8 input ----------
    Case(
        "continue_on_nested",
        "continue_on=[[1]]",
        lambda _: manager(continue_on=[[1]]),
        ConfigError,
        "continue_on",
    ),
    Case(
        "threshold_huge",
        "failure_threshold=10**400",
        lambda _: manager(failure_threshold=10**400),
        ConfigError,
        "failure_threshold",
    ),
    Case(
        "ttl_huge",
        "cache_ttl_seconds=10**400",
        lambda _: manager(cache_ttl_seconds=10**400),
        ConfigError,
        "cache_ttl_seconds",
    ),
    Case(
        "ttl_infinite",
        "cache_ttl_seconds=inf",
        lambda _: manager(cache_ttl_seconds=float("inf")),
        ConfigError,
        "cache_ttl_seconds",
    ),
    Case(
        "platform_policies_not_a_mapping",
        "platform_policies=5",
        lambda _: manager(platform_policies=5),
        ConfigError,
        "platform_policies",
    ),
    Case(
        "classifiers_not_a_mapping",
        "classifiers=5",
        lambda _: manager(classifiers=5),
        ConfigError,
        "classifiers",
    ),
    Case(
        "classifiers_not_callables",
        "classifiers={'groq': [5]}",
        lambda _: manager(classifiers={"groq": [5]}),
        ConfigError,
        "classifiers['groq']",
    ),
    Case(
        "environ_not_a_mapping",
        "environ=1",
        lambda _: PlatformManager({TEXT: [("groq", "llama")]}, environ=1),  # type: ignore[arg-type]
        ConfigError,
        "environ",
    ),
    Case(
        "chaos_not_a_rule",
        "chaos=0",
        lambda _: manager(chaos=0),
        ConfigError,
        "chaos",
    ),
    Case(
        "tracer_provider_not_a_provider",
        "tracer_provider=5",
        lambda _: manager(tracer_provider=5),
        ConfigError,
        "tracer_provider",
    ),
    Case(
        "operation_name_trailing_newline",
        "an operation type ending in a newline",
        lambda _: manager(priorities={"text_generation\n": [("groq", "llama")]}),
        ConfigError,
        "operation type",
    ),
    Case(
        "platform_name_trailing_newline",
        "PlatformSpec('groq\\n', ...)",
        lambda _: PlatformSpec("groq\n", "llama"),
        ConfigError,
        "PlatformSpec.name",
    ),
    Case(
        "spec_operation_types_nested",
        "PlatformSpec(operation_types=[['x']])",
        lambda _: PlatformSpec("groq", "llama", operation_types=[["x"]]),  # type: ignore[arg-type]
        ConfigError,
        "operation_types",
    ),
    Case(
        "cost_nan",
        "PlatformSpec(estimated_cost=nan)",
        lambda _: PlatformSpec("groq", "llama", estimated_cost=float("nan")),
        ConfigError,
        "estimated_cost",
    ),
    Case(
        "priority_huge",
        "PlatformSpec(priority=10**400)",
        lambda _: PlatformSpec("groq", "llama", priority=10**400),
        ConfigError,
        "priority",
    ),
    Case(
        "classify_not_an_exception",
        "classify('HTTP 500')",
        lambda _: failover.classify("HTTP 500"),  # type: ignore[arg-type]
        ConfigError,
        "exc",
    ),
    Case(
        "get_platform_unhashable",
        "get_platform([])",
        lambda _: _get_platform_unhashable(),
        UnknownOperation,
        "[]",
    ),
    Case(
        "report_failure_spec_not_a_spec",
        "report_failure({}, ...)",
        lambda _: _report_failure_spec_not_a_spec(),
        ConfigError,
        "spec",
    ),
    Case(
        "report_success_unhashable_operation",
        "report_success(spec, [])",
        lambda _: _report_success_unhashable_operation(),
        UnknownOperation,
        "[]",
    ),
    Case(
        "force_open_platform_unhashable",
        "force_open([], ...)",
        lambda _: manager().force_open([], TEXT),  # type: ignore[arg-type]
        ConfigError,
        "platform",
    ),
    Case(
        "reset_health_platform_unhashable",
        "reset_health(platform=[])",
        lambda _: manager().reset_health(platform=[]),  # type: ignore[arg-type]
        ConfigError,
        "platform",
    ),
    Case(
        "record_cost_huge",
        "record_cost(cost=10**400)",
        lambda _: manager().record_cost("groq", TEXT, 10**400),
        ConfigError,
        "cost",
    ),
    Case(
        "toml_not_utf8",
        "a failover.toml that is not UTF-8",
        toml_bytes(b"[failover]\ncache_ttl_seconds = 300 # caf\xe9\n"),
        ConfigError,
        "failover.toml",
    ),
    Case(
        "toml_integer_5000_digits",
        "an integer of 5,000 digits in the file",
        toml("[failover]\nfailure_threshold = " + "9" * 5000 + "\n"),
        ConfigError,
        "failover.failure_threshold",
    ),
    Case(
        "toml_integer_400_digits",
        "an integer of 400 digits in the file",
        toml("[failover]\nfailure_threshold = " + "9" * 400 + "\n"),
        ConfigError,
        "failover.failure_threshold",
    ),
    Case(
        "toml_nested_3000_deep",
        "arrays nested 3,000 deep in the file",
        toml("[failover]\ncontinue_on = " + "[" * 3000 + "]" * 3000 + "\n"),
        ConfigError,
        "failover.continue_on",
    ),
]


def raised_by(case: Case, directory: Path) -> BaseException:
    """The one exception the case raises (its coroutine is run, if it makes one)."""
    try:
        result = case.call(directory)
        if inspect.iscoroutine(result):
            anyio.run(lambda: result)
    except BaseException as exc:
        return exc
    raise AssertionError(f"{case.id}: nothing was raised")


def test_the_corpus_has_at_least_25_distinct_cases() -> None:
    assert len(CORPUS) >= 25
    assert len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_input_raises_one_clear_error_naming_the_field(case: Case, tmp_path: Path) -> None:
    error = raised_by(case, tmp_path)
    assert type(error) is case.error or (
        isinstance(error, case.error) and not isinstance(error, BaseExceptionGroup)
    ), f"{case.id}: {type(error).__name__}: {error}"
    message = str(error)
    assert case.names in message, f"{case.id}: {message!r} does not name {case.names!r}"
    assert len(message) < 600, "one clear message, not a dump"
    assert error.__cause__ is None or isinstance(error, TypeError)
    if isinstance(error, ConfigError) and not case.id.startswith(("toml_", "env_")):
        assert error.source is None


# -- nothing half-configured ------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [case for case in CORPUS if case.id.startswith(("toml_", "env_"))],
    ids=lambda case: case.id,
)
def test_a_failed_from_env_leaves_the_default_manager_in_place(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = manager()
    set_default_manager(previous)
    try:
        raised_by(case, tmp_path)
        with pytest.raises(ConfigError):
            set_default_manager("not a manager")  # type: ignore[arg-type]
        assert failover.default_manager() is previous
    finally:
        set_default_manager(None)


def test_a_refused_report_changes_no_counter() -> None:
    m = manager()
    spec = m.platforms(TEXT)[0]
    before = m.get_health_status()
    for bad in (
        lambda: m.report_failure(spec, TEXT, "HTTP 500"),  # type: ignore[arg-type]
        lambda: m.report_success(spec, TEXT, response_time=-1),
        lambda: m.report_failure(spec, TEXT, ValueError("x"), response_time=float("nan")),
    ):
        with pytest.raises(ConfigError):
            anyio.run(bad)
    assert m.get_health_status() == before


def test_a_refused_manual_transition_changes_no_state() -> None:
    m = manager()
    with pytest.raises(ConfigError):
        m.force_open("groq", TEXT, seconds=-1)
    assert m.get_health_status()["groq"]["operations"][TEXT]["state"] == "closed"


# -- docs/errors.md, generated from the corpus ----------------------------------------------------


def render(directory: Path) -> str:
    lines = [
        "# Errors for bad input",
        "",
        "Every malformed setting and API misuse failover knows of raises **one** exception",
        "whose message names the field or argument and says what is wrong. Configuration",
        "problems are `ConfigError` (a `ValueError`, with `.key` and, for files and",
        "variables, `.source`); an unknown operation type is `UnknownOperation` (a",
        "`ConfigError` and a `LookupError`); a function that cannot be protected is a",
        "`TypeError`. A failed load changes nothing: the previous default manager stays in",
        "place, and a refused report or transition leaves every counter and state as it was.",
        "",
        "Every number, duration, fraction, flag, name and choice check, and its message, lives",
        "in one module, `src/failover/_core/validate.py` (`bool` is never a number, NaN is never",
        "valid, infinity only where it means off or forever). `PlatformManager` checks all its",
        "arguments into a plan (`src/failover/_config/plan.py`) before it builds anything, in a",
        "fixed order: when several are wrong, the first in that order is reported.",
        "A value is shown as its `repr` cut to 200 characters; an integer of more than 200",
        "digits, or a value whose `repr` fails or recurses too deep, is described instead",
        "(`<an integer of 401 digits>`). Integer settings are at most `2**63 - 1`.",
        "",
        "This table is generated from the test corpus in",
        "`tests/test_reliability_bad_input.py` (a test fails if the two differ); regenerate",
        "it with `.venv/bin/python tests/test_reliability_bad_input.py > docs/errors.md`.",
        "Paths of temporary files are shown as `<dir>`.",
        "",
        "| case | input | exception | message |",
        "|---|---|---|---|",
    ]
    for case in CORPUS:
        error = raised_by(case, directory)
        message = " ".join(str(error).split()).replace(str(directory), "<dir>")
        message = message.replace("|", "\\|")
        what = case.what.replace("|", "\\|")
        lines.append(f"| `{case.id}` | {what} | `{type(error).__name__}` | {message} |")
    lines.append("")
    return "\n".join(lines)


def test_docs_errors_md_lists_every_case_with_its_message(tmp_path: Path) -> None:
    assert DOCS.read_text() == render(tmp_path), (
        "docs/errors.md is out of date: "
        ".venv/bin/python tests/test_reliability_bad_input.py > docs/errors.md"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as temporary:
        sys.stdout.write(render(Path(temporary)))
