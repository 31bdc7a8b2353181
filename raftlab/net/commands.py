"""The `raftlab node`, `raftlab kv` and `raftlab cluster init|up|down|add|remove` commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .client import KVClient, KVError, SessionExpiredError, parse_address
from .tls import client_context, has_tls, init_tls, issue_node, read_token
from .transport import Address

COMMANDS = ("node", "kv", "cluster", "soak")
CLIENT_OFFSET = 1000
SESSION_TIMEOUT = 3600.0  # seconds a client session may stay idle (raftlab node's default)


def parse_session_timeout(text: str) -> float | None:
    """``--session-timeout``: a positive number of seconds, or ``none`` (sessions never expire)."""
    if text.strip().lower() == "none":
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds or 'none', not {text!r}")
    return seconds


def _session_timeout_text(text: str) -> str:
    """`raftlab cluster`'s ``--session-timeout``: checked, and passed on as given to each node."""
    parse_session_timeout(text)
    return text.strip()


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
    """Add the net commands to the `raftlab` parser's subparsers."""
    from .soak import add_parser as add_soak

    node = commands.add_parser("node", help="run one replica of a replicated key-value store over TCP")
    node.add_argument("--id", type=int, required=True, help="this node's id (one of --peers)")
    node.add_argument("--peers", type=parse_peers, required=True, help="every node: 1=HOST:PORT,2=HOST:PORT,...")
    node.add_argument("--data-dir", required=True, help="folder of this node's durable state")
    node.add_argument("--key-file", required=True, help="file holding the shared cluster key (hex)")
    node.add_argument("--tls-dir", metavar="DIR",
                      help="TLS between nodes (mutual) and on the client port (clients authenticate by certificate "
                           "or token), with the files `raftlab cluster init --dir DIR` wrote in DIR/tls; without it "
                           "frames are authenticated (the key) but not encrypted, and clients not authenticated")
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
    node.add_argument("--snapshot-chunk", type=int, default=None, metavar="BYTES",
                      help="bytes of snapshot file per InstallSnapshot chunk sent to a follower (default 1 MiB)")
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
    node.add_argument("--session-timeout", type=parse_session_timeout, default=SESSION_TIMEOUT, metavar="SECONDS",
                      help="client sessions idle longer than this expire, by the leader's clock carried in the log "
                           "(default 3600; 'none': never). This node proposes it when it leads; the cluster applies "
                           "the latest one registered")
    node.add_argument("--join", action="store_true",
                      help="a new node joining a running cluster as a learner (never counted, never stands until "
                           "promoted): --peers lists the cluster's members and this node; `raftlab cluster add` "
                           "starts it so and adds it")

    kv = commands.add_parser("kv", help="client of a raftlab node cluster: put, get, delete, cas, transfer")
    kv.add_argument("--peers", type=parse_peers, required=True, help="the nodes, as for raftlab node")
    kv.add_argument("--client-offset", type=int, default=CLIENT_OFFSET, help="as for raftlab node")
    kv.add_argument("--timeout", type=float, default=10.0, help="seconds, retries included (default 10)")
    kv.add_argument("--tls-dir", metavar="DIR", help="the cluster uses TLS: its folder (DIR/tls, from cluster init); "
                                                     "authenticate with the client token unless --client is given")
    kv.add_argument("--client", metavar="NAME", help="with --tls-dir: authenticate with DIR/tls/client-NAME.pem")
    kv.add_argument("--through-log", action="store_true",
                    help="get: read through the log (a command appended and committed) instead of ReadIndex "
                         "(the default: linearizable too, with no log write)")
    kv.add_argument("op", choices=["put", "get", "delete", "cas", "append", "transfer", "status"])
    kv.add_argument("args", nargs="*", help="put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED VALUE "
                                            "(EXPECTED '-' for absent) | append KEY VALUE | transfer NODE_ID "
                                            "(the leader hands its leadership to that node) | status")

    cluster = commands.add_parser("cluster", help="start or stop a local loopback cluster in the background; "
                                                  "add or remove a node of a running cluster")
    cluster.add_argument("action", choices=["init", "up", "down", "add", "remove"])
    cluster.add_argument("--dir", help="folder for the key, the TLS files, data, logs and pids (init, up, down; add "
                                       "and remove: where --peers, --key-file and --data-dir default from)")
    cluster.add_argument("--nodes", type=int, default=3, help="cluster size (init, up; default 3)")
    cluster.add_argument("--clients", default="admin",
                         help="init: the client certificates to write, comma-separated names (default admin)")
    cluster.add_argument("--plain", action="store_true",
                         help="up: no TLS (frames between nodes authenticated by the key but not encrypted; clients "
                              "not authenticated): for loopback experiments only")
    cluster.add_argument("--base-port", type=int, default=7001, help="peer port of node 1 (up; default 7001)")
    cluster.add_argument("--session-timeout", type=_session_timeout_text, default=None, metavar="SECONDS",
                         help="up, add: each node's --session-timeout (default: the node's, 3600; 'none': never)")
    cluster.add_argument("--id", type=int, help="add, remove: the node")
    cluster.add_argument("--addr", help="add: the new node's peer address HOST:PORT (clients: port + --client-offset)")
    cluster.add_argument("--peers", type=parse_peers,
                         help="add, remove: nodes of the cluster to ask (default: those recorded in --dir)")
    cluster.add_argument("--key-file", help="add: the cluster key (default DIR/cluster.key)")
    cluster.add_argument("--data-dir", help="add: the new node's data folder (default DIR/nodeN)")
    cluster.add_argument("--client-offset", type=int, default=CLIENT_OFFSET, help="as for raftlab node")
    cluster.add_argument("--timeout", type=float, default=30.0, help="add, remove: seconds (default 30)")
    cluster.add_argument("--no-start", action="store_true",
                         help="add: do not start the node (run `raftlab node --join ...` yourself): only add it as a "
                              "learner, wait until it has caught up and promote it")
    add_soak(commands)


def run(parser: argparse.ArgumentParser, args: Any) -> int:
    if args.command == "node":
        return _node(parser, args)
    if args.command == "kv":
        return _kv(parser, args)
    if args.command == "soak":
        from .soak import run_soak

        return run_soak(parser, args)
    if args.action in ("init", "up", "down"):
        if args.dir is None:
            parser.error(f"cluster {args.action}: --dir is required")
        if args.action == "init":
            return _cluster_init(parser, args)
        return _cluster_up(parser, args) if args.action == "up" else _cluster_down(args)
    return _cluster_add(parser, args) if args.action == "add" else _cluster_remove(parser, args)


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
                               "check_quorum": not args.no_check_quorum, "read_lease": args.read_lease,
                               "learner": args.join, "session_timeout": args.session_timeout}
    if args.drift_bound is not None:
        if not 1.0 <= args.drift_bound < float("inf"):
            parser.error("node: --drift-bound must be a number >= 1")
        options["drift_bound"] = args.drift_bound
    if args.snapshot_every is not None:
        if args.snapshot_every < 0:
            parser.error("node: --snapshot-every must be >= 0 (0: never)")
        options["snapshot_every"] = args.snapshot_every
    if args.snapshot_chunk is not None:
        if args.snapshot_chunk < 1:
            parser.error("node: --snapshot-chunk must be >= 1")
        options["snapshot_chunk"] = args.snapshot_chunk
    if args.tls_dir is not None:
        from .tls import NodeTls
        try:
            options["tls"] = NodeTls(args.tls_dir, args.id)
        except (OSError, ValueError) as error:
            parser.error(f"node: --tls-dir: {error}")
    return run_node(args.id, args.peers, key, args.data_dir, clients, **options)


def _kv(parser: argparse.ArgumentParser, args: Any) -> int:
    arity = {"put": 2, "get": 1, "delete": 1, "cas": 3, "append": 2, "transfer": 1, "status": 0}[args.op]
    if len(args.args) != arity:
        parser.error(f"kv {args.op} takes {arity} arguments")
    if args.through_log and args.op != "get":
        parser.error("kv: --through-log applies to get only")
    if args.op == "transfer" and not args.args[0].isdigit():
        parser.error(f"kv transfer takes a node id, not {args.args[0]!r}")
    if args.client is not None and args.tls_dir is None:
        parser.error("kv: --client needs --tls-dir")
    addresses = list(client_addresses(args.peers, args.client_offset).values())
    try:
        credentials = client_credentials(args.tls_dir, args.client)
    except (OSError, ValueError) as error:
        parser.error(f"kv: {error}")
    with KVClient(addresses, timeout=args.timeout, **credentials) as client:
        try:
            if args.op == "status":  # the nodes of --peers, then the members they know of
                asked: set[Address] = set()
                todo = list(addresses)
                while todo:
                    address = todo.pop(0)
                    if address in asked:
                        continue
                    asked.add(address)
                    try:
                        status = client.status(address)
                    except (OSError, ValueError, KeyError) as error:
                        print(json.dumps({"address": f"{address[0]}:{address[1]}", "error": str(error)}))
                        continue
                    print(json.dumps(status))
                    members = set(status.get("configuration", {}).get("voters", ())) | set(
                        status.get("configuration", {}).get("learners", ()))
                    for ident, known in sorted(status.get("addresses", {}).items()):
                        if int(ident) in members and known.get("client"):
                            with contextlib.suppress(ValueError):
                                todo.append(parse_address(known["client"]))
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
        except SessionExpiredError as error:  # (a KVError: the outcome of this command is unknown)
            print(f"kv {args.op}: {error}\nkv {args.op}: the command may or may not have been applied: check "
                  f"with `raftlab kv get` before running it again", file=sys.stderr)
            return 1
        except KVError as error:
            print(f"kv {args.op}: {error}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    return 0


def client_credentials(tls_dir: str | Path | None, client: str | None = None) -> dict[str, Any]:
    """`KVClient`'s ``tls`` and ``token`` for a cluster folder with TLS (`raftlab cluster init`): the
    certificate ``client-NAME`` if `client` is given, else the client token; {} without a folder."""
    if tls_dir is None:
        return {}
    if client is not None:
        return {"tls": client_context(tls_dir, client)}
    return {"tls": client_context(tls_dir), "token": read_token(tls_dir)}


def _write_key(folder: Path) -> Path:
    key_file = folder / "cluster.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32) + "\n")
        key_file.chmod(0o600)
    return key_file


def _cluster_init(parser: argparse.ArgumentParser, args: Any) -> int:
    """Write the cluster key, a CA, a certificate per node (1..--nodes) and per client, and a client token."""
    if not 1 <= args.nodes <= 9:
        parser.error("cluster init: --nodes must be between 1 and 9")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_key(folder)
    clients = [c for c in args.clients.split(",") if c]
    try:
        tls = init_tls(folder, range(1, args.nodes + 1), clients)
    except ValueError as error:
        parser.error(f"cluster init: {error}")
    print(f"wrote {folder / 'cluster.key'}, a cluster CA and certificates for nodes 1-{args.nodes} and clients "
          f"{', '.join(clients) or '(none)'} in {tls} (keep ca-key.pem, *-key.pem and client.token private)")
    return 0


def _cluster_up(parser: argparse.ArgumentParser, args: Any) -> int:
    if not 1 <= args.nodes <= 9:
        parser.error("cluster up: --nodes must be between 1 and 9")
    folder = Path(args.dir)
    pids_file = folder / "pids.json"
    if pids_file.exists():
        parser.error(f"cluster up: {pids_file} exists; run raftlab cluster down --dir {folder} first")
    folder.mkdir(parents=True, exist_ok=True)
    key_file = _write_key(folder)
    tls = not args.plain
    if tls and not all((folder / "tls" / f"node-{i}.pem").exists() for i in range(1, args.nodes + 1)):
        init_tls(folder, [i for i in range(1, args.nodes + 1) if not (folder / "tls" / f"node-{i}.pem").exists()],
                 [] if has_tls(folder) else ["admin"])
    peers = ",".join(f"{i}=127.0.0.1:{args.base_port + i - 1}" for i in range(1, args.nodes + 1))
    pids = {}
    for i in range(1, args.nodes + 1):
        with open(folder / f"node{i}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "raftlab.cli", "node", "--id", str(i), "--peers", peers,
                 "--data-dir", str(folder / f"node{i}"), "--key-file", str(key_file)]
                + (["--tls-dir", str(folder)] if tls else []) + _session_option(args),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        pids[str(i)] = process.pid
    pids_file.write_text(json.dumps({"pids": pids, "peers": peers, "tls": tls}) + "\n")
    print(f"started {args.nodes} nodes (pids {', '.join(map(str, pids.values()))}); logs in {folder}/node*.log"
          + (f"; TLS with the files of {folder}/tls" if tls else "; plain TCP (no TLS)"))
    print(f"try: raftlab kv --peers {peers}{f' --tls-dir {folder}' if tls else ''} put hello world")
    return 0


def _session_option(args: Any) -> list[str]:
    """``--session-timeout`` for the nodes `raftlab cluster` starts, if it was given."""
    timeout = getattr(args, "session_timeout", None)
    return [] if timeout is None else ["--session-timeout", timeout]


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


# ----- cluster add / remove: membership change through the leader (thesis §4) ---------------------------
def _format_peers(peers: dict[int, Address]) -> str:
    return ",".join(f"{i}={h}:{p}" for i, (h, p) in sorted(peers.items()))


def _recorded(folder: Path | None) -> dict:
    """The pids.json of a `cluster up` folder ({} without one)."""
    if folder is None or not (folder / "pids.json").exists():
        return {}
    return json.loads((folder / "pids.json").read_text())


def _membership_peers(parser: argparse.ArgumentParser, args: Any) -> dict[int, Address]:
    if args.peers is not None:
        return args.peers
    try:
        recorded = _recorded(None if args.dir is None else Path(args.dir))
    except (OSError, ValueError) as error:
        parser.error(f"cluster {args.action}: cannot read {args.dir}/pids.json: {error}")
    if "peers" not in recorded:
        parser.error(f"cluster {args.action}: give --peers, or --dir of a cluster started by cluster up")
    return parse_peers(recorded["peers"])


def _members(reply: dict) -> dict[int, Address]:
    """The peer addresses of the members of a configuration reply."""
    c = reply["configuration"]
    found = {}
    for ident, known in reply.get("addresses", {}).items():
        if int(ident) in {*c["voters"], *c["learners"]} and known.get("peer"):
            found[int(ident)] = parse_address(known["peer"])
    return found


def _say(text: str) -> None:
    print(text, flush=True)


def _cluster_add(parser: argparse.ArgumentParser, args: Any) -> int:
    """Add node --id at --addr: its addresses and then it as a learner are committed through the leader;
    the node is started (unless --no-start) with --join, and promoted once it has caught up."""
    if args.id is None or args.addr is None:
        parser.error("cluster add: --id and --addr are required")
    if not 0 <= args.id < 10**18:
        parser.error("cluster add: --id must be a natural number")
    try:
        peer = parse_address(args.addr)
    except ValueError as error:
        parser.error(f"cluster add: --addr: {error}")
    client_address = (peer[0], peer[1] + args.client_offset)
    peers = _membership_peers(parser, args)
    folder = None if args.dir is None else Path(args.dir)
    key_file = args.key_file or (None if folder is None else str(folder / "cluster.key"))
    data_dir = args.data_dir or (None if folder is None else str(folder / f"node{args.id}"))
    if not args.no_start and (key_file is None or data_dir is None):
        parser.error("cluster add: give --dir, or --key-file and --data-dir (or --no-start)")
    if not args.no_start and folder is not None and not _recorded(folder):
        parser.error(f"cluster add: {folder}/pids.json does not exist (no cluster up there); give --peers "
                     "--key-file --data-dir instead")
    if not args.no_start:
        for port in (peer[1], client_address[1]):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as the node listens)
                try:
                    probe.bind((peer[0], port))
                except OSError as error:
                    print(f"cluster add: cannot listen on {peer[0]}:{port}: {error}", file=sys.stderr)
                    return 1
    deadline = time.monotonic() + args.timeout
    addresses = list(client_addresses(peers, args.client_offset).values())
    tls = folder is not None and has_tls(folder)
    if tls and not args.no_start:
        assert folder is not None
        issue_node(folder, args.id)  # signed by the cluster's CA
    with KVClient(addresses, timeout=args.timeout, **client_credentials(folder if tls else None)) as client:
        try:
            added = client.add_member(args.id, peer, client_address)
        except KVError as error:
            print(f"cluster add: node {args.id} not added: {error}", file=sys.stderr)
            return 1
        c = added["configuration"]
        _say(f"node {args.id} is a learner (voters {c['voters']}, learners {c['learners']}; entry {c['index']})")
        members = {**_members(added), args.id: peer}
        process = None
        if key_file is not None and data_dir is not None and not args.no_start:
            process = _start_node(args.id, members, key_file, data_dir, folder, args.client_offset, tls,
                                  _session_option(args))
            log = _node_log(folder, data_dir, args.id)
            _say(f"started node {args.id} (pid {process.pid}) with --join; its log: {log}")
            if folder is not None:  # recorded at once: `cluster down` stops it whatever happens next
                pid = process.pid

                def record(r: dict) -> None:
                    r.setdefault("pids", {})[str(args.id)] = pid
                    r["peers"] = _format_peers(members)

                _update_recorded(folder, record)
        else:
            _say(f"start it: raftlab node --id {args.id} --peers {_format_peers(members)} --join --data-dir DIR "
                 f"--key-file KEY")
        # MC-LEARNER: promoted once it has caught up; it has once it applied what was committed when it joined
        target, applied = c["index"], -1
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                print(f"cluster add: node {args.id} exited (code {process.returncode}); see its log. It is still a "
                      f"learner: raftlab cluster remove --id {args.id} ...", file=sys.stderr)
                return 1
            with contextlib.suppress(OSError, ValueError, KeyError):
                applied = client.status(client_address, timeout=1.0)["last_applied"]
            if applied >= target:
                break
            time.sleep(0.1)
        else:
            progress = (f"applied {applied} of {target}" if applied >= 0
                        else f"no answer on its client port {client_address[0]}:{client_address[1]}")
            print(f"cluster add: node {args.id} did not catch up within {args.timeout} s ({progress}); it is still "
                  f"a learner (raftlab cluster remove --id {args.id} ... to drop it)", file=sys.stderr)
            return 1
        _say(f"node {args.id} caught up (applied {applied}); promoting it")
        client.timeout = max(deadline - time.monotonic(), 1.0)
        try:
            promoted = client.promote_member(args.id)
        except KVError as error:
            print(f"cluster add: node {args.id} not promoted (it stays a learner): {error}", file=sys.stderr)
            return 1
    c = promoted["configuration"]
    _say(f"node {args.id} is a voter (voters {c['voters']}, learners {c['learners']}; entry {c['index']})")
    print(json.dumps(c))
    return 0


def _node_log(folder: Path | None, data_dir: str, ident: int) -> Path:
    return folder / f"node{ident}.log" if folder is not None else Path(data_dir) / "node.log"


def _start_node(ident: int, members: dict[int, Address], key_file: str, data_dir: str, folder: Path | None,
                offset: int, tls: bool, extra: list[str] | None = None) -> subprocess.Popen:
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    with open(_node_log(folder, data_dir, ident), "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "raftlab.cli", "node", "--id", str(ident), "--peers", _format_peers(members),
             "--data-dir", data_dir, "--key-file", key_file, "--client-offset", str(offset), "--join"]
            + (["--tls-dir", str(folder)] if tls else []) + (extra or []),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def _update_recorded(folder: Path, change: Any) -> None:
    recorded = _recorded(folder)
    if recorded:
        change(recorded)
        (folder / "pids.json").write_text(json.dumps(recorded) + "\n")


def _cluster_remove(parser: argparse.ArgumentParser, args: Any) -> int:
    """Remove node --id through the leader; then stop its process if this --dir started it."""
    if args.id is None:
        parser.error("cluster remove: --id is required")
    peers = _membership_peers(parser, args)
    folder = None if args.dir is None else Path(args.dir)
    credentials = client_credentials(folder if folder is not None and has_tls(folder) else None)
    with KVClient(list(client_addresses(peers, args.client_offset).values()), timeout=args.timeout,
                  **credentials) as client:
        try:
            removed = client.remove_member(args.id)
        except KVError as error:
            print(f"cluster remove: node {args.id} not removed: {error}", file=sys.stderr)
            return 1
    c = removed["configuration"]
    _say(f"node {args.id} removed (voters {c['voters']}, learners {c['learners']}; entry {c['index']})")
    try:
        recorded = _recorded(folder)
    except (OSError, ValueError):
        recorded = {}
    pid = recorded.get("pids", {}).get(str(args.id))
    if folder is not None and pid is not None:
        if _alive(pid) and _is_raftlab_node(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            _say(f"stopped node {args.id} (pid {pid})")

        def forget(r: dict) -> None:
            r["pids"].pop(str(args.id), None)
            r["peers"] = _format_peers({i: a for i, a in parse_peers(r["peers"]).items() if i != args.id})

        _update_recorded(folder, forget)
    else:
        _say(f"stop node {args.id}'s process yourself: it no longer belongs to the cluster (a removed leader steps "
             f"down and stays idle; a removed follower is not told, and keeps asking for votes, which the members "
             f"ignore)")
    print(json.dumps(c))
    return 0
