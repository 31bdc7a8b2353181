"""InstallSnapshot streamed in chunks (`raftlab.net.snapshots`), between two `SnapshotStreams` wired by
hand: no sockets, so every chunk, acknowledgement, loss and restart is chosen by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftlab.core import Configuration, InstallSnapshotRequest
from raftlab.net.codec import FrameError, SnapshotAck, SnapshotFile, decode_messages, encode_messages
from raftlab.net.snapshots import (
    WINDOW, SnapshotStreams, check_kv_snapshot, file_name, read_kv_snapshot, write_kv_snapshot,
)

DATA = (tuple((f"key{i:04d}", f"value-{i}-" + "x" * (i % 97)) for i in range(400)),
        ((7, (3, None)), (8, (1, True)), (9, (4, "yes"))))


def test_a_snapshot_file_holds_the_store_and_is_checked_whole(tmp_path):
    f = write_kv_snapshot(tmp_path, 12, 3, DATA)
    assert f == SnapshotFile(file_name(12, 3), (tmp_path / f.name).stat().st_size)
    assert check_kv_snapshot(tmp_path / f.name) is None
    items, sessions = read_kv_snapshot(tmp_path / f.name)
    assert (tuple(items), sessions) == DATA
    assert write_kv_snapshot(tmp_path / "b", 12, 3, DATA).size == f.size  # the same state, the same bytes
    assert (tmp_path / "b" / f.name).read_bytes() == (tmp_path / f.name).read_bytes()
    raw = bytearray((tmp_path / f.name).read_bytes())
    raw[len(raw) // 2] ^= 1  # one bit of one value
    (tmp_path / "bad.kv").write_bytes(raw)
    assert "does not match" in check_kv_snapshot(tmp_path / "bad.kv")
    whole = (tmp_path / f.name).read_bytes()
    for cut, why in ((whole[:len(whole) // 2], "not JSON"), (whole[:whole.rindex(b"\n", 0, -1) + 1], "no trailer")):
        (tmp_path / "cut.kv").write_bytes(cut)  # cut inside a line, then after the last item
        assert check_kv_snapshot(tmp_path / "cut.kv") is not None
        items, _ = read_kv_snapshot(tmp_path / "cut.kv")
        with pytest.raises(FrameError, match=why):
            list(items)


class Wire:
    """Two streams and the messages between them, delivered when the test says (through the codec)."""

    def __init__(self, root: Path, chunk: int) -> None:
        self.term = 5
        self.chunk = chunk
        self.queue: list[tuple[int, object]] = []
        self.root = root
        self.leader = self.streams(1, root / "leader")
        self.follower = self.streams(2, root / "follower")
        (root / "follower").mkdir()
        self.source = write_kv_snapshot(root / "leader", 40, 4, DATA)
        self.request = InstallSnapshotRequest(1, self.term, 40, 4, 0, self.source, True, Configuration.of([1, 2, 3]))
        self.whole: list[InstallSnapshotRequest] = []
        self.in_flight_max = 0

    def streams(self, me: int, folder: Path) -> SnapshotStreams:
        return SnapshotStreams(folder, me, lambda to, m: self.queue.append((to, m)), lambda: self.term,
                               chunk_size=self.chunk, clock=lambda: self.now)

    now = 0.0

    def deliver(self, lose: int = 0) -> None:
        """Deliver what is queued, and what that queues (the first `lose` messages are lost instead)."""
        while self.queue:
            if lose:
                self.queue.pop(0)
                lose -= 1
            else:
                self.step()

    def step(self) -> None:
        """Deliver the first message queued."""
        _, m = self.queue.pop(0)
        (m,) = decode_messages(encode_messages([m]))  # as the wire carries it
        if type(m) is SnapshotAck:
            self.leader.acknowledged(m)
            return
        held = self.follower._in.held if self.follower._in else 0
        self.in_flight_max = max(self.in_flight_max, self.leader.stats.bytes_sent - held)
        whole = self.follower.receive(m)
        if whole is not None:
            self.whole.append(whole)


def test_a_snapshot_streams_in_acknowledged_chunks_with_at_most_a_window_in_flight(tmp_path):
    w = Wire(tmp_path, chunk=1000)
    w.leader.send(2, w.request)
    w.deliver()
    (whole,) = w.whole
    assert whole == InstallSnapshotRequest(1, 5, 40, 4, 0, SnapshotFile(file_name(40, 4), w.source.size), True,
                                           Configuration.of([1, 2, 3]))
    assert (tmp_path / "follower" / whole.data.name).read_bytes() == (tmp_path / "leader" / w.source.name).read_bytes()
    chunks = -(-w.source.size // 1000)
    assert w.leader.stats.chunks_sent == chunks and w.leader.stats.completed == 1 and w.leader.sending == {}
    assert w.follower.stats.received == 1 and w.follower.stats.bytes_received == w.source.size
    assert w.in_flight_max <= WINDOW * 1000  # the follower never has more than the window coming
    assert not list((tmp_path / "follower").glob("*.part"))  # renamed into place


def test_a_broken_transfer_resumes_where_the_followers_file_ends(tmp_path):
    w = Wire(tmp_path, chunk=1000)
    w.leader.send(2, w.request)
    while w.follower.stats.chunks_received < 20:
        w.step()
    held = w.follower._in.held
    assert 0 < held < w.source.size
    w.queue.clear()  # the connection breaks: what was in flight is lost
    # the follower restarts (its partial file stays) and the leader's next transfer begins anew
    w.follower = w.streams(2, tmp_path / "follower")
    w.leader = w.streams(1, tmp_path / "leader")
    w.leader.send(2, w.request)
    w.deliver()
    (whole,) = w.whole
    assert (tmp_path / "follower" / whole.data.name).read_bytes() == (tmp_path / "leader" / w.source.name).read_bytes()
    assert w.leader.stats.resumed == 1
    # only the first chunk (answered with what was held) and the rest were sent again, not the whole file
    assert w.leader.stats.bytes_sent <= w.source.size - held + WINDOW * 1000


def test_lost_chunks_are_sent_again_from_the_last_acknowledgement(tmp_path):
    w = Wire(tmp_path, chunk=500)
    w.leader.send(2, w.request)
    w.deliver(lose=1)  # the first chunk is lost: the second is answered with 0 held
    while not w.whole:
        w.now += 1.5  # no acknowledgement for longer than RESEND_AFTER
        w.leader.send(2, w.request)  # (the replica asks again, as FC-SNAPSHOT does, every election timeout)
        w.leader.poll()
        w.deliver()
    assert w.whole[0].data.size == w.source.size and w.follower.stats.corrupt == 0


def test_a_corrupted_partial_file_is_detected_and_received_again(tmp_path):
    w = Wire(tmp_path, chunk=1000)
    w.leader.send(2, w.request)
    while w.follower.stats.chunks_received < 3:
        w.step()
    part = w.follower._in.path
    w.follower._in.file.close()
    raw = bytearray(part.read_bytes())
    raw[10] ^= 1
    part.write_bytes(raw)
    w.follower = w.streams(2, tmp_path / "follower")  # restarts on the damaged file
    w.leader = w.streams(1, tmp_path / "leader")
    w.leader.send(2, w.request)
    for _ in range(5):
        w.deliver()
        if w.whole:
            break
        w.now += 1.5
        w.leader.poll()
    assert w.follower.stats.corrupt == 1 and len(w.whole) == 1
    assert (tmp_path / "follower" / w.whole[0].data.name).read_bytes() == \
        (tmp_path / "leader" / w.source.name).read_bytes()


def test_a_stale_chunk_goes_to_the_replica_and_a_received_snapshot_is_answered_again(tmp_path):
    w = Wire(tmp_path, chunk=100_000)
    w.leader.send(2, w.request)
    w.deliver()
    assert len(w.whole) == 1
    # the same snapshot again (the replica's answer was lost): handed over whole at once
    w.leader.send(2, w.request)
    w.deliver()
    assert len(w.whole) == 2 and w.follower.stats.received == 1
    w.term = 9  # the follower moved on: a chunk of term 5 is the replica's to refuse (IS-STALE)
    chunk = InstallSnapshotRequest(1, 5, 41, 4, 0, b"x", False)
    assert w.follower.receive(chunk) is chunk


def test_a_transfer_the_replica_stops_asking_for_is_abandoned(tmp_path):
    w = Wire(tmp_path, chunk=1000)
    w.leader.send(2, w.request)
    w.queue.clear()
    w.now += 11
    w.leader.poll()
    assert w.leader.sending == {} and w.leader.stats.abandoned == 1
