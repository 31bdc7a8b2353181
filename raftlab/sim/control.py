"""What a `Simulation`'s clients ask of its cluster: transitions (`submit`, `one`), leadership
transfers, linearizable reads, and clocks that run at their own rates.

`Control` is a part of `Simulation` (its base class), as `Faults` is: each method is an intervention,
recorded in the history (so that `rewind` replays it) and explained in the trace (`one` is a helper that
runs the simulation and submits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core import Configuration, ReadState, TransitionState
from .submission import ReadRequest, Submission
from .trace import SIM, SimKind, TraceEvent

if TYPE_CHECKING:
    from ..core import Replica
    from .history import History
    from .node import MachineTap

_US = 1_000_000

REPLICA_OPTIONS = ("max_inflight", "pre_vote", "check_quorum", "read_lease", "drift_bound")
"""The `Replica` options a `Simulation` passes on to every replica."""


def check_options(options: dict[str, Any]) -> None:
    """Raise ValueError naming the first option that is not one of `REPLICA_OPTIONS`."""
    unknown = sorted(set(options) - set(REPLICA_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}: Simulation passes on only the Replica options "
                         f"{', '.join(REPLICA_OPTIONS)}")


class Control:
    """Client transitions, leadership transfers (thesis §3.10), reads without log writes (§6.4), and clock
    rates per node."""

    if TYPE_CHECKING:  # what the controls use of the simulation
        ids: tuple[int, ...]
        seed: int
        now_us: int
        steps: int
        record_trace: bool
        heartbeat_timeout: float
        history: History
        reads: dict[Hashable, ReadRequest]
        submissions: dict[Hashable, Submission]
        _replicas: dict[int, Replica | None]
        _taps: dict[int, MachineTap]
        _paused: dict[int, int]
        _clocks: dict[int, tuple[int, float, float]]
        _read_seq: int

        @property
        def now(self) -> float: ...
        def leader(self) -> int | None: ...
        def configuration(self, node: int | None = None) -> Configuration: ...
        def run(self, seconds: float) -> int: ...
        def run_until(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> int: ...
        def _check_node(self, node: int) -> None: ...
        def _record(self, kind: str, node: int | None, rule: str, **data: Any) -> TraceEvent: ...
        def _after(self, node: int) -> None: ...

    def submit(self, transition: Any, to: int | None = None) -> Submission:
        """Give `transition` to node `to` (default: the leader, else node 0). Returns a handle whose
        `states` follow the transition on every node. A `Configuration` is a transition too: offered
        to the leader, it is the proposal of a membership change (see `add_node`)."""
        if to is None:
            leader = self.leader()
            node = leader if leader is not None else 0
        else:
            node = to
        self._check_node(node)
        self.history.log("submit", transition, to=to)
        return self._offer(transition, node)

    def _offer(self, transition: Any, node: int) -> Submission:
        """Give `transition` to `node` now (what `submit` does once it is recorded)."""
        handle = Submission(transition, transition.get_id(), node, self.steps)
        self.submissions[handle.id] = handle
        if self.record_trace:  # (its repr, only for a trace that keeps it)
            self._record(SimKind.CLIENT_REQUEST, node, SIM, transition=repr(transition))
        replica = self._replicas[node]
        if replica is None:
            handle.states[node] = TransitionState.ABANDONED_NOT_LEADER
            self._record(SimKind.CLIENT_REPLY, node, SIM, transition=repr(transition), state="refused: node is down")
            return handle
        self._taps[node].submit(transition)  # the replica takes it now, with the machine's own
        if node in self._paused:
            return handle  # a paused process takes it when it resumes
        replica.process_transitions()
        self._after(node)
        return handle

    def one(self, transition: Any, k: int | None = None, timeout: float = 10.0, retry: float = 1.0) -> Submission:
        """Submit `transition` to the leader and wait until `k` nodes (default: a majority of the
        current configuration's voters) applied it, resubmitting the same transition to a new leader
        every `retry` seconds if needed (a state machine that deduplicates by id, like `KVStore`,
        applies it once), and a heartbeat after a leader refused it at once. Raises `TimeoutError`
        after `timeout` virtual seconds."""
        deadline = self.now + timeout
        wanted = len(self.configuration().voters) // 2 + 1 if k is None else k
        while self.now < deadline:
            self.run_until(lambda s: s.leader() is not None, deadline - self.now)
            if self.leader() is None:
                break
            wanted = len(self.configuration().voters) // 2 + 1 if k is None else k
            asked, handle = self.now_us, self.submit(transition)
            self.run_until(partial(_settled, handle, wanted), min(retry, max(deadline - self.now, 0)))
            if len(handle.applied_on) >= wanted:
                return handle
            if self.now_us == asked:  # refused at once (in a transfer, or a configuration change): wait first
                self.run(min(self.heartbeat_timeout, max(deadline - self.now, 0)))
        raise TimeoutError(f"{transition!r} was not applied on {wanted} nodes within {timeout} s (seed {self.seed})")

    def transfer_leadership(self, to: int) -> None:
        """Ask the leader to hand its leadership to node `to` (`Replica.transfer_leadership`): it takes
        no new transitions, brings `to` up to date and sends it TimeoutNow; `to` stands at once.
        Raises ValueError if there is no leader or `to` leads already."""
        self._check_node(to)
        leader = self.leader()
        if leader is None:
            raise ValueError("there is no leader to transfer the leadership from: wait for an election")
        if leader == to:
            raise ValueError(f"node {to} is the leader already")
        self.history.log("transfer_leadership", to)
        self._record(SimKind.TRANSFER, leader, SIM, to=to)
        replica = self._replicas[leader]
        if replica is not None and leader not in self._paused:
            replica.transfer_leadership(to)
            self._after(leader)

    def read(self, key: Any, to: int | None = None) -> ReadRequest:
        """Read `key` linearizably without a log write (`Replica.read`, ReadIndex) at node `to` (default:
        the leader, else node 0). Returns a handle: once the node says the read is safe, its `value` is
        the node's state machine's ``read(key)``; `state` is ``ReadState.ABANDONED`` if no leader
        confirmed it (a down or paused node abandons it at once)."""
        leader = self.leader()
        node = to if to is not None else leader if leader is not None else 0
        self._check_node(node)
        self.history.log("read", key, to=to)
        self._read_seq += 1
        handle = ReadRequest(key, ("read", self._read_seq), node, self.now)
        self.reads[handle.id] = handle
        if self.record_trace:  # (its repr, only for a trace that keeps it)
            self._record(SimKind.READ_REQUEST, node, SIM, key=repr(key))
        replica = self._replicas[node]
        if replica is None or node in self._paused:
            self.answer_read(node, handle.id, ReadState.ABANDONED, None)
            return handle
        replica.read(handle.id)
        self._after(node)
        return handle

    def answer_read(self, node: int, read_id: Hashable, state: ReadState, value: Any) -> None:
        """Node `node` answered the read `read_id` (called by the node's state machine tap)."""
        handle = self.reads.get(read_id)
        if handle is None or handle.state is not None:
            return
        handle.state, handle.value, handle.answered = state, value, self.now
        if self.record_trace:
            self._record(SimKind.READ_REPLY, node, SIM, key=repr(handle.key), state=state.value,
                         value=repr(value) if state is ReadState.READY else None)

    def set_clock_rate(self, node: int, rate: float) -> None:
        """Let `node`'s clock run at `rate` times the virtual time from now on (1: exact; 1.1: 10 % fast),
        as a real clock drifts. Its timers and its leases are measured on that clock (RI-LEASE assumes
        rates differ by at most the replicas' `drift_bound`)."""
        self._check_node(node)
        if type(rate) not in (int, float) or not 0 < rate < math.inf:
            raise ValueError(f"rate must be a positive finite number, not {rate!r}")
        self.history.log("set_clock_rate", node, rate)
        self._clocks[node] = (self.now_us, self.local_time(node), float(rate))
        self._record(SimKind.CLOCK, node, SIM, rate=rate)

    def clock_rate(self, node: int) -> float:
        """The rate of `node`'s clock (1.0 unless `set_clock_rate` changed it)."""
        return self._clocks[node][2] if node in self._clocks else 1.0

    def local_time(self, node: int, at_us: int | None = None) -> float:
        """`node`'s clock, in seconds, at virtual time `at_us` (microseconds; default: now)."""
        at = self.now_us if at_us is None else at_us
        if node not in self._clocks:
            return at / _US
        since, local, rate = self._clocks[node]
        return local + rate * (at - since) / _US

    def virtual_us(self, node: int, local: float) -> float:
        """The virtual time (microseconds) at which `node`'s clock reads `local` seconds."""
        if node not in self._clocks:
            return local * _US
        since, base, rate = self._clocks[node]
        return since + (local - base) * _US / rate


def _settled(handle: Submission, k: int, sim: Any) -> bool:
    return handle.settled(k)
