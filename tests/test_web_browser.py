"""The dashboard in a real browser (headless Chromium): what a person sees.

The server runs on an event loop in a background thread (a blocking portal, on asyncio and on
trio); the test changes the manager's state through that loop and watches the page follow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from browser_support import Page, browser  # noqa: F401  (a fixture)
from failover import PlatformManager, PlatformSpec
from failover._observe.scrub import get_logger
from failover.web import create_app, serving
from failover.web._app import build
from failover.web._feed import Feed
from failover.web._hub import Hub

pytestmark = pytest.mark.browser

PRIORITIES = {
    "text_generation": [("groq", "llama-3.3-70b-versatile"), ("openai", "gpt-4o-mini")],
    "image_editing": [("stability", "sd-3.5-large"), ("replicate", "flux"), ("fal", "fal-3d")],
}
KEYS = {
    "GROQ_API_KEY": "gsk-test-0123456789",
    "OPENAI_API_KEY": "sk-test-0123456789",
    "STABILITY_API_KEY": "stab-test-0123456789",
    "REPLICATE_API_TOKEN": "r8-test-0123456789",
}
ROW = '[data-operation="{operation}"] tr[data-platform="{platform}"]'


@pytest.fixture(params=["asyncio", "trio"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[BlockingPortal, PlatformManager, str]]:
    manager = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    app = create_app(manager, refresh=0.2)
    with (
        start_blocking_portal(backend=request.param) as portal,
        portal.wrap_async_context_manager(serving(app, "127.0.0.1", 0)) as url,
    ):
        for operation in PRIORITIES:
            for _ in range(5):
                portal.call(manager.with_fallback, operation, _answer)
        yield portal, manager, url


async def _answer(platform: PlatformSpec) -> str:
    return platform.name


def _open(browser: Any, url: str, **context: Any) -> Page:  # noqa: F811
    page = Page(browser, **context)
    page.page.goto(url + "/")
    page.page.wait_for_selector("tr[data-platform]")
    return page


def test_the_page_shows_every_platform_and_follows_a_breaker_within_2s(
    browser: Any,  # noqa: F811
    served: tuple[BlockingPortal, PlatformManager, str],
) -> None:
    portal, manager, url = served
    page = _open(browser, url)
    try:
        for operation, platforms in PRIORITIES.items():
            for platform, model in platforms:
                row = page.page.locator(ROW.format(operation=operation, platform=platform))
                assert row.count() == 1
                assert model in row.inner_text()
        # fal has no key in KEYS: the page says so instead of pretending it is usable.
        fal = page.page.locator(ROW.format(operation="image_editing", platform="fal"))
        assert fal.get_attribute("data-state") == "missing_key"
        groq = ROW.format(operation="text_generation", platform="groq")
        assert page.page.locator(groq).get_attribute("data-state") == "closed"

        opened_at = time.monotonic()
        portal.call(manager.force_open, "groq", "text_generation")
        page.page.wait_for_selector(f'{groq}[data-state="open"]', timeout=2000)
        assert time.monotonic() - opened_at < 2.0
        assert (
            page.page.locator('[data-operation="text_generation"] tr.selected').get_attribute(
                "data-platform"
            )
            == "openai"
        )
        # The feed says what happened, as the manager's log does.
        page.page.wait_for_selector("#feed li:has-text('opened by hand')", timeout=2000)
        # Read-only by default: no admin column, no action button, and the routes do not exist.
        assert page.page.locator("[data-action], th.admin").count() == 0
        assert page.page.request.post(url + "/admin/reset").status == 404
        assert page.errors == []
    finally:
        page.close()


def test_the_page_fits_a_phone_in_dark_mode(
    browser: Any,  # noqa: F811
    served: tuple[BlockingPortal, PlatformManager, str],
) -> None:
    _, _, url = served
    page = _open(browser, url, viewport={"width": 390, "height": 844}, color_scheme="dark")
    try:
        width = page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        background = page.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 20, 23)"
        assert page.errors == []
    finally:
        page.close()


def test_admin_actions_appear_only_with_a_token_and_work_with_it(
    browser: Any,  # noqa: F811
) -> None:
    manager = PlatformManager(priorities=PRIORITIES, environ=KEYS)
    token = "admin-token-0123456789"
    app = create_app(manager, refresh=0.2, admin_token=token)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serving(app, "127.0.0.1", 0)) as url,
    ):
        page = _open(browser, url)
        try:
            page.page.once("dialog", lambda dialog: dialog.accept(token))
            groq = ROW.format(operation="text_generation", platform="groq")
            page.page.click(f'{groq} [data-action="force-open"]')
            page.page.wait_for_selector(f'{groq}[data-state="open"]', timeout=2000)
            assert (
                manager.get_health_status()["groq"]["operations"]["text_generation"]["state"]
                == "open"
            )
            assert page.errors == []
        finally:
            page.close()


HOSTILE = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"


def _hostile_snapshot() -> dict[str, Any]:
    row = {
        "platform": HOSTILE,
        "model": HOSTILE,
        "state": "cooling",
        "reason": HOSTILE,
        "seconds_left": 30.0,
        "usable": True,
        "requests": 3,
        "failures": 1,
        "failure_rate": 1 / 3,
        "p50": 0.1,
        "p95": 0.2,
        "cost": 0.0,
        "last_error_kind": HOSTILE,
    }
    return {
        "time": time.time(),
        "ok": True,
        "operations": [{"name": HOSTILE, "usable": True, "platforms": [row]}],
    }


def test_names_models_and_error_texts_are_shown_as_text_never_run(
    browser: Any,  # noqa: F811
) -> None:
    """Fleet summaries come from Redis, so even names the manager would refuse can arrive."""
    feed = Feed(time.time)
    feed.add("warning", f"Provider said: {HOSTILE}")

    async def source() -> dict[str, Any]:
        return _hostile_snapshot()

    async def health() -> tuple[dict[str, Any], bool]:
        return {}, True

    app = build(Hub(source, 0.2, feed), health, admin=False, title=HOSTILE)
    # And through a real manager: a hostile model name and an error text in its log.
    manager = PlatformManager(priorities={"text_generation": [("groq", HOSTILE)]}, environ=KEYS)
    real = create_app(manager, refresh=0.2)
    with start_blocking_portal() as portal:
        for target in (app, real):
            with portal.wrap_async_context_manager(serving(target, "127.0.0.1", 0)) as url:
                page = _open(browser, url)
                try:
                    get_logger("failover").warning("Provider error: %s", HOSTILE)
                    page.page.wait_for_selector("#feed li", timeout=2000)
                    assert page.page.evaluate("window.__xss") is None
                    assert page.page.locator("script:not([src])").count() == 0
                    assert page.page.locator("#operations img").count() == 0
                    assert HOSTILE in page.page.locator("#operations").inner_text()
                    assert HOSTILE in page.page.locator("#feed").inner_text()
                    assert page.errors == []
                finally:
                    page.close()
