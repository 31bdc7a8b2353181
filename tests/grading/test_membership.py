"""Part F of the grade (membership change, thesis chapter 4): its checks pass on the reference (the core
`Replica`); each planted membership bug (the missing erratum check, a learner that stands, a removed
leader that counts itself) fails a check that names its rule, and only there; the other planted bugs
fail part F only by their own rule; other forms of the same bugs are caught too."""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from raftlab.core import Configuration, Message, Replica, Role, TransitionState, VoteRequest, VoteResponse
from raftlab.grading import CHECKS, GRADED_PARTS, Check, StudentReplica, grade, graded_class, write_csv
from raftlab.grading.checks import BY_ID
from raftlab.grading.fakes import (
    LEADER, ME, NOOP, C, ack, build, config_entry, e, follower, held, offer, settled_leader,
)
from raftlab.grading.mutants import (
    MUTANTS, ChangesBeforeTermCommits, CommitsWithHalfTheVoters, CountsItselfWhenRemoved, KeepsConflictingEntries,
    LearnerStandsForElection,
)
from raftlab.grading.runner import run_check

from .solutions import written_out

MEMBERSHIP = (ChangesBeforeTermCommits, LearnerStandsForElection, CountsItselfWhenRemoved)
CATCHES = {  # each planted bug, and the part F checks expected to catch it
    ChangesBeforeTermCommits: ["F.mc_one_term_committed"],
    LearnerStandsForElection: ["F.mc_learner_never_stands"],
    CountsItselfWhenRemoved: ["F.mc_stepdown"],
}
PART_F = [c for c in CHECKS if c.part == "F"]


def test_part_f_is_a_part_of_the_grade_without_exercises_and_covers_every_membership_rule() -> None:
    assert list(GRADED_PARTS)[-2:] == ["E", "F"] and "membership change" in GRADED_PARTS["F"]
    assert len(PART_F) >= 6 and all(not c.scenario for c in PART_F)  # deterministic, one replica by hand
    rules = " ".join(c.rule for c in PART_F)
    for rule in ("MC-ONE", "MC-LATEST", "MC-LEARNER", "MC-STEPDOWN", "MC-SNAPSHOT"):
        assert rule in rules
    cls = graded_class(StudentReplica, "F")  # the class graded whole, as in part E
    assert cls.advance_commit is StudentReplica.advance_commit and cls.grant_vote is StudentReplica.grant_vote


@pytest.mark.parametrize("mutant", MEMBERSHIP, ids=lambda m: m.__name__)
def test_each_membership_bug_is_one_method_of_the_core_named_by_its_docstring(mutant: type[Replica]) -> None:
    assert mutant in MUTANTS and mutant.__bases__ == (Replica,)
    methods = [name for name, value in vars(mutant).items() if inspect.isfunction(value)]
    assert len(methods) == 1 and methods[0] in vars(Replica), methods
    assert mutant.__doc__ and len(mutant.__doc__) > 80
    assert any(mutant.RULE in c.rule.split(", ") for c in PART_F)  # type: ignore[attr-defined]


@pytest.mark.parametrize("check", PART_F, ids=lambda c: c.id)
def test_every_part_f_check_passes_on_the_reference(check: Check) -> None:
    result = run_check(check, Replica, [1])
    assert result.passed, result.message + "\n" + result.tail


@pytest.mark.parametrize("mutant", MEMBERSHIP, ids=lambda m: m.__name__)
def test_each_membership_bug_fails_the_check_of_its_rule_with_a_message_that_starts_with_it(
        mutant: type[Replica]) -> None:
    rule = mutant.RULE  # type: ignore[attr-defined]
    for check_id in CATCHES[mutant]:
        check = BY_ID[check_id]
        assert rule in check.rule
        result = run_check(check, mutant, [1])
        assert not result.passed and result.kind == "assertion", (check_id, result.kind, result.message)
        assert result.message.startswith(f"{rule}:"), result.message
        assert result.replay and result.seed is None and result.tail  # a paper-claim check: the replica's events


@pytest.mark.parametrize("mutant", MEMBERSHIP, ids=lambda m: m.__name__)
def test_each_membership_bug_loses_points_only_in_part_f_checks_that_name_its_rule(mutant: type[Replica]) -> None:
    report = grade(mutant, seeds=1)
    rule = mutant.RULE  # type: ignore[attr-defined]
    failed = [r for r in report.results if not r.passed]
    assert sorted(r.id for r in failed) == sorted(CATCHES[mutant]), report.text()
    assert all(rule in r.rule for r in failed)
    assert all(earned == total for part, (earned, total) in report.by_part().items() if part != "F")


def test_the_other_bugs_fail_part_f_only_by_their_own_rule() -> None:
    # Part F runs a class whole, so every other planted bug runs there too: none may fail it for another
    # rule. Only two fail there at all: the truncation bug, where a truncated configuration must be undone,
    # and the majority of half the voters, where a configuration has four voters, or two.
    fails_in_f = {KeepsConflictingEntries: ["F.mc_latest_truncated"],
                  CommitsWithHalfTheVoters: ["F.mc_latest", "F.mc_stepdown"]}
    for mutant in MUTANTS:
        if mutant in MEMBERSHIP:
            continue
        report = grade(mutant, part="F", seeds=1)
        failed = [r for r in report.results if not r.passed]
        assert all(mutant.RULE in r.rule for r in failed), report.text()  # type: ignore[attr-defined]
        assert [r.id for r in failed] == fails_in_f.get(mutant, []), report.text()


def test_the_skeleton_scores_zero_in_part_f_with_hints() -> None:
    report = grade(StudentReplica, part="F", seeds=1)
    assert report.score == 0.0 and {r.part for r in report.results} == {"F"}
    assert all(r.kind == "not implemented" and "Hint:" in r.message for r in report.results), report.text()
    assert "part F" in report.text()


def test_part_f_in_reports_the_csv_and_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    report = grade(Replica, part="F", seeds=1)
    assert report.score == 1.0 and report.by_part() == {"F": (report.total, report.total)}
    assert "part A-F" in grade(Replica, part=None, seeds=1).text().splitlines()[0]
    out = tmp_path / "grades.csv"
    write_csv([report], out)
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["F"] == rows[0]["F_of"] == str(report.total) and rows[0]["E"] == rows[0]["A"] == ""
    student = tmp_path / "cat.py"  # the reference's exercises, and the planted bug's advance_commit
    student.write_text(written_out("Cat", {"advance_commit": CountsItselfWhenRemoved.__dict__["advance_commit"]}))
    for part in ("E", "F"):  # every graded part is a choice of --part
        assert main(["grade", str(student), "--part", part, "--seeds", "1", "--json", "--jobs", "1"]) == 0
        graded = json.loads(capsys.readouterr().out)
        assert graded["part"] == part and {r["part"] for r in graded["results"]} == {part}
        assert [r["id"] for r in graded["results"] if not r["passed"]] == (["F.mc_stepdown"] if part == "F" else [])


# ----- other forms of the same bugs, caught by the same checks ------------------------------------------------
class CountsLearnerVotes(Replica):
    """The other form of MC-LEARNER's bug: a candidate counts the vote of a learner."""

    def step(self, message: Message) -> None:
        if isinstance(message, VoteResponse) and message.from_id in self.configuration.learners:
            self.handle_vote_response(message)  # (the core's step keeps only the voters' votes)
            return
        super().step(message)


class CountsEveryoneItReplicatesTo(Replica):
    """The other form of counting a removed server: every server the leader keeps a match for (learners and
    removed servers too) and the leader itself are counted."""

    def advance_commit(self) -> None:
        if self.role is Role.LEADER:
            held = sorted([self.log.last_index, *self.match_index.values()], reverse=True)
            n = held[len(held) // 2]
            if n > self.commit_index and self.log.term_at(n) == self.current_term:
                self.commit_to(n, "L-COMMIT")


class LearnerIgnoresVoteRequests(Replica):
    """Not a fix but a bug: a learner that does not answer VoteRequests (it must: it may be a voter in a
    configuration it has not seen yet, etcd's campaign_learner_must_vote)."""

    def handle_vote_request(self, m: VoteRequest) -> None:
        if self.id not in self.configuration.voters:
            return
        super().handle_vote_request(m)


@pytest.mark.parametrize("variant, expected", [
    (CountsLearnerVotes, {"F.mc_learner_not_counted"}),
    (CountsEveryoneItReplicatesTo, {"F.mc_learner_not_counted", "F.mc_stepdown"}),  # (a removed server is
    # forgotten by the leader, so only the learners and the leader itself are counted wrongly)
    (LearnerIgnoresVoteRequests, {"F.mc_learner_never_stands"}),
], ids=lambda v: getattr(v, "__name__", ""))
def test_other_forms_of_the_membership_bugs_are_caught(variant: type[Replica], expected: set[str]) -> None:
    failed = {c.id: run_check(c, variant, [1]) for c in PART_F}
    assert {i for i, r in failed.items() if not r.passed} == expected
    assert all(failed[i].message.startswith(("MC-LEARNER:", "MC-LATEST:", "MC-STEPDOWN:")) for i in expected)


# ----- the fakes, with membership ---------------------------------------------------------------------------------
def test_fakes_build_a_learner_and_a_settled_leader_and_offer_it_configurations() -> None:
    f = build(learner=True)
    assert f.replica.configuration == Configuration.of([2, 3], [1]) == C([2, 3], [1])
    g = settled_leader()
    r = g.replica
    assert r.role is Role.LEADER and r.commit_index == r.log.last_index == 1 and g.cluster.sent == []
    offer(g, C([1, 2, 3], [4]))
    assert g.sm.state_of(C([1, 2, 3], [4]).get_id()) is TransitionState.QUEUED and r.config_index == 2
    ack(r, 4)  # a learner's acknowledgement, all of the log
    assert r.match_index[4] == 2 and r.commit_index == 1
    ack(r, LEADER, 2)
    assert r.commit_index == 2 and g.sm.applied == [NOOP]
    h = follower()
    h.replica.step(_append_config())
    assert held(h.replica) == [(1, 1), (2, 1)] and h.replica.configuration == C([1, 2, 3], [4])
    assert config_entry(2, 1, [1, 2, 3], [4]).transition == C([1, 2, 3], [4]) and ME not in C([2, 3]).members


def _append_config() -> Any:
    from raftlab.grading.fakes import append

    return append(1, 0, 0, [e(1, 1), config_entry(2, 1, [1, 2, 3], [4])])
