"""The Raft replica: a sans-I/O state machine driven by three plain calls.

Messages are available (`process_messages`, or `step` for one message), transitions are available
(`process_transitions`), time has advanced (`tick`). Each rule of Figure 2 lives in one method and
names its rule id from raft-rules.md (kept in the project as docs/raft-rules.md) in a comment.
`start` is Little Raft's blocking real-time loop, a thin driver over the same three calls.
"""

from __future__ import annotations

import functools
import math
import queue
import random
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, Generic, TypeVar, cast

from .events import Event, EventKind
from .interfaces import Cluster, ReadState, StateMachine, TransitionState
from .log import Log
from .messages import (
    AppendEntryRequest, AppendEntryResponse, Configuration, InstallSnapshotRequest, InstallSnapshotResponse, LogEntry,
    Message,
    PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse, ReplicaID, Snapshot, TimeoutNow,
    VoteRequest, VoteResponse, check_configuration, check_message,
)
from .storage import MemoryStorage, Storage

T = TypeVar("T")
D = TypeVar("D")


_REQUESTS = (AppendEntryRequest, InstallSnapshotRequest, VoteRequest, PreVoteRequest, TimeoutNow, ReadIndexRequest)
"""Accepted from any server (thesis §4.1: a server not in one's latest configuration may lead, or
stand); answers are accepted only from the members of a configuration seen, or from a leader heard."""


class Role(Enum):
    """The three roles of §5.1."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class Flow(Enum):
    """How a leader sends to one follower (etcd raft's `tracker.StateType`)."""

    PROBE = "probe"  # FC-PROBE: its match is not known; one AppendEntries in flight at a time
    REPLICATE = "replicate"  # FC-PIPELINE: it matches; up to max_inflight AppendEntries in flight
    SNAPSHOT = "snapshot"  # FC-SNAPSHOT: an InstallSnapshot is on its way; only heartbeats besides


@dataclass(slots=True)
class Progress:
    """A leader's view of one follower's replication, beside `next_index` and `match_index`
    (etcd raft's `tracker.Progress`)."""

    flow: Flow = Flow.PROBE  # how to send to it
    probe: int | None = None  # PROBE: prev_log_index of the probe in flight (None: none in flight)
    inflight: list[int] = field(default_factory=list)  # REPLICATE: last index of each request in flight
    oldest: int | None = None  # REPLICATE: the oldest request in flight at the last heartbeat
    active: bool = False  # it answered since the last heartbeat (etcd's RecentActive)
    resend_at: float = math.inf  # SNAPSHOT: when to send the snapshot again if it is not answered
    round: int = 0  # the latest heartbeat round it acknowledged (RI-CONFIRM, CQ-STEPDOWN, RI-LEASE)


@dataclass(slots=True)
class Read:
    """A linearizable read waiting on this replica (thesis §6.4)."""

    id: Hashable  # the caller's id (a leader serving a follower: that follower's `seq`)
    origin: ReplicaID  # who answers it: this replica, or the follower that asked
    round: int  # leader: the heartbeat round that confirms it (0: a lease did); follower: its `seq`
    index: int | None = None  # the read index, once confirmed (RI-CONFIRM)


@dataclass(slots=True)
class ReplicaStats:
    """Counters kept by a replica."""

    received: int = 0  # messages handed to `step`
    sent: int = 0  # messages given to `cluster.send_message`
    dropped: int = 0  # received messages dropped as malformed or misaddressed
    drop_reasons: dict[str, int] = field(default_factory=dict)  # dropped, by reason


class ReplicaStopped(RuntimeError):
    """An exception escaped an input (from storage, the state machine or the cluster), so the replica
    stopped (fail-stop): every later input raises this again. Restart it from its storage."""


class ApplyError(ReplicaStopped):
    """The state machine's `apply_transition` raised: the replica has stopped (fail-stop)."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"apply_transition raised at log index {index}: {error!r}; the replica "
                         f"has stopped, fix the state machine and restart it from its storage")
        self.index = index  # the log index that could not be applied


def _input(method: Callable) -> Callable:
    """Wrap an input: refuse to run once stopped; an exception escaping it stops the replica."""

    @functools.wraps(method)
    def guarded(self: Replica, *args: Any) -> None:
        if self._stopped is not None:
            raise self._stopped
        try:
            method(self, *args)
        except ReplicaStopped as stop:
            self._stopped = stop
            raise
        except Exception as error:
            self._stopped = ReplicaStopped(f"replica {self.id} stopped: {error!r}")
            raise self._stopped from error

    return guarded


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        raise ValueError(f"{name} must be a number of seconds or a timedelta, not {value!r}")
    return float(seconds)


class Replica(Generic[T, D]):
    """One Raft server (Little Raft's `Replica`).

    Args:
        id: this replica's id, a non-negative int.
        peer_ids: the ids of the other replicas (empty for a single-node cluster).
        cluster: how to reach the peers (`Cluster`).
        state_machine: what is replicated (`StateMachine`).
        noop_transition: appended by every new leader (§8), so earlier entries commit promptly.
        heartbeat_timeout: seconds (or a `timedelta`) between a leader's AppendEntries.
        election_timeout_range: ``(low, high)`` seconds; each election timer is drawn uniformly from
            it. ``low`` must exceed the heartbeat; Little Raft advises 2-3x the heartbeat.
        snapshot_delta: compact the log every this many applied entries (0: never).
        pre_vote: ask for pre-votes before an election (PV-*, thesis §9.6), so that a server that was
            cut off cannot depose a healthy leader when it comes back.
        check_quorum: a leader that hears from no majority for an election timeout steps down, and a
            server that hears from a leader ignores VoteRequests of higher terms (CQ-*, §6.2, §4.2.3).
        read_lease: serve reads in a leader's lease without a heartbeat round (RI-LEASE, §6.4.1); needs
            check_quorum and clocks whose rates differ by at most `drift_bound`.
        drift_bound: the most one clock's rate may exceed another's (RI-LEASE), >= 1.
        learner: this replica joins a running cluster (whose members are `peer_ids`) as a learner
            (MC-LEARNER): it is replicated to, never counted, and never stands until it is promoted.
        max_inflight: the most AppendEntries with entries a leader keeps in flight to a follower that
            matches (FC-PIPELINE). 1 (the default) waits for each answer and then sends all that
            accumulated meanwhile: right on a network that reorders (the simulator's); a transport
            that keeps order, such as one TCP connection per peer, gains from more (etcd uses 256).
        storage: where term, vote, log and snapshot persist (a new `MemoryStorage` by default).
            A replica built on existing storage resumes from it.
        rng: randomness for election timers (`random.Random`); pass a seeded one for determinism.
        clock: a function returning the current time in seconds; without one, the time is the
            last `now` given to `tick` (0 before the first).
        observer: called with an `Event` for everything the replica does.

    Rule methods: each rule of raft-rules.md lives in one public method whose name says the rule, with
    the rule's id in a comment (`grant_vote` is RV-GRANT, `advance_commit` is L-COMMIT, ...). They are
    meant to be overridden, one rule each: the course's exercises (`raftlab.grading.StudentReplica`)
    and the grader's planted bugs are subclasses that replace one of them. The public helpers they use
    (`send`, `emit`, `set_leader`, `has_majority`, `commit_to`, `truncate`, `send_append`, `report`,
    `drop`) and the attributes `rng`, `election_deadline` and `heartbeat_deadline` are part of that API.

    `trusted_input`: a driver that delivers only messages that replicas of this very class sent in its
    own process (the simulator, for the core `Replica`) may set it, and `step` then skips
    `check_message`, which such messages always pass; the other checks of a received message stay.
    Input from a network is never trusted.
    """

    MAX_ENTRIES_PER_MESSAGE = 256  # bounds the size of one AppendEntryRequest
    trusted_input = False  # True: a driver that delivers only what correct replicas sent skips check_message

    def __init__(self, id: ReplicaID, peer_ids: Iterable[ReplicaID], cluster: Cluster[T, D],
                 state_machine: StateMachine[T, D], noop_transition: T,
                 heartbeat_timeout: float | timedelta,
                 election_timeout_range: tuple[float | timedelta, float | timedelta],
                 snapshot_delta: int = 0, *, max_inflight: int = 1, pre_vote: bool = False,
                 check_quorum: bool = False, read_lease: bool = False, drift_bound: float = 1.1,
                 learner: bool = False, storage: Storage | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] | None = None,
                 observer: Callable[[Event], None] | None = None) -> None:
        peers = tuple(peer_ids)
        for name, value in [("id", id), *(("peer_ids", p) for p in peers)]:
            if type(value) is not int or value < 0:
                raise ValueError(f"{name}: a replica id must be a non-negative int, not {value!r}")
        if id in peers or len(set(peers)) != len(peers):
            raise ValueError(f"peer_ids must be distinct and must not hold this replica's own id {id}: {peers}")
        heartbeat = _seconds(heartbeat_timeout, "heartbeat_timeout")
        if heartbeat <= 0:
            raise ValueError(f"heartbeat_timeout must be positive, not {heartbeat_timeout!r}")
        if not isinstance(election_timeout_range, (tuple, list)) or len(election_timeout_range) != 2:
            raise ValueError("election_timeout_range must be a pair (low, high), "
                             f"not {election_timeout_range!r}")
        low, high = (_seconds(v, "election_timeout_range") for v in election_timeout_range)
        if low > high:
            raise ValueError(f"election_timeout_range is inverted: low {low} > high {high}")
        if low <= heartbeat:
            raise ValueError(f"election_timeout_range must lie above heartbeat_timeout ({heartbeat} s); "
                             f"2-3x the heartbeat is usual, got low={low}")
        if type(snapshot_delta) is not int or snapshot_delta < 0:
            raise ValueError(f"snapshot_delta must be an int >= 0 (0: never compact), not {snapshot_delta!r}")
        if type(max_inflight) is not int or max_inflight < 1:
            raise ValueError(f"max_inflight must be an int >= 1, not {max_inflight!r}")
        if not isinstance(drift_bound, (int, float)) or not 1 <= drift_bound < math.inf:
            raise ValueError(f"drift_bound must be a number >= 1, not {drift_bound!r}")
        for name, flag in (("pre_vote", pre_vote), ("check_quorum", check_quorum), ("read_lease", read_lease),
                           ("learner", learner)):
            if type(flag) is not bool:
                raise ValueError(f"{name} must be True or False, not {flag!r}")
        if learner and not peers:
            raise ValueError("learner: a learner joins a running cluster, so peer_ids must name its members")
        if read_lease and not check_quorum:
            raise ValueError("read_lease needs check_quorum=True: without it a lease proves nothing (RI-LEASE)")

        self.id = id  # this replica
        self.peer_ids = peers  # the other members of the latest configuration (MC-LATEST)
        self.initial_configuration = Configuration.of(peers if learner else (id, *peers), (id,) if learner else ())
        self.configuration, self.config_index = self.initial_configuration, 0  # the latest in the log, its index
        self._senders = frozenset(peers)  # whom answers are accepted from: members seen, leaders heard
        self.cluster = cluster  # the user's transport
        self.state_machine = state_machine  # the user's state machine
        self.noop_transition = noop_transition  # appended by each new leader (L-NOOP)
        self.heartbeat_timeout = heartbeat  # seconds between heartbeats
        self.election_timeout_range = (low, high)  # seconds, drawn uniformly
        self.snapshot_delta = snapshot_delta  # entries applied between snapshots (0: never)
        self.max_inflight = max_inflight  # leader: AppendEntries in flight to a matching follower
        self.pre_vote, self.check_quorum = pre_vote, check_quorum  # the thesis's options (PV-*, CQ-*)
        self.read_lease, self.drift_bound = read_lease, float(drift_bound)  # RI-LEASE
        self.storage = storage if storage is not None else MemoryStorage()  # persistent state
        self.stats = ReplicaStats()  # counters
        self.role = Role.FOLLOWER  # follower, candidate or leader
        self.leader_id: ReplicaID | None = None  # the leader known in this term
        self.commit_index = self.last_applied = 0  # highest index known committed; highest applied
        self.next_index: dict[ReplicaID, int] = {}  # leader: next index to send to each peer
        self.match_index: dict[ReplicaID, int] = {}  # leader: highest index known replicated on each peer
        self.progress: dict[ReplicaID, Progress] = {}  # leader: how it sends to each peer (flow control)
        self.votes: set[ReplicaID] = set()  # candidate: who voted for it in this term
        self.pre_votes: set[ReplicaID] | None = None  # during a pre-vote: who would vote for it (PV-WIN)
        self.transfer_to: ReplicaID | None = None  # leader: the target of a leadership transfer (LT-*)
        self.transfer_deadline = math.inf  # leader: when the transfer ends (LT-ABORT); inf: none tried in this term
        self.transfer_election = False  # the election about to start answers a TimeoutNow (LT-TIMEOUTNOW)
        self.round = self.read_seq = 0  # leader: rounds started (RI-CONFIRM); follower: its last ReadIndexRequest
        self.round_sent: dict[int, float] = {}  # leader with check_quorum: when recent rounds started
        self.reads: list[Read] = []  # linearizable reads waiting (RI-*)
        self.rng = rng if rng is not None else random.Random()  # draws the election timers
        self._clock, self._time, self._observer = clock, 0.0, observer  # (_time: the last tick, without a clock)
        self.election_deadline = self.heartbeat_deadline = math.inf  # a follower's election; a leader's heartbeat
        self._stopped: ReplicaStopped | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            AppendEntryRequest: self.handle_append_request, AppendEntryResponse: self.handle_append_response,
            VoteRequest: self.handle_vote_request, VoteResponse: self.handle_vote_response,
            InstallSnapshotRequest: self.handle_snapshot_request,
            InstallSnapshotResponse: self.handle_snapshot_response, PreVoteRequest: self.handle_pre_vote_request,
            PreVoteResponse: self.handle_pre_vote_response, TimeoutNow: self.handle_timeout_now,
            ReadIndexRequest: self.handle_read_request, ReadIndexResponse: self.handle_read_response,
        }
        self.recover()
        self.load_configuration()
        self.reset_election_timer()
        self.leader_heard_at = self.now()  # when a leader was last heard from (CQ-STICKY); a (re)start counts

    def __repr__(self) -> str:
        return (f"Replica(id={self.id}, role={self.role.value}, term={self.current_term}, "
                f"voted_for={self.voted_for}, last_index={self.log.last_index}, "
                f"commit_index={self.commit_index}, last_applied={self.last_applied})")

    # ----- state -------------------------------------------------------------------------------
    @property
    def current_term(self) -> int:
        """The latest term this replica has seen (persistent)."""
        return self.storage.current_term

    @property
    def voted_for(self) -> ReplicaID | None:
        """The candidate voted for in the current term (persistent)."""
        return self.storage.voted_for

    @property
    def log(self) -> Log:
        """The log, with its compacted prefix (persistent)."""
        return self.storage.log

    @property
    def next_deadline(self) -> float:
        """The time of the next timer: call `tick` then (``inf`` if none is set)."""
        return self.heartbeat_deadline if self.role is Role.LEADER else self.election_deadline

    @property
    def stopped(self) -> bool:
        """True once an input failed (for example the state machine could not apply an entry)."""
        return self._stopped is not None

    def now(self) -> float:
        """The replica's current time: its clock, or the last `tick`."""
        return self._clock() if self._clock is not None else self._time

    # ----- the three inputs --------------------------------------------------------------------
    @_input
    def tick(self, now: float | None = None) -> None:
        """Time has advanced to `now` (the clock's time if omitted): fire the timers that are due.

        Timers that messages reset count from the replica's time (`now()`): without a clock, call
        `tick` before handing the replica messages that arrived at a later time."""
        self._time = self.now() if now is None else now
        if self.role is Role.LEADER:
            if self._time >= self.heartbeat_deadline:  # L-HEARTBEAT (§5.2)
                self.heartbeat_deadline = self._time + self.heartbeat_timeout
                if self.check_quorum and self.lost_quorum():
                    return
                if self.transfer_to is not None and self._time >= self.transfer_deadline:
                    self.abort_transfer()
                for peer in self.peer_ids:
                    self.send_heartbeat(peer)
        elif self._time >= self.election_deadline:  # F-TIMEOUT and C-RETRY (§5.2), PV-ASK
            self.campaign()

    @_input
    def process_messages(self) -> None:
        """Messages are available: take every message from `cluster.receive_messages()` and step it."""
        for message in self.cluster.receive_messages():
            self.step(message)

    @_input
    def process_transitions(self) -> None:
        """Transitions are available: take them from `state_machine.get_pending_transitions()`."""
        transitions = list(self.state_machine.get_pending_transitions())
        if not transitions:
            return
        if self.role is not Role.LEADER or self.transfer_to is not None:  # LT-STOP (§3.10)
            for t in transitions:
                self.report(t, TransitionState.ABANDONED_NOT_LEADER)
            return
        # L-APPEND (§5.3): append (durably), then replicate; applied once committed. MC-ONE: each configuration
        # change after the other transitions, alone (so that the next one finds it uncommitted), or refused.
        batches: list[list[Any]] = [[t for t in transitions if not isinstance(t, Configuration)]]
        for batch in batches + [[t] for t in transitions if isinstance(t, Configuration)]:
            why = self.may_change_configuration(batch[0]) if batch and isinstance(batch[0], Configuration) else None
            if why is not None:
                self.emit(EventKind.CONFIG_REFUSED, "MC-ONE", configuration=repr(batch[0]), why=why)
                self.report(batch[0], TransitionState.ABANDONED_REFUSED)
            elif batch:
                start, term = self.log.last_index + 1, self.current_term
                self.append_entries([LogEntry(t, start + k, term) for k, t in enumerate(batch)], "L-APPEND")
                for t in batch:
                    self.report(t, TransitionState.QUEUED)
        self.broadcast_append()
        self.advance_commit()

    @_input
    def step(self, message: Message) -> None:
        """Handle one received message. A malformed or misaddressed one is dropped and counted."""
        self.stats.received += 1
        reason = None if self.trusted_input else check_message(message)
        if reason is None and (message.from_id == self.id or (message.from_id not in self._senders
                                                              and type(message) not in _REQUESTS)):
            reason = "from itself" if message.from_id == self.id else f"unknown sender: {message.from_id}"
        if reason is not None:
            self.drop(reason)
            return
        if isinstance(message, VoteRequest) and message.term > self.current_term and self.vote_is_disruptive(message):
            return
        if message.term > self.current_term and not (  # ALL-TERM (§5.1); PV-GRANT: pre-votes are exempt
                isinstance(message, PreVoteRequest) or (isinstance(message, PreVoteResponse) and message.vote_granted)):
            self.become_follower(message.term, f"saw term {message.term} from {message.from_id}")
        if type(message) in (VoteResponse, PreVoteResponse) and message.from_id not in self.configuration.voters:
            return  # MC-LATEST (§4.1): only the votes of the latest configuration's voters count
        self._handlers[type(message)](message)

    @_input
    def campaign(self) -> None:
        """Start an election now, as if the election timer had fired (a leader does nothing). For
        tools and teaching: a simulator's "time out this node" button."""
        if self.role is Role.LEADER:
            return
        if self.id not in self.configuration.voters:  # MC-LEARNER (§4.2.1): only a voter stands
            self.reset_election_timer()
        else:
            self.start_pre_vote() if self.pre_vote else self.start_election()

    def transfer_leadership(self, to: ReplicaID) -> None:
        """Hand the leadership to peer `to` (thesis §3.10): take no new transitions (LT-STOP), bring
        `to` up to date (LT-CATCHUP), then tell it to start an election at once (LT-TIMEOUTNOW). If it
        has not won within an election timeout, the transfer is aborted (LT-ABORT). Raises ValueError
        if this replica is not the leader or `to` is not a peer."""
        if to not in self.configuration.voters - {self.id}:
            raise ValueError(f"to must be another voter of replica {self.id}'s configuration (one of "
                             f"{sorted(self.configuration.voters - {self.id})}), not {to!r}")
        if self.role is not Role.LEADER:
            raise ValueError(f"replica {self.id} is not the leader (the leader it knows: {self.leader_id}): "
                             f"ask the leader to transfer")
        self._transfer(to)

    @_input
    def _transfer(self, to: ReplicaID) -> None:
        # LT-STOP (§3.10): no new transitions until the transfer ends; no more lease reads in this term.
        self.transfer_to, self.transfer_deadline = to, self.now() + self.election_timeout_range[1]
        self.emit(EventKind.TRANSFER_STARTED, "LT-STOP", to=to)
        self.send_append(to)  # LT-CATCHUP (§3.10): ordinary replication
        self.send_timeout_now()

    @_input
    def read(self, read_id: Hashable) -> None:
        """Ask for a linearizable read without a log write (ReadIndex, thesis §6.4). Once it is safe,
        the state machine's `register_read_state(read_id, ReadState.READY)` is called: answer it from
        the state machine's current state then. ``ReadState.ABANDONED``: no leader confirmed it; ask
        again. A follower asks its leader for the read index; a read whose message is lost is never
        answered, so callers keep a timeout, as for transitions."""
        if self.role is Role.LEADER:
            self.reads.append(Read(read_id, self.id, self.confirm_round()))
        elif self.leader_id is not None:  # RI-SERVE (§6.4): a follower asks its leader for a read index
            self.read_seq += 1
            self.reads.append(Read(read_id, self.id, self.read_seq))
            self.send(self.leader_id, ReadIndexRequest(self.id, self.current_term, self.read_seq))
        else:
            self.report_read(read_id, ReadState.ABANDONED)
        self.serve_reads()

    def start(self, recv_msg: queue.Queue, recv_transition: queue.Queue, poll: float = 0.005) -> None:
        """Little Raft's blocking loop in real time: returns once `cluster.halt()` is true.

        Put anything on `recv_msg` when messages are waiting and on `recv_transition` when
        transitions are waiting. Transitions are noticed within `poll` seconds.
        """
        if self._clock is None:
            self._clock = time.monotonic
            self.reset_election_timer()
        while not self.cluster.halt():
            self.tick()
            wait = min(max(self.next_deadline - self.now(), 0.0), poll)
            if _drain(recv_msg, wait):
                self.process_messages()
            if _drain(recv_transition, 0.0):
                self.process_transitions()

    # ----- handlers for each message -----------------------------------------------------------
    def heard_from_leader(self) -> bool:
        """Whether a leader was heard from within the minimum election timeout (a leader has; a server
        counts its own start as hearing from one, so that a restart cannot cut short a leader's lease)."""
        return self.role is Role.LEADER or self.now() - self.leader_heard_at < self.election_timeout_range[0]

    def vote_is_disruptive(self, m: VoteRequest) -> bool:
        # CQ-STICKY (§4.2.3, §6.2): with check_quorum, a VoteRequest of a higher term is ignored while a
        # leader is heard from (term and vote stay), unless a leadership transfer asked for it.
        if not self.check_quorum or m.transfer or not self.heard_from_leader():
            return False
        self.emit(EventKind.VOTE_IGNORED, "CQ-STICKY", candidate=m.from_id,
                  why=f"a current leader ({self.leader_id}) was heard from within the minimum election timeout")
        return True

    def start_pre_vote(self) -> None:
        # PV-ASK (§9.6): ask for pre-votes for term + 1, changing and persisting nothing (but the timer); the
        # leader it knew is gone (as in etcd), so that its reads go elsewhere.
        self.pre_votes = {self.id}
        self.set_leader(None)
        self.reset_election_timer()
        self.emit(EventKind.PRE_VOTE_STARTED, "PV-ASK", for_term=self.current_term + 1)
        if self.has_majority(1):
            self.pre_votes = None
            self.start_election()
            return
        request = PreVoteRequest(self.id, self.current_term + 1, self.log.last_index, self.log.last_term)
        for peer in self.peer_ids:
            self.send(peer, request)

    def grant_pre_vote(self, m: PreVoteRequest) -> bool:
        # PV-GRANT (§9.6): for a later term, a log at least as up to date, and no leader heard from
        # within the minimum election timeout. Nothing changes here: no term, no vote, no timer.
        return (m.term > self.current_term and not self.heard_from_leader()
                and self.log.is_up_to_date(m.last_log_index, m.last_log_term))

    def handle_pre_vote_request(self, m: PreVoteRequest) -> None:
        granted = self.grant_pre_vote(m)  # a refusal carries my term, a grant the request's (etcd#8243, #8501)
        why = ("its log is at least as up to date as mine and I hear from no leader" if granted
               else f"my term {self.current_term} is not behind its {m.term}" if m.term <= self.current_term
               else "I am the leader" if self.role is Role.LEADER
               else "I heard from a leader within the minimum election timeout" if self.heard_from_leader()
               else "its log is behind mine")
        self.emit(EventKind.VOTE_GRANTED if granted else EventKind.VOTE_REFUSED, "PV-GRANT", candidate=m.from_id,
                  why=why, pre_vote=True)
        self.send(m.from_id, PreVoteResponse(self.id, m.term if granted else self.current_term, granted))

    def handle_pre_vote_response(self, m: PreVoteResponse) -> None:
        # PV-WIN (§9.6): pre-votes from a majority for my term + 1 start a real election (C-START).
        if self.pre_votes is None or not m.vote_granted or m.term != self.current_term + 1:
            return  # not asking, a refusal (a higher term in it made me follow it: ALL-TERM), or stale
        self.pre_votes.add(m.from_id)
        if self.has_majority(len(self.pre_votes)):
            self.emit(EventKind.PRE_VOTE_WON, "PV-WIN", pre_votes=sorted(self.pre_votes))
            self.pre_votes = None
            self.start_election()

    def handle_vote_request(self, m: VoteRequest) -> None:
        if m.term < self.current_term:  # RV-STALE (§5.1)
            granted, rule, why = False, "RV-STALE", f"its term {m.term} is behind mine"
        elif self.grant_vote(m):  # RV-GRANT (§5.2, §5.4.1)
            granted, rule, why = True, "RV-GRANT", "its log is at least as up to date as mine"
        elif self.voted_for not in (None, m.from_id):
            granted, rule, why = False, "RV-GRANT", f"I already voted for {self.voted_for} in term {m.term}"
        else:
            granted, rule, why = False, "RV-GRANT", (
                f"its log (last term {m.last_log_term}, index {m.last_log_index}) is behind mine "
                f"(last term {self.log.last_term}, index {self.log.last_index})")
        self.emit(EventKind.VOTE_GRANTED if granted else EventKind.VOTE_REFUSED, rule, candidate=m.from_id, why=why)
        self.send(m.from_id, VoteResponse(self.id, self.current_term, granted))

    def grant_vote(self, m: VoteRequest) -> bool:
        # RV-GRANT (§5.2, §5.4.1): not voted for another, a log at least as up to date; the vote is
        # persisted before answering, and granting resets the election timer (F-TIMEOUT).
        if self.voted_for not in (None, m.from_id) or not self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            return False
        self.persist_term_and_vote(self.current_term, m.from_id)
        self.reset_election_timer()
        return True

    def handle_vote_response(self, m: VoteResponse) -> None:
        if m.term < self.current_term or self.role is not Role.CANDIDATE or not m.vote_granted:
            return  # ALL-STALE (§5.1): a stale response is ignored (as is a refusal in the same term)
        self.votes.add(m.from_id)
        if self.has_majority(len(self.votes)):  # C-WIN (§5.2)
            self.become_leader()

    def handle_append_request(self, m: AppendEntryRequest) -> None:
        if m.term < self.current_term:  # AE-STALE (§5.1)
            self.send(m.from_id, AppendEntryResponse(self.id, self.current_term, False, self.log.last_index, None,
                                                     m.prev_log_index, m.round))
            return
        if not self.accept_leader(m.from_id, "AE"):
            return
        log, prev, prev_term, entries = self.log, m.prev_log_index, m.prev_log_term, tuple(m.entries)
        if prev < log.base_index:  # that prefix is in my snapshot: committed, so it must match
            if any(e.index == log.base_index and e.term != log.base_term for e in entries):
                self.drop("conflicts with my snapshot")
                return
            entries = tuple(e for e in entries if e.index > log.base_index)
            prev, prev_term = log.base_index, log.base_term
        if not self.log_matches(prev, prev_term):  # AE-CHECK (§5.3), with a hint
            hint = log.last_index + 1 if prev > log.last_index else log.first_index_of_term(prev)
            self.emit(EventKind.APPEND_REFUSED, "AE-CHECK", leader=m.from_id, prev_log_index=prev, hint=hint)
            self.send(m.from_id, AppendEntryResponse(self.id, self.current_term, False, log.last_index, hint,
                                                     m.prev_log_index, m.round))
            return
        if any(x.index <= self.commit_index and log.term_at(x.index) != x.term for x in entries):
            self.drop("conflicts with a committed entry")
            return
        new = self.truncate_conflicts(entries)
        if new:  # AE-APPEND (§5.3): add what is not already present
            self.append_entries(new, "AE-APPEND")
        last_new = m.prev_log_index + len(m.entries)
        self.commit_from_leader(m.commit_index, last_new)
        self.send(m.from_id, AppendEntryResponse(self.id, self.current_term, True, last_new, None, m.prev_log_index,
                                                 m.round))

    def log_matches(self, prev_index: int, prev_term: int) -> bool:
        # AE-CHECK (§5.3): the log holds an entry at prev_index, of term prev_term.
        return prev_index <= self.log.last_index and self.log.term_at(prev_index) == prev_term

    def truncate_conflicts(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        # AE-TRUNCATE (§5.3): the first conflicting entry and all after it go; matching ones are kept.
        # Returns the entries that are not in the log (AE-APPEND appends them).
        for k, entry in enumerate(entries):
            if entry.index > self.log.last_index:
                return entries[k:]
            if self.log.term_at(entry.index) != entry.term:
                self.truncate(entry.index)
                return entries[k:]
        return ()

    def commit_from_leader(self, leader_commit: int, last_new: int) -> None:
        # AE-COMMIT (§5.3): capped by the last entry this request made known to match.
        if leader_commit > self.commit_index:
            self.commit_to(min(leader_commit, last_new), "AE-COMMIT")

    def handle_append_response(self, m: AppendEntryResponse) -> None:
        if m.term < self.current_term or self.role is not Role.LEADER or m.from_id not in self.progress:
            return  # ALL-STALE (§5.1) (or from a server no longer in the configuration)
        if m.last_index > self.log.last_index and m.success:
            self.drop(f"acknowledges an index beyond my log: {m.last_index}")
            return
        pr, matched = self.progress[m.from_id], self.match_index[m.from_id]
        pr.active, pr.round = True, max(pr.round, m.round)
        if m.success:
            self.replicate_to(m.from_id, m.last_index)
            self.record_match(m.from_id, m.last_index)
        else:
            self.back_off(m.from_id, m)
        if self.role is not Role.LEADER:
            return  # (a committed configuration that removed it: MC-STEPDOWN)
        self.send_append(m.from_id)
        if self.match_index[m.from_id] > matched:  # (once per catch-up: LT-TIMEOUTNOW)
            self.send_timeout_now()
        self.serve_reads()

    def record_match(self, peer: ReplicaID, index: int) -> None:
        # L-REPLICATE (§5.3, §7): match what the request proved, never less than before; then commit.
        if index <= self.match_index[peer]:
            return  # a duplicate or reordered acknowledgement
        self.match_index[peer] = index
        self.next_index[peer] = max(self.next_index[peer], index + 1)
        self.advance_commit()

    def replicate_to(self, peer: ReplicaID, index: int) -> None:
        # FC-PIPELINE (etcd raft): a follower known to match at `index` is replicated to from there on;
        # the requests it answered leave the pipeline.
        pr = self.progress[peer]
        if pr.flow is not Flow.REPLICATE and index >= self.match_index[peer]:
            pr.flow, pr.probe, pr.inflight, pr.oldest = Flow.REPLICATE, None, [], None
            self.next_index[peer] = index + 1
            self.emit(EventKind.FLOW_CHANGED, "FC-PIPELINE", peer=peer, flow=pr.flow.value, index=index)
        elif pr.inflight:
            pr.inflight = [last for last in pr.inflight if last > index]

    def back_off(self, peer: ReplicaID, m: AppendEntryResponse) -> None:
        # L-REPLICATE, FC-STALE (§5.3; etcd raft): only the refusal of the current probe is news: back
        # up to the follower's hint, never below what is known to match, and probe again. Any other
        # refusal (of a request reordered or overtaken in a pipeline, or from an older term) is ignored.
        pr = self.progress[peer]
        if pr.flow is not Flow.PROBE or m.prev_log_index != pr.probe or m.mismatch_index is None:
            return
        self.next_index[peer] = max(self.match_index[peer] + 1, min(self.next_index[peer], m.mismatch_index))
        pr.probe = None

    def handle_snapshot_request(self, m: InstallSnapshotRequest) -> None:
        if m.term < self.current_term:  # IS-STALE (§7): refused; index 0 acknowledges nothing
            self.send(m.from_id, InstallSnapshotResponse(self.id, self.current_term, 0))
            return
        if m.offset != 0 or not m.done:
            self.drop("chunked snapshot (raftlab sends snapshots whole)")
            return
        if not self.accept_leader(m.from_id, "IS"):
            return
        if m.last_included_index > self.last_applied:
            self.install_snapshot(Snapshot(m.last_included_index, m.last_included_term, m.data, m.configuration))
            self.load_configuration()
            self.emit(EventKind.SNAPSHOT_INSTALLED, "IS-LOAD", index=m.last_included_index, leader=m.from_id)
            self.serve_reads()
        self.send(m.from_id, InstallSnapshotResponse(self.id, self.current_term, m.last_included_index))

    def install_snapshot(self, snapshot: Snapshot) -> None:
        # IS-KEEP (§7). What became of the unapplied entries it removes is reported, as far as it is
        # known: the snapshot applied those it covers if the log matched it at its last entry, or if they
        # are of its last term (that term's leader made both, in order); after a conflicting last entry
        # none can ever commit (abandoned); an older-term entry it covers may or may not be in it.
        index, term = snapshot.last_included_index, snapshot.last_included_term
        matched = self.log.term_at(index) == term
        removed = [e for e in self.storage.save_snapshot(snapshot) if e.index > self.last_applied]
        self.state_machine.set_snapshot(snapshot)  # IS-LOAD (§7): the term is left alone
        for entry in removed:
            if matched or (entry.index <= index and entry.term == term):
                self.report(entry.transition, TransitionState.APPLIED)
            elif entry.index > index or entry.term > term:
                self.report(entry.transition, TransitionState.ABANDONED_CONFLICT_WITH_LEADER)
            else:
                self.report(entry.transition, TransitionState.UNKNOWN)
        self.commit_index = max(self.commit_index, snapshot.last_included_index)
        self.last_applied = snapshot.last_included_index

    def handle_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        if m.term < self.current_term or self.role is not Role.LEADER or m.from_id not in self.progress:
            return  # ALL-STALE (§5.1) (or from a server no longer in the configuration)
        peer = m.from_id
        if m.last_included_index > self.log.last_index:
            self.drop(f"acknowledges an index beyond my log: {m.last_included_index}")
            return
        self.progress[peer].active = True
        if m.last_included_index > 0:  # L-REPLICATE (§5.3, §7); FC-SNAPSHOT: answered, replicate again
            self.replicate_to(peer, m.last_included_index)
            self.record_match(peer, m.last_included_index)
            self.send_append(peer)

    def handle_timeout_now(self, m: TimeoutNow) -> None:
        # LT-TIMEOUTNOW (§3.10): the leader of my term asks me to stand now: no pre-vote, and the
        # VoteRequests say so (exempt from CQ-STICKY).
        voter = self.id in self.configuration.voters  # (MC-LEARNER: a non-voter never stands)
        if m.term == self.current_term and voter and self.accept_leader(m.from_id, "TimeoutNow"):
            self.transfer_election = True
            self.start_election()
            self.transfer_election = False

    def handle_read_request(self, m: ReadIndexRequest) -> None:
        if self.role is Role.LEADER and m.term == self.current_term:  # RI-SERVE (§6.4): for a follower
            self.reads.append(Read(m.seq, m.from_id, self.confirm_round()))
            self.serve_reads()
        else:
            self.send(m.from_id, ReadIndexResponse(self.id, self.current_term, m.seq, False, 0))

    def handle_read_response(self, m: ReadIndexResponse) -> None:
        for r in [r for r in self.reads if r.origin == self.id and r.round == m.seq and r.index is None]:
            if m.success and m.term == self.current_term:
                r.index = m.read_index
            elif m.term == self.current_term:
                self.reads.remove(r)
                self.report_read(r.id, ReadState.ABANDONED)
        self.serve_reads()

    # ----- the thesis's leadership mechanisms (§3.10, §6.4) ------------------------------------
    def send_timeout_now(self) -> None:
        # LT-TIMEOUTNOW (§3.10): once the transfer's target holds my whole log, tell it to stand now.
        to = self.transfer_to
        if to is not None and self.match_index[to] == self.log.last_index:
            self.send(to, TimeoutNow(self.id, self.current_term))
            self.emit(EventKind.TIMEOUT_NOW_SENT, "LT-TIMEOUTNOW", to=to)

    def abort_transfer(self) -> None:
        # LT-ABORT (§3.10): the target has not won within an election timeout: take transitions again.
        self.emit(EventKind.TRANSFER_ABORTED, "LT-ABORT", to=self.transfer_to)
        self.transfer_to = None  # (transfer_deadline stays: no more lease reads in this term, RI-LEASE)

    def confirm_round(self) -> int:
        # RI-CONFIRM (§6.4): a read is confirmed by a heartbeat round started after it arrived and
        # acknowledged by a majority; RI-LEASE (§6.4.1): within a lease, no round is needed (round 0).
        if self.lease_valid():
            return 0
        self.start_round()
        for peer, pr in self.progress.items():
            if pr.flow is not Flow.SNAPSHOT:  # an empty AppendEntries that changes nothing
                self.send(peer, self.append_request(max(self.match_index[peer], self.log.base_index), ()))
        return self.round

    def lease_valid(self) -> bool:
        # RI-LEASE (§6.4.1): a majority acknowledged a round started less than the minimum election
        # timeout / drift_bound ago, so none of them votes for another before now (CQ-STICKY).
        started = self.round_sent.get(self.quorum_round())
        return (self.read_lease and self.transfer_deadline == math.inf and started is not None
                and self.now() - started < self.election_timeout_range[0] / self.drift_bound)

    def serve_reads(self) -> None:
        # RI-CURRENT, RI-SERVE (§6.4): a leader gives a read the commit index once it has committed an
        # entry of its term and the read's round is confirmed; the read is answered once applied that far.
        leader = self.role is Role.LEADER
        current = leader and self.log.term_at(self.commit_index) == self.current_term
        confirmed, waiting = self.quorum_round() if current and self.reads else -1, []  # (-1: none confirmed)
        for r in self.reads:
            if r.index is None and confirmed >= r.round:
                r.index = self.commit_index
                self.emit(EventKind.READ_CONFIRMED, "RI-LEASE" if r.round == 0 else "RI-CONFIRM", index=r.index)
            if r.index is not None and r.origin != self.id:
                self.send(r.origin, ReadIndexResponse(self.id, self.current_term, cast(int, r.id), True, r.index))
            elif r.index is not None and self.last_applied >= r.index:
                self.report_read(r.id, ReadState.READY)
            else:
                waiting.append(r)
        self.reads = waiting

    def report_read(self, read_id: Hashable, state: ReadState) -> None:
        """Tell the state machine what became of a read (its optional `register_read_state`)."""
        self.emit(EventKind.READ_READY if state is ReadState.READY else EventKind.READ_ABANDONED, "RI-SERVE",
                  read=repr(read_id))
        hook = getattr(self.state_machine, "register_read_state", None)
        if hook is not None:
            hook(read_id, state)

    # ----- roles -------------------------------------------------------------------------------
    def start_election(self) -> None:
        # C-START (§5.2): new term, vote for myself (persisted), fresh timer, ask every peer.
        self.role = Role.CANDIDATE
        self.persist_term_and_vote(self.current_term + 1, self.id)
        self.set_leader(None)
        self.votes = {self.id}
        self.reset_election_timer()
        self.emit(EventKind.BECAME_CANDIDATE, "LT-TIMEOUTNOW" if self.transfer_election else "C-START")
        if self.has_majority(1):  # C-WIN (§5.2): a single-node cluster wins at once
            self.become_leader()
            return
        request = VoteRequest(self.id, self.current_term, self.log.last_index, self.log.last_term,
                              self.transfer_election)  # (LT-TIMEOUTNOW: a transfer's election says so)
        for peer in self.peer_ids:
            self.send(peer, request)

    def become_leader(self) -> None:
        self.role = Role.LEADER
        self.set_leader(self.id)
        self.next_index = {p: self.log.last_index + 1 for p in self.peer_ids}
        self.match_index = {p: 0 for p in self.peer_ids}
        self.progress = {p: Progress() for p in self.peer_ids}  # FC-PROBE (§5.3): every match is unknown
        self.pre_votes, self.round_sent, self.transfer_to, self.transfer_deadline = None, {}, None, math.inf
        if self.check_quorum:
            self.start_round()
        self.emit(EventKind.BECAME_LEADER, "C-WIN", votes=sorted(self.votes))
        # L-NOOP (§8): an entry of the new term, so earlier entries can commit.
        self.append_entries([LogEntry(self.noop_transition, self.log.last_index + 1, self.current_term)], "L-NOOP")
        self.heartbeat_deadline = self.now() + self.heartbeat_timeout  # L-HEARTBEAT (§5.2)
        self.broadcast_append()
        self.advance_commit()

    def become_follower(self, term: int, why: str) -> None:
        # ALL-TERM (§5.1): a higher term makes anyone a follower with no vote (persisted first).
        was = self.role
        was_leader = was is Role.LEADER
        self.persist_term_and_vote(term, None)
        self.role = Role.FOLLOWER
        self.set_leader(None)
        if was_leader:
            self.heartbeat_deadline = math.inf
            self.reset_election_timer()
        self.emit(EventKind.BECAME_FOLLOWER, "ALL-TERM", why=why, was=was.value)

    def lost_quorum(self) -> bool:
        # CQ-STEPDOWN (§6.2): a leader that heard from no majority (itself included) within the minimum
        # election timeout steps down; older rounds are forgotten. Each heartbeat starts a round.
        heard = self.round_sent.get(self.quorum_round(), min(self.round_sent.values()))
        self.start_round()
        self.round_sent = {r: t for r, t in self.round_sent.items() if t >= heard}
        if self.configuration.voters == {self.id}:
            return False  # (the only voter: it always hears from a majority)
        if self.now() - heard < self.election_timeout_range[0]:
            return False
        self.step_down("CQ-STEPDOWN", f"no majority answered within {self.election_timeout_range[0]} s")
        return True

    def step_down(self, rule: str, why: str) -> None:
        """A leader becomes a follower in its term (its vote kept), because of `rule`."""
        self.role, self.heartbeat_deadline = Role.FOLLOWER, math.inf
        self.set_leader(None)
        self.reset_election_timer()
        self.emit(EventKind.BECAME_FOLLOWER, rule, why=why, was="leader")

    def quorum_round(self) -> int:
        """The latest heartbeat round a majority of the voters (this leader, if one) has acknowledged."""
        pr = self.progress
        held = sorted((self.round if v == self.id else pr[v].round if v in pr else 0
                       for v in self.configuration.voters), reverse=True)
        return held[len(held) // 2]

    def start_round(self) -> None:
        """Start a heartbeat round: the AppendEntries sent from now on carry its number (RI-CONFIRM).
        Rounds start at each heartbeat with check_quorum, and for each read that needs one."""
        self.round += 1
        if self.check_quorum:
            self.round_sent[self.round] = self.now()

    def accept_leader(self, leader: ReplicaID, kind: str) -> bool:
        """A request from the leader of my current term: follow it and reset the election timer."""
        if self.role is Role.LEADER:
            self.drop(f"another leader in my term: {kind} from {leader}")
            return False
        if self.role is Role.CANDIDATE:  # C-YIELD (§5.2)
            self.role = Role.FOLLOWER
            self.emit(EventKind.BECAME_FOLLOWER, "C-YIELD", why=f"{leader} is leader of term {self.current_term}",
                      was="candidate")
        self.set_leader(leader)
        self.pre_votes, self.leader_heard_at = None, self.now()
        self._senders = self._senders if leader in self._senders else self._senders | {leader}
        self.reset_election_timer()  # F-TIMEOUT (§5.2): only the current leader (or a granted vote) resets it
        return True

    # ----- log, commit and apply ---------------------------------------------------------------
    def broadcast_append(self) -> None:
        for peer in self.peer_ids:
            self.send_append(peer)

    def send_append(self, peer: ReplicaID) -> None:
        # L-REPLICATE (§5.3, §7): entries from next_index, or the snapshot if they were compacted, as
        # flow control allows: FC-PROBE one probe at a time; FC-PIPELINE up to max_inflight requests,
        # next_index moving past what was sent (as in etcd); FC-SNAPSHOT nothing while one is on its way.
        pr, log, next_index = self.progress[peer], self.log, self.next_index[peer]
        if pr.flow is Flow.SNAPSHOT or (pr.flow is Flow.PROBE and pr.probe is not None):
            return
        if pr.flow is Flow.REPLICATE and (next_index > log.last_index or len(pr.inflight) >= self.max_inflight):
            return
        if next_index <= log.base_index:
            self.send_snapshot(peer)
            return
        entries = log.entries_from(next_index, self.MAX_ENTRIES_PER_MESSAGE)
        self.send(peer, self.append_request(next_index - 1, entries))
        if pr.flow is Flow.PROBE:
            pr.probe = next_index - 1
        else:
            pr.inflight.append(next_index - 1 + len(entries))
            self.next_index[peer] = next_index + len(entries)

    def send_heartbeat(self, peer: ReplicaID) -> None:
        # L-HEARTBEAT (§5.2): every peer hears from the leader each heartbeat_timeout. FC-PIPELINE: a
        # request in flight since the last heartbeat and still unanswered is lost: probe the follower.
        # FC-PROBE: a probe unanswered by now is lost: the heartbeat is the next probe, with entries if
        # the follower answered anything since the last heartbeat, else without (a follower that is
        # down is not sent them again and again). FC-SNAPSHOT: resent when due.
        pr = self.progress[peer]
        active, pr.active = pr.active, False
        if pr.flow is Flow.REPLICATE:
            if pr.inflight and pr.inflight[0] == pr.oldest:
                pr.flow, pr.inflight, self.next_index[peer] = Flow.PROBE, [], self.match_index[peer] + 1
                self.emit(EventKind.FLOW_CHANGED, "FC-PIPELINE", peer=peer, flow=pr.flow.value,
                          index=self.match_index[peer])
            elif self.next_index[peer] <= self.log.last_index and len(pr.inflight) < self.max_inflight:
                self.send_append(peer)  # entries, which carry the heartbeat
                pr.oldest = pr.inflight[0]
                return
            pr.oldest = pr.inflight[0] if pr.inflight else None
        if pr.flow is Flow.SNAPSHOT and self.now() >= pr.resend_at:
            self.send_snapshot(peer)
            return
        if pr.flow is Flow.PROBE and active:
            pr.probe = None
            self.send_append(peer)
            return
        prev = max(self.next_index[peer], self.log.base_index + 1) - 1  # (behind a compacted log: its base)
        if pr.flow is Flow.PROBE:
            pr.probe = prev
        self.send(peer, self.append_request(prev, ()))

    def send_snapshot(self, peer: ReplicaID) -> None:
        # FC-SNAPSHOT (§7): the entries it needs were compacted: send the snapshot, then wait for its
        # answer (or an election timeout) before sending it anything but heartbeats.
        s = self.log.snapshot
        assert s is not None  # a log with a base has its snapshot
        self.send(peer, InstallSnapshotRequest(self.id, self.current_term, s.last_included_index, s.last_included_term,
                                               0, s.data, True, s.configuration or self.initial_configuration))
        pr = self.progress[peer]
        pr.flow, pr.probe, pr.inflight = Flow.SNAPSHOT, None, []
        pr.resend_at = self.now() + self.election_timeout_range[1]
        self.next_index[peer] = s.last_included_index + 1
        self.emit(EventKind.FLOW_CHANGED, "FC-SNAPSHOT", peer=peer, flow=pr.flow.value, index=s.last_included_index)

    def append_request(self, prev_index: int, entries: tuple[LogEntry, ...]) -> AppendEntryRequest:
        """An AppendEntries of mine: `entries` after `prev_index` (a held or the snapshot's index)."""
        prev_term = cast(int, self.log.term_at(prev_index))
        return AppendEntryRequest(self.id, self.current_term, prev_index, prev_term, entries, self.commit_index,
                                  self.round)

    def advance_commit(self) -> None:
        # L-COMMIT (§5.3, §5.4.2): the highest index a majority holds, only if its entry is of the current term.
        if self.role is not Role.LEADER:
            return
        held = sorted((self.log.last_index if v == self.id else self.match_index.get(v, 0)
                       for v in self.configuration.voters), reverse=True)  # MC-LATEST: the voters only
        n = held[len(held) // 2]
        if n > self.commit_index and self.log.term_at(n) == self.current_term:
            self.commit_to(n, "L-COMMIT")

    def commit_to(self, index: int, rule: str) -> None:
        if index <= self.commit_index:
            return
        first, self.commit_index = self.commit_index + 1, index
        self.emit(EventKind.COMMITTED, rule, index=index)
        for i in range(max(first, self.last_applied + 1), index + 1):
            self.report(self.log.entry(i).transition, TransitionState.COMMITTED)
        self.apply_committed()
        if self.role is Role.LEADER and self.id not in self.configuration.voters and index >= self.config_index:
            self.step_down("MC-STEPDOWN", "the configuration that removes me is committed")  # (§4.2.2)

    def apply_committed(self) -> None:
        # ALL-APPLY (§5.3): in log order, each index once; an error stops the replica (never skips).
        while self.last_applied < self.commit_index:
            index = self.last_applied + 1
            entry = self.log.entry(index)
            try:  # (a configuration is the cluster's: the state machine is not given it)
                if type(entry.transition) is not Configuration:
                    self.state_machine.apply_transition(entry.transition)
            except Exception as error:
                raise ApplyError(index, error) from error
            self.last_applied = index
            self.report(entry.transition, TransitionState.APPLIED)
            self.emit(EventKind.APPLIED, "ALL-APPLY", index=index)
        self.take_snapshot()
        if self.reads:
            self.serve_reads()

    def take_snapshot(self) -> None:
        # SNAP-TAKE (§7): compact the applied prefix every snapshot_delta entries.
        if self.snapshot_delta and self.last_applied - self.log.base_index >= self.snapshot_delta:
            term = self.log.entry(self.last_applied).term
            self.storage.save_snapshot(self.state_machine.create_snapshot(self.last_applied, term))
            self.emit(EventKind.SNAPSHOT_TAKEN, "SNAP-TAKE", index=self.last_applied)

    def append_entries(self, entries: Sequence[LogEntry], rule: str) -> None:
        """Append `entries` to the log (durably, through `persist_entries`) because of `rule`."""
        self.persist_entries(entries)
        self.emit(EventKind.APPENDED, rule, first=entries[0].index, last=entries[-1].index)
        if any(type(e.transition) is Configuration for e in entries):
            self.load_configuration()

    def persist_term_and_vote(self, term: int, voted_for: ReplicaID | None) -> None:
        # Persistent state (Figure 2): term and vote in one durable write, before anything is sent.
        self.storage.set_term_and_vote(term, voted_for)

    def persist_entries(self, entries: Sequence[LogEntry]) -> None:
        # Persistent state (Figure 2): entries are durable before anything about them is sent.
        self.storage.append(entries)

    def truncate(self, index: int) -> None:
        """Delete the log from `index` on (AE-TRUNCATE's deletion). Its transitions are reported
        UNKNOWN: an entry removed here may still be committed by a later leader that holds it."""
        removed = self.storage.truncate(index)
        self.emit(EventKind.TRUNCATED, "AE-TRUNCATE", first=index, count=len(removed))
        if index <= self.config_index:
            self.load_configuration()  # MC-LATEST: back to the configuration before
        for entry in removed:
            self.report(entry.transition, TransitionState.UNKNOWN)

    def recover(self) -> None:
        # Persistent state (Figure 2): start from storage, and from the state machine's own snapshot if newer.
        own = self.state_machine.get_snapshot()
        if own is not None and own.last_included_index > self.log.base_index:
            self.storage.save_snapshot(own)
        if self.log.snapshot is not None:  # the state machine starts exactly at the snapshot
            self.state_machine.set_snapshot(self.log.snapshot)
        self.commit_index = self.last_applied = self.log.base_index

    def load_configuration(self) -> None:
        # MC-LATEST (§4.1): the latest configuration in the log, committed or not, from the moment it is
        # appended (after a truncation, the one before it); else the snapshot's; else the initial one.
        found = [*self.log.configurations(), (0, self.initial_configuration), (0, self.initial_configuration)]
        (self.config_index, config), (_, previous) = found[:2]
        changed, self.configuration = config != self.configuration, config
        self.peer_ids = tuple(sorted(config.members - {self.id}))
        self._senders = (self._senders | config.members | previous.members) - {self.id}  # every member seen
        for p in set(self.progress).symmetric_difference(self.peer_ids) if self.role is Role.LEADER else ():
            if p in self.progress:  # it left: forget it (were it to come back, it is probed afresh)
                del self.next_index[p], self.match_index[p], self.progress[p]
            else:
                self.next_index[p], self.match_index[p], self.progress[p] = self.log.last_index + 1, 0, Progress()
        if changed:
            self.emit(EventKind.CONFIGURATION_CHANGED, "MC-LATEST", voters=sorted(config.voters),
                      learners=sorted(config.learners), index=self.config_index)

    def may_change_configuration(self, new: Configuration) -> str | None:
        # MC-ONE (§4.1, the thesis erratum of 2015): one server at a time, no earlier change uncommitted, and
        # an entry of my term committed; MC-LEARNER (§4.2.1): a new server joins as a learner, promoted once
        # caught up. Returns why it may not be made now (None: it may).
        old, voters = self.configuration, new.voters
        changed = [s for s in old.members | new.members
                   if (s in old.voters, s in old.learners) != (s in voters, s in new.learners)]
        if check_configuration(new) is not None or len(changed) != 1:
            return "a change must add, promote or remove exactly one server"
        if self.config_index > self.commit_index:
            return "an earlier configuration change is not committed yet"
        if self.log.term_at(self.commit_index) != self.current_term:
            return "no entry of my term is committed yet"
        s = changed[0]
        if s in voters and (s not in old.learners or self.match_index[s] < self.commit_index):
            return f"server {s} must join as a learner and catch up first"
        return None

    # ----- helpers -----------------------------------------------------------------------------
    def has_majority(self, count: int) -> bool:
        """Whether `count` voters are a majority of the latest configuration's voters."""
        return 2 * count > len(self.configuration.voters)

    def reset_election_timer(self) -> None:
        # F-TIMEOUT (§5.2): a fresh election deadline, drawn uniformly from the range with `rng`.
        self.election_deadline = self.now() + self.rng.uniform(*self.election_timeout_range)

    def set_leader(self, leader: ReplicaID | None) -> None:
        """Record the leader known in this term (None: none), and tell the cluster if it changed."""
        if leader != self.leader_id:
            self.leader_id = leader
            self.cluster.register_leader(leader)
            for r in [r for r in self.reads if r.index is None]:  # RI-SERVE: unconfirmed reads are lost
                self.reads.remove(r)
                if r.origin == self.id:
                    self.report_read(r.id, ReadState.ABANDONED)

    def send(self, to: ReplicaID, message: Message) -> None:
        """Send `message` to replica `to` through the cluster (and count it)."""
        self.stats.sent += 1
        self.cluster.send_message(to, message)

    def report(self, transition: Any, state: TransitionState) -> None:
        """Tell the state machine the new state of `transition` (Little Raft's register_transition_state)."""
        self.state_machine.register_transition_state(transition.get_id(), state)  # (its `transition_id`)

    def drop(self, reason: str) -> None:
        """Drop a received message for `reason` (its kind before any colon is counted in `stats`)."""
        self.stats.dropped += 1
        key = reason.split(":")[0]  # the kind of problem, without the details
        self.stats.drop_reasons[key] = self.stats.drop_reasons.get(key, 0) + 1
        self.emit(EventKind.MESSAGE_DROPPED, "INPUT", why=reason)

    def emit(self, kind: str, rule: str, **details: Any) -> None:
        """Tell the observer (if any) what happened (an `EventKind`), by which rule, and why."""
        if self._observer is not None:
            self._observer(Event(self.now(), self.id, kind, rule, self.current_term, details))


def _drain(wakeups: queue.Queue, wait: float) -> bool:
    """Wait up to `wait` seconds for a wake-up, then take all that are queued; True if any."""
    try:
        wakeups.get(timeout=wait) if wait > 0 else wakeups.get_nowait()
    except queue.Empty:
        return False
    while True:
        try:
            wakeups.get_nowait()
        except queue.Empty:
            return True
