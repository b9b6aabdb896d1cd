"""Background health checks (opt-in): learn of an outage, or of a recovery, without spending a
user's request.

A low-traffic operation (video generation, a request an hour) learns that its provider is
down only when a user's request fails, and that it is back only when a user's request is sent
as the half-open probe. With :class:`HealthChecks`, the manager checks such pairs itself: a
pair that is **open**, whose platform is **cooling down for a rejected key**, or (with
``idle_after``) that has seen **no traffic** for a while, is checked with the platform's check
function, at most once per ``interval`` and at most ``max_concurrent`` at a time.

- A check that passes closes an open or half-open pair (cause ``health check passed``) and ends
  an ``auth`` cool-down of its platform. It never ends a credit or rate-limit cool-down: those
  are the provider's own statement (out of credits, retry after N seconds) and a cheap check
  cannot prove them over; a check that spent would spend the budget being waited for.
- A check that fails has the consequences of a failed attempt on the breaker and cool-downs
  (a half-open pair opens again, a closed one counts a failure, a credit or auth error cools
  the platform), and none on health counters or metrics: a check is not a request.
- A pair opened or closed by an operator (``force_open``, ``isolate``, ``force_closed``) is
  left alone until it is reset.
- With shared state, one process per pair per ``interval`` runs the check (a claim in the
  backend); its outcome reaches the others as any transition does.

Checks run as a background service of the manager (:mod:`failover._engine.background`):
while it is entered with ``async with`` (asyncio or trio) or ``with`` (a thread of its own),
and they stop with it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import anyio

from failover._core import validate
from failover._core.breaker import BreakerState, Transition
from failover._core.classify import Classification, ErrorKind, classify
from failover._core.errors import CheckInconclusive, Transient
from failover._core.kinds import Cause, SkipReason
from failover._core.spec import PlatformSpec
from failover._observe.scrub import get_logger
from failover._observe.telemetry import current_recording_span, use_span

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from failover._engine.book import Book
    from failover._engine.route import Pair

logger = get_logger("failover")

#: A platform's check: called with the pair's :class:`PlatformSpec`; a plain function runs in a
#: worker thread, a coroutine function on the event loop. It passes by returning, fails by
#: raising (classified like an attempt's error) or by returning an object whose ``ok`` is
#: false; a returned object's ``raise_for_problem()`` is called when it has one (the HTTP
#: adapters' ``check`` results). Raising :class:`CheckInconclusive` changes nothing.
Check = Callable[[PlatformSpec], Any]

#: The classification of a check that did not answer within ``timeout``.
TIMED_OUT: Final = Classification(ErrorKind.TRANSIENT, "health_check_timeout")
#: The cool-downs a passing check may end (``HealthChecks.cooldowns``).
_COOLDOWNS: Final = (SkipReason.AUTH.value, SkipReason.CREDIT.value, SkipReason.RATE_LIMITED.value)
#: A check that raised :class:`CheckInconclusive`: no verdict, nothing changes.
INCONCLUSIVE: Final = Classification(ErrorKind.REQUEST, "inconclusive")


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """Opt-in background health checks (see ``docs/concepts.md``, "Health checks").

    ``checks`` maps a platform name to its check (every operation of the platform uses it);
    :meth:`PlatformManager.set_health_check` adds one later (an HTTP adapter's ``check``,
    made after the manager).
    ``interval``: a pair is checked at most once per interval (fleet-wide with shared state).
    ``idle_after``: also check closed pairs that saw no request (and no check) for this many
    seconds; ``None`` checks only open and key-rejected pairs. ``timeout``: a check's own
    time limit. ``max_concurrent``: checks in flight at once, per manager. ``cooldowns``: the
    cool-downs a passing check may end (``"auth"``, ``"credit"``, ``"rate_limited"``; default
    ``auth`` only: a cheap check proves a key, not that credits are back or a rate window
    passed; add the others for a check that proves them, such as a tiny generation).
    """

    checks: Mapping[str, Check] = field(default_factory=dict)
    interval: float = 30.0
    idle_after: float | None = None
    timeout: float = 10.0
    max_concurrent: int = 1
    cooldowns: Collection[str] = ("auth",)

    def __post_init__(self) -> None:
        given = validate.mapping(
            "health_checks.checks", self.checks, of=" of platform name -> check function"
        )
        checks: dict[str, Check] = {}
        for name, check in given.items():
            validate.name("health_checks.checks", name, label="a platform name in checks")
            checks[name] = validate.callable_(
                "health_checks.checks", check, label=f"health_checks.checks[{name!r}]"
            )
        object.__setattr__(self, "checks", checks)  # the validated copy
        validate.seconds("health_checks.interval", self.interval, above=0)
        if self.idle_after is not None:
            validate.seconds("health_checks.idle_after", self.idle_after, above=0)
        validate.seconds("health_checks.timeout", self.timeout, above=0)
        validate.integer("health_checks.max_concurrent", self.max_concurrent, at_least=1)
        reasons = validate.strings("health_checks.cooldowns", self.cooldowns)
        for reason in reasons:
            validate.one_of("health_checks.cooldowns", reason, _COOLDOWNS)
        object.__setattr__(self, "cooldowns", frozenset(reasons))


class CheckRecord(NamedTuple):
    """The last check of one pair (monotonic clock readings)."""

    at: float
    ok: bool | None = None  #: ``None`` while running, or when another process ran it
    error: str | None = None  #: the failed check's error kind (or ``health_check_timeout``)


class Checker:
    """Runs a manager's health checks (a background service)."""

    def __init__(self, settings: HealthChecks, pairs: Mapping[tuple[str, str], Pair], book: Book):
        self.settings = settings
        self.book = book
        self.clock = book.clock
        self.all_pairs = list(pairs.values())
        self.checks: dict[str, Check] = dict(settings.checks)
        self.pairs = [pair for pair in self.all_pairs if pair.spec.name in self.checks]
        self.records: dict[tuple[str, str], CheckRecord] = {}
        #: Pairs an operator opened or closed (left alone until reset).
        self.by_hand: set[tuple[str, str]] = set()
        self._started_at = 0.0

    def set_check(self, platform: str, check: Check | None) -> None:
        """Check ``platform`` with ``check`` from now on (``None``: stop checking it)."""
        checks = dict(self.checks)
        if check is None:
            checks.pop(platform, None)
        else:
            checks[platform] = validate.callable_(
                "check", check, label=f"the health check of {platform!r}"
            )
        self.checks = checks
        self.pairs = [pair for pair in self.all_pairs if pair.spec.name in self.checks]

    @property
    def tick(self) -> float:
        """How often to look for pairs due (a quarter of the shortest period, 0.05-5 s)."""
        shortest = min(self.settings.interval, self.settings.idle_after or math.inf)
        return min(max(shortest / 4, 0.05), 5.0)

    def on_transition(self, pair: Pair, change: Transition) -> None:
        """Told of every transition: remember which pairs an operator holds."""
        if change.cause.by_hand and change.cause is not Cause.RESET:
            self.by_hand.add(pair.key)
        else:
            self.by_hand.discard(pair.key)

    # -- which pairs -----------------------------------------------------------------------------

    def due(self, now: float) -> list[tuple[Pair, str]]:
        """Pairs to check now and why (``open``, ``auth``, ``idle``), least recently first.

        A pair is due once ``interval`` (``idle_after`` for an idle one) has passed since its
        last check or request: a pair a user's request just found failing needs no check yet.
        """
        found: list[tuple[float, Pair, str]] = []
        for pair in self.pairs:
            if pair.key in self.by_hand or not pair.key_present():
                continue
            record = self.records.get(pair.key)
            stats = pair.stats
            active = max(
                self._started_at if record is None else record.at,
                stats.last_success or -math.inf,
                stats.last_failure or -math.inf,
            )
            why = self._why(pair, now - active)
            if why is not None:
                found.append((active, pair, why))
        found.sort(key=lambda item: item[0])
        return [(pair, why) for _, pair, why in found]

    def _why(self, pair: Pair, quiet: float) -> str | None:
        """Why ``pair``, quiet for ``quiet`` seconds, is due for a check (``None``: it isn't)."""
        settings = self.settings
        breaker = pair.breaker
        if breaker.state is BreakerState.OPEN and not math.isinf(breaker.open_until):
            return "open" if quiet >= settings.interval else None
        for cooldown in (pair.platform.cooldown, pair.cooldown):
            if cooldown.active(self.clock):
                # Cooling for a reason a check may end: due, named after it; else not.
                reason = cooldown.reason
                due = reason in settings.cooldowns and quiet >= settings.interval
                return reason if due else None
        idle_after = settings.idle_after
        if idle_after is None or quiet < idle_after:
            return None
        return "idle" if breaker.state is BreakerState.CLOSED else None

    # -- the service ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Look for pairs due every :attr:`tick`; check them, ``max_concurrent`` at a time."""
        self._started_at = self.clock.now()
        slots = anyio.Semaphore(self.settings.max_concurrent)
        task_status.started()
        async with anyio.create_task_group() as tasks:
            while True:
                with self.book.lock:
                    due = self.due(self.clock.now())
                    for pair, _ in due:
                        self.records[pair.key] = CheckRecord(self.clock.now())
                for pair, why in due:
                    await slots.acquire()
                    tasks.start_soon(self._check_and_release, pair, why, slots)
                await self.clock.sleep(self.tick)

    async def _check_and_release(self, pair: Pair, why: str, slots: anyio.Semaphore) -> None:
        try:
            await self.check(pair, why)
        except Exception:  # never take the manager's other background services down
            logger.exception("Health check of %s for %s could not be run", *pair.key)
        finally:
            slots.release()

    async def check(self, pair: Pair, why: str) -> bool | None:
        """Check one pair now; ``True``/``False`` for its outcome, ``None`` when there is none
        (another process holds the claim, or the check was inconclusive)."""
        fleet = self.book.fleet
        if fleet is not None and not await fleet.claim_check(pair, self.settings.interval):
            logger.debug("Health check of %s/%s runs in another process", *pair.key)
            return None
        check = self.checks.get(pair.spec.name)
        if check is None:
            return None  # removed since it was found due
        telemetry = self.book.telemetry
        tracer = telemetry.tracer()
        operation = pair.operation
        span = None if tracer is None else telemetry.start_check(tracer, pair.spec, operation, why)
        with nullcontext() if span is None else use_span(span, end_on_exit=True):
            verdict = await self._run_check(check, pair)
            passed = None if verdict is INCONCLUSIVE else verdict is None
            with self.book.lock:
                error = None if verdict is None else verdict.reason or verdict.label
                self.records[pair.key] = CheckRecord(self.clock.now(), passed, error)
                if verdict is None:
                    self._passed(pair, why)
                elif verdict.kind not in (ErrorKind.CALLER_BUG, ErrorKind.REQUEST):
                    self._failed(pair, why, verdict)
                elif verdict is not INCONCLUSIVE and verdict.kind is ErrorKind.REQUEST:
                    logger.warning(
                        "Health check of %s for %s was refused as a bad request (%s): the "
                        "check itself needs fixing",
                        pair.spec.name,
                        pair.operation,
                        verdict.reason or verdict.label,
                    )
            if span is not None:
                outcome = {True: "passed", False: "failed", None: "inconclusive"}[passed]
                span.set_attribute("failover.check.outcome", outcome)
        return passed

    async def _run_check(self, check: Check, pair: Pair) -> Classification | None:
        """Run ``check`` within the timeout: ``None`` when it passed, else its verdict."""
        verdict: Classification | None = None
        with self.clock.cancel_scope(self.settings.timeout) as scope:
            try:
                _raise_if_failed(await _run(check, pair.spec))
            except CheckInconclusive:
                logger.debug("Health check of %s for %s was inconclusive", *pair.key)
                return INCONCLUSIVE
            except Exception as exc:
                verdict = classify(exc, pair.classifiers)
                span = current_recording_span()
                if span is not None:
                    self.book.telemetry.fail_span(span, exc, type(exc).__name__, verdict.label)
                if verdict.kind is ErrorKind.CALLER_BUG:
                    logger.error(
                        "Health check of %s for %s raised %s: a bug in the check, not the "
                        "platform's failure (nothing changed)",
                        pair.spec.name,
                        pair.operation,
                        type(exc).__name__,
                    )
        if scope.cancelled_caught:
            verdict = TIMED_OUT
            span = current_recording_span()
            if span is not None:
                span.set_attribute("failover.error.kind", TIMED_OUT.label)
        return verdict

    def _passed(self, pair: Pair, why: str) -> None:
        name = pair.spec.name
        if pair.key not in self.by_hand:
            pair.breaker.check_passed()  # logged by the manager's transition listener
        fleet = self.book.fleet
        for cooldown, operation in (
            (pair.platform.cooldown, None),
            (pair.cooldown, pair.operation),
        ):
            reason = cooldown.reason
            if reason in self.settings.cooldowns and cooldown.active(self.clock):
                cooldown.clear()
                logger.info(
                    "%s's %s cool-down%s ended by a passing health check: using it again",
                    name,
                    reason,
                    "" if operation is None else f" for {operation}",
                )
                if fleet is not None:
                    fleet.cooldown_cleared(name, operation)
        logger.debug("Health check of %s for %s passed (%s)", name, pair.operation, why)

    def _failed(self, pair: Pair, why: str, verdict: Classification) -> None:
        self.book.check_failed(pair, verdict)
        logger.info(
            "Health check of %s for %s failed (%s; checked because %s)",
            pair.spec.name,
            pair.operation,
            verdict.label,
            why,
        )

    # -- health -------------------------------------------------------------------------------

    def health(self, key: tuple[str, str]) -> tuple[float | None, bool | None, str | None]:
        """``(last check time, passed, error kind)`` of a pair (``None``s before any)."""
        record = self.records.get(key)
        if record is None:
            return None, None, None
        return record.at, record.ok, record.error


async def _run(check: Check, spec: PlatformSpec) -> Any:
    """Run a check: a coroutine function on the loop, a plain function in a worker thread
    (its result awaited if it returned an awaitable)."""
    if inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
        getattr(check, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return await check(spec)
    result = await anyio.to_thread.run_sync(partial(check, spec), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        return await _awaited(result)
    return result


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _raise_if_failed(result: Any) -> None:
    """Raise when a check's return value says it failed."""
    raise_for_problem = getattr(result, "raise_for_problem", None)
    if callable(raise_for_problem):
        raise_for_problem()  # it says what the problem is, or that there is none
        return
    if result is False or getattr(result, "ok", True) is False:
        raise Transient("the health check reported a problem")
