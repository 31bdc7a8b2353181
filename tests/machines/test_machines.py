"""Tests for raftlab.machines: the observable base, Counter and KVStore (with at-most-once sessions)."""

from __future__ import annotations

import pickle
import random
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlab.core import MemoryStorage, Replica, Role, Snapshot, StateMachine, TransitionState
from raftlab.machines import Add, Counter, KVCommand, KVStore, MachineEvent, ObservableStateMachine


def record(machine: ObservableStateMachine) -> list[MachineEvent]:
    events: list[MachineEvent] = []
    machine.subscribe(events.append)
    return events


# ----- the protocol as the core uses it ----------------------------------------------------------
def test_machines_satisfy_the_core_protocol_names() -> None:
    for machine in (Counter(), KVStore()):
        for name in ("register_transition_state", "apply_transition", "get_pending_transitions",
                     "get_snapshot", "create_snapshot", "set_snapshot"):
            assert callable(getattr(machine, name)), name
        assert isinstance(machine, ObservableStateMachine)
    _typed: StateMachine = Counter()  # the protocol accepts it (for type checkers)


def test_pending_transitions_are_fifo_and_returned_once() -> None:
    c = Counter()
    adds = [Add(i, i) for i in range(5)]
    for a in adds[:3]:
        c.submit(a)
    assert c.pending_count == 3
    assert c.get_pending_transitions() == adds[:3]
    assert c.get_pending_transitions() == []
    for a in adds[3:]:
        c.submit(a)
    assert c.get_pending_transitions() == adds[3:]
    assert c.pending_count == 0


def test_get_snapshot_is_none() -> None:
    assert Counter().get_snapshot() is None
    assert KVStore().get_snapshot() is None


def test_counter_apply_results_and_applied_index() -> None:
    c = Counter()
    c.apply_transition(Add("a", 5))
    c.apply_transition(Add("b", -2))
    assert c.value == 3
    assert c.results == {"a": 5, "b": 3}
    assert c.applied_index == 2


def test_noop_changes_nothing_but_counts() -> None:
    for machine in (Counter(7), KVStore()):
        before = machine._state()
        machine.apply_transition(machine.NOOP)
        assert machine._state() == before
        assert machine.applied_index == 1
        assert machine.results[machine.NOOP.get_id()] is None
    kv = KVStore()
    kv.apply_transition(KVStore.put(1, 1, "", "x"))  # even with the key the no-op "reads"
    kv.apply_transition(KVStore.NOOP)
    assert kv.results[KVStore.NOOP.get_id()] is None
    assert -1 not in kv.sessions


def test_transition_states_recorded_and_published() -> None:
    c = Counter()
    events = record(c)
    c.register_transition_state("a", TransitionState.QUEUED)
    c.register_transition_state("a", TransitionState.COMMITTED)
    c.apply_transition(Add("a", 4))
    c.register_transition_state("a", TransitionState.APPLIED)
    assert c.states == {"a": TransitionState.APPLIED}
    assert events == [
        MachineEvent("state", "a", TransitionState.QUEUED, None, 0),
        MachineEvent("state", "a", TransitionState.COMMITTED, None, 0),
        MachineEvent("applied", "a", None, 4, 1),
        MachineEvent("state", "a", TransitionState.APPLIED, None, 1),
    ]


def test_machine_event_is_frozen() -> None:
    event = MachineEvent("applied", "a", None, 1, 1)
    with pytest.raises(FrozenInstanceError):
        event.kind = "state"  # type: ignore[misc]


def test_subscribe_and_unsubscribe() -> None:
    c = Counter()
    first: list[MachineEvent] = []
    second: list[MachineEvent] = []
    stop_first = c.subscribe(first.append)
    c.subscribe(second.append)
    c.apply_transition(Add(1, 1))
    stop_first()
    stop_first()  # twice is harmless
    c.apply_transition(Add(2, 1))
    assert [e.transition_id for e in first] == [1]
    assert [e.transition_id for e in second] == [1, 2]


def test_unsubscribing_during_dispatch_still_delivers_this_event_to_others() -> None:
    c = Counter()
    seen: list[str] = []
    unsubscribe = None

    def once(event: MachineEvent) -> None:
        seen.append("once")
        unsubscribe()

    unsubscribe = c.subscribe(once)
    c.subscribe(lambda e: seen.append("always"))
    c.apply_transition(Add(1, 1))
    c.apply_transition(Add(2, 1))
    assert seen == ["once", "always", "always"]


def test_snapshot_events() -> None:
    c = Counter()
    events = record(c)
    c.apply_transition(Add(1, 1))
    s = c.create_snapshot(1, 3)
    fresh = Counter()
    fresh_events = record(fresh)
    fresh.set_snapshot(s)
    assert events[-1] == MachineEvent("snapshot_created", None, None, None, 1)
    assert fresh_events == [MachineEvent("snapshot_set", None, None, None, 1)]
    assert c.snapshot_index == fresh.snapshot_index == 1


def test_counter_snapshot_round_trip() -> None:
    c = Counter()
    for i in range(4):
        c.apply_transition(Add(i, 10))
    s = c.create_snapshot(4, 2)
    assert s == Snapshot(4, 2, 40)
    c.apply_transition(Add("later", 1))
    assert s.data == 40
    fresh = Counter()
    fresh.set_snapshot(s)
    assert fresh.value == 40 and fresh.applied_index == 4 and fresh.snapshot_index == 4


def test_repr_is_brief_and_informative() -> None:
    c = Counter(3)
    c.submit(Add(1, 1))
    assert repr(c) == "Counter(value=3, applied_index=0, snapshot_index=0, pending=1)"
    kv = KVStore()
    kv.apply_transition(KVStore.put(1, 1, "k", "v"))
    assert repr(kv) == "KVStore(data={'k': 'v'}, sessions=1, applied_index=1, snapshot_index=0, pending=0)"
    for i in range(100):
        kv.apply_transition(KVStore.put(1, i + 2, f"key{i}", "v" * 50))
    assert len(repr(kv)) < 300


def test_add_validation() -> None:
    with pytest.raises(ValueError, match="delta"):
        Add("a", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        Add("a", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id"):
        Add(["unhashable"], 1)  # type: ignore[arg-type]


# ----- KVStore operations ------------------------------------------------------------------------
def apply_all(kv: KVStore, *commands: KVCommand) -> list:
    results = []
    for command in commands:
        kv.apply_transition(command)
        results.append(kv.results[command.get_id()])
    return results


def test_kv_operations() -> None:
    kv = KVStore()
    results = apply_all(
        kv,
        KVStore.get(1, 1, "a"),
        KVStore.put(1, 2, "a", "x"),
        KVStore.get(1, 3, "a"),
        KVStore.append(1, 4, "a", "yz"),
        KVStore.append(1, 5, "b", "new"),
        KVStore.delete(1, 6, "a"),
        KVStore.delete(1, 7, "a"),
        KVStore.get(1, 8, "a"),
    )
    assert results == [None, None, "x", "xyz", "new", True, False, None]
    assert dict(kv.data) == {"b": "new"}
    assert kv.read("b") == "new" and kv.read("a") is None
    assert kv.applied_index == 8


def test_kv_cas() -> None:
    kv = KVStore()
    results = apply_all(
        kv,
        KVStore.cas(1, 1, "k", "something", "v1"),  # absent, expected a value: fails
        KVStore.cas(1, 2, "k", None, "v1"),  # absent, expected absent: sets
        KVStore.cas(1, 3, "k", None, "v2"),  # present, expected absent: fails
        KVStore.cas(1, 4, "k", "wrong", "v2"),  # wrong value: fails
        KVStore.cas(1, 5, "k", "v1", "v2"),  # right value: sets
    )
    assert results == [False, True, False, False, True]
    assert kv.read("k") == "v2"


def test_kv_command_id_and_immutability() -> None:
    command = KVCommand(3, 9, "put", "k", "v")
    assert command.get_id() == (3, 9)
    assert KVStore.put(3, 9, "k", "v") == command
    assert KVStore.cas(1, 2, "k", "old", "new") == KVCommand(1, 2, "cas", "k", "new", "old")
    with pytest.raises(FrozenInstanceError):
        command.key = "other"  # type: ignore[misc]


def test_at_most_once_duplicate_returns_cached_result() -> None:
    kv = KVStore()
    append = KVStore.append(1, 1, "k", "a")
    kv.apply_transition(append)
    kv.apply_transition(append)  # the client retried; the log holds it twice
    assert kv.read("k") == "a"
    assert kv.results[(1, 1)] == "a"
    assert kv.applied_index == 2
    # a later get returns the state after a single append, and its retry the cached answer even
    # though the key changed in between (by another client)
    apply_all(kv, KVStore.get(1, 2, "k"), KVStore.put(2, 1, "k", "other"))
    assert apply_all(kv, KVStore.get(1, 2, "k")) == ["a"]


def test_at_most_once_older_seq_is_not_applied() -> None:
    kv = KVStore()
    apply_all(kv, KVStore.append(1, 1, "k", "a"), KVStore.append(1, 2, "k", "b"))
    assert apply_all(kv, KVStore.append(1, 1, "k", "a")) == [None]
    assert kv.read("k") == "ab"
    assert kv.sessions[1] == (2, "ab")


def test_sessions_are_per_client() -> None:
    kv = KVStore()
    apply_all(kv, KVStore.append(1, 5, "k", "a"), KVStore.append(2, 1, "k", "b"))
    assert kv.read("k") == "ab"
    assert dict(kv.sessions) == {1: (5, "a"), 2: (1, "ab")}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"client": "1"}, "client"),
    ({"client": True}, "client"),
    ({"seq": -1}, "seq"),
    ({"seq": 1.0}, "seq"),
    ({"op": "incr"}, "op"),
    ({"key": 5}, "key"),
    ({"key": None}, "key"),
    ({"op": "put", "value": None}, "value"),
    ({"op": "put", "value": 5}, "value"),
    ({"op": "append", "value": b"x"}, "value"),
    ({"op": "get", "value": "x"}, "value"),
    ({"op": "delete", "value": "x"}, "value"),
    ({"op": "cas", "value": "x", "expected": 3}, "expected"),
    ({"op": "put", "value": "x", "expected": "y"}, "expected"),
])
def test_kv_command_validation_names_the_field(kwargs: dict, field: str) -> None:
    args = {"client": 1, "seq": 1, "op": "get", "key": "k"} | kwargs
    with pytest.raises(ValueError, match=rf"KVCommand\.{field}\b"):
        KVCommand(**args)


def test_kv_snapshot_round_trip_and_isolation() -> None:
    kv = KVStore()
    apply_all(kv, KVStore.put(1, 1, "a", "1"), KVStore.put(2, 1, "b", "2"), KVStore.get(1, 2, "a"))
    snapshot = kv.create_snapshot(3, 1)
    data_before = pickle.dumps(snapshot.data)
    apply_all(kv, KVStore.put(1, 3, "a", "changed"), KVStore.delete(2, 2, "b"), KVStore.put(3, 1, "c", "3"))
    assert pickle.dumps(snapshot.data) == data_before  # later changes do not reach the snapshot
    fresh, other = KVStore(), KVStore()
    fresh.set_snapshot(snapshot)
    other.set_snapshot(snapshot)  # the same Snapshot handed to two replicas
    assert dict(fresh.data) == {"a": "1", "b": "2"}
    assert dict(fresh.sessions) == {1: (2, "1"), 2: (1, None)}
    assert fresh.applied_index == fresh.snapshot_index == 3
    fresh.apply_transition(KVStore.put(9, 1, "a", "mine"))
    assert other.read("a") == "1"  # restoring copied the data: replicas do not share state
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot  # SqliteStorage pickles snapshots
    # the sessions survive the snapshot: a retry after restoring is still deduplicated
    assert apply_all(other, KVStore.get(1, 2, "a")) == ["1"]
    assert apply_all(other, KVStore.put(2, 1, "b", "again")) == [None]
    assert other.read("b") == "2"


def test_snapshot_data_is_canonical() -> None:
    one, two = KVStore(), KVStore()
    apply_all(one, KVStore.put(1, 1, "a", "1"), KVStore.put(2, 1, "b", "2"))
    apply_all(two, KVStore.put(2, 1, "b", "2"), KVStore.put(1, 1, "a", "1"))
    assert one.create_snapshot(2, 1) == two.create_snapshot(2, 1)


# ----- Hypothesis: KVStore against a plain dict model --------------------------------------------
KEYS = ("a", "b", "c")
VALUES = st.sampled_from(("", "x", "y", "xy"))


@st.composite
def kv_commands(draw: st.DrawFn) -> KVCommand:
    client = draw(st.integers(0, 2))
    seq = draw(st.integers(0, 6))
    op = draw(st.sampled_from(("put", "get", "append", "delete", "cas")))
    key = draw(st.sampled_from(KEYS))
    if op in ("put", "append"):
        return KVCommand(client, seq, op, key, draw(VALUES))
    if op == "cas":
        return KVCommand(client, seq, op, key, draw(VALUES), draw(st.none() | VALUES))
    return KVCommand(client, seq, op, key)


def model_run(commands: list[KVCommand]) -> tuple[dict[str, str], dict[int, tuple[int, object]], list]:
    """The dedupe rule and the operations, written as plainly as possible."""
    data: dict[str, str] = {}
    sessions: dict[int, tuple[int, object]] = {}
    results = []
    for c in commands:
        if c.client in sessions and c.seq <= sessions[c.client][0]:
            results.append(sessions[c.client][1] if c.seq == sessions[c.client][0] else None)
            continue
        if c.op == "put":
            data[c.key], result = c.value, None
        elif c.op == "get":
            result = data.get(c.key)
        elif c.op == "append":
            data[c.key] = result = data.get(c.key, "") + c.value
        elif c.op == "delete":
            result = c.key in data
            data.pop(c.key, None)
        else:
            result = data.get(c.key) == c.expected
            if result:
                data[c.key] = c.value
        sessions[c.client] = (c.seq, result)
        results.append(result)
    return data, sessions, results


@settings(max_examples=200, deadline=None)
@given(st.lists(kv_commands(), max_size=40))
def test_kv_matches_dict_model(commands: list[KVCommand]) -> None:
    kv = KVStore()
    events = record(kv)
    results = apply_all(kv, *commands)
    data, sessions, expected = model_run(commands)
    assert results == expected
    assert [e.result for e in events] == expected  # published results match too
    assert dict(kv.data) == data
    assert dict(kv.sessions) == sessions
    assert kv.applied_index == len(commands)


@settings(max_examples=200, deadline=None)
@given(st.lists(kv_commands(), max_size=40), st.data())
def test_kv_snapshot_at_any_point_gives_same_final_state(commands: list[KVCommand], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(commands)), label="cut")
    straight = KVStore()
    apply_all(straight, *commands)
    first = KVStore()
    apply_all(first, *commands[:cut])
    snapshot = first.create_snapshot(cut, 1)
    apply_all(first, *commands[cut:])  # keeps going; must not disturb the snapshot
    restored = KVStore()
    restored.set_snapshot(snapshot)
    tail_results = apply_all(restored, *commands[cut:])
    assert tail_results == model_run(commands)[2][cut:]
    assert restored._state() == straight._state() == first._state()
    assert restored.applied_index == straight.applied_index == len(commands)


# ----- a real Replica over the machines ----------------------------------------------------------
class NullCluster:
    """A single-node cluster: nothing to send or receive; remembers leader changes."""

    def __init__(self) -> None:
        self.sent: list = []
        self.leaders: list = []

    def send_message(self, to_id: int, message: object) -> None:
        self.sent.append((to_id, message))

    def receive_messages(self) -> list:
        return []

    def halt(self) -> bool:
        return True

    def register_leader(self, leader_id: int | None) -> None:
        self.leaders.append(leader_id)


def single_node(machine: ObservableStateMachine, **kwargs) -> Replica:
    replica = Replica(0, [], NullCluster(), machine, machine.NOOP, 0.05, (0.15, 0.3),
                      rng=random.Random(0), **kwargs)
    replica.tick(1.0)
    assert replica.role is Role.LEADER
    return replica


def test_replica_drives_kvstore() -> None:
    kv = KVStore()
    events = record(kv)
    replica = single_node(kv)
    assert kv.applied_index == 1  # the leader's no-op
    commands = [KVStore.put(7, 1, "k", "v"), KVStore.append(7, 2, "k", "w"), KVStore.get(7, 3, "k")]
    for c in commands:
        kv.submit(c)
    replica.process_transitions()
    assert kv.pending_count == 0
    assert [kv.results[c.get_id()] for c in commands] == [None, "vw", "vw"]
    assert all(kv.states[c.get_id()] is TransitionState.APPLIED for c in commands)
    assert kv.applied_index == replica.last_applied == 4
    mine = [(e.kind, e.state) for e in events if e.transition_id == (7, 2)]
    assert mine == [("state", TransitionState.QUEUED), ("state", TransitionState.COMMITTED),
                    ("applied", None), ("state", TransitionState.APPLIED)]
    applied = [e for e in events if e.kind == "applied"]
    assert [e.index for e in applied] == [1, 2, 3, 4]
    # retries reach the log again but are not applied: the latest gets its cached answer, an older
    # one None (its answer is unknown to the store; `results` records what each application returned)
    kv.submit(KVStore.get(7, 3, "k"))
    kv.submit(KVStore.append(7, 2, "k", "w"))
    replica.process_transitions()
    assert kv.read("k") == "vw" and kv.applied_index == 6
    assert kv.results[(7, 3)] == "vw" and kv.results[(7, 2)] is None
    assert [e.result for e in events if e.kind == "applied"][-2:] == ["vw", None]


def test_replica_not_leader_abandons_submitted_transitions() -> None:
    c = Counter()
    replica = Replica(0, [1, 2], NullCluster(), c, c.NOOP, 0.05, (0.15, 0.3), rng=random.Random(0))
    c.submit(Add("x", 1))
    replica.process_transitions()
    assert c.states == {"x": TransitionState.ABANDONED_NOT_LEADER}
    assert c.value == 0 and c.applied_index == 0


def test_replica_snapshots_and_restarts_from_storage() -> None:
    counter, storage = Counter(), MemoryStorage()
    events = record(counter)
    replica = single_node(counter, snapshot_delta=3, storage=storage)
    for i in range(5):
        counter.submit(Add(i, 2))
    replica.process_transitions()  # noop + 5 adds = 6 entries: a snapshot at 6
    assert counter.value == 10 and counter.applied_index == 6
    assert counter.snapshot_index == 6
    assert any(e.kind == "snapshot_created" and e.index == 6 for e in events)
    restarted = Counter()
    Replica(0, [], NullCluster(), restarted, restarted.NOOP, 0.05, (0.15, 0.3), storage=storage,
            rng=random.Random(1))
    assert restarted.value == 10 and restarted.applied_index == restarted.snapshot_index == 6


def test_results_of_the_commands_a_snapshot_applied_are_known_after_installing_it() -> None:
    """A command applied through an installed snapshot has its result (the client's session holds it),
    so `Submission.result` is right when "applied" comes from a snapshot."""
    source = KVStore()
    source.apply_transition(KVStore.put(1, 1, "x", "a"))
    source.apply_transition(KVStore.cas(2, 4, "x", "a", "b"))
    snapshot = source.create_snapshot(2, 1)
    target = KVStore()
    assert target.results == {}
    target.set_snapshot(snapshot)
    assert target.results == {(1, 1): None, (2, 4): True}
    assert target.read("x") == "b"
