"""Bounded client sessions on a real 3-node cluster over TCP (``raftlab node --session-timeout``).

Every test is bounded in time; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from raftlab.net import KVClient, SessionExpiredError
from raftlab.net.commands import parse_session_timeout

from .conftest import ROOT, LocalCluster

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 1.0  # the cluster's session timeout, in seconds


@pytest.fixture
def bounded3(tmp_path):
    cluster = LocalCluster(tmp_path, 3, options=("--session-timeout", str(TIMEOUT)))
    try:
        for i in cluster.ids:
            cluster.start(i)
        cluster.wait_leader()
        yield cluster
    finally:
        cluster.stop_all()


def _raw(cluster: LocalCluster, leader: int, *requests: dict) -> list[dict]:
    """Send `requests` on one connection to `leader`'s client port; their replies, in order."""
    with socket.create_connection(cluster.client_address(leader), timeout=10) as sock:
        file = sock.makefile("rb")
        replies = []
        for n, request in enumerate(requests):
            sock.sendall(json.dumps({**request, "id": n}).encode() + b"\n")
            replies.append(json.loads(file.readline()))
        return replies


def test_a_fresh_client_registers_and_an_idle_one_registers_again_transparently(bounded3):
    with bounded3.client() as client:
        client.put("k", "v")
        assert client.registrations == 1  # before its first command
        assert client.append("k", "w") == "vw" and client.get("k") == "vw"
        assert client.registrations == 1
        time.sleep(TIMEOUT * 1.5)  # idle past the timeout: its session expires with its next command
        assert client.append("k", "x") == "vwx"  # refused unapplied, so registered again and sent again
        assert client.registrations == 2
    statuses = bounded3.statuses()
    assert all(s["session_timeout"] == TIMEOUT for s in statuses.values())


def test_a_client_that_never_registered_gets_session_expired_and_nothing_is_applied(bounded3):
    leader = bounded3.wait_leader()
    with bounded3.client() as client:
        client.put("k", "v")  # (a registration with the cluster's timeout: from now on sessions are needed)
    (reply,) = _raw(bounded3, leader, {"op": "put", "client": 424242, "seq": 1, "key": "k", "value": "bad"})
    assert reply["ok"] is False and reply["error"] == "session_expired"
    assert "register" in reply["message"]
    with bounded3.client() as client:
        assert client.get("k") == "v"
    registered = _raw(bounded3, leader, {"op": "register", "client": 424242, "seq": 2},
                      {"op": "put", "client": 424242, "seq": 3, "key": "k", "value": "good"})
    assert [r["ok"] for r in registered] == [True, True]


def test_a_late_retry_after_expiry_is_refused_and_never_applied_twice(bounded3):
    leader = bounded3.wait_leader()
    append = {"op": "append", "client": 77, "seq": 2, "key": "log", "value": "+"}
    first = _raw(bounded3, leader, {"op": "register", "client": 77, "seq": 1}, append)
    assert first[1] == {"ok": True, "result": "+", "id": 1}
    assert _raw(bounded3, leader, append)[0]["result"] == "+"  # a prompt retry: the cached answer
    time.sleep(TIMEOUT * 1.5)
    (late,) = _raw(bounded3, leader, append)  # the same (client, seq), after its session expired
    assert late["ok"] is False and late["error"] == "session_expired"
    with bounded3.client() as client:
        assert client.get("log") == "+"  # applied once
        assert client.get("log", through_log=True) == "+"
    for i in bounded3.ids:  # on every replica
        with KVClient([bounded3.client_address(i)]) as probe:
            assert probe.local_get(bounded3.client_address(i), "log") == "+"


def test_a_client_whose_possibly_applied_command_met_an_expired_session_gets_session_expired_error(bounded3):
    with bounded3.client() as client:
        client.put("log", "")
        real_call = client._call
        lost = []

        def lose_the_answer(address, request, timeout):
            reply = real_call(address, request, timeout)
            if request.get("op") == "append" and not lost:  # applied; its answer lost, and the client slow
                lost.append(reply)
                time.sleep(TIMEOUT * 1.5)
                raise ConnectionResetError("the answer was lost")
            return reply

        client._call = lose_the_answer  # type: ignore[method-assign]
        with pytest.raises(SessionExpiredError, match="may have been applied") as caught:
            client.append("log", "+")
        assert caught.value.maybe_applied is True
        assert lost and lost[0]["ok"] is True
        client._call = real_call  # type: ignore[method-assign]
        assert client.get("log") == "+"  # applied once: the retry was refused, not applied again
        assert client.append("log", "!") == "+!"  # the next command registers a new session
        assert client.registrations == 2


def test_the_session_table_stays_bounded(bounded3):
    for n in range(20):
        with bounded3.client() as client:
            client.put(f"k{n}", "v")
    assert max(s["sessions"] for s in bounded3.statuses().values()) >= 20
    time.sleep(TIMEOUT * 1.5)
    with bounded3.client() as client:
        client.put("last", "v")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and max(s["sessions"] for s in bounded3.statuses().values()) > 1:
            time.sleep(0.05)  # (the followers apply it a heartbeat later)
    assert [s["sessions"] for s in bounded3.statuses().values()] == [1, 1, 1]


def test_session_timeout_option_is_checked():
    assert parse_session_timeout("none") is None and parse_session_timeout("2.5") == 2.5
    for bad in ("0", "-3", "nan", "inf", "soon"):
        result = subprocess.run([sys.executable, "-m", "raftlab.cli", "node", "--id", "1", "--peers", "1=127.0.0.1:1",
                                 "--data-dir", "x", "--key-file", "x", "--session-timeout", bad], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "--session-timeout" in result.stderr and "positive" in result.stderr, bad
