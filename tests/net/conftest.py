"""Real `raftlab node` processes on loopback, each stopped (its process group killed) by the test
fixture that started it."""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import contextlib

from raftlab.net import KVClient
from raftlab.net.commands import client_credentials
from raftlab.net.tls import init_tls

ROOT = Path(__file__).resolve().parents[2]


class Writers:
    """`n` client threads, each writing ``w<w>-<k> = v<k>`` one after the other through its own client
    (made by `connect`) until `stop`: the acknowledged writes are in `acked`, and a write that raised
    ends its thread with the error in `errors` (an unacknowledged write may be lost; it is noted)."""

    def __init__(self, connect: Callable[[], KVClient], n: int) -> None:
        self.acked: dict[str, str] = {}
        self.errors: list[str] = []
        self._connect, self._lock, self._stop = connect, threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(w,), daemon=True) for w in range(n)]

    def _write(self, w: int) -> None:
        with self._connect() as client:
            for k in range(1_000_000):  # bounded; `stop` ends it
                if self._stop.is_set():
                    return
                key, value = f"w{w}-{k}", f"v{k}"
                try:
                    client.put(key, value)
                except Exception as error:
                    self.errors.append(repr(error))
                    return
                with self._lock:
                    self.acked[key] = value

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def wait_more(self, count: int, timeout: float = 30.0) -> int:
        """Wait until `count` more writes are acknowledged than now (or `timeout`, or an error); returns
        the number acknowledged."""
        target, deadline = len(self.acked) + count, time.monotonic() + timeout
        while len(self.acked) < target and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        return len(self.acked)

    def stop(self) -> None:
        """Stop the writers and wait for them (every one must end)."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        assert not any(t.is_alive() for t in self._threads)
OFFSET = 1000


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0):
    """Call `check` until it returns something true (returned); AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def port_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1 now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """`n` peer ports, each with its client port (+OFFSET) free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        ports = [base + 3 * i for i in range(n)]
        if all(port_free(p) and port_free(p + OFFSET) for p in ports):
            return ports
    raise RuntimeError("no free ports")


class LocalCluster:
    """`n` nodes on 127.0.0.1 under `folder` (with `tls`: the files of `raftlab cluster init` there, and
    clients authenticate with its token)."""

    def __init__(self, folder: Path, n: int, options: tuple[str, ...] = (), tls: bool = False) -> None:
        self.folder = folder
        self.options = list(options)  # extra `raftlab node` options, for every node
        self.tls = tls
        self.ids = list(range(1, n + 1))
        self.ports = dict(zip(self.ids, free_ports(n), strict=True))
        self.peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in self.ports.items())
        self.key = secrets.token_bytes(32)
        self.key_file = folder / "cluster.key"
        self.key_file.write_text(self.key.hex())
        self.processes: dict[int, subprocess.Popen] = {}
        self.node_peers: dict[int, str] = {}  # a node's own --peers, if not `peers` (through a proxy, say)
        if tls:
            init_tls(folder, self.ids)
            self.options += ["--tls-dir", str(folder)]

    def credentials(self) -> dict:
        """`KVClient`'s tls and token arguments ({} without TLS)."""
        return client_credentials(self.folder if self.tls else None)

    def client_address(self, i: int) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[i] + OFFSET)

    def log(self, i: int) -> str:
        return (self.folder / f"node{i}.log").read_text()

    def start(self, i: int) -> None:
        with open(self.folder / f"node{i}.log", "ab") as log:
            self.processes[i] = subprocess.Popen(
                [sys.executable, "-m", "raftlab.cli", "node", "--id", str(i),
                 "--peers", self.node_peers.get(i, self.peers),
                 "--data-dir", str(self.folder / f"node{i}"), "--key-file", str(self.key_file), *self.options],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def kill9(self, i: int) -> None:
        process = self.processes.pop(i)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()

    def client(self, timeout: float = 15.0, ids: list[int] | None = None) -> KVClient:
        return KVClient([self.client_address(i) for i in (ids or self.ids)], timeout=timeout, **self.credentials())

    def statuses(self, ids: list[int] | None = None) -> dict[int, dict]:
        found = {}
        with KVClient([self.client_address(self.ids[0])], **self.credentials()) as probe:
            for i in ids or list(self.processes):
                with contextlib.suppress(OSError, ValueError):
                    found[i] = probe.status(self.client_address(i), timeout=1.0)
        return found

    def wait_leader(self, timeout: float = 15.0, ids: list[int] | None = None) -> int:
        """The one leader that every listed live node agrees on."""
        deadline = time.monotonic() + timeout
        ids = ids or list(self.processes)
        while time.monotonic() < deadline:
            statuses = self.statuses(ids)
            leaders = {s["leader"] for s in statuses.values()}
            if len(statuses) == len(ids) and len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if statuses.get(leader, {}).get("role") == "leader":
                    return leader
            time.sleep(0.1)
        raise AssertionError(f"no agreed leader within {timeout} s: {self.statuses(ids)}\n{self.diagnose()}")

    def diagnose(self) -> str:
        """Exit codes and log tails, for failure messages."""
        lines = []
        for i in self.ids:
            process = self.processes.get(i)
            lines.append(f"node {i}: {'not started' if process is None else f'exit code {process.poll()}'}")
            path = self.folder / f"node{i}.log"
            if path.exists():
                lines += ["    " + line for line in path.read_text().splitlines()[-15:]]
        return "\n".join(lines)


@pytest.fixture
def cluster3(tmp_path):
    cluster = LocalCluster(tmp_path, 3)
    try:
        for i in cluster.ids:
            cluster.start(i)
        yield cluster
    finally:
        cluster.stop_all()
