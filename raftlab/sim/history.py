"""The history of a `Simulation`: its interventions, its checkpoints, and going back to an earlier step.

A run is decided by its seed and its interventions (a crash, a partition, a submission, a change of
the network model, ...). The `History` logs each intervention with the step and the time it was made
at, and every so often takes a checkpoint, a deep copy of the simulation's state. `rewind(k)` restores
the latest checkpoint before step `k` and steps on from it, replaying the logged interventions where
they were made, up to step `k`. The interventions after `k` are kept as the *future*: stepping on
replays them too, until the user acts, which forks a new history. The old one is kept as a `Branch`
(the way DSLabs' visual debugger keeps its event tree): `branches` lists them all, with where and by
which intervention each forked, and `switch(n)` goes back to where branch `n` parts from the one shown
and makes its interventions the future, so that stepping on replays it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

_ATOMIC = frozenset((int, float, str, bool, type(None)))  # the arguments an intervention's log need not copy

if TYPE_CHECKING:
    from .simulation import Simulation

Intervention = tuple[int, int, str, tuple, dict]  # (step, time in microseconds, name, args, kwargs)


@dataclass(slots=True)
class Branch:
    """One line of a history: branch 0 is the run as first made; each later one forked from `parent`
    when the user acted at step `forked_at` in the past of it (by `action`)."""

    number: int  # its place in `History.branches`
    parent: int | None  # the branch it forked from (None for branch 0)
    forked_at: int  # the step it forked at (0 for branch 0)
    forked_us: int  # the virtual time it forked at, microseconds
    action: str  # the intervention that forked it, for example "crash(2)" ("" for branch 0)
    interventions: list[Intervention]  # all of it; for the branch shown, as at the last switch or fork
    end: int  # the furthest step it reached

    def __str__(self) -> str:
        if self.parent is None:
            return f"branch {self.number}: the first run (to step {self.end})"
        return (f"branch {self.number}: {self.action} at step {self.forked_at} ({self.forked_us / 1e6:.3f} s), "
                f"forked from branch {self.parent} (to step {self.end})")


def _action(name: str, args: tuple, kwargs: dict) -> str:
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items() if v is not None]
    text = f"{name}({', '.join(shown)})"
    return text if len(text) <= 60 else text[:57] + "..."


class History:
    """The history of one `Simulation` (its `history` attribute); see the module docstring.

    Args:
        sim: the simulation; the attributes named in its ``_STATE`` are what a checkpoint copies.
        checkpoint_every: the least number of steps between two checkpoints (more as the state grows,
            so that checkpoints stay a small share of the work).
        enabled: False keeps no checkpoints, so that `rewind` raises (``Simulation(record_trace=False)``).
    """

    def __init__(self, sim: Simulation, checkpoint_every: int, enabled: bool = True) -> None:
        self.sim, self.checkpoint_every, self.enabled = sim, checkpoint_every, enabled
        self.interventions: list[Intervention] = []  # in the order made (and replayed)
        self.checkpoints: list[tuple[int, int, int, dict]] = []  # (step, trace length, interventions, state)
        self.next_checkpoint: float = 0  # the step at which to take the next checkpoint
        self.future: list[Intervention] = []  # interventions of a rewound history, replayed by stepping on
        self.replaying = False  # True while an intervention of the history is made again
        self._end = 0
        self._branches: list[Branch] = [Branch(0, None, 0, 0, "", [], 0)]  # every line of this history
        self.shown = 0  # the number of the branch being run

    @property
    def end(self) -> int:
        """The furthest step this history has reached (for a time slider)."""
        return max(self._end, self.sim.steps)

    @property
    def branches(self) -> list[Branch]:
        """Every branch, in the order made, the one shown brought up to date."""
        self._save_shown()
        return self._branches

    # ----- recording --------------------------------------------------------------------------------
    def log(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Log the intervention ``sim.name(*args, **kwargs)``, made now. Unless it is replayed, made in
        the past of the history (a future to replay, or steps already taken beyond now) it forks a new
        `Branch`: the old one keeps its future."""
        if not self.enabled:
            return  # no history is kept: nothing will replay it (`rewind` and `share` refuse)
        sim = self.sim
        if not self.replaying:
            if self.future or self.end > sim.steps:
                self._save_shown()
                self._branches.append(Branch(len(self._branches), self.shown, sim.steps, sim.now_us,
                                             _action(name, args, kwargs), [], sim.steps))
                self.shown = len(self._branches) - 1
            self.future.clear()
            self._end = sim.steps
        if not all(type(a) in _ATOMIC for a in args):
            args = copy.deepcopy(args)  # (a list or a command the caller may change later)
        self.interventions.append((sim.steps, sim.now_us, name, args, dict(kwargs)))

    def log_network_change(self, name: str, value: Any) -> None:
        """Log a change of the network model: `name` is a field, or ``"link"`` / ``"clear_link"`` with
        `value` the arguments of `NetworkModel.set_link` / `clear_link`."""
        if name == "link":
            self.log(name, *value[:2], **dict(zip(("latency", "drop", "duplicate"), value[2:], strict=True)))
        elif name == "clear_link":
            self.log(name, *value[:2])
        else:
            self.log("network", name, value)

    def before_step(self) -> None:
        """Replay the interventions due (in a rewound history), and take a checkpoint if one is due."""
        sim, future = self.sim, self.future
        while future and future[0][0] <= sim.steps:
            self._replay(future.pop(0))
        if sim.steps >= self.next_checkpoint:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Take a checkpoint of the simulation now (unless one of this moment exists)."""
        sim = self.sim
        if not self.enabled:
            self.next_checkpoint = math.inf
            return
        if self.checkpoints and self.checkpoints[-1][:3] == (sim.steps, len(sim.trace), len(self.interventions)):
            return
        state = copy.deepcopy({name: getattr(sim, name) for name in sim._STATE}, self._memo())
        self.checkpoints.append((sim.steps, len(sim.trace), len(self.interventions), state))
        # A checkpoint costs time in proportion to the state; space them so they stay a small share.
        size = sum(s.log.last_index for s in sim._storages.values()) + len(sim.submissions)
        self.next_checkpoint = sim.steps + max(self.checkpoint_every, 4 * size)

    # ----- going back -------------------------------------------------------------------------------
    def rewind(self, to_event: int) -> None:
        """Go back to the moment after step `to_event` (before any intervention made then); see
        `Simulation.rewind`."""
        sim = self.sim
        if not self.enabled:
            raise RuntimeError("rewind needs the history that Simulation(record_trace=False) does not keep")
        if type(to_event) is not int or not 0 <= to_event <= sim.steps:
            raise ValueError(f"to_event must be between 0 and the steps taken ({sim.steps}), not {to_event!r}")
        self._end = self.end
        before = sum(1 for i in self.interventions if i[0] < to_event)  # interventions to keep
        step, trace_length, done, state = max((c for c in self.checkpoints if c[0] <= to_event and c[2] <= before),
                                              key=lambda c: (c[0], c[2]))
        self.future = self.interventions[before:] + self.future
        pending = self.interventions[done:before]
        del self.interventions[done:]
        for name, value in copy.deepcopy(state, self._memo()).items():
            object.__setattr__(sim, name, value)
        del sim.trace.events[trace_length:]
        self.checkpoints = [c for c in self.checkpoints if c[0] <= step and c[2] <= done]
        self.future = pending + self.future
        while sim.steps < to_event and sim.step() is not None:
            pass
        while self.future and self.future[0][0] < to_event:  # (none are left, unless the queue ran dry)
            self._replay(self.future.pop(0))

    def switch(self, number: int) -> None:
        """Show branch `number`: go back to the step where it parts from the branch shown (or stay,
        if that is later than now) and make its interventions the future, so that stepping on
        replays it; its end becomes the history's end. See `Simulation.switch_branch`."""
        if type(number) is not int or not 0 <= number < len(self._branches):
            raise ValueError(f"number must be a branch number, 0 to {len(self._branches) - 1}, not {number!r}")
        if not self.enabled:
            raise RuntimeError("branches need the history that Simulation(record_trace=False) does not keep")
        if number == self.shown:
            return
        self._save_shown()
        mine, target = self._branches[self.shown].interventions, self._branches[number]
        theirs = target.interventions
        same = next((k for k, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                    min(len(mine), len(theirs)))
        parting = min([x[same][0] for x in (mine, theirs) if same < len(x)], default=self.sim.steps)
        self.rewind(min(parting, self.sim.steps))  # keeps the interventions before then: both have them
        self.future = copy.deepcopy(theirs[len(self.interventions):])
        self._end, self.shown = target.end, number

    def load(self, interventions: list[Intervention], end: int) -> None:
        """Make `interventions` the future of a simulation that has not stepped or acted yet, and `end`
        its history's end: stepping on replays them (how `raftlab.sim.share.from_shared` replays a run)."""
        if self.sim.steps or self.interventions or self.future:
            raise RuntimeError("load needs a simulation that has not stepped or acted yet")
        self.future, self._end = list(interventions), end

    def _save_shown(self) -> None:
        """Keep the branch shown up to date: all its interventions (past and future) and its end."""
        branch = self._branches[self.shown]
        branch.interventions, branch.end = self.interventions + self.future, self.end

    def _replay(self, intervention: Intervention) -> None:
        sim = self.sim
        _, now_us, name, args, kwargs = intervention
        sim.now_us, self.replaying = now_us, True
        try:
            if name == "network":
                setting, value = args
                if setting not in ("latency", "drop", "duplicate"):  # (a shared run's text names it)
                    raise ValueError(f"a network intervention changes latency, drop or duplicate, not {setting!r}")
                setattr(sim.network, setting, value)
            elif name == "link":
                sim.network.set_link(*args, **kwargs)
            elif name == "clear_link":
                sim.network.clear_link(*args)
            else:
                getattr(sim, name)(*args, **kwargs)
        finally:
            self.replaying = False

    def _memo(self) -> dict:
        """What a checkpoint shares with the live simulation instead of copying."""
        sim = self.sim
        return {id(sim): sim, id(sim.trace): sim.trace, id(self): self}
