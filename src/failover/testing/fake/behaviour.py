"""The behaviour language of the fake provider server: how a fake platform answers.

A :class:`Behaviour` is an immutable value (healthy, flaky, out of credits, rate limited,
hanging, bad key, overloaded, stream cut, content policy, context length, or a sequence of
these); :func:`next_step` and :func:`delay` are the switching rules the server applies per
request. The bodies each behaviour sends are in :mod:`.shapes`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, get_args

__all__ = ["OUTCOME_OF_KIND", "Behaviour", "BehaviourKind", "delay", "next_step"]

BehaviourKind: TypeAlias = Literal[
    "healthy",
    "flaky",
    "out_of_credits",
    "rate_limited",
    "hanging",
    "bad_key",
    "overloaded",
    "stream_cut",
    "content_policy",
    "context_length_exceeded",
    "sequence",
]
_KINDS: Final[tuple[str, ...]] = get_args(BehaviourKind)

# The parameters each kind takes (every other field must keep its default).
_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "healthy": ("latency", "jitter"),
    "flaky": ("error_rate", "status", "latency", "jitter"),
    "out_of_credits": (),
    "rate_limited": ("retry_after",),
    "hanging": ("seconds",),
    "bad_key": (),
    "overloaded": (),
    "stream_cut": ("after_chunks",),
    "content_policy": (),
    "context_length_exceeded": (),
    "sequence": ("steps", "then"),
}


#: Stats outcome for each kind that does not depend on a draw (healthy/flaky decide per request).
OUTCOME_OF_KIND: Final[dict[str, str]] = {
    "out_of_credits": "credit",
    "rate_limited": "rate_limited",
    "hanging": "hang",
    "bad_key": "auth",
    "overloaded": "overloaded",
    "stream_cut": "stream_cut",
    "content_policy": "content_policy",
    "context_length_exceeded": "context_length_exceeded",
}


def _check_number(
    name: str, value: object, *, allow_none: bool = False, maximum: float | None = None
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")


@dataclass(frozen=True, slots=True, repr=False)
class Behaviour:
    """How a fake platform answers. Immutable; build one with the classmethods.

    ``Behaviour.healthy()``, ``Behaviour.flaky(0.3)``, ``Behaviour.out_of_credits()``,
    ``Behaviour.rate_limited(retry_after=2)``, ``Behaviour.hanging()``, ``Behaviour.bad_key()``,
    ``Behaviour.overloaded()``, ``Behaviour.stream_cut(after_chunks=1)``,
    ``Behaviour.content_policy()``, ``Behaviour.context_length_exceeded()`` and
    ``Behaviour.sequence([...], then=...)``. Every value is checked: a bad one raises
    :class:`ValueError` naming the parameter. :meth:`to_dict` and :meth:`from_dict` give the
    JSON form the admin endpoint takes.

    Status codes per provider (bodies are the provider's own shapes; "openai" stands for
    every OpenAI-compatible platform but google, which answers in Google's error shape):

    ===========================  ======  ======  =========  =========  =========  ===
    behaviour                    openai  google  anthropic  stability  replicate  fal
    ===========================  ======  ======  =========  =========  =========  ===
    ``out_of_credits``           429     429     400        402        402        403
    ``rate_limited``             429     429     429        429        429        429
    ``bad_key``                  401     401     401        401        401        401
    ``overloaded``               503     503     529        503        503        503
    ``content_policy``           400     400     400        403        422        422
    ``context_length_exceeded``  400     400     400        400        422        422
    ===========================  ======  ======  =========  =========  =========  ===
    """

    kind: BehaviourKind = "healthy"
    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    status: int = 503
    retry_after: float | None = 2.0
    seconds: float | None = None
    after_chunks: int = 1
    steps: tuple[Behaviour, ...] = ()
    then: Behaviour | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown behaviour kind {self.kind!r}; expected one of {_KINDS}")
        allowed = _PARAMS[self.kind]
        for name in ("latency", "jitter", "error_rate", "status", "retry_after", "seconds"):
            if name not in allowed and getattr(self, name) != _DEFAULTS[name]:
                raise ValueError(f"{name!r} is not a parameter of behaviour {self.kind!r}")
        if "after_chunks" not in allowed and self.after_chunks != 1:
            raise ValueError(f"'after_chunks' is not a parameter of behaviour {self.kind!r}")
        if self.kind != "sequence" and (self.steps or self.then is not None):
            raise ValueError(f"'steps' and 'then' are not parameters of behaviour {self.kind!r}")
        _check_number("latency", self.latency)
        _check_number("jitter", self.jitter)
        _check_number("error_rate", self.error_rate, maximum=1.0)
        _check_number("retry_after", self.retry_after, allow_none=True)
        _check_number("seconds", self.seconds, allow_none=True)
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise ValueError(f"status must be an int, got {self.status!r}")
        if not (self.status == 408 or 500 <= self.status <= 599):
            raise ValueError(f"status must be 408 or a 5xx status, got {self.status}")
        if isinstance(self.after_chunks, bool) or not isinstance(self.after_chunks, int):
            raise ValueError(f"after_chunks must be an int, got {self.after_chunks!r}")
        if self.after_chunks < 0:
            raise ValueError(f"after_chunks must be >= 0, got {self.after_chunks}")
        if self.kind == "sequence":
            steps: Iterable[object] = self.steps
            if not isinstance(steps, tuple):  # a list given to the plain constructor
                object.__setattr__(self, "steps", tuple(steps))
            if not self.steps:
                raise ValueError("a sequence needs at least one step")
            if self.then is None:
                object.__setattr__(self, "then", Behaviour())
            for step in (*self.steps, self.then):
                if not isinstance(step, Behaviour):
                    raise ValueError(f"sequence steps must be Behaviour objects, got {step!r}")
                if step.kind == "sequence":
                    raise ValueError("a sequence cannot contain another sequence")

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def healthy(cls, latency: float = 0.0, jitter: float = 0.0) -> Behaviour:
        """Answer 200 after ``latency`` seconds, give or take a uniform ``jitter`` (>= 0)."""
        return cls("healthy", latency=latency, jitter=jitter)

    @classmethod
    def flaky(
        cls, error_rate: float, status: int = 503, latency: float = 0.0, jitter: float = 0.0
    ) -> Behaviour:
        """Fail a fraction ``error_rate`` (0..1) of requests with ``status`` (408 or 5xx).

        The rest are answered as :meth:`healthy`. 502 and 504 come back as a gateway's HTML
        page, like a real proxy sends; other statuses use the provider's JSON error shape.
        """
        return cls("flaky", error_rate=error_rate, status=status, latency=latency, jitter=jitter)

    @classmethod
    def out_of_credits(cls) -> Behaviour:
        """The provider's real "no credits / quota / balance" error (402, 429, 400 or 403)."""
        return cls("out_of_credits")

    @classmethod
    def rate_limited(cls, retry_after: float | None = 2.0) -> Behaviour:
        """429 with the provider's rate-limit body and ``Retry-After`` (omitted if ``None``)."""
        return cls("rate_limited", retry_after=retry_after)

    @classmethod
    def hanging(cls, seconds: float | None = None) -> Behaviour:
        """Never answer (``None``), or answer normally after ``seconds``.

        A hanging request ends when the client goes away or the server shuts down.
        """
        return cls("hanging", seconds=seconds)

    @classmethod
    def bad_key(cls) -> Behaviour:
        """401 with the provider's authentication error (OpenAI-style ones echo the key,
        masked the way OpenAI masks it)."""
        return cls("bad_key")

    @classmethod
    def overloaded(cls) -> Behaviour:
        """Anthropic's 529 ``overloaded_error``; 503 with the provider's body elsewhere."""
        return cls("overloaded")

    @classmethod
    def stream_cut(cls, after_chunks: int = 1) -> Behaviour:
        """Streaming requests get ``after_chunks`` server-sent events, then the connection
        drops. Other requests get their response headers, then the connection drops."""
        return cls("stream_cut", after_chunks=after_chunks)

    @classmethod
    def content_policy(cls) -> Behaviour:
        """The provider's "rejected by the safety system / content moderation" error."""
        return cls("content_policy")

    @classmethod
    def context_length_exceeded(cls) -> Behaviour:
        """The provider's "prompt too long for the context window" error (400/422)."""
        return cls("context_length_exceeded")

    @classmethod
    def sequence(cls, steps: Iterable[Behaviour], then: Behaviour | None = None) -> Behaviour:
        """One step per request, in arrival order, then ``then`` (default: healthy) forever.

        ``Behaviour.sequence([Behaviour.flaky(1.0)] * 2)`` fails twice, then recovers.
        Setting the behaviour again starts the sequence from its first step.
        """
        return cls("sequence", steps=tuple(steps), then=then)

    # -- (de)serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"kind": ..., <this kind's parameters>}``."""
        data: dict[str, Any] = {"kind": self.kind}
        for name in _PARAMS[self.kind]:
            if name == "steps":
                data[name] = [step.to_dict() for step in self.steps]
            elif name == "then":
                data[name] = self.then.to_dict() if self.then is not None else None
            else:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Behaviour:
        """Build a behaviour from its JSON form (or from a bare kind name).

        Missing parameters take the constructor's defaults; unknown kinds or parameters
        raise :class:`ValueError`.
        """
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"a behaviour must be a JSON object, got {data!r}")
        kind = data.get("kind")
        if kind not in _KINDS:
            raise ValueError(f"unknown behaviour kind {kind!r}; expected one of {_KINDS}")
        params = {key: value for key, value in data.items() if key != "kind"}
        unknown = sorted(set(params) - set(_PARAMS[kind]))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for behaviour {kind!r}; "
                f"expected some of {list(_PARAMS[kind])}"
            )
        if kind == "sequence":
            steps = params.get("steps")
            if not isinstance(steps, list | tuple):
                raise ValueError("a sequence needs 'steps': a list of behaviours")
            then = params.get("then")
            return cls.sequence(
                [cls.from_dict(step) for step in steps],
                then=None if then is None else cls.from_dict(then),
            )
        return cls(kind, **params)

    def __repr__(self) -> str:
        parts = []
        for name in _PARAMS[self.kind]:
            value = getattr(self, name)
            parts.append(f"{name}={list(value) if name == 'steps' else value!r}")
        return f"Behaviour.{self.kind}({', '.join(parts)})"


_DEFAULTS: Final[dict[str, object]] = {
    "latency": 0.0,
    "jitter": 0.0,
    "error_rate": 0.0,
    "status": 503,
    "retry_after": 2.0,
    "seconds": None,
}


def next_step(behaviour: Behaviour, position: int) -> tuple[Behaviour, int]:
    """The behaviour for the request at ``position`` of ``behaviour`` and the position of the
    one after: a sequence answers one step per request, in arrival order, then its ``then``
    forever; any other behaviour answers every request itself."""
    if behaviour.kind != "sequence":
        return behaviour, position
    if position < len(behaviour.steps):
        return behaviour.steps[position], position + 1
    assert behaviour.then is not None
    return behaviour.then, position


def delay(behaviour: Behaviour, rng: random.Random) -> float:
    """How long to wait before answering: ``latency``, give or take a uniform ``jitter``."""
    if behaviour.jitter:
        return max(0.0, behaviour.latency + rng.uniform(-behaviour.jitter, behaviour.jitter))
    return behaviour.latency
