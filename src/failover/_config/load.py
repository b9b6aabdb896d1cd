"""Settings from the environment and an optional ``failover.toml``, validated.

Precedence: keyword arguments > ``AI_*`` environment variables > the TOML file > defaults.
Every problem raises one :class:`~failover.ConfigError` naming the file (or variable), the
key and what is wrong; nothing is half-applied.

The file::

    [failover]                      # all optional
    cache_ttl_seconds = 300
    failure_threshold = 3
    fallback_enabled = true
    cost_optimization = false
    monitoring_enabled = true
    max_attempts = 5
    attempt_timeout = 30            # seconds, per attempt
    deadline = 120                  # seconds, whole call
    when_all_unavailable = "probe_soonest"  # or "wait" (up to max_wait seconds) or "fail"
    max_wait = 30
    failure_rate_threshold = 0.5    # opt-in: open when half the window's calls failed ...
    minimum_calls = 10              # ... once it holds at least this many calls
    window_seconds = 60
    slow_call_seconds = 20          # opt-in, with slow_call_rate_threshold
    slow_call_rate_threshold = 0.8

    [priorities]
    image_editing = ["stability/sd-3.5-large", "replicate/flux", "fal/fal-3d"]
    text_generation = [
        "groq/llama-3.3-70b-versatile",
        { name = "openai", model = "gpt-4o-mini", estimated_cost = 0.0006 },
    ]

    [operations.image_editing]      # per operation type (must be in a priority list)
    attempt_timeout = 45
    deadline = 90
    when_all_unavailable = "fail"
    failure_rate_threshold = 0.3    # breaker settings may be set here and per platform too

    [platforms.stability]           # applies wherever the platform is listed
    api_key_env = "STABILITY_API_KEY"   # "" means: no key needed
    estimated_cost = 0.04
    context_window = 200000         # capabilities: tokens, and free-form features
    features = ["mask", "vision"]
    attempt_timeout = 60
    caller_bugs_fall_back = false   # true: its TypeError, KeyError, ... count as its failures

Errors name keys as dotted paths (``failover.cache_ttl_seconds``,
``priorities.image_editing[1]``, ``platforms.stability.estimated_cost``).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from failover._core import validate
from failover._core.errors import ConfigError
from failover._core.spec import (
    DEFAULT_PRIORITIES,
    PlatformSpec,
    check_operation_name,
    known_capabilities,
    known_platform,
)
from failover.policies.breaker import BreakerPolicy
from failover.policies.policy import Policy

ENV_CONFIG: Final = "FAILOVER_CONFIG"

#: Environment variables kept from the old manager -> manager keyword, and their type.
ENV_SETTINGS: Final[dict[str, tuple[str, type]]] = {
    "AI_FALLBACK_ENABLED": ("fallback_enabled", bool),
    "AI_CACHE_TTL_SECONDS": ("cache_ttl_seconds", float),
    "AI_COST_OPTIMIZATION": ("cost_optimization", bool),
    "AI_MONITORING_ENABLED": ("monitoring_enabled", bool),
}


@dataclass(frozen=True, slots=True)
class _Rule:
    """What a setting's value must be: a type and, for numbers, a lower bound (checked by
    :mod:`failover._core.validate`; an ``int`` rule takes ``at_least`` only)."""

    kind: type
    above: float | None = None  # strictly greater than
    at_least: float | None = None


_POSITIVE: Final = _Rule(float, above=0)
_COUNT: Final = _Rule(int, at_least=1)

_MANAGER_KEYS: Final[dict[str, _Rule]] = {
    "cache_ttl_seconds": _POSITIVE,
    "failure_threshold": _COUNT,
    "fallback_enabled": _Rule(bool),
    "cost_optimization": _Rule(bool),
    "monitoring_enabled": _Rule(bool),
    "max_attempts": _COUNT,
    "half_open_max_calls": _COUNT,
    "success_threshold": _COUNT,
    "probe_lease_seconds": _POSITIVE,
    "open_backoff": _Rule(float, at_least=1),
    "max_open_seconds": _POSITIVE,
    "auth_cooldown_seconds": _POSITIVE,
    "rate_limit_max_seconds": _POSITIVE,
    "continue_on": _Rule(list),
    "failure_rate_threshold": _POSITIVE,
    "minimum_calls": _COUNT,
    "window_seconds": _POSITIVE,
    "slow_call_seconds": _POSITIVE,
    "slow_call_rate_threshold": _POSITIVE,
}
#: Breaker settings an operation or platform table may change (a ``BreakerPolicy``).
_BREAKER_KEYS: Final[dict[str, _Rule]] = {
    name: _MANAGER_KEYS[name]
    for name in (
        "failure_threshold",
        "failure_rate_threshold",
        "minimum_calls",
        "window_seconds",
        "slow_call_seconds",
        "slow_call_rate_threshold",
    )
}
_POLICY_KEYS: Final[dict[str, _Rule]] = {
    "attempt_timeout": _POSITIVE,
    "deadline": _POSITIVE,
    "when_all_unavailable": _Rule(str),
    "max_wait": _POSITIVE,
    "content_policy_fallback": _Rule(bool),
}
_PLATFORM_KEYS: Final[dict[str, _Rule]] = {
    "api_key_env": _Rule(str),
    "estimated_cost": _Rule(float, at_least=0),
    "estimated_time": _Rule(float, at_least=0),
    "context_window": _COUNT,
    "features": _Rule(list),
    "attempt_timeout": _POSITIVE,
    "caller_bugs_fall_back": _Rule(bool),
    **_BREAKER_KEYS,
}
_ENTRY_KEYS: Final[dict[str, _Rule]] = {
    "name": _Rule(str),
    "model": _Rule(str),
    "api_key_env": _Rule(str),
    "estimated_cost": _Rule(float, at_least=0),
    "estimated_time": _Rule(float, at_least=0),
    "context_window": _COUNT,
    "features": _Rule(list),
}
_SECTIONS: Final = ("failover", "priorities", "operations", "platforms")

_TABLE_HEADER: Final = re.compile(r"\s*\[+([^\]]+)\]+")
_ASSIGNMENT: Final = re.compile(r"\s*([^=#\[]+?)\s*=")
_DIGITS: Final = re.compile(r"[0-9_]+")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str, *, source: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, any case) from an environment variable."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"expected true or false (or 1/0, yes/no, on/off), got {text!r}", source=source, key=source
    )


def _check_value(value: object, rule: _Rule, *, source: str, key: str) -> Any:
    """``value`` converted to what ``rule`` asks for, else one ``ConfigError`` naming ``key``."""
    expected = rule.kind
    if expected is bool:
        return validate.flag(key, value, spelling=("true", "false"), source=source)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{key} must be a string, got {validate.shown(value)}", source=source, key=key
            )
        return value
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(
                f"{key} must be a list of strings, got {validate.shown(value)}",
                source=source,
                key=key,
            )
        return value
    # A file's numbers are finite: TOML's inf and nan are refused.
    if expected is int:
        return validate.integer(
            key, value, at_least=rule.at_least, bare_type_error=True, source=source
        )
    return validate.number(
        key, value, above=rule.above, at_least=rule.at_least, bare_type_error=True, source=source
    )


def _check_table(
    table: Mapping[str, Any], rules: Mapping[str, _Rule], *, source: str, where: str
) -> dict[str, Any]:
    """Every key of ``table`` known and valid; returns the converted values."""
    unknown = sorted(set(table) - set(rules))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(rules), n=1)
        # A likely typo gets its fix; otherwise the allowed keys, so the reader can pick.
        hint = f"did you mean {close[0]}?" if close else f"allowed in [{where}]: {', '.join(rules)}"
        raise ConfigError(f"unknown key {where}.{key}; {hint}", source=source, key=f"{where}.{key}")
    return {
        key: _check_value(value, rules[key], source=source, key=f"{where}.{key}")
        for key, value in table.items()
    }


def _table(data: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{name} must be a table ([{name}]), got {type(value).__name__}",
            source=source,
            key=name,
        )
    return value


def read_toml(path: str) -> dict[str, Any]:
    """The parsed file, or one ``ConfigError`` naming it (missing, unreadable, bad TOML,
    not UTF-8, nested too deep, a number with too many digits)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not valid TOML: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
            source=path,
        ) from None
    return parse_toml(text, path)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """``text`` parsed as TOML, or one ``ConfigError`` naming ``source`` (and the key, where
    the parser's own error cannot)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    except RecursionError:
        # tomllib recurses once per nested array or inline table.
        key = _key_of_line(text, _most_nested)
        raise ConfigError(
            f"{key or 'a value'} nests arrays or inline tables too deep to read",
            source=source,
            key=key,
        ) from None
    except ValueError:
        # Python refuses to read integers of more than sys.get_int_max_str_digits() digits.
        key = _key_of_line(text, _has_long_number)
        raise ConfigError(
            f"{key or 'a value'} is a number with too many digits "
            f"(more than {sys.get_int_max_str_digits()})",
            source=source,
            key=key,
        ) from None


def _key_of_line(text: str, pick: Callable[[list[str]], int | None]) -> str | None:
    """The dotted key assigned on the line ``pick`` chooses, for a message the parser's own
    error cannot give (it fails before it knows the key); ``None`` when there is none."""
    lines = text.splitlines()
    index = pick(lines)
    if index is None:
        return None
    table = ""
    for line in lines[:index]:
        header = _TABLE_HEADER.match(line)
        if header:
            table = header.group(1).strip()
    assignment = _ASSIGNMENT.match(lines[index])
    if assignment is None:
        return None
    key = assignment.group(1).strip()
    return f"{table}.{key}" if table else key


def _has_long_number(lines: list[str]) -> int | None:
    limit = sys.get_int_max_str_digits()
    for index, line in enumerate(lines):
        if any(len(run.replace("_", "")) > limit for run in _DIGITS.findall(line)):
            return index
    return None


def _most_nested(lines: list[str]) -> int | None:
    depths = [line.count("[") + line.count("{") for line in lines]
    return max(range(len(lines)), key=depths.__getitem__) if lines else None


def _entry(
    operation: str, index: int, raw: object, platforms: Mapping[str, Mapping[str, Any]], source: str
) -> PlatformSpec:
    where = f"priorities.{operation}[{index}]"
    if isinstance(raw, str):
        name, sep, model = raw.partition("/")
        name, model = name.strip(), model.strip()
        if not sep or not name or not model:
            raise ConfigError(
                f"{where} must look like 'platform/model', got {validate.shown(raw)}",
                source=source,
                key=where,
            )
        fields: dict[str, Any] = {"name": name, "model": model}
    elif isinstance(raw, dict):
        fields = _check_table(raw, _ENTRY_KEYS, source=source, where=where)
        if "name" not in fields or "model" not in fields:
            raise ConfigError(f"{where} needs both 'name' and 'model'", source=source, key=where)
    else:
        raise ConfigError(
            f"{where} must be 'platform/model' or a table, got {validate.shown(raw)}",
            source=source,
            key=where,
        )
    name = fields["name"]
    known = known_platform(name)
    overrides = platforms.get(name, {})

    def setting(key: str, default: Any) -> Any:
        return fields.get(key, overrides.get(key, default))

    window, features = known_capabilities(name, fields["model"])
    try:
        return PlatformSpec(
            name=name,
            model=fields["model"],
            priority=index,
            estimated_cost=setting("estimated_cost", known.estimated_cost if known else 0.0),
            estimated_time=setting("estimated_time", known.estimated_time if known else 0.0),
            api_key_env=setting("api_key_env", known.api_key_env if known else None) or None,
            context_window=setting("context_window", window),
            features=frozenset(setting("features", features)),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", source=source, key=where) from None


def _priorities(
    table: Mapping[str, Any], platforms: Mapping[str, Mapping[str, Any]], source: str
) -> dict[str, list[PlatformSpec]]:
    priorities: dict[str, list[PlatformSpec]] = {}
    for operation, entries in table.items():
        key = f"priorities.{operation}"
        try:
            check_operation_name(operation, where=key)
        except ConfigError as exc:
            raise ConfigError(str(exc), source=source, key=key) from None
        if not isinstance(entries, list) or not entries:
            raise ConfigError(
                f"{key} must be a non-empty list of 'platform/model', "
                f"got {validate.shown(entries)}",
                source=source,
                key=key,
            )
        specs = [
            _entry(operation, index, raw, platforms, source) for index, raw in enumerate(entries)
        ]
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ConfigError(
                    f"{key} lists platform {spec.name!r} twice; each platform may appear once "
                    "per operation",
                    source=source,
                    key=key,
                )
            seen.add(spec.name)
        priorities[operation] = specs
    return priorities


def settings_from_toml(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Manager keyword arguments from a parsed TOML document."""
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        hint = " (did you mean to put it under [failover]?)" if unknown[0] in _MANAGER_KEYS else ""
        raise ConfigError(
            f"unknown key {unknown[0]}{hint}; allowed tables: "
            + ", ".join(f"[{name}]" for name in _SECTIONS),
            source=source,
            key=unknown[0],
        )
    section = _table(data, "failover", source)
    settings = _check_table(
        section, {**_MANAGER_KEYS, **_POLICY_KEYS}, source=source, where="failover"
    )
    kwargs = {key: value for key, value in settings.items() if key not in _POLICY_KEYS}
    policy_fields = {key: value for key, value in settings.items() if key in _POLICY_KEYS}

    platforms = _table(data, "platforms", source)
    platform_policies: dict[str, Policy] = {}
    bugs_fall_back: list[str] = []
    for name, table in platforms.items():
        where = f"platforms.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table", source=source, key=where)
        values = _check_table(table, _PLATFORM_KEYS, source=source, where=where)
        if values.get("caller_bugs_fall_back"):
            bugs_fall_back.append(name)
        wanted = {
            key: value
            for key, value in values.items()
            if key == "attempt_timeout" or key in _BREAKER_KEYS
        }
        if wanted:
            platform_policies[name] = _policy(wanted, source, where)

    if "priorities" in data:
        priorities = _priorities(_table(data, "priorities", source), platforms, source)
        kwargs["priorities"] = priorities
    else:
        priorities = _defaults_with(platforms, source)
        if platforms:
            kwargs["priorities"] = priorities
    listed = {spec.name for specs in priorities.values() for spec in specs}
    unlisted = sorted(set(platforms) - listed)
    if unlisted:
        raise ConfigError(
            f"[platforms.{unlisted[0]}] names a platform that is in no priority list "
            f"(listed: {', '.join(sorted(listed))})",
            source=source,
            key=f"platforms.{unlisted[0]}",
        )

    operation_policies: dict[str, Policy] = {}
    for operation, table in _table(data, "operations", source).items():
        where = f"operations.{operation}"
        if operation not in priorities:
            raise ConfigError(
                f"[{where}]: unknown operation type {operation!r}; operations with a "
                f"priority list: {', '.join(priorities)}",
                source=source,
                key=where,
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table", source=source, key=where)
        values = _check_table(table, {**_POLICY_KEYS, **_BREAKER_KEYS}, source=source, where=where)
        if values:
            operation_policies[operation] = _policy(values, source, where)

    if policy_fields:
        kwargs["policy"] = _policy(policy_fields, source, "failover")
    if operation_policies:
        kwargs["operation_policies"] = operation_policies
    if platform_policies:
        kwargs["platform_policies"] = platform_policies
    if bugs_fall_back:
        kwargs["caller_bugs_fall_back"] = bugs_fall_back
    return kwargs


def _policy(fields: dict[str, Any], source: str, where: str) -> Policy:
    """A ``Policy`` of a table's values; breaker settings go into its ``BreakerPolicy``."""
    breaker = {key: fields.pop(key) for key in list(fields) if key in _BREAKER_KEYS}
    try:
        if breaker:
            fields["breaker"] = BreakerPolicy(**breaker)
        return Policy(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", source=source, key=f"{where}.{exc.key}") from None


def _defaults_with(
    platforms: Mapping[str, Mapping[str, Any]], source: str
) -> dict[str, list[PlatformSpec]]:
    return {
        operation: [
            _entry(operation, index, f"{name}/{model}", platforms, source)
            for index, (name, model) in enumerate(entries)
        ]
        for operation, entries in DEFAULT_PRIORITIES.items()
    }


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Manager keyword arguments from the ``AI_*`` variables that are set (and not blank)."""
    kwargs: dict[str, Any] = {}
    for variable, (key, kind) in ENV_SETTINGS.items():
        raw = environ.get(variable)
        if raw is None or raw.strip() == "":
            continue
        if kind is bool:
            kwargs[key] = parse_bool(raw, source=variable)
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(
                f"expected a number of seconds, got {raw!r}", source=variable, key=variable
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"expected a number of seconds > 0, got {raw!r}", source=variable, key=variable
            )
        kwargs[key] = value
    return kwargs


def load_manager_kwargs(
    environ: Mapping[str, str] | None = None, config_path: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for :class:`PlatformManager` from the file and the environment.

    The environment wins over the file; both are read and validated completely before
    anything is built, so a bad setting leaves nothing half-configured.
    """
    env = os.environ if environ is None else environ
    path = config_path or env.get(ENV_CONFIG) or None
    kwargs: dict[str, Any] = {}
    if path:
        kwargs.update(settings_from_toml(read_toml(path), path))
    kwargs.update(settings_from_env(env))
    if environ is not None:
        kwargs["environ"] = environ
    return kwargs
