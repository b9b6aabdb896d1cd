"""``failover demo --dashboard`` in a real browser: a newcomer's first look.

Runs the command as a user would, opens the page it prints, and checks that every platform of
the demo is shown and that the demo's failures reach the page. The screenshot in
``docs/dashboard.md`` is taken here (``FAILOVER_UPDATE_SCREENSHOT=1`` writes it to docs/).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import Page, browser  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

DEMO_PLATFORMS = {
    "image_editing": ["stability", "replicate", "fal"],
    "text_generation": ["groq", "openai", "anthropic"],
}
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _read_url(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"dashboard: (http://\S+?)/? ", line)
        if found:
            return found.group(1)
    raise AssertionError(f"the demo printed no dashboard URL: {''.join(seen)!r}")


@pytest.fixture
def demo() -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "demo",
            "--dashboard",
            "--port",
            "0",
            "--requests",
            "400",
            "--rate",
            "40",
            "--hold",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        yield _read_url(process, time.monotonic() + 30)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_the_demo_page_shows_every_platform_and_the_fallbacks(
    browser: Any,  # noqa: F811
    demo: str,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page = Page(browser, viewport={"width": 1280, "height": 1000})
    try:
        page.page.goto(demo + "/")
        for operation, platforms in DEMO_PLATFORMS.items():
            for platform in platforms:
                page.page.wait_for_selector(
                    f'[data-operation="{operation}"] tr[data-platform="{platform}"]'
                )
        # stability is out of credits from the start of the default scenario.
        page.page.wait_for_selector(
            '[data-operation="image_editing"] tr[data-platform="stability"][data-state="cooling"]',
            timeout=5000,
        )
        page.page.wait_for_selector("#feed li:has-text('Credit issue on stability')", timeout=5000)
        page.page.wait_for_selector("#chart-rps polyline", state="attached", timeout=5000)
        # A few seconds of traffic, so the charts have something to show.
        # (expect polls with Playwright's injected script: the page's CSP forbids eval.)
        expect(page.page.locator("#chart-rps polyline").last).to_have_attribute(
            "points", re.compile(r"^(\S+ ){4,}\S+$"), timeout=10000
        )
        assert page.page.locator("[data-action]").count() == 0
        shot = tmp_path / "dashboard.png"
        page.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("FAILOVER_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, DOCS / "dashboard.png")
        assert page.errors == []
    finally:
        page.close()
