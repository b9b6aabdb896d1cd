"""The ``pybreaker.CircuitBreaker`` that mirrors a pair's breaker, built on first use.

Kept apart from :mod:`failover._core.breaker` so that ``import failover`` does not import pybreaker:
a pair creates its mirror only when someone asks for ``manager.breaker(...)``, and the mirror
then catches up with the pair's current state and failure count (:meth:`catch_up`).
"""

from __future__ import annotations

from typing import Any, Final

import pybreaker

from failover._core.breaker import BreakerState, PairBreaker

_PYBREAKER_STATE: Final = {
    "closed": BreakerState.CLOSED,
    "open": BreakerState.OPEN,
    "half-open": BreakerState.HALF_OPEN,
}


class PybreakerMirror(pybreaker.CircuitBreakerListener):
    """Keeps a ``pybreaker.CircuitBreaker`` in step with a :class:`PairBreaker`, both ways.

    Our transitions are replayed on the pybreaker object (so its listeners fire and
    ``current_state`` reads right); a user's ``cb.open()``, ``cb.close()`` or
    ``cb.half_open()`` is applied to the pair breaker.
    """

    def __init__(self, machine: PairBreaker, name: str) -> None:
        self.machine = machine
        self.applying = False
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=machine.settings.failure_threshold,
            reset_timeout=machine.settings.reset_timeout,
            success_threshold=machine.settings.success_threshold,
            name=name,
            listeners=[self],
        )

    def replay(self, new: BreakerState) -> None:
        """Apply a transition of the pair breaker to the pybreaker object."""
        if self.applying or _PYBREAKER_STATE.get(self.breaker.current_state) is new:
            return  # already there, or on its way (the user drove pybreaker and we follow)
        self.applying = True
        try:
            if new is BreakerState.OPEN:
                self.breaker.open()
            elif new is BreakerState.HALF_OPEN:
                self.breaker.half_open()
            else:
                self.breaker.close()
        finally:
            self.applying = False

    def catch_up(self) -> None:
        """Bring a new mirror to the pair breaker's current state and failure count.

        Replays the transitions an always-present mirror would have seen (a half-open pair
        passes through open), without notifying anyone: no listener is attached yet.
        """
        state = self.machine.state
        if state is not BreakerState.CLOSED:
            self.replay(BreakerState.OPEN)
            if state is BreakerState.HALF_OPEN:
                self.replay(BreakerState.HALF_OPEN)
        self.sync_failures()

    def sync_failures(self) -> None:
        """Mirror the consecutive-failure count (``cb.fail_counter``); off the happy path."""
        storage = self.breaker._state_storage
        target = self.machine.consecutive_failures
        if target == 0:
            storage.reset_counter()
        else:
            while storage.counter < target:
                storage.increment_counter()

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if self.applying:
            return
        wanted = _PYBREAKER_STATE.get(getattr(new_state, "name", ""))
        # pybreaker notifies before it stores the new state, so replaying our resulting
        # transition now would open/close it a second time and notify listeners twice.
        self.applying = True
        try:
            if wanted is BreakerState.OPEN:
                self.machine.force_open()
            elif wanted is BreakerState.HALF_OPEN:
                self.machine.force_half_open()
            elif wanted is BreakerState.CLOSED:
                self.machine.reset()
        finally:
            self.applying = False
