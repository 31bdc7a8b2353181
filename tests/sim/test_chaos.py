"""Chaos campaigns: clean on the real replica, able to catch a broken one, each seed with its own swarm."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from raftlab import cli
from raftlab.check import LinearizabilityResult, Operation, check
from raftlab.core import Configuration, ReadState, Replica, Role, TransitionState, VoteResponse
from raftlab.machines import KVStore
from raftlab.sim import NetworkModel, Simulation, chaos
from raftlab.sim.submission import ReadRequest
from raftlab.sim.chaos import DRIFT_BOUND, EXIT_CODES, MAX_RATE, SWARM_CHOICES, Swarm, run_campaign, run_chaos


class CommitsWithoutAMajority(Replica):
    """Breaks L-COMMIT: a leader commits its current-term entries as soon as it holds them itself.
    (The subtler Figure 8 bug is caught by a scripted scenario in test_invariants.py; random chaos
    finds it only rarely, because each new leader's no-op usually commits alongside older entries.)"""

    def advance_commit(self) -> None:
        if self.role is Role.LEADER and self.log.last_term == self.current_term:
            self.commit_to(self.log.last_index, "L-COMMIT")


class VotesWithoutUpToDateCheck(Replica):
    """Breaks RV-GRANT: grants a vote whatever the candidate's log."""

    def handle_vote_request(self, m):
        if m.term >= self.current_term and self.voted_for in (None, m.from_id):
            self.storage.set_term_and_vote(self.current_term, m.from_id)
            self.reset_election_timer()
            self.send(m.from_id, VoteResponse(self.id, self.current_term, True))
            return
        super().handle_vote_request(m)


class ReadsWithoutConfirming(Replica):
    """Breaks RI-CONFIRM: a leader serves a read at once, as if a heartbeat round had confirmed it, so a
    deposed leader that does not know it yet answers from its stale state."""

    def confirm_round(self) -> int:
        return 0


class LeaseWithoutCheck(Replica):
    """Breaks RI-LEASE: every leader believes it holds a lease, with or without CheckQuorum."""

    def lease_valid(self) -> bool:
        return True


def leader_partitions(seed: int) -> Swarm:
    """The faults that expose stale reads: the leader often cut off in a minority, and no CheckQuorum
    (with it, a deposed leader steps down before a new one is elected, and so rarely answers late)."""
    return dataclasses.replace(Swarm.draw(seed), crash=0.0, partition=0.0, one_way=0.0, ring=0.0, pause=0.0,
                               isolate=0.1, heal=0.1, transfer=0.0, check_quorum=False, read_lease=False)


FIGURES = {"seeds", "failures", "violations", "nonlinearizable", "liveness_failures", "undecided",
           "install_snapshots", "reads", "reads_abandoned", "reads_unanswered", "seeds_without_reads",
           "config_changes_proposed", "config_changes_refused", "config_changes_committed",
           "seeds_without_config_changes", "seeds_with_members_behind", "events", "events_per_s", "results_hash"}
OLD_FIELDS = ("snapshot_delta", "crash", "restart", "partition", "one_way", "ring", "pause", "heal", "network",
              "drop", "duplicate")  # the swarm's figures before reads and the replicas' options were drawn


def test_chaos_seeds_are_clean_and_deterministic():
    first = run_campaign((1, 2, 3), 10.0, 5)
    again = run_campaign((1, 2, 3), 10.0, 5)
    assert all(r.ok for r in first.results), [r.detail for r in first.results]
    assert first.results == again.results and first.hash() == again.hash()
    assert first.as_dict()["results_hash"] == again.as_dict()["results_hash"]
    assert all(r.operations > 20 and r.linearizable is True for r in first.results)
    assert first.exit_code == 0


def test_a_small_campaign_is_clean_and_sends_install_snapshot():
    summary = run_campaign(range(1, 9), 10.0, 5)
    figures = summary.as_dict()
    assert set(figures) == FIGURES
    assert (figures["failures"], figures["violations"], figures["nonlinearizable"], figures["liveness_failures"],
            figures["undecided"]) == (0, 0, 0, 0, 0), [r.report() for r in summary.failures]
    assert figures["install_snapshots"] > 0 and summary.exit_code == 0
    assert len({r.swarm.snapshot_delta for r in summary.results if r.swarm}) > 1  # seeds differ in their delta
    # Reads in every history, checked with the writes; the seeds ran with different options.
    assert figures["seeds_without_reads"] == 0 and all(r.reads > 0 for r in summary.results)
    assert figures["reads"] == sum(r.reads for r in summary.results) and figures["reads_abandoned"] > 0
    assert len({(r.swarm.pre_vote, r.swarm.check_quorum, r.swarm.read_lease) for r in summary.results if r.swarm}) > 2


def test_each_seed_draws_its_own_swarm():
    swarms = [Swarm.draw(seed) for seed in range(1, 101)]
    assert swarms == [Swarm.draw(seed) for seed in range(1, 101)]  # a function of the seed alone
    assert {s.snapshot_delta for s in swarms} == set(SWARM_CHOICES["snapshot_delta"]) == {0, 3, 10, 50}
    for name in ("crash", "partition", "one_way", "ring", "pause", "drop", "duplicate"):
        drawn = {getattr(s, name) for s in swarms}
        assert 0.0 in drawn and len(drawn) > 1, name  # some seeds leave a fault out, others use it
    assert len(set(swarms)) > 90
    assert run_chaos(7, duration=2.0).swarm == Swarm.draw(7)
    assert Swarm.draw(7).describe().startswith(f"snapshot_delta={Swarm.draw(7).snapshot_delta} crash=")
    for name in ("isolate", "transfer", "drift", "membership", "remove_leader"):
        assert {getattr(s, name) for s in swarms} == set(SWARM_CHOICES[name]), name
    # The replicas' options: every combination, lease reads only with CheckQuorum, clocks within the bound.
    options = {(s.pre_vote, s.check_quorum, s.read_lease) for s in swarms}
    assert options == {(p, c, lease) for p in (False, True) for c in (False, True) for lease in (False, c)}
    assert all(s.max_rate == MAX_RATE and s.max_rate ** 2 <= DRIFT_BOUND for s in swarms)
    assert all(s.membership > 0 for s in swarms)  # membership changes in every seed
    assert Swarm.draw(3).options() == {"pre_vote": Swarm.draw(3).pre_vote, "check_quorum": Swarm.draw(3).check_quorum,
                                       "read_lease": Swarm.draw(3).read_lease, "drift_bound": DRIFT_BOUND}
    assert " pre_vote=1 " in Swarm.draw(next(s for s in range(1, 50) if Swarm.draw(s).pre_vote)).describe()
    for seed in (1, 2, 3, 500):  # a seed keeps the faults it drew before the new figures were added
        legacy = random.Random(f"swarm/{seed}")
        assert [getattr(Swarm.draw(seed), n) for n in OLD_FIELDS] == [legacy.choice(SWARM_CHOICES[n])
                                                                       for n in OLD_FIELDS]


def test_chaos_catches_a_replica_that_breaks_the_commit_rule_or_the_vote_rule():
    """L-COMMIT and RV-GRANT broken on purpose: some seed of a small campaign must catch each."""
    for broken in (CommitsWithoutAMajority, VotesWithoutUpToDateCheck):
        summary = run_campaign(range(1, 13), 20.0, 5, replica_class=broken)
        caught = summary.failures
        assert caught, f"no seed caught {broken.__name__}"
        assert all(r.kind in ("safety", "linearizability") for r in caught)
        assert summary.exit_code in (EXIT_CODES["safety"], EXIT_CODES["linearizability"])


def test_chaos_catches_reads_served_without_confirming_leadership():
    """A leader that serves reads without a heartbeat round (RI-CONFIRM broken, or a lease that is always
    valid): a campaign that partitions the leader away catches it as a stale read within a few seeds
    (measured: 26 of seeds 1-40 of 5 s catch ReadsWithoutConfirming with these faults; with the swarms of
    `Swarm.draw`, 7 of seeds 1-40 of 30 s, the first at seed 5). The real replica passes the same seeds."""
    for broken in (ReadsWithoutConfirming, LeaseWithoutCheck):
        summary = run_campaign(range(1, 5), 5.0, 5, replica_class=broken, swarms=leader_partitions)
        assert summary.failures, f"no seed caught {broken.__name__}"
        assert {r.kind for r in summary.failures} == {"linearizability"}
        assert summary.exit_code == EXIT_CODES["linearizability"]
        assert all("read('" in r.detail and "not linearizable" in r.detail for r in summary.failures)
    clean = run_campaign(range(1, 5), 5.0, 5, swarms=leader_partitions)
    assert not clean.failures, [r.report() for r in clean.failures]
    assert all(r.reads > 0 for r in clean.results)


def _lease_read_after_a_new_leader_wrote(rate: float, seed: int = 1) -> tuple[list[Operation], ReadState | None]:
    """The leader's clock slowed to 1 / `rate`, every other clock sped up to `rate`, x written, the leader
    cut off alone, x written again through the new leader, then x read at the old leader: the history of
    the two writes and the read, and the read's state."""
    sim = Simulation(5, seed, network=NetworkModel(latency=(0.002, 0.01)), pre_vote=True, check_quorum=True,
                     read_lease=True, drift_bound=DRIFT_BOUND)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    old = sim.leader()
    assert old is not None
    for node in sim.ids:
        sim.set_clock_rate(node, 1 / rate if node == old else rate)
    first = sim.one(KVStore.put(1, 1, "x", "1"))
    sim.run(0.5)
    assert sim.leader() == old
    sim.partition({old}, set(sim.ids) - {old})
    sim.run_until(lambda s: s.leader() not in (None, old), 5.0)
    asked = sim.now
    second = sim.one(KVStore.put(1, 2, "x", "2"))
    read = sim.read("x", to=old)
    sim.run(0.05)
    history = [Operation(1, "put", "x", "1", call=0.0, ret=first.replied),
               Operation(1, "put", "x", "2", call=asked, ret=second.replied)]
    if read.state is ReadState.READY:
        history.append(Operation(2, "read", "x", call=read.asked, ret=read.answered, output=read.value))
    return history, read.state


def test_a_lease_read_with_clocks_drifting_beyond_the_bound_is_caught():
    """RI-LEASE holds while clock rates differ by at most drift_bound (1.1): at 1 / √1.1 and √1.1 the old
    leader's lease has run out before a new leader can be elected. At 1 / 1.6 and 1.6 (a ratio of 2.56)
    it has not: the deposed leader answers from its stale state, and the check catches it.
    (`test_a_campaign_catches_lease_reads_beyond_the_drift_bound` finds it by chaos.)"""
    history, state = _lease_read_after_a_new_leader_wrote(1.6)
    assert state is ReadState.READY and history[-1].output == "1"  # the stale value, after 2 was written
    result = check(history)
    assert result.ok is False and result.failing_key == "x" and result.shortest_bad_prefix[-1].op == "read"
    history, state = _lease_read_after_a_new_leader_wrote(MAX_RATE)
    assert state is not ReadState.READY and check(history).ok is True  # no lease left: the read waits or is refused


def drifting_leases(seed: int, max_rate: float = MAX_RATE) -> Swarm:
    """Lease reads under leader partitions, with clocks often set to the worst rates (a slow leader, fast
    followers) of at most `max_rate`."""
    return dataclasses.replace(Swarm.draw(seed), crash=0.0, partition=0.0, one_way=0.0, ring=0.0, pause=0.0,
                               isolate=0.2, heal=0.05, transfer=0.0, drift=0.3, max_rate=max_rate,
                               check_quorum=True, read_lease=True)


def test_a_campaign_catches_lease_reads_beyond_the_drift_bound():
    """With clock rates of 1/3 and 3 (a ratio of 9, the bound is 1.1) a campaign of lease reads finds a
    stale one within a few seeds (measured: 4 of seeds 1-30 of 10 s; milder drift is caught more rarely
    still, as a new leader needs several round trips, and a larger one costs the cluster its liveness);
    within the bound, the same faults on the first seeds find nothing."""
    beyond = functools.partial(drifting_leases, max_rate=3.0)
    caught = next((r for r in (run_chaos(seed, 10.0, swarm=beyond(seed)) for seed in range(1, 41)) if not r.ok), None)
    assert caught is not None and caught.kind == "linearizability" and "read('" in caught.detail
    clean = run_campaign(range(1, caught.seed + 1), 10.0, 5, swarms=drifting_leases)
    assert not clean.failures, [r.report() for r in clean.failures]


def test_the_final_write_waits_out_a_leadership_transfer():
    """A leader in a transfer refuses new transitions at once (LT-STOP); the liveness check's final write
    must let virtual time pass until the transfer ends (`Simulation.one` would ask again at the same
    instant, for ever), here one to a crashed node, aborted after an election timeout (LT-ABORT)."""
    sim = Simulation(5, 1)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    leader = sim.leader()
    target = next(i for i in sim.ids if i != leader)
    sim.crash(target)
    sim.transfer_leadership(target)
    start = sim.now
    assert chaos._final_write(sim, KVStore.put(9, 1, "final", "1"), 4, timeout=5.0, retry=0.5)
    assert start < sim.now < start + 5.0
    assert not chaos._final_write(Simulation(5, 1), KVStore.put(9, 1, "final", "1"), 6, timeout=1.0, retry=0.5)


def test_reads_enter_the_history_as_the_checker_models_them():
    """READY: an operation from request to answer, with the value read; never answered: of unknown outcome;
    ABANDONED: not in the history (it did not take place)."""
    sim = Simulation(5, 1)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.one(KVStore.put(1, 1, "x", "1"))
    client = chaos._Client(7)
    chaos._read(sim, random.Random(1), client, "x")
    ready = client.reading
    sim.run(0.2)
    assert ready is not None and ready.state is ReadState.READY and ready.value == "1"
    op = chaos._read_operation(client, ready)
    assert (op.client, op.op, op.key, op.call, op.ret, op.output) == (7, "read", "x", ready.asked, ready.answered, "1")
    pending = ReadRequest("x", ("read", 99), 0, 1.5)
    assert chaos._read_operation(client, pending) == Operation(7, "read", "x", call=1.5, ret=None, output=None)
    down = next(i for i in sim.ids if i != sim.leader())
    sim.crash(down)
    client.reads += [sim.read("x", to=down), pending]
    assert client.reads[-2].state is ReadState.ABANDONED and chaos._abandoned([client]) == 1
    result = run_chaos(3, duration=5.0)
    assert result.ok and result.reads > 0 and result.operations > result.reads + result.reads_unanswered


def test_a_safety_failure_gives_its_exit_code_and_its_report(monkeypatch, capsys):
    summary = run_campaign(range(1, 7), 10.0, 5, replica_class=CommitsWithoutAMajority)
    failure = next(r for r in summary.results if r.kind == "safety")
    assert summary.exit_code == EXIT_CODES["safety"] == 3
    lines = failure.report().splitlines()
    assert lines[0] == f"seed {failure.seed} failed (safety)"
    assert lines[1] == f"  swarm: {Swarm.draw(failure.seed).describe()}"
    assert lines[2] == f"  replay: {failure.replay_command()}"
    prop, what = failure.violation.split(": ", 1)
    assert lines[3].startswith(f"  {prop} violated at step ") and what in lines[3] and "last events:" in lines[4]
    assert len(lines) >= 10 and lines[5].lstrip().startswith("[")  # the explained events (the traced run again)
    # The command: its exit code says safety, and the report comes before the JSON line.
    monkeypatch.setattr(chaos, "run_campaign", functools.partial(run_campaign, replica_class=CommitsWithoutAMajority))
    assert cli.main(["chaos", "--seeds", "6", "--duration", "10", "--json"]) == 3
    out = capsys.readouterr().out.splitlines()
    figures = json.loads(out[-1])
    assert figures["violations"] >= 1 and figures["failures"] >= figures["violations"]
    at = out.index(lines[0])
    assert out[at + 1:at + 3] == lines[1:3]


def test_an_undecided_linearizability_check_is_a_failure_of_its_own(monkeypatch, capsys):
    monkeypatch.setattr(chaos, "check", lambda history, timeout: LinearizabilityResult(ok=None, partitions=3))
    result = run_chaos(1, duration=3.0)
    assert result.undecided and result.kind == "undecided" and not result.ok
    assert "timeout ran out" in result.detail
    summary = run_campaign((1, 2), 3.0, 5)
    assert summary.as_dict()["undecided"] == 2 and len(summary.failures) == 2
    assert summary.exit_code == EXIT_CODES["undecided"] == 6
    assert cli.main(["chaos", "--seeds", "2", "--duration", "3"]) == 6
    out = capsys.readouterr().out
    assert "2 undecided" in out and "seed 1 failed (undecided)\n  swarm: " in out and "timeout ran out" in out


def test_exit_codes_rank_the_kinds_of_failure():
    assert list(EXIT_CODES) == list(chaos.KINDS) and len(set(EXIT_CODES.values())) == 4
    assert 0 not in EXIT_CODES.values() and not {1, 2} & set(EXIT_CODES.values())
    base = run_chaos(1, duration=2.0)
    def summary(*results):
        return chaos.CampaignSummary(tuple(results), 1.0)

    live_failure = dataclasses.replace(base, live=False)
    undecided = dataclasses.replace(base, linearizable=None)
    nonlinear = dataclasses.replace(base, linearizable=False, live=False)
    unsafe = dataclasses.replace(base, violation="Log Matching: ...", linearizable=None)
    assert [r.kind for r in (base, live_failure, undecided, nonlinear, unsafe)] == [
        None, "liveness", "undecided", "linearizability", "safety"]
    assert summary(base).exit_code == 0
    assert summary(base, undecided, live_failure).exit_code == 5
    assert summary(undecided, nonlinear).exit_code == 4
    assert summary(unsafe, nonlinear, undecided).exit_code == 3
    assert summary(undecided).as_dict()["undecided"] == 1 and summary(unsafe).as_dict()["undecided"] == 0


def test_a_client_retries_with_the_same_id_on_a_state_that_is_not_final():
    """UNKNOWN (removed from that node's log by AE-TRUNCATE) is neither on its way nor final."""
    on_its_way = [TransitionState.QUEUED, TransitionState.COMMITTED, TransitionState.APPLIED, None]
    assert not any(chaos._unsettled(s) for s in on_its_way)
    assert not chaos._unsettled(TransitionState.ABANDONED_NOT_LEADER)  # retried as an answer, not here
    others = [s for s in TransitionState if s not in on_its_way and not s.abandoned]
    assert all(chaos._unsettled(s) for s in others)
    if hasattr(TransitionState, "UNKNOWN"):
        assert chaos._unsettled(TransitionState.UNKNOWN)


def test_campaign_on_a_process_pool_matches_the_serial_run():
    with ProcessPoolExecutor(2) as pool:
        parallel = run_campaign(range(1, 5), 5.0, 3, executor=pool)
    serial = run_campaign(range(1, 5), 5.0, 3)
    assert parallel.results == serial.results and parallel.hash() == serial.hash()
    assert parallel.as_dict()["events"] == serial.as_dict()["events"] > 0


def test_chaos_command_prints_the_json_summary():
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--seeds", "3", "--duration", "5", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == FIGURES
    assert figures["seeds"] == 3 and figures["violations"] == figures["nonlinearizable"] == 0
    assert figures["liveness_failures"] == figures["undecided"] == figures["failures"] == 0 and figures["events"] > 0


def test_chaos_help_documents_the_exit_codes():
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--help"], capture_output=True, text=True,
                          timeout=60)
    for kind, code in EXIT_CODES.items():
        assert f"  {code}  {kind}:" in done.stdout


def test_chaos_campaign_of_200_seeds_reports_no_failure():
    """The campaign of the acceptance criteria: 200 seeds of 30 virtual seconds, reads in every history,
    zero failures (``raftlab chaos --seeds 500 --duration 30 --workers 2`` is clean too)."""
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--seeds", "200", "--duration", "30",
                           "--workers", "2", "--json"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["seeds"] == 200
    assert (figures["violations"], figures["nonlinearizable"], figures["liveness_failures"], figures["undecided"]) == (
        0, 0, 0, 0)
    assert figures["events"] > 200 * 1000 and figures["install_snapshots"] > 200
    assert figures["seeds_without_reads"] == 0 and figures["reads"] > 200 * 100  # reads in every history
    print(done.stdout.strip().splitlines()[-1])


class ChangesConfigurationAnyTime(Replica):
    """Breaks MC-ONE: a leader takes any configuration change (two uncommitted at once, a new server made a
    voter directly, a change before an entry of its term is committed)."""

    def may_change_configuration(self, new: Configuration) -> str | None:
        return None


def frequent_changes(seed: int) -> Swarm:
    """A seed's own swarm, with a membership change proposed in about one round in three."""
    return dataclasses.replace(Swarm.draw(seed), membership=0.3)


class WatchedSimulation(Simulation):
    """Fails a test if a fault, a client or the final heal targets a node shut down by its removal."""

    def _watch(self, *nodes: int) -> None:
        assert not set(nodes) & self.removed, f"removed node among {nodes} targeted (removed: {sorted(self.removed)})"

    def crash(self, node: int) -> None:
        self._watch(node)
        super().crash(node)

    def restart(self, node: int) -> None:
        self._watch(node)
        super().restart(node)

    def pause(self, node: int, seconds: float) -> None:
        if seconds:  # (resuming is harmless)
            self._watch(node)
        super().pause(node, seconds)

    def cut(self, source: int, destination: int) -> None:
        self._watch(source, destination)
        super().cut(source, destination)

    def partition(self, *groups) -> None:
        self._watch(*(node for group in groups for node in group))
        super().partition(*groups)

    def set_clock_rate(self, node: int, rate: float) -> None:
        self._watch(node)
        super().set_clock_rate(node, rate)

    def submit(self, transition, to=None):
        if to is not None:
            self._watch(to)
        return super().submit(transition, to)

    def read(self, key, to=None):
        if to is not None:
            self._watch(to)
        return super().read(key, to)


def test_a_campaign_with_membership_changes_in_every_seed_is_clean(monkeypatch):
    """Every seed adds learners, promotes them, removes voters (the leader too) and learners, under its
    faults; no fault, client or final heal targets a removed node; clean, with changes committed."""
    monkeypatch.setattr(chaos, "Simulation", WatchedSimulation)
    summary = run_campaign(range(1, 9), 10.0, 5, swarms=frequent_changes)
    figures = summary.as_dict()
    assert not summary.failures, [r.report() for r in summary.failures]
    assert figures["config_changes_committed"] > 8 and figures["seeds_without_config_changes"] == 0
    assert figures["config_changes_proposed"] > figures["config_changes_committed"]
    assert figures["config_changes_refused"] > 0  # MC-ONE refusals (a second change at once, a learner behind)
    assert figures["reads"] > 0 and figures["seeds_without_reads"] == 0
    assert len({r.members for r in summary.results}) > 1  # the seeds end with configurations of their own
    again = run_chaos(3, 10.0, swarm=frequent_changes(3))
    assert again == summary.results[2]  # deterministic, membership changes included


def test_chaos_catches_a_leader_that_takes_any_configuration_change():
    """MC-ONE broken on purpose: a campaign with frequent changes catches it as a safety failure at once
    (measured: each of seeds 1-8 of 10 s, Configuration Safety: two uncommitted changes in a leader's log)."""
    summary = run_campaign(range(1, 4), 10.0, 5, replica_class=ChangesConfigurationAnyTime, swarms=frequent_changes)
    assert summary.failures and {r.kind for r in summary.failures} == {"safety"}
    assert summary.exit_code == EXIT_CODES["safety"]
    assert any(r.violation.startswith("Configuration Safety") for r in summary.failures)


def test_the_final_write_counts_a_majority_of_the_current_voters():
    """After membership changes (a node added and promoted, the leader removed) the liveness check asks a
    majority of the latest configuration's voters, not of the nodes ever started."""
    sim = Simulation(3, 1)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.one(KVStore.put(1, 1, "x", "1"))
    node = sim.add_node()
    sim.run_until_committed()
    sim.run(0.5)
    sim.run_until_committed(sim.promote(node))
    old = sim.leader()
    sim.run_until_committed(sim.remove_node(old))
    sim.run_until(lambda s: old in s.removed and s.leader() is not None, 5.0)
    assert sim.configuration().voters == frozenset({0, 1, 2, 3} - {old}) and sim.replicas[old].removed
    other = next(i for i in sim.configuration().voters if i != sim.leader())
    sim.crash(other)  # 2 of the 3 voters are enough, of the 4 nodes started
    assert chaos._final_write(sim, KVStore.put(9, 1, "final", "1"), None, timeout=5.0, retry=0.5)
    sim.crash(next(i for i in sim.configuration().voters if i not in (other, sim.leader())))
    assert not chaos._final_write(sim, KVStore.put(9, 2, "final", "2"), None, timeout=2.0, retry=0.5)


def test_a_seed_runs_the_same_with_and_without_its_trace():
    # run_chaos records no trace, and runs a violating seed again with it: the same run, step for step.
    for seed in (1, 4):
        assert run_chaos(seed, 4.0) == run_chaos(seed, 4.0, record_trace=True)
    plain = run_chaos(2, 10.0, replica_class=CommitsWithoutAMajority)
    traced = run_chaos(2, 10.0, replica_class=CommitsWithoutAMajority, record_trace=True)
    assert plain == traced and plain.kind == "safety" and "last events:\n[" in plain.detail
