"""Figure 16 of the Raft paper, reproduced: how long a 5-server cluster is without a leader after
the leader crashes, for several ranges of election timeouts.

The paper's set-up (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm",
§9.3), and how each part is made here:

- **5 servers, "a broadcast time of roughly 15ms".** The paper defines the broadcast time (§5.6) as
  "the average time it takes a server to send RPCs in parallel to every server in the cluster and
  receive their responses": the mean, over broadcasts, of the *slowest* of the four round trips, not
  the mean of one round trip. Here every message takes a one-way delay drawn independently and
  uniformly from ``LATENCY`` = (0, D), and D is chosen (`latency_for`) so that the expected slowest of
  four round trips, `broadcast_time` (LATENCY), is ``BROADCAST_TIME`` = 15 ms: D = 10.5 ms, a mean
  round trip of 10.5 ms. The paper gives one number, so the model has one parameter: no minimum
  delay is assumed, as the paper gives none (a minimum matters: notebooks/06_election_timing.ipynb
  measures how much). The delay stands for all that made up the paper's 15 ms, most of it the write
  to stable storage a server makes before it sends what depends on it (a candidate its term and vote,
  a voter its vote; §5.6: "the broadcast time may range from 0.5ms to 20ms, depending on storage
  technology"), not the wire (a LAN answers in well under a millisecond).
  `measured_broadcast_time` measures it in the simulator.
- **Logs of different lengths, so some servers cannot win.** Before the trial the old leader (node 0)
  and node 1 hold 5 entries of term 1, nodes 2, 3 and 4 hold 4, 3 and 2 (``LOG_LENGTHS``): only nodes
  1 and 2 can gather the 3 votes of a majority; 3 and 4 can only start elections that others refuse.
- **A synchronised heartbeat just before the crash.** The old leader's last heartbeat (an
  AppendEntries of term 1, committing index 3) reaches every follower after the same delay, so all
  four election timers start at the same moment: the worst case for split votes. That delay is the
  wire's alone, ``LATENCY[0]``: no write to stable storage comes before a heartbeat is sent (the
  paper's own remark, that "the smallest possible downtime was about half of the minimum election
  timeout", holds only if the heartbeat arrives at once). It is still delivered when the leader
  crashes before it arrives: a message sent is not unsent by its sender's crash.
- **The leader crashes at a uniformly random moment within its heartbeat interval**, which is half
  the minimum election timeout (``heartbeat_timeout = low / 2``), counted from its last heartbeat.
  The shortest possible downtime is thus about half the minimum election timeout.
- **Measured, as the paper measured it: "how long it took to detect the crash and elect a new
  leader"**: the time from the crash until a candidate wins its election (its replica reports
  ``EventKind.BECAME_LEADER``), `Trial.elected_ms`, `LineResult.elected_ms`. The figures compared
  with the paper's are of this time. Kept beside it, `Trial.established_ms`: the time until a leader
  has committed the no-op of its term (§8), so that a majority follows it and it knows so, about one
  broadcast time later; a leader deposed before it commits (which happens when the timeouts approach
  the broadcast time) does not count for it. Each trial also counts, from the crash until a leader is
  established, the terms in which a candidate stood, the split votes among them and the deposed
  leaders (`Trial`).

The trial writes the state a real run would have reached (terms, votes, logs) into the servers'
storage, sends the old leader's last heartbeat on its behalf, and from then on everything is the
real `Replica` code on the simulated network (a subclass that only reports what the replica tells
its observer, through the public `Replica.emit`: the simulation's trace is off, for speed, and so
are the invariant checks). Every trial is deterministic given (line, trial index, seed, latency).

With 150-150 ms there is no randomness at all: the four timers fire at the same instant, every
election splits, and in this exactly deterministic simulation they keep splitting for ever. Each
trial stops after ``limit`` virtual seconds (default 12 s) and is counted as *censored* (its time is
reported as the limit, a lower bound). The paper saw "consistently longer than 10 seconds".
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from ..core import AppendEntryRequest, AppendEntryResponse, EventKind, LogEntry, Replica, Role
from ..machines import Counter
from ..machines.counter import Add
from .network import NetworkModel
from .node import SimCluster
from .simulation import Simulation
from .trace import SimKind

Line = tuple[int, int]  # (low, high) election timeout, milliseconds

TOP_LINES: tuple[Line, ...] = ((150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300))
BOTTOM_LINES: tuple[Line, ...] = ((12, 24), (25, 50), (50, 100), (100, 200), (150, 300))
LINES: tuple[Line, ...] = TOP_LINES + tuple(line for line in BOTTOM_LINES if line not in TOP_LINES)
SERVERS = 5  # the paper's cluster
BROADCAST_TIME = 0.015  # seconds: the paper's "broadcast time of roughly 15ms" (Figure 16)
LOG_LENGTHS = (5, 5, 4, 3, 2)  # entries held by nodes 0 (the old leader) .. 4
LEADER_COMMIT = 3  # the commit index the last heartbeat carries (held by nodes 0-3, a majority)
LIMIT = 12.0  # virtual seconds after which a trial is stopped (censored)
CHUNK = 50  # trials per task given to the executor

# What the paper reports (§9.3), in milliseconds.
PAPER = {
    "median_150_155_ms": 287.0,  # "adding just 5ms of randomness ... a median downtime of 287ms"
    "worst_150_200_ms": 513.0,  # "with 50ms of randomness the worst-case completion time (over 1000 trials) was 513ms"
    "mean_12_24_ms": 35.0,  # "with an election timeout of 12-24ms, it takes only 35ms on average"
    "max_12_24_ms": 152.0,  # "(the longest trial took 152ms)"
    "max_150_150_ms": 10_000.0,  # "in the absence of randomness, ... consistently took longer than 10 seconds"
}
FIGURE_NAMES = {
    "median_150_155_ms": "150-155 ms: median",
    "worst_150_200_ms": "150-200 ms: worst",
    "mean_12_24_ms": "12-24 ms: mean",
    "max_12_24_ms": "12-24 ms: max",
    "max_150_150_ms": "150-150 ms: max",
}


# ----- the broadcast time ------------------------------------------------------------------------
def _slowest_of(peers: int) -> float:
    """E[max of `peers` round trips] / width, for one-way delays uniform on [0, width]: a round trip is
    the sum of two such delays (a triangular distribution on [0, 2 width]), integrated exactly."""
    k = peers
    below = 1 - 1 / (2 ** k * (2 * k + 1))  # the integral of 1 - F^k over [0, width], F = (x/width)^2 / 2
    above = 1 - sum(math.comb(k, j) * (-0.5) ** j / (2 * j + 1) for j in range(k + 1))  # over [width, 2 width]
    return below + above


def broadcast_time(latency: tuple[float, float], peers: int = SERVERS - 1) -> float:
    """The broadcast time (seconds) of a network whose one-way delays are drawn independently and
    uniformly from `latency` = (low, high) seconds: the expected time for a server to send a request to
    each of `peers` servers at once and receive all their replies, i.e. the expected slowest of
    `peers` round trips (the paper's definition, §5.6; a reply is sent as soon as its request arrives)."""
    low, high = latency
    return 2 * low + (high - low) * _slowest_of(peers)


def latency_for(broadcast: float, peers: int = SERVERS - 1, *, minimum: float = 0.0) -> tuple[float, float]:
    """The one-way delay range ``(minimum, D)`` (seconds) whose `broadcast_time` is `broadcast` seconds."""
    if not 0 <= 2 * minimum < broadcast:
        raise ValueError(f"need 0 <= 2 * minimum < broadcast, not minimum={minimum!r}, broadcast={broadcast!r}")
    return (float(minimum), minimum + (broadcast - 2 * minimum) / _slowest_of(peers))


LATENCY = latency_for(BROADCAST_TIME)  # one-way delay, seconds, uniform: (0, 10.5 ms), a 15 ms broadcast time


def measured_broadcast_time(latency: tuple[float, float] = LATENCY, rounds: int = 1000, seed: int = 1) -> float:
    """The broadcast time (seconds) measured in the simulator: a leader of `SERVERS` servers on
    ``NetworkModel(latency=latency)`` sends `rounds` heartbeats; each round is timed from its
    AppendEntries to the last of their replies' arrival, and the mean over the rounds is returned.
    (The heartbeat interval, 0.1 s, exceeds the longest round trip, so rounds do not overlap.)"""
    if type(rounds) is not int or rounds < 1:
        raise ValueError(f"rounds must be a positive int, not {rounds!r}")
    if 2 * latency[1] >= 0.1:
        raise ValueError(f"latency {latency!r}: round trips must stay under the 0.1 s heartbeat interval")
    sim = Simulation(SERVERS, seed, heartbeat_timeout=0.1, election_timeout=(0.3, 0.6),
                     network=NetworkModel(latency=latency), state_machine=Counter, check_invariants=False)
    sim.run_until(lambda s: s.leader() is not None, 60.0)
    leader = sim.leader()
    if leader is None:
        raise RuntimeError("no leader was elected to measure the broadcast time with")
    sim.run_until(lambda s: s.replicas[leader].commit_index > 0, 10.0)  # the no-op's extra appends are over
    sim.run(0.1)
    start = len(sim.trace)
    sim.run(rounds * 0.1 + 0.05)
    sent: dict[int, int] = {}  # round start (microseconds) -> requests sent then
    last: dict[int, int] = {}  # round start -> the last reply's arrival
    answered: dict[int, int] = {}  # round start -> replies arrived
    current = None
    for event in sim.trace.events[start:]:
        message = event.data.get("message")
        if event.kind == SimKind.SEND and event.node == leader and type(message) is AppendEntryRequest:
            current = event.time
            sent[current] = sent.get(current, 0) + 1
        elif (event.kind == SimKind.DELIVER and event.data.get("to") == leader and current is not None
              and type(message) is AppendEntryResponse):
            last[current] = event.time
            answered[current] = answered.get(current, 0) + 1
    times = [last[t] - t for t in sent if sent[t] == answered.get(t) == SERVERS - 1]
    if len(times) < rounds * 0.99:
        raise RuntimeError(f"only {len(times)} of {rounds} rounds were complete")
    return statistics.fmean(times) / 1_000_000


def trials_for(line: Line, trials: int) -> int:
    """The paper ran 100 trials for 150-150 ms and 1,000 for the other lines: a tenth, at least 1."""
    return max(1, trials // 10) if line[0] == line[1] else trials


# ----- one trial ---------------------------------------------------------------------------------
class Trial(NamedTuple):
    """One trial's outcome. Times are from the leader's crash, in milliseconds; the counts are of what
    happened from the crash until a leader was established (or the limit)."""

    elected_ms: float  # until a candidate won its election: the paper's quantity (the limit if none did)
    established_ms: float  # until a leader had committed its term's no-op (the limit if none did)
    censored: bool  # no candidate won an election within the limit
    unestablished: bool  # no leader was established within the limit (the trial ran to it)
    elections: int  # terms in which a candidate stood
    split_votes: int  # of those terms, the ones with two or more candidates and no winner
    deposed: int  # leaders that lost their leadership before they committed their no-op


class _Watch:
    """What one trial learns from its replicas' events, from the moment it is started."""

    __slots__ = ("deposed", "elected_us", "established_us", "first_candidate_us", "started", "stood", "won")

    def __init__(self) -> None:
        self.started = False
        self.elected_us: int | None = None  # when the first candidate won
        self.established_us: int | None = None  # when a leader first committed an entry of its term
        self.first_candidate_us: int | None = None  # when the first follower's timer ran out
        self.stood: dict[int, set[int]] = {}  # term -> its candidates
        self.won: set[int] = set()  # terms with a leader
        self.deposed = 0

    def saw(self, replica: Replica, kind: str, details: dict[str, Any]) -> None:
        if not self.started:
            return
        if kind == EventKind.BECAME_CANDIDATE:
            self.stood.setdefault(replica.current_term, set()).add(replica.id)
            if self.first_candidate_us is None:
                self.first_candidate_us = cast(SimCluster, replica.cluster).sim.now_us
        elif kind == EventKind.BECAME_LEADER:
            self.won.add(replica.current_term)
            if self.elected_us is None:
                self.elected_us = cast(SimCluster, replica.cluster).sim.now_us
        elif kind == EventKind.BECAME_FOLLOWER and details.get("was") == Role.LEADER.value:
            self.deposed += 1  # (the trial ends when a leader is established: this one was not)
        elif (kind == EventKind.COMMITTED and self.established_us is None and replica.role is Role.LEADER
              and replica.log.term_at(replica.commit_index) == replica.current_term):
            self.established_us = cast(SimCluster, replica.cluster).sim.now_us


def _watched(watch: _Watch) -> type[Replica]:
    """A `Replica` class that behaves exactly as `Replica` and also tells `watch` what it emits."""

    class Watched(Replica):
        def emit(self, kind: str, rule: str, **details: Any) -> None:
            super().emit(kind, rule, **details)
            watch.saw(self, kind, details)

    return Watched


def run_trial(line: Line, index: int, seed: int = 1, *, latency: tuple[float, float] = LATENCY,
              limit: float = LIMIT) -> Trial:
    """One trial of `line` (a `Trial`), deterministic given its arguments. A time that did not come
    within `limit` seconds is reported as the limit."""
    return _trial(line, index, seed, latency, limit)[0]


def _trial(line: Line, index: int, seed: int, latency: tuple[float, float], limit: float) -> tuple[Trial, _Watch]:
    """`run_trial`, and what its replicas told (the tests look at when the first timer ran out)."""
    low, high = line[0] / 1000, line[1] / 1000
    rng = random.Random(f"figure16/{seed}/{line[0]}-{line[1]}/{index}")
    watch = _Watch()
    sim = Simulation(SERVERS, rng.getrandbits(48), heartbeat_timeout=low / 2, election_timeout=(low, high),
                     network=NetworkModel(latency=latency), state_machine=Counter, check_invariants=False,
                     record_trace=False, replica_class=_watched(watch))
    entries = [LogEntry(Add(("figure16", i), 1), i, 1) for i in range(1, max(LOG_LENGTHS) + 1)]
    for node, length in enumerate(LOG_LENGTHS):  # the state that term 1 left: node 0 led it
        storage = sim._storages[node]
        storage.set_term_and_vote(1, 0)
        storage.append(entries[:length])
    heartbeat = latency[0]  # the wire alone: no write to stable storage comes before a heartbeat is sent
    for node in range(1, SERVERS):  # the synchronised heartbeat: it reaches every follower at once
        sim.network.set_link(0, node, latency=(heartbeat, heartbeat))
        sim._send(0, node, AppendEntryRequest(0, 1, LOG_LENGTHS[node], 1, (), LEADER_COMMIT))
    sim.run(rng.uniform(0, low / 2))  # the leader crashes within its heartbeat interval
    sim.crash(0)
    for node in range(1, SERVERS):  # what is sent to it is lost at once (saves the simulation a step per
        sim.cut(node, 0)  # message); what it sent before it crashed, its last heartbeat, still arrives
    crashed, watch.started = sim.now_us, True
    sim.run_until(lambda s: watch.established_us is not None, limit)

    def since(us: int | None) -> float:
        return limit * 1000 if us is None else (us - crashed) / 1000

    splits = sum(1 for term, candidates in watch.stood.items() if len(candidates) > 1 and term not in watch.won)
    return Trial(since(watch.elected_us), since(watch.established_us), watch.elected_us is None,
                 watch.established_us is None, len(watch.stood), splits, watch.deposed), watch


def _run_chunk(line: Line, start: int, stop: int, seed: int, latency: tuple[float, float],
               limit: float) -> list[Trial]:
    return [run_trial(line, i, seed, latency=latency, limit=limit) for i in range(start, stop)]


# ----- results -----------------------------------------------------------------------------------
class Times(tuple[float, ...]):
    """Times of trials (milliseconds), in trial order, with their statistics."""

    @property
    def median(self) -> float:
        return statistics.median(self)

    @property
    def mean(self) -> float:
        return statistics.fmean(self)

    @property
    def max(self) -> float:
        return max(self)

    def quantile(self, q: float) -> float:
        """The `q` quantile (0..1), nearest rank."""
        ordered = sorted(self)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class LineResult:
    """The trials of one line (one election timeout range), in trial order. The statistics (`median`,
    `mean`, `max`, `quantile`) and `times_ms` are of the paper's quantity, `elected_ms`."""

    low_ms: int
    high_ms: int
    elected_ms: Times  # crash -> a candidate won its election; censored trials hold the limit
    established_ms: Times  # crash -> a leader committed its no-op; unestablished trials hold the limit
    censored: int  # trials in which no candidate won within the limit
    unestablished: int  # trials in which no leader was established within the limit
    elections: tuple[int, ...]  # per trial: terms in which a candidate stood (`Trial.elections`)
    split_votes: tuple[int, ...]  # per trial: those with several candidates and no winner
    deposed: tuple[int, ...]  # per trial: leaders deposed before they committed their no-op

    @classmethod
    def of(cls, line: Line, trials: Iterable[Trial]) -> LineResult:
        rows = list(trials)
        return cls(line[0], line[1], Times(r.elected_ms for r in rows), Times(r.established_ms for r in rows),
                   sum(r.censored for r in rows), sum(r.unestablished for r in rows),
                   tuple(r.elections for r in rows), tuple(r.split_votes for r in rows),
                   tuple(r.deposed for r in rows))

    @property
    def label(self) -> str:
        return f"{self.low_ms}-{self.high_ms}ms"

    @property
    def times_ms(self) -> Times:
        """The paper's quantity: crash -> a new leader elected (`elected_ms`)."""
        return self.elected_ms

    @property
    def median(self) -> float:
        return self.elected_ms.median

    @property
    def mean(self) -> float:
        return self.elected_ms.mean

    @property
    def max(self) -> float:
        return self.elected_ms.max

    def quantile(self, q: float) -> float:
        """The `q` quantile (0..1) of the times, nearest rank."""
        return self.elected_ms.quantile(q)


def _figures(lines: dict[Line, LineResult], established: bool) -> dict[str, float]:
    def times(line: Line) -> Times:
        return lines[line].established_ms if established else lines[line].elected_ms

    out = {}
    if (150, 155) in lines:
        out["median_150_155_ms"] = round(times((150, 155)).median, 1)
    if (150, 200) in lines:
        out["worst_150_200_ms"] = round(times((150, 200)).max, 1)
    if (12, 24) in lines:
        out["mean_12_24_ms"] = round(times((12, 24)).mean, 1)
        out["max_12_24_ms"] = round(times((12, 24)).max, 1)
    if (150, 150) in lines:
        out["max_150_150_ms"] = round(times((150, 150)).max, 1)
    return out


@dataclass(frozen=True)
class Figure16Result:
    """All lines of a run, with the settings that made it."""

    lines: dict[Line, LineResult]
    trials: int
    seed: int
    latency: tuple[float, float]
    limit: float
    wall_s: float = field(compare=False)

    def __getitem__(self, line: Line) -> LineResult:
        low, high = line  # (a list of two will do)
        return self.lines[low, high]

    @property
    def broadcast_time(self) -> float:
        """The broadcast time of this run's network, seconds (`broadcast_time`)."""
        return broadcast_time(self.latency)

    def figures(self, *, established: bool = False) -> dict[str, float]:
        """Our values of the paper's figures (those whose lines were run), milliseconds: of the paper's
        quantity (a new leader elected), or with `established` of the time until it committed its no-op."""
        return _figures(self.lines, established)

    def json_line(self) -> str:
        """The one-line JSON summary: the five figures (the paper's quantity), the same of the time
        until a leader is established (``established_`` before each name), and the wall time."""
        later = {f"established_{key}": value for key, value in self.figures(established=True).items()}
        return json.dumps({**self.figures(), **later, "wall_s": round(self.wall_s, 2)})

    def table(self) -> list[dict[str, Any]]:
        """The paper's figures beside ours: rows of figure, paper, ours, ratio (ours / paper), ours of the
        time until established (not compared: the paper did not measure it), and a note."""
        rows = []
        established = self.figures(established=True)
        for key, ours in self.figures().items():
            paper = PAPER[key]
            row = {"figure": FIGURE_NAMES[key], "paper_ms": paper, "ours_ms": ours, "ratio": round(ours / paper, 2),
                   "established_ms": established[key]}
            if key == "max_150_150_ms":
                line = self.lines[150, 150]
                row["note"] = (f"paper: all > 10 s; ours: {line.censored}/{len(line.elected_ms)} still split at the "
                               f"{self.limit:g} s limit")
            else:
                row["note"] = "within 30%" if abs(ours / paper - 1) <= 0.30 else "outside 30%"
            rows.append(row)
        return rows

    def table_text(self) -> str:
        """`table` as aligned text."""
        lines = [f"{'figure':<22}{'paper':>9}{'ours':>9}{'ratio':>7}{'established':>13}  note"]
        for r in self.table():
            lines.append(f"{r['figure']:<22}{r['paper_ms']:>9g}{r['ours_ms']:>9g}{r['ratio']:>7.2f}"
                         f"{r['established_ms']:>13g}  {r['note']}")
        return "\n".join(lines)

    def summary_text(self) -> str:
        """One row per line: trials; median, mean, 99th percentile and max of the time until elected (the
        paper's quantity) and of the time until established, each with the trials that did not get
        there by the limit; and per trial, the mean number of split votes and of deposed leaders."""
        out = [f"{'':<19}{'elected (the paper):':<35}{'established (no-op committed):':<35}per trial:",
               f"{'line':<12}{'trials':>7}" + f"{'median':>8}{'mean':>7}{'p99':>7}{'max':>7}{'none':>6}" * 2
               + f"{'splits':>8}{'deposed':>8}"]
        for line in self.lines.values():
            row = f"{line.label:<12}{len(line.elected_ms):>7}"
            for times, missing in ((line.elected_ms, line.censored), (line.established_ms, line.unestablished)):
                row += (f"{times.median:>8.0f}{times.mean:>7.0f}{times.quantile(0.99):>7.0f}{times.max:>7.0f}"
                        f"{missing:>6}")
            row += f"{statistics.fmean(line.split_votes):>8.2f}{statistics.fmean(line.deposed):>8.2f}"
            out.append(row)
        return "\n".join(out)


# ----- the run -----------------------------------------------------------------------------------
def run_figure16(trials: int = 1000, *, lines: Sequence[Line] | None = None, executor: Executor | None = None,
                 progress: Callable[[int, int], None] | None = None, seed: int = 1,
                 latency: tuple[float, float] = LATENCY, limit: float = LIMIT,
                 chunk: int = CHUNK) -> Figure16Result:
    """Run Figure 16's trials: `trials` per line (a tenth of that for 150-150 ms, as in the paper).

    Args:
        trials: trials per line.
        lines: ``(low, high)`` millisecond ranges (default `LINES`, both graphs).
        executor: any `concurrent.futures.Executor`; by default a `ProcessPoolExecutor` with
            ``os.cpu_count()`` workers, made and shut down here.
        progress: called as ``progress(done, total)`` (trials) after each chunk of trials.
        seed: the run's seed; each trial is deterministic given (line, trial index, seed).
        latency: one-way network delay range, seconds, drawn uniformly (default `LATENCY`: the
            paper's broadcast time, `BROADCAST_TIME`).
        limit: virtual seconds after which a trial is stopped and counted as censored.
        chunk: trials per task handed to the executor.
    """
    if type(trials) is not int or trials < 1:
        raise ValueError(f"trials must be a positive int, not {trials!r}")
    lines = LINES if lines is None else tuple(_as_line(line) for line in lines)
    low_s, high_s = latency
    if not (0 <= low_s <= high_s < math.inf and high_s > 0):
        raise ValueError(f"latency must be (low, high) seconds with 0 <= low <= high, high > 0 and finite, "
                         f"not {latency!r}")
    latency = (low_s, high_s)  # a tuple, even if given a list
    start = time.perf_counter()
    tasks = [(line, a, min(a + chunk, trials_for(line, trials)))
             for line in lines for a in range(0, trials_for(line, trials), chunk)]
    total, done = sum(b - a for _, a, b in tasks), 0
    pool = executor if executor is not None else ProcessPoolExecutor(min(os.cpu_count() or 1, len(tasks)))
    try:
        futures: dict[Future, tuple] = {pool.submit(_run_chunk, line, a, b, seed, latency, limit):
                                        (line, a, b) for line, a, b in tasks}
        results: dict[tuple, list[Trial]] = {}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done += len(results[futures[future]])
            if progress is not None:
                progress(done, total)
    finally:
        if executor is None:  # made here
            pool.shutdown(cancel_futures=True)
    out = {line: LineResult.of(line, (row for task in tasks if task[0] == line for row in results[task]))
           for line in lines}
    return Figure16Result(out, trials, seed, latency, limit, time.perf_counter() - start)


def _as_line(line: Sequence[int]) -> Line:
    """`line` as a `Line`, checked: (low, high) milliseconds with 0 < low <= high."""
    if not (len(line) == 2 and 0 < line[0] <= line[1]):
        raise ValueError(f"a line is (low, high) milliseconds with 0 < low <= high, not {tuple(line)!r}")
    return line[0], line[1]
