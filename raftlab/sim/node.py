"""The parts of one simulated node: its `SimCluster`, its `MachineTap`, and the read-only `ReplicaView`."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

from ..core import Configuration, LogEntry, Message, ReadState, Replica, Role, Snapshot, TransitionState
from .trace import SIM, SimKind

if TYPE_CHECKING:
    from .simulation import Simulation

_CONFIG = "configuration"  # how a `Configuration`'s transition id starts
_US = 1_000_000


class SimCluster:
    """The in-memory `Cluster` of one simulated node."""

    __slots__ = ("inbox", "leader", "node", "sim")

    def __init__(self, sim: Simulation, node: int) -> None:
        self.sim, self.node = sim, node
        self.inbox: list[Message] = []  # (empty: the simulation hands each message it delivers to `Replica.step`)
        self.leader: int | None = None  # the leader this node knows

    def send_message(self, to_id: int, message: Message) -> None:
        self.sim._send(self.node, to_id, message)

    def receive_messages(self) -> list[Message]:
        messages, self.inbox = self.inbox, []
        return messages

    def halt(self) -> bool:
        return False

    def register_leader(self, leader_id: int | None) -> None:
        self.leader = leader_id


class MachineTap:
    """What a simulated node's `Replica` is given as its state machine: the node's `machine`, wrapped.

    The machine is any object with the six methods of the core `StateMachine` protocol. The tap
    forwards every call to it and tells the simulation what happened: the states of the client's
    `Submission`s, and each entry applied (to the invariant checker), configuration entries included:
    they are the cluster's, so the replica never gives them to the machine, but it reports them
    APPLIED as it moves past them, and they count as applied indices. It also queues the transitions
    submitted through the simulation (`submit`): the replica takes them after the machine's own
    pending ones, so the machine needs no queue of its own.
    """

    def __init__(self, sim: Simulation, node: int, machine: Any) -> None:
        self.sim, self.node, self.machine = sim, node, machine
        self.applied_index = 0  # index of the last entry applied (or covered by a snapshot)
        self.submitted: list[Any] = []  # submitted through the simulation, not taken by the replica yet

    def submit(self, transition: Any) -> None:
        """Queue a client's `transition` for the replica (which takes it with `get_pending_transitions`)."""
        self.submitted.append(transition)

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        self.machine.register_transition_state(transition_id, state)
        sim = self.sim
        if (state is TransitionState.APPLIED and type(transition_id) is tuple and transition_id
                and transition_id[0] == _CONFIG):
            self._applied_configuration(transition_id)
        handle = sim.submissions.get(transition_id)
        if handle is not None and handle.track(self.node, state, self.applied_index, sim.now_us / _US):
            if state is TransitionState.APPLIED:
                handle.result = getattr(self.machine, "results", {}).get(transition_id)
            if sim.record_trace:  # (its repr, only for a trace that keeps it)
                sim._record(SimKind.CLIENT_REPLY, self.node, SIM, transition=repr(handle.transition), state=state.value)

    def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
        handle = self.sim.reads.get(read_id)
        if handle is not None:
            value = self.machine.read(handle.key) if state is ReadState.READY else None
            self.sim.answer_read(self.node, read_id, state, value)

    def apply_transition(self, transition: Any) -> None:
        self.machine.apply_transition(transition)
        replica = self.sim._replicas[self.node]  # the index is the replica's, not counted here
        assert replica is not None  # (it is the one applying)
        previous, self.applied_index = self.applied_index, replica.last_applied + 1
        if self.sim.checker is not None:
            self.sim.checker.on_apply(self.node, self.applied_index, transition.get_id(), previous)

    def _applied_configuration(self, transition_id: Hashable) -> None:
        """The replica moved its last applied index past a configuration entry (ALL-APPLY, without the
        machine): it counts as applied there. (One a snapshot covers is not: the snapshot is.)"""
        replica = self.sim._replicas[self.node]
        index = 0 if replica is None else replica.last_applied
        if replica is None or index != self.applied_index + 1 or index <= replica.log.base_index \
                or type(replica.log.entry(index).transition) is not Configuration:
            return
        previous, self.applied_index = self.applied_index, index
        if self.sim.checker is not None:
            self.sim.checker.on_apply(self.node, index, transition_id, previous)

    def get_pending_transitions(self) -> Iterable[Any]:
        own = self.machine.get_pending_transitions()
        if not self.submitted:
            return own
        submitted, self.submitted = self.submitted, []
        return [*own, *submitted]

    def get_snapshot(self) -> Snapshot | None:
        return self.machine.get_snapshot()

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        return self.machine.create_snapshot(last_included_index, last_included_term)

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.machine.set_snapshot(snapshot)
        self.applied_index = snapshot.last_included_index


class ReplicaView:
    """Read-only view of one node (live or crashed)."""

    __slots__ = ("_node", "_sim")

    def __init__(self, sim: Simulation, node: int) -> None:
        self._sim, self._node = sim, node

    def __repr__(self) -> str:
        replica = self._replica
        down = "removed" if self.removed else "crashed"
        return repr(replica) if replica is not None else f"ReplicaView(id={self._node}, {down})"

    def __deepcopy__(self, memo: dict) -> ReplicaView:
        return self  # immutable, and a checkpoint shares its simulation

    @property
    def _replica(self) -> Replica | None:
        return self._sim._replicas[self._node]

    @property
    def id(self) -> int:
        return self._node

    @property
    def crashed(self) -> bool:
        return self._replica is None

    @property
    def removed(self) -> bool:
        """Shut down for good: a committed configuration left it out (`Simulation.remove_node`)."""
        return self._node in self._sim._removed

    @property
    def configuration(self) -> Configuration | None:
        """The latest configuration in its log, committed or not (MC-LATEST); None while crashed."""
        return None if self._replica is None else self._replica.configuration

    @property
    def membership(self) -> str:
        """``"voter"``, ``"learner"``, ``"joining"`` or ``"removed"``: see `Simulation.membership`."""
        return self._sim.membership(self._node)

    @property
    def role(self) -> Role | None:
        return None if self._replica is None else self._replica.role

    @property
    def term(self) -> int:
        return self._sim._storages[self._node].current_term

    @property
    def voted_for(self) -> int | None:
        return self._sim._storages[self._node].voted_for

    @property
    def log(self) -> tuple[LogEntry, ...]:
        """The entries held after the snapshot."""
        log = self._sim._storages[self._node].log
        return log.entries_from(log.base_index + 1)

    @property
    def last_index(self) -> int:
        return self._sim._storages[self._node].log.last_index

    @property
    def snapshot_index(self) -> int:
        return self._sim._storages[self._node].log.base_index

    @property
    def commit_index(self) -> int:
        return 0 if self._replica is None else self._replica.commit_index

    @property
    def last_applied(self) -> int:
        return 0 if self._replica is None else self._replica.last_applied

    @property
    def machine(self) -> Any:
        """The node's state machine (None while crashed)."""
        return None if self._replica is None else self._sim._taps[self._node].machine

    @property
    def stats(self) -> Any:
        return None if self._replica is None else self._replica.stats
