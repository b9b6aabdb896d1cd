"""What a collector such as Jaeger receives, and how instrumented HTTP calls nest.

A loopback OTLP/HTTP receiver (``http.server`` in a thread) takes what the real
``OTLPSpanExporter``/``OTLPMetricExporter`` send; the protobuf is decoded with
``opentelemetry-proto`` and the span tree, parent links and attributes are checked. The
quickstart example is run in a subprocess against the same receiver. A real
``opentelemetry-instrumentation-httpx`` client calls a loopback server from inside an
operation, and its span must be a child of the attempt span.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from failover import (
    ConfigError,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Transient,
)
from failover.telemetry import configure
from failover.testing import FakeClock, ScriptedOperation

ROOT = Path(__file__).resolve().parent.parent
OP = "image_editing"


# -- a loopback OTLP/HTTP receiver -------------------------------------------------------------


@dataclass
class Received:
    path: str
    content_type: str
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span received, with its resource's attributes."""
        spans = []
        for request in self.requests:
            if request.path != "/v1/traces":
                continue
            message = ExportTraceServiceRequest.FromString(request.body)
            for resource_spans in message.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    spans.extend((resource, span) for span in scope_spans.spans)
        return spans

    def metric_names(self) -> set[str]:
        names = set()
        for request in self.requests:
            if request.path != "/v1/metrics":
                continue
            message = ExportMetricsServiceRequest.FromString(request.body)
            for resource_metrics in message.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    names.update(metric.name for metric in scope_metrics.metrics)
        return names


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(Received(self.path, self.headers.get("Content-Type", ""), body))
            # An empty Export*ServiceResponse: everything accepted.
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes_of(attributes: Any) -> dict[str, Any]:
    pairs: list[KeyValue] = list(attributes)
    return {pair.key: value_of(pair.value) for pair in pairs}


KIND_NAMES = {
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_SERVER: "SERVER",
}


def render(spans: list[Span]) -> str:
    """A trace as text, the way it reads in Jaeger's trace view: each span with its
    attributes, then its events and child spans in the order they happened."""
    by_parent: dict[bytes, list[Span]] = {}
    ids = {span.span_id for span in spans}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else b""
        by_parent.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(span: Span, prefix: str, branch: str, inner: str) -> None:
        millis = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        status = ", ERROR" if span.status.code == Status.STATUS_CODE_ERROR else ""
        kind = KIND_NAMES.get(span.kind, str(span.kind))
        lines.append(f"{prefix}{branch}{span.name}  [{kind}{status}, {millis:.1f} ms]")
        timeline: list[tuple[int, Any]] = [(event.time_unix_nano, event) for event in span.events]
        timeline += [
            (child.start_time_unix_nano, child) for child in by_parent.get(span.span_id, [])
        ]
        timeline.sort(key=lambda item: item[0])
        bar = "│   " if timeline else "    "
        for key, value in attributes_of(span.attributes).items():
            lines.append(f"{prefix}{inner}{bar}{key} = {value!r}")
        for index, (_, item) in enumerate(timeline):
            last = index == len(timeline) - 1
            if isinstance(item, Span):
                walk(item, prefix + inner, "└── " if last else "├── ", "    " if last else "│   ")
                continue
            details = ", ".join(f"{k}={v!r}" for k, v in attributes_of(item.attributes).items())
            lines.append(f"{prefix}{inner}{'└' if last else '├'}── event {item.name}: {details}")

    for root in sorted(by_parent.get(b"", []), key=lambda span: span.start_time_unix_nano):
        walk(root, "", "", "")
    return "\n".join(lines)


# -- the real exporter, in process ------------------------------------------------------------


@pytest.mark.anyio
async def test_otlp_export_carries_the_tree_parents_and_attributes(receiver: Receiver) -> None:
    export = configure(service_name="failover-test", endpoint=receiver.url + "/", set_global=False)
    manager = PlatformManager(
        {OP: [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]},
        clock=FakeClock(),
        environ={},
        tracer_provider=export.tracer_provider,
        meter_provider=export.meter_provider,
    )
    manager.force_open("alpha", OP)
    operation = ScriptedOperation({"beta": [CreditExhausted("402 payment required")]})

    _, spec = await manager.with_fallback(OP, operation)
    await anyio.to_thread.run_sync(export.shutdown)

    assert spec.name == "gamma"
    assert {request.content_type for request in receiver.requests} == {"application/x-protobuf"}
    assert {request.path for request in receiver.requests} == {"/v1/traces", "/v1/metrics"}
    received = receiver.spans()
    assert len(received) == 3
    resource = received[0][0]
    assert resource["service.name"] == "failover-test"
    spans = {span.name: span for _, span in received}
    assert len({span.trace_id for span in spans.values()}) == 1
    call = spans["failover image_editing"]
    beta = spans["generate_content b-1"]
    gamma = spans["generate_content g-1"]
    assert call.parent_span_id == b""
    assert beta.parent_span_id == call.span_id
    assert gamma.parent_span_id == call.span_id
    assert (call.kind, beta.kind, gamma.kind) == (
        Span.SPAN_KIND_INTERNAL,
        Span.SPAN_KIND_CLIENT,
        Span.SPAN_KIND_CLIENT,
    )
    call_attributes = attributes_of(call.attributes)
    if "failover.order" in call_attributes:  # the order the ordering strategy chose
        assert call_attributes.pop("failover.order") == ["alpha", "beta", "gamma"]
        assert call_attributes.pop("failover.order.reason") == "priority"
    assert call_attributes == {
        "failover.operation": OP,
        "failover.platform": "gamma",
        "failover.attempts": 2,
        "failover.fallbacks": 2,
    }
    assert [
        (event.name, attributes_of(event.attributes)["failover.platform"]) for event in call.events
    ] == [("failover.platform.skipped", "alpha"), ("failover.platform.cooldown", "beta")]
    assert attributes_of(beta.attributes) == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.output.type": "image",
        "gen_ai.provider.name": "beta",
        "gen_ai.request.model": "b-1",
        "failover.operation": OP,
        "failover.platform": "beta",
        "failover.attempt": 1,
        "failover.breaker.state": "closed",
        "error.type": "CreditExhausted",
        "failover.error.kind": "credit_exhausted",
    }
    assert beta.status.code == Status.STATUS_CODE_ERROR
    assert beta.status.message == "CreditExhausted: 402 payment required"
    assert gamma.status.code == Status.STATUS_CODE_UNSET
    assert attributes_of(gamma.attributes)["failover.attempt"] == 2
    assert {"failover.attempts", "failover.attempt.duration", "failover.call.duration"} <= (
        receiver.metric_names()
    )


def test_configure_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="endpoint must be an http"):
        configure(endpoint="localhost:4318", set_global=False)
    with pytest.raises(ConfigError, match="leave out '/v1/traces'"):
        configure(endpoint="http://localhost:4318/v1/traces", set_global=False)
    with pytest.raises(ConfigError, match="service_name must be a non-empty string"):
        configure(service_name="", set_global=False)
    with pytest.raises(ConfigError, match="metric_export_interval"):
        configure(metric_export_interval=0, set_global=False)
    with pytest.raises(ConfigError, match="headers"):
        configure(headers={"x": 1}, set_global=False)  # type: ignore[dict-item]


def test_a_bad_headers_argument_does_not_echo_header_values() -> None:
    token = "hcaik_0123456789abcdefSECRET"
    with pytest.raises(ConfigError) as raised:
        configure(
            headers={"x-honeycomb-team": token, "x-port": 4318},  # type: ignore[dict-item]
            set_global=False,
        )
    assert token not in str(raised.value)
    assert str(raised.value) == (
        "headers must be a mapping of strings to strings; the value of 'x-port' is of type int"
    )


def test_configure_honours_otel_service_name_and_exporter_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")

    with configure(service_name="from-code", set_global=False) as export:
        assert export.tracer_provider.resource.attributes["service.name"] == (
            "from-the-environment"
        )
        assert export.meter_provider is None
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    with configure(service_name="from-code", metrics=False, set_global=False) as export:
        assert export.tracer_provider.resource.attributes["service.name"] == "from-code"


# -- configure() in a fresh process: the quickstart, and the global providers -----------------


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AI_"))}
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_quickstart_exports_its_failed_over_calls(receiver: Receiver) -> None:
    done = run_python(
        ["examples/quickstart.py"],
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_METRIC_EXPORT_INTERVAL": "600000"},
    )

    assert done.returncode == 0, done.stderr
    received = receiver.spans()
    assert {resource["service.name"] for resource, _ in received} == {"failover-quickstart"}
    spans = [span for _, span in received]
    calls = sorted(
        (span for span in spans if span.name == "failover image_editing"),
        key=lambda span: span.start_time_unix_nano,
    )
    assert len(calls) == 5
    children = {
        call.span_id: [
            span.name
            for span in sorted(spans, key=lambda span: span.start_time_unix_nano)
            if span.parent_span_id == call.span_id
        ]
        for call in calls
    }
    assert [children[call.span_id] for call in calls] == [
        ["generate_content sd-3.5-large", "generate_content flux", "generate_content fal-3d"],
        ["generate_content flux", "generate_content fal-3d"],
        ["generate_content flux", "generate_content fal-3d"],
        ["generate_content fal-3d"],
        ["generate_content fal-3d"],
    ]
    third = attributes_of(calls[2].attributes)
    assert third["failover.platform"] == "fal"
    assert third["failover.fallbacks"] == 2
    assert [event.name for event in calls[2].events] == [
        "failover.platform.skipped",
        "failover.breaker.transition",
    ]
    # Metrics are flushed at exit too, although the export interval never came round.
    assert "failover.breaker.transitions" in receiver.metric_names()


def test_configure_installs_global_providers_that_failover_picks_up(receiver: Receiver) -> None:
    script = """
import anyio
from failover import PlatformManager
from failover.telemetry import configure
from failover.testing import ScriptedOperation

manager = PlatformManager({"text_generation": [("groq", "llama")]}, environ={"GROQ_API_KEY": "k"})
assert manager._telemetry.tracer() is None
first = configure(service_name="global-test")
assert configure() is first
assert manager._telemetry.tracer() is not None
anyio.run(manager.with_fallback, "text_generation", ScriptedOperation({}))
"""
    done = run_python(["-c", script], {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})

    assert done.returncode == 0, done.stderr
    names = sorted(span.name for _, span in receiver.spans())
    assert names == ["chat llama", "failover text_generation"]


def test_configure_refuses_when_the_application_already_set_a_provider() -> None:
    script = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from failover import ConfigError
from failover.telemetry import configure

trace.set_tracer_provider(TracerProvider())
try:
    configure(service_name="late")
except ConfigError as exc:
    print(exc)
"""
    done = run_python(["-c", script], {})

    assert done.returncode == 0, done.stderr
    assert "already configured in this process (TracerProvider installed)" in done.stdout


# -- the provider's own HTTP spans nest under the attempt -------------------------------------


@pytest.fixture
def provider_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            platform = self.path.strip("/").split("/")[0]
            status = 503 if platform == "flaky" else 200
            body = json.dumps({"platform": platform, "ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.anyio
async def test_instrumented_httpx_spans_are_children_of_their_attempt(
    provider_server: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    manager = PlatformManager(
        {"text_generation": [PlatformSpec("flaky", "m-1"), PlatformSpec("steady", "m-2")]},
        environ={},
        tracer_provider=provider,
    )

    async with httpx.AsyncClient(base_url=provider_server, timeout=10) as client:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)

        async def chat(platform: PlatformSpec, prompt: str) -> str:
            response = await client.post(f"/{platform.name}/v1/chat/completions", json={})
            if response.status_code >= 500:
                raise Transient(f"{response.status_code}", status_code=response.status_code)
            answer: str = response.json()["platform"]
            return answer

        answer, spec = await manager.with_fallback("text_generation", chat, "hello")

    assert (answer, spec.name) == ("steady", "steady")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"failover text_generation", "chat m-1", "chat m-2", "POST"}
    http_spans = [span for span in exporter.get_finished_spans() if span.name == "POST"]
    assert len(http_spans) == 2
    attempts = {spans["chat m-1"].context.span_id: 503, spans["chat m-2"].context.span_id: 200}
    call_id = spans["failover text_generation"].context.span_id
    assert spans["chat m-1"].parent is not None
    assert spans["chat m-1"].parent.span_id == call_id
    for http_span in http_spans:
        assert http_span.kind is SpanKind.CLIENT
        assert http_span.parent is not None
        parent_id = http_span.parent.span_id
        assert parent_id in attempts
        status = (http_span.attributes or {}).get(
            "http.response.status_code", (http_span.attributes or {}).get("http.status_code")
        )
        assert status == attempts[parent_id]
