"""The trace: determinism of its hash (in one process, across processes and hash seeds), JSON Lines
save/load, an explanation for every kind of event, and rule ids from docs/raft-rules.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from raftlab.core import EventKind
from raftlab.machines import KVStore
from raftlab.sim import NetworkModel, SimKind, Simulation, Trace, TraceEvent, describe

ROOT = Path(__file__).resolve().parents[2]
RULES = set(re.findall(r"\*\*([A-Z]+(?:-[A-Z]+)+)\*\*", (ROOT / "docs" / "raft-rules.md").read_text()))
SIM_KINDS = {SimKind.SEND, SimKind.DELIVER, SimKind.DROP, SimKind.DUPLICATE, SimKind.TIMER, SimKind.CRASH,
             SimKind.RESTART, SimKind.NETWORK, SimKind.CLIENT_REQUEST, SimKind.CLIENT_REPLY}
EXPECTED_KINDS = SIM_KINDS | {*EventKind.ROLE_CHANGES, *EventKind.VOTES, EventKind.APPENDED, EventKind.TRUNCATED,
                              EventKind.COMMITTED, EventKind.APPLIED, EventKind.SNAPSHOT_TAKEN,
                              EventKind.SNAPSHOT_INSTALLED}


def scenario(seed: int) -> Simulation:
    """A short run with interventions of every sort; the same seed gives the same run."""
    sim = Simulation(5, seed=seed, network=NetworkModel(duplicate=0.05))
    sim.run_until(lambda s: s.leader() is not None)
    sim.submit(KVStore.put(1, 1, "a", "1"))
    sim.run(0.3)
    sim.crash(sim.leader() if sim.leader() is not None else 0)
    sim.network.drop = 0.05
    sim.run(0.6)
    sim.partition([0, 1], [2])
    sim.submit(KVStore.append(2, 1, "b", "x"))
    sim.run(0.5)
    sim.heal()
    sim.restart(next(r.id for r in sim.replicas if r.crashed))
    sim.network.set_link(3, 4, latency=(0.02, 0.04))
    sim.drop_next(0, 1)
    sim.run(0.8)
    return sim


def varied() -> Simulation:
    """A run in which every kind of event happens."""
    sim = Simulation(5, seed=3, snapshot_delta=6, network=NetworkModel(duplicate=0.05))
    sim.run_until(lambda s: s.leader() is not None)
    sim.one(KVStore.put(1, 1, "a", "1"), k=5)
    # an old leader and a follower keep entries that a new majority overwrites: truncation
    old = sim.leader()
    follower = (old + 1) % 5
    sim.partition([old, follower])
    sim.submit(KVStore.put(2, 1, "lost", "1"), to=old)
    sim.submit(KVStore.put(2, 2, "lost", "2"), to=old)
    sim.run(0.05)
    sim.run_until(lambda s: s.leader() not in (None, old), 5.0)
    sim.one(KVStore.put(1, 2, "b", "2"))
    sim.heal()
    sim.run(0.5)
    # a crashed follower misses enough to need the leader's snapshot
    lagging = next(n for n in range(5) if n != sim.leader())
    sim.crash(lagging)
    for k in range(10):
        sim.one(KVStore.append(3, k, "c", str(k)))
    sim.restart(lagging)
    sim.run(0.5)
    # a node cut off for long climbs terms; back, its log is behind and its votes are refused
    cut_off = next(n for n in range(5) if n != sim.leader())
    sim.disconnect(cut_off)
    sim.one(KVStore.put(4, 1, "d", "4"))
    sim.run(1.0)
    sim.connect(cut_off)
    sim.run(1.5)
    sim.submit(KVStore.put(5, 1, "e", "5"), to=cut_off if sim.leader() != cut_off else (cut_off + 1) % 5)
    sim.run(0.3)
    return sim


@pytest.fixture(scope="module")
def run() -> Simulation:
    return varied()


# ----- determinism -------------------------------------------------------------------------------------


def test_same_seed_same_hash_in_one_process() -> None:
    first, second = scenario(11), scenario(11)
    assert first.trace.hash() == second.trace.hash()
    assert len(first.trace) == len(second.trace) > 500
    assert [e.explain() for e in first.trace] == [e.explain() for e in second.trace]


def test_different_seed_different_hash() -> None:
    hashes = {scenario(seed).trace.hash() for seed in (11, 12, 13)}
    assert len(hashes) == 3


def test_hash_is_sensitive_to_interventions() -> None:
    base = Simulation(3, seed=4)
    base.run(1.0)
    other = Simulation(3, seed=4)
    other.run(0.5)
    other.drop_next(0, 1)
    other.run(0.5)
    assert base.trace.hash() != other.trace.hash()


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.sim.test_trace import scenario
sim = scenario({seed})
print(sim.trace.hash(), len(sim.trace))
"""


def in_subprocess(seed: int, hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), seed=seed)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_same_hash_in_separate_processes_and_hash_seeds() -> None:
    here = scenario(11)
    expected = f"{here.trace.hash()} {len(here.trace)}"
    outputs = [in_subprocess(11, "0"), in_subprocess(11, "12345"), in_subprocess(11, "random")]
    assert outputs == [expected] * 3
    assert in_subprocess(12, "1") != expected


# ----- save and load -----------------------------------------------------------------------------------


def test_save_load_round_trip(run: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    run.trace.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(run.trace)
    loaded = Trace.load(path)
    assert len(loaded) == len(run.trace)
    assert loaded.hash() == run.trace.hash()
    assert loaded.explain() == run.trace.explain()
    assert loaded.explain(last=7) == run.trace.explain(last=7)
    assert [e.kind for e in loaded] == [e.kind for e in run.trace]
    assert all(isinstance(e, TraceEvent) for e in loaded)
    # and again: a loaded trace saves to the same file
    again = tmp_path / "again.jsonl"
    loaded.save(again)
    assert again.read_bytes() == path.read_bytes()


def test_load_skips_blank_lines(tmp_path: Path) -> None:
    sim = scenario(11)
    path = tmp_path / "t.jsonl"
    sim.trace.save(path)
    path.write_text(path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert Trace.load(path).hash() == sim.trace.hash()


def test_kinds_are_the_strings_a_saved_trace_holds() -> None:
    # The constants are the trace format (and enter every hash): each kind keeps its string.
    def named(kinds: type) -> dict[str, str]:
        return {name: value for name, value in vars(kinds).items() if name.isupper() and isinstance(value, str)}

    assert named(SimKind) == {name.upper(): name for name in (
        "send", "deliver", "drop", "duplicate", "timer", "crash", "restart", "pause", "resume", "network",
        "client_request", "client_reply", "read_request", "read_reply", "transfer", "clock", "membership",
        "removed")}
    assert set(named(SimKind).values()).isdisjoint(named(EventKind).values())
    assert SimKind.CLIENT == (SimKind.CLIENT_REQUEST, SimKind.CLIENT_REPLY)


# ----- explanations ------------------------------------------------------------------------------------


def generic(event: TraceEvent) -> bool:
    text = event.explain().split("] ", 1)[1]
    return text.startswith(f"node {event.node}: {event.kind} ")


def test_every_kind_of_event_occurs_and_is_explained(run: Simulation, tmp_path: Path) -> None:
    kinds = {e.kind for e in run.trace}
    assert kinds >= EXPECTED_KINDS, f"missing: {EXPECTED_KINDS - kinds}"
    path = tmp_path / "t.jsonl"
    run.trace.save(path)
    for trace in (run.trace, Trace.load(path)):  # message objects, and their JSON dicts
        for event in trace:
            text = event.explain()
            assert re.match(r"^\[ *\d+\.\d{4}s\] \S", text), text
            assert not generic(event), text
            if event.kind not in SIM_KINDS:  # every detail a replica's sentence needs is there
                assert "None" not in text, text
            assert text.endswith("."), text
    network = [e.explain() for e in run.trace.of_kind(SimKind.NETWORK)]
    assert any("partitioned" in t for t in network) and any("healed" in t for t in network)


def test_explanations_name_what_happened(run: Simulation) -> None:
    first = {}
    for event in run.trace:
        first.setdefault(event.kind, event)
    leader = first[EventKind.BECAME_LEADER]
    assert f"node {leader.node} won the election of term {leader.data['term']}" in leader.explain()
    send = first[SimKind.SEND]
    assert f"node {send.node} sent" in send.explain() and f"to node {send.data['to']}" in send.explain()
    drop = first[SimKind.DROP]
    assert drop.data["why"] in drop.explain()
    crash = first[SimKind.CRASH]
    assert f"node {crash.node} crashed" in crash.explain()
    truncated = first[EventKind.TRUNCATED]
    assert f"deleted {truncated.data['count']} conflicting entries" in truncated.explain()
    installed = first[EventKind.SNAPSHOT_INSTALLED]
    assert f"up to index {installed.data['index']}" in installed.explain()


def test_refused_vote_says_which_log_was_behind(run: Simulation) -> None:
    refused = run.trace.of_kind(EventKind.VOTE_REFUSED)
    by_log = [e for e in refused if "log" in e.data["why"]]
    assert by_log, "the run has no vote refused for an out-of-date log"
    for event in by_log:
        text = event.explain()
        assert "behind" in text
        assert f"refused its vote to node {event.data['candidate']}" in text
        assert re.search(r"its log \(last term \d+, index \d+\) is behind mine \(last term \d+, index \d+\)", text)
    for event in refused:
        assert event.data["why"] in event.explain()


def test_rule_ids(run: Simulation) -> None:
    assert {"ALL-TERM", "C-START", "L-COMMIT", "AE-CHECK", "RV-GRANT", "IS-LOAD", "SNAP-TAKE"} <= RULES
    for event in run.trace:
        assert event.rule in RULES | {"SIM", "INPUT"}, event
        if event.kind in SIM_KINDS:
            assert event.rule == "SIM", event
        elif event.kind == EventKind.MESSAGE_DROPPED:
            assert event.rule == "INPUT", event
        else:
            assert event.rule in RULES, event  # a replica's own event names its Raft rule
    used = {e.rule for e in run.trace}
    assert {"C-START", "C-WIN", "RV-GRANT", "AE-APPEND", "AE-TRUNCATE", "L-COMMIT", "AE-COMMIT", "ALL-APPLY",
            "SNAP-TAKE", "IS-LOAD", "L-NOOP", "L-APPEND", "ALL-TERM"} <= used


def test_replica_events_carry_their_term(run: Simulation) -> None:
    for event in run.trace:
        if event.kind not in SIM_KINDS:
            assert isinstance(event.data["term"], int) and event.data["term"] >= 1, event
            assert event.node in range(5)


# ----- the thesis's mechanisms: PreVote, CheckQuorum, leadership transfer, reads ----------------------

THESIS_SIM_KINDS = {SimKind.READ_REQUEST, SimKind.READ_REPLY, SimKind.TRANSFER, SimKind.CLOCK}
THESIS_KINDS = THESIS_SIM_KINDS | {
    EventKind.PRE_VOTE_STARTED, EventKind.PRE_VOTE_WON, EventKind.VOTE_IGNORED, EventKind.TRANSFER_STARTED,
    EventKind.TIMEOUT_NOW_SENT, EventKind.TRANSFER_ABORTED, EventKind.READ_READY, EventKind.READ_ABANDONED,
    EventKind.READ_CONFIRMED}
THESIS_RULES = {"PV-ASK", "PV-GRANT", "PV-WIN", "CQ-STEPDOWN", "CQ-STICKY", "LT-STOP", "LT-TIMEOUTNOW", "LT-ABORT",
                "RI-SERVE"}
THESIS_MESSAGES = {"PreVoteRequest", "PreVoteResponse", "TimeoutNow", "ReadIndexRequest", "ReadIndexResponse"}


def thesis() -> Simulation:
    """A run with PreVote, CheckQuorum and lease reads on, in which every new kind of event happens."""
    sim = Simulation(5, seed=2, pre_vote=True, check_quorum=True, read_lease=True)
    sim.run_until(lambda s: s.leader() is not None)  # pre-votes, then the election
    sim.one(KVStore.put(1, 1, "a", "1"))
    leader = sim.leader()
    follower = (leader + 1) % 5
    sim.read("a")  # at the leader, in its lease
    sim.read("a", to=follower)  # at a follower: ReadIndex messages
    sim.run(0.2)
    sim.set_clock_rate(follower, 1.05)
    sim.transfer_leadership(follower)  # TimeoutNow, a transfer's election
    sim.run_until(lambda s: s.leader() == follower, 2.0)
    target = (follower + 2) % 5
    sim.disconnect(target)
    sim.transfer_leadership(target)  # it cannot hear: the transfer is aborted
    sim.run(0.5)
    sim.connect(target)
    sim.run(0.5)
    # The leader's messages to three followers are cut (one way): they pre-vote and elect one of them; the
    # fourth still hears the leader and ignores the VoteRequest; the old leader hears no majority and steps down.
    leader = sim.leader()
    others = [n for n in range(5) if n != leader]
    for n in others[1:]:
        sim.cut(leader, n)
    sim.run(1.0)
    sim.heal()
    sim.run(0.5)
    # A leader cut off from everyone steps down; a read asked of it then is abandoned.
    leader = sim.leader()
    sim.disconnect(leader)
    sim.run(0.6)
    sim.read("a", to=leader)
    sim.connect(leader)
    sim.run(0.5)
    return sim


@pytest.fixture(scope="module")
def thesis_run() -> Simulation:
    return thesis()


def test_every_kind_of_the_thesis_occurs_and_is_explained(thesis_run: Simulation, tmp_path: Path) -> None:
    trace = thesis_run.trace
    kinds = {e.kind for e in trace}
    assert kinds >= THESIS_KINDS, f"missing: {THESIS_KINDS - kinds}"
    assert {e.rule for e in trace} >= THESIS_RULES, f"missing: {THESIS_RULES - {e.rule for e in trace}}"
    sent = {type(e.data["message"]).__name__ for e in trace.of_kind(SimKind.SEND)}
    assert sent >= THESIS_MESSAGES, f"missing: {THESIS_MESSAGES - sent}"
    assert any(e.data["message"].transfer for e in trace.of_kind(SimKind.SEND)
               if type(e.data["message"]).__name__ == "VoteRequest")
    path = tmp_path / "thesis.jsonl"
    trace.save(path)
    loaded = Trace.load(path)
    assert loaded.hash() == trace.hash() and loaded.explain() == trace.explain()
    for saved in (trace, loaded):  # message objects, and their JSON dicts
        for event in saved:
            text = event.explain()
            assert re.match(r"^\[ *\d+\.\d{4}s\] \S", text), text
            assert not generic(event), text
            assert text.endswith("."), text
            if event.kind not in SIM_KINDS | THESIS_SIM_KINDS:
                assert "None" not in text, text
            if event.kind in (SimKind.SEND, SimKind.DELIVER, SimKind.DROP):  # described, not only named
                message = event.data["message"]
                assert isinstance(message, dict) == (saved is loaded)
                name = message["type"] if isinstance(message, dict) else type(message).__name__
                assert describe(message) != name and f"{describe(message)} " in text, text


def explained(trace: Trace, kind: str, rule: str | None = None) -> list[str]:
    return [e.explain() for e in trace if e.kind == kind and (rule is None or e.rule == rule)]


def test_thesis_sentences_say_what_and_why(thesis_run: Simulation) -> None:
    trace = thesis_run.trace
    first = {}
    for event in trace:
        first.setdefault((event.kind, event.rule), event)
    asked = first[(EventKind.PRE_VOTE_STARTED, "PV-ASK")]
    assert (f"node {asked.node} heard from no leader in time and asked for pre-votes for term "
            f"{asked.data['for_term']}: that changes nothing (its term stays {asked.data['term']}) until a majority "
            f"says yes (PV-ASK).") in asked.explain()
    won = first[(EventKind.PRE_VOTE_WON, "PV-WIN")]
    assert (f"won the pre-vote for term {won.data['term'] + 1} with pre-votes from {won.data['pre_votes']}"
            in won.explain())
    granted = first[(EventKind.VOTE_GRANTED, "PV-GRANT")]
    assert f"node {granted.node} granted a pre-vote to node {granted.data['candidate']}" in granted.explain()
    assert "changes neither its term" in granted.explain()
    refused = first[(EventKind.VOTE_REFUSED, "PV-GRANT")]
    assert f"refused a pre-vote to node {refused.data['candidate']}: {refused.data['why']}" in refused.explain()
    ignored = first[(EventKind.VOTE_IGNORED, "CQ-STICKY")]
    assert (f"node {ignored.node} ignored node {ignored.data['candidate']}'s VoteRequest, keeping its term "
            f"{ignored.data['term']} and its vote: a current leader (") in ignored.explain()
    assert ignored.explain().endswith("within the minimum election timeout (CQ-STICKY).")
    down = first[(EventKind.BECAME_FOLLOWER, "CQ-STEPDOWN")]
    assert f"node {down.node} stepped down as leader: no majority answered within 0.15 s" in down.explain()
    assert down.explain().endswith("(CQ-STEPDOWN).")
    start = first[(EventKind.TRANSFER_STARTED, "LT-STOP")]
    assert f"node {start.node} began handing its leadership to node {start.data['to']}" in start.explain()
    now = first[(EventKind.TIMEOUT_NOW_SENT, "LT-TIMEOUTNOW")]
    assert f"node {now.node} sent TimeoutNow to node {now.data['to']}" in now.explain()
    abort = first[(EventKind.TRANSFER_ABORTED, "LT-ABORT")]
    assert f"gave up handing its leadership to node {abort.data['to']}" in abort.explain()
    assert re.search(r"node \d may answer read #1 now: .* linearizable \(RI-SERVE\)\.$",
                     first[(EventKind.READ_READY, "RI-SERVE")].explain())
    confirmed = next(e for (k, _), e in first.items() if k == EventKind.READ_CONFIRMED)
    assert re.search(r"gave a read the read index \d+: .*\((RI-CONFIRM|RI-LEASE)\)\.$", confirmed.explain())
    assert "abandoned read #3: no leader confirmed it" in first[(EventKind.READ_ABANDONED, "RI-SERVE")].explain()
    replies = explained(trace, SimKind.READ_REPLY)
    assert replies[0].endswith("answered the client's read: 'a' is '1'.") and "could not answer" in replies[-1]
    assert "for a linearizable read of 'a'" in explained(trace, SimKind.READ_REQUEST)[0]
    assert "to hand its leadership to node" in explained(trace, SimKind.TRANSFER)[0]
    assert "clock now runs at 1.05 times the real rate (5 % fast)" in explained(trace, SimKind.CLOCK)[0]


def test_thesis_messages_are_described(thesis_run: Simulation) -> None:
    seen: dict[str, str] = {}
    for event in thesis_run.trace.of_kind(SimKind.SEND):
        message = event.data["message"]
        name = type(message).__name__
        text = describe(message)
        assert describe(TraceEvent.from_json(event.to_json()).data["message"]) == text  # a loaded one too
        if name == "VoteRequest" and message.transfer:
            name = "VoteRequest (transfer)"
        seen.setdefault(name, text)
    assert re.fullmatch(r"PreVoteRequest \(for term \d+, last log \d+/term \d+\)", seen["PreVoteRequest"])
    assert re.fullmatch(r"pre-vote (granted \(for term \d+\)|refused \(the voter's term \d+\))",
                        seen["PreVoteResponse"])
    assert re.fullmatch(r"TimeoutNow \(term \d+: start an election at once\)", seen["TimeoutNow"])
    assert re.fullmatch(r"ReadIndex request #\d+ \(term \d+\)", seen["ReadIndexRequest"])
    assert re.fullmatch(r"ReadIndex reply #\d+ \(term \d+, (read index \d+|refused: not the leader)\)",
                        seen["ReadIndexResponse"])
    assert seen["VoteRequest (transfer)"].endswith(", for a leadership transfer)")
    assert "transfer" not in seen["VoteRequest"]


def test_a_transfers_election_is_explained_as_one() -> None:
    # The core marks the C-START of a transfer's election with transfer=True when it says so.
    event = TraceEvent(1, 100, EventKind.BECAME_CANDIDATE, 2, "C-START", {"term": 3, "transfer": True})
    assert "node 2 became a candidate in term 3 at once: the leader handed it the leadership" in event.explain()
    plain = TraceEvent(1, 100, EventKind.BECAME_CANDIDATE, 2, "C-START", {"term": 3})
    assert "node 2 heard from no leader in time and became a candidate in term 3." in plain.explain()


def test_old_traces_still_describe_their_messages() -> None:
    # A VoteRequest saved before the transfer field existed, and a message saved as its repr.
    old = {"type": "VoteRequest", "from_id": 1, "term": 2, "last_log_index": 3, "last_log_term": 1}
    assert describe(old) == "VoteRequest (term 2, last log 3/term 1)"
    assert describe("Mystery(from_id=1)") == "Mystery(from_id=1)"


def test_thesis_rule_ids(thesis_run: Simulation) -> None:
    assert THESIS_RULES <= RULES
    for event in thesis_run.trace:
        if event.kind in SIM_KINDS | THESIS_SIM_KINDS:
            assert event.rule == "SIM", event
        elif event.kind != EventKind.MESSAGE_DROPPED:
            assert event.rule in RULES, event
