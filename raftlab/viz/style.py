"""Colours, shapes and small helpers shared by the renderers (no matplotlib state here).

Roles and message types use the Okabe-Ito palette, which stays distinguishable under the common
forms of colour blindness; every role is also told by its shape and its written name, so colour is
never the only cue.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.ft2font import FT2Font, Kerning, LoadFlags
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from matplotlib.transforms import IdentityTransform

from ..core import Configuration, Role

if TYPE_CHECKING:
    from matplotlib.ft2font import GlyphIndexType

PALETTE: dict[str, str] = {
    # roles
    "follower": "#56B4E9",  # sky blue
    "candidate": "#E69F00",  # orange
    "leader": "#009E73",  # bluish green
    "crashed": "#9E9E9E",  # grey
    # message types
    "vote": "#CC79A7",  # reddish purple
    "append": "#0072B2",  # blue
    "snapshot": "#000000",  # black
    "read": "#E69F00",  # orange (ReadIndex; told from a candidate by its hexagon, never a node's shape)
    "transfer": "#009E73",  # bluish green, the leader's (TimeoutNow: the leadership handed on)
    # marks
    "cut": "#D55E00",  # vermillion (Okabe-Ito's red)
    "lost": "#D55E00",
    "highlight": "#F0E442",  # yellow
    "selected": "#000000",
    "commit": "#333333",
    "edge": "#D0D0D0",
    "text": "#222222",
}
"""Colours by name: the roles, the message families, and the marks (cut, lost, highlight...)."""

TERM_COLORS: tuple[str, ...] = (
    "#A6D8F5",  # term 1: light sky blue
    "#F5D38A",  # orange, light
    "#8FD6BF",  # bluish green, light
    "#F6F0A0",  # yellow, light
    "#8FB8DE",  # blue, light
    "#EFA77A",  # vermillion, light
    "#E6B3D2",  # reddish purple, light
)
"""Log cells are coloured by term, cycling through these light tints (the term is written in the cell too)."""

ROLE_STYLE: dict[str, dict[str, str]] = {
    "follower": {"color": PALETTE["follower"], "shape": "circle", "text": "follower"},
    "candidate": {"color": PALETTE["candidate"], "shape": "diamond", "text": "candidate"},
    "leader": {"color": PALETTE["leader"], "shape": "square", "text": "LEADER"},
    "crashed": {"color": PALETTE["crashed"], "shape": "cross", "text": "crashed"},
}
"""How each role is drawn: colour, node shape and the word written under the node."""

# Message families: (colour, marker, filled).  Requests are filled, responses hollow.
MESSAGE_STYLE: dict[str, dict[str, Any]] = {
    "VoteRequest": {"color": PALETTE["vote"], "marker": "^", "filled": True, "label": "vote request"},
    "VoteResponse": {"color": PALETTE["vote"], "marker": "^", "filled": False, "label": "vote reply"},
    "AppendEntryRequest": {"color": PALETTE["append"], "marker": "o", "filled": True, "label": "append request"},
    "AppendEntryResponse": {"color": PALETTE["append"], "marker": "o", "filled": False, "label": "append reply"},
    "InstallSnapshotRequest": {"color": PALETTE["snapshot"], "marker": "s", "filled": True,
                               "label": "snapshot request"},
    "InstallSnapshotResponse": {"color": PALETTE["snapshot"], "marker": "s", "filled": False,
                                "label": "snapshot reply"},
    # the thesis's messages (PreVote, leadership transfer, ReadIndex)
    "PreVoteRequest": {"color": PALETTE["vote"], "marker": "v", "filled": True, "label": "pre-vote request"},
    "PreVoteResponse": {"color": PALETTE["vote"], "marker": "v", "filled": False, "label": "pre-vote reply"},
    "TimeoutNow": {"color": PALETTE["transfer"], "marker": "*", "filled": True, "label": "TimeoutNow"},
    "ReadIndexRequest": {"color": PALETTE["read"], "marker": "h", "filled": True, "label": "read-index request"},
    "ReadIndexResponse": {"color": PALETTE["read"], "marker": "h", "filled": False, "label": "read-index reply"},
}
"""How each message type is drawn in flight (graph) and as an arrow (timeline); every message type of
the core has an entry."""

MESSAGE_FAMILY: dict[str, str] = {
    "VoteRequest": "vote", "VoteResponse": "vote", "PreVoteRequest": "vote", "PreVoteResponse": "vote",
    "AppendEntryRequest": "append", "AppendEntryResponse": "append",
    "InstallSnapshotRequest": "snapshot", "InstallSnapshotResponse": "snapshot",
    "TimeoutNow": "transfer", "ReadIndexRequest": "read", "ReadIndexResponse": "read",
}
"""The family of each message type: one colour (a `PALETTE` name) and one line style in the timeline."""

FAMILIES: tuple[str, ...] = ("vote", "append", "snapshot", "transfer", "read")
"""The message families, in the order the legends list them."""

MESSAGE_TYPES: tuple[str, ...] = tuple(MESSAGE_STYLE)


def role_key(role: Role | None, crashed: bool) -> str:
    """The `ROLE_STYLE` key of a node."""
    if crashed or role is None:
        return "crashed"
    return role.value


def message_type(message: Any) -> str:
    """The type name of a message (an object, or its JSON dict from a loaded trace)."""
    if isinstance(message, dict):
        return str(message.get("type", ""))
    return type(message).__name__


def term_color(term: int) -> str:
    """The fill colour of a log cell of `term`."""
    return TERM_COLORS[(term - 1) % len(TERM_COLORS)] if term > 0 else "#FFFFFF"


def short_text(transition: Any, limit: int = 8) -> str:
    """A few characters saying what a transition does ("put x", "+5", "noop", "config")."""
    if isinstance(transition, Configuration):
        return "config"
    op = getattr(transition, "op", None)
    if op is not None:
        if getattr(transition, "client", None) == -1:
            return "noop"
        text = f"{op} {getattr(transition, 'key', '')}".strip()
    else:
        amount = getattr(transition, "amount", None)
        numeric = isinstance(amount, (int, float))
        text = ("noop" if amount == 0 else f"{amount:+g}") if numeric else repr(transition)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def label_look(key: str, crashed: bool) -> tuple[str, str]:
    """The colour and weight of a node's written state: grey if crashed, bold green for the leader."""
    if crashed:
        return "#8A8A8A", "normal"
    return ("#006B4F", "bold") if key == "leader" else (PALETTE["text"], "normal")


EMPTY_XY = np.empty((0, 2))
"""No points (the offsets of an empty scatter)."""


def xy_array(points: Sequence[Any]) -> np.ndarray:
    """`points` (x, y pairs) as an (n, 2) array, also when there are none."""
    return np.array(points) if points else EMPTY_XY


def rectangles(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Rectangles from arrays of their left, bottom, right and top, as a (k, 4, 2) array of vertices."""
    if not len(x0):
        return np.empty((0, 4, 2))
    return np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y0]), np.column_stack([x1, y1]),
                     np.column_stack([x0, y1])], axis=1)


def set_polygons(collection: PolyCollection, verts: np.ndarray) -> None:
    """Make the (k, n, 2) array `verts` the polygons of `collection`, as one array: matplotlib's fast
    path for it (one Path per row, no per-polygon checks)."""
    collection.set_verts(verts)  # type: ignore[arg-type]  # the stubs admit only a sequence, not a 3-D array


def strokes(xs: Sequence[Any], ys: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The x and y data of one Line2D drawing many strokes: stroke k runs through the k-th items of the
    arrays (or numbers) in `xs` and `ys`, as many strokes as `xs[0]` has items; a NaN after each stroke
    lifts the pen."""
    data = np.empty((2, len(xs[0]), len(xs) + 1))
    data[:, :, -1] = np.nan
    for j, (x, y) in enumerate(zip(xs, ys, strict=True)):
        data[0, :, j], data[1, :, j] = x, y
    return data[0].ravel(), data[1].ravel()


def new_figure(figsize: tuple[float, float], dpi: float) -> tuple[Figure, FigureCanvasAgg]:
    """A Figure with its own Agg canvas (no pyplot, no global state)."""
    figure = Figure(figsize=figsize, dpi=dpi, facecolor="white")
    return figure, FigureCanvasAgg(figure)


def encode_png(rgba: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (h, w, 4) uint8 image, kept RGBA (the figures are opaque: their alpha is 255):
    no row filter and light zlib compression, which is twice as fast as PIL's encoder here and as small
    as its level 1. (Dropping the alpha costs a strided copy slower than compressing the fourth byte.)"""
    height, width = rgba.shape[:2]
    raw = np.empty((height, 1 + 4 * width), np.uint8)
    raw[:, 0] = 0  # filter type: none
    raw[:, 1:] = rgba.reshape(height, 4 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    body = zlib.compress(raw.tobytes(), level)
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", body),
                     _chunk(b"IEND", b"")))


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def figure_png(figure: Figure) -> bytes:
    """The figure drawn with Agg, as PNG bytes."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return encode_png(np.asarray(canvas.buffer_rgba()))


# ----- text as paths ---------------------------------------------------------------------------
# A matplotlib Text costs about 0.3 ms to draw (font layout and glyph rendering, every frame); the
# same words as filled glyph outlines in one PathCollection cost a few microseconds each. Every
# label that changes from frame to frame is drawn that way (`TextStamps`). A label is put together
# from cached outlines of its characters, placed by their advances and the font's kerning (as
# matplotlib's own layout places them, to within 0.02 pt), so that a label never seen before (a
# clock reading, a new term) costs tens of microseconds rather than the 4 ms of a new `TextPath`.

_TEXT_PATHS: dict[tuple, Path] = {}
_CAP_HEIGHT = 0.73  # of the font size, for DejaVu Sans
_UNITS = 100.0  # glyph outlines are cached at this size (points) and scaled
_GLYPHS: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, float, GlyphIndexType]] = {}
_KERNING: dict[tuple[str, GlyphIndexType, GlyphIndexType], float] = {}


def _font(weight: str) -> FT2Font:
    font = get_font(findfont(FontProperties(weight=weight)))
    font.set_size(_UNITS, 72)  # (the font object is shared with matplotlib, which sets its own size too)
    return font


def _glyph(char: str, weight: str) -> tuple[np.ndarray, np.ndarray, float, GlyphIndexType]:
    """(vertices, codes, advance, glyph index) of `char` at `_UNITS` points, its origin on the baseline."""
    glyph = _GLYPHS.get((char, weight))
    if glyph is None:
        font = _font(weight)
        advance = font.load_char(ord(char), flags=LoadFlags.NO_HINTING).linearHoriAdvance / 65536
        index = font.get_char_index(ord(char))
        outline = None if char.isspace() else TextPath((0, 0), char, size=_UNITS, prop=FontProperties(weight=weight))
        if outline is None or not len(outline.vertices):
            glyph = (np.empty((0, 2)), np.empty(0, np.uint8), advance, index)
        else:
            glyph = (outline.vertices, outline.codes, advance, index)
        _GLYPHS[(char, weight)] = glyph
    return glyph


def _kerning(weight: str, left: GlyphIndexType, right: GlyphIndexType) -> float:
    key = (weight, left, right)
    kern = _KERNING.get(key)
    if kern is None:
        kern = _KERNING[key] = _font(weight).get_kerning(left, right, Kerning.DEFAULT) / 64
    return kern


def _line_outline(line: str, size: float, weight: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (points, origin at the left of the baseline) and codes of one line of text."""
    scale = size / _UNITS
    verts, codes, x, previous = [], [], 0.0, None
    for char in line:
        vertices, kinds, advance, index = _glyph(char, weight)
        if previous is not None:
            x += _kerning(weight, previous, index)
        if len(vertices):
            verts.append(vertices * scale + np.array([x * scale, 0.0]))
            codes.append(kinds)
        x += advance
        previous = index
    if not verts:
        return np.empty((0, 2)), np.empty(0, np.uint8)
    return np.concatenate(verts), np.concatenate(codes)


def text_path(text: str, size: float, weight: str = "normal", ha: str = "center", va: str = "center",
              linespacing: float = 1.2) -> Path:
    """The outline of `text` (lines split on newlines) in points, placed so that (0, 0) is its
    anchor for the alignment `ha`/`va`. Cached."""
    key = (text, size, weight, ha, va, linespacing)
    path = _TEXT_PATHS.get(key)
    if path is not None:
        return path
    if len(_TEXT_PATHS) > 20000:
        _TEXT_PATHS.clear()
    lines = text.split("\n")
    step = size * linespacing
    top = size * _CAP_HEIGHT
    shift = {"top": -top, "bottom": (len(lines) - 1) * step, "baseline": 0.0}.get(
        va, (-top + (len(lines) - 1) * step) / 2)
    verts, codes = [], []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        vertices, kinds = _line_outline(line, size, weight)
        xs = vertices[:, 0]  # control points: a close enough extent, far cheaper than get_extents
        x0, x1 = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 0.0)
        dx = {"left": 0.0, "right": -x1}.get(ha, -(x0 + x1) / 2)
        verts.append(vertices + np.array([dx, shift - k * step]))
        codes.append(kinds)
    path = Path(np.concatenate(verts), np.concatenate(codes)) if verts else Path(np.zeros((1, 2)), [Path.MOVETO])
    _TEXT_PATHS[key] = path
    return path


class TextStamps:
    """Many short labels drawn as glyph outlines in one collection (fast to draw, set in place)."""

    def __init__(self, host: Any, transform: Any, *, size: float = 7, color: Any = "#222222",
                 weight: str = "normal", ha: str = "center", va: str = "center", zorder: float = 3,
                 linespacing: float = 1.2) -> None:
        self.size, self.weight, self.ha, self.va, self.linespacing = size, weight, ha, va, linespacing
        self.color = color
        self.collection = PathCollection([], sizes=[1.0], offsets=np.empty((0, 2)), offset_transform=transform,
                                         transform=IdentityTransform(), facecolors=color, edgecolors="none",
                                         linewidths=0, zorder=zorder)
        self.collection.set_clip_on(False)  # labels may stand outside their axes, as Text does
        if hasattr(host, "add_collection"):
            host.add_collection(self.collection, autolim=False)
        else:
            host.add_artist(self.collection)
        self.items: list[tuple[float, float, str]] = []  # what is written where (for tests)

    def set(self, items: Sequence[tuple], colors: Sequence[Any] | None = None,
            weights: Sequence[str] | None = None, sizes: Sequence[float] | None = None) -> None:
        """Write each (x, y, text) or (x, y, text, ha, va); `colors`, `weights` and `sizes` per item
        (default: the stamps')."""
        self.items = [tuple(item[:3]) for item in items]
        paths = [text_path(item[2], sizes[k] if sizes else self.size, weights[k] if weights else self.weight,
                           item[3] if len(item) > 3 else self.ha, item[4] if len(item) > 4 else self.va,
                           self.linespacing) for k, item in enumerate(items)]
        self.collection.set_paths(paths)
        self.collection.set_offsets(np.array([item[:2] for item in items], dtype=float).reshape(-1, 2))
        self.collection.set_facecolor(colors if colors else self.color)

    @property
    def texts(self) -> list[str]:
        return [t for _, _, t in self.items]


def static_legend(figure: Figure | SubFigure, entries: Sequence[tuple[str, dict[str, Any]]], *, top: float, ncol: int,
                  left: float = 0.03, right: float = 0.97, row: float = 0.045, size: float = 7) -> TextStamps:
    """A legend drawn once from markers and stamped labels, in figure coordinates: each entry is
    (label, style) where style has marker/markerfacecolor/markeredgecolor/... (a Line2D's keywords)
    or ``patch=colour``."""
    transform = figure.transSubfigure  # (a Figure's is its transFigure)
    column = (right - left) / ncol
    labels = TextStamps(figure, transform, size=size, color="#333333", ha="left", va="center", zorder=5)
    items = []
    for k, (label, style) in enumerate(entries):
        x = left + column * (k % ncol)
        y = top - row * (k // ncol)
        style = dict(style)
        patch = style.pop("patch", None)
        if patch is not None:
            figure.add_artist(Rectangle((x, y - row * 0.3), column * 0.1, row * 0.6, facecolor=patch,
                                        edgecolor="none", transform=transform))
        else:
            w = column * 0.12
            if style.get("linestyle") == "none":
                xs = [x + w / 2]
            else:
                xs = [x, x + w / 2, x + w]
                if "marker" in style:
                    style["markevery"] = [1]
            figure.add_artist(Line2D(xs, [y] * len(xs), transform=transform, **style))
        items.append((x + max(column * 0.15, 0.024), y, label))
    labels.set(items)
    return labels
