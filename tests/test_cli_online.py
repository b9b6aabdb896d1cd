"""``failover check-config --online``: the real command, in a subprocess, against a fake
provider server running in this process (on loopback); and that without ``--online`` nothing
is sent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from failover.cli import main
from failover.testing import Behaviour, FakeProviderServer

CONFIG = """
[priorities]
text_generation = [
    "groq/llama-3.3-70b-versatile",
    "openai/gpt-4o-mini",
    "anthropic/claude-9",
    "google/gemini-2.5-flash-lite",
]
image_editing = ["stability/sd-3.5-large", "replicate/flux", "fal/fal-3d"]
image_generation = ["pollinations/free"]
"""

KEYS = {
    "GROQ_API_KEY": "gsk_online0123456789abcdefGROQ",
    "OPENAI_API_KEY": "sk-proj-online0123456789abcdefOPENAI",
    "ANTHROPIC_API_KEY": "sk-ant-online0123456789abcdefANTH",
    "GOOGLE_API_KEY": "AIzaOnline0123456789abcdefGOOGLE",
    "STABILITY_API_KEY": "sk-online0123456789abcdefSTAB",
    "FAL_KEY": "fal-online0123456789abcdefFAL",
}


@pytest.fixture
def served() -> Iterator[tuple[BlockingPortal, FakeProviderServer]]:
    """A fake provider server in its own thread, for a subprocess to reach."""
    with start_blocking_portal() as portal:
        cm = portal.wrap_async_context_manager(FakeProviderServer(seed=11))
        server = cm.__enter__()
        try:
            yield portal, server
        finally:
            cm.__exit__(None, None, None)


def base_url_options(server: FakeProviderServer) -> list[str]:
    options = []
    for name in ("groq", "openai", "anthropic", "stability", "replicate", "fal", "pollinations"):
        options += ["--base-url", f"{name}={server.adapter_base_url(name)}"]
    return [*options, "--base-url", f"google={server.url}/google/v1beta/openai"]


def environment(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_API_TOKEN", "_KEY", "HF_TOKEN"))
        and not name.startswith(("AI_", "OTEL_", "FAILOVER_"))
    }
    return {**env, **KEYS, "PYTHONUNBUFFERED": "1", **extra}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "failover.cli", "check-config", *args],
        capture_output=True,
        text=True,
        env=environment() if env is None else env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "failover.toml"
    path.write_text(CONFIG)
    return str(path)


def lines_of(out: str) -> dict[str, str]:
    """The online section's lines, by ``platform/model``."""
    section = out.split("\nonline (", 1)[1].splitlines()[1:]
    return {line.split()[0]: line for line in section if line.startswith("  ")}


def assert_no_key(text: str) -> None:
    for value in KEYS.values():
        assert value not in text
        assert value[4:-4] not in text


def test_online_reports_a_bad_key_and_a_missing_model(
    served: tuple[BlockingPortal, FakeProviderServer], config: str
) -> None:
    portal, server = served
    portal.call(server.set_behaviour, "openai", Behaviour.bad_key())
    portal.call(server.set_models, "anthropic", ["claude-3-5-haiku-latest"])
    done = run(config, "--online", *base_url_options(server))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{config}: OK" in done.stdout  # the offline report is unchanged, and comes first
    lines = lines_of(done.stdout)
    assert lines["openai/gpt-4o-mini"].split()[1] == "FAILED"
    assert "key rejected: HTTP 401" in lines["openai/gpt-4o-mini"]
    assert "invalid_api_key" in lines["openai/gpt-4o-mini"]
    assert lines["anthropic/claude-9"].split()[1] == "FAILED"
    assert (
        "key accepted, model missing: claude-9: HTTP 404 not_found_error"
        in (lines["anthropic/claude-9"])
    )
    assert " ok " in lines["groq/llama-3.3-70b-versatile"]
    assert "key accepted, model found" in lines["groq/llama-3.3-70b-versatile"]
    assert "key accepted, model found" in lines["google/gemini-2.5-flash-lite"]
    assert "key accepted, model not checked" in lines["stability/sd-3.5-large"]
    assert "no key needed, model found" in lines["pollinations/free"]
    assert "not checked" in lines["replicate/flux"]
    assert "REPLICATE_API_TOKEN is empty" in lines["replicate/flux"]
    assert "FAL has no read-only request" in lines["fal/fal-3d"]
    assert done.stdout.rstrip().splitlines()[-1] == (
        "online: 2 of 8 need a fix (openai/gpt-4o-mini: key rejected; "
        "anthropic/claude-9: model missing)"
    )
    assert_no_key(done.stdout + done.stderr)
    stats = portal.call(server.stats)
    assert stats["openai"] == {"total": 1, "auth": 1}
    assert stats["anthropic"] == {"total": 1, "model_not_found": 1}
    assert stats["replicate"]["total"] == 0  # its key is not set: nothing was sent
    assert stats["fal"]["total"] == 0  # FAL has no check: nothing was sent


def test_online_json_carries_every_result(
    served: tuple[BlockingPortal, FakeProviderServer], config: str
) -> None:
    portal, server = served
    portal.call(server.set_behaviour, "groq", Behaviour.bad_key())
    done = run(config, "--online", "--json", *base_url_options(server))
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["problems"] == []  # the file itself is fine
    online = {f"{entry['platform']}/{entry['model']}": entry for entry in report["online"]}
    assert online["groq/llama-3.3-70b-versatile"]["status"] == "failed"
    assert online["groq/llama-3.3-70b-versatile"]["key"] == "rejected"
    assert online["openai/gpt-4o-mini"] == {
        "platform": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        "ok": True,
        "key": "accepted",
        "model_status": "found",
        "problem": None,
        "detail": "",
    }
    assert online["replicate/flux"]["key"] == "not_set"
    assert_no_key(done.stdout + done.stderr)


def test_online_exits_0_when_every_key_and_model_is_good(
    served: tuple[BlockingPortal, FakeProviderServer], config: str
) -> None:
    _, server = served
    done = run(config, "--online", *base_url_options(server))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == (
        "online: no key rejected, no model missing (8 checked)"
    )


def test_an_unreachable_provider_is_reported_and_does_not_fail_the_check(
    served: tuple[BlockingPortal, FakeProviderServer], tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "one.toml"
    path.write_text('[priorities]\ntext_generation = ["groq/llama-3.3-70b-versatile"]\n')
    done = run(str(path), "--online", "--base-url", f"groq=http://127.0.0.1:{port}/v1")
    assert done.returncode == 0, done.stderr
    line = lines_of(done.stdout)["groq/llama-3.3-70b-versatile"]
    assert line.split()[1] == "unreachable"
    assert "ConnectError" in line


# -- nothing is sent without --online -------------------------------------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection and name lookup attempted in this process (each one refused)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("connections are refused in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def test_without_online_no_connection_is_attempted(
    config: str, keys: None, connections: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", config]) == 0
    assert connections == []
    assert "\nonline (" not in capsys.readouterr().out
    # The same run with --online does try to connect (so the check above can fail).
    assert main(["check-config", config, "--online", "--timeout", "1"]) == 0
    assert connections != []
    assert "unreachable" in capsys.readouterr().out


# -- bad input: one clear line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--online", "--base-url", "opneai=http://127.0.0.1:1/v1"],
            "--base-url names 'opneai', which is not a platform of {config} (platforms: "
            "anthropic, fal, google, groq, openai, pollinations, replicate, stability)",
        ),
        (
            ["--online", "--base-url", "openai=ftp://127.0.0.1/v1"],
            "--base-url openai: expected an http:// or https:// URL, got 'ftp://127.0.0.1/v1'",
        ),
        (
            ["--online", "--base-url", "openai=http://"],
            "--base-url openai: expected an http:// or https:// URL, got 'http://'",
        ),
        (
            ["--online", "--base-url", "http://127.0.0.1:1/v1"],
            "--base-url must look like PLATFORM=URL, got 'http://127.0.0.1:1/v1'",
        ),
        (
            ["--online", "--base-url", "openai=http://a", "--base-url", "openai=http://b"],
            "--base-url gives 'openai' two URLs",
        ),
        (["--base-url", "openai=http://127.0.0.1:1/v1"], "--base-url only applies with --online"),
        (["--timeout", "5"], "--timeout only applies with --online"),
    ],
)
def test_bad_online_options_are_one_line(
    config: str,
    keys: None,
    connections: list[Any],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert main(["check-config", config, *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"failover: error: {message.format(config=config)}"
    assert connections == []  # refused before anything was sent


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_bad_timeout_is_a_usage_error(
    config: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check-config", config, "--online", "--timeout", value])
    assert exited.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_online_on_a_broken_file_checks_nothing(
    tmp_path: Path, connections: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[failover]\ncache_ttl_seconds = -1\n")
    assert main(["check-config", str(path), "--online"]) == 1
    out = capsys.readouterr().out
    assert "online (" in out
    assert "not checked: the file has problems" in out
    assert connections == []
