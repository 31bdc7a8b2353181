"""raftlab.widgets: the ipywidgets app that wires controls to a `Simulation` and to the renderers.

``RaftLab(n=5, seed=1)`` in a notebook cell shows a cluster you can step, break and rewind. The app
holds no Raft logic: every control calls the simulation, then redraws from ``sim.frame()``.
"""

from .app import RaftLab

__all__ = ["RaftLab"]
