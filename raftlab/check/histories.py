"""Seeded generators of concurrent-client histories, linearizable or with a planted stale read.

They exercise `raftlab.check` on histories shaped like Porcupine's test data (``benchmarks/bench_check.py``
and the tests use them): `kv_history`, put, get and append on several keys by 1, 10 or 50 clients,
and `register_history`, read, write and cas on one register with timeouts, as in Jepsen's etcd tests.

Clients run one operation at a time: each is called after its client's previous one returned (and a
pause to think) and takes a random time, so operations of different clients overlap. A simulated
linearizable store applies each operation at a random *linearization point* between its call and its
return, and the output recorded is what the store returned there. A timed-out operation has no return
(``ret=None``) and took effect at a random point after its call, or never; its client gives up on it
and goes on as a new client, as a Jepsen process does. So every history generated is linearizable,
unless `stale_read` plants one read that returns a value that no linearization allows.

    >>> from raftlab.check import check
    >>> check(kv_history(1, clients=10, operations=300)).ok
    True
    >>> print(check(kv_history(1, clients=10, operations=300, stale_read=True)))  # doctest: +ELLIPSIS
    not linearizable: no order of the first ... operations on key '...' (in call order) fits the model; ...
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from .linearizability import Operation

__all__ = ["kv_history", "register_history"]


@dataclass(slots=True)
class _Run:
    """An operation as generated: the operation (output not yet known) and when the store applies it."""

    op: Operation
    point: float | None  # its linearization point; None: it never took effect (timed out)


def _run_clients(rng: random.Random, clients: int, operations: int, timeouts: float,
                 draw: Callable[[random.Random, int], Operation]) -> list[_Run]:
    """`operations` operations of `clients` concurrent clients, drawn by ``draw(rng, client)`` (times 0).

    Durations are uniform in [0.1, 2] and pauses between a client's operations in [0, 0.5] (time units
    are arbitrary), so with many clients each operation overlaps many others. An operation times out
    with probability `timeouts`: its client waits 3 units, then goes on under a new id (client +
    `clients`); the operation takes effect at a point within 5 units after its call, or (one time in
    two) never.
    """
    free = [(rng.uniform(0.0, 0.5), c) for c in range(clients)]  # (time the client is free, its id)
    heapq.heapify(free)
    runs = []
    for _ in range(operations):
        now, client = heapq.heappop(free)
        call = now + rng.uniform(0.0, 0.5)
        op = draw(rng, client)
        if rng.random() < timeouts:
            point = call + rng.uniform(0.0, 5.0) if rng.random() < 0.5 else None
            runs.append(_Run(replace(op, call=call, ret=None), point))
            heapq.heappush(free, (call + 3.0, client + clients))
        else:
            ret = call + rng.uniform(0.1, 2.0)
            runs.append(_Run(replace(op, call=call, ret=ret), rng.uniform(call, ret)))
            heapq.heappush(free, (ret, client))
    return runs


def _apply(runs: list[_Run], step: Callable[[dict[str, object], Operation], object]) -> list[Operation]:
    """The history: each operation with the output ``step(store, op)`` gave at its linearization point."""
    store: dict[str, object] = {}
    outputs: dict[int, object] = {}
    for k in sorted((k for k, r in enumerate(runs) if r.point is not None), key=lambda k: runs[k].point or 0.0):
        outputs[k] = step(store, runs[k].op)
    return [r.op if r.op.ret is None else replace(r.op, output=outputs[k]) for k, r in enumerate(runs)]


def _kv_step(store: dict[str, object], op: Operation) -> object:
    """Apply put, get or append to `store`; return the output (the KVStore's: append returns the new value)."""
    if op.op == "get":
        return store.get(op.key)
    if op.op == "put":
        store[op.key] = op.value
        return None
    new = f"{store.get(op.key) or ''}{op.value}"
    store[op.key] = new
    return new


def kv_history(seed: int, *, clients: int, operations: int, keys: int = 10, timeouts: float = 0.0,
               stale_read: bool = False) -> list[Operation]:
    """A key-value history: get, put and append in equal shares on keys ``"0"`` to ``str(keys - 1)``.

    Every value written is unique (a put writes ``"p<n> "``, an append adds ``"a<n> "``), so the
    value a get returns tells which write it saw. With `stale_read`, one get (chosen at random among
    those that can be made stale) returns the value its key had before a write W, although W returned
    before the get was called and W itself followed the write of that value in real time: no
    linearization allows it. `seed` makes the history reproducible.

    >>> h = kv_history(7, clients=3, operations=6, keys=2)
    >>> len(h), sorted({op.op for op in h}) <= ["append", "get", "put"]
    (6, True)
    """
    rng = random.Random(seed)
    serial = iter(range(operations))

    def draw(rng: random.Random, client: int) -> Operation:
        kind, key = rng.choice(("get", "put", "append")), str(rng.randrange(keys))
        value = None if kind == "get" else f"{kind[0]}{next(serial)} "
        return Operation(client, kind, key, value, call=0.0)

    history = _apply(_run_clients(rng, clients, operations, timeouts, draw), _kv_step)
    return _plant_kv_stale_read(rng, history) if stale_read else history


def _plant_kv_stale_read(rng: random.Random, history: list[Operation]) -> list[Operation]:
    """`history` with one get made stale (see `kv_history`); unchanged if no get can be."""
    writes = [op for op in history if op.op != "get" and op.ret is not None]
    candidates = []
    for k, get in enumerate(history):
        if get.op != "get" or get.ret is None:
            continue
        before = [w for w in writes if w.key == get.key and w.ret is not None and w.ret < get.call]
        if not before:
            continue
        w = max(before, key=lambda op: op.ret or 0.0)  # the last write known done before the get
        earlier = [p for p in writes if p.key == get.key and p.ret is not None and p.ret < w.call]
        if earlier:  # the value of the last write known done before w: w overwrote it
            p = max(earlier, key=lambda op: op.ret or 0.0)
            candidates.append((k, p.value if p.op == "put" else p.output))
        else:  # the key was absent before w, and no write makes it absent again
            candidates.append((k, None))
    if not candidates:
        return history
    k, stale = rng.choice(candidates)
    return [*history[:k], replace(history[k], output=stale), *history[k + 1:]]


def _register_step(store: dict[str, object], op: Operation) -> object:
    """Apply read (a get), write (a put) or cas to the register `store["r"]`; return the output."""
    if op.op == "get":
        return store.get("r")
    if op.op == "put":
        store["r"] = op.value
        return None
    swapped = store.get("r") == op.expected
    if swapped:
        store["r"] = op.value
    return swapped


def register_history(seed: int, *, clients: int = 5, operations: int = 1000, values: int = 5,
                     timeouts: float = 0.1, stale_read: bool = False) -> list[Operation]:
    """A history of one register (key ``"r"``), like a Jepsen etcd test's: read, write and cas.

    Reads are gets, writes are puts and cas is the key-value cas, in equal shares, on values ``"0"``
    to ``str(values - 1)`` (Jepsen's etcd test uses 5). A fraction `timeouts` of the operations time
    out (`ret` None), as etcd's did under partitions. Values repeat, so with `stale_read` the read
    made stale returns a value that no operation could have written between the last write W known
    done before the read was called and the read's return (the register's value before any write, None,
    if no other value is so): no linearization allows it. Left unchanged if no read follows a write.

    >>> h = register_history(3, operations=50, timeouts=0.2)
    >>> {op.key for op in h}, any(op.ret is None for op in h)
    ({'r'}, True)
    """
    rng = random.Random(seed)

    def draw(rng: random.Random, client: int) -> Operation:
        kind = rng.choice(("get", "put", "cas"))
        value = None if kind == "get" else str(rng.randrange(values))
        expected = str(rng.randrange(values)) if kind == "cas" else None
        return Operation(client, kind, "r", value, expected, call=0.0)

    history = _apply(_run_clients(rng, clients, operations, timeouts, draw), _register_step)
    if not stale_read:
        return history
    changes = [op for op in history if op.ret is not None and (op.op == "put" or op.output is True)]
    candidates = []
    for k, read in enumerate(history):
        if read.op != "get" or read.ret is None:
            continue
        before = [w for w in changes if w.ret is not None and w.ret < read.call]
        if not before:
            continue
        w = max(before, key=lambda op: op.ret or 0.0)
        # the values the register can hold when the read takes effect: w's, or that of a write or cas
        # that may come after w (not known done before w was called) and before the read
        possible = {w.value} | {x.value for x in history if x.op != "get" and x.call < read.ret and x is not w
                                and (x.ret is None or x.ret > w.call) and x.output is not False}
        impossible = sorted({str(v) for v in range(values)} - {str(v) for v in possible})
        candidates.append((k, rng.choice(impossible) if impossible else None))
    if not candidates:
        return history
    k, stale = rng.choice(candidates)
    return [*history[:k], replace(history[k], output=stale), *history[k + 1:]]
