"""A policy as the user writes it (:class:`Policy`), and as a pair resolves it.

``Policy`` values are immutable and set per manager, per operation and per platform; the most
specific setting wins. How the policies compose for one call is declared in
:mod:`failover.policies`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

from failover._core import validate
from failover._core.errors import ConfigError
from failover.policies import retry as _retry
from failover.policies.breaker import BreakerPolicy
from failover.policies.bulkhead import NO_BULKHEAD, Bulkhead
from failover.policies.hedge import Hedge
from failover.policies.retry import Retry

#: What a call does when every platform is unavailable (open or cooling down), nothing tried.
WHEN_ALL_UNAVAILABLE: Final = ("probe_soonest", "wait", "fail")


def check_when_all_unavailable(value: object) -> str:
    """``value`` if it is one of :data:`WHEN_ALL_UNAVAILABLE`, else a ``ConfigError``."""
    return validate.one_of("when_all_unavailable", value, WHEN_ALL_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Policy:
    """Retry, attempt timeout and call deadline; ``None`` means "inherit".

    Set per manager, per operation and per platform; the most specific setting wins
    (platform over operation over manager). ``deadline`` bounds a whole call across all
    platforms, so it is read from the manager and operation policies only. Use
    :data:`NO_RETRY` or ``math.inf`` to switch an inherited setting off.

    ``when_all_unavailable`` (``"probe_soonest"``, ``"wait"`` or ``"fail"``) and ``max_wait``
    (seconds, for ``"wait"``) say what a call does when every platform is open or cooling
    down; like ``deadline`` they concern the whole call, so only manager and operation
    policies may set them.

    ``hedge`` (a :class:`~failover.Hedge`, per operation like ``deadline``) races slow
    platforms; ``bulkhead`` (a :class:`~failover.Bulkhead`, any level) caps concurrent
    attempts per platform. Both are off unless set.

    ``breaker`` (a :class:`~failover.BreakerPolicy`, any level) changes the breaker settings
    of the pairs it applies to, field by field.

    ``content_policy_fallback`` (per manager or operation): whether a ``content_policy``
    refusal moves on to the next platform (``True``, the default through ``continue_on``) or
    is raised at once (``False``).
    """

    retry: Retry | None = None
    attempt_timeout: float | None = None
    deadline: float | None = None
    when_all_unavailable: str | None = None
    max_wait: float | None = None
    hedge: Hedge | None = None
    bulkhead: Bulkhead | None = None
    breaker: BreakerPolicy | None = None
    content_policy_fallback: bool | None = None

    def __post_init__(self) -> None:
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise ConfigError(
                f"Policy.retry must be a failover.Retry, got {type(self.retry).__name__}",
                key="retry",
            )
        for name, kind in (("hedge", Hedge), ("bulkhead", Bulkhead), ("breaker", BreakerPolicy)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                wanted, got = kind.__name__, type(value).__name__
                raise ConfigError(f"Policy.{name} must be a failover.{wanted}, got {got}", key=name)
        if self.when_all_unavailable is not None:
            check_when_all_unavailable(self.when_all_unavailable)
        if self.content_policy_fallback is not None:
            validate.flag(
                "content_policy_fallback",
                self.content_policy_fallback,
            )
        for name in ("attempt_timeout", "deadline", "max_wait"):
            value = getattr(self, name)
            if value is not None:
                # inf is allowed: no timeout, no deadline, wait as long as it takes.
                value = validate.seconds(
                    name, value, above=0, allow_inf=True, label=f"Policy.{name}"
                )
                object.__setattr__(self, name, value)

    def then(self, more_specific: Policy) -> Policy:
        """This policy with every field ``more_specific`` sets taking precedence."""
        changes = {
            f.name: getattr(more_specific, f.name)
            for f in fields(more_specific)
            if getattr(more_specific, f.name) is not None
        }
        if not changes:
            return self
        ours, theirs = self.breaker, more_specific.breaker
        if ours is not None and theirs is not None:
            changes["breaker"] = ours.then(theirs)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Policy(**values)


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """What the chain uses for one pair: ``None`` where nothing is configured."""

    retry: Retry | None
    attempt_timeout: float | None
    deadline: float | None
    bulkhead: Bulkhead | None = None

    @classmethod
    def of(cls, policy: Policy) -> ResolvedPolicy:
        retry = policy.retry
        if retry is not None and retry is _retry._no_retry:  # not built yet: nobody can pass it
            retry = None
        timeout = policy.attempt_timeout
        deadline = policy.deadline
        return cls(
            retry=retry,
            attempt_timeout=None if timeout is None or math.isinf(timeout) else timeout,
            deadline=None if deadline is None or math.isinf(deadline) else deadline,
            bulkhead=None if policy.bulkhead is NO_BULKHEAD else policy.bulkhead,
        )
