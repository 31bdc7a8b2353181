"""Replicas on threads in one process, in real time: the harness of Little Raft's example and tests.

`ThreadNetwork` is an in-process network: `network.cluster(i)` is replica `i`'s `Cluster`, and
`network.wakeups[i]` is the `recv_msg` queue to hand to `Replica.start`. It can drop a fraction of
messages and shuffle delivery order, from its own seeded random generator. It sits outside the
core: it uses threads and real time, which the core never does.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterable

from .core import Message, ReplicaID


class ThreadNetwork:
    """Mailboxes for replicas running on threads.

    Args:
        ids: the replicas.
        drop: probability that a message is lost (0 <= drop < 1).
        shuffle: deliver the messages waiting in a mailbox in random order.
        seed: seed of the network's random generator (drops and shuffles).
    """

    def __init__(self, ids: Iterable[ReplicaID], *, drop: float = 0.0, shuffle: bool = False,
                 seed: int | None = None) -> None:
        if not 0.0 <= drop < 1.0:
            raise ValueError(f"drop must be a probability in [0, 1), not {drop!r}")
        self.ids = tuple(ids)
        self.drop = drop
        self.shuffle = shuffle
        self.wakeups: dict[ReplicaID, queue.Queue] = {i: queue.Queue() for i in self.ids}  # recv_msg queues
        self.leaders: dict[ReplicaID, ReplicaID | None] = {i: None for i in self.ids}  # leader each one knows
        self.sent = 0  # messages handed to the network
        self.dropped = 0  # of which lost
        self._mailboxes: dict[ReplicaID, list[Message]] = {i: [] for i in self.ids}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def __repr__(self) -> str:
        return f"ThreadNetwork(ids={self.ids}, drop={self.drop}, shuffle={self.shuffle}, sent={self.sent})"

    def cluster(self, id: ReplicaID) -> ThreadCluster:
        """The `Cluster` of replica `id`."""
        if id not in self._mailboxes:
            raise ValueError(f"id {id!r} is not one of this network's replicas {self.ids}")
        return ThreadCluster(self, id)

    def halt(self) -> None:
        """Make every replica's `start` loop return."""
        self._halt.set()

    def leader(self) -> ReplicaID | None:
        """A leader that a majority of replicas currently recognise, if any."""
        with self._lock:
            known = list(self.leaders.values())
        for candidate in set(known) - {None}:
            if 2 * known.count(candidate) > len(known):
                return candidate
        return None

    def _send(self, to_id: ReplicaID, message: Message) -> None:
        with self._lock:
            self.sent += 1
            if to_id not in self._mailboxes or self._rng.random() < self.drop:
                self.dropped += 1
                return
            self._mailboxes[to_id].append(message)
        self.wakeups[to_id].put(None)

    def _receive(self, id: ReplicaID) -> list[Message]:
        with self._lock:
            messages, self._mailboxes[id] = self._mailboxes[id], []
            if self.shuffle:
                self._rng.shuffle(messages)
        return messages


class ThreadCluster:
    """One replica's view of a `ThreadNetwork` (implements `raftlab.core.Cluster`)."""

    def __init__(self, network: ThreadNetwork, id: ReplicaID) -> None:
        self.network = network
        self.id = id

    def __repr__(self) -> str:
        return f"ThreadCluster(id={self.id})"

    def send_message(self, to_id: ReplicaID, message: Message) -> None:
        """Queue `message` for `to_id` (or lose it); never blocks."""
        self.network._send(to_id, message)

    def receive_messages(self) -> list[Message]:
        """The messages waiting for this replica."""
        return self.network._receive(self.id)

    def halt(self) -> bool:
        """True once the network was halted."""
        return self.network._halt.is_set()

    def register_leader(self, leader_id: ReplicaID | None) -> None:
        """Record the leader this replica knows."""
        with self.network._lock:
            self.network.leaders[self.id] = leader_id

