"""Little Raft's two integration tests, ported: three replicas on threads, in real time.

`raft_stable`: a reliable network. `raft_unstable`: a network that loses 25% of messages and
shuffles the order of delivery. In both, every replica applies the same transitions in the same
order.
"""

from __future__ import annotations

import pytest

from raftlab.core import TransitionState
from raftlab.demo import NOOP, run_demo
from raftlab.threads import ThreadNetwork


def _histories(result):
    return [[op.id for op in calc.applied] for calc in result.calculators]


def test_raft_stable_all_replicas_apply_the_same_transitions_in_order():
    result = run_demo(3, 20, seed=7, out=None, deadline=8.0)
    histories = _histories(result)
    assert result.converged
    assert all(h == histories[0] for h in histories)
    # A leader existed before the first offer and the network is reliable: all 20 were applied, in order.
    offered = [h for h in histories[0] if h != NOOP.id]
    assert offered == list(range(1, 21))
    assert len({c.value for c in result.calculators}) == 1
    assert result.network.dropped == 0
    leader = next(c for c in result.calculators if c.states.get(1) is not TransitionState.ABANDONED_NOT_LEADER)
    assert all(leader.states[k] is TransitionState.APPLIED for k in range(1, 21))


def test_raft_unstable_lossy_shuffled_network_still_agrees():
    result = run_demo(3, 20, seed=11, drop=0.25, shuffle=True, out=None, deadline=8.0)
    histories = _histories(result)
    assert result.converged
    assert all(h == histories[0] for h in histories)
    offered = [h for h in histories[0] if h != NOOP.id]
    assert offered, "no transition was applied"
    assert offered == sorted(offered), "transitions were applied out of the order they were offered"
    assert len(set(offered)) == len(offered), "a transition was applied twice"
    assert result.network.dropped > 0.1 * result.network.sent


def test_thread_network_rejects_bad_drop_rate():
    with pytest.raises(ValueError, match="drop"):
        ThreadNetwork([1, 2], drop=1.5)
