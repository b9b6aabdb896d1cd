"""What every image and video adapter shares: a client per platform, keys read at call time,
requests whose failures come back classified, downloads, and closing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Final, Self

import anyio
import httpx

from failover._core import validate
from failover._core.classify import parse_error_body, retry_after_of
from failover._core.errors import AuthFailed, Closed, ConfigError, Transient
from failover._core.spec import PlatformSpec
from failover._observe.scrub import Scrubber
from failover.http._base import RequestBody
from failover.http._blocking import SyncClients, blocking, run_blocking
from failover.http._check import Discoverable
from failover.http._classify import error_from_body, read_error_body, to_provider_error
from failover.http._jobs import REQUEST_TIMEOUT, Followed, Polling, cancel_taken
from failover.http._media_input import ImageInfo
from failover.http._media_result import MediaResult
from failover.http._pool import (
    DEFAULT_LIMITS,
    async_transport,
    context_for,
    prepare_tls,
    sync_transport,
)

#: Image and video calls take longer than chat: Replicate's ``Prefer: wait`` alone holds a
#: request for up to a minute.
MEDIA_TIMEOUT: Final = httpx.Timeout(120.0, connect=5.0, pool=10.0)
#: The operations an adapter can serve (:attr:`MediaAdapter.capabilities`).
GENERATE: Final = "generate"
INPAINT: Final = "inpaint"
ERASE: Final = "erase"
VIDEO: Final = "video"


class Unsupported(ConfigError):
    """The adapter cannot do what was asked on this platform."""


class MediaAdapter(Discoverable):
    """Base class of the image and video adapters; a subclass speaks one provider's API.

    It keeps one ``httpx.AsyncClient`` per platform (made on first use, closed by
    :meth:`aclose`), one thread-safe ``httpx.Client`` per platform for the synchronous API
    (the same provider code, sent with blocking I/O: see ``_blocking``), and reads the
    platform's key from ``api_key_env`` on every call; a provider whose key is optional
    (Hugging Face) sends :attr:`optional_key_env` when it is set. Provider links are
    downloaded into :attr:`MediaResult.data` unless ``download=False``. ``polling`` paces the
    jobs of the providers that run them.
    """

    #: Base URL per well-known platform name, used when no ``base_url`` is given.
    default_base_urls: ClassVar[Mapping[str, str]] = {}
    #: What this adapter can do: a subset of ``generate``, ``inpaint``, ``erase``, ``video``.
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: A key variable sent when set, for a platform declared keyless (``api_key_env=None``).
    optional_key_env: ClassVar[str | None] = None

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = MEDIA_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        polling: Polling | None = None,
        download: bool = True,
    ) -> None:
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}", key="base_url")
        if not isinstance(timeout, httpx.Timeout):
            validate.seconds("timeout", timeout, allow_inf=True, kind="seconds or an httpx.Timeout")
        if not isinstance(limits, httpx.Limits):
            raise ConfigError(f"limits must be an httpx.Limits, got {limits!r}", key="limits")
        if polling is not None and not isinstance(polling, Polling):
            raise ConfigError(f"polling must be a Polling(...), got {polling!r}", key="polling")
        self.base_url = base_url
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.limits = limits
        self.polling = polling or Polling()
        self.download = bool(download)
        self._headers = dict(headers or {})
        self._transport = transport
        self._sync_transport = sync_transport
        self._environ = os.environ if environ is None else environ
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._sync_clients = SyncClients()
        self._scrubbers: dict[str, Scrubber] = {}
        self._closed = False
        #: The jobs being followed, cancelled at the provider by :meth:`close` / :meth:`aclose`.
        self._followed = Followed()

    # -- what a provider implements ------------------------------------------------------------

    def auth_headers(self, key: str) -> dict[str, str]:
        """Headers carrying the API key (``Authorization: Bearer`` unless overridden)."""
        return {"authorization": f"Bearer {key}"}

    async def generate(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        """One image for ``prompt``; ``options`` holds ``width``, ``height``,
        ``output_format``, ``seed``, ``negative_prompt`` (``None`` when not given) and the
        caller's extra fields."""
        raise Unsupported(f"{type(self).__name__} does not generate images", key=platform.name)

    async def inpaint(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        prompt: str,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        """``image`` repainted under ``mask`` (white: repaint) as ``prompt`` describes."""
        raise Unsupported(f"{type(self).__name__} does not edit images", key=platform.name)

    async def erase(
        self,
        platform: PlatformSpec,
        image: bytes,
        mask: bytes,
        info: ImageInfo,
        options: Mapping[str, Any],
    ) -> MediaResult:
        """What is under ``mask`` removed and filled from its surroundings."""
        raise Unsupported(f"{type(self).__name__} does not erase", key=platform.name)

    async def generate_video(
        self, platform: PlatformSpec, prompt: str, options: Mapping[str, Any]
    ) -> MediaResult:
        """One video for ``prompt``."""
        raise Unsupported(f"{type(self).__name__} does not generate video", key=platform.name)

    # -- requests ------------------------------------------------------------------------------

    async def request(
        self,
        platform: PlatformSpec,
        method: str,
        url: str,
        *,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        keyed: bool = True,
    ) -> httpx.Response:
        """Send one request (its body read); a failure raises failover's classified error."""
        client = self.sync_client(platform) if blocking() else await self._client(platform)
        sent_headers = {**self._key_headers(platform), **(headers or {})} if keyed else headers
        timeout = REQUEST_TIMEOUT.get()  # a job's cancellation in blocking mode (see _jobs)
        request = client.build_request(
            method,
            url,
            json=json,
            files=files,
            data=data,
            params=params,
            headers=sent_headers,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        # The body is in memory either way: sent by a plain iterator, a cancelled attempt
        # leaves no async generator half-run (see RequestBody).
        request.stream = RequestBody(request.read())
        scrub = self.scrubber(platform)
        try:
            if isinstance(client, httpx.Client):  # the one step that differs (see _blocking)
                response = client.send(request, stream=True)
            else:
                response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise to_provider_error(exc, scrub=scrub) from exc
        if not response.is_success:
            content = await read_error_body(response)
            raise error_from_body(
                response.status_code,
                parse_error_body(content),
                retry_after_of(response.headers),
                lambda text: scrub(f"{platform.name}: {text}"),
            )
        try:
            if isinstance(client, httpx.Client):
                response.read()
            else:
                await response.aread()
        except httpx.HTTPError as exc:
            raise to_provider_error(exc, scrub=scrub) from exc
        finally:
            if isinstance(client, httpx.Client):
                response.close()
            else:
                await response.aclose()
        return response

    async def json_of(self, platform: PlatformSpec, response: httpx.Response) -> Any:
        """The JSON of a successful answer (a malformed one is a transient failure)."""
        try:
            return response.json()
        except ValueError:
            raise Transient(
                f"{platform.name}: malformed answer (HTTP {response.status_code})",
                status_code=response.status_code,
            ) from None

    async def fetch(self, platform: PlatformSpec, url: str) -> tuple[bytes, str]:
        """Download a provider's output link: its bytes and media type (no key is sent)."""
        response = await self.request(platform, "GET", url, keyed=False)
        media_type = response.headers.get("content-type", "application/octet-stream")
        return response.content, media_type.partition(";")[0].strip()

    async def from_link(
        self,
        platform: PlatformSpec,
        url: object,
        media_type: str,
        *,
        job_id: str | None = None,
        seed: int | None = None,
    ) -> MediaResult:
        """A result for an output link: downloaded unless ``download=False``."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
            raise Transient(f"{platform.name}: the answer has no output link", status_code=None)
        data: bytes | None = None
        if self.download and not url.startswith("data:"):
            data, media_type = await self.fetch(platform, url)
        return MediaResult(
            data,
            media_type,
            platform.name,
            platform.model,
            platform.estimated_cost or None,
            url=url,
            job_id=job_id,
            seed=seed,
        )

    # -- plumbing ------------------------------------------------------------------------------

    def base_url_for(self, name: str) -> str:
        base_url = self.base_url or self.default_base_urls.get(name)
        if base_url is None:
            raise ConfigError(
                f"{type(self).__name__} has no base URL for platform {name!r}; pass "
                f"base_url=... (known: {', '.join(sorted(self.default_base_urls))})",
                key=name,
            )
        return base_url.rstrip("/")

    def client(self, platform: PlatformSpec | str) -> httpx.AsyncClient:
        """The platform's client (made on first use; reused for every call after)."""
        name = platform.name if isinstance(platform, PlatformSpec) else platform
        client = self._clients.get(name)
        if client is not None:
            return client
        if self._closed:
            raise Closed(f"{type(self).__name__} is closed")
        base_url = self.base_url_for(name)
        client = httpx.AsyncClient(
            base_url=base_url + "/",
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
        base_url = self.base_url_for(name)
        return httpx.Client(
            base_url=base_url + "/",
            timeout=self.timeout,
            limits=self.limits,
            headers=self._headers,
            transport=self._sync_transport or sync_transport(base_url, self.limits),
            verify=context_for(base_url),
        )

    async def _client(self, platform: PlatformSpec) -> httpx.AsyncClient:
        client = self._clients.get(platform.name)
        if client is None:
            if not self.base_url_for(platform.name).startswith("http://"):
                await prepare_tls()
            client = self.client(platform)
        return client

    def scrubber(self, platform: PlatformSpec) -> Scrubber:
        scrub = self._scrubbers.get(platform.name)
        if scrub is None:
            names = [env for env in (platform.api_key_env, self.optional_key_env) if env]
            scrub = self._scrubbers[platform.name] = Scrubber(names, self._environ)
        return scrub

    def _key_headers(self, platform: PlatformSpec) -> dict[str, str]:
        env = platform.api_key_env
        if env is None:
            optional = self.optional_key_env
            key = self._environ.get(optional) if optional else None
            return self.auth_headers(key) if key else {}
        key = self._environ.get(env)
        if not key:
            raise AuthFailed(f"{platform.name}: {env} is not set", status_code=None)
        return self.auth_headers(key)

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel at the provider the jobs still followed (each within its
        :attr:`Polling.cancel_seconds`, failures ignored), then close every client, async
        and sync. Safe to call twice."""
        with anyio.CancelScope(shield=True):
            for following in self._followed.take():
                await cancel_taken(following)
            self._closed = True
            clients, self._clients = self._clients, {}
            for client in clients.values():
                await client.aclose()
        self._sync_clients.close()

    def close(self) -> None:
        """:meth:`aclose` for synchronous code: the jobs still followed are cancelled with
        blocking requests (no event loop), then the clients close (on an event loop only
        when async clients were made too)."""
        for following in self._followed.take():
            with contextlib.suppress(Exception):  # nothing is raised from close
                run_blocking(cancel_taken(following))
        if self._clients:  # async clients too: only an event loop can close them
            anyio.run(self.aclose)
            return
        self._closed = True
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
