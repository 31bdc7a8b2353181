"""A follower killed, then restarted on its data folder, catches up over TCP with what it needs: the log
entries it lacks, each sent about once (flow control: probe, then pipeline), or, behind a compacted log,
one InstallSnapshot and the entries after it. Counted with the per-peer counters of the nodes' status
(what `raftlab kv status` prints); counts only, never times (`benchmarks/bench_net.py --catch-up-only`
measures the same on 5 nodes and 20,000 entries)."""

from __future__ import annotations


import pytest

from .conftest import LocalCluster, wait_for

pytestmark = pytest.mark.timeout(120)

WRITES = 300  # entries written while the follower is down


def _sent_to(statuses: dict[int, dict], peer: int) -> dict[str, int]:
    total = {"entries_sent": 0, "bytes_sent": 0, "snapshots_sent": 0}
    for status in statuses.values():
        for key in total:
            total[key] += status["peers"][str(peer)][key]
    return total


@pytest.mark.parametrize("path", ["log", "snapshot"])
def test_a_restarted_follower_catches_up_with_what_it_needs(tmp_path, path, record_property):
    cluster = LocalCluster(tmp_path, 3, ("--snapshot-every", "50" if path == "snapshot" else "0"))
    try:
        for i in cluster.ids:
            cluster.start(i)
        leader = cluster.wait_leader()
        behind = next(i for i in cluster.ids if i != leader)
        live = [i for i in cluster.ids if i != behind]
        with cluster.client() as client:
            for n in range(20):
                client.put(f"w{n}", "warm")

        def settled() -> dict | None:
            s = cluster.statuses([leader, behind])
            if len(s) == 2 and s[leader]["commit_index"] == s[leader]["last_index"] == s[behind]["last_applied"]:
                return s[behind]
            return None

        have = wait_for("the follower holds every entry", settled)["last_index"]
        cluster.kill9(behind)
        with cluster.client(ids=live) as client:
            for n in range(WRITES):
                client.put(f"k{n}", f"v{n}")
        lead = cluster.statuses([leader])[leader]
        assert lead["role"] == "leader" and lead["commit_index"] == lead["last_index"], lead
        if path == "snapshot":  # the entries it lacks were compacted away
            assert lead["snapshot_index"] > have, (lead, have)
        else:
            assert lead["snapshot_index"] == 0, lead
        before = _sent_to(wait_for("the others answer", lambda: (s := cluster.statuses(live)) and len(s) == 2 and s),
                          behind)

        cluster.start(behind)
        target = lead["last_index"]

        def caught_up() -> dict | None:
            nonlocal target
            follower = cluster.statuses([behind]).get(behind)
            others = cluster.statuses(live)
            if follower is None or len(others) < 2:
                return None
            target = max(target, *(s["commit_index"] for s in others.values()))  # a new leader's no-op too
            return others if follower["last_applied"] >= target else None

        others = wait_for("the follower catches up", caught_up, 60)
        sent = _sent_to(others, behind)
        sent = {key: sent[key] - before[key] for key in sent}
        needed = target - have
        record_property("catch_up", {"entries_needed": needed, **sent})
        assert needed >= WRITES
        assert sent["entries_sent"] / needed <= 1.2, (sent, needed, cluster.diagnose())
        assert sent["bytes_sent"] > 0
        if path == "snapshot":
            assert sent["snapshots_sent"] == 1, (sent, cluster.diagnose())
            assert "installed the snapshot of leader" in cluster.log(behind)
            assert sent["entries_sent"] < needed  # the snapshot carried the rest
        else:
            assert sent["snapshots_sent"] == 0, sent
            assert sent["entries_sent"] >= WRITES
        with cluster.client() as probe:
            address = cluster.client_address(behind)
            assert [probe.local_get(address, f"k{n}") for n in (0, WRITES // 2, WRITES - 1)] == \
                ["v0", f"v{WRITES // 2}", f"v{WRITES - 1}"]
    finally:
        cluster.stop_all()
