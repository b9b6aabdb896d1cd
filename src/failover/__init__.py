"""failover: keep AI features working when AI providers fail.

Pick the best platform per operation type, call it through composable resilience policies,
and fall back down a priority list; a circuit breaker per (platform, operation) pair; credit
and quota errors cool a platform temporarily, never forever; every call traced with
OpenTelemetry. Runs on asyncio and trio.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from failover._core.breaker import BreakerState
from failover._core.classify import Classification, ErrorKind, classify, parse_retry_after
from failover._core.clock import Clock
from failover._core.errors import (
    AllPlatformsFailed,
    Attempt,
    AuthFailed,
    BadRequest,
    CheckInconclusive,
    Closed,
    ConfigError,
    CreditExhausted,
    FailoverError,
    ProviderError,
    RateLimited,
    Transient,
    UnknownOperation,
)
from failover._core.spec import (
    BUILTIN_OPERATION_TYPES,
    DEFAULT_PRIORITIES,
    KNOWN_PLATFORMS,
    PlatformSpec,
)
from failover._core.version import __version__
from failover._engine.clock import MonotonicClock
from failover._engine.drive_async.in_thread import in_thread
from failover._manager import PlatformManager
from failover.decorators import FallbackFunction, SyncFallbackFunction, fallback
from failover.policies.breaker import BreakerPolicy
from failover.policies.bulkhead import NO_BULKHEAD, Bulkhead
from failover.policies.chaos import Chaos, ChaosControl
from failover.policies.hedge import NO_HEDGE, Hedge
from failover.policies.ordering import (
    LatencyOrder,
    Observation,
    Ordered,
    Ordering,
    WeightedRoundRobin,
    cost_order,
    priority_order,
)
from failover.policies.policy import Policy
from failover.policies.retry import Retry
from failover.policies.timeout import AttemptTimeout

if TYPE_CHECKING:
    from failover._engine.checks import HealthChecks
    from failover.policies.budget import BudgetOrder
    from failover.policies.retry import NO_RETRY
    from failover.policies.usage import UsageOrder

#: Names loaded on first use (``import failover`` stays light): name -> its module.
_LAZY: dict[str, str] = {
    "HealthChecks": "failover._engine.checks",
    "BudgetOrder": "failover.policies.budget",
    "UsageOrder": "failover.policies.usage",
}


__all__ = [
    "BUILTIN_OPERATION_TYPES",
    "DEFAULT_PRIORITIES",
    "KNOWN_PLATFORMS",
    "NO_BULKHEAD",
    "NO_HEDGE",
    "NO_RETRY",
    "AllPlatformsFailed",
    "Attempt",
    "AttemptTimeout",
    "AuthFailed",
    "BadRequest",
    "BreakerPolicy",
    "BreakerState",
    "BudgetOrder",
    "Bulkhead",
    "Chaos",
    "ChaosControl",
    "CheckInconclusive",
    "Classification",
    "Clock",
    "Closed",
    "ConfigError",
    "CreditExhausted",
    "ErrorKind",
    "FailoverError",
    "FallbackFunction",
    "HealthChecks",
    "Hedge",
    "LatencyOrder",
    "MonotonicClock",
    "Observation",
    "Ordered",
    "Ordering",
    "PlatformManager",
    "PlatformSpec",
    "Policy",
    "ProviderError",
    "RateLimited",
    "Retry",
    "SyncFallbackFunction",
    "Transient",
    "UnknownOperation",
    "UsageOrder",
    "WeightedRoundRobin",
    "__version__",
    "classify",
    "cost_order",
    "default_manager",
    "fallback",
    "in_thread",
    "parse_retry_after",
    "priority_order",
    "set_default_manager",
]


def __getattr__(name: str) -> Any:
    # NO_RETRY is built on first use: it is made of tenacity objects, and importing failover
    # does not import tenacity.
    if name == "NO_RETRY":
        from failover.policies import retry

        return retry.NO_RETRY
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        value = getattr(import_module(module), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_default: PlatformManager | None = None
_default_lock = threading.Lock()


def default_manager() -> PlatformManager:
    """The process-wide manager, built on first use by :meth:`PlatformManager.from_env`
    (``AI_*`` variables, ``$FAILOVER_CONFIG``, else the built-in table)."""
    global _default
    manager = _default
    if manager is not None:
        return manager
    with _default_lock:  # first use only; the hot path above takes no lock
        if _default is None:
            _default = PlatformManager.from_env()
        return _default


def set_default_manager(manager: PlatformManager | None) -> None:
    """Replace the process default (``None``: rebuild from the environment on next use)."""
    global _default
    if manager is not None and not isinstance(manager, PlatformManager):
        raise ConfigError(
            f"set_default_manager(manager=...): expected a PlatformManager, "
            f"got {type(manager).__name__}",
            key="manager",
        )
    _default = manager
