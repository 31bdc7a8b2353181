"""raftlab.sim: the deterministic in-memory cluster, in virtual time.

`Simulation` runs real `raftlab.core.Replica`s on a simulated network (`NetworkModel`), records an
explained `Trace`, checks Raft's safety properties as it goes (`InvariantViolation`), and can
rewind (its `History`). A trace event's kind is a `SimKind` or the core's `EventKind`. Renderers
read `sim.frame()`, a `Frame`. See docs in `Simulation`.
"""

from .frame import Frame, NodeFrame
from .history import Branch, History
from .invariants import InvariantChecker, InvariantViolation
from .network import LinkModel, NetworkModel
from .node import ReplicaView, SimCluster
from .simulation import InFlight, Simulation
from .submission import ReadRequest, Submission
from .trace import SimKind, Trace, TraceEvent, describe

__all__ = [
    "Branch", "Frame", "History", "InFlight", "InvariantChecker", "InvariantViolation", "LinkModel", "NetworkModel",
    "NodeFrame", "ReadRequest", "ReplicaView", "SimCluster", "SimKind", "Simulation", "Submission", "Trace",
    "TraceEvent", "describe",
]
