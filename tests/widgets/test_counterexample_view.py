"""`RaftLab(counterexample)`: a model checker's counterexample in the app, step by step, with the
property its last step violates named."""

from __future__ import annotations

from raftlab.grading.mutants import VotesWithoutUpToDateCheck
from raftlab.mc import Bounds, Model, bfs
from raftlab.widgets import RaftLab


def test_the_app_shows_each_step_of_a_counterexample_and_names_the_violation() -> None:
    result = bfs(Model(Bounds(3, 3, 3, 1, 1, 0, 1, 20), VotesWithoutUpToDateCheck, symmetry=True))
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
