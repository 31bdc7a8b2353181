"""Running the checks against a student's class: guards, scores, reports, replay.

Every check runs in a worker process, started with the ``spawn`` method (so the grader works wherever
Python does, macOS and Windows included, and in a program with threads), with a wall-time limit: student
code stuck in an infinite loop fails that check, the worker is killed and a new one takes the next check.
A class defined in a notebook (or anywhere it cannot be imported from) reaches the worker by value
(cloudpickle); a file is loaded by the worker itself. A whole `grade` call can also be given a wall-time
`budget`, so that it ends, naming the rules it could not check, before a notebook runner (nbgrader's
cell timeout) gives up on the cell. Scenarios also have an event budget (`GradedSimulation`).

Hidden scenarios run on `secret_seeds`, drawn from the instructor's ``RAFTLAB_SECRET`` (never from a
committed file); a report shows a student that a check failed on a hidden seed, never the seed.
When a part is graded, the exercises of the other parts come from the reference solution, so each part
is graded on its own, and within a part each check runs the student's exercises for its own rules only
(`check_class`; an integration check, `Check.together`, runs the part whole and says so); parts E and F
(beyond Figure 2: the thesis's options, membership change), which have no exercise, grade the student's
class whole. `grade(..., together=True)` adds the integration view: the scenarios of parts A-D run again with
the student's class whole (results of part ``T``, ids ``T.<check id>``, beside the grade, not in it), and a
failure there is rerun with one part at a time the reference's, to name the part that breaks it.
"""

from __future__ import annotations

import ast
import csv
import datetime
import hashlib
import importlib.util
import io
import json
import linecache
import multiprocessing
import multiprocessing.connection
import os
import pickle
import re
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core import Replica, ReplicaStopped
from ..sim import InvariantViolation
from . import checks as _checks
from .checks import BEYOND_FIGURE_2, CHECKS, BudgetExceeded, Check, CheckFailed, rules_of
from .ownwork import OwnWork, is_submission, review
from .skeleton import BY_NAME, EXERCISES, PARTS, Exercise, StudentReplica, _todo

DEFAULT_SEEDS = 3
DEFAULT_TIMEOUT = 30.0  # wall seconds per check (all its seeds)
SECRET_ENV = "RAFTLAB_SECRET"  # the instructor's secret the hidden seeds are drawn from
SUBMISSION_MODULE = "raftlab_submission_"  # load_student's modules: this, and a hash of the file's path
_IN_WORKER = False  # set in a grading worker: grade() there is a submission calling it while it loads
GRADED_PARTS = {**PARTS, **BEYOND_FIGURE_2}  # the parts of the grade: the exercises' (A-D), then E and F
ALL_PARTS = f"{min(GRADED_PARTS)}-{max(GRADED_PARTS)}"  # how a report of every part names them
TOGETHER = "T"  # the part of the integration view's results (`grade(..., together=True)`): ids "T.<check id>"


class SubmissionError(Exception):
    """A submission could not be loaded (no class, an import error)."""


@dataclass
class CheckResult:
    """The outcome of one check, as a student reads it."""

    id: str
    part: str
    rule: str  # the rule ids the check is about
    title: str
    points: int
    earned: int
    passed: bool
    kind: str  # "pass", "assertion", "invariant", "not implemented", "exception", "timeout", "budget", "crash",
    # "refused" (not run: an exercise it grades is not the submission's own work, see ownwork.py)
    seed: int | None = None  # the first failing seed (scenarios)
    message: str = ""
    tail: str = ""  # the explained end of the trace
    traceback: str = ""  # for an exception raised by student code
    replay: str = ""  # a one-line command that replays the failure
    scenario: bool = False  # a simulator scenario (else a paper-claim check)
    hidden: bool = False  # it failed on a secret seed: the seed and the replay line are not shown
    # (the integration view, part T) a failure rerun with one part at a time the reference's: the parts tried,
    # and those whose swap made it pass (the parts that break it with the student's others)
    swapped: list[str] = field(default_factory=list)
    culprits: list[str] = field(default_factory=list)

    def blame(self) -> str:
        """(A failure of the integration view) which of the student's parts breaks it, as a report says it."""
        if self.passed or self.part != TOGETHER:
            return ""
        if self.culprits:
            parts = " or ".join(f"part {p}" for p in self.culprits)
            return (f"passes when {parts} is the reference's: {parts} breaks it when run with your other parts "
                    f"(replay it, then see {parts}'s own checks)")
        if self.swapped:
            return (f"fails still with any one part the reference's (tried {', '.join(self.swapped)}): more than one "
                    f"of your parts breaks it, or they break it only together")
        return "not looked into (the reruns with one part the reference's did not run: no time, or nothing to swap)"


@dataclass
class Report:
    """A student's grade."""

    student: str  # the class name
    source: str  # the file, or module:class
    part: str | None
    seeds: list[int]
    results: list[CheckResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # exercises not written ("name (RULE)")
    error: str = ""  # the submission could not be loaded
    seconds: float = 0.0
    secret: int = 0  # how many secret seeds each scenario also ran on (never which)
    refused: dict[str, str] = field(default_factory=dict)  # exercise -> why it is not the submission's own work
    flagged: dict[str, str] = field(default_factory=dict)  # exercise -> a note for the instructor (no points lost)
    together: bool = False  # the integration view was asked for (`grade(..., together=True)`)
    integration: list[CheckResult] = field(default_factory=list)  # its results (part T), not in the score

    @property
    def earned(self) -> int:
        return sum(r.earned for r in self.results)

    @property
    def total(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def score(self) -> float:
        return round(self.earned / self.total, 4) if self.total else 0.0

    def points(self, scenario: bool | None = None) -> int:
        """The points earned (in scenarios only, or in paper-claim checks only, if `scenario` is given):
        the last expression of an nbgrader test cell, which nbgrader takes as its partial credit."""
        return sum(r.earned for r in self.results if scenario is None or r.scenario == scenario)

    def out_of(self, scenario: bool | None = None) -> int:
        """The points there were to earn (of scenarios, or of paper-claim checks, if `scenario` is given)."""
        return sum(r.points for r in self.results if scenario is None or r.scenario == scenario)

    def failed(self, scenario: bool | None = None) -> list[str]:
        """The ids of the failed checks (only scenarios, or only paper-claim checks, if `scenario` is given)."""
        return [r.id for r in self.results if not r.passed and (scenario is None or r.scenario == scenario)]

    def by_part(self) -> dict[str, tuple[int, int]]:
        parts: dict[str, tuple[int, int]] = {}
        for r in self.results:
            e, t = parts.get(r.part, (0, 0))
            parts[r.part] = (e + r.earned, t + r.points)
        return parts

    def integrated(self) -> tuple[int, int]:
        """The integration view's points earned and out of (a total of its own: not in `earned`, `total`, `score`)."""
        return sum(r.earned for r in self.integration), sum(r.points for r in self.integration)

    def broken_by(self) -> dict[str, list[str]]:
        """The parts that break an integration check with the student's other parts -> those checks' ids."""
        found: dict[str, list[str]] = {}
        for r in self.integration:
            for p in r.culprits:
                found.setdefault(p, []).append(r.id)
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "student": self.student, "source": self.source, "part": self.part, "seeds": self.seeds,
            "score": self.score, "earned": self.earned, "total": self.total, "missing": self.missing,
            "error": self.error, "refused": self.refused, "flagged": self.flagged,
            "results": [asdict(r) for r in self.results]}
        if self.together:
            earned, total = self.integrated()
            out["together"] = {"earned": earned, "total": total, "broken_by": self.broken_by(),
                               "results": [asdict(r) for r in self.integration]}
        return out

    def text(self, verbose: bool = False) -> str:
        """The report as a student reads it: one line per check, details under each failure."""
        secret = f" and {self.secret} hidden" if self.secret else ""
        seeds = f", seeds {self.seeds}{secret}" if any(r.scenario for r in self.results) or not self.results else ""
        out = [f"raftlab grade: {self.student} ({self.source}), part {self.part or ALL_PARTS}{seeds}"]
        if self.error:
            out.append(f"  could not load the submission: {self.error}")
        if self.missing:
            out.append("  not written yet: " + ", ".join(self.missing))
        if self.refused:
            refused = refused_parts(self.refused, self.part) + [TOGETHER] * bool(self.together and self.integration)
            out.append(f"  REFUSED, not your own work (every check of part{'s' * (len(refused) > 1)} "
                       f"{', '.join(refused)} scores 0):")
            out.extend(f"    {name}: {why}" for name, why in self.refused.items())
        if self.flagged:
            out.append("  flagged for the instructor (no points lost):")
            out.extend(f"    {name}: {why}" for name, why in self.flagged.items())
        if self.error:  # every check failed the same way: say it once
            out.append(f"[FAIL] all {len(self.results)} checks, 0/{self.total} points: not run, as the submission "
                       f"could not be loaded (fix the error above, then grade again)")
        for r in [] if self.error else self.results:
            out.extend(_lines(r, verbose))
        parts = ", ".join(f"{p} {e}/{t}" for p, (e, t) in sorted(self.by_part().items()))
        out.append(f"score: {self.score:.2f} ({self.earned}/{self.total} points; {parts}) in {self.seconds:.1f} s")
        if self.together:
            out.extend(self._integration_text(verbose))
        return "\n".join(out)

    def _integration_text(self, verbose: bool) -> list[str]:
        which = f"part {self.part}'s scenarios" if self.part in PARTS else "the scenarios of parts A-D"
        out = [f"integration view (--together): {which} with your whole class, every exercise your own "
               f"(part {TOGETHER}; not in the score above, where each part is graded with the reference's other parts)"]
        if not self.integration:
            why = ("the submission could not be loaded" if self.error else f"part {self.part} already grades your "
                   f"class whole" if self.part in BEYOND_FIGURE_2 else "no scenario was selected")
            return [*out, f"  no integration check run: {why}"]
        for r in self.integration:
            out.extend(_lines(r, verbose))
        earned, total = self.integrated()
        verdict = [f"part {p} breaks {', '.join(ids)}" for p, ids in self.broken_by().items()]
        unexplained = [r.id for r in self.integration if not r.passed and not r.culprits]
        if unexplained:
            verdict.append(f"no single part found that breaks {', '.join(unexplained)}")
        out.append(f"integration: {earned}/{total} points (not in the score): "
                   f"{'; '.join(verdict) or 'every integration check passes'}")
        return out


def _lines(r: CheckResult, verbose: bool) -> list[str]:
    """A result's line in a report, and under a failure (or every result, if `verbose`) its details."""
    mark = "PASS" if r.passed else "FAIL"
    seed = "  a hidden seed" if r.hidden else "" if r.seed is None else f"  seed {r.seed}"
    out = [f"[{mark}] {r.id:<34} {r.earned}/{r.points}  {r.rule}{seed}  {r.title}"]
    if r.passed and not verbose:
        return out
    if r.kind == "refused":  # (the reasons are at the top, once)
        out.append("       refused: not your own work (see the top of this report)")
    elif not r.passed:
        out.append(f"       {r.kind}: " + r.message.strip().replace("\n", "\n       "))
        if r.blame():
            out.append(f"       which part: {r.blame()}")
        if r.traceback:
            out.append("       traceback (most recent call last, your code included):")
            out.extend("         " + line for line in r.traceback.rstrip().splitlines()[-14:])
        if r.tail:
            out.append("       the end of the trace, explained:")
            out.extend("         " + line for line in r.tail.rstrip().splitlines()[-15:])
        if r.replay:
            out.append(f"       replay: {r.replay}")
        elif r.hidden:
            out.append("       (a hidden scenario: find a failing seed of your own with more visible "
                       "seeds, grade(..., seeds=20), then replay it)")
    return out


# ----- loading -----------------------------------------------------------------------------------
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def notebook_source(path: str | Path) -> str:
    """The code of a notebook submission that defines the student's class: from every code cell, its
    imports, classes and functions (and a ``STUDENT_CLASS = ...``), in order; cells that run something
    (``grade(...)``, a simulation, IPython's ``%magics``) are left out, as is a cell that does not parse."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    kept = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError:
            if "class " in source:  # the class itself does not parse: say so, where
                raise SubmissionError(f"{path}: a code cell with a class does not parse:\n"
                                      f"{traceback.format_exc(limit=0)}") from None
            continue
        lines = source.splitlines()
        for node in tree.body:
            named = isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["STUDENT_CLASS"]
            if isinstance(node, _DEFINITIONS) or named:
                start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
                kept.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n\n".join(kept) + "\n"


def load_student(path: str | Path) -> type[StudentReplica]:
    """The student's class in the file `path` (a ``.py`` file, or a notebook: see `notebook_source`): the
    class named by a module-level ``STUDENT_CLASS``, else the only subclass of `StudentReplica` defined in it."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"no such file: {path}")
    name = SUBMISSION_MODULE + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    if path.suffix == ".ipynb":
        # The code runs under a name of its own, whose lines linecache holds: inspect (the own-work
        # review, tracebacks) then reads the extracted code, not the notebook's JSON.
        filename = f"<{path}: code cells>"
        try:
            text = notebook_source(path)
            code = compile(text, filename, "exec")
        except (ValueError, SyntaxError) as error:
            raise SubmissionError(f"{path} is not a notebook whose code parses: {error}") from None
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
        except BaseException as error:  # a submission may raise anything, even SystemExit
            raise SubmissionError(f"running {path}'s definitions raised {error!r}\n{_format(error)}") from None
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SubmissionError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as error:  # a submission may raise anything, even SystemExit
            raise SubmissionError(f"importing {path} raised {error!r}\n{_format(error)}") from None
    chosen = getattr(module, "STUDENT_CLASS", None)
    if chosen is None:
        found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, StudentReplica)
                 and c.__module__ == name and c is not StudentReplica]
        if len(found) != 1:
            raise SubmissionError(f"{path} defines {len(found)} subclasses of StudentReplica "
                                  f"({', '.join(c.__name__ for c in found) or 'none'}); define exactly one, or "
                                  f"name it with STUDENT_CLASS = YourClass")
        chosen = found[0]
    if not (isinstance(chosen, type) and issubclass(chosen, StudentReplica)):
        raise SubmissionError(f"{path}: STUDENT_CLASS must be a subclass of StudentReplica, not {chosen!r}")
    return chosen


def missing_exercises(cls: type[Replica]) -> list[str]:
    """The exercises `cls` has not written (still the skeleton's)."""
    return [f"{e.name} ({e.rules})" for e in EXERCISES
            if getattr(cls, e.name, None) is getattr(StudentReplica, e.name)]


def own_work(cls: type[Replica], force: bool | None = None) -> OwnWork:
    """What of a submission's exercises is refused or flagged (`ownwork.review`); nothing for a class that is
    not a submission (the library's own, the instructor's planted bugs) unless `force`, nothing if `force` is
    False, and only a flag if the review itself fails."""
    if force is False or (force is None and not is_submission(cls)):
        return OwnWork()
    try:
        return review(cls)
    except Exception as error:  # the review must never cost a student the grade: say so, for the instructor
        return OwnWork(flagged={"(review)": f"the own-work review failed ({type(error).__name__}: {error}); "
                                            f"read the code"})


def refused_parts(refused: dict[str, str], part: str | None) -> list[str]:
    """The parts that score 0 because of `refused` exercises: each exercise's part, and the parts that grade
    the class whole (E, F), which run every exercise (and only the part graded, if one is)."""
    parts = {BY_NAME[name].part for name in refused if name in BY_NAME}
    if refused:
        parts |= set(GRADED_PARTS) - set(PARTS)
    return sorted(p for p in parts if part is None or p == part)


def _mine(name: str, part: str | None) -> bool:
    """Whether exercise `name` is graded when `part` is (the other exercises of A-D come from the reference)."""
    return part not in PARTS or name not in BY_NAME or BY_NAME[name].part == part


ALSO_IMPLEMENTS = {  # rules an exercise implements beside those its `Exercise.rules` names (see its hint)
    "grant_vote": ("F-TIMEOUT",),  # a granted vote resets the election timer
    "handle_vote_response": ("ALL-STALE",),  # a response of an earlier term is ignored
    "truncate_conflicts": ("AE-APPEND",),  # it returns the entries not already present, which are appended
}


def implements(exercise: Exercise) -> frozenset[str]:
    """The rule ids the exercise implements: those its `rules` names, and `ALSO_IMPLEMENTS`'s."""
    return frozenset(rules_of(exercise.rules)) | frozenset(ALSO_IMPLEMENTS.get(exercise.name, ()))


def graded_class(student: type[Replica], part: str, rules: Iterable[str] | None = None) -> type[Replica]:
    """`student` with the exercises of the other parts taken from the reference solution, the core's
    own rule methods; given `rules` (a check's, `Check.rules`), also the exercises of `part` that implement
    none of them, so that a check runs the student's code for its own rules only. Parts E and F (beyond
    Figure 2) have no exercise: the options and the membership change they grade stand on every rule of
    Figure 2, so they keep all of the student's own."""
    judged = None if rules is None else set(rules)
    overrides = {e.name: Replica.__dict__[e.name] for e in EXERCISES
                 if part in PARTS and (e.part != part or (judged is not None and not implements(e) & judged))}
    return type(student.__name__, (student,), overrides)


def check_class(student: type[Replica], check: Check) -> type[Replica]:
    """The class `check` runs: `student` with the reference's exercises for every rule but the check's own,
    or, for an integration check (`Check.together`), for every part but its own."""
    return graded_class(student, check.part, None if check.together else check.rules)


def together_class(student: type[Replica], reference: Iterable[str] = ()) -> type[Replica]:
    """The class of the integration view: `student` whole, every exercise its own (one it did not write is
    the skeleton's, not implemented), but those of the parts in `reference` (e.g. ``"B"``), the reference's."""
    overrides = {e.name: Replica.__dict__[e.name] for e in EXERCISES if e.part in set(reference)}
    return type(student.__name__, (student,), overrides)


def together_checks(part: str | None = None, scenario: bool | None = None) -> list[Check]:
    """The checks of the integration view: the scenarios (transcripts included) of parts A-D, or of `part`'s
    only; with every part graded, the chaos seeds too (`checks.CHAOS`: the campaign of `raftlab chaos`, on the
    grader's seeds); none for parts E and F, which grade the class whole already, nor for paper-claim checks."""
    if scenario is False:
        return []
    return [c for c in select(part, True) if c.part in PARTS] + ([_checks.CHAOS] if part is None else [])


def differs(student: type[Replica], part: str) -> bool:
    """Whether any exercise of `part` in `student` is not the reference's (else swapping it changes nothing)."""
    return any(getattr(student, e.name, None) is not Replica.__dict__[e.name] for e in EXERCISES if e.part == part)


def _integration(check_id: str) -> tuple[Check, bool]:
    """The check a result id names, and whether it is of the integration view (``T.<check id>``)."""
    inner = check_id.removeprefix(f"{TOGETHER}.")
    return _checks.BY_ID[inner], inner != check_id


# ----- one check ---------------------------------------------------------------------------------
def run_check(check: Check, student: type[Replica], seeds: Sequence[int], source: str = "",
              together: str | None = None) -> CheckResult:
    """Run one check here (no guard against infinite loops: `grade` runs this in a worker). `together`: run it
    for the integration view (a result ``T.<id>`` of part T) with `together_class`, the parts it names (``""``:
    none) the reference's; None (the grade): with `check_class`."""
    cls = check_class(student, check) if together is None else together_class(student, together)
    ident, part = (check.id, check.part) if together is None else (f"{TOGETHER}.{check.id}", TOGETHER)
    result = CheckResult(ident, part, check.rule, check.title, check.points, check.points, True, "pass",
                         scenario=check.scenario)
    for seed in (seeds if check.scenario and check.transcript is None else [None]):
        _checks.TRACKED.clear()
        _checks.SIMS.clear()
        try:
            check.fn(cls, seed) if check.scenario else check.fn(cls)
        except BaseException as error:  # student code may raise anything
            _fail(result, error, seed)
            scope = check.scope(result.message) if result.kind != "not implemented" else ""
            if together is not None:
                scope = "the integration view: this check ran your whole class" + (
                    f", part {', '.join(together)} the reference's" if together else ", every exercise your own")
            if scope:  # (what code it ran, where the message alone could blame the wrong rule)
                result.message = f"{result.message} ({scope})"
            result.replay = replay_command(source or f"{student.__module__}:{student.__qualname__}", ident, seed,
                                           check.scenario and check is not _checks.CHAOS)  # (chaos: no sim to open)
            break
    return result


def _fail(result: CheckResult, error: BaseException, seed: int | None) -> None:
    result.passed, result.earned, result.seed = False, 0, seed
    sims, tracked = _checks.SIMS, _checks.TRACKED
    if sims:
        result.tail = sims[-1].trace.explain(last=15)
    elif tracked:
        result.tail = tracked[-1].explain()
    todo = _not_implemented(error)
    if isinstance(error, InvariantViolation):
        result.kind = "invariant"
        result.message = (f"{error.property} violated at step {error.step} (seed {error.seed}): {error.detail} "
                          f"[checking {result.rule}]")
        result.tail = error.tail
    elif todo is not None:
        result.kind, result.message = "not implemented", _hint(todo)
    elif isinstance(error, CheckFailed):
        result.kind, result.message = "assertion", str(error)
    elif isinstance(error, BudgetExceeded):
        result.kind, result.message = "budget", f"{result.rule}: {error}"
    elif isinstance(error, AssertionError):
        result.kind, result.message = "assertion", str(error) or f"{result.rule}: an expectation failed"
    else:  # the replica stops on an error (ReplicaStopped): show the error that stopped it
        while isinstance(error, ReplicaStopped) and error.__cause__ is not None:
            error = error.__cause__
        result.kind = "exception"
        result.message = f"your code raised {type(error).__name__}: {error} (while checking {result.rule})"
        result.traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__, chain=False))


def _not_implemented(error: BaseException | None) -> BaseException | None:
    seen = set()
    while error is not None and id(error) not in seen:  # a chain of causes may loop
        if isinstance(error, NotImplementedError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _hint(error: BaseException) -> str:
    """The message of a NotImplementedError; if it has none (nbgrader's ``raise NotImplementedError()``),
    the hint of the exercise that raised it."""
    tb, name = error.__traceback__, ""
    while tb is not None:
        name, tb = tb.tb_frame.f_code.co_name, tb.tb_next
    if str(error) or name not in BY_NAME:
        return str(error) or "NotImplementedError"
    return str(_todo(name))


def _format(error: BaseException) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return "".join(lines)[-4000:]


def replay_command(source: str, check_id: str, seed: int | None, scenario: bool | None = None) -> str:
    """The command that replays a failure (in the `RaftLab` app for a scenario or a transcript; `scenario`
    False: printed, on `seed` if one is given, for a check with no simulation to open)."""
    target = repr(source)
    seeded = "" if seed is None else f", seed={seed}"
    if source.startswith("__main__:"):  # a class of the notebook (or script) itself: by its name, there
        name = source.partition(":")[2]
        if not (seed is not None if scenario is None else scenario):
            return (f"from raftlab.grading import replay; replay({name}, '{check_id}'{seeded})   # in the notebook "
                    "defining it")
        return (f"from raftlab.grading import replay; from raftlab.widgets import RaftLab; "
                f"RaftLab(replay({name}, '{check_id}'{seeded}))   # in the notebook defining it")
    if not (seed is not None if scenario is None else scenario):
        return f"python -c \"from raftlab.grading import replay; replay({target}, '{check_id}'{seeded})\""
    return (f"from raftlab.grading import replay; from raftlab.widgets import RaftLab; "
            f"RaftLab(replay({target}, '{check_id}'{seeded}))   # in a notebook cell")


def _resolve(student: type[Replica] | str | Path) -> type[Replica]:
    if isinstance(student, type):
        return student
    text = str(student)
    if ":" in text and not Path(text).exists():  # module:Class
        module, _, qualname = text.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    return load_student(text)


def replay(student: type[Replica] | str | Path, check_id: str, seed: int | None = None) -> Any:
    """Run check `check_id` again for `student` (a class, a file, or ``module:Class``; an id ``T.<check id>`` of
    the integration view runs the check with the class whole, `together_class`). For a scenario,
    returns its `Simulation` stopped where it failed (give it to ``raftlab.widgets.RaftLab`` to see the
    run, rewind and step through it) and prints what failed; a paper-claim check raises its failure."""
    check, together = _integration(check_id)
    cls = together_class(_resolve(student)) if together else check_class(_resolve(student), check)
    _checks.TRACKED.clear()
    _checks.SIMS.clear()
    if not check.scenario:
        check.fn(cls)
        print(f"{check_id}: passed")
        return None
    seed = 1 if seed is None and check.transcript is None else seed
    on = f"transcript {check.transcript}.txt" if check.transcript else f"seed {seed}"
    try:
        check.fn(cls, seed)
        print(f"{check_id} ({on}): passed")
    except Exception as error:
        print(f"{check_id} ({on}) failed: {type(error).__name__}: {error}".splitlines()[0])
        if _checks.SIMS:
            print(_checks.SIMS[-1].trace.explain(last=20))
    if not _checks.SIMS:
        return None
    sim = _checks.SIMS[-1]
    sim.budget = sys.maxsize  # explored by hand from here: no event budget
    return sim


# ----- the guarded worker ------------------------------------------------------------------------
def _ship(student: type[Replica] | str | Path) -> str | bytes:
    """What a spawned worker is given to find the student's class: ``module:Class`` if it can import it,
    a file's path, or else the class itself pickled by value (a class of a notebook, or of a function)."""
    if not isinstance(student, type):
        return str(student)
    found: Any = sys.modules.get(student.__module__)
    importable = student.__module__ != "__main__" and getattr(found, "__spec__", None) is not None \
        and not student.__module__.startswith(SUBMISSION_MODULE)
    for name in student.__qualname__.split("."):
        found = getattr(found, name, None)
    if importable and found is student:
        return f"{student.__module__}:{student.__qualname__}"
    try:
        import cloudpickle  # type: ignore[import-untyped]
    except ImportError:
        raise SubmissionError(f"grading {student.__qualname__}, a class defined in a notebook (or in a function), "
                              f"needs cloudpickle: pip install 'raftlab[jupyter]', or grade a file") from None
    module = sys.modules.get(student.__module__)
    if student.__module__.startswith(SUBMISSION_MODULE) and module is not None:  # (see load_student)
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(student)
    except Exception as error:
        raise SubmissionError(f"{student.__qualname__} cannot be sent to the grading worker ({error}): define it "
                              f"in a file and grade the file") from None


def _serve(conn: Any, shipped: str | bytes, source: str, review_own: bool | None = None) -> None:
    global _IN_WORKER
    _IN_WORKER = True
    sys.stdout = sys.stderr = io.StringIO()  # a student's prints must not garble the report
    quiet = os.open(os.devnull, os.O_WRONLY)  # nor reach the notebook's cell (for nbgrader, stderr there is a 0)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    try:
        # (pickled by this worker's own parent: a pipe between our processes, never data from a socket)
        cls = pickle.loads(shipped) if isinstance(shipped, bytes) else _resolve(shipped)
        conn.send(("loaded", cls.__name__, missing_exercises(cls), own_work(cls, review_own),
                   [p for p in PARTS if differs(cls, p)]))
    except BaseException as error:
        conn.send(("error", str(error) if isinstance(error, SubmissionError) else _format(error)))
        return
    while True:
        request = conn.recv()
        if request is None:
            return
        check_id, seeds, together = request
        conn.send(run_check(_checks.BY_ID[check_id], cls, seeds, source, together))
        sys.stdout.seek(0)
        sys.stdout.truncate()


class _Worker:
    def __init__(self, shipped: str | bytes, source: str, review_own: bool | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, shipped, source, review_own), daemon=True)
        self.process.start()
        child.close()

    def receive(self, timeout: float) -> Any:
        """The next answer, or None if there is none within `timeout` (then the worker is killed)."""
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        self.stop(kill=True)
        return None

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                kill = True
        self.process.join(0 if kill else 2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def select(part: str | None = None, scenario: bool | None = None) -> list[Check]:
    """The checks of `part` (all parts if None); only scenarios, or only paper-claim checks, if `scenario` is given."""
    if part is not None and part not in GRADED_PARTS:
        raise ValueError(f"part must be one of {', '.join(GRADED_PARTS)}, not {part!r}")
    return [c for c in CHECKS if (part is None or c.part == part) and (scenario is None or c.scenario == scenario)]


def secret_seeds(part: str, count: int = 2) -> list[int]:
    """`count` seeds for the hidden scenarios of `part`, drawn from the instructor's secret, the
    environment variable ``RAFTLAB_SECRET`` (set it where nbgrader or `raftlab grade` runs; never commit
    it): the same secret gives the same seeds, so a grade can be reproduced, and no file holds them."""
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        raise ValueError(f"{SECRET_ENV} is not set: the hidden scenarios draw their seeds from it. Set it in the "
                         f"environment the grading runs in, e.g. export {SECRET_ENV}=some-words-of-your-own "
                         f"(docs/instructors.md, 'Keeping seeds secret')")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    seeds = []
    for k in range(count):
        digest = hashlib.sha256(f"{secret}:{part}:{k}".encode()).digest()
        seeds.append(1000 + int.from_bytes(digest[:4], "big") % 1_000_000)
    return seeds


def _hide(result: CheckResult, secret: Sequence[int]) -> CheckResult:
    """A result that failed on a secret seed, with the seed taken out of everything a student reads."""
    if result.seed is None or result.seed not in secret:
        return result
    seed, result.seed, result.hidden, result.replay = result.seed, None, True, ""
    pattern = re.compile(rf"\bseed[ =]{seed}\b")
    result.message = pattern.sub("a hidden seed", result.message)
    result.tail = pattern.sub("a hidden seed", result.tail)
    result.traceback = pattern.sub("a hidden seed", result.traceback)
    return result


def seed_list(seeds: int | Iterable[int] = DEFAULT_SEEDS, first_seed: int = 1) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, not {seeds}")
        return list(range(first_seed, first_seed + seeds))
    return [int(s) for s in seeds]


def _refused(c: Check, refused: dict[str, str], whole: bool = False) -> CheckResult:
    """The result of check `c`, not run: an exercise it runs (any, if it runs the class `whole`) is not the
    submission's own work."""
    names = ", ".join(n for n in refused if whole or c.part not in PARTS or BY_NAME[n].part == c.part)
    return CheckResult(c.id, c.part, c.rule, c.title, c.points, 0, False, "refused",
                       message=f"not graded: {names} not your own work (the reasons are at the top of this report)",
                       scenario=c.scenario)


def grade(student: type[Replica] | str | Path, part: str | None = None, seeds: int | Iterable[int] = DEFAULT_SEEDS,
          *, first_seed: int = 1, timeout: float = DEFAULT_TIMEOUT, budget: float | None = None,
          secret_seeds: Iterable[int] = (), scenario: bool | None = None, own_work: bool | None = None,
          together: bool = False) -> Report:
    """Grade `student` (a subclass of `StudentReplica`, or a .py or .ipynb file defining one, see
    `load_student`) on part `part` (one of `GRADED_PARTS`, ``"A"``-``"F"``, or all), running each scenario on
    `seeds` (a count of seeds starting at `first_seed`, or a list of seeds), then on `secret_seeds`
    (`secret_seeds()`), which the report never shows. `scenario` picks only the scenarios (True) or only
    the paper-claim checks (False). Each check runs in a worker process; one that takes more than
    `timeout` wall seconds fails and its worker is killed; once `budget` wall seconds have passed (if
    given), the checks not yet run fail as not run, each naming its rule.

    `own_work`: whether to review the class for work that is not its own (see ownwork.py) and refuse it:
    by default a submission is (a subclass of `StudentReplica`, or a class of a notebook); True reviews any
    class (a notebook's graded cell passes it, so that ``MyReplica = Replica`` is refused too), False none.

    `together`: also the integration view (`Report.integration`, part T, a total of its own, not in the
    score): the scenarios of parts A-D (`together_checks`) run with the student's class whole, and each one
    that fails is rerun (at most once per part A-D) with that part the reference's, naming the parts whose
    swap makes it pass (`CheckResult.culprits`)."""
    if _IN_WORKER:
        raise SubmissionError("grade() was called while the grader was loading your file: put such calls "
                              "under `if __name__ == \"__main__\":` (or grade a notebook, whose calls are left out)")
    if budget is not None and budget <= 0:
        raise ValueError(f"budget must be positive (wall seconds), not {budget}")
    chosen, seed_values, secret = select(part, scenario), seed_list(seeds, first_seed), [int(s) for s in secret_seeds]
    # (a class of a notebook is __main__:Name: replay finds it there, and the replay line names it)
    source = f"{student.__module__}:{student.__qualname__}" if isinstance(student, type) else str(student)
    start = time.perf_counter()
    end = None if budget is None else start + budget
    report = Report(getattr(student, "__name__", Path(str(student)).stem), source, part, seed_values,
                    secret=len(secret), together=together)

    def wait() -> float:
        return timeout if end is None else max(0.0, min(timeout, end - time.perf_counter()))

    shipped = _ship(student)
    first = _Worker(shipped, source, own_work)
    loaded = first.receive(wait())
    if loaded is None or loaded[0] == "error":
        report.error = "loading timed out" if loaded is None else loaded[1]
        first.stop(kill=True)
        for c in chosen:
            report.results.append(CheckResult(c.id, c.part, c.rule, c.title, c.points, 0, False, "crash",
                                              message="not run: the submission could not be loaded (the "
                                                      "error is at the top of this report)",
                                              scenario=c.scenario))
        report.seconds = time.perf_counter() - start
        return report
    report.student = loaded[1]
    report.missing = [m for m in loaded[2] if part not in PARTS or BY_NAME[m.split(" ")[0]].part == part]  # (its part)
    report.refused = {name: why for name, why in loaded[3].refused.items()
                      if _mine(name, part) or (together and together_checks(part, scenario))}  # (T runs them all)
    report.flagged = {name: why for name, why in loaded[3].flagged.items() if _mine(name, part)}
    refused = set(refused_parts(report.refused, part))
    worker: _Worker | None = first

    def run(c: Check, seeds: list[int], reference: str | None = None) -> CheckResult:
        """Check `c` in the worker (a new one if the last was killed), or its failure to answer in time."""
        nonlocal worker
        if end is not None and time.perf_counter() >= end:
            return CheckResult(
                c.id, c.part, c.rule, c.title, c.points, 0, False, "timeout",
                message=f"{c.rule}: not run: this grade call's time budget of {budget:g} s was used up by checks "
                        f"that did not finish (an infinite loop in your code? see the checks above that timed out)",
                scenario=c.scenario)
        if worker is None:
            worker = _Worker(shipped, source, False)  # (the first worker reviewed it)
            if worker.receive(wait()) is None:
                worker = None
        result, waited = None, wait()
        if worker is not None:
            worker.conn.send((c.id, seeds, reference))
            result = worker.receive(waited)
        if result is None:
            seed = seeds[0] if c.scenario and c.transcript is None else None
            ident = c.id if reference is None else f"{TOGETHER}.{c.id}"
            result = CheckResult(c.id, c.part, c.rule, c.title, c.points, 0, False, "timeout", seed=seed,
                                 message=f"{c.rule}: no answer within {waited:.3g} s of wall time: an infinite loop "
                                         f"in your code? (the check was stopped)",
                                 replay=replay_command(source, ident, seed, c.scenario), scenario=c.scenario)
            worker = None
        return result

    for c in chosen:
        if c.part in refused:  # not run: its part uses code that is not the submission's own
            report.results.append(_refused(c, report.refused))
            continue
        report.results.append(_hide(run(c, seed_values + secret), secret))
    for c in together_checks(part, scenario) if together else []:
        if report.refused:  # (the whole class runs: every exercise of it must be its own, whatever `part` is)
            result = _refused(c, report.refused, whole=True)
        else:
            result = run(c, seed_values + secret, "")
            if not result.passed:  # which part breaks it: each swapped for the reference's, on the failing seed first
                seeds = [s for s in [result.seed] if s is not None] + [s for s in seed_values + secret
                                                                       if s != result.seed]
                for p in loaded[4]:  # (the parts that are not the reference's already)
                    if end is not None and time.perf_counter() >= end:
                        break
                    result.swapped.append(p)
                    if run(c, seeds, p).passed:
                        result.culprits.append(p)
        result.id, result.part = f"{TOGETHER}.{c.id}", TOGETHER
        report.integration.append(_hide(result, secret))
    if worker is not None:
        worker.stop()
    report.seconds = time.perf_counter() - start
    return report


def grade_many(students: Sequence[tuple[str, Any]], part: str | None = None, seeds: int | Iterable[int] = DEFAULT_SEEDS,
               *, first_seed: int = 1, timeout: float = DEFAULT_TIMEOUT, jobs: int | None = None,
               secret_seeds: Iterable[int] = (), progress: Callable[[Report], None] | None = None,
               together: bool = False) -> list[Report]:
    """Grade several students (``(label, class or path)`` pairs), `jobs` at a time (default: the number
    of processors), each in a lane of its own (a spawned process). Returns the reports in order;
    `progress` is called with each report as it is done (in the order they finish). `together`: each
    report has the integration view too (see `grade`)."""
    secret = [int(s) for s in secret_seeds]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(students)))
    if jobs == 1:
        done = []
        for _, student in students:
            done.append(grade(student, part, seeds, first_seed=first_seed, timeout=timeout, secret_seeds=secret,
                              together=together))
            if progress is not None:
                progress(done[-1])
        return done
    ctx = multiprocessing.get_context("spawn")
    lanes: dict[Any, tuple[Iterator[int], Any]] = {}  # connection -> (its students' places, its process)
    for lane in range(jobs):
        mine = list(range(lane, len(students), jobs))
        conn, child = ctx.Pipe()
        process = ctx.Process(target=_lane, args=(child, [_ship(students[k][1]) for k in mine], part, seeds,
                                                  first_seed, timeout, secret, together))
        process.start()
        child.close()
        lanes[conn] = (iter(mine), process)
    reports: list[Report | None] = [None] * len(students)
    while lanes:
        for ready in multiprocessing.connection.wait(list(lanes)):
            places, process = lanes[ready]
            report: Report | None = _receive(ready)
            if report is None:  # the lane is done
                del lanes[ready]
                process.join()
                continue
            reports[next(places)] = report
            if progress is not None:
                progress(report)
    return reports  # type: ignore[return-value]


def _receive(conn: Any) -> Any:
    """The next object a lane sent: a `Report`, or None when the lane is done."""
    return conn.recv()


def _lane(conn: Any, students: list[str | bytes], part: str | None, seeds: Any, first_seed: int, timeout: float,
          secret: list[int], together: bool = False) -> None:
    for shipped in students:  # (pickled by this lane's parent, see _ship)
        student = pickle.loads(shipped) if isinstance(shipped, bytes) else shipped
        conn.send(grade(student, part, seeds, first_seed=first_seed, timeout=timeout, secret_seeds=secret,
                        together=together))
    conn.send(None)
    conn.close()


def submissions(folder: str | Path) -> list[Path]:
    """The submissions in a folder, one student each, by name: its .py files and notebooks, or, in
    nbgrader's layout (``submitted/<student id>/<assignment>/<notebook>.ipynb``), the notebooks below it."""
    folder = Path(folder)
    found = [p for p in folder.iterdir() if p.suffix in (".py", ".ipynb") and not p.name.startswith(("_", "."))]
    if not found:
        found = [p for p in folder.glob("*/*/*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


def student_id(source: str) -> str:
    """The student a submission is of: the ``<student id>`` of nbgrader's
    ``submitted/<student id>/<assignment>/<notebook>`` layout, else the file's name without its suffix."""
    path = Path(source.partition(":")[0] if ":" in source and not Path(source).exists() else source)
    if path.suffix not in (".py", ".ipynb"):
        return source
    if len(path.parts) >= 4 and path.parts[-4] == "submitted":
        return path.parts[-3]
    return path.stem


CSV_PARTS = [*GRADED_PARTS, "M"]  # M: the model-checking part (raftlab grade --model-check)
CSV_FIELDS = ["student", "class", "graded_at", "score", "earned", "total",
              *(f"{p}{end}" for p in CSV_PARTS for end in ("", "_of")), "failed", "missing", "refused", "flagged",
              "error"]
CSV_TOGETHER = [TOGETHER, f"{TOGETHER}_of", f"{TOGETHER}_failed", f"{TOGETHER}_broken_by"]
"""The columns a CSV of reports with the integration view has after `CSV_FIELDS`: its points (not in
``score``), its failed checks, and the parts that break one (``B: T.B.sim_rejoin T.B.t_figure7``)."""


def write_csv(reports: Sequence[Report], path: str | Path) -> None:
    """One row per student: the score, the points earned in each part (column ``A``) and the points
    it was out of (``A_of``), as numbers (a text such as ``11/11`` is read as a date by spreadsheets),
    empty for a part not graded; the failed checks. ``student`` is `student_id`; ``graded_at`` is the
    time the CSV was written (UTC, ISO 8601). Reports with the integration view (`grade(..., together=True)`)
    add the columns of `CSV_TOGETHER` at the end."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    together = any(r.together for r in reports)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS + CSV_TOGETHER * together)
        writer.writeheader()
        for r in reports:
            parts = r.by_part()
            writer.writerow({
                "student": student_id(r.source), "class": r.student, "graded_at": now,
                "score": f"{r.score:.4f}", "earned": r.earned, "total": r.total,
                **{p: parts[p][0] if p in parts else "" for p in CSV_PARTS},
                **{f"{p}_of": parts[p][1] if p in parts else "" for p in CSV_PARTS},
                "failed": " ".join(x.id for x in r.results if not x.passed),
                "missing": "; ".join(r.missing), "refused": "; ".join(f"{n}: {w}" for n, w in r.refused.items()),
                "flagged": "; ".join(f"{n}: {w}" for n, w in r.flagged.items()),
                "error": r.error.splitlines()[0] if r.error else "",
                **(_together_columns(r) if together else {})})


def _together_columns(r: Report) -> dict[str, Any]:
    earned, total = r.integrated()
    return {TOGETHER: earned if r.integration else "", f"{TOGETHER}_of": total if r.integration else "",
            f"{TOGETHER}_failed": " ".join(x.id for x in r.integration if not x.passed),
            f"{TOGETHER}_broken_by": "; ".join(f"{p}: {' '.join(ids)}" for p, ids in r.broken_by().items())}
