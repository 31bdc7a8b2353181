"""The model-checking part of a grade (`raftlab grade --model-check`): the student's class, whole,
searched breadth-first by `raftlab.mc` within small bounds.

Scenarios and seeds sample schedules; the search tries every schedule within its bounds, so a bug
that breaks safety only on a rare interleaving (two leaders in one term, a committed entry lost) is
found when the scenarios happen to miss it. A safety violation found here fails the whole part (all of
its points, `POINTS`): it is the one outcome a Raft must never have, whatever the other checks say.
So does a breach of a rule the model checks beside the safety properties (ALL-TERM, F-TIMEOUT,
L-REPLICATE, L-COMMIT, ...: `raftlab.mc`), which the core's own searches never break.
The failure shows the minimised counterexample, explained step by step, and the command that replays
it. Exercises not written yet are taken from the library (so that the search judges what is written).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from typing import Any

from ..core import Replica
from ..mc import Bounds, Model, bfs
from .runner import CheckResult, load_student
from .skeleton import EXERCISES, StudentReplica

__all__ = ["BOUNDS", "POINTS", "TIME_BUDGET", "model_check"]

POINTS = 20  # the part's points: all or nothing, as a safety violation is
BOUNDS = Bounds(nodes=3, max_term=3, max_log=3, crashes=1, drops=1, duplicates=0, submits=1, depth=20)
TIME_BUDGET = 60.0  # seconds of search (the part passes if no violation is found in that time)
ID, TITLE = "M.safety", "no schedule within the bounds breaks a safety property or a rule (model checking)"


def written(student: type[Replica]) -> type[Replica]:
    """`student` with the exercises it has not written taken from the library's `Replica`."""
    overrides = {e.name: Replica.__dict__[e.name] for e in EXERCISES
                 if getattr(student, e.name, None) is getattr(StudentReplica, e.name)}
    return type(student.__name__, (student,), overrides) if overrides else student


def _search(path: str, bounds: Bounds, time_budget: float) -> dict[str, Any]:
    """In a worker: the search of the class in `path`, as plain data."""
    result = bfs(Model(bounds, written(load_student(path)), symmetry=True), time_budget=time_budget)
    out: dict[str, Any] = {"summary": result.summary(), "report": result.report()}
    if result.violations:
        cx = result.violations[0].minimised()
        out["violation"] = {"property": cx.violation.property, "steps": len(cx.actions), "explained": cx.explain()}
    return out


def replay_line(path: str, bounds: Bounds) -> str:
    """The command that repeats the search (and prints its counterexample)."""
    return (f"raftlab mc --replica {path} --nodes {bounds.nodes} --max-term {bounds.max_term} --max-log "
            f"{bounds.max_log} --crashes {bounds.crashes} --drops {bounds.drops} --duplicates {bounds.duplicates} "
            f"--submits {bounds.submits} --depth {bounds.depth}")


def model_check(path: str, bounds: Bounds = BOUNDS, time_budget: float = TIME_BUDGET,
                grace: float = 60.0) -> CheckResult:
    """The model-checking part for the submission at `path`: a `CheckResult` of part ``"M"`` worth
    `POINTS`, failed (0 points) if the search finds a safety violation, if the student's code raises
    or loops (the search runs in a worker process, given `time_budget` plus `grace` seconds)."""
    result = CheckResult(ID, "M", "Safety properties", TITLE, POINTS, POINTS, True, "pass")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(_search, path, bounds, time_budget)
        try:
            found = future.result(timeout=time_budget + grace)
        except FutureTimeout:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # (a loop in the student's code: the worker never returns)
            found = {"error": ("timeout", f"the search did not return within {time_budget + grace:.0f} s: a step of "
                                          "your code may loop")}
        except Exception as error:  # the submission could not be loaded, or raised outside a step
            found = {"error": ("exception", f"{type(error).__name__}: {error}")}
    if "error" in found:
        result.kind, result.message = found["error"]
    elif "violation" in found:
        v = found["violation"]
        result.kind = "invariant"
        result.message = (f"{v['property']} violated after {v['steps']} steps (a shortest schedule, minimised):\n"
                          f"{v['explained']}")
    else:
        summary = found["summary"]
        result.message = (f"{summary['distinct_states']:,} distinct states, depth {summary['depth']}, no violation"
                          + ("" if summary["complete"] else " (within the time budget)"))
        return result
    result.passed, result.earned, result.replay = False, 0, replay_line(path, bounds)
    return result
