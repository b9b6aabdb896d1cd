"""Official SDK clients configured for failover: no retries of their own, a bounded timeout.

An SDK's own retries run *inside* one failover attempt, where failover cannot see them: a
default ``AsyncOpenAI()`` (``max_retries=2``) answering a 429 with ``Retry-After: 20`` sat on
the primary for 40 s and sent it 3 requests before failover saw one error and fell back.
failover already decides what a failure means (wait out a rate limit, cool a platform out of
credits, open a breaker) and falls back in milliseconds, so the client should fail at once and
let it. These helpers build each SDK's client that way; the SDKs are imported only when a
helper is called and are not dependencies of failover. See ``docs/sdks.md``.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from failover._core import validate

#: Seconds a request may take before the SDK gives up, unless ``timeout=`` says otherwise:
#: long enough for a slow completion, short enough that a hung provider costs one attempt.
DEFAULT_TIMEOUT: Final = 60.0

__all__ = ["DEFAULT_TIMEOUT", "anthropic_client", "openai_client"]


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


def _client(package: str, name: str, timeout: float, sync: bool, options: dict[str, Any]) -> Any:
    validate.number("timeout", timeout, above=0, bare_type_error=True)
    validate.instance("sync", sync, bool, "True or False")
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ImportError(
            f"failover.sdk.{package}_client needs the {package} SDK: pip install {package}"
        ) from None
    cls = getattr(module, name if sync else f"Async{name}")
    options.setdefault("max_retries", 0)
    return cls(timeout=timeout, **options)
