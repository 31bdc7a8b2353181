"""Replication that never floods (FC-PROBE, FC-PIPELINE, FC-STALE, FC-SNAPSHOT), measured in messages.

Counts, not times: the simulation is deterministic, so each figure is exact for its seeds. Before flow
control, 12 back-to-back writes on 3 nodes took 46.5 AppendEntries carrying 252 entries (mean of 100 seeds).
"""

from __future__ import annotations

import statistics

import pytest

from raftlab.core import AppendEntryRequest, InstallSnapshotRequest, VoteRequest
from raftlab.machines import KVStore
from raftlab.sim import NetworkModel, Simulation

FIFO = (0.01, 0.01)  # a fixed latency: messages arrive in the order they were sent


def sent(sim: Simulation, start: int, kinds: tuple[type, ...] = (AppendEntryRequest,), to: int | None = None,
         ) -> tuple[int, int]:
    """(requests, entries) of `kinds` sent since trace event `start` (to node `to` only, if given)."""
    requests = entries = 0
    for event in sim.trace.events[start:]:
        if event.kind == "send" and isinstance(event.data["message"], kinds) and to in (None, event.data["to"]):
            requests += 1
            entries += len(getattr(event.data["message"], "entries", ()))
    return requests, entries


def settled(seed: int, latency: tuple[float, float] | None = None, **options: object) -> Simulation:
    """3 nodes, a leader elected and every follower past its first probe."""
    network = NetworkModel() if latency is None else NetworkModel(latency=latency)
    sim = Simulation(3, seed, network=network, **options)  # type: ignore[arg-type]
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.run(0.3)
    return sim


def write_all(sim: Simulation, client: int, count: int, k: int = 3) -> None:
    """Submit `count` writes back to back, then run until `k` nodes applied every one."""
    handles = [sim.submit(KVStore.put(client, seq, "x", str(seq))) for seq in range(1, count + 1)]
    sim.run_until(lambda s: all(len(h.applied_on) >= k for h in handles), 5.0)
    assert all(len(h.applied_on) >= k for h in handles)


def test_back_to_back_writes_on_a_reordering_network_take_no_more_requests_than_needed() -> None:
    """12 writes back to back to the leader of 3 nodes, the default network (5-15 ms: it reorders):
    at most 28 AppendEntries on average over 100 seeds (24 would be one per write and follower), and at
    most 1.1 x 24 entries carried: none is sent twice."""
    requests, entries = [], []
    for seed in range(100):
        sim = settled(seed)
        start = len(sim.trace)
        write_all(sim, 1, 12)
        r, e = sent(sim, start)
        requests.append(r)
        entries.append(e)
    assert statistics.mean(requests) <= 28, statistics.mean(requests)
    assert statistics.mean(entries) <= 1.1 * 24, statistics.mean(entries)
    assert min(entries) >= 24  # every follower got every entry


def behind(seed: int, missed: int, **options: object) -> tuple[Simulation, int, int]:
    """A FIFO cluster whose follower was down for `missed` writes and has just restarted: (the simulation,
    the follower, the trace position of its restart)."""
    sim = settled(seed, FIFO, **options)
    follower = next(i for i in sim.ids if i != sim.leader())
    sim.crash(follower)
    for seq in range(1, missed + 1):
        sim.one(KVStore.put(1, seq, "x", str(seq)), k=2)
    sim.restart(follower)
    return sim, follower, len(sim.trace)


def test_a_follower_restarted_33_entries_behind_is_sent_what_it_lacks_about_once() -> None:
    """FIFO network: a follower down for 33 writes, then 12 more: it is sent at most 1.2 x the 45 entries
    it needs from its restart on (before flow control: 552)."""
    for seed in range(20):
        sim, follower, start = behind(seed, 33)
        write_all(sim, 2, 12)
        _, entries = sent(sim, start, to=follower)
        assert 45 <= entries <= 1.2 * 45, (seed, entries)


def test_a_follower_behind_a_compacted_log_gets_exactly_one_snapshot() -> None:
    """FC-SNAPSHOT: a follower that needs entries the leader has compacted (snapshot_delta=5) gets one
    InstallSnapshot per catch-up on a lossless network, however many writes arrive meanwhile (before: 12)."""
    for seed in range(20):
        sim, follower, start = behind(seed, 20, snapshot_delta=5)
        write_all(sim, 2, 12, k=2)  # (the follower may receive them inside the snapshot: it never logs them)
        sim.run(0.5)
        assert sent(sim, start, (InstallSnapshotRequest,), to=follower)[0] == 1, seed
        assert sim.replicas[follower].machine.read("x") == "12"  # caught up
        flows = [e for e in sim.trace.events[start:] if e.kind == "flow_changed" and e.data["peer"] == follower]
        assert [e.data["flow"] for e in flows][:2] == ["snapshot", "replicate"], seed  # FC-SNAPSHOT, explained:
        assert "its snapshot up to index" in flows[0].explain() and flows[0].rule == "FC-SNAPSHOT"


@pytest.mark.parametrize("seed", range(20))
def test_the_course_lab_budgets_of_requests(seed: int) -> None:
    """The RPC budgets of the well-known course lab, on 3 servers with the default network: at most
    (11 + 3) x 3 = 42 requests to commit 11 entries (before flow control: 45-52 on 19 of 20 seeds), and at
    most 60 requests in an idle second."""
    sim = settled(seed)
    requests = (AppendEntryRequest, VoteRequest, InstallSnapshotRequest)
    start = len(sim.trace)
    write_all(sim, 1, 11)
    assert sent(sim, start, requests)[0] <= 42
    start = len(sim.trace)
    sim.run(1.0)
    assert sent(sim, start, requests)[0] <= 60
