"""The ``convbench`` command line. Each subcommand is a thin layer over a bench_lib function.

Exit codes (:class:`bench_lib.errors.Exit`): 0 done, nothing got worse; 1 a regression, a slower
combination or a new failure; 2 bad arguments; 3 part of the work failed (the rest is saved); 4 could not
run (machine lock, store unwritable); 5 internal error; 130 stopped by a signal.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from bench_lib import __version__
from bench_lib.cli.common import EXIT_HELP, EXIT_USAGE, default_results
from bench_lib.cli.measuring import add_info, add_measure, add_theory, cmd_workloads
from bench_lib.cli.reading import add_compare, add_export, add_machines, add_regressions, add_report
from bench_lib.cli.running import add_reproduce, add_run, add_selfcheck
from bench_lib.cli.storing import add_store
from bench_lib.errors import ArgumentError, Exit


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block): ``convbench run: error: argument ...``."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convbench", description=__doc__.splitlines()[0], epilog=EXIT_HELP)
    parser.add_argument("--version", action="version", version=f"convbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("workloads", help="list every registered workload with its parameters")
    p.set_defaults(func=cmd_workloads)
    for add in (
        add_theory,
        add_info,
        add_measure,
        add_run,
        add_export,
        add_report,
        add_compare,
        add_regressions,
        add_machines,
    ):
        add(sub)
    add_reproduce(sub)
    add_selfcheck(sub)
    add_store(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code is an :class:`Exit` (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if "results" in args and args.results is None:
        args.results = default_results(getattr(args, "project", None))
    try:
        return int(args.func(args))
    except ArgumentError as e:
        print(f"convbench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as e:  # a failure of the work or a bug: never reported as the user's mistake
        print(f"convbench {args.command}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        traceback.print_exc(limit=-6, file=sys.stderr)
        return Exit.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
