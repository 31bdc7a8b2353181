"""Checkers for histories of client operations: `check` decides linearizability (Porcupine's algorithm).

    >>> from raftlab.check import Operation, check
    >>> check([Operation(1, "put", "x", "a", call=0, ret=1),
    ...        Operation(2, "get", "x", call=2, ret=3, output="a")]).ok
    True
"""

from .linearizability import KV_MODEL, LinearizabilityResult, Model, Operation, check

__all__ = ["KV_MODEL", "LinearizabilityResult", "Model", "Operation", "check"]
