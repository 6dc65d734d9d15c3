"""The ``convbench`` command line. Each subcommand is a thin layer over a bench_lib function.

Exit codes: 0 success, 1 the work ran but something failed (or regressed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bench_lib import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def parse_key_values(items: Sequence[str]) -> dict[str, Any]:
    """``["in_channels=64", "bias=false"]`` → ``{"in_channels": 64, "bias": False}``."""
    from bench_lib.cases import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {item!r} must be written key=value")
        out[key] = parse_value(value)
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_default, allow_nan=True))


# --------------------------------------------------------------------------------------------
# subcommands


def cmd_workloads(args: argparse.Namespace) -> int:
    from bench_lib import workloads

    for kind in workloads.kinds():
        print(f"{kind}s:")
        for name in workloads.names(kind):
            w = workloads.get(name)
            params = ", ".join(f"{k}={v.default}" for k, v in w.params.items())
            print(f"  {name:22s} {w.summary}\n  {'':22s} ({params})")
    return EXIT_OK


def cmd_theory(args: argparse.Namespace) -> int:
    from bench_lib import theory

    params = parse_key_values(args.params)
    geometry = {"batch": args.batch, "height": args.height, "width": args.width, "dtype": args.dtype}
    c = theory.cost(args.name, **geometry, **params)
    red = theory.reduction(args.name, **geometry, **params)
    record = {
        **c.summary(),
        "flop_reduction": red["flops"],
        "param_reduction": red["params"],
        "dense_workload": red["dense_workload"],
        "dense_params": red["dense_params"],
        "workload": args.name,
        "config": c.config,
        "in_shape": c.in_shape,
        "out_shape": c.out_shape,
        "dtype": args.dtype,
    }
    if args.layers:
        record["layers"] = c.layer_table()
    if args.json:
        print_json(record)
        return EXIT_OK
    print(f"{args.name} {c.config}")
    print(f"  input {c.in_shape} -> output {c.out_shape}, {args.dtype}")
    print(f"  params           {c.params:>16,}")
    print(f"  MACs             {c.macs:>16,}   (FLOPs = 2 x MACs = {c.flops:,})")
    print(f"  elementwise ops  {c.elementwise_ops:>16,}")
    print(f"  min bytes        {c.min_bytes:>16,}   (per-layer, unfused: {c.layer_bytes:,})")
    print(f"  intensity        {c.intensity:>16.2f}   FLOPs/byte")
    print(f"  training MACs    {c.train_macs:>16,}")
    print(
        f"  vs dense {red['dense_workload']}: {red['flops']:.2f}x fewer FLOPs, "
        f"{red['params']:.2f}x fewer params"
    )
    if args.layers:
        print(f"  {'layer':32s} {'kind':10s} {'MACs':>14s} {'params':>10s} {'elementwise':>12s}")
        for row in c.layer_table():
            print(
                f"  {row['name']:32s} {row['kind']:10s} {row['macs']:>14,} {row['params']:>10,} "
                f"{row['elementwise_ops']:>12,}"
            )
    return EXIT_OK


# --------------------------------------------------------------------------------------------


def _add_geometry(p: argparse.ArgumentParser, batch: int = 1) -> None:
    p.add_argument("--batch", type=int, default=batch, help="batch size (default %(default)s)")
    p.add_argument("--height", type=int, default=56, help="input height (default %(default)s)")
    p.add_argument("--width", type=int, default=56, help="input width (default %(default)s)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"convbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("workloads", help="list every registered workload with its parameters")
    p.set_defaults(func=cmd_workloads)

    p = sub.add_parser("theory", help="theoretical cost of one workload (params, MACs, bytes, reduction)")
    p.add_argument("name")
    p.add_argument("params", nargs="*", metavar="key=value")
    _add_geometry(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--layers", action="store_true", help="add the per-layer breakdown")
    p.set_defaults(func=cmd_theory)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    try:
        return int(args.func(args))
    except (UsageError, ValueError) as e:
        print(f"convbench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
