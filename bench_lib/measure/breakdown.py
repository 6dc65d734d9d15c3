"""Seconds per call of each part of a sequential workload (a network's stem, blocks, head).

A measurement of its own, on a prepared workload: it reads :mod:`harness`'s :class:`Prepared` and times
each part with :mod:`metrics`, so it lives after both (harness prepares, metrics measures; neither
imports this).
"""

from __future__ import annotations

from typing import Any

import torch

from bench_lib.catalogue import layers
from bench_lib.measure import metrics
from bench_lib.measure.harness import Prepared


def breakdown(prepared: Prepared, samples: int = 5, max_time_s: float = 0.05) -> list[dict[str, Any]]:
    """Seconds per call of each part of a sequential workload (a network's stem, blocks, head), with the
    part's MACs on its real input (traced, :func:`bench_lib.catalogue.layers.trace`).

    Per-part replay, not hooks: one forward pass records each part's real input, then each part is
    timed alone on it with :func:`time_callable`. The parts' times add up to about the whole call (less
    what fusion across parts would save; more the per-part synchronisation). Inference only.
    """
    module = prepared.module
    if not isinstance(module, torch.nn.Sequential):
        raise ValueError(f"{prepared.context['workload']}: a breakdown needs a sequential workload (a network)")
    if prepared.mode != "inference":
        raise ValueError("mode='training': the per-part breakdown replays inference only")
    rows = []
    x = prepared.inputs
    settings = metrics.Settings(
        timing={"samples": samples, "max_time_s": max_time_s, "max_warmup_s": max_time_s, "min_samples": 3}
    )
    with prepared.grad_mode():
        for name, part in module.named_children():
            call = metrics.Call(lambda p=part, i=x: p(i), prepared.backend)
            m = metrics.measure(call, "latency", settings).result
            _, costs = layers.trace(part, tuple(x.shape))
            macs = sum(c.macs for c in costs)
            rows.append({"part": name, "median_s": m.median_s, "iqr_s": m.iqr_s, "block": m.block, "macs": macs})
            x = part(x)
    return rows
