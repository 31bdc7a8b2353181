"""raftlab.viz: renderers from a simulation frame (and its trace) to matplotlib figures.

Pure and stateless towards matplotlib: each view owns one `matplotlib.figure.Figure` on an Agg canvas
(no pyplot, no global state), creates its artists once and updates them in place:

    g = GraphView(); g.update(sim.frame(), selected=0); png = g.png(); g.node_at(0.5, 0.2)
    l = LogView(); l.update(sim.frame()); t = TimelineView(); t.update(sim.frame(), sim.trace)

`draw_graph`, `draw_logs` and `draw_timeline` make a new figure per call. Inside IPython, a
`Frame` shown by itself renders as a picture of the graph and the logs.
"""

from __future__ import annotations

import sys
from typing import Any

from matplotlib.figure import Figure

from ..sim import Frame
from .figure16 import plot_figure16
from .graph import GraphPainter, GraphView, draw_graph, grown_layout, layout
from .logs import LogsPainter, LogView, draw_logs
from .style import MESSAGE_STYLE, PALETTE, ROLE_STYLE, TERM_COLORS, figure_png, new_figure
from .timeline import TimelinePainter, TimelineView, draw_timeline

__all__ = [
    "MESSAGE_STYLE", "PALETTE", "ROLE_STYLE", "TERM_COLORS", "GraphPainter", "GraphView", "LogView", "LogsPainter",
    "TimelinePainter", "TimelineView",
    "draw_frame", "draw_graph", "draw_logs", "draw_timeline", "frame_png", "grown_layout", "layout", "plot_figure16",
    "register_ipython_formatter",
]


def draw_frame(frame: Frame, *, dpi: float = 80) -> Figure:
    """A new Figure with the cluster graph (left) and the logs (right) of `frame`."""
    figure, _ = new_figure((13.0, 4.6), dpi)
    left, right = figure.subfigures(1, 2, squeeze=False, width_ratios=[4.6, 8.4])[0]
    GraphPainter(left).update(frame)
    LogsPainter(right, rect=(0.15, 0.16, 0.84, 0.7)).update(frame)
    return figure


def frame_png(frame: Frame) -> bytes:
    """PNG bytes of `draw_frame(frame)` (IPython's image/png formatter for `Frame`)."""
    return figure_png(draw_frame(frame))


def register_ipython_formatter(shell: Any = None) -> bool:
    """Make IPython show a `Frame` as a picture (graph and logs). Uses the running IPython
    shell unless `shell` is given; does nothing (and returns False) outside IPython."""
    if shell is None:
        ipython = sys.modules.get("IPython")  # not imported: certainly not inside IPython
        shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    formatters["image/png"].for_type(Frame, frame_png)
    return True


register_ipython_formatter()
