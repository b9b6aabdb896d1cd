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

    [priorities]
    image_editing = ["stability/sd-3.5-large", "replicate/flux", "fal/fal-3d"]
    text_generation = [
        "groq/llama-3.3-70b-versatile",
        { name = "openai", model = "gpt-4o-mini", estimated_cost = 0.0006 },
    ]

    [platforms.stability]           # applies wherever the platform is listed
    api_key_env = "STABILITY_API_KEY"   # "" means: no key needed
    estimated_cost = 0.04
    attempt_timeout = 60
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from typing import Any, Final

from failover._errors import ConfigError
from failover._policies import Policy
from failover._spec import DEFAULT_PRIORITIES, PlatformSpec, check_operation_name, known_platform

ENV_CONFIG: Final = "FAILOVER_CONFIG"

#: Environment variables kept from the old manager -> manager keyword, and their type.
ENV_SETTINGS: Final[dict[str, tuple[str, type]]] = {
    "AI_FALLBACK_ENABLED": ("fallback_enabled", bool),
    "AI_CACHE_TTL_SECONDS": ("cache_ttl_seconds", float),
    "AI_COST_OPTIMIZATION": ("cost_optimization", bool),
    "AI_MONITORING_ENABLED": ("monitoring_enabled", bool),
}

_MANAGER_KEYS: Final[dict[str, type]] = {
    "cache_ttl_seconds": float,
    "failure_threshold": int,
    "fallback_enabled": bool,
    "cost_optimization": bool,
    "monitoring_enabled": bool,
    "max_attempts": int,
    "half_open_max_calls": int,
    "success_threshold": int,
    "probe_lease_seconds": float,
    "open_backoff": float,
    "max_open_seconds": float,
    "auth_cooldown_seconds": float,
    "rate_limit_max_seconds": float,
    "continue_on": list,
}
_POLICY_KEYS: Final = ("attempt_timeout", "deadline")
_PLATFORM_KEYS: Final[dict[str, type]] = {
    "api_key_env": str,
    "estimated_cost": float,
    "estimated_time": float,
    "attempt_timeout": float,
}
_ENTRY_KEYS: Final = frozenset({"name", "model", "api_key_env", "estimated_cost", "estimated_time"})

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str, *, source: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"expected true or false, got {text!r}", source=source)


def _check_value(value: object, expected: type, *, source: str, key: str) -> Any:
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}", source=source, key=key)
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}", source=source, key=key)
        return value
    if expected is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{key} must be a number, got {value!r}", source=source, key=key)
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}", source=source, key=key)
        return value
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(
                f"{key} must be a list of strings, got {value!r}", source=source, key=key
            )
        return value
    raise AssertionError(expected)  # pragma: no cover


def _reject_unknown(table: Mapping[str, Any], allowed: Any, *, source: str, where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key {where}{unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            source=source,
            key=unknown[0],
        )


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=path) from None


def _entry(
    operation: str, index: int, raw: object, platforms: Mapping[str, Mapping[str, Any]], source: str
) -> PlatformSpec:
    where = f"priorities.{operation}[{index}]"
    if isinstance(raw, str):
        name, sep, model = raw.partition("/")
        if not sep or not name or not model:
            raise ConfigError(
                f"{where} must look like 'platform/model', got {raw!r}",
                source=source,
                key=operation,
            )
        fields: dict[str, Any] = {"name": name.strip(), "model": model.strip()}
    elif isinstance(raw, dict):
        _reject_unknown(raw, _ENTRY_KEYS, source=source, where=f"{where}.")
        if "name" not in raw or "model" not in raw:
            raise ConfigError(
                f"{where} needs both 'name' and 'model'", source=source, key=operation
            )
        fields = dict(raw)
    else:
        raise ConfigError(
            f"{where} must be 'platform/model' or a table, got {raw!r}",
            source=source,
            key=operation,
        )
    name = fields["name"]
    known = known_platform(name) if isinstance(name, str) else None
    overrides = platforms.get(name, {}) if isinstance(name, str) else {}
    api_key_env = fields.get(
        "api_key_env", overrides.get("api_key_env", known.api_key_env if known else None)
    )
    try:
        return PlatformSpec(
            name=name,
            model=fields["model"],
            priority=index,
            estimated_cost=fields.get(
                "estimated_cost",
                overrides.get("estimated_cost", known.estimated_cost if known else 0.0),
            ),
            estimated_time=fields.get(
                "estimated_time",
                overrides.get("estimated_time", known.estimated_time if known else 0.0),
            ),
            api_key_env=api_key_env or None,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", source=source, key=operation) from None


def settings_from_toml(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Manager keyword arguments from a parsed TOML document."""
    _reject_unknown(data, ("failover", "priorities", "platforms"), source=source, where="")
    kwargs: dict[str, Any] = {}
    section = data.get("failover", {})
    if not isinstance(section, dict):
        raise ConfigError("[failover] must be a table", source=source, key="failover")
    _reject_unknown(section, [*_MANAGER_KEYS, *_POLICY_KEYS], source=source, where="failover.")
    for key, value in section.items():
        if key in _POLICY_KEYS:
            continue
        kwargs[key] = _check_value(value, _MANAGER_KEYS[key], source=source, key=f"failover.{key}")
    policy_fields = {
        key: _check_value(section[key], float, source=source, key=f"failover.{key}")
        for key in _POLICY_KEYS
        if key in section
    }

    platforms = data.get("platforms", {})
    if not isinstance(platforms, dict):
        raise ConfigError("[platforms] must be a table of tables", source=source, key="platforms")
    platform_policies: dict[str, Policy] = {}
    for name, table in platforms.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[platforms.{name}] must be a table", source=source, key=name)
        _reject_unknown(table, _PLATFORM_KEYS, source=source, where=f"platforms.{name}.")
        for key, value in table.items():
            _check_value(value, _PLATFORM_KEYS[key], source=source, key=f"platforms.{name}.{key}")
        if "attempt_timeout" in table:
            platform_policies[name] = _policy(
                {"attempt_timeout": float(table["attempt_timeout"])}, source, f"platforms.{name}"
            )

    priorities_table = data.get("priorities")
    if priorities_table is not None:
        if not isinstance(priorities_table, dict):
            raise ConfigError("[priorities] must be a table", source=source, key="priorities")
        priorities: dict[str, list[PlatformSpec]] = {}
        for operation, entries in priorities_table.items():
            try:
                check_operation_name(operation, where="priorities")
            except ConfigError as exc:
                raise ConfigError(str(exc), source=source, key=operation) from None
            if not isinstance(entries, list) or not entries:
                raise ConfigError(
                    f"priorities.{operation} must be a non-empty list of 'platform/model'",
                    source=source,
                    key=operation,
                )
            priorities[operation] = [
                _entry(operation, index, raw, platforms, source)
                for index, raw in enumerate(entries)
            ]
        kwargs["priorities"] = priorities
    elif platforms:
        kwargs["priorities"] = _defaults_with(platforms, source)
    unknown_platforms = sorted(
        set(platforms)
        - {
            spec.name
            for specs in kwargs.get("priorities", _defaults_with({}, source)).values()
            for spec in specs
        }
    )
    if unknown_platforms:
        raise ConfigError(
            f"[platforms.{unknown_platforms[0]}] names a platform that is in no priority list",
            source=source,
            key=unknown_platforms[0],
        )
    if policy_fields:
        kwargs["policy"] = _policy(policy_fields, source, "failover")
    if platform_policies:
        kwargs["platform_policies"] = platform_policies
    return kwargs


def _policy(fields: dict[str, float], source: str, where: str) -> Policy:
    try:
        return Policy(**fields)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", source=source, key=exc.key) from None


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
    kwargs: dict[str, Any] = {}
    for variable, (key, kind) in ENV_SETTINGS.items():
        raw = environ.get(variable)
        if raw is None or raw.strip() == "":
            continue
        if kind is bool:
            kwargs[key] = parse_bool(raw, source=variable)
        else:
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(
                    f"expected a number of seconds, got {raw!r}", source=variable
                ) from None
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"must be > 0, got {raw!r}", source=variable)
            kwargs[key] = value
    return kwargs


def load_manager_kwargs(
    environ: Mapping[str, str] | None = None, config_path: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for :class:`PlatformManager` from the file and the environment."""
    env = os.environ if environ is None else environ
    path = config_path or env.get(ENV_CONFIG) or None
    kwargs: dict[str, Any] = {}
    if path:
        kwargs.update(settings_from_toml(read_toml(path), path))
    kwargs.update(settings_from_env(env))
    if environ is not None:
        kwargs["environ"] = environ
    return kwargs
