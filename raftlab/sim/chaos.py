"""Chaos campaigns: many seeds, each a random schedule of faults under a KV workload, each seed with
its own mix of faults (swarm testing).

Every seed runs clients that retry, sending KV commands, while faults strike: crashes and restarts,
partitions into two groups, one-way partitions (every link from one group to another cut, the links
back kept), the ring of majorities (`Simulation.ring`: each node sees a majority, each a different
one), process pauses (`Simulation.pause`), heals, and loss and duplication rates up to 30%.

Swarm testing (Groce et al., ISSTA 2012; TigerBeetle's simulator draws its parameters per seed too):
rather than every seed mixing every fault at fixed rates, each seed first draws, from its own rng, a
`Swarm`: the replicas' `snapshot_delta` (0, 3, 10 or 50) and a probability for each fault, often
zero. Some seeds then hammer one fault and others combine a few, which reaches corners that a fixed
mix makes rare; with `snapshot_delta` drawn, most campaigns send InstallSnapshot many times. The
swarm is a function of the seed alone, so `ChaosResult.replay_command` replays a failure exactly, and
a failure's report starts with its swarm.

The invariants are checked throughout (`raftlab.sim.invariants`); at the end the client history is
checked for linearizability, the cluster is healed (links, network, crashed nodes restarted, paused
ones resumed), and every node must catch up and a new write must commit within 5 s of virtual time.
A seed fails with one of four kinds (`ChaosResult.kind`): "safety" (an invariant was violated),
"linearizability" (the history is not linearizable), "liveness" (no recovery after the heal), or
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
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..check import Operation, check
from ..core import Replica, TransitionState
from ..machines import KVCommand, KVStore
from .invariants import InvariantViolation
from .network import NetworkModel
from .simulation import Simulation
from .submission import Submission

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
}


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

    @classmethod
    def draw(cls, seed: int) -> Swarm:
        """The swarm of `seed` (from its own rng, ``random.Random(f"swarm/{seed}")``)."""
        rng = random.Random(f"swarm/{seed}")
        values: dict[str, Any] = {f.name: rng.choice(SWARM_CHOICES[f.name]) for f in fields(cls)}
        return cls(**values)

    def describe(self) -> str:
        """One line: ``snapshot_delta=10 crash=0.08 ...``."""
        return " ".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))


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


def run_chaos(seed: int, duration: float = 30.0, nodes: int = 5, clients: int = 3, *,
              replica_class: type[Replica] = Replica) -> ChaosResult:
    """Run one seed of chaos and return what happened (never raises for a Raft failure).
    `replica_class` lets tests check that a deliberately broken replica is caught."""
    swarm = Swarm.draw(seed)
    rng = random.Random(f"chaos/{seed}")
    sim = Simulation(nodes, seed, network=NetworkModel(latency=(0.002, 0.03)), state_machine=KVStore,
                     snapshot_delta=swarm.snapshot_delta, replica_class=replica_class)
    people = [_Client(c) for c in range(clients)]
    try:
        while sim.now < duration:
            _faults(sim, rng, swarm)
            for _ in range(rng.randint(2, 8)):  # clients act every 20 ms or so
                for client in people:
                    _drive(sim, rng, client)
                sim.run(0.02)
        # The final heal: everything back, a calm network, and a new write everywhere within 5 s.
        sim.heal()
        sim.network.drop = sim.network.duplicate = 0.0
        for node in sim.ids:
            if sim.replicas[node].crashed:
                sim.restart(node)
            elif sim.paused_until(node) is not None:
                sim.pause(node, 0)  # resumes now
        final = KVStore.put(clients, 0, "final", str(seed))
        try:
            sim.one(final, k=nodes, timeout=5.0, retry=0.5)
            live, detail = True, ""
        except TimeoutError as error:
            live, detail = False, str(error)
        for client in people:  # what is still unanswered has an unknown outcome
            if client.pending is not None:
                _finish(client, None, None)
        history = [op for client in people for op in client.history]
        verdict = check(history, timeout=60.0)
        if verdict.ok is not True:
            detail = f"{detail} {verdict}".strip()
        return ChaosResult(seed, duration, nodes, sim.steps, len(history), None, verdict.ok, live, detail, swarm,
                           _install_snapshots(sim))
    except InvariantViolation as violation:
        return ChaosResult(seed, duration, nodes, sim.steps, 0, f"{violation.property}: {violation.detail}",
                           None, True, str(violation), swarm, _install_snapshots(sim))


def _install_snapshots(sim: Simulation) -> int:
    return sim.counters["messages"]["InstallSnapshotRequest"]


def _faults(sim: Simulation, rng: random.Random, swarm: Swarm) -> None:
    """One round of the schedule: each fault strikes with the swarm's probability for it."""
    live = [i for i in sim.ids if not sim.replicas[i].crashed]
    if rng.random() < swarm.crash and live:
        sim.crash(rng.choice(live))
    crashed = [i for i in sim.ids if sim.replicas[i].crashed]
    if rng.random() < swarm.restart and crashed:
        sim.restart(rng.choice(crashed))
    if rng.random() < swarm.partition:
        sim.partition(*_two_groups(sim, rng))
    if rng.random() < swarm.one_way:
        sources, destinations = _two_groups(sim, rng)
        for source in sources:
            for destination in destinations:
                sim.cut(source, destination)
    if rng.random() < swarm.ring:
        order = list(sim.ids)
        rng.shuffle(order)
        sim.ring(order)
    if rng.random() < swarm.pause:
        running = [i for i in sim.ids if not sim.replicas[i].crashed and sim.paused_until(i) is None]
        leader = sim.leader()
        if running:
            node = leader if leader in running and rng.random() < 0.5 else rng.choice(running)
            sim.pause(node, rng.choice((0.05, 0.2, 0.5, 1.5)))
    if rng.random() < swarm.heal:
        sim.heal()
    if rng.random() < swarm.network:
        sim.network.drop = rng.choice((0.0, swarm.drop / 2, swarm.drop))
        sim.network.duplicate = rng.choice((0.0, swarm.duplicate / 2, swarm.duplicate))


def _two_groups(sim: Simulation, rng: random.Random) -> tuple[list[int], list[int]]:
    nodes = list(sim.ids)
    rng.shuffle(nodes)
    cut = rng.randint(1, sim.n - 1) if sim.n > 1 else 1
    return nodes[:cut], nodes[cut:]


def _drive(sim: Simulation, rng: random.Random, client: _Client) -> None:
    """One client: answer what was answered, retry what looks lost, send something new."""
    handle = client.pending
    if handle is not None:
        if handle.answer is TransitionState.APPLIED:
            _finish(client, handle.replied, handle.result)
        elif handle.answer is not None or _unsettled(handle.state) or sim.now - client.sent_at > 0.5:
            _submit(sim, rng, client)  # the same command again: the KV store applies it at most once
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
    _submit(sim, rng, client)


_ON_ITS_WAY = (None, TransitionState.QUEUED, TransitionState.COMMITTED, TransitionState.APPLIED)


def _unsettled(state: TransitionState | None) -> bool:
    """A state that says neither "on its way" nor "final" (UNKNOWN: removed from that node's log, it may
    or may not commit elsewhere): the client retries with the same id at once, as after a timeout."""
    return state not in _ON_ITS_WAY and not state.abandoned


def _submit(sim: Simulation, rng: random.Random, client: _Client) -> None:
    leader = sim.leader()
    target = leader if leader is not None and rng.random() < 0.8 else rng.choice(sim.ids)
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
                "install_snapshots": sum(r.install_snapshots for r in self.results), "events": events,
                "events_per_s": round(events / self.wall_seconds) if self.wall_seconds else 0,
                "results_hash": self.hash()[:16]}


def run_campaign(seeds: Iterable[int], duration: float = 30.0, nodes: int = 5, *,
                 executor: Executor | None = None, progress: Callable[[ChaosResult], None] | None = None,
                 replica_class: type[Replica] = Replica) -> CampaignSummary:
    """Run `run_chaos` for every seed, on `executor` if given (else here, one after the other);
    `progress` is called with each result as it comes. `replica_class` is for tests (on an executor,
    it must be importable by its workers)."""
    start, results = time.perf_counter(), []
    seeds = list(seeds)
    one = functools.partial(run_chaos, duration=duration, nodes=nodes, replica_class=replica_class)
    outcomes: Iterable[ChaosResult] = map(one, seeds) if executor is None else executor.map(one, seeds)
    for result in outcomes:
        results.append(result)
        if progress is not None:
            progress(result)
    return CampaignSummary(tuple(results), time.perf_counter() - start)
