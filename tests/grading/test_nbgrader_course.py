"""The nbgrader course of docs/instructors.md, end to end in a temporary folder: `raftlab assignments`,
generate, two submissions (one wrong exercise, one infinite loop), autograde, export. The exported
score is raftlab's own count, not 0; the looping submission's feedback names the rule; no seed of the
hidden scenarios appears in any file a student gets back."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raftlab.grading import grade, load_student, secret_seeds, submissions
from raftlab.lab import NBGRADER_CONFIG

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "a secret of the test's own"

nbformat = pytest.importorskip("nbformat")
pytestmark = pytest.mark.skipif(shutil.which("nbgrader", path=str(BIN)) is None, reason="nbgrader is not installed")


def test_the_guide_shows_the_configuration_raftlab_assignments_writes() -> None:
    guide = (ROOT / "docs" / "instructors.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert NBGRADER_CONFIG in blocks
    for step in ("raftlab assignments --dir course", "nbgrader generate_assignment part_a",
                 "submitted/<student id>/part_a/part_a_election.ipynb", "nbgrader autograde part_a --create",
                 "nbgrader export", "export RAFTLAB_SECRET="):
        assert step in guide, step


def _solution(cell_source: str, old: str, new: str) -> str:
    assert cell_source.count(old) == 1, old
    return cell_source.replace(old, new)


def _submit(course: Path, student: str, released: Path, solution_cell: str) -> Path:
    """A student's notebook: the released one with its solution cell written (and nothing else changed)."""
    nb = nbformat.read(released, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    cell.source = solution_cell
    target = course / "submitted" / student / "part_a" / released.name
    target.parent.mkdir(parents=True)
    nbformat.write(nb, target)
    return target


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


def test_a_course_from_generate_to_export_gives_partial_credit(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAFTLAB_SECRET": SECRET}
    course = tmp_path / "course"
    _run([str(BIN / "raftlab"), "assignments", "--dir", str(course)], tmp_path, env)
    assert (course / "nbgrader_config.py").read_text() == NBGRADER_CONFIG
    assert sorted(p.name for p in (course / "source").iterdir()) == ["part_a", "part_b", "part_c", "part_d"]
    _run([str(BIN / "nbgrader"), "generate_assignment", "part_a"], course, env)
    released = course / "release" / "part_a" / "part_a_election.ipynb"
    source = nbformat.read(course / "source" / "part_a" / released.name, as_version=4)
    reference = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution"))

    # alice: one wrong exercise (a vote of an earlier term is counted: ALL-STALE)
    alice = _submit(course, "alice", released, _solution(
        reference, "if m.term < self.current_term or self.role is not Role.CANDIDATE or not m.vote_granted:",
        "if self.role is not Role.CANDIDATE or not m.vote_granted:"))
    # bob: an infinite loop, when asked for a vote by a candidate whose log is behind his (RV-GRANT)
    bob = _submit(course, "bob", released, _solution(
        reference, "        self.persist_term_and_vote(self.current_term, m.from_id)\n",
        "        if (m.last_log_term, m.last_log_index) < (self.log.last_term, self.log.last_index):\n"
        "            while True:\n                pass\n"
        "        self.persist_term_and_vote(self.current_term, m.from_id)\n"))
    bob_source = nbformat.read(bob, as_version=4)
    bob_cell = next(c for c in bob_source.cells if c.metadata.get("nbgrader", {}).get("solution"))
    behind = ("        if (m.last_log_term, m.last_log_index) < (self.log.last_term, self.log.last_index):\n"
              "            return False  # the candidate's log is behind mine\n")
    assert behind in bob_cell.source
    bob_cell.source = bob_cell.source.replace(behind, "", 1)  # (the refusal goes: the loop above is reached)
    nbformat.write(bob_source, bob)

    _run([str(BIN / "nbgrader"), "autograde", "part_a", "--create"], course, env)
    _run([str(BIN / "nbgrader"), "export"], course, env)
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"alice", "bob"}

    # raftlab's own count for alice's notebook, graded as the two graded cells grade it
    cls = load_student(alice)
    paper = grade(cls, part="A", scenario=False)
    scenarios = grade(cls, part="A", seeds=2, secret_seeds=secret_seeds_of("A"), scenario=True)
    expected, out_of = paper.points() + scenarios.points(), paper.out_of() + scenarios.out_of()
    assert 0 < expected < out_of and "A.c_win_stale_votes" in paper.failed()
    assert float(rows["alice"]["score"]) == expected and float(rows["alice"]["max_score"]) == out_of
    assert 0 < float(rows["bob"]["score"]) < out_of  # the checks that never ask him for such a vote pass

    # bob's feedback (the autograded notebook's outputs) names the rule his loop is in
    graded = nbformat.read(course / "autograded" / "bob" / "part_a" / released.name, as_version=4)
    printed = "\n".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert re.search(r"RV-GRANT: no answer within [\d.]+ s of wall time: an infinite loop", printed), printed[-3000:]
    assert "CellTimeoutError" not in json.dumps(graded)

    # no hidden seed in anything a student gets back, nor in the released notebook
    hidden = [str(s) for s in secret_seeds_of("A")]
    for path in [released, *course.glob("autograded/*/part_a/*.ipynb")]:
        text = path.read_text()
        assert not [s for s in hidden if re.search(rf"\b{s}\b", text)], path
        assert "and 2 hidden" in text or path == released

    # the same submissions graded without nbgrader: raftlab grade finds them in nbgrader's layout
    assert submissions(course / "submitted") == [alice, bob]
    result = subprocess.run([str(BIN / "raftlab"), "grade", str(course / "submitted"), "--part", "A", "--seeds", "2",
                             "--timeout", "5", "--csv", str(tmp_path / "raftlab.csv")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "raftlab.csv", newline="") as f:
        ours = {row["student"]: row for row in csv.DictReader(f)}
    assert set(ours) == {"alice", "bob"} and ours["alice"]["graded_at"]
    assert int(ours["alice"]["A"]) < int(ours["alice"]["A_of"]) == out_of


def secret_seeds_of(part: str) -> list[int]:
    """The hidden seeds the test's secret gives (this process's own RAFTLAB_SECRET, if any, is left as it was)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAFTLAB_SECRET", SECRET)
        return secret_seeds(part)
