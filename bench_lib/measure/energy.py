"""Energy meters: NVML on NVIDIA GPUs, RAPL on Linux CPUs, none elsewhere. One interface.

A meter measures a *window*: ``begin_window()`` then ``end_window()`` returns an :class:`EnergyWindow`
(joules and seconds). :func:`energy_per_call` runs a workload for a window long enough for the
meter's counter, measures idle power just before, and returns joules per call.

- NVML: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta and newer); on older
  GPUs a thread samples ``nvmlDeviceGetPowerUsage`` (mW) and integrates.
- RAPL: ``/sys/class/powercap/intel-rapl:N`` package zones (Intel, and AMD Zen through the same
  driver), ``energy_uj`` read by a thread that handles the counter's wrap-around; the whole socket,
  not just this process. Reading it needs root since Linux 5.10: a permission error is reported.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_lib.measure import kinds, nvml

RAPL_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class EnergyWindow:
    """Energy over one window: ``energy_j`` joules in ``duration_s`` seconds."""

    energy_j: float
    duration_s: float

    @property
    def power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else math.nan


class Meter:
    """An energy meter. ``available()`` → (bool, reason); ``update_period_s``: how often the counter moves."""

    name = "none"
    update_period_s = 0.1

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def begin_window(self) -> None:
        raise NotImplementedError

    def end_window(self) -> EnergyWindow:
        raise NotImplementedError


class NoMeter(Meter):
    def __init__(self, reason: str):
        self.reason = reason

    def available(self) -> tuple[bool, str]:
        return False, self.reason


class _PollingCounter:
    """Reads a cumulative counter every ``interval_s`` on a thread and accumulates the deltas.

    ``read()`` returns the counter; ``wrap`` is the value at which it wraps to 0 (None: it does not).
    Reading often enough to see at most one wrap between reads makes long windows correct.
    """

    def __init__(self, read: Callable[[], float], wrap: float | None, interval_s: float):
        self.read, self.wrap, self.interval_s = read, wrap, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = 0.0
        self.total = 0.0
        self._lock = threading.Lock()

    def _advance(self) -> None:
        value = self.read()
        with self._lock:
            self.total += counter_delta(self._last, value, self.wrap)
            self._last = value

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._advance()

    def start(self) -> None:
        self.total = 0.0
        self._last = self.read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._advance()
        return self.total


def counter_delta(before: float, after: float, wrap: float | None) -> float:
    """Increase of a cumulative counter that wraps to 0 at ``wrap`` (at most one wrap in between)."""
    if after >= before:
        return after - before
    if wrap is None:
        raise ValueError(f"counter went backwards ({before} → {after}) and has no wrap value")
    return after + wrap - before


class RaplMeter(Meter):
    """Sum of the package zones' ``energy_uj`` under ``root`` (``/sys/class/powercap``)."""

    name = "rapl"
    update_period_s = 0.001  # RAPL updates about every millisecond

    def __init__(self, root: Path | str = RAPL_ROOT, poll_s: float = 0.5):
        self.root = Path(root)
        self.poll_s = poll_s
        self._counters: list[_PollingCounter] = []
        self._t0 = 0.0

    def zones(self) -> list[Path]:
        """Package-level zones (``package-N``); ``core``/``uncore`` are inside them, ``dram`` is not counted."""
        found = []
        for zone in sorted(self.root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:
                continue
            try:
                if (zone / "name").read_text().strip().startswith("package"):
                    found.append(zone)
            except OSError:
                continue
        return found

    def available(self) -> tuple[bool, str]:
        if not self.root.exists():
            return False, f"no powercap interface ({self.root} is absent: not Linux, or RAPL not exposed)"
        zones = self.zones()
        if not zones:
            return False, f"no RAPL package zone under {self.root}"
        try:
            for zone in zones:
                int((zone / "energy_uj").read_text())
        except PermissionError:
            return False, (
                f"permission denied reading {zones[0] / 'energy_uj'} (root-only since Linux 5.10; "
                "run as root or grant read access)"
            )
        except (OSError, ValueError) as e:
            return False, f"cannot read RAPL energy: {e}"
        return True, ""

    def begin_window(self) -> None:
        self._counters = []
        for zone in self.zones():
            wrap = float(int((zone / "max_energy_range_uj").read_text()))
            self._counters.append(
                _PollingCounter(lambda z=zone: float(int((z / "energy_uj").read_text())), wrap, self.poll_s)
            )
        for c in self._counters:
            c.start()
        self._t0 = time.perf_counter()

    def end_window(self) -> EnergyWindow:
        microjoules = sum(c.stop() for c in self._counters)
        return EnergyWindow(microjoules / 1e6, time.perf_counter() - self._t0)


class NvmlMeter(Meter):
    """One GPU through NVML: the total-energy counter on Volta and newer, else integrated power samples."""

    name = "nvml"

    def __init__(self, cuda_index: int = 0, power_poll_s: float = 0.02):
        self.cuda_index = cuda_index
        self.power_poll_s = power_poll_s
        self._handle: Any = None
        self._method: str | None = None
        self._t0 = 0.0
        self._e0 = 0
        self._power: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def update_period_s(self) -> float:  # the energy counter moves about every 100 ms
        return 0.1 if self._method == "energy_counter" else self.power_poll_s

    def _resolve(self) -> tuple[bool, str]:
        nv = nvml.module()
        if nv is None:
            return False, nvml.unavailable_reason() or "NVML unavailable"
        self._handle = nvml.handle_for_cuda_device(self.cuda_index)
        if self._handle is None:
            return False, f"NVML has no device for cuda:{self.cuda_index}"
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._method = "energy_counter"
        except nv.NVMLError:  # NotSupported before Volta
            try:
                nv.nvmlDeviceGetPowerUsage(self._handle)
                self._method = "power_samples"
            except nv.NVMLError as e:
                return False, f"this GPU reports neither energy nor power through NVML ({e})"
        return True, ""

    def available(self) -> tuple[bool, str]:
        if self._method is not None:
            return True, ""
        return self._resolve()

    @property
    def method(self) -> str | None:
        return self._method

    def _sample_power(self) -> None:
        nv = nvml.module()
        while not self._stop.is_set():
            self._power.append((time.perf_counter(), nv.nvmlDeviceGetPowerUsage(self._handle) / 1e3))
            self._stop.wait(self.power_poll_s)

    def begin_window(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise RuntimeError(reason)
        nv = nvml.module()
        self._t0 = time.perf_counter()
        if self._method == "energy_counter":
            self._e0 = nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        else:
            self._power = []
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample_power, daemon=True)
            self._thread.start()

    def end_window(self) -> EnergyWindow:
        nv = nvml.module()
        if self._method == "energy_counter":
            millijoules = nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._e0
            return EnergyWindow(millijoules / 1e3, time.perf_counter() - self._t0)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        t1 = time.perf_counter()
        return EnergyWindow(integrate_power(self._power, self._t0, t1), t1 - self._t0)


def integrate_power(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Joules from (time s, power W) samples over [t0, t1], trapezoids, held flat to the window's ends."""
    if not samples:
        return 0.0
    points = [(t0, samples[0][1]), *samples, (t1, samples[-1][1])]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(points))


def meter_for(device_kind: str, cuda_index: int = 0) -> Meter:
    """The meter of a device kind (:mod:`bench_lib.measure.kinds`): NVML, RAPL, or none with the reason."""
    found = kinds.kind(device_kind)
    if found.energy_meter == "nvml":
        return NvmlMeter(cuda_index)
    if found.energy_meter == "rapl":
        return RaplMeter()
    return NoMeter(found.no_meter_reason)


def meter_of(spec) -> Meter:
    """The meter of a parsed device spec (:class:`bench_lib.measure.devices.DeviceSpec`)."""
    return meter_for(spec.kind, spec.index or 0)


@dataclass(frozen=True)
class EnergyMeasurement:
    """Energy of one call. ``*_j_per_call`` in joules; power in watts; ``window_s`` the busy window."""

    meter: str
    energy_j_per_call: float
    energy_above_idle_j_per_call: float
    average_power_w: float
    idle_power_w: float
    window_s: float
    calls: int

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def energy_per_call(
    fn: Callable[[], Any],
    synchronize: Callable[[], None],
    meter: Meter,
    *,
    seconds_per_call: float,
    min_window_s: float = 1.0,
    min_updates: int = 20,
    idle_s: float = 0.5,
) -> EnergyMeasurement:
    """Run ``fn`` for a window of at least ``min_window_s`` and ``min_updates`` counter updates.

    Idle power is measured over ``idle_s`` just before (the device synchronised, nothing queued).
    ``seconds_per_call`` (from a timing run) sizes the window. Raises RuntimeError if the meter is
    unavailable (check ``meter.available()`` first to get the reason).
    """
    ok, reason = meter.available()
    if not ok:
        raise RuntimeError(reason)
    window = max(min_window_s, min_updates * meter.update_period_s)
    calls = max(1, math.ceil(window / max(seconds_per_call, 1e-9)))

    synchronize()
    meter.begin_window()
    idle_until = time.perf_counter() + idle_s
    while time.perf_counter() < idle_until:  # idle: nothing queued on the device
        time.sleep(min(0.05, idle_s))
    idle = meter.end_window()

    meter.begin_window()
    for _ in range(calls):
        fn()
    synchronize()
    busy = meter.end_window()
    idle_power = idle.power_w
    return EnergyMeasurement(
        meter=meter.name,
        energy_j_per_call=busy.energy_j / calls,
        energy_above_idle_j_per_call=(busy.energy_j - idle_power * busy.duration_s) / calls,
        average_power_w=busy.power_w,
        idle_power_w=idle_power,
        window_s=busy.duration_s,
        calls=calls,
    )
