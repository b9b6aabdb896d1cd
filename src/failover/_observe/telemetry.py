"""OpenTelemetry spans and metrics, through the API only, behind one small object.

The library never configures an SDK. While no real tracer provider is installed, the API's
no-op spans still cost microseconds each, so :class:`Telemetry` notices that nothing listens
and skips span work entirely; it picks tracing up on the first call after an application
installs a provider, whenever that happens.

What is recorded (``docs/tracing.md`` shows it as Jaeger does):

* a ``failover <operation>`` INTERNAL span per call, with ``failover.platform.skipped``,
  ``failover.retry``, ``failover.breaker.transition`` and ``failover.platform.cooldown`` events;
* a CLIENT span per attempt, named ``<gen_ai.operation.name> <model>``, under which the
  provider's own HTTP spans nest;
* the ``failover.attempts`` and ``failover.breaker.transitions`` counters and the
  ``failover.attempt.duration`` and ``failover.call.duration`` histograms (seconds).

Every message that reaches a span goes through the manager's
:class:`~failover._observe.scrub.Scrubber`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from failover._core.text import exception_text
from failover._core.version import __version__
from failover._observe.scrub import Scrubber

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
    from opentelemetry.metrics import _internal as _metrics_internal
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from failover._core.spec import PlatformSpec

INSTRUMENTATION_NAME: Final = "failover"
#: How much of a failed attempt's message its span keeps (``exception.message``).
_EXCEPTION_MESSAGE_CHARS: Final = 2048

#: failover operation type -> (gen_ai.operation.name, gen_ai.output.type)
GEN_AI_OPERATIONS: Final[dict[str, tuple[str, str | None]]] = {
    "text_generation": ("chat", "text"),
    "image_generation": ("generate_content", "image"),
    "image_editing": ("generate_content", "image"),
    "video_generation": ("generate_content", "video"),
}


def gen_ai_operation(operation: str) -> tuple[str, str | None]:
    """The GenAI convention's operation name and output type for a failover operation type.

    Known types map as in :data:`GEN_AI_OPERATIONS`. Other names: ``*image*`` and ``*video*``
    give ``generate_content`` with that output type, ``*audio*`` ``generate_content``/``speech``,
    ``*embed*`` ``embeddings``, ``*text*``/``*chat*`` ``chat``; anything else is reported as
    ``generate_content`` with no output type.
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


# The per-call check reads the API's module globals, which stay ``None`` until an application
# installs a provider: a few dozen nanoseconds, where ``get_tracer_provider()`` (which also
# looks at ``os.environ``) costs several times more. It is only trusted when the global exists
# and no provider is to be loaded from an entry point (``OTEL_PYTHON_*_PROVIDER``, read by the
# API on first use, so reading it once here is as current as the API itself); otherwise every
# call takes the full path.
_PEEK_TRACER_PROVIDER: Final = "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
_PEEK_METER_PROVIDER: Final = "OTEL_PYTHON_METER_PROVIDER" not in os.environ

# The OpenTelemetry API is imported when someone else imports it, not by ``import failover``:
# a provider can only be installed through the API's modules, so while neither is in
# ``sys.modules`` nobody listens. These names are bound by :func:`_load_api` (``None`` before).
# ``_trace_peek``/``_meter_peek`` are what the per-call check reads ``_TRACER_PROVIDER`` /
# ``_METER_PROVIDER`` from: the API modules, or a stand-in saying "maybe set" for an API
# version without those globals (every call then takes the full path).
if not TYPE_CHECKING:
    otel_trace = otel_metrics = _metrics_internal = None
_trace_peek: Any = None
_meter_peek: Any = None


class _MaybeSet:
    _TRACER_PROVIDER: Final = True
    _METER_PROVIDER: Final = True


class _Silent:
    """``Telemetry.peek`` with monitoring disabled: nothing is ever recorded."""

    _TRACER_PROVIDER: Final = None
    _METER_PROVIDER: Final = None


def _api_imported() -> bool:
    """Whether the OpenTelemetry API is imported (by anyone); binds our names to it if so."""
    if _trace_peek is not None:
        return True
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return False
    _load_api()
    return True


def _load_api() -> None:
    """Import the OpenTelemetry API and bind this module's names to it (idempotent)."""
    global otel_trace, otel_metrics, _metrics_internal
    global _trace_peek, _meter_peek
    if _trace_peek is not None:
        return
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal

    otel_trace, otel_metrics, _metrics_internal = trace, metrics, _internal
    _meter_peek = _internal if hasattr(_internal, "_METER_PROVIDER") else _MaybeSet
    _trace_peek = trace if hasattr(trace, "_TRACER_PROVIDER") else _MaybeSet


if not (_PEEK_TRACER_PROVIDER and _PEEK_METER_PROVIDER):
    _load_api()  # a provider is to come from an entry point: the API's own lookup loads it


def _global_tracer_provider_set() -> bool:
    """Whether an application may have installed a global tracer provider."""
    if not _PEEK_TRACER_PROVIDER:
        return True
    return _api_imported() and _trace_peek._TRACER_PROVIDER is not None


def _global_meter_provider_set() -> bool:
    """Whether an application may have installed a global meter provider."""
    if not _PEEK_METER_PROVIDER:
        return True
    return _api_imported() and _meter_peek._METER_PROVIDER is not None


def current_recording_span() -> Span | None:
    """The current span if it records, else ``None`` (always while the API is not imported)."""
    if _trace_peek is None and not _api_imported():
        return None
    span = otel_trace.get_current_span()
    return span if span.is_recording() else None


def use_span(span: Span, *, end_on_exit: bool) -> AbstractContextManager[Span]:
    """``opentelemetry.trace.use_span`` for a span failover started (the API is loaded then)."""
    return otel_trace.use_span(
        span, end_on_exit=end_on_exit, record_exception=False, set_status_on_exception=False
    )


def _sdk_tracer_provider() -> TracerProvider | None:
    """The global tracer provider if an application installed a real one, else ``None``."""
    _load_api()
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        return None
    return provider


def _sdk_meter_provider() -> MeterProvider | None:
    """The global meter provider if an application installed a real one, else ``None``."""
    _load_api()
    provider = otel_metrics.get_meter_provider()
    if isinstance(provider, otel_metrics.NoOpMeterProvider | _metrics_internal._ProxyMeterProvider):
        return None
    return provider


class Instruments:
    """The metric instruments failover records (DESIGN §5)."""

    __slots__ = ("attempt_duration", "attempts", "call_duration", "transitions")

    def __init__(self, meter: Meter) -> None:
        self.attempts: Counter = meter.create_counter(
            "failover.attempts",
            unit="{attempt}",
            description="Platforms tried (success, failure, cancelled) or skipped, per call",
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
    while nobody listens, and always when monitoring is disabled.

    A provider given explicitly (``PlatformManager(tracer_provider=...)``) wins over the
    global one. Once a real tracer (meter) is found it is kept; until then each call costs
    one attribute read of the API's global.
    """

    __slots__ = (
        "_explicit_meter_provider",
        "_explicit_tracer_provider",
        "_instruments",
        "_metrics_off",
        "_peek_both",
        "_peek_meter",
        "_peek_tracer",
        "_tracer",
        "_tracing_off",
        "enabled",
        "peek",
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
        # Set for good when monitoring is off, or when the installed provider hands out no-op
        # tracers (OTEL_SDK_DISABLED): a global provider cannot be replaced once set.
        self._tracing_off = not enabled
        self._metrics_off = not enabled
        # Whether reading the API's global is enough to know that nobody listens.
        self._peek_tracer = _PEEK_TRACER_PROVIDER and tracer_provider is None
        self._peek_meter = _PEEK_METER_PROVIDER and meter_provider is None
        self._peek_both = enabled and self._peek_tracer and self._peek_meter
        #: The API's trace and metrics modules while their ``_TRACER_PROVIDER`` and
        #: ``_METER_PROVIDER`` alone tell whether anyone listens (set by :meth:`quiet`): the
        #: hot paths read those two instead of calling it. ``None`` otherwise.
        self.peek: tuple[Any, Any] | None = None if enabled else (_Silent, _Silent)

    def quiet(self) -> bool:
        """``True`` when a call would record nothing: no tracer and no instruments.

        The chain's per-call check, in one method call: ``tracer() is None and
        instruments() is None``, without those calls while nothing is installed.
        """
        if self._tracer is not None or self._instruments is not None:
            return False
        peek = _trace_peek
        if (
            self._peek_both
            and peek is not None
            and peek._TRACER_PROVIDER is None
            and _meter_peek._METER_PROVIDER is None
        ):
            if peek is not _MaybeSet and _meter_peek is not _MaybeSet:
                self.peek = (peek, _meter_peek)
            return True  # the default: API imported, no provider installed
        if peek is None:
            if self._tracing_off and self._metrics_off:
                return True  # monitoring off: no need to look for the API
            modules = sys.modules  # _api_imported()'s test, inlined: the API not imported
            if "opentelemetry.trace" not in modules and "opentelemetry.metrics" not in modules:
                # The API is not imported: no global provider can be installed.
                if (self._tracing_off or self._peek_tracer) and (
                    self._metrics_off or self._peek_meter
                ):
                    return True
                return self.tracer() is None and self.instruments() is None
            _load_api()  # imported since: bind the names, then answer as for a bound API
            return self.quiet()
        if (self._tracing_off or (self._peek_tracer and _trace_peek._TRACER_PROVIDER is None)) and (
            self._metrics_off or (self._peek_meter and _meter_peek._METER_PROVIDER is None)
        ):
            return True
        return self.tracer() is None and self.instruments() is None

    def tracer(self) -> Tracer | None:
        """The tracer to use for this call, or ``None`` to skip span work."""
        tracer = self._tracer
        if tracer is not None or self._tracing_off:
            return tracer
        if self._peek_tracer and (
            (_trace_peek is None and not _api_imported()) or _trace_peek._TRACER_PROVIDER is None
        ):
            return None  # nobody listens (yet): the no-SDK path ends here
        return self._resolve_tracer()

    def instruments(self) -> Instruments | None:
        """The metric instruments, or ``None`` to skip metric work."""
        instruments = self._instruments
        if instruments is not None or self._metrics_off:
            return instruments
        if self._peek_meter and (
            (_trace_peek is None and not _api_imported()) or _meter_peek._METER_PROVIDER is None
        ):
            return None
        return self._resolve_instruments()

    def _resolve_tracer(self) -> Tracer | None:
        self.peek = None  # a provider is installed: quiet() answers from now on
        _load_api()
        provider = self._explicit_tracer_provider or _sdk_tracer_provider()
        if provider is None:
            if getattr(otel_trace, "_TRACER_PROVIDER", None) is not None:
                self._tracing_off = True  # a no-op provider was installed, for good
            return None
        tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        if isinstance(tracer, otel_trace.NoOpTracer):
            self._tracing_off = True
            return None
        self._tracer = tracer
        return tracer

    def _resolve_instruments(self) -> Instruments | None:
        self.peek = None
        _load_api()
        provider = self._explicit_meter_provider or _sdk_meter_provider()
        if provider is None:
            if getattr(_metrics_internal, "_METER_PROVIDER", None) is not None:
                self._metrics_off = True
            return None
        meter = provider.get_meter(INSTRUMENTATION_NAME, __version__)
        if isinstance(meter, otel_metrics.NoOpMeter):
            self._metrics_off = True
            return None
        instruments = self._instruments = Instruments(meter)
        return instruments

    # -- spans -------------------------------------------------------------------------------

    def start_call(self, tracer: Tracer, operation: str) -> Span:
        """The span of one logical call, ``failover <operation>``."""
        return tracer.start_span(
            f"failover {operation}",
            kind=otel_trace.SpanKind.INTERNAL,
            attributes={"failover.operation": operation},
        )

    def start_attempt(
        self, tracer: Tracer, spec: PlatformSpec, operation: str, attempt: int, state: str
    ) -> Span:
        """The CLIENT span of one attempt, named like a GenAI client span."""
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
            f"{name} {spec.model}", kind=otel_trace.SpanKind.CLIENT, attributes=attributes
        )

    def start_check(self, tracer: Tracer, spec: PlatformSpec, operation: str, why: str) -> Span:
        """The span of one background health check, ``failover health_check <platform>``: a
        root span of its own (no caller's call is behind it)."""
        return tracer.start_span(
            f"failover health_check {spec.name}",
            context=otel_trace.set_span_in_context(otel_trace.INVALID_SPAN),
            kind=otel_trace.SpanKind.INTERNAL,
            attributes={
                "failover.operation": operation,
                "failover.platform": spec.name,
                "gen_ai.request.model": spec.model,
                "failover.check.reason": why,
            },
        )

    def fail_span(
        self, span: Span, error: BaseException, error_type: str, kind: str | None = None
    ) -> None:
        """Mark a span failed, recording the exception with its text scrubbed.

        ``kind`` is failover's classification (``transient``, ``credit_exhausted``, ...),
        recorded as ``failover.error.kind``. No stack trace is recorded: frames carry
        provider messages too.
        """
        if not span.is_recording():
            return
        span.set_attribute("error.type", error_type)
        if kind is not None:
            span.set_attribute("failover.error.kind", kind)
        # Read twice what is kept, then scrub: a 10 MB message costs no 10 MB regex pass,
        # and a secret cut at the end of the read lies beyond what is kept.
        message = self.scrub(exception_text(error, 2 * _EXCEPTION_MESSAGE_CHARS))
        message = message[:_EXCEPTION_MESSAGE_CHARS]
        span.set_status(otel_trace.StatusCode.ERROR, f"{type(error).__name__}: {message}"[:512])
        span.add_event(
            "exception",
            {
                "exception.type": f"{type(error).__module__}.{type(error).__qualname__}",
                "exception.message": message,
            },
        )

    def event(self, span: Span | None, name: str, attributes: Mapping[str, Any]) -> None:
        """Add an event to ``span`` if it records; ``None`` values are left out."""
        if span is not None and span.is_recording():
            span.add_event(
                name, {key: value for key, value in attributes.items() if value is not None}
            )

    # -- events and metrics that several places report ---------------------------------------

    def skipped(self, span: Span | None, platform: str, operation: str, reason: str) -> None:
        """A platform passed over without an attempt: an event and an ``outcome=skipped`` count."""
        if span is not None and span.is_recording():
            span.add_event(
                "failover.platform.skipped",
                {"failover.platform": platform, "failover.skip.reason": reason},
            )
        instruments = self.instruments()
        if instruments is not None:
            instruments.attempts.add(
                1,
                {
                    "failover.platform": platform,
                    "failover.operation": operation,
                    "failover.outcome": "skipped",
                    "failover.skip.reason": reason,
                },
            )

    def cooldown(
        self, platform: str, operation: str, reason: str, seconds: float, scope: str
    ) -> None:
        """A platform (``scope="platform"``) or pair (``"pair"``) starts cooling down.

        Recorded on the current span: inside a call, the call span of the attempt that
        caused it.
        """
        if self.tracer() is None:
            return
        span = otel_trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "failover.platform.cooldown",
                {
                    "failover.platform": platform,
                    "failover.operation": operation,
                    "failover.cooldown.reason": reason,
                    "failover.cooldown.seconds": float(seconds),
                    "failover.cooldown.scope": scope,
                },
            )

    def breaker_transition(
        self, platform: str, operation: str, old: str, new: str, reason: str
    ) -> None:
        """A pair's breaker moved: an event on the current span and a transitions count.

        Transitions happen synchronously inside the call whose outcome (or admission) caused
        them, so the current span is that call's span.
        """
        if self.tracer() is not None:
            span = otel_trace.get_current_span()
            if span.is_recording():
                span.add_event(
                    "failover.breaker.transition",
                    {
                        "failover.pair": f"{platform}:{operation}",
                        "failover.platform": platform,
                        "failover.operation": operation,
                        "failover.breaker.from": old,
                        "failover.breaker.to": new,
                        "failover.breaker.reason": reason,
                    },
                )
        instruments = self.instruments()
        if instruments is not None:
            instruments.transitions.add(
                1,
                {
                    "failover.platform": platform,
                    "failover.operation": operation,
                    "failover.breaker.from": old,
                    "failover.breaker.to": new,
                },
            )
