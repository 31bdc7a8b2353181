"""Every planted bug of the grader is caught by the model checker (issue 15): each within its search of
`raftlab.mc.planted`, with a minimised counterexample of at most 30 steps that replays on the model;
the bugs of features the model does not have are listed, so that a new planted bug must be placed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from raftlab.cli import main
from raftlab.core import Replica
from raftlab.grading import mutants
from raftlab.mc import Bounds, Model, Violation, bfs, replay
from raftlab.mc.planted import NOT_MODELLED, SEARCHES
from raftlab.sim.transcript import run_transcript

NAMES = [m.__name__ for m in mutants.MUTANTS]


def test_every_planted_bug_has_a_search_or_a_reason() -> None:
    assert set(SEARCHES) | set(NOT_MODELLED) == set(NAMES)
    assert not set(SEARCHES) & set(NOT_MODELLED)


@pytest.mark.parametrize("name", [n for n in NAMES if n in SEARCHES])
def test_the_search_catches_the_planted_bug(name: str) -> None:
    search = SEARCHES[name]
    model = Model(search.bounds, getattr(mutants, name), symmetry=True, **search.options)
    result = search.run(model, time_budget=300)
    assert result.violations, result.report()
    cx = result.violations[0].minimised()
    assert cx.violation.property == search.finds, cx.explain()
    assert len(cx.actions) <= 30
    found = replay(model, cx.actions)
    assert isinstance(found, Violation) and found.property == search.finds


@pytest.mark.parametrize(("more", "options"), [(0, {}), (0, {"pre_vote": True}), (0, {"max_entries": 1}),
                                               (1, {}), (0, {"one_per_link": True, "prune_stale": True}),
                                               (0, {"reads": 1}), (0, {"reads": 1, "ticks": 2, "read_lease": True})],
                         ids=str)
def test_the_rule_predicates_hold_for_the_core(more: int, options: dict) -> None:
    """The rules the model checks beside the safety properties (ALL-TERM, F-TIMEOUT, PV-GRANT,
    RV-GRANT, AE-CHECK, persisting before sending, L-REPLICATE, L-COMMIT, LT-STOP, MC-ONE, MC-LEARNER,
    RI-LEASE) and linearizable reads hold for the core: its search finds no violation (`more`: a
    leadership transfer and a configuration change too; reads, time passing and leases)."""
    options = dict(options)
    reads, ticks = options.pop("reads", 0), options.pop("ticks", 0)
    bounds = Bounds(nodes=3, max_term=3, max_log=3, crashes=1, drops=1, duplicates=1, submits=1, depth=9,
                    max_messages=3, transfers=more, changes=more, reads=reads, ticks=ticks)
    result = bfs(Model(bounds, Replica, symmetry=True, **options))
    assert not result.violations, result.violations[0].explain()
    assert result.distinct_states > 5000


def test_the_command_takes_the_bugs_search(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mc", "--mutant", "CommitsOldTermByCounting", "--json"]) == 1
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bounds"]["crashes"] == 0 and figures["violation"]["property"] == "Commit rule (L-COMMIT)"
    assert main(["mc", "--mutant", "PreVoteRaisesTerm", "--max-term", "2", "--json"]) == 1
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bounds"]["max_term"] == 2 and figures["violation"]["steps"] == 2


@pytest.mark.parametrize(("name", "kind", "command"), [("TakesProposalsDuringTransfer", "transfer", "transfer "),
                                                       ("LearnerStandsForElection", "remove", "remove-node ")])
def test_transfers_and_changes_are_replayed_by_the_simulator(name: str, kind: str, command: str,
                                                              tmp_path: Path) -> None:
    search, mutant = SEARCHES[name], getattr(mutants, name)
    cx = bfs(Model(search.bounds, mutant, symmetry=True, **search.options)).violations[0].minimised()
    assert any(a[0] == kind for a in cx.actions)
    assert command in "\n".join(cx.commands())
    result = run_transcript(cx.save(tmp_path / "cx.txt"), replica_class=mutant)
    assert result.ok and not result.mismatches, result.diff()


def test_the_command_says_which_bugs_it_cannot_catch(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(SEARCHES, "LeaseWithoutQuorum")
    monkeypatch.setitem(NOT_MODELLED, "LeaseWithoutQuorum", "the model has no clock")
    assert main(["mc", "--mutant", "LeaseWithoutQuorum", "--depth", "3", "--json"]) == 0
    assert "the model cannot catch this bug: the model has no clock" in capsys.readouterr().err


def test_a_lease_read_without_a_quorum_is_found_in_two_phases(capsys: pytest.CaptureFixture[str]) -> None:
    """The lease bug needs time to pass (`Bounds.ticks`) after a leader's entry is everywhere: the
    search reaches that state first, then goes on from it (`Search.start`); the counterexample is
    the whole run, and it replays from the initial state."""
    assert main(["mc", "--mutant", "LeaseWithoutQuorum", "--json"]) == 1
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bounds"]["ticks"] == 2 and figures["violation"]["property"] == "Linearizable read"
    actions = [tuple(a) for a in figures["violation"]["actions"]]
    assert [a[0] for a in actions].count("tick") == 2 and actions[-1][0] == "read"
    search = SEARCHES["LeaseWithoutQuorum"]
    model = Model(search.bounds, mutants.LeaseWithoutQuorum, symmetry=True, **search.options)
    cx = search.run(model).violations[0]
    assert len(cx.actions) == len(actions)
    found = replay(model, cx.actions)
    assert isinstance(found, Violation) and found.property == "Linearizable read"
    with pytest.raises(ValueError, match="time"):
        cx.commands()  # (the simulator's timers would fire as its time passes)
    as_deep = dataclasses.replace(search.bounds, depth=len(actions))  # the core: no violation as deep
    clean = search.run(Model(as_deep, Replica, symmetry=True, **search.options), time_budget=None)
    assert not clean.violations and clean.depth == len(actions), clean.report()


def test_a_stale_read_is_a_violation_and_the_simulator_replays_it(tmp_path: Path) -> None:
    search = SEARCHES["ReadsBeforeNoopCommits"]
    model = Model(search.bounds, mutants.ReadsBeforeNoopCommits, symmetry=True, **search.options)
    cx = search.run(model).violations[0].minimised()
    assert cx.actions[-1][0] == "read" or any(a[0] == "read" for a in cx.actions)
    assert "answered read #1 from its state as of entry 0, but entry 1 was committed" in cx.violation.detail
    assert "read value to=" in "\n".join(cx.commands())
    result = run_transcript(cx.save(tmp_path / "cx.txt"), replica_class=mutants.ReadsBeforeNoopCommits)
    assert result.ok and not result.mismatches, result.diff()
