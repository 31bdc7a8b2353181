"""Scenario transcripts: a small text format of commands on a `Simulation`, with their expected output.

In the style of etcd raft's ``testdata/*.txt`` (data-driven tests): a transcript is a text file of
blocks, each a command line, a line ``----`` and the output the command is expected to print; blocks
are separated by blank lines, and lines starting with ``#`` between blocks are comments (the first
paragraph says what the transcript shows). An output that contains blank lines is written between
two ``----`` lines and closed by two more. For example::

    # The first election: nothing but time.

    sim n=3 seed=1
    ----
    3 nodes (0-2), seed 1, KV store; election timeout 0.150-0.300s, heartbeat 0.050s
    network: latency 0.005-0.015s, drop 0, duplicate 0

    run-until leader
    ----
    [  0.1634s] node 2 heard from no leader in time and became a candidate in term 1.
    ...

    check leader=2 term=1 on=all
    ----
    ok

`run_transcript` runs the commands on one fresh simulation and compares what each prints with the
expected output; `rewrite` writes the actual outputs in place instead (review that change like code,
with ``git diff``). A ``check`` that fails, or a ``run-until`` that times out, is a failure even when
the outputs match, so that rewriting never hides a broken claim. `load_scenario` returns the
simulation a transcript leaves behind (for the RaftLab app); `TRANSCRIPTS` names the bundled ones.

Commands (``N`` a node id, ``S`` seconds, ``P`` a probability, ``K`` a count, ``M`` a message id as
`in-flight` lists it; ``[...]`` optional)::

    sim n=N seed=S [snapshot_delta=K] [latency=LO,HI] [drop=P] [duplicate=P] [machine=kv|counter]
        [heartbeat=S] [election=LO,HI] [max-entries=K]      first, and only once: the cluster
        [pre-vote] [check-quorum] [read-lease] [drift-bound=X] [max-inflight=K]
                                   the Replica options beyond Figure 2 (off unless named; see Replica)
    run S                          advance virtual time by S seconds
    run-until PREDICATE... [on=NODES] [timeout=S]   step until all hold (timeout 5 s: else FAIL)
    step [K]                       take K steps (each a delivery or a timer)
    deliver [K]                    step until the next K messages in flight have arrived
    crash N...   restart N...   disconnect N...   connect N...
    timeout N...                   make N's election timer fire now (Simulation.force_timeout)
    heartbeat N...                 make leader N's heartbeat timer fire now (Simulation.force_heartbeat)
    partition A B | C D ...        cut every link between the groups
    heal                           restore every link
    cut A B...   uncut A B...      the one-way links from A to each B
    drop-next A B                  lose the next message sent from A to B
    drop-in-flight [from=A] [to=B] lose the messages now on their way (from A, to B)
    drop-msg M                     lose message M, now on its way (Simulation.drop_message)
    deliver-msg M                  deliver message M now, before its time and out of order, and print
                                   every event that follows (Simulation.deliver_message)
    duplicate-msg M                put a copy of message M on the wire, due when M is, and print its id:
                                   "message M2 is a copy of message M" (Simulation.duplicate_message)
    network [latency=LO,HI] [drop=P] [duplicate=P]           change the whole network
    link A B [latency=LO,HI] [drop=P] [duplicate=P]          override the link A -> B
    unlink A B                     remove that override
    transfer N                     ask the leader to hand its leadership to N (Simulation.transfer_leadership)
    read KEY [to=N] [wait]         a linearizable read without a log write (Simulation.read: ReadIndex, or a
                                   lease), numbered #1, #2...; to the leader by default, else node 0; wait
                                   runs until the node answers it (5 s at most)
    clock N RATE                   N's clock runs at RATE times virtual time from now on (1.1: 10% fast)
    add-node [wait]                start a new node (the next id, an empty log) as a learner and ask the
                                   leader to add it as one (Simulation.add_node)
    promote N [wait]               ask the leader to make learner N a voter (Simulation.promote); it refuses
                                   until N has caught up
    remove-node N [wait]           ask the leader to remove N (Simulation.remove_node); once that is committed,
                                   N is shut down for good
    propose-config voters=A,B... [learners=C,...|none] [to=N] [wait]
                                   submit a configuration by hand (to the leader by default, else node 0); the
                                   nodes it leaves out keep running
        Each of these four is a request numbered with the submitted ones (#1, #2...); wait runs until the
        change is committed (5 s at most), proposing it again to the leader when it is refused or lost
        (Simulation.run_until_committed).
    submit OP ARG... [to=N] [client=C] [seq=K] [count=K] [wait]   client requests, numbered #1, #2...
        kv: put KEY VALUE | get KEY | append KEY VALUE | delete KEY | cas KEY EXPECTED|none VALUE;
        counter: add K. To the leader by default, else node 0; a fresh client per request; count=K
        sends K requests (values VALUE1...VALUEK); wait runs until the node answers (5 s at most).
    check PREDICATE... [on=NODES]  prints ok, or FAIL and why (a failure of the transcript)
    state                          every node: role, term, vote, commit index, last applied, log
    log N                          node N's log, entry by entry
    in-flight                      the messages on their way, with their ids and arrival times
    stats                          messages sent, lost and duplicated so far, by type
    trace [last=K]                 the notable events since the previous trace (the last K)

The commands that change the simulation print the notable events they caused, as
`TraceEvent.explain` sentences with times to 0.1 ms: role changes, votes, refused appends, the
leader's commits and own appends, truncations, snapshots, crashes, restarts, network changes, client
requests and answers, reads and their answers, pre-votes, votes ignored by CheckQuorum, leadership
transfers, clock changes, forced timers, messages lost by drop-next, drop-in-flight or drop-msg, and
copies made by duplicate-msg. ``step``, ``deliver`` and ``deliver-msg`` print every event. They all
take ``verbose`` (every event), ``quiet`` (nothing, unless a run-until fails; ``trace`` shows the
events later) or ``show=KIND,...`` (more kinds: appended, committed, applied, send, deliver, drop,
duplicate, timer, read_ready, read_abandoned).

Predicates (of ``check`` and ``run-until``):

- cluster-wide: ``leader`` (some live node leads), ``leader=N|none`` (`Simulation.leader`),
  ``leaders=N,...|none`` (the live nodes that believe they lead), ``leader-among=N,...``,
  ``one-leader`` (exactly one live node believes it leads), ``req.K=STATE`` (request #K on the
  node it was sent to, or on each node of ``on=``; STATE is queued, committed, applied, abandoned, unknown,
  pending or none), ``read.K=ready|abandoned|pending`` (read #K's answer) and ``read.K.value=VALUE|none``
  (the value it read);
- on each node of ``on=all|live|N,...`` (default: the live nodes): ``term``, ``committed``,
  ``applied``, ``last-index``, ``snapshot``, ``counter`` compared by ``=``, ``!=``, ``<``, ``<=``,
  ``>`` or ``>=`` with a number; ``role=leader|candidate|follower``, ``vote=N|none``,
  ``log=I:T,...|empty`` (the entries after the snapshot), ``entry=I:T,...``, ``no-entry=I``,
  ``kv.KEY=VALUE|none``, ``crashed``, ``up``, and ``same-log`` (the same last entry, and the same
  term wherever two of the nodes hold an index; snapshots may differ); membership change:
  ``voters=N,...`` and ``learners=N,...|none`` (the latest configuration in the node's own log,
  MC-LATEST), ``membership=voter|learner|joining|removed`` (as the leader, or the node, sees it:
  `Simulation.membership`) and ``removed`` (shut down by remove-node).

Errors in a transcript raise `TranscriptError`, whose message starts with ``file:line:``.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import Configuration, EventKind, ReadState, Replica, Role, TransitionState
from .frame import Frame
from .membership import MEMBERSHIPS
from .network import NetworkModel
from .simulation import Simulation
from .submission import ReadRequest, Submission
from .trace import SimKind, TraceEvent

__all__ = [
    "TRANSCRIPTS", "TRANSCRIPT_DIR", "Block", "Command", "Transcript", "TranscriptError", "TranscriptResult",
    "load_scenario", "rewrite", "run_transcript", "transcript_names", "transcript_path",
]

TRANSCRIPT_DIR = Path(__file__).with_name("transcripts")
"""The folder of the bundled transcripts (``raftlab/sim/transcripts/*.txt``)."""

SEPARATOR = "----"


def transcript_names() -> list[str]:
    """The names of the bundled transcripts (file names without ``.txt``), sorted."""
    return sorted(p.stem for p in TRANSCRIPT_DIR.glob("*.txt"))


def transcript_path(name: str) -> Path:
    """The file of the bundled transcript `name` (with or without ``.txt``)."""
    path = TRANSCRIPT_DIR / (name if name.endswith(".txt") else f"{name}.txt")
    if not path.is_file():
        raise KeyError(f"no bundled transcript {name!r}; there are: {', '.join(transcript_names())}")
    return path


TRANSCRIPTS: dict[str, Path] = {name: TRANSCRIPT_DIR / f"{name}.txt" for name in transcript_names()}
"""The bundled transcripts by name (for a scenario menu or a grader): name -> file."""


class TranscriptError(ValueError):
    """A transcript that cannot be parsed or run; the message starts with ``file:line:``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


# ----- parsing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of a transcript, as written, and its expected output."""

    line: int  # 1-based line number of the command
    text: str  # the command line as written
    name: str  # the command ("run", "check", ...)
    args: tuple[str, ...]  # positional words (`partition` keeps its "|" separators)
    options: dict[str, str]  # key=value words (predicates of check and run-until are args)
    expected: str | None  # the expected output ("" if the block is empty; None if it has no "----" yet)
    span: tuple[int, int]  # 0-based lines [start, end) of the block after the command line (for rewrite)

    def __str__(self) -> str:
        return self.text


_OUTPUT_FLAGS = frozenset({"verbose", "quiet"})
_OUTPUT_OPTIONS = frozenset({"show"})


@dataclass(frozen=True)
class _Spec:
    positional: tuple[int, float]  # min, max number of positional words
    options: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    traced: bool = False  # changes the simulation: takes verbose / quiet / show=
    usage: str = ""


def _spec(usage: str, lo: int = 0, hi: float = 0, options: str = "", flags: str = "", traced: bool = True) -> _Spec:
    return _Spec((lo, hi), frozenset(options.split()), frozenset(flags.split()), traced, usage)


_SPECS: dict[str, _Spec] = {
    "sim": _spec("sim n=N seed=S [snapshot_delta=K] [latency=LO,HI] [drop=P] [duplicate=P] [machine=kv|counter] "
                 "[heartbeat=S] [election=LO,HI] [max-entries=K] [pre-vote] [check-quorum] [read-lease] "
                 "[drift-bound=X] [max-inflight=K]",
                 options="n seed snapshot_delta snapshot-delta latency drop duplicate machine heartbeat election "
                         "max-entries drift-bound max-inflight", flags="pre-vote check-quorum read-lease",
                 traced=False),
    "run": _spec("run SECONDS", 1, 1),
    "run-until": _spec("run-until PREDICATE... [timeout=S]", 1, math.inf, options="timeout on"),
    "step": _spec("step [K]", 0, 1),
    "deliver": _spec("deliver [K]", 0, 1),
    "crash": _spec("crash N...", 1, math.inf),
    "restart": _spec("restart N...", 1, math.inf),
    "disconnect": _spec("disconnect N...", 1, math.inf),
    "connect": _spec("connect N...", 1, math.inf),
    "timeout": _spec("timeout N...", 1, math.inf),
    "heartbeat": _spec("heartbeat N...", 1, math.inf),
    "partition": _spec("partition A B | C D ...", 3, math.inf),
    "heal": _spec("heal"),
    "cut": _spec("cut A B...", 2, math.inf),
    "uncut": _spec("uncut A B...", 2, math.inf),
    "drop-next": _spec("drop-next A B", 2, 2),
    "drop-in-flight": _spec("drop-in-flight [from=A] [to=B]", options="from to"),
    "drop-msg": _spec("drop-msg M", 1, 1),
    "deliver-msg": _spec("deliver-msg M", 1, 1),
    "duplicate-msg": _spec("duplicate-msg M", 1, 1),
    "network": _spec("network [latency=LO,HI] [drop=P] [duplicate=P]", options="latency drop duplicate"),
    "link": _spec("link A B [latency=LO,HI] [drop=P] [duplicate=P]", 2, 2, options="latency drop duplicate"),
    "unlink": _spec("unlink A B", 2, 2),
    "transfer": _spec("transfer N", 1, 1),
    "read": _spec("read KEY [to=N] [wait]", 1, 1, options="to", flags="wait"),
    "clock": _spec("clock N RATE", 2, 2),
    "add-node": _spec("add-node [wait]", flags="wait"),
    "promote": _spec("promote N [wait]", 1, 1, flags="wait"),
    "remove-node": _spec("remove-node N [wait]", 1, 1, flags="wait"),
    "propose-config": _spec("propose-config voters=A,B... [learners=C,...|none] [to=N] [wait]",
                            options="voters learners to", flags="wait"),
    "submit": _spec("submit OP ARG... [to=N] [client=C] [seq=K] [count=K] [wait]", 1, 4,
                    options="to client seq count",
                    flags="wait"),
    "check": _spec("check PREDICATE... [on=NODES]", 1, math.inf, options="on", traced=False),
    "state": _spec("state", traced=False),
    "log": _spec("log N", 1, 1, traced=False),
    "in-flight": _spec("in-flight", traced=False),
    "stats": _spec("stats", traced=False),
    "trace": _spec("trace [last=K] [verbose] [show=KIND,...]", options="last show", flags="verbose", traced=False),
}
_PREDICATE_COMMANDS = ("check", "run-until")


@dataclass
class Transcript:
    """A parsed transcript: its commands (with their expected outputs) and its text."""

    path: str
    lines: list[str]
    commands: list[Command]
    description: str  # the first comment paragraph, without the "#"

    @property
    def title(self) -> str:
        """The first sentence of the description (for a menu)."""
        first = self.description.split("\n\n")[0].replace("\n", " ")
        return first.split(". ")[0].rstrip(".") if first else Path(self.path).stem

    @classmethod
    def parse(cls, text: str, path: str = "<transcript>") -> Transcript:
        """Parse `text`; errors raise `TranscriptError` naming `path` and the line."""
        lines = text.splitlines()
        commands: list[Command] = []
        description: list[str] = []  # the comment lines before the first command ("" between paragraphs)
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                if not commands:
                    text = stripped[1:].strip()
                    if text or (description and description[-1]):
                        description.append(text)
                i += 1
                continue
            if stripped == SEPARATOR:
                raise TranscriptError(path, i + 1, f"'{SEPARATOR}' without a command before it")
            command_line = i
            i += 1
            if i >= len(lines) or lines[i].strip() != SEPARATOR:  # no output written yet: rewrite adds it
                commands.append(_parse_command(path, command_line + 1, stripped, None, (i, i)))
                continue
            i += 1
            start = i
            if i < len(lines) and lines[i].strip() == SEPARATOR:  # the long form: ----\n----\n...\n----\n----
                i += 1
                body_start = i
                while i + 1 < len(lines) and not (lines[i].strip() == SEPARATOR == lines[i + 1].strip()):
                    i += 1
                if i + 1 >= len(lines):
                    raise TranscriptError(path, start, f"no closing '{SEPARATOR}' / '{SEPARATOR}' for this output")
                expected = "\n".join(lines[body_start:i])
                i += 2
            else:
                body_start = i
                while i < len(lines) and lines[i].strip():
                    i += 1
                expected = "\n".join(lines[body_start:i])
            commands.append(_parse_command(path, command_line + 1, stripped, expected, (start, i)))
        if not commands:
            raise TranscriptError(path, 1, "no commands (the first must be 'sim n=... seed=...')")
        if commands[0].name != "sim":
            raise TranscriptError(path, commands[0].line, f"the first command must be 'sim', not {commands[0].name!r}")
        for c in commands[1:]:
            if c.name == "sim":
                raise TranscriptError(path, c.line, "'sim' may appear only once, as the first command")
        machine = commands[0].options.get("machine", "kv")
        for c in commands:
            if c.name == "submit":
                _submission(c, machine, path, 0)  # checked now, built again when run
        while description and description[-1] == "":
            description.pop()
        return cls(path, lines, commands, "\n".join(description))

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        path = Path(path)
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    def with_outputs(self, outputs: list[str]) -> str:
        """The transcript's text with `outputs` (one per command) in place of the expected outputs."""
        lines = list(self.lines)
        for command, output in sorted(zip(self.commands, outputs, strict=True), key=lambda p: -p[0].line):
            start, end = command.span
            body = output.split("\n") if output else []
            if any(not line.strip() for line in body):
                body = [SEPARATOR, *body, SEPARATOR, SEPARATOR]
            if command.expected is None:  # a command written without its output: add the "----" too
                body = [SEPARATOR, *body, *([""] if end < len(lines) and lines[end].strip() else [])]
            lines[start:end] = body
        return "\n".join(lines).rstrip("\n") + "\n"


_WORD = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$")


def _parse_command(path: str, line: int, text: str, expected: str | None, span: tuple[int, int]) -> Command:
    try:
        words = shlex.split(text, posix=True)
    except ValueError as error:
        raise TranscriptError(path, line, f"cannot split {text!r} into words: {error}") from None
    name, rest = words[0], words[1:]
    spec = _SPECS.get(name)
    if spec is None:
        raise TranscriptError(path, line, f"unknown command {name!r}; the commands are: {', '.join(_SPECS)}")
    args: list[str] = []
    options: dict[str, str] = {}
    allowed_options = spec.options | (_OUTPUT_OPTIONS if spec.traced else frozenset())
    allowed_flags = spec.flags | (_OUTPUT_FLAGS if spec.traced else frozenset())
    for word in rest:
        if word in allowed_flags:
            options[word] = ""
            continue
        match = _WORD.match(word)
        key = match.group(1) if match else None
        if match is not None and key in allowed_options:
            if key in options:
                raise TranscriptError(path, line, f"option {key!r} given twice")
            options[match.group(1)] = match.group(2)
        elif match is None or name in (*_PREDICATE_COMMANDS, "partition", "submit"):
            args.append(word)  # predicates are key=value words too; so may a submitted value be
        else:
            raise TranscriptError(path, line, f"unknown option {key!r} for {name!r}; usage: {spec.usage}")
    low, high = spec.positional
    if not low <= len(args) <= high:
        raise TranscriptError(path, line, f"wrong number of arguments for {name!r}; usage: {spec.usage}")
    command = Command(line, text, name, tuple(args), options, expected, span)
    try:
        _validate(command)
    except ValueError as error:
        raise TranscriptError(path, line, f"{error}; usage: {spec.usage}") from None
    return command


def _validate(c: Command) -> None:
    """Check argument types at parse time (node ids are checked against n when run)."""
    name, args, o = c.name, c.args, c.options
    if name == "sim":
        if "n" not in o or "seed" not in o:
            raise ValueError("'sim' needs n= and seed=")
        _int(o["n"], "n", 1), _int(o["seed"], "seed")
        for key in ("snapshot_delta", "snapshot-delta", "max-entries", "max-inflight"):
            if key in o:
                _int(o[key], key, 0 if key in ("snapshot_delta", "snapshot-delta") else 1)
        if "drift-bound" in o and _float(o["drift-bound"], "drift-bound") < 1:
            raise ValueError(f"drift-bound must be at least 1, not {o['drift-bound']!r}")
        for key in ("latency", "election"):
            if key in o:
                _pair(o[key], key)
        for key in ("drop", "duplicate"):
            if key in o:
                _probability(o[key], key)
        if "heartbeat" in o:
            _float(o["heartbeat"], "heartbeat")
        if o.get("machine", "kv") not in ("kv", "counter"):
            raise ValueError(f"machine must be kv or counter, not {o['machine']!r}")
    elif name == "run":
        _float(args[0], "seconds")
    elif name in ("step", "deliver") and args:
        _int(args[0], "count", 1)
    elif name in ("crash", "restart", "disconnect", "connect", "timeout", "heartbeat", "cut", "uncut", "drop-next",
                  "log", "link", "unlink", "transfer", "promote", "remove-node"):
        for a in args:
            _int(a, "node", 0)
    elif name in ("drop-msg", "deliver-msg", "duplicate-msg"):
        _int(args[0], "message id", 1)
    elif name == "clock":
        _int(args[0], "node", 0)
        if _float(args[1], "rate") == 0:
            raise ValueError("rate must be positive, not 0")
    elif name == "read" and "to" in o:
        _int(o["to"], "to", 0)
    elif name == "propose-config":
        if "voters" not in o:
            raise ValueError("'propose-config' needs voters=")
        _configuration(o)
    elif name == "partition":
        groups = _groups(args)
        if len(groups) < 2 or any(not g for g in groups):
            raise ValueError("a partition needs two or more non-empty groups separated by '|'")
    elif name == "drop-in-flight":
        for key in ("from", "to"):
            if key in o:
                _int(o[key], key, 0)
    if name in ("network", "link"):
        if not o.keys() & {"latency", "drop", "duplicate"}:
            raise ValueError(f"{name!r} needs latency=, drop= or duplicate=")
        if "latency" in o:
            _pair(o["latency"], "latency")
        for key in ("drop", "duplicate"):
            if key in o:
                _probability(o[key], key)
    elif name == "submit" and "count" in o:
        _int(o["count"], "count", 1)
        if "client" in o or "seq" in o:
            raise ValueError("count= makes one request per fresh client: it cannot take client= or seq=")
    elif name in _PREDICATE_COMMANDS:
        for word in args:
            _parse_predicate(word)
        if "on" in o:
            _scope_words(o["on"])
        if "timeout" in o:
            _float(o["timeout"], "timeout")
    elif name == "trace" and "last" in o:
        _int(o["last"], "last", 1)
    if "show" in o:
        _kinds(o["show"])


def _int(text: str, what: str, low: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, not {text!r}") from None
    if low is not None and value < low:
        raise ValueError(f"{what} must be at least {low}, not {value}")
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {text!r}")
    return value


def _probability(text: str, what: str) -> float:
    value = _float(text, what)
    if value > 1:
        raise ValueError(f"{what} must be a probability between 0 and 1, not {text!r}")
    return value


def _pair(text: str, what: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"{what} must be LOW,HIGH, not {text!r}")
    low, high = _float(parts[0], what), _float(parts[1], what)
    if low > high:
        raise ValueError(f"{what} must have LOW <= HIGH, not {text!r}")
    return low, high


def _groups(args: tuple[str, ...]) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    for word in " ".join(args).replace("|", " | ").replace(",", " ").split():
        if word == "|":
            groups.append([])
        else:
            groups[-1].append(_int(word, "node", 0))
    return groups


def _configuration(o: dict[str, str]) -> Configuration:
    """The configuration of a ``propose-config`` command's voters= and learners=."""
    voters = [_int(w, "voter", 0) for w in o["voters"].split(",")]
    learners = [] if o.get("learners", "none") == "none" else [_int(w, "learner", 0) for w in o["learners"].split(",")]
    if "to" in o:
        _int(o["to"], "to", 0)
    if set(voters) & set(learners):
        raise ValueError(f"a node cannot be both a voter and a learner: {sorted(set(voters) & set(learners))}")
    return Configuration.of(voters, learners)


def _scope_words(text: str) -> str | list[int]:
    if text in ("all", "live"):
        return text
    return [_int(w, "node", 0) for w in text.split(",")]


# Notable events: what a command prints by default.
_NOTABLE_KINDS = frozenset({
    *EventKind.ROLE_CHANGES, *EventKind.VOTES, EventKind.APPEND_REFUSED, EventKind.TRUNCATED,
    EventKind.SNAPSHOT_TAKEN, EventKind.SNAPSHOT_INSTALLED, EventKind.MESSAGE_DROPPED,
    SimKind.CRASH, SimKind.RESTART, SimKind.NETWORK, *SimKind.CLIENT,
    # beyond Figure 2: pre-votes, CheckQuorum, transfers, reads and clocks
    EventKind.PRE_VOTE_STARTED, EventKind.PRE_VOTE_WON, EventKind.VOTE_IGNORED, EventKind.TRANSFER_STARTED,
    EventKind.TIMEOUT_NOW_SENT, EventKind.TRANSFER_ABORTED, SimKind.TRANSFER, SimKind.READ_REQUEST,
    SimKind.READ_REPLY, SimKind.CLOCK,
    # membership change
    EventKind.CONFIGURATION_CHANGED, EventKind.CONFIG_REFUSED, SimKind.MEMBERSHIP, SimKind.REMOVED,
})
_KINDS = frozenset({*_NOTABLE_KINDS, SimKind.SEND, SimKind.DELIVER, SimKind.DROP, SimKind.DUPLICATE, SimKind.TIMER,
                    EventKind.APPENDED, EventKind.COMMITTED, EventKind.APPLIED, EventKind.READ_READY,
                    EventKind.READ_CONFIRMED,
                    EventKind.READ_ABANDONED})


def _kinds(text: str) -> frozenset[str]:
    kinds = frozenset(k for k in text.split(",") if k)
    unknown = kinds - _KINDS
    if unknown:
        raise ValueError(f"unknown event kind(s) {', '.join(sorted(unknown))}; "
                         f"the kinds are {', '.join(sorted(_KINDS))}")
    return kinds


def _notable(event: TraceEvent) -> bool:
    kind = event.kind
    if kind in _NOTABLE_KINDS:
        return True
    if kind == EventKind.COMMITTED:  # the leader's commits; followers learn them from the leader (show=committed)
        return event.rule == "L-COMMIT"
    if kind == EventKind.APPENDED:  # the leader's own appends; followers' copies with show=appended
        return event.rule in ("L-APPEND", "L-NOOP")
    if kind == SimKind.TIMER:
        return "forced" in str(event.data.get("which", ""))
    if kind == SimKind.DROP:  # losses the transcript chose (drop-next, drop-in-flight); the network's own are hidden
        return "chosen" in str(event.data.get("why", "")) or "by hand" in str(event.data.get("why", ""))
    if kind == SimKind.DUPLICATE:  # copies made by duplicate-msg; the network's own are hidden
        return bool(event.data.get("by_hand"))
    return False


# ----- predicates ----------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "=": operator.eq, "<": operator.lt, ">": operator.gt,
}
_PREDICATE = re.compile(r"^([a-z][\w.-]*?)(>=|<=|!=|=|<|>)(.*)$")
_NUMERIC = ("term", "committed", "applied", "last-index", "snapshot", "counter")
_FLAGS = ("leader", "one-leader", "same-log", "crashed", "up", "removed")
_VALUED = ("leader", "leaders", "leader-among", "role", "vote", "log", "entry", "no-entry", "req", "read", "voters",
           "learners", "membership")
_REQUEST_STATES = ("queued", "committed", "applied", "abandoned", "unknown", "pending", "none")
_READ_STATES = ("ready", "abandoned", "pending")


def _parse_predicate(word: str) -> tuple[str, str, str, str]:
    """(name, key, op, value): key is the KEY of kv.KEY / req.K (else ""); op and value are "" for a flag."""
    if word in _FLAGS:
        return word, "", "", ""
    match = _PREDICATE.match(word)
    if match is None:
        raise ValueError(f"unknown predicate {word!r}")
    name, op, value = match.groups()
    key = ""
    if name.startswith(("kv.", "req.", "read.")):
        name, key = name.split(".", 1)
        if not key:
            raise ValueError(f"{word!r}: a key is missing after {name}.")
    if name in _NUMERIC:
        _int(value, name)
    elif name in _VALUED or name == "kv":
        if op != "=":
            raise ValueError(f"{word!r}: {name} is compared with '=' only")
        if name in ("leader", "vote") and value != "none":
            _int(value, name, 0)
        elif name in ("leaders", "leader-among") and (name == "leader-among" or value != "none"):
            [_int(v, "node", 0) for v in value.split(",")]
        elif name == "role" and value not in ("leader", "candidate", "follower"):
            raise ValueError(f"{word!r}: role must be leader, candidate or follower")
        elif name == "voters" or (name == "learners" and value != "none"):
            [_int(v, "node", 0) for v in value.split(",")]
        elif name == "membership" and value not in MEMBERSHIPS:
            raise ValueError(f"{word!r}: membership is one of {', '.join(MEMBERSHIPS)}")
        elif (name == "log" and value != "empty") or name == "entry":
            _entries(value)
        elif name == "no-entry":
            _int(value, "index", 1)
        elif name == "req":
            _int(key, "request number", 1)
            if value not in _REQUEST_STATES:
                raise ValueError(f"{word!r}: a request's state is one of {', '.join(_REQUEST_STATES)}")
        elif name == "read":
            number, _, field = key.partition(".")
            _int(number, "read number", 1)
            if field not in ("", "value"):
                raise ValueError(f"{word!r}: a read's predicate is read.K=STATE or read.K.value=VALUE")
            if not field and value not in _READ_STATES:
                raise ValueError(f"{word!r}: a read's state is one of {', '.join(_READ_STATES)}")
    else:
        raise ValueError(f"unknown predicate {word!r}")
    return name, key, op, value


def _entries(text: str) -> list[tuple[int, int]]:
    result = []
    for item in text.split(","):
        index, _, term = item.partition(":")
        result.append((_int(index, "index", 1), _int(term, "term", 0)))
    return result


# ----- running -----------------------------------------------------------------------------------------


class _Failure(Exception):
    """A predicate that does not hold (its message says why)."""


@dataclass
class Block:
    """One command's result: what it was expected to print, and what it printed."""

    command: Command
    expected: str | None  # None: the command was written without an output
    actual: str
    failed: bool = False  # a check that failed, or a run-until that timed out

    @property
    def matches(self) -> bool:
        return self.expected == self.actual

    def __iter__(self) -> Iterator[Any]:  # so that `for command, expected, actual in result` works
        return iter((self.command, self.expected, self.actual))


@dataclass
class TranscriptResult:
    """The outcome of running a transcript: one `Block` per command, and the simulation at the end."""

    transcript: Transcript
    blocks: list[Block]
    sim: Simulation | None

    def __iter__(self) -> Iterator[Block]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def mismatches(self) -> list[Block]:
        return [b for b in self.blocks if not b.matches]

    @property
    def failures(self) -> list[Block]:
        """The blocks whose check failed or whose run-until timed out."""
        return [b for b in self.blocks if b.failed]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.failures

    def actual_text(self) -> str:
        """The transcript's text with the actual outputs."""
        return self.transcript.with_outputs([b.actual for b in self.blocks])

    def diff(self) -> str:
        """A readable report: each mismatching command by file and line, then a unified diff of the file
        (``-`` expected, ``+`` actual); each failed check with its output. Empty if all is well."""
        path = self.transcript.path
        parts = []
        for b in self.mismatches:
            differs = "has no expected output yet ('----' and the output; --rewrite-transcripts adds them)" \
                if b.expected is None else "differs"
            parts.append(f"{path}:{b.command.line}: the output of `{b.command.text}` {differs}")
        if self.mismatches:
            expected = "\n".join(self.transcript.lines) + "\n"
            parts.append("".join(difflib.unified_diff(
                expected.splitlines(keepends=True), self.actual_text().splitlines(keepends=True),
                fromfile=f"{path} (expected)", tofile=f"{path} (actual)")).rstrip("\n"))
        for b in self.failures:
            fails = "\n".join(f"    {line}" for line in b.actual.splitlines() if line.startswith("FAIL"))
            parts.append(f"{path}:{b.command.line}: `{b.command.text}` failed:\n{fails}")
        return "\n".join(parts)


class _Runner:
    """Runs the commands of one transcript on one simulation."""

    def __init__(self, transcript: Transcript, replica_class: type[Replica] = Replica, seed: int | None = None,
                 simulation_class: type[Simulation] = Simulation) -> None:
        self.transcript = transcript
        self.replica_class, self.seed, self.simulation_class = replica_class, seed, simulation_class
        self._sim: Simulation | None = None
        self.machine = "kv"
        self.requests: list[Any] = []  # Submission handles, request #k at k - 1
        self.reads: list[ReadRequest] = []  # ReadRequest handles, read #k at k - 1
        self.labels: dict[str, str] = {}  # repr(transition) -> "request #k (put x=1)"
        self.trace_mark = 0  # the events shown by `trace` so far
        self.failed = False

    def run(self, command: Command) -> str:
        self.failed = False
        handler = getattr(self, "do_" + command.name.replace("-", "_"))
        if command.name != "sim" and self._sim is None:
            raise self._error(command, "the first command must be 'sim'")
        try:
            if _SPECS[command.name].traced:
                start = len(self.sim.trace)
                extra = handler(command) or []
                return self._traced(command, start, extra)
            return handler(command)
        except TranscriptError:
            raise
        except Exception as error:
            raise self._error(command, f"`{command.text}` raised {type(error).__name__}: {error}") from error

    @property
    def sim(self) -> Simulation:
        assert self._sim is not None, "the first command makes the simulation"
        return self._sim

    def _error(self, command: Command, message: str) -> TranscriptError:
        return TranscriptError(self.transcript.path, command.line, message)

    # ----- output --------------------------------------------------------------------------------------
    def _traced(self, command: Command, start: int, extra: list[str]) -> str:
        if "quiet" in command.options:  # nothing, unless it failed
            return "\n".join(extra if self.failed else [])
        everything = command.name in ("step", "deliver", "deliver-msg")
        lines = self._explain(self.sim.trace.events[start:], command, everything) + extra
        return "\n".join(lines) if lines else "(nothing notable happened)"

    def _explain(self, events: list[TraceEvent], command: Command, everything: bool) -> list[str]:
        show = _kinds(command.options.get("show", ""))
        everything = everything or "verbose" in command.options
        return [self._line(e) for e in events if everything or e.kind in show or _notable(e)]

    def _line(self, event: TraceEvent) -> str:
        line = event.explain()
        if event.kind in SimKind.CLIENT:
            text = event.data.get("transition")
            if isinstance(text, str) and text in self.labels:
                line = line.replace(text, self.labels[text])
        return line

    # ----- helpers -------------------------------------------------------------------------------------
    def _node(self, command: Command, text: str) -> int:
        node = int(text)
        if node not in self.sim.ids:
            raise self._error(command, f"node {node} does not exist: the nodes are 0-{self.sim.n - 1}")
        return node

    def _frame(self) -> Frame:
        return self.sim.frame()

    def _scope(self, command: Command) -> list[int]:
        scope = _scope_words(command.options.get("on", "live"))
        if scope == "all":
            return list(self.sim.ids)
        if scope == "live":
            return [i for i in self.sim.ids if not self.sim.replicas[i].crashed]
        return [self._node(command, str(i)) for i in scope]

    def _label(self, transition: Any) -> str:
        """A short name for a log entry's transition: "no-op", "#2 put x=1", "add 5", ..."""
        if transition == self.sim.noop:
            return "no-op"
        text = _describe(transition)
        for k, handle in enumerate(self.requests, 1):
            if handle is not None and handle.id == transition.get_id():
                return f"#{k} {text}"
        return text

    # ----- commands that build or change the simulation --------------------------------------------------
    def do_sim(self, c: Command) -> str:
        o = c.options
        self.machine = o.get("machine", "kv")
        from ..machines import Counter, KVStore

        network = NetworkModel()
        if "latency" in o:
            network.latency = _pair(o["latency"], "latency")
        for key in ("drop", "duplicate"):
            if key in o:
                setattr(network, key, _probability(o[key], key))
        kwargs: dict[str, Any] = {}
        if "heartbeat" in o:
            kwargs["heartbeat_timeout"] = _float(o["heartbeat"], "heartbeat")
        if "election" in o:
            kwargs["election_timeout"] = _pair(o["election"], "election")
        delta = int(o.get("snapshot_delta", o.get("snapshot-delta", "0")))
        replica_class = self.replica_class
        if "max-entries" in o:
            replica_class = type(f"Limited{replica_class.__name__}", (replica_class,),
                                 {"MAX_ENTRIES_PER_MESSAGE": int(o["max-entries"])})
        seed = int(o["seed"]) if self.seed is None else self.seed
        for flag in ("pre-vote", "check-quorum", "read-lease"):  # the Replica options beyond Figure 2
            if flag in o:
                kwargs[flag.replace("-", "_")] = True
        if "drift-bound" in o:
            kwargs["drift_bound"] = _float(o["drift-bound"], "drift-bound")
        if "max-inflight" in o:
            kwargs["max_inflight"] = int(o["max-inflight"])
        try:
            self._sim = self.simulation_class(int(o["n"]), seed=seed, network=network,
                                  state_machine=KVStore if self.machine == "kv" else Counter, snapshot_delta=delta,
                                  replica_class=replica_class, **kwargs)
        except ValueError as error:
            raise self._error(c, str(error)) from None
        sim = self.sim
        low, high = sim.election_timeout
        net = sim.network
        lines = [f"{sim.n} nodes (0-{sim.n - 1}), seed {sim.seed}, "
                 f"{'KV store' if self.machine == 'kv' else 'counter'}; election timeout {low:.3f}-{high:.3f}s, "
                 f"heartbeat {sim.heartbeat_timeout:.3f}s",
                 f"network: latency {net.latency[0]:.3f}-{net.latency[1]:.3f}s, drop {net.drop:g}, "
                 f"duplicate {net.duplicate:g}"]
        extras = []
        if delta:
            extras.append(f"snapshot every {delta} applied entries")
        if "max-entries" in o:
            k = int(o["max-entries"])
            extras.append(f"at most {k} entr{'y' if k == 1 else 'ies'} per AppendEntries")
        if "max-inflight" in o:
            extras.append(f"up to {sim.options['max_inflight']} AppendEntries in flight per follower")
        beyond: list[str] = [name for name in ("pre-vote", "check-quorum") if name in o]
        if "read-lease" in o:
            beyond.append(f"read lease (drift bound {sim.options.get('drift_bound', 1.1):g})")
        elif "drift-bound" in o:
            beyond.append(f"drift bound {sim.options['drift_bound']:g}")
        if beyond:
            extras.append("options: " + ", ".join(beyond))
        if extras:
            lines.append("; ".join(extras))
        return "\n".join(lines)

    def do_run(self, c: Command) -> None:
        self.sim.run(_float(c.args[0], "seconds"))

    def do_run_until(self, c: Command) -> list[str]:
        timeout = _float(c.options.get("timeout", "5"), "timeout")
        self.sim.run_until(lambda s: not self._evaluate(c), timeout)
        failures = self._evaluate(c)
        if failures:
            self.failed = True
            return [f"FAIL: not reached within {timeout:g}s (now {self.sim.now:.4f}s): {why}" for why in failures]
        return []

    def do_step(self, c: Command) -> list[str]:
        count = int(c.args[0]) if c.args else 1
        for _ in range(count):
            if self.sim.step() is None:
                return ["(nothing left to happen)"]
        return []

    def do_deliver(self, c: Command) -> list[str]:
        count = int(c.args[0]) if c.args else 1
        for _ in range(count):
            if not self.sim.in_flight():
                return ["(no message in flight)"]
            while True:
                event = self.sim.step()
                if event is None:
                    return ["(nothing left to happen)"]
                if event.kind in (SimKind.DELIVER, SimKind.DROP):
                    break
        return []

    def _each_node(self, c: Command, action: Callable[[int], None]) -> None:
        for text in c.args:
            action(self._node(c, text))

    def do_crash(self, c: Command) -> None:
        self._each_node(c, self.sim.crash)

    def do_restart(self, c: Command) -> None:
        self._each_node(c, self.sim.restart)

    def do_disconnect(self, c: Command) -> None:
        self._each_node(c, self.sim.disconnect)

    def do_connect(self, c: Command) -> None:
        self._each_node(c, self.sim.connect)

    def do_timeout(self, c: Command) -> None:
        self._each_node(c, self.sim.force_timeout)

    def do_heartbeat(self, c: Command) -> None:
        self._each_node(c, self.sim.force_heartbeat)

    def do_partition(self, c: Command) -> None:
        groups = [[self._node(c, str(n)) for n in g] for g in _groups(c.args)]
        self.sim.partition(*groups)

    def do_heal(self, c: Command) -> None:
        self.sim.heal()

    def do_cut(self, c: Command) -> None:
        source = self._node(c, c.args[0])
        for text in c.args[1:]:
            self.sim.cut(source, self._node(c, text))

    def do_uncut(self, c: Command) -> None:
        source = self._node(c, c.args[0])
        for text in c.args[1:]:
            self.sim.uncut(source, self._node(c, text))

    def do_drop_next(self, c: Command) -> list[str]:
        a, b = self._node(c, c.args[0]), self._node(c, c.args[1])
        self.sim.drop_next(a, b)
        return [f"the next message from node {a} to node {b} will be lost"]

    def do_drop_in_flight(self, c: Command) -> list[str]:
        source = self._node(c, c.options["from"]) if "from" in c.options else None
        destination = self._node(c, c.options["to"]) if "to" in c.options else None
        chosen = [f for f in self.sim.in_flight()
                  if source in (None, f.source) and destination in (None, f.destination)]
        for flight in chosen:
            self.sim.drop_message(flight.id)
        return [] if chosen else ["(no such message in flight)"]

    def do_drop_msg(self, c: Command) -> None:
        self.sim.drop_message(int(c.args[0]))

    def do_deliver_msg(self, c: Command) -> None:
        self.sim.deliver_message(int(c.args[0]))  # (no transcript command pauses a node: it is delivered)

    def do_duplicate_msg(self, c: Command) -> list[str]:
        message_id = int(c.args[0])
        return [f"message {self.sim.duplicate_message(message_id)} is a copy of message {message_id}"]

    def do_network(self, c: Command) -> None:
        o, net = c.options, self.sim.network
        if "latency" in o:
            net.latency = _pair(o["latency"], "latency")
        for key in ("drop", "duplicate"):
            if key in o:
                setattr(net, key, _probability(o[key], key))

    def do_link(self, c: Command) -> None:
        o = c.options
        self.sim.network.set_link(self._node(c, c.args[0]), self._node(c, c.args[1]),
                                  latency=_pair(o["latency"], "latency") if "latency" in o else None,
                                  drop=_probability(o["drop"], "drop") if "drop" in o else None,
                                  duplicate=_probability(o["duplicate"], "duplicate") if "duplicate" in o else None)

    def do_unlink(self, c: Command) -> None:
        self.sim.network.clear_link(self._node(c, c.args[0]), self._node(c, c.args[1]))

    def do_transfer(self, c: Command) -> None:
        self.sim.transfer_leadership(self._node(c, c.args[0]))

    def do_read(self, c: Command) -> list[str]:
        to = self._node(c, c.options["to"]) if "to" in c.options else None
        handle = self.sim.read(c.args[0], to=to)
        self.reads.append(handle)
        if "wait" in c.options:
            self.sim.run_until(lambda s: handle.state is not None, 5.0)
            if handle.state is None:
                self.failed = True
                return [f"FAIL: read #{len(self.reads)} was not answered within 5s"]
        return []

    def do_clock(self, c: Command) -> None:
        self.sim.set_clock_rate(self._node(c, c.args[0]), _float(c.args[1], "rate"))

    def do_add_node(self, c: Command) -> list[str]:
        self.sim.add_node()
        return self._change(c, self.sim.changes[-1])

    def do_promote(self, c: Command) -> list[str]:
        return self._change(c, self.sim.promote(self._node(c, c.args[0])))

    def do_remove_node(self, c: Command) -> list[str]:
        return self._change(c, self.sim.remove_node(self._node(c, c.args[0])))

    def do_propose_config(self, c: Command) -> list[str]:
        config = _configuration(c.options)
        for node in config.members:
            self._node(c, str(node))
        to = self._node(c, c.options["to"]) if "to" in c.options else None
        return self._change(c, self.sim.submit(config, to=to))

    def _change(self, c: Command, handle: Submission) -> list[str]:
        """A membership change proposed: request #k; with wait, run until it is committed."""
        self.requests.append(handle)
        k = len(self.requests)
        self.labels[repr(handle.transition)] = f"request #{k} ({_describe(handle.transition)})"
        if "wait" in c.options:
            try:
                self.requests[k - 1] = self.sim.run_until_committed(handle, timeout=5.0)
            except TimeoutError:
                self.failed = True
                return [f"FAIL: request #{k} was not committed within 5s"]
        return []

    def do_submit(self, c: Command) -> list[str]:
        to = self._node(c, c.options["to"]) if "to" in c.options else None
        for i in range(1, int(c.options.get("count", "1")) + 1):
            k = len(self.requests) + 1
            transition = _submission(c, self.machine, self.transcript.path, k, i)
            handle = self.sim.submit(transition, to=to)
            self.requests.append(handle)
            self.labels[repr(transition)] = f"request #{k} ({_describe(transition)})"
        if "wait" in c.options:
            self.sim.run_until(lambda s: handle.answer is not None or (handle.state is not None
                                                                         and handle.state.final), 5.0)
            if handle.answer is None and not (handle.state is not None and handle.state.final):
                self.failed = True
                return [f"FAIL: request #{k} was not answered within 5s"]
        return []

    # ----- commands that only look ------------------------------------------------------------------------
    def do_check(self, c: Command) -> str:
        failures = self._evaluate(c)
        if failures:
            self.failed = True
            return "\n".join(f"FAIL: {why}" for why in failures)
        return "ok"

    def do_state(self, c: Command) -> str:
        sim, frame = self.sim, self._frame()
        leader = sim.leader()
        head = f"t={sim.now:.4f}s  leader: " + (f"node {leader} (term {sim.replicas[leader].term})"
                                                 if leader is not None else "none")
        members = any(node.membership != "voter" for node in frame.nodes)  # (a column only once it tells something)
        rows = [("node", "role", "term", "vote", "commit", "applied", *(("member",) if members else ()), "log")]
        for node in frame.nodes:
            crashed = node.crashed
            rows.append((str(node.id), _role(node), str(node.term),
                         "-" if node.voted_for is None else str(node.voted_for),
                         "-" if crashed else str(node.commit_index), "-" if crashed else str(node.last_applied),
                         *((node.membership,) if members else ()),
                         _log_text(node.log, node.snapshot_index, node.snapshot_term)))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]) - 1)]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
        lines = [head, *(line.rstrip() for line in table), f"network: {_network_text(sim.ids, frame.cut)}"]
        if frame.learners or frame.voters != tuple(sim.ids) or not frame.config_committed:
            learners = f", learners {','.join(map(str, frame.learners))}" if frame.learners else ""
            lines.append(f"configuration: voters {','.join(map(str, frame.voters))}{learners}"
                         f"{'' if frame.config_committed else ' (not committed yet)'}")
        return "\n".join(lines)

    def do_log(self, c: Command) -> str:
        node = self._node(c, c.args[0])
        frame = self._frame().nodes[node]
        role = _role(frame)
        status = "" if frame.crashed else f": commit {frame.commit_index}, applied {frame.last_applied}"
        lines = [f"node {node} ({role}, term {frame.term}){status}"]
        if frame.snapshot_index:
            lines.append(f"  1-{frame.snapshot_index}  in a snapshot (last term {frame.snapshot_term})")
        if not frame.log and not frame.snapshot_index:
            lines.append("  (empty)")
        width = len(str(frame.log[-1].index)) if frame.log else 1
        labels = [self._label(e.transition) for e in frame.log]
        room = max(map(len, labels), default=0)
        for e, label in zip(frame.log, labels, strict=True):
            mark = "" if frame.crashed or e.index > frame.commit_index else "committed"
            lines.append(f"  {str(e.index).rjust(width)}  term {e.term}  {label.ljust(room)}  {mark}".rstrip())
        return "\n".join(lines)

    def do_in_flight(self, c: Command) -> str:
        from .trace import describe

        flights = self.sim.in_flight()
        if not flights:
            return "(no message in flight)"
        return "\n".join(f"[{f.arrives / 1e6:8.4f}s] message {f.id}, node {f.source} -> node {f.destination}: "
                         f"{describe(f.message)}" for f in flights)

    def do_stats(self, c: Command) -> str:
        sent: dict[str, int] = {}  # message type -> count
        lost: dict[str, int] = {}
        duplicated: dict[str, int] = {}
        tally = {SimKind.SEND: sent, SimKind.DROP: lost, SimKind.DUPLICATE: duplicated}
        for e in self.sim.trace.events:
            counts = tally.get(e.kind)
            if counts is not None:
                message = e.data.get("message")
                kind = message["type"] if isinstance(message, dict) else type(message).__name__
                counts[kind] = counts.get(kind, 0) + 1
        lines = [f"messages sent: {sum(sent.values())}, lost: {sum(lost.values())}, "
                 f"duplicated: {sum(duplicated.values())}"]
        for kind in sorted(sent):
            lines.append(f"  {kind}: sent {sent[kind]}, lost {lost.get(kind, 0)}, duplicated {duplicated.get(kind, 0)}")
        return "\n".join(lines)

    def do_trace(self, c: Command) -> str:
        events = self.sim.trace.events[self.trace_mark:]
        self.trace_mark = len(self.sim.trace)
        lines = self._explain(events, c, False)
        if "last" in c.options:
            lines = lines[-int(c.options["last"]):]
        return "\n".join(lines) if lines else "(nothing notable happened)"

    # ----- predicates ------------------------------------------------------------------------------------
    def _evaluate(self, c: Command) -> list[str]:
        """The reasons the predicates of a check or run-until do not hold (empty: they all hold)."""
        failures = []
        for word in c.args:
            try:
                self._predicate(c, word)
            except _Failure as failure:
                failures.append(f"{word}: {failure}")
        return failures

    def _predicate(self, c: Command, word: str) -> None:
        sim = self.sim
        name, key, op, value = _parse_predicate(word)
        leaders = [i for i in sim.ids if sim.replicas[i].role is Role.LEADER]
        if name == "leader" and not op:
            if sim.leader() is None:
                raise _Failure("no live node is leader")
            return
        if name == "leader":
            wanted = None if value == "none" else self._node(c, value)
            if sim.leader() != wanted:
                raise _Failure(f"the leader is {_node_name(sim.leader())}")
            return
        if name == "leaders":
            wanted_all = [] if value == "none" else sorted(self._node(c, v) for v in value.split(","))
            if leaders != wanted_all:
                raise _Failure(f"the nodes that believe they lead are {_nodes_name(leaders)}")
            return
        if name == "leader-among":
            among = [self._node(c, v) for v in value.split(",")]
            if not any(i in leaders for i in among):
                raise _Failure(f"none of nodes {_nodes_name(among)} believes it leads")
            return
        if name == "one-leader":
            if len(leaders) != 1:
                raise _Failure(f"the nodes that believe they lead are {_nodes_name(leaders)}")
            return
        if name == "req":
            self._request_predicate(c, int(key), value)
            return
        if name == "read":
            self._read_predicate(key, value)
            return
        nodes = self._scope(c)
        if not nodes:
            raise _Failure("no node to check (on= names none, or all are crashed)")
        if name == "same-log":  # the same tip, and the same term at every index two nodes both hold
            frame = self._frame().nodes
            held = {i: {frame[i].snapshot_index: frame[i].snapshot_term, **{e.index: e.term for e in frame[i].log}}
                    for i in nodes}
            tips = {max(h.items()) for h in held.values()}
            clash = any(held[a].get(k, t) != t for a in nodes for b in nodes for k, t in held[b].items() if k)
            if len(tips) != 1 or clash:
                texts = (_log_text(frame[i].log, frame[i].snapshot_index, frame[i].snapshot_term) for i in nodes)
                raise _Failure("; ".join(f"node {i}: {text}" for i, text in zip(nodes, texts, strict=True)))
            return
        bad = []
        for node in nodes:
            why = self._node_predicate(node, name, key, op, value)
            if why is not None:
                bad.append(f"node {node} {why}")
        if bad:
            raise _Failure("; ".join(bad))

    def _node_predicate(self, node: int, name: str, key: str, op: str, value: str) -> str | None:
        """None if the predicate holds on `node`, else what the node has instead."""
        r = self.sim.replicas[node]
        if name == "removed":
            return None if r.removed else "is not removed"
        if name == "membership":
            membership = self.sim.membership(node)
            return None if membership == value else f"is {membership}"
        if name in ("voters", "learners"):
            config = r.configuration
            if config is None:
                return "is crashed"
            ids = sorted(config.voters if name == "voters" else config.learners)
            wanted = [] if value == "none" else sorted(int(v) for v in value.split(","))
            return None if ids == wanted else f"has {name} {_nodes_name(ids)}"
        if name == "crashed":
            return None if r.crashed else "is up"
        if name == "up":
            return "is crashed" if r.crashed else None
        if name in ("committed", "applied", "role", "kv", "counter") and r.crashed:
            return "is crashed"
        if name in _NUMERIC:
            actual = {"term": lambda: r.term, "committed": lambda: r.commit_index, "applied": lambda: r.last_applied,
                      "last-index": lambda: r.last_index, "snapshot": lambda: r.snapshot_index,
                      "counter": lambda: getattr(r.machine, "value", None)}[name]()
            if actual is None or not _OPS[op](actual, int(value)):
                return f"has {name} {actual}"
            return None
        if name == "role":
            role = "crashed" if r.role is None else r.role.value
            return None if role == value else f"is {role}"
        if name == "vote":
            vote = None if value == "none" else int(value)
            return None if r.voted_for == vote else f"voted for {_node_name(r.voted_for)}"
        frame = self._frame().nodes[node]
        held = {e.index: e.term for e in frame.log}
        if name == "log":
            entries = [] if value == "empty" else _entries(value)
            pairs = [(e.index, e.term) for e in frame.log]
            return None if pairs == entries else f"holds {_log_text_pairs(frame.snapshot_index, pairs)}"
        if name == "entry":
            missing = [f"{i}:{t}" for i, t in _entries(value) if held.get(i) != t]
            if missing:
                return f"holds {_log_text_pairs(frame.snapshot_index, sorted(held.items()))}"
            return None
        if name == "no-entry":
            index = int(value)
            if index <= frame.snapshot_index or index in held:
                return f"holds an entry at index {index}"
            return None
        if name == "kv":
            stored = r.machine.read(key) if hasattr(r.machine, "read") else None
            return None if stored == (None if value == "none" else value) else (
                f"has {key}={'none' if stored is None else stored}")
        raise AssertionError(name)

    def _request_predicate(self, c: Command, k: int, value: str) -> None:
        if k > len(self.requests):
            raise _Failure(f"there is no request #{k} yet ({len(self.requests)} submitted)")
        handle = self.requests[k - 1]
        nodes = self._scope(c) if "on" in c.options else [handle.node]
        bad = []
        for node in nodes:
            state = handle.states.get(node)
            if not _request_state_is(state, value):
                bad.append(f"on node {node} it is {'none' if state is None else state.value}")
        if bad:
            raise _Failure("; ".join(bad))


    def _read_predicate(self, key: str, value: str) -> None:
        number, _, field = key.partition(".")
        k = int(number)
        if k > len(self.reads):
            raise _Failure(f"there is no read #{k} yet ({len(self.reads)} asked)")
        read = self.reads[k - 1]
        state = "pending" if read.state is None else "ready" if read.state is ReadState.READY else "abandoned"
        if field == "value":
            if state != "ready":
                raise _Failure(f"read #{k} is {state}, so it read no value")
            wanted = None if value == "none" else value
            if read.value != wanted:
                raise _Failure(f"read #{k} read {'none' if read.value is None else read.value}")
        elif state != value:
            raise _Failure(f"read #{k} is {state}")


def _request_state_is(state: TransitionState | None, value: str) -> bool:
    if value == "none":
        return state is None
    if value == "pending":
        return state in (None, TransitionState.QUEUED, TransitionState.COMMITTED)
    if value == "abandoned":
        return state is not None and state.abandoned
    if value == "unknown":
        return state is TransitionState.UNKNOWN
    return state is not None and state.value == value


def _submission(c: Command, machine: str, path: str, k: int, i: int = 1) -> Any:
    """The transition of a `submit` command: request number k (its client is 1000 + k unless client= is
    given), the i-th of its count= (the value gets the suffix i)."""
    from ..machines import Add, KVStore

    args, o = list(c.args), c.options
    if "count" in o and len(args) > 2:  # put x v count=3: the values v1, v2, v3
        args[-1] = f"{args[-1]}{i}"
    try:
        client = _int(o["client"], "client", 0) if "client" in o else 1000 + k
        seq = _int(o["seq"], "seq", 0) if "seq" in o else 1
        op = args[0]
        if machine == "counter":
            if op != "add" or len(args) != 2:
                raise ValueError("a counter takes 'submit add K'")
            return Add(f"c{client}.{seq}", _int(args[1], "amount"))
        arity = {"put": 2, "get": 1, "append": 2, "delete": 1, "cas": 3}
        if op not in arity:
            raise ValueError(f"unknown operation {op!r}: a KV store takes put, get, append, delete or cas")
        if len(args) - 1 != arity[op]:
            raise ValueError(f"{op} takes {arity[op]} argument(s)")
        if op == "cas":
            expected = None if args[2] == "none" else args[2]
            return KVStore.cas(client, seq, args[1], expected, args[3])
        return getattr(KVStore, op)(client, seq, *args[1:])
    except ValueError as error:
        raise TranscriptError(path, c.line, f"{error}; usage: {_SPECS['submit'].usage}") from None


def _describe(transition: Any) -> str:
    """A transition in the words of the `submit` command: "put x=1", "cas x none->2", "add 5"."""
    if hasattr(transition, "op") and hasattr(transition, "key"):
        op, key, value = transition.op, transition.key, transition.value
        if op == "cas":
            return f"cas {key} {'none' if transition.expected is None else transition.expected}->{value}"
        return {"put": f"put {key}={value}", "get": f"get {key}", "append": f"append {key}+={value}",
                "delete": f"delete {key}"}.get(op, repr(transition))
    if hasattr(transition, "delta"):
        return f"add {transition.delta}"
    if isinstance(transition, Configuration):
        learners = f" learners={','.join(map(str, sorted(transition.learners)))}" if transition.learners else ""
        return f"configuration voters={','.join(map(str, sorted(transition.voters)))}{learners}"
    return repr(transition)


def _role(node: Any) -> str:
    """A `NodeFrame`'s role in a table: its role, or removed, or crashed."""
    if node.role is not None:
        return str(node.role.value)
    return "removed" if node.membership == "removed" and node.crashed else "crashed"


def _node_name(node: int | None) -> str:
    return "none" if node is None else f"node {node}"


def _nodes_name(nodes: list[int]) -> str:
    return "none" if not nodes else ", ".join(str(n) for n in nodes)


def _runs(pairs: list[tuple[int, int]]) -> str:
    """index:term entries, runs of three or more entries of one term as first-last:term."""
    parts, k = [], 0
    while k < len(pairs):
        j = k
        while j + 1 < len(pairs) and pairs[j + 1][1] == pairs[k][1] and pairs[j + 1][0] == pairs[j][0] + 1:
            j += 1
        if j - k >= 2:
            parts.append(f"{pairs[k][0]}-{pairs[j][0]}:{pairs[k][1]}")
        else:
            parts.extend(f"{i}:{t}" for i, t in pairs[k:j + 1])
        k = j + 1
    return " ".join(parts)


def _log_text_pairs(snapshot_index: int, pairs: list[tuple[int, int]] | tuple, snapshot_term: int | None = None) -> str:
    head = ""
    if snapshot_index:
        head = f"[snapshot 1-{snapshot_index}{'' if snapshot_term is None else f':{snapshot_term}'}]"
    body = _runs(list(pairs))
    return " ".join(p for p in (head, body) if p) or "(empty)"


def _log_text(log: tuple, snapshot_index: int, snapshot_term: int) -> str:
    return _log_text_pairs(snapshot_index, [(e.index, e.term) for e in log], snapshot_term)


def _network_text(ids: tuple[int, ...], cut: frozenset[tuple[int, int]]) -> str:
    if not cut:
        return "all links up"
    up = {(a, b) for a in ids for b in ids if a != b and (a, b) not in cut}
    # Groups: nodes joined by links that are up both ways. A clean partition if the cut links are
    # exactly the links between different groups.
    groups: list[set[int]] = []
    for a in ids:
        for g in groups:
            if all((a, b) in up and (b, a) in up for b in g):
                g.add(a)
                break
        else:
            groups.append({a})
    between = {(a, b) for g in groups for h in groups if g is not h for a in g for b in h}
    if between == set(cut):
        alone = [g for g in groups if len(g) == 1]
        if len(alone) == 1 and len(groups) == 2:
            return f"node {next(iter(alone[0]))} disconnected"
        return "partitioned " + " | ".join(" ".join(str(n) for n in sorted(g)) for g in groups)
    return "cut " + ", ".join(f"{a}->{b}" for a, b in sorted(cut))


# ----- the public functions ------------------------------------------------------------------------------


def _load(source: str | Path | Transcript) -> Transcript:
    if isinstance(source, Transcript):
        return source
    if isinstance(source, Path):
        return Transcript.load(source)
    if "\n" in source:
        return Transcript.parse(source)
    if Path(source).is_file():
        return Transcript.load(source)
    return Transcript.load(transcript_path(source))


def run_transcript(source: str | Path | Transcript, *, replica_class: type[Replica] = Replica,
                   seed: int | None = None, simulation_class: type[Simulation] = Simulation) -> TranscriptResult:
    """Run a transcript (a path, the name of a bundled transcript, its text or a parsed `Transcript`):
    every command on one fresh simulation. Returns a `TranscriptResult`: iterate it for
    ``(command, expected, actual)``; `ok`, `mismatches`, `failures` and `diff()` tell how it went.
    A command that cannot run (a bad node id, an exception) raises `TranscriptError` with its line.

    The grader runs the bundled transcripts on other replicas and seeds: `replica_class` replaces the
    core's `Replica` (a student's class, a mutant), `seed` the seed of the ``sim`` line, and
    `simulation_class` the `Simulation` (one with an event budget, say). The outputs then differ from
    the expected ones; the ``check`` commands still say whether the claims hold."""
    transcript = _load(source)
    runner = _Runner(transcript, replica_class, seed, simulation_class)
    blocks = []
    for command in transcript.commands:
        actual = runner.run(command)
        blocks.append(Block(command, command.expected, actual, runner.failed))
    return TranscriptResult(transcript, blocks, runner._sim)


def rewrite(path: str | Path) -> TranscriptResult:
    """Run the transcript at `path` and write the actual outputs into it in place (then review the change
    like code). Returns the result, whose `failures` still tell of failed checks."""
    path = Path(path)
    result = run_transcript(Transcript.load(path))
    text = result.actual_text()
    if text != path.read_text(encoding="utf-8"):
        path.write_text(text, encoding="utf-8")
    return result


def load_scenario(source: str | Path, **options: Any) -> Simulation:
    """The `Simulation` as a transcript (a path, a bundled name or a text) leaves it: for replaying a
    transcript in the RaftLab app. Outputs are not compared; `options` are those of `run_transcript`."""
    sim = run_transcript(source, **options).sim
    assert sim is not None  # a parsed transcript starts with `sim`
    return sim
