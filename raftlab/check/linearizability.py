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
would take. `raftlab.check.histories` generates concurrent histories, linearizable or not, to try it
on; ``benchmarks/bench_check.py`` measures it.

    >>> h = [Operation(1, "put", "x", "a", call=0, ret=2),
    ...      Operation(2, "get", "x", call=1, ret=3, output="a")]
    >>> check(h).ok
    True
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, bisect_right
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
            return (f"unknown: the timeout ran out (or the step limit) before all {self.partitions} partitions "
                    "were checked")
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
"""Search steps between two pauses of a partition's search (see `_Search`)."""


class _Search:
    """The search over one partition: `steps` is a generator that returns the verdict.

    It pauses (yields) after every `_CHUNK` steps, a step being one candidate tried or one choice
    undone, so that `check` can interleave partitions and watch its limits between pauses.

    When the partition has operations of unknown outcome, two searches (`_wgl`) take turns, a chunk
    each. The exact one decides (after a quicker one for linearizable histories: see `_exact`). The
    relaxed one lets each operation of unknown outcome take effect again after a later operation of
    known outcome: if even that finds no linearization, there is none, which is often much quicker
    to show than trying the unknown writes in all combinations (on a register, where values repeat:
    not with appends, whose values grow). If the linearization it finds uses none of them twice, it
    is one; otherwise the exact search goes on alone, skipping the configurations the relaxed one
    found to fail.
    """

    def __init__(self, ops: Sequence[Operation], model: Model) -> None:
        self.exact = _Run(ops, model, reuse=False)
        pending = any(op.ret is None for op in ops)
        self.relaxed = _Run(ops, model, reuse=True) if pending else None
        self.single = _Run(ops, model, reuse=False, single=True, failed=self.exact.failed) if pending else None
        self.steps = self._steps()

    @property
    def reached(self) -> float:
        """A time before which every operation of known outcome that returned was placed in some
        configuration an exact search reached: the history seen at any earlier time is linearizable."""
        return max(self.exact.reached, self.single.reached if self.single else -math.inf)

    def _exact(self) -> Generator[None, None, bool]:
        """The exact search, after one that uses no two operations of unknown outcome in a row (a
        linearization usually needs none, and it is found much sooner: rows of appends make a great
        many states); that one decides if it succeeds or if the rule never had to leave one out."""
        if self.single is not None:
            ok = yield from _wgl(self.single)
            if ok or not self.single.capped:
                return ok
        return (yield from _wgl(self.exact))

    def _steps(self) -> Generator[None, None, bool]:
        exact_search = self._exact()
        if self.relaxed is None:
            return (yield from exact_search)
        relaxed, relaxed_search = self.relaxed, _wgl(self.relaxed)
        while True:
            try:
                next(relaxed_search)
            except StopIteration as stop:
                if relaxed.capped:  # (it then records no failures)
                    return (yield from exact_search)
                if not stop.value or not relaxed.reused:
                    return bool(stop.value)
                self.exact.failed |= relaxed.failed
                return (yield from exact_search)
            yield
            try:
                next(exact_search)
            except StopIteration as stop:
                return bool(stop.value)
            yield


class _Run:
    """The input and results of one `_wgl` search: the history as it searches it, and what it found."""

    def __init__(self, ops: Sequence[Operation], model: Model, *, reuse: bool, single: bool = False,
                 failed: set[tuple[int, Hashable]] | None = None) -> None:
        self.ops, self.model, self.reuse, self.single = ops, model, reuse, single
        self.failed = failed if failed is not None else set()  # (placed, state) known to lead nowhere
        self.reused = False  # the linearization found used an operation of unknown outcome twice
        self.capped = False  # the search left out a configuration (reuse, single), so its failure proves nothing
        self.reached = -math.inf  # see `_Search.reached` (kept by the exact search)


def _wgl(run: _Run) -> Generator[None, None, bool]:
    """The Wing-Gong / Lowe search with Porcupine's memoisation: return whether `run.ops` is linearizable.

    The operations of known outcome form a doubly linked list of call and return entries in time
    order. The operations that may come next in a linearization are those whose call entry precedes
    the first return entry still in the list: nothing still to be placed returned before they were
    called. The search tries them in list order; one that fits the model's state is *lifted* (its call
    and return entries unlinked, the choice pushed on a stack) and the scan restarts at the head. When
    the scan reaches a return entry, the operations of unknown outcome called before it are tried, in
    call order. When none is left to try, the latest choice is undone (*unlifted*: relinked where it
    was, which a doubly linked list allows in O(1)) and the scan goes on after it. The search ends
    when every operation of known outcome is placed (those of unknown outcome left over never took
    effect), or fails when there is no choice left to undo.

    A configuration is the set of known-outcome operations placed (a bitset `placed`: bit i for
    ``ops[i]``), the state, and the set of unknown-outcome ones used (a bitset `used`): whether it
    leads to a linearization depends on nothing else. Each configuration entered is remembered (by
    `_admit`), and one is not entered if one with the same `placed` and state and a subset of its
    `used` was: in a depth-first search that one failed (or is being explored, an ancestor), with more
    choices left. Four rules cut the
    choices further, each keeping a linearization if there is one:

    - A read-only operation of known outcome (`Model.read_only`) that fits the state is placed first
      and alone: moving it to the front of any linearization from here keeps it one (it sees this
      state, changes nothing, and everything it must follow is placed already). If that fails, the
      configuration fails, without trying the other candidates.
    - An operation of unknown outcome is placed only if it changes the state: one that does not can be
      left out of any linearization.
    - It is placed only if the next operation placed needs it: one whose step, fit and state after,
      would be the same without it makes it useless (the linearization without it is one).
    - Operations of unknown outcome alike in all but client and call time (same op, key, value and
      expected) are interchangeable once called, so they are used in call order.

    With ``run.single``, no two operations of unknown outcome are used in a row: a restriction,
    whose success is a linearization; if it ever had to leave out a candidate it sets
    ``run.capped``, and its failure then proves nothing.

    With ``run.reuse``, an operation of unknown outcome may be used again after each operation of
    known outcome placed (`used` holds those used since the last one; of alike ones only the first
    counts; configurations are told apart by `placed` and state alone): a relaxation, whose failure
    proves the exact search would fail too, unless it had to leave out a configuration the relaxation
    allows (one operation used twice in a row of unknown-outcome ones, to a new state: never on a
    register, whose writes give the same state each time), which sets ``run.capped``. It records in
    ``run.failed`` the configurations found to fail and in ``run.reused`` whether the linearization
    found used one operation twice.
    """
    ops, model, reuse, single, failed = run.ops, run.model, run.reuse, run.single, run.failed
    known = [op.ret is not None for op in ops]
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops) if known[i]]
                    + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None])
    # The linked list of known-outcome operations: node 0 is the head, node k + 1 is events[k], -1 the end.
    size = len(events) + 1
    nxt, prv = [*range(1, size), -1], list(range(-1, size - 1))
    op_of, is_call, match, when = [0] * size, [False] * size, [0] * size, [0.0] * size  # match: call -> return
    call_node = {}
    for k, (t, kind, i) in enumerate(events, start=1):
        op_of[k], is_call[k], when[k] = i, kind == 0, t
        if kind == 0:
            call_node[i] = k
        else:
            match[call_node[i]] = k
    reader = [k and model.read_only(op) for k, op in zip(known, ops, strict=True)]
    # The unknown-outcome operations, in call order. One is available once every operation that returned
    # before its call is placed: while its call time is at most that of the first return in the list.
    pending = [ops[i] for i in sorted((i for i in range(len(ops)) if not known[i]), key=lambda i: (ops[i].call, i))]
    calls = [op.call for op in pending]
    twin = [-1] * len(pending)  # the earlier alike pending operation, to be used before this one
    last: dict[tuple[str, str, str | None, str | None], int] = {}
    for p, op in enumerate(pending):
        twin[p] = last.get((op.op, op.key, op.value, op.expected), -1)
        last[op.op, op.key, op.value, op.expected] = p
    step = model.step

    state, placed, used, left = model.init(), 0, 0, sum(known)
    seen: dict[tuple[int, Hashable], list[int]] = {}  # (placed, state) -> each `used` it was entered with
    # the choices made: (node placed or -1, pending position used, state and `used` before, placed first,
    # pending available)
    stack: list[tuple[int, int, Hashable, int, bool, int]] = []
    entry, pos, avail, steps = 0, 0, 0, 0
    first, fresh, known_phase, after_pending = False, True, True, False
    while left:
        steps += 1
        if not steps % _CHUNK:
            yield
        if fresh:  # a new configuration: look for a read that fits, to place first
            fresh, known_phase, entry = False, True, nxt[0]
            after_pending = bool(stack) and stack[-1][0] == -1
            k = entry
            while k != -1 and is_call[k]:
                if reader[op_of[k]] and step(state, ops[op_of[k]])[0]:
                    entry, first = k, True
                    break
                k = nxt[k]
        if known_phase:
            if entry != -1 and is_call[entry]:
                i = op_of[entry]
                if first:
                    ok, new_state = True, state
                elif reader[i]:  # it does not fit (one that did would have been placed first)
                    entry = nxt[entry]
                    continue
                else:
                    ok, new_state = step(state, ops[i])
                    if ok and after_pending and step(stack[-1][2], ops[i]) == (ok, new_state):
                        ok = False  # it does not need the pending one used just before it
                if ok:
                    new_placed = placed | 1 << i
                    new_used = 0 if reuse else used
                    if (new_placed, new_state) not in failed and _admit(seen, new_placed, new_state, new_used):
                        stack.append((entry, -1, state, used, first, 0))
                        for k in (entry, match[entry]):  # lift the call and its return out of the list
                            nxt[prv[k]] = nxt[k]
                            if nxt[k] != -1:
                                prv[nxt[k]] = prv[k]
                        state, placed, used, left = new_state, new_placed, new_used, left - 1
                        first, fresh = False, True
                        continue
                if not first:
                    entry = nxt[entry]
                    continue
                first = False  # the read placed first leads nowhere: neither does this configuration
            else:  # the first return still in the list, or the end: on to the pending operations
                known_phase, pos = False, 0
                avail = bisect_right(calls, when[entry]) if entry != -1 else len(pending)
                if not reuse and entry != -1 and when[entry] > run.reached:
                    run.reached = when[entry]
                continue
        elif pos < avail:
            p, pos = pos, pos + 1
            if reuse:  # the first of alike ones serves for all; none twice between known-outcome ones
                if twin[p] >= 0:
                    continue
                if used >> p & 1:
                    ok, new_state = step(state, pending[p])
                    if ok and new_state != state and (placed, new_state) not in seen:
                        run.capped = True  # (a configuration the relaxation would enter is left out)
                    continue
            elif used >> p & 1 or (twin[p] >= 0 and not used >> twin[p] & 1):
                continue
            ok, new_state = step(state, pending[p])
            if ok and new_state != state:  # one that changes nothing can be left out
                if after_pending and step(stack[-1][2], pending[p]) == (ok, new_state):
                    continue  # it does not need the pending one used just before it
                if single and after_pending:
                    run.capped = True
                    continue
                if (placed, new_state) not in failed and _admit(seen, placed, new_state, 0 if reuse else used | 1 << p):
                    stack.append((-1, p, state, used, False, avail))
                    state, used, fresh = new_state, used | 1 << p, True
                    continue
            continue
        # no candidate left: undo the latest choice, and the one before as long as the choice was forced
        while True:
            if not stack:
                return False
            node, p, state, used, forced, avail = stack.pop()
            if node == -1:
                break
            placed ^= 1 << op_of[node]
            left += 1
            for k in (match[node], node):  # unlift, in reverse order
                nxt[prv[k]] = k
                if nxt[k] != -1:
                    prv[nxt[k]] = k
            if not forced:
                break
        if node == -1:
            known_phase, pos = False, p + 1
        else:
            known_phase, entry = True, nxt[node]
        after_pending = bool(stack) and stack[-1][0] == -1
    if reuse:  # the configurations entered failed, but for those on the way to the linearization found
        uses = [p for node, p, *_ in stack if node == -1]
        run.reused = len(set(uses)) < len(uses)
        path, on_path = placed, set()
        for node, _, before, *_ in reversed(stack):
            on_path.add((path, state))
            path, state = path & ~(1 << op_of[node]) if node != -1 else path, before
        if not run.capped:
            run.failed |= seen.keys() - on_path
    return True


def _admit(seen: dict[tuple[int, Hashable], list[int]], placed: int, state: Hashable, used: int) -> bool:
    """Whether the configuration (placed, state, used) is new and not dominated: remember it if so.

    One entered before with the same operations of known outcome placed and the same state, and fewer
    unknown-outcome ones used (a subset), has the same candidates and more choices left: if it failed,
    so does this one.
    """
    entered = seen.setdefault((placed, state), [])
    if any(u & ~used == 0 for u in entered):
        return False
    entered.append(used)
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


def _decide(ops: Sequence[Operation], model: Model, limits: _Limits) -> tuple[bool, float]:
    """The search over one partition, run to its verdict, and its `_Search.reached`; raises `_Timeout`
    when a limit passes."""
    search = _Search(ops, model)
    while True:
        try:
            next(search.steps)
        except StopIteration as stop:
            return bool(stop.value), search.reached
        limits.spend()


def _seen_at(ops: Sequence[Operation], t: float) -> list[Operation]:
    """The history as seen at time `t`: operations called by then, those still running of unknown outcome."""
    return [op if op.ret is not None and op.ret <= t else replace(op, ret=None, output=None)
            for op in ops if op.call <= t]


def _shortest_bad_prefix(ops: list[Operation], model: Model, reached: float, limits: _Limits) -> float:
    """The earliest return time at which `ops` (known not linearizable) as seen then is not linearizable.

    Linearizability of the history seen at time t is monotone in t (a linearization of a later view,
    cut after the last operation complete at t, linearizes the earlier one), so it is searched for by
    galloping from `reached` (the search of `ops` showed the history seen before it linearizable;
    the violation usually lies just after) until a view is not linearizable, then by bisection; each
    search raises the lower bound by its own `_Search.reached`. If a limit passes, the best time
    found so far is returned.
    """
    times = sorted({op.ret for op in ops if op.ret is not None})
    good, bad, gap = bisect_left(times, reached) - 1, len(times) - 1, 1  # indices in `times`
    try:
        while good + 1 < bad:
            probe = min(good + gap, bad - 1) if gap else (good + bad) // 2
            seen = [op for op in _seen_at(ops, times[probe]) if op.ret is not None or not model.read_only(op)]
            ok, reached = _decide(seen, model, limits)
            good = max(good, bisect_left(times, reached) - 1)
            if ok:
                good, gap = max(good, probe), gap * 2
            else:
                bad, gap = probe, 0
    except _Timeout:
        pass
    return times[bad]


def check(history: Sequence[Operation], model: Model = KV_MODEL, *,
          timeout: float | None = None, max_steps: int | None = None) -> LinearizabilityResult:
    """Decide whether `history` is linearizable with respect to `model` (by default the key-value store).

    Each partition (each key, for `KV_MODEL`) is checked on its own by the Wing-Gong / Lowe search with
    Porcupine's memoisation of (linearized set, state) (see `_Search`). The partitions are searched in
    rounds, shortest first, each round giving every unfinished partition twice the steps of the last:
    the first partition found not linearizable ends the check, however long the others would take.

    `timeout` (seconds) bounds the whole check, `max_steps` its search steps (a step tries one
    operation or undoes one; a bound that does not depend on the machine, counted in chunks of 256).
    If a limit is reached before a verdict, the result's `ok` is None. Once a partition is found not
    linearizable the verdict stands, and what is left goes to finding its shortest bad prefix (the
    whole partition if nothing is).

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
    searches = [_Search(part, model) for part in parts]
    running = {k: searches[k].steps for k in sorted(range(len(parts)), key=lambda k: len(parts[k]))}
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
                            return _not_linearizable(parts, index, model, searches[index].reached, limits)
                        break
                    limits.spend()
            chunks *= 2
    except _Timeout:
        return LinearizabilityResult(ok=None, partitions=len(parts), describe=model.describe)
    return LinearizabilityResult(ok=True, partitions=len(parts), describe=model.describe)


def _not_linearizable(parts: list[list[Operation]], index: int, model: Model, reached: float,
                      limits: _Limits) -> LinearizabilityResult:
    """The verdict for `parts[index]`, found not linearizable: its shortest bad prefix, as far as `limits` allow."""
    part = parts[index]
    t = _shortest_bad_prefix(part, model, reached, limits)
    keys = {op.key for op in part}
    return LinearizabilityResult(
        ok=False, partitions=len(parts), failing_partition=index, failing_key=keys.pop() if len(keys) == 1 else None,
        shortest_bad_prefix=tuple(op for op in part if op.call <= t), bad_at=t, describe=model.describe)
