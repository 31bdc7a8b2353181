"""Benchmark the linearizability checker: seconds to a verdict on histories shaped like Porcupine's.

Usage: python benchmarks/bench_check.py [--json] [--seeds N] [--timeout S]

The histories come from `raftlab.check.histories` (seeded: the same on every run), a linearizable
("good") and a non-linearizable ("bad": one planted stale read) history of each shape:

- ``kv-c1``, ``kv-c10``, ``kv-c50``: put, get and append on 10 keys by 1, 10 and 50 concurrent
  clients (about 60, 400 and 2,000 operations, as Porcupine's c01, c10 and c50 histories);
- ``kv-c50-timeouts``: the 50-client shape with 5% of the operations timed out (outcome unknown);
- ``etcd-100``, ``etcd-1000``: one register, read, write and cas on five values by 5 clients (a new
  one after each timeout, as in Jepsen's etcd test) with a fifth of the operations timed out, as in
  Porcupine's etcd_007 (81 operations, 17 timed out): 100 and 1,000 operations.

Each history is checked once per seed (seeds 1 to N; the worst time is reported) with a timeout;
a verdict of None (undecided) counts against the run. Targets (issue 19): kv-c50 bad <= 1 s and good
<= 2 s, etcd-1000 <= 3 s, nothing undecided.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable

from raftlab.check import Operation, check
from raftlab.check.histories import kv_history, register_history

SHAPES: dict[str, Callable[[int, bool], list[Operation]]] = {
    "kv-c1": lambda seed, bad: kv_history(seed, clients=1, operations=60, stale_read=bad),
    "kv-c10": lambda seed, bad: kv_history(seed, clients=10, operations=400, stale_read=bad),
    "kv-c50": lambda seed, bad: kv_history(seed, clients=50, operations=2000, stale_read=bad),
    "kv-c50-timeouts": lambda seed, bad: kv_history(seed, clients=50, operations=2000, timeouts=0.05,
                                                    stale_read=bad),
    "etcd-100": lambda seed, bad: register_history(seed, clients=5, operations=100, timeouts=0.2, stale_read=bad),
    "etcd-1000": lambda seed, bad: register_history(seed, clients=5, operations=1000, timeouts=0.2, stale_read=bad),
}
"""Each shape: (seed, bad) -> a history."""


def measure(history: list[Operation], timeout: float) -> tuple[float, bool | None]:
    """(seconds, verdict) of one check."""
    gc.collect()
    start = time.perf_counter()
    ok = check(history, timeout=timeout).ok
    return time.perf_counter() - start, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--seeds", type=int, default=1, help="histories of each shape and kind (seeds 1..N)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per check before it is undecided")
    args = parser.parse_args()

    figures: dict[str, object] = {"bench": "check"}
    undecided = wrong = 0
    for name, make in SHAPES.items():
        for kind, bad in (("good", False), ("bad", True)):
            worst, verdicts = 0.0, set()
            for seed in range(1, args.seeds + 1):
                history = make(seed, bad)
                seconds, ok = measure(history, args.timeout)
                worst = max(worst, seconds)
                verdicts.add(ok)
                undecided += ok is None
                wrong += ok is not None and ok is bad
                if seed == 1:  # the shape, as the first history has it
                    shape = (f"{len(history):5} ops  {len({op.client for op in history}):3} clients  "
                             f"{sum(op.ret is None for op in history):3} unknown")
            verdict = "/".join(str(v) for v in sorted(verdicts, key=str))
            print(f"{name:16} {kind:4}  {shape}  {worst:7.3f} s  verdict {verdict}")
            figures[f"{name}_{kind}_s"] = round(worst, 3)
            figures[f"{name}_{kind}_ok"] = verdicts.pop() if len(verdicts) == 1 else None
    figures["undecided"], figures["wrong"] = undecided, wrong
    print(f"undecided: {undecided}, wrong verdicts: {wrong}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
