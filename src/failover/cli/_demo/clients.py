"""The demo's text calls: small httpx clients speaking each provider's chat dialect (image
edits go through :class:`failover.http.ImageEditing`).

They talk to the fake provider server exactly as they would to the real APIs (same paths,
headers and bodies), and leave error handling to failover: a provider's error status raises
``httpx.HTTPStatusError`` with its body read, which :func:`failover.classify` understands.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from failover._core.spec import PlatformSpec

_OPENAI_COMPATIBLE: Final = frozenset({"openai", "groq", "xai", "together", "google"})
_TINY_PNG: Final = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYPgPAAEDAQAIicLsAAAAAElFTkSuQmCC"
)


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return response.json()


class DemoClients:
    """Calls ``text_generation`` on the platforms the demo knows.

    ``base_urls`` maps a platform to the API root to use for it (the fake server's
    :meth:`~failover.testing.FakeProviderServer.base_url`); ``key_of`` returns the API key
    for a platform's ``api_key_env`` (never logged, only sent to that base URL).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_urls: Mapping[str, str],
        key_of: Callable[[str | None], str],
    ) -> None:
        self._client = client
        self._base_urls = dict(base_urls)
        self._key_of = key_of

    def _base(self, platform: PlatformSpec) -> str:
        try:
            return self._base_urls[platform.name]
        except KeyError:
            raise ValueError(f"the demo has no client for platform {platform.name!r}") from None

    # -- text generation ---------------------------------------------------------------------

    async def generate_text(self, platform: PlatformSpec, prompt: str) -> str:
        """One chat completion for ``prompt``; returns the reply text."""
        base = self._base(platform)
        key = self._key_of(platform.api_key_env)
        messages = [{"role": "user", "content": prompt}]
        if platform.name in _OPENAI_COMPATIBLE:
            completion = _json(
                await self._client.post(
                    f"{base}/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                    json={"model": platform.model, "messages": messages},
                )
            )
            return str(completion["choices"][0]["message"]["content"])
        if platform.name == "anthropic":
            message = _json(
                await self._client.post(
                    f"{base}/v1/messages",
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                    json={"model": platform.model, "max_tokens": 256, "messages": messages},
                )
            )
            return str(message["content"][0]["text"])
        raise ValueError(f"the demo cannot generate text on {platform.name!r}")


def sample_image() -> bytes:
    """A 1x1 PNG to send as the image and the mask."""
    return _TINY_PNG
