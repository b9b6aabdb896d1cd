"""``import failover`` leaves tenacity (and pybreaker) unimported until they are needed."""

from __future__ import annotations

import subprocess
import sys

import tenacity

import failover
from failover import NO_RETRY, Policy, Retry
from failover._policies import ResolvedPolicy


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_failover_leaves_tenacity_unimported_until_a_retry_is_built() -> None:
    code = (
        "import sys, failover\n"
        "print('tenacity' in sys.modules)\n"
        "failover.PlatformManager(priorities={'chat': [('a', 'm')]}, environ={})\n"
        "print('tenacity' in sys.modules)\n"
        "failover.Retry()\n"
        "print('tenacity' in sys.modules)\n"
    )
    assert run(code).split() == ["False", "False", "True"]


def test_no_retry_is_one_object_built_on_first_use() -> None:
    code = (
        "import sys, failover\n"
        "from failover import NO_RETRY\n"
        "from failover import _policies\n"
        "print('tenacity' in sys.modules, NO_RETRY is failover.NO_RETRY is _policies.NO_RETRY)\n"
    )
    assert run(code).split() == ["True", "True"]


def test_retry_defaults_are_shared_values() -> None:
    first, second = Retry(), Retry()

    assert first == second
    assert first.stop is second.stop
    assert isinstance(first.stop, tenacity.stop_after_attempt)
    assert first.stop.max_attempt_number == 3
    assert isinstance(first.wait, tenacity.wait_random_exponential)
    assert first.retry is None


def test_no_retry_resolves_to_no_retry_and_other_retries_stay() -> None:
    assert isinstance(NO_RETRY.stop, tenacity.stop_after_attempt)
    assert NO_RETRY.stop.max_attempt_number == 1
    assert isinstance(NO_RETRY.wait, tenacity.wait_none)
    assert ResolvedPolicy.of(Policy(retry=NO_RETRY)).retry is None
    retry = Retry()
    assert ResolvedPolicy.of(Policy(retry=retry)).retry is retry
    assert "NO_RETRY" in failover.__all__
    assert failover.NO_RETRY is NO_RETRY
