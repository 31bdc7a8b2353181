"""Membership change in the simulator (issue 14): `add_node`, `promote`, `remove_node`, the invariants
across changing configurations, the frame's membership, the transcript commands, and the erratum.

Every run here checks the invariants (the default), so a test that only drives a scenario also
asserts that nothing unsafe happened along the way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from raftlab.core import Configuration, EventKind, Replica, Role, TransitionState
from raftlab.machines import KVStore
from raftlab.sim import InvariantViolation, SimKind, Simulation, Trace
from raftlab.grading.mutants import ChangesBeforeTermCommits  # MC-ONE without the thesis erratum's fix
from raftlab.sim.transcript import TranscriptError, run_transcript

# ----- helpers ---------------------------------------------------------------------------------------


class ChangesAtOnce(Replica):
    """MC-ONE broken: every configuration change is accepted, even while another is uncommitted."""

    def may_change_configuration(self, new: Configuration) -> str | None:
        return None


def elect(sim: Simulation) -> int:
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    leader = sim.leader()
    assert leader is not None
    return leader


class Writer:
    """A client that writes key k{i} = v{i}, remembering which writes were acknowledged."""

    def __init__(self, sim: Simulation) -> None:
        self.sim, self.count, self.acknowledged = sim, 0, []
        self.pending: list = []

    def one(self) -> None:
        """A write that waits until a majority applied it (`Simulation.one`)."""
        self.count += 1
        self.sim.one(KVStore.put(7, self.count, f"k{self.count}", f"v{self.count}"))
        self.acknowledged.append(self.count)

    def submit(self) -> None:
        """A write submitted to the leader, not waited for (acknowledged if its node applied it)."""
        self.count += 1
        self.pending.append((self.count, self.sim.submit(KVStore.put(7, self.count, f"k{self.count}",
                                                                     f"v{self.count}"))))

    def lost(self, nodes: list[int]) -> list[tuple[int, int]]:
        """The acknowledged writes some of `nodes` does not hold: (write, node)."""
        done = self.acknowledged + [k for k, h in self.pending if h.answer is TransitionState.APPLIED]
        return [(k, i) for k in done for i in nodes if self.sim.replicas[i].machine.read(f"k{k}") != f"v{k}"]


def members(sim: Simulation) -> list[int]:
    return sorted(sim.configuration().members)


# ----- growing and shrinking ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_grow_from_3_to_5_and_back_to_3_while_writing_loses_no_acknowledged_write(seed: int) -> None:
    sim = Simulation(3, seed=seed, snapshot_delta=8)  # snapshots too: a late learner may get one
    writer = Writer(sim)
    elect(sim)
    writer.one()
    for _ in range(2):  # 3 -> 4 -> 5
        node = sim.add_node()
        writer.submit()
        assert sim.membership(node) == "learner" and sim.replicas[node].role is Role.FOLLOWER
        sim.run_until_committed()
        writer.one()
        writer.submit()
        sim.run_until_committed(sim.promote(node))
        writer.one()
    assert sim.n == 5 and sim.ids == (0, 1, 2, 3, 4)
    assert sim.configuration() == Configuration.of(range(5))
    assert len(sim.replicas) == len(sim.frame().nodes) == 5
    leader = elect(sim)
    for node in (leader, next(i for i in sim.ids if i != leader)):  # 5 -> 4 -> 3, the leader first
        writer.submit()
        sim.run_until_committed(sim.remove_node(node))
        assert sim.replicas[node].removed and sim.replicas[node].crashed and sim.membership(node) == "removed"
        writer.one()
    assert len(sim.configuration().voters) == 3 and not sim.configuration().learners
    sim.run(0.5)
    live = [i for i in sim.ids if not sim.replicas[i].crashed]
    assert live == members(sim)
    assert not writer.lost(live)
    assert len(writer.acknowledged) == 7
    assert sim.trace.of_kind(SimKind.REMOVED) and len(sim.removed) == 2


def test_a_late_learner_catches_up_from_a_snapshot_with_its_configuration() -> None:
    """MC-SNAPSHOT: a node added after the log was compacted receives the snapshot, whose configuration
    makes it a learner it already knows it is; it is then promoted."""
    sim = Simulation(3, seed=4, snapshot_delta=5)
    elect(sim)
    for k in range(12):
        sim.one(KVStore.put(1, k + 1, "x", str(k)))
    node = sim.add_node()
    sim.run_until_committed()
    sim.run_until_committed(sim.promote(node))
    sim.run_until(lambda s: s.replicas[node].machine.read("x") == "11", 2.0)
    assert sim.replicas[node].machine.read("x") == "11"
    assert sim.trace.of_kind(EventKind.SNAPSHOT_INSTALLED)
    assert sim.replicas[node].configuration == Configuration.of(range(4))


def test_one_waits_for_a_majority_of_the_current_voters() -> None:
    """`one` (k=None) counts a majority of the configuration's voters, not of every node ever started:
    five nodes shrunk to two voters still write."""
    sim = Simulation(5, seed=6)
    leader = elect(sim)
    for node in [i for i in sim.ids if i != leader][:3]:
        sim.run_until_committed(sim.remove_node(node))
    assert len(sim.configuration().voters) == 2 and sim.n == 5
    handle = sim.one(KVStore.put(1, 1, "x", "1"), timeout=2.0)
    assert len(handle.applied_on) == 2


# ----- removing the leader -----------------------------------------------------------------------------


def test_removing_the_leader_it_leads_without_counting_itself_then_steps_down() -> None:
    """MC-STEPDOWN: the leader that removes itself keeps leading (not counting itself: with one of the
    two other voters down the change cannot commit), then steps down in its term once it is committed
    and is shut down; a new leader is elected among the rest, in a later term."""
    sim = Simulation(3, seed=2)
    leader = elect(sim)
    term = sim.replicas[leader].term
    down, up = (i for i in sim.ids if i != leader)
    sim.one(KVStore.put(1, 1, "x", "1"), k=3)
    sim.crash(down)
    change = sim.remove_node(leader)
    assert change.state is TransitionState.QUEUED
    sim.run(1.0)  # {up, down} is the new majority: the leader and `up` alone are not enough
    assert sim.leader() == leader and not change.applied_on
    sim.restart(down)
    sim.run_until_committed(change)
    stepdown = [e for e in sim.trace.of_kind(EventKind.BECAME_FOLLOWER) if e.node == leader]
    assert [e.rule for e in stepdown] == ["MC-STEPDOWN"] and stepdown[0].data["term"] == term
    removed = sim.trace.of_kind(SimKind.REMOVED)
    assert [e.node for e in removed] == [leader] and removed[0].step == stepdown[0].step
    assert "MC-STEPDOWN" in stepdown[0].explain() and "shut down for good" in removed[0].explain()
    new = elect(sim)
    assert new in (down, up) and sim.replicas[new].term > term
    sim.one(KVStore.put(1, 2, "x", "2"))
    sim.restart(leader)  # a removed node stays down
    assert sim.replicas[leader].crashed and sim.membership(leader) == "removed"


# ----- learners ----------------------------------------------------------------------------------------


def test_a_learner_never_campaigns_and_is_never_counted() -> None:
    """MC-LEARNER: a learner's acknowledgement does not commit an entry; its election timer fires but it
    never stands, even with no leader, and after a restart; it answers VoteRequests, but its vote does not
    make a leader."""
    sim = Simulation(3, seed=5)
    leader = elect(sim)
    sim.one(KVStore.put(1, 1, "x", "1"))
    learner = sim.add_node()
    sim.run_until_committed()
    sim.run(0.3)
    followers = [i for i in sim.ids if i not in (leader, learner)]
    for node in followers:
        sim.crash(node)
    put = sim.submit(KVStore.put(1, 2, "x", "2"))
    sim.run(1.0)
    assert sim.replicas[learner].last_index == sim.replicas[leader].last_index  # the learner holds it ...
    assert put.state is TransitionState.QUEUED  # ... but is not counted: 1 of 3 voters
    assert sim.replicas[leader].commit_index < sim.replicas[leader].last_index
    sim.crash(leader)
    sim.restart(leader)  # a candidate whose log is as up to date as the learner's
    sim.crash(learner)
    sim.restart(learner)
    sim.run(3.0)
    assert sim.leader() is None and sim.replicas[leader].term > 1
    assert not [e for e in sim.trace.of_kind(EventKind.BECAME_CANDIDATE) if e.node == learner]
    assert len([e for e in sim.trace.of_kind(SimKind.TIMER) if e.node == learner]) > 5  # its timer fired
    grants = [e for e in sim.trace.of_kind(EventKind.VOTE_GRANTED) if e.node == learner]
    assert grants and {e.data["candidate"] for e in grants} == {leader}
    assert sim.membership(learner) == "learner"


# ----- determinism and rewind --------------------------------------------------------------------------


def scenario(seed: int) -> Simulation:
    sim = Simulation(3, seed=seed, network=None)
    sim.network.drop = 0.05
    elect(sim)
    sim.one(KVStore.put(1, 1, "x", "1"))
    node = sim.add_node()
    sim.run_until_committed()
    sim.run_until_committed(sim.promote(node))
    sim.submit(KVStore.put(1, 2, "x", "2"))
    sim.partition([0], [1, 2, 3])
    sim.run(0.5)
    sim.heal()
    leader = elect(sim)
    sim.run_until_committed(sim.remove_node(leader))
    elect(sim)
    sim.one(KVStore.put(1, 3, "x", "3"))
    sim.run(0.3)
    return sim


def test_membership_changes_are_deterministic_in_one_process_and_in_two() -> None:
    first, second = scenario(11), scenario(11)
    assert first.trace.hash() == second.trace.hash() and len(first.trace) == len(second.trace)
    assert scenario(12).trace.hash() != first.trace.hash()
    code = ("import sys; sys.path.insert(0, 'tests/sim'); from test_membership import scenario; "
            "print(scenario(11).trace.hash())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip() == first.trace.hash()


def test_membership_events_are_explained_with_their_rule(tmp_path: Path) -> None:
    sim = scenario(11)
    sim.submit(Configuration.of([0]))  # two servers at once: refused
    path = tmp_path / "trace.jsonl"
    sim.trace.save(path)
    wanted = {SimKind.MEMBERSHIP: "the user asked", SimKind.REMOVED: "shut down for good",
              EventKind.CONFIGURATION_CHANGED: "(MC-LATEST)", EventKind.CONFIG_REFUSED: "(MC-ONE"}
    for trace in (sim.trace, Trace.load(path)):
        for kind, words in wanted.items():
            texts = [e.explain() for e in trace.of_kind(kind)]
            assert texts and all(t.endswith(".") and "None" not in t for t in texts), kind
            assert all(words in t for t in texts if "started with an empty log" not in t), (kind, texts)
        stepdowns = [e.explain() for e in trace.of_kind(EventKind.BECAME_FOLLOWER) if e.rule == "MC-STEPDOWN"]
        assert len(stepdowns) == 1 and "never stands (MC-STEPDOWN)." in stepdowns[0]
    refusal = sim.trace.of_kind(EventKind.CONFIG_REFUSED)[-1].explain()
    assert "refused the configuration change to voters 0: a change must add, promote or remove exactly one" in refusal
    assert "as a learner of the cluster [0, 1, 2]" in sim.trace.of_kind(SimKind.MEMBERSHIP)[0].explain()


SCRIPT: list[tuple[int, Callable[[Simulation], object]]] = [
    (30, lambda s: s.submit(KVStore.put(1, 1, "a", "1"))),
    (40, lambda s: s.add_node() if s.leader() is not None else None),
    (90, lambda s: s.submit(KVStore.put(1, 2, "b", "2"))),
    (120, lambda s: s.promote(3) if s.leader() is not None and s.membership(3) == "learner" else None),
    (160, lambda s: s.promote(3) if s.leader() is not None and s.membership(3) == "learner" else None),
    (220, lambda s: s.remove_node(s.leader()) if s.leader() is not None else None),
    (300, lambda s: s.submit(KVStore.put(1, 3, "c", "3"))),
]
END = 420


def scripted(sim: Simulation, until: int) -> None:
    for at, action in SCRIPT:
        if at >= until:
            break
        while sim.steps < at:
            assert sim.step() is not None
        action(sim)
    while sim.steps < until:
        assert sim.step() is not None


def fingerprint(sim: Simulation) -> tuple:
    machines = tuple(None if r.machine is None else dict(r.machine.data) for r in sim.replicas)
    return (sim.frame(), sim.trace.hash(), sim.ids, sim.n, machines, sorted(sim.removed),
            [h.id for h in sim.changes])


@pytest.mark.parametrize("k", [0, 40, 41, 100, 221, 350, END])
def test_rewind_over_a_membership_change_replays_it(k: int) -> None:
    sim = Simulation(3, seed=3, checkpoint_every=25)
    scripted(sim, END)
    sim.run(0.3)
    end_steps, end_hash = sim.steps, sim.trace.hash()
    assert sim.n == 4 and sim.removed, "the script adds, promotes and removes"
    sim.rewind(k)
    fresh = Simulation(3, seed=3)
    scripted(fresh, k)
    assert fingerprint(sim) == fingerprint(fresh)
    assert len(sim.replicas) == sim.n == len(sim.frame().nodes)
    while sim.steps < end_steps and sim.step() is not None:
        pass
    assert (sim.steps, sim.trace.hash()) == (end_steps, end_hash)


# ----- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda s: s.add_node(), "no leader"),
    (lambda s: s.promote(1), "no leader"),
    (lambda s: s.remove_node(1), "no leader"),
    (lambda s: s.promote(7), "node"),
    (lambda s: s.run_until_committed(), "no membership change"),
])
def test_interventions_without_a_leader_are_refused_and_not_recorded(call: Callable[[Simulation], object],
                                                                     match: str) -> None:
    sim = Simulation(3, seed=1)
    sim.run(0.1)
    before, length = sim.frame(), len(sim.trace)
    with pytest.raises(ValueError, match=match):
        call(sim)
    assert sim.frame() == before and len(sim.trace) == length and not sim.history.interventions


def test_promoting_a_voter_or_removing_a_stranger_is_refused() -> None:
    sim = Simulation(3, seed=1)
    elect(sim)
    with pytest.raises(ValueError, match="not a learner"):
        sim.promote(0)
    node = sim.add_node()
    sim.run_until_committed()
    sim.run_until_committed(sim.remove_node(node))  # a learner is removed too
    assert sim.membership(node) == "removed" and sim.replicas[node].crashed
    with pytest.raises(ValueError, match="not a member"):
        sim.remove_node(node)


# ----- the invariant checker -------------------------------------------------------------------------


def test_two_uncommitted_configuration_changes_in_a_leaders_log_are_caught() -> None:
    """Configuration Safety: a leader whose MC-ONE accepts a change while another is uncommitted holds two
    uncommitted configuration entries; the correct leader refuses the second."""
    for cls in (Replica, ChangesAtOnce):
        sim = Simulation(3, seed=2, replica_class=cls)
        leader = elect(sim)
        sim.one(KVStore.put(1, 1, "x", "1"))
        sim.add_node()
        second = Configuration.of([0, 1, 2], [3, 4])
        if cls is Replica:
            assert sim.submit(second).state is TransitionState.ABANDONED_REFUSED
            continue
        with pytest.raises(InvariantViolation) as info:
            sim.submit(second)
        assert info.value.property == "Configuration Safety"
        assert f"leader {leader}" in info.value.detail and "two uncommitted configuration changes" in info.value.detail


def test_configuration_entries_are_applied_indices_the_state_machine_never_sees() -> None:
    """State Machine Safety across changes: the tap counts a configuration entry as applied (in order, the
    same id on every node) though the replica never gives it to the state machine."""
    sim = Simulation(3, seed=3)
    elect(sim)
    sim.one(KVStore.put(1, 1, "x", "1"))
    node = sim.add_node()
    sim.run_until_committed()
    sim.one(KVStore.put(1, 2, "x", "2"), k=4)
    checker = sim.checker
    assert checker is not None
    index = next(i for i, t in checker.applied.items() if t == Configuration.of([0, 1, 2], [node]).get_id())
    assert all(sim._taps[i].applied_index == sim.replicas[i].last_applied > index for i in sim.ids)
    assert all(("configuration" not in repr(t)) for t in sim.replicas[0].machine.results)


def erratum(sim: Simulation) -> None:
    """The erratum's schedule on a 4-node cluster: leader l1 (term 1, cut off) appends "remove r"; q is
    elected in term 2 by p, q, r and asked at once for "remove l1"; then {l1, p} | {q, r}: r stands in
    term 3 (after q's entries reached it), then l1 does."""
    sim.run_until(lambda s: s.leader() is not None)
    sim.one(KVStore.put(1, 1, "x", "1"), k=4)
    l1 = sim.leader()
    assert l1 is not None
    p, q, r = (i for i in sim.ids if i != l1)
    sim.disconnect(l1)
    sim.submit(Configuration.of([l1, p, q]))
    sim.force_timeout(q)
    sim.run_until(lambda s: s.leader() == q, 2.0)
    sim.submit(Configuration.of([p, q, r]))
    sim.heal()
    sim.partition([l1, p], [q, r])
    sim.run_until(lambda s: s.replicas[r].last_index == s.replicas[q].last_index, 0.5)
    sim.force_timeout(r)
    sim.run_until(lambda s: s.replicas[r].role is Role.LEADER, 0.3)
    sim.run_until(lambda s: s.replicas[l1].role is Role.FOLLOWER, 0.5)
    sim.force_timeout(l1)
    sim.run(1.0)


@pytest.mark.parametrize("seed", range(1, 9))
def test_the_erratum_two_leaders_in_one_term_with_the_mutant_never_without(seed: int) -> None:
    """MC-ONE (the erratum): on the same schedule, the published algorithm elects two leaders in one term
    (Election Safety); with the fix the change is refused and every term has one leader at most."""
    fixed = Simulation(4, seed=seed)
    erratum(fixed)
    assert fixed.checker is not None and all(n == 1 for n in _leaders_per_term(fixed).values())
    assert fixed.trace.of_kind(EventKind.CONFIG_REFUSED)
    broken = Simulation(4, seed=seed, replica_class=ChangesBeforeTermCommits)
    with pytest.raises(InvariantViolation) as info:
        erratum(broken)
    assert info.value.property == "Election Safety" and "both leaders of term" in info.value.detail


def _leaders_per_term(sim: Simulation) -> dict[int, int]:
    won: dict[int, set[int]] = {}
    for e in sim.trace.of_kind(EventKind.BECAME_LEADER):
        won.setdefault(e.data["term"], set()).add(e.node)
    return {t: len(nodes) for t, nodes in won.items()}


def test_the_erratum_transcript_with_the_mutant_stops_on_election_safety() -> None:
    """The acceptance's transcript test: the bundled `membership_erratum` passes with the core's Replica
    (tests/sim/test_transcripts.py runs it) and, replayed with the mutant, is stopped by the invariant
    checker: two leaders in term 3."""
    assert run_transcript("membership_erratum").ok
    with pytest.raises(TranscriptError) as info:
        run_transcript("membership_erratum", replica_class=ChangesBeforeTermCommits)
    violation = info.value.__cause__
    assert isinstance(violation, InvariantViolation) and violation.property == "Election Safety"
    assert violation.detail.endswith("are both leaders of term 3")


# ----- the frame and the transcript commands -------------------------------------------------------------


def test_the_frame_shows_each_nodes_membership_and_the_configuration() -> None:
    sim = Simulation(3, seed=1)
    leader = elect(sim)
    sim.one(KVStore.put(1, 1, "x", "1"))
    frame = sim.frame()
    assert [n.membership for n in frame.nodes] == ["voter"] * 3
    assert (frame.voters, frame.learners, frame.config_committed) == ((0, 1, 2), (), True)
    node = sim.add_node()
    frame = sim.frame()
    assert frame.nodes[node].membership == "learner" and frame.learners == (node,) and not frame.config_committed
    sim.run_until_committed()
    assert sim.frame().config_committed
    sim.crash(leader)
    assert sim.membership(node) == "learner"  # as the node itself sees it, without a leader
    sim.restart(leader)
    leader = elect(sim)
    refused = sim.submit(Configuration.of([0, 1]))  # two servers at once: refused
    assert refused.state is TransitionState.ABANDONED_REFUSED
    assert sim.add_node() == 4
    sim.run_until_committed()
    sim.run_until_committed(sim.remove_node(3))
    frame = sim.frame()
    assert frame.nodes[3].membership == "removed" and frame.nodes[3].crashed
    assert frame.voters == (0, 1, 2) and frame.learners == (4,)
    assert len(frame.nodes) == 5 and [n.id for n in frame.nodes] == [0, 1, 2, 3, 4]


def test_a_node_whose_addition_is_refused_is_joining() -> None:
    sim = Simulation(3, seed=1)
    elect(sim)
    sim.add_node()
    node = sim.add_node()  # the first addition is not committed yet: MC-ONE refuses this one
    assert sim.changes[-1].state is TransitionState.ABANDONED_REFUSED
    assert sim.membership(node) == "joining" and sim.frame().nodes[node].membership == "joining"
    sim.run_until_committed()
    assert sim.membership(node) == "learner"


def test_transcript_commands_for_membership_change() -> None:
    text = "\n".join([
        "# Membership commands.", "", "sim n=3 seed=1", "", "run-until leader", "",
        "add-node wait", "", "check voters=0,1,2 learners=3 on=all", "", "check membership=learner on=3", "",
        "promote 3 wait", "", "check req.1=applied req.2=applied", "",
        "propose-config voters=0,1", "", "check req.3=abandoned", "",
        "remove-node 3 wait", "", "check removed membership=removed on=3", "", "check voters=0,1,2 on=0,1,2", "",
        "state", "", "log 1",
    ])
    result = run_transcript(text)
    assert not result.failures, result.diff()
    outputs = {b.command.text: b.actual for b in result}
    assert "refused the configuration change to voters 0, 1: a change must add, promote or remove exactly one" \
        in outputs["propose-config voters=0,1"]
    assert "removed" in outputs["state"] and "configuration: voters 0,1,2" in outputs["state"]
    assert "configuration voters=0,1,2,3" in outputs["log 1"]


@pytest.mark.parametrize("line, message", [
    ("propose-config learners=3", "needs voters="),
    ("propose-config voters=0,1 learners=1", "both a voter and a learner"),
    ("promote x", "node must be an integer"),
    ("check membership=boss", "membership is one of"),
    ("check voters=a", "node must be an integer"),
])
def test_transcript_membership_commands_are_checked_when_parsed(line: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message):
        run_transcript(f"# Bad.\n\nsim n=3 seed=1\n\n{line}\n")


def test_a_follower_that_missed_every_change_hears_the_new_leader_and_counts_again() -> None:
    """MC-LATEST (§4.1): a follower cut off while the membership moved to servers it never saw still
    accepts the new leader's requests when it comes back (a request is heard from any server), catches
    up, and counts: with one of the new servers down, it and the other make the majority."""
    sim = Simulation(3, seed=1)
    leader = elect(sim)
    cut_off = next(i for i in sim.ids if i != leader)
    sim.disconnect(cut_off)
    added = []
    for _ in range(2):
        node = sim.add_node()
        sim.run_until_committed(timeout=5.0)
        sim.run(0.5)
        sim.promote(node)
        sim.run_until_committed(timeout=5.0)
        added.append(node)
    for old in [i for i in (0, 1, 2) if i != cut_off]:
        sim.run_until(lambda s: s.leader() is not None, 5.0)
        sim.remove_node(old)
        sim.run_until_committed(timeout=5.0)
    sim.connect(cut_off)
    sim.run(1.0)
    assert sim.replicas[cut_off].last_index == sim.replicas[added[0]].last_index
    sim.crash(added[1])
    sim.one(KVStore.put(7, 1, "after", "1"), timeout=10.0)
