"""Chaos campaigns: clean on the real replica, and able to catch a broken one."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from raftlab.core import Replica, Role, VoteResponse
from raftlab.sim.chaos import run_campaign, run_chaos


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


def test_chaos_seeds_are_clean_and_deterministic():
    first = [run_chaos(seed, duration=10.0, nodes=5) for seed in (1, 2, 3)]
    again = [run_chaos(seed, duration=10.0, nodes=5) for seed in (1, 2, 3)]
    assert all(r.ok for r in first), [r.detail for r in first]
    assert first == again
    assert all(r.operations > 20 and r.linearizable is True for r in first)


def test_chaos_catches_a_replica_that_breaks_the_commit_rule_or_the_vote_rule():
    """L-COMMIT and RV-GRANT broken on purpose: some seed of a small campaign must catch each."""
    for broken in (CommitsWithoutAMajority, VotesWithoutUpToDateCheck):
        results = [run_chaos(seed, duration=20.0, nodes=5, replica_class=broken) for seed in range(1, 13)]
        caught = [r for r in results if not r.ok]
        assert caught, f"no seed caught {broken.__name__}"
        assert all(r.violation or r.linearizable is False for r in caught)


def test_campaign_on_a_process_pool_matches_the_serial_run():
    with ProcessPoolExecutor(2) as pool:
        parallel = run_campaign(range(1, 5), 5.0, 3, executor=pool)
    serial = run_campaign(range(1, 5), 5.0, 3)
    assert parallel.results == serial.results
    assert parallel.as_dict()["events"] == serial.as_dict()["events"] > 0


def test_chaos_command_prints_the_json_summary():
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--seeds", "3", "--duration", "5", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {"seeds", "violations", "nonlinearizable", "liveness_failures", "events", "events_per_s"}
    assert figures["seeds"] == 3 and figures["violations"] == figures["nonlinearizable"] == 0
    assert figures["liveness_failures"] == 0 and figures["events"] > 0


def test_chaos_campaign_of_200_seeds_reports_no_failure():
    """The campaign of the acceptance criteria: 200 seeds of 30 virtual seconds, zero failures."""
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "chaos", "--seeds", "200", "--duration", "30",
                           "--workers", "2", "--json"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["seeds"] == 200
    assert (figures["violations"], figures["nonlinearizable"], figures["liveness_failures"]) == (0, 0, 0)
    assert figures["events"] > 200 * 1000
    print(done.stdout.strip().splitlines()[-1])
