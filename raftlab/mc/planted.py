"""The searches that catch the grader's planted bugs (`raftlab.grading.mutants`), one per bug.

Each planted bug breaks one rule. Most break a safety property within a few steps, which the default
`Bounds` reach in seconds; others need the search narrowed to reach deep enough within a minute on
one core (no faults it does not need, a bounded network as TLA+ models of Raft have, one entry per
AppendEntries as the grader's own Figure 8 check sends them), or an option of the `Model` (pre-votes,
compaction, reads, leases, time passing); one (the lease bug, 15 steps deep) searches in two phases,
first to a state where a leader's entry is on every node, then on from it (`Search.start`, `Search.run`).
`raftlab mc --mutant NAME` takes the bug's search here for every bound not given on the command line.
A bug the model could not catch would be listed in `NOT_MODELLED`, with the reason: none is today.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from .model import Bounds, Model, State
from .search import Result, bfs

__all__ = ["NOT_MODELLED", "SEARCHES", "Search"]

# A bounded network (at most two messages in flight), deep enough to finish: see README, "Model checking".
_NET2 = Bounds(nodes=3, max_term=2, max_log=3, crashes=1, drops=1, duplicates=0, submits=1, depth=200,
               max_messages=2)

# Three terms (two leaders before the one that shows the bug), one message per link, stale responses gone.
_TERM3 = Bounds(nodes=3, max_term=3, max_log=2, crashes=0, drops=0, submits=1, depth=14, max_messages=4)
_LINKS = {"one_per_link": True, "prune_stale": True}
_TERM2_READ = Bounds(nodes=3, max_term=2, max_log=2, crashes=0, drops=0, submits=0, reads=1, depth=20,
                     max_messages=4)


def entry_everywhere(model: Model, state: State) -> bool:
    """An entry is committed, and every node holds one."""
    n = len(model.ids)
    return bool(state[n + 2][1]) and all(model.node_state(state, i)[2] for i in model.ids)


@dataclass(frozen=True, slots=True)
class Search:
    """The search that catches one planted bug: its bounds, the `Model`'s options, and what it finds
    (the property violated, as the model names it); `start`: a predicate of the state a first search
    reaches, from which the second one goes on (see `run`)."""

    bounds: Bounds
    finds: str
    options: dict[str, Any] = field(default_factory=dict)
    start: Callable[[Model, State], bool] | None = None

    def run(self, model: Model, *, time_budget: float | None = 60, progress: bool = False,
            executor: Executor | None = None) -> Result:
        """Search `model` (built with this search's bounds and options, or others): breadth-first from
        the initial state, or, with `start`, in two phases as DSLabs does: to the first state that
        satisfies `start` (a shortest run to it), then on from that state (so the counterexample is
        shortest among those that pass through it). The time budget covers both."""
        if self.start is None:
            return bfs(model, time_budget=time_budget, progress=progress, executor=executor)
        predicate = self.start
        first = bfs(model, time_budget=time_budget, goal=lambda state: predicate(model, state))
        if first.goal_run is None:
            return first  # (never reached: its report says how far it went)
        left = None if time_budget is None else max(1.0, time_budget - first.seconds)
        result = bfs(model, time_budget=left, progress=progress, start=first.goal_run)
        result.states += first.states
        result.seconds += first.seconds
        return result


SEARCHES: dict[str, Search] = {
    "VoteNotPersisted": Search(Bounds(), "Persist before sending (RV-GRANT)"),  # (rules=False: Election Safety)
    "SendsVoteRequestsBeforePersisting": Search(Bounds(), "Persist before sending (C-START)"),
    "CommitsOldTermByCounting": Search(Bounds(crashes=0, drops=0, submits=0), "Commit rule (L-COMMIT)",
                                       {"max_entries": 1}),
    "VotesWithoutUpToDateCheck": Search(Bounds(), "Vote rule (RV-GRANT)"),  # (rules=False: Leader Completeness)
    "UpToDateByLength": Search(Bounds(), "Vote rule (RV-GRANT)"),
    "UpToDateByTermAndLength": Search(_TERM3, "Vote rule (RV-GRANT)", _LINKS),
    "DeletesOnRefusal": Search(_TERM3, "Refusal (AE-CHECK)", _LINKS),
    "ResetsTimerOnEveryVoteRequest": Search(Bounds(), "Election timer reset (F-TIMEOUT)"),
    "KeepsConflictingEntries": Search(_NET2, "Match index (L-REPLICATE)"),
    "TruncatesMatchingEntries": Search(_NET2, "Match index (L-REPLICATE)"),
    "MatchIndexMovesBack": Search(Bounds(), "Match index (L-REPLICATE)"),
    "TermFromSnapshot": Search(_NET2.raised("max_term"), "Monotonic term", {"snapshot_delta": 1}),
    "CommitNotCappedByLastNew": Search(_NET2, "State Machine Safety"),
    "IgnoresHigherTermInResponses": Search(Bounds(), "Term adoption (ALL-TERM)"),
    "ActsOnStaleResponses": Search(Bounds(), "Match index (L-REPLICATE)"),
    "PreVoteRaisesTerm": Search(Bounds(), "Pre-vote (PV-GRANT)", {"pre_vote": True}),
    "TakesProposalsDuringTransfer": Search(Bounds(crashes=0, drops=0, transfers=1), "Transfer (LT-STOP)"),
    "ChangesBeforeTermCommits": Search(Bounds(crashes=0, drops=0, changes=1), "Configuration change (MC-ONE)"),
    "LearnerStandsForElection": Search(Bounds(crashes=0, drops=0, changes=1), "Non-voter campaign (MC-LEARNER)"),
    "CountsItselfWhenRemoved": Search(Bounds(crashes=0, drops=0, changes=1), "Commit quorum (L-COMMIT)"),
    # (the bugs of an even-sized cluster: half of four is not a majority)
    "WinsWithHalfTheVotes": Search(Bounds(nodes=4, max_term=1, max_log=1, crashes=0, drops=0, submits=0, depth=14),
                                   "Election Safety"),
    "CommitsWithHalfTheVoters": Search(Bounds(nodes=4, max_term=1, crashes=0, drops=0, depth=16),
                                       "Commit quorum (L-COMMIT)"),
    # (reads: a stale answer breaks linearizability; a lease needs time to pass, two ticks of it)
    "ReadsBeforeNoopCommits": Search(_TERM2_READ, "Linearizable read", _LINKS),
    "LeaseWithoutQuorum": Search(_TERM2_READ.raised("ticks", 2).raised("max_messages"), "Linearizable read",
                                 {**_LINKS, "read_lease": True}, start=entry_everywhere),
}

NOT_MODELLED: dict[str, str] = {}  # (a bug the model cannot catch -> why, a sentence): none today
