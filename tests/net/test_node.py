"""`KVNode` in this process, on asyncio's own event loop: the client protocol and `execute`.

A one-node cluster elects itself at once, so these tests need no other process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from raftlab.core import AppendEntryRequest, Role
from raftlab.machines.kv import KVCommand
from raftlab.net import node as node_module
from raftlab.net.client import KVError
from raftlab.net.codec import CHALLENGE_SIZE, HEADER, OutboundSession, encode_messages
from raftlab.net.node import MAX_REQUEST, YIELD_EVERY, KVNode, event_loop_runner

from .conftest import free_ports

pytestmark = pytest.mark.timeout(60)


def run_with_node(tmp_path: Path, test: Callable[[KVNode, tuple[str, int]], Awaitable[None]], *,
                  alone: bool = True) -> None:
    """Start a node (alone: a one-node cluster; else one of two, its peer never started), run `test`."""
    ports = free_ports(2)
    peers = {1: ("127.0.0.1", ports[0])} if alone else {1: ("127.0.0.1", ports[0]), 2: ("127.0.0.1", ports[1])}
    clients = {i: (h, p + 1000) for i, (h, p) in peers.items()}

    async def main() -> None:
        node = KVNode(1, peers, secrets.token_bytes(32), tmp_path / "node1", clients, heartbeat=0.02,
                      election=(0.05, 0.1))
        task = asyncio.create_task(node.run())
        try:
            for _ in range(200):
                if (node.replica.role is Role.LEADER and node.replica.commit_index >= 1) or not alone:
                    break
                await asyncio.sleep(0.01)
            await test(node, clients[1])
        finally:
            node.stop()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


async def lines(reader: asyncio.StreamReader, n: int) -> list[dict]:
    return [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(n)]


def test_pipelined_requests_are_each_answered_with_their_id(tmp_path):
    count = 5 * YIELD_EVERY + 7  # more than one turn's worth, in one write

    async def test(node: KVNode, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"".join(json.dumps({"id": n, "op": "put", "client": 7, "seq": n + 1, "key": f"k{n % 10}",
                                          "value": str(n)}).encode() + b"\n" for n in range(count)))
        replies = await lines(reader, count)
        assert sorted(r["id"] for r in replies) == list(range(count))
        assert all(r["ok"] for r in replies)
        writer.write(b'{"id": "g", "op": "get", "client": 7, "seq": 999999, "key": "k3"}\n')
        (reply,) = await lines(reader, 1)
        assert reply == {"ok": True, "result": str(count - 1 - (count - 1 - 3) % 10), "id": "g"}
        writer.close()

    run_with_node(tmp_path, test)


def test_bad_requests_get_a_clear_error_and_the_connection_keeps_serving(tmp_path):
    async def test(node: KVNode, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"not json\n[1, 2]\n" + b'{"id": 3, "op": "fly"}\n'
                     + b'{"id": 4, "op": "put", "client": -1, "seq": 1, "key": "a", "value": "b"}\n'
                     + b'{"id": 5, "op": "put", "client": 1, "seq": 1, "key": "a", "value": "b"}\n')
        replies = await lines(reader, 5)
        assert [r["error"] for r in replies[:4]] == ["bad_request"] * 4
        assert "unknown op 'fly'" in replies[2]["detail"] and replies[2]["id"] == 3
        assert replies[4] == {"ok": True, "result": None, "id": 5}
        writer.close()

    run_with_node(tmp_path, test)


def test_a_request_line_over_the_limit_is_refused_and_the_connection_closed(tmp_path):
    async def test(node: KVNode, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b'{"id": 1, "op": "put", "key": "' + b"x" * (MAX_REQUEST + 10))  # no newline yet
        (reply,) = await lines(reader, 1)
        assert reply["error"] == "bad_request" and "too long" in reply["detail"]
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the node
        assert node.replica.role is Role.LEADER  # which keeps serving
        assert await node.execute(KVCommand(1, 1, "put", "a", "b")) is None

    run_with_node(tmp_path, test)


def test_execute_runs_a_command_through_the_log_in_process(tmp_path):
    async def test(node: KVNode, address: tuple[str, int]) -> None:
        before = node.replica.commit_index
        assert await node.execute(KVCommand(5, 1, "put", "a", "1")) is None
        assert await node.execute(KVCommand(5, 2, "append", "a", "2")) == "12"
        assert await node.execute(KVCommand(5, 2, "append", "a", "2")) == "12"  # a retry applies once
        assert await node.execute(KVCommand(5, 3, "get", "a")) == "12"
        assert node.replica.commit_index == before + 4

    run_with_node(tmp_path, test)


def test_a_node_that_is_not_leader_says_so_to_clients_and_to_execute(tmp_path):
    async def test(node: KVNode, address: tuple[str, int]) -> None:
        await asyncio.sleep(0.3)  # it campaigns, but its only peer is down: no majority
        assert node.replica.role is not Role.LEADER
        with pytest.raises(KVError, match="not_leader"):
            await node.execute(KVCommand(5, 1, "put", "a", "1"))
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b'{"id": 1, "op": "put", "client": 1, "seq": 1, "key": "a", "value": "b"}\n')
        assert (await lines(reader, 1))[0] == {"ok": False, "error": "not_leader", "leader": None, "id": 1}
        writer.close()

    run_with_node(tmp_path, test, alone=False)


def test_event_loop_choice_is_validated():
    assert event_loop_runner("asyncio") is asyncio.run
    with pytest.raises(ValueError, match="loop must be"):
        event_loop_runner("trio")
    with pytest.raises(ValueError, match="snapshot_every"):
        KVNode(1, {1: ("127.0.0.1", 1)}, b"k" * 32, "/nonexistent-never-created", {1: ("127.0.0.1", 2)},
               snapshot_every=-1)


def test_unsafe_no_fsync_keeps_sqlite_but_skips_the_fsync(tmp_path):
    for fsync, level in ((True, 2), (False, 1)):
        node = KVNode(1, {1: ("127.0.0.1", 1)}, b"k" * 32, tmp_path / str(fsync), {1: ("127.0.0.1", 2)}, fsync=fsync)
        try:
            assert node.storage._db.execute("PRAGMA synchronous").fetchone() == (level,)
        finally:
            node.storage.close()


def test_reads_are_answered_from_the_store_without_a_log_write(tmp_path):
    count = 3 * YIELD_EVERY

    async def test(node: KVNode, address: tuple[str, int]) -> None:
        assert await node.execute(KVCommand(5, 1, "put", "a", "1")) is None
        last, commit = node.replica.log.last_index, node.replica.commit_index
        assert await node.read("a") == "1" and await node.read("nothing") is None
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"".join(json.dumps({"id": n, "op": "read", "key": "a" if n % 2 else "b"}).encode() + b"\n"
                              for n in range(count)))
        replies = await lines(reader, count)
        assert sorted(r["id"] for r in replies) == list(range(count))
        assert all(r == {"ok": True, "result": "1" if r["id"] % 2 else None, "id": r["id"]} for r in replies)
        # a read sees the write acknowledged just before it
        writer.write(b'{"id": "w", "op": "put", "client": 5, "seq": 2, "key": "b", "value": "2"}\n')
        assert (await lines(reader, 1))[0]["ok"]
        writer.write(b'{"id": "r", "op": "read", "key": "b"}\n')
        assert await lines(reader, 1) == [{"ok": True, "result": "2", "id": "r"}]
        writer.write(b'{"id": "x", "op": "read", "key": 7}\n')
        assert (await lines(reader, 1))[0]["error"] == "bad_request"
        writer.close()
        assert node.replica.log.last_index == last + 1 and node.replica.commit_index == commit + 1  # the put only
        status = node.status()
        assert status["reads_answered"] == count + 3
        assert 1 <= status["read_indexes"] < count  # reads arriving together share one read index

    run_with_node(tmp_path, test)


def test_transfer_requests_are_checked_and_a_node_without_a_leader_refuses_reads(tmp_path):
    async def alone(node: KVNode, address: tuple[str, int]) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b'{"id": 1, "op": "transfer", "to": 9}\n{"id": 2, "op": "transfer", "to": "1"}\n'
                     b'{"id": 3, "op": "transfer", "to": 1}\n')
        replies = await lines(reader, 3)
        assert [r["error"] for r in replies[:2]] == ["not_a_peer", "not_a_peer"] and "[1]" in replies[0]["detail"]
        assert replies[2] == {"ok": True, "result": {"leader": 1, "term": node.replica.current_term}, "id": 3}
        writer.close()
        status = node.status()  # the defaults of raftlab node: PreVote and CheckQuorum on
        assert (status["pre_vote"], status["check_quorum"], status["read_lease"]) == (True, True, False)

    run_with_node(tmp_path / "alone", alone)

    async def follower(node: KVNode, address: tuple[str, int]) -> None:
        await asyncio.sleep(0.3)  # its only peer is down: no leader
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b'{"id": 1, "op": "transfer", "to": 2}\n{"id": 2, "op": "read", "key": "a"}\n')
        assert await lines(reader, 2) == [{"ok": False, "error": "not_leader", "leader": None, "id": 1},
                                          {"ok": False, "error": "not_leader", "leader": None, "id": 2}]
        writer.close()
        with pytest.raises(KVError, match="not_leader"):
            await node.read("a")
        status = node.status()
        assert (status["pre_vote"], status["check_quorum"], status["read_lease"]) == (True, True, False)
        assert status["term"] == 0  # PreVote: a node that cannot win changes no term

    run_with_node(tmp_path / "follower", follower, alone=False)


def test_a_read_forwarded_to_a_leader_that_never_answers_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(node_module, "REQUEST_TIMEOUT", 0.3)

    async def test(node: KVNode, address: tuple[str, int]) -> None:
        # play node 2, a leader that heartbeats node 1 and never answers it (nothing listens on its port)
        for _ in range(200):  # (the node may not be listening yet)
            try:
                peer_reader, peer_writer = await asyncio.open_connection(*node.cluster.address)
                break
            except OSError:
                await asyncio.sleep(0.01)
        session = OutboundSession(node.cluster.key, 2, 1)
        peer_writer.write(session.hello(await peer_reader.readexactly(HEADER.size + CHALLENGE_SIZE)))
        stop = asyncio.Event()

        async def heartbeats() -> None:
            while not stop.is_set():
                peer_writer.write(session.seal(encode_messages([AppendEntryRequest(2, 1, 0, 0, (), 0)])))
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(heartbeats())
        try:
            for _ in range(200):
                if node.replica.leader_id == 2:
                    break
                await asyncio.sleep(0.01)
            assert node.replica.leader_id == 2 and node.replica.role is Role.FOLLOWER
            reader, writer = await asyncio.open_connection(*address)
            writer.write(b'{"id": 1, "op": "read", "key": "a"}\n')
            (reply,) = await lines(reader, 1)
            assert reply["error"] == "timeout" and reply["id"] == 1
            assert node.replica.leader_id == 2  # the leader was heard from throughout: only the read was lost
            writer.close()
            assert node._waiting == {}  # nothing kept for the expired read
        finally:
            stop.set()
            await beating
            peer_writer.close()

    run_with_node(tmp_path, test, alone=False)


def test_read_lease_needs_check_quorum():
    with pytest.raises(ValueError, match="read_lease needs check_quorum"):
        KVNode(1, {1: ("127.0.0.1", 1), 2: ("127.0.0.1", 3)}, b"k" * 32, "/nonexistent-never-created",
               {1: ("127.0.0.1", 2)}, check_quorum=False, read_lease=True)
