"""Chaos campaigns: many seeds, each a random schedule of faults under a KV workload, each seed with
its own mix of faults (swarm testing).

Every seed runs clients that retry, sending KV commands through the log and linearizable reads
without one (`Simulation.read`: ReadIndex, or a lease), while faults strike: crashes and restarts,
partitions into two groups, one-way partitions (every link from one group to another cut, the links
back kept), the ring of majorities (`Simulation.ring`: each node sees a majority, each a different
one), process pauses (`Simulation.pause`), partitions that cut the leader off in a minority (where,
without CheckQuorum, it leads on without knowing it was deposed), leadership transfers, clocks that
drift (a slow leader, fast followers: the worst case for a lease), heals, and loss and duplication
rates up to 30%.

Beside its commands, each client reads (a second thread of the client, one read at a time): at the
node it believes leads (the last one that answered one of its reads), at the leader, or at any node
(a follower asks its leader for the read index). In the history a read answered READY
is an operation from its request to its answer, with the value read; an ABANDONED read did not take
place and is left out; a read never answered has an unknown outcome (and so constrains nothing). The
linearizability check holds reads to the same rule as writes and gets through the log: a read returns
the latest value.

Swarm testing (Groce et al., ISSTA 2012; TigerBeetle's simulator draws its parameters per seed too):
rather than every seed mixing every fault at fixed rates, each seed first draws, from its own rng, a
`Swarm`: the replicas' `snapshot_delta` (0, 3, 10 or 50) and a probability for each fault, often
zero; then the replicas' options (`pre_vote`, `check_quorum`, `read_lease`, the last only with
`check_quorum`) and how far clocks may drift (rates within [1/r, r] with r = √`DRIFT_BOUND`, so that
any two clocks' rates differ by at most the replicas' `drift_bound`, which lease reads assume). Some
seeds then hammer one fault and others combine a few, which reaches corners that a fixed mix makes
rare; with `snapshot_delta` drawn, most campaigns send InstallSnapshot many times. The
swarm is a function of the seed alone, so `ChaosResult.replay_command` replays a failure exactly, and
a failure's report starts with its swarm.

Membership changes (issue 14) run in every seed (`Swarm.membership` is never zero): in a round, the
leader may be asked to add a node (a learner started with an empty log: `Simulation.add_node`), to
promote a learner (refused until it caught up: MC-LEARNER), or to remove a learner or a voter (the
leader itself with probability `Swarm.remove_leader`: MC-STEPDOWN), the voters kept between
`MIN_VOTERS` and `MAX_VOTERS` (2 now and then); now and then a second change is asked at once, which
the leader refuses while the first is uncommitted (MC-ONE). An addition lost with its leader is
proposed again while the configuration is unchanged, else the node is given up on (left alone: it was
started with members that are no longer the configuration's). Removed nodes (shut down once their
removal commits) and those given up on are never the target of a fault or a client; the ring of
majorities is drawn on the nodes in play. `ChaosResult` counts the changes proposed, refused and
committed (each log index once).

The invariants are checked throughout (`raftlab.sim.invariants`); at the end the client history is
checked for linearizability, the cluster is healed (links, network, crashed nodes restarted, paused
ones resumed, removed ones left down), and a new write must be applied by a majority of the voters of
the leader's latest configuration within 5 s of virtual time; the members that have still not applied
it when the 5 s are up are counted (`ChaosResult.behind`), not failed.
A seed fails with one of four kinds (`ChaosResult.kind`): "safety" (an invariant was violated),
"linearizability" (the history is not linearizable), "liveness" (no commit after the heal), or
"undecided" (the linearizability check ran out of time: never counted as a pass). `EXIT_CODES` maps
them to the exit codes of ``raftlab chaos``.

`run_campaign` takes any `concurrent.futures.Executor`: a `ProcessPoolExecutor`, or the executor of
a cluster scheduler (for example ``dask.distributed.Client(...).get_executor()``), so a campaign of
many thousands of seeds can run across machines unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..check import Operation, check
from ..core import Configuration, ReadState, Replica, TransitionState
from ..machines import KVCommand, KVStore
from .invariants import InvariantViolation
from .network import NetworkModel
from .simulation import Simulation
from .submission import ReadRequest, Submission

KEYS = ("x", "y", "z")

KINDS = ("safety", "linearizability", "liveness", "undecided")
"""The kinds of failure of a seed, the most serious first."""

EXIT_CODES = {"safety": 3, "linearizability": 4, "liveness": 5, "undecided": 6}
"""The exit code of ``raftlab chaos`` for a campaign whose most serious failure is of that kind (0: no
failure; 1 and 2 are left to Python's errors and to bad arguments)."""

# What a seed's swarm draws each figure from (the seed's own rng picks one value of each).
SWARM_CHOICES: dict[str, tuple[float, ...]] = {
    "snapshot_delta": (0, 3, 10, 50),
    "crash": (0.0, 0.03, 0.08, 0.15),
    "restart": (0.15, 0.3),
    "partition": (0.0, 0.03, 0.08),
    "one_way": (0.0, 0.03, 0.08),
    "ring": (0.0, 0.02, 0.05),
    "pause": (0.0, 0.03, 0.08),
    "heal": (0.05, 0.1, 0.2),
    "network": (0.0, 0.05, 0.1),
    "drop": (0.0, 0.05, 0.1, 0.3),
    "duplicate": (0.0, 0.05, 0.1, 0.3),
    # Drawn after the figures above, so that a seed keeps the fault mix it had before these existed.
    "isolate": (0.0, 0.03, 0.08),
    "transfer": (0.0, 0.02, 0.05),
    "drift": (0.0, 0.03, 0.1),
    # Membership change (issue 14), drawn last for the same reason; never zero: every seed changes it.
    "membership": (0.03, 0.08, 0.15),
    "remove_leader": (0.1, 0.3),
}

DRIFT_BOUND = 1.1
"""The replicas' `drift_bound` in a campaign: the most one clock's rate may exceed another's."""

MAX_RATE = math.sqrt(DRIFT_BOUND)
"""The fastest clock rate a campaign sets (the slowest: its inverse), so that no two rates differ by
more than `DRIFT_BOUND` (rates of 1/1.05 and 1.05 would differ by 1.1025, beyond it)."""

READ_RATE = 0.25
"""The chance that an idle client asks for a read in a step of its schedule (a step is 20 ms)."""

MIN_VOTERS, MAX_VOTERS = 3, 7
"""A campaign's membership changes keep the voters within these bounds, except that a removal leaves 2
voters with probability `BELOW_MIN` (never fewer)."""

BELOW_MIN = 0.1

READ_TIMEOUT = 1.0
"""Virtual seconds a client waits for a read's answer before it moves on (the read stays pending: if
it is answered later, the answer is in the history; if never, its outcome is unknown)."""


@dataclass(frozen=True, slots=True)
class Swarm:
    """What one seed exercises, drawn from its own rng by `draw`: the replicas' `snapshot_delta`, and
    for each fault the probability that it strikes in a round of the schedule (a round is 40-160 ms of
    virtual time)."""

    snapshot_delta: int  # the replicas' snapshot_delta (0: never compact)
    crash: float  # crash a live node
    restart: float  # restart a crashed node
    partition: float  # split the nodes into two groups
    one_way: float  # cut every link from one group to the other, in one direction only
    ring: float  # the ring of majorities (`Simulation.ring`), in a random order
    pause: float  # pause a node's process (the leader half of the time) for 0.05-1.5 s
    heal: float  # restore every link
    network: float  # set new loss and duplication rates, up to the two below
    drop: float  # the highest loss rate set
    duplicate: float  # the highest duplication rate set
    isolate: float  # only the leader, alone or in a minority, cut off (deposed, it may not know it)
    transfer: float  # ask the leader to transfer its leadership to another node (`transfer_leadership`)
    drift: float  # set a clock's rate (`set_clock_rate`): the leader's to 1 / max_rate, or another's to max_rate
    membership: float  # propose a membership change to the leader (`_membership`): add, promote or remove a node
    remove_leader: float  # the chance that a voter's removal removes the leader itself (MC-STEPDOWN)
    pre_vote: bool = False  # the replicas' options (PreVote, CheckQuorum, lease reads)
    check_quorum: bool = False
    read_lease: bool = False  # only with check_quorum
    max_rate: float = MAX_RATE  # the fastest clock rate set (tests go beyond the drift bound with it)

    @classmethod
    def draw(cls, seed: int) -> Swarm:
        """The swarm of `seed` (from its own rng, ``random.Random(f"swarm/{seed}")``): each fault's
        figure from `SWARM_CHOICES`, then each option on with probability 1/2 (`read_lease` only with
        `check_quorum`)."""
        rng = random.Random(f"swarm/{seed}")
        values: dict[str, Any] = {name: rng.choice(choices) for name, choices in SWARM_CHOICES.items()}
        values["pre_vote"], values["check_quorum"] = rng.random() < 0.5, rng.random() < 0.5
        values["read_lease"] = values["check_quorum"] and rng.random() < 0.5
        return cls(**values)

    def options(self) -> dict[str, Any]:
        """The `Replica` options of this swarm, as `Simulation` takes them."""
        return {"pre_vote": self.pre_vote, "check_quorum": self.check_quorum, "read_lease": self.read_lease,
                "drift_bound": DRIFT_BOUND}

    def describe(self) -> str:
        """One line: ``snapshot_delta=10 crash=0.08 ... pre_vote=1 check_quorum=0 ...`` (options 1 or 0)."""
        return " ".join(f"{f.name}={float(getattr(self, f.name)):.4g}" for f in fields(self))


@dataclass(frozen=True, slots=True)
class ChaosResult:
    """The outcome of one seed."""

    seed: int
    duration: float  # virtual seconds of chaos (before the final heal)
    nodes: int
    events: int  # simulation steps taken
    operations: int  # client operations in the history
    violation: str | None = None  # the invariant violated, with details
    linearizable: bool | None = None  # the client history's verdict (None: not checked, or undecided)
    live: bool = True  # after the final heal, every node caught up and a new write committed in 5 s
    detail: str = ""  # what went wrong, if anything
    swarm: Swarm | None = None  # what the seed exercised (`Swarm.draw(seed)`)
    install_snapshots: int = 0  # InstallSnapshot requests sent
    reads: int = 0  # reads without a log write answered READY, so in the history and checked
    reads_abandoned: int = 0  # reads answered ABANDONED (not in the history: they did not take place)
    reads_unanswered: int = 0  # reads never answered (in the history, of unknown outcome)
    config_changes_proposed: int = 0  # membership changes proposed to a leader (retries included)
    config_changes_refused: int = 0  # of those, refused by the leader (MC-ONE: ABANDONED_REFUSED)
    config_changes_committed: int = 0  # configuration changes committed (each log index once)
    members: int = 0  # members (voters and learners) of the final configuration
    behind: tuple[int, ...] = ()  # its members that had not applied the final write 5 s after the heal (not
    # a failure: liveness asks for a majority of the voters; see `run_chaos`)

    @property
    def undecided(self) -> bool:
        """The history was to be checked, and the check ran out of time."""
        return self.violation is None and self.linearizable is None

    @property
    def kind(self) -> str | None:
        """The most serious kind of failure (one of `KINDS`), or None for a clean seed."""
        if self.violation is not None:
            return "safety"
        if self.linearizable is False:
            return "linearizability"
        if not self.live:
            return "liveness"
        if self.linearizable is None:
            return "undecided"
        return None

    @property
    def ok(self) -> bool:
        """No violation, a history decided linearizable, and liveness after the heal."""
        return self.kind is None

    def replay_command(self) -> str:
        """The command that replays this seed (its swarm is drawn from the seed again)."""
        return f"raftlab chaos --seeds 1 --first-seed {self.seed} --duration {self.duration:g} --nodes {self.nodes}"

    def report(self) -> str:
        """A failure's report: its seed and kind, then the seed's swarm and the replay command, then
        what went wrong (for a violation: the property, the step and the explained end of the trace)."""
        swarm = self.swarm if self.swarm is not None else Swarm.draw(self.seed)
        lines = [f"seed {self.seed} failed ({self.kind})", f"  swarm: {swarm.describe()}",
                 f"  replay: {self.replay_command()}"]
        return "\n".join(lines + [f"  {line}" for line in self.detail.splitlines()])


@dataclass(slots=True)
class _Client:
    id: int
    seq: int = 0
    pending: Submission | None = None  # the latest submission of its current command
    command: KVCommand | None = None  # its current command (None before the first)
    call: float = 0.0
    sent_at: float = 0.0
    history: list[Operation] = field(default_factory=list)
    reading: ReadRequest | None = None  # the read it waits for
    reads: list[ReadRequest] = field(default_factory=list)  # every read it asked (put in the history at the end)
    believed: int | None = None  # the node it believes leads: the last one that answered a read READY


def run_chaos(seed: int, duration: float = 30.0, nodes: int = 5, clients: int = 3, *,
              replica_class: type[Replica] = Replica, swarm: Swarm | None = None,
              record_trace: bool = False) -> ChaosResult:
    """Run one seed of chaos and return what happened (never raises for a Raft failure).
    `replica_class` lets tests check that a deliberately broken replica is caught, and `swarm` (default:
    `Swarm.draw(seed)`) that a chosen mix of faults catches it (the replay command does not replay a
    swarm given here). The simulation records no trace (a third faster): a seed that violates an
    invariant is run again with the trace (`record_trace`), the same run, for the explained end of
    the trace in its report."""
    swarm = Swarm.draw(seed) if swarm is None else swarm
    rng = random.Random(f"chaos/{seed}")
    sim = Simulation(nodes, seed, network=NetworkModel(latency=(0.002, 0.03)), state_machine=KVStore,
                     snapshot_delta=swarm.snapshot_delta, replica_class=replica_class, record_trace=record_trace,
                     **swarm.options())
    people = [_Client(c) for c in range(clients)]
    changes = _Changes()
    try:
        while sim.now < duration:
            _faults(sim, rng, swarm, changes)
            _membership(sim, rng, swarm, changes)
            for _ in range(rng.randint(2, 8)):  # clients act every 20 ms or so
                members = changes.active(sim)
                for client in people:
                    _drive(sim, rng, client, members)
                sim.run(0.02)
        # The final heal: everything back, a calm network, and a new write on every member within 5 s.
        sim.heal()
        sim.network.drop = sim.network.duplicate = 0.0
        for node in sim.ids:
            if node in sim.removed:
                continue  # shut down for good (restart would leave it down anyway)
            if sim.replicas[node].crashed:
                sim.restart(node)
            elif sim.paused_until(node) is not None:
                sim.pause(node, 0)  # resumes now
        final, deadline = KVStore.put(clients, 0, "final", str(seed)), sim.now + 5.0
        handles: list[Submission] = []
        live = _final_write(sim, final, None, timeout=5.0, retry=0.5, handles=handles)
        detail = "" if live else (f"{final!r} was not applied on a majority of the voters of "
                                  f"{sim.configuration()!r} within 5 s (seed {seed}; applied on "
                                  f"{sorted(_applied_on(handles))})")
        behind: tuple[int, ...] = ()
        if live:  # the other members catch up too, as a rule: those that do not within the 5 s are counted
            index = min(h.index for h in handles if h.index is not None)  # where the final write is
            sim.run_until(lambda s: not _behind(s, index), max(deadline - sim.now, 0))
            behind = _behind(sim, index)
        for client in people:  # what is still unanswered has an unknown outcome
            if client.pending is not None:
                _finish(client, None, None)
        history = [op for client in people for op in client.history]
        reads = [_read_operation(client, r) for client in people for r in client.reads
                 if r.state is not ReadState.ABANDONED]
        verdict = check(history + reads, timeout=60.0)
        if verdict.ok is not True:
            detail = f"{detail} {verdict.explain()}".strip()
        answered = sum(op.ret is not None for op in reads)
        return ChaosResult(seed, duration, nodes, sim.steps, len(history) + len(reads), None, verdict.ok, live,
                           detail, swarm, _install_snapshots(sim), answered, _abandoned(people),
                           len(reads) - answered, *changes.figures(), len(sim.configuration().members), behind)
    except InvariantViolation as violation:
        if not record_trace:  # the same run again, with the trace that the report explains
            return run_chaos(seed, duration, nodes, clients, replica_class=replica_class, swarm=swarm,
                             record_trace=True)
        return ChaosResult(seed, duration, nodes, sim.steps, 0, f"{violation.property}: {violation.detail}",
                           None, True, str(violation), swarm, _install_snapshots(sim),
                           reads_abandoned=_abandoned(people), config_changes_proposed=changes.figures()[0],
                           config_changes_refused=changes.figures()[1],
                           config_changes_committed=changes.figures()[2])


def _read_operation(client: _Client, read: ReadRequest) -> Operation:
    """A read in the history: from its request to its answer (READY), or of unknown outcome (no answer)."""
    answered = read.state is ReadState.READY
    return Operation(client.id, "read", read.key, call=read.asked, ret=read.answered if answered else None,
                     output=read.value if answered else None)


def _abandoned(people: list[_Client]) -> int:
    return sum(r.state is ReadState.ABANDONED for client in people for r in client.reads)


def _final_write(sim: Simulation, command: KVCommand, k: int | None, *, timeout: float, retry: float,
                 handles: list[Submission] | None = None) -> bool:
    """Submit `command` to the leader until `k` nodes applied it (None: a majority of the voters of the
    leader's latest configuration) (True) or `timeout` virtual seconds passed (False), resubmitting it every `retry`
    seconds, as `Simulation.one` does, and waiting a heartbeat before asking again a leader that
    refused it at once (one in a leadership transfer refuses new transitions until the transfer ends:
    asking it again at the same instant would never let virtual time advance). Each submission is
    appended to `handles` if given (a node that applied it is in the `applied_on` of the one then
    current: see `_applied_on`)."""
    deadline = sim.now + timeout
    while sim.now < deadline:
        sim.run_until(lambda s: s.leader() is not None, deadline - sim.now)
        if sim.leader() is None:
            return False
        handle = sim.submit(command)
        if handles is not None:
            handles.append(handle)
        sim.run_until(functools.partial(_settled, handle, k), min(retry, max(deadline - sim.now, 0.0)))
        if _enough(handle, k, sim):
            return True
        if _refused(handle):  # refused: wait a little before asking again
            sim.run(min(sim.heartbeat_timeout, max(deadline - sim.now, 0.0)))
    return False


def _enough(handle: Submission, k: int | None, sim: Simulation) -> bool:
    """`k` nodes applied `handle`'s transition (None: a majority of the voters of the leader's latest
    configuration)."""
    applied = handle.applied_on
    if k is not None:
        return len(applied) >= k
    voters = sim.configuration().voters
    return 2 * len(voters & applied) > len(voters)


def _behind(sim: Simulation, index: int) -> tuple[int, ...]:
    """The members of the leader's latest configuration that have not applied `index` (applied it, or
    installed a snapshot past it)."""
    replicas = sim._replicas
    return tuple(sorted(i for i in sim.configuration().members
                        if (r := replicas.get(i)) is None or r.last_applied < index))


def _refused(handle: Submission) -> bool:
    state = handle.state
    return state is not None and state.final and state is not TransitionState.APPLIED


def _settled(handle: Submission, k: int | None, sim: Simulation) -> bool:
    return _enough(handle, k, sim) or _refused(handle)


def _applied_on(handles: list[Submission]) -> set[int]:
    """The nodes that applied a transition submitted as `handles` (each resubmission tracks it from then on)."""
    return set().union(*(h.applied_on for h in handles))


def _install_snapshots(sim: Simulation) -> int:
    return sim.counters["messages"]["InstallSnapshotRequest"]


def _faults(sim: Simulation, rng: random.Random, swarm: Swarm, changes: _Changes) -> None:
    """One round of the schedule: each fault strikes with the swarm's probability for it, on the nodes
    still in play (`_Changes.active`: never a removed one)."""
    active = changes.active(sim)
    live = [i for i in active if not sim.replicas[i].crashed]
    if rng.random() < swarm.crash and live:
        sim.crash(rng.choice(live))
    crashed = [i for i in active if sim.replicas[i].crashed]
    if rng.random() < swarm.restart and crashed:
        sim.restart(rng.choice(crashed))
    if rng.random() < swarm.partition:
        sim.partition(*_two_groups(active, rng))
    if rng.random() < swarm.one_way:
        sources, destinations = _two_groups(active, rng)
        for source in sources:
            for destination in destinations:
                sim.cut(source, destination)
    if rng.random() < swarm.ring:
        order = list(active)
        rng.shuffle(order)
        _ring(sim, order)
    if rng.random() < swarm.pause:
        running = [i for i in active if not sim.replicas[i].crashed and sim.paused_until(i) is None]
        leader = sim.leader()
        if running:
            node = leader if leader in running and rng.random() < 0.5 else rng.choice(running)
            sim.pause(node, rng.choice((0.05, 0.2, 0.5, 1.5)))
    if rng.random() < swarm.heal:
        sim.heal()
    if rng.random() < swarm.network:
        sim.network.drop = rng.choice((0.0, swarm.drop / 2, swarm.drop))
        sim.network.duplicate = rng.choice((0.0, swarm.duplicate / 2, swarm.duplicate))
    if rng.random() < swarm.isolate:  # every other link restored, so that the rest can elect a leader
        leader = sim.leader()
        if leader is not None:
            others = [i for i in active if i != leader]
            rng.shuffle(others)
            voters = len(sim.configuration().voters)
            with_it = rng.randint(0, max(0, (voters - 1) // 2 - 1))  # a minority of the voters
            sim.heal()
            sim.partition([leader, *others[:with_it]], others[with_it:])
    if rng.random() < swarm.transfer:
        leader = sim.leader()
        targets = sorted(sim.configuration().voters - {leader}) if leader is not None else []
        if targets:  # (to another voter: the replica takes no other)
            sim.transfer_leadership(rng.choice(targets))
    if rng.random() < swarm.drift:  # the most adversarial rates: a slow leader, fast followers
        leader = sim.leader()
        others = [i for i in active if i != leader]
        if leader is not None and (rng.random() < 0.5 or not others):  # its lease lasts longest in real time
            sim.set_clock_rate(leader, 1 / swarm.max_rate)
        elif others:  # their timers run out soonest
            sim.set_clock_rate(rng.choice(others), swarm.max_rate)


def _two_groups(active: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    nodes = list(active)
    rng.shuffle(nodes)
    cut = rng.randint(1, len(nodes) - 1) if len(nodes) > 1 else 1
    return nodes[:cut], nodes[cut:]


def _ring(sim: Simulation, order: list[int]) -> None:
    """The ring of majorities on the nodes in `order`: `Simulation.ring` when they are all the nodes, else
    the same cuts among them (each keeps its links to the ``k = ceil((m // 2) / 2)`` nearest on each
    side of the ring of its m nodes), so that removed nodes do not count."""
    if sorted(order) == list(sim.ids):
        sim.ring(order)
        return
    m = len(order)
    k = (m // 2 + 1) // 2
    for p, a in enumerate(order):
        for q, b in enumerate(order):
            if a != b and min(abs(p - q), m - abs(p - q)) > k:
                sim.cut(a, b)


@dataclass(slots=True)
class _Changes:
    """A seed's membership changes: every proposal made (`Submission`s), the node being added, and the
    nodes added whose addition was lost while the configuration moved on (given up on: started with
    members that are no longer the configuration's, they are left alone)."""

    handles: list[Submission] = field(default_factory=list)
    joining: int | None = None  # the node added last, until it is in the leader's configuration
    joining_with: frozenset[int] = frozenset()  # the members it was started with
    given_up: set[int] = field(default_factory=set)

    def active(self, sim: Simulation) -> list[int]:
        """The nodes in play: neither removed nor given up on."""
        removed, given_up = sim._removed, self.given_up  # (the set itself: this runs every round)
        return [i for i in sim.ids if i not in removed and i not in given_up]

    def figures(self) -> tuple[int, int, int]:
        """Proposed, refused (ABANDONED_REFUSED), committed (each log index once: a change proposed again
        after its leader was lost is counted once)."""
        refused = sum(h.state is TransitionState.ABANDONED_REFUSED for h in self.handles)
        committed = {h.index for h in self.handles if h.applied_on and h.index is not None}
        return len(self.handles), refused, len(committed)


def _membership(sim: Simulation, rng: random.Random, swarm: Swarm, changes: _Changes) -> None:
    """One round of membership change: with the swarm's probability, one proposal to the leader (now and
    then a second one at once, which a correct leader refuses while the first is uncommitted: MC-ONE)."""
    if rng.random() >= swarm.membership:
        return
    for _ in range(2 if rng.random() < 0.25 else 1):
        _change(sim, rng, swarm, changes)


def _change(sim: Simulation, rng: random.Random, swarm: Swarm, changes: _Changes) -> None:
    """Propose one change from the leader's latest configuration: propose again the addition of a node
    not in it yet, else promote a learner (refused until it caught up) or remove it, else add a node
    (up to `MAX_VOTERS` voters) or remove a voter (the leader itself with `Swarm.remove_leader`; down to
    `MIN_VOTERS` voters, 2 now and then). Nothing without a leader."""
    leader = sim.leader()
    if leader is None:
        return
    config = sim.configuration()
    changes.given_up -= config.members  # (one given up on can come back, with an entry of an old leader)
    joining = changes.joining
    if joining is not None:
        if joining in config.members:
            changes.joining = None
        elif config.members == changes.joining_with:  # refused, or lost with its leader: again
            changes.handles.append(sim.submit(Configuration(config.voters, config.learners | {joining}),
                                              to=leader))
            return
        else:  # the configuration moved on: it would not know its new members (leave it alone)
            changes.given_up.add(joining)
            changes.joining = None
    voters, learners = config.voters, config.learners
    if learners and rng.random() < 0.8:
        node = rng.choice(sorted(learners))
        changes.handles.append(sim.promote(node) if rng.random() < 0.8 else sim.remove_node(node))
        return
    removable = len(voters) > MIN_VOTERS or (len(voters) > 2 and rng.random() < BELOW_MIN)
    if len(voters) < MAX_VOTERS and (not removable or rng.random() < 0.5):
        changes.joining_with = config.members
        changes.joining = sim.add_node()
        changes.handles.append(sim.changes[-1])
    elif removable:
        others = sorted(voters - {leader})
        node = leader if leader in voters and rng.random() < swarm.remove_leader else rng.choice(others)
        changes.handles.append(sim.remove_node(node))


def _drive(sim: Simulation, rng: random.Random, client: _Client, members: list[int]) -> None:
    """One client: its reads (`_drive_reads`), then its commands: answer what was answered, retry what
    looks lost, send something new (to the leader, else to one of `members`, the nodes in play:
    `_Changes.active`)."""
    _drive_reads(sim, rng, client, members)
    handle = client.pending
    if handle is not None:
        if handle.answer is TransitionState.APPLIED:
            _finish(client, handle.replied, handle.result)
        elif handle.answer is not None or _unsettled(handle.state) or sim.now - client.sent_at > 0.5:
            _submit(sim, rng, client, members)  # the same command again: the KV store applies it at most once
        return
    if rng.random() < 0.5:
        return
    client.seq += 1
    key, op = rng.choice(KEYS), rng.choice(("put", "put", "get", "append", "cas", "delete"))
    value = f"{client.id}.{client.seq}"
    if op == "cas":
        current = rng.choice([None, f"{rng.randrange(3)}.{rng.randint(1, max(1, client.seq))}"])
        client.command = KVStore.cas(client.id, client.seq, key, current, value)
    elif op in ("get", "delete"):
        client.command = getattr(KVStore, op)(client.id, client.seq, key)
    else:
        client.command = getattr(KVStore, op)(client.id, client.seq, key, value)
    client.call = sim.now
    _submit(sim, rng, client, members)


_ON_ITS_WAY = (None, TransitionState.QUEUED, TransitionState.COMMITTED, TransitionState.APPLIED)


def _unsettled(state: TransitionState | None) -> bool:
    """A state that says neither "on its way" nor "final" (UNKNOWN: removed from that node's log, it may
    or may not commit elsewhere): the client retries with the same id at once, as after a timeout."""
    return state not in _ON_ITS_WAY and not state.abandoned


def _drive_reads(sim: Simulation, rng: random.Random, client: _Client, members: list[int]) -> None:
    """A client's reads, beside its commands (as a second thread of the client would): one at a time,
    given up on after `READ_TIMEOUT`; the node that answered one READY is where the next one goes."""
    read = client.reading
    if read is not None:
        if read.state is None and sim.now - read.asked <= READ_TIMEOUT:
            return
        client.reading = None  # answered, abandoned (it did not happen), or given up on (still pending)
        client.believed = read.node if read.state is ReadState.READY else None
    if rng.random() < READ_RATE:
        _read(sim, rng, client, rng.choice(KEYS), members)


def _read(sim: Simulation, rng: random.Random, client: _Client, key: str, members: list[int] | None = None) -> None:
    """A read without a log write, at the node the client believes leads (unless it was removed since),
    the leader, or any of `members` (default: every node)."""
    leader, draw = sim.leader(), rng.random()
    members = list(sim.ids) if members is None else members
    if client.believed is not None and client.believed not in members:
        client.believed = None
    if client.believed is not None and draw < 0.8:
        target = client.believed
    elif leader is not None and draw < 0.9:
        target = leader
    else:
        target = rng.choice(members)
    client.reading = sim.read(key, to=target)
    client.reads.append(client.reading)


def _submit(sim: Simulation, rng: random.Random, client: _Client, members: list[int]) -> None:
    leader = sim.leader()
    target = leader if leader is not None and rng.random() < 0.8 else rng.choice(members)
    client.pending = sim.submit(client.command, to=target)
    client.sent_at = sim.now


def _finish(client: _Client, ret: float | None, output: object) -> None:
    c = client.command
    assert c is not None, "a client finishes only a command it sent"
    client.history.append(Operation(client.id, c.op, c.key, c.value, c.expected, call=client.call, ret=ret,
                                    output=output))
    client.pending = None


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """The outcome of a campaign."""

    results: tuple[ChaosResult, ...]
    wall_seconds: float

    @property
    def failures(self) -> tuple[ChaosResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def exit_code(self) -> int:
        """0 if every seed is clean, else `EXIT_CODES` of the most serious kind of failure."""
        kinds = {r.kind for r in self.results}
        return next((EXIT_CODES[k] for k in KINDS if k in kinds), 0)

    def hash(self) -> str:
        """SHA-256 of the results (not the wall time): equal campaigns have equal hashes, on any machine."""
        digest = hashlib.sha256()
        for result in self.results:
            digest.update(json.dumps(asdict(result), sort_keys=True, default=repr).encode())
        return digest.hexdigest()

    def as_dict(self) -> dict[str, int | float | str]:
        """The campaign's figures, as printed by ``raftlab chaos --json``. A seed is counted under each
        kind of failure it shows (a seed can be both non-linearizable and not live)."""
        events = sum(r.events for r in self.results)
        return {"seeds": len(self.results), "failures": len(self.failures),
                "violations": sum(r.violation is not None for r in self.results),
                "nonlinearizable": sum(r.linearizable is False for r in self.results),
                "liveness_failures": sum(not r.live for r in self.results),
                "undecided": sum(r.undecided for r in self.results),
                "install_snapshots": sum(r.install_snapshots for r in self.results),
                "reads": sum(r.reads for r in self.results),
                "reads_abandoned": sum(r.reads_abandoned for r in self.results),
                "reads_unanswered": sum(r.reads_unanswered for r in self.results),
                "seeds_without_reads": sum(r.reads == 0 for r in self.results),
                "config_changes_proposed": sum(r.config_changes_proposed for r in self.results),
                "config_changes_refused": sum(r.config_changes_refused for r in self.results),
                "config_changes_committed": sum(r.config_changes_committed for r in self.results),
                "seeds_without_config_changes": sum(r.config_changes_committed == 0 for r in self.results),
                "seeds_with_members_behind": sum(bool(r.behind) for r in self.results),
                "events": events,
                "events_per_s": round(events / self.wall_seconds) if self.wall_seconds else 0,
                "results_hash": self.hash()[:16]}


def run_campaign(seeds: Iterable[int], duration: float = 30.0, nodes: int = 5, *,
                 executor: Executor | None = None, progress: Callable[[ChaosResult], None] | None = None,
                 replica_class: type[Replica] = Replica,
                 swarms: Callable[[int], Swarm] | None = None) -> CampaignSummary:
    """Run `run_chaos` for every seed, on `executor` if given (else here, one after the other);
    `progress` is called with each result as it comes. `replica_class` and `swarms` (a seed's swarm,
    instead of `Swarm.draw`) are for tests (on an executor, they must be importable by its workers)."""
    start, results = time.perf_counter(), []
    seeds = list(seeds)
    one = functools.partial(_run_one, duration=duration, nodes=nodes, replica_class=replica_class, swarms=swarms)
    outcomes: Iterable[ChaosResult] = map(one, seeds) if executor is None else executor.map(one, seeds)
    for result in outcomes:
        results.append(result)
        if progress is not None:
            progress(result)
    return CampaignSummary(tuple(results), time.perf_counter() - start)


def _run_one(seed: int, *, duration: float, nodes: int, replica_class: type[Replica],
             swarms: Callable[[int], Swarm] | None) -> ChaosResult:
    return run_chaos(seed, duration, nodes, replica_class=replica_class,
                     swarm=None if swarms is None else swarms(seed))
