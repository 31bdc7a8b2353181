"""raftlab.grading: Raft as coursework.

- `StudentReplica` (skeleton.py): a `Replica` whose rules are exercises, in parts A (election),
  B (replication), C (persistence) and D (snapshots); `EXERCISES` lists them.
- The reference solution is the core itself: each exercise is a rule method of `raftlab.core.Replica`
  under the same name, so `Replica` gets full marks and a planted bug is a one-method subclass of it.
- Parts E and F (beyond Figure 2) have no exercises: E's checks turn on the thesis's options of
  `Replica` (PreVote, CheckQuorum, leadership transfer, ReadIndex and lease reads), F's offer it
  `Configuration` changes (one server at a time, learners, a removed leader); both run the graded
  class whole. `GRADED_PARTS` names parts A-F.
- `grade(student, part=None, seeds=3)`: paper-claim checks and simulator scenarios on fixed seeds,
  and on `secret_seeds(part)` (drawn from the instructor's ``RAFTLAB_SECRET``, never shown), guarded (a
  spawned worker process per student, a wall-time limit per check and per call, an event budget per
  scenario); a `Report` per student, whose `points()` is an nbgrader cell's partial credit.
  `replay(student, check_id, seed)` reruns one failure.
- `ownwork.py`: own work only. The library contains a full Raft, so `grade` reviews a submission first:
  an exercise inherited from the library, copied from it, or calling its implementation of the same
  rule is refused (its part scores 0, the reason naming the method); one that is the library's code
  retyped is flagged for the instructor (`Report.refused`, `Report.flagged`).
- `mutants.py`: planted one-rule bugs and `self_check()`.
- `fakes.py`: the recording fakes (cluster, state machine, storage, replica builders) the paper-claim
  checks drive one replica with; the project's own tests use the same module.

Sits beside raftlab.sim: it uses raftlab.core, raftlab.sim and raftlab.machines only.
"""

from .checks import CHECKS, Check
from .runner import (
    GRADED_PARTS, CheckResult, Report, SubmissionError, grade, grade_many, graded_class, load_student,
    missing_exercises, notebook_source, replay, secret_seeds, student_id, submissions, write_csv,
)
from .skeleton import EXERCISES, PARTS, Exercise, StudentReplica

__all__ = [
    "CHECKS", "EXERCISES", "GRADED_PARTS", "PARTS", "Check", "CheckResult", "Exercise", "Report",
    "StudentReplica", "SubmissionError", "grade", "grade_many", "graded_class", "load_student",
    "missing_exercises", "notebook_source", "replay", "secret_seeds", "student_id", "submissions", "write_csv",
]
