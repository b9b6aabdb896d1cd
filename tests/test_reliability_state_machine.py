"""Stateful property test: the breakers and cool-downs of a real manager against a reference model.

Hypothesis drives a :class:`PlatformManager` (two platforms, two operations: four pairs that
share two platform cool-downs) on a :class:`FakeClock` through random interleavings of

* admissions (``Pair.admit``), early probes (``PairBreaker.admit_early_probe``),
* outcomes of admitted attempts through the chain's bookkeeping (``Chain.succeeded`` /
  ``Chain.failed`` with a :class:`Classification` of every error kind), cancellations
  (``release``), and outcomes reported by hand (``report_success`` / ``report_failure``),
* clock advances (short, exactly to a deadline, past a lease, long),
* manual transitions (``force_open``, ``isolate``, ``force_closed``, ``reset`` of a pair or a
  whole platform),
* with the rate rules drawn on or off: a failure-rate threshold and a slow-call rate over a
  time window, whose outcomes (with their durations) the model counts in time buckets,

and after every step compares the implementation with :class:`Model`, a small, independent
restatement of DESIGN §2 written here: breaker state, admission (permit, probe or the skip
reason), consecutive failures, probes in flight, health counters, cool-downs and the mirrored
``pybreaker`` state must agree exactly.

The number of examples comes from the Hypothesis profile (``tests/conftest.py``):
``FAILOVER_HYPOTHESIS_PROFILE=large`` runs the long version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from failover import Classification, ErrorKind, PlatformManager, PlatformSpec
from failover._core.breaker import Permit
from failover._engine.route import Pair
from failover.testing import FakeClock

PLATFORMS = ("alpha", "beta")
OPERATIONS = ("text_generation", "image_editing")
PAIRS = [(platform, operation) for platform in PLATFORMS for operation in OPERATIONS]

KINDS = (
    ErrorKind.TRANSIENT,
    ErrorKind.RATE_LIMITED,
    ErrorKind.CREDIT_EXHAUSTED,
    ErrorKind.AUTH,
    ErrorKind.REQUEST,
)

# -- the reference model ----------------------------------------------------------------------


@dataclass
class ModelProbe:
    lease_until: float


@dataclass
class ModelPair:
    """DESIGN §2's breaker, restated: closed -> open -> half-open -> closed/open."""

    state: str = "closed"
    failures: int = 0  # consecutive
    open_until: float = 0.0
    probes: list[ModelProbe] = field(default_factory=list)
    probe_successes: int = 0
    reopens: int = 0
    pinned: bool = False
    cooldown_until: float = 0.0  # rate limit: this pair only
    cooldown_reason: str | None = None
    successes: int = 0  # health counters
    failures_total: int = 0
    # The rate window: (bucket number, failed, slow) of closed-state outcomes since it closed.
    window: list[tuple[int, bool, bool]] = field(default_factory=list)


@dataclass
class ModelCooldown:
    until: float = 0.0
    reason: str | None = None


class Model:
    """What the manager must do, written without looking at how it is done."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.now = 1_000.0
        self.pairs = {key: ModelPair() for key in PAIRS}
        self.platforms = {name: ModelCooldown() for name in PLATFORMS}

    # time-dependent views
    def state(self, key: tuple[str, str]) -> str:
        pair = self.pairs[key]
        if pair.state == "open" and self.now >= pair.open_until:
            return "half_open"
        return pair.state

    def live_probes(self, key: tuple[str, str]) -> list[ModelProbe]:
        return [probe for probe in self.pairs[key].probes if probe.lease_until > self.now]

    def cooling(self, key: tuple[str, str]) -> str | None:
        platform = self.platforms[key[0]]
        if self.now < platform.until:
            return platform.reason
        pair = self.pairs[key]
        if self.now < pair.cooldown_until:
            return pair.cooldown_reason
        return None

    def breaker_admits(self, key: tuple[str, str]) -> bool:
        state = self.state(key)
        if state == "closed":
            return True
        if state == "open":
            return False
        return len(self.live_probes(key)) < self.config["half_open_max_calls"]

    def skip_reason(self, key: tuple[str, str]) -> str | None:
        reason = self.cooling(key)
        if reason is not None:
            return reason
        return None if self.breaker_admits(key) else "open"

    # admission
    def admit(self, key: tuple[str, str]) -> ModelProbe | str | None:
        """``None`` for a closed permit, a probe, or the skip reason."""
        reason = self.cooling(key)
        if reason is not None:
            return reason
        pair = self.pairs[key]
        if pair.state == "closed":
            return None
        if pair.state == "open":
            if self.now < pair.open_until:
                return "open"
            pair.state = "half_open"
        pair.probes = self.live_probes(key)
        if len(pair.probes) >= self.config["half_open_max_calls"]:
            return "open"
        probe = ModelProbe(self.now + self.config["probe_lease_seconds"])
        pair.probes.append(probe)
        return probe

    def admit_early(self, key: tuple[str, str]) -> ModelProbe | None:
        pair = self.pairs[key]
        if pair.state != "open" or math.isinf(pair.open_until):
            return None
        if self.now >= pair.open_until:
            admitted = self.admit(key)
            return admitted if isinstance(admitted, ModelProbe) else None
        pair.probes = self.live_probes(key)
        if len(pair.probes) >= self.config["half_open_max_calls"]:
            return None
        probe = ModelProbe(self.now + self.config["probe_lease_seconds"])
        pair.probes.append(probe)
        return probe

    # transitions
    def _open(self, key: tuple[str, str]) -> None:
        pair = self.pairs[key]
        config = self.config
        duration = config["ttl"]
        if pair.reopens and config["open_backoff"] > 1:
            duration = min(
                config["ttl"] * config["open_backoff"] ** pair.reopens, config["max_open_seconds"]
            )
        pair.state = "open"
        pair.open_until = self.now + duration
        pair.probes = []
        pair.probe_successes = 0

    def _close(self, key: tuple[str, str]) -> None:
        pair = self.pairs[key]
        pair.window = []
        pair.state = "closed"
        pair.failures = pair.reopens = pair.probe_successes = 0
        pair.probes = []
        pair.open_until = 0.0

    def _probe_result(self, key: tuple[str, str], probe: ModelProbe) -> bool:
        """Whether a probe's result counts: it is still held and its lease has not run out."""
        pair = self.pairs[key]
        if not any(held is probe for held in pair.probes):
            return False
        pair.probes = [held for held in pair.probes if held is not probe]
        return probe.lease_until > self.now

    def _probe_success(self, key: tuple[str, str]) -> None:
        pair = self.pairs[key]
        pair.probe_successes += 1
        if pair.probe_successes >= self.config["success_threshold"]:
            self._close(key)

    def _closed_failure(self, key: tuple[str, str], duration: float | None) -> None:
        pair = self.pairs[key]
        if pair.state != "closed":
            return
        pair.failures += 1
        if not pair.pinned and pair.failures >= self.config["failure_threshold"]:
            self._open(key)
        else:
            self._rated(key, True, duration)

    def window_counts(self, key: tuple[str, str]) -> tuple[int, int, int]:
        """Calls, failures and slow calls in the window now: buckets of ``window_seconds / n``
        (``n`` = the window in whole seconds, at most 60), the last ``n`` of them counted."""
        window = self.config["window_seconds"]
        size = min(max(math.ceil(window), 1), 60)
        current = math.floor(self.now / (window / size))
        kept = [item for item in self.pairs[key].window if item[0] > current - size]
        return len(kept), sum(item[1] for item in kept), sum(item[2] for item in kept)

    def _rated(self, key: tuple[str, str], failed: bool, duration: float | None) -> None:
        """A closed-state outcome into the rate window; open if a rate rule trips."""
        config = self.config
        rate, slow_seconds, slow_rate = (
            config["failure_rate_threshold"],
            config["slow_call_seconds"],
            config["slow_call_rate_threshold"],
        )
        if rate is None and slow_rate is None:
            return
        pair = self.pairs[key]
        window = config["window_seconds"]
        size = min(max(math.ceil(window), 1), 60)
        slow = slow_seconds is not None and duration is not None and duration > slow_seconds
        pair.window.append((math.floor(self.now / (window / size)), failed, slow))
        calls, failures, slows = self.window_counts(key)
        if pair.pinned or calls < config["minimum_calls"]:
            return
        tripped = failed and rate is not None and failures >= rate * calls
        if tripped or (slow and slow_rate is not None and slows >= slow_rate * calls):
            self._open(key)

    def _probe_failure(self, key: tuple[str, str]) -> None:
        pair = self.pairs[key]
        pair.failures += 1
        pair.reopens += 1
        self._open(key)

    # outcomes
    def succeeded(
        self,
        key: tuple[str, str],
        probe: ModelProbe | None,
        by_hand: bool,
        duration: float | None = None,
    ) -> None:
        pair = self.pairs[key]
        if by_hand:
            state = self.state(key)
            if state == "closed":
                pair.failures = 0
                self._rated(key, False, duration)
            elif state == "half_open":
                pair.state = "half_open"
                self._probe_success(key)
        elif probe is None:
            if pair.state == "closed":
                pair.failures = 0
                self._rated(key, False, duration)
        elif self._probe_result(key, probe):
            self._probe_success(key)
        pair.successes += 1

    def failed(
        self,
        key: tuple[str, str],
        probe: ModelProbe | None,
        by_hand: bool,
        kind: ErrorKind,
        retry_after: float | None,
        duration: float | None = None,
    ) -> None:
        pair = self.pairs[key]
        config = self.config
        if kind is ErrorKind.TRANSIENT:
            if by_hand:
                if self.state(key) == "half_open":
                    self._probe_failure(key)
                else:
                    self._closed_failure(key, duration)
            elif probe is None:
                self._closed_failure(key, duration)
            elif self._probe_result(key, probe):
                self._probe_failure(key)
        elif probe is not None:
            self.release(key, probe)
        if kind is ErrorKind.CREDIT_EXHAUSTED:
            self._cool_platform(key[0], self.now + config["ttl"], "credit")
        elif kind is ErrorKind.AUTH:
            self._cool_platform(key[0], self.now + config["auth_cooldown_seconds"], "auth")
        elif kind is ErrorKind.RATE_LIMITED:
            wait = config["ttl"] if retry_after is None else retry_after
            until = self.now + min(wait, config["rate_limit_max_seconds"])
            if until > pair.cooldown_until:
                pair.cooldown_until, pair.cooldown_reason = until, "rate_limited"
        if kind is not ErrorKind.REQUEST:
            pair.failures_total += 1

    def _cool_platform(self, name: str, until: float, reason: str) -> None:
        cooldown = self.platforms[name]
        if until > cooldown.until:  # a longer cool-down in force is kept
            cooldown.until, cooldown.reason = until, reason

    def release(self, key: tuple[str, str], probe: ModelProbe | None) -> None:
        pair = self.pairs[key]
        if probe is not None:
            pair.probes = [held for held in pair.probes if held is not probe]

    # manual control
    def force_open(self, key: tuple[str, str], seconds: float | None) -> None:
        pair = self.pairs[key]
        pair.pinned = False
        pair.open_until = self.now + (self.config["ttl"] if seconds is None else seconds)
        pair.probes = []
        pair.probe_successes = 0
        pair.state = "open"

    def force_closed(self, key: tuple[str, str]) -> None:
        self.pairs[key].pinned = True
        self._close(key)

    def check_passed(self, key: tuple[str, str]) -> None:
        """A background health check passed: an open or half-open pair closes."""
        pair = self.pairs[key]
        if pair.state != "closed" and not pair.pinned:
            self._close(key)

    def reset(self, key: tuple[str, str]) -> None:
        pair = self.pairs[key]
        pair.pinned = False
        self._close(key)
        pair.cooldown_until, pair.cooldown_reason = 0.0, None

    def reset_platform(self, name: str) -> None:
        for key in PAIRS:
            if key[0] == name:
                self.reset(key)
        self.platforms[name] = ModelCooldown()


# -- the machine ------------------------------------------------------------------------------


@dataclass
class Outstanding:
    key: tuple[str, str]
    permit: Permit
    probe: ModelProbe | None


pair_keys = st.sampled_from(PAIRS)
durations = st.sampled_from([None, 0.0, 0.25, 1.5, 29.0])


class BreakerMachine(RuleBasedStateMachine):
    """The manager's pairs and platforms against :class:`Model`, step by step."""

    def __init__(self) -> None:
        super().__init__()
        self.outstanding: list[Outstanding] = []
        # Logs are not under test here, and formatting thousands of them dominates the run.
        self.logger = logging.getLogger("failover")
        self.log_level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def teardown(self) -> None:
        self.logger.setLevel(self.log_level)

    @initialize(
        failure_threshold=st.integers(1, 4),
        half_open_max_calls=st.integers(1, 3),
        success_threshold=st.integers(1, 3),
        ttl=st.sampled_from([10.0, 60.0, 300.0]),
        probe_lease_seconds=st.sampled_from([5.0, 30.0, 120.0]),
        open_backoff=st.sampled_from([1.0, 2.0]),
        auth_cooldown_seconds=st.sampled_from([20.0, 1200.0]),
        rate_limit_max_seconds=st.sampled_from([15.0, 300.0]),
        failure_rate_threshold=st.sampled_from([None, None, 0.5, 1.0]),
        minimum_calls=st.integers(1, 4),
        window_seconds=st.sampled_from([10.0, 60.0, 90.0]),
        slow=st.sampled_from([(None, None), (1.0, 0.5), (0.1, 1.0)]),
    )
    def build(self, **config: Any) -> None:
        config["max_open_seconds"] = max(500.0, config["ttl"])
        config["slow_call_seconds"], config["slow_call_rate_threshold"] = config.pop("slow")
        self.clock = FakeClock()
        specs = [PlatformSpec(name, f"{name}-1") for name in PLATFORMS]
        self.manager = PlatformManager(
            dict.fromkeys(OPERATIONS, specs),
            failure_threshold=config["failure_threshold"],
            cache_ttl_seconds=config["ttl"],
            half_open_max_calls=config["half_open_max_calls"],
            success_threshold=config["success_threshold"],
            probe_lease_seconds=config["probe_lease_seconds"],
            open_backoff=config["open_backoff"],
            max_open_seconds=config["max_open_seconds"],
            auth_cooldown_seconds=config["auth_cooldown_seconds"],
            rate_limit_max_seconds=config["rate_limit_max_seconds"],
            failure_rate_threshold=config["failure_rate_threshold"],
            minimum_calls=config["minimum_calls"],
            window_seconds=config["window_seconds"],
            slow_call_seconds=config["slow_call_seconds"],
            slow_call_rate_threshold=config["slow_call_rate_threshold"],
            clock=self.clock,
            environ={},
        )
        self.book = self.manager._book
        self.model = Model(config)
        note(f"config: {config}")

    def pair(self, key: tuple[str, str]) -> Pair:
        return self.manager._pairs[key]

    def take(self, index: int) -> Outstanding | None:
        """An outstanding permit, removed from the list; ``None`` when there is none."""
        if not self.outstanding:
            return None
        return self.outstanding.pop(index % len(self.outstanding))

    # admissions
    @rule(key=pair_keys)
    def admit(self, key: tuple[str, str]) -> None:
        got = self.pair(key).admit(self.clock)
        expected = self.model.admit(key)
        if isinstance(expected, str):
            assert got == expected, f"{key}: admit gave {got!r}, the model skips ({expected})"
            return
        assert isinstance(got, Permit), f"{key}: admit refused ({got}), the model admits"
        assert got.is_probe is (expected is not None), f"{key}: probe mismatch"
        if expected is not None:
            assert got.lease_until == expected.lease_until
        self.outstanding.append(Outstanding(key, got, expected))

    @rule(key=pair_keys)
    def admit_early_probe(self, key: tuple[str, str]) -> None:
        if self.model.cooling(key) is not None:
            return  # the chain's last resort asks the breaker only for pairs it may probe
        got = self.pair(key).breaker.admit_early_probe()
        expected = self.model.admit_early(key)
        assert (got is None) is (expected is None), f"{key}: early probe {got} vs {expected}"
        if got is not None and expected is not None:
            assert got.is_probe
            assert got.lease_until == expected.lease_until
            self.outstanding.append(Outstanding(key, got, expected))

    # outcomes of admitted attempts
    @rule(index=st.integers(min_value=0), duration=durations)
    def attempt_succeeds(self, index: int, duration: float | None) -> None:
        item = self.take(index)
        if item is None:
            return
        self.book.succeeded(self.pair(item.key), item.permit, duration)
        self.model.succeeded(item.key, item.probe, False, duration)

    @rule(
        index=st.integers(min_value=0),
        kind=st.sampled_from(KINDS),
        retry_after=st.one_of(st.none(), st.sampled_from([0.0, 1.0, 30.0, 900.0])),
        duration=durations,
    )
    def attempt_fails(
        self, index: int, kind: ErrorKind, retry_after: float | None, duration: float | None
    ) -> None:
        item = self.take(index)
        if item is None:
            return
        verdict = Classification(kind, retry_after=retry_after)
        self.book.failed(self.pair(item.key), item.permit, verdict, duration)
        self.model.failed(item.key, item.probe, False, kind, retry_after, duration)

    @rule(index=st.integers(min_value=0))
    def attempt_cancelled(self, index: int) -> None:
        item = self.take(index)
        if item is None:
            return
        self.pair(item.key).breaker.release(item.permit)
        self.model.release(item.key, item.probe)

    # outcomes reported by hand (the old manual flow)
    @rule(key=pair_keys, duration=durations)
    def report_success(self, key: tuple[str, str], duration: float | None) -> None:
        self.book.succeeded(self.pair(key), None, duration)
        self.model.succeeded(key, None, True, duration)

    @rule(
        key=pair_keys,
        kind=st.sampled_from(KINDS),
        retry_after=st.one_of(st.none(), st.sampled_from([0.0, 5.0, 600.0])),
    )
    def report_failure(
        self, key: tuple[str, str], kind: ErrorKind, retry_after: float | None
    ) -> None:
        verdict = Classification(kind, retry_after=retry_after)
        self.book.failed(self.pair(key), None, verdict, None)
        self.model.failed(key, None, True, kind, retry_after)

    # time
    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 4.999, 5.0, 29.0, 30.0, 60.0, 301.0, 1200.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    @rule(key=pair_keys)
    def advance_to_the_open_deadline(self, key: tuple[str, str]) -> None:
        until = self.model.pairs[key].open_until
        if (
            self.model.pairs[key].state == "open"
            and math.isfinite(until)
            and until > self.model.now
        ):
            self.advance(until - self.model.now)

    @rule(index=st.integers(min_value=0))
    def advance_to_a_lease_end(self, index: int) -> None:
        if not self.outstanding:
            return
        item = self.outstanding[index % len(self.outstanding)]
        if item.probe is not None and item.probe.lease_until > self.model.now:
            self.advance(item.probe.lease_until - self.model.now)

    # manual transitions
    @rule(key=pair_keys, seconds=st.one_of(st.none(), st.sampled_from([1.0, 45.0, 700.0])))
    def force_open(self, key: tuple[str, str], seconds: float | None) -> None:
        self.manager.force_open(key[0], key[1], seconds)
        self.model.force_open(key, seconds)

    @rule(key=pair_keys)
    def isolate(self, key: tuple[str, str]) -> None:
        self.manager.isolate(key[0], key[1])
        self.model.force_open(key, math.inf)

    @rule(key=pair_keys)
    def force_closed(self, key: tuple[str, str]) -> None:
        self.manager.force_closed(key[0], key[1])
        self.model.force_closed(key)

    @rule(key=pair_keys)
    def health_check_passes(self, key: tuple[str, str]) -> None:
        self.pair(key).breaker.check_passed()
        self.model.check_passed(key)

    @rule(key=pair_keys)
    def reset_pair(self, key: tuple[str, str]) -> None:
        self.manager.reset(key[0], key[1])
        self.model.reset(key)

    @rule(name=st.sampled_from(PLATFORMS))
    def reset_platform(self, name: str) -> None:
        self.manager.reset(name)
        self.model.reset_platform(name)

    # the comparison, after every step
    @invariant()
    def implementation_agrees_with_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        model = self.model
        assert self.clock.now() == model.now
        for key in PAIRS:
            pair = self.pair(key)
            breaker = pair.breaker
            expected = model.pairs[key]
            assert pair.state().value == model.state(key), f"{key}: state"
            assert breaker.consecutive_failures == expected.failures, f"{key}: failures"
            assert breaker.probes_in_flight() == len(model.live_probes(key)), f"{key}: probes"
            assert breaker.would_admit() is model.breaker_admits(key), f"{key}: would_admit"
            assert pair.unavailable_reason(self.clock) == model.skip_reason(key), f"{key}: skip"
            assert pair.stats.successes == expected.successes, f"{key}: successes"
            assert pair.stats.failures == expected.failures_total, f"{key}: failures total"
            assert breaker.pinned_closed is expected.pinned
            if expected.state == "open":
                assert breaker.open_until == expected.open_until, f"{key}: open_until"
            window = breaker.window
            if window is not None and expected.state == "closed":
                # Only closed-state calls count, and a pair closes with an empty window.
                window.advance(model.now)  # what a call recorded now would count
                counts = (window.calls, window.failures, window.slow)
                assert counts == model.window_counts(key), f"{key}: rate window"
            elif window is None:
                assert not expected.window
            # The pybreaker mirror follows every transition.
            mirrored = pair.mirror.breaker.current_state.replace("-", "_")
            assert mirrored == breaker.state.value, f"{key}: pybreaker says {mirrored}"

    @rule()
    def read_health(self) -> None:
        """get_health_status() tells the same story (a step of its own: it is slower)."""
        model = self.model
        health = self.manager.get_health_status()
        for name in PLATFORMS:
            cooldown = model.platforms[name]
            cooling = model.now < cooldown.until
            assert health[name]["cooldown_reason"] == (cooldown.reason if cooling else None)
            for operation in OPERATIONS:
                detail = health[name]["operations"][operation]
                assert detail["state"] == model.state((name, operation))
                assert detail["skip_reason"] == model.skip_reason((name, operation))
                assert detail["consecutive_failures"] == model.pairs[(name, operation)].failures
                assert detail["total_requests"] == (
                    model.pairs[(name, operation)].successes
                    + model.pairs[(name, operation)].failures_total
                )


TestBreakerMachine = BreakerMachine.TestCase


def test_an_elapsed_open_with_an_early_probe_out_does_not_read_as_usable() -> None:
    """The first disagreement the machine found (fixed): would_admit() said yes while admit()
    refused, because the early probe sent while the pair was open still held the slot."""
    clock = FakeClock()
    manager = PlatformManager(
        {"text_generation": [PlatformSpec("alpha", "a-1")]},
        cache_ttl_seconds=10,
        probe_lease_seconds=30,
        clock=clock,
        environ={},
    )
    pair = manager._pairs[("alpha", "text_generation")]
    manager.force_open("alpha", "text_generation")
    assert pair.breaker.admit_early_probe() is not None
    clock.advance(10)  # the open duration ends; the probe's lease has 20 s to go
    assert pair.breaker.admit() is None
    assert pair.breaker.would_admit() is False
    assert pair.unavailable_reason(clock) == "open"
