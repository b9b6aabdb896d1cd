"""What every chat adapter shares: one httpx client per platform, the key read at call time,
timeouts, argument checks, error classification, and closing."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self, TypedDict, overload

import anyio
import httpx

from failover._core import validate
from failover._core.classify import parse_error_body, retry_after_of
from failover._core.errors import AuthFailed, BadRequest, Closed, ConfigError, Transient
from failover._core.spec import PlatformSpec
from failover._observe.scrub import Scrubber
from failover.http._blocking import SyncClients, blocking
from failover.http._check import Discoverable
from failover.http._classify import error_from_body, read_error_body, to_provider_error
from failover.http._pool import (
    DEFAULT_LIMITS,
    async_transport,
    context_for,
    prepare_tls,
    sync_transport,
)
from failover.http._result import TextResult, record_on_span
from failover.http._streaming import StreamDecoder, TextStream

#: Connect quickly or move on; give a model a minute between bytes of its answer.
DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=5.0, pool=10.0)

Message = Mapping[str, Any]

_RESERVED_FIELDS: Final = frozenset({"model", "messages", "stream", "stream_options"})


class RequestBody(httpx.ByteStream):
    """An in-memory request body that httpx iterates without an async generator.

    httpx's own ``ByteStream.__aiter__`` is an async generator: an attempt cancelled while its
    body is being written (attempt timeout, deadline, the caller) leaves the generator
    unfinished, and trio warns when it is collected (encode/httpx#3686). A plain iterator has
    nothing left to finish.
    """

    def __aiter__(self) -> _OneChunk:
        return _OneChunk(self._stream)


class _OneChunk:
    __slots__ = ("_chunk",)

    def __init__(self, chunk: bytes) -> None:
        self._chunk: bytes | None = chunk

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        chunk = self._chunk
        if chunk is None:
            raise StopAsyncIteration
        self._chunk = None
        return chunk


class InvalidArgument(BadRequest, TypeError):
    """An argument of a text-generation call is malformed. As a :class:`BadRequest` the
    fallback chain raises it at once instead of trying every platform with it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="bad_request", status_code=None)


def check_messages(messages: object) -> Sequence[Message]:
    """``messages`` if it is a non-empty list of ``{"role": str, "content": ...}`` mappings."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise InvalidArgument(
            "messages must be a non-empty list of {'role': ..., 'content': ...} mappings, "
            f"got {type(messages).__name__}"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidArgument(
                f"messages[{index}] must be a mapping with a 'role' string and 'content', "
                f"got {type(message).__name__}"
            )
        if "content" not in message:
            raise InvalidArgument(f"messages[{index}] has no 'content'")
    return messages


def check_options(max_tokens: object, temperature: object) -> None:
    """The per-call options; a bad one is the request's own fault (:class:`InvalidArgument`)."""
    try:
        if max_tokens is not None:
            validate.integer("max_tokens", max_tokens, at_least=1)
        if temperature is not None:
            validate.number("temperature", temperature, at_least=0)
    except ConfigError as exc:
        raise InvalidArgument(str(exc)) from None


class AdapterOptions(TypedDict, total=False):
    """The keyword arguments every :class:`ChatAdapter` takes (a subclass adds its own)."""

    timeout: httpx.Timeout | float
    limits: httpx.Limits
    headers: Mapping[str, str] | None
    max_tokens: int | None
    transport: httpx.AsyncBaseTransport | None
    sync_transport: httpx.BaseTransport | None
    environ: Mapping[str, str] | None


class ChatAdapter(Discoverable):
    """Base class of the text-generation adapters; subclasses say how to talk to one API.

    An adapter is a fallback operation: ``await adapter(platform, messages)`` (or
    ``adapter.complete``/``adapter.stream``) calls the platform's model and returns a
    :class:`TextResult` (or a :class:`TextStream`). It keeps one ``httpx.AsyncClient`` per
    platform, made on first use and closed by :meth:`aclose`, and for the synchronous API
    (:mod:`._blocking`) one thread-safe ``httpx.Client`` per platform; the API key is read from the
    platform's ``api_key_env`` on every call and never stored.
    """

    #: Base URL per well-known platform name, used when no ``base_url`` is given.
    default_base_urls: ClassVar[Mapping[str, str]] = {}
    #: Path of the endpoint, relative to the base URL.
    path: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        headers: Mapping[str, str] | None = None,
        max_tokens: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}", key="base_url")
        if not isinstance(timeout, httpx.Timeout):
            # inf is allowed: httpx then waits as long as it takes.
            validate.seconds("timeout", timeout, allow_inf=True, kind="seconds or an httpx.Timeout")
        if not isinstance(limits, httpx.Limits):
            raise ConfigError(f"limits must be an httpx.Limits, got {limits!r}", key="limits")
        try:
            check_options(max_tokens, None)
        except InvalidArgument as exc:
            raise ConfigError(str(exc), key="max_tokens") from None
        self.base_url = base_url
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.limits = limits
        self.max_tokens = max_tokens
        self._headers = dict(headers or {})
        self._transport = transport
        self._sync_transport = sync_transport
        self._environ = os.environ if environ is None else environ
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._sync_clients = SyncClients()
        self._scrubbers: dict[str, Scrubber] = {}
        self._endpoints: dict[str, httpx.URL] = {}
        self._streams: weakref.WeakSet[TextStream] = weakref.WeakSet()
        self._closed = False

    # -- subclass hooks ----------------------------------------------------------------------

    def auth_headers(self, key: str) -> dict[str, str]:
        """Headers carrying the API key."""
        raise NotImplementedError

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
        """The JSON body of one request."""
        raise NotImplementedError

    def parse_result(self, platform: PlatformSpec, data: Any) -> TextResult:
        """A :class:`TextResult` from the JSON of a complete answer (raise on a bad shape)."""
        raise NotImplementedError

    def stream_decoder(self, scrub: Callable[[str], str]) -> StreamDecoder:
        """A fresh decoder for one streamed answer (``scrub`` cleans error-event text)."""
        raise NotImplementedError

    # -- the operation -----------------------------------------------------------------------

    @overload
    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **extra: Any,
    ) -> TextResult: ...

    @overload
    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: Literal[True],
        max_tokens: int | None = None,
        temperature: float | None = None,
        **extra: Any,
    ) -> TextStream: ...

    async def __call__(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **extra: Any,
    ) -> TextResult | TextStream:
        """``complete`` or, with ``stream=True``, ``stream``."""
        if stream:
            return await self.stream(
                platform, messages, max_tokens=max_tokens, temperature=temperature, **extra
            )
        return await self.complete(
            platform, messages, max_tokens=max_tokens, temperature=temperature, **extra
        )

    async def complete(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **extra: Any,
    ) -> TextResult:
        """Ask ``platform``'s model for a whole answer.

        Extra keywords are added to the request body (e.g. ``top_p=0.9``, ``stop=[...]``).
        Raises failover's classified exceptions (``RateLimited``, ``CreditExhausted``, ...).
        """
        body = self._body(platform, messages, False, max_tokens, temperature, extra)
        response = await self._send(platform, body, stream=False)
        try:
            result = self.parse_result(platform, response.json())
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise Transient(
                f"{platform.name}: malformed answer (HTTP {response.status_code})",
                status_code=response.status_code,
            ) from None
        record_on_span(
            result.model, result.finish_reason, result.input_tokens, result.output_tokens
        )
        return result

    async def stream(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        **extra: Any,
    ) -> TextStream:
        """Ask for a streamed answer; returns once the first piece of text has arrived.

        Everything before that piece is part of the attempt (a failure falls back to the next
        platform); after it, a failure raises :class:`StreamInterrupted`.
        """
        body = self._body(platform, messages, True, max_tokens, temperature, extra)
        scrub = self._scrub(platform)
        decoder = self.stream_decoder(scrub)  # before the request: nothing to close if it fails
        response = await self._send(platform, body, stream=True)
        stream = TextStream(platform.name, platform.model, response, decoder, scrub)
        self._streams.add(stream)
        await stream.start()
        record_on_span(stream.model, stream.finish_reason, stream.input_tokens, None)
        return stream

    # -- plumbing ----------------------------------------------------------------------------

    def _body(
        self,
        platform: PlatformSpec,
        /,
        messages: Sequence[Message],
        stream: bool,
        max_tokens: int | None,
        temperature: float | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        if not isinstance(platform, PlatformSpec):
            raise InvalidArgument(f"platform must be a PlatformSpec, got {platform!r}")
        check_messages(messages)
        check_options(max_tokens, temperature)
        reserved = sorted(_RESERVED_FIELDS.intersection(extra))
        if reserved:
            raise InvalidArgument(
                f"{reserved[0]!r} is set by the adapter (the platform's model, the messages, "
                "and stream() for a streamed answer), not as an extra field"
            )
        return self.request_body(
            platform,
            messages,
            stream=stream,
            max_tokens=max_tokens if max_tokens is not None else self.max_tokens,
            temperature=temperature,
            extra=extra,
        )

    def _base_url(self, name: str) -> str:
        base_url = self.base_url or self.default_base_urls.get(name)
        if base_url is None:
            raise ConfigError(
                f"{type(self).__name__} has no base URL for platform {name!r}; pass "
                f"base_url=... (known: {', '.join(sorted(self.default_base_urls))})",
                key=name,
            )
        return base_url

    def client(self, platform: PlatformSpec | str) -> httpx.AsyncClient:
        """The platform's client (made on first use; reused for every call after)."""
        name = platform.name if isinstance(platform, PlatformSpec) else platform
        client = self._clients.get(name)
        if client is not None:
            return client
        if self._closed:
            raise Closed(f"{type(self).__name__} is closed")
        base_url = self._base_url(name)
        client = httpx.AsyncClient(
            base_url=base_url,
            timeout=self.timeout,
            limits=self.limits,
            headers=self._headers,
            transport=self._transport or async_transport(base_url, self.limits),
            verify=context_for(base_url),
        )
        self._clients[name] = client
        return client

    def sync_client(self, platform: PlatformSpec | str) -> httpx.Client:
        """The platform's ``httpx.Client`` for synchronous calls (thread-safe, pooled)."""
        name = platform.name if isinstance(platform, PlatformSpec) else platform
        return self._sync_clients.get(name, lambda: self._make_sync(name), type(self).__name__)

    def _make_sync(self, name: str) -> httpx.Client:
        if self._closed:
            raise Closed(f"{type(self).__name__} is closed")
        base_url = self._base_url(name)
        return httpx.Client(
            base_url=base_url,
            timeout=self.timeout,
            limits=self.limits,
            headers=self._headers,
            transport=self._sync_transport or sync_transport(base_url, self.limits),
            verify=context_for(base_url),
        )

    async def _client(self, platform: PlatformSpec) -> httpx.AsyncClient:
        """:meth:`client`, with the shared TLS context built off the event loop first."""
        client = self._clients.get(platform.name)
        if client is None:
            if not self._base_url(platform.name).startswith("http://"):
                await prepare_tls()
            client = self.client(platform)
        return client

    def _scrub(self, platform: PlatformSpec) -> Scrubber:
        scrub = self._scrubbers.get(platform.name)
        if scrub is None:
            names = [platform.api_key_env] if platform.api_key_env else []
            scrub = self._scrubbers[platform.name] = Scrubber(names, self._environ)
        return scrub

    def _key_headers(self, platform: PlatformSpec) -> dict[str, str]:
        env = platform.api_key_env
        if env is None:
            return {}
        key = self._environ.get(env)
        if not key:
            raise AuthFailed(f"{platform.name}: {env} is not set", status_code=None)
        return self.auth_headers(key)

    async def _send(
        self, platform: PlatformSpec, body: dict[str, Any], *, stream: bool
    ) -> httpx.Response:
        sync = blocking()
        client = self.sync_client(platform) if sync else await self._client(platform)
        endpoint = self._endpoints.get(platform.name)
        if endpoint is None:  # joined once: httpx parses and joins a relative URL every time
            endpoint = self._endpoints[platform.name] = joined(client.base_url, self.path)
        request = client.build_request(
            "POST", endpoint, json=body, headers=self._key_headers(platform)
        )
        request.stream = RequestBody(request.content)
        scrub = self._scrub(platform)
        try:
            if isinstance(client, httpx.Client):  # the one step that differs (see _blocking)
                response = client.send(request, stream=stream)
            else:
                response = await client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise to_provider_error(exc, scrub=scrub) from exc
        except RuntimeError as exc:
            if self._closed:  # closed while this call was on its way: not the provider's
                raise Closed(f"{type(self).__name__} is closed") from exc
            raise
        if response.is_success:
            return response
        content = await read_error_body(response)
        raise error_from_body(
            response.status_code,
            parse_error_body(content),
            retry_after_of(response.headers),
            lambda text: scrub(f"{platform.name}: {text}"),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close open streams and every client, async and sync. Safe to call twice."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            for stream in list(self._streams):
                await stream.aclose()
            clients, self._clients = self._clients, {}
            for client in clients.values():
                await client.aclose()
        self._sync_clients.close()

    def close(self) -> None:
        """Close the synchronous clients (and streams read synchronously), without an event
        loop when no async client was made; :meth:`aclose` closes everything."""
        if self._clients:  # async clients too: only an event loop can close them
            anyio.run(self.aclose)
            return
        self._closed = True
        for stream in list(self._streams):
            if stream.blocking:
                stream.close_blocking()
        self._sync_clients.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = self.base_url or "default base URLs"
        names = sorted({*self._clients, *self._sync_clients.names()})
        return f"<{type(self).__name__} {where}, clients for {names}>"


def joined(base_url: httpx.URL, path: str) -> httpx.URL:
    """``path`` under a client's ``base_url``, as the client joins a relative URL."""
    return base_url.copy_with(raw_path=base_url.raw_path + path.lstrip("/").encode("ascii"))


def optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
