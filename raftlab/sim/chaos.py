"""Chaos campaigns: many seeds, each a random schedule of faults under a KV workload.

Every seed runs crashes and restarts, partitions and heals, and drop and duplicate rates up to 30%,
while clients that retry send KV commands. The invariants are checked throughout; at the end the
client history is checked for linearizability, the cluster is healed, and every node must catch up
and a new write must commit within 5 s of virtual time.

`run_campaign` takes any `concurrent.futures.Executor`: a `ProcessPoolExecutor`, or the executor of
a cluster scheduler (for example ``dask.distributed.Client(...).get_executor()``), so a campaign of
many thousands of seeds can run across machines unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ..check import Operation, check
from ..core import Replica, TransitionState
from ..machines import KVCommand, KVStore
from .invariants import InvariantViolation
from .network import NetworkModel
from .simulation import Simulation
from .submission import Submission

KEYS = ("x", "y", "z")


@dataclass(frozen=True, slots=True)
class ChaosResult:
    """The outcome of one seed."""

    seed: int
    duration: float  # virtual seconds of chaos (before the final heal)
    nodes: int
    events: int  # simulation steps taken
    operations: int  # client operations in the history
    violation: str | None = None  # the invariant violated, with details
    linearizable: bool | None = None  # the client history's verdict (None: not checked or unknown)
    live: bool = True  # after the final heal, every node caught up and a new write committed in 5 s
    detail: str = ""  # what went wrong, if anything

    @property
    def ok(self) -> bool:
        """No violation, a linearizable history and liveness after the heal."""
        return self.violation is None and self.linearizable is not False and self.live

    def replay_command(self) -> str:
        """The command that replays this seed."""
        return f"raftlab chaos --seeds 1 --first-seed {self.seed} --duration {self.duration:g} --nodes {self.nodes}"


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
    rng = random.Random(f"chaos/{seed}")
    sim = Simulation(nodes, seed, network=NetworkModel(latency=(0.002, 0.03)), state_machine=KVStore,
                     replica_class=replica_class)
    people = [_Client(c) for c in range(clients)]
    crashed: set[int] = set()
    try:
        while sim.now < duration:
            if rng.random() < 0.5:
                _fault(sim, rng, crashed)
            for _ in range(rng.randint(2, 8)):  # clients act every 20 ms or so
                for client in people:
                    _drive(sim, rng, client)
                sim.run(0.02)
        # The final heal: everything back, a calm network, and a new write everywhere within 5 s.
        sim.heal()
        sim.network.drop = sim.network.duplicate = 0.0
        for node in sorted(crashed):
            sim.restart(node)
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
        if verdict.ok is False:
            detail = f"{detail} {verdict}".strip()
        return ChaosResult(seed, duration, nodes, sim.steps, len(history), None, verdict.ok, live, detail)
    except InvariantViolation as violation:
        return ChaosResult(seed, duration, nodes, sim.steps, 0, f"{violation.property}: {violation.detail}",
                           None, True, str(violation))


def _fault(sim: Simulation, rng: random.Random, crashed: set[int]) -> None:
    roll = rng.random()
    if roll < 0.15 and len(crashed) < sim.n:
        node = rng.choice([i for i in sim.ids if i not in crashed])
        sim.crash(node)
        crashed.add(node)
    elif roll < 0.35 and crashed:
        node = rng.choice(sorted(crashed))
        sim.restart(node)
        crashed.discard(node)
    elif roll < 0.45:
        nodes = list(sim.ids)
        rng.shuffle(nodes)
        cut = rng.randint(1, sim.n - 1)
        sim.partition(nodes[:cut], nodes[cut:])
    elif roll < 0.60:
        sim.heal()
    elif roll < 0.70:
        sim.network.drop = rng.choice([0.0, 0.0, 0.05, 0.1, 0.2, 0.3])
        sim.network.duplicate = rng.choice([0.0, 0.0, 0.05, 0.1, 0.3])


def _drive(sim: Simulation, rng: random.Random, client: _Client) -> None:
    """One client: answer what was answered, retry what looks lost, send something new."""
    handle = client.pending
    if handle is not None:
        if handle.answer is TransitionState.APPLIED:
            _finish(client, handle.replied, handle.result)
        elif handle.answer is not None or sim.now - client.sent_at > 0.5:
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

    def as_dict(self) -> dict[str, int | float]:
        """The campaign's figures, as printed by ``raftlab chaos --json``."""
        events = sum(r.events for r in self.results)
        return {"seeds": len(self.results), "violations": sum(r.violation is not None for r in self.results),
                "nonlinearizable": sum(r.linearizable is False for r in self.results),
                "liveness_failures": sum(not r.live for r in self.results), "events": events,
                "events_per_s": round(events / self.wall_seconds) if self.wall_seconds else 0}


def run_campaign(seeds: Iterable[int], duration: float = 30.0, nodes: int = 5, *,
                 executor: Executor | None = None,
                 progress: Callable[[ChaosResult], None] | None = None) -> CampaignSummary:
    """Run `run_chaos` for every seed, on `executor` if given (else here, one after the other);
    `progress` is called with each result as it comes."""
    start, results = time.perf_counter(), []
    seeds = list(seeds)
    if executor is None:
        outcomes: Iterable[ChaosResult] = (run_chaos(s, duration, nodes) for s in seeds)
    else:
        outcomes = executor.map(run_chaos, seeds, [duration] * len(seeds), [nodes] * len(seeds))
    for result in outcomes:
        results.append(result)
        if progress is not None:
            progress(result)
    return CampaignSummary(tuple(results), time.perf_counter() - start)
