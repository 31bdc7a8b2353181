"""The renderers draw what the frame says: tests look at the artists and at what each view
records having drawn (`node_style`, `cut_links`, `message_marks`, `cell_style`, `bands`, ...)."""

from __future__ import annotations

import math
import struct
import zlib

import pytest
from matplotlib.figure import Figure

from raftlab.core import (
    EventKind, InstallSnapshotRequest, LogEntry, PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse,
    Role, TimeoutNow,
)
from raftlab.core.messages import MESSAGE_TYPES
from raftlab.machines import KVStore
from raftlab.sim import Frame, InFlight, NodeFrame, SimKind, Simulation, TraceEvent
from raftlab.viz import (
    MESSAGE_STYLE, PALETTE, ROLE_STYLE, GraphView, LogView, TimelineView, draw_graph, draw_logs, draw_timeline,
    frame_png, register_ipython_formatter,
)
from raftlab.viz.logs import MAX_CELLS
from raftlab.viz.style import FAMILIES, MESSAGE_FAMILY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def elected(n: int = 5, seed: int = 1, **kwargs) -> Simulation:
    sim = Simulation(n, seed, state_machine=KVStore, **kwargs)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    assert sim.leader() is not None
    return sim


def with_writes(n: int = 5, count: int = 6, **kwargs) -> Simulation:
    sim = elected(n, **kwargs)
    for k in range(1, count + 1):
        sim.one(KVStore.put(1, k, "x", str(k)))
    return sim


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode_png_ok(data: bytes) -> None:
    """Walk the chunks, check every CRC and that the image data inflates to the right size."""
    width, height = png_size(data)
    pos, idat = 8, b""
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == crc, tag
        if tag == b"IDAT":
            idat += body
        pos += 12 + length
    assert tag == b"IEND"
    channels = 3 if data[25] == 2 else 4
    assert len(zlib.decompress(idat)) == height * (1 + channels * width)


# ----- graph ---------------------------------------------------------------------------------------
def test_leader_has_the_leader_style() -> None:
    sim = elected()
    g = GraphView()
    g.update(sim.frame())
    leader = sim.leader()
    style = g.node_style[leader]
    assert style["role"] == "leader"
    assert style["color"] == PALETTE["leader"] == ROLE_STYLE["leader"]["color"]
    assert style["shape"] == "square" and "LEADER" in style["label"]
    for node, other in g.node_style.items():
        if node != leader:
            assert other["role"] == "follower" and other["shape"] == "circle" and other["color"] == PALETTE["follower"]
    assert len({ROLE_STYLE[r]["color"] for r in ROLE_STYLE}) == 4  # four distinct role colours
    assert len({ROLE_STYLE[r]["shape"] for r in ROLE_STYLE}) == 4  # and four distinct shapes


def test_crashed_node_has_the_crashed_style() -> None:
    sim = elected()
    victim = (sim.leader() + 1) % 5
    sim.crash(victim)
    g = GraphView()
    g.update(sim.frame())
    style = g.node_style[victim]
    assert style["role"] == "crashed" and style["color"] == PALETTE["crashed"] and style["shape"] == "cross"
    assert "crashed" in style["label"] and style["timer"] is None
    assert g.painter._nodes[victim]["cross"].get_visible()
    assert not g.painter._nodes[sim.leader()]["cross"].get_visible()


def test_candidate_has_the_candidate_style_and_a_timer() -> None:
    sim = elected()
    follower = (sim.leader() + 1) % 5
    sim.force_timeout(follower)
    g = GraphView()
    g.update(sim.frame())
    style = g.node_style[follower]
    assert style["role"] == "candidate" and style["shape"] == "diamond" and style["color"] == PALETTE["candidate"]
    assert 0 < style["timer"] <= 1
    assert g.painter._nodes[follower]["ring"].get_visible()


def test_cut_link_is_drawn_cut() -> None:
    sim = elected()
    g = GraphView()
    g.update(sim.frame())
    assert g.cut_links == frozenset() and len(g.painter.cut_lines.get_segments()) == 0
    sim.cut(1, 3)
    g.update(sim.frame())
    assert g.cut_links == frozenset({(1, 3)})
    assert len(g.painter.cut_lines.get_segments()) == 1
    assert len(g.painter.cut_marks.get_offsets()) == 1  # the x on the link
    assert g.painter.cut_lines.get_linestyle()[0][1] is not None  # dashed
    sim.heal()
    g.update(sim.frame())
    assert g.cut_links == frozenset() and len(g.painter.cut_marks.get_offsets()) == 0


def test_messages_in_flight_appear_with_their_type_style() -> None:
    sim = elected()
    sim.force_timeout((sim.leader() + 1) % 5)  # vote requests on their way
    frame = sim.frame()
    g = GraphView()
    g.update(frame)
    assert frame.in_flight
    kinds = {type(f.message).__name__ for f in frame.in_flight}
    assert "VoteRequest" in kinds
    for f in frame.in_flight:
        mark = g.message_marks[f.id]
        assert mark["type"] == type(f.message).__name__
        assert mark["color"] == MESSAGE_STYLE[mark["type"]]["color"]
        assert mark["marker"] == MESSAGE_STYLE[mark["type"]]["marker"]
    for kind, collection in g.painter.messages.items():
        assert len(collection.get_offsets()) == sum(type(f.message).__name__ == kind for f in frame.in_flight)
    # vote requests and append requests look different
    assert MESSAGE_STYLE["VoteRequest"]["color"] != MESSAGE_STYLE["AppendEntryRequest"]["color"]
    assert MESSAGE_STYLE["VoteRequest"]["filled"] != MESSAGE_STYLE["VoteResponse"]["filled"]


def test_a_message_is_drawn_at_its_progress() -> None:
    sim = elected()
    frame = sim.frame()
    flight = InFlight(999, 0, 1, InstallSnapshotRequest(0, 1, 5, 1, 0, None, True), 0,
                      round(frame.time * 2e6) or 2)
    frame = Frame(frame.time, frame.step, frame.seed, frame.nodes, (flight,), frozenset(), frame.leader)
    g = GraphView()
    g.update(frame)
    mark = g.message_marks[999]
    assert mark["type"] == "InstallSnapshotRequest" and mark["marker"] == "s"
    assert mark["progress"] == pytest.approx(0.5, abs=0.01)


def test_selected_node_is_outlined_and_highlight_is_shown() -> None:
    sim = elected()
    g = GraphView()
    event = next(e for e in reversed(sim.trace.events) if e.kind == EventKind.BECAME_LEADER)
    g.update(sim.frame(), selected=2, highlight=event)
    assert g.node_style[2]["selected"] and g.painter._nodes[2]["select"].get_visible()
    assert not any(g.painter._nodes[i]["select"].get_visible() for i in (0, 1, 3, 4))
    assert g.painter.highlighted["node"] == event.node
    assert g.painter._nodes[event.node]["halo"].get_visible()


def test_title_and_labels_say_time_leader_term_vote_commit() -> None:
    sim = with_writes(count=2)
    frame = sim.frame()
    g = GraphView()
    g.update(frame)
    title = g.painter.title.texts[0]
    assert f"{frame.time:.3f}" in title and f"leader: node {frame.leader}" in title
    for ns in frame.nodes:
        label = g.node_style[ns.id]["label"]
        assert f"term {ns.term}" in label and f"commit {ns.commit_index}" in label
        assert f"vote {ns.voted_for}" in label
    assert sorted(g.painter.ids.texts) == [str(i) for i in range(5)]


@pytest.mark.parametrize("n", range(1, 10))
def test_node_at_picks_each_node_at_its_centre(n: int) -> None:
    sim = Simulation(n, seed=2)
    sim.run(0.5)
    g = GraphView()
    g.update(sim.frame())
    for node in range(n):
        x, y = g.node_centre(node)
        assert 0 < x < 1 and 0 < y < 1
        assert g.node_at(x, y) == node
    assert g.node_at(0.01, 0.99) is None  # a corner: no node


def test_node_at_uses_image_coordinates_from_the_top_left() -> None:
    sim = Simulation(5, seed=2)
    g = GraphView()
    g.update(sim.frame())
    x, y = g.node_centre(0)  # node 0 is drawn on top
    assert y < 0.5
    assert g.node_at(x, y) == 0 and g.node_at(x, 1 - y) != 0


# ----- the thesis's messages and mechanisms ---------------------------------------------------------
THESIS_MESSAGES = (PreVoteRequest(1, 3, 4, 2), PreVoteResponse(2, 3, True), TimeoutNow(0, 2), ReadIndexRequest(3, 2, 1),
                   ReadIndexResponse(0, 2, 1, True, 7))


def test_every_message_type_has_a_look_of_its_own() -> None:
    names = [cls.__name__ for cls in MESSAGE_TYPES]
    assert set(MESSAGE_STYLE) == set(names) == set(MESSAGE_FAMILY)
    looks = {(st["color"], st["marker"], st["filled"]) for st in MESSAGE_STYLE.values()}
    assert len(looks) == len(names)  # no two types look alike
    assert len({st["label"] for st in MESSAGE_STYLE.values()}) == len(names)
    for name, st in MESSAGE_STYLE.items():
        assert st["color"] == PALETTE[MESSAGE_FAMILY[name]], name  # a type has its family's colour
        assert st["filled"] == name.endswith(("Request", "TimeoutNow")), name  # requests filled, replies hollow
    assert set(MESSAGE_FAMILY.values()) == set(FAMILIES)


def in_flight(frame: Frame, messages: tuple = THESIS_MESSAGES) -> Frame:
    """`frame` with `messages` in flight between nodes 0 and the others, half way."""
    now = round(frame.time * 1e6)
    flights = tuple(InFlight(900 + k, m.from_id, (m.from_id + 1) % len(frame.nodes), m, now - 1000, now + 1000)
                    for k, m in enumerate(messages))
    return Frame(frame.time, frame.step, frame.seed, frame.nodes, flights, frozenset(), frame.leader)


def test_the_thesis_messages_are_drawn_in_flight_with_their_style() -> None:
    frame = in_flight(elected().frame())
    g = GraphView()
    g.update(frame)
    for flight in frame.in_flight:
        name = type(flight.message).__name__
        mark = g.message_marks[flight.id]
        assert mark["type"] == name and mark["progress"] == pytest.approx(0.5)
        assert (mark["color"], mark["marker"], mark["filled"]) == tuple(
            MESSAGE_STYLE[name][k] for k in ("color", "marker", "filled"))
        assert len(g.painter.messages[name].get_offsets()) == 1  # on its type's own collection
    assert len(g.painter.messages) == len(MESSAGE_TYPES)
    decode_png_ok(g.png())
    legend = g.painter.legend.texts
    assert {"pre-vote", "TimeoutNow", "read index", "hollow: reply"} <= set(legend)


def test_a_simulation_with_the_options_shows_its_new_messages_and_the_timeline_their_families() -> None:
    sim = elected(pre_vote=True, check_quorum=True)
    sim.run(0.06)  # every follower has heard the leader
    leader = sim.leader()
    follower = (leader + 1) % 5
    read = sim.read("x", to=follower)  # a ReadIndexRequest, then its reply
    g = GraphView()
    g.update(sim.frame())
    assert "ReadIndexRequest" in {m["type"] for m in g.message_marks.values()}
    sim.run_until(lambda s: read.state is not None, 1.0)
    sim.transfer_leadership(follower)  # TimeoutNow (the follower is up to date)
    g.update(sim.frame())
    assert "TimeoutNow" in {m["type"] for m in g.message_marks.values()}
    sim.run(0.3)
    t = TimelineView()
    t.update(sim.frame(), sim.trace, window=1.0)
    families = {m["type"]: m["family"] for m in t.messages.values()}
    assert families.get("PreVoteRequest") == families.get("PreVoteResponse") == "vote"
    assert families["TimeoutNow"] == "transfer"
    assert families["ReadIndexRequest"] == families["ReadIndexResponse"] == "read"
    assert set(t.painter.lines) == {(f, w) for f in FAMILIES for w in ("heavy", "light", "flight")}
    assert t.painter.lines[("transfer", "heavy")].get_xydata().size
    assert {"transfer", "read"} <= set(t.painter.legend.texts)


def test_a_pre_vote_in_progress_is_a_dashed_ring_and_counted() -> None:
    sim = Simulation(5, seed=2, pre_vote=True)
    sim.run_until(lambda s: any(n.pre_votes for n in s.frame().nodes), 1.0)
    frame = sim.frame()
    asking = next(n for n in frame.nodes if n.pre_votes is not None)
    assert asking.role is Role.FOLLOWER and asking.id in asking.pre_votes and asking.term == 0  # nothing changed
    g = GraphView()
    g.update(frame)
    style = g.node_style[asking.id]
    assert style["pre_votes"] == asking.pre_votes
    assert style["label"].startswith(f"follower, pre-vote {len(asking.pre_votes)}/3\n")
    assert g.painter._nodes[asking.id]["pre_vote"].get_visible()
    others = [n.id for n in frame.nodes if n.pre_votes is None]
    assert others and not any(g.painter._nodes[i]["pre_vote"].get_visible() for i in others)
    sim.run_until(lambda s: s.leader() is not None, 2.0)  # the pre-vote won: an election, then a leader
    g.update(sim.frame())
    assert not any(node["pre_vote"].get_visible() for node in g.painter._nodes)
    assert all(style["pre_votes"] is None for style in g.node_style.values())


def test_a_transfer_in_progress_is_an_arrow_from_the_leader_to_its_target() -> None:
    sim = elected()
    leader = sim.leader()
    target = (leader + 2) % 5
    sim.disconnect(target)  # it cannot catch up: the transfer stays in progress until it is aborted
    sim.transfer_leadership(target)
    frame = sim.frame()
    lead = frame.nodes[leader]
    assert lead.transfer_to == target and frame.time < lead.transfer_deadline <= frame.time + 0.3 + 1e-9
    g = GraphView()
    g.update(frame)
    assert g.painter.transfer == (leader, target) and g.painter.transfer_arrow.get_visible()
    assert g.node_style[leader]["label"].startswith(f"LEADER \u2192 node {target}\n")
    assert g.node_style[leader]["transfer_to"] == target
    decode_png_ok(g.png())
    sim.run(0.4)  # aborted after an election timeout
    g.update(sim.frame())
    assert g.painter.transfer is None and not g.painter.transfer_arrow.get_visible()
    assert "\u2192" not in g.node_style[sim.leader()]["label"]


def test_a_candidates_votes_and_a_drifting_clock_are_labelled() -> None:
    sim = elected()
    follower = (sim.leader() + 1) % 5
    sim.set_clock_rate(follower, 1.25)
    sim.force_timeout(follower)
    frame = sim.frame()
    node = frame.nodes[follower]
    assert node.votes == (follower,) and node.clock_rate == 1.25
    # its timer is drawn in virtual time: its clock runs fast, so the deadline comes sooner
    replica_deadline = sim._replicas[follower].next_deadline
    assert node.deadline == pytest.approx(sim.virtual_us(follower, replica_deadline) / 1e6)
    g = GraphView()
    g.update(frame)
    label = g.node_style[follower]["label"]
    assert label.startswith("candidate, votes 1/3\n") and label.endswith("clock 1.25x")
    assert "clock" not in g.node_style[sim.leader()]["label"]


def test_views_keep_their_artists_with_the_options_on() -> None:
    sim = elected(pre_vote=True, check_quorum=True)
    g, t = GraphView(), TimelineView()
    counts = None
    for k in range(40):
        if k == 5:
            sim.transfer_leadership((sim.leader() + 1) % 5)
        if k == 20 and sim.leader() is not None:
            sim.force_timeout((sim.leader() + 2) % 5)
        sim.step()
        frame = in_flight(sim.frame(), THESIS_MESSAGES[: k % 6])
        g.update(frame, highlight=sim.trace.events[-1])
        t.update(frame, sim.trace)
        now = [count_artists(v.figure) for v in (g, t)]
        counts = counts or now
        assert now == counts, k


# ----- logs ----------------------------------------------------------------------------------------
def test_committed_cells_differ_from_uncommitted() -> None:
    sim = with_writes(count=3)
    leader = sim.leader()
    sim.submit(KVStore.put(1, 99, "y", "new"))  # appended by the leader, not yet committed
    frame = sim.frame()
    lg = LogView()
    lg.update(frame)
    last = frame.nodes[leader].log[-1].index
    committed, pending = lg.cell_style[(leader, 2)], lg.cell_style[(leader, last)]
    assert committed["committed"] and not pending["committed"]
    assert committed["hatch"] is None and pending["hatch"] is not None
    assert committed["alpha"] > pending["alpha"]
    assert pending["text"] == "put y" and committed["term"] == frame.nodes[leader].term
    assert len(lg.painter.uncommitted.get_paths()) == sum(not s["committed"] for s in lg.cell_style.values())
    assert len(lg.painter.committed.get_paths()) == sum(s["committed"] for s in lg.cell_style.values())
    assert lg.painter.committed.get_alpha() != lg.painter.uncommitted.get_alpha()


def test_cells_are_coloured_by_term_and_show_it() -> None:
    sim = with_writes(count=2)
    old = sim.leader()
    sim.crash(old)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.one(KVStore.put(1, 50, "z", "1"))
    lg = LogView()
    frame = sim.frame()
    lg.update(frame)
    leader = frame.leader
    terms = {s["term"]: s["color"] for (node, _), s in lg.cell_style.items() if node == leader}
    assert len(terms) >= 2 and len(set(terms.values())) == len(terms)
    assert {str(t) for t in terms} <= set(lg.painter.terms.texts)


def test_applied_cells_are_marked() -> None:
    sim = with_writes(count=3)
    lg = LogView()
    lg.update(sim.frame())
    assert any(s["applied"] for s in lg.cell_style.values())
    assert len(lg.painter.applied.get_segments()) == 5  # one underline per row


def test_snapshot_prefix_is_drawn_as_one_block() -> None:
    sim = elected(snapshot_delta=5)
    for k in range(1, 13):
        sim.one(KVStore.put(1, k, "x", str(k)))
    frame = sim.frame()
    compacted = [ns for ns in frame.nodes if ns.snapshot_index > 0]
    assert compacted
    lg = LogView()
    lg.update(frame)
    for ns in compacted:
        block = lg.snapshot_blocks[ns.id]
        assert block["last_index"] == ns.snapshot_index
        # no cell is drawn for a compacted index: the block stands for them all
        assert all((ns.id, i) not in lg.cell_style for i in range(1, ns.snapshot_index + 1))
        assert (ns.id, ns.snapshot_index + 1) in lg.cell_style or not ns.log
    assert len(lg.painter.snapshots.get_paths()) == len(compacted)  # one block per compacted row
    assert any(f"1\u2013{ns.snapshot_index}" in t for ns in compacted for t in lg.painter.snap_texts.texts)


def test_long_logs_show_the_last_indices_with_an_ellipsis() -> None:
    sim = elected(n=3)
    for k in range(1, 61):
        sim.submit(KVStore.put(1, k, "x", str(k)))
        sim.run(0.002)
    sim.run(0.5)
    frame = sim.frame()
    lg = LogView()
    lg.update(frame)
    lo, hi = lg.painter.visible_range
    assert hi == max(ns.snapshot_index + len(ns.log) for ns in frame.nodes)
    assert hi - lo + 1 == MAX_CELLS
    assert all(index >= lo for _, index in lg.cell_style)
    assert all(lg.painter.elided.values()) and len(lg.painter.ellipses.texts) == 3


def test_leader_next_and_match_index_are_marked() -> None:
    sim = with_writes(count=2)
    frame = sim.frame()
    lg = LogView()
    lg.update(frame)
    lead = frame.nodes[frame.leader]
    assert set(lg.markers) == set(range(5)) - {frame.leader}
    for follower, m in lg.markers.items():
        assert m == {"next": lead.next_index[follower], "match": lead.match_index[follower],
                     "flow": lead.flows[follower]}
        assert m["flow"] in ("probe", "replicate", "snapshot")
    assert len(lg.painter.next_marks.get_offsets()) == 4
    assert len(lg.painter.match_marks.get_offsets()) == 4


def test_crashed_rows_are_greyed() -> None:
    sim = with_writes(count=2)
    victim = (sim.leader() + 2) % 5
    sim.crash(victim)
    lg = LogView()
    lg.update(sim.frame())
    overlays = lg.painter.overlay.get_paths()
    assert len(overlays) == 1
    ys = overlays[0].vertices[:, 1]
    assert ys.min() < victim < ys.max()
    assert any("crashed" in t for t in lg.painter.row_labels.texts)


def test_log_highlight_outlines_the_cells_of_the_event() -> None:
    sim = with_writes(count=2)
    event = next(e for e in reversed(sim.trace.events) if e.kind == EventKind.COMMITTED)
    lg = LogView()
    lg.update(sim.frame(), highlight=event, selected=1)
    assert lg.painter.highlighted["cells"] == (event.node, event.data["index"], event.data["index"])
    assert lg.painter.highlight_box.get_visible() and lg.painter.selected_box.get_visible()


# ----- timeline ------------------------------------------------------------------------------------
def test_timeline_bands_follow_roles() -> None:
    sim = elected()
    leader = sim.leader()
    sim.run(0.3)
    sim.crash(leader)
    sim.run(0.2)
    t = TimelineView()
    t.update(sim.frame(), sim.trace, window=5.0)
    roles = {(node, role) for node, role, _, _ in t.bands}
    assert (leader, "leader") in roles and (leader, "crashed") in roles
    assert any(role == "follower" for _, role, _, _ in t.bands)
    last = max((b for b in t.bands if b[0] == leader), key=lambda b: b[2])
    assert last[1] == "crashed" and last[3] == pytest.approx(sim.now)
    assert len(t.painter.bands.get_paths()) == len(t.bands)
    assert t.painter.elections_drawn and t.painter.elections_drawn[0][1] == leader


def test_timeline_draws_messages_and_lost_ones_end_in_a_cross() -> None:
    sim = elected()
    sim.cut(sim.leader(), (sim.leader() + 1) % 5)
    sim.run(0.2)
    t = TimelineView()
    t.update(sim.frame(), sim.trace, window=0.5)
    fates = {m["fate"] for m in t.messages.values()}
    assert {"delivered", "lost"} <= fates
    lost = sum(m["fate"] == "lost" for m in t.messages.values())
    assert len(t.painter.lost.get_offsets()) == lost
    for mid, m in t.messages.items():
        assert sim.now - 0.5 - 0.2 <= m["sent"] <= m["end"] <= sim.now + 1
        assert m["type"] in MESSAGE_STYLE, mid


def test_timeline_window_reads_only_events_near_the_window() -> None:
    sim = elected()
    sim.run(5.0)
    t = TimelineView()
    t.update(sim.frame(), sim.trace, window=0.2)
    assert 0 < t.painter.events_scanned < len(sim.trace) / 5
    assert all(m["end"] >= sim.now - 0.2 for m in t.messages.values())
    assert t.painter.ax.get_xlim()[0] == pytest.approx(sim.now - 0.2)


def test_timeline_follows_a_rewind() -> None:
    sim = elected()
    sim.run(1.0)
    t = TimelineView()
    t.update(sim.frame(), sim.trace)
    sim.rewind(to_event=10)
    t.update(sim.frame(), sim.trace)
    assert all(end <= sim.now + 1e-9 for _, _, _, end in t.bands)
    assert all(m["sent"] <= sim.now + 1e-9 for m in t.messages.values())


def test_timeline_highlights_the_event() -> None:
    sim = elected()
    sim.run(0.2)
    event = next(e for e in reversed(sim.trace.events) if e.kind == SimKind.DELIVER)
    t = TimelineView()
    t.update(sim.frame(), sim.trace, highlight=event)
    assert t.painter.highlighted["time"] == pytest.approx(event.seconds)
    assert t.painter.highlighted["message"] == event.data["id"]
    assert len(t.painter.highlight_line.get_segments()) == 1


# ----- all views -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(1, 10))
def test_views_work_for_every_cluster_size(n: int) -> None:
    sim = Simulation(n, seed=n, state_machine=KVStore)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.submit(KVStore.put(1, 1, "x", "1"))
    sim.run(0.05)
    frame = sim.frame()
    g, lg, t = GraphView(), LogView(), TimelineView()
    g.update(frame, selected=n - 1)
    lg.update(frame, selected=n - 1)
    t.update(frame, sim.trace)
    assert len(g.node_style) == n and g.node_style[frame.leader]["role"] == "leader"
    assert {node for node, _ in lg.cell_style} == set(range(n))
    assert {node for node, _, _, _ in t.bands} == set(range(n))
    for view, size in ((g, (495, 450)), (lg, (720, 288)), (t, (720, 270))):
        assert png_size(view.png()) == size


def test_png_is_valid_and_changes_after_steps() -> None:
    sim = elected()
    views = [GraphView(), LogView(), TimelineView()]
    before = []
    frame = sim.frame()
    for v in views:
        v.update(frame, sim.trace) if isinstance(v, TimelineView) else v.update(frame)
        data = v.png()
        decode_png_ok(data)
        before.append(data)
    sim.submit(KVStore.put(1, 1, "x", "1"))
    for _ in range(6):
        sim.step()
    frame = sim.frame()
    for v, old in zip(views, before, strict=True):
        v.update(frame, sim.trace) if isinstance(v, TimelineView) else v.update(frame)
        data = v.png()
        decode_png_ok(data)
        assert data != old


def count_artists(figure: Figure) -> int:
    return len(figure.findobj())


def test_updates_reuse_the_figure_and_do_not_leak_artists() -> None:
    sim = elected()
    g, lg, t = GraphView(), LogView(), TimelineView()
    ids = [id(v.figure) for v in (g, lg, t)]
    counts = None
    for k in range(50):
        if k == 10:
            sim.submit(KVStore.put(1, 1, "x", "1"))
        if k == 20:
            sim.crash(sim.leader())
        if k == 25:
            sim.cut(0, 1)
        sim.step()
        frame = sim.frame()
        event = sim.trace.events[-1]
        g.update(frame, selected=k % 5, highlight=event)
        lg.update(frame, selected=k % 5, highlight=event)
        t.update(frame, sim.trace, highlight=event)
        for v in (g, lg, t):
            v.png()
        now = [count_artists(v.figure) for v in (g, lg, t)]
        if counts is None:
            counts = now
        assert now == counts, k
        assert [id(v.figure) for v in (g, lg, t)] == ids
        assert all(len(v.figure.axes) == 1 for v in (g, lg, t))


def test_one_shot_functions_make_new_figures() -> None:
    sim = elected()
    frame = sim.frame()
    a, b = draw_graph(frame), draw_graph(frame)
    assert isinstance(a, Figure) and a is not b
    assert isinstance(draw_logs(frame), Figure)
    assert isinstance(draw_timeline(frame, sim.trace, window=1.0), Figure)


def test_views_accept_a_plain_list_of_events_and_a_hand_made_frame() -> None:
    node = NodeFrame(0, False, Role.LEADER, 2, 0, 0, (LogEntry(KVStore.NOOP, 1, 2),), 0, 0, 1, 1,
                     {}, {}, {}, math.inf, (0.15, 0.3), 0.05)
    frame = Frame(0.5, 3, 1, (node,), (), frozenset(), 0)
    events = [TraceEvent(1, 100_000, EventKind.BECAME_LEADER, 0, "C-WIN", {"term": 2, "votes": [0]}),
              TraceEvent(2, 200_000, EventKind.COMMITTED, 0, "L-COMMIT", {"index": 1, "term": 2})]
    t = TimelineView()
    t.update(frame, events, window=1.0)
    assert [b[1] for b in t.bands] == ["follower", "leader"]
    assert t.painter.commits_drawn == [(0.2, 0, 1)]
    lg = LogView()
    lg.update(frame)
    assert lg.cell_style[(0, 1)]["text"] == "noop"


# ----- IPython -------------------------------------------------------------------------------------
class FakeFormatter:
    def __init__(self) -> None:
        self.types: dict = {}

    def for_type(self, cls, func):
        self.types[cls] = func


class FakeShell:
    def __init__(self) -> None:
        self.display_formatter = type("DF", (), {})()
        self.display_formatter.formatters = {"image/png": FakeFormatter()}


def test_ipython_formatter_registered_only_inside_ipython() -> None:
    assert register_ipython_formatter(None) is False or _inside_ipython()  # plain pytest: not in IPython
    assert register_ipython_formatter(object()) is False  # no display_formatter: not a shell
    shell = FakeShell()
    assert register_ipython_formatter(shell) is True
    func = shell.display_formatter.formatters["image/png"].types[Frame]
    sim = elected(n=3)
    data = func(sim.frame())
    decode_png_ok(data)
    assert data == frame_png(sim.frame())


def _inside_ipython() -> bool:
    import sys

    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


# ----- membership change --------------------------------------------------------------------------------
def membership_sim() -> Simulation:
    """3 nodes grown to 5 (node 3 promoted, node 4 a learner), then node 1 removed."""
    sim = elected(3)
    sim.run(0.5)
    node = sim.add_node()
    sim.run_until_committed()
    sim.add_node()
    sim.run_until_committed()
    sim.run(0.3)
    sim.promote(node)
    sim.run_until_committed()
    sim.remove_node(1)
    sim.run_until_committed()
    sim.run(0.3)
    return sim


def artists(figure: Figure) -> int:
    return sum(len(ax.get_children()) for ax in figure.axes) + len(figure.get_children())


def test_a_frame_with_learners_and_removed_nodes_renders() -> None:
    sim = membership_sim()
    frame = sim.frame()
    assert {ns.id: ns.membership for ns in frame.nodes} == {0: "voter", 1: "removed", 2: "voter", 3: "voter",
                                                            4: "learner"}
    graph, logs, timeline = GraphView(), LogView(), TimelineView()
    graph.update(frame, selected=4)
    logs.update(frame, selected=4)
    timeline.update(frame, sim.trace, window=3.0)
    for view in (graph, logs, timeline):
        assert view.png().startswith(PNG_MAGIC)
    style = graph.node_style
    assert style[4]["hollow"] and style[4]["linestyle"] != "-" and not style[4]["crossed"]
    assert style[1]["membership"] == "removed" and style[1]["crossed"] and "removed" in style[1]["label"]
    assert not style[0]["hollow"] and style[0]["linestyle"] == "-"
    assert all(1 not in edge for edge in graph.painter.edges_drawn)  # a removed node has no links
    assert "learners 4" in graph.painter.config_text
    assert any("node 4" in text and "learner" in text for _, _, text in logs.painter.row_labels.items)
    assert any(c[0] == 4 and s["text"] == "config" for c, s in logs.cell_style.items())
    bands = timeline.bands
    assert any(node == 1 and role == "removed" for node, role, _, _ in bands)
    added = min(e.time for e in sim.trace.events if e.kind == SimKind.MEMBERSHIP and e.node == 4) / 1e6
    assert min(start for node, _, start, _ in bands if node == 4) >= added  # no lane before it was added


def test_the_graph_grows_from_3_to_5_nodes_in_place_without_leaking_artists() -> None:
    sim = elected(3)
    sim.run(0.5)
    view = GraphView()
    view.update(sim.frame())
    before = view.painter.pos.copy()
    counts = []
    for _ in range(2):
        sim.add_node()
        sim.run_until_committed()
        view.update(sim.frame())
        counts.append(artists(view.figure))
    assert view.painter.n == 5 and sorted(view.node_style) == [0, 1, 2, 3, 4]
    assert (view.painter.pos[:3] == before).all()  # the first nodes keep their places
    assert len({tuple(p.round(6)) for p in view.painter.pos}) == 5
    assert view.png().startswith(PNG_MAGIC)
    sim.rewind(sim.steps - 1)  # same size: nothing is rebuilt
    view.update(sim.frame())
    assert artists(view.figure) == counts[-1]
    per_node = counts[1] - counts[0]
    sim.rewind(0)  # back to 3 nodes and forward again: the artists of the nodes gone are removed
    view.update(sim.frame())
    assert artists(view.figure) == counts[0] - per_node
    view.update(membership_sim().frame())
    assert artists(view.figure) == counts[-1]


def test_the_png_encoder_round_trips_and_the_views_are_opaque() -> None:
    import io

    import matplotlib.image
    import numpy as np

    from raftlab.viz import GraphView, LogView, TimelineView
    from raftlab.viz.style import encode_png

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    decoded = matplotlib.image.imread(io.BytesIO(encode_png(image)), format="png")
    assert decoded.shape == (7, 5, 4) and np.array_equal(np.round(decoded * 255).astype(np.uint8), image)
    sim = Simulation(5, 1)
    sim.run(1.0)
    frame = sim.frame()
    for view in (GraphView(), LogView(), TimelineView()):
        view.update(frame) if not isinstance(view, TimelineView) else view.update(frame, sim.trace)
        pixels = matplotlib.image.imread(io.BytesIO(view.png()), format="png")
        assert pixels.shape[2] == 4 and pixels[:, :, 3].min() == 1.0, type(view).__name__  # (RGBA, opaque)
