"""Secrets canary for the demo (the soak's canary check lives in ``tests/soak.py``).

Every API-key variable of every known platform holds a canary value. The ``failover demo``
command runs as a subprocess (``--json -v``: the result and failover's own log lines) and in
process (DEBUG logging captured, the health JSON, the report printed): the canary appears in
none of it. ``tests/test_telemetry_secrets.py`` does the same for errors that echo keys back;
``tests/test_soak.py`` for the chaos soak.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from failover import KNOWN_PLATFORMS
from failover.cli._demo.report import PlainReporter
from failover.cli._demo.runner import DemoOptions, run_demo

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
