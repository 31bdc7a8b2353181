"""Named fault recipes: the situations that the mechanisms "beyond Figure 2" are for, as data.

Ongaro's thesis and etcd raft's practice add PreVote, CheckQuorum, leadership transfer and reads
without log writes (ReadIndex, leases) to Figure 2 (rules PV-*, CQ-*, LT-*, RI-* of raft-rules.md).
Each answers a situation that a plain Figure 2 cluster handles badly. A `Recipe` names one such
situation, says in a student's words what happens and why (`explain`), and stages it on a fresh
`Simulation` (`setup`): the first election, then the faults at the right virtual times. `RECIPES`
holds them by name, for the notebook ``08_beyond_figure_2``, the tests and the app's scenario menu:

    sim = build("partial-partition", seed=3)                       # the story as the recipe tells it
    sim = build("partial-partition", seed=3, **RECIPES["partial-partition"].compare)  # the other side
    staged = stage("disruptive-rejoin", seed=1, pre_vote=True)    # the same, with its cast of nodes
    staged.cast["leader"], staged.sim.run(1.0)

`build(name, seed=1, **options)` returns the simulation as the setup leaves it; its keyword arguments
override the recipe's: a recipe's own parameters (`Recipe.params`, such as the leader's clock rate of
"lease-drift"), ``n``, and any other keyword argument of `Simulation` (the `Replica` options
``pre_vote``, ``check_quorum``, ``read_lease``, ``drift_bound``, ``max_inflight``, and
``record_trace``, ``check_invariants``, ``network``, ...). `stage` does the same and returns a `Staged`:
the simulation, who plays which part (`Staged.cast`: node ids, and the handles of requests the setup
made) and where the setup ended in the trace, so that what follows can be counted
(`elections_since`). Every setup is an ordinary sequence of interventions, recorded in the
simulation's history: `Simulation.rewind` replays it, and the app can scrub back through it.

Helpers for the stories: `first_leader` (an election, then a committed write), `write_every` (a
client writing every 50 ms, as in the partial-partition measurements of issue 13), `elections_since`
and `unapplied` (acknowledged writes that some live node has not applied).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..core import AppendEntryResponse, EventKind, ReadState, TransitionState
from ..machines import KVStore
from .simulation import Simulation
from .submission import ReadRequest, Submission
from .trace import SimKind

__all__ = [
    "LEASE_DRIFT_RATE", "RECIPES", "Recipe", "Staged", "build", "elections_since", "first_leader", "stage", "stale",
    "unapplied", "write_every",
]

Setup = Callable[..., dict[str, Any]]
"""A recipe's setup: ``setup(sim, **params) -> cast``; it applies the faults (running the simulation as
needed) and returns who plays which part: node ids by role, and handles of the requests it made."""

LEASE_DRIFT_RATE = 0.4
"""The leader's clock rate in "lease-drift": far below ``1 / drift_bound`` (0.91 for the default 1.1)."""


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Recipe:
    """A named situation, staged on a fresh simulation.

    Attributes:
        name: the key in `RECIPES` ("partial-partition").
        title: one line for a menu.
        explain: what a student sees and why, in a few sentences (plain text).
        n: the number of nodes.
        options: keyword arguments of `Simulation` the story is told with (for example ``pre_vote=True``).
        setup: ``setup(sim, **params) -> cast``: the first election and the faults (see `Setup`).
        params: the setup's own parameters and their defaults (``build`` overrides them by name).
        compare: the keyword arguments of `build` that tell the other side of the story: the mechanism
            switched on when the recipe shows the problem without it, off when the recipe shows it
            working, or (lease-drift) a clock within the drift bound.
    """

    name: str
    title: str
    explain: str
    n: int
    options: Mapping[str, Any]
    setup: Setup
    params: Mapping[str, Any] = field(default_factory=_frozen)
    compare: Mapping[str, Any] = field(default_factory=_frozen)

    def __post_init__(self) -> None:  # read-only mappings, so that a recipe cannot be changed by a caller
        for name in ("options", "params", "compare"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class Staged:
    """A recipe's simulation as its setup left it."""

    recipe: Recipe
    sim: Simulation
    cast: Mapping[str, Any]  # node ids by role ("leader", "follower", ...) and the setup's request handles
    mark: int  # the number of trace events when the setup ended (0 without a trace)
    at: float  # the virtual time when the setup ended, seconds


def stage(name: str, seed: int = 1, **options: Any) -> Staged:
    """Make the simulation of recipe `name` with `seed`, run its setup and return it with its cast.
    `options` override the recipe's parameters (`Recipe.params`), ``n`` and its `Simulation` options.
    Raises KeyError for an unknown name, ValueError for an unknown option."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise KeyError(f"no recipe {name!r}; there are: {', '.join(RECIPES)}")
    params = {**recipe.params, **{k: v for k, v in options.items() if k in recipe.params}}
    settings = {**recipe.options, **{k: v for k, v in options.items() if k not in recipe.params}}
    n = settings.pop("n", recipe.n)
    sim = Simulation(n, seed=seed, **settings)
    cast = recipe.setup(sim, **params)
    return Staged(recipe, sim, _frozen(cast), len(sim.trace), sim.now)


def build(name: str, seed: int = 1, **options: Any) -> Simulation:
    """The simulation of recipe `name` with `seed`, as its setup leaves it (see `stage`)."""
    return stage(name, seed, **options).sim


# ----- helpers for the stories -------------------------------------------------------------------------


def first_leader(sim: Simulation, timeout: float = 5.0) -> int:
    """Run until a leader is elected and has committed a first write (``x = "1"``, client 1), so
    that it leads for certain; returns its id. Raises TimeoutError if no leader is elected in time."""
    sim.run_until(lambda s: s.leader() is not None, timeout)
    leader = sim.leader()
    if leader is None:
        raise TimeoutError(f"no leader within {timeout} s (seed {sim.seed})")
    sim.one(KVStore.put(1, 1, "x", "1"), timeout=timeout)
    settled = sim.leader()
    assert settled is not None  # sim.one returned: a leader applied the write
    return settled


def _followers(sim: Simulation, leader: int) -> list[int]:
    return [i for i in sim.ids if i != leader]


def write_every(sim: Simulation, seconds: float, every: float = 0.05, key: str = "w",
                client: int = 100) -> list[Submission]:
    """A client that sends a write (``put key k``, k = 1, 2, ...) to the current leader (else node 0)
    every `every` seconds for `seconds` seconds of virtual time, never waiting for an answer. Returns
    the handles: the acknowledged writes are those whose `answer` is APPLIED."""
    handles = []
    end = sim.now + seconds
    k = 0
    while sim.now < end - 1e-9:
        k += 1
        handles.append(sim.submit(KVStore.put(client, k, key, str(k))))
        sim.run(min(every, end - sim.now))
    return handles


def elections_since(sim: Simulation, mark: int) -> int:
    """The elections won (``became_leader`` events) after the first `mark` events of the trace; a
    leadership lost and won back by the same node counts too. Needs the trace (``record_trace=True``)."""
    if not sim.record_trace:
        raise ValueError("elections_since reads the trace: make the simulation with record_trace=True")
    return sum(1 for e in sim.trace.events[mark:] if e.kind == EventKind.BECAME_LEADER)


def unapplied(sim: Simulation, submissions: list[Submission]) -> list[Submission]:
    """The acknowledged submissions (answered APPLIED) that some live node has not applied: lost
    writes, once the cluster has had time to catch up."""
    live = {i for i in sim.ids if not sim.replicas[i].crashed}
    return [s for s in submissions if s.answer is TransitionState.APPLIED and not live <= s.applied_on]


# ----- the recipes' setups ---------------------------------------------------------------------------


def _disruptive_rejoin(sim: Simulation, seconds: float = 1.0) -> dict[str, Any]:
    leader = first_leader(sim)
    follower = _followers(sim, leader)[0]
    term = sim.replicas[leader].term
    back = sim.now + seconds
    sim.disconnect(follower)
    sim.one(KVStore.put(2, 1, "x", "2"))  # the others go on without it
    sim.run(max(back - sim.now, 0.0))
    sim.connect(follower)
    return {"leader": leader, "follower": follower, "term": term}


def _partial_partition(sim: Simulation, one_way: bool = False) -> dict[str, Any]:
    leader = first_leader(sim)
    follower, third = _followers(sim, leader)[:2]
    sim.cut(leader, follower)
    if not one_way:
        sim.cut(follower, leader)
    return {"leader": leader, "follower": follower, "third": third, "term": sim.replicas[leader].term}


def _partial_partition_one_way(sim: Simulation) -> dict[str, Any]:
    return _partial_partition(sim, one_way=True)


def _isolated_leader(sim: Simulation) -> dict[str, Any]:
    leader = first_leader(sim)
    term = sim.replicas[leader].term
    sim.disconnect(leader)
    return {"leader": leader, "term": term}


def _transfer(sim: Simulation, to: int | None = None) -> dict[str, Any]:
    leader = first_leader(sim)
    target = _followers(sim, leader)[-1] if to is None else to
    if target == leader:
        raise ValueError(f"node {to} leads already: transfer to one of {_followers(sim, leader)}")
    sim.drop_next(leader, target)  # the target misses a write, so the transfer must catch it up (LT-CATCHUP)
    written = sim.one(KVStore.put(2, 1, "x", "2"))  # acknowledged: the leader and the other follower hold it
    sim.transfer_leadership(target)
    return {"leader": leader, "target": target, "term": sim.replicas[leader].term, "written": written}


def _stale_read(sim: Simulation) -> dict[str, Any]:
    leader = first_leader(sim)
    sim.one(KVStore.put(2, 1, "x", "old"))
    sim.partition([leader], _followers(sim, leader))
    sim.run_until(lambda s: s.leader() not in (None, leader), 5.0)
    new_leader = sim.leader()
    if new_leader in (None, leader):
        raise TimeoutError(f"the majority side elected no leader within 5 s (seed {sim.seed})")
    written = sim.one(KVStore.put(3, 1, "x", "new"))  # acknowledged: every later read must see it
    local = sim.replicas[leader].machine.read("x")  # the naive read: the old leader's own state machine
    read_index = sim.read("x", to=leader)  # ReadIndex: it needs a majority to confirm the old leader
    through_log = sim.submit(KVStore.get(4, 1, "x"), to=leader)  # a read through the log: never commits
    fresh = sim.read("x", to=new_leader)
    return {"leader": leader, "new_leader": new_leader, "written": written, "local": local,
            "read_index": read_index, "through_log": through_log, "fresh": fresh}


def _lease_drift(sim: Simulation, rate: float = LEASE_DRIFT_RATE, settle: float = 0.5) -> dict[str, Any]:
    leader = first_leader(sim)
    sim.set_clock_rate(leader, rate)  # from now on its clock, and so its lease, runs at `rate`
    sim.one(KVStore.put(2, 1, "x", "old"))
    sim.run(settle)
    while True:  # cut it off just as an answer to its heartbeat arrives: its lease has just been renewed
        event = sim.step()
        if event is None:
            raise RuntimeError(f"the simulation stopped (seed {sim.seed})")
        if (event.kind == SimKind.DELIVER and event.data["to"] == leader
                and isinstance(event.data["message"], AppendEntryResponse)):
            break
    cut_at = sim.now
    sim.disconnect(leader)
    sim.run_until(lambda s: s.leader() not in (None, leader), 5.0)
    new_leader = sim.leader()
    if new_leader in (None, leader):
        raise TimeoutError(f"no new leader within 5 s (seed {sim.seed})")
    written = sim.one(KVStore.put(3, 1, "x", "new"))
    read = sim.read("x", to=leader)  # a lease read, if the old leader's slow clock says its lease holds
    return {"leader": leader, "new_leader": new_leader, "rate": rate, "cut_at": cut_at, "written": written,
            "read": read}


def stale(read: ReadRequest, latest: Any) -> bool:
    """Whether `read` was answered READY with a value other than `latest` (the latest acknowledged write)."""
    return read.state is ReadState.READY and read.value != latest


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        "disruptive-rejoin", "A follower cut off for 1 s comes back and deposes a healthy leader",
        "A follower is disconnected for one second while the other two go on writing. Alone, it hears no "
        "leader: its election timer fires again and again, and each time it becomes a candidate of a new "
        "term that nobody hears. It comes back three to five terms ahead of the leader. Its first message "
        "(a VoteRequest, or an answer to a heartbeat) carries that term, and a leader that sees a higher "
        "term must step down (ALL-TERM): the healthy leader is deposed, and the cluster stops for an "
        "election it did not need. The returning node's log is behind, so it cannot even win. With PreVote "
        "(pre_vote=True) a node first asks whether it could win, without raising its term (PV-ASK); its "
        "peers, who still hear from the leader, say no (PV-GRANT), so its term stays put and the leader "
        "keeps leading.",
        3, {}, _disruptive_rejoin, params={"seconds": 1.0}, compare={"pre_vote": True}),
    Recipe(
        "partial-partition", "A partial partition: the leader and one follower cannot talk, both reach the third",
        "The link between the leader and one follower goes down, both ways, while both still reach the third "
        "node, as in Cloudflare's outage of 2 November 2020. The cut-off follower hears no heartbeat, stands "
        "for a higher term, and the third node, seeing that term, drops out of the leader's term: the leader "
        "is deposed. Whoever wins next, if it is one of the two that cannot talk, the story starts again, "
        "until the third node happens to win: it reaches both. With PreVote and CheckQuorum (pre_vote=True, "
        "check_quorum=True) the third node, which still hears from the leader, refuses the cut-off "
        "follower's pre-votes (PV-GRANT), and the leader keeps a majority (itself and the third node), so "
        "it never steps down (CQ-STEPDOWN): no leader change at all. The price: the cut-off follower stays "
        "behind until the link is back.",
        3, {}, _partial_partition, compare={"pre_vote": True, "check_quorum": True}),
    Recipe(
        "partial-partition-one-way", "A one-way partial partition: the leader's messages to one follower are lost",
        "As in partial-partition, but only one direction of the link is down: the leader's messages to one "
        "follower are lost, while that follower's messages still reach the leader. The follower hears no "
        "heartbeat and stands for a higher term; its VoteRequests reach the leader itself, which steps down "
        "(ALL-TERM). With PreVote and CheckQuorum its pre-votes are refused by both the leader and the third "
        "node, which hear from a leader, and the leader keeps leading.",
        3, {}, _partial_partition_one_way, compare={"pre_vote": True, "check_quorum": True}),
    Recipe(
        "isolated-leader", "A leader cut off from every follower steps down (CheckQuorum)",
        "The leader is disconnected from both followers. Without CheckQuorum it would believe it leads for "
        "as long as the partition lasts: it accepts clients' writes that can never commit, and a read served "
        "from its state would be stale once the others elect a new leader. With check_quorum=True a leader "
        "that has not heard from a majority (itself included) within an election timeout steps down "
        "(CQ-STEPDOWN), so its clients go elsewhere; the two others elect a new leader meanwhile.",
        3, {"check_quorum": True}, _isolated_leader, compare={"check_quorum": False}),
    Recipe(
        "transfer", "A leadership transfer to a follower that is one write behind",
        "The leader is asked to hand its leadership to a follower that missed the latest write (the message "
        "that carried it was lost): sim.transfer_leadership. It stops taking new writes (LT-STOP: they are "
        "abandoned as not-leader, so clients retry on the new leader), brings the target's log up to date "
        "with ordinary replication (LT-CATCHUP), then sends it TimeoutNow (LT-TIMEOUTNOW): the target "
        "stands at once, without waiting for its election timer and without pre-vote, and wins because its "
        "log is as up to date as anyone's. If it had not won within an election timeout, the old leader "
        "would take writes again (LT-ABORT). No acknowledged write is lost. Used for maintenance: move the "
        "leader off a machine before restarting it.",
        3, {}, _transfer, params={"to": None}, compare={"pre_vote": True, "check_quorum": True}),
    Recipe(
        "stale-read", "A deposed leader still believes it leads: a local read is stale, ReadIndex is not",
        "The leader is partitioned away from the two others after a write of x = old. The two others elect "
        "a new leader, which commits x = new and acknowledges it. The old leader, without CheckQuorum, still "
        "believes it leads. A read answered from its own state machine says x = old: stale, although the "
        "write of new was acknowledged before the read began. A ReadIndex read (sim.read) on the old leader "
        "must first be confirmed by a heartbeat round that a majority acknowledges (RI-CONFIRM): no majority "
        "answers, so the read is never served, and once the partition heals the old leader steps down and "
        "abandons it. A read through the log (a get) is safe too, but costs a log write, and never commits "
        "on the old leader either. The new leader's ReadIndex read returns new.",
        3, {}, _stale_read, compare={"check_quorum": True}),
    Recipe(
        "lease-drift", "A lease read made unsafe by a leader clock running slow beyond the drift bound",
        "With read_lease=True (and CheckQuorum) a leader that heard from a majority less than "
        "election_timeout_low / drift_bound ago answers reads at once, without a heartbeat round (RI-LEASE): "
        "no follower grants a vote until it has not heard from the leader for election_timeout_low "
        "(CQ-STICKY), so no other leader can exist yet. That argument measures both durations on different "
        "clocks, and holds only while their rates differ by at most drift_bound. Here the leader's clock "
        f"runs at {LEASE_DRIFT_RATE} times real time (a stalled virtual machine's clock, say), far beyond "
        "the bound of 1.1. Cut off just after renewing its lease, it still believes its lease holds when the "
        "two others have elected a new leader and committed x = new: it answers a read with x = old, stale. "
        "With a clock within the bound (rate=1/1.1) the lease has expired before any new leader can be "
        "elected, and the read is not served.",
        3, {"pre_vote": True, "check_quorum": True, "read_lease": True, "drift_bound": 1.1}, _lease_drift,
        params={"rate": LEASE_DRIFT_RATE, "settle": 0.5}, compare={"rate": 1 / 1.1}),
)}
"""The recipes by name (in the order of notebook 08)."""
