"""The wire format: every message round-trips; anything else is refused with `FrameError` only."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftlab.core import (
    AppendEntryRequest, AppendEntryResponse, Configuration, InstallSnapshotRequest, InstallSnapshotResponse, LogEntry,
    VoteRequest, VoteResponse,
)
from raftlab.core.messages import (
    MESSAGE_TYPES, PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse, Snapshot, TimeoutNow,
)
from raftlab.machines import KVCommand, KVStore
from raftlab.net.snapshots import FORMAT, read_kv_snapshot, write_kv_snapshot
from raftlab.net.codec import (
    HEADER, MAX_FRAME, FrameError, InboundSession, MessageEncoder, OutboundSession, SnapshotAck, SnapshotFile,
    decode_messages, encode_messages, kv_data_to_json, message_from_json, message_to_json, storage_dumps, storage_loads,
)

KEY = b"k" * 32
NONCE = b"n" * 16

MESSAGES = [
    AppendEntryRequest(2, 3, 4, 2, (LogEntry(KVStore.put(7, 1, "a", "x"), 5, 3),
                                    LogEntry(KVStore.cas(7, 2, "a", None, "y"), 6, 3),
                                    LogEntry(KVStore.NOOP, 7, 3)), 4, 12),
    AppendEntryRequest(2, 3, 0, 0, (), 0),
    AppendEntryResponse(2, 3, True, 7, None),
    AppendEntryResponse(2, 3, False, 2, 1),
    AppendEntryResponse(2, 3, True, 7, None, 4, 12),
    VoteRequest(2, 5, 9, 4),
    VoteRequest(2, 5, 9, 4, True),
    VoteResponse(2, 5, True),
    InstallSnapshotRequest(2, 6, 10, 5, 0, b'["raftlab-kv-snapshot/1",[[],[]]]\n["a","1"]\n', False),
    InstallSnapshotResponse(2, 6, 10),
    PreVoteRequest(2, 6, 9, 5),
    PreVoteResponse(2, 6, True),
    PreVoteResponse(2, 7, False),
    TimeoutNow(2, 6),
    ReadIndexRequest(2, 6, 41),
    ReadIndexResponse(2, 6, 41, True, 33),
    ReadIndexResponse(2, 6, 42, False, 0),
    # membership change: configuration entries among commands, and a snapshot's configuration (MC-SNAPSHOT)
    AppendEntryRequest(2, 7, 10, 6, (LogEntry(KVStore.put(7, 3, "a", "z"), 11, 7),
                                     LogEntry(Configuration.of([1, 2, 3], [4]), 12, 7),
                                     LogEntry(Configuration.of([1, 2, 3, 4]), 13, 7)), 11, 3),
    InstallSnapshotRequest(2, 6, 10, 5, 4096, b'["b","2"]\n', True, Configuration.of([1, 2, 30], [7, 9])),
]
FRAMED = [m for m in MESSAGES if type(m) is not InstallSnapshotRequest]  # (one frame can carry them all)
CHUNKS = [m for m in MESSAGES if type(m) is InstallSnapshotRequest]  # (each alone in its frame)


def test_every_message_type_and_every_field_value_is_on_the_wire():
    assert {type(m) for m in MESSAGES} == set(MESSAGE_TYPES)
    # the fields added with PreVote, CheckQuorum, transfers and ReadIndex travel, and are decoded as sent
    for m in (MESSAGES[0], MESSAGES[4], MESSAGES[6]):
        assert message_from_json(json.loads(json.dumps(message_to_json(m)))) == m
    assert message_from_json(message_to_json(MESSAGES[0])).round == 12
    assert message_from_json(message_to_json(MESSAGES[4])).round == 12
    assert message_from_json(message_to_json(MESSAGES[6])).transfer is True


def _pair(peer: int = 2, me: int = 1) -> tuple[OutboundSession, InboundSession, bytes]:
    inbound = InboundSession(KEY, me, [2, 3], nonce=NONCE)
    outbound = OutboundSession(KEY, peer, me)
    return outbound, inbound, outbound.hello(inbound.challenge())


def test_every_message_round_trips_through_a_frame():
    outbound, inbound, hello = _pair()
    out: list = []
    inbound.feed(hello, out)
    assert inbound.established and inbound.peer_id == 2 and out == []
    data = outbound.seal(encode_messages(FRAMED))
    inbound.feed(data[:7], out)  # byte by byte is the same as at once
    inbound.feed(data[7:], out)
    for chunk in CHUNKS:  # each alone in its frame
        inbound.feed(outbound.seal(encode_messages([chunk])), out)
    assert out == FRAMED + CHUNKS
    assert inbound.frames == 1 + len(CHUNKS)


def _payload(text: str, m) -> bytes:
    """The payload of one encoded message (a snapshot chunk's bytes after its JSON, as the transport sends it)."""
    return ("[" + text + "]").encode() + (b"\n" + m.data if type(m) is InstallSnapshotRequest else b"")


def test_the_encoder_caching_entries_writes_exactly_the_plain_json():
    encoder = MessageEncoder(cache_size=2)
    for _ in range(3):  # cold, cached, and after the cache was cleared
        for m in MESSAGES:
            text = encoder.encode(m)
            assert text == json.dumps(message_to_json(m), separators=(",", ":"))
            assert decode_messages(_payload(text, m)) == [m]


def test_configurations_round_trip_on_the_wire_in_entries_and_snapshots():
    entries, snapshot = MESSAGES[-2], MESSAGES[-1]
    assert message_to_json(entries)[5][1] == [12, 7, ["cfg", [1, 2, 3], [4]]]
    assert message_to_json(snapshot)[-1] == [[1, 2, 30], [7, 9]]
    for m in (entries, snapshot):
        assert decode_messages(encode_messages([m])) == [m]
        assert decode_messages(_payload(MessageEncoder().encode(m), m)) == [m]
    assert type(decode_messages(encode_messages([entries]))[0].entries[1].transition) is Configuration
    bare = InstallSnapshotRequest(2, 6, 10, 5, 0, b"", True)  # (no configuration: null)
    assert message_to_json(bare)[-1] is None and decode_messages(encode_messages([bare])) == [bare]


def test_storage_encoding_round_trips_without_pickle():
    kv_data = ((("a", "1"), ("b", "2")), ((7, (3, None)), (8, (1, True))))  # (raftlab <= 0.19 kept snapshots so)
    for value in (KVStore.put(1, 2, "k", "v"), KVStore.NOOP, kv_data, SnapshotFile("snapshot-10-5.kv", 123),
                  Configuration.of([1, 2], [3]), Configuration.of([5])):
        blob = storage_dumps(value)
        assert b"pickle" not in blob and blob[:1] == b"["
        assert storage_loads(blob) == value


TIMED_DATA = ((("a", "1"),), ((7, (3, None), 1_000), (8, (1, True), 2_500)), 2_500, 60_000_000)


def test_bounded_session_fields_round_trip_on_the_wire_and_in_storage(tmp_path):
    register = KVCommand(7, 4, "register", "", time_us=1_700_000_000_000_000, timeout_us=3_600_000_000)
    put = KVCommand(7, 5, "put", "a", "x", time_us=1_700_000_000_000_001)
    entries = AppendEntryRequest(2, 3, 4, 2, (LogEntry(register, 5, 3), LogEntry(put, 6, 3)), 4)
    assert message_to_json(entries)[5][0][2] == [7, 4, "register", "", None, None, 1_700_000_000_000_000,
                                                 3_600_000_000]
    assert kv_data_to_json(TIMED_DATA) == [[["a", "1"]], [[7, [3, None], 1_000], [8, [1, True], 2_500]], 2_500,
                                           60_000_000]
    assert decode_messages(encode_messages([entries])) == [entries]
    assert decode_messages(("[" + MessageEncoder().encode(entries) + "]").encode()) == [entries]
    file = write_kv_snapshot(tmp_path, 10, 5, TIMED_DATA)  # (a snapshot travels as its file, in chunks)
    items, *rest = read_kv_snapshot(tmp_path / file.name)
    assert (tuple(items), *rest) == TIMED_DATA
    for value in (register, put, TIMED_DATA):
        assert storage_loads(storage_dumps(value)) == value
    # an untimed command and an untimed store keep the forms written before bounded sessions
    assert message_to_json(MESSAGES[0])[5][0][2] == [7, 1, "put", "a", "x", None]
    untimed = storage_dumps(((("a", "1"),), ((7, (3, None), 0),), 0, 0))
    assert untimed == storage_dumps(((("a", "1"),), ((7, (3, None)),)))


def test_old_log_entries_and_snapshots_still_load():
    # the exact bytes SqliteStorage held before bounded sessions: a command and a snapshot
    command = storage_loads(b'["c", [7, 2, "put", "k", "v", null]]')
    assert command == KVStore.put(7, 2, "k", "v") and command.time_us == 0 and command.timeout_us == 0
    data = storage_loads(b'["s", [[["k", "v"]], [[7, [2, null]], [9, [1, "ab"]]]]]')
    assert data == ((("k", "v"),), ((7, (2, None)), (9, (1, "ab"))))
    store = KVStore(session_timeout=60)
    store.set_snapshot(Snapshot(3, 1, data))
    assert dict(store.sessions) == {7: (2, None), 9: (1, "ab")} and store.clock_us == 0 and store.timeout_us == 0
    assert store.results[(9, 1)] == "ab"


@pytest.mark.parametrize("bad, why", [
    ([7, 1, "put", "a", "x", None, 0, 0], "6-item form"),  # one spelling per command
    ([7, 1, "put", "a", "x", None, 5], "list of 6 items"),
    ([7, 1, "put", "a", "x", None, -5, 0], "time_us"),
    ([7, 1, "put", "a", "x", None, 5.0, 0], "time_us"),
    ([7, 1, "put", "a", "x", None, True, 0], "time_us"),
    ([7, 1, "put", "a", "x", None, 2**63, 0], "time_us"),
    ([7, 1, "put", "a", "x", None, 5, None], "timeout_us"),
    ([7, 1, "put", "a", "x", None, 5, 9], "timeout_us is only for 'register'"),  # KVCommand's own check
    ([7, 1, "register", "k", None, None, 5, 9], "key must be ''"),
    ([7, 1, "register", "", "v", None, 5, 9], "value must be None"),
])
def test_ill_typed_bounded_session_commands_are_refused(bad, why):
    with pytest.raises(FrameError, match=why) as caught:
        message_from_json(["AEQ", 2, 3, 4, 2, [[5, 3, bad]], 4, 0])
    assert caught.value.kind == "bad_payload"


@pytest.mark.parametrize("bad, why", [
    ([[], [], 0, 0], "2-item form"),  # one spelling per snapshot
    ([[], [], 5], "list of 2 items"),
    ([[], [], -1, 5], "clock_us"),
    ([[], [], 5, "60"], "timeout_us"),
    ([[], [[7, [1, None]]], 5, 60], "session must be a list of 3"),  # the timed form has last-active times
    ([[], [[7, [1, None], 1]]], "session must be a list of 2"),
    ([[], [[7, [1, None], 6]], 5, 60], "last_active_us must be <="),
    ([[], [[7, [1, None], -1]], 5, 60], "last_active_us"),
    ([[], [[7, [1, None], None]], 5, 60], "last_active_us"),
    ([[], [[8, [1, None], 1], [7, [1, None], 1]], 5, 60], "strictly increasing client"),
    ([[], [[7, [1, None]], [7, [2, None]]]], "strictly increasing client"),
    ([[], [[7, [1, 2.5], 1]], 5, 60], "floats"),
    ([[], [[7, [1, 3], 1]], 5, 60], "session result"),
])
def test_ill_typed_snapshot_sessions_are_refused(bad, why, tmp_path):
    with pytest.raises(FrameError, match=why):
        storage_loads(json.dumps(["s", bad]).encode())
    (tmp_path / "s.kv").write_text(json.dumps([FORMAT, bad]) + "\n")  # the first line of a snapshot file
    with pytest.raises(FrameError, match=why):
        read_kv_snapshot(tmp_path / "s.kv")


@pytest.mark.parametrize("bad, why", [
    (["VR", 2, 5, 1], "vote_granted"),  # an int where a bool is required
    (["VR", True, 5, False], "from_id"),  # a bool where an int is required
    (["VQ", 2, -1, 0, 0, False], "term"),
    (["VQ", 2, 2**63, 0, 0, False], "term"),
    (["VQ", 2, 1, 0, 2, False], "log term above"),  # check_message: last_log_term > term
    (["VQ", 2, 1, 0, 0, 1], "transfer"),  # an int where a bool is required
    (["VQ", 2, 1, 0, 0, None], "transfer"),
    (["VQ", 2, 1, 0, 0], "VQ fields"),  # the old arity: the wire is versioned by its shape, never guessed
    (["AEQ", 2, 3, 4, 2, [[6, 3, [7, 1, "put", "a", "x", None]]], 4, 0], "entry out of place"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, [7, 1, "put", "a", None, None]]], 4, 0], "value"),  # KVCommand's own check
    (["AEQ", 2, 3, 4, 2, [[5, 3, [7, 1, "drop_table", "a", None, None]]], 4, 0], "op"),
    (["AEQ", 2, 3, 0, 0, [], 0, -1], "round"),
    (["AEQ", 2, 3, 0, 0, [], 0, True], "round"),
    (["AEQ", 2, 3, 0, 0, [], 0, 2**63], "round"),
    (["AEQ", 2, 3, 0, 0, [], 0], "AEQ fields"),
    (["AER", 2, 3, True, 7, None, None, "1"], "round"),
    (["AER", 2, 3, True, 7, None, None, -5], "round"),
    (["AER", 2, 3, True, 7, None, None], "AER fields"),
    (["PVQ", 2, 6, 9, 7], "log term above"),  # check_message applies to the new messages too
    (["PVQ", 2, 6, 9.5, 5], "last_log_index"),
    (["PVQ", 2, 6, 9], "PVQ fields"),
    (["PVR", 2, 6, "yes"], "vote_granted"),
    (["PVR", 2, -6, True], "term"),
    (["PVR", 2, 6, True, 0], "PVR fields"),
    (["TN", 2], "TN fields"),
    (["TN", 2, 3, 4], "TN fields"),
    (["TN", None, 3], "from_id"),
    (["RIQ", 2, 6, -1], "seq"),
    (["RIQ", 2, 6, [1]], "seq"),
    (["RIQ", 2, 6], "RIQ fields"),
    (["RIR", 2, 6, 41, 1, 33], "success"),
    (["RIR", 2, 6, 41, True, -33], "read_index"),
    (["RIR", 2, 6, 41, True, None], "read_index"),
    (["RIR", 2, 6, 41, True], "RIR fields"),
    (["pvq", 2, 6, 9, 5], "unknown message type"),  # type names are exact
    (["SQ", 2, 6, 10, 5, 0, [[["a", "1"]], []], True, None], "chunk length"),
    (["SQ", 2, 6, 10, 5, 0, "abc", True, None], "chunk length"),
    (["SQ", 2, 6, 10, 5, -1, 0, True, None], "offset"),
    (["SA", 2, 6, 10, 5], "SA fields"),
    (["SA", 2, 6, 10, 5, -4], "offset"),
    (["SA", 2, 6, 10, 5, "4"], "offset"),
    # configurations: one spelling each (strictly increasing ids), voters, disjoint sets, natural ids
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [2, 1], []]]], 4, 0], "voters must be strictly increasing"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [1, 1], []]]], 4, 0], "strictly increasing"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [1], [4, 4]]]], 4, 0], "learners must be strictly increasing"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [], [1]]]], 4, 0], "needs voters"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [1, 2], [2]]]], 4, 0], "disjoint"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [-1], []]]], 4, 0], "voters must be an int"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [True], []]]], 4, 0], "voters must be an int"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [1], None]]], 4, 0], "learners must be a list"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", "1", []]]], 4, 0], "voters must be a list"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", [1], [], []]]], 4, 0], "command must be a list of 6"),  # not a cfg
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["CFG", [1], []]]], 4, 0], "command must be a list of 6"),  # tags are exact
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", list(range(1025)), []]]], 4, 0], "more than 1024"),
    (["AEQ", 2, 3, 4, 2, [[5, 3, ["cfg", list(range(600)), list(range(600, 1200))]]], 4, 0], "more than 1024"),
    (["SQ", 2, 6, 10, 5, 0, 0, True], "SQ fields"),  # the configuration is not optional on the wire
    (["SQ", 2, 6, 10, 5, 0, 0, True, [[1], [1]]], "disjoint"),
    (["SQ", 2, 6, 10, 5, 0, 0, True, [[1]]], "configuration must be a list of 2"),
    (["SQ", 2, 6, 10, 5, 0, 0, True, "1,2"], "configuration must be a list"),
    (["SQ", 2, 6, 10, 5, 0, 0, True, [[], []]], "needs voters"),
    (["XX", 1], "unknown message type"),
    (["VR", 2, 5], "VR fields"),
    ({"VR": 1}, "message must be a list"),
])
def test_ill_typed_or_out_of_range_messages_are_refused(bad, why):
    with pytest.raises(FrameError, match=why) as caught:
        message_from_json(bad)
    assert caught.value.kind == "bad_payload"


def test_snapshot_chunks_and_their_acknowledgements_travel_as_sent():
    ack = SnapshotAck(3, 6, 10, 5, 1 << 40)
    chunk = next(m for m in MESSAGES if isinstance(m, InstallSnapshotRequest) and m.offset)
    assert decode_messages(encode_messages([ack])) == [ack] and decode_messages(encode_messages([chunk])) == [chunk]
    assert message_to_json(chunk)[5:8] == [4096, 10, True]  # offset, data (its length), done (Little Raft's shape)
    payload = encode_messages([chunk])
    assert payload.endswith(b']\n["b","2"]\n')  # the chunk's bytes, raw, after the JSON
    for bad in (payload[:-1], payload + b"x", encode_messages([ack]) + b'\n["b","2"]\n',
                b'[["SQ",2,6,10,5,4096,10,true,null],["TN",2,6]]\n["b","2"]\n', b'[["SQ",2,6,10,5,4096,10,true,null]]'):
        with pytest.raises(FrameError, match="travels alone"):
            decode_messages(bad)
    with pytest.raises(ValueError, match="alone"):
        encode_messages([chunk, ack])
    with pytest.raises(FrameError, match="claims to be from 3"):
        decode_messages(encode_messages([ack]), sender=2)


def test_malformed_stored_snapshot_files_are_refused():
    for blob in (b'["f", "../raft.sqlite3", 5]', b'["f", "snapshot-1-1.kv", -5]', b'["f", "snapshot-1-1.kv"]',
                 b'["f", "snapshot-x-1.kv", 5]', b'["f", 7, 5]'):
        with pytest.raises(FrameError):
            storage_loads(blob)


def test_malformed_stored_configurations_are_refused():
    for blob in (b'["g", [[2, 1], []]]', b'["g", [[], []]]', b'["g", [[1], [1]]]', b'["g", [[1]]]', b'["g", [1, 2]]',
                 b'["G", [[1], []]]', b'["g", [[1.0], []]]'):
        with pytest.raises(FrameError):
            storage_loads(blob)


@pytest.mark.parametrize("payload", [b"[[\"VR\",2,5,true]]x", b"[[\"VR\",2,5.0,true]]", b"[[\"VR\",2,NaN,true]]",
                                     b"[" * 100_000, b"\xff\xfe", b"[[\"VR\",2," + b"9" * 5000 + b",true]]"])
def test_malformed_json_is_refused(payload):
    with pytest.raises(FrameError):
        decode_messages(payload)


def test_long_integers_are_refused_but_long_digit_strings_are_data():
    # integers are parsed in C unless the payload holds a run of 21+ digits; then each is checked first
    with pytest.raises(FrameError, match="integer too long"):
        decode_messages(b'[["VR",2,' + b"1" * 21 + b",true]]")
    with pytest.raises(FrameError, match="term must be an int"):
        decode_messages(b'[["VR",2,' + b"9" * 20 + b",true]]")  # 20 digits parse, then are out of range
    digits = "7" * 40
    request = AppendEntryRequest(2, 3, 0, 0, (LogEntry(KVStore.put(7, 1, digits, digits), 1, 3),), 0)
    assert decode_messages(encode_messages([request])) == [request]


def test_a_message_claiming_another_sender_is_refused():
    with pytest.raises(FrameError, match="claims to be from 3"):
        decode_messages(encode_messages([VoteResponse(3, 1, True)]), sender=2)
    for m in (TimeoutNow(3, 1), ReadIndexRequest(3, 1, 1), PreVoteRequest(3, 2, 0, 0)):
        with pytest.raises(FrameError, match="claims to be from 3"):
            decode_messages(encode_messages([m]), sender=2)


@pytest.mark.parametrize("bad", [b'[["TN",2,3],["RIR",2,3,1,true,-1]]', b'[["PVR",2,3,1]]', b'[["RIQ",2,3]]',
                                 b'[["AEQ",2,3,0,0,[],0]]', b'[["VQ",2,3,0,0,"true"]]'])
def test_an_authentic_frame_with_a_malformed_new_message_is_refused_whole(bad):
    outbound, inbound = _established()
    out: list = []
    with pytest.raises(FrameError) as caught:
        inbound.feed(outbound.seal(bad), out)
    assert caught.value.kind == "bad_payload" and out == []  # not even the well-formed TimeoutNow before it
    with pytest.raises(FrameError):  # and the session stays refused
        inbound.feed(outbound.seal(encode_messages([TimeoutNow(2, 3)])), out)
    assert out == []


def test_replayed_reordered_tampered_and_wrongly_keyed_frames_are_refused():
    outbound, inbound, hello = _pair()
    out: list = []
    inbound.feed(hello, out)
    first = outbound.seal(encode_messages([VoteResponse(2, 1, True)]))
    second = outbound.seal(encode_messages([VoteResponse(2, 1, False)]))
    inbound.feed(first, out)
    with pytest.raises(FrameError) as caught:
        inbound.feed(first, out)  # replayed on its connection
    assert caught.value.kind == "replayed"
    with pytest.raises(FrameError):
        inbound.feed(second, out)  # a refused session stays refused
    # the same recorded bytes on a new connection (a fresh nonce) fail the hello's HMAC
    fresh = InboundSession(KEY, 1, [2, 3])
    with pytest.raises(FrameError) as caught:
        fresh.feed(hello + first, [])
    assert caught.value.kind == "bad_mac"
    # reordered
    outbound, inbound, hello = _pair()
    inbound.feed(hello, out)
    _a, b = outbound.seal(b"[]"), outbound.seal(b"[]")
    with pytest.raises(FrameError, match="counter 2, expected 1"):
        inbound.feed(b, out)
    # tampered
    outbound, inbound, hello = _pair()
    inbound.feed(hello, out)
    frame = bytearray(outbound.seal(encode_messages([VoteResponse(2, 1, True)])))
    frame[-3] ^= 1
    with pytest.raises(FrameError) as caught:
        inbound.feed(bytes(frame), out)
    assert caught.value.kind == "bad_mac"
    # wrong key
    inbound = InboundSession(KEY, 1, [2, 3])
    with pytest.raises(FrameError) as caught:
        inbound.feed(OutboundSession(b"w" * 32, 2, 1).hello(inbound.challenge()), out)
    assert caught.value.kind == "bad_mac"
    # a hello naming a stranger, or addressed to another node
    for sender, to in ((9, 1), (2, 3)):
        inbound = InboundSession(KEY, 1, [2, 3])
        with pytest.raises(FrameError) as caught:
            inbound.feed(OutboundSession(KEY, sender, to).hello(inbound.challenge()), out)
        assert caught.value.kind == "unknown_peer"
    assert out == [VoteResponse(2, 1, True)]  # only the one authentic, in-order frame got through


def test_oversized_and_truncated_frames_are_refused():
    inbound = InboundSession(KEY, 1, [2, 3])
    with pytest.raises(FrameError) as caught:
        inbound.feed(HEADER.pack(1000), [])  # larger than a hello, before the handshake
    assert caught.value.kind == "oversized"
    outbound, inbound, hello = _pair()
    inbound.feed(hello, [])
    with pytest.raises(FrameError) as caught:
        inbound.feed(HEADER.pack(MAX_FRAME + 1), [])
    assert caught.value.kind == "oversized"
    outbound, inbound, hello = _pair()
    inbound.feed(hello + outbound.seal(b"[]")[:-1], [])
    with pytest.raises(FrameError) as caught:
        inbound.eof()
    assert caught.value.kind == "truncated"


def _established() -> tuple[OutboundSession, InboundSession]:
    outbound, inbound, hello = _pair()
    inbound.feed(hello, [])
    return outbound, inbound


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_fuzz_random_bytes_give_only_frame_errors(data, after_handshake):
    inbound = _established()[1] if after_handshake else InboundSession(KEY, 1, [2, 3])
    out: list = []
    try:
        inbound.feed(data, out)
        inbound.eof()
    except FrameError as error:
        assert error.kind in {"oversized", "truncated", "malformed", "bad_mac", "replayed", "bad_payload",
                              "unknown_peer"}
    assert out == []  # without the key, random bytes never deliver a message


@FUZZ
@given(st.data())
def test_fuzz_mutated_valid_frames_give_only_frame_errors(data):
    outbound, inbound = _established()
    frame = bytearray(outbound.seal(encode_messages(FRAMED)))
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
    at = data.draw(st.integers(0, len(frame) - 1))
    if kind == "flip":
        frame[at] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        del frame[at:]
    elif kind == "insert":
        frame[at:at] = data.draw(st.binary(min_size=1, max_size=20))
    else:
        frame[at:] = data.draw(st.binary(max_size=40))
    out: list = []
    try:
        inbound.feed(bytes(frame), out)
        inbound.eof()
    except FrameError:
        pass
    assert out == [] or (out == FRAMED and kind == "splice")  # a splice may rewrite a byte as itself


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.text(max_size=5) | st.sampled_from(
        ["AEQ", "AER", "VQ", "VR", "SQ", "SR", "SA", "PVQ", "PVR", "TN", "RIQ", "RIR", "put", "get", "cas", "cfg"]),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30)


@FUZZ
@given(st.lists(json_values, max_size=4))
def test_fuzz_json_payloads_give_messages_or_frame_errors(values):
    try:
        messages = decode_messages(json.dumps(values).encode())
    except FrameError:
        return
    assert encode_messages(messages) == json.dumps(values, separators=(",", ":")).encode()


def test_net_never_uses_pickle_and_imports_only_core_and_machines():
    import ast
    from pathlib import Path

    import raftlab.net

    sources = sorted(Path(raftlab.net.__file__).parent.glob("*.py"))
    assert len(sources) >= 6
    for path in sources:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                assert "pickle" not in name and "marshal" not in name, f"{path.name} imports {name}"
                assert not any(part in name.split(".") for part in ("sim", "viz", "widgets", "grading")), \
                    f"{path.name} imports {name}"
