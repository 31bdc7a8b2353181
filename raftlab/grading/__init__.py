"""raftlab.grading: Raft as coursework.

- `StudentReplica` (skeleton.py): a `Replica` whose rules are exercises, in parts A (election),
  B (replication), C (persistence) and D (snapshots); `EXERCISES` lists them.
- `ReferenceReplica` (reference.py): the exercises filled in; it behaves exactly like `Replica`.
- `grade(student, part=None, seeds=3)`: paper-claim checks and simulator scenarios on fixed seeds,
  guarded (a worker process per student, a wall-time limit per check, an event budget per scenario);
  a `Report` per student. `replay(student, check_id, seed)` reruns one failure.
- `mutants.py`: planted one-rule bugs and `self_check()`.

Sits beside raftlab.sim: it uses raftlab.core, raftlab.sim and raftlab.machines only.
"""

from .checks import CHECKS, Check
from .reference import ReferenceReplica
from .runner import (
    CheckResult, Report, SubmissionError, grade, grade_many, graded_class, load_student, missing_exercises, replay,
    submissions, write_csv,
)
from .skeleton import EXERCISES, PARTS, Exercise, StudentReplica

__all__ = [
    "CHECKS", "EXERCISES", "PARTS", "Check", "CheckResult", "Exercise", "ReferenceReplica", "Report",
    "StudentReplica", "SubmissionError", "grade", "grade_many", "graded_class", "load_student",
    "missing_exercises", "replay", "submissions", "write_csv",
]
