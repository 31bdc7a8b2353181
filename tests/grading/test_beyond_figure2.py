"""Part E of the grade (beyond Figure 2): its checks pass on the reference (the core `Replica`) and each
planted bug of the thesis's options (PreVote, leases, leadership transfer, ReadIndex) fails in a check
that names its rule, and only there."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import pytest

from raftlab.core import AppendEntryRequest, PreVoteRequest, ReadState, Replica, Role
from raftlab.grading import CHECKS, GRADED_PARTS, Check, StudentReplica, grade, graded_class, write_csv
from raftlab.grading.checks import BY_ID
from raftlab.grading.fakes import build, elect, leader, ok
from raftlab.grading.mutants import (
    MUTANTS, ActsOnStaleResponses, LeaseWithoutQuorum, MatchIndexMovesBack, PreVoteRaisesTerm,
    ReadsBeforeNoopCommits, TakesProposalsDuringTransfer,
)
from raftlab.grading.runner import run_check

BEYOND = (PreVoteRaisesTerm, LeaseWithoutQuorum, TakesProposalsDuringTransfer, ReadsBeforeNoopCommits)
CATCHES = {  # each planted bug, and the part E checks expected to catch it
    PreVoteRaisesTerm: ["E.pv_grant_changes_nothing", "E.sim_pv_no_disruption"],
    LeaseWithoutQuorum: ["E.ri_lease"],
    TakesProposalsDuringTransfer: ["E.lt_stop", "E.sim_transfer"],
    ReadsBeforeNoopCommits: ["E.ri_current"],
}
PART_E = [c for c in CHECKS if c.part == "E"]


def test_part_e_is_a_part_of_the_grade_without_exercises() -> None:
    assert GRADED_PARTS["E"].startswith("beyond Figure 2")
    assert len(PART_E) >= 8 and sum(c.scenario for c in PART_E) >= 3
    cls = graded_class(StudentReplica, "E")  # the class graded whole: no exercise is the reference's
    assert cls.grant_vote is StudentReplica.grant_vote and cls.install_snapshot is StudentReplica.install_snapshot
    assert graded_class(StudentReplica, "A").install_snapshot is Replica.install_snapshot  # (A-D as before)


@pytest.mark.parametrize("mutant", BEYOND, ids=lambda m: m.__name__)
def test_each_bug_beyond_figure_2_is_one_method_of_the_core_named_by_its_docstring(mutant: type[Replica]) -> None:
    assert mutant in MUTANTS and mutant.__bases__ == (Replica,)
    methods = [name for name, value in vars(mutant).items() if inspect.isfunction(value)]
    assert len(methods) == 1 and methods[0] in vars(Replica), methods
    assert mutant.__doc__ and len(mutant.__doc__) > 80
    assert any(mutant.RULE in c.rule.split(", ") for c in PART_E)  # type: ignore[attr-defined]


@pytest.mark.parametrize("check", PART_E, ids=lambda c: c.id)
def test_every_part_e_check_passes_on_the_reference(check: Check) -> None:
    result = run_check(check, Replica, [4, 5])
    assert result.passed, result.message + "\n" + result.tail


@pytest.mark.parametrize("mutant", BEYOND, ids=lambda m: m.__name__)
def test_each_bug_fails_the_checks_of_its_rule_with_a_message_that_starts_with_it(mutant: type[Replica]) -> None:
    rule = mutant.RULE  # type: ignore[attr-defined]
    for check_id in CATCHES[mutant]:
        check = BY_ID[check_id]
        assert rule in check.rule
        result = run_check(check, mutant, [1, 2, 3])
        assert not result.passed and result.kind == "assertion", (check_id, result.kind, result.message)
        assert result.message.startswith(f"{rule}:"), result.message
        assert result.replay and (result.seed == 1) is check.scenario


@pytest.mark.parametrize("mutant", BEYOND, ids=lambda m: m.__name__)
def test_each_bug_loses_points_only_in_checks_that_name_its_rule(mutant: type[Replica]) -> None:
    report = grade(mutant, seeds=1)
    rule = mutant.RULE  # type: ignore[attr-defined]
    failed = [r for r in report.results if not r.passed]
    assert sorted(r.id for r in failed) == sorted(CATCHES[mutant]), report.text()
    assert all(rule in r.rule for r in failed)
    assert report.by_part()["E"][0] < report.by_part()["E"][1]
    assert all(earned == total for part, (earned, total) in report.by_part().items() if part != "E")


def test_the_bugs_of_figure_2_fail_part_e_only_by_their_own_rule() -> None:
    # Part E runs a class whole, so the Figure 2 bugs (and part F's) run there too: none may fail it for
    # another rule (the mutants that rewrite a handler keep its rounds, transfers and reads, as the core's does).
    for mutant in MUTANTS:
        if mutant in BEYOND:
            continue
        report = grade(mutant, part="E", seeds=1)
        assert all(mutant.RULE in r.rule for r in report.results if not r.passed), report.text()  # type: ignore
    for mutant in (ActsOnStaleResponses, MatchIndexMovesBack):  # their Figure 2 bug only
        assert grade(mutant, part="E", seeds=[1, 2]).score == 1.0


def test_the_skeleton_scores_zero_in_part_e_with_hints() -> None:
    report = grade(StudentReplica, part="E", seeds=1)
    assert report.score == 0.0 and {r.part for r in report.results} == {"E"}
    assert all(r.kind == "not implemented" and "Hint:" in r.message for r in report.results), report.text()
    assert "part E" in report.text()


def test_part_e_in_reports_and_the_csv(tmp_path: Path) -> None:
    report = grade(Replica, part="E", seeds=[6])
    assert report.score == 1.0 and report.by_part() == {"E": (report.total, report.total)}
    with pytest.raises(ValueError, match="A, B, C, D, E, F"):
        grade(Replica, part="G")
    out = tmp_path / "grades.csv"
    write_csv([report], out)
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["E"] == rows[0]["E_of"] == str(report.total) and rows[0]["A"] == rows[0]["A_of"] == ""


# ----- the fakes, with the options ---------------------------------------------------------------------
def test_fakes_take_the_options_and_elect_through_a_pre_vote() -> None:
    f = build(pre_vote=True, check_quorum=True, read_lease=True, drift_bound=1.5)
    r = f.replica
    assert (r.pre_vote, r.check_quorum, r.read_lease, r.drift_bound) == (True, True, True, 1.5)
    elect(r)
    assert r.role is Role.LEADER and r.current_term == 1
    assert sorted(to for to, m in f.cluster.sent if isinstance(m, PreVoteRequest)) == [2, 3]


def test_the_recording_state_machine_records_reads() -> None:
    f = leader()
    r = f.replica
    r.step(ok(2, 1, 1, 0))  # the no-op commits
    f.cluster.take()
    r.read("r")
    assert f.sm.read_state_of("r") is None
    beat = f.cluster.messages(AppendEntryRequest, to=2)[-1]
    r.step(ok(2, 1, 1, beat.prev_log_index, round=beat.round))
    assert f.sm.read_states == [("r", ReadState.READY)] and f.sm.read_state_of("r") is ReadState.READY
    g = build()
    g.replica.read("nobody leads")
    assert g.sm.read_state_of("nobody leads") is ReadState.ABANDONED
