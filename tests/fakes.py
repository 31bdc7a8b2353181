"""Recording fakes for driving a `Replica` by hand: a Cluster and a StateMachine that remember
everything they were told, and a `make_replica` helper with a fixed seed and a manual clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from collections.abc import Iterable, Sequence

from raftlab.core import (
    LogEntry, MemoryStorage, Replica, Role, Snapshot, Storage, TransitionState,
    VoteResponse,
)
# the same calculator, timeouts and message helpers as the graded checks (LEADER: the peer that plays
# the leader when the replica under test is a follower)
from raftlab.grading.fakes import ELECTION, HEARTBEAT, LEADER, NOOP, Op, append, ok, refused

__all__ = ["ELECTION", "HEARTBEAT", "LEADER", "NOOP", "Op", "append", "ok", "refused"]  # re-exported


@dataclass
class RecordingCluster:
    """A `Cluster` that records sends and leader changes; tests put messages in `inbox`."""

    inbox: list = field(default_factory=list)
    sent: list = field(default_factory=list)  # (to_id, message), in order
    leaders: list = field(default_factory=list)  # every register_leader call
    halted: bool = False

    def send_message(self, to_id: int, message: Any) -> None:
        self.sent.append((to_id, message))

    def receive_messages(self) -> list:
        messages, self.inbox = self.inbox, []
        return messages

    def halt(self) -> bool:
        return self.halted

    def register_leader(self, leader_id: int | None) -> None:
        self.leaders.append(leader_id)

    def take(self, kind: type | None = None) -> list:
        """Remove and return the sent (to_id, message) pairs, only those of `kind` if given."""
        taken = [(to, m) for to, m in self.sent if kind is None or isinstance(m, kind)]
        self.sent = [(to, m) for to, m in self.sent if kind is not None and not isinstance(m, kind)]
        return taken


@dataclass
class RecordingStateMachine:
    """A `StateMachine` (a calculator) that records applies, states and snapshots."""

    total: int = 0
    applied: list = field(default_factory=list)  # transitions applied, in order
    pending: list = field(default_factory=list)  # transitions waiting to be proposed
    states: list = field(default_factory=list)  # (transition_id, TransitionState), in order
    own_snapshot: Snapshot | None = None  # what get_snapshot returns
    snapshots_set: list = field(default_factory=list)
    fail_on: Any = None  # an id whose apply raises

    def register_transition_state(self, transition_id: Any, state: TransitionState) -> None:
        self.states.append((transition_id, state))

    def apply_transition(self, transition: Op) -> None:
        if self.fail_on is not None and transition.id == self.fail_on:
            raise RuntimeError(f"cannot apply {transition.id}")
        self.total += transition.delta
        self.applied.append(transition)

    def get_pending_transitions(self) -> list:
        pending, self.pending = self.pending, []
        return pending

    def get_snapshot(self) -> Snapshot | None:
        return self.own_snapshot

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        return Snapshot(last_included_index, last_included_term, (self.total, tuple(self.applied)))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots_set.append(snapshot)
        self.total, applied = snapshot.data
        self.applied = list(applied)

    def state_of(self, transition_id: Any) -> TransitionState | None:
        """The last state registered for `transition_id`."""
        found = [s for i, s in self.states if i == transition_id]
        return found[-1] if found else None




def make_replica(id: int = 1, peers: tuple[int, ...] = (2, 3), *, seed: int = 0, snapshot_delta: int = 0,
                 storage: Storage | None = None, observer: Any = None,
                 state_machine: RecordingStateMachine | None = None,
                 ) -> tuple[Replica, RecordingCluster, RecordingStateMachine]:
    """A replica with recording fakes, a seeded rng and no clock (time moves only by `tick`)."""
    cluster, sm = RecordingCluster(), state_machine or RecordingStateMachine()
    replica = Replica(id, peers, cluster, sm, NOOP, HEARTBEAT, ELECTION, snapshot_delta,
                      storage=storage, rng=random.Random(seed), observer=observer)
    return replica, cluster, sm


# ----- building blocks for paper-claim tests: replica 1 with peers 2 and 3; peer 2 plays the leader ---

Fakes = tuple[Replica, RecordingCluster, RecordingStateMachine]


def e(index: int, term: int, name: str | None = None, delta: int | None = None) -> LogEntry:
    """A log entry whose transition is named `name` (default ``"i<index>t<term>"``)."""
    return LogEntry(Op(name if name is not None else f"i{index}t{term}", index if delta is None else delta),
                    index, term)


def stored(entries: Sequence[LogEntry] = (), term: int = 0, voted_for: int | None = None,
           storage: Storage | None = None) -> Storage:
    """Storage that already holds `entries` (uncommitted as far as a new replica knows) and `term`."""
    storage = storage if storage is not None else MemoryStorage()
    storage.set_term_and_vote(term, voted_for)
    if entries:
        storage.append(list(entries))
    return storage


def follower(entries: Sequence[LogEntry] = (), term: int = 0, **kwargs: Any) -> Fakes:
    """A follower (id 1, peers 2 and 3) whose storage holds `entries` and `term`."""
    return make_replica(storage=stored(entries, term), **kwargs)


def elect(replica: Replica, voters: Iterable[int] = (2,), now: float = 1.0) -> None:
    """Let the election timer fire, then grant the votes of `voters` (a majority with the replica)."""
    replica.tick(now)
    assert replica.role is Role.CANDIDATE
    for voter in voters:
        replica.step(VoteResponse(voter, replica.current_term, True))
    assert replica.role is Role.LEADER


def leader(entries: Sequence[LogEntry] = (), term: int = 0, voters: Iterable[int] = (2,), **kwargs: Any) -> Fakes:
    """A leader of term `term + 1` whose log held `entries` before its election (then its no-op)."""
    fakes = follower(entries, term, **kwargs)
    elect(fakes[0], voters)
    return fakes


def sent(cluster: RecordingCluster, kind: type, to: int | None = None) -> list:
    """The messages of `kind` sent so far (to `to` if given), oldest first."""
    return [m for dest, m in cluster.sent if isinstance(m, kind) and (to is None or dest == to)]


def only_sent(cluster: RecordingCluster, kind: type, to: int | None = None) -> Any:
    """The single message of `kind` sent (to `to`), which the test expects."""
    messages = sent(cluster, kind, to)
    assert len(messages) == 1, f"expected exactly one {kind.__name__}, got {messages}"
    return messages[0]
