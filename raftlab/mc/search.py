"""Searching a `Model`: breadth-first (shortest counterexample first) and bounded random walks.

`bfs` explores the bounded space level by level, remembering each distinct state once (with the
state and action it was first reached by, so that a counterexample is rebuilt by walking back), and
stops at the first violation: breadth-first, it is a shortest one. `random_walks` takes seeded walks
of at most `depth` actions (DSLabs' "random DFS"): it reaches deep states quickly and proves nothing.
Both report coverage: the depth at which each "sometimes" predicate (a leader elected, a client entry
committed, ...) was first reached, or that it never was, so that a clean search that never reached a
commit says so. `bfs(executor=...)` splits the frontier over any `concurrent.futures.Executor` (a
process pool, a Dask cluster's executor): see `bfs`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields
from typing import Any

from .model import Action, Bounds, Model, State, Violation

__all__ = ["Result", "bfs", "random_walks"]


@dataclass(slots=True)
class Result:
    """What a search found.

    Attributes:
        model: the model searched.
        method: ``"bfs"`` or ``"random"``.
        states: states generated (successors computed, repeats and those past the bounds included).
        distinct_states: distinct states reached (the initial one included).
        depth: the deepest level reached (bfs: every level up to it was explored whole, unless stopped).
        seconds: wall time of the search.
        complete: the whole bounded space was explored (no violation stopped it, no budget ran out).
        violations: counterexamples (`raftlab.mc.Counterexample`), the first one shortest for bfs.
        coverage: each "sometimes" goal of the model -> the depth it was first reached at (None: never).
        goal_run: with `bfs(goal=...)`, the run (concrete actions) to the first state found that
            satisfies the goal (None: none was reached).
    """

    model: Model
    method: str
    states: int = 0
    distinct_states: int = 0
    depth: int = 0
    seconds: float = 0.0
    complete: bool = False
    violations: list[Any] = field(default_factory=list)
    coverage: dict[str, int | None] = field(default_factory=dict)
    goal_run: list[Action] | None = None

    @property
    def states_per_s(self) -> float:
        """Distinct states per second of wall time."""
        return self.distinct_states / self.seconds if self.seconds > 0 else 0.0

    @property
    def uncovered(self) -> list[str]:
        """The coverage goals never reached."""
        return [goal for goal, depth in self.coverage.items() if depth is None]

    def summary(self) -> dict[str, Any]:
        """The figures as plain JSON values (`raftlab mc --json`)."""
        return {"method": self.method, "bounds": _bounds(self.model.bounds),
                "replica": self.model.replica_class.__name__,
                "distinct_states": self.distinct_states, "states": self.states, "depth": self.depth,
                "seconds": round(self.seconds, 3), "states_per_s": round(self.states_per_s, 1),
                "complete": self.complete, "violations": len(self.violations),
                "violation": (self.violations[0].summary() if self.violations else None),
                "coverage": self.coverage}

    def report(self) -> str:
        """A few lines for a person: what was explored, what was found, what was never reached."""
        b = self.model.bounds
        network = "" if b.max_messages is None else f", <= {b.max_messages} messages in flight"
        network += f", {b.transfers} transfer(s)" if b.transfers else ""
        network += f", {b.changes} configuration change(s)" if b.changes else ""
        lines = [f"{self.method}: {self.distinct_states:,} distinct states ({self.states:,} generated), depth "
                 f"{self.depth}, {self.seconds:.1f} s, {self.states_per_s:,.0f} distinct states/s; "
                 f"{self.model.replica_class.__name__}, {b.nodes} nodes, term <= {b.max_term}, log <= {b.max_log}, "
                 f"{b.crashes} crash(es), {b.drops} drop(s), {b.duplicates} duplicate(s), {b.submits} submit(s)"
                 f"{network}"]
        if self.complete:
            lines.append("the whole bounded space was explored" if self.method == "bfs" else "all walks taken")
        if self.violations:
            cx = self.violations[0]
            lines.append(f"VIOLATION of {cx.violation.property} after {len(cx.actions)} steps: {cx.violation.detail}")
        else:
            lines.append("no violation")
        for goal, depth in self.coverage.items():
            reached = f"first at depth {depth}" if depth is not None else "NEVER REACHED"
            lines.append(f"  coverage: {goal}: {reached}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Result({self.method}, distinct_states={self.distinct_states}, depth={self.depth}, "
                f"violations={len(self.violations)}, complete={self.complete})")


def _bounds(b: Bounds) -> dict[str, int]:
    return {f.name: getattr(b, f.name) for f in fields(b)}


class _Bar:
    """A live progress bar (tqdm: a widget in a notebook, a line on a terminal), or nothing."""

    def __init__(self, show: bool, desc: str) -> None:
        self.bar = None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(desc=desc, unit=" states", unit_scale=True, mininterval=0.5)
        self.shown = 0

    def update(self, distinct: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(distinct - self.shown)
            self.shown = distinct
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def bfs(model: Model, *, time_budget: float | None = None, progress: bool = False, stop_at_first: bool = True,
        executor: Executor | None = None, split_depth: int = 4, variants: int | None = None,
        start: Sequence[Action] = (), goal: Callable[[State], bool] | None = None) -> Result:
    """Breadth-first search of `model` up to its bounds' depth.

    Args:
        time_budget: stop after about this many seconds (the result is then not `complete`).
        progress: show a live progress bar (states, distinct states, depth, states/s).
        stop_at_first: stop at the first violation (a shortest one); else collect one per property.
        executor: explore the frontier at depth `split_depth` in parallel: each of its states is sent
            (as the actions that reach it) to a task of `executor`, which searches below it with its own
            memory of states; the parts' figures are added up (a state reached by two parts counts in
            both), their violations and coverage merged, and the shortest violation reported.
        variants: explore at most this many states with the same nodes' states (the states that differ
            only by their messages in flight, what is left of the faults, and the history): a heuristic
            that goes deep fast, for bugs the whole space is too large to reach. It is not exhaustive
            (the result is never `complete`), and a counterexample it finds is real but may not be a
            shortest one. None: every state (the default).
        start: begin at the state these actions reach from the initial one (concrete actions, as a
            counterexample's or `Result.goal_run`), not at the initial state: DSLabs' search from a
            goal, for a bug that lies deeper than one search reaches. Counterexamples begin with them.
        goal: stop at the first state that satisfies this predicate, and give the run to it as
            `Result.goal_run` (the first phase of a search in two: `bfs(model, start=found.goal_run)`).
    """
    if variants is not None and variants < 1:
        raise ValueError(f"variants must be an int >= 1 or None, not {variants!r}")
    if executor is not None:
        if variants is not None or start or goal is not None:
            raise ValueError("variants, start, goal: the split search explores every state from the initial one")
        return _bfs_split(model, executor, split_depth, time_budget)
    root = model.initial
    if start:
        from .counterexample import replay
        reached = replay(model, start)
        if not isinstance(reached, tuple):
            raise ValueError(f"start: the run does not reach a state within the bounds ({reached!r})")
        root = model.canonical(reached) if model.symmetry else reached
    return _bfs(model, [(root, tuple(start))], len(start), time_budget, progress, stop_at_first, variants=variants,
                goal=goal)


def _bfs(model: Model, roots: list[tuple[State, tuple[Action, ...]]], start_depth: int, time_budget: float | None,
         progress: bool, stop_at_first: bool, max_depth: int | None = None, variants: int | None = None,
         goal: Callable[[State], bool] | None = None) -> Result:
    started = time.perf_counter()
    result = Result(model, "bfs", coverage=dict.fromkeys(model.coverage_goals))
    parents: dict[State, tuple[State | None, Action | None]] = {}
    prefix: dict[State, tuple[Action, ...]] = {}
    frontier = []
    for state, path in roots:
        if state not in parents:
            parents[state] = (None, None)
            prefix[state] = path
            frontier.append(state)
            _cover(model, result, state, start_depth)
    seen_properties: set[str] = set()
    bar = _Bar(progress, f"mc {model.replica_class.__name__}")
    depth = start_depth
    horizon = model.bounds.depth if max_depth is None else max_depth
    stopped = False
    step, successors = model.step, model.actions
    n = len(model.ids)
    tried: dict[tuple, int] = {}  # (with `variants`) the nodes' states -> the states explored with them
    skipped = False
    while frontier and depth < horizon and not stopped:
        next_frontier: list[State] = []
        for state in frontier:
            for action in successors(state):
                result.states += 1
                nxt = step(state, action)
                if nxt is None:
                    continue
                if isinstance(nxt, Violation):
                    if nxt.property in seen_properties:
                        continue
                    seen_properties.add(nxt.property)
                    result.violations.append(_counterexample(model, parents, prefix, state, action, nxt))
                    if stop_at_first:
                        stopped = True
                        break
                    continue
                if nxt in parents:
                    continue
                if variants is not None:
                    key = nxt[:n]
                    seen = tried.get(key, 0)
                    if seen >= variants:
                        skipped = True
                        continue
                    tried[key] = seen + 1
                parents[nxt] = (state, action)
                next_frontier.append(nxt)
                _cover(model, result, nxt, depth + 1)
                if goal is not None and goal(nxt):
                    result.goal_run = _run(model, parents, prefix, state, action)
                    stopped = True
                    break
            if stopped:
                break
            if time_budget is not None and len(parents) % 256 == 0 and time.perf_counter() - started > time_budget:
                stopped = True
                break
            if progress and len(parents) - bar.shown >= 2000:
                elapsed = time.perf_counter() - started
                bar.update(len(parents), depth=depth + 1, generated=result.states,
                           per_s=f"{len(parents) / elapsed:,.0f}" if elapsed else "-")
        depth += 1
        frontier = next_frontier
        if not stopped:
            result.depth = depth
    result.complete = not stopped and not frontier and not skipped
    if not stopped and frontier and max_depth is None:
        result.complete = False  # the depth bound cut the search short: say so
    result.distinct_states = len(parents)
    result.seconds = time.perf_counter() - started
    bar.update(len(parents), depth=result.depth)
    bar.close()
    result.violations.sort(key=lambda cx: len(cx.actions))
    return result


def _cover(model: Model, result: Result, state: State, depth: int) -> None:
    coverage = result.coverage
    for goal in model.reached(state):
        if goal in coverage and coverage[goal] is None:
            coverage[goal] = depth


def _counterexample(model: Model, parents: dict, prefix: dict, state: State, action: Action,
                    violation: Violation) -> Any:
    from .counterexample import Counterexample
    return Counterexample(model, _run(model, parents, prefix, state, action), violation)


def _run(model: Model, parents: dict, prefix: dict, state: State, action: Action) -> list[Action]:
    """The concrete actions from the initial state through `state`, then `action`."""
    from .counterexample import replay
    path = [action]
    while True:
        parent, how = parents[state]
        if parent is None:
            break
        path.append(how)
        state = parent
    start = replay(model, prefix[state])  # (the root's concrete state: the run below it is renamed)
    assert isinstance(start, tuple)
    return [*prefix[state], *model.concrete_run(reversed(path), start)]


# ----- the frontier split over an executor ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Spec:
    """What a task needs to rebuild the model in another process (a class is pickled by name)."""

    bounds: Bounds
    replica_class: type
    options: tuple[tuple[str, Any], ...]  # `Model.options`

    def model(self) -> Model:
        return Model(self.bounds, self.replica_class, **dict(self.options))


def _spec(model: Model) -> _Spec:
    return _Spec(model.bounds, model.replica_class, tuple(model.options.items()))


def _part(spec: _Spec, paths: list[list[tuple]], depth: int, time_budget: float | None) -> dict[str, Any]:
    """One task: the search below the states `paths` reach (replayed from the start), as plain data."""
    from .counterexample import replay
    model = spec.model()
    roots = []
    for portable in paths:
        path = tuple(model.from_portable(portable))
        state = replay(model, path)
        assert isinstance(state, tuple)
        roots.append((model.canonical(state) if model.symmetry else state, path))
    result = _bfs(model, roots, depth, time_budget, False, True)
    return {"states": result.states, "distinct": result.distinct_states, "depth": result.depth,
            "complete": result.complete, "coverage": result.coverage,
            "violations": [(model.portable(cx.actions), cx.violation.property) for cx in result.violations]}


def _bfs_split(model: Model, executor: Executor, split_depth: int, time_budget: float | None) -> Result:
    from .counterexample import Counterexample, replay
    started = time.perf_counter()
    top = _bfs(model, [(model.initial, ())], 0, time_budget, False, True,
               max_depth=min(split_depth, model.bounds.depth))
    if top.violations or top.depth < split_depth:
        top.seconds = time.perf_counter() - started
        return top
    frontier = _frontier(model, split_depth)
    chunks = max(1, min(len(frontier), 4 * _parallelism(executor)))
    spec = _spec(model)
    paths = [model.portable(path) for path in frontier]
    futures = [executor.submit(_part, spec, paths[k::chunks], split_depth, time_budget) for k in range(chunks)]
    result = Result(model, "bfs", states=top.states, distinct_states=top.distinct_states, coverage=dict(top.coverage))
    result.complete, result.depth = True, split_depth
    for future in futures:
        part = future.result()
        result.states += part["states"]
        result.distinct_states += part["distinct"]
        result.depth = max(result.depth, part["depth"])
        result.complete = result.complete and part["complete"]
        for goal, depth in part["coverage"].items():
            known = result.coverage.get(goal)
            if depth is not None and (known is None or depth < known):
                result.coverage[goal] = depth
        for portable, _ in part["violations"]:
            actions = model.from_portable(portable)
            found = replay(model, actions)
            if isinstance(found, Violation):
                result.violations.append(Counterexample(model, list(actions), found))
    result.violations.sort(key=lambda cx: len(cx.actions))
    if result.violations:
        result.complete = False
    result.seconds = time.perf_counter() - started
    return result


def _parallelism(executor: Executor) -> int:
    """How many tasks `executor` runs at once: a process or thread pool's workers, the worker threads of a
    Dask cluster (`distributed.Client.get_executor()`, whose client is `_client`), else 4. The figures of a
    split search depend on the number of parts (four per worker), not on where they run."""
    workers = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if workers is None and client is not None and hasattr(client, "nthreads"):
        workers = sum(client.nthreads().values())
    return workers if isinstance(workers, int) and workers > 0 else 4


def _frontier(model: Model, depth: int) -> list[tuple[Action, ...]]:
    """The concrete paths to the distinct states first reached at `depth` (in breadth-first order)."""
    seen = {model.initial}
    level: list[tuple[State, State, tuple[Action, ...]]] = [(model.initial, model.initial, ())]
    for _ in range(depth):
        nxt = []
        for state, concrete, path in level:
            for action in model.actions(state):
                s = model.step(state, action)
                if isinstance(s, tuple) and s not in seen:
                    seen.add(s)
                    real = model.concrete_action(concrete, action)
                    with model.plain():
                        c = model.step(concrete, real)
                    assert isinstance(c, tuple)
                    nxt.append((s, c, (*path, real)))
        level = nxt
    return [path for _, _, path in level]


def random_walks(model: Model, walks: int = 1000, *, seed: int = 1, depth: int | None = None,
                 time_budget: float | None = None, progress: bool = False,
                 on_walk: Callable[[int], None] | None = None) -> Result:
    """`walks` seeded random walks of at most `depth` actions (the bounds' depth by default), each
    choosing uniformly among the enabled actions; stops at the first violation."""
    started = time.perf_counter()
    rng = random.Random(f"mc/{seed}")
    horizon = model.bounds.depth if depth is None else depth
    result = Result(model, "random", coverage=dict.fromkeys(model.coverage_goals))
    seen: set[State] = {model.initial}
    bar = _Bar(progress, f"mc walks {model.replica_class.__name__}")
    from .counterexample import Counterexample
    with model.plain():  # (concrete states: a walk is its own counterexample)
        for walk in range(walks):
            state, path = model.initial, []
            for d in range(horizon):
                actions = list(model.actions(state))
                if not actions:
                    break
                action = rng.choice(actions)
                result.states += 1
                nxt = model.step(state, action)
                if nxt is None:
                    continue
                path.append(action)
                if isinstance(nxt, Violation):
                    result.violations.append(Counterexample(model, path, nxt))
                    break
                state = nxt
                seen.add(state)
                _cover(model, result, state, d + 1)
                result.depth = max(result.depth, len(path))
            if on_walk is not None:
                on_walk(walk)
            if progress:
                bar.update(len(seen), walk=walk + 1)
            if result.violations or (time_budget is not None and time.perf_counter() - started > time_budget):
                break
        else:
            result.complete = True
        result.distinct_states = len(seen)
    result.seconds = time.perf_counter() - started
    bar.close()
    return result
