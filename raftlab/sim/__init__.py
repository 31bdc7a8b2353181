"""raftlab.sim: the deterministic in-memory cluster, in virtual time.

`Simulation` runs real `raftlab.core.Replica`s on a simulated network (`NetworkModel`), records an
explained `Trace`, checks Raft's safety properties as it goes (`InvariantViolation`), and can
rewind. See docs in `Simulation`.
"""

from .invariants import InvariantChecker, InvariantViolation
from .network import LinkModel, NetworkModel
from .simulation import InFlight, NodeSnapshot, ReplicaView, SimCluster, SimSnapshot, Simulation, Submission
from .trace import Trace, TraceEvent, describe

__all__ = [
    "InFlight", "InvariantChecker", "InvariantViolation", "LinkModel", "NetworkModel", "NodeSnapshot",
    "ReplicaView", "SimCluster", "SimSnapshot", "Simulation", "Submission", "Trace", "TraceEvent", "describe",
]
