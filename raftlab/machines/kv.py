"""`KVStore`: a replicated key-value store that applies each client command at most once.

Each `KVCommand` names its client and a sequence number. As in §6.3 of the Raft thesis, the store
keeps a *session* per client, ``client -> (last_seq, last_result)``, inside the replicated state
(and so inside snapshots): a client that retries a command whose answer it lost (a leader crashed,
a message was dropped) gets the cached answer, and the command is not applied a second time even
though the log now holds it twice.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, cast

from .base import ObservableStateMachine

OPS = ("put", "get", "append", "delete", "cas")
"""The operations of a `KVCommand`."""

_NEEDS_VALUE = frozenset({"put", "append", "cas"})

NOOP_CLIENT = -1
"""The client id of `KVStore.NOOP`; reserved: do not use it for real clients."""

KVData = tuple[tuple[tuple[str, str], ...], tuple[tuple[int, tuple[int, Any]], ...]]
"""The snapshot data of a `KVStore`: ``(sorted (key, value) pairs, sorted (client, (last_seq, last_result)))``."""


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

    `value` is required (a str) for put, append and cas, and must be None otherwise; `expected` is
    only for cas. A field of the wrong type or an unknown op raises ValueError naming the field.
    """

    client: int  # who sent it (NOOP_CLIENT, -1, is reserved for the no-op)
    seq: int  # the client's sequence number, increasing with each new command (>= 0)
    op: str  # one of OPS
    key: str  # the key concerned
    value: str | None = None  # the new value or the suffix (put, append, cas)
    expected: str | None = None  # cas only: the value required (None: the key must be absent)

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
    Sessions never expire here (the thesis expires them; a teaching store can keep them all).
    `NOOP` applies nothing and creates no session. Snapshot data is `KVData`: tuples only, safe to
    share and to pickle.

    The static methods `put`, `get`, `append`, `delete` and `cas` build commands for clients.
    """

    NOOP: ClassVar[KVCommand] = KVCommand(NOOP_CLIENT, 0, "get", "")

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, str] = {}
        self._sessions: dict[int, tuple[int, Any]] = {}

    # ----- reading the local state (not linearizable: use a get command for that) -------------------
    @property
    def data(self) -> Mapping[str, str]:
        """A read-only live view of the key-value map."""
        return MappingProxyType(self._data)

    @property
    def sessions(self) -> Mapping[int, tuple[int, Any]]:
        """A read-only live view of the sessions: ``client -> (last_seq, last_result)``."""
        return MappingProxyType(self._sessions)

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

    # ----- the state machine ------------------------------------------------------------------------
    def _apply(self, command: KVCommand) -> Any:
        session = self._sessions.get(command.client)
        if session is not None:
            last_seq, last_result = session
            if command.seq == last_seq:
                return last_result  # a retry of the latest command: answer again, apply nothing
            if command.seq < last_seq:
                return None  # a retry of an older command: its answer is no longer known
        result = self._execute(command)
        self._sessions[command.client] = (command.seq, result)
        return result

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
        # cas
        if data.get(key) != command.expected:
            return False
        data[key] = cast(str, command.value)
        return True

    def _state(self) -> KVData:
        return (tuple(sorted(self._data.items())), tuple(sorted(self._sessions.items())))

    def _restore(self, data: KVData) -> None:
        items, sessions = data
        self._data = dict(items)
        self._sessions = dict(sessions)
        for client, (seq, result) in sessions:  # the snapshot applied these: their results are known
            self.results.setdefault((client, seq), result)

    def _describe(self) -> str:
        return f"data={reprlib.repr(self._data)}, sessions={len(self._sessions)}"
