"""The cases ``benchmarks/run.py`` measures, each returning plain, JSON-ready results.

Every case builds what it compares in one process and one event loop and times the variants
interleaved (``_harness.interleave``), so their ratios come from the same rounds. Per-call
costs are thread CPU nanoseconds unless a case says otherwise.
"""

from __future__ import annotations

import cProfile
import io
import math
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pybreaker
import tenacity

from _harness import AsyncCall, Spread, calibrate, estimate, interleave, ratios
from failover import PlatformManager, PlatformSpec, Policy, Transient, fallback

OP = "text_generation"
SPEC = PlatformSpec("alpha", "a-1")
THREE = [("alpha", "a-1"), ("beta", "b-1"), ("gamma", "g-1")]
THREE_SPECS = [PlatformSpec(name, model) for name, model in THREE]
PRIORITIES = {OP: THREE}
CPU = time.thread_time_ns


async def operation(platform: PlatformSpec) -> str:
    return "ok"


def _spread_ns(samples: dict[str, list[float]]) -> dict[str, Spread]:
    return {name: Spread.of(values) for name, values in samples.items()}


async def _sized(timed: dict[str, AsyncCall], target_ms: float) -> dict[str, int]:
    return {name: calibrate(await estimate(call), target_ms) for name, call in timed.items()}


# -- happy path -------------------------------------------------------------------------------


class SdkPair:
    """A tracer and meter provider recording in memory, and how to empty them."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def clear(self) -> None:
        self.spans.clear()


def _hand_instrumented(sdk: SdkPair) -> AsyncCall:
    """The same spans, attributes and metrics failover records, written by hand.

    Its cost over a bare await is "what the SDK charges for this telemetry"; failover's own
    share with the SDK is whatever it costs beyond that.
    """
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    tracer = sdk.tracer_provider.get_tracer("by-hand")
    meter = sdk.meter_provider.get_meter("by-hand")
    attempts = meter.create_counter("failover.attempts")
    attempt_duration = meter.create_histogram("failover.attempt.duration", unit="s")
    call_duration = meter.create_histogram("failover.call.duration", unit="s")
    metric_attributes = {
        "failover.platform": SPEC.name,
        "failover.operation": OP,
        "failover.outcome": "success",
    }
    call_attributes = {"failover.operation": OP, "failover.outcome": "success"}
    use_span = trace.use_span
    monotonic = time.monotonic

    async def call() -> str:
        started = monotonic()
        span = tracer.start_span(
            f"failover {OP}", kind=SpanKind.INTERNAL, attributes={"failover.operation": OP}
        )
        with use_span(span, end_on_exit=False, record_exception=False):
            attempt_started = monotonic()
            attempt = tracer.start_span(
                f"chat {SPEC.model}",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": SPEC.name,
                    "gen_ai.request.model": SPEC.model,
                    "failover.operation": OP,
                    "failover.platform": SPEC.name,
                    "failover.attempt": 1,
                    "failover.breaker.state": "closed",
                    "gen_ai.output.type": "text",
                },
            )
            with use_span(attempt, end_on_exit=True, record_exception=False):
                result = await operation(SPEC)
            duration = monotonic() - attempt_started
            attempts.add(1, metric_attributes)
            attempt_duration.record(duration, metric_attributes)
            span.set_attributes(
                {"failover.platform": SPEC.name, "failover.attempts": 1, "failover.fallbacks": 0}
            )
        span.end()
        call_duration.record(monotonic() - started, call_attributes)
        return result

    return call


def happy_variants(sdk: SdkPair, sdk_hand: SdkPair) -> dict[str, AsyncCall]:
    """Every happy-path variant, by the name the report uses."""
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=300)

    @tenacity.retry(stop=tenacity.stop_after_attempt(1), reraise=True)
    async def tenacity_once() -> str:
        return await operation(SPEC)

    async def bare() -> str:
        return await operation(SPEC)

    async def hand_loop() -> tuple[str, PlatformSpec]:
        for spec in THREE_SPECS:
            try:
                return await operation(spec), spec
            except Exception:
                continue
        raise RuntimeError("every platform failed")

    async def pybreaker_calling() -> str:
        with breaker.calling():
            return await operation(SPEC)

    timed: dict[str, AsyncCall] = {
        "bare await": bare,
        "try/except loop, 3 platforms": hand_loop,
        "pybreaker calling()": pybreaker_calling,
        "tenacity @retry, 1 attempt": tenacity_once,
    }
    managers = {
        "telemetry off": PlatformManager(PRIORITIES, environ={}, monitoring_enabled=False),
        "OTel API, no SDK": PlatformManager(PRIORITIES, environ={}),
        "OTel SDK in memory": PlatformManager(
            PRIORITIES,
            environ={},
            tracer_provider=sdk.tracer_provider,
            meter_provider=sdk.meter_provider,
        ),
    }
    for label, manager in managers.items():
        timed[f"with_fallback, {label}"] = _with_fallback_call(manager)
        timed[f"@fallback, {label}"] = _decorated_call(manager)
    # A rate window counts every call, so the route leaves the fast path: its added cost.
    rated = PlatformManager(
        PRIORITIES, environ={}, monitoring_enabled=False, failure_rate_threshold=0.5
    )
    timed[RATED] = _with_fallback_call(rated)
    timed["spans and metrics by hand, SDK"] = _hand_instrumented(sdk_hand)
    return timed


#: The happy-path variant with a failure-rate breaker, compared with "with_fallback, telemetry off".
RATED = "with_fallback, telemetry off, failure-rate breaker"


def _with_fallback_call(manager: PlatformManager) -> AsyncCall:
    with_fallback = manager.with_fallback

    async def call() -> Any:
        return await with_fallback(OP, operation)

    return call


def _decorated_call(manager: PlatformManager) -> AsyncCall:
    @fallback(OP, manager=manager)
    async def decorated(platform: PlatformSpec) -> str:
        return "ok"

    async def call() -> str:
        return await decorated()

    return call


def operation_sync(platform: PlatformSpec) -> str:
    return "ok"


def sync_variants() -> dict[str, AsyncCall]:
    """The synchronous happy path, each variant wrapped in the same thin coroutine so the
    harness can interleave them: the wrapper's cost cancels out against the bare call."""
    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=300)
    call_breaker = breaker.call
    # "OTel API, no SDK": the API imported (as in the full run, after the happy path's SDK
    # providers were made), no provider installed.
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401

    async def bare() -> str:
        return operation_sync(SPEC)

    async def pybreaker_call() -> str:
        return call_breaker(operation_sync, SPEC)  # type: ignore[no-any-return]

    timed: dict[str, AsyncCall] = {"bare call": bare, "pybreaker call()": pybreaker_call}
    managers = {
        "telemetry off": PlatformManager(PRIORITIES, environ={}, monitoring_enabled=False),
        "OTel API, no SDK": PlatformManager(PRIORITIES, environ={}),
    }
    for label, manager in managers.items():
        with_fallback_sync = manager.with_fallback_sync

        async def sync_call(with_fallback_sync: Any = with_fallback_sync) -> Any:
            return with_fallback_sync(OP, operation_sync)

        @fallback(OP, manager=manager)
        def decorated(platform: PlatformSpec) -> str:
            return "ok"

        async def decorated_call(decorated: Any = decorated) -> Any:
            return decorated()

        timed[f"with_fallback_sync, {label}"] = sync_call
        timed[f"sync @fallback, {label}"] = decorated_call
    return timed


async def sync_happy_path(rounds: int, target_ms: float) -> dict[str, Any]:
    """Per-call cost of the synchronous API next to pybreaker's ``call()``."""
    timed = sync_variants()
    sizes = await _sized(timed, target_ms)
    samples = await interleave(timed, rounds, sizes, CPU)
    floor = "bare call"
    compared = {
        name: {"pybreaker call()": Spread.of(ratios(samples, name, "pybreaker call()", floor))}
        for name in timed
        if "fallback" in name
    }
    overhead = {
        name: Spread.of(
            [value - base for value, base in zip(samples[name], samples[floor], strict=True)]
        )
        for name in timed
    }
    return {
        "per_call_ns": _spread_ns(samples),
        "overhead_ns": overhead,
        "ratios": compared,
        "calls_per_batch": sizes,
        "rounds": rounds,
    }


async def happy_path(rounds: int, target_ms: float) -> dict[str, Any]:
    """Per-call cost of every variant, and the ratios the goals are judged on."""
    sdk, sdk_hand = SdkPair(), SdkPair()
    timed = happy_variants(sdk, sdk_hand)
    sizes = await _sized(timed, target_ms)

    def clear() -> None:
        sdk.clear()
        sdk_hand.clear()

    samples = await interleave(timed, rounds, sizes, CPU, between_rounds=clear)
    floor = "bare await"
    compared: dict[str, dict[str, Spread]] = {}
    for name in timed:
        if name.startswith(("with_fallback", "@fallback")):
            compared[name] = {
                "pybreaker calling()": Spread.of(
                    ratios(samples, name, "pybreaker calling()", floor)
                ),
                "tenacity @retry, 1 attempt": Spread.of(
                    ratios(samples, name, "tenacity @retry, 1 attempt", floor)
                ),
            }
    shares = {
        label: Spread.of(ratios(samples, label, "spans and metrics by hand, SDK", floor))
        for label in ("with_fallback, OTel SDK in memory", "@fallback, OTel SDK in memory")
    }
    # ratios() gives (failover - bare) / (hand - bare); the share beyond the SDK's own cost
    # is that minus one.
    own_share = {
        label: Spread(s.median - 1, s.q1 - 1, s.q3 - 1, s.low - 1, s.high - 1, s.runs)
        for label, s in shares.items()
    }
    per_call = _spread_ns(samples)
    overhead = {
        name: Spread.of(
            [value - base for value, base in zip(samples[name], samples[floor], strict=True)]
        )
        for name in timed
    }
    plain = samples["with_fallback, telemetry off"]
    rated_added = Spread.of(
        [value - base for value, base in zip(samples[RATED], plain, strict=True)]
    )
    return {
        "per_call_ns": per_call,
        "overhead_ns": overhead,
        "failure_rate_added_ns": rated_added,
        "ratios": compared,
        "sdk_own_share": own_share,
        "calls_per_batch": sizes,
        "rounds": rounds,
    }


# -- skip cost --------------------------------------------------------------------------------


async def skip_cost(rounds: int, target_ms: float, counts: tuple[int, ...]) -> dict[str, Any]:
    """Cost per open platform skipped before the one that answers (OTel API, no SDK)."""
    most = max(counts)
    platforms = [(f"p{index}", f"m{index}") for index in range(most + 1)]
    timed: dict[str, AsyncCall] = {}
    for count in counts:
        manager = PlatformManager({OP: platforms[most - count :]}, environ={})
        for name, _ in platforms[most - count : most]:
            manager.isolate(name, OP)
        timed[f"{count} open"] = _with_fallback_call(manager)
    sizes = await _sized(timed, target_ms)
    samples = await interleave(timed, rounds, sizes, CPU)
    # Per open platform beyond the first: with none open a call takes the fast path (no call
    # record at all), so (N open - 0 open) / N would mix the price of leaving it into every
    # platform; the first skip is reported apart.
    base = "1 open" if 1 in counts else "0 open"
    first = 1 if base == "1 open" else 0
    per_platform = {
        count: Spread.of(
            [
                (value - floor) / (count - first)
                for value, floor in zip(samples[f"{count} open"], samples[base], strict=True)
            ]
        )
        for count in counts
        if count > first
    }
    first_skip = (
        Spread.of(
            [one - none for one, none in zip(samples["1 open"], samples["0 open"], strict=True)]
        )
        if first and 0 in counts
        else None
    )
    return {
        "per_call_ns": _spread_ns(samples),
        "per_open_platform_ns": per_platform,
        "first_skip_ns": first_skip,
        "rounds": rounds,
    }


# -- failure path ------------------------------------------------------------------------------


async def failure_path(rounds: int, target_ms: float) -> dict[str, Any]:
    """First platform raises a transient error, the second answers."""
    pair = [("broken", "b-1"), ("working", "w-1")]
    specs = [PlatformSpec(name, model) for name, model in pair]

    async def flaky(platform: PlatformSpec) -> str:
        if platform.name == "broken":
            raise Transient("503 from the provider")
        return "ok"

    async def hand_loop() -> tuple[str, PlatformSpec]:
        for spec in specs:
            try:
                return await flaky(spec), spec
            except Exception:
                continue
        raise RuntimeError("every platform failed")

    # fail_max/failure_threshold out of reach: the primary stays closed and keeps failing,
    # so every call takes the failure path rather than the skip path.
    breakers = {
        spec.name: pybreaker.CircuitBreaker(fail_max=10**9, reset_timeout=300) for spec in specs
    }

    async def pybreaker_loop() -> tuple[str, PlatformSpec]:
        for spec in specs:
            try:
                with breakers[spec.name].calling():
                    return await flaky(spec), spec
            except Exception:
                continue
        raise RuntimeError("every platform failed")

    manager = PlatformManager({OP: pair}, environ={}, failure_threshold=10**9)
    quiet = PlatformManager(
        {OP: pair}, environ={}, failure_threshold=10**9, monitoring_enabled=False
    )

    def failover_call(target: PlatformManager) -> AsyncCall:
        with_fallback = target.with_fallback

        async def call() -> Any:
            return await with_fallback(OP, flaky)

        return call

    timed: dict[str, AsyncCall] = {
        "try/except loop": hand_loop,
        "pybreaker calling() per platform": pybreaker_loop,
        "with_fallback, telemetry off": failover_call(quiet),
        "with_fallback, OTel API, no SDK": failover_call(manager),
    }
    sizes = await _sized(timed, target_ms)
    samples = await interleave(timed, rounds, sizes, CPU)
    return {"per_call_ns": _spread_ns(samples), "rounds": rounds}


# -- throughput -------------------------------------------------------------------------------


async def throughput(repeats: int, concurrency: int, latency: float) -> dict[str, Any]:
    """``concurrency`` calls at once, each sleeping ``latency``: wall and CPU time per call."""

    async def slow(platform: PlatformSpec) -> str:
        await anyio.sleep(latency)
        return "ok"

    breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=300)
    manager = PlatformManager(PRIORITIES, environ={})
    with_fallback = manager.with_fallback

    @tenacity.retry(stop=tenacity.stop_after_attempt(1), reraise=True)
    async def tenacity_once() -> str:
        return await slow(SPEC)

    @fallback(OP, manager=manager)
    async def decorated(platform: PlatformSpec) -> str:
        await anyio.sleep(latency)
        return "ok"

    async def bare() -> Any:
        return await slow(SPEC)

    async def pybreaker_calling() -> Any:
        with breaker.calling():
            return await slow(SPEC)

    async def failover_call() -> Any:
        return await with_fallback(OP, slow)

    timed: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare await": bare,
        "pybreaker calling()": pybreaker_calling,
        "tenacity @retry, 1 attempt": tenacity_once,
        "with_fallback, OTel API, no SDK": failover_call,
        "@fallback, OTel API, no SDK": decorated,
    }

    async def burst(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        async with anyio.create_task_group() as tasks:
            for _ in range(concurrency):
                tasks.start_soon(call)
        return (
            (time.perf_counter_ns() - wall) / concurrency,
            (time.process_time_ns() - cpu) / concurrency,
        )

    await burst(bare)  # warm up the loop's machinery
    wall: dict[str, list[float]] = {name: [] for name in timed}
    cpu: dict[str, list[float]] = {name: [] for name in timed}
    names = list(timed)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            wall_ns, cpu_ns = await burst(timed[name])
            wall[name].append(wall_ns)
            cpu[name].append(cpu_ns)
    return {
        "wall_ns_per_call": _spread_ns(wall),
        "cpu_ns_per_call": _spread_ns(cpu),
        "concurrency": concurrency,
        "latency_s": latency,
        "repeats": repeats,
    }


# -- outage blast radius ----------------------------------------------------------------------


class Outage:
    """A primary that answers, then errors, then hangs; a secondary that always answers.

    Times are seconds since ``start``. Every attempt that reaches the primary while it is
    down is counted, with the time it cost the caller (until the error, or until the caller's
    timeout cut the hang).
    """

    def __init__(self, latency: float, error_from: float, hang_from: float) -> None:
        self.latency = latency
        self.error_from = error_from
        self.hang_from = hang_from
        self.start = 0.0
        self.hits = {"errors": 0, "hangs": 0}
        self.lost = {"errors": 0.0, "hangs": 0.0}

    def phase(self) -> str:
        elapsed = time.monotonic() - self.start
        if elapsed < self.error_from:
            return "healthy"
        return "errors" if elapsed < self.hang_from else "hangs"

    async def __call__(self, platform: PlatformSpec) -> str:
        if platform.name != "primary":
            await anyio.sleep(self.latency)
            return "ok"
        phase = self.phase()
        if phase == "healthy":
            await anyio.sleep(self.latency)
            return "ok"
        self.hits[phase] += 1
        started = time.monotonic()
        try:
            if phase == "errors":
                await anyio.sleep(self.latency)
                raise Transient("503 Service Unavailable")
            await anyio.sleep(3600)
            return "ok"
        finally:
            self.lost[phase] += time.monotonic() - started


async def blast_radius(
    callers: int,
    latency: float,
    timeout: float,
    reset: float,
    phases: tuple[float, float, float],
    repeats: int,
) -> dict[str, Any]:
    """Outages per approach: dead-primary hits and the latency they cost the callers."""
    error_from, hang_from, end = phases
    specs = [PlatformSpec("primary", "p-1"), PlatformSpec("secondary", "s-1")]

    def naive(outage: Outage) -> AsyncCall:
        async def call() -> Any:
            for spec in specs:
                try:
                    with anyio.fail_after(timeout):
                        return await outage(spec)
                except Exception:
                    continue
            raise RuntimeError("every platform failed")

        return call

    def with_pybreaker(outage: Outage) -> AsyncCall:
        breakers = {
            spec.name: pybreaker.CircuitBreaker(fail_max=3, reset_timeout=reset) for spec in specs
        }

        async def call() -> Any:
            for spec in specs:
                try:
                    with breakers[spec.name].calling(), anyio.fail_after(timeout):
                        return await outage(spec)
                except Exception:
                    continue
            raise RuntimeError("every platform failed")

        return call

    def with_failover(outage: Outage) -> AsyncCall:
        manager = PlatformManager(
            {OP: [("primary", "p-1"), ("secondary", "s-1")]},
            environ={},
            failure_threshold=3,
            cache_ttl_seconds=reset,
            policy=Policy(attempt_timeout=timeout),
        )
        with_fallback = manager.with_fallback

        async def call() -> Any:
            return await with_fallback(OP, outage)

        return call

    approaches = {
        "failover": with_failover,
        "pybreaker per process": with_pybreaker,
        "naive loop, no breaker": naive,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in approaches}
    for _ in range(repeats):
        for name, build in approaches.items():
            outage = Outage(latency, error_from, hang_from)
            runs[name].append(await _one_outage(outage, build(outage), callers, end))
    results: dict[str, Any] = {
        name: {key: Spread.of([run[key] for run in found]) for key in found[0]}
        for name, found in runs.items()
    }
    return results


async def _one_outage(outage: Outage, call: AsyncCall, callers: int, end: float) -> dict[str, Any]:
    latencies: list[float] = []
    failed = 0

    async def caller() -> None:
        nonlocal failed
        while time.monotonic() - outage.start < end:
            started = time.monotonic()
            try:
                await call()
            except Exception:
                failed += 1
            if time.monotonic() - outage.start >= outage.error_from:
                latencies.append(time.monotonic() - started)

    outage.start = time.monotonic()
    async with anyio.create_task_group() as tasks:
        for _ in range(callers):
            tasks.start_soon(caller)
    ordered = sorted(latencies)
    return {
        "hits_on_errors": outage.hits["errors"],
        "hits_on_hangs": outage.hits["hangs"],
        "latency_lost_s": outage.lost["errors"] + outage.lost["hangs"],
        "calls_during_outage": len(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2] if ordered else math.nan,
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        if ordered
        else math.nan,
        "failed_calls": failed,
    }


# -- scale --------------------------------------------------------------------------------------


def _scale_priorities(platforms: int, operations: int) -> dict[str, list[tuple[str, str]]]:
    names = [(f"platform{index}", f"model{index}") for index in range(platforms)]
    return {f"operation{index}": names for index in range(operations)}


async def scale(
    platforms: int, operations: int, rounds: int, target_ms: float, fill: int
) -> dict[str, Any]:
    """Memory per pair (fresh, and with a full response-time ring) and ``get_platform`` cost."""
    pairs = platforms * operations
    priorities = _scale_priorities(platforms, operations)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = time.perf_counter()
        manager = PlatformManager(priorities, environ={})
        build_seconds = time.perf_counter() - built
        fresh = tracemalloc.get_traced_memory()[0] - before
        # Fill one operation's pairs' response-time rings (every success records a time).
        filled = "operation0"
        specs = manager.platforms(filled)
        grown_from = tracemalloc.get_traced_memory()[0]
        for spec in specs:
            for index in range(fill):
                # Distinct floats, as real response times are (equal ones could be shared).
                await manager.report_success(spec, filled, response_time=0.25 + index * 1e-6)
        growth = tracemalloc.get_traced_memory()[0] - grown_from
    finally:
        tracemalloc.stop()
    per_pair_fresh = fresh / pairs
    per_pair_full = per_pair_fresh + growth / len(specs)

    small = PlatformManager(PRIORITIES, environ={})
    names = [f"operation{index}" for index in range(operations)]
    cursor = 0

    async def get_platform_large() -> PlatformSpec:
        nonlocal cursor
        cursor = (cursor + 1) % operations
        return await manager.get_platform(names[cursor])

    async def get_platform_small() -> PlatformSpec:
        return await small.get_platform(OP)

    timed = {
        f"get_platform, {platforms} platforms x {operations} operations": get_platform_large,
        "get_platform, 3 platforms x 1 operation": get_platform_small,
    }
    sizes = await _sized(timed, target_ms)
    samples = await interleave(timed, rounds, sizes, CPU)
    return {
        "pairs": pairs,
        "build_seconds": build_seconds,
        "bytes_per_pair_fresh": per_pair_fresh,
        "bytes_per_pair_ring_full": per_pair_full,
        "ring_fill_calls": fill,
        "per_call_ns": _spread_ns(samples),
        "rounds": rounds,
    }


# -- import time --------------------------------------------------------------------------------

#: What the library core needs before any of its own code runs.
_DEPENDENCIES = "import anyio, pybreaker, tenacity, opentelemetry.trace, opentelemetry.metrics"
_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\S.*)$")


def _failover_cumulative_ms(stderr: str) -> float | None:
    for line in stderr.splitlines():
        match = _IMPORTTIME.search(line)
        if match and match.group(3).strip() == "failover":
            return int(match.group(2)) / 1000
    return None


def import_time(repeats: int) -> dict[str, Any]:
    """``python -X importtime -c 'import failover'``: cumulative time of ``failover``.

    Measured as an installed package imports: from cached bytecode. The interpreters run with
    bytecode writing on (``PYTHONDONTWRITEBYTECODE`` dropped) and a private cache directory
    (``PYTHONPYCACHEPREFIX``, so the source tree stays clean); the first run, which compiles
    failover's modules, is reported apart (``first_run_compiling_ms``).
    """
    cumulative_ms: list[float] = []
    process_ms: list[float] = []
    empty_ms: list[float] = []
    dependencies_ms: list[float] = []
    first_run_ms: float | None = None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="failover-bench-pycache-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        for repeat in range(repeats + 1):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import failover"],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            elapsed = time.perf_counter() - started
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
            empty = time.perf_counter() - started
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", _DEPENDENCIES], check=True, env=env)
            dependencies = time.perf_counter() - started
            measured = _failover_cumulative_ms(done.stderr)
            if repeat == 0:
                first_run_ms = measured  # compiles failover's modules into the cache
                continue
            if measured is not None:
                cumulative_ms.append(measured)
            process_ms.append(elapsed * 1000)
            empty_ms.append(empty * 1000)
            dependencies_ms.append(dependencies * 1000)
    return {
        "importtime_cumulative_ms": Spread.of(cumulative_ms),
        "first_run_compiling_ms": first_run_ms,
        "process_ms": Spread.of(process_ms),
        "empty_interpreter_ms": Spread.of(empty_ms),
        "dependencies_only_ms": Spread.of(dependencies_ms),
        "repeats": repeats,
    }


# -- where the time goes --------------------------------------------------------------------------


_REPOSITORY = str(Path(__file__).resolve().parent.parent) + "/"
_PYTHON = str(Path(sys.base_prefix).resolve())


async def profile_happy_path(calls: int, top: int) -> str:
    """cProfile of ``with_fallback`` (OTel API, no SDK): the top functions by own time."""
    manager = PlatformManager(PRIORITIES, environ={})
    with_fallback = manager.with_fallback
    for _ in range(100):
        await with_fallback(OP, operation)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await with_fallback(OP, operation)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(
        (index for index, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0
    )
    cleaned = [
        line.replace(_REPOSITORY, "").replace(_PYTHON, "<python>").rstrip()
        for line in lines[start:]
        if line.strip()
    ]
    return "\n".join(cleaned)


def median(values: list[float]) -> float:
    return statistics.median(values)
