"""The engine's vocabulary: why a platform was skipped, how an attempt ended, why a breaker
moved. ``StrEnum`` members compare equal to their values, so telemetry attributes, health
fields and existing string comparisons keep working; the code itself branches on members,
never on message text."""

from __future__ import annotations

import enum


class SkipReason(enum.StrEnum):
    """Why a call passed a platform over without trying it."""

    MISSING_API_KEY = "missing_api_key"  #: its key variable is not set
    OPEN = "open"  #: its breaker is open (or its probe slots are taken)
    RATE_LIMITED = "rate_limited"  #: the pair is cooling down after a 429
    CREDIT = "credit"  #: the platform is out of credits, quota or billing
    AUTH = "auth"  #: the platform rejected its key
    BULKHEAD_FULL = "bulkhead_full"  #: no bulkhead slot came in time
    OVER_BUDGET = "over_budget"  #: its spending cap for the period is used up
    INCAPABLE = "incapable"  #: it lacks what the call requires (window, features)


class Outcome(enum.StrEnum):
    """How one attempt (or skip) of a call ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class Cause(enum.StrEnum):
    """Why a pair's breaker changed state."""

    FAILURES = "consecutive failures"  #: ``failure_threshold`` failures in a row
    FAILURE_RATE = "failure rate"  #: ``failure_rate_threshold`` of the window's calls failed
    SLOW_CALLS = "slow-call rate"  #: ``slow_call_rate_threshold`` of the window's calls were slow
    PROBE_FAILED = "probe failed"
    PROBE_SUCCEEDED = "probe succeeded"
    OPEN_ELAPSED = "open duration elapsed"
    FORCED_OPEN = "forced open"  #: ``force_open``, ``isolate`` or pybreaker ``open()``
    FORCED_HALF_OPEN = "forced half-open"
    FORCED_CLOSED = "forced closed"
    RESET = "reset"
    REMOTE_OPEN = "opened by another process"  #: applied from the fleet's shared state
    HEALTH_CHECK = "health check passed"  #: a background health check (``HealthChecks``)

    @property
    def by_hand(self) -> bool:
        """Whether an operator (not traffic) caused it."""
        return self in _BY_HAND


_BY_HAND = frozenset({Cause.FORCED_OPEN, Cause.FORCED_HALF_OPEN, Cause.FORCED_CLOSED, Cause.RESET})
