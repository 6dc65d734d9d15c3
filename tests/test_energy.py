import types

import pytest

from bench_lib.measure import energy, nvml


def write_zone(root, name, index, energy_uj, max_uj=1_000_000):
    zone = root / f"intel-rapl:{index}"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_counter_delta_handles_wrap_around():
    assert energy.counter_delta(100, 250, 1000) == 150
    assert energy.counter_delta(900, 50, 1000) == 150
    with pytest.raises(ValueError, match="counter went backwards"):
        energy.counter_delta(10, 5, None)


def test_rapl_sums_package_zones_across_a_wrap(tmp_path):
    p0 = write_zone(tmp_path, "package-0", 0, 900_000)
    p1 = write_zone(tmp_path, "package-1", 1, 10_000)
    (p0 / "intel-rapl:0:0").mkdir()  # a core subzone is inside the package: not counted twice
    write_zone(tmp_path, "dram", 2, 0)
    meter = energy.RaplMeter(tmp_path, poll_s=60)
    assert meter.available() == (True, "")
    assert [z.name for z in meter.zones()] == ["intel-rapl:0", "intel-rapl:1"]
    meter.begin_window()
    (p0 / "energy_uj").write_text("200000\n")  # wrapped at 1,000,000: +300,000 uJ
    (p1 / "energy_uj").write_text("510000\n")  # +500,000 uJ
    window = meter.end_window()
    assert window.energy_j == pytest.approx(0.8)


def test_rapl_reports_why_it_is_unavailable(tmp_path):
    assert energy.RaplMeter(tmp_path / "absent").available() == (
        False,
        f"no powercap interface ({tmp_path / 'absent'} is absent: not Linux, or RAPL not exposed)",
    )
    assert energy.RaplMeter(tmp_path).available() == (False, f"no RAPL package zone under {tmp_path}")


def test_rapl_permission_error_is_reported(tmp_path, monkeypatch):
    write_zone(tmp_path, "package-0", 0, 1)
    real_read_text = type(tmp_path).read_text

    def deny(path, *a, **k):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real_read_text(path, *a, **k)

    monkeypatch.setattr(type(tmp_path), "read_text", deny)
    ok, reason = energy.RaplMeter(tmp_path).available()
    assert not ok and "permission denied reading" in reason and "root-only since Linux 5.10" in reason


class FakeNvml(types.SimpleNamespace):
    """The slice of pynvml convbench uses, with a scripted energy counter and power readings."""

    class NVMLError(Exception):
        pass

    class NVMLError_FunctionNotFound(NVMLError):
        pass

    NVML_CLOCK_SM = 1

    def __init__(self, energy_mj=None, power_mw=None):
        super().__init__()
        self.energy_mj = list(energy_mj or [])
        self.power_mw = power_mw

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle{i}"

    def nvmlDeviceGetUUID(self, h):
        return b"GPU-fake"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy_mj:
            raise self.NVMLError("Not Supported")
        return self.energy_mj.pop(0) if len(self.energy_mj) > 1 else self.energy_mj[0]

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw


@pytest.fixture
def fake_nvml():
    def install(**kw):
        fake = FakeNvml(**kw)
        nvml.use_module(fake)
        return fake

    yield install
    nvml.reset()


def test_nvml_energy_counter_window(fake_nvml):
    fake_nvml(energy_mj=[1_000, 1_000, 3_500])  # probe, begin, end
    meter = energy.NvmlMeter(0)
    assert meter.available() == (True, "") and meter.method == "energy_counter"
    meter.begin_window()
    assert meter.end_window().energy_j == pytest.approx(2.5)


def test_nvml_falls_back_to_integrating_power_before_volta(fake_nvml):
    fake_nvml(energy_mj=[], power_mw=150_000)
    meter = energy.NvmlMeter(0, power_poll_s=0.01)
    assert meter.available() == (True, "") and meter.method == "power_samples"
    meter.begin_window()
    for _ in range(200_000):
        pass
    window = meter.end_window()
    assert window.power_w == pytest.approx(150.0)


def test_nvml_absent_gives_the_reason():
    nvml.use_module(None, "NVML did not initialise: NVMLError_LibraryNotFound")
    try:
        assert energy.NvmlMeter(0).available() == (
            False,
            "NVML did not initialise: NVMLError_LibraryNotFound",
        )
    finally:
        nvml.reset()


def test_integrate_power_is_trapezoidal_and_holds_the_ends():
    samples = [(1.0, 100.0), (2.0, 200.0)]
    # [0,1] at 100 W, [1,2] trapezoid 150 W, [2,3] at 200 W
    assert energy.integrate_power(samples, 0.0, 3.0) == pytest.approx(100 + 150 + 200)
    assert energy.integrate_power([], 0.0, 1.0) == 0.0


def test_energy_per_call_with_a_scripted_meter():
    class Scripted(energy.Meter):
        name, update_period_s = "scripted", 0.001
        windows = iter([energy.EnergyWindow(5.0, 0.5), energy.EnergyWindow(40.0, 1.0)])  # idle, busy

        def available(self):
            return True, ""

        def begin_window(self):
            pass

        def end_window(self):
            return next(self.windows)

    calls = []
    e = energy.energy_per_call(lambda: calls.append(1), lambda: None, Scripted(), seconds_per_call=0.01, idle_s=0.0)
    assert e.calls == len(calls) == 100  # 1 s window / 10 ms per call
    assert e.energy_j_per_call == pytest.approx(0.4)
    assert e.idle_power_w == pytest.approx(10.0)
    assert e.energy_above_idle_j_per_call == pytest.approx((40.0 - 10.0 * 1.0) / 100)
    assert e.average_power_w == pytest.approx(40.0)


def test_meter_for_each_device_kind():
    assert isinstance(energy.meter_for("cpu"), energy.RaplMeter)
    assert isinstance(energy.meter_for("cuda", 1), energy.NvmlMeter)
    ok, reason = energy.meter_for("mps").available()
    assert not ok and "MPS" in reason
