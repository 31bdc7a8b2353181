"""`RaftLab(counterexample)`: a model checker's counterexample in the app, step by step, with the
property its last step violates named."""

from __future__ import annotations

from raftlab.grading.mutants import VotesWithoutUpToDateCheck
from raftlab.mc import Bounds, Model, bfs
from raftlab.widgets import RaftLab


def test_the_app_shows_each_step_of_a_counterexample_and_names_the_violation() -> None:
    result = bfs(Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), VotesWithoutUpToDateCheck, symmetry=True, rules=False))
    cx = result.violations[0].minimised()
    app = RaftLab(cx)
    last = len(cx.actions) - 1
    assert app.counterexample_slider.max == last and app.counterexample_slider.value == last
    assert "Leader Completeness" in app.counterexample_text.value
    assert f"next, step {last + 1}: deliver vote granted" in app.counterexample_text.value
    at_end = [(r.term, r.role) for r in app.sim.replicas]
    assert at_end == [(r.term, r.role) for r in cx.simulation()[0].replicas]
    app.counterexample_slider.value = 0  # the start: nobody has a term yet
    assert [r.term for r in app.sim.replicas] == [0, 0, 0]
    assert "next, step 1: node 0&#x27;s election timer fires" in app.counterexample_text.value
    app.counterexample_slider.value = 3  # node 0 has won term 1
    assert app.sim.leader() == 0 and app.last_error is None
    assert app.counterexample_text.value.count("<li>") == 3


def test_a_broken_rule_is_named_though_the_simulator_raises_nothing_there() -> None:
    """With the rules checked, the search stops where RV-GRANT breaks: the simulator's own checker judges
    safety only and raises nothing at that step, but the app names the rule the model saw broken."""
    cx = bfs(Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), VotesWithoutUpToDateCheck, symmetry=True)).violations[0]
    cx = cx.minimised()
    assert cx.violation.property == "Vote rule (RV-GRANT)" and cx.simulation()[1] is None
    app = RaftLab(cx)
    text = app.counterexample_text.value
    assert "Vote rule (RV-GRANT)" in text and "granted its vote" in text
    app.counterexample_slider.value = 1
    assert "next, step 2: deliver VoteRequest" in app.counterexample_text.value
    assert [r.term for r in app.sim.replicas] == [r.term for r in cx.simulation(1)[0].replicas]
