"""What the dashboard costs: the happy path with a page open, and the page with 1,000 pairs.

Run: ``.venv/bin/python benchmarks/bench_dashboard.py`` (``--quick`` for a short run).

1. **Happy path.** ``manager.with_fallback`` on a ready pair, timed in phases that alternate
   (A B A B ...): A with nothing else running, B with the dashboard served by hypercorn on the
   same event loop and one client reading its event stream (the page's refresh: 0.5 s). Each
   figure is the median over phases of the median per-call time (ns) of a phase's rounds.
   Phases, not interleaved variants: the server and its client are what is measured, and they
   cannot be switched on and off per round.
2. **1,000 pairs.** A manager with 10 operations of 100 platforms each: the time to take one
   snapshot, to render ``/metrics``, the size of one stream event, and, with Chromium present,
   how long the browser takes to show the page and to apply one update.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from typing import Any

import anyio

from _harness import interleave
from failover import PlatformManager, PlatformSpec
from failover.web import create_app, serving, snapshot
from failover.web._metrics import render

OP = "text_generation"


async def operation(platform: PlatformSpec) -> str:
    return "ok"


async def _read_stream(url: str, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        await stream.receive()
        task_status.started()
        while True:
            await stream.receive()


async def happy_path(phases: int, rounds: int) -> dict[str, float]:
    manager = PlatformManager(
        {OP: [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]}, environ={}
    )
    call = {"with_fallback": lambda: manager.with_fallback(OP, operation)}
    app = create_app(manager)
    without: list[float] = []
    with_page: list[float] = []
    for _ in range(phases):
        samples = await interleave(call, rounds, 2_000)
        without.append(statistics.median(samples["with_fallback"]))
        async with serving(app, "127.0.0.1", 0) as url, anyio.create_task_group() as tasks:
            await tasks.start(_read_stream, url)
            samples = await interleave(call, rounds, 2_000)
            with_page.append(statistics.median(samples["with_fallback"]))
            tasks.cancel_scope.cancel()
    a, b = statistics.median(without), statistics.median(with_page)
    return {"without_ns": a, "with_page_ns": b, "change_percent": (b - a) / a * 100}


def big_manager() -> PlatformManager:
    priorities = {
        f"operation_{o}": [(f"platform_{p}", f"model-{o}-{p}") for p in range(100)]
        for o in range(10)
    }
    return PlatformManager(priorities, environ={})


async def thousand_pairs(browser: bool) -> dict[str, float]:
    manager = big_manager()
    for o in range(10):
        for _ in range(20):
            await manager.with_fallback(f"operation_{o}", operation)
    started = time.perf_counter()
    for _ in range(20):
        current = snapshot(manager)
    took = (time.perf_counter() - started) / 20
    started = time.perf_counter()
    for _ in range(20):
        render(current)
    metrics = (time.perf_counter() - started) / 20
    figures = {
        "snapshot_ms": took * 1000,
        "metrics_ms": metrics * 1000,
        "event_kb": len(json.dumps({"snapshot": current, "feed": []})) / 1024,
    }
    if browser:
        figures.update(await _browser_figures(manager))
    return figures


async def _browser_figures(manager: PlatformManager) -> dict[str, float]:
    app = create_app(manager)
    async with serving(app, "127.0.0.1", 0) as url:
        return await anyio.to_thread.run_sync(_measure_page, url)


def _measure_page(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox"]
        )
        # bypass_csp: the page forbids eval, which Playwright's own polling uses.
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        started = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_function("document.querySelectorAll('tr[data-platform]').length >= 1000")
        loaded = time.perf_counter() - started
        update = page.evaluate(
            """() => {
                const started = performance.now();
                for (let i = 0; i < 10; i++) { apply(view.snapshot, []); renderCharts(); }
                return (performance.now() - started) / 10;
            }"""
        )
        browser.close()
    return {"page_load_ms": loaded * 1000, "update_ms": float(update)}


async def main(quick: bool) -> None:
    phases, rounds = (3, 5) if quick else (8, 15)
    results = {
        "happy_path": await happy_path(phases, rounds),
        "thousand_pairs": await thousand_pairs(shutil.which("chromium") is not None),
    }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    anyio.run(main, parser.parse_args().quick)
