"""Blame only where it is due: each check declares the rules it judges and runs the student's code for
those only (or says that it tests several rules together), and the self-check fails when a planted bug
loses points in a check of another rule that does not say so."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

import pytest

from raftlab.core import Replica
from raftlab.grading import CHECKS, EXERCISES, PARTS, StudentReplica, graded_class, mutants
from raftlab.grading.checks import BY_ID
from raftlab.grading.mutants import (
    ActsOnStaleResponses, KeepsConflictingEntries, ResetsTimerOnEveryVoteRequest, TruncatesMatchingEntries,
    VotesWithoutUpToDateCheck, WinsWithHalfTheVotes,
)
from raftlab.grading.runner import check_class, implements, run_check

RULE_IDS = set(re.findall(r"\*\*([A-Z]+(?:-[A-Z]+)+)\*\*", (Path(__file__).parents[2] / "docs" / "raft-rules.md")
                          .read_text(encoding="utf-8"))) | {"restart"}


def test_every_check_declares_known_rules_and_every_integration_check_says_why() -> None:
    for c in CHECKS:
        assert c.rules and set(c.rules) <= RULE_IDS, (c.id, c.rules)
        if c.part not in PARTS or c.transcript is not None:  # (parts E and F grade the class whole; a
            assert c.together, c.id  # transcript replays one exact schedule, which the whole part shapes)
    for exercise in EXERCISES:
        assert implements(exercise) <= RULE_IDS, exercise.name


def test_a_check_runs_the_students_code_for_its_own_rules_and_the_reference_elsewhere() -> None:
    cls = check_class(StudentReplica, BY_ID["B.ae_check"])  # AE-CHECK: log_matches, and nothing else
    assert cls.log_matches is StudentReplica.log_matches
    assert cls.truncate_conflicts is Replica.truncate_conflicts and cls.record_match is Replica.record_match
    assert cls.grant_vote is Replica.grant_vote  # (another part: the reference's, as before)
    cls = check_class(StudentReplica, BY_ID["A.f_timeout_resets"])  # F-TIMEOUT: the timer, and a grant resets it
    assert cls.reset_election_timer is StudentReplica.reset_election_timer
    assert cls.grant_vote is StudentReplica.grant_vote and cls.handle_vote_response is Replica.handle_vote_response
    cls = check_class(StudentReplica, BY_ID["B.sim_unreliable"])  # L-REPLICATE, L-COMMIT: the leader's side
    assert {e.name for e in EXERCISES if getattr(cls, e.name) is getattr(StudentReplica, e.name)} == \
        {"record_match", "back_off", "advance_commit"}
    cls = check_class(StudentReplica, BY_ID["B.t_figure7"])  # an integration check: the part whole
    assert cls.record_match is StudentReplica.record_match and cls.log_matches is StudentReplica.log_matches
    assert graded_class(StudentReplica, "B").record_match is StudentReplica.record_match  # (no rules: the part)
    cls = check_class(StudentReplica, BY_ID["E.ri_current"])  # parts E and F: the class whole
    assert all(getattr(cls, e.name) is getattr(StudentReplica, e.name) for e in EXERCISES)


@pytest.mark.parametrize(("mutant", "check_id"), [
    (KeepsConflictingEntries, "B.sim_unreliable"), (TruncatesMatchingEntries, "B.ae_check"),
    (VotesWithoutUpToDateCheck, "A.f_timeout_resets"), (VotesWithoutUpToDateCheck, "A.all_term")])
def test_a_bug_no_longer_loses_points_in_a_check_of_another_rule(mutant: type[Replica], check_id: str) -> None:
    check = BY_ID[check_id]
    assert mutant.RULE not in check.rules and not check.together  # type: ignore[attr-defined]
    result = run_check(check, mutant, [1, 2, 3])
    assert result.passed, result.message


def test_the_same_bugs_still_lose_points_where_their_rule_is_judged() -> None:
    result = run_check(BY_ID["A.f_timeout_resets"], ResetsTimerOnEveryVoteRequest, [])
    assert not result.passed and result.message.startswith("F-TIMEOUT: a VoteRequest from a candidate whose log "
                                                            "is behind, answered without a vote, moved")
    result = run_check(BY_ID["B.ae_append"], TruncatesMatchingEntries, [])  # one exercise, two rules, said so
    assert not result.passed and result.message.startswith("AE-TRUNCATE: a duplicate request"), result.message
    assert "(this check tests AE-APPEND and AE-TRUNCATE together: your code for these rules" in result.message
    result = run_check(BY_ID["A.t_split_vote"], ActsOnStaleResponses, [])  # an exact schedule, changed elsewhere
    assert not result.passed and "(this check tests C-RETRY and F-TIMEOUT together with the rest of" in result.message
    result = run_check(BY_ID["A.rv_grant_up_to_date"], VotesWithoutUpToDateCheck, [])
    assert not result.passed and result.message.startswith("RV-GRANT:") and "this check" not in result.message


def _self_check_of(mutant: type[Replica]) -> functools.partial:
    return functools.partial(mutants.self_check, mutants=[mutant])


def test_a_mis_declared_check_makes_the_self_check_fail(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # WinsWithHalfTheVotes (C-WIN) fails A.c_win and A.sim_even_split_election; declared as a check of
    # L-COMMIT (in this process, where the self-check judges; its workers run the checks as they are), the
    # scenario blames C-WIN's bug on L-COMMIT: the self-check and the command fail, and say where.
    wrong = dataclasses.replace(BY_ID["A.sim_even_split_election"], rule="L-COMMIT")
    monkeypatch.setitem(BY_ID, wrong.id, wrong)
    monkeypatch.setattr(mutants, "self_check", _self_check_of(WinsWithHalfTheVotes))
    from raftlab.cli import main

    assert main(["grade", "--self-check", "--json", "--seeds", "1", "--jobs", "1"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    row, summary = json.loads(lines[-2]), json.loads(lines[-1])
    assert row["candidate"] == "WinsWithHalfTheVotes" and row["caught_by"] == ["A.c_win"] and row["caught"]
    assert row["blamed_elsewhere"] == ["A.sim_even_split_election"] and row["blamed_together"] == []
    assert summary["falsely_blamed"] == 1 and summary["passed"] is False
    assert summary["caught"] == summary["mutants"] == 1 and summary["reference_score"] == 1.0
    monkeypatch.setitem(BY_ID, wrong.id, dataclasses.replace(wrong, together="the rest of part A (a test)"))
    outcome = mutants.self_check(seeds=1, jobs=1)  # declared as an integration check, it says so: no false blame
    row = outcome["rows"][2]
    assert row["blamed_elsewhere"] == [] and row["blamed_together"] == ["A.sim_even_split_election"]
    assert outcome["summary"]["passed"] is True
