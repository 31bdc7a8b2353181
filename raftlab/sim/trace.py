"""The trace of a simulation: every event, compact when recorded, explained in English on demand."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, Final, NamedTuple

from ..core import EventKind
from ..core.messages import MESSAGE_TYPES

# Rule ids for events that come from the simulation rather than from a Raft rule.
SIM = "SIM"  # the network, the clock or the user acted


class SimKind:
    """The kinds of `TraceEvent` that the simulation records itself (rule ``SIM``), named once; the
    replicas' own kinds are the core's `EventKind`. Plain strings, so traces stay JSON."""

    SEND: Final = "send"  # a replica sent a message (node: the sender)
    DELIVER: Final = "deliver"  # a message arrived (node: the sender; data["to"]: the receiver)
    DROP: Final = "drop"  # a message was lost (data["why"])
    DUPLICATE: Final = "duplicate"  # the network made a second copy of a message (data["by_hand"]: the user)
    TIMER: Final = "timer"  # a replica's election or heartbeat timer fired
    CRASH: Final = "crash"  # a node crashed
    RESTART: Final = "restart"  # a crashed node restarted from its storage
    PAUSE: Final = "pause"  # a node's process was paused (data["seconds"])
    RESUME: Final = "resume"  # a paused node resumed (data["waiting"]: messages that waited for it)
    NETWORK: Final = "network"  # a partition, a cut, a heal or a change of the network model
    CLIENT_REQUEST: Final = "client_request"  # a client submitted a transition to a node
    CLIENT_REPLY: Final = "client_reply"  # a node told the client what became of its transition
    READ_REQUEST: Final = "read_request"  # a client asked a node for a linearizable read
    READ_REPLY: Final = "read_reply"  # a node answered a read (data["state"], data["value"])
    TRANSFER: Final = "transfer"  # the user asked the leader to transfer its leadership (data["to"])
    CLOCK: Final = "clock"  # a node's clock rate changed (data["rate"])
    MEMBERSHIP: Final = "membership"  # the user asked for a membership change (data["change"]: add, promote, remove)
    REMOVED: Final = "removed"  # a node left out of a committed configuration was shut down for good

    CLIENT: Final = (CLIENT_REQUEST, CLIENT_REPLY)


class TraceEvent(NamedTuple):
    """One event of a run (an immutable record: a named tuple, cheap to make on the hot path).

    `step` counts the simulation's steps (a delivery or a timer); interventions and the events a
    step causes share its number. `time` is virtual time in microseconds. `data` holds the details
    (a message, a reason, ...); `explain()` turns them into one plain sentence.
    """

    step: int  # the simulation step during which it happened
    time: int  # virtual time, microseconds
    kind: str  # a `SimKind` (SimKind.SEND, SimKind.CRASH, ...) or a replica's `EventKind`
    node: int | None  # the node it happened on (the sender for a message), None for cluster-wide events
    rule: str  # a rule id of docs/raft-rules.md, or "SIM" for the network, clock and user
    data: dict[str, Any]  # the details

    @property
    def seconds(self) -> float:
        """Virtual time in seconds."""
        return self.time / 1e6

    def explain(self) -> str:
        """One plain English sentence: what happened and why."""
        return f"[{self.seconds:8.4f}s] {_explain(self)}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (messages become dicts with a "type")."""
        return {"step": self.step, "time": self.time, "kind": self.kind, "node": self.node, "rule": self.rule,
                "data": {k: _jsonable(v) for k, v in self.data.items()}}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TraceEvent:
        """The event saved by `to_json` (messages stay dicts; `explain` reads both)."""
        return cls(record["step"], record["time"], record["kind"], record["node"], record["rule"], record["data"])


class Trace:
    """Every event of a run, in order; a sequence of `TraceEvent`."""

    def __init__(self, events: Iterable[TraceEvent] = ()) -> None:
        self.events: list[TraceEvent] = list(events)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __getitem__(self, index: Any) -> Any:
        return self.events[index]

    def __repr__(self) -> str:
        return f"Trace({len(self.events)} events, last step {self.events[-1].step if self.events else 0})"

    def of_kind(self, *kinds: str) -> list[TraceEvent]:
        """The events of the given kinds, in order."""
        return [e for e in self.events if e.kind in kinds]

    def explain(self, last: int | None = None) -> str:
        """The explained events (the `last` ones only, if given), one per line."""
        events = self.events if last is None else self.events[-last:]
        return "\n".join(e.explain() for e in events)

    def hash(self) -> str:
        """SHA-256 over the canonical JSON of every event: equal runs have equal hashes."""
        digest = hashlib.sha256()
        for event in self.events:
            digest.update(json.dumps(event.to_json(), sort_keys=True, separators=(",", ":")).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def save(self, path: str | Path) -> None:
        """Write the trace as JSON Lines."""
        with open(path, "w", encoding="utf-8") as out:
            for event in self.events:
                out.write(json.dumps(event.to_json(), sort_keys=True, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by `save`; its `hash()` equals the original's."""
        with open(path, encoding="utf-8") as source:
            return cls(TraceEvent.from_json(json.loads(line)) for line in source if line.strip())


_MESSAGE_TYPES = {cls.__name__: cls for cls in MESSAGE_TYPES}  # every message the core knows, saved as a dict


def _jsonable(value: Any) -> Any:
    if type(value).__name__ in _MESSAGE_TYPES:
        record: dict[str, Any] = {"type": type(value).__name__}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.name == "entries":
                item = [[e.index, e.term, repr(e.transition)] for e in item]
            elif f.name == "data" or (f.name == "configuration" and item is not None):
                item = repr(item)
            record[f.name] = item
        return record
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _get(message: Any, name: str, default: Any = None) -> Any:
    """A field of a message, or of its JSON dict (`default` if absent: a field added since it was saved)."""
    return message.get(name, default) if isinstance(message, dict) else getattr(message, name, default)


def describe(message: Any) -> str:
    """A short description of a message (a message object or its JSON dict)."""
    if isinstance(message, str):  # saved by a version that did not know its type: its repr
        return message
    kind = message["type"] if isinstance(message, dict) else type(message).__name__
    term = _get(message, "term")
    if kind == "AppendEntryRequest":
        n = len(_get(message, "entries"))
        what = f"{n} entr{'y' if n == 1 else 'ies'}" if n else "heartbeat"
        return (f"AppendEntries (term {term}, {what} after index {_get(message, 'prev_log_index')}, "
                f"commit {_get(message, 'commit_index')})")
    if kind == "AppendEntryResponse":
        if _get(message, "success"):
            return f"AppendEntries reply (term {term}, matched up to {_get(message, 'last_index')})"
        hint = _get(message, "mismatch_index")
        if hint is None:
            return f"AppendEntries reply (term {term}, refused: the request's term was stale)"
        return f"AppendEntries reply (term {term}, refused, try index {hint})"
    if kind == "VoteRequest":
        transfer = ", for a leadership transfer" if _get(message, "transfer", False) else ""
        return (f"VoteRequest (term {term}, last log {_get(message, 'last_log_index')}"
                f"/term {_get(message, 'last_log_term')}{transfer})")
    if kind == "PreVoteRequest":
        return (f"PreVoteRequest (for term {term}, last log {_get(message, 'last_log_index')}"
                f"/term {_get(message, 'last_log_term')})")
    if kind == "PreVoteResponse":
        if _get(message, "vote_granted"):
            return f"pre-vote granted (for term {term})"
        return f"pre-vote refused (the voter's term {term})"
    if kind == "TimeoutNow":
        return f"TimeoutNow (term {term}: start an election at once)"
    if kind == "ReadIndexRequest":
        return f"ReadIndex request #{_get(message, 'seq')} (term {term})"
    if kind == "ReadIndexResponse":
        if _get(message, "success"):
            return f"ReadIndex reply #{_get(message, 'seq')} (term {term}, read index {_get(message, 'read_index')})"
        return f"ReadIndex reply #{_get(message, 'seq')} (term {term}, refused: not the leader)"
    if kind == "VoteResponse":
        return f"vote {'granted' if _get(message, 'vote_granted') else 'refused'} (term {term})"
    if kind == "InstallSnapshotRequest":
        return f"InstallSnapshot (term {term}, up to index {_get(message, 'last_included_index')})"
    if kind == "InstallSnapshotResponse":
        return f"InstallSnapshot reply (term {term}, index {_get(message, 'last_included_index')})"
    return kind


def _explain(e: TraceEvent) -> str:
    d, who = e.data, f"node {e.node}"
    k = e.kind
    if k == SimKind.SEND:
        return f"{who} sent {describe(d['message'])} to node {d['to']}."
    if k == SimKind.DELIVER:
        return f"node {d['to']} received {describe(d['message'])} from {who}."
    if k == SimKind.DROP:
        return f"{describe(d['message'])} from {who} to node {d['to']} was lost: {d['why']}."
    if k == SimKind.DUPLICATE:
        if d.get("by_hand"):
            return f"{describe(d['message'])} from {who} to node {d['to']} was duplicated by hand."
        return f"the network duplicated {describe(d['message'])} from {who} to node {d['to']}."
    if k == SimKind.TIMER:
        return f"{who}'s {d['which']} timer fired."
    if k == EventKind.BECAME_CANDIDATE:
        if d.get("transfer") or e.rule == "LT-TIMEOUTNOW":
            return (f"{who} became a candidate in term {d.get('term')} at once: the leader handed it the "
                    f"leadership (TimeoutNow), so its VoteRequests say so and no one ignores them (LT-TIMEOUTNOW).")
        return f"{who} heard from no leader in time and became a candidate in term {d.get('term')}."
    if k == EventKind.BECAME_LEADER:
        return f"{who} won the election of term {d.get('term')} with votes from {d.get('votes')}."
    if k == EventKind.BECAME_FOLLOWER:
        if e.rule == "MC-STEPDOWN":
            return (f"{who} stepped down as leader: {d.get('why')}; it led without counting itself until then, and "
                    f"stays in term {d.get('term')} as a follower that, no longer a voter, never stands (MC-STEPDOWN).")
        if e.rule == "CQ-STEPDOWN":
            return (f"{who} stepped down as leader: {d.get('why')}, so it may be cut off from the cluster; it stays "
                    f"in term {d.get('term')} as a follower (CQ-STEPDOWN).")
        return f"{who} became a follower in term {d.get('term')}: {d.get('why')}."
    if k in (EventKind.VOTE_GRANTED, EventKind.VOTE_REFUSED) and d.get("pre_vote"):
        if k == EventKind.VOTE_GRANTED:
            return (f"{who} granted a pre-vote to node {d.get('candidate')}: {d.get('why')}; a pre-vote promises "
                    f"only, it changes neither its term ({d.get('term')}) nor its vote (PV-GRANT).")
        return (f"{who} refused a pre-vote to node {d.get('candidate')}: {d.get('why')}; its term stays "
                f"{d.get('term')} (PV-GRANT).")
    if k == EventKind.PRE_VOTE_STARTED:
        return (f"{who} heard from no leader in time and asked for pre-votes for term {d.get('for_term')}: that "
                f"changes nothing (its term stays {d.get('term')}) until a majority says yes (PV-ASK).")
    if k == EventKind.PRE_VOTE_WON:
        return (f"{who} won the pre-vote for term {_int(d.get('term')) + 1} with pre-votes from {d.get('pre_votes')}: "
                f"a majority would vote for it, so it starts a real election (PV-WIN).")
    if k == EventKind.VOTE_IGNORED:
        return (f"{who} ignored node {d.get('candidate')}'s VoteRequest, keeping its term {d.get('term')} and its "
                f"vote: {d.get('why')} (CQ-STICKY).")
    if k == EventKind.TRANSFER_STARTED:
        return (f"{who} began handing its leadership to node {d.get('to')}: it takes no new client transitions "
                f"meanwhile and brings node {d.get('to')}'s log up to date first (LT-STOP).")
    if k == EventKind.TIMEOUT_NOW_SENT:
        return (f"{who} sent TimeoutNow to node {d.get('to')}: node {d.get('to')} holds its whole log, so it may "
                f"start an election at once (LT-TIMEOUTNOW).")
    if k == EventKind.TRANSFER_ABORTED:
        return (f"{who} gave up handing its leadership to node {d.get('to')}: node {d.get('to')} did not win within "
                f"an election timeout, so {who} takes client transitions again (LT-ABORT).")
    if k == EventKind.READ_CONFIRMED:
        how = ("within its lease, with no heartbeat round (RI-LEASE)" if e.rule == "RI-LEASE" else
               "a heartbeat round started after the read was answered by a majority (RI-CONFIRM)")
        return (f"{who}, leader with an entry of its term committed (RI-CURRENT), gave a read the read index "
                f"{d.get('index')}: {how}.")
    if k == EventKind.READ_READY:
        return (f"{who} may answer {_read_name(d.get('read'))} now: a leader confirmed its read index (by a "
                f"heartbeat round a majority answered, or within its lease) and {who} has applied that far, so its "
                f"state machine's answer is linearizable (RI-SERVE).")
    if k == EventKind.READ_ABANDONED:
        return (f"{who} abandoned {_read_name(d.get('read'))}: no leader confirmed it (it knows no leader, or the "
                f"leader changed or refused); the client asks again (RI-SERVE).")
    if k in (EventKind.VOTE_GRANTED, EventKind.VOTE_REFUSED):
        verb = "granted its vote to" if k == EventKind.VOTE_GRANTED else "refused its vote to"
        return f"{who} {verb} node {d.get('candidate')} in term {d.get('term')}: {d.get('why')}."
    if k == EventKind.APPENDED:
        first, last = d.get("first"), d.get("last")
        span = f"entry {first}" if first == last else f"entries {first}-{last}"
        source = {"L-APPEND": "from a client", "L-NOOP": "(its no-op as new leader)"}.get(e.rule, "from the leader")
        return f"{who} appended {span} {source}."
    if k == EventKind.APPEND_REFUSED:
        return (f"{who} refused entries from leader {d.get('leader')}: its log does not match at index "
                f"{d.get('prev_log_index')}; it asked the leader to back up to {d.get('hint')}.")
    if k == EventKind.TRUNCATED:
        count = d.get("count")
        return f"{who} deleted {count} conflicting entr{'y' if count == 1 else 'ies'} from index {d.get('first')} on."
    if k == EventKind.COMMITTED:
        how = "a majority stores it" if e.rule == "L-COMMIT" else "the leader said so"
        return f"{who} committed up to index {d.get('index')}: {how}."
    if k == EventKind.APPLIED:
        return f"{who} applied entry {d.get('index')} to its state machine."
    if k == EventKind.SNAPSHOT_TAKEN:
        return f"{who} compacted its log into a snapshot up to index {d.get('index')}."
    if k == EventKind.SNAPSHOT_INSTALLED:
        return f"{who} installed a snapshot up to index {d.get('index')} from leader {d.get('leader')}."
    if k == EventKind.CONFIGURATION_CHANGED:
        members = _members(d.get("voters"), d.get("learners"))
        if not d.get("index"):
            return (f"{who} is back to the configuration {members}: the entries of later ones were removed from its "
                    f"log (MC-LATEST).")
        return (f"{who} now uses the configuration {members}, entry {d.get('index')} of its log: a server uses the "
                f"latest configuration in its log, committed or not (MC-LATEST).")
    if k == EventKind.CONFIG_REFUSED:
        return (f"{who} refused the configuration change to {_configuration(d.get('configuration'))}: {d.get('why')} "
                f"(MC-ONE: one server at a time, after the last change and an entry of its term are committed).")
    if k == EventKind.MESSAGE_DROPPED:
        return f"{who} dropped a malformed or misaddressed message: {d.get('why')}."
    if k == EventKind.FLOW_CHANGED:
        peer, index, flow = d.get("peer"), int(d.get("index", 0)), d.get("flow")
        if flow == "replicate":
            return f"{who} now replicates to node {peer}: it matches up to index {index}, so requests may be pipelined."
        if flow == "probe":
            return (f"{who} probes node {peer} again from index {index + 1}: a request to it has gone unanswered for a "
                    f"heartbeat, so it is taken as lost.")
        return (f"{who} sends node {peer} its snapshot up to index {index}: the entries it needs were compacted; "
                f"nothing else but heartbeats until it answers.")
    if k == SimKind.CRASH:
        return f"{who} crashed: its volatile state and the messages on their way to it are lost."
    if k == SimKind.RESTART:
        return f"{who} restarted from its storage (term {d.get('term')}, {d.get('entries')} log entries)."
    if k == SimKind.PAUSE:
        return (f"{who}'s process was paused for {d.get('seconds')} s: it takes no steps (its timers stop, its "
                f"messages wait for it) and keeps its state.")
    if k == SimKind.RESUME:
        waiting = d.get("waiting")
        what = ("the message that waited for it arrives" if waiting == 1
                else f"the {waiting} messages that waited for it arrive")
        return f"{who} resumed after its pause, with its state intact: {what} now, and its timers run again."
    if k == SimKind.CLIENT_REQUEST:
        return f"a client sent {d.get('transition')} to {who}."
    if k == SimKind.CLIENT_REPLY:
        return f"{who} answered the client: {d.get('transition')} is {d.get('state')}."
    if k == SimKind.NETWORK:
        return f"the network changed: {d.get('what')}."
    if k == SimKind.READ_REQUEST:
        return f"a client asked {who} for a linearizable read of {d.get('key')}, to be served without a log write."
    if k == SimKind.READ_REPLY:
        if d.get("state") == "ready":
            value = d.get("value")
            return (f"{who} answered the client's read: {d.get('key')} "
                    f"{'has no value' if value in (None, 'None') else f'is {value}'}.")
        return f"{who} could not answer the client's read of {d.get('key')} ({d.get('state')}): it may ask again."
    if k == SimKind.TRANSFER:
        return f"the user asked leader {e.node} to hand its leadership to node {d.get('to')}."
    if k == SimKind.MEMBERSHIP:
        change, leader = d.get("change"), d.get("leader")
        if change == "add":
            return (f"{who} started with an empty log, as a learner of the cluster {d.get('members')} (it never "
                    f"stands), and the user asked leader {leader} to add it as a learner (MC-LEARNER).")
        if change == "promote":
            return (f"the user asked leader {leader} to make learner {e.node} a voter: it agrees once node {e.node}'s "
                    f"log has caught up with its commit index (MC-LEARNER).")
        return (f"the user asked leader {leader} to remove {who} from the cluster; once a configuration without it is "
                f"committed, it is shut down.")
    if k == SimKind.REMOVED:
        return (f"{who} was shut down for good: the configuration without it (entry {d.get('index')}) is committed, so "
                f"it is no longer a member of the cluster.")
    if k == SimKind.CLOCK:
        rate = float(d.get("rate", 1.0))
        how = ("exactly" if rate == 1 else f"{abs(rate - 1) * 100:.3g} % {'fast' if rate > 1 else 'slow'}")
        return (f"{who}'s clock now runs at {rate:g} times the real rate ({how}): its timers and its lease are "
                f"measured on it.")
    return f"{who}: {k} {d}."


_READ_ID = re.compile(r"\('read', (\d+)\)")
_CONFIGURATION = re.compile(r"Configuration\(voters=\[([\d, ]*)\], learners=\[([\d, ]*)\]\)")


def _members(voters: Any, learners: Any) -> str:
    """A configuration as a student reads it: "voters 0, 1, 2 and learner 3"."""
    def ids(value: Any) -> str:
        return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    text = f"voters {ids(voters) or 'none'}"
    if learners:
        text += f" and learner{'s' if len(learners) > 1 else ''} {ids(learners)}"
    return text


def _configuration(text: Any) -> str:
    """A `Configuration`'s repr as `_members` says it."""
    match = _CONFIGURATION.fullmatch(str(text))
    if match is None:
        return str(text)
    voters, learners = ([int(v) for v in group.split(",") if v.strip()] for group in match.groups())
    return _members(voters, learners)


def _read_name(read: Any) -> str:
    """A read's id as a student reads it: the simulation's ``('read', 3)`` is "read #3"."""
    match = _READ_ID.fullmatch(str(read))
    return f"read #{match.group(1)}" if match else f"read {read}"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
