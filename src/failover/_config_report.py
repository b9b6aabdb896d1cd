"""``failover check-config``: validate a ``failover.toml`` and say what it resolves to.

The loader (:mod:`failover._config.load`) stops at the first problem, which is right for a
program starting up but tiresome when fixing a file. Here every part of the document (each
setting, each ``[platforms.X]`` table, each priority entry) goes through the same loader and
:class:`~failover.PlatformManager` validation on its own, so every problem is named at once.
A valid file is then loaded whole, and the result is described per operation: the resolved
order, which platforms are usable now, and which would be skipped and why.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from failover._config.load import (
    ENV_SETTINGS,
    read_toml,
    settings_from_env,
    settings_from_toml,
)
from failover._core.errors import ConfigError
from failover._core.spec import (
    BUILTIN_OPERATION_TYPES,
    DEFAULT_PRIORITIES,
    KNOWN_PLATFORMS,
    check_operation_name,
    known_platform,
)
from failover._manager import PlatformManager

_SECTIONS: Final = ("failover", "priorities", "operations", "platforms")
_CHECK_OPERATION: Final = "config_check"
_SKIP_WORDS: Final = {
    "missing_api_key": "missing API key",
    "credit": "cooling down: out of credits",
    "auth": "cooling down: key refused",
    "rate_limited": "cooling down: rate limited",
    "open": "breaker open",
}


@dataclass(frozen=True, slots=True)
class PlatformCheck:
    """One platform of one operation, as the manager would see it now."""

    name: str
    model: str
    api_key_env: str | None
    estimated_cost: float
    usable: bool
    skip_reason: str | None

    def why_skipped(self) -> str | None:
        if self.skip_reason is None:
            return None
        words = _SKIP_WORDS.get(self.skip_reason, self.skip_reason)
        if self.skip_reason == "missing_api_key":
            words += f" (set {self.api_key_env})"
        return words

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.name,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "estimated_cost": self.estimated_cost,
            "usable": self.usable,
            "skip_reason": self.skip_reason,
            "why_skipped": self.why_skipped(),
        }


@dataclass(slots=True)
class ConfigReport:
    """What ``check-config`` found: problems (exit 1), warnings, and the resolved view."""

    source: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    ordering: str = "priority"
    operations: dict[str, list[PlatformCheck]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "settings": self.settings,
            "ordering": self.ordering,
            "operations": {
                operation: [check.to_json() for check in checks]
                for operation, checks in self.operations.items()
            },
        }


async def check_config(
    path: str,
    environ: Mapping[str, str],
    *,
    with_manager: Callable[[PlatformManager], Awaitable[None]] | None = None,
) -> ConfigReport:
    """Validate the TOML file at ``path`` against ``environ`` (for keys and ``AI_*``).

    ``with_manager`` is awaited with the manager the file builds, when it builds one, before
    the manager is closed (``check-config --online`` checks its platforms there).
    """
    report = ConfigReport(path)
    try:
        data = read_toml(path)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    for piece in await _pieces(data):
        problem = await _problem_in(piece, path)
        if problem is not None and problem not in report.problems:
            report.problems.append(problem)
    report.problems.extend(_duplicates(data, path))
    report.problems.extend(_unlisted_platforms(data, path))
    for variable in ENV_SETTINGS:
        if variable in environ:
            try:
                settings_from_env({variable: environ[variable]})
            except ConfigError as exc:
                report.problems.append(f"environment: {exc}")
    if report.problems:
        return report
    try:
        kwargs = settings_from_toml(data, path)
        kwargs.update(settings_from_env(environ))
        manager = PlatformManager(**kwargs, environ=environ)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    async with manager:
        _describe(report, manager, kwargs, data)
        if with_manager is not None:
            await with_manager(manager)
    return report


async def _pieces(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document cut into parts that can each be validated on their own."""
    pieces: list[dict[str, Any]] = []
    for key, value in data.items():
        if key not in _SECTIONS:
            pieces.append({key: value})
    section = data.get("failover")
    if isinstance(section, dict):
        pieces.extend({"failover": {key: value}} for key, value in section.items())
    elif section is not None:
        pieces.append({"failover": section})
    platforms = data.get("platforms")
    if isinstance(platforms, dict):
        for name, table in platforms.items():
            # Listed once in a made-up operation, so the table's values are applied and
            # checked as they would be wherever the platform is listed.
            pieces.append(
                {"platforms": {name: table}, "priorities": {_CHECK_OPERATION: [f"{name}/model"]}}
            )
    elif platforms is not None:
        pieces.append({"platforms": platforms})
    priorities = data.get("priorities")
    valid_platforms = await _valid_platform_tables(platforms)
    # Every valid [platforms.X] must be listed somewhere, or the loader objects.
    listing = [f"{name}/model" for name in valid_platforms]
    if isinstance(priorities, dict):
        for operation, entries in priorities.items():
            if not isinstance(entries, list) or not entries:
                pieces.append({"priorities": {operation: entries}})
                continue
            for index, entry in enumerate(entries):
                # Placeholders keep the entry at its index, so the message names it right.
                padding = [f"config-check-{n}/model" for n in range(index)]
                piece_priorities: dict[str, Any] = {operation: [*padding, entry]}
                if listing and operation != _CHECK_OPERATION:
                    piece_priorities[_CHECK_OPERATION] = listing
                pieces.append({"priorities": piece_priorities, "platforms": valid_platforms})
    elif priorities is not None:
        pieces.append({"priorities": priorities})
    operations = data.get("operations")
    if isinstance(operations, dict):
        # Each [operations.X] against the file's operation names (placeholder platforms).
        names = (
            [name for name in priorities if _is_operation_name(name)]
            if isinstance(priorities, dict)
            else None
        )
        for operation, table in operations.items():
            piece: dict[str, Any] = {"operations": {operation: table}}
            if names is not None:
                piece["priorities"] = {
                    name: [f"config-check-{n}/model"] for n, name in enumerate(names)
                }
            pieces.append(piece)
    elif operations is not None:
        pieces.append({"operations": operations})
    return pieces


def _is_operation_name(name: object) -> bool:
    try:
        check_operation_name(name, where="priorities")
    except ConfigError:
        return False
    return True


async def _valid_platform_tables(platforms: object) -> dict[str, Any]:
    if not isinstance(platforms, dict):
        return {}
    valid: dict[str, Any] = {}
    for name, table in platforms.items():
        piece = {"platforms": {name: table}, "priorities": {_CHECK_OPERATION: [f"{name}/m"]}}
        if await _problem_in(piece, "") is None:
            valid[name] = table
    return valid


async def _problem_in(piece: Mapping[str, Any], source: str) -> str | None:
    """The first problem in ``piece`` (a part of the document), or ``None``."""
    try:
        kwargs = settings_from_toml(piece, source)
        if "priorities" not in kwargs:
            kwargs["priorities"] = {_CHECK_OPERATION: [("config-check", "model")]}
        manager = PlatformManager(**kwargs, environ={})
    except ConfigError as exc:
        message = str(exc)
        if source and not message.startswith(f"{source}:"):
            message = f"{source}: {message}"
        return message
    await manager.aclose()
    return None


def _duplicates(data: Mapping[str, Any], source: str) -> list[str]:
    priorities = data.get("priorities")
    if not isinstance(priorities, dict):
        return []
    problems = []
    for operation, entries in priorities.items():
        if not isinstance(entries, list):
            continue
        seen: set[str] = set()
        for entry in entries:
            name = _entry_name(entry)
            if name is None:
                continue
            if name in seen:
                problems.append(
                    f"{source}: priorities.{operation} lists platform {name!r} twice; "
                    "each platform may appear once per operation"
                )
            seen.add(name)
    return problems


def _unlisted_platforms(data: Mapping[str, Any], source: str) -> list[str]:
    platforms = data.get("platforms")
    priorities = data.get("priorities", DEFAULT_PRIORITIES)
    if not isinstance(platforms, dict) or not isinstance(priorities, Mapping):
        return []
    listed = {
        entry[0] if isinstance(entry, tuple) else _entry_name(entry)
        for entries in priorities.values()
        if isinstance(entries, list | tuple)
        for entry in entries
    }
    return [
        f"{source}: [platforms.{name}] names a platform that is in no priority list"
        for name in platforms
        if name not in listed
    ]


def _entry_name(entry: object) -> str | None:
    if isinstance(entry, str):
        return entry.partition("/")[0].strip() or None
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return str(entry["name"])
    return None


def _describe(
    report: ConfigReport,
    manager: PlatformManager,
    kwargs: Mapping[str, Any],
    data: Mapping[str, Any],
) -> None:
    report.settings = {
        key: value
        for key, value in kwargs.items()
        if key not in ("priorities", "policy", "platform_policies", "environ")
    }
    policy = kwargs.get("policy")
    if policy is not None:
        for name in ("attempt_timeout", "deadline"):
            if getattr(policy, name) is not None:
                report.settings[name] = getattr(policy, name)
    if "priorities" not in data:
        report.warnings.append("no [priorities] table: the built-in priority table is used")
    if manager.cost_optimization:
        report.ordering = "cost (cheapest first)"
    health = manager.get_health_status()
    for operation in manager.operations:
        specs = manager.platforms(operation)
        if manager.cost_optimization:
            specs = sorted(specs, key=lambda spec: spec.estimated_cost)
        checks = []
        for spec in specs:
            pair = health[spec.name]["operations"][operation]
            checks.append(
                PlatformCheck(
                    spec.name,
                    spec.model,
                    spec.api_key_env,
                    spec.estimated_cost,
                    bool(pair["usable"]),
                    pair["skip_reason"],
                )
            )
            if known_platform(spec.name) is None and spec.api_key_env is None:
                close = difflib.get_close_matches(spec.name, KNOWN_PLATFORMS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                warning = (
                    f"platform {spec.name!r} is not one failover knows{hint} and has no "
                    "api_key_env: it is assumed to need no key"
                )
                if warning not in report.warnings:
                    report.warnings.append(warning)
        report.operations[operation] = checks
        if operation not in BUILTIN_OPERATION_TYPES:
            close = difflib.get_close_matches(operation, BUILTIN_OPERATION_TYPES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report.warnings.append(
                f"{operation!r} is not a built-in operation type{hint}; "
                "callers must use exactly this name"
            )
        if not any(check.usable for check in checks):
            reasons = ", ".join(f"{check.name}: {check.why_skipped()}" for check in checks)
            report.problems.append(f"{operation}: no usable platform ({reasons})")
