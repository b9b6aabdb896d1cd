"""A fake AI-provider HTTP server that fails the way real providers fail.

:class:`FakeProviderServer` is a real HTTP/1.1 server on ``127.0.0.1`` (built on anyio and
h11, so it runs on asyncio and trio). It serves provider-shaped endpoints under one path
prefix per platform, and each platform follows a scripted :class:`Behaviour` that can be
changed at runtime: healthy with some latency, flaky, out of credits, rate limited, hanging,
bad key, overloaded, a stream cut mid-way, ... Every failure uses the provider's real status
code and body shape (:mod:`.shapes`, from the classifier's own table of provider error shapes),
so code that classifies provider errors can be tested against it over real HTTP::

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
google, its own API (google-genai's)       ``POST /google/v1beta/models/<m>:generateContent``,
(base ``server.url + "/google"``)          ``...:streamGenerateContent?alt=sse`` (``v1`` too)
anthropic (base ``/anthropic``)            ``POST /anthropic/v1/messages`` (also streaming)
stability (base ``/stability``)            ``POST /stability/v2beta/stable-image/...``
                                           (e.g. ``edit/inpaint``; any body, multipart too)
replicate (base ``/replicate``)            ``POST /replicate/v1/predictions``,
                                           ``POST /replicate/v1/models/<o>/<n>/predictions``,
                                           ``GET /replicate/v1/predictions/<id>``
fal (base ``/fal``)                        ``POST /fal/<app path...>`` (synchronous, like
                                           ``fal.run``); the queue, like ``queue.fal.run``, at
                                           ``/fal/queue/<app>`` and
                                           ``/fal/queue/<app>/requests/<id>[/status|/cancel]``
openai images                              ``POST /openai/v1/images/generations``, ``.../edits``
replicate jobs                             ``POST /replicate/v1/predictions/<id>/cancel``
pollinations (base ``/pollinations``)      ``GET /pollinations/prompt/<prompt>``
huggingface (base ``/huggingface``)        ``POST /huggingface/models/<owner>/<name>``
flux_pro: Black Forest Labs (``/flux_pro``)  ``POST /flux_pro/v1/<model>``,
                                           ``GET /flux_pro/v1/get_result?id=<id>``
lookups (what ``failover.http``'s checks   ``GET /<p>/v1/models[/<model>]`` (openai, groq,
ask; :mod:`.lookups`)                      xai, together, anthropic),
                                           ``GET /google/v1beta/models/<model>``,
                                           ``GET /stability/v1/user/balance``,
                                           ``GET /replicate/v1/account``,
                                           ``GET /replicate/v1/models/<o>/<n>``,
                                           ``GET /huggingface/api/whoami-v2``,
                                           ``GET /huggingface/api/models/<o>/<n>``,
                                           ``GET /pollinations/models``,
                                           ``GET /flux_pro/v1/credits``
=========================================  ===================================================

Which models exist is :meth:`FakeProviderServer.set_models` (or ``models=``): by default every
model does; with a catalogue, a lookup or chat request for another model gets the provider's
404 "model not found" body.

Replicate, FAL's queue and Black Forest Labs run jobs; :meth:`FakeProviderServer.set_job_script`
says how long a platform's jobs stay queued and running and how they end (by default they
finish at once), :meth:`FakeProviderServer.job_stats` counts submissions, polls and
cancellations. :meth:`FakeProviderServer.adapter_base_url` is the base URL to give
``failover.http``'s image and video adapters.

Admin endpoints (for another process, e.g. a scenario driving ``failover fake-providers``):
``GET /_admin/info``, ``GET /_admin/stats``, ``POST /_admin/reset`` (statistics only),
``GET /_admin/behaviour``, and ``POST /_admin/behaviour`` with
``{"platform": "stability", "behaviour": {"kind": "out_of_credits"}}`` (``"platform": "*"``
sets every platform; ``"behaviour"`` may also be just a kind name); ``GET /_admin/models`` and
``POST /_admin/models`` with ``{"platform": "openai", "models": ["gpt-4o-mini"]}`` (``null``:
every model exists). Generated images are
served from ``GET /_files/<name>.png`` (videos from ``.../<name>.mp4``).

The server never logs request bodies, headers or keys: at DEBUG level it logs the method, the
path without its query string, the status and the outcome of each request.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

import anyio
import anyio.abc
import h11

from failover._observe.scrub import get_logger
from failover.testing.fake import lookups, media
from failover.testing.fake.behaviour import OUTCOME_OF_KIND, Behaviour, delay, next_step
from failover.testing.fake.media import JobBook, JobScript
from failover.testing.fake.shapes import (
    ALL_PLATFORMS,
    DIALECT,
    FAKE_PNG,
    MEDIA_DIALECT,
    OPENAI_COMPATIBLE_PLATFORMS,
    PLATFORMS,
    CutReply,
    Reply,
    Request,
    Response,
    StreamReply,
    behaviour_error,
    json_bytes,
    json_reply,
    parse_and_validate,
    reason,
    route,
    server_error,
    success,
)

__all__ = ["FakeProviderServer", "serve_forever"]

logger = get_logger("failover.testing.fake_providers")

_READ_SIZE: Final = 65536
_MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_CLOSE_LINGER_SECONDS: Final = 2.0
_SERVER_HEADER: Final = ("server", "failover-fake-providers")


# -- per-platform state -------------------------------------------------------------------------


@dataclass(slots=True)
class _PlatformState:
    """A platform's behaviour (and where it is in a sequence), its draws and its counters."""

    behaviour: Behaviour
    rng: random.Random
    position: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def next_step(self) -> Behaviour:
        """The behaviour for the next request (consumes a step of a sequence)."""
        step, self.position = next_step(self.behaviour, self.position)
        return step


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
    the starting behaviour per platform (default: every platform healthy); ``models`` the
    models a platform has (default: every model exists; see :meth:`set_models`).

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
        models: Mapping[str, Iterable[str] | None] | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._states = {
            platform: _PlatformState(Behaviour(), random.Random(f"{seed}:{platform}"))
            for platform in ALL_PLATFORMS
        }
        self._jobs = JobBook()
        self._open_connections = 0
        self._peak_connections = 0
        for platform, behaviour in (behaviours or {}).items():
            self.set_behaviour(platform, behaviour)
        self._models: dict[str, frozenset[str]] = {}
        for platform, names in (models or {}).items():
            self.set_models(platform, names)
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

    def adapter_base_url(self, platform: str) -> str:
        """The base URL to give ``platform``'s image or video adapter (``failover.http``):
        :meth:`base_url`, but FAL's queue for ``fal``."""
        base = self.base_url(platform)
        return f"{base}/queue" if platform == "fal" else base

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (to check keep-alive reuse)."""
        return self._connections_accepted

    @property
    def peak_connections(self) -> int:
        """The most connections that were open at once."""
        return self._peak_connections

    # -- jobs ------------------------------------------------------------------------------

    def set_job_script(self, platform: str, script: JobScript) -> None:
        """How ``platform``'s jobs run from the next submission on (see :class:`JobScript`)."""
        if not isinstance(script, JobScript):
            raise ValueError(f"script must be a JobScript, got {script!r}")
        self._state(platform)
        self._jobs.scripts[platform] = script

    def job_stats(self) -> dict[str, dict[str, int]]:
        """Per platform that ran jobs: ``submitted``, ``polls`` and ``canceled`` counts."""
        return self._jobs.stats()

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

    def set_models(self, platform: str, models: Iterable[str] | None) -> None:
        """The models ``platform`` (or every platform, for ``"*"``) has from now on: asking
        for another one (a model lookup, a chat request) gets the provider's "model not
        found" answer. ``None`` (the default) means every model exists."""
        catalogue: frozenset[str] | None = None
        if models is not None:
            if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
                raise ValueError(f"models must be model names (strings), got {models!r}")
            catalogue = frozenset(models)
        for name in ALL_PLATFORMS if platform == "*" else [platform]:
            self._state(name)
            if catalogue is None:
                self._models.pop(name, None)
            else:
                self._models[name] = catalogue

    def models(self, platform: str) -> frozenset[str] | None:
        """The models ``platform`` has, or ``None`` when every model exists."""
        self._state(platform)
        return self._models.get(platform)

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests per platform and outcome: ``{"stability": {"total": 3, "credit": 3}, ...}``.

        Every platform of ``PLATFORMS`` is present with its ``"total"`` (an image-only one
        once it was asked something); an outcome appears once it happened.
        Outcomes: ``ok``, ``error_<status>`` (flaky), ``credit``, ``rate_limited``, ``hang``,
        ``auth``, ``overloaded``, ``stream_cut``, ``content_policy``,
        ``context_length_exceeded``, ``bad_request`` (malformed request), ``not_found`` (no
        such endpoint), ``model_not_found`` (a model the catalogue does not have).
        A request is counted when the server decides its outcome, before it answers.
        """
        return {
            platform: {"total": state.counts.total(), **dict(sorted(state.counts.items()))}
            for platform, state in self._states.items()
            if platform in PLATFORMS or state.counts
        }

    def reset_stats(self) -> None:
        """Zero every platform's counters (behaviours are kept)."""
        for state in self._states.values():
            state.counts.clear()

    def _catalogues(self) -> dict[str, list[str] | None]:
        return {
            platform: None if (names := self._models.get(platform)) is None else sorted(names)
            for platform in ALL_PLATFORMS
        }

    def _state(self, platform: str) -> _PlatformState:
        try:
            return self._states[platform]
        except KeyError:
            raise ValueError(
                f"unknown platform {platform!r}; expected one of {', '.join(ALL_PLATFORMS)}"
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
        self._open_connections += 1
        self._peak_connections = max(self._peak_connections, self._open_connections)
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
            self._open_connections -= 1
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
        body = json_bytes({"error": {"message": f"malformed HTTP request: {exc}"}})
        try:
            await self._send_reply(conn, stream, Reply(status, body), close=True)
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
        path, _, query = request.target.decode("latin-1").partition("?")
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        if conn.they_are_waiting_for_100_continue:
            await self._send(conn, stream, h11.InformationalResponse(status_code=100, headers=[]))
        try:
            body = await self._read_body(conn, stream)
        except _BodyTooLarge:
            reply = json_reply(413, {"error": {"message": "request body too large"}})
            await self._send_reply(conn, stream, reply, close=True)
            self._log(method, path, 413, "too_large")
            return False

        try:
            response, outcome = await self._dispatch(
                conn, stream, method, path, headers, body, query
            )
        except _ClientGone:
            raise
        except Exception:
            logger.exception("fake provider server: error answering %s %s", method, path)
            response = json_reply(500, {"error": {"message": "fake provider server bug"}})
            outcome = "server_bug"
        if response is None:
            self._log(method, path, 0, outcome)
            return False
        keep_open = await self._send_response(conn, stream, response)
        status = response.status if isinstance(response, Reply) else 200
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
        query: str = "",
    ) -> tuple[Response | None, str]:
        """The response to a request and its outcome; ``None`` means drop the client."""
        segments = [segment for segment in path.split("/") if segment]
        head = segments[0] if segments else ""
        if head in ("", "_admin"):
            return self._admin(method, segments[1:], body), "admin"
        if head == "_files":
            if method == "GET" and len(segments) == 2:
                if segments[1].endswith(".mp4"):
                    return Reply(200, media.FAKE_MP4, content_type="video/mp4"), "file"
                return Reply(200, FAKE_PNG, content_type="image/png"), "file"
            return json_reply(404, {"error": {"message": "no such file"}}), "not_found"
        if head not in self._states:
            message = f"unknown platform {head!r}; known platforms: {', '.join(ALL_PLATFORMS)}"
            return json_reply(404, {"error": {"message": message, "type": "not_found"}}), (
                "unknown_platform"
            )
        request = Request(method, path, head, "", headers, body, query=query)
        return await self._platform_request(conn, stream, request, segments[1:])

    @staticmethod
    def _log(method: str, path: str, status: int, outcome: str) -> None:
        logger.debug("%s %s -> %s (%s)", method, path, status or "dropped", outcome)

    async def _send_reply(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        reply: Reply,
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
            status_code=reply.status, headers=headers, reason=reason(reply.status)
        )
        await self._send(conn, stream, response)
        await self._send(conn, stream, h11.Data(data=reply.body))
        await self._send(conn, stream, h11.EndOfMessage())

    async def _send_response(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, response: Response
    ) -> bool:
        if isinstance(response, Reply):
            await self._send_reply(conn, stream, response)
            return True
        if isinstance(response, CutReply):
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
        request: Request,
        rest: list[str],
    ) -> tuple[Response | None, str]:
        """Route, validate, apply the platform's behaviour. ``None`` means drop the client."""
        state = self._states[request.platform]
        dialect = DIALECT.get(request.platform) or MEDIA_DIALECT[request.platform]
        endpoint = lookups.lookup_route(request.platform, request.method, rest) or route(
            request.platform, request.method, rest
        )
        if endpoint is None:
            state.counts["not_found"] += 1
            return (
                json_reply(
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
        request.route = endpoint
        invalid = parse_and_validate(request, dialect)
        if invalid is not None:
            state.counts["bad_request"] += 1
            return invalid, "bad_request"

        behaviour = state.next_step()
        kind = behaviour.kind
        lookup = request.route in lookups.LOOKUP_ROUTES
        zero_balance = False
        if lookup and kind in lookups.LOOKUP_SUCCEEDS_ON:
            # Nothing a lookup asks can be refused for these; an empty account still lists
            # its models, and its balance reads zero.
            zero_balance = kind == "out_of_credits"
            behaviour, kind = Behaviour.healthy(), "healthy"
        missing = lookups.missing_model(request, self._models.get(request.platform))
        if kind in ("healthy", "flaky"):
            failed = kind == "flaky" and state.rng.random() < behaviour.error_rate
            outcome = f"error_{behaviour.status}" if failed else "ok"
            if not failed and missing is not None:
                outcome = "model_not_found"
            state.counts[outcome] += 1
            seconds = delay(behaviour, state.rng)
            if seconds > 0 and not await self._wait_for(conn, stream, seconds):
                return None, outcome
            if failed:
                return server_error(dialect, behaviour.status, state.rng), outcome
            if missing is not None:
                return lookups.not_found(request, dialect, missing, state.rng), outcome
            return self._success(request, state, zero_balance=zero_balance), outcome

        outcome = OUTCOME_OF_KIND[kind]
        state.counts[outcome] += 1
        if kind == "hanging":
            if not await self._wait_for(conn, stream, behaviour.seconds):
                return None, outcome
            if missing is not None:
                return lookups.not_found(request, dialect, missing, state.rng), outcome
            return self._success(request, state), outcome
        if kind == "stream_cut":
            answer = self._success(request, state)
            if isinstance(answer, StreamReply):
                answer.cut_after = behaviour.after_chunks
                return answer, outcome
            length = len(answer.body) if isinstance(answer, Reply) else 0
            return CutReply(max(length, 1)), outcome
        if lookup:
            dialect = lookups.error_dialect(request, dialect, kind)
        return behaviour_error(dialect, behaviour, request, state.rng), outcome

    def _success(
        self, request: Request, state: _PlatformState, *, zero_balance: bool = False
    ) -> Response:
        """The answer to a request that succeeds: a job's step for the job APIs."""
        route = request.route
        if route in lookups.LOOKUP_ROUTES:
            catalogue = self._models.get(request.platform)
            return lookups.answer(request, catalogue, state.rng, zero_balance=zero_balance)
        rng, url, jobs, platform = state.rng, self.url, self._jobs, request.platform
        job_id = request.path.rstrip("/").split("/")
        if route == "replicate_create":
            rest = request.path.split("/")
            data = request.json if isinstance(request.json, dict) else {}
            model = "/".join(rest[4:6]) if len(rest) == 7 else data.get("model", "fake/model")
            job = jobs.create(platform, str(model), rng, url)
            return media.replicate_prediction(job, request, url, 201)
        if route in ("replicate_get", "replicate_cancel"):
            ident = job_id[-2] if route == "replicate_cancel" else job_id[-1]
            found = jobs.poll(platform, ident) if route == "replicate_get" else None
            if route == "replicate_cancel":
                found = jobs.cancel(platform, ident)
            if found is None:
                return media.replicate_not_found()
            return media.replicate_prediction(found, request, url, 200)
        if route == "fal_submit":
            app = "/".join(request.path.split("/")[3:])
            job = jobs.create(platform, app, rng, url)
            return media.fal_queue_status(job, app, url, submitted=True)
        if route in ("fal_status", "fal_result", "fal_cancel"):
            return self._fal_request(request, route)
        if route == "bfl_submit":
            job = jobs.create(platform, request.path.split("/")[-1], rng, url)
            return media.bfl_submitted(job, url)
        if route == "bfl_result":
            ident = dict(part.partition("=")[::2] for part in request.query.split("&") if part).get(
                "id", ""
            )
            return media.bfl_result(jobs.poll(platform, ident), ident)
        if route == "openai_images":
            return media.openai_images(request, rng, url)
        if route in ("pollinations", "huggingface"):
            return media.image_bytes()
        return success(request, rng, url)

    def _fal_request(self, request: Request, route: str) -> Reply:
        parts = request.path.split("/")
        index = parts.index("requests")
        app, ident = "/".join(parts[3:index]), parts[index + 1]
        if route == "fal_status":
            job = self._jobs.poll(request.platform, ident)
        elif route == "fal_cancel":
            job = self._jobs.cancel(request.platform, ident)
        else:
            job = self._jobs.jobs.get(ident)
        if job is None:
            return json_reply(404, {"detail": f"Request {ident} not found"})
        if route == "fal_status":
            return media.fal_queue_status(job, app, self.url)
        if route == "fal_cancel":
            return media.fal_cancel(job)
        return media.fal_queue_result(job)

    # -- admin -----------------------------------------------------------------------------

    def _admin(self, method: str, rest: list[str], body: bytes) -> Reply:
        action = "/".join(rest)
        if method == "GET" and action in ("", "info"):
            return json_reply(
                200,
                {
                    "server": "failover fake providers",
                    "url": self.url,
                    "platforms": {platform: self.base_url(platform) for platform in ALL_PLATFORMS},
                },
            )
        if method == "GET" and action == "stats":
            return json_reply(200, self.stats())
        if method == "POST" and action == "reset":
            self.reset_stats()
            return json_reply(200, {"reset": True})
        if method == "GET" and action == "behaviour":
            return json_reply(
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
                return json_reply(400, {"error": {"message": str(exc), "type": "invalid_request"}})
            logger.info("fake provider %s now %r", platform, behaviour)
            return json_reply(200, {"platform": platform, "behaviour": behaviour.to_dict()})
        if method == "GET" and action == "models":
            return json_reply(200, self._catalogues())
        if method == "POST" and action == "models":
            try:
                data = json.loads(body or b"null")
                if not isinstance(data, dict) or not isinstance(data.get("platform"), str):
                    raise ValueError('expected {"platform": ..., "models": [...] or null}')
                names = data.get("models")
                if names is not None and not isinstance(names, list):
                    raise ValueError("'models' must be a list of model names or null")
                self.set_models(data["platform"], names)
            except (ValueError, TypeError) as exc:
                return json_reply(400, {"error": {"message": str(exc), "type": "invalid_request"}})
            return json_reply(200, self._catalogues())
        return json_reply(
            404, {"error": {"message": f"no admin endpoint {method} /_admin/{action}"}}
        )


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
