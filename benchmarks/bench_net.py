"""Benchmark real clusters on loopback: raftlab (`raftlab node`) against PySyncObj, in one run.

Usage: python benchmarks/bench_net.py [--json] [--nodes 3 5] [--inflight 100 1000 10000]
       [--sequential 2000] [--seconds 20] [--catch-up-only] [--catch-up-entries 20000] [--reads-only]

Needs PySyncObj (`pip install -e '.[bench]'`), a benchmark-only dependency. Every node is its own
process on 127.0.0.1; every process is stopped (its process group killed) before the next run.

How each is driven (stated, because it is not identical):
- raftlab: each node is a `KVNode` (what `raftlab node` runs, with its defaults: uvloop when
  installed) in its own process, plus a control port. Throughput: a client in this process over TCP
  to the leader's client port (JSON lines, pipelined on one connection), each write a `KVCommand`
  put through the log, answered once the leader applied it. Latency, two ways: through raftlab's
  blocking `KVClient` from this process (``client_p50_ms``: what a user of `raftlab kv` sees), and
  inside the leader's process with `KVNode.execute` (``p50_ms``: measured as PySyncObj's is).
- PySyncObj: it has no client protocol, so its load runs *inside* its leader's process (a
  `@replicated` setter with a callback), which spares it the client hop; the headline compares
  like with like (raftlab's in-process latency) and also prints raftlab's through its client.

Reads: in each raftlab run, beside its writes and measured the same ways, linearizable reads by ReadIndex
(`{"op": "read"}`, what `raftlab kv get` sends; no log write): throughput with 1,000 in flight, in the
leader's process (`KVNode.submit_read`, ``read_ops_per_s``) and through its client port
(``client_read_ops_per_s``), and the latency of sequential reads (``read_p50_ms`` in process, and
``client_read_p50_ms`` through `KVClient.get`; ``client_follower_read_p50_ms`` asks a follower, which gets
its read index from the leader). The reads that reach a node in one round of its driver share one read
index, so that reads in flight are confirmed by one round of heartbeats. PySyncObj has no linearizable
read without a log write, so reads are compared with raftlab's own writes: one line {"bench":
"net_reads", "nodes": N, "storage": ..., "read_ops_per_s": ..., "write_ops_per_s": ..., "read_write_ratio":
..., "read_p50_ms": ..., "write_p50_ms": ..., ...} per node count, for the durable configuration (sqlite,
fsync per write: `raftlab node`'s defaults); `--reads-only` measures just that, without PySyncObj.

Persistence: "memory" is raftlab's MemoryStorage against PySyncObj without a journal; "durable" is
raftlab's SqliteStorage (WAL, synchronous=FULL, every append fsynced before it is acknowledged), and
also without the fsync (`--unsafe-no-fsync`, synchronous=NORMAL), against PySyncObj's file journal.
They do not promise the same: PySyncObj writes its journal into an mmap and never flushes it while
running (`FileJournal.flush` is called only when the journal is destroyed), so it survives the crash
of a process but not of the machine. PySyncObj runs with batching on (its default: new entries leave
on its 100 ms timer) and off (one message per write); the comparison takes its better figure for
each measure. Throughput: `count` small writes with up to K in flight; latency: sequential writes,
one at a time, each measure cut at `--seconds`.

Catch-up (also alone, quickly, with --catch-up-only): 5 `raftlab node` processes (their defaults: sqlite
with an fsync per write, max_inflight 64); one follower is killed (kill -9), `--catch-up-entries` writes go
through the leader, the follower restarts on its data folder, and the run ends when its applied index
reaches the leader's. Counted by the other nodes' per-peer counters (their `status`, as `raftlab kv
status` prints it), from the restart on: log entries and bytes (whole frames) sent to it, per entry it
needed, and InstallSnapshot requests; timed from its restart (process start-up included). Twice: through
the log (no snapshot taken), and behind a log compacted every `--catch-up-snapshot-every` entries, where it
needs the snapshot (exactly one InstallSnapshot). One line each, {"bench": "net_catch_up", "nodes": 5,
"path": "log" | "snapshot", "entries_needed": ..., "entries_sent_per_needed": ..., "bytes_per_entry_needed":
..., "snapshot_installs": ..., "seconds": ..., ...}; "new_terms" > 0 says the restarted node started an
election before it heard from the leader (the leader's link to it redials with a backoff of up to 2 s),
which the time then includes.

Last line: {"bench": "net", "nodes": 3, "raftlab_ops_per_s": ..., "pysyncobj_ops_per_s": ..., "ratio": ...,
"raftlab_p50_ms": ..., "pysyncobj_p50_ms": ..., "raftlab_p99_ms": ..., "raftlab_client_p50_ms": ...,
"raftlab_client_p99_ms": ...} (in memory, 1,000 in flight). `--tls`: raftlab's nodes with TLS between them
and on the client port (clients authenticate with the token once per connection), as `raftlab cluster up`
runs them; "tls": true in that line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """`n` ports p, each with p + 1000 and p + 2000 free too (client and control ports)."""
    found: list[int] = []
    port = 21000 + (os.getpid() * 7) % 5000
    for _ in range(5000):
        port += 1
        ok = True
        for p in (port, port + 1000, port + 2000):
            with socket.socket() as s:
                try:
                    s.bind((HOST, p))
                except OSError:
                    ok = False
        if ok:
            found.append(port)
            if len(found) == n:
                return found
    raise RuntimeError("no free ports")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            p.wait(10)
        self.procs.clear()


# ----- raftlab ------------------------------------------------------------------------------------------
TLS_FOLDER: Path | None = None  # --tls: the run's folder of `raftlab cluster init` files (set by run_raftlab)


async def _open(address: tuple[str, int], **options: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection to a node: plain, or with --tls TLS and the client token (sent first)."""
    if TLS_FOLDER is None:
        return await asyncio.open_connection(*address, **options)
    from raftlab.net.tls import client_context, read_token
    reader, writer = await asyncio.open_connection(*address, ssl=client_context(TLS_FOLDER), **options)
    writer.write(json.dumps({"op": "auth", "token": read_token(TLS_FOLDER)}).encode() + b"\n")
    if b'"ok": true' not in await asyncio.wait_for(reader.readline(), 5):
        raise OSError("raftlab: the token was refused")
    return reader, writer


async def _raftlab_leader(clients: list[tuple[str, int]], timeout: float = 20.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address in clients:
            try:
                reader, writer = await _open(address)
                writer.write(b'{"op": "status", "id": 0}\n')
                status = json.loads(await asyncio.wait_for(reader.readline(), 2))["result"]
                writer.close()
                if status["role"] == "leader" and status["commit_index"] >= 1:
                    return address
            except (OSError, ValueError, KeyError, asyncio.TimeoutError):
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError("raftlab: no leader")


async def _raftlab_load(address: tuple[str, int], inflight: int, count: int, seconds: float,
                        op: str = "put") -> tuple[int, float]:
    """`count` puts (or ReadIndex reads: op "read") with at most `inflight` outstanding on one connection
    (pipelined JSON lines, each window of free slots written at once); returns (answered, seconds)."""
    reader, writer = await _open(address, limit=1 << 20)
    state = {"outstanding": 0, "done": 0, "failed": 0}
    room = asyncio.Event()

    async def read() -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            state["outstanding"] -= 1
            if b'"ok": true' in line:
                state["done"] += 1
            else:
                state["failed"] += 1
            room.set()

    loop = asyncio.get_running_loop()
    reader_task = loop.create_task(read())
    base = int.from_bytes(os.urandom(4), "big") << 20
    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    while sent < count and time.perf_counter() < deadline:
        free = min(inflight - state["outstanding"], count - sent)
        if free <= 0:
            room.clear()
            await asyncio.wait_for(room.wait(), 30)
            continue
        lines = []
        for n in range(sent, sent + free):  # slot n % inflight is a client of its own, its seq growing
            lines.append(json.dumps({"id": n, "op": "put", "client": base + n % inflight, "seq": n // inflight + 1,
                                     "key": f"k{n % 1000}", "value": "v" * 16}) if op == "put" else
                         json.dumps({"id": n, "op": "read", "key": f"k{n % 1000}"}))
        lines.append("")
        writer.write("\n".join(lines).encode())
        state["outstanding"] += free
        sent += free
        await writer.drain()
    end = time.monotonic() + 30
    while state["outstanding"] > 0 and time.monotonic() < end:
        room.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(room.wait(), 1)
    elapsed = time.perf_counter() - start
    reader_task.cancel()
    writer.close()
    if state["failed"]:
        print(f"  raftlab: {state['failed']} {'writes' if op == 'put' else 'reads'} failed", file=sys.stderr)
    return state["done"], elapsed


def _raftlab_sequential(clients: list[tuple[str, int]], count: int, seconds: float, op: str = "put") -> list[float]:
    """Latencies (ms) of sequential puts (or ReadIndex gets: op "read"), one at a time, through raftlab's
    own blocking `KVClient` (which follows the leader if it changes; a read is answered by the first node
    asked that hears from a leader)."""
    from raftlab.net.client import KVClient
    from raftlab.net.commands import client_credentials

    latencies = []
    with KVClient(clients, timeout=10, **client_credentials(TLS_FOLDER)) as client:
        if op == "put":
            client.put("s", "warm")  # finds the leader
        else:
            client.get("s")  # (a put would make it ask the leader first)
        deadline = time.perf_counter() + seconds
        for _ in range(count):
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            if op == "put":
                client.put("s", "v" * 16)
            elif client.get("s") is None:
                raise RuntimeError("raftlab: a read lost the value written")
            latencies.append((time.perf_counter() - t) * 1000)
    return latencies


def raftlab_node(argv: list[str]) -> None:
    """A `KVNode` (what `raftlab node` runs, same defaults) with a control port, so that sequential
    writes can also be issued inside the leader's process, as PySyncObj's are (run as a child process)."""
    from raftlab.core import Role
    from raftlab.machines.kv import KVCommand
    from raftlab.net.node import KVNode, event_loop_runner, tune_gc

    me, peer_list, key_file, data_dir, storage, control, tls_folder = argv
    peers = {int(i): (h, int(p)) for i, _, hp in (x.partition("=") for x in peer_list.split(","))
             for h, p in [hp.rsplit(":", 1)]}
    clients = {i: (h, p + 1000) for i, (h, p) in peers.items()}
    key = bytes.fromhex(Path(key_file).read_text().strip())

    async def main() -> None:
        from raftlab.net.tls import NodeTls
        tls = None if tls_folder == "-" else NodeTls(tls_folder, int(me))
        node = KVNode(int(me), peers, key, data_dir, clients, durable=storage != "memory", fsync=storage == "sqlite",
                      tls=tls)
        tune_gc()  # as run_node does
        running = asyncio.get_running_loop().create_task(node.run())

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = json.loads(await reader.readline())
            if request["cmd"] == "leader":
                reply: dict = {"leader": node.replica.role is Role.LEADER and node.replica.commit_index >= 1}
            elif request["cmd"] == "load":
                reply = await inprocess_load(request["inflight"], request["count"], request["seconds"])
            elif request["cmd"] == "read_load":
                reply = await inprocess_load(request["inflight"], request["count"], request["seconds"], reads=True)
            elif request["cmd"] == "read_seq":
                latencies, start = [], time.perf_counter()
                for _ in range(request["count"]):
                    if time.perf_counter() - start > request["seconds"]:
                        break
                    t = time.perf_counter()
                    try:
                        await node.read("s")
                    except Exception:
                        continue
                    latencies.append((time.perf_counter() - t) * 1000)
                reply = {"latencies": latencies}
            else:
                latencies, client = [], int.from_bytes(os.urandom(4), "big")
                start = time.perf_counter()
                for n in range(request["count"]):
                    if time.perf_counter() - start > request["seconds"]:
                        break
                    t = time.perf_counter()
                    try:
                        await node.execute(KVCommand(client, n + 1, "put", "s", "v" * 16))
                    except Exception:
                        continue
                    latencies.append((time.perf_counter() - t) * 1000)
                reply = {"latencies": latencies}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            writer.close()

        async def inprocess_load(inflight: int, count: int, seconds: float, reads: bool = False) -> dict:
            """`count` puts (or ReadIndex reads) with at most `inflight` outstanding, each refilled from its
            reply's callback."""
            base = int.from_bytes(os.urandom(4), "big") << 20
            state = {"sent": 0, "outstanding": 0, "done": 0}
            finished = asyncio.get_running_loop().create_future()
            start = time.perf_counter()

            def fill(_: object = None) -> None:
                while state["outstanding"] < inflight and state["sent"] < count \
                        and time.perf_counter() - start < seconds:
                    n = state["sent"]
                    future = node.submit_read(f"k{n % 1000}") if reads else node.submit(
                        KVCommand(base + n % inflight, n // inflight + 1, "put", f"k{n % 1000}", "v" * 16))
                    future.add_done_callback(landed)
                    state["sent"] += 1
                    state["outstanding"] += 1
                if state["outstanding"] == 0 and not finished.done():
                    finished.set_result(None)

            def landed(future: asyncio.Future) -> None:
                state["outstanding"] -= 1
                state["done"] += future.result()["ok"]
                fill()

            fill()
            await asyncio.wait_for(finished, seconds + 60)
            return {"done": state["done"], "seconds": time.perf_counter() - start}

        await asyncio.start_server(serve, HOST, int(control))
        await running

    event_loop_runner("auto")(main())


def run_raftlab(nodes: int, storage: str, inflights: list[int], sequential: int, seconds: float,
                folder: Path) -> dict:
    """storage: "memory", "sqlite" (fsync per write) or "sqlite-nofsync" (`--unsafe-no-fsync`). Writes, then
    reads (ReadIndex) measured the same ways: throughput at each of `inflights` (the first round only) and
    sequential latencies."""
    procs = Processes()
    ports = free_ports(nodes)
    peers = ",".join(f"{i + 1}={HOST}:{p}" for i, p in enumerate(ports))
    run_folder = Path(tempfile.mkdtemp(prefix="raftlab-", dir=folder))  # fresh data for every run
    key_file = run_folder / "key"
    key_file.write_text(secrets.token_hex(32))
    clients = [(HOST, p + 1000) for p in ports]
    if TLS_FOLDER is not None:  # --tls: a CA and certificates of the run's own
        from raftlab.net.tls import init_tls
        init_tls(TLS_FOLDER, range(1, nodes + 1))
    try:
        for i in range(nodes):
            procs.start([sys.executable, __file__, "--raftlab-node", str(i + 1), peers, str(key_file),
                         str(run_folder / f"raftlab-{i + 1}"), storage,
                         str(ports[i] + 2000), "-" if TLS_FOLDER is None else str(TLS_FOLDER)],
                        run_folder / f"raftlab-{i + 1}.log")

        async def main() -> dict:
            leader = await _raftlab_leader(clients)
            out: dict = {}
            await _raftlab_load(leader, 100, 500, seconds)  # warm-up
            for k in inflights:
                leader = await _raftlab_leader(clients)
                r = _control(leader[1] + 1000, {"cmd": "load", "inflight": k, "count": max(10 * k, 20_000),
                                                "seconds": seconds})
                out[f"ops_per_s_{k}"] = round(r["done"] / r["seconds"])
                done, elapsed = await _raftlab_load(leader, k, max(10 * k, 20_000), seconds)
                out[f"client_ops_per_s_{k}"] = round(done / elapsed)
                r = _control(leader[1] + 1000, {"cmd": "read_load", "inflight": k, "count": max(10 * k, 20_000),
                                                "seconds": seconds})
                out[f"read_ops_per_s_{k}"] = round(r["done"] / r["seconds"])
                done, elapsed = await _raftlab_load(leader, k, max(10 * k, 20_000), seconds, op="read")
                out[f"client_read_ops_per_s_{k}"] = round(done / elapsed)
            out["client_latencies"] = _raftlab_sequential(clients, sequential, seconds)
            out["client_read_latencies"] = _raftlab_sequential(clients, sequential, seconds, op="read")
            leader = await _raftlab_leader(clients)
            follower = next(a for a in clients if a != leader) if len(clients) > 1 else leader
            out["client_follower_read_latencies"] = _raftlab_sequential([follower], sequential, seconds, op="read")
            out["latencies"] = _control(leader[1] + 1000, {"cmd": "seq", "count": sequential,
                                                           "seconds": seconds})["latencies"]
            out["read_latencies"] = _control(leader[1] + 1000, {"cmd": "read_seq", "count": sequential,
                                                                "seconds": seconds})["latencies"]
            return out

        return asyncio.run(main())
    finally:
        procs.stop()


# ----- raftlab: a follower catching up -------------------------------------------------------------------
def _status(address: tuple[str, int], timeout: float = 1.0) -> dict | None:
    """A node's `status` reply (what `raftlab kv status` prints), or None if it does not answer."""
    try:
        with socket.create_connection(address, timeout=timeout) as s, s.makefile("rwb") as f:
            f.write(b'{"op": "status", "id": 0}\n')
            f.flush()
            return json.loads(f.readline())["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _wait_for(what: str, timeout: float, check) -> Any:
    """Poll `check()` every 10 ms until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"catch-up: {what} within {timeout} s")


def _sent_to(statuses: list[dict], peer: int) -> dict[str, int]:
    """What the given nodes' links sent to `peer`, summed (the per-peer counters of their status)."""
    total = {"entries_sent": 0, "bytes_sent": 0, "snapshots_sent": 0, "frames_sent": 0}
    for status in statuses:
        counts = status["peers"].get(str(peer), {})
        for key in total:
            total[key] += counts.get(key, 0)
    return total


def run_catch_up(nodes: int, count: int, snapshot_every: int, folder: Path, options: list[str]) -> dict:
    """Kill one follower of a `nodes`-node cluster of `raftlab node` processes, write `count` entries through
    the leader, restart the follower on its data folder and measure until its applied index reaches the
    leader's: what the other nodes sent to it (their per-peer counters: log entries, bytes of frames,
    InstallSnapshot requests) and the wall time from its restart. `snapshot_every` is --snapshot-every."""
    procs = Processes()
    ports = free_ports(nodes)
    peers = ",".join(f"{i + 1}={HOST}:{p}" for i, p in enumerate(ports))
    run_folder = Path(tempfile.mkdtemp(prefix="catch-up-", dir=folder))
    key_file = run_folder / "cluster.key"
    key_file.write_text(secrets.token_hex(32))
    key_file.chmod(0o600)
    clients = {i + 1: (HOST, p + 1000) for i, p in enumerate(ports)}
    running: dict[int, subprocess.Popen] = {}

    def start(i: int) -> None:
        running[i] = procs.start([sys.executable, "-m", "raftlab.cli", "node", "--id", str(i), "--peers", peers,
                                  "--data-dir", str(run_folder / f"node{i}"), "--key-file", str(key_file),
                                  "--snapshot-every", str(snapshot_every), *options], run_folder / f"node{i}.log")

    try:
        for i in clients:
            start(i)
        leader_address = asyncio.run(_raftlab_leader(list(clients.values())))
        leader = next(i for i, a in clients.items() if a == leader_address)
        asyncio.run(_raftlab_load(leader_address, 100, 500, 60))  # warm-up: the follower holds entries too
        behind = max(i for i in clients if i != leader)
        live = [i for i in clients if i != behind]

        def settled() -> tuple[dict, dict] | None:
            lead, follower = _status(clients[leader]), _status(clients[behind])
            if lead and follower and lead["commit_index"] == lead["last_index"] == follower["last_applied"]:
                return lead, follower
            return None

        _, before = _wait_for("the follower has every entry before it is stopped", 30, settled)
        have = before["last_index"]
        os.killpg(running[behind].pid, signal.SIGKILL)  # kill -9
        running.pop(behind).wait(10)
        done, _ = asyncio.run(_raftlab_load(leader_address, 1000, count, 300))
        if done != count:
            raise RuntimeError(f"catch-up: {count - done} of {count} writes failed")

        def committed() -> dict | None:
            lead = _status(clients[leader])
            return lead if lead and lead["role"] == "leader" and lead["commit_index"] == lead["last_index"] else None

        lead = _wait_for("the leader commits every write", 30, committed)
        target, term = lead["last_index"], lead["term"]
        if snapshot_every and lead["snapshot_index"] <= have:
            raise RuntimeError("catch-up: the leader's log was not compacted past the follower's")

        def statuses() -> list[dict] | None:
            found = [_status(clients[i]) for i in live]
            return None if None in found else cast(list[dict], found)

        sent_before = _sent_to(_wait_for("the other nodes answer", 10, statuses), behind)
        start(behind)
        began = time.perf_counter()

        def caught_up() -> tuple[dict, list[dict]] | None:
            nonlocal target
            follower = _status(clients[behind], 0.5)
            if not follower or follower["last_applied"] < target:
                return None
            others = statuses()  # a new leader (the restarted node's election may depose the old) adds its no-op
            if others is None:
                return None
            target = max(target, *(s["commit_index"] for s in others))
            return (follower, others) if follower["last_applied"] >= target else None

        follower, _ = _wait_for("the follower catches up", 300, caught_up)
        seconds = time.perf_counter() - began
        after = _wait_for("the other nodes answer", 10, statuses)  # the counters once it caught up
        sent = _sent_to(after, behind)
        sent = {key: sent[key] - sent_before[key] for key in sent}
        needed = target - have
        final = max(after, key=lambda s: (s["role"] == "leader", s["term"]))
        return {"entries_needed": needed, "entries_sent": sent["entries_sent"],
                "entries_sent_per_needed": round(sent["entries_sent"] / needed, 4),
                "bytes_sent": sent["bytes_sent"], "bytes_per_entry_needed": round(sent["bytes_sent"] / needed, 1),
                "snapshot_installs": sent["snapshots_sent"], "frames_sent": sent["frames_sent"],
                "seconds": round(seconds, 3), "snapshot_every": snapshot_every, "follower_had": have,
                "leader_snapshot_index": final["snapshot_index"],
                "new_terms": max(follower["term"], *(s["term"] for s in after)) - term,
                "leader_changed": final["id"] != leader}
    finally:
        procs.stop()


def catch_up(nodes: int, count: int, snapshot_every: int, folder: Path, options: list[str]) -> list[dict]:
    """The two catch-up measures of one run: through the log (no snapshot taken meanwhile: --snapshot-every
    above everything written), then far behind a compacted log (the snapshot, then the log after it).
    In plain TCP whatever --tls says (it counts entries and bytes per entry, not encryption)."""
    global TLS_FOLDER
    rows = []
    tls, TLS_FOLDER = TLS_FOLDER, None
    try:
        for path, every in (("log", 0), ("snapshot", snapshot_every)):
            print(f"{nodes} nodes, catch-up through the {path} ({count} entries behind) ...", file=sys.stderr,
                  flush=True)
            got = run_catch_up(nodes, count, every, folder, options)
            rows.append({"bench": "net_catch_up", "nodes": nodes, "path": path, **got})
    finally:
        TLS_FOLDER = tls
    return rows


# ----- PySyncObj ----------------------------------------------------------------------------------------
def pso_node(argv: list[str]) -> None:
    """A PySyncObj node with a control port (run as a child process of this script)."""
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    me, partners, control, batch, journal = argv[0], argv[1].split(","), int(argv[2]), argv[3] == "1", argv[4]

    class KV(SyncObj):
        def __init__(self) -> None:
            conf = SyncObjConf(appendEntriesUseBatch=batch, journalFile=journal if journal != "-" else None,
                               dynamicMembershipChange=False)
            super().__init__(me, [p for p in partners if p != me], conf)
            self._data: dict = {}

        @replicated
        def set(self, key: str, value: str) -> None:
            self._data[key] = value

    kv = KV()

    def load(inflight: int, count: int, seconds: float) -> dict:
        slots = threading.Semaphore(inflight)
        done = [0]
        finished = threading.Event()
        issued = [0]
        lock = threading.Lock()

        def callback(result: object, error: object) -> None:
            with lock:
                if error == FAIL_REASON.SUCCESS:
                    done[0] += 1
                issued[0] -= 1
                if issued[0] == 0 and stopped[0]:
                    finished.set()
            slots.release()

        stopped = [False]
        start = time.perf_counter()
        for n in range(count):
            slots.acquire()
            if time.perf_counter() - start > seconds:
                slots.release()
                break
            with lock:
                issued[0] += 1
            kv.set(f"k{n % 1000}", "v" * 16, callback=callback)
        with lock:
            stopped[0] = True
            if issued[0] == 0:
                finished.set()
        finished.wait(60)
        return {"done": done[0], "seconds": time.perf_counter() - start}

    def sequential(count: int, seconds: float) -> dict:
        latencies = []
        start = time.perf_counter()
        for _ in range(count):
            if time.perf_counter() - start > seconds:
                break
            t = time.perf_counter()
            try:
                kv.set("s", "v" * 16, sync=True, timeout=10)
            except Exception:
                continue
            latencies.append((time.perf_counter() - t) * 1000)
        return {"latencies": latencies}

    server = socket.create_server((HOST, control))
    for _ in range(1000):
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as f:
            request = json.loads(f.readline())
            if request["cmd"] == "leader":
                leader = kv._getLeader()
                reply = {"leader": leader is not None and str(leader) == me and kv.isReady()}
            elif request["cmd"] == "load":
                reply = load(request["inflight"], request["count"], request["seconds"])
            else:
                reply = sequential(request["count"], request["seconds"])
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()


def _control(port: int, request: dict, timeout: float = 120) -> dict:
    with socket.create_connection((HOST, port), timeout=timeout) as s, s.makefile("rwb") as f:
        f.write(json.dumps(request).encode() + b"\n")
        f.flush()
        return json.loads(f.readline())


def run_pysyncobj(nodes: int, batch: bool, journal: bool, inflights: list[int], sequential: int, seconds: float,
                  folder: Path) -> dict:
    procs = Processes()
    ports = free_ports(nodes)
    partners = ",".join(f"{HOST}:{p}" for p in ports)
    run_folder = Path(tempfile.mkdtemp(prefix="pysyncobj-", dir=folder))  # fresh journals for every run
    try:
        for i, p in enumerate(ports):
            journal_file = str(run_folder / f"{i}.journal") if journal else "-"
            procs.start([sys.executable, __file__, "--pso-node", f"{HOST}:{p}", partners, str(p + 1000),
                         "1" if batch else "0", journal_file], run_folder / f"{i}.log")
        deadline = time.monotonic() + 30
        leader = None
        while leader is None and time.monotonic() < deadline:
            time.sleep(0.2)
            for p in ports:
                with contextlib.suppress(OSError, ValueError):
                    if _control(p + 1000, {"cmd": "leader"}, 2)["leader"]:
                        leader = p + 1000
                        break
        if leader is None:
            raise RuntimeError("pysyncobj: no leader")
        out: dict = {}
        _control(leader, {"cmd": "load", "inflight": 100, "count": 500, "seconds": seconds})  # warm-up
        for k in inflights:
            r = _control(leader, {"cmd": "load", "inflight": k, "count": max(10 * k, 20_000), "seconds": seconds})
            out[f"ops_per_s_{k}"] = round(r["done"] / r["seconds"])
        out["latencies"] = _control(leader, {"cmd": "seq", "count": sequential, "seconds": seconds})["latencies"]
        return out
    finally:
        procs.stop()


LATENCIES = ("", "client_", "read_", "client_read_", "client_follower_read_")  # prefixes of the latency lists


def summarise(total: dict) -> dict:
    """`total` with each list of latencies replaced by its p50, p99 and count."""
    total = dict(total)
    for prefix in LATENCIES:
        lat = total.pop(f"{prefix}latencies", None)
        if lat:
            total.update({f"{prefix}p50_ms": round(percentile(lat, 0.5), 3),
                          f"{prefix}p99_ms": round(percentile(lat, 0.99), 3),
                          f"{prefix}sequential_{'reads' if 'read' in prefix else 'writes'}": len(lat)})
    return total


def reads_row(nodes: int, storage: str, r: dict) -> dict:
    """ReadIndex reads beside the writes of the same raftlab run (`summarise`d), 1,000 in flight."""
    return {"bench": "net_reads", "nodes": nodes, "storage": storage,
            "read_ops_per_s": r["read_ops_per_s_1000"], "write_ops_per_s": r["ops_per_s_1000"],
            "read_write_ratio": round(r["read_ops_per_s_1000"] / r["ops_per_s_1000"], 2),
            "read_p50_ms": r["read_p50_ms"], "write_p50_ms": r["p50_ms"],
            "read_p99_ms": r["read_p99_ms"], "write_p99_ms": r["p99_ms"],
            "client_read_ops_per_s": r["client_read_ops_per_s_1000"],
            "client_write_ops_per_s": r["client_ops_per_s_1000"],
            "client_read_write_ratio": round(r["client_read_ops_per_s_1000"] / r["client_ops_per_s_1000"], 2),
            "client_read_p50_ms": r["client_read_p50_ms"], "client_write_p50_ms": r["client_p50_ms"],
            "client_follower_read_p50_ms": r["client_follower_read_p50_ms"]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pso-node":
        pso_node(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--raftlab-node":
        raftlab_node(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line per result")
    parser.add_argument("--tls", action="store_true",
                        help="raftlab with TLS between nodes and on the client port (clients authenticate by token), "
                             "as `raftlab cluster up` runs it")
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 3])
    parser.add_argument("--inflight", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0, help="cap on each measure (default 20)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="latency rounds, the configurations taken in turn (default 3; --sequential writes each)")
    parser.add_argument("--reads-only", action="store_true",
                        help="only raftlab's ReadIndex reads beside its writes (durable, the node's defaults; "
                             "no PySyncObj needed)")
    parser.add_argument("--catch-up-only", action="store_true",
                        help="only the catch-up of a restarted follower (5 nodes; no PySyncObj needed)")
    parser.add_argument("--catch-up-nodes", type=int, default=5, help="cluster size of the catch-up (default 5)")
    parser.add_argument("--catch-up-entries", type=int, default=20_000,
                        help="entries written while the follower is down (default 20000)")
    parser.add_argument("--catch-up-snapshot-every", type=int, default=1000,
                        help="--snapshot-every of the snapshot catch-up (default 1000)")
    args = parser.parse_args()
    if args.tls:
        global TLS_FOLDER
        TLS_FOLDER = Path(tempfile.mkdtemp(prefix="bench_net-tls-"))
    catch_up_args = (args.catch_up_nodes, args.catch_up_entries, args.catch_up_snapshot_every)
    if args.catch_up_only:
        with tempfile.TemporaryDirectory(prefix="bench_net-") as tmp:
            for row in catch_up(*catch_up_args, Path(tmp), []):
                print(json.dumps(row), flush=True)
        return
    if args.reads_only:
        with tempfile.TemporaryDirectory(prefix="bench_net-") as tmp:
            for nodes in args.nodes:
                print(f"{nodes} nodes, raftlab_durable, reads and writes ...", file=sys.stderr, flush=True)
                total = summarise(run_raftlab(nodes, "sqlite", [1000], args.sequential, args.seconds, Path(tmp)))
                if not args.json:
                    print({"bench": "net_detail", "nodes": nodes, "config": "raftlab_durable", **total}, flush=True)
                print(json.dumps(reads_row(nodes, "sqlite", total)), flush=True)
        return
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        sys.exit("bench_net needs PySyncObj: pip install -e '.[bench]'")
    if 1000 not in args.inflight:
        args.inflight.append(1000)
    summaries = []
    configs: list[tuple[str, Callable[..., dict], tuple]] = [
        ("raftlab_memory", run_raftlab, ("memory",)),
        ("raftlab_durable", run_raftlab, ("sqlite",)),
        ("raftlab_durable_nofsync", run_raftlab, ("sqlite-nofsync",)),
        ("pysyncobj_batch_memory", run_pysyncobj, (True, False)),
        ("pysyncobj_nobatch_memory", run_pysyncobj, (False, False)),
        ("pysyncobj_batch_journal", run_pysyncobj, (True, True)),
        ("pysyncobj_nobatch_journal", run_pysyncobj, (False, True)),
    ]
    with tempfile.TemporaryDirectory(prefix="bench_net-") as tmp:
        folder = Path(tmp)
        for nodes in args.nodes:
            results: dict[str, dict] = {}
            # round 0 measures throughput and latency; later rounds only latency, taking the configurations in
            # turn again, so that a slow minute of a shared machine is not charged to one library alone
            # (PySyncObj with batching answers on its 100 ms timer: one round of it is enough)
            for round_ in range(args.rounds):
                for name, run, options in configs:
                    if round_ and "_batch_" in name:
                        continue
                    print(f"{nodes} nodes, {name}, round {round_ + 1} of {args.rounds} ...", file=sys.stderr,
                          flush=True)
                    got = run(nodes, *options, args.inflight if round_ == 0 else [], args.sequential, args.seconds,
                              folder)
                    total = results.setdefault(name, {})
                    for key, value in got.items():
                        if key.endswith("latencies"):
                            total.setdefault(key, []).extend(value)
                        else:
                            total[key] = value
            for name in list(results):
                total = results[name] = summarise(results[name])
                row = {"bench": "net_detail", "nodes": nodes, "config": name, **total}
                print(json.dumps(row) if args.json else row, flush=True)
            pso = [results["pysyncobj_batch_memory"], results["pysyncobj_nobatch_memory"]]
            pso_durable = [results["pysyncobj_batch_journal"], results["pysyncobj_nobatch_journal"]]
            r, rd, rn = results["raftlab_memory"], results["raftlab_durable"], results["raftlab_durable_nofsync"]
            best_ops = max(p["ops_per_s_1000"] for p in pso)
            best_p50 = min(p["p50_ms"] for p in pso)
            summaries.append({
                "bench": "net", "nodes": nodes, "tls": TLS_FOLDER is not None, "raftlab_ops_per_s": r["ops_per_s_1000"],
                "pysyncobj_ops_per_s": best_ops, "ratio": round(r["ops_per_s_1000"] / best_ops, 2),
                "raftlab_p50_ms": r["p50_ms"], "pysyncobj_p50_ms": best_p50, "raftlab_p99_ms": r["p99_ms"],
                "raftlab_client_ops_per_s": r["client_ops_per_s_1000"],
                "raftlab_client_ratio": round(r["client_ops_per_s_1000"] / best_ops, 2),
                "raftlab_client_p50_ms": r["client_p50_ms"], "raftlab_client_p99_ms": r["client_p99_ms"],
                "raftlab_read_ops_per_s": r["read_ops_per_s_1000"], "raftlab_read_p50_ms": r["read_p50_ms"],
                "raftlab_client_read_ops_per_s": r["client_read_ops_per_s_1000"],
                "raftlab_client_read_p50_ms": r["client_read_p50_ms"]})
            durable_ops = max(p["ops_per_s_1000"] for p in pso_durable)
            print(json.dumps({
                "bench": "net_durable", "nodes": nodes, "raftlab_sqlite_ops_per_s": rd["ops_per_s_1000"],
                "pysyncobj_journal_ops_per_s": durable_ops, "ratio": round(rd["ops_per_s_1000"] / durable_ops, 2),
                "raftlab_sqlite_p50_ms": rd["p50_ms"],
                "pysyncobj_journal_p50_ms": min(p["p50_ms"] for p in pso_durable),
                "raftlab_sqlite_p99_ms": rd["p99_ms"], "raftlab_sqlite_nofsync_ops_per_s": rn["ops_per_s_1000"],
                "raftlab_sqlite_nofsync_p50_ms": rn["p50_ms"]}), flush=True)
            print(json.dumps(reads_row(nodes, "sqlite", rd)), flush=True)
        for row in catch_up(*catch_up_args, folder, []):
            print(json.dumps(row), flush=True)
    summaries.sort(key=lambda s: s["nodes"] == 3)  # the 3-node line last
    for s in summaries:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
