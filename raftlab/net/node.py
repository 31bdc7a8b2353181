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
  ``"timeout"``, ``"bad_request"``; a leader handing its leadership over answers ``not_leader`` too;
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
- ``{"op": "status"}``: role, term, leader, indices, the Raft options, reads answered and read indexes
  asked, and the transport's counters (refused frames; and under ``peers``, per peer id, what went out
  to it: frames, bytes, messages, log entries, InstallSnapshot requests, messages dropped);
- ``{"op": "local_get", "key": K}``: this replica's applied value (not linearizable; for tests).

The client port is not authenticated: bind it to loopback (the default) or protect it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Hashable, Mapping
from pathlib import Path
from typing import Any, cast

from ..core import Event, EventKind, MemoryStorage, Replica, Role
from ..core.interfaces import ReadState, TransitionState
from ..machines.kv import OPS, KVCommand, KVStore
from .client import KVError
from ..storage import SqliteStorage
from .codec import storage_dumps, storage_loads
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


class ServedKVStore(KVStore):
    """`KVStore` as a server keeps it: results and abandonments go straight to `on_event` (no
    `MachineEvent`, no subscribers), and `results` and `states` stay empty (a long-running server would
    otherwise keep one entry per command)."""

    def __init__(self, on_event: Any, on_read: Callable[[Hashable, ReadState], None] | None = None) -> None:
        super().__init__()
        self._on_event = on_event
        self._on_read = on_read

    def register_read_state(self, read_id: Hashable, state: ReadState) -> None:
        """`Replica.read`'s answer: READY (answer from the current state, now) or ABANDONED."""
        if self._on_read is not None:
            self._on_read(read_id, state)

    def register_transition_state(self, transition_id: Hashable, state: TransitionState) -> None:
        if state.final and state is not TransitionState.APPLIED:  # applied: told by apply_transition
            self._on_event("state", transition_id, state, None)

    def _restore(self, data: Any) -> None:
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
                 read_lease: bool = False, drift_bound: float = DRIFT_BOUND) -> None:
        if type(snapshot_every) is not int or snapshot_every < 0:
            raise ValueError(f"snapshot_every must be an int >= 0 (0: never), not {snapshot_every!r}")
        if read_lease and not check_quorum:  # (the replica says so too, but only after files are made)
            raise ValueError("read_lease needs check_quorum: without it a lease proves nothing")
        self.id = id
        self.member_ids = frozenset(peers)  # every node of the cluster, this one included
        self.client_addresses = dict(client_addresses)
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = ServedKVStore(self._on_machine, self._on_read)
        # durable=False (benchmarks only): MemoryStorage, so a restarted node forgets its term and vote
        # fsync=False (--unsafe-no-fsync): survives the crash of the process, not of the machine
        self.storage = (SqliteStorage(self.data_dir / "raft.sqlite3", dumps=storage_dumps, loads=storage_loads,
                                      fsync=fsync) if durable else MemoryStorage())
        self._stopping = False
        self.cluster = TcpCluster(id, peers, key, wake=self._wakeup)
        # every `snapshot_every` applied entries the KVStore is snapshotted (JSON, in the same sqlite file)
        # and the log compacted; a follower that needs compacted entries gets the snapshot instead (§7).
        # PreVote and CheckQuorum are on (off in the core): a node cut off and back, or a flaky link, cannot
        # depose a healthy leader, and a leader cut off from a majority steps down within an election timeout
        # (a one-node cluster runs without CheckQuorum, see above)
        self.replica = Replica(id, [p for p in peers if p != id], self.cluster, self.store, KVStore.NOOP,
                               heartbeat, election, snapshot_every, max_inflight=MAX_INFLIGHT,
                               pre_vote=pre_vote, check_quorum=check_quorum, read_lease=read_lease,
                               drift_bound=drift_bound, storage=self.storage, clock=time.monotonic,
                               observer=self._observe)
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
             f"{_addr(self.client_addresses[id])}")

    # ----- the replica's observer and the state machine's events ------------------------------------
    def _observe(self, event: Event) -> None:
        d = event.details
        if event.kind == EventKind.BECAME_LEADER:
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
        elif event.kind == EventKind.MESSAGE_DROPPED:
            _log(f"node {self.id}: replica dropped a message: {d.get('why')}")
        elif event.kind == EventKind.TRANSFER_STARTED:
            _log(f"node {self.id}: transferring the leadership to node {d.get('to')} ({event.rule})")
        elif event.kind == EventKind.TIMEOUT_NOW_SENT:
            _log(f"node {self.id}: node {d.get('to')} holds the whole log: told it to stand now ({event.rule})")
        elif event.kind == EventKind.TRANSFER_ABORTED:
            self._transfer_aborted = True
            _log(f"node {self.id}: transfer to node {d.get('to')} aborted: it did not win within an election "
                 f"timeout ({event.rule})")

    def _on_machine(self, kind: str, transition_id: Hashable | None, state: TransitionState | None,
                    result: Any) -> None:
        if transition_id not in self._waiting:
            return
        if kind == "applied":
            reply = {"ok": True, "result": result}
        elif kind == "state" and state is not None and state.final:  # the client retries with the same seq
            why = {TransitionState.ABANDONED_NOT_LEADER: "not_leader", TransitionState.UNKNOWN: "unknown"}.get(
                state, "abandoned")
            reply = {"ok": False, "error": why, "leader": self._leader_hint()}
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
        server = await loop.create_server(lambda: _Client(self), host, port, reuse_address=True)
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
            if isinstance(self.storage, SqliteStorage):
                self.storage.close()
            _log(f"node {self.id}: stopped")

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
            self.cluster.flush()
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

    def status(self) -> dict:
        r = self.replica
        return {"id": self.id, "role": r.role.value, "term": r.current_term, "leader": r.leader_id,
                "last_index": r.log.last_index, "snapshot_index": r.log.base_index, "log_entries": len(r.log),
                "commit_index": r.commit_index, "last_applied": r.last_applied,
                "keys": len(self.store.data), "replica_dropped": r.stats.dropped,
                "pre_vote": r.pre_vote, "check_quorum": r.check_quorum, "read_lease": r.read_lease,
                "transfer_to": r.transfer_to if r.role is Role.LEADER else None, "reads_answered": self.reads_answered,
                "read_indexes": self.read_indexes, **self.cluster.stats.as_dict()}

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
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}")
        client, seq = request.get("client"), request.get("seq")
        if type(client) is not int or not 0 <= client < 2**63 or type(seq) is not int or not 0 <= seq < 2**63:
            raise ValueError("client and seq must be ints in [0, 2**63)")
        untrusted_key: Any = request.get("key")  # like value and expected: KVCommand checks every field's type
        command = KVCommand(client, seq, op, untrusted_key, request.get("value"), request.get("expected"))
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
        if type(to) is not int or to not in self.member_ids:
            return {"ok": False, "error": "not_a_peer",
                    "detail": f"{to!r} is not a node of this cluster (nodes {sorted(self.member_ids)})"}
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
        queue, submit = self._admission, self.store.submit
        for _ in range(min(len(queue), ADMIT_PER_ROUND)):
            submit(queue.popleft())


class _Client(asyncio.Protocol):
    """One client connection: JSON request lines in, reply lines out. At most YIELD_EVERY requests are
    taken per turn of the event loop; a client that does not read its replies is not read either."""

    def __init__(self, node: KVNode) -> None:
        self.node = node
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self._buffer = bytearray()
        self._paused = False  # reading paused by us: lines are still buffered
        self._blocked = False  # reading paused because the client does not read its replies

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not asyncio.Transport subclasses)
        self.node._clients.add(self)

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
        _log(f"node {id}: event loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}")
        await node.run()

    try:
        runner(main())
    except Exception as error:  # the replica stopped (fail-stop): say why, exit non-zero
        _log(f"node {id}: FAILED: {error!r}")
        return 1
    return 0
