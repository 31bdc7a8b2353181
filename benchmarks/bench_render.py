"""Benchmark the renderers: one interactive update, as the widget app does it, in one run.

Usage: python benchmarks/bench_render.py [--json] [--updates N]

One update is one `sim.step()`, then `sim.frame()`, then redrawing the graph, the logs and the
timeline to PNG bytes. Measured for 5 nodes with 200 log entries and 9 nodes with 1,000, three ways,
one after the other in the same process so that the ratios are fair on a shared machine:

- in place: `GraphView`/`LogView`/`TimelineView` made once, `update` + `png` per frame (what the app does);
- clear and redraw: the same three figures, cleared (`Figure.clear()`) and drawn anew each frame;
- naive: new figures from `draw_graph`/`draw_logs`/`draw_timeline` each frame, saved with `savefig`;
- app: the whole RaftLab app's Step (headless), with the narration one column per node and the branch
  picker, share and key help on: the three pictures, the inspector, the status and the narration.

The last line is JSON: p50 and p95 of the in-place update (ms) for 5 nodes, p95 for 9 nodes, the
naive p50 over the in-place p50 for 5 nodes, and the app's Step p95 for 5 and 9 nodes.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import time
from collections.abc import Callable

from raftlab.machines import KVStore
from raftlab.sim import Simulation
from raftlab.viz import GraphView, LogView, TimelineView, draw_graph, draw_logs, draw_timeline
from raftlab.viz.graph import GraphPainter
from raftlab.viz.logs import LogsPainter
from raftlab.viz.timeline import TimelinePainter


def build(n: int, entries: int, seed: int = 1) -> Simulation:
    """A cluster of `n` whose logs hold at least `entries` entries (KVStore puts), all replicated."""
    sim = Simulation(n, seed, state_machine=KVStore, check_invariants=False)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    seq = 0
    while min(r.last_index for r in sim.replicas) < entries:
        for _ in range(20):
            seq += 1
            sim.submit(KVStore.put(1, seq, f"k{seq % 7}", str(seq)))
        sim.run(0.02)
    sim.run(0.5)
    return sim


def in_place(sim: Simulation) -> Callable[[], int]:
    g, lg, t = GraphView(), LogView(), TimelineView()

    def update() -> int:
        sim.step()
        frame = sim.frame()
        g.update(frame)
        lg.update(frame)
        t.update(frame, sim.trace)
        return len(g.png()) + len(lg.png()) + len(t.png())

    return update


def clear_and_redraw(sim: Simulation) -> Callable[[], int]:
    g, lg, t = GraphView(), LogView(), TimelineView()

    def update() -> int:
        sim.step()
        frame = sim.frame()
        g.figure.clear()
        GraphPainter(g.figure).update(frame)
        lg.figure.clear()
        LogsPainter(lg.figure).update(frame)
        t.figure.clear()
        TimelinePainter(t.figure).update(frame, sim.trace)
        return len(g.png()) + len(lg.png()) + len(t.png())

    return update


def naive(sim: Simulation) -> Callable[[], int]:
    def update() -> int:
        sim.step()
        frame = sim.frame()
        size = 0
        for figure in (draw_graph(frame), draw_logs(frame), draw_timeline(frame, sim.trace)):
            out = io.BytesIO()
            figure.savefig(out, format="png")
            size += len(out.getvalue())
        return size

    return update


def app_step(sim: Simulation) -> Callable[[], int]:
    from raftlab.widgets import RaftLab

    app = RaftLab(sim)
    app.narration_mode.value = "per node"

    def update() -> int:
        app.step_button.click()
        if app.last_error is not None:
            raise app.last_error
        return len(app.graph_image.value) + len(app.narration.value)

    return update


def measure(update: Callable[[], int], updates: int) -> tuple[float, float]:
    """(p50, p95) in ms of `updates` calls, after 3 warm-up calls."""
    for _ in range(3):
        update()
    gc.collect()
    times = []
    for _ in range(updates):
        start = time.perf_counter()
        update()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--updates", type=int, default=60, help="updates measured per case")
    args = parser.parse_args()
    results: dict[tuple[int, str], tuple[float, float]] = {}
    for n, entries in ((5, 200), (9, 1000)):
        sim = build(n, entries)
        print(f"{n} nodes, {min(r.last_index for r in sim.replicas)} log entries, {len(sim.trace)} trace events")
        for name, make in (("in place", in_place), ("clear+redraw", clear_and_redraw), ("naive", naive),
                           ("app", app_step)):
            updates = args.updates if name in ("in place", "app") else max(10, args.updates // 3)
            results[(n, name)] = p50, p95 = measure(make(sim), updates)
            print(f"  {name:13s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   ({updates} updates)")
        base = results[(n, "in place")][0]
        print(f"  clear+redraw / in place: {results[(n, 'clear+redraw')][0] / base:.1f}x   "
              f"naive / in place: {results[(n, 'naive')][0] / base:.1f}x (p50)")
    if args.json:
        print(json.dumps({"bench": "render", "p50_ms_5": round(results[(5, "in place")][0], 2),
                          "p95_ms_5": round(results[(5, "in place")][1], 2),
                          "p95_ms_9": round(results[(9, "in place")][1], 2),
                          "naive_over_inplace": round(results[(5, "naive")][0] / results[(5, "in place")][0], 2),
                          "app_p95_ms_5": round(results[(5, "app")][1], 2),
                          "app_p95_ms_9": round(results[(9, "app")][1], 2)}))


if __name__ == "__main__":
    main()
