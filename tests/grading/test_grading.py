"""The grader: the skeleton, the reference (the core `Replica` itself), guards, reports, folders and CSV."""

from __future__ import annotations

import ast
import csv
import inspect
import re
from pathlib import Path

import pytest

from raftlab.core import Flow, Replica
from raftlab.grading import (
    CHECKS, EXERCISES, GRADED_PARTS, PARTS, StudentReplica, SubmissionError, grade, graded_class, load_student,
    missing_exercises, replay,
)
from raftlab.grading.mutants import ActsOnStaleResponses, KeepsConflictingEntries
from raftlab.sim import Simulation

from .solutions import written_out

ROOT = Path(__file__).resolve().parents[2]


# ----- skeleton and reference ----------------------------------------------------------------------
def test_parts_cover_the_rules_named_in_the_issue() -> None:
    rules = {p: " ".join(e.rules for e in EXERCISES if e.part == p) for p in PARTS}
    for rule in ("F-TIMEOUT", "C-START", "C-WIN", "RV-GRANT", "ALL-TERM"):
        assert rule in rules["A"]
    for rule in ("L-REPLICATE", "AE-CHECK", "AE-TRUNCATE", "AE-APPEND", "AE-COMMIT", "L-COMMIT"):
        assert rule in rules["B"] + " ".join(c.rule for c in CHECKS if c.part == "B")
    for rule in ("SNAP-TAKE", "IS-KEEP", "IS-LOAD"):
        assert rule in rules["D"]
    assert {e.part for e in EXERCISES} == set(PARTS)
    assert {c.part for c in CHECKS} == set(GRADED_PARTS) == set(PARTS) | {"E", "F"}
    beyond = " ".join(c.rule for c in CHECKS if c.part == "E")
    for rule in ("PV-ASK", "PV-GRANT", "CQ-STEPDOWN", "CQ-STICKY", "LT-STOP", "LT-TIMEOUTNOW", "LT-ABORT",
                 "RI-CURRENT", "RI-CONFIRM", "RI-LEASE", "RI-SERVE"):
        assert rule in beyond


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.name)
def test_every_exercise_raises_a_hint_naming_its_rule(exercise) -> None:
    method = getattr(StudentReplica, exercise.name)
    arguments = [None] * (len(inspect.signature(method).parameters) - 1)
    with pytest.raises(NotImplementedError) as info:
        method(object.__new__(StudentReplica), *arguments)
    message = str(info.value)
    assert message.startswith(exercise.rules + ":")
    assert "Hint:" in message and exercise.name in message
    assert getattr(Replica, exercise.name) is not method  # the core (the reference) fills it in


def test_skeleton_reports_everything_missing_and_reference_nothing() -> None:
    assert len(missing_exercises(StudentReplica)) == len(EXERCISES)
    assert missing_exercises(Replica) == []
    with pytest.raises(NotImplementedError, match="recover is not written yet"):
        StudentReplica(1, [2, 3], None, None, None, 0.05, (0.15, 0.3))  # type: ignore[arg-type]


def test_graded_class_takes_other_parts_from_the_reference() -> None:
    cls = graded_class(StudentReplica, "B")
    assert cls.grant_vote is Replica.grant_vote
    assert cls.log_matches is StudentReplica.log_matches
    assert issubclass(cls, StudentReplica)


def test_every_exercise_is_a_rule_method_of_the_core_and_the_skeleton_adds_nothing_else() -> None:
    # The reference solution is the core: the skeleton only blanks out the core's own rule methods.
    for exercise in EXERCISES:
        assert exercise.name in Replica.__dict__, exercise.name
        assert exercise.rules.split(",")[0].split(" ")[0] in inspect.getsource(Replica.__dict__[exercise.name]) \
            or exercise.part == "C", exercise.name  # the core's method names its rule id
    own = {name for name, value in StudentReplica.__dict__.items() if callable(value)}
    assert own == {e.name for e in EXERCISES}


# ----- grading ---------------------------------------------------------------------------------------
def test_reference_gets_full_marks_with_other_seeds() -> None:
    report = grade(Replica, seeds=[11, 12])
    assert report.score == 1.0, report.text()
    assert report.total == sum(c.points for c in CHECKS)
    assert all(r.passed and r.kind == "pass" for r in report.results)


def test_skeleton_part_scores_zero_with_hints() -> None:
    report = grade(StudentReplica, part="D", seeds=1)
    assert report.score == 0.0
    assert {r.part for r in report.results} == {"D"}
    assert all(r.kind == "not implemented" for r in report.results), report.text()
    assert any(r.message.startswith("SNAP-TAKE:") for r in report.results)
    assert any(r.message.startswith("IS-KEEP, IS-LOAD:") for r in report.results)
    # only part D's exercises are listed as not written: the other parts are not graded here
    part_d = [f"{e.name} ({e.rules})" for e in EXERCISES if e.part == "D"]
    assert report.missing == part_d and part_d
    assert f"not written yet: {', '.join(part_d)}" in report.text() and "reset_election_timer" not in report.text()
    assert "reset_election_timer (F-TIMEOUT)" in grade(StudentReplica, part="A", seeds=1).missing


def test_a_failing_scenario_reports_seed_invariant_tail_and_replay() -> None:
    report = grade(KeepsConflictingEntries, part="B", seeds=[1, 2])
    failed = {r.id: r for r in report.results if not r.passed}
    assert set(failed) == {"B.ae_truncate_conflict", "B.sim_rejoin", "B.t_figure7", "B.t_deposed_leader"}
    # (B.sim_unreliable judges L-REPLICATE and L-COMMIT: it runs the reference's truncate_conflicts, so it
    # passes; it failed when it ran all of part B, where on seed 2 the conflicting entries kept a node apart)
    scenario = failed["B.sim_rejoin"]
    assert scenario.seed == 1
    assert scenario.kind in ("invariant", "assertion")
    assert "AE-TRUNCATE" in scenario.message or "Log Matching" in scenario.message
    assert len(scenario.tail.splitlines()) >= 5
    assert "RaftLab(replay(" in scenario.replay and "'B.sim_rejoin', seed=1" in scenario.replay
    assert scenario.earned == 0 and report.earned == report.total - 2 - 3 - 2 - 2
    transcript = failed["B.t_deposed_leader"]  # a bundled transcript replayed with the mutant
    assert transcript.seed is None and transcript.kind == "invariant"  # the checker stops the replay
    assert transcript.message.startswith("State Machine Safety violated") and "(seed 4)" in transcript.message
    assert "RaftLab(replay(" in transcript.replay and "'B.t_deposed_leader'))" in transcript.replay
    paper = failed["B.ae_truncate_conflict"]
    assert paper.seed is None and paper.message.startswith("AE-TRUNCATE:")
    assert "[AE-TRUNCATE] truncated" not in paper.tail  # the explained tail shows what did happen
    assert "python -c" in paper.replay


def test_replay_returns_the_simulation_stopped_at_the_failure(capsys: pytest.CaptureFixture[str]) -> None:
    sim = replay(KeepsConflictingEntries, "B.sim_rejoin", seed=1)
    assert isinstance(sim, Simulation)
    assert "failed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"L-REPLICATE|ALL-STALE"):
        replay(ActsOnStaleResponses, "B.l_replicate_responses")


class BacksOffOneStep(Replica):
    """Figure 2's back-off: next_index one step back on a refusal of the current probe, the hint unused."""

    def back_off(self, peer, m):  # type: ignore[no-untyped-def]
        pr = self.progress[peer]
        if pr.flow is Flow.PROBE and m.prev_log_index == pr.probe:
            self.next_index[peer] = max(self.match_index[peer] + 1, self.next_index[peer] - 1)
            pr.probe = None


def test_backing_off_one_step_as_figure_2_does_passes_part_b() -> None:
    report = grade(BacksOffOneStep, part="B", seeds=[1, 2])  # raft-rules.md: "one step, or straight to a hint"
    assert report.score == 1.0, report.text()
    assert [r.passed for r in report.results if r.id == "B.l_replicate_responses"] == [True]


class Storm(Replica):
    """Every answer makes the leader send two more requests, past flow control: a message storm."""

    def handle_append_response(self, m):  # type: ignore[no-untyped-def]
        super().handle_append_response(m)
        if self.role.value == "leader":
            for _ in range(2):
                self.send(m.from_id, self.append_request(self.next_index[m.from_id] - 1, ()))


class Loops(Replica):
    def log_matches(self, prev_index, prev_term):  # type: ignore[no-untyped-def]
        while True:
            pass


class Raises(Replica):
    def advance_commit(self) -> None:
        raise KeyError("oops")


def test_guards_event_budget_wall_time_and_exceptions() -> None:
    storm = grade(Storm, part="B", seeds=1)
    budget = [r for r in storm.results if r.kind == "budget"]
    assert budget and "event budget exhausted" in budget[0].message

    loops = grade(Loops, part="B", seeds=1, timeout=1.0)
    timeouts = [r for r in loops.results if r.kind == "timeout"]
    assert timeouts and "infinite loop" in timeouts[0].message
    assert loops.results[-1].kind in ("timeout", "pass", "assertion")  # the grader went on to the end
    assert len(loops.results) == len([c for c in CHECKS if c.part == "B"])

    raises = grade(Raises, part="B", seeds=1)
    errors = [r for r in raises.results if r.kind == "exception"]
    assert errors and "KeyError" in errors[0].message
    assert "advance_commit" in errors[0].traceback and "oops" in errors[0].traceback


# ----- files, folders, CSV, CLI ------------------------------------------------------------------
GOOD = written_out("Good")  # every exercise solved as the core solves it, written out (a copy is refused)
BROKEN = "from raftlab.grading import StudentReplica\n\nclass Half(StudentReplica):\n    def oops(:\n"


def test_load_student_finds_the_class(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text(GOOD)
    assert load_student(tmp_path / "one.py").__name__ == "Good"
    two = GOOD + "\nclass Other(StudentReplica):\n    pass\n"
    (tmp_path / "two.py").write_text(two)
    with pytest.raises(SubmissionError, match="STUDENT_CLASS"):
        load_student(tmp_path / "two.py")
    (tmp_path / "named.py").write_text(two + "\nSTUDENT_CLASS = Other\n")
    assert load_student(tmp_path / "named.py").__name__ == "Other"
    (tmp_path / "broken.py").write_text(BROKEN)
    with pytest.raises(SubmissionError, match="SyntaxError"):
        load_student(tmp_path / "broken.py")


def test_cli_grades_a_folder_into_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "ann.py").write_text(GOOD)
    (folder / "ben.py").write_text(BROKEN)
    (folder / "cat.py").write_text(GOOD + "\n\nclass Cat(Good):  # IS-LOAD as Little Raft 0.2 has it\n"
                                   "    def install_snapshot(self, snapshot):\n"
                                   "        super().install_snapshot(snapshot)\n"
                                   "        self.storage.current_term = snapshot.last_included_term\n\n"
                                   "STUDENT_CLASS = Cat\n")
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--part", "D", "--seeds", "1", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["student"] for r in rows] == ["ann", "ben", "cat"]
    assert rows[0]["score"] == "1.0000" and (rows[0]["D"], rows[0]["D_of"]) == ("13", "13")  # numbers, not dates
    assert rows[1]["score"] == "0.0000" and "SyntaxError" in rows[1]["error"]
    assert float(rows[2]["score"]) < 1 and "D.is_load" in rows[2]["failed"]
    captured = capsys.readouterr()
    assert "[FAIL] D.is_load" in captured.out and "IS-LOAD" in captured.out
    # the progress, in a log that is not a terminal: one summary line, with how many fell short
    assert re.search(r"grade: 3/3 students in [\d.]+ s, below_full_marks 2", captured.err), captured.err


def test_grade_many_reports_each_student_as_it_is_done_and_returns_them_in_order() -> None:
    from raftlab.grading import grade_many
    from raftlab.grading.mutants import MUTANTS

    seen = []
    students = [("ref", Replica), *((m.__name__, m) for m in MUTANTS[:3])]
    reports = grade_many(students, "A", 1, jobs=2, progress=seen.append)
    assert len(seen) == len(reports) == 4
    assert {id(r) for r in seen} == {id(r) for r in reports}  # each once, as it came
    assert reports[0].score == 1.0 and [r.score < 1.0 for r in reports[1:]] == [bool(r.failed()) for r in reports[1:]]


def test_grading_imports_only_core_sim_machines() -> None:
    for path in (ROOT / "raftlab" / "grading").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert not re.match(r"(viz|widgets|cli)\b", node.module or ""), (path.name, node.module)
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith(("raftlab.viz", "raftlab.widgets")) for n in names), path.name


def test_a_submission_that_does_not_load_is_reported_once_not_once_per_check(tmp_path: Path) -> None:
    broken = tmp_path / "half.py"
    broken.write_text(BROKEN)
    report = grade(str(broken), None, 1)
    text = report.text()
    assert report.error and "SyntaxError" in report.error
    assert text.count("SyntaxError") == 2  # the error and its traceback, once
    assert f"[FAIL] all {len(report.results)} checks, 0/{report.total} points: not run" in text
    assert len(text.splitlines()) < 30 and report.score == 0.0
    assert all(not r.passed and r.kind == "crash" for r in report.results)  # (the JSON and the CSV keep each)


def test_the_replay_line_of_a_notebook_class_names_it_and_works_there(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from raftlab.sim import Simulation as Sim

    namespace: dict = {}
    exec(GOOD, namespace)
    good = namespace["Good"]

    def install_snapshot(self, snapshot):  # type: ignore[no-untyped-def]  (IS-LOAD as Little Raft 0.2 has it)
        good.install_snapshot(self, snapshot)
        self.storage.current_term = snapshot.last_included_term

    cls = type("MyReplica", (good,), {"__module__": "__main__", "install_snapshot": install_snapshot})
    report = grade(cls, "D", 1)  # (a class as a notebook cell defines it)
    assert report.source == "__main__:MyReplica"
    lines = [r.replay for r in report.results if r.replay]
    assert lines and all("replay(MyReplica, '" in line and "in the notebook defining it" in line for line in lines)
    scenario = next(r for r in report.results if r.scenario and r.replay and not r.passed)
    monkeypatch.setattr(sys.modules["__main__"], "MyReplica", cls, raising=False)
    namespace = {"MyReplica": cls}
    exec(scenario.replay.split("   #")[0].replace("RaftLab(", "sim = (").replace(
        "from raftlab.widgets import RaftLab; ", ""), namespace)  # what the student runs, minus the app
    assert isinstance(namespace["sim"], Sim)
    assert isinstance(replay("__main__:MyReplica", scenario.id, scenario.seed), Sim)


# ----- spawn, secret seeds, budgets, notebooks (issue 18, items 4 and 5) -------------------------
def test_the_grader_spawns_its_workers_and_grades_a_class_defined_in_a_function() -> None:
    from raftlab.grading import runner

    class Local(KeepsConflictingEntries):  # (<locals>: not importable, so sent by value)
        pass

    worker = runner._Worker(runner._ship(Local), "local")
    try:
        assert worker.process._popen.method == "spawn"  # type: ignore[attr-defined]
        assert worker.receive(30)[:2] == ("loaded", "Local")
    finally:
        worker.stop()
    report = grade(Local, part="B", seeds=[1])
    assert not report.error and "B.ae_truncate_conflict" in report.failed()  # its own bug, in the worker


def test_secret_seeds_come_from_the_secret_and_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from raftlab.grading import secret_seeds

    monkeypatch.delenv("RAFTLAB_SECRET", raising=False)
    with pytest.raises(ValueError, match="RAFTLAB_SECRET is not set"):
        secret_seeds("B")
    monkeypatch.setenv("RAFTLAB_SECRET", "one")
    seeds = secret_seeds("B", 3)
    assert seeds == secret_seeds("B", 3) and len(set(seeds)) == 3 and seeds != secret_seeds("A", 3)
    monkeypatch.setenv("RAFTLAB_SECRET", "two")
    assert secret_seeds("B", 3) != seeds
    # only secret seeds: the mutant fails on one, and the report never names it
    report = grade(KeepsConflictingEntries, part="B", seeds=[], secret_seeds=seeds, scenario=True)
    transcripts = {c.id for c in CHECKS if c.transcript is not None}  # (no seed: they replay a file)
    failed = [r for r in report.results if not r.passed and r.id not in transcripts]
    assert failed and all(r.hidden and r.seed is None and not r.replay for r in failed)
    text = report.text()
    assert "a hidden seed" in text and "and 3 hidden" in text
    assert not [s for s in seeds if re.search(rf"\b{s}\b", text + str(report.as_dict()))]
    assert report.points() == report.earned < report.out_of() == report.total  # (scenarios only)


def test_a_budget_ends_the_call_naming_the_rules_it_could_not_check() -> None:
    report = grade(Loops, part="B", seeds=1, timeout=1.0, budget=2.0)
    assert len(report.results) == len([c for c in CHECKS if c.part == "B"])
    not_run = [r for r in report.results if "time budget of 2 s was used up" in r.message]
    assert not_run and all(r.message.startswith(f"{r.rule}: not run") and r.earned == 0 for r in not_run)
    assert report.seconds < 30  # (the budget, not the 15 checks' timeouts: a behaviour, far from any timing)


def test_a_notebook_submission_is_graded_by_its_definitions_only(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nfrom raftlab.grading import StudentReplica, grade"),
                nbformat.v4.new_code_cell(
                    "class Half(StudentReplica):  # one exercise of part A written\n"
                    "    def reset_election_timer(self):\n"
                    "        self.election_deadline = self.now() + self.rng.uniform(*self.election_timeout_range)\n"),
                nbformat.v4.new_code_cell("report = grade(Half, part='A')  # (a call: left out)\nprint(report)"),
                nbformat.v4.new_markdown_cell("class NotCode: pass")]
    path = tmp_path / "ann.ipynb"
    nbformat.write(nb, path)
    from raftlab.grading import notebook_source

    assert "grade(" not in notebook_source(path) and "class Half" in notebook_source(path)
    assert load_student(path).__name__ == "Half"
    report = grade(path, part="A", seeds=1)
    assert not report.error and len(report.missing) == 4
    assert not [m for m in report.missing if m.startswith("reset_election_timer")]  # it has the one written
    as_file = tmp_path / "ann.py"
    as_file.write_text(nb.cells[0].source.replace("%matplotlib inline\n", "") + "\n\n" + nb.cells[1].source)
    same = grade(as_file, part="A", seeds=1)
    assert [(r.id, r.earned, r.kind) for r in same.results] == [(r.id, r.earned, r.kind) for r in report.results]
    # the own-work review reads the notebook's code, not its JSON: the library's line, retyped, is flagged in both
    assert "reset_election_timer" in same.flagged and report.flagged.keys() == same.flagged.keys()


def test_a_file_that_grades_itself_while_loading_is_told_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "selfgrading.py"
    path.write_text(GOOD + "\nfrom raftlab.grading import grade\ngrade(Good, part='A')\n")
    report = grade(path, part="A", seeds=1)
    assert "if __name__ == " in report.error and report.earned == 0
