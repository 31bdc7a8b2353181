"""The wire format of raftlab's TCP transport: frames, the handshake, and the encoding of messages.

Everything here is sans-I/O (bytes in, bytes or messages out) and uses the standard library only.
No pickle: messages travel as JSON arrays whose every field is checked on decode; a `KVCommand`
is rebuilt through its own validating constructor and each message through `check_message`. A log
entry's transition is a `KVCommand` (its six fields ``[client, seq, op, key, value, expected]``, then
``time_us, timeout_us`` unless both are 0: one spelling per command, and the six-field form of the log
entries written before bounded sessions still reads) or a `Configuration` (``["cfg", voters, learners]``,
each a strictly increasing list of ids). An InstallSnapshot carries one chunk of the snapshot's file
(see `raftlab.net.snapshots`): its data field is the chunk's length, and the chunk's raw bytes follow
the JSON after one newline (such a request travels alone in its payload, so that the follower writes
the bytes where they arrived, uncopied); its last field is the snapshot's configuration (``[voters,
learners]``, or null). Each chunk is acknowledged by a `SnapshotAck` (``["SA", ...]``: the transport's,
not the core's). A snapshot's `KVData` (in a snapshot file's first line, and in the sqlite file of a
node of raftlab <= 0.19) is ``[items, sessions]`` (``[client, [seq, result]]`` each) while the store's
clock and timeout are 0, as before bounded sessions, else ``[items, sessions, clock_us, timeout_us]``
(``[client, [seq, result], last_active_us]`` each, with last_active_us <= clock_us).

Frames: a 4-byte big-endian length, then that many bytes (at most `MAX_FRAME`).

One connection carries messages one way, from the dialer to the acceptor:

1. acceptor -> dialer, the *challenge*: ``b"RLC1" + nonce_b`` (16 random bytes, fresh per connection);
2. dialer -> acceptor, the *hello*: ``tag + b"RLH1" + from_id (8 bytes) + to_id (8 bytes) + nonce_a``
   with ``tag = HMAC-SHA256(key, b"raftlab-hello" + nonce_b + rest)``;
3. dialer -> acceptor, data frames: ``tag + counter (8 bytes) + JSON`` with
   ``tag = HMAC-SHA256(session_key, counter + JSON)``, where
   ``session_key = HMAC-SHA256(key, b"raftlab-session" + nonce_b + nonce_a + from_id + to_id)``
   and the counter is 1, 2, 3, ... (each frame exactly one more than the last).

A frame recorded on one connection fails the tag on any other (another nonce_b, so another session
key); replayed or reordered on its own connection, it fails the counter. Any refusal raises
`FrameError`, whose `kind` names the refusal for the counters; the caller drops the connection.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.messages import (
    AppendEntryRequest, AppendEntryResponse, Configuration, InstallSnapshotRequest, InstallSnapshotResponse,
    LogEntry, Message, PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse, ReplicaID, TimeoutNow,
    VoteRequest, VoteResponse, check_configuration, check_message,
)
from ..machines.kv import KVCommand

MAX_FRAME = 16 * 1024 * 1024
"""The largest frame body accepted (and sent), in bytes."""

NONCE_SIZE = 16
TAG_SIZE = 32
HEADER = struct.Struct(">I")
COUNTER = struct.Struct(">Q")
IDS = struct.Struct(">QQ")
CHALLENGE_MAGIC = b"RLC1"
HELLO_MAGIC = b"RLH1"
CHALLENGE_SIZE = len(CHALLENGE_MAGIC) + NONCE_SIZE
HELLO_SIZE = TAG_SIZE + len(HELLO_MAGIC) + IDS.size + NONCE_SIZE
MIN_KEY_SIZE = 16
_MAX_INT = 2**63 - 1
_MAX_INT_DIGITS = 20
MAX_MEMBERS = 1024
"""The most servers a `Configuration` on the wire (or in the node's file) may name."""

REFUSALS = ("oversized", "truncated", "malformed", "bad_mac", "replayed", "bad_payload", "unknown_peer",
            "handshake_timeout", "wrong_certificate")
"""The kinds of `FrameError`, each counted separately by a node."""


class FrameError(Exception):
    """A frame was refused. `kind` is one of `REFUSALS`; the message says why."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def check_key(key: bytes) -> bytes:
    """Return `key` if it can be a cluster key (bytes, at least 16 of them); raise ValueError otherwise."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_SIZE:
        raise ValueError(f"the cluster key must be at least {MIN_KEY_SIZE} bytes")
    return key


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")


def frame(body: bytes) -> bytes:
    """Prefix `body` with its length."""
    if len(body) > MAX_FRAME:
        raise ValueError(f"frame of {len(body)} bytes exceeds MAX_FRAME ({MAX_FRAME})")
    return HEADER.pack(len(body)) + body


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """The data of a node's snapshot as the core holds it: the name of its file in the node's folder
    (`raftlab.net.snapshots`) and its size in bytes."""

    name: str  # snapshot-<index>-<term>.kv
    size: int  # bytes


@dataclass(frozen=True, slots=True)
class SnapshotAck:
    """Follower -> leader, for one chunk of an InstallSnapshot: the bytes of that snapshot's file the
    follower now holds (where the next chunk must start). The transport's message: the core never sees it."""

    from_id: ReplicaID  # the follower
    term: int  # its current term
    last_included_index: int  # the snapshot concerned
    last_included_term: int
    offset: int  # bytes held


Wire = Message | SnapshotAck
"""What travels between nodes: the core's messages and the transport's own acknowledgements."""

_SNAPSHOT_NAME = re.compile(r"snapshot-[0-9]{1,19}-[0-9]{1,19}\.kv")


# ----- messages <-> JSON ------------------------------------------------------------------------------
def _command(c: KVCommand) -> list:
    if c.time_us or c.timeout_us:
        return [c.client, c.seq, c.op, c.key, c.value, c.expected, c.time_us, c.timeout_us]
    return [c.client, c.seq, c.op, c.key, c.value, c.expected]


def _configuration(c: Configuration) -> list:
    return [sorted(c.voters), sorted(c.learners)]


def _transition(t: KVCommand | Configuration) -> list:
    """A log entry's transition: a command's six fields, or ``["cfg", voters, learners]``."""
    if type(t) is KVCommand:
        return _command(t)
    if type(t) is Configuration:
        return ["cfg", *_configuration(t)]
    raise TypeError(f"not a KVCommand or a Configuration: {t!r}")


def _entries(entries: Iterable[LogEntry]) -> list:
    return [[e.index, e.term, _transition(e.transition)] for e in entries]


def kv_data_to_json(data: Any) -> list:
    """The JSON form of `KVData` (the inverse of `kv_data_from_json`)."""
    pairs = [[k, v] for k, v in data[0]]
    if len(data) == 2:  # `LegacyKVData`
        return [pairs, [[client, [seq, result]] for client, (seq, result) in data[1]]]
    _, sessions, clock, timeout = data
    if not clock and not timeout:  # (then every last-active time is 0: the one spelling is the old form)
        return [pairs, [[client, [seq, result]] for client, (seq, result), _ in sessions]]
    return [pairs, [[client, [seq, result], at] for client, (seq, result), at in sessions], clock, timeout]


def message_to_json(m: Wire) -> list:
    """The JSON value (a list) of one message; transitions must be `KVCommand`s or `Configuration`s, and
    an InstallSnapshot's data one chunk of its file (bytes), of which only the length is in the JSON."""
    # `type(m) is C` (not isinstance, not a `t = type(m)` local): exact types, as fast, and mypy narrows `m`
    if type(m) is AppendEntryRequest:
        return ["AEQ", m.from_id, m.term, m.prev_log_index, m.prev_log_term, _entries(m.entries), m.commit_index,
                m.round]
    if type(m) is AppendEntryResponse:
        return ["AER", m.from_id, m.term, m.success, m.last_index, m.mismatch_index, m.prev_log_index, m.round]
    if type(m) is VoteRequest:
        return ["VQ", m.from_id, m.term, m.last_log_index, m.last_log_term, m.transfer]
    if type(m) is VoteResponse:
        return ["VR", m.from_id, m.term, m.vote_granted]
    if type(m) is InstallSnapshotRequest:
        return ["SQ", m.from_id, m.term, m.last_included_index, m.last_included_term, m.offset,
                len(m.data), m.done, None if m.configuration is None else _configuration(m.configuration)]
    if type(m) is InstallSnapshotResponse:
        return ["SR", m.from_id, m.term, m.last_included_index]
    if type(m) is PreVoteRequest:
        return ["PVQ", m.from_id, m.term, m.last_log_index, m.last_log_term]
    if type(m) is PreVoteResponse:
        return ["PVR", m.from_id, m.term, m.vote_granted]
    if type(m) is TimeoutNow:
        return ["TN", m.from_id, m.term]
    if type(m) is ReadIndexRequest:
        return ["RIQ", m.from_id, m.term, m.seq]
    if type(m) is ReadIndexResponse:
        return ["RIR", m.from_id, m.term, m.seq, m.success, m.read_index]
    if type(m) is SnapshotAck:
        return ["SA", m.from_id, m.term, m.last_included_index, m.last_included_term, m.offset]
    raise TypeError(f"not a message: {m!r}")


class MessageEncoder:
    """Messages as compact JSON text (`message_to_json`), each log entry encoded once however many
    followers it goes to: entries are cached by (index, term), which names one entry in every log
    (Log Matching, §5.3)."""

    def __init__(self, cache_size: int = 65_536) -> None:
        self._entries: dict[tuple[int, int], str] = {}
        self._cache_size = cache_size

    def encode(self, m: Wire) -> str:
        if type(m) is not AppendEntryRequest or not m.entries:
            return json.dumps(message_to_json(m), separators=(",", ":"))
        cache, parts = self._entries, []
        for e in m.entries:
            text = cache.get((e.index, e.term))
            if text is None:
                if len(cache) >= self._cache_size:
                    cache.clear()
                text = cache[e.index, e.term] = json.dumps([e.index, e.term, _transition(e.transition)],
                                                           separators=(",", ":"))
            parts.append(text)
        return (f'["AEQ",{m.from_id},{m.term},{m.prev_log_index},{m.prev_log_term},[{",".join(parts)}],'
                f"{m.commit_index},{m.round}]")


def encode_messages(messages: Iterable[Wire]) -> bytes:
    """A payload carrying `messages`: compact ASCII JSON (and, after a newline, the bytes of the
    InstallSnapshot chunk, which must then be the only message)."""
    messages = list(messages)
    text = json.dumps([message_to_json(m) for m in messages], separators=(",", ":")).encode("ascii")
    chunks = [m for m in messages if type(m) is InstallSnapshotRequest]
    if not chunks:
        return text
    if len(messages) != 1:
        raise ValueError("an InstallSnapshot chunk travels alone in its payload")
    return text + b"\n" + bytes(chunks[0].data)


def _bad(detail: str) -> FrameError:
    return FrameError("bad_payload", detail)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _bad("integer too long")
    return int(text)


def _parse_float(text: str) -> Any:
    raise _bad(f"floats are not allowed: {text[:20]}")


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_parse_float)
_DECODER_SHORT_INTS = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_float)
_DIGITS = bytes(48 if 48 <= b <= 57 else 46 for b in range(256))  # b"0" for each ASCII digit, b"." else
_LONG_RUN = b"0" * (_MAX_INT_DIGITS + 1)


def loads_strict(data: bytes) -> Any:
    """`json.loads` for untrusted bytes: UTF-8, no floats, NaN or infinities, no huge integers;
    every failure is a `FrameError`."""
    try:
        text = data.decode("utf-8")
        # integers are parsed in C unless a run of digits somewhere (in a string, perhaps) could be a huge one
        # (found by a translate and a substring search: both in C, some 30 times faster than a regex)
        long_run = _LONG_RUN in data.translate(_DIGITS)
        return (_DECODER_SHORT_INTS if long_run else _DECODER).decode(text)
    except FrameError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _bad(f"not JSON: {str(error)[:80]}") from None


def _nat(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise _bad(f"{name} must be an int in [0, 2**63), not {str(value)[:40]}")
    return value


def _flag(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise _bad(f"{name} must be a bool, not {str(value)[:40]}")
    return value


def _list(value: Any, name: str, length: int | None = None) -> list:
    if type(value) is not list or (length is not None and len(value) != length):
        raise _bad(f"{name} must be a list" + ("" if length is None else f" of {length} items"))
    return value


def command_from_json(value: Any) -> KVCommand:
    """A `KVCommand` from its JSON list (six fields, or eight with ``time_us, timeout_us``, not both 0),
    validated by its constructor; `FrameError` otherwise."""
    if type(value) is not list or len(value) not in (6, 8):
        raise _bad("command must be a list of 6 items (or 8, with time_us and timeout_us)")
    client, seq, op, key, val, expected = value[:6]
    time_us = timeout_us = 0
    if len(value) == 8:
        time_us, timeout_us = _nat(value[6], "time_us"), _nat(value[7], "timeout_us")
        if not time_us and not timeout_us:
            raise _bad("command: time_us and timeout_us 0 are written as the 6-item form")
    if type(client) is not int or not -_MAX_INT <= client <= _MAX_INT:
        raise _bad("command client must be an int")
    try:  # KVCommand checks the type of every field, and the op
        return KVCommand(client, _nat(seq, "seq"), op, key, val, expected, time_us, timeout_us)
    except ValueError as error:
        raise _bad(str(error)[:200]) from None


def _ids(value: Any, name: str) -> list[int]:
    ids = _list(value, name)
    if len(ids) > MAX_MEMBERS:
        raise _bad(f"{name}: more than {MAX_MEMBERS} servers")
    for k, i in enumerate(ids):
        _nat(i, name)
        if k and i <= ids[k - 1]:
            raise _bad(f"{name} must be strictly increasing ids")
    return ids


def configuration_from_json(value: Any) -> Configuration:
    """A `Configuration` from ``[voters, learners]`` (strictly increasing lists of ids: one spelling per
    configuration), checked by `check_configuration` (voters, disjoint from the learners); `FrameError`
    otherwise."""
    voters, learners = _list(value, "configuration", 2)
    c = Configuration.of(_ids(voters, "voters"), _ids(learners, "learners"))
    if len(c.members) > MAX_MEMBERS:
        raise _bad(f"configuration: more than {MAX_MEMBERS} servers")
    reason = check_configuration(c)
    if reason is not None:
        raise _bad(reason[:200])
    return c


def transition_from_json(value: Any) -> KVCommand | Configuration:
    """A log entry's transition: ``["cfg", voters, learners]`` is a `Configuration`, anything else must
    be a `KVCommand`."""
    if type(value) is list and len(value) == 3 and value[0] == "cfg":
        return configuration_from_json(value[1:])
    return command_from_json(value)


def kv_data_from_json(value: Any) -> tuple:
    """`KVData` (tuples) from its JSON form, every field checked: ``[items, sessions]`` (the form of
    every snapshot before bounded sessions) gives a `LegacyKVData`, ``[items, sessions, clock_us,
    timeout_us]`` a `TimedKVData`."""
    if type(value) is not list or len(value) not in (2, 4):
        raise _bad("snapshot data must be a list of 2 items (or 4, with clock_us and timeout_us)")
    timed = len(value) == 4
    clock = timeout = 0
    if timed:
        clock, timeout = _nat(value[2], "snapshot clock_us"), _nat(value[3], "snapshot timeout_us")
        if not clock and not timeout:
            raise _bad("snapshot data: clock_us and timeout_us 0 are written as the 2-item form")
    items, sessions = value[:2]
    pairs = []
    for item in _list(items, "snapshot items"):
        k, v = _list(item, "snapshot item", 2)
        if type(k) is not str or type(v) is not str:
            raise _bad("snapshot items are pairs of strings")
        pairs.append((k, v))
    sess: list[tuple] = []
    for item in _list(sessions, "snapshot sessions"):
        client, last, *at = _list(item, "session", 3 if timed else 2)
        seq, result = _list(last, "session value", 2)
        if type(client) is not int or not -_MAX_INT <= client <= _MAX_INT:
            raise _bad("session client must be an int")
        if sess and client <= sess[-1][0]:
            raise _bad("snapshot sessions must be in strictly increasing client order")
        if result is not None and type(result) not in (str, bool):
            raise _bad("session result must be a string, a bool or null")
        if timed:
            if _nat(at[0], "session last_active_us") > clock:
                raise _bad("session last_active_us must be <= the snapshot's clock_us")
            sess.append((client, (_nat(seq, "session seq"), result), at[0]))
        else:
            sess.append((client, (_nat(seq, "session seq"), result)))
    return (tuple(pairs), tuple(sess), clock, timeout) if timed else (tuple(pairs), tuple(sess))


def message_from_json(value: Any) -> Wire:
    """One message from its JSON list; checked field by field, then by `check_message`."""
    items = _list(value, "message")
    if not items or type(items[0]) is not str:
        raise _bad("a message starts with its type")
    kind, fields = items[0], items[1:]
    if kind == "AEQ":
        frm, term, pli, plt, entries, commit, rnd = _list(fields, "AEQ fields", 7)
        log = tuple(LogEntry(transition_from_json(e[2]), _nat(e[0], "index"), _nat(e[1], "term"))
                    for e in (_list(x, "entry", 3) for x in _list(entries, "entries")))
        m: Message = AppendEntryRequest(_nat(frm, "from_id"), _nat(term, "term"), _nat(pli, "prev_log_index"),
                                        _nat(plt, "prev_log_term"), log, _nat(commit, "commit_index"),
                                        _nat(rnd, "round"))
    elif kind == "AER":
        frm, term, ok, last, mismatch, prev, rnd = _list(fields, "AER fields", 7)
        m = AppendEntryResponse(_nat(frm, "from_id"), _nat(term, "term"), _flag(ok, "success"),
                                _nat(last, "last_index"), None if mismatch is None else _nat(mismatch, "mismatch"),
                                None if prev is None else _nat(prev, "prev_log_index"), _nat(rnd, "round"))
    elif kind == "VQ":
        frm, term, lli, llt, transfer = _list(fields, "VQ fields", 5)
        m = VoteRequest(_nat(frm, "from_id"), _nat(term, "term"), _nat(lli, "last_log_index"),
                        _nat(llt, "last_log_term"), _flag(transfer, "transfer"))
    elif kind == "VR":
        frm, term, granted = _list(fields, "VR fields", 3)
        m = VoteResponse(_nat(frm, "from_id"), _nat(term, "term"), _flag(granted, "vote_granted"))
    elif kind == "SQ":
        frm, term, lii, lit, offset, data, done, config = _list(fields, "SQ fields", 8)
        _nat(data, "chunk length")  # (the bytes follow the JSON: `decode_messages` puts them in `data`)
        m = InstallSnapshotRequest(_nat(frm, "from_id"), _nat(term, "term"), _nat(lii, "last_included_index"),
                                   _nat(lit, "last_included_term"), _nat(offset, "offset"), b"", _flag(done, "done"),
                                   None if config is None else configuration_from_json(config))
    elif kind == "SR":
        frm, term, lii = _list(fields, "SR fields", 3)
        m = InstallSnapshotResponse(_nat(frm, "from_id"), _nat(term, "term"), _nat(lii, "last_included_index"))
    elif kind == "PVQ":
        frm, term, lli, llt = _list(fields, "PVQ fields", 4)
        m = PreVoteRequest(_nat(frm, "from_id"), _nat(term, "term"), _nat(lli, "last_log_index"),
                           _nat(llt, "last_log_term"))
    elif kind == "PVR":
        frm, term, granted = _list(fields, "PVR fields", 3)
        m = PreVoteResponse(_nat(frm, "from_id"), _nat(term, "term"), _flag(granted, "vote_granted"))
    elif kind == "TN":
        frm, term = _list(fields, "TN fields", 2)
        m = TimeoutNow(_nat(frm, "from_id"), _nat(term, "term"))
    elif kind == "RIQ":
        frm, term, seq = _list(fields, "RIQ fields", 3)
        m = ReadIndexRequest(_nat(frm, "from_id"), _nat(term, "term"), _nat(seq, "seq"))
    elif kind == "RIR":
        frm, term, seq, ok, index = _list(fields, "RIR fields", 5)
        m = ReadIndexResponse(_nat(frm, "from_id"), _nat(term, "term"), _nat(seq, "seq"), _flag(ok, "success"),
                              _nat(index, "read_index"))
    elif kind == "SA":
        frm, term, lii, lit, offset = _list(fields, "SA fields", 5)
        return SnapshotAck(_nat(frm, "from_id"), _nat(term, "term"), _nat(lii, "last_included_index"),
                           _nat(lit, "last_included_term"), _nat(offset, "offset"))
    else:
        raise _bad(f"unknown message type {kind[:20]!r}")
    reason = check_message(m)
    if reason is not None:
        raise _bad(reason)
    return m


def decode_messages(payload: bytes, sender: ReplicaID | None = None, tail: memoryview | None = None) -> list[Wire]:
    """The messages of a data frame's payload; each must come from `sender` (if given). A payload holding
    a newline is an InstallSnapshot chunk: pass the JSON before it as `payload` and the bytes after it as
    `tail` (or the whole payload, which is then split here)."""
    if tail is None and (newline := payload.find(b"\n")) >= 0:
        payload, tail = payload[:newline], memoryview(payload)[newline + 1:]
    return _decode(payload, sender, tail)


def _decode(payload: bytes, sender: ReplicaID | None, tail: memoryview | None) -> list[Wire]:
    """`decode_messages` once the payload's JSON and its chunk's bytes (if any) are apart."""
    values = _list(loads_strict(payload), "payload")
    messages = [message_from_json(v) for v in values]
    chunks = [c for c in messages if isinstance(c, InstallSnapshotRequest)]
    if tail is not None or chunks:
        if len(messages) != 1 or len(chunks) != 1 or tail is None or len(tail) != values[0][6]:
            raise _bad("an InstallSnapshot travels alone, its chunk's bytes (of its length) after its JSON")
        c = chunks[0]
        messages = [InstallSnapshotRequest(c.from_id, c.term, c.last_included_index, c.last_included_term, c.offset,
                                           tail, c.done, c.configuration)]
    if sender is not None:
        for m in messages:
            if m.from_id != sender:
                raise _bad(f"message claims to be from {m.from_id} on a connection from {sender}")
    return messages


# ----- storage encoding (the node's own file: JSON as well, so no pickle anywhere) --------------------
def storage_dumps(value: Any) -> bytes:
    """`SqliteStorage` encoder for `KVCommand` and `Configuration` transitions and snapshot data: a
    `SnapshotFile` (a node's) or `KVData` (a node of raftlab <= 0.19 kept its snapshots so)."""
    if isinstance(value, SnapshotFile):
        return json.dumps(["f", value.name, value.size]).encode("ascii")
    if isinstance(value, KVCommand):
        return json.dumps(["c", _command(value)]).encode("ascii")
    if isinstance(value, Configuration):
        return json.dumps(["g", _configuration(value)]).encode("ascii")
    return json.dumps(["s", kv_data_to_json(value)]).encode("ascii")


def storage_loads(blob: bytes) -> Any:
    """The inverse of `storage_dumps` (validated as strictly as network data)."""
    stored = _list(loads_strict(bytes(blob)), "stored value")
    if stored and stored[0] == "f":
        _, name, size = _list(stored, "stored snapshot file", 3)
        if type(name) is not str or not _SNAPSHOT_NAME.fullmatch(name):
            raise _bad("a snapshot file's name is snapshot-<index>-<term>.kv")
        return SnapshotFile(name, _nat(size, "snapshot size"))
    tag, value = _list(stored, "stored value", 2)
    if tag == "c":
        return command_from_json(value)
    if tag == "g":
        return configuration_from_json(value)
    if tag == "s":
        return kv_data_from_json(value)
    raise _bad(f"unknown stored tag {tag!r}")


# ----- sessions --------------------------------------------------------------------------------------
def _session_key(key: bytes, nonce_b: bytes, nonce_a: bytes, from_id: int, to_id: int) -> bytes:
    return _mac(key, b"raftlab-session", nonce_b, nonce_a, IDS.pack(from_id, to_id))


class OutboundSession:
    """The dialer's side: answers the challenge with a hello, then seals data frames."""

    def __init__(self, key: bytes, self_id: ReplicaID, peer_id: ReplicaID) -> None:
        self._key = check_key(key)
        self.self_id, self.peer_id = self_id, peer_id
        self._session_key: bytes | None = None
        self.counter = 0  # frames sealed so far

    def hello(self, challenge: bytes, nonce_a: bytes | None = None) -> bytes:
        """The hello frame answering `challenge` (a whole challenge frame, header included)."""
        if len(challenge) != HEADER.size + CHALLENGE_SIZE or challenge[:HEADER.size] != HEADER.pack(CHALLENGE_SIZE) \
                or challenge[HEADER.size:HEADER.size + 4] != CHALLENGE_MAGIC:
            raise FrameError("malformed", "not a challenge")
        nonce_b = challenge[HEADER.size + 4:]
        nonce_a = os.urandom(NONCE_SIZE) if nonce_a is None else nonce_a
        rest = HELLO_MAGIC + IDS.pack(self.self_id, self.peer_id) + nonce_a
        self._session_key = _session_key(self._key, nonce_b, nonce_a, self.self_id, self.peer_id)
        return frame(_mac(self._key, b"raftlab-hello", nonce_b, rest) + rest)

    def seal(self, payload: bytes) -> bytes:
        """A data frame carrying `payload` (the next counter)."""
        if self._session_key is None:
            raise RuntimeError("seal before hello")
        self.counter += 1
        counter = COUNTER.pack(self.counter)
        return frame(_mac(self._session_key, counter, payload) + counter + payload)


class InboundSession:
    """The acceptor's side, a sans-I/O decoder: `challenge()` to send, then `feed` the bytes received.

    `feed` appends the messages of every complete, authentic, in-order frame to `out` and raises
    `FrameError` at the first refused frame (the connection must then be dropped: the session is
    unusable). `eof()` raises if the stream ended inside a frame.
    """

    def __init__(self, key: bytes, self_id: ReplicaID, peer_ids: Iterable[ReplicaID],
                 nonce: bytes | None = None, max_frame: int = MAX_FRAME) -> None:
        self._key = check_key(key)
        self.self_id = self_id
        self.peer_ids = frozenset(peer_ids)
        self.nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        self.max_frame = max_frame
        self.peer_id: ReplicaID | None = None  # known once the hello is verified
        self.frames = 0  # data frames accepted
        self._session_key: bytes | None = None
        self._expected = 1
        self._buffer = bytearray()
        self._failed: FrameError | None = None

    @property
    def established(self) -> bool:
        """True once a valid hello was received."""
        return self._session_key is not None

    def challenge(self) -> bytes:
        """The challenge frame to send first."""
        return frame(CHALLENGE_MAGIC + self.nonce)

    def feed(self, data: bytes, out: list[Wire]) -> None:
        """Take received bytes; append decoded messages to `out`; raise `FrameError` on a refusal."""
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        try:
            self._drain(out)
        except FrameError as error:
            self._failed = error
            self._buffer.clear()
            raise

    def eof(self) -> None:
        """The peer closed the stream: raise `FrameError` ("truncated") if a frame was cut short."""
        if self._failed is None and self._buffer:
            self._failed = FrameError("truncated", f"stream ended inside a frame ({len(self._buffer)} bytes)")
            raise self._failed

    def _drain(self, out: list[Wire]) -> None:
        buffer = self._buffer
        while len(buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer)
            limit = HELLO_SIZE if self._session_key is None else self.max_frame
            if length > limit:
                raise FrameError("oversized", f"frame of {length} bytes (limit {limit})")
            if len(buffer) < HEADER.size + length:
                return
            with memoryview(buffer) as view:  # (one copy, not two; released before the buffer shrinks)
                body = bytes(view[HEADER.size:HEADER.size + length])
            del buffer[:HEADER.size + length]
            if self._session_key is None:
                self._hello(body)
            else:
                self._data(body, out)

    def _hello(self, body: bytes) -> None:
        if len(body) != HELLO_SIZE or body[TAG_SIZE:TAG_SIZE + 4] != HELLO_MAGIC:
            raise FrameError("malformed", "not a hello")
        rest = body[TAG_SIZE:]
        if not hmac.compare_digest(body[:TAG_SIZE], _mac(self._key, b"raftlab-hello", self.nonce, rest)):
            raise FrameError("bad_mac", "hello not signed with the cluster key (wrong key, or replayed)")
        from_id, to_id = IDS.unpack_from(rest, 4)
        if to_id != self.self_id or from_id not in self.peer_ids:
            raise FrameError("unknown_peer", f"hello from {from_id} to {to_id}; I am {self.self_id}")
        self.peer_id = from_id
        self._session_key = _session_key(self._key, self.nonce, rest[4 + IDS.size:], from_id, to_id)

    def _data(self, body: bytes, out: list[Wire]) -> None:
        if len(body) < TAG_SIZE + COUNTER.size:
            raise FrameError("malformed", f"data frame of {len(body)} bytes")
        assert self._session_key is not None
        rest = memoryview(body)[TAG_SIZE:]  # (hashed where it is: a frame may be a megabyte of snapshot)
        if not hmac.compare_digest(body[:TAG_SIZE], hmac.digest(self._session_key, rest, "sha256")):
            raise FrameError("bad_mac", "data frame fails its HMAC (tampered, or from another connection)")
        (counter,) = COUNTER.unpack_from(rest)
        if counter != self._expected:
            raise FrameError("replayed", f"counter {counter}, expected {self._expected}")
        self._expected += 1
        start = TAG_SIZE + COUNTER.size
        newline = body.find(b"\n", start)  # (a snapshot chunk's bytes follow its JSON: not copied)
        if newline < 0:  # (searched once: `_decode`, not `decode_messages`, which would search again)
            out.extend(_decode(body[start:], self.peer_id, None))
        else:
            out.extend(_decode(body[start:newline], self.peer_id, memoryview(body)[newline + 1:]))
        self.frames += 1
