"""Property tests for `raftlab.core.Log`: its index arithmetic against a tiny reference model.

The model is a base (index and term of the last compacted entry, or 0/0) plus a list of the terms of
the held entries ``base + 1 .. base + len``. Random sequences of valid appends, truncations and
compactions (snapshots at random indices, with the matching term or a conflicting one, IS-KEEP) are
applied to both; after every step each query of the log is compared with the model, and invalid
changes must raise ValueError and leave the log exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raftlab.core import Log, LogEntry, Snapshot

SETTINGS = settings(max_examples=200, deadline=None, stateful_step_count=30)


@dataclass
class Model:
    """Reference: entry ``base + 1 + k`` has term ``terms[k]`` and transition ``names[k]``."""

    base: int = 0
    base_term: int = 0
    terms: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def last_index(self) -> int:
        return self.base + len(self.terms)

    @property
    def last_term(self) -> int:
        return self.terms[-1] if self.terms else self.base_term

    def term_at(self, index: int) -> int | None:
        if index == self.base:
            return self.base_term
        if self.base < index <= self.last_index:
            return self.terms[index - self.base - 1]
        return None


def snapshot_of(log: Log) -> tuple:
    """Everything observable about a log, to check that a failed change left it untouched."""
    held = tuple(log.entry(i) for i in range(log.base_index + 1, log.last_index + 1))
    return (log.snapshot, log.base_index, log.base_term, log.last_index, log.last_term, len(log), held)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log: Log = Log()
        self.model = Model()
        self.counter = 0

    def _entries(self, first: int, term_steps: list[int], start_term: int) -> list[LogEntry]:
        entries, term = [], start_term
        for k, step in enumerate(term_steps):
            term += step
            self.counter += 1
            entries.append(LogEntry(f"t{self.counter}", first + k, term))
        return entries

    @initialize(use_constructor=st.booleans(), base=st.integers(0, 20), base_term=st.integers(0, 5),
                steps=st.lists(st.integers(0, 2), max_size=6))
    def start(self, use_constructor: bool, base: int, base_term: int, steps: list[int]) -> None:
        """Start empty, or from `Log(snapshot, entries)` (base and entries given to the constructor)."""
        if not use_constructor:
            return
        snapshot = Snapshot(base, base_term, ("data", base)) if base or base_term else None
        entries = self._entries(base + 1, steps, base_term if snapshot else 0)
        if snapshot is None:
            base = base_term = 0
        self.log = Log(snapshot, entries)
        self.model = Model(base, base_term, [e.term for e in entries], [e.transition for e in entries])

    # ----- valid changes ---------------------------------------------------------------------------
    @rule(steps=st.lists(st.integers(0, 3), max_size=5))
    def append(self, steps: list[int]) -> None:
        entries = self._entries(self.model.last_index + 1, steps, self.model.last_term)
        self.log.append(entries)
        self.model.terms += [e.term for e in entries]
        self.model.names += [e.transition for e in entries]

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        m = self.model
        index = data.draw(st.integers(m.base + 1, m.last_index + 3), label="index")
        removed = self.log.truncate(index)
        keep = max(0, index - m.base - 1)
        expected = [LogEntry(n, m.base + 1 + keep + k, t)
                    for k, (n, t) in enumerate(zip(m.names[keep:], m.terms[keep:], strict=True))]
        assert removed == expected
        del m.terms[keep:], m.names[keep:]

    @rule(data=st.data(), matching=st.booleans())
    def compact(self, data: st.DataObject, matching: bool) -> None:
        """IS-KEEP / SNAP-TAKE: keep the suffix iff the log holds the snapshot's entry with its term."""
        m = self.model
        index = data.draw(st.integers(m.base, m.last_index + 3), label="index")
        known = m.term_at(index)
        if matching and known is not None:
            term = known
        else:
            term = data.draw(st.integers(0, 12).filter(lambda t: t != known), label="term")
        snapshot = Snapshot(index, term, ("data", index, term))
        before = [self.log.entry(i) for i in range(m.base + 1, m.last_index + 1)]
        removed = self.log.compact(snapshot)
        offset = index - m.base
        if known == term:  # the compacted prefix goes, the suffix stays
            kept_terms, kept_names = m.terms[offset:], m.names[offset:]
            assert removed == before[:offset]
        else:  # the whole log goes
            kept_terms, kept_names = [], []
            assert removed == before
        m.base, m.base_term, m.terms, m.names = index, term, kept_terms, kept_names
        assert self.log.snapshot is snapshot

    # ----- invalid changes: ValueError, log unchanged ------------------------------------------------
    @rule(gap=st.integers(1, 4), extra=st.integers(0, 2))
    def append_with_gap(self, gap: int, extra: int) -> None:
        bad = LogEntry("gap", self.model.last_index + 1 + gap, self.model.last_term + extra)
        self._expect_value_error(lambda: self.log.append([bad]))

    @precondition(lambda self: self.model.last_index > 0)
    @rule(back=st.integers(0, 3))
    def append_at_taken_index(self, back: int) -> None:
        index = max(0, self.model.last_index - back)
        bad = LogEntry("taken", index, self.model.last_term)
        self._expect_value_error(lambda: self.log.append([bad]))

    @precondition(lambda self: self.model.last_term > 0)
    @rule(down=st.integers(1, 3), valid_first=st.booleans())
    def append_decreasing_term(self, down: int, valid_first: bool) -> None:
        """A batch whose later entry breaks the rule is rejected whole: nothing of it is appended."""
        first, term = self.model.last_index + 1, self.model.last_term
        batch = [LogEntry("ok", first, term)] if valid_first else []
        batch.append(LogEntry("down", first + len(batch), max(0, term - down)))  # < term as term > 0
        self._expect_value_error(lambda: self.log.append(batch))

    @rule(later_gap=st.integers(1, 3))
    def append_batch_with_later_gap(self, later_gap: int) -> None:
        first, term = self.model.last_index + 1, self.model.last_term
        batch = [LogEntry("a", first, term), LogEntry("b", first + 1 + later_gap, term)]
        self._expect_value_error(lambda: self.log.append(batch))

    @rule(data=st.data())
    def truncate_compacted(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.model.base - 3, self.model.base), label="index")
        self._expect_value_error(lambda: self.log.truncate(index))

    @precondition(lambda self: self.model.base > 0)
    @rule(data=st.data())
    def compact_older_than_base(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.model.base - 1), label="index")
        self._expect_value_error(lambda: self.log.compact(Snapshot(index, self.model.base_term, "old")))

    def _expect_value_error(self, change) -> None:
        before = snapshot_of(self.log)
        try:
            change()
        except ValueError:
            pass
        else:
            raise AssertionError("expected ValueError")
        assert snapshot_of(self.log) == before

    # ----- queries -----------------------------------------------------------------------------------
    @invariant()
    def matches_model(self) -> None:
        log, m = self.log, self.model
        assert log.base_index == m.base
        assert log.base_term == m.base_term
        assert log.last_index == m.last_index
        assert log.last_term == m.last_term
        assert len(log) == len(m.terms)
        for index in range(max(0, m.base - 2), m.last_index + 3):
            assert log.term_at(index) == m.term_at(index), index
            if m.base < index <= m.last_index:
                entry = log.entry(index)
                assert (entry.index, entry.term) == (index, m.term_at(index))
                assert entry.transition == m.names[index - m.base - 1]
            else:
                try:
                    log.entry(index)
                except IndexError:
                    pass
                else:
                    raise AssertionError(f"entry({index}) should raise IndexError")

    @rule(data=st.data(), limit=st.one_of(st.none(), st.integers(0, 6)))
    def entries_from(self, data: st.DataObject, limit: int | None) -> None:
        m = self.model
        index = data.draw(st.integers(m.base - 2, m.last_index + 3), label="index")
        if index <= m.base:
            try:
                self.log.entries_from(index, limit)
            except IndexError:
                return
            raise AssertionError(f"entries_from({index}) should raise IndexError: compacted")
        got = self.log.entries_from(index, limit)
        assert isinstance(got, tuple)
        available = max(0, m.last_index - index + 1)
        assert len(got) == (available if limit is None else min(limit, available))
        assert [e.index for e in got] == list(range(index, index + len(got)))
        assert [e.term for e in got] == [m.term_at(e.index) for e in got]

    @precondition(lambda self: self.model.terms)
    @rule(data=st.data())
    def first_index_of_term(self, data: st.DataObject) -> None:
        m = self.model
        index = data.draw(st.integers(m.base + 1, m.last_index), label="index")
        expected = index
        while expected - 1 > m.base and m.term_at(expected - 1) == m.term_at(index):
            expected -= 1
        got = self.log.first_index_of_term(index)
        assert got == expected
        assert m.base < got <= index
        assert all(m.term_at(i) == m.term_at(index) for i in range(got, index + 1))
        assert got == m.base + 1 or m.term_at(got - 1) != m.term_at(index)

    @rule(last_index=st.integers(0, 40), last_term=st.integers(0, 14))
    def is_up_to_date(self, last_index: int, last_term: int) -> None:
        """RV-GRANT's comparison: a higher last term wins, equal last terms compare last indexes."""
        m = self.model
        expected = last_term > m.last_term or (last_term == m.last_term and last_index >= m.last_index)
        assert self.log.is_up_to_date(last_index, last_term) is expected
        assert self.log.is_up_to_date(m.last_index, m.last_term) is True

    @invariant()
    def held_terms_never_decrease(self) -> None:
        """Appends check terms against the base too, so the base term and held terms are sorted."""
        terms = [self.log.term_at(i) for i in range(self.log.base_index, self.log.last_index + 1)]
        assert terms == sorted(terms)


TestLogMachine = LogMachine.TestCase
TestLogMachine.settings = SETTINGS


# ----- a few direct properties ---------------------------------------------------------------------------
@SETTINGS
@given(steps=st.lists(st.integers(0, 2), min_size=1, max_size=20), data=st.data())
def test_append_then_truncate_round_trips(steps: list[int], data: st.DataObject) -> None:
    """Truncating at i then re-appending what was removed restores the same log."""
    term, entries = 0, []
    for k, step in enumerate(steps):
        term += step
        entries.append(LogEntry(k, k + 1, term))
    log = Log(None, entries)
    index = data.draw(st.integers(1, len(entries) + 1))
    before = snapshot_of(log)
    removed = log.truncate(index)
    assert removed == entries[index - 1:]
    assert log.last_index == index - 1
    log.append(removed)
    assert snapshot_of(log) == before


@SETTINGS
@given(steps=st.lists(st.integers(0, 2), max_size=12), data=st.data())
def test_compact_with_matching_term_keeps_suffix(steps: list[int], data: st.DataObject) -> None:
    """IS-KEEP: a snapshot matching an entry keeps exactly the entries after it; last index/term unchanged."""
    term, entries = 1, []
    for k, step in enumerate(steps):
        term += step
        entries.append(LogEntry(k, k + 1, term))
    log = Log(None, entries)
    index = data.draw(st.integers(0, len(entries)))
    last = (log.last_index, log.last_term)
    removed = log.compact(Snapshot(index, log.term_at(index), None))
    assert removed == entries[:index]  # compact returns every entry it removed: here the prefix
    assert (log.last_index, log.last_term) == last
    assert log.entries_from(index + 1) == tuple(entries[index:])


@SETTINGS
@given(steps=st.lists(st.integers(0, 2), min_size=1, max_size=12), data=st.data())
def test_compact_with_conflicting_term_discards_log(steps: list[int], data: st.DataObject) -> None:
    """IS-KEEP: a snapshot whose term differs from the entry at its index discards the whole log."""
    term, entries = 1, []
    for k, step in enumerate(steps):
        term += step
        entries.append(LogEntry(k, k + 1, term))
    log = Log(None, entries)
    index = data.draw(st.integers(1, len(entries) + 2))
    snap_term = data.draw(st.integers(0, 20).filter(lambda t: t != log.term_at(index)))
    removed = log.compact(Snapshot(index, snap_term, None))
    assert removed == entries
    assert len(log) == 0
    assert (log.base_index, log.last_index, log.last_term) == (index, index, snap_term)
    assert log.entries_from(index + 1) == ()
