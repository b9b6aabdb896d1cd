"""Admin actions (force open, force close, reset a pair): off unless a token is given.

A request must carry ``Authorization: Bearer <token>``. Browsers never attach that header on
their own (unlike cookies), so a page on another site cannot make a visitor's browser send it:
that, plus requiring a JSON body (a cross-site form cannot send one without a CORS preflight,
which this app never answers) and refusing a foreign ``Origin``, keeps state-changing requests
safe against cross-site requests.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from failover._core.errors import ConfigError

if TYPE_CHECKING:
    from failover._manager import PlatformManager

#: A token shorter than this is refused: it would be guessable.
MIN_TOKEN_LENGTH: Final = 16


def check_token(token: object) -> str:
    """``admin_token`` as given to ``create_app``, or one clear ``ConfigError``."""
    if not isinstance(token, str):
        raise ConfigError(
            f"admin_token must be a string, got {type(token).__name__}", key="admin_token"
        )
    if len(token) < MIN_TOKEN_LENGTH or token.strip() != token:
        raise ConfigError(
            f"admin_token must be at least {MIN_TOKEN_LENGTH} characters without surrounding "
            "spaces (e.g. secrets.token_urlsafe())",
            key="admin_token",
        )
    return token


def _refusal(request: Request, token: str) -> Response | None:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
        return JSONResponse({"error": "a valid admin token is required"}, status_code=401)
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "send a JSON body"}, status_code=415)
    return None


def admin_routes(manager: PlatformManager, token: str) -> list[BaseRoute]:
    """``POST admin/force-open``, ``admin/force-close``, ``admin/reset`` with
    ``{"platform": ..., "operation": ...}``."""
    actions: dict[str, Callable[[str, str], None]] = {
        "force-open": lambda platform, operation: manager.force_open(platform, operation),
        "force-close": manager.force_closed,
        "reset": manager.reset,
    }

    async def act(request: Request) -> Response:
        refused = _refusal(request, token)
        if refused is not None:
            return refused
        action = actions.get(request.path_params["action"])
        if action is None:
            return JSONResponse({"error": "unknown action"}, status_code=404)
        try:
            body: Any = await request.json()
            platform, operation = body["platform"], body["operation"]
            if not isinstance(platform, str) or not isinstance(operation, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"error": 'send {"platform": "...", "operation": "..."}'}, status_code=400
            )
        try:
            action(platform, operation)
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"done": request.path_params["action"]})

    return [Route("/admin/{action:str}", act, methods=["POST"])]
