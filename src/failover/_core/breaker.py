"""The per-pair circuit breaker: a pure state machine driven by an injected clock.

No I/O and no event loop: :class:`PairBreaker` decides admission and records outcomes; the
engine's driver only sequences it. A ``pybreaker.CircuitBreaker`` mirrors its state so users
can inspect it, attach listeners and call ``open()``/``close()`` (``failover._engine.mirror``,
built on first use), but no call ever goes through pybreaker's ``call()``.

States: closed -> open after ``failure_threshold`` consecutive failures -> half-open once the
open duration has passed, admitting at most ``half_open_max_calls`` probes, each holding a
lease -> closed after ``success_threshold`` probe successes, or open again (for a possibly
longer duration) on a probe failure.

Opt-in rate rules sit beside the consecutive count (whichever trips first opens): with
``failure_rate_threshold`` the pair opens once at least ``minimum_calls`` calls in the last
``window_seconds`` ended and that share of them failed; with ``slow_call_seconds`` and
``slow_call_rate_threshold``, once that share took longer than ``slow_call_seconds``. The
window (:class:`RateWindow`) is a fixed ring of time buckets: bounded memory whatever the
traffic, and nothing at all for a pair without rate rules.
"""

from __future__ import annotations

import enum
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from failover._core import validate
from failover._core.clock import Clock
from failover._core.errors import ConfigError
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
    #: Open when at least this share (0-1] of the window's calls failed; ``None``: off.
    failure_rate_threshold: float | None = None
    #: Calls the window must hold before either rate may open the pair.
    minimum_calls: int = 10
    window_seconds: float = 60.0
    #: A call taking longer than this is slow; ``None``: no call is.
    slow_call_seconds: float | None = None
    #: Open when at least this share (0-1] of the window's calls were slow; ``None``: off.
    slow_call_rate_threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            validate.integer(name, getattr(self, name), at_least=1)
        for name in ("reset_timeout", "probe_lease_seconds", "max_open_seconds"):
            object.__setattr__(self, name, validate.number(name, getattr(self, name), above=0))
        # An infinite backoff is allowed: every re-open then lasts max_open_seconds.
        validate.number("open_backoff", self.open_backoff, at_least=1, allow_inf=True)
        check_rate_settings(
            self.failure_rate_threshold,
            self.minimum_calls,
            self.window_seconds,
            self.slow_call_seconds,
            self.slow_call_rate_threshold,
        )
        for name in ("failure_rate_threshold", "slow_call_seconds", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        object.__setattr__(self, "window_seconds", float(self.window_seconds))

    @property
    def rates(self) -> bool:
        """Whether a rate rule is on (the pair then keeps a :class:`RateWindow`)."""
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None


def check_rate_settings(
    failure_rate_threshold: object,
    minimum_calls: object,
    window_seconds: object,
    slow_call_seconds: object,
    slow_call_rate_threshold: object,
) -> None:
    """One ``ConfigError`` naming the first bad rate setting (thresholds are in (0, 1])."""
    for name, value in (
        ("failure_rate_threshold", failure_rate_threshold),
        ("slow_call_rate_threshold", slow_call_rate_threshold),
    ):
        if value is not None:
            validate.number(name, value, above=0, at_most=1)
    validate.integer("minimum_calls", minimum_calls, at_least=1)
    validate.number("window_seconds", window_seconds, above=0, at_most=MAX_WINDOW_SECONDS)
    if slow_call_seconds is not None:
        validate.number("slow_call_seconds", slow_call_seconds, above=0)
    if (slow_call_seconds is None) != (slow_call_rate_threshold is None):
        missing = "slow_call_seconds" if slow_call_seconds is None else "slow_call_rate_threshold"
        given = "slow_call_rate_threshold" if slow_call_seconds is None else "slow_call_seconds"
        raise ConfigError(f"{given} needs {missing}: set both or neither", key=missing)


#: The longest rate window (a day): a longer one says nothing a breaker can act on.
MAX_WINDOW_SECONDS: Final = 86_400.0
#: Buckets of a rate window: one a second for windows up to a minute, else 60 wider ones.
MAX_BUCKETS: Final = 60


class RateWindow:
    """Calls, failures and slow calls of the last ``window_seconds``, in a ring of time buckets.

    At most :data:`MAX_BUCKETS` buckets of three 8-byte counters (1,440 bytes in one
    ``array``; 1.7 KB per pair with the object and the array's header, at most):
    buckets older than the window are emptied as the clock moves past them, so the totals
    always cover the last ``window_seconds`` to within one bucket.
    """

    __slots__ = ("_counts", "_newest", "_size", "_width", "calls", "failures", "slow")

    def __init__(self, window_seconds: float) -> None:
        size = min(max(math.ceil(window_seconds), 1), MAX_BUCKETS)
        self._size = size
        self._width = window_seconds / size
        self._counts = array("q", bytes(8 * 3 * size))  # calls, failures, slow per bucket
        self._newest: int | None = None
        self.calls = self.failures = self.slow = 0

    def clear(self) -> None:
        if self.calls:
            self._counts = array("q", bytes(8 * 3 * self._size))
        self._newest = None
        self.calls = self.failures = self.slow = 0

    def advance(self, now: float) -> None:
        """Empty the buckets the window has moved past by ``now``."""
        epoch = math.floor(now / self._width)
        newest = self._newest
        if newest is not None and epoch <= newest:
            return  # the clock never runs back; equal: the newest bucket is current
        size = self._size
        counts = self._counts
        if newest is None or epoch - newest >= size:
            if self.calls:
                self._counts = array("q", bytes(8 * 3 * size))
            self.calls = self.failures = self.slow = 0
        else:
            for stale in range(newest + 1, epoch + 1):
                slot = stale % size
                base = 3 * slot
                self.calls -= counts[base]
                self.failures -= counts[base + 1]
                self.slow -= counts[base + 2]
                counts[base] = counts[base + 1] = counts[base + 2] = 0
        self._newest = epoch

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self.advance(now)
        newest = self._newest
        assert newest is not None
        base = 3 * (newest % self._size)
        counts = self._counts
        counts[base] += 1
        self.calls += 1
        if failed:
            counts[base + 1] += 1
            self.failures += 1
        if slow:
            counts[base + 2] += 1
            self.slow += 1


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
#: The closed state, for hot paths that compare it (a module global: one lookup less).
CLOSED: Final = BreakerState.CLOSED


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a pair breaker's state, as its listener receives it."""

    old: BreakerState
    new: BreakerState
    cause: Cause
    #: Consecutive failures when it happened (what opened a pair by threshold).
    failures: int = 0
    #: The failure or slow-call rate that opened the pair (``FAILURE_RATE``, ``SLOW_CALLS``).
    rate: float = 0.0

    @property
    def reason(self) -> str:
        """The cause in words, as logs and the ``failover.breaker.reason`` attribute say it."""
        if self.cause is Cause.FAILURES:
            return f"{self.failures} consecutive failures"
        if self.cause is Cause.FAILURE_RATE:
            return f"failure rate {self.rate:.0%}"
        if self.cause is Cause.SLOW_CALLS:
            return f"slow-call rate {self.rate:.0%}"
        return self.cause.value


#: Called with a :class:`Transition` on every change of state.
TransitionListener = Callable[[Transition], None]


class PairBreaker:
    """Breaker state of one (platform, operation) pair.

    ``admit()`` returns a :class:`Permit` or ``None``; every admitted attempt must end in
    exactly one of ``on_success``, ``on_failure`` or ``release`` (cancelled: not counted).
    """

    __slots__ = (
        "_rate",
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
        "window",
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
        #: The probe permits out (a tuple: an empty one is shared, so a closed pair holds no
        #: list of its own; replaced, never mutated).
        self.probes: tuple[Permit, ...] = ()
        self.probe_successes = 0
        self.reopen_count = 0
        self.pinned_closed = False
        #: Recent calls for the rate rules; ``None`` (nothing kept) when none is on.
        self.window = RateWindow(settings.window_seconds) if settings.rates else None
        self._rate = 0.0
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
        self.probes = (*self.probes, permit)
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
        self.probes = (*self.probes, permit)
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
            self.probes = tuple(permit for permit in self.probes if permit.lease_until > now)

    # -- outcomes ----------------------------------------------------------------------------

    def on_success(self, permit: Permit, duration: float | None = None) -> None:
        if not permit.is_probe:
            if self.state is BreakerState.CLOSED:
                if self.consecutive_failures:
                    self.consecutive_failures = 0
                if self.window is not None:
                    self._windowed(False, duration)
            return
        if not self._take_probe(permit):
            return
        self._probe_succeeded()

    def on_failure(self, permit: Permit, duration: float | None = None) -> None:
        if not permit.is_probe:
            if self.state is not BreakerState.CLOSED:
                return  # admitted before the pair opened: a stale result
            self.consecutive_failures += 1
            if (
                not self.pinned_closed
                and self.consecutive_failures >= self.settings.failure_threshold
            ):
                self._open(Cause.FAILURES)
            elif self.window is not None:
                self._windowed(True, duration)
            return
        if not self._take_probe(permit):
            return
        self.consecutive_failures += 1
        self.reopen_count += 1
        self._open(Cause.PROBE_FAILED)

    def _windowed(self, failed: bool, duration: float | None) -> None:
        """Count a closed-state outcome in the rate window; open if a rate rule trips."""
        window = self.window
        assert window is not None
        settings = self.settings
        limit = settings.slow_call_seconds
        slow = limit is not None and duration is not None and duration > limit
        window.record(self.clock.now(), failed, slow)
        if self.pinned_closed or window.calls < settings.minimum_calls:
            return
        threshold = settings.failure_rate_threshold
        if failed and threshold is not None and window.failures >= threshold * window.calls:
            self._rate = window.failures / window.calls
            self._open(Cause.FAILURE_RATE)
            return
        threshold = settings.slow_call_rate_threshold
        if slow and threshold is not None and window.slow >= threshold * window.calls:
            self._rate = window.slow / window.calls
            self._open(Cause.SLOW_CALLS)

    def _take_probe(self, permit: Permit) -> bool:
        """Retire a probe permit; ``False`` if its result is stale and must be ignored.

        Stale: the state moved on (the permit is no longer held) or its lease ran out, in
        which case another caller may already be probing in its place.
        """
        if permit not in self.probes:
            return False
        self.probes = tuple(other for other in self.probes if other is not permit)
        return permit.lease_until > self.clock.now()

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the attempt was cancelled)."""
        if permit.is_probe and permit in self.probes:
            self.probes = tuple(other for other in self.probes if other is not permit)

    # -- outcomes reported without a permit (the seed API's report_success/report_failure) ---

    def report_success(self, duration: float | None = None) -> None:
        state = self.current_state()
        if state is BreakerState.CLOSED:
            self.consecutive_failures = 0
            if self.window is not None:
                self._windowed(False, duration)
        elif state is BreakerState.HALF_OPEN:
            if self.state is BreakerState.OPEN:
                self._move(BreakerState.HALF_OPEN, Cause.OPEN_ELAPSED)
            self._probe_succeeded()

    def report_failure(self, duration: float | None = None) -> None:
        state = self.current_state()
        if state is BreakerState.HALF_OPEN:
            self.consecutive_failures += 1
            self.reopen_count += 1
            self._open(Cause.PROBE_FAILED)
        else:
            self.on_failure(CLOSED_PERMIT, duration)

    # -- manual control ----------------------------------------------------------------------

    def force_open(self, seconds: float | None = None) -> None:
        """Open now: for ``seconds`` (default: the open duration), or until reset if ``inf``."""
        self.pinned_closed = False
        duration = self.settings.reset_timeout if seconds is None else seconds
        self.open_until = self.clock.now() + duration
        self.probes = ()
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
        self.probes = ()
        self.probe_successes = 0
        if self.state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN, cause)
        return True

    def check_passed(self) -> bool:
        """A background health check of the platform succeeded: an open or half-open pair
        closes without waiting for a user's request. Returns whether it did."""
        if self.state is BreakerState.CLOSED or self.pinned_closed:
            return False
        self._close(Cause.HEALTH_CHECK)
        return True

    def force_half_open(self) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            self.open_until = self.clock.now()
            self.probes = ()
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
        self.probes = ()
        self.probe_successes = 0
        self._move(BreakerState.OPEN, cause)

    def _close(self, cause: Cause) -> None:
        if self.window is not None:
            self.window.clear()
        self.consecutive_failures = 0
        self.reopen_count = 0
        self.probe_successes = 0
        self.probes = ()
        self.open_until = 0.0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, cause)

    def _move(self, new: BreakerState, cause: Cause) -> None:
        old = self.state
        self.state = new
        if self.window is not None:
            # Only closed-state calls are counted, and a pair closes with a clean slate.
            self.window.clear()
        if self.listener is not None and old is not new:
            rate = self._rate if cause in (Cause.FAILURE_RATE, Cause.SLOW_CALLS) else 0.0
            self.listener(Transition(old, new, cause, self.consecutive_failures, rate))
