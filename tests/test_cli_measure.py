import json
import math

import pytest
import torch

from bench_lib.catalogue import theory
from bench_lib.cli import main
from bench_lib.measure import energy, roofline


class FixedMeter(energy.Meter):
    """A meter whose every window holds ``joules``: the energy per call is then joules / calls."""

    name = "fixed"
    update_period_s = 0.001

    def __init__(self, joules: float):
        self.joules = joules

    def available(self) -> tuple[bool, str]:
        return True, ""

    def begin_window(self) -> None:
        pass

    def end_window(self) -> energy.EnergyWindow:
        return energy.EnergyWindow(self.joules, 1.0)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_measure_json_has_the_documented_keys(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "measure",
        "depthwise",
        "in_channels=32",
        "--height",
        "28",
        "--width",
        "28",
        "--samples",
        "5",
        "--max-time",
        "0.2",
        "--results",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    record = json.loads(out)
    for key in (
        "median_s",
        "iqr_s",
        "cv",
        "samples_s",
        "block",
        "noisy",
        "peak_bytes",
        "energy_j_per_call",
        "roofline_fraction",
        "context",
    ):
        assert key in record
    assert len(record["samples_s"]) == 5 and record["median_s"] > 0
    assert record["peak_bytes"] >= 4 * 32 * 28 * 28
    # the roofline fraction is this device's floor for the case's FLOPs and bytes over the median, exactly
    cost = theory.cost("depthwise", in_channels=32, height=28, width=28)
    peaks = roofline.load_cached("cpu-1t", tmp_path)
    floor_s = peaks.floor_s(cost.flops, cost.min_bytes)
    assert record["roofline_fraction"] == pytest.approx(floor_s / record["median_s"], rel=1e-12)
    assert record["achieved_flops_per_s"] == pytest.approx(cost.flops / record["median_s"], rel=1e-12)
    assert record["context"]["device"] == "cpu-1t" and record["context"]["threads"] == 1


def test_measure_energy_per_call_sizes_its_window_from_the_measured_median(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "meter_of", lambda spec: FixedMeter(2.0))
    argv = ["measure", "pointwise", "--height", "14", "--width", "14", "--samples", "3", "--max-time", "0.1"]
    code, out, err = run(capsys, *argv, "--no-memory", "--results", str(tmp_path), "--json")
    assert code == 0, err
    record = json.loads(out)
    calls = math.ceil(1.0 / record["median_s"])  # a window of at least a second of calls at the median
    assert record["energy"]["calls"] == calls and record["energy"]["meter"] == "fixed"
    assert record["energy_j_per_call"] == pytest.approx(2.0 / calls)
    monkeypatch.setattr(energy, "meter_of", lambda spec: energy.NoMeter("no meter in this test"))
    code, out, _ = run(capsys, *argv, "--no-memory", "--results", str(tmp_path), "--json")
    record = json.loads(out)
    assert (record["energy_j_per_call"], record["energy_reason"]) == (None, "no energy meter: no meter in this test")


def test_a_metric_added_to_the_table_is_measured_and_shown_with_no_change_to_the_command(capsys, tmp_path, monkeypatch):
    from dataclasses import dataclass, replace

    from bench_lib.measure import metrics

    @dataclass
    class Count:
        calls_per_call: int

        def summary(self):
            return {"calls_per_call": self.calls_per_call, "context": {"dropped": True}}

    counted = metrics.Metric(
        "calls",
        "count",
        "Calls",
        per_round=False,
        run=lambda target, settings: (1, Count(1), {}),
        read=lambda fields: (None, {}),
        headline="calls_per_call",
        detail="counting",
        column="calls_count",
    )
    argv = ["measure", "pointwise", "--height", "8", "--width", "8", "--samples", "3", "--max-time", "0.05"]
    argv += ["--no-memory", "--no-energy", "--results", str(tmp_path), "--json"]
    monkeypatch.setitem(metrics.METRICS, "calls", counted)
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    record = json.loads(out)
    assert record["calls_per_call"] == 1 and record["counting"] == {"calls_per_call": 1}
    assert "dropped" not in record["context"]
    monkeypatch.setitem(metrics.METRICS, "calls", replace(counted, available=lambda backend: (False, "no counter")))
    record = json.loads(run(capsys, *argv)[1])
    assert record["calls_per_call"] is None and record["counting_reason"] == "no counter"
    # a metric left out by its flag says so
    assert (record["peak_bytes"], record["memory_reason"]) == (None, "not asked for (--no-memory)")


def test_measure_text_output(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "measure",
        "pointwise",
        "--height",
        "14",
        "--width",
        "14",
        "--samples",
        "3",
        "--max-time",
        "0.1",
        "--no-memory",
        "--no-energy",
        "--results",
        str(tmp_path),
    )
    assert code == 0
    assert "pointwise@14x14 on cpu-1t" in out and "energy: not measured (not asked for (--no-energy))" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "cpu-0t"], "device='cpu-0t': the thread count must be at least 1"),
        (["--device", "gpu"], "device='gpu' is not a device spec; accepted: cpu, cpu-Nt"),
        (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
        (["--layout", "nhwc"], "argument --layout: invalid choice: 'nhwc'"),
        (["--mode", "eval"], "argument --mode: invalid choice: 'eval'"),
    ],
)
def test_invalid_specs_are_one_line_and_exit_2(capsys, args, message):
    code, out, err = run(capsys, "measure", "standard", *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_missing_cuda_device_is_exit_2(capsys):
    code, _, err = run(capsys, "measure", "standard", "--device", "cuda:7")
    assert code == 2
    assert "device='cuda:7' is not available here" in err and "available: cpu-1t" in err


def test_info_runs_without_peaks(capsys):
    code, out, _ = run(capsys, "info", "--no-peaks")
    assert code == 0
    assert "cpu-1t" in out and "energy meters" in out and "torch_version" in out
