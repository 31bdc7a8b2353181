"""`ObservableStateMachine`: the plumbing every raftlab state machine shares.

A `Replica` drives its state machine through the six methods of the core `StateMachine` protocol.
This base class implements all six once, so a concrete machine writes only its state change:

- ``_apply(transition)``: change the state and return the client-visible result;
- ``_state()``: an immutable (or deep-copied) picture of the state, put in snapshots;
- ``_restore(data)``: replace the whole state by such a picture.

On top of the protocol it keeps what a client, a test or a visualisation wants to watch: a FIFO
queue of submitted transitions, the result and the last `TransitionState` of each transition, the
number of log entries applied, and a synchronous publish/subscribe of `MachineEvent` values.
"""

from __future__ import annotations

import copy
import reprlib
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from ..core.interfaces import TransitionState, transition_id
from ..core.messages import Snapshot

T = TypeVar("T")  # a transition
D = TypeVar("D")  # the data of a snapshot

EVENT_KINDS = ("applied", "state", "snapshot_created", "snapshot_set")
"""The values of `MachineEvent.kind`."""


@dataclass(frozen=True, slots=True)
class MachineEvent:
    """Something that happened to an `ObservableStateMachine`, given to its subscribers.

    ``kind`` is one of:

    - ``"applied"``: the transition `transition_id` was applied as log entry `index`; `result` is
      what it returned (`state` is None);
    - ``"state"``: the replica registered `state` for `transition_id` (`result` is None, `index` is
      the number of entries applied at that moment);
    - ``"snapshot_created"`` / ``"snapshot_set"``: a snapshot up to `index` was taken from / loaded
      into the machine (`transition_id`, `state` and `result` are None).
    """

    kind: str  # "applied", "state", "snapshot_created" or "snapshot_set"
    transition_id: Hashable | None  # the transition concerned (None for snapshots)
    state: TransitionState | None  # the registered state (only for "state")
    result: Any  # the result of the transition (only for "applied")
    index: int  # the log index applied, snapshotted or loaded; applied_index for "state"


Subscriber = Callable[[MachineEvent], None]

_PLAIN = frozenset({type(None), bool, int, float, str})  # values a copy may share


class _ById(dict):
    """A dict keyed by transition id (`results`, `states`): a deep copy (a simulator's checkpoint) shares
    the ids, which are hashable, and the values that are plain (None, bool, int, float, str, enum members)."""

    def __deepcopy__(self, memo: dict) -> _ById:
        clone = memo[id(self)] = _ById()
        clone.update((k, v if type(v) in _PLAIN or isinstance(v, Enum) else copy.deepcopy(v, memo))
                     for k, v in self.items())
        return clone


class ObservableStateMachine(Generic[T, D]):
    """A `StateMachine` that records results and transition states, and publishes `MachineEvent`s.

    Subclasses set `NOOP` and implement `_apply`, `_state` and `_restore`; see the module docstring.
    Applying `NOOP` (compared by equality) never calls `_apply`: it changes nothing and its result
    is None, but it still counts in `applied_index`, as every log entry does.

    Attributes:
        results: the result of each applied transition, by id (a later application of the same id,
            such as the no-op of each new leader, replaces the earlier result).
        states: the last `TransitionState` registered for each transition id.
        applied_index: how many log entries have been applied (the log index of the last one).
        snapshot_index: the index of the last snapshot created or set (0 before any).

    `submit` may be called from another thread than the replica's: the queue is a `deque`, whose
    appends and pops are atomic. Everything else is meant to run on the replica's thread.
    """

    NOOP: ClassVar[Any] = None  # the subclass's no-op transition (a Replica's noop_transition)

    def __init__(self) -> None:
        self.results: dict[Hashable, Any] = _ById()
        self.states: dict[Hashable, TransitionState] = _ById()
        self.applied_index = 0
        self.snapshot_index = 0
        self._pending: deque[T] = deque()
        self._subscribers: tuple[tuple[object, Subscriber], ...] = ()

    # ----- what subclasses implement ---------------------------------------------------------------
    def _apply(self, transition: T) -> Any:
        """Change the state by `transition` and return its client-visible result."""
        raise NotImplementedError

    def _state(self) -> D:
        """The current state, immutable or deep-copied: snapshots holding it may be shared."""
        raise NotImplementedError

    def _restore(self, data: D) -> None:
        """Replace the whole state by `data`, as returned by `_state` (possibly on another instance)."""
        raise NotImplementedError

    def _describe(self) -> str:
        """A short description of the state for `__repr__`."""
        return f"state={reprlib.repr(self._state())}"

    # ----- for clients and observers ---------------------------------------------------------------
    def submit(self, transition: T) -> None:
        """Queue `transition`; the replica takes it with `get_pending_transitions` (FIFO, once)."""
        self._pending.append(transition)

    @property
    def pending_count(self) -> int:
        """How many submitted transitions the replica has not taken yet."""
        return len(self._pending)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every later `MachineEvent`, synchronously and in order.

        Returns a function that unsubscribes it (calling it again does nothing). Subscribing the
        same callback twice makes two independent subscriptions.
        """
        token = object()
        self._subscribers = (*self._subscribers, (token, callback))

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s[0] is not token)

        return unsubscribe

    def _publish(self, kind: str, transition_id: Hashable | None, state: TransitionState | None,
                 result: Any, index: int) -> None:
        event = MachineEvent(kind, transition_id, state, result, index)
        for _, callback in self._subscribers:  # a snapshot of the tuple: (un)subscribing is safe here
            callback(event)

    # ----- the core StateMachine protocol ----------------------------------------------------------
    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        """Record `state` as the last state of `transition_id` and publish a ``"state"`` event."""
        self.states[transition_id] = state
        if self._subscribers:
            self._publish("state", transition_id, state, None, self.applied_index)

    def apply_transition(self, transition: T) -> None:
        """Apply the next log entry: `_apply` it (unless it is `NOOP`), record and publish the result."""
        result = None if transition == self.NOOP else self._apply(transition)
        self.applied_index += 1
        tid = transition_id(transition)
        self.results[tid] = result
        if self._subscribers:
            self._publish("applied", tid, None, result, self.applied_index)

    def get_pending_transitions(self) -> list[T]:
        """The submitted transitions not taken yet, oldest first; each is returned only once."""
        if not self._pending:
            return []  # (one submitted meanwhile, from another thread, is taken next time)
        pending, pop = [], self._pending.popleft
        while True:
            try:
                pending.append(pop())
            except IndexError:
                return pending

    def get_snapshot(self) -> Snapshot[D] | None:
        """None: this machine keeps nothing durable of its own (the replica's storage does)."""
        return None

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot[D]:
        """A snapshot of the current state, which has applied exactly up to `last_included_index`."""
        snapshot = Snapshot(last_included_index, last_included_term, self._state())
        self.snapshot_index = last_included_index
        if self._subscribers:
            self._publish("snapshot_created", None, None, None, last_included_index)
        return snapshot

    def set_snapshot(self, snapshot: Snapshot[D]) -> None:
        """Replace the whole state by `snapshot`; `applied_index` becomes its last included index."""
        self._restore(snapshot.data)
        self.applied_index = self.snapshot_index = snapshot.last_included_index
        if self._subscribers:
            self._publish("snapshot_set", None, None, None, snapshot.last_included_index)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._describe()}, applied_index={self.applied_index}, "
                f"snapshot_index={self.snapshot_index}, pending={len(self._pending)})")
