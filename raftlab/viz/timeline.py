"""The timeline: the last `window` seconds of virtual time, one lane per replica, with its roles,
the messages between lanes, elections, commits and a cursor at the current time.

Fast for long traces: the view keeps a small index of the trace (`TraceIndex`), read incrementally
(each event once, however often the view is redrawn), whose lists are in time order; a redraw
bisects them on time and touches only what lies inside the window (at most `MAX_MESSAGES` messages).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import LineStyleType

from ..core import EventKind
from ..sim import Frame, InFlight, SimKind, TraceEvent
from .style import (
    EMPTY_XY, FAMILIES, MESSAGE_FAMILY, PALETTE, TextStamps, figure_png, message_type, new_figure, rectangles,
    set_polygons, static_legend, strokes, xy_array,
)

MAX_LANES = 9
_ROLE_OF = {EventKind.BECAME_FOLLOWER: "follower", EventKind.BECAME_CANDIDATE: "candidate",
            EventKind.BECAME_LEADER: "leader", SimKind.CRASH: "crashed", SimKind.RESTART: "follower",
            SimKind.REMOVED: "removed"}
_BAND_ALPHA = {"follower": 0.4, "candidate": 0.8, "leader": 0.8, "crashed": 0.8}
_BAND_RGBA = {role: to_rgba(PALETTE[role], _BAND_ALPHA[role]) for role in _BAND_ALPHA}
_BAND_RGBA["removed"] = to_rgba("#E4E4E4", 0.9)  # shut down for good (membership change)
ABSENT = "absent"  # the role of a node before it was added (`add_node`): no band is drawn
_CHECKPOINT = 64
_MARKS = frozenset({EventKind.COMMITTED, EventKind.BECAME_LEADER, SimKind.CRASH})
MAX_MESSAGES = 800  # drawn at most (the most recent); a busy window holds thousands


class TraceIndex:
    """What the timeline needs from a trace, kept up to date incrementally (each event is read
    once, however often the view is redrawn; a trace that was cut short by a rewind, or replaced, is
    re-read): every role change (became_*, crash, restart) with the roles every 64 changes, every
    message sent with its fate, and the commits, elections and crashes, each in time order so that a
    window is found by bisection."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Forget every event read."""
        self.changes: list[tuple[int, int, str]] = []  # (time µs, node, role)
        self.checkpoints: list[dict[int, str]] = [{}]  # roles after changes[: 64 * k]
        self.sends: list[tuple] = []  # (time µs, source, destination, id, type, family, weight) by time
        self.send_times: list[int] = []
        self.ends: dict[int, tuple[int, str]] = {}  # message id -> (time µs, "delivered" or "lost")
        self.marks: list[tuple[int, int, str, Any]] = []  # (time µs, node, kind, index or term): commits...
        self.mark_times: list[int] = []
        self.born: dict[int, int] = {}  # node added while the simulation ran -> when (µs)
        self._seen = 0  # events read
        self._last: Any = None  # the last event read (to notice a replaced or shortened trace)

    def sync(self, events: Sequence[TraceEvent]) -> None:
        """Read the events not read yet."""
        if self._seen and (len(events) < self._seen or events[self._seen - 1] is not self._last):
            self._reset()
        changes = self.changes
        sends, send_times, ends, marks = self.sends, self.send_times, self.ends, self.marks
        for k in range(self._seen, len(events)):
            event = events[k]
            kind = event.kind
            if kind == SimKind.SEND or kind == SimKind.DUPLICATE:
                d = event.data
                message = d["message"]
                mtype = message_type(message)
                light = mtype == "AppendEntryResponse" or (mtype == "AppendEntryRequest" and not _entries(message))
                sends.append((event.time, event.node, d["to"], d["id"], mtype, MESSAGE_FAMILY.get(mtype, "append"),
                              "light" if light else "heavy"))
                send_times.append(event.time)
            elif kind == SimKind.DELIVER:
                ends[event.data["id"]] = (event.time, "delivered")
            elif kind == SimKind.DROP:
                ends[event.data["id"]] = (event.time, "lost")
            elif kind in _MARKS and event.node is not None:
                marks.append((event.time, event.node, kind, event.data.get("index", event.data.get("term"))))
                self.mark_times.append(event.time)
            role = _ROLE_OF.get(kind)
            if kind == SimKind.MEMBERSHIP and event.data.get("change") == "add" and event.node is not None:
                self.born.setdefault(event.node, event.time)
                role = "follower"
            if role is None or event.node is None:
                continue
            changes.append((event.time, event.node, role))
            if len(changes) % _CHECKPOINT == 0:
                self.checkpoints.append(self._replay(self.checkpoints[-1], changes[len(changes) - _CHECKPOINT:]))
        if len(events):
            self._seen, self._last = len(events), events[len(events) - 1]

    @staticmethod
    def _replay(roles: dict[int, str], changes: Sequence[tuple[int, int, str]]) -> dict[int, str]:
        roles = dict(roles)
        for _, node, role in changes:
            roles[node] = role
        return roles

    def roles_at(self, time_us: int) -> dict[int, str]:
        """Each node's role at `time_us` (after the changes made at that very time); a node not there
        yet: `ABSENT` if it was added later (``born``), else follower."""
        k = bisect_right(self.changes, time_us, key=itemgetter(0))
        base = k // _CHECKPOINT
        roles = self._replay(self.checkpoints[base], self.changes[base * _CHECKPOINT:k])
        for node, born in self.born.items():
            if born > time_us:
                roles[node] = ABSENT
        return roles

    def between(self, start_us: int, end_us: int) -> list[tuple[int, int, str]]:
        """The changes made after `start_us` up to `end_us`."""
        i = bisect_right(self.changes, start_us, key=itemgetter(0))
        j = bisect_right(self.changes, end_us, key=itemgetter(0))
        return self.changes[i:j]



class _Span(NamedTuple):
    """The stretch of virtual time drawn: `length` seconds up to `end` (now), also in microseconds."""

    start: float
    end: float
    start_us: int
    end_us: int
    length: float

    @classmethod
    def ending(cls, now: float, window: float) -> _Span:
        """The last `window` seconds (at least a millisecond) up to `now`."""
        length = max(float(window), 1e-3)
        return cls(now - length, now, round((now - length) * 1e6), round(now * 1e6), length)


class TimelinePainter:
    """Draws the timeline into one Axes of `parent` and updates it in place."""

    def __init__(self, parent: Figure | SubFigure, rect: tuple[float, float, float, float] = (0.075, 0.15, 0.91, 0.67),
                 *, legend: bool = True) -> None:
        self.parent = parent
        self.ax: Axes = parent.add_axes(rect)
        ax = self.ax
        ax.set_yticks([])
        ax.xaxis.set_visible(False)  # ticks are drawn by hand: an Axis costs milliseconds a frame
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        figure_transform = parent.transSubfigure  # (a Figure's is its transFigure)
        self.title = TextStamps(parent, figure_transform, size=9.5, weight="bold", ha="left", va="top",
                                color=PALETTE["text"])
        self.locator = MaxNLocator(nbins=8)
        self.tick_labels = TextStamps(ax, ax.get_xaxis_transform(), size=7, va="top", color="#333333")
        self.ticks = ax.add_line(Line2D([], [], color="#333333", linewidth=0.8, transform=ax.get_xaxis_transform(),
                                        clip_on=False))
        xlabel = TextStamps(ax, ax.transAxes, size=7, ha="right", va="top", color="#333333")
        xlabel.set([(1.0, -0.13, "virtual time (s)")])
        self.future = Rectangle((0, -1), 0, 100, facecolor="#F2F2F2", edgecolor="none", zorder=0)
        ax.add_patch(self.future)
        self.bands = PolyCollection([], edgecolors="none", zorder=1)
        self.highlight_line = LineCollection([], colors=[PALETTE["highlight"]], linewidths=6, zorder=1.8)
        for artist in (self.bands, self.highlight_line):
            ax.add_collection(artist)
        # One Line2D (segments separated by NaN) per family and weight: one path each to draw, and far
        # cheaper to set than a LineCollection of hundreds of segments.
        self.lines: dict[tuple[str, str], Line2D] = {}
        self.dots: dict[str, Line2D] = {}
        for family in FAMILIES:
            busy = family == "append"  # the bulk of the traffic: lighter, so the role bands stay visible
            looks: dict[str, tuple[float, float, LineStyleType]] = {  # weight -> alpha, width, line style
                "heavy": (0.55 if busy else 0.95, 0.8 if busy else 1.3, "-"), "light": (0.25, 0.5, "-"),
                "flight": (0.8, 1.1, (0, (2, 2)))}
            for weight, (alpha, width, style) in looks.items():
                self.lines[(family, weight)] = ax.add_line(Line2D([], [], color=PALETTE[family], alpha=alpha,
                                                                  linewidth=width, linestyle=style, zorder=2,
                                                                  antialiased=not busy and weight != "light"))
            # arrival dots of the requests and replies that matter (heartbeats and their acks get none)
            self.dots[family] = ax.add_line(Line2D([], [], linestyle="none", marker="o", markersize=2.2,
                                                   markeredgewidth=0, color=PALETTE[family], zorder=2.2))
        self.lost = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker="x", s=28, c=PALETTE["lost"], linewidths=1.8,
                               zorder=3)
        self.commits = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker="|", s=40, c=PALETTE["commit"], linewidths=1.2,
                                  zorder=3)
        self.elections = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker="*", s=120, c=PALETTE["leader"],
                                    edgecolors="#222222", linewidths=0.6, zorder=4)
        self.crashes = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker="X", s=50, c="#444444", zorder=4)
        self.election_labels = TextStamps(ax, ax.transData, size=6.5, ha="left", va="bottom", color="#114D3B",
                                          weight="bold", zorder=4)
        self.highlight_span = ax.axvline(0, color=PALETTE["highlight"], linewidth=5, alpha=0.8, zorder=0.5,
                                         visible=False)
        self.highlight_mark = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], s=200, facecolors="none",
                                         edgecolors="#C9B800", linewidths=2.5, zorder=5)
        self.cursor = ax.axvline(0, color="#D55E00", linewidth=1.4, zorder=5)
        self.lane_labels = TextStamps(ax, ax.get_yaxis_transform(), size=7.5, ha="right")
        if legend:
            entries: list[tuple[str, dict[str, Any]]] = [
                (r, {"patch": _BAND_RGBA[r]}) for r in ("follower", "candidate", "leader", "crashed", "removed")]
            entries += [(f, {"color": PALETTE[f], "linewidth": 1.5}) for f in FAMILIES]
            entries += [("lost", {"linestyle": "none", "marker": "x", "color": PALETTE["lost"],
                                  "markeredgewidth": 1.8, "markersize": 6}),
                        ("elected", {"linestyle": "none", "marker": "*", "markersize": 9,
                                     "color": PALETTE["leader"], "markeredgecolor": "#222222"}),
                        ("commit", {"linestyle": "none", "marker": "|", "markersize": 7, "color": PALETTE["commit"]})]
            self.legend = static_legend(parent, entries, top=0.905, ncol=7, left=0.075, right=0.995, row=0.04,
                                        size=6.5)
        self.history = TraceIndex()
        self.n = 0
        # What was drawn (for tests and for the widget app).
        self.bands_drawn: list[tuple[int, str, float, float]] = []  # (node, role, start s, end s)
        self.messages_drawn: dict[int, dict[str, Any]] = {}  # id -> type, source, destination, sent, end, fate
        self.elections_drawn: list[tuple[float, int, int]] = []  # (time s, node, term)
        self.commits_drawn: list[tuple[float, int, int]] = []  # (time s, node, index)
        self.events_scanned = 0
        self.highlighted: dict[str, Any] = {}

    def update(self, frame: Frame, trace_events: Any, *, window: float = 2.0,
               highlight: TraceEvent | None = None) -> None:
        """Redraw the window ending at `frame.time`: phase by phase, each setting its artists in place."""
        events: Sequence[TraceEvent] = getattr(trace_events, "events", trace_events)
        if not isinstance(events, Sequence):
            events = list(events)
        self.history.sync(events)
        span = _Span.ending(frame.time, window)
        self._draw_lanes(min(len(frame.nodes), MAX_LANES))
        self._draw_window(span, frame.leader)
        self._draw_bands(span)
        self.events_scanned = self._draw_messages(span, frame.in_flight) + self._draw_marks(span)
        self._highlight(highlight, self.n, self.messages_drawn)

    def _draw_lanes(self, n: int) -> None:
        """One lane per node, labelled (only when the number of nodes changes)."""
        if n != self.n:
            self.n = n
            self.ax.set_ylim(n - 0.45, -0.55)
            self.lane_labels.set([(-0.008, i, f"node {i}") for i in range(n)])

    def _draw_window(self, span: _Span, leader: int | None) -> None:
        """The time axis and its ticks, the cursor at now with the future shaded, and the title."""
        x0, x1 = (span.start, span.end + 0.06 * span.length) if span.start >= 0 else (0.0, 1.06 * span.length)
        self.ax.set_xlim(x0, x1)
        ticks = [v for v in self.locator.tick_values(x0, x1) if x0 <= v <= x1]
        self.tick_labels.set([(v, -0.05, f"{v:g}") for v in ticks])
        self.ticks.set_data(*strokes([ticks, ticks], [0, -0.025]))
        self.future.set_bounds(span.end, -1, x1 - span.end + 1, self.n + 2)
        self.cursor.set_xdata([span.end, span.end])
        self.title.set([(0.01, 0.985, f"timeline   the last {span.length:g} s up to t = {span.end:.3f} s"
                         + (f"   leader: node {leader}" if leader is not None else ""))])

    def _draw_bands(self, span: _Span) -> None:
        """Each lane coloured by the node's role: the role at the window's start, then each change in it."""
        roles = self.history.roles_at(span.start_us)
        current = {i: (roles.get(i, "follower"), max(span.start, 0.0)) for i in range(self.n)}
        bands: list[tuple[int, str, float, float]] = []
        for time_us, node, role in self.history.between(span.start_us, span.end_us):
            if node >= self.n:
                continue
            old, since = current[node]
            t = time_us / 1e6
            if role != old:
                if t > since:
                    bands.append((node, old, since, t))
                current[node] = (role, t)
        for node, (role, since) in current.items():
            bands.append((node, role, since, span.end))
        bands = [b for b in bands if b[1] != ABSENT]
        self.bands_drawn = bands
        if bands:
            arr = np.array([(b[2], b[3], b[0]) for b in bands])
            set_polygons(self.bands, rectangles(arr[:, 0], arr[:, 2] - 0.36, arr[:, 1], arr[:, 2] + 0.36))
            self.bands.set_facecolor([_BAND_RGBA[b[1]] for b in bands])
        else:
            self.bands.set_verts([])

    def _draw_messages(self, span: _Span, in_flight: Sequence[InFlight]) -> int:
        """An arrow per message sent in (or just before) the window; returns how many sends were looked at."""
        index = self.history
        margin_us = round(min(0.25 * span.length, 0.5) * 1e6)
        i1 = bisect_right(index.send_times, span.end_us)
        i0 = max(bisect_left(index.send_times, span.start_us - margin_us), i1 - MAX_MESSAGES)
        flying = {f.id: f.arrives for f in in_flight}
        lines: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {key: [] for key in self.lines}
        dots: dict[str, list[tuple[float, int]]] = {family: [] for family in self.dots}
        lost = []
        drawn: dict[int, dict[str, Any]] = {}
        n, ends, start_us, end_us = self.n, index.ends, span.start_us, span.end_us
        for sent, src, dst, mid, kind, family, weight in index.sends[i0:i1]:
            if src is None or src >= n or dst >= n:
                continue
            end = ends.get(mid)
            if end is not None and end[0] <= end_us:
                t_end, fate = end
            elif mid in flying:
                t_end, fate = flying[mid], "in flight"
            else:
                continue
            if t_end < start_us:
                continue
            xs, xe = sent / 1e6, t_end / 1e6
            if fate == "lost":
                # the lost message travels part of the way; it ends in a red cross
                xe = xs + max(xe - xs, 0.004 * span.length)
                ye = src + (dst - src) * 0.5
                lines[(family, weight)].append((xs, src, xe, ye))
                lost.append((xe, ye))
            elif fate == "in flight":
                lines[(family, "flight")].append((xs, src, xe, dst))
            else:
                lines[(family, weight)].append((xs, src, xe, dst))
                if weight == "heavy":
                    dots[family].append((xe, dst))
            drawn[mid] = {"type": kind, "family": family, "source": src, "destination": dst, "sent": xs, "end": xe,
                          "fate": fate}
        self.messages_drawn = drawn
        self._set_arrows(lines, dots, lost)
        return i1 - i0

    def _set_arrows(self, lines: dict[tuple[str, str], list[tuple[float, float, float, float]]],
                    dots: dict[str, list[tuple[float, int]]], lost: list[tuple[float, float]]) -> None:
        """Set the arrow lines (x0, y0, x1, y1) of each family and weight, the arrival dots and the lost crosses."""
        for key, segments in lines.items():
            if not segments:
                self.lines[key].set_data([], [])
                continue
            a = np.array(segments, dtype=float)
            self.lines[key].set_data(*strokes([a[:, 0], a[:, 2]], [a[:, 1], a[:, 3]]))
        for family, points in dots.items():
            self.dots[family].set_data([p[0] for p in points], [p[1] for p in points])
        self.lost.set_offsets(xy_array(lost))

    def _draw_marks(self, span: _Span) -> int:
        """The commits, elections (with their term) and crashes in the window; returns how many were looked at."""
        index = self.history
        j0, j1 = bisect_left(index.mark_times, span.start_us), bisect_right(index.mark_times, span.end_us)
        elections, commits, crashes = [], [], []
        for time_us, node, kind, value in index.marks[j0:j1]:
            if node >= self.n:
                continue
            if kind == EventKind.COMMITTED:
                commits.append((time_us / 1e6, node, value))
            elif kind == EventKind.BECAME_LEADER:
                elections.append((time_us / 1e6, node, value))
            else:
                crashes.append((time_us / 1e6, node))
        self.commits.set_offsets(xy_array([(t, node + 0.36) for t, node, _ in commits]))
        self.commits_drawn = commits
        self.elections.set_offsets(xy_array([(t, node) for t, node, _ in elections]))
        self.elections_drawn = elections
        self.crashes.set_offsets(xy_array(crashes))
        self.election_labels.set([(t + 0.008 * span.length, node - 0.12, f"term {term}")
                                  for t, node, term in elections])
        return j1 - j0

    def _highlight(self, event: TraceEvent | None, n: int, drawn: dict[int, dict[str, Any]]) -> None:
        self.highlighted = {}
        self.highlight_line.set_segments([])
        self.highlight_mark.set_offsets(EMPTY_XY)
        self.highlight_span.set_visible(False)
        if event is None:
            return
        t = event.time / 1e6
        self.highlight_span.set_xdata([t, t])
        self.highlight_span.set_visible(True)
        self.highlighted["time"] = t
        if event.node is not None and 0 <= event.node < n:
            self.highlight_mark.set_offsets(np.array([(t, event.node)]))
            self.highlighted["node"] = event.node
        data = event.data if isinstance(event.data, dict) else {}
        message_id = data.get("id")
        m = drawn.get(message_id) if message_id is not None else None
        if m is not None:
            y_end = m["destination"] if m["fate"] != "lost" else (m["source"] + m["destination"]) / 2
            self.highlight_line.set_segments([[(m["sent"], m["source"]), (m["end"], y_end)]])
            self.highlighted["message"] = message_id


def _entries(message: Any) -> Any:
    return message.get("entries") if isinstance(message, dict) else getattr(message, "entries", ())


class TimelineView:
    """The timeline in its own Figure, updated in place: ``update(frame, trace)`` then ``png()``."""

    def __init__(self, figsize: tuple[float, float] = (8, 3.0), dpi: float = 90) -> None:
        self.figure, self.canvas = new_figure(figsize, dpi)
        self.painter = TimelinePainter(self.figure)

    def update(self, frame: Frame, trace_events: Any, *, window: float = 2.0,
               highlight: TraceEvent | None = None) -> None:
        """Redraw the last `window` seconds up to `frame.time` from `trace_events` (a `Trace` or a
        time-ordered sequence of `TraceEvent`); `highlight` (an event) is emphasised."""
        self.painter.update(frame, trace_events, window=window, highlight=highlight)

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)

    @property
    def bands(self) -> list[tuple[int, str, float, float]]:
        """The role bands drawn: (node, role, start s, end s)."""
        return self.painter.bands_drawn

    @property
    def messages(self) -> dict[int, dict[str, Any]]:
        """The messages drawn, by id: type, family, source, destination, sent, end, fate."""
        return self.painter.messages_drawn


def draw_timeline(frame: Frame, trace_events: Any, window: float = 2.0, *,
                  highlight: TraceEvent | None = None, figsize: tuple[float, float] = (8, 3.0),
                  dpi: float = 90) -> Figure:
    """A new Figure of the timeline (one-shot; `TimelineView` updates one figure in place)."""
    view = TimelineView(figsize, dpi)
    view.update(frame, trace_events, window=window, highlight=highlight)
    return view.figure
