"""Recording fakes for the paper-claim checks: ONE replica of the graded class, driven by hand.

A Cluster and a StateMachine that remember everything they were told, storage that journals each
durable write together with the sends (to check "persist before answering"), and helpers that build
a follower, a candidate or a leader (replica 1 with peers 2 and 3; peer 2 plays the leader).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import (
    AppendEntryRequest, AppendEntryResponse, Event, LogEntry, MemoryStorage, Replica, Role, Snapshot, Storage,
    TransitionState, VoteResponse,
)

HEARTBEAT = 0.05
ELECTION = (0.15, 0.30)
ME, LEADER = 1, 2


@dataclass(frozen=True, slots=True)
class Op:
    """A transition: an id and a number to add."""

    id: Any
    delta: int = 0

    def get_id(self) -> Any:
        return self.id


NOOP = Op("noop", 0)


@dataclass
class RecordingCluster:
    """A `Cluster` that records sends (also in `journal`, if one is shared with the storage)."""

    inbox: list = field(default_factory=list)
    sent: list = field(default_factory=list)  # (to_id, message)
    journal: list | None = None

    def send_message(self, to_id: int, message: Any) -> None:
        self.sent.append((to_id, message))
        if self.journal is not None:
            self.journal.append(("send", to_id, message))

    def receive_messages(self) -> list:
        messages, self.inbox = self.inbox, []
        return messages

    def halt(self) -> bool:
        return False

    def register_leader(self, leader_id: int | None) -> None:
        pass

    def take(self, kind: type | None = None, to: int | None = None) -> list:
        """Remove and return the sent messages (of `kind`, to `to`, if given)."""
        def wanted(dest: int, m: Any) -> bool:
            return (kind is None or isinstance(m, kind)) and (to is None or dest == to)
        taken = [m for dest, m in self.sent if wanted(dest, m)]
        self.sent = [(dest, m) for dest, m in self.sent if not wanted(dest, m)]
        return taken


@dataclass
class RecordingStateMachine:
    """A calculator `StateMachine` that records applies, states and snapshots."""

    total: int = 0
    applied: list = field(default_factory=list)
    pending: list = field(default_factory=list)
    states: list = field(default_factory=list)  # (transition_id, TransitionState)
    own_snapshot: Snapshot | None = None
    snapshots_set: list = field(default_factory=list)
    created: list = field(default_factory=list)  # (index, term) of each create_snapshot

    def register_transition_state(self, transition_id: Any, state: TransitionState) -> None:
        self.states.append((transition_id, state))

    def apply_transition(self, transition: Op) -> None:
        self.total += transition.delta
        self.applied.append(transition.id)

    def get_pending_transitions(self) -> list:
        pending, self.pending = self.pending, []
        return pending

    def get_snapshot(self) -> Snapshot | None:
        return self.own_snapshot

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        self.created.append((last_included_index, last_included_term))
        return Snapshot(last_included_index, last_included_term, (self.total, tuple(self.applied)))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots_set.append(snapshot)
        self.total, applied = snapshot.data
        self.applied = list(applied)

    def states_of(self, transition_id: Any) -> list[TransitionState]:
        return [s for i, s in self.states if i == transition_id]


class JournalStorage(MemoryStorage):
    """MemoryStorage that writes each durable change into a journal shared with the cluster."""

    def __init__(self, journal: list) -> None:
        super().__init__()
        self.journal = journal

    def _write_term_and_vote(self, term: int, voted_for: int | None) -> None:
        self.journal.append(("persist", term, voted_for))

    def _write_append(self, entries: Sequence[LogEntry]) -> None:
        self.journal.append(("append", tuple(e.index for e in entries)))


@dataclass
class Fakes:
    replica: Replica
    cluster: RecordingCluster
    sm: RecordingStateMachine
    storage: Storage
    events: list  # the replica's `Event`s

    def explain(self, last: int = 15) -> str:
        """The replica's last events, explained."""
        return "\n".join(f"t={ev.time:.3f} node {ev.node} [{ev.rule}] {ev.kind} (term {ev.term}) "
                         + ", ".join(f"{k}={v}" for k, v in ev.details.items()) for ev in self.events[-last:])


def e(index: int, term: int, name: str | None = None) -> LogEntry:
    """An entry whose transition is named `name` (default ``"i<index>t<term>"``)."""
    return LogEntry(Op(name if name is not None else f"i{index}t{term}", index), index, term)


def stored(entries: Sequence[LogEntry] = (), term: int = 0, voted_for: int | None = None,
           storage: Storage | None = None) -> Storage:
    storage = storage if storage is not None else MemoryStorage()
    storage.set_term_and_vote(term, voted_for)
    if entries:
        storage.append(list(entries))
    return storage


def build(cls: type[Replica], peers: tuple[int, ...] = (2, 3), *, storage: Storage | None = None,
          snapshot_delta: int = 0, sm: RecordingStateMachine | None = None, journal: list | None = None,
          seed: int = 0, track: list[Fakes] | None = None) -> Fakes:
    """Replica 1 of class `cls`, with recording fakes, a seeded rng and no clock."""
    cluster, sm = RecordingCluster(journal=journal), sm or RecordingStateMachine()
    storage = storage if storage is not None else MemoryStorage()
    events: list[Event] = []
    fakes = Fakes(None, cluster, sm, storage, events)  # type: ignore[arg-type]
    if track is not None:
        track.append(fakes)  # so that the events are reported even if the constructor fails
    fakes.replica = cls(ME, peers, cluster, sm, NOOP, HEARTBEAT, ELECTION, snapshot_delta, storage=storage,
                        rng=random.Random(seed), observer=events.append)
    return fakes


def elect(f: Fakes, voters: Iterable[int] = (2,), now: float | None = None) -> None:
    """Let the election timer fire, then grant the votes of `voters`."""
    r = f.replica
    r.tick(r.next_deadline if now is None else now)
    assert r.role is Role.CANDIDATE, f"C-START: after its election timer fired, the replica is {r.role.value}"
    for voter in voters:
        r.step(VoteResponse(voter, r.current_term, True))
    assert r.role is Role.LEADER, f"C-WIN: with the votes of {sorted({ME, *voters})}, the replica is {r.role.value}"


def append(term: int, prev: int, prev_term: int, entries: Sequence[LogEntry] = (), commit: int = 0,
           sender: int = LEADER) -> AppendEntryRequest:
    return AppendEntryRequest(sender, term, prev, prev_term, tuple(entries), commit)


def ok(peer: int, term: int, last_index: int) -> AppendEntryResponse:
    return AppendEntryResponse(peer, term, True, last_index, None)


def refused(peer: int, term: int, last_index: int, hint: int | None) -> AppendEntryResponse:
    return AppendEntryResponse(peer, term, False, last_index, hint)


def held(replica: Replica) -> list[tuple[int, int]]:
    """(index, term) of each entry after the snapshot."""
    log = replica.log
    return [(x.index, x.term) for x in log.entries_from(log.base_index + 1)]
