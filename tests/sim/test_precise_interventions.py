"""The interventions a model checker replays its counterexamples with, message by message:
`deliver_message`, `duplicate_message` and `drop_message` (by `InFlight.id`) and `force_heartbeat`;
their replay by `rewind`; and their transcript commands (deliver-msg, duplicate-msg, drop-msg,
heartbeat)."""

from __future__ import annotations

import pytest

from raftlab.core import AppendEntryRequest, Role, VoteRequest, VoteResponse
from raftlab.machines import Counter
from raftlab.sim import NetworkModel, SimKind, Simulation
from raftlab.sim.simulation import InFlight
from raftlab.sim.trace import TraceEvent
from raftlab.sim.transcript import TranscriptError, run_transcript

# ----- helpers ---------------------------------------------------------------------------------------


def still(checkpoint_every: int = 5000) -> Simulation:
    """A cluster in which no message arrives by itself (the latency is 100000 s): each is delivered by id."""
    return Simulation(3, seed=1, network=NetworkModel(latency=(100000.0, 100000.0)), heartbeat_timeout=1.0,
                      election_timeout=(2.0, 3.0), state_machine=Counter, checkpoint_every=checkpoint_every)


def flight(sim: Simulation, source: int, destination: int, kind: type) -> InFlight:
    """The one message of type `kind` in flight from `source` to `destination`."""
    [found] = [f for f in sim.in_flight()
               if (f.source, f.destination) == (source, destination) and type(f.message) is kind]
    return found


def deliveries(sim: Simulation, since: int = 0) -> list[TraceEvent]:
    return [e for e in sim.trace[since:] if e.kind == SimKind.DELIVER]


def deliver_all(sim: Simulation) -> None:
    """Deliver every message by id, the latest first, until none is in flight."""
    while sim.in_flight():
        sim.deliver_message(max(f.id for f in sim.in_flight()))


def elect(sim: Simulation) -> None:
    """Node 0 leads term 1: its vote requests and the replies are delivered by hand."""
    sim.force_timeout(0)
    deliver_all(sim)
    assert sim.leader() == 0 and sim.steps == 0


# ----- deliver_message ---------------------------------------------------------------------------------


def test_deliver_message_delivers_the_later_of_two_first_now() -> None:
    sim = Simulation(3, seed=1)
    sim.force_timeout(0)
    first, later = sim.in_flight()
    assert first.arrives < later.arrives and sim.now_us == 0
    event = sim.deliver_message(later.id)
    assert event is not None and event.kind == SimKind.DELIVER
    assert (event.node, event.data["to"], event.data["id"], event.time) == (later.source, later.destination,
                                                                            later.id, 0)
    assert event.explain() == f"[  0.0000s] node {later.destination} received VoteRequest (term 1, last log " \
                              f"0/term 0) from node 0."
    assert sim.now_us == 0 and sim.steps == 0  # an intervention: the clock stays, no step is taken
    assert sim.replicas[later.destination].voted_for == 0 and sim.replicas[first.destination].voted_for is None
    assert sorted(f.id for f in sim.in_flight()) == [first.id, later.id + 1]  # the earlier one, the vote back
    sim.run(0.1)
    assert [e.data["id"] for e in deliveries(sim)].count(later.id) == 1  # not delivered again at its time
    assert sim.leader() == 0


def test_deliver_message_follows_the_rules_of_an_arrival() -> None:
    sim = still()
    sim.crash(2)
    sim.force_timeout(0)
    to_1, to_2 = flight(sim, 0, 1, VoteRequest), flight(sim, 0, 2, VoteRequest)
    lost = sim.deliver_message(to_2.id)  # sent to a node that is down
    assert lost is not None and lost.kind == SimKind.DROP and lost.data["why"] == "its receiver crashed"
    sim.cut(0, 1)
    lost = sim.deliver_message(to_1.id)
    assert lost is not None and lost.data["why"] == "the link was cut while it travelled"
    assert not sim.in_flight() and sim.replicas[1].voted_for is None


def test_deliver_message_to_a_paused_node_waits_for_it() -> None:
    sim = Simulation(3, seed=1)
    sim.force_timeout(0)
    message = flight(sim, 0, 1, VoteRequest)
    sim.pause(1, 0.5)
    assert sim.deliver_message(message.id) is None  # as any message arriving now: it waits
    assert sim.deliver_message(message.id) is None  # (and waits once)
    [waiting] = [f for f in sim.in_flight() if f.id == message.id]
    assert waiting.arrives == 500_000 and sim.replicas[1].voted_for is None
    sim.run(0.6)
    [delivered] = [e for e in deliveries(sim) if e.data["id"] == message.id]
    assert delivered.time == 500_000  # when node 1 resumed


def test_unknown_ids_are_refused_and_not_logged() -> None:
    sim = still()
    sim.force_timeout(0)
    message = sim.in_flight()[0]
    sim.deliver_message(message.id)
    logged, length = len(sim.history.interventions), len(sim.trace)
    for action in (sim.deliver_message, sim.duplicate_message, sim.drop_message):
        for unknown in (message.id, 99):  # delivered already; never sent
            with pytest.raises(ValueError, match=f"^no message {unknown} is in flight$"):
                action(unknown)
    assert len(sim.history.interventions) == logged and len(sim.trace) == length


# ----- duplicate_message and drop_message ------------------------------------------------------------------


def test_a_duplicate_arrives_twice_and_the_receiver_handles_the_copy() -> None:
    sim = still()
    sim.force_timeout(0)
    original = flight(sim, 0, 1, VoteRequest)
    copy_id = sim.duplicate_message(original.id)
    [copy] = [f for f in sim.in_flight() if f.id == copy_id]
    assert copy_id not in (f.id for f in sim.in_flight() if f is not copy) and copy_id > original.id
    assert copy == original._replace(id=copy_id, copy=True)  # the same message, due when the original is
    duplicated = sim.trace[-1]
    assert (duplicated.kind, duplicated.data["id"], duplicated.data["by_hand"]) == (SimKind.DUPLICATE, copy_id, True)
    assert duplicated.explain() == "[  0.0000s] VoteRequest (term 1, last log 0/term 0) from node 0 to node 1 " \
                                   "was duplicated by hand."
    assert sim.deliver_message(copy_id) is not None  # the copy first
    assert sim.deliver_message(original.id) is not None
    assert [e.data["id"] for e in deliveries(sim)] == [copy_id, original.id]
    replies = [f for f in sim.in_flight() if isinstance(f.message, VoteResponse)]
    assert [(f.source, f.message.vote_granted) for f in replies] == [(1, True), (1, True)]  # RV-GRANT, again


def test_a_duplicate_arrives_right_after_the_original_when_stepping() -> None:
    sim = Simulation(3, seed=1)
    sim.force_timeout(0)
    original = flight(sim, 0, 2, VoteRequest)
    copy_id = sim.duplicate_message(original.id)
    sim.run(0.2)
    ids = [e.data["id"] for e in deliveries(sim)]
    assert ids.index(copy_id) == ids.index(original.id) + 1
    assert [e.time for e in deliveries(sim) if e.data["id"] in (copy_id, original.id)] == [original.arrives] * 2


def test_drop_message_loses_the_later_of_two() -> None:
    sim = still()
    sim.force_timeout(0)
    first, later = sim.in_flight()
    sim.drop_message(later.id)
    assert sim.trace[-1].explain().endswith("was lost: it was dropped by hand.")
    assert sim.in_flight() == [first]


# ----- force_heartbeat ------------------------------------------------------------------------------------


def test_a_forced_heartbeat_reaches_every_follower() -> None:
    sim = still()
    elect(sim)
    assert sim.step().data["which"] == "heartbeat"  # type: ignore[union-attr]  # the first, at 1 s
    deliver_all(sim)
    sim.run(0.5)
    assert sim.now_us == 1_500_000 and not sim.in_flight()
    start = len(sim.trace)
    sim.force_heartbeat(0)
    timer = sim.trace[start]
    assert (timer.kind, timer.node, timer.data["which"], timer.time) == (SimKind.TIMER, 0, "heartbeat (forced)",
                                                                         1_500_000)
    assert timer.explain() == "[  1.5000s] node 0's heartbeat (forced) timer fired."
    assert sorted(f.destination for f in sim.in_flight() if isinstance(f.message, AppendEntryRequest)) == [1, 2]
    assert sim.now_us == 1_500_000 and sim.steps == 1  # the clock stays
    deliver_all(sim)
    assert {e.data["to"] for e in deliveries(sim, start) if isinstance(e.data["message"], AppendEntryRequest)} \
        == {1, 2}
    assert all(sim.replicas[i].role is Role.FOLLOWER and sim.replicas[i].commit_index == 1 for i in (1, 2))
    after = sim.step()  # the next heartbeat counts from the forced one
    assert after is not None and (after.kind, after.data["which"], after.time) == (SimKind.TIMER, "heartbeat",
                                                                                   2_500_000)


def test_force_heartbeat_does_nothing_unless_on_a_live_unpaused_leader() -> None:
    sim = still()
    elect(sim)
    deliver_all(sim)
    length = len(sim.trace)
    sim.force_heartbeat(1)  # a follower
    sim.pause(0, 1.0)
    sim.force_heartbeat(0)  # paused
    sim.crash(2)
    sim.force_heartbeat(2)  # down
    assert [e.kind for e in sim.trace[length:]] == [SimKind.PAUSE, SimKind.CRASH]
    assert not sim.in_flight()
    with pytest.raises(ValueError, match="node must be one of"):
        sim.force_heartbeat(7)


# ----- rewind ------------------------------------------------------------------------------------------


def script(sim: Simulation) -> None:
    """Every precise intervention, between a few steps (the leader's heartbeat timers)."""
    sim.force_timeout(0)
    sim.deliver_message(flight(sim, 0, 2, VoteRequest).id)  # the later one first
    sim.duplicate_message(flight(sim, 2, 0, VoteResponse).id)
    deliver_all(sim)
    assert sim.step() is not None  # a heartbeat timer: step 1
    sim.drop_message(flight(sim, 0, 1, AppendEntryRequest).id)
    sim.duplicate_message(flight(sim, 0, 2, AppendEntryRequest).id)
    deliver_all(sim)
    assert sim.step() is not None  # step 2
    sim.force_heartbeat(0)
    deliver_all(sim)
    assert sim.step() is not None  # step 3


@pytest.mark.parametrize("checkpoint_every", [1, 5000])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rewind_replays_the_precise_interventions(k: int, checkpoint_every: int) -> None:
    sim = still(checkpoint_every=checkpoint_every)
    script(sim)
    assert sim.steps == 3 and all(sim.replicas[i].commit_index == 1 for i in (0, 1, 2))
    events, digest = [e.to_json() for e in sim.trace], sim.trace.hash()
    sim.rewind(k)
    assert sim.steps == k and [e.to_json() for e in sim.trace] == events[:len(sim.trace)]
    while sim.steps < 3:
        assert sim.step() is not None
    assert sim.trace.hash() == digest
    fresh = still()
    script(fresh)
    assert fresh.trace.hash() == digest


# ----- transcript commands ---------------------------------------------------------------------------------

TRANSCRIPT = """\
# Node 0 is elected message by message, the later vote request first; a vote is duplicated and the
# copy arrives before the original; a forced heartbeat is dropped on its way to node 1.

sim n=3 seed=1 machine=counter latency=100000,100000 heartbeat=1 election=2,3
----
3 nodes (0-2), seed 1, counter; election timeout 2.000-3.000s, heartbeat 1.000s
network: latency 100000.000-100000.000s, drop 0, duplicate 0

timeout 0
----
[  0.0000s] node 0's election (forced) timer fired.
[  0.0000s] node 0 heard from no leader in time and became a candidate in term 1.

in-flight
----
[100000.0000s] message 1, node 0 -> node 1: VoteRequest (term 1, last log 0/term 0)
[100000.0000s] message 2, node 0 -> node 2: VoteRequest (term 1, last log 0/term 0)

deliver-msg 2
----
[  0.0000s] node 2 received VoteRequest (term 1, last log 0/term 0) from node 0.
[  0.0000s] node 2 became a follower in term 1: saw term 1 from 0.
[  0.0000s] node 2 granted its vote to node 0 in term 1: its log is at least as up to date as mine.
[  0.0000s] node 2 sent vote granted (term 1) to node 0.

deliver-msg 1
----
[  0.0000s] node 1 received VoteRequest (term 1, last log 0/term 0) from node 0.
[  0.0000s] node 1 became a follower in term 1: saw term 1 from 0.
[  0.0000s] node 1 granted its vote to node 0 in term 1: its log is at least as up to date as mine.
[  0.0000s] node 1 sent vote granted (term 1) to node 0.

duplicate-msg 3
----
[  0.0000s] vote granted (term 1) from node 2 to node 0 was duplicated by hand.
message 5 is a copy of message 3

deliver-msg 5
----
[  0.0000s] node 0 received vote granted (term 1) from node 2.
[  0.0000s] node 0 won the election of term 1 with votes from [0, 2].
[  0.0000s] node 0 appended entry 1 (its no-op as new leader).
[  0.0000s] node 0 sent AppendEntries (term 1, 1 entry after index 0, commit 0) to node 1.
[  0.0000s] node 0 sent AppendEntries (term 1, 1 entry after index 0, commit 0) to node 2.

deliver-msg 3
----
[  0.0000s] node 0 received vote granted (term 1) from node 2.

check leader=0 term=1 vote=0 on=all
----
ok

heartbeat 0 1 show=send
----
[  0.0000s] node 0's heartbeat (forced) timer fired.
[  0.0000s] node 0 sent AppendEntries (term 1, heartbeat after index 0, commit 0) to node 1.
[  0.0000s] node 0 sent AppendEntries (term 1, heartbeat after index 0, commit 0) to node 2.

in-flight
----
[100000.0000s] message 4, node 1 -> node 0: vote granted (term 1)
[100000.0000s] message 6, node 0 -> node 1: AppendEntries (term 1, 1 entry after index 0, commit 0)
[100000.0000s] message 7, node 0 -> node 2: AppendEntries (term 1, 1 entry after index 0, commit 0)
[100000.0000s] message 8, node 0 -> node 1: AppendEntries (term 1, heartbeat after index 0, commit 0)
[100000.0000s] message 9, node 0 -> node 2: AppendEntries (term 1, heartbeat after index 0, commit 0)

drop-msg 8
----
[  0.0000s] AppendEntries (term 1, heartbeat after index 0, commit 0) from node 0 to node 1 was lost: it was dropped by hand.

deliver-msg 9
----
[  0.0000s] node 2 received AppendEntries (term 1, heartbeat after index 0, commit 0) from node 0.
[  0.0000s] node 2 sent AppendEntries reply (term 1, matched up to 0) to node 0.

check last-index=0 on=1,2
----
ok
"""  # noqa: E501 (the outputs are as printed)


def test_a_transcript_of_the_precise_commands_runs_clean() -> None:
    result = run_transcript(TRANSCRIPT)
    assert result.ok, result.diff()
    sim = result.sim
    assert sim is not None and sorted(f.id for f in sim.in_flight()) == [4, 6, 7, 10]
    assert sum(1 for i in sim.history.interventions if i[2] == "deliver_message") == 5
    # The transcript's interventions, all made before the first step, replay when stepping on from 0.
    sim.rewind(0)
    assert not sim.in_flight()
    assert sim.step() is not None
    fresh = run_transcript(TRANSCRIPT).sim
    assert fresh is not None and fresh.step() is not None
    assert sim.trace.hash() == fresh.trace.hash()


@pytest.mark.parametrize("command, error", [
    ("deliver-msg 99", "`deliver-msg 99` raised ValueError: no message 99 is in flight"),
    ("duplicate-msg 99", "`duplicate-msg 99` raised ValueError: no message 99 is in flight"),
    ("drop-msg 99", "`drop-msg 99` raised ValueError: no message 99 is in flight"),
    ("deliver-msg x", "message id must be an integer, not 'x'; usage: deliver-msg M"),
    ("duplicate-msg 0", "message id must be at least 1, not 0; usage: duplicate-msg M"),
    ("drop-msg 1 2", "wrong number of arguments for 'drop-msg'; usage: drop-msg M"),
    ("heartbeat 5", "node 5 does not exist: the nodes are 0-2"),
])
def test_the_precise_commands_name_what_is_wrong(command: str, error: str) -> None:
    with pytest.raises(TranscriptError, match=r"^<transcript>:3: ") as caught:
        run_transcript(f"sim n=3 seed=1\n\n{command}\n")
    assert caught.value.message == error
