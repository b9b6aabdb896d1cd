"""The demo's provider calls: small httpx clients speaking each provider's HTTP dialect.

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
    """Calls ``image_editing`` and ``text_generation`` on the platforms the demo knows.

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

    # -- image editing -----------------------------------------------------------------------

    async def edit_image(
        self, platform: PlatformSpec, image: bytes, mask: bytes, prompt: str
    ) -> bytes:
        """Inpaint ``image`` under ``mask``; returns the edited PNG's bytes."""
        base = self._base(platform)
        key = self._key_of(platform.api_key_env)
        client = self._client
        if platform.name == "stability":
            response = await client.post(
                f"{base}/v2beta/stable-image/edit/inpaint",
                headers={"authorization": f"Bearer {key}", "accept": "image/*"},
                files={"image": ("image.png", image), "mask": ("mask.png", mask)},
                data={"prompt": prompt, "output_format": "png"},
            )
            response.raise_for_status()
            return response.content
        if platform.name == "replicate":
            prediction = _json(
                await client.post(
                    f"{base}/v1/predictions",
                    headers={"authorization": f"Bearer {key}", "prefer": "wait"},
                    json={
                        "version": platform.model,
                        "input": {
                            "image": _data_uri(image),
                            "mask": _data_uri(mask),
                            "prompt": prompt,
                        },
                    },
                )
            )
            return await self._download(prediction["output"][0])
        if platform.name == "fal":
            result = _json(
                await client.post(
                    f"{base}/fal-ai/{platform.model}/inpaint",
                    headers={"authorization": f"Key {key}"},
                    json={
                        "image_url": _data_uri(image),
                        "mask_url": _data_uri(mask),
                        "prompt": prompt,
                    },
                )
            )
            return await self._download(result["images"][0]["url"])
        raise ValueError(f"the demo cannot edit images on {platform.name!r}")

    async def _download(self, url: str) -> bytes:
        response = await self._client.get(url)
        response.raise_for_status()
        return response.content

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


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def sample_image() -> bytes:
    """A 1x1 PNG to send as the image and the mask."""
    return _TINY_PNG
