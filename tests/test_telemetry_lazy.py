"""With no SDK installed failover skips span work; it starts tracing once one is installed.

This process never installs a global provider (other telemetry tests pass providers to the
manager), so the "nobody listens" path is checked here directly; installing a global provider
after ``import failover`` is checked in a fresh interpreter, because the API allows setting it
only once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from failover import PlatformManager, PlatformSpec, Transient
from failover._observe.telemetry import _global_meter_provider_set, _global_tracer_provider_set
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


async def test_no_sdk_means_no_span_and_no_provider_lookup_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not _global_tracer_provider_set()
    assert not _global_meter_provider_set()

    def must_not_be_called(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("looked up a provider on the no-SDK path")

    monkeypatch.setattr(otel_trace, "get_tracer_provider", must_not_be_called)
    monkeypatch.setattr(otel_metrics, "get_meter_provider", must_not_be_called)
    manager = PlatformManager(
        {"text_generation": [("alpha", "a-1"), ("beta", "b-1")]},
        clock=FakeClock(),
        environ={},
        failure_threshold=1,
    )
    inside: list[bool] = []

    async def operation(platform: PlatformSpec) -> str:
        inside.append(otel_trace.get_current_span().get_span_context().is_valid)
        if platform.name == "alpha":
            raise Transient("503")  # opens alpha: a transition, a skip next time
        return "ok"

    for _ in range(3):
        await manager.with_fallback("text_generation", operation)

    assert inside == [False, False, False, False]  # no span was current inside the operation
    assert manager._telemetry.tracer() is None
    assert manager._telemetry.instruments() is None


def run_python(script: str, env: dict[str, str] | None = None) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AI_"))}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


#: What both pickup scripts start with: the SDK, and a function installing global providers
#: that record in memory (the API allows that once per process).
SDK = """
import json
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

def install_providers():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader

def metric_names(reader):
    data = reader.get_metrics_data()
    return sorted(
        metric.name
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )
"""

PICKUP = (
    SDK
    + """
import anyio

import failover
from failover import PlatformManager, fallback
from failover.testing import ScriptedOperation

manager = PlatformManager(
    {"image_editing": [("alpha", "a-1"), ("beta", "b-1")]}, environ={}, cache_ttl_seconds=60
)

@fallback("image_editing", manager=manager)
async def erase(platform, image):
    if platform.name == "alpha":
        raise failover.CreditExhausted("402")
    return image

async def main():
    before = await erase(b"png")
    exporter, reader = install_providers()
    manager.reset("alpha")
    after = await erase(b"png")
    spans = [
        {
            "name": span.name,
            "parent": None if span.parent is None else span.parent.span_id,
            "id": span.context.span_id,
            "attributes": dict(span.attributes),
        }
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps({"results": [before.decode(), after.decode()], "spans": spans,
                      "metrics": metric_names(reader)}))

anyio.run(main, backend=BACKEND)
"""
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_tracing_starts_when_a_provider_is_installed_after_import(backend: str) -> None:
    result = run_python(PICKUP.replace("BACKEND", repr(backend)))

    assert result["results"] == ["png", "png"]
    spans = {span["name"]: span for span in result["spans"]}
    assert set(spans) == {
        "failover image_editing",
        "generate_content a-1",
        "generate_content b-1",
    }  # only the second call: the first ran before any provider existed
    call = spans["failover image_editing"]
    assert call["parent"] is None
    assert spans["generate_content a-1"]["parent"] == call["id"]
    assert spans["generate_content b-1"]["parent"] == call["id"]
    assert call["attributes"]["failover.platform"] == "beta"
    assert spans["generate_content a-1"]["attributes"]["error.type"] == "CreditExhausted"
    assert result["metrics"] == [
        "failover.attempt.duration",
        "failover.attempts",
        "failover.call.duration",
    ]


NO_OP_GLOBAL = """
import json
import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from failover import PlatformManager
from failover.testing import ScriptedOperation

trace.set_tracer_provider(PROVIDER)
manager = PlatformManager({"text_generation": [("alpha", "a-1")]}, environ={})
anyio.run(manager.with_fallback, "text_generation", ScriptedOperation({}))
telemetry = manager._telemetry
print(json.dumps({"tracer": telemetry.tracer() is not None, "off": telemetry._tracing_off}))
"""


@pytest.mark.parametrize(
    ("provider", "env"),
    [
        ("trace.NoOpTracerProvider()", {}),
        ("TracerProvider()", {"OTEL_SDK_DISABLED": "true"}),
    ],
)
def test_a_provider_that_records_nothing_switches_tracing_off_for_good(
    provider: str, env: dict[str, str]
) -> None:
    result = run_python(NO_OP_GLOBAL.replace("PROVIDER", provider), env)

    assert result == {"tracer": False, "off": True}


def test_the_default_manager_picks_up_a_provider_named_in_the_environment() -> None:
    script = """
import json
import anyio
from failover import PlatformManager
from failover.testing import ScriptedOperation

manager = PlatformManager({"text_generation": [("alpha", "a-1")]}, environ={})
anyio.run(manager.with_fallback, "text_generation", ScriptedOperation({}))
print(json.dumps({"tracer": type(manager._telemetry.tracer()).__name__}))
"""
    result = run_python(script, {"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"})

    assert result == {"tracer": "Tracer"}


SYNC_PICKUP = (
    SDK
    + """
from failover import PlatformManager, fallback

manager = PlatformManager({"text_generation": [("alpha", "a-1")]}, environ={})

@fallback("text_generation", manager=manager)
def answer(platform):
    return platform.name

before = [answer(), manager.with_fallback_sync("text_generation", answer.__wrapped__)[0]]
peeking = manager._telemetry.peek is not None  # the fast path read the API's globals
exporter, reader = install_providers()
after = [answer(), manager.with_fallback_sync("text_generation", answer.__wrapped__)[0]]
spans = sorted(span.name for span in exporter.get_finished_spans())
print(json.dumps({"results": before + after, "peeking": peeking, "spans": spans,
                  "metrics": metric_names(reader),
                  "peek_after": manager._telemetry.peek is not None}))
"""
)


def test_synchronous_calls_start_tracing_when_a_provider_is_installed_later() -> None:
    """The fast paths read the API's provider globals instead of asking (Telemetry.peek):
    installing providers afterwards is seen by the very next call."""
    result = run_python(SYNC_PICKUP)

    assert result["results"] == ["alpha"] * 4
    assert result["peeking"] is True
    assert result["spans"] == sorted(["failover text_generation", "chat a-1"] * 2)
    assert result["metrics"] == [
        "failover.attempt.duration",
        "failover.attempts",
        "failover.call.duration",
    ]
    assert result["peek_after"] is False


NO_OP_AFTER_PEEK = """
import json
from opentelemetry import trace
import failover._engine.drive_sync as drive_sync
from failover import PlatformManager

manager = PlatformManager({"text_generation": [("alpha", "a-1")]}, environ={})
def answer(platform):
    return platform.name

manager.with_fallback_sync("text_generation", answer)
peeking = manager._telemetry.peek is not None
observed = []
original = drive_sync._observed
def counting(*args):
    observed.append(1)
    return original(*args)
drive_sync._observed = counting
trace.set_tracer_provider(PROVIDER)
for _ in range(50):
    manager.with_fallback_sync("text_generation", answer)
print(json.dumps({"peeking": peeking, "observed": len(observed),
                  "off": manager._telemetry._tracing_off}))
"""


@pytest.mark.parametrize(
    ("provider", "env"),
    [
        ("trace.NoOpTracerProvider()", {}),
        ("__import__('opentelemetry.sdk.trace').sdk.trace.TracerProvider()",
         {"OTEL_SDK_DISABLED": "true"}),
    ],
)  # fmt: skip
def test_a_provider_that_records_nothing_installed_later_leaves_the_fast_path_once(
    provider: str, env: dict[str, str]
) -> None:
    """The fast path reads the API's globals (Telemetry.peek); once a provider that records
    nothing is installed, one call looks and every later call is back on the fast path."""
    result = run_python(NO_OP_AFTER_PEEK.replace("PROVIDER", provider), env)

    assert result["peeking"] is True
    assert result["off"] is True
    assert result["observed"] == 1
