"""The seam between one process's breakers and a fleet-wide shared state (DESIGN §6).

Admission stays local: no shared-state round trip on a successful call. What crosses the seam:

- local transitions worth telling the fleet (a pair opened or closed, a platform or pair
  cooling down, an operator's reset), handed to :meth:`SharedState.publish` without waiting;
- remote transitions, applied by :meth:`FleetLink.apply` to the local breakers and cool-downs
  without being published again (no echo);
- the half-open probe, which must also win a fleet-wide lease before it goes out.

:class:`SharedState` is what a backend implements (``failover.redis.RedisSharedState``);
:class:`FleetLink` is the engine's side, owned by the manager, so the core never imports a
Redis client.

Two rules keep the fleet consistent whatever fails:

- **Durations, never wall-clock times.** A deadline crosses as the milliseconds it still has
  to run (``ttl_ms``); each process turns it into a deadline on its own monotonic clock. A
  host whose wall clock is minutes off, or steps, sees the same deadlines as every other.
- **Operator actions win.** Each pair (and each platform's cool-down) carries an *epoch*. A
  reset, ``force_open``, ``isolate`` or ``force_closed`` takes a new, higher epoch; every event
  carries the epoch its sender knew. An event older than the epoch a process knows is stale
  and ignored; a newer one means an operator acted since, so the process first clears what it
  had for that pair, then applies the event. Reconnect order and re-pushed state therefore
  cannot undo an operator's action made during an outage.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import anyio

from failover._core.breaker import BreakerState, Permit
from failover._core.kinds import Cause
from failover._observe.scrub import get_logger

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from failover._core.clock import Clock
    from failover._core.pair import Cooldown, PlatformState
    from failover._engine.background import Background
    from failover._engine.route import Pair

logger = get_logger("failover.redis")

EventKind = Literal["open", "closed", "cool", "reset"]
#: The ``reason`` of an ``open`` event an operator caused (``force_open``, ``isolate``).
FORCED: Final = "forced"
EVENT_KINDS: Final[frozenset[str]] = frozenset({"open", "closed", "cool", "reset"})


#: How long a process stops asking for a probe lease another process holds (seconds, capped
#: by the lease itself); the holder's outcome usually arrives sooner over pub/sub.
REFUSED_RETRY_SECONDS: Final = 1.0

#: An epoch is a counter in the high bits and a random tie-break in the low ones, so two
#: operators acting on one pair during the same outage still leave one winner fleet-wide.
_EPOCH_SHIFT: Final = 32


def _tie_break() -> int:
    """32 bits of the OS's randomness: not a seeded generator (forked workers must not share
    tie-breaks), and neither ``random`` nor ``secrets`` loaded with ``import failover``."""
    return int.from_bytes(os.urandom(_EPOCH_SHIFT // 8))


def next_epoch(epoch: int) -> int:
    """An epoch higher than ``epoch`` (and than any other process's next one, bar a 2**-32 tie)."""
    return (((epoch >> _EPOCH_SHIFT) + 1) << _EPOCH_SHIFT) | _tie_break()


@dataclass(frozen=True, slots=True)
class SharedEvent:
    """One fleet-wide fact.

    ``open``: the pair is open for ``ttl_ms`` more milliseconds (``None``: isolated until reset).
    ``closed``: the pair closed (a probe succeeded, or it was forced closed).
    ``cool``: the platform (``operation is None``) or the pair is skipped for ``ttl_ms``.
    ``reset``: an operator cleared the pair (or the platform's cool-down when ``operation`` is
    ``None``).
    ``ttl_ms`` is the time left when the event was made; a backend that holds an event before
    sending it subtracts the time it held it. ``epoch``: see the module docstring.
    """

    kind: EventKind
    platform: str
    operation: str | None
    ttl_ms: int | None = None
    reason: str = ""
    epoch: int = 0


@runtime_checkable
class SharedState(Protocol):
    """What a fleet backend provides. Methods other than :meth:`run` never raise on outage."""

    async def run(self, link: FleetLink, *, task_status: TaskStatus[None]) -> None:
        """Load the shared state into ``link``, then listen and write until cancelled.

        Calls ``task_status.started()`` once connected and synced, or once the first
        connection attempt failed (the process then runs on local state and keeps retrying).
        """
        ...

    def publish(self, event: SharedEvent) -> None:
        """Queue ``event`` for the fleet; returns at once (written by :meth:`run`)."""
        ...

    async def acquire_probe(
        self, pair_key: tuple[str, str], lease_ms: int, slots: int
    ) -> str | None:
        """Take one of ``slots`` fleet-wide probe leases for ``lease_ms``.

        Returns a token to give back to :meth:`release_probe`, ``""`` when the fleet cannot be
        asked (outage: the local decision stands), or ``None`` when every slot is held. A
        request whose answer never arrives (cancelled, timed out) must leave no lease behind.
        """
        ...

    def release_probe(self, pair_key: tuple[str, str], token: str) -> None:
        """Give a lease back (queued like :meth:`publish`)."""
        ...

    async def stop(self, timeout: float) -> None:
        """Flush queued writes (waiting up to ``timeout`` seconds), then make :meth:`run` return."""
        ...


def _ttl_ms(until: float, now: float) -> int | None:
    """Milliseconds from ``now`` to ``until`` (``None`` for no deadline), rounded up."""
    return None if math.isinf(until) else max(math.ceil((until - now) * 1000), 0)


class FleetLink:
    """The manager's side of the seam: publishes local transitions, applies remote ones."""

    __slots__ = (
        "_applying",
        "_epochs",
        "_forced",
        "_idle_warned",
        "_leases",
        "_published",
        "_refused_until",
        "clock",
        "host",
        "lock",
        "pairs",
        "platforms",
        "shared",
    )

    def __init__(
        self,
        shared: SharedState,
        pairs: Mapping[tuple[str, str], Pair],
        platforms: Mapping[str, PlatformState],
        clock: Clock,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.shared = shared
        self.pairs = pairs
        self.platforms = platforms
        self.clock = clock
        #: The manager's lock: remote events arrive on the loop's thread while synchronous
        #: callers may be deciding on theirs.
        self.lock: AbstractContextManager[Any] = lock if lock is not None else threading.RLock()
        #: Where :attr:`shared` runs (set by the manager); lets a thread without an event loop
        #: ask the fleet for a probe lease.
        self.host: Background | None = None
        self._applying = False
        #: Pairs open by an operator's hand (here or in another process): re-announced as such.
        self._forced: set[tuple[str, str]] = set()
        self._idle_warned = False
        self._leases: dict[Permit, tuple[tuple[str, str], str]] = {}
        self._refused_until: dict[tuple[str, str], float] = {}
        # Per (platform, operation or None): the newest operator epoch known here.
        self._epochs: dict[tuple[str, str | None], int] = {}
        # The local deadline last said per (kind, platform, operation), so repeats are not
        # re-sent.
        self._published: dict[tuple[str, str, str | None], float | None] = {}

    def epoch(self, platform: str, operation: str | None) -> int:
        """The newest operator epoch this process knows for the pair (or platform)."""
        return self._epochs.get((platform, operation), 0)

    # -- local -> fleet ------------------------------------------------------------------------

    def _send(self, event: SharedEvent, until: float | None = None, *, force: bool = False) -> None:
        key = (event.kind, event.platform, event.operation)
        if event.kind in ("open", "cool") and not force and self._published.get(key, -1) == until:
            return
        self._published[key] = until
        if event.kind in ("closed", "reset"):
            self._published.pop(("open", event.platform, event.operation), None)
            self._published.pop(("cool", event.platform, event.operation), None)
        self.shared.publish(event)

    def on_transition(self, pair: Pair, new: BreakerState, reason: str) -> None:
        """Called by the manager's transition listener for every local transition."""
        if self._applying:
            return
        if new is BreakerState.OPEN:
            self.pair_opened(pair)
        elif new is BreakerState.CLOSED:
            self._forced.discard(pair.key)
            name, operation = pair.key
            epoch = self.epoch(name, operation)
            self._send(SharedEvent("closed", name, operation, reason=reason, epoch=epoch))

    def pair_opened(self, pair: Pair, *, force: bool = False, reason: str = "open") -> None:
        """Tell the fleet the pair is open until its current deadline (``reason`` ``forced``
        when an operator opened it, so no process's health check closes it)."""
        if self._applying:
            return
        until = pair.breaker.open_until
        name, operation = pair.key
        ttl = _ttl_ms(until, self.clock.now())
        event = SharedEvent("open", name, operation, ttl, reason, self.epoch(name, operation))
        self._send(event, until, force=force)

    def operator_set(self, pair: Pair) -> None:
        """An operator forced the pair open or closed: take a new epoch and tell the fleet."""
        name, operation = pair.key
        self._epochs[pair.key] = next_epoch(self.epoch(name, operation))
        breaker = pair.breaker
        if breaker.state is BreakerState.OPEN and breaker.open_until > self.clock.now():
            self._forced.add(pair.key)
            self.pair_opened(pair, force=True, reason=FORCED)
        else:
            self._forced.discard(pair.key)
            epoch = self.epoch(name, operation)
            self._send(SharedEvent("closed", name, operation, reason="forced", epoch=epoch))
        self._announce_cooldown(name, operation, pair.cooldown, force=True)

    def after_failure(self, pair: Pair, permit: Permit | None) -> None:
        """After the chain applied a failure: end a probe's lease, announce new cool-downs."""
        if permit is not None and permit.is_probe:
            self.probe_ended(permit)
        if self._applying:
            return
        self._announce_cooldown(pair.spec.name, None, pair.platform.cooldown)
        self._announce_cooldown(pair.spec.name, pair.operation, pair.cooldown)

    def _announce_cooldown(
        self, platform: str, operation: str | None, cooldown: Cooldown, *, force: bool = False
    ) -> None:
        if cooldown.until == 0.0 or not cooldown.active(self.clock):
            return
        until = cooldown.until
        if not force and self._published.get(("cool", platform, operation), -1) == until:
            return
        ttl = _ttl_ms(until, self.clock.now())
        epoch = self.epoch(platform, operation)
        event = SharedEvent("cool", platform, operation, ttl, cooldown.reason or "", epoch)
        self._send(event, until, force=force)

    def reset(self, pairs: list[Pair], platform_wide: bool) -> None:
        """An operator reset these pairs (and the platform's cool-down when ``platform_wide``)."""
        targets: list[tuple[str, str | None]] = [pair.key for pair in pairs]
        if platform_wide and pairs:
            targets.append((pairs[0].spec.name, None))
        for name, operation in targets:
            epoch = self._epochs[(name, operation)] = next_epoch(self.epoch(name, operation))
            self._send(SharedEvent("reset", name, operation, reason="reset", epoch=epoch))

    def cooldown_cleared(self, platform: str, operation: str | None = None) -> None:
        """A health check ended the platform's cool-down (``operation`` ``None``) or a pair's:
        end it fleet-wide, as a reset with a new epoch so older events lose."""
        key = (platform, operation)
        epoch = self._epochs[key] = next_epoch(self.epoch(platform, operation))
        self._send(SharedEvent("reset", platform, operation, reason="health check", epoch=epoch))

    async def claim_check(self, pair: Pair, seconds: float) -> bool:
        """Whether this process runs the pair's background health check for ``seconds``.

        One process per pair per interval, fleet-wide. A backend without the claim, or one
        that cannot be asked now, leaves the decision local (each process checks at its own
        bounded rate, as it would alone).
        """
        claim = getattr(self.shared, "claim_check", None)
        if claim is None:
            return True
        answer: bool | None = await claim(pair.key, max(math.ceil(seconds * 1000), 1))
        return answer is not False

    def snapshot(self) -> list[SharedEvent]:
        """This process's open pairs and active cool-downs, to push after a (re)connect."""
        with self.lock:
            return self._snapshot()

    def _snapshot(self) -> list[SharedEvent]:
        events: list[SharedEvent] = []
        clock = self.clock
        now = clock.now()
        for name, platform in self.platforms.items():
            if platform.cooldown.active(clock):
                ttl = _ttl_ms(platform.cooldown.until, now)
                reason = platform.cooldown.reason or ""
                events.append(SharedEvent("cool", name, None, ttl, reason, self.epoch(name, None)))
        for pair in self.pairs.values():
            name, operation = pair.key
            epoch = self.epoch(name, operation)
            breaker = pair.breaker
            if breaker.state is BreakerState.OPEN and breaker.open_until > now:
                ttl = _ttl_ms(breaker.open_until, now)
                reason = FORCED if pair.key in self._forced else "open"
                events.append(SharedEvent("open", name, operation, ttl, reason, epoch))
            if pair.cooldown.active(clock):
                ttl = _ttl_ms(pair.cooldown.until, now)
                reason = pair.cooldown.reason or ""
                events.append(SharedEvent("cool", name, operation, ttl, reason, epoch))
        return events

    # -- fleet -> local ------------------------------------------------------------------------

    def apply(self, event: SharedEvent) -> None:
        """Apply a transition another process announced; never re-published."""
        with self.lock:
            self._applying = True
            try:
                self._apply(event)
            finally:
                self._applying = False

    def _deadline(self, ttl_ms: int | None) -> float:
        return math.inf if ttl_ms is None else self.clock.now() + ttl_ms / 1000

    def _newer_epoch(self, event: SharedEvent) -> bool | None:
        """``None``: stale, ignore it; ``True``: an operator acted since (clear first)."""
        key = (event.platform, event.operation)
        known = self._epochs.get(key, 0)
        if event.epoch < known:
            return None
        if event.epoch == known:
            return False
        self._epochs[key] = event.epoch
        return True

    def _apply(self, event: SharedEvent) -> None:
        newer = self._newer_epoch(event)
        if newer is None:
            return
        if event.operation is None:
            self._apply_platform(event, cleared=newer)
            return
        pair = self.pairs.get((event.platform, event.operation))
        if pair is None:
            return
        breaker = pair.breaker
        self._refused_until.pop(pair.key, None)
        if newer or event.kind in ("closed", "reset"):
            self._forced.discard(pair.key)
        if newer:
            breaker.reset()
            pair.cooldown.clear()
            self._published.pop(("open", event.platform, event.operation), None)
            self._published.pop(("cool", event.platform, event.operation), None)
        if event.kind == "open":
            until = self._deadline(event.ttl_ms)
            cause = Cause.FORCED_OPEN if event.reason == FORCED else Cause.REMOTE_OPEN
            if cause is Cause.FORCED_OPEN:
                self._forced.add(pair.key)
            if breaker.open_until_deadline(until, cause):
                self._published[("open", event.platform, event.operation)] = until
        elif event.kind == "closed":
            if breaker.state is not BreakerState.CLOSED:
                breaker.reset()
        elif event.kind == "cool" and event.ttl_ms is not None:
            until = self._deadline(event.ttl_ms)
            if until > self.clock.now() and until > pair.cooldown.until:
                pair.cooldown.set(until, event.reason or "rate_limited")
                self._published[("cool", event.platform, event.operation)] = until

    def _apply_platform(self, event: SharedEvent, *, cleared: bool) -> None:
        platform = self.platforms.get(event.platform)
        if platform is None:
            return
        if cleared:
            platform.cooldown.clear()
            self._published.pop(("cool", event.platform, None), None)
        if event.kind != "cool" or event.ttl_ms is None:
            return
        until = self._deadline(event.ttl_ms)
        if until > self.clock.now() and until > platform.cooldown.until:
            platform.cooldown.set(until, event.reason or "credit")
            self._published[("cool", event.platform, None)] = until
            logger.info(
                "Skipping %s for %.1fs across all operations (%s, reported by another process)",
                event.platform,
                until - self.clock.now(),
                event.reason,
            )

    # -- the fleet-wide probe ------------------------------------------------------------------

    async def acquire_probe(self, pair: Pair, permit: Permit) -> bool:
        """Whether this local probe permit also holds a fleet lease; if not, it is released.

        A cancelled caller gives the permit back too, so no local probe slot leaks (the
        backend makes the lease request itself harmless). While the fleet cannot be asked, a
        process sends at most one probe per pair at a time, whatever ``half_open_max_calls``.
        """
        self._warn_if_not_started()
        key = pair.key
        now = self.clock.now()
        refused_until = self._refused_until.get(key)
        if refused_until is not None and now < refused_until:
            self._release(pair, permit)
            return False
        lease_seconds = max(permit.lease_until - now, 0.001)
        try:
            token = await self.shared.acquire_probe(
                key,
                math.ceil(lease_seconds * 1000),
                pair.breaker.settings.half_open_max_calls,
            )
        except BaseException:
            self._release(pair, permit)
            raise
        if token is None:
            self._refused_until[key] = self.clock.now() + min(lease_seconds, REFUSED_RETRY_SECONDS)
            self._release(pair, permit)
            return False
        self._refused_until.pop(key, None)
        if token:
            with self.lock:
                self._leases[permit] = (key, token)
            return True
        return self._probe_locally(pair, permit)

    def acquire_probe_blocking(self, pair: Pair, permit: Permit) -> bool:
        """:meth:`acquire_probe` for a thread without an event loop (a synchronous caller).

        Asks the fleet through the manager's background loop (``with manager:`` or an
        ``async with`` running elsewhere), waiting at most the backend's command timeout.
        Where that loop is not running, or is this very thread, the fleet cannot be asked
        and the local decision stands, as during an outage.
        """
        host = self.host
        if host is not None and host.can_wait_here():
            try:
                return host.run_coroutine(self.acquire_probe, pair, permit)  # it warns if need be
            except anyio.RunFinishedError:
                pass  # the loop stopped before it ran the request: nothing was taken
        self._warn_if_not_started()
        return self._probe_locally(pair, permit)

    def _warn_if_not_started(self) -> None:
        """Say once that shared state is configured but the manager was never entered."""
        if self._idle_warned or self.host is None or self.host.running:
            return
        self._idle_warned = True
        logger.warning(
            "This manager has shared_state but was not entered (`async with manager:` or "
            "`with manager:`): it is not connected to the fleet and decides on its own state"
        )

    def _probe_locally(self, pair: Pair, permit: Permit) -> bool:
        """The fleet cannot be asked: at most one probe per pair in this process."""
        with self.lock:
            if any(other is not permit for other in pair.breaker.probes):
                pair.breaker.release(permit)
                return False
        return True

    def _release(self, pair: Pair, permit: Permit) -> None:
        with self.lock:
            pair.breaker.release(permit)

    def probe_ended(self, permit: Permit) -> None:
        """The probe holding ``permit`` finished (any outcome): give its fleet lease back."""
        with self.lock:
            lease = self._leases.pop(permit, None)
        if lease is not None:
            self.shared.release_probe(*lease)
