"""A live dashboard, ``/health`` and ``/metrics`` for a :class:`~failover.PlatformManager`.

``create_app(manager)`` returns an ASGI app (Starlette) to mount in FastAPI, Starlette or any
ASGI server; :func:`serve` runs one with hypercorn on asyncio or trio. Read-only unless an
``admin_token`` is given. Needs the ``web`` extra: ``pip install 'failover[web]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover._core import validate
from failover._core.errors import ConfigError
from failover.web._admin import admin_routes, check_token
from failover.web._app import build
from failover.web._feed import Feed, attach
from failover.web._fleet import create_fleet_app, publish_health
from failover.web._hub import Hub
from failover.web._serve import serve, serving
from failover.web._snapshot import snapshot

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from failover._manager import PlatformManager

__all__ = [
    "create_app",
    "create_fleet_app",
    "create_wsgi_app",
    "publish_health",
    "serve",
    "serving",
    "snapshot",
]


def create_app(
    manager: PlatformManager,
    *,
    refresh: float = 0.5,
    admin_token: str | None = None,
    title: str = "failover",
) -> Starlette:
    """The dashboard of ``manager`` as an ASGI app.

    ``refresh`` is how often (seconds) the page's data is re-read while a page is open; with
    no page open the app reads nothing. ``admin_token`` (at least 16 characters) enables the
    force-open, force-close and reset actions for requests that carry it.
    """
    refresh = validate.number("refresh", refresh, above=0, at_most=60)
    if not isinstance(title, str):
        raise ConfigError(f"title must be a string, got {type(title).__name__}", key="title")
    token = None if admin_token is None else check_token(admin_token)
    feed = Feed(manager.clock.wall)
    attach(feed)

    async def source() -> dict[str, Any]:
        return snapshot(manager)

    async def health() -> tuple[dict[str, Any], bool]:
        status = manager.get_health_status()
        ready = all(
            any(status[spec.name]["operations"][operation]["usable"] for spec in specs)
            for operation, specs in ((op, manager.platforms(op)) for op in manager.operations)
        )
        return status, ready

    hub = Hub(source, refresh, feed, manager.clock.now)
    app = build(
        hub,
        health,
        admin=token is not None,
        extra_routes=None if token is None else admin_routes(manager, token),
        title=title,
    )
    app.state.failover_feed = feed  # the handler holds feeds weakly: the app keeps its own
    app.state.failover_hub = hub
    return app


def create_wsgi_app(
    manager: PlatformManager,
    *,
    refresh: float = 0.5,
    admin_token: str | None = None,
    title: str = "failover",
) -> Any:
    """:func:`create_app` for WSGI servers (Flask, Django, gunicorn's sync workers): the same
    app through ``a2wsgi``, which runs it on an event loop thread of its own. Mount it beside
    a Flask app with ``werkzeug.middleware.dispatcher.DispatcherMiddleware``. The manager is
    safe to share with the synchronous API (``docs/sync.md``)."""
    from a2wsgi import ASGIMiddleware

    app = create_app(manager, refresh=refresh, admin_token=admin_token, title=title)
    return ASGIMiddleware(app)  # type: ignore[arg-type]
