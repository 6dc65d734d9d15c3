"""The ``convbench`` command line. Each subcommand is a thin layer over a bench_lib function.

Exit codes (:class:`bench_lib.errors.Exit`): 0 done, nothing got worse; 1 a regression, a slower
combination or a new failure; 2 bad arguments; 3 part of the work failed (the rest is saved); 4 could not
run (machine lock, store unwritable); 5 internal error; 130 stopped by a signal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench_lib import __version__
from bench_lib.analysis import verdicts
from bench_lib.errors import MEANING, ArgumentError, Exit
from bench_lib.measure import kinds
from bench_lib.suite.guard import LAUNCH_METHODS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = Exit.OK, Exit.FAILED, Exit.USAGE
EXIT_HELP = "exit codes: " + "; ".join(f"{int(e)} {MEANING[e]}" for e in Exit)


def parse_key_values(items: Sequence[str]) -> dict[str, Any]:
    """``["in_channels=64", "bias=false"]`` → ``{"in_channels": 64, "bias": False}``."""
    from bench_lib.catalogue.cases import key_values, parse_value

    try:
        return {key: parse_value(value) for key, value in key_values(items, "parameter")}
    except ValueError as e:
        raise ArgumentError(f"{e}: write key=value") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_json_default, allow_nan=True))


# --------------------------------------------------------------------------------------------
# subcommands


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

    where = {"device": args.device, "layout": args.layout, "dtype": args.dtype, "mode": args.mode}
    geometry = {"batch": args.batch, "height": args.height, "width": args.width}
    timing = {"samples": args.samples, "max_time_s": args.max_time}
    return fresh.ProcessSpec(
        args.name, params, **where, **geometry, timing=timing, allocator=args.allocator, graph=args.graph
    )


def _prepare_for_cli(args: argparse.Namespace, params: dict[str, Any], backend):
    """The prepared combination, or a ArgumentError where it cannot run as asked; None on a wrong result."""
    from bench_lib.measure import fresh, harness

    try:
        return fresh.prepare(_spec(args, params), device=backend)
    except harness.Unsupported as e:
        raise ArgumentError(f"{args.name} cannot run on {args.device} as asked: {e}") from None
    except harness.WrongResult as e:
        print(f"convbench measure: wrong result: {e}", file=sys.stderr)
        return None


def _memory_fields(args: argparse.Namespace, prepared) -> dict[str, Any]:
    from bench_lib.measure import metrics

    if args.no_memory:
        return {"peak_bytes": None}
    try:
        mem = metrics.measure(prepared, "peak_memory").result
    except RuntimeError as e:
        return {"peak_bytes": None, "memory_reason": str(e)}
    return {"peak_bytes": mem.peak_bytes, "memory": mem.summary()}


def _energy_fields(args: argparse.Namespace, prepared, seconds_per_call: float) -> dict[str, Any]:
    from bench_lib.measure import metrics

    ok, reason = (
        (False, "not asked for (--no-energy)") if args.no_energy else metrics.get("energy").available(prepared.backend)
    )
    if not ok:
        return {"energy_j_per_call": None, "energy_reason": reason}
    e = metrics.measure(prepared, "energy", metrics.Settings(seconds_per_call=seconds_per_call)).result
    return {"energy_j_per_call": e.energy_j_per_call, "energy": e.summary()}


def cmd_measure(args: argparse.Namespace) -> int:
    from bench_lib.catalogue import theory
    from bench_lib.measure import breakdown, kernels, metrics, roofline

    params = _user_workload(args)
    backend = _resolve_device(args.device)
    if args.script:
        return _print_script(args, params)
    if args.processes or args.allocator == "plain":
        return _measure_processes(args, params, backend)
    prepared = _prepare_for_cli(args, params, backend)
    if prepared is None:
        return EXIT_FAILED
    timing = {"samples": args.samples, "max_time_s": args.max_time}
    m = metrics.measure(prepared, "latency", metrics.Settings(timing=timing)).result
    record: dict[str, Any] = {k: v for k, v in m.summary().items() if k != "context"}
    record.update(_memory_fields(args, prepared))
    record.update(_energy_fields(args, prepared, m.median_s))
    c = theory.cost(args.name, dtype=args.dtype, batch=args.batch, height=args.height, width=args.width, **params)
    if args.breakdown:
        record["breakdown"] = breakdown.breakdown(prepared)
    flops = c.work_flops(args.mode)
    peaks = roofline.peaks_for(args.device, args.results, dtypes=(args.dtype,))
    record["roofline_fraction"] = peaks.fraction(m.median_s, flops, c.min_bytes, args.dtype)
    record["achieved_flops_per_s"] = flops / m.median_s
    record.update(kernels.capture(prepared).fields())
    record["context"] = m.context
    if args.json:
        print_json(record)
    else:
        _print_measurement(m, record)
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


PLAIN_PROCESSES = 12  # fresh processes of `convbench measure --allocator plain` (a share of 1 in 12 is seen)


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
        records = fresh.run(spec, args.processes or PLAIN_PROCESSES)
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


def _print_measurement(m, record: dict[str, Any]) -> None:
    ctx = m.context
    print(
        f"{ctx['case']} on {ctx['device_name']} ({ctx['layout']}, {ctx['dtype']}, {ctx['mode']}, "
        f"batch {ctx['batch']}, {ctx['threads'] or '-'} threads, allocator {ctx['allocator']})"
    )
    print(
        f"  median {m.median_s * 1e6:,.1f} us  IQR {m.iqr_s * 1e6:,.1f} us  min {m.min_s * 1e6:,.1f} us  "
        f"CV {m.cv:.1%}  {len(m.samples_s)} samples x {m.block} calls"
        f"{'  NOISY: ' + m.noisy_reason if m.noisy else ''}"
    )
    print(
        f"  page faults per call {m.page_faults_per_call:.2f}; timer overhead {m.timer_overhead_s * 1e6:.2f} us"
        " per sample"
    )
    print(
        f"  achieved {record['achieved_flops_per_s'] / 1e9:,.2f} GFLOP/s, "
        f"{record['roofline_fraction']:.1%} of this device's roofline"
    )
    if record["peak_bytes"] is not None:
        print(f"  peak memory {record['peak_bytes'] / 2**20:,.1f} MiB ({record['memory']['source']})")
    elif "memory_reason" in record:
        print(f"  peak memory: not measured ({record['memory_reason']})")
    ops = ", ".join(f"{op} {share:.0%}" for op, share in record["kernels"]["aten"][:4])
    print(f"  kernel {record['kernel'] or '-'}; ATen ops by self time: {ops or '-'}")
    if record["kernel_fallback"]:
        print(f"  FALLBACK: {record['kernel_fallback']}")
    if "breakdown" in record:
        _print_breakdown(record["breakdown"])
    if record["energy_j_per_call"] is not None:
        print(f"  energy {record['energy_j_per_call']:.3g} J per call ({record['energy']['meter']})")
    else:
        print(f"  energy: not measured ({record['energy_reason']})")


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


def _saver(results: str):
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
        launch_method=args.launch_method,
        chunk_size=args.chunk_size,
        project=args.project,
        rounds=args.rounds,
        wait_s=args.wait,
        lock_gpu_clocks=args.lock_gpu_clocks,
    )
    if not args.json:
        return runner.run(opts, save=_saver(args.results))
    saved: list[dict[str, Any]] = []  # the run record of the newest save: what --json reports
    store = _saver(args.results)

    def save(run, events, peaks, breakdowns):
        saved[:] = [run]
        return store(run, events, peaks, breakdowns)

    with contextlib.redirect_stdout(sys.stderr):  # progress and the summary go to stderr; stdout is the JSON
        code = runner.run(opts, save=save)
    print_json({"exit_code": int(code), "exit": MEANING[Exit(code)], "run": saved[0] if saved else None})
    return code


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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from bench_lib.analysis import report
    from bench_lib.suite import runner

    grid = "papers" if args.paper == "all" else args.paper
    opts = runner.RunOptions(grid=grid, devices=args.device or None, project=args.project)
    status = runner.run(opts, save=_saver(args.results))  # kept in the store, as every run
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


# --------------------------------------------------------------------------------------------
# argument types: each names the accepted range in its error (argparse adds the flag and exits 2)


class _Choices(Sequence):
    """argparse ``choices`` read from the module that owns them when first needed (a value to check, an
    error or a help page to print), so that building the parser imports no torch."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _values(self) -> Sequence[str]:
        import importlib

        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __getitem__(self, i):
        return self._values()[i]

    def __len__(self) -> int:
        return len(self._values())

    def __contains__(self, value: object) -> bool:
        return value in self._values()


CHOICE_HELP = "%(choices)s (default %(default)s)"  # a metavar keeps argparse from reading lazy choices early
GRIDS = _Choices("bench_lib.suite.grids", "GRIDS")
DTYPE_CHOICES = _Choices("bench_lib.catalogue.dtypes", "DTYPES")
LAYOUT_CHOICES = _Choices("bench_lib.measure.devices", "LAYOUTS")
MODE_CHOICES = _Choices("bench_lib.measure.devices", "MODES")


def int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer (accepted: {lo} or more)") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is out of range (accepted: {lo} or more)")
        return value

    return parse


def float_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    """A finite float in [lo, hi] (open at an end where asked)."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number (accepted: {left}{lo:g}, {hi:g}{right})"
            ) from None
        ok = (
            math.isfinite(value)
            and (lo < value if lo_open else lo <= value)
            and (value < hi if hi_open else value <= hi)
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (accepted: {left}{lo:g}, {hi:g}{right})")
        return value

    return parse


RESULTS_HELP = (
    "results folder or object store URL (default: $CONVBENCH_RESULTS, else the results/ of the project "
    "this is run in, else ./results)"
)


def _add_results(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--results", metavar="DIR|URL", help=f"{what}; {RESULTS_HELP}" if what else RESULTS_HELP)


def default_results(project: str | None = None) -> str:
    """Where results live unless ``--results`` says: ``$CONVBENCH_RESULTS``, else the ``results/`` of the
    convbench checkout at or above ``project`` (or the working directory), else ``./results``."""
    from bench_lib.files import find_upward

    root = find_upward("asv.conf.json", project)
    return os.environ.get("CONVBENCH_RESULTS") or (str(root / "results") if root else "results")


def _add_geometry(p: argparse.ArgumentParser, batch: int = 1) -> None:
    p.add_argument("--batch", type=int_at_least(1), default=batch, help="batch size (default %(default)s)")
    p.add_argument("--height", type=int_at_least(1), help="input height (default 224 for networks, else 56)")
    p.add_argument("--width", type=int_at_least(1), help="input width (default 224 for networks, else 56)")
    p.add_argument("--dtype", default="float32", choices=DTYPE_CHOICES, metavar="DTYPE", help=CHOICE_HELP)


def _add_workload(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    p.add_argument("name")
    p.add_argument("params", nargs="*", metavar="key=value")
    return p


def _add_theory(sub) -> None:
    p = _add_workload(sub, "theory", "theoretical cost of one workload (params, MACs, bytes, reduction)")
    _add_geometry(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--layers", action="store_true", help="add the per-layer breakdown")
    p.set_defaults(func=cmd_theory)


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="machine fingerprint, devices, energy meters and measured peaks")
    p.add_argument("--json", action="store_true")
    _add_results(p, "where measured peaks are cached")
    p.add_argument("--no-peaks", action="store_true", help="skip measuring/reading the roofline peaks")
    p.add_argument("--refresh-peaks", action="store_true", help="measure the peaks again")
    p.set_defaults(func=cmd_info)


def _add_measure(sub) -> None:
    p = _add_workload(sub, "measure", "measure one combination: time, memory, energy, roofline fraction")
    p.add_argument("--device", default="cpu-1t", help=f"{kinds.SPEC_HELP} (default %(default)s)")
    p.add_argument("--layout", default="nchw", choices=LAYOUT_CHOICES, metavar="LAYOUT", help=CHOICE_HELP)
    p.add_argument("--mode", default="inference", choices=MODE_CHOICES, metavar="MODE", help=CHOICE_HELP)
    _add_geometry(p)
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
        f"{PLAIN_PROCESSES} with --allocator plain, else one measurement in this process)",
    )
    p.add_argument("--samples", type=int_at_least(3), default=15, help="samples to take (default %(default)s)")
    p.add_argument(
        "--max-time",
        type=float_in(0, 3600, lo_open=True),
        default=2.0,
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
    _add_results(p, "where measured peaks are cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_measure)


def _add_sides(p) -> None:
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
        help="an A/B side and an environment variable of its own, e.g. B:THP_MEM_ALLOC_ENABLE=0 (repeat for "
        "more variables; a new label is another side on the first interpreter)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        metavar="N",
        help="A/B runs: processes per combination and side, each with its samples interleaved with the other "
        "sides' (default 20; at least 2)",
    )


def _add_run(sub) -> None:
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
    _add_sides(p)
    p.add_argument("--launch-method", default="forkserver", choices=LAUNCH_METHODS, help="default %(default)s")
    p.add_argument("--chunk-size", type=int_at_least(1), default=200, help="combinations per asv run (default 200)")
    p.add_argument("--project", metavar="DIR", help="project directory holding asv.conf.json (default: here)")
    p.add_argument(
        "--rounds",
        type=int_at_least(1),
        default=None,
        help="processes per latency combination, each its own round (default: the grid's; nightly and full 5, else 1)",
    )
    _add_results(p, "results folder or object store URL; the run goes to its store/")
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


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="all results as one tidy table (.parquet or .csv)")
    _add_results(p)
    p.add_argument("--out", required=True, metavar="FILE.parquet|FILE.csv")
    p.add_argument("--history", action="store_true", help="every run in the store (default: each combination's newest)")
    p.set_defaults(func=cmd_export)


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write report/index.html, execute the notebooks beside it (+ asv publish)", epilog=EXIT_HELP
    )
    _add_results(p)
    p.add_argument("--out", default="report")
    p.add_argument("--analysis", default="analysis", help="the notebooks' folder (default %(default)s)")
    p.add_argument("--machine", action="append", help="only these machines (repeatable)")
    p.add_argument("--no-publish", action="store_true", help="skip asv publish into html/")
    p.add_argument("--no-notebooks", action="store_true", help="only the page: skip executing the notebooks")
    p.set_defaults(func=cmd_report)


def _add_verdict_options(p, alpha_help: str) -> None:
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


def _add_regressions(sub) -> None:
    p = sub.add_parser(
        "regressions",
        help="every series of the history judged at its newest runs: regressions that persist, suspects, "
        "machine changes",
        epilog=EXIT_HELP,
    )
    _add_results(p)
    p.add_argument(
        "--machine", action="append", metavar="NAME", help="only this machine (repeatable; default: every one)"
    )
    p.add_argument("--since", metavar="DATE", help="only runs started on or after DATE (YYYY-MM-DD[THH:MM], UTC)")
    _add_verdict_options(p, "chance per series that noise alone leaves the band")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="the flagged series as a Markdown table")
    fmt.add_argument("--json", action="store_true", help="one JSON object: rule, rows, machine_changes")
    p.set_defaults(func=cmd_regressions)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="significant slowdowns between two selections of results", epilog=EXIT_HELP)
    _add_results(p)
    p.add_argument(
        "--baseline",
        required=True,
        metavar="SELECTOR",
        help="key=value[,...]; keys: machine, env, torch, commit, date, run, side (A/B runs: sides of the same "
        "runs are compared pair by pair), device, dtype, layout, batch, mode (other machines or devices on each "
        "side: how much faster, docs/machines.md)",
    )
    p.add_argument("--candidate", required=True, metavar="SELECTOR")
    _add_verdict_options(p, "chance per combination that noise alone is called a change")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)


def _add_machines(sub) -> None:
    p = sub.add_parser(
        "machines", help="every machine and device in the store scored against a reference, ranked", epilog=EXIT_HELP
    )
    _add_results(p)
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
    _add_verdict_options(p, "chance that a score's interval misses its true value")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_machines)


def _add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="re-run ShuffleNet V2's G1/G2 and FasterNet's Table 1 here, then report")
    p.add_argument("paper", choices=["shufflenetv2", "fasternet", "all"])
    p.add_argument("--device", action="append", metavar="SPEC", help="default: cpu-1t and every GPU/MPS present")
    _add_results(p)
    p.add_argument("--out", default="report")
    p.add_argument("--analysis", default="analysis")
    p.add_argument("--project", metavar="DIR")
    p.set_defaults(func=cmd_reproduce)


def _add_selfcheck(sub) -> None:
    p = sub.add_parser("selfcheck", help="check convbench's timing against torch.utils.benchmark")
    p.add_argument("what", choices=["timing"])
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="interleaved rounds (default %(default)s)")
    p.set_defaults(func=cmd_selfcheck)


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
        _add_theory,
        _add_info,
        _add_measure,
        _add_run,
        _add_export,
        _add_report,
        _add_compare,
        _add_regressions,
        _add_machines,
    ):
        add(sub)
    _add_reproduce(sub)
    _add_selfcheck(sub)
    _add_store(sub)
    return parser


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


def _add_store(sub) -> None:
    p = sub.add_parser("store", help="the results store: migrate 0.1 results, query it with SQL")
    store = p.add_subparsers(dest="store_command", required=True)
    m = store.add_parser("migrate", help="results of convbench 0.1 (asv files, history, peaks) into the store")
    _add_results(m)
    m.add_argument("--remove", action="store_true", help="remove the migrated files afterwards")
    m.set_defaults(func=cmd_store_migrate)
    q = store.add_parser("sql", help="DuckDB SQL over the tables measurements, runs, peaks, breakdowns")
    q.add_argument("query")
    _add_results(q)
    q.add_argument("--max-rows", type=int_at_least(1), default=60)
    q.set_defaults(func=cmd_store_sql)
    a = store.add_parser("asv", help="asv's result files rebuilt from the store (for asv publish)")
    _add_results(a)
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
    _add_results(u)
    u.set_defaults(func=cmd_store_push)
    i = store.add_parser(
        "import",
        help="another store's runs merged into this one (vetted as any shared store; none twice)",
        epilog=EXIT_HELP,
    )
    i.add_argument("source", metavar="SOURCE", help="a results or store folder, a store URL, or a .tar/.tar.gz of one")
    _add_results(i, "the results folder or URL whose store receives the runs")
    i.set_defaults(func=cmd_store_import)


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
