"""raftlab's consensus core: Raft as a sans-I/O state machine, on the standard library only.

Little Raft's three steps: implement a `StateMachine`, implement a `Cluster`, start a `Replica`.
"""

from .events import Event, EventKind
from .interfaces import Cluster, ReadState, StateMachine, Transition, TransitionState, transition_id
from .log import Log
from .messages import (
    AppendEntryRequest, AppendEntryResponse, Configuration, InstallSnapshotRequest, InstallSnapshotResponse, LogEntry,
    Message, PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse, ReplicaID, Snapshot, TimeoutNow,
    VoteRequest, VoteResponse, check_message,
)
from .replica import ApplyError, Flow, Progress, Read, Replica, ReplicaStats, ReplicaStopped, Role
from .storage import MemoryStorage, Storage

__all__ = [
    "AppendEntryRequest", "AppendEntryResponse", "ApplyError", "Cluster", "Configuration", "Event", "EventKind", "Flow",
    "InstallSnapshotRequest", "InstallSnapshotResponse", "Log", "LogEntry", "MemoryStorage",
    "Message", "PreVoteRequest", "PreVoteResponse", "Progress", "Read", "ReadIndexRequest", "ReadIndexResponse",
    "ReadState", "Replica", "ReplicaID", "ReplicaStats", "ReplicaStopped", "Role", "Snapshot",
    "StateMachine", "Storage", "TimeoutNow", "Transition", "TransitionState", "VoteRequest", "VoteResponse",
    "check_message", "transition_id",
]
