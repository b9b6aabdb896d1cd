"""The per-pair circuit breaker: a pure state machine driven by an injected clock.

No I/O and no event loop: :class:`PairBreaker` decides admission and records outcomes; the
engine's driver only sequences it. A ``pybreaker.CircuitBreaker`` mirrors its state so users
can inspect it, attach listeners and call ``open()``/``close()`` (``failover._engine.mirror``,
built on first use), but no call ever goes through pybreaker's ``call()``.

States: closed -> open after ``failure_threshold`` consecutive failures -> half-open once the
open duration has passed, admitting at most ``half_open_max_calls`` probes, each holding a
lease -> closed after ``success_threshold`` probe successes, or open again (for a possibly
longer duration) on a probe failure.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from failover._core import validate
from failover._core.clock import Clock
from failover._core.kinds import Cause


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """How a pair's breaker behaves. Validated on construction.

    ``open_backoff`` > 1 makes each consecutive re-open (a failed probe) last longer, up to
    ``max_open_seconds``.
    """

    failure_threshold: int = 3
    reset_timeout: float = 300.0
    half_open_max_calls: int = 1
    success_threshold: int = 1
    probe_lease_seconds: float = 60.0
    open_backoff: float = 1.0
    max_open_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            validate.integer(name, getattr(self, name), at_least=1)
        for name in ("reset_timeout", "probe_lease_seconds", "max_open_seconds"):
            object.__setattr__(self, name, validate.number(name, getattr(self, name), above=0))
        # An infinite backoff is allowed: every re-open then lasts max_open_seconds.
        validate.number("open_backoff", self.open_backoff, at_least=1, allow_inf=True)


def open_duration(settings: BreakerSettings, reopen_count: int) -> float:
    """How long the breaker stays open after its ``reopen_count``-th consecutive re-open:
    ``reset_timeout * open_backoff ** reopen_count``, at most ``max_open_seconds``.

    Compared in logarithms first: a primary dead for weeks re-opens thousands of times, and
    ``2.0 ** 1024`` no longer fits a float (``OverflowError`` in the middle of booking a
    failed probe).
    """
    duration = settings.reset_timeout
    backoff = settings.open_backoff
    if reopen_count <= 0 or backoff <= 1:
        return duration
    ceiling = settings.max_open_seconds
    if math.log(duration) + reopen_count * math.log(backoff) >= math.log(ceiling):
        return ceiling
    return min(duration * backoff**reopen_count, ceiling)


class Permit:
    """Admission to make one attempt. A probe permit carries a lease deadline."""

    __slots__ = ("is_probe", "lease_until")

    def __init__(self, is_probe: bool, lease_until: float = math.inf) -> None:
        self.is_probe = is_probe
        self.lease_until = lease_until

    def __repr__(self) -> str:
        return "Permit(probe)" if self.is_probe else "Permit(closed)"


#: The permit every call gets while a pair is closed: shared, so the happy path allocates nothing.
CLOSED_PERMIT: Final = Permit(is_probe=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a pair breaker's state, as its listener receives it."""

    old: BreakerState
    new: BreakerState
    cause: Cause
    #: Consecutive failures when it happened (what opened a pair by threshold).
    failures: int = 0

    @property
    def reason(self) -> str:
        """The cause in words, as logs and the ``failover.breaker.reason`` attribute say it."""
        if self.cause is Cause.FAILURES:
            return f"{self.failures} consecutive failures"
        return self.cause.value


#: Called with a :class:`Transition` on every change of state.
TransitionListener = Callable[[Transition], None]


class PairBreaker:
    """Breaker state of one (platform, operation) pair.

    ``admit()`` returns a :class:`Permit` or ``None``; every admitted attempt must end in
    exactly one of ``on_success``, ``on_failure`` or ``release`` (cancelled: not counted).
    """

    __slots__ = (
        "clock",
        "consecutive_failures",
        "listener",
        "open_until",
        "pinned_closed",
        "probe_successes",
        "probes",
        "reopen_count",
        "settings",
        "state",
    )

    def __init__(
        self,
        settings: BreakerSettings,
        clock: Clock,
        listener: TransitionListener | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.probes: list[Permit] = []
        self.probe_successes = 0
        self.reopen_count = 0
        self.pinned_closed = False
        #: Told of every transition (the manager: logs, telemetry, mirror, fleet).
        self.listener = listener

    def set_listener(self, listener: TransitionListener | None) -> None:
        """Call ``listener`` on every transition from now on (its owner is often built after
        the breaker, so it cannot always be passed to the constructor)."""
        self.listener = listener

    # -- admission ---------------------------------------------------------------------------

    def admit(self) -> Permit | None:
        """Admit one attempt now, or return ``None`` if the pair is open or its probes are taken."""
        if self.state is BreakerState.CLOSED:
            return CLOSED_PERMIT
        now = self.clock.now()
        if self.state is BreakerState.OPEN:
            if now < self.open_until:
                return None
            self._move(BreakerState.HALF_OPEN, Cause.OPEN_ELAPSED)
        self._expire_leases(now)
        if len(self.probes) >= self.settings.half_open_max_calls:
            return None
        permit = Permit(True, now + self.settings.probe_lease_seconds)
        self.probes.append(permit)
        return permit

    def admit_early_probe(self) -> Permit | None:
        """A probe permit while the breaker is still open: the chain's last resort.

        Used only when every platform of an operation is unavailable. The permit counts
        against ``half_open_max_calls`` like any probe, so concurrent last resorts cannot
        flood a sick provider, and its outcome is a probe's: success closes the breaker,
        failure re-opens it for a fresh (backed-off) open duration. The state stays open
        meanwhile, so ordinary callers are still turned away. ``None`` when the breaker is not
        open (use :meth:`admit`), isolated (open until reset), or its probe slots are taken.
        """
        if self.state is not BreakerState.OPEN or math.isinf(self.open_until):
            return None
        now = self.clock.now()
        if now >= self.open_until:
            return self.admit()
        self._expire_leases(now)
        if len(self.probes) >= self.settings.half_open_max_calls:
            return None
        permit = Permit(True, now + self.settings.probe_lease_seconds)
        self.probes.append(permit)
        return permit

    def probes_in_flight(self) -> int:
        """How many probe permits are out now (leases not yet expired)."""
        now = self.clock.now()
        return sum(1 for permit in self.probes if permit.lease_until > now)

    def current_state(self) -> BreakerState:
        """The state as admission would see it now (an elapsed open reads as half-open)."""
        if self.state is BreakerState.OPEN and self.clock.now() >= self.open_until:
            return BreakerState.HALF_OPEN
        return self.state

    def would_admit(self) -> bool:
        """Whether :meth:`admit` would let a call through now, without taking a permit."""
        if self.state is BreakerState.CLOSED:
            return True
        now = self.clock.now()
        if self.state is BreakerState.OPEN and now < self.open_until:
            return False
        # Elapsed open reads as half-open: an early probe sent while it was open still
        # holds its slot, and admit() would refuse while it does.
        live = sum(1 for permit in self.probes if permit.lease_until > now)
        return live < self.settings.half_open_max_calls

    def _expire_leases(self, now: float) -> None:
        if self.probes and any(permit.lease_until <= now for permit in self.probes):
            self.probes = [permit for permit in self.probes if permit.lease_until > now]

    # -- outcomes ----------------------------------------------------------------------------

    def on_success(self, permit: Permit) -> None:
        if not permit.is_probe:
            if self.state is BreakerState.CLOSED and self.consecutive_failures:
                self.consecutive_failures = 0
            return
        if not self._take_probe(permit):
            return
        self._probe_succeeded()

    def on_failure(self, permit: Permit) -> None:
        if not permit.is_probe:
            if self.state is not BreakerState.CLOSED:
                return  # admitted before the pair opened: a stale result
            self.consecutive_failures += 1
            if (
                not self.pinned_closed
                and self.consecutive_failures >= self.settings.failure_threshold
            ):
                self._open(Cause.FAILURES)
            return
        if not self._take_probe(permit):
            return
        self.consecutive_failures += 1
        self.reopen_count += 1
        self._open(Cause.PROBE_FAILED)

    def _take_probe(self, permit: Permit) -> bool:
        """Retire a probe permit; ``False`` if its result is stale and must be ignored.

        Stale: the state moved on (the permit is no longer held) or its lease ran out, in
        which case another caller may already be probing in its place.
        """
        if permit not in self.probes:
            return False
        self.probes.remove(permit)
        return permit.lease_until > self.clock.now()

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the attempt was cancelled)."""
        if permit.is_probe and permit in self.probes:
            self.probes.remove(permit)

    # -- outcomes reported without a permit (the seed API's report_success/report_failure) ---

    def report_success(self) -> None:
        state = self.current_state()
        if state is BreakerState.CLOSED:
            self.consecutive_failures = 0
        elif state is BreakerState.HALF_OPEN:
            if self.state is BreakerState.OPEN:
                self._move(BreakerState.HALF_OPEN, Cause.OPEN_ELAPSED)
            self._probe_succeeded()

    def report_failure(self) -> None:
        state = self.current_state()
        if state is BreakerState.HALF_OPEN:
            self.consecutive_failures += 1
            self.reopen_count += 1
            self._open(Cause.PROBE_FAILED)
        else:
            self.on_failure(CLOSED_PERMIT)

    # -- manual control ----------------------------------------------------------------------

    def force_open(self, seconds: float | None = None) -> None:
        """Open now: for ``seconds`` (default: the open duration), or until reset if ``inf``."""
        self.pinned_closed = False
        duration = self.settings.reset_timeout if seconds is None else seconds
        self.open_until = self.clock.now() + duration
        self.probes = []
        self.probe_successes = 0
        if self.state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN, Cause.FORCED_OPEN)

    def isolate(self) -> None:
        """Open until :meth:`reset` or :meth:`force_closed` (Polly's *isolate*)."""
        self.force_open(math.inf)

    def open_until_deadline(self, until: float, cause: Cause = Cause.REMOTE_OPEN) -> bool:
        """Open (or stay open) until ``until`` because another process said so.

        A later deadline already in force is kept; returns whether anything changed.
        """
        if self.pinned_closed or until <= self.clock.now():
            return False
        if self.state is BreakerState.OPEN and self.open_until >= until:
            return False
        self.open_until = until
        self.probes = []
        self.probe_successes = 0
        if self.state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN, cause)
        return True

    def force_half_open(self) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            self.open_until = self.clock.now()
            self.probes = []
            self.probe_successes = 0
            self._move(BreakerState.HALF_OPEN, Cause.FORCED_HALF_OPEN)

    def force_closed(self) -> None:
        """Close and stay closed whatever fails, until :meth:`reset`."""
        self.pinned_closed = True
        self._close(Cause.FORCED_CLOSED)

    def reset(self) -> None:
        """Back to a fresh closed breaker: counters cleared, pin released."""
        self.pinned_closed = False
        self._close(Cause.RESET)

    # -- transitions -------------------------------------------------------------------------

    def _probe_succeeded(self) -> None:
        self.probe_successes += 1
        if self.probe_successes >= self.settings.success_threshold:
            self._close(Cause.PROBE_SUCCEEDED)

    def _open(self, cause: Cause) -> None:
        self.open_until = self.clock.now() + open_duration(self.settings, self.reopen_count)
        self.probes = []
        self.probe_successes = 0
        self._move(BreakerState.OPEN, cause)

    def _close(self, cause: Cause) -> None:
        self.consecutive_failures = 0
        self.reopen_count = 0
        self.probe_successes = 0
        self.probes = []
        self.open_until = 0.0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, cause)

    def _move(self, new: BreakerState, cause: Cause) -> None:
        old = self.state
        self.state = new
        if self.listener is not None and old is not new:
            self.listener(Transition(old, new, cause, self.consecutive_failures))
