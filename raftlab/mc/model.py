"""The model: a small cluster of real `Replica`s, its states, its actions and its safety predicates.

A *state* is everything that decides what can happen next: each replica's persistent state (term,
vote, log, snapshot) and volatile state (role, leader, commit and applied indices, the leader's
`next_index`, `match_index` and flow control, the votes it holds, ... and any attribute a subclass
adds), its state machine's state, the messages in flight (a multiset), which nodes are down, what
is left of the bounded faults and requests, and a little *history* the safety predicates need (the
leaders of each term, the highest entry known committed in each term, the transition applied at each
index). An *action* is one of: deliver a message in flight, drop one, duplicate one, fire a node's
election timer (`Replica.campaign`), fire a leader's heartbeat, crash a node, restart it, submit a
client transition to the leader, ask the leader to hand its leadership over (`Bounds.transfers`) or to
remove a member from the configuration (`Bounds.changes`), ask a node for a linearizable read
(`Bounds.reads`), let time pass (`Bounds.ticks`). Timers are choices, not clock readings: unless it is
let pass, time stands still at 0, and the replicas' deadlines are never part of the state.

Every transition is made by the real, unchanged `Replica` class (or a subclass: a planted bug, a
student's exercise): its state is loaded into one live object per node, the action is taken, and the
result is saved again. States are tuples of small integers: each node's saved state and each message
is interned once (a number per distinct value), so that hashing a state costs a few integer hashes,
and the copy made for a successor is one saved node, never a `deepcopy` of the cluster.

Bounds (`Bounds`) keep the space finite: the terms and log lengths a state may reach (a state past
them is not explored), and how many crashes, drops, duplicates and client submissions a run may use.
A network that already holds a message absorbs an identical one sent again (a heartbeat that tells
nothing new adds no state); sending it twice is what `duplicate` models, within its bound.

The safety predicates are those of the simulator's `raftlab.sim.InvariantChecker` (Figure 3 and the
rules of raft-rules.md, "Safety properties"), checked on each new state: Election Safety, Leader
Append-Only, Log Matching, Leader Completeness, State Machine Safety, monotonic terms and commit
indices; a read answered from a state older than an entry known committed when it was asked
("Linearizable read"); and a replica that raises has a bug too ("Replica error"). Beside them, the
rules of raft-rules.md that one step decides (`rules=False` leaves them out): ALL-TERM, F-TIMEOUT,
PV-GRANT, RV-GRANT, AE-CHECK (`_check_rules`, on deliveries), persisting before sending (Figure 2,
`_check_persisted`), RI-LEASE,
L-REPLICATE, L-COMMIT, MC-STEPDOWN, MC-LEARNER (`_check_node`, `_match_held`), LT-STOP and MC-ONE (on
submissions and changes); a planted bug that breaks one is caught at the step that breaks it, before
any safety property shows it (`raftlab.mc.planted`). A counterexample replayed in a
`Simulation` is checked again by the simulator's own checker (`raftlab.mc.counterexample`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from ..core import (
    AppendEntryRequest, AppendEntryResponse, Configuration, Event, EventKind, InstallSnapshotRequest,
    InstallSnapshotResponse, Log, LogEntry, MemoryStorage, Message, PreVoteRequest, PreVoteResponse, Progress, Read,
    ReadState, Replica, ReplicaStopped, Role, Snapshot, TransitionState, VoteRequest, VoteResponse,
)
from ..machines.counter import Add, Counter

__all__ = ["Action", "Bounds", "Model", "State", "Violation", "describe_action"]

State = tuple  # (node ids..., network, budgets, ghost): see `Model`
Action = tuple[str, int, int]  # (kind, node, message number or 0)

HEARTBEAT, ELECTION = 1.0, (2.0, 3.0)  # the replicas' timeouts (seconds: timers fire by choice, not by the clock)
TICK = ELECTION[0] / 2  # how far time moves at a tick (`Bounds.ticks`; without ticks time stands at 0)


@dataclass(frozen=True, slots=True)
class Bounds:
    """How far the search may go. Each bound is a non-negative int (`nodes` and `depth` positive).

    Args:
        nodes: replicas in the cluster (ids 0 .. nodes-1).
        max_term: no state in which a term exceeds it is explored (an election timer is not fired
            at this term).
        max_log: no state in which a log holds more entries is explored.
        crashes: crashes a run may use (a crashed node may restart at any time).
        drops: messages a run may lose.
        duplicates: messages a run may duplicate.
        submits: client transitions a run may submit (to the leader).
        transfers: leadership transfers a run may ask for (of the leader `Simulation.leader` names, to
            another voter of its configuration).
        changes: configuration changes a run may ask for: the leader `Simulation.leader` names is asked
            to remove a member (itself too), as `Simulation.remove_node` asks.
        reads: linearizable reads a run may ask for (`Replica.read`, ReadIndex, at any live node); each
            must be answered from a state as new as every entry known committed when it was asked.
        ticks: times a run may let time pass, by `TICK` (half the minimum election timeout) each. With
            it the replicas' clock moves, so that what the core times by it is explored (read leases,
            CheckQuorum's stepping down, CQ-STICKY). The timers still fire by choice, but an election
            timer not before the minimum election timeout has passed since its node last heard from a
            leader (as a real one, reset then; the run starts after a quiet minimum election timeout).
        depth: actions in a run (the breadth-first search's horizon).
        max_messages: no state with more messages in flight is explored (None: no bound); as TLA+
            models of Raft bound their network, this makes a whole bounded space small enough to finish.
    """

    nodes: int = 3
    max_term: int = 3
    max_log: int = 3
    crashes: int = 1
    drops: int = 1
    duplicates: int = 0
    submits: int = 1
    depth: int = 20
    max_messages: int | None = None
    transfers: int = 0
    changes: int = 0
    reads: int = 0
    ticks: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "max_messages" and value is None:
                continue
            least = 1 if f.name in ("nodes", "depth", "max_term") else 0
            if type(value) is not int or value < least:
                raise ValueError(f"{f.name} must be an int >= {least}, not {value!r}")

    def raised(self, name: str, by: int = 1) -> Bounds:
        """These bounds with `name` raised by `by` (to see how the space grows)."""
        return Bounds(**{f.name: getattr(self, f.name) + by if f.name == name else getattr(self, f.name)
                         for f in fields(self)})


@dataclass(frozen=True, slots=True)
class Violation:
    """A safety property that a state breaks: its name, what was seen, and the action that led there."""

    property: str  # the property's name, as the simulator's checker names it
    detail: str  # what was seen
    action: Action | None = None  # the action that reached the state (None: the initial state)


# ----- the parts each node is given ------------------------------------------------------------------
class _Wire:
    """A node's `Cluster`: it keeps what the replica sends during one action."""

    __slots__ = ("durable", "out", "storage")

    def __init__(self, storage: MemoryStorage) -> None:
        self.out: list[tuple[int, Message]] = []
        self.storage = storage
        self.durable: list[tuple] = []  # at each send: what the storage held then (term, vote, entries, snapshot)

    def send_message(self, to_id: int, message: Message) -> None:
        self.out.append((to_id, message))
        s = self.storage
        self.durable.append((s.current_term, s.voted_for, tuple(s.log._entries), s.log.snapshot))

    def receive_messages(self) -> list[Message]:
        return []  # (the model hands messages to `Replica.step` itself)

    def halt(self) -> bool:
        return False

    def register_leader(self, leader_id: int | None) -> None:
        pass


class _Machine:
    """A node's state machine: Little Raft's calculator (`Counter`'s transitions, `Add`), lean. It
    counts the entries it was given itself (its own account, not the replica's), so that State
    Machine Safety is judged on what was applied."""

    __slots__ = ("applied", "model", "node", "pending", "value")

    def __init__(self, model: Model, node: int) -> None:
        self.model, self.node = model, node
        self.value = 0  # the counter
        self.applied = 0  # the index of the last entry applied (or covered by a snapshot set)
        self.pending: list[Any] = []  # a submission, until the replica takes it

    def apply_transition(self, transition: Add) -> None:
        self.value += transition.delta
        self.applied += 1
        self.model._apply_log.append((self.node, self.applied, transition.get_id()))

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        if state is TransitionState.APPLIED and type(transition_id) is tuple \
                and transition_id[:1] == ("configuration",):
            self.applied += 1  # (a configuration entry is applied without the machine)
            self.model._apply_log.append((self.node, self.applied, transition_id))

    def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
        if state is ReadState.READY:
            self.model._read_log.append((read_id, self.applied))

    def get_pending_transitions(self) -> list[Any]:
        pending, self.pending = self.pending, []
        return pending

    def get_snapshot(self) -> Snapshot | None:
        return None

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        return Snapshot(last_included_index, last_included_term, self.value)

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.value, self.applied = snapshot.data, snapshot.last_included_index


# ----- saving and loading a replica's state -----------------------------------------------------------
# The core's volatile attributes, saved in this order; the deadlines and the clock's last reading are
# not state (time stands still); everything else the constructor sets is configuration.
_VOLATILE = ("role", "leader_id", "commit_index", "last_applied", "next_index", "match_index", "progress", "votes",
             "pre_votes", "transfer_to", "transfer_deadline", "transfer_election", "round", "read_seq", "round_sent",
             "reads", "configuration", "config_index", "peer_ids", "_senders", "leader_heard_at")
_RESPONSES = frozenset((AppendEntryResponse, VoteResponse, PreVoteResponse, InstallSnapshotResponse))
_BUDGETS = ("crashes", "drops", "duplicates", "submits", "transfers", "changes", "reads", "ticks")  # (a state's)
_SPENDS = {"submit": "submits", "transfer": "transfers", "remove": "changes", "read": "reads"}  # action -> budget
_BUDGET = {name: k for k, name in enumerate(_BUDGETS)}
_READS = 1 << 16  # a read action's number: read k, asked when entry c was the last known committed: k * _READS + c
_TORN = "+crash"  # an action whose node crashes right after a send its storage had not caught up with
_MESSAGE_ACTIONS = frozenset(("deliver", "drop", "duplicate", "deliver" + _TORN))
_NOT_STATE = frozenset(("election_deadline", "heartbeat_deadline", "_time", "_stopped"))
_PROGRESS = tuple(f.name for f in fields(Progress))
_READ = tuple(f.name for f in fields(Read))


def _freeze(value: Any) -> Any:
    """An immutable, hashable copy of a subclass's own attribute (`_thaw` makes a fresh mutable one)."""
    kind = type(value)
    if kind is dict:
        return ("d", tuple((k, _freeze(v)) for k, v in value.items()))
    if kind is set:
        return ("s", frozenset(value))
    if kind is list:
        return ("l", tuple(_freeze(v) for v in value))
    return value  # ints, None, enums, tuples, frozensets and frozen values are immutable already


def _thaw(value: Any) -> Any:
    if type(value) is not tuple or len(value) != 2 or type(value[0]) is not str:
        return value
    tag, body = value
    if tag == "d":
        return {k: _thaw(v) for k, v in body}
    if tag == "s":
        return set(body)
    if tag == "l":
        return [_thaw(v) for v in body]
    return value


if _PROGRESS != ("flow", "probe", "inflight", "oldest", "active", "resend_at", "round") or \
        _READ != ("id", "origin", "round", "index"):  # pragma: no cover (a change of the core's records)
    raise ImportError("raftlab.mc: Progress or Read changed: update _save_volatile and _load_volatile")


def _save_volatile(a: dict[str, Any], timed: bool) -> tuple:
    """The core's volatile attributes (`_VOLATILE`, in that order), immutable. Dicts keep their order
    (the core fills them in the peers' order, so equal states give equal tuples)."""
    pre_votes = a["pre_votes"]
    return (a["role"], a["leader_id"], a["commit_index"], a["last_applied"], tuple(a["next_index"].items()),
            tuple(a["match_index"].items()),
            tuple((k, p.flow, p.probe, tuple(p.inflight), p.oldest, p.active, p.resend_at, p.round)
                  for k, p in a["progress"].items()),
            frozenset(a["votes"]), None if pre_votes is None else frozenset(pre_votes), a["transfer_to"],
            a["transfer_deadline"], a["transfer_election"], a["round"], a["read_seq"], tuple(a["round_sent"].items()),
            tuple((r.id, r.origin, r.round, r.index) for r in a["reads"]), a["configuration"], a["config_index"],
            a["peer_ids"], a["_senders"], a["leader_heard_at"] if timed else -math.inf)  # (see `Model`, pre_vote)


def _load_volatile(a: dict[str, Any], v: tuple) -> None:
    (a["role"], a["leader_id"], a["commit_index"], a["last_applied"], next_index, match_index, progress, votes,
     pre_votes, a["transfer_to"], a["transfer_deadline"], a["transfer_election"], a["round"], a["read_seq"],
     round_sent, reads, a["configuration"], a["config_index"], a["peer_ids"], a["_senders"], a["leader_heard_at"]) = v
    a["next_index"], a["match_index"] = dict(next_index), dict(match_index)
    a["progress"] = {k: Progress(f, pb, list(inf), o, act, res, r) for k, f, pb, inf, o, act, res, r in progress}
    a["votes"], a["pre_votes"] = set(votes), None if pre_votes is None else set(pre_votes)
    a["round_sent"], a["reads"] = dict(round_sent), [Read(*r) for r in reads]


# Heartbeat rounds (RI-CONFIRM) are read only by linearizable reads, leases and CheckQuorum (CQ-*):
# unless the model has reads, leases or time (`Bounds.reads`, `read_lease`, `Bounds.ticks`), a leader's
# round counter, the rounds its peers acknowledged and the round numbers messages carry are set to 0,
# so that each heartbeat does not make a new state.
def _roundless(message: Message) -> Message:
    return replace(message, round=0) if getattr(message, "round", 0) else message  # type: ignore[arg-type]


def _roundless_volatile(v: tuple) -> tuple:
    if not v[12] and not v[14] and not any(p[7] for p in v[6]):
        return v
    progress = tuple((*p[:7], 0) for p in v[6])
    return (*v[:6], progress, *v[7:12], 0, v[13], (), *v[15:])


def _log(snapshot: Snapshot | None, entries: tuple) -> Log:
    """A `Log` holding `entries` after `snapshot` (already checked: made without `Log.append`)."""
    return Log(snapshot, entries, check=False)


class Model:
    """A bounded model of a Raft cluster for `raftlab.mc.search`.

    Args:
        bounds: the `Bounds` of the search.
        replica_class: the `Replica` class every node runs (a subclass: a planted bug, an exercise).
        snapshot_delta: as for `Replica` (0: never compact): with it, InstallSnapshot is explored too.
        max_inflight: as for `Replica`.
        max_entries: at most this many entries per AppendEntries (None: the class's own limit), as the
            transcripts' ``max-entries=K``: a leader then repairs a log one entry at a time (Figure 8).
        symmetry: identify states that differ only by a renaming of the nodes (all nodes are alike at
            the start, so a renamed run is a run); `Model.canonical` does it.
        prune_stale: remove from the network a response of an older term that its receiver ignores.
        one_per_link: a link (sender, destination) holds at most one message: one sent takes the place
            of the one in flight, as if that one were lost (without using a drop). Fewer states, every
            run still a run of the real network (replayed in the simulator, the older message is merely
            never delivered); reorderings on one link (a delayed, older request) are not explored.
        pre_vote: as for `Replica` (PV-*): an election timer starts a pre-vote. Time stands still, and a
            leader is taken as heard from long ago (the core reads that time only for PV-GRANT, and for
            CheckQuorum and leases, which the model has not): a server grants any pre-vote its log
            allows, as it may after its minimum election timeout, so every run with pre-votes is explored.
        read_lease: the replicas have CheckQuorum and read leases (RI-LEASE, CQ-*). A lease must rest on a
            heartbeat round of the leader's term that a majority acknowledged ("Read lease (RI-LEASE)").
            Without `Bounds.ticks` time stands still, so a lease never runs out: a read it answers is not
            held to the freshness of a linearizable read then (that is a matter of clocks), and, as with
            `pre_vote`, a leader is taken as heard from long ago (CQ-STICKY never refuses a vote). With
            ticks, the times are real and every read is held to it.
        rules: check the rules one step decides (ALL-TERM, RV-GRANT, AE-CHECK, L-COMMIT, persisting before
            sending, ...) beside the safety properties; False: the safety properties only, to see where a
            broken rule leads (a vote sent before it is written: two leaders of one term).

    A state is a tuple ``(node_0, ..., node_{n-1}, network, budgets, ghost)``: each node the number of
    its saved state (`node_state` decodes it), the network a sorted tuple of ``(message number,
    copies)`` (`message` decodes a number into ``(destination, message)``), the budgets what is left
    of ``(crashes, drops, duplicates, submits, transfers, changes, reads, ticks)``, and the ghost the history the
    predicates need.
    """

    def __init__(self, bounds: Bounds | None = None, replica_class: type[Replica] = Replica, *,
                 snapshot_delta: int = 0, max_inflight: int = 1, max_entries: int | None = None,
                 symmetry: bool = False, prune_stale: bool = False, one_per_link: bool = False,
                 pre_vote: bool = False, read_lease: bool = False, rules: bool = True) -> None:
        self.bounds = bounds if bounds is not None else Bounds()
        if not (isinstance(replica_class, type) and issubclass(replica_class, Replica)):
            raise ValueError(f"replica_class must be a subclass of Replica, not {replica_class!r}")
        if type(snapshot_delta) is not int or snapshot_delta < 0:
            raise ValueError(f"snapshot_delta must be an int >= 0, not {snapshot_delta!r}")
        if type(max_inflight) is not int or max_inflight < 1:
            raise ValueError(f"max_inflight must be an int >= 1, not {max_inflight!r}")
        if max_entries is not None and (type(max_entries) is not int or max_entries < 1):
            raise ValueError(f"max_entries must be an int >= 1 or None, not {max_entries!r}")
        self.replica_class, self.snapshot_delta, self.max_inflight = replica_class, snapshot_delta, max_inflight
        self.max_entries = max_entries
        self.prune_stale = prune_stale
        self.one_per_link, self.pre_vote, self.read_lease = bool(one_per_link), bool(pre_vote), bool(read_lease)
        self._run_class = replica_class if max_entries is None else type(  # (as the transcripts' max-entries=K)
            f"Limited{replica_class.__name__}", (replica_class,), {"MAX_ENTRIES_PER_MESSAGE": max_entries})
        self.symmetry, self.rules = bool(symmetry), bool(rules)
        self.ids = tuple(range(self.bounds.nodes))
        self._nodes: list[tuple] = []  # node number -> saved node state
        self._node_numbers: dict[tuple, int] = {}
        self._messages: list[tuple[int, Message]] = []  # message number -> (destination, message)
        self._message_numbers: dict[tuple[int, Message], int] = {}
        self._links: list[tuple[int, int]] = []  # message number -> (sender, destination)
        self._storages = [MemoryStorage() for _ in self.ids]
        self._wires = [_Wire(storage) for storage in self._storages]
        self._machines = [_Machine(self, i) for i in self.ids]
        self._replicas: list[Replica] = []
        self._templates: list[dict[str, Any]] = []  # node -> the configuration part of its replica's attributes
        self._known: list[frozenset[str]] = []  # node -> the attributes that are not a subclass's own
        self._apply_log: list[tuple[int, int, Hashable]] = []  # (node, index, transition id) applied in an action
        self._read_log: list[tuple[Hashable, int]] = []  # (read id, entries applied) of the reads answered in one
        self._timed = self.bounds.ticks > 0  # the clock moves: the times the core keeps are state
        self._rounds = self.bounds.reads > 0 or self.read_lease or self._timed  # rounds are state (`_roundless`)
        self._leased: list[int] = []  # the quorum round of each lease read confirmed in one action (RI-LEASE)
        self._transitions: dict[tuple[int, str, int, float], tuple | Violation | None] = {}  # see `step`
        self._now = 0.0  # the replicas' clock, in the state being stepped (`Bounds.ticks`)
        self._matching: dict[tuple[int, int, int], Violation | None] = {}  # (number, other, its number) -> found
        self._matched: dict[tuple[int, int, int], Violation | None] = {}  # the same, for `_match_held`
        self._perms = [p for p in itertools.permutations(self.ids) if p != self.ids]  # the renamings but one
        self._node_renames: dict[tuple[int, tuple[int, ...]], int] = {}  # (node number, renaming) -> number
        self._message_renames: dict[tuple[int, tuple[int, ...]], int] = {}
        self._inverses = [tuple(p.index(j) for j in self.ids) for p in self._perms]  # k -> the node that becomes j
        self._node_rows: dict[int, tuple[int, ...]] = {}  # node number -> its number renamed by each of _perms
        self._least_nodes: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...] | None]] = {}  # `_least`
        self._message_rows: dict[int, tuple[int, ...]] = {}  # message number -> the same
        for i in self.ids:
            self._boot(i)
            self._replicas[i].leader_heard_at = -math.inf  # (the cluster was idle before: see `Bounds.ticks`)
        self.initial = self._initial()

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments that build this model again (with its bounds and replica class)."""
        return {"snapshot_delta": self.snapshot_delta, "max_inflight": self.max_inflight,
                "max_entries": self.max_entries, "symmetry": self.symmetry, "prune_stale": self.prune_stale,
                "one_per_link": self.one_per_link, "pre_vote": self.pre_vote, "read_lease": self.read_lease,
                "rules": self.rules}

    def __repr__(self) -> str:
        return (f"Model({self.bounds}, replica_class={self.replica_class.__name__}, "
                f"snapshot_delta={self.snapshot_delta}, max_entries={self.max_entries}, symmetry={self.symmetry})")

    # ----- decoding -----------------------------------------------------------------------------------
    def node_state(self, state: State, node: int) -> tuple:
        """Node `node`'s saved state in `state`: ``(term, vote, entries, snapshot, volatile, machine)``,
        volatile None while it is down."""
        return self._nodes[state[node]]

    def message(self, number: int) -> tuple[int, Message]:
        """``(destination, message)`` of message `number`."""
        return self._messages[number]

    def in_flight(self, state: State) -> list[tuple[int, Message, int]]:
        """The messages of `state`'s network: ``(destination, message, copies)``."""
        return [(*self._messages[m], c) for m, c in state[len(self.ids)]]

    def replica(self, state: State, node: int) -> Replica | None:
        """Node `node`'s replica loaded with its state in `state` (None if it is down). The object is
        the model's own, reloaded by the next action: read it, do not keep it."""
        saved = self.node_state(state, node)
        if saved[4] is None:
            return None
        self._load(node, saved)
        return self._replicas[node]

    # ----- the node's life ------------------------------------------------------------------------------
    def _boot(self, node: int) -> None:
        """A new replica of `node` on its storage (at the start, and on a restart)."""
        machine = self._machines[node]
        machine.value, machine.applied, machine.pending = 0, 0, []
        replica = self._run_class(
            node, [p for p in self.ids if p != node], self._wires[node], machine, Counter.NOOP, HEARTBEAT, ELECTION,
            self.snapshot_delta, max_inflight=self.max_inflight, storage=self._storages[node], clock=self._clock,
            **({"pre_vote": True} if self.pre_vote else {}),
            **({"check_quorum": True, "read_lease": True, "observer": self._observe} if self.read_lease else {}))
        if len(self._replicas) <= node:
            self._replicas.append(replica)
            self._templates.append({})
            self._known.append(frozenset())
        self._replicas[node] = replica
        self._templates[node] = {k: v for k, v in vars(replica).items() if k not in _VOLATILE and k not in _NOT_STATE}
        self._known[node] = frozenset(self._templates[node]) | _NOT_STATE | frozenset(_VOLATILE)

    def _save(self, node: int) -> int:
        replica, storage, machine = self._replicas[node], self._storages[node], self._machines[node]
        attrs = vars(replica)
        volatile = _save_volatile(attrs, self._timed)
        if not self._rounds:
            volatile = _roundless_volatile(volatile)
        own = attrs.keys() - self._known[node]
        extra = tuple(sorted((k, _freeze(attrs[k])) for k in own)) if own else ()
        log = storage.log
        saved = (storage.current_term, storage.voted_for, tuple(log._entries), log.snapshot, (volatile, extra),
                 (machine.value, machine.applied))
        return self._intern_node(saved)

    def _intern_node(self, saved: tuple) -> int:
        number = self._node_numbers.get(saved)
        if number is None:
            number = self._node_numbers[saved] = len(self._nodes)
            self._nodes.append(saved)
        return number

    def _load(self, node: int, saved: tuple) -> None:
        term, vote, entries, snapshot, (volatile, extra), (value, applied) = saved
        storage = self._storages[node]
        storage.current_term, storage.voted_for = term, vote
        storage.log = _log(snapshot, entries)
        replica = self._replicas[node]
        attrs = vars(replica)
        attrs.clear()
        attrs.update(self._templates[node])
        _load_volatile(attrs, volatile)
        for name, v in extra:
            attrs[name] = _thaw(v)
        attrs["election_deadline"] = attrs["heartbeat_deadline"] = math.inf
        attrs["_time"], attrs["_stopped"] = self._now, None
        machine = self._machines[node]
        machine.value, machine.applied, machine.pending = value, applied, []
        self._wires[node].out.clear()

    def _clock(self) -> float:
        return self._now

    def _time(self, ticks_left: int) -> float:
        """The clock of a state with `ticks_left` ticks left (`Bounds.ticks`)."""
        return (self.bounds.ticks - ticks_left) * TICK

    def _observe(self, event: Event) -> None:
        if event.kind == EventKind.READ_CONFIRMED and event.rule == "RI-LEASE":
            self._leased.append(self._replicas[event.node].quorum_round())

    def _crashed(self, node: int, saved: tuple) -> int:
        """`saved` without its volatile state: the node is down, its storage kept."""
        return self._intern_node((*saved[:4], None, None))

    def _initial(self) -> State:
        nodes = tuple(self._save(i) for i in self.ids)
        b = self.bounds
        budgets = (b.crashes, b.drops, b.duplicates, b.submits, b.transfers, b.changes, b.reads, b.ticks)
        return (*nodes, (), budgets, ((), (), ()))  # (its own representative)

    # ----- actions ---------------------------------------------------------------------------------------
    def actions(self, state: State) -> Iterator[Action]:
        """The actions enabled in `state`, in a fixed order: each message (deliver, drop, duplicate),
        then each node (election timer or heartbeat, submit, crash, restart)."""
        n = len(self.ids)
        crashes, drops, duplicates, submits, transfers, changes, reads, ticks = state[n + 1]
        now = self._now = self._time(ticks)  # (`_torn` runs the replica at this state's time)
        for number, copies in state[n]:
            to = self._messages[number][0]
            yield ("deliver", to, number)
            if crashes and self._torn(state, to, "deliver", number):
                yield ("deliver" + _TORN, to, number)
            if drops:
                yield ("drop", self._messages[number][0], number)
            if duplicates and copies == 1:
                yield ("duplicate", self._messages[number][0], number)
        if ticks:
            yield ("tick", 0, 0)
        for i in self.ids:
            saved = self._nodes[state[i]]
            if saved[4] is None:
                yield ("restart", i, 0)
                continue
            leader = saved[4][0][0] is Role.LEADER
            if leader:
                yield ("heartbeat", i, 0)
                if submits and len(saved[2]) + (saved[3].last_included_index if saved[3] else 0) < self.bounds.max_log:
                    yield ("submit", i, 0)
                if (transfers or changes) and i == self._leader(state):
                    if transfers and saved[4][0][9] is None:
                        for peer in sorted(saved[4][0][16].voters - {i}):
                            yield ("transfer", i, peer)
                    if changes:
                        for member in sorted(saved[4][0][16].members):
                            yield ("remove", i, member)
            elif saved[0] < self.bounds.max_term and (not self._timed or saved[4][0][20] <= now - ELECTION[0]):
                yield ("timeout", i, 0)
                if crashes and self._torn(state, i, "timeout", 0):
                    yield ("timeout" + _TORN, i, 0)
            if reads:
                yield ("read", i, 0)
            if crashes:
                yield ("crash", i, 0)

    def _leader(self, state: State) -> int | None:
        """The leader `Simulation.leader` names: the live leader of the highest term (the least id)."""
        best = None
        for i in self.ids:
            saved = self._nodes[state[i]]
            if saved[4] is not None and saved[4][0][0] is Role.LEADER and (best is None or saved[0] > best[0]):
                best = (saved[0], i)
        return None if best is None else best[1]

    def successors(self, state: State) -> Iterator[tuple[Action, State | Violation | None]]:
        """Each enabled action with what it leads to: a state, a `Violation`, or None (past the bounds)."""
        for action in self.actions(state):
            yield action, self.step(state, action)

    def step(self, state: State, action: Action) -> State | Violation | None:
        """Take `action` in `state`: the next state, a `Violation` the next state shows, or None if the
        next state lies past the bounds. Raises ValueError for an action not enabled in `state`.

        What a node does depends only on its own saved state and its input, so each distinct
        ``(node state, action)`` is run on the replica once and remembered (`_transition`); a step
        then costs dictionary lookups, the network's update and the predicates that involve the
        other nodes."""
        kind, node, number = action
        n = len(self.ids)
        nodes, network, budgets, ghost = list(state[:n]), dict(state[n]), state[n + 1], state[n + 2]
        crashes, submits, reads, ticks = budgets[0], budgets[3], budgets[6], budgets[7]
        self._now = self._time(ticks)
        if kind == "tick":
            if not ticks:
                raise ValueError(f"action {action}: no tick is left")
            return self._state(nodes, network, _spent(budgets, "ticks"), ghost)
        crash_mid = kind.endswith(_TORN)
        if crash_mid:
            kind = kind[:-len(_TORN)]
            if not crashes:
                raise ValueError(f"action {action}: no crash is left")
        if kind in ("deliver", "drop", "duplicate"):
            if network.get(number, 0) < 1 or self._messages[number][0] != node:
                raise ValueError(f"action {action}: message {number} is not in flight to node {node}")
            if kind == "duplicate":
                network[number] += 1
                return self._state(nodes, network, _spent(budgets, "duplicates"), ghost)
            network[number] -= 1
            if not network[number]:
                del network[number]
            if kind == "drop":
                return self._state(nodes, network, _spent(budgets, "drops"), ghost)
        before = state[node]
        if kind == "crash":
            nodes[node] = self._crashed(node, self._nodes[before])
            for m in [m for m in network if self._messages[m][0] == node]:
                del network[m]  # the messages on their way to it are lost
            return self._state(nodes, network, _spent(budgets, "crashes"), ghost)
        if (kind == "restart") != (self._nodes[before][4] is None):
            raise ValueError(f"action {action}: node {node} is " + ("not down" if kind == "restart" else "down"))
        if kind == "submit":
            number = self.bounds.submits - submits + 1  # the submission's id
        elif kind == "read":  # the read's number, and the last entry known committed when it is asked
            frontier = max((index for _, index, _ in ghost[1]), default=0)
            number = (self.bounds.reads - reads + 1) * _READS + frontier
        elif kind == "restart":
            number = node  # (a down node's saved state does not say whose it is; a live one's does)
        left = _spent(budgets, _SPENDS[kind]) if kind in _SPENDS else budgets
        done = self._done(node, before, kind, number)
        if done is None:
            return None
        if isinstance(done, Violation):
            return Violation(done.property, done.detail, action)
        after, out, applied, torn = done
        if crash_mid:
            assert torn is not None, "a torn crash is enabled only where the step has one"
            after, out = torn
            nodes[node] = after
            for m in [m for m in network if self._messages[m][0] == node]:
                del network[m]
            self._send(nodes, network, out)
            return self._state(nodes, network, _spent(budgets, "crashes"), ghost)
        nodes[node] = after
        self._send(nodes, network, out)
        if self.prune_stale:
            for m in [m for m in network if self._stale(m, nodes)]:
                del network[m]
        ghost = self._check(node, before if kind != "restart" else None, after, nodes, ghost, applied)
        if isinstance(ghost, Violation):
            return Violation(ghost.property, ghost.detail, action)
        if self.bounds.max_messages is not None and len(network) > self.bounds.max_messages:
            return None
        return self._state(nodes, network, left, ghost)

    def _send(self, nodes: list[int], network: dict[int, int], out: tuple[tuple[int, int], ...]) -> None:
        """Put the messages `out` of one step in flight: one to a node that is down is lost, an identical
        message in flight absorbs it; with `one_per_link`, it takes the place of the one on its link."""
        for to, m in out:
            if self._nodes[nodes[to]][4] is None:
                continue
            if self.one_per_link and m not in network:
                link = self._links[m]
                for other in [x for x in network if self._links[x] == link]:
                    del network[other]
            network[m] = network.get(m, 0) or 1

    def _stale(self, number: int, nodes: list[int]) -> bool:
        """Whether message `number` is a response of an older term than its receiver's that the
        receiver ignores (delivering it changes nothing and sends nothing): see `prune_stale`."""
        to, message = self._messages[number]
        receiver = nodes[to]
        saved = self._nodes[receiver]
        if saved[4] is None or message.term >= saved[0] or type(message) not in _RESPONSES:
            return False
        key = (receiver, "deliver", number, self._now)
        done = self._transitions.get(key, False)
        if done is False:
            done = self._transitions[key] = self._transition(to, receiver, "deliver", number)
        return isinstance(done, tuple) and done[0] == receiver and not done[1] and not done[2]

    def _done(self, node: int, before: int, kind: str, number: int) -> tuple | Violation | None:
        """`_transition`, remembered."""
        key = (before, kind, number, self._now)
        if key in self._transitions:
            return self._transitions[key]
        done = self._transitions[key] = self._transition(node, before, kind, number)
        return done

    def _torn(self, state: State, node: int, kind: str, number: int) -> bool:
        """Whether `kind` on `node` sends a message before its storage holds what the message says."""
        done = self._done(node, state[node], kind, number)
        return isinstance(done, tuple) and done[3] is not None

    def _transition(self, node: int, before: int, kind: str, number: int) -> tuple | Violation | None:
        """Run `kind` on node `node` in saved state `before` (number: the message, or the submission's
        id): ``(saved state after, ((destination, message number), ...) sent, ((index, transition id),
        ...) applied)``, a `Violation` of a predicate on this node alone, or None past the bounds."""
        saved = self._nodes[before]
        if kind == "restart":
            self._restore_storage(node, saved)
            self._boot(node)
        else:
            self._load(node, saved)
        self._apply_log.clear()
        self._read_log.clear()
        self._leased.clear()
        self._wires[node].out.clear()
        self._wires[node].durable.clear()
        replica = self._replicas[node]
        try:
            if kind == "deliver":
                replica.step(self._messages[number][1])
            elif kind == "timeout":
                replica.campaign()
            elif kind == "heartbeat":
                replica.heartbeat_deadline = self._now
                replica.tick(self._now)
            elif kind == "submit":
                self._machines[node].pending.append(Add(number, 1))
                replica.process_transitions()
            elif kind == "transfer":
                replica.transfer_leadership(number)
            elif kind == "read":
                replica.read(("read", *divmod(number, _READS)))
            elif kind == "remove":
                config = replica.configuration
                self._machines[node].pending.append(Configuration(config.voters - {number},
                                                                  config.learners - {number}))
                replica.process_transitions()
        except ReplicaStopped as stop:
            return Violation("Replica error", f"node {node} raised {stop.__cause__ or stop!r}")
        number_after = self._save(node)
        after = self._nodes[number_after]
        if after[0] > self.bounds.max_term or _last(after) > self.bounds.max_log:
            return None
        wire = self._wires[node]
        sent = [(to, self._intern_message(to, message if self._rounds else _roundless(message)))
                if to in self.ids and to != node else None
                for to, message in wire.out]
        out = tuple(m for m in sent if m is not None)
        applied = tuple((index, tid) for _, index, tid in self._apply_log)
        found = self._check_node(node, None if kind == "restart" else saved, after, applied)
        for read_id, applied_then in self._read_log:  # linearizable reads (RI-*, §6.4); a lease's: see `read_lease`
            if found is None and type(read_id) is tuple and applied_then < read_id[2] and (
                    self._timed or not self.read_lease):
                found = Violation("Linearizable read", f"node {node} answered read #{read_id[1]} from its state "
                                                       f"as of entry {applied_then}, but entry {read_id[2]} was "
                                                       "committed before the read was asked")
        rules = found is None and self.rules
        if rules and any(q < 1 for q in self._leased):
            found = Violation("Read lease (RI-LEASE)", f"leader {node} of term {after[0]} answered a read by its lease "
                                                       "before a majority acknowledged a heartbeat round of its term")
        if rules and kind == "submit" and saved[4][0][9] is not None and _last(after) > _last(saved):
            found = Violation("Transfer (LT-STOP)", f"leader {node}, handing its leadership to {saved[4][0][9]}, "
                                                    f"appended a client's transition at {_last(after)}")
        if rules and found is None and kind == "remove" and _last(after) > _last(saved):
            log = _log(saved[3], saved[2])
            commit = saved[4][0][2]
            if commit <= log.base_index or log.term_at(commit) != saved[0]:
                found = Violation("Configuration change (MC-ONE)", f"leader {node} of term {saved[0]} appended a "
                                                                   "configuration change before an entry of its term "
                                                                   "was committed")
        if rules and found is None and kind == "deliver":
            found = _check_rules(node, saved, after, self._messages[number][1], wire.out,
                                 replica.election_deadline != math.inf, self.read_lease)
        if rules and found is None:
            found = _check_persisted(node, wire.out, wire.durable)
        if found is not None:
            return found
        torn = None  # a crash right after a send that went out before the storage held what it says
        for k, durable in enumerate(wire.durable):
            if durable != after[:4]:
                torn = (self._intern_node((*durable, None, None)), tuple(m for m in sent[:k + 1] if m is not None))
                break
        return (number_after, out, applied, torn)

    def _restore_storage(self, node: int, saved: tuple) -> None:
        storage = self._storages[node]
        storage.current_term, storage.voted_for = saved[0], saved[1]
        storage.log = _log(saved[3], saved[2])

    def _intern_message(self, to: int, message: Message) -> int:
        key = (to, message)
        number = self._message_numbers.get(key)
        if number is None:
            number = self._message_numbers[key] = len(self._messages)
            self._messages.append(key)
            self._links.append((message.from_id, to))
        return number

    def _state(self, nodes: list[int], network: dict[int, int], budgets: tuple, ghost: tuple) -> State:
        state = (*nodes, tuple(sorted(network.items())), budgets, ghost)
        return self.canonical(state) if self.symmetry else state

    # ----- the safety predicates ---------------------------------------------------------------------------
    def _check_node(self, node: int, before: tuple | None, after: tuple,
                    applied: tuple[tuple[int, Hashable], ...]) -> Violation | None:
        """The predicates that one node's transition decides alone: monotonic term and commit index,
        Leader Append-Only, and that it applies indices in order, each once (State Machine Safety); and
        two rules of raft-rules.md: a leader's match index never goes back in its term (L-REPLICATE), and
        a leader commits only up to an entry of its own term (L-COMMIT: older ones only with it)."""
        term, volatile = after[0], after[4][0]
        if before is not None:
            if term < before[0]:
                return Violation("Monotonic term", f"node {node}'s term went from {before[0]} back to {term}")
            if volatile[2] < before[4][0][2]:
                return Violation("Monotonic commit index", f"node {node}'s commit index went from "
                                                           f"{before[4][0][2]} back to {volatile[2]}")
            if volatile[0] is Role.LEADER and before[4][0][0] is Role.LEADER and before[0] == term:
                log, old = _log(after[3], after[2]), _log(before[3], before[2])
                top, base = old.last_index, log.base_index
                if log.last_index < top or (top > base and top > old.base_index and log.entry(top) != old.entry(top)):
                    return Violation("Leader Append-Only", f"leader {node} of term {term} removed or overwrote "
                                                           f"entries (its log ended at {top}, now at {log.last_index})")
                was = dict(before[4][0][5]) if self.rules else {}
                for peer, match in volatile[5]:  # L-REPLICATE: a match index never goes back in a term
                    if match < was.get(peer, 0):
                        return Violation("Match index (L-REPLICATE)", f"leader {node} of term {term} moved its "
                                                                      f"match index for {peer} back from "
                                                                      f"{was[peer]} to {match}")
            if self.rules and volatile[0] is Role.CANDIDATE and term > before[0] and node not in volatile[16].voters:
                return Violation("Non-voter campaign (MC-LEARNER)", f"node {node}, not a voter of its configuration "
                                                                    f"{volatile[16]!r}, stood for term {term}")
            elif self.rules and before[4][0][0] is Role.LEADER and before[0] == term and volatile[2] > before[4][0][2]:
                log, commit, voters = _log(after[3], after[2]), volatile[2], volatile[16].voters
                match = dict(volatile[5])
                held = sum(1 for v in voters if (log.last_index if v == node else match.get(v, 0)) >= commit)
                if 2 * held <= len(voters):  # L-COMMIT, MC-STEPDOWN: a majority of the latest voters (itself if one)
                    return Violation("Commit quorum (L-COMMIT)", f"leader {node} of term {term} committed up to "
                                                                 f"{commit}, held by {held} of the voters "
                                                                 f"{sorted(voters)} only")
            if self.rules and volatile[0] is Role.LEADER and before[0] == term and volatile[2] > before[4][0][2]:
                log, commit = _log(after[3], after[2]), volatile[2]
                if commit > log.base_index and log.term_at(commit) != term:  # L-COMMIT (§5.4.2, Figure 8)
                    return Violation("Commit rule (L-COMMIT)", f"leader {node} of term {term} committed up to entry "
                                                               f"{commit}, of term {log.term_at(commit)}, by counting "
                                                               f"its replicas")
        last = None if before is None else before[5][1]
        for index, _ in applied:
            if last is not None and index != last + 1:
                again = "again" if index <= last else "out of order"
                return Violation("State Machine Safety", f"node {node} applied index {index} {again}, after "
                                                         f"index {last}")
            last = index
        return None

    def _check(self, node: int, before: int | None, after_number: int, nodes: list[int], ghost: tuple,
               applied_now: tuple[tuple[int, Hashable], ...]) -> tuple | Violation:
        """The predicates that involve the other nodes or the history (the ghost), on node `node`, the
        only one the action changed; returns the new ghost."""
        leaders, committed, applied = ghost
        after = self._nodes[after_number]
        term, volatile = after[0], after[4][0]
        role, commit = volatile[0], volatile[2]
        if role is Role.LEADER:
            other = next((m for t, m in leaders if t == term and m != node), None)
            if other is not None:
                return Violation("Election Safety", f"nodes {other} and {node} are both leaders of term {term}")
            if (term, node) not in leaders:
                leaders = tuple(sorted((*leaders, (term, node))))
            was = None if before is None else self._nodes[before]
            if was is None or was[4][0][0] is not Role.LEADER or was[0] != term:  # a new leader: Leader Completeness
                log = _log(after[3], after[2])
                for t, index, c_term in committed:
                    if t < term and index > log.base_index and log.term_at(index) != c_term:
                        return Violation("Leader Completeness", f"node {node} leads term {term} without the "
                                                                f"committed entry {index} of term {c_term}")
        if role is Role.LEADER and self.rules:
            for peer, match in volatile[5]:
                if match > 0:
                    pair = (after_number, peer, nodes[peer])
                    if pair in self._matched:
                        held = self._matched[pair]
                    else:
                        held = self._matched[pair] = self._match_held(node, after, peer, self._nodes[nodes[peer]],
                                                                      match)
                    if held is not None:
                        return held
        if before is None or self._nodes[before][2:4] != after[2:4]:  # Log Matching, if its log changed
            for other in self.ids:
                if other != node:
                    pair = (after_number, other, nodes[other])
                    if pair in self._matching:
                        found = self._matching[pair]
                    else:
                        found = self._matching[pair] = self._log_matching(node, after, other,
                                                                          self._nodes[nodes[other]])
                    if found is not None:
                        return found
        if commit > 0:
            c_term = _log(after[3], after[2]).term_at(commit)
            known = next((c for c in committed if c[0] == term), None)
            if c_term is not None and (known is None or commit > known[1]):
                committed = tuple(sorted((*(c for c in committed if c[0] != term), (term, commit, c_term))))
        for index, transition_id in applied_now:  # State Machine Safety: the same transition at each index
            if index <= len(applied):
                if applied[index - 1] != transition_id:
                    return Violation("State Machine Safety", f"node {node} applied {transition_id!r} at index "
                                                             f"{index}, where {applied[index - 1]!r} was applied")
            elif index == len(applied) + 1:
                applied = (*applied, transition_id)
        return (leaders, committed, applied)

    def _match_held(self, node: int, ours: tuple, peer: int, saved: tuple, match: int) -> Violation | None:
        """L-REPLICATE: a leader's match index for a peer is what the peer's log holds of the leader's:
        while the peer is in the leader's term (its log then changes only by that leader's requests),
        its entry at the match index is the leader's (unless a snapshot covers it)."""
        if saved[0] != ours[0]:
            return None
        log, theirs = _log(ours[3], ours[2]), _log(saved[3], saved[2])
        if match <= theirs.base_index or match <= log.base_index:
            return None
        if match > theirs.last_index or match > log.last_index or theirs.term_at(match) != log.term_at(match):
            held = "no entry" if match > theirs.last_index else f"entry {_entry(theirs.entry(match))}"
            return Violation("Match index (L-REPLICATE)", f"leader {node} of term {ours[0]} counts entry {match} as "
                                                          f"held by {peer}, which holds {held} there")
        return None

    def _log_matching(self, node: int, ours: tuple, other: int, saved: tuple) -> Violation | None:
        """Log Matching between node `node`'s saved log and `other`'s: where both hold an entry of the
        same index and term, the entries up to there are the same (where both still hold them)."""
        log, theirs = _log(ours[3], ours[2]), _log(saved[3], saved[2])
        low = max(log.base_index, theirs.base_index)
        top = min(log.last_index, theirs.last_index)
        while top > low and log.term_at(top) != theirs.term_at(top):
            top -= 1
        for index in range(top, low, -1):
            mine, their = log.entry(index), theirs.entry(index)
            if mine != their:
                return Violation("Log Matching", f"nodes {node} and {other} both hold an entry of term "
                                                 f"{log.term_at(top)} at index {top}, but differ at index {index}: "
                                                 f"{_entry(mine)} and {_entry(their)}")
        return None

    # ----- symmetry ----------------------------------------------------------------------------------------
    def canonical(self, state: State) -> State:
        """The representative of `state` under renamings of the nodes: the least, by node and message
        numbers, of the states the renamings give (all nodes are alike at the start, so a renamed run
        is a run). A state in which a subclass keeps attributes of its own is its own representative
        (they may hold node ids that the model cannot rename)."""
        n = len(self.ids)
        key = state[:n]
        found = self._least_nodes.get(key)
        if found is None:
            found = self._least_nodes[key] = self._least(key)
        best_nodes, ties = found
        if ties is None:
            return state
        return min(state if k < 0 else self._renamed_fast(state, k, best_nodes) for k in ties)

    def _least(self, nodes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """The least renaming of the node numbers `nodes`, and the renamings that give it (indices into
        `_perms`, -1 for none); None for those if `nodes` itself is least alone, or cannot be renamed."""
        rows = self._node_rows
        node_rows = []
        for number in nodes:
            row = rows.get(number)
            if row is None:
                row = rows[number] = self._node_row(number)
            if not row:
                return nodes, None
            node_rows.append(row)
        best_nodes, ties = nodes, [-1]  # (-1: the state as it is)
        for k, inverse in enumerate(self._inverses):  # the nodes first: the network only breaks a tie
            renamed = tuple([node_rows[i][k] for i in inverse])
            if renamed < best_nodes:
                best_nodes, ties = renamed, [k]
            elif renamed == best_nodes:
                ties.append(k)
        return best_nodes, (None if ties == [-1] else tuple(ties))

    def _node_row(self, number: int) -> tuple[int, ...]:
        """Node state `number` renamed by each renaming of `_perms`, in order (empty: it cannot be)."""
        row = []
        for perm in self._perms:
            saved = _rename_node(self._nodes[number], perm)
            if saved is None:
                return ()
            row.append(self._intern_node(saved))
        return tuple(row)

    def _renamed_fast(self, state: State, k: int, nodes: tuple[int, ...]) -> State:
        """`state` renamed by `_perms[k]`, its renamed nodes `nodes` given."""
        n = len(self.ids)
        rows = self._message_rows
        network = []
        for number, copies in state[n]:
            row = rows.get(number)
            if row is None:
                to, message = self._messages[number]
                row = rows[number] = tuple(self._intern_message(perm[to], _rename_message(message, perm))
                                           for perm in self._perms)
            network.append((row[k], copies))
        network.sort()
        leaders, committed, applied = state[n + 2]
        if leaders:
            perm = self._perms[k]
            leaders = tuple(sorted([(t, perm[m]) for t, m in leaders]))
        return (*nodes, tuple(network), state[n + 1], (leaders, committed, applied))

    def _renamed_nodes(self, state: State, perm: tuple[int, ...]) -> tuple[int, ...] | None:
        """The node numbers of `state` renamed by `perm` (node i becomes perm[i]), or None."""
        out = [0] * len(perm)
        cache = self._node_renames
        for i, number in enumerate(state[:len(perm)]):
            key = (number, perm)
            renamed = cache.get(key)
            if renamed is None:
                saved = _rename_node(self._nodes[number], perm)
                renamed = cache[key] = -1 if saved is None else self._intern_node(saved)
            if renamed < 0:
                return None
            out[perm[i]] = renamed
        return tuple(out)

    def _renamed(self, state: State, perm: tuple[int, ...], nodes: tuple[int, ...]) -> State:
        n = len(perm)
        cache = self._message_renames
        network = []
        for number, copies in state[n]:
            key = (number, perm)
            renamed = cache.get(key)
            if renamed is None:
                to, message = self._messages[number]
                renamed = cache[key] = self._intern_message(perm[to], _rename_message(message, perm))
            network.append((renamed, copies))
        leaders, committed, applied = state[n + 2]
        ghost = (tuple(sorted((t, perm[m]) for t, m in leaders)), committed, applied)
        return (*nodes, tuple(sorted(network)), state[n + 1], ghost)

    @contextmanager
    def plain(self) -> Iterator[Model]:
        """Within it, states are not replaced by their representatives (actions are concrete)."""
        symmetry, self.symmetry = self.symmetry, False
        try:
            yield self
        finally:
            self.symmetry = symmetry

    def concrete_action(self, concrete: State, action: Action) -> Action:
        """`action`, taken in the representative of the `concrete` state, as the same action taken in
        `concrete` itself (its node and message renamed back)."""
        if not self.symmetry:
            return action
        perm = self.renaming(concrete, self.canonical(concrete))
        back = [0] * len(perm)
        for i, j in enumerate(perm):
            back[j] = i
        kind, node, number = action
        if kind == "tick":
            return action  # (no node's)
        if kind in _MESSAGE_ACTIONS:
            to, message = self._messages[number]
            number = self._intern_message(back[to], _rename_message(message, tuple(back)))
        elif kind in ("transfer", "remove"):
            number = back[number]  # (the target is a node)
        return (kind, back[node], number)

    def concrete_run(self, actions: Iterable[Action], start: State | None = None) -> list[Action]:
        """A run found with symmetry (each action taken in the representative of the state before it)
        as concrete actions from `start` (a concrete state; the initial state by default)."""
        state = self.initial if start is None else start
        out = []
        for action in actions:
            concrete = self.concrete_action(state, action)
            out.append(concrete)
            with self.plain():
                nxt = self.step(state, concrete)
            if not isinstance(nxt, tuple):
                break
            state = nxt
        return out

    def portable(self, actions: Iterable[Action]) -> list[tuple]:
        """`actions` with each message number replaced by its ``(destination, message)``: a run that
        another model of the same bounds (in another process) can take (`from_portable`)."""
        return [(k, node, self._messages[x] if k in _MESSAGE_ACTIONS else x) for k, node, x in actions]

    def from_portable(self, actions: Iterable[tuple]) -> list[Action]:
        """The actions of a `portable` run, in this model's numbering."""
        return [(k, node, self._intern_message(*x) if k in _MESSAGE_ACTIONS else x) for k, node, x in actions]

    def renaming(self, concrete: State, canonical: State) -> tuple[int, ...]:
        """A renaming `perm` of the nodes that takes the `concrete` state to `canonical` (its
        representative); ValueError if there is none."""
        n = len(self.ids)
        for perm in ((*self.ids,), *self._perms):
            nodes = self._renamed_nodes(concrete, perm)
            if nodes is not None and (concrete if perm == self.ids else self._renamed(concrete, perm, nodes)) \
                    == canonical:
                return perm
        raise ValueError(f"no renaming of the {n} nodes takes the state to the one given")

    # ----- coverage ----------------------------------------------------------------------------------------
    def reached(self, state: State) -> Iterable[str]:
        """The "sometimes" predicates that `state` satisfies (see `coverage_goals`)."""
        n = len(self.ids)
        leaders, _, applied = state[n + 2]
        if leaders:
            yield "leader elected"
        if len({t for t, _ in leaders}) > 1:
            yield "second term led"
        if any(type(a) is int for a in applied):
            yield "client entry committed"
        if self.bounds.changes and any(type(a) is tuple for a in applied):
            yield "configuration change committed"
        if any(self._nodes[state[i]][4] is None for i in self.ids):
            yield "node crashed"
        if self.snapshot_delta and any(self._nodes[state[i]][3] is not None for i in self.ids):
            yield "snapshot taken"

    @property
    def coverage_goals(self) -> tuple[str, ...]:
        """The "sometimes" predicates a search of this model should reach (given its bounds)."""
        goals = ["leader elected"]
        if self.bounds.max_term >= 2:
            goals.append("second term led")
        if self.bounds.submits:
            goals.append("client entry committed")
        if self.bounds.changes:
            goals.append("configuration change committed")
        if self.bounds.crashes:
            goals.append("node crashed")
        if self.snapshot_delta:
            goals.append("snapshot taken")
        return tuple(goals)

    def describe(self, action: Action) -> str:
        """One line saying what `action` does."""
        return describe_action(action, self._messages)


_FROM_LEADER = (AppendEntryRequest, InstallSnapshotRequest)


def _check_rules(node: int, before: tuple, after: tuple, message: Message, sent: list[tuple[int, Message]],
                 timer_reset: bool, sticky: bool = False) -> Violation | None:
    """The rules of raft-rules.md that one delivery decides and that the safety properties do not
    judge (a replica that breaks them is slow or disrupts the cluster, and may also be unsafe):

    - ALL-TERM: a message of a term above the receiver's makes the receiver take that term (but a
      pre-vote request, a granted pre-vote, which carries the term asked for, and, with CheckQuorum
      (`sticky`), a vote request a leader ignores: CQ-STICKY);
    - RV-GRANT, RV-STALE: a vote is granted exactly when Raft grants it (`_check_vote`);
    - AE-CHECK: a refused AppendEntries leaves the log as it was;
    - PV-GRANT: a pre-vote request never changes the receiver's term or vote;
    - F-TIMEOUT: the election timer is reset only by an AppendEntries (or InstallSnapshot) from the
      current leader or by granting a vote (or by a change of role: a leader stepping down, a new
      election).
    """
    term = getattr(message, "term", 0)
    exempt = type(message) is PreVoteRequest or (type(message) is PreVoteResponse and message.vote_granted) or (
        sticky and type(message) is VoteRequest and not message.transfer and not sent)
    if term > before[0] and after[0] < term and not exempt:
        return Violation("Term adoption (ALL-TERM)", f"node {node} of term {before[0]} received "
                                                    f"{type(message).__name__} of term {term} from "
                                                    f"{message.from_id} and stayed in term {after[0]}")
    if type(message) is PreVoteRequest and after[:2] != before[:2]:
        return Violation("Pre-vote (PV-GRANT)", f"node {node} changed its term or vote (term {before[0]}, vote "
                                                f"{before[1]} -> term {after[0]}, vote {after[1]}) on a pre-vote "
                                                f"request from {message.from_id}")
    if type(message) is VoteRequest:
        found = _check_vote(node, before, after, message, sent)
        if found is not None:
            return found
    if type(message) is AppendEntryRequest and after[2:4] != before[2:4] and after[0] == message.term and any(
            type(m) is AppendEntryResponse and not m.success for _, m in sent):
        return Violation("Refusal (AE-CHECK)", f"node {node} refused {message.from_id}'s AppendEntries after "
                                               f"{message.prev_log_index}/term {message.prev_log_term} and changed "
                                               f"its log (it ended at {_last(before)}, now at {_last(after)})")
    if timer_reset:
        was, now = before[4][0], after[4][0]
        heard = isinstance(message, _FROM_LEADER) and now[1] == message.from_id and after[0] == message.term
        granted = any(type(m) is VoteResponse and m.vote_granted for _, m in sent)
        role_changed = was[0] is Role.LEADER or (now[0] is Role.CANDIDATE and after[0] > before[0]) \
            or (now[8] is not None and was[8] is None)
        if not (heard or granted or role_changed):
            return Violation("Election timer reset (F-TIMEOUT)", f"node {node} ({now[0].value}, term {after[0]}) "
                                                                 f"reset its election timer on "
                                                                 f"{type(message).__name__} from {message.from_id}, "
                                                                 "neither from the current leader nor a vote granted")
    return None


def _check_vote(node: int, before: tuple, after: tuple, m: VoteRequest,
                sent: list[tuple[int, Message]]) -> Violation | None:
    """RV-GRANT (with RV-STALE): the vote is granted exactly when the request's term is the voter's
    (after ALL-TERM), the voter has not voted for another in it, and the candidate's log is at least as
    up to date: a higher last term, or the same last term and a last index at least as large (§5.4.1)."""
    answer = next((r for to, r in sent if to == m.from_id and type(r) is VoteResponse), None)
    if answer is None:
        return None  # (not answered: dropped, CQ-STICKY)
    log = _log(before[3], before[2])
    voted = before[1] if before[0] == m.term else None
    up_to_date = (m.last_log_term, m.last_log_index) >= (log.last_term, log.last_index)
    grant = after[0] == m.term and voted in (None, m.from_id) and up_to_date
    if answer.vote_granted == grant:
        return None
    why = (f"the request's term is behind its {after[0]}" if m.term < after[0] else
           f"it had voted for {voted} in that term" if voted not in (None, m.from_id) else
           f"the candidate's log (last term {m.last_log_term}, index {m.last_log_index}) "
           f"{'is' if up_to_date else 'is not'} at least as up to date as its own (last term {log.last_term}, "
           f"index {log.last_index})")
    return Violation("Vote rule (RV-GRANT)", f"node {node} {'granted' if answer.vote_granted else 'refused'} its "
                                             f"vote to {m.from_id} in term {m.term}, though {why}")


def _check_persisted(node: int, sent: list[tuple[int, Message]], durable: list[tuple]) -> Violation | None:
    """Figure 2, "Persistent state": what a message tells is on stable storage before it goes out:
    the sender's term; a candidate's vote for itself (C-START); a granted vote (RV-GRANT); the entries a
    follower acknowledges (AE-APPEND). (A pre-vote carries the term asked for, not the sender's.)"""
    for (to, m), (term, vote, entries, snapshot) in zip(sent, durable, strict=True):
        kind = type(m)
        if kind is PreVoteRequest or kind is PreVoteResponse:
            continue
        rule, what = None, ""
        if kind is VoteRequest and (term, vote) != (m.term, node):
            rule, what = "C-START", f"term {term}, vote {vote} (not term {m.term}, vote {node})"
        elif isinstance(m, VoteResponse) and m.vote_granted and (term, vote) != (m.term, to):
            rule, what = "RV-GRANT", f"term {term}, vote {vote} (not term {m.term}, vote {to})"
        elif m.term > term:
            rule, what = "ALL-TERM", f"term {term}"
        elif isinstance(m, AppendEntryResponse) and m.success and _last((0, 0, entries, snapshot)) < m.last_index:
            rule, what = "AE-APPEND", f"entries up to {_last((0, 0, entries, snapshot))}"
        if rule is not None:
            return Violation(f"Persist before sending ({rule})", f"node {node} sent {kind.__name__} of term {m.term} "
                                                                 f"to {to} while its storage held {what}")
    return None


def _entry(entry: LogEntry) -> str:
    transition = entry.transition
    what = "no-op" if transition == Counter.NOOP else (repr(transition) if isinstance(transition, Configuration)
                                                      else f"add {transition.delta} (#{transition.id})")
    return f"{entry.index}/term {entry.term} ({what})"


def describe_action(action: Action, messages: list[tuple[int, Message]] | None = None) -> str:
    """One line saying what `action` does (`messages`: the model's message table, to name the message)."""
    from ..sim.trace import describe
    kind, node, number = action
    torn = kind.endswith(_TORN)
    if torn:
        kind = kind[:-len(_TORN)]
    if kind in ("deliver", "drop", "duplicate") and messages is not None:
        to, message = messages[number]
        verb = {"deliver": "deliver", "drop": "lose", "duplicate": "duplicate"}[kind]
        text = f"{verb} {describe(message)} from {message.from_id} to {to}"
    else:
        text = _ACTIONS.get(kind, "{kind} {node} {number}").format(kind=kind, node=node, number=number)
    return text + (f"; node {node} crashes right after sending, before its storage is written" if torn else "")


_ACTIONS = {"timeout": "node {node}'s election timer fires", "heartbeat": "leader {node}'s heartbeat timer fires",
            "crash": "node {node} crashes", "restart": "node {node} restarts from its storage",
            "submit": "a client submits a transition to leader {node}",
            "transfer": "leader {node} is asked to hand its leadership to {number}",
            "remove": "leader {node} is asked to remove {number} from the configuration",
            "read": "a client asks node {node} for a linearizable read",
            "tick": f"time passes ({TICK:g} s)"}


def _rename_node(saved: tuple, perm: tuple[int, ...]) -> tuple | None:
    """A node's saved state with every node id renamed by `perm` (None: a subclass's own attributes,
    which may hold ids). Dicts keyed by peer come out in the peers' order, as the core fills them."""
    def r(x: int | None) -> int | None:
        return None if x is None else perm[x]
    term, vote, entries, snapshot, rest, machine = saved
    entries = tuple(_rename_entry(e, perm) for e in entries)
    if snapshot is not None and snapshot.configuration is not None:
        snapshot = Snapshot(snapshot.last_included_index, snapshot.last_included_term, snapshot.data,
                            _rename_config(snapshot.configuration, perm))
    if rest is None:
        return (term, r(vote), entries, snapshot, None, None)
    v, extra = rest
    if extra:
        return None
    by_peer = sorted
    volatile = (v[0], r(v[1]), v[2], v[3], tuple(by_peer((perm[k], x) for k, x in v[4])),
                tuple(by_peer((perm[k], x) for k, x in v[5])), tuple(by_peer((perm[p[0]], *p[1:]) for p in v[6])),
                frozenset(perm[k] for k in v[7]), None if v[8] is None else frozenset(perm[k] for k in v[8]), r(v[9]),
                v[10], v[11], v[12], v[13], v[14], tuple((i, perm[o], rd, x) for i, o, rd, x in v[15]),
                _rename_config(v[16], perm), v[17], tuple(sorted(perm[k] for k in v[18])),
                frozenset(perm[k] for k in v[19]), v[20])
    return (term, r(vote), entries, snapshot, (volatile, ()), machine)


def _rename_config(config: Configuration, perm: tuple[int, ...]) -> Configuration:
    return Configuration(frozenset(perm[k] for k in config.voters), frozenset(perm[k] for k in config.learners))


def _rename_entry(entry: LogEntry, perm: tuple[int, ...]) -> LogEntry:
    if isinstance(entry.transition, Configuration):
        return LogEntry(_rename_config(entry.transition, perm), entry.index, entry.term)
    return entry


def _rename_message(message: Message, perm: tuple[int, ...]) -> Message:
    changes: dict[str, Any] = {"from_id": perm[message.from_id]}
    entries = getattr(message, "entries", None)
    if entries:
        changes["entries"] = tuple(_rename_entry(e, perm) for e in entries)
    config = getattr(message, "configuration", None)
    if config is not None:
        changes["configuration"] = _rename_config(config, perm)
    return replace(message, **changes)


def _spent(budgets: tuple[int, ...], name: str) -> tuple[int, ...]:
    """`budgets` (a state's, `_BUDGETS`) with one `name` spent."""
    k = _BUDGET[name]
    return (*budgets[:k], budgets[k] - 1, *budgets[k + 1:])


def _last(saved: tuple) -> int:
    """The last log index of a saved node state."""
    return len(saved[2]) + (saved[3].last_included_index if saved[3] else 0)
