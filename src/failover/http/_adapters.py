"""The two text-generation APIs most providers speak: OpenAI-compatible chat completions
(OpenAI, Groq, xAI, Together, Gemini's OpenAI-compatible endpoint, ...) and Anthropic's
messages API."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Unpack

from failover._core.classify import parse_error_body
from failover._core.errors import Transient
from failover._core.spec import PlatformSpec
from failover.http._base import (
    AdapterOptions,
    ChatAdapter,
    InvalidArgument,
    Message,
    optional_int,
)
from failover.http._check import CheckPlan
from failover.http._check_plans import anthropic, openai_compatible
from failover.http._classify import error_from_body
from failover.http._result import TextResult
from failover.http._streaming import ServerSentEvent

#: Where each well-known OpenAI-compatible platform answers (``base_url`` overrides).
OPENAI_COMPATIBLE_BASE_URLS: Final[Mapping[str, str]] = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "xai": "https://api.x.ai/v1",
    "together": "https://api.together.xyz/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai",
    "openrouter": "https://openrouter.ai/api/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
}
ANTHROPIC_BASE_URLS: Final[Mapping[str, str]] = {"anthropic": "https://api.anthropic.com"}
#: The messages API requires ``max_tokens``; this is sent when none is given.
ANTHROPIC_DEFAULT_MAX_TOKENS: Final = 1024
ANTHROPIC_VERSION: Final = "2023-06-01"


def _answer(
    platform: PlatformSpec,
    data: Any,
    text: object,
    finish: object,
    usage_keys: tuple[str, str],
) -> TextResult:
    """A :class:`TextResult` from a whole answer's JSON; ``usage_keys`` name its input and
    output token counts. Fields of the wrong type read as missing."""
    usage = data.get("usage") or {}
    model = data.get("model")
    return TextResult(
        text=text if isinstance(text, str) else "",
        model=model if isinstance(model, str) and model else platform.model,
        finish_reason=finish if isinstance(finish, str) else None,
        input_tokens=optional_int(usage.get(usage_keys[0])),
        output_tokens=optional_int(usage.get(usage_keys[1])),
        platform=platform.name,
    )


class _StreamState:
    """What a stream decoder remembers; subclasses add ``feed``."""

    __slots__ = ("done", "finish_reason", "input_tokens", "model", "output_tokens", "scrub")

    def __init__(self, scrub: Callable[[str], str]) -> None:
        self.scrub = scrub
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.done = False


def _json_event(event: ServerSentEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise Transient("malformed server-sent event", status_code=None) from None


class OpenAICompatibleChat(ChatAdapter):
    """``POST {base_url}/chat/completions`` with ``Authorization: Bearer <key>``.

    ``base_url`` defaults per platform name (:data:`OPENAI_COMPATIBLE_BASE_URLS`). Streams ask
    for token usage (``stream_options.include_usage``); pass ``stream_usage=False`` for a
    server that rejects that field.
    """

    default_base_urls = OPENAI_COMPATIBLE_BASE_URLS
    path: ClassVar[str] = "chat/completions"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        stream_usage: bool = True,
        **options: Unpack[AdapterOptions],
    ) -> None:
        super().__init__(base_url, **options)
        self.stream_usage = bool(stream_usage)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def request_body(
        self,
        platform: PlatformSpec,
        messages: Sequence[Message],
        *,
        stream: bool,
        max_tokens: int | None,
        temperature: float | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            **extra,
            "model": platform.model,
            "messages": [dict(message) for message in messages],
        }
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def parse_result(self, platform: PlatformSpec, data: Any) -> TextResult:
        choice = data["choices"][0]
        return _answer(
            platform,
            data,
            choice["message"].get("content"),
            choice.get("finish_reason"),
            ("prompt_tokens", "completion_tokens"),
        )

    def stream_decoder(self, scrub: Callable[[str], str]) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(scrub)

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET models/{model}`` (Gemini natively; a list where there is no per-model
        lookup): see :func:`failover.http._check_plans.openai_compatible`."""
        return openai_compatible(platform.name, platform.model, self._base_url(platform.name))


class OpenAIStreamDecoder(_StreamState):
    """``data: {chat.completion.chunk}`` events, then ``data: [DONE]``."""

    __slots__ = ()

    def feed(self, event: ServerSentEvent) -> str | None:
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        data = _json_event(event)
        if not isinstance(data, Mapping):
            return None
        if data.get("error"):
            raise error_from_body(None, parse_error_body(event.data), scrub=self.scrub)
        model = data.get("model")
        if isinstance(model, str) and model:
            self.model = model
        usage = data.get("usage")
        if not isinstance(usage, Mapping):
            x_groq = data.get("x_groq")  # Groq reports usage here on the last chunk
            usage = x_groq.get("usage") if isinstance(x_groq, Mapping) else None
        if isinstance(usage, Mapping):
            self.input_tokens = optional_int(usage.get("prompt_tokens"))
            self.output_tokens = optional_int(usage.get("completion_tokens"))
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return None
        choice = choices[0]
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, Mapping) else None
        return content if isinstance(content, str) else None


class AnthropicMessages(ChatAdapter):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``.

    System messages are sent as the top-level ``system`` field; ``max_tokens`` (required by
    the API) defaults to :data:`ANTHROPIC_DEFAULT_MAX_TOKENS`.
    """

    default_base_urls = ANTHROPIC_BASE_URLS
    path: ClassVar[str] = "v1/messages"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}

    def request_body(
        self,
        platform: PlatformSpec,
        messages: Sequence[Message],
        *,
        stream: bool,
        max_tokens: int | None,
        temperature: float | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        system = [message["content"] for message in messages if message["role"] == "system"]
        conversation = [dict(message) for message in messages if message["role"] != "system"]
        if not conversation:
            raise InvalidArgument("messages needs at least one non-system message")
        body: dict[str, Any] = {
            **extra,
            "model": platform.model,
            "messages": conversation,
            "max_tokens": max_tokens if max_tokens is not None else ANTHROPIC_DEFAULT_MAX_TOKENS,
        }
        if system:
            if all(isinstance(part, str) for part in system):
                body["system"] = "\n\n".join(system)
            else:  # content blocks: concatenate the block lists
                body["system"] = [
                    block
                    for part in system
                    for block in (
                        [{"type": "text", "text": part}] if isinstance(part, str) else part
                    )
                ]
        if stream:
            body["stream"] = True
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def parse_result(self, platform: PlatformSpec, data: Any) -> TextResult:
        text = "".join(
            block["text"]
            for block in data["content"]
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
        return _answer(
            platform, data, text, data.get("stop_reason"), ("input_tokens", "output_tokens")
        )

    def stream_decoder(self, scrub: Callable[[str], str]) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(scrub)

    def check_plan(self, platform: PlatformSpec) -> CheckPlan:
        """``GET /v1/models/{model}``."""
        return anthropic(platform.model)


class AnthropicStreamDecoder(_StreamState):
    """``message_start``, ``content_block_delta`` (text), ``message_delta`` (stop reason,
    output tokens), ``message_stop``; ``error`` events carry an Anthropic error body."""

    __slots__ = ()

    def feed(self, event: ServerSentEvent) -> str | None:
        data = _json_event(event)
        if not isinstance(data, Mapping):
            return None
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if isinstance(text, str) else None
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, Mapping):
                model = message.get("model")
                if isinstance(model, str) and model:
                    self.model = model
                self._usage(message.get("usage"))
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("stop_reason"), str):
                self.finish_reason = delta["stop_reason"]
            self._usage(data.get("usage"))
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise error_from_body(None, parse_error_body(event.data), scrub=self.scrub)
        return None

    def _usage(self, usage: object) -> None:
        if isinstance(usage, Mapping):
            input_tokens = optional_int(usage.get("input_tokens"))
            if input_tokens is not None:
                self.input_tokens = input_tokens
            output_tokens = optional_int(usage.get("output_tokens"))
            if output_tokens is not None:
                self.output_tokens = output_tokens
