"""What to tell a caller when every platform of an operation is unavailable.

"Unavailable" covers different situations a person fixes differently: no key is set (export
one), every breaker is open or cooling down (wait, and for how long), every platform that could
recover already has a probe out (retry in a moment), every pair is isolated (an operator must
reset one). :func:`describe` says which, naming the variables to set and the platform that
becomes usable next. Synchronous and clock-driven, like the last resort's selection it reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from failover.policies.last_resort import by_recovery

if TYPE_CHECKING:
    from failover._core.clock import Clock
    from failover._engine.route import Pair


def describe(pairs: Sequence[Pair], clock: Clock) -> str | None:
    """Why none of ``pairs`` is usable now, or ``None`` if one is (or there are none)."""
    if not pairs or any(pair.unavailable_reason(clock) is None for pair in pairs):
        return None
    keyless = [pair for pair in pairs if not pair.key_present()]
    variables = list(dict.fromkeys(pair.spec.api_key_env or "" for pair in keyless))
    if len(keyless) == len(pairs):
        return f"no platform has its API key: set {_either(variables)}"
    now = clock.now()
    candidates = by_recovery(pairs, now)
    if not candidates:
        situation = "every platform unavailable; each is isolated until reset"
    else:
        soonest = candidates[0]
        name, reason = soonest.pair.spec.name, soonest.reason
        wait = max(soonest.usable_at - now, 0.0)
        if all(candidate.probing for candidate in candidates):
            situation = (
                "every platform unavailable and each that can recover has a probe out; "
                f"if none succeeds, the next usable is {name} ({reason}) in {wait:.1f}s"
            )
        else:
            situation = (
                f"every platform unavailable; the next usable is {name} ({reason}) in {wait:.1f}s"
            )
    if keyless:
        names = ", ".join(dict.fromkeys(pair.spec.name for pair in keyless))
        situation += f"; set {_either(variables)} to use {names} too"
    return situation


def _either(variables: Sequence[str]) -> str:
    if len(variables) == 1:
        return variables[0]
    return f"{', '.join(variables[:-1])} or {variables[-1]}"
