"""PlatformManager: the pinned API (DESIGN §1) over routes, the engine, health and telemetry."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, Self, TypeVar, overload

import anyio

from failover._config.build import build_routes
from failover._config.plan import ManagerPlan, Priorities, make_plan, with_env_defaults
from failover._core import validate
from failover._core.breaker import BreakerState, Transition
from failover._core.classify import Classifier, ErrorKind, classify
from failover._core.clock import Clock, to_wall
from failover._core.errors import (
    AllPlatformsFailed,
    Attempt,
    Closed,
    ConfigError,
    UnknownOperation,
)
from failover._core.health import aggregate
from failover._core.kinds import Cause, SkipReason
from failover._core.spec import BUILTIN_OPERATION_TYPES, PlatformSpec, requirement
from failover._engine.book import DEFAULT_CONTINUE_ON, Book
from failover._engine.drive_async import start
from failover._engine.drive_sync import Workers, call_sync
from failover._engine.route import Pair, Route
from failover._engine.unavailable import describe
from failover._engine.wiring import PolicyWiring
from failover._observe.scrub import Scrubber, get_logger, register
from failover._observe.telemetry import Telemetry
from failover.policies.chaos import Chaos, ChaosControl
from failover.policies.last_resort import LastResort
from failover.policies.ordering import Ordering
from failover.policies.policy import Policy

if TYPE_CHECKING:
    import pybreaker
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from failover._engine.background import Background, Service
    from failover._engine.checks import Check, Checker, HealthChecks
    from failover._engine.fleet import FleetLink

logger = get_logger("failover")

#: What ``with`` holds while a manager is used from one thread: nothing.
_UNLOCKED: Final = contextlib.nullcontext()

P = ParamSpec("P")
R = TypeVar("R")


#: What health shows for a finite deadline past the calendar's end (year 9999): ``1e12`` s
#: from now is "as good as never" to a reader, and must not crash the health report.
#: What ``datetime.max``/``datetime.min`` in UTC read as (``datetime`` loads on first use).
_LAST_INSTANT = "9999-12-31T23:59:59.999999+00:00"
_FIRST_INSTANT = "0001-01-01T00:00:00+00:00"


def _iso(clock: Clock, monotonic: float | None) -> str | None:
    """A clock reading as an ISO-8601 UTC date; ``None`` for no reading or an infinite one
    (isolated: open until reset), the calendar's last instant past year 9999."""
    if monotonic is None or not math.isfinite(monotonic):
        return None
    wall = to_wall(clock, monotonic)
    try:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(wall, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return _LAST_INSTANT if wall > 0 else _FIRST_INSTANT


class PlatformManager:
    """Picks the best platform per operation type and falls back down its priority list.

    Every (platform, operation) pair has its own circuit breaker; credit, quota and billing
    errors cool a whole platform for ``cache_ttl_seconds``, never permanently. Works without
    ``async with`` unless shared state is configured (then ``async with manager:``, or
    ``with manager:`` in synchronous programs).

    ``cache_ttl_seconds``, ``fallback_enabled``, ``cost_optimization`` and
    ``monitoring_enabled`` left out (``None``) come from ``AI_CACHE_TTL_SECONDS``,
    ``AI_FALLBACK_ENABLED``, ``AI_COST_OPTIMIZATION`` and ``AI_MONITORING_ENABLED`` (in
    ``environ``, default ``os.environ``) as the original manager read them, else default to
    300, True, False and True. Explicit arguments win; ``trust_env=False`` ignores the
    variables.
    """

    def __init__(
        self,
        priorities: Priorities | None = None,
        failure_threshold: int = 3,
        cache_ttl_seconds: float | None = None,
        *,
        fallback_enabled: bool | None = None,
        cost_optimization: bool | None = None,
        monitoring_enabled: bool | None = None,
        max_attempts: int = 5,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        probe_lease_seconds: float | None = None,
        open_backoff: float = 1.0,
        max_open_seconds: float = 3600.0,
        failure_rate_threshold: float | None = None,
        minimum_calls: int = 10,
        window_seconds: float = 60.0,
        slow_call_seconds: float | None = None,
        slow_call_rate_threshold: float | None = None,
        auth_cooldown_seconds: float | None = None,
        rate_limit_max_seconds: float | None = None,
        continue_on: Iterable[str] = DEFAULT_CONTINUE_ON,
        caller_bugs_fall_back: Iterable[str] = (),
        when_all_unavailable: str | None = None,
        max_wait: float | None = None,
        policy: Policy | None = None,
        operation_policies: Mapping[str, Policy] | None = None,
        platform_policies: Mapping[str, Policy] | None = None,
        ordering: Ordering | None = None,
        classifiers: Mapping[str, Sequence[Classifier]] | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        shared_state: Any = None,
        chaos: Chaos | Sequence[Chaos] | None = None,
        health_checks: HealthChecks | None = None,
        trust_env: bool = True,
    ) -> None:
        settings = with_env_defaults(
            {
                "cache_ttl_seconds": cache_ttl_seconds,
                "fallback_enabled": fallback_enabled,
                "cost_optimization": cost_optimization,
                "monitoring_enabled": monitoring_enabled,
            },
            environ,
            trust_env,
        )
        plan = make_plan(
            priorities=priorities,
            failure_threshold=failure_threshold,
            **settings,
            max_attempts=max_attempts,
            half_open_max_calls=half_open_max_calls,
            success_threshold=success_threshold,
            probe_lease_seconds=probe_lease_seconds,
            open_backoff=open_backoff,
            max_open_seconds=max_open_seconds,
            failure_rate_threshold=failure_rate_threshold,
            minimum_calls=minimum_calls,
            window_seconds=window_seconds,
            slow_call_seconds=slow_call_seconds,
            slow_call_rate_threshold=slow_call_rate_threshold,
            auth_cooldown_seconds=auth_cooldown_seconds,
            rate_limit_max_seconds=rate_limit_max_seconds,
            continue_on=continue_on,
            caller_bugs_fall_back=caller_bugs_fall_back,
            when_all_unavailable=when_all_unavailable,
            max_wait=max_wait,
            policy=policy,
            operation_policies=operation_policies,
            platform_policies=platform_policies,
            ordering=ordering,
            classifiers=classifiers,
            clock=clock,
            environ=environ,
            shared_state=shared_state,
            chaos=chaos,
            health_checks=health_checks,
        )
        self._build(plan, tracer_provider, meter_provider)

    def _build(
        self,
        plan: ManagerPlan,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        """Everything the manager runs on, from a plan that was checked whole."""
        for name, provider, method in (
            ("tracer_provider", tracer_provider, "get_tracer"),
            ("meter_provider", meter_provider, "get_meter"),
        ):
            if provider is not None:
                wanted = "an OpenTelemetry " + name.replace("_", " ")
                validate.provides(name, provider, method, wanted)
        self.failure_threshold = plan.failure_threshold
        self.cache_ttl_seconds = plan.cache_ttl_seconds
        self.fallback_enabled = plan.fallback_enabled
        self.cost_optimization = plan.cost_optimization
        self.monitoring_enabled = plan.monitoring_enabled
        self.clock: Clock = plan.clock
        self.shared_state = plan.shared_state
        self._environ = plan.environ
        self.scrub = Scrubber(plan.api_key_envs, plan.environ)
        register(self.scrub)
        self._telemetry = Telemetry(
            enabled=plan.monitoring_enabled,
            scrub=self.scrub,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self._book = Book(plan.engine, self.clock, self._telemetry)
        built = build_routes(plan, self._transition_listener)
        self._platforms, self._pairs, self._routes = built.platforms, built.pairs, built.routes
        self._known_operations = tuple(dict.fromkeys([*self._routes, *BUILTIN_OPERATION_TYPES]))
        self._closers: list[Callable[[], Awaitable[None]]] = []
        # The blocking twin of each closer, or None; close() needs no event loop when all have one.
        self._blocking_closers: list[Callable[[], None] | None] = []
        self._workers = Workers()
        self._closed = False
        #: ``with`` / ``async with`` blocks entered and not left: the outermost one closes.
        self._entered = 0
        self._fleet: FleetLink | None = None
        self._checker: Checker | None = None
        self._background: Background | None = None
        services: list[Service] = []
        stops: list[Callable[[float], Awaitable[None]]] = []
        if plan.shared_state is not None:
            from failover._engine.fleet import FleetLink

            shared = plan.shared_state
            self._fleet = FleetLink(
                shared, self._pairs, self._platforms, self.clock, self._book.lock
            )
            self._book.fleet = self._fleet
            services.append(partial(shared.run, self._fleet))
            stops.append(shared.stop)
        if plan.health_checks is not None:
            from failover._engine.checks import Checker

            self._checker = Checker(plan.health_checks, self._pairs, self._book)
            services.append(self._checker.run)
        if services:
            from failover._engine.background import Background

            self._background = Background(services, stops)
            if self._fleet is not None:
                self._fleet.host = self._background
        hedges = {op: policy.hedge for op, policy in plan.operation_policies.items()}
        last_resorts = {op: LastResort.of(policy) for op, policy in plan.operation_policies.items()}
        self._wiring = PolicyWiring(
            self._routes, hedges, last_resorts, plan.ordering, self.clock, plan.chaos
        )
        #: Switch chaos injection on and off at runtime (see :class:`failover.Chaos`).
        self.chaos: ChaosControl = self._wiring.chaos

    # -- configuration -----------------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        config_path: str | None = None,
        **overrides: Any,
    ) -> PlatformManager:
        """A manager configured from ``AI_*`` variables and an optional TOML file.

        The file is ``config_path`` or ``$FAILOVER_CONFIG``; keyword ``overrides`` win over
        both. With no file, the built-in priority table is used.
        """
        from failover._config.load import load_manager_kwargs

        kwargs = load_manager_kwargs(environ=environ, config_path=config_path)
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def environ(self) -> Mapping[str, str]:
        """Where the platforms' API keys are read: ``environ=`` as given, else ``os.environ``.
        The HTTP adapters send the keys they find here."""
        return os.environ if self._environ is None else self._environ

    @property
    def operations(self) -> tuple[str, ...]:
        """Operation types this manager has priority lists for."""
        return tuple(self._routes)

    def platforms(self, operation: str) -> list[PlatformSpec]:
        """The platforms of ``operation`` in priority order."""
        return [pair.spec for pair in self._route(operation).pairs]

    def _route(self, operation: str) -> Route:
        route = self._routes.get(operation) if isinstance(operation, str) else None
        if route is None:
            if isinstance(operation, str) and operation in BUILTIN_OPERATION_TYPES:
                return Route(operation, (), None, None)
            raise UnknownOperation(operation, self._known_operations)
        return route

    def _pair(
        self, platform: PlatformSpec | str, operation: str, parameter: str = "platform"
    ) -> Pair:
        """The pair of ``platform`` for ``operation``; ``parameter`` is how the caller's
        signature names the platform, for the message when it is neither spec nor name."""
        self._route(operation)
        name = _platform_name(platform, parameter)
        pair = self._pairs.get((name, operation))
        if pair is None:
            names = [pair.spec.name for pair in self._route(operation).pairs]
            raise ConfigError(
                f"platform {name!r} is not configured for {operation!r} "
                f"(configured: {', '.join(names) or '(none)'})",
                key=name,
            )
        return pair

    # -- the pinned API ----------------------------------------------------------------------

    async def get_platform(
        self,
        operation: str,
        attempt: int = 0,
        max_attempts: int | None = None,
        **context: Any,
    ) -> PlatformSpec:
        """The usable platform for ``operation`` at position ``attempt`` in the current order.

        ``attempt=0`` (the default) is the first usable platform, ``attempt=1`` the next, as
        in the original manager's ``for attempt in range(max_attempts)`` loops.
        ``max_attempts`` (default: the manager's) caps ``attempt``. Raises
        :class:`AllPlatformsFailed` (with the skip reasons) when there is no such platform.
        Extra keywords (``quality_boost=True``, ...) reach the ordering strategy.
        """
        self._book.arrive()
        return self._get_platform(operation, attempt, max_attempts, context)

    def get_platform_sync(
        self,
        operation: str,
        attempt: int = 0,
        max_attempts: int | None = None,
        **context: Any,
    ) -> PlatformSpec:
        """:meth:`get_platform` for synchronous code (same answer, same errors)."""
        self._book.threaded = True  # a synchronous caller is one thread among any number
        return self._get_platform(operation, attempt, max_attempts, context)

    def _get_platform(
        self,
        operation: str,
        attempt: int,
        max_attempts: int | None,
        context: dict[str, Any],
    ) -> PlatformSpec:
        route = self._route(operation)
        if type(attempt) is not int or attempt:  # the default 0 needs no check
            validate.integer("attempt", attempt, at_least=0, bare_type_error=True)
        limit = self._book.settings.max_attempts
        if max_attempts is not None:
            limit = validate.integer("max_attempts", max_attempts, at_least=1, bare_type_error=True)
        skipped: list[Attempt] = []
        usable = 0
        needs = requirement(context["require"]) if "require" in context else None
        with self._book.lock if self._book.threaded else _UNLOCKED:
            for pair in route.order(context):
                reason = pair.unavailable_reason(self.clock)
                if needs is not None and needs.unmet(pair.spec):
                    reason = SkipReason.INCAPABLE
                if reason is None:
                    if usable == attempt and attempt < limit:
                        return pair.spec
                    usable += 1
                    continue
                skipped.append(
                    Attempt(
                        pair.spec.name, pair.spec.model, operation, "skipped", skip_reason=reason
                    )
                )
        reason = _no_platform_reason(route, attempt, limit, usable)
        if reason is None:
            reason = describe(route.pairs, self.clock) or "no usable platform"
        raise AllPlatformsFailed(operation, skipped, reason=reason)

    @overload
    async def with_fallback(
        self,
        operation: str,
        operation_func: Callable[Concatenate[PlatformSpec, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[R, PlatformSpec]: ...

    @overload
    async def with_fallback(
        self,
        operation: str,
        operation_func: Callable[Concatenate[PlatformSpec, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[R, PlatformSpec]: ...

    async def with_fallback(
        self,
        operation: str,
        operation_func: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> tuple[Any, PlatformSpec]:
        """Run ``operation_func(platform, *args, **kwargs)`` down the fallback chain.

        Returns ``(result, platform)``. A ``failover_context={...}`` keyword is taken out of
        ``kwargs`` and handed to the ordering strategy (e.g. ``{"quality_boost": True}``).
        """
        # _prepare(), inlined: this is the hot path of every protected call.
        context = kwargs.pop("failover_context", None) if kwargs else None
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError(
                f"failover_context must be a mapping, got {type(context).__name__}",
                key="failover_context",
            )
        try:
            route = self._routes[operation]
        except Exception:  # not a key; or unhashable (a list), or its __hash__ raises
            route = self._route(operation)
        return await start(self._book, route, operation_func, args, kwargs, context)

    def with_fallback_sync(
        self,
        operation: str,
        operation_func: Callable[Concatenate[PlatformSpec, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[R, PlatformSpec]:
        """:meth:`with_fallback` for synchronous code: ``operation_func`` is a plain function,
        run in the calling thread (in a worker thread when an attempt timeout or a deadline
        bounds it). Same state, same semantics; any number of threads may call at once."""
        if kwargs:
            route, context = self._prepare(operation, kwargs)
        else:
            # _prepare(), inlined: this is the hot path of every synchronous call.
            context = None
            try:
                route = self._routes[operation]
            except Exception:  # not a key; or unhashable (a list), or its __hash__ raises
                route = self._route(operation)
        return call_sync(self._book, self._workers, route, operation_func, args, kwargs, context)

    def _prepare(
        self, operation: str, kwargs: dict[str, Any]
    ) -> tuple[Route, Mapping[str, Any] | None]:
        """The route of ``operation``, and the ``failover_context`` taken out of ``kwargs``."""
        context = kwargs.pop("failover_context", None) if kwargs else None
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError(
                f"failover_context must be a mapping, got {type(context).__name__}",
                key="failover_context",
            )
        try:
            return self._routes[operation], context
        except Exception:  # not a key; or unhashable (a list), or its __hash__ raises
            return self._route(operation), context

    def _call_path(self, operation: str) -> tuple[Book, Route]:
        """What ``@fallback`` hands the engine for ``operation`` (it keeps them between calls)."""
        return self._book, self._route(operation)

    async def report_success(
        self, spec: PlatformSpec, operation: str, response_time: float | None = None
    ) -> None:
        """Record a success observed outside ``with_fallback`` (the old manual flow)."""
        self._book.arrive()
        self._report_success(spec, operation, response_time)

    def report_success_sync(
        self, spec: PlatformSpec, operation: str, response_time: float | None = None
    ) -> None:
        """:meth:`report_success` for synchronous code."""
        self._book.threaded = True  # a synchronous caller is one thread among any number
        self._report_success(spec, operation, response_time)

    def _report_success(
        self, spec: PlatformSpec, operation: str, response_time: float | None
    ) -> None:
        pair = self._pair(spec, operation, "spec")
        response_time = self._response_time(response_time)
        with self._book.guard:
            self._book.succeeded(pair, None, response_time)
            self._wiring.reported(pair, True, response_time)

    async def report_failure(
        self,
        spec: PlatformSpec,
        operation: str,
        error: BaseException,
        response_time: float | None = None,
    ) -> None:
        """Record a failure observed outside ``with_fallback``; classified like any other."""
        self._book.arrive()
        self._report_failure(spec, operation, error, response_time)

    def report_failure_sync(
        self,
        spec: PlatformSpec,
        operation: str,
        error: BaseException,
        response_time: float | None = None,
    ) -> None:
        """:meth:`report_failure` for synchronous code."""
        self._book.threaded = True  # a synchronous caller is one thread among any number
        self._report_failure(spec, operation, error, response_time)

    def _report_failure(
        self,
        spec: PlatformSpec,
        operation: str,
        error: BaseException,
        response_time: float | None,
    ) -> None:
        if not isinstance(error, BaseException):
            raise ConfigError(
                f"report_failure(error=...) must be an exception instance, "
                f"got {type(error).__name__}",
                key="error",
            )
        pair = self._pair(spec, operation, "spec")
        verdict = classify(error, pair.classifiers)
        if verdict.kind is ErrorKind.CANCELLED or verdict.kind is ErrorKind.CALLER_BUG:
            return  # neither is the platform's failure
        response_time = self._response_time(response_time)
        with self._book.guard:
            self._book.failed(pair, None, verdict, response_time)
            self._wiring.reported(pair, False, response_time, error)

    def record_cost(self, platform: PlatformSpec | str, operation: str, cost: float) -> None:
        """Book what one successful call really cost, in place of the platform's estimate.

        Every success adds the platform's ``estimated_cost`` to the pair's ``cost`` in
        :meth:`get_health_status`; call this once for a success whose real cost is known
        (e.g. from the provider's token usage: ``failover.http.TextGeneration`` does with
        ``prices=``) and the pair's cost moves from the estimate to ``cost``.
        """
        pair = self._pair(platform, operation)
        amount = validate.number("cost", cost, at_least=0, bare_type_error=True)
        if self.monitoring_enabled:
            self._book.arrive()  # from another thread: the lock from now on
            with self._book.guard:
                pair.stats.cost += amount - pair.spec.estimated_cost
        self._wiring.cost_recorded(pair, amount)

    @staticmethod
    def _response_time(value: float | None) -> float | None:
        if value is None:
            return None
        return validate.number("response_time", value, at_least=0, bare_type_error=True)

    # -- manual control ----------------------------------------------------------------------

    def breaker(self, platform: PlatformSpec | str, operation: str) -> pybreaker.CircuitBreaker:
        """The ``pybreaker.CircuitBreaker`` mirroring this pair (listeners, open()/close())."""
        return self._pair(platform, operation).mirror.breaker

    def isolate(self, platform: PlatformSpec | str, operation: str) -> None:
        """Force the pair open until :meth:`reset` (or :meth:`force_closed`)."""
        pair = self._pair(platform, operation)
        pair.breaker.isolate()
        if self._fleet is not None:
            self._fleet.operator_set(pair)

    def force_open(
        self, platform: PlatformSpec | str, operation: str, seconds: float | None = None
    ) -> None:
        """Open the pair now for ``seconds`` (default: ``cache_ttl_seconds``)."""
        if seconds is not None:
            # inf is allowed: open until reset, like isolate().
            validate.number("seconds", seconds, above=0, allow_inf=True, bare_type_error=True)
        pair = self._pair(platform, operation)
        pair.breaker.force_open(seconds)
        if self._fleet is not None:
            self._fleet.operator_set(pair)

    def force_closed(self, platform: PlatformSpec | str, operation: str) -> None:
        """Close the pair and keep it closed whatever fails, until :meth:`reset`."""
        pair = self._pair(platform, operation)
        pair.breaker.force_closed()
        if self._fleet is not None:
            self._fleet.operator_set(pair)

    def reset(self, platform: PlatformSpec | str, operation: str | None = None) -> None:
        """Clear breaker state and cool-downs of one pair, or of every pair of ``platform``."""
        name = _platform_name(platform, "platform")
        pairs = (
            [self._pair(name, operation)]
            if operation is not None
            else [pair for pair in self._pairs.values() if pair.spec.name == name]
        )
        if not pairs:
            raise ConfigError(f"unknown platform {name!r}", key=name)
        for pair in pairs:
            pair.breaker.reset()
            pair.cooldown.clear()
        if operation is None:
            pairs[0].platform.cooldown.clear()
        if self._fleet is not None:
            self._fleet.reset(pairs, platform_wide=operation is None)

    # -- health ------------------------------------------------------------------------------

    def get_health_status(self) -> dict[str, Any]:
        """Per platform: the old manager's keys plus cool-down, cost and per-operation detail.

        A plain, JSON-serialisable dict; timestamps are ISO-8601 strings or ``None``.
        """
        clock = self.clock
        # Count the successes noted lock-free since the last read. Settling writes: read
        # from a thread other than the callers' the manager locks from now on.
        self._book.arrive()
        with self._book.guard:
            for pair in self._pairs.values():
                pair.stats.settle()
        status: dict[str, Any] = {}
        for name, platform in self._platforms.items():
            pairs = [pair for pair in self._pairs.values() if pair.spec.name == name]
            totals = aggregate(pair.stats for pair in pairs)
            cooling = platform.cooldown.active(clock)
            operations: dict[str, Any] = {}
            for pair in pairs:
                state = pair.state()
                stats = pair.stats
                rate_limited = pair.cooldown.active(clock)
                skip_reason = pair.unavailable_reason(clock)
                operations[pair.operation] = {
                    "model": pair.spec.model,
                    "state": state.value,
                    "open_until": _iso(clock, pair.breaker.open_until)
                    if state is BreakerState.OPEN
                    else None,
                    "isolated": state is BreakerState.OPEN and math.isinf(pair.breaker.open_until),
                    "consecutive_failures": pair.breaker.consecutive_failures,
                    "cooldown_reason": pair.cooldown.reason if rate_limited else None,
                    "cooldown_until": _iso(clock, pair.cooldown.until) if rate_limited else None,
                    "usable": skip_reason is None,
                    "skip_reason": skip_reason,
                    "total_requests": stats.total_requests,
                    "failures": stats.failures,
                    "failure_rate": stats.failure_rate,
                    "avg_response_time": stats.avg_response_time,
                    "p95_response_time": stats.p95_response_time,
                    "last_success": _iso(clock, stats.last_success),
                    "last_failure": _iso(clock, stats.last_failure),
                    "last_error_kind": stats.last_error_kind,
                    "request_faults": stats.request_faults,
                    "last_request_fault": stats.last_request_fault,
                    "cost": stats.cost,
                }
                if self._checker is not None:
                    checked_at, passed, error = self._checker.health(pair.key)
                    operations[pair.operation]["last_check"] = _iso(clock, checked_at)
                    operations[pair.operation]["last_check_ok"] = passed
                    operations[pair.operation]["last_check_error"] = error
            any_open = any(item["state"] == BreakerState.OPEN.value for item in operations.values())
            status[name] = {
                "is_healthy": not cooling and not any_open,
                "consecutive_failures": max(
                    (pair.breaker.consecutive_failures for pair in pairs), default=0
                ),
                "total_requests": totals.total_requests,
                "failure_rate": totals.failure_rate,
                "avg_response_time": totals.avg_response_time,
                "p95_response_time": totals.p95_response_time,
                "last_success": _iso(clock, totals.last_success),
                "last_failure": _iso(clock, totals.last_failure),
                "cooldown_reason": platform.cooldown.reason if cooling else None,
                "cooldown_until": _iso(clock, platform.cooldown.until) if cooling else None,
                "cost": totals.cost,
                "operations": operations,
            }
        return status

    def reset_health(self, platform: str | None = None, operation: str | None = None) -> None:
        """Forget the counters (not the breaker state) of matching pairs."""
        from failover._core.health import PairStats

        if operation is not None:
            self._route(operation)
        if platform is not None:
            validate.instance("platform", platform, str, "a platform name")
        if platform is not None and platform not in self._platforms:
            raise ConfigError(
                f"unknown platform {platform!r} (known: {', '.join(sorted(self._platforms))})",
                key=platform,
            )
        self._book.arrive()
        with self._book.guard:
            for pair in self._pairs.values():
                if (platform is None or pair.spec.name == platform) and (
                    operation is None or pair.operation == operation
                ):
                    pair.stats = PairStats(pair.spec.estimated_cost)

    def set_health_check(self, platform: PlatformSpec | str, check: Check | None) -> None:
        """Check ``platform`` in the background with ``check`` from now on (``None`` stops).

        For a check made after the manager, such as an HTTP adapter's:
        ``manager.set_health_check("openai", text.check)``. Needs ``health_checks=`` (its
        interval and bounds apply); see :class:`HealthChecks`.
        """
        name = _platform_name(platform, "platform")
        if self._checker is None:
            raise ConfigError(
                "set_health_check needs health checks configured: "
                "PlatformManager(..., health_checks=HealthChecks(interval=..., ...))",
                key="health_checks",
            )
        if name not in self._platforms:
            raise ConfigError(
                f"set_health_check: platform {name!r} is in no priority list "
                f"(known: {', '.join(sorted(self._platforms))})",
                key="platform",
            )
        with self._book.lock:
            self._checker.set_check(name, check)

    # -- lifecycle ---------------------------------------------------------------------------

    def add_closer(
        self,
        closer: Callable[[], Awaitable[None]],
        *,
        blocking: Callable[[], None] | None = None,
    ) -> None:
        """Register an async callable run by :meth:`aclose` (e.g. an HTTP client's close).

        ``blocking`` is its synchronous twin: when every closer has one, :meth:`close` runs
        them in the calling thread instead of starting an event loop for the async ones.
        """
        self._closers.append(closer)
        self._blocking_closers.append(blocking)

    async def aclose(self) -> None:
        """Close what the manager owns. Safe to call twice."""
        if self._closed:
            return
        background = self._background
        if (
            background is not None
            and background.owner_task is not None
            and anyio.get_current_task().id != background.owner_task
        ):
            # The background task group lives in the task that entered the manager; only
            # that task can leave it (anyio and trio both enforce this).
            raise RuntimeError(
                "close a manager with shared state from the task that entered it "
                "(use `async with manager:`)"
            )
        self._closed = True
        self._workers.shutdown()
        closers, self._closers = self._closers, []
        self._blocking_closers = []
        if background is not None and background.in_thread:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(background.stop_thread)
        elif background is not None:
            await background.stop()  # flushes under a shield itself
        errors: list[Exception] = []
        with anyio.CancelScope(shield=True):
            for closer in reversed(closers):
                try:
                    await closer()
                except Exception as exc:  # every closer runs; the first failure is raised
                    errors.append(exc)
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        """Start sharing state with the fleet when ``shared_state`` is configured.

        Loads the shared state before returning; if the backend is unreachable, the manager
        runs on local state and keeps reconnecting in the background.
        """
        self._enter()
        background = self._background
        if background is not None and not background.running:
            try:
                await background.start()
            except BaseException:
                self._entered -= 1
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._leave():
            await self.aclose()

    def _async_closers(self) -> bool:
        """Whether a closer has no blocking twin: closing then needs an event loop."""
        return any(closer is None for closer in self._blocking_closers)

    def _enter(self) -> None:
        """Count a ``with`` / ``async with`` block; a closed manager cannot be entered."""
        if self._closed:
            raise Closed(
                "this PlatformManager is closed (a `with` or `async with` block around it "
                "ended, or close() was called): make a new one"
            )
        self._entered += 1

    def _leave(self) -> bool:
        """The end of a block: ``True`` when it was the outermost one (time to close)."""
        self._entered = max(self._entered - 1, 0)
        return self._entered == 0

    def close(self) -> None:
        """:meth:`aclose` for synchronous code: stops the background thread ``with manager:``
        started and runs the blocking closers in this thread (async ones on a short-lived
        event loop). Safe to call twice."""
        if self._closed:
            return
        background = self._background
        blocking = [closer for closer in self._blocking_closers if closer is not None]
        if (background is not None and background.owner_task is not None) or self._async_closers():
            _refuse_inside_event_loop()
            anyio.run(self.aclose)
            return
        self._closed = True
        self._workers.shutdown()
        self._closers, self._blocking_closers = [], []
        errors: list[Exception] = []
        if background is not None:
            try:
                background.stop_thread()
            except Exception as exc:
                errors.append(exc)
        for closer in reversed(blocking):
            try:
                closer()
            except Exception as exc:  # every closer runs; the first failure is raised
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        """For synchronous programs: ``with manager:`` closes what it owns on the way out
        (blocks nest: the outermost one closes; a closed manager cannot be entered again).

        With ``shared_state``, it first starts the fleet link on an event loop in a thread
        the manager owns (loading the shared state before returning, as ``async with`` does)
        and stops it on the way out.
        """
        if self._async_closers():
            _refuse_inside_event_loop()  # leaving would need this thread's event loop
        self._enter()
        background = self._background
        if background is not None and not background.running:
            # Its thread applies the fleet's events and health checks: a second thread.
            self._book.threaded = True
            try:
                background.start_thread()
            except BaseException:
                self._entered -= 1
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._leave():
            self.close()

    # -- transitions -------------------------------------------------------------------------

    def _transition_listener(self, pair: Pair) -> Callable[[Transition], None]:
        # A two-slot object rather than a closure: one per pair, a closure and its cells cost
        # about four times the memory.
        return _TransitionListener(self, pair)

    def _on_transition(self, pair: Pair, change: Transition) -> None:
        old, new, cause = change.old, change.new, change.cause
        pair.replay_transition(new)
        if self._checker is not None:
            self._checker.on_transition(pair, change)
        if self._fleet is not None:
            self._fleet.on_transition(pair, new, change.reason)
        spec = pair.spec
        if new is BreakerState.OPEN and cause is Cause.FORCED_OPEN:
            logger.warning("Breaker %s/%s opened by hand", spec.name, pair.operation)
        elif new is BreakerState.OPEN and old is BreakerState.CLOSED and cause is Cause.FAILURES:
            logger.warning(
                "Marking %s unhealthy for %s after %d consecutive failures",
                spec.name,
                pair.operation,
                change.failures,
            )
        elif new is BreakerState.OPEN and cause in (Cause.FAILURE_RATE, Cause.SLOW_CALLS):
            logger.warning(
                "Marking %s unhealthy for %s: %s", spec.name, pair.operation, change.reason
            )
        elif new is BreakerState.CLOSED:
            logger.info("%s is healthy again for %s (%s)", spec.name, pair.operation, change.reason)
        else:
            logger.info(
                "Breaker %s/%s: %s -> %s (%s)",
                spec.name,
                pair.operation,
                old.value,
                new.value,
                change.reason,
            )
        self._telemetry.breaker_transition(
            spec.name, pair.operation, old.value, new.value, change.reason
        )

    def __repr__(self) -> str:
        return (
            f"<PlatformManager operations={list(self._routes)} platforms={list(self._platforms)}>"
        )


def _no_platform_reason(route: Route, attempt: int, limit: int, usable: int) -> str | None:
    """Why there is no platform at ``attempt``; ``None`` when none at all is usable."""
    if not route.pairs:
        return "no platforms configured"
    if attempt >= limit:
        return f"attempt={attempt} is past max_attempts={limit}"
    if usable:
        return f"attempt={attempt} asked for but only {usable} usable platform(s)"
    return None


def _platform_name(platform: object, parameter: str) -> str:
    """The name of ``platform`` (a spec or a name), or a ``ConfigError`` naming ``parameter``."""
    validate.instance(parameter, platform, (PlatformSpec, str), "a PlatformSpec or a platform name")
    return platform.name if isinstance(platform, PlatformSpec) else str(platform)


def _refuse_inside_event_loop() -> None:
    """Closing async clients synchronously needs an event loop of its own, which cannot run
    inside this thread's: in async code the manager is entered with ``async with`` and
    closed with ``await manager.aclose()``."""
    try:
        anyio.get_current_task()
    except Exception:  # no event loop in this thread: synchronous code, as it should be
        return
    raise ConfigError(
        "this manager has async clients to close, and this is async code: use "
        "`async with manager:` (or `await manager.aclose()`), not `with manager:` (or close())",
        key="with",
    )


class _TransitionListener:
    """A pair breaker's transition listener: hands each transition to the manager."""

    __slots__ = ("manager", "pair")

    def __init__(self, manager: PlatformManager, pair: Pair) -> None:
        self.manager = manager
        self.pair = pair

    def __call__(self, change: Transition) -> None:
        self.manager._on_transition(self.pair, change)
