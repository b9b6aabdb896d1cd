"""Breaker settings per operation or platform: :class:`BreakerPolicy`.

The manager's keywords (``failure_threshold``, ``failure_rate_threshold``, ``minimum_calls``,
``window_seconds``, ``slow_call_seconds``, ``slow_call_rate_threshold``) set every pair's
breaker; a ``BreakerPolicy`` in ``Policy(breaker=...)`` changes some of them for the pairs of
one operation (``operation_policies``) or one platform (``platform_policies``). Fields left
``None`` inherit, field by field, platform over operation over manager.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from failover._core import validate

#: The fields a breaker policy may set, as ``BreakerSettings`` names them.
BREAKER_FIELDS = (
    "failure_threshold",
    "failure_rate_threshold",
    "minimum_calls",
    "window_seconds",
    "slow_call_seconds",
    "slow_call_rate_threshold",
)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Breaker settings for some pairs; ``None`` means "inherit".

    Each value is checked here on its own; whether they make sense together (a slow-call
    rate needs ``slow_call_seconds``) is checked once the levels are merged for a pair.
    """

    failure_threshold: int | None = None
    failure_rate_threshold: float | None = None
    minimum_calls: int | None = None
    window_seconds: float | None = None
    slow_call_seconds: float | None = None
    slow_call_rate_threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "minimum_calls"):
            value = getattr(self, name)
            if value is not None:
                validate.integer(name, value, at_least=1, label=f"BreakerPolicy.{name}")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if value is not None:
                validate.number(name, value, above=0, at_most=1, label=f"BreakerPolicy.{name}")
        for name in ("window_seconds", "slow_call_seconds"):
            value = getattr(self, name)
            if value is not None:
                validate.number(name, value, above=0, label=f"BreakerPolicy.{name}")

    def then(self, more_specific: BreakerPolicy) -> BreakerPolicy:
        """This policy with every field ``more_specific`` sets taking precedence."""
        values = self.changes()
        values.update(more_specific.changes())
        return BreakerPolicy(**values)

    def changes(self) -> dict[str, Any]:
        """The fields this policy sets, by name."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if getattr(self, field.name) is not None
        }
