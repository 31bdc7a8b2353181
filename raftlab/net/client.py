"""`KVClient`: a blocking client of a `raftlab node` cluster (JSON lines over TCP).

It finds the leader (following the ``leader`` hints of followers), and retries a command with the
same (client, seq) until it is answered or the deadline passes, so a retried write applies once.
Reads (`get`) use ReadIndex by default: no log write, answered by whichever node it asks that knows
a leader (`get(key, through_log=True)`: the old way, a ``get`` command through the log).
Membership changes (`add_member`, `promote_member`, `remove_member`) go to the leader the same way.

Sessions (thesis §6.3): before its first command a client registers its session (a ``register``
command through the log). A cluster with bounded sessions forgets a session idle for longer than its
timeout and answers the next command ``session_expired``, without applying it. The client then
registers again and sends the command again (with a new seq) only if no earlier attempt of it can have
been applied; otherwise it raises `SessionExpiredError`: sent again, the command could be applied twice.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any, cast

from .transport import Address


class KVError(RuntimeError):
    """The cluster refused a request, or did not answer before the deadline."""


class SessionExpiredError(KVError):
    """The cluster has no session for this client any more (it was idle longer than the session
    timeout) and an earlier attempt of the command may have been applied before it expired: the
    command was not applied now, and its outcome is unknown. Read the state before doing it again;
    the client registers a new session for its next command.

    `maybe_applied` is False only when no attempt of the command can have been applied (`KVClient`
    then registers again and retries by itself, so a caller sees that case only if it repeats).
    """

    def __init__(self, message: str, maybe_applied: bool = True) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


def _address(a: Sequence[Any]) -> Address:
    """`a` as a tuple: callers may pass lists (from JSON, say), and addresses are dict keys."""
    return cast(Address, tuple(a))


def _text(a: Address | str) -> str:
    return a if isinstance(a, str) else f"{a[0]}:{a[1]}"


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not an address HOST:PORT: {text!r}")
    return host, int(port)


class _Connection:
    def __init__(self, address: Address, timeout: float, tls: ssl.SSLContext | None = None,
                 token: str | None = None) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.plain = tls is None
        try:
            if tls is not None:
                self.sock = tls.wrap_socket(self.sock)
            self.file = self.sock.makefile("rb")
        except BaseException:
            self.sock.close()
            raise
        if token is not None:
            reply = self.call({"op": "auth", "token": token, "id": 0}, timeout)
            if not reply.get("ok"):
                self.close()
                raise KVError(f"{address[0]}:{address[1]} refused the token: {reply.get('message')}")

    def call(self, request: dict, timeout: float) -> dict:
        self.sock.settimeout(timeout)
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        line = self.file.readline(1 << 20)
        if not line:  # (a node with TLS closes a plain connection at its first bytes)
            raise ConnectionError("connection closed" + (" (if the cluster uses TLS, give tls and a token or a "
                                                         "client certificate: raftlab kv --tls-dir DIR)"
                                                         if self.plain else ""))
        return json.loads(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class KVClient:
    """A client session: a random client id, and a sequence number increased per command.

    Args:
        addresses: the client addresses of the nodes.
        timeout: seconds a command may take, retries included.
        tls: for a cluster with TLS: a context from `raftlab.net.tls.client_context` (with a client
            certificate, or without one and then a `token`).
        token: the cluster's client token (``tls/client.token``), sent first on each connection.
    """

    def __init__(self, addresses: Sequence[Address], *, client_id: int | None = None, timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None, token: str | None = None) -> None:
        if not addresses:
            raise ValueError("no node addresses")
        self.addresses = [_address(a) for a in addresses]
        self.client_id = random.getrandbits(62) if client_id is None else client_id
        self.seq = 0
        self.timeout = timeout
        self.retries = 0  # times a command was sent again
        self.registrations = 0  # sessions registered (the first, and one after each expiry)
        self._registered = False  # a session was registered and has not been reported expired since
        self._leader: Address | None = None
        self._connections: dict[Address, _Connection] = {}
        self._tls, self._token = tls, token

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> KVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, key: str, value: str) -> None:
        return self.command("put", key, value)

    def get(self, key: str, *, through_log: bool = False) -> str | None:
        """A linearizable read: ReadIndex (no log write; `read`), or a ``get`` command through the log."""
        return self.command("get", key) if through_log else self.read(key)

    def read(self, key: str) -> str | None:
        """A linearizable read without a log write (ReadIndex), asked again until a node answers it."""
        return self._retry({"op": "read", "key": key})

    def transfer(self, to: int) -> dict:
        """Ask the leader to hand its leadership to node `to`; returns ``{"leader": to, "term": T}`` once
        the leader sees `to` lead. `KVError` if `to` is not a node of the cluster, or the transfer was
        aborted (`to` did not win within an election timeout)."""
        return self._retry({"op": "transfer", "to": to}, final=("bad_request", "not_a_peer", "transfer_aborted"))

    # ----- membership change (thesis §4: one server at a time, through the leader) ----------------------
    _MEMBER_FINAL = ("bad_request", "not_a_member", "already_a_member", "last_voter")

    def add_member(self, node: int, peer: Address | str, client: Address | str) -> dict:
        """Add node `node` as a learner, reachable at `peer` (by the nodes) and `client` (by clients):
        the leader commits the addresses, then the configuration. Returns ``{"configuration":
        {"voters", "learners", "index"}, "addresses": {id: {"peer", "client"}}}`` once committed
        (at once if it is a learner already). `KVError` if it is a voter already, or the leader kept
        refusing the change (``refused``: the core's reason) until the timeout."""
        return self._session_command({"op": "member_add", "node": node, "peer": _text(peer),
                                      "client_address": _text(client)}, final=self._MEMBER_FINAL, wait=("refused",))

    def promote_member(self, node: int) -> dict:
        """Make the learner `node` a voter; the leader refuses until it has caught up (MC-LEARNER), and
        this asks again until the timeout. Returns as `add_member` (at once if it is a voter already)."""
        return self._retry({"op": "member_promote", "node": node}, final=self._MEMBER_FINAL, wait=("refused",))

    def remove_member(self, node: int) -> dict:
        """Remove `node` (a voter or a learner; the leader too, which then steps down). Returns as
        `add_member`; `KVError` if it is not a member (unless an earlier attempt's answer was lost: then
        that attempt removed it), or the only voter."""
        return self._retry({"op": "member_remove", "node": node}, final=self._MEMBER_FINAL, wait=("refused",),
                           done_if_unsure=("not_a_member",))

    def delete(self, key: str) -> bool:
        return self.command("delete", key)

    def append(self, key: str, value: str) -> str:
        return self.command("append", key, value)

    def cas(self, key: str, expected: str | None, value: str) -> bool:
        return self.command("cas", key, value, expected)

    def command(self, op: str, key: str, value: str | None = None, expected: str | None = None) -> Any:
        """Run one command (a new seq), retrying it as-is until answered; raises `KVError`, and
        `SessionExpiredError` if the session expired while the command may have been applied."""
        return self._session_command({"op": op, "key": key, "value": value, "expected": expected})

    def register(self) -> None:
        """Register (or refresh) this client's session: a ``register`` command through the log. Commands
        do it when needed (before the first one, and after the session expired)."""
        self.seq += 1
        self._retry({"op": "register", "client": self.client_id, "seq": self.seq, "key": ""})
        self._registered = True
        self.registrations += 1

    def _session_command(self, request: dict, **options: Any) -> Any:
        """Send `request` with this client's id and a new seq, registering a session first if it has none.
        On ``session_expired`` it registers again and sends the request once more, with a new seq, only if
        no attempt of it can have been applied (each attempt was refused before reaching a log, or was
        answered ``session_expired``): the store applies each (client, seq) at most once, but a new seq is a
        new command, so after a possibly applied attempt that would risk a second application."""
        for renewal in (False, True):
            if not self._registered:
                self.register()
            self.seq += 1
            request.update(client=self.client_id, seq=self.seq)
            try:
                return self._retry(request, **options)
            except SessionExpiredError as error:
                self._registered = False
                if renewal or error.maybe_applied:
                    raise
        raise AssertionError("unreachable")  # (the second pass returns or raises)

    def _retry(self, request: dict, final: Sequence[str] = ("bad_request",), wait: Sequence[str] = (),
               done_if_unsure: Sequence[str] = ()) -> Any:
        """Send `request` until a node answers it (following leader hints), or the deadline passes;
        an error in `final` is raised at once as `KVError`; after an error in `wait` the same node is
        asked again a little later. An error in `done_if_unsure`, once an earlier attempt's answer was
        lost, means that attempt succeeded: its ``configuration`` is returned."""
        deadline = time.monotonic() + self.timeout
        target = self._leader or self.addresses[0]
        last_error = "no answer"
        unsure = False  # an attempt may have been carried out without its answer reaching us
        refusal = None  # the latest reason of an error in `wait`
        for attempt in range(10_000):  # bounded; the deadline ends it long before
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if attempt:
                self.retries += 1
            request["id"] = attempt
            try:
                reply = self._call(target, request, min(left, 6.0))
            except (OSError, ValueError) as failure:
                last_error = f"{target[0]}:{target[1]}: {failure}"
                unsure = True
                self._drop(target)
                target = self._next(target)
                time.sleep(0.02)
                continue
            if reply.get("ok"):
                op = request["op"]
                if op == "transfer":  # the node that answered leads no more; the next command finds who does
                    self._leader = None
                elif op != "read":  # (any node that knows a leader serves reads: not a sign of leadership)
                    self._leader = target
                return reply.get("result")
            error = reply.get("error")
            last_error = f"{target[0]}:{target[1]}: {error}" + (f" ({reply['detail']})" if reply.get("detail") else "")
            if error in done_if_unsure and unsure:
                return {"configuration": reply.get("configuration")}
            if error == "session_expired":  # not applied now; but an earlier attempt may have been
                raise SessionExpiredError(
                    f"session expired: client {self.client_id}'s session was dropped by the cluster (idle longer "
                    f"than its session timeout) and an earlier attempt of command {request.get('seq')} got no "
                    "answer, so it may have been applied before: it was not sent again (that could apply it "
                    "twice). Read the state to know; the next command registers a new session" if unsure else
                    f"session expired: client {self.client_id} has no session ({reply.get('message')})", unsure)
            if error in final:
                raise KVError(f"{str(error).replace('_', ' ')}: {reply.get('detail')}")
            unsure = unsure or error in ("timeout", "unknown", "stopped")
            if error in wait:
                refusal = reply.get("detail")
                time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
                continue
            hint = reply.get("leader")
            if hint:
                try:
                    target = parse_address(hint)
                except ValueError:
                    target = self._next(target)
            else:
                target = self._next(target)
                time.sleep(0.05)  # no leader known yet: an election is probably under way
        if refusal is not None and last_error.endswith(f"({refusal})"):
            raise KVError(f"change refused: {refusal} (still refused after {self.timeout} s)")
        raise KVError(f"no answer within {self.timeout} s (last: {last_error})")

    def status(self, address: Address, timeout: float = 2.0) -> dict:
        """The status of one node (raises OSError if it does not answer)."""
        reply = self._call(_address(address), {"op": "status", "id": 0}, timeout)
        return reply["result"]

    def local_get(self, address: Address, key: str, timeout: float = 2.0) -> str | None:
        """The value of `key` applied on one node (not linearizable)."""
        return self._call(_address(address), {"op": "local_get", "key": key, "id": 0}, timeout)["result"]

    def _call(self, address: Address, request: dict, timeout: float) -> dict:
        connection = self._connections.get(address)
        try:
            if connection is None:
                connection = self._connections[address] = _Connection(address, min(timeout, 2.0), self._tls,
                                                                      self._token)
            reply = connection.call(request, timeout)
        except (OSError, ValueError):
            self._drop(address)
            raise
        if reply.get("error") == "unauthenticated":  # (the node closed the connection)
            self._drop(address)
            raise KVError(f"unauthenticated: {reply.get('message')}")
        return reply

    def _drop(self, address: Address) -> None:
        connection = self._connections.pop(address, None)
        if connection is not None:
            connection.close()

    def _next(self, address: Address) -> Address:
        if address in self.addresses:
            return self.addresses[(self.addresses.index(address) + 1) % len(self.addresses)]
        return self.addresses[0]
