"""The `raftlab node`, `raftlab kv` and `raftlab cluster up|down` commands."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .client import KVClient, KVError, parse_address
from .transport import Address

COMMANDS = ("node", "kv", "cluster")
CLIENT_OFFSET = 1000


def parse_peers(text: str) -> dict[int, Address]:
    """``1=127.0.0.1:7001,2=...`` -> ``{1: ("127.0.0.1", 7001), ...}``."""
    peers: dict[int, Address] = {}
    for item in text.split(","):
        ident, sep, address = item.strip().partition("=")
        if not sep or not ident.isdigit():
            raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, not {item!r}")
        try:
            peers[int(ident)] = parse_address(address)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return peers


def client_addresses(peers: dict[int, Address], offset: int) -> dict[int, Address]:
    return {i: (h, p + offset) for i, (h, p) in peers.items()}


def read_key(path: str | Path) -> bytes:
    """The cluster key from a key file: hex text (64 hex digits from `cluster up`), at least 16 bytes."""
    if os.name == "posix" and Path(path).stat().st_mode & 0o077:
        print(f"warning: {path} is readable by other users; chmod 600 it (whoever reads it can join the cluster)",
              file=sys.stderr)
    text = Path(path).read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = text.encode()
    if len(key) < 16:
        raise ValueError(f"{path}: the key must be at least 16 bytes")
    return key


def add_parsers(commands: Any) -> None:
    """Add the three commands to the `raftlab` parser's subparsers."""
    node = commands.add_parser("node", help="run one replica of a replicated key-value store over TCP")
    node.add_argument("--id", type=int, required=True, help="this node's id (one of --peers)")
    node.add_argument("--peers", type=parse_peers, required=True, help="every node: 1=HOST:PORT,2=HOST:PORT,...")
    node.add_argument("--data-dir", required=True, help="folder of this node's durable state")
    node.add_argument("--key-file", required=True, help="file holding the shared cluster key (hex)")
    node.add_argument("--client-offset", type=int, default=CLIENT_OFFSET,
                      help="client port = peer port + this (default 1000)")
    node.add_argument("--client-host", default="127.0.0.1", help="where to serve clients (default 127.0.0.1)")
    node.add_argument("--storage", choices=["sqlite", "memory"], default="sqlite",
                      help="sqlite (durable, the default) or memory (benchmarks only: a restart forgets the vote)")
    node.add_argument("--unsafe-no-fsync", action="store_true",
                      help="sqlite without an fsync per write: survives a crash of the process, not a power cut "
                           "(which may then lose acknowledged writes); for benchmarks and throwaway clusters")
    node.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                      help="event loop: uvloop if installed (auto, the default), or asyncio's own")
    node.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                      help="snapshot the store and compact the log every N applied entries (default 100000; 0: never)")
    node.add_argument("--no-pre-vote", action="store_true",
                      help="stand for election without a pre-vote first (PreVote is on by default: a node cut off "
                           "and back cannot depose a healthy leader)")
    node.add_argument("--no-check-quorum", action="store_true",
                      help="a leader stays leader without hearing from a majority (CheckQuorum is on by default: "
                           "it steps down after an election timeout without one, and nodes that hear from a leader "
                           "ignore votes for others)")
    node.add_argument("--read-lease", action="store_true",
                      help="serve ReadIndex reads within the leader's lease, without a round of heartbeats: "
                           "linearizable only if the nodes' clocks run at rates within --drift-bound of each other "
                           "(needs CheckQuorum; every node should use it alike)")
    node.add_argument("--drift-bound", type=float, default=None, metavar="R",
                      help="with --read-lease: the most one clock's rate may exceed another's (default 1.1)")

    kv = commands.add_parser("kv", help="client of a raftlab node cluster: put, get, delete, cas, transfer")
    kv.add_argument("--peers", type=parse_peers, required=True, help="the nodes, as for raftlab node")
    kv.add_argument("--client-offset", type=int, default=CLIENT_OFFSET, help="as for raftlab node")
    kv.add_argument("--timeout", type=float, default=10.0, help="seconds, retries included (default 10)")
    kv.add_argument("--through-log", action="store_true",
                    help="get: read through the log (a command appended and committed) instead of ReadIndex "
                         "(the default: linearizable too, with no log write)")
    kv.add_argument("op", choices=["put", "get", "delete", "cas", "append", "transfer", "status"])
    kv.add_argument("args", nargs="*", help="put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED VALUE "
                                            "(EXPECTED '-' for absent) | append KEY VALUE | transfer NODE_ID "
                                            "(the leader hands its leadership to that node) | status")

    cluster = commands.add_parser("cluster", help="start or stop a local loopback cluster in the background")
    cluster.add_argument("action", choices=["up", "down"])
    cluster.add_argument("--dir", required=True, help="folder for the key, data, logs and pids")
    cluster.add_argument("--nodes", type=int, default=3, help="cluster size (up; default 3)")
    cluster.add_argument("--base-port", type=int, default=7001, help="peer port of node 1 (up; default 7001)")


def run(parser: argparse.ArgumentParser, args: Any) -> int:
    if args.command == "node":
        return _node(parser, args)
    if args.command == "kv":
        return _kv(parser, args)
    return _cluster_up(parser, args) if args.action == "up" else _cluster_down(args)


def _node(parser: argparse.ArgumentParser, args: Any) -> int:
    from .node import run_node

    if args.id not in args.peers:
        parser.error(f"node: --id {args.id} is not in --peers")
    try:
        key = read_key(args.key_file)
    except (OSError, ValueError) as error:
        parser.error(f"node: {error}")
    clients = {i: (args.client_host if i == args.id else h, p)
               for i, (h, p) in client_addresses(args.peers, args.client_offset).items()}
    if args.read_lease and args.no_check_quorum:
        parser.error("node: --read-lease needs CheckQuorum (drop --no-check-quorum): without it a lease proves nothing")
    if args.drift_bound is not None and not args.read_lease:
        parser.error("node: --drift-bound applies to --read-lease only")
    options: dict[str, Any] = {"durable": args.storage == "sqlite", "loop": args.loop,
                               "fsync": not args.unsafe_no_fsync, "pre_vote": not args.no_pre_vote,
                               "check_quorum": not args.no_check_quorum, "read_lease": args.read_lease}
    if args.drift_bound is not None:
        if not 1.0 <= args.drift_bound < float("inf"):
            parser.error("node: --drift-bound must be a number >= 1")
        options["drift_bound"] = args.drift_bound
    if args.snapshot_every is not None:
        if args.snapshot_every < 0:
            parser.error("node: --snapshot-every must be >= 0 (0: never)")
        options["snapshot_every"] = args.snapshot_every
    return run_node(args.id, args.peers, key, args.data_dir, clients, **options)


def _kv(parser: argparse.ArgumentParser, args: Any) -> int:
    arity = {"put": 2, "get": 1, "delete": 1, "cas": 3, "append": 2, "transfer": 1, "status": 0}[args.op]
    if len(args.args) != arity:
        parser.error(f"kv {args.op} takes {arity} arguments")
    if args.through_log and args.op != "get":
        parser.error("kv: --through-log applies to get only")
    if args.op == "transfer" and not args.args[0].isdigit():
        parser.error(f"kv transfer takes a node id, not {args.args[0]!r}")
    addresses = list(client_addresses(args.peers, args.client_offset).values())
    with KVClient(addresses, timeout=args.timeout) as client:
        try:
            if args.op == "status":
                for address in addresses:
                    try:
                        print(json.dumps(client.status(address)))
                    except (OSError, ValueError) as error:
                        print(json.dumps({"address": f"{address[0]}:{address[1]}", "error": str(error)}))
                return 0
            a = args.args
            result: Any
            if args.op == "cas":
                result = client.cas(a[0], None if a[1] == "-" else a[1], a[2])
            elif args.op == "get":
                result = client.get(a[0], through_log=args.through_log)
            elif args.op == "transfer":
                result = client.transfer(int(a[0]))
            else:
                result = client.command(args.op, *a)
        except KVError as error:
            print(f"kv {args.op}: {error}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    return 0


def _cluster_up(parser: argparse.ArgumentParser, args: Any) -> int:
    if not 1 <= args.nodes <= 9:
        parser.error("cluster up: --nodes must be between 1 and 9")
    folder = Path(args.dir)
    pids_file = folder / "pids.json"
    if pids_file.exists():
        parser.error(f"cluster up: {pids_file} exists; run raftlab cluster down --dir {folder} first")
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "cluster.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32) + "\n")
        key_file.chmod(0o600)
    peers = ",".join(f"{i}=127.0.0.1:{args.base_port + i - 1}" for i in range(1, args.nodes + 1))
    pids = {}
    for i in range(1, args.nodes + 1):
        with open(folder / f"node{i}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "raftlab.cli", "node", "--id", str(i), "--peers", peers,
                 "--data-dir", str(folder / f"node{i}"), "--key-file", str(key_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        pids[str(i)] = process.pid
    pids_file.write_text(json.dumps({"pids": pids, "peers": peers}) + "\n")
    print(f"started {args.nodes} nodes (pids {', '.join(map(str, pids.values()))}); logs in {folder}/node*.log")
    print(f"try: raftlab kv --peers {peers} put hello world")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_raftlab_node(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"raftlab" in f.read()
    except OSError:
        return sys.platform != "linux"


def _cluster_down(args: Any) -> int:
    pids_file = Path(args.dir) / "pids.json"
    try:
        pids = [int(p) for p in json.loads(pids_file.read_text())["pids"].values()]
    except (OSError, ValueError, KeyError) as error:
        print(f"cluster down: cannot read {pids_file}: {error}", file=sys.stderr)
        return 1
    live = [p for p in pids if _alive(p) and _is_raftlab_node(p)]
    for pid in live:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_alive(p) for p in live):
        time.sleep(0.05)
    for pid in live:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pids_file.unlink()
    print(f"stopped {len(live)} nodes")
    return 0
