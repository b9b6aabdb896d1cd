"""A platform's cool-downs and a (platform, operation) pair's admission.

Synchronous and I/O-free like the breaker it wraps: the engine asks a :class:`PairState` for
admission (a permit, or the reason to skip) and hands its breaker each attempt's outcome. The
engine's ``Pair`` adds what only the engine needs (policies, the pybreaker mirror).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from failover._core.breaker import BreakerState, PairBreaker, Permit
from failover._core.classify import Classifier, ErrorKind
from failover._core.clock import Clock
from failover._core.errors import Attempt
from failover._core.health import PairStats
from failover._core.kinds import Outcome, SkipReason
from failover._core.spec import PlatformSpec

#: Cool-down reasons by the error kind that caused them.
COOLDOWN_REASON: Final = {
    ErrorKind.CREDIT_EXHAUSTED: SkipReason.CREDIT,
    ErrorKind.AUTH: SkipReason.AUTH,
    ErrorKind.RATE_LIMITED: SkipReason.RATE_LIMITED,
}


class Cooldown:
    """ "Skip until": a deadline on the manager's clock and why. ``until == 0`` means none.

    ``probe_until`` is its single probe slot: the lease deadline of a last-resort probe sent
    while the cool-down is in force (``0`` when none is out), so concurrent last resorts send
    at most one request through one cool-down.
    """

    __slots__ = ("probe_until", "reason", "until")

    def __init__(self) -> None:
        self.until = 0.0
        self.reason: str | None = None
        self.probe_until = 0.0

    def set(self, until: float, reason: str) -> None:
        # A longer cool-down already in force is kept.
        if until > self.until:
            self.until = until
            self.reason = reason

    def clear(self) -> None:
        self.until = 0.0
        self.reason = None
        self.probe_until = 0.0

    def take_probe(self, now: float, lease_until: float) -> bool:
        """Take the probe slot until ``lease_until``; ``False`` if a probe holds it."""
        if self.probe_until > now:
            return False
        self.probe_until = lease_until
        return True

    def end_probe(self, lease_until: float) -> None:
        """Free the slot, unless a later probe took it after this one's lease ran out."""
        if self.probe_until == lease_until:
            self.probe_until = 0.0

    def active(self, clock: Clock) -> bool:
        if self.until == 0.0:
            return False
        if clock.now() < self.until:
            return True
        self.clear()
        return False


class PlatformState:
    """What is shared by all pairs of one platform: its credit/auth cool-down."""

    __slots__ = ("cooldown", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.cooldown = Cooldown()


class PairState:
    """One (platform, operation): its spec, breaker, cool-downs, stats and classifiers."""

    __slots__ = (
        "_environ",
        "_metric_attributes",
        "breaker",
        "classifiers",
        "cooldown",
        "key_seen",
        "operation",
        "platform",
        "skip_records",
        "spec",
        "stats",
    )

    def __init__(
        self,
        spec: PlatformSpec,
        operation: str,
        platform: PlatformState,
        breaker: PairBreaker,
        classifiers: tuple[Classifier, ...],
        environ: Mapping[str, str] | None,
    ) -> None:
        self.spec = spec
        self.operation = operation
        self.platform = platform
        self.breaker = breaker
        self.classifiers = classifiers
        self.stats = PairStats(spec.estimated_cost)
        self.cooldown = Cooldown()
        self._environ = os.environ if environ is None else environ
        #: Whether the key was found once (it is then assumed to stay: see :meth:`key_present`).
        self.key_seen = spec.api_key_env is None
        self._metric_attributes: dict[str, dict[str, str]] | None = None
        #: One shared skip record per reason (made on the first skip for it).
        self.skip_records: dict[str, Attempt] | None = None

    def skip_record(self, reason: str) -> Attempt:
        """The :class:`Attempt` recording that this pair was skipped for ``reason``.

        Attempts are frozen, so one record per reason is shared by every call that skips the
        pair: passing over an open platform allocates nothing once it has been skipped before.
        """
        records = self.skip_records
        if records is None:
            records = self.skip_records = {}
        elif reason in records:
            return records[reason]
        record = records.get(reason)
        if record is None:
            spec = self.spec
            record = records[reason] = Attempt(
                spec.name, spec.model, self.operation, Outcome.SKIPPED, skip_reason=reason
            )
        return record

    @property
    def metric_attributes(self) -> dict[str, dict[str, str]]:
        """Metric attributes by outcome, built on first use: only when metrics are recorded
        (five dicts a pair cost more memory than the rest of an idle pair's bookkeeping)."""
        attributes = self._metric_attributes
        if attributes is None:
            spec = self.spec
            attributes = self._metric_attributes = {
                outcome: {
                    "failover.platform": spec.name,
                    "failover.operation": self.operation,
                    "failover.outcome": outcome.value,
                }
                for outcome in Outcome
            }
        return attributes

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.name, self.operation)

    def key_present(self) -> bool:
        # Once seen, a key is assumed to stay; a missing one is looked for again on every
        # call, so exporting it later makes the platform usable without a restart.
        if self.key_seen:
            return True
        env = self.spec.api_key_env
        present = env is None or bool(self._environ.get(env))
        self.key_seen = present
        return present

    def unavailable_reason(self, clock: Clock) -> str | None:
        """Why this pair would be skipped now, without taking a permit."""
        if not self.key_present():
            return SkipReason.MISSING_API_KEY
        if self.platform.cooldown.active(clock):
            return self.platform.cooldown.reason
        if self.cooldown.active(clock):
            return self.cooldown.reason
        if not self.breaker.would_admit():
            return SkipReason.OPEN
        return None

    def ready(self) -> bool:
        """Whether an attempt needs no admission decision now: the key was seen, nothing is
        cooling down, the breaker is closed. :meth:`admit` would then hand out the shared
        closed permit and change nothing, so the happy path skips it. (The two drivers' fast
        paths spell this condition out inline: keep them in step.)"""
        return (
            self.key_seen
            and self.platform.cooldown.until == 0.0
            and self.cooldown.until == 0.0
            and self.breaker.state is BreakerState.CLOSED
        )

    def admit(self, clock: Clock) -> Permit | str:
        """A permit for one attempt, or the reason to skip this pair."""
        if not self.key_seen and not self.key_present():
            return SkipReason.MISSING_API_KEY
        cooldown = self.platform.cooldown
        if cooldown.until != 0.0 and cooldown.active(clock):
            return cooldown.reason or SkipReason.CREDIT
        if self.cooldown.until != 0.0 and self.cooldown.active(clock):
            return self.cooldown.reason or SkipReason.RATE_LIMITED
        permit = self.breaker.admit()
        return SkipReason.OPEN if permit is None else permit

    def state(self) -> BreakerState:
        return self.breaker.current_state()
