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
of them on one key can make a "not linearizable" verdict slow; `timeout` or `max_steps` bounds it.
An operation that changes nothing (a get or a read, for `KV_MODEL`: the model's `read_only`)
constrains nothing when its outcome is unknown, so such operations are left out before the search.

Partitions (keys) are searched in rounds, shortest first, with budgets that double from round to
round, so that a partition that is not linearizable ends the check early however long the others
would take.

    >>> h = [Operation(1, "put", "x", "a", call=0, ret=2),
    ...      Operation(2, "get", "x", call=1, ret=3, output="a")]
    >>> check(h).ok
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Hashable, Sequence
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
            `state`, and the state after it. States must be hashable (they are memoised) and compare
            equal when they are the same state. When ``op.ret is None`` the output is unknown and
            `step` must accept any output; it must then depend on the op, key, value and expected
            only (not on the client or the times: such operations that differ only there are
            interchangeable to the search).
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
        ok: True if linearizable, False if not, None if the timeout (or `max_steps`) ran out first (unknown).
        partitions: how many partitions (keys, for `KV_MODEL`) the history had.
        failing_partition: index (in `Model.partition` order) of the partition found not linearizable,
            else None; if several are not, the one the search (shortest first) decided first.
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
            return f"unknown: the timeout ran out (or the step limit) before all {self.partitions} partitions were checked"
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


_CHUNK = 256
"""Search steps between two pauses of a partition's search (see `_search`)."""


def _search(ops: Sequence[Operation], model: Model) -> Generator[None, None, bool]:
    """The Wing-Gong / Lowe search over one partition, as a generator that returns the verdict.

    It pauses (yields) after every `_CHUNK` steps, a step being one candidate tried or one choice
    undone, so that `check` can interleave partitions and watch its limits between pauses.

    The history is a doubly linked list of call and return entries in time order. The operations
    that may come next in a linearization are those whose call entry precedes the first return entry
    still in the list: nothing still to be placed returned before they were called. The search tries
    them in list order; one that fits the model's state is *lifted* (its call and return entries
    unlinked, the choice pushed on a stack) and the scan restarts at the head. A return entry
    reached means no candidate is left: the latest choice is undone (*unlifted*: relinked where it
    was, which a doubly linked list allows in O(1)) and the scan goes on after it. The search ends
    when every operation of known outcome is placed (those of unknown outcome left over never took
    effect), or fails when there is no choice left to undo.

    A configuration is the set of operations placed (a bitset: bit i for ``ops[i]``) and the state:
    whether it leads to a linearization depends on nothing else, so each configuration visited (and
    so, in a depth-first search, failed) is remembered and never entered twice. Three rules cut the
    choices further, each keeping a linearization if there is one:

    - A read-only operation of known outcome (`Model.read_only`) that fits the state is placed first
      and alone: moving it to the front of any linearization from here keeps it one (it sees this
      state, changes nothing, and everything it must follow is placed already). If that fails, the
      configuration fails, without trying the other candidates.
    - An operation of unknown outcome is placed only if it changes the state: one that does not can be
      left out of any linearization.
    - Operations of unknown outcome alike in all but client and call time (same op, key, value and
      expected) are interchangeable once called, so they are placed in call order.
    """
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops)]
                    + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None])
    # The linked list: node 0 is the head, node k + 1 is events[k], -1 is the end.
    size = len(events) + 1
    nxt, prv = [*range(1, size), -1], list(range(-1, size - 1))
    op_of, is_call, match = [0] * size, [False] * size, [-1] * size  # match: a call's return node
    call_node = {}
    for k, (_, kind, i) in enumerate(events, start=1):
        op_of[k], is_call[k] = i, kind == 0
        if kind == 0:
            call_node[i] = k
        else:
            match[call_node[i]] = k
    known = [op.ret is not None for op in ops]
    reader = [k and model.read_only(op) for k, op in zip(known, ops, strict=True)]
    twin = [-1] * len(ops)  # the unknown-outcome operation that must be placed before this one
    last: dict[tuple[str, str, str | None, str | None], int] = {}
    for _, kind, i in events:
        if kind == 0 and not known[i]:
            alike = (ops[i].op, ops[i].key, ops[i].value, ops[i].expected)
            twin[i] = last.get(alike, -1)
            last[alike] = i
    step = model.step

    state, placed, left = model.init(), 0, sum(known)
    seen: set[tuple[int, Hashable]] = set()  # configurations entered: (placed, state)
    stack: list[tuple[int, Hashable, bool]] = []  # (call node placed, state before it, placed first)
    entry, first, fresh, steps = 0, False, True, 0
    while left:
        steps += 1
        if not steps % _CHUNK:
            yield
        if fresh:  # a new configuration: look for a read that fits, to place first
            fresh, entry = False, nxt[0]
            k = entry
            while k != -1 and is_call[k]:
                if reader[op_of[k]] and step(state, ops[op_of[k]])[0]:
                    entry, first = k, True
                    break
                k = nxt[k]
        dead = entry == -1 or not is_call[entry]  # no candidate left here
        if not dead:
            i = op_of[entry]
            if first:
                ok, new_state = True, state
            elif reader[i] or (twin[i] >= 0 and not placed >> twin[i] & 1):
                ok = False  # a read that does not fit (one that does was placed first), or a twin
            else:
                ok, new_state = step(state, ops[i])
                ok = ok and (known[i] or new_state != state)
            if ok:
                new_placed = placed | 1 << i
                if (new_placed, new_state) not in seen:
                    seen.add((new_placed, new_state))
                    stack.append((entry, state, first))
                    for k in (entry, match[entry]):  # lift the call and its return out of the list
                        if k != -1:
                            nxt[prv[k]] = nxt[k]
                            if nxt[k] != -1:
                                prv[nxt[k]] = prv[k]
                    state, placed, left = new_state, new_placed, left - known[i]
                    first, fresh = False, True
                    continue
            if first:  # the read placed first leads nowhere: neither does this configuration
                first, dead = False, True
            else:
                entry = nxt[entry]
        if dead:  # undo the latest choice, and the one before it as long as the choice was forced
            while True:
                if not stack:
                    return False
                entry, state, forced = stack.pop()
                i = op_of[entry]
                placed ^= 1 << i
                left += known[i]
                for k in (match[entry], entry):  # unlift, in reverse order
                    if k != -1:
                        nxt[prv[k]] = k
                        if nxt[k] != -1:
                            prv[nxt[k]] = k
                if not forced:
                    break
            entry = nxt[entry]
    return True


class _Limits:
    """What `check` may spend: a deadline (monotonic seconds) and a number of search steps."""

    def __init__(self, timeout: float | None, max_steps: int | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.steps_left = max_steps

    def spend(self) -> None:
        """Account for one `_CHUNK` of steps; raise `_Timeout` if a limit is passed."""
        if self.steps_left is not None:
            self.steps_left -= _CHUNK
            if self.steps_left < 0:
                raise _Timeout
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Timeout


def _linearizable(ops: Sequence[Operation], model: Model, limits: _Limits) -> bool:
    """The search over one partition, run to its verdict; raises `_Timeout` when a limit passes."""
    search = _search(ops, model)
    while True:
        try:
            next(search)
        except StopIteration as stop:
            return bool(stop.value)
        limits.spend()


def _seen_at(ops: Sequence[Operation], t: float) -> list[Operation]:
    """The history as seen at time `t`: operations called by then, those still running of unknown outcome."""
    return [op if op.ret is not None and op.ret <= t else replace(op, ret=None, output=None)
            for op in ops if op.call <= t]


def _shortest_bad_prefix(ops: list[Operation], model: Model, limits: _Limits) -> float:
    """The earliest return time at which `ops` (known not linearizable) as seen then is not linearizable.

    Linearizability of the history seen at time t is monotone in t (a linearization of a later view,
    cut after the last operation complete at t, linearizes the earlier one), so binary search works.
    If a limit passes, the best time found so far is returned.
    """
    times = sorted({op.ret for op in ops if op.ret is not None})
    lo, hi = 0, len(times) - 1
    try:
        while lo < hi:
            mid = (lo + hi) // 2
            seen = [op for op in _seen_at(ops, times[mid]) if op.ret is not None or not model.read_only(op)]
            if _linearizable(seen, model, limits):
                lo = mid + 1
            else:
                hi = mid
    except _Timeout:
        pass
    return times[hi]


def check(history: Sequence[Operation], model: Model = KV_MODEL, *,
          timeout: float | None = None, max_steps: int | None = None) -> LinearizabilityResult:
    """Decide whether `history` is linearizable with respect to `model` (by default the key-value store).

    Each partition (each key, for `KV_MODEL`) is checked on its own by the Wing-Gong / Lowe search with
    Porcupine's memoisation of (linearized set, state) (see `_search`). The partitions are searched in
    rounds, shortest first, each round giving every unfinished partition twice the steps of the last:
    the first partition found not linearizable ends the check, however long the others would take.

    `timeout` (seconds) bounds the whole check, `max_steps` the search steps over all partitions (a
    step tries one operation or undoes one; a bound that does not depend on the machine, counted in
    chunks of 256). If a limit is reached before a verdict, the result's `ok` is None.

    >>> stale = [Operation(1, "put", "x", "a", call=0, ret=1),
    ...          Operation(1, "put", "x", "b", call=2, ret=3),
    ...          Operation(2, "get", "x", call=4, ret=5, output="a")]
    >>> result = check(stale)
    >>> result.ok, len(result.shortest_bad_prefix)
    (False, 3)
    >>> print(result)  # doctest: +ELLIPSIS
    not linearizable: no order of the first 3 operations on key 'x' (in call order) fits the model; ...
    """
    limits = _Limits(timeout, max_steps)
    history = [op for op in history if op.ret is not None or not model.read_only(op)]  # they constrain nothing
    parts = [sorted(p, key=lambda op: (op.call, op.ret is None, op.ret or 0.0)) for p in model.partition(history)]
    running = {k: _search(parts[k], model) for k in sorted(range(len(parts)), key=lambda k: len(parts[k]))}
    chunks = 1  # of `_CHUNK` steps, per partition in this round
    try:
        while running:
            for index, search in list(running.items()):
                for _ in range(chunks):
                    try:
                        next(search)
                    except StopIteration as stop:
                        del running[index]
                        if not stop.value:
                            return _not_linearizable(parts, index, model, limits)
                        break
                    limits.spend()
            chunks *= 2
    except _Timeout:
        return LinearizabilityResult(ok=None, partitions=len(parts), describe=model.describe)
    return LinearizabilityResult(ok=True, partitions=len(parts), describe=model.describe)


def _not_linearizable(parts: list[list[Operation]], index: int, model: Model, limits: _Limits) -> LinearizabilityResult:
    """The verdict for `parts[index]`, found not linearizable: its shortest bad prefix, as far as `limits` allow."""
    part = parts[index]
    t = _shortest_bad_prefix(part, model, limits)
    keys = {op.key for op in part}
    return LinearizabilityResult(
        ok=False, partitions=len(parts), failing_partition=index, failing_key=keys.pop() if len(keys) == 1 else None,
        shortest_bad_prefix=tuple(op for op in part if op.call <= t), bad_at=t, describe=model.describe)
