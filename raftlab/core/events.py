"""What a replica tells its observer: an `Event` per thing it did, of a kind named in `EventKind`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .messages import ReplicaID


class EventKind:
    """The kinds of `Event`, named once: the trace, the renderers, the app, the TCP node and the command
    line compare `event.kind` with these (plain strings, so traces stay JSON)."""

    BECAME_CANDIDATE: Final = "became_candidate"  # C-START
    BECAME_LEADER: Final = "became_leader"  # C-WIN
    BECAME_FOLLOWER: Final = "became_follower"  # ALL-TERM, C-YIELD
    VOTE_GRANTED: Final = "vote_granted"  # RV-GRANT
    VOTE_REFUSED: Final = "vote_refused"  # RV-STALE, RV-GRANT
    APPENDED: Final = "appended"  # L-APPEND, L-NOOP, AE-APPEND
    APPEND_REFUSED: Final = "append_refused"  # AE-CHECK
    TRUNCATED: Final = "truncated"  # AE-TRUNCATE
    COMMITTED: Final = "committed"  # L-COMMIT, AE-COMMIT
    APPLIED: Final = "applied"  # ALL-APPLY
    SNAPSHOT_TAKEN: Final = "snapshot_taken"  # SNAP-TAKE
    SNAPSHOT_INSTALLED: Final = "snapshot_installed"  # IS-LOAD
    MESSAGE_DROPPED: Final = "message_dropped"  # INPUT
    FLOW_CHANGED: Final = "flow_changed"  # FC-PIPELINE, FC-SNAPSHOT: how a leader sends to a follower
    PRE_VOTE_STARTED: Final = "pre_vote_started"  # PV-ASK
    PRE_VOTE_WON: Final = "pre_vote_won"  # PV-WIN
    VOTE_IGNORED: Final = "vote_ignored"  # CQ-STICKY: a VoteRequest ignored while a leader is heard from
    TRANSFER_STARTED: Final = "transfer_started"  # LT-STOP
    TIMEOUT_NOW_SENT: Final = "timeout_now_sent"  # LT-TIMEOUTNOW
    TRANSFER_ABORTED: Final = "transfer_aborted"  # LT-ABORT
    READ_CONFIRMED: Final = "read_confirmed"  # RI-CONFIRM, RI-LEASE (once RI-CURRENT holds): a read has its index
    READ_READY: Final = "read_ready"  # RI-SERVE
    READ_ABANDONED: Final = "read_abandoned"  # RI-SERVE: no leader confirmed it
    CONFIGURATION_CHANGED: Final = "configuration_changed"  # MC-LATEST: the latest configuration changed
    CONFIG_REFUSED: Final = "config_refused"  # MC-ONE: a configuration change that may not be made now

    ROLE_CHANGES: Final = (BECAME_CANDIDATE, BECAME_LEADER, BECAME_FOLLOWER)
    VOTES: Final = (VOTE_GRANTED, VOTE_REFUSED)  # (pre-votes too: rule PV-GRANT)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a replica did, given to its observer. `rule` is a rule id of raft-rules.md
    (``INPUT`` for a dropped message); `details` says what and why."""

    time: float  # the replica's clock when it happened
    node: ReplicaID  # the replica
    kind: str  # an `EventKind`, for example EventKind.BECAME_LEADER
    rule: str  # the rule that made it happen
    term: int  # the replica's term afterwards
    details: Mapping[str, Any] = field(default_factory=dict)
