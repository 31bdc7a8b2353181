"""A shared run (raftlab.sim.share): a short text that replays a run exactly, and refuses anything else."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest

import raftlab.sim
from raftlab.core import Configuration, Replica
from raftlab.machines import Add, Counter, KVStore
from raftlab.sim import NetworkModel, Simulation
from raftlab.sim import recipes
from raftlab.sim.share import (INTERVENTIONS, MAX_NODES, MAX_STEPS, PREFIX, from_shared, needs_replica_class, share,
                               shared_replica_class)
from raftlab.sim.transcript import TRANSCRIPTS, load_scenario


def busy_run() -> Simulation:
    """A run with every kind of value a shared run carries: options, a link override, a client command,
    a partition, a change of the network, a message dropped by hand, and a membership change."""
    sim = Simulation(n=5, seed=7, network=NetworkModel(drop=0.05), pre_vote=True, snapshot_delta=4)
    sim.network.set_link(0, 1, latency=(0.02, 0.03))
    sim.run(1.0)
    sim.submit(KVStore.put(1, 1, "a", "1"))
    sim.crash(sim.leader())
    sim.partition([0, 1], [2, 3, 4])
    sim.run(0.6)
    sim.network.duplicate = 0.1
    sim.heal()
    while not sim.in_flight():
        sim.step()
    sim.drop_message(sim.in_flight()[0].id)
    sim.run(0.5)
    sim.submit(Configuration.of({0, 1, 2, 3, 4}))
    sim.run(0.5)
    return sim


def replay_to_the_end(sim: Simulation) -> tuple[int, str]:
    while sim.steps < sim.history_end and sim.step() is not None:
        pass
    return sim.steps, sim.trace.hash()


def test_a_shared_run_replays_exactly_from_where_it_was_shared_to_the_end_of_its_branch() -> None:
    sim = busy_run()
    end, end_hash = sim.steps, sim.trace.hash()
    sim.rewind(end // 2)
    text = share(sim)
    assert text.startswith(PREFIX) and len(text) < 2000
    assert share(sim) == text  # the same run, the same text
    again = from_shared(text)
    assert (again.steps, again.trace.hash()) == (sim.steps, sim.trace.hash())
    assert (again.n, again.seed, again.options, again.snapshot_delta) == (5, 7, {"pre_vote": True}, 4)
    assert again.history_end == end
    assert replay_to_the_end(again) == (end, end_hash)


def test_a_shared_counter_run_and_a_raftlab_replica_class_come_back_as_they_were() -> None:
    from raftlab.grading.mutants import MUTANTS

    mutant = MUTANTS[0]
    sim = Simulation(n=3, seed=3, state_machine=Counter, replica_class=mutant)
    sim.run(0.8)
    sim.submit(Add("add", 5))
    sim.run(0.5)
    again = from_shared(share(sim))
    assert again.state_machine is Counter and again.replica_class is mutant
    assert again.trace.hash() == sim.trace.hash()


class Mine(Replica):
    """A student's replica: outside raftlab, so a shared run names it and needs it passed back."""


def test_a_replica_class_outside_raftlab_is_never_imported_and_must_be_passed() -> None:
    sim = Simulation(n=3, seed=5, replica_class=Mine)
    sim.run(0.6)
    text = share(sim)
    with pytest.raises(ValueError, match="outside raftlab: pass it as replica_class"):
        from_shared(text)
    assert from_shared(text, replica_class=Mine).trace.hash() == sim.trace.hash()
    with pytest.raises(ValueError, match=r"replica class .*Mine, not .*_Different"):
        from_shared(text, replica_class=_Different)  # another class than the one the run names
    _Same = type("Mine", (Replica,), {"__qualname__": "Mine", "__module__": __name__, "grant_vote": _no_vote})
    with pytest.raises(ValueError, match="did not replay exactly"):
        from_shared(text, replica_class=_Same)  # its name, but not its behaviour: the hash says so


def _no_vote(self, request):  # type: ignore[no-untyped-def]
    return False  # votes for no one: no leader, another run


class _Different(Replica):
    grant_vote = _no_vote


def _document(text: str) -> dict:
    body = text[len(PREFIX):]
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _text(document: dict) -> str:
    return PREFIX + base64.urlsafe_b64encode(zlib.compress(json.dumps(document).encode())).decode()


@pytest.mark.parametrize("bad, why", [
    ("", f"starts with {PREFIX!r}"),
    ("raftlab/2:abc", f"starts with {PREFIX!r}"),
    ("raftlab-run/9:abc", "format version 9 (a newer raftlab's)"),
    ("raftlab-run/0:abc", "format version 0 (an older raftlab's)"),
    (PREFIX + "!!!not base64", "does not decode"),
    (PREFIX + base64.urlsafe_b64encode(b"not zlib").decode(), "does not decode"),
])
def test_a_text_that_is_not_a_shared_run_is_refused_saying_why(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        from_shared(bad)


def test_a_tampered_run_is_refused_and_names_nothing_it_would_run() -> None:
    sim = busy_run()
    document = _document(share(sim))
    # an intervention that is not one (a method of Simulation that a run never records)
    evil = dict(document, interventions=[*document["interventions"], [3, 0, "rewind", {"t": [0]}, {"m": []}]])
    with pytest.raises(ValueError, match="not an intervention"):
        from_shared(_text(evil))
    # a value of a type outside the few a run holds
    evil = json.loads(json.dumps(document).replace('"d": "KVCommand"', '"d": "Simulation"'))
    with pytest.raises(ValueError, match="unknown value"):
        from_shared(_text(evil))
    # a replica class from outside raftlab is never imported
    evil = json.loads(json.dumps(document))
    evil["made"]["m"] = [[k, "os:system" if k == "replica" else v] for k, v in evil["made"]["m"]]
    with pytest.raises(ValueError, match="outside raftlab"):
        from_shared(_text(evil))
    # a run changed along the way: the hash says so
    evil = dict(document, interventions=document["interventions"][1:], done=document["done"] - 1)
    with pytest.raises(ValueError, match="did not replay exactly"):
        from_shared(_text(evil))


def test_a_run_that_cannot_be_shared_says_why() -> None:
    with pytest.raises(ValueError, match="record_trace=False"):
        share(Simulation(n=3, seed=1, record_trace=False))
    with pytest.raises(ValueError, match="only a run of a raftlab machine"):
        share(Simulation(n=3, seed=1, state_machine=lambda: KVStore(), noop_transition=KVStore.NOOP))
    with pytest.raises(ValueError, match="its own noop_transition"):
        share(Simulation(n=3, seed=1, noop_transition=KVStore.put(-1, 1, "", "")))


def test_every_intervention_the_history_records_can_be_shared() -> None:
    source = "".join(p.read_text() for p in Path(raftlab.sim.__file__).parent.glob("*.py"))
    logged = set(re.findall(r'history\.log\("(\w+)"', source)) | {"network", "link", "clear_link"}
    assert logged == INTERVENTIONS


def _same(a: Simulation, b: Simulation) -> bool:
    """The same moment of the same run: step, time, trace, interventions made and to come."""
    return ((a.steps, a.now_us, a.trace.hash(), a.history.interventions, a.history.future, a.history_end)
            == (b.steps, b.now_us, b.trace.hash(), b.history.interventions, b.history.future, b.history_end))


def test_a_run_shared_right_after_interventions_opens_with_them_made() -> None:
    sim = Simulation(n=5, seed=1)
    sim.run(1.0)
    sim.crash(sim.leader())  # made at the step shown: replayed before the next step, unless counted
    assert _same(from_shared(share(sim)), sim)
    sim.partition([0, 1], [2, 3, 4])
    sim.submit(KVStore.put(1, 1, "a", "1"), to=0)  # three made at one step
    again = from_shared(share(sim))
    assert _same(again, sim)
    again.run(0.7)
    sim.run(0.7)
    assert _same(again, sim)


def test_a_run_rewound_to_a_step_where_interventions_were_made_opens_without_them() -> None:
    sim = Simulation(n=5, seed=2)
    sim.run(1.0)
    at = sim.steps
    sim.crash(sim.leader())
    sim.heal()
    sim.run(1.0)
    end, end_hash = sim.steps, sim.trace.hash()
    sim.rewind(at)  # the crash and the heal made at step `at` are its future again
    assert len(sim.history.future) == 2
    again = from_shared(share(sim))
    assert _same(again, sim)
    assert replay_to_the_end(again) == (end, end_hash)


def test_the_time_shown_comes_back_so_that_running_on_gives_the_same_run() -> None:
    sim = Simulation(n=3, seed=4)
    sim.run(1.0)  # time runs on past the last step
    again = from_shared(share(sim))
    assert again.now_us == sim.now_us == 1_000_000
    again.run(0.35)
    sim.run(0.35)
    assert _same(again, sim)


_MENU = [("transcript", name) for name in TRANSCRIPTS] + [
    ("recipe", name) for name in recipes.RECIPES] + [("compare", name) for name in recipes.RECIPES]


@pytest.mark.parametrize("kind, name", _MENU, ids=[f"{k}-{n}" for k, n in _MENU])
def test_every_scenario_of_the_apps_menu_can_be_shared_and_opened(kind: str, name: str) -> None:
    if kind == "transcript":
        sim = load_scenario(name)
    else:
        sim = recipes.build(name, seed=1, **(recipes.RECIPES[name].compare if kind == "compare" else {}))
    again = from_shared(share(sim))
    assert _same(again, sim)
    assert again.replica_class.MAX_ENTRIES_PER_MESSAGE == sim.replica_class.MAX_ENTRIES_PER_MESSAGE


def _version_1(text: str) -> str:
    """`text` as a raftlab of format version 1 wrote it: no "done", no "now"."""
    document = _document(text)
    del document["done"], document["now"]
    return "raftlab-run/1:" + _text(document)[len(PREFIX):]


def test_a_text_of_version_1_still_opens() -> None:
    sim = busy_run()
    end, end_hash = sim.steps, sim.trace.hash()
    sim.rewind(end // 2)
    again = from_shared(_version_1(share(sim)))
    assert (again.steps, again.trace.hash()) == (sim.steps, sim.trace.hash())
    assert replay_to_the_end(again) == (end, end_hash)
    sim = Simulation(n=5, seed=1)
    sim.run(1.0)
    sim.crash(sim.leader())
    sim.crash(0 if sim.leader() != 0 else 1)  # two made at the step shown: the hash tells how many
    again = from_shared(_version_1(share(sim)))
    assert (again.steps, again.trace.hash(), again.history.interventions) == (
        sim.steps, sim.trace.hash(), sim.history.interventions)


def test_a_replica_class_made_at_runtime_with_max_entries_is_made_again() -> None:
    # as a transcript's max-entries=1 makes it (raftlab.sim.transcript), so named but not importable
    limited = type("LimitedReplica", (Replica,), {"MAX_ENTRIES_PER_MESSAGE": 1, "__module__": "raftlab.sim.transcript"})
    sim = Simulation(n=3, seed=6, replica_class=limited)
    sim.run(0.6)
    sim.submit(KVStore.put(1, 1, "a", "1"))
    sim.submit(KVStore.put(1, 2, "b", "2"))
    sim.run(0.3)
    text = share(sim)
    assert shared_replica_class(text) == "raftlab.core.replica:Replica" and not needs_replica_class(text)
    again = from_shared(text)
    assert again.replica_class.MAX_ENTRIES_PER_MESSAGE == 1 and _same(again, sim)
    # a student's class, limited: named, passed back, limited again
    mine = type("LimitedMine", (Mine,), {"MAX_ENTRIES_PER_MESSAGE": 1, "__module__": "raftlab.sim.transcript"})
    sim = Simulation(n=3, seed=6, replica_class=mine)
    sim.run(0.6)
    text = share(sim)
    assert needs_replica_class(text)
    for given in (Mine, mine):
        again = from_shared(text, replica_class=given)
        assert again.replica_class.MAX_ENTRIES_PER_MESSAGE == 1 and _same(again, sim)


def test_a_replica_class_that_cannot_be_made_again_is_refused_when_shared() -> None:
    made = type("Voteless", (Replica,), {"grant_vote": _no_vote})  # made at runtime, with code of its own
    made.__module__ = "raftlab.sim.transcript"
    with pytest.raises(ValueError, match=re.escape("raftlab.sim.transcript:Voteless cannot be imported back")):
        share(Simulation(n=3, seed=1, replica_class=made))


def _edit(document: dict, **made: object) -> dict:
    changed = json.loads(json.dumps(document))
    pairs = changed["made"]["m"]
    for key, value in made.items():
        pairs[:] = [p for p in pairs if p[0] != key] + [[key, value]]
    return changed


def _tampered() -> dict[str, tuple[dict | str, str]]:
    sim = Simulation(n=3, seed=2)
    sim.run(0.5)
    sim.crash(0)
    sim.run(0.3)
    good = _document(share(sim))
    crash = [10, 1000, "crash", {"t": [0]}, {"m": []}]
    return {
        "made not a dict": (dict(good, made=5), "'made' is not the settings"),
        "made a list": (dict(good, made=[1]), "'made' is not the settings"),
        "made an unknown setting": (_edit(good, checkpoint_every=1), "'made' has ['checkpoint_every']"),
        "unknown raftlab module": (_edit(good, replica="raftlab.nope:Replica"), "does not have"),
        "unknown attribute": (_edit(good, replica="raftlab.core:Nope"), "does not have"),
        "not a replica class": (_edit(good, replica="raftlab.core:EventKind"), "is not a Replica class"),
        "constants beyond max entries": (_edit(good, replica_constants={"m": [["grant_vote", 1]]}),
                                         "replica_constants must set only"),
        "too many arguments": (dict(good, interventions=[[10, 1000, "crash", {"t": [0, 1]}, {"m": []}]]),
                               "intervention crash(0, 1): too many positional"),
        "an unknown keyword": (dict(good, interventions=[[10, 1000, "crash", {"t": [0]}, {"m": [["x", 1]]}]]),
                               "unexpected keyword"),
        "another network attribute": (
            dict(good, interventions=[[10, 1000, "network", {"t": ["on_change", 5]}, {"m": []}]]),
            "a network intervention is (setting, value)"),
        "a node not there": (dict(good, interventions=[[10, 1000, "crash", {"t": [99]}, {"m": []}]]),
                             "an intervention failed"),
        "nested too deeply": (dict(good, interventions=[[10, 1000, "crash", {"t": [
            json.loads("[" * 40 + "]" * 40)]}, {"m": []}]]), "nested more than"),
        "deep json": (PREFIX + base64.urlsafe_b64encode(zlib.compress(b"[" * 100000 + b"]" * 100000)).decode(),
                      "nested too deeply"),
        "at far away": (dict(good, at=10**9, end=10**9), f"at must be an int from 0 to {MAX_STEPS}"),
        "end far away": (dict(good, end=10**9), f"end must be an int from 0 to {MAX_STEPS}"),
        "done beyond": (dict(good, done=5), "done must be an int from 0 to 1"),
        "now a float": (dict(good, now=1.5), "now must be an int"),
        "too many nodes": (_edit(good, n=200000), f"n (with the nodes added) must be an int from 1 to {MAX_NODES}"),
        "too many added": (dict(good, interventions=[[1, 0, "add_node", {"t": []}, {"m": []}]] * MAX_NODES),
                           "n (with the nodes added)"),
        "too many interventions": (dict(good, interventions=[crash] * 30000), "interventions must be a list"),
        "at a step of its own": (dict(good, interventions=[[10**9, 0, "crash", {"t": [0]}, {"m": []}]]),
                                 "an intervention's step and time"),
    }


_CASES = _tampered()


@pytest.mark.parametrize("case", list(_CASES))
def test_a_bad_text_gives_a_value_error_saying_why_and_never_hangs(case: str) -> None:
    document, why = _CASES[case]
    with pytest.raises(ValueError, match=re.escape(why)):
        from_shared(document if isinstance(document, str) else _text(document))


def test_a_network_intervention_changes_only_the_networks_settings() -> None:
    sim = Simulation(n=3, seed=2)
    with pytest.raises(ValueError, match="latency, drop or duplicate"):
        sim.history._replay((0, 0, "network", ("on_change", None), {}))
    sim.history._replay((0, 0, "network", ("drop", 0.5), {}))
    assert sim.network.drop == 0.5
