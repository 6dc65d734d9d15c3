"""The smoke grid through asv for real (forkserver, this machine) in a throw-away project."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "asv.conf.json", project)
    shutil.copytree(ROOT / "benchmarks", project / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=project, check=True, capture_output=True)
    return project


def convbench(project, *args, env=None, **kw):
    full_env = {
        **os.environ,
        "CONVBENCH_MACHINE": "e2e-box",
        "HOME": str(project),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bench_lib.cli", "run", "--project", str(project), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def result_file(project: Path) -> dict:
    files = [p for p in (project / "results" / "e2e-box").glob("*.json") if p.name != "machine.json"]
    assert len(files) == 1, files
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert files[0].name.startswith(head[:8])
    return json.loads(files[0].read_text())


def values(results: dict, benchmark: str) -> dict:
    import itertools

    row = results["results"][benchmark]
    columns = dict(zip(results["result_columns"], row, strict=False))
    combos = list(itertools.product(*columns["params"]))
    samples = columns.get("samples") or [None] * len(combos)
    return {c: (v, s) for c, v, s in zip(combos, columns["result"], samples, strict=True)}


def test_smoke_grid_through_asv_keeps_results_when_one_combination_fails(tmp_path):
    project = make_project(tmp_path)
    out = convbench(
        project, "--grid", "smoke", "--device", "cpu-1t", "--device", "cuda:7", env={"CONVBENCH_FAIL": "^standard"}
    )
    assert out.returncode == 1, out.stdout + out.stderr  # the injected failure makes the run exit 1
    assert "FAILED bench_ops.Latency.track_latency('standard" in out.stdout
    assert "injected failure" in out.stdout
    results = result_file(project)
    assert results["commit_hash"] and results["params"]["machine"] == "e2e-box"
    latency = values(results, "bench_ops.Latency.track_latency")
    ok = latency[("'depthwise(in=32,k=3,bias=false)@14x14'", "1", "'cpu-1t'", "'nchw'", "'float32'", "'inference'")]
    assert ok[0] > 0 and len(ok[1]) >= 5  # a value, with its samples
    failed = latency[
        ("'standard(in=32,out=32,k=3,bias=false)@14x14'", "1", "'cpu-1t'", "'nchw'", "'float32'", "'inference'")
    ]
    assert failed[0] is None
    skipped = latency[
        ("'depthwise(in=32,k=3,bias=false)@14x14'", "1", "'cuda:7'", "'nchw'", "'float32'", "'inference'")
    ]
    assert isinstance(skipped[0], float) and math.isnan(skipped[0])
    blocks = values(results, "bench_blocks.Latency.track_latency")
    assert all(v[0] > 0 for k, v in blocks.items() if k[2] == "'cpu-1t'")  # inference and training
    history = list((project / "results" / "e2e-box" / "history").glob("*.jsonl"))
    assert len(history) == 1
    meta = json.loads(history[0].read_text().splitlines()[0])["run"]
    assert meta["grid"] == "smoke" and meta["summary"]["failed"]
    assert "cuda:7" in " ".join(meta["summary"]["skipped"])
    machine = json.loads((project / ".asv-machine.json").read_text())
    assert {"gpu", "driver", "torch"} <= set(machine["e2e-box"])


def test_interrupt_finishes_the_chunk_in_flight_and_keeps_it(tmp_path):
    project = make_project(tmp_path)
    env = {
        **os.environ,
        "CONVBENCH_MACHINE": "e2e-box",
        "HOME": str(project),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench_lib.cli",
            "run",
            "--project",
            str(project),
            "--grid",
            "smoke",
            "--device",
            "cpu-1t",
            "--chunk-size",
            "3",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("convbench run: grid smoke")
    time.sleep(3.0)  # the first chunk's asv is under way
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stdout + stderr
    assert "finishing the chunk in flight" in stderr
    results = result_file(project)
    kept = [v for row in results["results"].values() for v in row[0] if v is not None]
    assert len(kept) >= 3  # the whole first chunk
    summary = json.loads(
        next((project / "results" / "e2e-box" / "history").glob("*.jsonl")).read_text().splitlines()[0]
    )["run"]["summary"]
    assert summary["interrupted"] and summary["ok"] < summary["selected"]


def test_asv_check_passes():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "asv",
            "check",
            "--config",
            str(ROOT / "asv.conf.json"),
            "-E",
            f"existing:{sys.executable}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CONVBENCH_GRID": "smoke"},
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_run_outside_a_git_checkout_exits_2(tmp_path):
    shutil.copy(ROOT / "asv.conf.json", tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "bench_lib.cli", "run", "--project", str(tmp_path), "--grid", "smoke"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "is not a git checkout with at least one commit" in out.stderr
