"""Paper reproductions: ShuffleNet V2's guidelines G1 and G2 (Tables 1–2) and FasterNet's Table 1.

The setups and published numbers are described in ``docs/papers.md``. Each table is a list of rows, each
row a ``stack`` case of the catalogue (so theory, measure and the asv suite treat it like any workload).
The verdicts are drawn in :mod:`bench_lib.analysis.papers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_lib.catalogue.cases import Case

PAPERS = {"shufflenetv2": ("shufflenetv2-g1", "shufflenetv2-g2"), "fasternet": ("fasternet-t1",)}


def nearest_valid_width(c: int, g: int) -> int:
    """The multiple of ``g`` whose 1×1 group-conv FLOPs (∝ width² / g) are closest to those of width ``c``."""
    if c % g == 0:
        return c
    lower, upper = (c // g) * g, (c // g + 1) * g
    return min((w for w in (lower, upper) if w > 0), key=lambda w: (abs(w * w - c * c), w))


@dataclass(frozen=True)
class Row:
    table: str
    column: str  # the paper's column: "GPU", "ARM", "CPU"
    label: str
    case: str
    published: float  # published speed (batches/s or images/s) or G mult-adds/s
    paper_width: int | None = None  # ShuffleNet V2 G2: the paper's width where it is not divisible by g


def shufflenetv2_g1() -> list[Row]:
    rows = []
    sets = {
        "GPU": ([(128, 128), (90, 180), (52, 312), (36, 432)], [1480, 1296, 876, 748]),
        "ARM": ([(32, 32), (22, 44), (13, 78), (9, 108)], [76.2, 72.9, 69.1, 57.6]),
    }
    for column, (pairs, speeds) in sets.items():
        for (c1, c2), speed in zip(pairs, speeds, strict=True):
            ratio = f"1:{round(c2 / c1)}"
            case = f"stack(op=pointwise_pair,depth=10,in={c1},mid={c2})@56x56"
            rows.append(Row("shufflenetv2-g1", column, f"c1:c2 = {ratio} ({c1},{c2})", str(Case.parse(case)), speed))
    return rows


def shufflenetv2_g2() -> list[Row]:
    rows = []
    sets = {
        "GPU": ([128, 180, 256, 360], [2451, 1725, 1026, 634]),
        "CPU": ([64, 90, 128, 180], [40.0, 35.0, 32.9, 27.8]),
    }
    for column, (widths, speeds) in sets.items():
        for g, c, speed in zip((1, 2, 4, 8), widths, speeds, strict=True):
            w = nearest_valid_width(c, g)
            case = f"stack(op=grouped,depth=10,in={w},out={w},k=1,g={g},bias=false)@56x56"
            label = f"g={g}, c={c}" + (f" (runs c={w})" if w != c else "")
            rows.append(Row("shufflenetv2-g2", column, label, str(Case.parse(case)), speed, c if w != c else None))
    return rows


FASTERNET_STAGES = [(96, 56), (192, 28), (384, 14), (768, 7)]
FASTERNET_OPS = {
    "Conv 3×3": ("standard", "k=3,bias=false", 71.89),
    "GConv 3×3 (g=16)": ("grouped", "k=3,g=16,bias=false", 25.93),
    "DWConv 3×3": ("depthwise", "k=3,bias=false", 6.42),
    "PConv 3×3 (1/4)": ("partial", "k=3,r=4", 39.91),
}


def fasternet_t1() -> list[Row]:
    rows = []
    for label, (op, extra, gmacs) in FASTERNET_OPS.items():
        for c, s in FASTERNET_STAGES:
            out = f",out={c}" if op in ("standard", "grouped") else ""
            case = f"stack(op={op},depth=10,in={c}{out},{extra})@{s}x{s}"
            rows.append(Row("fasternet-t1", "CPU", f"{label} @ {c}×{s}²", str(Case.parse(case)), gmacs))
    return rows


TABLES = {"shufflenetv2-g1": shufflenetv2_g1, "shufflenetv2-g2": shufflenetv2_g2, "fasternet-t1": fasternet_t1}


def rows(tables: tuple[str, ...] | None = None) -> list[Row]:
    return [r for name, make in TABLES.items() if tables is None or name in tables for r in make()]


def cases(tables: tuple[str, ...] | None = None) -> list[str]:
    return list(dict.fromkeys(r.case for r in rows(tables)))
