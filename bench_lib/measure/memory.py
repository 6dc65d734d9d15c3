"""Peak memory of one prepared call: the allocator's peak on CUDA, a sampled or profiled peak elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bench_lib.measure.devices import Backend, MemoryReading

# --------------------------------------------------------------------------------------------
# memory


@dataclass(frozen=True)
class MemoryMeasurement:
    """Peak memory of one call, in bytes.

    ``peak_bytes``: the most tensor memory live at once during the call, the workload's own tensors
    (weights, buffers, input, gradients) included. CUDA: ``max_memory_allocated`` after a reset (the
    caching allocator, cuDNN workspaces included). MPS: ``current_allocated_memory`` sampled. CPU: the
    workload's tensors plus the peak of live bytes that torch's profiler recorded during the call.
    ``rss_increase_bytes`` (CPU): how much the process's RSS rose during the call (sampled with psutil).
    ``device_used_bytes``: NVML's memory in use on the whole GPU, or MPS's driver-allocated memory.
    """

    peak_bytes: int | None
    source: str
    resident_bytes: int
    rss_increase_bytes: int | None = None
    device_used_bytes: int | None = None
    note: str | None = None

    def summary(self) -> dict[str, Any]:
        return asdict(self)


class Workload(Protocol):
    """What :func:`measure_memory` measures: a call, its backend, its grad mode, and the tensors that stay
    resident between calls (a prepared workload's parameters, buffers and input; none for a plain call)."""

    step: Callable[[], Any]
    backend: Backend

    def grad_mode(self) -> contextlib.AbstractContextManager[None]: ...

    def tensors(self) -> list[Any]: ...


def _tensor_bytes(workload: Workload) -> int:
    return sum(t.numel() * t.element_size() for t in workload.tensors())


def _profiled_allocation_peak(fn: Callable[[], Any]) -> tuple[int | None, str | None]:
    """Peak of live bytes allocated by ``fn`` on the CPU, from the profiler's allocation events."""
    # The autograd-level profiler: torch.profiler.profile would import torch._inductor on first use (~1 s).
    from torch.autograd.profiler import profile

    with profile(use_kineto=True, use_cpu=True, profile_memory=True) as prof:
        fn()
    try:
        from torch._C._profiler import _EventType  # the allocation events' own tags

        allocations: list[tuple[int, int]] = []
        stack = list(prof.kineto_results.experimental_event_tree())
        while stack:
            node = stack.pop()
            if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
                allocations.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
            stack.extend(node.children)
    except (AttributeError, ImportError) as e:  # private API; absent in some torch versions
        return None, f"torch's profiler exposes no allocation events here ({e})"
    live = peak = 0
    for _, size in sorted(allocations):
        live += size
        peak = max(peak, live)
    return peak, None


def measure_memory(prepared: Workload) -> MemoryMeasurement:
    """Peak memory of one warmed-up call of ``prepared`` (see :class:`MemoryMeasurement`)."""
    backend = prepared.backend
    with prepared.grad_mode():
        prepared.step()  # warm: lazy workspaces and caches exist before the window
        probe = backend.memory_probe()
        probe.begin()
        prepared.step()
        reading: MemoryReading = probe.end()
        resident = _tensor_bytes(prepared)
        if backend.spec.kind != "cpu":
            return MemoryMeasurement(
                reading.peak_bytes, reading.source, resident, device_used_bytes=reading.device_used_bytes
            )
        peak, note = _profiled_allocation_peak(prepared.step)
    return MemoryMeasurement(
        None if peak is None else resident + peak,
        "workload tensors + torch.profiler allocation peak",
        resident,
        rss_increase_bytes=reading.peak_increase_bytes,
        note=note,
    )
