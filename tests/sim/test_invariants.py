"""The invariant checker catches each broken rule.

Each test runs a `Replica` subclass that breaks ONE rule of docs/raft-rules.md in a `Simulation`
(`replica_class=...`), on a schedule that exposes the bug, and expects an `InvariantViolation` that
names the property, carries the seed and the step, and explains the end of the trace. The correct
`Replica` runs the very same schedule without any violation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from raftlab.core import EventKind, InstallSnapshotRequest, LogEntry, Replica, Role, Snapshot, TransitionState
from raftlab.machines import Add, KVStore
from raftlab.sim import InvariantViolation, NetworkModel, Simulation

# ----- helpers ---------------------------------------------------------------------------------------


def caught(sim: Simulation, action: Callable[[], object], prop: str) -> InvariantViolation:
    """Run `action` (which drives `sim`) and check the violation it must raise."""
    with pytest.raises(InvariantViolation) as info:
        action()
    exc = info.value
    assert exc.property == prop, f"expected {prop}, got {exc.property}: {exc.detail}"
    assert exc.seed == sim.seed
    assert exc.step == sim.steps  # the step during which it was seen (nothing ran after it)
    assert exc.detail
    # the explained tail of the trace when it was seen (during the violating step), in the message
    tail, lines = exc.tail.splitlines(), [e.explain() for e in sim.trace]
    assert len(tail) == min(15, len(lines))
    ends = [j for j in range(len(tail), len(lines) + 1) if lines[j - len(tail):j] == tail]
    assert ends, "the tail is not a stretch of the explained trace"
    assert sim.trace[ends[-1] - 1].step == exc.step
    message = str(exc)
    assert message.startswith(f"{prop} violated at step {sim.steps} (seed {sim.seed}): {exc.detail}")
    assert exc.tail in message
    assert isinstance(exc, AssertionError)
    return exc


def drop_in_flight_from(sim: Simulation, node: int) -> None:
    for flight in sim.in_flight():
        if flight.source == node:
            sim.drop_message(flight.id)


def elect(sim: Simulation, timeout: float = 5.0) -> int:
    sim.run_until(lambda s: s.leader() is not None, timeout)
    leader = sim.leader()
    assert leader is not None
    return leader


def commit_some(sim: Simulation, count: int = 2, on: int | None = None) -> int:
    """Elect a leader and commit `count` puts, applied on `on` nodes (default all); returns the leader."""
    leader = elect(sim)
    for k in range(count):
        sim.one(KVStore.put(1, k + 1, f"k{k}", f"v{k}"), k=sim.n if on is None else on)
    return leader


# ----- Election Safety -------------------------------------------------------------------------------


class CountsRefusals(Replica):
    """C-WIN broken: a refused vote is counted as granted."""

    def handle_vote_response(self, m):  # type: ignore[no-untyped-def]
        super().handle_vote_response(dataclasses.replace(m, vote_granted=True))


class OneVoteEnough(Replica):
    """C-WIN broken: its own vote is a majority."""

    def has_majority(self, count: int) -> bool:
        return count >= 1


def split_vote(cls: type[Replica], seed: int) -> Simulation:
    # Election timers within 1 ms of each other: every node becomes a candidate of term 1 before any
    # VoteRequest (5-15 ms latency) arrives, so each votes for itself and refuses the others.
    sim = Simulation(5, seed=seed, election_timeout=(0.15, 0.151), replica_class=cls)
    sim.run(1.0)
    return sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_election_safety_refused_votes_counted(seed: int) -> None:
    sim = Simulation(5, seed=seed, election_timeout=(0.15, 0.151), replica_class=CountsRefusals)
    exc = caught(sim, lambda: sim.run(1.0), "Election Safety")
    assert "both leaders of term" in exc.detail
    assert "won the election" in exc.tail
    correct = split_vote(Replica, seed)  # the correct replica: split votes, never two leaders
    assert any("already voted" in e.data["why"] for e in correct.trace.of_kind(EventKind.VOTE_REFUSED))


def random_sim(cls: type[Replica], seed: int) -> Simulation:
    return Simulation(5, seed=seed, replica_class=cls, network=NetworkModel(latency=(0.005, 0.05), drop=0.05))


def random_elections(sim: Simulation) -> None:
    """Slow, lossy links (split votes are likely), and a leader crash for a second round."""
    sim.run(1.0)
    leader = sim.leader()
    if leader is not None:
        sim.crash(leader)
    sim.run(1.0)


def test_election_safety_random_search() -> None:
    seeds = range(1, 11)
    found = []
    for seed in seeds:
        try:
            random_elections(random_sim(CountsRefusals, seed))
        except InvariantViolation as exc:
            assert exc.property == "Election Safety" and exc.seed == seed
            found.append(seed)
    assert found, "no seed exposed the bug"
    for seed in seeds:
        random_elections(random_sim(Replica, seed))  # the correct replica is never caught
    # the seed in the report is enough to replay it: same step, same detail, same tail
    sim = random_sim(CountsRefusals, found[0])
    first = caught(sim, lambda: random_elections(sim), "Election Safety")
    with pytest.raises(InvariantViolation) as again:
        random_elections(random_sim(CountsRefusals, found[0]))
    assert (again.value.step, again.value.detail, again.value.tail) == (first.step, first.detail, first.tail)


def test_election_safety_one_vote_enough() -> None:
    def schedule(cls: type[Replica]) -> Simulation:
        sim = Simulation(5, seed=4, replica_class=cls)
        sim.partition([0], [1], [2], [3], [4])
        sim.run(1.0)
        return sim

    sim = Simulation(5, seed=4, replica_class=OneVoteEnough)
    sim.partition([0], [1], [2], [3], [4])
    exc = caught(sim, lambda: sim.run(1.0), "Election Safety")
    assert "term 1" in exc.detail
    correct = schedule(Replica)
    assert correct.leader() is None  # nobody can win alone
    assert all(r.role is Role.CANDIDATE for r in correct.replicas)


# ----- Leader Append-Only ----------------------------------------------------------------------------


class DropsLastOnHeartbeat(Replica):
    """A leader that deletes its own last entry when its heartbeat timer fires."""

    def tick(self, now=None):  # type: ignore[no-untyped-def]
        if (self.role is Role.LEADER and now is not None and now >= self.next_deadline
                and self.log.last_index > self.log.base_index):
            self.storage.truncate(self.log.last_index)
        super().tick(now)


def test_leader_append_only() -> None:
    sim = Simulation(5, seed=5, replica_class=DropsLastOnHeartbeat)
    exc = caught(sim, lambda: sim.run(2.0), "Leader Append-Only")
    assert "removed or overwrote" in exc.detail
    assert "heartbeat timer fired" in exc.tail
    correct = Simulation(5, seed=5)
    correct.run(2.0)
    assert correct.leader() is not None


class OverwritesLastOnHeartbeat(Replica):
    """A leader that replaces its own last entry by another transition (same index, same term) when
    its heartbeat timer fires."""

    def tick(self, now=None):  # type: ignore[no-untyped-def]
        log = self.log
        if (self.role is Role.LEADER and now is not None and now >= self.next_deadline
                and log.last_index > log.base_index and log.entry(log.last_index).transition.client != 99):
            last = log.entry(log.last_index)
            self.storage.truncate(last.index)
            self.storage.append([LogEntry(KVStore.put(99, last.index, "evil", "x"), last.index, last.term)])
        super().tick(now)


def overwrite_schedule(sim: Simulation) -> None:
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.one(KVStore.put(1, 1, "k", "v"), k=5)  # committed and applied everywhere as entry 2
    sim.run(0.5)  # heartbeats: the leader overwrites its committed entry 2


def test_leader_append_only_overwrite_in_place() -> None:
    sim = Simulation(5, seed=5, replica_class=OverwritesLastOnHeartbeat)
    exc = caught(sim, lambda: overwrite_schedule(sim), "Leader Append-Only")
    assert "overwrote" in exc.detail
    correct = Simulation(5, seed=5)
    overwrite_schedule(correct)
    leader = correct.leader()
    assert correct.replicas[leader].log[-1].transition == KVStore.put(1, 1, "k", "v")


# ----- Log Matching ----------------------------------------------------------------------------------


class SkipsConsistencyCheck(Replica):
    """AE-CHECK broken: a follower that holds an entry at prev_log_index takes it as matching,
    whatever its term."""

    def handle_append_request(self, m):  # type: ignore[no-untyped-def]
        log = self.log
        if m.term >= self.current_term and log.base_index <= m.prev_log_index <= log.last_index:
            m = dataclasses.replace(m, prev_log_term=log.term_at(m.prev_log_index))
        super().handle_append_request(m)


class StoresOtherTransition(Replica):
    """AE-APPEND broken: a follower stores something else than what the leader sent."""

    def append_entries(self, entries, rule):  # type: ignore[no-untyped-def]
        if rule == "AE-APPEND":
            entries = [dataclasses.replace(e, transition=KVStore.put(99, e.index, "bad", "bad")) for e in entries]
        super().append_entries(entries, rule)


def divergent_logs(sim: Simulation) -> None:
    """An old leader and one follower hold 6 uncommitted entries of term 1; on the majority side a
    leader of term 2 replicates its no-op and crashes before anybody learns it committed; after the
    heal the leader of term 3 sends the follower AppendEntries whose prev_log_index lands inside the
    follower's conflicting entries, with a different term."""
    old = commit_some(sim, 1)
    follower = (old + 1) % sim.n
    majority = [n for n in sim.ids if n not in (old, follower)]
    sim.partition([old, follower])
    for k in range(6):
        sim.submit(KVStore.put(2, k + 1, "lost", str(k)), to=old)
    sim.run_until(lambda s: s.replicas[follower].last_index >= 8, 1.0)
    assert sim.replicas[follower].last_index == 8

    def noop_replicated(s: Simulation) -> bool:
        return s.leader() in majority and all(s.replicas[n].last_index >= 3 for n in majority)

    sim.run_until(noop_replicated, 5.0)
    assert noop_replicated(sim)
    second = sim.leader()
    drop_in_flight_from(sim, second)
    sim.crash(second)
    sim.heal()
    sim.run(3.0)


def test_log_matching_without_consistency_check() -> None:
    sim = Simulation(5, seed=6, replica_class=SkipsConsistencyCheck)
    exc = caught(sim, lambda: divergent_logs(sim), "Log Matching")
    assert "(transition, previous term)" in exc.detail
    correct = Simulation(5, seed=6)
    divergent_logs(correct)
    logs = {tuple((e.index, e.term) for e in r.log) for r in correct.replicas if not r.crashed}
    assert len(logs) == 1  # the conflicting entries were replaced everywhere


def test_log_matching_stores_other_transition() -> None:
    sim = Simulation(3, seed=7, replica_class=StoresOtherTransition)
    exc = caught(sim, lambda: commit_some(sim, 1), "Log Matching")
    assert "another log holds it" in exc.detail
    correct = Simulation(3, seed=7)
    commit_some(correct, 1)


# ----- Leader Completeness ---------------------------------------------------------------------------


class GrantsBlindly(Replica):
    """RV-GRANT broken: votes without comparing logs (the candidate's log is taken as up to date)."""

    def handle_vote_request(self, m):  # type: ignore[no-untyped-def]
        m = dataclasses.replace(m, last_log_index=self.log.last_index,
                                last_log_term=min(self.log.last_term, m.term))
        super().handle_vote_request(m)


def lagging_candidate(sim: Simulation) -> int:
    """Node `lagger` misses every entry while its term climbs; then it comes back and the others have
    to refuse it. Returns the lagging node."""
    sim.disconnect(4)
    commit_some(sim, 3, on=4)
    sim.run(1.0)
    assert sim.replicas[4].last_index == 0 and sim.replicas[4].term > max(r.term for r in sim.replicas[:4])
    leader = sim.leader()
    assert leader is not None
    sim.crash(leader)
    sim.connect(4)
    sim.run(3.0)
    return 4


def test_leader_completeness_votes_without_up_to_date_check() -> None:
    sim = Simulation(5, seed=8, replica_class=GrantsBlindly)
    exc = caught(sim, lambda: lagging_candidate(sim), "Leader Completeness")
    assert "leads term" in exc.detail and "without the committed entry" in exc.detail
    correct = Simulation(5, seed=8)
    lagging_candidate(correct)
    assert "behind mine" in correct.trace.explain()  # the lagging node was refused
    assert all(e.node != 4 for e in correct.trace.of_kind(EventKind.BECAME_LEADER))


# ----- State Machine Safety --------------------------------------------------------------------------


class AppliesUncommitted(Replica):
    """ALL-APPLY broken: a follower applies every entry it holds, committed or not."""

    def apply_committed(self) -> None:
        if self.role is Role.LEADER:
            super().apply_committed()
            return
        while self.last_applied < self.log.last_index:
            index = self.last_applied + 1
            transition = self.log.entry(index).transition
            self.state_machine.apply_transition(transition)
            self.last_applied = index
            self.report(transition, TransitionState.APPLIED)

    def append_entries(self, entries, rule):  # type: ignore[no-untyped-def]
        super().append_entries(entries, rule)
        self.apply_committed()


def minority_writes(sim: Simulation) -> None:
    old = commit_some(sim, 1)
    sim.partition([old, (old + 1) % sim.n])
    sim.submit(KVStore.put(2, 1, "minority", "lost"), to=old)
    sim.run(0.1)
    sim.run_until(lambda s: s.leader() not in (None, old), 5.0)
    sim.one(KVStore.put(3, 1, "majority", "kept"))
    sim.heal()
    sim.run(1.0)


def test_state_machine_safety_applies_uncommitted() -> None:
    sim = Simulation(5, seed=9, replica_class=AppliesUncommitted)
    exc = caught(sim, lambda: minority_writes(sim), "State Machine Safety")
    assert "applied" in exc.detail and "where" in exc.detail
    correct = Simulation(5, seed=9)
    minority_writes(correct)
    datas = [dict(r.machine.data) for r in correct.replicas]
    assert all(d == datas[0] for d in datas) and "minority" not in datas[0] and datas[0]["majority"] == "kept"


class ReappliesAfterStepDown(Replica):
    """ALL-APPLY broken: stepping down forgets `last_applied` (but not the state machine), so the
    committed entries are applied a second time."""

    def become_follower(self, term: int, why: str) -> None:
        super().become_follower(term, why)
        self.last_applied = self.log.base_index


def step_down_everyone(sim: Simulation) -> None:
    sim.disconnect(4)
    commit_some(sim, 2, on=4)
    sim.run(0.5)
    sim.connect(4)  # its higher term makes everybody step down; the next commit re-applies
    sim.run(2.0)


def test_state_machine_safety_applies_an_index_twice() -> None:
    # "an applied index is never applied twice on the same incarnation" (docs/raft-rules.md)
    sim = Simulation(5, seed=10, replica_class=ReappliesAfterStepDown)
    caught(sim, lambda: step_down_everyone(sim), "State Machine Safety")
    correct = Simulation(5, seed=10)
    step_down_everyone(correct)


# ----- Monotonic term --------------------------------------------------------------------------------


class FollowsStaleLeader(Replica):
    """AE-STALE broken: an AppendEntries of a lower term is obeyed, and its term adopted."""

    def handle_append_request(self, m):  # type: ignore[no-untyped-def]
        if m.term < self.current_term:
            self.storage.current_term = m.term  # bypasses Storage's own check, as a buggy store would
            self.role = Role.FOLLOWER
        super().handle_append_request(m)


class TermFromSnapshot(Replica):
    """IS-LOAD broken (Little Raft 0.2): the term is taken from the snapshot's last included term."""

    def handle_snapshot_request(self, m):  # type: ignore[no-untyped-def]
        super().handle_snapshot_request(m)
        if m.term >= self.current_term:
            self.storage.current_term = m.last_included_term


def stale_leader_returns(sim: Simulation) -> None:
    old = commit_some(sim, 1)
    sim.disconnect(old)
    sim.run_until(lambda s: s.leader() not in (None, old), 5.0)
    assert sim.replicas[old].role is Role.LEADER  # it does not know yet
    sim.connect(old)
    sim.run(1.0)


def test_monotonic_term_stale_append_entries() -> None:
    sim = Simulation(5, seed=11, replica_class=FollowsStaleLeader)
    exc = caught(sim, lambda: stale_leader_returns(sim), "Monotonic term")
    assert "back to" in exc.detail
    correct = Simulation(5, seed=11)
    stale_leader_returns(correct)


def snapshot_to_newer_term(sim: Simulation) -> None:
    sim.disconnect(4)  # its term climbs while it misses everything
    commit_some(sim, 6, on=4)  # snapshots of term 1 are taken
    sim.run(1.0)
    sim.connect(4)  # everybody moves past its term; the new leader sends it a term-1 snapshot
    sim.run(3.0)


def test_monotonic_term_from_snapshot() -> None:
    sim = Simulation(5, seed=12, snapshot_delta=3, replica_class=TermFromSnapshot)
    exc = caught(sim, lambda: snapshot_to_newer_term(sim), "Monotonic term")
    assert "node 4" in exc.detail
    correct = Simulation(5, seed=12, snapshot_delta=3)
    snapshot_to_newer_term(correct)
    assert correct.trace.of_kind(EventKind.SNAPSHOT_INSTALLED)  # the schedule does exercise InstallSnapshot


# ----- Monotonic commit index ------------------------------------------------------------------------


class ForgetsCommitOnNewTerm(Replica):
    """ALL-TERM broken: a higher term resets the commit index (it only grows)."""

    def become_follower(self, term: int, why: str) -> None:
        super().become_follower(term, why)
        self.commit_index = self.log.base_index


def leader_crashes_after_commits(sim: Simulation) -> None:
    leader = commit_some(sim, 2)
    sim.crash(leader)
    sim.run(2.0)


def test_monotonic_commit_index() -> None:
    sim = Simulation(5, seed=13, replica_class=ForgetsCommitOnNewTerm)
    exc = caught(sim, lambda: leader_crashes_after_commits(sim), "Monotonic commit index")
    assert "back to 0" in exc.detail
    correct = Simulation(5, seed=13)
    leader_crashes_after_commits(correct)


# ----- Figure 8: committing an old-term entry by counting replicas --------------------------------------


class OneEntryPerMessage(Replica):
    """A legal configuration (not a broken rule): one entry per AppendEntries, so that a leader's
    earlier-term entries and its no-op travel in separate requests, as in the paper's Figure 8."""

    MAX_ENTRIES_PER_MESSAGE = 1


class CountsOldTermReplicas(OneEntryPerMessage):
    """L-COMMIT broken: commits the highest index a majority holds, whatever its term."""

    def advance_commit(self) -> None:
        if self.role is not Role.LEADER:
            return
        held = sorted([self.log.last_index, *self.match_index.values()], reverse=True)
        n = held[len(held) // 2]
        if n > self.commit_index:
            self.commit_to(n, "L-COMMIT")


def figure8(sim: Simulation) -> dict[str, int]:
    """The scenario of Figure 8 (S1..S5 are chosen by who wins; entry 1 is the first no-op):
    (a) S1 leads and replicates entry 2 only to S2, then crashes;
    (b) S5 wins with the votes of S3, S4 and appends a different entry 2, then crashes at once;
    (c) S1 (or S2, which holds the same log) wins again and replicates the old entry 2 to a majority,
        then crashes before its own no-op reaches a majority;
    (d) S5 comes back and can win with the votes of S3 and S4, overwriting entry 2 everywhere.
    Returns the roles."""
    sim.run_until(lambda s: s.leader() is not None and s.replicas[s.leader()].commit_index >= 1, 5.0)
    s1 = sim.leader()
    assert s1 is not None
    sim.run(0.1)
    s2 = (s1 + 1) % 5
    rest = [n for n in sim.ids if n not in (s1, s2)]
    for other in rest:  # (a)
        sim.cut(s1, other)
    sim.submit(KVStore.put(1, 1, "x", "old term"), to=s1)
    sim.run_until(lambda s: s.replicas[s2].last_index >= 2, 1.0)
    assert sim.replicas[s2].last_index == 2
    sim.crash(s1)
    sim.heal()
    sim.disconnect(s2)  # (b)
    s5 = elect(sim)
    assert s5 in rest
    drop_in_flight_from(sim, s5)
    sim.crash(s5)
    sim.connect(s2)  # (c)
    sim.restart(s1)

    def old_entry_on_majority(s: Simulation) -> bool:
        frame = s.frame()
        return frame.leader is not None and sum(m >= 2 for m in frame.nodes[frame.leader].match_index.values()) >= 2

    sim.run_until(old_entry_on_majority, 5.0)
    assert old_entry_on_majority(sim)
    s1c = sim.leader()
    assert s1c in (s1, s2)
    partner = s2 if s1c == s1 else s1
    drop_in_flight_from(sim, s1c)
    sim.crash(s1c)
    sim.disconnect(partner)  # (d)
    sim.restart(s5)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    roles = {"s1": s1c, "s2": partner, "s5": s5, "d": sim.leader()}
    sim.heal()
    sim.restart(s1c)
    sim.run(2.0)
    return roles


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figure8_commit_by_counting_old_term_replicas(seed: int) -> None:
    sim = Simulation(5, seed=seed, replica_class=CountsOldTermReplicas)
    exc = caught(sim, lambda: figure8(sim), "Leader Completeness")
    assert "without the committed entry 2" in exc.detail
    assert any(e.kind == EventKind.COMMITTED and e.data["index"] == 2 for e in sim.trace.of_kind(EventKind.COMMITTED))

    correct = Simulation(5, seed=seed, replica_class=OneEntryPerMessage)
    roles = figure8(correct)
    assert roles["d"] == roles["s5"]  # S5 did win in (d) ...
    x = (1, 1)  # ... and the old-term entry 2, never committed, was rightly lost
    assert all(r.machine.results.get(x) is None and "x" not in r.machine.data for r in correct.replicas)
    entry2 = {r.log[1].transition for r in correct.replicas}
    assert entry2 == {KVStore.NOOP}


# ----- State Machine Safety on the states: a snapshot with the right index and term, the wrong data ----


class SendsEmptySnapshots(Replica):
    """IS-LOAD's input broken on the leader's side: the InstallSnapshot it builds carries the data of an
    empty store, with the right last included index and term. The old checker compared only the
    transition ids applied at each index, so a follower that installed it (and then applied the next
    entries like everybody else) went unnoticed, although its store had lost every key."""

    def send(self, to, message):  # type: ignore[no-untyped-def]
        if isinstance(message, InstallSnapshotRequest):
            message = dataclasses.replace(message, data=KVStore().create_snapshot(0, 0).data)
        super().send(to, message)


def test_state_machine_safety_snapshot_with_the_wrong_data() -> None:
    sim = Simulation(5, seed=12, snapshot_delta=3, replica_class=SendsEmptySnapshots)
    exc = caught(sim, lambda: snapshot_to_newer_term(sim), "State Machine Safety")
    assert "node 4's snapshot differs at index" in exc.detail and "state digests" in exc.detail
    assert "installed a snapshot" in exc.tail
    # Unchecked, the same schedule ends with node 4's store differing from everybody else's.
    unchecked = Simulation(5, seed=12, snapshot_delta=3, replica_class=SendsEmptySnapshots, check_invariants=False)
    snapshot_to_newer_term(unchecked)
    stores = [dict(r.machine.data) for r in unchecked.replicas]
    assert stores[4] != stores[0] == stores[1] == stores[2] == stores[3] and "k0" not in stores[4]
    correct = Simulation(5, seed=12, snapshot_delta=3)
    snapshot_to_newer_term(correct)
    assert correct.trace.of_kind(EventKind.SNAPSHOT_INSTALLED)
    assert all(dict(r.machine.data) == dict(correct.replicas[0].machine.data) for r in correct.replicas)


class AltersAStateMachine(Replica):
    """ALL-APPLY broken in the state machine's use: on node 3, applying entry 4 also writes a key that
    no transition wrote. Its ids are right, so only the states tell; node 3 takes a snapshot at 6 later."""

    def apply_committed(self) -> None:
        before = self.last_applied
        super().apply_committed()
        if self.id == 3 and before < 4 <= self.last_applied:
            self.state_machine.machine._data["ghost"] = "boo"  # the simulation's tap wraps the machine


def test_state_machine_safety_states_compared_at_snapshot_indices() -> None:
    sim = Simulation(5, seed=3, snapshot_delta=3, replica_class=AltersAStateMachine)
    exc = caught(sim, lambda: commit_some(sim, 6), "State Machine Safety")
    assert "node 3's" in exc.detail and "differs at index" in exc.detail
    correct = Simulation(5, seed=3, snapshot_delta=3)
    commit_some(correct, 6)
    assert correct.checker is not None and correct.checker.digests  # states were compared


class SnapshotsAStaleState(Replica):
    """SNAP-TAKE broken: a new snapshot records the right last included index and term, but the data of
    the node's previous snapshot (as a snapshot that is never refreshed would). Every node makes the
    same mistake at the same indices, so their snapshots agree with each other; only a node's own state
    machine, which has applied exactly up to the snapshot's index, shows that the snapshot does not hold it."""

    def take_snapshot(self) -> None:
        before = self.log.snapshot
        super().take_snapshot()
        after = self.log.snapshot
        if before is not None and after is not before:
            self.storage.save_snapshot(dataclasses.replace(after, data=before.data))


def test_state_machine_safety_a_snapshot_that_does_not_hold_the_state() -> None:
    sim = Simulation(5, seed=3, snapshot_delta=3, replica_class=SnapshotsAStaleState)
    exc = caught(sim, lambda: commit_some(sim, 8), "State Machine Safety")
    assert "state machine, at its snapshot, differs at index 6" in exc.detail
    node = int(exc.detail.split()[1].rstrip("'s"))
    assert f"from node {node}'s snapshot" in exc.detail  # (its own snapshot, the first seen at 6)
    # Unchecked, a node that restarts from such a snapshot has lost the keys written since the previous one.
    unchecked = Simulation(5, seed=3, snapshot_delta=3, replica_class=SnapshotsAStaleState, check_invariants=False)
    commit_some(unchecked, 8)
    unchecked.crash(0)
    unchecked.restart(0)
    unchecked.run(1.0)
    stores = [dict(r.machine.data) for r in unchecked.replicas]
    assert stores[0] != stores[1] == stores[2] == stores[3] == stores[4]
    correct = Simulation(5, seed=3, snapshot_delta=3)
    commit_some(correct, 8)
    assert correct.replicas[0].snapshot_index >= 6 and correct.checker is not None and 6 in correct.checker.digests


def test_a_state_machine_that_cannot_be_digested_is_skipped() -> None:
    """The digest check reads `ObservableStateMachine` states only; other machines run unchecked there."""

    class Plain:
        """A counter written to the protocol alone (not an ObservableStateMachine)."""

        NOOP = Add("noop", 0)

        def __init__(self) -> None:
            self.value = 0

        def register_transition_state(self, transition_id: object, state: TransitionState) -> None:
            pass

        def apply_transition(self, transition: Add) -> None:
            self.value += transition.delta

        def get_pending_transitions(self) -> list[Add]:
            return []

        def get_snapshot(self) -> None:
            return None

        def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
            return Snapshot(last_included_index, last_included_term, self.value)

        def set_snapshot(self, snapshot: Snapshot) -> None:
            self.value = snapshot.data

    sim = Simulation(3, seed=3, snapshot_delta=2, state_machine=Plain)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    for k in range(5):
        sim.one(Add(k, k), k=3)
    assert sim.checker is not None and not sim.checker.digests and sim.replicas[0].snapshot_index > 0


# ----- Log Matching on every entry of a batch ------------------------------------------------------------


class AltersTheMiddleOfABatch(Replica):
    """AE-APPEND broken: a follower stores, for one entry in the middle of a batch of three or more,
    another transition than it received (same index, same term). The old checker compared only the
    last entry of each batch; this entry is never committed in the schedule below, so nothing else
    showed it either."""

    def append_entries(self, entries, rule):  # type: ignore[no-untyped-def]
        if rule == "AE-APPEND" and len(entries) >= 3:
            k = len(entries) // 2
            bad = dataclasses.replace(entries[k], transition=KVStore.put(99, entries[k].index, "bad", "bad"))
            entries = [*entries[:k], bad, *entries[k + 1:]]
        super().append_entries(entries, rule)


def minority_batch(sim: Simulation) -> None:
    """An old leader, cut off with one follower, takes five writes; the follower receives them in a
    batch (flow control sends what accumulated while the first request was in flight); they never
    commit, and the majority's new leader replaces them after the heal."""
    old, _ = batch_in_a_minority(sim)
    sim.run_until(lambda s: s.leader() not in (None, old), 5.0)
    sim.one(KVStore.put(3, 1, "majority", "kept"))
    sim.heal()
    sim.run(1.0)


def batch_in_a_minority(sim: Simulation) -> tuple[int, int]:
    """The first half of `minority_batch`; returns (old leader, follower)."""
    old = commit_some(sim, 1)
    follower = (old + 1) % sim.n
    sim.partition([old, follower])
    for k in range(5):
        sim.submit(KVStore.put(2, k + 1, "lost", str(k)), to=old)
    sim.run(0.3)
    return old, follower


def test_log_matching_every_entry_of_a_batch() -> None:
    sim = Simulation(5, seed=14, replica_class=AltersTheMiddleOfABatch)
    exc = caught(sim, lambda: minority_batch(sim), "Log Matching")
    assert "another log holds it" in exc.detail and "(99," in exc.detail
    batches = [e for e in sim.trace.of_kind(EventKind.APPENDED)
               if e.rule == "AE-APPEND" and e.data["last"] >= e.data["first"] + 2]
    assert batches and batches[-1].step == exc.step  # seen when the batch arrived
    # Unchecked: the two logs end alike but differ at one index in the middle, with the same term.
    unchecked = Simulation(5, seed=14, replica_class=AltersTheMiddleOfABatch, check_invariants=False)
    old, follower = batch_in_a_minority(unchecked)
    logs = unchecked.replicas[old].log, unchecked.replicas[follower].log
    assert logs[0][-1] == logs[1][-1] and len(logs[0]) == len(logs[1])
    differ = [(a.index, a.term == b.term) for a, b in zip(*logs, strict=True) if a != b]
    assert len(differ) == 1 and differ[0][1]
    correct = Simulation(5, seed=14)
    minority_batch(correct)
    assert all("lost" not in r.machine.data and r.machine.data["majority"] == "kept" for r in correct.replicas)
