"""The values replicas exchange: log entries, snapshots, the six messages of Little Raft and raftlab's
five of the thesis (pre-votes, TimeoutNow, read indexes).

All are frozen, slotted dataclasses. Field names are Little Raft's (`message.rs`); where raftlab gives
a field a stricter meaning than Little Raft does, the class docstring says so.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

T = TypeVar("T")  # a transition
D = TypeVar("D")  # the data of a snapshot

ReplicaID = int
"""Replicas are named by non-negative integers, as in Little Raft (`usize`)."""


@dataclass(frozen=True, slots=True)
class LogEntry(Generic[T]):
    """One slot of the replicated log."""

    transition: T  # what the state machine applies
    index: int  # position in the log, from 1
    term: int  # term of the leader that created the entry


@dataclass(frozen=True, slots=True)
class Configuration:
    """The membership of a cluster (thesis §4): the `voters`, counted in elections and majorities, and
    the `learners`, which receive the log but are never counted and never stand (MC-LEARNER).

    It is also a transition: offered to the leader (through `get_pending_transitions`, like any other)
    it is appended to the log as the new configuration, if it changes one server only (MC-ONE); its
    states are reported as for any transition. Make one with `Configuration.of(voters, learners)`.
    """

    voters: frozenset[ReplicaID]  # counted in majorities
    learners: frozenset[ReplicaID] = frozenset()  # replicated to, never counted

    @classmethod
    def of(cls, voters: Iterable[ReplicaID], learners: Iterable[ReplicaID] = ()) -> Configuration:
        """A configuration of these voters and learners (any iterables of ids)."""
        return cls(frozenset(voters), frozenset(learners))

    @property
    def members(self) -> frozenset[ReplicaID]:
        """Voters and learners."""
        return self.voters | self.learners

    def get_id(self) -> Hashable:
        """Its transition id: the same for the same membership."""
        return ("configuration", tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def __repr__(self) -> str:
        return f"Configuration(voters={sorted(self.voters)}, learners={sorted(self.learners)})"


def check_configuration(c: Any) -> str | None:
    """Why `c` is not a valid `Configuration` (None if it is)."""
    if type(c) is not Configuration or type(c.voters) is not frozenset or type(c.learners) is not frozenset:
        return f"not a Configuration of frozensets: {c!r}"
    if not c.voters or c.voters & c.learners or not all(type(i) is int and i >= 0 for i in c.members):
        return f"a configuration needs voters, disjoint from its learners, all ids natural ints: {c!r}"
    return None


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[D]):
    """The state machine's state after applying every entry up to `last_included_index`."""

    last_included_index: int  # last log index the snapshot covers
    last_included_term: int  # term of that entry
    data: D  # the state machine's own representation of its state
    configuration: Configuration | None = None  # raftlab: the membership as of that index (MC-SNAPSHOT)


@dataclass(frozen=True, slots=True)
class AppendEntryRequest(Generic[T]):
    """Leader → follower: replicate `entries` after `prev_log_index`; also the heartbeat (§5.3)."""

    from_id: ReplicaID  # the leader
    term: int  # the leader's term
    prev_log_index: int  # index of the entry just before `entries`
    prev_log_term: int  # term of that entry
    entries: tuple[LogEntry[T], ...]  # entries to store (empty for a heartbeat)
    commit_index: int  # the leader's commit index
    round: int = 0  # raftlab: the leader's latest heartbeat round when it sent this (RI-CONFIRM, CQ-STEPDOWN)


@dataclass(frozen=True, slots=True)
class AppendEntryResponse:
    """Follower → leader: the answer to an `AppendEntryRequest`.

    raftlab's meaning of `last_index` differs from Little Raft's on purpose: on success it is
    `prev_log_index + len(entries)` of the request answered, the last index the request proved to
    match, never the follower's log length (using the length is Little Raft's `match_index` defect).
    On failure it is the follower's last log index, and `mismatch_index` is where the leader should
    try next (the first index of the conflicting term, or just after the follower's log).
    `prev_log_index` (raftlab's own field) names the request answered, so that a leader can tell the
    refusal of its current probe from a stale one (FC-STALE); None from a sender that does not say.
    """

    from_id: ReplicaID  # the follower
    term: int  # the follower's current term
    success: bool  # whether the follower's log matched at prev_log_index
    last_index: int  # see the class docstring
    mismatch_index: int | None  # on failure, the next index the leader should try
    prev_log_index: int | None = None  # raftlab: the prev_log_index of the request answered (FC-STALE)
    round: int = 0  # raftlab: the `round` of the request answered (RI-CONFIRM, CQ-STEPDOWN)


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """Candidate → all: asks for a vote in `term` (§5.2)."""

    from_id: ReplicaID  # the candidate
    term: int  # the candidate's term
    last_log_index: int  # index of the candidate's last log entry
    last_log_term: int  # term of the candidate's last log entry
    transfer: bool = False  # raftlab: a leadership transfer's election (LT-TIMEOUTNOW), exempt from CQ-STICKY


@dataclass(frozen=True, slots=True)
class VoteResponse:
    """The answer to a `VoteRequest`."""

    from_id: ReplicaID  # the voter
    term: int  # the voter's current term
    vote_granted: bool  # whether the voter granted its vote


@dataclass(frozen=True, slots=True)
class PreVoteRequest:
    """Would-be candidate → all: would you vote for me in `term` (its term + 1)? Changes nothing (PV-ASK)."""

    from_id: ReplicaID  # the would-be candidate
    term: int  # the term it would stand in: its own term + 1
    last_log_index: int  # index of its last log entry
    last_log_term: int  # term of its last log entry


@dataclass(frozen=True, slots=True)
class PreVoteResponse:
    """The answer to a `PreVoteRequest` (PV-GRANT): a grant carries the request's term, a refusal the
    voter's own (so that a would-be candidate behind in terms catches up: etcd-io/etcd#8243, #8501)."""

    from_id: ReplicaID  # the voter
    term: int  # the request's term if granted, else the voter's current term
    vote_granted: bool  # whether it would vote


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader → the target of a leadership transfer, once it holds the whole log: start an election
    now (LT-TIMEOUTNOW, thesis §3.10)."""

    from_id: ReplicaID  # the leader
    term: int  # the leader's term


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Follower → leader: give me a read index for a linearizable read (RI-SERVE, thesis §6.4)."""

    from_id: ReplicaID  # the follower
    term: int  # the follower's term
    seq: int  # the follower's number for this read


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """Leader → follower: the read `seq` is safe once the follower has applied up to `read_index`."""

    from_id: ReplicaID  # the leader
    term: int  # the leader's term
    seq: int  # the follower's number for the read
    success: bool  # False: not the leader (the follower abandons the read)
    read_index: int  # the leader's commit index, confirmed (0 on failure)


@dataclass(frozen=True, slots=True)
class InstallSnapshotRequest(Generic[D]):
    """Leader → follower whose next entry was compacted: the leader's snapshot (§7).

    raftlab sends a snapshot whole (`offset` 0, `done` true); a chunked request is dropped.
    """

    from_id: ReplicaID  # the leader
    term: int  # the leader's term
    last_included_index: int  # the snapshot replaces entries up to this index
    last_included_term: int  # term of that entry
    offset: int  # offset of `data` within the snapshot (always 0)
    data: D  # the snapshot's data
    done: bool  # whether this is the last chunk (always true)
    configuration: Configuration | None = None  # raftlab: the membership as of its last index (MC-SNAPSHOT)


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """The answer to an `InstallSnapshotRequest`."""

    from_id: ReplicaID  # the follower
    term: int  # the follower's current term
    last_included_index: int  # the index of the snapshot answered


Message = (AppendEntryRequest | AppendEntryResponse | VoteRequest | VoteResponse
           | InstallSnapshotRequest | InstallSnapshotResponse | PreVoteRequest | PreVoteResponse | TimeoutNow
           | ReadIndexRequest | ReadIndexResponse)
MESSAGE_TYPES = (AppendEntryRequest, AppendEntryResponse, VoteRequest, VoteResponse,
                 InstallSnapshotRequest, InstallSnapshotResponse, PreVoteRequest, PreVoteResponse, TimeoutNow,
                 ReadIndexRequest, ReadIndexResponse)

def _shared(value: Any, memo: dict) -> Any:
    return value


for _cls in (LogEntry, Snapshot, Configuration, *MESSAGE_TYPES):  # immutable: a deep copy (a checkpoint) shares them
    _cls.__deepcopy__ = _shared  # type: ignore[union-attr]  # mypy cannot see through the tuple of classes

_BOOL_FIELDS = frozenset({"success", "vote_granted", "done", "transfer"})
_SPECIAL = {"mismatch_index": 2, "entries": 3, "data": 4, "configuration": 5}  # other fields: 0 = natural int, 1 = bool
_OPTIONAL = {(AppendEntryResponse, "prev_log_index")}  # 2 = None or a natural int


def _kind(cls: type, name: str) -> int:
    return 1 if name in _BOOL_FIELDS else 2 if (cls, name) in _OPTIONAL else _SPECIAL.get(name, 0)


_FIELD_KINDS = {cls: tuple((f.name, _kind(cls, f.name)) for f in fields(cls)) for cls in MESSAGE_TYPES}


def _natural(value: Any) -> bool:
    return type(value) is int and value >= 0


def check_message(message: Any) -> str | None:
    """Return why `message` is not a well-formed message, or None if it is.

    Checks the type, that every id, term and index is a non-negative ``int``, that flags are
    ``bool``, that an `AppendEntryRequest`'s entries are numbered from ``prev_log_index + 1`` with
    terms that never decrease and never exceed the request's term, and that no log term a request
    reports exceeds its own term.
    """
    kinds = _FIELD_KINDS.get(type(message))
    if kinds is None:
        return f"unknown message type: {type(message).__name__}"
    for name, kind in kinds:
        value = getattr(message, name)
        if kind == 0:
            ok = type(value) is int and value >= 0
        elif kind == 1:
            ok = type(value) is bool
        elif kind == 2:
            ok = value is None or _natural(value)
        elif kind == 5:
            ok = value is None or check_configuration(value) is None
        else:
            ok = kind == 4 or isinstance(value, (tuple, list))
        if not ok:
            return f"ill-typed field: {name}={value!r}"
    if isinstance(message, AppendEntryRequest):
        term = message.prev_log_term
        for k, entry in enumerate(message.entries):
            if (type(entry) is not LogEntry or not _natural(entry.index) or not _natural(entry.term)
                    or entry.index != message.prev_log_index + 1 + k or not term <= entry.term <= message.term):
                return f"entry out of place: {k}"
            if type(entry.transition) is Configuration and check_configuration(entry.transition) is not None:
                return f"invalid configuration in entry {k}"
            term = entry.term
    last_term = getattr(message, "last_log_term", getattr(message, "last_included_term", None))
    if last_term is not None and last_term > message.term:
        return f"log term above the message's term: {last_term}"
    return None
