"""Benchmark the model checker: distinct states per second on one core, and what each part costs.

Usage: python benchmarks/bench_mc.py [--json] [--depth D]

One breadth-first search of a fixed small configuration (3 nodes, term <= 2, log <= 2, one client
entry, no faults, symmetry reduction on, to depth D) gives the distinct states, their number per
second of wall time (`distinct_states_per_s`) and per second of this process's processor time
(`distinct_states_per_cpu_s`: the one-core figure on a machine that other work shares) and the
model's figures. Then, on a sample of the (state, action) pairs it met, the parts are
timed one at a time, in the same run: *copy* (loading a node's saved state into the live replica and
saving it again), *step* (the replica's own handler, the real `Replica` doing the work), *hash* (the
successor's representative under renaming and its hash, as the search's memory of states does it),
in microseconds per action. The search remembers each node transition it made (`Model.step`), so the
first two are paid once per distinct (node state, input): the benchmark reports that share too.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from raftlab.mc import Bounds, Model, bfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--depth", type=int, default=11, help="the search's depth (default 11)")
    args = parser.parse_args()
    bounds = Bounds(nodes=3, max_term=2, max_log=2, crashes=0, drops=0, duplicates=0, submits=1, depth=args.depth)
    model = Model(bounds, symmetry=True)
    cpu = time.process_time()
    result = bfs(model)
    cpu = time.process_time() - cpu
    figures: dict[str, float | int | bool] = {
        "distinct_states": result.distinct_states, "states": result.states, "depth": result.depth,
        "complete": result.complete, "seconds": round(result.seconds, 3), "cpu_seconds": round(cpu, 3),
        "distinct_states_per_s": round(result.states_per_s), "generated_per_s": round(result.states / result.seconds),
        "distinct_states_per_cpu_s": round(result.distinct_states / cpu) if cpu > 0 else 0,
        "replica_runs": len(model._transitions),
        "replica_runs_per_action": round(len(model._transitions) / max(result.states, 1), 4),
    }
    figures.update(_parts(Model(bounds, symmetry=True), result.distinct_states))
    for name, value in figures.items():
        print(f"{name:>26}: {value}")
    if args.json:
        print(json.dumps(figures))


def _parts(model: Model, limit: int) -> dict[str, float]:
    """Microseconds per action of each part, on a sample of pairs from a fresh model (no memory)."""
    rng = random.Random(1)
    pairs, frontier, seen = [], [model.initial], {model.initial}
    while frontier and len(pairs) < 20000:
        state = frontier.pop(0)
        for action in model.actions(state):
            nxt = model.step(state, action)
            if isinstance(nxt, tuple) and nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
            if action[0] not in ("drop", "duplicate", "crash"):
                pairs.append((state, action))
    sample = rng.sample(pairs, min(3000, len(pairs)))
    work = [(action[1], model.node_state(state, action[1]), action) for state, action in sample]

    start = time.perf_counter()
    for node, saved, _ in work:
        model._load(node, saved)
        model._save(node)
    copy = (time.perf_counter() - start) / len(work)

    start = time.perf_counter()
    for state, action in sample:
        model._transition(action[1], state[action[1]], action[0], _input(model, state, action))
    transition = (time.perf_counter() - start) / len(sample)

    successors = [s for s in (model.step(state, action) for state, action in sample) if isinstance(s, tuple)]
    with model.plain():
        concrete = [model.step(state, action) for state, action in sample]
    concrete = [s for s in concrete if isinstance(s, tuple)]
    start = time.perf_counter()
    for state in concrete:
        hash(model.canonical(state))
    hashing = (time.perf_counter() - start) / len(concrete)
    assert successors
    return {"copy_us": round(copy * 1e6, 1), "step_us": round((transition - copy) * 1e6, 1),
            "hash_us": round(hashing * 1e6, 1), "sampled_actions": len(sample)}


def _input(model: Model, state: tuple, action: tuple) -> int:
    kind, node, number = action
    if kind == "submit":
        return model.bounds.submits - state[len(model.ids) + 1][3] + 1
    return node if kind == "restart" else number


if __name__ == "__main__":
    main()
