"""The canary: fixed dense workloads timed at the start and the end of every run, to watch the machine.

Their code never changes between runs (no catalogue workload, no grid parameter), so when the canary moves
with most of the suite, the machine moved (frequency, neighbours, heat), not the code. The analysis stage
(:mod:`bench_lib.analysis.regressions`) reads them as the ``canary`` suite.

Each canary is a plain ``torch`` call at its device kind's fixed size (:mod:`bench_lib.measure.kinds`),
measured by :func:`bench_lib.measure.metrics.measure` in the runner's own process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bench_lib.measure import devices, kinds, metrics

TIMING = {"samples": 10, "min_samples": 5, "min_time_s": 0.3, "max_time_s": 0.6, "max_warmup_s": 0.3}


@dataclass(frozen=True)
class Canary:
    """One canary workload on one device: its case text (the store's ``case``) and its call."""

    case: str
    batch: int
    call: Callable[[], Any]


def canaries(backend: devices.Backend) -> list[Canary]:
    """The GEMM and the dense 3×3 conv at this device kind's fixed sizes (float32, NCHW, no grad)."""
    n, channels, size, batch = kinds.kind(backend.spec.kind).canary
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(backend.device) for _ in range(2))
    x = torch.randn(batch, channels, size, size, generator=gen).to(backend.device)
    w = torch.randn(channels, channels, 3, 3, generator=gen).to(backend.device)
    return [
        Canary(f"canary_gemm(m={n},n={n},k={n})", 1, lambda: torch.mm(a, b)),
        Canary(f"canary_conv3x3(in={channels},out={channels})@{size}x{size}", batch, lambda: _conv(x, w)),
    ]


def _conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, w, padding=1)


def measure(spec: str) -> list[tuple[Canary, metrics.Record]]:
    """The latency record of every canary on ``spec`` (empty where the device is unavailable)."""
    backend = devices.backend(spec)
    if not backend.available()[0]:
        return []
    backend.activate()
    settings = metrics.Settings(timing=TIMING)
    found = []
    for c in canaries(backend):
        call = metrics.Call(c.call, backend, {"case": c.case, "device": spec})
        found.append((c, metrics.measure(call, "latency", settings)))
    return found
