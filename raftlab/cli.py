"""The `raftlab` command. Each subcommand has ``--help``:

- ``demo``: Little Raft's example, three replicas on threads in real time (raftlab.demo);
- ``lab``: the main job, JupyterLab on the course notebooks (raftlab.lab);
- ``simulate``: a simulated run in virtual time, narrated (raftlab.sim);
- ``chaos``: random faults on many seeds, safety, linearizability and liveness checked (raftlab.sim.chaos);
- ``transcript``: run (or ``--rewrite``) scenario transcripts (raftlab.sim.transcript);
- ``app``: the RaftLab app alone in the browser, through Voila (raftlab.lab.run_app);
- ``figure16``: the paper's leader-election experiment (raftlab.sim.figure16);
- ``grade``: the autograder and its self-check (raftlab.grading); ``assignments``: the graded notebooks as an
  nbgrader course (raftlab.lab.write_course);
- ``mc``: model checking, every schedule of a small cluster explored (raftlab.mc);
- ``node``, ``kv``, ``cluster``, ``soak``: a real cluster over TCP (raftlab.net.commands).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Executor


def _bar(total: int, desc: str, unit: str) -> _Progress:
    """A progress bar on stderr: tqdm's (counts, rate, ETA) on a terminal; in a log that is not one
    (where a bar's frames would pile up on one line), or without tqdm, one line at the end."""
    return _Progress(total, desc, unit)


class _Progress:
    """See `_bar`. Use it as a context manager; `update(k)` and `set_postfix(...)` as tqdm's."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        import time

        self.total, self.desc, self.unit, self.n, self.postfix = total, desc, unit, 0, ""
        self.started = time.perf_counter()
        self.bar: Any = None
        if sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover (tqdm comes with raftlab[mc] and raftlab[jupyter])
                return
            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=sys.stderr, mininterval=0.5)

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        if self.bar is not None:
            self.bar.close()
            return
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit} in {time.perf_counter() - self.started:.1f} s{extra}",
              file=sys.stderr)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _delay_ms(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of milliseconds, 0 or more, not {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _engine(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """Where a command's tasks run: `--workers` (the caller adds it to the group returned) or
    `--scheduler`, never both (argparse refuses the pair). See `_executor`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the tasks on the Dask cluster whose scheduler is at ADDRESS (e.g. "
                            "tcp://HOST:8786) instead of local processes; not with --workers; needs "
                            "pip install 'raftlab[dask]'. The same seeds give the same results as here")
    return group


@contextlib.contextmanager
def _executor(args: Any, default_workers: int, *, one_here: bool = True) -> Iterator[Executor | None]:
    """The executor a command runs its tasks on (see `_engine`): with `--scheduler ADDRESS`, the Dask
    cluster's (`distributed.Client(ADDRESS).get_executor()`, closed at the end); else a process pool of
    `--workers` (or `default_workers`) processes; or None, for one worker and `one_here` (the caller
    then runs its tasks in this process). Exits with a message if Dask is missing or the scheduler cannot
    be reached."""
    if getattr(args, "scheduler", None) is not None:
        try:
            from distributed import Client
        except ImportError:
            sys.exit("raftlab: --scheduler needs Dask's distributed scheduler: pip install 'raftlab[dask]'")
        try:
            client = Client(args.scheduler)
        except (OSError, ValueError) as error:
            sys.exit(f"raftlab: cannot connect to the Dask scheduler at {args.scheduler}: {error}")
        with client, client.get_executor() as executor:
            yield executor
        return
    workers = getattr(args, "workers", None) or default_workers
    if workers == 1 and one_here:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        yield pool


def main(argv: list[str] | None = None) -> int:
    """Run the `raftlab` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="raftlab", description="Learn, test and run Raft.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="Little Raft's example: three replicas on threads, a calculator")
    demo.add_argument("--replicas", type=int, default=3, help="number of replicas (default 3)")
    demo.add_argument("--transitions", type=int, default=10, help="operations to submit (default 10)")
    demo.add_argument("--drop", type=float, default=0.0, help="fraction of messages lost (default 0)")
    demo.add_argument("--seed", type=int, default=1, help="seed for timers and operations (default 1)")

    simulate = commands.add_parser("simulate", help="narrate a simulated run in virtual time")
    simulate.add_argument("--nodes", type=_positive_int, default=5, help="cluster size (default 5)")
    simulate.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    simulate.add_argument("--duration", type=_positive_float, default=10.0, help="virtual seconds (default 10)")
    simulate.add_argument("--drop", type=_probability, default=0.0, help="message loss rate (default 0)")
    simulate.add_argument("--trace", metavar="FILE", help="also save the trace as JSON Lines")
    simulate.add_argument("--quiet", action="store_true", help="print only the summary")

    chaos = commands.add_parser(
        "chaos", help="random faults on many seeds; checks safety, linearizability, liveness",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A chaos campaign: each seed draws its own mix of faults, its snapshot_delta and the replicas' "
                    "options\n(PreVote, CheckQuorum, lease reads; swarm testing), then runs KV clients, writing "
                    "through the log and\nreading without it (ReadIndex or a lease), under crashes, partitions "
                    "(some isolating the leader),\none-way partitions, a ring of majorities, pauses, leadership "
                    "transfers, clock drift within the\ndrift bound, loss and duplication, and membership changes "
                    "(nodes added as learners, promoted\nand removed, the leader too); invariants, linearizability "
                    "(reads included) and recovery after a\nfinal heal (every member catches up) are checked "
                    "(raftlab.sim.chaos).",
        epilog="exit codes (the most serious kind of failure seen decides):\n"
               "  0  every seed clean\n"
               "  3  safety: an invariant of Raft was violated\n"
               "  4  linearizability: a client history is not linearizable\n"
               "  5  liveness: after the final heal, the cluster did not catch up and commit a write within 5 s\n"
               "  6  undecided: the linearizability check ran out of time (never counted as a pass)\n"
               "Each failure is reported with its seed's swarm and the command that replays it.")
    chaos.add_argument("--seeds", type=_positive_int, default=20, help="how many seeds (default 20)")
    chaos.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    chaos.add_argument("--duration", type=_positive_float, default=30.0, help="virtual seconds per seed (default 30)")
    chaos.add_argument("--nodes", type=_positive_int, default=5, help="cluster size (default 5)")
    _engine(chaos).add_argument("--workers", "--jobs", type=_positive_int, default=1,
                                help="processes to use (default 1)")
    chaos.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    from .grading import GRADED_PARTS

    grade = commands.add_parser("grade", help="grade a student's Raft (raftlab.grading) or a folder of them")
    grade.add_argument("path", nargs="?", help="a .py file or a notebook defining a subclass of StudentReplica (the "
                                               "one named by STUDENT_CLASS, else the only one), or a folder of "
                                               "them (or nbgrader's submitted/ folder)")
    grade.add_argument("--part", choices=list(GRADED_PARTS), help="grade one part only (default: all): "
                       + "; ".join(f"{p} {what}" for p, what in GRADED_PARTS.items()))
    grade.add_argument("--seeds", type=_positive_int, default=3, help="seeds per scenario (default 3)")
    grade.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1; keep it secret "
                                                                 "for final grading)")
    grade.add_argument("--secret-seeds", type=_positive_int, metavar="N",
                       help="also run each scenario on N seeds drawn from $RAFTLAB_SECRET, never shown in a report")
    grade.add_argument("--timeout", type=_positive_float, default=30.0, help="wall seconds per check (default 30)")
    grade.add_argument("--jobs", type=_positive_int, help="students graded at once (default: processors)")
    grade.add_argument("--json", action="store_true", help="print JSON lines instead of the text report")
    grade.add_argument("--csv", metavar="FILE", help="write one CSV row per student")
    grade.add_argument("--model-check", action="store_true",
                       help="add the model-checking part M (raftlab.mc): every schedule of a small cluster searched "
                            "for a safety violation, which fails the part (20 points)")
    grade.add_argument("--together", action="store_true",
                       help="add the integration view (part T, not in the score): the scenarios of parts A-D run "
                            "with the student's whole class, and a failure is rerun with each part in turn the "
                            "reference's, to name the part that breaks it")
    grade.add_argument("--self-check", action="store_true",
                       help="grade the reference, the skeleton and every planted mutant; exit 1 unless each "
                            "mutant is caught, and loses points in no check of another rule but integration checks")
    lab = commands.add_parser("lab", help="JupyterLab on the course notebooks (copied to a folder of your own)")
    lab.add_argument("--dir", default="raftlab-notebooks", help="working folder for the notebooks; missing ones are "
                                                                "copied there, none is overwritten "
                                                                "(default ./raftlab-notebooks)")
    lab.add_argument("--port", type=_positive_int, help="port for JupyterLab (default: its own, 8888 or the next free)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="after --: more arguments for jupyter lab")
    assignments = commands.add_parser("assignments", help="write the graded assignments as an nbgrader course")
    assignments.add_argument("--dir", default="course", help="the course folder: nbgrader_config.py and "
                                                             "source/part_a ... part_d (default ./course; "
                                                             "nothing there is overwritten)")
    app = commands.add_parser("app", help="the RaftLab app alone in the browser, through Voila (no code cells)")
    app.add_argument("--nodes", type=int, choices=range(1, 10), metavar="{1..9}", default=5,
                     help="cluster size (default 5; the app shows at most 9)")
    app.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    app.add_argument("--port", type=_positive_int, help="port for Voila (default: its own, 8866 or the next free)")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser")
    app.add_argument("voila_args", nargs=argparse.REMAINDER, help="after --: more arguments for voila")
    from .net.commands import COMMANDS as NET_COMMANDS, add_parsers as add_net_parsers, run as run_net

    add_net_parsers(commands)  # node, kv, cluster (raftlab.net)
    figure16 = commands.add_parser("figure16", help="reproduce Figure 16 of the Raft paper (leader election times)")
    figure16.add_argument("--trials", type=_positive_int, default=1000,
                          help="trials per line (default 1000; the 150-150 line runs a tenth, as in the paper)")
    _engine(figure16).add_argument("--workers", type=_positive_int, help="processes to use (default: processors)")
    figure16.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    figure16.add_argument("--latency-ms", type=_delay_ms, nargs=2, metavar=("LOW", "HIGH"),
                          help="one-way message delay range, ms, drawn uniformly (default: from 0, such that a "
                               "broadcast takes the paper's broadcast time; see raftlab.sim.figure16)")
    figure16.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    mc = commands.add_parser("mc", help="model-check the Replica (or a planted bug): every schedule of a small "
                                        "cluster, breadth-first (raftlab.mc)")
    mc.add_argument("--nodes", type=_positive_int, help="replicas (default 3)")
    mc.add_argument("--max-term", type=_positive_int, help="highest term explored (default 3)")
    mc.add_argument("--max-log", type=int, help="longest log explored (default 3)")
    mc.add_argument("--depth", type=_positive_int, help="actions in a run (default 20)")
    mc.add_argument("--max-messages", type=int, help="most messages in flight at once (default: no bound); a "
                                                     "bounded network lets a search finish its whole space")
    for name, default, what in (("crashes", 1, "crashes"), ("drops", 1, "messages lost"),
                                ("duplicates", 0, "messages duplicated"), ("submits", 1, "client transitions"),
                                ("transfers", 0, "leadership transfers"),
                                ("changes", 0, "configuration changes (a member removed)"),
                                ("reads", 0, "linearizable reads (ReadIndex)"),
                                ("ticks", 0, "passings of time, by half the minimum election timeout (leases)")):
        mc.add_argument(f"--{name}", type=int, help=f"{what} a run may have (default {default})")
    mc.add_argument("--mutant", metavar="NAME", help="check a planted bug of the grader (raftlab.grading.mutants) "
                                                     "instead of the Replica, within the search that catches it "
                                                     "(raftlab.mc.planted: its bounds and options, for each one "
                                                     "not given here)")
    mc.add_argument("--max-entries", type=_positive_int, help="at most this many entries per AppendEntries "
                                                              "(default: the replica's own limit)")
    mc.add_argument("--pre-vote", action="store_true", default=None, help="the replicas ask for pre-votes (PV-*)")
    mc.add_argument("--read-lease", action="store_true", default=None,
                    help="the replicas have CheckQuorum and read leases (RI-LEASE; see raftlab.mc.Model)")
    mc.add_argument("--safety-only", action="store_true", help="check the safety properties only, not the rules "
                                                               "one step decides (to see where a broken rule leads)")
    mc.add_argument("--replica", metavar="FILE", help="check the StudentReplica subclass in FILE (as raftlab grade "
                                                      "loads it; exercises not written come from the library)")
    mc.add_argument("--snapshot-delta", type=int, help="as for Replica (default 0: never compact)")
    mc.add_argument("--random", type=_positive_int, metavar="WALKS", help="take WALKS seeded random walks instead "
                                                                          "of the breadth-first search")
    mc.add_argument("--seed", type=int, default=1, help="the random walks' seed (default 1)")
    _engine(mc).add_argument("--workers", type=_positive_int, default=1,
                             help="processes to split the breadth-first search over (default 1: no split); "
                                  "split, states that several parts reach count in each, so the figures depend on "
                                  "the number of worker processes or threads, the verdict does not")
    mc.add_argument("--time-budget", type=_positive_float, default=600.0, help="stop after this many seconds "
                                                                               "(default 600)")
    mc.add_argument("--no-symmetry", action="store_true", help="do not identify states that differ only by the "
                                                               "nodes' names")
    mc.add_argument("--save", metavar="FILE", help="write the counterexample found as a scenario transcript")
    mc.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    transcript = commands.add_parser("transcript", help="run scenario transcripts and compare their outputs")
    transcript.add_argument("files", nargs="+", metavar="FILE", help="transcript files, or names of bundled ones")
    transcript.add_argument("--rewrite", action="store_true",
                            help="write the actual outputs into the files (then review the change like code)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        return _demo(parser, args)
    if args.command == "figure16":
        return _figure16(args)
    if args.command == "lab":
        from .lab import run_lab

        return run_lab(args.dir, args.port, args.no_browser, args.jupyter_args)
    if args.command == "assignments":
        from .lab import write_course

        written = write_course(args.dir)
        for path in written:
            print(f"wrote {path}")
        print(f"{len(written)} files written to {args.dir} (files already there are kept). Next, there: "
              f"export RAFTLAB_SECRET=...; nbgrader generate_assignment part_a (see docs/instructors.md)")
        return 0
    if args.command == "app":
        from .lab import run_app

        return run_app(args.nodes, args.seed, args.port, args.no_browser, args.voila_args)
    if args.command in NET_COMMANDS:
        return run_net(parser, args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "grade":
        return _grade(parser, args)
    if args.command == "transcript":
        return _transcript(args)
    if args.command == "mc":
        return _mc(parser, args)
    return _chaos(args)


def _mc(parser: argparse.ArgumentParser, args: Any) -> int:
    import dataclasses

    from .core import Replica
    from .grading import mutants
    from .mc import Bounds, Model, random_walks
    from .mc.planted import NOT_MODELLED, SEARCHES, Search

    replica_class: type[Replica] = Replica
    search = Search(Bounds(), "")
    if args.mutant is not None:
        found = {m.__name__: m for m in mutants.MUTANTS}
        if args.mutant not in found:
            parser.error(f"--mutant: no planted bug named {args.mutant!r}; they are: {', '.join(found)}")
        replica_class = found[args.mutant]
        if args.mutant in NOT_MODELLED:
            print(f"{args.mutant}: the model cannot catch this bug: {NOT_MODELLED[args.mutant]}",
                  file=sys.stderr)
        search = SEARCHES.get(args.mutant, search)
    elif args.replica is not None:
        from .grading import SubmissionError, load_student
        from .grading.modelcheck import written

        try:
            replica_class = written(load_student(args.replica))
        except SubmissionError as error:
            parser.error(f"--replica: {error}")
    try:
        given = {name: getattr(args, name) for name in ("nodes", "max_term", "max_log", "crashes", "drops",
                                                         "duplicates", "submits", "depth", "max_messages",
                                                         "transfers", "changes", "reads", "ticks")}
        bounds = dataclasses.replace(search.bounds, **{k: v for k, v in given.items() if v is not None})
        options = {**search.options, **{k: v for k, v in (("snapshot_delta", args.snapshot_delta),
                                                          ("max_entries", args.max_entries),
                                                          ("pre_vote", args.pre_vote),
                                                          ("read_lease", args.read_lease)) if v is not None}}
        if args.safety_only:
            options["rules"] = False
        model = Model(bounds, replica_class, symmetry=not args.no_symmetry, **options)
    except ValueError as error:
        parser.error(str(error))
    progress = sys.stderr.isatty()
    if args.random:
        if args.scheduler is not None or args.workers > 1:
            parser.error("--random: the walks run here, one after the other (--workers and --scheduler split "
                         "the breadth-first search)")
        result = random_walks(model, args.random, seed=args.seed, time_budget=args.time_budget, progress=progress)
    else:
        with _executor(args, 1) as executor:
            if search.start is not None and executor is not None:
                parser.error(f"--workers, --scheduler: the search for {args.mutant} goes on from a state a first "
                             "search reaches (raftlab.mc.planted), which is not split")
            result = search.run(model, time_budget=args.time_budget, progress=progress, executor=executor)
    print(result.report())
    if result.violations:
        cx = result.violations[0].minimised()
        result.violations[0] = cx
        print(f"\nminimised counterexample ({len(cx.actions)} steps):")
        print(cx.explain())
        if args.save:
            print(f"saved as a scenario transcript: {cx.save(args.save)} "
                  f"(replay: raftlab transcript {args.save}; in a notebook: RaftLab(load_scenario(...)))")
    if args.json:
        print(json.dumps(result.summary()))
    return 1 if result.violations else 0


def _transcript(args: Any) -> int:
    from pathlib import Path

    from .sim.transcript import TranscriptError, rewrite, run_transcript, transcript_path

    status = 0
    for name in args.files:
        try:
            path = Path(name) if Path(name).is_file() else transcript_path(name)
            result = rewrite(path) if args.rewrite else run_transcript(path)
        except (TranscriptError, KeyError, OSError) as error:
            print(f"{name}: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
            status = 2
            continue
        broken = result.failures if args.rewrite else result.mismatches + result.failures
        print(f"{name}: {'FAILED' if broken else 'rewritten' if args.rewrite else 'ok'} ({len(result)} commands)")
        if broken:
            print(result.diff() if not args.rewrite else "\n".join(
                f"{path}:{b.command.line}: `{b.command.text}` failed: {b.actual}" for b in result.failures))
            status = max(status, 1)
    return status


def _demo(parser: argparse.ArgumentParser, args: Any) -> int:
    from .demo import run_demo

    try:
        result = run_demo(args.replicas, args.transitions, drop=args.drop, seed=args.seed)
    except ValueError as error:
        parser.error(str(error))
    values = {c.value for c in result.calculators}
    if not result.converged or len(values) != 1:
        print("the replicas did not agree before the deadline", file=sys.stderr)
        return 1
    print(f"all {args.replicas} replicas agree: value {values.pop()} "
          f"({result.network.sent} messages, {result.seconds:.2f} s)")
    return 0


def _simulate(args: Any) -> int:
    from .machines import KVStore
    from .core import EventKind
    from .sim import NetworkModel, SimKind, Simulation

    sim = Simulation(args.nodes, args.seed, network=NetworkModel(drop=args.drop))
    shown = 0
    narrated = {*EventKind.ROLE_CHANGES, *EventKind.VOTES, EventKind.COMMITTED, EventKind.TRUNCATED,
                EventKind.SNAPSHOT_INSTALLED, *SimKind.CLIENT, SimKind.CRASH, SimKind.RESTART, SimKind.NETWORK,
                EventKind.APPEND_REFUSED}
    seq = 0
    while sim.now < args.duration:
        if sim.leader() is not None and sim.now >= 1.0:
            seq += 1
            sim.submit(KVStore.put(1, seq, f"k{seq % 3}", str(seq)))
        sim.run(min(0.5, args.duration - sim.now))
        if not args.quiet:
            for event in sim.trace.events[shown:]:
                if event.kind in narrated:
                    print(event.explain())
        shown = len(sim.trace)
    leaders = {e.data["term"]: e.node for e in sim.trace.of_kind(EventKind.BECAME_LEADER)}
    commits = max((r.commit_index for r in sim.replicas), default=0)
    messages = sum(sim.counters["messages"].values())
    print(f"\nsummary: {args.duration:g} virtual seconds, {sim.steps} steps, seed {args.seed}")
    print("  leaders by term: " + (", ".join(f"{t}: node {n}" for t, n in sorted(leaders.items())) or "none"))
    print(f"  highest commit index: {commits}; client writes submitted: {seq}")
    print(f"  messages: {messages} ({', '.join(f'{k} {v}' for k, v in sorted(sim.counters['messages'].items()))}); "
          f"lost: {sum(sim.counters['dropped'].values())}")
    print(f"  trace: {len(sim.trace)} events, hash {sim.trace.hash()[:16]}")
    if args.trace:
        sim.trace.save(args.trace)
        print(f"  trace saved to {args.trace}")
    return 0


def _chaos(args: Any) -> int:
    from .sim.chaos import ChaosResult, run_campaign

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    done: Counter = Counter()
    bar = _bar(args.seeds, "chaos", "seeds")

    def progress(result: ChaosResult) -> None:
        done["failed"] += not result.ok
        bar.update(1)
        bar.set_postfix(failed=done["failed"])

    with _executor(args, 1) as executor, bar:
        summary = run_campaign(seeds, args.duration, args.nodes, executor=executor, progress=progress)
    figures = summary.as_dict()
    print(f"{figures['seeds']} seeds of {args.duration:g} s on {args.nodes} nodes: {figures['violations']} "
          f"safety violations, {figures['nonlinearizable']} non-linearizable histories, "
          f"{figures['liveness_failures']} liveness failures, {figures['undecided']} undecided; "
          f"{figures['reads']} reads checked ({figures['seeds_without_reads']} seeds without one; "
          f"{figures['reads_abandoned']} abandoned, {figures['reads_unanswered']} unanswered); "
          f"{figures['install_snapshots']} InstallSnapshot sent; {figures['config_changes_committed']} configuration "
          f"changes committed ({figures['config_changes_proposed']} proposed, {figures['config_changes_refused']} "
          f"refused; {figures['seeds_without_config_changes']} seeds without one); {figures['events']} events "
          f"({figures['events_per_s']}/s, {summary.wall_seconds:.1f} s)")
    for failure in summary.failures:
        print(failure.report())
    if args.json:
        print(json.dumps(figures))
    return summary.exit_code


def _grade(parser: argparse.ArgumentParser, args: Any) -> int:
    from pathlib import Path

    from .grading import grade_many, submissions, write_csv

    if args.self_check:
        from .grading.mutants import self_check

        outcome = self_check(args.seeds, jobs=args.jobs, timeout=args.timeout)
        for row, report in zip(outcome["rows"], outcome["reports"], strict=True):
            if args.json:
                print(json.dumps(row))
            else:
                print(report.text())
                if "broken_rule" in row:
                    elsewhere = (f"; FALSELY BLAMED in {', '.join(row['blamed_elsewhere'])} (checks of other rules)"
                                 if row["blamed_elsewhere"] else "")
                    together = (f"; also failed {', '.join(row['blamed_together'])} (integration checks, which say "
                                f"so)" if row["blamed_together"] else "")
                    print(f"planted bug in {row['broken_rule']}: "
                          f"{'caught by ' + ', '.join(row['caught_by']) if row['caught'] else 'NOT CAUGHT'}"
                          f"{elsewhere}{together}\n")
        summary = outcome["summary"]
        print(json.dumps(summary))
        return 0 if summary["passed"] else 1
    if args.path is None:
        parser.error("grade: give a PATH (a .py file or a folder), or --self-check")
    path = Path(args.path)
    if not path.exists():
        parser.error(f"grade: no such file or folder: {path}")
    files = submissions(path) if path.is_dir() else [path]
    if not files:
        parser.error(f"grade: no .py files or notebooks in {path}")
    try:
        from .grading import secret_seeds

        secret = secret_seeds(args.part or "all", args.secret_seeds) if args.secret_seeds else []
    except ValueError as error:
        parser.error(f"grade --secret-seeds: {error}")
    bar, failing = _bar(len(files), "grade", "students"), Counter[str]()

    def progress(report: Any) -> None:
        failing["failed"] += bool(report.error or report.score < 1.0)
        bar.update(1)
        bar.set_postfix(below_full_marks=failing["failed"])

    with bar:
        reports = grade_many([(f.stem, str(f)) for f in files], args.part, args.seeds, first_seed=args.first_seed,
                             timeout=args.timeout, jobs=args.jobs, secret_seeds=secret, progress=progress,
                             together=args.together)
    if args.model_check:
        from .grading.modelcheck import model_check

        from .grading import CheckResult
        from .grading.modelcheck import ID, POINTS, TITLE

        for f, report in zip(files, reports, strict=True):
            if report.refused:  # (part M runs the class whole, with the exercises that are not its own)
                report.results.append(CheckResult(ID, "M", "Safety properties", TITLE, POINTS, 0, False,
                                                  "refused", message="not graded: " + ", ".join(report.refused)
                                                  + " not your own work (the reasons are at the top of this report)"))
            elif not report.error:
                report.results.append(model_check(str(f)))
    for report in reports:
        print(json.dumps(report.as_dict()) if args.json else report.text() + "\n")
    if args.csv:
        write_csv(reports, args.csv)
        print(f"{len(reports)} rows written to {args.csv}", file=sys.stderr)
    return 1 if not path.is_dir() and reports[0].error else 0  # (a folder: each error is in its report)


def _figure16(args: Any) -> int:
    import os

    from .sim.figure16 import LATENCY, LINES, run_figure16, trials_for

    total = sum(trials_for(line, args.trials) for line in LINES)

    bar = _bar(total, "figure16", "trials")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    with _executor(args, os.cpu_count() or 1, one_here=False) as pool, bar:
        latency = LATENCY if args.latency_ms is None else tuple(sorted(v / 1000 for v in args.latency_ms))
        result = run_figure16(args.trials, executor=pool, progress=progress, seed=args.seed, latency=latency)
    print(f"Figure 16: time from the leader's crash until a new leader is elected (the paper's measure) and "
          f"until it is established (has committed its no-op), ms ({args.trials} trials per line, seed {args.seed}, "
          f"one-way delay {result.latency[0] * 1000:.3g}-{result.latency[1] * 1000:.3g} ms: a broadcast time of "
          f"{result.broadcast_time * 1000:.3g} ms, {result.wall_s:.1f} s)")
    print(result.summary_text())
    print("\nthe paper's figures beside ours (elected; established beside it, which the paper did not measure):")
    print(result.table_text())
    if args.json:
        print(result.json_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
