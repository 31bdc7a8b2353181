"""The searches that catch the grader's planted bugs (`raftlab.grading.mutants`), one per bug.

Each planted bug breaks one rule. Most break a safety property within a few steps, which the default
`Bounds` reach in seconds; others need the search narrowed to reach deep enough within a minute on
one core (no faults it does not need, a bounded network as TLA+ models of Raft have, one entry per
AppendEntries as the grader's own Figure 8 check sends them), or an option of the `Model` (pre-votes,
compaction). `raftlab mc --mutant NAME` takes the bug's search here for every bound not given on
the command line. The bugs of features the model does not have (linearizable reads and leases) are in
`NOT_MODELLED`, with what the model would need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Bounds

__all__ = ["NOT_MODELLED", "SEARCHES", "Search"]

# A bounded network (at most two messages in flight), deep enough to finish: see README, "Model checking".
_NET2 = Bounds(nodes=3, max_term=2, max_log=3, crashes=1, drops=1, duplicates=0, submits=1, depth=200,
               max_messages=2)


@dataclass(frozen=True, slots=True)
class Search:
    """The search that catches one planted bug: its bounds, the `Model`'s options, and what it finds
    (the property violated, as the model names it)."""

    bounds: Bounds
    finds: str
    options: dict[str, Any] = field(default_factory=dict)


SEARCHES: dict[str, Search] = {
    "VoteNotPersisted": Search(Bounds(), "Election Safety"),  # (a crash between a send and a write)
    "CommitsOldTermByCounting": Search(Bounds(crashes=0, drops=0, submits=0), "Commit rule (L-COMMIT)",
                                       {"max_entries": 1}),
    "VotesWithoutUpToDateCheck": Search(Bounds(), "Leader Completeness"),
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
}

NOT_MODELLED: dict[str, str] = {  # (why the model cannot catch it, a sentence)
    "LeaseWithoutQuorum": "the model has no reads, no CheckQuorum and no passing of time (a lease runs on the "
                          "clock; time stands still)",
    "ReadsBeforeNoopCommits": "the model has no reads (RI-*: a read action and its heartbeat rounds)",
    # (bugs the model can see but that break nothing it checks, or not within a minute's search)
    "SendsVoteRequestsBeforePersisting": "the model has no crash inside a step, between its sends and its write: "
                                         "a step is atomic, as in the simulator (the grader sees the order of "
                                         "writes and sends, A.c_start)",
    "UpToDateByTermAndLength": "it refuses votes Raft would grant (stricter than RV-GRANT: a liveness bug), so no "
                               "safety property or rule the model checks breaks (the grader: A.rv_grant_up_to_date)",
    "UpToDateByLength": "its Leader Completeness violation needs a longer log of an older term beside a committed "
                        "entry of a newer one, deeper than a minute's search of the bounds tried reached "
                        "(the grader: A.rv_grant_up_to_date)",
    "DeletesOnRefusal": "it deletes only an entry whose term differs from the leader's at that index, which the "
                        "leader's log does not hold, so no safety property the model checks breaks (the grader "
                        "checks the rule itself, B.ae_check)",
}
