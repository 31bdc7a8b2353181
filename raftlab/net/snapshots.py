"""A served store's snapshots as files, and InstallSnapshot streamed in chunks (Raft §7).

The core sends and receives a snapshot whole (one `InstallSnapshotRequest`, ``offset`` 0, ``done``
true), and never looks inside its data. A node keeps its snapshots as files instead of in memory
(`SnapshotFile` is the data the core holds), and on the wire `SnapshotStreams` cuts one into chunks of
`CHUNK_SIZE` bytes: InstallSnapshot requests with Little Raft's ``offset`` and ``done`` fields, each
acknowledged (`SnapshotAck`, the bytes the follower holds). The follower appends them to a temporary
file, checks the whole file's SHA-256 at the end, renames it into place (atomic) and only then hands
the core one whole request naming the file. A transfer cut off (a connection lost, a follower
restarted) resumes where the follower's file ends: the first chunk of every transfer is answered with
what is already held. Memory: the leader reads, and the follower holds, at most `WINDOW` chunks at a
time; there is no size limit but the disk's.

A snapshot file (ASCII, one JSON value a line): ``["raftlab-kv-snapshot/1", <the KVData with no
items>]``, then one ``[key, value]`` line per item in key order, then ``["end", items, sha256]``
(the hash of every line before it). The same state gives the same bytes on every server, so a
transfer begun by one leader can be finished by the next.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from ..core.messages import InstallSnapshotRequest, Message, ReplicaID
from .codec import FrameError, SnapshotAck, SnapshotFile, kv_data_from_json, kv_data_to_json, loads_strict

CHUNK_SIZE = 1024 * 1024
"""Bytes of snapshot file in one InstallSnapshot chunk (the default)."""
WINDOW = 2  # chunks sent and not yet acknowledged, at most
RESEND_AFTER = 1.0  # seconds without an acknowledgement before the unacknowledged chunks are sent again
ABANDON_AFTER = 10.0  # seconds without a request from the replica before a transfer is given up
FORMAT = "raftlab-kv-snapshot/1"
_FILE = re.compile(r"snapshot-[0-9]{1,19}-[0-9]{1,19}\.kv")
_READ = 64 * 1024  # bytes read at a time to check a file


def file_name(index: int, term: int) -> str:
    """The name of the snapshot file up to `index` (of `term`)."""
    return f"snapshot-{index}-{term}.kv"


def _log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_kv_snapshot(folder: Path, index: int, term: int, data: Any) -> SnapshotFile:
    """Write `KVData` `data` as the snapshot file up to `index`: to a temporary file, synced, then renamed
    into place (so a file by that name is always whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = file_name(index, term)
    digest, count, size = hashlib.sha256(), 0, 0
    temporary = folder / (name + ".tmp")
    with open(temporary, "wb") as f:
        def put(line: bytes) -> None:
            nonlocal size
            digest.update(line)
            f.write(line)
            size += len(line)
        put(json.dumps([FORMAT, kv_data_to_json(((), *data[1:]))]).encode("ascii") + b"\n")
        for key, value in data[0]:
            put(json.dumps([key, value]).encode("ascii") + b"\n")
            count += 1
        trailer = json.dumps(["end", count, digest.hexdigest()]).encode("ascii") + b"\n"
        f.write(trailer)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, folder / name)
    _fsync_folder(folder)
    return SnapshotFile(name, size + len(trailer))


def check_kv_snapshot(path: Path) -> str | None:
    """Why the file at `path` is not a whole snapshot file (None if it is): its trailer names the number
    of items and the hash of everything before it. Reads it in blocks (bounded memory)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 200))
            tail = f.read()
            start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
            if start == 0 and size > len(tail):
                return "no trailer line"
            tag, count, expected = json.loads(tail[start:])
            digest, lines, remaining = hashlib.sha256(), 0, size - (len(tail) - start)
            f.seek(0)
            while remaining > 0 and (block := f.read(min(_READ, remaining))):
                digest.update(block)
                lines += block.count(b"\n")
                remaining -= len(block)
    except OSError as error:
        return f"cannot read it: {error}"
    except (ValueError, TypeError):
        return "no trailer line"
    if tag != "end" or count != lines - 1 or expected != digest.hexdigest():
        return f"its trailer does not match its contents ({lines} lines before it)"
    return None


def read_kv_snapshot(path: Path) -> tuple:
    """The `KVData` of a snapshot file, its items as an iterator over the file (read line by line, every
    line checked as strictly as network data: `FrameError`), so that a store loads it without holding
    the whole file in memory. Consume the items before anything else replaces the file."""
    f = open(path, "rb")  # noqa: SIM115  (closed by the items' iterator at its end)
    try:
        header = loads_strict(f.readline())
        if type(header) is not list or len(header) != 2 or header[0] != FORMAT:
            raise FrameError("bad_payload", f"{path.name}: not a {FORMAT} file")
        rest = kv_data_from_json(header[1])
    except BaseException:
        f.close()
        raise

    def items() -> Iterator[tuple[str, str]]:
        with f:
            for line in f:
                item = loads_strict(line)
                if type(item) is list and len(item) == 2 and type(item[0]) is str and type(item[1]) is str:
                    yield item[0], item[1]
                elif type(item) is list and item and item[0] == "end":
                    return
                else:
                    raise FrameError("bad_payload", f"{path.name}: a line is not a [key, value] pair")
            raise FrameError("bad_payload", f"{path.name}: no trailer line")

    return (items(), *rest[1:])


def snapshot_names(folder: Path) -> list[str]:
    """The snapshot files in `folder`."""
    return sorted(p.name for p in folder.glob("snapshot-*.kv") if _FILE.fullmatch(p.name))


@dataclass(slots=True)
class _Outgoing:
    """A snapshot on its way to one follower."""

    request: InstallSnapshotRequest  # the replica's latest request for it
    file: IO[bytes]
    size: int
    requested: float  # when the replica last asked for it
    acked: int = 0  # bytes the follower said it holds
    sent: int = 0  # the offset of the next chunk to send
    progress: float = 0.0  # when the latest acknowledgement (or first send) came
    answered: bool = False  # an acknowledgement came


@dataclass(slots=True)
class _Incoming:
    """A snapshot being received from the leader: a temporary file and the bytes in it."""

    key: tuple[int, int]  # (last_included_index, last_included_term)
    path: Path
    file: IO[bytes]
    held: int


@dataclass(slots=True)
class StreamStats:
    """What the streams did (in a node's status: ``snapshots``)."""

    transfers: int = 0  # transfers started (this node as the sender)
    resumed: int = 0  # transfers that started past offset 0 (the follower held part of it)
    completed: int = 0  # transfers whose every byte was acknowledged
    abandoned: int = 0  # transfers given up (the replica stopped asking, or sent another snapshot)
    chunks_sent: int = 0
    bytes_sent: int = 0  # snapshot bytes in the chunks sent
    chunks_received: int = 0
    bytes_received: int = 0  # snapshot bytes written to a temporary file
    received: int = 0  # files received whole (checked and renamed into place)
    corrupt: int = 0  # files received whose hash did not match: deleted, received again

    def as_dict(self) -> dict:
        return asdict(self)


class SnapshotStreams:
    """The chunked transfer of snapshot files between this node and its peers.

    Args:
        folder: where the snapshot files are (and the temporary files of transfers in progress).
        self_id: this node.
        send: queues a message for a peer (the transport's outbox, flushed after each round).
        term: the replica's current term.
        chunk_size: bytes of file per chunk.
        clock: monotonic seconds (for resending and abandoning).
    """

    def __init__(self, folder: Path, self_id: ReplicaID, send: Callable[[ReplicaID, Message | SnapshotAck], None],
                 term: Callable[[], int], *, chunk_size: int = CHUNK_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if type(chunk_size) is not int or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, not {chunk_size!r}")
        self.folder, self.id, self.chunk_size = folder, self_id, chunk_size
        self._send, self._term, self._clock = send, term, clock
        self.stats = StreamStats()
        self._out: dict[ReplicaID, _Outgoing] = {}
        self._in: _Incoming | None = None
        self._done: tuple[tuple[int, int], SnapshotFile] | None = None  # the latest file received whole

    # ----- the leader's side ------------------------------------------------------------------------
    def send(self, to: ReplicaID, request: InstallSnapshotRequest) -> None:
        """The replica sends `request` (whole): start or continue streaming its file to `to`."""
        now = self._clock()
        current = self._out.get(to)
        key = (request.last_included_index, request.last_included_term)
        if current is not None and (current.request.last_included_index,
                                    current.request.last_included_term) == key:
            current.request, current.requested = request, now  # (asked again while under way: keep going)
            return
        if current is not None:
            self._drop(to, "the replica sends a newer snapshot")
        data = request.data
        if type(data) is not SnapshotFile:  # (a snapshot of an older node, kept in its database)
            data = write_kv_snapshot(self.folder, *key, data)
        try:
            f = open(self.folder / data.name, "rb")  # noqa: SIM115  (closed when the transfer ends)
        except OSError as error:
            _log(f"node {self.id}: cannot send snapshot {data.name} to node {to}: {error}")
            return
        self._out[to] = out = _Outgoing(request, f, os.fstat(f.fileno()).st_size, now, progress=now)
        self.stats.transfers += 1
        self._pump(to, out)

    def acknowledged(self, ack: SnapshotAck) -> None:
        """A follower says how many bytes of a snapshot file it holds."""
        out = self._out.get(ack.from_id)
        if out is None or (out.request.last_included_index, out.request.last_included_term) != \
                (ack.last_included_index, ack.last_included_term) or ack.offset > out.size:
            return
        if not out.answered:
            out.answered = True
            self.stats.resumed += ack.offset > min(self.chunk_size, out.size)  # it held more than the first chunk
        out.acked, out.progress = ack.offset, self._clock()
        out.sent = max(out.sent, ack.offset)
        if out.acked == out.size:
            self.stats.completed += 1
            self._out.pop(ack.from_id).file.close()
            return
        self._pump(ack.from_id, out)

    def poll(self) -> None:
        """Resend what was not acknowledged in time; give up transfers the replica no longer asks for."""
        now = self._clock()
        for to, out in list(self._out.items()):
            if now - out.requested > ABANDON_AFTER:
                self._drop(to, f"not asked for in {ABANDON_AFTER:.0f} s")
            elif now - out.progress > RESEND_AFTER:
                out.sent, out.progress = out.acked, now  # (from where the follower said it was)
                self._pump(to, out)

    def _pump(self, to: ReplicaID, out: _Outgoing) -> None:
        r = out.request
        while out.sent < out.size and out.sent < out.acked + WINDOW * self.chunk_size:
            out.file.seek(out.sent)
            chunk = out.file.read(self.chunk_size)
            if not chunk:
                break
            done = out.sent + len(chunk) >= out.size
            self._send(to, InstallSnapshotRequest(r.from_id, r.term, r.last_included_index, r.last_included_term,
                                                  out.sent, chunk, done, r.configuration))
            out.sent += len(chunk)
            self.stats.chunks_sent += 1
            self.stats.bytes_sent += len(chunk)

    def _drop(self, to: ReplicaID, why: str) -> None:
        out = self._out.pop(to)
        out.file.close()
        self.stats.abandoned += 1
        _log(f"node {self.id}: stopped sending snapshot {out.request.last_included_index} to node {to}: {why}")

    # ----- the follower's side ----------------------------------------------------------------------
    def receive(self, m: InstallSnapshotRequest) -> InstallSnapshotRequest | None:
        """A chunk arrived: write it, acknowledge what is held, and once the file is whole (and checked)
        return the whole request the replica is to see (None until then). A request of an older term
        is returned as it is: the replica refuses it (IS-STALE)."""
        if m.term < self._term() or not isinstance(m.data, (bytes, memoryview)):
            return m
        key = (m.last_included_index, m.last_included_term)
        if self._done is not None and self._done[0] == key and (self.folder / self._done[1].name).exists():
            self._ack(m, self._done[1].size)  # (received already: the replica answers again)
            return self._whole(m, self._done[1])
        incoming = self._incoming(key)
        if m.offset == incoming.held and m.data:
            incoming.file.write(m.data)  # (the bytes where the frame brought them)
            incoming.held += len(m.data)
            self.stats.chunks_received += 1
            self.stats.bytes_received += len(m.data)
        if not (m.done and m.offset + len(m.data) == incoming.held):
            self._ack(m, incoming.held)
            return None
        incoming.file.close()
        self._in = None
        why = check_kv_snapshot(incoming.path)
        if why is not None:
            self.stats.corrupt += 1
            _log(f"node {self.id}: the snapshot {key[0]} received from node {m.from_id} is not whole ({why}): "
                 "receiving it again")
            incoming.path.unlink(missing_ok=True)
            self._ack(m, 0)
            return None
        name = file_name(*key)
        os.replace(incoming.path, self.folder / name)
        _fsync_folder(self.folder)
        self.stats.received += 1
        self._done = (key, SnapshotFile(name, incoming.held))
        self._ack(m, incoming.held)
        return self._whole(m, self._done[1])

    def _incoming(self, key: tuple[int, int]) -> _Incoming:
        if self._in is not None and self._in.key == key:
            return self._in
        if self._in is not None:  # another snapshot now: the partial file of the old one is of no use
            self._in.file.close()
            self._in.path.unlink(missing_ok=True)
        for old in self.folder.glob("incoming-*.part"):
            if old.name != f"incoming-{key[0]}-{key[1]}.part":
                old.unlink(missing_ok=True)
        path = self.folder / f"incoming-{key[0]}-{key[1]}.part"
        f = open(path, "ab", buffering=0)  # noqa: SIM115  (unbuffered: what is held is what is on disk)
        self._in = _Incoming(key, path, f, os.fstat(f.fileno()).st_size)  # (resumed after a restart)
        return self._in

    def _ack(self, m: InstallSnapshotRequest, held: int) -> None:
        self._send(m.from_id, SnapshotAck(self.id, self._term(), m.last_included_index, m.last_included_term, held))

    @staticmethod
    def _whole(m: InstallSnapshotRequest, data: SnapshotFile) -> InstallSnapshotRequest:
        return InstallSnapshotRequest(m.from_id, m.term, m.last_included_index, m.last_included_term, 0, data, True,
                                      m.configuration)

    def close(self) -> None:
        """Close every file (the partial file of a transfer in progress is kept: it resumes)."""
        for out in self._out.values():
            out.file.close()
        self._out.clear()
        if self._in is not None:
            self._in.file.close()
            self._in = None

    @property
    def sending(self) -> dict[ReplicaID, tuple[int, int]]:
        """Per follower, the transfer under way: (bytes acknowledged, file size)."""
        return {to: (out.acked, out.size) for to, out in self._out.items()}
