"""Device specs and backends: where a workload runs and how to time and probe it there.

A device spec is a string: ``cpu`` (all physical cores), ``cpu-1t`` … ``cpu-Nt`` (N intra-op threads),
``cuda`` / ``cuda:K``, ``mps``. :func:`backend` turns one into a :class:`Backend`.

Nothing here initialises CUDA or MPS at import time or while parsing a spec: asv forks its workers,
and a parent that initialised CUDA poisons every child. Availability is decided in
:meth:`Backend.available`, which runs in the child (asv's ``setup``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from bench_lib.catalogue.dtypes import DTYPES
from bench_lib.measure.kinds import KINDS, spec_help
from bench_lib.measure.timing import BlockTimer

LAYOUTS = ("nchw", "channels_last")
MODES = ("inference", "training")


@functools.cache
def physical_cores() -> int:
    """Physical cores of this machine (logical ones where psutil cannot tell); read once (psutil walks sysfs,
    and the grids ask for every combination)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def check_choice(field: str, value: str, accepted: tuple[str, ...] | list[str]) -> str:
    if value not in accepted:
        raise ValueError(f"{field}={value!r} is not valid; accepted: {', '.join(accepted)}")
    return value


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device spec. ``threads`` is the intra-op thread count on CPU (None elsewhere)."""

    text: str
    kind: str
    index: int | None = None
    threads: int | None = None

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.kind) if self.index is None else torch.device(self.kind, self.index)


def pinned_cpus(threads: int | None, allowed: set[int]) -> set[int] | None:
    """The CPUs the processes of an A/B pair share while they sample (``threads``: the device's intra-op
    threads, None off the CPU; ``allowed``: the CPUs this process may use): the last ``threads`` of
    ``allowed``, or None (no pinning) off the CPU or where the device takes every allowed CPU.

    Unpinned, a one-thread process moves between CPUs, and the two samples of a round may run on two
    CPUs and caches: pinned on the AMD EPYC VM, a process's samples spread 2.2 % instead of 4.7-5.3 %, and
    the pairs' log ratios 0.69 % instead of 1.28-1.64 % (docs/ab.md, "Why one CPU for every side")."""
    if threads is None or threads >= len(allowed):
        return None
    return set(sorted(allowed)[-threads:])


@functools.cache
def _spec_pattern() -> re.Pattern[str]:
    """A device spec: one kind's pattern (:data:`bench_lib.measure.kinds.KINDS`), in a group named for the kind."""
    return re.compile("^(?:" + "|".join(f"(?P<{k.name}>{k.spec_pattern})" for k in KINDS.values()) + ")$")


def parse_spec(text: str) -> DeviceSpec:
    """Parse a device spec without touching any device. ValueError names the value and the accepted forms."""
    m = _spec_pattern().match(text.strip())
    if not m:
        raise ValueError(f"device={text!r} is not a device spec; accepted: {spec_help()}")
    kind = next(k for k in KINDS if m.group(k))
    return BACKENDS[kind].spec_of(text, m)


class CudaEventTimer(BlockTimer):
    """CUDA events around the block on the current stream; the device is drained before the start event."""

    def __init__(self, device: torch.device):
        super().__init__(lambda: torch.cuda.synchronize(device))
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._sync()
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3  # elapsed_time is in milliseconds


BACKENDS: dict[str, type[Backend]] = {}  # device kind → its backend, registered at its definition


def backend_of(kind: str) -> Callable[[type[Backend]], type[Backend]]:
    """Register the decorated class as the backend of ``kind`` (a kind of :data:`bench_lib.measure.kinds.KINDS`)."""

    def register(cls: type[Backend]) -> type[Backend]:
        if kind not in KINDS:
            raise ValueError(f"device kind {kind!r} has no entry in measure/kinds.py")
        cls.kind = kind
        BACKENDS[kind] = cls
        return cls

    return register


class Backend:
    """How to run, synchronise, time and probe memory on one device. A subclass per device kind, registered
    with :func:`backend_of`: how its specs parse (:meth:`spec_of`) and which are worth running here
    (:meth:`candidates`)."""

    kind = ""
    spec: DeviceSpec
    timer_name = "perf_counter"

    def __init__(self, spec: DeviceSpec):
        self.spec = spec

    @classmethod
    def spec_of(cls, text: str, match: re.Match[str]) -> DeviceSpec:
        """The spec ``text`` of this kind (``match``: the spec pattern's match, its groups)."""
        return DeviceSpec(text, cls.kind)

    @classmethod
    def candidates(cls) -> list[str]:
        """The specs of this kind worth running here, found without initialising the device."""
        return []

    @property
    def device(self) -> torch.device:
        return self.spec.torch_device

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def activate(self) -> None:
        """Make this device current in this process (threads on CPU, the current device on CUDA)."""

    def synchronize(self) -> None:
        """Wait until all queued work on the device has finished."""

    def block_timer(self) -> BlockTimer:
        return BlockTimer(self.synchronize)

    def supports(self, dtype: str, mode: str) -> tuple[bool, str]:
        check_choice("dtype", dtype, list(DTYPES))
        check_choice("mode", mode, MODES)
        return True, ""

    def threads_in_force(self) -> int | None:
        return None

    def memory_probe(self) -> MemoryProbe:
        raise NotImplementedError

    def describe(self) -> str:
        return self.spec.text


@backend_of("cpu")
class CpuBackend(Backend):
    @classmethod
    def spec_of(cls, text: str, match: re.Match[str]) -> DeviceSpec:
        cores = physical_cores()
        threads = int(match.group("threads")) if match.group("threads") else cores
        if threads < 1:
            raise ValueError(f"device={text!r}: the thread count must be at least 1; accepted: {spec_help()}")
        if threads > (os.cpu_count() or cores):
            raise ValueError(
                f"device={text!r}: {threads} threads is more than this machine's {os.cpu_count()} logical "
                f"cores ({cores} physical); accepted: cpu-1t … cpu-{os.cpu_count()}t"
            )
        return DeviceSpec(text, cls.kind, threads=threads)

    @classmethod
    def candidates(cls) -> list[str]:
        """One thread, and all the physical cores."""
        cores = physical_cores()
        return ["cpu-1t"] + ([f"cpu-{cores}t"] if cores > 1 else [])

    def available(self) -> tuple[bool, str]:
        return True, ""

    def activate(self) -> None:
        n = self.spec.threads
        torch.set_num_threads(n)
        # Inter-op threads are fixed once inter-op work has started; intra-op threads are what a conv uses.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(n)
        if torch.get_num_threads() != n:
            raise RuntimeError(f"asked for {n} intra-op threads, torch reports {torch.get_num_threads()}")

    def threads_in_force(self) -> int:
        return torch.get_num_threads()

    def supports(self, dtype: str, mode: str) -> tuple[bool, str]:
        """Half types only where oneDNN runs them natively: emulated timings would mislead."""
        super().supports(dtype, mode)
        probes = {
            "bfloat16": ("_is_mkldnn_bf16_supported", "AVX512-BF16, AMX or Arm BF16"),
            "float16": ("_is_mkldnn_fp16_supported", "AVX512-FP16, AMX-FP16 or Arm FP16"),
        }
        if dtype not in probes:
            return True, ""
        probe, needs = probes[dtype]
        check = getattr(torch.ops.mkldnn, probe, None)
        try:
            native = bool(check()) if check is not None else False
        except RuntimeError:
            native = False
        if not native:
            return False, f"this CPU has no native {dtype} convolutions in oneDNN (needs {needs})"
        return True, ""

    def memory_probe(self) -> MemoryProbe:
        return rss_probe()


@backend_of("cuda")
class CudaBackend(Backend):
    timer_name = "cuda_event"

    @classmethod
    def spec_of(cls, text: str, match: re.Match[str]) -> DeviceSpec:
        return DeviceSpec(text, cls.kind, index=int(match.group("index") or 0))

    @classmethod
    def candidates(cls) -> list[str]:
        """Each visible GPU: NVML counts NVIDIA's, the KFD driver AMD's under ROCm (whose torch drives them
        through the cuda device API)."""
        from bench_lib.measure import nvml

        if torch.version.cuda:
            nv = nvml.module()
            physical = nv.nvmlDeviceGetCount() if nv is not None else 0
            count = cuda_visible_count(physical, os.environ.get("CUDA_VISIBLE_DEVICES"))
        elif getattr(torch.version, "hip", None):
            visible = os.environ.get("HIP_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
            count = cuda_visible_count(amd_gpu_count(), visible)
        else:
            count = 0
        return [f"cuda:{i}" for i in range(count)]

    def available(self) -> tuple[bool, str]:
        if torch.version.cuda is None:
            return False, f"this torch ({torch.__version__}) is built without CUDA"
        if not torch.cuda.is_available():
            return False, "no CUDA device is visible (driver missing or CUDA_VISIBLE_DEVICES empty)"
        count = torch.cuda.device_count()
        if self.spec.index >= count:
            return False, f"{self.spec.text} does not exist: this machine has {count} CUDA device(s)"
        return True, ""

    def activate(self) -> None:
        torch.cuda.set_device(self.device)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def block_timer(self) -> BlockTimer:
        return CudaEventTimer(self.device)

    def supports(self, dtype: str, mode: str) -> tuple[bool, str]:
        super().supports(dtype, mode)
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            return False, f"{torch.cuda.get_device_name(self.device)} has no native bfloat16"
        return True, ""

    def memory_probe(self) -> MemoryProbe:
        return CudaAllocatorProbe(self.device)

    def describe(self) -> str:
        return f"{self.spec.text} ({torch.cuda.get_device_name(self.device)})"


@backend_of("mps")
class MpsBackend(Backend):
    timer_name = "mps_synchronize+perf_counter"  # MPS events were unreliable before torch #196395

    @classmethod
    def candidates(cls) -> list[str]:
        """MPS on Apple silicon where this torch is built with it."""
        apple = platform.system() == "Darwin" and platform.machine() == "arm64"
        return ["mps"] if torch.backends.mps.is_built() and apple else []

    def available(self) -> tuple[bool, str]:
        if not torch.backends.mps.is_built():
            return False, f"this torch ({torch.__version__}) is built without MPS"
        if not torch.backends.mps.is_available():
            return False, "MPS is not available (needs an Apple-silicon Mac with macOS 12.3 or later)"
        return True, ""

    def synchronize(self) -> None:
        torch.mps.synchronize()

    def supports(self, dtype: str, mode: str) -> tuple[bool, str]:
        super().supports(dtype, mode)
        if dtype == "bfloat16" and not torch.backends.mps.is_macos_or_newer(14, 0):
            return False, "bfloat16 on MPS needs macOS 14 or later"
        return True, ""

    def memory_probe(self) -> MemoryProbe:
        return mps_probe()


def backend(spec: str | DeviceSpec) -> Backend:
    """The backend for a device spec. Parsing touches no device; call ``available()`` before use."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    return BACKENDS[parsed.kind](parsed)


def cuda_visible_entries(physical: int, visible: str | None) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (``visible``) CUDA honours on a machine with ``physical``
    GPUs: those up to the first invalid one (CUDA's rule: a number past the last GPU, a negative or
    malformed entry), each a number, a ``GPU-`` UUID (prefix) or a ``MIG-`` slice. None when unset: all."""
    if visible is None:
        return None
    entries = []
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-") or not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        if entry.isdigit() and int(entry) >= physical:
            break
        entries.append(entry)
    return entries[:physical]


def cuda_visible_count(physical: int, visible: str | None) -> int:
    """How many CUDA devices this process sees: ``physical`` (NVML's count) as ``CUDA_VISIBLE_DEVICES``
    narrows it. Unset: all; empty: none; else the entries up to the first invalid one."""
    entries = cuda_visible_entries(physical, visible)
    return physical if entries is None else len(entries)


def amd_gpu_count(nodes: str = "/sys/class/kfd/kfd/topology/nodes") -> int:
    """AMD GPUs the kernel's KFD driver lists (its topology nodes with SIMD units; CPUs have none), read
    from sysfs without initialising HIP. 0 where there is no KFD."""
    count = 0
    for props in Path(nodes).glob("*/properties"):
        with contextlib.suppress(OSError, ValueError):
            fields = dict(line.split(maxsplit=1) for line in props.read_text().splitlines() if " " in line)
            count += int(fields.get("simd_count", "0")) > 0
    return count


def candidate_specs() -> list[str]:
    """The device specs worth running here, each kind's (:meth:`Backend.candidates`): ``cpu-1t``, all
    cores, each visible CUDA device, MPS on Apple silicon. Found without initialising CUDA or MPS, so asv's
    fork server may call it."""
    return [s for cls in BACKENDS.values() for s in cls.candidates()]


def visible_specs() -> list[tuple[str, bool, str]]:
    """:func:`candidate_specs` with (spec, available, reason), plus each kind with none (``cuda``, ``mps``)
    with the reason it is absent. Initialises CUDA: not for asv parents."""
    specs = candidate_specs()
    specs += [k for k in BACKENDS if not any(parse_spec(x).kind == k for x in specs)]
    return [(s, *backend(s).available()) for s in specs]


# --------------------------------------------------------------------------------------------
# memory probes: a window around one call, returning bytes


@dataclass(frozen=True)
class MemoryReading:
    """Peak memory of one call, in bytes. ``source`` says what was measured; ``None`` where unavailable."""

    peak_bytes: int | None
    baseline_bytes: int | None
    source: str
    device_used_bytes: int | None = None

    @property
    def peak_increase_bytes(self) -> int | None:
        if self.peak_bytes is None or self.baseline_bytes is None:
            return None
        return self.peak_bytes - self.baseline_bytes


class MemoryProbe:
    def begin(self) -> None:
        raise NotImplementedError

    def end(self) -> MemoryReading:
        raise NotImplementedError


class SampledPeakProbe(MemoryProbe):
    """Samples ``read()`` (bytes) every ``interval_s`` on a thread during the window; peak and baseline.

    Sampling can miss a peak shorter than the interval; the readings at both ends are always included.
    """

    def __init__(
        self,
        read: Callable[[], int],
        source: str,
        sync: Callable[[], None] = lambda: None,
        interval_s: float = 0.0005,
    ):
        self.read, self.source, self.sync, self.interval_s = read, source, sync, interval_s
        self._stop = threading.Event()
        self._peak = self._baseline = 0
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.read())
            self._stop.wait(self.interval_s)

    def begin(self) -> None:
        self.sync()
        self._baseline = self._peak = self.read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def end(self) -> MemoryReading:
        self.sync()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, self.read())
        return MemoryReading(self._peak, self._baseline, self.source)


def rss_probe() -> SampledPeakProbe:
    """The process's resident set size (psutil): interpreter, torch, weights, inputs and allocator caches
    included; the increase over the baseline is what the call added and did not find already mapped."""
    proc = psutil.Process()
    return SampledPeakProbe(lambda: proc.memory_info().rss, "psutil rss (sampled)")


def mps_probe() -> SampledPeakProbe:
    """``torch.mps.current_allocated_memory`` (tensors only), sampled: MPS has no peak-memory API."""
    return SampledPeakProbe(
        torch.mps.current_allocated_memory,
        "torch.mps.current_allocated_memory (sampled)",
        sync=torch.mps.synchronize,
    )


class CudaAllocatorProbe(MemoryProbe):
    """``torch.cuda.max_memory_allocated`` after a reset: tensors through the caching allocator, cuDNN
    workspaces included; not the CUDA context, other processes or direct cudaMalloc. NVML's device
    memory in use (whole device, all processes) is recorded beside it where NVML loads.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._baseline = 0

    def begin(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._baseline = torch.cuda.memory_allocated(self.device)

    def end(self) -> MemoryReading:
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        return MemoryReading(
            peak,
            self._baseline,
            "torch.cuda.max_memory_allocated",
            device_used_bytes=_nvml_used_bytes(self.device),
        )


def _nvml_used_bytes(device: torch.device) -> int | None:
    from bench_lib.measure import nvml

    handle = nvml.handle_for_cuda_device(device.index or 0)
    if handle is None:
        return None
    try:
        return int(nvml.module().nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:
        return None
