"""Fuzzing every public entry point with bad input: one documented error, or success.

Hypothesis throws values at ``PlatformManager(...)``, ``PlatformSpec(...)``,
``get_platform``, ``report_success``/``report_failure``, ``classify`` and the TOML loader:
plain values of every type, values that are almost right (``"groq\\n"``, ``nan``, ``-0.0``),
huge integers (``10**400``), lists nested 3,000 deep, unhashable and hostile objects (a
``__repr__``, ``__str__`` or ``__hash__`` that raises), and TOML documents built from the
real sections and keys with such values, or with bytes that are not UTF-8. Each call either
succeeds or raises the documented error (``ConfigError``, ``UnknownOperation``; and
``AllPlatformsFailed`` from ``get_platform``), never a raw ``TypeError``, ``OverflowError``
or ``RecursionError``; a construction that fails registers nothing; a manager that was built
reports strict JSON health.

The ``ci`` profile keeps this file to a few seconds; ``FAILOVER_HYPOTHESIS_PROFILE=large``
runs ten times as many inputs. ``FAILOVER_FUZZ_REPORT=1`` prints what was tried and what each
input raised (the figures in ``docs/reliability.md``)::

    FAILOVER_FUZZ_REPORT=1 .venv/bin/python -m pytest -q -s tests/test_fuzz_inputs.py
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover import (
    AllPlatformsFailed,
    Chaos,
    Classification,
    ConfigError,
    ErrorKind,
    PlatformManager,
    PlatformSpec,
    Policy,
    UnknownOperation,
    classify,
)
from failover._observe import scrub
from failover.testing import FakeClock

TEXT = "text_generation"
#: Inputs per property: a tenth of the profile's examples (200 in ci, 2,000 in large).
EXAMPLES = max(settings.default.max_examples // 10, 50)
FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # The TOML property rewrites one file per input in tmp_path: nothing carries over.
        HealthCheck.function_scoped_fixture,
    ],
)

#: (entry point, outcome) -> inputs; outcome is "ok" or the exception type's name.
OUTCOMES: Counter[tuple[str, str]] = Counter()


# -- the values --------------------------------------------------------------------------------


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refused")


class HashRaises:
    def __hash__(self) -> int:
        raise RuntimeError("__hash__ refused")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ refused")


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ refused")


class NotAnException(BaseException):
    pass


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


HUGE = [10**400, -(10**400), 2**63, 2**64, 10**5000]
ODD = [
    None,
    True,
    False,
    0,
    -1,
    1,
    0.0,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
    1e300,
    "",
    " ",
    "groq\n",
    "text_generation\n",
    "Text Generation",
    b"groq",
    [],
    {},
    [[1]],
    [["x"]],
    {"a": [1]},
    set(),
    object(),
    ReprRaises(),
    HashRaises(),
    StrRaises(),
    nested(3000),
    Policy(),
    Chaos(fault_rate=0.0),
    PlatformSpec("groq", "llama"),
    lambda *args: None,
]


POOL = ODD + HUGE


def pooled(index: int) -> Any:
    return POOL[index]


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        # By index: Hypothesis shows a strategy's elements, and some of these cannot be shown.
        st.integers(0, len(POOL) - 1).map(pooled),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.binary(max_size=8),
    )


def keys() -> st.SearchStrategy[Any]:
    """What a mapping's keys can be: hashable, otherwise anything."""
    return st.one_of(
        st.text(max_size=12),
        st.sampled_from(["groq", TEXT, "", "groq\n", "Bad Name"]),
        st.integers(),
        st.none(),
        st.just(10**400),
    )


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.tuples(inner, inner),
            st.dictionaries(keys(), inner, max_size=3),
        ),
        max_leaves=6,
    )


def settings_like() -> st.SearchStrategy[Any]:
    """Mostly right, sometimes wrong: what a configuration typo looks like."""
    return st.one_of(
        st.sampled_from([1, 3, 0.5, 2.0, 60, 300.0, "300", "content_policy"]),
        values(),
    )


def priorities() -> st.SearchStrategy[Any]:
    entry = st.one_of(
        st.tuples(
            st.sampled_from(["groq", "openai", "alpha", "Groq", "groq\n", ""]),
            st.sampled_from(["m", "", "x"]),
        ),
        st.builds(
            lambda name: PlatformSpec(name, "m"), st.sampled_from(["groq", "openai", "beta"])
        ),
        values(),
    )
    operation = st.one_of(
        st.sampled_from([TEXT, "image_editing", "custom_op", "bad op", "x\n"]), keys()
    )
    return st.one_of(
        st.none(),
        st.just({TEXT: [("groq", "llama"), ("openai", "gpt")]}),
        st.dictionaries(operation, st.one_of(st.lists(entry, max_size=3), values()), max_size=2),
        values(),
    )


CONSTRUCTOR = [
    "failure_threshold",
    "cache_ttl_seconds",
    "fallback_enabled",
    "cost_optimization",
    "monitoring_enabled",
    "max_attempts",
    "half_open_max_calls",
    "success_threshold",
    "probe_lease_seconds",
    "open_backoff",
    "max_open_seconds",
    "auth_cooldown_seconds",
    "rate_limit_max_seconds",
    "failure_rate_threshold",
    "minimum_calls",
    "window_seconds",
    "slow_call_seconds",
    "slow_call_rate_threshold",
    "continue_on",
    "caller_bugs_fall_back",
    "when_all_unavailable",
    "max_wait",
    "policy",
    "operation_policies",
    "platform_policies",
    "ordering",
    "classifiers",
    "clock",
    "environ",
    "tracer_provider",
    "meter_provider",
    "shared_state",
    "chaos",
]


# -- the bookkeeping -----------------------------------------------------------------------------


def record(entry: str, call: Callable[[], Any], *allowed: type[BaseException]) -> Any:
    """Run ``call``; count its outcome; fail unless it succeeded or raised one of ``allowed``
    (``ConfigError`` always), with a clear message that names what it checks."""
    try:
        result = call()
    except (ConfigError, *allowed) as exc:
        OUTCOMES[entry, type(exc).__name__] += 1
        check_message(exc)
        return exc
    except BaseException as exc:
        OUTCOMES[entry, "undocumented " + type(exc).__name__] += 1
        raise
    OUTCOMES[entry, "ok"] += 1
    return result


def check_message(exc: BaseException) -> None:
    message = str(exc)
    assert message
    if isinstance(exc, ConfigError):
        assert len(message) < 2000, "one clear message, not a dump"
        assert exc.key is None or isinstance(exc.key, str)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if os.environ.get("FAILOVER_FUZZ_REPORT"):
        total = sum(OUTCOMES.values())
        sys.stdout.write(f"\nfuzzed inputs: {total}\n")
        for (entry, outcome), count in sorted(OUTCOMES.items()):
            sys.stdout.write(f"  {entry:<16} {outcome:<28} {count:>7}\n")


def run(coroutine: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: anyio.run(coroutine)


def strict_health(manager: PlatformManager) -> None:
    json.dumps(manager.get_health_status(), allow_nan=False)


# -- the properties ------------------------------------------------------------------------------


@FUZZ
@given(
    priorities=priorities(),
    arguments=st.dictionaries(st.sampled_from(CONSTRUCTOR), settings_like(), max_size=4),
)
def test_the_constructor_builds_or_names_the_bad_argument(
    priorities: Any, arguments: dict[str, Any]
) -> None:
    arguments.setdefault("environ", {})
    live = set(scrub._LIVE)
    built = record("constructor", lambda: PlatformManager(priorities, **arguments))
    if isinstance(built, PlatformManager):
        strict_health(built)
    else:
        assert set(scrub._LIVE) <= live, "a failed construction registered its scrubber"


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["operation_types", "priority", "estimated_cost", "estimated_time", "api_key_env"]
        ),
        settings_like(),
        max_size=3,
    ),
    name=st.one_of(st.sampled_from(["groq", "groq\n", "a-b.c", "Groq", ""]), values()),
    model=st.one_of(st.just("llama"), values()),
)
def test_platform_spec_builds_or_names_the_bad_field(
    fields: dict[str, Any], name: Any, model: Any
) -> None:
    spec = record("PlatformSpec", lambda: PlatformSpec(name, model, **fields))
    if isinstance(spec, PlatformSpec):
        assert isinstance(spec.operation_types, frozenset)
        assert all(isinstance(item, str) and item for item in spec.operation_types)
        m = PlatformManager({TEXT: [spec]}, environ={}, clock=FakeClock())
        m.record_cost(spec, TEXT, 1.0)
        strict_health(m)


def fuzz_manager() -> PlatformManager:
    return PlatformManager(
        {TEXT: [("groq", "llama"), PlatformSpec("alpha", "a")]}, environ={}, clock=FakeClock()
    )


OPERATIONS = st.one_of(
    st.sampled_from([TEXT, "image_editing", "nope", "text_generation\n"]), values()
)


@FUZZ
@given(operation=OPERATIONS, context=st.dictionaries(st.text(max_size=8), values(), max_size=2))
def test_get_platform_answers_or_raises_a_documented_error(operation: Any, context: Any) -> None:
    m = fuzz_manager()
    record(
        "get_platform",
        run(lambda: m.get_platform(operation, **context)),
        UnknownOperation,
        AllPlatformsFailed,
    )


@FUZZ
@given(
    spec=st.one_of(st.sampled_from(["alpha", "groq", "nope"]), values()),
    operation=OPERATIONS,
    error=st.one_of(
        st.sampled_from([ValueError("x"), StrRaises(), NotAnException(), ConnectionError("down")]),
        values(),
    ),
    response_time=st.one_of(st.none(), settings_like()),
    success=st.booleans(),
)
def test_reports_book_or_name_the_bad_argument(
    spec: Any, operation: Any, error: Any, response_time: Any, success: bool
) -> None:
    m = fuzz_manager()
    before = m.get_health_status()
    if success:
        outcome = record(
            "report_success",
            run(lambda: m.report_success(spec, operation, response_time)),
        )
    else:
        outcome = record(
            "report_failure",
            run(lambda: m.report_failure(spec, operation, error, response_time)),
        )
    if isinstance(outcome, ConfigError):
        assert m.get_health_status() == before, "a refused report changed a counter"
    strict_health(m)


def verdicts() -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [
            None,
            Classification(ErrorKind.CREDIT_EXHAUSTED),
            ErrorKind.AUTH,
            "transient",
            5,
        ]
    )


@FUZZ
@given(
    error=st.one_of(
        st.sampled_from([ValueError("quota"), StrRaises(), NotAnException()]), values()
    ),
    answers=st.one_of(st.lists(verdicts(), max_size=3), values()),
    raising=st.booleans(),
)
def test_classify_answers_or_names_the_bad_argument(
    error: Any, answers: Any, raising: bool
) -> None:
    if isinstance(answers, list):

        def classifier_for(answer: Any) -> Callable[[BaseException], Any]:
            def classifier(exc: BaseException) -> Any:
                if raising:
                    raise RuntimeError("a classifier with a bug")
                return answer

            return classifier

        classifiers: Any = [classifier_for(answer) for answer in answers]
    else:
        classifiers = answers
    verdict = record("classify", lambda: classify(error, classifiers))
    if not isinstance(verdict, ConfigError):
        assert isinstance(verdict, Classification)


# -- the TOML loader -----------------------------------------------------------------------------

TABLES = [
    "failover",
    "priorities",
    "operations.text_generation",
    "operations.image_editing",
    "platforms.groq",
    "platforms.openai",
    "retry",
]
KEYS = [
    "cache_ttl_seconds",
    "failure_threshold",
    "fallback_enabled",
    "max_attempts",
    "open_backoff",
    "continue_on",
    "attempt_timeout",
    "deadline",
    "when_all_unavailable",
    "max_wait",
    "api_key_env",
    "estimated_cost",
    "text_generation",
    "image_editing",
    "name",
    "model",
    "retries",
]


def toml_values() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers().map(str),
        st.integers(min_value=1, max_value=6000).map(lambda digits: "9" * digits),
        st.floats().map(lambda x: "nan" if x != x else repr(x).replace("inf", "inf")),
        st.sampled_from(["true", "false", "inf", "-inf", "nan", "0", "-0.0", "1e400"]),
        st.text(max_size=12).map(lambda text: json.dumps(text)),
        st.sampled_from(['"groq/llama"', '"groq"', '"openai/gpt"', '"probe_soonest"', '""']),
        st.integers(min_value=1, max_value=3000).map(lambda depth: "[" * depth + "]" * depth),
    )
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
            st.dictionaries(st.sampled_from(["name", "model", "x"]), inner, max_size=2).map(
                lambda table: "{" + ", ".join(f"{k} = {v}" for k, v in table.items()) + "}"
            ),
        ),
        max_leaves=4,
    )


def toml_documents() -> st.SearchStrategy[bytes]:
    table = st.tuples(
        st.sampled_from(TABLES),
        st.dictionaries(st.sampled_from(KEYS), toml_values(), max_size=3),
    )
    document = st.lists(table, max_size=3, unique_by=lambda pair: pair[0]).map(
        lambda tables: "\n".join(
            f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
            for name, entries in tables
        ).encode()
    )
    return st.one_of(
        document,
        st.tuples(document, st.binary(min_size=1, max_size=4), st.integers(0, 200)).map(
            lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] :]
        ),
    )


@FUZZ
@given(data=toml_documents())
def test_the_toml_loader_loads_or_names_the_file_and_key(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "failover.toml"
    path.write_bytes(data)
    live = set(scrub._LIVE)
    built = record(
        "toml",
        lambda: PlatformManager.from_env(environ={}, config_path=str(path), clock=FakeClock()),
    )
    if isinstance(built, ConfigError):
        assert built.source == str(path), "a file's error names the file"
        assert set(scrub._LIVE) <= live, "a failed load registered a scrubber"
    else:
        strict_health(built)
