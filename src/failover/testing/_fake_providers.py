"""A fake AI-provider HTTP server that fails the way real providers fail.

:class:`FakeProviderServer` is a real HTTP/1.1 server on ``127.0.0.1`` (built on anyio and
h11, so it runs on asyncio and trio). It serves provider-shaped endpoints under one path
prefix per platform, and each platform follows a scripted :class:`Behaviour` that can be
changed at runtime: healthy with some latency, flaky, out of credits, rate limited, hanging,
bad key, overloaded, a stream cut mid-way, ... Every failure uses the provider's real status
code and body shape, so code that classifies provider errors can be tested against it over
real HTTP::

    async with FakeProviderServer(seed=1234) as server:
        server.set_behaviour("stability", Behaviour.out_of_credits())
        async with httpx.AsyncClient(base_url=server.base_url("stability")) as client:
            response = await client.post("/v2beta/stable-image/edit/inpaint", files=...)
            assert response.status_code == 402
        assert server.stats()["stability"] == {"total": 1, "credit": 1}

Endpoints (``server.base_url(platform)`` is what you give that provider's client):

=========================================  ===================================================
platform                                   endpoints
=========================================  ===================================================
openai, groq, xai, together, google        ``POST /<platform>/v1/chat/completions``
(OpenAI-compatible; base ``/<p>/v1``)      (``"stream": true`` answers server-sent events)
anthropic (base ``/anthropic``)            ``POST /anthropic/v1/messages`` (also streaming)
stability (base ``/stability``)            ``POST /stability/v2beta/stable-image/...``
                                           (e.g. ``edit/inpaint``; any body, multipart too)
replicate (base ``/replicate``)            ``POST /replicate/v1/predictions``,
                                           ``POST /replicate/v1/models/<o>/<n>/predictions``,
                                           ``GET /replicate/v1/predictions/<id>``
fal (base ``/fal``)                        ``POST /fal/<app path...>``
=========================================  ===================================================

Admin endpoints (for another process, e.g. a scenario driving ``failover fake-providers``):
``GET /_admin/info``, ``GET /_admin/stats``, ``POST /_admin/reset`` (statistics only),
``GET /_admin/behaviour``, and ``POST /_admin/behaviour`` with
``{"platform": "stability", "behaviour": {"kind": "out_of_credits"}}`` (``"platform": "*"``
sets every platform; ``"behaviour"`` may also be just a kind name). Generated images are
served from ``GET /_files/<name>.png``.

The server never logs request bodies, headers or keys: at DEBUG level it logs the method, the
path without its query string, the status and the outcome of each request.
"""

from __future__ import annotations

import base64
import contextlib
import http
import json
import math
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias, get_args

import anyio
import anyio.abc
import h11

from failover._observe.scrub import get_logger

__all__ = [
    "OPENAI_COMPATIBLE_PLATFORMS",
    "PLATFORMS",
    "Behaviour",
    "BehaviourKind",
    "FakeProviderServer",
    "serve_forever",
]

logger = get_logger("failover.testing.fake_providers")

#: Platforms that speak the OpenAI chat-completions protocol.
OPENAI_COMPATIBLE_PLATFORMS: Final = ("openai", "groq", "xai", "together", "google")
#: Every platform the server knows, in a stable order.
PLATFORMS: Final = (*OPENAI_COMPATIBLE_PLATFORMS, "anthropic", "stability", "replicate", "fal")

# Which provider's error-body dialect each platform speaks. Google's OpenAI-compatible
# endpoint answers errors in Google's own ``{"error": {"code", "message", "status"}}`` shape.
_FAMILY: Final[dict[str, str]] = {
    "openai": "openai",
    "groq": "openai",
    "xai": "openai",
    "together": "openai",
    "google": "google",
    "anthropic": "anthropic",
    "stability": "stability",
    "replicate": "replicate",
    "fal": "fal",
}

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

# Stats outcome for each kind that does not depend on a draw (healthy/flaky decide per request).
_OUTCOME: Final[dict[str, str]] = {
    "out_of_credits": "credit",
    "rate_limited": "rate_limited",
    "hanging": "hang",
    "bad_key": "auth",
    "overloaded": "overloaded",
    "stream_cut": "stream_cut",
    "content_policy": "content_policy",
    "context_length_exceeded": "context_length_exceeded",
}

_READ_SIZE: Final = 65536
_MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_CLOSE_LINGER_SECONDS: Final = 2.0
_SERVER_HEADER: Final = ("server", "failover-fake-providers")

_WORDS: Final = (
    "resilient",
    "providers",
    "fallback",
    "circuit",
    "breaker",
    "answer",
    "steady",
    "quick",
    "reply",
    "request",
    "platform",
    "healthy",
    "model",
    "tokens",
    "stream",
    "gentle",
    "bright",
    "calm",
    "orange",
    "river",
)


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


# -- responses ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    """A complete response with a ``Content-Length``."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _StreamReply:
    """A server-sent-events response; ``cut_after`` events, then the connection drops."""

    events: list[bytes]
    cut_after: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _CutReply:
    """Response headers announcing a body that never comes: the connection drops."""

    body_length: int


_Response: TypeAlias = _Reply | _StreamReply | _CutReply


def _json_bytes(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _json_reply(status: int, data: object, headers: list[tuple[str, str]] | None = None) -> _Reply:
    return _Reply(status, _json_bytes(data), headers=headers or [])


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A tiny valid PNG of one colour."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        payload = tag + data
        return struct.pack(">I", len(data)) + payload + struct.pack(">I", zlib.crc32(payload))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


_IMAGE_SIZE: Final = 8
#: The image every fake image endpoint returns.
FAKE_PNG: Final = _png(_IMAGE_SIZE, _IMAGE_SIZE, (32, 160, 96))
_FAKE_PNG_B64: Final = base64.b64encode(FAKE_PNG).decode()


def _mask_key(key: str) -> str:
    """Mask an API key the way OpenAI's "Incorrect API key provided" message does."""
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


@dataclass(slots=True)
class _Request:
    """What a handler needs to know about one request (never logged)."""

    method: str
    path: str
    platform: str
    route: str
    headers: dict[str, str]
    body: bytes
    json: Any = None

    @property
    def wants_stream(self) -> bool:
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def model(self) -> str:
        model = self.json.get("model") if isinstance(self.json, dict) else None
        return model if isinstance(model, str) else "unknown-model"

    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization")
        if value is None:
            return None
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else value.strip()


# -- provider error bodies --------------------------------------------------------------------


def _openai_error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None
) -> _Reply:
    return _json_reply(
        status, {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def _google_error(status: int, message: str, google_status: str) -> _Reply:
    return _json_reply(
        status, {"error": {"code": status, "message": message, "status": google_status}}
    )


def _anthropic_error(status: int, type_: str, message: str) -> _Reply:
    return _json_reply(status, {"type": "error", "error": {"type": type_, "message": message}})


def _stability_error(status: int, name: str, message: str, rng: random.Random) -> _Reply:
    return _json_reply(
        status, {"id": f"{rng.getrandbits(128):032x}", "name": name, "errors": [message]}
    )


def _replicate_error(status: int, title: str, detail: str) -> _Reply:
    return _json_reply(status, {"title": title, "detail": detail, "status": status})


def _fal_error(status: int, detail: object) -> _Reply:
    return _json_reply(status, {"detail": detail})


def _gateway_page(status: int) -> _Reply:
    phrase = _reason(status).decode() or "Error"
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return _Reply(status, page.encode(), content_type="text/html")


_SERVER_ERROR_TEXT: Final[dict[int, str]] = {
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
}
_GOOGLE_STATUS: Final[dict[int, str]] = {
    408: "DEADLINE_EXCEEDED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _server_error(family: str, status: int, rng: random.Random) -> _Reply:
    """A flaky failure: a gateway page for 502/504, the provider's JSON shape otherwise."""
    if status in (502, 504):
        return _gateway_page(status)
    text = _SERVER_ERROR_TEXT.get(status, "The server had an error processing your request.")
    if family == "openai":
        return _openai_error(status, text, "server_error", None)
    if family == "google":
        return _google_error(
            status, "An internal error has occurred.", _GOOGLE_STATUS.get(status, "INTERNAL")
        )
    if family == "anthropic":
        if status == 529:
            return _anthropic_error(529, "overloaded_error", "Overloaded")
        return _anthropic_error(status, "api_error", "Internal server error")
    if family == "stability":
        return _stability_error(status, "internal_error", text, rng)
    if family == "replicate":
        return _replicate_error(status, _reason(status).decode() or "Server Error", text)
    return _fal_error(status, "Internal Server Error")


def _out_of_credits(family: str, rng: random.Random) -> _Reply:
    if family == "openai":
        return _openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        )
    if family == "google":
        return _google_error(
            429,
            "Your prepayment credits are depleted. Please go to AI Studio at "
            "https://ai.studio/projects to manage your project and billing.",
            "RESOURCE_EXHAUSTED",
        )
    if family == "anthropic":
        return _anthropic_error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits.",
        )
    if family == "stability":
        return _stability_error(
            402,
            "payment_required",
            "You lack sufficient credits to make this request. Please purchase more credits "
            "at https://platform.stability.ai/account/credits and try again.",
            rng,
        )
    if family == "replicate":
        return _replicate_error(
            402,
            "Insufficient credit",
            "You have insufficient credit to run this model. Go to "
            "https://replicate.com/account/billing to purchase credit. Once you purchase "
            "credit, please wait a few minutes before trying again.",
        )
    return _fal_error(
        403,
        "User is locked. Reason: Exhausted balance. "
        "Top up your balance at fal.ai/dashboard/billing.",
    )


def _rate_limited(
    family: str, request: _Request, retry_after: float | None, rng: random.Random
) -> _Reply:
    wait = "" if retry_after is None else f" Please try again in {retry_after:g}s."
    if family == "openai":
        reply = _openai_error(
            429,
            f"Rate limit reached for {request.model} in organization org-fake on requests "
            f"per min (RPM): Limit 60, Used 60, Requested 1.{wait}",
            "requests",
            "rate_limit_exceeded",
        )
        reply.headers += [
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
        ]
    elif family == "google":
        reply = _google_error(
            429, "Resource exhausted. Please try again later.", "RESOURCE_EXHAUSTED"
        )
    elif family == "anthropic":
        reply = _anthropic_error(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            "per minute. Please reduce the request rate or try again later.",
        )
        reply.headers.append(("anthropic-ratelimit-requests-remaining", "0"))
    elif family == "stability":
        reply = _stability_error(
            429,
            "rate_limit_exceeded",
            "You have been rate limited as you have made more than 150 requests within a "
            "10 second period.",
            rng,
        )
    elif family == "replicate":
        reply = _replicate_error(
            429, "Request was throttled.", f"Request was throttled.{wait}".rstrip()
        )
    else:
        reply = _fal_error(429, f"Rate limit exceeded.{wait}")
    if retry_after is not None:
        reply.headers.append(("retry-after", str(math.ceil(retry_after))))
        if family == "openai":
            reply.headers.append(("retry-after-ms", str(round(retry_after * 1000))))
    return reply


def _bad_key(family: str, request: _Request, rng: random.Random) -> _Reply:
    if family == "openai":
        token = request.bearer_token()
        if not token:
            return _openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        return _openai_error(
            401,
            f"Incorrect API key provided: {_mask_key(token)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if family == "google":
        return _google_error(
            401, "API key not valid. Please pass a valid API key.", "UNAUTHENTICATED"
        )
    if family == "anthropic":
        return _anthropic_error(401, "authentication_error", "invalid x-api-key")
    if family == "stability":
        return _stability_error(
            401, "unauthorized", "authorization: invalid or missing header value", rng
        )
    if family == "replicate":
        return _replicate_error(
            401, "Unauthenticated", "You did not pass a valid authentication token"
        )
    return _fal_error(401, "No user found for Key ID and Secret")


def _overloaded(family: str, rng: random.Random) -> _Reply:
    if family == "anthropic":
        return _anthropic_error(529, "overloaded_error", "Overloaded")
    if family == "openai":
        return _openai_error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        )
    if family == "google":
        return _google_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")
    if family == "stability":
        return _stability_error(
            503,
            "service_unavailable",
            "The service is temporarily overloaded, please try again later.",
            rng,
        )
    if family == "replicate":
        return _replicate_error(
            503, "Service Unavailable", "The service is overloaded. Please try again later."
        )
    return _fal_error(503, "The service is overloaded. Please try again later.")


def _content_policy(family: str, rng: random.Random) -> _Reply:
    if family == "openai":
        return _openai_error(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        )
    if family == "google":
        return _google_error(
            400,
            "The request was blocked by the safety system: the prompt violates the content "
            "policy (SAFETY).",
            "INVALID_ARGUMENT",
        )
    if family == "anthropic":
        return _anthropic_error(
            400, "invalid_request_error", "Output blocked by content filtering policy"
        )
    if family == "stability":
        return _stability_error(
            403,
            "content_moderation",
            "Your request was flagged by our content moderation system, as a result your "
            "request was denied and you were not charged.",
            rng,
        )
    if family == "replicate":
        return _replicate_error(
            422,
            "Input flagged",
            "The input or output was flagged as sensitive. Please try again with different "
            "inputs. (E005)",
        )
    return _fal_error(
        422,
        [
            {
                "loc": ["body", "prompt"],
                "msg": "The content could not be processed because it contained material "
                "flagged by a content checker.",
                "type": "content_policy_violation",
            }
        ],
    )


def _context_length(family: str, rng: random.Random) -> _Reply:
    if family == "openai":
        return _openai_error(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            param="messages",
        )
    if family == "google":
        return _google_error(
            400,
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            "INVALID_ARGUMENT",
        )
    if family == "anthropic":
        return _anthropic_error(
            400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
        )
    if family == "stability":
        return _stability_error(
            400, "bad_request", "prompt: must be no more than 10000 characters", rng
        )
    if family == "replicate":
        return _replicate_error(
            422,
            "Input validation failed",
            "- input.prompt: String should have at most 10000 characters",
        )
    return _fal_error(
        422,
        [
            {
                "loc": ["body", "prompt"],
                "msg": "String should have at most 10000 characters",
                "type": "string_too_long",
            }
        ],
    )


def _invalid_request(family: str, message: str, param: str | None) -> _Reply:
    """The provider's 400 for a malformed request (bad JSON, missing field)."""
    if family == "google":
        return _google_error(400, message, "INVALID_ARGUMENT")
    if family == "anthropic":
        return _anthropic_error(400, "invalid_request_error", message)
    return _openai_error(400, message, "invalid_request_error", None, param=param)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Site Overloaded" if status == 529 else b""


# -- per-platform state -------------------------------------------------------------------------


@dataclass(slots=True)
class _PlatformState:
    behaviour: Behaviour
    rng: random.Random
    position: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def next_step(self) -> Behaviour:
        """The behaviour for the next request (consumes a step of a sequence)."""
        behaviour = self.behaviour
        if behaviour.kind != "sequence":
            return behaviour
        if self.position < len(behaviour.steps):
            step = behaviour.steps[self.position]
            self.position += 1
            return step
        assert behaviour.then is not None
        return behaviour.then

    def delay(self, behaviour: Behaviour) -> float:
        if behaviour.jitter:
            return max(
                0.0, behaviour.latency + self.rng.uniform(-behaviour.jitter, behaviour.jitter)
            )
        return behaviour.latency


class _ClientGone(Exception):
    """The client closed or reset the connection."""


class _BodyTooLarge(Exception):
    """The request body exceeds the server's limit."""


# -- the server -------------------------------------------------------------------------------


class FakeProviderServer:
    """An in-process fake of several AI providers, over real HTTP on ``127.0.0.1``.

    Use it as an async context manager from any anyio code (asyncio or trio)::

        async with FakeProviderServer(port=0, seed=1234) as server:
            server.url                      # "http://127.0.0.1:PORT"
            server.base_url("openai")       # "http://127.0.0.1:PORT/openai/v1"
            server.set_behaviour("stability", Behaviour.out_of_credits())
            server.stats()                  # {"openai": {"total": 0}, ...}

    ``port=0`` picks a free port. ``seed`` makes latencies, flaky draws, ids and reply texts
    reproducible (each platform draws from its own ``random.Random``). ``behaviours`` sets
    the starting behaviour per platform (default: every platform healthy).

    Leaving the ``async with`` block cancels every connection (hanging requests included)
    and closes the listening socket. All methods must be called from the event loop thread
    that runs the server.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        seed: int = 0,
        behaviours: Mapping[str, Behaviour] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._states = {
            platform: _PlatformState(Behaviour(), random.Random(f"{seed}:{platform}"))
            for platform in PLATFORMS
        }
        for platform, behaviour in (behaviours or {}).items():
            self.set_behaviour(platform, behaviour)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.Listener[anyio.abc.SocketStream] | None = None
        self._connections_accepted = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task_group is not None:
            raise RuntimeError("the fake provider server is already running")
        listener = await anyio.create_tcp_listener(
            local_host=self._host, local_port=self._requested_port
        )
        try:
            self._port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        except BaseException:
            await anyio.aclose_forcefully(listener)
            raise
        self._listener = listener
        self._task_group = task_group
        for sub_listener in listener.listeners:
            assert isinstance(sub_listener, anyio.abc.SocketListener)
            task_group.start_soon(self._accept_loop, sub_listener, name="fake-providers accept")
        logger.info("fake provider server listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, listener = self._task_group, self._listener
        if task_group is None or listener is None:
            return None
        task_group.cancel_scope.cancel()
        try:
            return await task_group.__aexit__(exc_type, exc, tb)
        finally:
            await anyio.aclose_forcefully(listener)
            self._task_group = None
            self._listener = None
            logger.info("fake provider server on %s stopped", self.url)

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (known once started, or if given)."""
        if self._port is not None:
            return self._port
        if self._requested_port:
            return self._requested_port
        raise RuntimeError("the server picks its port when it starts: use it inside `async with`")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the server's root URL."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def base_url(self, platform: str) -> str:
        """The base URL to give ``platform``'s client in place of the real API root.

        ``/<platform>/v1`` for OpenAI-compatible platforms (like ``https://api.openai.com/v1``);
        ``/<platform>`` for anthropic, stability, replicate and fal.
        """
        self._state(platform)
        if platform in OPENAI_COMPATIBLE_PLATFORMS:
            return f"{self.url}/{platform}/v1"
        return f"{self.url}/{platform}"

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (to check keep-alive reuse)."""
        return self._connections_accepted

    # -- behaviour and statistics ----------------------------------------------------------

    def set_behaviour(self, platform: str, behaviour: Behaviour) -> None:
        """Make ``platform`` (or every platform, for ``"*"``) follow ``behaviour`` from the
        next request on. A sequence starts again from its first step."""
        if not isinstance(behaviour, Behaviour):
            raise ValueError(f"behaviour must be a Behaviour, got {behaviour!r}")
        states = self._states.values() if platform == "*" else [self._state(platform)]
        for state in states:
            state.behaviour = behaviour
            state.position = 0

    def behaviour(self, platform: str) -> Behaviour:
        """The behaviour ``platform`` currently follows."""
        return self._state(platform).behaviour

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests per platform and outcome: ``{"stability": {"total": 3, "credit": 3}, ...}``.

        Every platform is present with its ``"total"``; an outcome appears once it happened.
        Outcomes: ``ok``, ``error_<status>`` (flaky), ``credit``, ``rate_limited``, ``hang``,
        ``auth``, ``overloaded``, ``stream_cut``, ``content_policy``,
        ``context_length_exceeded``, ``bad_request`` (malformed request), ``not_found``.
        A request is counted when the server decides its outcome, before it answers.
        """
        return {
            platform: {"total": state.counts.total(), **dict(sorted(state.counts.items()))}
            for platform, state in self._states.items()
        }

    def reset_stats(self) -> None:
        """Zero every platform's counters (behaviours are kept)."""
        for state in self._states.values():
            state.counts.clear()

    def _state(self, platform: str) -> _PlatformState:
        try:
            return self._states[platform]
        except KeyError:
            raise ValueError(
                f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}"
            ) from None

    # -- connections ---------------------------------------------------------------------

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        assert self._task_group is not None
        task_group = self._task_group
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                except OSError as exc:  # e.g. out of file descriptors: back off, keep serving
                    logger.warning("fake provider server: accept failed: %s", exc)
                    await anyio.sleep(0.05)
                    continue
                self._connections_accepted += 1
                task_group.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
        try:
            while True:
                event = await self._next_event(conn, stream)
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed (or nothing more we can do)
                if not await self._serve_request(conn, stream, event):
                    return
                if conn.our_state is h11.MUST_CLOSE:
                    await self._close_gracefully(stream)
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._reject_malformed(conn, stream, exc)
        except (_ClientGone, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except Exception:
            logger.exception("fake provider server: unexpected error on a connection")
        finally:
            await anyio.aclose_forcefully(stream)

    async def _receive(self, stream: anyio.abc.SocketStream) -> bytes:
        """Bytes from the client; ``b""`` at end of stream; :class:`_ClientGone` on reset."""
        try:
            return await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise _ClientGone from exc

    async def _next_event(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream
    ) -> h11.Event | None:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self._receive(stream))
                continue
            if event is h11.PAUSED:
                return None
            assert isinstance(event, h11.Event)
            return event

    async def _send(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, event: h11.Event
    ) -> None:
        data = conn.send(event)
        if data:
            try:
                await stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise _ClientGone from exc

    async def _close_gracefully(self, stream: anyio.abc.SocketStream) -> None:
        """Half-close, then let the client read everything and close its side."""
        with anyio.move_on_after(_CLOSE_LINGER_SECONDS):
            try:
                await stream.send_eof()
                while await self._receive(stream):
                    pass
            except (_ClientGone, OSError):
                pass

    async def _read_body(self, conn: h11.Connection, stream: anyio.abc.SocketStream) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(conn, stream)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > _MAX_BODY_BYTES:
                    raise _BodyTooLarge
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise _ClientGone

    async def _reject_malformed(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, exc: h11.RemoteProtocolError
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = _json_bytes({"error": {"message": f"malformed HTTP request: {exc}"}})
        try:
            await self._send_reply(conn, stream, _Reply(status, body), close=True)
            await self._close_gracefully(stream)
        except (_ClientGone, h11.LocalProtocolError):
            pass

    async def _wait_for(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, seconds: float | None
    ) -> bool:
        """Wait ``seconds`` (forever for ``None``) unless the client leaves first.

        Returns whether the client is still there. Bytes it sends meanwhile (a pipelined
        request) are kept for h11.
        """
        with anyio.move_on_after(math.inf if seconds is None else seconds):
            while data := await self._receive(stream):
                conn.receive_data(data)
            return False
        return True

    # -- one request ---------------------------------------------------------------------

    async def _serve_request(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, request: h11.Request
    ) -> bool:
        """Answer one request; returns whether the connection may serve another."""
        method = request.method.decode("ascii", "replace").upper()
        path = request.target.decode("latin-1").partition("?")[0]
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        if conn.they_are_waiting_for_100_continue:
            await self._send(conn, stream, h11.InformationalResponse(status_code=100, headers=[]))
        try:
            body = await self._read_body(conn, stream)
        except _BodyTooLarge:
            reply = _json_reply(413, {"error": {"message": "request body too large"}})
            await self._send_reply(conn, stream, reply, close=True)
            self._log(method, path, 413, "too_large")
            return False

        try:
            response, outcome = await self._dispatch(conn, stream, method, path, headers, body)
        except _ClientGone:
            raise
        except Exception:
            logger.exception("fake provider server: error answering %s %s", method, path)
            response = _json_reply(500, {"error": {"message": "fake provider server bug"}})
            outcome = "server_bug"
        if response is None:
            self._log(method, path, 0, outcome)
            return False
        keep_open = await self._send_response(conn, stream, response)
        status = response.status if isinstance(response, _Reply) else 200
        self._log(method, path, status, outcome)
        return keep_open

    async def _dispatch(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[_Response | None, str]:
        """The response to a request and its outcome; ``None`` means drop the client."""
        segments = [segment for segment in path.split("/") if segment]
        head = segments[0] if segments else ""
        if head in ("", "_admin"):
            return self._admin(method, segments[1:], body), "admin"
        if head == "_files":
            if method == "GET" and len(segments) == 2:
                return _Reply(200, FAKE_PNG, content_type="image/png"), "file"
            return _json_reply(404, {"error": {"message": "no such file"}}), "not_found"
        if head not in self._states:
            message = f"unknown platform {head!r}; known platforms: {', '.join(PLATFORMS)}"
            return _json_reply(404, {"error": {"message": message, "type": "not_found"}}), (
                "unknown_platform"
            )
        request = _Request(method, path, head, "", headers, body)
        return await self._platform_request(conn, stream, request, segments[1:])

    @staticmethod
    def _log(method: str, path: str, status: int, outcome: str) -> None:
        logger.debug("%s %s -> %s (%s)", method, path, status or "dropped", outcome)

    async def _send_reply(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        reply: _Reply,
        *,
        close: bool = False,
    ) -> None:
        headers = [
            ("content-type", reply.content_type),
            ("content-length", str(len(reply.body))),
            _SERVER_HEADER,
            *reply.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        response = h11.Response(
            status_code=reply.status, headers=headers, reason=_reason(reply.status)
        )
        await self._send(conn, stream, response)
        await self._send(conn, stream, h11.Data(data=reply.body))
        await self._send(conn, stream, h11.EndOfMessage())

    async def _send_response(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, response: _Response
    ) -> bool:
        if isinstance(response, _Reply):
            await self._send_reply(conn, stream, response)
            return True
        if isinstance(response, _CutReply):
            headers = [
                ("content-type", "application/json"),
                ("content-length", str(response.body_length)),
                _SERVER_HEADER,
            ]
            await self._send(conn, stream, h11.Response(status_code=200, headers=headers))
            await self._drop(stream)
            return False
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            _SERVER_HEADER,
            *response.headers,
        ]
        await self._send(conn, stream, h11.Response(status_code=200, headers=headers, reason=b"OK"))
        for index, event in enumerate(response.events):
            if response.cut_after is not None and index >= response.cut_after:
                await self._drop(stream)
                return False
            await self._send(conn, stream, h11.Data(data=event))
        if response.cut_after is not None:
            await self._drop(stream)
            return False
        await self._send(conn, stream, h11.EndOfMessage())
        return True

    @staticmethod
    async def _drop(stream: anyio.abc.SocketStream) -> None:
        """End the connection mid-response: what a crashed upstream looks like."""
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await stream.send_eof()
        await anyio.aclose_forcefully(stream)

    # -- platform endpoints ---------------------------------------------------------------

    async def _platform_request(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        request: _Request,
        rest: list[str],
    ) -> tuple[_Response | None, str]:
        """Route, validate, apply the platform's behaviour. ``None`` means drop the client."""
        state = self._states[request.platform]
        family = _FAMILY[request.platform]
        route = _route(request.platform, request.method, rest)
        if route is None:
            state.counts["not_found"] += 1
            return (
                _json_reply(
                    404,
                    {
                        "error": {
                            "message": f"no endpoint {request.method} {request.path} on the fake "
                            f"{request.platform} server",
                            "type": "not_found",
                        }
                    },
                ),
                "not_found",
            )
        request.route = route
        invalid = _parse_and_validate(request, family)
        if invalid is not None:
            state.counts["bad_request"] += 1
            return invalid, "bad_request"

        behaviour = state.next_step()
        kind = behaviour.kind
        if kind in ("healthy", "flaky"):
            failed = kind == "flaky" and state.rng.random() < behaviour.error_rate
            outcome = f"error_{behaviour.status}" if failed else "ok"
            state.counts[outcome] += 1
            delay = state.delay(behaviour)
            if delay > 0 and not await self._wait_for(conn, stream, delay):
                return None, outcome
            if failed:
                return _server_error(family, behaviour.status, state.rng), outcome
            return self._success(request, state), outcome

        outcome = _OUTCOME[kind]
        state.counts[outcome] += 1
        if kind == "hanging":
            if not await self._wait_for(conn, stream, behaviour.seconds):
                return None, outcome
            return self._success(request, state), outcome
        if kind == "stream_cut":
            success = self._success(request, state)
            if isinstance(success, _StreamReply):
                success.cut_after = behaviour.after_chunks
                return success, outcome
            length = len(success.body) if isinstance(success, _Reply) else 0
            return _CutReply(max(length, 1)), outcome
        if kind == "out_of_credits":
            return _out_of_credits(family, state.rng), outcome
        if kind == "rate_limited":
            return _rate_limited(family, request, behaviour.retry_after, state.rng), outcome
        if kind == "bad_key":
            return _bad_key(family, request, state.rng), outcome
        if kind == "overloaded":
            return _overloaded(family, state.rng), outcome
        if kind == "content_policy":
            return _content_policy(family, state.rng), outcome
        return _context_length(family, state.rng), outcome

    def _success(self, request: _Request, state: _PlatformState) -> _Response:
        rng = state.rng
        if request.route == "chat":
            return _chat_completion(request, rng)
        if request.route == "messages":
            return _anthropic_message(request, rng)
        if request.route == "stability":
            seed = rng.randrange(2**32)
            if request.headers.get("accept", "").startswith("image/"):
                return _Reply(
                    200,
                    FAKE_PNG,
                    content_type="image/png",
                    headers=[("finish-reason", "SUCCESS"), ("seed", str(seed))],
                )
            return _json_reply(
                200, {"image": _FAKE_PNG_B64, "finish_reason": "SUCCESS", "seed": seed}
            )
        if request.route in ("replicate_create", "replicate_get"):
            return self._replicate_prediction(request, rng)
        return self._fal_result(rng)

    def _file_url(self, rng: random.Random) -> str:
        return f"{self.url}/_files/{rng.getrandbits(64):016x}.png"

    def _replicate_prediction(self, request: _Request, rng: random.Random) -> _Reply:
        if request.route == "replicate_get":
            prediction_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        else:
            prediction_id = f"{rng.getrandbits(100):025x}"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        body = request.json if isinstance(request.json, dict) else {}
        rest = request.path.split("/")
        model = "/".join(rest[4:6]) if len(rest) == 7 else body.get("model", "fake/model")
        version = body.get("version", "fake-version")
        api = f"{self.base_url('replicate')}/v1/predictions/{prediction_id}"
        return _json_reply(
            201 if request.route == "replicate_create" else 200,
            {
                "id": prediction_id,
                "model": model if isinstance(model, str) else "fake/model",
                "version": version if isinstance(version, str) else "fake-version",
                "status": "succeeded",
                "output": [self._file_url(rng)],
                "error": None,
                "logs": "",
                "created_at": now,
                "started_at": now,
                "completed_at": now,
                "metrics": {"predict_time": 0.01},
                "urls": {"get": api, "cancel": f"{api}/cancel"},
            },
        )

    def _fal_result(self, rng: random.Random) -> _Reply:
        return _json_reply(
            200,
            {
                "request_id": _uuid(rng),
                "status": "COMPLETED",
                "images": [
                    {
                        "url": self._file_url(rng),
                        "width": _IMAGE_SIZE,
                        "height": _IMAGE_SIZE,
                        "content_type": "image/png",
                    }
                ],
                "seed": rng.randrange(2**32),
                "has_nsfw_concepts": [False],
                "timings": {"inference": 0.01},
            },
        )

    # -- admin -----------------------------------------------------------------------------

    def _admin(self, method: str, rest: list[str], body: bytes) -> _Reply:
        action = "/".join(rest)
        if method == "GET" and action in ("", "info"):
            return _json_reply(
                200,
                {
                    "server": "failover fake providers",
                    "url": self.url,
                    "platforms": {platform: self.base_url(platform) for platform in PLATFORMS},
                },
            )
        if method == "GET" and action == "stats":
            return _json_reply(200, self.stats())
        if method == "POST" and action == "reset":
            self.reset_stats()
            return _json_reply(200, {"reset": True})
        if method == "GET" and action == "behaviour":
            return _json_reply(
                200,
                {platform: state.behaviour.to_dict() for platform, state in self._states.items()},
            )
        if method == "POST" and action == "behaviour":
            try:
                data = json.loads(body or b"null")
                if not isinstance(data, dict):
                    raise ValueError('expected {"platform": ..., "behaviour": {...}}')
                platform = data.get("platform")
                if not isinstance(platform, str):
                    raise ValueError("'platform' must be a platform name or '*'")
                behaviour = Behaviour.from_dict(data.get("behaviour", "healthy"))
                self.set_behaviour(platform, behaviour)
            except (ValueError, TypeError) as exc:
                return _json_reply(400, {"error": {"message": str(exc), "type": "invalid_request"}})
            logger.info("fake provider %s now %r", platform, behaviour)
            return _json_reply(200, {"platform": platform, "behaviour": behaviour.to_dict()})
        return _json_reply(
            404, {"error": {"message": f"no admin endpoint {method} /_admin/{action}"}}
        )


def _route(platform: str, method: str, rest: list[str]) -> str | None:
    """Which endpoint ``method /<platform>/<rest>`` is, or ``None``."""
    if platform in OPENAI_COMPATIBLE_PLATFORMS:
        return "chat" if method == "POST" and rest == ["v1", "chat", "completions"] else None
    if platform == "anthropic":
        return "messages" if method == "POST" and rest == ["v1", "messages"] else None
    if platform == "stability":
        ok = method == "POST" and len(rest) >= 3 and rest[:2] == ["v2beta", "stable-image"]
        return "stability" if ok else None
    if platform == "replicate":
        if method == "POST" and (
            rest == ["v1", "predictions"]
            or (
                len(rest) == 5
                and rest[0] == "v1"
                and rest[1] in ("models", "deployments")
                and rest[4] == "predictions"
            )
        ):
            return "replicate_create"
        if method == "GET" and len(rest) == 3 and rest[:2] == ["v1", "predictions"]:
            return "replicate_get"
        return None
    if platform == "fal":
        return "fal" if method == "POST" and rest else None
    return None


def _parse_and_validate(request: _Request, family: str) -> _Reply | None:
    """Parse a JSON body; for chat endpoints, check what the real API requires."""
    content_type = request.headers.get("content-type", "")
    if request.body and (content_type.startswith("application/json") or not content_type):
        try:
            request.json = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            request.json = None
            if request.route in ("chat", "messages"):
                return _invalid_request(
                    family, "We could not parse the JSON body of your request.", None
                )
    if request.route not in ("chat", "messages"):
        return None
    data = request.json
    if not isinstance(data, dict):
        return _invalid_request(family, "The request body must be a JSON object.", None)
    if not isinstance(data.get("model"), str):
        return _invalid_request(family, "model: Field required", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid_request(family, "messages: Field required (a non-empty list)", "messages")
    if request.route == "messages":
        max_tokens = data.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            return _invalid_request(family, "max_tokens: Field required", "max_tokens")
    return None


def _uuid(rng: random.Random) -> str:
    raw = f"{rng.getrandbits(128):032x}"
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _count_tokens(request: _Request) -> int:
    """A rough, deterministic token count of the prompt (words in text content)."""
    data = request.json if isinstance(request.json, dict) else {}
    words = 0
    texts: list[object] = [data.get("system")]
    for message in data.get("messages", []):
        if isinstance(message, dict):
            texts.append(message.get("content"))
    for text in texts:
        if isinstance(text, str):
            words += len(text.split())
        elif isinstance(text, list):
            for part in text:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    words += len(part["text"].split())
    return max(words, 1)


def _reply_words(platform: str, rng: random.Random) -> list[str]:
    return ["Fake", f"{platform}", "reply:", *rng.sample(_WORDS, rng.randint(3, 6))]


def _sse(data: object, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{prefix}data: {payload}\n\n".encode()


def _chat_completion(request: _Request, rng: random.Random) -> _Response:
    words = _reply_words(request.platform, rng)
    prompt_tokens = _count_tokens(request)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    completion_id = f"chatcmpl-{rng.getrandbits(96):024x}"
    created = int(time.time())
    common = {"id": completion_id, "created": created, "model": request.model}
    headers = [("x-request-id", f"req_{rng.getrandbits(96):024x}")]
    if not request.wants_stream:
        body = {
            **common,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return _json_reply(200, body, headers)

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(
            {
                **common,
                "object": "chat.completion.chunk",
                "system_fingerprint": "fp_fake",
                "choices": [choice],
            }
        )

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": w if i == 0 else f" {w}"}, None) for i, w in enumerate(words)]
    events.append(chunk({}, "stop"))
    events.append(
        _sse({**common, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    )
    events.append(_sse("[DONE]"))
    return _StreamReply(events, headers=headers)


def _anthropic_message(request: _Request, rng: random.Random) -> _Response:
    words = _reply_words(request.platform, rng)
    input_tokens = _count_tokens(request)
    message_id = f"msg_{rng.getrandbits(96):024x}"
    headers = [("request-id", f"req_{rng.getrandbits(96):024x}")]
    if not request.wants_stream:
        body = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": len(words)},
        }
        return _json_reply(200, body, headers)
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        },
    }
    events = [
        _sse(start, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    for i, word in enumerate(words):
        delta = {"type": "text_delta", "text": word if i == 0 else f" {word}"}
        events.append(
            _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        )
    events += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return _StreamReply(events, headers=headers)


async def serve_forever(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    seed: int = 0,
    behaviours: Mapping[str, Behaviour] | None = None,
    task_status: anyio.abc.TaskStatus[FakeProviderServer] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`FakeProviderServer` until cancelled (what ``failover fake-providers`` runs).

    With ``await task_group.start(serve_forever, 0)`` the caller gets the running server
    (its ``url`` and ``port``) once it listens.
    """
    async with FakeProviderServer(port, host=host, seed=seed, behaviours=behaviours) as server:
        task_status.started(server)
        await anyio.sleep_forever()
