"""Request bodies of the HTTP adapters leave nothing unfinished when an attempt is cancelled.

Found by the chaos soak on trio: httpx's ``ByteStream.__aiter__`` is an async generator, so a
request cancelled while its body was being written (an attempt timeout) left it unfinished
and trio warned (``ResourceWarning``) when it was collected (encode/httpx#3686).
"""

from __future__ import annotations

import gc
import inspect
import json
import warnings

import httpx
import pytest

from failover import PlatformSpec
from failover.http import OpenAICompatibleChat
from failover.http._base import RequestBody

pytestmark = pytest.mark.anyio


async def test_an_abandoned_body_iteration_leaves_no_generator_behind() -> None:
    body = RequestBody(b'{"a": 1}')
    iterator = body.__aiter__()
    assert not inspect.isasyncgen(iterator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert await iterator.__anext__() == b'{"a": 1}'
        del iterator  # abandoned before StopAsyncIteration, as a cancelled write does
        gc.collect()
    assert [chunk async for chunk in body] == [b'{"a": 1}']


async def test_the_adapter_sends_its_body_through_request_body() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        chunks = [chunk async for chunk in request.stream]  # type: ignore[union-attr]
        body = json.loads(b"".join(chunks))
        return httpx.Response(
            200,
            json={
                "model": body["model"],
                "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            },
        )

    adapter = OpenAICompatibleChat(
        "http://fake/v1", transport=httpx.MockTransport(handler), environ={"K": "v"}
    )
    platform = PlatformSpec("openai", "gpt", api_key_env="K")
    async with adapter:
        result = await adapter.complete(platform, [{"role": "user", "content": "x"}])
    assert result.text == "hi"
    assert type(seen[0].stream) is RequestBody
