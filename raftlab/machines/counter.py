"""`Counter`: Little Raft's calculator, an integer that replicated `Add` transitions change."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ObservableStateMachine


@dataclass(frozen=True, slots=True)
class Add:
    """Add `delta` (negative to subtract) to the counter. `id` names the transition."""

    id: Hashable  # the transition's id, as given to register_transition_state
    delta: int  # the amount to add

    def __post_init__(self) -> None:
        try:
            hash(self.id)
        except TypeError:
            raise ValueError(f"Add.id must be hashable, not {self.id!r}") from None
        if type(self.delta) is not int:
            raise ValueError(f"Add.delta must be an int, not {self.delta!r}")

    def get_id(self) -> Hashable:
        """The transition's id."""
        return self.id

    def __deepcopy__(self, memo: dict) -> Any:
        return self  # an immutable value: copies (a simulator's checkpoints) share it


class Counter(ObservableStateMachine[Add, int]):
    """A replicated integer (Little Raft's calculator).

    Applying `Add(id, delta)` adds `delta` to `value`; its result is the new value. The snapshot
    data is the value itself (an immutable int).
    """

    NOOP: ClassVar[Add] = Add("noop", 0)

    def __init__(self, value: int = 0) -> None:
        super().__init__()
        if type(value) is not int:
            raise ValueError(f"Counter value must be an int, not {value!r}")
        self.value = value  # the current value

    def _apply(self, transition: Add) -> int:
        self.value += transition.delta
        return self.value

    def read(self, key: Hashable = None) -> int:
        """The value, as of the last entry applied (a counter holds one value: `key` is ignored); a
        linearizable read (`Replica.read`) answers with it."""
        return self.value

    def _state(self) -> int:
        return self.value

    def _restore(self, data: int) -> None:
        self.value = data

    def _describe(self) -> str:
        return f"value={self.value}"
