"""The ``failover`` command end to end: ``demo``, ``fake-providers``, ``check-config``, help
and error output. Most tests run the real command in a subprocess; the in-process demo runs
on both anyio backends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import pytest

from failover.cli import build_parser, main
from failover.cli._demo.runner import NOBODY, DemoOptions, run_demo
from failover.cli._demo.scenarios import SCENARIOS, Phase, Scenario

GOOD_CONFIG = """
[failover]
cache_ttl_seconds = 60

[priorities]
image_editing = ["stability/sd-3.5-large", "replicate/flux", "fal/fal-3d"]
text_generation = ["groq/llama-3.3-70b-versatile", "local/llama"]

[platforms.fal]
api_key_env = "MY_FAL_KEY"
"""

BAD_CONFIG = """
colour = "blue"

[failover]
cache_ttl_seconds = -5
failure_threshold = "three"
retries = 2

[priorities]
image_editing = ["stability/sd-3.5-large", "replicate", "stability/other"]
text_generation = []

[operations.video_making]
deadline = 5

[platforms.stability]
estimated_cost = "cheap"

[platforms.nowhere]
api_key_env = "NOWHERE_KEY"
"""

# Each problem in BAD_CONFIG, as the report must name it.
BAD_CONFIG_PROBLEMS = (
    "unknown key colour",
    "failover.cache_ttl_seconds must be a number > 0, got -5",
    "failover.failure_threshold must be an integer, got 'three'",
    "unknown key failover.retries",
    "priorities.image_editing[1] must look like 'platform/model', got 'replicate'",
    "priorities.image_editing lists platform 'stability' twice",
    "priorities.text_generation must be a non-empty list",
    "[operations.video_making]: unknown operation type 'video_making'",
    "platforms.stability.estimated_cost must be a number, got 'cheap'",
    "[platforms.nowhere] names a platform that is in no priority list",
)

KEY_VARIABLES = (
    "STABILITY_API_KEY",
    "REPLICATE_API_TOKEN",
    "FAL_KEY",
    "MY_FAL_KEY",
    "GROQ_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no keys, no OTLP endpoint, no AI_* settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in KEY_VARIABLES and not name.startswith(("OTEL_", "AI_", "FAILOVER_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "failover.cli", *args],
        capture_output=True,
        text=True,
        env=clean_env() if env is None else env,
        timeout=timeout,
        check=False,
    )


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "ResourceWarning" not in stderr
    assert "Exception ignored" not in stderr


# -- demo, end to end ------------------------------------------------------------------------


def test_demo_json_adds_up() -> None:
    started = time.monotonic()
    completed = run_cli("demo", "--requests", "50", "--json")
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert_clean_stderr(completed.stderr)
    assert elapsed < 20, f"the demo took {elapsed:.1f}s for 50 requests"
    report = json.loads(completed.stdout)
    assert report["requests"] == 50
    assert report["succeeded"] + report["failed"] == 50
    assert sum(report["by_platform"].values()) == report["succeeded"]
    assert report["fell_back"] >= 1
    assert report["succeeded"] >= 45  # the default scenario keeps (nearly) everything answered
    # stability is out of credits from the first request: it never answers.
    assert "stability" not in report["by_platform"]
    health = report["health"]
    assert set(health) == {"stability", "replicate", "fal", "groq", "openai", "anthropic"}
    stability = health["stability"]
    assert stability["operations"]["image_editing"]["last_error_kind"] == "credit_exhausted"
    assert {"is_healthy", "failure_rate", "avg_response_time", "cost"} <= set(stability)
    served = sum(
        pair["total_requests"] - pair["failures"]
        for platform in health.values()
        for pair in platform["operations"].values()
    )
    assert served == report["succeeded"]
    # The story was told on stderr, one line per switch.
    assert re.search(
        r"image_editing: served by (replicate|fal)  \(stability: out of credits", completed.stderr
    )
    assert completed.stderr.count("served by") <= 2


def test_demo_plain_output_when_not_a_terminal() -> None:
    completed = run_cli("demo", "--requests", "40", "--rate", "0")
    assert completed.returncode == 0, completed.stderr
    assert_clean_stderr(completed.stderr)
    out = completed.stdout
    assert "scenario: stability is out of credits" in out
    assert re.search(r"image_editing: served by (replicate|fal)  \(stability: out of credits", out)
    assert "40/40 requests done" in out
    header = next(line for line in out.splitlines() if line.startswith("platform"))
    assert header.split() == [
        "platform",
        "operation",
        "state",
        "requests",
        "fail",
        "%",
        "avg",
        "ms",
        "p95",
        "ms",
        "cost",
        "$",
        "last",
        "error",
    ]
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["stability"]]
    assert rows
    assert rows[0][1] == "image_editing"
    assert rows[0][-1] == "credit_exhausted"
    assert "40 requests in" in out
    assert "\x1b[" not in out  # no colour codes in a pipe


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_bundled_scenario_runs(scenario: str) -> None:
    completed = run_cli(
        "demo", "--requests", "100", "--rate", "40", "--scenario", scenario, "--json"
    )
    assert completed.returncode == 0, completed.stderr
    assert_clean_stderr(completed.stderr)
    report = json.loads(completed.stdout)
    assert report["scenario"] == scenario
    assert report["succeeded"] + report["failed"] == 100
    assert sum(report["by_platform"].values()) == report["succeeded"]
    assert report["fell_back"] >= 1
    if scenario == "meltdown":
        assert report["failed"] >= 1
        assert "image_editing: " in completed.stderr
        assert "nobody: requests fail" in completed.stderr


def test_demo_runs_on_trio_too() -> None:
    completed = run_cli("demo", "--requests", "30", "--rate", "0", "--json", "--backend", "trio")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["succeeded"] + report["failed"] == 30


def test_demo_seed_makes_the_request_mix_reproducible() -> None:
    first = json.loads(run_cli("demo", "--requests", "16", "--rate", "0", "--json").stdout)
    second = json.loads(run_cli("demo", "--requests", "16", "--rate", "0", "--json").stdout)
    other = json.loads(
        run_cli("demo", "--requests", "16", "--rate", "0", "--json", "--seed", "5").stdout
    )

    def mix(report: dict[str, Any]) -> dict[str, int]:
        return {op: totals["requests"] for op, totals in report["by_operation"].items()}

    assert mix(first) == mix(second)
    assert mix(first) != mix(other)


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_demo_sends_traces_over_otlp(otlp_collector: tuple[str, list[tuple[str, bytes]]]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    endpoint, received = otlp_collector
    completed = run_cli("demo", "--requests", "20", "--rate", "0", "--json", "--otlp", endpoint)
    assert completed.returncode == 0, completed.stderr
    assert f"sending traces to {endpoint}" in completed.stderr
    spans = []
    services = set()
    for path, body in received:
        if path != "/v1/traces":
            continue
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                spans.extend(span.name for span in scope_spans.spans)
    assert services == {"failover-demo"}
    assert spans.count("failover image_editing") + spans.count("failover text_generation") == 20


def test_demo_otlp_from_the_environment(
    otlp_collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    endpoint, received = otlp_collector
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    completed = run_cli("demo", "--requests", "5", "--rate", "0", "--json", env=env)
    assert completed.returncode == 0, completed.stderr
    assert any(path == "/v1/traces" for path, _ in received)


# -- demo, in process ---------------------------------------------------------------------------


class Recorder:
    """A reporter that keeps everything it is told."""

    def __init__(self) -> None:
        self.server_url = ""
        self.phases: list[str] = []
        self.switches: list[tuple[str, str | None, str, str]] = []
        self.progress: list[int] = []

    def started(self, scenario: Scenario, options: DemoOptions, server_url: str) -> None:
        self.server_url = server_url

    def phase(self, elapsed: float, phase: Phase) -> None:
        self.phases.append(phase.note)

    def switch(self, elapsed: float, operation: str, old: str | None, new: str, why: str) -> None:
        self.switches.append((operation, old, new, why))

    def advanced(self, done: int, total: int) -> None:
        self.progress.append(done)


@pytest.mark.anyio
async def test_run_demo_in_process_and_clean_up() -> None:
    before = _task_count()
    recorder = Recorder()
    result = await run_demo(DemoOptions(requests=40, rate=0, seed=3), recorder)
    assert _task_count() == before
    assert result.succeeded + result.failed == 40
    assert sum(result.by_platform.values()) == result.succeeded
    assert recorder.progress == list(range(1, 41))
    assert recorder.phases == [phase.note for phase in SCENARIOS["default"].phases]
    # replicate (flaky) or fal serves first, depending on how soon replicate's breaker opens.
    first_image = next(s for s in recorder.switches if s[0] == "image_editing")
    assert first_image[1] is None
    assert first_image[2] in ("replicate", "fal")
    assert first_image[3].startswith("stability: out of credits")
    assert all(new != NOBODY for _, _, new, _ in recorder.switches)
    # The fake server is gone: its port refuses connections.
    port = int(recorder.server_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


@pytest.mark.anyio
async def test_real_keys_in_the_environment_are_never_sent() -> None:
    """The demo replaces every key variable with a placeholder, even a real-looking one."""
    recorder = Recorder()
    environ = {"OPENAI_API_KEY": "sk-real-looking-key-that-must-stay-home"}
    result = await run_demo(DemoOptions(requests=10, rate=0), recorder, base_environ=environ)
    assert "sk-real-looking" not in json.dumps(result.to_json())


def test_demo_log_sink_scrubs_records_of_child_loggers() -> None:
    """A child logger's record reaches the demo's sink without its parent's filter."""
    import logging

    from failover.cli.demo import _library_logs

    lines: list[str] = []
    child = logging.getLogger("failover.tests.unfiltered_child")
    with _library_logs(lines.append):
        child.warning("provider said: Incorrect API key provided: sk-abcdef123456789")
    assert lines == [
        "failover.tests.unfiltered_child: provider said: Incorrect API key provided: [REDACTED]"
    ]


def _task_count() -> int:
    """Tasks alive in the current event loop (asyncio or trio)."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(
                count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
            )

        return count(trio.lowlevel.current_root_task())
    import asyncio

    return len(asyncio.all_tasks())


def test_demo_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        DemoOptions(scenario="nope")
    with pytest.raises(ValueError, match="--requests must be an integer >= 1"):
        DemoOptions(requests=0)
    with pytest.raises(ValueError, match="--rate must be a number >= 0"):
        DemoOptions(rate=-1)


# -- help and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["demo"], ["fake-providers"], ["check-config"]])
def test_help_of_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: failover {' '.join(command)}".rstrip())
    assert "--debug" in out


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "fake-providers", "check-config"):
        assert command in out
    demo_help = build_parser().parse_args(["demo"])
    assert demo_help.requests == 200
    assert demo_help.scenario == "default"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("failover")
    completed = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, check=False, timeout=30
    )
    assert completed.returncode == 0
    assert "demo" in completed.stdout


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: failover" in capsys.readouterr().err


def test_an_error_is_one_line_without_traceback() -> None:
    completed = run_cli("demo", "--scenario", "nope")
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert lines == [
        "failover: error: unknown scenario 'nope'; choose from default, outage, meltdown"
    ]


def test_debug_shows_the_traceback() -> None:
    completed = run_cli("demo", "--scenario", "nope", "--debug")
    assert completed.returncode == 1
    assert "Traceback" in completed.stderr
    assert "ConfigError" in completed.stderr


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--requests", "0"])
    assert exited.value.code == 2
    assert "--requests: must be at least 1, got 0" in capsys.readouterr().err


# -- fake-providers -------------------------------------------------------------------------------


def test_fake_providers_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "fake-providers",
            "--port",
            "0",
            "--behaviour",
            "stability=out_of_credits",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("fake providers listening on http://127.0.0.1:")
        url = first.split()[-1]
        for _ in range(10):  # one line per platform, then the admin line
            process.stdout.readline()
        with httpx.Client(base_url=url, timeout=10) as client:
            info = client.get("/_admin/info").json()
            assert info["url"] == url
            response = client.post(
                "/stability/v2beta/stable-image/edit/inpaint", files={"image": ("i.png", b"x")}
            )
            assert response.status_code == 402
            assert response.json()["name"] == "payment_required"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "fake providers stopped" in out
    assert_clean_stderr(err)


def test_fake_providers_rejects_a_bad_behaviour() -> None:
    completed = run_cli("fake-providers", "--port", "0", "--behaviour", "stability=sleepy")
    assert completed.returncode == 2
    assert completed.stderr.startswith("failover: error: --behaviour stability: unknown behaviour")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_fake_providers_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = run_cli("fake-providers", "--port", str(port))
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"failover: error: cannot listen on 127.0.0.1:{port}")
    assert_clean_stderr(completed.stderr)


# -- check-config ---------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    def write(text: str) -> str:
        path = tmp_path / "failover.toml"
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("AI_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_check_config_good_file(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_keys.setenv("STABILITY_API_KEY", "k1")
    no_keys.setenv("MY_FAL_KEY", "k2")
    path = config_file(GOOD_CONFIG)
    assert main(["check-config", path]) == 0
    out = capsys.readouterr().out
    assert f"{path}: OK" in out
    assert "image_editing  (2 of 3 usable)" in out
    assert "1. stability/sd-3.5-large  usable   (STABILITY_API_KEY)" in out
    assert "2. replicate/flux          skipped: missing API key (set REPLICATE_API_TOKEN)" in out
    assert "3. fal/fal-3d              usable   (MY_FAL_KEY)" in out
    assert "skipped: missing API key (set GROQ_API_KEY)" in out
    assert "local/llama                   usable   (no key needed)" in out
    assert "platform 'local' is not one failover knows" in out
    assert "k1" not in out
    assert "k2" not in out


def test_check_config_json(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_keys.setenv("STABILITY_API_KEY", "k1")
    assert main(["check-config", "--json", config_file(GOOD_CONFIG)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["problems"] == []
    image = report["operations"]["image_editing"]
    assert [entry["platform"] for entry in image] == ["stability", "replicate", "fal"]
    assert [entry["usable"] for entry in image] == [True, False, False]
    assert image[2]["skip_reason"] == "missing_api_key"
    assert image[2]["api_key_env"] == "MY_FAL_KEY"
    assert report["settings"] == {"cache_ttl_seconds": 60.0}


def test_check_config_names_every_problem(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(BAD_CONFIG)
    assert main(["check-config", path]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{path}: {len(BAD_CONFIG_PROBLEMS)} problems"
    for problem in BAD_CONFIG_PROBLEMS:
        assert problem in out
    assert "Traceback" not in out


def test_check_config_bad_file_in_a_subprocess(config_file: Any) -> None:
    completed = run_cli("check-config", "--json", config_file(BAD_CONFIG))
    assert completed.returncode == 1
    assert_clean_stderr(completed.stderr)
    report = json.loads(completed.stdout)
    assert report["ok"] is False
    assert len(report["problems"]) == len(BAD_CONFIG_PROBLEMS)
    for problem in BAD_CONFIG_PROBLEMS:
        assert any(problem in line for line in report["problems"]), problem


def test_check_config_operation_without_usable_platform(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file('[priorities]\nimage_editing = ["stability/sd", "replicate/flux"]\n')
    assert main(["check-config", path]) == 1
    out = capsys.readouterr().out
    assert (
        "image_editing: no usable platform (stability: missing API key (set STABILITY_API_KEY), "
        "replicate: missing API key (set REPLICATE_API_TOKEN))"
    ) in out


def test_check_config_bad_environment_setting(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_keys.setenv("AI_CACHE_TTL_SECONDS", "soon")
    no_keys.setenv("AI_FALLBACK_ENABLED", "maybe")
    no_keys.setenv("STABILITY_API_KEY", "k")
    path = config_file('[priorities]\nimage_editing = ["stability/sd"]\n')
    assert main(["check-config", path]) == 1
    out = capsys.readouterr().out
    assert "AI_CACHE_TTL_SECONDS: expected a number of seconds" in out
    assert "AI_FALLBACK_ENABLED: expected true or false" in out


def test_check_config_typo_in_operation_is_a_warning_and_strict_fails(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file('[priorities]\nimage_edting = ["pollinations/free"]\n')
    assert main(["check-config", path]) == 0
    assert "'image_edting' is not a built-in operation type (did you mean 'image_editing'?)" in (
        capsys.readouterr().out
    )
    assert main(["check-config", "--strict", path]) == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "config file not found"), ("x = [", "not valid TOML")],
)
def test_check_config_unreadable_file(
    config_file: Any, tmp_path: Path, content: str | None, problem: str
) -> None:
    path = str(tmp_path / "missing.toml") if content is None else config_file(content)
    completed = run_cli("check-config", path)
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0] == f"{path}: 1 problem"
    assert lines[1].startswith(f"  - {path}: {problem}")
    assert_clean_stderr(completed.stderr)


def test_the_demo_config_is_valid(
    no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib.resources import as_file, files

    for name in KEY_VARIABLES:
        no_keys.setenv(name, "placeholder")
    with as_file(files("failover.cli._demo").joinpath("demo.toml")) as path:
        assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "image_editing  (3 of 3 usable)" in out
    assert "text_generation  (3 of 3 usable)" in out


def test_check_config_suggests_the_closest_key_and_platform_one_line_each(
    config_file: Any, no_keys: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file("[failover]\ncache_ttl = 300\nfailure_treshold = 2\n")
    assert main(["check-config", path]) == 1
    out = capsys.readouterr().out
    assert "unknown key failover.cache_ttl; did you mean cache_ttl_seconds?" in out
    assert "unknown key failover.failure_treshold; did you mean failure_threshold?" in out
    assert "allowed in [failover]" not in out  # a typo gets its fix, not the whole list
    assert out.count("did you mean cache_ttl_seconds") == 1

    path = config_file('[priorities]\ntext_generation = ["opneai/gpt-4o-mini"]\n')
    assert main(["check-config", path]) == 0
    assert "platform 'opneai' is not one failover knows (did you mean 'openai'?)" in (
        capsys.readouterr().out
    )
