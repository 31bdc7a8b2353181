"""`Submission`: a client's handle on a transition submitted to a `Simulation`."""

from __future__ import annotations

from collections.abc import Hashable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from ..core import ReadState, TransitionState


@dataclass(slots=True)
class Submission:
    """A client's transition and its state on every node (`TransitionState` by node id)."""

    transition: Any  # what was submitted
    id: Hashable  # its id
    node: int  # the node it was submitted to
    step: int  # the simulation step at which it was submitted
    states: dict[int, TransitionState] = field(default_factory=dict)  # node -> latest state
    index: int | None = None  # the log index at which it was applied, once known
    answer: TransitionState | None = None  # the first final state (applied, abandoned, unknown) on its node
    replied: float | None = None  # virtual time of that answer
    result: Any = None  # if the answer is APPLIED: what the node's state machine returned (its `results`)

    def __deepcopy__(self, memo: dict) -> Submission:
        """A deep copy (a checkpoint's) that shares its id (hashable) and its states (enum members)."""
        copy = Submission(deepcopy(self.transition, memo), self.id, self.node, self.step, dict(self.states),
                          self.index, self.answer, self.replied, deepcopy(self.result, memo))
        memo[id(self)] = copy
        return copy

    @property
    def applied_on(self) -> set[int]:
        """The nodes that applied it."""
        return {n for n, s in self.states.items() if s is TransitionState.APPLIED}

    @property
    def state(self) -> TransitionState | None:
        """Its state on the node it was submitted to (what that node would answer the client)."""
        return self.states.get(self.node)

    def settled(self, k: int) -> bool:
        """True once `k` nodes applied it, or its node gave its final answer otherwise (abandoned, or
        unknown: then retry it with the same id, as `Simulation.one` does)."""
        return len(self.applied_on) >= k or (self.state is not None and self.state.final
                                              and self.state is not TransitionState.APPLIED)

    def track(self, node: int, state: TransitionState, index: int, now: float) -> bool:
        """`node` registered `state` for it (`index`: the node's last applied index). True if that is
        the answer to the client (the first final state on its node); the caller sets `result`."""
        self.states[node] = state
        if state is TransitionState.APPLIED and self.index is None:
            self.index = index
        if node == self.node and self.answer is None and state.final:
            self.answer, self.replied = state, now
            return True
        return False


@dataclass(slots=True)
class ReadRequest:
    """A client's linearizable read of `key` at a node of a `Simulation` (`Simulation.read`)."""

    key: Any  # what is read (the state machine's ``read(key)`` gives the value)
    id: Hashable  # the read's id
    node: int  # the node asked
    asked: float  # virtual time of the request
    state: ReadState | None = None  # READY (answered: `value`) or ABANDONED; None while waiting
    value: Any = None  # the value read, once READY
    answered: float | None = None  # virtual time of the answer
