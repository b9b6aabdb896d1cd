"""Helpers for the Redis tests: finding Redis, private servers, namespaces, worker processes.

Not a test module itself (it holds no tests); ``python tests/test_redis_support.py ROLE JSON``
runs one of the worker roles the cross-process tests start as separate OS processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

if TYPE_CHECKING:
    from failover import PlatformManager
    from failover.testing import FakeClock

REDIS_URL = os.environ.get("FAILOVER_REDIS_URL", "redis://127.0.0.1:6379/0")
THIS_FILE = Path(__file__).resolve()

PRIORITIES = {"text_generation": [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b")]}
ENVIRON = {"OPENAI_API_KEY": "sk-test-openai", "GROQ_API_KEY": "gsk-test-groq"}


OP = "text_generation"


def manager(url: str, namespace: str, clock: FakeClock | None = None, **kwargs: Any) -> Any:
    """A manager over ``PRIORITIES`` sharing state through Redis at ``url`` under ``namespace``."""
    from failover import PlatformManager
    from failover.redis import RedisSharedState

    settings: dict[str, Any] = {
        "failure_threshold": 3,
        "cache_ttl_seconds": 30,
        "environ": ENVIRON,
        "clock": clock,
        "shared_state": RedisSharedState(url, namespace, max_backoff=0.2),
    }
    settings.update(kwargs)
    return PlatformManager(PRIORITIES, **settings)


def pair_state(m: PlatformManager, platform: str = "openai") -> dict[str, Any]:
    status: dict[str, Any] = m.get_health_status()[platform]["operations"][OP]
    return status


async def failing_primary(spec: Any) -> str:
    """An operation whose primary (``openai``) always fails transiently."""
    from failover import Transient

    if spec.name == "openai":
        raise Transient("503 from the provider")
    return str(spec.name)


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(reason: str) -> None:
    if os.environ.get("FAILOVER_REQUIRE_REDIS") == "1":
        pytest.fail(f"FAILOVER_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


def require_redis() -> str:
    """The shared Redis URL, or a skip (a failure when ``FAILOVER_REQUIRE_REDIS=1``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    if not _answers(parts.hostname or "127.0.0.1", parts.port or 6379):
        _unavailable(f"no Redis answers at {REDIS_URL} (start one, or set FAILOVER_REDIS_URL)")
    return REDIS_URL


def unique_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; seconds it took. Fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await anyio.sleep(0.002)
    return time.monotonic() - started


async def delete_namespace(url: str, namespace: str) -> None:
    import coredis

    client = coredis.Redis.from_url(url, decode_responses=True)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"failover:{namespace}:*")]
        if keys:
            await client.delete(keys)


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, to kill and restart mid-test."""

    def __init__(self, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed (needed for a private server)")
        self.binary = str(binary)
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not _answers("127.0.0.1", self.port, 0.1):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise AssertionError(f"private redis-server did not start on {self.port}")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


# -- worker processes -------------------------------------------------------------------------


def spawn(role: str, **params: Any) -> subprocess.Popen[str]:
    """Start ``role`` in a separate Python process; it speaks JSON lines on stdout."""
    return subprocess.Popen(
        [sys.executable, str(THIS_FILE), role, json.dumps(params)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def read_line(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The worker's next JSON line (fails the test on timeout or early exit)."""
    assert process.stdout is not None
    stdout = process.stdout
    with anyio.fail_after(timeout):
        line = await anyio.to_thread.run_sync(stdout.readline, abandon_on_cancel=True)
    if not line:
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"worker exited early (rc={process.wait()}):\n{stderr[-3000:]}")
    message: dict[str, Any] = json.loads(line)
    return message


def tell(process: subprocess.Popen[str], **message: Any) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()


def finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _emit(**message: Any) -> None:
    print(json.dumps(message), flush=True)


async def _stdin_line() -> dict[str, Any]:
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    result: dict[str, Any] = json.loads(line) if line.strip() else {}
    return result


def _manager(params: dict[str, Any], **overrides: Any) -> Any:
    from failover import PlatformManager
    from failover.redis import RedisSharedState

    shared = (
        RedisSharedState(params["url"], params["namespace"], max_backoff=0.5)
        if params.get("url")
        else None
    )
    kwargs: dict[str, Any] = {
        "priorities": params.get("priorities", PRIORITIES),
        "failure_threshold": params.get("threshold", 3),
        "cache_ttl_seconds": params.get("ttl", 30.0),
        "environ": params.get("environ", ENVIRON),
        "shared_state": shared,
    }
    kwargs.update(overrides)
    return PlatformManager(**kwargs)


async def _role_watch(params: dict[str, Any]) -> None:
    """Report (wall time) when the primary pair becomes skipped here, having never failed."""
    manager = _manager(params)
    async with manager:
        _emit(event="ready")
        pair = manager._pair("openai", "text_generation")
        while pair.unavailable_reason(manager.clock) is None:
            await anyio.sleep(0.0005)
        seen = time.time()
        calls: list[str] = []

        async def op(spec: Any) -> str:
            calls.append(spec.name)
            return spec.name

        answer, _ = await manager.with_fallback("text_generation", op)
        _emit(event="skipped", at=seen, answered=answer, calls=calls)
        await _stdin_line()


async def _role_crowd(params: dict[str, Any]) -> None:
    """At ``start_at`` (wall), send ``callers`` concurrent calls; the primary op is slow."""
    import coredis

    manager = _manager(params, probe_lease_seconds=params.get("lease", 5.0))
    client = coredis.Redis.from_url(params["url"], decode_responses=True)
    counter_key = f"failover-test:{params['namespace']}:inflight"
    peak_key = f"failover-test:{params['namespace']}:peak"
    total_key = f"failover-test:{params['namespace']}:total"
    enter = client.register_script(
        "local v = redis.call('INCR', KEYS[1]) redis.call('INCR', KEYS[3]) "
        "if v > tonumber(redis.call('GET', KEYS[2]) or '0') then "
        "redis.call('SET', KEYS[2], v) end return v"
    )
    async with client, manager:
        _emit(event="ready")
        message = await _stdin_line()
        delay = message["start_at"] - time.time()
        if delay > 0:
            await anyio.sleep(delay)
        answers: list[str] = []
        probing = anyio.Event()

        async def op(spec: Any) -> str:
            if spec.name == "openai":
                await enter([counter_key, peak_key, total_key])
                try:
                    if params.get("hang"):
                        probing.set()
                        await anyio.sleep_forever()
                    await anyio.sleep(params.get("hold", 0.3))
                finally:
                    with anyio.CancelScope(shield=True):
                        await client.decr(counter_key)
            return str(spec.name)

        async def call() -> None:
            answer, _ = await manager.with_fallback("text_generation", op)
            answers.append(answer)

        if params.get("hang"):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call)
                with anyio.fail_after(5):
                    await probing.wait()
                _emit(event="probing")
                await anyio.sleep_forever()
        async with anyio.create_task_group() as tasks:
            for _ in range(params["callers"]):
                tasks.start_soon(call)
        _emit(event="done", answers=answers)
        await _stdin_line()


async def _role_fleet(params: dict[str, Any]) -> None:
    """Sequential calls through the fake provider server until ``calls`` are made."""
    import httpx

    manager = _manager(params)
    async with httpx.AsyncClient(timeout=10) as http, manager:
        _emit(event="ready")
        message = await _stdin_line()
        delay = message["start_at"] - time.time()
        if delay > 0:
            await anyio.sleep(delay)
        primary_attempts = 0

        async def op(spec: Any) -> str:
            nonlocal primary_attempts
            if spec.name == "openai":
                primary_attempts += 1
            response = await http.post(
                f"{params['server']}/{spec.name}/v1/chat/completions",
                json={"model": spec.model, "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": "Bearer sk-test"},
            )
            response.raise_for_status()
            return str(spec.name)

        answers: dict[str, int] = {}
        failures = 0
        ended = time.monotonic() + params["seconds"]
        while time.monotonic() < ended:
            try:
                answer, _ = await manager.with_fallback("text_generation", op)
                answers[answer] = answers.get(answer, 0) + 1
            except Exception:
                failures += 1
            await anyio.sleep(params.get("think", 0.01))
        _emit(event="done", primary_attempts=primary_attempts, answers=answers, failures=failures)
        await _stdin_line()


def _role_sync_crowd(params: dict[str, Any]) -> None:
    """``crowd`` for synchronous code: plain threads, no event loop, ``with manager:``."""
    import asyncio
    import threading

    manager = _manager(params, probe_lease_seconds=params.get("lease", 5.0))
    with manager:
        _emit(event="ready", background=_background_threads())
        message = json.loads(sys.stdin.readline())
        callers = params["callers"]
        answers: list[str] = []
        loops: list[bool] = []
        lock = threading.Lock()
        gate = threading.Barrier(callers)

        def op(spec: Any) -> str:
            try:
                asyncio.get_running_loop()
                in_loop = True
            except RuntimeError:
                in_loop = False
            with lock:
                loops.append(in_loop)
            if spec.name == "openai":
                time.sleep(params.get("hold", 0.3))  # a slow provider answering the probe
            return str(spec.name)

        def call() -> None:
            gate.wait()
            answer, _ = manager.with_fallback_sync("text_generation", op)
            with lock:
                answers.append(answer)

        delay = message["start_at"] - time.time()
        if delay > 0:
            time.sleep(delay)  # the fleet's agreed start (wall clock, across processes)
        threads = [threading.Thread(target=call) for _ in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        _emit(event="done", answers=answers, in_loop=any(loops))
        sys.stdin.readline()
    _emit(event="closed", background=_background_threads())


def _background_threads() -> int:
    import threading

    return sum(thread.name == "failover-background" for thread in threading.enumerate())


ROLES = {"watch": _role_watch, "crowd": _role_crowd, "fleet": _role_fleet}
#: Roles that run without an event loop.
SYNC_ROLES = {"sync_crowd": _role_sync_crowd}

if __name__ == "__main__":
    role, raw = sys.argv[1], sys.argv[2]
    sys.path.insert(0, str(THIS_FILE.parent.parent / "src"))
    if role in SYNC_ROLES:
        SYNC_ROLES[role](json.loads(raw))
    else:
        anyio.run(ROLES[role], json.loads(raw), backend=json.loads(raw).get("backend", "asyncio"))
