"""Headless Chromium for the dashboard tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is not used: the system browser is launched through
``executable_path``. Without a browser the tests skip, except under ``FAILOVER_REQUIRE_BROWSER=1``
(set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def chromium_path() -> str:
    path = os.environ.get("FAILOVER_CHROMIUM") or shutil.which("chromium")
    playwright_missing = False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        playwright_missing = True
    if path is None or playwright_missing:
        reason = "no chromium on PATH" if path is None else "playwright is not installed"
        if os.environ.get("FAILOVER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FAILOVER_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A page with every console error and uncaught exception collected."""

    def __init__(self, browser: Any, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console", lambda message: message.type == "error" and self.errors.append(message.text)
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def close(self) -> None:
        self.context.close()
