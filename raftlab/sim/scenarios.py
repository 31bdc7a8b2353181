"""Scenarios: plain functions ``scenario(sim)`` that script a situation worth looking at.

Each takes a fresh `Simulation` and leaves it at the interesting moment, ready to be stepped on.
`SCENARIOS` names them for pickers (the widget app, the notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .simulation import Simulation


def _put(sim: Simulation, seq: int, key: str = "x", client: int = 1) -> Any:
    from ..machines import KVStore

    factory = sim.state_machine
    if isinstance(factory, type) and issubclass(factory, KVStore):
        return KVStore.put(client, seq, key, str(seq))
    from ..machines import Add

    return Add(f"c{client}.{seq}", seq)


def first_election(sim: Simulation) -> None:
    """Nothing but time: the first election, up to the moment a leader exists."""
    sim.run_until(lambda s: s.leader() is not None, 5.0)


def split_vote(sim: Simulation) -> None:
    """Two nodes time out at the same moment and split the votes; randomised timers then decide."""
    if sim.n >= 2:
        sim.force_timeout(0)
        sim.force_timeout(1)


def leader_crash(sim: Simulation) -> None:
    """A leader commits a write and then crashes; stop just after the crash."""
    first_election(sim)
    leader = sim.leader()
    if leader is not None and sim.n > 1:
        sim.one(_put(sim, 1), timeout=5.0)
        sim.crash(sim.leader())


def two_leaders(sim: Simulation) -> None:
    """A partition leaves the old leader in a minority with a write it cannot commit, while the
    majority elects a new leader in a higher term and commits its own write. Heal to see the old
    leader step down and its entry rolled back."""
    first_election(sim)
    old = sim.leader()
    if old is None or sim.n < 3:
        return
    minority = [old, *[i for i in sim.ids if i != old][: (sim.n - 1) // 2 - 1]]  # the largest minority
    sim.partition(minority, [i for i in sim.ids if i not in minority])
    sim.submit(_put(sim, 1, "x"), to=old)
    sim.run_until(lambda s: s.leader() is not None and s.leader() != old, 5.0)
    if sim.leader() not in (None, old):
        sim.submit(_put(sim, 2, "x"))
    sim.run(0.3)


def lossy_network(sim: Simulation) -> None:
    """A network that loses 20% of messages, duplicates 10% and reorders freely, under writes."""
    sim.network.latency = (0.002, 0.08)
    sim.network.drop = 0.2
    sim.network.duplicate = 0.1
    first_election(sim)
    for seq in range(1, 4):
        sim.submit(_put(sim, seq, f"k{seq}"))
        sim.run(0.2)


SCENARIOS: dict[str, Callable[[Simulation], None]] = {
    "first election": first_election,
    "split vote": split_vote,
    "leader crash": leader_crash,
    "two leaders (partition)": two_leaders,
    "lossy network": lossy_network,
}
