"""`raftlab demo`: Little Raft's example in Python.

Three replicas run on threads in real time; each holds a calculator that receives +/- transitions
and prints what it applies. The run ends when every replica has applied the same transitions.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .core import Replica, ReplicaID, Snapshot, TransitionState
from .threads import ThreadNetwork


@dataclass(frozen=True, slots=True)
class ArithmeticOperation:
    """A calculator transition: add `delta` (Little Raft's `ArithmeticOperation`)."""

    id: int  # unique per transition
    delta: int  # what to add (negative to subtract)

    def get_id(self) -> int:
        """The transition's id."""
        return self.id

    def __str__(self) -> str:
        return f"#{self.id} ({self.delta:+d})"


NOOP = ArithmeticOperation(0, 0)

CalculatorData = tuple[int, tuple[ArithmeticOperation, ...]]
"""The snapshot data of a `Calculator`: ``(value, applied transitions)``."""


@dataclass(eq=False)
class Calculator:
    """A state machine holding one number (Little Raft's example `Calculator`). Thread-safe."""

    name: ReplicaID  # the replica it belongs to
    out: Callable[[str], None] | None = None  # where to report each applied transition
    value: int = 0  # the state
    applied: list[ArithmeticOperation] = field(default_factory=list)  # in order
    states: dict[Hashable, TransitionState] = field(default_factory=dict)  # last state of each id
    _pending: list[ArithmeticOperation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, operation: ArithmeticOperation) -> None:
        """Offer a transition (the replica takes it when signalled on its transition queue)."""
        with self._lock:
            self._pending.append(operation)

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        with self._lock:
            self.states[transition_id] = state

    def apply_transition(self, transition: ArithmeticOperation) -> None:
        with self._lock:
            self.value += transition.delta
            self.applied.append(transition)
        if self.out is not None and transition != NOOP:
            self.out(f"replica {self.name} applied {transition}, value is now {self.value}")

    def get_pending_transitions(self) -> list[ArithmeticOperation]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def get_snapshot(self) -> Snapshot[CalculatorData] | None:
        return None

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot[CalculatorData]:
        with self._lock:
            return Snapshot(last_included_index, last_included_term, (self.value, tuple(self.applied)))

    def set_snapshot(self, snapshot: Snapshot[CalculatorData]) -> None:
        with self._lock:
            self.value, applied = snapshot.data
            self.applied = list(applied)


@dataclass(slots=True)
class DemoResult:
    """What `run_demo` saw."""

    calculators: list[Calculator]  # one per replica
    replicas: list[Replica[ArithmeticOperation, CalculatorData]]  # the stopped replicas
    network: ThreadNetwork  # its counters
    converged: bool  # every replica applied the same transitions before the deadline
    seconds: float  # wall time of the run


def run_demo(replicas: int = 3, transitions: int = 10, *, drop: float = 0.0, shuffle: bool = False,
             seed: int | None = 1, deadline: float = 8.0, out: Callable[[str], None] | None = print,
             heartbeat: float = 0.05, election: tuple[float, float] = (0.15, 0.30)) -> DemoResult:
    """Run `replicas` replicas on threads, offer `transitions` calculator operations to all of them
    (only the leader accepts each), and wait until all have applied the same ones."""
    if replicas < 1 or transitions < 0:
        raise ValueError(f"replicas must be >= 1 and transitions >= 0, got {replicas} and {transitions}")
    started = time.monotonic()
    ids = list(range(1, replicas + 1))
    rng = random.Random(seed)
    network = ThreadNetwork(ids, drop=drop, shuffle=shuffle, seed=rng.randrange(2**32))
    lock = threading.Lock()

    def say(line: str) -> None:
        if out is not None:
            with lock:
                out(line)

    calculators = [Calculator(i, say) for i in ids]
    nodes: list[Replica[ArithmeticOperation, CalculatorData]] = [
        Replica(i, [j for j in ids if j != i], network.cluster(i), calc, NOOP, heartbeat, election,
                rng=random.Random(rng.randrange(2**32))) for i, calc in zip(ids, calculators, strict=True)]
    transition_queues: dict[ReplicaID, queue.Queue[None]] = {i: queue.Queue() for i in ids}
    threads = [threading.Thread(target=r.start, args=(network.wakeups[r.id], transition_queues[r.id]),
                                name=f"replica-{r.id}", daemon=True) for r in nodes]
    for thread in threads:
        thread.start()

    def wait_for(predicate: Callable[[], bool]) -> bool:
        while time.monotonic() - started < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False

    converged = wait_for(lambda: network.leader() is not None)
    say(f"replica {network.leader()} is leader")
    offered = []
    for k in range(1, transitions + 1):
        operation = ArithmeticOperation(k, rng.choice([-1, 1]) * rng.randint(1, 9))
        offered.append(operation)
        for calc in calculators:
            calc.submit(operation)
        for q in transition_queues.values():
            q.put(None)
        time.sleep(0.02)

    def settled() -> bool:  # every offer resolved everywhere, and all replicas applied the same
        histories = [list(c.applied) for c in calculators]
        done = all(c.states.get(op.id) in (TransitionState.APPLIED, TransitionState.ABANDONED_NOT_LEADER,
                                           TransitionState.ABANDONED_CONFLICT_WITH_LEADER)
                   for c in calculators for op in offered)
        return done and all(h == histories[0] for h in histories)

    converged = converged and wait_for(settled)
    network.halt()
    for thread in threads:
        thread.join()
    for calc in calculators:
        say(f"replica {calc.name}: value {calc.value} after {len(calc.applied)} applied entries")
    return DemoResult(calculators, nodes, network, converged, time.monotonic() - started)
