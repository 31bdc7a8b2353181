"""Recording fakes for driving ONE `Replica` by hand: the one set used by the grader's paper-claim checks
(raftlab.grading.checks) and by the project's own tests (tests/core).

Conventions: the replica under test is `ME` (id 1) with peers 2 and 3; when it is a follower, peer
`LEADER` (2) plays the leader. Transitions are ``Op(id, delta)``; the state machine is a calculator that
adds ``delta``. Time moves only by `Replica.tick` (no clock) and the rng is seeded.

What it offers:

- `HEARTBEAT`, `ELECTION`: the timeouts; `ME`, `LEADER`: the ids above; `Op` and `NOOP`: transitions.
- `RecordingCluster`: a `Cluster` that records sends and leader changes (and journals the sends, if
  given a journal); `take`, `take_one`, `messages` and `message` read what was sent.
- `RecordingStateMachine`: the calculator `StateMachine`; records applies, transition states,
  snapshots and what became of each linearizable read; can be told to fail on one transition.
- `RecordingStorage`: a `MemoryStorage` that journals each durable write (to check "persist before
  answering"); can be told to fail its writes, like a full disk.
- `Fakes`, `build`, `follower`, `leader`, `journaled`: a replica with its fakes (unpacks as
  ``replica, cluster, sm``), as a follower of a given log and term, as a leader, or journaled; the
  thesis's options (`pre_vote`, `check_quorum`, `read_lease`, `drift_bound`) and `learner` (a new
  server joining as a learner) go to `build`. `settled_leader`: a leader whose no-op has committed.
- `campaign`, `elect`: make a replica a candidate, or a leader (through its pre-vote, if it has one).
- `e`, `log_of`, `stored`: log entries, and storage that already holds them.
- `append`, `ok`, `refused`: AppendEntries requests and responses (the responses may carry the
  heartbeat round they answer).
- `held`, `held_entries`: what a replica's or a storage's log holds after its snapshot.
- Membership change: `C` (``Configuration.of``), `config_entry` (a log entry holding a
  configuration), `offer` (give transitions, configurations among them, to a replica) and `ack` (a
  peer acknowledges the leader's log, in its current term and round).

It uses raftlab.core and the standard library only: the grader ships with it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..core import (
    AppendEntryRequest, AppendEntryResponse, Configuration, Event, LogEntry, MemoryStorage, PreVoteResponse,
    ReadState, Replica, Role, Snapshot, Storage, TransitionState, VoteResponse,
)

__all__ = [
    "ELECTION", "HEARTBEAT", "LEADER", "ME", "NOOP", "C", "Fakes", "Op", "RecordingCluster", "RecordingStateMachine",
    "RecordingStorage", "ack", "append", "build", "campaign", "config_entry", "e", "elect", "follower", "held",
    "held_entries", "journaled", "leader", "log_of", "offer", "ok", "refused", "settled_leader", "stored",
]

HEARTBEAT = 0.05  # seconds
ELECTION = (0.15, 0.30)  # the election timeout range, seconds
ME = 1  # the replica under test
LEADER = 2  # the peer that plays the leader when the replica under test is a follower


@dataclass(frozen=True, slots=True)
class Op:
    """A transition: an id and a number for the calculator to add."""

    id: Any
    delta: int = 0

    def get_id(self) -> Any:
        """The id under which the state machine is told the transition's states."""
        return self.id


NOOP = Op("noop", 0)


# ----- the recording cluster ---------------------------------------------------------------------
@dataclass
class RecordingCluster:
    """A `Cluster` that records every send and every `register_leader` call; tests put messages in `inbox`.

    With a `journal` (a list shared with a `RecordingStorage`), each send is also journaled as
    ``("send", to_id, message, term, voted_for)``: the `storage`'s term and vote at that moment (``None,
    None`` without a storage), so that a test sees what was durable when the message left.
    """

    inbox: list = field(default_factory=list)  # what receive_messages returns next
    sent: list[tuple[int, Any]] = field(default_factory=list)  # (to_id, message), oldest first
    leaders: list[int | None] = field(default_factory=list)  # every register_leader call
    halted: bool = False  # what halt returns
    journal: list | None = None
    storage: Storage | None = None

    def send_message(self, to_id: int, message: Any) -> None:
        self.sent.append((to_id, message))
        if self.journal is not None:
            term, vote = (None, None) if self.storage is None else (self.storage.current_term, self.storage.voted_for)
            self.journal.append(("send", to_id, message, term, vote))

    def receive_messages(self) -> list:
        messages, self.inbox = self.inbox, []
        return messages

    def halt(self) -> bool:
        return self.halted

    def register_leader(self, leader_id: int | None) -> None:
        self.leaders.append(leader_id)

    @staticmethod
    def _wanted(dest: int, message: Any, kind: type | None, to: int | None) -> bool:
        return (kind is None or isinstance(message, kind)) and (to is None or dest == to)

    def take(self, kind: type | None = None, *, to: int | None = None) -> list[tuple[int, Any]]:
        """Remove and return the sent (to_id, message) pairs: all, or only the messages of `kind`, to `to`."""
        taken = [(dest, m) for dest, m in self.sent if self._wanted(dest, m, kind, to)]
        self.sent = [(dest, m) for dest, m in self.sent if not self._wanted(dest, m, kind, to)]
        return taken

    def take_one(self, kind: type, *, to: int) -> Any:
        """Remove every sent message; exactly one must have been sent, a `kind` to `to`: return it."""
        taken = self.take()
        assert len(taken) == 1, taken
        dest, message = taken[0]
        assert dest == to and isinstance(message, kind), taken[0]
        return message

    def messages(self, kind: type | None = None, *, to: int | None = None, remove: bool = False) -> list:
        """The messages sent so far (of `kind`, to `to`, if given), oldest first, without their
        destinations; with ``remove=True`` they are also removed, as by `take`."""
        if remove:
            return [m for _, m in self.take(kind, to=to)]
        return [m for dest, m in self.sent if self._wanted(dest, m, kind, to)]

    def message(self, kind: type, *, to: int | None = None) -> Any:
        """The single message of `kind` (to `to`, if given) sent so far, which the caller expects; not removed."""
        found = self.messages(kind, to=to)
        assert len(found) == 1, f"expected exactly one {kind.__name__}, got {found}"
        return found[0]


# ----- the recording state machine ---------------------------------------------------------------
@dataclass
class RecordingStateMachine:
    """A calculator `StateMachine` over `Op`s that records applies, transition states and snapshots.

    A snapshot's data is ``(total, tuple of the transitions applied)``. With `fail_on` set to a
    transition id, applying that transition raises RuntimeError (a broken state machine). It has the
    optional read hook (`register_read_state`): `read_states` records what became of each read.
    """

    total: int = 0
    applied: list = field(default_factory=list)  # the transitions applied, in order
    pending: list = field(default_factory=list)  # what get_pending_transitions returns next
    states: list[tuple[Any, TransitionState]] = field(default_factory=list)  # (transition_id, state), in order
    own_snapshot: Snapshot | None = None  # what get_snapshot returns
    snapshots_set: list[Snapshot] = field(default_factory=list)  # every set_snapshot argument
    # (last_included_index, last_included_term, len(applied) at that moment) of each create_snapshot call:
    created: list[tuple[int, int, int]] = field(default_factory=list)
    fail_on: Any = None  # a transition id whose apply raises
    read_states: list[tuple[Any, ReadState]] = field(default_factory=list)  # (read_id, state), in order

    def register_transition_state(self, transition_id: Any, state: TransitionState) -> None:
        self.states.append((transition_id, state))

    def apply_transition(self, transition: Op) -> None:
        if self.fail_on is not None and transition.id == self.fail_on:
            raise RuntimeError(f"cannot apply {transition.id}")
        self.total += transition.delta
        self.applied.append(transition)

    def register_read_state(self, read_id: Any, state: ReadState) -> None:
        """The replica says what became of the read `read_id` (READY: answer it now; or ABANDONED)."""
        self.read_states.append((read_id, state))

    def read_state_of(self, read_id: Any) -> ReadState | None:
        """The last state told for the read `read_id` (None while it waits)."""
        found = [s for i, s in self.read_states if i == read_id]
        return found[-1] if found else None

    def get_pending_transitions(self) -> list:
        pending, self.pending = self.pending, []
        return pending

    def get_snapshot(self) -> Snapshot | None:
        return self.own_snapshot

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        self.created.append((last_included_index, last_included_term, len(self.applied)))
        return Snapshot(last_included_index, last_included_term, (self.total, tuple(self.applied)))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots_set.append(snapshot)
        self.total, applied = snapshot.data
        self.applied = list(applied)

    @property
    def applied_ids(self) -> list:
        """The ids of the transitions applied, in order."""
        return [transition.id for transition in self.applied]

    def states_of(self, transition_id: Any) -> list[TransitionState]:
        """Every state registered for `transition_id`, in order."""
        return [s for i, s in self.states if i == transition_id]

    def state_of(self, transition_id: Any) -> TransitionState | None:
        """The last state registered for `transition_id` (None if none was)."""
        found = self.states_of(transition_id)
        return found[-1] if found else None


# ----- the recording storage ---------------------------------------------------------------------
class RecordingStorage(MemoryStorage):
    """A `MemoryStorage` that journals each durable write, in order, into `journal` (shared with a
    `RecordingCluster` to see writes and sends in one order): ``("persist", term, voted_for)`` and
    ``("append", ((index, term), ...))``.

    `fail`: ``"append"`` makes every append's durable write raise OSError, ``"vote"`` every write of a
    vote (a term with ``voted_for`` None is still written): a full or failing disk.
    """

    def __init__(self, journal: list | None = None, *, fail: str | None = None) -> None:
        super().__init__()
        self.journal: list = journal if journal is not None else []
        self.fail = fail

    def _write_term_and_vote(self, term: int, voted_for: int | None) -> None:
        if self.fail == "vote" and voted_for is not None:
            raise OSError("disk full")
        self.journal.append(("persist", term, voted_for))

    def _write_append(self, entries: Sequence[LogEntry]) -> None:
        if self.fail == "append":
            raise OSError("disk full")
        self.journal.append(("append", tuple((x.index, x.term) for x in entries)))

    @property
    def appends(self) -> list[tuple[tuple[int, int], ...]]:
        """The (index, term) pairs of each durable append in the journal, in order."""
        return [record[1] for record in self.journal if record[0] == "append"]


# ----- a replica with its fakes ------------------------------------------------------------------
@dataclass
class Fakes:
    """A replica under test and its fakes. Unpacks as ``replica, cluster, sm = build()``."""

    replica: Replica
    cluster: RecordingCluster
    sm: RecordingStateMachine
    storage: Storage
    events: list[Event]  # the replica's `Event`s, from its observer

    def __iter__(self) -> Iterator[Any]:
        return iter((self.replica, self.cluster, self.sm))

    @property
    def journal(self) -> list:
        """The journal of durable writes and sends (a replica made by `journaled`, or `build(journal=...)`)."""
        if self.cluster.journal is None:
            raise ValueError("this replica is not journaled: make it with journaled() or build(journal=...)")
        return self.cluster.journal

    def explain(self, last: int = 15) -> str:
        """The replica's last `last` events, explained, one a line."""
        return "\n".join(f"t={ev.time:.3f} node {ev.node} [{ev.rule}] {ev.kind} (term {ev.term}) "
                         + ", ".join(f"{k}={v}" for k, v in ev.details.items()) for ev in self.events[-last:])


def build(cls: type[Replica] = Replica, *, id: int = ME, peers: Iterable[int] = (2, 3), seed: int = 0,
          storage: Storage | None = None, sm: RecordingStateMachine | None = None, snapshot_delta: int = 0,
          max_inflight: int = 1, heartbeat: float | timedelta = HEARTBEAT,
          election: tuple[float | timedelta, float | timedelta] = ELECTION,
          journal: list | None = None, track: list[Fakes] | None = None, pre_vote: bool = False,
          check_quorum: bool = False, read_lease: bool = False, drift_bound: float = 1.1,
          learner: bool = False) -> Fakes:
    """A replica of class `cls` with recording fakes, ``random.Random(seed)`` and no clock.

    `storage` defaults to a new MemoryStorage, `sm` to a new RecordingStateMachine. With a `journal`
    the cluster journals its sends there, with the storage's term and vote (see `RecordingCluster`).
    `track`: a list the `Fakes` are appended to before the replica is made (so that its events can be
    reported even if the constructor fails). `pre_vote`, `check_quorum`, `read_lease` and `drift_bound`
    are the `Replica` options of the same names (off by default, as in the core); with ``learner=True``
    the replica joins a running cluster whose members are `peers` as a learner (MC-LEARNER).
    """
    storage = storage if storage is not None else MemoryStorage()
    cluster = RecordingCluster(journal=journal, storage=storage)
    sm = sm if sm is not None else RecordingStateMachine()
    events: list[Event] = []
    fakes = Fakes(None, cluster, sm, storage, events)  # type: ignore[arg-type]  # the replica comes next
    if track is not None:
        track.append(fakes)
    fakes.replica = cls(id, peers, cluster, sm, NOOP, heartbeat, election, snapshot_delta, max_inflight=max_inflight,
                        storage=storage, rng=random.Random(seed), observer=events.append, pre_vote=pre_vote,
                        check_quorum=check_quorum, read_lease=read_lease, drift_bound=drift_bound,
                        learner=learner)
    return fakes


def follower(entries: Sequence[LogEntry] = (), *, term: int = 0, voted_for: int | None = None,
             **kwargs: Any) -> Fakes:
    """A follower whose storage already holds `entries` (none known committed), `term` and `voted_for`;
    the other keyword arguments go to `build`."""
    return build(storage=stored(entries, term=term, voted_for=voted_for), **kwargs)


def leader(entries: Sequence[LogEntry] = (), *, term: int = 0, voters: Iterable[int] = (LEADER,),
           **kwargs: Any) -> Fakes:
    """A leader of term ``term + 1`` whose log held `entries` before its election (then its no-op),
    elected by `voters` at its first election deadline; the other keyword arguments go to `build`."""
    fakes = follower(entries, term=term, **kwargs)
    elect(fakes.replica, voters=voters)
    return fakes


def settled_leader(entries: Sequence[LogEntry] = (), *, term: int = 0, voters: Iterable[int] = (LEADER,),
                   **kwargs: Any) -> Fakes:
    """Like `leader`, and `voters` then acknowledge its whole log, so that its no-op (an entry of its
    term) has committed, as MC-ONE requires before a configuration change; what it sent is cleared."""
    fakes = leader(entries, term=term, voters=voters, **kwargs)
    r = fakes.replica
    for voter in voters:
        ack(r, voter)
    assert r.commit_index == r.log.last_index, (
        f"L-COMMIT: {sorted({r.id, *voters})} hold the leader's whole log, but commit_index is {r.commit_index}")
    fakes.cluster.take()
    return fakes


def journaled(entries: Sequence[LogEntry] = (), *, term: int = 0, **kwargs: Any) -> Fakes:
    """Like `follower`, on a `RecordingStorage` whose journal the cluster shares: `Fakes.journal` then
    lists the durable writes and the sends in the order they happened (it starts empty, after the
    setup's writes). The other keyword arguments go to `build`."""
    journal: list = []
    storage = stored(entries, term=term, storage=RecordingStorage(journal))
    journal.clear()
    return build(storage=storage, journal=journal, **kwargs)


def campaign(replica: Replica, *, now: float | None = None, pre_voters: Iterable[int] = (LEADER,)) -> float:
    """Let the election timer fire (`tick` at `now`, default its deadline); the replica must then be a
    candidate. A replica with `pre_vote` first asks for pre-votes: `pre_voters` grant theirs (with its
    own, a majority). Returns the time of the tick."""
    now = replica.next_deadline if now is None else now
    replica.tick(now)
    if replica.pre_vote and replica.role is Role.FOLLOWER:
        for voter in pre_voters:
            replica.step(PreVoteResponse(voter, replica.current_term + 1, True))
    assert replica.role is Role.CANDIDATE, (
        f"C-START: after its election timer fired, the replica is {replica.role.value}")
    return now


def elect(replica: Replica, *, voters: Iterable[int] = (LEADER,), now: float | None = None) -> float:
    """`campaign` (`voters` grant their pre-votes too, if it asks for them), then grant the votes of
    `voters` (with the replica's own, a majority): the replica must then be the leader. Returns the time
    of the election."""
    voters = tuple(voters)
    now = campaign(replica, now=now, pre_voters=voters)
    for voter in voters:
        replica.step(VoteResponse(voter, replica.current_term, True))
    assert replica.role is Role.LEADER, (
        f"C-WIN: with the votes of {sorted({replica.id, *voters})}, the replica is {replica.role.value}")
    return now


# ----- entries, storage and messages -------------------------------------------------------------
def e(index: int, term: int, name: str | None = None, delta: int | None = None) -> LogEntry:
    """The entry at `index` of `term` whose transition is ``Op(name, delta)`` (by default named
    ``"i<index>t<term>"``, adding `index`)."""
    return LogEntry(Op(name if name is not None else f"i{index}t{term}", index if delta is None else delta),
                    index, term)


def log_of(terms: Iterable[int], *, first: int = 1, prefix: str | None = None) -> list[LogEntry]:
    """One entry per term in `terms`, numbered from `first`, made by `e` (named ``prefix + str(index)`` if
    `prefix` is given)."""
    return [e(index, term, None if prefix is None else f"{prefix}{index}")
            for index, term in enumerate(terms, start=first)]


def stored(entries: Sequence[LogEntry] = (), *, term: int = 0, voted_for: int | None = None,
           storage: Storage | None = None) -> Storage:
    """`storage` (default: a new MemoryStorage) holding `term`, `voted_for` and the log `entries` (which a
    replica started on it does not know to be committed)."""
    storage = storage if storage is not None else MemoryStorage()
    storage.set_term_and_vote(term, voted_for)
    if entries:
        storage.append(list(entries))
    return storage


def append(term: int, prev: int = 0, prev_term: int = 0, entries: Sequence[LogEntry] = (), *, commit: int = 0,
           sender: int = LEADER) -> AppendEntryRequest:
    """An AppendEntries request of `term` from `sender` with prev_log_index `prev` and prev_log_term
    `prev_term`, carrying `entries` and leader_commit `commit`."""
    return AppendEntryRequest(sender, term, prev, prev_term, tuple(entries), commit)


def ok(peer: int, term: int, last_index: int, prev: int | None = None, *, round: int = 0) -> AppendEntryResponse:
    """A successful AppendEntries response from `peer` acknowledging the log up to `last_index`, the
    answer to the request whose prev_log_index was `prev` and whose heartbeat round was `round`."""
    return AppendEntryResponse(peer, term, True, last_index, None, prev, round)


def refused(peer: int, term: int, last_index: int, hint: int | None, prev: int | None = None, *,
            round: int = 0) -> AppendEntryResponse:
    """A refused AppendEntries response from `peer` whose mismatch hint is `hint`, the answer to the
    request whose prev_log_index was `prev` (a leader acts only on the refusal of its current probe)
    and whose heartbeat round was `round`."""
    return AppendEntryResponse(peer, term, False, last_index, hint, prev, round)


# ----- membership change -------------------------------------------------------------------------
C = Configuration.of  # C(voters, learners=()): a configuration, also a transition


def config_entry(index: int, term: int, voters: Iterable[int], learners: Iterable[int] = ()) -> LogEntry:
    """The entry at `index` of `term` whose transition is the configuration `C(voters, learners)`."""
    return LogEntry(C(voters, learners), index, term)


def offer(fakes: Fakes, *transitions: Any) -> None:
    """Give `transitions` (`Op`s, `Configuration`s) to the replica, as its state machine's pending
    transitions, and let it take them (`process_transitions`)."""
    fakes.sm.pending.extend(transitions)
    fakes.replica.process_transitions()


def ack(replica: Replica, peer: int, index: int | None = None) -> None:
    """`peer` acknowledges the leader `replica`'s log up to `index` (default: all of it), in its current
    term and heartbeat round, as the answer to a probe that matched."""
    index = replica.log.last_index if index is None else index
    replica.step(AppendEntryResponse(peer, replica.current_term, True, index, None, None, replica.round))


def held_entries(source: Replica | Storage) -> list[LogEntry]:
    """The entries the log of `source` (a replica or a storage) holds after its snapshot."""
    log = source.log
    return list(log.entries_from(log.base_index + 1))


def held(source: Replica | Storage, *, ids: bool = False) -> list[tuple]:
    """(index, term) of each entry the log of `source` holds after its snapshot; with ``ids=True``
    (index, term, transition id)."""
    if ids:
        return [(x.index, x.term, x.transition.id) for x in held_entries(source)]
    return [(x.index, x.term) for x in held_entries(source)]
