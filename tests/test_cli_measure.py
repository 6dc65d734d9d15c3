import json

import pytest
import torch

from bench_lib.cli import main


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
    if record["energy_j_per_call"] is None:
        assert record["energy_reason"]
    assert 0 < record["roofline_fraction"] < 1.5
    assert record["context"]["device"] == "cpu-1t" and record["context"]["threads"] == 1


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
