"""Paper-claim tests for membership change, one server at a time (Ongaro 2014, §4.1-4.4, with the
erratum of 2015), in the style of test_paper_election.py: ONE `Replica` driven by hand. Each test is
named after the rule id of docs/raft-rules.md it checks ("Membership change"), and its docstring
starts with that id.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, Configuration, EventKind, InstallSnapshotRequest, LogEntry,
    MemoryStorage, Replica, Role, Snapshot, TimeoutNow, TransitionState, VoteRequest, VoteResponse, check_message,
)
from raftlab.grading.fakes import (
    ELECTION, HEARTBEAT, LEADER, ME, NOOP, Fakes, Op, RecordingCluster, RecordingStateMachine, append, e,
)
from raftlab.storage import SqliteStorage

C = Configuration.of
REFUSED = TransitionState.ABANDONED_REFUSED


def make(*, peers: tuple[int, ...] = (2, 3), storage: Any = None, **options: Any) -> Fakes:
    storage = storage if storage is not None else MemoryStorage()
    cluster, sm, events = RecordingCluster(storage=storage), RecordingStateMachine(), []
    replica = Replica(ME, peers, cluster, sm, NOOP, HEARTBEAT, ELECTION, 2 if options.pop("snap", False) else 0,
                      storage=storage, rng=random.Random(0), observer=events.append, **options)
    return Fakes(replica, cluster, sm, storage, events)


def lead(f: Fakes, voters: tuple[int, ...] = (2,)) -> None:
    """Elect the replica and commit its no-op (acknowledged by `voters`)."""
    r = f.replica
    r.tick(r.next_deadline)
    for v in voters:
        r.step(VoteResponse(v, r.current_term, True))
    assert r.role is Role.LEADER
    for v in voters:
        ack(f, v)
    assert r.log.term_at(r.commit_index) == r.current_term
    f.cluster.take()


def ack(f: Fakes, peer: int, index: int | None = None) -> None:
    """`peer` acknowledges the leader's log up to `index` (default: all of it)."""
    r = f.replica
    index = r.log.last_index if index is None else index
    r.step(AppendEntryResponse(peer, r.current_term, True, index, None, None, r.round))


def propose(f: Fakes, *transitions: Any) -> None:
    f.sm.pending.extend(transitions)
    f.replica.process_transitions()


# ----- MC-ONE --------------------------------------------------------------------------------------

def test_mc_one_a_leader_appends_a_change_of_one_server_as_a_log_entry() -> None:
    """MC-ONE: a leader offered a configuration that changes one server (here: adds 4 as a learner)
    appends it as an entry of its term and reports it QUEUED, then APPLIED once committed; the state
    machine is never given it."""
    f = make()
    lead(f)
    r = f.replica
    new = C([1, 2, 3], [4])
    propose(f, new)
    assert r.log.entry(r.log.last_index) == LogEntry(new, r.log.last_index, r.current_term)
    assert f.sm.state_of(new.get_id()) is TransitionState.QUEUED
    ack(f, 2)
    assert f.sm.state_of(new.get_id()) is TransitionState.APPLIED
    assert f.sm.applied == [NOOP]  # the no-op only: the configuration is not the machine's


@pytest.mark.parametrize("new, why", [
    (C([1, 2, 3, 4, 5]), "exactly one server"),
    (C([1, 2], [4]), "exactly one server"),
    (C([1, 2, 3]), "exactly one server"),
    (C([1, 2, 3, 4]), "learner"),
])
def test_mc_one_a_change_of_more_or_less_than_one_server_or_a_voter_added_directly_is_refused(
        new: Configuration, why: str) -> None:
    """MC-ONE, MC-LEARNER: two servers at once, none, or a new server made a voter at once: refused
    (ABANDONED_REFUSED, with the reason in a config_refused event); nothing is appended."""
    f = make()
    lead(f)
    last = f.replica.log.last_index
    propose(f, new)
    assert f.sm.state_of(new.get_id()) is REFUSED and f.replica.log.last_index == last
    refusal = [ev for ev in f.events if ev.kind == EventKind.CONFIG_REFUSED]
    assert refusal and why in refusal[-1].details["why"] and refusal[-1].rule == "MC-ONE"


def test_mc_one_no_change_while_an_earlier_one_is_uncommitted() -> None:
    """MC-ONE: while a configuration entry is uncommitted, another change is refused, even in the same
    batch of transitions; once it commits, the next is accepted."""
    f = make()
    lead(f)
    first, second = C([1, 2, 3], [4]), C([1, 2, 3], [4, 5])
    propose(f, first, second, Op("x", 1))
    assert f.sm.state_of(first.get_id()) is TransitionState.QUEUED
    assert f.sm.state_of(second.get_id()) is REFUSED
    assert f.sm.state_of("x") is TransitionState.QUEUED
    ack(f, 2)
    propose(f, second)
    assert f.sm.state_of(second.get_id()) is TransitionState.QUEUED


def test_mc_one_no_change_before_an_entry_of_the_leaders_term_commits_the_erratum() -> None:
    """MC-ONE (the thesis erratum, raft-dev 2015): a new leader refuses a change until an entry of its
    own term (its no-op) has committed; without that, two leaders can be elected in one term."""
    f = make()
    r = f.replica
    r.tick(r.next_deadline)
    r.step(VoteResponse(2, r.current_term, True))
    assert r.role is Role.LEADER and r.commit_index == 0
    new = C([1, 2, 3], [4])
    propose(f, new)
    assert f.sm.state_of(new.get_id()) is REFUSED
    assert "term" in [ev for ev in f.events if ev.kind == EventKind.CONFIG_REFUSED][-1].details["why"]
    ack(f, 2)
    propose(f, new)
    assert f.sm.state_of(new.get_id()) is TransitionState.QUEUED


# ----- MC-LATEST -----------------------------------------------------------------------------------

def test_mc_latest_a_follower_uses_a_configuration_from_the_moment_it_appends_it_and_reverts_on_truncation() -> None:
    """MC-LATEST: a follower uses the latest configuration in its log, committed or not, as soon as it
    appends it (its majorities, its peers); if the entry is truncated, the one before it is back."""
    f = make()
    r = f.replica
    r.step(append(1, 0, 0, (e(1, 1), LogEntry(C([1, 2, 3], [4]), 2, 1))))
    assert r.configuration == C([1, 2, 3], [4]) and r.config_index == 2 and r.commit_index == 0
    assert r.peer_ids == (2, 3, 4)
    assert [ev.rule for ev in f.events if ev.kind == EventKind.CONFIGURATION_CHANGED] == ["MC-LATEST"]
    r.step(append(2, 1, 1, (e(2, 2),)))  # a new leader overwrites index 2
    assert r.configuration == C([1, 2, 3]) and r.config_index == 0 and r.peer_ids == (2, 3)


def test_mc_latest_majorities_count_the_latest_configurations_voters_only() -> None:
    """MC-LATEST: with voters {1, 2, 3, 4, 5} a leader needs three acknowledgements to commit; a vote
    or an acknowledgement from a learner or from a server not in the configuration never counts."""
    f = make(peers=(2, 3, 4, 5))
    lead(f, voters=(2, 3))
    r = f.replica
    propose(f, C([1, 2, 3, 4, 5], [6]))
    ack(f, 6)  # the learner
    ack(f, 2)
    assert r.commit_index < r.config_index
    ack(f, 3)
    assert r.commit_index == r.config_index
    g = make(peers=(2, 3), learner=False)
    g.replica.step(append(1, 0, 0, (LogEntry(C([1, 2, 3], [4]), 1, 1),), commit=1))
    g.replica.tick(g.replica.next_deadline)
    assert g.replica.role is Role.CANDIDATE
    g.replica.step(VoteResponse(4, g.replica.current_term, True))  # a learner's vote
    assert g.replica.role is Role.CANDIDATE
    g.replica.step(VoteResponse(2, g.replica.current_term, True))
    assert g.replica.role is Role.LEADER


def test_mc_latest_a_removed_leader_keeps_leading_until_the_change_commits_messages_still_accepted() -> None:
    """MC-LATEST, MC-STEPDOWN: followers that appended the configuration removing the leader still
    accept its AppendEntries (its old configuration's members stay known senders)."""
    f = make()
    r = f.replica
    r.step(append(1, 0, 0, (LogEntry(C([1, 3]), 1, 1),)))  # the leader 2 removes itself
    assert r.configuration == C([1, 3])
    r.step(append(1, 1, 1, (e(2, 1),), commit=2))
    assert r.commit_index == 2 and r.stats.dropped == 0


# ----- MC-LEARNER ----------------------------------------------------------------------------------

def test_mc_learner_a_learner_is_replicated_to_but_never_stands_and_answers_vote_requests() -> None:
    """MC-LEARNER: a replica started as a learner of a running cluster never starts an election (its
    timer just rearms), takes entries from the leader, and answers a VoteRequest as any server would
    (it may be a voter in a configuration it has not seen yet: etcd's campaign_learner_must_vote)."""
    f = make(learner=True)
    r = f.replica
    assert r.configuration == C([2, 3], [1])
    for _ in range(5):
        r.tick(r.next_deadline)
    assert r.role is Role.FOLLOWER and r.current_term == 0 and f.cluster.take() == []
    r.step(append(1, 0, 0, (e(1, 1),), commit=1))
    assert r.commit_index == 1
    r.step(VoteRequest(3, 2, 1, 1))
    assert f.cluster.take()[-1] == (3, VoteResponse(ME, 2, True))


def test_mc_learner_a_learner_is_promoted_only_once_caught_up() -> None:
    """MC-LEARNER: the leader refuses to promote a learner whose log is behind its commit index, and
    promotes it once it has caught up."""
    f = make()
    lead(f)
    r = f.replica
    propose(f, C([1, 2, 3], [4]))
    ack(f, 2)
    promoted = C([1, 2, 3, 4])
    propose(f, promoted)
    assert f.sm.state_of(promoted.get_id()) is REFUSED
    ack(f, 4)
    propose(f, promoted)
    assert f.sm.state_of(promoted.get_id()) is TransitionState.QUEUED and r.configuration == promoted


# ----- MC-STEPDOWN ---------------------------------------------------------------------------------

def test_mc_stepdown_a_removed_leader_manages_without_counting_itself_then_steps_down() -> None:
    """MC-STEPDOWN: a leader that removes itself keeps replicating, does not count itself in the new
    majority, and steps down (same term) once the change commits; it never stands again."""
    f = make()
    lead(f)
    r = f.replica
    propose(f, C([2, 3]))
    assert r.role is Role.LEADER and r.peer_ids == (2, 3)
    ack(f, 2)
    assert r.role is Role.LEADER and r.commit_index < r.config_index  # 1 of {2, 3} is no majority
    term = r.current_term
    ack(f, 3)
    assert r.role is Role.FOLLOWER and r.current_term == term
    assert [ev.rule for ev in f.events if ev.kind == EventKind.BECAME_FOLLOWER] == ["MC-STEPDOWN"]
    for _ in range(3):
        r.tick(r.next_deadline)
    assert r.role is Role.FOLLOWER and r.current_term == term


# ----- MC-SNAPSHOT ---------------------------------------------------------------------------------

def test_mc_snapshot_a_snapshot_carries_the_configuration_as_of_its_last_index() -> None:
    """MC-SNAPSHOT: a snapshot taken after a configuration entry carries that configuration; an
    InstallSnapshot sends it; a follower that installs it uses it."""
    f = make(snap=True)
    lead(f)
    r = f.replica
    propose(f, C([1, 2, 3], [4]))
    ack(f, 2)
    propose(f, Op("a", 1))
    ack(f, 2)
    assert r.log.snapshot is not None and r.log.snapshot.configuration == C([1, 2, 3], [4])
    g = make()
    m = InstallSnapshotRequest(LEADER, 1, 3, 1, 0, (0, ()), True, C([1, 2, 3], [4]))
    assert check_message(m) is None
    g.replica.step(m)
    assert g.replica.configuration == C([1, 2, 3], [4]) and g.replica.peer_ids == (2, 3, 4)


def test_mc_snapshot_sqlite_storage_keeps_it_and_a_restarted_server_knows_its_configuration(tmp_path: Path) -> None:
    """MC-SNAPSHOT: SqliteStorage keeps the snapshot's configuration; a replica restarted on it (or on a
    log holding a configuration entry) starts with that configuration."""
    path = tmp_path / "raft.sqlite3"
    with SqliteStorage(path) as s:
        s.append([LogEntry(Op("a", 1), 1, 1), LogEntry(C([1, 2, 3], [4]), 2, 1), LogEntry(Op("b", 1), 3, 1)])
        s.save_snapshot(Snapshot(3, 1, (2, (Op("a", 1), Op("b", 1)))))
        assert s.log.snapshot is not None and s.log.snapshot.configuration == C([1, 2, 3], [4])
    with SqliteStorage(path) as s:
        assert s.log.snapshot is not None and s.log.snapshot.configuration == C([1, 2, 3], [4])
        f = make(storage=s)
        assert f.replica.configuration == C([1, 2, 3], [4])
    storage = MemoryStorage()
    storage.append([LogEntry(C([1, 2, 3, 4]), 1, 1)])
    assert make(storage=storage).replica.configuration == C([1, 2, 3, 4])


def test_mc_one_an_invalid_configuration_in_a_message_is_dropped() -> None:
    """MC-ONE, INPUT: a configuration with no voters, or a learner that is also a voter, in an
    AppendEntries or an InstallSnapshot, makes the message malformed: dropped and counted."""
    bad = Configuration(frozenset({1}), frozenset({1}))
    assert check_message(AppendEntryRequest(2, 1, 0, 0, (LogEntry(bad, 1, 1),), 0)) is not None
    assert check_message(InstallSnapshotRequest(2, 1, 1, 1, 0, None, True, Configuration(frozenset()))) is not None
    f = make()
    f.replica.step(AppendEntryRequest(2, 1, 0, 0, (LogEntry(bad, 1, 1),), 0))
    assert f.replica.stats.dropped == 1 and f.replica.log.last_index == 0


def test_mc_latest_a_follower_catching_up_through_many_changes_still_hears_its_leader() -> None:
    """MC-LATEST (§4.1): a follower that appends, in one batch, changes after which neither of its two
    latest configurations holds the current leader still accepts that leader's next AppendEntries
    (every server of a configuration it has seen stays a known sender)."""
    f = make(peers=(2, 3, 5))
    r = f.replica
    configs = [C([1, 2, 3, 5], [4]), C([1, 2, 3, 4, 5]), C([1, 2, 3, 4]), C([1, 2, 3, 4], [6])]
    r.step(append(3, 0, 0, [LogEntry(c, k + 1, 3) for k, c in enumerate(configs)], sender=5))
    assert r.log.last_index == 4
    r.step(append(3, 4, 3, [LogEntry(C([1, 2, 3, 4], [5, 6]), 5, 3), LogEntry(C([1, 2, 3, 4, 5], [6]), 6, 3)],
                  sender=5))
    assert r.log.last_index == 6 and r.stats.dropped == 0
    with pytest.raises(ValueError, match="learner"):
        make(peers=(), learner=True)


def test_mc_latest_a_leader_forgets_a_removed_server_and_probes_it_afresh_if_it_returns() -> None:
    """MC-LATEST: once a configuration without a server is appended, the leader keeps no progress for
    it (its late answers are ignored, no read round goes to it); if it is added again with an empty
    log, it is probed from scratch and catches up."""
    f = make(peers=(2, 3, 4))
    lead(f, voters=(2, 3))
    r = f.replica
    ack(f, 4)
    propose(f, C([1, 2, 3]))
    assert 4 not in r.progress and 4 not in r.match_index
    ack(f, 4)  # a late answer from the removed server: ignored
    assert r.stats.dropped == 0 and 4 not in r.progress
    ack(f, 2)
    propose(f, C([1, 2, 3], [4]))
    assert r.match_index[4] == 0 and r.next_index[4] == r.log.last_index + 1


def test_mc_stepdown_a_leader_that_removed_itself_still_steps_down_by_check_quorum_when_unheard() -> None:
    """MC-STEPDOWN, CQ-STEPDOWN: a leader that removed itself (voters {2}) is not the only voter: if the
    remaining voter is silent, CheckQuorum still makes it step down; a TimeoutNow never makes a
    non-voter stand."""
    f = make(peers=(2,), check_quorum=True)
    lead(f, voters=(2,))
    r = f.replica
    propose(f, C([2]))
    for _ in range(20):
        r.tick(r.next_deadline)
    assert r.role is Role.FOLLOWER
    assert [ev.rule for ev in f.events if ev.kind == EventKind.BECAME_FOLLOWER] == ["CQ-STEPDOWN"]
    g = make(learner=True)
    g.replica.step(append(1))
    g.replica.step(TimeoutNow(LEADER, 1))
    assert g.replica.role is Role.FOLLOWER and g.replica.current_term == 1
