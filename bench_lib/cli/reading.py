"""``convbench export``, ``report``, ``regressions``, ``compare`` and ``machines``: reading the store."""

from __future__ import annotations

import argparse
import sys

from bench_lib.analysis import verdicts
from bench_lib.cli.common import EXIT_FAILED, EXIT_HELP, EXIT_OK, add_results, float_in


def cmd_export(args: argparse.Namespace) -> int:
    from bench_lib.analysis import results

    out, rows = results.export(args.results, args.out, history=args.history)
    print(f"wrote {rows} rows to {out}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from bench_lib.analysis import report

    out, problems = report.build(
        args.results,
        args.out,
        args.analysis,
        machines=args.machine or None,
        publish=not args.no_publish,
        run_notebooks=not args.no_notebooks,
    )
    for p in problems:
        print(f"notebook error: {p}", file=sys.stderr)
    print(f"report: {out.resolve()}")
    return EXIT_FAILED if problems else EXIT_OK


def cmd_regressions(args: argparse.Namespace) -> int:
    from bench_lib.analysis import regressions

    fmt = "json" if args.json else "markdown" if args.markdown else "text"
    return regressions.run(args.results, args.machine, args.since, args.factor, args.alpha, fmt)


def cmd_compare(args: argparse.Namespace) -> int:
    from bench_lib.analysis import compare

    fmt = "json" if args.json else "markdown" if args.markdown else "text"
    return compare.run(args.results, args.baseline, args.candidate, args.factor, args.alpha, fmt)


def cmd_machines(args: argparse.Namespace) -> int:
    from bench_lib.analysis import scoreboard

    fmt = "json" if args.json else "markdown" if args.markdown else "text"
    return scoreboard.run(args.results, args.reference, args.set, args.factor, args.alpha, fmt)


def add_export(sub) -> None:
    p = sub.add_parser("export", help="all results as one tidy table (.parquet or .csv)")
    add_results(p)
    p.add_argument("--out", required=True, metavar="FILE.parquet|FILE.csv")
    p.add_argument("--history", action="store_true", help="every run in the store (default: each combination's newest)")
    p.set_defaults(func=cmd_export)


def add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write report/index.html, execute the notebooks beside it (+ asv publish)", epilog=EXIT_HELP
    )
    add_results(p)
    p.add_argument("--out", default="report")
    p.add_argument("--analysis", default="analysis", help="the notebooks' folder (default %(default)s)")
    p.add_argument("--machine", action="append", help="only these machines (repeatable)")
    p.add_argument("--no-publish", action="store_true", help="skip asv publish into html/")
    p.add_argument("--no-notebooks", action="store_true", help="only the page: skip executing the notebooks")
    p.set_defaults(func=cmd_report)


def add_verdict_options(p, alpha_help: str) -> None:
    """``--factor`` and ``--alpha``, shared by compare and regressions, defaults from :mod:`verdicts`."""
    p.add_argument(
        "--factor",
        type=float_in(1, 100),
        default=verdicts.FACTOR,
        help=f"smallest change worth a verdict (default {verdicts.FACTOR:g})",
    )
    p.add_argument(
        "--alpha",
        type=float_in(0, 0.5, lo_open=True),
        default=verdicts.ALPHA,
        help=f"{alpha_help} (default {verdicts.ALPHA:g})",
    )


def add_regressions(sub) -> None:
    p = sub.add_parser(
        "regressions",
        help="every series of the history judged at its newest runs: regressions that persist, suspects, "
        "machine changes",
        epilog=EXIT_HELP,
    )
    add_results(p)
    p.add_argument(
        "--machine", action="append", metavar="NAME", help="only this machine (repeatable; default: every one)"
    )
    p.add_argument("--since", metavar="DATE", help="only runs started on or after DATE (YYYY-MM-DD[THH:MM], UTC)")
    add_verdict_options(p, "chance per series that noise alone leaves the band")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="the flagged series as a Markdown table")
    fmt.add_argument("--json", action="store_true", help="one JSON object: rule, rows, machine_changes")
    p.set_defaults(func=cmd_regressions)


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="significant slowdowns between two selections of results", epilog=EXIT_HELP)
    add_results(p)
    p.add_argument(
        "--baseline",
        required=True,
        metavar="SELECTOR",
        help="key=value[,...]; keys: machine, env, torch, commit, date, run, side (A/B runs: sides of the same "
        "runs are compared pair by pair), device, dtype, layout, batch, mode (other machines or devices on each "
        "side: how much faster, docs/machines.md)",
    )
    p.add_argument("--candidate", required=True, metavar="SELECTOR")
    add_verdict_options(p, "chance per combination that noise alone is called a change")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)


def add_machines(sub) -> None:
    p = sub.add_parser(
        "machines", help="every machine and device in the store scored against a reference, ranked", epilog=EXIT_HELP
    )
    add_results(p)
    p.add_argument(
        "--reference",
        metavar="MACHINE[:DEVICE]",
        help="the machine·device scored 1 (default: the first in the store to run the set)",
    )
    p.add_argument(
        "--set",
        default="compare",
        metavar="SET",
        help="the workloads scored: compare (the compare grid's, default) or common (what every machine·device ran)",
    )
    add_verdict_options(p, "chance that a score's interval misses its true value")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_machines)
