"""The simulated network's behaviour: latency, loss and duplication, per link if wanted; and
`wire_size`, what a message would weigh on a wire."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..core import AppendEntryRequest, Message
from ..core.messages import MESSAGE_TYPES

Link = tuple[int, int]  # (source, destination): links are one-way


def _check(name: str, value: Any) -> Any:
    if name == "latency":
        if (not isinstance(value, (tuple, list)) or len(value) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)):
            raise ValueError(f"latency must be a pair (low, high) of seconds, not {value!r}")
        low, high = float(value[0]), float(value[1])
        if not 0 <= low <= high:
            raise ValueError(f"latency must satisfy 0 <= low <= high, not {value!r}")
        return (low, high)
    if name in ("drop", "duplicate"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")
        return float(value)
    return value


@dataclass(slots=True)
class LinkModel:
    """Overrides for one link; a field left None uses the network's default."""

    latency: tuple[float, float] | None = None  # seconds, drawn uniformly
    drop: float | None = None  # probability that a message is lost
    duplicate: float | None = None  # probability that a message is delivered twice

    def __post_init__(self) -> None:
        for name in ("latency", "drop", "duplicate"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _check(name, getattr(self, name)))


@dataclass(slots=True)
class NetworkModel:
    """How the simulated network treats messages. Change any field at any time, also mid-run:
    ``sim.network.drop = 0.1``. Reordering follows from random latency.

    Args:
        latency: ``(low, high)`` seconds, drawn uniformly per message.
        drop: probability that a message is lost.
        duplicate: probability that a message is delivered twice (each copy with its own latency).
        links: per-link overrides, keyed by ``(source, destination)``; see `set_link`.
    """

    latency: tuple[float, float] = (0.005, 0.015)
    drop: float = 0.0
    duplicate: float = 0.0
    links: dict[Link, LinkModel] = field(default_factory=dict)
    on_change: Callable[[str, Any], None] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        value = _check(name, value)  # checked on construction and on every change
        object.__setattr__(self, name, value)
        notify = getattr(self, "on_change", None)
        if name in ("latency", "drop", "duplicate") and notify is not None:
            notify(name, value)

    def set_link(self, source: int, destination: int, *, latency: tuple[float, float] | None = None,
                 drop: float | None = None, duplicate: float | None = None) -> None:
        """Override the behaviour of the link from `source` to `destination` (None: keep default)."""
        self.links[(source, destination)] = LinkModel(latency, drop, duplicate)
        if self.on_change is not None:
            self.on_change("link", (source, destination, latency, drop, duplicate))

    def clear_link(self, source: int, destination: int) -> None:
        """Remove the overrides of one link."""
        self.links.pop((source, destination), None)
        if self.on_change is not None:
            self.on_change("clear_link", (source, destination))

    def params(self, source: int, destination: int) -> tuple[float, float, float, float]:
        """``(latency_low, latency_high, drop, duplicate)`` in force on one link."""
        link = self.links.get((source, destination))
        if link is None:
            return (*self.latency, self.drop, self.duplicate)
        latency = link.latency if link.latency is not None else self.latency
        return (*latency, self.drop if link.drop is None else link.drop,
                self.duplicate if link.duplicate is None else link.duplicate)


_FIELD_BYTES = {cls: 8 * len(fields(cls)) for cls in MESSAGE_TYPES}


def wire_size(message: Message) -> int:
    """An estimate of a message's size on a wire: 8 bytes a field, and 48 bytes an entry."""
    if type(message) is AppendEntryRequest:
        return _FIELD_BYTES[AppendEntryRequest] + 48 * len(message.entries)
    return _FIELD_BYTES[type(message)]
