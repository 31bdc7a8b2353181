"""The fault proxy (raftlab.net.proxy) on real sockets: what comes out of each end, byte for byte,
when a direction is delayed, dropped, cut, and healed."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest

from raftlab.net.proxy import BACKWARD, FORWARD, PASS, Fault, ProxyNet

pytestmark = pytest.mark.timeout(60)


class Sink:
    """A server on 127.0.0.1 that records what each accepted connection sends it (`received[k]`), and
    keeps the connections (`connections[k]`) so that the test can write back."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = self.server.getsockname()
        self.received: list[bytearray] = []
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.server.accept()
                buffer = bytearray()
                with self.lock:
                    self.connections.append(connection)
                    self.received.append(buffer)
                threading.Thread(target=self._read, args=(connection, buffer), daemon=True).start()

    def _read(self, connection: socket.socket, buffer: bytearray) -> None:
        with contextlib.suppress(OSError):
            while data := connection.recv(65536):
                with self.lock:
                    buffer += data

    def wait(self, k: int, size: int, timeout: float = 10.0) -> bytes:
        """What connection `k` received once it has `size` bytes (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) > k and len(self.received[k]) >= size:
                    return bytes(self.received[k])
            time.sleep(0.005)
        with self.lock:
            return bytes(self.received[k]) if len(self.received) > k else b""

    def close(self) -> None:
        self.server.close()
        for c in self.connections:
            c.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def net():
    with ProxyNet(seed=1) as n:
        yield n


def _dial(address: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(address, timeout=5)
    return s


def _recv_exactly(s: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _closed(s: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the peer of `s` closed or reset the connection (within `timeout`)."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_bytes_pass_both_ways_untouched(sink, net):
    address = net.add("a", ("127.0.0.1", 0), sink.address)
    forward, backward = os.urandom(1 << 20), os.urandom(100_000)
    with _dial(address) as client:
        client.sendall(forward)
        assert sink.wait(0, len(forward)) == forward
        sink.connections[0].sendall(backward)
        assert _recv_exactly(client, len(backward)) == backward
    stats = net.stats()["a"]
    assert stats["accepted"] == stats["connected"] == 1
    assert stats["forward"]["forwarded"] == len(forward) and stats["backward"]["forwarded"] == len(backward)


def test_delay_holds_every_chunk_back_and_keeps_the_order(sink, net):
    address = net.add("a", ("127.0.0.1", 0), sink.address)
    net.set("a", Fault(delay=0.3), FORWARD)
    with _dial(address) as client:
        sent = time.monotonic()
        client.sendall(b"ping")
        assert sink.wait(0, 4) == b"ping"
        assert time.monotonic() - sent >= 0.3
        sink.connections[0].sendall(b"pong")  # the other direction passes
        assert _recv_exactly(client, 4) == b"pong"
        sent = time.monotonic()
        client.sendall(b"late")
        assert sink.wait(0, 8) == b"pinglate"
        assert time.monotonic() - sent >= 0.3
        # with jitter, chunks sent apart still come out in order
        net.set("a", Fault(delay=0.01, jitter=0.05), FORWARD)
        messages = [f"<{k}>".encode() for k in range(200)]
        for m in messages:
            client.sendall(m)
            time.sleep(0.001)
        expected = b"pinglate" + b"".join(messages)
        assert sink.wait(0, len(expected)) == expected


def test_a_cut_direction_discards_its_bytes_while_the_other_still_passes(sink, net):
    address = net.add("a", ("127.0.0.1", 0), sink.address)
    with _dial(address) as client:
        client.sendall(b"before")
        assert sink.wait(0, 6) == b"before"
        net.set("a", Fault(cut=True), FORWARD)
        client.sendall(b"into the void")
        sink.connections[0].sendall(b"still heard")
        assert _recv_exactly(client, 11) == b"still heard"
        time.sleep(0.5)
        assert sink.wait(0, 7, timeout=0.1) == b"before"  # nothing more arrived
        assert net.stats()["a"]["forward"]["discarded"] == len(b"into the void")
        assert not _closed(client, timeout=0.3)  # the connection stays open while cut (a black hole)
        # healing aborts the connection that lost bytes (no stream resumes with a hole in it)...
        net.heal("a")
        assert _closed(client)
    # ... and a new connection passes again
    with _dial(address) as client:
        client.sendall(b"after")
        assert sink.wait(1, 5) == b"after"
    assert net.faults() == {}


def test_a_cut_backward_direction_leaves_the_forward_one(sink, net):
    address = net.add("a", ("127.0.0.1", 0), sink.address)
    net.set("a", Fault(cut=True), BACKWARD)
    with _dial(address) as client:
        client.sendall(b"request")
        assert sink.wait(0, 7) == b"request"
        sink.connections[0].sendall(b"answer")
        time.sleep(0.3)
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(10)
    assert net.stats()["a"]["backward"]["discarded"] == 6
    assert set(net.faults()["a"].items()) == {(FORWARD, PASS), (BACKWARD, Fault(cut=True))}


def test_drop_loses_the_chunk_and_the_connection(sink, net):
    address = net.add("a", ("127.0.0.1", 0), sink.address)
    net.set("a", Fault(drop=1.0), FORWARD)
    with _dial(address) as client:
        client.sendall(b"lost")
        assert _closed(client)
    assert sink.wait(0, 1, timeout=0.3) == b""
    stats = net.stats()["a"]
    assert stats["forward"]["drops"] == 1 and stats["forward"]["discarded"] == 4
    assert stats["forward"]["forwarded"] == 0
    net.heal()
    with _dial(address) as client:  # healed: the next connection passes
        client.sendall(b"kept")
        assert sink.wait(1, 4) == b"kept"


def test_drop_is_a_probability_per_chunk_seeded_per_proxy(sink):
    # p = 0.5 over many connections: some chunks pass and some are dropped, and the same seed drops the same ones
    def run() -> list[bool]:
        outcomes = []
        with ProxyNet(seed=7) as net:
            address = net.add("a", ("127.0.0.1", 0), sink.address)
            net.set("a", Fault(drop=0.5), FORWARD)
            for _ in range(20):
                with _dial(address) as client:
                    client.sendall(b"x")
                    outcomes.append(not _closed(client, timeout=0.3))
        return outcomes

    first, second = run(), run()
    assert first == second
    assert 0 < sum(first) < 20


def test_a_target_that_refuses_closes_the_connection(net):
    with socket.create_server(("127.0.0.1", 0)) as gone:
        target = gone.getsockname()
    address = net.add("a", ("127.0.0.1", 0), target)
    with _dial(address) as client:
        assert _closed(client)
    assert net.stats()["a"]["accepted"] == 1 and net.stats()["a"]["connected"] == 0


def test_faults_are_checked():
    with pytest.raises(ValueError):
        Fault(drop=1.5)
    with pytest.raises(ValueError):
        Fault(delay=-1)
    assert str(Fault(cut=True)) == "cut" and str(PASS) == "pass" and str(Fault(drop=0.25)) == "drop 0.25"
