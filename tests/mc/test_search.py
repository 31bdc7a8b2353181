"""raftlab.mc: the model's states and actions, symmetry reduction, breadth-first search and random
walks, counterexamples and the `raftlab mc` command, on bounds small enough for CI."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from raftlab.cli import main
from raftlab.core import Replica
from raftlab.grading import mutants
from raftlab.mc import Bounds, Counterexample, Model, Violation, bfs, random_walks, replay
from raftlab.mc.counterexample import _act
from raftlab.sim.invariants import InvariantViolation
from raftlab.sim.transcript import load_scenario, run_transcript

TINY = Bounds(nodes=3, max_term=2, max_log=2, crashes=0, drops=0, duplicates=0, submits=0, depth=8)
SMALL = Bounds(nodes=3, max_term=2, max_log=2, crashes=1, drops=1, duplicates=0, submits=1, depth=8)


def test_bounds_name_the_field_that_is_wrong() -> None:
    with pytest.raises(ValueError, match="max_term"):
        Bounds(max_term=0)
    with pytest.raises(ValueError, match="drops"):
        Bounds(drops=-1)
    with pytest.raises(ValueError, match="replica_class"):
        Model(TINY, int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_messages"):
        Bounds(max_messages=-1)
    assert Bounds().raised("crashes").crashes == Bounds().crashes + 1
    assert Bounds(max_messages=2).raised("max_messages").max_messages == 3


def test_a_bounded_network_lets_the_search_finish_its_whole_space() -> None:
    """With at most one message in flight the whole space is small: the search ends by itself (no
    depth or time bound reached), with no violation and every coverage goal reached."""
    bounds = Bounds(nodes=3, max_term=2, max_log=3, crashes=1, drops=1, duplicates=0, submits=1, depth=500,
                    max_messages=1)
    result = bfs(Model(bounds, symmetry=True))
    assert result.complete and not result.violations, result.report()
    assert result.depth < bounds.depth and result.uncovered == []
    assert "the whole bounded space was explored" in result.report()
    model = Model(bounds, symmetry=True)
    assert all(len(s[len(model.ids)]) <= 1 for s in _states(model, 12))


def test_the_initial_state_is_its_own_representative() -> None:
    model = Model(SMALL, symmetry=True)
    assert model.canonical(model.initial) == model.initial


@pytest.mark.parametrize("replica_class", [Replica, mutants.CommitsOldTermByCounting])
def test_renaming_commutes_with_every_step(replica_class: type[Replica]) -> None:
    """Symmetry reduction is sound only if a renamed state steps as the state does: a random run on
    representatives and the same run on concrete states (its actions renamed back) agree, step by step."""
    model = Model(Bounds(3, 3, 3, 1, 1, 1, 1, 30), replica_class, symmetry=True)
    rng, steps = random.Random(7), 0
    for _ in range(60):
        state = concrete = model.initial
        for _ in range(25):
            actions = list(model.actions(state))
            if not actions:
                break
            action = rng.choice(actions)
            nxt = model.step(state, action)
            renamed_back = model.concrete_action(concrete, action)
            with model.plain():
                real = model.step(concrete, renamed_back)
            if not isinstance(nxt, tuple):
                assert type(real) is type(nxt)
                break
            assert isinstance(real, tuple) and model.canonical(real) == nxt
            state, concrete, steps = nxt, real, steps + 1
    assert steps > 500


def test_the_clean_replica_has_no_violation_up_to_the_depth_bound() -> None:
    result = bfs(Model(TINY, symmetry=True))
    assert result.depth == TINY.depth and not result.violations
    assert not result.complete  # (the depth bound cut it short: it says so)
    assert result.distinct_states > 1000
    assert result.uncovered == []  # a leader elected, a second term led


def test_symmetry_keeps_exactly_the_representatives_of_the_plain_search() -> None:
    """The reduced search reaches one representative of each class of states the plain search reaches
    (the plain search's states, mapped to their representatives, are the reduced search's states)."""
    bounds = Bounds(nodes=3, max_term=2, max_log=2, crashes=1, drops=1, duplicates=1, submits=1, depth=6)
    plain, reduced = Model(bounds), Model(bounds, symmetry=True)
    seen_plain = _states(plain, bounds.depth)
    seen_reduced = _states(reduced, bounds.depth)
    as_reduced = {reduced.canonical(_translate(plain, reduced, s)) for s in seen_plain}
    assert len(seen_reduced) < len(seen_plain) / 2
    assert as_reduced == seen_reduced


def _states(model: Model, depth: int) -> set:
    """The states breadth-first search reaches within `depth` actions (a renaming keeps the depth)."""
    seen, frontier = {model.initial}, [model.initial]
    for _ in range(depth):
        nxt = []
        for state in frontier:
            for action in model.actions(state):
                s = model.step(state, action)
                assert not isinstance(s, Violation), s
                if isinstance(s, tuple) and s not in seen:
                    seen.add(s)
                    nxt.append(s)
        frontier = nxt
    return seen


def _translate(source: Model, target: Model, state: tuple) -> tuple:
    """`state` of `source` re-encoded in `target`'s numbering (the models intern states separately)."""
    n = len(source.ids)
    nodes = [target._intern_node(source.node_state(state, i)) for i in source.ids]
    network = sorted((target._intern_message(*source.message(m)), c) for m, c in state[n])
    return (*nodes, tuple(network), *state[n + 1:])


def test_breadth_first_search_is_deterministic() -> None:
    def digest() -> str:
        result = bfs(Model(SMALL, symmetry=True))
        summary = result.summary()
        del summary["seconds"], summary["states_per_s"]
        return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()
    assert digest() == digest()


@pytest.fixture(scope="module")
def stale_vote() -> Counterexample:
    model = Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), mutants.VotesWithoutUpToDateCheck, symmetry=True,
                  rules=False)  # (with the rules, RV-GRANT is broken first: the safety property it leads to)
    result = bfs(model, time_budget=120)
    assert result.violations, result.report()
    return result.violations[0].minimised()


def test_a_vote_for_a_stale_candidate_is_found_with_a_short_counterexample(stale_vote: Counterexample) -> None:
    cx, model = stale_vote, stale_vote.model
    assert cx.violation.property == "Leader Completeness"
    assert len(cx.actions) <= 30
    found = replay(model, cx.actions)  # concrete actions: the run replays without renaming
    assert isinstance(found, Violation) and found.property == "Leader Completeness"
    lines = cx.lines()
    assert len(lines) == len(cx.actions) + 1 and "Leader Completeness violated" in lines[-1]
    for k in range(len(cx.actions) - 1):  # minimal: no single action can go
        assert not cx.reproduces(cx.actions[:k] + cx.actions[k + 1:])


def test_a_counterexample_saved_as_a_transcript_replays_identically(stale_vote: Counterexample,
                                                                    tmp_path: Path) -> None:
    """The transcript runs with exactly its recorded outputs; the cluster it leaves is the model's last
    state but one, and the step after it makes the simulator's own checker name the same property."""
    path = stale_vote.save(tmp_path / "cx.txt")
    text = path.read_text()
    assert "Leader Completeness" in text.splitlines()[0] and "deliver-msg" in text
    result = run_transcript(path, replica_class=mutants.VotesWithoutUpToDateCheck)
    assert result.ok and not result.mismatches, result.diff()
    sim, violation = stale_vote.simulation()
    assert violation is not None and violation.property == "Leader Completeness"
    model = stale_vote.model
    before = replay(model, stale_vote.actions[:-1])
    assert isinstance(before, tuple)
    for node in model.ids:  # the simulation agrees with the model, node by node
        replica, saved = sim.replicas[node], model.node_state(before, node)
        assert (replica.term, replica.voted_for, replica.last_index, replica.role, replica.commit_index) == \
            (saved[0], saved[1], len(saved[2]), saved[4][0][0], saved[4][0][2])
    loaded = load_scenario(path, replica_class=mutants.VotesWithoutUpToDateCheck)
    assert [(r.term, r.log) for r in loaded.replicas] == [(r.term, r.log) for r in sim.replicas]
    with pytest.raises(InvariantViolation, match="Leader Completeness"):
        _act(loaded, stale_vote.actions[-1], stale_vote.commands()[-1])


def test_a_vote_sent_before_it_is_persisted_elects_two_leaders() -> None:
    """A crash may fall between a send and the storage write after it (`+crash` actions): the model
    offers it only where a step sends before its storage holds what it says, which the core never
    does (its searches have no such action) and VoteNotPersisted does, electing two leaders."""
    clean = Model(SMALL, symmetry=True)
    states = _states(clean, 6)
    assert not any(a[0].endswith("+crash") for s in states for a in clean.actions(s))
    checked = bfs(Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), mutants.VoteNotPersisted, symmetry=True))
    assert checked.violations[0].violation.property == "Persist before sending (RV-GRANT)"  # at the send itself
    assert len(checked.violations[0].actions) == 2
    model = Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), mutants.VoteNotPersisted, symmetry=True, rules=False)
    result = bfs(model, time_budget=120)
    assert result.violations, result.report()
    cx = result.violations[0].minimised()
    assert cx.violation.property == "Election Safety" and len(cx.actions) <= 30
    assert any(a[0] == "deliver+crash" for a in cx.actions)
    assert "crashes right after sending, before its storage is written" in cx.explain()
    with pytest.raises(ValueError, match="cannot replay"):
        cx.commands()


def test_random_walks_are_seeded() -> None:
    model = Model(SMALL)
    a = random_walks(model, 40, seed=3)
    b = random_walks(Model(SMALL), 40, seed=3)
    assert (a.states, a.distinct_states, a.depth) == (b.states, b.distinct_states, b.depth)
    assert a.coverage["leader elected"] is not None


def test_the_frontier_split_over_processes_finds_what_the_serial_search_finds() -> None:
    bounds = Bounds(nodes=3, max_term=2, max_log=2, crashes=0, drops=0, duplicates=0, submits=1, depth=9)
    model = Model(bounds, symmetry=True)
    serial = bfs(model)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        split = bfs(Model(bounds, symmetry=True), executor=pool, split_depth=3)
    assert not serial.violations and not split.violations
    assert split.depth == serial.depth
    assert split.coverage == serial.coverage
    assert split.distinct_states >= serial.distinct_states  # (a state two parts reach counts in both)


def test_the_frontier_split_finds_a_planted_bug(stale_vote: Counterexample) -> None:
    bounds = stale_vote.model.bounds.raised("depth", len(stale_vote.actions) + 1 - stale_vote.model.bounds.depth)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        split = bfs(Model(bounds, mutants.VotesWithoutUpToDateCheck, **stale_vote.model.options), executor=pool,
                    split_depth=3)
    assert split.violations and split.violations[0].violation.property == "Leader Completeness"
    assert len(split.violations[0].actions) == len(stale_vote.actions)  # breadth-first below the split, too
    assert split.violations[0].reproduces(split.violations[0].actions)


def test_the_command_ends_with_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["mc", "--nodes", "3", "--max-term", "2", "--max-log", "2", "--depth", "6", "--crashes", "0",
                   "--drops", "0", "--submits", "0", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert status == 0 and figures["violations"] == 0
    assert {"distinct_states", "states_per_s", "depth", "violations", "coverage"} <= figures.keys()
    assert figures["depth"] == 6 and figures["distinct_states"] > 100


def test_the_command_names_the_planted_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["mc", "--mutant", "NoSuchBug"])
    assert "VotesWithoutUpToDateCheck" in capsys.readouterr().err


def test_one_message_per_link_and_a_few_variants_narrow_the_search() -> None:
    """`one_per_link` keeps the newest message of each link (the older lost), `variants` explores few
    states per tuple of node states: both reach fewer states, the second is never complete, and what
    they find replays on the model."""
    bounds = Bounds(nodes=3, max_term=2, max_log=2, crashes=0, drops=0, duplicates=0, submits=1, depth=8)
    whole = bfs(Model(bounds, symmetry=True))
    linked_model = Model(bounds, symmetry=True, one_per_link=True)
    linked = bfs(linked_model)
    assert linked.distinct_states < whole.distinct_states and not linked.violations
    assert all(len({linked_model._links[m] for m, _ in s[3]}) == len(s[3]) for s in _states(linked_model, 6))
    narrow = bfs(Model(bounds, symmetry=True), variants=1)
    assert narrow.distinct_states < whole.distinct_states and not narrow.complete
    with pytest.raises(ValueError, match="variants"):
        bfs(Model(bounds), variants=0)
    model = Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), mutants.VotesWithoutUpToDateCheck, symmetry=True, one_per_link=True)
    found = bfs(model, variants=2, time_budget=120)
    assert found.violations and found.violations[0].reproduces(found.violations[0].actions)
