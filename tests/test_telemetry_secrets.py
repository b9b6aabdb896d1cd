"""No API key value reaches a span, event, metric, log line, health field or exception text.

Every platform's ``api_key_env`` variable holds a canary value; the operations fail with
messages that echo keys back, as providers do (OpenAI: "Incorrect API key provided: sk-...").
Then every output failover writes is searched for the canaries.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from typing import Any

import pytest
import tenacity
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from failover import (
    KNOWN_PLATFORMS,
    AllPlatformsFailed,
    AuthFailed,
    BadRequest,
    CreditExhausted,
    PlatformManager,
    PlatformSpec,
    Policy,
    RateLimited,
    Retry,
    Transient,
)
from failover.testing import FakeClock

pytestmark = pytest.mark.anyio

ENV_NAMES = sorted({known.api_key_env for known in KNOWN_PLATFORMS.values() if known.api_key_env})


def canaries() -> dict[str, str]:
    """One canary per variable. Only OpenAI's is key-shaped: the others can only be caught by
    value, so the test proves the configured variables are scrubbed, not just key patterns."""
    values = {
        name: f"Zq{index}Canary{name.title().replace('_', '')}w8"
        for index, name in enumerate(ENV_NAMES)
    }
    values["OPENAI_API_KEY"] = "sk-proj-CanaryOpenAi0123456789abcdef"
    return values


def echo(platform: PlatformSpec, keys: Mapping[str, str]) -> BaseException:
    """An error whose text contains the platform's own key (and, for some, every key)."""
    key = keys[platform.api_key_env] if platform.api_key_env else "no key"
    everything = " ".join(keys.values())
    errors: dict[str, BaseException] = {
        "openai": AuthFailed(
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            status_code=401,
        ),
        "groq": Transient(f"502 from upstream while using {key}"),
        "xai": RuntimeError(f"connection reset; request headers: Authorization: {key}"),
        "google": CreditExhausted(f"RESOURCE_EXHAUSTED: prepaid credits depleted for key={key}"),
        "together": RateLimited(f"429 for {key}", retry_after=60),
        "anthropic": Transient(f"overloaded ({key})"),
        "pollinations": Transient(f"proxy dumped its config: {everything}"),
        "huggingface": CreditExhausted(f"402 {key}"),
        "fal": AuthFailed(f"403 Exhausted balance? user locked {key}"),
        "flux_pro": BadRequest(f"content policy for {key}", reason="content_policy"),
        "stability": Transient(f"503 {key}"),
        "replicate": ValueError(f"bad token {key}"),
    }
    return errors[platform.name]


@pytest.fixture(params=["environ_argument", "process_environment"])
def keys_and_environ(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], dict[str, str] | None]:
    keys = canaries()
    if request.param == "environ_argument":
        return keys, dict(keys)
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    return keys, None


async def test_canary_keys_appear_in_no_output(
    keys_and_environ: tuple[dict[str, str], dict[str, str] | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys, environ = keys_and_environ
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    caplog.set_level(logging.DEBUG, logger="failover")
    manager = PlatformManager(
        None,  # the built-in table: every well-known platform and its key variable
        failure_threshold=2,  # a transient failure is retried once, then opens the pair
        max_attempts=20,
        clock=FakeClock(autojump=True),
        environ=environ,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        policy=Policy(
            retry=Retry(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(1))
        ),
    )
    texts: list[str] = []

    async def failing(platform: PlatformSpec) -> str:
        raise echo(platform, keys)

    for operation in ("text_generation", "image_generation", "image_editing"):
        with pytest.raises(AllPlatformsFailed) as caught:
            await manager.with_fallback(operation, failing)
        texts += [str(caught.value), repr(caught.value)]
        texts += traceback.format_exception(caught.value)
        texts += [attempt.describe() for attempt in caught.value.attempts]
    # Everything is open or cooling now: the skip-only failure.
    with pytest.raises(AllPlatformsFailed) as caught:
        await manager.get_platform("text_generation")
    texts += [str(caught.value), *traceback.format_exception(caught.value)]
    # A request fault raised straight to the caller, and failures reported by hand.
    openai = manager.platforms("text_generation")[4]
    await manager.report_failure(openai, "text_generation", echo(openai, keys), 0.5)
    manager.reset("stability")
    with pytest.raises(BadRequest):
        await manager.with_fallback(
            "image_editing", _raises(BadRequest(f"bad prompt {keys['STABILITY_API_KEY']}"))
        )
    for record in caplog.records:
        texts.append(logging.Formatter("%(message)s").format(record))
    texts.append(caplog.text)
    texts.append(json.dumps(manager.get_health_status()))
    spans = exporter.get_finished_spans()
    texts += [span.to_json() for span in spans]
    metrics = reader.get_metrics_data()
    assert metrics is not None
    texts.append(metrics.to_json())

    everything = "\n".join(texts)
    for name, value in keys.items():
        assert value not in everything, f"the value of {name} leaked"
        assert value[4:-4] not in everything, f"part of the value of {name} leaked"
    # The outputs are really there, and they were scrubbed (not just empty).
    # 4 calls; 23 attempts (text 9, image generation 9, image editing 4, the bad request 1)
    assert len(spans) == 4 + 23
    assert "Incorrect API key provided: [REDACTED]" in everything
    assert "prepaid credits depleted for key=[REDACTED]" in everything
    assert "API key problem on openai (check OPENAI_API_KEY)" in caplog.text
    assert "Retrying text_generation on groq" in caplog.text
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _raises(error: BaseException) -> Any:
    async def operation(platform: PlatformSpec) -> str:
        raise error

    return operation


def test_every_library_logger_carries_the_scrubbing_filter() -> None:
    """Filters do not propagate: each module's own logger must scrub what it logs."""
    import failover.policies.chaos
    import failover.testing.fake.server
    from failover._observe.scrub import ScrubbingFilter

    for module in (failover.policies.chaos, failover.testing.fake.server):
        filters = module.logger.filters
        assert any(isinstance(f, ScrubbingFilter) for f in filters), module.__name__
