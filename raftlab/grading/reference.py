"""The reference solution: the skeleton with every exercise filled in.

It behaves exactly like `raftlab.core.Replica` (the grading tests check that both give the same trace,
event for event); instructors can copy each method into the ``### BEGIN SOLUTION`` regions of the
notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core import AppendEntryResponse, LogEntry, Role, Snapshot, TransitionState, VoteRequest, VoteResponse
from .skeleton import StudentReplica


class ReferenceReplica(StudentReplica):
    """Full marks."""

    # ----- part A: leader election -------------------------------------------------------------
    def reset_election_timer(self) -> None:
        self._election_deadline = self.now() + self._rng.uniform(*self.election_timeout_range)

    def start_election(self) -> None:
        self.role = Role.CANDIDATE
        self.persist_term_and_vote(self.current_term + 1, self.id)
        self._set_leader(None)
        self.votes = {self.id}
        self.reset_election_timer()
        self._emit("became_candidate", "C-START")
        if self._has_majority(1):  # a single-node cluster wins at once
            self._become_leader()
            return
        request = VoteRequest(self.id, self.current_term, self.log.last_index, self.log.last_term)
        for peer in self.peer_ids:
            self._send(peer, request)

    def grant_vote(self, m: VoteRequest) -> bool:
        if self.voted_for not in (None, m.from_id) or not self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True

    def handle_vote_response(self, m: VoteResponse) -> None:
        if m.term < self.current_term or self.role is not Role.CANDIDATE or not m.vote_granted:
            return
        self.votes.add(m.from_id)
        if self._has_majority(len(self.votes)):
            self._become_leader()

    def become_follower(self, term: int, why: str) -> None:
        was = self.role
        was_leader = was is Role.LEADER
        self.persist_term_and_vote(term, None)
        self.role = Role.FOLLOWER
        self._set_leader(None)
        if was_leader:
            self._heartbeat_deadline = math.inf
            self.reset_election_timer()
        self._emit("became_follower", "ALL-TERM", why=why, was=was.value)

    # ----- part B: log replication -------------------------------------------------------------
    def log_matches(self, prev_index: int, prev_term: int) -> bool:
        return prev_index <= self.log.last_index and self.log.term_at(prev_index) == prev_term

    def truncate_conflicts(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        for k, entry in enumerate(entries):
            if entry.index > self.log.last_index:
                return entries[k:]
            if self.log.term_at(entry.index) != entry.term:
                self._truncate(entry.index)
                return entries[k:]
        return ()

    def commit_from_leader(self, leader_commit: int, last_new: int) -> None:
        if leader_commit > self.commit_index:
            self._commit_to(min(leader_commit, last_new), "AE-COMMIT")

    def handle_append_response(self, m: AppendEntryResponse) -> None:
        if m.term < self.current_term or self.role is not Role.LEADER:
            return
        peer = m.from_id
        if m.last_index > self.log.last_index and m.success:
            self._drop(f"acknowledges an index beyond my log: {m.last_index}")
            return
        if m.success:
            if m.last_index <= self.match_index[peer]:
                return  # a duplicate or reordered acknowledgement
            self.match_index[peer] = m.last_index
            self.next_index[peer] = max(self.next_index[peer], m.last_index + 1)
            self.advance_leader_commit()
        else:
            if m.mismatch_index is None:
                return  # a refusal of a request from an older term of mine
            new_next = max(self.match_index[peer] + 1, min(self.next_index[peer], m.mismatch_index))
            if new_next == self.next_index[peer]:
                return  # a stale refusal
            self.next_index[peer] = new_next
        if self.next_index[peer] <= self.log.last_index:
            self._send_append(peer)

    def advance_leader_commit(self) -> None:
        if self.role is not Role.LEADER:
            return
        held = sorted([self.log.last_index, *self.match_index.values()], reverse=True)
        n = held[len(held) // 2]
        if n > self.commit_index and self.log.term_at(n) == self.current_term:
            self._commit_to(n, "L-COMMIT")

    # ----- part C: persistence -----------------------------------------------------------------
    def persist_term_and_vote(self, term: int, voted_for: int | None) -> None:
        self.storage.set_term_and_vote(term, voted_for)

    def persist_entries(self, entries: Sequence[LogEntry]) -> None:
        self.storage.append(entries)

    def recover(self) -> None:
        own = self.state_machine.get_snapshot()
        if own is not None and own.last_included_index > self.log.base_index:
            self.storage.save_snapshot(own)
        if self.log.snapshot is not None:
            self.state_machine.set_snapshot(self.log.snapshot)
        self.commit_index = self.last_applied = self.log.base_index

    # ----- part D: snapshots -------------------------------------------------------------------
    def take_snapshot(self) -> None:
        if self.snapshot_delta and self.last_applied - self.log.base_index >= self.snapshot_delta:
            term = self.log.term_at(self.last_applied)
            self.storage.save_snapshot(self.state_machine.create_snapshot(self.last_applied, term))
            self._emit("snapshot_taken", "SNAP-TAKE", index=self.last_applied)

    def install_snapshot(self, snapshot: Snapshot) -> None:
        matched = self.log.term_at(snapshot.last_included_index) == snapshot.last_included_term  # IS-KEEP
        fate = TransitionState.APPLIED if matched else TransitionState.ABANDONED_CONFLICT_WITH_LEADER
        removed = [e for e in self.storage.save_snapshot(snapshot) if e.index > self.last_applied]
        self.state_machine.set_snapshot(snapshot)  # IS-LOAD: the term is left alone
        for entry in removed:
            self._register(entry.transition, fate)
        self.commit_index = max(self.commit_index, snapshot.last_included_index)
        self.last_applied = snapshot.last_included_index
