"""The faults a `Simulation` can inject besides crashes: process pauses, the network's links, and
single messages (lost, delivered early and out of order, or duplicated, by their id: what a model
checker's counterexample needs to be replayed action by action).

`Faults` is a part of `Simulation` (its base class), kept here so that simulation.py holds the event
loop: each method is an intervention, recorded in the history (so that `rewind` replays it) and
explained in the trace.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .trace import SIM, SimKind, TraceEvent

if TYPE_CHECKING:
    from ..core import Replica
    from .history import History
    from .simulation import InFlight

_RESUME = 2  # the event-queue kind of a paused node's resumption (the event loop's own)
_US = 1_000_000


def _us(seconds: float) -> int:
    return math.ceil(seconds * _US - 1e-6)


class Faults:
    """Process pauses, partitions, one-way cuts, the majorities ring, and lost, early and duplicated
    messages."""

    if TYPE_CHECKING:  # what the faults use of the simulation
        ids: tuple[int, ...]
        n: int
        now_us: int
        history: History
        _replicas: dict[int, Replica | None]
        _cut: set[tuple[int, int]]
        _drop_next: Counter[tuple[int, int]]
        _in_flight: dict[int, InFlight]
        _paused: dict[int, int]
        _parked: dict[int, list[int]]
        _queue: list[tuple]
        _seq: int
        _message_ids: int
        _incarnation: dict[int, int]

        def _check_node(self, node: int) -> None: ...
        def _record(self, kind: str, node: int | None, rule: str, **data: Any) -> TraceEvent: ...
        def _lost(self, flight: InFlight, why: str) -> TraceEvent: ...
        def _wire(self, flight: InFlight, **data: Any) -> None: ...
        def _arrive(self, flight: InFlight, incarnation: int, time: int | None = None) -> TraceEvent | None: ...

    def pause(self, node: int, seconds: float) -> None:
        """Pause `node`'s process for `seconds` of virtual time (a long garbage collection, a stalled
        virtual machine): it takes no steps, so none of its timers fire, the messages that arrive for
        it wait (and transitions submitted to it too), and it keeps its whole state, volatile state
        included; the network is unchanged. Then it resumes: what waited is delivered, in arrival
        order, before its overdue timers fire. Pausing a paused node sets when it resumes (``0``: now);
        a crash ends a pause; a crashed node is not paused. A paused leader is still `leader()`."""
        self._check_node(node)
        if type(seconds) not in (int, float) or not 0 <= seconds < math.inf:
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        self.history.log("pause", node, seconds)
        if self._replicas[node] is None:
            return
        until = self.now_us + _us(seconds)
        self._paused[node] = until
        self._parked.setdefault(node, [])
        self._seq += 1
        heapq.heappush(self._queue, (until, self._seq, _RESUME, node, self._incarnation[node]))
        self._record(SimKind.PAUSE, node, SIM, seconds=seconds)

    def paused_until(self, node: int) -> float | None:
        """When paused `node` resumes (virtual seconds), or None if it is not paused."""
        self._check_node(node)
        until = self._paused.get(node)
        return None if until is None else until / _US

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between nodes of different groups (nodes in no group form one more group)."""
        sets = [set(g) for g in groups]
        for g in sets:
            for node in g:
                self._check_node(node)
        rest = set(self.ids).difference(*sets)
        if rest:
            sets.append(rest)
        self.history.log("partition", *[sorted(g) for g in groups])
        side = {node: k for k, g in enumerate(sets) for node in g}
        self._cut |= {(a, b) for a in self.ids for b in self.ids if side[a] != side[b]}
        self._record(SimKind.NETWORK, None, SIM, what=f"partitioned into {[sorted(g) for g in sets]}")

    def ring(self, order: Iterable[int] | None = None) -> None:
        """Cut links so that every node sees a majority, itself included, but each a different one: the
        nodes are placed on a ring in `order` (default: by id) and each keeps its links (both ways) to
        the ``k = ceil((n // 2) / 2)`` nearest nodes on each side only, so it reaches ``2k + 1`` nodes
        with itself, a majority. For 5 nodes, each sees its two neighbours: 0-1-2-3-4-0 gives node 0
        the majority {4, 0, 1} and node 2 {1, 2, 3}. A leader then reaches only part of the cluster
        while the others can elect a leader of their own (no one can stay leader for long). Adds to
        the cuts in force; `heal` undoes it. With 3 nodes or fewer nothing is cut (every majority
        there is the whole ring)."""
        nodes = list(self.ids) if order is None else list(order)
        if sorted(nodes) != list(self.ids):
            raise ValueError(f"order must name every node once, not {nodes!r}")
        self.history.log("ring", nodes)
        n, k = self.n, (self.n // 2 + 1) // 2
        place = {node: p for p, node in enumerate(nodes)}
        far = {(a, b) for a in self.ids for b in self.ids
               if a != b and min(abs(place[a] - place[b]), n - abs(place[a] - place[b])) > k}
        self._cut |= far
        ring = "-".join(map(str, nodes))
        self._record(SimKind.NETWORK, None, SIM, what=f"links cut into a ring of majorities {ring}: each node reaches "
                                                      f"only the {k} nearest on each side ({2 * k + 1} of {n} with "
                                                      f"itself, a majority)")

    def heal(self) -> None:
        """Restore every link (undo partitions, disconnections and cuts)."""
        self.history.log("heal")
        self._cut.clear()
        self._record(SimKind.NETWORK, None, SIM, what="all links healed")

    def disconnect(self, node: int) -> None:
        """Cut every link to and from `node`."""
        self._check_node(node)
        self.history.log("disconnect", node)
        self._cut |= {(node, o) for o in self.ids if o != node} | {(o, node) for o in self.ids if o != node}
        self._record(SimKind.NETWORK, node, SIM, what=f"node {node} disconnected")

    def connect(self, node: int) -> None:
        """Restore every link to and from `node`."""
        self._check_node(node)
        self.history.log("connect", node)
        self._cut = {(a, b) for a, b in self._cut if node not in (a, b)}
        self._record(SimKind.NETWORK, node, SIM, what=f"node {node} reconnected")

    def cut(self, source: int, destination: int) -> None:
        """Cut the one-way link from `source` to `destination`."""
        self._check_link(source, destination)
        self.history.log("cut", source, destination)
        self._cut.add((source, destination))
        self._record(SimKind.NETWORK, source, SIM, what=f"link {source}->{destination} cut")

    def uncut(self, source: int, destination: int) -> None:
        """Restore the one-way link from `source` to `destination`."""
        self._check_link(source, destination)
        self.history.log("uncut", source, destination)
        self._cut.discard((source, destination))
        self._record(SimKind.NETWORK, source, SIM, what=f"link {source}->{destination} restored")

    def drop_next(self, source: int, destination: int) -> None:
        """Lose the next message sent from `source` to `destination`."""
        self._check_link(source, destination)
        self.history.log("drop_next", source, destination)
        self._drop_next[(source, destination)] += 1

    def _check_link(self, source: int, destination: int) -> None:
        self._check_node(source)
        self._check_node(destination)

    def drop_message(self, message_id: int) -> None:
        """Lose one message that is on its way (by its `InFlight.id`)."""
        flight = self._in_flight.pop(message_id, None)
        if flight is None:
            raise ValueError(f"no message {message_id} is in flight")
        self.history.log("drop_message", message_id)
        self._lost(flight, "it was dropped by hand")

    def deliver_message(self, message_id: int) -> TraceEvent | None:
        """Deliver one message that is on its way (by its `InFlight.id`) now, whenever it was due to
        arrive and whatever is ahead of it, as its arrival would be: its receiver handles it, or it is
        lost if the receiver crashed or the link was cut meanwhile. Not a step: the clock stays. Returns
        the delivery (or the loss); None if the receiver is paused: the message waits for it, as any
        message arriving then does."""
        flight = self._in_flight.pop(message_id, None)
        if flight is None:
            raise ValueError(f"no message {message_id} is in flight")
        self.history.log("deliver_message", message_id)
        # (a crash loses the messages on their way: those in flight are for the receiver's current incarnation)
        return self._arrive(flight, self._incarnation[flight.destination])

    def duplicate_message(self, message_id: int) -> int:
        """Put a second copy of one message that is on its way (by its `InFlight.id`) on the wire, as the
        network's `duplicate` does, but due when the original is (just after it); returns the copy's id."""
        flight = self._in_flight.get(message_id)
        if flight is None:
            raise ValueError(f"no message {message_id} is in flight")
        self.history.log("duplicate_message", message_id)
        self._message_ids += 1
        copy = flight._replace(id=self._message_ids, copy=True)
        self._wire(copy, by_hand=True)
        return copy.id
