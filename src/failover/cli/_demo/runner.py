"""Run the demo: fake providers, a manager from the bundled config, a burst of requests.

:func:`run_demo` is what ``failover demo`` runs; it reports what happens to a
:class:`Reporter` (progress, scenario phases, platform switches) and returns a
:class:`DemoResult`. It needs the ``http`` extra (httpx, h11).
"""

from __future__ import annotations

import importlib.resources
import math
import random
import ssl
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import anyio
import anyio.to_thread
import httpx

from failover._config.load import settings_from_toml
from failover._core import validate
from failover._core.errors import AllPlatformsFailed, ConfigError
from failover._core.spec import IMAGE_EDITING, TEXT_GENERATION, PlatformSpec
from failover._manager import PlatformManager
from failover.cli._demo.clients import DemoClients, sample_image
from failover.cli._demo.scenarios import SCENARIOS, Phase, Scenario
from failover.http import ImageEditing, Polling
from failover.testing.fake import FakeProviderServer

CONFIG_RESOURCE: Final = "demo.toml"
#: What :class:`SwitchTracker` reports as the serving platform while requests fail.
NOBODY: Final = "nobody"
#: The demo's requests: each picks one of these operations at random (seeded).
OPERATIONS: Final = (IMAGE_EDITING, TEXT_GENERATION)
_PROMPTS: Final = (
    "Remove the coffee cup from the table",
    "Summarise this support ticket in one sentence",
    "Replace the sky with a sunset",
    "Write a friendly reply to a delayed-order complaint",
)
# Readable words for the reasons a platform is skipped (failover's skip reasons).
_SKIP_WORDS: Final = {
    "credit": "out of credits",
    "auth": "API key refused",
    "rate_limited": "rate limited",
    "open": "breaker open",
    "missing_api_key": "no API key",
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``failover demo`` was asked to do."""

    requests: int = 200
    concurrency: int = 8
    scenario: str = "default"
    seed: int = 0
    #: Requests sent per second (like real traffic arriving); 0 sends as fast as
    #: ``concurrency`` allows.
    rate: float = 20.0

    def __post_init__(self) -> None:
        for name in ("requests", "concurrency"):
            validate.integer(name, getattr(self, name), at_least=1, label=f"--{name}")
        validate.number("rate", self.rate, at_least=0, label="--rate")
        if self.scenario not in SCENARIOS:
            raise ConfigError(
                f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}",
                key="scenario",
            )


class Reporter(Protocol):
    """Where the demo tells what happens, as it happens."""

    def started(self, scenario: Scenario, options: DemoOptions, server_url: str) -> None: ...

    def phase(self, elapsed: float, phase: Phase) -> None: ...

    def switch(self, elapsed: float, operation: str, old: str | None, new: str, why: str) -> None:
        """``operation`` is now served by ``new`` (:data:`NOBODY`: its requests fail);
        ``old`` is ``None`` for the operation's first request."""

    def advanced(self, done: int, total: int) -> None: ...


@dataclass(slots=True)
class OperationTotals:
    """Outcomes of one operation's requests."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    fell_back: int = 0


@dataclass(slots=True)
class DemoResult:
    """The numbers of one demo run; :meth:`to_json` is what ``--json`` prints."""

    scenario: str
    seed: int
    requests: int
    concurrency: int
    rate: float
    elapsed: float = 0.0
    succeeded: int = 0
    failed: int = 0
    fell_back: int = 0
    by_platform: Counter[str] = field(default_factory=Counter)
    by_operation: dict[str, OperationTotals] = field(default_factory=dict)
    priorities: dict[str, list[str]] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    switches: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "elapsed_seconds": round(self.elapsed, 3),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "fell_back": self.fell_back,
            "switches": self.switches,
            "by_platform": dict(sorted(self.by_platform.items())),
            "by_operation": {
                operation: {
                    "requests": totals.requests,
                    "succeeded": totals.succeeded,
                    "failed": totals.failed,
                    "fell_back": totals.fell_back,
                }
                for operation, totals in self.by_operation.items()
            },
            "priorities": self.priorities,
            "health": self.health,
        }


def demo_manager_settings() -> dict[str, Any]:
    """The manager keyword arguments in the bundled ``demo.toml``."""
    resource = importlib.resources.files("failover.cli._demo").joinpath(CONFIG_RESOURCE)
    source = f"failover/cli/_demo/{CONFIG_RESOURCE}"
    return settings_from_toml(tomllib.loads(resource.read_text("utf-8")), source)


def demo_environ(settings: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with a placeholder key for every platform of ``settings``.

    The placeholders replace any real key in ``base``: the demo only ever talks to the local
    fake server, and must not send a real key even there.
    """
    environ = dict(base)
    for specs in settings["priorities"].values():
        for spec in specs:
            if spec.api_key_env:
                environ[spec.api_key_env] = f"demo-placeholder-{spec.name}-key"
    return environ


async def run_demo(
    options: DemoOptions,
    reporter: Reporter,
    *,
    base_environ: Mapping[str, str] | None = None,
    watch: Callable[[PlatformManager], AbstractAsyncContextManager[object]] | None = None,
) -> DemoResult:
    """Start the fake providers, play ``options.scenario`` against them, return the numbers.

    ``watch(manager)`` (the dashboard) is entered before the first request and left after
    the last.
    """
    settings = demo_manager_settings()
    environ = demo_environ(settings, {} if base_environ is None else base_environ)
    scenario = SCENARIOS[options.scenario]
    result = DemoResult(
        options.scenario, options.seed, options.requests, options.concurrency, options.rate
    )
    limits = httpx.Limits(max_connections=options.concurrency * 2, max_keepalive_connections=None)
    # Loading the CA bundle takes a few hundred milliseconds: not on the event loop.
    tls = await anyio.to_thread.run_sync(ssl.create_default_context)
    async with (
        FakeProviderServer(seed=options.seed) as server,
        httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits, verify=tls) as http_client,
        PlatformManager(**settings, environ=environ) as manager,
    ):
        reporter.started(scenario, options, server.url)
        base_urls = {name: server.base_url(name) for name in _platform_names(manager)}
        clients = DemoClients(http_client, base_urls, lambda env: environ.get(env or "", ""))
        editor = ImageEditing(
            manager,
            base_urls={
                spec.name: server.adapter_base_url(spec.name)
                for spec in manager.platforms(IMAGE_EDITING)
            },
            polling=Polling(interval=0.05, max_interval=0.5),
            environ=environ,
        )
        run = _Run(manager, clients, editor, server, scenario, options, reporter, result)
        async with nullcontext() if watch is None else watch(manager):
            await run.play()
        result.health = manager.get_health_status()
        result.priorities = {
            operation: [spec.name for spec in manager.platforms(operation)]
            for operation in manager.operations
        }
    return result


def _platform_names(manager: PlatformManager) -> list[str]:
    names: dict[str, None] = {}
    for operation in manager.operations:
        for spec in manager.platforms(operation):
            names[spec.name] = None
    return list(names)


class _Run:
    """One demo run's moving parts and counters."""

    def __init__(
        self,
        manager: PlatformManager,
        clients: DemoClients,
        editor: ImageEditing,
        server: FakeProviderServer,
        scenario: Scenario,
        options: DemoOptions,
        reporter: Reporter,
        result: DemoResult,
    ) -> None:
        self.manager = manager
        self.clients = clients
        self.editor = editor
        self.server = server
        self.scenario = scenario
        self.options = options
        self.reporter = reporter
        self.result = result
        self.switches = SwitchTracker(manager, reporter)
        self.first_choice = {op: manager.platforms(op)[0].name for op in manager.operations}
        self.done = 0
        self.started = 0.0

    async def play(self) -> None:
        options = self.options
        total = options.requests
        rng = random.Random(options.seed)
        image = sample_image()
        limiter = anyio.CapacityLimiter(options.concurrency)
        phases = list(self.scenario.phases)
        self.started = self.switches.started = time.perf_counter()
        first_send = anyio.current_time()
        async with anyio.create_task_group() as task_group:
            for index in range(total):
                if options.rate:
                    await anyio.sleep_until(first_send + index / options.rate)
                await limiter.acquire_on_behalf_of(index)
                while phases and phases[0].at * total <= index:
                    self._apply(phases.pop(0))
                operation = rng.choice(OPERATIONS)
                prompt = rng.choice(_PROMPTS)
                task_group.start_soon(self._one, index, operation, prompt, image, limiter)
        for phase in phases:  # phases at 100%: nothing left to show them on
            self._apply(phase)
        self.result.elapsed = time.perf_counter() - self.started
        self.result.switches = self.switches.count

    def _apply(self, phase: Phase) -> None:
        for platform, behaviour in phase.behaviours.items():
            self.server.set_behaviour(platform, behaviour)
        self.reporter.phase(time.perf_counter() - self.started, phase)

    async def _one(
        self,
        index: int,
        operation: str,
        prompt: str,
        image: bytes,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        result = self.result
        totals = result.by_operation.setdefault(operation, OperationTotals())
        totals.requests += 1
        try:
            try:
                if operation == IMAGE_EDITING:
                    _, spec = await self.manager.with_fallback(
                        operation, self.editor, image, image, prompt
                    )
                else:
                    _, spec = await self.manager.with_fallback(
                        operation, self.clients.generate_text, prompt
                    )
            except AllPlatformsFailed as exc:
                result.failed += 1
                totals.failed += 1
                self.switches.failed(operation, exc)
            else:
                result.succeeded += 1
                totals.succeeded += 1
                result.by_platform[spec.name] += 1
                if spec.name != self.first_choice[operation]:
                    result.fell_back += 1
                    totals.fell_back += 1
                await self.switches.served(operation, spec)
        finally:
            limiter.release_on_behalf_of(index)
            self.done += 1
            self.reporter.advanced(self.done, self.options.requests)


class SwitchTracker:
    """Notices when the platform serving an operation changes, and says why.

    A request that falls back because of one failed attempt is no switch: the switch happens
    when the manager itself routes the operation elsewhere (a breaker opened, a platform cools
    down, a recovered one is back), which is checked when a request is served.
    """

    def __init__(self, manager: PlatformManager, reporter: Reporter) -> None:
        self.manager = manager
        self.reporter = reporter
        self.current: dict[str, str] = {}
        self.started = time.perf_counter()
        self.count = 0

    async def served(self, operation: str, spec: PlatformSpec) -> None:
        if self.current.get(operation) == spec.name:
            return
        try:
            routed = await self.manager.get_platform(operation)
        except AllPlatformsFailed:
            return
        if routed.name != spec.name:
            return
        old = self.current.get(operation)
        self.current[operation] = spec.name
        self._report(operation, old, spec.name, self._why(operation, spec.name, old))

    def failed(self, operation: str, exc: AllPlatformsFailed) -> None:
        if self.current.get(operation) == NOBODY:
            return
        old = self.current.get(operation)
        self.current[operation] = NOBODY
        why = ", ".join(_describe_attempt(attempt) for attempt in exc.attempts)
        self._report(operation, old, NOBODY, why or (exc.reason or "no platform usable"))

    def _report(self, operation: str, old: str | None, new: str, why: str) -> None:
        self.count += 1
        self.reporter.switch(time.perf_counter() - self.started, operation, old, new, why)

    def _why(self, operation: str, new: str, old: str | None) -> str:
        names = [spec.name for spec in self.manager.platforms(operation)]
        health = self.manager.get_health_status()
        reasons = []
        if old is not None and old in names and names.index(new) < names.index(old):
            reasons.append(f"{new} is healthy again")
        for name in names[: names.index(new)]:
            detail = health[name]["operations"][operation]
            reasons.append(f"{name}: {_describe_skip(health[name], detail)}")
        return "; ".join(reasons)


def _describe_skip(platform: Mapping[str, Any], pair: Mapping[str, Any]) -> str:
    reason = pair.get("skip_reason")
    words = _SKIP_WORDS.get(reason or "", reason or "failing")
    until = pair.get("open_until") if reason == "open" else None
    if reason in ("credit", "auth"):
        until = platform.get("cooldown_until")
    elif reason == "rate_limited":
        until = pair.get("cooldown_until")
    if reason == "open":
        words += f" after {pair.get('consecutive_failures') or 'repeated'} failures"
    seconds = _seconds_until(until)
    if seconds is not None:
        words += f", skipped for {seconds:.0f}s"
    return words


def _seconds_until(iso: object) -> float | None:
    if not isinstance(iso, str):
        return None
    remaining = (datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds()
    return max(math.ceil(remaining * 10) / 10, 0.0)


def _describe_attempt(attempt: Any) -> str:
    if attempt.outcome == "skipped":
        return f"{attempt.platform}: {_SKIP_WORDS.get(attempt.skip_reason, attempt.skip_reason)}"
    kind = attempt.error_kind.value if attempt.error_kind is not None else attempt.outcome
    status = f" {attempt.status_code}" if attempt.status_code else ""
    return f"{attempt.platform}: {kind.replace('_', ' ')}{status}"
