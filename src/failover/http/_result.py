"""What a text-generation call returns, and what its tokens cost."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace as otel_trace

from failover._core import validate


@dataclass(frozen=True, slots=True)
class TextResult:
    """One complete answer, whichever provider gave it.

    ``model`` is the model the provider says answered (it may differ from the requested one,
    e.g. a dated snapshot); ``finish_reason`` is the provider's own word (``stop``,
    ``end_turn``, ``length``, ...). Token counts are ``None`` when the provider did not say.
    """

    text: str
    model: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    platform: str = ""


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """A model's price in USD per million input and output tokens (``TokenPrice(0.59, 0.79)``).

    Given to :class:`~failover.http.TextGeneration` (``prices={"groq": ...}``), it turns each
    answer's reported token usage into the platform's cost in ``get_health_status()``.
    """

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            validate.number(
                name,
                getattr(self, name),
                at_least=0,
                label=f"TokenPrice.{name}",
                hint=" (USD per million tokens)",
            )

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """USD for this usage; ``None`` when the provider reported no usage at all."""
        if input_tokens is None and output_tokens is None:
            return None
        return ((input_tokens or 0) * self.input + (output_tokens or 0) * self.output) / 1e6


def record_on_span(
    model: str | None,
    finish_reason: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
) -> None:
    """Put the GenAI response attributes on the current span (the attempt span inside a
    fallback chain); free when nothing records spans."""
    span = otel_trace.get_current_span()
    if not span.is_recording():
        return
    attributes: dict[str, str | int | tuple[str, ...]] = {}
    if model:
        attributes["gen_ai.response.model"] = model
    if finish_reason:
        attributes["gen_ai.response.finish_reasons"] = (finish_reason,)
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    span.set_attributes(attributes)
