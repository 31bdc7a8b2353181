"""The mutation self-check: every planted bug is caught by a check that judges its rule, and loses points in
no check of another rule but the integration checks, which say so (CI runs it)."""

from __future__ import annotations

import inspect
import json

import pytest

from raftlab.core import Replica
from raftlab.grading import CHECKS, grade
from raftlab.grading.checks import BY_ID
from raftlab.grading.mutants import (
    MUTANTS, CommitNotCappedByLastNew, CommitsWithHalfTheVoters, DeletesOnRefusal, MatchIndexMovesBack,
    ResetsTimerOnEveryVoteRequest, SendsVoteRequestsBeforePersisting, UpToDateByLength, UpToDateByTermAndLength,
    WinsWithHalfTheVotes, self_check,
)
from raftlab.grading.runner import run_check
from raftlab.grading.skeleton import BY_NAME


def test_at_least_ten_mutants_each_a_small_subclass_of_the_core_replica() -> None:
    assert len(MUTANTS) >= 10
    for mutant in MUTANTS:
        assert mutant.__bases__ == (Replica,)
        assert mutant.RULE in {r.strip() for c in CHECKS for r in c.rule.split(",")}
        assert mutant.__doc__


def test_cli_self_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    status = main(["grade", "--self-check", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary == {"mutants": len(MUTANTS), "caught": len(MUTANTS), "falsely_blamed": 0, "reference_score": 1.0,
                       "skeleton_score": 0.0, "passed": True}
    assert summary["caught"] == summary["mutants"] >= 10
    assert status == 0
    rows = [json.loads(line) for line in lines[:-1]]
    assert [r["candidate"] for r in rows[:2]] == ["reference", "skeleton"]
    assert rows[0]["failed"] == []
    assert len(rows[1]["hints"]) >= 4 and all(":" in h for h in rows[1]["hints"])
    for row in rows[2:]:
        assert row["caught"] and row["score"] < 1.0, row
        assert row["caught_by"], row
        assert any(row["broken_rule"] in f.split("[")[1] for f in row["failed"]), row  # a check named after it
        assert row["blamed_elsewhere"] == [], row  # no check of another rule, unless it says it tests several
        assert all(BY_ID[c].together for c in row["blamed_together"]), row
    together = {row["candidate"]: row["blamed_together"] for row in rows[2:] if row["blamed_together"]}
    assert together == {"ActsOnStaleResponses": ["A.t_split_vote"]}  # (its replication changes the schedule)


def test_self_check_api_on_other_seeds() -> None:
    outcome = self_check(seeds=1, jobs=1)
    assert outcome["summary"]["caught"] == outcome["summary"]["mutants"] == len(MUTANTS)
    assert outcome["summary"]["falsely_blamed"] == 0 and outcome["summary"]["passed"]
    reference, skeleton = outcome["reports"][:2]
    assert reference.score == 1.0 and skeleton.score == 0.0


# ----- the bugs a student writes: one exercise each, caught only by the checks of their rule ---------------
WRITTEN = {  # the planted bugs written in one exercise each, and the checks expected to catch them (seed 1)
    ResetsTimerOnEveryVoteRequest: ["A.f_timeout_resets", "A.t_split_vote"],
    MatchIndexMovesBack: ["B.l_replicate_responses"],
    WinsWithHalfTheVotes: ["A.c_win", "A.sim_even_split_election"],
    CommitsWithHalfTheVoters: ["B.l_commit_majority", "B.sim_even_split_commit", "F.mc_latest", "F.mc_stepdown"],
    SendsVoteRequestsBeforePersisting: ["A.c_start"],
    UpToDateByTermAndLength: ["A.rv_grant_up_to_date"],
    UpToDateByLength: ["A.rv_grant_up_to_date"],
    DeletesOnRefusal: ["B.ae_check"],
    CommitNotCappedByLastNew: ["B.ae_commit", "B.sim_rejoin", "B.t_figure7", "B.t_deposed_leader"],
}


@pytest.mark.parametrize("mutant", WRITTEN, ids=lambda m: m.__name__)
def test_each_bug_a_student_writes_is_one_exercise_and_loses_points_only_where_its_rule_is_checked(
        mutant: type[Replica]) -> None:
    assert mutant in MUTANTS and mutant.__bases__ == (Replica,) and mutant.__doc__
    methods = [name for name, value in vars(mutant).items() if inspect.isfunction(value)]
    assert len(methods) == 1 and methods[0] in BY_NAME, methods  # an exercise: what a student writes
    report = grade(mutant, seeds=1)
    rule = mutant.RULE  # type: ignore[attr-defined]
    failed = [r for r in report.results if not r.passed]
    assert sorted(r.id for r in failed) == sorted(WRITTEN[mutant]), report.text()
    assert all(rule in r.rule.split(", ") for r in failed), report.text()
    assert all(r.kind in ("assertion", "invariant") for r in failed), report.text()


def test_the_four_node_checks_pass_on_the_reference_over_many_seeds() -> None:
    for check_id in ("A.sim_even_split_election", "B.sim_even_split_commit"):
        result = run_check(BY_ID[check_id], Replica, list(range(1, 13)))
        assert result.passed, result.message
