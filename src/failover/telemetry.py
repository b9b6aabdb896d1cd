"""Send traces and metrics to an OTLP/HTTP collector such as Jaeger (the ``otlp`` extra).

failover itself only talks to the OpenTelemetry API: it records spans and metrics when an
application has installed an SDK, and costs nothing otherwise. An application that already sets
up OpenTelemetry needs nothing from here. One that does not can call :func:`configure` once at
start-up::

    from failover.telemetry import configure

    configure(service_name="image-api")  # exports to $OTEL_EXPORTER_OTLP_ENDPOINT or localhost:4318

``docs/tracing.md`` shows what arrives in Jaeger and how to search it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Final, Self

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "failover.telemetry needs the otlp extra: pip install 'failover[otlp]' "
        f"({exc.name or exc} is missing)"
    ) from exc

from failover._core import validate
from failover._core.errors import ConfigError

__all__ = ["OtlpExport", "configure"]

_TRACES_PATH: Final = "/v1/traces"
_METRICS_PATH: Final = "/v1/metrics"

_lock = threading.Lock()
_installed: OtlpExport | None = None


class OtlpExport:
    """The tracer and meter providers :func:`configure` set up, and their shutdown.

    Both providers flush and shut down at interpreter exit on their own; call :meth:`shutdown`
    (or leave a ``with`` block) to do it earlier, for example before a worker process ends.
    ``meter_provider`` is ``None`` when metrics were switched off.
    """

    __slots__ = ("_closed", "meter_provider", "tracer_provider")

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider | None):
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._closed = False

    def force_flush(self, timeout_seconds: float = 30.0) -> bool:
        """Export everything recorded so far; ``False`` if it did not finish in time."""
        millis = int(timeout_seconds * 1000)
        done = self.tracer_provider.force_flush(millis)
        if self.meter_provider is not None:
            done = self.meter_provider.force_flush(millis) and done
        return done

    def shutdown(self) -> None:
        """Flush and stop both providers. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "exporting"
        return f"<OtlpExport {state} metrics={self.meter_provider is not None}>"


def configure(
    service_name: str | None = None,
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    metrics: bool = True,
    metric_export_interval: float | None = None,
    set_global: bool = True,
) -> OtlpExport:
    """Set up the OpenTelemetry SDK to export traces and metrics over OTLP/HTTP.

    ``service_name`` names the service in Jaeger unless ``OTEL_SERVICE_NAME`` (or
    ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) says otherwise: the environment wins, so
    operators can rename a deployment without a code change. ``endpoint`` is the collector's
    base URL (``http://localhost:4318``); ``/v1/traces`` and ``/v1/metrics`` are appended. Left
    out, the exporter reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the per-signal
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``/``..._METRICS_ENDPOINT``), defaulting to
    ``http://localhost:4318``. ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``,
    ``..._COMPRESSION``, ``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_SDK_DISABLED``
    are honoured by the SDK; ``OTEL_TRACES_EXPORTER=none``/``OTEL_METRICS_EXPORTER=none``
    switch a signal off here.

    With ``set_global`` (the default) the providers become the process-wide ones, so failover
    and every other instrumented library (httpx, ...) report through them; they flush at exit.
    With ``set_global=False`` nothing global changes: hand the providers to
    ``PlatformManager(tracer_provider=..., meter_provider=...)``.

    Calling it again returns the first call's :class:`OtlpExport`. If the application already
    installed its own SDK provider, failover reports through that one and this raises
    :class:`~failover.ConfigError` instead of silently doing nothing.
    """
    global _installed
    if service_name is not None:
        validate.name("service_name", service_name)
    base = _base_url(endpoint)
    if headers is not None:
        _check_headers(headers)
    if metric_export_interval is not None:
        validate.seconds(
            "metric_export_interval", metric_export_interval, above=0, kind="a number of seconds"
        )
    with _lock:
        if set_global:
            if _installed is not None:
                return _installed
            _refuse_if_already_configured()
        export = _build(service_name, base, headers, metrics, metric_export_interval)
        if set_global:
            otel_trace.set_tracer_provider(export.tracer_provider)
            if export.meter_provider is not None:
                otel_metrics.set_meter_provider(export.meter_provider)
            _installed = export
        return export


def _check_headers(headers: object) -> None:
    """A mapping of strings to strings; the error names the header, never a value (OTLP
    headers usually carry the collector's API key)."""
    if not isinstance(headers, Mapping):
        raise ConfigError(
            f"headers must be a mapping of strings to strings, got {type(headers).__name__}",
            key="headers",
        )
    for name, value in headers.items():
        if not isinstance(name, str):
            problem = f"a header name is of type {type(name).__name__}"
        elif not isinstance(value, str):
            problem = f"the value of {name!r} is of type {type(value).__name__}"
        else:
            continue
        raise ConfigError(
            f"headers must be a mapping of strings to strings; {problem}", key="headers"
        )


def _base_url(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"endpoint must be an http:// or https:// URL such as http://localhost:4318, "
            f"got {endpoint!r}",
            key="endpoint",
        )
    base = endpoint.rstrip("/")
    for path in (_TRACES_PATH, _METRICS_PATH):
        if base.endswith(path):
            raise ConfigError(
                f"endpoint is the collector's base URL; leave out {path!r} (got {endpoint!r})",
                key="endpoint",
            )
    return base


def _refuse_if_already_configured() -> None:
    tracer_provider = otel_trace.get_tracer_provider()
    if not isinstance(tracer_provider, otel_trace.ProxyTracerProvider):
        raise ConfigError(
            f"OpenTelemetry is already configured in this process ({type(tracer_provider).__name__}"
            " installed); failover reports through it, so configure() is not needed",
            key="tracer_provider",
        )


def _exporter_off(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() == "none"


def _build(
    service_name: str | None,
    base: str | None,
    headers: Mapping[str, str] | None,
    metrics: bool,
    metric_export_interval: float | None,
) -> OtlpExport:
    resource = Resource.create()
    named = str(resource.attributes.get(SERVICE_NAME, ""))
    if service_name is not None and named.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    header_dict = dict(headers) if headers is not None else None

    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=True)
    if not _exporter_off("OTEL_TRACES_EXPORTER"):
        span_exporter = OTLPSpanExporter(
            endpoint=None if base is None else base + _TRACES_PATH, headers=header_dict
        )
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))

    meter_provider = None
    if metrics and not _exporter_off("OTEL_METRICS_EXPORTER"):
        metric_exporter = OTLPMetricExporter(
            endpoint=None if base is None else base + _METRICS_PATH, headers=header_dict
        )
        reader = PeriodicExportingMetricReader(
            metric_exporter,
            export_interval_millis=None
            if metric_export_interval is None
            else metric_export_interval * 1000,
        )
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=True
        )
    return OtlpExport(tracer_provider, meter_provider)
