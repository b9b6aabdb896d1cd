"""What the fake providers send and accept: each provider's request, response and error shapes.

The error bodies of the provider-specific situations (out of credits, rate limited, bad key,
overloaded, content policy, context length) are the examples of
:data:`failover._core.classify.providers.SHAPES`, the same table the classifier is tested
against: the fake answers exactly what failover is known to classify right. Generic failures
(a flaky 5xx, a gateway page, a malformed request) are built here in each provider's dialect.

Everything returns a :data:`Response` value; :mod:`.server` puts it on the wire.
"""

from __future__ import annotations

import base64
import http
import json
import math
import random
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from failover._core.classify import providers
from failover._core.classify.providers import (
    JSON,
    anthropic_body,
    google_body,
    openai_body,
    replicate_body,
    stability_body,
)
from failover.testing.fake.behaviour import Behaviour

#: Platforms that speak the OpenAI chat-completions protocol.
OPENAI_COMPATIBLE_PLATFORMS: Final = ("openai", "groq", "xai", "together", "google")
#: The text and image platforms every fake failure applies to, in a stable order.
PLATFORMS: Final = (*OPENAI_COMPATIBLE_PLATFORMS, "anthropic", "stability", "replicate", "fal")
#: Image-only platforms (Pollinations, Hugging Face Inference, Black Forest Labs as
#: ``flux_pro``): they answer only the failures their APIs really send (:data:`MEDIA_DIALECT`).
MEDIA_PLATFORMS: Final = ("pollinations", "huggingface", "flux_pro")
#: Every platform the server knows.
ALL_PLATFORMS: Final = (*PLATFORMS, *MEDIA_PLATFORMS)

#: Which provider's error-body dialect each platform speaks (a ``provider`` of the shapes
#: table). Google's OpenAI-compatible endpoint answers errors in Google's own
#: ``{"error": {"code", "message", "status"}}`` shape.
DIALECT: Final[dict[str, str]] = {
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
#: The error dialect of each image-only platform.
MEDIA_DIALECT: Final[dict[str, str]] = {
    "pollinations": "pollinations",
    "huggingface": "huggingface",
    "flux_pro": "bfl",
}

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


# -- responses ------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """A complete response with a ``Content-Length``."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class StreamReply:
    """A server-sent-events response; ``cut_after`` events, then the connection drops."""

    events: list[bytes]
    cut_after: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class CutReply:
    """Response headers announcing a body that never comes: the connection drops."""

    body_length: int


Response: TypeAlias = Reply | StreamReply | CutReply


def json_bytes(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def json_reply(status: int, data: object, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, json_bytes(data), headers=headers or [])


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
class Request:
    """What a handler needs to know about one request (never logged)."""

    method: str
    path: str
    platform: str
    route: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    query: str = ""

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


def reason(status: int) -> bytes:
    """The reason phrase of ``status`` (529, Anthropic's, has none in the standard)."""
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Site Overloaded" if status == 529 else b""


# -- errors -----------------------------------------------------------------------------------


class _Values(dict[str, str | None]):
    """One reply's placeholder values; the random error id is drawn only if the body has one
    (so a seeded server draws the same numbers whatever the dialect)."""

    def __init__(self, rng: random.Random, **values: str | None) -> None:
        super().__init__(values)
        self._rng = rng

    def __missing__(self, name: str) -> str:
        if name != "id":
            raise KeyError(name)
        value = self["id"] = f"{self._rng.getrandbits(128):032x}"
        return value


def _shape_reply(dialect: str, situation: str, values: _Values) -> Reply:
    shape = providers.shape(dialect, situation)
    if shape is None:
        raise LookupError(f"no {situation!r} error shape for {dialect!r}")
    body, headers = shape.render(values)
    return json_reply(shape.status, body, headers)


def behaviour_error(
    dialect: str, behaviour: Behaviour, request: Request, rng: random.Random
) -> Reply:
    """The provider's real answer for a failing ``behaviour`` (out of credits, rate limited,
    bad key, overloaded, content policy, context length), from the shapes table."""
    situation: str = behaviour.kind
    values = _Values(rng)
    if situation == "rate_limited":
        retry_after = behaviour.retry_after
        values["model"] = request.model
        values["wait"] = "" if retry_after is None else f" Please try again in {retry_after:g}s."
        values["reset"] = (
            "" if retry_after is None else f" Your rate limit resets in ~{retry_after:g}s."
        )
        values["retry_after"] = None if retry_after is None else str(math.ceil(retry_after))
        values["retry_after_ms"] = None if retry_after is None else str(round(retry_after * 1000))
    elif situation == "bad_key":
        token = request.bearer_token()
        if token:
            values["key"] = _mask_key(token)
        elif providers.shape(dialect, "missing_key") is not None:
            situation = "missing_key"
    return _shape_reply(dialect, situation, values)


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


def server_error(dialect: str, status: int, rng: random.Random) -> Reply:
    """A flaky failure: a gateway page for 502/504, the provider's JSON shape otherwise."""
    if status in (502, 504):
        return _gateway_page(status)
    if dialect == "anthropic" and status == 529:
        return _shape_reply(dialect, "overloaded", _Values(rng))
    text = _SERVER_ERROR_TEXT.get(status, "The server had an error processing your request.")
    body: JSON
    if dialect == "openai":
        body = openai_body(text, "server_error", None)
    elif dialect == "google":
        body = google_body(
            status, "An internal error has occurred.", _GOOGLE_STATUS.get(status, "INTERNAL")
        )
    elif dialect == "anthropic":
        body = anthropic_body("api_error", "Internal server error")
    elif dialect == "stability":
        body = stability_body("internal_error", text)
    elif dialect == "replicate":
        body = replicate_body(status, reason(status).decode() or "Server Error", text)
    else:
        body = {"detail": "Internal Server Error"}
    return json_reply(status, providers.fill(body, _Values(rng)))


def _gateway_page(status: int) -> Reply:
    phrase = reason(status).decode() or "Error"
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode(), content_type="text/html")


def _invalid_request(dialect: str, message: str, param: str | None) -> Reply:
    """The provider's 400 for a malformed request (bad JSON, missing field)."""
    if dialect == "google":
        return json_reply(400, google_body(400, message, "INVALID_ARGUMENT"))
    if dialect == "anthropic":
        return json_reply(400, anthropic_body("invalid_request_error", message))
    return json_reply(400, openai_body(message, "invalid_request_error", None, param=param))


# -- requests ---------------------------------------------------------------------------------


def route(platform: str, method: str, rest: list[str]) -> str | None:
    """Which endpoint ``method /<platform>/<rest>`` is, or ``None``."""
    if platform == "google" and method == "POST" and _gemini_native(rest):
        return "gemini_stream" if rest[2].endswith(":streamGenerateContent") else "gemini"
    if platform in OPENAI_COMPATIBLE_PLATFORMS:
        if method == "POST" and rest in (
            ["v1", "images", "generations"],
            ["v1", "images", "edits"],
        ):
            return "openai_images"
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
        if method == "POST" and len(rest) == 4 and rest[:2] == ["v1", "predictions"]:
            return "replicate_cancel" if rest[3] == "cancel" else None
        return None
    if platform == "fal":
        if rest[:1] == ["queue"]:
            return _fal_queue_route(method, rest[1:])
        return "fal" if method == "POST" and rest else None
    return _media_route(platform, method, rest)


def _gemini_native(rest: list[str]) -> bool:
    """Gemini's own API, as google-genai calls it (base ``/google``):
    ``v1beta/models/<model>:generateContent`` and ``...:streamGenerateContent?alt=sse``
    (``v1`` too, google-genai's default version)."""
    return (
        len(rest) == 3
        and rest[0] in ("v1", "v1beta")
        and rest[1] == "models"
        and rest[2].endswith((":generateContent", ":streamGenerateContent"))
    )


def _fal_queue_route(method: str, rest: list[str]) -> str | None:
    """``queue/<app>`` (submit), ``.../requests/<id>[/status|/cancel]``."""
    if "requests" not in rest:
        return "fal_submit" if method == "POST" and len(rest) >= 2 else None
    tail = rest[rest.index("requests") + 1 :]
    if method == "GET" and len(tail) == 1:
        return "fal_result"
    if method == "GET" and len(tail) == 2 and tail[1] == "status":
        return "fal_status"
    if method == "PUT" and len(tail) == 2 and tail[1] == "cancel":
        return "fal_cancel"
    return None


def _media_route(platform: str, method: str, rest: list[str]) -> str | None:
    if platform == "pollinations":
        ok = method == "GET" and len(rest) >= 2 and rest[0] == "prompt"
        return "pollinations" if ok else None
    if platform == "huggingface":
        ok = method == "POST" and len(rest) >= 2 and rest[0] == "models"
        return "huggingface" if ok else None
    if platform == "flux_pro":
        if method == "GET" and rest == ["v1", "get_result"]:
            return "bfl_result"
        ok = method == "POST" and len(rest) == 2 and rest[0] == "v1"
        return "bfl_submit" if ok else None
    return None


def parse_and_validate(request: Request, dialect: str) -> Reply | None:
    """Parse a JSON body; for chat endpoints, check what the real API requires."""
    content_type = request.headers.get("content-type", "")
    if request.body and (content_type.startswith("application/json") or not content_type):
        try:
            request.json = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            request.json = None
            if request.route in ("chat", "messages"):
                return _invalid_request(
                    dialect, "We could not parse the JSON body of your request.", None
                )
    if request.route in ("gemini", "gemini_stream"):
        return _invalid_gemini_request(request, dialect)
    if request.route not in ("chat", "messages"):
        return None
    data = request.json
    if not isinstance(data, dict):
        return _invalid_request(dialect, "The request body must be a JSON object.", None)
    if not isinstance(data.get("model"), str):
        return _invalid_request(dialect, "model: Field required", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid_request(dialect, "messages: Field required (a non-empty list)", "messages")
    if request.route == "messages":
        max_tokens = data.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            return _invalid_request(dialect, "max_tokens: Field required", "max_tokens")
    return None


def _invalid_gemini_request(request: Request, dialect: str) -> Reply | None:
    """Gemini's 400 for a body without ``contents`` (what generateContent requires)."""
    data = request.json
    if not isinstance(data, dict):
        return _invalid_request(dialect, "Invalid JSON payload received.", None)
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        return _invalid_request(
            dialect, "* GenerateContentRequest.contents: contents is not specified", None
        )
    return None


# -- successes --------------------------------------------------------------------------------


def success(request: Request, rng: random.Random, server_url: str) -> Response:
    """The provider's answer to a request that succeeds (``server_url``: for file links)."""
    if request.route == "chat":
        return _chat_completion(request, rng)
    if request.route == "messages":
        return _anthropic_message(request, rng)
    if request.route in ("gemini", "gemini_stream"):
        return _gemini_content(request, rng)
    if request.route == "stability":
        seed = rng.randrange(2**32)
        if request.headers.get("accept", "").startswith("image/"):
            return Reply(
                200,
                FAKE_PNG,
                content_type="image/png",
                headers=[("finish-reason", "SUCCESS"), ("seed", str(seed))],
            )
        return json_reply(200, {"image": _FAKE_PNG_B64, "finish_reason": "SUCCESS", "seed": seed})
    if request.route in ("replicate_create", "replicate_get"):
        return _replicate_prediction(request, rng, server_url)
    return _fal_result(rng, server_url)


def _file_url(server_url: str, rng: random.Random) -> str:
    return f"{server_url}/_files/{rng.getrandbits(64):016x}.png"


def _replicate_prediction(request: Request, rng: random.Random, server_url: str) -> Reply:
    if request.route == "replicate_get":
        prediction_id = request.path.rstrip("/").rsplit("/", 1)[-1]
    else:
        prediction_id = f"{rng.getrandbits(100):025x}"
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    body = request.json if isinstance(request.json, dict) else {}
    rest = request.path.split("/")
    model = "/".join(rest[4:6]) if len(rest) == 7 else body.get("model", "fake/model")
    version = body.get("version", "fake-version")
    api = f"{server_url}/replicate/v1/predictions/{prediction_id}"
    return json_reply(
        201 if request.route == "replicate_create" else 200,
        {
            "id": prediction_id,
            "model": model if isinstance(model, str) else "fake/model",
            "version": version if isinstance(version, str) else "fake-version",
            "status": "succeeded",
            "output": [_file_url(server_url, rng)],
            "error": None,
            "logs": "",
            "created_at": now,
            "started_at": now,
            "completed_at": now,
            "metrics": {"predict_time": 0.01},
            "urls": {"get": api, "cancel": f"{api}/cancel"},
        },
    )


def _fal_result(rng: random.Random, server_url: str) -> Reply:
    return json_reply(
        200,
        {
            "request_id": _uuid(rng),
            "status": "COMPLETED",
            "images": [
                {
                    "url": _file_url(server_url, rng),
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


def _uuid(rng: random.Random) -> str:
    raw = f"{rng.getrandbits(128):032x}"
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _count_tokens(request: Request) -> int:
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


def _chat_completion(request: Request, rng: random.Random) -> Response:
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
        return json_reply(200, body, headers)

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
    return StreamReply(events, headers=headers)


def _anthropic_message(request: Request, rng: random.Random) -> Response:
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
        return json_reply(200, body, headers)
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
    return StreamReply(events, headers=headers)


def _gemini_content(request: Request, rng: random.Random) -> Response:
    """A ``GenerateContentResponse``: one candidate; streamed, one per word (``alt=sse``)."""
    words = _reply_words(request.platform, rng)
    model = request.path.rsplit("/", 1)[-1].partition(":")[0]
    data = request.json if isinstance(request.json, dict) else {}
    prompt_tokens = 0
    for content in data.get("contents", []):
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                prompt_tokens += len(part["text"].split())
    usage = {
        "promptTokenCount": max(prompt_tokens, 1),
        "candidatesTokenCount": len(words),
        "totalTokenCount": max(prompt_tokens, 1) + len(words),
    }
    response_id = f"{rng.getrandbits(96):024x}"

    def answer(text: str, finished: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if finished:
            candidate["finishReason"] = "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }

    if request.route == "gemini":
        return json_reply(200, answer(" ".join(words), True))
    last = len(words) - 1
    events = [
        _sse(answer(word if i == 0 else f" {word}", i == last)) for i, word in enumerate(words)
    ]
    return StreamReply(events)
