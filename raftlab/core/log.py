"""The replicated log with its compacted prefix: all the index arithmetic lives here."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from itertools import islice
from typing import Generic, TypeVar

from .messages import Configuration, LogEntry, Snapshot

T = TypeVar("T")


def _term(entry: LogEntry) -> int:
    return entry.term


class Log(Generic[T]):
    """Entries ``base_index + 1 .. last_index`` in memory; those up to ``base_index`` are in `snapshot`.

    Index 0 (or the snapshot's last index) is the *base*: its term is known, its entry is not.
    Methods raise `ValueError` on a change that would break the numbering; they never do I/O.
    """

    __slots__ = ("_entries", "base_index", "base_term", "snapshot")

    def __init__(self, snapshot: Snapshot | None = None, entries: Sequence[LogEntry[T]] = (), *,
                 check: bool = True) -> None:
        """A log of `entries` after `snapshot`, checked by `check_append` unless `check` is False (for
        entries known to follow it: a copy of a checked log, as a model checker makes)."""
        self.snapshot: Snapshot | None = snapshot  # the compacted prefix, if any (changed by `compact` only)
        # The index and term of the snapshot's last entry, the base (0, 0 without a snapshot): plain
        # attributes, read on every step, kept by `compact`.
        s = snapshot
        self.base_index, self.base_term = (s.last_included_index, s.last_included_term) if s else (0, 0)
        self._entries: list[LogEntry[T]] = [] if check else list(entries)  # entry k has index base_index + 1 + k
        if check:
            self.append(entries)

    def __repr__(self) -> str:
        return f"Log(base_index={self.base_index}, last_index={self.last_index}, last_term={self.last_term})"

    def __deepcopy__(self, memo: dict) -> Log[T]:
        return Log(self.snapshot, self._entries, check=False)  # entries are immutable: a copy shares them

    def __len__(self) -> int:
        """Number of entries held (not counting the compacted prefix)."""
        return len(self._entries)

    @property
    def last_index(self) -> int:
        """Index of the last entry, compacted or not."""
        return self.base_index + len(self._entries)

    @property
    def last_term(self) -> int:
        """Term of the last entry, compacted or not."""
        return self._entries[-1].term if self._entries else self.base_term

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`, or None if unknown (before the base or past the end)."""
        offset = index - self.base_index
        if offset == 0:
            return self.base_term
        return self._entries[offset - 1].term if 0 < offset <= len(self._entries) else None

    def entry(self, index: int) -> LogEntry[T]:
        """The entry at `index`; `IndexError` if it was compacted or does not exist."""
        offset = index - self.base_index
        if not 0 < offset <= len(self._entries):
            raise IndexError(f"no entry at index {index} (held: {self.base_index + 1}..{self.last_index})")
        return self._entries[offset - 1]

    def entries_from(self, index: int, limit: int | None = None) -> tuple[LogEntry[T], ...]:
        """Entries from `index` on (at most `limit`); `index` must be past the base."""
        if index <= self.base_index:
            raise IndexError(f"entries before {self.base_index + 1} were compacted")
        start = index - self.base_index - 1
        return tuple(self._entries[start:None if limit is None else start + limit])

    def configurations(self, upto: int | None = None) -> list[tuple[int, Configuration]]:
        """The latest two configurations at or before index `upto` (default: the last), newest first, as
        (index, configuration): from `Configuration` entries, then the snapshot's (at the base index)."""
        upto = self.last_index if upto is None else upto
        found: list[tuple[int, Configuration]] = list(islice(
            ((e.index, e.transition) for e in reversed(self._entries)
             if e.index <= upto and isinstance(e.transition, Configuration)), 2))
        if len(found) < 2 and self.snapshot is not None and self.snapshot.configuration is not None:
            found.append((self.base_index, self.snapshot.configuration))
        return found

    def first_index_of_term(self, index: int) -> int:
        """First held index of the run of entries that share the term of the entry at `index`."""
        offset = index - self.base_index
        if offset <= 0:
            return index
        # Terms never decrease along the log, so the run starts at the first entry of that term.
        term = self._entries[offset - 1].term
        return self.base_index + 1 + bisect.bisect_left(self._entries, term, hi=offset, key=_term)

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (`last_index`, `last_term`) is at least as up to date as this one."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def check_append(self, entries: Sequence[LogEntry[T]]) -> None:
        """Raise `ValueError` unless `entries` can follow the last entry (consecutive indices,
        terms that never decrease)."""
        expected, term = self.last_index + 1, self.last_term
        for k, entry in enumerate(entries):
            if entry.index != expected + k or entry.term < term:
                raise ValueError(f"entry {entry.index} (term {entry.term}) cannot follow index "
                                 f"{expected + k - 1} (term {term})")
            term = entry.term

    def append(self, entries: Sequence[LogEntry[T]]) -> None:
        """Add entries right after the last one (checked by `check_append`)."""
        self.check_append(entries)
        self._entries.extend(entries)

    def check_truncate(self, index: int) -> None:
        """Raise `ValueError` if `index` lies in the compacted prefix."""
        if index <= self.base_index:
            raise ValueError(f"cannot truncate at {index}: entries up to {self.base_index} are compacted")

    def truncate(self, index: int) -> list[LogEntry[T]]:
        """Delete the entries from `index` on and return them; compacted entries cannot be deleted."""
        self.check_truncate(index)
        start = index - self.base_index - 1
        removed = self._entries[start:]
        del self._entries[start:]
        return removed

    def check_compact(self, snapshot: Snapshot) -> bool:
        """Raise `ValueError` if `snapshot` is older than the base; else whether the log holds the
        snapshot's last entry (same index and term), so that the entries after it are kept."""
        if snapshot.last_included_index < self.base_index:
            raise ValueError(f"snapshot at {snapshot.last_included_index} is older than the base {self.base_index}")
        return self.term_at(snapshot.last_included_index) == snapshot.last_included_term

    def compact(self, snapshot: Snapshot) -> list[LogEntry[T]]:
        """Make `snapshot` the base (§7, IS-KEEP): keep the entries after it if the log holds its last
        entry with the same term, otherwise drop the whole log. Returns every entry removed."""
        split = max(0, snapshot.last_included_index - self.base_index)
        if self.check_compact(snapshot):
            removed, self._entries = self._entries[:split], self._entries[split:]
        else:
            removed, self._entries = self._entries, []
        self.snapshot = snapshot
        self.base_index, self.base_term = snapshot.last_included_index, snapshot.last_included_term
        return removed
