"""Human units for the report: a column's unit comes from its name (``_s``, ``_flops_per_s``,
``_bytes_per_s``, ``_bytes``, ``_j``), and each value is written with the prefix that keeps 3 significant
digits readable (``19.0 µs``, ``23.0 GFLOP/s``, ``1.50 MiB``). Pure functions.

Decimal prefixes for rates (GFLOP/s, GB/s: what vendors quote), binary ones for sizes (KiB, MiB: what
caches and allocators are built in).
"""

from __future__ import annotations

import math

import pandas as pd

SECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
DECIMAL = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))
BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B"))

RELATIVE = ("change", "change_low", "change_high", "detectable")  # relative changes (0.10 = 10 %)
# column suffix → the kind of unit it names, longest suffix first
UNITS = (
    ("_flops_per_s", "flops"),
    ("_bytes_per_s", "bandwidth"),
    ("_bytes", "bytes"),
    ("_j", "joules"),
    ("_s", "seconds"),
)


def _three(value: float) -> str:
    """Three significant digits without an exponent: 1.23, 12.3, 123."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def seconds(value: float) -> str:
    """19.02e-6 → '19.0 µs'."""
    if not _finite(value):
        return ""
    scale, unit = next(((s, u) for s, u in SECONDS if abs(value) >= s), SECONDS[-1])
    return f"{_three(value / scale)} {unit}"


def decimal(value: float, unit: str) -> str:
    """2.298e10, 'FLOP/s' → '23.0 GFLOP/s'."""
    if not _finite(value):
        return ""
    scale, prefix = next(((s, p) for s, p in DECIMAL if abs(value) >= s), DECIMAL[-1])
    return f"{_three(value / scale)} {prefix}{unit}"


def size(value: float) -> str:
    """1572864 → '1.50 MiB'."""
    if not _finite(value):
        return ""
    scale, unit = next(((s, u) for s, u in BINARY if abs(value) >= s), BINARY[-1])
    return f"{_three(value / scale)} {unit}" if unit != "B" else f"{value:.0f} B"


def joules(value: float) -> str:
    """0.0123 → '12.3 mJ'."""
    if not _finite(value):
        return ""
    if abs(value) >= 1:
        return f"{_three(value)} J"
    return f"{_three(value * 1e3)} mJ" if abs(value) >= 1e-3 else f"{_three(value * 1e6)} µJ"


def ratio(value: float) -> str:
    """A speedup or a reduction: 2.345 → '2.35×'."""
    return f"{_three(value)}×" if _finite(value) else ""


def fraction(value: float) -> str:
    """0.254 → '25.4 %'."""
    return f"{_three(100 * value)} %" if _finite(value) else ""


def column_scale(column: str, values: pd.Series) -> tuple[float, str] | None:
    """(divisor, unit) that writes ``column`` in human units at the scale of its median magnitude
    (``latency_s`` with a median of 2e-5 → (1e-6, 'µs')); None for a column without a unit."""
    kind = next((k for suffix, k in UNITS if column.endswith(suffix)), None)
    if kind is None or "_over_" in column:  # a ratio of two quantities of the unit
        return None
    finite = pd.to_numeric(values, errors="coerce").abs()
    finite = finite[finite.gt(0) & finite.lt(math.inf)]
    typical = float(finite.median()) if len(finite) else 1.0
    if kind == "seconds":
        return next(((s, u) for s, u in SECONDS if typical >= s), SECONDS[-1])
    if kind == "bytes":
        return next(((s, u) for s, u in BINARY if typical >= s), BINARY[-1])
    if kind == "joules":
        return next(((s, u) for s, u in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ")) if typical >= s), (1e-6, "µJ"))
    unit = "FLOP/s" if kind == "flops" else "B/s"
    scale, prefix = next(((s, p) for s, p in DECIMAL if typical >= s), DECIMAL[-1])
    return scale, prefix + unit


def humanize(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for reading that still sorts as numbers: each unit-named column scaled to the
    unit of its median magnitude and renamed (``latency_s`` → ``latency (µs)``), ratios
    (``*reduction``, ``*speedup*``) headed ×, ``*efficiency``/``*fraction``/``*share`` and relative
    changes (:data:`RELATIVE`) as percentages,
    every float rounded to 3 significant digits."""
    out = pd.DataFrame(index=df.index)
    for column in df.columns:
        values = df[column]
        scale = column_scale(column, values)
        name = column
        if scale is not None:
            stem = next(column[: -len(suffix)] for suffix, _ in UNITS if column.endswith(suffix))
            values, name = values / scale[0], f"{stem} ({scale[1]})"
        elif pd.api.types.is_float_dtype(values):
            if column.endswith("reduction") or "speedup" in column or "_over_" in column:
                name = f"{column} (×)"
            elif column.endswith(("efficiency", "fraction", "share")) or column in RELATIVE:
                values, name = 100 * values, f"{column} (%)"
        if pd.api.types.is_float_dtype(values):
            values = values.map(_round3)
        out[name.replace("_", " ")] = values
    return out


def _round3(value: float) -> float:
    """``value`` to 3 significant digits (NaN and infinities kept)."""
    if not _finite(value) or value == 0:
        return value
    return round(value, 2 - math.floor(math.log10(abs(value))))


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
