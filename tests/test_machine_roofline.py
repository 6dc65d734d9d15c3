from pathlib import Path

import pytest
from fake_results import peaks

from bench_lib.measure import machine, roofline


def test_fingerprint_has_the_fields_results_need():
    fp = machine.fingerprint()
    for key in (
        "machine_id",
        "hostname",
        "os",
        "cpu_model",
        "physical_cores",
        "logical_cores",
        "ram_bytes",
        "gpus",
        "cuda_version",
        "torch_version",
        "torch_git",
        "mkldnn",
        "mkl",
    ):
        assert key in fp
    assert fp["logical_cores"] >= fp["physical_cores"] >= 1
    info = machine.asv_machine_info(fp)
    assert set(info) == {"machine", "os", "arch", "cpu", "num_cpu", "ram", "gpu", "driver", "torch"}
    assert all(isinstance(v, str) for v in info.values())


def test_machine_id_is_a_slug_and_can_be_overridden(monkeypatch):
    monkeypatch.setenv("CONVBENCH_MACHINE", "Lab Box #3.local")
    assert machine.machine_id() == "lab-box-3-local"


def test_roofline_floor_and_fraction():
    p = peaks()
    assert p.ridge_intensity() == 10.0
    assert p.floor_s(flops=1e9, min_bytes=1e6) == pytest.approx(0.01)  # compute-bound
    assert p.floor_s(flops=1e6, min_bytes=1e8) == pytest.approx(0.01)  # memory-bound
    assert p.fraction(0.04, flops=1e9, min_bytes=1e6) == pytest.approx(0.25)
    with pytest.raises(KeyError, match="no GEMM peak for dtype='bfloat16' on cpu-1t"):
        p.floor_s(1, 1, "bfloat16")


def test_compute_roof_is_the_best_dense_kernel():
    p = peaks(conv3x3_flops_per_s={"float32": 250e9})
    assert p.compute_flops_per_s() == 250e9 and p.ridge_intensity() == 25.0
    assert p.floor_s(flops=1e9, min_bytes=1e6) == pytest.approx(1e9 / 250e9)
    assert peaks().compute_flops_per_s() == 100e9  # records cached before the conv peak existed


def test_peaks_cache_round_trip_keeps_history(tmp_path):
    roofline.save(peaks(copy_bytes_per_s=1e9), tmp_path, "box")
    roofline.save(peaks(copy_bytes_per_s=2e9), tmp_path, "box")
    roofline.save(peaks(device="cuda:0"), tmp_path, "box")
    path = roofline.cache_path(tmp_path, "box")
    assert path.name == "box-roofline.jsonl" and len(path.read_text().splitlines()) == 3
    assert roofline.load_cached("cpu-1t", tmp_path, "box").copy_bytes_per_s == 2e9
    assert roofline.load_cached("cpu-1t", tmp_path, "box", torch_version="9.9") is None
    assert roofline.load_cached("mps", tmp_path, "box") is None


def test_measured_cpu_peaks_are_positive(tmp_path):
    p = roofline.measure_peaks("cpu-1t", max_time_s=0.2)
    assert p.gemm_flops_per_s["float32"] > 1e8 and p.copy_bytes_per_s > 1e8
    assert p.conv3x3_flops_per_s["float32"] > 1e8


def test_the_memory_roof_is_the_level_that_holds_the_working_set():
    levels = {2**14: 20e9, 2**15: 200e9, 2**20: 100e9, 2**24: 50e9, 2**29: 10e9}
    p = peaks(copy_levels_bytes_per_s={str(k): v for k, v in levels.items()})  # as JSON gives them back
    # the 16 KiB copy is bound by its per-call cost: a larger level's bandwidth is the honest roof
    assert p.memory_level(1000) == 2**14 and p.memory_bytes_per_s(1000) == 200e9
    assert p.memory_level(2**15 + 1) == 2**20 and p.memory_bytes_per_s(3 * 2**20) == 50e9
    assert p.memory_level(2**31) == 2**29 and p.memory_bytes_per_s(2**31) == 10e9  # beyond every copy: DRAM
    # a cache-resident, memory-bound case: 1 MiB at L2's 100 GB/s, not DRAM's 10 GB/s
    assert p.floor_s(flops=0, min_bytes=2**20) == pytest.approx(2**20 / 100e9)
    assert peaks().memory_bytes_per_s(1000) == 10e9  # peaks cached before the levels: the large copy


def test_peaks_written_by_a_newer_convbench_still_load(tmp_path):
    path = roofline.cache_path(tmp_path, "box")
    path.parent.mkdir(parents=True)
    record = {**roofline.dataclasses.asdict(peaks()), "a_field_from_the_future": 1}
    path.write_text(roofline.json.dumps(record) + "\n")
    assert roofline.load_cached("cpu-1t", tmp_path, "box").copy_bytes_per_s == 10e9


def test_no_committed_latency_is_above_its_roofline():
    # the roofline is an upper bound: a fraction above 1 would say the model, not the machine, is wrong
    import warnings

    from bench_lib.analysis import results

    root = Path(__file__).resolve().parents[1] / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(root)
    if df["roofline_fraction"].notna().sum() == 0:
        pytest.skip("no committed run measured its peaks")
    fractions = df["roofline_fraction"].dropna()
    assert len(fractions) > 100
    worst = df.loc[fractions.idxmax(), ["case", "device", "layout", "batch", "roofline_fraction"]].to_dict()
    assert fractions.max() <= 1.0, worst


def test_host_settings_read_the_chosen_thp_mode_and_the_environment(tmp_path, monkeypatch):
    from bench_lib.measure import allocator

    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    monkeypatch.setattr(allocator, "THP_MODE_FILE", str(mode))
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    got = machine.host_settings()
    assert (got["transparent_hugepage"], got["thp_mem_alloc_enable"], got["ld_preload"]) == ("madvise", "1", None)
    monkeypatch.setattr(allocator, "THP_MODE_FILE", str(tmp_path / "absent"))  # not Linux
    assert machine.host_settings()["transparent_hugepage"] is None
    assert set(machine.state()) >= {"transparent_hugepage", "thp_mem_alloc_enable", "ld_preload", "cpu_affinity"}
