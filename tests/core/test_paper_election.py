"""Paper-claim tests for leader election (Raft §5.1, §5.2, §5.4.1, §8), in the spirit of etcd raft's
raft_paper_test.go: ONE `Replica` is driven by hand with hand-built messages, `tick(now)` and
`process_transitions()`, and the tests assert on what the recording cluster saw and on the replica's
state. Every test is named after the rule id of docs/raft-rules.md it checks, and its docstring starts
with that id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, InstallSnapshotResponse, LogEntry, MemoryStorage, Message, Replica,
    Role, Storage, TransitionState, VoteRequest, VoteResponse,
)
from raftlab.storage import SqliteStorage
from raftlab.grading.fakes import (
    ELECTION, HEARTBEAT, ME, NOOP, Op, RecordingCluster, append, build, campaign, elect, journaled, log_of, stored,
)

LOW, HIGH = ELECTION


# ----- ALL-TERM --------------------------------------------------------------------------------

def _higher_term_messages(term: int) -> dict[str, Message]:
    # The VoteRequest's candidate has an empty log, older than the replica's, so the vote is refused
    # and the cleared vote stays cleared.
    return {
        "append_request": append(term),
        "vote_request": VoteRequest(2, term, 0, 0),
        "append_response": AppendEntryResponse(2, term, False, 0, 1),
        "vote_response": VoteResponse(2, term, False),
        "snapshot_response": InstallSnapshotResponse(2, term, 0),
    }


@pytest.mark.parametrize("role", [Role.LEADER, Role.CANDIDATE])
@pytest.mark.parametrize("kind", list(_higher_term_messages(0)))
def test_all_term_higher_term_request_or_response_makes_follower_and_clears_vote(role: Role, kind: str) -> None:
    """ALL-TERM (§5.1): any request or response with a term above current_term makes a leader or a
    candidate a follower of that term, with no vote (persisted in storage)."""
    storage = stored(log_of([1, 2]), term=2)  # a log, so that the candidate of the VoteRequest is behind
    replica, cluster, _ = build(storage=storage)
    if role is Role.LEADER:
        elect(replica)
        cluster.take()
    else:
        campaign(replica)
        cluster.take()
    assert replica.current_term == 3 and replica.voted_for == ME
    replica.step(_higher_term_messages(7)[kind])
    assert replica.role is Role.FOLLOWER
    assert replica.current_term == 7
    assert storage.current_term == 7
    assert storage.voted_for is None
    assert replica.voted_for is None
    assert replica.leader_id == (2 if kind == "append_request" else None)
    if kind.endswith("request"):  # the request is answered in the new term
        (to, reply), = cluster.take()
        assert to == 2 and reply.term == 7
    else:  # a response is not answered
        assert cluster.take() == []


def test_all_term_higher_term_is_persisted_before_answering() -> None:
    """ALL-TERM (§5.1, Figure 2 "persist first"): the new term and the cleared vote are durable before
    the reply to the higher-term request is sent."""
    f = journaled(log_of([1, 2]), term=2)
    replica, cluster, journal = f.replica, f.cluster, f.journal
    campaign(replica)
    cluster.take()
    journal.clear()
    replica.step(VoteRequest(2, 5, 0, 0))  # refused: the candidate's log is behind
    assert journal[0] == ("persist", 5, None)
    kind, to, message, term_at_send, vote_at_send = journal[-1]
    assert (kind, to) == ("send", 2)
    assert message == VoteResponse(ME, 5, False)
    assert (term_at_send, vote_at_send) == (5, None)


def test_all_term_higher_term_makes_follower_adopt_term_and_forget_vote() -> None:
    """ALL-TERM (§5.1): a follower that voted in term 1 and sees term 4 adopts term 4 with no vote."""
    storage = stored(log_of([1]), term=1, voted_for=2)
    replica, cluster, _ = build(storage=storage)
    replica.step(AppendEntryResponse(3, 4, False, 0, 1))
    assert (replica.role, storage.current_term, storage.voted_for) == (Role.FOLLOWER, 4, None)
    assert cluster.take() == []


# ----- ALL-STALE -------------------------------------------------------------------------------

def _in_role(role: Role) -> tuple[Replica, RecordingCluster]:
    replica, cluster, _ = build(storage=stored(log_of([1, 4]), term=4))
    if role is Role.LEADER:
        elect(replica)
        cluster.take()
    elif role is Role.CANDIDATE:
        campaign(replica)
        cluster.take()
    else:
        replica.step(append(4, 2, 4))
        cluster.take()
    return replica, cluster


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("kind", [AppendEntryRequest, VoteRequest])
def test_all_stale_lower_term_request_is_refused_with_current_term(role: Role, kind: type) -> None:
    """ALL-STALE (§5.1): a request with a term below current_term is refused and answered with the
    current term; the replica's role, term, vote and known leader do not change."""
    replica, cluster = _in_role(role)
    term, vote, leader = replica.current_term, replica.voted_for, replica.leader_id
    old = term - 2
    # Even with a log that would otherwise be up to date (and a matching prev entry).
    request = append(old, 2, 4, sender=3) if kind is AppendEntryRequest else VoteRequest(3, old, 99, old)
    replica.step(request)
    reply = cluster.take_one(AppendEntryResponse if kind is AppendEntryRequest else VoteResponse, to=3)
    assert reply.term == term
    assert (reply.success if kind is AppendEntryRequest else reply.vote_granted) is False
    assert (replica.role, replica.current_term, replica.voted_for, replica.leader_id) == (role, term, vote, leader)


def test_all_stale_lower_term_vote_response_is_ignored() -> None:
    """ALL-STALE (§5.1): a granted vote from an earlier term does not count for the current election."""
    replica, cluster, _ = build(storage=stored(term=4))
    campaign(replica)  # term 5, needs one more vote of 3
    cluster.take()
    replica.step(VoteResponse(2, 4, True))
    replica.step(VoteResponse(3, 3, True))
    assert replica.role is Role.CANDIDATE
    assert replica.votes == {ME}
    assert replica.current_term == 5
    assert cluster.take() == []


def test_all_stale_lower_term_append_response_is_ignored() -> None:
    """ALL-STALE (§5.1): a leader ignores a success from an earlier term: no match_index, no commit."""
    replica, cluster, _ = build(storage=stored(term=4))
    elect(replica)  # term 5, noop at index 1
    cluster.take()
    replica.step(AppendEntryResponse(2, 4, True, 1, None))
    replica.step(AppendEntryResponse(3, 4, False, 0, 1))
    assert replica.match_index == {2: 0, 3: 0}
    assert replica.next_index == {2: 1, 3: 1}  # probing (FC-PROBE): the no-op is on its way; unchanged
    assert replica.commit_index == 0
    assert (replica.role, replica.current_term) == (Role.LEADER, 5)
    assert cluster.take() == []


# ----- F-RESPOND -------------------------------------------------------------------------------

def test_f_respond_follower_answers_append_and_vote_requests() -> None:
    """F-RESPOND: a follower answers each request from a leader or a candidate, to its sender, in its
    current term, whether it grants it or not."""
    replica, cluster, _ = build(peers=(2, 3, 4))
    cluster.inbox = [
        append(1),  # accepted: leader 2 of term 1
        VoteRequest(3, 1, 0, 0),  # granted: no vote yet in term 1
        VoteRequest(4, 1, 0, 0),  # refused: already voted for 3
        append(0, sender=4),  # refused: stale
    ]
    replica.process_messages()
    assert cluster.sent == [
        (2, AppendEntryResponse(ME, 1, True, 0, None, 0)),  # each answer names the request's prev_log_index
        (3, VoteResponse(ME, 1, True)),
        (4, VoteResponse(ME, 1, False)),
        (4, AppendEntryResponse(ME, 1, False, 0, None, 0)),
    ]
    assert replica.role is Role.FOLLOWER


# ----- F-TIMEOUT -------------------------------------------------------------------------------

def test_f_timeout_follower_becomes_candidate_when_timer_expires() -> None:
    """F-TIMEOUT (§5.2): a follower that hears nothing stays follower until its election timeout, and
    becomes candidate when `tick` reaches it."""
    replica, cluster, _ = build()
    deadline = replica.next_deadline
    assert LOW <= deadline <= HIGH
    replica.tick(deadline - 1e-6)
    assert replica.role is Role.FOLLOWER and replica.current_term == 0 and cluster.sent == []
    replica.tick(deadline)
    assert replica.role is Role.CANDIDATE and replica.current_term == 1


def test_f_timeout_timer_reset_by_append_entries_from_current_leader() -> None:
    """F-TIMEOUT (§5.2): an AppendEntries from the leader of the current term restarts the timer."""
    replica, _, _ = build()
    replica.step(append(1))
    first = replica.next_deadline
    now = first - 0.01
    replica.tick(now)
    replica.step(append(1))
    assert now + LOW <= replica.next_deadline <= now + HIGH
    replica.tick(first)
    assert replica.role is Role.FOLLOWER and replica.current_term == 1
    replica.tick(replica.next_deadline)
    assert replica.role is Role.CANDIDATE and replica.current_term == 2


def test_f_timeout_timer_reset_by_granting_a_vote() -> None:
    """F-TIMEOUT (§5.2): granting a vote restarts the election timer."""
    replica, cluster, _ = build()
    first = replica.next_deadline
    now = first - 0.01
    replica.tick(now)
    replica.step(VoteRequest(2, 1, 0, 0))
    assert cluster.take_one(VoteResponse, to=2).vote_granted
    assert now + LOW <= replica.next_deadline <= now + HIGH
    replica.tick(first)
    assert replica.role is Role.FOLLOWER
    replica.tick(replica.next_deadline)
    assert replica.role is Role.CANDIDATE and replica.current_term == 2


def _not_resetting() -> dict[str, tuple[Message, ...]]:
    # The follower: term 2, log (1, 2), leader 2 known, voted for 3 in term 2.
    return {
        "vote_refused_already_voted": (VoteRequest(4, 2, 5, 2),),
        "vote_refused_log_behind": (VoteRequest(4, 3, 1, 1),),
        "stale_append_request": (append(1, sender=4),),
        "stale_vote_request": (VoteRequest(4, 1, 9, 1),),
        "stray_vote_response": (VoteResponse(4, 2, True),),
        "stray_append_response": (AppendEntryResponse(4, 2, True, 2, None),),
    }


@pytest.mark.parametrize("kind", list(_not_resetting()))
def test_f_timeout_timer_not_reset_by_refused_vote_or_stale_message(kind: str) -> None:
    """F-TIMEOUT (§5.2) and the pitfall "resetting the election timer on every message, or on refused
    votes": a refused vote, a stale-term request or a stray response leaves the timer alone, and the
    follower still times out at the original deadline."""
    replica, _, _ = build(peers=(2, 3, 4), storage=stored(log_of([1, 2]), term=2, voted_for=3))
    replica.step(append(2, 2, 2))
    deadline = replica.next_deadline
    replica.tick(deadline - 0.01)
    for message in _not_resetting()[kind]:
        replica.step(message)
    assert replica.next_deadline == deadline
    replica.tick(deadline)
    assert replica.role is Role.CANDIDATE


# ----- C-START ---------------------------------------------------------------------------------

def test_c_start_increments_term_votes_for_self_and_requests_votes() -> None:
    """C-START (§5.2): on becoming candidate the replica increases its term, votes for itself
    (persisted), forgets the leader, draws a fresh timer in the range, and sends one VoteRequest with
    its last log index and term to every peer."""
    storage = stored(log_of([1, 3, 3]), term=3)
    replica, cluster, _ = build(peers=(2, 3, 4, 5), storage=storage)
    replica.step(append(3, 3, 3))
    cluster.take()
    now = replica.next_deadline
    replica.tick(now)
    assert replica.role is Role.CANDIDATE
    assert (storage.current_term, storage.voted_for) == (4, ME)
    assert replica.votes == {ME}
    assert replica.leader_id is None
    assert now + LOW <= replica.next_deadline <= now + HIGH
    assert cluster.take() == [(p, VoteRequest(ME, 4, 3, 3)) for p in (2, 3, 4, 5)]


def test_c_start_term_and_self_vote_persisted_before_vote_requests() -> None:
    """C-START (§5.2): the new term and the self-vote are durable before any VoteRequest leaves."""
    f = journaled(term=6)
    replica, journal = f.replica, f.journal
    replica.tick(replica.next_deadline)
    assert journal[0] == ("persist", 7, ME)
    sends = journal[1:]
    assert [entry[1] for entry in sends] == [2, 3]
    assert all(entry[0] == "send" and entry[3:] == (7, ME) for entry in sends)


# ----- C-WIN -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("peers", "needed"), [((2, 3), 1), ((2, 3, 4), 2), ((2, 3, 4, 5), 2)],
                         ids=["3-nodes", "4-nodes", "5-nodes"])
def test_c_win_majority_of_whole_cluster_including_self_makes_leader(peers: tuple[int, ...], needed: int) -> None:
    """C-WIN (§5.2): a candidate becomes leader exactly when the granted votes, its own included,
    form a majority of the whole cluster; refusals and duplicate votes do not count; it then calls
    register_leader with its own id."""
    replica, cluster, _ = build(peers=peers)
    campaign(replica)
    cluster.take()
    term = replica.current_term
    granters = peers[:needed]
    for peer in peers[needed:]:  # refusals first
        replica.step(VoteResponse(peer, term, False))
    for peer in granters[:-1]:
        replica.step(VoteResponse(peer, term, True))
        replica.step(VoteResponse(peer, term, True))  # a duplicate
    assert replica.role is Role.CANDIDATE
    assert replica.votes == {ME, *granters[:-1]}
    assert ME not in cluster.leaders
    replica.step(VoteResponse(granters[-1], term, True))
    assert replica.role is Role.LEADER
    assert replica.current_term == term
    assert replica.leader_id == ME
    assert cluster.leaders[-1] == ME


# ----- C-YIELD ---------------------------------------------------------------------------------

def test_c_yield_append_entries_from_leader_of_same_term_makes_candidate_follower() -> None:
    """C-YIELD (§5.2): a candidate that receives an AppendEntries from a leader of its own term
    becomes a follower of that leader (register_leader), keeps its term and vote, and answers."""
    replica, cluster, _ = build()
    campaign(replica)
    cluster.take()
    cluster.leaders.clear()
    replica.step(append(1))
    assert replica.role is Role.FOLLOWER
    assert (replica.current_term, replica.voted_for) == (1, ME)
    assert replica.leader_id == 2
    assert cluster.leaders == [2]
    assert cluster.take_one(AppendEntryResponse, to=2) == AppendEntryResponse(ME, 1, True, 0, None, 0)
    replica.step(VoteResponse(3, 1, True))  # a late vote no longer makes it leader
    assert replica.role is Role.FOLLOWER


def test_c_yield_not_for_append_entries_of_older_term() -> None:
    """C-YIELD (§5.2): only a leader whose term is at least the candidate's makes it yield."""
    replica, cluster, _ = build(storage=stored(term=2))
    campaign(replica)  # term 3
    cluster.take()
    replica.step(append(2))
    assert replica.role is Role.CANDIDATE and replica.leader_id is None


# ----- C-RETRY ---------------------------------------------------------------------------------

def test_c_retry_split_vote_starts_new_election_with_fresh_random_timer() -> None:
    """C-RETRY (§5.2): when the election timer expires with no winner the candidate starts a new
    election in term + 1 (own vote only, new VoteRequests), each time with a fresh random timeout."""
    replica, cluster, _ = build(peers=(2, 3, 4, 5))
    durations = []
    now = campaign(replica)
    cluster.take()
    replica.step(VoteResponse(2, 1, True))  # one vote of the two needed: a split vote
    replica.step(VoteResponse(3, 1, False))
    for term in range(2, 7):
        previous = replica.next_deadline
        replica.tick(previous - 1e-6)
        assert replica.current_term == term - 1 and cluster.sent == []
        now = previous
        replica.tick(now)
        assert replica.role is Role.CANDIDATE
        assert (replica.current_term, replica.voted_for, replica.votes) == (term, ME, {ME})
        assert cluster.take() == [(p, VoteRequest(ME, term, 0, 0)) for p in (2, 3, 4, 5)]
        duration = replica.next_deadline - now
        assert LOW <= duration <= HIGH
        durations.append(duration)
    assert len(set(durations)) == len(durations)  # randomised, not a fixed timeout


# ----- RV-STALE --------------------------------------------------------------------------------

def test_rv_stale_refuses_vote_request_of_older_term() -> None:
    """RV-STALE (§5.1): a VoteRequest with a term below current_term is refused with the current term,
    even from a candidate with a longer log, and the vote is not recorded."""
    storage = stored(log_of([1]), term=3)
    replica, cluster, _ = build(storage=storage)
    replica.step(VoteRequest(2, 2, 10, 2))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 3, False)
    assert (storage.current_term, storage.voted_for) == (3, None)


# ----- RV-GRANT --------------------------------------------------------------------------------

def test_rv_grant_grants_when_not_voted_and_again_to_same_candidate() -> None:
    """RV-GRANT (§5.2): a replica that has not voted in the term grants the vote (persisted), and
    grants it again to the same candidate (a retransmitted request)."""
    storage = stored(log_of([1]), term=1)
    replica, cluster, _ = build(storage=storage)
    replica.step(VoteRequest(2, 1, 1, 1))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 1, True)
    assert storage.voted_for == 2
    replica.step(VoteRequest(2, 1, 1, 1))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 1, True)
    assert storage.voted_for == 2


def test_rv_grant_refuses_second_candidate_in_same_term() -> None:
    """RV-GRANT (§5.2): at most one vote per term: once it voted for 2, a replica refuses 3 in the same
    term even though 3's log is more up to date."""
    storage = stored(log_of([1]), term=1)
    replica, cluster, _ = build(storage=storage)
    replica.step(VoteRequest(2, 1, 1, 1))
    cluster.take()
    replica.step(VoteRequest(3, 1, 5, 1))
    assert cluster.take_one(VoteResponse, to=3) == VoteResponse(ME, 1, False)
    assert storage.voted_for == 2


def test_rv_grant_candidate_votes_only_for_itself() -> None:
    """RV-GRANT (§5.2): a candidate has voted for itself and refuses other candidates of its term."""
    replica, cluster, _ = build()
    campaign(replica)
    cluster.take()
    replica.step(VoteRequest(2, 1, 0, 0))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 1, False)
    assert replica.voted_for == ME and replica.role is Role.CANDIDATE


@pytest.mark.parametrize(("last_index", "last_term", "granted"), [
    (1, 3, True),  # higher last term wins, even with a shorter log
    (9, 3, True),
    (3, 2, True),  # equal last term, equal index
    (4, 2, True),  # equal last term, longer log
    (2, 2, False),  # equal last term, shorter log
    (9, 1, False),  # older last term loses, even with a longer log
    (0, 0, False),  # empty log
], ids=["higher-term-shorter", "higher-term-longer", "equal-term-equal-index", "equal-term-longer",
        "equal-term-shorter", "older-term-longer", "empty"])
def test_rv_grant_up_to_date_check(last_index: int, last_term: int, granted: bool) -> None:
    """RV-GRANT (§5.4.1): the vote goes only to a candidate whose log is at least as up to date: a
    higher last term wins; with equal last terms the candidate's last index must be >= the voter's.
    The voter's log ends at (index 3, term 2)."""
    storage = stored(log_of([1, 2, 2]), term=2)
    replica, cluster, _ = build(storage=storage)
    deadline = replica.next_deadline
    replica.tick(0.1)
    replica.step(VoteRequest(2, 4, last_index, last_term))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 4, granted)
    assert storage.current_term == 4
    assert storage.voted_for == (2 if granted else None)
    if not granted:  # F-TIMEOUT: a refused vote leaves the timer alone
        assert replica.next_deadline == deadline


def test_rv_grant_refuses_candidate_with_older_last_term() -> None:
    """RV-GRANT (§5.4.1): a candidate whose last entry has an older term is refused however long its log,
    so it cannot become leader and overwrite the voter's newer entries."""
    storage = stored(log_of([1, 5]), term=5)
    replica, cluster, _ = build(storage=storage)
    replica.step(VoteRequest(2, 6, 100, 4))
    assert cluster.take_one(VoteResponse, to=2) == VoteResponse(ME, 6, False)
    assert storage.voted_for is None


def test_rv_grant_vote_persisted_before_response_is_sent() -> None:
    """RV-GRANT (§5.2, Figure 2): the vote is in storage (and its durability hook has returned) when
    the granting VoteResponse is handed to the cluster."""
    f = journaled(term=1)
    replica, journal = f.replica, f.journal
    replica.step(VoteRequest(3, 1, 0, 0))
    assert journal == [
        ("persist", 1, 3),
        ("send", 3, VoteResponse(ME, 1, True), 1, 3),
    ]
    journal.clear()
    replica.step(VoteRequest(2, 4, 0, 0))  # a higher term: term change and vote, both before the reply
    assert [e for e in journal if e[0] == "persist"][-1] == ("persist", 4, 2)
    assert journal[-1] == ("send", 2, VoteResponse(ME, 4, True), 4, 2)
    assert all(e[0] == "persist" for e in journal[:-1])


# ----- L-NOOP ----------------------------------------------------------------------------------

def test_l_noop_new_leader_appends_noop_of_its_term_and_sends_it() -> None:
    """L-NOOP (§8): a new leader appends noop_transition with its own term at last_index + 1, and its
    first AppendEntries to each peer carries that entry after the previous last entry."""
    storage = stored(log_of([1, 2]), term=2)
    replica, cluster, _ = build(storage=storage)
    campaign(replica)
    cluster.take()
    replica.step(VoteResponse(3, 3, True))
    assert replica.role is Role.LEADER
    noop = LogEntry(NOOP, 3, 3)
    assert replica.log.last_index == 3
    assert replica.log.entry(3) == noop
    assert storage.log.entry(3) == noop
    appends = cluster.take(AppendEntryRequest)
    assert appends == [(p, AppendEntryRequest(ME, 3, 2, 2, (noop,), 0)) for p in (2, 3)]
    assert replica.commit_index == 0  # not committed before a majority holds it


# ----- L-HEARTBEAT -----------------------------------------------------------------------------

def test_l_heartbeat_sent_on_election_and_every_heartbeat_interval() -> None:
    """L-HEARTBEAT (§5.2): a new leader sends AppendEntries to every peer at once, then again each time
    `tick` reaches the heartbeat deadline (next_deadline); never in between; a leader never starts an
    election; once peers are up to date the heartbeats are empty."""
    replica, cluster, _ = build(peers=(2, 3, 4))
    now = campaign(replica) + 0.01
    cluster.take()
    replica.tick(now)
    replica.step(VoteResponse(2, 1, True))
    replica.step(VoteResponse(3, 1, True))
    assert replica.role is Role.LEADER
    assert [to for to, _ in cluster.take(AppendEntryRequest)] == [2, 3, 4]
    assert cluster.take() == []
    assert replica.next_deadline == pytest.approx(now + HEARTBEAT)
    for _ in range(3):
        deadline = replica.next_deadline
        replica.tick(deadline - 1e-6)
        assert cluster.take() == []
        replica.tick(deadline)
        sent = cluster.take()
        assert [to for to, _ in sent] == [2, 3, 4]
        assert all(isinstance(m, AppendEntryRequest) and m.term == 1 for _, m in sent)
        assert replica.next_deadline == pytest.approx(deadline + HEARTBEAT)
    late = replica.next_deadline + 10 * HIGH  # far past any election timeout
    replica.tick(late)
    assert (replica.role, replica.current_term) == (Role.LEADER, 1)
    assert [to for to, _ in cluster.take(AppendEntryRequest)] == [2, 3, 4]
    assert replica.next_deadline == pytest.approx(late + HEARTBEAT)
    for peer in (2, 3, 4):  # everyone acknowledges the noop
        replica.step(AppendEntryResponse(peer, 1, True, 1, None))
    cluster.take()
    replica.tick(replica.next_deadline)
    assert cluster.take() == [(p, AppendEntryRequest(ME, 1, 1, 1, (), 1)) for p in (2, 3, 4)]


# ----- single-node cluster ---------------------------------------------------------------------

def test_c_win_single_node_cluster_elects_itself_and_commits_alone() -> None:
    """C-WIN / L-COMMIT with peers=(): a lone replica becomes leader at its first election timeout (its
    own vote is a majority of one), commits and applies its noop, then a transition, sending nothing."""
    replica, cluster, sm = build(peers=())
    deadline = replica.next_deadline
    replica.tick(deadline - 1e-6)
    assert replica.role is Role.FOLLOWER
    replica.tick(deadline)
    assert replica.role is Role.LEADER
    assert (replica.current_term, replica.voted_for) == (1, ME)
    assert cluster.leaders == [ME]
    assert replica.commit_index == 1 and sm.applied == [NOOP]
    sm.pending.append(Op("x", 5))
    replica.process_transitions()
    assert replica.log.entry(2) == LogEntry(Op("x", 5), 2, 1)
    assert replica.commit_index == replica.last_applied == 2
    assert sm.applied == [NOOP, Op("x", 5)] and sm.total == 5
    assert sm.state_of("x") is TransitionState.APPLIED
    assert cluster.sent == []


# ----- pitfall: persisting the vote across a restart -------------------------------------------

@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_rv_grant_pitfall_vote_survives_restart_no_second_vote_in_term(backend: str, tmp_path: Path) -> None:
    """RV-GRANT, pitfall "not persisting term and vote before answering: two votes in one term after a
    restart": a replica that voted for 2 and restarts from the same storage refuses 3 in that term
    (and still grants 2)."""
    def open_storage() -> Storage:
        return MemoryStorage() if backend == "memory" else SqliteStorage(tmp_path / "raft.db")

    storage = open_storage()
    first, cluster, _ = build(storage=storage)
    first.step(VoteRequest(2, 5, 0, 0))
    assert cluster.take_one(VoteResponse, to=2).vote_granted
    if backend == "sqlite":
        storage.close()
        storage = open_storage()
    try:
        second, cluster2, _ = build(storage=storage, seed=1)  # a new incarnation on the same storage
        assert (second.current_term, second.voted_for, second.role) == (5, 2, Role.FOLLOWER)
        second.step(VoteRequest(3, 5, 0, 0))
        assert cluster2.take_one(VoteResponse, to=3) == VoteResponse(ME, 5, False)
        second.step(VoteRequest(2, 5, 0, 0))
        assert cluster2.take_one(VoteResponse, to=2) == VoteResponse(ME, 5, True)
        assert second.voted_for == 2
    finally:
        if isinstance(storage, SqliteStorage):
            storage.close()


def test_c_start_pitfall_candidate_restart_does_not_vote_again_in_its_term() -> None:
    """C-START, same pitfall: a candidate's self-vote survives a restart, so the restarted replica
    refuses another candidate of that term and its next election uses term + 1."""
    storage = MemoryStorage()
    first, cluster, _ = build(storage=storage)
    campaign(first)
    cluster.take()
    second, cluster2, _ = build(storage=storage, seed=3)
    assert (second.current_term, second.voted_for) == (1, ME)
    second.step(VoteRequest(2, 1, 0, 0))
    assert cluster2.take_one(VoteResponse, to=2) == VoteResponse(ME, 1, False)
    second.tick(second.next_deadline)
    assert (second.role, second.current_term) == (Role.CANDIDATE, 2)


# ----- register_leader -------------------------------------------------------------------------

def test_c_yield_register_leader_called_on_every_change_of_known_leader() -> None:
    """C-YIELD / ALL-TERM / C-START / C-WIN: register_leader is told each change of the known leader:
    the leader of the term when first heard, None when the term changes or the replica becomes
    candidate, its own id when it wins; never twice in a row for the same leader."""
    replica, cluster, _ = build(peers=(2, 3, 4))
    assert cluster.leaders == []
    replica.step(append(1))
    replica.step(append(1))  # the same leader: no new call
    assert cluster.leaders == [2]
    replica.step(VoteRequest(3, 2, 0, 0))  # term 2: the leader of term 1 is no longer known
    assert cluster.leaders == [2, None]
    replica.step(append(2, sender=3))
    assert cluster.leaders == [2, None, 3]
    replica.step(AppendEntryResponse(4, 3, False, 0, 1))  # term 3, from a response
    assert cluster.leaders == [2, None, 3, None]
    replica.step(append(3, sender=4))
    assert cluster.leaders == [2, None, 3, None, 4]
    replica.tick(replica.next_deadline)  # candidate in term 4
    assert replica.role is Role.CANDIDATE
    assert cluster.leaders == [2, None, 3, None, 4, None]
    replica.tick(replica.next_deadline)  # C-RETRY: leader still unknown, no call
    assert cluster.leaders == [2, None, 3, None, 4, None]
    replica.step(VoteResponse(2, 5, True))
    replica.step(VoteResponse(3, 5, True))
    assert cluster.leaders == [2, None, 3, None, 4, None, ME]
    replica.step(append(6))  # deposed by a leader of a later term
    assert replica.role is Role.FOLLOWER
    assert cluster.leaders == [2, None, 3, None, 4, None, ME, None, 2]


# ----- randomised election timeouts ------------------------------------------------------------

def test_f_timeout_randomised_timeouts_differ_between_seeds_and_lie_in_range() -> None:
    """F-TIMEOUT / C-START (§5.2): election timeouts are drawn at random from the configured range:
    different seeds give different timers, the same seed the same one, all within (low, high)."""
    deadlines = [build(seed=seed).replica.next_deadline for seed in range(20)]
    assert all(LOW <= d <= HIGH for d in deadlines)
    assert len(set(deadlines)) == len(deadlines)
    assert build(seed=7).replica.next_deadline == deadlines[7]
    # After a reset at time t the timer lies in [t + low, t + high] too.
    for seed in range(20):
        replica, _, _ = build(seed=seed)
        replica.tick(1.0)
        replica.step(append(1))
        assert 1.0 + LOW <= replica.next_deadline <= 1.0 + HIGH
