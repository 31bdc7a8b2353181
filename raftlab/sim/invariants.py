"""Raft's safety properties (Figure 3), checked incrementally while a simulation runs.

Each check looks only at what changed in the last step, so long runs stay fast. The checks read
the replicas' state, not their own account of it, so a replica that breaks a rule silently is
caught too.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..core import Role

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


class InvariantChecker:
    """Checks Election Safety, Leader Append-Only, Log Matching, Leader Completeness, State Machine
    Safety, and that terms and commit indices never decrease."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> the node that led it
        self.entries: dict[tuple[int, int], tuple[Hashable, int]] = {}  # (index, term) -> (id, previous term)
        self.applied: dict[int, Hashable] = {}  # index -> the transition applied there
        self.committed: tuple[int, int] = (0, 0)  # (index, term) of the highest committed entry
        self.terms: dict[int, int] = {}  # node -> highest term seen
        self.commits: dict[int, int] = {}  # node -> commit index in its current incarnation
        self.tails: dict[int, tuple] = {}  # leader node -> (term, last index, last term, last entry)
        self.logs: dict[int, tuple[int, int]] = {}  # node -> (last index, last term) when last checked
        self.sim: Simulation | None = None
        self.pending: InvariantViolation | None = None  # seen inside a replica's call, raised after it

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

    def on_apply(self, node: int, index: int, transition_id: Hashable, previous: int) -> None:
        """State Machine Safety: one transition per index on every node, each index applied once."""
        if index != previous + 1:
            again = "again" if index <= previous else "out of order"
            self.fail("State Machine Safety", f"node {node} applied index {index} {again}, after index {previous}",
                      later=True)
        seen = self.applied.setdefault(index, transition_id)
        if seen != transition_id:
            self.fail("State Machine Safety", f"node {node} applied {transition_id!r} at index {index}, "
                                              f"where {seen!r} was applied", later=True)

    def check(self, node: int, replica: Any) -> None:
        """Check what may have changed on `node` (a live replica) in the last step."""
        term, log = replica.current_term, replica.log
        if term < self.terms.get(node, 0):
            self.fail("Monotonic term", f"node {node}'s term went from {self.terms[node]} back to {term}")
        self.terms[node] = term
        commit = replica.commit_index
        if commit < self.commits.get(node, 0):
            self.fail("Monotonic commit index", f"node {node}'s commit index went from {self.commits[node]} "
                                                f"back to {commit}")
        self.commits[node] = commit
        last, last_term = log.last_index, log.last_term
        if self.logs.get(node) != (last, last_term):  # Log Matching, on the entries that are new
            self.logs[node] = (last, last_term)
            index = last
            while index > log.base_index:
                entry = log.entry(index)
                key, value = (index, entry.term), (_id(entry.transition), log.term_at(index - 1))
                seen = self.entries.setdefault(key, value)
                if seen != value:
                    self.fail("Log Matching", f"node {node} holds index {index} of term {entry.term} as "
                                              f"{value}, another log holds it as {seen} (transition, previous term)")
                if seen is not value:
                    break  # known before: the prefix below was checked then
                index -= 1
        if commit > self.committed[0] and commit > log.base_index:
            self.committed = (commit, log.term_at(commit))
        if replica.role is not Role.LEADER:
            self.tails.pop(node, None)
            return
        if self.leaders.setdefault(term, node) != node:  # Election Safety
            self.fail("Election Safety", f"nodes {self.leaders[term]} and {node} are both leaders of term {term}")
        tail = self.tails.get(node)
        if tail is None or tail[0] != term:  # a new leader: Leader Completeness
            index, c_term = self.committed
            if index > log.base_index and log.term_at(index) != c_term:
                self.fail("Leader Completeness", f"node {node} leads term {term} without the committed entry "
                                                 f"{index} of term {c_term}")
        elif last < tail[1] or (tail[1] > log.base_index and (log.term_at(tail[1]) != tail[2]
                                                               or log.entry(tail[1]) is not tail[3])):
            self.fail("Leader Append-Only", f"leader {node} of term {term} removed or overwrote entries "
                                            f"(its log ended at {tail[1]}/term {tail[2]}, now at {last})")
        self.tails[node] = (term, last, last_term, log.entry(last) if last > log.base_index else None)


def _id(transition: Any) -> Hashable:
    get_id = getattr(transition, "get_id", None)
    return get_id() if get_id is not None else repr(transition)
