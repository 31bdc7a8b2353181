"""The widget app, headless: press its buttons, move its sliders, and check the simulation and the images."""

from __future__ import annotations

import pytest

from pathlib import Path

from raftlab.core import EventKind, ReadState, Replica, Role
from raftlab.machines import KVStore
from raftlab.sim import SimKind, Simulation, recipes
from raftlab.sim.share import PREFIX
from raftlab.sim.transcript import TRANSCRIPTS, run_transcript
from raftlab.widgets import RaftLab
from raftlab.widgets.app import CLIENT, NARRATED, OPTIONS, notable

BUTTONS = {"step_button": "Step", "back_button": "Step back", "notable_button": "Next notable",
           "crash_button": "Crash", "restart_button": "Restart", "timeout_button": "Time out",
           "request_button": "Client request", "heal_button": "Heal", "partition_button": "Apply partition",
           "drop_button": "Drop message", "reset_button": "Reset", "dismiss_button": "Dismiss",
           "transfer_button": "Transfer", "read_button": "Read", "compare_button": "Other side",
           "add_button": "Add node", "promote_button": "Promote", "remove_button": "Remove node",
           "share_button": "Share run", "open_button": "Open shared run"}


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


def test_next_notable_on_a_stable_cluster_stops_after_an_election_timeout_and_says_so(app: RaftLab) -> None:
    app.sim.run_until(lambda s: s.leader() is not None and all(r.commit_index >= 1 for r in s.replicas), timeout=5)
    app.notable_button.click()  # (the followers' commits of the no-op may still be on their way)
    start = app.sim.now
    app.notable_button.click()
    waited = app.sim.now - start
    # At most one election timeout (issue 16): it ran all of it, so that is what it waited.
    assert waited == pytest.approx(app.sim.election_timeout[1], abs=1e-6)
    assert "nothing notable for 0.30 s" in app.notice.value
    assert "the cluster is stable; heartbeats only" in app.notice.value
    app.sim.crash(app.sim.leader())
    for _ in range(3):  # without a leader, something notable comes within an election timeout or two
        app.notable_button.click()
    assert any(notable(e) for e in app.sim.trace.events if e.time / 1e6 > start + waited)


def test_next_notable_with_every_node_down_says_so_and_does_not_run_the_clock(app: RaftLab) -> None:
    app.sim.run(1.0)
    for node in app.sim.ids:
        app.sim.crash(node)
    app._refresh()
    before = (app.sim.now_us, app.sim.steps)
    app.notable_button.click()
    assert (app.sim.now_us, app.sim.steps) == before
    assert "every node is down, so nothing can happen" in app.notice.value


def test_next_notable_without_a_majority_says_so_not_that_the_cluster_is_stable(app: RaftLab) -> None:
    app.sim.run(1.0)
    leader = app.sim.leader()
    down = [i for i in app.sim.ids if i != leader][:3]
    for node in down:
        app.sim.crash(node)
    app.sim.submit(KVStore.put(9, 1, "x", "y"), to=leader)  # it cannot commit: a majority is down
    app._refresh()
    app.notable_button.click()
    said = app.notice.value
    assert "stable" not in said
    assert f"no majority: nodes {', '.join(map(str, down))} down, 2 of the 5 voters up" in said
    assert f"entry 2 waits uncommitted at leader {leader}" in said


def test_next_notable_says_a_cluster_is_stable_with_a_minority_down(app: RaftLab) -> None:
    app.sim.run(1.0)
    follower = next(i for i in app.sim.ids if i != app.sim.leader())
    app.sim.crash(follower)
    app._refresh()
    app.notable_button.click()
    assert f"the cluster is stable (node {follower} down; a majority up); heartbeats only" in app.notice.value


def test_next_notable_clears_its_stale_nothing_notable_when_it_finds_something(app: RaftLab) -> None:
    app.sim.run(1.0)
    app._refresh()
    app.notable_button.click()
    assert "nothing notable" in app.notice.value
    app.sim.crash(app.sim.leader())
    app._refresh()
    for _ in range(5):  # without a leader, something notable comes within an election timeout or two
        mark = len(app.sim.trace)
        app.notable_button.click()
        if any(notable(e) for e in app.sim.trace.events[mark:]):
            break
    else:
        pytest.fail("no election in five election timeouts")
    assert "nothing notable" not in app.notice.value and "stable" not in app.notice.value


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


def test_the_old_future_is_kept_as_a_branch_and_the_picker_switches_back_to_it(app: RaftLab) -> None:
    app.speed.value = 40
    tick(app)
    old_end, old_hash = app.sim.steps, app.sim.trace.hash()
    assert [label for label, _ in app.branch_picker.options] == ["branch 0: the first run (to step 40)"]
    app.time_slider.value = 12
    app.node_picker.value = 1
    app.crash_button.click()  # forks branch 1
    tick(app)
    new_end, new_hash = app.sim.steps, app.sim.trace.hash()
    assert [value for _, value in app.branch_picker.options] == [0, 1] and app.branch_picker.value == 1
    assert "crash(1) at step 12" in app.branch_picker.options[1][0]
    app.branch_picker.value = 0  # back to the first run: at the step the branches part, its end restored
    assert app.sim.branch == 0 and app.sim.steps == 12
    assert app.time_slider.max == old_end and app.time_slider.value == 12
    assert "branch 0" in app.notice.value and "back at step 12" in app.notice.value
    app.time_slider.value = old_end  # replays the first run, exactly
    assert app.sim.trace.hash() == old_hash and not app.sim.replicas[1].crashed
    app.branch_picker.value = 1
    assert app.time_slider.max == new_end
    app.time_slider.value = new_end
    assert app.sim.trace.hash() == new_hash and app.sim.replicas[1].crashed


def test_share_run_gives_a_text_that_open_shared_run_replays_exactly(app: RaftLab) -> None:
    app.speed.value = 30
    tick(app, 2)
    app.node_picker.value = 2
    app.crash_button.click()
    tick(app)
    end, end_hash = app.sim.steps, app.sim.trace.hash()
    app.time_slider.value = 35
    app.share_button.click()
    text = app.share_text.value
    assert text == app.share() and text.startswith(PREFIX)
    assert "step 35 of 90" in app.notice.value
    other = RaftLab(n=3, seed=9)  # a classmate's app: paste and open
    other.share_text.value = text
    other.open_button.click()
    assert other.last_error is None
    assert (other.sim.steps, other.sim.n, other.seed.value, other.time_slider.max) == (35, 5, 1, end)
    assert other.sim.trace.hash() == app.sim.trace.hash()
    other.time_slider.value = end
    assert other.sim.trace.hash() == end_hash and other.sim.replicas[2].crashed
    fresh = RaftLab.from_shared(text)
    assert fresh.sim.trace.hash() == app.sim.trace.hash()
    other.share_text.value = text[:40]  # copied in part: said in the app, nothing lost
    other.open_button.click()
    assert isinstance(other.last_error, ValueError) and "copied whole" in other.errors.value
    assert other.sim.steps == end


def test_a_run_shared_right_after_a_crash_opens(app: RaftLab) -> None:
    app.sim.run(1.0)
    app._refresh()
    app.node_picker.value = app.sim.leader()
    app.crash_button.click()  # made at the step shown
    app.share_button.click()
    other = RaftLab(n=3, seed=9)
    other.share_text.value = app.share_text.value
    other.open_button.click()
    assert other.last_error is None and "exactly as shared" in other.notice.value
    assert (other.sim.steps, other.sim.trace.hash(), other.sim.now_us) == (
        app.sim.steps, app.sim.trace.hash(), app.sim.now_us)
    assert other.sim.replicas[app.node_picker.value].crashed


def test_open_shared_run_replays_with_the_replica_class_the_text_names() -> None:
    from raftlab.grading.mutants import ResetsTimerOnEveryVoteRequest

    mutant = RaftLab(n=5, seed=4, replica_class=ResetsTimerOnEveryVoteRequest)
    mutant.sim.run(1.0)
    mutant.sim.crash(mutant.sim.leader())
    mutant.sim.run(1.0)
    mutant._refresh()
    mutant.share_button.click()
    other = RaftLab(n=5, seed=1)  # an app of the right Replica opens the mutant's run with the mutant
    other.share_text.value = mutant.share_text.value
    other.open_button.click()
    assert other.last_error is None and other.sim.replica_class is ResetsTimerOnEveryVoteRequest
    assert other.sim.trace.hash() == mutant.sim.trace.hash()


class Mine(Replica):
    """A student's replica (outside raftlab): a shared run of it opens in an app running it."""


def test_open_shared_run_of_a_students_class_needs_an_app_of_that_class() -> None:
    student = RaftLab(n=3, seed=5, replica_class=Mine)
    student.sim.run(0.6)
    student._refresh()
    student.share_button.click()
    text = student.share_text.value
    ta = RaftLab(n=3, seed=1, replica_class=Mine)
    ta.share_text.value = text
    ta.open_button.click()
    assert ta.last_error is None and ta.sim.replica_class is Mine
    assert ta.sim.trace.hash() == student.sim.trace.hash()
    plain = RaftLab(n=3, seed=1)  # runs raftlab's Replica: it says which class the run needs
    plain.share_text.value = text
    plain.open_button.click()
    assert isinstance(plain.last_error, ValueError) and "Mine" in str(plain.last_error)
    assert plain.sim.replica_class is Replica


def test_a_scenario_of_the_menu_with_max_entries_can_be_shared_and_opened(app: RaftLab) -> None:
    app.scenario.value = "figure8"  # built with a replica class made at runtime (max-entries)
    assert app.last_error is None
    app.share_button.click()
    assert app.last_error is None
    other = RaftLab(n=3, seed=9)
    other.share_text.value = app.share_text.value
    other.open_button.click()
    assert other.last_error is None and other.sim.trace.hash() == app.sim.trace.hash()
    assert other.sim.replica_class.MAX_ENTRIES_PER_MESSAGE == app.sim.replica_class.MAX_ENTRIES_PER_MESSAGE


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


def test_clicking_a_message_in_flight_selects_it_and_d_drops_it(app: RaftLab) -> None:
    elect(app)
    while len(app.sim.in_flight()) < 2:
        app.step_button.click()
    last = app.sim.in_flight()[-1].id
    x, y = app.graph_view.message_centre(last)
    app._on_graph_click({"relativeX": x * 500, "relativeY": y * 400, "boundingRectWidth": 500,
                         "boundingRectHeight": 400})
    assert app.graph_view.message_at(x, y) in (last, *[f.id for f in app.sim.in_flight()])
    assert app.messages.value == app.graph_view.message_at(x, y)
    chosen = app.messages.value
    assert f"message #{chosen} selected" in app.notice.value
    assert app.press("d") == "drop the message"
    assert chosen not in [f.id for f in app.sim.in_flight()]


def test_keys_do_what_their_buttons_do_and_the_help_line_lists_them(app: RaftLab) -> None:
    from raftlab.widgets.app import KEYS

    assert all(what in app.keys_help.value for _, what in KEYS.values())
    assert app.press("s") == "step" and app.sim.steps == 1
    assert app.press("b") == "step back" and app.sim.steps == 0
    app.press("n")
    while app.sim.leader() is None:
        app.press("n")
    assert app.press("l") == "select the leader" and app.node_picker.value == app.sim.leader()
    assert app.press("3") == "select node 3" and app.node_picker.value == 3
    assert app.press("k") == "crash" and app.sim.replicas[3].crashed
    assert app.press("r") == "restart" and not app.sim.replicas[3].crashed
    assert app.press("t") == "time out" and app.sim.replicas[3].role.value == "candidate"
    assert app.press("c") == "client request"
    assert not app.play.playing
    assert app.press(" ") == "play / pause" and app.play.playing
    app.press(" ")
    assert not app.play.playing
    assert app.press("q") is None and app.press("9") is None  # not a shortcut; no node 9
    app._on_key({"key": "S", "ctrlKey": True})  # Ctrl-S is the browser's, not a step
    steps = app.sim.steps
    app._on_key({"key": "S"})
    assert app.sim.steps == steps + 1


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


def test_narration_per_node_and_filtered_by_kind(app: RaftLab) -> None:
    from raftlab.viz.narration import CATEGORIES, category

    elect(app)
    app.narration_mode.value = "per node"
    table = app.narration.value
    assert table.startswith("<table") and all(f"node {i}</th>" in table for i in range(5))
    assert table.count("<tr style=") == NARRATED
    for name, box in app.narration_kinds.items():
        box.value = name == "votes"
    votes = [e for e in app.sim.trace.events if category(e) == "votes"][-NARRATED:]
    shown = app.narration.value
    assert all(e.explain().split("] ", 1)[1][:30].replace("'", "&#x27;") in shown for e in votes)
    assert " sent " not in shown and " received " not in shown and "timer fired" not in shown  # votes only
    app.narration_mode.value = "list"
    assert app.narration.value.count("<li") == len(votes)
    app.narration_kinds["votes"].value = False
    assert "no event of the kinds ticked" in app.narration.value
    assert set(app.narration_kinds) == set(CATEGORIES)


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
    values = [v for _, v in app.scenario.options]
    assert values[1:1 + len(TRANSCRIPTS)] == list(TRANSCRIPTS)  # the same files as the tests and grader
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


# ----- the thesis's mechanisms: options, Transfer, Read, recipes ----------------------------------------
@pytest.fixture
def thesis_app() -> RaftLab:
    app = RaftLab(n=5, seed=1)
    for name in OPTIONS:
        app.options[name].value = True
    app.reset_button.click()
    return app


def settle(app: RaftLab, seconds: float = 0.2) -> None:
    """Step the app's simulation on by `seconds` of virtual time (as Play would)."""
    end = app.sim.now + seconds
    app.speed.value = 50
    while app.sim.now < end:
        tick(app)


def test_the_option_checkboxes_apply_to_the_next_cluster(app: RaftLab) -> None:
    assert list(app.options) == list(OPTIONS) == ["pre_vote", "check_quorum", "read_lease"]
    assert not any(box.value for box in app.options.values()) and app.sim.options == {}
    app.options["pre_vote"].value = True
    assert app.sim.options == {}  # only on reset
    app.reset_button.click()
    assert app.sim.options == {"pre_vote": True}
    assert app.sim._replicas[0].pre_vote and not app.sim._replicas[0].check_quorum
    assert "PreVote" in app.status.value and "CheckQuorum" not in app.status.value
    app.options["read_lease"].value = True  # needs CheckQuorum: ticks it too
    assert app.options["check_quorum"].value
    app.reset_button.click()
    assert app.sim.options == {"pre_vote": True, "check_quorum": True, "read_lease": True}
    assert "PreVote, CheckQuorum, lease reads" in app.status.value
    app.options["check_quorum"].value = False  # and unticking CheckQuorum unticks lease reads
    assert not app.options["read_lease"].value
    app.reset_button.click()
    assert app.sim.options == {"pre_vote": True}
    app.timeout_button.click()  # with PreVote, a timeout asks for pre-votes first
    last = app.sim.trace[-1]
    assert last.kind == SimKind.SEND and type(last.data["message"]).__name__ == "PreVoteRequest"
    assert "pre-vote" in app.inspector.value and "asking for term 1" in app.inspector.value


def test_options_given_to_the_app_are_its_checkboxes() -> None:
    app = RaftLab(n=3, seed=2, pre_vote=True, check_quorum=True, max_inflight=4)
    assert [box.value for box in app.options.values()] == [True, True, False]
    app.options["pre_vote"].value = False
    app.reset_button.click()
    assert app.sim.options == {"check_quorum": True, "max_inflight": 4}


def test_transfer_hands_the_leadership_to_the_selected_node(thesis_app: RaftLab) -> None:
    app = thesis_app
    app.node_picker.value = 2
    app.transfer_button.click()  # no leader yet
    assert app.last_error is None and app.sim.trace.of_kind(SimKind.TRANSFER) == []
    assert "there is no leader" in app.notice.value and "wait for an election" in app.notice.value
    leader = elect(app)
    app.node_picker.value = leader
    app.transfer_button.click()
    assert f"node {leader} leads already" in app.notice.value and app.sim.trace.of_kind(SimKind.TRANSFER) == []
    target = (leader + 1) % 5
    app.node_picker.value = target
    app.transfer_button.click()
    assert app.last_error is None
    assert app.sim.trace.of_kind(SimKind.TRANSFER)[-1].data == {"to": target}
    assert f"leader {leader} hands its leadership to node {target}" in app.notice.value
    app.node_picker.value = leader
    assert f"to node {target}" in app.inspector.value and "transfer" in app.inspector.value
    assert app.graph_view.painter.transfer == (leader, target)
    settle(app, 0.1)
    assert app.sim.leader() == target
    assert app.graph_view.painter.transfer is None
    assert any(e.kind == EventKind.TIMEOUT_NOW_SENT for e in app.sim.trace)


def test_read_answers_in_the_notice_once_it_is_safe(thesis_app: RaftLab) -> None:
    app = thesis_app
    leader = elect(app)
    app.node_picker.value = leader
    app.request_button.click()  # puts k1 = 1
    settle(app)
    follower = (leader + 1) % 5
    app.node_picker.value = follower
    app.read_key.value = "k1"
    app.read_button.click()  # at a follower: ReadIndex from the leader, then applied that far
    read = app.sim.trace.of_kind(SimKind.READ_REQUEST)[-1]
    assert read.node == follower and read.data == {"key": "'k1'"}
    assert "Read</b> #1 of &#x27;k1&#x27; at node " + str(follower) + ": waiting" in app.notice.value
    settle(app, 0.1)
    assert "#1 of &#x27;k1&#x27;" in app.notice.value and "= &#x27;1&#x27;" in app.notice.value
    assert "linearizable" in app.notice.value
    reply = app.sim.trace.of_kind(SimKind.READ_REPLY)[-1]
    assert reply.data["state"] == "ready" and reply.data["value"] == "'1'"
    app.read_key.value = "nothing"
    app.node_picker.value = leader
    logs = [len(n.log) for n in app.sim.frame().nodes]
    app.read_button.click()  # at the leader, in its lease: at once
    assert "#2 of &#x27;nothing&#x27;" in app.notice.value and "has no value" in app.notice.value
    settle(app, 0.1)
    assert [len(n.log) for n in app.sim.frame().nodes] == logs  # no log write anywhere
    app.node_picker.value = follower
    app.crash_button.click()  # a read at a node that is down is abandoned at once
    app.read_button.click()
    assert "#3" in app.notice.value and "abandoned" in app.notice.value
    assert app.sim.reads[("read", 3)].state is ReadState.ABANDONED


def test_read_needs_a_state_machine_that_reads() -> None:
    from raftlab.machines import Counter

    class Tally(Counter):  # a machine that cannot answer reads
        read = None  # type: ignore[assignment]

    app = RaftLab(Simulation(3, seed=2, state_machine=Tally))
    app.read_button.click()
    assert app.last_error is None and app.sim.reads == {}
    assert "has no read(key)" in app.notice.value


def test_the_notice_follows_a_rewind(thesis_app: RaftLab) -> None:
    app = thesis_app
    leader = elect(app)
    app.node_picker.value = (leader + 1) % 5
    steps = app.sim.steps
    settle(app, 0.05)
    app.read_button.click()
    assert "Read</b> #1" in app.notice.value
    app.time_slider.value = steps  # back to before the read: it was not asked yet
    assert "Read</b>" not in app.notice.value


def test_the_scenario_menu_builds_the_recipes(app: RaftLab) -> None:
    values = [v for _, v in app.scenario.options]
    assert values[1 + len(TRANSCRIPTS):] == [("recipe", name) for name in recipes.RECIPES]
    app.seed.value = 3
    app.scenario.value = ("recipe", "partial-partition")
    built = recipes.build("partial-partition", seed=3)
    assert app.sim.trace.hash() == built.trace.hash() and app.sim.steps == built.steps > 0
    assert (app.size.value, app.seed.value) == (3, 3) and len(app.node_picker.options) == 3
    assert "Cloudflare" in app.scenario_text.value and "as the recipe tells it" in app.scenario_text.value
    assert app.compare_button.layout.display != "none"
    assert not app.options["pre_vote"].value
    app.compare_button.click()  # the other side: with PreVote and CheckQuorum
    other = recipes.build("partial-partition", seed=3, pre_vote=True, check_quorum=True)
    assert app.sim.trace.hash() == other.trace.hash()
    assert app.options["pre_vote"].value and app.options["check_quorum"].value
    assert "pre_vote and check_quorum on" in app.scenario_text.value
    app.compare_button.click()  # and back
    assert app.sim.trace.hash() == built.trace.hash()
    app.scenario.value = ("recipe", "lease-drift")  # a recipe with options of its own
    assert app.sim.options["read_lease"] and all(box.value for box in app.options.values())
    assert "lease" in app.status.value
    app.reset_button.click()  # a fresh cluster with those options
    assert app.scenario.value is None and app.compare_button.layout.display == "none"
    assert app.sim.options == {"pre_vote": True, "check_quorum": True, "read_lease": True}
    assert app.scenario_text.value == ""


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_opens_in_the_app_and_plays(name: str) -> None:
    app = RaftLab(n=5, seed=1)
    sim = app.load_recipe(name, seed=2)
    assert sim is app.sim and app.last_error is None
    assert app.sim.trace.hash() == recipes.build(name, seed=2).trace.hash()
    settle(app, 0.3)
    assert app.last_error is None
    for image in images(app):
        assert image.startswith(b"\x89PNG")


def test_a_recipe_runs_the_apps_replica_class() -> None:
    class Mine(Replica):
        pass

    app = RaftLab(Simulation(3, seed=1, replica_class=Mine))
    app.scenario.value = ("recipe", "transfer")
    assert app.sim.replica_class is Mine and app.last_error is None


# ----- membership change ------------------------------------------------------------------------------
def settled(app: RaftLab) -> int:
    """A 3-node app with a leader that has committed an entry of its term (so it takes a change)."""
    leader = elect(app)
    app.sim.run(0.5)
    app._refresh()
    return leader


def test_add_node_starts_a_learner_selects_it_and_grows_the_views() -> None:
    app = RaftLab(n=3, seed=1)
    app.add_button.click()
    assert "no leader" in app.notice.value and app.sim.n == 3 and app.last_error is None
    settled(app)
    app.add_button.click()
    assert app.last_error is None and app.sim.ids == (0, 1, 2, 3)
    assert app.node_picker.value == 3 and app.node_picker.options[-1] == ("node 3", 3) and len(app.sides) == 4
    assert "Add node 3" in app.notice.value and "learner" in app.notice.value
    app.sim.run_until_committed()
    app._refresh()
    assert app.graph_view.node_style[3]["membership"] == "learner" and app.graph_view.node_style[3]["hollow"]
    assert "committed" in app.notice.value and "a learner" in app.inspector.value
    app.time_slider.value = 1  # a rewind to before the node was added: the controls shrink back
    assert app.sim.ids == (0, 1, 2) and len(app.node_picker.options) == 3 and app.last_error is None


def test_add_node_refused_says_the_cores_reason_and_promote_asks_again() -> None:
    app = RaftLab(n=3, seed=1)
    elect(app)  # just elected: no entry of its term committed yet
    app.add_button.click()
    assert app.sim.membership(3) == "joining"
    assert "refused" in app.notice.value and "no entry of my term is committed yet" in app.notice.value
    assert "joining" in app.notice.value
    app.sim.run(0.5)
    app.promote_button.click()  # on a node still joining: asks for it as a learner again
    assert "again" in app.notice.value and app.last_error is None
    app.sim.run(0.5)
    assert app.sim.membership(3) == "learner"


def test_promote_makes_the_selected_learner_a_voter_or_says_why_not() -> None:
    app = RaftLab(n=3, seed=1)
    settled(app)
    app.node_picker.value = 0
    app.promote_button.click()
    assert "is not a learner" in app.notice.value and "a voter" in app.notice.value
    app.add_button.click()
    app.sim.run_until_committed()
    app.sim.run(0.5)
    app.promote_button.click()
    assert "appended the change" in app.notice.value, app.notice.value
    app.sim.run_until_committed()
    app._refresh()
    assert app.sim.membership(3) == "voter" and app.graph_view.node_style[3]["membership"] == "voter"


def test_remove_node_takes_the_selected_node_out_and_refuses_a_non_member() -> None:
    app = RaftLab(n=3, seed=1)
    leader = settled(app)
    node = (leader + 1) % 3
    app.node_picker.value = node
    app.remove_button.click()
    assert f"Remove node {node}" in app.notice.value and app.last_error is None
    app.sim.run_until_committed()
    app.sim.run(0.2)
    app._refresh()
    assert app.sim.membership(node) == "removed" and node in app.sim.removed
    assert app.graph_view.node_style[node]["crossed"] and "removed" in app.inspector.value
    app.remove_button.click()
    assert "is not a member" in app.notice.value and app.last_error is None


def test_the_app_refuses_more_nodes_than_it_draws() -> None:
    from raftlab.cli import main
    from raftlab.widgets.app import MAX_NODES

    with pytest.raises(ValueError, match=f"n: the app shows at most {MAX_NODES} nodes, not 12"):
        RaftLab(n=12)
    with pytest.raises(SystemExit):
        main(["app", "--nodes", "12", "--no-browser"])
    assert RaftLab(n=MAX_NODES).sim.n == MAX_NODES
