"""The chaos soak (``tests/soak.py``) at CI size on asyncio and trio.

``FAILOVER_SOAK_CALLS`` sets the calls per backend (default 1,000, so 2,000 in all);
``FAILOVER_SOAK_CALLS=20000`` runs the full size. Every figure must reconcile exactly with
the operation's log of every attempt; the report's ``problems`` lists any mismatch.
"""

from __future__ import annotations

import json
import os

import pytest

from soak import FAULT_OUTCOMES, canary_keys, run_soak

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = int(os.environ.get("FAILOVER_SOAK_CALLS", "1000"))
CONCURRENCY = 200


async def test_chaos_soak_loses_nothing_leaks_nothing_and_reconciles_exactly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = canary_keys()
    report = await run_soak(CALLS, CONCURRENCY, seed=7, keep_spans=CALLS <= 5_000, keys=keys)
    with capsys.disabled():
        print(f"\nsoak ({report.backend}):", json.dumps(report.figures()))
    assert report.problems == []
    assert report.lost == 0
    assert report.succeeded + report.all_platforms_failed == CALLS
    assert report.peak_in_flight == CONCURRENCY
    assert report.tasks_leaked == 0
    assert report.sockets_leaked == 0
    # It really was a chaos run over real HTTP: answers, failures of every kind, refusals.
    assert report.succeeded > 0
    assert set(FAULT_OUTCOMES) <= set(report.faults_served)
    assert report.server_requests > 0
    assert report.log_records > 0
    assert report.spans >= CALLS
    assert len(report.switches) == 7
