"""Write the instructor notebooks of the assignments (one per part) from the reference solution.

Run ``python notebooks/assignments/make_notebooks.py`` after changing raftlab.grading or the core; then
generate the student versions with nbgrader (see docs/instructors.md). The solution regions are the
core's own rule methods (`raftlab.core.Replica`, the reference solution; `skeleton.WRITTEN_OUT` for
one whose core method calls a helper a submission may not), so the instructor notebooks get full marks (the
grader flags them as the library's code retyped, which costs nothing). The graded cells review the
class whatever it is (``own_work=True``), so that ``MyReplica = Replica`` is refused.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat

import raftlab.core
from raftlab.grading import CHECKS, EXERCISES, PARTS
from raftlab.grading.skeleton import solution

HERE = Path(__file__).resolve().parent
TIMEOUT, BUDGET = 5, 25  # wall seconds per check, and per graded cell: under nbgrader's cell timeout (30 s by default)
NAMES = {"A": "part_a_election", "B": "part_b_replication", "C": "part_c_persistence", "D": "part_d_snapshots"}


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, points: int = 0, locked: bool = False):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _imports(part: str) -> str:
    """The imports the solutions of `part` need (the names they use, annotations included)."""
    used = set(re.findall(r"[A-Za-z_]+", "".join(solution(e.name) for e in EXERCISES if e.part == part)))
    lines = [f"import {m}\n" for m in ("math",) if m in used]
    if "Sequence" in used:
        lines.append("from collections.abc import Sequence\n")
    core = sorted(used & set(raftlab.core.__all__))
    lines.append(f"\nfrom raftlab.core import {', '.join(core)}\n" if core else "")
    return "".join(lines).lstrip("\n")


def _method(name: str) -> str:
    """The core's method, its body wrapped in a solution region."""
    source = solution(name)
    lines = source.rstrip().splitlines()
    head = [lines[0]]
    body = lines[1:]
    while not head[-1].rstrip().endswith(":"):  # a signature on several lines
        head.append(body.pop(0))
    exercise = next(e for e in EXERCISES if e.name == name)
    doc = textwrap.fill(f"{exercise.rules}: {exercise.hint}.", 96, initial_indent="    ", subsequent_indent="    ",
                        break_on_hyphens=False)
    return "\n".join([*head, '    """' + doc.strip(), '    """', "    ### BEGIN SOLUTION", *body,
                      "    ### END SOLUTION"])


def notebook(part: str) -> nbformat.NotebookNode:
    exercises = [e for e in EXERCISES if e.part == part]
    paper = [c for c in CHECKS if c.part == part and not c.scenario]
    scenarios = [c for c in CHECKS if c.part == part and c.scenario]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    cells = nb.cells
    cells.append(nbformat.v4.new_markdown_cell(
        f"# Raft, part {part}: {PARTS[part]}\n\n"
        f"Fill in the methods of `MyReplica` below: each is one rule of Raft (the ids refer to "
        f"`docs/raft-rules.md`). Everything else, messages, timers, the network, comes from raftlab. "
        f"The exercises of the other parts are taken from the reference solution (raftlab's own `Replica`) while "
        f"this part is graded.\n\n"
        + "\n".join(f"- `{e.name}` ({e.rules})" for e in exercises)
        + "\n\nRun the cell with `grade(...)` as often as you like: it explains every failure, names the rule, "
          "and gives a command that replays a failing scenario in the `RaftLab` app. The two graded cells "
          "give a point for every point a check earns (nbgrader's partial credit); the scenarios cell also "
          "runs, when your work is graded, on seeds you have not seen.",
        metadata=_meta(f"{part}_intro", locked=True)))
    cells.append(nbformat.v4.new_code_cell(
        _imports(part) + "from raftlab.grading import StudentReplica, grade, secret_seeds",
        metadata=_meta(f"{part}_imports", locked=True)))
    methods = "\n\n".join(textwrap.indent(_method(e.name), "    ") for e in exercises)
    cells.append(nbformat.v4.new_code_cell(
        f"class MyReplica(StudentReplica):\n{methods}\n",
        metadata=_meta(f"{part}_solution", solution=True)))
    cells.append(nbformat.v4.new_code_cell(
        f'report = grade(MyReplica, part="{part}", seeds=2, own_work=True, timeout={TIMEOUT}, budget={BUDGET})\n'
        f"print(report.text())",
        metadata=_meta(f"{part}_try", locked=False)))
    credit = "  # the points earned: nbgrader takes the number a graded cell ends with as its partial credit"
    cells.append(nbformat.v4.new_code_cell(
        f'paper = grade(MyReplica, part="{part}", scenario=False, own_work=True, timeout={TIMEOUT}, budget={BUDGET})\n'
        f"print(paper.text())\n"
        f"paper.points(){credit}",
        metadata=_meta(f"{part}_paper_checks", grade=True, locked=True, points=sum(c.points for c in paper))))
    cells.append(nbformat.v4.new_code_cell(
        "secret = []\n"
        "### BEGIN HIDDEN TESTS\n"
        f'secret = secret_seeds("{part}")  # drawn from the instructor\'s RAFTLAB_SECRET (docs/instructors.md)\n'
        "### END HIDDEN TESTS\n"
        f'scenarios = grade(MyReplica, part="{part}", seeds=2, secret_seeds=secret, scenario=True, own_work=True,\n'
        f"                  timeout={TIMEOUT}, budget={BUDGET})\n"
        f"print(scenarios.text())\n"
        f"scenarios.points(){credit}",
        metadata=_meta(f"{part}_scenarios", grade=True, locked=True, points=sum(c.points for c in scenarios))))
    cells.append(nbformat.v4.new_markdown_cell(
        "To see a failing scenario, paste the `replay` line of its report into a cell: "
        "`RaftLab(replay(MyReplica, 'CHECK', seed=N))` shows the run stopped where it failed.",
        metadata=_meta(f"{part}_replay", locked=True)))
    return nb


def main() -> None:
    for part in PARTS:
        nb = notebook(part)
        for k, cell in enumerate(nb.cells):  # stable ids, so that regenerating changes only what changed
            cell.id = f"{part.lower()}{k:02d}"
        nbformat.write(nb, HERE / f"{NAMES[part]}.ipynb")


if __name__ == "__main__":
    main()
