"""Secrets canary for the demo and for discovery (the soak's canary check lives in
``tests/soak.py``).

Every API-key variable of every known platform holds a canary value. The ``failover demo``
command runs as a subprocess (``--json -v``: the result and failover's own log lines) and in
process (DEBUG logging captured, the health JSON, the report printed): the canary appears in
none of it. ``failover check-config --online`` runs as a subprocess against fake providers
that refuse every key (echoing it back, as OpenAI does), and ``check_platforms`` in process:
the canary is in no line, JSON, result, log record or exception text.
``tests/test_telemetry_secrets.py`` does the same for errors that echo keys back;
``tests/test_soak.py`` for the chaos soak.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import subprocess
import sys

import pytest
from anyio.from_thread import start_blocking_portal

from failover import KNOWN_PLATFORMS, PlatformManager
from failover.cli._demo.report import PlainReporter
from failover.cli._demo.runner import DemoOptions, run_demo
from failover.http import KeyStatus, ModelStatus, check_platforms
from failover.testing import Behaviour, FakeProviderServer
from failover.testing.fake import ALL_PLATFORMS

ENV_NAMES = sorted({p.api_key_env for p in KNOWN_PLATFORMS.values() if p.api_key_env})


def canaries() -> dict[str, str]:
    values = {
        name: f"Qx{index}DemoCanary{name.title().replace('_', '')}k7"
        for index, name in enumerate(ENV_NAMES)
    }
    values["OPENAI_API_KEY"] = "sk-proj-DemoCanaryOpenAi0123456789abcdef"
    return values


def leaks(text: str, keys: dict[str, str]) -> list[str]:
    return [name for name, value in keys.items() if value in text or value[4:-4] in text]


@pytest.mark.parametrize("scenario", ["default", "meltdown"])
def test_the_demo_command_prints_no_key(scenario: str) -> None:
    keys = canaries()
    environment = {**os.environ, **keys, "PYTHONWARNINGS": "error::ResourceWarning"}
    environment.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "demo",
            "--requests",
            "50",
            "--rate",
            "0",
            "--json",
            "-v",
            "--scenario",
            scenario,
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["requests"] == 50
    assert done.stderr.strip(), "the -v commentary is really there"
    assert leaks(done.stdout + done.stderr, keys) == []


@pytest.mark.anyio
async def test_the_demo_in_process_with_debug_logs_shows_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process: every log record at DEBUG, the printed report, the result and health JSON.

    (Spans with canary keys are searched by the soak, which exports them to memory; the
    demo installs no tracer of its own unless ``--otlp`` is given.)
    """
    keys = canaries()
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    reporter = PlainReporter(out, progress=False)
    options = DemoOptions(requests=50, rate=0, seed=5, scenario="meltdown")
    with reporter:
        result = await run_demo(options, reporter, base_environ=keys)
        reporter.finished(result)
    everything = "\n".join([out.getvalue(), caplog.text, json.dumps(result.to_json())])
    assert result.succeeded + result.failed == 50
    assert len(caplog.records) > 50
    assert "health" in result.to_json()
    assert leaks(everything, keys) == []


# -- discovery: check-config --online and check_platforms ----------------------------------------


def discovery_canaries() -> dict[str, str]:
    return {**canaries(), "HF_TOKEN": "hf_DemoCanaryHuggingFace0123456789"}


def fake_base_urls(server: FakeProviderServer) -> dict[str, str]:
    urls = {name: server.adapter_base_url(name) for name in ALL_PLATFORMS}
    urls["google"] = f"{server.url}/google/v1beta/openai"
    return urls


def test_check_config_online_prints_no_key(tmp_path: pathlib.Path) -> None:
    keys = discovery_canaries()
    config = tmp_path / "failover.toml"
    config.write_text("[failover]\ncache_ttl_seconds = 60\n")  # the built-in table: every platform
    environment = {**os.environ, **keys, "PYTHONWARNINGS": "error::ResourceWarning"}
    with start_blocking_portal() as portal:
        cm = portal.wrap_async_context_manager(FakeProviderServer(seed=2))
        server = cm.__enter__()
        try:
            portal.call(server.set_behaviour, "*", Behaviour.bad_key())
            options = [f"--base-url={name}={url}" for name, url in fake_base_urls(server).items()]
            outputs = []
            command = [sys.executable, "-m", "failover.cli", "check-config", str(config)]
            for extra in ([], ["--json"]):
                done = subprocess.run(
                    [*command, "--online", *options, *extra],
                    capture_output=True,
                    text=True,
                    env=environment,
                    timeout=120,
                    check=False,
                )
                assert done.returncode == 1, done.stderr[-2000:]
                outputs.append(done.stdout + done.stderr)
            assert portal.call(server.stats)["openai"]["auth"] >= 1  # keys really were refused
        finally:
            cm.__exit__(None, None, None)
    assert "key rejected" in outputs[0]
    assert '"key": "rejected"' in outputs[1]
    assert leaks("\n".join(outputs), keys) == []


@pytest.mark.anyio
async def test_check_platforms_results_and_logs_show_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys = discovery_canaries()
    caplog.set_level(logging.DEBUG)
    async with FakeProviderServer(seed=3) as server:
        server.set_behaviour("*", Behaviour.bad_key())
        manager = PlatformManager(environ=keys)  # the built-in table
        results = await check_platforms(manager, base_urls=fake_base_urls(server), environ=keys)
        server.set_behaviour("*", Behaviour.healthy())
        server.set_models("*", ["nothing-you-have"])
        missing = await check_platforms(manager, base_urls=fake_base_urls(server), environ=keys)
        await manager.aclose()
    assert any(result.key is KeyStatus.REJECTED for result in results)
    assert any(result.model_status is ModelStatus.MISSING for result in missing)
    everything = "\n".join(
        [caplog.text]
        + [repr(result) + result.summary() + json.dumps(result.to_json()) for result in results]
        + [repr(result) + result.summary() for result in missing]
    )
    assert leaks(everything, keys) == []
