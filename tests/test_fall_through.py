"""Visible fall-through: request faults counted per pair, WARNING (rate-limited) when a pair is
passed over for them, one INFO line when a call was served by another platform."""

from __future__ import annotations

import logging

import pytest

from failover import CreditExhausted, PlatformManager, PlatformSpec
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

EDIT = "image_editing"
SPECS = [
    PlatformSpec("stability", "sd", api_key_env=None),
    PlatformSpec("replicate", "flux", api_key_env=None),
]


class NotFound(Exception):
    """What an SDK raises for a 404: read by its status."""

    status_code = 404


async def test_a_404_fall_through_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    clock = FakeClock()
    manager = PlatformManager({EDIT: SPECS}, environ={}, clock=clock)

    async def operation(platform: PlatformSpec) -> str:
        if platform.name == "stability":
            raise NotFound("model_not_found")
        return platform.name

    for _ in range(5):
        assert (await manager.with_fallback(EDIT, operation))[0] == "replicate"
    detail = manager.get_health_status()["stability"]["operations"][EDIT]
    assert detail["request_faults"] == 5
    assert detail["last_request_fault"] == "not_found"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "stability passed over for image_editing: request fault (not_found), "
        "trying the next platform"
    ]
    served = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert served == ["image_editing served by replicate; stability: request fault (HTTP 404)"] * 5
    assert "model_not_found" not in caplog.text  # the provider's text stays out
    clock.advance(60)
    await manager.with_fallback(EDIT, operation)
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2


async def test_a_credit_fall_back_names_why(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    manager = PlatformManager({EDIT: SPECS}, environ={})

    async def operation(platform: PlatformSpec) -> str:
        if platform.name == "stability":
            raise CreditExhausted("balance", status_code=402)
        return platform.name

    await manager.with_fallback(EDIT, operation)
    caplog.clear()
    await manager.with_fallback(EDIT, operation)  # stability is cooling down: skipped
    assert [r.getMessage() for r in caplog.records] == [
        "image_editing served by replicate; stability: out of credits"
    ]


async def test_a_call_that_did_not_fall_back_logs_nothing_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    manager = PlatformManager({EDIT: SPECS}, environ={})

    async def operation(platform: PlatformSpec) -> str:
        return platform.name

    for _ in range(3):
        await manager.with_fallback(EDIT, operation)
    assert caplog.records == []


def test_the_sync_api_logs_the_same(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    manager = PlatformManager({EDIT: SPECS}, environ={})

    def operation(platform: PlatformSpec) -> str:
        if platform.name == "stability":
            raise ConnectionError("reset")
        return platform.name

    manager.with_fallback_sync(EDIT, operation)
    assert [r.getMessage() for r in caplog.records] == [
        "image_editing served by replicate; stability: failed (ConnectionError)"
    ]
