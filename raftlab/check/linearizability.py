"""A linearizability checker for histories of client operations, after Porcupine (Wing-Gong / Lowe search).

A history is a list of `Operation`: who called what, when it was invoked (`call`), when it returned
(`ret`) and what it returned (`output`). `check` decides whether some total order of the operations
(a *linearization*) respects real time (an operation that returned before another was invoked comes
first) and is a legal run of a sequential `Model`. `KV_MODEL`, the default, is a key-value store with
put, get, append, delete and cas, and read: a get served without a log write (ReadIndex or a lease,
thesis §6.4), which must return the latest value exactly as a get through the log must; its histories
are checked one key at a time.

Operations with an unknown outcome (``ret=None``: the client timed out, say) may or may not have taken
effect. The checker accepts both: such an operation is either left out of the linearization (it never
took effect) or placed anywhere after its call, with its output unconstrained. Linearizing it at the
very end is indistinguishable from leaving it out, so this is Porcupine's "return at infinity"; the
search simply stops as soon as every operation with a known return is linearized. The price: to
reject a history the search must try the unknown writes on a key in all useful combinations, so many
of them on one key can make a "not linearizable" verdict slow; `timeout` bounds it. An operation
that changes nothing (a get or a read, for `KV_MODEL`: the model's `read_only`) constrains nothing
when its outcome is unknown, so such operations are left out before the search.

    >>> h = [Operation(1, "put", "x", "a", call=0, ret=2),
    ...      Operation(2, "get", "x", call=1, ret=3, output="a")]
    >>> check(h).ok
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Any

__all__ = ["KV_MODEL", "LinearizabilityResult", "Model", "Operation", "check"]

READS = ("get", "read")
"""The key-value operations that return the key's value and change nothing: a get through the log, a
read without one (ReadIndex or a lease)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation in a history.

    Args:
        client: who issued it (informative only).  `call`, `ret` and `output` are keyword-only.
        op: ``"put"``, ``"get"``, ``"append"``, ``"delete"``, ``"cas"``, or ``"read"`` (a get answered
            without a log write: the same semantics, named apart so that reports tell them apart).
        key: the key it acts on.
        value: the value written by put and append, the new value of cas.
        expected: the value cas compares with (None: the key must be absent).
        call: invocation time.
        ret: return time, or None if the outcome is unknown (it may have taken effect at any time after
            `call`, or never); `output` is then ignored.
        output: get and read: the value, None if absent; put: None; append: the new value; delete: True if the
            key existed; cas: True if it swapped.

    >>> Operation(client=1, op="cas", key="x", value="b", expected="a", call=1.0, ret=1.5, output=True).op
    'cas'
    """

    client: int
    op: str
    key: str
    value: str | None = None
    expected: str | None = None
    _: KW_ONLY
    call: float
    ret: float | None = None
    output: object = None

    def __post_init__(self) -> None:
        if self.ret is not None and self.ret < self.call:
            raise ValueError(f"operation returns ({self.ret}) before it is called ({self.call})")


def never(op: Operation) -> bool:
    """False: no operation is known to be read-only (the default `Model.read_only`)."""
    return False


def kv_read_only(op: Operation) -> bool:
    """True for the key-value store's operations that change nothing: get and read."""
    return op.op in READS


def one_partition(history: Sequence[Operation]) -> list[list[Operation]]:
    """The whole history as a single partition (the default for a `Model`)."""
    return [list(history)] if history else []


def by_key(history: Sequence[Operation]) -> list[list[Operation]]:
    """One partition per key, in key order: operations on different keys never constrain each other."""
    groups: dict[str, list[Operation]] = {}
    for op in history:
        groups.setdefault(op.key, []).append(op)
    return [groups[k] for k in sorted(groups)]


def describe_operation(op: Operation) -> str:
    """A one-line account of `op`, e.g. ``client 1: put('x', 'a') -> None  [0, 2]``."""
    args = [repr(op.key)]
    if op.op == "cas":
        args.append(repr(op.expected))
    if op.value is not None or op.op in ("put", "append", "cas"):
        args.append(repr(op.value))
    outcome = f"-> {op.output!r}  [{op.call:g}, {op.ret:g}]" if op.ret is not None else f"-> ?  [{op.call:g}, ?]"
    return f"client {op.client}: {op.op}({', '.join(args)}) {outcome}"


@dataclass(frozen=True, slots=True)
class Model:
    """A sequential specification: what a correct, one-at-a-time object would do.

    Args:
        init: the initial state.
        step: ``step(state, op) -> (ok, new_state)``: whether `op` with its recorded output is legal in
            `state`, and the state after it. States must be hashable (they are memoised). When
            ``op.ret is None`` the output is unknown and `step` must accept any output.
        partition: splits a history into independently checked parts (default: one part).
        describe: a one-line account of an operation, for messages.
        read_only: whether an operation never changes the state (whatever the state): such an operation
            of unknown outcome is left out of the history, which it cannot constrain (default: none is).

    >>> counter = Model(init=lambda: 0, step=lambda s, op: (op.ret is None or op.output == s + 1, s + 1))
    >>> check([Operation(1, "incr", "c", call=0, ret=1, output=1)], counter).ok
    True
    """

    init: Callable[[], Hashable]
    step: Callable[[Any, Operation], tuple[bool, Hashable]]
    partition: Callable[[Sequence[Operation]], list[list[Operation]]] = one_partition
    describe: Callable[[Operation], str] = describe_operation
    read_only: Callable[[Operation], bool] = never


def kv_step(state: str | None, op: Operation) -> tuple[bool, str | None]:
    """The KVStore's sequential semantics for one key whose value is `state` (None: absent)."""
    new: str | None  # the key's value after `op`
    out: object  # the output `op` must have returned
    if op.op in READS:
        new, out = state, state
    elif op.op == "put":
        new, out = op.value, op.output  # put returns nothing worth checking
    elif op.op == "append":
        new = (state or "") + (op.value or "")
        out = new
    elif op.op == "delete":
        new, out = None, state is not None
    elif op.op == "cas":
        new, out = (op.value, True) if state == op.expected else (state, False)
    else:
        raise ValueError(f"unknown key-value operation {op.op!r}")
    return (op.ret is None or op.output == out), new


KV_MODEL = Model(init=lambda: None, step=kv_step, partition=by_key, read_only=kv_read_only)
"""The raftlab KVStore, one key at a time: the state is the key's value (None when absent)."""


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict of `check`.

    Attributes:
        ok: True if linearizable, False if not, None if the timeout ran out first (unknown).
        partitions: how many partitions (keys, for `KV_MODEL`) the history had.
        failing_partition: index of the first partition found not linearizable, else None.
        failing_key: the key of that partition if all its operations share one, else None.
        shortest_bad_prefix: when not ok, the shortest prefix in call order of the failing partition
            that is not linearizable: the operations called at or before the earliest time `bad_at`
            at which the history seen so far cannot be linearized (operations still running at
            `bad_at` counted as of unknown outcome). Checking it alone also gives ok=False.
        bad_at: that time (the return time of the operation that exposed the violation).
    """

    ok: bool | None
    partitions: int
    failing_partition: int | None = None
    failing_key: str | None = None
    shortest_bad_prefix: tuple[Operation, ...] = ()
    bad_at: float | None = None
    describe: Callable[[Operation], str] = field(default=describe_operation, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.ok is True

    def __str__(self) -> str:
        if self.ok:
            return f"linearizable ({self.partitions} partition{'s' * (self.partitions != 1)} checked)"
        if self.ok is None:
            return f"unknown: the timeout ran out before all {self.partitions} partitions were checked"
        where = f"key {self.failing_key!r}" if self.failing_key is not None else f"partition {self.failing_partition}"
        return (f"not linearizable: no order of the first {len(self.shortest_bad_prefix)} operations on {where} "
                f"(in call order) fits the model; the violation shows at time {self.bad_at:g}")

    def explain(self) -> str:
        """A few lines: the verdict and, when not linearizable, the operations of the shortest bad prefix."""
        lines = [str(self)]
        if self.ok is False:
            lines.append("operations in call order (those still running at the end count as of unknown outcome):")
            lines += [f"  {self.describe(op)}" for op in self.shortest_bad_prefix]
        return "\n".join(lines)


class _Timeout(Exception):
    pass


def _linearizable(ops: Sequence[Operation], model: Model, deadline: float | None) -> bool:
    """The WGL search over one partition; raises `_Timeout` when `deadline` passes."""
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops)]
                    + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None])
    # A doubly linked list of entries: node 0 is the head, node k + 1 is events[k], -1 is the end.
    size = len(events) + 1
    nxt, prv = [*range(1, size), -1], list(range(-1, size - 1))
    op_of, is_call, match = [0] * size, [False] * size, [-1] * size
    call_node = {}
    for k, (_, kind, i) in enumerate(events, start=1):
        op_of[k], is_call[k] = i, kind == 0
        if kind == 0:
            call_node[i] = k
        else:
            match[call_node[i]] = k
    known = [op.ret is not None for op in ops]
    # Unknown-outcome ops differing only in call time are interchangeable: the earlier-called one can go
    # anywhere the later one can. So they are linearized in call order: `twin[i]` must be used before i.
    twin = [-1] * len(ops)
    last: dict[tuple[int, str, str, str | None, str | None], int] = {}
    for _, kind, i in events:
        if kind == 0 and not known[i]:
            o = ops[i]
            twin[i] = last.get((o.client, o.op, o.key, o.value, o.expected), -1)
            last[o.client, o.op, o.key, o.value, o.expected] = i
    known_left = sum(known)
    step = model.step
    # A configuration is (done: bitset of linearized known ops, used: bitset of linearized unknown ops,
    # state). (done, used, state) is subsumed by a visited (done, used', state) with used' a subset of
    # used: it has the same candidates and fewer left, so it is pruned (equal configurations included).
    state, done, used = model.init(), 0, 0
    cache: dict[tuple[int, Hashable], list[int]] = {}
    stack: list[tuple[int, Hashable]] = []
    entry, iterations = nxt[0], 0
    while known_left:  # unknown-outcome operations left over never take effect
        iterations += 1
        if deadline is not None and iterations % 1024 == 0 and time.monotonic() > deadline:
            raise _Timeout
        if entry != -1 and is_call[entry]:
            i = op_of[entry]
            ok, new_state = (False, None) if twin[i] >= 0 and not used >> twin[i] & 1 else step(state, ops[i])
            if ok:
                new_done, new_used = (done | 1 << i, used) if known[i] else (done, used | 1 << i)
                seen = cache.setdefault((new_done, new_state), [])
                if not any(u & ~new_used == 0 for u in seen):
                    seen.append(new_used)
                    stack.append((entry, state))
                    state, done, used = new_state, new_done, new_used
                    known_left -= known[i]
                    for k in (entry, match[entry]):  # lift the call and its return out of the list
                        if k != -1:
                            nxt[prv[k]] = nxt[k]
                            if nxt[k] != -1:
                                prv[nxt[k]] = prv[k]
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:  # a return whose call is not linearized (or the end): undo the latest choice
            if not stack:
                return False
            entry, state = stack.pop()
            i = op_of[entry]
            if known[i]:
                done ^= 1 << i
                known_left += 1
            else:
                used ^= 1 << i
            for k in (match[entry], entry):  # unlift, in reverse order
                if k != -1:
                    nxt[prv[k]] = k
                    if nxt[k] != -1:
                        prv[nxt[k]] = k
            entry = nxt[entry]
    return True


def _seen_at(ops: Sequence[Operation], t: float) -> list[Operation]:
    """The history as seen at time `t`: operations called by then, those still running of unknown outcome."""
    return [op if op.ret is not None and op.ret <= t else replace(op, ret=None, output=None)
            for op in ops if op.call <= t]


def _shortest_bad_prefix(ops: list[Operation], model: Model, deadline: float | None) -> float:
    """The earliest return time at which `ops` (known not linearizable) as seen then is not linearizable.

    Linearizability of the history seen at time t is monotone in t (a linearization of a later view,
    cut after the last operation complete at t, linearizes the earlier one), so binary search works.
    If the deadline passes, the best time found so far is returned.
    """
    times = sorted({op.ret for op in ops if op.ret is not None})
    lo, hi = 0, len(times) - 1
    try:
        while lo < hi:
            mid = (lo + hi) // 2
            seen = [op for op in _seen_at(ops, times[mid]) if op.ret is not None or not model.read_only(op)]
            if _linearizable(seen, model, deadline):
                lo = mid + 1
            else:
                hi = mid
    except _Timeout:
        pass
    return times[hi]


def check(history: Sequence[Operation], model: Model = KV_MODEL, *,
          timeout: float | None = None) -> LinearizabilityResult:
    """Decide whether `history` is linearizable with respect to `model` (by default the key-value store).

    Each partition (each key, for `KV_MODEL`) is checked on its own by the Wing-Gong / Lowe search with
    Porcupine's memoisation of (linearized set, state). `timeout` (seconds) bounds the whole check; if
    it runs out before a violation is found, the result's `ok` is None.

    >>> stale = [Operation(1, "put", "x", "a", call=0, ret=1),
    ...          Operation(1, "put", "x", "b", call=2, ret=3),
    ...          Operation(2, "get", "x", call=4, ret=5, output="a")]
    >>> result = check(stale)
    >>> result.ok, len(result.shortest_bad_prefix)
    (False, 3)
    >>> print(result)  # doctest: +ELLIPSIS
    not linearizable: no order of the first 3 operations on key 'x' (in call order) fits the model; ...
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    history = [op for op in history if op.ret is not None or not model.read_only(op)]  # they constrain nothing
    parts = [sorted(p, key=lambda op: (op.call, op.ret is None, op.ret or 0.0)) for p in model.partition(history)]
    timed_out = False
    for index, part in enumerate(parts):
        try:
            if _linearizable(part, model, deadline):
                continue
        except _Timeout:
            timed_out = True
            break
        t = _shortest_bad_prefix(part, model, deadline)
        keys = {op.key for op in part}
        return LinearizabilityResult(
            ok=False, partitions=len(parts), failing_partition=index,
            failing_key=keys.pop() if len(keys) == 1 else None,
            shortest_bad_prefix=tuple(op for op in part if op.call <= t), bad_at=t, describe=model.describe)
    return LinearizabilityResult(ok=None if timed_out else True, partitions=len(parts), describe=model.describe)
