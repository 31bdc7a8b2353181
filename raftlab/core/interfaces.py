"""What a user implements: Little Raft's `StateMachine` and `Cluster`, as Python protocols."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from enum import Enum
from typing import Any, Protocol, TypeVar, runtime_checkable

from .messages import Message, ReplicaID, Snapshot

T = TypeVar("T")
D = TypeVar("D")
T_co = TypeVar("T_co", covariant=True)
D_co = TypeVar("D_co", covariant=True)


class TransitionState(Enum):
    """Where a transition is in its life (Little Raft's `TransitionState`)."""

    QUEUED = "queued"  # a leader accepted it into its log
    COMMITTED = "committed"  # a majority stores it; it will be applied
    APPLIED = "applied"  # the state machine applied it
    ABANDONED_NOT_LEADER = "abandoned: not leader"  # offered to a replica that is not the leader: never appended
    ABANDONED_CONFLICT_WITH_LEADER = "abandoned: conflict with leader"  # can provably never be applied (IS-KEEP)
    ABANDONED_REFUSED = "abandoned: refused"  # a configuration change the leader may not make now (MC-ONE)
    UNKNOWN = "unknown: retry with the same id"  # removed from this log (AE-TRUNCATE): it may still commit elsewhere

    @property
    def abandoned(self) -> bool:
        """True for both kinds of abandonment: the transition can provably never be applied (it was
        never appended, or it came after an entry that conflicts with a committed one)."""
        return self in (TransitionState.ABANDONED_NOT_LEADER, TransitionState.ABANDONED_CONFLICT_WITH_LEADER,
                        TransitionState.ABANDONED_REFUSED)

    @property
    def final(self) -> bool:
        """True for the last state a replica reports for a transition: applied, abandoned, or unknown
        (removed from its log: only a retry with the same id can tell, and at most once)."""
        return self is not TransitionState.QUEUED and self is not TransitionState.COMMITTED


class ReadState(Enum):
    """What became of a linearizable read asked of `Replica.read` (thesis §6.4)."""

    READY = "ready"  # serve it now, from the state machine's current state: that is linearizable
    ABANDONED = "abandoned: not leader"  # no leader could confirm it: ask again (the leader, later)


@runtime_checkable
class Transition(Protocol):
    """A change to the state machine. Little Raft's `StateMachineTransition`."""

    def get_id(self) -> Hashable:
        """An id that names this transition in `register_transition_state`."""


def transition_id(transition: Any) -> Hashable:
    """The id of `transition`: its `get_id()`."""
    return transition.get_id()


class StateMachine(Protocol[T, D]):
    """The replicated state machine, written by the user (Little Raft's `StateMachine<T, D>`)."""

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        """Told each time one of its transitions changes state (on every replica)."""

    def apply_transition(self, transition: T) -> None:
        """Apply a committed transition. Called in log order, exactly once per index.

        An exception stops the replica (fail-stop): it never skips an entry.
        """

    def get_pending_transitions(self) -> Iterable[T]:
        """Transitions waiting to be replicated; never returns the same transition twice."""

    def get_snapshot(self) -> Snapshot[D] | None:
        """The state machine's latest snapshot, if it kept one; called once, at start-up."""

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot[D]:
        """Capture the current state, which has applied exactly up to `last_included_index`."""

    def set_snapshot(self, snapshot: Snapshot[D]) -> None:
        """Replace the whole state by `snapshot` (sent by the leader, or loaded at start-up)."""

    # Optional, for linearizable reads without log writes (`Replica.read`):
    # def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
    #     """Told once per read: READY (answer it from the current state now) or ABANDONED."""


class Cluster(Protocol[T_co, D_co]):
    """How replicas talk, written by the user (Little Raft's `Cluster<T, D>`)."""

    def send_message(self, to_id: ReplicaID, message: Message) -> None:
        """Send `message` to replica `to_id`. Must not block; may silently fail."""

    def receive_messages(self) -> Iterable[Message]:
        """Messages that arrived. Must not block; never returns a message twice."""

    def halt(self) -> bool:
        """True when `Replica.start` should return."""

    def register_leader(self, leader_id: ReplicaID | None) -> None:
        """Told whenever the leader known to this replica changes (None while unknown)."""
