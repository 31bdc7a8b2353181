"""raftlab: learn, test and run the Raft consensus algorithm.

The consensus core is `raftlab.core` (re-exported here): implement a `StateMachine`, implement a
`Cluster`, start a `Replica`.
"""

from .core import *  # noqa: F403
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = list(_core_all)
