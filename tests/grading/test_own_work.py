"""Own work only (issue 18, item 1): a submission that inherits, copies or calls the library's solution of
an exercise is refused, naming the method; one that retypes the library's code is flagged for the
instructor; honest submissions, the reference and the planted bugs are graded as before."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from raftlab.core import Replica
from raftlab.grading import EXERCISES, PARTS, StudentReplica, grade, load_student, write_csv
from raftlab.grading.skeleton import BY_NAME
from raftlab.grading.mutants import MUTANTS, KeepsConflictingEntries
from raftlab.grading.ownwork import _source_refusals, is_submission, normalised, review

from .solutions import HEADER, written_out

PART_A = sum(c.points for c in grade.__globals__["CHECKS"] if c.part == "A")


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


def _notebook_class(name: str, bases: tuple[type, ...], body: str = "pass") -> type:
    """A class as a notebook cell defines it (module __main__, no source file to read)."""
    namespace: dict = {"__name__": "__main__", "Replica": Replica, "StudentReplica": StudentReplica}
    exec(f"class {name}({', '.join(b.__name__ for b in bases)}):\n    {body}\n", namespace)
    return namespace[name]


def _refused_with(report, method: str, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert method in report.refused, report.text()
    assert all(w in report.refused[method] for w in (method, *words)), report.refused[method]
    assert f"    {method}: " in report.text() and "REFUSED" in report.text()


# ----- refused: inherits -------------------------------------------------------------------------------
def test_a_class_that_inherits_the_library_replica_scores_nothing() -> None:
    frank = _notebook_class("Frank", (Replica,))  # `class Frank(Replica): pass` in a notebook: 72/72 before
    report = grade(frank, part="A", seeds=1)
    assert report.score == 0.0 and report.earned == 0 and report.total == PART_A
    assert all(r.kind == "refused" and not r.passed for r in report.results)
    for exercise in (e for e in EXERCISES if e.part == "A"):
        _refused_with(report, exercise.name, "inherited from raftlab.core.replica.Replica", exercise.rules)
    assert "log_matches" not in report.refused  # only part A's are graded here


def test_inheriting_one_exercise_from_a_library_class_refuses_its_part(tmp_path: Path) -> None:
    path = _file(tmp_path, "mix", "from raftlab.grading import StudentReplica\n"
                                  "from raftlab.grading.mutants import KeepsConflictingEntries\n\n"
                                  "class Mix(KeepsConflictingEntries, StudentReplica):\n    pass\n")
    report = grade(path, part="B", seeds=1)
    _refused_with(report, "truncate_conflicts", "inherited from raftlab.grading.mutants.KeepsConflictingEntries")
    assert report.score == 0.0 and {r.kind for r in report.results} == {"refused"}
    assert grade(path, part="A", seeds=1).refused == {}  # part A does not use it: not refused there


# ----- refused: copies onto the class ------------------------------------------------------------------
SETATTR = ("from raftlab.core import Replica\nfrom raftlab.grading import EXERCISES, StudentReplica\n\n"
           "class Good(StudentReplica):\n    pass\n\n"
           "for _e in EXERCISES:\n    setattr(Good, _e.name, Replica.__dict__[_e.name])\n")


def test_replacing_the_skeletons_own_method_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "max", "from raftlab.core import Replica\nfrom raftlab.grading import StudentReplica\n\n"
                                  "StudentReplica.take_snapshot = Replica.take_snapshot\n\n"
                                  "class Max(StudentReplica):\n    pass\n")
    report = grade(path, part="D", seeds=1)
    _refused_with(report, "take_snapshot", "StudentReplica.take_snapshot) was replaced by "
                                           "raftlab.core.replica.Replica.take_snapshot")
    assert "install_snapshot" not in report.refused and report.score == 0.0


def test_a_setattr_loop_copying_the_library_is_refused_at_run_time() -> None:
    namespace: dict = {"__name__": "__main__"}
    exec(SETATTR, namespace)  # (no source file: only the class itself can be looked at)
    report = grade(namespace["Good"], part="C", seeds=1)
    assert report.score == 0.0
    _refused_with(report, "persist_entries", "the library's own function raftlab.core.replica.Replica.persist_entries",
                  "copied onto the class")
    assert set(report.refused) == {e.name for e in EXERCISES if e.part == "C"}


def test_a_setattr_loop_is_refused_in_a_file_with_every_part_and_in_the_csv_and_json(tmp_path: Path) -> None:
    from raftlab.cli import main

    folder = tmp_path / "submissions"
    folder.mkdir()
    _file(folder, "dan", SETATTR)
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--part", "D", "--seeds", "1", "--csv", str(out), "--jobs", "1"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["score"] == "0.0000" and (row["D"], row["D_of"]) == ("0", "13")
    assert "install_snapshot: install_snapshot of Good is the library's own function" in row["refused"]
    report = grade(str(folder / "dan.py"), part=None, seeds=1)
    assert report.score == 0.0 and set(report.refused) == {e.name for e in EXERCISES}
    assert {r.part for r in report.results if r.kind == "refused"} == {"A", "B", "C", "D", "E", "F"}
    assert json.loads(json.dumps(report.as_dict()))["refused"]["grant_vote"].startswith("grant_vote of Good is")


def test_a_refused_submission_is_not_model_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    assert main(["grade", _file(tmp_path, "dan", SETATTR), "--part", "A", "--seeds", "1", "--model-check",
                 "--json", "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    model = [r for r in report["results"] if r["part"] == "M"]
    assert len(model) == 1 and model[0]["kind"] == "refused" and model[0]["earned"] == 0
    assert "grant_vote" in model[0]["message"] and report["score"] == 0.0


def test_an_assignment_of_a_library_method_in_the_class_body_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "eve", "from raftlab.core import Replica\nfrom raftlab.grading import StudentReplica\n\n"
                                  "class Eve(StudentReplica):\n    grant_vote = Replica.grant_vote\n")
    report = grade(path, part="A", seeds=1)
    _refused_with(report, "grant_vote", "copied onto the class")
    assert report.score == 0.0


def test_a_copy_hidden_from_the_class_is_refused_from_the_syntax_tree(tmp_path: Path) -> None:
    # Wrappers that call the library through a computed name: their code is the submission's, and
    # nothing on the class holds the library's function, so only the file shows where they come from.
    path = _file(tmp_path, "fay", "from raftlab.core import Replica\nfrom raftlab.grading import StudentReplica\n\n\n"
                                  "def _copy(name):\n"
                                  "    return lambda self, *args: getattr(Replica, name)(self, *args)\n\n\n"
                                  "class Fay(StudentReplica):\n    grant_vote = _copy('grant_vote')\n\n\n"
                                  "setattr(Fay, 'log_matches', _copy('log_matches'))\n"
                                  "Fay.advance_commit = _copy('advance_commit')\n")
    report = grade(path, part=None, seeds=1)
    for name in ("grant_vote", "log_matches", "advance_commit"):  # (the run-time review sees the closure's name)
        _refused_with(report, name, f"calls getattr(Replica, name), which is raftlab.core.replica.Replica.{name}")
    assert report.score == 0.0
    source = _source_refusals(load_student(path))  # the syntax tree alone finds them too
    assert "assigned in the body of Fay (line 10: grant_vote = _copy('grant_vote'))" in source["grant_vote"]
    assert "set on Fay by setattr (line 13" in source["log_matches"]
    assert "assigned onto the class (line 14" in source["advance_commit"]


def test_a_wrapper_around_the_library_method_is_refused() -> None:
    namespace: dict = {"__name__": "__main__"}
    exec("import functools\nfrom raftlab.core import Replica\nfrom raftlab.grading import StudentReplica\n\n"
         "def _wrap(f):\n    return lambda self, *args: f(self, *args)\n\n"
         "class Gil(StudentReplica):\n    become_follower = _wrap(Replica.become_follower)\n"
         "    record_match = functools.partialmethod(Replica.record_match)\n", namespace)
    found = review(namespace["Gil"])
    assert "become_follower" in found.refused and "Replica.become_follower" in found.refused["become_follower"]
    assert "record_match" in found.refused and "copied onto the class" in found.refused["record_match"]


def test_the_library_code_compiled_at_run_time_in_a_file_is_refused_and_flagged_elsewhere(tmp_path: Path) -> None:
    text = ("import inspect, textwrap\n\nfrom raftlab.core import Replica\n"
            "from raftlab.grading import StudentReplica\n\n"
            "_ns = {}\nexec(textwrap.dedent(inspect.getsource(Replica.log_matches)), _ns)\n\n"
            "class Lee(StudentReplica):\n    log_matches = _ns['log_matches']\n")
    report = grade(_file(tmp_path, "lee", text), part="B", seeds=1)
    _refused_with(report, "log_matches", "the library's own code compiled at run time (from '<string>', not from "
                                         f"{tmp_path / 'lee.py'}")
    namespace: dict = {"__name__": "__main__"}
    exec(text, namespace)  # a notebook's: no file to compare with, so only flagged
    found = review(namespace["Lee"])
    assert found.refused == {} and "compiles to the library's own code" in found.flagged["log_matches"]


# ----- refused: calls the library's implementation of the same rule ------------------------------------
CALLS = '''from raftlab import core
from raftlab.core import Replica
from raftlab.grading import StudentReplica

_lib = Replica.become_follower


class Hal(StudentReplica):
    def grant_vote(self, m):
        return super(StudentReplica, self).grant_vote(m)

    def log_matches(self, prev_index, prev_term):
        return Replica.log_matches(self, prev_index, prev_term)

    def advance_commit(self):
        core.Replica.__dict__["advance_commit"](self)

    def record_match(self, peer, index):
        getattr(Replica, "record_match")(self, peer, index)

    def become_follower(self, term, why):
        _lib(self, term, why)

    def truncate_conflicts(self, entries):
        return type(self).__mro__[2].truncate_conflicts(self, entries)

    def take_snapshot(self):
        return  # (not a call of the library: simply wrong)
'''


def test_an_exercise_that_calls_the_library_implementation_of_its_rule_is_refused(tmp_path: Path) -> None:
    report = grade(_file(tmp_path, "hal", CALLS), part=None, seeds=1)
    _refused_with(report, "grant_vote", "calls super(StudentReplica, self).grant_vote",
                  "raftlab.core.replica.Replica.grant_vote, the library's own implementation of RV-GRANT")
    _refused_with(report, "log_matches", "calls Replica.log_matches")
    _refused_with(report, "advance_commit", "calls core.Replica.__dict__['advance_commit']")
    _refused_with(report, "record_match", "calls getattr(Replica, 'record_match')")
    _refused_with(report, "become_follower", "raftlab.core.replica.Replica.become_follower")
    _refused_with(report, "truncate_conflicts", "calls type(self).__mro__[2].truncate_conflicts",
                  "climbs the class hierarchy")
    assert "take_snapshot" not in report.refused  # (part D is graded: not one of the library's)
    assert {r.part for r in report.results if r.kind == "refused"} == {"A", "B", "E", "F"}
    assert report.by_part()["D"][0] > 0 and report.by_part()["A"][0] == 0


def test_super_is_refused_only_where_it_reaches_the_library() -> None:
    sub = _notebook_class("Sub", (Replica,), "def grant_vote(self, m):\n        return super().grant_vote(m)")
    assert "super().grant_vote" in review(sub).refused["grant_vote"]
    mix = type("Mix", (KeepsConflictingEntries, StudentReplica), {"__module__": "__main__"})
    assert "truncate_conflicts" in review(mix).refused  # (inherited)
    namespace: dict = {"__name__": "__main__"}
    exec(written_out("Good") + "\n\nclass Cat(Good):\n    def install_snapshot(self, snapshot):\n"
         "        super().install_snapshot(snapshot)\n"
         "        self.storage.current_term = snapshot.last_included_term\n", namespace)
    assert review(namespace["Cat"]).refused == {}  # super() is the student's own Good: fine


def test_a_library_helper_the_exercise_definition_names_as_its_rule_is_refused() -> None:
    # grant_vote's rule is the up-to-date comparison (RV-GRANT, §5.4.1): its definition names the library's
    # own comparison, Log.is_up_to_date, and a grant_vote that calls it is refused: the student writes it.
    assert BY_NAME["grant_vote"].library == ("is_up_to_date",)
    namespace: dict = {"__name__": "__main__"}
    exec(written_out("Good", {"grant_vote": Replica.grant_vote}), namespace)  # the core's, which calls it
    assert "the library's is_up_to_date" in review(namespace["Good"]).refused["grant_vote"]
    assert set(review(namespace["Good"]).refused) == {"grant_vote"}
    source = next(iter(review(_notebook_class("Ivy", (StudentReplica,), (
        "def grant_vote(self, m):\n        return self.log.is_up_to_date(m.last_log_index, m.last_log_term)"
    ))).refused.values()))
    assert "is_up_to_date" in source
    exec(written_out("Own"), namespace)  # the comparison written out: its own work
    assert review(namespace["Own"]).refused == {}


# ----- flagged: the library's code, retyped ------------------------------------------------------------
RETYPED = HEADER + '''class Jo(StudentReplica):
    def handle_vote_response(me, answer: VoteResponse) -> None:
        """My own count, honest."""
        if (answer.term < me.current_term or me.role is not Role.CANDIDATE
                or not answer.vote_granted):
            return   # not for me
        me.votes.add(answer.from_id)
        if me.has_majority(len(me.votes)):
            me.become_leader()
'''
HONEST = HEADER + '''class Kim(StudentReplica):
    def grant_vote(self, m):
        if self.voted_for is not None and self.voted_for != m.from_id:
            return False
        mine = (self.log.last_term, self.log.last_index)
        if (m.last_log_term, m.last_log_index) < mine:
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True
'''


def test_a_renamed_reformatted_copy_is_flagged_not_refused(tmp_path: Path) -> None:
    jo = (_file(tmp_path, "jo", RETYPED + "\n" + written_out("Rest", header=False).split("\n", 1)[1]
                .replace("    def handle_vote_response(", "    def _unused_handle_vote_response(")))
    report = grade(jo, part="A", seeds=1)
    assert report.refused == {} and report.score == 1.0, report.text()
    assert "handle_vote_response" in report.flagged
    assert "up to names and formatting" in report.flagged["handle_vote_response"]
    assert "flagged for the instructor (no points lost)" in report.text()
    out = tmp_path / "grades.csv"
    write_csv([report], out)
    flagged = next(csv.DictReader(out.open()))["flagged"]
    assert "handle_vote_response: handle_vote_response is the library's own code" in flagged


def test_an_honest_implementation_is_neither_flagged_nor_refused(tmp_path: Path) -> None:
    kim = _file(tmp_path, "kim", HONEST)
    found = review(load_student(kim))
    assert found.refused == {} and found.flagged == {}
    report = grade(kim, part="A", seeds=1)
    assert report.refused == {} and report.flagged == {} and "not written yet" in report.text()


def test_the_normal_form_ignores_names_docstrings_annotations_and_layout_only() -> None:
    import ast

    def tree(text: str) -> ast.FunctionDef:
        return ast.parse(text).body[0]  # type: ignore[return-value]

    a = tree("def f(self, m: int) -> bool:\n    '''doc'''\n    x = m + 1\n    return self.g(x)\n")
    b = tree("def other(me, n):\n    y = n + 1  # comment\n    return me.g(y)\n")
    c = tree("def f(self, m):\n    x = m + 2\n    return self.g(x)\n")
    d = tree("def f(self, m):\n    x = m + 1\n    return self.h(x)\n")
    assert normalised(a) == normalised(b)
    assert normalised(a) != normalised(c) and normalised(a) != normalised(d)


# ----- not refused: the library's own classes, the instructor's, the skeleton ------------------------------
def test_the_reference_the_planted_bugs_and_the_skeleton_are_not_refused() -> None:
    assert not is_submission(Replica) and not any(is_submission(m) for m in MUTANTS)
    assert review(StudentReplica).refused == {} == review(StudentReplica).flagged
    report = grade(StudentReplica, part="A", seeds=1)
    assert report.refused == {} and all(r.kind == "not implemented" for r in report.results)
    assert grade(Replica, part="A", seeds=1).score == 1.0


def test_the_written_out_reference_gets_full_marks_flagged(tmp_path: Path) -> None:
    report = grade(_file(tmp_path, "good", written_out("Good")), part=None, seeds=1)
    assert report.score == 1.0 and report.refused == {}, report.text()
    assert set(report.flagged) == {e.name for e in EXERCISES} - {"grant_vote"}  # (its comparison written out)
    assert {e.part for e in EXERCISES} == set(PARTS)


def test_a_notebook_graded_cell_refuses_the_library_class_itself() -> None:
    # The notebooks' graded cells call grade(MyReplica, ..., own_work=True): `MyReplica = Replica` in the
    # solution cell is then refused, though the reference itself is graded as it is by default.
    report = grade(Replica, part="D", seeds=1, own_work=True)
    assert report.score == 0.0
    _refused_with(report, "install_snapshot", "inherited from raftlab.core.replica.Replica")
    assert grade(Replica, part="D", seeds=1).score == 1.0
    namespace: dict = {"__name__": "__main__"}
    exec(SETATTR, namespace)
    assert grade(namespace["Good"], part="D", seeds=1, own_work=False).score == 1.0  # (review turned off)
    for notebook in (Path(__file__).resolve().parents[2] / "notebooks" / "assignments").glob("part_*.ipynb"):
        text = notebook.read_text()  # every call of grade in the notebooks reviews the class
        assert text.count("grade(MyReplica, ") == text.count(" own_work=True,") == 3, notebook.name  # try, graded x2
