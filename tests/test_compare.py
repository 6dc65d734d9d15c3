"""convbench compare on real samples: the committed results of this project, measured on a real machine."""

import itertools
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from fake_results import stored

from bench_lib.analysis import compare, results, series
from bench_lib.cli import main

ROOT = Path(__file__).resolve().parents[1]
LAT = "bench_ops.Latency.track_latency"


@pytest.fixture(scope="module")
def committed_result_file(tmp_path_factory) -> Path:
    """The committed store's largest run as an asv result file (the store rebuilds asv's format)."""
    from bench_lib.store import asv_files
    from bench_lib.store.query import Store

    out = tmp_path_factory.mktemp("asv")
    asv_files.write(Store(ROOT / "results" / "store"), out)
    files = [p for p in sorted(out.glob("*/*.json")) if p.name != "machine.json"]
    if not files:
        pytest.skip("no committed results under results/store")
    return max(files, key=lambda p: p.stat().st_size)


@pytest.fixture
def two_envs(tmp_path, committed_result_file):
    """The committed result file, and a copy under another environment with chosen combinations slowed 10%."""
    src = committed_result_file
    root = tmp_path / "results"
    box = root / src.parent.name
    box.mkdir(parents=True)
    shutil.copy(src.parent / "machine.json", box)
    shutil.copy(src, box)
    data = json.loads(src.read_text())
    cols = data["result_columns"]
    row = data["results"][LAT]
    values, samples = row[cols.index("result")], row[cols.index("samples")]
    # slow down every fourth combination whose samples are tight (so a 10% change is unambiguous)
    tight = [i for i, s in enumerate(samples) if s and len(s) >= 5 and (max(s) - min(s)) / statistics.median(s) < 0.04]
    chosen = set(tight[::4][:6])
    assert len(chosen) >= 3, "the committed results should hold tight samples"
    for i in chosen:
        samples[i] = [x * 1.10 for x in samples[i]]
        values[i] = values[i] * 1.10
    data["env_name"] = "existing-candidate"
    (box / f"{data['commit_hash'][:8]}-existing-candidate.json").write_text(json.dumps(data, allow_nan=True))
    stored(root)
    return root, data["env_name"], json.loads(src.read_text())["env_name"], chosen, data


def load(root):
    """The store's per-round rows of every run (what compare reads)."""
    shutil.rmtree(root / "store", ignore_errors=True)
    stored(root)
    store = results.store_of(root)
    return results.rounds_of_runs(store, store.runs(), series.READ)


def test_results_compared_with_themselves_flag_nothing(two_envs):
    root, _, base_env, _, _ = two_envs
    table, note = compare.compare(load(root), f"env={base_env}", f"env={base_env}")
    assert not table.empty and "same machine" in note
    ok = table[table.verdict != "skipped / skipped"]
    assert set(ok.verdict) <= {"unchanged", "inconclusive", "failed / failed"}
    assert (ok.loc[ok.verdict != "failed / failed", "change"] == 0).all()
    assert compare.exit_code(table) == 0


def test_one_round_without_history_is_inconclusive_never_slower(two_envs):
    """The migrated runs kept one round each and the store holds no history of them: a 10% slowdown
    cannot be told from this machine's noise, and compare says so instead of guessing."""
    root, cand_env, base_env, chosen, data = two_envs
    table, _ = compare.compare(load(root), f"env={base_env}", f"env={cand_env}", factor=1.05, alpha=0.01)
    row = data["results"][LAT]
    combos = list(itertools.product(*row[data["result_columns"].index("params")]))
    expected = {tuple(p.strip("'") for p in combos[i]) for i in chosen}
    lat = table[table.benchmark == LAT]
    got = lat[[(r.case, str(r.batch), r.device, r.layout, r.dtype, r.mode) in expected for r in lat.itertuples()]]
    assert len(got) == len(expected) and got.change.between(0.09, 0.11).all()
    assert set(got.verdict) == {"inconclusive"} and (got.detectable == float("inf")).all()
    assert "slower" not in set(table.verdict) and compare.exit_code(table) == 0


def test_cli_exit_codes_and_formats(two_envs, capsys):
    root, cand_env, base_env, _, _ = two_envs
    assert (
        main(["compare", "--results", str(root), "--baseline", f"env={base_env}", "--candidate", f"env={base_env}"])
        == 0
    )
    assert (
        main(
            [
                "compare",
                "--results",
                str(root),
                "--baseline",
                f"env={base_env}",
                "--candidate",
                f"env={cand_env}",
                "--markdown",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| verdict | change | detectable |" in out and "inconclusive (noise unknown)" in out
    assert (
        main(
            [
                "compare",
                "--results",
                str(root),
                "--baseline",
                f"env={base_env}",
                "--candidate",
                f"env={cand_env}",
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert {"note", "rule", "rows"} <= set(record) and any(r["verdict"] == "inconclusive" for r in record["rows"])


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("machine=nowhere", "selector 'machine=nowhere': machine=nowhere matches nothing"),
        ("colour=red", "unknown key 'colour'; accepted: machine, env, torch, commit, date, run"),
        ("env", "'env' is not key=value"),
    ],
)
def test_bad_selectors_exit_2_naming_what_matched_nothing(two_envs, capsys, selector, message):
    root, _, base_env, _, _ = two_envs
    code = main(["compare", "--results", str(root), "--baseline", f"env={base_env}", "--candidate", selector])
    assert code == 2 and message in capsys.readouterr().err


def test_across_machines_gives_the_speed_ratio_and_each_sides_gain_over_dense(two_envs):
    root, _cand_env, base_env, _, _ = two_envs
    src = next(p for p in root.iterdir() if p.is_dir())
    other = root / "other-box"
    shutil.copytree(src, other)
    (other / "machine.json").write_text(json.dumps({"machine": "other-box", "version": 1}))
    # the other machine is uniformly 3x slower: relative to dense, nothing changed
    for f in other.glob("*.json"):
        if f.name == "machine.json":
            continue
        d = json.loads(f.read_text())
        cols = d["result_columns"]
        r = d["results"][LAT]
        r[cols.index("result")] = [v * 3 if isinstance(v, float) else v for v in r[cols.index("result")]]
        r[cols.index("samples")] = [[x * 3 for x in s] if s else s for s in r[cols.index("samples")]]
        f.write_text(json.dumps(d, allow_nan=True))
    table, note = compare.compare(load(root), f"machine={src.name},env={base_env}", f"machine=other-box,env={base_env}")
    assert "across hardware" in note
    latency = table[(table.benchmark == LAT) & table.ratio.notna()]
    assert not latency.empty and np.allclose(latency.ratio, 1 / 3)  # the candidate runs at a third of the speed
    assert set(latency.verdict) <= {"slower", "inconclusive"} and "faster" not in set(table.verdict)
    gains = latency.dropna(subset=["vs_dense_baseline"])
    assert not gains.empty and np.allclose(gains.vs_dense_baseline, gains.vs_dense_candidate)  # relative: equal


def test_across_machines_a_case_without_a_dense_baseline_has_a_ratio_but_no_gain_over_dense(two_envs):
    root, _cand_env, base_env, _, _ = two_envs
    src = next(p for p in root.iterdir() if p.is_dir())
    other = root / "other-box"
    shutil.copytree(src, other)
    (other / "machine.json").write_text(json.dumps({"machine": "other-box", "version": 1}))
    for f in other.glob("*-*.json"):  # the other machine failed every dense equivalent
        d = json.loads(f.read_text())
        cols = d["result_columns"]
        r = d["results"][LAT]
        combos = list(itertools.product(*r[cols.index("params")]))
        dense = [i for i, p in enumerate(combos) if p[0].startswith("'standard(")]
        for i in dense:
            r[cols.index("result")][i] = None
        f.write_text(json.dumps(d, allow_nan=True))
    table, _ = compare.compare(load(root), f"machine={src.name},env={base_env}", f"machine=other-box,env={base_env}")
    grouped = table[table.case.str.startswith("grouped(") & table.ratio.notna()]
    assert not grouped.empty and grouped["vs_dense_candidate"].isna().all()
    assert grouped["vs_dense_baseline"].notna().any()


def test_runs_of_another_method_version_are_not_pooled_or_compared(two_envs):
    root, cand_env, base_env, _, data = two_envs
    box = next(p for p in root.iterdir() if p.is_dir())
    cand = box / f"{data['commit_hash'][:8]}-{cand_env}.json"
    d = json.loads(cand.read_text())
    for r in d["results"].values():
        r[d["result_columns"].index("version")] = "0.1.0-2"  # the method changed since the baseline
    cand.write_text(json.dumps(d, allow_nan=True))
    table, _ = compare.compare(load(root), f"env={base_env}", f"env={cand_env}")
    latency = table[(table.benchmark == LAT) & (table.verdict != "skipped / skipped")]
    assert set(latency.verdict) == {"not comparable: method version 0.1.0-1 vs 0.1.0-2"}
    assert compare.exit_code(table) == 0
    # one side holding both versions keeps only the newest: no pooling across methods
    rows = load(root)
    one_side = compare.side(series.run_values(rows[rows.metric == "latency"]), ["machine", *series.COMBINATION])
    assert set(one_side.suite_version) == {"0.1.0-2"} and set(one_side.n_runs) <= {0, 1}
