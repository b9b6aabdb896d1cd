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
driven by the clock; the driver (``failover._engine.drive_async.last_resort``) only sequences
it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from failover._core.breaker import BreakerState, Permit
from failover._core.errors import Attempt
from failover._core.kinds import SkipReason
from failover._core.pair import Cooldown, PairState
from failover.policies.base import Strategy

if TYPE_CHECKING:
    from failover.policies.policy import Policy

P = TypeVar("P", bound=PairState)

#: How long ``"wait"`` waits when no ``max_wait`` is configured (seconds).
DEFAULT_MAX_WAIT: Final = 30.0

#: While a probe is out, a waiting call looks again this often (its outcome may close the
#: breaker long before the probe's lease runs out); also catches resets and fleet updates.
WAIT_RECHECK_SECONDS: Final = 1.0

EVENT: Final = "failover.last_resort"


# -- selection (synchronous, no I/O) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate(Generic[P]):
    """A pair that is unavailable now, and when it would be usable again by time alone."""

    pair: P
    usable_at: float  #: on the manager's clock; ``now`` when only a probe in flight blocks it
    reason: str  #: what keeps it unavailable longest: open, credit, auth, rate_limited
    probing: bool  #: a probe (breaker permit or cool-down slot) is already out


def recovery(pair: P, now: float) -> Candidate[P] | None:
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
    usable_at, probing = now, False
    reason: str = SkipReason.OPEN
    if open_until > now:
        usable_at = open_until
    for cooldown, default in (
        (pair.platform.cooldown, SkipReason.CREDIT),
        (pair.cooldown, SkipReason.RATE_LIMITED),
    ):
        if cooldown.until > now:
            probing = probing or cooldown.probe_until > now
            if cooldown.until > usable_at:
                usable_at, reason = cooldown.until, cooldown.reason or default
    if breaker.probes and breaker.probes_in_flight() >= breaker.settings.half_open_max_calls:
        probing = True
    return Candidate(pair, usable_at, reason, probing)


def by_recovery(pairs: Iterable[P], now: float) -> list[Candidate[P]]:
    """The pairs that can recover, soonest first (ties keep the call's platform order)."""
    candidates = [c for c in (recovery(pair, now) for pair in pairs) if c is not None]
    candidates.sort(key=lambda candidate: candidate.usable_at)
    return candidates


class Probe(Generic[P]):
    """An early probe taken on one pair: its breaker permit and the cool-down slots it holds."""

    __slots__ = ("candidate", "cooldowns", "lease_until", "permit")

    def __init__(
        self,
        candidate: Candidate[P],
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


def take_probe(candidate: Candidate[P], now: float) -> Probe[P] | None:
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


class LastResort(Strategy):
    """An operation's resolved ``when_all_unavailable`` (``"fail"`` is no object at all): the
    ``exhausted`` hook."""

    __slots__ = ("max_wait", "mode")

    name = "last_resort"

    def __init__(self, mode: str, max_wait: float) -> None:
        self.mode = mode
        self.max_wait = max_wait

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LastResort):
            return NotImplemented
        return (self.mode, self.max_wait) == (other.mode, other.max_wait)

    def __hash__(self) -> int:
        return hash((self.mode, self.max_wait))

    def __repr__(self) -> str:
        return f"LastResort(mode={self.mode!r}, max_wait={self.max_wait!r})"

    @classmethod
    def of(cls, policy: Policy) -> LastResort | None:
        mode = policy.when_all_unavailable or "probe_soonest"
        if mode == "fail":
            return None
        return cls(mode, DEFAULT_MAX_WAIT if policy.max_wait is None else policy.max_wait)

    def exhausted(self) -> LastResort:
        return self


def skip_reason_of(attempts: Sequence[Attempt], pair: PairState) -> str:
    """Why the walk skipped ``pair`` (its last skip record)."""
    for attempt in reversed(attempts):
        if attempt.platform == pair.spec.name and attempt.skip_reason is not None:
            return attempt.skip_reason
    return SkipReason.OPEN


@dataclass(frozen=True, slots=True)
class WaitStep:
    """What a waiting last resort does next: sleep until ``wake``, or give up (``failure``)."""

    awaited: Candidate[Any] | None
    wake: float | None = None
    failure: str | None = None


def wait_step(pairs: Sequence[P], now: float, budget_end: float, max_wait: float) -> WaitStep:
    """The next step of ``"wait"`` when no pair of ``pairs`` is usable at ``now``.

    Wakes when the soonest cool-down ends (and every second while a probe is out, whose
    outcome may close a breaker at any moment). Gives up at once when the soonest recovery
    lies beyond the budget: waiting could not help.
    """
    candidates = by_recovery(pairs, now)
    if not candidates:
        return WaitStep(None, failure="no platform can become usable by waiting")
    probing = any(candidate.probing for candidate in candidates)
    scheduled = [c for c in candidates if not c.probing and c.usable_at > now]
    awaited: Candidate[Any] = scheduled[0] if scheduled else candidates[0]
    wake = scheduled[0].usable_at if scheduled else now + WAIT_RECHECK_SECONDS
    if probing:
        wake = min(wake, now + WAIT_RECHECK_SECONDS)
    if now >= budget_end:
        return WaitStep(awaited, failure=f"waited max_wait={max_wait:g}s")
    if not probing and wake > budget_end:
        return WaitStep(
            awaited,
            failure=(
                f"the soonest, {awaited.pair.spec.name}, recovers in {wake - now:.1f}s, "
                f"beyond max_wait={max_wait:g}s"
            ),
        )
    return WaitStep(awaited, wake=min(wake, budget_end))
