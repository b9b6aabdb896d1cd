"""The fallback chain: order platforms, skip, attempt, record, raise :class:`AllPlatformsFailed`.

This is the only async part of the engine. It sequences decisions made elsewhere: the ordering
strategy (which platforms, in what order), each :class:`~failover._core.pair.Pair` (admit or skip),
the classifier (what kind of failure), the policy (retry the same platform? how long to
wait? how long may an attempt take?). Cancellation from the caller is never counted, never
retried, never converted: the permit is given back and the exception re-raised unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio

from failover._core.breaker import Permit
from failover._core.classify import Classification, ErrorKind, classify
from failover._core.errors import AllPlatformsFailed, Attempt
from failover._core.pair import COOLDOWN_REASON, SKIP_MISSING_KEY, Pair
from failover._core.spec import PlatformSpec
from failover._observe.scrub import get_logger
from failover._observe.telemetry import Telemetry, use_span
from failover.policies.hedge import hedged_walk
from failover.policies.ordering import annotate_order, order_reason
from failover.policies.policy import RetryRun

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from failover._core.clock import Clock
    from failover._engine.fleet import FleetLink
    from failover._engine.pipeline import RoutePolicies
    from failover.policies.last_resort import LastResort

logger = get_logger("failover")

#: Request-fault reasons that move on to the next platform by default; others raise at once.
DEFAULT_CONTINUE_ON: Final = frozenset({"content_policy", "context_window", "not_found"})


class AttemptTimeout(TimeoutError):
    """An attempt ran past its ``attempt_timeout``; counts as a transient failure."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"attempt timed out after {seconds:g}s")


class Ordering(Protocol):
    """Decides the order in which an operation's platforms are tried for one call.

    ``platforms`` arrive in priority order; return them (or a subset) in the order to try.
    ``context`` holds the keywords given to ``get_platform(**context)`` or
    ``with_fallback(..., failover_context={...})``.
    """

    def __call__(
        self, operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
    ) -> Sequence[PlatformSpec]: ...


def priority_order(
    operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
) -> Sequence[PlatformSpec]:
    """Fixed priority: as configured."""
    return platforms


def cost_order(
    operation: str, platforms: Sequence[PlatformSpec], context: Mapping[str, Any]
) -> Sequence[PlatformSpec]:
    """Cheapest first (ties keep priority), unless the call asks for ``quality_boost``."""
    if context.get("quality_boost"):
        return platforms
    return sorted(platforms, key=lambda spec: spec.estimated_cost)


@dataclass(frozen=True, slots=True)
class ChainSettings:
    max_attempts: int
    fallback_enabled: bool
    monitoring_enabled: bool
    continue_on: frozenset[str]
    cooldown_seconds: float
    auth_cooldown_seconds: float
    rate_limit_max_seconds: float


class Route:
    """The pairs of one operation in priority order, and the ordering to apply per call."""

    __slots__ = (
        "_by_name",
        "_cost_order",
        "deadline",
        "last_resort",
        "operation",
        "ordering",
        "pairs",
        "policies",
    )

    def __init__(
        self,
        operation: str,
        pairs: Sequence[Pair],
        ordering: Ordering | None,
        deadline: float | None,
    ) -> None:
        self.operation = operation
        self.pairs: tuple[Pair, ...] = tuple(pairs)
        self.ordering = ordering
        self.deadline = deadline
        self._by_name = {pair.spec.name: pair for pair in self.pairs}
        self._cost_order = tuple(sorted(self.pairs, key=lambda pair: pair.spec.estimated_cost))
        #: Hedge, bulkheads, chaos, ordering strategy (``failover._engine.pipeline``); ``None`` when
        #: none is configured, so the plain walk pays nothing for them.
        self.policies: RoutePolicies | None = None
        #: What a call does when every platform is unavailable (``None``: raise at once).
        self.last_resort: LastResort | None = None

    def order(self, context: Mapping[str, Any] | None) -> Sequence[Pair]:
        ordering = self.ordering
        if ordering is None or ordering is priority_order:
            return self.pairs
        if ordering is cost_order:
            if context and context.get("quality_boost"):
                return self.pairs
            return self._cost_order
        specs = ordering(self.operation, [pair.spec for pair in self.pairs], context or {})
        # dict.fromkeys: a strategy naming a platform twice must not get it tried twice.
        names = dict.fromkeys(spec.name for spec in specs if spec.name in self._by_name)
        return [self._by_name[name] for name in names]


Operation = Callable[..., Any]


def spent(attempts: Sequence[Attempt]) -> int:
    """Attempts made so far in one call (skips are not attempts)."""
    return sum(1 for attempt in attempts if attempt.outcome != "skipped")


async def invoke(
    func: Operation, spec: PlatformSpec, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Call ``func(spec, *args, **kwargs)``; await the result when it is awaitable."""
    result = func(spec, *args, **kwargs)
    if type(result) is CoroutineType or isinstance(result, Awaitable):
        return await result
    return result


class Chain:
    """Runs one call down a route. One instance per manager; holds no per-call state."""

    __slots__ = ("clock", "fleet", "settings", "telemetry")

    def __init__(self, settings: ChainSettings, clock: Clock, telemetry: Telemetry) -> None:
        self.settings = settings
        self.clock = clock
        self.telemetry = telemetry
        #: Set by the manager when state is shared across processes (probe leases, cool-downs).
        self.fleet: FleetLink | None = None

    def call(
        self,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
    ) -> Awaitable[tuple[Any, PlatformSpec]]:
        """The coroutine that runs one call down ``route``; await it.

        A plain method handing back the walk's own coroutine while nothing is recorded and no
        deadline is set: one coroutine frame less on the happy path.
        """
        if route.deadline is None and self.telemetry.quiet():
            return self._walk(route, func, args, kwargs, context, None, None, [])
        return self._observed_call(route, func, args, kwargs, context)

    async def _observed_call(
        self,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
    ) -> tuple[Any, PlatformSpec]:
        tracer = self.telemetry.tracer()
        instruments = self.telemetry.instruments()
        if tracer is None and instruments is None:
            return await self._start(route, func, args, kwargs, context, None, None)
        started = self.clock.now()
        span = None if tracer is None else self.telemetry.start_call(tracer, route.operation)
        outcome = "failure"
        try:
            if span is None:
                result = await self._start(route, func, args, kwargs, context, None, None)
            else:
                with use_span(span, end_on_exit=False):
                    result = await self._start(route, func, args, kwargs, context, tracer, span)
            outcome = "success"
            return result
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        except BaseException as exc:
            if span is not None:
                self.telemetry.fail_span(span, exc, type(exc).__qualname__)
            raise
        finally:
            if span is not None:
                span.end()
            if instruments is not None:
                instruments.call_duration.record(
                    self.clock.now() - started,
                    {"failover.operation": route.operation, "failover.outcome": outcome},
                )

    def _start(
        self,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        tracer: Tracer | None,
        call_span: Span | None,
    ) -> Awaitable[tuple[Any, PlatformSpec]]:
        """The walk's coroutine; inside :meth:`_run`'s deadline scope only when one is set."""
        if route.deadline is None:
            return self._walk(route, func, args, kwargs, context, tracer, call_span, [])
        return self._run(route, func, args, kwargs, context, tracer, call_span)

    async def _run(
        self,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        tracer: Tracer | None,
        call_span: Span | None,
    ) -> tuple[Any, PlatformSpec]:
        """The walk inside the route's deadline scope (only called when a deadline is set)."""
        assert route.deadline is not None
        attempts: list[Attempt] = []
        with self.clock.cancel_scope(route.deadline) as scope:
            return await self._walk(route, func, args, kwargs, context, tracer, call_span, attempts)
        # Only reached when the deadline scope swallowed its own cancellation.
        assert scope.cancelled_caught
        self.telemetry.summarize_failure(call_span, attempts)
        raise AllPlatformsFailed(
            route.operation, attempts, reason=f"deadline of {route.deadline:g}s exceeded"
        )

    async def _walk(
        self,
        route: Route,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        tracer: Tracer | None,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> tuple[Any, PlatformSpec]:
        settings = self.settings
        clock = self.clock
        operation = route.operation
        tries = 0
        platforms_tried = 0
        passed_over = 0  # platforms skipped as unhealthy or cooling: they count as fallbacks
        reason: str | None = None
        policies = route.policies
        if policies is None:
            order = route.pairs if route.ordering is None else route.order(context)
            if call_span is not None:
                annotate_order(call_span, order, order_reason(route.ordering, context))
        else:
            order = policies.plan(route, context, self._skipped, attempts, call_span)
            if policies.hedge is not None:
                return await hedged_walk(
                    self, policies.hedge, policies.lanes, order, route,
                    func, args, kwargs, context, tracer, call_span, attempts,
                )  # fmt: skip
            func = policies.wrap(operation, func)
        # spent(attempts), kept up to date by counting only the records added since the last
        # look (``attempts`` only grows; hedge lanes append to it too): a walk past many
        # skipped platforms stays linear.
        counted = made = 0
        for pair in order:
            if tries >= settings.max_attempts:
                reason = f"max_attempts={settings.max_attempts} reached"
                break
            if counted < len(attempts):
                for index in range(counted, len(attempts)):
                    if attempts[index].outcome != "skipped":
                        made += 1
                counted = len(attempts)
                if made >= settings.max_attempts:
                    reason = f"max_attempts={settings.max_attempts} reached"
                    break
            if platforms_tried and not settings.fallback_enabled:
                reason = "fallback disabled"
                break
            admission = pair.admit(clock)
            if not isinstance(admission, Permit):
                self._skipped(pair, admission, attempts, call_span)
                if admission != SKIP_MISSING_KEY:
                    passed_over += 1
                continue
            permit = admission
            if (
                permit.is_probe
                and self.fleet is not None
                and not await self.fleet.acquire_probe(pair, permit)
            ):
                self._skipped(pair, "open", attempts, call_span)
                passed_over += 1
                continue
            platforms_tried += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "Selected platform %s (%s) for %s", pair.spec.name, pair.spec.model, operation
                )
            retry_run: RetryRun | None = None
            attempt_on_platform = 0
            while True:
                slot = None
                if policies is not None:
                    try:
                        slot = await policies.slot(pair, clock)
                    except BaseException:  # cancelled while queued for a slot
                        self._give_back(pair, permit)
                        raise
                    if type(slot) is str:  # bulkhead full: give the permit back, uncounted
                        self._give_back(pair, permit)
                        self._skipped(pair, slot, attempts, call_span)
                        if not attempt_on_platform:
                            platforms_tried -= 1
                            passed_over += 1
                        break
                tries += 1
                attempt_on_platform += 1
                started = clock.now()
                try:
                    if tracer is not None:
                        result = await self._traced_attempt(
                            tracer, pair, permit, func, args, kwargs, tries
                        )
                    elif pair.policy.attempt_timeout is None:
                        # _attempt and invoke inlined (the happy path): two frames less.
                        result = func(pair.spec, *args, **kwargs)
                        if type(result) is CoroutineType or isinstance(result, Awaitable):
                            result = await result
                    else:
                        result = await self._attempt(pair, permit, func, args, kwargs)
                except BaseException as exc:
                    duration = clock.now() - started
                    if not isinstance(exc, Exception) or isinstance(
                        exc, anyio.get_cancelled_exc_class()
                    ):
                        self._give_back(pair, permit)
                        attempts.append(
                            Attempt(
                                pair.spec.name,
                                pair.spec.model,
                                operation,
                                "cancelled",
                                attempt=tries,
                                duration=duration,
                            )
                        )
                        self._count(pair, "cancelled", duration)
                        raise
                    error = exc
                else:
                    ended = clock.now()
                    duration = ended - started
                    self.succeeded(pair, permit, duration, ended)
                    if policies is not None:
                        policies.observe(pair, True, duration, result)
                    if call_span is not None:
                        call_span.set_attributes(
                            {
                                "failover.platform": pair.spec.name,
                                "failover.attempts": tries,
                                "failover.fallbacks": platforms_tried - 1 + passed_over,
                            }
                        )
                    return result, pair.spec
                finally:
                    if slot is not None:
                        slot.release()  # type: ignore[union-attr]

                verdict = classify(error, pair.classifiers)
                self.failed(pair, permit, verdict, duration)
                if policies is not None:
                    policies.observe(pair, False, duration, None, error)
                attempts.append(
                    Attempt(
                        pair.spec.name,
                        pair.spec.model,
                        operation,
                        "failure",
                        attempt=tries,
                        error_type=type(error).__qualname__,
                        error_kind=verdict.kind,
                        status_code=verdict.status_code,
                        duration=duration,
                        error=error,
                    )
                )
                if verdict.kind is ErrorKind.REQUEST and verdict.reason not in settings.continue_on:
                    if call_span is not None:
                        call_span.set_attributes(
                            {
                                "failover.attempts": tries,
                                "failover.fallbacks": platforms_tried - 1 + passed_over,
                            }
                        )
                    raise error
                policy_retry = pair.policy.retry
                # spent(): hedge lanes share one call's budget through ``attempts``.
                if policy_retry is None or spent(attempts) >= settings.max_attempts:
                    break
                if retry_run is None:
                    retry_run = RetryRun(policy_retry, started)
                wait = retry_run.next_wait(error, verdict, attempt_on_platform, clock.now())
                if wait is None:
                    break
                unavailable = pair.unavailable_reason(clock)
                if unavailable is not None:
                    # This failure opened the pair: fall back now instead of waiting to be refused.
                    self._skipped(pair, unavailable, attempts, call_span)
                    break
                self.telemetry.event(
                    call_span,
                    "failover.retry",
                    {
                        "failover.platform": pair.spec.name,
                        "failover.attempt": tries,
                        "failover.retry.wait": wait,
                        "error.type": type(error).__qualname__,
                    },
                )
                logger.info(
                    "Retrying %s on %s in %.2fs (attempt %d failed: %s)",
                    operation,
                    pair.spec.name,
                    wait,
                    attempt_on_platform,
                    type(error).__qualname__,
                )
                if wait > 0:
                    await clock.sleep(wait)
                admission = pair.admit(clock)
                if not isinstance(admission, Permit):
                    self._skipped(pair, admission, attempts, call_span)
                    break
                permit = admission
                if (
                    permit.is_probe
                    and self.fleet is not None
                    and not await self.fleet.acquire_probe(pair, permit)
                ):
                    self._skipped(pair, "open", attempts, call_span)
                    break
        if call_span is not None:
            call_span.set_attributes(
                {
                    "failover.attempts": tries,
                    "failover.fallbacks": max(platforms_tried - 1 + passed_over, 0),
                }
            )
        if not route.pairs:
            reason = "no platforms configured"
        elif not tries and route.last_resort is not None:
            return await route.last_resort.run(
                self, route, order, func, args, kwargs, tracer, call_span, attempts
            )
        raise AllPlatformsFailed(operation, attempts, reason=reason)

    async def _attempt(
        self,
        pair: Pair,
        permit: Permit,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        timeout = pair.policy.attempt_timeout
        if timeout is None:
            return await invoke(func, pair.spec, args, kwargs)
        with self.clock.cancel_scope(timeout) as scope:
            return await invoke(func, pair.spec, args, kwargs)
        assert scope.cancelled_caught
        raise AttemptTimeout(timeout)

    async def _traced_attempt(
        self,
        tracer: Tracer,
        pair: Pair,
        permit: Permit,
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        attempt: int,
    ) -> Any:
        span = self.telemetry.start_attempt(
            tracer, pair.spec, pair.operation, attempt, pair.breaker.state.value
        )
        with use_span(span, end_on_exit=True):
            try:
                return await self._attempt(pair, permit, func, args, kwargs)
            except anyio.get_cancelled_exc_class():
                span.set_attribute("failover.outcome", "cancelled")
                raise
            except BaseException as exc:
                kind = classify(exc, pair.classifiers).kind.value
                self.telemetry.fail_span(span, exc, type(exc).__qualname__, kind)
                raise

    # -- bookkeeping -------------------------------------------------------------------------

    def _give_back(self, pair: Pair, permit: Permit) -> None:
        """Return a permit (and its fleet lease) without an outcome: nothing is counted."""
        pair.breaker.release(permit)
        if self.fleet is not None:
            self.fleet.probe_ended(permit)

    def succeeded(
        self,
        pair: Pair,
        permit: Permit | None,
        duration: float | None,
        now: float | None = None,
    ) -> None:
        """Record a success; ``permit`` is ``None`` for an outcome reported by hand.

        ``now`` is the clock reading the attempt ended at, when the caller has one (the
        chain does): the success is stamped with it instead of reading the clock again.
        """
        breaker = pair.breaker
        had_failures = breaker.consecutive_failures
        if permit is None:
            breaker.report_success()
        elif permit.is_probe:
            breaker.on_success(permit)
            if self.fleet is not None:
                self.fleet.probe_ended(permit)
        elif had_failures:  # a closed permit on a pair without failures changes nothing
            breaker.on_success(permit)
        if had_failures:
            pair.record_failure_counters()
        if self.settings.monitoring_enabled:
            pair.stats.record_success(
                self.clock.now() if now is None else now, duration, pair.spec.estimated_cost
            )
            if duration is not None:
                instruments = self.telemetry.instruments()
                if instruments is not None:
                    attributes = pair.metric_attributes["success"]
                    instruments.attempts.add(1, attributes)
                    instruments.attempt_duration.record(duration, attributes)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Completed %s using %s", pair.operation, pair.spec.name)

    def failed(
        self, pair: Pair, permit: Permit | None, verdict: Classification, duration: float | None
    ) -> None:
        """Apply DESIGN §2's consequences; ``permit`` is ``None`` for a hand-reported failure."""
        kind = verdict.kind
        settings = self.settings
        spec = pair.spec
        if kind is ErrorKind.TRANSIENT:
            if permit is None:
                pair.breaker.report_failure()
            else:
                pair.breaker.on_failure(permit)
            pair.record_failure_counters()
        elif permit is not None:
            # Not the pair's own sickness: no breaker count, whatever the permit was.
            pair.breaker.release(permit)
        now = self.clock.now()
        if kind is ErrorKind.CREDIT_EXHAUSTED:
            pair.platform.cooldown.set(now + settings.cooldown_seconds, COOLDOWN_REASON[kind])
            self.telemetry.cooldown(
                spec.name,
                pair.operation,
                COOLDOWN_REASON[kind],
                settings.cooldown_seconds,
                "platform",
            )
            logger.warning(
                "Credit issue on %s (%s): skipping it for %gs across all operations",
                spec.name,
                pair.operation,
                settings.cooldown_seconds,
            )
        elif kind is ErrorKind.AUTH:
            pair.platform.cooldown.set(now + settings.auth_cooldown_seconds, COOLDOWN_REASON[kind])
            self.telemetry.cooldown(
                spec.name,
                pair.operation,
                COOLDOWN_REASON[kind],
                settings.auth_cooldown_seconds,
                "platform",
            )
            logger.warning(
                "API key problem on %s (check %s): skipping it for %gs across all operations",
                spec.name,
                spec.api_key_env or "its key",
                settings.auth_cooldown_seconds,
            )
        elif kind is ErrorKind.RATE_LIMITED:
            wait = settings.cooldown_seconds if verdict.retry_after is None else verdict.retry_after
            wait = min(wait, settings.rate_limit_max_seconds)
            pair.cooldown.set(now + wait, COOLDOWN_REASON[kind])
            self.telemetry.cooldown(spec.name, pair.operation, COOLDOWN_REASON[kind], wait, "pair")
            logger.info(
                "Rate limited on %s for %s: skipping it for %gs", spec.name, pair.operation, wait
            )
        if kind is not ErrorKind.REQUEST and settings.monitoring_enabled:
            pair.stats.record_failure(now, duration, kind.value)
        if duration is not None:
            # Metrics count every failed attempt, the request's own faults included.
            self._count(pair, "failure", duration)
        if self.fleet is not None:
            self.fleet.after_failure(pair, permit)

    def _skipped(
        self, pair: Pair, reason: str, attempts: list[Attempt], call_span: Span | None
    ) -> None:
        # Runs once per platform passed over: the shared skip record is looked up inline, and
        # the telemetry hook is called only when it has something to record.
        records = pair._skip_records
        record = None if records is None else records.get(reason)
        attempts.append(pair.skip_record(reason) if record is None else record)
        telemetry = self.telemetry
        if call_span is not None or telemetry.instruments() is not None:
            telemetry.skipped(call_span, pair.spec.name, pair.operation, reason)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Skipping unhealthy platform %s for %s: %s", pair.spec.name, pair.operation, reason
            )

    def _count(self, pair: Pair, outcome: str, duration: float) -> None:
        instruments = self.telemetry.instruments()
        if instruments is None:
            return
        attributes = pair.metric_attributes[outcome]
        instruments.attempts.add(1, attributes)
        instruments.attempt_duration.record(duration, attributes)
