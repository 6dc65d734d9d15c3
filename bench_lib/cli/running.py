"""``convbench run``, ``reproduce`` and ``selfcheck``: grids run through asv into the store."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from typing import Any

from bench_lib.cli.common import (
    CHOICE_HELP,
    EXIT_FAILED,
    EXIT_HELP,
    EXIT_OK,
    GRIDS,
    add_results,
    float_in,
    int_at_least,
    print_json,
)
from bench_lib.errors import MEANING, Exit
from bench_lib.measure import intervals
from bench_lib.suite.guard import LAUNCH_METHODS


def saver(results: str):
    """The store's writer for ``runner.run``: every run saved under ``results``' store."""
    from bench_lib.store import store_path
    from bench_lib.store.writer import RunWriter

    where = store_path(results)

    def save(run, events, peaks, breakdowns):
        return RunWriter(where, run).save(run, events, peaks, breakdowns)

    return save


def cmd_run(args: argparse.Namespace) -> int:
    from bench_lib.suite import runner

    opts = runner.RunOptions(
        grid=args.grid,
        devices=args.device or None,
        bench=args.bench,
        pythons=args.python or [],
        sides=args.side or [],
        pairs=args.pairs,
        budget_s=args.budget * 60.0 if args.budget is not None else None,
        launch_method=args.launch_method,
        chunk_size=args.chunk_size,
        project=args.project,
        rounds=args.rounds,
        wait_s=args.wait,
        lock_gpu_clocks=args.lock_gpu_clocks,
    )
    if not args.json:
        return runner.run(opts, save=saver(args.results))
    saved: list[dict[str, Any]] = []  # the run record of the newest save: what --json reports
    store = saver(args.results)

    def save(run, events, peaks, breakdowns):
        saved[:] = [run]
        return store(run, events, peaks, breakdowns)

    with contextlib.redirect_stdout(sys.stderr):  # progress and the summary go to stderr; stdout is the JSON
        code = runner.run(opts, save=save)
    print_json({"exit_code": int(code), "exit": MEANING[Exit(code)], "run": saved[0] if saved else None})
    return code


def cmd_reproduce(args: argparse.Namespace) -> int:
    from bench_lib.analysis import report
    from bench_lib.suite import runner

    grid = "papers" if args.paper == "all" else args.paper
    opts = runner.RunOptions(grid=grid, devices=args.device or None, project=args.project)
    status = runner.run(opts, save=saver(args.results))  # kept in the store, as every run
    if status not in (EXIT_OK, EXIT_FAILED):  # could not run, or stopped: no report of a run that is not there
        return status
    out, problems = report.build(args.results, args.out, args.analysis, publish=False)
    for p in problems:
        print(f"notebook error: {p}", file=sys.stderr)
    print(f"report (with 06_paper_reproduction): {out.resolve()}")
    return status or (EXIT_FAILED if problems else EXIT_OK)


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench_lib.measure import selfcheck

    return selfcheck.timing(rounds=args.rounds)


def add_sides(p) -> None:
    """``--python`` (one environment, or the sides of an A/B run), ``--side`` and ``--pairs``."""
    p.add_argument(
        "--python",
        metavar="PATH",
        action="append",
        help="interpreter of the environment to benchmark (default: this one); one venv per torch version "
        "keeps results apart. Twice or more: an A/B run, sides A, B, ... measured interleaved and paired",
    )
    p.add_argument(
        "--side",
        metavar="LABEL[:VAR=VALUE]",
        action="append",
        help="an A/B side and an environment variable of its own, e.g. B:THP_MEM_ALLOC_ENABLE=1 (repeat for "
        "more variables; a new label is another side on the first interpreter)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        metavar="N",
        help="A/B runs: the most processes per combination and side, each with its samples interleaved with the "
        f"other sides'; a combination stops once decided (default {intervals.DEFAULT_PAIRS}; at least 2)",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="A/B runs: no pair starts after this many minutes of the run (default: none); the pairs go to the "
        "combinations still undecided",
    )


def add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="run a grid of benchmarks through asv into results/ (the main job)", epilog=EXIT_HELP
    )
    p.add_argument("--grid", default="default", choices=GRIDS, metavar="GRID", help=CHOICE_HELP)
    p.add_argument(
        "--device",
        action="append",
        metavar="SPEC",
        help="device spec to run (repeatable; default: cpu-1t, all cores, and every GPU/MPS present)",
    )
    p.add_argument("--bench", metavar="REGEX", help="only combinations whose asv name matches")
    add_sides(p)
    p.add_argument("--launch-method", default="forkserver", choices=LAUNCH_METHODS, help="default %(default)s")
    p.add_argument("--chunk-size", type=int_at_least(1), default=200, help="combinations per asv run (default 200)")
    p.add_argument("--project", metavar="DIR", help="project directory holding asv.conf.json (default: here)")
    p.add_argument(
        "--rounds",
        type=int_at_least(1),
        default=None,
        help="processes per latency combination, each its own round (default: the grid's; nightly and full 5, else 1)",
    )
    add_results(p, "the run goes to its store/")
    p.add_argument(
        "--wait",
        type=float_in(0, math.inf),
        default=3600.0,
        metavar="SECONDS",
        help="how long to wait for another run holding this machine (default 3600)",
    )
    p.add_argument(
        "--lock-gpu-clocks",
        default="none",
        metavar="none|base|max|MHZ",
        help="lock the SM clock of the run's GPUs for the run (needs root; refused: the run goes on and "
        "records why; default none)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object on stdout: the exit code and the run's record with its summary",
    )
    p.set_defaults(func=cmd_run)


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="re-run ShuffleNet V2's G1/G2 and FasterNet's Table 1 here, then report")
    p.add_argument("paper", choices=["shufflenetv2", "fasternet", "all"])
    p.add_argument("--device", action="append", metavar="SPEC", help="default: cpu-1t and every GPU/MPS present")
    add_results(p)
    p.add_argument("--out", default="report")
    p.add_argument("--analysis", default="analysis")
    p.add_argument("--project", metavar="DIR")
    p.set_defaults(func=cmd_reproduce)


def add_selfcheck(sub) -> None:
    p = sub.add_parser("selfcheck", help="check convbench's timing against torch.utils.benchmark")
    p.add_argument("what", choices=["timing"])
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="interleaved rounds (default %(default)s)")
    p.set_defaults(func=cmd_selfcheck)
