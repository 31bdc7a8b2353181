"""Paper-claim tests for the thesis's leadership mechanisms (Ongaro 2014: §9.6 pre-vote, §6.2 and
§4.2.3 check-quorum, §3.10 leadership transfer, §6.4 reads), in the style of test_paper_election.py:
ONE `Replica` driven by hand with hand-built messages and `tick(now)`. Each test is named after the
rule id of docs/raft-rules.md it checks ("Beyond Figure 2"), and its docstring starts with that id.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

import pytest

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, EventKind, PreVoteRequest, PreVoteResponse, ReadIndexRequest,
    ReadIndexResponse, ReadState, Replica, Role, TimeoutNow, TransitionState, VoteRequest, VoteResponse,
)
from raftlab.grading.fakes import (
    ELECTION, HEARTBEAT, LEADER, ME, NOOP, Fakes, Op, RecordingCluster, RecordingStateMachine, RecordingStorage,
    append, e, stored,
)

LOW, HIGH = ELECTION


class ReadingMachine(RecordingStateMachine):
    """The calculator, with the optional read hook: records what became of each read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[Hashable, ReadState] = {}

    def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
        assert read_id not in self.reads, f"read {read_id!r} was answered twice"
        self.reads[read_id] = state


def make(*, peers: tuple[int, ...] = (2, 3), term: int = 0, entries: tuple = (), journal: list | None = None,
         **options: Any) -> Fakes:
    """A follower with recording fakes and the given `Replica` options."""
    storage = stored(entries, term=term, storage=RecordingStorage(journal) if journal is not None else None)
    if journal is not None:
        journal.clear()
    cluster, sm, events = RecordingCluster(storage=storage), ReadingMachine(), []
    replica = Replica(ME, peers, cluster, sm, NOOP, HEARTBEAT, ELECTION, storage=storage, rng=random.Random(0),
                      observer=events.append, **options)
    return Fakes(replica, cluster, sm, storage, events)


def elect(f: Fakes, now: float | None = None) -> float:
    """Make the replica leader (pre-votes, if on, then votes from peer 2); returns the time."""
    r = f.replica
    now = r.next_deadline if now is None else now
    r.tick(now)
    if r.pre_vote:
        r.step(PreVoteResponse(2, r.current_term + 1, True))
    r.step(VoteResponse(2, r.current_term, True))
    assert r.role is Role.LEADER
    f.cluster.take()
    return now


def commit_noop(f: Fakes, peer: int = 2) -> None:
    """A majority acknowledges the new leader's no-op (with the leader's current round)."""
    r = f.replica
    r.step(AppendEntryResponse(peer, r.current_term, True, r.log.last_index, None, r.log.last_index - 1, r.round))
    assert r.commit_index == r.log.last_index
    f.cluster.take()


def follow(f: Fakes, now: float = 0.1, term: int = 1) -> None:
    """The replica hears an AppendEntries from LEADER of `term` at `now` (before its election timer fires)."""
    assert now < f.replica.election_deadline
    f.replica.tick(now)
    f.replica.step(append(term))
    f.cluster.take()


def after_lease(f: Fakes) -> float:
    """A time after the minimum election timeout since the leader was heard from, before the election
    timer fires."""
    r = f.replica
    t = (r.leader_heard_at + LOW + r.election_deadline) / 2
    assert r.leader_heard_at + LOW < t < r.election_deadline
    return t


# ----- PreVote (§9.6) ----------------------------------------------------------------------------

def test_pv_ask_a_timed_out_follower_asks_for_pre_votes_and_changes_nothing() -> None:
    """PV-ASK: at its election timeout a follower with pre_vote sends PreVoteRequests for term + 1 and
    changes neither its term nor its vote, and writes nothing durable."""
    journal: list = []
    f = make(term=3, entries=(), journal=journal, pre_vote=True)
    r = f.replica
    r.tick(r.next_deadline)
    assert r.role is Role.FOLLOWER and r.current_term == 3 and r.voted_for is None
    assert [e for e in journal if e[0] == "persist"] == []
    sent = f.cluster.take()
    assert sorted(to for to, _ in sent) == [2, 3]
    assert all(m == PreVoteRequest(ME, 4, 0, 0) for _, m in sent)
    assert r.next_deadline > 0  # it waits for the next timeout if the pre-vote fails
    assert [e.rule for e in f.events if e.kind == EventKind.PRE_VOTE_STARTED] == ["PV-ASK"]


def test_pv_grant_grants_for_a_later_term_and_an_up_to_date_log_without_changing_anything() -> None:
    """PV-GRANT: a pre-vote for a later term from an up-to-date log, with no leader heard from, is
    granted with the request's term; the receiver's term, vote and election timer stay."""
    f = make(term=2, pre_vote=True)
    r = f.replica
    r.tick(LOW)  # (a server that has just started acts as if it had heard from a leader: RI-LEASE)
    deadline = r.election_deadline
    r.step(PreVoteRequest(3, 5, 0, 0))
    assert f.cluster.take() == [(3, PreVoteResponse(ME, 5, True))]
    assert (r.current_term, r.voted_for, r.election_deadline) == (2, None, deadline)


def test_pv_grant_refuses_while_a_leader_is_heard_from() -> None:
    """PV-GRANT: a server that heard from a current leader within the minimum election timeout
    refuses a pre-vote (so a server that was cut off cannot disrupt); after that it grants."""
    f = make(pre_vote=True)
    r = f.replica
    follow(f)
    r.tick(0.1 + LOW / 2)
    r.step(PreVoteRequest(3, 2, 0, 0))
    assert f.cluster.take() == [(3, PreVoteResponse(ME, 1, False))]
    r.tick(after_lease(f))
    r.step(PreVoteRequest(3, 2, 0, 0))
    assert f.cluster.take() == [(3, PreVoteResponse(ME, 2, True))]


def test_pv_grant_refuses_a_log_behind_and_a_term_not_ahead_with_its_own_term() -> None:
    """PV-GRANT: a log behind is refused; so is a request whose term is not above the receiver's, and
    the refusal carries the receiver's term (etcd-io/etcd#8501: the asker catches up with it)."""
    f = make(term=4, entries=(), pre_vote=True)
    r = f.replica
    r.tick(LOW)
    r.step(PreVoteRequest(3, 3, 0, 0))
    assert f.cluster.take() == [(3, PreVoteResponse(ME, 4, False))]
    g = make(term=1, entries=(e(1, 1),), pre_vote=True)
    g.replica.tick(LOW)
    g.replica.step(PreVoteRequest(3, 2, 0, 0))
    assert g.cluster.take() == [(3, PreVoteResponse(ME, 1, False))]


def test_pv_grant_a_pre_vote_request_of_a_higher_term_leaves_the_receivers_term() -> None:
    """PV-GRANT: a PreVoteRequest is exempt from ALL-TERM, whether granted or refused, even when the
    receiver is the leader."""
    f = make(pre_vote=True)
    elect(f, 1.0)
    r = f.replica
    r.step(PreVoteRequest(3, 9, 5, 5))
    assert r.role is Role.LEADER and r.current_term == 1
    assert f.cluster.messages(PreVoteResponse) == [PreVoteResponse(ME, 1, False)]


def test_pv_win_a_majority_of_pre_votes_starts_a_real_election() -> None:
    """PV-WIN: with pre-votes from a majority (its own included) for term + 1, the server starts a
    real election (C-START): term + 1, its vote persisted, VoteRequests sent."""
    f = make(peers=(2, 3, 4, 5), term=2, pre_vote=True)
    r = f.replica
    r.tick(r.next_deadline)
    f.cluster.take()
    r.step(PreVoteResponse(2, 3, True))
    assert r.role is Role.FOLLOWER and r.current_term == 2  # 2 of 5 is no majority
    r.step(PreVoteResponse(4, 2, False))
    r.step(PreVoteResponse(2, 3, True))  # a duplicate counts once
    assert r.role is Role.FOLLOWER
    r.step(PreVoteResponse(5, 3, True))
    assert r.role is Role.CANDIDATE and r.current_term == 3 and r.voted_for == ME
    assert sorted(to for to, m in f.cluster.take(VoteRequest)) == [2, 3, 4, 5]
    assert [e.rule for e in f.events if e.kind == EventKind.PRE_VOTE_WON] == ["PV-WIN"]


def test_pv_win_counts_a_grant_from_a_voter_at_a_lower_term_etcd_8243() -> None:
    """PV-WIN: a grant carries the request's term, not the voter's (lower) one, so it counts; a grant
    for another term (a stale pre-vote) does not (etcd-io/etcd#8243, the stuck election)."""
    f = make(term=5, pre_vote=True)
    r = f.replica
    r.tick(r.next_deadline)
    r.step(PreVoteResponse(2, 5, True))  # for a term that is not mine + 1: stale
    assert r.role is Role.FOLLOWER
    r.step(PreVoteResponse(3, 6, True))
    assert r.role is Role.CANDIDATE and r.current_term == 6


def test_pv_win_a_refusal_of_a_higher_term_makes_the_asker_follow_that_term_etcd_8501() -> None:
    """PV-WIN / ALL-TERM: a refused pre-vote of a higher term moves the asker to that term (a server
    left behind in terms catches up, rather than asking forever: etcd-io/etcd#8501), without a vote;
    a granted one of term + 1 does not move it."""
    f = make(term=1, pre_vote=True)
    r = f.replica
    r.tick(r.next_deadline)
    r.step(PreVoteResponse(2, 7, False))
    assert r.role is Role.FOLLOWER and r.current_term == 7 and r.voted_for is None
    r.step(PreVoteResponse(3, 2, True))  # the old round's grant: stale now
    assert r.role is Role.FOLLOWER and r.current_term == 7


def test_pv_ask_is_not_used_without_the_option_nor_by_a_transfer_target() -> None:
    """PV-ASK: without pre_vote a timeout starts a real election at once; with it, a TimeoutNow
    (LT-TIMEOUTNOW) still does."""
    f = make()
    f.replica.tick(f.replica.next_deadline)
    assert f.replica.role is Role.CANDIDATE
    g = make(pre_vote=True)
    follow(g)
    g.replica.step(TimeoutNow(LEADER, 1))
    assert g.replica.role is Role.CANDIDATE and g.replica.current_term == 2


# ----- CheckQuorum (§6.2, §4.2.3) -----------------------------------------------------------------

def test_cq_stepdown_a_leader_that_hears_from_no_majority_steps_down_in_its_term() -> None:
    """CQ-STEPDOWN: a leader with check_quorum that hears from no follower for the minimum election
    timeout steps down at a heartbeat, keeping its term and vote; one that hears from a majority stays."""
    f = make(check_quorum=True)
    start = elect(f, 1.0)
    r = f.replica
    now = start
    while r.role is Role.LEADER and now < start + 3 * HIGH:
        now = r.next_deadline
        r.tick(now)
    assert r.role is Role.FOLLOWER and r.current_term == 1 and r.voted_for == ME
    assert start + LOW <= now <= start + LOW + HEARTBEAT + 1e-9
    assert [e.rule for e in f.events if e.kind == EventKind.BECAME_FOLLOWER] == ["CQ-STEPDOWN"]

    g = make(check_quorum=True)
    start = elect(g, 1.0)
    r = g.replica
    now = start
    while now < start + 5 * HIGH:
        now = r.next_deadline
        r.tick(now)
        for _, m in g.cluster.take(AppendEntryRequest, to=2):
            r.step(AppendEntryResponse(2, m.term, True, m.prev_log_index + len(m.entries), None,
                                       m.prev_log_index, m.round))
    assert r.role is Role.LEADER


def test_cq_stepdown_answers_to_requests_sent_before_the_timeout_do_not_keep_a_leader() -> None:
    """CQ-STEPDOWN: what counts is a majority answering requests sent within the last election
    timeout (the rounds they carry): late answers to old requests do not keep a cut-off leader."""
    f = make(check_quorum=True)
    start = elect(f, 1.0)
    r = f.replica
    r.tick(r.next_deadline)
    old = f.cluster.take(AppendEntryRequest, to=2)[-1][1]
    now = r.next_deadline
    while r.role is Role.LEADER and now < start + 3 * HIGH:
        r.step(AppendEntryResponse(2, old.term, True, 0, None, 0, old.round))  # keeps arriving, stale
        now = r.next_deadline
        r.tick(now)
    assert r.role is Role.FOLLOWER and now <= start + HEARTBEAT + LOW + HEARTBEAT + 1e-9


def test_cq_sticky_a_vote_request_is_ignored_while_a_leader_is_heard_from() -> None:
    """CQ-STICKY: with check_quorum, a VoteRequest of a higher term that arrives within the minimum
    election timeout of hearing from the leader is ignored: no term change, no vote, no answer; later
    it is handled as usual."""
    f = make(check_quorum=True)
    r = f.replica
    follow(f)
    r.tick(0.1 + LOW - 0.01)
    r.step(VoteRequest(3, 5, 0, 0))
    assert (r.current_term, r.voted_for, r.leader_id) == (1, None, LEADER)
    assert f.cluster.take() == []
    assert [e.rule for e in f.events if e.kind == EventKind.VOTE_IGNORED] == ["CQ-STICKY"]
    r.tick(after_lease(f))
    r.step(VoteRequest(3, 5, 0, 0))
    assert (r.current_term, r.voted_for) == (5, 3)
    assert f.cluster.take() == [(3, VoteResponse(ME, 5, True))]


def test_cq_sticky_a_leader_ignores_vote_requests_and_a_transfer_is_exempt() -> None:
    """CQ-STICKY: a leader with check_quorum ignores VoteRequests of higher terms (CQ-STEPDOWN is what
    removes it); a transfer's VoteRequest (transfer=True) is exempt; without check_quorum nothing is
    ignored."""
    f = make(check_quorum=True)
    elect(f, 1.0)
    f.replica.step(VoteRequest(3, 4, 0, 0))
    assert f.replica.role is Role.LEADER and f.replica.current_term == 1
    g = make(check_quorum=True)
    follow(g)
    g.replica.step(VoteRequest(3, 4, 0, 0, transfer=True))
    assert (g.replica.current_term, g.replica.voted_for) == (4, 3)
    h = make()
    follow(h)
    h.replica.step(VoteRequest(3, 4, 0, 0))
    assert (h.replica.current_term, h.replica.voted_for) == (4, 3)


# ----- leadership transfer (§3.10) -----------------------------------------------------------------

def test_lt_stop_a_transferring_leader_abandons_new_transitions() -> None:
    """LT-STOP: once a transfer starts, transitions offered to the leader are abandoned as not-leader
    (the client retries at the new leader); asking a follower, or for a non-peer, is an error."""
    f = make()
    elect(f, 1.0)
    r = f.replica
    r.transfer_leadership(3)
    f.sm.pending.append(Op("late", 1))
    r.process_transitions()
    assert f.sm.state_of("late") is TransitionState.ABANDONED_NOT_LEADER
    assert r.log.last_index == 1  # the no-op only
    with pytest.raises(ValueError, match="to must be another voter"):
        r.transfer_leadership(7)
    g = make()
    with pytest.raises(ValueError, match="not the leader"):
        g.replica.transfer_leadership(2)


def test_lt_catchup_and_timeoutnow_the_target_is_brought_up_to_date_first() -> None:
    """LT-CATCHUP, LT-TIMEOUTNOW: the leader replicates to the target as usual and sends TimeoutNow
    only once the target's match_index reaches its last index."""
    f = make()
    elect(f, 1.0)
    r = f.replica
    commit_noop(f)
    f.sm.pending.append(Op("x", 1))
    r.process_transitions()  # entry 2; the target (3) has not answered even the no-op yet
    r.transfer_leadership(3)
    r.step(AppendEntryResponse(3, 1, True, 1, None, 0, r.round))  # it matches the no-op
    assert f.cluster.messages(TimeoutNow) == []
    sent = f.cluster.messages(AppendEntryRequest, to=3)[-1]
    assert [x.index for x in sent.entries] == [2]  # LT-CATCHUP: ordinary replication of what it lacks
    r.step(AppendEntryResponse(3, 1, True, 2, None, 1, r.round))
    assert f.cluster.messages(TimeoutNow) == [TimeoutNow(ME, 1)]
    assert [e.rule for e in f.events if e.kind == EventKind.TIMEOUT_NOW_SENT] == ["LT-TIMEOUTNOW"]


def test_lt_timeoutnow_the_target_stands_at_once_saying_it_is_a_transfer() -> None:
    """LT-TIMEOUTNOW: a follower told TimeoutNow by the leader of its term starts an election at
    once (no pre-vote), and its VoteRequests carry transfer=True; a stale TimeoutNow is ignored."""
    f = make(pre_vote=True, check_quorum=True)
    follow(f)
    r = f.replica
    r.step(TimeoutNow(LEADER, 0))
    assert r.role is Role.FOLLOWER and r.current_term == 1
    r.step(TimeoutNow(LEADER, 1))
    assert r.role is Role.CANDIDATE and r.current_term == 2 and r.voted_for == ME
    requests = f.cluster.take(VoteRequest)
    assert sorted(to for to, _ in requests) == [2, 3] and all(m.transfer for _, m in requests)
    assert f.cluster.messages(PreVoteRequest) == []


def test_lt_abort_a_transfer_that_does_not_succeed_in_an_election_timeout_ends() -> None:
    """LT-ABORT: if the target has not won within an election timeout, the transfer is aborted (at the
    next heartbeat) and the leader takes transitions again."""
    f = make()
    start = elect(f, 1.0)
    r = f.replica
    r.transfer_leadership(2)
    now = start
    while r.transfer_to is not None and now < start + 3 * HIGH:
        now = r.next_deadline
        r.tick(now)
    assert r.role is Role.LEADER and r.transfer_to is None
    assert start + HIGH <= now <= start + HIGH + HEARTBEAT + 1e-9
    assert [e.rule for e in f.events if e.kind == EventKind.TRANSFER_ABORTED] == ["LT-ABORT"]
    f.sm.pending.append(Op("after", 1))
    r.process_transitions()
    assert f.sm.state_of("after") is TransitionState.QUEUED


# ----- reads (§6.4) ---------------------------------------------------------------------------------

def test_ri_current_a_new_leader_serves_no_read_before_an_entry_of_its_term_commits() -> None:
    """RI-CURRENT: a read that reaches a new leader whose no-op has not committed waits (not even a
    confirmed round makes it ready), and a follower's request gets no read index yet."""
    f = make()
    elect(f, 1.0)
    r = f.replica
    r.read("r1")
    r.step(ReadIndexRequest(3, 1, 9))
    request = f.cluster.messages(AppendEntryRequest, to=2)[-1]
    r.step(AppendEntryResponse(2, 1, False, 0, 1, request.prev_log_index + 5, request.round))  # a round ack
    assert f.sm.reads == {} and f.cluster.messages(ReadIndexResponse) == []
    r.step(AppendEntryResponse(2, 1, True, 1, None, 0, request.round))  # the no-op commits
    assert r.commit_index == 1
    assert f.sm.reads == {"r1": ReadState.READY}
    assert f.cluster.messages(ReadIndexResponse) == [ReadIndexResponse(ME, 1, 9, True, 1)]


def test_ri_confirm_a_read_waits_for_a_majority_to_acknowledge_a_round_started_after_it() -> None:
    """RI-CONFIRM: a leader's read starts a heartbeat round (empty AppendEntries carrying a new round
    number) and is ready only once a majority acknowledged that round; acknowledgements of earlier
    rounds do not count."""
    f = make()
    elect(f, 1.0)
    commit_noop(f)
    r = f.replica
    before = r.round
    r.read("r1")
    beats = f.cluster.take(AppendEntryRequest)
    assert sorted(to for to, _ in beats) == [2, 3]
    assert all(m.entries == () and m.round == before + 1 for _, m in beats)
    r.step(AppendEntryResponse(2, 1, True, 1, None, 1, before))  # an answer to an earlier request
    assert f.sm.reads == {}
    r.step(AppendEntryResponse(3, 1, True, 1, None, 1, before + 1))
    assert f.sm.reads == {"r1": ReadState.READY}


def test_ri_serve_a_follower_asks_the_leader_and_answers_once_applied_that_far() -> None:
    """RI-SERVE: a follower's read is sent to its leader as a ReadIndexRequest; given a read index it
    is ready once the follower has applied up to it; a refusal, or a change of leader before the
    answer, abandons it; with no leader known it is abandoned at once."""
    f = make()
    r = f.replica
    r.read("none")
    assert f.sm.reads == {"none": ReadState.ABANDONED}
    follow(f)
    r.read("r1")
    request = f.cluster.message(ReadIndexRequest, to=LEADER)
    assert request == ReadIndexRequest(ME, 1, request.seq)
    r.step(ReadIndexResponse(LEADER, 1, request.seq, True, 1))
    assert "r1" not in f.sm.reads  # it has applied nothing yet
    r.step(append(1, 0, 0, (e(1, 1),), commit=1))
    assert f.sm.reads["r1"] is ReadState.READY
    r.read("r2")
    seq = f.cluster.messages(ReadIndexRequest)[-1].seq
    r.step(ReadIndexResponse(LEADER, 1, seq, False, 0))
    assert f.sm.reads["r2"] is ReadState.ABANDONED
    r.read("r3")
    r.step(append(2, sender=3))  # another leader, in a new term, before the answer
    assert f.sm.reads["r3"] is ReadState.ABANDONED


def test_ri_serve_a_leader_answers_a_followers_request_with_its_confirmed_commit_index() -> None:
    """RI-SERVE: a leader confirms a follower's ReadIndexRequest like its own read and answers with
    its commit index; a server that is not leader refuses it."""
    f = make()
    elect(f, 1.0)
    commit_noop(f)
    r = f.replica
    r.step(ReadIndexRequest(3, 1, 4))
    assert f.cluster.messages(ReadIndexResponse) == []
    beat = f.cluster.messages(AppendEntryRequest, to=2)[-1]
    r.step(AppendEntryResponse(2, 1, True, 1, None, 1, beat.round))
    assert f.cluster.messages(ReadIndexResponse) == [ReadIndexResponse(ME, 1, 4, True, 1)]
    g = make()
    follow(g)
    g.replica.step(ReadIndexRequest(3, 1, 2))
    assert g.cluster.take() == [(3, ReadIndexResponse(ME, 1, 2, False, 0))]


def test_ri_lease_within_its_lease_a_leader_serves_a_read_without_a_round() -> None:
    """RI-LEASE: with read_lease (and check_quorum), a leader whose latest round a majority answered
    less than the minimum election timeout / drift_bound ago serves a read with no round; later, or
    after a transfer was tried in its term, it needs a round; read_lease without check_quorum is refused."""
    f = make(check_quorum=True, read_lease=True, drift_bound=1.5)
    start = elect(f, 1.0)
    commit_noop(f)  # acknowledges the round the no-op was sent in, at `start`
    r = f.replica
    r.tick(start + LOW / 1.5 - 0.01)
    f.cluster.take()
    r.read("lease")
    assert f.sm.reads == {"lease": ReadState.READY}
    assert f.cluster.messages(AppendEntryRequest) == []
    r.tick(start + LOW / 1.5 + 0.001)
    f.cluster.take()
    r.read("round")
    assert "round" not in f.sm.reads and f.cluster.messages(AppendEntryRequest)
    with pytest.raises(ValueError, match="read_lease needs check_quorum"):
        make(read_lease=True)


def test_ri_lease_no_lease_after_a_transfer_was_tried_in_the_term() -> None:
    """RI-LEASE: a leader that tried a transfer in its term serves no lease reads again in that term
    (its TimeoutNow lets the target be elected despite CQ-STICKY)."""
    f = make(check_quorum=True, read_lease=True)
    start = elect(f, 1.0)
    commit_noop(f)
    r = f.replica
    r.transfer_leadership(2)
    f.cluster.take()
    r.read("after-transfer")
    assert "after-transfer" not in f.sm.reads and f.cluster.messages(AppendEntryRequest)
    assert r.now() < start + LOW


def test_ri_lease_a_restarted_server_waits_a_timeout_before_it_votes() -> None:
    """RI-LEASE, CQ-STICKY: a server that has just (re)started acts as if it had just heard from a
    leader: for the minimum election timeout it ignores VoteRequests of higher terms (with
    check_quorum) and refuses pre-votes, so that a crash and restart cannot cut a leader's lease short."""
    f = make(check_quorum=True, pre_vote=True)
    r = f.replica
    r.step(VoteRequest(3, 2, 0, 0))
    r.step(PreVoteRequest(3, 2, 0, 0))
    assert r.current_term == 0 and f.cluster.take() == [(3, PreVoteResponse(ME, 0, False))]
    r.tick(LOW)
    r.step(VoteRequest(3, 2, 0, 0))
    assert (r.current_term, r.voted_for) == (2, 3)


def test_cq_stepdown_a_single_node_leader_never_steps_down() -> None:
    """CQ-STEPDOWN: alone, a leader is a majority: however late its heartbeat ticks come (a slow disk,
    a paused process), it never steps down."""
    f = make(peers=(), check_quorum=True)
    r = f.replica
    r.tick(r.next_deadline)
    assert r.role is Role.LEADER
    for now in (1.0, 1.06, 1.5, 4.0):
        r.tick(now)
        assert r.role is Role.LEADER
    for _ in range(100):
        r.tick(r.next_deadline)
    assert len(r.round_sent) <= 2  # the rounds it no longer needs are forgotten
