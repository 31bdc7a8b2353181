"""raftlab over TCP: the unchanged `Replica` across processes and machines.

`TcpCluster` implements the core's `Cluster` protocol over authenticated TCP frames (`codec`);
`KVNode` runs a replica of a `KVStore` on `SqliteStorage` and serves clients (`raftlab node`);
`KVClient` is its client (`raftlab kv`). Standard library only; no pickle anywhere.
"""

from .client import KVClient, KVError, SessionExpiredError
from .codec import MAX_FRAME, FrameError, InboundSession, OutboundSession, decode_messages, encode_messages
from .transport import TcpCluster, TransportStats

__all__ = ["MAX_FRAME", "FrameError", "InboundSession", "KVClient", "KVError", "OutboundSession", "SessionExpiredError",
           "TcpCluster", "TransportStats", "decode_messages", "encode_messages"]
