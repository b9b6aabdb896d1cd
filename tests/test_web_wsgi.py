"""The dashboard on a WSGI server, beside synchronous callers of the same manager."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import BaseWSGIServer, make_server

from failover import PlatformManager, PlatformSpec, Transient
from failover.web import create_wsgi_app

OP = "text_generation"


@pytest.fixture
def served() -> Iterator[tuple[PlatformManager, str]]:
    manager = PlatformManager(
        {OP: [PlatformSpec("alpha", "a-1"), PlatformSpec("beta", "b-1")]}, environ={}
    )
    server: BaseWSGIServer = make_server("127.0.0.1", 0, create_wsgi_app(manager), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield manager, f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(10)


def fails_on_alpha(platform: PlatformSpec) -> str:
    if platform.name == "alpha":
        raise Transient("503")
    return platform.name


def test_the_wsgi_app_serves_health_metrics_and_the_page(
    served: tuple[PlatformManager, str],
) -> None:
    manager, base = served
    for _ in range(3):
        manager.with_fallback_sync(OP, fails_on_alpha)
    with httpx.Client(timeout=10) as client:
        health = client.get(f"{base}/health")
        assert health.status_code == 200
        assert health.json()["alpha"]["operations"][OP]["state"] == "open"
        metrics = client.get(f"{base}/metrics")
        assert metrics.status_code == 200
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert names
        page = client.get(f"{base}/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        manager.force_open("beta", OP)
        assert client.get(f"{base}/health").status_code == 503  # no usable platform now
