"""Ready-made replicated state machines for raftlab.

`ObservableStateMachine` implements the core `StateMachine` protocol once and publishes
`MachineEvent`s; `Counter` (Little Raft's calculator, `Add` transitions) and `KVStore` (a key-value
store with at-most-once client sessions, `KVCommand` transitions) are built on it.
"""

from .base import MachineEvent, ObservableStateMachine
from .counter import Add, Counter
from .kv import SESSION_EXPIRED, KVCommand, KVStore, SessionExpired

__all__ = ["SESSION_EXPIRED", "Add", "Counter", "KVCommand", "KVStore", "MachineEvent", "ObservableStateMachine",
           "SessionExpired"]
