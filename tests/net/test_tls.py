"""TLS on real processes: what crosses the wire between nodes is encrypted (the bytes are read off a
recording proxy between every pair of nodes), peers prove who they are by certificate, and clients
authenticate by certificate or token, else they are refused with a message that says how."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import stat
import threading
import time

import pytest

from raftlab.net import KVClient
from raftlab.net.client import KVError
from raftlab.net.codec import CHALLENGE_SIZE, HEADER, OutboundSession, encode_messages
from raftlab.net.tls import NodeTls, certificate_name, client_context, init_tls, node_name, read_token, tls_folder
from raftlab.core.messages import VoteRequest

from .conftest import LocalCluster, free_ports

pytestmark = pytest.mark.timeout(120)


class RecordingProxy:
    """Listens on `port` and forwards every connection to `target`, keeping a copy of all the bytes it
    forwards (both ways) in `captured`."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target, self.captured, self.lock = target, bytearray(), threading.Lock()
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.settimeout(0.2)
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                inbound, _ = self.server.accept()
            except OSError:
                continue
            try:
                outbound = socket.create_connection(self.target, timeout=2)
            except OSError:
                inbound.close()
                continue
            self.sockets += [inbound, outbound]
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self.lock:
                    self.captured += data
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.closed = True
        self.server.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


def _proxied_cluster(folder, tls: bool) -> tuple[LocalCluster, list[RecordingProxy]]:
    """3 nodes whose every link (i -> j) goes through its own recording proxy."""
    cluster = LocalCluster(folder, 3, tls=tls)
    proxies = []
    ports = iter(free_ports(6))
    for i in cluster.ids:
        links = []
        for j in cluster.ids:
            if j == i:
                links.append(f"{i}=127.0.0.1:{cluster.ports[i]}")
                continue
            port = next(ports)
            proxies.append(RecordingProxy(port, ("127.0.0.1", cluster.ports[j])))
            links.append(f"{j}=127.0.0.1:{port}")
        cluster.node_peers[i] = ",".join(links)
    return cluster, proxies


def _write_and_capture(folder, tls: bool) -> tuple[bytes, list[tuple[str, str]]]:
    cluster, proxies = _proxied_cluster(folder, tls)
    pairs = [(f"secret-key-{secrets.token_hex(8)}", f"secret-value-{secrets.token_hex(8)}") for _ in range(20)]
    try:
        for i in cluster.ids:
            cluster.start(i)
        leader = cluster.wait_leader()
        # (the nodes derive each other's client ports from their --peers, here the proxies' ports: the
        # client talks to the leader only, and does not follow hints)
        with cluster.client(ids=[leader]) as client:
            for key, value in pairs:
                client.put(key, value)
            last = client.status(cluster.client_address(leader))["commit_index"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every node has applied them: the entries crossed every link
            if all(s["last_applied"] >= last for s in cluster.statuses().values()):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"not applied everywhere: {cluster.statuses()}\n{cluster.diagnose()}")
    finally:
        cluster.stop_all()
        for proxy in proxies:
            proxy.close()
    return b"".join(bytes(p.captured) for p in proxies), pairs


def test_frames_between_tls_nodes_carry_no_key_or_value_in_clear(tmp_path):
    captured, pairs = _write_and_capture(tmp_path, tls=True)
    assert len(captured) > 20 * 2 * 40  # the entries went through the proxies (to two followers each)
    found = [text for pair in pairs for text in pair if text.encode() in captured]
    assert found == []
    assert b"secret-" not in captured  # (7 bytes: by chance in ciphertext with probability ~ len / 2**56)


def test_without_tls_the_same_capture_shows_keys_and_values(tmp_path):
    # the control: the capture above could have failed (the proxies see the entries in plain TCP mode)
    captured, pairs = _write_and_capture(tmp_path, tls=False)
    assert all(key.encode() in captured and value.encode() in captured for key, value in pairs)


@pytest.fixture
def tls_cluster(tmp_path):
    cluster = LocalCluster(tmp_path, 3, tls=True)
    try:
        for i in cluster.ids:
            cluster.start(i)
        cluster.wait_leader()
        yield cluster
    finally:
        cluster.stop_all()


def test_clients_authenticate_by_certificate_or_token_and_are_refused_otherwise(tls_cluster):
    c = tls_cluster
    addresses = [c.client_address(i) for i in c.ids]
    with KVClient(addresses, timeout=10, tls=client_context(c.folder), token=read_token(c.folder)) as by_token:
        by_token.put("k", "v1")
    with KVClient(addresses, timeout=10, tls=client_context(c.folder, "admin")) as by_certificate:
        assert by_certificate.get("k") == "v1"
    with KVClient(addresses, timeout=5, tls=client_context(c.folder)) as anonymous, \
            pytest.raises(KVError, match=r"client certificate .* or its client token"):
        anonymous.put("k", "stolen")
    with KVClient(addresses, timeout=5, tls=client_context(c.folder), token="0" * 64) as wrong, \
            pytest.raises(KVError, match="refused the token"):
        wrong.put("k", "stolen")
    with KVClient(addresses, timeout=2) as plain, pytest.raises(KVError, match="uses TLS"):
        plain.put("k", "stolen")
    with KVClient(addresses, timeout=10, tls=client_context(c.folder, "admin")) as check:
        assert check.get("k") == "v1"


def test_a_client_from_another_ca_is_not_trusted_and_does_not_trust(tls_cluster, tmp_path):
    other = tmp_path / "other"
    init_tls(other, [1])
    addresses = [tls_cluster.client_address(i) for i in tls_cluster.ids]
    with KVClient(addresses, timeout=2, tls=client_context(other, "admin")) as stranger, \
            pytest.raises(KVError, match="CERTIFICATE_VERIFY_FAILED"):
        stranger.put("k", "v")


def _hello_over_tls(c: LocalCluster, port: int, context: ssl.SSLContext, claimed: int, hostname: str) -> None:
    """Dial a node's peer port over TLS and send a valid hello (the cluster key) claiming to be `claimed`,
    then a vote request; returns once the node has closed the connection (or after 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=hostname) as s:
        challenge = b""
        while len(challenge) < HEADER.size + CHALLENGE_SIZE:
            challenge += s.recv(HEADER.size + CHALLENGE_SIZE - len(challenge))
        session = OutboundSession(c.key, claimed, 1)
        s.sendall(session.hello(challenge) + session.seal(encode_messages([VoteRequest(claimed, 99, 0, 0)])))
        with contextlib.suppress(OSError):
            s.settimeout(5)
            assert s.recv(1) == b""  # the node never writes after the challenge: this is its close


def test_a_peer_certificate_must_name_the_node_its_hello_claims(tls_cluster):
    c = tls_cluster
    before = c.statuses([1])[1]
    # node 2's own certificate and the cluster key, claiming to be node 3: refused
    as_node2 = NodeTls(c.folder, 2).peer_client
    _hello_over_tls(c, c.ports[1], as_node2, claimed=3, hostname=node_name(1))
    # a client's certificate (same CA) claiming to be node 2: refused
    as_client = client_context(c.folder, "admin")
    _hello_over_tls(c, c.ports[1], as_client, claimed=2, hostname=node_name(1))
    after = c.statuses([1])[1]
    assert after["refused"].get("wrong_certificate", 0) == before["refused"].get("wrong_certificate", 0) + 2
    assert after["term"] < 99  # the vote request that came with the refused hellos was dropped
    # no certificate at all: the TLS handshake itself fails
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(tls_folder(c.folder) / "ca.pem")
    with socket.create_connection(("127.0.0.1", c.ports[1]), timeout=5) as raw, \
            bare.wrap_socket(raw, server_hostname=node_name(1)) as s, \
            pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        s.settimeout(5)
        if not s.recv(HEADER.size + CHALLENGE_SIZE):  # (TLS 1.3: the refusal arrives after the handshake)
            raise ConnectionError("closed")
    # and the cluster still serves
    with c.client() as client:
        client.put("after", "ok")
        assert client.get("after") == "ok"


def test_cluster_init_writes_private_keys_and_names_each_certificate(tmp_path):
    init_tls(tmp_path, [1, 2], ["admin", "app"])
    tls = tls_folder(tmp_path)
    for name in ("ca-key.pem", "node-1-key.pem", "node-2-key.pem", "client-admin-key.pem", "client-app-key.pem",
                 "client.token"):
        assert stat.S_IMODE((tls / name).stat().st_mode) == 0o600, name
    assert len(read_token(tmp_path)) == 64
    with pytest.raises(ValueError, match="clients"):
        init_tls(tmp_path, [], ["no spaces"])
    with pytest.raises(ValueError, match=r"node-3\.pem is missing"):
        NodeTls(tmp_path, 3)


def test_certificate_name_reads_the_verified_certificate_of_the_other_end(tmp_path):
    init_tls(tmp_path, [7])
    node = NodeTls(tmp_path, 7)
    server = socket.create_server(("127.0.0.1", 0))
    names: list[str | None] = []

    def serve() -> None:
        conn, _ = server.accept()
        with node.client_server.wrap_socket(conn, server_side=True) as s:
            names.append(certificate_name(_Extra(s)))
            s.recv(1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with socket.create_connection(server.getsockname()) as raw, \
            client_context(tmp_path, "admin").wrap_socket(raw) as s:
        names.append(certificate_name(_Extra(s)))  # the node's, seen by the client
        s.sendall(b"x")
    t.join(5)
    server.close()
    assert sorted(names, key=str) == ["raftlab-client-admin", "raftlab-node-7"]


class _Extra:
    """A blocking ssl socket seen through asyncio's `get_extra_info`."""

    def __init__(self, s: ssl.SSLSocket) -> None:
        self.s = s

    def get_extra_info(self, name: str) -> object:
        assert name == "peercert"
        return self.s.getpeercert()
