"""Real processes on 127.0.0.1: ReadIndex reads, leadership transfer, and the node's Raft options
(PreVote and CheckQuorum on by default, ``--read-lease``).

Every test is bounded in time; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from raftlab.net import KVError

from .conftest import ROOT, LocalCluster, Writers

pytestmark = pytest.mark.timeout(120)


def _kv(cluster: LocalCluster, *args: str, first: int | None = None) -> subprocess.CompletedProcess:
    """`raftlab kv` on the cluster, asking node `first` first."""
    order = [first] if first is not None else []
    order += [i for i in cluster.ids if i not in order]
    peers = ",".join(f"{i}=127.0.0.1:{cluster.ports[i]}" for i in order)
    return subprocess.run([sys.executable, "-m", "raftlab.cli", "kv", "--peers", peers, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def _growth(before: dict[int, dict], after: dict[int, dict]) -> tuple[int, int]:
    """(entries the log grew by, new terms) between two `statuses()`: each new term may add its leader's no-op."""
    grown = max(s["last_index"] for s in after.values()) - max(s["last_index"] for s in before.values())
    return grown, max(s["term"] for s in after.values()) - max(s["term"] for s in before.values())


def _reads_without_log_writes(cluster: LocalCluster) -> None:
    """Gets on every node answer the value just put, and the log grows by the puts only (and by one no-op
    for each new term, should a loaded machine delay heartbeats into an election meanwhile)."""
    with cluster.client() as client:
        client.put("k", "v0")
        before = cluster.statuses()
        for n in range(1, 31):
            client.put("k", f"v{n}")  # acknowledged: every read after this must see it
            for i in cluster.ids:
                with cluster.client(ids=[i]) as one:  # the leader, and each follower (forwarding to it)
                    assert one.get("k") == f"v{n}", (i, n)
        assert client.get("k") == "v30"
    after = cluster.statuses()
    grown, new_terms = _growth(before, after)
    assert 30 <= grown <= 30 + new_terms, (grown, new_terms)  # the 30 puts; no read wrote anything
    answered = {i: after[i]["reads_answered"] - before[i]["reads_answered"] for i in cluster.ids}
    assert sum(answered.values()) >= 91 and all(a > 0 for a in answered.values()), answered  # each node served
    assert all(after[i]["read_indexes"] > before[i]["read_indexes"] for i in cluster.ids)
    # many reads in a row: the log stays put
    with cluster.client() as client:
        for _ in range(200):
            assert client.get("k") == "v30"
    grown, new_terms = _growth(after, cluster.statuses())
    assert grown <= new_terms, (grown, new_terms)


def test_kv_get_reads_by_read_index_without_a_log_write_and_through_the_log_on_request(cluster3):
    leader = cluster3.wait_leader()
    statuses = cluster3.statuses()
    assert all((s["pre_vote"], s["check_quorum"], s["read_lease"]) == (True, True, False)
               for s in statuses.values()), statuses
    _reads_without_log_writes(cluster3)
    # the command line: a get by ReadIndex (asking a follower first) writes nothing; --through-log appends one
    # (each `raftlab kv` is a new client: its first command through the log registers its session first)
    follower = next(i for i in cluster3.ids if i != leader)
    before = cluster3.statuses()
    done = _kv(cluster3, "put", "c", "hello world")
    assert done.returncode == 0, done.stderr
    done = _kv(cluster3, "get", "c", first=follower)
    assert done.returncode == 0 and json.loads(done.stdout) == "hello world", done.stderr
    middle = cluster3.statuses()
    grown, new_terms = _growth(before, middle)
    assert 2 <= grown <= 2 + new_terms, (grown, new_terms)  # the put and its client's register only
    done = _kv(cluster3, "get", "c", "--through-log", first=follower)
    assert done.returncode == 0 and json.loads(done.stdout) == "hello world", done.stderr
    grown, new_terms = _growth(middle, cluster3.statuses())
    assert 2 <= grown <= 2 + new_terms, (grown, new_terms)  # the get, through the log (and its register)
    done = _kv(cluster3, "get", "missing")
    assert done.returncode == 0 and json.loads(done.stdout) is None, done.stderr
    done = _kv(cluster3, "put", "c", "x", "--through-log")
    assert done.returncode == 2 and "--through-log applies to get only" in done.stderr


def test_kv_transfer_makes_the_node_leader_and_no_acknowledged_write_is_lost(cluster3):
    leader = cluster3.wait_leader()
    term = cluster3.statuses([leader])[leader]["term"]
    target = next(i for i in cluster3.ids if i != leader)
    writers = Writers(lambda: cluster3.client(timeout=20.0), 3).start()
    acked, errors = writers.acked, writers.errors
    before = writers.wait_more(50)
    done = _kv(cluster3, "transfer", str(target), first=target)  # asked of the target: it redirects to the leader
    assert done.returncode == 0, done.stderr + cluster3.diagnose()
    # answered once the old leader saw the target lead; a transfer not won within an election timeout is
    # aborted by the leader (LT-ABORT), which the command reports as an error
    assert json.loads(done.stdout) == {"leader": target, "term": term + 1}
    assert cluster3.wait_leader() == target
    writers.wait_more(before + 50 - len(acked))
    writers.stop()
    assert errors == [] and len(acked) >= before + 50, (errors, before, len(acked))
    statuses = cluster3.statuses()
    assert {s["term"] for s in statuses.values()} == {term + 1}  # one election: the transfer's
    assert "TimeoutNow: the leader hands its leadership over" in cluster3.log(target)
    assert f"transferring the leadership to node {target}" in cluster3.log(leader)
    with cluster3.client() as client:
        found = {key: client.get(key) for key in acked}
        assert found == acked
        assert {key: client.get(key, through_log=True) for key in list(acked)[:20]} == dict(list(acked.items())[:20])
    # a transfer to the leader itself is done already; to a stranger, a clear error
    done = _kv(cluster3, "transfer", str(target))
    assert done.returncode == 0 and json.loads(done.stdout) == {"leader": target, "term": term + 1}, done.stderr
    done = _kv(cluster3, "transfer", "9")
    assert done.returncode == 1 and "not a peer: 9 is not a node of this cluster" in done.stderr
    done = _kv(cluster3, "transfer", "two")
    assert done.returncode == 2 and "takes a node id" in done.stderr
    # and back again, asked of a follower that is not the target
    other = next(i for i in cluster3.ids if i not in (leader, target))
    done = _kv(cluster3, "transfer", str(leader), first=other)
    assert done.returncode == 0 and json.loads(done.stdout) == {"leader": leader, "term": term + 2}, done.stderr
    assert cluster3.wait_leader() == leader


def test_check_quorum_makes_a_leader_without_a_majority_step_down(cluster3):
    leader = cluster3.wait_leader()
    for i in cluster3.ids:
        if i != leader:
            cluster3.kill9(i)
    deadline = time.monotonic() + 20
    status: dict = {}
    while time.monotonic() < deadline:
        status = cluster3.statuses([leader]).get(leader, {})
        if status.get("role") != "leader":
            break
        time.sleep(0.05)
    assert status.get("role") == "follower", status
    assert "CQ-STEPDOWN" in cluster3.log(leader)
    # it serves no read it cannot confirm
    with cluster3.client(timeout=1.0, ids=[leader]) as client, pytest.raises(KVError, match=r"not_leader"):
        client.get("k")


def test_node_options_turn_pre_vote_and_check_quorum_off_and_the_lease_on(tmp_path):
    for options, flags in ((("--no-pre-vote", "--no-check-quorum"), (False, False, False)),
                           (("--read-lease", "--drift-bound", "1.2", "--loop", "asyncio"), (True, True, True))):
        folder = tmp_path / options[0].strip("-")
        folder.mkdir()
        cluster = LocalCluster(folder, 3, options)
        try:
            for i in cluster.ids:
                cluster.start(i)
            cluster.wait_leader()
            statuses = cluster.statuses()
            assert {(s["pre_vote"], s["check_quorum"], s["read_lease"]) for s in statuses.values()} == {flags}
            _reads_without_log_writes(cluster)
        finally:
            cluster.stop_all()


def test_node_refuses_a_lease_without_check_quorum(tmp_path):
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    key.chmod(0o600)
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "node", "--id", "1", "--peers",
                           "1=127.0.0.1:1,2=127.0.0.1:2", "--data-dir", str(tmp_path / "d"), "--key-file", str(key),
                           "--read-lease", "--no-check-quorum"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "--read-lease needs CheckQuorum" in done.stderr
    assert not (tmp_path / "d").exists()
