"""failover._core.validate: each helper, each bound, bool/NaN/inf, and the key it names."""

from __future__ import annotations

import math
from typing import Any

import pytest

from failover import ConfigError
from failover._core import validate

NAN = float("nan")
INF = float("inf")


def error(call: Any, *args: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    return info.value


# -- number ------------------------------------------------------------------------------------


def test_number_returns_a_float() -> None:
    value = validate.number("ttl", 300, above=0)
    assert value == 300.0
    assert type(value) is float


@pytest.mark.parametrize("bad", [True, False, "3", None, [1], NAN])
def test_number_refuses_bool_text_and_nan(bad: object) -> None:
    exc = error(validate.number, "ttl", bad, above=0)
    assert str(exc) == f"ttl must be a number > 0, got {bad!r}"
    assert exc.key == "ttl"


def test_number_refuses_inf_unless_allowed() -> None:
    assert str(error(validate.number, "ttl", INF)) == "ttl must be a number, got inf"
    assert str(error(validate.number, "ttl", -INF)) == "ttl must be a number, got -inf"
    assert validate.number("ttl", INF, allow_inf=True) == INF


def test_number_nan_refused_even_where_inf_is_allowed() -> None:
    assert str(error(validate.number, "x", NAN, allow_inf=True)) == "x must be a number, got nan"


@pytest.mark.parametrize(
    ("bounds", "good", "bad", "message"),
    [
        ({"above": 0}, 0.001, 0, "x must be a number > 0, got 0"),
        ({"at_least": 1}, 1, 0.5, "x must be a number >= 1, got 0.5"),
        ({"at_most": 1}, 1, 1.5, "x must be a number <= 1, got 1.5"),
        ({"below": 1}, 0.99, 1, "x must be a number < 1, got 1"),
        ({"at_least": 0, "at_most": 1}, 0, -1, "x must be a number >= 0 and <= 1, got -1"),
    ],
)
def test_number_bounds(bounds: dict[str, Any], good: float, bad: float, message: str) -> None:
    assert validate.number("x", good, **bounds) == good
    assert str(error(validate.number, "x", bad, **bounds)) == message


def test_number_bare_type_error_leaves_the_bound_out() -> None:
    exc = error(validate.number, "ttl", "300", above=0, bare_type_error=True)
    assert str(exc) == "ttl must be a number, got '300'"
    exc = error(validate.number, "ttl", 0, above=0, bare_type_error=True)
    assert str(exc) == "ttl must be a number > 0, got 0"


def test_number_message_parts() -> None:
    exc = error(
        validate.number,
        "input",
        -1,
        at_least=0,
        label="TokenPrice.input",
        hint=" (USD per million tokens)",
    )
    assert str(exc) == "TokenPrice.input must be a number >= 0 (USD per million tokens), got -1"
    assert exc.key == "input"
    exc = error(validate.number, "retry_after", -1, at_least=0, kind="", label="RateLimited()")
    assert str(exc) == "RateLimited() must be >= 0, got -1"


def test_number_key_and_source() -> None:
    exc = error(validate.number, "x", 0, above=0, key="failover.x", source="f.toml")
    assert exc.key == "failover.x"
    assert exc.source == "f.toml"
    assert str(exc) == "f.toml: x must be a number > 0, got 0"


# -- seconds -------------------------------------------------------------------------------------


def test_seconds_says_seconds() -> None:
    assert validate.seconds("delay", 2, at_least=0) == 2.0
    exc = error(validate.seconds, "delay", -1, at_least=0, label="Hedge.delay")
    assert str(exc) == "Hedge.delay must be seconds >= 0, got -1"
    assert exc.key == "delay"


def test_seconds_inf_only_where_it_means_forever() -> None:
    assert str(error(validate.seconds, "d", INF, above=0)) == "d must be seconds > 0, got inf"
    assert validate.seconds("d", INF, above=0, allow_inf=True) == INF
    assert str(error(validate.seconds, "d", True, above=0)) == "d must be seconds > 0, got True"


# -- integer -------------------------------------------------------------------------------------


def test_integer_returns_an_int() -> None:
    assert validate.integer("n", 3, at_least=1) == 3


@pytest.mark.parametrize("bad", [True, 2.0, 2.5, "2", NAN, INF])
def test_integer_refuses_bools_and_floats(bad: object) -> None:
    exc = error(validate.integer, "n", bad, at_least=1)
    assert str(exc) == f"n must be an integer >= 1, got {bad!r}"
    assert exc.key == "n"


def test_integer_bounds_and_bare_type_error() -> None:
    assert str(error(validate.integer, "n", 0, at_least=1)) == "n must be an integer >= 1, got 0"
    assert str(error(validate.integer, "n", 6, at_most=5)) == "n must be an integer <= 5, got 6"
    exc = error(validate.integer, "n", 2.5, at_least=1, bare_type_error=True)
    assert str(exc) == "n must be an integer, got 2.5"
    exc = error(validate.integer, "priority", "1", kind="an int", label="PlatformSpec.priority")
    assert str(exc) == "PlatformSpec.priority must be an int, got '1'"


# -- fraction ------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [0, 0.5, 1])
def test_fraction_closed_interval(good: float) -> None:
    assert validate.fraction("rate", good) == good


@pytest.mark.parametrize("bad", [-0.1, 1.1, True, NAN, INF, "0.5"])
def test_fraction_refuses(bad: object) -> None:
    exc = error(validate.fraction, "rate", bad, label="Chaos.rate")
    assert str(exc) == f"Chaos.rate must be a number in [0, 1], got {bad!r}"
    assert exc.key == "rate"


def test_fraction_upper_open() -> None:
    assert validate.fraction("tolerance", 0.99, upper_open=True) == 0.99
    exc = error(validate.fraction, "tolerance", 1, upper_open=True)
    assert str(exc) == "tolerance must be a number in [0, 1), got 1"


# -- flag, name, one_of, mapping, callable_ ------------------------------------------------------


def test_flag() -> None:
    assert validate.flag("on", True) is True
    assert validate.flag("on", False) is False
    for bad in ("yes", 1, 0, None):
        exc = error(validate.flag, "on", bad)
        assert str(exc) == f"on must be True or False, got {bad!r}"
        assert exc.key == "on"
    exc = error(validate.flag, "on", "no", spelling=("true", "false"), key="failover.on")
    assert str(exc) == "on must be true or false, got 'no'"
    assert exc.key == "failover.on"


def test_name() -> None:
    assert validate.name("service_name", "api") == "api"
    for bad in ("", None, 3):
        exc = error(validate.name, "service_name", bad)
        assert str(exc) == f"service_name must be a non-empty string, got {bad!r}"
        assert exc.key == "service_name"


def test_one_of() -> None:
    assert validate.one_of("mode", "wait", ("probe", "wait", "fail")) == "wait"
    exc = error(validate.one_of, "mode", "x", ("probe", "wait", "fail"))
    assert str(exc) == "mode must be one of 'probe', 'wait', 'fail', got 'x'"
    assert exc.key == "mode"
    exc = error(validate.one_of, "per", 3, ("platform", "pair"), label="Bulkhead.per")
    assert str(exc) == "Bulkhead.per must be 'platform' or 'pair', got 3"


def test_mapping_shows_the_type_not_the_value() -> None:
    assert validate.mapping("ctx", {"a": 1}) == {"a": 1}
    exc = error(validate.mapping, "ctx", "secret text")
    assert str(exc) == "ctx must be a mapping, got str"
    assert exc.key == "ctx"
    exc = error(validate.mapping, "priorities", [], of=" of operation -> platforms")
    assert str(exc) == "priorities must be a mapping of operation -> platforms, got list"


def test_callable() -> None:
    assert validate.callable_("ordering", len) is len
    exc = error(validate.callable_, "ordering", "cost")
    assert str(exc) == "ordering must be callable, got 'cost'"
    assert exc.key == "ordering"


def test_every_error_is_one_config_error_and_a_value_error() -> None:
    exc = error(validate.number, "x", math.nan)
    assert isinstance(exc, ValueError)
