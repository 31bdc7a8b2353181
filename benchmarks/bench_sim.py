"""Benchmark the simulator: events per second against a bare heapq event loop, in one run.

Usage: python benchmarks/bench_sim.py [--json] [--seconds S]

Measured in the same process, one after the other, so that the ratios are fair on a shared, noisy
machine: the bare loop (push and pop of trivial events through heapq, each dispatched to a trivial
function) is the floor; the simulator runs a 5-node KVStore cluster idle and under a client load,
with the invariant checks on and off. `idle_speedup` is virtual seconds per wall second for the
idle cluster with the default settings (invariant checks on, trace recorded); `idle_speedup_untraced`
is the same without the trace and the checkpoints (``record_trace=False``, as chaos campaigns run),
and `idle_speedup_bare` without the invariant checks too: what the replicas and the event loop alone
cost, the most any cheaper trace or checker could give.

Under load an event is heavier than it was when the ratios were first taken (26ef435): with
pipelined replication the leader sends the commands that arrived since its last AppendEntries
together, so one delivery carries several entries (about 0.9 commands per event here, against 0.08
then). `commands_per_s`, the client commands applied per wall second, measures the same work
across such changes.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import time

from raftlab.machines import KVStore
from raftlab.sim import Simulation


def bare_loop(n: int, pending: int = 64) -> float:
    """Events per second of a minimal heapq event loop that dispatches `n` trivial events, with
    `pending` events waiting in the queue (as in a simulated cluster: timers and messages in flight);
    each event schedules one more at a later time."""
    queue = [(k, k, k % 2) for k in range(pending)]
    handlers = (lambda x: x, lambda x: x + 1)
    seq = pending
    start = time.perf_counter()
    for _ in range(n):
        when, _, kind = heapq.heappop(queue)
        handlers[kind](when)
        seq += 1
        heapq.heappush(queue, (when + 1 + seq % 7, seq, seq % 2))
    return n / (time.perf_counter() - start)


def idle(seconds: float, check: bool, trace: bool = True) -> tuple[float, float, int]:
    """(events per second, virtual seconds per wall second, events) for an idle 5-node cluster."""
    sim = Simulation(5, seed=1, check_invariants=check, record_trace=trace)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    start = time.perf_counter()
    steps = sim.run(seconds)
    wall = time.perf_counter() - start
    return steps / wall, seconds / wall, steps


def loaded(seconds: float, check: bool) -> tuple[float, int, float, float]:
    """(events per second, events, client commands applied per second, commands per event) for a
    5-node cluster with a client writing every 2 ms."""
    sim = Simulation(5, seed=1, check_invariants=check)
    sim.run_until(lambda s: s.leader() is not None, 5.0)
    start, steps, seq, end = time.perf_counter(), 0, 0, sim.now + seconds
    while sim.now < end:
        seq += 1
        sim.submit(KVStore.put(1, seq, f"k{seq % 10}", str(seq)))
        steps += sim.run(0.002)
    wall = time.perf_counter() - start
    applied = sum(1 for h in sim.submissions.values() if h.applied_on)
    return steps / wall, steps, applied / wall, applied / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--seconds", type=float, default=20.0, help="virtual seconds per measurement")
    args = parser.parse_args()

    gc.collect()  # each measurement starts without the previous one's garbage
    a, a_steps, a_commands, per_event = loaded(args.seconds, check=False)
    gc.collect()
    b, b_steps, b_commands, _ = loaded(args.seconds, check=True)
    gc.collect()
    idle_rate, v_unchecked, idle_steps = idle(args.seconds * 10, check=False)
    gc.collect()
    idle_checked, v, _ = idle(args.seconds * 10, check=True)
    gc.collect()
    _, v_untraced, _ = idle(args.seconds * 10, check=True, trace=False)
    gc.collect()
    _, v_bare, _ = idle(args.seconds * 10, check=False, trace=False)
    gc.collect()
    floor = bare_loop(max(a_steps, b_steps, idle_steps))
    print(f"bare heapq loop:          {floor:12,.0f} events/s")
    print(f"under load, unchecked:    {a:12,.0f} events/s  ({a / floor:.3f} of the floor)")
    print(f"under load, checked:      {b:12,.0f} events/s  ({b / floor:.3f} of the floor)")
    print(f"under load, commands:     {a_commands:12,.0f} applied/s unchecked, {b_commands:,.0f} checked "
          f"({per_event:.2f} per event: the leader batches them)")
    print(f"idle, unchecked:          {idle_rate:12,.0f} events/s  ({v_unchecked:,.0f} virtual s per wall s)")
    print(f"idle, checked (default):  {idle_checked:12,.0f} events/s  ({v:,.0f} virtual s per wall s)")
    print(f"idle, checked, no trace:  {v_untraced:12,.0f} virtual s per wall s")
    print(f"idle, neither:            {v_bare:12,.0f} virtual s per wall s (the replicas and the loop alone)")
    if args.json:
        print(json.dumps({"bench": "sim", "events_per_s": round(a), "events_per_s_checked": round(b),
                          "floor_events_per_s": round(floor), "ratio": round(a / floor, 4),
                          "ratio_checked": round(b / floor, 4), "idle_speedup": round(v),
                          "idle_speedup_untraced": round(v_untraced), "idle_speedup_bare": round(v_bare),
                          "commands_per_s": round(a_commands), "commands_per_s_checked": round(b_commands),
                          "commands_per_event": round(per_event, 3)}))


if __name__ == "__main__":
    main()
