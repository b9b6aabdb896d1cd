"""Bulkheads: a cap on concurrent attempts per platform (or per pair), with an optional wait.

A call that cannot get a slot within ``max_wait`` is not a failure of the platform: the chain
skips it with reason ``bulkhead_full`` and moves on to the next one, and the breaker counts
nothing. The slot is held only while an attempt runs (not during retry waits), so a slow
platform cannot hold capacity it is not using.

:class:`Limiter` is the state behind a :class:`Bulkhead` value: a counter and a FIFO of
waiters, no lock (one event loop thread owns it). A freed slot is handed straight to the
oldest waiter, so a newcomer cannot barge ahead of a queued call. A waiter is anything with
``set()`` (the async driver queues an ``anyio.Event``): waiting itself is the driver's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from failover._core import validate
from failover.policies.base import PairView, Strategy


class Waiter(Protocol):
    """A queued attempt: ``set()`` hands it the slot a finished attempt released."""

    def set(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Bulkhead:
    """At most ``max_concurrent`` attempts at once; wait up to ``max_wait`` seconds for a slot.

    ``per="platform"`` (default) shares one limit across every operation of a platform;
    ``per="pair"`` gives each (platform, operation) its own. Set it in a
    :class:`~failover.Policy` at any level; at manager level every platform gets its own
    limit of that size. ``max_wait=0`` never waits: a full platform is skipped at once.
    """

    max_concurrent: int
    max_wait: float = 0.0
    per: Literal["platform", "pair"] = "platform"

    def __post_init__(self) -> None:
        validate.integer(
            "max_concurrent", self.max_concurrent, at_least=1, label="Bulkhead.max_concurrent"
        )
        wait = validate.seconds(
            "max_wait",
            self.max_wait,
            at_least=0,
            allow_inf=True,
            label="Bulkhead.max_wait",
            hint=" (math.inf: wait as long as it takes)",
        )
        object.__setattr__(self, "max_wait", wait)
        validate.one_of("per", self.per, ("platform", "pair"), label="Bulkhead.per")


#: No bulkhead (to override an inherited :class:`Bulkhead`).
NO_BULKHEAD = Bulkhead(max_concurrent=2**31 - 1)


class Limiter:
    """The slots of one bulkhead. ``acquire`` then exactly one ``release`` per attempt."""

    __slots__ = ("_waiters", "bulkhead", "in_use", "limit", "max_wait", "name", "peak")

    def __init__(self, bulkhead: Bulkhead, name: str) -> None:
        self.bulkhead = bulkhead
        self.name = name
        self.limit = bulkhead.max_concurrent
        self.max_wait = bulkhead.max_wait
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for it."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            if self.in_use > self.peak:
                self.peak = self.in_use
            return True
        return False

    def enqueue(self, waiter: Waiter) -> None:
        """Queue ``waiter`` for the next free slot (after :meth:`try_acquire` failed)."""
        self._waiters.append(waiter)

    def leave(self, waiter: Waiter, handed: bool) -> None:
        """``waiter`` stops waiting (timed out or cancelled): out of the queue, or, if a slot
        was ``handed`` to it meanwhile, that slot is passed on."""
        if handed:
            self.release()
        else:
            self._waiters.remove(waiter)

    def release(self) -> None:
        """Give a slot back, straight to the oldest waiter if there is one."""
        if self._waiters:
            self._waiters.popleft().set()
            return
        self.in_use -= 1


def build_limiters(pairs: Iterable[PairView]) -> dict[tuple[str, str], Limiter]:
    """One :class:`Limiter` per bulkhead: per platform (shared across its operations when
    they resolve to the same :class:`Bulkhead`) or per pair."""
    shared: dict[tuple[Bulkhead, str], Limiter] = {}
    limiters: dict[tuple[str, str], Limiter] = {}
    for pair in pairs:
        bulkhead = pair.policy.bulkhead
        if bulkhead is None:
            continue
        name = pair.spec.name
        if bulkhead.per == "pair":
            limiters[pair.key] = Limiter(bulkhead, f"{name}:{pair.operation}")
            continue
        limiter = shared.get((bulkhead, name))
        if limiter is None:
            limiter = shared[(bulkhead, name)] = Limiter(bulkhead, name)
        limiters[pair.key] = limiter
    return limiters


class BulkheadStrategy(Strategy):
    """The ``slot`` hook: the limiter each pair of one operation must hold per attempt."""

    __slots__ = ("limiters",)

    name = "bulkhead"

    def __init__(self, limiters: Mapping[tuple[str, str], Limiter]) -> None:
        self.limiters = dict(limiters)

    def slot(self, pair: PairView) -> Limiter | None:
        return self.limiters.get(pair.key)
