"""``import failover`` leaves tenacity, pybreaker and the OpenTelemetry API unimported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tenacity

import failover
from failover import NO_RETRY, Policy, Retry
from failover.policies.policy import ResolvedPolicy


def run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_import_failover_imports_none_of_the_heavy_dependencies() -> None:
    code = (
        "import sys, failover\n"
        "heavy = ('opentelemetry', 'pybreaker', 'tenacity', 'email.utils')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    assert run(code) == "[]"


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
        "from failover.policies import retry as _policies\n"
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


LATE_OTEL = """
import json, sys
import anyio
import failover
from failover import PlatformManager, PlatformSpec, Chaos

manager = PlatformManager(
    {"image_editing": [("alpha", "a-1"), ("beta", "b-1")]}, environ={}, cache_ttl_seconds=60
)

async def erase(platform: PlatformSpec, image: bytes) -> bytes:
    if platform.name == "alpha":
        raise failover.CreditExhausted("402")
    return image

async def main():
    before = await manager.with_fallback("image_editing", erase, b"png")
    loaded_before = [m for m in ("opentelemetry", "opentelemetry.trace") if m in sys.modules]
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    manager.reset("alpha")
    after = await manager.with_fallback("image_editing", erase, b"png")
    print(json.dumps({
        "results": [before[0].decode(), after[0].decode()],
        "loaded_before": loaded_before,
        "spans": sorted(span.name for span in exporter.get_finished_spans()),
    }))

anyio.run(main, backend=BACKEND)
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_opentelemetry_imported_after_failover_is_picked_up(backend: str) -> None:
    result = json.loads(run(LATE_OTEL.replace("BACKEND", repr(backend))).splitlines()[-1])

    assert result["results"] == ["png", "png"]
    assert result["loaded_before"] == []  # calls without the API never imported it
    assert result["spans"] == [
        "failover image_editing",
        "generate_content a-1",
        "generate_content b-1",
    ]


def test_calls_without_the_api_never_import_it_monitoring_on_or_off() -> None:
    code = (
        "import sys, anyio\n"
        "from failover import PlatformManager\n"
        "from failover.testing import ScriptedOperation\n"
        "for enabled in (True, False):\n"
        "    manager = PlatformManager(\n"
        "        {'chat': [('a', 'm')]}, environ={}, monitoring_enabled=enabled\n"
        "    )\n"
        "    anyio.run(manager.with_fallback, 'chat', ScriptedOperation({}))\n"
        "    print(manager._telemetry.quiet(), 'opentelemetry' in sys.modules)\n"
    )
    assert run(code).splitlines() == ["True False", "True False"]
