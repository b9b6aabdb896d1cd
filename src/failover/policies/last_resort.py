"""The last resort: what a call does when every platform is open or cooling down.

A plain breaker chain fails every such call, without a single request, until the first
cool-down ends, even if the providers recovered seconds after they tripped. When the chain
walked all of an operation's platforms and every one was skipped as unavailable (nothing was
tried), the operation's ``when_all_unavailable`` setting decides:

``"probe_soonest"`` (the default)
    Send one early probe to the platform whose cool-down ends soonest. A platform without
    its API key is never probed, an isolated pair (open until reset) never, and one that
    already has a probe out is passed for the next soonest. The probe's outcome counts as
    any probe's. Only if it fails, or nothing can be probed, does the call raise.
``"wait"``
    Wait, up to ``max_wait`` seconds and within the call's deadline and cancel scopes, for
    the first platform to become usable, then walk the chain again.
``"fail"``
    Raise :class:`~failover.AllPlatformsFailed` at once.

What an early probe is, per reason for skipping:

* breaker open: a probe permit through :meth:`PairBreaker.admit_early_probe`, counted against
  ``half_open_max_calls``; success closes the breaker, failure re-opens it for a fresh open
  duration (growing with ``open_backoff``);
* platform cool-down (credit, auth) and pair cool-down (rate limited): the cool-down's single
  probe slot (:meth:`Cooldown.take_probe`); success clears the cool-down (the credits, the
  key or the quota are back), failure leaves it in force or extends it as the error says.

The selection (:func:`recovery`, :func:`by_recovery`, :func:`take_probe`) is synchronous and
driven by the clock; :meth:`LastResort.run` only sequences it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from failover._core.breaker import BreakerState, Permit
from failover._core.classify import ErrorKind, classify
from failover._core.errors import AllPlatformsFailed, Attempt
from failover._core.pair import SKIP_CREDIT, SKIP_MISSING_KEY, SKIP_OPEN, SKIP_RATE_LIMITED
from failover._observe.scrub import get_logger

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from failover._core.pair import Cooldown, Pair
    from failover._core.spec import PlatformSpec
    from failover._engine.chain import Chain, Operation, Route
    from failover.policies.bulkhead import Limiter
    from failover.policies.policy import Policy

logger = get_logger("failover")

#: How long ``"wait"`` waits when no ``max_wait`` is configured (seconds).
DEFAULT_MAX_WAIT: Final = 30.0

#: While a probe is out, a waiting call looks again this often (its outcome may close the
#: breaker long before the probe's lease runs out); also catches resets and fleet updates.
WAIT_RECHECK_SECONDS: Final = 1.0

EVENT: Final = "failover.last_resort"


# -- selection (synchronous, no I/O) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pair that is unavailable now, and when it would be usable again by time alone."""

    pair: Pair
    usable_at: float  #: on the manager's clock; ``now`` when only a probe in flight blocks it
    reason: str  #: what keeps it unavailable longest: open, credit, auth, rate_limited
    probing: bool  #: a probe (breaker permit or cool-down slot) is already out


def recovery(pair: Pair, now: float) -> Candidate | None:
    """When ``pair`` will be usable again, or ``None`` if time alone will not make it so.

    ``None`` for a platform without its API key and for an isolated pair (open until an
    operator resets it): neither is ever probed or waited for.
    """
    if not pair.key_present():
        return None
    breaker = pair.breaker
    open_until = breaker.open_until if breaker.state is BreakerState.OPEN else 0.0
    if math.isinf(open_until):
        return None
    usable_at, reason, probing = now, SKIP_OPEN, False
    if open_until > now:
        usable_at = open_until
    for cooldown, default in (
        (pair.platform.cooldown, SKIP_CREDIT),
        (pair.cooldown, SKIP_RATE_LIMITED),
    ):
        if cooldown.until > now:
            probing = probing or cooldown.probe_until > now
            if cooldown.until > usable_at:
                usable_at, reason = cooldown.until, cooldown.reason or default
    if breaker.probes and breaker.probes_in_flight() >= breaker.settings.half_open_max_calls:
        probing = True
    return Candidate(pair, usable_at, reason, probing)


def by_recovery(pairs: Iterable[Pair], now: float) -> list[Candidate]:
    """The pairs that can recover, soonest first (ties keep the call's platform order)."""
    candidates = [c for c in (recovery(pair, now) for pair in pairs) if c is not None]
    candidates.sort(key=lambda candidate: candidate.usable_at)
    return candidates


class Probe:
    """An early probe taken on one pair: its breaker permit and the cool-down slots it holds."""

    __slots__ = ("candidate", "cooldowns", "lease_until", "permit")

    def __init__(
        self,
        candidate: Candidate,
        permit: Permit,
        cooldowns: tuple[tuple[Cooldown, float], ...],
        lease_until: float = 0.0,
    ) -> None:
        self.candidate = candidate
        self.permit = permit
        #: (cool-down, its deadline when the probe was taken)
        self.cooldowns = cooldowns
        #: when this probe's hold on the cool-down slots runs out
        self.lease_until = lease_until

    def end(self, succeeded: bool) -> None:
        """Give the cool-down slots back; a success also lifts the cool-downs it went through.

        A cool-down set anew while the probe was out (its deadline moved) is kept: it is
        news the probe did not see.
        """
        for cooldown, until in self.cooldowns:
            if succeeded and cooldown.until == until:
                cooldown.clear()
            else:
                cooldown.end_probe(self.lease_until)


def take_probe(candidate: Candidate, now: float) -> Probe | None:
    """Take an early probe on ``candidate``'s pair, or ``None`` if its probe limit is reached."""
    if candidate.probing:
        return None
    pair = candidate.pair
    breaker = pair.breaker
    cooldowns = tuple(
        cooldown for cooldown in (pair.platform.cooldown, pair.cooldown) if cooldown.until > now
    )
    if any(cooldown.probe_until > now for cooldown in cooldowns):
        return None
    permit = breaker.admit() if breaker.would_admit() else breaker.admit_early_probe()
    if permit is None:
        return None
    lease_until = now + breaker.settings.probe_lease_seconds
    for cooldown in cooldowns:
        cooldown.take_probe(now, lease_until)
    return Probe(
        candidate,
        permit,
        tuple((cooldown, cooldown.until) for cooldown in cooldowns),
        lease_until,
    )


# -- the setting and its sequencing ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastResort:
    """An operation's resolved ``when_all_unavailable`` (``"fail"`` is no object at all)."""

    mode: str
    max_wait: float

    @classmethod
    def of(cls, policy: Policy) -> LastResort | None:
        mode = policy.when_all_unavailable or "probe_soonest"
        if mode == "fail":
            return None
        return cls(mode, DEFAULT_MAX_WAIT if policy.max_wait is None else policy.max_wait)

    async def run(
        self,
        chain: Chain,
        route: Route,
        order: Sequence[Pair],
        func: Operation,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        tracer: Tracer | None,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> tuple[Any, PlatformSpec]:
        """Called by the chain when it walked ``order`` and tried nothing: take a probe (or
        wait for a platform), then make the one attempt the last resort allows. Its outcome
        counts as any attempt's."""
        clock = chain.clock
        if any(pair.unavailable_reason(clock) is None for pair in order):
            # Passed over for another reason (a full bulkhead, a probe lease another process
            # holds): not the situation this is for.
            raise AllPlatformsFailed(route.operation, attempts)
        if self.mode == "wait":
            probe = await self._wait(chain, route, order, call_span, attempts)
        else:
            probe = await self._probe(chain, route, order, call_span, attempts)
        pair = probe.candidate.pair
        slot = await self._slot(chain, route, probe, call_span, attempts)
        started = clock.now()
        try:
            if tracer is None:
                result = await chain._attempt(pair, probe.permit, func, args, kwargs)
            else:
                result = await chain._traced_attempt(
                    tracer, pair, probe.permit, func, args, kwargs, 1
                )
        except BaseException as exc:
            duration = clock.now() - started
            if not isinstance(exc, Exception) or isinstance(exc, anyio.get_cancelled_exc_class()):
                _give_back(chain, probe)
                attempts.append(
                    Attempt(
                        pair.spec.name,
                        pair.spec.model,
                        route.operation,
                        "cancelled",
                        attempt=1,
                        duration=duration,
                        last_resort=self.mode,
                    )
                )
                chain._count(pair, "cancelled", duration)
                raise
            error = exc
        else:
            self._answered(chain, route, probe, result, clock.now() - started, call_span, attempts)
            return result, pair.spec
        finally:
            if slot is not None:
                slot.release()
        raise self._failure(chain, route, probe, error, duration, call_span, attempts)

    # -- "probe_soonest" ---------------------------------------------------------------------

    async def _probe(
        self,
        chain: Chain,
        route: Route,
        order: Sequence[Pair],
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> Probe:
        clock = chain.clock
        operation = route.operation
        for rank, candidate in enumerate(by_recovery(order, clock.now())):
            probe = take_probe(candidate, clock.now())
            if probe is None or not await _fleet_lease(chain, probe):
                continue
            remaining = max(candidate.usable_at - clock.now(), 0.0)
            chain.telemetry.event(
                call_span,
                EVENT,
                {
                    "failover.last_resort.mode": self.mode,
                    "failover.last_resort.result": "probe",
                    "failover.platform": candidate.pair.spec.name,
                    "failover.last_resort.reason": candidate.reason,
                    "failover.last_resort.remaining": remaining,
                },
            )
            logger.warning(
                "No platform is usable for %s; probing %s (%s) early as a last resort: it "
                "recovers %s (%s, %.1fs left)",
                operation,
                candidate.pair.spec.name,
                candidate.pair.spec.model,
                "soonest" if rank == 0 else "soonest of those without a probe out",
                candidate.reason,
                remaining,
            )
            return probe
        chain.telemetry.event(
            call_span,
            EVENT,
            {"failover.last_resort.mode": self.mode, "failover.last_resort.result": "none"},
        )
        logger.debug(
            "No platform is usable for %s and none can be probed now (each has a probe out "
            "or cannot recover by time)",
            operation,
        )
        raise AllPlatformsFailed(
            operation, attempts, reason="every platform unavailable, none can be probed now"
        )

    # -- one request -------------------------------------------------------------------------

    @staticmethod
    async def _slot(
        chain: Chain,
        route: Route,
        probe: Probe,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> Limiter | None:
        """A bulkhead bounds the last resort's request like any other: its slot, ``None``
        without a bulkhead; a full one gives the probe back and ends the call."""
        if route.policies is None:
            return None
        pair = probe.candidate.pair
        try:
            taken = await route.policies.slot(pair, chain.clock)
        except BaseException:
            _give_back(chain, probe)
            raise
        if isinstance(taken, str):
            _give_back(chain, probe)
            chain._skipped(pair, taken, attempts, call_span)
            raise AllPlatformsFailed(
                route.operation,
                attempts,
                reason=f"every platform unavailable; the last resort, {pair.spec.name}, is {taken}",
            )
        return taken

    def _answered(
        self,
        chain: Chain,
        route: Route,
        probe: Probe,
        result: Any,
        duration: float,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> None:
        """Book the answered attempt."""
        pair = probe.candidate.pair
        probe.end(True)
        chain.succeeded(pair, probe.permit, duration)
        if route.policies is not None:
            route.policies.observe(pair, True, duration, result)
        self._summarize(call_span, pair, attempts, answered=True)
        logger.info(
            "Last resort for %s: %s answered after %.2fs", route.operation, pair.spec.name, duration
        )

    def _failure(
        self,
        chain: Chain,
        route: Route,
        probe: Probe,
        error: Exception,
        duration: float,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> Exception:
        """Book the failed attempt; the exception the call ends with."""
        pair = probe.candidate.pair
        clock = chain.clock
        verdict = classify(error, pair.classifiers)
        probe.end(False)
        chain.failed(pair, probe.permit, verdict, duration)
        if route.policies is not None:
            route.policies.observe(pair, False, duration, None, error)
        attempts.append(
            Attempt(
                pair.spec.name,
                pair.spec.model,
                route.operation,
                "failure",
                attempt=1,
                error_type=type(error).__qualname__,
                error_kind=verdict.kind,
                status_code=verdict.status_code,
                duration=duration,
                error=error,
                last_resort=self.mode,
            )
        )
        self._summarize(call_span, pair, attempts, answered=False)
        after = recovery(pair, clock.now())
        logger.warning(
            "Last resort for %s: %s failed too (%s, %s)%s",
            route.operation,
            pair.spec.name,
            type(error).__qualname__,
            verdict.kind.value,
            ""
            if after is None or after.usable_at <= clock.now()
            else f"; unavailable for {after.usable_at - clock.now():.1f}s more ({after.reason})",
        )
        if verdict.kind is ErrorKind.REQUEST and verdict.reason not in chain.settings.continue_on:
            return error
        return AllPlatformsFailed(
            route.operation,
            attempts,
            reason=f"every platform unavailable; the last resort, {pair.spec.name}, failed",
        )

    @staticmethod
    def _summarize(
        call_span: Span | None, pair: Pair, attempts: Sequence[Attempt], *, answered: bool
    ) -> None:
        if call_span is None:
            return
        passed_over = {
            attempt.platform
            for attempt in attempts
            if attempt.outcome == "skipped"
            and attempt.skip_reason != SKIP_MISSING_KEY
            and attempt.platform != pair.spec.name
        }
        attributes: dict[str, Any] = {
            "failover.attempts": 1,
            "failover.fallbacks": len(passed_over),
        }
        if answered:
            attributes["failover.platform"] = pair.spec.name
        call_span.set_attributes(attributes)

    # -- "wait" ------------------------------------------------------------------------------

    async def _wait(
        self,
        chain: Chain,
        route: Route,
        order: Sequence[Pair],
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> Probe:
        """Wait until a platform admits an attempt; raise when none can within ``max_wait``.

        Wakes when the soonest cool-down ends (and every second while a probe is out, whose
        outcome may close a breaker at any moment). Gives up at once when the soonest
        recovery lies beyond the budget: waiting could not help.
        """
        clock = chain.clock
        operation = route.operation
        started = clock.now()
        budget_end = started + self.max_wait
        awaited: Candidate | None = None
        failure: str | None = None
        try:
            while True:
                now = clock.now()
                for pair in order:
                    if pair.unavailable_reason(clock) is not None:
                        continue
                    admission = pair.admit(clock)
                    if not isinstance(admission, Permit):
                        continue
                    probe = Probe(
                        Candidate(pair, now, _skip_reason(attempts, pair), False), admission, ()
                    )
                    if await _fleet_lease(chain, probe):
                        self._waited(
                            chain,
                            operation,
                            probe.candidate,
                            clock.now() - started,
                            "usable",
                            call_span,
                            attempts,
                        )
                        return probe
                candidates = by_recovery(order, now)
                if not candidates:
                    failure = "no platform can become usable by waiting"
                    break
                probing = any(candidate.probing for candidate in candidates)
                scheduled = [c for c in candidates if not c.probing and c.usable_at > now]
                awaited = scheduled[0] if scheduled else candidates[0]
                wake = scheduled[0].usable_at if scheduled else now + WAIT_RECHECK_SECONDS
                if probing:
                    wake = min(wake, now + WAIT_RECHECK_SECONDS)
                if now >= budget_end:
                    failure = f"waited max_wait={self.max_wait:g}s"
                    break
                if not probing and wake > budget_end:
                    failure = (
                        f"the soonest, {awaited.pair.spec.name}, recovers in {wake - now:.1f}s, "
                        f"beyond max_wait={self.max_wait:g}s"
                    )
                    break
                await clock.sleep(min(wake, budget_end) - now)
        except BaseException:
            self._waited(
                chain, operation, awaited, clock.now() - started, "cut_short", call_span, attempts
            )
            raise
        self._waited(
            chain, operation, awaited, clock.now() - started, "gave_up", call_span, attempts
        )
        raise AllPlatformsFailed(
            operation, attempts, reason=f"every platform unavailable; {failure}"
        )

    def _waited(
        self,
        chain: Chain,
        operation: str,
        awaited: Candidate | None,
        waited: float,
        result: str,
        call_span: Span | None,
        attempts: list[Attempt],
    ) -> None:
        """Record, trace and log how a wait ended."""
        spec = None if awaited is None else awaited.pair.spec
        reason = None if awaited is None else awaited.reason
        if spec is not None:
            attempts.append(
                Attempt(
                    spec.name,
                    spec.model,
                    operation,
                    "skipped",
                    skip_reason=reason,
                    duration=waited,
                    last_resort=self.mode,
                )
            )
        chain.telemetry.event(
            call_span,
            EVENT,
            {
                "failover.last_resort.mode": self.mode,
                "failover.last_resort.result": result,
                "failover.platform": None if spec is None else spec.name,
                "failover.last_resort.reason": reason,
                "failover.last_resort.waited": waited,
            },
        )
        name = "no platform" if spec is None else spec.name
        if result == "usable":
            logger.warning(
                "No platform was usable for %s; waited %.2fs as a last resort until %s (%s) "
                "became usable",
                operation,
                waited,
                name,
                reason,
            )
        else:
            logger.warning(
                "No platform is usable for %s; waited %.2fs of max_wait=%gs as a last resort "
                "for %s (%s), then %s",
                operation,
                waited,
                self.max_wait,
                name,
                reason,
                "was cut short (cancelled or past the call's deadline)"
                if result == "cut_short"
                else "gave up",
            )


async def _fleet_lease(chain: Chain, probe: Probe) -> bool:
    """Whether a probe permit also won the fleet-wide lease; if not, everything is given back."""
    permit = probe.permit
    if not permit.is_probe or chain.fleet is None:
        return True
    try:
        leased = await chain.fleet.acquire_probe(probe.candidate.pair, permit)
    except BaseException:
        probe.end(False)  # acquire_probe gave the breaker permit back
        raise
    if not leased:
        probe.end(False)
    return leased


def _give_back(chain: Chain, probe: Probe) -> None:
    """Return an unused (or cancelled) probe: breaker permit, fleet lease, cool-down slots."""
    chain._give_back(probe.candidate.pair, probe.permit)
    probe.end(False)


def _skip_reason(attempts: Sequence[Attempt], pair: Pair) -> str:
    """Why the walk skipped ``pair`` (its last skip record)."""
    for attempt in reversed(attempts):
        if attempt.platform == pair.spec.name and attempt.skip_reason is not None:
            return attempt.skip_reason
    return SKIP_OPEN
