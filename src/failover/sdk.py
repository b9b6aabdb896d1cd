"""Official SDK clients configured for failover: no retries of their own, a bounded timeout.

An SDK's own retries run *inside* one failover attempt, where failover cannot see them: a
default ``AsyncOpenAI()`` (``max_retries=2``) answering a 429 with ``Retry-After: 20`` sat on
the primary for 40 s and sent it 3 requests before failover saw one error and fell back.
failover already decides what a failure means (wait out a rate limit, cool a platform out of
credits, open a breaker) and falls back in milliseconds, so the client should fail at once and
let it. These helpers build each SDK's client that way; the SDKs are imported only when a
helper is called and are not dependencies of failover. See ``docs/sdks.md``.

There is a helper for each SDK whose client has retry or timeout settings to set: openai,
anthropic and google-genai. replicate and fal-client have none a client can take (their retries
are fixed in the SDK), so there is nothing for a helper to build; ``docs/sdks.md`` says what
to do for them instead.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Final

from failover._core import validate

#: Seconds a request may take before the SDK gives up, unless ``timeout=`` says otherwise:
#: long enough for a slow completion, short enough that a hung provider costs one attempt.
DEFAULT_TIMEOUT: Final = 60.0

__all__ = ["DEFAULT_TIMEOUT", "anthropic_client", "genai_client", "openai_client"]


def openai_client(*, timeout: float = DEFAULT_TIMEOUT, sync: bool = False, **options: Any) -> Any:
    """``openai.AsyncOpenAI`` (``openai.OpenAI`` with ``sync=True``) with ``max_retries=0``.

    ``options`` reach the constructor (``api_key``, ``base_url``, ...); an explicit
    ``max_retries`` is kept, since a caller may want it for a platform that is never a
    fallback's primary.
    """
    return _client("openai", "OpenAI", timeout, sync, options)


def anthropic_client(
    *, timeout: float = DEFAULT_TIMEOUT, sync: bool = False, **options: Any
) -> Any:
    """``anthropic.AsyncAnthropic`` (``anthropic.Anthropic`` with ``sync=True``) with
    ``max_retries=0``; ``options`` as for :func:`openai_client`."""
    return _client("anthropic", "Anthropic", timeout, sync, options)


def genai_client(*, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> Any:
    """``google.genai.Client`` whose requests time out after ``timeout`` seconds and are
    never retried; ``client.aio`` is its async side.

    google-genai sets no timeout by default (a hung request waits forever), takes it in
    *milliseconds* (``HttpOptions(timeout=60)`` is 60 ms), and, when aiohttp is installed,
    its async client retries a failed connection once after sleeping 1 to 10 s unless retry
    options are set. So the helper sets ``HttpOptions.timeout`` from ``timeout`` in seconds
    and ``retry_options=HttpRetryOptions(attempts=1)``: one request per attempt on every
    transport. ``options`` reach ``genai.Client`` (``api_key``, ``vertexai``, ...); a
    ``timeout`` or ``retry_options`` already in ``http_options`` (an ``HttpOptions`` or a
    dict) is kept.
    """
    validate.number("timeout", timeout, above=0, bare_type_error=True)
    genai = _import("google.genai", "genai_client", "google-genai")
    types = importlib.import_module("google.genai.types")
    given = options.pop("http_options", None)
    if given is None:
        http_options = types.HttpOptions()
    elif isinstance(given, dict):
        http_options = types.HttpOptions(**given)
    else:
        http_options = given.model_copy()  # the caller's object stays as it was
    if http_options.timeout is None:
        http_options.timeout = max(1, round(timeout * 1000))
    if http_options.retry_options is None:
        http_options.retry_options = types.HttpRetryOptions(attempts=1)
    return genai.Client(http_options=http_options, **options)


def _client(package: str, name: str, timeout: float, sync: bool, options: dict[str, Any]) -> Any:
    validate.number("timeout", timeout, above=0, bare_type_error=True)
    validate.instance("sync", sync, bool, "True or False")
    module = _import(package, f"{package}_client", package)
    cls = getattr(module, name if sync else f"Async{name}")
    options.setdefault("max_retries", 0)
    return cls(timeout=timeout, **options)


def _import(module: str, helper: str, distribution: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"failover.sdk.{helper} needs the {distribution} SDK: pip install {distribution}"
        ) from None
