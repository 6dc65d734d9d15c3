"""Measured rooflines: each device's peak FLOP/s (a large GEMM and a dense 3×3 conv per dtype) and its
bandwidth at each level of the memory hierarchy (copies whose working set fits L1, L2, L3 or only DRAM).

Cache-aware (the idea of Ilic, Pratas and Sousa's cache-aware roofline): a workload whose working set
(``min_bytes``: input, weights and output once) fits a level can stream at that level's bandwidth, so
its memory roof is the bandwidth of the smallest measured level that holds it. Its floor is
``max(flops / peak_flops_per_s, min_bytes / level_bytes_per_s)`` seconds; a measurement achieves
``floor / measured`` of it. ``convbench run`` measures the peaks with every run and stores them with
its rows; ``convbench info`` and ``measure`` cache theirs in ``results/cache/<machine>-roofline.jsonl``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench_lib.files import append_line, read_json_lines
from bench_lib.measure import devices, kinds, machine, metrics
from bench_lib.measure.devices import DTYPES


def bounds_s(flops, min_bytes, compute_flops_per_s, memory_bytes_per_s):
    """(compute seconds, memory seconds): ``flops / compute roof`` and ``min_bytes / memory roof``, the two
    lower bounds of a roofline; the floor is the larger. Floats or arrays."""
    return flops / compute_flops_per_s, min_bytes / memory_bytes_per_s


@dataclass(frozen=True)
class Peaks:
    """Peaks of one device spec: ``gemm_flops_per_s`` and ``conv3x3_flops_per_s`` by dtype (FLOPs = 2 × MACs
    per second), ``copy_bytes_per_s`` (read + write of a large copy)."""

    device: str
    gemm_flops_per_s: dict[str, float]
    copy_bytes_per_s: float
    gemm_size: int
    copy_bytes: int
    torch_version: str
    measured_at: str
    # A dense convolution can beat the GEMM (oneDNN's conv kernels vs MKL's sgemm, or Winograd on some CPUs:
    # docs/costs.md), so the compute roof is the best of both.
    conv3x3_flops_per_s: dict[str, float] = field(default_factory=dict)
    # working-set bytes of each copy (source + destination) → its bandwidth (bytes read + written per
    # second); empty in peaks measured before the roof was cache-aware: then the large copy is the only roof
    copy_levels_bytes_per_s: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:  # JSON keys are strings
        levels = {int(k): float(v) for k, v in self.copy_levels_bytes_per_s.items()}
        object.__setattr__(self, "copy_levels_bytes_per_s", levels)

    def memory_level(self, working_set_bytes: float) -> int:
        """The working-set size of the smallest measured copy that holds ``working_set_bytes`` (the largest
        copy, DRAM, for anything bigger)."""
        levels = sorted(self.copy_levels_bytes_per_s) or [self.copy_bytes]
        return next((size for size in levels if working_set_bytes <= size), levels[-1])

    def memory_bytes_per_s(self, working_set_bytes: float) -> float:
        """The memory roof for a working set of this size: the best bandwidth of the copies whose working
        set is at least as large (data that fits a level can stream at that level's speed or any slower
        one's). Small copies are bound by the per-call cost, not the cache, so the best of the larger
        ones is the honest upper bound; past the last cache the roof falls to DRAM's."""
        if not self.copy_levels_bytes_per_s:
            return self.copy_bytes_per_s
        level = self.memory_level(working_set_bytes)
        return max(bw for size, bw in self.copy_levels_bytes_per_s.items() if size >= level)

    def compute_flops_per_s(self, dtype: str = "float32") -> float:
        """The compute roof: the best of the GEMM and the dense 3×3 conv, in FLOPs (2 × MACs) per second."""
        peaks = [p[dtype] for p in (self.gemm_flops_per_s, self.conv3x3_flops_per_s) if dtype in p]
        if not peaks:
            raise KeyError(
                f"no GEMM peak for dtype={dtype!r} on {self.device}; measured: {', '.join(self.gemm_flops_per_s)}"
            )
        return max(peaks)

    def floor_s(self, flops: float, min_bytes: float, dtype: str = "float32") -> float:
        """The roofline's lower bound on seconds for ``flops`` and ``min_bytes``: the larger of
        :func:`bounds_s`."""
        return max(bounds_s(flops, min_bytes, self.compute_flops_per_s(dtype), self.memory_bytes_per_s(min_bytes)))

    def fraction(self, measured_s: float, flops: float, min_bytes: float, dtype: str = "float32") -> float:
        """Fraction of the roofline a measurement reached (1 = at the roof)."""
        return self.floor_s(flops, min_bytes, dtype) / measured_s

    def ridge_intensity(self, dtype: str = "float32") -> float:
        """FLOPs per byte where the memory roof meets the compute roof."""
        return self.compute_flops_per_s(dtype) / self.copy_bytes_per_s


def _best_s(fn, backend: devices.Backend, max_time_s: float) -> float:
    """The fastest sample's seconds per call: a roof is what the hardware can do, so its best moment
    (a median would put the roof below what a quieter moment of a later measurement reaches)."""
    settings = metrics.Settings(timing={"samples": 7, "max_time_s": max_time_s})
    return metrics.measure(metrics.Call(fn, backend), "latency", settings).result.min_s


def _copy_bytes_per_s(working_set_bytes: int, backend: devices.Backend, max_time_s: float) -> float:
    """Bytes read + written per second by a copy whose source and destination together take the working set."""
    src = torch.empty(working_set_bytes // 8, dtype=torch.float32, device=backend.device).fill_(1.0)
    dst = torch.empty_like(src)
    return working_set_bytes / _best_s(lambda: dst.copy_(src), backend, max_time_s / 4)


def _gemm_flops_per_s(n: int, dtype: str, backend: devices.Backend, max_time_s: float) -> float:
    a = torch.randn(n, n, device=backend.device).to(DTYPES[dtype].torch)
    b = torch.randn(n, n, device=backend.device).to(DTYPES[dtype].torch)
    return 2 * n**3 / _best_s(lambda: torch.mm(a, b), backend, max_time_s)


def _conv_flops_per_s(dtype: str, backend: devices.Backend, max_time_s: float) -> float:
    """The best FLOP/s (2 × MACs per second) of dense convolutions over the shapes and both layouts."""
    best = 0.0
    shapes = kinds.kind(backend.spec.kind).conv_shapes
    for c, hw, batch, k in shapes:
        conv = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).to(backend.device, DTYPES[dtype].torch)
        x = torch.randn(batch, c, hw, hw, device=backend.device).to(DTYPES[dtype].torch)
        for layout in (torch.contiguous_format, torch.channels_last):
            conv, x = conv.to(memory_format=layout), x.contiguous(memory_format=layout)
            seconds = _best_s(lambda conv=conv, x=x: conv(x), backend, max_time_s / len(shapes))
            best = max(best, 2 * batch * c * c * k * k * hw * hw / seconds)
    return best


def measure_peaks(device: str, dtypes: tuple[str, ...] = ("float32",), max_time_s: float = 1.0) -> Peaks:
    """Measure the peaks of ``device`` (a device spec) now: about ``4 × max_time_s`` seconds per dtype
    and ``4 × max_time_s`` for the copies."""
    backend = devices.backend(device)
    ok, reason = backend.available()
    if not ok:
        raise devices_unavailable(device, reason)
    backend.activate()
    kind = kinds.kind(backend.spec.kind)
    n, copy_bytes = kind.gemm_size, kind.copy_bytes
    flops: dict[str, float] = {}
    conv_flops: dict[str, float] = {}
    with torch.inference_mode():
        for dtype in dtypes:
            if not backend.supports(dtype, "inference")[0]:
                continue
            flops[dtype] = _gemm_flops_per_s(n, dtype, backend, max_time_s)
            conv_flops[dtype] = _conv_flops_per_s(dtype, backend, 3 * max_time_s)
        levels = {size: _copy_bytes_per_s(size, backend, max_time_s) for size in kind.copy_levels}
        levels[2 * copy_bytes] = _copy_bytes_per_s(2 * copy_bytes, backend, max_time_s)
    return Peaks(
        device=device,
        gemm_flops_per_s=flops,
        conv3x3_flops_per_s=conv_flops,
        copy_bytes_per_s=levels[2 * copy_bytes],
        copy_levels_bytes_per_s=levels,
        gemm_size=n,
        copy_bytes=copy_bytes,
        torch_version=torch.__version__,
        measured_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def devices_unavailable(device: str, reason: str) -> ValueError:
    return ValueError(f"device={device!r} is not available here: {reason}")


def cache_path(results_dir: str | Path = "results", machine_id: str | None = None) -> Path:
    """Where ``convbench info`` and ``measure`` cache peaks between calls (not results: a run measures its
    own peaks and stores them with its rows)."""
    return Path(results_dir) / "cache" / f"{machine_id or machine.machine_id()}-roofline.jsonl"


def load_cached(
    device: str,
    results_dir: str | Path = "results",
    machine_id: str | None = None,
    torch_version: str | None = None,
) -> Peaks | None:
    """The newest cached peaks of ``device`` on this machine (and torch version, if given), or None."""
    path = cache_path(results_dir, machine_id)
    if not path.exists():
        return None
    found = None
    for record in read_json_lines(path):
        if record.get("device") == device and torch_version in (None, record.get("torch_version")):
            known = {f.name for f in dataclasses.fields(Peaks)}
            found = Peaks(**{k: v for k, v in record.items() if k in known})
    return found


def save(peaks: Peaks, results_dir: str | Path = "results", machine_id: str | None = None) -> Path:
    """Append ``peaks`` to the machine's cache (one line, written with a single append)."""
    path = cache_path(results_dir, machine_id)
    append_line(path, json.dumps(asdict(peaks), sort_keys=True))
    return path


def peaks_for(
    device: str,
    results_dir: str | Path = "results",
    refresh: bool = False,
    dtypes: tuple[str, ...] = ("float32",),
) -> Peaks:
    """Cached peaks for ``device`` on this machine and torch, measured and cached if missing or stale."""
    cached = None if refresh else load_cached(device, results_dir, torch_version=torch.__version__)
    if cached is not None and cached.copy_levels_bytes_per_s and all(d in cached.conv3x3_flops_per_s for d in dtypes):
        return cached
    peaks = measure_peaks(device, dtypes)
    save(peaks, results_dir)
    return peaks


def summary(peaks: Peaks) -> dict[str, Any]:
    return {
        **asdict(peaks),
        "ridge_intensity_flops_per_byte": {d: peaks.ridge_intensity(d) for d in peaks.gemm_flops_per_s},
    }
