import os
import subprocess
import sys

import pytest
import torch

from bench_lib.measure import devices


def test_cpu_specs_parse_to_thread_counts():
    assert devices.parse_spec("cpu-1t").threads == 1
    assert devices.parse_spec("cpu").threads == devices.physical_cores()
    assert devices.parse_spec("cuda").index == 0 and devices.parse_spec("cuda:3").index == 3
    assert devices.parse_spec("mps").kind == "mps"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "gpu",
            "device='gpu' is not a device spec; accepted: cpu, cpu-Nt (N intra-op threads, N >= 1), cuda, "
            "cuda:K or mps",
        ),
        ("cpu-0t", "device='cpu-0t': the thread count must be at least 1"),
        ("cpu-4096t", "device='cpu-4096t': 4096 threads is more than this machine's"),
        ("cuda:x", "device='cuda:x' is not a device spec"),
    ],
)
def test_bad_specs_name_the_value_and_the_accepted_forms(spec, message):
    with pytest.raises(ValueError) as e:
        devices.parse_spec(spec)
    assert message in str(e.value)


def test_cpu_backend_sets_and_verifies_threads():
    before = torch.get_num_threads()
    try:
        b = devices.backend("cpu-1t")
        assert b.available() == (True, "")
        b.activate()
        assert b.threads_in_force() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given on a machine without CUDA")
def test_absent_cuda_is_unavailable_with_a_reason():
    ok, reason = devices.backend("cuda:7").available()
    assert not ok
    assert "without CUDA" in reason or "does not exist" in reason or "no CUDA device" in reason


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the reason given on a machine without MPS")
def test_absent_mps_is_unavailable_with_a_reason():
    ok, reason = devices.backend("mps").available()
    assert not ok and "MPS" in reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_cuda_backend_times_with_events():
    b = devices.backend("cuda")
    b.activate()
    x = torch.randn(1024, 1024, device="cuda")
    timer = b.block_timer()
    timer.start()
    for _ in range(10):
        x @ x
    assert timer.stop() > 0


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs Apple MPS; this machine has none")
def test_mps_backend_synchronises():
    b = devices.backend("mps")
    timer = b.block_timer()
    timer.start()
    torch.ones(1000, device="mps").sum()
    assert timer.stop() > 0


def test_importing_bench_lib_and_the_suite_never_touches_cuda_or_mps():
    # In a fresh interpreter, make every CUDA/MPS entry point raise, then import everything asv imports.
    code = """
import sys, torch
def boom(*a, **k):
    raise SystemExit("device touched at import: " + repr(a))
for name in ("is_available", "device_count", "init", "_lazy_init", "synchronize", "set_device",
             "get_device_properties", "get_device_name", "current_device"):
    setattr(torch.cuda, name, boom)
torch.backends.mps.is_available = boom
torch.mps.synchronize = boom
import bench_lib, bench_lib.catalogue.registry, bench_lib.catalogue.theory, bench_lib.catalogue.cases
import bench_lib.measure.devices, bench_lib.measure.harness, bench_lib.measure.memory, bench_lib.measure.energy
import bench_lib.measure.machine, bench_lib.measure.roofline, bench_lib.measure.nvml, bench_lib.measure.allocator
import bench_lib.suite.grids, bench_lib.suite.worker, bench_lib.cli
sys.path.insert(0, ".")
import importlib, pkgutil, benchmarks
for m in pkgutil.iter_modules(benchmarks.__path__):
    importlib.import_module("benchmarks." + m.name)
bench_lib.measure.devices.parse_spec("cuda:0")
bench_lib.measure.devices.backend("cuda:0")
print("ok", torch.cuda.is_initialized())
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip().endswith("ok False")


@pytest.mark.parametrize(
    ("physical", "visible", "expected"),
    [
        (4, None, 4),
        (4, "", 0),
        (4, "1,3", 2),
        (4, "0,7,1", 1),
        (4, "-1", 0),
        (2, "GPU-abc,GPU-def,GPU-123", 2),
        (0, "0", 0),
    ],
)
def test_cuda_visible_devices_narrows_the_gpus_a_run_plans_for(physical, visible, expected):
    assert devices.cuda_visible_count(physical, visible) == expected


def test_every_device_kind_a_spec_can_name_has_its_facts_in_one_table():
    from bench_lib.measure import energy, kinds
    from bench_lib.suite import grids

    assert set(kinds.KINDS) == {devices.parse_spec(s).kind for s in ("cpu", "cpu-1t", "cuda", "cuda:1", "mps")}
    default = grids.grid("default", ["cpu-1t", "cuda:0", "mps"])
    for name, kind in kinds.KINDS.items():
        assert kind.throughput_batch in default.batches
        assert kind.energy_meter in ("nvml", "rapl", None) and (kind.energy_meter or kind.no_meter_reason)
        assert isinstance(energy.meter_for(name), energy.Meter)
    with pytest.raises(ValueError, match="device kind 'tpu' is unknown; accepted: cpu, cuda, mps"):
        kinds.kind("tpu")


def test_each_kind_has_one_backend_and_every_spec_form_comes_from_the_kinds_table():
    from bench_lib.measure import kinds

    assert set(devices.BACKENDS) == set(kinds.KINDS)
    assert all(cls.kind == name for name, cls in devices.BACKENDS.items())
    assert kinds.spec_help() == "cpu, cpu-Nt (N intra-op threads, N >= 1), cuda, cuda:K or mps"
    with pytest.raises(ValueError, match=r"device kind 'tpu' has no entry in measure/kinds\.py"):
        devices.backend_of("tpu")(type("TpuBackend", (devices.Backend,), {}))
    # every kind that has no candidate here is still listed, with the reason it is absent
    listed = [s for s, _, _ in devices.visible_specs()]
    assert {devices.parse_spec(s).kind for s in listed} == set(kinds.KINDS)
    assert devices.parse_spec("cuda:2").torch_device == torch.device("cuda", 2)
    assert devices.parse_spec("cpu-1t").torch_device == torch.device("cpu")
