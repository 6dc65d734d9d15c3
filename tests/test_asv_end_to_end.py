"""The smoke grid through asv for real (forkserver, this machine) in a throw-away project."""

import contextlib
import json
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


def stored(project: Path, history: bool = True):
    """The project's store as the analysis reads it (one row per run and combination)."""
    from bench_lib.analysis import results

    return results.load(project / "results", history=history, derive=False)


def runs(project: Path):
    from bench_lib.store.query import Store

    return Store(project / "results" / "store").runs()


def latency(df, case: str, device: str = "cpu-1t", suite: str = "ops"):
    row = df[(df.metric == "latency") & (df.case == case) & (df.device == device) & (df["mode"] == "inference")]
    row = row[row.suite == suite]
    assert len(row) == 1, row
    return row.iloc[0]


def test_smoke_grid_through_asv_keeps_results_when_one_combination_fails(tmp_path):
    project = make_project(tmp_path)
    out = convbench(
        project, "--grid", "smoke", "--device", "cpu-1t", "--device", "cuda:7", env={"CONVBENCH_FAIL": "^standard"}
    )
    assert out.returncode == 3, out.stdout + out.stderr  # the injected failure: some combinations failed (3)
    assert "FAILED bench_ops.Latency.track_latency('standard" in out.stdout
    assert "injected failure" in out.stdout
    df = stored(project)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert set(df.commit_hash) == {head} and set(df.machine) == {"e2e-box"}
    ok = latency(df, "depthwise(in=32,k=3,bias=false)@14x14")
    assert ok.status == "ok" and ok.value > 0 and len(ok.samples) >= 5  # a value, with its samples
    failed = latency(df, "standard(in=32,out=32,k=3,bias=false)@14x14")
    assert failed.status == "failed" and "injected failure" in failed.reason
    skipped = latency(df, "depthwise(in=32,k=3,bias=false)@14x14", "cuda:7")
    assert skipped.status == "skipped" and "cuda:7" in skipped.reason
    plain = latency(df, "depthwise(in=32,k=3,bias=false)@14x14", suite="plain")  # a fresh interpreter's
    assert plain.status == "ok" and plain.value > 0 and len(plain.samples) >= 5
    assert not ((df.suite == "plain") & (df.device == "cuda:7")).any()  # host allocator: CPU only, by design
    blocks = df[(df.suite == "blocks") & (df.metric == "latency") & (df.device == "cpu-1t")]
    assert (blocks.status == "ok").all() and set(blocks["mode"]) == {"inference", "training"}
    (run,) = runs(project).itertuples()
    assert run.grid == "smoke" and run.state == "complete" and run.failed > 0 and run.hardware_id
    machine = json.loads((project / ".asv-machine.json").read_text())
    assert {"gpu", "driver", "torch"} <= set(machine["e2e-box"])
    assert not list((project / "results").glob("e2e-box*/*.json"))  # asv's own file stayed in the scratch


def start_run(project: Path, tmp: Path, *args: str) -> subprocess.Popen:
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "CONVBENCH_MACHINE": "e2e-box", "HOME": str(project), "TMPDIR": str(tmp)}
    env["CONVBENCH_LOCK_DIR"] = str(project)
    cmd = [sys.executable, "-m", "bench_lib.cli", "run", "--project", str(project), "--grid", "smoke"]
    return subprocess.Popen(
        [*cmd, "--device", "cpu-1t", "--chunk-size", "3", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_first_chunk(project: Path, timeout_s: float = 120) -> None:
    """Until the run's measurements and runs files exist (the runner saves after every chunk, the runs row
    last: a kill between the two would leave measurements no run names)."""
    deadline = time.monotonic() + timeout_s
    store = project / "results" / "store"
    while not (list((store / "measurements").glob("*/*/*.parquet")) and list((store / "runs").glob("*/*/*.parquet"))):
        assert time.monotonic() < deadline, "no chunk was saved"
        time.sleep(0.2)


def asv_processes(project: Path) -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "asv" in cmd and str(project) in cmd:
            found.append(p)
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_keeps_what_was_measured_and_leaves_nothing_running(tmp_path, stop):
    project = make_project(tmp_path)
    proc = start_run(project, tmp_path / "tmp")
    wait_for_first_chunk(project)
    proc.send_signal(stop)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stdout + stderr
    assert f"{stop.name}: stopping asv; everything measured so far is saved" in stderr
    assert f"stopped by {stop.name}" in stdout and "asv timed out" not in stdout
    (run,) = runs(project).itertuples()
    assert run.state == "interrupted" and run.ok >= 3 and run.ok < run.selected
    assert len(stored(project)) >= 3
    assert not asv_processes(project)
    assert not list((tmp_path / "tmp").iterdir())  # the run's temporary folder is gone


def test_sigkill_keeps_the_saved_chunks_and_the_next_run_starts_clean(tmp_path):
    project = make_project(tmp_path)
    proc = start_run(project, tmp_path / "tmp")
    wait_for_first_chunk(project)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30  # the kernel sends asv SIGTERM when convbench dies
    while asv_processes(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not asv_processes(project)
    again = start_run(project, tmp_path / "tmp2")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stdout + stderr
    by_state = runs(project).set_index("state")
    assert set(by_state.index) == {"running", "complete"}  # the killed run keeps its saved chunks
    assert by_state.loc["running", "ok"] >= 3
    done = by_state.loc["complete"]
    assert done.ok + done.skipped == done.selected and done.failed == 0


def test_concurrent_runs_take_turns_and_both_are_kept(tmp_path):
    project = make_project(tmp_path)
    first, second = start_run(project, tmp_path / "t1"), start_run(project, tmp_path / "t2")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert sum("waiting for another convbench run to finish" in err for _, err in outs) == 1
    r = runs(project)
    assert len(r) == 2 and set(r.state) == {"complete"} and r.run_id.nunique() == 2
    counts = stored(project).groupby("run_id").size()
    assert len(counts) == 2 and counts.nunique() == 1  # every combination of each run kept


def test_a_full_disk_leaves_earlier_runs_intact_and_says_so(tmp_path):
    project = make_project(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the injected write error is tested in test_store")
    try:
        first = start_run(project, tmp_path / "t1", "--results", str(disk))
        assert first.wait(timeout=300) == 0
        before = {p: p.read_bytes() for p in disk.rglob("*.parquet")}
        with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):  # fill it up
            while True:
                f.write(b"x" * 4096)
                f.flush()
        second = start_run(project, tmp_path / "t2", "--results", str(disk))
        stdout, stderr = second.communicate(timeout=300)
        assert second.returncode == 4, stdout + stderr  # could not run: the store is unwritable
        assert "No space left on device; earlier files are intact" in stderr
        assert {p: p.read_bytes() for p in before} == before
        assert not [p for p in disk.rglob("*.tmp")]
        (disk / "filler").unlink()
        from bench_lib.store.query import Store

        assert len(Store(disk / "store").runs()) == 1
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


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


def test_an_unsafe_lock_is_an_unavailable_machine_exit_4_not_a_verdict(tmp_path):
    project = make_project(tmp_path)
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "convbench-run.lock").symlink_to(tmp_path / "victim.txt")
    out = convbench(project, "--grid", "smoke", env={"CONVBENCH_LOCK_DIR": str(locks)})
    assert out.returncode == 4, out.stdout + out.stderr
    assert "the machine lock" in out.stderr and "not started" in out.stderr and not (tmp_path / "victim.txt").exists()
