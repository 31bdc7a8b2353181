"""The narration of a run as HTML: the last events explained, as one list or as one column per node
(the way the course tool ``dslogs`` lays out a lab's log files), filtered by kind of event.

Pure functions from trace events to an HTML string; the RaftLab app shows them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from ..core import EventKind
from ..sim import SimKind, TraceEvent

_K, _S = EventKind, SimKind
CATEGORIES: dict[str, frozenset[str]] = {
    "votes": frozenset({_K.BECAME_CANDIDATE, _K.BECAME_LEADER, _K.BECAME_FOLLOWER, _K.VOTE_GRANTED, _K.VOTE_REFUSED,
                        _K.VOTE_IGNORED, _K.PRE_VOTE_STARTED, _K.PRE_VOTE_WON, _K.TRANSFER_STARTED,
                        _K.TIMEOUT_NOW_SENT, _K.TRANSFER_ABORTED, _S.TRANSFER}),
    "appends": frozenset({_K.APPENDED, _K.APPEND_REFUSED, _K.TRUNCATED, _K.FLOW_CHANGED, _K.SNAPSHOT_TAKEN,
                          _K.SNAPSHOT_INSTALLED, _K.CONFIGURATION_CHANGED, _K.CONFIG_REFUSED}),
    "commits": frozenset({_K.COMMITTED, _K.APPLIED, _K.READ_CONFIRMED, _K.READ_READY, _K.READ_ABANDONED,
                          _S.CLIENT_REQUEST, _S.CLIENT_REPLY, _S.READ_REQUEST, _S.READ_REPLY, _S.MEMBERSHIP}),
    "timers": frozenset({_S.TIMER, _S.CLOCK}),
    "messages": frozenset({_S.SEND, _S.DELIVER, _S.DROP, _S.DUPLICATE, _K.MESSAGE_DROPPED}),
    "faults": frozenset({_S.CRASH, _S.RESTART, _S.PAUSE, _S.RESUME, _S.NETWORK, _S.REMOVED}),
}
"""The kinds of event shown by each filter of the narration; every kind is in exactly one."""

_CATEGORY = {kind: name for name, kinds in CATEGORIES.items() for kind in kinds}
HIGHLIGHT = "background:#fff3b0;font-weight:bold"
_CELL = "border-top:1px solid #eee;padding:1px 6px;vertical-align:top"


def category(event: TraceEvent) -> str:
    """The filter (a key of `CATEGORIES`) that shows `event`."""
    return _CATEGORY.get(event.kind, "faults")


def shown(events: Iterable[TraceEvent], kinds: Iterable[str] | None = None) -> list[TraceEvent]:
    """The events whose category is in `kinds` (all of them when `kinds` is None)."""
    if kinds is None:
        return list(events)
    wanted = set(kinds)
    return [e for e in events if category(e) in wanted]


def column_of(event: TraceEvent) -> int | None:
    """The node an event is told under: the receiver of a delivered message, else its node (None:
    the cluster as a whole, such as a partition)."""
    if event.kind == SimKind.DELIVER and "to" in event.data:
        return event.data["to"]
    return event.node


def _sentence(event: TraceEvent) -> str:
    text = event.explain()
    return text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text


def narration_list(events: Sequence[TraceEvent], *, highlight: TraceEvent | None = None, first: int = 1) -> str:
    """The events explained, one numbered line each (numbered from `first`), `highlight` marked."""
    lines = [f'<li style="{HIGHLIGHT if e is highlight else ""}">{html.escape(e.explain())}</li>' for e in events]
    return f'<ol style="font-family:monospace;font-size:12px;margin:0" start="{first}">{"".join(lines)}</ol>'


def narration_columns(events: Sequence[TraceEvent], ids: Sequence[int], *,
                      highlight: TraceEvent | None = None) -> str:
    """The events as a table: a row each (its time and step), its sentence in the column of its node
    (`column_of`; a first column "cluster" for events of no node), `highlight` marked."""
    cluster = any(column_of(e) is None for e in events)
    columns: list[int | None] = ([None] if cluster else []) + list(ids)
    head = "".join(f"<th style='{_CELL}'>{'cluster' if c is None else f'node {c}'}</th>" for c in columns)
    rows = []
    for e in events:
        where = column_of(e)
        cells = "".join(f"<td style='{_CELL}'>{html.escape(_sentence(e)) if where == c else ''}</td>"
                        for c in columns)
        style = HIGHLIGHT if e is highlight else ""
        rows.append(f"<tr style='{style}'><td style='{_CELL};white-space:nowrap'>{e.seconds:.4f}s · "
                    f"{e.step}</td>{cells}</tr>")
    return (f"<table style='font-family:monospace;font-size:11px;border-collapse:collapse;table-layout:fixed;"
            f"width:100%'><tr><th style='{_CELL};width:9em'>time · step</th>{head}</tr>{''.join(rows)}</table>")
