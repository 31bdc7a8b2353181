"""Bad input: constructor arguments, malformed or misaddressed messages, and a failing state machine.

A replica must reject bad configuration loudly (ValueError naming the argument) and drop bad messages
quietly (counted in `stats`, nothing sent, nothing changed, nothing raised); a failing
`apply_transition` stops it for good (fail-stop, ALL-APPLY never skips an entry).
"""

from __future__ import annotations

from collections import namedtuple
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, ApplyError, InstallSnapshotRequest, InstallSnapshotResponse,
    LogEntry, MemoryStorage, PreVoteRequest, PreVoteResponse, Replica, Role, TimeoutNow, TransitionState,
    VoteRequest, VoteResponse, check_message,
)
from raftlab.core.messages import MESSAGE_TYPES
from raftlab.core.replica import _REQUESTS as REQUESTS
from raftlab.grading.fakes import Op, RecordingStateMachine, build, held_entries, leader, log_of


# ----- constructor ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "names"), [
    ({"peers": (1, 2)}, ["peer_ids"]),  # own id among the peers
    ({"peers": (2, 3, 2)}, ["peer_ids"]),  # duplicate peer
    ({"id": -1}, ["id"]),
    ({"id": "1"}, ["id"]),
    ({"id": 1.0}, ["id"]),
    ({"id": True}, ["id"]),  # a bool is not an id
    ({"id": None}, ["id"]),
    ({"peers": (2, -3)}, ["peer_ids"]),
    ({"peers": (2, "3")}, ["peer_ids"]),
    ({"peers": (2, 3.0)}, ["peer_ids"]),
    ({"peers": (False,)}, ["peer_ids"]),
    ({"heartbeat": 0}, ["heartbeat_timeout"]),
    ({"heartbeat": -0.05}, ["heartbeat_timeout"]),
    ({"heartbeat": timedelta(0)}, ["heartbeat_timeout"]),
    ({"heartbeat": timedelta(seconds=-1)}, ["heartbeat_timeout"]),
    ({"heartbeat": "0.05"}, ["heartbeat_timeout"]),
    ({"heartbeat": None}, ["heartbeat_timeout"]),
    ({"heartbeat": float("nan")}, ["heartbeat_timeout"]),
    ({"heartbeat": float("inf")}, ["heartbeat_timeout"]),
    ({"election": ()}, ["election_timeout_range"]),  # empty
    ({"election": (0.2,)}, ["election_timeout_range"]),  # not a pair
    ({"election": (0.15, 0.2, 0.3)}, ["election_timeout_range"]),
    ({"election": 0.2}, ["election_timeout_range"]),
    ({"election": None}, ["election_timeout_range"]),
    ({"election": "ab"}, ["election_timeout_range"]),
    ({"election": (0.15, "0.3")}, ["election_timeout_range"]),
    ({"election": (0.30, 0.15)}, ["election_timeout_range"]),  # inverted
    ({"election": (timedelta(seconds=0.3), timedelta(seconds=0.15))}, ["election_timeout_range"]),
    ({"election": (0.05, 0.3)}, ["election_timeout_range", "heartbeat_timeout"]),  # low == heartbeat
    ({"election": (0.04, 0.3)}, ["election_timeout_range", "heartbeat_timeout"]),  # low < heartbeat
    ({"heartbeat": 0.2, "election": (0.15, 0.3)}, ["election_timeout_range", "heartbeat_timeout"]),
    ({"snapshot_delta": -1}, ["snapshot_delta"]),
    ({"snapshot_delta": 1.5}, ["snapshot_delta"]),
    ({"snapshot_delta": 2.0}, ["snapshot_delta"]),
    ({"snapshot_delta": "3"}, ["snapshot_delta"]),
    ({"snapshot_delta": True}, ["snapshot_delta"]),
    ({"max_inflight": 0}, ["max_inflight"]),
    ({"max_inflight": 2.0}, ["max_inflight"]),
    ({"max_inflight": True}, ["max_inflight"]),
    ({"snapshot_delta": None}, ["snapshot_delta"]),
])
def test_bad_constructor_argument_raises_value_error_naming_it(kwargs: dict, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        build(**kwargs)
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_good_constructor_arguments_are_accepted() -> None:
    for kwargs in ({"id": 0, "peers": ()}, {"id": 7, "peers": [0, 3, 5]}, {"snapshot_delta": 0},
                   {"snapshot_delta": 10}, {"heartbeat": 1, "election": (2, 2)}):
        replica = build(**kwargs).replica
        assert replica.role is Role.FOLLOWER
    assert build(peers=iter([2, 3])).replica.peer_ids == (2, 3)  # any iterable of ids


def test_timedelta_timeouts_equal_their_seconds() -> None:
    """Timeouts may be given as datetime.timedelta; they mean the same as the seconds value."""
    as_delta = build(heartbeat=timedelta(milliseconds=50),
                     election=(timedelta(milliseconds=150), timedelta(milliseconds=300)), seed=4).replica
    as_float = build(heartbeat=0.05, election=(0.15, 0.30), seed=4).replica
    mixed = build(heartbeat=timedelta(milliseconds=50), election=(0.15, timedelta(seconds=0.3)), seed=4).replica
    for replica in (as_delta, mixed):
        assert replica.heartbeat_timeout == 0.05
        assert replica.election_timeout_range == (0.15, 0.30)
        assert isinstance(replica.heartbeat_timeout, float)
        assert replica.next_deadline == as_float.next_deadline  # same seed, same timer
    # and they behave the same: the same election at the same time
    for replica in (as_delta, as_float):
        replica.tick(0.301)
        assert replica.role is Role.CANDIDATE
        assert replica.current_term == 1


# ----- malformed and misaddressed messages -------------------------------------------------------------------
LookAlike = namedtuple("LookAlike", "from_id term last_log_index last_log_term")


class VoteRequestSubclass(VoteRequest):
    __slots__ = ()


BAD_MESSAGES: list[tuple[Any, str]] = [
    ({"from_id": 2, "term": 9}, "unknown message type"),
    (None, "unknown message type"),
    (3, "unknown message type"),
    ("VoteRequest(2, 9, 0, 0)", "unknown message type"),
    (LookAlike(2, 9, 0, 0), "unknown message type"),
    (VoteRequestSubclass(2, 9, 0, 0), "unknown message type"),
    (VoteRequest(2, "9", 0, 0), "ill-typed field"),  # string term
    (VoteRequest(2, 9.0, 0, 0), "ill-typed field"),  # float term
    (VoteRequest(2, -1, 0, 0), "ill-typed field"),
    (VoteRequest(2, 9, -1, 0), "ill-typed field"),  # negative index
    (VoteRequest(2, True, 0, 0), "ill-typed field"),  # bool where int
    (VoteRequest(True, 9, 0, 0), "ill-typed field"),
    (VoteRequest("2", 9, 0, 0), "ill-typed field"),
    (VoteRequest(None, 9, 0, 0), "ill-typed field"),
    (VoteResponse(2, 9, 1), "ill-typed field"),  # int where bool
    (VoteResponse(2, 9, None), "ill-typed field"),
    (AppendEntryResponse(2, 9, 0, 0, None), "ill-typed field"),
    (AppendEntryResponse(2, 9, False, 0, -1), "ill-typed field"),
    (AppendEntryResponse(2, 9, False, 0, "1"), "ill-typed field"),
    (AppendEntryRequest(2, 9, 0, 0, None, 0), "ill-typed field"),  # entries not a sequence
    (AppendEntryRequest(2, 9, 0, 0, "ab", 0), "ill-typed field"),
    (AppendEntryRequest(2, 9, 0, 0, 5, 0), "ill-typed field"),
    (AppendEntryRequest(2, 9, 0, 0, {1: 1}, 0), "ill-typed field"),
    (AppendEntryRequest(2, 9, 0, 0, (), -1), "ill-typed field"),
    (AppendEntryRequest(2, 9, 0, 0, tuple(log_of([9], first=2)), 0), "entry out of place"),  # misnumbered
    (AppendEntryRequest(2, 9, 0, 0, tuple(log_of([9, 9]))[::-1], 0), "entry out of place"),
    (AppendEntryRequest(2, 9, 3, 1, tuple(log_of([9])), 0), "entry out of place"),
    (AppendEntryRequest(2, 9, 0, 0, tuple(log_of([10])), 0), "entry out of place"),  # term above request's
    (AppendEntryRequest(2, 9, 0, 0, tuple(log_of([5, 4])), 0), "entry out of place"),  # decreasing terms
    (AppendEntryRequest(2, 9, 1, 5, tuple(log_of([4], first=2)), 0), "entry out of place"),  # below prev_log_term
    (AppendEntryRequest(2, 9, 0, 0, (("x", 1, 9),), 0), "entry out of place"),  # not a LogEntry
    (AppendEntryRequest(2, 9, 0, 0, (LogEntry("x", 1, "9"),), 0), "entry out of place"),
    (AppendEntryRequest(2, 9, 0, 0, (LogEntry("x", 1, -1),), 0), "entry out of place"),
    (InstallSnapshotRequest(2, 9, 5, 1, 0, (0, ()), 1), "ill-typed field"),  # int where bool
    (InstallSnapshotRequest(2, 9, -5, 1, 0, (0, ()), True), "ill-typed field"),
    (InstallSnapshotResponse(2, 9, None), "ill-typed field"),
    (VoteResponse(9, 9, True), "unknown sender"),  # an answer from a server of no configuration seen
    (VoteResponse(0, 9, True), "unknown sender"),
    (AppendEntryResponse(4, 9, True, 0, None), "unknown sender"),
    (VoteRequest(1, 9, 0, 0), "from itself"),
    (VoteResponse(1, 9, True), "from itself"),
    (AppendEntryRequest(1, 9, 0, 0, (), 0), "from itself"),
]


def observable(replica: Replica) -> tuple:
    """Everything a dropped message must leave alone."""
    return (replica.current_term, replica.voted_for, replica.role, replica.leader_id, replica.commit_index,
            replica.last_applied, replica.log.snapshot, held_entries(replica), dict(replica.next_index),
            dict(replica.match_index), set(replica.votes), replica.next_deadline, replica.stopped)


@pytest.mark.parametrize("role", ["follower", "leader"])
@pytest.mark.parametrize(("message", "reason"), BAD_MESSAGES, ids=lambda v: repr(v)[:40])
def test_malformed_or_misaddressed_message_is_dropped(message: Any, reason: str, role: str) -> None:
    """INPUT: a malformed or misaddressed message is dropped and counted: no reply, no state change,
    no exception (even though most carry term 9, above the replica's: ALL-TERM must not fire)."""
    if role == "leader":
        replica, cluster, sm = leader()
        cluster.take()
    else:
        replica, cluster, sm = build()
    events_before = list(sm.states)
    before = observable(replica)
    received = replica.stats.received
    replica.step(message)
    assert replica.stats.dropped == 1
    assert replica.stats.drop_reasons == {reason: 1}
    assert replica.stats.received == received + 1
    assert cluster.sent == []
    assert observable(replica) == before
    assert sm.states == events_before
    assert cluster.leaders == ([] if role == "follower" else [1])


def test_drop_counters_accumulate_by_reason() -> None:
    replica, cluster, _ = build()
    cluster.inbox = [None, {}, VoteResponse(9, 1, True), VoteRequest(2, "1", 0, 0), VoteRequest(1, 1, 0, 0),
                     VoteResponse(7, 1, True), VoteRequest(2, 1, 0, 0)]  # the last one is fine
    replica.process_messages()
    assert replica.stats.received == 7
    assert replica.stats.dropped == 6
    assert replica.stats.drop_reasons == {"unknown message type": 2, "unknown sender": 2,
                                          "ill-typed field": 1, "from itself": 1}
    assert cluster.sent == [(2, VoteResponse(1, 1, True))]
    assert replica.current_term == 1


def test_check_message_accepts_well_formed_messages() -> None:
    """The validation is not so strict that real messages are dropped."""
    good = [VoteRequest(0, 0, 0, 0), VoteResponse(2, 3, False), AppendEntryResponse(2, 3, False, 4, None),
            AppendEntryResponse(2, 3, True, 4, None), AppendEntryResponse(2, 3, False, 4, 2),
            AppendEntryRequest(2, 3, 0, 0, (), 0),
            AppendEntryRequest(2, 3, 2, 1, tuple(log_of([1, 2, 3], first=3)), 1),
            AppendEntryRequest(2, 3, 2, 1, log_of([3], first=3), 1),
            InstallSnapshotRequest(2, 3, 4, 2, 0, object(), True), InstallSnapshotResponse(2, 3, 4)]
    for message in good:
        assert check_message(message) is None, message


# ----- random garbage (Hypothesis) ---------------------------------------------------------------------------
INT_FIELDS = {"from_id", "term", "prev_log_index", "prev_log_term", "commit_index", "last_index",
              "last_log_index", "last_log_term", "last_included_index", "last_included_term", "offset"}
BOOL_FIELDS = {"success", "vote_granted", "done"}

garbage = st.one_of(
    st.integers(-3, 12), st.booleans(), st.none(), st.text(max_size=3), st.floats(allow_nan=True),
    st.just(()), st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
    st.builds(object),
)
snapshot_data = st.tuples(st.integers(-5, 5), st.lists(st.builds(Op, st.text(max_size=2), st.integers(0, 3)),
                                                       max_size=2).map(tuple))


@st.composite
def entries_for(draw: st.DrawFn, fields: dict[str, Any], corrupt: bool) -> Any:
    prev, prev_term, term = fields["prev_log_index"], fields["prev_log_term"], fields["term"]
    ok = all(type(v) is int and v >= 0 for v in (prev, prev_term, term)) and prev_term <= term
    if ok and not corrupt:  # well-formed: numbered from prev + 1, terms in [prev_term, term]
        terms = sorted(draw(st.lists(st.integers(prev_term, term), max_size=4)))
        made = tuple(LogEntry(Op(f"g{draw(st.integers(0, 99))}", 1), prev + 1 + k, t) for k, t in enumerate(terms))
        return draw(st.sampled_from([made, list(made)]))
    entry = st.builds(LogEntry, st.builds(Op, st.text(max_size=2)), st.one_of(st.integers(-1, 8), garbage),
                      st.one_of(st.integers(-1, 8), garbage))
    return draw(st.one_of(st.lists(entry, max_size=3).map(tuple), st.lists(entry, max_size=3), garbage,
                          st.just(iter(()))))


@st.composite
def random_messages(draw: st.DrawFn) -> Any:
    """A message of a random class whose fields are mostly plausible, with zero to two fields (or the
    sender) replaced by garbage of a random type; sometimes not a message at all."""
    kind = draw(st.sampled_from([*MESSAGE_TYPES, "other"]))
    if kind == "other":
        return draw(st.one_of(garbage, st.builds(LookAlike, st.integers(0, 3), st.integers(0, 9),
                                                  st.integers(0, 3), st.integers(0, 9))))
    names = list(kind.__dataclass_fields__)
    corrupt = draw(st.one_of(st.just(set()), st.sets(st.sampled_from(names), min_size=1, max_size=2)))
    fields: dict[str, Any] = {}
    for name in names:
        if name == "from_id":
            value = draw(st.one_of(st.sampled_from([2, 3]), st.sampled_from([1, 0, 4])))
        elif name == "term":
            value = draw(st.integers(0, 6))
        elif name == "offset":
            value = draw(st.sampled_from([0, 0, 0, 1]))
        elif name in INT_FIELDS:
            value = draw(st.integers(0, 8))
        elif name in BOOL_FIELDS:
            value = draw(st.booleans())
        elif name == "mismatch_index":
            value = draw(st.one_of(st.none(), st.integers(0, 8)))
        else:  # data (kept usable: RecordingStateMachine.set_snapshot expects (total, ops)), or entries
            value = draw(snapshot_data) if name == "data" else None
        if name in corrupt and name != "data":
            value = draw(garbage)
        fields[name] = value
    if kind is AppendEntryRequest:
        fields["entries"] = draw(entries_for(fields, "entries" in corrupt))
    return kind(**fields)


actions = st.lists(st.one_of(
    st.tuples(st.just("message"), random_messages()),
    st.tuples(st.just("tick"), st.floats(0, 0.4)),
    st.tuples(st.just("propose"), st.integers(0, 5)),
), max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions)
def test_random_garbage_never_raises_and_only_well_formed_messages_change_term(actions: list) -> None:
    """INPUT / ALL-TERM: whatever arrives, step never raises; an ill-formed or misaddressed message is
    dropped with no effect at all; a well-formed one moves the term to max(current, its term), never back
    (a pre-vote leaves it, a TimeoutNow of the current leader starts an election)."""
    replica, cluster, sm = build(snapshot_delta=2, storage=MemoryStorage())
    now = 0.0
    for action, arg in actions:
        if action == "tick":
            now += arg
            replica.tick(now)
            continue
        if action == "propose":
            sm.pending.append(Op(f"p{arg}", arg))
            replica.process_transitions()
            continue
        message = arg
        before, dropped, sent = observable(replica), replica.stats.dropped, len(cluster.sent)
        senders = replica._senders  # the peers, and the leaders it accepted (a server being added, say)
        led = replica.role is Role.LEADER and replica.current_term == getattr(message, "term", None)
        replica.step(message)
        well_formed = check_message(message) is None and (message.from_id in senders or (
            message.from_id != 1 and type(message) in REQUESTS))  # (a request is heard from anyone: §4.1)
        if not well_formed:
            assert replica.stats.dropped == dropped + 1
            assert len(cluster.sent) == sent
            assert observable(replica) == before
        elif isinstance(message, PreVoteRequest) or (isinstance(message, PreVoteResponse) and message.vote_granted):
            assert replica.current_term == before[0]  # PV-GRANT: pre-votes change no term
        elif isinstance(message, TimeoutNow) and message.term >= before[0] and not led:  # LT-TIMEOUTNOW: stands at once
            assert replica.current_term == message.term + 1 and replica.role is Role.CANDIDATE
        else:
            assert replica.current_term == max(before[0], message.term)
        assert sum(replica.stats.drop_reasons.values()) == replica.stats.dropped
        assert replica.current_term >= before[0]
        assert replica.commit_index >= before[4]


def test_snapshot_whose_last_term_exceeds_the_request_term_is_dropped() -> None:
    """INPUT / IS-LOAD: a snapshot's last included term can never exceed its sender's term (the leader's
    log holds no entry of a later term), just as check_message already refuses entries whose term
    exceeds the request's. Such a request is malformed: drop it rather than adopt a base term above
    the current term (which makes every later append of the current term raise ValueError)."""
    replica, cluster, _ = build()
    before = observable(replica)
    replica.step(InstallSnapshotRequest(2, 1, 5, 9, 0, (0, ()), True))
    assert replica.stats.dropped == 1
    assert cluster.sent == []
    assert observable(replica) == before


def test_entries_contradicting_the_snapshot_do_not_crash_the_replica() -> None:
    """INPUT / IS-KEEP: an AppendEntries whose entries after my snapshot have a term below the snapshot's
    (impossible from an honest leader, since the snapshot covers committed entries) must not make
    `step` raise; the log must stay well numbered with non-decreasing terms."""
    replica, cluster, _ = build()
    replica.step(InstallSnapshotRequest(2, 5, 5, 5, 0, (0, ()), True))
    assert (replica.log.base_index, replica.log.base_term) == (5, 5)
    cluster.take()
    replica.step(AppendEntryRequest(2, 5, 3, 0, tuple(log_of([1, 1, 1], first=4)), 0))  # must not raise
    log = replica.log
    terms = [log.term_at(i) for i in range(log.base_index, log.last_index + 1)]
    assert terms == sorted(terms)
    assert (replica.current_term, log.base_index, log.base_term) == (5, 5, 5)
    assert not replica.stopped


# ----- a failing state machine: fail-stop --------------------------------------------------------------------------
def test_apply_error_stops_the_replica_without_skipping_the_entry() -> None:
    """ALL-APPLY: apply_transition raising raises ApplyError naming the index; the replica is stopped
    (tick, step, process_* raise the same error) and the entry was not skipped (last_applied before it)."""
    storage = MemoryStorage()
    sm = RecordingStateMachine(fail_on="b")
    replica, cluster, _ = build(storage=storage, sm=sm)
    ops = [Op("a", 1), Op("b", 2), Op("c", 3)]
    request = AppendEntryRequest(2, 1, 0, 0, tuple(LogEntry(op, i, 1) for i, op in enumerate(ops, 1)), 3)
    with pytest.raises(ApplyError) as info:
        replica.step(request)
    assert info.value.index == 2
    assert "index 2" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert replica.stopped is True
    assert replica.last_applied == 1
    assert sm.applied == [Op("a", 1)]
    assert sm.state_of("b") is TransitionState.COMMITTED  # never reported applied
    assert sm.state_of("c") is TransitionState.COMMITTED
    sent_before = list(cluster.sent)

    for call in (lambda: replica.tick(100.0), lambda: replica.step(VoteRequest(2, 1, 3, 1)),
                 replica.process_transitions, replica.process_messages):
        cluster.inbox = [VoteRequest(3, 7, 3, 1)]
        with pytest.raises(ApplyError) as again:
            call()
        assert again.value.index == 2
    assert replica.last_applied == 1
    assert sm.applied == [Op("a", 1)]
    assert cluster.sent == sent_before  # a stopped replica sends nothing
    assert replica.current_term == 1  # and ignored the term-7 request

    # restarted from its storage with a fixed state machine, it applies b then c: nothing was skipped
    fixed = RecordingStateMachine()
    restarted, _, _ = build(storage=storage, sm=fixed)
    restarted.step(AppendEntryRequest(2, 1, 3, 1, (), 3))
    assert fixed.applied == ops
    assert restarted.last_applied == 3


def test_apply_error_on_the_leader() -> None:
    """ALL-APPLY on a leader: its own no-op applies, then a failing transition stops it at its index."""
    replica, cluster, sm = leader()
    cluster.take()
    replica.step(AppendEntryResponse(2, 1, True, 1, None))  # the no-op at 1 commits and applies
    assert replica.last_applied == 1
    sm.fail_on = "bad"
    sm.pending = [Op("bad", 1)]
    replica.process_transitions()  # appended at 2, not committed yet
    with pytest.raises(ApplyError) as info:
        replica.step(AppendEntryResponse(2, 1, True, 2, None))
    assert info.value.index == 2
    assert replica.stopped
    assert replica.last_applied == 1
    with pytest.raises(ApplyError):
        replica.tick(10.0)
