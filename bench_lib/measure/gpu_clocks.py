"""Locking a GPU's SM clock for a run, where the driver and the user's rights permit it (NVML).

A GPU left to itself boosts while cool and idle-ish and falls back under load, heat or a power cap, so
the same kernel runs at other clocks from run to run. Locking the SM clock removes that source of
spread, at the price of speed (``base``: the clock the board sustains at its power limit) or of thermal
headroom (``max``). NVIDIA's benchmark tools offer the same two targets.

The window::

    with locked("base", [0]) as locks:   # nvmlDeviceSetGpuLockedClocks(h, TDP, TDP) on NVML GPU 0
        ...                              # the run
                                         # nvmlDeviceResetGpuLockedClocks(h), also after SIGTERM

Locking needs root (or the admin rights Windows asks for) and a Volta or newer GPU. Where it is refused,
the run goes on with free clocks and each GPU's record says why (``reason``): a benchmark run is never
stopped by a setting it could not make. Only NVML is touched, never CUDA, so the runner may call this
before asv forks its workers. A process killed with SIGKILL cannot reset the clocks:
``nvidia-smi --reset-gpu-clocks`` does.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from bench_lib.measure import devices, nvml

TARGETS = ("none", "base", "max")  # or a clock in MHz
MAX_CLOCK_MHZ = 10_000  # the largest clock accepted as a target: no GPU comes near it


def parse_target(text: str) -> str | int:
    """``none``, ``base``, ``max`` or a whole number of MHz (1 to :data:`MAX_CLOCK_MHZ`); ValueError else."""
    if text in TARGETS:
        return text
    if text.isdigit() and 1 <= int(text) <= MAX_CLOCK_MHZ:
        return int(text)
    raise ValueError(f"accepted: {', '.join(TARGETS)} or a clock in MHz from 1 to {MAX_CLOCK_MHZ}")


@dataclass(frozen=True)
class ClockLock:
    """What one GPU's SM clock was set to for a run.

    ``locked_mhz``: the clock it was locked at (for ``base``, the SM clock NVML reads once locked, which an
    idle GPU may report below the lock); None when the lock was refused, and ``reason`` says why.
    """

    nvml_index: int
    target: str
    locked: bool
    locked_mhz: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.locked:
            return f"GPU {self.nvml_index}: SM clock locked ({self.target}, {self.locked_mhz} MHz)"
        return f"GPU {self.nvml_index}: clocks left free ({self.reason})"


def nvml_indices(cuda_indices: list[int], visible: str | None) -> tuple[list[int], list[str]]:
    """The NVML indices of the CUDA devices ``cuda_indices`` as ``CUDA_VISIBLE_DEVICES`` maps them, and
    why any could not be mapped. Integer entries are NVML indices (torch's rule), ``GPU-`` entries are
    matched by UUID prefix, ``MIG-`` slices cannot be locked (the clock belongs to the whole GPU)."""
    nv = nvml.module()
    if nv is None:
        return [], [nvml.unavailable_reason() or "NVML unavailable"]
    entries = devices.cuda_visible_entries(nv.nvmlDeviceGetCount(), visible)
    if entries is None:
        return sorted(set(cuda_indices)), []
    found: list[int] = []
    problems: list[str] = []
    for index in sorted(set(cuda_indices)):
        entry = entries[index] if index < len(entries) else None
        if entry is None:
            problems.append(f"cuda:{index}: CUDA_VISIBLE_DEVICES={visible!r} shows no such device")
        elif entry.isdigit():
            found.append(int(entry))
        elif entry.startswith("GPU-"):
            match = [i for i in range(nv.nvmlDeviceGetCount()) if _uuid(nv, i).startswith(entry)]
            if len(match) == 1:
                found.append(match[0])
            else:
                problems.append(f"cuda:{index}: CUDA_VISIBLE_DEVICES entry {entry!r} names {len(match)} GPUs")
        else:
            problems.append(f"cuda:{index}: CUDA_VISIBLE_DEVICES entry {entry!r} is a MIG slice, not a whole GPU")
    return sorted(set(found)), problems


def _uuid(nv: Any, index: int) -> str:
    value = nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(index))
    return value.decode() if isinstance(value, bytes) else str(value)


def lock(target: str | int, index: int) -> ClockLock:
    """Lock NVML GPU ``index``'s SM clock at ``target`` (``base``, ``max`` or MHz); refused: say why."""
    nv = nvml.module()
    name = str(target)
    if nv is None:
        return ClockLock(index, name, False, reason=nvml.unavailable_reason() or "NVML unavailable")
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        if target == "base":
            bound = nv.NVML_CLOCK_LIMIT_ID_TDP  # the driver's name for the clock sustained at the power limit
        elif target == "max":
            bound = int(nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM))
        else:
            bound = int(target)
        nv.nvmlDeviceSetGpuLockedClocks(handle, bound, bound)
        mhz = nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM) if target == "base" else bound
        return ClockLock(index, name, True, locked_mhz=int(mhz))
    except nv.NVMLError as e:
        return ClockLock(index, name, False, reason=_refusal(nv, e))


def _refusal(nv: Any, error: Exception) -> str:
    if isinstance(error, getattr(nv, "NVMLError_NoPermission", ())):
        return f"locking clocks needs root: NVML said {error}"
    if isinstance(error, getattr(nv, "NVMLError_NotSupported", ())):
        return f"this GPU or driver cannot lock clocks (Volta and newer can): NVML said {error}"
    return f"NVML refused: {type(error).__name__}: {error}"


def unlock(locks: list[ClockLock]) -> list[str]:
    """Give the locked GPUs their clocks back (``nvmlDeviceResetGpuLockedClocks``); the failures, in words."""
    nv = nvml.module()
    failures = []
    for one in locks:
        if not one.locked or nv is None:
            continue
        try:
            nv.nvmlDeviceResetGpuLockedClocks(nv.nvmlDeviceGetHandleByIndex(one.nvml_index))
        except nv.NVMLError as e:
            failures.append(f"GPU {one.nvml_index}: clocks still locked ({e}); run nvidia-smi --reset-gpu-clocks")
    return failures


@contextlib.contextmanager
def locked(target: str | int, indices: list[int]) -> Iterator[list[ClockLock]]:
    """Lock every GPU in ``indices`` for the body; reset those that locked when it ends, however it ends.
    ``target`` ``none`` locks nothing and yields []."""
    locks = [] if target == "none" else [lock(target, i) for i in indices]
    try:
        yield locks
    finally:
        for failure in unlock(locks):
            print(f"convbench run: {failure}", file=sys.stderr, flush=True)
