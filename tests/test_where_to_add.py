"""docs/architecture.md's "Where to add", traced: each row's addition made in the one place the row names
(in a fresh interpreter, before anything reads the tables), and every consumer seen to take it up. A row
that needs another file fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str) -> dict:
    env = {**os.environ, "CONVBENCH_GRID": "default"}  # asv's classes are made from the grid of this variable
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


OP = """
import json, sys
from torch import nn
from bench_lib.catalogue.registry import BIAS, IN, PAD, STRIDE, K, Param, padding_default, workload

# the addition: one builder in catalogue/ops.py
@workload(
    kind="op",
    summary="K×K convolution in two groups",
    params={"in_channels": IN, "out_channels": Param(int, 128, 1), "kernel_size": K, "stride": STRIDE,
            "padding": PAD, "bias": BIAS},
    derive=padding_default,
    dense=lambda p: ("standard", {k: p[k] for k in ("in_channels", "out_channels", "kernel_size", "stride",
                                                     "padding", "bias")}),
    at_stage=lambda c: {"in_channels": c, "out_channels": c, "kernel_size": 3, "bias": False},
)
def halves(p):
    return nn.Conv2d(p["in_channels"], p["out_channels"], p["kernel_size"], p["stride"], p["padding"],
                     groups=2, bias=p["bias"])

sys.path.insert(0, ".")
import benchmarks.bench_ops as bench
from bench_lib.catalogue import theory
from bench_lib.catalogue.cases import Case
from bench_lib.measure import harness
from bench_lib.measure.task import Task
from bench_lib.suite import grids

grid = grids.grid("default", ["cpu-1t"])
print(json.dumps({
    "grid": [c for c in grid.cases["ops"] if c.startswith("halves")],
    "asv": [c for c in bench.Latency.params[0] if c.startswith("halves")],
    "macs": theory.cost("halves", in_channels=64, out_channels=64, kernel_size=3).macs,
    "reduction": theory.reduction("halves", in_channels=64, out_channels=64, kernel_size=3)["flop_reduction"],
    "dense": str(Case.parse("halves(in=64,out=64,k=3)@56x56").dense_equivalent()),
    "checked": harness.prepare(Task("halves(in=8,out=8,k=3)@8x8")).relative_error < 1e-5,
}))
"""


def test_an_op_is_one_builder_in_ops_py():
    found = _run(OP)
    assert found["grid"] and found["grid"] == found["asv"]  # the grids and asv run it at every stage
    assert all(c.startswith("halves(in=") for c in found["grid"])
    assert found["macs"] == 64 * 32 * 9 * 56 * 56 and found["reduction"] == 2.0  # theory traces it
    assert found["dense"].startswith("standard(in=64,out=64") and found["checked"]


BLOCK = """
import json, sys
from torch import nn
from bench_lib.catalogue.registry import IN, Param, workload

# the addition: one builder in catalogue/blocks.py, with the stages it runs at
@workload(
    kind="block",
    summary="two pointwise convs with a ReLU between",
    params={"in_channels": IN, "mid_channels": Param(int, 32, 1), "dense": Param(bool, False)},
    stages={56: {"in_channels": 24, "mid_channels": 48}, 14: {"in_channels": 80, "mid_channels": 160}},
)
def pinch(p):
    mid = p["in_channels"] if p["dense"] else p["mid_channels"]
    return nn.Sequential(nn.Conv2d(p["in_channels"], mid, 1), nn.ReLU(), nn.Conv2d(mid, p["in_channels"], 1))

sys.path.insert(0, ".")
import benchmarks.bench_blocks as bench
from bench_lib.catalogue import theory
from bench_lib.suite import grids

grid = grids.grid("default", ["cpu-1t"])
print(json.dumps({
    "grid": [c for c in grid.cases["blocks"] if c.startswith("pinch")],
    "asv": [c for c in bench.Latency.params[0] if c.startswith("pinch")],
    "macs": theory.cost("pinch", in_channels=24, mid_channels=48, height=56, width=56).macs,
}))
"""


def test_a_block_is_one_builder_in_blocks_py():
    found = _run(BLOCK)
    assert (
        sorted(found["grid"])
        == sorted(found["asv"])
        == [  # at each of its stages, and its dense equivalent
            "pinch(in=24,mid=48)@56x56",
            "pinch(in=24,mid=48,dense=true)@56x56",
            "pinch(in=80,mid=160)@14x14",
            "pinch(in=80,mid=160,dense=true)@14x14",
        ]
    )
    assert found["macs"] == 2 * 24 * 48 * 56 * 56


KIND = """
import json, re
from bench_lib.measure import kinds

# the addition: its entry in measure/kinds.py ...
kinds.KINDS["xpu"] = kinds.DeviceKind(
    "xpu", r"xpu(?::(?P<xpu_index>\\d+))?", "xpu, xpu:K", 16, 16, (1024, 64, 28, 4), 2048, 2**28,
    kinds.KINDS["cuda"].copy_levels, kinds.GPU_CONV_SHAPES, None, "no energy meter for XPUs yet",
)
from bench_lib.measure import devices

# ... and its backend in measure/devices.py
@devices.backend_of("xpu")
class XpuBackend(devices.Backend):
    @classmethod
    def spec_of(cls, text, match):
        return devices.DeviceSpec(text, cls.kind, index=int(match.group("xpu_index") or 0))

    def available(self):
        return False, "no XPU on this machine"

import contextlib, io
from bench_lib.cli import main
from bench_lib.measure import energy
from bench_lib.suite import grids

shown = io.StringIO()
with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
    main(["measure", "--help"])
try:
    devices.parse_spec("tpu")
except ValueError as e:
    error = str(e)
visible = {s: (ok, why) for s, ok, why in devices.visible_specs()}
grid = grids.grid("default", ["cpu-1t", "xpu:1"])
runs = [c for c in grid.combinations("ops", "latency") if c.device == "xpu:1" and not grid.excluded(c)]
print(json.dumps({
    "spec": [devices.parse_spec("xpu:1").kind, devices.parse_spec("xpu:1").index],
    "help": "xpu:K" in shown.getvalue(),
    "error": error,
    "visible": visible.get("xpu"),
    "batches": sorted({c.batch for c in runs}),
    "meter": energy.meter_for("xpu").available()[1],
}))
"""


def test_a_device_kind_is_its_entry_in_kinds_py_and_its_backend_in_devices_py():
    found = _run(KIND)
    assert found["spec"] == ["xpu", 1] and found["help"]
    assert "xpu, xpu:K" in found["error"]
    assert found["visible"] == [False, "no XPU on this machine"]  # listed, with why it cannot run here
    assert found["batches"] == [1, 16]  # the grids run it at its own batch
    assert found["meter"] == "no energy meter for XPUs yet"


METRIC = '''
import json, sys
from bench_lib.measure import metrics

class Calls:
    def __init__(self, n):
        self.calls_per_call = n

    def summary(self):
        return {"calls_per_call": self.calls_per_call}

# the addition: one entry in measure/metrics.py
@metrics.metric("calls", "count", "Calls", per_round=False, read=lambda f: (f.get("calls"), {}),
                headline="calls_per_call", detail="counting", column="calls_count")
def _calls(target, settings):
    """Calls per call (always one)."""
    return 1, Calls(1), {"calls": 1}

sys.path.insert(0, ".")
import pandas as pd
import benchmarks.bench_ops as bench
from bench_lib.analysis import results
from bench_lib.store import records
from bench_lib.suite import asv_adapter, combination, grids

grid = grids.grid("default", ["cpu-1t"])
c = combination.Combination("ops", "calls", grid.cases["ops"][0], 1, "cpu-1t", "nchw", "float32", "inference")
rows = pd.DataFrame({"status": ["ok", "ok"], "metric": ["calls", "latency"], "value": [1.0, 2e-4]})
df = results.metric_columns(rows)
print(json.dumps({
    "asv": [bench.Calls.unit, hasattr(bench.Calls, "track_calls")],
    "grid": "calls" in grid.metrics,
    "name": c.benchmark,
    "rounds": asv_adapter.rounds_of(c, 5),
    "stored": records.event_value({"metric": "calls", "calls": 1})[0],
    "column": [None if v != v else v for v in df["calls_count"]],
}))
'''


def test_a_metric_is_one_entry_in_metrics_py():
    found = _run(METRIC)
    assert found["asv"] == ["count", True] and found["grid"]  # its asv class, made from the table
    assert found["name"] == "bench_ops.Calls.track_calls" and found["rounds"] == 1  # measured once
    assert found["stored"] == 1 and found["column"] == [1.0, None]  # the store reads it, the tidy table has its column
