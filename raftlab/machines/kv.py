"""`KVStore`: a replicated key-value store that applies each client command at most once.

Each `KVCommand` names its client and a sequence number. As in §6.3 of the Raft thesis, the store
keeps a *session* per client, ``client -> (last_seq, last_result)``, inside the replicated state
(and so inside snapshots): a client that retries a command whose answer it lost (a leader crashed,
a message was dropped) gets the cached answer, and the command is not applied a second time even
though the log now holds it twice.

Sessions may expire (bounded sessions, thesis §6.3): see `KVStore`. Time then comes from the log only:
each command carries the leader's clock (`KVCommand.time_us`), so every replica expires the same
sessions at the same log index.
"""

from __future__ import annotations

import math
import reprlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, cast

from .base import ObservableStateMachine

OPS = ("put", "get", "append", "delete", "cas", "register")
"""The operations of a `KVCommand`."""

_NEEDS_VALUE = frozenset({"put", "append", "cas"})

NOOP_CLIENT = -1
"""The client id of `KVStore.NOOP`; reserved: do not use it for real clients."""

LegacyKVData = tuple[tuple[tuple[str, str], ...], tuple[tuple[int, tuple[int, Any]], ...]]
"""The snapshot data of a store that never saw a clock or a session timeout (and of every store before
bounded sessions): ``(sorted (key, value) pairs, sorted (client, (last_seq, last_result)))``."""

TimedKVData = tuple[tuple[tuple[str, str], ...], tuple[tuple[int, tuple[int, Any], int], ...], int, int]
"""The snapshot data of a store with a clock: ``(sorted (key, value) pairs, sorted (client, (last_seq,
last_result), last_active_us), clock_us, timeout_us)``."""

KVData = LegacyKVData | TimedKVData
"""The snapshot data of a `KVStore`: `LegacyKVData` while its clock and timeout are 0 (so a store that
never saw a time snapshots exactly as before), `TimedKVData` otherwise. Both load."""

MAX_TIME_US = 2**63 - 1
"""The largest `KVCommand.time_us` and `KVCommand.timeout_us` (they travel as JSON integers)."""


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """The result of a command that was *not* applied because its client has no session: it never
    registered, or its session expired (`KVStore` with a session timeout). The command may have been
    applied before (a late retry): the client cannot know its answer any more."""

    def __deepcopy__(self, memo: dict) -> Any:
        return self


SESSION_EXPIRED = SessionExpired()
"""The one `SessionExpired` value (instances compare equal, so ``==`` and ``isinstance`` both work)."""


@dataclass(frozen=True, slots=True)
class KVCommand:
    """One client command: the `seq`-th command of `client`, applied at most once.

    Operations and their results:

    - ``put``: ``key = value``; result None.
    - ``get``: result: the value of `key`, or None if absent.
    - ``append``: append `value` to the value of `key` (``""`` if absent); result: the new value.
    - ``delete``: remove `key`; result: True if it existed.
    - ``cas`` (compare-and-set): if the value of `key` equals `expected` (None: `key` is absent),
      set it to `value`; result: True if it was set.
    - ``register``: create (or refresh) the session of `client`; `key` is ``""``; result None. Its
      `timeout_us` (the proposing leader's session timeout, 0: none) sets the store's timeout.

    `value` is required (a str) for put, append and cas, and must be None otherwise; `expected` is
    only for cas. `time_us` is the leader's wall clock when it took the command (integer microseconds,
    0: no time; set by the node, never read from a clock by the store). A field of the wrong type or
    an unknown op raises ValueError naming the field.
    """

    client: int  # who sent it (NOOP_CLIENT, -1, is reserved for the no-op)
    seq: int  # the client's sequence number, increasing with each new command (>= 0)
    op: str  # one of OPS
    key: str  # the key concerned
    value: str | None = None  # the new value or the suffix (put, append, cas)
    expected: str | None = None  # cas only: the value required (None: the key must be absent)
    time_us: int = 0  # the leader's wall clock when it took the command, in microseconds (0: none)
    timeout_us: int = 0  # register only: the leader's session timeout, in microseconds (0: none)

    def __post_init__(self) -> None:
        if type(self.client) is not int:
            raise ValueError(f"KVCommand.client must be an int, not {self.client!r}")
        if type(self.seq) is not int or self.seq < 0:
            raise ValueError(f"KVCommand.seq must be an int >= 0, not {self.seq!r}")
        if self.op not in OPS:
            raise ValueError(f"KVCommand.op must be one of {', '.join(OPS)}, not {self.op!r}")
        if type(self.key) is not str:
            raise ValueError(f"KVCommand.key must be a str, not {self.key!r}")
        if self.op in _NEEDS_VALUE:
            if type(self.value) is not str:
                raise ValueError(f"KVCommand.value must be a str for {self.op!r}, not {self.value!r}")
        elif self.value is not None:
            raise ValueError(f"KVCommand.value must be None for {self.op!r}, not {self.value!r}")
        if self.op == "cas":
            if self.expected is not None and type(self.expected) is not str:
                raise ValueError(f"KVCommand.expected must be a str or None, not {self.expected!r}")
        elif self.expected is not None:
            raise ValueError(f"KVCommand.expected is only for 'cas', not for {self.op!r}")
        if type(self.time_us) is not int or not 0 <= self.time_us <= MAX_TIME_US:
            raise ValueError(f"KVCommand.time_us must be an int in [0, 2**63), not {self.time_us!r}")
        if type(self.timeout_us) is not int or not 0 <= self.timeout_us <= MAX_TIME_US:
            raise ValueError(f"KVCommand.timeout_us must be an int in [0, 2**63), not {self.timeout_us!r}")
        if self.op == "register":
            if self.key != "":
                raise ValueError(f"KVCommand.key must be '' for 'register', not {self.key!r}")
        elif self.timeout_us:
            raise ValueError(f"KVCommand.timeout_us is only for 'register', not for {self.op!r}")

    def get_id(self) -> tuple[int, int]:
        """The transition's id: ``(client, seq)``."""
        return (self.client, self.seq)

    def __deepcopy__(self, memo: dict) -> Any:
        return self  # an immutable value: copies (a simulator's checkpoints) share it


class KVStore(ObservableStateMachine[KVCommand, KVData]):
    """A replicated ``str -> str`` map with at-most-once client sessions (Raft thesis §6.3).

    For a command of `client` with sequence number `seq`, given that client's session
    ``(last_seq, last_result)``:

    - no session, or ``seq > last_seq``: the command is applied and the session becomes
      ``(seq, result)``;
    - ``seq == last_seq`` (a retry of the latest command): not applied again; the result is the
      cached ``last_result``;
    - ``seq < last_seq`` (a retry of an older command, which the client has already moved past):
      not applied; the result is unknown and reported as None. A client that needs the answer
      must not send a newer command before it has it.

    Reads (``get``) go through the log and the sessions like writes, so they are linearizable.
    `NOOP` applies nothing and creates no session. Snapshot data is `KVData`: tuples only, safe to
    share and to pickle.

    Bounded sessions (thesis §6.3). The store keeps a clock, ``clock_us = max(clock_us,
    command.time_us)`` over the commands applied (the leaders' wall clocks, carried in the log), and
    the last-active time of each session (the clock when a command of that client last came). The
    session timeout is replicated state too: a ``register`` command carries its leader's timeout
    (`timeout_us`) and a positive one becomes the store's `timeout_us` (the latest one wins; 0, from
    a leader configured without a timeout, changes nothing: once sessions can expire they always can,
    or a late retry could be applied a second time). Once `timeout_us` is set:

    - before each command, the sessions idle for more than `timeout_us` (last active before
      ``clock_us - timeout_us``) are removed, oldest first, in O(number removed);
    - a command of a client without a session (never registered, or expired) other than
      ``register`` is not applied; its result is `SESSION_EXPIRED`. A late retry of a command whose
      session expired is thus refused, never applied a second time.

    Applying depends on the log only, never on this replica's configuration: replicas configured with
    different timeouts cannot diverge. `session_timeout` (seconds, None: never expire) is the value
    this replica proposes when it leads: `stamp` puts it in the register commands it hands to its
    replica (the node does). Until a register with a timeout is applied, sessions never expire and
    any client's command is applied, as before bounded sessions.

    The static methods `put`, `get`, `append`, `delete`, `cas` and `register` build commands for clients.
    """

    NOOP: ClassVar[KVCommand] = KVCommand(NOOP_CLIENT, 0, "get", "")

    def __init__(self, session_timeout: float | None = None) -> None:
        super().__init__()
        if session_timeout is None:
            self._proposed_timeout_us = 0
        else:
            if type(session_timeout) not in (int, float) or not math.isfinite(session_timeout) \
                    or session_timeout <= 0:
                raise ValueError(f"session_timeout must be a positive number of seconds or None, "
                                 f"not {session_timeout!r}")
            self._proposed_timeout_us = min(max(round(session_timeout * 1_000_000), 1), MAX_TIME_US)
        self.session_timeout = session_timeout
        self._data: dict[str, str] = {}
        self._sessions: dict[int, tuple[int, Any]] = {}
        self._last_active: OrderedDict[int, int] = OrderedDict()  # client -> clock_us; least recent first
        self._clock = 0
        self._timeout_us = 0

    # ----- reading the local state (not linearizable: use a get command for that) -------------------
    @property
    def data(self) -> Mapping[str, str]:
        """A read-only live view of the key-value map."""
        return MappingProxyType(self._data)

    @property
    def sessions(self) -> Mapping[int, tuple[int, Any]]:
        """A read-only live view of the sessions: ``client -> (last_seq, last_result)``."""
        return MappingProxyType(self._sessions)

    @property
    def last_active(self) -> Mapping[int, int]:
        """A read-only live view of each session's last-active time: ``client -> clock_us``, least
        recently active first."""
        return MappingProxyType(self._last_active)

    @property
    def clock_us(self) -> int:
        """The store's clock: the largest `KVCommand.time_us` applied (0: none yet)."""
        return self._clock

    @property
    def timeout_us(self) -> int:
        """The session timeout the log set, in microseconds (0: sessions never expire)."""
        return self._timeout_us

    def read(self, key: str) -> str | None:
        """The local value of `key` (None if absent), as of `applied_index`."""
        return self._data.get(key)

    # ----- building commands ------------------------------------------------------------------------
    @staticmethod
    def put(client: int, seq: int, key: str, value: str) -> KVCommand:
        """A command setting `key` to `value`."""
        return KVCommand(client, seq, "put", key, value)

    @staticmethod
    def get(client: int, seq: int, key: str) -> KVCommand:
        """A command reading `key` through the log."""
        return KVCommand(client, seq, "get", key)

    @staticmethod
    def append(client: int, seq: int, key: str, value: str) -> KVCommand:
        """A command appending `value` to the value of `key`."""
        return KVCommand(client, seq, "append", key, value)

    @staticmethod
    def delete(client: int, seq: int, key: str) -> KVCommand:
        """A command removing `key`."""
        return KVCommand(client, seq, "delete", key)

    @staticmethod
    def cas(client: int, seq: int, key: str, expected: str | None, value: str) -> KVCommand:
        """A command setting `key` to `value` if its value is `expected` (None: if it is absent)."""
        return KVCommand(client, seq, "cas", key, value, expected)

    @staticmethod
    def register(client: int, seq: int) -> KVCommand:
        """A command creating (or refreshing) the session of `client`."""
        return KVCommand(client, seq, "register", "")

    def stamp(self, command: KVCommand, time_us: int) -> KVCommand:
        """`command` as a leader hands it to its replica: with the leader's clock `time_us` (integer
        microseconds, read by the caller) and, for a register, this replica's `session_timeout`."""
        timeout = self._proposed_timeout_us if command.op == "register" else 0
        if command.time_us == time_us and command.timeout_us == timeout:
            return command
        return KVCommand(command.client, command.seq, command.op, command.key, command.value, command.expected,
                         time_us, timeout)

    # ----- the state machine ------------------------------------------------------------------------
    def _apply(self, command: KVCommand) -> Any:
        if command.time_us > self._clock:
            self._clock = command.time_us
        if command.timeout_us:  # (a register: KVCommand allows it for no other op)
            self._timeout_us = command.timeout_us
        if self._timeout_us:
            self._expire()
        client = command.client
        session = self._sessions.get(client)
        if session is not None:
            self._last_active[client] = self._clock
            self._last_active.move_to_end(client)
            last_seq, last_result = session
            if command.seq == last_seq:
                return last_result  # a retry of the latest command: answer again, apply nothing
            if command.seq < last_seq:
                return None  # a retry of an older command: its answer is no longer known
        elif self._timeout_us and command.op != "register":
            return SESSION_EXPIRED  # never registered, or expired: perhaps a late retry; apply nothing
        else:
            self._last_active[client] = self._clock  # (a new key goes last: the most recently active)
        result = self._execute(command)
        self._sessions[client] = (command.seq, result)
        return result

    def _expire(self) -> None:
        """Remove the sessions last active before ``clock_us - timeout_us``, least recent first."""
        cutoff, last_active, sessions = self._clock - self._timeout_us, self._last_active, self._sessions
        while last_active:
            client, at = next(iter(last_active.items()))
            if at >= cutoff:
                return
            last_active.popitem(last=False)
            del sessions[client]

    def _execute(self, command: KVCommand) -> Any:
        # `value` is a str for put, append and cas (KVCommand's constructor checks it): hence the casts
        op, key, data = command.op, command.key, self._data
        if op == "get":
            return data.get(key)
        if op == "put":
            data[key] = cast(str, command.value)
            return None
        if op == "append":
            data[key] = new = data.get(key, "") + cast(str, command.value)
            return new
        if op == "delete":
            return data.pop(key, None) is not None
        if op == "register":
            return None  # (the session is what it changes)
        # cas
        if data.get(key) != command.expected:
            return False
        data[key] = cast(str, command.value)
        return True

    def _state(self) -> KVData:
        items = tuple(sorted(self._data.items()))
        if not self._clock and not self._timeout_us:  # (then every last-active time is 0 too)
            return (items, tuple(sorted(self._sessions.items())))
        last_active = self._last_active
        return (items, tuple((c, s, last_active[c]) for c, s in sorted(self._sessions.items())), self._clock,
                self._timeout_us)

    def _restore(self, data: KVData) -> None:
        if len(data) == 2:  # `LegacyKVData`: no times (a store before bounded sessions, or one never timed)
            items, legacy = data
            sessions: tuple[tuple[int, tuple[int, Any], int], ...] = tuple((c, s, 0) for c, s in legacy)
            clock = timeout = 0
        else:
            items, sessions, clock, timeout = data
        self._data = dict(items)
        self._sessions = {client: session for client, session, _ in sessions}
        # least recently active first (ties by client: any order of equal times expires them together)
        self._last_active = OrderedDict((client, at) for at, client in sorted((at, c) for c, _, at in sessions))
        self._clock, self._timeout_us = clock, timeout
        for client, (seq, result), _ in sessions:  # the snapshot applied these: their results are known
            self.results.setdefault((client, seq), result)

    def _describe(self) -> str:
        return f"data={reprlib.repr(self._data)}, sessions={len(self._sessions)}"
