"""The one interface every resilience policy implements: :class:`Strategy`.

A strategy is a small object with up to a handful of *hooks*, each a decision the engine asks
for at one point of a call. A strategy overrides only the hooks it needs; the engine finds
them once, when a route is built (:class:`failover.policies.Pipeline`), and calls nothing a
route does not use, so an unconfigured policy costs a call nothing.

The hooks, in the order a call meets them:

``call_limit()``
    Seconds the whole call may take (the deadline).
``plan(call, order)``
    Which platforms to try, in what order; may record platforms it skips
    (ordering strategies, budgets).
``hedge_delay(pair, fired)``
    Seconds to give ``pair`` before starting the next platform beside it, ``fired`` hedges
    having started so far in this call; ``None``: no (more) hedging (hedging).
``admit(call, pair)``
    A reason to pass ``pair`` over now, or ``None`` (checked after the breaker admitted it).
``slot(pair)``
    The :class:`~failover.policies.bulkhead.Limiter` an attempt on ``pair`` must hold
    (bulkheads); the driver waits for it.
``attempt_limit(pair)``
    Seconds one attempt on ``pair`` may take (the attempt timeout).
``wrap(operation, func)``
    The operation as this strategy wants it called (chaos injection).
``retry_wait(run, error, verdict, now)``
    After a transient failure: seconds to wait before retrying the same platform, or ``None``
    to move on (retry).
``observe(pair, ok, duration, result, error)``
    Learn from an attempt's outcome (strategies that rank platforms by what they see).
``exhausted()``
    What to do when every platform was unavailable and nothing was tried (the last resort).

Hooks decide; they never wait, sleep or do I/O. Waiting (for a slot, a retry, a deadline) is
the driver's job, so the same decisions serve the async driver and a synchronous one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from failover._core.classify import Classification
    from failover._core.errors import Attempt
    from failover._core.health import PairStats
    from failover._core.spec import PlatformSpec
    from failover.policies.bulkhead import Limiter
    from failover.policies.last_resort import LastResort
    from failover.policies.policy import ResolvedPolicy

Operation = Callable[..., Any]

#: The names of every hook, in the order a call meets them.
HOOKS: tuple[str, ...] = (
    "call_limit",
    "plan",
    "hedge_delay",
    "admit",
    "slot",
    "attempt_limit",
    "wrap",
    "retry_wait",
    "observe",
    "exhausted",
)


class PairView(Protocol):
    """What a strategy may read of a (platform, operation) pair."""

    @property
    def spec(self) -> PlatformSpec: ...
    @property
    def operation(self) -> str: ...
    @property
    def policy(self) -> ResolvedPolicy: ...
    @property
    def stats(self) -> PairStats: ...
    @property
    def key(self) -> tuple[str, str]: ...


class CallView(Protocol):
    """What a strategy may read of the call in progress."""

    @property
    def operation(self) -> str: ...
    @property
    def context(self) -> Mapping[str, Any] | None: ...
    @property
    def attempts(self) -> Sequence[Attempt]: ...

    order_reason: str
    """Why the call's order is what it is (``failover.order.reason``); a ``plan`` hook may say."""

    def skip(self, pair: Any, reason: str) -> None:
        """Record that ``pair`` is passed over for ``reason`` (span event, log, attempts)."""


class PlatformRun(Protocol):
    """One platform's attempts within one call, as ``retry_wait`` sees them."""

    @property
    def pair(self) -> PairView: ...
    @property
    def attempt(self) -> int:
        """Attempts made on this platform in this call so far (1 after the first)."""

    @property
    def started(self) -> float:
        """When the first of them started, on the manager's clock."""

    memo: Any
    """Free for the strategy: kept from one failure to the next on the same platform."""


class Strategy:
    """Base class of a resilience strategy; every hook is optional (see the module docstring).

    ``name`` identifies it in the composition order (:data:`failover.policies.ORDER`).
    """

    __slots__ = ()

    name: ClassVar[str] = "strategy"

    def call_limit(self) -> float | None:
        return None

    def plan(self, call: CallView, order: Sequence[Any]) -> Sequence[Any]:
        return order

    def hedge_delay(self, pair: PairView, fired: int) -> float | None:
        return None

    def admit(self, call: CallView, pair: PairView) -> str | None:
        return None

    def slot(self, pair: PairView) -> Limiter | None:
        return None

    def attempt_limit(self, pair: PairView) -> float | None:
        return None

    def wrap(self, operation: str, func: Operation) -> Operation:
        return func

    def wrap_blocking(self, operation: str, func: Operation) -> Operation | None:
        """``wrap`` for a synchronous call (the operation is a plain function); ``None``:
        this strategy cannot wrap one, and synchronous calls are refused."""
        return None

    def retry_wait(
        self, run: PlatformRun, error: BaseException, verdict: Classification, now: float
    ) -> float | None:
        return None

    def observe(
        self,
        pair: PairView,
        ok: bool,
        duration: float | None,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        return None

    def exhausted(self) -> LastResort | None:
        return None

    def hooks(self) -> tuple[str, ...]:
        """The hooks this strategy overrides."""
        cls = type(self)
        return tuple(hook for hook in HOOKS if getattr(cls, hook) is not getattr(Strategy, hook))
