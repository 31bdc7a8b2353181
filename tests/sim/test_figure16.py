"""Figure 16 of the Raft paper, reproduced (`raftlab.sim.figure16`, `raftlab figure16`)."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from raftlab.sim import Simulation
from raftlab.sim.figure16 import (
    BOTTOM_LINES, BROADCAST_TIME, LATENCY, LINES, PAPER, TOP_LINES, Figure16Result, broadcast_time, latency_for,
    measured_broadcast_time, run_figure16, run_trial, trials_for,
)

FAST = (0.001, 0.004)  # a faster network than the paper's: a 6 ms broadcast time


@pytest.fixture(scope="module")
def small() -> Figure16Result:
    """All lines, 40 trials each (4 for 150-150), on the default network (the paper's broadcast time)."""
    with ThreadPoolExecutor(2) as pool:
        return run_figure16(40, executor=pool)


def test_lines_are_the_papers() -> None:
    assert TOP_LINES == ((150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300))
    assert BOTTOM_LINES == ((12, 24), (25, 50), (50, 100), (100, 200), (150, 300))
    assert len(LINES) == 10 and set(LINES) == set(TOP_LINES) | set(BOTTOM_LINES)
    assert trials_for((150, 150), 1000) == 100 and trials_for((150, 151), 1000) == 1000
    assert trials_for((150, 150), 5) == 1


def test_a_trial_is_deterministic_and_depends_on_its_index_and_seed() -> None:
    first = run_trial((150, 200), 7, seed=3)
    assert run_trial((150, 200), 7, seed=3) == first
    others = {run_trial((150, 200), 7, seed=4), run_trial((150, 200), 8, seed=3)}
    assert first not in others
    assert not first.censored and not first.unestablished and 0 < first.elected_ms <= first.established_ms < 1000
    # the leader crashes within its heartbeat interval (75 ms) after the heartbeat that started the
    # followers' timers, none of which is shorter than 150 ms: no election can end sooner than 75 ms
    assert first.elected_ms > 75
    assert first.elections >= 1 and 0 <= first.split_votes < first.elections and first.deposed >= 0


def test_elected_no_later_than_established_in_every_trial(small: Figure16Result) -> None:
    for line, result in small.lines.items():
        trials = zip(result.elected_ms, result.established_ms, result.deposed, strict=True)
        for elected, established, deposed in trials:
            assert elected <= established, line
            # a leader deposed before it committed its no-op leaves the cluster without one: another must
            # be elected, later; so a trial with a deposed leader is established after its first election
            if deposed and established < small.limit * 1000:
                assert established > elected, line
        assert result.censored <= result.unestablished, line
    assert small[150, 155].times_ms == small[150, 155].elected_ms  # the paper's quantity is the one summarised
    assert small[12, 24].mean == statistics.fmean(small[12, 24].elected_ms)


def test_the_counts_of_a_trial_are_what_happened() -> None:
    never = run_trial((150, 150), 0, limit=2.0)  # every election splits: all four stand at once, always
    assert never.censored and never.unestablished and never.elected_ms == never.established_ms == 2000
    assert never.elections == never.split_votes > 5 and never.deposed == 0
    # 12-24 ms on the paper's broadcast time: some trial's first leader is deposed before it commits its no-op
    short = [run_trial((12, 24), i) for i in range(40)]
    assert any(t.deposed for t in short)
    assert all(t.elections >= 1 + t.deposed for t in short)  # each deposed leader is followed by another election


def test_the_broadcast_model_is_the_papers_definition() -> None:
    # the paper's broadcast time: a server sends to the 4 others at once and waits for all their replies
    assert broadcast_time(LATENCY) == pytest.approx(BROADCAST_TIME)
    assert LATENCY[0] == 0 and broadcast_time(latency_for(0.002)) == pytest.approx(0.002)
    floor = latency_for(BROADCAST_TIME, minimum=0.001)
    assert floor[0] == 0.001 and broadcast_time(floor) == pytest.approx(BROADCAST_TIME) and floor[1] < LATENCY[1]
    with pytest.raises(ValueError, match="minimum"):
        latency_for(0.002, minimum=0.001)  # two one-way minimums already make the whole broadcast time
    assert broadcast_time((0.005, 0.005)) == pytest.approx(0.010)  # fixed delays: one round trip
    rng = random.Random(1)  # the closed form against sampling, for a range that does not start at 0
    sampled = statistics.fmean(max(rng.uniform(0.001, 0.014) + rng.uniform(0.001, 0.014) for _ in range(4))
                               for _ in range(40_000))
    assert sampled == pytest.approx(broadcast_time((0.001, 0.014)), rel=0.01)
    # measured in the simulator, heartbeat rounds of a real leader: the mean slowest reply is the paper's
    # 15 ms, not the mean round trip (10.5 ms), which a per-message reading of "15 ms" would have made 15
    measured = measured_broadcast_time(LATENCY, rounds=1000)
    assert measured == pytest.approx(BROADCAST_TIME, rel=0.03)
    assert measured > 1.3 * (LATENCY[0] + LATENCY[1])
    assert measured_broadcast_time((0.001, 0.014), rounds=300) == pytest.approx(0.0205, rel=0.05)


def test_same_seed_same_numbers_whatever_the_executor(small: Figure16Result) -> None:
    lines = [(150, 155), (12, 24)]
    here = run_figure16(40, lines=lines, executor=ThreadPoolExecutor(1), chunk=7)
    assert here.lines == {line: small.lines[line] for line in lines}
    processes = run_figure16(40, lines=lines)  # the default: a process pool
    assert processes.lines == here.lines
    assert processes.figures() == here.figures()
    assert {**json.loads(processes.json_line()), "wall_s": 0} == {**json.loads(here.json_line()), "wall_s": 0}
    other_seed = run_figure16(40, lines=lines, executor=ThreadPoolExecutor(1), seed=2)
    assert other_seed.lines[150, 155].times_ms != here.lines[150, 155].times_ms


def test_progress_counts_every_trial() -> None:
    seen: list[tuple[int, int]] = []
    run_figure16(12, lines=[(150, 150), (25, 50)], executor=ThreadPoolExecutor(1), chunk=5,
                 progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (13, 13)  # 1 trial of 150-150 (a tenth of 12, at least one) and 12 of 25-50
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_shape_150_150_has_the_longest_tail(small: Figure16Result) -> None:
    no_randomness = small[150, 150]
    assert no_randomness.censored == len(no_randomness.times_ms) == 4  # every election splits, for ever
    assert min(no_randomness.times_ms) == small.limit * 1000 > 10_000  # the paper: "longer than 10 seconds"
    for line, result in small.lines.items():
        if line != (150, 150):
            assert result.quantile(0.9) < min(no_randomness.times_ms), line
    # more randomness shortens elections: 5 ms of it leaves many split votes, 50 ms few
    assert small[150, 155].median > 1.5 * small[150, 200].median
    assert small[150, 151].median > small[150, 155].median


def test_shape_short_timeouts(small: Figure16Result) -> None:
    # the paper's bottom graph: shorter timeouts, a new leader sooner, down to 12-24 ms
    assert small[12, 24].mean < small[25, 50].mean < small[50, 100].mean < small[150, 300].mean
    # but 12-24 ms is close to the 15 ms broadcast time: new leaders are deposed before they commit
    # (which the paper's measure, until elected, does not see), far more often than at 25-50 ms
    short = small[12, 24]
    assert short.established_ms.mean > 1.5 * short.elected_ms.mean
    assert sum(short.deposed) > 2 * sum(small[25, 50].deposed)
    # a faster network shortens them further
    fast = run_figure16(40, lines=[(12, 24), (150, 300)], executor=ThreadPoolExecutor(1), latency=FAST)
    assert fast[12, 24].mean < fast[150, 300].mean / 3
    assert fast[12, 24].mean < short.mean


def test_figures_table_and_json_line(small: Figure16Result) -> None:
    figures = small.figures()
    assert list(figures) == ["median_150_155_ms", "worst_150_200_ms", "mean_12_24_ms", "max_12_24_ms",
                             "max_150_150_ms"]
    assert figures["worst_150_200_ms"] == round(small[150, 200].max, 1)
    assert figures["mean_12_24_ms"] == round(small[12, 24].mean, 1)
    rows = small.table()
    assert [r["paper_ms"] for r in rows] == [PAPER[k] for k in figures]
    assert all(math.isclose(r["ratio"], r["ours_ms"] / r["paper_ms"], abs_tol=0.006) for r in rows)
    assert [r["established_ms"] for r in rows] == list(small.figures(established=True).values())
    assert small.figures(established=True)["mean_12_24_ms"] == round(small[12, 24].established_ms.mean, 1)
    line = json.loads(small.json_line())
    assert list(line) == [*figures, *(f"established_{k}" for k in figures), "wall_s"]
    assert line["wall_s"] == round(small.wall_s, 2) and line["mean_12_24_ms"] == figures["mean_12_24_ms"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="trials"):
        run_figure16(0)
    with pytest.raises(ValueError, match="low <= high"):
        run_figure16(1, lines=[(200, 150)])


def test_plot_has_the_papers_two_panels(small: Figure16Result) -> None:
    from raftlab.viz import plot_figure16  # the renderer lives in viz, beside the others

    figure = plot_figure16(small)
    top, bottom = figure.axes
    assert top.get_xscale() == bottom.get_xscale() == "log"
    assert len(top.get_lines()) == len(TOP_LINES) and len(bottom.get_lines()) == len(BOTTOM_LINES)
    assert top.get_legend().get_texts()[0].get_text().startswith("150-150ms (4 of 4 > 12 s")
    ys = top.get_lines()[2].get_ydata()
    assert ys[-1] == pytest.approx(100) and list(ys) == sorted(ys)


def test_a_simulation_without_its_history() -> None:
    sim = Simulation(3, seed=5, record_trace=False)
    sim.run_until(lambda s: s.leader() is not None)
    assert sim.leader() is not None and sim.steps > 0
    assert len(sim.trace) == 0
    with pytest.raises(RuntimeError, match="record_trace"):
        sim.rewind(0)
    same = Simulation(3, seed=5)
    same.run_until(lambda s: s.leader() is not None)
    assert (same.leader(), same.steps, same.now_us) == (sim.leader(), sim.steps, sim.now_us)


def test_cli_json_line() -> None:
    run = subprocess.run([sys.executable, "-m", "raftlab.cli", "figure16", "--trials", "20", "--workers", "2",
                          "--json"], capture_output=True, text=True, timeout=120, check=True)
    last = run.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    names = ["median_150_155_ms", "worst_150_200_ms", "mean_12_24_ms", "max_12_24_ms", "max_150_150_ms"]
    assert list(figures) == [*names, *(f"established_{name}" for name in names), "wall_s"]
    assert all(isinstance(v, (int, float)) and v > 0 for v in figures.values())
    assert figures["max_150_150_ms"] == 12000.0
    assert "150-155 ms: median" in run.stdout and "287" in run.stdout  # the paper's figure beside ours
    assert run.stderr.rstrip().splitlines()[-1].startswith("figure16: 182/182 trials in ")  # progress, at the end
    fast = subprocess.run([sys.executable, "-m", "raftlab.cli", "figure16", "--trials", "20", "--latency-ms", "1",
                           "4", "--json"], capture_output=True, text=True, timeout=120, check=True)
    default = f"one-way delay 0-{LATENCY[1] * 1000:.3g} ms: a broadcast time of {BROADCAST_TIME * 1000:.3g} ms"
    assert "one-way delay 1-4 ms" in fast.stdout and default in run.stdout
    assert json.loads(fast.stdout.strip().splitlines()[-1])["mean_12_24_ms"] < figures["mean_12_24_ms"]


def test_the_last_heartbeat_reaches_every_follower_even_if_the_leader_crashes_first() -> None:
    # The followers' timers start when the synchronised heartbeat arrives, crash or no crash: no timer can
    # run out before the heartbeat's arrival plus the minimum timeout. (Cutting the crashed leader's links
    # both ways once dropped the heartbeat still on its way, and the timers ran from the start instead.)
    from raftlab.sim.figure16 import _trial

    low = 0.012
    latency = (0.004, 0.010)  # the heartbeat takes the minimum, 4 ms; the crash comes within 6 ms
    firsts = [_trial((12, 24), i, 1, latency, 2.0)[1].first_candidate_us for i in range(30)]
    assert all(first is not None and first >= round((latency[0] + low) * 1e6) for first in firsts), firsts
    with pytest.raises(ValueError, match="latency"):
        run_figure16(1, lines=[(150, 155)], latency=(0.0, float("inf")))


def test_the_cli_takes_a_delay_range_from_zero_and_refuses_a_negative_or_infinite_one() -> None:
    from raftlab.cli import main

    for bad in (["-1", "10"], ["1", "inf"]):
        with pytest.raises(SystemExit):
            main(["figure16", "--trials", "1", "--latency-ms", *bad])
    assert main(["figure16", "--trials", "2", "--workers", "1", "--latency-ms", "0", "10.5"]) == 0
