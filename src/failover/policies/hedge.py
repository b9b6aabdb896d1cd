"""Hedging: when a platform is slow to answer, start the next one in parallel.

With ``Policy(hedge=Hedge(delay=...))`` on an operation, the chain starts the first usable
platform; if it has not answered after ``delay`` seconds (or after that platform's observed
p95 with ``delay_from_p95=True``), the next usable platform starts beside it, up to
``max_hedges`` extra platforms. The first success wins; the others are cancelled cleanly:
their breaker permits are given back and nothing is counted against them. A platform that
fails is replaced by the next one at once, as in the plain chain.

Each platform runs as a *lane*: the ordinary chain walk over that one platform (admission,
bulkhead, retries, attempt spans, bookkeeping), so a hedge behaves exactly like a fallback
except for when it starts. Attempt spans of lanes started beside a running one carry
``failover.hedge=true``.

Hedging trades money for latency: a hedged call may be billed by two or more providers.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from failover._core import validate
from failover._core.errors import AllPlatformsFailed, Attempt
from failover._observe.telemetry import current_recording_span

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from failover._core.pair import Pair
    from failover._core.spec import PlatformSpec
    from failover._engine.chain import Chain, Operation, Route


@dataclass(frozen=True, slots=True)
class Hedge:
    """Start up to ``max_hedges`` more platforms when the running one is slower than ``delay``.

    ``delay_from_p95=True`` uses the running platform's observed p95 response time instead,
    once it has ``min_samples`` timed calls (``delay`` until then). Set per operation
    (``operation_policies={"text_generation": Policy(hedge=Hedge(0.8))}``) or for the
    manager; ``max_hedges=0`` switches an inherited hedge off. Off by default.
    """

    delay: float = 1.0
    max_hedges: int = 1
    delay_from_p95: bool = False
    min_samples: int = 20

    def __post_init__(self) -> None:
        # inf is allowed: a hedge that never starts (switched off).
        delay = validate.seconds(
            "delay", self.delay, at_least=0, allow_inf=True, label="Hedge.delay"
        )
        object.__setattr__(self, "delay", delay)
        for name in ("max_hedges", "min_samples"):
            validate.integer(name, getattr(self, name), at_least=0, label=f"Hedge.{name}")
        validate.flag("delay_from_p95", self.delay_from_p95, label="Hedge.delay_from_p95")

    @property
    def enabled(self) -> bool:
        return self.max_hedges > 0 and not math.isinf(self.delay)

    def delay_for(self, pair: Pair) -> float:
        """Seconds to give ``pair`` before hedging it."""
        if self.delay_from_p95:
            stats = pair.stats
            if stats.timed_count >= self.min_samples:
                p95 = stats.p95_response_time
                if p95 is not None:
                    return p95
        return self.delay


#: Hedging switched off (to override an inherited :class:`Hedge`).
NO_HEDGE = Hedge(max_hedges=0)


async def _discard(result: Any) -> None:
    """Close an answer nobody will read (a stream would otherwise hold its connection)."""
    aclose = getattr(result, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        closing = aclose()
        if inspect.isawaitable(closing):
            await closing


def _marked_as_hedge(func: Operation) -> Operation:
    """``func``, marking the attempt span it runs in as a hedge."""

    def hedged(platform: PlatformSpec, *args: Any, **kwargs: Any) -> Any:
        span = current_recording_span()
        if span is not None:
            span.set_attribute("failover.hedge", True)
        return func(platform, *args, **kwargs)

    return hedged


async def hedged_walk(
    chain: Chain,
    hedge: Hedge,
    lanes: Mapping[str, Route],
    order: Sequence[Pair],
    route: Route,
    func: Operation,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    context: Mapping[str, Any] | None,
    tracer: Tracer | None,
    call_span: Span | None,
    attempts: list[Attempt],
) -> tuple[Any, PlatformSpec]:
    """Race the platforms of ``order`` as :class:`Hedge` says; see the module docstring."""
    clock = chain.clock
    settings = chain.settings
    pending = list(order)
    pending.reverse()  # pop() takes the next platform
    hedge_func: Operation | None = None  # made when the first hedge starts
    running = 0
    started_lanes = 0
    hedges = 0
    target = 1  # lanes that should be running: 1 + hedges fired
    last_start = clock.now()
    last_pair: Pair | None = None
    winner: list[tuple[Any, PlatformSpec]] = []
    fatal: list[Exception] = []
    changed = anyio.Event()

    async def lane(pair: Pair, lane_func: Operation) -> None:
        nonlocal running, changed
        try:
            answer = await chain._walk(
                lanes[pair.spec.name],
                lane_func,
                args,
                kwargs,
                context,
                tracer,
                None,
                attempts,
            )
        except AllPlatformsFailed:
            pass  # its attempts are recorded; the coordinator moves on
        except Exception as exc:
            fatal.append(exc)  # the request's own fault: the whole call ends with it
        else:
            if winner:
                # Another lane answered in the same instant: nobody will read this answer
                # (unless both lanes handed back one shared object).
                if answer[0] is not winner[0][0]:
                    await _discard(answer[0])
            else:
                winner.append(answer)
        finally:
            running -= 1
            changed.set()

    def next_usable() -> Pair | None:
        while pending:
            pair = pending.pop()
            skip = pair.unavailable_reason(clock)
            if skip is None:
                return pair
            chain._skipped(pair, skip, attempts, call_span)
        return None

    async with anyio.create_task_group() as lanes_group:
        while not winner and not fatal:
            while running < target and started_lanes < settings.max_attempts:
                if started_lanes and not settings.fallback_enabled:
                    break
                pair = next_usable()
                if pair is None:
                    break
                lane_func = func
                if running:  # started beside a running lane: a hedge
                    if hedge_func is None:
                        hedge_func = _marked_as_hedge(func)
                    lane_func = hedge_func
                running += 1
                started_lanes += 1
                last_start, last_pair = clock.now(), pair
                lanes_group.start_soon(lane, pair, lane_func)
            if running == 0:
                break
            changed = anyio.Event()
            can_hedge = (
                hedges < hedge.max_hedges
                and bool(pending)
                and started_lanes < settings.max_attempts
                and settings.fallback_enabled
                and last_pair is not None
            )
            if not can_hedge:
                await changed.wait()
                continue
            assert last_pair is not None
            remaining = last_start + hedge.delay_for(last_pair) - clock.now()
            with clock.cancel_scope(max(remaining, 0.0)):
                await changed.wait()
            if not changed.is_set():
                hedges += 1
                target += 1
        lanes_group.cancel_scope.cancel()

    if call_span is not None:
        call_span.set_attribute("failover.hedges", hedges)
    # An answer that arrived with a request fault of another lane still answers the call.
    if fatal and not winner:
        raise fatal[0]
    tried = sum(1 for attempt in attempts if attempt.outcome != "skipped")
    if winner:
        result, spec = winner[0]
        if call_span is not None:
            passed = {attempt.platform for attempt in attempts if attempt.platform != spec.name}
            call_span.set_attributes(
                {
                    "failover.platform": spec.name,
                    "failover.attempts": tried,
                    "failover.fallbacks": len(passed),
                }
            )
        return result, spec
    if not started_lanes and route.last_resort is not None:
        return await route.last_resort.run(
            chain, route, order, func, args, kwargs, tracer, call_span, attempts
        )
    if call_span is not None:
        call_span.set_attribute("failover.attempts", tried)
    reason = None
    if not route.pairs:
        reason = "no platforms configured"
    elif started_lanes >= settings.max_attempts and pending:
        reason = f"max_attempts={settings.max_attempts} reached"
    raise AllPlatformsFailed(route.operation, attempts, reason=reason)
