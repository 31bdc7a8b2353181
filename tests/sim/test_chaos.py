"""Chaos campaigns: clean on the real replica, able to catch a broken one, each seed with its own swarm."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from raftlab import cli
from raftlab.check import LinearizabilityResult
from raftlab.core import Replica, Role, TransitionState, VoteResponse
from raftlab.sim import chaos
from raftlab.sim.chaos import EXIT_CODES, SWARM_CHOICES, Swarm, run_campaign, run_chaos


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


FIGURES = {"seeds", "failures", "violations", "nonlinearizable", "liveness_failures", "undecided",
           "install_snapshots", "events", "events_per_s", "results_hash"}


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


def test_chaos_catches_a_replica_that_breaks_the_commit_rule_or_the_vote_rule():
    """L-COMMIT and RV-GRANT broken on purpose: some seed of a small campaign must catch each."""
    for broken in (CommitsWithoutAMajority, VotesWithoutUpToDateCheck):
        summary = run_campaign(range(1, 13), 20.0, 5, replica_class=broken)
        caught = summary.failures
        assert caught, f"no seed caught {broken.__name__}"
        assert all(r.kind in ("safety", "linearizability") for r in caught)
        assert summary.exit_code in (EXIT_CODES["safety"], EXIT_CODES["linearizability"])


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
    """The campaign of the acceptance criteria: 200 seeds of 30 virtual seconds, zero failures."""
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--seeds", "200", "--duration", "30",
                           "--workers", "2", "--json"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["seeds"] == 200
    assert (figures["violations"], figures["nonlinearizable"], figures["liveness_failures"], figures["undecided"]) == (
        0, 0, 0, 0)
    assert figures["events"] > 200 * 1000 and figures["install_snapshots"] > 200
    print(done.stdout.strip().splitlines()[-1])
