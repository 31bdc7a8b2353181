"""The `raftlab` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the `raftlab` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="raftlab", description="Learn, test and run Raft.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="Little Raft's example: three replicas on threads, a calculator")
    demo.add_argument("--replicas", type=int, default=3, help="number of replicas (default 3)")
    demo.add_argument("--transitions", type=int, default=10, help="operations to submit (default 10)")
    demo.add_argument("--drop", type=float, default=0.0, help="fraction of messages lost (default 0)")
    demo.add_argument("--seed", type=int, default=1, help="seed for timers and operations (default 1)")
    args = parser.parse_args(argv)

    if args.command == "demo":
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


if __name__ == "__main__":
    sys.exit(main())
