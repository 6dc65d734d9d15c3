import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from fake_results import latency_row, machine, result_file

from bench_lib.analysis import results
from bench_lib.errors import ArgumentError
from bench_lib.store.migrate import migrate

GROUPED = "grouped(in=64,out=64,k=3,g=4,bias=false)@14x14"
DENSE = "standard(in=64,out=64,k=3,bias=false)@14x14"
DEPTHWISE = "depthwise(in=64,k=3,bias=false)@14x14"
LAT = "bench_ops.Latency.track_latency"


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "results"
    box = machine(root, "box-a", torch="2.13.0+cpu")
    samples = [[1.0e-3, 1.1e-3, 0.9e-3], [4.0e-4, 4.1e-4, 3.9e-4], None]
    result_file(
        box,
        "a" * 40,
        "existing-py_venv_a",
        {
            # standard measured, grouped 2.5x faster, depthwise failed (null)
            LAT: latency_row([1.0e-3, 4.0e-4, None], [DENSE, GROUPED, DEPTHWISE], samples=samples),
            "bench_ops.PeakMemory.track_peak_memory": latency_row(
                [2e6, float("nan"), 1e6], [DENSE, GROUPED, DEPTHWISE]
            ),
        },
    )
    # a quick run: infinite confidence bounds, no samples
    result_file(
        box,
        "b" * 40,
        "existing-py_venv_a",
        {
            LAT: latency_row(
                [2.0e-3, 1.0e-3], [DENSE, GROUPED], ci=[[float("-inf"), float("-inf")], [float("inf"), float("inf")]]
            ),
        },
    )
    # another environment with an old benchmark version
    result_file(box, "a" * 40, "existing-py_venv_b", {LAT: latency_row([1.2e-3], [DENSE], version="0.0.9-1")})
    other = machine(root, "box-b", gpu="1x Test GPU")
    result_file(
        other,
        "a" * 40,
        "existing-py_venv_a",
        {LAT: latency_row([5e-4, 1e-4], [DENSE, GROUPED], samples=[[5e-4] * 3, [1e-4] * 3])},
    )
    (other / "cccccccc-existing-py_venv_a.json").write_text('{"commit_hash": "cccc", "results": {')  # truncated
    with pytest.warns(UserWarning, match=r"cccccccc-existing-py_venv_a.json: not a readable JSON file"):
        migrate(root, root / "store")  # asv's files (convbench 0.1's results) into the store
    return root


def test_load_one_row_per_combination_with_decoded_params(results_dir):
    df = results.load(results_dir, history=True)
    assert len(df) == 3 + 3 + 2 + 1 + 2  # the truncated file is skipped, the rest loads
    # by default only the newest run of each machine and environment: box-a's quick run on commit b
    newest = results.load(results_dir)
    assert sorted(newest.groupby(["machine", "env_name"]).size().to_dict().items()) == [
        (("box-a", "existing-py_venv_a"), 2),
        (("box-a", "existing-py_venv_b"), 1),
        (("box-b", "existing-py_venv_a"), 2),
    ]
    row = df[
        (df.machine == "box-a")
        & (df.commit_hash == "a" * 40)
        & (df.case == GROUPED)
        & (df.env_name == "existing-py_venv_a")
        & (df.metric == "latency")
    ].iloc[0]
    assert (row.workload, row.height, row.batch, row.device, row.layout, row["dtype"], row["mode"]) == (
        "grouped",
        14,
        1,
        "cpu-1t",
        "nchw",
        "float32",
        "inference",
    )
    assert row.case_params == {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "groups": 4, "bias": False}
    assert list(row.samples) == [4.0e-4, 4.1e-4, 3.9e-4] and row.n_samples == 3 and row.number == 10
    assert row.unit == "seconds" and row.status == "ok" and row.torch_version == "2.13.0+cpu"
    assert row.machine_cpu == "Test CPU"


def test_statuses_quick_runs_and_versions(results_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(results_dir, history=True)
    a = df[(df.machine == "box-a") & (df.commit_hash == "a" * 40) & (df.env_name == "existing-py_venv_a")]
    assert a[(a.case == DEPTHWISE) & (a.metric == "latency")].status.item() == "failed"
    assert a[(a.case == GROUPED) & (a.metric == "peak_memory")].status.item() == "skipped"
    assert math.isnan(a[(a.case == GROUPED) & (a.metric == "peak_memory")].value.item())
    quick = df[df.commit_hash == "b" * 40]  # asv's quick run: no samples, its infinite bounds not kept
    assert (quick.status == "ok").all() and quick.samples.isna().all() and quick.ci_low.isna().all()
    old = df[df.env_name == "existing-py_venv_b"]
    assert not old.current_version.any() and df[df.env_name == "existing-py_venv_a"].current_version.all()


def test_theory_join_and_derived_columns(results_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(results_dir, history=True)
    a = df[
        (df.machine == "box-a")
        & (df.commit_hash == "a" * 40)
        & (df.env_name == "existing-py_venv_a")
        & (df.metric == "latency")
    ].set_index("case")
    macs = 14 * 14 * 64 * 16 * 9
    assert a.loc[GROUPED, "theory_macs"] == macs and a.loc[GROUPED, "theory_flops"] == 2 * macs
    assert a.loc[GROUPED, "flop_reduction"] == pytest.approx(4.0)
    assert a.loc[GROUPED, "dense_case"] == DENSE
    assert a.loc[GROUPED, "speedup"] == pytest.approx(1.0e-3 / 4.0e-4)
    assert a.loc[DENSE, "speedup"] == pytest.approx(1.0)
    assert math.isnan(a.loc[DEPTHWISE, "speedup"])  # its latency failed
    assert a.loc[GROUPED, "achieved_flops_per_s"] == pytest.approx(2 * macs / 4.0e-4)
    assert a.loc[GROUPED, "items_per_s"] == pytest.approx(1 / 4.0e-4)
    # speedup never mixes machines, environments or commits
    b = df[(df.machine == "box-b") & (df.metric == "latency")].set_index("case")
    assert b.loc[GROUPED, "speedup"] == pytest.approx(5.0)
    mem = df[(df.metric == "peak_memory") & (df.status == "ok")]
    assert (mem.peak_bytes == mem.value).all() and mem.latency_s.isna().all()


def test_a_folder_without_a_store_is_refused_naming_it(tmp_path):
    for where in (tmp_path / "nothing", tmp_path):
        with pytest.raises(ArgumentError, match=rf"--results {where}: no convbench results there"):
            results.load(where)


def test_history_rows_select_runs_by_date(tmp_path):
    root = tmp_path / "results"
    box = machine(root, "box-a")
    hist = box / "history"
    hist.mkdir()
    for day, median in (("2026-11-20", 1e-3), ("2026-11-21", 2e-3)):
        run = {
            "run": {
                "run_id": f"{day}-x",
                "started": f"{day}T01:00:00+00:00",
                "machine": "box-a",
                "commit_hash": "a" * 40,
                "env_name": "env",
                "bench_lib_version": "0.1.0",
            }
        }
        event = {
            "metric": "latency",
            "suite": "ops",
            "status": "ok",
            "params": {
                "case": DENSE,
                "batch": 1,
                "device": "cpu-1t",
                "layout": "nchw",
                "dtype": "float32",
                "mode": "inference",
            },
            "measurement": {"median_s": median, "samples_s": [median] * 5, "context": {"torch_version": "2.14.0"}},
        }
        (hist / f"{day}-x.jsonl").write_text(json.dumps(run) + "\n" + json.dumps(event) + "\n{broken\n")
    with pytest.warns(UserWarning, match="line 3 is not JSON"):
        migrate(root, root / "store")
    df = results.load(root, history=True)
    assert list(df.sort_values("run_date").value) == [1e-3, 2e-3]
    assert set(df.source) == {"store"} and set(df.torch_version) == {"2.14.0"}
    assert df.run_date.dt.strftime("%Y-%m-%d").tolist() == ["2026-11-20", "2026-11-21"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export(results_dir, tmp_path, suffix, capsys):
    from bench_lib.cli import main

    out = tmp_path / f"all{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["export", "--results", str(results_dir), "--out", str(out), "--history"]) == 0
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(back) == 11 and {"speedup", "theory_flops", "latency_s"} <= set(back.columns)
    assert main(["export", "--results", str(results_dir), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err


def test_a_case_without_theory_is_warned_about_not_silently_blanked():
    from bench_lib.analysis import results as r

    r._theory_per_item.cache_clear()
    with pytest.warns(
        UserWarning, match=r"no theory for 'standard\(in=64,out=64\)@56x56' \(float64\): dtype='float64'"
    ):
        assert r._theory("standard(in=64,out=64)@56x56", 1, "float64") == {}


def test_per_run_pools_ok_rounds_and_keeps_failed_ones_apart():
    def row(case, rnd, status, value, samples):
        keys = dict(suite="bench_ops", metric="latency", batch=1, device="cpu-1t", layout="nchw", dtype="float32")
        return dict(
            run_id="r1",
            case=case,
            mode="inference",
            round=rnd,
            status=status,
            value=value,
            samples=None if samples is None else np.array(samples, float),
            n_samples=None,
            q25=math.nan,
            q75=math.nan,
            **keys,
        )

    m = pd.DataFrame(
        [
            row("a", 0, "ok", 3.0, [3, 1, 2]),
            row("a", 1, "ok", 5.0, [7, 4, 6, 5]),
            row("a", 2, "ok", 10.0, [8]),
            row("a", 3, "failed", math.nan, [100.0]),  # the newest round failed: its samples are not pooled
            row("b", 0, "ok", 9.0, [9]),
            row("c", 0, "failed", math.nan, None),
            row("c", 1, "skipped", math.nan, None),
        ]
    )
    out = results.per_run(m).set_index("case")
    a, c = out.loc["a"], out.loc["c"]
    assert (a["rounds"], a["value"], a["status"], a["n_samples"]) == (4, 5.0, "ok", 8)  # the ok rounds' median
    assert list(a["samples"]) == [3, 1, 2, 7, 4, 6, 5, 8]  # in round order
    assert (a["q25"], a["q75"]) == (2.75, 6.25)  # numpy's linear quartiles of 1..8
    assert out.loc["b", "rounds"] == 1 and out.loc["b", "value"] == 9.0
    assert (c["rounds"], c["status"]) == (2, "skipped") and math.isnan(c["value"])  # no ok round: the newest
