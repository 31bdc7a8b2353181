"""Real processes on 127.0.0.1: election, writes, kill -9 of the leader, hostile frames.

Every test is bounded in time; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftlab.core import VoteResponse
from raftlab.net.codec import CHALLENGE_SIZE, HEADER, MAX_FRAME, OutboundSession, encode_messages, frame

from .conftest import ROOT, LocalCluster, Writers, free_ports, port_free
import contextlib

pytestmark = pytest.mark.timeout(120)


def test_three_nodes_elect_a_leader_and_serve_writes(cluster3):
    leader = cluster3.wait_leader()
    statuses = cluster3.statuses()
    assert [s["role"] for s in statuses.values()].count("leader") == 1
    assert "became LEADER of term" in cluster3.log(leader) and "votes from" in cluster3.log(leader)
    with cluster3.client() as client:
        assert client.put("a", "1") is None
        assert client.get("a") == "1"
        assert client.cas("a", "0", "2") is False
        assert client.cas("a", "1", "2") is True
        assert client.append("a", "3") == "23"
        assert client.delete("a") is True
        assert client.get("a") is None
        client.put("b", "x")
    # the command-line client, pointed at a follower first, finds the leader
    follower = next(i for i in cluster3.ids if i != leader)
    peers = ",".join(f"{i}=127.0.0.1:{cluster3.ports[i]}" for i in [follower, *(j for j in cluster3.ids
                                                                              if j != follower)])
    run = [sys.executable, "-m", "raftlab.cli", "kv", "--peers", peers]
    done = subprocess.run([*run, "put", "c", "hello world"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*run, "get", "c"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and json.loads(done.stdout) == "hello world", done.stderr
    # every node applies the writes
    deadline = time.monotonic() + 10
    with cluster3.client() as probe:
        while time.monotonic() < deadline:
            if all(probe.local_get(cluster3.client_address(i), "c") == "hello world" for i in cluster3.ids):
                break
            time.sleep(0.1)
        assert [probe.local_get(cluster3.client_address(i), "b") for i in cluster3.ids] == ["x"] * 3


def test_kill_9_of_the_leader_loses_no_acknowledged_write_and_the_node_catches_up(cluster3, record_property):
    leader = cluster3.wait_leader()
    writers = Writers(lambda: cluster3.client(timeout=20.0), 4).start()
    acked, errors = writers.acked, writers.errors
    before_kill = writers.wait_more(100)
    cluster3.kill9(leader)
    survivors = [i for i in cluster3.ids if i != leader]
    new_leader = cluster3.wait_leader(ids=survivors)
    writers.wait_more(before_kill + 100 - len(acked))
    writers.stop()
    assert errors == []
    assert before_kill >= 100 and len(acked) >= before_kill + 100, (before_kill, len(acked))
    # every acknowledged write is served by the survivors (linearizable reads: ReadIndex, no log write)
    with cluster3.client(ids=survivors) as client:
        found = {key: client.get(key) for key in acked}
    missing = {k: (v, found[k]) for k, v in acked.items() if found[k] != v}
    record_property("writes_acknowledged", len(acked))
    record_property("acknowledged_before_kill", before_kill)
    record_property("writes_found_after_failover", len(acked) - len(missing))
    print(f"\nkill -9 of leader {leader}: {len(acked)} writes acknowledged ({before_kill} before the kill), "
          f"{len(acked) - len(missing)} found after failover (new leader {new_leader})")
    assert missing == {}
    assert new_leader != leader
    # the killed node, restarted on its data folder, catches up
    cluster3.start(leader)
    target = cluster3.statuses([new_leader])[new_leader]["commit_index"]
    deadline = time.monotonic() + 30
    status: dict = {}
    while time.monotonic() < deadline:
        status = cluster3.statuses([leader]).get(leader, {})
        if status.get("last_applied", 0) >= target:
            break
        time.sleep(0.1)
    assert status.get("last_applied", 0) >= target, (status, target)
    assert status["role"] == "follower"
    with cluster3.client() as probe:
        local = {k: probe.local_get(cluster3.client_address(leader), k) for k in acked}
    assert local == acked
    assert "started at term" in cluster3.log(leader).splitlines()[-1] or "log entries" in cluster3.log(leader)


def test_nodes_snapshot_and_a_follower_far_behind_catches_up_by_installing_the_snapshot(tmp_path):
    cluster = LocalCluster(tmp_path, 3, ("--snapshot-every", "50", "--loop", "asyncio"))
    try:
        for i in cluster.ids:
            cluster.start(i)
        leader = cluster.wait_leader()
        behind = next(i for i in cluster.ids if i != leader)
        cluster.kill9(behind)
        with cluster.client(ids=[i for i in cluster.ids if i != behind]) as client:
            written = {f"k{n}": f"v{n}" for n in range(300)}
            for key, value in written.items():
                client.put(key, value)
            client.delete("k0")
            del written["k0"]
        status = cluster.statuses([leader])[leader]
        # the leader compacted its log: it holds fewer entries than it has committed
        assert status["snapshot_index"] >= 250 and status["log_entries"] < 100, status
        # the follower restarted on its data folder needs compacted entries: it gets the snapshot (§7)
        cluster.start(behind)
        deadline = time.monotonic() + 30
        follower: dict = {}
        while time.monotonic() < deadline:
            follower = cluster.statuses([behind]).get(behind, {})
            if follower.get("last_applied", 0) >= status["commit_index"]:
                break
            time.sleep(0.1)
        assert follower.get("last_applied", 0) >= status["commit_index"], (follower, status)
        assert "installed the snapshot of leader" in cluster.log(behind)
        with cluster.client() as probe:
            assert {k: probe.local_get(cluster.client_address(behind), k) for k in written} == written
            assert probe.local_get(cluster.client_address(behind), "k0") is None
        # and a node restarted from its own snapshot and log serves the same values
        cluster.kill9(behind)
        cluster.start(behind)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and cluster.log(behind).count("started at term") < 3:
            time.sleep(0.05)
        started = re.findall(r"started at term \d+ with (\d+) log entries, (\d+) of them in a snapshot",
                             cluster.log(behind))
        assert len(started) == 3 and int(started[-1][1]) >= 250, started
        with cluster.client() as probe:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    if probe.local_get(cluster.client_address(behind), "k299") == "v299":
                        break
                time.sleep(0.1)
            assert {k: probe.local_get(cluster.client_address(behind), k) for k in written} == written
    finally:
        cluster.stop_all()


def _connect(cluster: LocalCluster, node: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", cluster.ports[node]), timeout=5)
    challenge = b""
    while len(challenge) < HEADER.size + CHALLENGE_SIZE:
        chunk = sock.recv(HEADER.size + CHALLENGE_SIZE - len(challenge))
        assert chunk, "the node closed the connection before its challenge"
        challenge += chunk
    return sock, challenge


def _closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    finally:
        sock.close()
    return True


def test_hostile_frames_are_refused_counted_and_the_node_keeps_serving(cluster3):
    cluster3.wait_leader()
    target = 1
    before = cluster3.statuses([target])[target]
    idle, _ = _connect(cluster3, target)  # sends nothing: handshake_timeout

    sock, _ = _connect(cluster3, target)  # garbage the size of no hello
    sock.sendall(frame(os.urandom(60)))
    assert _closed_by_peer(sock)

    sock, _ = _connect(cluster3, target)  # truncated: a hello cut short, then the connection closes
    sock.sendall(HEADER.pack(68) + os.urandom(10))
    sock.shutdown(socket.SHUT_WR)
    assert _closed_by_peer(sock)

    sock, _ = _connect(cluster3, target)  # oversized
    sock.sendall(HEADER.pack(2**31))
    assert _closed_by_peer(sock)

    sock, challenge = _connect(cluster3, target)  # wrongly keyed
    sock.sendall(OutboundSession(b"not the cluster key!", 2, target).hello(challenge))
    assert _closed_by_peer(sock)

    sock, challenge = _connect(cluster3, target)  # replayed within the connection (a key holder's frame)
    session = OutboundSession(cluster3.key, 2, target)
    hello = session.hello(challenge)
    data = session.seal(encode_messages([VoteResponse(2, 0, False)]))  # stale: ignored by the replica
    sock.sendall(hello + data)
    time.sleep(0.2)
    sock.sendall(data)
    assert _closed_by_peer(sock)

    sock, _ = _connect(cluster3, target)  # the recorded connection replayed on a new one: fresh nonce
    sock.sendall(hello + data)
    assert _closed_by_peer(sock)

    sock, challenge = _connect(cluster3, target)  # authentic but ill-typed payload
    session = OutboundSession(cluster3.key, 2, target)
    sock.sendall(session.hello(challenge) + session.seal(b'[["VR", 2, 0, 1]]'))
    assert _closed_by_peer(sock)

    sock, challenge = _connect(cluster3, target)  # authentic session, oversized data frame
    session = OutboundSession(cluster3.key, 2, target)
    sock.sendall(session.hello(challenge) + HEADER.pack(MAX_FRAME + 1) + b"x" * 100)
    assert _closed_by_peer(sock)

    assert _closed_by_peer(idle, timeout=10)
    after = cluster3.statuses([target])[target]
    refused = {k: after["refused"].get(k, 0) - before["refused"].get(k, 0) for k in after["refused"]}
    assert refused == {"handshake_timeout": 1, "malformed": 1, "truncated": 1, "oversized": 2, "bad_mac": 2,
                       "replayed": 1, "bad_payload": 1}
    assert after["messages_received"] > before["messages_received"]  # the one authentic frame was delivered
    assert "refused a frame" in cluster3.log(target)
    assert cluster3.processes[target].poll() is None  # the node is alive
    with cluster3.client() as client:  # and the cluster still serves
        client.put("after", "attack")
        assert client.get("after") == "attack"
    final = cluster3.statuses([target])[target]
    assert final["refused_total"] == before["refused_total"] + 9


def test_cluster_up_and_down_by_recorded_pids(tmp_path):
    (base,) = free_ports(1)
    while not all(port_free(base + k) and port_free(base + 1000 + k) for k in range(3)):
        base += 7
    run = [sys.executable, "-m", "raftlab.cli", "cluster"]
    folder = tmp_path / "c"
    done = subprocess.run([*run, "up", "--nodes", "3", "--dir", str(folder), "--base-port", str(base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    pids = []
    try:
        assert done.returncode == 0, done.stderr
        pids = list(json.loads((folder / "pids.json").read_text())["pids"].values())
        assert len(pids) == 3 and (folder / "cluster.key").stat().st_mode & 0o077 == 0
        peers = ",".join(f"{i}=127.0.0.1:{base + i - 1}" for i in (1, 2, 3))
        # TLS by default: a client authenticates (the folder's token, or a certificate); without, it is told why
        kv = [sys.executable, "-m", "raftlab.cli", "kv", "--peers", peers]
        put = subprocess.run([*kv, "--tls-dir", str(folder), "put", "k", "v"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
        assert put.returncode == 0, put.stderr
        get = subprocess.run([*kv, "--tls-dir", str(folder), "--client", "admin", "get", "k"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
        assert get.returncode == 0 and json.loads(get.stdout) == "v", get.stderr
        plain = subprocess.run([*kv, "--timeout", "2", "get", "k"], cwd=ROOT, capture_output=True, text=True,
                               timeout=30)
        assert plain.returncode == 1 and "--tls-dir" in plain.stderr, plain.stderr
    finally:
        down = subprocess.run([*run, "down", "--dir", str(folder)], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
        for pid in pids:  # whatever happened above, nothing is left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 9)
    assert down.returncode == 0 and "stopped 3 nodes" in down.stdout, down.stderr
    assert not (folder / "pids.json").exists()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
