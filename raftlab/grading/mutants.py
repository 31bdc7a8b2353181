"""Mutation self-check: planted one-rule bugs, each a one-method subclass of the core `Replica` (the
reference solution).

`self_check()` grades the reference (it must score 1.0), the bare skeleton (0.0) and every mutant:
a mutant is *caught* when it loses points in a check that names its broken rule (`RULE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core import (
    AppendEntryResponse, InstallSnapshotResponse, LogEntry, Message, Replica, Role, Snapshot, VoteResponse,
)
from .runner import DEFAULT_TIMEOUT, Report, grade_many
from .skeleton import StudentReplica


class VoteNotPersisted(Replica):
    """The vote is answered before it is persisted (written only after the reply is sent)."""

    RULE = "RV-GRANT"

    def persist_term_and_vote(self, term: int, voted_for: int | None) -> None:
        if voted_for not in (None, self.id) and term == self.current_term:
            self._unsaved = (term, voted_for)  # kept in memory for now
            return
        super().persist_term_and_vote(term, voted_for)

    def send(self, to: int, message: Message) -> None:
        super().send(to, message)
        unsaved = self.__dict__.pop("_unsaved", None)
        if unsaved is not None:
            super().persist_term_and_vote(*unsaved)


class CommitsOldTermByCounting(Replica):
    """An entry of an older term is committed by counting replicas (Figure 8)."""

    RULE = "L-COMMIT"

    def advance_commit(self) -> None:
        if self.role is Role.LEADER:
            held = sorted([self.log.last_index, *self.match_index.values()], reverse=True)
            if held[len(held) // 2] > self.commit_index:
                self.commit_to(held[len(held) // 2], "L-COMMIT")


class VotesWithoutUpToDateCheck(Replica):
    """Votes for any candidate that asks first, whatever its log."""

    RULE = "RV-GRANT"

    def grant_vote(self, m: Any) -> bool:
        if self.voted_for not in (None, m.from_id):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True


class ResetsTimerOnEveryMessage(Replica):
    """The election timer is reset by every message received."""

    RULE = "F-TIMEOUT"

    def step(self, message: Message) -> None:
        super().step(message)
        if self.role is not Role.LEADER:
            self.reset_election_timer()


class KeepsConflictingEntries(Replica):
    """Conflicting entries are not truncated: only entries beyond the log's end are appended."""

    RULE = "AE-TRUNCATE"

    def truncate_conflicts(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        return tuple(x for x in entries if x.index > self.log.last_index)


class TruncatesMatchingEntries(Replica):
    """Everything after prev_log_index is deleted, so a delayed, shorter request cuts off entries."""

    RULE = "AE-TRUNCATE"

    def truncate_conflicts(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        if entries and entries[0].index <= self.log.last_index:
            self.truncate(entries[0].index)
        return entries


class MatchFromLogLength(Replica):
    """The follower acknowledges its whole log length, so the leader's match_index is taken from it
    (Little Raft 0.2)."""

    RULE = "L-REPLICATE"

    def send(self, to: int, message: Message) -> None:
        if isinstance(message, AppendEntryResponse) and message.success:
            message = AppendEntryResponse(message.from_id, message.term, True, self.log.last_index, None)
        super().send(to, message)


class TermFromSnapshot(Replica):
    """The term is taken from an installed snapshot's last included term (Little Raft 0.2)."""

    RULE = "IS-LOAD"

    def install_snapshot(self, snapshot: Snapshot) -> None:
        super().install_snapshot(snapshot)
        self.storage.current_term = snapshot.last_included_term  # bypasses Storage's check


class CommitNotCappedByLastNew(Replica):
    """The follower's commit index follows the leader's, capped by its log's end, not by the last
    entry the request made known to match."""

    RULE = "AE-COMMIT"

    def commit_from_leader(self, leader_commit: int, last_new: int) -> None:
        if leader_commit > self.commit_index:
            self.commit_to(min(leader_commit, self.log.last_index), "AE-COMMIT")


class IgnoresHigherTermInResponses(Replica):
    """A higher term carried by a response is ignored (only requests make it step down)."""

    RULE = "ALL-TERM"

    def step(self, message: Message) -> None:
        if isinstance(message, (VoteResponse, AppendEntryResponse, InstallSnapshotResponse)) \
                and message.term > self.current_term:
            return
        super().step(message)


class ActsOnStaleResponses(Replica):
    """AppendEntries responses are taken at face value: from earlier terms, late or reordered."""

    RULE = "L-REPLICATE"

    def handle_append_response(self, m: AppendEntryResponse) -> None:
        if self.role is not Role.LEADER or m.last_index > self.log.last_index:
            return
        peer = m.from_id
        if m.success:
            self.replicate_to(peer, m.last_index)
            self.match_index[peer] = m.last_index
            self.next_index[peer] = m.last_index + 1
            self.advance_commit()
        elif m.mismatch_index is not None:
            self.next_index[peer] = max(1, m.mismatch_index)
            self.progress[peer].probe = None
        self.send_append(peer)


MUTANTS: tuple[type[Replica], ...] = (
    VoteNotPersisted, CommitsOldTermByCounting, VotesWithoutUpToDateCheck, ResetsTimerOnEveryMessage,
    KeepsConflictingEntries, TruncatesMatchingEntries, MatchFromLogLength, TermFromSnapshot,
    CommitNotCappedByLastNew, IgnoresHigherTermInResponses, ActsOnStaleResponses,
)


def caught_by(report: Report, rule: str) -> list[str]:
    """The failed checks of `report` that name `rule`."""
    return [r.id for r in report.results if not r.passed and (rule in r.rule or r.message.startswith(rule))]


def self_check(seeds: int = 3, *, jobs: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Grade the reference, the skeleton and every mutant. Returns ``{"reports": [...], "summary": {...}}``
    where the summary is ``{"mutants": M, "caught": C, "reference_score": 1.0, "skeleton_score": 0.0}``."""
    students = [("reference", Replica), ("skeleton", StudentReplica),
                *((m.__name__, m) for m in MUTANTS)]
    reports = grade_many(students, None, seeds, timeout=timeout, jobs=jobs)
    rows = []
    for (label, cls), report in zip(students, reports, strict=True):
        rule = getattr(cls, "RULE", None)
        row: dict[str, Any] = {"candidate": label, "score": report.score,
                               "failed": [f"{r.id} [{r.rule}]" for r in report.results if not r.passed]}
        if rule is not None:
            row["broken_rule"] = rule
            row["caught_by"] = caught_by(report, rule)
            row["caught"] = report.score < 1.0 and bool(row["caught_by"])
        if label == "skeleton":
            row["hints"] = sorted({r.message.split(". Hint")[0] for r in report.results
                                   if r.kind == "not implemented"})
        rows.append(row)
    mutant_rows = [r for r in rows if "broken_rule" in r]
    summary = {"mutants": len(mutant_rows), "caught": sum(r["caught"] for r in mutant_rows),
               "reference_score": reports[0].score, "skeleton_score": reports[1].score}
    return {"rows": rows, "reports": reports, "summary": summary}
