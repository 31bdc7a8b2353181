"""`KVNode`: one replica of a replicated key-value store, served over TCP (`raftlab node`).

One asyncio event loop drives the unchanged sans-I/O `Replica`: `tick()` at `next_deadline`,
`process_messages()` when frames arrived, `process_transitions()` when clients submitted commands,
`read()` once for the reads that arrived, then `TcpCluster.flush()` sends what the replica queued.
Storage is `SqliteStorage` (JSON-encoded, durable before the replica sends anything); the state machine
is `KVStore`. The replica runs with PreVote and CheckQuorum (options of `KVNode`; off in the core).

Clients speak JSON lines on the client port (one request object per line, one reply per line, with
the request's ``id`` echoed, so requests may be pipelined):

- ``{"id": 1, "op": "put", "client": C, "seq": S, "key": K, "value": V}`` (also ``get``, ``delete``,
  ``append``, and ``cas`` with ``expected``): through the log, at most once per (client, seq);
  reply ``{"id": 1, "ok": true, "result": R}``, or ``{"ok": false, "error": "not_leader",
  "leader": "HOST:PORT" | null}``, ``"unknown"`` (removed from this node's log: retry with the same seq),
  ``"timeout"``, ``"bad_request"``, ``"session_expired"`` (with ``message``: the client has no session,
  never registered or expired, so the command was not applied; see below); a leader handing its
  leadership over answers ``not_leader`` too;
- ``{"id": 1, "op": "register", "client": C, "seq": S}``: creates (or refreshes) the session of client C,
  through the log like a command (reply ``{"ok": true, "result": null}``). Bounded sessions (thesis
  §6.3, `KVStore`): the leader stamps each client command it hands to its replica with its wall clock
  (``KVCommand.time_us``) and each register with its `session_timeout`; once a register with a timeout
  is applied, sessions idle longer than it expire on every replica alike (by the clock in the log), and
  a command of a client without a session is answered ``session_expired``, never applied: a client
  registers first, and again after ``session_expired`` if its command cannot have been applied before;
- ``{"id": 1, "op": "read", "key": K}``: a linearizable read without a log write (ReadIndex, thesis
  §6.4; `Replica.read`), served by any node that knows a leader: a follower asks the leader for a read
  index and answers from its own store once it has applied that far. The reads that arrive in one round
  of the driver share one read index (one confirmation round of heartbeats). Reply ``{"ok": true,
  "result": V}``, or ``not_leader`` (no leader known, or it changed before confirming: ask again, the
  hinted leader for instance) or ``timeout``;
- ``{"id": 1, "op": "transfer", "to": N}``: the leader hands its leadership to node N (thesis §3.10;
  `Replica.transfer_leadership`); the reply comes once this node sees N lead, ``{"ok": true, "result":
  {"leader": N, "term": T}}``, or ``not_leader`` (from a follower, with the leader's address),
  ``not_a_peer`` (N is not in the cluster), ``transfer_aborted`` (N did not win within an election
  timeout), ``timeout``;
- ``{"id": 1, "op": "member_add", "node": N, "peer": "HOST:PORT", "client_address": "HOST:PORT",
  "client": C, "seq": S}``: membership change (thesis §4), at the leader. It first commits N's addresses
  as an ordinary command (a put of the reserved key ``__raftlab__/member/N``, at most once per (client,
  seq)), so that every node that appends it (or restarts on a log or snapshot holding it) can reach N;
  then it proposes N as a learner. ``{"op": "member_promote", "node": N}`` makes a learner a voter (the
  leader refuses until N has caught up), ``{"op": "member_remove", "node": N}`` removes a voter or a
  learner (this leader too: it steps down once the change commits, MC-STEPDOWN). Each replies once the
  configuration entry is committed, ``{"ok": true, "result": {"configuration": {"voters": [...],
  "learners": [...], "index": I}, "addresses": {N: {"peer": ..., "client": ...}}}}``, or with
  ``not_leader``, ``not_a_member``, ``already_a_member``, ``last_voter``,
  ``refused`` (``detail``: the core's reason, MC-ONE: an earlier change not committed yet, no entry of
  this term committed yet, a learner not caught up; ask again later), ``timeout``, ``unknown``. Clients
  may not write the reserved keys themselves;
- ``{"op": "status"}``: role, term, leader, indices, the configuration (voters, learners, its index),
  the address book, a leader's match index per peer, the Raft options, reads answered and read indexes
  asked, and the transport's counters (refused frames; and under ``peers``, per peer id, what went out
  to it: frames, bytes, messages, log entries, InstallSnapshot requests, messages dropped);
- ``{"op": "local_get", "key": K}``: this replica's applied value (not linearizable; for tests).

With TLS (`tls`, a `NodeTls`: `raftlab cluster init` writes the files, `raftlab node --tls-dir`), the client
port speaks TLS 1.3 and a client must authenticate: with a certificate from the cluster CA, or, as its
first request, ``{"op": "auth", "token": T}`` (the token of ``tls/client.token``; reply ``{"ok": true}``).
Anything else first is answered ``{"ok": false, "error": "unauthenticated", "message": ...}`` and the
connection is closed. Without TLS the client port is not authenticated: bind it to loopback (the
default) or protect it otherwise (whoever reaches it can change the membership too, as they can write).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ctypes
import json
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from ..core import Configuration, Event, EventKind, LogEntry, MemoryStorage, Replica, Role, Snapshot
from ..core.interfaces import ReadState, TransitionState
from ..machines.kv import OPS, KVCommand, KVStore, SessionExpired
from ..storage import SqliteStorage
from .client import KVError, parse_address
from .codec import SnapshotFile, storage_dumps, storage_loads
from .snapshots import CHUNK_SIZE, SnapshotStreams, read_kv_snapshot, snapshot_names, write_kv_snapshot
from .tls import NodeTls, certificate_name
from .transport import Address, TcpCluster

MAX_REQUEST = 64 * 1024  # bytes in one client request line
REQUEST_TIMEOUT = 5.0  # seconds a client request may wait for its commit
ADMIT_PER_ROUND = 512  # client commands handed to the replica per round of the driver (bounds a round's work)
YIELD_EVERY = 128  # client requests read from one connection before letting the other tasks run
HEARTBEAT = 0.05
ELECTION = (0.5, 1.0)
SNAPSHOT_EVERY = 100_000  # applied entries between snapshots (the log is compacted up to each one; etcd's default)
MAX_INFLIGHT = 64  # AppendEntries in flight to a matching follower: one TCP connection per peer keeps their order
DRIFT_BOUND = 1.1  # with read_lease: the most one node's clock may run faster than another's (the core's default)
DROP_LOG_EVERY = 10.0  # seconds between two log lines about messages dropped for the same reason
MEMBER_PREFIX = "__raftlab__/member/"
"""Keys reserved for the addresses of the members (`member_record`): written by ``member_add`` only."""
_MEMBER_ID = re.compile(r"[0-9]{1,18}")
_MEMBER_OPS = ("member_add", "member_promote", "member_remove")


def member_record(peer: Address, client: Address) -> str:
    """The value of a member's reserved key: its peer and client addresses, as JSON."""
    return json.dumps({"peer": f"{peer[0]}:{peer[1]}", "client": f"{client[0]}:{client[1]}"}, sort_keys=True)


def parse_member_record(key: str, value: Any) -> tuple[int, Address, Address] | None:
    """``(id, peer address, client address)`` from a reserved key and its value; None if it is not one
    (or is malformed: a record is only a hint of where to dial, checked like any input)."""
    if not key.startswith(MEMBER_PREFIX) or not _MEMBER_ID.fullmatch(key[len(MEMBER_PREFIX):]):
        return None
    try:
        record = json.loads(value)
        if type(record) is not dict or set(record) != {"peer", "client"}:
            return None
        return int(key[len(MEMBER_PREFIX):]), parse_address(record["peer"]), parse_address(record["client"])
    except (TypeError, ValueError, AttributeError):
        return None


def _config_json(c: Configuration, index: int) -> dict:
    return {"voters": sorted(c.voters), "learners": sorted(c.learners), "index": index}


class ServedKVStore(KVStore):
    """`KVStore` as a server keeps it: results and abandonments go straight to `on_event` (no
    `MachineEvent`, no subscribers), and `results` and `states` stay empty (a long-running server would
    otherwise keep one entry per command). Its snapshots are files in `folder` (`raftlab.net.snapshots`):
    the data of its `Snapshot`s is a `SnapshotFile`, written and read a line at a time."""

    def __init__(self, on_event: Any, on_read: Callable[[Hashable, ReadState], None] | None = None,
                 session_timeout: float | None = None, *, folder: Path) -> None:
        super().__init__(session_timeout)
        self._on_event = on_event
        self._on_read = on_read
        self.folder = folder  # the snapshot files
        self._configurations: list[Configuration] = []  # proposed membership changes, not yet taken

    def propose(self, configuration: Configuration) -> None:
        """Queue a membership change for the replica (after the commands queued with it: MC-ONE)."""
        self._configurations.append(configuration)

    @property
    def pending_count(self) -> int:
        return len(self._pending) + len(self._configurations)

    def get_pending_transitions(self) -> list[Any]:
        pending: list[Any] = super().get_pending_transitions()
        if self._configurations:
            pending += self._configurations
            self._configurations = []
        return pending

    def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
        """`Replica.read`'s answer: READY (answer from the current state, now) or ABANDONED."""
        if self._on_read is not None:
            self._on_read(read_id, state)

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        if state.final:
            if state is not TransitionState.APPLIED:
                self._on_event("state", transition_id, state, None)
            elif transition_id[0] == "configuration":  # type: ignore[index]  # (ids are tuples)
                self._on_event("applied", transition_id, None, None)  # (apply_transition never sees them)

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        """A snapshot of the current state as a file (synced and renamed into place before it is named)."""
        data = write_kv_snapshot(self.folder, last_included_index, last_included_term, self._state())
        self.snapshot_index = last_included_index
        return Snapshot(last_included_index, last_included_term, data)

    def _restore(self, data: Any) -> None:
        if type(data) is SnapshotFile:  # (else KVData: a snapshot kept in the database by raftlab <= 0.19)
            self._data = {}  # the old state goes first: the new one is read into memory a line at a time
            data = read_kv_snapshot(self.folder / data.name)
        super()._restore(data)
        self.results.clear()  # answers come from the sessions, which the snapshot restored

    def apply_transition(self, transition: KVCommand) -> None:
        result = None if transition == self.NOOP else self._apply(transition)
        self.applied_index += 1
        self._on_event("applied", transition.get_id(), None, result)


def _log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _addr(a: Address | None) -> str | None:
    return None if a is None else f"{a[0]}:{a[1]}"


class KVNode:
    """A `Replica` on `SqliteStorage` with a `KVStore`, a `TcpCluster`, and a client server."""

    def __init__(self, id: int, peers: Mapping[int, Address], key: bytes, data_dir: str | Path,
                 client_addresses: Mapping[int, Address], *, heartbeat: float = HEARTBEAT,
                 election: tuple[float, float] = ELECTION, durable: bool = True, fsync: bool = True,
                 snapshot_every: int = SNAPSHOT_EVERY, pre_vote: bool = True, check_quorum: bool = True,
                 read_lease: bool = False, drift_bound: float = DRIFT_BOUND, learner: bool = False,
                 tls: NodeTls | None = None, session_timeout: float | None = None,
                 snapshot_chunk: int = CHUNK_SIZE) -> None:
        if type(snapshot_every) is not int or snapshot_every < 0:
            raise ValueError(f"snapshot_every must be an int >= 0 (0: never), not {snapshot_every!r}")
        if read_lease and not check_quorum:  # (the replica says so too, but only after files are made)
            raise ValueError("read_lease needs check_quorum: without it a lease proves nothing")
        self.id = id
        self.client_addresses = dict(client_addresses)  # grows as members are added (member records)
        self._refusal: str | None = None  # the reason of the latest membership change the replica refused
        self._refusal_logged: tuple[Any, str] | None = None  # (the change, the reason) logged last
        self._drops: dict[str, tuple[float, int]] = {}  # dropped messages: reason -> (logged at, dropped since)
        self._changes: set[asyncio.Task] = set()  # membership changes under way
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # session_timeout (seconds, None: never expire) goes into the register commands this node proposes
        # as leader; the store applies the log's timeout, so nodes configured differently cannot diverge
        self.store = ServedKVStore(self._on_machine, self._on_read, session_timeout,
                                   folder=self.data_dir / "snapshots")
        self.store.folder.mkdir(exist_ok=True)
        # durable=False (benchmarks only): MemoryStorage, so a restarted node forgets its term and vote
        # fsync=False (--unsafe-no-fsync): survives the crash of the process, not of the machine
        self.storage = (SqliteStorage(self.data_dir / "raft.sqlite3", dumps=storage_dumps, loads=storage_loads,
                                      fsync=fsync) if durable else MemoryStorage())
        self._stopping = False
        self.tls = tls  # None: plain TCP (frames authenticated, not encrypted; clients not authenticated)
        self.cluster = TcpCluster(id, peers, key, wake=self._wakeup, tls=tls)
        # every `snapshot_every` applied entries the KVStore is snapshotted (a file, named in the sqlite file)
        # and the log compacted; a follower that needs compacted entries gets the snapshot instead (§7),
        # streamed in chunks of `snapshot_chunk` bytes
        self.streams = self.cluster.snapshots = SnapshotStreams(
            self.store.folder, id, self.cluster.enqueue, lambda: self.storage.current_term, chunk_size=snapshot_chunk)
        # PreVote and CheckQuorum are on (off in the core): a node cut off and back, or a flaky link, cannot
        # depose a healthy leader, and a leader cut off from a majority steps down within an election timeout
        # (a one-node cluster runs without CheckQuorum, see above)
        # learner: a new server joining the running cluster whose members are `peers` (MC-LEARNER)
        self.replica = Replica(id, [p for p in peers if p != id], self.cluster, self.store, KVStore.NOOP,
                               heartbeat, election, snapshot_every, max_inflight=MAX_INFLIGHT,
                               pre_vote=pre_vote, check_quorum=check_quorum, read_lease=read_lease,
                               drift_bound=drift_bound, learner=learner, storage=self.storage,
                               clock=time.monotonic, observer=self._observe)
        # the addresses of members added since `peers` was written: from the snapshot and the whole log
        # (committed or not: a restarted node must reach its configuration's members to learn what commits)
        self._learn_store()
        self._learn_entries(self.replica.log.entries_from(self.replica.log.base_index + 1))
        self._connect()
        self._snapshot_seen: Snapshot | None = None  # the replica's snapshot when its files were last cleaned
        self._clean_snapshots()
        # transition id, or read id ("read", n) -> waiters [writer or future, request id, answered(, key)]
        self._waiting: dict[Hashable, list[list]] = {}
        self._read_next = 1  # the number of the next read id: the reads arriving now share ("read", n)
        self._read_open = False  # reads wait for ("read", _read_next), to be given to the replica this round
        self.reads_answered = 0  # reads answered from the store (READY)
        self.read_indexes = 0  # read ids given to `Replica.read`
        self._transfers: list[tuple[list, int]] = []  # (waiter, target) of the transfers under way
        self._transfer_aborted = False  # the replica aborted a transfer since the last round (LT-ABORT)
        self._replies: dict[asyncio.Transport, list[str]] = {}  # answers to write after this round, per client
        self._admission: deque[KVCommand] = deque()  # accepted client commands not yet given to the replica
        self._expiry: deque[tuple[float, Hashable, list]] = deque()  # in deadline order
        self._clients: set[_Client] = set()  # connected clients
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future | None = None  # set when run() must return
        self._scheduled = False  # a round is due (call_soon'd)
        self._timer: asyncio.TimerHandle | None = None  # wakes the next round at the replica's next deadline
        self._timer_at = 0.0
        _log(f"node {id}: started at term {self.storage.current_term} with {self.storage.log.last_index} "
             f"log entries, {self.storage.log.base_index} of them in a snapshot (voted for {self.storage.voted_for}); "
             f"peers {_fmt(peers)}; clients on "
             f"{_addr(self.client_addresses[id])}; configuration {self.replica.configuration}"
             + (" (joining as a learner)" if learner else ""))

    # ----- the replica's observer and the state machine's events ------------------------------------
    def _observe(self, event: Event) -> None:
        d = event.details
        if event.kind == EventKind.APPENDED:  # (the most frequent event: first)
            replica = getattr(self, "replica", None)
            if replica is not None and self._learn_entries(
                    replica.log.entry(i) for i in range(d["first"], d["last"] + 1)):
                self._connect()
        elif event.kind == EventKind.CONFIGURATION_CHANGED:
            self._connect()
            state = ("a voter" if self.id in d["voters"] else "a learner" if self.id in d["learners"]
                     else "not a member (removed)")
            _log(f"node {self.id}: configuration voters {d['voters']} learners {d['learners']} (entry {d['index']}, "
                 f"{event.rule}); this node is {state}")
        elif event.kind == EventKind.CONFIG_REFUSED:
            refusal = str(d.get("why"))
            if (d.get("configuration"), refusal) != self._refusal_logged:  # (a client asks again and again)
                _log(f"node {self.id}: refused the configuration change to {d.get('configuration')}: {refusal} "
                     f"({event.rule})")
            self._refusal, self._refusal_logged = refusal, (d.get("configuration"), refusal)
        elif event.kind == EventKind.BECAME_LEADER:
            _log(f"node {self.id}: became LEADER of term {event.term} ({event.rule}: votes from {d.get('votes')}, "
                 f"a majority)")
        elif event.kind == EventKind.BECAME_CANDIDATE:
            replica = getattr(self, "replica", None)  # (None while the replica is being built)
            transfer = event.rule == "LT-TIMEOUTNOW" or getattr(replica, "transfer_election", False)
            why = ("TimeoutNow: the leader hands its leadership over" if transfer
                   else "election timeout, no leader heard from")
            _log(f"node {self.id}: became candidate for term {event.term} ({event.rule}: {why})")
        elif event.kind == EventKind.BECAME_FOLLOWER:
            _log(f"node {self.id}: became follower in term {event.term} ({event.rule}: {d.get('why')})")
        elif event.kind == EventKind.TRUNCATED:
            _log(f"node {self.id}: truncated {d.get('count')} entries from {d.get('first')} ({event.rule})")
        elif event.kind == EventKind.SNAPSHOT_INSTALLED:
            _log(f"node {self.id}: installed the snapshot of leader {d.get('leader')} up to index {d.get('index')} "
                 f"({event.rule})")
            if self._learn_store():
                self._connect()
        elif event.kind == EventKind.MESSAGE_DROPPED:
            self._log_drop(str(d.get("why")))
        elif event.kind == EventKind.TRANSFER_STARTED:
            _log(f"node {self.id}: transferring the leadership to node {d.get('to')} ({event.rule})")
        elif event.kind == EventKind.TIMEOUT_NOW_SENT:
            _log(f"node {self.id}: node {d.get('to')} holds the whole log: told it to stand now ({event.rule})")
        elif event.kind == EventKind.TRANSFER_ABORTED:
            self._transfer_aborted = True
            _log(f"node {self.id}: transfer to node {d.get('to')} aborted: it did not win within an election "
                 f"timeout ({event.rule})")

    def _log_drop(self, why: str) -> None:
        """Log a message the replica dropped, each reason at most every DROP_LOG_EVERY seconds (a removed
        server that was not told keeps asking for votes; with CheckQuorum, on by default, they are ignored
        while a leader is heard: CQ-STICKY)."""
        now = time.monotonic()
        last, more = self._drops.get(why, (-DROP_LOG_EVERY, 0))
        if now - last < DROP_LOG_EVERY:
            self._drops[why] = (last, more + 1)
            return
        if len(self._drops) > 100:
            self._drops.clear()
        self._drops[why] = (now, 0)
        _log(f"node {self.id}: replica dropped a message: {why}"
             + (f" ({more} more for this reason in the last {now - last:.0f} s)" if more else ""))

    # ----- the members' addresses (member records) ----------------------------------------------------
    def _connect(self) -> None:
        """Keep connections to the members of the latest configuration and of the one before it, the
        replica's known senders (MC-LATEST): a leader that removed itself still needs its followers'
        answers until that change commits."""
        r = getattr(self, "replica", None)
        if r is None:
            return  # (the replica is being built: `__init__` connects once it is)
        found = [c for _, c in r.log.configurations()] + [r.initial_configuration] * 2
        self.cluster.connect(set(r.peer_ids) | found[0].members | found[1].members)

    def _learn(self, key: str, value: Any) -> bool:
        """Take the addresses of a member record (a put of a reserved key); True if any was new."""
        found = parse_member_record(key, value)
        if found is None:
            _log(f"node {self.id}: ignored a malformed member record {key[:60]!r}")
            return False
        ident, peer, client = found
        if ident == self.id or (self.cluster.peers.get(ident) == peer and self.client_addresses.get(ident) == client):
            return False  # (this node's own addresses are its options)
        self.cluster.set_address(ident, peer)
        self.client_addresses[ident] = client
        _log(f"node {self.id}: node {ident} is at {_addr(peer)} (clients {_addr(client)})")
        return True

    def _learn_entries(self, entries: Iterable[LogEntry]) -> bool:
        """Learn from the member records among log `entries` (appended, or held at start-up)."""
        learned = False
        for entry in entries:
            t = entry.transition
            if type(t) is KVCommand and t.op == "put" and t.key.startswith(MEMBER_PREFIX):
                learned = self._learn(t.key, t.value) or learned
        return learned

    def _learn_store(self) -> bool:
        """Learn from the member records in the store (restored from a snapshot)."""
        learned = False
        for key, value in [(k, v) for k, v in self.store.data.items() if k.startswith(MEMBER_PREFIX)]:
            learned = self._learn(key, value) or learned
        return learned

    def _on_machine(self, kind: str, transition_id: Hashable | None, state: TransitionState | None,
                    result: Any) -> None:
        if transition_id not in self._waiting:
            return
        if kind == "applied":
            if type(result) is SessionExpired:  # not applied: the client has no session (KVStore)
                reply = _session_expired(transition_id)
            else:
                reply = {"ok": True, "result": result}
        elif kind == "state" and state is not None and state.final:  # the client retries with the same seq
            why = {TransitionState.ABANDONED_NOT_LEADER: "not_leader", TransitionState.UNKNOWN: "unknown",
                   TransitionState.ABANDONED_REFUSED: "refused"}.get(state, "abandoned")
            reply = {"ok": False, "error": why, "leader": self._leader_hint()}
            if state is TransitionState.ABANDONED_REFUSED:  # a membership change (MC-ONE): the core's reason
                reply["detail"] = self._refusal
        else:
            return
        for waiter in self._waiting.pop(transition_id, ()):
            self._answer(waiter, reply)

    def _on_read(self, read_id: Hashable, state: ReadState) -> None:
        """The replica's answer to the reads of `read_id`: READY, so answer each from the store now."""
        waiters = self._waiting.pop(read_id, ())
        if state is ReadState.READY:
            read = self.store.read
            for waiter in waiters:
                if not waiter[2]:
                    self.reads_answered += 1
                    self._answer(waiter, {"ok": True, "result": read(waiter[3])})
        else:  # no leader confirmed it: the client asks again (the leader it is told of, if any)
            reply = {"ok": False, "error": "not_leader", "leader": self._leader_hint()}
            for waiter in waiters:
                self._answer(waiter, reply)

    def _answer(self, waiter: list, reply: dict) -> None:
        sink, rid, answered = waiter[0], waiter[1], waiter[2]
        if not answered:
            waiter[2] = True
            if isinstance(sink, asyncio.Future):  # from `execute`
                if not sink.done():
                    sink.set_result(reply)
            else:
                self._replies.setdefault(sink, []).append(json.dumps({**reply, "id": rid}))

    def _send_replies(self) -> None:
        """Write the replies gathered in this round: one write per client connection."""
        replies, self._replies = self._replies, {}
        for writer, lines in replies.items():
            if not writer.is_closing():
                lines.append("")
                writer.write("\n".join(lines).encode())

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, tid, waiter = expiry.popleft()
            if not waiter[2]:
                self._answer(waiter, {"ok": False, "error": "timeout", "leader": self._leader_hint()})
                waiting = self._waiting.get(tid)
                if waiting is not None:
                    waiting.remove(waiter)
                    if not waiting:
                        del self._waiting[tid]

    # ----- the driver ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until `stop()` (or SIGTERM/SIGINT); raises what stopped the replica, if it failed."""
        loop = self._loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await self.cluster.start()
        host, port = self.client_addresses[self.id]
        tls = None if self.tls is None else self.tls.client_server
        server = await loop.create_server(lambda: _Client(self), host, port, reuse_address=True, ssl=tls,
                                          ssl_handshake_timeout=None if tls is None else 5.0)
        try:
            self._wakeup()
            await self._done
        finally:
            self._stopping = True
            if self._timer is not None:
                self._timer.cancel()
            server.close()
            for client in list(self._clients):
                client.transport.abort()
            await self.cluster.close()
            self.streams.close()
            if isinstance(self.storage, SqliteStorage):
                self.storage.close()
            _log(f"node {self.id}: stopped")

    def _clean_snapshots(self) -> None:
        """Delete the snapshot files the replica no longer holds (an open file being sent stays readable)."""
        self._snapshot_seen = snapshot = self.replica.log.snapshot
        keep = {snapshot.data.name} if snapshot is not None and type(snapshot.data) is SnapshotFile else set()
        for name in snapshot_names(self.store.folder):
            if name not in keep:
                (self.store.folder / name).unlink(missing_ok=True)
        for leftover in self.store.folder.glob("*.tmp"):
            leftover.unlink(missing_ok=True)

    def stop(self) -> None:
        """Ask `run` to return."""
        self._stopping = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _wakeup(self) -> None:
        """Run a round soon (once, however many times this is called before it runs)."""
        if not self._scheduled and not self._stopping and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._round)

    def _round(self) -> None:
        """One round of the replica: everything that arrived since the last round, in one go, then one
        frame per peer and one write per client. A failure of the replica (fail-stop) ends `run`."""
        self._scheduled = False
        if self._stopping:
            return
        replica, store = self.replica, self.store
        try:
            replica.tick()
            if self.cluster.has_messages:
                replica.process_messages()
            if self._admission:
                self._admit()
            if store.pending_count:
                replica.process_transitions()
            if self._read_open:  # one read index for every read that arrived since the last round
                self._read_open = False
                read_id = ("read", self._read_next)
                self._read_next += 1
                self.read_indexes += 1
                replica.read(read_id)
            self.streams.poll()
            self.cluster.flush()
            if replica.log.snapshot is not self._snapshot_seen:
                self._clean_snapshots()
            if self._transfers:
                self._check_transfers()
            now = time.monotonic()
            self._expire(now)
            if self._replies:
                self._send_replies()
        except Exception as error:
            if self._done is not None and not self._done.done():
                self._done.set_exception(error)
            return
        if self._admission:
            self._wakeup()
            return
        deadline = min(replica.next_deadline, now + 0.5)
        if self._timer is None or deadline < self._timer_at:  # a later deadline: the armed timer wakes early, harmless
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            assert self._loop is not None  # a round runs only when `_wakeup` scheduled it on the loop
            self._timer = self._loop.call_later(max(deadline - now, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wakeup()

    # ----- clients ------------------------------------------------------------------------------------
    def _request(self, line: bytes, writer: asyncio.Transport) -> None:
        rid = None
        try:
            request = json.loads(line.decode())
            if type(request) is not dict:
                raise ValueError("a request is a JSON object")
            rid = request.get("id")
            reply = self._handle(request, writer, rid)
        except (ValueError, TypeError, RecursionError) as error:
            reply = {"ok": False, "error": "bad_request", "detail": str(error)[:200]}
        if reply is not None:
            reply["id"] = rid
            writer.write(json.dumps(reply).encode() + b"\n")

    def _leader_hint(self) -> str | None:
        leader = self.replica.leader_id
        return None if leader is None or leader == self.id else _addr(self.client_addresses.get(leader))

    def addresses(self) -> dict[str, dict[str, str | None]]:
        """The address book: every node this one knows of (members, and servers that were), by id."""
        ids = sorted({self.id, *self.cluster.peers, *self.client_addresses})
        return {str(i): {"peer": _addr(self.cluster.address if i == self.id else self.cluster.peers.get(i)),
                         "client": _addr(self.client_addresses.get(i))} for i in ids}

    def status(self) -> dict:
        r = self.replica
        c = r.configuration
        member = "voter" if self.id in c.voters else "learner" if self.id in c.learners else "removed"
        return {"id": self.id, "role": r.role.value, "term": r.current_term, "leader": r.leader_id,
                "configuration": _config_json(c, r.config_index), "member": member,
                "addresses": self.addresses(),
                "match_index": ({str(p): r.match_index.get(p, 0) for p in r.peer_ids}
                                if r.role is Role.LEADER else None),
                "last_index": r.log.last_index, "snapshot_index": r.log.base_index, "log_entries": len(r.log),
                "commit_index": r.commit_index, "last_applied": r.last_applied,
                "keys": len(self.store.data), "sessions": len(self.store.sessions),
                "session_timeout": self.store.session_timeout, "replica_dropped": r.stats.dropped,
                "pre_vote": r.pre_vote, "check_quorum": r.check_quorum, "read_lease": r.read_lease,
                "transfer_to": r.transfer_to if r.role is Role.LEADER else None, "reads_answered": self.reads_answered,
                "read_indexes": self.read_indexes,
                "snapshots": {**self.streams.stats.as_dict(), "chunk_size": self.streams.chunk_size,
                              "sending": {str(p): {"acknowledged": a, "size": n}
                                          for p, (a, n) in self.streams.sending.items()}},
                **self.cluster.stats.as_dict()}

    def _handle(self, request: dict, writer: asyncio.Transport, rid: Any) -> dict | None:
        """The reply to `request`, or None if it will come once its command is applied (or abandoned)."""
        op = request.get("op")
        if op == "status":
            return {"ok": True, "result": self.status()}
        if op == "local_get":
            key = request.get("key")
            if type(key) is not str:
                raise ValueError("key must be a string")
            return {"ok": True, "result": self.store.read(key)}
        if op == "read":
            key = request.get("key")
            if type(key) is not str:
                raise ValueError("key must be a string")
            return self._enqueue_read(key, writer, rid)
        if op == "transfer":
            return self._transfer(request.get("to"), writer, rid)
        if op in _MEMBER_OPS:
            return self._member_request(op, request, writer, rid)
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}")
        client, seq = _session(request)
        untrusted_key: Any = request.get("key", "" if op == "register" else None)  # KVCommand checks every field
        command = KVCommand(client, seq, op, untrusted_key, request.get("value"), request.get("expected"))
        if op != "get" and command.key.startswith(MEMBER_PREFIX):
            raise ValueError(f"keys starting with {MEMBER_PREFIX!r} are reserved for the members' addresses")
        return self._enqueue(command, writer, rid)

    def _enqueue(self, command: KVCommand, sink: asyncio.Transport | asyncio.Future, rid: Any) -> dict | None:
        if self.replica.role is not Role.LEADER or self.replica.transfer_to is not None:  # LT-STOP
            return {"ok": False, "error": "not_leader", "leader": self._leader_hint()}
        waiter = [sink, rid, False]  # answered once: applied, abandoned, or timed out
        tid = command.get_id()
        self._waiting.setdefault(tid, []).append(waiter)
        self._expiry.append((time.monotonic() + REQUEST_TIMEOUT, tid, waiter))
        self._admission.append(command)
        self._wakeup()
        return None

    def _enqueue_read(self, key: str, sink: asyncio.Transport | asyncio.Future, rid: Any) -> dict | None:
        """Wait for the next read id: given to the replica at the end of this round, with the other reads
        that arrived meanwhile; answered in `_on_read`, or by `_expire`."""
        if not self.replica.heard_from_leader():  # no leader to confirm it (an election is under way), or
            # one silent for an election timeout (its reads would only time out): the client asks elsewhere
            return {"ok": False, "error": "not_leader", "leader": self._leader_hint()}
        waiter = [sink, rid, False, key]
        read_id = ("read", self._read_next)
        self._waiting.setdefault(read_id, []).append(waiter)
        self._expiry.append((time.monotonic() + REQUEST_TIMEOUT, read_id, waiter))
        self._read_open = True
        self._wakeup()
        return None

    def _transfer(self, to: Any, sink: asyncio.Transport | asyncio.Future, rid: Any) -> dict | None:
        """Start handing the leadership to node `to`; the reply waits for `_check_transfers`."""
        voters = self.replica.configuration.voters
        if type(to) is not int or to not in voters:
            return {"ok": False, "error": "not_a_peer",
                    "detail": f"{to!r} is not a node of this cluster, or not a voter (voters {sorted(voters)})"}
        replica = self.replica
        if replica.role is not Role.LEADER:
            return {"ok": False, "error": "not_leader", "leader": self._leader_hint()}
        if to == self.id:
            return {"ok": True, "result": {"leader": to, "term": replica.current_term}}
        replica.transfer_leadership(to)  # (cannot raise: `to` is a peer and this node leads)
        waiter = [sink, rid, False]
        self._transfers.append((waiter, to))
        self._expiry.append((time.monotonic() + REQUEST_TIMEOUT, None, waiter))
        self._transfer_aborted = False
        self._wakeup()
        return None

    def _check_transfers(self) -> None:
        """Answer the transfers that ended: the target leads (as far as this node knows), or the leader
        aborted the transfer (LT-ABORT), or another node won the election."""
        replica, aborted = self.replica, self._transfer_aborted
        self._transfer_aborted = False
        waiting = []
        for waiter, to in self._transfers:
            leader = replica.leader_id
            if waiter[2]:  # timed out
                continue
            if leader == to:
                self._answer(waiter, {"ok": True, "result": {"leader": to, "term": replica.current_term}})
            elif aborted or (replica.role is Role.LEADER and replica.transfer_to != to):
                self._answer(waiter, {"ok": False, "error": "transfer_aborted", "leader": None,
                                      "detail": f"node {to} did not win an election within an election timeout"})
            elif leader is not None and leader != self.id:
                self._answer(waiter, {"ok": False, "error": "transfer_aborted", "leader": self._leader_hint(),
                                      "detail": f"node {leader} won the election, not node {to}"})
            else:
                waiting.append((waiter, to))
        self._transfers = waiting

    # ----- membership change ------------------------------------------------------------------------
    def _member_request(self, op: str, request: dict, writer: asyncio.Transport, rid: Any) -> dict | None:
        """Start a membership change (`_change`); its reply is written when it ends."""
        node = request.get("node")
        if type(node) is not int or not 0 <= node < 10**18:
            raise ValueError("node must be an int in [0, 10**18)")
        record = None
        refused = self._check_change(op, node)
        if op == "member_add":
            peer, client = request.get("peer"), request.get("client_address")
            if type(peer) is not str or type(client) is not str:
                raise ValueError("member_add needs peer and client_address, HOST:PORT strings")
            addresses = parse_address(peer), parse_address(client)
            record = KVCommand(*_session(request), "put", f"{MEMBER_PREFIX}{node}", member_record(*addresses))
            known = (self.cluster.peers.get(node), self.client_addresses.get(node))
            if refused is None and node in self.replica.configuration.learners and known != addresses:
                # (a member moves only by being removed and added again: an unauthenticated client must not
                # redirect the leader's connections to a member)
                refused = {"ok": False, "error": "already_a_member", "leader": None,
                           "detail": f"node {node} is a learner already, at {_addr(known[0])} (clients "
                                     f"{_addr(known[1])}): remove it first to move it"}
        if refused is not None:
            return refused
        assert self._loop is not None  # (requests arrive once `run` serves)

        def answer(task: asyncio.Task) -> None:
            if task.cancelled() or task.exception() is not None:
                if not task.cancelled():
                    _log(f"node {self.id}: {op} of node {node} failed: {task.exception()!r}")
                reply = {"ok": False, "error": "stopped", "leader": None}
            else:
                reply = task.result()
            if not writer.is_closing():
                writer.write(json.dumps({**reply, "id": rid}).encode() + b"\n")

        task = self._loop.create_task(self._change(op, node, record))
        self._changes.add(task)  # (a reference, or the task may be collected before it ends)
        task.add_done_callback(self._changes.discard)
        task.add_done_callback(answer)
        return None

    def _check_change(self, op: str, node: int) -> dict | None:
        """The reply refusing the change now, or None if the leader may propose it."""
        replica = self.replica
        if replica.role is not Role.LEADER or replica.transfer_to is not None or self._stopping:
            return {"ok": False, "error": "not_leader", "leader": self._leader_hint()}
        c = replica.configuration
        error = None
        if op == "member_add" and node in c.voters:
            error, detail = "already_a_member", f"node {node} is a voter already"
        elif op == "member_promote" and node not in c.members:
            error, detail = "not_a_member", f"node {node} is not a member: add it first"
        elif op == "member_remove" and node not in c.members:
            error, detail = "not_a_member", f"node {node} is not a member"
        elif op == "member_remove" and c.voters == {node}:
            error, detail = "last_voter", f"node {node} is the only voter: a cluster needs one"
        if error is None:
            return None
        return {"ok": False, "error": error, "detail": detail, "configuration": _config_json(c, replica.config_index)}

    def _new_configuration(self, op: str, node: int) -> Configuration:
        c = self.replica.configuration
        if op == "member_add":
            return Configuration.of(c.voters, c.learners | {node})
        if op == "member_promote":
            return Configuration.of(c.voters | {node}, c.learners - {node})
        return Configuration.of(c.voters - {node}, c.learners - {node})

    async def _change(self, op: str, node: int, record: KVCommand | None) -> dict:
        """Commit `record` (a new member's addresses) if any, then the configuration `op` makes of the
        leader's latest one; the reply once it is committed (or why not)."""
        if record is not None:
            reply = await self.submit(record)
            if not reply["ok"]:
                return reply
            refused = self._check_change(op, node)  # (this node may have lost its leadership meanwhile)
            if refused is not None:
                return refused
        new, r = self._new_configuration(op, node), self.replica
        if new == r.configuration and r.config_index > r.commit_index:  # asked again before it committed
            return {"ok": False, "error": "refused", "leader": None,
                    "detail": "an earlier configuration change is not committed yet"}
        if new != r.configuration:  # (unchanged: asked again after it was done, say)
            assert self._loop is not None
            future = self._loop.create_future()
            waiter = [future, None, False]
            tid = new.get_id()
            self._waiting.setdefault(tid, []).append(waiter)
            self._expiry.append((time.monotonic() + REQUEST_TIMEOUT, tid, waiter))
            self.store.propose(new)
            self._wakeup()
            reply = await future
            if not reply["ok"]:
                return reply
        return {"ok": True, "result": {"configuration": _config_json(r.configuration, r.config_index),
                                       "addresses": self.addresses()}}

    def submit(self, command: KVCommand) -> asyncio.Future:
        """Hand `command` to the log from this node's own event loop (embedding the node: no client hop).
        Returns a future of its reply, a dict as a client gets it: ``{"ok": True, "result": R}`` once
        applied, or ``{"ok": False, "error": "not_leader" | "unknown" | "abandoned" | "timeout", "leader": ...}``
        (unknown: the entry was removed from this node's log and may still commit elsewhere: retry it
        with the same seq, which the store's session applies at most once)."""
        if self._loop is None or self._stopping:
            raise KVError("the node is not running")
        future = self._loop.create_future()
        reply = self._enqueue(command, future, None)
        if reply is not None:
            future.set_result(reply)
        return future

    async def execute(self, command: KVCommand) -> Any:
        """`submit` `command` and return its result once applied; `KVError` if this node is not the
        leader, the command was abandoned, or it was not applied within REQUEST_TIMEOUT seconds."""
        reply = await self.submit(command)
        if not reply["ok"]:
            raise KVError(f"{reply['error']} (leader: {reply.get('leader')})")
        return reply["result"]

    def submit_read(self, key: str) -> asyncio.Future:
        """A linearizable read of `key` without a log write (ReadIndex), from this node's own event loop.
        Returns a future of its reply: ``{"ok": True, "result": V}``, or ``{"ok": False, "error":
        "not_leader" | "timeout", "leader": ...}``."""
        if self._loop is None or self._stopping:
            raise KVError("the node is not running")
        future = self._loop.create_future()
        reply = self._enqueue_read(key, future, None)
        if reply is not None:
            future.set_result(reply)
        return future

    async def read(self, key: str) -> str | None:
        """`submit_read` `key` and return its value; `KVError` if no leader confirmed the read in time."""
        reply = await self.submit_read(key)
        if not reply["ok"]:
            raise KVError(f"{reply['error']} (leader: {reply.get('leader')})")
        return reply["result"]

    def _admit(self) -> None:
        """Hand at most ADMIT_PER_ROUND queued commands to the state machine (the rest wait a round),
        so that a burst of clients cannot stall heartbeats for longer than one bounded round."""
        queue, submit, stamp = self._admission, self.store.submit, self.store.stamp
        now_us = time.time_ns() // 1000  # the leader's wall clock, carried in the log (bounded sessions)
        for _ in range(min(len(queue), ADMIT_PER_ROUND)):
            submit(stamp(queue.popleft(), now_us))


class _Client(asyncio.Protocol):
    """One client connection: JSON request lines in, reply lines out. At most YIELD_EVERY requests are
    taken per turn of the event loop; a client that does not read its replies is not read either."""

    def __init__(self, node: KVNode) -> None:
        self.node = node
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self._buffer = bytearray()
        self._paused = False  # reading paused by us: lines are still buffered
        self._blocked = False  # reading paused because the client does not read its replies
        self.authenticated = node.tls is None  # with TLS: by a certificate of the cluster CA, or the token

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not asyncio.Transport subclasses)
        self.node._clients.add(self)
        if not self.authenticated and certificate_name(self.transport) is not None:  # verified by the CA
            self.authenticated = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.node._clients.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def _serve(self) -> None:
        buffer, transport = self._buffer, self.transport
        if transport.is_closing():
            return
        start = 0
        for _ in range(YIELD_EVERY):
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end - start > MAX_REQUEST:
                break
            if not self.authenticated:
                if not self._authenticate(bytes(buffer[start:end + 1])):
                    return
            else:
                self.node._request(bytes(buffer[start:end + 1]), transport)
            start = end + 1
        del buffer[:start]
        end = buffer.find(b"\n")
        if (end < 0 and len(buffer) > MAX_REQUEST) or end > MAX_REQUEST:
            transport.write(_reply(None, False, error="bad_request", detail="request line too long"))
            transport.close()
        elif end >= 0:  # more complete lines: take them on the next turn, reading nothing meanwhile
            if not self._paused:
                self._paused = True
                self._pause()
            asyncio.get_running_loop().call_soon(self._serve)
        elif self._paused:
            self._paused = False
            self._resume()

    def _authenticate(self, line: bytes) -> bool:
        """The first request of a client without a certificate: the token, or the connection is closed."""
        rid: Any = None
        with contextlib.suppress(ValueError, RecursionError):
            request = json.loads(line.decode())
            if type(request) is dict:
                rid = request.get("id")
                if request.get("op") == "auth" and self.node.tls is not None \
                        and self.node.tls.token_ok(request.get("token")):
                    self.authenticated = True
                    self.transport.write(_reply(rid, True))
                    return True
        self.transport.write(_reply(rid, False, error="unauthenticated", message=(
            "this node requires a client certificate from the cluster's CA or its client token: send "
            '{"op": "auth", "token": ...} first (raftlab kv --tls-dir DIR does; DIR/tls/client.token)')))
        self.transport.close()
        return False

    def pause_writing(self) -> None:  # the client is not reading its replies
        self._blocked = True
        self._pause()

    def resume_writing(self) -> None:
        self._blocked = False
        self._resume()

    def _pause(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self) -> None:
        if not self._paused and not self._blocked and not self.transport.is_closing():
            self.transport.resume_reading()


def _session(request: dict) -> tuple[int, int]:
    """A request's (client, seq): at most once per pair (the store's sessions)."""
    client, seq = request.get("client"), request.get("seq")
    if type(client) is not int or not 0 <= client < 2**63 or type(seq) is not int or not 0 <= seq < 2**63:
        raise ValueError("client and seq must be ints in [0, 2**63)")
    return client, seq


def _session_expired(transition_id: Any) -> dict:
    """The reply to a command refused for want of a session (`SessionExpired`)."""
    client, seq = transition_id
    return {"ok": False, "error": "session_expired", "leader": None, "message": (
        f"client {client} has no session (it never registered, or it was idle longer than the session timeout): "
        f"command {seq} was not applied now. Register again ({{\"op\": \"register\"}} with a new seq) before "
        "new commands; if an earlier attempt of this command got no answer, it may have been applied before the "
        "session expired, and its outcome is unknown: read the state before doing it again")}


def _reply(rid: Any, ok: bool, **fields: Any) -> bytes:
    return json.dumps({"id": rid, "ok": ok, **fields}).encode() + b"\n"


def _fmt(peers: Mapping[int, Address]) -> str:
    return ",".join(f"{i}={h}:{p}" for i, (h, p) in sorted(peers.items()))


def tune_gc() -> None:
    """Let CPython's cyclic garbage collector run rarely, for a node's own process (`run_node`; an
    embedding program decides for itself). A node holds many long-lived objects (log entries, sessions,
    waiters) and makes few cycles; the default thresholds (700, 10, 10) rescan them over and over:
    measured under load, the leader's CPU per write grew by half within a minute."""
    gc.freeze()  # what exists at start-up is never scanned again
    gc.set_threshold(50_000, 20, 100)


def tune_malloc() -> None:
    """Keep glibc's allocator from holding on to freed memory, for a node's own process (`run_node`). By
    default glibc raises its mmap threshold to the largest buffer freed so far (a frame, a snapshot chunk:
    megabytes) and keeps up to twice that of free heap resident, so a node's memory stays megabytes above
    what it holds. Fixing the threshold at glibc's default (128 KiB) turns that off: large buffers are
    mapped, and unmapped when freed. Nothing happens on another C library."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (fixed: no dynamic adjustment)
    mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD


def event_loop_runner(loop: str = "auto") -> Callable[[Coroutine[Any, Any, None]], None]:
    """`asyncio.run`, or `uvloop.run` (a faster event loop, ``pip install 'raftlab[net]'``): "auto" takes
    uvloop if it is installed; "uvloop" requires it; "asyncio" never uses it."""
    if loop not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"loop must be 'auto', 'uvloop' or 'asyncio', not {loop!r}")
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise ValueError("loop: uvloop is not installed (pip install 'raftlab[net]')") from None
        else:
            return uvloop.run
    return asyncio.run


def run_node(id: int, peers: Mapping[int, Address], key: bytes, data_dir: str | Path,
             client_addresses: Mapping[int, Address], *, loop: str = "auto", **options: Any) -> int:
    """Run a node until SIGTERM/SIGINT; returns the exit status (1 if the replica stopped on an error).
    `loop` chooses the event loop (see `event_loop_runner`); `options` go to `KVNode`."""
    runner = event_loop_runner(loop)

    async def main() -> None:
        node = KVNode(id, peers, key, data_dir, client_addresses, **options)
        tune_gc()
        tune_malloc()
        _log(f"node {id}: event loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}")
        await node.run()

    try:
        runner(main())
    except Exception as error:  # the replica stopped (fail-stop): say why, exit non-zero
        _log(f"node {id}: FAILED: {error!r}")
        return 1
    return 0
