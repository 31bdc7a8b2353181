"""`raftlab soak`: a soak in the style of Jepsen, on loopback, bounded in time (issue 17 item 4).

A cluster of real `raftlab node` processes (5 by default; `raftlab.net.local.LocalCluster`, each node
its own process group, its data folder under the soak's folder) whose every directed link i -> j goes
through its own TCP fault proxy (`raftlab.net.proxy`): node i's ``--peers`` maps j to the proxy of
i -> j, and since raftlab's transport sends i's messages to j on the one connection i dials to j,
faulting that proxy forward faults i -> j and nothing else. (Each node also gets its own
``--client-offset``, chosen so that its proxied peer ports plus its offset are the nodes' real client
ports: the leader hints it gives clients are right.)

**The schedule** (`schedule`) is a pure function of the seed (``random.Random(seed)``), the minutes and
the number of nodes; `schedule_hash` names it. Every 10-14 s a *slot* holds one nemesis fault for 2-5 s,
then healed:

- ``links``: 1-3 directed links dropped (a chunk lost with its connection with probability 5-50 %),
  delayed (5-200 ms, with jitter) or cut one way;
- ``partition``: the nodes split in two, a minority of 1 or 2 (sometimes around the current leader),
  every link between the halves cut both ways;
- ``kill_follower``: ``kill -9`` of a follower, restarted on its data folder when the fault ends;
- ``pause``: ``SIGSTOP`` of a node (the leader, sometimes), ``SIGCONT`` when it ends;
- ``quiet``: nothing;

and a *failover*: ``kill -9`` of the current leader, after the fault (or, one slot in four, during it),
the killed node restarted on its data folder 1.5-3.5 s later. Faults that would take a node down while
another is down, and a leader kill while two are down, are skipped (and counted): a majority stays up.
Which node is the leader, and so which node a ``pick`` of the schedule names, is decided at run time.

**The clients**: `clients` threads, each with its own `KVClient` (its own client id), one operation at
a time: ``append`` of a token unique to the run (``<client>.<n>;``), ReadIndex ``read``, or ``get``
through the log, on the 4 keys of the current 5-second *epoch* (keys ``e<epoch>k<k>``: each key's
history stays short, so its check stays cheap). Each operation is recorded as a `raftlab.check`
`Operation` with its invocation and completion times: ``ok`` (completed with its output), ``failed``
(refused for sure, as ``bad_request``: left out of the history, it cannot have taken effect) or
``unknown`` (its deadline, `OP_TIMEOUT` = 2 s, passed, or its connection broke: ``ret=None``, the checker
lets it take effect at any time after its call, or never).

**The end**: every link healed, every node continued and restarted, a leader awaited, the clients
stopped; then, bounded in time:

- ``caught_up``: within 30 s, one round of status in which every node answers and has applied (its
  ``last_applied``) at least the commit index of the leader of that round;
- the *final reads*: a ReadIndex read of every key ever used, recorded in the history too;
- ``diverged``: keys whose applied value (``local_get``) differs between nodes after ``caught_up``.

**The verdict** (`judge`, a pure function of the history, so a saved history is judged again the same):

- ``acknowledged``: appends that completed ``ok``;
- ``lost``: acknowledged appends whose token is not in the final read of their key. The workload only
  appends, so an acknowledged append must be in every later value of its key: this is exact;
- ``unverified``: acknowledged appends whose key has no final read (the read failed);
- ``duplicated``: tokens found more than once in a final value (an append applied twice);
  ``phantom``: tokens in a final value that no recorded operation could have written;
- ``nonlinearizable``: keys whose history `raftlab.check.check` finds not linearizable;
  ``check_unknown``: keys the checker could not decide within its time (not counted as linearizable);
- ``failovers``: leader kills after which a leader of a higher term was seen before the next leader kill
  (or the end of the run); ``leader_kills`` all of them, ``kills`` every ``kill -9``.

``ok`` is true if nothing was lost, unverified, duplicated, phantom, diverged, non-linearizable or
undecided and every node caught up; `raftlab soak` exits 1 otherwise. In its folder (``--dir``, or a
temporary one kept only if the verdict is not ok) it leaves the nodes' logs and data, ``events.jsonl``
(what the nemesis did, when, to whom), ``history.jsonl.gz`` (every operation) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..check import Operation, check
from ..check.linearizability import by_key
from .client import KVClient, KVError
from .local import LocalCluster, port_free
from .proxy import FORWARD, PASS, Fault, ProxyNet

NEMESES = ("links", "partition", "kill_follower", "pause", "quiet")
WEIGHTS = (3, 2, 2, 2, 1)
WARMUP = 3.0  # seconds of clients before the first fault
SLOT = (10.0, 14.0)  # seconds between two slots (a fault and a failover)
FAULT = (2.0, 5.0)  # seconds a fault lasts
RESTART = (1.5, 3.5)  # seconds between a leader's kill -9 and its restart
EPOCH = 5.0  # seconds the clients use one set of keys
KEYS = 4  # keys per epoch
OP_TIMEOUT = 2.0  # a client's deadline per operation, retries included (short: some outcomes are unknown)
FINAL_CLIENT = 0  # the client id of the final reads
CATCH_UP_WAIT = 30.0
LEADER_WAIT = 30.0
FINAL_READS_WAIT = 90.0
CHECK_BUDGET = 180.0  # seconds for the whole check; a key gets at most KEY_BUDGET
KEY_BUDGET = 20.0
PROGRESS_EVERY = 5.0
PORT_STEP = 100  # node i's client offset is PORT_STEP * i (see _layout)


# ----- the schedule: a pure function of the seed ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """One action of the schedule: `kind` at `at` seconds from the start, lasting `duration` seconds.

    `detail` (JSON-able) by kind: ``links``: ``((i, j, mode, amount), ...)`` with mode ``drop``
    (amount: probability), ``delay`` (seconds) or ``cut``; ``partition``: ``(order, minority,
    around_leader)``: the first `minority` ids of `order` (the leader moved first if `around_leader`)
    against the rest; ``kill_follower``: ``(pick,)``; ``pause``: ``("leader" | "follower", pick)``;
    ``kill_leader``: ``()`` (`duration`: until the restart); ``quiet``: ``()``. A ``pick`` in [0, 1)
    chooses among the candidates at run time (sorted ids).
    """

    at: float
    kind: str
    duration: float
    detail: tuple = ()

    def as_json(self) -> list:
        return [self.at, self.kind, self.duration, self.detail]


def schedule(seed: int, minutes: float, nodes: int = 5) -> list[Step]:
    """The soak's faults for `seed`: the same arguments give the same list, in any process."""
    rng = random.Random(seed)
    ids = list(range(1, nodes + 1))
    links = [(i, j) for i in ids for j in ids if i != j]
    horizon = minutes * 60.0
    steps: list[Step] = []
    t = WARMUP
    while True:
        slot = rng.uniform(*SLOT)
        if t + slot > horizon:
            break
        kind = rng.choices(NEMESES, WEIGHTS)[0]
        duration = round(rng.uniform(*FAULT), 3)
        overlap = rng.random() < 0.25
        detail: tuple = ()
        if kind == "links":
            chosen = []
            for i, j in rng.sample(links, rng.randint(1, 3)):
                mode = rng.choice(("drop", "delay", "cut"))
                amount = {"drop": round(rng.uniform(0.05, 0.5), 3), "delay": round(rng.uniform(0.005, 0.2), 4),
                          "cut": 0.0}[mode]
                chosen.append((i, j, mode, amount))
            detail = tuple(chosen)
        elif kind == "partition":
            order = ids[:]
            rng.shuffle(order)
            detail = (tuple(order), rng.choice((1, 2)), rng.random() < 0.3)
        elif kind == "kill_follower":
            detail = (round(rng.random(), 4),)
        elif kind == "pause":
            detail = ("leader" if rng.random() < 0.3 else "follower", round(rng.random(), 4))
        steps.append(Step(round(t, 3), kind, duration, detail))
        kill_at = t + (rng.uniform(0.5, duration - 0.5) if overlap else duration + rng.uniform(0.5, 1.5))
        steps.append(Step(round(kill_at, 3), "kill_leader", round(rng.uniform(*RESTART), 3)))
        t += slot
    return sorted(steps, key=lambda s: s.at)


def schedule_hash(steps: Sequence[Step]) -> str:
    """A name for a schedule: the SHA-256 of its canonical JSON (16 hex digits)."""
    text = json.dumps([s.as_json() for s in steps], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----- the verdict: a pure function of the history -----------------------------------------------------
def tokens(value: object) -> list[str]:
    """The append tokens in a key's value (``"1.a;2.3;"`` -> ``["1.a", "2.3"]``)."""
    return [t for t in value.split(";") if t] if isinstance(value, str) else []


@dataclass
class Verdict:
    """What `judge` found (see the module's docstring for each figure)."""

    acknowledged: int = 0
    lost: int = 0
    unverified: int = 0
    duplicated: int = 0
    phantom: int = 0
    nonlinearizable: int = 0
    check_unknown: int = 0
    keys: int = 0
    lost_tokens: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)  # the checker's, for non-linearizable keys

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unverified or self.duplicated or self.phantom or self.nonlinearizable
                    or self.check_unknown)


def judge(operations: Sequence[Operation], *, budget: float = CHECK_BUDGET, key_budget: float = KEY_BUDGET,
          clock: Callable[[], float] = time.monotonic) -> Verdict:
    """Judge a soak's history: `operations` are the clients' (``ok`` and ``unknown`` ones; ``failed``
    ones left out) and the final reads (client `FINAL_CLIENT`). The checker gets at most `budget`
    seconds in all and `key_budget` per key; a key not decided in time counts in ``check_unknown``."""
    verdict = Verdict()
    final = {op.key: op.output for op in operations if op.client == FINAL_CLIENT and op.ret is not None}
    appends = [op for op in operations if op.op == "append" and op.client != FINAL_CLIENT]
    written = {op.value for op in appends}
    found = {key: collections.Counter(tokens(value)) for key, value in final.items()}
    for op in appends:
        if op.ret is None:
            continue
        verdict.acknowledged += 1
        if op.key not in found:
            verdict.unverified += 1
        elif op.value is not None and found[op.key][op.value[:-1]] == 0:  # (the token without its ";")
            verdict.lost += 1
            verdict.lost_tokens.append(f"{op.key}:{op.value}")
    for counts in found.values():
        verdict.duplicated += sum(c - 1 for c in counts.values() if c > 1)
        verdict.phantom += sum(1 for t in counts if f"{t};" not in written)
    parts = by_key(operations)
    verdict.keys = len(parts)
    deadline = clock() + budget
    for part in parts:
        left = deadline - clock()
        if left <= 0:
            verdict.check_unknown += 1
            continue
        result = check(part, timeout=min(key_budget, left))
        if result.ok is False:
            verdict.nonlinearizable += 1
            verdict.explanations.append(result.explain())
        elif result.ok is None:
            verdict.check_unknown += 1
    return verdict


def _record(op: Operation, outcome: str) -> dict:
    return {"client": op.client, "op": op.op, "key": op.key, "value": op.value, "call": op.call, "ret": op.ret,
            "output": op.output, "outcome": outcome}


def _operation(r: dict) -> Operation:
    return Operation(r["client"], r["op"], r["key"], r["value"], call=r["call"], ret=r["ret"], output=r["output"])


def write_history(path: Path, records: Iterable[dict]) -> None:
    """The history as gzipped JSON lines (one operation a line, with its outcome)."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def read_history(path: Path) -> list[Operation]:
    """The operations of a saved history that `judge` takes (the ``failed`` ones left out)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    return [_operation(r) for r in records if r["outcome"] != "failed"]


# ----- the run -------------------------------------------------------------------------------------------
def _layout(n: int) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Free ports: each node's client port, and the port of each directed link i -> j (i == j: node i's
    own peer port). Node i runs with client offset ``PORT_STEP * i``, and the port of i -> j is node j's
    client port minus it, so that node i's idea of j's client port (its peer port plus its offset) is right."""
    rng = random.Random()  # (ports need not be reproducible; never the global random)
    for _ in range(200):
        base = rng.randrange(21000, 30000)
        clients = {j: base + j for j in range(1, n + 1)}
        links = {(i, j): clients[j] - PORT_STEP * i for i in range(1, n + 1) for j in range(1, n + 1)}
        if all(port_free(p) for p in [*clients.values(), *links.values()]):
            return clients, links
    raise RuntimeError("no free ports")


@dataclass
class Counts:
    """What the nemesis did."""

    leader_kills: int = 0
    failovers: int = 0
    follower_kills: int = 0
    pauses: int = 0
    link_faults: int = 0  # directed links faulted (a partition's cuts not counted)
    partitions: int = 0
    skipped: int = 0  # faults not applied (a majority must stay up; no leader to kill)
    election_times: list[float] = field(default_factory=list)  # seconds from a leader kill to a new leader


class _Client(threading.Thread):
    """One client thread: appends, ReadIndex reads and reads through the log, one at a time."""

    def __init__(self, soak: Soak, index: int) -> None:
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.soak, self.id = soak, index
        self.rng = random.Random(f"raftlab-soak/{soak.seed}/client/{index}")
        self.records: list[dict] = []
        self.outcomes: collections.Counter[tuple[bool, str]] = collections.Counter()  # (an append?, outcome)
        self.errors: collections.Counter[str] = collections.Counter()

    def _add(self, op: Operation, outcome: str) -> None:
        self.records.append(_record(op, outcome))
        self.outcomes[op.op == "append", outcome] += 1

    def run(self) -> None:
        soak = self.soak
        addresses = [soak.cluster.client_address(i) for i in soak.cluster.ids]
        with KVClient(addresses, client_id=self.id, timeout=OP_TIMEOUT, **soak.cluster.credentials()) as kv:
            for n in range(10**9):  # bounded; `stop` ends it
                if soak.stop_clients.is_set():
                    return
                key = f"e{int(soak.now() // EPOCH)}k{self.rng.randrange(KEYS)}"
                r = self.rng.random()
                op, value = ("append", f"{self.id}.{n:x};") if r < 0.55 else ("read" if r < 0.9 else "get", None)
                call = soak.now()
                try:
                    if op == "append":
                        assert value is not None
                        output: Any = kv.append(key, value)
                    elif op == "read":
                        output = kv.read(key)
                    else:
                        output = kv.get(key, through_log=True)
                except KVError as error:
                    failed = str(error).startswith("bad request")
                    self.errors[str(error).split(":")[0]] += 1
                    self._add(Operation(self.id, op, key, value, call=call), "failed" if failed else "unknown")
                    continue
                except Exception as error:  # (a broken connection the client did not retry, say): unknown
                    self.errors[type(error).__name__] += 1
                    self._add(Operation(self.id, op, key, value, call=call), "unknown")
                    continue
                self._add(Operation(self.id, op, key, value, call=call, ret=soak.now(), output=output), "ok")


class Soak:
    """One soak run (see the module's docstring). `run` returns the summary (a JSON-able dict).

    Args:
        folder: where the nodes' data and logs, and the soak's files go (must hold no node data yet).
        seed, minutes, nodes: the schedule's arguments.
        clients: client threads.
        tls: TLS between nodes and for clients (through the same proxies).
        say: where progress lines go (default: stderr).
    """

    def __init__(self, folder: Path, seed: int, minutes: float, *, nodes: int = 5, clients: int = 4,
                 tls: bool = False, say: Callable[[str], None] | None = None) -> None:
        self.folder, self.seed, self.minutes, self.nodes, self.clients = folder, seed, minutes, nodes, clients
        self.steps = schedule(seed, minutes, nodes)
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        client_ports, link_ports = _layout(nodes)
        self.cluster = LocalCluster(folder, nodes, ("--snapshot-every", "2000"), tls=tls,
                                    ports={i: link_ports[i, i] for i in range(1, nodes + 1)})
        self.cluster.client_ports = client_ports
        for i in self.cluster.ids:
            self.cluster.node_options[i] = ["--client-offset", str(PORT_STEP * i)]
            self.cluster.node_peers[i] = ",".join(f"{j}=127.0.0.1:{link_ports[i, j]}" for j in self.cluster.ids)
        self.link_ports = link_ports
        self.proxies = ProxyNet(seed)
        self.counts = Counts()
        self.down: dict[int, str] = {}  # node -> "killed" | "paused"
        self.events: list[dict] = []
        self.stop_clients = threading.Event()
        self.threads: list[_Client] = []
        self._start = time.monotonic()
        self._pending: tuple[int, int, float] | None = None  # a leader kill awaiting its failover: node, term, when
        self._applied: dict[int, Any] = {}  # step index -> what was applied (to undo it)
        self._last_leader: int | None = None

    def now(self) -> float:
        return time.monotonic() - self._start

    # ----- the nemesis ---------------------------------------------------------------------------------
    def _event(self, action: str, **detail: Any) -> None:
        self.events.append({"t": round(self.now(), 3), "action": action, **detail})

    def _up(self) -> list[int]:
        return [i for i in self.cluster.ids if i not in self.down]

    def _leader(self, timeout: float = 0.5) -> tuple[int, int] | None:
        """The leader (and its term) among the nodes up, by their own status: the highest term's."""
        statuses = self.cluster.statuses(self._up(), timeout=timeout)
        leaders = [(s["term"], i) for i, s in statuses.items() if s.get("role") == "leader"]
        if not leaders:
            return None
        term, leader = max(leaders)
        self._last_leader = leader
        return leader, term

    def _restart(self, i: int) -> None:
        if self.down.get(i) == "killed":
            self.cluster.start(i)
            del self.down[i]
            self._event("restart", node=i)

    def _continue(self, i: int) -> None:
        if self.down.get(i) == "paused":
            self.cluster.resume(i)
            del self.down[i]
            self._event("continue", node=i)

    def _set_links(self, faults: dict[tuple[int, int], Fault]) -> None:
        for (i, j), fault in faults.items():
            self.proxies.set(f"{i}->{j}", fault, FORWARD)

    def _heal_links(self, faults: dict[tuple[int, int], Fault]) -> None:
        for (i, j), fault in faults.items():
            if self.proxies.proxies[f"{i}->{j}"].faults[FORWARD] == fault:  # (not since set by another step)
                self.proxies.set(f"{i}->{j}", PASS, FORWARD)

    def _begin(self, index: int, step: Step) -> None:
        kind = step.kind
        if kind == "links":
            faults = {}
            for i, j, mode, amount in step.detail:
                faults[i, j] = (Fault(drop=amount) if mode == "drop" else
                                Fault(delay=amount, jitter=amount / 2) if mode == "delay" else Fault(cut=True))
            self._set_links(faults)
            self._applied[index] = faults
            self.counts.link_faults += len(faults)
            self._event("links", links=[f"{i}->{j} {f}" for (i, j), f in faults.items()])
        elif kind == "partition":
            order, minority, around_leader = step.detail
            order = list(order)
            if around_leader:
                found = self._leader()
                if found is not None:
                    order.remove(found[0])
                    order.insert(0, found[0])
            small, large = set(order[:minority]), set(order[minority:])
            faults = {(i, j): Fault(cut=True) for i in self.cluster.ids for j in self.cluster.ids
                      if (i in small and j in large) or (i in large and j in small)}
            self._set_links(faults)
            self._applied[index] = faults
            self.counts.partitions += 1
            self._event("partition", minority=sorted(small), majority=sorted(large))
        elif kind in ("kill_follower", "pause"):
            if self.down:  # a majority stays up: one node down at a time besides the leader kill
                self.counts.skipped += 1
                self._event("skipped", kind=kind, why=f"nodes down: {sorted(self.down)}")
                return
            found = self._leader()
            target_leader = kind == "pause" and step.detail[0] == "leader"
            if found is None:
                candidates = []
            elif target_leader:
                candidates = [found[0]]
            else:
                candidates = [i for i in self._up() if i != found[0]]
            if not candidates:
                self.counts.skipped += 1
                self._event("skipped", kind=kind, why="no leader known")
                return
            pick = step.detail[-1]
            target = sorted(candidates)[int(pick * len(candidates))]
            if kind == "pause":
                self.cluster.pause(target)
                self.down[target] = "paused"
                self.counts.pauses += 1
                self._event("pause", node=target, leader=target_leader)
            else:
                self.cluster.kill9(target)
                self.down[target] = "killed"
                self.counts.follower_kills += 1
                self._event("kill -9", node=target, leader=False)
            self._applied[index] = target
        elif kind == "kill_leader":
            self._resolve_failover()
            if len(self.down) > 1:
                self.counts.skipped += 1
                self._event("skipped", kind=kind, why=f"nodes down: {sorted(self.down)}")
                return
            found = None
            deadline = time.monotonic() + 3.0
            while found is None and time.monotonic() < deadline:
                found = self._leader()
                if found is None:
                    time.sleep(0.1)
            if found is None:
                self.counts.skipped += 1
                self._event("skipped", kind=kind, why="no leader within 3 s")
                return
            leader, term = found
            self.cluster.kill9(leader)
            self.down[leader] = "killed"
            self.counts.leader_kills += 1
            self._pending = (leader, term, time.monotonic())
            self._applied[index] = leader
            self._event("kill -9", node=leader, leader=True, term=term)

    def _end(self, index: int, step: Step) -> None:
        applied = self._applied.pop(index, None)
        if applied is None:
            return
        if step.kind in ("links", "partition"):
            self._heal_links(applied)
            self._event("heal", links=len(applied))
        elif step.kind == "pause":
            self._continue(applied)
        else:
            self._restart(applied)

    def _resolve_failover(self) -> None:
        """If a leader kill awaits its failover: counted once a leader of a higher term is up, else dropped
        (at the next leader kill, or the end)."""
        if self._pending is None:
            return
        killed, term, when = self._pending
        found = self._leader()
        if found is not None and found[1] > term:
            self.counts.failovers += 1
            self.counts.election_times.append(round(time.monotonic() - when, 3))
            self._event("failover", leader=found[0], term=found[1], after=killed)
        else:
            self._event("no failover", killed=killed)
        self._pending = None

    def _poll_failover(self) -> None:
        if self._pending is None:
            return
        found = self._leader()
        if found is not None and found[1] > self._pending[1]:
            self._resolve_failover()

    def _progress(self, horizon: float) -> None:
        c = self.counts
        outcomes: collections.Counter[tuple[bool, str]] = collections.Counter()
        for t in self.threads:
            outcomes.update(t.outcomes)
        acked, reads = outcomes[True, "ok"], outcomes[False, "ok"]
        unknown = outcomes[True, "unknown"] + outcomes[False, "unknown"]
        faults = self.proxies.faults()
        self.say(f"soak [{self.now():5.0f}/{horizon:.0f} s] leader {self._last_leader} · failovers "
                 f"{c.failovers}/{c.leader_kills} · follower kills {c.follower_kills} · pauses {c.pauses} · "
                 f"partitions {c.partitions} · link faults {c.link_faults} · acknowledged {acked} · reads {reads} · "
                 f"unknown {unknown} · down {dict(sorted(self.down.items())) or '-'} · faulted links {len(faults)}")

    def _nemesis(self, horizon: float) -> None:
        actions = sorted([(s.at, 1, k, s) for k, s in enumerate(self.steps)]
                         + [(s.at + s.duration, 0, k, s) for k, s in enumerate(self.steps)],
                         key=lambda a: (a[0], a[1]))
        next_progress = PROGRESS_EVERY
        for at, begin, index, step in actions:
            while self.now() < at:
                if self.now() >= next_progress:
                    self._progress(horizon)
                    next_progress += PROGRESS_EVERY
                self._poll_failover()
                time.sleep(min(0.2, max(at - self.now(), 0.0)))
            if at > horizon:
                break
            (self._begin if begin else self._end)(index, step)
        while self.now() < horizon:
            self._poll_failover()
            time.sleep(0.2)

    # ----- the end ------------------------------------------------------------------------------------
    def _heal_all(self) -> None:
        self.proxies.heal()
        for i in sorted(self.down):
            if self.down[i] == "paused":
                self._continue(i)
            else:
                self._restart(i)
        self._applied.clear()
        self._event("healed all")

    def _wait_leader(self, timeout: float) -> tuple[int, int] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self._leader()
            if found is not None:
                return found
            time.sleep(0.2)
        return None

    def _caught_up(self) -> tuple[bool, dict]:
        """Whether, within CATCH_UP_WAIT, one round of status found every node applied up to the commit
        index of that round's leader; with the last round's figures."""
        deadline = time.monotonic() + CATCH_UP_WAIT
        seen: dict = {}
        while time.monotonic() < deadline:
            statuses = self.cluster.statuses(self.cluster.ids, timeout=1.0)
            leaders = [(s["term"], i) for i, s in statuses.items() if s.get("role") == "leader"]
            seen = {"answered": sorted(statuses), "applied": {i: s["last_applied"] for i, s in statuses.items()}}
            if leaders and len(statuses) == len(self.cluster.ids):
                leader = max(leaders)[1]
                target = statuses[leader]["commit_index"]
                seen.update(leader=leader, commit_index=target)
                if all(s["last_applied"] >= target for s in statuses.values()):
                    return True, seen
            time.sleep(0.2)
        return False, seen

    def _final_reads(self, keys: Sequence[str]) -> tuple[list[Operation], int]:
        """A ReadIndex read of every key (recorded as operations of FINAL_CLIENT), and how many failed."""
        reads, failed = [], 0
        deadline = time.monotonic() + FINAL_READS_WAIT
        addresses = [self.cluster.client_address(i) for i in self.cluster.ids]
        with KVClient(addresses, client_id=FINAL_CLIENT, timeout=10.0, **self.cluster.credentials()) as kv:
            for key in keys:
                if time.monotonic() > deadline:
                    failed += 1
                    continue
                call = self.now()
                try:
                    value = kv.read(key)
                except (KVError, OSError, ValueError):
                    failed += 1
                    continue
                reads.append(Operation(FINAL_CLIENT, "read", key, call=call, ret=self.now(), output=value))
        return reads, failed

    def _diverged(self, keys: Sequence[str]) -> int:
        """Keys whose applied value differs between nodes."""
        count = 0
        with KVClient([self.cluster.client_address(self.cluster.ids[0])], client_id=FINAL_CLIENT,
                      **self.cluster.credentials()) as probe:
            for key in keys:
                values = set()
                for i in self.cluster.ids:
                    try:
                        values.add(json.dumps(probe.local_get(self.cluster.client_address(i), key)))
                    except (OSError, ValueError, KeyError):
                        values.add("(no answer)")
                count += len(values) > 1
        return count

    def run(self) -> dict:
        horizon = self.minutes * 60.0
        started = time.monotonic()
        try:
            for (i, j), port in self.link_ports.items():
                if i != j:
                    self.proxies.add(f"{i}->{j}", ("127.0.0.1", port), ("127.0.0.1", self.link_ports[j, j]))
            for i in self.cluster.ids:
                self.cluster.start(i)
            self._start = time.monotonic()
            if self._wait_leader(LEADER_WAIT) is None:
                raise RuntimeError(f"no leader within {LEADER_WAIT} s\n{self.cluster.diagnose()}")
            self._start = time.monotonic()  # (the schedule's times count from the first leader)
            self.say(f"soak: {self.nodes} nodes, {self.clients} clients, seed {self.seed}, {self.minutes:g} min, "
                     f"schedule {schedule_hash(self.steps)} ({len(self.steps)} steps); folder {self.folder}")
            self.threads = [_Client(self, c) for c in range(1, self.clients + 1)]
            for t in self.threads:
                t.start()
            self._nemesis(horizon)
            self._heal_all()
            self.say("soak: healed every link, every node up; stopping the clients")
            leader = self._wait_leader(LEADER_WAIT)
            self._resolve_failover()
            self.stop_clients.set()
            for t in self.threads:
                t.join(OP_TIMEOUT + 10)
            caught_up, catch_up = self._caught_up() if leader is not None else (False, {})
            records = [r for t in self.threads for r in t.records]
            keys = sorted({r["key"] for r in records})
            self.say(f"soak: caught up: {caught_up}; final reads of {len(keys)} keys")
            finals, final_failed = self._final_reads(keys)
            diverged = self._diverged(keys) if caught_up else len(keys)
            records += [_record(op, "ok") for op in finals]
            operations = [_operation(r) for r in records if r["outcome"] != "failed"]
            self.say(f"soak: checking {len(operations)} operations")
            checked = time.monotonic()
            verdict = judge(operations)
            check_seconds = time.monotonic() - checked
        finally:
            self.stop_clients.set()
            self.cluster.stop_all()
            self.proxies.close()
        c = self.counts
        outcomes = collections.Counter((r["op"] == "append", r["outcome"]) for r in records)
        errors: collections.Counter[str] = collections.Counter()
        for t in self.threads:
            errors.update(t.errors)
        summary = {
            "seed": self.seed, "minutes": self.minutes, "nodes": self.nodes, "clients": self.clients,
            "schedule": schedule_hash(self.steps),
            "failovers": c.failovers, "leader_kills": c.leader_kills, "kills": c.leader_kills + c.follower_kills,
            "follower_kills": c.follower_kills, "pauses": c.pauses, "partitions": c.partitions,
            "link_faults": c.link_faults, "skipped": c.skipped,
            "election_p50": _median(c.election_times), "election_max": max(c.election_times, default=None),
            "acknowledged": verdict.acknowledged, "write_unknown": outcomes[True, "unknown"],
            "write_failed": outcomes[True, "failed"], "reads": outcomes[False, "ok"] - len(finals),
            "read_unknown": outcomes[False, "unknown"],
            "unknown": outcomes[True, "unknown"] + outcomes[False, "unknown"],
            "client_errors": dict(errors),
            "lost": verdict.lost, "unverified": verdict.unverified, "duplicated": verdict.duplicated,
            "phantom": verdict.phantom, "nonlinearizable": verdict.nonlinearizable,
            "check_unknown": verdict.check_unknown, "keys": verdict.keys, "final_reads_failed": final_failed,
            "caught_up": caught_up, "catch_up": catch_up, "diverged": diverged,
            "check_seconds": round(check_seconds, 1), "elapsed": round(time.monotonic() - started, 1),
        }
        summary["ok"] = verdict.ok and caught_up and not diverged and not final_failed
        summary["lost_tokens"] = verdict.lost_tokens[:20]
        summary["explanations"] = [e[:4000] for e in verdict.explanations[:5]]
        write_history(self.folder / "history.jsonl.gz", records)
        with open(self.folder / "events.jsonl", "w") as f:
            for event in self.events:
                f.write(json.dumps(event) + "\n")
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# ----- the command ---------------------------------------------------------------------------------------
def add_parser(commands: Any) -> None:
    """Add `raftlab soak` to the `raftlab` parser's subparsers."""
    soak = commands.add_parser("soak", help="a Jepsen-style soak of a real cluster on loopback: a fault proxy on "
                                            "every link, kill -9 of the leader and of followers, pauses, "
                                            "concurrent clients, the history checked for linearizability")
    soak.add_argument("--minutes", type=float, default=3.0, help="minutes of faults (default 3); the end (heal, "
                                                                   "catch-up, final reads, check) comes after")
    soak.add_argument("--seed", type=int, default=1, help="the schedule's seed (default 1)")
    soak.add_argument("--nodes", type=int, default=5, help="cluster size (3-9, default 5)")
    soak.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    soak.add_argument("--dir", help="folder for the nodes' data and logs and the soak's history, events and "
                                    "summary (default: a temporary folder, removed unless the verdict fails)")
    soak.add_argument("--tls", action="store_true", help="TLS between nodes and for clients (default plain TCP "
                                                         "with the cluster key: loopback only)")
    soak.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    soak.add_argument("--schedule", action="store_true",
                      help="print the schedule (and its hash) of --seed and --minutes, without running it")


SUMMARY = """\
soak: seed {seed}, {minutes:g} min, {nodes} nodes, {clients} clients (schedule {schedule}); {elapsed:.0f} s in all
  faults: {leader_kills} leader kill -9s, {failovers} followed by a new leader (election p50 {election_p50} s, \
max {election_max} s); {follower_kills} follower kill -9s; {pauses} pauses; {partitions} partitions; \
{link_faults} link faults; {skipped} skipped
  clients: {acknowledged} acknowledged appends ({write_unknown} unknown, {write_failed} failed), {reads} reads \
({read_unknown} unknown)
  verdict: lost {lost}, unverified {unverified}, duplicated {duplicated}, phantom {phantom}; \
non-linearizable keys {nonlinearizable} of {keys} ({check_unknown} undecided, check {check_seconds} s); \
caught up {caught_up}; diverged keys {diverged}
  {result}"""


def run_soak(parser: argparse.ArgumentParser, args: Any) -> int:
    """`raftlab soak`: run (or with --schedule, print) a soak; exit 1 if the verdict is not ok."""
    if not 3 <= args.nodes <= 9:
        parser.error("soak: --nodes must be between 3 and 9")
    if not 0 < args.minutes <= 24 * 60:
        parser.error("soak: --minutes must be > 0 (and at most a day)")
    if args.clients < 1:
        parser.error("soak: --clients must be >= 1")
    steps = schedule(args.seed, args.minutes, args.nodes)
    if args.schedule:
        kinds = collections.Counter(s.kind for s in steps)
        if not args.json:
            for s in steps:
                print(json.dumps(s.as_json()))
        print(json.dumps({"seed": args.seed, "minutes": args.minutes, "nodes": args.nodes,
                          "schedule": schedule_hash(steps), "steps": len(steps), "kinds": dict(sorted(kinds.items()))}))
        return 0
    temporary = args.dir is None
    folder = Path(tempfile.mkdtemp(prefix="raftlab-soak-")) if temporary else Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if any((folder / f"node{i}").exists() for i in range(1, args.nodes + 1)):
        parser.error(f"soak: {folder} holds node data already; give a new --dir")
    try:
        summary = Soak(folder, args.seed, args.minutes, nodes=args.nodes, clients=args.clients, tls=args.tls).run()
    except RuntimeError as error:  # no free ports, no first leader
        print(f"soak: {error} (folder {folder})", file=sys.stderr)
        return 1
    ok = summary["ok"]
    if not ok:
        for text in summary["explanations"]:
            print(text, file=sys.stderr)
    if temporary and ok:
        shutil.rmtree(folder, ignore_errors=True)
    result = ("OK: no acknowledged write lost, every key linearizable, every node caught up" if ok else
              f"FAILED: see {folder} (summary.json, history.jsonl.gz, events.jsonl, node*.log)")
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "explanations"}))
    else:
        print(SUMMARY.format(result=result, **summary))
    return 0 if ok else 1


__all__ = ["Soak", "Step", "Verdict", "add_parser", "judge", "read_history", "run_soak", "schedule", "schedule_hash",
           "tokens", "write_history"]
