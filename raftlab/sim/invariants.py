"""Raft's safety properties (Figure 3), checked incrementally while a simulation runs.

Each check looks only at what changed in the last step, so long runs stay fast. The checks read
the replicas' state, not their own account of it, so a replica that breaks a rule silently is
caught too.

- Log Matching: every entry that is new in a node's log since the last check (appended by a client
  request, a new leader's no-op or an AppendEntries, one entry or a whole batch) is compared, as
  (index, term) -> (transition id, previous term), with what any node ever held at that (index, term).
- Leader Completeness: a new leader of term T holds the highest entry any node knew committed while
  in a term below T. (Not every entry committed so far: a leader of an older term can still be
  elected late, by votes that were delayed or waited in a paused process, and need not hold what a
  later term committed; it is deposed as soon as it hears of that term.)
- State Machine Safety: each index is applied once per incarnation, in order, and the same transition
  is applied at each index on every node; and the state machines' *states* agree at every snapshot
  index: whenever a node takes or installs a snapshot at index i (its log's snapshot changed), a digest
  of the snapshot's data, and of its state machine's state if it has applied exactly up to i, must equal
  the digest any other node showed at i; and a node that applies index i afterwards must then have
  that state too. Digests are taken only at those points, never at every apply. A state machine is
  digested if it is an `ObservableStateMachine` (`Counter`, `KVStore`, ...): its state is what its
  `_state()` puts in its snapshots, read without side effects, and the digest is the SHA-256 of the
  canonical repr of that value (mappings and sets sorted), so the state's repr must depend on its value
  only. Any other state machine is skipped by this digest check (the transition ids are still checked).
- Configuration Safety (membership change, MC-ONE): no leader's log holds more than one configuration
  entry above the highest index any node knew committed. (Judged by what any node knew committed, not
  by the leader's own commit index: a restarted leader knows nothing committed yet, but a correct
  leader only appends a change once its term's entry, and so everything before it, is committed.)

Membership change needs nothing else: Election Safety is per term whatever configurations the leaders
used (two leaders in one term, as the thesis erratum's schedule elects without its fix, are caught
there); Log Matching, Leader Completeness and State Machine Safety hold across changes as before, with
configuration entries applied like any other entry (their ids checked, the state machine not changed).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..core import Configuration, LogEntry, Role, Snapshot
from ..machines import ObservableStateMachine

if TYPE_CHECKING:
    from .simulation import Simulation


class InvariantViolation(AssertionError):
    """A safety property of Raft was violated. Replay with the same seed and interventions."""

    def __init__(self, prop: str, detail: str, *, seed: int, step: int, tail: str) -> None:
        super().__init__(f"{prop} violated at step {step} (seed {seed}): {detail}\n"
                         f"last events:\n{tail}")
        self.property = prop  # the name of the violated property
        self.detail = detail  # what was seen
        self.seed = seed  # the simulation's seed
        self.step = step  # the step at which it was seen
        self.tail = tail  # the explained end of the trace


class _Held(list):
    """The entries a node held when last checked (entry k at position k - 1). A checkpoint's copy
    shares the entries, which are immutable (as `Log`'s copy does), so that identity still tells an
    entry that is unchanged after `rewind`."""

    def __deepcopy__(self, memo: dict) -> _Held:
        return _Held(self)


class _Shared(dict):
    """A mapping whose values are immutable (snapshots): a checkpoint's copy shares them."""

    def __deepcopy__(self, memo: dict) -> _Shared:
        return _Shared(self)


_OF_VALUES = frozenset({"leaders", "entries", "applied", "committed", "terms", "commits", "tails", "digests", "seen"})
"""The `InvariantChecker` attributes that map immutable keys to immutable values."""


class InvariantChecker:
    """Checks Election Safety, Leader Append-Only, Log Matching, Leader Completeness, State Machine
    Safety (transitions and, at snapshot indices, states), Configuration Safety, and that terms and
    commit indices never decrease. See the module docstring."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> the node that led it
        self.entries: dict[tuple[int, int], tuple[Hashable, int]] = {}  # (index, term) -> (id, previous term)
        self.applied: dict[int, Hashable] = {}  # index -> the transition applied there
        self.committed: dict[int, tuple[int, int]] = {}  # term -> (index, term) of the highest entry a node
        # knew committed while in that term (so committed in that term or before)
        self.terms: dict[int, int] = {}  # node -> highest term seen
        self.commits: dict[int, int] = {}  # node -> commit index in its current incarnation
        self.tails: dict[int, tuple] = {}  # leader node -> (term, last index, last term, last entry)
        self.held: dict[int, _Held] = {}  # node -> the entries of its log when last checked
        self.configs: dict[int, list[int]] = {}  # node -> the indices of the configuration entries it held then
        self.high = 0  # the highest index any node knew committed
        self.snapshots: _Shared = _Shared()  # node -> the snapshot of its log when last checked
        self.digests: dict[int, tuple[str, str]] = {}  # snapshot index -> (digest of the state there, whose)
        self.seen: dict[int, tuple] = {}  # node -> what `check` last found: (term, commit, role, last index,
        # last entry, snapshot); while these stay the same, nothing the checks read has changed
        self.sim: Simulation | None = None
        self.pending: InvariantViolation | None = None  # seen inside a replica's call, raised after it

    def __deepcopy__(self, memo: dict) -> InvariantChecker:
        """A copy for a checkpoint: what it records is made of immutable values (ids, terms, indices,
        entries, snapshots, digests), so the copy shares them and copies their containers only."""
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for name, value in vars(self).items():
            if name in _OF_VALUES:
                value = dict(value)
            elif name == "held":
                value = {node: _Held(held) for node, held in value.items()}
            elif name == "configs":
                value = {node: list(indices) for node, indices in value.items()}
            elif name != "pending":  # (a violation seen is kept as it is)
                value = copy.deepcopy(value, memo)
            setattr(clone, name, value)
        return clone

    def fail(self, prop: str, detail: str, *, later: bool = False) -> None:
        """Raise the violation (or, `later`, keep it for `raise_pending`: a violation seen inside a
        replica's call into its state machine must not be taken by the replica for its own error)."""
        sim = self.sim
        assert sim is not None
        violation = InvariantViolation(prop, detail, seed=sim.seed, step=sim.steps, tail=sim.trace.explain(last=15))
        if not later:
            raise violation
        self.pending = self.pending or violation

    def raise_pending(self) -> None:
        """Raise a violation kept by `fail(later=True)`, if any."""
        if self.pending is not None:
            raise self.pending

    def restarted(self, node: int) -> None:
        """A node restarted: its volatile commit index starts again."""
        self.commits.pop(node, None)
        self.tails.pop(node, None)
        self.seen.pop(node, None)

    def on_apply(self, node: int, index: int, transition_id: Hashable, previous: int) -> None:
        """State Machine Safety: one transition per index on every node, each index applied once; at
        an index where some node took or installed a snapshot, the same state."""
        if index != previous + 1:
            again = "again" if index <= previous else "out of order"
            self.fail("State Machine Safety", f"node {node} applied index {index} {again}, after index {previous}",
                      later=True)
        seen = self.applied.setdefault(index, transition_id)
        if seen != transition_id:
            self.fail("State Machine Safety", f"node {node} applied {transition_id!r} at index {index}, "
                                              f"where {seen!r} was applied", later=True)
        if index in self.digests:
            machine = self._machine(node)
            if isinstance(machine, ObservableStateMachine):
                self._same_state(index, digest(machine._state()), f"node {node}'s state machine, applied up to it,",
                                 later=True)

    def check(self, node: int, replica: Any) -> None:
        """Check what may have changed on `node` (a live replica) in the last step."""
        storage = replica.storage  # (its persistent state, read directly: this runs after every step)
        term, log, commit, role = storage.current_term, storage.log, replica.commit_index, replica.role
        base, snapshot, count = log.base_index, log.snapshot, len(log)
        last = base + count
        top = log.entry(last) if count else None
        seen = self.seen.get(node)
        if (seen is not None and seen[4] is top and seen[5] is snapshot and seen[0] == term and seen[1] == commit
                and seen[2] is role and seen[3] == last):
            return  # unchanged since it passed (what the others did since cannot make it fail)
        if term < self.terms.get(node, 0):
            self.fail("Monotonic term", f"node {node}'s term went from {self.terms[node]} back to {term}")
        self.terms[node] = term
        if commit < self.commits.get(node, 0):
            self.fail("Monotonic commit index", f"node {node}'s commit index went from {self.commits[node]} "
                                                f"back to {commit}")
        self.commits[node] = commit
        if commit > self.high:
            self.high = commit
        known = self.committed.get(term)
        if commit > (known[0] if known else 0) and commit >= base:
            self.committed[term] = (commit, log.term_at(commit))
        if replica.role is Role.LEADER:  # (before Log Matching: a leader that rewrites its log breaks this)
            if self.leaders.setdefault(term, node) != node:  # Election Safety
                self.fail("Election Safety", f"nodes {self.leaders[term]} and {node} are both leaders of term {term}")
            tail = self.tails.get(node)
            if tail is None or tail[0] != term:  # a new leader: Leader Completeness, on what earlier terms committed
                index, c_term = max((c for t, c in self.committed.items() if t < term), default=(0, 0))
                if index > base and log.term_at(index) != c_term:
                    self.fail("Leader Completeness", f"node {node} leads term {term} without the committed entry "
                                                     f"{index} of term {c_term}")
            elif last < tail[1] or (tail[1] > base and (log.term_at(tail[1]) != tail[2]
                                                        or log.entry(tail[1]) is not tail[3])):
                self.fail("Leader Append-Only", f"leader {node} of term {term} removed or overwrote entries "
                                                f"(its log ended at {tail[1]}/term {tail[2]}, now at {last})")
            self.tails[node] = (term, last, log.last_term, top)
        else:
            self.tails.pop(node, None)
        held = self.held.get(node)
        if held is None:
            held = self.held[node] = _Held()
        if len(held) != last or (top is not None and held[last - 1] is not top):
            self._new_entries(node, log, held, last, base)  # Log Matching
        configs = self.configs.get(node)
        if configs is not None and len(configs) > 1 and configs[-2] > self.high and replica.role is Role.LEADER:
            self.fail("Configuration Safety", f"leader {node} of term {term} holds two uncommitted configuration "
                                              f"changes, entries {configs[-2]} and {configs[-1]} (the highest index "
                                              f"known committed is {self.high}): MC-ONE allows one at a time")
        if snapshot is not self.snapshots.get(node):
            self.snapshots[node] = snapshot
            if snapshot is not None:
                self._snapshot(node, replica, snapshot)  # State Machine Safety, on the states
        self.seen[node] = (term, commit, role, last, top, snapshot)

    def _new_entries(self, node: int, log: Any, held: _Held, last: int, base: int) -> None:
        """Log Matching on every entry of `node`'s log that is not the very entry it held at that index
        when last checked: from the end down to the first one unchanged (or the snapshot)."""
        if len(held) < last:
            held.extend([None] * (last - len(held)))
        else:
            del held[last:]
        entries = self.entries
        index, found = last, []
        entry: LogEntry | None = log.entry(index) if index > base else None
        while entry is not None:
            if held[index - 1] is entry:
                break  # held at the last check, and so were the entries before it
            held[index - 1] = entry
            if type(entry.transition) is Configuration:
                found.append(index)
            below = log.entry(index - 1) if index - 1 > base else None  # (its term is the previous term)
            value = (_id(entry.transition), log.base_term if below is None else below.term)
            seen = entries.setdefault((index, entry.term), value)
            if seen != value:
                self.fail("Log Matching", f"node {node} holds index {index} of term {entry.term} as "
                                          f"{value}, another log holds it as {seen} (transition, previous term)")
            index, entry = index - 1, below
        configs = self.configs.setdefault(node, [])
        while configs and configs[-1] > index:
            configs.pop()  # replaced or truncated
        configs.extend(reversed(found))

    def _snapshot(self, node: int, replica: Any, snapshot: Snapshot) -> None:
        """`node` took or installed `snapshot`: its data, and its state machine if it is exactly at the
        snapshot's index, must be the state every other node showed at that index."""
        machine = self._machine(node)
        if not isinstance(machine, ObservableStateMachine):
            return  # no way to digest its state: skipped (see the module docstring)
        index, value = snapshot.last_included_index, digest(snapshot.data)
        self._same_state(index, value, f"node {node}'s snapshot")
        if replica.last_applied == index:
            state = machine._state()  # (equal to the data, as when it was just taken: the same digest; values
            # that == takes for one, such as 1 and True, are not told apart here, as they are between nodes)
            self._same_state(index, value if state == snapshot.data else digest(state),
                             f"node {node}'s state machine, at its snapshot,")

    def _same_state(self, index: int, value: str, whose: str, *, later: bool = False) -> None:
        known = self.digests.setdefault(index, (value, whose))
        if known[0] != value:
            self.fail("State Machine Safety", f"{whose} differs at index {index} from {known[1]} "
                                              f"(state digests {value[:12]} and {known[0][:12]})", later=later)

    def _machine(self, node: int) -> Any:
        """The state machine of `node` (what its replica's tap wraps)."""
        sim = self.sim
        tap = sim._taps.get(node) if sim is not None else None
        return getattr(tap, "machine", None)


def digest(state: Any) -> str:
    """The SHA-256 (hex) of the canonical repr of a state machine's `state`: mappings and sets are
    sorted, lists and tuples are alike, anything else stands by its repr."""
    return hashlib.sha256(repr(_canonical(state)).encode()).hexdigest()


_ATOMS = frozenset((str, int, float, bytes, bool, type(None)))  # what stands for itself in `_canonical`


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    if isinstance(value, (tuple, list)):
        if _ATOMS.issuperset(map(type, value)):
            return tuple(value)  # (the common leaf, such as a key and its value: no call per item)
        return tuple(_canonical(v) for v in value)
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted(((_canonical(k), _canonical(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(v) for v in value), key=repr)))
    return value


def _id(transition: Any) -> Hashable:
    get_id = getattr(transition, "get_id", None)
    return get_id() if get_id is not None else repr(transition)
