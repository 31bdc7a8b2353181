"""Stable storage for Raft's persistent state: current term, vote, log and latest snapshot.

`Storage` keeps that state in memory for reading and calls one hook per change, which a subclass
makes durable before returning. `MemoryStorage` has no hooks (the simulator keeps it across a
simulated crash); `SqliteStorage` writes each change in one committed sqlite3 transaction.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .log import Log
from .messages import Configuration, LogEntry, ReplicaID, Snapshot


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER NOT NULL, voted_for INTEGER,
    snapshot_index INTEGER, snapshot_term INTEGER, snapshot_data BLOB, snapshot_config TEXT);
INSERT OR IGNORE INTO hard_state (id, term) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, transition BLOB);
"""


class SqliteStorage(Storage):
    """Durable storage in one sqlite3 database file (stdlib `sqlite3`, WAL, ``synchronous=FULL``).

    Opening an existing file recovers term, vote, log and snapshot. Transitions and snapshot data
    are encoded with `dumps`/`loads`, `pickle` by default: the file is the replica's own trusted
    state (never feed it data from elsewhere); pass JSON functions for a portable file.

    `fsync=False` (``synchronous=NORMAL``) skips the fsync of each write: the state still survives
    the crash of the process, but a power cut may lose the last writes, which Raft's safety argument
    does not allow (as etcd's ``--unsafe-no-fsync``; for benchmarks and throwaway clusters).
    """

    def __init__(self, path: str | Path, *, dumps: Callable[[Any], bytes] = pickle.dumps,
                 loads: Callable[[bytes], Any] = pickle.loads, fsync: bool = True) -> None:
        super().__init__()
        if type(fsync) is not bool:
            raise ValueError(f"fsync must be True or False, not {fsync!r}")
        self.path = Path(path)
        self._dumps, self._loads = dumps, loads
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL" if fsync else "PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "snapshot_config" not in {row[1] for row in self._db.execute("PRAGMA table_info(hard_state)")}:
            self._db.execute("ALTER TABLE hard_state ADD COLUMN snapshot_config TEXT")  # a file of raftlab <= 0.13
        term, vote, s_index, s_term, s_data, s_config = self._db.execute(
            "SELECT term, voted_for, snapshot_index, snapshot_term, snapshot_data, snapshot_config FROM hard_state"
        ).fetchone()
        self.current_term, self.voted_for = term, vote
        config = None if s_config is None else Configuration.of(*json.loads(s_config))
        snapshot = None if s_index is None else Snapshot(s_index, s_term, loads(s_data), config)
        rows = self._db.execute("SELECT idx, term, transition FROM log ORDER BY idx")
        self.log = Log(snapshot, [LogEntry(loads(blob), idx, t) for idx, t, blob in rows])

    def close(self) -> None:
        """Close the database; the object must not be used afterwards."""
        self._db.close()

    def __enter__(self) -> SqliteStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, *statements: tuple[str, Any]) -> None:
        with self._db:  # one transaction: committed (and synced) on exit, rolled back on error
            self._db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                if isinstance(args, list):
                    self._db.executemany(sql, args)
                else:
                    self._db.execute(sql, args)

    def _write_term_and_vote(self, term: int, voted_for: ReplicaID | None) -> None:
        self._transaction(("UPDATE hard_state SET term = ?, voted_for = ?", (term, voted_for)))

    def _write_append(self, entries: Sequence[LogEntry]) -> None:
        rows = [(e.index, e.term, self._dumps(e.transition)) for e in entries]
        self._transaction(("INSERT INTO log (idx, term, transition) VALUES (?, ?, ?)", rows))

    def _write_truncate(self, index: int) -> None:
        self._transaction(("DELETE FROM log WHERE idx >= ?", (index,)))

    def _write_snapshot(self, snapshot: Snapshot, keep_later_entries: bool) -> None:
        last = snapshot.last_included_index if keep_later_entries else None
        self._transaction(
            ("UPDATE hard_state SET snapshot_index = ?, snapshot_term = ?, snapshot_data = ?, snapshot_config = ?",
             (snapshot.last_included_index, snapshot.last_included_term, self._dumps(snapshot.data),
              None if (c := snapshot.configuration) is None else json.dumps([sorted(c.voters), sorted(c.learners)]))),
            ("DELETE FROM log WHERE ? IS NULL OR idx <= ?", (last, last)))
