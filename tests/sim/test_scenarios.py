"""Scenario tests in virtual time, in the spirit of the MIT 6.824 Raft lab tests (2A, 2B, 2C, 2D).

Every scenario runs real Replicas in the deterministic `Simulation`, with the invariant checker on
(the default), so Raft's safety properties are checked after every step of every run; each test
also asserts progress within a bounded virtual time. Each is parametrized over several seeds; the
random choices a test makes itself come from ``random.Random(seed)``, so every run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from typing import Any

import pytest

from raftlab.core import EventKind, Role, TransitionState
from raftlab.machines import KVCommand, KVStore
from raftlab.sim import NetworkModel, SimKind, Simulation, Submission

SEEDS = [1, 2, 3, 4, 5]
MORE_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]

ELECTION = 0.30  # the default election timeout's upper bound (seconds)
FIG8_LEADER_LOSSES = {"crash": 40, "unreliable": 40}  # leaders lost per Figure 8 run


# ----- helpers -----------------------------------------------------------------------------------


class Cmds:
    """Commands with unique (client, seq): one fresh client per command unless told otherwise."""

    def __init__(self, first_client: int = 1) -> None:
        self.next_client = first_client

    def _client(self) -> int:
        client, self.next_client = self.next_client, self.next_client + 1
        return client

    def put(self, key: str | None = None, value: str | None = None) -> KVCommand:
        c = self._client()
        return KVStore.put(c, 1, key if key is not None else f"k{c}", value if value is not None else f"v{c}")

    def append(self, key: str, token: str) -> KVCommand:
        return KVStore.append(self._client(), 1, key, token)


def tail(sim: Simulation, last: int = 30) -> str:
    return f"seed={sim.seed} t={sim.now:.3f}s step={sim.steps}\n{sim.trace.explain(last=last)}"


def tid(transition: Any) -> Hashable:
    return transition.get_id()


def live(sim: Simulation, nodes: Iterable[int] | None = None) -> list[int]:
    return [i for i in (sim.ids if nodes is None else nodes) if not sim.replicas[i].crashed]


def group_leader(sim: Simulation, group: Iterable[int]) -> int | None:
    """The leader of the highest term among the live nodes of `group`, if that term has one there."""
    nodes = live(sim, group)
    if not nodes:
        return None
    top = max(sim.replicas[i].term for i in nodes)
    leaders = [i for i in nodes if sim.replicas[i].role is Role.LEADER and sim.replicas[i].term == top]
    assert len(leaders) <= 1, f"two leaders of term {top}: {leaders}\n{tail(sim)}"
    return leaders[0] if leaders else None


def wait_leader(sim: Simulation, group: Iterable[int] | None = None, timeout: float = 2.0) -> int:
    """A leader among `group` (default: all nodes) within `timeout` virtual seconds, else fail."""
    nodes = list(sim.ids if group is None else group)
    start = sim.now
    sim.run_until(lambda s: group_leader(s, nodes) is not None, timeout)
    leader = group_leader(sim, nodes)
    assert leader is not None, f"no leader among {nodes} within {timeout}s (from {start:.3f}s)\n{tail(sim)}"
    # exactly one leader per term among the live nodes
    per_term: dict[int, list[int]] = {}
    for i in live(sim):
        if sim.replicas[i].role is Role.LEADER:
            per_term.setdefault(sim.replicas[i].term, []).append(i)
    assert all(len(v) == 1 for v in per_term.values()), f"several leaders in one term: {per_term}\n{tail(sim)}"
    return leader


def leaders_by_term(sim: Simulation, since: int = 0) -> dict[int, set[int]]:
    """term -> nodes that became leader in it, from the trace (events from index `since`)."""
    result: dict[int, set[int]] = {}
    for e in sim.trace.events[since:]:
        if e.kind == EventKind.BECAME_LEADER:
            result.setdefault(e.data["term"], set()).add(e.node)
    return result


def one(sim: Simulation, command: KVCommand, k: int | None = None, timeout: float = 10.0,
        retry: float = 1.0) -> Submission:
    """`sim.one`, failing the test with the trace tail on a timeout."""
    try:
        return sim.one(command, k=k, timeout=timeout, retry=retry)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{tail(sim)}") from None


def log_index_of(sim: Simulation, node: int, transition_id: Hashable) -> list[int]:
    """The indices at which `node`'s log (after its snapshot) holds the transition."""
    return [e.index for e in sim.replicas[node].log if tid(e.transition) == transition_id]


def _tip(sim: Simulation, node: int) -> tuple[int, int]:
    """(last index, last term) of a node's log, the snapshot's if the log is empty."""
    r = sim.replicas[node]
    return (r.last_index, r.log[-1].term if r.log else sim.frame().nodes[node].snapshot_term)


def converged(sim: Simulation, nodes: Iterable[int] | None = None) -> bool:
    """Every live node of `nodes` holds the same log tip and has committed and applied all of it."""
    rs = [sim.replicas[i] for i in live(sim, nodes)]
    if not rs:
        return True
    tip = _tip(sim, rs[0].id)
    return all(_tip(sim, r.id) == tip and r.commit_index == r.last_index == r.last_applied for r in rs)


def wait_converged(sim: Simulation, nodes: Iterable[int] | None = None, timeout: float = 3.0) -> None:
    nodes = list(sim.ids if nodes is None else nodes)
    sim.run_until(lambda s: converged(s, nodes), timeout)
    assert converged(sim, nodes), (
        f"nodes {nodes} did not converge within {timeout}s: (node, last, commit, applied) "
        f"{[(i, r.last_index, r.commit_index, r.last_applied) for i, r in enumerate(sim.replicas) if i in nodes]}"
        f"\n{tail(sim)}")


def assert_logs_agree(sim: Simulation, nodes: Iterable[int] | None = None, committed_only: bool = True) -> None:
    """Log entries present on two nodes at the same index (committed on both, unless told otherwise)
    have the same term and transition."""
    nodes = live(sim, nodes)
    maps = {i: {e.index: (e.term, tid(e.transition)) for e in sim.replicas[i].log} for i in nodes}
    for a in nodes:
        for b in nodes:
            if a >= b:
                continue
            limit = min(sim.replicas[a].commit_index, sim.replicas[b].commit_index) if committed_only else None
            for index, entry in maps[a].items():
                if index in maps[b] and (limit is None or index <= limit):
                    assert maps[b][index] == entry, (
                        f"nodes {a} and {b} differ at index {index}: {entry} vs {maps[b][index]}\n{tail(sim)}")


def assert_same_state(sim: Simulation, nodes: Iterable[int] | None = None) -> None:
    """Every live node of `nodes` applied the same prefix and holds the same KV data and sessions."""
    nodes = live(sim, nodes)
    ref = sim.replicas[nodes[0]]
    for i in nodes[1:]:
        r = sim.replicas[i]
        assert r.last_applied == ref.last_applied, f"applied {r.last_applied} on {i}, {ref.last_applied} on {ref.id}"
        assert dict(r.machine.data) == dict(ref.machine.data), f"KV data differs between {ref.id} and {i}"
        assert dict(r.machine.sessions) == dict(ref.machine.sessions), f"sessions differ between {ref.id} and {i}"


def assert_state_is_log_replay(sim: Simulation, node: int) -> None:
    """(No snapshots.) The node's KV state equals a fresh KVStore fed its committed log in order."""
    r = sim.replicas[node]
    assert r.snapshot_index == 0
    fresh = KVStore()
    for e in r.log[: r.last_applied]:
        fresh.apply_transition(e.transition)
    assert dict(fresh.data) == dict(r.machine.data), f"node {node}'s data is not its log replayed\n{tail(sim)}"
    assert dict(fresh.sessions) == dict(r.machine.sessions)


def assert_applied_everywhere_at_one_index(sim: Simulation, handle: Submission, nodes: Iterable[int]) -> int:
    """The handle's transition was applied on every node of `nodes`, at the same log index on all.

    `one()` may have resubmitted it, so the log can hold it more than once (the KVStore's sessions
    apply it once): every node must then hold it at the same indices, and `handle.index` (the copy
    the returned handle saw applied first) must be one of them. Returns `handle.index`."""
    nodes = list(nodes)
    assert handle.applied_on >= set(nodes), f"{handle.transition} applied only on {handle.applied_on}\n{tail(sim)}"
    where = {i: log_index_of(sim, i, handle.id) for i in nodes if sim.replicas[i].snapshot_index < handle.index}
    assert len({tuple(w) for w in where.values()}) == 1, f"indices differ: {where}\n{tail(sim)}"
    assert all(handle.index in w for w in where.values()), f"handle.index {handle.index}, logs: {where}"
    return handle.index


def reference_data(handles: Iterable[Submission], upto: int) -> dict[str, str]:
    """The KV data after applying, in index order, the `put`s of `handles` applied at index <= upto."""
    data: dict[str, str] = {}
    for h in sorted((h for h in handles if h.index is not None and h.index <= upto), key=lambda h: h.index):
        assert h.transition.op == "put"
        data[h.transition.key] = h.transition.value
    return data


# ----- 2A: leader election ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", MORE_SEEDS)
@pytest.mark.parametrize("n", [3, 5])
def test_initial_election(seed: int, n: int) -> None:
    sim = Simulation(n, seed=seed)
    sim.run_until(lambda s: s.leader() is not None, 1.5)
    assert sim.leader() is not None, f"no leader within 1.5s\n{tail(sim)}"
    leader = wait_leader(sim, timeout=0)
    # every other node learns of it
    sim.run(0.2)
    assert all(sim.replicas[i].term == sim.replicas[leader].term for i in sim.ids), tail(sim)
    # a quiet period: no failure, so the leader and its term stay and all terms agree
    term = sim.replicas[leader].term
    sim.run(2.0)
    assert sim.leader() == leader, f"leader changed without failures\n{tail(sim)}"
    assert {sim.replicas[i].term for i in sim.ids} == {term}, f"terms changed without failures\n{tail(sim)}"
    assert [sim.replicas[i].role for i in sim.ids].count(Role.LEADER) == 1
    assert all(len(nodes) == 1 for nodes in leaders_by_term(sim).values()), leaders_by_term(sim)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["disconnect", "crash"])
def test_reelection(seed: int, how: str) -> None:
    sim = Simulation(3, seed=seed)
    lose, back = (sim.disconnect, sim.connect) if how == "disconnect" else (sim.crash, sim.restart)
    leader1 = wait_leader(sim)
    term1 = sim.replicas[leader1].term

    # the leader is lost: the other two elect a new leader of a higher term
    lose(leader1)
    others = [i for i in sim.ids if i != leader1]
    leader2 = wait_leader(sim, others, timeout=2.0)
    assert leader2 != leader1 and sim.replicas[leader2].term > term1

    # the old leader comes back: it does not disturb the new one for long, and steps down
    back(leader1)
    sim.run_until(lambda s: s.replicas[leader1].role is not Role.LEADER
                  and s.replicas[leader1].term >= s.replicas[leader2].term, 1.0)
    assert sim.replicas[leader1].role is not Role.LEADER, f"old leader did not step down\n{tail(sim)}"
    leader3 = wait_leader(sim, timeout=2.0)
    sim.run(0.5)
    assert len({sim.replicas[i].term for i in sim.ids}) == 1, f"terms disagree\n{tail(sim)}"
    assert group_leader(sim, sim.ids) == leader3

    # no majority: no leader among the rest
    lose(leader3)
    lose((leader3 + 1) % 3)
    rest = (leader3 + 2) % 3
    mark = len(sim.trace)
    sim.run(2.0)
    assert sim.replicas[rest].role is not Role.LEADER
    assert leaders_by_term(sim, mark) == {}, f"a leader without a majority\n{tail(sim)}"

    # a majority again: a leader
    back((leader3 + 1) % 3)
    wait_leader(sim, [rest, (leader3 + 1) % 3], timeout=2.0)
    back(leader3)
    wait_leader(sim, timeout=2.0)
    assert all(len(nodes) == 1 for nodes in leaders_by_term(sim).values())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [3, 5])
def test_no_leader_without_majority(seed: int, n: int) -> None:
    sim = Simulation(n, seed=seed)
    rng = random.Random(seed)
    leader = wait_leader(sim)
    old_term = sim.replicas[leader].term
    lost = [leader, *rng.sample([i for i in sim.ids if i != leader], n // 2)]  # 2 of 3, 3 of 5
    rest = [i for i in sim.ids if i not in lost]
    for i in lost:
        sim.disconnect(i)
    mark = len(sim.trace)
    terms_before = {i: sim.replicas[i].term for i in rest}
    sim.run(5.0)
    assert leaders_by_term(sim, mark) == {}, f"a leader was elected without a majority\n{tail(sim)}"
    assert all(sim.replicas[i].role is not Role.LEADER for i in rest)
    assert all(sim.replicas[i].term > terms_before[i] for i in rest), "the minority should keep trying"
    # the old, isolated leader still believes it leads its (old) term; nobody else does
    assert [i for i in sim.ids if sim.replicas[i].role is Role.LEADER] == [leader]

    for i in lost:
        sim.connect(i)
    new = wait_leader(sim, timeout=3.0)
    assert sim.replicas[new].term > old_term, "the minority's higher terms force a new election"
    sim.run(0.5)
    assert sim.leader() is not None and [sim.replicas[i].role for i in sim.ids].count(Role.LEADER) == 1
    assert len({sim.replicas[i].term for i in sim.ids}) == 1


@pytest.mark.parametrize("seed", MORE_SEEDS)
def test_many_elections_seven_nodes(seed: int) -> None:
    sim = Simulation(7, seed=seed)
    rng = random.Random(seed)
    wait_leader(sim)
    for _ in range(10):
        gone = rng.sample(list(sim.ids), 3)
        for i in gone:
            sim.disconnect(i)
        # four of seven are connected: either the leader is among them or they elect one
        wait_leader(sim, [i for i in sim.ids if i not in gone], timeout=3.0)
        sim.run(rng.uniform(0.0, 0.5))
        for i in gone:
            sim.connect(i)
        wait_leader(sim, timeout=3.0)
    wait_leader(sim, timeout=3.0)
    assert all(len(nodes) == 1 for nodes in leaders_by_term(sim).values())


# ----- 2B: log agreement --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [3, 5])
def test_basic_agree(seed: int, n: int) -> None:
    sim = Simulation(n, seed=seed)
    cmds = Cmds()
    previous = None
    handles = []
    for _ in range(5):
        command = cmds.put()
        assert all(not log_index_of(sim, i, tid(command)) for i in sim.ids)  # nothing yet
        handle = one(sim, command, k=n, timeout=3.0)
        index = assert_applied_everywhere_at_one_index(sim, handle, sim.ids)
        assert previous is None or index == previous + 1, f"index {index} after {previous}: an extra entry?"
        previous = index
        handles.append(handle)
        for i in sim.ids:
            assert sim.replicas[i].machine.read(command.key) == command.value
            assert sim.replicas[i].machine.results[tid(command)] is None  # put's result
    wait_converged(sim)
    assert_logs_agree(sim)
    assert_same_state(sim)
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)
    assert dict(sim.replicas[0].machine.data) == {h.transition.key: h.transition.value for h in handles}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["disconnect", "crash"])
def test_agree_with_follower_down(seed: int, how: str) -> None:
    sim = Simulation(3, seed=seed)
    lose, back = (sim.disconnect, sim.connect) if how == "disconnect" else (sim.crash, sim.restart)
    cmds = Cmds()
    one(sim, cmds.put(), k=3)
    leader = sim.leader()
    follower = (leader + 1) % 3
    lose(follower)
    # the leader and the remaining follower can still agree
    for _ in range(4):
        h = one(sim, cmds.put(), k=2, timeout=3.0)
        assert follower not in h.applied_on
        assert_applied_everywhere_at_one_index(sim, h, [leader, (leader + 2) % 3])
    # with the remaining follower down too, nothing commits
    lose((leader + 2) % 3)
    h = sim.submit(cmds.put(), to=leader)
    assert h.state is TransitionState.QUEUED
    sim.run(2 * ELECTION * 3)
    assert not h.applied_on and sim.replicas[leader].commit_index < sim.replicas[leader].last_index, tail(sim)
    # both come back: everything converges, and the pending command commits (no one else has a newer log)
    back(follower)
    back((leader + 2) % 3)
    final = one(sim, cmds.put(), k=3, timeout=5.0)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    wait_converged(sim)
    assert_logs_agree(sim)
    assert_same_state(sim)
    if h.applied_on:
        assert_applied_everywhere_at_one_index(sim, h, sim.ids)
    else:
        assert h.state is TransitionState.UNKNOWN, tail(sim)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["disconnect", "crash"])
def test_agree_with_leader_down(seed: int, how: str) -> None:
    sim = Simulation(3, seed=seed)
    lose, back = (sim.disconnect, sim.connect) if how == "disconnect" else (sim.crash, sim.restart)
    cmds = Cmds()
    one(sim, cmds.put(), k=3)
    leader1 = sim.leader()
    lose(leader1)
    rest = [i for i in sim.ids if i != leader1]
    leader2 = wait_leader(sim, rest)
    for _ in range(4):
        h = one(sim, cmds.put(), k=2, timeout=3.0)
        assert_applied_everywhere_at_one_index(sim, h, rest)
    leader2 = wait_leader(sim, rest, timeout=0)  # (the same one, unless it was re-elected)
    # the second leader down as well: the remaining node commits nothing
    lose(leader2)
    alone = next(i for i in rest if i != leader2)
    commit_before = sim.replicas[alone].commit_index
    h = sim.submit(cmds.put(), to=alone)
    sim.run(2.0)
    assert not h.applied_on and sim.replicas[alone].commit_index == commit_before, tail(sim)
    back(leader1)
    back(leader2)
    final = one(sim, cmds.put(), k=3, timeout=5.0)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    wait_converged(sim)
    assert_logs_agree(sim)
    assert_same_state(sim)
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)


@pytest.mark.parametrize("seed", SEEDS)
def test_no_agree_without_majority_then_recover(seed: int) -> None:
    sim = Simulation(5, seed=seed)
    cmds = Cmds()
    one(sim, cmds.put(), k=5)
    leader = sim.leader()
    followers = [(leader + d) % 5 for d in (1, 2, 3)]
    for f in followers:
        sim.disconnect(f)
    pending = sim.submit(cmds.put(), to=leader)
    assert pending.state is TransitionState.QUEUED
    pending_index = sim.replicas[leader].last_index
    sim.run(3.0)
    assert not pending.applied_on, tail(sim)
    assert all(sim.replicas[i].commit_index < pending_index for i in sim.ids), tail(sim)

    for f in followers:
        sim.connect(f)
    final = one(sim, cmds.put(), k=5, timeout=5.0)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    wait_converged(sim)
    assert_logs_agree(sim)
    assert_same_state(sim)
    # the pending command was either committed everywhere at its index, or truncated (unknown) and never applied
    if pending.applied_on:
        assert assert_applied_everywhere_at_one_index(sim, pending, sim.ids) == pending_index
    else:
        assert pending.state is TransitionState.UNKNOWN, tail(sim)
        assert all(not log_index_of(sim, i, pending.id) for i in sim.ids)
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_submissions(seed: int) -> None:
    sim = Simulation(5, seed=seed)
    rng = random.Random(seed)
    cmds = Cmds()
    leader = wait_leader(sim)
    handles = []
    for k in range(30):
        handles.append(sim.submit(cmds.append("x", f"{k},"), to=leader))
        if rng.random() < 0.3:
            sim.run(rng.uniform(0, 0.01))
    sim.run_until(lambda s: all(len(h.applied_on) == 5 for h in handles), 2.0)
    assert all(len(h.applied_on) == 5 for h in handles), tail(sim)
    assert sim.leader() == leader  # no failure: no new election
    indices = [assert_applied_everywhere_at_one_index(sim, h, sim.ids) for h in handles]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert indices == list(range(indices[0], indices[0] + len(indices))), "the commands are consecutive"
    wait_converged(sim)
    assert_logs_agree(sim)
    assert_same_state(sim)
    expected = "".join(f"{k}," for k in range(30))
    assert all(sim.replicas[i].machine.read("x") == expected for i in sim.ids)


@pytest.mark.parametrize("seed", SEEDS)
def test_rejoin_of_partitioned_leader(seed: int) -> None:
    sim = Simulation(3, seed=seed)
    cmds = Cmds()
    one(sim, cmds.put(), k=3)
    leader1 = sim.leader()
    sim.disconnect(leader1)
    # the old leader accepts commands it cannot commit
    stale = [sim.submit(cmds.put(), to=leader1) for _ in range(3)]
    assert all(h.state is TransitionState.QUEUED for h in stale)
    # the others elect a new leader and commit
    h2 = one(sim, cmds.put(), k=2, timeout=3.0)
    leader2 = sim.leader()
    assert leader2 != leader1
    # the new leader is cut off; the old one comes back
    sim.disconnect(leader2)
    sim.connect(leader1)
    h3 = one(sim, cmds.put(), k=2, timeout=5.0)
    # all together
    sim.connect(leader2)
    h4 = one(sim, cmds.put(), k=3, timeout=5.0)
    wait_converged(sim)
    for h in (h2, h3, h4):
        assert_applied_everywhere_at_one_index(sim, h, sim.ids)
    for h in stale:
        assert h.state is TransitionState.UNKNOWN, f"{h.states}\n{tail(sim)}"
        assert not h.applied_on
        assert all(not log_index_of(sim, i, h.id) for i in sim.ids)
    truncated = [e for e in sim.trace.of_kind(EventKind.TRUNCATED) if e.node == leader1]
    assert truncated and sum(e.data["count"] for e in truncated) >= 3
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    assert all(len(sim.replicas[i].log) == len(sim.replicas[0].log) for i in sim.ids)


def catch_up(sim: Simulation, group: list[int], lagging: list[int], timeout: float = 2.0) -> None:
    """Let `group` (just joined) elect a leader and converge; the AppendEntries this takes must be
    far fewer than one round trip per divergent entry (fast back-up with the follower's hint)."""
    top = max(sim.replicas[i].last_index for i in group)
    behind = sum(top - sim.replicas[i].commit_index for i in lagging)  # entries to replace or send
    assert behind >= 50 * len(lagging)
    sent = sim.counters["messages"]["AppendEntryRequest"]
    refusals, start = len(sim.trace.of_kind(EventKind.APPEND_REFUSED)), sim.now
    sim.run_until(lambda s: group_leader(s, group) is not None and converged(s, group), timeout)
    assert converged(sim, group), f"{group} did not converge within {timeout}s\n{tail(sim)}"
    ae = sim.counters["messages"]["AppendEntryRequest"] - sent
    refused = len(sim.trace.of_kind(EventKind.APPEND_REFUSED)) - refusals
    elapsed = sim.now - start
    heartbeats = (sim.n - 1) * (elapsed / sim.heartbeat_timeout + 2)
    assert refused <= 10, f"{refused} refusals to back up over long divergent logs\n{tail(sim)}"
    assert ae <= heartbeats + 20 and ae < behind / 2, f"{ae} AppendEntries in {elapsed:.3f}s for {behind}\n{tail(sim)}"
    assert elapsed < 1.5, f"catching up took {elapsed:.3f}s"


@pytest.mark.parametrize("seed", SEEDS)
def test_backup_over_long_divergent_logs(seed: int) -> None:
    """6.824 TestBackup2B: leaders with long uncommitted tails, swapped partitions, then everyone."""
    sim = Simulation(5, seed=seed)
    cmds = Cmds()
    one(sim, cmds.put(), k=5)

    # the leader and one follower are partitioned; they accept 50 commands that cannot commit
    leader1 = sim.leader()
    pair1 = [leader1, (leader1 + 1) % 5]
    trio1 = [i for i in sim.ids if i not in pair1]
    sim.partition(pair1, trio1)
    lost1 = [sim.submit(cmds.put(), to=leader1) for _ in range(50)]
    sim.run(ELECTION / 2)

    # the other three elect a leader and commit 50 others
    for _ in range(50):
        one(sim, cmds.put(), k=3, timeout=3.0)

    # now that leader and one follower are cut off; they accept 50 more that cannot commit
    leader2 = wait_leader(sim, trio1)
    other = next(i for i in trio1 if i != leader2)
    pair2 = [i for i in trio1 if i != other]
    sim.partition(pair2, [other], pair1)
    lost2 = [sim.submit(cmds.put(), to=leader2) for _ in range(50)]
    sim.run(ELECTION / 2)

    # the original pair joins `other`: 50 conflicting entries to replace, 51 missing ones to send
    sim.heal()
    sim.partition(pair2, [*pair1, other])
    catch_up(sim, [*pair1, other], pair1)
    assert all(not h.applied_on and h.state is TransitionState.UNKNOWN for h in lost1)
    for _ in range(50):
        one(sim, cmds.put(), k=3, timeout=3.0)

    # everyone: the second pair is ~100 entries behind, with 50 conflicting ones
    wait_leader(sim, [*pair1, other])
    sim.heal()
    catch_up(sim, list(sim.ids), pair2)
    final = one(sim, cmds.put(), k=5, timeout=3.0)
    wait_converged(sim)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    for h in lost1 + lost2:
        assert not h.applied_on and h.state is TransitionState.UNKNOWN, h.states
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)
    assert sim.counters["messages"]["AppendEntryRequest"] < 2500



# ----- 2C: persistence ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_persist_crash_some(seed: int) -> None:
    """6.824 TestPersist1 and TestPersist3: crash and restart some nodes; nothing committed is lost."""
    sim = Simulation(3, seed=seed)
    cmds = Cmds()
    handles = [one(sim, cmds.put(), k=3)]
    # crash one follower at a time and the leader at a time
    leader1 = sim.leader()
    sim.crash(leader1)
    sim.restart(leader1)
    handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
    leader2 = sim.leader()
    sim.crash(leader2)
    handles.append(one(sim, cmds.put(), k=2, timeout=5.0))
    sim.restart(leader2)
    # the restarted node rebuilds its applied state from the log once it learns the commit index
    sim.run_until(lambda s: s.replicas[leader2].last_applied >= handles[-1].index, 2.0)
    assert sim.replicas[leader2].last_applied >= handles[-1].index, tail(sim)
    assert all(sim.replicas[leader2].machine.read(h.transition.key) == h.transition.value for h in handles)
    handles.append(one(sim, cmds.put(), k=3, timeout=5.0))

    # TestPersist3: a partitioned node with a stale log and a restarted old leader
    leader = sim.leader()
    stale = (leader + 2) % 3
    sim.disconnect(stale)
    handles.append(one(sim, cmds.put(), k=2, timeout=3.0))
    sim.crash(leader)
    sim.crash((leader + 1) % 3)
    sim.connect(stale)
    sim.restart(leader)
    handles.append(one(sim, cmds.put(), k=2, timeout=5.0))
    sim.restart((leader + 1) % 3)
    handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
    wait_converged(sim)
    for h in handles:
        assert_applied_everywhere_at_one_index(sim, h, sim.ids)
    assert_logs_agree(sim)
    assert_same_state(sim)
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)
    assert dict(sim.replicas[0].machine.data) == reference_data(handles, sim.replicas[0].last_applied)


@pytest.mark.parametrize("seed", SEEDS)
def test_persist_crash_all(seed: int) -> None:
    sim = Simulation(5, seed=seed)
    rng = random.Random(seed)
    cmds = Cmds()
    handles: list[Submission] = []
    for _ in range(3):
        for _ in range(3):
            handles.append(one(sim, cmds.put(), k=5, timeout=5.0))
        wait_converged(sim)
        before = dict(sim.replicas[0].machine.data)
        assert before == reference_data(handles, sim.replicas[0].last_applied)
        for i in rng.sample(list(sim.ids), 5):
            sim.crash(i)
        sim.run(rng.uniform(0, 0.5))
        for i in rng.sample(list(sim.ids), 5):
            sim.restart(i)
        # the logs survived; the state machines are rebuilt once the new leader commits its no-op
        assert all(sim.replicas[i].machine.data == {} and sim.replicas[i].last_applied == 0 for i in sim.ids)
        wait_leader(sim, timeout=3.0)
        wait_converged(sim, timeout=3.0)
        for i in sim.ids:
            assert dict(sim.replicas[i].machine.data) == before, tail(sim)
    # 6.824 TestPersist2: crash in waves, restart in waves
    for _ in range(3):
        handles.append(one(sim, cmds.put(), k=5, timeout=5.0))
        leader = sim.leader()
        sim.crash((leader + 1) % 5)
        sim.crash((leader + 2) % 5)
        handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
        sim.crash((leader + 0) % 5)
        sim.crash((leader + 3) % 5)
        sim.crash((leader + 4) % 5)
        sim.restart((leader + 1) % 5)
        sim.restart((leader + 2) % 5)
        sim.run(ELECTION)
        sim.restart((leader + 3) % 5)
        handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
        sim.restart((leader + 4) % 5)
        sim.restart((leader + 0) % 5)
    handles.append(one(sim, cmds.put(), k=5, timeout=5.0))
    wait_converged(sim)
    for h in handles:
        assert_applied_everywhere_at_one_index(sim, h, sim.ids)
    assert_logs_agree(sim)
    assert_same_state(sim)
    assert dict(sim.replicas[0].machine.data) == reference_data(handles, sim.replicas[0].last_applied)


@pytest.mark.parametrize("seed", MORE_SEEDS)
@pytest.mark.parametrize("mode", ["crash", "unreliable"])
def test_figure8(seed: int, mode: str) -> None:
    """6.824 TestFigure8 / TestFigure8Unreliable: leaders lost at random moments, often with
    uncommitted entries of their term. The invariant checker catches any Figure 8 violation
    (an older-term entry committed by counting replicas, then overwritten)."""
    sim = Simulation(5, seed=seed)
    rng = random.Random(seed)
    cmds = Cmds()
    one(sim, cmds.put(), k=1)
    if mode == "unreliable":
        sim.network.drop = 0.1
        sim.network.duplicate = 0.1
        sim.network.latency = (0.001, 0.03)
    down: set[int] = set()

    def lose(node: int) -> None:
        (sim.crash if mode == "crash" else sim.disconnect)(node)

    def back(node: int) -> None:
        if mode == "crash":
            sim.restart(node)
        else:  # as in 6.824: reconnect it to the connected nodes only (sim.connect restores all its links)
            sim.connect(node)
            for d in down:
                sim.cut(node, d)
                sim.cut(d, node)

    handles = []
    losses, iteration = 0, 0
    while losses < FIG8_LEADER_LOSSES[mode]:
        assert sim.now < 40.0, f"only {losses} leaders in 40s of virtual time\n{tail(sim)}"
        iteration += 1
        if mode == "unreliable" and iteration == 20:  # long reordering on some links
            for a, b in rng.sample([(a, b) for a in sim.ids for b in sim.ids if a != b], 4):
                sim.network.set_link(a, b, latency=(0.001, 0.2))
        leader = None
        for i in live(sim):  # every node that believes it leads takes a command (stale leaders too)
            if sim.replicas[i].role is Role.LEADER and (i not in down or rng.random() < 0.2):
                handles.append(sim.submit(cmds.put(), to=i))
                if i not in down:
                    leader = i
        if rng.random() < 0.1:
            sim.run(rng.uniform(0, ELECTION / 2))
        else:
            sim.run(rng.uniform(0, 0.013))
        if leader is not None and (mode == "crash" or rng.random() < 0.5):
            lose(leader)
            down.add(leader)
            losses += 1
        if len(down) > 2:
            s = rng.choice(list(sim.ids))
            if s in down:
                down.discard(s)
                back(s)
    for i in list(down):
        down.discard(i)
        back(i)
    final = one(sim, cmds.put(), k=5, timeout=10.0)
    sim.network.drop, sim.network.duplicate, sim.network.latency = 0.0, 0.0, (0.005, 0.015)
    for a, b in list(sim.network.links):
        sim.network.clear_link(a, b)
    wait_converged(sim, timeout=5.0)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    for h in handles:  # each command ends applied on all nodes, or on none
        assert len(h.applied_on) in (0, 5), h.states
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)


class Client:
    """A client with its own key: it appends ``seq;`` for seq = 1, 2, ... one at a time, retrying the
    same command (same session seq) until a node reports it applied."""

    def __init__(self, sim: Simulation, client: int, rng: random.Random, pick: str) -> None:
        self.sim, self.client, self.rng, self.pick = sim, client, rng, pick
        self.seq = 0
        self.acked: list[int] = []
        self.handle: Submission | None = None
        self.sent_at = 0.0
        self._next()

    @property
    def key(self) -> str:
        return f"c{self.client}"

    def _next(self) -> None:
        self.seq += 1
        self.command = KVStore.append(self.client, self.seq, self.key, f"{self.seq};")
        self.handle = None

    def _target(self) -> int | None:
        if self.pick == "random":
            return self.rng.choice(self.sim.ids)
        return self.sim.leader()

    def poll(self, retry: float = 0.5) -> None:
        h = self.handle
        if h is not None and h.state is TransitionState.APPLIED:
            self.acked.append(self.seq)
            self._next()
            h = None
        if h is None or h.state is None or h.state.abandoned or self.sim.now - self.sent_at > retry:
            to = self._target()
            if to is not None:
                self.handle = self.sim.submit(self.command, to=to)
                self.sent_at = self.sim.now

    def check(self, value: str | None) -> None:
        """The final value of its key: each acknowledged command exactly once, in order."""
        seqs = [int(t) for t in (value or "").split(";") if t]
        assert seqs == sorted(set(seqs)), f"client {self.client}: duplicated or reordered appends {seqs}"
        assert set(self.acked) <= set(seqs), f"client {self.client}: acknowledged {self.acked}, stored {seqs}"
        assert set(seqs) <= set(self.acked) | {self.seq}, f"client {self.client}: unknown appends {seqs}"


@pytest.mark.parametrize("seed", MORE_SEEDS)
def test_unreliable_agree(seed: int) -> None:
    # Raft's timing requirement (§5.6): broadcast time << election timeout. A round trip here takes up
    # to 0.4 s, so the election timeout is 0.45-0.9 s (with 0.15-0.3 s only a flood of messages keeps
    # a leader in office: each late heartbeat starts an election).
    net = NetworkModel(latency=(0.001, 0.2), drop=0.15, duplicate=0.1)
    sim = Simulation(5, seed=seed, network=net, election_timeout=(0.45, 0.9))
    rng = random.Random(seed)
    clients = [Client(sim, c, rng, "leader") for c in range(1, 6)]
    end = sim.now + 8.0
    while sim.now < end:
        for c in clients:
            c.poll(retry=1.0)
        sim.run(0.02)
    acked = sum(len(c.acked) for c in clients)
    assert acked >= 60, f"only {acked} commands acknowledged in 8s on an unreliable network\n{tail(sim)}"
    sim.network.drop, sim.network.duplicate, sim.network.latency = 0.0, 0.0, (0.005, 0.015)
    final = one(sim, KVStore.put(100, 1, "final", "yes"), k=5, timeout=5.0)
    wait_converged(sim)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    for c in clients:
        c.check(sim.replicas[0].machine.read(c.key))
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)


@pytest.mark.parametrize("seed", MORE_SEEDS)
@pytest.mark.parametrize("unreliable", [False, True])
def test_churn(seed: int, unreliable: bool) -> None:
    sim = Simulation(5, seed=seed)
    rng = random.Random(seed)  # the schedule of faults: the same whatever the replicas do
    if unreliable:
        sim.network.drop, sim.network.duplicate, sim.network.latency = 0.1, 0.1, (0.001, 0.05)
    clients = [Client(sim, c, random.Random(f"clients/{seed}"), "random") for c in range(1, 4)]
    end = sim.now + 6.0
    while sim.now < end:
        r = rng.random()
        node = rng.choice(sim.ids)
        if r < 0.2:
            sim.disconnect(node)
        elif r < 0.5:
            sim.connect(node)
        elif r < 0.6:
            sim.crash(node)
        elif r < 0.8:
            sim.restart(node)
        for _ in range(rng.randint(5, 15)):
            for c in clients:
                c.poll(retry=0.3)
            sim.run(0.02)
    sim.heal()
    for i in sim.ids:
        sim.restart(i)
    sim.network.drop, sim.network.duplicate, sim.network.latency = 0.0, 0.0, (0.005, 0.015)
    final = one(sim, KVStore.put(100, 1, "final", "yes"), k=5, timeout=5.0)
    wait_converged(sim)
    assert_applied_everywhere_at_one_index(sim, final, sim.ids)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    assert sum(len(c.acked) for c in clients) >= 10, f"(almost) no progress during churn\n{tail(sim)}"
    for c in clients:
        c.check(sim.replicas[0].machine.read(c.key))
    for i in sim.ids:
        assert_state_is_log_replay(sim, i)
    assert sim.counters["messages"]["VoteRequest"] > 0  # there were elections


# ----- 2D: snapshots ------------------------------------------------------------------------------

DELTA = 10


def assert_logs_short(sim: Simulation, limit: int = 2 * DELTA + 5) -> None:
    for i in live(sim):
        r = sim.replicas[i]
        assert r.last_index - r.snapshot_index <= limit, f"node {i} holds {r.last_index - r.snapshot_index} entries"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["basic", "disconnect", "crash", "unreliable"])
def test_snapshots(seed: int, mode: str) -> None:
    """6.824 TestSnapshotBasic / Install / InstallUnreliable / InstallCrash."""
    sim = Simulation(3, seed=seed, snapshot_delta=DELTA)
    rng = random.Random(seed)
    cmds = Cmds()
    if mode == "unreliable":
        sim.network.drop, sim.network.duplicate, sim.network.latency = 0.1, 0.1, (0.001, 0.05)
    handles = [one(sim, cmds.put(), k=3)]
    leader1 = sim.leader()
    for iteration in range(8):
        victim, sender = (leader1 + 1) % 3, leader1
        if iteration % 3 == 1:
            sender, victim = (leader1 + 1) % 3, leader1
        if mode in ("disconnect", "unreliable"):
            sim.disconnect(victim)
            handles.append(one(sim, cmds.put(), k=2, timeout=5.0))
        elif mode == "crash":
            sim.crash(victim)
            handles.append(one(sim, cmds.put(), k=2, timeout=5.0))
        # enough to make a snapshot (submitted to a node that may no longer lead: then refused)
        for _ in range(DELTA // 2 + rng.randrange(DELTA)):
            sim.submit(cmds.put(), to=sender)
        handles.append(one(sim, cmds.put(), k=3 if mode == "basic" else 2, timeout=5.0))
        assert_logs_short(sim)
        if mode in ("disconnect", "unreliable"):
            sim.connect(victim)
        elif mode == "crash":
            sim.restart(victim)
            r = sim.replicas[victim]
            # restarted from its snapshot: the machine is at the snapshot, the log holds the rest
            assert r.last_applied == r.snapshot_index == r.machine.applied_index
        if mode != "basic":
            handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
        leader1 = wait_leader(sim)
    sim.network.drop, sim.network.duplicate, sim.network.latency = 0.0, 0.0, (0.005, 0.015)
    handles.append(one(sim, cmds.put(), k=3, timeout=5.0))
    wait_converged(sim)
    for i in sim.ids:  # SNAP-TAKE: at most DELTA - 1 applied entries stay in the log
        r = sim.replicas[i]
        assert r.last_applied >= 4 * DELTA and 0 <= r.last_applied - r.snapshot_index < DELTA, (i, r)
    assert_logs_short(sim)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)
    for h in handles:
        assert all(sim.replicas[i].machine.read(h.transition.key) == h.transition.value for i in sim.ids)
    if mode != "basic":
        assert sim.counters["messages"]["InstallSnapshotRequest"] > 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["disconnect", "crash"])
def test_install_snapshot_to_lagging_follower(seed: int, how: str) -> None:
    sim = Simulation(3, seed=seed, snapshot_delta=DELTA)
    cmds = Cmds()
    one(sim, cmds.put(), k=3)
    leader = sim.leader()
    lagging = (leader + 1) % 3
    (sim.disconnect if how == "disconnect" else sim.crash)(lagging)
    behind_from = sim.replicas[lagging].last_index
    handles = [one(sim, cmds.put(), k=2, timeout=3.0) for _ in range(5 * DELTA)]
    leader = sim.leader()
    assert sim.replicas[leader].snapshot_index > behind_from + DELTA  # what the follower needs is compacted
    mark = len(sim.trace)
    (sim.connect if how == "disconnect" else sim.restart)(lagging)
    sim.run_until(lambda s: s.replicas[lagging].last_applied >= s.replicas[leader].commit_index, 2.0)
    assert sim.replicas[lagging].last_applied >= sim.replicas[leader].commit_index, tail(sim)
    assert sim.counters["messages"]["InstallSnapshotRequest"] > 0
    delivered = [e for e in sim.trace.events[mark:] if e.kind == SimKind.DELIVER and e.data["to"] == lagging
                 and type(e.data["message"]).__name__ == "InstallSnapshotRequest"]
    assert delivered, f"the follower did not catch up through InstallSnapshot\n{tail(sim)}"
    assert [e for e in sim.trace.events[mark:] if e.kind == EventKind.SNAPSHOT_INSTALLED and e.node == lagging]
    wait_converged(sim)
    assert dict(sim.replicas[lagging].machine.data) == dict(sim.replicas[leader].machine.data)
    assert dict(sim.replicas[lagging].machine.sessions) == dict(sim.replicas[leader].machine.sessions)
    assert all(sim.replicas[lagging].machine.read(h.transition.key) == h.transition.value for h in handles)
    final = one(sim, cmds.put(), k=3, timeout=3.0)
    assert final.applied_on == set(sim.ids)
    assert_logs_agree(sim, committed_only=False)
    assert_same_state(sim)


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_all_crash(seed: int) -> None:
    """6.824 TestSnapshotAllCrash and TestSnapshotInit: crash every node, restart from snapshots."""
    sim = Simulation(3, seed=seed, snapshot_delta=DELTA)
    rng = random.Random(seed)
    cmds = Cmds()
    handles = [one(sim, cmds.put(), k=3)]
    for _ in range(5):
        for _ in range(DELTA // 2 + rng.randrange(DELTA)):
            handles.append(one(sim, cmds.put(), k=3, timeout=3.0))
        last_index = handles[-1].index
        for i in sim.ids:
            sim.crash(i)
        for i in sim.ids:
            sim.restart(i)
            r = sim.replicas[i]
            # restarted from its snapshot: exactly the state at the snapshot index
            assert r.last_applied == r.snapshot_index == r.commit_index
            assert dict(r.machine.data) == reference_data(handles, r.snapshot_index), f"node {i}"
        h = one(sim, cmds.put(), k=3, timeout=5.0)
        assert h.index > last_index, "a command after the restart must come after the committed ones"
        handles.append(h)
        wait_converged(sim)
        assert_same_state(sim)
        assert dict(sim.replicas[0].machine.data) == reference_data(handles, sim.replicas[0].last_applied)
    assert all(sim.replicas[i].snapshot_index >= 3 * DELTA for i in sim.ids)
    assert_logs_short(sim)
    assert_logs_agree(sim, committed_only=False)
