"""Mutation self-check: planted one-rule bugs, each a one-method subclass of the core `Replica` (the
reference solution).

`self_check()` grades the reference (it must score 1.0), the bare skeleton (0.0) and every mutant:
a mutant is *caught* when it loses points in a check that judges its broken rule (`RULE` is among the
check's declared `Check.rules`), and *falsely blamed* when it loses points in a check that does not and is
not an integration check (`Check.together`, which says that it tests its rules together with the rest
of its part or the class whole). The self-check passes when every mutant is caught and none is
falsely blamed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from ..core import (
    AppendEntryResponse, Configuration, EventKind, InstallSnapshotResponse, LogEntry, Message, PreVoteRequest,
    ReadIndexResponse, ReadState, Replica, Role, Snapshot, VoteRequest, VoteResponse,
)
from ..core.messages import check_configuration
from .checks import BY_ID, Check, rules_of
from .runner import DEFAULT_TIMEOUT, CheckResult, Report, grade_many
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
        if self.role is Role.LEADER:  # (the latest configuration's voters, as in the core: MC-LATEST)
            held = sorted((self.log.last_index if v == self.id else self.match_index.get(v, 0)
                           for v in self.configuration.voters), reverse=True)
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


class ResetsTimerOnEveryVoteRequest(Replica):
    """The election timer is reset by every VoteRequest, granted or not: "a candidate is standing, so
    I wait", written at the top of `grant_vote`. A candidate whose log is behind, refused every vote,
    still holds back the timers of the servers that could win, each time it stands again (F-TIMEOUT:
    only the current leader or a granted vote resets the timer)."""

    RULE = "F-TIMEOUT"

    def grant_vote(self, m: VoteRequest) -> bool:
        self.reset_election_timer()  # someone is standing: give it time before I stand myself
        if self.voted_for is not None and self.voted_for != m.from_id:
            return False
        if (m.last_log_term, m.last_log_index) < (self.log.last_term, self.log.last_index):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        return True


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


class MatchIndexMovesBack(Replica):
    """The leader takes every acknowledgement at its word: `match_index` is set to the index acknowledged,
    not raised to it, so a late or reordered answer to an earlier request moves it back (and `next_index`
    with it), and the entries it had already seen replicated are sent again (L-REPLICATE: match_index
    never decreases)."""

    RULE = "L-REPLICATE"

    def record_match(self, peer: int, index: int) -> None:
        self.match_index[peer] = index
        self.next_index[peer] = index + 1
        self.advance_commit()


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
    """AppendEntries responses are taken at face value: from earlier terms, late or reordered. (The
    rest is the core's handler: the heartbeat rounds answered are counted, transfers and reads go on,
    a leader that a commit removed stops there.)"""

    RULE = "L-REPLICATE"

    def handle_append_response(self, m: AppendEntryResponse) -> None:
        if self.role is not Role.LEADER or m.last_index > self.log.last_index or m.from_id not in self.progress:
            return
        peer = m.from_id
        pr = self.progress[peer]
        pr.active, pr.round = True, max(pr.round, m.round)
        if m.success:
            self.replicate_to(peer, m.last_index)
            self.match_index[peer] = m.last_index
            self.next_index[peer] = m.last_index + 1
            self.advance_commit()
        elif m.mismatch_index is not None:
            self.next_index[peer] = max(1, m.mismatch_index)
            pr.probe = None
        if self.role is not Role.LEADER:
            return  # (MC-STEPDOWN)
        self.send_append(peer)
        self.send_timeout_now()
        self.serve_reads()


# ----- Figure 2 as a student writes it wrong: one exercise each ------------------------------------
class WinsWithHalfTheVotes(Replica):
    """A candidate counts its votes against half its peers, ``len(votes) > len(peer_ids) / 2``: right for
    three or five servers, but of four it wins with two votes (itself and one more), half and no
    majority, so two candidates can both lead, in one term even (C-WIN: a majority of the whole
    cluster)."""

    RULE = "C-WIN"

    def handle_vote_response(self, m: VoteResponse) -> None:
        if m.term < self.current_term or self.role is not Role.CANDIDATE or not m.vote_granted:
            return
        self.votes.add(m.from_id)
        if len(self.votes) > len(self.peer_ids) / 2:
            self.become_leader()


class CommitsWithHalfTheVoters(Replica):
    """The leader sorts what each voter holds in ascending order and commits the middle one,
    ``held[len(held) // 2]``: the median of an odd cluster, held by a majority, but of four voters the
    index that two of them hold, and of two the index one holds (L-COMMIT: a majority holds it)."""

    RULE = "L-COMMIT"

    def advance_commit(self) -> None:
        if self.role is not Role.LEADER:
            return
        held = sorted(self.log.last_index if v == self.id else self.match_index.get(v, 0)
                      for v in self.configuration.voters)  # (the voters of the latest configuration: MC-LATEST)
        n = held[len(held) // 2]
        if n > self.commit_index and self.log.term_at(n) == self.current_term:
            self.commit_to(n, "L-COMMIT")


class SendsVoteRequestsBeforePersisting(Replica):
    """A candidate asks for votes first and writes its new term and its vote for itself to stable
    storage after: a crash in between, and it restarts in its old term with no vote, free to vote for
    another candidate in the term it stood in (C-START: persisted before the VoteRequests go out)."""

    RULE = "C-START"

    def start_election(self) -> None:
        term = self.current_term + 1
        self.role = Role.CANDIDATE
        self.set_leader(None)
        self.votes = {self.id}
        self.reset_election_timer()
        self.emit(EventKind.BECAME_CANDIDATE, "C-START")
        request = VoteRequest(self.id, term, self.log.last_index, self.log.last_term, self.transfer_election)
        for peer in self.peer_ids:
            self.send(peer, request)
        self.persist_term_and_vote(term, self.id)  # now that the requests are on their way
        if self.has_majority(len(self.votes)):
            self.become_leader()


class UpToDateByTermAndLength(Replica):
    """The up-to-date check written by hand as "its last term and its length are both at least mine": a
    candidate whose last entry is of a newer term but whose log is shorter is refused, though its log
    is more up to date (§5.4.1 compares the last terms first, the lengths only when they are equal), so
    the only servers that can win may be refused."""

    RULE = "RV-GRANT"

    def grant_vote(self, m: VoteRequest) -> bool:
        if self.voted_for is not None and self.voted_for != m.from_id:
            return False
        if m.last_log_term < self.log.last_term or m.last_log_index < self.log.last_index:
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True


class UpToDateByLength(Replica):
    """The up-to-date check written by hand as "its log is at least as long as mine": a candidate with a
    long log of old, uncommitted entries can win the votes of servers that hold a newer term's committed
    entries, and then overwrite them (§5.4.1 compares the last terms first)."""

    RULE = "RV-GRANT"

    def grant_vote(self, m: VoteRequest) -> bool:
        if self.voted_for is not None and self.voted_for != m.from_id:
            return False
        if m.last_log_index < self.log.last_index:
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True


class DeletesOnRefusal(Replica):
    """The follower that finds a different term at prev_log_index deletes that entry and all after it
    while refusing, instead of on the later request that matches: a refused AppendEntries changes the
    log (AE-CHECK: reply false, and nothing else; AE-TRUNCATE deletes only what conflicts with the
    entries of a request that matched)."""

    RULE = "AE-CHECK"

    def log_matches(self, prev_index: int, prev_term: int) -> bool:
        if prev_index > self.log.last_index:
            return False
        if self.log.term_at(prev_index) != prev_term:
            self.truncate(prev_index)  # that entry is not the leader's: away with it and all after it
            return False
        return True


# ----- beyond Figure 2: the thesis's options (part E) ---------------------------------------------
class PreVoteRaisesTerm(Replica):
    """A pre-vote request is taken for a vote request: its receiver adopts the request's term (ALL-TERM
    is not waived for pre-votes), so a server that was cut off still deposes the leader when it asks."""

    RULE = "PV-GRANT"

    def handle_pre_vote_request(self, m: PreVoteRequest) -> None:
        super().handle_pre_vote_request(m)
        if m.term > self.current_term:
            self.become_follower(m.term, f"saw term {m.term} in a pre-vote request from {m.from_id}")


class LeaseWithoutQuorum(Replica):
    """The read lease runs from the latest heartbeat round the leader started, whether or not a
    majority acknowledged it: a lease on the leader's own say-so, without CheckQuorum's evidence that
    a majority still follows it, so a leader cut off from its followers answers reads alone."""

    RULE = "RI-LEASE"

    def lease_valid(self) -> bool:
        started = self.round_sent.get(self.round)  # the latest round, acknowledged or not
        return (self.read_lease and self.transfer_deadline == math.inf and started is not None
                and self.now() - started < self.election_timeout_range[0] / self.drift_bound)


class TakesProposalsDuringTransfer(Replica):
    """A leader handing over its leadership keeps appending new transitions (LT-STOP is not kept), so
    the transfer's target may never catch up, and clients are not sent to the new leader. (The rest is
    the core's: configuration changes are still held to MC-ONE.)"""

    RULE = "LT-STOP"

    def process_transitions(self) -> None:
        transfer_to, self.transfer_to = self.transfer_to, None  # taken as if no transfer were going on
        try:
            super().process_transitions()
        finally:
            self.transfer_to = transfer_to


class ReadsBeforeNoopCommits(Replica):
    """A new leader gives reads its commit index as soon as their round is confirmed, before an entry
    of its own term (its no-op) has committed: that commit index may lag entries an earlier leader
    committed, so the read misses acknowledged writes."""

    RULE = "RI-CURRENT"

    def serve_reads(self) -> None:
        leader = self.role is Role.LEADER
        waiting = []
        for r in self.reads:
            if leader and r.index is None and self.quorum_round() >= r.round:
                r.index = self.commit_index
            if r.index is not None and r.origin != self.id:
                self.send(r.origin, ReadIndexResponse(self.id, self.current_term, cast(int, r.id), True, r.index))
            elif r.index is not None and self.last_applied >= r.index:
                self.report_read(r.id, ReadState.READY)
            else:
                waiting.append(r)
        self.reads = waiting


# ----- membership change (part F) -------------------------------------------------------------------
class ChangesBeforeTermCommits(Replica):
    """A new leader makes a configuration change before any entry of its own term has committed: the
    single-server algorithm as first published, without the fix of the thesis erratum (raft-dev, 2015).
    A change it appends then may overlap an uncommitted change of an earlier leader: the two
    configurations share no majority, and two leaders can be elected in one term."""

    RULE = "MC-ONE"

    def may_change_configuration(self, new: Configuration) -> str | None:
        old, voters = self.configuration, new.voters
        changed = [s for s in old.members | new.members
                   if (s in old.voters, s in old.learners) != (s in voters, s in new.learners)]
        if check_configuration(new) is not None or len(changed) != 1:
            return "a change must add, promote or remove exactly one server"
        if self.config_index > self.commit_index:
            return "an earlier configuration change is not committed yet"
        s = changed[0]  # (no check that an entry of my term is committed)
        if s in voters and (s not in old.learners or self.match_index[s] < self.commit_index):
            return f"server {s} must join as a learner and catch up first"
        return None


class LearnerStandsForElection(Replica):
    """A server that is not a voter of its latest configuration (a learner, or a server that was removed)
    still stands when its election timer fires: a learner that may be far behind, or a removed server
    that no longer hears the leader, raises the term and disrupts the cluster; counting its own vote,
    a learner can even win."""

    RULE = "MC-LEARNER"

    def campaign(self) -> None:
        if self.role is not Role.LEADER:  # (no check that I am a voter)
            self.start_pre_vote() if self.pre_vote else self.start_election()


class CountsItselfWhenRemoved(Replica):
    """A leader that removed itself from the configuration still counts its own log in the majority
    that commits (thesis §4.2.2: it must not), so the change that removes it commits, and it steps
    down, before a majority of the new configuration holds it."""

    RULE = "MC-STEPDOWN"

    def advance_commit(self) -> None:
        if self.role is not Role.LEADER:
            return
        others = [self.match_index.get(v, 0) for v in self.configuration.voters if v != self.id]
        held = sorted([self.log.last_index, *others], reverse=True)  # myself, voter or not
        n = held[len(held) // 2]
        if n > self.commit_index and self.log.term_at(n) == self.current_term:
            self.commit_to(n, "L-COMMIT")


MUTANTS: tuple[type[Replica], ...] = (
    VoteNotPersisted, CommitsOldTermByCounting, VotesWithoutUpToDateCheck, ResetsTimerOnEveryVoteRequest,
    KeepsConflictingEntries, TruncatesMatchingEntries, MatchIndexMovesBack, TermFromSnapshot,
    CommitNotCappedByLastNew, IgnoresHigherTermInResponses, ActsOnStaleResponses,
    WinsWithHalfTheVotes, CommitsWithHalfTheVoters, SendsVoteRequestsBeforePersisting, UpToDateByTermAndLength,
    UpToDateByLength, DeletesOnRefusal,
    PreVoteRaisesTerm, LeaseWithoutQuorum, TakesProposalsDuringTransfer, ReadsBeforeNoopCommits,
    ChangesBeforeTermCommits, LearnerStandsForElection, CountsItselfWhenRemoved,
)


def declared(result: CheckResult) -> Check | None:
    """The definition of the check `result` is of (None for a check that is not in `CHECKS`)."""
    return BY_ID.get(result.id)


def judges(result: CheckResult, rule: str) -> bool:
    """Whether the check of `result` declares `rule` among the rules it judges (`Check.rules`)."""
    check = declared(result)
    return rule in (check.rules if check is not None else rules_of(result.rule))


def integration(result: CheckResult) -> bool:
    """Whether the check of `result` is an integration check (`Check.together`): it says that it tests its
    rules together with the rest of its part, or with the class whole."""
    check = declared(result)
    return check is not None and bool(check.together)


def caught_by(report: Report, rule: str) -> list[str]:
    """The failed checks of `report` that judge `rule` (it is among their declared rules)."""
    return [r.id for r in report.results if not r.passed and judges(r, rule)]


def blamed_elsewhere(report: Report, rule: str) -> list[str]:
    """False blame: the failed checks of `report` that do not judge `rule` and are not integration checks
    (`Check.together`); a bug of `rule` that loses points there is blamed on rules it does not break."""
    return [r.id for r in report.results if not r.passed and not judges(r, rule) and not integration(r)]


def blamed_together(report: Report, rule: str) -> list[str]:
    """The failed integration checks of `report` that do not name `rule`: they say that they test their
    rules together with the rest of the part (or the class whole), so these are declared, not false."""
    return [r.id for r in report.results if not r.passed and not judges(r, rule) and integration(r)]


def self_check(seeds: int = 3, *, jobs: int | None = None, timeout: float = DEFAULT_TIMEOUT,
               mutants: Sequence[type[Replica]] = MUTANTS) -> dict[str, Any]:
    """Grade the reference, the skeleton and every mutant (of `mutants`). Returns ``{"rows": [...],
    "reports": [...], "summary": {...}}``, a row per candidate; a mutant's row says which checks caught it
    (``caught_by``: they judge its `RULE`), and which checks of other rules it failed (``blamed_elsewhere``,
    false blame; ``blamed_together``, integration checks, which say so). The summary is ``{"mutants": M,
    "caught": C, "falsely_blamed": B, "reference_score": 1.0, "skeleton_score": 0.0, "passed": ...}``: the
    self-check passes when the reference scores 1.0, the skeleton 0.0, every mutant is caught and none is
    blamed elsewhere (B = 0)."""
    students = [("reference", Replica), ("skeleton", StudentReplica),
                *((m.__name__, m) for m in mutants)]
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
            row["blamed_elsewhere"] = blamed_elsewhere(report, rule)
            row["blamed_together"] = blamed_together(report, rule)
        if label == "skeleton":
            row["hints"] = sorted({r.message.split(". Hint")[0] for r in report.results
                                   if r.kind == "not implemented"})
        rows.append(row)
    mutant_rows = [r for r in rows if "broken_rule" in r]
    summary: dict[str, Any] = {
        "mutants": len(mutant_rows), "caught": sum(r["caught"] for r in mutant_rows),
        "falsely_blamed": sum(bool(r["blamed_elsewhere"]) for r in mutant_rows),
        "reference_score": reports[0].score, "skeleton_score": reports[1].score}
    summary["passed"] = (summary["caught"] == summary["mutants"] and summary["falsely_blamed"] == 0
                         and summary["reference_score"] == 1.0 and summary["skeleton_score"] == 0.0)
    return {"rows": rows, "reports": reports, "summary": summary}
