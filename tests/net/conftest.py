"""Real `raftlab node` processes on loopback (`raftlab.net.local.LocalCluster`), each stopped (its
process group killed) by the test fixture that started it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from raftlab.net import KVClient
from raftlab.net.local import OFFSET, ROOT, LocalCluster, free_ports, port_free

__all__ = ["OFFSET", "ROOT", "LocalCluster", "Writers", "free_ports", "port_free", "wait_for"]


class Writers:
    """`n` client threads, each writing ``w<w>-<k> = v<k>`` one after the other through its own client
    (made by `connect`) until `stop`: the acknowledged writes are in `acked`, and a write that raised
    ends its thread with the error in `errors` (an unacknowledged write may be lost; it is noted)."""

    def __init__(self, connect: Callable[[], KVClient], n: int) -> None:
        self.acked: dict[str, str] = {}
        self.errors: list[str] = []
        self._connect, self._lock, self._stop = connect, threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(w,), daemon=True) for w in range(n)]

    def _write(self, w: int) -> None:
        with self._connect() as client:
            for k in range(1_000_000):  # bounded; `stop` ends it
                if self._stop.is_set():
                    return
                key, value = f"w{w}-{k}", f"v{k}"
                try:
                    client.put(key, value)
                except Exception as error:
                    self.errors.append(repr(error))
                    return
                with self._lock:
                    self.acked[key] = value

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def wait_more(self, count: int, timeout: float = 30.0) -> int:
        """Wait until `count` more writes are acknowledged than now (or `timeout`, or an error); returns
        the number acknowledged."""
        target, deadline = len(self.acked) + count, time.monotonic() + timeout
        while len(self.acked) < target and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        return len(self.acked)

    def stop(self) -> None:
        """Stop the writers and wait for them (every one must end)."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        assert not any(t.is_alive() for t in self._threads)


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0):
    """Call `check` until it returns something true (returned); AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def cluster3(tmp_path):
    cluster = LocalCluster(tmp_path, 3)
    try:
        for i in cluster.ids:
            cluster.start(i)
        yield cluster
    finally:
        cluster.stop_all()
