"""Locking GPU clocks through a scripted NVML: the calls made, the refusals recorded, the reset."""

from __future__ import annotations

import types

import pytest

from bench_lib.measure import gpu_clocks, nvml
from bench_lib.suite import runner

TDP = 0xFFFFFF01  # NVML_CLOCK_LIMIT_ID_TDP


class FakeNvml(types.SimpleNamespace):
    """The slice of pynvml clock locking uses: four GPUs, a scripted refusal, every call logged."""

    class NVMLError(Exception):
        pass

    class NVMLError_NoPermission(NVMLError):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    NVML_CLOCK_SM = 1
    NVML_CLOCK_LIMIT_ID_TDP = TDP

    def __init__(self, refuse=None):
        super().__init__()
        self.refuse = refuse
        self.calls: list[tuple] = []

    def nvmlDeviceGetCount(self):
        return 4

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}aaa-{h}bbb".encode()

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return 1980

    def nvmlDeviceGetClockInfo(self, h, kind):
        return 1755

    def nvmlDeviceSetGpuLockedClocks(self, h, low, high):
        if self.refuse:
            raise self.refuse("Insufficient Permissions")
        self.calls.append(("lock", h, low, high))

    def nvmlDeviceResetGpuLockedClocks(self, h):
        self.calls.append(("reset", h))


@pytest.fixture
def fake():
    def install(**kw):
        nv = FakeNvml(**kw)
        nvml.use_module(nv)
        return nv

    yield install
    nvml.reset()


@pytest.mark.parametrize(("text", "value"), [("none", "none"), ("base", "base"), ("max", "max"), ("1410", 1410)])
def test_targets_parse(text, value):
    assert gpu_clocks.parse_target(text) == value


@pytest.mark.parametrize("text", ["fast", "0", "-5", "10001", "1.5e3", ""])
def test_bad_targets_name_the_accepted_ones(text):
    with pytest.raises(ValueError, match=r"accepted: none, base, max or a clock in MHz from 1 to 10000"):
        gpu_clocks.parse_target(text)


def test_base_locks_both_bounds_at_the_tdp_clock_and_records_the_clock_read_back(fake):
    nv = fake()
    one = gpu_clocks.lock("base", 2)
    assert nv.calls == [("lock", 2, TDP, TDP)]
    assert one == gpu_clocks.ClockLock(2, "base", True, locked_mhz=1755)


def test_max_and_mhz_lock_at_that_clock(fake):
    nv = fake()
    assert gpu_clocks.lock("max", 0).locked_mhz == 1980
    assert gpu_clocks.lock(1410, 1).locked_mhz == 1410
    assert nv.calls == [("lock", 0, 1980, 1980), ("lock", 1, 1410, 1410)]


@pytest.mark.parametrize(
    ("error", "words"),
    [("NVMLError_NoPermission", "locking clocks needs root"), ("NVMLError_NotSupported", "cannot lock clocks")],
)
def test_a_refusal_is_recorded_with_its_reason_and_never_reset(fake, error, words):
    nv = fake(refuse=getattr(FakeNvml, error))
    with gpu_clocks.locked("base", [0, 1]) as locks:
        assert [one.locked for one in locks] == [False, False]
        assert all(words in one.reason and "Insufficient Permissions" in one.reason for one in locks)
    assert nv.calls == []


def test_the_window_resets_what_it_locked_even_when_the_body_fails(fake):
    nv = fake()
    with pytest.raises(KeyboardInterrupt), gpu_clocks.locked("max", [0, 3]):
        raise KeyboardInterrupt
    assert nv.calls[-2:] == [("reset", 0), ("reset", 3)]


def test_none_locks_nothing(fake):
    nv = fake()
    with gpu_clocks.locked("none", [0]) as locks:
        assert locks == []
    assert nv.calls == []


def test_without_nvml_the_lock_is_refused_with_nvmls_reason():
    nvml.use_module(None, "nvidia-ml-py is not installed")
    try:
        one = gpu_clocks.lock("base", 0)
        assert not one.locked and one.reason == "nvidia-ml-py is not installed"
        assert gpu_clocks.nvml_indices([0], None) == ([], ["nvidia-ml-py is not installed"])
    finally:
        nvml.reset()


@pytest.mark.parametrize(
    ("cuda", "visible", "indices", "problems"),
    [
        ([0, 1], None, [0, 1], []),
        ([1], "2,0", [0], []),
        ([0], "GPU-3aaa", [3], []),
        ([0], "GPU-", [], ["cuda:0: CUDA_VISIBLE_DEVICES entry 'GPU-' names 4 GPUs"]),
        ([0], "MIG-1234", [], ["cuda:0: CUDA_VISIBLE_DEVICES entry 'MIG-1234' is a MIG slice, not a whole GPU"]),
        ([1], "0,7,2", [], ["cuda:1: CUDA_VISIBLE_DEVICES='0,7,2' shows no such device"]),  # 7: past the 4 GPUs
    ],
)
def test_cuda_devices_map_to_nvml_gpus_through_cuda_visible_devices(fake, cuda, visible, indices, problems):
    fake()
    assert gpu_clocks.nvml_indices(cuda, visible) == (indices, problems)


def test_the_run_records_the_lock_in_its_machine_state_and_resets_after(fake, monkeypatch, capsys):
    nv = fake()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ctx = types.SimpleNamespace(machine_state={})
    opts = runner.RunOptions(lock_gpu_clocks="1500")
    with runner._gpu_clocks_locked(opts, ["cpu-1t", "cuda:1"], ctx):
        assert nv.calls == [("lock", 1, 1500, 1500)]
    assert nv.calls[-1] == ("reset", 1)
    assert capsys.readouterr().err == "convbench run: --lock-gpu-clocks 1500: GPU 1: SM clock locked (1500, 1500 MHz)\n"
    state = ctx.machine_state["gpu_clocks"]
    assert state["target"] == "1500" and state["problems"] == []
    assert state["gpus"] == [{"nvml_index": 1, "target": "1500", "locked": True, "locked_mhz": 1500, "reason": None}]


def test_a_cpu_run_locks_nothing_whatever_the_option(fake):
    nv = fake()
    ctx = types.SimpleNamespace(machine_state={})
    with runner._gpu_clocks_locked(runner.RunOptions(lock_gpu_clocks="base"), ["cpu-1t", "cpu-2t"], ctx):
        pass
    assert nv.calls == [] and ctx.machine_state["gpu_clocks"]["target"] == "none"
