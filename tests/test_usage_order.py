"""UsageOrder: ranks platforms by recent failure rate, latency and cost; explores; no flapping."""

from __future__ import annotations

from collections import Counter

import pytest

from failover import ConfigError, PlatformManager, PlatformSpec, UsageOrder
from failover.policies.ordering import Observation

pytestmark = pytest.mark.anyio

OP = "text_generation"
A, B, C = (PlatformSpec(name, f"{name}-1") for name in ("alpha", "beta", "gamma"))


async def test_it_converges_to_the_healthiest_platform_and_re_explores() -> None:
    """alpha fails every other call, gamma every call, beta answers (latency left out: the
    real clock's durations are noise here)."""
    order = UsageOrder(explore_every=10, min_samples=3, latency_weight=0)
    manager = PlatformManager({OP: [A, B, C]}, environ={}, ordering=order, failure_threshold=100)
    alpha_calls = 0

    async def operation(platform: PlatformSpec) -> str:
        nonlocal alpha_calls
        if platform.name == "alpha":
            alpha_calls += 1
            if alpha_calls % 2:
                raise ConnectionError("reset")
        if platform.name == "gamma":
            raise ConnectionError("reset")
        return platform.name

    firsts: Counter[str] = Counter()
    for _ in range(200):
        names = [spec.name for spec in order(OP, [A, B, C], {})]
        order._calls[OP] -= 1  # the look above is not a call
        firsts[names[0]] += 1
        await manager.with_fallback(OP, operation)
    assert firsts["beta"] > 150  # converged on the platform that answers
    assert 5 <= firsts["alpha"] + firsts["gamma"] <= 40  # still explored, and bounded
    assert firsts["alpha"] >= 3
    scores = order.scores(OP, [A, B, C])
    assert scores["alpha"] is not None
    assert scores["beta"] is not None
    assert scores["alpha"] > scores["beta"]


def test_a_recovered_platform_wins_its_place_back() -> None:
    order = UsageOrder(explore_every=0, min_samples=1, alpha=0.5)
    for _ in range(5):
        order.observe(Observation(A, OP, False, 0.1, error=ConnectionError()))
        order.observe(Observation(B, OP, True, 0.2))
    assert order(OP, [A, B], {})[0] is B
    for _ in range(10):
        order.observe(Observation(A, OP, True, 0.1))
    assert order(OP, [A, B], {})[0] is A


def test_hysteresis_keeps_platforms_of_similar_standing_in_place() -> None:
    order = UsageOrder(explore_every=0, min_samples=1, band=0.1)
    order.observe(Observation(A, OP, True, 1.0))
    order.observe(Observation(B, OP, True, 0.95))  # 5% faster: inside the band
    assert [spec.name for spec in order(OP, [A, B], {})] == ["alpha", "beta"]
    for _ in range(20):
        order.observe(Observation(B, OP, True, 0.2))  # now clearly faster
    assert [spec.name for spec in order(OP, [A, B], {})] == ["beta", "alpha"]
    order.observe(Observation(A, OP, True, 0.19))
    # alpha's average barely moved back: beta keeps first place (no flapping).
    assert [spec.name for spec in order(OP, [A, B], {})] == ["beta", "alpha"]


def test_the_requests_own_faults_do_not_count() -> None:
    from failover import BadRequest

    order = UsageOrder(explore_every=0, min_samples=1)
    for _ in range(10):
        order.observe(Observation(A, OP, False, 0.1, error=BadRequest("content policy")))
    assert order.scores(OP, [A, B])["alpha"] is None  # nothing recorded


def test_cost_counts_by_its_weight() -> None:
    cheap = PlatformSpec("cheap", "c", estimated_cost=0.001)
    dear = PlatformSpec("dear", "d", estimated_cost=0.04)
    for weight, first in ((1.0, cheap), (0.0, dear)):
        order = UsageOrder(explore_every=0, cost_weight=weight, min_samples=1)
        for spec in (dear, cheap):
            order.observe(Observation(spec, OP, True, 0.5))
        assert order(OP, [dear, cheap], {})[0] is first


def test_bad_settings_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        UsageOrder(alpha=0)
    with pytest.raises(ConfigError, match="explore_every"):
        UsageOrder(explore_every=-1)
    with pytest.raises(ConfigError, match="latency_weight"):
        UsageOrder(latency_weight=-1)
