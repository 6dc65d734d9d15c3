"""What is measured: one :class:`Task`, the identity every path of convbench builds and hands to
:func:`bench_lib.measure.harness.prepare`.

A task is a case (a workload, its parameters and input size, as the case string
``grouped(in=64,out=128,k=3,g=4)@56x56``) on a device, in a layout, dtype and mode, at a batch, under an
allocator policy, with the seed that fixes its weights and input. The suite builds it from a
:class:`bench_lib.suite.combination.Combination` (which adds the suite and the metric), ``convbench measure``
from its arguments (:meth:`Task.of`), a fresh process from JSON (:class:`bench_lib.measure.fresh.ProcessSpec`
carries a task, the timing and the checked error), and a measurement's context records it (its case and
:meth:`Task.asked`: :func:`bench_lib.measure.harness.prepare`).

Standard library only at import (the CLI and the fresh processes' launcher read it without torch); the
case string is parsed where the workload is built.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_lib.catalogue.cases import Case


@dataclass(frozen=True)
class Task:
    """One measured thing: ``case`` on ``device`` (a device spec: ``cpu-1t``, ``cuda:0``), in ``layout``
    (nchw, channels_last), ``dtype`` and ``mode`` (inference, training), with ``batch`` images; ``graph``:
    replayed as a CUDA graph; ``allocator``: the host allocator policy (steady, cold, plain); ``seed``: the
    weights' and input's."""

    case: str
    device: str = "cpu-1t"
    layout: str = "nchw"
    dtype: str = "float32"
    mode: str = "inference"
    batch: int = 1
    graph: bool = False
    allocator: str = "steady"
    seed: int = 0

    @classmethod
    def of(cls, workload: str, *, height: int | None = None, width: int | None = None, **given: Any) -> Task:
        """The task of ``workload`` at ``height`` × ``width`` (default the stage size, 56): each keyword
        named as a field of :class:`Task` sets it, every other one is a parameter of the workload
        (ValueError where the workload has no such parameter)."""
        from bench_lib.catalogue.cases import Case
        from bench_lib.catalogue.registry import STAGE_SIZE

        own = {f.name for f in fields(cls)} - {"case"}
        params = {k: v for k, v in given.items() if k not in own}
        where = {k: v for k, v in given.items() if k in own}
        case = Case(workload, params, height or STAGE_SIZE, width or STAGE_SIZE)
        return cls(str(case), **where)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @functools.cached_property
    def parsed(self) -> Case:
        """The case: workload, its given parameters, height and width (parsed once per task)."""
        from bench_lib.catalogue.cases import Case

        return Case.parse(self.case)

    def asked(self) -> dict[str, Any]:
        """What the measurement was asked for beside the case: layout, dtype, mode, batch, height, width."""
        case = self.parsed
        return {
            "layout": self.layout,
            "dtype": self.dtype,
            "mode": self.mode,
            "batch": self.batch,
            "height": case.height,
            "width": case.width,
        }
