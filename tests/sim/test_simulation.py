"""The `Simulation` API: validation, stepping and time, views and frames, faults and the network,
submissions (of any protocol state machine), `one`, and `rewind`."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter as Tally
from collections.abc import Callable
from types import MappingProxyType

import pytest

from raftlab.core import AppendEntryRequest, EventKind, Role, Snapshot, TransitionState, VoteRequest
from raftlab.machines import KVStore
from raftlab.sim import Frame, NetworkModel, SimKind, Simulation
from raftlab.sim.trace import TraceEvent

# ----- helpers ---------------------------------------------------------------------------------------


def elected(n: int = 5, seed: int = 1, **kwargs) -> Simulation:  # type: ignore[no-untyped-def]
    sim = Simulation(n, seed=seed, **kwargs)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    assert sim.leader() is not None
    return sim


def drops(sim: Simulation, why: str | None = None, since: int = 0) -> list[TraceEvent]:
    return [e for e in sim.trace[since:] if e.kind == SimKind.DROP and (why is None or e.data["why"] == why)]


def sends(sim: Simulation, since: int = 0) -> list[TraceEvent]:
    return [e for e in sim.trace[since:] if e.kind == SimKind.SEND]


def delivered(sim: Simulation, since: int = 0) -> list[TraceEvent]:
    return [e for e in sim.trace[since:] if e.kind == SimKind.DELIVER]


# ----- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -3, 2.0, "5", True, None])
def test_n_is_validated(n: object) -> None:
    with pytest.raises(ValueError, match="n must"):
        Simulation(n)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1.0, "1", None, (1,)])
def test_seed_is_validated(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        Simulation(3, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, field", [
    ({"heartbeat_timeout": 0}, "heartbeat_timeout"), ({"heartbeat_timeout": "fast"}, "heartbeat_timeout"),
    ({"election_timeout": (0.01, 0.02)}, "election_timeout"), ({"election_timeout": (0.3, 0.2)}, "election_timeout"),
    ({"snapshot_delta": -1}, "snapshot_delta"), ({"state_machine": int}, "noop_transition"),
    ({"network": "lossy"}, "network"), ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint_every": -5}, "checkpoint_every"),
], ids=["heartbeat-0", "heartbeat-str", "election-low", "election-inverted", "snapshot_delta", "no-noop",
        "network-str", "checkpoint-0", "checkpoint-negative"])
def test_other_arguments_are_validated(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Simulation(3, seed=1, **kwargs)


@pytest.mark.parametrize("field, value", [
    ("latency", (0.2, 0.1)), ("latency", (-0.01, 0.1)), ("latency", 0.1), ("latency", (0.1,)),
    ("latency", (0.0, math.inf)), ("latency", (0.0, math.nan)), ("latency", ("a", "b")),
    ("drop", 1.5), ("drop", -0.1), ("drop", "0.1"), ("drop", math.nan), ("drop", True),
    ("duplicate", 2), ("duplicate", -1e-9), ("duplicate", None),
])
def test_network_model_is_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        NetworkModel(**{field: value})  # type: ignore[arg-type]
    sim = Simulation(3, seed=1)
    before = getattr(sim.network, field)
    with pytest.raises(ValueError, match=field):
        setattr(sim.network, field, value)  # checked at run time too, e.g. sim.network.drop = 2
    assert getattr(sim.network, field) == before
    if value is not None:  # None in set_link means "the network's default"
        with pytest.raises(ValueError, match=field):
            sim.network.set_link(0, 1, **{field: value})  # type: ignore[arg-type]
        assert (0, 1) not in sim.network.links


def test_network_model_accepts_edges() -> None:
    model = NetworkModel(latency=(0, 0), drop=1, duplicate=0.0)
    assert model.latency == (0.0, 0.0) and model.drop == 1.0 and model.duplicate == 0.0
    model.latency = [0.001, 0.002]
    assert model.latency == (0.001, 0.002)


@pytest.mark.parametrize("call", [
    lambda s: s.crash(5), lambda s: s.restart(5), lambda s: s.crash(-1), lambda s: s.disconnect(7),
    lambda s: s.connect(5), lambda s: s.partition([0, 9]), lambda s: s.partition([0], [1, "2"]),
    lambda s: s.cut(0, 5), lambda s: s.cut(5, 0), lambda s: s.uncut(0, 5), lambda s: s.uncut(9, 1),
    lambda s: s.drop_next(0, 5), lambda s: s.drop_next(5, 0),
    lambda s: s.submit(KVStore.put(1, 1, "a", "b"), to=5), lambda s: s.crash("0"), lambda s: s.crash(None),
], ids=["crash", "restart", "crash-negative", "disconnect", "connect", "partition", "partition-str", "cut-dst",
        "cut-src", "uncut-dst", "uncut-src", "drop_next-dst", "drop_next-src", "submit", "crash-str", "crash-None"])
def test_unknown_nodes_are_refused(call: Callable[[Simulation], object]) -> None:
    sim = Simulation(5, seed=1)
    sim.run(0.2)
    before = sim.frame()
    length = len(sim.trace)
    with pytest.raises(ValueError, match="node"):
        call(sim)
    assert sim.frame() == before  # nothing changed
    assert len(sim.trace) == length  # nothing recorded


@pytest.mark.parametrize("refused", [
    lambda s: s.submit(KVStore.put(1, 1, "a", "b"), to=3), lambda s: s.drop_message(10**9), lambda s: s.crash(3),
], ids=["submit", "drop_message", "crash"])
def test_refused_interventions_are_not_replayed_by_rewind(refused: Callable[[Simulation], object]) -> None:
    sim = Simulation(3, seed=2)
    sim.run(0.3)
    with pytest.raises(ValueError):
        refused(sim)
    sim.run(0.3)
    expected = sim.trace.hash()
    sim.rewind(sim.steps)  # must not replay (and fail on) the refused call
    assert sim.trace.hash() == expected


def test_drop_message_of_unknown_id() -> None:
    sim = Simulation(3, seed=1)
    with pytest.raises(ValueError, match="no message 42"):
        sim.drop_message(42)


# ----- stepping and time -------------------------------------------------------------------------------


def test_step_returns_the_event_and_advances_now() -> None:
    sim = Simulation(3, seed=4)
    assert (sim.now, sim.steps) == (0.0, 0)
    last = 0
    for k in range(1, 60):
        event = sim.step()
        assert isinstance(event, TraceEvent)
        assert event.kind in (SimKind.TIMER, SimKind.DELIVER, SimKind.DROP)
        assert event.step == sim.steps == k
        assert event.time == sim.now_us == round(sim.now * 1e6)
        assert event.time >= last
        assert event is sim.trace.of_kind(event.kind)[-1]
        last = event.time
    assert sim.now > 0


def test_step_until_returns_none_without_moving() -> None:
    sim = Simulation(3, seed=4)
    first = sim.frame()
    assert sim.step(until=0.01) is None  # the first timer fires at >= 0.15 s
    assert (sim.now, sim.steps) == (0.0, 0)
    assert sim.frame() == first
    event = sim.step(until=1.0)
    assert event is not None and 0.15 <= event.seconds <= 0.30


def test_run_advances_time_exactly() -> None:
    sim = Simulation(5, seed=5)
    for seconds, expected_us in [(0.25, 250_000), (0.001, 1_000), (1.0, 1_000_000), (0.0, 0), (0.3333335, 333_334)]:
        before_us, before_steps = sim.now_us, sim.steps
        taken = sim.run(seconds)
        assert sim.now_us - before_us == expected_us
        assert taken == sim.steps - before_steps
        assert all(e.time <= sim.now_us for e in sim.trace)
    nxt = sim.step()
    assert nxt is not None and nxt.time > before_us + expected_us - 1  # nothing due was left behind


def test_run_until_stops_when_the_predicate_holds() -> None:
    sim = Simulation(5, seed=6)
    taken = sim.run_until(lambda s: s.steps >= 7)
    assert taken == 7 and sim.steps == 7
    assert sim.leader() is None
    sim.run_until(lambda s: s.leader() is not None)
    assert sim.leader() is not None
    # it stopped right after the step that made the leader
    assert sim.trace.of_kind(EventKind.BECAME_LEADER)[-1].step == sim.steps == sim.trace[-1].step
    assert sim.run_until(lambda s: True) == 0
    # a predicate that never holds: stops at the timeout, time advanced exactly
    before = sim.now_us
    sim.run_until(lambda s: False, timeout=0.4)
    assert sim.now_us - before == 400_000


def test_leader() -> None:
    sim = Simulation(5, seed=7)
    assert sim.leader() is None
    sim.run_until(lambda s: s.leader() is not None)
    leader = sim.leader()
    assert leader is not None
    assert sim.replicas[leader].role is Role.LEADER
    assert [r.id for r in sim.replicas if r.role is Role.LEADER] == [leader]
    sim.crash(leader)
    assert sim.leader() is None
    sim.run_until(lambda s: s.leader() is not None)
    new = sim.leader()
    assert new not in (None, leader) and sim.replicas[new].term > sim.replicas[leader].term
    # an isolated old leader still believes it leads: leader() names the highest term's
    sim.disconnect(new)
    sim.run_until(lambda s: s.leader() not in (None, new))
    newer = sim.leader()
    assert sim.replicas[new].role is Role.LEADER and newer != new
    assert sim.replicas[newer].term > sim.replicas[new].term


def test_views_are_read_only() -> None:
    sim = elected(3, seed=8)
    view = sim.replicas[0]
    assert isinstance(sim.replicas, tuple)
    for name, value in [("term", 9), ("role", Role.LEADER), ("commit_index", 5), ("log", ()), ("voted_for", 2),
                        ("crashed", True), ("id", 2), ("anything", 1)]:
        with pytest.raises(AttributeError):
            setattr(view, name, value)
    assert isinstance(view.log, tuple)
    with pytest.raises((TypeError, AttributeError)):
        view.log.append(None)  # type: ignore[attr-defined]
    assert view.term == sim.replicas[0].term and sim.replicas[0].id == 0


def test_views_follow_the_replicas() -> None:
    sim = elected(3, seed=8)
    leader = sim.leader()
    sim.one(KVStore.put(1, 1, "k", "v"), k=3)
    for view in sim.replicas:
        assert view.last_index == 2 and view.commit_index == 2 and view.last_applied == 2
        assert [e.index for e in view.log] == [1, 2] and view.log[1].transition == KVStore.put(1, 1, "k", "v")
        assert view.machine.data == {"k": "v"}
        assert view.term == sim.replicas[leader].term and view.snapshot_index == 0
        assert view.stats.received > 0
    assert "crashed" not in repr(sim.replicas[0])


# ----- crash and restart -------------------------------------------------------------------------------


def test_crash_loses_messages_in_flight_and_volatile_state() -> None:
    sim = elected(5, seed=9)
    sim.one(KVStore.put(1, 1, "k", "v"), k=5)
    leader = sim.leader()
    node = (leader + 1) % 5
    sim.run_until(lambda s: any(f.destination == node for f in s.in_flight()), 1.0)
    lost = [f.id for f in sim.in_flight() if f.destination == node]
    assert lost
    term, log = sim.replicas[node].term, sim.replicas[node].log
    sim.crash(node)
    view = sim.replicas[node]
    assert view.crashed and view.role is None and view.machine is None and view.stats is None
    assert view.commit_index == 0 and view.last_applied == 0
    assert "crashed" in repr(view)
    assert (view.term, view.log) == (term, log)  # persistent state survives
    assert not any(f.destination == node for f in sim.in_flight())
    crash_at = max(i for i, e in enumerate(sim.trace) if e.kind == SimKind.CRASH)
    assert sim.trace[crash_at].node == node
    after = sim.trace.events[crash_at + 1:]  # each lost message is reported, with the reason
    assert sorted(e.data["id"] for e in after) == sorted(lost)
    assert all(e.kind == SimKind.DROP and e.data["why"] == "its receiver crashed" for e in after)
    sim.restart(node)  # at once: the lost messages must not reach the new incarnation
    mark = len(sim.trace)
    sim.run(0.5)
    assert not [e for e in delivered(sim, mark) if e.data["id"] in lost]
    # while crashed, messages sent to it are dropped with a reason
    sim.crash(node)
    mark = len(sim.trace)
    sim.run(0.2)
    lost_to_crashed = [e for e in drops(sim, since=mark) if e.data["to"] == node]
    assert lost_to_crashed and all(e.data["why"] == "its receiver crashed" for e in lost_to_crashed)
    assert not [e for e in delivered(sim, mark) if e.data["to"] == node]
    # crash and restart of a node in that state do nothing more
    sim.crash(node)
    assert sum(e.kind == SimKind.CRASH for e in sim.trace[mark:]) == 0
    sim.restart(node)
    sim.restart(node)
    assert sum(e.kind == SimKind.RESTART for e in sim.trace[mark:]) == 1


def test_restart_rebuilds_the_state_machine() -> None:
    sim = elected(5, seed=10, snapshot_delta=3)
    for k in range(8):
        sim.one(KVStore.append(1, k, "log", str(k)), k=5)
    node = (sim.leader() + 1) % 5
    before = sim.replicas[node]
    data, applied = dict(before.machine.data), before.last_applied
    old_machine = before.machine
    assert before.snapshot_index > 0  # a snapshot covers a prefix
    sim.crash(node)
    sim.restart(node)
    view = sim.replicas[node]
    assert view.role is Role.FOLLOWER and view.machine is not old_machine
    assert view.commit_index == view.last_applied == view.snapshot_index  # starts at its snapshot
    assert view.machine.applied_index == view.snapshot_index
    restart = sim.trace[-1]
    assert restart.kind == SimKind.RESTART and restart.data["entries"] == sim.replicas[node].last_index
    sim.run_until(lambda s: s.replicas[node].last_applied >= applied, 2.0)
    assert sim.replicas[node].machine.data == data == {"log": "01234567"}
    assert sim.replicas[node].machine.sessions == old_machine.sessions


# ----- the network -------------------------------------------------------------------------------------


def test_partition_and_heal() -> None:
    sim = elected(5, seed=11)
    sim.partition([0, 1], [2])
    cut = sim.frame().cut
    sides = [{0, 1}, {2}, {3, 4}]
    assert cut == frozenset((a, b) for a in range(5) for b in range(5)
                            if next(i for i, g in enumerate(sides) if a in g) != next(
                                i for i, g in enumerate(sides) if b in g))
    assert sim.trace[-1].kind == SimKind.NETWORK and "[0, 1], [2], [3, 4]" in sim.trace[-1].explain()
    mark = len(sim.trace)
    sim.run(1.0)
    across = [e for e in sends(sim, mark) if (e.node, e.data["to"]) in cut]
    assert across
    assert not [e for e in delivered(sim, mark) if (e.node, e.data["to"]) in cut]
    lost = drops(sim, since=mark)
    assert {(e.node, e.data["to"]) for e in lost} <= cut
    assert {e.data["why"] for e in lost} <= {"the link is cut", "the link was cut while it travelled"}
    assert len(lost) >= len(across) - len(sim.in_flight())
    # only 3, 4 can't win either
    assert {e.node for e in sim.trace[mark:] if e.kind == EventKind.BECAME_LEADER} <= {3, 4}
    sim.heal()
    assert sim.frame().cut == frozenset()
    mark = len(sim.trace)
    sim.run(1.0)
    assert not drops(sim, since=mark)
    assert sim.leader() is not None


def test_cut_is_one_way_and_uncut_restores() -> None:
    sim = elected(3, seed=12)
    leader = sim.leader()
    other = (leader + 1) % 3
    sim.cut(other, leader)  # the leader still reaches `other`; its answers are lost
    assert sim.frame().cut == {(other, leader)}
    assert sim.trace[-1].kind == SimKind.NETWORK and f"link {other}->{leader} cut" in sim.trace[-1].explain()
    mark = len(sim.trace)
    sim.run(0.12)
    back = [e for e in sim.trace[mark:]
            if e.kind in (SimKind.DELIVER, SimKind.DROP) and (e.node, e.data["to"]) == (other, leader)]
    assert back and all(e.kind == SimKind.DROP for e in back)
    assert all(e.data["why"] in ("the link is cut", "the link was cut while it travelled") for e in back)
    assert [e for e in back if e.data["why"] == "the link is cut"]
    assert "was lost: the link is cut." in back[-1].explain()
    assert any((e.node, e.data["to"]) == (leader, other) for e in delivered(sim, mark))  # the other way works
    sim.uncut(other, leader)
    assert sim.frame().cut == frozenset()
    mark = len(sim.trace)
    sim.run(0.12)
    assert any((e.node, e.data["to"]) == (other, leader) for e in delivered(sim, mark))
    assert not drops(sim, since=mark)


def test_cut_while_travelling() -> None:
    sim = elected(3, seed=13)
    sim.run_until(lambda s: bool(s.in_flight()), 1.0)
    flight = sim.in_flight()[0]
    sim.cut(flight.source, flight.destination)
    sim.run_until(lambda s: all(f.id != flight.id for f in s.in_flight()), 1.0)
    [event] = [e for e in sim.trace if e.kind in (SimKind.DELIVER, SimKind.DROP) and e.data.get("id") == flight.id]
    assert event.kind == SimKind.DROP and event.data["why"] == "the link was cut while it travelled"
    assert event.time == flight.arrives


def test_disconnect_and_connect() -> None:
    sim = elected(5, seed=14)
    node = sim.leader()
    sim.disconnect(node)
    assert sim.frame().cut == {(node, o) for o in range(5) if o != node} | {(o, node) for o in range(5) if o != node}
    mark = len(sim.trace)
    sim.run(1.0)
    assert not [e for e in delivered(sim, mark) if node in (e.node, e.data["to"])]
    assert [e for e in drops(sim, since=mark) if e.node == node]
    assert sim.leader() not in (None, node)
    sim.connect(node)
    assert sim.frame().cut == frozenset()
    mark = len(sim.trace)
    sim.run(1.0)
    assert [e for e in delivered(sim, mark) if e.data["to"] == node]
    assert sim.replicas[node].role is Role.FOLLOWER


def test_drop_next_loses_exactly_one_message() -> None:
    sim = elected(3, seed=15)
    leader = sim.leader()
    other = (leader + 1) % 3
    sim.drop_next(leader, other)
    sim.drop_next(leader, other)
    mark = len(sim.trace)
    sim.run(0.3)
    out = [e for e in sends(sim, mark) if e.node == leader and e.data["to"] == other]
    assert len(out) >= 4
    lost = drops(sim, since=mark)
    assert [(e.node, e.data["to"], e.data["why"]) for e in lost] == [(leader, other, "it was chosen to be dropped")] * 2
    assert [e.data["message"] for e in lost] == [e.data["message"] for e in out[:2]]
    assert "was lost: it was chosen to be dropped." in lost[0].explain()


def test_drop_message_by_id() -> None:
    sim = elected(3, seed=16)
    sim.run_until(lambda s: len(s.in_flight()) >= 2, 1.0)
    victim, kept = sim.in_flight()[:2]
    sim.drop_message(victim.id)
    assert victim.id not in {f.id for f in sim.in_flight()} and kept in sim.in_flight()
    event = sim.trace[-1]
    assert (event.kind, event.data["id"], event.data["why"]) == (SimKind.DROP, victim.id, "it was dropped by hand")
    assert "was lost: it was dropped by hand." in event.explain()
    sim.run(0.1)
    assert not [e for e in delivered(sim) if e.data["id"] == victim.id]
    assert [e for e in delivered(sim) if e.data["id"] == kept.id]
    with pytest.raises(ValueError):
        sim.drop_message(victim.id)  # not in flight any more


def test_random_loss_is_reported() -> None:
    sim = Simulation(5, seed=17, network=NetworkModel(drop=0.3))
    sim.run(2.0)
    lost = drops(sim, "the network lost it")
    sent = len(sends(sim))
    assert 0.15 * sent < len(lost) < 0.45 * sent
    assert sum(sim.counters["dropped"].values()) == len(drops(sim))


def test_duplicates_are_delivered_and_applied_once() -> None:
    sim = Simulation(3, seed=18, network=NetworkModel(duplicate=1.0))
    sim.run_until(lambda s: s.leader() is not None)
    for k, piece in enumerate("abc"):
        sim.one(KVStore.append(1, k, "k", piece), k=3)
    sim.run(0.5)
    duplicated = sim.trace.of_kind(SimKind.DUPLICATE)
    assert len(duplicated) == len(sends(sim))  # every message was sent twice over the wire
    copies = [e for e in duplicated]
    assert all(e.data["id"] > 0 for e in copies)
    twice = Tally((e.node, e.data["to"], e.data["message"]) for e in delivered(sim))
    assert max(twice.values()) >= 2  # the same message really arrived twice
    for view in sim.replicas:
        assert view.machine.data == {"k": "abc"}  # applied once each
        assert [e.index for e in view.log] == [1, 2, 3, 4]


def test_duplicate_toggled_at_run_time() -> None:
    sim = Simulation(3, seed=18)
    sim.run(0.5)
    assert not sim.trace.of_kind(SimKind.DUPLICATE)
    sim.network.duplicate = 1.0
    event = sim.trace[-1]
    assert event.kind == SimKind.NETWORK and "duplicate set to 1.0" in event.explain()
    mark = len(sim.trace)
    sim.run(0.3)
    assert len([e for e in sim.trace[mark:] if e.kind == SimKind.DUPLICATE]) == len(sends(sim, mark)) > 0


def test_per_link_overrides() -> None:
    sim = elected(3, seed=19)
    leader = sim.leader()
    a, b = [n for n in range(3) if n != leader]
    sim.network.set_link(leader, a, drop=1.0)
    sim.network.set_link(leader, b, latency=(0.03, 0.03))
    older = {f.id for f in sim.in_flight()}
    assert sim.network.params(leader, a) == (0.005, 0.015, 1.0, 0.0)
    assert sim.network.params(leader, b) == (0.03, 0.03, 0.0, 0.0)
    assert sim.network.params(a, leader) == (0.005, 0.015, 0.0, 0.0)
    mark = len(sim.trace)
    sim.run(0.5)
    to_a = [e for e in sim.trace[mark:]
            if e.kind in (SimKind.DELIVER, SimKind.DROP) and (e.node, e.data["to"]) == (leader, a)
            and e.data["id"] not in older]
    assert to_a and all(e.kind == SimKind.DROP and e.data["why"] == "the network lost it" for e in to_a)
    slow = [f for f in sim.in_flight() if (f.source, f.destination) == (leader, b)]
    assert all(f.arrives - f.sent == 30_000 for f in slow)
    other = [f for f in sim.in_flight() if (f.source, f.destination) != (leader, b)]
    assert all(5_000 <= f.arrives - f.sent <= 15_000 for f in other)
    assert [e for e in delivered(sim, mark) if (e.node, e.data["to"]) == (a, leader)]  # the other way works
    sim.network.clear_link(leader, a)
    assert sim.network.params(leader, a) == (0.005, 0.015, 0.0, 0.0)
    mark = len(sim.trace)
    sim.run(0.3)
    assert any((e.node, e.data["to"]) == (leader, a) for e in delivered(sim, mark))
    assert not drops(sim, since=mark)


def test_counters_per_message_type() -> None:
    sim = Simulation(5, seed=20)
    sim.run_until(lambda s: s.leader() is not None)
    sim.one(KVStore.put(1, 1, "k", "v"))
    sim.disconnect(sim.leader())
    sim.run(1.0)
    sent = Tally(type(e.data["message"]).__name__ for e in sends(sim))
    lost = Tally(type(e.data["message"]).__name__ for e in drops(sim))
    assert dict(sim.counters["messages"]) == dict(sent)
    assert dict(+sim.counters["dropped"]) == dict(lost)
    assert {"VoteRequest", "VoteResponse", "AppendEntryRequest", "AppendEntryResponse"} <= set(sent)
    assert set(sim.counters["bytes"]) == set(sent)
    for kind, count in sent.items():
        assert sim.counters["bytes"][kind] >= 8 * count  # at least a field per message
    # entries make AppendEntries bigger than heartbeats
    per_vote = sim.counters["bytes"]["VoteRequest"] / sent["VoteRequest"]
    assert per_vote == 8 * len(dataclasses.fields(VoteRequest))
    heartbeat_size = 8 * len(dataclasses.fields(AppendEntryRequest))
    assert sim.counters["bytes"]["AppendEntryRequest"] > heartbeat_size * sent["AppendEntryRequest"]


# ----- frame() -----------------------------------------------------------------------------------------


def test_frame_contents() -> None:
    sim = elected(5, seed=21)
    sim.one(KVStore.put(1, 1, "k", "v"), k=5)
    leader = sim.leader()
    crashed = (leader + 2) % 5
    sim.crash(crashed)
    sim.cut(leader, (leader + 1) % 5)
    sim.run_until(lambda s: len(s.in_flight()) >= 2, 1.0)
    frame = sim.frame()
    assert isinstance(frame, Frame)
    assert (frame.time, frame.step, frame.seed, frame.leader) == (sim.now, sim.steps, 21, leader)
    assert [n.id for n in frame.nodes] == list(range(5))
    assert frame.cut == frozenset({(leader, (leader + 1) % 5)})
    for node in frame.nodes:
        view = sim.replicas[node.id]
        assert node.crashed == (node.id == crashed)
        assert node.role == view.role and node.term == view.term and node.voted_for == view.voted_for
        assert node.log == view.log and node.commit_index == view.commit_index
        assert node.last_applied == view.last_applied and node.snapshot_index == view.snapshot_index
        assert node.election_timeout_range == (0.15, 0.30) and node.heartbeat_timeout == 0.05
        if node.crashed:
            assert node.role is None and node.deadline == math.inf and node.leader is None
        else:
            assert sim.now <= node.deadline < sim.now + 0.31
            assert node.leader == leader
        if node.id == leader:
            assert set(node.next_index) == set(node.match_index) == set(range(5)) - {leader}
            assert all(node.next_index[p] == node.match_index[p] + 1 == 3 for p in node.next_index
                       if p != crashed and p != (leader + 1) % 5)
        else:
            assert dict(node.next_index) == dict(node.match_index) == {}
    assert frame.in_flight == tuple(sim.in_flight()) and frame.in_flight
    assert [f.arrives for f in frame.in_flight] == sorted(f.arrives for f in frame.in_flight)
    for flight in frame.in_flight:
        assert flight.sent <= sim.now_us < flight.arrives
        assert flight.destination != crashed
        assert (flight.source, flight.destination) != (leader, (leader + 1) % 5)


def test_frame_is_immutable_and_detached() -> None:
    sim = elected(3, seed=22)
    sim.run(0.02)
    frame = sim.frame()
    leader_node = frame.nodes[frame.leader]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        frame.step = 0  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        leader_node.term = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        leader_node.next_index[1] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        leader_node.match_index[1] = 0  # type: ignore[index]
    assert isinstance(leader_node.next_index, MappingProxyType)
    assert isinstance(frame.nodes, tuple) and isinstance(frame.in_flight, tuple) and isinstance(leader_node.log, tuple)
    assert isinstance(frame.cut, frozenset)
    flight = frame.in_flight[0]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        flight.arrives = 0  # type: ignore[misc]
    hash(frame.nodes[0].log)  # all plain immutable values
    # later steps do not change it
    copy = repr(frame)
    sim.one(KVStore.put(1, 1, "k", "v"), k=3)
    sim.crash(0)
    assert repr(frame) == copy
    assert sim.frame() != frame


# ----- submissions -------------------------------------------------------------------------------------


def test_submission_states_on_leader_and_followers() -> None:
    sim = elected(5, seed=23)
    leader = sim.leader()
    seen: list[TransitionState] = []
    command = KVStore.put(7, 1, "k", "v")
    sim.replicas[leader].machine.subscribe(
        lambda event: seen.append(event.state) if event.kind == "state" and event.transition_id == (7, 1) else None)
    handle = sim.submit(command)
    assert handle.node == leader and handle.id == (7, 1) and handle.step == sim.steps
    assert handle.state is TransitionState.QUEUED
    assert sim.submissions[(7, 1)] is handle
    sim.run_until(lambda s: len(handle.applied_on) == 5, 2.0)
    assert seen == [TransitionState.QUEUED, TransitionState.COMMITTED, TransitionState.APPLIED]
    assert handle.state is TransitionState.APPLIED and handle.applied_on == set(range(5))
    assert all(state is TransitionState.APPLIED for state in handle.states.values())
    assert handle.index == 2
    replies = [e for e in sim.trace.of_kind(SimKind.CLIENT_REPLY) if e.data["transition"] == repr(command)]
    assert len(replies) == 1 and replies[0].node == leader and replies[0].data["state"] == "applied"
    requests = [e for e in sim.trace.of_kind(SimKind.CLIENT_REQUEST) if e.data["transition"] == repr(command)]
    assert len(requests) == 1 and requests[0].node == leader


@dataclasses.dataclass(frozen=True)
class Note:
    """A transition of `Notebook`."""

    id: str
    text: str

    def get_id(self) -> str:
        return self.id


class Notebook:
    """A state machine written to the `StateMachine` protocol alone: no raftlab base class, no queue,
    no `submit`, no `results`."""

    NOOP = Note("noop", "")

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.states: dict[str, list[TransitionState]] = {}

    def register_transition_state(self, transition_id: str, state: TransitionState) -> None:
        self.states.setdefault(transition_id, []).append(state)

    def apply_transition(self, transition: Note) -> None:
        if transition != self.NOOP:
            self.notes.append(transition.text)

    def get_pending_transitions(self) -> list[Note]:
        return []

    def get_snapshot(self) -> None:
        return None

    def create_snapshot(self, last_included_index: int, last_included_term: int) -> Snapshot:
        return Snapshot(last_included_index, last_included_term, tuple(self.notes))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.notes = list(snapshot.data)


def test_a_state_machine_written_to_the_protocol_alone_runs() -> None:
    sim = elected(3, seed=32, state_machine=Notebook)
    leader = sim.leader()
    handle = sim.submit(Note("n1", "hello"))
    assert handle.node == leader and handle.state is TransitionState.QUEUED
    sim.run_until(lambda s: len(handle.applied_on) == 3, 2.0)
    assert handle.applied_on == {0, 1, 2} and handle.index == 2
    assert handle.answer is TransitionState.APPLIED and handle.replied is not None and handle.result is None
    assert all(state is TransitionState.APPLIED for state in handle.states.values())
    for view in sim.replicas:
        assert view.machine.notes == ["hello"]
    assert sim.replicas[leader].machine.states["n1"] == [
        TransitionState.QUEUED, TransitionState.COMMITTED, TransitionState.APPLIED]
    assert [e.data["state"] for e in sim.trace.of_kind(SimKind.CLIENT_REPLY)] == ["applied"]
    # one() and rewind work for it too
    assert len(sim.one(Note("n2", "world"), k=3).applied_on) == 3
    h = sim.trace.hash()
    sim.rewind(sim.steps)
    assert sim.trace.hash() == h and all(view.machine.notes == ["hello", "world"] for view in sim.replicas)


def test_submission_to_a_follower_or_a_crashed_node_is_abandoned() -> None:
    sim = elected(5, seed=24)
    follower = (sim.leader() + 1) % 5
    handle = sim.submit(KVStore.put(1, 1, "k", "v"), to=follower)
    assert handle.node == follower
    assert handle.state is TransitionState.ABANDONED_NOT_LEADER and handle.state.abandoned
    assert sim.trace[-1].kind == SimKind.CLIENT_REPLY and sim.trace[-1].node == follower
    sim.crash(follower)
    down = sim.submit(KVStore.put(1, 2, "k", "w"), to=follower)
    assert down.state is TransitionState.ABANDONED_NOT_LEADER
    sim.run(0.5)
    assert not handle.applied_on and not down.applied_on
    assert all("k" not in r.machine.data for r in sim.replicas if not r.crashed)


def test_one_succeeds() -> None:
    sim = Simulation(5, seed=25)
    handle = sim.one(KVStore.put(1, 1, "k", "v"))
    assert len(handle.applied_on) >= 3 and handle.state is TransitionState.APPLIED
    assert sim.replicas[handle.node].machine.data == {"k": "v"}
    handle = sim.one(KVStore.put(1, 2, "k", "w"), k=5)
    assert handle.applied_on == set(range(5))


def test_one_retries_across_a_leader_change() -> None:
    sim = elected(5, seed=26)
    old = sim.leader()
    sim.disconnect(old)  # still a leader in its own eyes: the first try goes to it and is lost
    command = KVStore.append(1, 1, "k", "x")
    handle = sim.one(command, timeout=10.0, retry=1.0)
    assert handle.node != old and len(handle.applied_on) >= 3
    requests = [e.node for e in sim.trace.of_kind(SimKind.CLIENT_REQUEST) if e.data["transition"] == repr(command)]
    assert requests[0] == old and requests[-1] == handle.node and len(requests) >= 2
    sim.connect(old)
    sim.run(1.0)
    for view in sim.replicas:
        assert view.machine.data == {"k": "x"}  # applied once, though submitted twice


def test_one_times_out_without_a_majority() -> None:
    sim = elected(5, seed=27)
    leader = sim.leader()
    for node in [n for n in range(5) if n != leader][:3]:
        sim.crash(node)
    start = sim.now
    with pytest.raises(TimeoutError, match="seed 27"):
        sim.one(KVStore.put(1, 1, "k", "v"), timeout=2.0)
    assert sim.now >= start + 2.0 - 1e-9
    with pytest.raises(TimeoutError):
        sim.one(KVStore.put(1, 2, "k", "v"), k=5, timeout=1.0)


# ----- rewind ------------------------------------------------------------------------------------------


def scripted(sim: Simulation, script: list[tuple[int, Callable[[Simulation], object]]], until: int) -> None:
    """Apply the `script` (step, action) pairs whose step is below `until`, each right after that
    step, and stop after step `until`."""
    for at, action in script:
        if at >= until:
            break
        while sim.steps < at:
            assert sim.step() is not None
        action(sim)
    while sim.steps < until:
        assert sim.step() is not None


SCRIPT: list[tuple[int, Callable[[Simulation], object]]] = [
    (40, lambda s: s.submit(KVStore.put(1, 1, "a", "1"))),
    (60, lambda s: s.crash(s.leader() if s.leader() is not None else 0)),
    (61, lambda s: setattr(s.network, "drop", 0.1)),
    (120, lambda s: s.partition([0, 1])),
    (120, lambda s: s.submit(KVStore.put(1, 2, "b", "2"))),
    (200, lambda s: s.heal()),
    (200, lambda s: s.restart(next(r.id for r in s.replicas if r.crashed))),
    (230, lambda s: s.network.set_link(0, 1, latency=(0.02, 0.03))),
    (260, lambda s: s.drop_next(1, 2)),
]
END = 320


def fingerprint(sim: Simulation) -> tuple:
    frame = sim.frame()
    machines = tuple(None if r.machine is None else (dict(r.machine.data), r.machine.applied_index)
                     for r in sim.replicas)
    return (frame, sim.trace.hash(), len(sim.trace), machines, sim.now_us,
            {k: dict(v) for k, v in sim.counters.items()})


def test_rewind_to_the_end_reproduces_the_run() -> None:
    sim = Simulation(5, seed=28)
    sim.run_until(lambda s: s.leader() is not None)
    sim.one(KVStore.put(1, 1, "a", "1"))
    leader = sim.leader()
    sim.crash(leader)
    sim.network.drop = 0.1
    sim.run(0.5)
    sim.partition([0, 1])
    sim.submit(KVStore.put(1, 2, "b", "2"))
    sim.run(0.5)
    sim.heal()
    sim.restart(leader)
    sim.network.set_link(0, 1, latency=(0.02, 0.03))
    sim.run(1.0)
    before, last = fingerprint(sim), sim.trace[-1].time
    sim.rewind(sim.steps)
    after = fingerprint(sim)
    assert after[1:4] == before[1:4] and after[5] == before[5]  # trace hash, length, machines, counters
    assert dataclasses.replace(after[0], time=0) == dataclasses.replace(before[0], time=0)
    assert sim.now_us == last  # the moment after the last step


@pytest.mark.parametrize("k", [0, 1, 39, 40, 41, 60, 150, 200, 201, 290, END])
def test_rewind_equals_a_fresh_run(k: int) -> None:
    sim = Simulation(5, seed=29, checkpoint_every=50)
    scripted(sim, SCRIPT, END)
    sim.run(0.5)
    end_steps, end_hash = sim.steps, sim.trace.hash()
    sim.rewind(k)
    fresh = Simulation(5, seed=29)
    scripted(fresh, SCRIPT, k)
    assert sim.steps == fresh.steps == k
    assert fingerprint(sim) == fingerprint(fresh)
    assert [e.explain() for e in sim.trace] == [e.explain() for e in fresh.trace]
    # Stepping on replays the same history, interventions included, until something is done.
    assert sim.history_end == end_steps
    while sim.steps < end_steps and sim.step() is not None:
        pass
    assert (sim.steps, sim.trace.hash()) == (end_steps, end_hash)


def test_rewind_forks_a_new_deterministic_history() -> None:
    def fork(sim: Simulation) -> None:
        sim.crash(3)
        sim.network.duplicate = 0.5
        sim.submit(KVStore.put(9, 1, "fork", "yes"))
        sim.run(1.0)

    sim = Simulation(5, seed=30)
    scripted(sim, SCRIPT, END)
    sim.rewind(100)
    fork(sim)
    # the interventions after step 100 are not in this history (they are in branch 0): no partition, no heal,
    # no link override
    assert not [e for e in sim.trace if e.kind == SimKind.NETWORK and "partitioned" in e.explain()]
    assert sim.network.links == {}
    assert (1, 2) not in sim.submissions
    assert sim.network.duplicate == 0.5
    # the new history is itself deterministic
    again = Simulation(5, seed=30)
    scripted(again, SCRIPT, 100)
    fork(again)
    assert fingerprint(sim) == fingerprint(again)
    # and rewinding inside the new history works too
    h = sim.trace.hash()
    sim.rewind(sim.steps)
    assert sim.trace.hash() == h
    sim.rewind(110)
    again = Simulation(5, seed=30)
    scripted(again, SCRIPT, 100)
    again.crash(3)
    again.network.duplicate = 0.5
    again.submit(KVStore.put(9, 1, "fork", "yes"))
    while again.steps < 110:
        again.step()
    assert fingerprint(sim) == fingerprint(again)


def test_a_fork_keeps_the_old_history_as_a_branch_and_switching_replays_each_exactly() -> None:
    sim = Simulation(5, seed=30)
    scripted(sim, SCRIPT, END)
    sim.crash(4)  # at the head: no fork
    sim.run(0.5)
    assert len(sim.branches) == 1 and sim.branch == 0
    first_hash, first_end = sim.trace.hash(), sim.steps
    sim.rewind(100)
    sim.crash(3)  # in the past: forks
    sim.run(1.0)
    second_hash, second_end = sim.trace.hash(), sim.steps
    first, second = sim.branches
    assert (first.number, first.parent, first.end) == (0, None, first_end)
    assert (second.number, second.parent, second.forked_at, second.action, second.end) == (
        1, 0, 100, "crash(3)", second_end)
    assert "crash(3) at step 100" in str(second) and sim.branch == 1

    def replay_to_the_end() -> tuple[int, str]:
        while sim.steps < sim.history_end and sim.step() is not None:
            pass
        return sim.steps, sim.trace.hash()

    sim.switch_branch(0)
    assert sim.branch == 0 and sim.steps <= 100 and sim.history_end == first_end
    assert replay_to_the_end() == (first_end, first_hash)
    sim.switch_branch(1)
    assert sim.history_end == second_end
    assert replay_to_the_end() == (second_end, second_hash)
    assert sim.replicas[3].crashed
    # forking the fork: branch 2's parent is branch 1, and the others are untouched
    sim.rewind(150)
    sim.heal()
    assert [b.parent for b in sim.branches] == [None, 0, 1] and sim.branch == 2
    sim.switch_branch(0)
    assert replay_to_the_end() == (first_end, first_hash)
    sim.switch_branch(0)  # the branch shown: nothing happens
    assert sim.steps == first_end
    with pytest.raises(ValueError, match="number must be a branch number, 0 to 2"):
        sim.switch_branch(3)


@pytest.mark.parametrize("bad", [-1, 1.0, "3", None, True, 10**6])
def test_rewind_validates_its_argument(bad: object) -> None:
    sim = Simulation(3, seed=31)
    sim.run(0.5)
    h, steps = sim.trace.hash(), sim.steps
    with pytest.raises(ValueError, match="to_event"):
        sim.rewind(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="to_event"):
        sim.rewind(steps + 1)
    assert sim.trace.hash() == h and sim.steps == steps


# ----- process pauses, one-way partitions, the ring of majorities --------------------------------------


def node_state(sim: Simulation, node: int) -> tuple:
    """Everything of `node` that a pause must keep: persistent and volatile state, and its machine."""
    view, replica = sim.replicas[node], sim._replicas[node]
    assert replica is not None
    return (view.term, view.voted_for, view.log, view.commit_index, view.last_applied, view.role,
            replica.leader_id, replica.election_deadline, dict(view.machine.data), replica.stats.received)


def test_pause_keeps_state_and_resumes() -> None:
    sim = elected(5, seed=41)
    leader = sim.leader()
    follower = (leader + 1) % 5
    sim.one(KVStore.put(1, 1, "a", "1"), k=5)
    before, mark, paused_at = node_state(sim, follower), len(sim.trace), sim.now
    sim.pause(follower, 1.0)
    assert sim.paused_until(follower) == pytest.approx(paused_at + 1.0)
    assert sim.trace[-1].kind == SimKind.PAUSE and "paused for 1.0 s" in sim.trace[-1].explain()
    sim.one(KVStore.put(1, 2, "b", "2"))  # the others go on without it
    sim.run_until(lambda s: s.now >= paused_at + 0.9, 2.0)
    assert node_state(sim, follower) == before  # no step taken: not even its election timer fired
    waiting = [f for f in sim.in_flight() if f.destination == follower]
    assert len(waiting) > 5 and all(f.arrives == _us_of(paused_at + 1.0) for f in waiting)  # they wait for it
    assert any(f.sent < sim.now_us - 500_000 for f in waiting)
    by_sender = (SimKind.PAUSE, SimKind.DELIVER, SimKind.DROP, SimKind.DUPLICATE)  # (node: the sender)
    assert not [e for e in sim.trace[mark:] if e.node == follower and e.kind not in by_sender]
    assert not [e for e in delivered(sim, mark) if e.data["to"] == follower]
    sim.run_until(lambda s: s.paused_until(follower) is None, 1.0)
    [resumed] = sim.trace.of_kind(SimKind.RESUME)
    assert resumed.node == follower and resumed.time == _us_of(paused_at + 1.0)
    assert f"the {resumed.data['waiting']} messages that waited for it arrive now" in resumed.explain()
    sim.run(0.5)
    assert sim.replicas[follower].term == sim.replicas[leader].term == before[0]  # no election was needed
    assert sim.replicas[follower].machine.data == {"a": "1", "b": "2"}
    assert sim.replicas[follower].log == sim.replicas[leader].log


def _us_of(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000 - 1e-6)


def test_a_paused_leader_is_replaced_and_steps_down_when_it_resumes() -> None:
    sim = elected(5, seed=42)
    old = sim.leader()
    term = sim.replicas[old].term
    sim.pause(old, 2.0)
    sim.run_until(lambda s: any(r.role is Role.LEADER and r.term > term for r in s.replicas), 2.0)
    new = next(r.id for r in sim.replicas if r.role is Role.LEADER and r.term > term)
    assert sim.replicas[old].role is Role.LEADER and sim.replicas[old].term == term  # it does not know yet
    sim.one(KVStore.put(1, 1, "k", "v"), k=4)
    sim.run(2.0)
    assert sim.paused_until(old) is None
    assert sim.replicas[old].role is Role.FOLLOWER and sim.replicas[old].term > term
    assert sim.replicas[old].machine.data == sim.replicas[new].machine.data == {"k": "v"}


def test_pause_details() -> None:
    sim = elected(3, seed=43)
    node = (sim.leader() + 1) % 3
    for bad in (-1, math.inf, math.nan, True, "1"):
        with pytest.raises(ValueError, match="seconds"):
            sim.pause(node, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node"):
        sim.pause(3, 1.0)
    sim.pause(node, 5.0)
    sim.pause(node, 0.2)  # a second pause sets the end
    sim.run(0.1)
    sim.force_timeout(node)  # a paused process does not act
    assert sim.replicas[node].role is Role.FOLLOWER
    handle = sim.submit(KVStore.put(1, 1, "x", "1"), to=node)  # waits, then is refused: not the leader
    assert handle.state is None
    sim.run(0.2)
    assert sim.paused_until(node) is None and handle.state is TransitionState.ABANDONED_NOT_LEADER
    assert len(sim.trace.of_kind(SimKind.RESUME)) == 1  # the superseded end did nothing
    sim.pause(node, 0)  # resumes at once
    sim.step()
    assert sim.paused_until(node) is None and sim.trace.of_kind(SimKind.RESUME)[-1].step == sim.steps
    sim.pause(node, 5.0)
    sim.crash(node)  # a crash ends a pause
    assert sim.paused_until(node) is None
    sim.pause(node, 1.0)  # a crashed node is not paused
    assert sim.paused_until(node) is None
    sim.restart(node)
    sim.run(1.0)
    assert sim.replicas[node].role is Role.FOLLOWER and sim.replicas[node].commit_index > 0


def test_a_submission_to_a_paused_leader_is_taken_when_it_resumes() -> None:
    sim = elected(3, seed=44)
    leader = sim.leader()
    sim.pause(leader, 0.1)  # shorter than an election timeout: it stays leader
    handle = sim.submit(KVStore.put(1, 1, "x", "1"), to=leader)
    sim.run(0.05)
    assert handle.state is None
    sim.run_until(lambda s: handle.settled(3), 1.0)
    assert handle.answer is TransitionState.APPLIED and sim.leader() == leader


PAUSE_SCRIPT: list[tuple[int, Callable[[Simulation], object]]] = [
    (30, lambda s: s.submit(KVStore.put(1, 1, "a", "1"))),
    (50, lambda s: s.pause(s.leader() if s.leader() is not None else 0, 0.6)),
    (60, lambda s: s.submit(KVStore.put(1, 2, "b", "2"), to=1)),
    (90, lambda s: s.pause(3, 0.2)),
    (150, lambda s: s.ring([0, 2, 4, 1, 3])),
    (220, lambda s: s.heal()),
    (230, lambda s: s.submit(KVStore.put(1, 3, "c", "3"))),
]


@pytest.mark.parametrize("k", [0, 49, 50, 51, 95, 160, 230, 300])
def test_pause_and_ring_are_replayed_by_rewind(k: int) -> None:
    sim = Simulation(5, seed=45, checkpoint_every=40)
    scripted(sim, PAUSE_SCRIPT, 300)
    sim.run(1.0)
    assert sim.trace.of_kind(SimKind.PAUSE) and sim.trace.of_kind(SimKind.RESUME)
    end_steps, end_hash = sim.steps, sim.trace.hash()
    fresh = Simulation(5, seed=45)
    scripted(fresh, PAUSE_SCRIPT, 300)
    fresh.run(1.0)
    assert (fresh.steps, fresh.trace.hash()) == (end_steps, end_hash)  # deterministic
    sim.rewind(k)
    again = Simulation(5, seed=45)
    scripted(again, PAUSE_SCRIPT, k)
    assert fingerprint(sim) == fingerprint(again)
    assert sim.paused_until(3) == again.paused_until(3)
    while sim.steps < end_steps and sim.step() is not None:
        pass
    assert (sim.steps, sim.trace.hash()) == (end_steps, end_hash)


def reach(sim: Simulation) -> dict[int, set[int]]:
    """Whom each node can send to (itself included)."""
    cut = sim.frame().cut
    return {a: {b for b in sim.ids if a == b or (a, b) not in cut} for a in sim.ids}


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8, 9])
def test_the_ring_gives_each_node_a_different_majority(n: int) -> None:
    sim = Simulation(n, seed=46)
    order = [*range(1, n, 2), *range(0, n, 2)]
    sim.ring(order)
    seen = reach(sim)
    k = (n // 2 + 1) // 2
    assert all(len(r) == 2 * k + 1 for r in seen.values())
    assert all(n // 2 < len(r) < n for r in seen.values())  # a majority, never everyone
    assert len({frozenset(r) for r in seen.values()}) == n  # each node's is its own
    assert all((a in seen[b]) == (b in seen[a]) for a in sim.ids for b in sim.ids)  # links cut both ways
    for p, node in enumerate(order):  # its k nearest on each side of the ring
        assert seen[node] == {order[(p + d) % n] for d in range(-k, k + 1)}
    assert "ring of majorities" in sim.trace[-1].explain()


def test_the_ring_with_five_nodes_and_its_refusals() -> None:
    sim = Simulation(5, seed=47)
    sim.ring()
    assert reach(sim) == {0: {4, 0, 1}, 1: {0, 1, 2}, 2: {1, 2, 3}, 3: {2, 3, 4}, 4: {3, 4, 0}}
    with pytest.raises(ValueError, match="every node once"):
        sim.ring([0, 1, 2, 3])
    with pytest.raises(ValueError, match="every node once"):
        sim.ring([0, 1, 2, 3, 3])
    small = Simulation(3, seed=47)
    small.ring()
    assert small.frame().cut == frozenset()  # every majority of 3 in a ring is the whole ring


def write_under(sim: Simulation, seconds: float, first_seq: int) -> int:
    """Submit a write to the leader every 50 ms for `seconds`; returns the next sequence number."""
    seq = first_seq
    end = sim.now + seconds
    while sim.now < end:
        sim.submit(KVStore.put(1, seq, f"k{seq % 4}", str(seq)))
        seq += 1
        sim.run(0.05)
    return seq


def converged(sim: Simulation) -> bool:
    """Every node holds the same log end, has applied all of it, and has the same store."""
    ends = {(r.last_index, sim._storages[r.id].log.last_term, r.last_applied) for r in sim.replicas}
    datas = [dict(r.machine.data) for r in sim.replicas]
    return len(ends) == 1 and all(d == datas[0] for d in datas)


def test_the_ring_keeps_the_cluster_safe_and_it_recovers_after_the_heal() -> None:
    for seed in (48, 49, 50):
        sim = elected(5, seed=seed, snapshot_delta=5)
        sim.ring([0, 3, 1, 4, 2])
        seq = write_under(sim, 5.0, 1)  # invariants are checked at every step
        leaders = {e.node for e in sim.trace.of_kind(EventKind.BECAME_LEADER)}
        assert len(leaders) >= 2, seed  # each node sees a majority: leadership moves around the ring
        sim.heal()
        sim.one(KVStore.put(1, seq, "final", "yes"), k=5)
        sim.run(0.5)
        assert converged(sim) and sim.replicas[0].machine.data["final"] == "yes"


def test_a_one_way_partition_keeps_the_cluster_safe_and_it_recovers_after_the_heal() -> None:
    for seed in (51, 52):
        sim = elected(5, seed=seed, snapshot_delta=5)
        leader = sim.leader()
        sources = [leader, (leader + 1) % 5]
        destinations = [n for n in sim.ids if n not in sources]
        for a in sources:  # the leader's group can no longer reach the others, who still reach it
            for b in destinations:
                sim.cut(a, b)
        assert sim.frame().cut == {(a, b) for a in sources for b in destinations}
        mark = len(sim.trace)
        seq = write_under(sim, 3.0, 1)
        assert not [e for e in delivered(sim, mark) if e.node in sources and e.data["to"] in destinations]
        assert [e for e in delivered(sim, mark) if e.node in destinations and e.data["to"] in sources]
        assert any(e.node in destinations for e in sim.trace[mark:] if e.kind == EventKind.BECAME_LEADER)
        sim.heal()
        sim.one(KVStore.put(1, seq, "final", "yes"), k=5)
        sim.run(0.5)
        assert converged(sim)
