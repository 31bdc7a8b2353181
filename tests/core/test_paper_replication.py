"""Paper-claim tests for log replication, commitment, apply and snapshots (Raft §5.3, §5.4.2, §7).

In the spirit of etcd raft's ``raft_paper_test.go``: each test drives ONE `Replica` by hand with
hand-built messages (`step`), time (`tick`) and transitions (`process_transitions`), and checks what
the recording fakes saw and the replica's state. Each test is named after a rule of
docs/raft-rules.md (or a pitfall listed at its end) and its docstring starts with the rule id.

Conventions: the replica under test is id 1 with peers 2 and 3 (2 and 3 plus 4 and 5 for a
five-node cluster). When it is a follower, peer 2 plays the leader. Test transitions are
``Op(name, delta)``; the state machine is a calculator that adds ``delta``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, ApplyError, Configuration, EventKind, Flow, InstallSnapshotRequest,
    InstallSnapshotResponse, MemoryStorage, Role, Snapshot, TransitionState, VoteRequest,
)
from raftlab.storage import SqliteStorage
from raftlab.grading.fakes import (
    LEADER, Op, RecordingStateMachine, append, build, e, elect, follower, held, journaled, leader, ok, refused, stored,
)

QUEUED = TransitionState.QUEUED
COMMITTED = TransitionState.COMMITTED
APPLIED = TransitionState.APPLIED
NOT_LEADER = TransitionState.ABANDONED_NOT_LEADER
CONFLICT = TransitionState.ABANDONED_CONFLICT_WITH_LEADER
UNKNOWN = TransitionState.UNKNOWN

# ----- ALL-APPLY ---------------------------------------------------------------------------------
def test_all_apply_applies_committed_entries_in_log_order_each_once() -> None:
    """ALL-APPLY (§5.3): committed entries are applied in log order, each index exactly once, and the
    state machine is told COMMITTED and then APPLIED for each."""
    replica, _cluster, sm = follower()
    entries = [e(1, 1, "a", 1), e(2, 1, "b", 10), e(3, 1, "c", 100)]
    replica.step(append(1, 0, 0, entries, commit=0))
    assert sm.applied == [] and replica.commit_index == 0 and replica.last_applied == 0
    assert sm.states == []

    replica.step(append(1, 3, 1, commit=2))
    assert sm.applied_ids == ["a", "b"]
    assert (replica.commit_index, replica.last_applied) == (2, 2)

    replica.step(append(1, 3, 1, commit=3))
    assert sm.applied_ids == ["a", "b", "c"]
    assert (replica.commit_index, replica.last_applied) == (3, 3)

    # Duplicates of what was already seen never apply anything a second time.
    replica.step(append(1, 3, 1, commit=3))
    replica.step(append(1, 0, 0, entries, commit=3))
    replica.step(append(1, 1, 1, entries[1:], commit=2))
    assert sm.applied_ids == ["a", "b", "c"]
    assert sm.total == 111
    assert replica.last_applied == 3
    for name in "abc":
        assert sm.states_of(name) == [COMMITTED, APPLIED]
    # Registered in log order: a's states before b's, b's before c's (by first COMMITTED, by APPLIED).
    applied_order = [i for i, s in sm.states if s is APPLIED]
    assert applied_order == ["a", "b", "c"]


def test_all_apply_error_stops_replica_without_skipping_the_entry() -> None:
    """ALL-APPLY (§5.3): an exception from apply_transition stops the replica with an ApplyError naming
    the index; the entry is not skipped (nothing after it is applied) and every later call raises."""
    replica, cluster, sm = follower()
    sm.fail_on = "b"
    entries = [e(1, 1, "a", 1), e(2, 1, "b", 10), e(3, 1, "c", 100)]
    with pytest.raises(ApplyError) as info:
        replica.step(append(1, 0, 0, entries, commit=3))
    assert info.value.index == 2
    assert "index 2" in str(info.value)
    assert replica.stopped
    assert sm.applied_ids == ["a"]
    assert replica.last_applied == 1
    assert sm.states_of("b") == [COMMITTED]  # never reported applied
    assert APPLIED not in sm.states_of("c")

    sm.fail_on = None  # even once the state machine would succeed, the stopped replica does nothing
    sm.pending = [Op("late")]
    cluster.inbox = [append(1, 3, 1, commit=3)]
    for call in (lambda: replica.step(append(1, 3, 1, commit=3)), lambda: replica.tick(5.0),
                 replica.process_transitions, replica.process_messages):
        with pytest.raises(ApplyError) as again:
            call()
        assert again.value.index == 2
    assert sm.applied_ids == ["a"]
    assert replica.last_applied == 1

    # Restarted from its storage with a working state machine, it applies index 2 (not skipped).
    restarted, _, sm2 = build(storage=replica.storage)
    restarted.step(append(1, 3, 1, commit=3))
    assert sm2.applied_ids == ["a", "b", "c"]


# ----- L-APPEND ----------------------------------------------------------------------------------
def test_l_append_leader_appends_durably_with_its_term_queues_and_replicates() -> None:
    """L-APPEND (§5.3): a leader appends pending transitions to its log with its term, durably before
    sending anything about them, registers them QUEUED, replicates them at once, and reports them
    COMMITTED/APPLIED only once a majority holds them."""
    f = journaled()
    replica, cluster, sm = f
    elect(replica)
    term = replica.current_term
    replica.step(ok(2, term, 1))
    replica.step(ok(3, term, 1))
    assert replica.commit_index == 1  # the no-op
    cluster.take()
    f.journal.clear()

    sm.pending = [Op("a", 1), Op("b", 2)]
    replica.process_transitions()
    assert held(replica, ids=True)[1:] == [(2, term, "a"), (3, term, "b")]
    last_write = max(k for k, x in enumerate(f.journal) if x[0] == "append")
    assert f.journal[last_write] == ("append", ((2, term), (3, term)))
    assert not [x for x in f.journal[:last_write] if x[0] == "send"]  # durable before any message was sent
    assert sm.states_of("a") == [QUEUED] and sm.states_of("b") == [QUEUED]
    for peer in (2, 3):
        request = cluster.message(AppendEntryRequest, to=peer)
        assert (request.term, request.prev_log_index, request.prev_log_term) == (term, 1, term)
        assert [(x.index, x.term, x.transition) for x in request.entries] == [
            (2, term, Op("a", 1)), (3, term, Op("b", 2))]
        assert request.commit_index == 1
    assert replica.commit_index == 1 and sm.applied_ids == ["noop"]

    replica.step(ok(2, term, 3))
    assert replica.commit_index == 3
    assert sm.applied_ids == ["noop", "a", "b"]
    assert sm.states_of("a") == [QUEUED, COMMITTED, APPLIED]
    assert sm.states_of("b") == [QUEUED, COMMITTED, APPLIED]


def test_l_append_non_leader_abandons_transitions() -> None:
    """L-APPEND (§5.3): a replica that is not the leader (follower, with or without a known leader, or
    candidate) does not append a transition: it registers it ABANDONED_NOT_LEADER and sends nothing."""
    replica, cluster, sm = follower()
    sm.pending = [Op("f1")]
    replica.process_transitions()
    assert sm.states_of("f1") == [NOT_LEADER]

    replica.step(append(1, 0, 0, [e(1, 1, "x")]))
    cluster.take()
    sm.pending = [Op("f2"), Op("f3")]
    replica.process_transitions()
    assert sm.states_of("f2") == [NOT_LEADER] and sm.states_of("f3") == [NOT_LEADER]
    assert held(replica, ids=True) == [(1, 1, "x")]
    assert cluster.sent == []

    replica.tick(10.0)
    assert replica.role is Role.CANDIDATE
    cluster.take()
    sm.pending = [Op("c1")]
    replica.process_transitions()
    assert sm.states_of("c1") == [NOT_LEADER]
    assert held(replica, ids=True) == [(1, 1, "x")]
    assert cluster.sent == []
    assert sm.applied == []


# ----- L-REPLICATE -------------------------------------------------------------------------------
def test_l_replicate_sends_entries_from_next_index_with_prev_index_and_term() -> None:
    """L-REPLICATE (§5.3): the leader sends each peer the entries from its next_index, with
    prev_log_index = next_index - 1 and that entry's term; next_index starts at the leader's last + 1
    (before its no-op). The first request is a probe (FC-PROBE): next_index stays until it is answered."""
    replica, cluster, _sm = leader([e(1, 1), e(2, 1), e(3, 2)], term=2)
    assert replica.current_term == 3
    assert held(replica, ids=True)[-1] == (4, 3, "noop")
    assert replica.next_index == {2: 4, 3: 4} and replica.match_index == {2: 0, 3: 0}
    for peer in (2, 3):
        request = cluster.message(AppendEntryRequest, to=peer)
        assert (request.from_id, request.term, request.prev_log_index, request.prev_log_term) == (1, 3, 3, 2)
        assert [(x.index, x.term) for x in request.entries] == [(4, 3)]
        assert request.commit_index == 0
    cluster.take()

    # Peer 2 holds only index 1: it refuses the probe (prev 3) with the hint 2; the leader retries from there.
    replica.step(refused(2, 3, 1, 2, prev=3))
    assert replica.next_index[2] == 2  # back to the hint; a probe again, so it stays until answered
    request = cluster.message(AppendEntryRequest, to=2)
    assert (request.prev_log_index, request.prev_log_term) == (1, 1)
    assert [(x.index, x.term) for x in request.entries] == [(2, 1), (3, 2), (4, 3)]
    assert cluster.messages(AppendEntryRequest, to=3) == []


def test_l_replicate_success_sets_match_to_prev_plus_entries_sent() -> None:
    """L-REPLICATE (§5.3): on success match_index = prev_log_index + entries sent (what the follower
    acknowledged), next_index = match_index + 1, and match_index never decreases."""
    replica, _cluster, sm = leader([e(1, 1), e(2, 1), e(3, 2)], term=2)
    replica.step(refused(2, 3, 1, 2, prev=3))  # leader now sends prev=1, entries 2..4
    replica.step(ok(2, 3, 4))  # the answer to that request: 1 + 3
    assert replica.match_index[2] == 4 and replica.next_index[2] == 5
    assert replica.commit_index == 4  # leader and peer 2 hold the term-3 no-op

    # Peer 3 answers the first request (prev=3, one entry): match 4 as well, nothing more.
    replica.step(ok(3, 3, 4))
    assert replica.match_index[3] == 4 and replica.next_index[3] == 5

    sm.pending = [Op("a", 1)]
    replica.process_transitions()  # index 5
    replica.step(ok(2, 3, 5))
    assert replica.match_index[2] == 5 and replica.next_index[2] == 6
    replica.step(ok(2, 3, 4))  # a late acknowledgement of the earlier request
    assert replica.match_index[2] == 5 and replica.next_index[2] == 6
    assert replica.commit_index == 5


def test_l_replicate_failure_jumps_to_hint_but_never_below_match_plus_one() -> None:
    """L-REPLICATE (§5.3): on a refusal next_index moves straight to the follower's hint, but never
    below match_index + 1, and the leader retries from there. A refusal without a hint is a follower's
    answer to a request from an older term (AE-STALE): it says nothing about this term's log and is
    ignored. (Probing, FC-PROBE: next_index is where the probe in flight starts.)"""
    replica, cluster, sm = leader([e(1, 1), e(2, 1), e(3, 1), e(4, 2), e(5, 2)], term=2)
    assert replica.next_index == {2: 6, 3: 6}  # the probe carrying the no-op (index 6) is on its way
    cluster.take()

    replica.step(refused(3, 3, 5, None, prev=5))  # no hint: the refusal of an older-term request
    assert replica.next_index[3] == 6
    assert cluster.sent == []

    replica.step(refused(3, 3, 5, 5, prev=5))  # hint: one step back
    request = cluster.message(AppendEntryRequest, to=3)
    assert (request.prev_log_index, request.prev_log_term) == (4, 2)
    assert [x.index for x in request.entries] == [5, 6]
    assert replica.next_index[3] == 5
    cluster.take()

    replica.step(refused(2, 3, 5, 4, prev=5))  # hint: the first index of the follower's conflicting term
    request = cluster.message(AppendEntryRequest, to=2)
    assert (request.prev_log_index, request.prev_log_term) == (3, 1)
    assert [x.index for x in request.entries] == [4, 5, 6]
    cluster.take()

    replica.step(ok(2, 3, 6))
    assert replica.match_index[2] == 6 and replica.next_index[2] == 7
    # A refusal pointing below what peer 2 is known to match (stale or bogus) cannot pull next_index
    # below match_index + 1.
    replica.step(refused(2, 3, 2, 1, prev=1))
    assert replica.next_index[2] == 7
    assert replica.match_index[2] == 6
    sm.pending = [Op("a")]
    replica.process_transitions()  # index 7 goes to peer 2; next_index 8
    assert replica.next_index[2] == 8
    cluster.take()
    # Request 7 is lost: a heartbeat later it is still unanswered, so peer 2 is probed again (FC-PIPELINE),
    # and even a refusal of that probe with a hint of 2 resends from match_index + 1 = 7, never below.
    replica.tick(replica.next_deadline)
    replica.tick(replica.next_deadline)
    probe = cluster.messages(AppendEntryRequest, to=2)[-1]
    assert (probe.prev_log_index, probe.entries) == (6, ())  # the heartbeat is the probe
    cluster.take()
    replica.step(refused(2, 3, 3, 2, prev=6))
    request = cluster.message(AppendEntryRequest, to=2)
    assert request.prev_log_index == 6 and [x.index for x in request.entries] == [7]
    assert replica.match_index[2] == 6


def test_l_replicate_sends_install_snapshot_when_entries_were_compacted() -> None:
    """L-REPLICATE (§5.3, §7): when a peer needs entries the leader has compacted into its snapshot, the
    leader sends InstallSnapshotRequest (whole), and after the acknowledgement continues with entries."""
    storage = MemoryStorage()
    storage.set_term_and_vote(1, None)
    data = (15, (Op("s", 15),))
    storage.save_snapshot(Snapshot(5, 1, data))
    replica, cluster, sm = build(storage=storage)
    assert (replica.commit_index, replica.last_applied, sm.total) == (5, 5, 15)
    elect(replica)
    assert replica.current_term == 2
    assert held(replica, ids=True) == [(6, 2, "noop")]
    request = cluster.message(AppendEntryRequest, to=2)
    assert (request.prev_log_index, request.prev_log_term) == (5, 1)
    cluster.take()

    replica.step(refused(2, 2, 0, 1, prev=5))  # peer 2 has an empty log
    assert replica.next_index[2] == 6  # back to 1, inside the snapshot: the snapshot goes, then past it
    assert cluster.messages(AppendEntryRequest, to=2) == []
    snap = cluster.message(InstallSnapshotRequest, to=2)
    assert snap == InstallSnapshotRequest(1, 2, 5, 1, 0, data, True, Configuration.of([1, 2, 3]))  # MC-SNAPSHOT
    cluster.take()

    replica.step(InstallSnapshotResponse(2, 2, 5))
    assert replica.match_index[2] == 5 and replica.next_index[2] == 7  # 6 went out at once
    request = cluster.message(AppendEntryRequest, to=2)
    assert (request.prev_log_index, request.prev_log_term) == (5, 1)
    assert [(x.index, x.term) for x in request.entries] == [(6, 2)]
    replica.step(ok(2, 2, 6))
    assert replica.commit_index == 6


# ----- flow control (FC-PROBE, FC-PIPELINE, FC-STALE, FC-SNAPSHOT) ----------------------------------
def test_fc_probe_one_probe_in_flight_until_answered_then_an_empty_probe_each_heartbeat() -> None:
    """FC-PROBE: after an election the leader probes each follower: one AppendEntries in flight, no
    more until it is answered, however many transitions arrive; unanswered at the next heartbeat, the
    heartbeat is the next probe, without entries (a follower that is down is not sent them again)."""
    replica, cluster, sm = leader([e(1, 1), e(2, 1)], term=1)
    assert [len(r.entries) for r in cluster.messages(AppendEntryRequest, to=2)] == [1]  # the no-op
    cluster.take()
    for k in range(5):
        sm.pending = [Op(f"w{k}", k)]
        replica.process_transitions()
    assert cluster.messages(AppendEntryRequest) == []  # probing: nothing more before an answer
    replica.tick(replica.next_deadline)
    for peer in (2, 3):
        [probe] = cluster.messages(AppendEntryRequest, to=peer)
        assert (probe.prev_log_index, probe.entries) == (2, ())
    assert replica.progress[2].flow is Flow.PROBE and replica.progress[2].probe == 2
    cluster.take()
    replica.step(ok(2, 2, 2, prev=2))  # the answer to the heartbeat's probe: peer 2 matches at 2
    [request] = cluster.messages(AppendEntryRequest, to=2)
    assert (request.prev_log_index, [x.index for x in request.entries]) == (2, [3, 4, 5, 6, 7, 8])
    assert replica.progress[2].flow is Flow.REPLICATE and replica.next_index[2] == 9


def test_fc_pipeline_at_most_max_inflight_requests_then_all_that_accumulated_in_one() -> None:
    """FC-PIPELINE: a follower known to match gets up to `max_inflight` requests in flight, next_index
    moving past each; the transitions that arrive meanwhile go out together when an answer frees room."""
    replica, cluster, sm = leader(max_inflight=2)
    replica.step(ok(2, 1, 1, prev=0))  # peer 2 matches the no-op: replicate
    cluster.take()
    for k in range(5):
        sm.pending = [Op(f"w{k}", k)]
        replica.process_transitions()  # indices 2..6
    sent = cluster.messages(AppendEntryRequest, to=2)
    assert [(r.prev_log_index, [x.index for x in r.entries]) for r in sent] == [(1, [2]), (2, [3])]
    assert replica.progress[2].inflight == [2, 3] and replica.next_index[2] == 4
    cluster.take()
    replica.step(ok(2, 1, 2, prev=1))
    [request] = cluster.messages(AppendEntryRequest, to=2)
    assert (request.prev_log_index, [x.index for x in request.entries]) == (3, [4, 5, 6])
    assert replica.progress[2].inflight == [3, 6] and replica.next_index[2] == 7
    # With the default (1), the leader waits for each answer: one request in flight.
    one, cluster1, sm1 = leader()
    one.step(ok(2, 1, 1, prev=0))
    cluster1.take()
    for k in range(3):
        sm1.pending = [Op(f"w{k}", k)]
        one.process_transitions()
    assert [len(r.entries) for r in cluster1.messages(AppendEntryRequest, to=2)] == [1]


def test_fc_pipeline_a_request_lost_in_flight_is_found_at_the_next_heartbeat_and_probed() -> None:
    """FC-PIPELINE: a request still unanswered a whole heartbeat after it was in flight is taken as
    lost: the follower is probed again from match_index + 1, and entries follow its answer. Each change
    of flow is an event naming its rule."""
    fakes = leader()
    replica, cluster, sm = fakes
    replica.step(ok(2, 1, 1, prev=0))
    sm.pending = [Op("a", 1)]
    replica.process_transitions()  # index 2 to peer 2: lost
    replica.tick(replica.next_deadline)  # in flight since before this heartbeat: maybe just slow
    assert replica.progress[2].flow is Flow.REPLICATE
    cluster.take()
    replica.tick(replica.next_deadline)  # still unanswered a heartbeat later: lost
    assert replica.progress[2].flow is Flow.PROBE and replica.next_index[2] == 2
    [probe] = cluster.messages(AppendEntryRequest, to=2)
    assert (probe.prev_log_index, probe.entries) == (1, ())
    cluster.take()
    replica.step(ok(2, 1, 1, prev=1))
    [request] = cluster.messages(AppendEntryRequest, to=2)
    assert [x.index for x in request.entries] == [2]
    flows = [(e.rule, e.details["peer"], e.details["flow"]) for e in fakes.events
             if e.kind == EventKind.FLOW_CHANGED and e.details["peer"] == 2]
    assert flows == [("FC-PIPELINE", 2, "replicate"), ("FC-PIPELINE", 2, "probe"), ("FC-PIPELINE", 2, "replicate")]


def test_fc_stale_only_the_refusal_of_the_current_probe_moves_next_index() -> None:
    """FC-STALE: a refusal names the prev_log_index of the request it refuses; the leader acts only on
    the refusal of its current probe. A refusal of an older probe, or of a request in a pipeline
    (reordered, or overtaken by a heartbeat), is ignored: nothing is sent again because of it."""
    replica, cluster, _sm = leader([e(1, 1), e(2, 1), e(3, 1)], term=1)  # no-op 4, probe prev 3
    cluster.take()
    replica.step(refused(2, 2, 1, 2, prev=2))  # names another request: stale
    replica.step(refused(2, 2, 1, 2))  # names no request: not known to be the probe's
    assert replica.next_index[2] == 4 and cluster.take() == []
    replica.step(refused(2, 2, 1, 2, prev=3))  # the current probe's
    assert replica.next_index[2] == 2 and replica.progress[2].probe == 1
    assert len(cluster.messages(AppendEntryRequest, to=2)) == 1
    cluster.take()
    replica.step(refused(2, 2, 1, 2, prev=3))  # the same refusal again (duplicated): stale now
    assert cluster.take() == []
    replica.step(ok(2, 2, 4, prev=1))
    assert replica.progress[2].flow is Flow.REPLICATE
    replica.step(refused(2, 2, 2, 3, prev=4))  # a pipelined request refused (reordered): ignored
    assert (replica.next_index[2], replica.match_index[2]) == (5, 4) and cluster.take() == []


def test_fc_snapshot_one_install_snapshot_until_answered_or_an_election_timeout() -> None:
    """FC-SNAPSHOT: while an InstallSnapshot is on its way to a follower, the leader sends it nothing
    but empty heartbeats, however many transitions arrive; it sends the snapshot again only after an
    election timeout without an answer, and replicates entries once the snapshot is acknowledged."""
    storage = MemoryStorage()
    storage.set_term_and_vote(1, None)
    storage.save_snapshot(Snapshot(5, 1, (15, (Op("s", 15),))))
    replica, cluster, sm = build(storage=storage)
    elect(replica)  # no-op 6, probe prev 5
    cluster.take()
    replica.step(refused(2, 2, 0, 1, prev=5))  # peer 2 is empty: it needs the snapshot
    assert len(cluster.messages(InstallSnapshotRequest, to=2)) == 1
    assert replica.progress[2].flow is Flow.SNAPSHOT
    cluster.take()
    sent_at = replica.now()
    for k in range(4):
        sm.pending = [Op(f"w{k}", k)]
        replica.process_transitions()
        replica.tick(replica.next_deadline)  # heartbeats, for less than an election timeout
    assert replica.now() - sent_at < replica.election_timeout_range[1]
    to_2 = [m for to, m in cluster.take() if to == 2]
    assert to_2 and all(isinstance(m, AppendEntryRequest) and m.entries == () for m in to_2)
    while replica.now() - sent_at < replica.election_timeout_range[1]:
        replica.tick(replica.next_deadline)
    assert len(cluster.messages(InstallSnapshotRequest, to=2)) == 1  # unanswered: sent again, once
    cluster.take()
    replica.step(InstallSnapshotResponse(2, 2, 5))
    assert replica.progress[2].flow is Flow.REPLICATE and replica.match_index[2] == 5
    [request] = cluster.messages(AppendEntryRequest, to=2)
    assert [x.index for x in request.entries] == [6, 7, 8, 9, 10]


# ----- L-COMMIT ----------------------------------------------------------------------------------
def test_l_commit_commits_current_term_entry_held_by_majority() -> None:
    """L-COMMIT (§5.3): the leader commits the highest N held by a majority (itself included) whose
    entry has the current term, and not before a majority holds it (five-node cluster)."""
    replica, _cluster, sm = leader(peers=(2, 3, 4, 5), voters=(2, 3))
    term = replica.current_term
    sm.pending = [Op("a", 1), Op("b", 2)]
    replica.process_transitions()  # noop 1, a 2, b 3
    assert replica.commit_index == 0

    replica.step(ok(2, term, 3))  # leader + 2 hold 3: two of five
    assert replica.commit_index == 0 and sm.applied == []
    replica.step(ok(3, term, 2))  # leader, 2, 3 hold 2: three of five
    assert replica.commit_index == 2
    assert sm.applied_ids == ["noop", "a"]
    assert sm.states_of("b") == [QUEUED]
    replica.step(ok(4, term, 3))  # leader, 2, 4 hold 3
    assert replica.commit_index == 3
    assert sm.applied_ids == ["noop", "a", "b"]
    assert sm.states_of("b") == [QUEUED, COMMITTED, APPLIED]


def test_l_commit_never_commits_older_term_entry_by_counting_replicas() -> None:
    """L-COMMIT (§5.4.2, Figure 8): an entry of an earlier term held by a majority is NOT committed by
    counting replicas; only an entry of the leader's current term can be committed that way."""
    replica, cluster, sm = leader([e(1, 1, "t1"), e(2, 2, "t2")], term=2)
    replica.MAX_ENTRIES_PER_MESSAGE = 1  # the leader sends the old entries first, one per request
    assert replica.current_term == 3
    replica.step(refused(2, 3, 1, 2, prev=2))  # peer 2 holds only index 1
    request = cluster.messages(AppendEntryRequest, to=2)[-1]
    assert (request.prev_log_index, [(x.index, x.term) for x in request.entries]) == (1, [(2, 2)])
    cluster.take()

    replica.step(ok(2, 3, 2))  # leader and peer 2 (a majority of three) now hold index 2, of term 2
    assert replica.match_index[2] == 2
    assert replica.commit_index == 0
    assert sm.applied == []
    assert COMMITTED not in sm.states_of("t2") and COMMITTED not in sm.states_of("t1")
    # Even more copies do not help: peer 3 acknowledges index 2 too.
    replica.step(refused(3, 3, 1, 2, prev=2))
    replica.step(ok(3, 3, 2))
    assert replica.commit_index == 0
    assert sm.applied == []


def test_l_commit_commits_older_term_entry_indirectly_via_current_term_entry() -> None:
    """L-COMMIT (§5.4.2, Figure 8): once an entry of the current term after it is held by a majority,
    the older-term entry is committed with it (indirectly), and everything is applied in order."""
    replica, cluster, sm = leader([e(1, 1, "t1"), e(2, 2, "t2")], term=2)
    replica.MAX_ENTRIES_PER_MESSAGE = 1
    replica.step(refused(2, 3, 1, 2, prev=2))
    cluster.take()
    replica.step(ok(2, 3, 2))
    assert replica.commit_index == 0
    # The leader goes on at once with the next entry: its own no-op of term 3.
    request = cluster.message(AppendEntryRequest, to=2)
    assert (request.prev_log_index, request.prev_log_term) == (2, 2)
    assert [(x.index, x.term) for x in request.entries] == [(3, 3)]
    cluster.take()
    replica.step(ok(2, 3, 2))  # a duplicate: no progress, no new request
    assert cluster.messages(AppendEntryRequest) == [] and replica.commit_index == 0

    replica.step(ok(2, 3, 3))
    assert replica.commit_index == 3
    assert sm.applied_ids == ["t1", "t2", "noop"]
    assert sm.states_of("t1") == [COMMITTED, APPLIED]
    assert sm.states_of("t2") == [COMMITTED, APPLIED]


# ----- AppendEntries receiver ----------------------------------------------------------------------
def test_ae_stale_refuses_request_from_older_term() -> None:
    """AE-STALE (§5.1): an AppendEntries with a term below the current term is refused with the current
    term; the log, commit index, known leader and election timer are left alone."""
    replica, cluster, sm = follower([e(1, 1, "a")], term=3)
    deadline = replica.next_deadline
    replica.step(append(2, 1, 1, [e(2, 2, "b")], commit=2, sender=3))
    response = cluster.message(AppendEntryResponse, to=3)
    assert response.success is False
    assert response.term == 3
    assert held(replica, ids=True) == [(1, 1, "a")]
    assert replica.commit_index == 0 and sm.applied == []
    assert replica.current_term == 3
    assert replica.leader_id is None and cluster.leaders == []
    assert replica.next_deadline == deadline
    assert replica.role is Role.FOLLOWER


def test_ae_check_refuses_when_log_too_short_with_hint_after_last() -> None:
    """AE-CHECK (§5.3): with no entry at prev_log_index the request is refused, the log is unchanged,
    and the hint is the follower's last index + 1."""
    replica, cluster, sm = follower([e(1, 1, "a"), e(2, 1, "b")], term=1)
    replica.step(append(1, 4, 1, [e(5, 1)], commit=5))
    response = cluster.message(AppendEntryResponse, to=LEADER)
    assert (response.success, response.term, response.last_index, response.mismatch_index) == (False, 1, 2, 3)
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 1, "b")]
    assert replica.commit_index == 0 and sm.applied == []


def test_ae_check_refuses_on_term_mismatch_with_first_index_of_conflicting_term() -> None:
    """AE-CHECK (§5.3): when the entry at prev_log_index has another term the request is refused, nothing
    is truncated yet, and the hint is the first index of the follower's conflicting term."""
    log = [e(1, 1, "a"), e(2, 2, "b"), e(3, 2, "c"), e(4, 2, "d")]
    replica, cluster, sm = follower(log, term=2)
    replica.step(append(3, 4, 3, [e(5, 3)], commit=5))
    response = cluster.message(AppendEntryResponse, to=LEADER)
    assert (response.success, response.term, response.last_index, response.mismatch_index) == (False, 3, 4, 2)
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 2, "b"), (3, 2, "c"), (4, 2, "d")]
    assert replica.commit_index == 0 and sm.applied == []
    assert not any(s in (CONFLICT, UNKNOWN) for _, s in sm.states)


def test_ae_truncate_deletes_conflicting_entry_and_all_after_it() -> None:
    """AE-TRUNCATE (§5.3): an existing entry that conflicts with a new one (same index, different term) is
    deleted with everything after it; the truncated uncommitted transitions are registered UNKNOWN (a later
    leader may still hold and commit them); the entries before the conflict are kept."""
    log = [e(1, 1, "a"), e(2, 1, "b"), e(3, 1, "c"), e(4, 1, "d")]
    replica, cluster, sm = follower(log, term=1)
    # The new leader's request re-sends the matching entry 1, then conflicts at 2.
    replica.step(append(2, 0, 0, [e(1, 1, "a"), e(2, 2, "x")], commit=1))
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 2, "x")]
    for name in "bcd":
        assert sm.states_of(name) == [UNKNOWN]
    assert UNKNOWN not in sm.states_of("a")
    assert sm.applied_ids == ["a"]
    response = cluster.message(AppendEntryResponse, to=LEADER)
    assert (response.success, response.last_index) == (True, 2)


def test_ae_truncate_keeps_matching_suffix() -> None:
    """AE-TRUNCATE (§5.3): entries that match are never deleted: a delayed, shorter request arriving
    after a longer one leaves the later entries in place and abandons nothing."""
    replica, cluster, sm = follower()
    longer = [e(1, 1, "a"), e(2, 1, "b"), e(3, 1, "c")]
    replica.step(append(1, 0, 0, longer))
    cluster.take()
    replica.step(append(1, 0, 0, longer[:1]))  # delayed, shorter
    replica.step(append(1, 1, 1, longer[1:2]))  # delayed, in the middle
    replica.step(append(1, 0, 0, []))  # delayed heartbeat
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 1, "b"), (3, 1, "c")]
    assert not any(s in (CONFLICT, UNKNOWN) for _, s in sm.states)
    responses = cluster.messages(AppendEntryResponse, to=LEADER)
    assert [(r.success, r.last_index) for r in responses] == [(True, 1), (True, 2), (True, 0)]


def test_ae_append_adds_only_entries_not_already_present() -> None:
    """AE-APPEND (§5.3): the entries not already in the log are appended (and only those are written)."""
    f = journaled([e(1, 1, "a"), e(2, 1, "b")], term=1)
    replica, cluster, _sm = f
    replica.step(append(1, 0, 0, [e(1, 1, "a"), e(2, 1, "b"), e(3, 1, "c"), e(4, 1, "d")]))
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 1, "b"), (3, 1, "c"), (4, 1, "d")]
    assert f.storage.appends == [((3, 1), (4, 1))]
    response = cluster.message(AppendEntryResponse, to=LEADER)
    assert (response.success, response.term, response.last_index, response.mismatch_index) == (True, 1, 4, None)

    replica.step(append(1, 4, 1, [e(5, 1, "e")]))
    assert held(replica, ids=True)[-1] == (5, 1, "e")
    assert f.storage.appends == [((3, 1), (4, 1)), ((5, 1),)]


def test_ae_commit_capped_by_last_entry_this_request_made_known_to_match() -> None:
    """AE-COMMIT (§5.3): commit_index = min(leader_commit, index of the last entry this request made known
    to match) — the pitfall "follower's commit index not capped by its last new entry": stale entries
    beyond that index must not be committed or applied."""
    stale = [e(1, 1, "a"), e(2, 1, "b"), e(3, 1, "c"), e(4, 1, "d")]
    replica, _cluster, sm = follower(stale, term=1)
    # The leader of term 2 has committed 4 entries, but its log differs from index 2 on; its heartbeat
    # only proves the follower's log matches up to index 1.
    replica.step(append(2, 1, 1, [], commit=4))
    assert replica.commit_index == 1
    assert sm.applied_ids == ["a"]
    for name in "bcd":
        assert COMMITTED not in sm.states_of(name)

    replica.step(append(2, 1, 1, [e(2, 2, "x")], commit=4))  # proves up to 2
    assert replica.commit_index == 2
    assert sm.applied_ids == ["a", "x"]
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 2, "x")]

    replica.step(append(2, 0, 0, [e(1, 1, "a")], commit=4))  # a delayed request proving only 1
    assert replica.commit_index == 2  # and commit_index never decreases
    replica.step(append(2, 2, 2, [], commit=1))
    assert replica.commit_index == 2

    replica.step(append(2, 2, 2, [e(3, 2, "y"), e(4, 2, "z")], commit=3))  # leader_commit is the cap
    assert replica.commit_index == 3
    assert sm.applied_ids == ["a", "x", "y"]


# ----- InstallSnapshot receiver --------------------------------------------------------------------
def test_is_stale_refuses_snapshot_from_older_term() -> None:
    """IS-STALE (§7): an InstallSnapshot with a term below the current term is refused (answered with the
    current term) and changes nothing."""
    replica, cluster, sm = follower([e(1, 1, "a"), e(2, 1, "b")], term=3)
    deadline = replica.next_deadline
    replica.step(InstallSnapshotRequest(LEADER, 2, 5, 2, 0, (99, ()), True))
    response = cluster.message(InstallSnapshotResponse, to=LEADER)
    assert response.term == 3
    assert sm.snapshots_set == []
    assert replica.log.base_index == 0 and replica.log.snapshot is None
    assert held(replica, ids=True) == [(1, 1, "a"), (2, 1, "b")]
    assert (replica.commit_index, replica.last_applied, sm.total) == (0, 0, 0)
    assert replica.current_term == 3
    assert replica.leader_id is None
    assert replica.next_deadline == deadline


def test_is_keep_keeps_entries_after_matching_last_included_entry() -> None:
    """IS-KEEP (§7): if the log holds an entry at the snapshot's last included index with the same term,
    the entries after it are kept (and nothing is abandoned)."""
    log = [e(k, 1, f"e{k}") for k in range(1, 6)]
    replica, _cluster, sm = follower(log, term=1)
    replica.step(InstallSnapshotRequest(LEADER, 1, 3, 1, 0, (6, ()), True))
    assert replica.log.base_index == 3 and replica.log.base_term == 1
    assert held(replica, ids=True) == [(4, 1, "e4"), (5, 1, "e5")]
    assert replica.log.last_index == 5
    assert not any(s in (CONFLICT, UNKNOWN) for _, s in sm.states)
    # The kept entries are still usable: the leader commits them next.
    replica.step(append(1, 5, 1, [], commit=5))
    assert sm.applied_ids == ["e4", "e5"]


def test_is_keep_discards_whole_log_when_last_included_entry_differs() -> None:
    """IS-KEEP (§7): if the entry at the snapshot's last included index has another term, the whole log
    is discarded; the uncommitted transitions after the snapshot are ABANDONED_CONFLICT_WITH_LEADER."""
    log = [e(k, 1, f"e{k}") for k in range(1, 6)]
    replica, _cluster, sm = follower(log, term=1)
    replica.step(InstallSnapshotRequest(LEADER, 2, 3, 2, 0, (6, ()), True))
    assert replica.log.base_index == 3 and replica.log.base_term == 2
    assert len(replica.log) == 0 and replica.log.last_index == 3 and replica.log.last_term == 2
    assert sm.states_of("e4") == [CONFLICT] and sm.states_of("e5") == [CONFLICT]


def test_is_keep_discards_whole_log_when_log_is_shorter_than_snapshot() -> None:
    """IS-KEEP (§7): if the log has no entry at the snapshot's last included index, the whole log is
    discarded and the snapshot becomes its base."""
    replica, _cluster, _sm = follower([e(1, 1, "a"), e(2, 1, "b")], term=1)
    replica.step(InstallSnapshotRequest(LEADER, 1, 5, 1, 0, (15, ()), True))
    assert len(replica.log) == 0
    assert (replica.log.base_index, replica.log.last_index, replica.log.last_term) == (5, 5, 1)


def test_is_load_resets_state_machine_commit_and_applied() -> None:
    """IS-LOAD (§7): the state machine is reset from the snapshot (set_snapshot), commit_index and
    last_applied become the last included index, and later entries apply on top of it."""
    replica, cluster, sm = follower([e(1, 1, "a", 1), e(2, 1, "b", 2)], term=1)
    replica.step(append(1, 2, 1, [], commit=1))
    assert sm.applied_ids == ["a"]
    cluster.take()
    data = (10, (Op("a", 1), Op("b", 2), Op("c", 3), Op("d", 4)))
    replica.step(InstallSnapshotRequest(LEADER, 1, 4, 1, 0, data, True))
    assert sm.snapshots_set == [Snapshot(4, 1, data)]
    assert sm.total == 10
    assert (replica.commit_index, replica.last_applied) == (4, 4)
    assert cluster.message(InstallSnapshotResponse, to=LEADER) == InstallSnapshotResponse(1, 1, 4)

    replica.step(append(1, 4, 1, [e(5, 1, "e", 5)], commit=5))
    assert sm.applied_ids == ["a", "b", "c", "d", "e"]  # only e applied on top of the snapshot
    assert sm.total == 15
    assert replica.last_applied == 5


def test_is_load_never_moves_the_term_backwards() -> None:
    """IS-LOAD (§7): the term never goes backwards because of a snapshot — installing a snapshot whose
    last included term is older than the current term leaves current_term (and the vote) alone
    (Little Raft 0.2 set the term from the snapshot)."""
    replica, cluster, _sm = build(storage=stored([e(1, 1)], term=5, voted_for=LEADER))
    replica.step(InstallSnapshotRequest(LEADER, 5, 3, 2, 0, (6, ()), True))
    assert replica.log.base_index == 3  # it was installed...
    assert replica.current_term == 5  # ...without touching the term
    assert replica.voted_for == LEADER
    assert cluster.message(InstallSnapshotResponse, to=LEADER).term == 5

    # A snapshot from a leader of a higher term: the term becomes the leader's, not the snapshot's.
    replica.step(InstallSnapshotRequest(3, 7, 4, 2, 0, (10, ()), True))
    assert replica.current_term == 7
    assert replica.log.base_index == 4
    replica.tick(10.0)  # the next election is for term 8
    assert replica.role is Role.CANDIDATE and replica.current_term == 8


def test_is_load_older_snapshot_not_installed_but_acknowledged() -> None:
    """IS-LOAD (§7): a snapshot no newer than what is already applied is not installed (the state
    machine keeps its state), but it is still acknowledged."""
    replica, cluster, sm = follower()
    entries = [e(k, 1, f"e{k}", k) for k in range(1, 6)]
    replica.step(append(1, 0, 0, entries, commit=5))
    assert replica.last_applied == 5 and sm.total == 15
    cluster.take()
    for index in (3, 5):
        replica.step(InstallSnapshotRequest(LEADER, 1, index, 1, 0, (0, ()), True))
        assert sm.snapshots_set == []
        assert sm.total == 15 and sm.applied_ids == [f"e{k}" for k in range(1, 6)]
        assert (replica.commit_index, replica.last_applied) == (5, 5)
        assert replica.log.base_index == 0 and replica.log.last_index == 5
        assert cluster.take() == [(LEADER, InstallSnapshotResponse(1, 1, index))]


# ----- SNAP-TAKE -----------------------------------------------------------------------------------
def test_snap_take_compacts_after_every_k_applied_entries(tmp_path: Path) -> None:
    """SNAP-TAKE (§7): with snapshot_delta=k the replica compacts its applied prefix after every k
    applied entries: create_snapshot is called with the right index and term (once the state machine
    has applied exactly that far), log.base_index advances and storage durably holds the snapshot."""
    path = tmp_path / "replica.db"
    storage = SqliteStorage(path)
    sm = RecordingStateMachine()
    replica, _cluster, _ = build(storage=storage, sm=sm, snapshot_delta=2)
    replica.step(append(1, 0, 0, [e(1, 1, "a", 1), e(2, 1, "b", 2)]))
    replica.step(append(2, 2, 1, [e(3, 2, "c", 3), e(4, 2, "d", 4), e(5, 2, "f", 5)]))

    expected_base = {1: 0, 2: 2, 3: 2, 4: 4, 5: 4}
    for commit in range(1, 6):
        replica.step(append(2, 5, 2, [], commit=commit))
        assert replica.last_applied == commit
        assert replica.log.base_index == expected_base[commit], commit
    assert sm.created == [(2, 1, 2), (4, 2, 4)]
    snapshot = Snapshot(4, 2, (10, (Op("a", 1), Op("b", 2), Op("c", 3), Op("d", 4))))
    assert replica.log.snapshot == snapshot
    assert held(replica, ids=True) == [(5, 2, "f")]
    storage.close()

    with SqliteStorage(path) as reopened:
        assert reopened.log.snapshot == snapshot
        assert reopened.log.last_index == 5
        assert [(x.index, x.term) for x in reopened.log.entries_from(5)] == [(5, 2)]


# ----- pitfalls ------------------------------------------------------------------------------------
def test_pitfall_follower_reports_match_from_request_not_its_log_length() -> None:
    """L-REPLICATE pitfall (Little Raft 0.2): a success answer reports prev_log_index + entries of the
    request, never the follower's own (possibly longer, stale) log length."""
    stale = [e(k, 1, f"s{k}") for k in range(1, 6)]
    replica, cluster, _sm = follower(stale, term=1)
    replica.step(append(2, 1, 1, []))  # a heartbeat from the new leader proving only index 1
    response = cluster.message(AppendEntryResponse, to=LEADER)
    assert (response.success, response.last_index) == (True, 1)
    cluster.take()
    replica.step(append(2, 2, 1, [e(3, 1, "s3")]))
    assert cluster.message(AppendEntryResponse, to=LEADER).last_index == 3


def test_pitfall_leader_does_not_commit_entry_only_a_minority_holds() -> None:
    """L-REPLICATE/L-COMMIT pitfall (Little Raft 0.2): an acknowledgement whose last_index covers only
    what its request carried sets match_index to that, so the leader does not commit an entry that
    only it holds."""
    replica, _cluster, sm = leader()
    term = replica.current_term
    sm.pending = [Op("a", 1), Op("b", 2)]
    replica.process_transitions()  # noop 1, a 2, b 3
    replica.step(ok(2, term, 1))  # the answer to the election request, which carried only the no-op
    assert replica.match_index[2] == 1
    assert replica.commit_index == 1
    assert sm.applied_ids == ["noop"]
    assert sm.states_of("a") == [QUEUED] and sm.states_of("b") == [QUEUED]
    replica.step(ok(2, term, 99))  # acknowledges more than the leader has: dropped
    assert replica.match_index[2] == 1 and replica.commit_index == 1


def test_pitfall_stale_duplicated_reordered_responses_are_harmless() -> None:
    """L-REPLICATE pitfall: stale, duplicated or reordered responses never move match_index back,
    never put next_index below match_index + 1 or below 1, never re-apply; a response from an older
    term is ignored."""
    replica, cluster, sm = leader([e(1, 1, "old")], term=1)
    assert replica.current_term == 2
    sm.pending = [Op("a", 1)]
    replica.process_transitions()  # old 1, noop 2, a 3
    replica.step(ok(2, 2, 3))
    assert (replica.match_index[2], replica.next_index[2], replica.commit_index) == (3, 4, 3)
    assert sm.applied_ids == ["old", "noop", "a"]
    cluster.take()

    replica.step(ok(2, 2, 3))  # duplicate
    replica.step(ok(2, 2, 2))  # reordered: an older acknowledgement arrives late
    replica.step(refused(2, 2, 1, 1))  # reordered: an older refusal arrives late
    replica.step(refused(2, 2, 0, None))
    assert (replica.match_index[2], replica.next_index[2], replica.commit_index) == (3, 4, 3)
    assert sm.applied_ids == ["old", "noop", "a"]
    assert [s for i, s in sm.states if i == "a"] == [QUEUED, COMMITTED, APPLIED]
    assert cluster.messages(AppendEntryRequest, to=2) == []

    # Responses from an older term are ignored, success or not.
    replica.step(ok(3, 1, 3))
    replica.step(refused(3, 1, 0, 1, prev=1))
    assert replica.match_index[3] == 0 and replica.next_index[3] == 2  # probing from 2, unchanged
    assert cluster.messages(AppendEntryRequest, to=3) == []

    # next_index never goes below 1, however low the hint: the entries are resent from index 1.
    for hint in (0, 0, None, 1):
        cluster.take()
        replica.step(refused(3, 2, 0, hint, prev=replica.progress[3].probe))  # each answers the probe
        assert replica.match_index[3] == 0
        requests = cluster.messages(AppendEntryRequest, to=3)
        if hint is None:  # no hint: the refusal of an older-term request, ignored
            assert requests == []
            continue
        assert [(r.prev_log_index, r.prev_log_term) for r in requests] == [(0, 0)]
        assert [x.index for x in requests[0].entries] == [1, 2, 3]
        assert replica.next_index[3] == 1  # probing from 1
    assert replica.current_term == 2 and replica.role is Role.LEADER


def test_pitfall_deposed_leader_cannot_commit_what_it_queued() -> None:
    """L-COMMIT pitfall (stale reads after a partition): reads go through the log, so a leader deposed by
    a higher term must not commit or apply a transition it queued — late acknowledgements of its old
    term are ignored, and the new leader's entries truncate it (UNKNOWN: it is not in this log any more)."""
    replica, _cluster, sm = leader()
    replica.step(ok(2, 1, 1))
    replica.step(ok(3, 1, 1))
    assert replica.commit_index == 1
    sm.pending = [Op("read-x")]
    replica.process_transitions()  # index 2, term 1
    assert sm.states_of("read-x") == [QUEUED]

    replica.step(VoteRequest(3, 2, 1, 1))  # peer 3 campaigns in term 2: this leader steps down
    assert replica.role is Role.FOLLOWER and replica.current_term == 2
    replica.step(ok(2, 1, 2))  # late acknowledgements of the old term's request
    replica.step(ok(3, 2, 2))
    assert replica.commit_index == 1
    assert sm.applied_ids == ["noop"]
    assert sm.states_of("read-x") == [QUEUED]
    sm.pending = [Op("read-y")]
    replica.process_transitions()
    assert sm.states_of("read-y") == [NOT_LEADER]

    # The new leader (3) replicates its own entry at index 2.
    replica.step(append(2, 1, 1, [e(2, 2, "noop3")], commit=2, sender=3))
    assert held(replica, ids=True) == [(1, 1, "noop"), (2, 2, "noop3")]
    assert sm.states_of("read-x") == [QUEUED, UNKNOWN]
    assert sm.applied_ids == ["noop", "noop3"]
    assert replica.commit_index == 2
