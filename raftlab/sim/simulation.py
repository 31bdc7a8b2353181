"""The deterministic simulation: real `Replica`s on an in-memory network, in virtual time.

One seed decides everything (timers, latency, loss, duplication); the same seed and the same
interventions give the same run, event for event. Time is held in integer microseconds.

This module holds the event loop and the interventions on nodes; pauses and the network's faults are
in `faults`, the clients' requests (transitions, transfers, reads) and clocks in `control`, adding and
removing nodes in `membership` (base classes), a node's parts in `node`, the client's handle in
`submission`, going back and forking in `history`, and what renderers read in `frame`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter as Tally
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, NamedTuple

from ..core import Event, Message, MemoryStorage, Replica, Role
from .control import Control, check_options
from .faults import _RESUME, Faults, _us
from .frame import Frame
from .history import Branch, History
from .invariants import InvariantChecker
from .membership import Membership
from .network import NetworkModel, wire_size
from .node import MachineTap, ReplicaView, SimCluster
from .submission import ReadRequest, Submission
from .trace import SIM, SimKind, Trace, TraceEvent

_DELIVER, _TIMER = 0, 1  # (and faults._RESUME = 2)
_new = tuple.__new__  # makes a named tuple from a tuple of its fields, without its __new__'s Python call
_US = 1_000_000


class _Generator(random.Random):
    """A `random.Random` whose copy (in a checkpoint) takes its state whole: a tuple of 625 ints,
    immutable, where `copy.deepcopy` would copy them one by one (most of a small checkpoint's time)."""

    def __deepcopy__(self, memo: dict) -> _Generator:
        clone = _Generator(0)
        clone.setstate(self.getstate())
        return clone


class InFlight(NamedTuple):
    """A message on its way (an immutable record)."""

    id: int  # unique per simulation
    source: int
    destination: int
    message: Message
    sent: int  # virtual time sent, microseconds
    arrives: int  # virtual time of arrival, microseconds
    copy: bool = False  # a duplicate made by the network

    def __deepcopy__(self, memo: dict) -> InFlight:
        return self  # immutable: checkpoints share it


class Simulation(Faults, Control, Membership):
    """A Raft cluster of `n` real `Replica`s on a simulated network, in virtual time.

    Args:
        n: number of nodes, with ids ``0 .. n-1`` (`add_node` adds more: `ids` and `n` grow).
        seed: decides every random choice of the run.
        heartbeat_timeout, election_timeout: as for `Replica` (seconds).
        network: a `NetworkModel` (default: 5-15 ms latency, no loss).
        state_machine: a class or factory making each node's state machine (default `KVStore`): any
            object with the six methods of the core `StateMachine` protocol (the simulation queues
            the submitted transitions itself).
        snapshot_delta: as for `Replica`.
        noop_transition: the leaders' no-op (default: ``state_machine.NOOP``).
        check_invariants: check Raft's safety properties after every step.
        replica_class: the `Replica` class to run (tests pass deliberately broken subclasses).
        checkpoint_every: the least number of steps between the checkpoints `rewind` starts from
            (more as the state grows, so that checkpoints stay a small share of the work).
        record_trace: record the run's history: the trace and the checkpoints of `rewind` (default).
            False leaves `trace` empty, gives the replicas no observer and takes no checkpoints (so
            `rewind` raises), for bulk experiments that read only the cluster's state, such as
            `raftlab.sim.figure16`: a short run is several times faster. Everything else is unchanged.
        options: passed on to every `Replica`: ``max_inflight``, ``pre_vote``, ``check_quorum``,
            ``read_lease``, ``drift_bound`` (see `Replica`), for example ``pre_vote=True``.
    """

    # The state of the run: what a checkpoint of the `history` copies (and `rewind` restores).
    _STATE = ("_replicas", "_storages", "_taps", "_clusters", "_queue", "_timers", "_incarnation", "_rng",
              "_cut", "_drop_next", "_in_flight", "network", "now_us", "steps", "_seq", "_message_ids",
              "submissions", "checker", "counters", "_paused", "_parked", "reads", "_read_seq", "_clocks",
              "ids", "n", "replicas", "_boot_args", "changes", "_removed", "_retiring", "_committed",
              "_committed_at", "_were_members")

    def __init__(self, n: int = 5, seed: int = 1, heartbeat_timeout: float = 0.05,
                 election_timeout: tuple[float, float] = (0.15, 0.30), network: NetworkModel | None = None,
                 state_machine: Callable[[], Any] | None = None, snapshot_delta: int = 0, *,
                 noop_transition: Any = None, check_invariants: bool = True,
                 replica_class: type[Replica] = Replica, checkpoint_every: int = 5000,
                 record_trace: bool = True, **options: Any) -> None:
        if type(n) is not int or n < 1:
            raise ValueError(f"n must be a positive int, not {n!r}")
        if type(seed) is not int:
            raise ValueError(f"seed must be an int, not {seed!r}")
        if network is not None and not isinstance(network, NetworkModel):
            raise ValueError(f"network must be a NetworkModel, not {network!r}")
        check_options(options)
        if type(checkpoint_every) is not int or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive int, not {checkpoint_every!r}")
        if state_machine is None:
            from ..machines import KVStore
            state_machine = KVStore
        noop = noop_transition if noop_transition is not None else getattr(state_machine, "NOOP", None)
        if noop is None:
            raise ValueError("noop_transition is required when state_machine has no NOOP attribute")
        timeout = tuple(election_timeout)
        if len(timeout) != 2:
            raise ValueError(f"election_timeout must be a pair (low, high), not {election_timeout!r}")
        self.n, self.seed, self.ids = n, seed, tuple(range(n))
        self.heartbeat_timeout = heartbeat_timeout
        self.election_timeout: tuple[float, float] = (timeout[0], timeout[1])
        self.snapshot_delta, self.noop = snapshot_delta, noop
        self.state_machine, self.replica_class = state_machine, replica_class  # what each node runs
        self.options = dict(options)  # passed on to every Replica (pre_vote, check_quorum, ...)
        self.record_trace = bool(record_trace)
        self.trace = Trace()
        self.history = History(self, checkpoint_every, enabled=self.record_trace)
        # ---- the state of the run (everything in _STATE is checkpointed by the history)
        self.now_us = 0  # virtual time, microseconds
        self.steps = 0  # steps taken
        self._seq = 0  # tie-breaker for the event queue (and so, determinism)
        self._message_ids = 0
        self._queue: list[tuple] = []  # (time, seq, kind, a, b)
        self._rng = _Generator(f"network/{seed}")
        self.network = network if network is not None else NetworkModel()
        self.made: dict[str, Any] = {  # how it was made, but for its classes (`raftlab.sim.share`)
            "n": n, "seed": seed, "heartbeat_timeout": heartbeat_timeout, "election_timeout": self.election_timeout,
            "snapshot_delta": snapshot_delta, "check_invariants": check_invariants, "options": dict(options),
            "network": (self.network.latency, self.network.drop, self.network.duplicate, [
                (s, d, (link.latency, link.drop, link.duplicate)) for (s, d), link in self.network.links.items()])}
        self.network.on_change = self._network_changed
        self._cut: set[tuple[int, int]] = set()
        self._drop_next: Tally = Tally()
        self._in_flight: dict[int, InFlight] = {}
        self._paused: dict[int, int] = {}  # paused node -> when it resumes, microseconds
        self._parked: dict[int, list[int]] = {}  # paused node -> the messages waiting for it, in arrival order
        self.counters: dict[str, Tally] = {"messages": Tally(), "bytes": Tally(), "dropped": Tally()}
        self.submissions: dict[Hashable, Submission] = {}
        self.reads: dict[Hashable, ReadRequest] = {}  # the reads asked with `read`, by id
        self._read_seq = 0
        self._clocks: dict[int, tuple[int, float, float]] = {}  # node -> (since, its time then, rate)
        self.checker = InvariantChecker() if check_invariants else None
        if self.checker is not None:
            self.checker.sim = self
        self._incarnation = dict.fromkeys(self.ids, 0)
        self._timers: dict[int, float] = dict.fromkeys(self.ids, math.inf)  # armed: microseconds; else inf
        self._storages = {i: MemoryStorage() for i in self.ids}
        self._replicas: dict[int, Replica | None] = dict.fromkeys(self.ids)
        self._taps: dict[int, MachineTap] = {}
        self._clusters: dict[int, SimCluster] = {}
        self.replicas = tuple(ReplicaView(self, i) for i in self.ids)  # read-only views
        self._boot_args = {i: (tuple(p for p in self.ids if p != i), False) for i in self.ids}  # (peers, learner)
        self._init_membership()
        # Validate the Replica arguments once, with a clear error, before anything runs.
        for i in self.ids:
            self._boot(i)
        self.history.checkpoint()

    def __repr__(self) -> str:
        return (f"Simulation(n={self.n}, seed={self.seed}, time={self.now:.4f}s, steps={self.steps}, "
                f"leader={self.leader()})")

    # ----- reading ---------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Virtual time, seconds."""
        return self.now_us / _US

    def leader(self) -> int | None:
        """The live leader of the highest term, or None."""
        best = None
        for i, r in self._replicas.items():
            if r is not None and r.role is Role.LEADER and (best is None or r.current_term > best[0]):
                best = (r.current_term, i)
        return None if best is None else best[1]

    def in_flight(self) -> list[InFlight]:
        """Messages on their way, by arrival time."""
        return sorted(self._in_flight.values(), key=lambda m: (m.arrives, m.id))

    def frame(self) -> Frame:
        """An immutable copy of everything a renderer needs (`Frame`)."""
        return Frame.of(self)

    @property
    def history_end(self) -> int:
        """The furthest step this history has reached (for a time slider); see `rewind`."""
        return self.history.end

    # ----- running ---------------------------------------------------------------------------
    def step(self, until: float = math.inf) -> TraceEvent | None:
        """Take one step: deliver the next message or fire the next timer, if that happens no later
        than `until` (virtual seconds). Returns its trace event, or None if nothing happens by then."""
        history = self.history
        if history.future or self.steps >= history.next_checkpoint:
            history.before_step()  # replay a rewound history's interventions, take a checkpoint
        queue, limit = self._queue, math.inf if until == math.inf else _us(until)
        paused = self._paused
        while queue and queue[0][0] <= limit:
            time, _, kind, a, b = heapq.heappop(queue)
            if kind == _TIMER:
                replica = self._replicas[a]
                if b != self._incarnation[a] or time != self._timers[a] or replica is None:
                    continue  # a timer of an earlier incarnation, or superseded by an earlier one
                self._timers[a] = math.inf
                if paused and a in paused:
                    continue  # a paused process's timers do not fire: re-armed when it resumes
                local = self.local_time(a, time)
                if replica.next_deadline > local + 1e-9:
                    self._arm(a, replica)  # the deadline moved later since: no event, wait for it
                    continue
                self._advance(time)
                which = "heartbeat" if replica.role is Role.LEADER else "election"
                event = self._record(SimKind.TIMER, a, SIM, which=which)
                replica.tick(max(local, replica.next_deadline))
                self._after(a)
                return event
            if kind == _RESUME:
                resumed = self._resume(a, b, time)
                if resumed is None:
                    continue  # a pause superseded by another, or ended by a crash
                return resumed
            flight = self._in_flight.pop(a, None)
            if flight is None:
                continue  # lost already (its receiver crashed), or dropped or delivered by hand
            arrived = self._arrive(flight, b, time)
            if arrived is None:
                continue  # it waits for its paused receiver
            return arrived
        return None

    def run(self, seconds: float) -> int:
        """Advance virtual time by `seconds`; returns the number of steps taken."""
        end, start = self.now_us + _us(seconds), self.steps
        until = end / _US
        while self.step(until) is not None:  # (`step`, which a subclass may extend: a grader's event budget)
            pass
        self.now_us = max(self.now_us, end)
        return self.steps - start

    def run_until(self, predicate: Callable[[Simulation], bool], timeout: float = 10.0) -> int:
        """Step until `predicate(sim)` is true or `timeout` virtual seconds have passed. Returns the
        steps taken; check `predicate` yourself afterwards to tell which happened."""
        end, start = self.now_us + _us(timeout), self.steps
        until = end / _US
        while not predicate(self):
            if self.step(until) is None:
                self.now_us = max(self.now_us, end)
                break
        return self.steps - start

    # ----- interventions (recorded, so that rewind can replay them) ----------------------------
    def crash(self, node: int) -> None:
        """Crash `node`: its volatile state and the messages on their way to it are lost."""
        self._check_node(node)
        self.history.log("crash", node)
        if self._replicas[node] is not None:
            self._halt(node, SimKind.CRASH)

    def restart(self, node: int) -> None:
        """Restart a crashed `node`: a new `Replica` on its kept storage, with a new state machine
        that the replica rebuilds from the snapshot and the log. A removed node stays down."""
        self._check_node(node)
        self.history.log("restart", node)
        if self._replicas[node] is not None or node in self._removed:
            return
        self._boot(node)
        s = self._storages[node]
        self._record(SimKind.RESTART, node, SIM, term=s.current_term, entries=s.log.last_index)

    def force_timeout(self, node: int) -> None:
        """Make `node`'s election timer fire now: it becomes a candidate (unless it is leader or down)."""
        self._check_node(node)
        self.history.log("force_timeout", node)
        replica = self._replicas[node]
        if replica is None or replica.role is Role.LEADER or node in self._paused:
            return
        self._record(SimKind.TIMER, node, SIM, which="election (forced)")
        replica.campaign()
        self._after(node)

    def force_heartbeat(self, node: int) -> None:
        """Make leader `node`'s heartbeat timer fire now: it sends AppendEntries to every peer, as when
        its heartbeat timeout passes (L-HEARTBEAT), and counts the next timeout from now. Does nothing
        unless `node` is a live leader that is not paused."""
        self._check_node(node)
        self.history.log("force_heartbeat", node)
        replica = self._replicas[node]
        if replica is None or replica.role is not Role.LEADER or node in self._paused:
            return
        self._record(SimKind.TIMER, node, SIM, which="heartbeat (forced)")
        now = self.local_time(node)
        replica.heartbeat_deadline = now  # due now: the clock does not move
        replica.tick(now)
        self._after(node)

    # ----- going back ----------------------------------------------------------------------------
    def rewind(self, to_event: int) -> None:
        """Go back to the moment after step `to_event` (before any intervention made then), by
        replay from the nearest checkpoint. Stepping on replays the same history (its interventions
        included) until you act: an intervention made then forks a new branch of the history, and
        the old one is kept (`branches`, `switch_branch`)."""
        self.history.rewind(to_event)

    @property
    def branches(self) -> list[Branch]:
        """Every branch of this run's history, in the order made (branch 0: the first run); the one
        being run is ``branches[branch]``."""
        return self.history.branches

    @property
    def branch(self) -> int:
        """The number of the branch being run."""
        return self.history.shown

    def switch_branch(self, number: int) -> None:
        """Run branch `number` of the history instead: go back to the step where it parts from this
        one (or stay here, if that is later) and replay its interventions as you step on; its end
        becomes `history_end`."""
        self.history.switch(number)

    def _network_changed(self, name: str, value: Any) -> None:
        self.history.log_network_change(name, value)
        self._record(SimKind.NETWORK, None, SIM, what=f"{name} set to {value}")

    # ----- internals ---------------------------------------------------------------------------
    def _boot(self, node: int) -> None:
        incarnation = self._incarnation[node]
        machine = self.state_machine()
        tap = MachineTap(self, node, machine)
        cluster = SimCluster(self, node)
        self._taps[node], self._clusters[node] = tap, cluster
        if self.checker is not None:
            self.checker.restarted(node)
        rng = _Generator(f"timers/{self.seed}/{node}/{incarnation}")
        peers, learner = self._boot_args[node]
        replica = self._replicas[node] = self.replica_class(
            node, list(peers), cluster, tap, self.noop, self.heartbeat_timeout, self.election_timeout,
            self.snapshot_delta, storage=self._storages[node], rng=rng, clock=partial(self.local_time, node),
            observer=self._observe if self.record_trace else None, **({"learner": True} if learner else {}),
            **self.options)
        # Every message it receives was sent by a replica of the same class, here: the core's are well
        # formed, so the core need not check their form (`Replica.trusted_input`); any other class's are checked.
        replica.trusted_input = self.replica_class is Replica
        self._after(node)

    def _halt(self, node: int, kind: str, **data: Any) -> None:
        """Stop `node`'s replica (a crash, or a removal): its volatile state and the messages on their way
        to it are lost."""
        self._replicas[node] = None
        self._incarnation[node] += 1
        self._timers[node] = math.inf
        self._paused.pop(node, None)  # a crash ends a pause (its waiting messages are lost below)
        self._parked.pop(node, None)
        self._record(kind, node, SIM, **data)
        for flight in [f for f in self._in_flight.values() if f.destination == node]:
            del self._in_flight[flight.id]
            self._lost(flight, "its receiver crashed")

    def _resume(self, node: int, incarnation: int, time: int) -> TraceEvent | None:
        """The pause of `node` ends at `time` (unless superseded): what waited for it goes first."""
        if self._paused.get(node) != time or incarnation != self._incarnation[node]:
            return None
        del self._paused[node]
        self._advance(time)
        waiting = self._parked.pop(node, [])
        event = self._record(SimKind.RESUME, node, SIM, waiting=len(waiting))
        for flight_id in waiting:
            flight = self._in_flight.get(flight_id)
            if flight is not None:  # (unless dropped by hand meanwhile)
                self._in_flight[flight_id] = flight._replace(arrives=time)
                self._seq += 1
                heapq.heappush(self._queue, (time, self._seq, _DELIVER, flight_id, incarnation))
        replica = self._replicas[node]
        assert replica is not None  # a crash ends the pause
        if self._taps[node].submitted:
            replica.process_transitions()
        self._after(node)
        return event

    def _advance(self, time: int) -> None:
        self.now_us = time
        self.steps += 1

    def _check_node(self, node: int) -> None:
        if node not in self._incarnation:
            raise ValueError(f"node must be one of {list(self.ids)}, not {node!r}")

    def _after(self, node: int) -> None:
        """After a replica acted: check invariants, arm its timer."""
        replica = self._replicas[node]
        if replica is None:
            return
        checker = self.checker
        if checker is not None:
            if checker.pending is not None:
                raise checker.pending
            checker.check(node, replica)
        if replica.commit_index >= replica.config_index > self._committed_at:  # a newer configuration committed
            self._configuration_committed(replica)
            if self._replicas[node] is None:
                return  # (it removed itself)
        self._arm(node, replica)

    def _arm(self, node: int, replica: Replica) -> None:
        """Schedule a timer event at `replica`'s next deadline, unless an earlier one is armed."""
        deadline = replica.next_deadline
        if deadline == math.inf:
            return
        when = math.ceil((deadline * _US if node not in self._clocks else self.virtual_us(node, deadline)) - 1e-6)
        if when < self.now_us:
            when = self.now_us
        if when < self._timers[node]:
            self._timers[node] = when
            self._seq += 1
            heapq.heappush(self._queue, (when, self._seq, _TIMER, node, self._incarnation[node]))

    def _send(self, source: int, destination: int, message: Message) -> None:
        kind, counters, now = type(message).__name__, self.counters, self.now_us
        counters["messages"][kind] += 1
        counters["bytes"][kind] += wire_size(message)
        if self.record_trace:
            self.trace.events.append(_new(TraceEvent, (self.steps, now, SimKind.SEND, source, SIM, {
                "to": destination, "message": message, "id": self._message_ids + 1})))  # (`_record`, inlined)
        if destination not in self._incarnation:
            return
        network, rng = self.network, self._rng
        if network.links:
            low, high, drop, duplicate = network.params(source, destination)
        else:
            (low, high), drop, duplicate = network.latency, network.drop, network.duplicate
        why = None
        if self._cut and (source, destination) in self._cut:
            why = "the link is cut"
        elif self._drop_next and self._drop_next.get((source, destination), 0) > 0:
            self._drop_next[(source, destination)] -= 1
            why = "it was chosen to be dropped"
        elif drop and rng.random() < drop:
            why = "the network lost it"
        copies = 1 + (duplicate > 0 and rng.random() < duplicate)
        for k in range(copies):
            self._message_ids += 1
            arrives = now + _us(low + (high - low) * rng.random())  # (rng.uniform(low, high), inlined)
            flight = _new(InFlight, (self._message_ids, source, destination, message, now, arrives, k > 0))
            if why is not None:
                self._lost(flight, why)
                return
            self._wire(flight)

    def _wire(self, flight: InFlight, **data: Any) -> None:
        """Put `flight` on its way, to arrive at `flight.arrives`; a copy (`flight.copy`) is traced as a
        duplicate, with `data` (``by_hand=True`` from `duplicate_message`)."""
        destination = flight.destination
        if flight.copy:
            self._record(SimKind.DUPLICATE, flight.source, SIM, to=destination, message=flight.message, id=flight.id,
                         **data)
        self._in_flight[flight.id] = flight
        self._seq += 1
        heapq.heappush(self._queue, (flight.arrives, self._seq, _DELIVER, flight.id, self._incarnation[destination]))

    def _arrive(self, flight: InFlight, incarnation: int, time: int | None = None) -> TraceEvent | None:
        """`flight`, taken out of `_in_flight`, reaches its receiver (sent to its `incarnation`): at
        `time` as a step (the clock moves there), or now as an intervention (`time` None:
        `deliver_message`). Returns the delivery, or the loss if the receiver crashed or the link was
        cut meanwhile; None if the receiver is paused: the message waits for it."""
        dst = flight.destination
        paused = self._paused
        if paused and dst in paused and incarnation == self._incarnation[dst]:
            self._in_flight[flight.id] = flight._replace(arrives=paused[dst])  # it waits for its paused receiver
            parked = self._parked[dst]
            if flight.id not in parked:  # (delivering a waiting message by hand leaves it waiting)
                parked.append(flight.id)
            return None
        if time is not None:
            self._advance(time)
        replica = self._replicas[dst]
        if replica is None or incarnation != self._incarnation[dst]:
            return self._lost(flight, "its receiver crashed")
        if self._cut and (flight.source, dst) in self._cut:
            return self._lost(flight, "the link was cut while it travelled")
        event = self._record(SimKind.DELIVER, flight.source, SIM, to=dst, message=flight.message, id=flight.id)
        replica.step(flight.message)  # (the input for one message: `process_messages` would take it from the inbox)
        self._after(dst)
        return event

    def _lost(self, flight: InFlight, why: str) -> TraceEvent:
        self.counters["dropped"][type(flight.message).__name__] += 1
        return self._record(SimKind.DROP, flight.source, SIM, to=flight.destination, message=flight.message,
                            id=flight.id, why=why)

    def _record(self, kind: str, node: int | None, rule: str, **data: Any) -> TraceEvent:
        event = _new(TraceEvent, (self.steps, self.now_us, kind, node, rule, data))
        if self.record_trace:
            self.trace.events.append(event)
        return event

    def _observe(self, event: Event) -> None:
        data = {**event.details, "term": event.term}
        self.trace.events.append(_new(TraceEvent, (self.steps, self.now_us, event.kind, event.node, event.rule, data)))

