"""The grader's tests, part by part: paper-claim checks and simulator scenarios.

A paper-claim check drives ONE replica of the graded class by hand (hand-built messages, `tick`,
`process_transitions`) and checks what it sent and its state, as the project's own tests/core do. A
scenario runs five replicas of the graded class in the deterministic `Simulation` on a fixed seed,
with the invariant checker on (Raft's safety properties after every step), and an event budget. A
transcript check replays one of the bundled scenario transcripts (`raftlab.sim.transcript`, the same
files the test suite runs and the RaftLab app's scenario menu offers) with the graded class, on the
transcript's own seed: every ``check`` in it must hold. Every failure message starts with the rule of
the expectation that failed. Parts A-D grade Figure 2 (the course's exercises); part E grades the
thesis's options of `Replica` (PreVote, CheckQuorum, leadership transfer, reads), turned on, on the
graded class whole; part F grades membership change (thesis chapter 4: `Configuration` transitions, one
server at a time, learners, a removed leader), on the graded class whole too.

Blame only where it is due. Each check declares the rules it judges (`Check.rule`, read as
`Check.rules`), and in parts A-D it runs the student's code for those rules only: the exercises that
implement none of them are the reference's (`runner.check_class`), so a bug loses points only in the
checks of its own rule. An integration check (`Check.together`: the transcripts, which replay one exact
schedule; every check of parts E and F, which grade the class whole; a check of what the library builds
from the part's exercises) runs the student's whole part, or the whole class, and says so: its failure
message ends "(this check tests X and Y together with ...)", as a check of several rules' does ("this
check tests X, Y and Z together"). `raftlab.grading.mutants.self_check` holds the checks to it: a
planted bug that fails a check of another rule, not an integration check, fails the self-check.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..core import (
    AppendEntryRequest, AppendEntryResponse, Configuration, EventKind, InstallSnapshotRequest, InstallSnapshotResponse,
    MemoryStorage, PreVoteRequest, PreVoteResponse, ReadIndexRequest, ReadIndexResponse, ReadState, Replica, Role,
    Snapshot, TimeoutNow, TransitionState, VoteRequest, VoteResponse,
)
from ..machines import KVStore
from ..sim import NetworkModel, Simulation, TraceEvent
from ..sim.transcript import TRANSCRIPTS, Transcript, TranscriptError, run_transcript
from .fakes import (
    ELECTION, HEARTBEAT, LEADER, ME, C, Fakes, Op, RecordingStateMachine, ack, append, build, config_entry, e, elect,
    follower, held, journaled, log_of, offer, ok, refused, settled_leader,
)

LOW, HIGH = ELECTION
APPLIED, ABANDONED = TransitionState.APPLIED, TransitionState.ABANDONED_CONFLICT_WITH_LEADER
QUEUED, REFUSED = TransitionState.QUEUED, TransitionState.ABANDONED_REFUSED
UNKNOWN = TransitionState.UNKNOWN


BEYOND_FIGURE_2 = {"E": "beyond Figure 2: PreVote, CheckQuorum, leadership transfer, reads",
                   "F": "beyond Figure 2: membership change, one server at a time, learners, removal"}
"""The parts of the grade with no exercise of their own, run on the graded class whole: E, the thesis's
options of `Replica` (see the Part E section below); F, membership change (the Part F section)."""


BEYOND_FIGURE_2_TOGETHER = {
    part: f"all of your Figure 2 code (part {part} grades your class whole: {what.split(': ')[1]} stand on it)"
    for part, what in BEYOND_FIGURE_2.items()}
"""Why every check of parts E and F is an integration check (`Check.together`)."""


class CheckFailed(AssertionError):
    """A check's expectation was not met; the message starts with the rule id."""


class BudgetExceeded(RuntimeError):
    """A scenario used more simulation steps than its event budget."""


@dataclass(frozen=True, slots=True)
class Check:
    id: str  # "A.rv_grant_up_to_date"
    part: str
    rule: str  # the rule ids it judges (`rules`), as a report shows them
    title: str
    points: int
    fn: Callable[..., None]  # fn(cls) for a paper-claim check, fn(cls, seed) for a scenario
    scenario: bool  # runs in the Simulation (on the grader's seeds, unless it is a transcript)
    transcript: str | None = None  # the bundled transcript it replays (on that transcript's own seed)
    together: str = ""  # an integration check: why it tests its rules together with the rest of its part

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules the check judges (declared by `rule`): a failure is blame on these, and on no other
        rule unless the check is an integration check (`together`)."""
        return rules_of(self.rule)

    def scope(self, message: str = "") -> str:
        """What code this check ran, said after a failure's `message` where the message alone could mislead:
        always for a check of several rules or an integration check, and for a check of one rule when the
        expectation that failed names another (that rule's exercises are the reference's there). Empty if
        there is nothing to say."""
        rules = self.rules
        named = rules[0] if len(rules) == 1 else f"{', '.join(rules[:-1])} and {rules[-1]}"
        if self.together:
            return f"this check tests {named} together with {self.together}"
        if len(rules) > 1:
            return f"this check tests {named} together: your code for these rules, the reference's exercises for " \
                   f"the others"
        if message.startswith(f"{rules[0]}:") or message.endswith(f"[checking {rules[0]}]"):
            return ""
        return f"this check runs your code for {named} only: the other exercises are the reference's"


def rules_of(text: str) -> tuple[str, ...]:
    """The rule ids of a declaration such as ``"C-START, RV-GRANT, ALL-TERM (persist first)"``: the first
    word of each part."""
    return tuple(part.split()[0] for part in text.split(",") if part.strip())


CHECKS: list[Check] = []
TRACKED: list[Fakes] = []  # the replicas built by the running paper-claim check (for the trace tail)
SIMS: list[GradedSimulation] = []  # the simulations of the running scenario


def check(part: str, rule: str, title: str, points: int = 2, scenario: bool = False, together: str = "") -> Callable:
    """Register a check of the rules `rule` names. `together`: it is an integration check, which runs the
    student's code for every rule of its part (the class whole, in parts E and F), and why."""
    together = together or BEYOND_FIGURE_2_TOGETHER.get(part, "")

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        CHECKS.append(Check(f"{part}.{fn.__name__}", part, rule, title, points, fn, scenario, together=together))
        return fn
    return register


def expect(condition: object, rule: str, message: str) -> None:
    if not condition:
        raise CheckFailed(f"{rule}: {message}")


def fresh(cls: type[Replica], make: Callable[..., Fakes] = build, *args: object, **kwargs: object) -> Fakes:
    """``make(*args, **kwargs)`` (`build`, `follower` or `journaled` of raftlab.grading.fakes) for the graded
    class `cls`, tracked so that a failure can report the replica's last events."""
    return make(*args, cls=cls, track=TRACKED, **kwargs)


# ----- the scenarios' simulation ------------------------------------------------------------------
class GradedSimulation(Simulation):
    """A `Simulation` with an event budget: stepping past `budget` steps raises `BudgetExceeded`."""

    budget = 60_000

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        SIMS.append(self)  # the running check's simulations, for the trace tail of a failure

    def step(self, until: float = math.inf) -> TraceEvent | None:
        if self.steps >= self.budget:
            raise BudgetExceeded(f"event budget exhausted: {self.budget} simulation steps by t={self.now:.3f}s "
                                 f"(a storm of messages or timers: is a timer reset or a message sent too often?)")
        return super().step(until)


def simulation(cls: type[Replica], seed: int, n: int = 5, **kwargs: object) -> GradedSimulation:
    return GradedSimulation(n, seed, replica_class=cls, **kwargs)


def wait_leader(sim: Simulation, rule: str, timeout: float = 2.0, among: list[int] | None = None) -> int:
    start = sim.now
    sim.run_until(lambda s: s.leader() is not None and (among is None or s.leader() in among), timeout)
    leader = sim.leader()
    expect(leader is not None and (among is None or leader in among), rule,
           f"no leader{'' if among is None else f' among {among}'} within {timeout:g} s (from t={start:.3f}s)")
    return leader  # type: ignore[return-value]


def _term_of(sim: Simulation, node: int | None) -> int | str:
    return "-" if node is None else sim.replicas[node].term


def put(client: int, seq: int = 1, key: str | None = None) -> object:
    return KVStore.put(client, seq, key if key is not None else f"k{client}", f"v{client}.{seq}")


def commit(sim: Simulation, rule: str, command: object, k: int | None = None, timeout: float = 5.0) -> None:
    try:
        sim.one(command, k=k, timeout=timeout)
    except TimeoutError as error:
        raise CheckFailed(f"{rule}: {error}") from None


# =============================================================================================
# Part A: leader election
# =============================================================================================
@check("A", "F-TIMEOUT", "the election timer is random, in the range, and fires on time")
def f_timeout_range(cls: type[Replica]) -> None:
    f = fresh(cls)
    r, d = f.replica, f.replica.next_deadline
    expect(LOW <= d <= HIGH, "F-TIMEOUT", f"a new follower's election deadline is {d}, not within [{LOW}, {HIGH}]")
    r.tick(d - 0.001)
    expect(r.role is Role.FOLLOWER, "F-TIMEOUT", f"the replica left the follower role before its deadline {d}")
    r.tick(d)
    expect(r.role is Role.CANDIDATE, "F-TIMEOUT", f"the election timer fired at {d} but the replica is "
                                                  f"{r.role.value}, not candidate")
    d2 = r.next_deadline
    expect(d + LOW <= d2 <= d + HIGH, "F-TIMEOUT", f"the candidate's next deadline {d2} is not a fresh timeout "
                                                   f"drawn from [{LOW}, {HIGH}] after {d}")
    deadlines = {fresh(cls, seed=s).replica.next_deadline for s in range(6)}
    expect(len(deadlines) > 1, "F-TIMEOUT", "six replicas with different random generators drew the same "
                                            "timeout: it is not random, so split votes repeat forever")


@check("A", "F-TIMEOUT", "only granting a vote or the current leader resets the election timer")
def f_timeout_resets(cls: type[Replica]) -> None:
    # Whether a vote is granted is RV-GRANT's, judged by its own checks (A.rv_grant_*): this one judges the
    # timer against the answer the replica itself sent, so that a wrong answer costs RV-GRANT points only.
    f = fresh(cls, follower, [e(1, 1), e(2, 2)], term=2)
    r, d = f.replica, f.replica.next_deadline
    now = d - 0.01
    r.tick(now)
    for message, what in [(VoteRequest(3, 2, 1, 1), "a VoteRequest from a candidate whose log is behind"),
                          (append(1, 0, 0), "an AppendEntries of an earlier term"),
                          (VoteResponse(3, 2, False), "a stray VoteResponse"),
                          (AppendEntryResponse(3, 2, False, 0, 1), "a stray AppendEntries response")]:
        r.step(message)
        granted = [m for m in f.cluster.messages(VoteResponse, remove=True) if m.vote_granted]
        if granted:  # (a vote RV-GRANT must refuse: A.rv_grant_up_to_date's to judge; granted, it resets the timer)
            expect(r.next_deadline >= now + LOW, "F-TIMEOUT",
                   f"the replica granted its vote for {what} but its election deadline is {r.next_deadline:.4f}, "
                   f"not reset (at least {now + LOW:.4f}): a granted vote resets the timer")
            d = r.next_deadline
            continue
        expect(r.next_deadline == d, "F-TIMEOUT", f"{what}, answered without a vote, moved the election deadline "
                                                  f"from {d:.4f} to {r.next_deadline:.4f}: only the current leader "
                                                  f"or a granted vote may reset it (else elections never end)")
    r.tick(d)
    expect(r.role is Role.CANDIDATE, "F-TIMEOUT", "the election timer did not fire at its deadline")
    g = fresh(cls, follower, term=2)
    d = g.replica.next_deadline
    g.replica.tick(d - 0.01)
    g.replica.step(VoteRequest(3, 2, 0, 0))
    if g.replica.voted_for == 3:
        expect(g.replica.next_deadline >= d - 0.01 + LOW, "F-TIMEOUT",
               "granting a vote did not reset the election timer")
    else:  # (refused to a candidate with an equal log: RV-GRANT's, judged by A.rv_grant_once and up_to_date)
        expect(g.replica.next_deadline == d, "F-TIMEOUT",
               f"a VoteRequest answered without a vote moved the election deadline from {d:.4f} to "
               f"{g.replica.next_deadline:.4f}: only the current leader or a granted vote may reset it")


@check("A", "C-START", "a candidate increments its term, votes for itself (durably, first) and asks every peer")
def c_start(cls: type[Replica]) -> None:
    f = fresh(cls, journaled, [e(1, 1), e(2, 2)], term=2)  # (its storage journals each write, with the sends)
    r = f.replica
    now = r.next_deadline
    r.tick(now)
    expect(r.role is Role.CANDIDATE, "C-START", f"after the timer fired the replica is {r.role.value}")
    expect(r.current_term == 3, "C-START", f"the candidate's term is {r.current_term}, expected 2 + 1 = 3")
    expect(f.storage.voted_for == ME, "C-START", f"the candidate's persisted vote is {f.storage.voted_for}, not itself")
    before(f.journal, ("persist", 3, ME), "C-START", "the candidate's term 3 and vote for itself")
    expect(r.leader_id is None, "C-START", f"a candidate still names {r.leader_id} as leader")
    sent = [(to, m) for to, m in f.cluster.sent if isinstance(m, VoteRequest)]
    expect(sorted(to for to, _ in sent) == [2, 3], "C-START", f"VoteRequests went to {sorted(t for t, _ in sent)}, "
                                                               "expected every peer [2, 3]")
    for _, m in sent:
        expect((m.term, m.last_log_index, m.last_log_term) == (3, 2, 2), "C-START",
               f"VoteRequest {m} should carry term 3 and the last log index 2 and term 2")
    expect(now + LOW <= r.next_deadline <= now + HIGH, "C-START", "the candidate did not start a fresh timer")
    again = r.next_deadline
    r.tick(again)  # C-RETRY: a split vote, a new election
    expect(r.role is Role.CANDIDATE and r.current_term == 4, "C-START",
           f"when the candidate's timer fires again it should stand in term 4; it is {r.role.value} of term "
           f"{r.current_term}")
    single = fresh(cls, peers=())
    single.replica.tick(single.replica.next_deadline)
    expect(single.replica.role is Role.LEADER, "C-WIN", "a single-node cluster did not elect itself at once")


@check("A", "C-WIN", "a candidate becomes leader on a majority of granted votes (of five, of four), each voter "
       "counted once")
def c_win(cls: type[Replica]) -> None:
    f = fresh(cls, peers=(2, 3, 4, 5))
    r = f.replica
    r.tick(r.next_deadline)
    term = r.current_term
    for message, what in [(VoteResponse(2, term, True), "one vote of five"),
                          (VoteResponse(2, term, True), "the same voter twice"),
                          (VoteResponse(3, term, False), "a refusal")]:
        r.step(message)
        expect(r.role is Role.CANDIDATE, "C-WIN", f"became {r.role.value} with {what} (votes so far: itself "
                                                  "and 2): a majority of five is three")
    r.step(VoteResponse(4, term, True))
    expect(r.role is Role.LEADER, "C-WIN", f"three votes of five (1, 2, 4) but the replica is {r.role.value}")
    beats = sorted(to for to, m in f.cluster.sent if isinstance(m, AppendEntryRequest))
    expect(beats == [2, 3, 4, 5], "C-WIN",
           f"a new leader must send AppendEntries to every peer at once; sent to {beats}")
    g = fresh(cls, peers=(2, 3, 4))  # an even cluster: half is not a majority
    r = g.replica
    r.tick(r.next_deadline)
    r.step(VoteResponse(2, r.current_term, True))
    expect(r.role is Role.CANDIDATE, "C-WIN", f"in a cluster of four, became {r.role.value} with two votes (itself "
                                              f"and 2): two of four is half, not a majority, which is three")
    r.step(VoteResponse(3, r.current_term, True))
    expect(r.role is Role.LEADER, "C-WIN", f"three votes of four (1, 2, 3) but the replica is {r.role.value}")


@check("A", "ALL-STALE", "a candidate ignores votes granted in an earlier term", points=1)
def c_win_stale_votes(cls: type[Replica]) -> None:
    f = fresh(cls)
    r = f.replica
    r.tick(r.next_deadline)
    r.tick(r.next_deadline)  # a split vote: term 2
    expect(r.current_term == 2, "C-START", f"after two timeouts the candidate's term is {r.current_term}, not 2")
    r.step(VoteResponse(2, 1, True))
    r.step(VoteResponse(3, 1, True))
    expect(r.role is Role.CANDIDATE, "ALL-STALE", "votes granted in term 1 made the candidate of term 2 "
                                                  f"{r.role.value}: a stale response must be ignored")


@check("A", "RV-GRANT", "one vote per term, persisted, to the first candidate that asks")
def rv_grant_once(cls: type[Replica]) -> None:
    f = fresh(cls, follower, term=1)
    r = f.replica

    def answer(candidate: int) -> bool:
        r.step(VoteRequest(candidate, 1, 0, 0))
        replies = f.cluster.messages(VoteResponse, to=candidate, remove=True)
        expect(len(replies) == 1, "RV-GRANT", f"expected one VoteResponse to {candidate}, got {replies}")
        return replies[0].vote_granted

    expect(answer(2), "RV-GRANT", "refused the first candidate of term 1 (equal, empty logs)")
    expect(f.storage.voted_for == 2, "RV-GRANT",
           f"the vote for 2 was not persisted (storage says {f.storage.voted_for})")
    expect(not answer(3), "RV-GRANT", "granted a second vote in term 1, to 3, after voting for 2: two leaders")
    expect(answer(2), "RV-GRANT", "refused to repeat its vote to the same candidate (its answer may have been lost)")


@check("A", "RV-GRANT", "a vote only for a candidate whose log is at least as up to date")
def rv_grant_up_to_date(cls: type[Replica]) -> None:
    for request, grant, why in [
            (VoteRequest(2, 3, 5, 1), False, "its last term 1 is older than mine (2), though its log is longer"),
            (VoteRequest(2, 3, 1, 2), False, "same last term 2 but its log is shorter (1 < 2)"),
            (VoteRequest(2, 3, 2, 2), True, "same last term and length"),
            (VoteRequest(2, 3, 1, 3), True, "its last term 3 is newer, though its log is shorter")]:
        f = fresh(cls, follower, [e(1, 1), e(2, 2)], term=2)
        f.replica.step(request)
        replies = f.cluster.messages(VoteResponse, to=2, remove=True)
        expect(len(replies) == 1, "RV-GRANT", f"expected one VoteResponse, got {replies}")
        expect(replies[0].vote_granted is grant, "RV-GRANT",
               f"my log ends at index 2, term 2; {'refused' if grant else 'granted'} a vote to {request} "
               f"({why}): the up-to-date check (§5.4.1) is wrong")


@check("A", "ALL-TERM", "a higher term in any request or response makes a leader or candidate follow")
def all_term(cls: type[Replica]) -> None:
    kinds = {"an AppendEntries request": append(7, 0, 0),
             "a VoteRequest": VoteRequest(2, 7, 0, 0),
             "an AppendEntries response": AppendEntryResponse(2, 7, False, 0, 1),
             "a VoteResponse": VoteResponse(2, 7, False),
             "an InstallSnapshot response": InstallSnapshotResponse(2, 7, 0)}
    for role in ("leader", "candidate"):
        for what, message in kinds.items():
            f = fresh(cls, journaled, [e(1, 1), e(2, 2)], term=2)  # (its storage journals each write)
            r = f.replica
            if role == "leader":
                elect(r)
            else:
                r.tick(r.next_deadline)
            start = len(f.journal)
            r.step(message)
            expect(r.role is Role.FOLLOWER and r.current_term == 7, "ALL-TERM",
                   f"a {role} of term 3 got {what} of term 7 and is now {r.role.value} of term {r.current_term}; "
                   f"it must become follower of term 7")
            writes = [x for x in f.journal[start:] if x[0] == "persist"]
            granted = [m for m in f.cluster.messages(VoteResponse, to=2) if m.vote_granted]  # (RV-GRANT's, below)
            expect(writes[:1] == [("persist", 7, None)] and f.storage.current_term == 7
                   and (granted or f.storage.voted_for is None), "ALL-TERM",
                   f"after {what} of term 7, storage holds term {f.storage.current_term}, vote "
                   f"{f.storage.voted_for} (the first write: {writes[:1]}): the new term and no vote must be persisted")
            expect(not granted, "RV-GRANT", f"a {role} of term 3 got {what} of term 7 and, a follower of term 7 "
                                            f"now, granted 2 its vote, though 2's log (empty) is behind its own "
                                            f"(last index 2, term 2)")


@check("A", "F-TIMEOUT, C-WIN", "scenario: a leader is elected within 2 s and stays", points=3, scenario=True)
def sim_first_election(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    leader = wait_leader(sim, "C-WIN")
    term = sim.replicas[leader].term
    sim.run(2.0)
    expect(sim.leader() == leader and sim.replicas[leader].term == term, "F-TIMEOUT",
           f"with no faults the leader of term {term} (node {leader}) should stay; now node {sim.leader()} leads "
           f"term {_term_of(sim, sim.leader())} (timers reset too rarely?)")


@check("A", "C-START, RV-GRANT, ALL-TERM", "scenario: a new leader after a crash; the old one follows",
       points=3, scenario=True)
def sim_reelection(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    old = wait_leader(sim, "C-WIN")
    sim.crash(old)
    new = wait_leader(sim, "C-START", among=[i for i in sim.ids if i != old])
    sim.restart(old)
    sim.run(1.0)
    view = sim.replicas[old]
    expect(view.role is Role.FOLLOWER and view.term >= sim.replicas[new].term, "ALL-TERM",
           f"the restarted old leader {old} is {view.role and view.role.value} of term {view.term}; it should "
           f"follow the leader "
           f"of term {sim.replicas[new].term}")


@check("A", "RV-GRANT", "scenario: a node that missed the commits cannot become leader", scenario=True)
def sim_lagging_candidate(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    sim.disconnect(4)
    wait_leader(sim, "C-WIN", among=[0, 1, 2, 3])
    for k in range(3):
        commit(sim, "L-COMMIT", put(k + 1), k=4)
    sim.run(1.0)
    sim.crash(wait_leader(sim, "C-WIN"))
    sim.connect(4)
    leader = wait_leader(sim, "C-WIN", timeout=3.0)
    expect(leader != 4, "RV-GRANT", "node 4, whose log is empty, was elected over nodes holding committed entries")


@check("A", "C-WIN", "scenario: four nodes split two and two: the two without the leader elect none",
       scenario=True)
def sim_even_split_election(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, n=4)
    leader = wait_leader(sim, "C-WIN")
    mate = (leader + 1) % 4
    others = [i for i in sim.ids if i not in (leader, mate)]
    sim.partition([leader, mate])
    sim.run_until(lambda s: any(s.replicas[i].role is Role.LEADER for i in others), 2.0)
    won = [i for i in others if sim.replicas[i].role is Role.LEADER]
    expect(not won, "C-WIN", f"nodes {others}, cut off from leader {leader} and node {mate}, elected node "
                             f"{won[0] if won else None} (term {_term_of(sim, won[0] if won else None)}) with at most "
                             f"two votes of four: half is not a majority, which is three")
    sim.heal()
    wait_leader(sim, "C-WIN", timeout=3.0)


# =============================================================================================
# Part B: log replication
# =============================================================================================
def reply(f: Fakes) -> AppendEntryResponse:
    replies = f.cluster.messages(AppendEntryResponse, remove=True)
    expect(len(replies) == 1, "F-RESPOND", f"expected one AppendEntries response, got {replies}")
    return replies[0]


@check("B", "AE-CHECK", "AppendEntries is refused unless the log matches at prev_log_index")
def ae_check(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 2)], term=2)
    r = f.replica
    for request, what in [(append(2, 4, 2, [e(5, 2)]), "prev_log_index 4 is beyond my log (last index 3)"),
                          (append(2, 3, 1, [e(4, 2)]), "my entry 3 has term 2, not prev_log_term 1")]:
        r.step(request)
        answer = reply(f)
        expect(not answer.success, "AE-CHECK", f"accepted an AppendEntries although {what}")
        expect(held(r) == [(1, 1), (2, 1), (3, 2)], "AE-CHECK", f"a refused request changed the log: {held(r)}")
    r.step(append(2, 3, 2, [e(4, 2)]))
    expect(reply(f).success, "AE-CHECK", "refused an AppendEntries whose prev entry (3, term 2) matches")
    r.step(append(2, 0, 0, [e(1, 1)]))
    expect(reply(f).success, "AE-CHECK", "refused an AppendEntries with prev_log_index 0 (always matches)")
    expect(held(r) == [(1, 1), (2, 1), (3, 2), (4, 2)], "AE-APPEND", f"log is {held(r)}")


@check("B", "AE-TRUNCATE", "a conflicting entry and all that follow it are deleted")
def ae_truncate_conflict(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 1)], term=1)
    r = f.replica
    r.step(append(2, 1, 1, [e(2, 2, "new")]))
    expect(held(r) == [(1, 1), (2, 2)], "AE-TRUNCATE",
           f"my log was [(1, t1), (2, t1), (3, t1)]; the leader of term 2 sent entry 2 of term 2 after (1, t1); "
           f"the log should be [(1, 1), (2, 2)] (index, term), it is {held(r)}")
    expect(reply(f).success, "AE-TRUNCATE", "the request was not acknowledged")
    expect(f.sm.states_of("i3t1") == [UNKNOWN], "AE-TRUNCATE",
           f"the deleted entry 3 was reported {f.sm.states_of('i3t1')}, not UNKNOWN: a later leader that holds "
           f"it may still commit it, so it is not abandoned")


@check("B", "AE-TRUNCATE", "a delayed, shorter request does not cut off matching entries")
def ae_truncate_keeps_matching(cls: type[Replica]) -> None:
    f = fresh(cls, follower, term=2)
    r = f.replica
    entries = [e(i, 2) for i in range(1, 5)]
    r.step(append(2, 0, 0, entries))
    reply(f)
    r.step(append(2, 0, 0, entries[:2]))  # the earlier request, delayed by the network
    expect(held(r) == [(i, 2) for i in range(1, 5)], "AE-TRUNCATE",
           f"after a delayed request carrying entries 1-2 (which match), the log is {held(r)}: entries 3-4, "
           f"already acknowledged to the leader, were deleted")
    answer = reply(f)
    expect(answer.success and answer.last_index == 2, "L-REPLICATE",
           f"the delayed request should be acknowledged up to index 2, got {answer}")


@check("B", "AE-APPEND, AE-TRUNCATE", "a duplicate request changes nothing: no entry deleted, none appended again",
       points=1)
def ae_append(cls: type[Replica]) -> None:
    # Both rules are one exercise's (truncate_conflicts deletes what conflicts and returns what is new): a
    # request whose entries are all present must make it do neither, so this check tests the two together.
    f = fresh(cls, journaled, term=1)
    r, journal = f.replica, f.journal
    r.step(append(1, 0, 0, [e(1, 1), e(2, 1)]))
    r.step(append(1, 2, 1, [e(3, 1)]))
    expect(held(r) == [(1, 1), (2, 1), (3, 1)], "AE-APPEND", f"log is {held(r)}")
    writes, seen = [x for x in journal if x[0] == "append"], len(f.events)
    r.step(append(1, 0, 0, [e(1, 1), e(2, 1), e(3, 1)]))
    deleted = [ev.details.get("first") for ev in f.events[seen:] if ev.kind == EventKind.TRUNCATED]
    expect(not deleted, "AE-TRUNCATE",
           f"a duplicate request (entries 1-3, each already in the log with the same term) deleted the log from "
           f"index {deleted[0] if deleted else None} on and wrote it again: an entry that matches is never deleted")
    expect([x for x in journal if x[0] == "append"] == writes, "AE-APPEND",
           "a duplicate request appended entries that were already present")
    expect(held(r) == [(1, 1), (2, 1), (3, 1)], "AE-APPEND", f"log is {held(r)} after a duplicate request")


@check("B", "AE-COMMIT", "the follower's commit index is min(leader's, last new entry) and never decreases")
def ae_commit(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 1)], term=1)
    r = f.replica
    r.step(append(2, 1, 1, [], commit=3))
    expect(r.commit_index == 1, "AE-COMMIT",
           f"a heartbeat of term 2 proved only entry 1 (prev_log_index 1, no entries) with leader_commit 3; my "
           f"entries 2-3 may differ from the leader's, so commit_index must be min(3, 1) = 1, it is {r.commit_index}")
    expect(f.sm.applied_ids == ["i1t1"], "AE-COMMIT", f"applied {f.sm.applied_ids}, expected only i1t1")
    r.step(append(2, 3, 1, [], commit=3))
    expect(r.commit_index == 3, "AE-COMMIT",
           f"a request proving entry 3 with leader_commit 3 left commit at {r.commit_index}")
    r.step(append(2, 1, 1, [], commit=1))
    expect(r.commit_index == 3, "AE-COMMIT", f"the commit index went back to {r.commit_index}")


@check("B", "L-REPLICATE", "an acknowledgement covers what the request proved, not the follower's log length",
       points=1, together="the rest of your part B code (the library builds the acknowledgement, from what your "
                          "follower's exercises, AE-CHECK, AE-TRUNCATE and AE-COMMIT, did with the request)")
def l_replicate_ack(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 1)], term=1)
    r = f.replica
    r.step(append(1, 1, 1, []))
    answer = reply(f)
    expect(answer.success and answer.last_index == 1, "L-REPLICATE",
           f"a heartbeat with prev_log_index 1 and no entries proves only index 1; it was acknowledged as {answer} "
           f"(the leader would set match_index from the follower's log length, 3, and commit what it lacks)")


@check("B", "L-REPLICATE", "a leader moves match_index only forward and ignores stale answers")
def l_replicate_responses(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 2)], term=2)
    r = f.replica
    elect(r)
    expect(r.next_index == {2: 4, 3: 4}, "FC-PROBE", f"next_index is {r.next_index}, expected 4: the probe carrying "
                                                      f"the no-op (index 4) is on its way, unanswered")
    f.cluster.take()
    r.step(refused(2, 3, 1, 2, prev=3))
    sent = f.cluster.messages(AppendEntryRequest, to=2, remove=True)
    prev = sent[0].prev_log_index if len(sent) == 1 else None  # 2: one step back (Figure 2); 1: to the hint
    expect(prev in (1, 2) and [x.index for x in sent[0].entries] == list(range(prev + 1, 5)),
           "L-REPLICATE", f"peer 2 refused the probe after index 3 (next_index 4) with hint 2: the leader should move "
                          f"next_index back one step, or straight to the hint, and resend from there (entries 3-4 "
                          f"after index 2, or 2-4 after index 1): {sent}")
    r.step(ok(2, 3, 4))
    expect(r.match_index[2] == 4 and r.commit_index == 4, "L-REPLICATE",
           f"after peer 2 acknowledged index 4: match_index {r.match_index}, commit_index {r.commit_index}")
    r.step(ok(2, 3, 2))
    expect(r.match_index[2] == 4, "L-REPLICATE", f"a late acknowledgement of index 2 moved match_index[2] back to "
                                                 f"{r.match_index[2]}: match_index never decreases")
    r.step(ok(3, 2, 4))
    expect(r.match_index[3] == 0, "ALL-STALE", f"an acknowledgement from term 2 (the leader is in term 3) set "
                                               f"match_index[3] to {r.match_index[3]}: stale responses are ignored")
    r.step(refused(2, 3, 1, 1, prev=1))
    expect(r.next_index[2] >= 5, "L-REPLICATE", f"a stale refusal moved next_index[2] to {r.next_index[2]}, below "
                                                "match_index + 1 = 5")


@check("B", "L-COMMIT", "a leader commits a current-term entry once a majority holds it (of five, of four)")
def l_commit_majority(cls: type[Replica]) -> None:
    f = fresh(cls, peers=(2, 3, 4, 5))
    r = f.replica
    elect(r, voters=(2, 3))
    term = r.current_term
    f.sm.pending = [Op("a", 1), Op("b", 2)]
    r.process_transitions()  # no-op 1, a 2, b 3
    r.step(ok(2, term, 3))
    expect(r.commit_index == 0, "L-COMMIT", f"committed {r.commit_index} with two of five holding it")
    r.step(ok(3, term, 2))
    expect(r.commit_index == 2, "L-COMMIT", f"three of five hold index 2 but commit_index is {r.commit_index}")
    r.step(ok(4, term, 3))
    expect(r.commit_index == 3 and f.sm.applied_ids == ["noop", "a", "b"], "L-COMMIT",
           f"three of five hold index 3: commit_index {r.commit_index}, applied {f.sm.applied_ids}")
    g = fresh(cls, peers=(2, 3, 4))  # an even cluster: half is not a majority
    r = g.replica
    elect(r, voters=(2, 3))
    term = r.current_term
    g.sm.pending = [Op("c", 1)]
    r.process_transitions()  # no-op 1, c 2
    r.step(ok(2, term, 2))
    expect(r.commit_index == 0, "L-COMMIT", f"in a cluster of four, committed {r.commit_index} with two of four "
                                            f"(the leader and 2) holding it: half is not a majority, which is three")
    r.step(ok(3, term, 2))
    expect(r.commit_index == 2, "L-COMMIT", f"three of four hold index 2 but commit_index is {r.commit_index}")


@check("B", "L-COMMIT", "an older-term entry is never committed by counting replicas (Figure 8)")
def l_commit_figure8(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1, "t1"), e(2, 2, "t2")], term=2)
    r = f.replica
    elect(r)
    r.MAX_ENTRIES_PER_MESSAGE = 1  # the old entries travel first, one per request
    r.step(refused(2, 3, 1, 2))
    f.cluster.take()
    r.step(ok(2, 3, 2))
    expect(r.commit_index == 0, "L-COMMIT",
           f"a majority (leader and peer 2) holds entry 2 of term 2 but the leader is in term 3: it must not be "
           f"committed by counting replicas (Figure 8); commit_index is {r.commit_index}")
    r.step(ok(2, 3, 3))
    expect(r.commit_index == 3, "L-COMMIT", f"once the term-3 no-op (index 3) is on a majority, entries up to 3 "
                                            f"commit; commit_index is {r.commit_index}")


@check("B", "L-REPLICATE, AE-APPEND, L-COMMIT", "scenario: five writes reach every node", points=3, scenario=True)
def sim_agreement(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    wait_leader(sim, "C-WIN")
    for k in range(5):
        commit(sim, "L-REPLICATE", put(k + 1), k=5)
    datas = [dict(r.machine.data) for r in sim.replicas]
    expect(all(d == datas[0] for d in datas) and len(datas[0]) == 5, "ALL-APPLY", f"the nodes disagree: {datas}")


@check("B", "AE-CHECK, AE-TRUNCATE, AE-COMMIT", "scenario: a deposed leader's uncommitted entries are replaced",
       points=3, scenario=True)
def sim_rejoin(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    old = wait_leader(sim, "C-WIN")
    commit(sim, "L-REPLICATE", put(1))
    sim.partition([old, (old + 1) % 5])
    sim.submit(KVStore.put(2, 1, "minority", "lost"), to=old)
    sim.run(0.1)
    wait_leader(sim, "C-WIN", among=[i for i in sim.ids if i not in (old, (old + 1) % 5)], timeout=3.0)
    commit(sim, "L-REPLICATE", KVStore.put(3, 1, "majority", "kept"))
    sim.heal()
    sim.run(1.5)
    logs = {tuple((x.index, x.term) for x in r.log) for r in sim.replicas}
    expect(len(logs) == 1, "AE-TRUNCATE", f"after the heal the logs still differ: {sorted(logs)}")
    datas = [dict(r.machine.data) for r in sim.replicas]
    expect(all("minority" not in d and d.get("majority") == "kept" for d in datas), "AE-TRUNCATE",
           f"the state machines: {datas}")


@check("B", "L-REPLICATE, L-COMMIT", "scenario: a lossy network with leader crashes still commits",
       points=3, scenario=True)
def sim_unreliable(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, network=NetworkModel(latency=(0.002, 0.04), drop=0.1, duplicate=0.1))
    rng = random.Random(f"grading/{seed}")
    down: int | None = None
    for k in range(12):
        sim.submit(put(k + 1))
        sim.run(0.3)
        if k % 4 == 3:
            if down is not None:
                sim.restart(down)
            leader = sim.leader()
            down = leader if leader is not None else rng.randrange(5)
            sim.crash(down)
    sim.heal()
    sim.network.drop = sim.network.duplicate = 0.0
    if down is not None:
        sim.restart(down)
    commit(sim, "L-REPLICATE", KVStore.put(99, 1, "final", "x"), k=5)


@check("B", "L-COMMIT", "scenario: four nodes split two and two: the leader with one follower commits nothing",
       scenario=True)
def sim_even_split_commit(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, n=4)
    leader = wait_leader(sim, "C-WIN")
    commit(sim, "L-REPLICATE", put(1), k=4)
    mate = (leader + 1) % 4
    sim.partition([leader, mate])
    index = sim.replicas[leader].commit_index
    sim.submit(KVStore.put(2, 1, "split", "x"), to=leader)
    sim.run(1.0)
    expect(sim.replicas[leader].commit_index == index, "L-COMMIT",
           f"leader {leader}, cut off with node {mate} from the other two of four, committed up to "
           f"{sim.replicas[leader].commit_index} (from {index}): two of four is half, not a majority, which is three")
    sim.heal()
    commit(sim, "L-REPLICATE", put(3), k=4)


# =============================================================================================
# Part C: persistence
# =============================================================================================
def before(journal: list, record: tuple, rule: str, what: str) -> None:
    """`record` is in the journal before the first send."""
    sends = [k for k, x in enumerate(journal) if x[0] == "send"]
    expect(record in journal, rule, f"{what} was never written to stable storage (journal: {journal[:6]})")
    expect(not sends or journal.index(record) < sends[0], rule,
           f"{what} was written to stable storage only after a message was sent (journal: {journal[:6]}): a "
           f"crash in between loses it")


@check("C", "C-START", "term and self-vote are durable before the VoteRequests go out", points=1)
def persist_c_start(cls: type[Replica]) -> None:
    f = fresh(cls, journaled)
    journal = f.journal
    f.replica.tick(f.replica.next_deadline)
    before(journal, ("persist", 1, ME), "C-START", "the candidate's term 1 and vote for itself")


@check("C", "RV-GRANT", "a granted vote is persisted before the answer is sent")
def persist_vote(cls: type[Replica]) -> None:
    f = fresh(cls, journaled, term=1)
    journal = f.journal
    f.replica.step(VoteRequest(2, 1, 0, 0))
    before(journal, ("persist", 1, 2), "RV-GRANT", "the vote for 2 in term 1")
    again = fresh(cls, storage=f.storage)  # restarted on the same storage: the vote is remembered
    again.replica.step(VoteRequest(3, 1, 0, 0))
    answers = again.cluster.messages(VoteResponse, remove=True)
    expect(answers and not answers[0].vote_granted, "RV-GRANT",
           "after a restart the replica voted again in term 1 (for 3, having voted for 2): two leaders")


@check("C", "ALL-TERM", "a higher term is persisted (with no vote) before answering", points=1)
def persist_term(cls: type[Replica]) -> None:
    f = fresh(cls, journaled, [e(1, 1), e(2, 2)], term=2)
    journal = f.journal
    f.replica.step(VoteRequest(2, 5, 0, 0))
    before(journal, ("persist", 5, None), "ALL-TERM", "term 5 with no vote")


@check("C", "L-APPEND, AE-APPEND", "entries are durable before they are acknowledged or replicated")
def persist_entries_first(cls: type[Replica]) -> None:
    f = fresh(cls, journaled, term=1)
    journal = f.journal
    f.replica.step(append(1, 0, 0, [e(1, 1), e(2, 1)]))
    before(journal, ("append", ((1, 1), (2, 1))), "AE-APPEND", "entries 1-2 from the leader")
    expect(held(f.replica) == [(1, 1), (2, 1)], "AE-APPEND", f"log is {held(f.replica)}")
    g = fresh(cls, journaled)
    journal = g.journal
    elect(g.replica)
    journal.clear()
    g.sm.pending = [Op("a", 1)]
    g.replica.process_transitions()
    before(journal, ("append", ((2, 1),)), "L-APPEND", "the leader's new entry 2")


@check("C", "restart", "a restarted replica resumes from storage and from the snapshot")
def recover_from_storage(cls: type[Replica]) -> None:
    storage = MemoryStorage()
    storage.set_term_and_vote(3, 2)
    snapshot = Snapshot(5, 1, (15, (Op("s", 15),)))
    storage.save_snapshot(snapshot)
    storage.append([e(6, 1), e(7, 3)])
    f = fresh(cls, storage=storage)
    r = f.replica
    expect((r.current_term, r.voted_for, r.log.last_index) == (3, 2, 7), "restart",
           f"term, vote and last index are {(r.current_term, r.voted_for, r.log.last_index)}, expected (3, 2, 7)")
    expect((r.commit_index, r.last_applied) == (5, 5), "restart",
           f"commit_index and last_applied start at {(r.commit_index, r.last_applied)}: the snapshot's index 5 is "
           f"known committed, the entries after it are not (yet)")
    expect(f.sm.snapshots_set == [snapshot] and f.sm.total == 15, "IS-LOAD",
           f"the state machine was not started from the stored snapshot: {f.sm.snapshots_set}")
    sm = RecordingStateMachine(own_snapshot=Snapshot(4, 1, (10, (Op("a", 10),))))
    g = fresh(cls, follower, log_of([1] * 6), term=1, sm=sm)
    expect(g.replica.log.base_index == 4 and g.replica.last_applied == 4, "restart",
           f"the state machine's own snapshot at index 4 is newer than storage's: the log's base is "
           f"{g.replica.log.base_index} and last_applied {g.replica.last_applied}, expected 4 and 4")


@check("C", "restart", "scenario: every node crashes and restarts; nothing committed is lost",
       points=3, scenario=True)
def sim_restart_all(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    wait_leader(sim, "C-WIN")
    for k in range(3):
        commit(sim, "L-REPLICATE", put(k + 1), k=5)
    for node in sim.ids:
        sim.crash(node)
    for node in sim.ids:
        sim.restart(node)
    wait_leader(sim, "C-WIN", timeout=3.0)
    commit(sim, "L-REPLICATE", put(9), k=5)
    sim.run(0.5)
    for r in sim.replicas:
        expect(all(f"k{k}" in r.machine.data for k in (1, 2, 3, 9)), "restart",
               f"node {r.id} lost committed writes after the restart: {dict(r.machine.data)}")


@check("C", "RV-GRANT, restart", "scenario: crashes and restarts during elections", points=2, scenario=True)
def sim_crash_restart(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, election_timeout=(0.15, 0.16))
    rng = random.Random(f"grading/{seed}")
    for k in range(20):
        node = rng.randrange(5)
        sim.crash(node)
        sim.run(rng.uniform(0.0, 0.05))
        sim.restart(node)
        if k % 5 == 0:
            sim.submit(put(k + 1))
        sim.run(rng.uniform(0.05, 0.2))
    commit(sim, "L-REPLICATE", KVStore.put(99, 1, "final", "x"), k=5)


# =============================================================================================
# Part D: snapshots
# =============================================================================================
@check("D", "SNAP-TAKE", "a snapshot every snapshot_delta applied entries, with the last applied index and term")
def snap_take(cls: type[Replica]) -> None:
    entries = log_of([1, 1, 1, 1, 1, 1, 2])
    f = fresh(cls, follower, term=2, snapshot_delta=3)
    r = f.replica

    def created() -> list[tuple[int, int]]:  # (index, term) of each create_snapshot call
        return [(index, term) for index, term, _ in f.sm.created]

    r.step(append(2, 0, 0, entries, commit=2))
    expect(created() == [] and r.log.base_index == 0, "SNAP-TAKE",
           f"a snapshot after 2 applied entries (delta 3): {created()}")
    r.step(append(2, 7, 2, [], commit=4))
    expect(created() == [(4, 1)] and r.log.base_index == 4, "SNAP-TAKE",
           f"after 4 applied entries (delta 3) expected one snapshot at (index 4, term 1); created {created()}, "
           f"log base {r.log.base_index}")
    r.step(append(2, 7, 2, [], commit=6))
    expect(created() == [(4, 1)], "SNAP-TAKE", f"only 2 entries applied since the last snapshot: {created()}")
    r.step(append(2, 7, 2, [], commit=7))
    expect(created() == [(4, 1), (7, 2)] and r.log.base_index == 7, "SNAP-TAKE",
           f"expected a snapshot at (7, term 2): {created()}, log base {r.log.base_index}")


def install(f: Fakes, index: int, term: int, data: object, leader_term: int) -> None:
    f.replica.step(InstallSnapshotRequest(2, leader_term, index, term, 0, data, True))


@check("D", "IS-KEEP", "entries after a matching snapshot are kept; otherwise the whole log goes")
def is_keep(cls: type[Replica]) -> None:
    f = fresh(cls, follower, log_of([1] * 5), term=1)
    install(f, 3, 1, (6, (Op("i1t1", 1), Op("i2t1", 2), Op("i3t1", 3))), 1)
    expect(f.replica.log.base_index == 3 and held(f.replica) == [(4, 1), (5, 1)], "IS-KEEP",
           f"my log held entry 3 of term 1 like the snapshot: entries 4-5 must be kept; base "
           f"{f.replica.log.base_index}, log {held(f.replica)}")
    g = fresh(cls, follower, [e(1, 1), e(2, 1), e(3, 2), e(4, 2)], term=3)
    install(g, 3, 3, (6, (Op("a", 1), Op("b", 2), Op("c", 3))), 3)
    expect(g.replica.log.base_index == 3 and held(g.replica) == [], "IS-KEEP",
           f"my entry 3 has term 2, the snapshot's term 3: the whole log must go; log {held(g.replica)}")
    expect(f.sm.states_of("i3t1") == [APPLIED] and g.sm.states_of("i3t2") == [UNKNOWN]
           and g.sm.states_of("i4t2") == [ABANDONED], "IS-KEEP",
           f"unapplied entries removed by a snapshot: reported {f.sm.states_of('i3t1')} when the log matched "
           f"(expected APPLIED); when it did not, {g.sm.states_of('i3t2')} for the older-term entry the snapshot "
           f"covers (expected UNKNOWN: it may or may not be in it) and {g.sm.states_of('i4t2')} for the entry "
           f"after it (expected ABANDONED_CONFLICT_WITH_LEADER: it can never commit)")


@check("D", "IS-LOAD", "the state machine is reset from the snapshot; the term never goes back")
def is_load(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1)], term=5)
    snapshot_data = (10, (Op("a", 1), Op("b", 2), Op("c", 3), Op("d", 4)))
    install(f, 4, 1, snapshot_data, 5)
    r = f.replica
    expect(r.current_term == 5 and f.storage.current_term == 5, "IS-LOAD",
           f"after installing a snapshot whose last term is 1, the term is {r.current_term} (was 5): the term "
           f"never goes back because of a snapshot")
    expect(f.sm.total == 10 and f.sm.snapshots_set and f.sm.snapshots_set[-1].data == snapshot_data, "IS-LOAD",
           f"the state machine was not reset from the snapshot: total {f.sm.total}")
    expect((r.commit_index, r.last_applied) == (4, 4), "IS-LOAD",
           f"commit_index, last_applied are {(r.commit_index, r.last_applied)}, expected at least 4")
    answers = f.cluster.messages(InstallSnapshotResponse, remove=True)
    expect(answers and answers[-1].last_included_index == 4, "IS-LOAD", f"the snapshot was not acknowledged: {answers}")
    r.step(append(5, 4, 1, [e(5, 5)], commit=5))
    expect(reply(f).success and r.commit_index == 5, "AE-CHECK", "the log does not continue after the snapshot")


@check("D", "SNAP-TAKE, IS-KEEP, IS-LOAD", "scenario: a lagging node catches up by InstallSnapshot",
       points=3, scenario=True)
def sim_catch_up(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, snapshot_delta=3)
    sim.disconnect(4)
    wait_leader(sim, "C-WIN", among=[0, 1, 2, 3])
    for k in range(7):
        commit(sim, "L-REPLICATE", put(k + 1), k=4)
    expect(any(r.snapshot_index > 0 for r in sim.replicas[:4]), "SNAP-TAKE", "no node took a snapshot")
    sim.connect(4)
    sim.run_until(lambda s: len(s.replicas[4].machine.data) == 7, 3.0)
    expect(len(sim.replicas[4].machine.data) == 7, "IS-LOAD",
           f"node 4 did not catch up within 3 s: {dict(sim.replicas[4].machine.data)}")
    expect(sim.trace.of_kind(EventKind.SNAPSHOT_INSTALLED), "IS-LOAD", "node 4 caught up without installing a snapshot")


@check("D", "SNAP-TAKE, restart", "scenario: nodes restart from their snapshots", points=2, scenario=True)
def sim_restart_from_snapshot(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, snapshot_delta=3)
    wait_leader(sim, "C-WIN")
    for k in range(7):
        commit(sim, "L-REPLICATE", put(k + 1), k=5)
    for node in sim.ids:
        sim.crash(node)
        sim.restart(node)
    commit(sim, "L-REPLICATE", put(9), k=5)
    sim.run(0.5)
    for r in sim.replicas:
        expect(len(r.machine.data) == 8, "SNAP-TAKE", f"node {r.id} holds {dict(r.machine.data)} after restarting")


# =============================================================================================
# Scenario transcripts (raftlab/sim/transcripts/), replayed with the graded class
# =============================================================================================
def transcript_check(part: str, rule: str, name: str, points: int = 2) -> None:
    """Register a check that replays the bundled transcript `name` with the graded class: it passes when
    every ``check`` of the transcript holds (outputs may differ: a student's explanations are their own)."""
    def replay_transcript(cls: type[Replica], seed: object = None) -> None:
        failure: BaseException | None = None
        try:
            result = run_transcript(name, replica_class=cls, simulation_class=GradedSimulation)
        except TranscriptError as error:  # the replica raised, or an invariant broke: report that
            failure = error.__cause__ or error
        if failure is not None:
            raise failure  # outside the handler, so that its own chain of causes is kept as it is
        for block in result.failures:
            why = next(line for line in block.actual.splitlines() if line.startswith("FAIL"))
            raise CheckFailed(f"{rule}: transcript {name}.txt, line {block.command.line}, "
                              f"`{block.command.text}`: {why.removeprefix('FAIL: ')}")

    title = f"transcript {name}: {Transcript.load(TRANSCRIPTS[name]).title}"
    together = (f"the rest of your part {part} code (a transcript replays one exact schedule, and every rule "
                f"that sends a message or draws a timeout shapes it)")
    CHECKS.append(Check(f"{part}.t_{name}", part, rule, title, points, replay_transcript, True, name, together))


transcript_check("A", "C-RETRY, F-TIMEOUT", "split_vote")  # (the election timers decide who wins the retry)
transcript_check("A", "RV-GRANT", "stale_node_cannot_lead")
transcript_check("B", "AE-CHECK, AE-TRUNCATE, AE-COMMIT", "figure7")  # (followers whose logs differ)
transcript_check("B", "L-COMMIT", "figure8")
transcript_check("B", "AE-TRUNCATE, AE-COMMIT", "deposed_leader")
transcript_check("C", "RV-GRANT, restart", "restart_keeps_vote")
transcript_check("C", "restart", "all_crash_restart")
transcript_check("D", "SNAP-TAKE, IS-KEEP, IS-LOAD", "snapshot_install")


# =============================================================================================
# Part E: beyond Figure 2 (Ongaro's thesis): PreVote, CheckQuorum, leadership transfer, reads
# =============================================================================================
# These checks turn on the `Replica` options (off by default: the course's parts A-D are Figure 2) and
# grade the mechanisms the core builds on the Figure 2 rules. Part E has no exercise of its own, so it
# runs the graded class whole: each option is only as sound as the election, replication and
# persistence beneath it. The planted bugs of raftlab.grading.mutants that break PV-GRANT, RI-LEASE,
# LT-STOP and RI-CURRENT are caught here.
def pre_vote_answer(f: Fakes, to: int) -> PreVoteResponse:
    answers = f.cluster.messages(PreVoteResponse, to=to, remove=True)
    expect(len(answers) == 1, "PV-GRANT", f"expected one PreVoteResponse to {to}, got {answers}")
    return answers[0]


@check("E", "PV-GRANT, F-TIMEOUT", "a pre-vote request changes nothing at its receiver: no term, no vote, no timer")
def pv_grant_changes_nothing(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 2)], term=2, voted_for=3, pre_vote=True)
    r = f.replica
    deadline = r.next_deadline
    r.tick((LOW + deadline) / 2)  # a (re)started server refuses for a minimum election timeout; then it may grant
    for request, grant, why in [(PreVoteRequest(3, 3, 2, 2), True, "for term 3, from a log as up to date as mine"),
                                (PreVoteRequest(3, 5, 1, 1), False, "for term 5, from a log behind mine")]:
        r.step(request)
        answer = pre_vote_answer(f, 3)
        expect(answer.vote_granted is grant, "PV-GRANT",
               f"{'refused' if grant else 'granted'} a pre-vote {why} (I hear from no leader; my log ends at index "
               f"2, term 2): {answer}")
        expect(answer.term == (request.term if grant else 2), "PV-GRANT",
               f"a pre-vote {'granted' if grant else 'refused'} must carry "
               f"{'the request term' if grant else 'my own term'} ({request.term if grant else 2}), it carries "
               f"{answer.term} (a grant with the voter's lower term is not counted: etcd-io/etcd#8243)")
        state = (r.current_term, r.voted_for, f.storage.current_term, f.storage.voted_for)
        expect(state == (2, 3, 2, 3), "PV-GRANT",
               f"a pre-vote request {why} changed my term and vote from (2, 3) to ({r.current_term}, {r.voted_for}) "
               f"(storage: ({f.storage.current_term}, {f.storage.voted_for})): a pre-vote is exempt from ALL-TERM, "
               f"nobody has started an election, and a server cut off would still depose the leader")
        expect(r.role is Role.FOLLOWER, "PV-GRANT", f"a pre-vote request {why} made me {r.role.value}")
        expect(r.next_deadline == deadline, "F-TIMEOUT",
               f"a pre-vote request {why} moved my election deadline from {deadline:.4f} to {r.next_deadline:.4f}: "
               f"only the current leader or a granted (real) vote resets it, a pre-vote changes nothing")
    g = fresh(cls, follower, [e(1, 1)], term=1, pre_vote=True)
    elect(g.replica)
    term = g.replica.current_term
    g.cluster.take()
    g.replica.step(PreVoteRequest(3, term + 4, 9, term))
    answer = pre_vote_answer(g, 3)
    expect(g.replica.role is Role.LEADER and g.replica.current_term == term, "PV-GRANT",
           f"a leader of term {term} got a PreVoteRequest for term {term + 4} and is now {g.replica.role.value} of "
           f"term {g.replica.current_term}: a pre-vote request must not depose anyone")
    expect(not answer.vote_granted and answer.term == term, "PV-GRANT",
           f"a leader must refuse a pre-vote (with its own term {term}): it answered {answer}")


@check("E", "PV-ASK, PV-GRANT", "scenario: with PreVote, a follower that hears no leader cannot depose it",
       points=3, scenario=True)
def sim_pv_no_disruption(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, pre_vote=True)
    leader = wait_leader(sim, "PV-WIN")
    term = sim.replicas[leader].term
    cut = (leader + 1) % 5
    sim.cut(leader, cut)  # the follower hears nothing from the leader, the others hear it
    sim.run(1.0)
    expect(sim.leader() == leader and sim.replicas[leader].term == term, "PV-GRANT",
           f"node {cut} heard nothing from the leader {leader} for 1 s while every other node did: it may ask "
           f"for pre-votes, but they must be refused and change nobody's term; now node {sim.leader()} leads term "
           f"{_term_of(sim, sim.leader())} (was node {leader}, term {term})")
    expect(sim.replicas[cut].term == term, "PV-ASK",
           f"node {cut}, cut off from the leader, moved from term {term} to {sim.replicas[cut].term}: a pre-vote "
           f"that fails leaves the asker's term as it was")
    sim.uncut(leader, cut)
    sim.disconnect(cut)
    sim.run(1.0)
    sim.connect(cut)
    sim.run(1.0)
    expect(sim.leader() == leader and sim.replicas[leader].term == term, "PV-GRANT",
           f"node {cut} rejoined after 1 s away and the leadership changed: node {sim.leader()} leads term "
           f"{_term_of(sim, sim.leader())} (was node {leader}, term {term})")
    commit(sim, "L-REPLICATE", put(1), k=5)


@check("E", "CQ-STEPDOWN, CQ-STICKY", "with CheckQuorum a leader that hears no majority steps down, and a "
       "server that hears its leader ignores VoteRequests")
def cq_stepdown_and_sticky(cls: type[Replica]) -> None:
    f = fresh(cls, check_quorum=True)
    r = f.replica
    start = elect(r)
    term, now = r.current_term, start
    while r.role is Role.LEADER and now < start + 3 * HIGH:
        now = r.next_deadline
        r.tick(now)
    expect(r.role is Role.FOLLOWER and start + LOW <= now <= start + LOW + 2 * HEARTBEAT, "CQ-STEPDOWN",
           f"a leader elected at t={start:.3f} that heard from no follower since is {r.role.value} at "
           f"t={now:.3f}: it must step down at the first heartbeat {LOW} s (the minimum election timeout) on")
    expect((r.current_term, r.voted_for) == (term, ME), "CQ-STEPDOWN",
           f"stepping down changed the term and vote to ({r.current_term}, {r.voted_for}): it stays in term {term}")
    g = fresh(cls, check_quorum=True)
    r = g.replica
    start = elect(r)
    now = start
    while now < start + 4 * HIGH:
        now = r.next_deadline
        r.tick(now)
        for m in g.cluster.messages(AppendEntryRequest, to=2, remove=True):
            r.step(ok(2, m.term, m.prev_log_index + len(m.entries), m.prev_log_index, round=m.round))
        g.cluster.take()
    expect(r.role is Role.LEADER, "CQ-STEPDOWN", f"a leader answered by a majority every heartbeat is "
                                                 f"{r.role.value} at t={now:.3f}: it must stay")
    h = fresh(cls, follower, term=1, check_quorum=True)
    r = h.replica
    r.tick(0.1)
    r.step(append(1))
    h.cluster.take()
    r.tick(0.1 + LOW - 0.01)
    r.step(VoteRequest(3, 5, 0, 0))
    expect((r.current_term, r.voted_for) == (1, None) and not h.cluster.messages(VoteResponse), "CQ-STICKY",
           f"a follower that heard its leader {LOW - 0.01:.2f} s ago took a VoteRequest of term 5: term "
           f"{r.current_term}, vote {r.voted_for}, answers {h.cluster.messages(VoteResponse)}; it must ignore it")
    r.step(VoteRequest(3, 5, 0, 0, transfer=True))
    expect((r.current_term, r.voted_for) == (5, 3), "CQ-STICKY",
           f"a leadership transfer's VoteRequest (transfer=True) is exempt, but term and vote are "
           f"({r.current_term}, {r.voted_for}), not (5, 3)")


@check("E", "LT-STOP, LT-TIMEOUTNOW, LT-ABORT", "a transferring leader takes no new transitions; TimeoutNow once "
       "the target is up to date; the transfer ends after an election timeout")
def lt_stop(cls: type[Replica]) -> None:
    f = fresh(cls)
    r = f.replica
    start = elect(r)
    term = r.current_term
    r.step(ok(2, term, 1, 0))  # the no-op commits; peer 3 has not answered yet
    f.cluster.take()
    r.transfer_leadership(3)
    expect(not f.cluster.messages(TimeoutNow), "LT-TIMEOUTNOW",
           f"TimeoutNow went to peer 3 before it holds the leader's log: {f.cluster.messages(TimeoutNow)}")
    for name in ("late", "later"):
        f.sm.pending = [Op(name, 1)]
        r.process_transitions()
        expect(f.sm.state_of(name) is TransitionState.ABANDONED_NOT_LEADER and r.log.last_index == 1, "LT-STOP",
               f"a transition offered during a leadership transfer was {f.sm.state_of(name)} (log ends at "
               f"{r.log.last_index}); it must be abandoned as not-leader, so that the client asks the new leader")
        if name == "late":
            r.step(ok(3, term, 1, 0))  # the target catches up
            expect(f.cluster.messages(TimeoutNow, to=3) == [TimeoutNow(ME, term)], "LT-TIMEOUTNOW",
                   f"peer 3 now holds the whole log: expected TimeoutNow(term {term}) to it, sent "
                   f"{f.cluster.messages(TimeoutNow)}")
    now = r.now()
    while now < start + HIGH + HEARTBEAT:
        now = r.next_deadline
        r.tick(now)
    f.sm.pending = [Op("after", 1)]
    r.process_transitions()
    expect(r.role is Role.LEADER and f.sm.state_of("after") is TransitionState.QUEUED, "LT-ABORT",
           f"the transfer began at t={start:.3f} and the target never won; at t={now:.3f}, past an election "
           f"timeout, the leader is {r.role.value} and a new transition was {f.sm.state_of('after')}: the transfer "
           f"must have been aborted, and transitions taken again")


@check("E", "LT-STOP, LT-CATCHUP, LT-TIMEOUTNOW", "scenario: a leadership transfer hands over within an election "
       "timeout; nothing acknowledged is lost", points=3, scenario=True)
def sim_transfer(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed, pre_vote=True, check_quorum=True)
    old = wait_leader(sim, "C-WIN")
    for k in range(3):
        commit(sim, "L-REPLICATE", put(k + 1), k=5)
    to = (old + 2) % 5
    began = sim.now
    sim.transfer_leadership(to)
    late = sim.submit(put(50), to=old)
    expect(late.state is TransitionState.ABANDONED_NOT_LEADER, "LT-STOP",
           f"a write offered to the leader {old} while it hands over to node {to} is {late.state}: it must be "
           f"abandoned as not-leader (the client retries at the new leader)")
    sim.run_until(lambda s: s.leader() == to, sim.election_timeout[1])
    expect(sim.leader() == to, "LT-TIMEOUTNOW",
           f"node {to} does not lead within an election timeout ({sim.election_timeout[1]} s) of the transfer at "
           f"t={began:.3f}: the leader is {sim.leader()}")
    commit(sim, "L-REPLICATE", put(60), k=5)
    for r in sim.replicas:
        expect(all(f"k{k}" in r.machine.data for k in (1, 2, 3, 60)), "LT-CATCHUP",
               f"node {r.id} lost acknowledged writes across the transfer: {dict(r.machine.data)}")


@check("E", "RI-CURRENT", "a new leader gives no read index before an entry of its own term commits")
def ri_current(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 2)], term=2)
    r = f.replica
    elect(r)
    term = r.current_term
    f.cluster.take()
    r.read("r1")
    r.step(ReadIndexRequest(3, term, 7))
    beats = [m for m in f.cluster.messages(AppendEntryRequest, to=2, remove=True) if not m.entries]
    expect(beats, "RI-CONFIRM", "a read did not start a heartbeat round to confirm the leadership")
    r.step(ok(2, term, beats[-1].prev_log_index, beats[-1].prev_log_index, round=beats[-1].round))
    answers = f.cluster.messages(ReadIndexResponse, remove=True)
    expect(f.sm.read_state_of("r1") is None and not answers, "RI-CURRENT",
           f"the leader of term {term}, whose no-op (index 3) has not committed, answered reads once a majority "
           f"confirmed its round: its own read {f.sm.read_state_of('r1')}, peer 3's {answers}; its commit index "
           f"{r.commit_index} may lag entries 1-2, which the leader of term 2 may have committed, so no read index "
           f"is known before an entry of term {term} commits")
    r.step(ok(2, term, 3, 2, round=beats[-1].round))  # the no-op commits
    expect(r.commit_index == 3, "L-COMMIT", f"a majority holds the no-op (index 3) but commit_index is "
                                            f"{r.commit_index}")
    expect(f.sm.read_state_of("r1") is ReadState.READY, "RI-SERVE",
           f"once the no-op committed and was applied the read waiting since before is "
           f"{f.sm.read_state_of('r1')}, not READY")
    answers = f.cluster.messages(ReadIndexResponse, to=3)
    expect(answers == [ReadIndexResponse(ME, term, 7, True, 3)], "RI-SERVE",
           f"peer 3's read should get the read index 3 now; sent {answers}")


@check("E", "RI-LEASE", "a lease read only within a lease that a majority granted (CheckQuorum), then by a round")
def ri_lease(cls: type[Replica]) -> None:
    f = fresh(cls, check_quorum=True, read_lease=True)
    r = f.replica
    start = elect(r)
    term = r.current_term
    first = f.cluster.messages(AppendEntryRequest, to=2, remove=True)
    expect(first, "C-WIN", "a new leader sent no AppendEntries to peer 2")
    r.step(ok(2, term, 1, 0, round=first[-1].round))  # the no-op commits; the election's round is acknowledged
    f.cluster.take()
    r.read("r1")
    expect(f.sm.read_state_of("r1") is ReadState.READY and not f.cluster.messages(AppendEntryRequest), "RI-LEASE",
           f"a majority acknowledged the leader at t={start:.3f}, and a read at that time is "
           f"{f.sm.read_state_of('r1')} (AppendEntries sent: {len(f.cluster.messages(AppendEntryRequest))}): "
           f"within the lease it is answered at once, without a round")
    for _ in range(2):  # two heartbeats that nobody answers: they may never have arrived
        expect(r.next_deadline < start + LOW, "L-HEARTBEAT", f"the leader's next heartbeat is at "
                                                             f"{r.next_deadline:.3f}, not every {HEARTBEAT} s")
        r.tick(r.next_deadline)
    later = start + 0.95 * LOW  # past the lease (LOW / drift_bound), before CQ-STEPDOWN
    r.tick(later)
    f.cluster.take()
    r.read("r2")
    beats = f.cluster.messages(AppendEntryRequest, to=2, remove=True)
    expect(f.sm.read_state_of("r2") is None, "RI-LEASE",
           f"no majority has acknowledged the leader since t={start:.3f}; its lease ran out at "
           f"t={start + LOW / r.drift_bound:.3f} (minimum election timeout / drift bound), yet a read at "
           f"t={later:.3f} was answered at once ({f.sm.read_state_of('r2')}): the heartbeats it sent since prove "
           f"nothing until answered (a leader cut off from its followers would serve stale reads)")
    expect(beats, "RI-CONFIRM", "out of its lease, a read must start a heartbeat round; none was sent")
    r.step(ok(2, term, 1, beats[-1].prev_log_index, round=beats[-1].round))
    expect(f.sm.read_state_of("r2") is ReadState.READY, "RI-CONFIRM",
           f"a majority acknowledged the read's round, but the read is {f.sm.read_state_of('r2')}, not READY")


@check("E", "RI-CONFIRM, RI-SERVE", "scenario: a leader cut off in a minority serves no stale read",
       points=3, scenario=True)
def sim_stale_read(cls: type[Replica], seed: int) -> None:
    sim = simulation(cls, seed)
    old = wait_leader(sim, "C-WIN")
    commit(sim, "L-REPLICATE", KVStore.put(1, 1, "x", "1"), k=5)
    sim.partition([old, (old + 1) % 5])
    new = wait_leader(sim, "C-WIN", among=[i for i in sim.ids if i not in (old, (old + 1) % 5)], timeout=3.0)
    commit(sim, "L-REPLICATE", KVStore.put(2, 1, "x", "2"))
    stale, current = sim.read("x", to=old), sim.read("x", to=new)
    sim.run(1.0)
    expect(stale.state is not ReadState.READY, "RI-CONFIRM",
           f"node {old}, a leader cut off in a minority, answered a read of x with {stale.value!r} after the "
           f"majority's leader {new} committed x = '2': a read is answered only once a majority confirmed the "
           f"leadership after it arrived")
    expect(current.state is ReadState.READY and current.value == "2", "RI-SERVE",
           f"a read of x at the leader {new} is {current.state} with value {current.value!r}, expected READY, '2'")
    sim.heal()
    sim.run(1.0)
    again = sim.read("x", to=old)
    sim.run(0.5)
    expect(again.state is ReadState.READY and again.value == "2", "RI-SERVE",
           f"after the heal, a read of x at node {old} (a follower now: it asks the leader for a read index) is "
           f"{again.state} with value {again.value!r}, expected READY, '2'")


# =============================================================================================
# Part F: membership change, one server at a time (Ongaro's thesis, chapter 4, with its erratum)
# =============================================================================================
# A `Configuration` is a transition: offered to the leader it is appended as an entry of its own if it
# changes one server (MC-ONE), used by every server from the moment it is appended (MC-LATEST), and
# reported QUEUED, then APPLIED (never given to the state machine), or ABANDONED_REFUSED. Part F has no
# exercise of its own: like part E it runs the graded class whole, since majorities, votes and commits
# all change with the configuration. The planted bugs that break MC-ONE (the erratum), MC-LEARNER
# and MC-STEPDOWN are caught here.
def state(f: Fakes, config: Configuration) -> TransitionState | None:
    """The last state reported for `config` (a transition like any other)."""
    return f.sm.state_of(config.get_id())


def voters_of(config: Configuration) -> str:
    learners = f", learners {sorted(config.learners)}" if config.learners else ""
    return f"voters {sorted(config.voters)}{learners}"


@check("F", "MC-ONE", "one server at a time: a change of one server is an entry of its own, reported like any "
       "transition; two at once, or a second before the first commits, are refused")
def mc_one_one_server(cls: type[Replica]) -> None:
    f = fresh(cls, settled_leader, voters=(2, 3))
    r = f.replica
    term, last = r.current_term, r.log.last_index
    for config, what in [(C([1, 2, 3, 4, 5]), "adds two servers (4 and 5)"),
                         (C([1, 2], [4]), "removes 3 and adds 4"),
                         (C([1, 2, 3]), "changes nothing")]:
        offer(f, config)
        expect(state(f, config) is REFUSED and r.log.last_index == last, "MC-ONE",
               f"the leader of {voters_of(C([1, 2, 3]))} was offered {config}, which {what}: it must be refused "
               f"(ABANDONED_REFUSED) and nothing appended; it was {state(f, config)}, the log ends at "
               f"{r.log.last_index} (was {last})")
    first, second = C([1, 2, 3], [4]), C([1, 2, 3], [4, 5])
    offer(f, first, second, Op("x", 1))
    added = [(x.index, x.term, x.transition) for x in r.log.entries_from(last + 1)]
    expect([(t, x) for _, t, x in added if isinstance(x, Configuration)] == [(term, first)], "MC-ONE",
           f"offered {first} (adds learner 4), {second} and an operation x, the leader must append the first change "
           f"as an entry of term {term} (of its own), and no other change; it appended {added}")
    expect(state(f, first) is QUEUED and state(f, second) is REFUSED, "MC-ONE",
           f"offered {first} and {second} together, the leader must take the first (QUEUED) and refuse the "
           f"second while the first is uncommitted; they were {state(f, first)} and {state(f, second)}")
    expect(f.sm.state_of("x") is QUEUED, "L-APPEND",
           f"an ordinary transition offered with the changes was {f.sm.state_of('x')}, not QUEUED")
    ack(r, 2)
    ack(r, 3)
    expect(r.commit_index == r.log.last_index and state(f, first) is APPLIED, "MC-ONE",
           f"every voter (1, 2, 3) holds the change {first}; commit_index is {r.commit_index} (log ends at "
           f"{r.log.last_index}) and the change is {state(f, first)}, not APPLIED")
    expect(f.sm.applied_ids == ["noop", "x"], "MC-ONE",
           f"the state machine applied {f.sm.applied_ids}: a configuration is the cluster's, never given to "
           f"apply_transition (expected ['noop', 'x'])")
    offer(f, second)
    expect(state(f, second) is QUEUED, "MC-ONE",
           f"once the first change committed, the next one ({second}, adds learner 5) must be taken; it was "
           f"{state(f, second)}")


@check("F", "MC-ONE", "no change before an entry of the leader's own term commits (the thesis erratum: else two "
       "leaders in one term)", points=3)
def mc_one_term_committed(cls: type[Replica]) -> None:
    f = fresh(cls, follower, [e(1, 1), e(2, 1)], term=1)
    r = f.replica
    r.step(append(1, 2, 1, [], commit=2))  # entries 1-2, of term 1, are known committed
    f.cluster.take()
    expect(r.commit_index == 2, "AE-COMMIT", f"the leader of term 1 said entries 1-2 are committed; commit_index "
                                             f"is {r.commit_index}")
    elect(r)
    term = r.current_term
    new = C([1, 2, 3], [4])
    offer(f, new)
    expect(state(f, new) is REFUSED and all(x.transition != new for x in r.log.entries_from(1)), "MC-ONE",
           f"a new leader of term {term}, whose commit index {r.commit_index} is of term 1 (its no-op at index 3 "
           f"is not committed yet), was offered {new}: it must refuse it until an entry of its own term commits "
           f"(the thesis erratum, raft-dev 2015: a change appended before that can overlap an uncommitted change "
           f"of an earlier leader, and two leaders can be elected in one term); it was {state(f, new)}")
    ack(r, LEADER)  # the no-op commits
    expect(r.commit_index == 3, "L-COMMIT", f"a majority holds the no-op (index 3), commit_index is {r.commit_index}")
    offer(f, new)
    expect(state(f, new) is QUEUED and r.log.entry(r.log.last_index).transition == new, "MC-ONE",
           f"once its no-op (an entry of term {term}) committed, the leader must take the change {new}; it was "
           f"{state(f, new)}")


@check("F", "MC-LEARNER", "a learner (any non-voter) is replicated to, never stands, and answers VoteRequests")
def mc_learner_never_stands(cls: type[Replica]) -> None:
    for pre_vote in (False, True):
        f = fresh(cls, learner=True, pre_vote=pre_vote)
        r = f.replica
        expect(r.configuration == C([2, 3], [1]), "MC-LEARNER",
               f"a replica started with learner=True to join voters [2, 3] must start in {C([2, 3], [1])}, not "
               f"{r.configuration}")
        for _ in range(4):
            r.tick(r.next_deadline)
        asked = [m for m in f.cluster.messages() if isinstance(m, (VoteRequest, PreVoteRequest))]
        expect(r.role is Role.FOLLOWER and r.current_term == 0 and not asked, "MC-LEARNER",
               f"a learner{' (with PreVote)' if pre_vote else ''} whose election timer fired four times is "
               f"{r.role.value} of term {r.current_term} and sent {len(asked)} vote requests (the first: "
               f"{asked[0] if asked else None}): a learner never stands, its timer just rearms (it is not counted, "
               f"and may be far behind)")
    f = fresh(cls, learner=True)
    r = f.replica
    r.step(append(1, 0, 0, [e(1, 1)], commit=1))
    expect(held(r) == [(1, 1)] and r.commit_index == 1, "MC-LEARNER",
           f"a learner must take the leader's entries like any follower: log {held(r)}, commit {r.commit_index}")
    f.cluster.take()
    r.step(VoteRequest(3, 2, 1, 1))
    answers = f.cluster.messages(VoteResponse, to=3)
    expect(answers == [VoteResponse(ME, 2, True)], "MC-LEARNER",
           f"a learner asked for its vote by 3 (term 2, a log as up to date as its own) must answer it as anyone "
           f"does (it may be a voter in a configuration it has not seen yet: etcd's campaign_learner_must_vote); "
           f"it sent {answers}")
    r.step(append(2, 1, 1, [config_entry(2, 2, [1, 2, 3])], sender=3))  # promoted: it stands from now on
    r.tick(r.next_deadline)
    expect(r.role is Role.CANDIDATE and r.current_term == 3, "MC-LEARNER",
           f"once it appended {C([1, 2, 3])}, which makes it a voter, its election timer fired and it is "
           f"{r.role.value} of term {r.current_term}: a promoted learner stands like any voter")
    g = fresh(cls, follower, term=1)
    r = g.replica
    r.step(append(1, 0, 0, [config_entry(1, 1, [2, 3])]))  # the leader removes me
    for _ in range(4):
        r.tick(r.next_deadline)
    asked = [m for m in g.cluster.messages() if isinstance(m, VoteRequest)]
    expect(r.role is Role.FOLLOWER and r.current_term == 1 and not asked, "MC-LEARNER",
           f"a follower whose latest configuration ({C([2, 3])}) removed it let its election timer fire four times "
           f"and is {r.role.value} of term {r.current_term}, having sent {len(asked)} VoteRequests: a server that "
           f"is not a voter of its latest configuration never stands")


@check("F", "MC-LEARNER, MC-LATEST", "a learner's vote and acknowledgements are never counted; it is promoted only "
       "once caught up, never added as a voter directly")
def mc_learner_not_counted(cls: type[Replica]) -> None:
    g = fresh(cls, follower)
    r = g.replica
    r.step(append(1, 0, 0, [config_entry(1, 1, [1, 2, 3], [4])], commit=1))
    r.tick(r.next_deadline)
    expect(r.role is Role.CANDIDATE, "C-START", f"after its election timer fired the replica is {r.role.value}")
    term = r.current_term
    r.step(VoteResponse(4, term, True))
    expect(r.role is Role.CANDIDATE, "MC-LEARNER",
           f"a candidate of {voters_of(C([1, 2, 3], [4]))} counted the vote of learner 4 and became {r.role.value}: "
           f"a learner is never counted; its own vote and 4's are not a majority of the voters [1, 2, 3]")
    r.step(VoteResponse(2, term, True))
    expect(r.role is Role.LEADER, "C-WIN", f"with the votes of voters 1 and 2 of [1, 2, 3] the candidate is "
                                           f"{r.role.value}, not leader")
    f = fresh(cls, settled_leader)
    r = f.replica
    learner = C([1, 2, 3], [4])
    offer(f, learner)
    ack(r, LEADER)
    expect(state(f, learner) is APPLIED and r.configuration == learner, "MC-LATEST",
           f"the change {learner} is held by voters 1 and 2 of [1, 2, 3], a majority, yet it is {state(f, learner)} "
           f"(commit_index {r.commit_index}): majorities count the voters only, a learner is not even counted "
           f"among those who must hold an entry")
    for config, why in [(C([1, 2, 3, 4]), "learner 4 has not caught up with the commit index"),
                        (C([1, 2, 3, 5], [4]), "5 is a new server, made a voter directly")]:
        offer(f, config)
        expect(state(f, config) is REFUSED, "MC-LEARNER",
               f"the leader took {config} ({state(f, config)}) although {why}: a new server joins as a learner "
               f"and is promoted only once its log has caught up (else the cluster may stall while it catches up)")
    offer(f, Op("x", 1))
    index = r.log.last_index
    ack(r, 4)
    expect(r.commit_index < index, "MC-LEARNER",
           f"entry {index} is held by the leader and learner 4 only, and commit_index is {r.commit_index}: a "
           f"learner's acknowledgement never counts (voters [1, 2, 3])")
    ack(r, LEADER)
    expect(r.commit_index == index, "L-COMMIT", f"voters 1 and 2 hold entry {index}, commit_index is {r.commit_index}")
    promoted = C([1, 2, 3, 4])
    offer(f, promoted)
    expect(state(f, promoted) is QUEUED and r.configuration == promoted, "MC-LEARNER",
           f"learner 4 holds the whole log; promoting it ({promoted}) must be taken, and used at once (MC-LATEST); "
           f"it was {state(f, promoted)}, the configuration is {r.configuration}")


@check("F", "MC-LATEST, L-COMMIT", "the latest configuration in the log, committed or not, is used from its append "
       "on; a removed server's acknowledgement does not count")
def mc_latest(cls: type[Replica]) -> None:
    f = fresh(cls, follower)
    r = f.replica
    r.step(append(1, 0, 0, [e(1, 1), config_entry(2, 1, [1, 2, 3], [4])]))
    expect(r.configuration == C([1, 2, 3], [4]) and sorted(r.peer_ids) == [2, 3, 4] and r.commit_index == 0,
           "MC-LATEST", f"a follower that appended {C([1, 2, 3], [4])} (not committed) must use it at once: its "
                        f"configuration is {r.configuration}, its peers {sorted(r.peer_ids)}")
    g = fresh(cls, follower)
    r = g.replica
    r.step(append(1, 0, 0, [config_entry(1, 1, [1, 3])]))  # the leader 2 removes itself
    r.step(append(1, 1, 1, [e(2, 1)], commit=2))
    expect(r.commit_index == 2 and held(r) == [(1, 1), (2, 1)], "MC-LATEST",
           f"leader 2 removed itself ({C([1, 3])}) and keeps leading until that commits: its AppendEntries must "
           f"still be taken (the members of the configuration before stay known senders); log {held(r)}, commit "
           f"{r.commit_index}")
    h = fresh(cls, settled_leader, peers=(2, 3, 4, 5), voters=(2, 3))
    r = h.replica
    removal = C([1, 2, 3, 4])
    offer(h, removal)
    expect(state(h, removal) is QUEUED and r.configuration == removal, "MC-ONE",
           f"the leader of [1, 2, 3, 4, 5] was offered {removal} (removes 5); it was {state(h, removal)}, its "
           f"configuration is {r.configuration}")
    index = r.log.last_index
    ack(r, 5)
    ack(r, 2)
    expect(r.commit_index < index, "MC-LATEST",
           f"the change removing 5 (entry {index}) is held by 1, 2 and the removed 5 only, and commit_index is "
           f"{r.commit_index}: majorities count the latest configuration's voters ([1, 2, 3, 4]: three of them, "
           f"as two are half of them), from the moment it is appended")
    ack(r, 3)
    expect(r.commit_index == index and state(h, removal) is APPLIED, "MC-LATEST",
           f"voters 1, 2 and 3 of [1, 2, 3, 4] hold entry {index}; commit_index is {r.commit_index}")


@check("F", "MC-LATEST, AE-TRUNCATE", "a configuration whose entry is truncated is undone: the one before it is "
       "back", points=1)
def mc_latest_truncated(cls: type[Replica]) -> None:
    f = fresh(cls, follower)
    r = f.replica
    r.step(append(1, 0, 0, [e(1, 1), config_entry(2, 1, [1, 2, 3], [4])]))
    r.step(append(2, 1, 1, [e(2, 2)]))  # a new leader overwrites index 2
    expect(held(r) == [(1, 1), (2, 2)], "AE-TRUNCATE",
           f"my entry 2 (of term 1) conflicts with the leader of term 2's entry 2: the log must be [(1, 1), (2, 2)] "
           f"(index, term), it is {held(r)}")
    expect(r.configuration == C([1, 2, 3]) and sorted(r.peer_ids) == [2, 3], "MC-LATEST",
           f"the entry holding {C([1, 2, 3], [4])} was truncated by the leader of term 2: the follower must go back "
           f"to the configuration before it, {C([1, 2, 3])}; it uses {r.configuration}, peers {sorted(r.peer_ids)}")


@check("F", "MC-STEPDOWN, L-COMMIT", "a leader that removed itself leads without counting itself until the change "
       "commits, then steps down in its term")
def mc_stepdown(cls: type[Replica]) -> None:
    f = fresh(cls, settled_leader, voters=(2, 3))
    r = f.replica
    term, removal = r.current_term, C([2, 3])
    offer(f, removal)
    index = r.log.last_index
    expect(state(f, removal) is QUEUED and r.role is Role.LEADER and sorted(r.peer_ids) == [2, 3], "MC-STEPDOWN",
           f"a leader that removes itself ({removal}) keeps leading until that commits: the change was "
           f"{state(f, removal)}, the replica is {r.role.value}, its peers {sorted(r.peer_ids)}")
    sent = sorted(to for to, m in f.cluster.take() if isinstance(m, AppendEntryRequest) and m.entries)
    expect(sent == [2, 3], "MC-STEPDOWN", f"the removing leader must replicate its change to 2 and 3; it sent "
                                          f"entries to {sent}")
    ack(r, 2)
    expect(r.role is Role.LEADER and r.commit_index < index, "MC-STEPDOWN",
           f"the change {removal} (entry {index}) is held by voter 2 and the leader, which is not a voter of it: "
           f"one of [2, 3] is no majority, yet commit_index is {r.commit_index} and the replica is {r.role.value} "
           f"(the removed leader counted itself, or one voter of two, half, was taken for a majority)")
    r.tick(r.next_deadline)
    beats = sorted(to for to, m in f.cluster.take() if isinstance(m, AppendEntryRequest))
    expect(beats == [2, 3], "MC-STEPDOWN", f"until the change commits the removed leader keeps managing the "
                                           f"cluster; its heartbeat went to {beats}, not [2, 3]")
    ack(r, 3)
    expect(r.commit_index == index, "MC-STEPDOWN", f"voters 2 and 3 hold the change (entry {index}), commit_index "
                                                   f"is {r.commit_index}")
    expect(r.role is Role.FOLLOWER and (r.current_term, r.voted_for) == (term, ME), "MC-STEPDOWN",
           f"once the change that removed it committed, the leader must step down in its term {term} (its vote "
           f"kept); it is {r.role.value} of term {r.current_term}, vote {r.voted_for}")
    offer(f, Op("late", 1))
    expect(f.sm.state_of("late") is TransitionState.ABANDONED_NOT_LEADER, "MC-STEPDOWN",
           f"a transition offered to the leader that stepped down was {f.sm.state_of('late')}, not "
           f"ABANDONED_NOT_LEADER")


@check("F", "MC-SNAPSHOT", "a snapshot carries the configuration as of its index; a server that installs or "
       "restarts from one uses it", points=1)
def mc_snapshot(cls: type[Replica]) -> None:
    f = fresh(cls, settled_leader, voters=(2, 3), snapshot_delta=3)
    r = f.replica
    learner = C([1, 2, 3], [4])
    offer(f, learner)
    offer(f, Op("x", 1))
    ack(r, 2)
    ack(r, 3)
    s = r.log.snapshot
    expect(s is not None and s.last_included_index == 3, "SNAP-TAKE",
           f"with snapshot_delta 3 and three entries applied the leader must have a snapshot at index 3: {s}")
    expect(s is not None and s.configuration == learner, "MC-SNAPSHOT",
           f"the snapshot at index 3 must carry the configuration as of that index, {learner}: it carries "
           f"{s.configuration if s is not None else None}")
    g = fresh(cls, follower, term=1)
    g.replica.step(InstallSnapshotRequest(LEADER, 1, 3, 1, 0, (1, ()), True, learner))
    expect(g.replica.configuration == learner and sorted(g.replica.peer_ids) == [2, 3, 4], "MC-SNAPSHOT",
           f"a follower that installed a snapshot carrying {learner} must use it: its configuration is "
           f"{g.replica.configuration}, its peers {sorted(g.replica.peer_ids)}")
    again = fresh(cls, storage=g.storage)
    expect(again.replica.configuration == learner, "MC-SNAPSHOT",
           f"restarted from its storage (the snapshot carrying {learner}), the replica's configuration is "
           f"{again.replica.configuration}")


# ----- the integration view's chaos seeds (`grade(..., together=True)`), not a check of the grade ------------
CHAOS_SECONDS = 30.0  # virtual seconds of faults per seed, as `raftlab chaos` runs them by default


def chaos_seed(cls: type[Replica], seed: int) -> None:
    """A seed of the chaos campaign (`raftlab.sim.chaos.run_chaos`: crashes, partitions, loss, snapshots,
    membership changes and the thesis's options, as `Swarm.draw` picks them, under KV clients whose history
    is checked for linearizability), run with the graded class whole, as `raftlab chaos` runs the core."""
    from ..sim.chaos import run_chaos
    result = run_chaos(seed, CHAOS_SECONDS, replica_class=cls)
    expect(result.ok, "Safety", f"chaos seed {seed} ({CHAOS_SECONDS:g} s of faults, five nodes): {result.kind}: "
                                f"{result.violation or result.detail} (replay it: raftlab.sim.chaos.run_chaos({seed}, "
                                f"{CHAOS_SECONDS:g}, replica_class=YourClass))")


CHAOS = Check("chaos", "T", "Safety, linearizability, liveness",
              "chaos seeds: random faults under KV clients, every safety property and a linearizable history", 3,
              chaos_seed, True, together="every part of your class (the campaign's seeds run your class whole)")
"""The integration view's chaos check (in `BY_ID`, not in `CHECKS`: it is not part of the grade)."""

BY_ID = {c.id: c for c in [*CHECKS, CHAOS]}
