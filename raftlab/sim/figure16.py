"""Figure 16 of the Raft paper, reproduced: how long a 5-server cluster is without a leader after
the leader crashes, for several ranges of election timeouts.

The paper's set-up (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm",
§9.3), and how each part is made here:

- **5 servers, broadcast time about 15 ms.** Every message takes a one-way delay drawn uniformly
  from ``LATENCY`` = 1-14 ms, so a request and its reply (a round trip) take 15 ms on average, 2-28 ms
  in all. The wide spread stands for what made up the paper's 15 ms: mostly the disk write a server
  makes before answering (a vote, a term), which varies a lot, not the wire (a LAN answers in well
  under a millisecond). (A narrow 6-9 ms makes split votes last even longer.) On this network the
  shape of the paper's graphs is reproduced but not its numbers: elections take longer, and 12-24 ms
  breaks Raft's timing requirement (the timeout is below the round trip). With a 5 ms round trip,
  ``latency=(0.001, 0.004)``, the paper's four figures are reproduced within 30%: the paper's cluster
  behaved as if its election messages took about that long. notebooks/06_election_timing.ipynb
  shows both and explains why.
- **Logs of different lengths, so some servers cannot win.** Before the trial the old leader (node 0)
  and node 1 hold 5 entries of term 1, nodes 2, 3 and 4 hold 4, 3 and 2 (``LOG_LENGTHS``): only nodes
  1 and 2 can gather the 3 votes of a majority; 3 and 4 can only start elections that others refuse.
- **A synchronised heartbeat just before the crash.** The old leader's last heartbeat (an
  AppendEntries of term 1, committing index 3) reaches every follower after the same 7.5 ms, so all
  four election timers start at the same moment: the worst case for split votes.
- **The leader crashes at a uniformly random moment within its heartbeat interval**, which is half
  the minimum election timeout (``heartbeat_timeout = low / 2``), counted from its last heartbeat.
  The shortest possible downtime is thus about half the minimum election timeout.
- **Measured: the time from the crash until a new leader is established**, meaning that a leader has
  committed the no-op of its term (§8): a majority has accepted it, and it knows it. This is about one
  broadcast time later than the moment it wins its election; a leader that is deposed before it
  commits (which happens when timeouts approach the broadcast time) does not count. The moment of the
  first election win is kept too (`LineResult.elected_ms`).

The trial writes the state a real run would have reached (terms, votes, logs) into the servers'
storage, sends the old leader's last heartbeat on its behalf, and from then on everything is the
real `Replica` code on the simulated network. Invariant checks and the trace are off (speed); every
trial is deterministic given (line, trial index, seed).

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
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from ..core import AppendEntryRequest, LogEntry, Role
from ..machines import Counter
from ..machines.counter import Add
from .network import NetworkModel
from .simulation import Simulation

Line = tuple[int, int]  # (low, high) election timeout, milliseconds

TOP_LINES: tuple[Line, ...] = ((150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300))
BOTTOM_LINES: tuple[Line, ...] = ((12, 24), (25, 50), (50, 100), (100, 200), (150, 300))
LINES: tuple[Line, ...] = TOP_LINES + tuple(line for line in BOTTOM_LINES if line not in TOP_LINES)
LATENCY = (0.001, 0.014)  # one-way delay, seconds, uniform: a 15 ms round trip on average
HEARTBEAT_DELAY = 0.0075  # the synchronised heartbeat's delay to every follower, seconds
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


def trials_for(line: Line, trials: int) -> int:
    """The paper ran 100 trials for 150-150 ms and 1,000 for the other lines: a tenth, at least 1."""
    return max(1, trials // 10) if line[0] == line[1] else trials


# ----- one trial ---------------------------------------------------------------------------------
def _established(sim: Simulation, seen: dict[str, int]) -> bool:
    """True once a live leader has committed an entry of its own term; notes the first win."""
    for replica in sim._replicas.values():
        if replica is not None and replica.role is Role.LEADER:
            if "elected" not in seen:
                seen["elected"] = sim.now_us
            commit = replica.commit_index
            if commit and replica.log.term_at(commit) == replica.current_term:
                return True
    return False


def run_trial(line: Line, index: int, seed: int = 1, *, latency: tuple[float, float] = LATENCY,
              limit: float = LIMIT) -> tuple[float, float, bool]:
    """One trial of `line`: ``(established_ms, elected_ms, censored)``, times from the crash.
    Deterministic given its arguments. A censored trial reports `limit` for what did not happen."""
    low, high = line[0] / 1000, line[1] / 1000
    rng = random.Random(f"figure16/{seed}/{line[0]}-{line[1]}/{index}")
    sim = Simulation(5, rng.getrandbits(48), heartbeat_timeout=low / 2, election_timeout=(low, high),
                     network=NetworkModel(latency=latency), state_machine=Counter, check_invariants=False,
                     record_trace=False)
    entries = [LogEntry(Add(("figure16", i), 1), i, 1) for i in range(1, max(LOG_LENGTHS) + 1)]
    for node, length in enumerate(LOG_LENGTHS):  # the state that term 1 left: node 0 led it
        storage = sim._storages[node]
        storage.set_term_and_vote(1, 0)
        storage.append(entries[:length])
    for node in range(1, 5):  # the synchronised heartbeat: it reaches every follower at once
        sim.network.set_link(0, node, latency=(HEARTBEAT_DELAY, HEARTBEAT_DELAY))
        sim._send(0, node, AppendEntryRequest(0, 1, LOG_LENGTHS[node], 1, (), LEADER_COMMIT))
    sim.run(rng.uniform(0, low / 2))  # the leader crashes within its heartbeat interval
    sim.crash(0)
    sim.disconnect(0)  # what is sent to it is lost at once (saves the simulation a step per message)
    crashed = sim.now_us
    seen: dict[str, int] = {}  # "elected": when the first leader won
    sim.run_until(lambda s: _established(s, seen), limit)
    done = _established(sim, seen)
    established = (sim.now_us - crashed) / 1000 if done else limit * 1000
    elected = (seen["elected"] - crashed) / 1000 if "elected" in seen else limit * 1000
    return established, elected, not done


def _run_chunk(line: Line, start: int, stop: int, seed: int, latency: tuple[float, float],
               limit: float) -> list[tuple[float, float, bool]]:
    return [run_trial(line, i, seed, latency=latency, limit=limit) for i in range(start, stop)]


# ----- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LineResult:
    """The trials of one line (one election timeout range), in trial order."""

    low_ms: int
    high_ms: int
    times_ms: tuple[float, ...]  # crash -> leader established; censored trials hold the limit
    elected_ms: tuple[float, ...]  # crash -> first election won (the leader may be deposed before it commits)
    censored: int  # trials stopped at the limit with no leader established

    @property
    def label(self) -> str:
        return f"{self.low_ms}-{self.high_ms}ms"

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times_ms)

    @property
    def max(self) -> float:
        return max(self.times_ms)

    def quantile(self, q: float) -> float:
        """The `q` quantile (0..1) of the times, nearest rank."""
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


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

    def figures(self) -> dict[str, float]:
        """Our values of the paper's figures (those whose lines were run), milliseconds."""
        out, lines = {}, self.lines
        if (150, 155) in lines:
            out["median_150_155_ms"] = round(lines[150, 155].median, 1)
        if (150, 200) in lines:
            out["worst_150_200_ms"] = round(lines[150, 200].max, 1)
        if (12, 24) in lines:
            out["mean_12_24_ms"] = round(lines[12, 24].mean, 1)
            out["max_12_24_ms"] = round(lines[12, 24].max, 1)
        if (150, 150) in lines:
            out["max_150_150_ms"] = round(lines[150, 150].max, 1)
        return out

    def json_line(self) -> str:
        """The one-line JSON summary: the five figures and the wall time."""
        return json.dumps({**self.figures(), "wall_s": round(self.wall_s, 2)})

    def table(self) -> list[dict[str, Any]]:
        """The paper's figures beside ours: rows of figure, paper, ours, ratio (ours / paper)."""
        rows = []
        for key, ours in self.figures().items():
            paper = PAPER[key]
            row = {"figure": FIGURE_NAMES[key], "paper_ms": paper, "ours_ms": ours, "ratio": round(ours / paper, 2)}
            if key == "max_150_150_ms":
                line = self.lines[150, 150]
                row["note"] = (f"paper: all > 10 s; ours: {line.censored}/{len(line.times_ms)} still split at the "
                               f"{self.limit:g} s limit")
            else:
                row["note"] = "within 30%" if abs(ours / paper - 1) <= 0.30 else "outside 30%"
            rows.append(row)
        return rows

    def table_text(self) -> str:
        """`table` as aligned text."""
        lines = [f"{'figure':<22}{'paper':>10}{'ours':>10}{'ratio':>7}  note"]
        for r in self.table():
            lines.append(f"{r['figure']:<22}{r['paper_ms']:>10g}{r['ours_ms']:>10g}{r['ratio']:>7.2f}  {r['note']}")
        return "\n".join(lines)

    def summary_text(self) -> str:
        """One row per line: trials, median, mean, 99th percentile, max, censored."""
        out = [f"{'line':<12}{'trials':>7}{'median':>9}{'mean':>9}{'p99':>9}{'max':>9}{'censored':>9}"]
        for line in self.lines.values():
            out.append(f"{line.label:<12}{len(line.times_ms):>7}{line.median:>9.0f}{line.mean:>9.0f}"
                       f"{line.quantile(0.99):>9.0f}{line.max:>9.0f}{line.censored:>9}")
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
        latency: one-way network delay range, seconds.
        limit: virtual seconds after which a trial is stopped and counted as censored.
        chunk: trials per task handed to the executor.
    """
    if type(trials) is not int or trials < 1:
        raise ValueError(f"trials must be a positive int, not {trials!r}")
    lines = LINES if lines is None else tuple(_as_line(line) for line in lines)
    low_s, high_s = latency
    latency = (low_s, high_s)  # a tuple, even if given a list
    start = time.perf_counter()
    tasks = [(line, a, min(a + chunk, trials_for(line, trials)))
             for line in lines for a in range(0, trials_for(line, trials), chunk)]
    total, done = sum(b - a for _, a, b in tasks), 0
    pool = executor if executor is not None else ProcessPoolExecutor(min(os.cpu_count() or 1, len(tasks)))
    try:
        futures: dict[Future, tuple] = {pool.submit(_run_chunk, line, a, b, seed, latency, limit):
                                        (line, a, b) for line, a, b in tasks}
        results: dict[tuple, list] = {}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done += len(results[futures[future]])
            if progress is not None:
                progress(done, total)
    finally:
        if executor is None:  # made here
            pool.shutdown(cancel_futures=True)
    out: dict[Line, LineResult] = {}
    for line in lines:
        rows = [row for task in tasks if task[0] == line for row in results[task]]
        out[line] = LineResult(line[0], line[1], tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                               sum(r[2] for r in rows))
    return Figure16Result(out, trials, seed, latency, limit, time.perf_counter() - start)


def _as_line(line: Sequence[int]) -> Line:
    """`line` as a `Line`, checked: (low, high) milliseconds with 0 < low <= high."""
    if not (len(line) == 2 and 0 < line[0] <= line[1]):
        raise ValueError(f"a line is (low, high) milliseconds with 0 < low <= high, not {tuple(line)!r}")
    return line[0], line[1]
