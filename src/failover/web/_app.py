"""The dashboard as an ASGI app (Starlette): the page, its assets, JSON, the event stream,
``/health`` and ``/metrics``.

Every URL is relative, so the app works mounted under any prefix. The page is a static file:
names, models and error texts reach it only as JSON and are put on the page as text nodes,
never as HTML, and the Content-Security-Policy forbids inline scripts besides.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Final

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from failover.web._hub import Hub
from failover.web._metrics import CONTENT_TYPE, render

#: The page's own files, with their media types: nothing else is served from the package.
ASSETS: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _asset(name: str) -> bytes:
    return importlib.resources.files("failover.web").joinpath("static", name).read_bytes()


def _json(data: Any, status_code: int = 200) -> Response:
    return JSONResponse(data, status_code=status_code, headers=SECURITY_HEADERS)


def build(
    hub: Hub,
    health: Any,
    *,
    admin: bool,
    extra_routes: list[BaseRoute] | None = None,
    title: str = "failover",
) -> Starlette:
    """The app over ``hub``; ``health()`` returns ``(body, ready)`` for ``/health``."""
    page = _asset("dashboard.html")
    assets = {name: _asset(name) for name in ASSETS}

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response(status_code=404)
        return Response(assets[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)

    async def state(request: Request) -> Response:
        current = await hub.current()
        return _json(
            {"title": title, "admin": admin, "snapshot": current, "feed": hub.feed.since(0)}
        )

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _stream(hub, _last_seq(request)),
            media_type="text/event-stream",
            headers={**SECURITY_HEADERS, "x-accel-buffering": "no"},
        )

    async def health_endpoint(request: Request) -> Response:
        body, ready = await health()
        return _json(body, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        # Off the event loop: with a thousand pairs the text takes a large fraction of a second
        # to write, and the application's calls share this loop.
        body = await anyio.to_thread.run_sync(render, await hub.current())
        return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/static/{name:str}", asset),
        Route("/api/state", state),
        Route("/events", events),
        Route("/health", health_endpoint),
        Route("/metrics", metrics),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


def _last_seq(request: Request) -> int:
    text = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
    return int(text) if text.isdigit() else 0


async def _stream(hub: Hub, since: int) -> AsyncIterator[str]:
    # aclosing: on trio an async generator left unfinished (the client went away) must be
    # closed here, not by the garbage collector.
    async with aclosing(hub.updates(since)) as updates:
        async for current, lines in updates:
            seq = lines[-1]["seq"] if lines else since
            since = seq
            payload = json.dumps({"snapshot": current, "feed": lines}, separators=(",", ":"))
            yield f"id: {seq}\nevent: state\ndata: {payload}\n\n"
