"""What separate processes of one combination say: their modes, and for the plain suite (fresh processes
under glibc's defaults, :mod:`bench_lib.measure.fresh`) the allocator state a user's process has.

- :func:`findings`: per run and combination, the modes of its processes' values
  (:func:`bench_lib.measure.modes.find`), and for the plain suite its processes against the same op under
  ``steady`` in the same run (the ops suite): how many ran :data:`modes.ALLOCATOR_RATIO` or more slower,
  and the page faults per call of its fastest mode and of the others (what predicts the mode here:
  docs/allocator.md). The report lists the multimodal and allocator-sensitive ones.
- :func:`with_shares`: ``compare``'s rows of the plain suite get the share of each side's processes in
  the slow mode and Fisher's exact test on those counts (:func:`bench_lib.measure.modes.share_test`); a
  share that moved at ``alpha`` makes the row ``slower`` or ``faster`` even where the value did not.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench_lib.analysis import series, verdicts
from bench_lib.measure import modes
from bench_lib.suite.combination import PLAIN

COMBINATION = series.COMBINATION
RUN_KEYS = ["run_id", "machine", "env_name"]


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    latency = rows[(rows["metric"] == "latency") & (rows["status"] == "ok") & (rows["suite"] != "canary")]
    return latency[latency["value"].gt(0)]


def findings(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run and combination with at least :data:`modes.MIN_PROCESSES` processes (A/B sides
    apart): ``processes``, ``modes`` (text), ``multimodal``, and for the plain suite ``steady_s``, ``slow``
    (processes :data:`modes.ALLOCATOR_RATIO` or more slower than steady), ``allocator_sensitive``,
    ``faults_fast`` / ``faults_slow`` (median page faults per call in the fastest mode / the others) and
    ``kernels`` (how many different kernels its processes ran)."""
    ok = _ok(rows)
    if "side" not in ok:
        ok = ok.assign(side=None)
    keys = [*RUN_KEYS, "side", *COMBINATION]
    ok = ok.assign(side=ok["side"].astype(object).where(ok["side"].notna(), "-"))
    steady = {k: g["value"].to_numpy() for k, g in ok[ok["suite"] == "ops"].groupby(keys, observed=True, dropna=False)}
    out = []
    for key, g in ok.groupby(keys, observed=True, dropna=False):
        if len(g) < modes.MIN_PROCESSES:
            continue
        found = modes.find(g["value"])
        row = dict(zip(keys, key, strict=True))
        row.update(processes=len(g), modes=modes.describe(found), multimodal=modes.is_multimodal(found))
        if row["suite"] == PLAIN:
            row.update(_against_steady(g, steady.get((*key[:4], "ops", *key[5:]))))
        out.append(row)
    return pd.DataFrame(out)


def _against_steady(g: pd.DataFrame, steady) -> dict:
    judged = modes.sensitivity(g["value"], steady if steady is not None else [])
    faults = g["page_faults_per_call"] if "page_faults_per_call" in g else pd.Series(np.nan, index=g.index)
    edge = modes.first_slow(g["value"])
    fast = g["value"] < (edge if edge is not None else math.inf)  # the fastest mode
    kernels = g["kernel"].nunique() if "kernel" in g else 0
    return {
        "steady_s": judged.steady_s if judged else math.nan,
        "slow": judged.slow if judged else None,
        "allocator_sensitive": bool(judged and judged.sensitive),
        "faults_fast": float(faults[fast].median()) if fast.any() else math.nan,
        "faults_slow": float(faults[~fast].median()) if (~fast).any() else math.nan,
        "kernels": int(kernels),
    }


def with_shares(
    table: pd.DataFrame, b_rows: pd.DataFrame, c_rows: pd.DataFrame, keys: list[str], alpha: float
) -> pd.DataFrame:
    """``table`` (compare's) with ``slow_share`` on its plain-suite rows: ``0/12 → 10/12 (p 0.0001)``, the
    processes at or past the boundary of the fastest mode of both sides together; a share that moved at
    ``alpha`` (Fisher's exact test) makes an ``unchanged`` or ``inconclusive`` row ``slower`` or
    ``faster``."""
    if table.empty or not (table["suite"] == PLAIN).any():
        return table
    b, c = (_ok(r)[lambda x: x["suite"] == PLAIN] for r in (b_rows, c_rows))
    values = {side: dict(iter(rows.groupby(keys, observed=True)["value"])) for side, rows in (("b", b), ("c", c))}
    table = table.copy()
    table["slow_share"], table["mode_shift"] = None, False
    for i, row in table[table["suite"] == PLAIN].iterrows():
        key = tuple(row[k] for k in keys)
        vb, vc = values["b"].get(key), values["c"].get(key)
        edge = modes.boundary(vb, vc) if vb is not None and vc is not None else None
        if edge is None:
            continue
        (sb, nb), (sc, nc) = modes.slow_count(vb, edge), modes.slow_count(vc, edge)
        p = modes.share_test(sb, nb, sc, nc)
        table.at[i, "slow_share"] = f"{sb}/{nb} → {sc}/{nc} (p {p:.2g})"
        table.at[i, "mode_shift"] = bool(p < alpha)
        if p < alpha and row["verdict"] in (verdicts.UNCHANGED, verdicts.INCONCLUSIVE):
            table.at[i, "verdict"] = verdicts.SLOWER if sc / nc > sb / nb else verdicts.FASTER
    return table


def _shift(before: np.ndarray, runs: list[np.ndarray], alpha: float) -> tuple[str, str] | None:
    """The share rule over a history: each of the newest two runs' processes (``runs``) against the pooled
    processes of the runs ``before`` them, the slow mode counted past the boundary of all of them. Both
    beyond ``alpha`` on one side: ``regression`` (``improvement``); only the newest: ``suspect``. Returns
    (verdict or '', ``slow_share`` text), or None where the processes have one mode."""
    edge = modes.boundary(before, np.concatenate(runs))
    if edge is None:
        return None
    sb, nb = modes.slow_count(before, edge)
    counts = [modes.slow_count(r, edge) for r in runs]
    ps = [modes.share_test(sb, nb, s, n) for s, n in counts]
    signs = [np.sign(s / n - sb / nb) if n else 0 for s, n in counts]
    text = f"{sb}/{nb} → " + ", ".join(f"{s}/{n}" for s, n in counts) + " (p " + ", ".join(f"{p:.2g}" for p in ps) + ")"
    if ps[-1] >= alpha:
        return "", text
    if len(ps) == 2 and ps[0] < alpha and signs[0] == signs[1]:
        return (verdicts.REGRESSION if signs[-1] > 0 else verdicts.IMPROVEMENT), text
    return (verdicts.SUSPECT if signs[-1] > 0 else ""), text


def in_history(table: pd.DataFrame, rows: pd.DataFrame, alpha: float, min_runs: int) -> pd.DataFrame:
    """``regressions``' table with ``slow_share`` on its plain-suite series (``rows``: the store's per-round
    rows, one per process): the newest two runs' shares of processes in the slow mode against the runs
    before them (:func:`_shift`), which turns an ``unchanged`` or ``inconclusive`` series into a
    ``regression``, ``suspect`` or ``improvement``, and a ``suspect`` into a ``regression`` or
    ``improvement`` where both newest runs shifted (a mode shift: the value of a run, its fastest process,
    may not move, or move in one run of the two). Needs ``min_runs`` runs, as the value rule does."""
    if table.empty or not (table["suite"] == PLAIN).any():
        return table
    plain = _ok(rows)[lambda x: x["suite"] == PLAIN].sort_values("started_at", kind="stable")
    table = table.copy()
    table["slow_share"] = None
    groups = dict(iter(plain.groupby(series.SERIES, observed=True, dropna=False)))
    for i, row in table[table["suite"] == PLAIN].iterrows():
        g = groups.get(tuple(row[k] for k in series.SERIES))
        if g is None:
            continue
        runs = [r["value"].to_numpy(dtype=float) for _, r in g.groupby("run_id", sort=False)]
        if len(runs) < min_runs:
            continue
        found = _shift(np.concatenate(runs[:-2]), runs[-2:], alpha)
        if found is None:
            continue
        verdict, table.at[i, "slow_share"] = found
        weaker = (
            verdicts.UNCHANGED,
            verdicts.INCONCLUSIVE,
            *((verdicts.SUSPECT,) if verdict != verdicts.SUSPECT else ()),
        )
        if verdict and row["verdict"] in weaker:  # a persisting shift confirms what the fastest process hid
            table.at[i, "verdict"] = verdict
    return table
