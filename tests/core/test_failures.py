"""Failures and hostile input: the replica stops cleanly (fail-stop) or drops and counts, never
answers from state that is not durable, and never loses track of a transition.

These came from a review of the core; each is named after the rule it protects."""

from __future__ import annotations

import pytest

from raftlab.core import (
    AppendEntryResponse, InstallSnapshotRequest, InstallSnapshotResponse, ReplicaStopped, Role, Snapshot,
    TransitionState, VoteRequest,
)
from raftlab.storage import SqliteStorage
from raftlab.grading.fakes import (
    LEADER, Op, RecordingStateMachine, RecordingStorage, append, build, e, elect, follower, leader, log_of, stored,
)

APPLIED = TransitionState.APPLIED
CONFLICT = TransitionState.ABANDONED_CONFLICT_WITH_LEADER
UNKNOWN = TransitionState.UNKNOWN


def test_is_stale_refusal_acknowledges_nothing():
    """IS-STALE: a snapshot request from an older term is answered with index 0, so a leader that was
    re-elected since (and shares the responder's term) cannot take the refusal as an acknowledgement."""
    replica, cluster, _ = follower(term=3)
    replica.step(InstallSnapshotRequest(LEADER, 2, 10, 2, 0, (0, ()), True))
    assert cluster.sent == [(LEADER, InstallSnapshotResponse(1, 3, 0))]

    boss, _, _ = leader(log_of([1, 1, 1]), term=2)  # leader of term 3
    boss.step(InstallSnapshotResponse(2, 3, 0))
    assert boss.match_index[2] == 0


def test_is_keep_reports_the_fate_of_unapplied_entries_it_removes():
    """IS-KEEP: a deposed leader's queued transition covered by an installed snapshot does not stay
    QUEUED forever: if the log matched the snapshot it was applied through it; otherwise its fate is
    unknown here (UNKNOWN: a client retries with the same id; dedupe makes that safe)."""
    for matched, fate in [(True, APPLIED), (False, UNKNOWN)]:
        replica, _, sm = leader(term=0)  # leader of term 1, no-op at index 1
        sm.pending = [Op("x")]
        replica.process_transitions()  # x at index 2, QUEUED
        replica.step(VoteRequest(3, 2, 5, 2))  # a higher term deposes it
        assert replica.role is Role.FOLLOWER
        snapshot_term = 1 if matched else 2  # the term of the snapshot's last entry, index 2
        replica.step(InstallSnapshotRequest(3, 2, 2, snapshot_term, 0, (0, ()), True))
        assert sm.state_of("x") is fate
        assert replica.log.base_index == 2 and replica.last_applied == 2


@pytest.mark.parametrize(("terms", "snapshot", "fates"), [
    # The case: c2 and c3 are in the snapshot, but nothing here can tell: unknown, never "abandoned".
    ([1, 1, 1, 2], (4, 3), {2: UNKNOWN, 3: UNKNOWN, 4: UNKNOWN}),
    ([1, 1, 1, 2], (3, 1), {2: APPLIED, 3: APPLIED}),  # matched at 3: applied; entry 4 is kept
    ([1, 1, 2], (3, 1), {2: APPLIED, 3: CONFLICT}),  # of the snapshot's last term: applied; a later term: never
    ([1, 1, 1], (2, 2), {2: UNKNOWN, 3: CONFLICT}),  # after a conflicting last entry nothing can commit
])
def test_is_keep_reports_only_what_is_true_of_each_entry_it_removes(terms, snapshot, fates):
    """IS-KEEP: entries the snapshot covers were applied through it if the log matched it at its last
    entry, or if they are of its last term (that term's leader made both); an entry above a conflicting
    last entry, or of a later term than it, can never be committed (ABANDONED_CONFLICT_WITH_LEADER);
    an older-term entry it covers may or may not be in it (UNKNOWN)."""
    replica, _, sm = follower(log_of(terms, prefix="c"), term=3)
    replica.step(InstallSnapshotRequest(LEADER, 3, snapshot[0], snapshot[1], 0, (0, ()), True))
    assert {i: sm.state_of(f"c{i}") for i in range(2, len(terms) + 1) if sm.states_of(f"c{i}")} == fates
    assert replica.current_term == 3


def test_ae_truncate_reports_unknown_not_abandoned():
    """AE-TRUNCATE: an entry removed from this log may still be committed by a later leader that holds
    it (the scenario of raftlab/sim/transcripts/uncommitted_is_not_lost.txt), so it is reported UNKNOWN,
    never abandoned: `abandoned` means it can never be applied."""
    replica, _, sm = follower(log_of([1, 1], prefix="c"), term=1)
    replica.step(append(2, 1, 1, [e(2, 2, "new")]))
    assert sm.state_of("c2") is UNKNOWN and not UNKNOWN.abandoned and UNKNOWN.final


def test_ae_append_failed_write_stops_the_replica_before_it_acknowledges():
    """AE-APPEND / persistence: if storing entries fails, nothing is acknowledged, memory still agrees
    with the disk, and every later input raises `ReplicaStopped` (fail-stop)."""
    replica, cluster, _ = build(storage=RecordingStorage(fail="append"))
    with pytest.raises(ReplicaStopped, match="disk full"):
        replica.step(append(1, 0, 0, [e(1, 1)]))
    assert replica.stopped
    assert replica.log.last_index == 0
    assert not cluster.messages(AppendEntryResponse)
    with pytest.raises(ReplicaStopped):
        replica.step(append(1, 0, 0, [e(1, 1)]))
    with pytest.raises(ReplicaStopped):
        replica.tick(10.0)
    assert not cluster.messages(AppendEntryResponse)


def test_rv_grant_failed_vote_write_sends_no_vote():
    """RV-GRANT / persistence: a vote that could not be stored is never sent."""
    replica, cluster, _ = build(storage=RecordingStorage(fail="vote"))
    with pytest.raises(ReplicaStopped):
        replica.step(VoteRequest(2, 1, 0, 0))
    assert replica.voted_for is None
    assert cluster.sent == []


def test_sqlite_storage_failed_write_leaves_memory_equal_to_disk(tmp_path):
    """Persistence: a write that fails inside SqliteStorage is rolled back and memory is unchanged."""
    path = tmp_path / "node.db"
    storage = SqliteStorage(path)
    storage.append([e(1, 1)])
    storage._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON log BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(Exception, match="refused"):
        storage.append([e(2, 1), e(3, 1)])
    assert storage.log.last_index == 1
    storage.close()
    assert SqliteStorage(path).log.last_index == 1


def test_ae_check_entries_conflicting_with_the_snapshot_are_dropped_not_raised():
    """AE-CHECK: entries whose term at my snapshot's index differs from the snapshot's (impossible from
    a correct leader) are dropped and counted; the replica keeps running."""
    storage = stored()
    storage.save_snapshot(Snapshot(5, 3, (0, ())))
    replica, _, _ = build(storage=storage)
    replica.step(append(3, 2, 1, log_of([1] * 5, first=3)))
    assert replica.stats.drop_reasons == {"conflicts with my snapshot": 1}
    assert not replica.stopped and replica.log.last_index == 5


def test_ae_truncate_never_deletes_a_committed_entry():
    """AE-TRUNCATE: a request that conflicts with a committed entry is dropped, not obeyed."""
    replica, _, sm = follower()
    replica.step(append(1, 0, 0, [e(1, 1), e(2, 1)], commit=2))
    assert replica.commit_index == 2
    replica.step(append(2, 1, 1, [e(2, 2)], commit=0))
    assert replica.stats.drop_reasons == {"conflicts with a committed entry": 1}
    assert [x.term for x in replica.log.entries_from(1)] == [1, 1]
    assert len(sm.applied) == 2


def test_is_load_failing_set_snapshot_stops_the_replica():
    """IS-LOAD: a state machine that cannot load a snapshot stops the replica instead of wedging it."""

    class Broken(RecordingStateMachine):
        def set_snapshot(self, snapshot):
            raise ValueError("bad snapshot data")

    replica, cluster, _ = build(sm=Broken())
    with pytest.raises(ReplicaStopped, match="bad snapshot data"):
        replica.step(InstallSnapshotRequest(LEADER, 1, 4, 1, 0, "garbage", True))
    assert replica.stopped
    assert not cluster.messages(InstallSnapshotResponse)


def test_is_load_recovery_starts_the_state_machine_exactly_at_the_chosen_snapshot():
    """IS-LOAD / recovery: at start-up the state machine is set to the newer of its own snapshot and the
    stored one, so entries after it are applied exactly once."""
    own = Snapshot(4, 1, (4, tuple(Op(f"o{k}", 1) for k in range(4))))
    sm = RecordingStateMachine(own_snapshot=own, total=99)  # state beyond its snapshot
    replica, _, _ = build(sm=sm, storage=stored(log_of([1] * 6), term=1))
    assert sm.snapshots_set == [own] and sm.total == 4
    assert replica.log.base_index == 4 and replica.log.last_index == 6
    assert replica.commit_index == replica.last_applied == 4
    elect(replica)
    assert replica.role is Role.LEADER
