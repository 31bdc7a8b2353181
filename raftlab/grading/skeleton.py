"""The student skeleton: a `Replica` in which Raft's rules are exercises.

`StudentReplica` is a complete `raftlab.core.Replica` except for the small methods listed in
`EXERCISES`: each raises `NotImplementedError` with a hint that names its rule (ids of
docs/raft-rules.md). Subclass it and fill them in, part by part:

    from raftlab.grading import StudentReplica

    class MyReplica(StudentReplica):
        def grant_vote(self, m):
            ...

Each exercise is one of the core `Replica`'s rule methods, under the same name: the core calls it
where the rule applies, and the core's own method is the reference solution. Everything else
(messages, timers, sending, applying, the event trace) comes from the library. Inside an exercise you
may use the replica's state (`self.role`, `self.current_term`, `self.voted_for`, `self.log`,
`self.storage`, `self.commit_index`, `self.last_applied`, `self.votes`, `self.next_index`,
`self.match_index`, `self.peer_ids`, `self.id`, `self.now()`, `self.rng`, `self.election_deadline`,
`self.heartbeat_deadline`) and these public helpers of `Replica`:

- ``self.send(peer, message)``: send a message;
- ``self.emit(kind, rule, **details)``: tell the trace what happened (an `EventKind`) and why
  (optional, but it makes the grader's explanations of your runs readable);
- ``self.set_leader(id_or_None)``, ``self.has_majority(count)``, ``self.become_leader()``;
- ``self.truncate(index)``: delete the log from `index` on; ``self.commit_to(index, rule)``:
  commit (and apply) up to `index`; ``self.send_append(peer)``: send `peer` what it needs;
  ``self.report(transition, state)``: tell the state machine a transition's state; ``self.drop(reason)``:
  drop a message that makes no sense;
- the other exercises, which call each other as the core does.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from ..core import AppendEntryResponse, LogEntry, Replica, Snapshot, VoteRequest, VoteResponse


@dataclass(frozen=True, slots=True)
class Exercise:
    """One method to write."""

    name: str  # the method students write
    part: str  # "A", "B", "C" or "D"
    rules: str  # the rule ids it implements
    hint: str  # what it must do
    # the library's helpers that implement this exercise's rule itself (attribute names, e.g.
    # "is_up_to_date" for grant_vote, whose rule is the up-to-date comparison): an exercise that calls
    # one is refused by the grader (ownwork.py): the student writes the rule itself.
    library: tuple[str, ...] = ()


# The exercises whose core method calls a library helper that implements the exercise's rule itself
# (`Exercise.library`), which a submission may not call: their solution writes the rule out.
WRITTEN_OUT = {
    "grant_vote": '''def grant_vote(self, m: VoteRequest) -> bool:
    # RV-GRANT (§5.2, §5.4.1): not voted for another, and the candidate's log at least as up to date: a
    # higher last term, or the same and a last index at least mine (compared here: the core asks
    # self.log.is_up_to_date, which a submission may not call); the vote is persisted before answering,
    # and granting resets the election timer (F-TIMEOUT).
    if self.voted_for not in (None, m.from_id):
        return False
    if (m.last_log_term, m.last_log_index) < (self.log.last_term, self.log.last_index):
        return False  # the candidate's log is behind mine
    self.persist_term_and_vote(self.current_term, m.from_id)
    self.reset_election_timer()
    return True
''',
}


def solution(name: str) -> str:
    """The reference solution of exercise `name` (the instructor notebooks', `make_notebooks.py`): the
    core's own method, or its `WRITTEN_OUT` form."""
    return WRITTEN_OUT.get(name) or textwrap.dedent(inspect.getsource(Replica.__dict__[name]))


PARTS = {"A": "leader election", "B": "log replication", "C": "persistence", "D": "snapshots"}

EXERCISES: tuple[Exercise, ...] = (
    Exercise("reset_election_timer", "A", "F-TIMEOUT",
             "set self.election_deadline to self.now() plus a fresh random timeout drawn uniformly from "
             "self.election_timeout_range with self.rng. The library calls it when a leader of your term "
             "is heard from; call it yourself in start_election and when you grant a vote, never otherwise"),
    Exercise("start_election", "A", "C-START",
             "become candidate: term + 1 and a vote for yourself (persisted with persist_term_and_vote), no "
             "known leader, votes = {self.id}, a fresh timer; win at once if you alone are a majority, else "
             "send a VoteRequest with your last log index and term to every peer"),
    Exercise("grant_vote", "A", "RV-GRANT",
             "return True to grant m.from_id your vote in this term (the library has already refused a "
             "stale term): only if you have not voted for someone else and the candidate's log is at least "
             "as up to date as yours, which you compare yourself (§5.4.1): its last term m.last_log_term "
             "is higher than yours (self.log.last_term), or the same with a last index m.last_log_index at "
             "least yours (self.log.last_index); self.log.is_up_to_date is the library's own answer and may "
             "not be called. When granting, persist the vote (persist_term_and_vote) and reset the election "
             "timer first, then return True",
             library=("is_up_to_date",)),
    Exercise("handle_vote_response", "A", "C-WIN",
             "ignore a response from an earlier term, a refusal, or one that arrives when you are no longer "
             "candidate (ALL-STALE); otherwise count the vote and become leader on a majority of the "
             "whole cluster, yourself included"),
    Exercise("become_follower", "A", "ALL-TERM",
             "a message carried a higher term: adopt it with no vote (persisted first), become follower "
             "with no known leader; a leader that steps down stops its heartbeats and starts an election "
             "timer"),
    Exercise("log_matches", "B", "AE-CHECK",
             "return whether the log holds an entry at prev_index whose term is prev_term"),
    Exercise("truncate_conflicts", "B", "AE-TRUNCATE",
             "walk the entries of the request: skip those already in the log with the same term; at the "
             "first conflict (same index, other term) delete it and everything after it (self.truncate); "
             "return the entries that are not in the log (the library appends them, AE-APPEND). Never "
             "delete matching entries: a delayed, shorter request must not cut off later ones"),
    Exercise("commit_from_leader", "B", "AE-COMMIT",
             "if leader_commit > self.commit_index, commit up to min(leader_commit, last_new) with "
             "self.commit_to(index, 'AE-COMMIT'); last_new is the last index this request made known to "
             "match"),
    Exercise("record_match", "B", "L-REPLICATE",
             "a peer acknowledged that its log matches the leader's up to index: set match_index[peer] to index "
             "if that is higher (never lower: a late acknowledgement must not move it back), next_index[peer] "
             "past it (never back), and try to commit"),
    Exercise("back_off", "B", "L-REPLICATE, FC-STALE",
             "a peer refused an AppendEntries (m): only the refusal of the current probe says something new "
             "(self.progress[peer].flow is Flow.PROBE and m.prev_log_index == self.progress[peer].probe, with a "
             "hint m.mismatch_index); then move next_index[peer] back, one step (Figure 2) or straight to the hint "
             "(fewer round trips), but never below match_index[peer] + 1, and set self.progress[peer].probe = "
             "None so that the next probe goes out. Ignore any other refusal"),
    Exercise("advance_commit", "B", "L-COMMIT",
             "a leader commits the highest index N held by a majority (itself and match_index) if the "
             "entry at N has the CURRENT term; an older-term entry is never committed by counting replicas"),
    Exercise("persist_term_and_vote", "C", "C-START, RV-GRANT, ALL-TERM (persist first)",
             "make term and vote durable in one write (self.storage.set_term_and_vote) before anything "
             "that depends on them is sent"),
    Exercise("persist_entries", "C", "L-APPEND, AE-APPEND (durable before acknowledging)",
             "make the entries durable (self.storage.append) before they are acknowledged or replicated"),
    Exercise("recover", "C", "restart from stable storage",
             "on (re)start: if the state machine's own snapshot (get_snapshot) is newer than the log's, save "
             "it in storage; load the log's snapshot into the state machine; commit_index and last_applied "
             "start at the snapshot's index (term, vote and log are read from self.storage)"),
    Exercise("take_snapshot", "D", "SNAP-TAKE",
             "called after applying: if snapshot_delta > 0 and at least snapshot_delta entries were applied "
             "since the log's base, save state_machine.create_snapshot(last_applied, its term) in storage"),
    Exercise("install_snapshot", "D", "IS-KEEP, IS-LOAD",
             "install a leader's newer snapshot: save it in storage (which keeps the entries after it only "
             "if the log holds its last entry with the same term), report each unapplied entry removed: "
             "APPLIED if the log matched, or if the entry is at or below the snapshot's index and of its last "
             "term; ABANDONED_CONFLICT_WITH_LEADER if it is above the snapshot's index or of a later term; "
             "else UNKNOWN. Load it into the state machine, and raise commit_index and last_applied to its "
             "index. Never touch the term"),
)

BY_NAME = {e.name: e for e in EXERCISES}


def _todo(name: str) -> NotImplementedError:
    ex = BY_NAME[name]
    return NotImplementedError(f"{ex.rules}: {ex.name} is not written yet (part {ex.part}, "
                               f"{PARTS[ex.part]}). Hint: {ex.hint}.")


class StudentReplica(Replica):
    """A `Replica` whose rule methods listed in `EXERCISES` are left for you to write (each raises
    `NotImplementedError` with a hint); subclass it and fill them in."""

    # ----- part A: leader election -------------------------------------------------------------
    def reset_election_timer(self) -> None:
        """F-TIMEOUT (§5.2): draw a fresh election deadline."""
        raise _todo("reset_election_timer")

    def start_election(self) -> None:
        """C-START (§5.2): the election timer fired (or `campaign`): stand for election."""
        raise _todo("start_election")

    def grant_vote(self, m: VoteRequest) -> bool:
        """RV-GRANT (§5.2, §5.4.1): whether to vote for the candidate `m.from_id`."""
        raise _todo("grant_vote")

    def handle_vote_response(self, m: VoteResponse) -> None:
        """C-WIN (§5.2): count a vote."""
        raise _todo("handle_vote_response")

    def become_follower(self, term: int, why: str) -> None:
        """ALL-TERM (§5.1): a higher term was seen."""
        raise _todo("become_follower")

    # ----- part B: log replication -------------------------------------------------------------
    def log_matches(self, prev_index: int, prev_term: int) -> bool:
        """AE-CHECK (§5.3): the consistency check of AppendEntries."""
        raise _todo("log_matches")

    def truncate_conflicts(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        """AE-TRUNCATE (§5.3): delete conflicting entries; return those to append."""
        raise _todo("truncate_conflicts")

    def commit_from_leader(self, leader_commit: int, last_new: int) -> None:
        """AE-COMMIT (§5.3): follow the leader's commit index."""
        raise _todo("commit_from_leader")

    def record_match(self, peer: int, index: int) -> None:
        """L-REPLICATE (§5.3, §7): a peer acknowledged `index`."""
        raise _todo("record_match")

    def back_off(self, peer: int, m: AppendEntryResponse) -> None:
        """L-REPLICATE, FC-STALE (§5.3): a peer refused an AppendEntries."""
        raise _todo("back_off")

    def advance_commit(self) -> None:
        """L-COMMIT (§5.3, §5.4.2): commit what a majority holds."""
        raise _todo("advance_commit")

    # ----- part C: persistence -----------------------------------------------------------------
    def persist_term_and_vote(self, term: int, voted_for: int | None) -> None:
        """Persistent state: term and vote."""
        raise _todo("persist_term_and_vote")

    def persist_entries(self, entries: Sequence[LogEntry]) -> None:
        """Persistent state: new log entries."""
        raise _todo("persist_entries")

    def recover(self) -> None:
        """Persistent state: start from storage."""
        raise _todo("recover")

    # ----- part D: snapshots -------------------------------------------------------------------
    def take_snapshot(self) -> None:
        """SNAP-TAKE (§7): compact the applied prefix."""
        raise _todo("take_snapshot")

    def install_snapshot(self, snapshot: Snapshot) -> None:
        """IS-KEEP, IS-LOAD (§7): a leader's snapshot arrived."""
        raise _todo("install_snapshot")
