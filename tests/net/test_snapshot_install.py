"""Streamed snapshots over real sockets (issue 17): a follower that fell behind a compacted log installs a
100 MiB store in chunks, with bounded memory; a transfer cut by a `kill -9` of the follower resumes where
its file ended. Memory is the follower's peak resident set (`VmHWM` in /proc), never a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from raftlab.net.snapshots import CHUNK_SIZE

from .conftest import LocalCluster, wait_for

VALUE = 61_000  # characters of each value (a client request line is at most 64 KiB)


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


class _Peak:
    """The peak resident set of a process: the larger of its VmHWM and of its VmRSS sampled every 5 ms
    (Linux updates VmHWM lazily, and can report less than a resident set seen before)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, *_memory(self.pid).values())
            except (OSError, ValueError):
                return
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, *_memory(self.pid).values())


def _value(n: int) -> str:
    return (f"{n:06d}" + "abcdefghij" * (VALUE // 10))[:VALUE]


def _fill(cluster: LocalCluster, ids: list[int], count: int, start: int = 0) -> int:
    """Write `count` values of VALUE characters; the bytes of keys and values written."""
    total = 0
    with cluster.client(timeout=30, ids=ids) as client:
        for n in range(start, start + count):
            client.put(f"big{n:05d}", _value(n))
            total += len(f"big{n:05d}") + VALUE
    return total


def _fell_behind(cluster: LocalCluster) -> tuple[int, int, list[int]]:
    """Start the cluster and let one follower hold the first writes (the test then kills it):
    (leader, that follower, the others)."""
    for i in cluster.ids:
        cluster.start(i)
    leader = cluster.wait_leader()
    behind = next(i for i in cluster.ids if i != leader)
    live = [i for i in cluster.ids if i != behind]
    with cluster.client() as client:
        for n in range(5):
            client.put(f"small{n}", "x")
    wait_for("the follower holds the first writes", lambda: cluster.statuses([behind]).get(behind, {})
          .get("last_applied", 0) >= 6)
    return leader, behind, live


@pytest.mark.timeout(600)
def test_a_follower_installs_a_100_mib_store_streamed_with_bounded_memory(tmp_path, record_property):
    count = 1_730  # 101 MiB of values
    every = 1_750  # one snapshot, with all of them
    cluster = LocalCluster(tmp_path, 3, ("--snapshot-every", str(every)))
    try:
        leader, behind, live = _fell_behind(cluster)
        baseline = _memory(cluster.processes[behind].pid)["VmHWM"]  # its peak so far: start-up and a few writes
        cluster.kill9(behind)
        written = _fill(cluster, live, count)
        with cluster.client(ids=live) as client:  # small writes up to the snapshot and a few after it: the
            extra = 0                             # follower's memory is then the snapshot's, not the log's
            while (cluster.statuses(live).get(live[0]) or {}).get("snapshot_index", 0) < every or extra < 30:
                client.put(f"small-after{extra}", "y")
                extra += 1
            written += sum(len(f"small-after{i}") + 1 for i in range(extra)) + 5 * len("small0x")
        # (a leader that writes a 100 MiB snapshot stalls for about a second, and may lose its leadership)
        leader = cluster.wait_leader(ids=live)
        lead = wait_for("the leader compacted its log", lambda: (s := cluster.statuses([leader]).get(leader))
                     and s["snapshot_index"] >= every and s)
        cluster.start(behind)
        peak = _Peak(cluster.processes[behind].pid)
        target = lead["commit_index"]
        follower = wait_for("the follower installed the snapshot and caught up",
                         lambda: (s := cluster.statuses([behind]).get(behind)) and s["last_applied"] >= target and s,
                         240)
        memory = {**_memory(cluster.processes[behind].pid), "peak": peak.stop()}
        senders = cluster.statuses(live)
        assert "installed the snapshot of leader" in cluster.log(behind)
        assert follower["snapshots"]["received"] == 1 and follower["snapshots"]["corrupt"] == 0, follower
        (received,) = (tmp_path / f"node{behind}" / "snapshots").glob("snapshot-*.kv")
        size = received.stat().st_size
        assert size > 100 * 1024 * 1024, size
        sent = [(tmp_path / f"node{i}" / "snapshots" / received.name) for i in live]
        assert any(p.exists() and p.read_bytes() == received.read_bytes() for p in sent)  # byte for byte
        chunks = sum(s["snapshots"]["chunks_sent"] for s in senders.values())
        assert chunks >= size // CHUNK_SIZE, senders  # in chunks, not one frame
        assert sum(s["peers"][str(behind)]["snapshots_sent"] for s in senders.values()) == 1, senders
        with cluster.client() as probe:
            address = cluster.client_address(behind)
            for n in (0, count // 2, count - 1):
                assert probe.local_get(address, f"big{n:05d}") == _value(n)
        assert follower["keys"] == count + 5 + extra
        # peak memory: what it needed before (start-up), plus the store it holds, plus at most 3 chunks
        grew = memory["peak"] - baseline
        record_property("snapshot_install", {"snapshot_bytes": size, "store_bytes": written, "chunks": chunks,
                                             "baseline_hwm": baseline, **memory, "peak_growth": grew})
        print(f"snapshot {size / 2**20:.1f} MiB in {chunks} chunks; follower peak RSS {memory['peak'] / 2**20:.1f} "
              f"MiB, {grew / 2**20:.1f} MiB above its start-up peak {baseline / 2**20:.1f} MiB; store "
              f"{written / 2**20:.1f} MiB; RSS now {memory['VmRSS'] / 2**20:.1f} MiB")
        assert grew < written + 3 * CHUNK_SIZE, (grew, written)
    finally:
        cluster.stop_all()


@pytest.mark.timeout(300)
def test_a_transfer_cut_by_a_kill_9_of_the_follower_resumes_where_its_file_ended(tmp_path):
    chunk = 8 * 1024  # small chunks: a transfer of many round trips, to cut in the middle
    cluster = LocalCluster(tmp_path, 3, ("--snapshot-every", "300", "--snapshot-chunk", str(chunk)))
    try:
        leader, behind, live = _fell_behind(cluster)
        cluster.kill9(behind)
        _fill(cluster, live, 320)
        leader = cluster.wait_leader(ids=live)
        lead = wait_for("the leader compacted its log", lambda: (s := cluster.statuses([leader]).get(leader))
                     and s["snapshot_index"] >= 300 and s)
        (snapshot,) = (tmp_path / f"node{leader}" / "snapshots").glob("snapshot-*.kv")
        size = snapshot.stat().st_size
        folder = tmp_path / f"node{behind}" / "snapshots"
        cluster.start(behind)

        def part() -> int:
            return sum(p.stat().st_size for p in folder.glob("incoming-*.part")) if folder.exists() else 0

        wait_for("a third of the snapshot arrived", lambda: part() > size // 3, 120)
        cluster.kill9(behind)
        held = part()
        assert held < size, "the transfer ended before the follower was killed: use smaller chunks"
        before = cluster.statuses([leader])[leader]["snapshots"]
        assert before["transfers"] >= 1 and before["completed"] == 0, before
        cluster.start(behind)
        target = lead["commit_index"]
        follower = wait_for("the follower caught up", lambda: (s := cluster.statuses([behind]).get(behind))
                         and s["last_applied"] >= target and s, 120)
        after = cluster.statuses([leader])[leader]["snapshots"]
        assert follower["snapshots"]["received"] == 1, follower["snapshots"]
        # the leader went on from what the restarted follower said it held (the same transfer, or a new one
        # that began past offset 0): only the rest was sent again
        assert after["completed"] == before["completed"] + 1, (before, after)
        sent_again = after["bytes_sent"] - before["bytes_sent"]
        assert sent_again <= size - held + 4 * chunk, (sent_again, size, held)  # the rest, not the whole file
        with cluster.client() as probe:
            assert probe.local_get(cluster.client_address(behind), "big00319") == _value(319)
    finally:
        cluster.stop_all()
