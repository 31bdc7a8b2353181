"""Membership change on real processes (thesis §4): `raftlab cluster add` and `cluster remove` grow a
3-node cluster to 5 and shrink it back to 3 (the leader removed among others) while clients write;
no acknowledged write is lost. Every process is stopped by the test that started it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raftlab.net import KVClient
from raftlab.net.commands import client_credentials

from .conftest import ROOT, free_ports, port_free

pytestmark = pytest.mark.timeout(180)

OFFSET = 1000


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raftlab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _base_port(n: int) -> int:
    (base,) = free_ports(1)
    while not all(port_free(base + k) and port_free(base + OFFSET + k) for k in range(n)):
        base += 11
    return base


class _Cluster:
    """A `cluster up` folder: its nodes' client addresses, statuses and leader."""

    def __init__(self, folder: Path, base: int) -> None:
        self.folder, self.base = folder, base

    def client_address(self, i: int) -> tuple[str, int]:
        return ("127.0.0.1", self.base + i - 1 + OFFSET)

    def credentials(self) -> dict:
        """`cluster up` uses TLS: a client authenticates with the folder's token."""
        return client_credentials(self.folder)

    def peers(self, ids: list[int]) -> str:
        return ",".join(f"{i}=127.0.0.1:{self.base + i - 1}" for i in ids)

    def status(self, i: int) -> dict | None:
        with KVClient([self.client_address(i)], **self.credentials()) as probe, \
                contextlib.suppress(OSError, ValueError):
            return probe.status(self.client_address(i), timeout=1.0)
        return None

    def leader(self, ids: list[int], timeout: float = 20.0) -> int:
        """The leader every node of `ids` agrees on (and that leads)."""
        deadline = time.monotonic() + timeout
        found: dict = {}
        while time.monotonic() < deadline:
            found = {i: self.status(i) for i in ids}
            leaders = {s["leader"] for s in found.values() if s is not None}
            if None not in found.values() and len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if leader in found and found[leader]["role"] == "leader":
                    return leader
            time.sleep(0.05)
        raise AssertionError(f"no agreed leader among {ids}: {found}\n{self.logs()}")

    def pids(self) -> dict[str, int]:
        path = self.folder / "pids.json"
        return json.loads(path.read_text())["pids"] if path.exists() else {}

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text().splitlines()[-25:])
                         for p in sorted(self.folder.glob("node*.log")))


def test_a_cluster_grows_from_3_to_5_and_shrinks_back_to_3_while_clients_write(tmp_path, record_property):
    started = time.monotonic()
    base = _base_port(5)
    c = _Cluster(tmp_path / "c", base)
    up = _cli("cluster", "up", "--nodes", "3", "--dir", str(c.folder), "--base-port", str(base))
    everyone: dict[str, int] = {}
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer(w: int) -> None:  # every node's client address: the client follows leader hints
        with KVClient([c.client_address(i) for i in range(1, 6)], timeout=30.0, **c.credentials()) as client:
            for n in range(1_000_000):  # bounded; `stop` ends it
                if stop.is_set():
                    return
                key, value = f"w{w}-{n}", f"v{n}"
                try:
                    client.put(key, value)
                except Exception as error:  # an unacknowledged write: allowed to be lost, noted
                    errors.append(repr(error))
                    return
                with lock:
                    acked[key] = value

    def acked_more(count: int, timeout: float = 20.0) -> int:
        """Wait until `count` more writes are acknowledged than now; returns the new total."""
        target = len(acked) + count
        deadline = time.monotonic() + timeout
        while len(acked) < target and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
        assert len(acked) >= target, (len(acked), target, errors)
        return len(acked)

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(3)]
    steps: dict[str, float] = {}
    try:
        assert up.returncode == 0, up.stderr
        everyone.update(c.pids())
        c.leader([1, 2, 3])
        for t in threads:
            t.start()
        acked_more(50)

        # grow: 4 and 5 join as learners, catch up, and are promoted (each through the leader)
        for new in (4, 5):
            t0 = time.monotonic()
            done = _cli("cluster", "add", "--dir", str(c.folder), "--id", str(new), "--addr",
                        f"127.0.0.1:{base + new - 1}")
            steps[f"add {new}"] = time.monotonic() - t0
            everyone.update(c.pids())
            assert done.returncode == 0, done.stdout + done.stderr + c.logs()
            assert f"node {new} is a learner" in done.stdout and f"node {new} is a voter" in done.stdout
            assert json.loads(done.stdout.splitlines()[-1])["voters"] == list(range(1, new + 1))
            acked_more(30)
        # every node reports the configuration (kv status: the nodes of --peers, then the members they know of)
        status = _cli("kv", "--peers", c.peers([1]), "--tls-dir", str(c.folder), "status")
        lines = [json.loads(line) for line in status.stdout.splitlines()]
        assert sorted(s["id"] for s in lines) == [1, 2, 3, 4, 5], status.stdout
        assert all(s["configuration"]["voters"] == [1, 2, 3, 4, 5] and s["configuration"]["learners"] == []
                   for s in lines), status.stdout
        assert [s["member"] for s in lines] == ["voter"] * 5

        # shrink: remove the leader (one of the original three), then another original node
        leader = c.leader([1, 2, 3, 4, 5])
        if leader not in (1, 2, 3):  # (an election on a loaded machine): hand the leadership to node 1 first
            tls = ("--tls-dir", str(c.folder))
            assert _cli("kv", "--peers", c.peers([1, 2, 3, 4, 5]), *tls, "transfer", "1").returncode == 0
            leader = c.leader([1, 2, 3, 4, 5])
        other = next(i for i in (1, 2, 3) if i != leader)
        remaining = [i for i in range(1, 6) if i not in (leader, other)]
        for gone in (leader, other):
            t0 = time.monotonic()
            done = _cli("cluster", "remove", "--dir", str(c.folder), "--id", str(gone))
            steps[f"remove {gone}" + (" (the leader)" if gone == leader else "")] = time.monotonic() - t0
            assert done.returncode == 0, done.stdout + done.stderr + c.logs()
            assert f"node {gone} removed" in done.stdout and f"stopped node {gone}" in done.stdout, done.stdout
            assert str(gone) not in c.pids()
            acked_more(30)
        assert f"node {leader}: became follower in term" in (c.folder / f"node{leader}.log").read_text()
        assert "MC-STEPDOWN" in (c.folder / f"node{leader}.log").read_text()
        # a removed node is refused clearly; the same for the only member ids that never were
        done = _cli("cluster", "remove", "--dir", str(c.folder), "--id", str(other), "--timeout", "10")
        assert done.returncode == 1 and "not a member" in done.stderr, done.stderr
        final_leader = c.leader(remaining)
        acked_more(30)
    finally:
        stop.set()
        for t in threads:
            t.join(40)
        writes = len(acked)
        down = _cli("cluster", "down", "--dir", str(c.folder)) if (c.folder / "pids.json").exists() else None
        for pid in everyone.values():  # whatever happened above, nothing is left running
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert down is not None and down.returncode == 0 and "stopped 3 nodes" in down.stdout, down

    # restarted on their data folders (their --peers lists only the original three), the remaining nodes
    # know the configuration and the new members' addresses from their logs: every acknowledged write is there
    processes = {}
    try:
        for i in remaining:
            with open(c.folder / f"node{i}.log", "ab") as log:
                processes[i] = subprocess.Popen(
                    [sys.executable, "-m", "raftlab.cli", "node", "--id", str(i), "--peers",
                     c.peers(sorted({1, 2, 3, i})), "--data-dir", str(c.folder / f"node{i}"), "--key-file",
                     str(c.folder / "cluster.key"), "--tls-dir", str(c.folder)],
                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True)
        c.leader(remaining)
        with KVClient([c.client_address(i) for i in remaining], timeout=20.0, **c.credentials()) as client:
            found = {key: client.get(key) for key in acked}  # linearizable reads (ReadIndex)
            missing = {k: (v, found[k]) for k, v in acked.items() if found[k] != v}
            assert missing == {}
            commit = max(s["commit_index"] for s in (c.status(i) for i in remaining) if s is not None)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                statuses = [c.status(i) for i in remaining]
                if all(s is not None and s["last_applied"] >= commit for s in statuses):
                    break
                time.sleep(0.05)
            for i in remaining:
                assert {k: client.local_get(c.client_address(i), k) for k in acked} == acked, i
        statuses = [c.status(i) for i in remaining]
        assert all(s is not None and s["configuration"]["voters"] == remaining for s in statuses), statuses
        assert all(s is not None and s["refused_total"] == 0 for s in statuses), statuses
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
    elapsed = time.monotonic() - started
    record_property("writes_acknowledged", writes)
    record_property("seconds", round(elapsed, 1))
    print(f"\n3 -> 5 -> 3 (leader {leader} and node {other} removed; then leader {final_leader}): {writes} writes "
          f"acknowledged, all found; " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
          + f"; {elapsed:.1f} s in all")
