"""``convbench workloads``, ``theory``, ``info`` and ``measure``: the catalogue, the theory, and one
combination measured here.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from typing import Any

from bench_lib.cli.common import (
    CHOICE_HELP,
    EXIT_FAILED,
    EXIT_OK,
    LAYOUT_CHOICES,
    MODE_CHOICES,
    add_geometry,
    add_results,
    add_workload,
    float_in,
    int_at_least,
    parse_key_values,
    print_json,
)
from bench_lib.errors import ArgumentError
from bench_lib.measure import kinds
from bench_lib.measure.fresh import PROCESSES as PLAIN_ROUNDS
from bench_lib.measure.timing import DEFAULT_TIMING


def cmd_workloads(args: argparse.Namespace) -> int:
    from bench_lib.catalogue import registry

    for kind in registry.kinds():
        print(f"{kind}s:")
        for name in registry.names(kind):
            w = registry.get(name)
            params = ", ".join(f"{k}={v.default}" for k, v in w.params.items())
            print(f"  {name:22s} {w.summary}\n  {'':22s} ({params})")
    return EXIT_OK


def _user_workload(args: argparse.Namespace) -> dict[str, Any]:
    """The workload's parameters from ``key=value`` words, checked with the geometry (ArgumentError if bad);
    ``--height``/``--width`` default to the workload's own size."""
    from bench_lib.catalogue import registry

    params = parse_key_values(args.params)
    try:
        size = registry.default_size(args.name)
        args.height, args.width = args.height or size, args.width or size
        registry.input_shape(args.name, args.batch, args.height, args.width, **params)
    except ValueError as e:
        raise ArgumentError(str(e)) from None
    return params


def cmd_theory(args: argparse.Namespace) -> int:
    from bench_lib.catalogue import theory

    params = _user_workload(args)
    geometry = {"batch": args.batch, "height": args.height, "width": args.width, "dtype": args.dtype}
    c = theory.cost(args.name, **geometry, **params)
    red = theory.reduction(args.name, **geometry, **params)
    record = {
        **c.summary(),
        **red,
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
        f"  vs dense {red['dense_workload']}: {red['flop_reduction']:.2f}x fewer FLOPs, "
        f"{red['param_reduction']:.2f}x fewer params"
    )
    if args.layers:
        print(f"  {'layer':32s} {'kind':10s} {'MACs':>14s} {'params':>10s} {'elementwise':>12s}")
        for row in c.layer_table():
            print(
                f"  {row['name']:32s} {row['kind']:10s} {row['macs']:>14,} {row['params']:>10,} "
                f"{row['elementwise_ops']:>12,}"
            )
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from bench_lib.measure import devices, energy, machine, roofline

    fp = machine.fingerprint()
    specs = devices.visible_specs()
    meters = {}
    for spec, ok, _ in specs:
        meters[spec] = energy.meter_of(devices.parse_spec(spec)).available() if ok else (False, "device not available")
    peaks = {}
    if not args.no_peaks:
        for spec, ok, _ in specs:
            if ok:
                peaks[spec] = roofline.summary(roofline.peaks_for(spec, args.results, refresh=args.refresh_peaks))
    if args.json:
        print_json(
            {
                "fingerprint": fp,
                "devices": [{"spec": s, "available": ok, "reason": r} for s, ok, r in specs],
                "energy": {s: {"available": ok, "reason": r} for s, (ok, r) in meters.items()},
                "peaks": peaks,
            }
        )
        return EXIT_OK
    print("machine")
    for key, value in fp.items():
        if key != "gpus":
            print(f"  {key:18s} {value}")
    for gpu in fp["gpus"]:
        print(f"  gpu                {gpu}")
    print("devices")
    for spec, ok, reason in specs:
        print(f"  {spec:10s} {'available' if ok else 'unavailable: ' + reason}")
    print("energy meters")
    for spec, (ok, reason) in meters.items():
        print(f"  {spec:10s} {'available' if ok else 'unavailable: ' + reason}")
    if peaks:
        print(f"measured peaks (cached in {roofline.cache_path(args.results)})")
    for spec, p in peaks.items():
        gemm = ", ".join(f"{d} {v / 1e9:.1f} GFLOP/s" for d, v in p["gemm_flops_per_s"].items())
        conv = ", ".join(f"{d} {v / 1e9:.1f} GFLOP/s" for d, v in p.get("conv3x3_flops_per_s", {}).items())
        ridge = ", ".join(f"{v:.1f}" for v in p["ridge_intensity_flops_per_byte"].values())
        print(
            f"  {spec:10s} GEMM {gemm}; 3x3 conv {conv or '-'}; copy {p['copy_bytes_per_s'] / 1e9:.1f} GB/s; "
            f"ridge {ridge} FLOPs/byte"
            f" (measured {p['measured_at']})"
        )
    return EXIT_OK


def _resolve_device(spec: str):
    """The backend for ``spec``, or a ArgumentError naming the spec and the devices available here."""
    from bench_lib.measure import devices

    try:
        backend = devices.backend(spec)
    except ValueError as e:
        raise ArgumentError(str(e)) from None
    ok, reason = backend.available()
    if not ok:
        here = ", ".join(s for s, available, _ in devices.visible_specs() if available)
        raise ArgumentError(f"device={spec!r} is not available here ({reason}); available: {here}")
    return backend


def _spec(args: argparse.Namespace, params: dict[str, Any]):
    """What ``convbench measure`` measures, as one process would (:class:`bench_lib.measure.fresh.ProcessSpec`)."""
    from bench_lib.measure import fresh
    from bench_lib.measure.task import Task

    where = {"device": args.device, "layout": args.layout, "dtype": args.dtype, "mode": args.mode}
    how = {"batch": args.batch, "allocator": args.allocator, "graph": args.graph}
    task = Task.of(args.name, height=args.height, width=args.width, **where, **how, **params)
    return fresh.ProcessSpec(task, timing={"samples": args.samples, "max_time_s": args.max_time})


def _prepare_for_cli(args: argparse.Namespace, spec, backend):
    """The prepared task, or a ArgumentError where it cannot run as asked; None on a wrong result."""
    from bench_lib.measure import fresh, harness

    try:
        return fresh.prepare(spec, backend=backend)
    except harness.Unsupported as e:
        raise ArgumentError(f"{args.name} cannot run on {args.device} as asked: {e}") from None
    except harness.WrongResult as e:
        print(f"convbench measure: wrong result: {e}", file=sys.stderr)
        return None


def cmd_measure(args: argparse.Namespace) -> int:
    from bench_lib.measure import single

    params = _user_workload(args)
    backend = _resolve_device(args.device)
    if args.script:
        return _print_script(args, params)
    if args.processes or args.allocator == "plain":
        return _measure_processes(args, params, backend)
    spec = _spec(args, params)
    prepared = _prepare_for_cli(args, spec, backend)
    if prepared is None:
        return EXIT_FAILED
    left_out = {"peak_memory": "not asked for (--no-memory)"} if args.no_memory else {}
    if args.no_energy:
        left_out["energy"] = "not asked for (--no-energy)"
    record = single.measure_task(
        prepared, spec.task, timing=spec.timing, left_out=left_out, results_dir=args.results, parts=args.breakdown
    )
    if args.json:
        print_json(record)
    else:
        _print_measurement(record)
    return EXIT_OK


def _print_script(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """``convbench measure ... --script``: the user's script a plain process of these arguments runs."""
    from bench_lib.measure import fresh, harness, user_script

    if args.allocator != "plain":
        raise ArgumentError("--script prints a plain process's script: add --allocator plain")
    try:
        text = user_script.render(fresh.replace(_spec(args, params), checked_error=0.0))
    except (harness.Unsupported, user_script.NotScriptable) as e:
        raise ArgumentError(f"--script: {e}") from None
    print(text, end="")
    return EXIT_OK


def _measure_processes(args: argparse.Namespace, params: dict[str, Any], backend) -> int:
    """``convbench measure --processes N`` (or ``--allocator plain``): N fresh interpreters, each line and the
    modes of their medians (:mod:`bench_lib.measure.fresh`, :mod:`bench_lib.measure.modes`)."""
    from bench_lib.measure import fresh, modes

    if args.breakdown or args.graph:
        flag = "--breakdown" if args.breakdown else "--graph"
        raise ArgumentError(f"{flag} is measured in one process: leave out --processes and --allocator plain")
    if backend.spec.kind != "cpu":
        raise ArgumentError(
            f"--processes and --allocator plain measure the host allocator: --device cpu, not {args.device}"
        )
    spec = _spec(args, params)
    try:
        records = fresh.run(spec, args.processes or PLAIN_ROUNDS)
    except NotImplementedError as e:  # harness.Unsupported, from the fresh process
        raise ArgumentError(f"{args.name} cannot run on {args.device} as asked: {e}") from None
    except RuntimeError as e:
        print(f"convbench measure: {e}", file=sys.stderr)
        return EXIT_FAILED
    found = modes.find([r.get("median_s", math.nan) for r in records])
    out = {"processes": records, "modes": [asdict(m) for m in found], "multimodal": modes.is_multimodal(found)}
    out["modes_text"] = modes.describe(found)
    if args.json:
        print_json(out)
    else:
        _print_processes(args, records, out["modes_text"])
    return EXIT_OK if any("median_s" in r for r in records) else EXIT_FAILED


def _print_processes(args: argparse.Namespace, records: list[dict[str, Any]], text: str) -> None:
    print(
        f"{args.name} {' '.join(args.params)} on {args.device} ({args.layout}, {args.dtype}, {args.mode}, batch "
        f"{args.batch}, {args.height}x{args.width}), allocator {args.allocator}, {len(records)} fresh processes"
    )
    print(f"  {'process':>7s} {'median':>10s} {'faults/call':>11s} {'heap mapped':>11s} {'out offset':>10s}  kernel")
    for i, r in enumerate(records, 1):
        if "error" in r:
            print(f"  {i:7d} failed: {r['error']}")
            continue
        mapped = r["heap"]["mapped_bytes"] / 2**20 if r.get("heap") else math.nan
        print(
            f"  {i:7d} {r['median_s'] * 1e3:8.3f}ms {r['page_faults_per_call']:11.1f} {mapped:9.1f}MiB "
            f"{r['page_offset_bytes']['output']!s:>10s}  {r['kernel'] or '-'}"
        )
    print(f"  {text}")
    kernels = {r.get("kernel") for r in records if "median_s" in r}
    print(f"  kernel: {'the same in every process' if len(kernels) == 1 else f'{len(kernels)} different'}")


def _print_measurement(m: dict[str, Any]) -> None:
    ctx = m["context"]
    print(
        f"{ctx['case']} on {ctx['device_name']} ({ctx['layout']}, {ctx['dtype']}, {ctx['mode']}, "
        f"batch {ctx['batch']}, {ctx['threads'] or '-'} threads, allocator {ctx['allocator']})"
    )
    print(
        f"  median {m['median_s'] * 1e6:,.1f} us  IQR {m['iqr_s'] * 1e6:,.1f} us  min {m['min_s'] * 1e6:,.1f} us  "
        f"CV {m['cv']:.1%}  {len(m['samples_s'])} samples x {m['block']} calls"
        f"{'  NOISY: ' + m['noisy_reason'] if m['noisy'] else ''}"
    )
    print(
        f"  page faults per call {m['page_faults_per_call']:.2f}; timer overhead "
        f"{m['timer_overhead_s'] * 1e6:.2f} us per sample"
    )
    print(
        f"  achieved {m['achieved_flops_per_s'] / 1e9:,.2f} GFLOP/s, "
        f"{m['roofline_fraction']:.1%} of this device's roofline"
    )
    if m["peak_bytes"] is not None:
        print(f"  peak memory {m['peak_bytes'] / 2**20:,.1f} MiB ({m['memory']['source']})")
    elif "memory_reason" in m:
        print(f"  peak memory: not measured ({m['memory_reason']})")
    ops = ", ".join(f"{op} {share:.0%}" for op, share in m["kernels"]["aten"][:4])
    print(f"  kernel {m['kernel'] or '-'}; ATen ops by self time: {ops or '-'}")
    if m["kernel_fallback"]:
        print(f"  FALLBACK: {m['kernel_fallback']}")
    if "breakdown" in m:
        _print_breakdown(m["breakdown"])
    if m["energy_j_per_call"] is not None:
        print(f"  energy {m['energy_j_per_call']:.3g} J per call ({m['energy']['meter']})")
    else:
        print(f"  energy: not measured ({m['energy_reason']})")


def _print_breakdown(rows: list[dict[str, Any]]) -> None:
    total_s = sum(r["median_s"] for r in rows) or 1.0
    total_macs = sum(r["macs"] for r in rows) or 1
    print(f"  per-part replay (each part timed alone on its real input; sum {total_s * 1e3:.2f} ms):")
    print(f"    {'part':10s} {'time':>10s} {'time %':>7s} {'MACs %':>7s}")
    for r in rows:
        print(
            f"    {r['part']:10s} {r['median_s'] * 1e3:8.3f}ms {r['median_s'] / total_s:7.1%} "
            f"{r['macs'] / total_macs:7.1%}"
        )


def add_theory(sub) -> None:
    p = add_workload(sub, "theory", "theoretical cost of one workload (params, MACs, bytes, reduction)")
    add_geometry(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--layers", action="store_true", help="add the per-layer breakdown")
    p.set_defaults(func=cmd_theory)


def add_info(sub) -> None:
    p = sub.add_parser("info", help="machine fingerprint, devices, energy meters and measured peaks")
    p.add_argument("--json", action="store_true")
    add_results(p, "where measured peaks are cached")
    p.add_argument("--no-peaks", action="store_true", help="skip measuring/reading the roofline peaks")
    p.add_argument("--refresh-peaks", action="store_true", help="measure the peaks again")
    p.set_defaults(func=cmd_info)


def add_measure(sub) -> None:
    p = add_workload(sub, "measure", "measure one combination: time, memory, energy, roofline fraction")
    p.add_argument("--device", default="cpu-1t", help=f"{kinds.spec_help()} (default %(default)s)")
    p.add_argument("--layout", default="nchw", choices=LAYOUT_CHOICES, metavar="LAYOUT", help=CHOICE_HELP)
    p.add_argument("--mode", default="inference", choices=MODE_CHOICES, metavar="MODE", help=CHOICE_HELP)
    add_geometry(p)
    p.add_argument("--graph", action="store_true", help="CUDA only: replay the call from a CUDA graph")
    p.add_argument(
        "--allocator",
        default="steady",
        choices=("steady", "cold", "plain"),
        help="steady: memory kept (best case); cold: glibc's first thresholds held (worst case); plain: "
        "nothing set, as a user's script runs, in fresh processes (default %(default)s)",
    )
    p.add_argument(
        "--processes",
        type=int_at_least(1),
        metavar="N",
        help=f"measure in N fresh interpreters, one after another, and report each and their modes (default "
        f"{PLAIN_ROUNDS} with --allocator plain, else one measurement in this process)",
    )
    p.add_argument(
        "--samples", type=int_at_least(3), default=DEFAULT_TIMING.samples, help="samples to take (default %(default)s)"
    )
    p.add_argument(
        "--max-time",
        type=float_in(0, 3600, lo_open=True),
        default=DEFAULT_TIMING.max_time_s,
        help="seconds of sampling (default %(default)s)",
    )
    p.add_argument(
        "--script",
        action="store_true",
        help="with --allocator plain: print the user's script each fresh process runs (run it with python)",
    )
    p.add_argument("--breakdown", action="store_true", help="networks: time of each part (stem, blocks, head)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-energy", action="store_true")
    add_results(p, "where measured peaks are cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_measure)
