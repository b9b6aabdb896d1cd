"""The fake's read-only endpoints, the ones ``failover.http``'s checks ask: a model by id, a
list of models, an account, a balance; and the model catalogue that decides which models exist.

Each answers as its provider does: the model object or list on success, the provider's own
404 body for an unknown model (``model_not_found`` in the shapes table), and, through the
platform's behaviour like any other request, its 401/403 for a bad key, 429, 503, a hang.
What a lookup cannot meaningfully get (a content-policy refusal, a too-long prompt) answers
as success; an account out of credits still lists models, and its balance reads zero.

A catalogue (:meth:`FakeProviderServer.set_models`) lists the models a platform has; without
one every model exists (a list then shows :data:`SAMPLE_MODELS`). It applies to the lookups
and to chat requests (``POST .../chat/completions``, ``.../v1/messages``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

from failover._core.classify import providers
from failover._core.spec import DEFAULT_PRIORITIES
from failover.testing.fake.shapes import (
    OPENAI_COMPATIBLE_PLATFORMS,
    Reply,
    Request,
    json_reply,
)

#: The lookup endpoints (routes of :func:`lookup_route`).
LOOKUP_ROUTES: Final = frozenset(
    {"model_get", "models_list", "gemini_model", "account", "balance", "whoami"}
)
#: Routes whose request names a model the catalogue is asked about.
_MODEL_ROUTES: Final = frozenset({"model_get", "gemini_model", "chat", "messages"})
#: Behaviours that are about what a request asks (or costs); a lookup answers as success.
LOOKUP_SUCCEEDS_ON: Final = frozenset(
    {"content_policy", "context_length_exceeded", "out_of_credits"}
)
_CREATED: Final = 1_715_367_049
_BALANCE: Final = 42.5


def _default_models() -> dict[str, tuple[str, ...]]:
    models: dict[str, list[str]] = {
        "openai": ["gpt-4o-mini", "gpt-4o", "gpt-image-1"],
        "groq": ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"],
        "xai": ["grok-3-mini", "grok-3"],
        "together": ["meta-llama/Llama-3.3-70B-Instruct-Turbo"],
        "google": ["gemini-2.5-flash-lite", "gemini-2.5-flash"],
        "anthropic": ["claude-3-5-haiku-latest", "claude-3-haiku-20240307"],
        "pollinations": ["flux", "turbo"],
    }
    for entries in DEFAULT_PRIORITIES.values():
        for name, model in entries:
            if name in models and model not in models[name]:
                models[name].append(model)
    return {name: tuple(names) for name, names in models.items()}


#: What a list shows when the platform has no catalogue: a few real ids and the built-in
#: table's.
SAMPLE_MODELS: Final[Mapping[str, tuple[str, ...]]] = _default_models()


def lookup_route(platform: str, method: str, rest: list[str]) -> str | None:
    """Which lookup ``method /<platform>/<rest>`` is, or ``None``."""
    if method != "GET":
        return None
    if platform == "google":
        # Gemini's own API (base /google): GET /v1beta/models/<model> (v1 too).
        native = len(rest) >= 3 and rest[0] in ("v1", "v1beta") and rest[1] == "models"
        return "gemini_model" if native else None
    if platform in OPENAI_COMPATIBLE_PLATFORMS or platform == "anthropic":
        if rest == ["v1", "models"]:
            return "models_list"
        return "model_get" if len(rest) >= 3 and rest[:2] == ["v1", "models"] else None
    if platform == "stability":
        return "balance" if rest == ["v1", "user", "balance"] else None
    if platform == "replicate":
        if rest == ["v1", "account"]:
            return "account"
        model = len(rest) == 4 or (len(rest) == 6 and rest[4] == "versions")
        return "model_get" if rest[:2] == ["v1", "models"] and model else None
    if platform == "huggingface":
        if rest == ["api", "whoami-v2"]:
            return "whoami"
        return "model_get" if len(rest) >= 3 and rest[:2] == ["api", "models"] else None
    if platform == "pollinations":
        return "models_list" if rest == ["models"] else None
    if platform == "flux_pro":
        return "balance" if rest == ["v1", "credits"] else None
    return None


def requested_model(request: Request) -> str | None:
    """The model a request names (in its path or its JSON body), if it names one."""
    if request.route in ("chat", "messages"):
        return request.model
    if request.route not in ("model_get", "gemini_model"):
        return None
    rest = [unquote(part) for part in request.path.split("/") if part][1:]
    if request.platform == "replicate":
        return "/".join(rest[2:4])
    return "/".join(rest[2:])


def missing_model(request: Request, catalogue: frozenset[str] | None) -> str | None:
    """The model the request names if the platform's catalogue does not have it."""
    if catalogue is None or request.route not in _MODEL_ROUTES:
        return None
    model = requested_model(request)
    return model if model is not None and model not in catalogue else None


def not_found(request: Request, dialect: str, model: str, rng: random.Random) -> Reply:
    """The provider's answer for a model it does not have."""
    shape = providers.shape(dialect, "model_not_found") or providers.shape(
        "openai", "model_not_found"
    )
    assert shape is not None
    values = {"model": model, "id": f"{rng.getrandbits(128):032x}"}
    body, headers = shape.render(values)
    status = shape.status
    if request.platform == "huggingface" and "authorization" not in request.headers:
        status = 401  # the Hub hides whether a repository exists from anonymous callers
    return json_reply(status, body, headers)


def error_dialect(request: Request, dialect: str, situation: str) -> str:
    """The error dialect of a lookup: Stability's v1 account endpoints write their own."""
    if request.platform == "stability" and providers.shape("stability_v1", situation):
        return "stability_v1"
    return dialect


def answer(
    request: Request,
    catalogue: frozenset[str] | None,
    rng: random.Random,
    *,
    zero_balance: bool = False,
) -> Reply:
    """A lookup's successful answer (the caller has checked the catalogue)."""
    platform, route = request.platform, request.route
    if route == "balance":
        return json_reply(200, {"credits": 0.0 if zero_balance else _BALANCE})
    if route == "account":
        return json_reply(
            200, {"type": "user", "username": "fake-user", "name": "Fake User", "github_url": None}
        )
    if route == "whoami":
        return json_reply(
            200, {"type": "user", "id": "fake-user-id", "name": "fake-user", "orgs": []}
        )
    if route == "models_list":
        models = sorted(catalogue) if catalogue is not None else SAMPLE_MODELS.get(platform, ())
        return json_reply(200, _model_list(platform, models))
    model = requested_model(request) or "unknown-model"
    if route == "gemini_model":
        return json_reply(200, _gemini_model(model))
    return json_reply(200, _model_object(platform, model, rng))


def _model_list(platform: str, models: tuple[str, ...] | list[str]) -> object:
    if platform == "pollinations":
        return list(models)
    if platform == "together":  # Together's list is a bare array
        return [_openai_model(platform, model) for model in models]
    if platform == "anthropic":
        return {
            "data": [_anthropic_model(model) for model in models],
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    return {"object": "list", "data": [_openai_model(platform, model) for model in models]}


def _openai_model(platform: str, model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": platform}


def _anthropic_model(model: str) -> dict[str, object]:
    return {
        "type": "model",
        "id": model,
        "display_name": model.replace("-", " ").title(),
        "created_at": "2024-10-22T00:00:00Z",
    }


def _gemini_model(model: str) -> dict[str, object]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def _model_object(platform: str, model: str, rng: random.Random) -> dict[str, object]:
    if platform == "anthropic":
        return _anthropic_model(model)
    if platform == "replicate":
        owner, _, name = model.partition("/")
        return {
            "url": f"https://replicate.com/{model}",
            "owner": owner,
            "name": name,
            "visibility": "public",
            "run_count": rng.randrange(10**6),
            "latest_version": {"id": f"{rng.getrandbits(256):064x}"},
        }
    if platform == "huggingface":
        return {"id": model, "modelId": model, "private": False, "gated": False, "tags": []}
    return _openai_model(platform, model)
