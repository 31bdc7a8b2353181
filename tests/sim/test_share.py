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
from raftlab.sim.share import INTERVENTIONS, PREFIX, from_shared, share


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
    with pytest.raises(ValueError, match="did not replay exactly"):
        from_shared(text, replica_class=_Different)


class _Different(Replica):
    def grant_vote(self, request):  # type: ignore[no-untyped-def]
        return False  # votes for no one: no leader, another run


def _document(text: str) -> dict:
    body = text[len(PREFIX):]
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _text(document: dict) -> str:
    return PREFIX + base64.urlsafe_b64encode(zlib.compress(json.dumps(document).encode())).decode()


@pytest.mark.parametrize("bad, why", [
    ("", "starts with 'raftlab-run/1:'"),
    ("raftlab-run/2:abc", "starts with 'raftlab-run/1:'"),
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
    evil = dict(document, interventions=document["interventions"][1:])
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
