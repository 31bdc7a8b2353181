"""The grader's model-checking part (`raftlab grade --model-check`): a safety violation found by the
search fails the whole part, with its counterexample and the command that replays it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raftlab.cli import main
from raftlab.grading.modelcheck import POINTS, model_check
from raftlab.mc import Bounds

STALE_VOTE = '''
from raftlab.grading import StudentReplica


class Stale(StudentReplica):
    def grant_vote(self, m):  # no up-to-date check (RV-GRANT, §5.4.1)
        if self.voted_for not in (None, m.from_id):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True
'''

LOOPS = '''
from raftlab.grading import StudentReplica


class Loops(StudentReplica):
    def grant_vote(self, m):
        while True:
            pass
'''

CORRECT = '''
from raftlab.grading import StudentReplica


class Correct(StudentReplica):
    def grant_vote(self, m):
        if self.voted_for not in (None, m.from_id):
            return False
        if (m.last_log_term, m.last_log_index) < (self.log.last_term, self.log.last_index):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True
'''


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


def test_a_safety_violation_fails_the_whole_part_with_its_counterexample(tmp_path: Path) -> None:
    path = _file(tmp_path, "stale", STALE_VOTE)
    result = model_check(path, time_budget=30)
    assert (result.passed, result.earned, result.points, result.part) == (False, 0, POINTS, "M")
    assert result.kind == "invariant" and result.message.startswith("Vote rule (RV-GRANT) violated after 5 steps")
    assert re.search(r"node \d granted its vote to \d in term 1, though the candidate's log \(last term 0, index 0\) "
                     r"is not at least as up to date as its own \(last term 1, index 1\)", result.message)
    assert result.replay.startswith(f"raftlab mc --replica {path} ")


def test_a_correct_exercise_keeps_the_points(tmp_path: Path) -> None:
    result = model_check(_file(tmp_path, "correct", CORRECT), Bounds(3, 2, 2, 1, 1, 0, 1, 7), time_budget=20)
    assert (result.passed, result.earned) == (True, POINTS), result.message
    assert "no violation" in result.message


def test_a_step_that_loops_is_a_timeout_not_a_hang(tmp_path: Path) -> None:
    result = model_check(_file(tmp_path, "loops", LOOPS), time_budget=1, grace=5)
    assert (result.passed, result.earned, result.kind) == (False, 0, "timeout")
    assert "loop" in result.message


def test_the_command_adds_the_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, "stale", STALE_VOTE)
    assert main(["grade", path, "--part", "A", "--seeds", "1", "--model-check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    m = [r for r in report["results"] if r["part"] == "M"]
    assert len(m) == 1 and m[0]["earned"] == 0 and "Vote rule (RV-GRANT)" in m[0]["message"]
    assert report["total"] == sum(r["points"] for r in report["results"])


def test_grading_a_file_that_is_not_there_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["grade", "no/such/student.py"])
    assert stop.value.code == 2 and "no such file or folder: no/such/student.py" in capsys.readouterr().err


def test_a_file_that_cannot_be_loaded_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, "broken", "def oops(:\n")
    assert main(["grade", path, "--part", "A", "--seeds", "1"]) == 1
    assert "could not load the submission" in capsys.readouterr().out


def test_the_model_checking_part_has_its_csv_columns(tmp_path: Path) -> None:
    import csv

    from raftlab.grading import Report, write_csv
    report = Report("Stale", "stale.py", None, [1], [model_check(_file(tmp_path, "stale", STALE_VOTE), time_budget=30)])
    write_csv([report], tmp_path / "grades.csv")
    row = next(csv.DictReader((tmp_path / "grades.csv").open()))
    assert (row["M"], row["M_of"], row["A"]) == ("0", str(POINTS), "")


def test_mc_checks_a_students_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, "stale", STALE_VOTE)
    assert main(["mc", "--replica", path, "--json"]) == 1
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["replica"] == "Stale" and figures["violations"] == 1
    assert figures["violation"]["property"] == "Vote rule (RV-GRANT)"
    assert main(["mc", "--replica", path, "--safety-only", "--json"]) == 1  # where the broken rule leads
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["violation"]["property"] == "Leader Completeness"
