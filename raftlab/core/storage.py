"""Stable storage for Raft's persistent state: current term, vote, log and latest snapshot.

`Storage` keeps that state in memory for reading and calls one hook per change, which a subclass
makes durable before returning. `MemoryStorage` has no hooks (the simulator keeps it across a
simulated crash); `raftlab.storage.SqliteStorage` (outside the core: it does I/O) writes each change
in one committed sqlite3 transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .log import Log
from .messages import LogEntry, ReplicaID, Snapshot


class Storage:
    """Base class and interface. A `Replica` reads `current_term`, `voted_for` and `log`, and
    changes them only through the four methods below, each of which is durable when it returns."""

    def __init__(self) -> None:
        self.current_term: int = 0  # latest term this server has seen
        self.voted_for: ReplicaID | None = None  # candidate voted for in current_term
        self.log: Log = Log()  # the log and its snapshot

    def __repr__(self) -> str:
        return f"{type(self).__name__}(term={self.current_term}, voted_for={self.voted_for}, log={self.log})"

    # Each change is checked, made durable by the hook, and only then made in memory: if the hook
    # raises, memory still agrees with the disk (and the replica stops, see `ReplicaStopped`).
    def set_term_and_vote(self, term: int, voted_for: ReplicaID | None) -> None:
        """Record the term and the vote together (atomically)."""
        if term < self.current_term:
            raise ValueError(f"term cannot go back from {self.current_term} to {term}")
        self._write_term_and_vote(term, voted_for)
        self.current_term, self.voted_for = term, voted_for

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Add entries after the last one."""
        self.log.check_append(entries)
        self._write_append(entries)
        self.log.append(entries)

    def truncate(self, index: int) -> list[LogEntry]:
        """Delete the entries from `index` on; returns them."""
        self.log.check_truncate(index)
        self._write_truncate(index)
        return self.log.truncate(index)

    def save_snapshot(self, snapshot: Snapshot) -> list[LogEntry]:
        """Make `snapshot` the latest and compact the log by `Log.compact`; returns the removed entries.
        A snapshot without a configuration gets the log's as of its last index (MC-SNAPSHOT)."""
        found = self.log.configurations(snapshot.last_included_index) if snapshot.configuration is None else ()
        snapshot = replace(snapshot, configuration=found[0][1]) if found else snapshot
        self._write_snapshot(snapshot, self.log.check_compact(snapshot))
        return self.log.compact(snapshot)

    # Hooks: make one change durable. Storage itself keeps everything in memory only.
    def _write_term_and_vote(self, term: int, voted_for: ReplicaID | None) -> None:
        pass

    def _write_append(self, entries: Sequence[LogEntry]) -> None:
        pass

    def _write_truncate(self, index: int) -> None:
        pass

    def _write_snapshot(self, snapshot: Snapshot, keep_later_entries: bool) -> None:
        pass


class MemoryStorage(Storage):
    """Storage in memory only: survives a simulated crash (keep the object), not a real one."""
