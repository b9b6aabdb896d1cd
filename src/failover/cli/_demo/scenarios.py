"""The scripted provider troubles ``failover demo`` plays out.

A :class:`Scenario` is a list of :class:`Phase` s. Each phase starts once a given fraction of
the run's requests has been sent and changes some fake providers' behaviour, so a scenario
unfolds the same way whatever ``--requests`` is. Latencies are short so a run takes seconds;
their ratios are roughly those of the real providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from failover.testing.fake import Behaviour


def _healthy(latency: float) -> Behaviour:
    return Behaviour.healthy(latency=latency, jitter=latency / 3)


#: How each platform answers when nothing is wrong with it (seconds of latency).
HEALTHY: Final[Mapping[str, Behaviour]] = MappingProxyType(
    {
        "stability": _healthy(0.30),
        "replicate": _healthy(0.40),
        "fal": _healthy(0.25),
        "groq": _healthy(0.06),
        "openai": _healthy(0.18),
        "anthropic": _healthy(0.22),
    }
)


@dataclass(frozen=True, slots=True)
class Phase:
    """From ``at`` (a fraction of the requests sent, 0..1) on, these platforms change."""

    at: float
    note: str
    behaviours: Mapping[str, Behaviour] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.at <= 1.0:
            raise ValueError(f"Phase.at must be within 0..1, got {self.at!r}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named story of provider troubles, told in phases (sorted by ``at``)."""

    name: str
    description: str
    phases: tuple[Phase, ...]

    def __post_init__(self) -> None:
        if list(self.phases) != sorted(self.phases, key=lambda phase: phase.at):
            raise ValueError(f"scenario {self.name!r}: phases must be in order of 'at'")


SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType(
    {
        "default": Scenario(
            "default",
            "stability out of credits, replicate flaky then recovering, fal healthy, "
            "groq rate limited for a while",
            (
                Phase(
                    0.0,
                    "stability is out of credits, replicate fails 70% of requests, "
                    "groq is rate limited",
                    {
                        **HEALTHY,
                        "stability": Behaviour.out_of_credits(),
                        "replicate": Behaviour.flaky(0.7, status=503, latency=0.3, jitter=0.1),
                        "groq": Behaviour.rate_limited(retry_after=1),
                    },
                ),
                Phase(0.3, "replicate has recovered", {"replicate": HEALTHY["replicate"]}),
                Phase(0.45, "groq's rate limit is lifted", {"groq": HEALTHY["groq"]}),
            ),
        ),
        "outage": Scenario(
            "outage",
            "all healthy, then stability goes down and groq hangs; both come back later",
            (
                Phase(0.0, "every provider is healthy", dict(HEALTHY)),
                Phase(
                    0.15,
                    "stability is down (503 overloaded), groq stops answering (hangs)",
                    {"stability": Behaviour.overloaded(), "groq": Behaviour.hanging()},
                ),
                Phase(
                    0.45,
                    "stability and groq are back",
                    {"stability": HEALTHY["stability"], "groq": HEALTHY["groq"]},
                ),
            ),
        ),
        "meltdown": Scenario(
            "meltdown",
            "every image provider fails for a while: some requests cannot be answered",
            (
                Phase(0.0, "every provider is healthy", dict(HEALTHY)),
                Phase(
                    0.2,
                    "stability out of credits, replicate and fal failing (503)",
                    {
                        "stability": Behaviour.out_of_credits(),
                        "replicate": Behaviour.flaky(1.0, status=503, latency=0.2),
                        "fal": Behaviour.flaky(1.0, status=503, latency=0.2),
                    },
                ),
                Phase(
                    0.45,
                    "replicate and fal are back",
                    {"replicate": HEALTHY["replicate"], "fal": HEALTHY["fal"]},
                ),
            ),
        ),
    }
)
