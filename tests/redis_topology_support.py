"""Private Redis Cluster and Sentinel set-ups for the topology tests, built from ``redis-server``.

Every process is started on free loopback ports in a temporary directory and stopped by its own
PID; the directory is removed afterwards. Not a test module (it holds no tests).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from test_redis_support import _unavailable

#: How long a set-up may take to reach a usable state before the test fails.
READY_SECONDS = 30.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports, all held open until every one is chosen."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def require_version(major: int) -> None:
    """Skip (fail in CI) unless ``redis-server`` is at least version ``major``."""
    version = subprocess.run(
        [_binary("redis-server"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = version.partition(" v=")[2].split(".", 1)[0]
    if not found.isdigit() or int(found) < major:
        _unavailable(f"these tests need redis-server {major}.0 or later, found {version!r}")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        _unavailable(f"{name} is not installed (needed for the cluster and sentinel tests)")
    return str(found)


def redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    result = subprocess.run(
        [_binary("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.stdout + result.stderr


def _poll(condition: str, check: Callable[[], bool], timeout: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        time.sleep(0.05)


class _Processes:
    """Processes this set-up started, each stopped by its own PID, and their directory."""

    def __init__(self, label: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"failover-{label}-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int, *args: str) -> None:
        self.processes[port] = subprocess.Popen(
            [_binary("redis-server"), *args],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _poll(f"redis-server on port {port}", lambda: "PONG" in redis_cli(port, "PING"))

    def kill(self, port: int) -> None:
        process = self.processes.pop(port, None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)
        shutil.rmtree(self.directory, ignore_errors=True)


def _server_args(port: int) -> list[str]:
    return ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]


CREATE_OPTIONS = ("--cluster-replicas", "0", "--cluster-yes")


class PrivateCluster:
    """A Redis Cluster of ``masters`` primaries and no replicas, on private ports."""

    def __init__(self, masters: int = 3) -> None:
        self.ports = free_ports(2 * masters)
        self.data_ports = self.ports[:masters]
        self.bus_ports = self.ports[masters:]
        self.procs = _Processes("cluster")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.data_ports)

    def start(self) -> PrivateCluster:
        try:
            for port, bus in zip(self.data_ports, self.bus_ports, strict=True):
                self.procs.start(
                    port,
                    *_server_args(port),
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(bus),
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", "2000",
                )  # fmt: skip
            nodes = [f"127.0.0.1:{port}" for port in self.data_ports]
            created = subprocess.run(
                [_binary("redis-cli"), "--cluster", "create", *nodes, *CREATE_OPTIONS],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            for port in self.data_ports:
                _poll(
                    f"cluster_state:ok on {port}",
                    lambda port=port: "cluster_state:ok" in redis_cli(port, "CLUSTER", "INFO"),
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.procs.stop()


class PrivateSentinel:
    """One master, one replica and three sentinels (quorum 2) watching service ``mymaster``."""

    SERVICE = "mymaster"

    def __init__(self, sentinels: int = 3) -> None:
        ports = free_ports(2 + sentinels)
        self.master_port, self.replica_port = ports[0], ports[1]
        self.sentinel_ports = ports[2:]
        self.procs = _Processes("sentinel")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}"

    def start(self) -> PrivateSentinel:
        try:
            self.procs.start(self.master_port, *_server_args(self.master_port))
            self.procs.start(
                self.replica_port,
                *_server_args(self.replica_port),
                "--replicaof", "127.0.0.1", str(self.master_port),
            )  # fmt: skip
            for port in self.sentinel_ports:
                config = self.procs.directory / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 2\n"
                    f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                    f"sentinel failover-timeout {self.SERVICE} 5000\n",
                    encoding="utf-8",
                )
                self.procs.start(port, str(config), "--sentinel")
            self.wait_until_settled()
        except BaseException:
            self.stop()
            raise
        return self

    def master(self) -> int:
        """The port every sentinel names as the master (polled until they agree)."""
        answers: set[str] = set()

        def agreed() -> bool:
            answers.clear()
            for port in self.sentinel_ports:
                reply = redis_cli(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE).split()
                answers.add(reply[-1] if reply else "")
            return len(answers) == 1

        _poll("the sentinels to agree on the master", agreed)
        return int(answers.pop())

    def wait_until_settled(self) -> None:
        """Until every sentinel knows the replica (in sync) and the other sentinels."""
        others = str(len(self.sentinel_ports) - 1)

        def settled() -> bool:
            master = self.master()
            replica = self.replica_port if master == self.master_port else self.master_port
            if "master_link_status:up" not in redis_cli(replica, "INFO", "replication"):
                return False
            for port in self.sentinel_ports:
                info = redis_cli(port, "SENTINEL", "MASTER", self.SERVICE).split()
                fields = dict(zip(info[::2], info[1::2], strict=False))
                if fields.get("num-slaves") != "1" or fields.get("num-other-sentinels") != others:
                    return False
                if "s_down" in fields.get("flags", "") or "o_down" in fields.get("flags", ""):
                    return False
            return True

        _poll("the sentinel set-up to settle", settled)

    def failover(self) -> int:
        """``SENTINEL FAILOVER``; the new master's port once every sentinel names it."""
        return self.new_master_after(self.start_failover("sentinel_failover"))

    def kill_master(self) -> int:
        """SIGKILL the master; the new master's port once the sentinels have elected it."""
        return self.new_master_after(self.start_failover("master_killed"))

    def start_failover(self, how: str) -> int:
        """Start a failover (``sentinel_failover`` or ``master_killed``); the old master's port.

        Returns at once, so a test can act while the sentinels are still electing.
        """
        before = self.master()
        if how == "master_killed":
            self.procs.kill(before)
        else:
            reply = redis_cli(self.sentinel_ports[0], "SENTINEL", "FAILOVER", self.SERVICE)
            assert "OK" in reply, reply
        return before

    def new_master_after(self, before: int) -> int:
        """The new master's port, once every sentinel names it and it acts as master."""
        _poll("the failover to complete", lambda: self.master() != before)
        after = self.master()
        _poll(f"{after} to act as master", lambda: "master" in redis_cli(after, "ROLE")[:20])
        return after

    def stop(self) -> None:
        self.procs.stop()
