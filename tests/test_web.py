"""``failover.web``: the endpoints (``/health``, ``/metrics``, the JSON, the event stream), the
snapshot, admin actions and their protection, and the feed."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from failover import ConfigError, CreditExhausted, PlatformManager, PlatformSpec, RateLimited
from failover._observe.scrub import get_logger
from failover.testing import FakeClock
from failover.web import create_app, serving, snapshot
from failover.web._feed import Feed, compare
from failover.web._hub import Hub

pytestmark = pytest.mark.anyio

PRIORITIES = {
    "text_generation": [("groq", "llama"), ("openai", "gpt-4o-mini")],
    "image_editing": [("stability", "sd-3.5-large"), ("fal", "fal-3d")],
}
KEYS = {
    "GROQ_API_KEY": "gsk-test-0123456789",
    "OPENAI_API_KEY": "sk-test-0123456789",
    "STABILITY_API_KEY": "stab-test-0123456789",
    "FAL_KEY": "fal-test-0123456789",
}
TOKEN = "admin-token-0123456789"
REFRESH = 0.5


def make(**kwargs: Any) -> tuple[PlatformManager, FakeClock]:
    clock = FakeClock()
    return PlatformManager(priorities=PRIORITIES, environ=KEYS, clock=clock, **kwargs), clock


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash")


async def ok(platform: PlatformSpec) -> str:
    return platform.name


async def fail_credit(platform: PlatformSpec) -> str:
    raise CreditExhausted("out of credits")


# -- /health ----------------------------------------------------------------------------------


async def test_health_is_200_with_the_health_status_while_every_operation_has_a_platform() -> None:
    manager, _ = make()
    async with client(create_app(manager)) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(manager.get_health_status()))


async def test_health_is_503_when_an_operation_has_no_usable_platform() -> None:
    manager, _ = make()
    app = create_app(manager)
    manager.isolate("groq", "text_generation")
    async with client(app) as http:
        assert (await http.get("/health")).status_code == 200  # openai still answers
        manager.isolate("openai", "text_generation")
        response = await http.get("/health")
        assert response.status_code == 503
        assert response.json()["openai"]["operations"]["text_generation"]["state"] == "open"
        manager.reset("openai", "text_generation")
        assert (await http.get("/health")).status_code == 200


async def test_health_is_503_when_the_keys_are_missing() -> None:
    manager = PlatformManager(priorities={"text_generation": [("groq", "llama")]}, environ={})
    async with client(create_app(manager)) as http:
        assert (await http.get("/health")).status_code == 503


# -- /metrics ---------------------------------------------------------------------------------


def metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def labels(operation: str, platform: str, model: str, **extra: str) -> tuple[tuple[str, str], ...]:
    found = {"operation": operation, "platform": platform, "model": model, **extra}
    return tuple(sorted(found.items()))


async def test_metrics_parse_with_the_prometheus_parser_and_carry_the_health_figures() -> None:
    manager, _ = make()
    for _ in range(3):
        await manager.with_fallback("text_generation", ok)
    await manager.report_failure(
        PlatformSpec("openai", "gpt-4o-mini", ["text_generation"]),
        "text_generation",
        RateLimited("slow down", retry_after=30),
    )
    async with client(create_app(manager, refresh=REFRESH)) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = metrics(response.text)
    groq = labels("text_generation", "groq", "llama")
    openai = labels("text_generation", "openai", "gpt-4o-mini")
    assert found[("failover_requests_total", groq)] == 3
    assert found[("failover_failures_total", openai)] == 1
    assert found[("failover_pair_state", (*groq, ("state", "closed")))] == 1
    assert found[("failover_pair_state", (*openai, ("state", "cooling")))] == 1
    assert found[("failover_pair_state", (*openai, ("state", "closed")))] == 0
    left = found[("failover_unavailable_seconds_remaining", (*openai, ("reason", "rate_limited")))]
    assert left == pytest.approx(30)
    assert found[("failover_operation_usable", (("operation", "text_generation"),))] == 1


async def test_metrics_follow_the_manager_after_the_refresh_interval() -> None:
    manager, clock = make()
    async with client(create_app(manager, refresh=REFRESH)) as http:
        await http.get("/metrics")
        await manager.with_fallback("text_generation", ok)
        cached = metrics((await http.get("/metrics")).text)
        clock.advance(REFRESH)
        fresh = metrics((await http.get("/metrics")).text)
    groq = ("failover_requests_total", labels("text_generation", "groq", "llama"))
    assert (cached[groq], fresh[groq]) == (0, 1)


# -- the snapshot -----------------------------------------------------------------------------


async def test_the_snapshot_says_why_a_platform_is_skipped_and_for_how_long() -> None:
    manager, clock = make(cache_ttl_seconds=120)
    for _ in range(4):
        await manager.report_success(
            PlatformSpec("fal", "fal-3d", ["image_editing"]), "image_editing", response_time=0.1 * _
        )
    with pytest.raises(Exception):  # noqa: B017  (every platform of the chain fails)
        await manager.with_fallback("image_editing", fail_credit)
    clock.advance(20)
    rows = {
        (operation["name"], row["platform"]): row
        for operation in snapshot(manager)["operations"]
        for row in operation["platforms"]
    }
    stability = rows[("image_editing", "stability")]
    assert (stability["state"], stability["reason"]) == ("cooling", "credit")
    assert stability["seconds_left"] == pytest.approx(100)
    assert stability["usable"] is False
    assert rows[("image_editing", "fal")]["p50"] == pytest.approx(0.1)
    assert rows[("text_generation", "groq")]["state"] == "closed"


async def test_the_snapshot_keeps_priority_order_and_names_missing_keys() -> None:
    manager = PlatformManager(priorities=PRIORITIES, environ={"OPENAI_API_KEY": "sk-x-0123456"})
    operations = snapshot(manager)["operations"]
    text = next(item for item in operations if item["name"] == "text_generation")
    assert [row["platform"] for row in text["platforms"]] == ["groq", "openai"]
    assert [row["state"] for row in text["platforms"]] == ["missing_key", "closed"]


# -- the page, the JSON and the stream ---------------------------------------------------------


async def test_the_page_and_its_assets_are_served_with_a_strict_policy() -> None:
    manager, _ = make()
    async with client(create_app(manager)) as http:
        page = await http.get("/")
        script = await http.get("/static/dashboard.js")
        missing = await http.get("/static/../__init__.py")
        unknown = await http.get("/static/secrets.txt")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="static/dashboard.js"' in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404
    assert unknown.status_code == 404


async def test_the_state_json_is_read_only_by_default() -> None:
    manager, _ = make()
    async with client(create_app(manager)) as http:
        state = (await http.get("/api/state")).json()
        refused = await http.post("/admin/force-open", json={"platform": "groq", "operation": "x"})
    assert state["admin"] is False
    assert {item["name"] for item in state["snapshot"]["operations"]} == set(PRIORITIES)
    assert refused.status_code == 404


async def test_the_event_stream_sends_a_change_and_the_feed_line() -> None:
    manager = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    app = create_app(manager, refresh=0.05)
    async with serving(app, "127.0.0.1", 0) as url:
        host, port = url.removeprefix("http://").split(":")
        # A raw socket: the stream never ends, and reading half of it is the point.
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(b"GET /events HTTP/1.1\r\nHost: dash\r\n\r\n")
            events = _events(stream)
            with anyio.fail_after(10):
                head, first = await events.__anext__()
                manager.isolate("groq", "text_generation")
                _, changed = await events.__anext__()
            await events.aclose()
    assert "content-type: text/event-stream" in head.lower()
    assert first["snapshot"]["operations"][0]["platforms"][0]["state"] == "closed"
    groq = changed["snapshot"]["operations"][0]["platforms"][0]
    assert (groq["platform"], groq["state"]) == ("groq", "open")
    assert any("opened by hand" in line["text"] for line in changed["feed"])


async def _events(stream: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(everything received so far, event)`` for each ``data:`` line the server sends."""
    seen = buffer = ""
    while True:
        received = (await stream.receive()).decode()
        seen += received
        *lines, buffer = (buffer + received).split("\n")
        for line in lines:
            if line.startswith("data: "):
                yield seen, json.loads(line[len("data: ") :])


async def test_the_hub_reads_the_manager_once_per_interval_for_every_client() -> None:
    reads = 0
    now = [0.0]

    async def source() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"time": 0.0, "ok": True, "operations": []}

    hub = Hub(source, 1.0, Feed(lambda: 0.0), lambda: now[0])
    for _ in range(5):
        await hub.current()
    now[0] = 1.0
    await hub.current()
    assert reads == 2


def test_the_feed_reports_switches_and_completed_calls_from_two_snapshots() -> None:
    def snap(groq_usable: bool, groq_requests: int) -> dict[str, Any]:
        rows = [
            {"platform": "groq", "usable": groq_usable, "requests": groq_requests, "failures": 0},
            {"platform": "openai", "usable": True, "requests": 0, "failures": 0},
        ]
        return {"operations": [{"name": "text_generation", "platforms": rows}]}

    feed = Feed(lambda: 0.0)
    compare(snap(True, 0), snap(True, 4), feed)
    compare(snap(True, 4), snap(False, 4), feed)
    assert [line["text"] for line in feed.since(0)] == [
        "Completed text_generation using groq ×4",
        "Selected platform openai for text_generation (was groq)",
    ]


async def test_the_feed_copies_the_failover_logger_with_secrets_redacted() -> None:
    manager, _ = make()
    app = create_app(manager)
    get_logger("failover").warning("Provider echoed %s", KEYS["STABILITY_API_KEY"])
    async with client(app) as http:
        feed = (await http.get("/api/state")).json()["feed"]
    assert feed[-1]["text"] == "Provider echoed [REDACTED]"
    assert feed[-1]["level"] == logging.getLevelName(logging.WARNING).lower()


# -- admin ------------------------------------------------------------------------------------


async def test_admin_actions_need_the_token_and_refuse_cross_site_requests() -> None:
    manager, _ = make()
    body = {"platform": "groq", "operation": "text_generation"}
    good = {"authorization": f"Bearer {TOKEN}"}
    async with client(create_app(manager, admin_token=TOKEN)) as http:
        assert (await http.post("/admin/force-open", json=body)).status_code == 401
        wrong = {"authorization": "Bearer admin-token-wrong-0000"}
        assert (await http.post("/admin/force-open", json=body, headers=wrong)).status_code == 401
        foreign = {**good, "origin": "https://evil.example"}
        assert (await http.post("/admin/force-open", json=body, headers=foreign)).status_code == 403
        form = await http.post("/admin/force-open", data=body, headers=good)
        assert form.status_code == 415
        assert manager.get_health_status()["groq"]["operations"]["text_generation"]["state"] == (
            "closed"
        )
        same = {**good, "origin": "http://dash"}
        assert (await http.post("/admin/force-open", json=body, headers=same)).status_code == 200
        assert manager.get_health_status()["groq"]["is_healthy"] is False
        assert (await http.post("/admin/force-close", json=body, headers=good)).status_code == 200
        assert (await http.post("/admin/reset", json=body, headers=good)).status_code == 200
        assert manager.get_health_status()["groq"]["is_healthy"] is True
        unknown = {"platform": "nope", "operation": "text_generation"}
        assert (await http.post("/admin/reset", json=unknown, headers=good)).status_code == 404
        assert (await http.post("/admin/explode", json=body, headers=good)).status_code == 404
        assert (await http.post("/admin/reset", json=[], headers=good)).status_code == 400
        assert (await http.get("/api/state")).json()["admin"] is True


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"admin_token": "short"}, "admin_token"),
        ({"admin_token": 1234567890123456789}, "admin_token"),
        ({"admin_token": " padded-token-0123456789 "}, "admin_token"),
        ({"refresh": 0}, "refresh"),
        ({"refresh": "fast"}, "refresh"),
        ({"title": None}, "title"),
    ],
)
def test_bad_settings_get_one_clear_config_error(kwargs: dict[str, Any], key: str) -> None:
    manager, _ = make()
    with pytest.raises(ConfigError) as raised:
        create_app(manager, **kwargs)
    assert raised.value.key == key
