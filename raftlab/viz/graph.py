"""The cluster graph: nodes on a circle, their role, term, vote, commit index and election timer,
the messages on their way, and the links that are cut.

The set of nodes may change (membership change, thesis §4): a node added later takes the middle of
the widest gap between the nodes already drawn, so the others keep their places (`grown_layout`); a
learner (or a node still joining) is drawn hollow with a dashed outline, a removed node greyed out and
crossed, with no links to the others."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, PathPatch, Wedge
from matplotlib.path import Path

from ..sim import Frame, InFlight, NodeFrame, TraceEvent
from .style import (
    EMPTY_XY, MESSAGE_STYLE, MESSAGE_TYPES, PALETTE, ROLE_STYLE, TextStamps, figure_png, label_look, new_figure,
    role_key, static_legend, xy_array,
)

MAX_NODES = 9
MEMBERSHIP_STYLE: dict[str, dict[str, Any]] = {
    "learner": {"face": "white", "edge": "#555555", "linestyle": (0, (3, 2))},
    "joining": {"face": "white", "edge": "#555555", "linestyle": (0, (1, 2))},
    "removed": {"face": "#E4E4E4", "edge": "#A0A0A0", "linestyle": (0, (2, 2))},
}
"""How a node that is not a voter is drawn: a learner (or a node joining) hollow, its outline dashed
(dotted while joining) in its role's colour; a removed node pale grey, crossed."""
_LEGEND_MESSAGES = (("VoteRequest", "vote"), ("PreVoteRequest", "pre-vote"), ("AppendEntryRequest", "append"),
                    ("InstallSnapshotRequest", "snapshot"), ("TimeoutNow", "TimeoutNow"),
                    ("ReadIndexRequest", "read index"))
_LAYOUTS: dict[int, np.ndarray] = {}
_LANE = 0.05  # messages and cut links from a to b run this far to the right of the line a-b


def layout(n: int) -> np.ndarray:
    """Node centres for a cluster of `n` (networkx's circular layout, node 0 on top, clockwise),
    computed once per size. Row i is node i."""
    if n not in _LAYOUTS:
        pos = nx.circular_layout(nx.complete_graph(n))
        xy = np.array([pos[i] for i in range(n)], dtype=float).reshape(n, 2)
        if n > 1:  # rotate so node 0 is on top and the ids go clockwise
            angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n
            xy = np.column_stack([np.cos(angles), np.sin(angles)])
        _LAYOUTS[n] = xy
    return _LAYOUTS[n]


def grown_layout(base: int, n: int) -> np.ndarray:
    """Node centres for `n` nodes of a cluster that started with `base`: nodes ``0..base-1`` where
    `layout` puts them, then each further node, in order, at the middle of the widest angular gap
    between the nodes placed before it (the earliest such gap, clockwise from the top), on the same
    circle. The first `base` rows do not move as nodes are added. Row i is node i."""
    base = max(1, min(base, n))
    xy = layout(base)[:n].copy()
    if n <= base:
        return xy
    # clockwise angle from the top of each node placed, in [0, 2 pi)
    angles = [float((np.pi / 2 - np.arctan2(y, x)) % (2 * np.pi)) for x, y in xy]
    if base == 1:
        angles = [0.0]
    for _ in range(base, n):
        ordered = sorted(angles)
        gaps = [((ordered[(k + 1) % len(ordered)] - a) % (2 * np.pi)) or 2 * np.pi for k, a in enumerate(ordered)]
        k = int(np.argmax(np.round(gaps, 9)))
        angles.append((ordered[k] + gaps[k] / 2) % (2 * np.pi))
    theta = np.pi / 2 - np.array(angles)
    return np.column_stack([np.cos(theta), np.sin(theta)])


def node_radius(n: int) -> float:
    """The radius of a node, in data units (the circle of nodes has radius 1)."""
    if n <= 2:
        return 0.24
    return min(0.24, 0.26 * 2 * math.sin(math.pi / n))


def _shape(shape: str, x: float, y: float, r: float) -> Path:
    if shape == "diamond":
        k = r * 1.25
        return Path([(x, y + k), (x + k, y), (x, y - k), (x - k, y), (x, y + k)], closed=True)
    if shape == "square":
        k = r * 0.9
        return Path([(x - k, y - k), (x + k, y - k), (x + k, y + k), (x - k, y + k), (x - k, y - k)], closed=True)
    return Path.circle((x, y), r)


def _doing(node: NodeFrame, key: str, n: int) -> str:
    """What a node is in the middle of, after its role: a pre-vote or an election (the count it has of the
    majority of the `n` voters it needs), or a leadership transfer."""
    need = n // 2 + 1
    if key == "crashed":
        return ""
    if node.pre_votes is not None:
        return f", pre-vote {len(node.pre_votes)}/{need}"
    if key == "candidate" and node.votes:
        return f", votes {len(node.votes)}/{need}"
    if key == "leader" and node.transfer_to is not None:
        return f" \u2192 node {node.transfer_to}"
    return ""


class GraphPainter:
    """Draws the cluster graph into one Axes of `parent` and updates it in place."""

    def __init__(self, parent: Figure | SubFigure, rect: tuple[float, float, float, float] = (0.02, 0.16, 0.96, 0.76),
                 *, legend: bool = True) -> None:
        self.parent = parent
        self.ax: Axes = parent.add_axes(rect)
        ax = self.ax
        ax.set_xlim(-1.75, 1.75)
        ax.set_ylim(-1.62, 1.62)
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        self.title = TextStamps(parent, parent.transSubfigure, size=10,
                                weight="bold", ha="center", va="top", color=PALETTE["text"])
        self.config = TextStamps(parent, parent.transSubfigure, size=8, ha="left", va="top", linespacing=1.2,
                                 color="#444444")
        self.ids = TextStamps(ax, ax.transData, size=12, weight="bold", zorder=3.3)
        self.labels = TextStamps(ax, ax.transData, size=7.5, linespacing=1.25, zorder=3.3)
        self.n = 0
        self.base = 0  # the number of nodes first drawn: they keep the places `layout` gives them
        self.pos: np.ndarray = EMPTY_XY
        self.radius = 0.24
        self.edges = LineCollection([], colors=PALETTE["edge"], linewidths=1.0, zorder=1)
        ax.add_collection(self.edges)
        self.cut_lines = LineCollection([], colors=PALETTE["cut"], linewidths=1.6, linestyles=(0, (4, 3)), zorder=2)
        ax.add_collection(self.cut_lines)
        self.cut_marks = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker="x", s=60, c=PALETTE["cut"], linewidths=2.2,
                                    zorder=2.2)
        # a leadership transfer in progress: a dashed arrow from the leader to its target
        self.transfer_arrow = FancyArrowPatch((0, 0), (0, 0), arrowstyle="-|>", mutation_scale=16, shrinkA=0,
                                              shrinkB=0, color=PALETTE["transfer"], linewidth=2.2, linestyle="--",
                                              zorder=1.7, visible=False)
        ax.add_patch(self.transfer_arrow)
        self.highlight_edge = Line2D([], [], color=PALETTE["highlight"], linewidth=7, alpha=0.9, zorder=1.5,
                                     solid_capstyle="round", visible=False)
        ax.add_line(self.highlight_edge)
        self.highlight_message = ax.scatter(EMPTY_XY[:, 0], EMPTY_XY[:, 1], s=260, c=PALETTE["highlight"],
                                            edgecolors="#B8A800", linewidths=1, zorder=2.4)
        self.messages: dict[str, Any] = {}
        for kind in MESSAGE_TYPES:
            st = MESSAGE_STYLE[kind]
            self.messages[kind] = ax.scatter(
                EMPTY_XY[:, 0], EMPTY_XY[:, 1], marker=st["marker"], s=52 if st["filled"] else 46,
                facecolors=st["color"] if st["filled"] else "white", edgecolors=st["color"],
                linewidths=1.0 if st["filled"] else 1.6, zorder=2.5)
        self._nodes: list[dict[str, Any]] = []
        if legend:
            self._legend()
        # What was drawn (for tests and for the widget app).
        self.node_style: dict[int, dict[str, Any]] = {}
        self.config_text = ""  # the configuration line under the title ("" while every node is a voter)
        self.edges_drawn: frozenset[tuple[int, int]] = frozenset()  # the links drawn between members (a < b)
        self.cut_links: frozenset[tuple[int, int]] = frozenset()
        self.message_marks: dict[int, dict[str, Any]] = {}  # in-flight id -> type, style and position
        self.highlighted: dict[str, Any] = {}
        self.transfer: tuple[int, int] | None = None  # (leader, target) of the transfer drawn

    def _legend(self) -> None:
        entries: list[tuple[str, dict[str, Any]]] = []
        for name in ("follower", "candidate", "leader", "crashed"):
            st = ROLE_STYLE[name]
            marker = {"circle": "o", "diamond": "D", "square": "s", "cross": "X"}[st["shape"]]
            entries.append((st["text"].lower(), {"linestyle": "none", "marker": marker, "markersize": 8,
                                                 "markerfacecolor": st["color"], "markeredgecolor": "#333333"}))
        for kind, label in _LEGEND_MESSAGES:  # the requests; a reply is drawn hollow
            st = MESSAGE_STYLE[kind]
            entries.append((label, {"linestyle": "none", "marker": st["marker"], "markersize": 7,
                                    "markerfacecolor": st["color"], "markeredgecolor": st["color"],
                                    "markeredgewidth": 1.4}))
        entries.append(("hollow: reply", {"linestyle": "none", "marker": "o", "markersize": 7,
                                          "markerfacecolor": "white", "markeredgecolor": "#555555",
                                          "markeredgewidth": 1.4}))
        for name, look in MEMBERSHIP_STYLE.items():
            if name == "joining":
                continue
            entries.append((name, {"linestyle": "none", "marker": "X" if name == "removed" else "o",
                                   "markersize": 8, "markerfacecolor": look["face"],
                                   "markeredgecolor": look["edge"], "markeredgewidth": 1.6}))
        entries.append(("cut link", {"color": PALETTE["cut"], "linestyle": (0, (3, 2)), "marker": "x",
                                     "markersize": 6, "markeredgewidth": 2}))
        self.legend = static_legend(self.parent, entries, top=0.125, ncol=5, row=0.04, left=0.04)

    def forget_layout(self) -> None:
        """Lay the next frame's nodes out afresh on an even circle (for a new cluster; otherwise the
        nodes first drawn keep their places as nodes are added and removed)."""
        self.base = 0

    def _build(self, n: int) -> None:
        """(Re)create the per-node artists for a cluster of `n` (only when the number of nodes changes):
        the first nodes drawn keep their places (`grown_layout`)."""
        for node in self._nodes:
            for artist in node.values():
                artist.remove()
        self._nodes = []
        self._anchors: list[tuple[float, float, str, str]] = []
        self.n = n
        if not self.base:
            self.base = n
        self.pos = grown_layout(self.base, n) if n else EMPTY_XY
        gaps = [float(np.hypot(*(self.pos[a] - self.pos[b]))) for a in range(n) for b in range(a + 1, n)]
        self.radius = node_radius(n) if n <= 2 else min(0.24, 0.26 * min(gaps))
        pos, r = self.pos, self.radius
        ax = self.ax
        for i in range(n):
            x, y = pos[i]
            # the label sits outside the circle of nodes, away from the centre
            ux, uy = (x, y) if n > 1 else (0.0, -1.0)
            d = r + 0.17
            lx, ly = x + ux * d, y + uy * d
            ha = "center" if abs(ux) < 0.3 else ("left" if ux > 0 else "right")
            va = "bottom" if uy > 0.3 else ("top" if uy < -0.3 else "center")
            self._nodes.append({
                "halo": ax.add_patch(Circle((x, y), r * 1.55, facecolor=PALETTE["highlight"], edgecolor="none",
                                            alpha=0.85, zorder=2.6, visible=False)),
                "ring_back": ax.add_patch(Wedge((x, y), r + 0.075, 0, 360, width=0.04, facecolor="#EEEEEE",
                                                edgecolor="none", zorder=2.7)),
                "ring": ax.add_patch(Wedge((x, y), r + 0.075, 0, 360, width=0.04, facecolor="#555555",
                                           edgecolor="none", zorder=2.8)),
                "body": ax.add_patch(PathPatch(_shape("circle", x, y, r), linewidth=1.4, edgecolor="#333333",
                                               zorder=3)),
                "cross": ax.add_line(Line2D([x - r * 0.8, x + r * 0.8, np.nan, x - r * 0.8, x + r * 0.8],
                                            [y - r * 0.8, y + r * 0.8, np.nan, y + r * 0.8, y - r * 0.8],
                                            color="#444444", linewidth=2.5, zorder=3.2, visible=False)),
                "select": ax.add_patch(Circle((x, y), r + 0.14, facecolor="none", edgecolor=PALETTE["selected"],
                                              linewidth=2.2, linestyle="-", zorder=3.1, visible=False)),
                # asking for pre-votes: a dashed ring of the candidate's colour (a would-be candidate)
                "pre_vote": ax.add_patch(Circle((x, y), r + 0.2, facecolor="none", edgecolor=PALETTE["candidate"],
                                                linewidth=1.8, linestyle=(0, (3, 2)), zorder=3.05, visible=False)),
            })
            self._anchors.append((lx, ly, ha, va))

    def _lane(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The ends of the lane from node a to node b (offset to the right, trimmed at the nodes)."""
        pos = self.pos
        p, q = pos[a], pos[b]
        d = q - p
        length = float(np.hypot(*d)) or 1.0
        u = d / length
        normal = np.array([u[1], -u[0]]) * _LANE
        return p + normal, q + normal

    def update(self, frame: Frame, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        """Redraw for `frame`: phase by phase, each setting its artists in place."""
        nodes = frame.nodes
        if len(nodes) != self.n:
            self._build(len(nodes))
        self._draw_title(frame, nodes)
        self._draw_edges(nodes)
        roles = self._draw_bodies(nodes)
        self._draw_labels(nodes, roles, len(frame.voters) or len(nodes))
        self._draw_thesis(nodes)
        self._draw_timers(nodes, roles, frame.time)
        self._draw_selection(nodes, selected)
        self._draw_cuts(frame.cut)
        self._draw_messages(frame.in_flight, frame.time)
        self._highlight(highlight, self.pos, self.n)

    def _draw_title(self, frame: Frame, nodes: Sequence[NodeFrame]) -> None:
        """The title: the time, the step and the leader with its term; top left the configuration, once
        it is not every node as a voter (learners, removed nodes, or a change under way)."""
        leader = frame.leader
        who = f"leader: node {leader} (term {nodes[leader].term})" if leader is not None else "no leader"
        self.title.set([(0.5, 0.975, f"t = {frame.time:.3f} s   step {frame.step}   {who}")])
        everyone = tuple(ns.id for ns in nodes)
        text = ""
        if (frame.voters and frame.voters != everyone) or frame.learners or not frame.config_committed:
            text = f"voters {', '.join(map(str, frame.voters))}"
            if frame.learners:
                text += f"\nlearners {', '.join(map(str, frame.learners))}"
            if not frame.config_committed:
                text += "\n(change not committed yet)"
        self.config.set([(0.02, 0.93, text)] if text else [])
        self.config_text = text

    def _draw_edges(self, nodes: Sequence[NodeFrame]) -> None:
        """The links between the nodes that are members (not removed)."""
        members = [ns.id for ns in nodes if ns.membership != "removed"]
        self.edges_drawn = frozenset((a, b) for k, a in enumerate(members) for b in members[k + 1:])
        self.edges.set_segments([[self.pos[a], self.pos[b]] for a, b in sorted(self.edges_drawn)])

    def _draw_bodies(self, nodes: Sequence[NodeFrame]) -> list[str]:
        """Each node's shape, colour and outline by role, crossed out if crashed; a learner (or a node
        joining) hollow, with a dashed outline of its role's colour; a removed node pale grey and crossed.
        Returns the role keys."""
        pos, r = self.pos, self.radius
        self.node_style = {}
        roles = []
        for ns, art in zip(nodes, self._nodes, strict=True):
            key = role_key(ns.role, ns.crashed)
            st = ROLE_STYLE[key]
            x, y = pos[ns.id]
            shape = "circle" if key == "crashed" else st["shape"]
            body, look = art["body"], MEMBERSHIP_STYLE.get(ns.membership)
            body.set_path(_shape(shape, x, y, r))
            if look is None:  # a voter
                body.set_facecolor(st["color"])
                body.set_edgecolor("#777777" if ns.crashed else "#222222")
                body.set_linestyle("-")
                body.set_linewidth(1.4 if key != "leader" else 2.4)
            elif ns.membership == "removed":
                body.set_facecolor(look["face"])
                body.set_edgecolor(look["edge"])
                body.set_linestyle(look["linestyle"])
                body.set_linewidth(1.2)
            else:  # a learner, or a node joining: hollow, outlined in its role's colour
                body.set_facecolor(look["face"])
                body.set_edgecolor("#777777" if ns.crashed else st["color"])
                body.set_linestyle(look["linestyle"])
                body.set_linewidth(2.6)
            art["cross"].set_visible(ns.crashed or ns.membership == "removed")
            art["cross"].set_color("#9A9A9A" if ns.membership == "removed" else "#444444")
            self.node_style[ns.id] = {"role": key, "color": st["color"] if look is None else look["face"],
                                      "shape": shape if key != "crashed" else "cross",
                                      "membership": ns.membership,
                                      "hollow": ns.membership in ("learner", "joining"),
                                      "linestyle": "-" if look is None else look["linestyle"],
                                      "crossed": ns.crashed or ns.membership == "removed"}
            roles.append(key)
        return roles

    def _draw_labels(self, nodes: Sequence[NodeFrame], roles: Sequence[str], voters: int) -> None:
        """The id on each node, and beside it its role (and membership, unless a voter), term, vote and
        commit index; a removed node's only says so."""
        pos = self.pos
        ids, id_colors, labels, label_colors, label_weights = [], [], [], [], []
        for ns, key in zip(nodes, roles, strict=True):
            ids.append((*pos[ns.id], str(ns.id)))
            removed = ns.membership == "removed"
            id_colors.append("#555555" if ns.crashed or removed else "#111111")
            vote = "-" if ns.voted_for is None else str(ns.voted_for)
            member = "" if ns.membership == "voter" else f" \u00b7 {ns.membership}"
            label = (f"{ROLE_STYLE[key]['text']}{member}{_doing(ns, key, voters)}\nterm {ns.term}  vote {vote}\n"
                     f"commit {ns.commit_index}{'' if ns.clock_rate == 1 else f'  clock {ns.clock_rate:g}x'}")
            if removed:
                label = f"removed\n(term {ns.term})"
            lx, ly, ha, va = self._anchors[ns.id]
            labels.append((lx, ly, label, ha, va))
            color, weight = label_look(key, ns.crashed or removed)
            label_colors.append(color)
            label_weights.append(weight)
            self.node_style[ns.id]["label"] = label
        small = self.n > 5
        self.ids.set(ids, id_colors, sizes=[10 if small else 12] * len(ids))
        self.labels.set(labels, label_colors, label_weights, sizes=[6.5 if small else 7.5] * len(labels))

    def _draw_thesis(self, nodes: Sequence[NodeFrame]) -> None:
        """A pre-vote in progress (a dashed ring) and a leadership transfer in progress (a dashed arrow)."""
        self.transfer = None
        for ns, art in zip(nodes, self._nodes, strict=True):
            asking = ns.pre_votes is not None and not ns.crashed
            art["pre_vote"].set_visible(asking)
            self.node_style[ns.id]["pre_votes"] = ns.pre_votes if asking else None
            self.node_style[ns.id]["transfer_to"] = ns.transfer_to
            if ns.transfer_to is not None and 0 <= ns.transfer_to < self.n and not ns.crashed:
                self.transfer = (ns.id, ns.transfer_to)
        self.transfer_arrow.set_visible(self.transfer is not None)
        if self.transfer is not None:
            pos, r = self.pos, self.radius
            p, q = pos[self.transfer[0]], pos[self.transfer[1]]
            u = (q - p) / (float(np.hypot(*(q - p))) or 1.0)
            self.transfer_arrow.set_positions(tuple(p + u * r * 1.35), tuple(q - u * r * 1.6))

    def _draw_timers(self, nodes: Sequence[NodeFrame], roles: Sequence[str], now: float) -> None:
        """The election timer ring round each live non-leader: the share of its longest timeout left."""
        for ns, key, art in zip(nodes, roles, self._nodes, strict=True):
            ring = art["ring"]
            if ns.crashed or key == "leader" or not math.isfinite(ns.deadline):
                ring.set_visible(False)
                art["ring_back"].set_visible(False)
                remaining = None
            else:
                high = ns.election_timeout_range[1] or 1.0
                remaining = max(0.0, min(1.0, (ns.deadline - now) / high))
                ring.set_theta1(90.0 - 360.0 * remaining)
                ring.set_theta2(90.0)
                ring.set_visible(remaining > 0)
                art["ring_back"].set_visible(True)
            self.node_style[ns.id]["timer"] = remaining

    def _draw_selection(self, nodes: Sequence[NodeFrame], selected: int | None) -> None:
        """The outline round the selected node."""
        for ns, art in zip(nodes, self._nodes, strict=True):
            art["select"].set_visible(selected == ns.id)
            self.node_style[ns.id]["selected"] = selected == ns.id

    def _draw_cuts(self, cut: frozenset[tuple[int, int]]) -> None:
        """A dashed line and a cross on each one-way link that is cut."""
        self.cut_links = frozenset((a, b) for a, b in cut if a < self.n and b < self.n)
        lanes = [self._lane(a, b) for a, b in sorted(self.cut_links)]
        self.cut_lines.set_segments([[p, q] for p, q in lanes])
        self.cut_marks.set_offsets(xy_array([p + (q - p) * 0.55 for p, q in lanes]))

    def _draw_messages(self, in_flight: Sequence[InFlight], now: float) -> None:
        """Each message in flight, on its lane as far as it has travelled, marked by its type."""
        now_us = now * 1e6
        by_kind: dict[str, list] = {kind: [] for kind in MESSAGE_TYPES}
        self.message_marks = {}
        for f in in_flight:
            if f.source >= self.n or f.destination >= self.n:
                continue
            kind = type(f.message).__name__
            span = f.arrives - f.sent
            progress = 1.0 if span <= 0 else max(0.0, min(1.0, (now_us - f.sent) / span))
            p, q = self._lane(f.source, f.destination)
            xy = p + (q - p) * progress
            if kind in by_kind:
                by_kind[kind].append(xy)
            self.message_marks[f.id] = {"type": kind, "xy": (float(xy[0]), float(xy[1])), "progress": progress,
                                        **MESSAGE_STYLE.get(kind, {})}
        for kind, points in by_kind.items():
            self.messages[kind].set_offsets(xy_array(points))

    def _highlight(self, event: TraceEvent | None, pos: np.ndarray, n: int) -> None:
        for art in self._nodes:
            art["halo"].set_visible(False)
        self.highlight_edge.set_visible(False)
        self.highlight_message.set_offsets(EMPTY_XY)
        self.highlighted = {}
        if event is None:
            return
        data = event.data if isinstance(event.data, dict) else {}
        message_id, to = data.get("id"), data.get("to")
        if message_id is not None and message_id in self.message_marks:
            self.highlight_message.set_offsets(np.array([self.message_marks[message_id]["xy"]]))
            self.highlighted["message"] = message_id
        elif isinstance(to, int) and event.node is not None and 0 <= to < n and 0 <= event.node < n:
            self.highlight_edge.set_data([pos[event.node][0], pos[to][0]], [pos[event.node][1], pos[to][1]])
            self.highlight_edge.set_visible(True)
            self.highlighted["edge"] = (event.node, to)
        if event.node is not None and 0 <= event.node < n:
            self._nodes[event.node]["halo"].set_visible(True)
            self.highlighted["node"] = event.node

    def node_at(self, x: float, y: float) -> int | None:
        """The node under (x, y), given as fractions of the parent figure, origin top-left."""
        if not self.n:
            return None
        figure = self.ax.figure
        self.ax.apply_aspect()
        width, height = figure.bbox.width, figure.bbox.height
        centres = self.ax.transData.transform(self.pos)
        rim = self.ax.transData.transform([[0.0, 0.0], [self.radius * 1.3 + 0.08, 0.0]])
        reach = float(rim[1][0] - rim[0][0])
        px, py = x * width, (1.0 - y) * height
        dist = np.hypot(centres[:, 0] - px, centres[:, 1] - py)
        best = int(np.argmin(dist))
        return best if dist[best] <= reach else None

    def message_at(self, x: float, y: float, reach_px: float = 9.0) -> int | None:
        """The id of the message in flight drawn nearest (x, y) (fractions of the figure, origin
        top-left), if one is within `reach_px` pixels of it; else None."""
        if not self.message_marks:
            return None
        figure = self.ax.figure
        self.ax.apply_aspect()
        ids = list(self.message_marks)
        marks = self.ax.transData.transform([self.message_marks[i]["xy"] for i in ids])
        dist = np.hypot(marks[:, 0] - x * figure.bbox.width, marks[:, 1] - (1.0 - y) * figure.bbox.height)
        best = int(np.argmin(dist))
        return ids[best] if dist[best] <= reach_px * figure.dpi / 72 else None

    def message_centre(self, message_id: int) -> tuple[float, float]:
        """Where message `message_id` is drawn, in the coordinates `message_at` takes."""
        figure = self.ax.figure
        self.ax.apply_aspect()
        px, py = self.ax.transData.transform(self.message_marks[message_id]["xy"])
        return float(px / figure.bbox.width), float(1.0 - py / figure.bbox.height)

    def node_centre(self, node: int) -> tuple[float, float]:
        """Where node `node` is drawn, as fractions of the figure, origin top-left (as `node_at` takes)."""
        figure = self.ax.figure
        self.ax.apply_aspect()
        px, py = self.ax.transData.transform(self.pos[node])
        return float(px / figure.bbox.width), float(1.0 - py / figure.bbox.height)


class GraphView:
    """The cluster graph in its own Figure, updated in place: ``update(frame)`` then ``png()``."""

    def __init__(self, figsize: tuple[float, float] = (5.5, 5.0), dpi: float = 90) -> None:
        self.figure, self.canvas = new_figure(figsize, dpi)
        self.painter = GraphPainter(self.figure)

    def update(self, frame: Frame, *, selected: int | None = None,
               highlight: TraceEvent | None = None) -> None:
        """Redraw for `frame`; `selected` is outlined; `highlight` (an event) is emphasised."""
        self.painter.update(frame, selected=selected, highlight=highlight)

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)

    def node_at(self, x: float, y: float) -> int | None:
        """The node under a click at (x, y) in [0, 1] image coordinates, origin top-left; None if none."""
        return self.painter.node_at(x, y)

    def node_centre(self, node: int) -> tuple[float, float]:
        """Where `node` is drawn, in the coordinates `node_at` takes."""
        return self.painter.node_centre(node)

    def message_at(self, x: float, y: float) -> int | None:
        """The id of the message in flight under a click at (x, y) in [0, 1] image coordinates, origin
        top-left; None if none is near."""
        return self.painter.message_at(x, y)

    def message_centre(self, message_id: int) -> tuple[float, float]:
        """Where message `message_id` is drawn, in the coordinates `message_at` takes."""
        return self.painter.message_centre(message_id)

    @property
    def node_style(self) -> dict[int, dict[str, Any]]:
        """node -> role, color, shape, label (and timer share, selected) as last drawn."""
        return self.painter.node_style

    @property
    def cut_links(self) -> frozenset[tuple[int, int]]:
        """The one-way links drawn cut, as (source, destination)."""
        return self.painter.cut_links

    @property
    def message_marks(self) -> dict[int, dict[str, Any]]:
        """In-flight message id -> its type, style (color, marker, filled) and position, as last drawn."""
        return self.painter.message_marks


def draw_graph(frame: Frame, *, selected: int | None = None, highlight: TraceEvent | None = None,
               figsize: tuple[float, float] = (5.5, 5.0), dpi: float = 90) -> Figure:
    """A new Figure of the cluster graph (one-shot; `GraphView` updates one figure in place)."""
    view = GraphView(figsize, dpi)
    view.update(frame, selected=selected, highlight=highlight)
    return view.figure
