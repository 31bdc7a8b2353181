"""Honest solutions for the grader's tests: the core's own rule methods, written out in a submission's file.

A submission that copies the library's methods onto its class (a `setattr` loop) is refused by the
grader (raftlab/grading/ownwork.py), so the tests' full-marks students carry the reference's code as
source text instead, as the course's instructor notebooks do (the grader flags that, for the
instructor, without taking points): the instructor notebooks' solutions (`skeleton.solution`),
in which `grant_vote` compares the logs itself, as a submission must.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable

from raftlab.grading import EXERCISES
from raftlab.grading.skeleton import solution

HEADER = ("from __future__ import annotations\n\nimport math\nfrom collections.abc import Sequence\n\n"
          "from raftlab.core import *  # noqa: F403\nfrom raftlab.grading import StudentReplica\n\n")


def method_source(function: Callable) -> str:
    """The source of a method, indented for a class body."""
    return textwrap.indent(textwrap.dedent(inspect.getsource(function)), "    ")


def written_out(name: str = "Good", overrides: dict[str, Callable] | None = None, header: bool = True) -> str:
    """A submission defining `name`, a `StudentReplica` whose exercises are the core's methods written out
    (or those of `overrides`, by name, e.g. a planted bug's)."""
    chosen = {e.name: textwrap.indent(solution(e.name), "    ") for e in EXERCISES}
    chosen |= {name: method_source(f) for name, f in (overrides or {}).items()}
    body = "\n".join(chosen.values())
    return (HEADER if header else "") + f"class {name}(StudentReplica):  # every exercise written out\n{body}"
