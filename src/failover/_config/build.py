"""Pairs, breakers and routes built from a :class:`~failover._config.plan.ManagerPlan`.

Building never fails on configuration: everything it reads was checked when the plan was
made. Each platform gets one :class:`PlatformState` shared by its pairs (a platform-wide
cool-down reaches every operation); each (platform, operation) one :class:`Pair` with its own
:class:`PairBreaker`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from failover._config.plan import ManagerPlan
from failover._core.breaker import PairBreaker, TransitionListener
from failover._core.pair import PlatformState
from failover._engine.route import Pair, Route
from failover.policies.policy import ResolvedPolicy


@dataclass(slots=True)
class Routes:
    """What a manager calls through: routes by operation, pairs and platforms by name."""

    platforms: dict[str, PlatformState]
    pairs: dict[tuple[str, str], Pair]
    routes: dict[str, Route]


def build_routes(plan: ManagerPlan, listener_for: Callable[[Pair], TransitionListener]) -> Routes:
    """Every pair and route of ``plan``; ``listener_for(pair)`` hears its breaker's transitions."""
    built = Routes({}, {}, {})
    for operation, specs in plan.specs.items():
        pairs = []
        for spec in specs:
            pair_key = (spec.name, operation)
            platform = built.platforms.get(spec.name)
            if platform is None:
                platform = built.platforms[spec.name] = PlatformState(spec.name)
            pair = Pair(
                spec,
                operation,
                platform,
                PairBreaker(plan.pair_breakers.get(pair_key, plan.breaker), plan.clock),
                plan.pair_policies[spec.name, operation],
                plan.classifiers.get(spec.name, ()),
                plan.environ,
            )
            pair.breaker.set_listener(listener_for(pair))
            built.pairs[pair.key] = pair
            pairs.append(pair)
        policy = plan.operation_policies[operation]
        route = built.routes[operation] = Route(
            operation, pairs, plan.ordering, ResolvedPolicy.of(policy).deadline
        )
        if policy.content_policy_fallback is not None:
            reasons = set(plan.engine.continue_on)
            if policy.content_policy_fallback:
                reasons.add("content_policy")
            else:
                reasons.discard("content_policy")
            route.continue_on = frozenset(reasons)
    return built
