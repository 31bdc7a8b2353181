"""raftlab.mc: model checking the real `Replica` on small clusters.

Explicit-state search (breadth-first, so that the first counterexample is a shortest one, and
seeded random walks) over every schedule of a bounded model: which message is delivered, lost or
duplicated next, whose timer fires, who crashes and restarts, when a client submits. The real,
unchanged `Replica` (or a subclass: a planted bug, a student's exercise) makes every transition.
Counterexamples are minimised, explained, and written as scenario transcripts that the simulator and
the RaftLab app replay::

    from raftlab.mc import Bounds, Model, bfs
    result = bfs(Model(Bounds(nodes=3, max_term=3, max_log=3, depth=20)))
    print(result.report())
"""

from .counterexample import Counterexample, replay
from .model import Action, Bounds, Model, State, Violation, describe_action
from .search import Result, bfs, random_walks

__all__ = ["Action", "Bounds", "Counterexample", "Model", "Result", "State", "Violation", "bfs", "describe_action",
           "random_walks", "replay"]
