"""The integration view (`grade(..., together=True)`, `raftlab grade --together`): the scenarios of parts A-D
with the student's whole class, and the part that breaks a failure found by swapping each for the reference's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from raftlab.core import Replica
from raftlab.grading.checks import CHAOS, CHECKS
from raftlab.grading.mutants import KeepsConflictingEntries
from raftlab.grading.runner import (
    CSV_FIELDS, CSV_TOGETHER, TOGETHER, grade, replay, run_check, select, together_checks, write_csv,
)

from .solutions import written_out

GOOD = written_out("Good")  # the reference's exercises written out, as a full-marks student hands them in
BAD_B = written_out("BadB", {"truncate_conflicts": KeepsConflictingEntries.truncate_conflicts})  # one planted bug


def grant_vote(self, m):  # a part A exercise left unfinished (as the skeleton's: not implemented)
    raise NotImplementedError


BAD_AB = written_out("BadAB", {"truncate_conflicts": KeepsConflictingEntries.truncate_conflicts,
                               "grant_vote": grant_vote})  # two broken parts, A and B


def test_the_integration_view_is_the_scenarios_of_parts_a_to_d_and_chaos_seeds() -> None:
    assert {c.part for c in together_checks()} == {"A", "B", "C", "D", TOGETHER}
    assert together_checks()[-1] is CHAOS and CHAOS not in CHECKS  # (the view's own: not in the grade)
    assert all(c.scenario for c in together_checks())
    assert together_checks("B") == select("B", True) and together_checks("E") == []
    assert together_checks(scenario=False) == []


def test_the_reference_passes_the_integration_view_and_its_grade_is_unchanged() -> None:
    report = grade(Replica, "B", 1, together=True)
    assert report.score == 1.0 and report.total == sum(c.points for c in select("B"))  # T is not in the score
    assert [r.id for r in report.integration] == [f"T.{c.id}" for c in select("B", True)]
    assert all(r.passed and r.part == TOGETHER and not r.swapped for r in report.integration)
    assert report.integrated() == (17, 17) and report.broken_by() == {}
    assert "integration: 17/17 points (not in the score): every integration check passes" in report.text()
    assert "together" not in grade(Replica, "D", 1).as_dict()  # (without the view, the report is as it was)


def test_a_broken_part_is_named_in_the_integration_view(tmp_path: Path) -> None:
    path = tmp_path / "bad_b.py"
    path.write_text(BAD_B)
    report = grade(path, "B", 1, together=True)
    failed = {r.id: r for r in report.integration if not r.passed}
    assert "T.B.sim_rejoin" in failed and "T.B.sim_agreement" not in failed
    assert all(r.culprits == ["B"] and r.swapped == ["A", "B", "C", "D"] for r in failed.values())
    assert report.broken_by() == {"B": list(failed)}
    text = report.text()
    assert "passes when part B is the reference's: part B breaks it when run with your other parts" in text
    assert "integration view (--together)" in text and "part B breaks T.B.sim_rejoin" in text
    assert "(the integration view: this check ran your whole class, every exercise your own)" in text
    assert "replay('" + str(path) + "', 'T.B.sim_rejoin', seed=1)" in text
    assert report.failed() and not any(i.startswith("T.") for i in report.failed())  # the grade's own failures
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["together"]["broken_by"] == {"B": list(failed)} and len(as_json["together"]["results"]) == 7
    sim = replay(path, "T.B.sim_rejoin", seed=1)  # the whole class again, stopped at the failure
    assert sim is not None


def test_no_single_part_found_when_two_break_it(tmp_path: Path) -> None:
    path = tmp_path / "bad_ab.py"
    path.write_text(BAD_AB)
    report = grade(path, "B", 1, together=True)
    results = {r.id: r for r in report.integration}
    assert results["T.B.sim_agreement"].culprits == ["A"]  # only the unfinished vote stops it
    rejoin = results["T.B.sim_rejoin"]  # both parts break it: no one swap makes it pass
    assert not rejoin.passed and rejoin.culprits == [] and rejoin.swapped == ["A", "B", "C", "D"]
    assert "fails still with any one part the reference's (tried A, B, C, D)" in rejoin.blame()
    assert "no single part found that breaks T.B.sim_rejoin" in report.text()


def test_an_exercise_not_its_own_refuses_the_integration_view_whatever_the_part(tmp_path: Path) -> None:
    path = tmp_path / "fay.py"
    path.write_text(GOOD + "\n\nclass Fay(Good):\n    grant_vote = Replica.grant_vote\n\n\nSTUDENT_CLASS = Fay\n")
    report = grade(path, "B", 1, together=True)
    assert report.score == 1.0  # part B's grade runs the reference's part A
    assert list(report.refused) == ["grant_vote"] and all(r.kind == "refused" for r in report.integration)
    assert "every check of part T scores 0" in report.text()


def test_cli_together_text_json_csv_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "ann.py").write_text(GOOD)
    (folder / "bob.py").write_text(BAD_B)
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--part", "B", "--seeds", "1", "--together", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("integration view (--together)") == 2 and "part B breaks T.B.sim_rejoin" in text
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == CSV_FIELDS + CSV_TOGETHER  # the usual columns first, as they are
    assert (rows[0]["student"], rows[0]["score"], rows[0]["T"], rows[0]["T_of"]) == ("ann", "1.0000", "17", "17")
    assert rows[0]["T_failed"] == rows[0]["T_broken_by"] == ""
    assert "T.B.sim_rejoin" in rows[1]["T_failed"] and rows[1]["T_broken_by"].startswith("B: T.B.sim_rejoin")
    assert "T." not in rows[1]["failed"]  # the grade's failed checks only
    assert main(["grade", str(folder / "bob.py"), "--part", "B", "--seeds", "1", "--together", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["together"]["broken_by"]["B"][0] == "T.B.sim_rejoin"
    (folder / "bad.py").write_text("from raftlab.grading import StudentReplica\n\nclass Half(StudentReplica):\n"
                                   "    def oops(:\n")
    assert main(["grade", str(folder / "bad.py"), "--together"]) == 1  # as without --together: it did not load
    assert "no integration check run: the submission could not be loaded" in capsys.readouterr().out


def test_write_csv_without_the_view_keeps_its_columns(tmp_path: Path) -> None:
    report = grade(Replica, "D", 1, scenario=False)
    write_csv([report], tmp_path / "g.csv")
    assert list(next(csv.DictReader((tmp_path / "g.csv").open()))) == CSV_FIELDS


def test_the_chaos_seeds_run_the_whole_class() -> None:
    """The campaign of `raftlab chaos` on the grader's seeds, with the class whole: the core passes; a
    follower that keeps conflicting entries (AE-TRUNCATE) breaks it on seed 1 (measured: 8 of seeds 1-10)."""
    clean = run_check(CHAOS, Replica, [1, 2], together="")
    assert clean.passed and clean.id == "T.chaos", clean.message
    broken = run_check(CHAOS, KeepsConflictingEntries, [1], together="")
    assert not broken.passed and broken.message.startswith("Safety: chaos seed 1 (30 s of faults, five nodes): ")
    assert "run_chaos(1, 30, replica_class=YourClass)" in broken.message
