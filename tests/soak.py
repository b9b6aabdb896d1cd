"""Chaos soak: many concurrent text-generation calls over real HTTP while providers misbehave.

A :class:`~failover.testing.FakeProviderServer` serves six chat platforms (groq, xai, openai,
together, google, anthropic) on 127.0.0.1; a :class:`~failover.http.TextGeneration` drives
them through a :class:`~failover.PlatformManager` with short cool-downs, a retry and an
attempt timeout. While ``concurrency`` workers make ``calls`` calls, a chaos task switches
random platforms between healthy and faulty behaviours: 5xx, overloaded, hangs past the
attempt timeout, 429 with Retry-After, credit exhaustion and a refused key.

The operation logs every attempt it makes (platform, what it saw, whether the request was
written to the socket and whether an answer came back, from httpx's trace hooks). At the end
every figure is reconciled with that log, exactly:

* every call returned a result or raised ``AllPlatformsFailed`` whose history lists exactly
  the attempts the log has for it; a success is the last attempt of its call (lost calls: 0);
* ``get_health_status()`` per platform: requests and failures;
* the ``failover.attempts`` metric (``InMemoryMetricReader``) per platform and outcome;
* the fake server's ``stats()``: its request count per platform equals the requests the log
  says were written; per outcome, the server counts exactly what the client was answered, plus
  the requests the client stopped waiting for (attempt timeouts), and nothing else;
* no task and no socket outlives the run; no span is left open;
* no API key value (every platform's key variable holds a canary) appears in a log record
  (DEBUG), a span, the health JSON, a metric or an ``AllPlatformsFailed`` text.

``run_soak()`` returns a :class:`SoakReport`; ``report.problems`` lists every mismatch.
``tests/test_soak.py`` runs it in CI (2,000 calls by default; ``FAILOVER_SOAK_CALLS=20000``
for the full size). From the command line::

    .venv/bin/python tests/soak.py --calls 20000 --backend asyncio
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import sniffio
import tenacity
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from failover import (
    KNOWN_PLATFORMS,
    AllPlatformsFailed,
    ErrorKind,
    PlatformManager,
    PlatformSpec,
    Policy,
    ProviderError,
    Retry,
    classify,
)
from failover.http import (
    DEFAULT_LIMITS,
    AnthropicMessages,
    OpenAICompatibleChat,
    TextGeneration,
)
from failover.testing import Behaviour, FakeProviderServer

TEXT = "text_generation"
MODELS = {
    "groq": "llama-3.3-70b-versatile",
    "xai": "grok-2",
    "openai": "gpt-4o-mini",
    "together": "llama-3.2-3b",
    "google": "gemini-2.5-flash-lite",
    "anthropic": "claude-3-5-haiku-latest",
}
MESSAGES = [{"role": "user", "content": "a short poem about resilience"}]

#: The behaviours the chaos task switches between, with their weights.
CHAOS: dict[str, tuple[Behaviour, int]] = {
    "healthy": (Behaviour.healthy(latency=0.002, jitter=0.002), 50),
    "5xx": (Behaviour.flaky(0.5, status=500), 12),
    "overloaded": (Behaviour.overloaded(), 8),
    "hang": (Behaviour.hanging(), 4),
    "rate_limited": (Behaviour.rate_limited(retry_after=1), 12),
    "out_of_credits": (Behaviour.out_of_credits(), 10),
    "bad_key": (Behaviour.bad_key(), 10),
}
#: The server's outcome name for an answer the client saw, by (kind, HTTP status).
SERVER_OUTCOME = {
    ("ok", None): "ok",
    ("transient", 500): "error_500",
    ("transient", 503): "overloaded",
    ("transient", 529): "overloaded",
    ("rate_limited", 429): "rate_limited",
    ("credit_exhausted", 429): "credit",
    ("credit_exhausted", 400): "credit",
    ("auth", 401): "auth",
}
FAULT_OUTCOMES = ("error_500", "overloaded", "hang", "rate_limited", "credit", "auth")
#: The faults the chaos task puts on every platform in turn before switching at random.
FIRST_SWEEP = ("5xx", "overloaded", "rate_limited", "out_of_credits", "bad_key", "hang")

ATTEMPT_TIMEOUT = 4.0


def canary_keys() -> dict[str, str]:
    """A distinct, long canary value for every known platform's key variable."""
    names = sorted({p.api_key_env for p in KNOWN_PLATFORMS.values() if p.api_key_env})
    keys = {
        name: f"Zq{i}SoakCanary{name.title().replace('_', '')}Xw8v" for i, name in enumerate(names)
    }
    keys["OPENAI_API_KEY"] = "sk-proj-SoakCanaryOpenAi0123456789abcdefXYZ"
    return keys


@dataclass
class AttemptRecord:
    """One attempt, as the operation saw it."""

    call: int
    platform: str
    outcome: str = "pending"  # ok, an ErrorKind value, or timeout
    status: int | None = None
    sent: bool = False  # the whole request was written to the socket
    answered: bool = False  # response headers were read


CURRENT: contextvars.ContextVar[AttemptRecord] = contextvars.ContextVar("soak_attempt")


class TracingTransport(httpx.AsyncBaseTransport):
    """A real transport that marks the current attempt sent/answered via httpcore's trace."""

    def __init__(self) -> None:
        # The adapters' own default pool (100 connections per platform), as users get it.
        self.inner = httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        record = CURRENT.get()

        async def trace(name: str, info: Mapping[str, Any]) -> None:
            if name == "http11.send_request_body.complete":
                record.sent = True
            elif name == "http11.receive_response_headers.complete":
                record.answered = True

        request.extensions["trace"] = trace
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class OpenSpans(SpanProcessor):
    """Counts spans started and ended; keeps the ended ones when asked to."""

    def __init__(self, keep: bool) -> None:
        self.open: set[int] = set()
        self.started = 0
        self.keep = keep
        self.finished: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started += 1
        self.open.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.discard(span.context.span_id)
        if self.keep:
            self.finished.append(span)


class CanaryHandler(logging.Handler):
    """Formats every record (DEBUG and up) and looks for the canaries in it."""

    def __init__(self, canaries: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.canaries = canaries
        self.records = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        text = self.format(record)
        for canary in self.canaries:
            if canary in text:
                self.leaks.append(f"log record {record.name}: {text[:200]}")


@dataclass
class SoakReport:
    calls: int
    concurrency: int
    backend: str
    seed: int
    wall_seconds: float = 0.0
    succeeded: int = 0
    all_platforms_failed: int = 0
    lost: int = 0
    peak_in_flight: int = 0
    attempts: int = 0
    attempt_outcomes: Counter[str] = field(default_factory=Counter)
    switches: Counter[str] = field(default_factory=Counter)
    faults_served: Counter[str] = field(default_factory=Counter)
    server_requests: int = 0
    timeouts_after_send: int = 0
    log_records: int = 0
    spans: int = 0
    tasks_leaked: int = 0
    sockets_leaked: int = 0
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "concurrency": self.concurrency,
            "peak_in_flight": self.peak_in_flight,
            "backend": self.backend,
            "seed": self.seed,
            "succeeded": self.succeeded,
            "all_platforms_failed": self.all_platforms_failed,
            "lost_calls": self.lost,
            "attempts": self.attempts,
            "attempt_outcomes": dict(sorted(self.attempt_outcomes.items())),
            "behaviour_switches": dict(sorted(self.switches.items())),
            "faults_served": dict(sorted(self.faults_served.items())),
            "server_requests": self.server_requests,
            "timeouts_after_send": self.timeouts_after_send,
            "log_records_checked": self.log_records,
            "spans": self.spans,
            "tasks_leaked": self.tasks_leaked,
            "sockets_leaked": self.sockets_leaked,
            "problems": self.problems,
            "wall_seconds": round(self.wall_seconds, 2),
        }


def open_sockets() -> int:
    """Sockets this process holds (Linux ``/proc``); -1 where that cannot be read."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return -1
    count = 0
    for entry in fd_dir.iterdir():
        try:
            count += os.readlink(entry).startswith("socket:")
        except OSError:
            continue
    return count


def attempt_metrics(reader: InMemoryMetricReader) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "failover.attempts":
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        attributes = point.attributes or {}
                        key = (
                            str(attributes["failover.platform"]),
                            str(attributes["failover.outcome"]),
                        )
                        counts[key] += int(point.value)  # type: ignore[union-attr]
    return counts


async def run_soak(
    calls: int = 2_000,
    concurrency: int = 200,
    *,
    seed: int = 1,
    switch_every: float = 0.1,
    keep_spans: bool = False,
    keys: Mapping[str, str] | None = None,
) -> SoakReport:
    """Run the soak on the current event loop and reconcile everything; see the module doc."""
    report = SoakReport(calls, concurrency, sniffio.current_async_library(), seed)
    keys = dict(keys) if keys is not None else canary_keys()
    canaries = list(keys.values())
    rng = random.Random(seed)
    handler = CanaryHandler(canaries)
    watched = [logging.getLogger(name) for name in ("failover", "httpx")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    spans = OpenSpans(keep_spans)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(spans)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

    gc.collect()
    sockets_before = open_sockets()
    tasks_before = len(anyio.get_running_tasks())
    log: list[AttemptRecord] = []
    results: dict[int, Any] = {}
    texts: list[str] = []
    started = time.perf_counter()
    try:
        async with FakeProviderServer(seed=seed) as server:
            # Every platform starts with a different fault; the chaos task takes it from there.
            faults = [kind for kind in CHAOS if kind != "healthy"]
            names = list(MODELS)
            for name, kind in zip(names, faults, strict=True):
                server.set_behaviour(name, CHAOS[kind][0])
                report.switches[kind] += 1
            manager = PlatformManager(
                {TEXT: list(MODELS.items())},
                failure_threshold=3,
                cache_ttl_seconds=0.5,
                auth_cooldown_seconds=1.0,
                rate_limit_max_seconds=0.5,
                probe_lease_seconds=ATTEMPT_TIMEOUT + 1,
                when_all_unavailable="wait",
                max_wait=1.0,
                max_attempts=12,
                policy=Policy(
                    retry=Retry(tenacity.stop_after_attempt(2), tenacity.wait_fixed(0.005)),
                    attempt_timeout=ATTEMPT_TIMEOUT,
                ),
                environ=keys,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
            )
            async with manager:
                timeout = httpx.Timeout(10.0)
                chat = TextGeneration(
                    manager,
                    {
                        name: (AnthropicMessages if name == "anthropic" else OpenAICompatibleChat)(
                            server.base_url(name),
                            transport=TracingTransport(),
                            timeout=timeout,
                            environ=keys,
                        )
                        for name in names
                    },
                )

                async def operation(platform: PlatformSpec, call: int) -> Any:
                    record = AttemptRecord(call, platform.name)
                    log.append(record)
                    token = CURRENT.set(record)
                    try:
                        result = await chat(platform, MESSAGES)
                    except BaseException as exc:
                        verdict = classify(exc)
                        # The attempt timeout is the only canceller here. On trio a cut
                        # connect can surface as a group of Cancelled: the same thing.
                        record.outcome = (
                            "timeout" if verdict.kind is ErrorKind.CANCELLED else verdict.kind.value
                        )
                        record.status = exc.status_code if isinstance(exc, ProviderError) else None
                        raise
                    finally:
                        CURRENT.reset(token)
                    record.outcome = "ok"
                    return result

                next_call = 0
                in_flight = 0

                async def worker() -> None:
                    nonlocal next_call, in_flight
                    while next_call < calls:
                        call = next_call
                        next_call += 1
                        in_flight += 1
                        report.peak_in_flight = max(report.peak_in_flight, in_flight)
                        try:
                            results[call] = await manager.with_fallback(TEXT, operation, call)
                        except AllPlatformsFailed as exc:
                            results[call] = exc
                        except Exception as exc:  # lost: anything else is a bug
                            results[call] = exc
                        finally:
                            in_flight -= 1

                async def chaos() -> None:
                    kinds = list(CHAOS)
                    weights = [CHAOS[kind][1] for kind in kinds]
                    # First every fault on every platform in turn, briefly, so each kind is
                    # served whatever the timing (hang last: it holds its callers longest);
                    # then faults land on platforms at random.
                    for kind in FIRST_SWEEP:
                        server.set_behaviour("*", CHAOS[kind][0])
                        report.switches[kind] += 1
                        await anyio.sleep(switch_every * 2)
                    server.set_behaviour("*", CHAOS["healthy"][0])
                    report.switches["healthy"] += 1
                    while True:
                        await anyio.sleep(switch_every)
                        kind = rng.choices(kinds, weights)[0]
                        server.set_behaviour(rng.choice(names), CHAOS[kind][0])
                        report.switches[kind] += 1

                async with anyio.create_task_group() as chaos_group:
                    chaos_group.start_soon(chaos)
                    async with anyio.create_task_group() as workers:
                        for _ in range(concurrency):
                            workers.start_soon(worker)
                    chaos_group.cancel_scope.cancel()
                health = manager.get_health_status()
                texts.append(json.dumps(health))
            stats = server.stats()
        report.wall_seconds = time.perf_counter() - started
        metrics = attempt_metrics(reader)
        metrics_data = reader.get_metrics_data()
        if metrics_data is not None:
            texts.append(metrics_data.to_json())
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        tracer_provider.shutdown()
        meter_provider.shutdown()

    # -- reconcile ----------------------------------------------------------------------------
    problems = report.problems
    by_call: dict[int, list[AttemptRecord]] = {}
    for record in log:
        by_call.setdefault(record.call, []).append(record)
    report.attempts = len(log)
    report.attempt_outcomes.update(record.outcome for record in log)
    for call in range(calls):
        mine = by_call.get(call, [])
        outcome = results.get(call)
        if isinstance(outcome, tuple):
            report.succeeded += 1
            result, spec = outcome
            if not mine or mine[-1].outcome != "ok" or mine[-1].platform != spec.name:
                problems.append(f"call {call}: success on {spec.name} is not its last attempt")
            if [r.outcome for r in mine].count("ok") != 1:
                problems.append(f"call {call}: {len(mine)} attempts, not exactly one success")
            if result.platform != spec.name:
                problems.append(f"call {call}: answer from {result.platform}, spec {spec.name}")
        elif isinstance(outcome, AllPlatformsFailed):
            report.all_platforms_failed += 1
            text = str(outcome)
            texts.append(text)
            tried = [a for a in outcome.attempts if a.outcome != "skipped"]
            if [a.platform for a in tried] != [r.platform for r in mine]:
                problems.append(f"call {call}: history {tried} != log {mine}")
            for attempt, record in zip(tried, mine, strict=False):
                expected = "timeout" if attempt.error_type == "AttemptTimeout" else None
                seen = expected or (attempt.error_kind.value if attempt.error_kind else "?")
                if attempt.outcome != "failure" or seen != record.outcome:
                    problems.append(f"call {call}: attempt {attempt} vs log {record}")
            if len(text.splitlines()) != len(outcome.attempts) + 1:
                problems.append(f"call {call}: the message does not list every attempt")
        else:
            report.lost += 1
            problems.append(f"call {call} lost: {outcome!r}")
    if len(results) != calls:
        problems.append(f"{calls - len(results)} calls never finished")
    pending = [record for record in log if record.outcome == "pending"]
    if pending:
        problems.append(f"{len(pending)} attempts never finished: {pending[:3]}")

    for name in MODELS:
        mine = [record for record in log if record.platform == name]
        failures = [r for r in mine if r.outcome not in ("ok", "request")]
        counted = [r for r in mine if r.outcome != "request"]
        detail = health[name]["operations"][TEXT]
        if detail["total_requests"] != len(counted) or detail["failures"] != len(failures):
            problems.append(
                f"health {name}: {detail['total_requests']} requests / {detail['failures']} "
                f"failures, log {len(counted)} / {len(failures)}"
            )
        ok = sum(1 for r in mine if r.outcome == "ok")
        for outcome_name, expected in (
            ("success", ok),
            ("failure", len(mine) - ok),
            ("cancelled", 0),
        ):
            if metrics[(name, outcome_name)] != expected:
                problems.append(
                    f"metric failover.attempts{{{name}, {outcome_name}}} = "
                    f"{metrics[(name, outcome_name)]}, log {expected}"
                )
        # The server: one request per attempt written to the socket.
        sent = [r for r in mine if r.sent]
        server_counts = Counter({k: v for k, v in stats[name].items() if k != "total"})
        report.server_requests += stats[name]["total"]
        report.faults_served.update({k: v for k, v in server_counts.items() if k != "ok"})
        if stats[name]["total"] != len(sent):
            problems.append(f"server {name}: {stats[name]['total']} requests, log sent {len(sent)}")
        if any(r.answered and not r.sent for r in mine):
            problems.append(f"{name}: an answer to a request that was never sent")
        answered: Counter[str] = Counter()
        cut = 0
        for record in sent:
            if record.outcome == "timeout":
                cut += 1
                continue
            key = (record.outcome, None if record.outcome == "ok" else record.status)
            answered[SERVER_OUTCOME.get(key, f"unexpected {key}")] += 1
        report.timeouts_after_send += cut
        excess = 0
        for outcome_name in set(answered) | set(server_counts):
            difference = server_counts[outcome_name] - answered[outcome_name]
            if difference < 0:
                problems.append(
                    f"server {name}: {outcome_name} {server_counts[outcome_name]} < client "
                    f"{answered[outcome_name]}"
                )
            excess += difference
        if excess != cut:
            problems.append(
                f"server {name}: {excess} requests the client was not answered, {cut} timeouts"
            )
    unsent_answered = [r for r in log if not r.sent and r.outcome not in ("timeout",)]
    if unsent_answered:
        problems.append(f"{len(unsent_answered)} attempts answered without a request sent")

    # -- leaks ----------------------------------------------------------------------------------
    await anyio.lowlevel.checkpoint()
    report.tasks_leaked = len(anyio.get_running_tasks()) - tasks_before
    gc.collect()
    sockets_after = open_sockets()
    report.sockets_leaked = 0 if sockets_before < 0 else sockets_after - sockets_before
    if report.tasks_leaked:
        problems.append(f"{report.tasks_leaked} tasks outlived the soak")
    if report.sockets_leaked:
        problems.append(f"{report.sockets_leaked} sockets outlived the soak")
    report.spans = spans.started
    if spans.open:
        problems.append(f"{len(spans.open)} spans never ended")

    # -- secrets --------------------------------------------------------------------------------
    report.log_records = handler.records
    problems.extend(handler.leaks[:10])
    texts.extend(span.to_json() for span in spans.finished)
    everything = "\n".join(texts)
    for name, value in keys.items():
        if value in everything or value[4:-4] in everything:
            problems.append(f"the value of {name} leaked into health, metrics, spans or errors")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--keep-spans", action="store_true", help="search span JSON too")
    args = parser.parse_args(argv)

    async def soak() -> SoakReport:
        return await run_soak(
            args.calls, args.concurrency, seed=args.seed, keep_spans=args.keep_spans
        )

    report = anyio.run(soak, backend=args.backend)
    json.dump(report.figures(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report.problems or report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
