"""`LocalCluster`: real `raftlab node` processes on loopback, for the tests and `raftlab soak`.

Each node is its own process (and process group: ``start_new_session``), logging to ``node<i>.log``
and keeping its durable state in ``node<i>/`` under one folder; `kill9`, `pause` and `resume` signal
its whole group. Whoever starts nodes stops them (`stop_all`).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .client import KVClient
from .commands import CLIENT_OFFSET, client_credentials
from .transport import Address

OFFSET = CLIENT_OFFSET
ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the raftlab package: nodes start there, so that they run this very raftlab."""


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
    clients authenticate with its token).

    Args:
        folder: where the key, the data folders and the logs go.
        n: nodes 1..n.
        options: extra `raftlab node` options, for every node.
        tls: TLS between nodes and for clients.
        ports: each node's peer port (default: free ones, each with its client port +OFFSET free).

    A node's own ``--peers`` may differ from `peers` (`node_peers`: through a proxy, say), and so may
    its extra options (`node_options`) and its client port (`client_ports`, default peer port +OFFSET).
    """

    def __init__(self, folder: Path, n: int, options: tuple[str, ...] = (), tls: bool = False,
                 ports: dict[int, int] | None = None) -> None:
        self.folder = folder
        self.options = list(options)
        self.tls = tls
        self.ids = list(range(1, n + 1))
        self.ports = dict(ports) if ports is not None else dict(zip(self.ids, free_ports(n), strict=True))
        self.client_ports = {i: p + OFFSET for i, p in self.ports.items()}
        self.peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in self.ports.items())
        self.key = secrets.token_bytes(32)
        self.key_file = folder / "cluster.key"
        self.key_file.write_text(self.key.hex())
        self.key_file.chmod(0o600)
        self.processes: dict[int, subprocess.Popen] = {}
        self.node_peers: dict[int, str] = {}  # a node's own --peers, if not `peers` (through a proxy, say)
        self.node_options: dict[int, list[str]] = {}  # a node's own extra options
        if tls:
            from .tls import init_tls

            init_tls(folder, self.ids)
            self.options += ["--tls-dir", str(folder)]

    def credentials(self) -> dict:
        """`KVClient`'s tls and token arguments ({} without TLS)."""
        return client_credentials(self.folder if self.tls else None)

    def client_address(self, i: int) -> Address:
        return ("127.0.0.1", self.client_ports[i])

    def log(self, i: int) -> str:
        return (self.folder / f"node{i}.log").read_text()

    def start(self, i: int) -> None:
        """Start node `i` (again: on its data folder) in a process group of its own."""
        with open(self.folder / f"node{i}.log", "ab") as log:
            self.processes[i] = subprocess.Popen(
                [sys.executable, "-m", "raftlab.cli", "node", "--id", str(i),
                 "--peers", self.node_peers.get(i, self.peers),
                 "--data-dir", str(self.folder / f"node{i}"), "--key-file", str(self.key_file), *self.options,
                 *self.node_options.get(i, ())],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def kill9(self, i: int) -> None:
        """SIGKILL node `i`'s process group, and reap it."""
        process = self.processes.pop(i)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def pause(self, i: int) -> None:
        """SIGSTOP node `i`'s process group (`resume` continues it)."""
        os.killpg(self.processes[i].pid, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        """SIGCONT node `i`'s process group."""
        os.killpg(self.processes[i].pid, signal.SIGCONT)

    def stop_all(self) -> None:
        """SIGTERM every node (SIGCONT too, in case it is paused), SIGKILL those still there after 5 s."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()

    def client(self, timeout: float = 15.0, ids: list[int] | None = None) -> KVClient:
        return KVClient([self.client_address(i) for i in (ids or self.ids)], timeout=timeout, **self.credentials())

    def statuses(self, ids: list[int] | None = None, timeout: float = 1.0) -> dict[int, dict]:
        """The status of each listed node (default: the running ones) that answers within `timeout`."""
        found = {}
        with KVClient([self.client_address(self.ids[0])], client_id=0, **self.credentials()) as probe:
            for i in ids or list(self.processes):
                with contextlib.suppress(OSError, ValueError):
                    found[i] = probe.status(self.client_address(i), timeout=timeout)
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
