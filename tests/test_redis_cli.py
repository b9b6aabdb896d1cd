"""``failover health --redis URL``: the fleet's view, read from a real Redis."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from failover import CreditExhausted, PlatformManager, Transient
from failover.cli import main
from failover.redis import RedisSharedState
from test_redis_support import (
    ENVIRON,
    PRIORITIES,
    PrivateRedis,
    free_port,
)

OP = "text_generation"


async def _fleet_state(url: str, namespace: str) -> str:
    """One process's worth of shared state: openai open, groq out of credits, a probe lease."""
    manager = PlatformManager(
        PRIORITIES,
        cache_ttl_seconds=300,
        environ=ENVIRON,
        shared_state=RedisSharedState(url, namespace),
    )

    async def failing(spec: Any) -> str:
        if spec.name == "openai":
            raise Transient("503")
        raise CreditExhausted("insufficient_quota")

    async with manager:
        for _ in range(3):
            with pytest.raises(Exception, match="platform"):
                await manager.with_fallback(OP, failing)
        token = await manager.shared_state.acquire_probe(("openai", "image_editing"), 60_000, 1)
        assert token
        await manager.shared_state.stop(2.0)
        return str(manager.shared_state.process_id)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_health_shows_open_pairs_cooldowns_and_probe_holders(
    redis_url: str, namespace: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    process_id = anyio.run(_fleet_state, redis_url, namespace, backend=backend)
    assert main(["health", "--redis", redis_url, "--namespace", namespace]) == 0
    out = capsys.readouterr().out
    host, pid = process_id.split(":")[:2]
    assert f"Fleet {namespace!r} at {redis_url}" in out
    assert "openai / text_generation" in out
    assert "min left" in out  # 300 s shown as minutes
    assert "groq (all operations): credit" in out
    assert f"openai / image_editing #0: held by {host} pid {pid}" in out


def test_health_json_is_one_object_with_time_left(
    redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    process_id = anyio.run(_fleet_state, redis_url, namespace)
    assert main(["health", "--redis", redis_url, "--namespace", namespace, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["namespace"] == namespace
    [opened] = view["open"]
    assert (opened["platform"], opened["operation"], opened["by"]) == ("openai", OP, process_id)
    assert 290 < opened["remaining_seconds"] <= 300
    [cooling] = view["cooling"]
    assert (cooling["platform"], cooling["reason"]) == ("groq", "credit")
    assert 290 < cooling["remaining_seconds"] <= 300
    [probe] = view["probes"]
    assert probe["holder"] == process_id
    assert 50 < probe["expires_in"] <= 60


def test_health_of_an_empty_namespace_says_all_is_well(
    redis_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--redis", redis_url, "--namespace", namespace]) == 0
    assert "every platform is usable fleet-wide" in capsys.readouterr().out


def test_health_with_unreachable_redis_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["health", "--redis", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"failover: error: cannot reach Redis at {url}")
    assert "\n" not in err


def test_health_with_a_wrong_password_names_the_problem_not_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = PrivateRedis(password="correct-horse")
    server.start()
    try:
        url = f"redis://:battery-staple@127.0.0.1:{server.port}/0"
        assert main(["health", "--redis", url]) == 1
    finally:
        server.kill()
    err = capsys.readouterr().err
    assert "refused the credentials" in err
    assert "battery-staple" not in err


def test_health_with_a_malformed_url_is_a_config_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["health", "--redis", "localhost:6379"]) == 1
    assert "must start with redis://" in capsys.readouterr().err
