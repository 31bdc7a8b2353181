"""A TCP fault proxy on asyncio: drop, delay, cut one direction, heal, per link.

A `LinkProxy` listens on one port and forwards every connection it accepts to one target, byte for
byte, in both directions; a `Fault` per direction changes what happens to the bytes:

- ``delay`` (and ``jitter``): every chunk read is written out ``delay + uniform(0, jitter)`` seconds
  later, in order (a later chunk never overtakes an earlier one);
- ``drop``: each chunk read is lost with probability ``drop``, and with it the connection (both sides
  aborted): what a TCP stream sees when the network loses its packets for longer than it retransmits
  them. The sender redials;
- ``cut``: the bytes read are discarded and the connection stays open (a black hole, as a firewall
  dropping packets); the other direction is unaffected. A connection that lost bytes so is aborted
  when its direction is healed, so that no stream ever resumes with a hole in it.

*Forward* is the direction of the dialer (who connected to the proxy) to the target, *backward* the
other. raftlab's transport (`raftlab.net.transport`) opens one connection per dialer per peer and
sends its messages on it one way only (the acceptor writes nothing but its challenge): so the messages
of node i to node j all travel forward through the proxy of the directed link i -> j when node i's
``--peers`` maps j to that proxy's port, and cutting that proxy forward cuts i -> j and nothing else.

`ProxyNet` runs any number of `LinkProxy` on an event loop of its own in a background thread and is
controlled from any thread (`raftlab soak` uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .transport import Address

FORWARD: Literal["forward"] = "forward"
BACKWARD: Literal["backward"] = "backward"
DIRECTIONS = (FORWARD, BACKWARD)
Direction = Literal["forward", "backward"]
CHUNK = 65536
CONNECT_TIMEOUT = 1.0
QUEUE_CHUNKS = 256  # chunks delayed on one direction of a connection before the proxy stops reading it

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fault:
    """What a proxy does to the bytes of one direction (all zero: it forwards them untouched).

    Args:
        drop: probability that a chunk read is lost with its connection.
        delay: seconds added to every chunk.
        jitter: up to this many seconds more, drawn per chunk (order is kept).
        cut: discard every byte (the connection stays open).
    """

    drop: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    cut: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError(f"drop is a probability, not {self.drop}")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter are seconds >= 0")

    def __str__(self) -> str:
        if self.cut:
            return "cut"
        parts = ([f"drop {self.drop:.2f}"] if self.drop else []) + (
            [f"delay {self.delay * 1000:.0f}+{self.jitter * 1000:.0f} ms"] if self.delay or self.jitter else [])
        return ", ".join(parts) or "pass"


PASS = Fault()


@dataclass(slots=True)
class DirectionStats:
    """Bytes of one direction of one proxy, over all its connections."""

    forwarded: int = 0  # written to the other side
    discarded: int = 0  # read while cut, or lost with a dropped connection
    drops: int = 0  # connections dropped by `Fault.drop`

    def as_dict(self) -> dict[str, int]:
        return {"forwarded": self.forwarded, "discarded": self.discarded, "drops": self.drops}


@dataclass(slots=True)
class ProxyStats:
    """What a `LinkProxy` saw."""

    accepted: int = 0  # connections accepted
    connected: int = 0  # of those, connected to the target
    forward: DirectionStats = field(default_factory=DirectionStats)
    backward: DirectionStats = field(default_factory=DirectionStats)

    def direction(self, direction: Direction) -> DirectionStats:
        return self.forward if direction == FORWARD else self.backward

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "connected": self.connected, "forward": self.forward.as_dict(),
                "backward": self.backward.as_dict()}


class _Connection:
    """One proxied connection: two pumps (a reader and a writer per direction)."""

    def __init__(self, proxy: LinkProxy, inbound: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 outbound: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.proxy = proxy
        self.ends = {FORWARD: (inbound[0], outbound[1]), BACKWARD: (outbound[0], inbound[1])}
        self.writers = (inbound[1], outbound[1])
        self.tainted = {FORWARD: False, BACKWARD: False}  # bytes were discarded by a cut
        self.closed = False
        self.tasks: list[asyncio.Task] = []

    def abort(self) -> None:
        """Abort both sides and stop the pumps (what is still queued is lost)."""
        if not self.closed:
            self.closed = True
            for writer in self.writers:
                writer.transport.abort()
            for task in self.tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def run(self) -> None:
        for direction in DIRECTIONS:
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
            self.tasks += [asyncio.ensure_future(self._read(direction, queue)),
                           asyncio.ensure_future(self._write(direction, queue))]
        try:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            self.abort()

    async def _read(self, direction: Direction, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        reader = self.ends[direction][0]
        stats = self.proxy.stats.direction(direction)
        loop = asyncio.get_running_loop()
        release = 0.0  # when the latest chunk goes out
        while not self.closed:
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            fault = self.proxy.faults[direction]
            if not data:  # EOF (or an error): pass it on after what is queued
                await queue.put((release, b""))
                return
            if fault.cut:
                stats.discarded += len(data)
                self.tainted[direction] = True
                continue
            if self.tainted[direction] or (fault.drop and self.proxy.rng.random() < fault.drop):
                stats.discarded += len(data)
                stats.drops += not self.tainted[direction]
                self.abort()
                return
            delay = fault.delay + (self.proxy.rng.uniform(0, fault.jitter) if fault.jitter else 0.0)
            release = max(release, loop.time() + delay)
            await queue.put((release, data))

    async def _write(self, direction: Direction, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        writer = self.ends[direction][1]
        stats = self.proxy.stats.direction(direction)
        loop = asyncio.get_running_loop()
        while not self.closed:
            release, data = await queue.get()
            wait = release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.closed:
                return
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                self.abort()
                return
            stats.forwarded += len(data)


class LinkProxy:
    """Listens on `listen` (port 0: any free port, see `address`) and forwards each connection to `target`.

    Args:
        listen: where to listen.
        target: where to connect for each accepted connection (a connection the target refuses is closed).
        rng: draws drops and jitter (default: a ``random.Random(0)``; never the global one).
        name: for messages.

    Faults are set per direction (`set`) and cleared (`heal`) from the proxy's event loop; `ProxyNet`
    does it from any thread.
    """

    def __init__(self, listen: Address, target: Address, *, rng: random.Random | None = None,
                 name: str = "") -> None:
        self.listen, self.target, self.name = listen, target, name or f"{listen[1]}->{target[1]}"
        self.rng = rng if rng is not None else random.Random(0)
        self.faults: dict[Direction, Fault] = {FORWARD: PASS, BACKWARD: PASS}
        self.stats = ProxyStats()
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> Address:
        """The address it listens on (once started)."""
        if self._server is None:
            return self.listen
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen, reuse_address=True)

    def set(self, fault: Fault, direction: Direction | None = None) -> None:
        """Apply `fault` to one direction, or to both (None); a direction healed (PASS) after a cut aborts
        the connections that lost bytes to it."""
        for d in DIRECTIONS if direction is None else (direction,):
            self.faults[d] = fault
            if not fault.cut:
                for connection in list(self._connections):
                    if connection.tainted[d]:
                        connection.abort()

    def heal(self) -> None:
        """No fault in either direction."""
        self.set(PASS)

    def abort_connections(self) -> None:
        """Abort every connection open through this proxy now."""
        for connection in list(self._connections):
            connection.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.abort_connections()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.stats.accepted += 1
        try:
            try:
                target = await asyncio.wait_for(asyncio.open_connection(*self.target), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                writer.transport.abort()
                return
            self.stats.connected += 1
            connection = _Connection(self, (reader, writer), target)
            self._connections.add(connection)
            try:
                await connection.run()
            finally:
                self._connections.discard(connection)
        finally:
            if task is not None:
                self._tasks.discard(task)


class ProxyNet:
    """`LinkProxy`s on an event loop in a daemon thread of their own, controlled from any thread.

    Args:
        seed: seeds each proxy's own `random.Random` (with its name), so drops and jitter are reproducible
            per proxy given the same bytes.

    Use as a context manager, or call `close`.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.proxies: dict[str, LinkProxy] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raftlab-proxy", daemon=True)
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _call(self, function: Any, *args: Any) -> Any:
        async def call() -> Any:
            return function(*args)

        return self._run(call())

    def add(self, name: str, listen: Address, target: Address) -> Address:
        """Start a proxy `name` on `listen` forwarding to `target`; returns the address it listens on."""
        if name in self.proxies:
            raise ValueError(f"a proxy {name!r} exists already")
        proxy = LinkProxy(listen, target, rng=random.Random(f"{self.seed}/{name}"), name=name)
        self._run(proxy.start())
        self.proxies[name] = proxy
        return proxy.address

    def set(self, name: str, fault: Fault, direction: Direction | None = None) -> None:
        """`LinkProxy.set` on proxy `name`."""
        self._call(self.proxies[name].set, fault, direction)

    def heal(self, name: str | None = None) -> None:
        """Heal proxy `name`, or every proxy."""
        for proxy in [self.proxies[name]] if name is not None else list(self.proxies.values()):
            self._call(proxy.heal)

    def faults(self) -> dict[str, dict[Direction, Fault]]:
        """The faults in force, by proxy (those with a fault only)."""
        return {name: dict(p.faults) for name, p in self.proxies.items() if any(f != PASS for f in p.faults.values())}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each proxy's `ProxyStats`, as dicts."""
        return self._call(lambda: {name: p.stats.as_dict() for name, p in self.proxies.items()})

    def close(self) -> None:
        """Close every proxy and stop the loop."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            for proxy in list(self.proxies.values()):
                self._run(proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ProxyNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
