"""The element types convbench measures, each with its size and the accuracy it is held to. One table."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DType:
    """A measured dtype: its name, bytes per element, and the norm-wise relative error
    ``||y − y_ref|| / ||y_ref||`` its output may have against a float64 CPU reference."""

    name: str
    itemsize_bytes: int
    tolerance: float

    @property
    def torch(self) -> torch.dtype:
        return getattr(torch, self.name)


# float32 allows TF32 convolutions (cuDNN's default) with room to spare; half types keep ~3 decimal digits.
DTYPES: dict[str, DType] = {
    d.name: d for d in (DType("float32", 4, 5e-3), DType("bfloat16", 2, 5e-2), DType("float16", 2, 1e-2))
}


def get(name: str) -> DType:
    """The dtype called ``name``; ValueError naming the accepted ones."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype={name!r} is not valid; accepted: {', '.join(DTYPES)}") from None
