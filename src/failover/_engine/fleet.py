"""The seam between one process's breakers and a fleet-wide shared state (DESIGN §6).

Admission stays local: no shared-state round trip on a successful call. What crosses the seam:

- local transitions worth telling the fleet (a pair opened or closed, a platform or pair
  cooling down, an operator's reset), handed to :meth:`SharedState.publish` without waiting;
- remote transitions, applied by :meth:`FleetLink.apply` to the local breakers and cool-downs
  without being published again (no echo);
- the half-open probe, which must also win a fleet-wide lease before it goes out.

:class:`SharedState` is what a backend implements (``failover.redis.RedisSharedState``);
:class:`FleetLink` is the engine's side, owned by the manager, so the core never imports a
Redis client. Deadlines cross processes as wall-clock epoch milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from failover._core.breaker import BreakerState, Permit
from failover._core.kinds import Cause
from failover._observe.scrub import get_logger

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._core.pair import Cooldown, PlatformState
    from failover._engine.route import Pair

logger = get_logger("failover.redis")

EventKind = Literal["open", "closed", "cool", "reset"]
EVENT_KINDS: Final[frozenset[str]] = frozenset({"open", "closed", "cool", "reset"})


#: How long a process stops asking for a probe lease another process holds (seconds, capped
#: by the lease itself); the holder's outcome usually arrives sooner over pub/sub.
REFUSED_RETRY_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class SharedEvent:
    """One fleet-wide fact.

    ``open``: the pair is open until ``until_ms`` (``None``: isolated until reset).
    ``closed``: the pair closed (a probe succeeded, or it was forced closed).
    ``cool``: the platform (``operation is None``) or the pair is skipped until ``until_ms``.
    ``reset``: an operator cleared the pair (or the platform's cool-down when ``operation`` is
    ``None``).
    """

    kind: EventKind
    platform: str
    operation: str | None
    until_ms: int | None = None
    reason: str = ""


@runtime_checkable
class SharedState(Protocol):
    """What a fleet backend provides. Methods other than :meth:`run` never raise on outage."""

    async def run(
        self, link: FleetLink, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
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
        asked (outage: the local decision stands), or ``None`` when every slot is held.
        """
        ...

    def release_probe(self, pair_key: tuple[str, str], token: str) -> None:
        """Give a lease back (queued like :meth:`publish`)."""
        ...

    async def stop(self, timeout: float) -> None:
        """Flush queued writes (waiting up to ``timeout`` seconds), then make :meth:`run` return."""
        ...


class FleetLink:
    """The manager's side of the seam: publishes local transitions, applies remote ones."""

    __slots__ = (
        "_applying",
        "_leases",
        "_published",
        "_refused_until",
        "clock",
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
    ) -> None:
        self.shared = shared
        self.pairs = pairs
        self.platforms = platforms
        self.clock = clock
        self._applying = False
        self._leases: dict[Permit, tuple[tuple[str, str], str]] = {}
        self._refused_until: dict[tuple[str, str], float] = {}
        # What was last said per (kind, platform, operation), so repeats are not re-sent.
        self._published: dict[tuple[str, str, str | None], int | None] = {}

    # -- time ----------------------------------------------------------------------------------

    def wall_ms(self, monotonic: float | None = None) -> int:
        """``monotonic`` (default: now) on the manager's clock as epoch milliseconds."""
        clock = self.clock
        wall = clock.wall()
        if monotonic is not None:
            wall += monotonic - clock.now()
        return int(wall * 1000)

    def _local_deadline(self, until_ms: int) -> float:
        clock = self.clock
        return clock.now() + (until_ms / 1000 - clock.wall())

    # -- local -> fleet ------------------------------------------------------------------------

    def _send(self, event: SharedEvent) -> None:
        key = (event.kind, event.platform, event.operation)
        if event.kind in ("open", "cool") and self._published.get(key, -1) == event.until_ms:
            return
        self._published[key] = event.until_ms
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
            self._send(SharedEvent("closed", pair.spec.name, pair.operation, reason=reason))

    def pair_opened(self, pair: Pair) -> None:
        """Tell the fleet the pair is open until its current deadline."""
        if self._applying:
            return
        until = pair.breaker.open_until
        until_ms = None if math.isinf(until) else self.wall_ms(until)
        self._send(SharedEvent("open", pair.spec.name, pair.operation, until_ms, "open"))

    def after_failure(self, pair: Pair, permit: Permit | None) -> None:
        """After the chain applied a failure: end a probe's lease, announce new cool-downs."""
        if permit is not None and permit.is_probe:
            self.probe_ended(permit)
        if self._applying:
            return
        self._announce_cooldown(pair.spec.name, None, pair.platform.cooldown)
        self._announce_cooldown(pair.spec.name, pair.operation, pair.cooldown)

    def _announce_cooldown(self, platform: str, operation: str | None, cooldown: Cooldown) -> None:
        if cooldown.until == 0.0 or not cooldown.active(self.clock):
            return
        until_ms = self.wall_ms(cooldown.until)
        if self._published.get(("cool", platform, operation), -1) == until_ms:
            return
        self._send(SharedEvent("cool", platform, operation, until_ms, cooldown.reason or ""))

    def reset(self, pairs: list[Pair], platform_wide: bool) -> None:
        """An operator reset these pairs (and the platform's cool-down when ``platform_wide``)."""
        for pair in pairs:
            self._send(SharedEvent("reset", pair.spec.name, pair.operation, reason="reset"))
        if platform_wide and pairs:
            self._send(SharedEvent("reset", pairs[0].spec.name, None, reason="reset"))

    def snapshot(self) -> list[SharedEvent]:
        """This process's open pairs and active cool-downs, to push after a (re)connect."""
        events: list[SharedEvent] = []
        clock = self.clock
        for name, platform in self.platforms.items():
            if platform.cooldown.active(clock):
                until = self.wall_ms(platform.cooldown.until)
                events.append(
                    SharedEvent("cool", name, None, until, platform.cooldown.reason or "")
                )
        for pair in self.pairs.values():
            breaker = pair.breaker
            if breaker.state is BreakerState.OPEN and breaker.open_until > clock.now():
                until_ms = (
                    None if math.isinf(breaker.open_until) else self.wall_ms(breaker.open_until)
                )
                events.append(SharedEvent("open", pair.spec.name, pair.operation, until_ms, "open"))
            if pair.cooldown.active(clock):
                until = self.wall_ms(pair.cooldown.until)
                events.append(
                    SharedEvent(
                        "cool", pair.spec.name, pair.operation, until, pair.cooldown.reason or ""
                    )
                )
        return events

    # -- fleet -> local ------------------------------------------------------------------------

    def apply(self, event: SharedEvent) -> None:
        """Apply a transition another process announced; never re-published."""
        self._applying = True
        try:
            self._apply(event)
        finally:
            self._applying = False

    def _apply(self, event: SharedEvent) -> None:
        clock = self.clock
        if event.operation is None:
            platform = self.platforms.get(event.platform)
            if platform is None:
                return
            if event.kind == "cool" and event.until_ms is not None:
                until = self._local_deadline(event.until_ms)
                if until > clock.now() and until > platform.cooldown.until:
                    platform.cooldown.set(until, event.reason or "credit")
                    self._published[("cool", event.platform, None)] = event.until_ms
                    logger.info(
                        "Skipping %s for %.1fs across all operations (%s, reported by another "
                        "process)",
                        event.platform,
                        until - clock.now(),
                        event.reason,
                    )
            elif event.kind == "reset":
                platform.cooldown.clear()
            return
        pair = self.pairs.get((event.platform, event.operation))
        if pair is None:
            return
        breaker = pair.breaker
        self._refused_until.pop(pair.key, None)
        if event.kind == "open":
            until = math.inf if event.until_ms is None else self._local_deadline(event.until_ms)
            if not breaker.open_until_deadline(until, Cause.REMOTE_OPEN):
                return
            self._published[("open", event.platform, event.operation)] = event.until_ms
        elif event.kind == "closed":
            if breaker.state is not BreakerState.CLOSED:
                breaker.reset()
        elif event.kind == "cool" and event.until_ms is not None:
            until = self._local_deadline(event.until_ms)
            if until > clock.now() and until > pair.cooldown.until:
                pair.cooldown.set(until, event.reason or "rate_limited")
                self._published[("cool", event.platform, event.operation)] = event.until_ms
        elif event.kind == "reset":
            breaker.reset()
            pair.cooldown.clear()

    # -- the fleet-wide probe ------------------------------------------------------------------

    async def acquire_probe(self, pair: Pair, permit: Permit) -> bool:
        """Whether this local probe permit also holds a fleet lease; if not, it is released.

        A cancelled caller gives the permit back too, so no local probe slot leaks.
        """
        key = pair.key
        now = self.clock.now()
        refused_until = self._refused_until.get(key)
        if refused_until is not None and now < refused_until:
            pair.breaker.release(permit)
            return False
        lease_seconds = max(permit.lease_until - now, 0.001)
        try:
            token = await self.shared.acquire_probe(
                key,
                math.ceil(lease_seconds * 1000),
                pair.breaker.settings.half_open_max_calls,
            )
        except BaseException:
            pair.breaker.release(permit)
            raise
        if token is None:
            self._refused_until[key] = self.clock.now() + min(lease_seconds, REFUSED_RETRY_SECONDS)
            pair.breaker.release(permit)
            return False
        self._refused_until.pop(key, None)
        if token:
            self._leases[permit] = (key, token)
        return True

    def probe_ended(self, permit: Permit) -> None:
        """The probe holding ``permit`` finished (any outcome): give its fleet lease back."""
        lease = self._leases.pop(permit, None)
        if lease is not None:
            self.shared.release_probe(*lease)
