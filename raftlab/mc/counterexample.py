"""Counterexamples: the actions that lead from the start to a violation, minimised, explained, and
written as a scenario transcript that the simulator (and so the RaftLab app) replays.

A counterexample is replayed on the model (`replay`), shortened by dropping actions while the same
property is still violated (`Counterexample.minimised`), printed as explained lines
(`Counterexample.lines`), and turned into a transcript (`Counterexample.transcript`): a `Simulation`
whose timers and message delays are so long that nothing happens by itself, driven by the same
actions (``timeout N``, ``heartbeat N``, ``deliver-msg K``, ``drop-msg K``, ``duplicate-msg K``,
``crash N``, ``restart N``, ``submit add 1 to=N``), each message named by the simulation's own id
for it. The simulator's invariant checker, not the model's, then judges the run: the transcript's
last command shows the violation it raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import Role
from .model import Action, Model, State, Violation, describe_action

__all__ = ["Counterexample", "replay"]


def replay(model: Model, actions: Any) -> State | Violation | None:
    """Take the concrete `actions` (no renaming of nodes: `Model.concrete_run`) from the model's initial
    state: the state reached, the first `Violation`, or None if a state passed the bounds. Raises
    ValueError if an action is not enabled where it is taken."""
    state: State | Violation | None = model.initial
    with model.plain():
        for action in actions:
            if not isinstance(state, tuple):
                return state
            if action not in set(model.actions(state)):
                raise ValueError(f"action {action} ({model.describe(action)}) is not enabled here")
            state = model.step(state, action)
    return state


@dataclass(slots=True)
class Counterexample:
    """A run of the model that violates a safety property: `actions` from the initial state, and the
    `violation` the last one leads to."""

    model: Model
    actions: list[Action]
    violation: Violation

    def __repr__(self) -> str:
        return (f"Counterexample({self.violation.property}, {len(self.actions)} steps, "
                f"replica_class={self.model.replica_class.__name__})")

    def reproduces(self, actions: list[Action]) -> bool:
        """Whether `actions` lead to a violation of the same property (at their last action)."""
        try:
            found = replay(self.model, actions)
        except ValueError:
            return False
        return isinstance(found, Violation) and found.property == self.violation.property

    def minimised(self) -> Counterexample:
        """A counterexample with no action that can be dropped while the same property is still
        violated (each action tried once, from the end; repeated until none can go)."""
        actions = list(self.actions)
        changed = True
        while changed:
            changed = False
            for k in range(len(actions) - 2, -1, -1):
                shorter = actions[:k] + actions[k + 1:]
                if self.reproduces(shorter):
                    actions, changed = shorter, True
        found = replay(self.model, actions)
        assert isinstance(found, Violation)
        return Counterexample(self.model, actions, found)

    def lines(self) -> list[str]:
        """The run explained, one line per action, with the cluster after it (role, term, log's last
        index and commit index of each node; ``down`` for a crashed one); the violation last."""
        model, state = self.model, self.model.initial
        out = []
        for k, action in enumerate(self.actions, 1):
            text = f"{k:3}. {model.describe(action)}"
            with model.plain():
                nxt = model.step(state, action)
            if isinstance(nxt, tuple):
                state = nxt
                text += f"   [{_cluster(model, state)}]"
            out.append(text)
        out.append(f"  => {self.violation.property} violated: {self.violation.detail}")
        return out

    def explain(self) -> str:
        """`lines` joined."""
        return "\n".join(self.lines())

    def summary(self) -> dict[str, Any]:
        """Plain JSON: the property, the detail, the steps and their descriptions."""
        return {"property": self.violation.property, "detail": self.violation.detail, "steps": len(self.actions),
                "actions": [list(a) for a in self.actions],
                "explained": [self.model.describe(a) for a in self.actions]}

    # ----- the simulator's replay ---------------------------------------------------------------------
    def commands(self) -> list[str]:
        """The transcript commands of this run, one per action, computed by replaying it in a
        `Simulation` (`simulation`), which names each message by its own id. The last one is the step
        at which the simulator's own invariant checker sees the violation."""
        return self._replay()[0]

    def simulation(self, steps: int | None = None) -> tuple[Any, Any]:
        """``(simulation, violation)``: a `Simulation` (as the transcript's ``sim`` line makes it) that
        has taken the first `steps` actions (all but the last by default), and the `InvariantViolation`
        the simulator's own checker raises at the last one (None if it raises none: then the model and
        the simulator disagree). `RaftLab(counterexample)` shows each of them."""
        commands, violation = self._replay()
        steps = len(self.actions) - 1 if steps is None else steps
        if not 0 <= steps < len(self.actions):
            raise ValueError(f"steps must be between 0 and {len(self.actions) - 1}, not {steps}")
        sim = _simulation(self.model)
        for command, action in zip(commands[:steps], self.actions[:steps], strict=True):
            _act(sim, action, command)
        return sim, violation

    def _replay(self) -> tuple[list[str], Any]:
        from ..sim.invariants import InvariantViolation
        if self.model.read_lease or any(a[0] == "tick" for a in self.actions):
            raise ValueError("this run lets time pass or has read leases (CheckQuorum), which the simulator cannot "
                             "replay as the model takes them (its timers would fire; its replicas count their start "
                             "as hearing from a leader): explain() shows the run")
        sim = _simulation(self.model)
        commands: list[str] = []
        violation = None
        for action in self.actions:
            kind, node, number = action
            if kind.endswith("+crash"):
                raise ValueError(f"step {len(commands) + 1} ({self.model.describe(action)}) is a crash in the middle "
                                 "of a step, which the simulator cannot replay: explain() shows the run")
            if kind in ("deliver", "drop", "duplicate"):
                to, message = self.model.message(number)
                ids = [f.id for f in sim.in_flight() if f.destination == to and f.message == message]
                if not ids:
                    raise AssertionError(f"the simulation has no {message!r} in flight to {to}")
                commands.append(f"{kind}-msg {min(ids)}")
            elif kind == "submit":
                commands.append(f"submit add 1 to={node}")
            elif kind == "transfer":
                commands.append(f"transfer {number}")
            elif kind == "remove":
                commands.append(f"remove-node {number}")
            elif kind == "read":
                commands.append(f"read value to={node}")
            else:
                commands.append(f"{kind} {node}")
            try:
                _act(sim, action, commands[-1])
            except InvariantViolation as error:
                violation = error
                break
        return commands, violation

    def transcript(self) -> str:
        """A scenario transcript of this run up to the step before the violation, with the outputs the
        simulator gives (so that it is a test as it stands: `raftlab.sim.transcript.run_transcript`
        with ``replica_class=`` the class the model ran); its comments name the last step and the
        property it violates. `load_scenario` of it gives the cluster at that moment for the app."""
        from ..sim.transcript import run_transcript
        b = self.model.bounds
        commands = self.commands()
        name = self.model.replica_class.__name__
        head = [f"# Model checker counterexample: {self.violation.property} with {name} "
                f"({len(self.actions)} steps).",
                f"# {self.violation.detail}.",
                f"# Found by raftlab mc: {b.nodes} nodes, term <= {b.max_term}, log <= {b.max_log}, "
                f"crashes {b.crashes}, drops {b.drops}, duplicates {b.duplicates}, submits {b.submits}"
                + (f", transfers {b.transfers}" if b.transfers else "")
                + (f", changes {b.changes}." if b.changes else "."),
                "# Nothing happens by itself: the timers and message delays are far longer than the run, and",
                f"# every step is one action of the model. Replay with replica_class={name}; the next step,",
                f"# `{commands[-1]}` ({self.model.describe(self.actions[-1])}), violates "
                f"{self.violation.property}.", ""]
        text = "\n".join(head) + "\n" + "\n\n".join([sim_command(self.model), *commands[:-1]]) + "\n"
        result = run_transcript(text, replica_class=self.model.replica_class)
        return result.actual_text()

    def save(self, path: str | Path) -> Path:
        """Write `transcript()` to `path` (a ``.txt`` file); returns the path."""
        path = Path(path)
        path.write_text(self.transcript())
        return path


def _cluster(model: Model, state: State) -> str:
    parts = []
    for i in model.ids:
        saved = model.node_state(state, i)
        if saved[4] is None:
            parts.append(f"{i}: down t{saved[0]}")
            continue
        volatile = saved[4][0]
        role = {Role.LEADER: "L", Role.CANDIDATE: "C", Role.FOLLOWER: "F"}[volatile[0]]
        last = len(saved[2]) + (saved[3].last_included_index if saved[3] else 0)
        parts.append(f"{i}: {role} t{saved[0]} log {last} commit {volatile[2]}")
    return "; ".join(parts)


def sim_command(model: Model) -> str:
    """The transcript's ``sim`` line for `model`: its timers and delays far beyond the run."""
    from .model import ELECTION, HEARTBEAT
    extra = f" snapshot_delta={model.snapshot_delta}" if model.snapshot_delta else ""
    extra += f" max-inflight={model.max_inflight}" if model.max_inflight != 1 else ""
    extra += f" max-entries={model.max_entries}" if model.max_entries is not None else ""
    extra += " pre-vote" if model.pre_vote else ""
    return (f"sim n={model.bounds.nodes} seed=1 machine=counter heartbeat={HEARTBEAT:g} "
            f"election={ELECTION[0]:g},{ELECTION[1]:g} latency=100000,100000{extra}")


def _simulation(model: Model) -> Any:
    """A `Simulation` like the transcript's ``sim`` line (the model's replica class)."""
    bounds = model.bounds
    from ..machines import Counter
    from ..sim import NetworkModel, Simulation
    from .model import ELECTION, HEARTBEAT
    options: dict[str, Any] = {"max_inflight": model.max_inflight} if model.max_inflight != 1 else {}
    if model.pre_vote:
        options["pre_vote"] = True
    return Simulation(bounds.nodes, seed=1, heartbeat_timeout=HEARTBEAT, election_timeout=ELECTION,
                      network=NetworkModel(latency=(100000.0, 100000.0)), state_machine=Counter,
                      snapshot_delta=model.snapshot_delta, replica_class=model._run_class, **options)


def _act(sim: Any, action: Action, command: str) -> None:
    from ..machines.counter import Add
    kind, node, _ = action
    if kind == "timeout":
        sim.force_timeout(node)
    elif kind == "heartbeat":
        sim.force_heartbeat(node)
    elif kind == "crash":
        sim.crash(node)
    elif kind == "restart":
        sim.restart(node)
    elif kind == "submit":
        sim.submit(Add(len(sim.submissions) + 1, 1), to=node)
    elif kind == "transfer":
        sim.transfer_leadership(action[2])
    elif kind == "remove":
        sim.remove_node(action[2])
    elif kind == "read":
        sim.read("value", to=node)
    else:
        message_id = int(command.split()[1])
        {"deliver": sim.deliver_message, "drop": sim.drop_message, "duplicate": sim.duplicate_message}[kind](message_id)


describe = describe_action
