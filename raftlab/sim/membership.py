"""Membership change in a `Simulation`: nodes that join as learners, are promoted, and are removed.

`Membership` is a part of `Simulation` (its base class), as `Faults` and `Control` are. The core's
membership change is single-server (thesis §4.1-4.4, with the erratum's fix): a `Configuration` is a
transition the leader appends to its log (MC-ONE), each server uses the latest one in its log
(MC-LATEST), a new server joins as a learner and is promoted once it has caught up (MC-LEARNER), and a
leader that removes itself steps down once that change is committed (MC-STEPDOWN).

The interventions (recorded in the history, so that `rewind` replays them, and explained in the trace)
each make one proposal to the leader and return at once, in virtual time; they raise ValueError
without a leader:

- `add_node()` starts a new node (the next id, an empty storage) as a learner of the leader's
  configuration and asks the leader to add it as a learner; it returns the node's id (the proposal's
  `Submission` is ``sim.changes[-1]``).
- `promote(node)` asks the leader to make learner `node` a voter. The leader refuses
  (``ABANDONED_REFUSED``) until the learner's log has caught up with its commit index.
- `remove_node(node)` asks the leader to remove `node` (a voter, the leader itself, or a learner).
  Once a configuration without it is committed, the simulation shuts the node down for good: it is
  shown as removed, `restart` leaves it down, and it takes no more steps.

A proposal may be refused (an earlier change is uncommitted, the new leader has not committed an entry
of its term, the learner is behind) or lost with its leader: `run_until_committed(change)` runs until a
change is committed, proposing it again to the leader when needed, as `one` does for a client's
transition. A configuration proposed by hand (``sim.submit(Configuration.of(...))``) is a change like
any other, but the nodes it leaves out keep running (no one replicates to them any more).
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from ..core import Configuration, MemoryStorage
from .node import ReplicaView
from .submission import Submission
from .trace import SIM, SimKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core import Replica, Storage
    from .history import History
    from .trace import TraceEvent

MEMBERSHIPS = ("voter", "learner", "joining", "removed")
"""What a node is, as the leader (or the node itself) sees it: see `Membership.membership`."""


class Membership:
    """Adding, promoting and removing nodes (thesis §4); see the module docstring."""

    if TYPE_CHECKING:  # what membership change uses of the simulation
        ids: tuple[int, ...]
        n: int
        now_us: int
        seed: int
        heartbeat_timeout: float
        history: History
        replicas: tuple[ReplicaView, ...]
        _replicas: dict[int, Replica | None]
        _storages: dict[int, Storage]
        _incarnation: dict[int, int]
        _timers: dict[int, float]
        _boot_args: dict[int, tuple[tuple[int, ...], bool]]

        @property
        def now(self) -> float: ...
        def leader(self) -> int | None: ...
        def submit(self, transition: Any, to: int | None = None) -> Submission: ...
        def run(self, seconds: float) -> int: ...
        def run_until(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> int: ...
        def _boot(self, node: int) -> None: ...
        def _halt(self, node: int, kind: str, **data: Any) -> None: ...
        def _check_node(self, node: int) -> None: ...
        def _offer(self, transition: Any, node: int) -> Submission: ...
        def _record(self, kind: str, node: int | None, rule: str, **data: Any) -> TraceEvent: ...

    def _init_membership(self) -> None:
        """The state of membership change (all of it in the simulation's `_STATE`)."""
        self.changes: list[Submission] = []  # every proposal made by add_node, promote and remove_node, in order
        self._removed: set[int] = set()  # nodes shut down because a committed configuration left them out
        # nodes whose removal a leader appended, with that entry's index: shut down once it (or a later
        # configuration without them) commits
        self._retiring: dict[int, int] = {}
        self._committed = Configuration.of(self.ids)  # the latest configuration known committed
        self._committed_at = 0  # its index (0: the initial one)
        self._were_members: frozenset[int] = frozenset(self.ids)  # members of any committed configuration

    # ----- reading ---------------------------------------------------------------------------------
    def configuration(self, node: int | None = None) -> Configuration:
        """The cluster's configuration as the leader sees it (the latest in its log, committed or not:
        MC-LATEST); without a leader, as `node` sees it if it is up, else the latest any live node
        holds (else the latest known committed)."""
        leader = self.leader()
        replica = self._replicas[leader] if leader is not None else self._replicas.get(node) if node is not None \
            else None
        if replica is None:
            live = [r for r in self._replicas.values() if r is not None]
            if not live:
                return self._committed
            replica = max(live, key=lambda r: r.config_index)
        return replica.configuration

    def membership(self, node: int) -> str:
        """What `node` is, as the leader (or the node itself) sees it: ``"voter"`` or ``"learner"`` of
        that configuration, ``"joining"`` (added by `add_node`, not in that configuration yet: its
        proposal is refused or lost) or ``"removed"`` (shut down by `remove_node`, or left out of the
        configuration after being a member)."""
        self._check_node(node)
        if node in self._removed:
            return "removed"
        config = self.configuration(node)
        if node in config.voters:
            return "voter"
        if node in config.learners:
            return "learner"
        return "removed" if node in self._were_members else "joining"

    @property
    def removed(self) -> frozenset[int]:
        """The nodes shut down for good because a committed configuration left them out (`remove_node`)."""
        return frozenset(self._removed)

    # ----- interventions -----------------------------------------------------------------------------
    def add_node(self) -> int:
        """Start a new node: the next id, an empty `MemoryStorage`, a `Replica` built with
        ``learner=True`` whose peers are the members of the leader's configuration (MC-LEARNER: it
        never stands until promoted); and ask the leader to add it as a learner. Returns its id; the
        proposal is ``sim.changes[-1]`` (see `run_until_committed`). Raises ValueError without a leader."""
        leader, config = self._leading("add a node")
        self.history.log("add_node")
        node = len(self.ids)
        self.ids, self.n = (*self.ids, node), self.n + 1
        self.replicas = (*self.replicas, ReplicaView(self, node))  # type: ignore[arg-type]
        self._incarnation[node], self._timers[node], self._replicas[node] = 0, math.inf, None
        self._storages[node] = MemoryStorage()
        self._boot_args[node] = (tuple(sorted(config.members)), True)
        self._record(SimKind.MEMBERSHIP, node, SIM, change="add", leader=leader, members=sorted(config.members))
        self._boot(node)
        self._propose(Configuration(config.voters, config.learners | {node}), leader)
        return node

    def promote(self, node: int) -> Submission:
        """Ask the leader to make learner `node` a voter (one proposal, returned at once). The leader
        refuses it (``ABANDONED_REFUSED``, an event `config_refused`) until `node`'s log has caught up
        with its commit index: `run_until_committed` proposes it again until it is committed. Raises
        ValueError without a leader, or if `node` is not a learner of the leader's configuration."""
        self._check_node(node)
        leader, config = self._leading(f"promote node {node}")
        if node not in config.learners:
            raise ValueError(f"node {node} is not a learner of leader {leader}'s configuration {config!r}")
        self.history.log("promote", node)
        self._record(SimKind.MEMBERSHIP, node, SIM, change="promote", leader=leader)
        return self._propose(Configuration(config.voters | {node}, config.learners - {node}), leader)

    def remove_node(self, node: int) -> Submission:
        """Ask the leader to remove `node`, a voter (the leader itself too: MC-STEPDOWN) or a learner
        (one proposal, returned at once). Once a configuration without it is committed, the node is
        shut down for good (an event `removed`; `restart` leaves it down). Raises ValueError without a
        leader, or if `node` is not a member of the leader's configuration."""
        self._check_node(node)
        leader, config = self._leading(f"remove node {node}")
        if node not in config.members:
            raise ValueError(f"node {node} is not a member of leader {leader}'s configuration {config!r}")
        self.history.log("remove_node", node)
        self._record(SimKind.MEMBERSHIP, node, SIM, change="remove", leader=leader)
        new = Configuration(config.voters - {node}, config.learners - {node})
        handle = self._propose(new, leader)
        replica = self._replicas[leader]
        if replica is not None and replica.configuration == new:  # appended (not refused): MC-ONE
            self._retiring[node] = replica.config_index
        return handle

    # ----- a helper that runs ------------------------------------------------------------------------
    def run_until_committed(self, change: Submission | None = None, timeout: float = 10.0,
                            retry: float = 1.0) -> Submission:
        """Run until the configuration change `change` (a `Submission` of `promote`, `remove_node`,
        ``sim.changes``, or `submit`; default: the latest of ``sim.changes``) is committed, that is,
        some node applied it. If it is refused (a learner not caught up, an earlier change uncommitted,
        a leader that has not committed an entry of its term) or not applied within `retry` seconds
        (lost with its leader), the same configuration is submitted again to the leader, after a
        heartbeat if it was refused at once. Returns the handle of the proposal that was committed;
        raises `TimeoutError` after `timeout` virtual seconds."""
        if change is None:
            if not self.changes:
                raise ValueError("no membership change was proposed yet (add_node, promote, remove_node)")
            change = self.changes[-1]
        handle, deadline = change, self.now + timeout
        while True:
            self.run_until(partial(_decided, handle), min(retry, max(deadline - self.now, 0)))
            if handle.applied_on:
                return handle
            if self.now >= deadline:
                break
            applied = partial(_applied, handle)
            if handle.settled(1):  # refused (or unknown: it may still commit): ask again a little later
                self.run_until(applied, min(self.heartbeat_timeout, deadline - self.now))
            self.run_until(partial(_led_or_applied, handle), deadline - self.now)
            if handle.applied_on:
                return handle
            if self.leader() is None or self.now >= deadline:
                break
            handle = self.submit(handle.transition)
        raise TimeoutError(f"{handle.transition!r} was not committed within {timeout} s (seed {self.seed})")

    # ----- internals -----------------------------------------------------------------------------------
    def _leading(self, what: str) -> tuple[int, Configuration]:
        """The leader and its configuration; ValueError if there is no leader."""
        leader = self.leader()
        replica = None if leader is None else self._replicas[leader]
        if leader is None or replica is None:
            raise ValueError(f"there is no leader to {what}: wait for an election")
        return leader, replica.configuration

    def _propose(self, config: Configuration, leader: int) -> Submission:
        handle = self._offer(config, leader)
        self.changes.append(handle)
        return handle

    def _configuration_committed(self, replica: Replica) -> None:
        """`replica` holds a configuration committed at a higher index than any known before: the nodes
        `remove_node` asked to remove that it leaves out are shut down."""
        config = self._committed = replica.configuration
        self._committed_at = replica.config_index
        self._were_members |= config.members
        gone = [n for n, at in self._retiring.items() if n not in config.members and replica.config_index >= at]
        for node in sorted(gone):
            del self._retiring[node]
            self._removed.add(node)
            if self._replicas[node] is not None:
                self._halt(node, SimKind.REMOVED, index=replica.config_index)
            else:  # (crashed already: it stays down)
                self._record(SimKind.REMOVED, node, SIM, index=replica.config_index)


def _decided(handle: Submission, sim: Any) -> bool:
    return handle.settled(1)


def _applied(handle: Submission, sim: Any) -> bool:
    return bool(handle.applied_on)


def _led_or_applied(handle: Submission, sim: Any) -> bool:
    return sim.leader() is not None or bool(handle.applied_on)
