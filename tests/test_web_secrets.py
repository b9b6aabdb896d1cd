"""No API key value, prompt or payload on any dashboard endpoint (the secrets canary, extended).

Every platform's key variable holds a canary; the operations fail with errors that echo keys
back, as providers do, and carry a canary prompt and payload. Then every endpoint's body (the
page, its assets, the JSON, the event stream, /health, /metrics, admin refusals) and the fleet
summary published to Redis are searched for the canaries.
"""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest
import tenacity

from failover import AllPlatformsFailed, PlatformManager, PlatformSpec, Policy, Retry
from failover.testing import FakeClock
from failover.web import create_app, snapshot
from failover.web._app import ASSETS, _stream
from test_telemetry_secrets import canaries, echo

pytestmark = pytest.mark.anyio

PROMPT = "PromptCanary-draw-a-cat-9f3e"
PAYLOAD = b"PayloadCanary-\x89PNG-bytes-77a1"
TOKEN = "admin-token-canary-0123456789"


async def _exercise(manager: PlatformManager, keys: dict[str, str]) -> None:
    async def failing(platform: PlatformSpec, prompt: str, image: bytes) -> str:
        raise echo(platform, keys)

    for operation in ("text_generation", "image_generation", "image_editing"):
        with pytest.raises(AllPlatformsFailed):
            await manager.with_fallback(operation, failing, PROMPT, PAYLOAD)


async def test_no_endpoint_shows_a_key_a_prompt_or_a_payload() -> None:
    keys = canaries()
    manager = PlatformManager(
        None,
        failure_threshold=2,
        max_attempts=20,
        clock=FakeClock(autojump=True),
        environ=dict(keys),
        policy=Policy(
            retry=Retry(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(1))
        ),
    )
    app = create_app(manager, admin_token=TOKEN)  # the feed is attached from here on
    await _exercise(manager, keys)
    bodies: list[str] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as http:
        paths = ["/", "/api/state", "/health", "/metrics", *(f"/static/{n}" for n in ASSETS)]
        for path in paths:
            response = await http.get(path)
            assert response.status_code in (200, 503), path
            bodies.append(response.text)
        for headers in ({}, {"authorization": f"Bearer {TOKEN}"}):
            for body in ({"platform": keys["OPENAI_API_KEY"], "operation": "x"}, {"p": 1}):
                response = await http.post("/admin/reset", json=body, headers=headers)
                bodies.append(response.text)
    async with aclosing(_stream(app.state.failover_hub, 0)) as stream:
        bodies.append(await anext(stream))
    bodies.append(repr(snapshot(manager)))
    state = bodies[1]
    assert "Credit issue" in state
    assert "credit" in bodies[3]
    found = _leaks(bodies, [*keys.values(), PROMPT, PAYLOAD.decode("latin-1")[:20], TOKEN])
    assert found == []


def _leaks(bodies: list[str], canaries: list[str]) -> list[tuple[int, str]]:
    return [
        (index, canary)
        for index, body in enumerate(bodies)
        for canary in canaries
        if canary in body
    ]


def test_the_canary_check_would_see_a_leak() -> None:
    assert _leaks(["x sk-abc y"], ["sk-abc"]) == [(0, "sk-abc")]


async def test_the_fleet_summary_carries_no_key() -> None:
    """What ``publish_health`` writes to Redis is this snapshot, serialised."""
    import json

    keys = canaries()
    manager = PlatformManager(None, clock=FakeClock(autojump=True), environ=dict(keys))
    await _exercise(manager, keys)
    text = json.dumps(snapshot(manager))
    assert _leaks([text], [*keys.values(), PROMPT]) == []
