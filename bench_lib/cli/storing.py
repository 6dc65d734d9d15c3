"""``convbench store``: migrate, sql, asv, push and import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_lib.cli.common import EXIT_HELP, EXIT_OK, add_results, int_at_least
from bench_lib.errors import ArgumentError, Exit


def cmd_store_migrate(args: argparse.Namespace) -> int:
    import warnings

    from bench_lib.store import store_path
    from bench_lib.store.migrate import migrate

    root = Path(args.results)
    if not root.is_dir():
        raise ArgumentError(f"--results {root}: no such folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = migrate(root, store_path(root))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(
        f"migrated {done.runs} runs ({done.rows} measurement rows) from {len(done.files)} files into {store_path(root)}"
    )
    if args.remove and done.files:
        for path in done.files:
            path.unlink()
        print(f"removed the {len(done.files)} migrated files")
    return EXIT_OK


def cmd_store_sql(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench_lib.analysis.results import store_of

    df = store_of(args.results).sql(args.query)
    with pd.option_context("display.max_rows", args.max_rows, "display.width", 200):
        print(df.to_string(index=False, max_rows=args.max_rows))
    return EXIT_OK


def cmd_store_asv(args: argparse.Namespace) -> int:
    from bench_lib.analysis.results import store_of
    from bench_lib.store import asv_files

    written = asv_files.write(store_of(args.results), args.out)
    print(f"wrote {len(written)} asv files under {args.out} (then: asv publish)")
    return EXIT_OK


def cmd_store_push(args: argparse.Namespace) -> int:
    from bench_lib.store import push, store_path
    from bench_lib.store.disk import machine_key

    if "://" in args.results:
        raise ArgumentError(f"--results {args.results}: store push takes a folder in a git checkout, not a URL")
    store = Path(store_path(args.results))
    if not store.is_dir():
        raise ArgumentError(f"--results {args.results}: no store folder there ({store})")
    keys = set(args.machine_key or [])
    if not keys:
        from bench_lib.measure import machine

        fp = machine.fingerprint()
        keys = {machine_key(fp["machine_id"], fp["hardware_id"])}
    try:
        done = push.push(store, keys, args.git_branch, args.remote, args.attempts)
    except push.PushError as e:
        print(f"convbench store push: {e}", file=sys.stderr)
        return Exit.UNAVAILABLE
    what = f"commit {done.commit[:12]}" if done.commit else "nothing new"
    shown = ", ".join(sorted(keys))
    print(f"{args.remote} {args.git_branch}: {what} ({done.files} files of {shown}, attempt {done.attempts})")
    return Exit.OK


def cmd_store_import(args: argparse.Namespace) -> int:
    from bench_lib.store import importer, redact, store_path

    done = importer.run(args.source, args.results)
    for why in done.refused:
        print(f"warning: {why}", file=sys.stderr)
    machines = f" of {', '.join(sorted(done.machines))}" if done.machines else ""
    print(
        f"imported {len(done.runs)} runs{machines} ({done.files} files) into {redact(store_path(args.results))}; "
        f"{len(done.present)} already there, left alone; {len(done.refused)} refusals warned about"
    )
    return EXIT_OK


def add_store(sub) -> None:
    p = sub.add_parser("store", help="the results store: migrate 0.1 results, query it with SQL")
    store = p.add_subparsers(dest="store_command", required=True)
    m = store.add_parser("migrate", help="results of convbench 0.1 (asv files, history, peaks) into the store")
    add_results(m)
    m.add_argument("--remove", action="store_true", help="remove the migrated files afterwards")
    m.set_defaults(func=cmd_store_migrate)
    q = store.add_parser("sql", help="DuckDB SQL over the tables measurements, runs, peaks, breakdowns")
    q.add_argument("query")
    add_results(q)
    q.add_argument("--max-rows", type=int_at_least(1), default=60)
    q.set_defaults(func=cmd_store_sql)
    a = store.add_parser("asv", help="asv's result files rebuilt from the store (for asv publish)")
    add_results(a)
    a.add_argument("--out", default="results/asv", help="asv's results_dir (default %(default)s)")
    a.set_defaults(func=cmd_store_asv)
    u = store.add_parser(
        "push",
        help="this machine's partitions of the store onto a git branch (the fleet's nightly push)",
        epilog=EXIT_HELP,
    )
    u.add_argument("--git-branch", required=True, metavar="BRANCH", help="the branch that holds the fleet's store")
    u.add_argument("--remote", default="origin", help="default %(default)s")
    u.add_argument(
        "--machine-key",
        action="append",
        metavar="KEY",
        help="a partition to push, as machine_key=KEY names it (repeatable; default: this machine's own)",
    )
    u.add_argument("--attempts", type=int_at_least(1), default=5, help="pushes tried when others push too (default 5)")
    add_results(u)
    u.set_defaults(func=cmd_store_push)
    i = store.add_parser(
        "import",
        help="another store's runs merged into this one (vetted as any shared store; none twice)",
        epilog=EXIT_HELP,
    )
    i.add_argument("source", metavar="SOURCE", help="a results or store folder, a store URL, or a .tar/.tar.gz of one")
    add_results(i, "the results folder or URL whose store receives the runs")
    i.set_defaults(func=cmd_store_import)
