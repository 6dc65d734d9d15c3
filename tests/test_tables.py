"""The analysis tables on synthetic results with known answers."""

import warnings

from fake_results import latency_row, machine, result_file, stored

from bench_lib.analysis import results, tables

STANDARD = "standard(in=64,out=64,k=3,bias=false)@14x14"
GROUPED = "grouped(in=64,out=64,k=3,g=4,bias=false)@14x14"
LAT = "bench_ops.Latency.track_latency"


def test_latest_keeps_each_environment_apart(tmp_path):
    # two torch versions side by side on one machine and commit: each keeps its own newest results
    box = machine(tmp_path / "results", "box")
    result_file(
        box,
        "a" * 40,
        "torch-a",
        {LAT: latency_row([1e-3, 5e-4], [STANDARD, GROUPED], samples=[[1e-3] * 5, [5e-4] * 5])},
    )
    result_file(
        box,
        "a" * 40,
        "torch-b",
        {LAT: latency_row([2e-3, 4e-4], [STANDARD, GROUPED], samples=[[2e-3] * 5, [4e-4] * 5])},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(stored(tmp_path / "results"))
    latest = tables.latest(df)
    assert len(latest) == 4
    speedups = tables.speedup_table(df).set_index("env_name")["speedup"]
    assert speedups.to_dict() == {"torch-a": 2.0, "torch-b": 5.0}
