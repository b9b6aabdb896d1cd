"""Every async test runs on asyncio and on trio. The Redis tests' common fixtures
(``redis_url``, ``namespace``, ``workers``) are here too.

Hypothesis profiles: ``ci`` (default) keeps the property tests to about a minute in all;
``FAILOVER_HYPOTHESIS_PROFILE=large`` runs ten times as many, longer examples.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=2000,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "large",
    max_examples=20000,
    stateful_step_count=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("FAILOVER_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- Redis (the helpers live in test_redis_support) --------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """The shared Redis (a skip, or in CI a failure, when none answers)."""
    from test_redis_support import require_redis

    return require_redis()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of its own for the test, its keys deleted afterwards."""
    import anyio

    from test_redis_support import delete_namespace, unique_namespace

    name = unique_namespace()
    yield name
    anyio.run(delete_namespace, redis_url, name)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts (append them); killed and reaped afterwards."""
    from test_redis_support import finish

    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        finish(process)
