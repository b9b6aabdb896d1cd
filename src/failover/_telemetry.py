"""OpenTelemetry spans and metrics, through the API only, behind one small object.

The library never configures an SDK. While no real tracer provider is installed, the API's
no-op spans still cost microseconds each, so :class:`Telemetry` notices that nothing listens
and skips span work entirely; it picks tracing up on the first call after an application
installs a provider, whenever that happens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanKind, StatusCode

from failover._scrub import Scrubber

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from failover._spec import PlatformSpec

INSTRUMENTATION_NAME: Final = "failover"

#: failover operation type -> (gen_ai.operation.name, gen_ai.output.type)
GEN_AI_OPERATIONS: Final[dict[str, tuple[str, str | None]]] = {
    "text_generation": ("chat", "text"),
    "image_generation": ("generate_content", "image"),
    "image_editing": ("generate_content", "image"),
    "video_generation": ("generate_content", "video"),
}


def gen_ai_operation(operation: str) -> tuple[str, str | None]:
    """The GenAI convention's operation name and output type for a failover operation type.

    Known types map as in :data:`GEN_AI_OPERATIONS`; ``*image*``/``*video*``/``*text*`` names
    follow the same rule; anything else is reported as ``generate_content`` with no output type.
    """
    known = GEN_AI_OPERATIONS.get(operation)
    if known is not None:
        return known
    for word, output in (("image", "image"), ("video", "video"), ("audio", "speech")):
        if word in operation:
            return ("generate_content", output)
    if "embed" in operation:
        return ("embeddings", None)
    if "text" in operation or "chat" in operation:
        return ("chat", "text")
    return ("generate_content", None)


def _sdk_tracer_provider() -> TracerProvider | None:
    """The global tracer provider if an application installed a real one, else ``None``."""
    # Reading the module global is ~30x cheaper than get_tracer_provider(), which also
    # looks at os.environ on every call; it is only None until a provider is set.
    if getattr(otel_trace, "_TRACER_PROVIDER", None) is None and (
        "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
    ):
        return None
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    return provider


def _sdk_meter_provider() -> MeterProvider | None:
    module = otel_metrics._internal  # where the global lives
    if getattr(module, "_METER_PROVIDER", None) is None and (
        "OTEL_PYTHON_METER_PROVIDER" not in os.environ
    ):
        return None
    provider = otel_metrics.get_meter_provider()
    if isinstance(provider, otel_metrics.NoOpMeterProvider):
        return None
    return provider


class Instruments:
    """The metric instruments failover records (DESIGN §5)."""

    __slots__ = ("attempt_duration", "attempts", "call_duration", "transitions")

    def __init__(self, meter: Meter) -> None:
        self.attempts: Counter = meter.create_counter(
            "failover.attempts", unit="{attempt}", description="Attempts on a platform by outcome"
        )
        self.transitions: Counter = meter.create_counter(
            "failover.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state transitions",
        )
        self.attempt_duration: Histogram = meter.create_histogram(
            "failover.attempt.duration", unit="s", description="Duration of one attempt"
        )
        self.call_duration: Histogram = meter.create_histogram(
            "failover.call.duration", unit="s", description="Duration of a whole fallback call"
        )


class Telemetry:
    """Tracer and instruments, resolved lazily; ``tracer()``/``instruments()`` are ``None``
    while nobody listens (or when monitoring is disabled)."""

    __slots__ = (
        "_explicit_meter_provider",
        "_explicit_tracer_provider",
        "_instruments",
        "_tracer",
        "enabled",
        "scrub",
    )

    def __init__(
        self,
        *,
        enabled: bool,
        scrub: Scrubber,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.enabled = enabled
        self.scrub = scrub
        self._explicit_tracer_provider = tracer_provider
        self._explicit_meter_provider = meter_provider
        self._tracer: Tracer | None = None
        self._instruments: Instruments | None = None

    def tracer(self) -> Tracer | None:
        tracer = self._tracer
        if tracer is not None or not self.enabled:
            return tracer
        provider = self._explicit_tracer_provider or _sdk_tracer_provider()
        if provider is None:
            return None
        from failover import __version__

        tracer = self._tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        return tracer

    def instruments(self) -> Instruments | None:
        instruments = self._instruments
        if instruments is not None or not self.enabled:
            return instruments
        provider = self._explicit_meter_provider or _sdk_meter_provider()
        if provider is None:
            return None
        from failover import __version__

        instruments = self._instruments = Instruments(
            provider.get_meter(INSTRUMENTATION_NAME, __version__)
        )
        return instruments

    # -- spans -------------------------------------------------------------------------------

    def start_call(self, tracer: Tracer, operation: str) -> Span:
        return tracer.start_span(
            f"failover {operation}",
            kind=SpanKind.INTERNAL,
            attributes={"failover.operation": operation},
        )

    def start_attempt(
        self, tracer: Tracer, spec: PlatformSpec, operation: str, attempt: int, state: str
    ) -> Span:
        name, output_type = gen_ai_operation(operation)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": name,
            "gen_ai.provider.name": spec.name,
            "gen_ai.request.model": spec.model,
            "failover.operation": operation,
            "failover.platform": spec.name,
            "failover.attempt": attempt,
            "failover.breaker.state": state,
        }
        if output_type is not None:
            attributes["gen_ai.output.type"] = output_type
        return tracer.start_span(
            f"{name} {spec.model}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def fail_span(self, span: Span, error: BaseException, error_type: str) -> None:
        """Mark a span failed, recording the exception with its text scrubbed."""
        if not span.is_recording():
            return
        span.set_attribute("error.type", error_type)
        message = self.scrub(str(error))
        span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {message}"[:512])
        span.add_event(
            "exception",
            {
                "exception.type": f"{type(error).__module__}.{type(error).__qualname__}",
                "exception.message": message[:2048],
            },
        )

    def event(self, span: Span | None, name: str, attributes: Mapping[str, Any]) -> None:
        if span is not None and span.is_recording():
            span.add_event(
                name, {key: value for key, value in attributes.items() if value is not None}
            )


def current_span() -> Span:
    return otel_trace.get_current_span()
