"""What each provider's check asks: the cheapest requests of its public API that prove a key
and find a model, and what cannot be checked (and why). docs/providers.md lists them.

Every request here is a ``GET`` that reads, creates nothing and costs nothing. A provider
whose only way to learn about a key or a model would be to run (and bill) a model gets no
request for it: the check says "not checked" and gives the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

import httpx

from failover._core.classify import ErrorBody
from failover.http._check import CheckPlan, Lookup, any_listed, balance, listed

#: OpenAI-compatible platforms whose API has no "retrieve a model": their list is read.
LISTING_PLATFORMS: Final = frozenset({"together", "deepseek"})
#: OpenAI-compatible platforms with ``GET models/{model}`` (Gemini's native one included).
RETRIEVING_PLATFORMS: Final = frozenset({"openai", "groq", "xai", "mistral", "google"})
#: Where Hugging Face's Hub API answers (whoami, model info) for its own inference hosts.
HUGGINGFACE_HUB: Final = "https://huggingface.co"
HUGGINGFACE_INFERENCE_HOSTS: Final = frozenset(
    {"https://api-inference.huggingface.co", "https://router.huggingface.co/hf-inference"}
)


def _path(model: str) -> str:
    """A model id as a URL path part; ``/`` stays (ids such as ``meta-llama/...``)."""
    return quote(model, safe="/:@")


def openai_compatible(name: str, model: str, base_url: str) -> CheckPlan:
    """OpenAI and the OpenAI-compatible APIs: ``GET models/{model}`` with the bearer key.

    Exceptions: Gemini (``google``) is asked natively, ``GET /v1beta/models/{model}`` with
    ``x-goog-api-key``, because its OpenAI-compatible ``models/{model}`` answers 404 to a
    bad key as to a missing model; Together and DeepSeek have no per-model lookup (their
    list is read); OpenRouter's list is public, so ``GET key`` proves the key. A platform
    failover does not know is read through its list, which every OpenAI-compatible server
    (vLLM, Ollama, LM Studio, ...) has.
    """
    base = base_url.rstrip("/")
    if name == "google" and base.endswith("/openai"):
        native = base[: -len("/openai")]
        model_id = model.removeprefix("models/")
        return CheckPlan(
            (
                Lookup(
                    f"{native}/models/{_path(model_id)}",
                    model=model,
                    auth=lambda key: {"x-goog-api-key": key},
                ),
            )
        )
    if name == "openrouter":
        return CheckPlan(
            (
                Lookup("key"),
                Lookup("models", model=model, proves_key=False, read=listed(model)),
            )
        )
    if name in LISTING_PLATFORMS or name not in RETRIEVING_PLATFORMS:
        return CheckPlan((Lookup("models", model=model, read=listed(model)),))
    return CheckPlan((Lookup(f"models/{_path(model)}", model=model),))


def anthropic(model: str) -> CheckPlan:
    """Anthropic: ``GET /v1/models/{model}`` (``x-api-key``, ``anthropic-version``); an
    alias such as ``claude-3-5-haiku-latest`` resolves."""
    return CheckPlan((Lookup(f"v1/models/{_path(model)}", model=model),))


def stability() -> CheckPlan:
    """Stability: ``GET /v1/user/balance`` (the key, and credits left); stable-image models
    have no lookup."""
    return CheckPlan(
        (Lookup("v1/user/balance", read=balance("credits")),),
        unchecked_model="Stability has no model lookup for its stable-image API",
    )


def pollinations(model: str) -> CheckPlan:
    """Pollinations: ``GET /models`` (keyless): the model is in the list (``free`` stands
    for its default model: any model will do)."""
    read = any_listed if model == "free" else listed(model)
    return CheckPlan((Lookup("models", model=model, keyed=False, proves_key=False, read=read),))


def _repo_not_found(response: httpx.Response, body: ErrorBody) -> bool:
    """The Hub answers a missing (or private) repository with 404, or with 401 to a request
    without a token; ``X-Error-Code: RepoNotFound`` says which 401 it is."""
    if response.status_code == 404:
        return True
    return bool(response.headers.get("x-error-code") == "RepoNotFound")


def huggingface(model: str, base_url: str) -> CheckPlan:
    """Hugging Face: the Hub's ``GET /api/whoami-v2`` for a token (when ``HF_TOKEN`` is
    set) and ``GET /api/models/{model}`` for the model. The Hub is huggingface.co for
    Hugging Face's own inference hosts; a base URL of your own is asked both."""
    base = base_url.rstrip("/")
    hub = HUGGINGFACE_HUB if base in HUGGINGFACE_INFERENCE_HOSTS else base
    return CheckPlan(
        (
            Lookup(f"{hub}/api/whoami-v2", only_with_key=True),
            Lookup(
                f"{hub}/api/models/{_path(model)}",
                model=model,
                proves_key=False,
                missing=_repo_not_found,
            ),
        )
    )


def replicate(models: Sequence[str]) -> CheckPlan:
    """Replicate: ``GET /v1/account`` (the token), then ``GET /v1/models/{owner}/{name}``
    (or ``.../versions/{id}``) for each model the platform's name stands for."""
    lookups = [Lookup("v1/account")]
    unchecked = ""
    for model in models:
        owner_name, _, version = model.partition(":")
        if "/" not in owner_name:
            unchecked = f"{model!r} is not owner/name: Replicate has no lookup for it"
            continue
        path = f"v1/models/{_path(owner_name)}"
        if version:
            path += f"/versions/{_path(version)}"
        lookups.append(Lookup(path, model=model))
    return CheckPlan(tuple(lookups), unchecked_model=unchecked)


def fal() -> CheckPlan:
    """FAL: nothing is sent (see the reason)."""
    reason = (
        "FAL has no read-only request that checks a key; a request to a model runs (and bills) it"
    )
    return CheckPlan(unchecked_key=reason, unchecked_model=reason)


def black_forest_labs() -> CheckPlan:
    """Black Forest Labs: ``GET /v1/credits`` (``x-key``; the key, and credits left);
    models are endpoints with no lookup."""
    return CheckPlan(
        (Lookup("v1/credits", read=balance("credits")),),
        unchecked_model="Black Forest Labs has no model lookup: each model is an endpoint",
    )
