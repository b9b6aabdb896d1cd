"""``TextGeneration``: text generation down the manager's fallback chain in one object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import httpx

from failover._core.errors import ConfigError, ProviderError
from failover._core.spec import TEXT_GENERATION, PlatformSpec
from failover.http._adapters import (
    ANTHROPIC_BASE_URLS,
    OPENAI_COMPATIBLE_BASE_URLS,
    AnthropicMessages,
    OpenAICompatibleChat,
)
from failover.http._base import DEFAULT_TIMEOUT, ChatAdapter, Message, check_messages
from failover.http._blocking import blocking, run_blocking
from failover.http._check import FacadeChecks
from failover.http._result import TextResult, TokenPrice
from failover.http._streaming import TextStream
from failover.http._sync_stream import SyncTextStream

if TYPE_CHECKING:
    from failover._manager import PlatformManager


def default_adapter(
    name: str,
    base_url: str | None,
    timeout: httpx.Timeout | float,
    environ: Mapping[str, str] | None = None,
) -> ChatAdapter | None:
    """The adapter a well-known platform name speaks, or ``None`` for an unknown name."""
    if name in ANTHROPIC_BASE_URLS:
        return AnthropicMessages(base_url, timeout=timeout, environ=environ)
    if name in OPENAI_COMPATIBLE_BASE_URLS or base_url is not None:
        return OpenAICompatibleChat(base_url, timeout=timeout, environ=environ)
    return None


class TextGeneration(FacadeChecks):
    """Chat completions from whichever platform of ``operation`` is healthy now::

        priorities = {"text_generation": [("groq", "llama-3.3-70b-versatile"),
                                          ("anthropic", "claude-3-5-haiku-latest")]}
        async with PlatformManager(priorities) as manager:
            chat = TextGeneration(manager)
            reply = await chat.complete([{"role": "user", "content": "Hello"}])
            print(reply.platform, reply.text)

    Each platform of the operation gets its adapter: ``adapters[name]`` if given, else
    :class:`AnthropicMessages` for ``anthropic`` and :class:`OpenAICompatibleChat` for the
    OpenAI-compatible names (``base_urls[name]`` overrides the address; an unknown name with
    a base URL is taken as OpenAI-compatible). The adapters' clients close with the manager.
    With ``prices``, each answer's token usage becomes its platform's cost. The built
    adapters read keys from ``environ``, by default the manager's (``PlatformManager(environ=)``,
    else ``os.environ``).

    Synchronous code calls the ``_sync`` twins, as it does on the manager
    (``with_fallback_sync``): :meth:`complete_sync`, :meth:`stream_sync` and :meth:`call_sync`
    run the same requests through a pooled, thread-safe ``httpx.Client`` per platform, on the
    same breakers and health.
    """

    def __init__(
        self,
        manager: PlatformManager | None = None,
        adapters: Mapping[str, ChatAdapter] | None = None,
        *,
        operation: str = TEXT_GENERATION,
        base_urls: Mapping[str, str] | None = None,
        prices: Mapping[str, TokenPrice] | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if manager is None:
            from failover import default_manager

            manager = default_manager()
        if environ is None:
            environ = manager.environ  # the keys the manager counts as present are the ones sent
        names = [spec.name for spec in manager.platforms(operation)]
        adapters = dict(adapters or {})
        base_urls = dict(base_urls or {})
        prices = dict(prices or {})
        for label, mapping in (
            ("adapters", adapters),
            ("base_urls", base_urls),
            ("prices", prices),
        ):
            unknown = sorted(set(mapping) - set(names))
            if unknown:
                raise ConfigError(
                    f"{label} names {unknown[0]!r}, which is not a platform of {operation!r} "
                    f"(platforms: {', '.join(names) or '(none)'})",
                    key=label,
                )
        for name, adapter in adapters.items():
            if not isinstance(adapter, ChatAdapter):
                raise ConfigError(
                    f"adapters[{name!r}] must be a ChatAdapter such as OpenAICompatibleChat(), "
                    f"got {type(adapter).__name__}",
                    key=name,
                )
        for name, price in prices.items():
            if not isinstance(price, TokenPrice):
                raise ConfigError(
                    f"prices[{name!r}] must be a TokenPrice(input, output), got {price!r}",
                    key=name,
                )
        self._adapters: dict[str, ChatAdapter] = {}
        for name in names:
            chosen = adapters.get(name)
            if chosen is None:
                chosen = default_adapter(name, base_urls.get(name), timeout, environ)
            if chosen is None:
                raise ConfigError(
                    f"no adapter for platform {name!r}: pass adapters={{{name!r}: "
                    f"OpenAICompatibleChat(base_url=...)}} or base_urls={{{name!r}: ...}}",
                    key=name,
                )
            self._adapters[name] = chosen
        self.manager = manager
        self.operation = operation
        self.prices = prices
        manager.add_closer(self.aclose, blocking=self.close)

    def adapter(self, platform: PlatformSpec | str) -> ChatAdapter:
        """The adapter that calls ``platform``."""
        name = platform.name if isinstance(platform, PlatformSpec) else platform
        try:
            return self._adapters[name]
        except KeyError:
            raise ConfigError(
                f"platform {name!r} is not a platform of {self.operation!r} "
                f"(platforms: {', '.join(self._adapters) or '(none)'})",
                key=name,
            ) from None

    # -- through the chain -------------------------------------------------------------------

    async def complete(self, messages: Sequence[Message], **options: Any) -> TextResult:
        """A whole answer from the first platform that gives one (``result.platform`` says
        which). Options: ``max_tokens``, ``temperature``, any extra body field, and
        ``failover_context={...}`` for the ordering strategy."""
        check_messages(messages)
        result: TextResult
        result, _ = await self.manager.with_fallback(
            self.operation, self._complete_on, messages, **options
        )
        return result

    async def stream(self, messages: Sequence[Message], **options: Any) -> TextStream:
        """A streamed answer, returned once its first piece has arrived::

            async with await chat.stream(messages) as answer:
                async for piece in answer:
                    print(piece, end="")

        Platforms are tried in turn until one sends a first piece; after that a failure
        raises :class:`StreamInterrupted` (with ``partial_text``), never another platform.
        """
        check_messages(messages)
        stream: TextStream
        stream, _ = await self.manager.with_fallback(
            self.operation, self._stream_on, messages, **options
        )
        return stream

    # -- synchronous twins -------------------------------------------------------------------

    def complete_sync(self, messages: Sequence[Message], **options: Any) -> TextResult:
        """:meth:`complete` for synchronous code (no event loop needed; any thread)."""
        check_messages(messages)
        result: TextResult
        result, _ = self.manager.with_fallback_sync(
            self.operation, self._complete_sync, messages, **options
        )
        return result

    def stream_sync(self, messages: Sequence[Message], **options: Any) -> SyncTextStream:
        """:meth:`stream` for synchronous code::

        with chat.stream_sync(messages) as answer:
            for piece in answer:
                print(piece, end="")
        """
        check_messages(messages)
        stream: SyncTextStream
        stream, _ = self.manager.with_fallback_sync(
            self.operation, self._stream_sync, messages, **options
        )
        return stream

    def call_sync(
        self, platform: PlatformSpec, /, messages: Sequence[Message], **options: Any
    ) -> TextResult | SyncTextStream:
        """Call one platform: ``manager.with_fallback_sync("text_generation", chat.call_sync,
        messages)`` (``stream=True`` for a :class:`SyncTextStream`)."""
        if options.pop("stream", False):
            return self._stream_sync(platform, messages, **options)
        return self._complete_sync(platform, messages, **options)

    def _complete_sync(
        self, platform: PlatformSpec, /, messages: Sequence[Message], **options: Any
    ) -> TextResult:
        return run_blocking(self._complete_on(platform, messages, **options))

    def _stream_sync(
        self, platform: PlatformSpec, /, messages: Sequence[Message], **options: Any
    ) -> SyncTextStream:
        return SyncTextStream(run_blocking(self._stream_on(platform, messages, **options)))

    # -- the operation (for with_fallback and @fallback) -------------------------------------

    @overload
    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: Literal[False] = False,
        **options: Any,
    ) -> TextResult: ...

    @overload
    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: Literal[True],
        **options: Any,
    ) -> TextStream: ...

    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: bool = False,
        **options: Any,
    ) -> TextResult | TextStream:
        """Call one platform: ``manager.with_fallback("text_generation", chat, messages)``."""
        if stream:
            return await self._stream_on(platform, messages, **options)
        return await self._complete_on(platform, messages, **options)

    async def _complete_on(
        self, platform: PlatformSpec, /, messages: Sequence[Message], **options: Any
    ) -> TextResult:
        result = await self.adapter(platform).complete(platform, messages, **options)
        self._book(platform, result.input_tokens, result.output_tokens)
        return result

    async def _stream_on(
        self, platform: PlatformSpec, /, messages: Sequence[Message], **options: Any
    ) -> TextStream:
        stream = await self.adapter(platform).stream(platform, messages, **options)

        async def ended(stream: TextStream, error: ProviderError | None) -> None:
            if error is None:
                self._book(platform, stream.input_tokens, stream.output_tokens)
            else:
                # The attempt counted as a success when the first piece came; the break
                # still tells the platform's health.
                if blocking():  # read by a SyncTextStream, in a thread with no event loop
                    self.manager.report_failure_sync(platform, self.operation, error)
                else:
                    await self.manager.report_failure(platform, self.operation, error)

        stream.observer = ended
        return stream

    def _book(
        self, platform: PlatformSpec, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        price = self.prices.get(platform.name)
        if price is None:
            return
        cost = price.cost(input_tokens, output_tokens)
        if cost is not None:
            self.manager.record_cost(platform, self.operation, cost)

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every adapter (and so every client and open stream). Run by the manager's
        ``aclose``; safe to call twice."""
        for adapter in dict.fromkeys(self._adapters.values()):
            await adapter.aclose()

    def close(self) -> None:
        """Close every adapter's synchronous clients and streams (no event loop needed).
        Run by the manager's ``close``; safe to call twice."""
        for adapter in dict.fromkeys(self._adapters.values()):
            adapter.close()

    def __repr__(self) -> str:
        return f"<TextGeneration {self.operation}: {', '.join(self._adapters)}>"
