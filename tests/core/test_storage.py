"""Stable storage: MemoryStorage and SqliteStorage (real sqlite files), and a Replica restarting from it.

Persistent state (raft-rules.md, "State"): `current_term`, `voted_for` and the log (with its snapshot)
must be durable before the replica answers, and must come back after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, LogEntry, MemoryStorage, Snapshot, Storage, VoteRequest, VoteResponse,
)
from raftlab.storage import SqliteStorage
from raftlab.grading.fakes import Op, RecordingCluster, RecordingStateMachine, build, held_entries, log_of


def state(storage: Storage) -> tuple:
    """Everything persistent, to compare before/after a reopen."""
    return storage.current_term, storage.voted_for, storage.log.snapshot, held_entries(storage)


class Backend:
    """Opens storage of one kind; `reopen` simulates a restart (a fresh object from the same place)."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        self.opened: list[Storage] = []
        self._memory: MemoryStorage | None = None

    def open(self) -> Storage:
        if self.kind == "sqlite":
            storage: Storage = SqliteStorage(self.path)
        else:
            self._memory = self._memory or MemoryStorage()
            storage = self._memory  # the simulator keeps the object across a simulated crash
        self.opened.append(storage)
        return storage

    def reopen(self, storage: Storage) -> Storage:
        if isinstance(storage, SqliteStorage):
            storage.close()
        return self.open()

    def close_all(self) -> None:
        for storage in self.opened:
            if isinstance(storage, SqliteStorage):
                storage.close()


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path / "raft.sqlite3")
    yield b
    b.close_all()


# ----- term and vote ---------------------------------------------------------------------------------------
def test_new_storage_starts_at_term_zero_without_vote_or_log(backend: Backend) -> None:
    """State: current_term starts at 0, voted_for None, the log empty from index 1."""
    s = backend.open()
    assert (s.current_term, s.voted_for, s.log.snapshot, s.log.last_index, s.log.base_index) == (0, None, None, 0, 0)


def test_term_and_vote_are_stored_together(backend: Backend) -> None:
    """ALL-TERM / RV-GRANT persistence: term and vote are one record, durable across a reopen."""
    s = backend.open()
    s.set_term_and_vote(3, 2)
    assert (s.current_term, s.voted_for) == (3, 2)
    s = backend.reopen(s)
    assert (s.current_term, s.voted_for) == (3, 2)
    s.set_term_and_vote(4, None)  # a new term clears the vote in the same write
    s = backend.reopen(s)
    assert (s.current_term, s.voted_for) == (4, None)
    s.set_term_and_vote(4, 0)  # voting in the current term; id 0 is a valid id, not "no vote"
    s = backend.reopen(s)
    assert (s.current_term, s.voted_for) == (4, 0)


def test_term_cannot_go_backwards(backend: Backend) -> None:
    """State: current_term only grows; a lower term raises ValueError and changes nothing, durably."""
    s = backend.open()
    s.set_term_and_vote(7, 1)
    with pytest.raises(ValueError):
        s.set_term_and_vote(6, 2)
    assert (s.current_term, s.voted_for) == (7, 1)
    s = backend.reopen(s)
    assert (s.current_term, s.voted_for) == (7, 1)


# ----- log ---------------------------------------------------------------------------------------------------
def test_append_and_truncate_survive_reopen(backend: Backend) -> None:
    """AE-APPEND / AE-TRUNCATE persistence: the log after appends and a truncation comes back whole."""
    s = backend.open()
    s.append(log_of([1, 1, 2, 2, 3]))
    s.append([])  # an empty append is harmless
    s = backend.reopen(s)
    assert held_entries(s) == log_of([1, 1, 2, 2, 3])
    removed = s.truncate(4)
    assert removed == log_of([2, 3], first=4)
    s.append(log_of([4, 4], first=4, prefix="x"))
    expected = log_of([1, 1, 2]) + log_of([4, 4], first=4, prefix="x")
    assert held_entries(s) == expected
    s = backend.reopen(s)
    assert held_entries(s) == expected
    assert (s.log.last_index, s.log.last_term) == (5, 4)


def test_invalid_append_raises_and_writes_nothing(backend: Backend) -> None:
    s = backend.open()
    s.append(log_of([1, 2]))
    for bad in (log_of([2], first=4), log_of([2], first=2), log_of([1], first=3),
                log_of([2], first=3) + log_of([2], first=5)):
        with pytest.raises(ValueError):
            s.append(bad)
    s = backend.reopen(s)
    assert held_entries(s) == log_of([1, 2])


def test_save_snapshot_with_matching_term_keeps_suffix_and_survives_reopen(backend: Backend) -> None:
    """IS-KEEP / SNAP-TAKE: the log holds the snapshot's entry with the same term: keep what follows."""
    s = backend.open()
    s.set_term_and_vote(3, 1)
    s.append(log_of([1, 1, 2, 2, 3]))
    snap = Snapshot(3, 2, {"total": 6})
    assert s.save_snapshot(snap) == log_of([1, 1, 2])  # returns every entry removed: the prefix
    assert (s.log.snapshot, held_entries(s)) == (snap, log_of([2, 3], first=4))
    s = backend.reopen(s)
    assert s.log.snapshot == snap
    assert (s.log.base_index, s.log.base_term, s.log.last_index, s.log.last_term) == (3, 2, 5, 3)
    assert held_entries(s) == log_of([2, 3], first=4)
    assert (s.current_term, s.voted_for) == (3, 1)
    # later appends and a second, newer snapshot keep working after the reopen
    s.append(log_of([3], first=6))
    s.save_snapshot(Snapshot(5, 3, {"total": 15}))
    s = backend.reopen(s)
    assert (s.log.base_index, held_entries(s)) == (5, log_of([3], first=6))


def test_save_snapshot_with_conflicting_term_discards_whole_log(backend: Backend) -> None:
    """IS-KEEP: no entry at the snapshot's index with its term: discard the whole log (durably)."""
    s = backend.open()
    s.append(log_of([1, 1, 2, 2, 3]))
    snap = Snapshot(3, 3, "leader's state")  # my entry 3 has term 2
    removed = s.save_snapshot(snap)
    assert removed == log_of([1, 1, 2, 2, 3])
    assert (s.log.base_index, s.log.last_index, s.log.last_term, len(s.log)) == (3, 3, 3, 0)
    s = backend.reopen(s)
    assert s.log.snapshot == snap
    assert (s.log.base_index, s.log.last_index, s.log.last_term, len(s.log)) == (3, 3, 3, 0)
    s.append(log_of([3], first=4))
    s = backend.reopen(s)
    assert held_entries(s) == log_of([3], first=4)


def test_snapshot_beyond_the_log_discards_it(backend: Backend) -> None:
    """IS-KEEP: a snapshot past the end of the log (an InstallSnapshot from far ahead) replaces it all."""
    s = backend.open()
    s.append(log_of([1, 1]))
    s.save_snapshot(Snapshot(10, 4, "far"))
    s = backend.reopen(s)
    assert (s.log.base_index, s.log.base_term, len(s.log)) == (10, 4, 0)
    assert s.log.snapshot == Snapshot(10, 4, "far")


def test_compacted_entries_cannot_be_truncated_or_resnapshotted(backend: Backend) -> None:
    s = backend.open()
    s.append(log_of([1, 1, 1, 2]))
    s.save_snapshot(Snapshot(2, 1, "s2"))
    before = state(s)
    with pytest.raises(ValueError):
        s.truncate(2)
    with pytest.raises(ValueError):
        s.save_snapshot(Snapshot(1, 1, "older"))
    assert state(s) == before
    s = backend.reopen(s)
    assert state(s) == before


def test_sqlite_storage_with_json_encoding(tmp_path: Path) -> None:
    """SqliteStorage takes dumps/loads for a portable file."""
    path = tmp_path / "json.sqlite3"
    kw: dict[str, Callable] = {"dumps": lambda v: json.dumps(v).encode(), "loads": json.loads}
    with SqliteStorage(path, **kw) as s:
        s.append([LogEntry({"op": "add", "n": 1}, 1, 1), LogEntry(["x", 2], 2, 1)])
        s.save_snapshot(Snapshot(1, 1, {"total": 1}))
    with SqliteStorage(path, **kw) as s:
        assert s.log.snapshot == Snapshot(1, 1, {"total": 1})
        assert held_entries(s) == [LogEntry(["x", 2], 2, 1)]


def test_sqlite_storage_fsyncs_every_write_unless_told_not_to(tmp_path: Path) -> None:
    """fsync=True (the default) is synchronous=FULL; fsync=False is NORMAL, which still recovers after
    the process ends (only a power cut may lose the last writes)."""
    for fsync, level in ((True, 2), (False, 1)):
        path = tmp_path / f"{fsync}.sqlite3"
        with SqliteStorage(path, fsync=fsync) as s:
            assert s._db.execute("PRAGMA synchronous").fetchone() == (level,)
            s.set_term_and_vote(3, 2)
            s.append([LogEntry("a", 1, 3)])
        with SqliteStorage(path) as s:
            assert (s.current_term, s.voted_for, held_entries(s)) == (3, 2, [LogEntry("a", 1, 3)])
    with pytest.raises(ValueError, match="fsync"):
        SqliteStorage(tmp_path / "x.sqlite3", fsync="no")  # type: ignore[arg-type]


# ----- a Replica restarting from SqliteStorage -------------------------------------------------------------------
class CheckingCluster(RecordingCluster):
    """Reads the database file (a second connection) each time a message is sent: what was durable then."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.durable_at_send: list[tuple] = []

    def send_message(self, to_id: int, message: object) -> None:
        with SqliteStorage(self.path) as other:
            self.durable_at_send.append((message, other.current_term, other.voted_for, other.log.last_index))
        super().send_message(to_id, message)


def test_replica_restart_keeps_term_vote_log_and_snapshot(tmp_path: Path) -> None:
    """RV-GRANT / persistence: a vote, the log and a snapshot survive a restart; the restarted replica
    refuses a second candidate in the same term (two votes in one term would allow two leaders), still
    grants to the candidate it voted for, and resumes from the snapshot (IS-LOAD, commit = applied = base)."""
    path = tmp_path / "replica1.sqlite3"
    storage = SqliteStorage(path)
    replica, _, sm = build(snapshot_delta=3, storage=storage)
    checking = CheckingCluster(path)
    replica.cluster = checking

    replica.step(VoteRequest(2, 5, 0, 0))
    [(to, response)] = checking.take()
    assert (to, response) == (2, VoteResponse(1, 5, True))
    # persisted before answering: the file already held term 5 and the vote for 2 when it was sent
    assert checking.durable_at_send[-1][1:3] == (5, 2)

    ops = [Op(f"op{i}", i) for i in range(1, 6)]
    log_entries = tuple(LogEntry(op, i, 5) for i, op in enumerate(ops, start=1))
    replica.step(AppendEntryRequest(2, 5, 0, 0, log_entries, 3))
    [(to, response)] = checking.take()
    assert (to, response) == (2, AppendEntryResponse(1, 5, True, 5, None, 0))
    assert checking.durable_at_send[-1][1:] == (5, 2, 5)  # entries durable before the success answer
    assert sm.applied == ops[:3]
    assert (replica.commit_index, replica.last_applied) == (3, 3)
    stored_snapshot = replica.log.snapshot
    assert stored_snapshot is not None
    assert (stored_snapshot.last_included_index, stored_snapshot.last_included_term) == (3, 5)
    assert stored_snapshot.data == (6, tuple(ops[:3]))
    storage.close()

    reopened = SqliteStorage(path)
    try:
        fresh_sm = RecordingStateMachine()
        restarted, cluster2, _ = build(snapshot_delta=3, storage=reopened, sm=fresh_sm)
        assert (restarted.current_term, restarted.voted_for) == (5, 2)
        assert restarted.log.snapshot == stored_snapshot
        assert [e for e in restarted.log.entries_from(4)] == list(log_entries[3:])
        assert (restarted.log.last_index, restarted.log.last_term) == (5, 5)
        assert fresh_sm.snapshots_set == [stored_snapshot]
        assert (fresh_sm.total, fresh_sm.applied) == (6, ops[:3])
        assert restarted.commit_index == restarted.last_applied == 3

        restarted.step(VoteRequest(3, 5, 10, 5))  # a better log, but I voted for 2 in term 5
        assert cluster2.take() == [(3, VoteResponse(1, 5, False))]
        assert (restarted.current_term, restarted.voted_for) == (5, 2)
        restarted.step(VoteRequest(2, 5, 5, 5))  # the candidate I voted for asks again
        assert cluster2.take() == [(2, VoteResponse(1, 5, True))]
        assert (restarted.current_term, restarted.voted_for) == (5, 2)
    finally:
        reopened.close()
    with SqliteStorage(path) as again:
        assert (again.current_term, again.voted_for) == (5, 2)


def test_restart_with_newer_state_machine_snapshot_updates_storage(tmp_path: Path) -> None:
    """SNAP-TAKE / persistence: at start-up a state machine snapshot newer than the stored one becomes the
    stored snapshot and the log is compacted up to it; the state machine is at that snapshot (it is
    either left alone or given that same snapshot, never the older stored one)."""
    path = tmp_path / "newer.sqlite3"
    with SqliteStorage(path) as s:
        s.set_term_and_vote(2, 3)
        s.append(log_of([1, 1, 2, 2, 2, 2]))
        s.save_snapshot(Snapshot(2, 1, (0, ())))
    own = Snapshot(4, 2, (7, ("e1", "e2", "e3", "e4")))
    with SqliteStorage(path) as s:
        sm = RecordingStateMachine(own_snapshot=own)
        replica, _, _ = build(storage=s, sm=sm)
        assert replica.log.snapshot == own
        assert held_entries(s) == log_of([2, 2], first=5)
        assert sm.snapshots_set == [own]
        assert sm.total == 7
        assert replica.commit_index == replica.last_applied == 4
        assert (replica.current_term, replica.voted_for) == (2, 3)
    with SqliteStorage(path) as s:  # durable
        assert s.log.snapshot == own
        assert held_entries(s) == log_of([2, 2], first=5)


def test_restart_with_conflicting_newer_state_machine_snapshot_discards_log(tmp_path: Path) -> None:
    """IS-KEEP at start-up: a newer own snapshot whose term conflicts with the log discards the log."""
    path = tmp_path / "conflict.sqlite3"
    with SqliteStorage(path) as s:
        s.append(log_of([1, 1, 1]))
    own = Snapshot(2, 4, (1, ()))
    with SqliteStorage(path) as s:
        replica, _, sm = build(storage=s, sm=RecordingStateMachine(own_snapshot=own))
        assert (replica.log.base_index, replica.log.last_index, len(replica.log)) == (2, 2, 0)
        assert replica.commit_index == replica.last_applied == 2
        assert sm.snapshots_set == [own]  # started exactly at its own (newer) snapshot, never the older one
    with SqliteStorage(path) as s:
        assert (s.log.snapshot, len(s.log)) == (own, 0)


def test_restart_with_older_or_no_state_machine_snapshot_loads_stored_one(tmp_path: Path) -> None:
    """IS-LOAD at start-up: if the state machine has no snapshot (or an older one), it gets the stored one."""
    path = tmp_path / "older.sqlite3"
    stored = Snapshot(3, 1, (6, ("a", "b", "c")))
    with SqliteStorage(path) as s:
        s.append(log_of([1, 1, 1, 1]))
        s.save_snapshot(stored)
    for own in (None, Snapshot(1, 1, (1, ("a",)))):
        with SqliteStorage(path) as s:
            sm = RecordingStateMachine(own_snapshot=own)
            replica, _, _ = build(storage=s, sm=sm)
            assert sm.snapshots_set == [stored]
            assert sm.total == 6
            assert replica.log.snapshot == stored
            assert held_entries(s) == log_of([1], first=4)
            assert replica.commit_index == replica.last_applied == 3
        with SqliteStorage(path) as s:  # storage not downgraded to the older snapshot
            assert s.log.snapshot == stored


def test_restart_on_memory_storage_keeps_vote(tmp_path: Path) -> None:
    """RV-GRANT / persistence on MemoryStorage (kept across a simulated crash): still one vote per term."""
    storage = MemoryStorage()
    replica, cluster, _ = build(storage=storage)
    replica.step(VoteRequest(2, 5, 0, 0))
    assert cluster.take() == [(2, VoteResponse(1, 5, True))]
    restarted, cluster2, _ = build(storage=storage)
    restarted.step(VoteRequest(3, 5, 0, 0))
    assert cluster2.take() == [(3, VoteResponse(1, 5, False))]
    assert (restarted.current_term, restarted.voted_for) == (5, 2)
