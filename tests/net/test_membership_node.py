"""Membership change in `KVNode`s of this process (asyncio's own loop): the client operations and their
errors, addresses learned from member records (appended, in an installed snapshot, in a restarted
node's own file), and the transport's peer set following the configuration."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from raftlab.core import Configuration, Role
from raftlab.machines.kv import KVCommand
from raftlab.net.client import KVClient, KVError
from raftlab.net.node import MEMBER_PREFIX, KVNode, member_record, parse_member_record

from .conftest import free_ports

pytestmark = pytest.mark.timeout(90)

FAST = {"heartbeat": 0.03, "election": (0.3, 0.6)}


class Nodes:
    """KVNodes of one cluster on this event loop, started and stopped at will."""

    def __init__(self, folder: Path, n: int, **options: object) -> None:
        self.folder, self.options = folder, {**FAST, **options}
        self.key = secrets.token_bytes(32)
        ports = free_ports(n)
        self.peer = {i: ("127.0.0.1", p) for i, p in enumerate(ports, 1)}
        self.client = {i: (h, p + 1000) for i, (h, p) in self.peer.items()}
        self.nodes: dict[int, KVNode] = {}
        self.tasks: dict[int, asyncio.Task] = {}

    def start(self, i: int, members: list[int], **options: object) -> KVNode:
        node = KVNode(i, {j: self.peer[j] for j in members}, self.key, self.folder / f"n{i}",
                      {j: self.client[j] for j in members}, **{**self.options, **options})  # type: ignore[arg-type]
        self.nodes[i], self.tasks[i] = node, asyncio.create_task(node.run())
        return node

    async def stop(self, i: int) -> None:
        self.nodes.pop(i).stop()
        await asyncio.wait_for(self.tasks.pop(i), 10)

    async def stop_all(self) -> None:
        for i in list(self.nodes):
            await self.stop(i)

    def kv(self, ids: list[int], timeout: float = 20.0) -> KVClient:
        return KVClient([self.client[i] for i in ids], timeout=timeout)

    def leader(self) -> KVNode | None:
        leaders = [n for n in self.nodes.values() if n.replica.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_member_records_are_parsed_strictly():
    value = member_record(("127.0.0.1", 7004), ("127.0.0.1", 8004))
    assert parse_member_record(f"{MEMBER_PREFIX}4", value) == (4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
    for key, bad in [(f"{MEMBER_PREFIX}x", value), (f"{MEMBER_PREFIX}-4", value), (f"{MEMBER_PREFIX}٤", value),
                     ("other/4", value), (f"{MEMBER_PREFIX}4", "not json"), (f"{MEMBER_PREFIX}4", '{"peer": 1}'),
                     (f"{MEMBER_PREFIX}4", '{"peer": "h:1", "client": "h:0"}'), (f"{MEMBER_PREFIX}4", "[]"),
                     (f"{MEMBER_PREFIX}4", '{"peer": "h:1", "client": "h:2", "x": 1}'), (f"{MEMBER_PREFIX}4", None)]:
        assert parse_member_record(key, bad) is None, (key, bad)


def test_membership_requests_on_a_one_node_cluster_and_their_errors(tmp_path):
    async def test() -> None:
        nodes = Nodes(tmp_path, 2)
        node = nodes.start(1, [1])
        try:
            await until(lambda: node.replica.role is Role.LEADER and node.replica.commit_index >= 1)
            with nodes.kv([1], timeout=2.0) as kv:
                call = asyncio.to_thread
                with pytest.raises(KVError, match="last voter: node 1 is the only voter"):
                    await call(kv.remove_member, 1)
                with pytest.raises(KVError, match="not a member: node 9 is not a member"):
                    await call(kv.promote_member, 9)
                with pytest.raises(KVError, match="not a member"):
                    await call(kv.remove_member, 9)
                with pytest.raises(KVError, match="bad request: keys starting with"):
                    await call(kv.put, f"{MEMBER_PREFIX}2", "x")
                with pytest.raises(KVError, match="already a member: node 1 is a voter"):
                    await call(kv.add_member, 1, "127.0.0.1:1", "127.0.0.1:2")
                # node 2 (never started) joins as a learner: a one-node majority commits it at once
                added = await call(kv.add_member, 2, nodes.peer[2], nodes.client[2])
                assert added["configuration"]["voters"] == [1] and added["configuration"]["learners"] == [2]
                assert added["addresses"]["2"] == {"peer": f"127.0.0.1:{nodes.peer[2][1]}",
                                                   "client": f"127.0.0.1:{nodes.client[2][1]}"}
                assert node.replica.configuration == Configuration.of([1], [2])
                assert node.cluster.linked == {2} and node.client_addresses[2] == nodes.client[2]
                assert await call(kv.get, f"{MEMBER_PREFIX}2") is not None  # readable, not writable
                assert (await call(kv.add_member, 2, nodes.peer[2], nodes.client[2]))["configuration"] == \
                    added["configuration"]  # asked again: done already
                with pytest.raises(KVError, match="already a member: node 2 is a learner already"):
                    await call(kv.add_member, 2, "127.0.0.1:1", "127.0.0.1:2")  # moved: remove it first
                # it never catches up: the leader refuses to promote it, with the core's reason (MC-LEARNER)
                with pytest.raises(KVError, match="change refused: server 2 must join as a learner and catch up"):
                    await call(kv.promote_member, 2)
                status = await call(kv.status, nodes.client[1])
                assert status["configuration"] == {"voters": [1], "learners": [2], "index": added["configuration"]
                                                   ["index"]}
                assert status["member"] == "voter" and status["match_index"] == {"2": 0}
                removed = await call(kv.remove_member, 2)
                assert removed["configuration"]["learners"] == []
                assert node.cluster.linked == {2}  # a member of the configuration before: still a known sender
                assert node.replica.configuration == Configuration.of([1])
        finally:
            await nodes.stop_all()
        # restarted on its file (its peers: itself only), it knows its configuration and node 2's addresses
        node = nodes.start(1, [1])
        try:
            assert node.replica.configuration == Configuration.of([1])
            assert node.cluster.peers == {2: nodes.peer[2]} and node.cluster.linked == {2}
            await until(lambda: node.replica.role is Role.LEADER)
        finally:
            await nodes.stop_all()

    run(test)


def test_new_members_learn_addresses_from_snapshots_and_restarted_members_from_their_files(tmp_path):
    async def test() -> None:
        nodes = Nodes(tmp_path, 5, snapshot_every=20)
        call = asyncio.to_thread
        try:
            for i in (1, 2, 3):
                nodes.start(i, [1, 2, 3])
            with nodes.kv([1, 2, 3]) as kv:
                for n in range(50):
                    await call(kv.put, f"k{n}", f"v{n}")
                added = await call(kv.add_member, 4, nodes.peer[4], nodes.client[4])
                four = nodes.start(4, [1, 2, 3, 4], learner=True)
                assert four.replica.configuration == Configuration.of([1, 2, 3], [4])
                await until(lambda: four.replica.last_applied >= added["configuration"]["index"])
                assert four.replica.log.base_index > 0  # it got the leader's snapshot (the log was compacted)
                assert four.replica.role is Role.FOLLOWER and four.replica.current_term > 0
                promoted = await call(kv.promote_member, 4)
                assert promoted["configuration"] == {"voters": [1, 2, 3, 4], "learners": [],
                                                     "index": added["configuration"]["index"] + 1}
                for n in range(50, 100):  # the snapshots now hold node 4's record and its configuration
                    await call(kv.put, f"k{n}", f"v{n}")
                leader = nodes.leader()
                if leader is None or leader.id == 4:
                    await call(kv.transfer, 1)
                added = await call(kv.add_member, 5, nodes.peer[5], nodes.client[5])
                # node 5 is told of 1, 2 and 3 only: it learns where 4 is from the snapshot it installs
                five = nodes.start(5, [1, 2, 3, 5], learner=True)
                assert 4 not in five.cluster.peers
                await until(lambda: five.replica.last_applied >= added["configuration"]["index"])
                assert five.replica.log.base_index > 0 and five.cluster.peers[4] == nodes.peer[4]
                assert five.client_addresses[4] == nodes.client[4] and five.cluster.linked == {1, 2, 3, 4}
                await call(kv.promote_member, 5)
                await call(kv.put, "last", "1")
            await until(lambda: all(n.replica.configuration.voters == {1, 2, 3, 4, 5} for n in nodes.nodes.values()))
            # restarted with only 1, 2 and 3 as peers, node 5 knows every member from its own file
            await nodes.stop(5)
            five = nodes.start(5, [1, 2, 3, 5])
            assert five.replica.configuration == Configuration.of([1, 2, 3, 4, 5])
            assert five.cluster.peers[4] == nodes.peer[4] and five.cluster.linked == {1, 2, 3, 4}
            await until(lambda: five.store.read("last") == "1")
            assert {k: five.store.read(k) for k in (f"k{n}" for n in range(100))} == \
                {f"k{n}": f"v{n}" for n in range(100)}
            with nodes.kv([1, 2, 3, 4, 5]) as kv:
                for gone in (1, 2):
                    await call(kv.remove_member, gone)
                await call(kv.put, "after", "removal")
                assert await call(kv.get, "after") == "removal"
            await until(lambda: all(nodes.nodes[i].replica.configuration.voters == {3, 4, 5} for i in (3, 4, 5)))
            # the members keep no connection to the removed nodes once no configuration they know holds them
            # (the latest two: the one before the latest names senders still accepted, MC-LATEST)
            with nodes.kv([3, 4, 5]) as kv:
                await call(kv.add_member, 6, "127.0.0.1:1", "127.0.0.1:2")
                await until(lambda: all(nodes.nodes[i].cluster.linked == {3, 4, 5, 6} - {i} for i in (3, 4, 5)))
                await call(kv.remove_member, 6)
            await until(lambda: all(nodes.nodes[i].replica.configuration.learners == set() for i in (3, 4, 5)))
            assert all(nodes.nodes[i].cluster.linked == {3, 4, 5, 6} - {i} for i in (3, 4, 5))
            assert all(nodes.nodes[i].status()["refused_total"] == 0 for i in (3, 4, 5))
        finally:
            await nodes.stop_all()

    run(test)


def test_configurations_and_member_records_are_recovered_from_the_node_file(tmp_path):
    from raftlab.core import LogEntry, Snapshot

    nodes = Nodes(tmp_path, 1)
    c = Configuration.of([1, 7], [9])
    record = member_record(("10.0.0.7", 7), ("10.0.0.7", 8))

    def open_node(folder: str) -> KVNode:
        return KVNode(1, {1: nodes.peer[1]}, nodes.key, tmp_path / folder, {1: nodes.client[1]})

    for folder, snapshot in (("log", False), ("snapshot", True)):
        node = open_node(folder)
        try:
            node.storage.append([LogEntry(KVCommand(5, 1, "put", f"{MEMBER_PREFIX}7", record), 1, 1),
                                 LogEntry(c, 2, 1), LogEntry(KVCommand(5, 2, "put", "a", "b"), 3, 1)])
            if snapshot:  # the store as of index 2: the record applied; the configuration attached (MC-SNAPSHOT)
                node.storage.save_snapshot(Snapshot(2, 1, (((f"{MEMBER_PREFIX}7", record),), ((5, (1, None)),)), None))
        finally:
            node.storage.close()
        node = open_node(folder)  # (JSON in the sqlite file: storage_dumps / storage_loads, never pickle)
        try:
            assert node.replica.configuration == c and node.replica.config_index == 2
            assert node.storage.log.base_index == (2 if snapshot else 0)
            if snapshot:
                assert node.storage.log.snapshot is not None and node.storage.log.snapshot.configuration == c
            assert node.cluster.peers == {7: ("10.0.0.7", 7)} and node.cluster.linked == {7}
            assert node.client_addresses[7] == ("10.0.0.7", 8)
            assert node.status()["configuration"] == {"voters": [1, 7], "learners": [9], "index": 2}
            assert node.status()["member"] == "voter"
        finally:
            node.storage.close()


def test_the_transport_adds_moves_and_drops_peers_at_run_time():
    from raftlab.core import VoteResponse
    from raftlab.net import TcpCluster

    async def test() -> None:
        key = secrets.token_bytes(32)
        ports = free_ports(3)
        a_addr, b_addr, b2_addr = (("127.0.0.1", p) for p in ports)
        a = TcpCluster(1, {1: a_addr}, key)
        b = TcpCluster(2, {1: a_addr, 2: b_addr}, key)
        b2 = TcpCluster(2, {1: a_addr, 2: b2_addr}, key)  # node 2 again, moved to another port
        for c in (a, b, b2):
            await c.start()
        try:
            async def deliver(to: TcpCluster, term: int) -> None:
                deadline = time.monotonic() + 10
                while True:  # (until the link is up: messages sent before are lost, as Raft allows)
                    a.send_message(2, VoteResponse(1, term, False))
                    a.flush()
                    await asyncio.sleep(0.02)
                    if any(m == VoteResponse(1, term, False) for m in to.receive_messages()):
                        return
                    assert time.monotonic() < deadline

            assert a.linked == frozenset()
            a.send_message(2, VoteResponse(1, 0, False))  # no address yet: lost
            a.set_address(2, b_addr)
            assert a.linked == frozenset()  # known, not a peer yet
            a.connect([1, 2, 3])  # (itself and a server without an address are left out)
            assert a.linked == {2}
            await deliver(b, 1)
            a.set_address(2, b2_addr)  # moved: the old connection is dropped, the new address dialled
            await deliver(b2, 2)
            assert b.receive_messages() == [] or all(m.term == 1 for m in b.receive_messages())
            a.connect([])
            assert a.linked == frozenset() and a.peers == {2: b2_addr}
            a.send_message(2, VoteResponse(1, 3, False))
            a.flush()
            await asyncio.sleep(0.1)
            assert b2.receive_messages() == []
            assert a.stats.peers[2].messages_sent >= 2 and sum(c.stats.refused.total() for c in (a, b, b2)) == 0
        finally:
            for c in (a, b, b2):
                await c.close()

    run(test)
