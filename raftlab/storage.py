"""Durable storage for a `Replica`: `SqliteStorage`, one sqlite3 database file per replica.

It implements the core's `raftlab.core.Storage` interface and lives outside the core because it does
I/O (the core never does). Each change is one committed sqlite3 transaction, durable before the
replica sends anything about it.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .core.log import Log
from .core.messages import Configuration, LogEntry, ReplicaID, Snapshot
from .core.storage import Storage

__all__ = ["SqliteStorage"]

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
        config = None if s_config is None else Configuration.of(*json.loads(s_config))  # MC-SNAPSHOT
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
