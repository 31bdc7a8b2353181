"""`TcpCluster`: the core's `Cluster` protocol over TCP, on asyncio.

The replica's side is synchronous and never blocks: `send_message` queues a message for its peer,
`receive_messages` hands over what the readers decoded. `flush()` (called by the driver after each
round of replica calls) coalesces everything queued for one peer into one authenticated frame and
writes it without waiting; a peer that is down or slow (its write buffer is full) loses the messages,
which Raft retransmits. Each peer gets one outgoing connection, redialled with exponential backoff;
each incoming connection is an asyncio `Protocol` fed by the event loop, and a refused frame drops
that connection only.

With `tls` (a `NodeTls`), every connection is mutual TLS 1.3 inside which the same authenticated frames
travel: the dialer checks the acceptor's certificate names the peer it dials, the acceptor that the
dialer's certificate names the node its hello claims to be (refused: ``wrong_certificate``). Without it
the frames are authenticated but not encrypted (for loopback, tests and benchmarks).

The peer set may change at run time (membership change): `set_address` adds or moves a server in the
address book (whose ids are the only ones whose hellos are accepted), and `connect` keeps exactly one
outgoing connection per peer of the replica's latest configuration.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from ..core.messages import AppendEntryRequest, InstallSnapshotRequest, Message, ReplicaID
from .codec import (
    CHALLENGE_SIZE, HEADER, MAX_FRAME, FrameError, InboundSession, MessageEncoder, OutboundSession, SnapshotAck, Wire,
    check_key,
)
from .snapshots import SnapshotStreams
from .tls import NodeTls, certificate_name, node_name

Address = tuple[str, int]

HANDSHAKE_TIMEOUT = 2.0  # seconds an incoming connection has to send a valid hello
CONNECT_TIMEOUT = 1.0
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0  # seconds between reconnection attempts (doubling, with jitter)
BACKOFF_NEW = 0.25  # the most between attempts to reach a peer never reached yet (a new member starting, say)
WRITE_BUFFER_LIMIT = 32 * 1024 * 1024  # bytes queued to one peer before messages to it are dropped


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(slots=True)
class PeerStats:
    """What went out to one peer on its link (counted as written to the socket; a message dropped because
    the peer was not connected or not reading counts in `send_dropped` only)."""

    frames_sent: int = 0
    bytes_sent: int = 0  # whole frames: header, MAC and counter included
    messages_sent: int = 0
    entries_sent: int = 0  # log entries carried by AppendEntries requests
    snapshots_sent: int = 0  # InstallSnapshot transfers begun (chunks at offset 0)
    snapshot_chunks_sent: int = 0  # InstallSnapshot chunks
    send_dropped: int = 0  # messages

    def as_dict(self) -> dict:
        return {"frames_sent": self.frames_sent, "bytes_sent": self.bytes_sent, "messages_sent": self.messages_sent,
                "entries_sent": self.entries_sent, "snapshots_sent": self.snapshots_sent,
                "snapshot_chunks_sent": self.snapshot_chunks_sent,
                "send_dropped": self.send_dropped}


@dataclass
class TransportStats:
    """Counters of a `TcpCluster` (`peers`: per peer, what went out on its link)."""

    refused: Counter = field(default_factory=Counter)  # refused frames (connections dropped), by kind
    frames_sent: int = 0
    frames_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    send_dropped: int = 0  # messages lost because the peer was not connected or not reading
    connections_made: int = 0  # outgoing connections established
    connections_accepted: int = 0  # incoming connections whose hello was valid
    peers: dict[ReplicaID, PeerStats] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"refused": dict(self.refused), "refused_total": sum(self.refused.values()),
                "frames_sent": self.frames_sent, "frames_received": self.frames_received,
                "messages_sent": self.messages_sent, "messages_received": self.messages_received,
                "send_dropped": self.send_dropped, "connections_made": self.connections_made,
                "connections_accepted": self.connections_accepted,
                "peers": {str(p): s.as_dict() for p, s in sorted(self.peers.items())}}


class _Link:
    """The outgoing connection to one peer, redialled with backoff until the cluster or the link closes."""

    def __init__(self, cluster: TcpCluster, peer: ReplicaID, address: Address) -> None:
        self.cluster, self.peer, self.address = cluster, peer, address
        self.session: OutboundSession | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stats = cluster.stats.peers.setdefault(peer, PeerStats())  # (kept if the peer comes back)
        self.closed = False
        self.reached = False  # connected at least once
        self.task: asyncio.Task | None = None

    def close(self) -> None:
        """Stop dialling and drop the connection (the peer left the configuration, or moved)."""
        self.closed = True
        if self.writer is not None:
            self.writer.transport.abort()
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        delay = BACKOFF_MIN
        while not self.cluster.closed and not self.closed:
            try:
                tls = self.cluster.tls
                connecting = (asyncio.open_connection(*self.address) if tls is None else
                              asyncio.open_connection(*self.address, ssl=tls.peer_client,
                                                      server_hostname=node_name(self.peer),
                                                      ssl_handshake_timeout=HANDSHAKE_TIMEOUT))
                reader, writer = await asyncio.wait_for(connecting, CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT)
            except (OSError, asyncio.TimeoutError):  # (ssl.SSLError is an OSError: a wrong certificate)
                pass
            else:
                try:
                    challenge = await asyncio.wait_for(reader.readexactly(HEADER.size + CHALLENGE_SIZE),
                                                       HANDSHAKE_TIMEOUT)
                    session = OutboundSession(self.cluster.key, self.cluster.id, self.peer)
                    writer.write(session.hello(challenge))
                    self.session, self.writer = session, writer
                    self.cluster.stats.connections_made += 1
                    self.reached = True
                    delay = BACKOFF_MIN
                    await reader.read(1)  # the acceptor never writes again: returns at EOF
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, FrameError):
                    pass
                finally:
                    self.session = self.writer = None
                    writer.close()
            if self.cluster.closed or self.closed:
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX if self.reached else BACKOFF_NEW)

    def send(self, messages: list[Wire]) -> None:
        session, writer, stats, peer = self.session, self.writer, self.cluster.stats, self.stats
        if session is None or writer is None or writer.is_closing() \
                or writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            stats.send_dropped += len(messages)
            peer.send_dropped += len(messages)
            return
        for payload in _payloads(messages, self.cluster.encoder.encode, peer):
            data = session.seal(payload)
            writer.write(data)
            stats.frames_sent += 1
            peer.frames_sent += 1
            peer.bytes_sent += len(data)
        stats.messages_sent += len(messages)


def _payloads(messages: list[Wire], encode: Callable[[Wire], str], counts: PeerStats) -> list[bytes]:
    """JSON payloads carrying `messages`, as few as fit under MAX_FRAME (a message too big alone is lost;
    a snapshot chunk travels alone); `counts` gets the messages, entries and snapshots they carry (and the
    messages lost)."""
    limit = MAX_FRAME - 64
    payloads: list[bytes] = []
    parts: list[str] = []
    size = 2
    for m in messages:
        part = encode(m)
        if len(part) + 2 > limit:
            _log(f"dropped a message of {len(part)} bytes: larger than a frame")
            counts.send_dropped += 1
            continue
        counts.messages_sent += 1
        if type(m) is AppendEntryRequest:
            counts.entries_sent += len(m.entries)
        elif type(m) is InstallSnapshotRequest:
            counts.snapshot_chunks_sent += 1
            counts.snapshots_sent += m.offset == 0
            if parts:  # a chunk travels alone: the follower holds one chunk's frame at a time
                payloads.append(("[" + ",".join(parts) + "]").encode("ascii"))
                parts, size = [], 2
            payloads.append(("[" + part + "]\n").encode("ascii") + m.data)  # (its bytes after its JSON)
            continue
        if size + len(part) + 1 > limit:
            payloads.append(("[" + ",".join(parts) + "]").encode("ascii"))
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        payloads.append(("[" + ",".join(parts) + "]").encode("ascii"))
    return payloads


class TcpCluster:
    """A replica's `Cluster` over TCP.

    Args:
        id: this replica.
        addresses: every replica's peer address (this one's included: it listens there); more may be
            added later (`set_address`). A connection is kept to each of them until `connect` says
            which ones are peers.
        key: the shared cluster key (at least 16 bytes).
        tls: this node's TLS contexts (`NodeTls`), or None for plain TCP (frames authenticated, not
            encrypted).
        wake: called (on the event loop) whenever messages arrived.
        on_leader: called with the new leader id when the replica registers one.
    """

    def __init__(self, id: ReplicaID, addresses: Mapping[ReplicaID, Address], key: bytes, *,
                 wake: Callable[[], None] = lambda: None,
                 on_leader: Callable[[ReplicaID | None], None] = lambda _: None, tls: NodeTls | None = None) -> None:
        if id not in addresses:
            raise ValueError(f"replica {id} has no address in {dict(addresses)}")
        self.id = id
        self.key = check_key(key)
        self.tls = tls
        self.address = addresses[id]
        self.peers = {p: a for p, a in addresses.items() if p != id}  # the address book (grows: set_address)
        self.stats = TransportStats()
        self.encoder = MessageEncoder()  # shared by the links: an entry is encoded once for all peers
        self.leader_id: ReplicaID | None = None
        self.closed = False
        self._wake, self._on_leader = wake, on_leader
        self._inbox: list[Wire] = []
        self._outbox: dict[ReplicaID, list[Wire]] = {p: [] for p in self.peers}
        self.snapshots: SnapshotStreams | None = None  # streams InstallSnapshot in chunks (set by the node)
        self._links = {p: _Link(self, p, a) for p, a in self.peers.items()}
        self._tasks: set[asyncio.Task] = set()  # our own (the links): cancelled on close
        self._inbound: set[_Inbound] = set()  # incoming connections
        self._server: asyncio.AbstractServer | None = None
        self._started = False

    # ----- the peer set (membership change) ----------------------------------------------------------
    @property
    def linked(self) -> frozenset[ReplicaID]:
        """The peers this node keeps an outgoing connection to (the ones `send_message` reaches)."""
        return frozenset(self._links)

    def set_address(self, peer: ReplicaID, address: Address) -> None:
        """Add `peer` to the address book (its hellos are accepted from now on), or move it: a
        connection to its old address is dropped and redialled at the new one. This node's own address
        never changes (it listens there)."""
        if peer == self.id or self.peers.get(peer) == address:
            return
        self.peers[peer] = address
        if peer in self._links:
            self._unlink(peer)
            self._link(peer)

    def connect(self, peers: Iterable[ReplicaID]) -> None:
        """Keep one outgoing connection to each of `peers` that has an address, and none to anyone else
        (a server removed from the configuration is no longer dialled; messages to it are lost)."""
        wanted = {p for p in peers if p != self.id and p in self.peers}
        for peer in [p for p in self._links if p not in wanted]:
            self._unlink(peer)
        for peer in sorted(wanted - self._links.keys()):
            self._link(peer)

    def _link(self, peer: ReplicaID) -> None:
        link = self._links[peer] = _Link(self, peer, self.peers[peer])
        self._outbox[peer] = []
        if self._started and not self.closed:
            link.task = self._spawn(link.run())

    def _unlink(self, peer: ReplicaID) -> None:
        self._links.pop(peer).close()
        dropped = len(self._outbox.pop(peer, ()))
        self.stats.send_dropped += dropped

    # ----- the core's Cluster protocol (synchronous, never blocks) --------------------------------------
    def send_message(self, to_id: ReplicaID, message: Message) -> None:
        """Queue `message` for `to_id`; it leaves at the next `flush` (an InstallSnapshot goes to `snapshots`,
        which streams its file in chunks)."""
        if type(message) is InstallSnapshotRequest and self.snapshots is not None:
            self.snapshots.send(to_id, message)
            return
        self.enqueue(to_id, message)

    def enqueue(self, to_id: ReplicaID, message: Wire) -> None:
        """Queue `message` (as it is) for `to_id`."""
        box = self._outbox.get(to_id)
        if box is not None:
            box.append(message)

    def receive_messages(self) -> list[Message]:
        """The messages decoded since the last call (InstallSnapshot chunks and their acknowledgements go to
        `snapshots`; a snapshot received whole comes out as one request)."""
        received, self._inbox = self._inbox, []
        streams = self.snapshots
        if streams is None:
            return [m for m in received if not isinstance(m, SnapshotAck)]
        messages: list[Message] = []
        for m in received:
            if isinstance(m, SnapshotAck):
                streams.acknowledged(m)
            elif type(m) is InstallSnapshotRequest:
                whole = streams.receive(m)
                if whole is not None:
                    messages.append(whole)
            else:
                messages.append(m)
        return messages

    def halt(self) -> bool:
        """True once closed."""
        return self.closed

    def register_leader(self, leader_id: ReplicaID | None) -> None:
        """Remember the leader (and tell `on_leader`)."""
        self.leader_id = leader_id
        self._on_leader(leader_id)

    # ----- driving ----------------------------------------------------------------------------------
    @property
    def has_messages(self) -> bool:
        """True if `receive_messages` would return something."""
        return bool(self._inbox)

    def flush(self) -> None:
        """Send what is queued: one frame per peer (more only if it would exceed MAX_FRAME)."""
        for peer, box in self._outbox.items():
            if box:
                self._outbox[peer] = []
                self._links[peer].send(box)

    async def start(self) -> None:
        """Listen on this replica's address and start dialling the peers."""
        host, port = self.address
        loop = asyncio.get_running_loop()
        tls = None if self.tls is None else self.tls.peer_server
        self._server = await loop.create_server(lambda: _Inbound(self), host, port, reuse_address=True, ssl=tls,
                                                ssl_handshake_timeout=None if tls is None else HANDSHAKE_TIMEOUT)
        self._started = True
        for link in self._links.values():
            link.task = self._spawn(link.run())

    async def close(self) -> None:
        """Stop listening, close every connection and task."""
        self.closed = True
        if self._server is not None:
            self._server.close()
        for link in self._links.values():
            if link.writer is not None:
                link.writer.transport.abort()
        for inbound in list(self._inbound):
            if inbound.transport is not None:
                inbound.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task



class _Inbound(asyncio.Protocol):
    """One incoming connection: a challenge, then frames fed to an `InboundSession` as they arrive.
    A refused frame (or no valid hello within HANDSHAKE_TIMEOUT) is counted and drops this connection."""

    def __init__(self, cluster: TcpCluster) -> None:
        self.cluster = cluster
        self.session = InboundSession(cluster.key, cluster.id, cluster.peers)
        self.transport: asyncio.Transport | None = None
        self.where: object = None
        self._received: list[Wire] = []
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not asyncio.Transport subclasses, hence a cast, not a check)
        self.transport = stream = cast(asyncio.Transport, transport)
        self.where = stream.get_extra_info("peername")
        self.cluster._inbound.add(self)
        stream.write(self.session.challenge())
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        session, stats, received = self.session, self.cluster.stats, self._received
        was, frames = session.established, session.frames
        try:
            session.feed(data, received)
        except FrameError as error:
            self._refuse(error)
        finally:
            if session.established and not was and not (self.cluster.tls is not None
                                                         and self._certificate_mismatch()):
                stats.connections_accepted += 1
                if self._timer is not None:
                    self._timer.cancel()
            stats.frames_received += session.frames - frames
            if received:  # the frames before a refused one still count
                stats.messages_received += len(received)
                self.cluster._inbox.extend(received)
                received.clear()
                self.cluster._wake()

    def _certificate_mismatch(self) -> bool:
        # TLS: the hello's id must be the node named by the certificate (else another node, or a client,
        # could speak for it); the frames that came with the hello are dropped with the connection
        name, claimed = certificate_name(self.transport), node_name(cast(int, self.session.peer_id))
        if name == claimed:
            return False
        self._received.clear()
        self._refuse(FrameError("wrong_certificate", f"the hello claims {claimed}, the certificate names {name}"))
        return True

    def eof_received(self) -> bool:
        try:
            self.session.eof()
        except FrameError as error:
            self._refuse(error)
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.cluster._inbound.discard(self)

    def _handshake_timeout(self) -> None:
        if not self.session.established:
            self._refuse(FrameError("handshake_timeout", f"no valid hello within {HANDSHAKE_TIMEOUT} s"))

    def _refuse(self, error: FrameError) -> None:
        stats = self.cluster.stats
        stats.refused[error.kind] += 1
        _log(f"node {self.cluster.id}: refused a frame from {self.where} (peer {self.session.peer_id}): {error}; "
             f"connection dropped ({sum(stats.refused.values())} refused so far)")
        if self.transport is not None:
            self.transport.abort()
