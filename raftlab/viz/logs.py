"""The replicated logs: one row per replica, one cell per index, coloured by term."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..sim import SimSnapshot, TraceEvent
from .style import PALETTE, ROLE_STYLE, TextStamps, figure_png, new_figure, role_key, short_text, term_color

MAX_CELLS = 40  # indices shown at most; older ones are behind an ellipsis
MIN_COLUMNS = 16  # a short log still gets cells this narrow at most (so the text fits)
MAX_ROWS = 9
_CELL_H = 0.74  # cell height (rows are 1 apart)
_EMPTY_VERTS = np.empty((0, 4, 2))
_INDEX_KINDS = {"appended": ("first", "last"), "truncated": ("first", "first"), "committed": ("index", "index"),
                "applied": ("index", "index"), "snapshot_taken": ("index", "index"),
                "snapshot_installed": ("index", "index")}


def _rects(x0: np.ndarray, y0: np.ndarray, w: np.ndarray | float, h: float) -> np.ndarray:
    """Rectangles as a (k, 4, 2) array of vertices."""
    x1 = x0 + w
    y1 = y0 + h
    return np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y0]), np.column_stack([x1, y1]),
                     np.column_stack([x0, y1])], axis=1) if len(x0) else _EMPTY_VERTS


class LogsPainter:
    """Draws every replica's log into one Axes of `parent` and updates it in place."""

    def __init__(self, parent: FigureBase, rect: tuple[float, float, float, float] = (0.135, 0.13, 0.855, 0.73),
                 *, legend: bool = True) -> None:
        self.parent = parent
        self.ax: Axes = parent.add_axes(rect)
        ax = self.ax
        ax.set_axis_off()
        figure_transform = getattr(parent, "transSubfigure", parent.transFigure)
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
        self.selected_box = ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="none", edgecolor=PALETTE["selected"],
                                                   linewidth=1.8, zorder=6, visible=False))
        self.highlight_box = ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="#C9B800",
                                                    linewidth=3.0, zorder=6, visible=False))
        self.highlight_fill = ax.add_patch(Rectangle((0, 0), 1, 1, facecolor=PALETTE["highlight"], edgecolor="none",
                                                     alpha=0.7, zorder=1, visible=False))
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
        self.markers: dict[int, dict[str, int]] = {}
        self.visible_range: tuple[int, int] = (1, 0)
        self.highlighted: dict[str, Any] = {}

    def update(self, snapshot: SimSnapshot, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        nodes = snapshot.nodes[:MAX_ROWS]
        n = len(nodes)
        hi = max([ns.snapshot_index + len(ns.log) for ns in nodes] + [1])
        lo = max(1, hi - MAX_CELLS + 1)
        columns = max(hi - lo + 2, MIN_COLUMNS)  # one spare column for next_index just after the log
        prefix = 0.19 * columns  # the snapshot / ellipsis area, left of the cells
        ax = self.ax
        ax.set_xlim(-prefix, columns)
        ax.set_ylim(n - 0.35, -1.0)
        width_px = ax.bbox.width / (columns + prefix)
        show_ops = width_px >= 30
        leader = snapshot.leader
        lead = nodes[leader] if leader is not None and leader < n else None
        shown = f"indices {lo}\u2013{hi}" + (f", the last {MAX_CELLS}" if lo > 1 else "")
        self.title.set([(0.5, 0.985, f"logs   ({shown})")])
        terms, ops, snap_texts, ellipses, row_labels, row_colors, row_weights = [], [], [], [], [], [], []
        self.visible_range = (lo, hi)

        cell_style: dict[tuple[int, int], dict[str, Any]] = {}
        c_x, c_y, c_color, u_x, u_y, u_color = [], [], [], [], [], []
        snap_verts, overlay, applied_segments = [], [], []
        next_xy, match_xy = [], []
        self.snapshot_blocks, self.elided, self.markers = {}, {}, {}
        y_top = -_CELL_H / 2
        for row, ns in enumerate(nodes):
            key = role_key(ns.role, ns.crashed)
            start = max(lo, ns.snapshot_index + 1)
            entries = ns.log[start - ns.snapshot_index - 1:] if ns.log else ()
            for entry in entries:
                index = entry.index
                x = index - lo
                committed = index <= ns.commit_index
                color = term_color(entry.term)
                if committed:
                    c_x.append(x), c_y.append(row + y_top), c_color.append(color)
                else:
                    u_x.append(x), u_y.append(row + y_top), u_color.append(color)
                text = short_text(entry.transition)
                cell_style[(ns.id, index)] = {"term": entry.term, "color": color, "committed": committed,
                                              "hatch": None if committed else "//", "alpha": 1.0 if committed
                                              else 0.45,
                                              "applied": index <= ns.last_applied, "text": text}
                terms.append((x + 0.5, row - 0.15 if show_ops else row, str(entry.term)))
                if show_ops:
                    ops.append((x + 0.5, row + 0.17, text))
            # the snapshot: one compacted block, in the prefix area and over the indices it covers
            if ns.snapshot_index > 0:
                x0 = -prefix * 0.97
                x1 = -prefix * 0.2 if ns.snapshot_index < lo else ns.snapshot_index - lo + 1
                snap_verts.append([(x0, row + y_top), (x1, row + y_top), (x1, row - y_top), (x0, row - y_top)])
                snap_texts.append(((x0 + min(x1, -prefix * 0.2)) / 2, row,
                                   f"snapshot\n1\u2013{ns.snapshot_index} (t{ns.snapshot_term})"))
                self.snapshot_blocks[ns.id] = {"last_index": ns.snapshot_index, "term": ns.snapshot_term,
                                               "x0": x0, "x1": x1}
            # older entries not shown (not compacted): an ellipsis
            hidden = lo > ns.snapshot_index + 1 and len(ns.log) > 0
            if hidden:
                ellipses.append((-prefix * 0.1, row, "\u2026"))
            self.elided[ns.id] = hidden
            # applied: an underline under the applied cells
            applied_to = min(ns.last_applied, hi)
            if applied_to >= lo:
                first = max(lo, ns.snapshot_index + 1) - lo
                if applied_to - lo + 1 > first:
                    applied_segments.append([(first, row - y_top + 0.07), (applied_to - lo + 1, row - y_top + 0.07)])
            # the leader's next and match index for this follower
            if lead is not None and ns.id != lead.id:
                nxt, match = lead.next_index.get(ns.id), lead.match_index.get(ns.id)
                self.markers[ns.id] = {"next": nxt, "match": match}
                if nxt is not None and lo <= nxt <= lo + columns - 1:
                    next_xy.append((nxt - lo + 0.5, row + y_top - 0.06))
                if match is not None and lo <= match <= hi:
                    match_xy.append((match - lo + 0.5, row - y_top + 0.12))
            if ns.crashed:
                overlay.append([(-prefix, row - 0.5), (columns, row - 0.5), (columns, row + 0.5), (-prefix, row + 0.5)])
            # row label
            st = ROLE_STYLE[key]
            line2 = f"term {ns.term}  commit {ns.commit_index}"
            if ns.id in self.markers:
                m = self.markers[ns.id]
                line2 += f"\nnext {m['next']}  match {m['match']}"
            row_labels.append((-0.01, row, f"node {ns.id}  {st['text']}\n{line2}"))
            row_colors.append("#8A8A8A" if ns.crashed else ("#006B4F" if key == "leader" else "#222222"))
            row_weights.append("bold" if key == "leader" else "normal")
        self.terms.set(terms)
        self.ops.set(ops)
        self.snap_texts.set(snap_texts)
        self.ellipses.set(ellipses)
        self.row_labels.set(row_labels, row_colors, row_weights)
        self.cell_style = cell_style
        self.committed.set_verts(_rects(np.array(c_x, float), np.array(c_y, float), 1.0, _CELL_H))
        self.committed.set_facecolor(c_color)
        self.uncommitted.set_verts(_rects(np.array(u_x, float), np.array(u_y, float), 1.0, _CELL_H))
        self.uncommitted.set_facecolor(u_color)
        if u_x:
            ux, uy = np.array(u_x, float), np.array(u_y, float)
            nan = np.full(len(ux), np.nan)
            hx = np.column_stack([ux + 0.12, ux + 0.5, nan, ux + 0.5, ux + 0.88, nan]).ravel()
            hy = np.column_stack([uy + _CELL_H * 0.5, uy, nan, uy + _CELL_H, uy + _CELL_H * 0.5, nan]).ravel()
            self.hatch.set_data(hx, hy)
        else:
            self.hatch.set_data([], [])
        self.snapshots.set_verts(snap_verts)
        self.overlay.set_verts(overlay)
        self.applied.set_segments(applied_segments)
        self.next_marks.set_offsets(np.array(next_xy) if next_xy else np.empty((0, 2)))
        self.match_marks.set_offsets(np.array(match_xy) if match_xy else np.empty((0, 2)))
        # header: index numbers
        step = 1 if width_px >= 16 else 5
        self.header.set([(index - lo + 0.5, -0.47, str(index)) for index in range(lo, hi + 1)
                         if step == 1 or index % step == 0 or index == lo])
        # selection and highlight
        if selected is not None and 0 <= selected < n:
            self.selected_box.set_bounds(-prefix, selected - 0.5, columns + prefix, 1.0)
            self.selected_box.set_visible(True)
        else:
            self.selected_box.set_visible(False)
        self._highlight(highlight, lo, hi, n)

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
        first, last = int(data[names[0]]), int(data.get(names[1], data[names[0]]))
        first, last = max(first, lo), min(last, hi)
        if first > last:
            return
        self.highlight_box.set_bounds(first - lo - 0.05, row - _CELL_H / 2 - 0.08, last - first + 1.1, _CELL_H + 0.16)
        self.highlight_box.set_visible(True)
        self.highlighted["cells"] = (row, first, last)


class LogView:
    """The logs in their own Figure, updated in place: ``update(snapshot)`` then ``png()``."""

    def __init__(self, figsize: tuple[float, float] = (8, 3.2), dpi: float = 90) -> None:
        self.figure, self.canvas = new_figure(figsize, dpi)
        self.painter = LogsPainter(self.figure)

    def update(self, snapshot: SimSnapshot, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        """Redraw for `snapshot`; `selected`'s row is outlined; `highlight`'s cells are emphasised."""
        self.painter.update(snapshot, selected=selected, highlight=highlight)

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
    def markers(self) -> dict[int, dict[str, int]]:
        """follower -> the leader's next and match index for it, as drawn."""
        return self.painter.markers


def draw_logs(snapshot: SimSnapshot, *, selected: int | None = None, highlight: TraceEvent | None = None,
              figsize: tuple[float, float] = (8, 3.2), dpi: float = 90) -> Figure:
    """A new Figure of the logs (one-shot; `LogView` updates one figure in place)."""
    view = LogView(figsize, dpi)
    view.update(snapshot, selected=selected, highlight=highlight)
    return view.figure
