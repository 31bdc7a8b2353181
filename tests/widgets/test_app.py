"""The widget app, headless: press its buttons, move its sliders, and check the simulation and the images."""

from __future__ import annotations

import pytest

from raftlab.core import EventKind, Role
from pathlib import Path

from raftlab.sim import SimKind, Simulation
from raftlab.sim.transcript import TRANSCRIPTS, run_transcript
from raftlab.widgets import RaftLab
from raftlab.widgets.app import CLIENT, NARRATED, notable

BUTTONS = {"step_button": "Step", "back_button": "Step back", "notable_button": "Next notable",
           "crash_button": "Crash", "restart_button": "Restart", "timeout_button": "Time out",
           "request_button": "Client request", "heal_button": "Heal", "partition_button": "Apply partition",
           "drop_button": "Drop message", "reset_button": "Reset", "dismiss_button": "Dismiss"}


@pytest.fixture
def app() -> RaftLab:
    return RaftLab(n=5, seed=1)


def images(app: RaftLab) -> tuple[bytes, bytes, bytes]:
    return bytes(app.graph_image.value), bytes(app.log_image.value), bytes(app.timeline_image.value)


def elect(app: RaftLab) -> int:
    while app.sim.leader() is None and app.sim.now < 5.0:
        app.notable_button.click()
    leader = app.sim.leader()
    assert leader is not None
    return leader


def tick(app: RaftLab, times: int = 1) -> None:
    """What the front end does while Play runs: move its value on."""
    for _ in range(times):
        app.play.value += 1


# ----- building and showing -------------------------------------------------------------------------
def test_the_app_builds_shows_png_images_and_labels_every_button(app: RaftLab) -> None:
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == app.widget.model_id
    for image in images(app):
        assert image.startswith(b"\x89PNG")
    for name, description in BUTTONS.items():
        assert getattr(app, name).description == description
    assert app.node_picker.options == tuple((f"node {i}", i) for i in range(5))
    assert len(app.sides) == 5 and app.last_error is None


def test_it_wraps_a_given_simulation() -> None:
    sim = Simulation(n=3, seed=4)
    sim.run(0.5)
    app = RaftLab(sim)
    assert app.sim is sim
    assert app.time_slider.value == sim.steps > 0
    assert [v for _, v in app.node_picker.options] == [0, 1, 2]
    with pytest.raises(TypeError):
        RaftLab(sim, n=3)


# ----- time -------------------------------------------------------------------------------------------
def test_step_takes_one_event_and_redraws(app: RaftLab) -> None:
    before = images(app)
    for k in range(1, 6):
        app.step_button.click()
        assert app.sim.steps == k
        assert app.time_slider.value == app.time_slider.max == k
    assert images(app)[2] != before[2]  # the timeline moved on
    assert f"step {app.sim.steps}" in app.status.value


def test_play_ticks_step_the_simulation_at_the_chosen_speed(app: RaftLab) -> None:
    tick(app)
    assert app.sim.steps == 1
    app.speed.value = 7
    tick(app, 2)
    assert app.sim.steps == 15


def test_next_notable_stops_at_a_role_change_or_a_commit(app: RaftLab) -> None:
    for _ in range(2):  # the first candidate, then the first leader
        before = app.sim.steps
        app.notable_button.click()
        steps = app.sim.steps
        assert steps > before
        assert [e for e in app.sim.trace if e.step == steps and notable(e)]
        assert not [e for e in app.sim.trace if before < e.step < steps and notable(e)]
    assert app.sim.leader() is not None
    # Followers that only moved to the candidate's term did not stop it: they are not changes of role.
    moved = [e for e in app.sim.trace if e.kind == EventKind.BECAME_FOLLOWER]
    assert moved and all(e.data["was"] == "follower" and not notable(e) for e in moved)


def test_step_back_and_the_time_slider_rewind_and_replay_the_same_history(app: RaftLab) -> None:
    app.speed.value = 40
    tick(app)
    assert app.sim.steps == 40
    end_hash = app.sim.trace.hash()
    app.back_button.click()
    assert app.sim.steps == 39
    assert app.time_slider.value == 39 and app.time_slider.max == 40
    app.time_slider.value = 10
    assert app.sim.steps == 10
    assert app.sim.trace.hash() != end_hash
    assert "acting now forks" in app.status.value
    app.time_slider.value = 40  # forward: replays
    assert app.sim.steps == 40
    assert app.sim.trace.hash() == end_hash


def test_acting_in_the_past_forks_and_shrinks_the_time_slider(app: RaftLab) -> None:
    app.speed.value = 40
    tick(app)
    old_hash = app.sim.trace.hash()
    app.time_slider.value = 12
    app.node_picker.value = 1
    app.crash_button.click()
    assert app.sim.history_end == 12
    assert app.time_slider.max == 12 and app.time_slider.value == 12
    tick(app)
    assert app.sim.steps == 52
    assert app.sim.trace.hash() != old_hash
    assert app.sim.replicas[1].crashed


# ----- nodes -----------------------------------------------------------------------------------------
def test_crash_and_restart_the_selected_node(app: RaftLab) -> None:
    app.speed.value = 10
    tick(app)
    app.node_picker.value = 3
    before = images(app)[0]
    app.crash_button.click()
    assert app.sim.replicas[3].crashed
    assert not any(r.crashed for r in app.sim.replicas if r.id != 3)
    assert images(app)[0] != before
    assert "crashed" in app.inspector.value
    app.restart_button.click()
    assert not app.sim.replicas[3].crashed
    assert app.sim.trace[-1].kind == SimKind.RESTART and app.sim.trace[-1].node == 3


def test_time_out_makes_the_selected_node_a_candidate(app: RaftLab) -> None:
    app.node_picker.value = 2
    app.timeout_button.click()
    assert app.sim.replicas[2].role is Role.CANDIDATE
    assert all(r.role is Role.FOLLOWER for r in app.sim.replicas if r.id != 2)
    assert "candidate" in app.inspector.value


def test_client_request_submits_a_fresh_put_to_the_selected_node(app: RaftLab) -> None:
    leader = elect(app)
    app.node_picker.value = leader
    logs = images(app)[1]
    app.request_button.click()
    app.request_button.click()
    mine = [s for s in app.sim.submissions.values() if s.id[0] == CLIENT]
    assert [s.id for s in mine] == [(CLIENT, 1), (CLIENT, 2)]
    assert all(s.node == leader and s.transition.op == "put" for s in mine)
    app.speed.value = 50
    tick(app, 4)
    assert all(s.answer is not None and s.answer.value == "applied" for s in mine)
    assert images(app)[1] != logs
    follower = next(i for i in app.sim.ids if i != leader)
    app.node_picker.value = follower
    app.request_button.click()
    assert app.sim.submissions[(CLIENT, 3)].node == follower


def test_the_inspector_shows_next_match_and_flow_for_a_leader_only(app: RaftLab) -> None:
    leader = elect(app)
    app.node_picker.value = leader
    text = app.inspector.value
    assert "leader" in text and "<th>next</th>" in text and "<th>match</th>" in text and "<th>flow</th>" in text
    node = app.sim.frame().nodes[leader]
    for peer in app.sim.ids:
        if peer != leader:
            assert (f"<tr><td>{peer}</td><td>{node.next_index[peer]}</td><td>{node.match_index[peer]}</td>"
                    f"<td>{node.flows[peer]}</td></tr>") in text
    app.node_picker.value = next(i for i in app.sim.ids if i != leader)
    assert "<th>match</th>" not in app.inspector.value
    assert "follower" in app.inspector.value


def test_clicking_a_node_in_the_graph_selects_it(app: RaftLab) -> None:
    grid = [(x / 40, y / 40) for x in range(1, 40) for y in range(1, 40)]
    hit = next(((x, y, n) for x, y in grid if (n := app.graph_view.node_at(x, y)) not in (None, 0)), None)
    assert hit is not None, "GraphView.node_at found no node other than 0"
    x, y, node = hit
    app._on_graph_click({"relativeX": x * 500, "relativeY": y * 400, "boundingRectWidth": 500,
                         "boundingRectHeight": 400})
    assert app.node_picker.value == node
    assert f"<b>node {node}</b>" in app.inspector.value


# ----- network ---------------------------------------------------------------------------------------
def test_network_sliders_change_the_network(app: RaftLab) -> None:
    app.drop_rate.value = 0.25
    app.duplicate_rate.value = 0.1
    app.latency.value = (20, 50)  # milliseconds
    assert app.sim.network.drop == 0.25
    assert app.sim.network.duplicate == 0.1
    assert app.sim.network.latency == (0.02, 0.05)
    assert [e.kind for e in app.sim.trace[-3:]] == [SimKind.NETWORK] * 3


def test_apply_partition_cuts_links_between_the_sides_and_heal_clears_them(app: RaftLab) -> None:
    for node, side in enumerate("AABBB"):
        app.sides[node].value = side
    app.partition_button.click()
    a, b = {0, 1}, {2, 3, 4}
    expected = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
    assert app.sim.frame().cut == expected
    for node, side in enumerate("ABAAA"):  # a new partition replaces the old one
        app.sides[node].value = side
    app.partition_button.click()
    assert app.sim.frame().cut == {(1, x) for x in (0, 2, 3, 4)} | {(x, 1) for x in (0, 2, 3, 4)}
    app.heal_button.click()
    assert app.sim.frame().cut == frozenset()


def test_drop_message_removes_the_chosen_message(app: RaftLab) -> None:
    app.node_picker.value = 0
    app.timeout_button.click()  # four vote requests are on their way
    ids = [f.id for f in app.sim.in_flight()]
    assert [v for _, v in app.messages.options] == ids and len(ids) == 4
    app.messages.value = ids[2]
    app.drop_button.click()
    assert [f.id for f in app.sim.in_flight()] == ids[:2] + ids[3:]
    assert app.sim.trace[-1].kind == SimKind.DROP and app.sim.trace[-1].data["id"] == ids[2]
    assert ids[2] not in [v for _, v in app.messages.options]


# ----- narration ---------------------------------------------------------------------------------------
def test_narration_explains_recent_events_and_highlights_the_current_one(app: RaftLab) -> None:
    app.speed.value = 30
    tick(app)
    text = app.narration.value
    assert text.count("<li") == NARRATED
    last = app.sim.trace[-1].explain().replace("'", "&#x27;")
    assert f'font-weight:bold">{last}</li>' in text
    assert text.count("font-weight:bold") == 1


# ----- set-up --------------------------------------------------------------------------------------------
def test_reset_builds_a_new_simulation_of_the_chosen_size_and_seed(app: RaftLab) -> None:
    tick(app, 3)
    old = app.sim
    app.drop_rate.value = 0.1
    app.size.value, app.seed.value = 3, 7
    app.reset_button.click()
    assert app.sim is not old
    assert (app.sim.n, app.sim.seed, app.sim.steps) == (3, 7, 0)
    assert app.sim.network.drop == 0.1
    assert [v for _, v in app.node_picker.options] == [0, 1, 2] and len(app.sides) == 3
    assert app.time_slider.max == 0
    app.step_button.click()
    assert app.sim.steps == 1


def test_the_scenario_picker_replays_a_bundled_transcript(app: RaftLab) -> None:
    tick(app, 5)
    old = app.sim
    assert [v for _, v in app.scenario.options][1:] == list(TRANSCRIPTS)  # the same files as the tests and grader
    app.scenario.value = "leader_crash"
    assert app.sim is not old
    replayed = run_transcript("leader_crash").sim
    assert app.sim.trace.hash() == replayed.trace.hash()  # exactly the transcript's run
    assert app.sim.leader() == replayed.leader() is not None
    assert SimKind.CRASH in [e.kind for e in app.sim.trace]
    assert app.time_slider.value == app.sim.steps > 0
    assert (app.size.value, app.seed.value) == (app.sim.n, app.sim.seed)
    app.reset_button.click()
    assert app.scenario.value is None and app.sim.steps == 0


def test_a_students_own_transcript_replays_in_the_app(tmp_path: Path) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("# My scenario: node 2 times out first.\n\nsim n=3 seed=4\n\ntimeout 2\n\nrun-until leader=2\n")
    app = RaftLab.from_transcript(mine)
    assert app.sim.leader() == 2 and app.sim.n == 3
    again = RaftLab(n=5, seed=1)
    sim = again.load_transcript(str(mine))
    assert sim is again.sim and sim.leader() == 2 and len(again.node_picker.options) == 3
    assert "leader" in again.status.value


# ----- errors ----------------------------------------------------------------------------------------------
def test_a_failing_action_is_shown_in_the_app_and_the_app_keeps_working(app: RaftLab) -> None:
    for toggle in app.sides:
        toggle.value = "A"
    app.partition_button.click()  # no node on side B
    assert isinstance(app.last_error, ValueError)
    assert "ValueError" in app.errors.value and "each side" in app.errors.value
    assert app._error_box.layout.display != "none"
    assert app.sim.frame().cut == frozenset()
    app.step_button.click()
    assert app.sim.steps == 1

    def broken(node: int) -> None:
        raise RuntimeError("boom in crash")

    app.sim.crash = broken  # type: ignore[method-assign]
    app.crash_button.click()
    assert isinstance(app.last_error, RuntimeError)
    assert "boom in crash" in app.errors.value and "traceback" in app.errors.value
    app.step_button.click()
    assert app.sim.steps == 2
    app.dismiss_button.click()
    assert app.errors.value == "" and app._error_box.layout.display == "none"


def test_an_error_while_playing_stops_the_animation(app: RaftLab) -> None:
    app.play.playing = True

    def broken(*args: object) -> None:
        raise RuntimeError("step failed")

    app.sim.step = broken  # type: ignore[method-assign]
    tick(app)
    assert app.play.playing is False
    assert "step failed" in app.errors.value


def test_reset_keeps_a_wrapped_simulations_state_machine_and_replica() -> None:
    from raftlab.machines import Counter

    app = RaftLab(Simulation(3, seed=2, state_machine=Counter, snapshot_delta=4))
    app.size.value, app.seed.value = 4, 5
    app.reset_button.click()
    assert (app.sim.n, app.sim.seed, app.sim.state_machine, app.sim.snapshot_delta) == (4, 5, Counter, 4)
    app.request_button.click()
    assert isinstance(app.sim.replicas[0].machine, Counter)
