"""The narration as HTML (raftlab.viz.narration): a list or one column per node, filtered by kind."""

from __future__ import annotations

import re

from raftlab.core import EventKind
from raftlab.sim import SimKind, Simulation
from raftlab.viz.narration import CATEGORIES, category, column_of, narration_columns, narration_list, shown


def kinds_of(cls: type) -> set[str]:
    return {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


def test_every_kind_of_event_is_in_exactly_one_filter() -> None:
    every = kinds_of(EventKind) | kinds_of(SimKind)
    listed = [kind for kinds in CATEGORIES.values() for kind in kinds]
    assert sorted(listed) == sorted(every)  # each once, none missing, none made up
    assert set(CATEGORIES) >= {"votes", "appends", "commits", "timers", "messages"}


def run() -> Simulation:
    sim = Simulation(n=3, seed=2)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    sim.crash(sim.leader())
    sim.run(0.5)
    return sim


def test_a_filter_keeps_its_kinds_only_and_none_keeps_all() -> None:
    events = run().trace.events
    votes = shown(events, ["votes"])
    assert votes and all(e.kind in CATEGORIES["votes"] for e in votes)
    assert {e.kind for e in votes} >= {EventKind.BECAME_CANDIDATE, EventKind.VOTE_GRANTED, EventKind.BECAME_LEADER}
    assert shown(events, None) == list(events)
    assert len(shown(events, ["votes", "messages"])) == len(votes) + len(shown(events, ["messages"]))


def test_columns_tell_each_event_under_its_node_and_a_delivery_under_its_receiver() -> None:
    sim = run()
    events = sim.trace.events[-40:]
    table = narration_columns(events, sim.ids, highlight=events[-1])
    assert re.findall(r"<th[^>]*>(.*?)</th>", table)[1:] == ["node 0", "node 1", "node 2"]
    rows = re.findall(r"<tr style='([^']*)'>(.*?)</tr>", table)
    assert len(rows) == len(events)
    for event, (style, row) in zip(events, rows, strict=True):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)[1:]
        filled = [i for i, cell in enumerate(cells) if cell]
        assert filled == [sim.ids.index(column_of(event))], (event, cells)
        assert ("fff3b0" in style) == (event is events[-1])
    delivery = next(e for e in events if e.kind == SimKind.DELIVER)
    assert column_of(delivery) == delivery.data["to"] != delivery.node
    assert category(delivery) == "messages"


def test_a_cluster_column_appears_for_events_of_no_node_and_the_list_numbers_from_first() -> None:
    sim = run()
    sim.partition([0], [1, 2])
    events = sim.trace.events[-5:]
    assert any(e.node is None for e in events)
    assert "<th style='border-top:1px solid #eee;padding:1px 6px;vertical-align:top'>cluster</th>" in (
        narration_columns(events, sim.ids))
    listed = narration_list(events, first=7)
    assert 'start="7"' in listed and listed.count("<li") == 5
