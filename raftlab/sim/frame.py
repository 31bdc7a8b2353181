"""What the renderers read: a `Frame`, an immutable copy of a `Simulation` at one moment.

`sim.frame()` takes one; `raftlab.viz` draws it. (Raft's own snapshots, of the log, are another
thing: a node's `snapshot_index` and `snapshot_term` say how far its snapshot reaches.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..core import LogEntry, Role

if TYPE_CHECKING:
    from .simulation import InFlight, Simulation


@dataclass(frozen=True, slots=True)
class NodeFrame:
    """One node, frozen: what a renderer needs."""

    id: int
    crashed: bool
    role: Role | None  # None while crashed
    term: int
    voted_for: int | None
    leader: int | None  # the leader it knows
    log: tuple[LogEntry, ...]  # entries after the snapshot
    snapshot_index: int  # last index covered by its snapshot
    snapshot_term: int
    commit_index: int
    last_applied: int
    next_index: MappingProxyType  # leader only: peer -> next index
    match_index: MappingProxyType  # leader only: peer -> match index
    flows: MappingProxyType  # leader only: peer -> how it sends to it ("probe", "replicate", "snapshot")
    deadline: float  # its next timer, seconds of virtual time (inf if none)
    election_timeout_range: tuple[float, float]
    heartbeat_timeout: float
    # The thesis's mechanisms (defaults: none in progress), so a renderer can show them:
    pre_votes: tuple[int, ...] | None = None  # asking for pre-votes: who said yes so far (itself included)
    votes: tuple[int, ...] = ()  # candidate: who voted for it in this term (itself included)
    transfer_to: int | None = None  # leader: the target of a leadership transfer in progress
    transfer_deadline: float = math.inf  # leader: when that transfer is aborted, seconds of virtual time
    reads: int = 0  # linearizable reads waiting on it
    clock_rate: float = 1.0  # how fast its clock runs (`Simulation.set_clock_rate`)
    # Membership change (the default: a voter of a fixed cluster):
    membership: str = "voter"  # as the leader (or itself) sees it: voter, learner, joining, removed (`sim.membership`)


@dataclass(frozen=True, slots=True)
class Frame:
    """An immutable copy of everything a renderer needs, at one moment."""

    time: float  # seconds
    step: int
    seed: int
    nodes: tuple[NodeFrame, ...]
    in_flight: tuple[InFlight, ...]  # sorted by arrival
    cut: frozenset[tuple[int, int]]  # one-way links that are cut
    leader: int | None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # the Replica options given
    # The configuration as the leader sees it (`Simulation.configuration`; `of` fills them in):
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    config_committed: bool = True  # whether that configuration is committed (else a change is under way)

    @classmethod
    def of(cls, sim: Simulation) -> Frame:
        """The frame of `sim` now (what `sim.frame()` returns)."""
        nodes = []
        for i in sim.ids:
            r, s = sim._replicas[i], sim._storages[i]
            log = s.log
            lead = r if r is not None and r.role is Role.LEADER else None
            pre_votes = None if r is None else getattr(r, "pre_votes", None)  # (a replica class of old has none)
            transfer_to = None if lead is None else getattr(lead, "transfer_to", None)
            nodes.append(NodeFrame(
                i, r is None, None if r is None else r.role, s.current_term, s.voted_for,
                None if r is None else sim._clusters[i].leader, log.entries_from(log.base_index + 1),
                log.base_index, log.base_term, 0 if r is None else r.commit_index,
                0 if r is None else r.last_applied,
                MappingProxyType(dict(lead.next_index) if lead is not None else {}),
                MappingProxyType(dict(lead.match_index) if lead is not None else {}),
                MappingProxyType({p: pr.flow.value for p, pr in lead.progress.items()} if lead is not None else {}),
                math.inf if r is None else _virtual(sim, i, r.next_deadline), sim.election_timeout,
                sim.heartbeat_timeout,
                None if pre_votes is None else tuple(sorted(pre_votes)),
                tuple(sorted(r.votes)) if r is not None and r.role is Role.CANDIDATE else (),
                transfer_to,
                math.inf if transfer_to is None or lead is None else _virtual(sim, i, lead.transfer_deadline),
                0 if r is None else len(getattr(r, "reads", ())), sim.clock_rate(i), sim.membership(i)))
        leader = sim.leader()
        config, lead = sim.configuration(), None if leader is None else sim._replicas[leader]
        committed = lead is None or lead.commit_index >= lead.config_index
        return cls(sim.now, sim.steps, sim.seed, tuple(nodes), tuple(sim.in_flight()), frozenset(sim._cut),
                   leader, MappingProxyType(dict(sim.options)), tuple(sorted(config.voters)),
                   tuple(sorted(config.learners)), committed)


def _virtual(sim: Simulation, node: int, local: float) -> float:
    """The virtual time (seconds) at which `node`'s clock reads `local` (the same number unless its clock drifts)."""
    if not math.isfinite(local) or node not in sim._clocks:
        return local
    return sim.virtual_us(node, local) / 1e6
