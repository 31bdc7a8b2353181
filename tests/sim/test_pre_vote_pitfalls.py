"""The two known pitfalls of PreVote, reproduced in the simulator (PV-GRANT, PV-WIN):

- etcd-io/etcd#8243, the stuck election: with PreVote and CheckQuorum, a node left behind in terms and
  a node ahead must still elect one of them once the leader is gone. It hinges on a granted pre-vote
  carrying the request's term (not the voter's) and a refusal carrying the voter's term.
- etcd-io/etcd#8501, mixed settings during an upgrade: a node without PreVote that climbed terms while
  cut off, with a log behind, must not stall the nodes with PreVote (it answers their pre-votes with its
  higher term, which they adopt).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from raftlab.core import Replica
from raftlab.machines import KVStore
from raftlab.sim import Simulation

SEEDS = range(20)


def _leader_among(sim: Simulation, nodes: set[int]) -> bool:
    leader = sim.leader()
    return leader in nodes and all(sim.replicas[i].term <= sim.replicas[leader].term
                                   for i in nodes)


@pytest.mark.parametrize("seed", SEEDS)
def test_pv_win_no_stuck_election_when_the_leader_goes_after_a_node_fell_behind_in_terms(seed: int) -> None:
    """PV-WIN, PV-GRANT (etcd-io/etcd#8243): node 2 is cut off (with PreVote its term stays); the
    leadership moves to node 1 in a new term; node 2 comes back just as node 1 crashes. Nodes 0 (ahead
    in term and log) and 2 (behind) must elect a leader between them."""
    sim = Simulation(3, seed=seed, pre_vote=True, check_quorum=True)
    sim.run_until(lambda s: s.leader() is not None)
    if sim.leader() != 0:
        sim.transfer_leadership(0)
        sim.run_until(lambda s: s.leader() == 0, 2.0)
    assert sim.leader() == 0
    sim.disconnect(2)
    sim.one(KVStore.put(1, 1, "k", "v"), k=2)
    term = sim.replicas[2].term
    sim.transfer_leadership(1)
    sim.run_until(lambda s: s.leader() == 1, 2.0)
    assert sim.leader() == 1 and sim.replicas[2].term == term  # node 2 missed the new term
    sim.run(1.0)
    assert sim.replicas[2].term == term  # PreVote: it did not climb while cut off
    sim.connect(2)
    sim.crash(1)
    sim.run_until(lambda s: _leader_among(s, {0, 2}), 5.0)
    assert _leader_among(sim, {0, 2}), f"seed {seed}: no leader among 0 and 2\n{sim.trace.explain(last=30)}"


class Upgrading(Replica):
    """A replica whose pre_vote option is off on the nodes in `without`: a cluster half-way through an
    upgrade (a node restarted after `without` changed runs with the new setting)."""

    without: ClassVar[set[int]] = set()

    def __init__(self, id: int, *args: Any, **options: Any) -> None:
        options["pre_vote"] = options.get("pre_vote", False) and id not in self.without
        super().__init__(id, *args, **options)


@pytest.mark.parametrize("seed", SEEDS)
def test_pv_grant_mixed_settings_a_node_that_climbed_terms_before_the_upgrade_does_not_stall_the_others(
        seed: int) -> None:
    """PV-GRANT, PV-WIN (etcd-io/etcd#8501): node 2 runs without PreVote; cut off, it climbs terms while
    its log falls behind. It is then upgraded (restarted with PreVote) and comes back as the leader
    crashes. Now nobody sends a VoteRequest that could carry node 2's high term: the remaining node
    learns it only from node 2's refusal of its pre-vote, adopts it, and is elected (node 2's log is
    behind, so node 2 cannot be)."""
    Upgrading.without = {2}
    sim = Simulation(3, seed=seed, pre_vote=True, replica_class=Upgrading)
    sim.run_until(lambda s: s.leader() is not None)
    if sim.leader() == 2:
        sim.transfer_leadership(0)
        sim.run_until(lambda s: s.leader() == 0, 2.0)
    leader = sim.leader()
    assert leader is not None and leader != 2
    other = 1 - leader
    sim.disconnect(2)
    sim.one(KVStore.put(1, 1, "k", "v"), k=2)
    sim.run(1.5)
    assert sim.replicas[2].term > sim.replicas[other].term + 1  # it climbed alone
    Upgrading.without = set()
    sim.crash(2)
    sim.restart(2)  # upgraded: PreVote on everywhere now
    assert sim._replicas[2].pre_vote
    sim.connect(2)
    sim.crash(leader)
    sim.run_until(lambda s: s.leader() == other, 5.0)
    assert sim.leader() == other, f"seed {seed}: node {other} was not elected\n{sim.trace.explain(last=30)}"
    assert sim.replicas[other].term > sim.replicas[2].term - 1
    learned = [e for e in sim.trace if e.kind == "became_follower" and e.node == other and e.rule == "ALL-TERM"
               and "from 2" in str(e.data.get("why"))]
    assert learned, "the remaining node should have learned node 2's term from its pre-vote refusal"
