"""The manager's arguments, validated into one frozen :class:`ManagerPlan`.

Making the plan is where every argument of :class:`~failover.PlatformManager` is checked and
every error is raised, in a fixed order (the first bad argument in that order is the one
reported): the numbers and flags, the breaker settings, the priority lists, the policies,
the shared state, the last-resort keywords and the chaos rules. Nothing is built or
registered until the plan exists, so a bad argument leaves nothing half-made.
:mod:`failover._config.build` turns the plan into pairs and routes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from failover._core import validate
from failover._core.breaker import BreakerSettings
from failover._core.classify import Classifier, caller_bugs_as_failures
from failover._core.clock import Clock
from failover._core.errors import ConfigError, UnknownOperation
from failover._core.spec import (
    PlatformSpec,
    check_operation_name,
    known_capabilities,
    known_platform,
)
from failover._engine.book import EngineSettings
from failover._engine.clock import MonotonicClock
from failover.policies.chaos import Chaos, chaos_rules
from failover.policies.ordering import Ordering, cost_order
from failover.policies.policy import Policy, ResolvedPolicy, check_when_all_unavailable

if TYPE_CHECKING:
    from failover._engine.checks import HealthChecks
    from failover._engine.fleet import SharedState

PriorityEntry = tuple[str, str] | PlatformSpec
Priorities = Mapping[str, Sequence[PriorityEntry]]


class ManagerPlan(NamedTuple):
    """Everything a manager is built from, already checked."""

    cache_ttl_seconds: float
    failure_threshold: int
    fallback_enabled: bool
    cost_optimization: bool
    monitoring_enabled: bool
    breaker: BreakerSettings
    engine: EngineSettings
    #: operation -> its platforms in priority order
    specs: Mapping[str, Sequence[PlatformSpec]]
    #: operation -> the manager-wide policy merged with the operation's own
    operation_policies: Mapping[str, Policy]
    #: (platform, operation) -> the policy its pair runs under
    pair_policies: Mapping[tuple[str, str], ResolvedPolicy]
    #: (platform, operation) -> its breaker settings, for pairs a ``BreakerPolicy`` changes
    pair_breakers: Mapping[tuple[str, str], BreakerSettings]
    #: platform -> its extra classifiers
    classifiers: Mapping[str, tuple[Classifier, ...]]
    #: the ordering strategy (``None``: priority order)
    ordering: Ordering | None
    chaos: tuple[Chaos, ...]
    clock: Clock
    shared_state: SharedState | None
    environ: Mapping[str, str] | None
    health_checks: HealthChecks | None = None

    @property
    def api_key_envs(self) -> set[str]:
        """The variables holding the configured platforms' keys (their values get scrubbed)."""
        return {
            spec.api_key_env for specs in self.specs.values() for spec in specs if spec.api_key_env
        }


#: The settings the original manager always read from its ``AI_*`` variables: variable and
#: the value when neither the constructor nor the variable gives one.
ENV_DEFAULTS: dict[str, tuple[str, Any]] = {
    "fallback_enabled": ("AI_FALLBACK_ENABLED", True),
    "cache_ttl_seconds": ("AI_CACHE_TTL_SECONDS", 300.0),
    "cost_optimization": ("AI_COST_OPTIMIZATION", False),
    "monitoring_enabled": ("AI_MONITORING_ENABLED", True),
}


def with_env_defaults(
    given: Mapping[str, Any], environ: Mapping[str, str] | None, trust_env: object
) -> dict[str, Any]:
    """``given`` with every ``None`` (not given) filled from its ``AI_*`` variable when
    ``trust_env``, else from its default. Explicit arguments always win."""
    validate.instance("trust_env", trust_env, bool, "True or False")
    env: object = os.environ if environ is None else environ
    if not isinstance(env, Mapping):
        env = {}  # make_plan names the bad ``environ``
    wanted = {
        variable: env[variable]
        for key, value in given.items()
        if value is None
        for variable in (ENV_DEFAULTS[key][0],)
        if trust_env and variable in env
    }
    read: dict[str, Any] = {}
    if wanted:
        # Only then: the loader (and tomllib) stays out of a plain import.
        from failover._config.load import settings_from_env

        read = settings_from_env(wanted)
    return {
        key: value if value is not None else read.get(key, ENV_DEFAULTS[key][1])
        for key, value in given.items()
    }


def make_plan(
    *,
    priorities: Priorities | None,
    failure_threshold: int,
    cache_ttl_seconds: float,
    fallback_enabled: bool,
    cost_optimization: bool,
    monitoring_enabled: bool,
    max_attempts: int,
    half_open_max_calls: int,
    success_threshold: int,
    probe_lease_seconds: float | None,
    open_backoff: float,
    max_open_seconds: float,
    failure_rate_threshold: float | None,
    minimum_calls: int,
    window_seconds: float,
    slow_call_seconds: float | None,
    slow_call_rate_threshold: float | None,
    auth_cooldown_seconds: float | None,
    rate_limit_max_seconds: float | None,
    continue_on: Iterable[str],
    caller_bugs_fall_back: Iterable[str],
    when_all_unavailable: str | None,
    max_wait: float | None,
    policy: Policy | None,
    operation_policies: Mapping[str, Policy] | None,
    platform_policies: Mapping[str, Policy] | None,
    ordering: Ordering | None,
    classifiers: Mapping[str, Sequence[Classifier]] | None,
    clock: Clock | None,
    environ: Mapping[str, str] | None,
    shared_state: Any,
    chaos: Chaos | Sequence[Chaos] | None,
    health_checks: HealthChecks | None = None,
) -> ManagerPlan:
    """Check every argument of ``PlatformManager(...)`` (see its signature) into a plan."""
    engine = engine_settings(
        cache_ttl_seconds,
        failure_threshold,
        max_attempts,
        {
            "fallback_enabled": fallback_enabled,
            "cost_optimization": cost_optimization,
            "monitoring_enabled": monitoring_enabled,
        },
        auth_cooldown_seconds,
        rate_limit_max_seconds,
        continue_on,
    )
    ttl = engine.cooldown_seconds
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigError(
            f"policy must be a failover.Policy, got {validate.shown(policy)}", key="policy"
        )
    if ordering is not None:
        validate.callable_("ordering", ordering)
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigError(
            "clock must provide now(), wall(), sleep() and cancel_scope()", key="clock"
        )
    breaker = BreakerSettings(
        failure_threshold=failure_threshold,
        reset_timeout=ttl,
        half_open_max_calls=half_open_max_calls,
        success_threshold=success_threshold,
        probe_lease_seconds=min(ttl, 60.0) if probe_lease_seconds is None else probe_lease_seconds,
        open_backoff=open_backoff,
        max_open_seconds=_max_open(max_open_seconds, ttl),
        failure_rate_threshold=failure_rate_threshold,
        minimum_calls=minimum_calls,
        window_seconds=window_seconds,
        slow_call_seconds=slow_call_seconds,
        slow_call_rate_threshold=slow_call_rate_threshold,
    )
    specs = build_specs(default_priorities() if priorities is None else priorities)
    operation_policies = _optional_mapping("operation_policies", operation_policies)
    platform_policies = _optional_mapping("platform_policies", platform_policies)
    by_platform: dict[str, tuple[Classifier, ...]] = {
        name: validate.callables("classifiers", found, label=f"classifiers[{name!r}]", key=name)
        for name, found in _optional_mapping("classifiers", classifiers).items()
    }
    check_policies(specs, operation_policies, platform_policies, by_platform)
    _opt_in_caller_bugs(specs, caller_bugs_fall_back, by_platform)
    if shared_state is not None and not _is_shared_state(shared_state):
        raise ConfigError(
            "shared_state must be a shared-state backend such as "
            f"failover.redis.RedisSharedState, got {validate.shown(shared_state)}",
            key="shared_state",
        )
    _check_health_checks(specs, health_checks)
    base = last_resort_policy(when_all_unavailable, max_wait, policy)
    if environ is not None:
        validate.mapping("environ", environ, of=" of variable names to values")
    rules = chaos_rules(chaos, os.environ if environ is None else environ)
    merged = {op: base.then(operation_policies.get(op, Policy())) for op in specs}
    breakers = pair_breakers(specs, merged, platform_policies, breaker)
    return ManagerPlan(
        cache_ttl_seconds=ttl,
        failure_threshold=failure_threshold,
        fallback_enabled=fallback_enabled,
        cost_optimization=cost_optimization,
        monitoring_enabled=monitoring_enabled,
        breaker=breaker,
        engine=engine,
        specs=specs,
        operation_policies=merged,
        pair_policies=pair_policies(specs, merged, platform_policies),
        pair_breakers=breakers,
        classifiers=by_platform,
        ordering=ordering if ordering is not None else (cost_order if cost_optimization else None),
        chaos=rules,
        clock=clock if clock is not None else MonotonicClock(),
        shared_state=shared_state,
        environ=environ,
        health_checks=health_checks,
    )


def engine_settings(
    cache_ttl_seconds: object,
    failure_threshold: object,
    max_attempts: object,
    flags: Mapping[str, object],
    auth_cooldown_seconds: object,
    rate_limit_max_seconds: object,
    continue_on: object,
) -> EngineSettings:
    """The engine's settings; ``failure_threshold`` is checked here too, for the error order."""
    ttl = validate.number("cache_ttl_seconds", cache_ttl_seconds, above=0, bare_type_error=True)
    validate.integer("failure_threshold", failure_threshold, at_least=1, bare_type_error=True)
    attempts = validate.integer("max_attempts", max_attempts, at_least=1, bare_type_error=True)
    for flag_name, value in flags.items():
        validate.flag(flag_name, value)
    # inf is allowed: a key refused, or a rate limit, skips the platform until reset.
    auth_cooldown = (
        ttl * 4
        if auth_cooldown_seconds is None
        else validate.number(
            "auth_cooldown_seconds",
            auth_cooldown_seconds,
            above=0,
            allow_inf=True,
            bare_type_error=True,
        )
    )
    rate_cap = (
        ttl
        if rate_limit_max_seconds is None
        else validate.number(
            "rate_limit_max_seconds",
            rate_limit_max_seconds,
            above=0,
            allow_inf=True,
            bare_type_error=True,
        )
    )
    reasons = validate.strings("continue_on", continue_on, of="request-fault reasons")
    return EngineSettings(
        max_attempts=attempts,
        fallback_enabled=bool(flags["fallback_enabled"]),
        monitoring_enabled=bool(flags["monitoring_enabled"]),
        continue_on=frozenset(reasons),
        cooldown_seconds=ttl,
        auth_cooldown_seconds=auth_cooldown,
        rate_limit_max_seconds=rate_cap,
    )


def _optional_mapping(name: str, value: object) -> dict[Any, Any]:
    """A copy of the mapping ``value``, ``{}`` for ``None``."""
    if value is None:
        return {}
    return dict(validate.mapping(name, value))


def _max_open(max_open_seconds: object, ttl: float) -> Any:
    """The longest open duration: never shorter than the TTL; 0 means "the TTL".

    A value that is not a number is passed on unchanged for ``BreakerSettings`` to name.
    """
    if not max_open_seconds:
        return ttl
    if isinstance(max_open_seconds, bool) or not isinstance(max_open_seconds, int | float):
        return max_open_seconds
    return max(max_open_seconds, ttl)


def default_priorities() -> dict[str, list[PriorityEntry]]:
    from failover._core.spec import DEFAULT_PRIORITIES

    return {op: list(entries) for op, entries in DEFAULT_PRIORITIES.items()}


def last_resort_policy(
    when_all_unavailable: str | None, max_wait: float | None, policy: Policy | None
) -> Policy:
    """``policy`` under the manager-wide ``when_all_unavailable``/``max_wait`` keywords."""
    if when_all_unavailable is None and max_wait is None:
        return policy or Policy()
    if when_all_unavailable is not None:
        check_when_all_unavailable(when_all_unavailable)
    if max_wait is not None:
        # inf is allowed: wait as long as it takes for a platform.
        validate.number("max_wait", max_wait, above=0, allow_inf=True, bare_type_error=True)
    for name, value in (("when_all_unavailable", when_all_unavailable), ("max_wait", max_wait)):
        if value is not None and policy is not None and getattr(policy, name) is not None:
            raise ConfigError(
                f"{name} is set both as a keyword and in policy=; set it once", key=name
            )
    keywords = Policy(when_all_unavailable=when_all_unavailable, max_wait=max_wait)
    return keywords.then(policy) if policy is not None else keywords


def check_policies(
    specs: Mapping[str, Sequence[PlatformSpec]],
    operation_policies: Mapping[str, object],
    platform_policies: Mapping[str, object],
    classifiers: Mapping[str, object],
) -> None:
    """Per-operation and per-platform policies and classifiers name what exists, and say only
    what can be said at their level."""
    for label, policies in (
        ("operation_policies", operation_policies),
        ("platform_policies", platform_policies),
    ):
        for key, value in policies.items():
            if not isinstance(value, Policy):
                raise ConfigError(
                    f"{label}[{key!r}] must be a failover.Policy, got {validate.shown(value)}",
                    # ConfigError.key is a string; a non-string mapping key is named as shown.
                    key=key if isinstance(key, str) else validate.shown(key),
                )
    unknown_ops = set(operation_policies) - set(specs)
    if unknown_ops:
        raise UnknownOperation(sorted(unknown_ops, key=validate.shown)[0], sorted(specs))
    known_platforms = {spec.name for found in specs.values() for spec in found}
    for label, mapping in (("platform_policies", platform_policies), ("classifiers", classifiers)):
        for name in mapping:
            if name not in known_platforms:
                raise ConfigError(
                    f"{label} names platform {name!r}, which is in no priority list "
                    f"(known: {', '.join(sorted(known_platforms))})",
                    key=str(name),
                )
    for name, value in platform_policies.items():
        assert isinstance(value, Policy)  # checked above
        _check_platform_policy(name, value)


def _is_shared_state(value: object) -> bool:
    from failover._engine.fleet import SharedState  # with shared state only

    return isinstance(value, SharedState)


def _check_health_checks(
    specs: Mapping[str, Sequence[PlatformSpec]], health_checks: object
) -> None:
    """``health_checks`` is a :class:`HealthChecks` naming platforms of the priority lists."""
    if health_checks is None:
        return
    from failover._engine.checks import HealthChecks

    if not isinstance(health_checks, HealthChecks):
        raise ConfigError(
            f"health_checks must be a failover.HealthChecks, got {validate.shown(health_checks)}",
            key="health_checks",
        )
    known = {spec.name for found in specs.values() for spec in found}
    for name in health_checks.checks:
        if name not in known:
            raise ConfigError(
                f"health_checks.checks names platform {name!r}, which is in no priority list "
                f"(known: {', '.join(sorted(known))})",
                key="health_checks",
            )


def _check_platform_policy(name: str, value: Policy) -> None:
    if value.hedge is not None:
        raise ConfigError(
            f"platform_policies[{name!r}].hedge: hedging races platforms of one "
            "operation; set it in policy= or operation_policies=",
            key=name,
        )
    if value.deadline is not None:
        raise ConfigError(
            f"platform_policies[{name!r}].deadline: a deadline bounds a whole call "
            "across platforms; set it in policy= or operation_policies=",
            key=name,
        )
    if value.content_policy_fallback is not None:
        raise ConfigError(
            f"platform_policies[{name!r}].content_policy_fallback: it says whether a refusal "
            "may be routed around for an operation; set it per manager or in "
            "operation_policies=",
            key=name,
        )
    for field in ("when_all_unavailable", "max_wait"):
        if getattr(value, field) is not None:
            raise ConfigError(
                f"platform_policies[{name!r}].{field}: it says what a call does when "
                "every platform is unavailable; set it per manager or in "
                "operation_policies=",
                key=name,
            )


def pair_policies(
    specs: Mapping[str, Sequence[PlatformSpec]],
    operation_policies: Mapping[str, Policy],
    platform_policies: Mapping[str, Policy],
) -> dict[tuple[str, str], ResolvedPolicy]:
    """The policy of every pair: its operation's, then its platform's."""
    resolved: dict[tuple[str, str], ResolvedPolicy] = {}
    for operation, found in specs.items():
        operation_policy = operation_policies[operation]
        # Pairs without a platform policy share one (immutable) resolved policy.
        shared: ResolvedPolicy | None = None
        for spec in found:
            platform_policy = platform_policies.get(spec.name)
            if platform_policy is not None:
                policy = ResolvedPolicy.of(operation_policy.then(platform_policy))
            else:
                if shared is None:
                    shared = ResolvedPolicy.of(operation_policy.then(Policy()))
                policy = shared
            resolved[spec.name, operation] = policy
    return resolved


def _opt_in_caller_bugs(
    specs: Mapping[str, Sequence[PlatformSpec]],
    names: object,
    classifiers: dict[str, tuple[Classifier, ...]],
) -> None:
    """The platforms named in ``caller_bugs_fall_back`` get a last classifier that counts
    programming errors as their transient failures (after the user's own classifiers)."""
    wanted = validate.strings("caller_bugs_fall_back", names, of="platform names")
    known = {spec.name for found in specs.values() for spec in found}
    for name in wanted:
        if name not in known:
            raise ConfigError(
                f"caller_bugs_fall_back names platform {name!r}, which is in no priority list "
                f"(known: {', '.join(sorted(known))})",
                key="caller_bugs_fall_back",
            )
        classifiers[name] = (*classifiers.get(name, ()), caller_bugs_as_failures)


def pair_breakers(
    specs: Mapping[str, Sequence[PlatformSpec]],
    operation_policies: Mapping[str, Policy],
    platform_policies: Mapping[str, Policy],
    base: BreakerSettings,
) -> dict[tuple[str, str], BreakerSettings]:
    """The breaker settings of every pair a ``BreakerPolicy`` reaches: the manager's, then its
    operation's, then its platform's, field by field; checked whole for each pair."""
    resolved: dict[tuple[str, str], BreakerSettings] = {}
    for operation, found in specs.items():
        for spec in found:
            policy = operation_policies[operation]
            platform_policy = platform_policies.get(spec.name)
            if platform_policy is not None:
                policy = policy.then(platform_policy)
            if policy.breaker is None:
                continue
            try:
                resolved[spec.name, operation] = replace(base, **policy.breaker.changes())
            except ConfigError as exc:
                raise ConfigError(
                    f"breaker settings of {spec.name}/{operation}: {exc}", key=exc.key
                ) from None
    return resolved


# -- priorities --------------------------------------------------------------------------------


def build_specs(priorities: Priorities) -> dict[str, list[PlatformSpec]]:
    """Validate ``priorities`` and turn every entry into a :class:`PlatformSpec`."""
    validate.mapping(
        "priorities", priorities, of=" of operation type -> list of platforms", key="priorities"
    )
    operations_by_name: dict[str, set[str]] = {}
    for operation, entries in priorities.items():
        check_operation_name(operation, where="priorities")
        raw: object = entries
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ConfigError(
                f"priorities[{operation!r}] must be a list of (name, model) pairs or "
                f"PlatformSpec, got {type(raw).__name__}",
                key=operation,
            )
        if not entries:
            raise ConfigError(
                f"priorities[{operation!r}] is empty; list at least one platform", key=operation
            )
        for entry in entries:
            name = entry.name if isinstance(entry, PlatformSpec) else _entry_name(operation, entry)
            operations_by_name.setdefault(name, set()).add(operation)
    # One frozenset per platform, shared by its specs (with many operations, a copy per spec
    # would cost more memory than the rest of the pair).
    operation_types = {name: frozenset(names) for name, names in operations_by_name.items()}
    return {
        operation: _operation_specs(operation, entries, operation_types)
        for operation, entries in priorities.items()
    }


def _operation_specs(
    operation: str,
    entries: Sequence[PriorityEntry],
    operation_types: Mapping[str, frozenset[str]],
) -> list[PlatformSpec]:
    seen: set[str] = set()
    specs: list[PlatformSpec] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, PlatformSpec):
            spec = entry
            if not spec.operation_types:
                spec = replace(spec, operation_types=operation_types[spec.name])
        else:
            name, model = entry  # validated by _entry_name
            known = known_platform(name)
            window, features = known_capabilities(name, model)
            spec = PlatformSpec(
                name=name,
                model=model,
                operation_types=operation_types[name],
                priority=index,
                estimated_cost=known.estimated_cost if known else 0.0,
                estimated_time=known.estimated_time if known else 0.0,
                api_key_env=known.api_key_env if known else None,
                context_window=window,
                features=features,
            )
        if spec.name in seen:
            raise ConfigError(
                f"priorities[{operation!r}] lists platform {spec.name!r} twice; "
                "each platform may appear once per operation",
                key=operation,
            )
        seen.add(spec.name)
        specs.append(spec)
    return specs


def _entry_name(operation: str, entry: object) -> str:
    if (
        isinstance(entry, tuple | list)
        and len(entry) == 2
        and all(isinstance(part, str) and part for part in entry)
    ):
        return str(entry[0])
    raise ConfigError(
        f"priorities[{operation!r}] entries must be (name, model) string pairs or "
        f"PlatformSpec, got {validate.shown(entry)}",
        key=operation,
    )
