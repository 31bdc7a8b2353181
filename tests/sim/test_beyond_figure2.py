"""The acceptance of issue 13 ("beyond Figure 2"), on the simulator, as counts over seeds.

Each test stages a recipe of `raftlab.sim.recipes` (the situations PreVote, CheckQuorum, leadership
transfer and ReadIndex/lease reads are for) on many seeds, with and without the mechanism, and asserts
how many seeds end each way. Times are virtual; nothing here measures wall time. The invariant checker
is on (Raft's safety properties after every step) except where a test says otherwise.
"""

from __future__ import annotations

import pytest

from raftlab.core import ReadState, Role, TransitionState
from raftlab.machines import KVStore
from raftlab.sim import Simulation
from raftlab.sim.recipes import (
    LEASE_DRIFT_RATE, RECIPES, Staged, build, elections_since, first_leader, stage, stale, unapplied, write_every,
)

SEEDS_40 = range(1, 41)
SEEDS_20 = range(1, 21)
DEPLOYED = {"pre_vote": True, "check_quorum": True}  # what `raftlab node` runs with


def deposed(staged: Staged) -> bool:
    """Whether the leader of the setup lost its leadership (to another node, or to a later term of its own)."""
    sim, leader, term = staged.sim, staged.cast["leader"], staged.cast["term"]
    return sim.leader() != leader or sim.replicas[leader].term != term


# ----- the recipes themselves ------------------------------------------------------------------------


def test_every_recipe_is_documented_and_builds_the_same_run_from_the_same_seed() -> None:
    assert {"disruptive-rejoin", "partial-partition", "partial-partition-one-way", "isolated-leader", "transfer",
            "stale-read", "lease-drift"} <= set(RECIPES)
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.title and len(recipe.explain) > 200, name
        one, two = stage(name, seed=7), stage(name, seed=7)
        assert one.sim.n == recipe.n and one.mark == len(one.sim.trace) > 0 and one.at == one.sim.now > 0
        assert one.sim.trace.hash() == two.sim.trace.hash(), f"{name} is deterministic"
        assert one.sim.options == {k: v for k, v in recipe.options.items()}
        build(name, seed=7, **recipe.compare)  # the other side of the story builds too


def test_build_takes_the_recipes_options_and_overrides_them() -> None:
    sim = build("lease-drift", seed=2)
    assert sim.options == {"pre_vote": True, "check_quorum": True, "read_lease": True, "drift_bound": 1.1}
    leader = stage("lease-drift", seed=2).cast["leader"]
    assert sim.clock_rate(leader) == LEASE_DRIFT_RATE
    within = stage("lease-drift", seed=2, rate=1.0, drift_bound=1.5, record_trace=False)
    assert within.sim.clock_rate(within.cast["leader"]) == 1.0 and within.sim.options["drift_bound"] == 1.5
    assert len(within.sim.trace) == 0 and within.mark == 0
    assert build("partial-partition", seed=1, n=5).n == 5
    with pytest.raises(KeyError, match="no recipe 'nope'"):
        build("nope")
    with pytest.raises(ValueError, match="unknown option 'pre_votes'"):
        build("transfer", pre_votes=True)
    with pytest.raises(TypeError):
        RECIPES["transfer"].options["pre_vote"] = True  # type: ignore[index]


def test_a_recipes_setup_is_in_the_history_so_rewind_replays_it() -> None:
    staged = stage("partial-partition", seed=4)
    sim = staged.sim
    sim.run(1.0)
    final = sim.trace.hash()
    sim.rewind(to_event=10)  # before the first election: the replay makes the setup's interventions again
    assert sim.now < staged.at
    sim.run(staged.at + 1.0 - sim.now)
    assert sim.trace.hash() == final


# ----- PreVote: a follower that was cut off rejoins without deposing the leader (PV-*) ------------------


@pytest.mark.parametrize("pre_vote", [False, True])
def test_a_follower_cut_off_for_one_second_rejoins_without_deposing_the_leader_only_with_pre_vote(
        pre_vote: bool) -> None:
    outcomes = []
    for seed in SEEDS_40:
        staged = stage("disruptive-rejoin", seed=seed, pre_vote=pre_vote)
        follower, term = staged.cast["follower"], staged.cast["term"]
        ahead = staged.sim.replicas[follower].term - term
        staged.sim.run(1.0)
        outcomes.append((deposed(staged), ahead))
    deposals = sum(d for d, _ in outcomes)
    if pre_vote:
        assert deposals == 0, f"deposed on {deposals} of 40 seeds: {outcomes}"
        assert {a for _, a in outcomes} == {0}, "PV-ASK: no term was raised while it was alone"
    else:
        assert deposals >= 30, f"deposed on only {deposals} of 40 seeds"  # measured: 40 of 40
        assert min(a for _, a in outcomes) >= 2, "it came back terms ahead"  # measured: 3 to 5


# ----- CheckQuorum: a leader cut off from every follower steps down (CQ-STEPDOWN) ----------------------


def test_a_leader_cut_off_from_every_follower_steps_down_within_two_election_timeouts() -> None:
    for seed in SEEDS_20:
        staged = stage("isolated-leader", seed=seed)
        sim, leader = staged.sim, staged.cast["leader"]
        limit = 2 * sim.election_timeout[0]  # two election timeouts, however short each is drawn
        sim.run_until(lambda s, leader=leader: s.replicas[leader].role is not Role.LEADER, limit)
        assert sim.replicas[leader].role is Role.FOLLOWER, f"seed {seed}: still leader after {limit} s"
        assert sim.replicas[leader].term == staged.cast["term"], "CQ-STEPDOWN keeps its term"
        sim.run(1.0)
        assert sim.leader() not in (None, leader), f"seed {seed}: the others elected a leader"
    for seed in SEEDS_20:  # without CheckQuorum it believes it leads as long as the partition lasts
        staged = stage("isolated-leader", seed=seed, check_quorum=False, record_trace=False)
        staged.sim.run(2.0)
        leader = staged.cast["leader"]
        assert staged.sim.replicas[leader].role is Role.LEADER, f"seed {seed}"


# ----- partial partitions (Cloudflare, 2 November 2020) --------------------------------------------------


def partial_partition_elections(name: str, **options: object) -> list[int]:
    """Per seed: the elections won in 10 s of writes every 50 ms after the recipe's partial partition."""
    counts = []
    for seed in SEEDS_20:
        staged = stage(name, seed=seed, **options)
        writes = write_every(staged.sim, 10.0, every=0.05)
        counts.append(elections_since(staged.sim, staged.mark))
        acknowledged = [w for w in writes if w.answer is TransitionState.APPLIED]
        assert len(acknowledged) > len(writes) // 2, f"seed {seed}: the cluster kept committing"
        if options:
            assert not deposed(staged), f"seed {seed}: the first leader still leads, in its term"
    return counts


@pytest.mark.parametrize("name", ["partial-partition", "partial-partition-one-way"])
def test_a_partial_partition_changes_the_leader_unless_pre_vote_and_check_quorum(name: str) -> None:
    without = partial_partition_elections(name)
    assert sum(c > 0 for c in without) >= 18, f"{name}: a leader change on {sum(c > 0 for c in without)} of 20"
    with_options = partial_partition_elections(name, **DEPLOYED)
    assert with_options == [0] * 20, f"{name} with PreVote and CheckQuorum: elections {with_options}"


# ----- leadership transfer (LT-*) ------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, DEPLOYED], ids=["figure-2", "pre-vote-check-quorum"])
def test_a_transfer_makes_the_target_lead_within_one_election_timeout_and_loses_no_write(
        options: dict[str, bool]) -> None:
    for seed in SEEDS_20:
        staged = stage("transfer", seed=seed, **options)
        sim, leader, target = staged.sim, staged.cast["leader"], staged.cast["target"]
        assert sim.replicas[target].last_index < sim.replicas[leader].last_index, "the target had to catch up"
        refused = sim.submit(KVStore.put(9, 1, "y", "during"), to=leader)  # LT-STOP
        sim.run_until(lambda s, target=target: s.leader() == target, sim.election_timeout[0])
        assert sim.leader() == target, f"seed {seed}: node {target} leads {sim.now - staged.at:.3f} s later"
        assert refused.answer is TransitionState.ABANDONED_NOT_LEADER
        sim.one(KVStore.put(9, 2, "y", "after"))
        sim.run(0.5)
        everything = list(sim.submissions.values())
        assert not unapplied(sim, everything), f"seed {seed}: an acknowledged write was lost"
        assert len({tuple(r.machine.data.items()) for r in sim.replicas}) == 1, "one state everywhere"


# ----- linearizable reads (RI-*) --------------------------------------------------------------------------


def test_a_read_on_the_leader_or_a_follower_returns_the_latest_acknowledged_write() -> None:
    behind = 0  # reads asked of a follower that had not applied the write yet (so it had to wait)
    for seed in SEEDS_20:
        sim = Simulation(3, seed=seed)
        leader = first_leader(sim)
        for k in range(1, 4):
            sim.one(KVStore.put(2, k, "x", f"v{k}"))
            behind += sum(sim.replicas[i].machine.read("x") != f"v{k}" for i in sim.ids)
            reads = {i: sim.read("x", to=i) for i in sim.ids}
            sim.run_until(lambda s, reads=reads: all(r.state is not None for r in reads.values()), 1.0)
            for node, read in reads.items():
                role = "leader" if node == leader else "follower"
                assert (read.state, read.value) == (ReadState.READY, f"v{k}"), f"seed {seed}, {role} {node}: {read}"
    assert behind > 0, "some follower was behind when asked, and its read waited"


def test_a_deposed_leader_never_serves_a_stale_read_under_read_index() -> None:
    for seed in SEEDS_20:
        staged = stage("stale-read", seed=seed)
        sim, cast = staged.sim, staged.cast
        assert cast["written"].answer is TransitionState.APPLIED
        assert cast["local"] == "old", "a naive read of the old leader's own state is stale"
        sim.run(1.0)
        assert sim.replicas[cast["leader"]].role is Role.LEADER, "it still believes it leads"
        assert cast["read_index"].state is None, f"seed {seed}: no majority confirmed it, so no answer"
        assert cast["through_log"].state is TransitionState.QUEUED, "a read through the log never commits there"
        assert (cast["fresh"].state, cast["fresh"].value) == (ReadState.READY, "new")
        sim.heal()
        sim.run(1.0)
        assert cast["read_index"].state is ReadState.ABANDONED, f"seed {seed}: abandoned once deposed"
        assert cast["through_log"].answer is TransitionState.UNKNOWN


def test_the_stale_read_recipe_with_check_quorum_abandons_the_read() -> None:
    for seed in SEEDS_20:
        staged = stage("stale-read", seed=seed, check_quorum=True)
        assert staged.cast["read_index"].state is ReadState.ABANDONED, f"seed {seed}: it stepped down first"


def lease_reads(rate: float) -> list[bool]:
    """Per seed: whether the old leader of the lease-drift recipe served a stale read."""
    found = []
    for seed in SEEDS_20:
        staged = stage("lease-drift", seed=seed, rate=rate)
        read, written = staged.cast["read"], staged.cast["written"]
        assert written.answer is TransitionState.APPLIED and read.asked >= written.replied
        staged.sim.run(0.5)
        assert read.state is not ReadState.READY or read.value in ("old", "new")
        found.append(stale(read, "new"))
    return found


def test_a_lease_read_is_stale_when_the_leaders_clock_drifts_beyond_the_bound_and_never_within_it() -> None:
    staged = stage("lease-drift", seed=1)
    read = staged.cast["read"]
    assert (read.state, read.value) == (ReadState.READY, "old"), "the recipe's own seed shows the stale read"
    assert read.answered == read.asked, "from the lease, without a heartbeat round"
    beyond = lease_reads(LEASE_DRIFT_RATE)
    assert sum(beyond) >= 10, f"stale on {sum(beyond)} of 20 seeds"  # measured: 13 of 20
    for rate in (1 / 1.1, 1.0, 1.05):  # within the bound of 1.1 (a fast leader clock shortens its lease)
        assert lease_reads(rate) == [False] * 20, f"rate {rate}"
