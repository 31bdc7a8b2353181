"""The replicated logs: one row per replica, one cell per index, coloured by term."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..core import EventKind
from ..sim import Frame, NodeFrame, TraceEvent
from .style import (
    PALETTE, ROLE_STYLE, TextStamps, figure_png, label_look, new_figure, rectangles, role_key, set_polygons,
    short_text, strokes, term_color, xy_array,
)

MAX_CELLS = 40  # indices shown at most; older ones are behind an ellipsis
MIN_COLUMNS = 16  # a short log still gets cells this narrow at most (so the text fits)
MAX_ROWS = 9
_CELL_H = 0.74  # cell height (rows are 1 apart)
_INDEX_KINDS = {EventKind.APPENDED: ("first", "last"), EventKind.TRUNCATED: ("first", "first"),
                EventKind.COMMITTED: ("index", "index"), EventKind.APPLIED: ("index", "index"),
                EventKind.SNAPSHOT_TAKEN: ("index", "index"), EventKind.SNAPSHOT_INSTALLED: ("index", "index")}


class _Columns(NamedTuple):
    """The indices shown, lo to hi, and how the x axis fits them."""

    lo: int
    hi: int
    columns: int  # cell columns (at least one spare after the last index)
    prefix: float  # the width of the snapshot / ellipsis area left of the cells
    cell_px: float  # the width of a cell, in pixels


def _set_cells(collection: PolyCollection, cells: Sequence[tuple[int, float, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Make `collection` the cells given as (x, y, colour); returns their lower-left corners."""
    xs, ys, colors = zip(*cells, strict=True) if cells else ((), (), ())
    x0, y0 = np.array(xs, float), np.array(ys, float)
    set_polygons(collection, rectangles(x0, y0, x0 + 1.0, y0 + _CELL_H))
    collection.set_facecolor(list(colors))
    return x0, y0


class LogsPainter:
    """Draws every replica's log into one Axes of `parent` and updates it in place."""

    def __init__(self, parent: Figure | SubFigure, rect: tuple[float, float, float, float] = (0.135, 0.13, 0.855, 0.73),
                 *, legend: bool = True) -> None:
        self.parent = parent
        self.ax: Axes = parent.add_axes(rect)
        ax = self.ax
        ax.set_axis_off()
        figure_transform = parent.transSubfigure  # (a Figure's is its transFigure)
        self.title = TextStamps(parent, figure_transform, size=9.5, weight="bold", va="top", color=PALETTE["text"])
        if legend:
            self.legend = TextStamps(parent, figure_transform, size=6.5, va="bottom", color="#555555")
            self.legend.set([(0.5, 0.025, "solid = committed    hatched = not yet committed    underline = applied"
                              "    grey block = snapshot    \u25bc next / \u25b2 match index (leader's view)")])
        self.committed = PolyCollection([], edgecolors="#333333", linewidths=0.6, zorder=2)
        # not committed: a pale fill, a dashed edge and two diagonal strokes (a hand-made hatch: Agg's
        # hatching costs about half a millisecond a cell)
        self.uncommitted = PolyCollection([], edgecolors="#666666", linewidths=0.7, linestyles=(0, (2, 1.5)),
                                          alpha=0.45, zorder=2)
        self.hatch = Line2D([], [], color="#555555", linewidth=0.6, alpha=0.8, zorder=2.1)
        ax.add_line(self.hatch)
        self.snapshots = PolyCollection([], facecolors="#C8C8C8", edgecolors="#444444", linewidths=1.0, zorder=2)
        self.overlay = PolyCollection([], facecolors="#FFFFFF", edgecolors="none", alpha=0.6, zorder=4)
        self.applied = LineCollection([], colors="#222222", linewidths=2.0, zorder=3)
        for artist in (self.committed, self.uncommitted, self.snapshots, self.overlay, self.applied):
            ax.add_collection(artist)
        self.next_marks = ax.scatter([], [], marker="v", s=26, c=PALETTE["leader"], edgecolors="#222222",
                                     linewidths=0.5, zorder=5)
        self.match_marks = ax.scatter([], [], marker="^", s=26, c=PALETTE["leader"], edgecolors="#222222",
                                      linewidths=0.5, zorder=5)
        self.selected_box = Rectangle((0, 0), 1, 1, facecolor="none", edgecolor=PALETTE["selected"], linewidth=1.8,
                                      zorder=6, visible=False)
        self.highlight_box = Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="#C9B800", linewidth=3.0, zorder=6,
                                       visible=False)
        self.highlight_fill = Rectangle((0, 0), 1, 1, facecolor=PALETTE["highlight"], edgecolor="none", alpha=0.7,
                                        zorder=1, visible=False)
        for box in (self.selected_box, self.highlight_box, self.highlight_fill):
            ax.add_patch(box)
        ytrans = ax.get_yaxis_transform()  # x in axes fraction, y in data
        self.row_labels = TextStamps(ax, ytrans, size=7, ha="right", linespacing=1.2, zorder=3)
        self.snap_texts = TextStamps(ax, ax.transData, size=6, zorder=3)
        self.ellipses = TextStamps(ax, ax.transData, size=11, color="#555555", weight="bold", zorder=3)
        self.terms = TextStamps(ax, ax.transData, size=6.5, zorder=3)
        self.ops = TextStamps(ax, ax.transData, size=5.5, color="#333333", zorder=3)
        self.header = TextStamps(ax, ax.transData, size=6, color="#555555", va="bottom", zorder=3)
        # What was drawn (for tests and for the widget app).
        self.cell_style: dict[tuple[int, int], dict[str, Any]] = {}
        self.snapshot_blocks: dict[int, dict[str, Any]] = {}
        self.elided: dict[int, bool] = {}
        self.markers: dict[int, dict[str, int | None]] = {}  # None: the leader does not know
        self.visible_range: tuple[int, int] = (1, 0)
        self.highlighted: dict[str, Any] = {}

    def update(self, frame: Frame, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        """Redraw for `frame`: phase by phase, each setting its artists in place."""
        nodes = frame.nodes[:MAX_ROWS]
        w = self._draw_axes(nodes)
        self._draw_cells(nodes, w)
        self._draw_prefix(nodes, w)
        self._draw_applied(nodes, w)
        self._draw_markers(nodes, frame.leader, w)
        self._draw_rows(nodes, w)
        self._draw_header(w)
        self._draw_selection(selected, len(nodes), w)
        self._highlight(highlight, w.lo, w.hi, len(nodes))

    def _draw_axes(self, nodes: Sequence[NodeFrame]) -> _Columns:
        """The indices shown (the last `MAX_CELLS`), the axes' limits to fit them, and the title."""
        hi = max([ns.snapshot_index + len(ns.log) for ns in nodes] + [1])
        lo = max(1, hi - MAX_CELLS + 1)
        columns = max(hi - lo + 2, MIN_COLUMNS)  # one spare column for next_index just after the log
        prefix = 0.19 * columns  # the snapshot / ellipsis area, left of the cells
        self.ax.set_xlim(-prefix, columns)
        self.ax.set_ylim(len(nodes) - 0.35, -1.0)
        shown = f"indices {lo}\u2013{hi}" + (f", the last {MAX_CELLS}" if lo > 1 else "")
        self.title.set([(0.5, 0.985, f"logs   ({shown})")])
        self.visible_range = (lo, hi)
        return _Columns(lo, hi, columns, prefix, self.ax.bbox.width / (columns + prefix))

    def _draw_cells(self, nodes: Sequence[NodeFrame], w: _Columns) -> None:
        """One cell per entry shown, filled by term, hatched until committed, with its term and operation."""
        lo, show_ops = w.lo, w.cell_px >= 30
        cells: dict[bool, list[tuple[int, float, str]]] = {True: [], False: []}  # committed? -> x, y, colour
        terms, ops = [], []
        style: dict[tuple[int, int], dict[str, Any]] = {}
        for row, ns in enumerate(nodes):
            y, start = row - _CELL_H / 2, max(lo, ns.snapshot_index + 1)
            for entry in ns.log[start - ns.snapshot_index - 1:] if ns.log else ():
                index, term = entry.index, entry.term
                x, committed, color = index - lo, index <= ns.commit_index, term_color(term)
                cells[committed].append((x, y, color))
                text = short_text(entry.transition)
                style[(ns.id, index)] = {"term": term, "color": color, "committed": committed,
                                         "hatch": None if committed else "//", "alpha": 1.0 if committed else 0.45,
                                         "applied": index <= ns.last_applied, "text": text}
                terms.append((x + 0.5, row - 0.15 if show_ops else row, str(term)))
                if show_ops:
                    ops.append((x + 0.5, row + 0.17, text))
        self.cell_style = style
        self.terms.set(terms)
        self.ops.set(ops)
        _set_cells(self.committed, cells[True])
        ux, uy = _set_cells(self.uncommitted, cells[False])
        if len(ux):  # two strokes across each uncommitted cell
            self.hatch.set_data(*strokes([ux + 0.12, ux + 0.5, np.nan, ux + 0.5, ux + 0.88],
                                         [uy + _CELL_H * 0.5, uy, np.nan, uy + _CELL_H, uy + _CELL_H * 0.5]))
        else:
            self.hatch.set_data([], [])

    def _draw_prefix(self, nodes: Sequence[NodeFrame], w: _Columns) -> None:
        """Left of the cells: each snapshot as a grey block (over the indices it covers too), or an ellipsis."""
        top = -_CELL_H / 2
        verts, texts, ellipses = [], [], []
        self.snapshot_blocks, self.elided = {}, {}
        for row, ns in enumerate(nodes):
            if ns.snapshot_index > 0:
                x0 = -w.prefix * 0.97
                x1 = -w.prefix * 0.2 if ns.snapshot_index < w.lo else ns.snapshot_index - w.lo + 1
                verts.append([(x0, row + top), (x1, row + top), (x1, row - top), (x0, row - top)])
                texts.append(((x0 + min(x1, -w.prefix * 0.2)) / 2, row,
                              f"snapshot\n1\u2013{ns.snapshot_index} (t{ns.snapshot_term})"))
                self.snapshot_blocks[ns.id] = {"last_index": ns.snapshot_index, "term": ns.snapshot_term,
                                               "x0": x0, "x1": x1}
            self.elided[ns.id] = w.lo > ns.snapshot_index + 1 and len(ns.log) > 0
            if self.elided[ns.id]:
                ellipses.append((-w.prefix * 0.1, row, "\u2026"))
        self.snapshots.set_verts(verts)
        self.snap_texts.set(texts)
        self.ellipses.set(ellipses)

    def _draw_applied(self, nodes: Sequence[NodeFrame], w: _Columns) -> None:
        """An underline under each replica's applied cells."""
        segments = []
        for row, ns in enumerate(nodes):
            first, end = max(w.lo, ns.snapshot_index + 1) - w.lo, min(ns.last_applied, w.hi) - w.lo + 1
            if end > first:
                y = row + _CELL_H / 2 + 0.07
                segments.append([(first, y), (end, y)])
        self.applied.set_segments(segments)

    def _draw_markers(self, nodes: Sequence[NodeFrame], leader: int | None, w: _Columns) -> None:
        """The leader's next index (\u25bc, above) and match index (\u25b2, below) for each follower."""
        lead = nodes[leader] if leader is not None and leader < len(nodes) else None
        next_xy, match_xy = [], []
        self.markers = {}
        for row, ns in enumerate(nodes):
            if lead is None or ns.id == lead.id:
                continue
            nxt, match = lead.next_index.get(ns.id), lead.match_index.get(ns.id)
            self.markers[ns.id] = {"next": nxt, "match": match, "flow": lead.flows.get(ns.id)}
            if nxt is not None and w.lo <= nxt <= w.lo + w.columns - 1:
                next_xy.append((nxt - w.lo + 0.5, row - _CELL_H / 2 - 0.06))
            if match is not None and w.lo <= match <= w.hi:
                match_xy.append((match - w.lo + 0.5, row + _CELL_H / 2 + 0.12))
        self.next_marks.set_offsets(xy_array(next_xy))
        self.match_marks.set_offsets(xy_array(match_xy))

    def _draw_rows(self, nodes: Sequence[NodeFrame], w: _Columns) -> None:
        """Each row's label (node, role, membership unless a voter, term, commit, and next/match/flow when
        known), greyed out if crashed or removed."""
        labels, colors, weights, overlay = [], [], [], []
        for row, ns in enumerate(nodes):
            key = role_key(ns.role, ns.crashed)
            line2 = f"term {ns.term}  commit {ns.commit_index}"
            if ns.id in self.markers:
                mark = self.markers[ns.id]
                line2 += f"\nnext {mark['next']}  match {mark['match']}  {mark['flow'] or ''}"
            member = "" if ns.membership == "voter" else f" \u00b7 {ns.membership}"
            labels.append((-0.01, row, f"node {ns.id}  {ROLE_STYLE[key]['text']}{member}\n{line2}"))
            color, weight = label_look(key, ns.crashed or ns.membership == "removed")
            colors.append(color)
            weights.append(weight)
            if ns.crashed or ns.membership == "removed":
                overlay.append([(-w.prefix, row - 0.5), (w.columns, row - 0.5), (w.columns, row + 0.5),
                                (-w.prefix, row + 0.5)])
        self.row_labels.set(labels, colors, weights)
        self.overlay.set_verts(overlay)

    def _draw_header(self, w: _Columns) -> None:
        """The index numbers above the cells (every fifth one when the cells are narrow)."""
        step = 1 if w.cell_px >= 16 else 5
        self.header.set([(index - w.lo + 0.5, -0.47, str(index)) for index in range(w.lo, w.hi + 1)
                         if step == 1 or index % step == 0 or index == w.lo])

    def _draw_selection(self, selected: int | None, n: int, w: _Columns) -> None:
        """The outline round the selected replica's row."""
        if selected is not None and 0 <= selected < n:
            self.selected_box.set_bounds(-w.prefix, selected - 0.5, w.columns + w.prefix, 1.0)
            self.selected_box.set_visible(True)
        else:
            self.selected_box.set_visible(False)

    def _highlight(self, event: TraceEvent | None, lo: int, hi: int, n: int) -> None:
        self.highlight_box.set_visible(False)
        self.highlight_fill.set_visible(False)
        self.highlighted = {}
        if event is None or event.node is None or not 0 <= event.node < n:
            return
        row = event.node
        self.highlight_fill.set_bounds(self.ax.get_xlim()[0], row - 0.5, self.ax.get_xlim()[1] - self.ax.get_xlim()[0],
                                       1.0)
        self.highlight_fill.set_visible(True)
        self.highlighted["row"] = row
        names = _INDEX_KINDS.get(event.kind)
        data = event.data if isinstance(event.data, dict) else {}
        if names is None or data.get(names[0]) is None:
            return
        first, last = int(data[names[0]]), int(data[names[1]] if names[1] in data else data[names[0]])
        first, last = max(first, lo), min(last, hi)
        if first > last:
            return
        self.highlight_box.set_bounds(first - lo - 0.05, row - _CELL_H / 2 - 0.08, last - first + 1.1, _CELL_H + 0.16)
        self.highlight_box.set_visible(True)
        self.highlighted["cells"] = (row, first, last)


class LogView:
    """The logs in their own Figure, updated in place: ``update(frame)`` then ``png()``."""

    def __init__(self, figsize: tuple[float, float] = (8, 3.2), dpi: float = 90) -> None:
        self.figure, self.canvas = new_figure(figsize, dpi)
        self.painter = LogsPainter(self.figure)

    def update(self, frame: Frame, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        """Redraw for `frame`; `selected`'s row is outlined; `highlight`'s cells are emphasised."""
        self.painter.update(frame, selected=selected, highlight=highlight)

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)

    @property
    def cell_style(self) -> dict[tuple[int, int], dict[str, Any]]:
        """(node, index) -> term, color, committed, hatch, applied, text of each cell drawn."""
        return self.painter.cell_style

    @property
    def snapshot_blocks(self) -> dict[int, dict[str, Any]]:
        """node -> the compacted snapshot block drawn (last_index, term, x0, x1)."""
        return self.painter.snapshot_blocks

    @property
    def markers(self) -> dict[int, dict[str, int | None]]:
        """follower -> the leader's next and match index for it, as drawn."""
        return self.painter.markers


def draw_logs(frame: Frame, *, selected: int | None = None, highlight: TraceEvent | None = None,
              figsize: tuple[float, float] = (8, 3.2), dpi: float = 90) -> Figure:
    """A new Figure of the logs (one-shot; `LogView` updates one figure in place)."""
    view = LogView(figsize, dpi)
    view.update(frame, selected=selected, highlight=highlight)
    return view.figure
