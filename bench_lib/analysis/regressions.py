"""``convbench regressions``: every machine × environment × combination series of the store, judged at its
newest runs against its own history.

Per series (time order, the newest ``WINDOW_RUNS`` runs; a run's value is its best round minimum,
:func:`bench_lib.analysis.series.run_values`):

1. The band: what this series does on its own. The noise ``sigma`` of the runs before the ones judged
   (:func:`bench_lib.analysis.noise.history_sigma`, moderated toward the machine and device), and
   ``band = max(ln factor, t(1 − alpha/2) × sigma × √(1 + 1/n))`` around their median (n of them).
2. The verdict, HUD-style persistence: the newest two runs beyond the band on the same side:
   ``regression`` (slower) or ``improvement``; only the newest: ``suspect``; neither: ``unchanged`` where the
   band is ``ln factor`` (a change of ``factor`` would have been seen), else ``inconclusive``. Fewer than
   ``MIN_RUNS`` runs: ``inconclusive``.
3. Where it stepped: ``asv.step_detect.detect_steps`` (asv's piecewise-constant L1 fit) on the series; the
   step's first run is ``first_run`` when every run since is beyond the band, else the first of the two
   newest. ``change`` is the median after over the median before, with its interval at 1 − alpha.
4. The machine is watched too: the canary (fixed dense GEMM and 3×3 conv, timed at each run's start and
   end) is judged the same way. A run whose canary left its band, with at least ``MACHINE_SHARE`` of that
   device's series moving the same way, is "machine changed": its series' flags read ``machine changed``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from asv import step_detect

from bench_lib.analysis import noise, results, series
from bench_lib.errors import ArgumentError

WINDOW_RUNS = 30  # runs of a series read by default (a month of nights)
MIN_RUNS = 3  # a verdict needs at least this many runs of a series
MACHINE_SHARE = 0.7  # share of a device's series moving with its canary that makes a run "machine changed"
VERDICTS = ("regression", "suspect", "improvement", "unchanged", "inconclusive", "machine changed")
FLAGS = ("regression", "suspect", "improvement")


@dataclass(frozen=True)
class Judged:
    """One series' verdict at its newest run. Changes are relative (0.10 = 10 % slower)."""

    verdict: str
    change: float  # newest level over the level before it, minus one
    change_low: float  # its interval at 1 − alpha
    change_high: float
    detectable: float  # the smallest change one run could show beyond the band (relative)
    first_run: int | None  # index of the first run after the step (flags only)
    confirmations: int  # runs since the step that are beyond the band
    n_runs: int
    reason: str = ""


def band(before: np.ndarray, prior_sigma: float, alpha: float, factor: float) -> tuple[float, float, float]:
    """(center, band, sigma) of the runs ``before`` the ones judged (log values): see the module docstring."""
    sigma, df = noise.moderate(*noise.history_sigma(before), prior_sigma)
    width = noise.t_quantile(alpha, df) * sigma * math.sqrt(1 + 1 / len(before)) if np.isfinite(sigma) else math.inf
    return float(np.median(before)), max(math.log(factor), width), sigma


def judge_series(v: np.ndarray, prior_sigma: float, alpha: float, factor: float) -> Judged:
    """The verdict of one series of log run values (time order) at its newest run."""
    n = len(v)
    if n < MIN_RUNS:
        return Judged("inconclusive", math.nan, math.nan, math.nan, math.inf, None, 0, n, f"{n} runs of history")
    t = noise.t_quantile(alpha, noise.PRIOR_DF)
    if n >= MIN_RUNS + 1:
        center, width, sigma = band(v[:-2], prior_sigma, alpha, factor)
        d = v[-2:] - center
        if (d > width).all() or (d < -width).all():
            return _step(v, center, width, sigma, t, "regression" if d[-1] > 0 else "improvement")
    center, width, sigma = band(v[:-1], prior_sigma, alpha, factor)
    d = v[-1] - center
    spread = t * sigma * math.sqrt(1 + 1 / (n - 1)) if np.isfinite(sigma) else math.inf
    low, high = math.expm1(d - spread), math.expm1(d + spread)
    if abs(d) > width:
        return Judged("suspect", math.expm1(d), low, high, math.expm1(width), n - 1, 1, n)
    verdict = "unchanged" if width <= math.log(factor) + 1e-12 else "inconclusive"
    return Judged(verdict, math.expm1(d), low, high, math.expm1(width), None, 0, n)


def _step(v: np.ndarray, center: float, width: float, sigma: float, t: float, verdict: str) -> Judged:
    """A persistent change: where it started (asv's step detection, kept where every run since is beyond
    the band), its size and interval."""
    n = len(v)
    first = n - 2
    steps = step_detect.detect_steps(list(np.exp(v)))
    if len(steps) > 1:
        p = steps[-1][0]
        beyond = (v[p:] - center > width).all() if verdict == "regression" else (center - v[p:] > width).all()
        if 0 < p < first and beyond:
            first = p
    before, after = v[:first], v[first:]
    change = float(np.median(after) - np.median(before))
    spread = t * sigma * math.sqrt(1 / len(after) + 1 / len(before)) if np.isfinite(sigma) else math.inf
    low, high = math.expm1(change - spread), math.expm1(change + spread)
    return Judged(verdict, math.expm1(change), low, high, math.expm1(width), first, n - first, n)


def machine_changes(runs: pd.DataFrame, alpha: float, factor: float) -> pd.DataFrame:
    """Per machine, environment, device and run: the canary's shift, the suite's median shift and the share
    of series moving with the canary, and ``changed`` where the machine moved (see the module docstring).
    ``runs``: :func:`series.run_values` of every series, canary included."""
    out = []
    ok = runs[runs["status"] == "ok"].sort_values("started_at")
    for (machine, env, device), g in ok.groupby(["machine", "env_name", "device"], dropna=False, sort=False):
        wide = g.pivot_table(index="run_id", columns=[*series.COMBINATION], values="log_value", aggfunc="first")
        order = g.drop_duplicates("run_id").set_index("run_id")["started_at"].sort_values().index
        wide = wide.reindex(order)
        is_canary = np.array([c[0] == "canary" for c in wide.columns])
        for i in range(2, len(wide)):
            before, now = wide.iloc[:i], wide.iloc[i]
            dev = now - before.median()
            canary = dev[is_canary].dropna()
            suite = dev[~is_canary].dropna()
            if canary.empty or suite.empty:
                continue
            c_shift = float(canary.median())
            canary_before = before.loc[:, is_canary].median(axis=1).dropna().to_numpy()
            c_width = band(canary_before, math.nan, alpha, factor)[1]
            share = float((np.sign(suite) == np.sign(c_shift)).mean())
            changed = abs(c_shift) > c_width and share >= MACHINE_SHARE
            out.append((machine, env, device, wide.index[i], c_shift, float(suite.median()), share, changed))
    cols = ["machine", "env_name", "device", "run_id", "canary_shift", "suite_shift", "share_with_canary", "changed"]
    return pd.DataFrame(out, columns=cols)


def scan(runs: pd.DataFrame, factor: float = 1.05, alpha: float = 0.001) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every series' verdict (``runs``: :func:`series.run_values`) and the machine changes found."""
    ok = runs[runs["status"] == "ok"].sort_values("started_at")
    noise_of = series.noise_table(ok)
    priors = noise_of.groupby(["machine", "env_name", "device"], dropna=False)["history_prior"].first()
    machines = machine_changes(runs, alpha, factor)
    where = ["machine", "env_name", "device", "run_id"]
    moved = set(machines.loc[machines["changed"], where].itertuples(index=False, name=None))
    rows = []
    for key, g in ok.groupby(series.SERIES, dropna=False, sort=False):
        record = dict(zip(series.SERIES, key, strict=True))
        prior = priors.get((record["machine"], record["env_name"], record["device"]), math.nan)
        j = judge_series(g["log_value"].to_numpy(), prior, alpha, factor)
        ids = list(g["run_id"])
        verdict = j.verdict
        tail = ids[j.first_run :] if j.first_run is not None else ids[-1:]
        on_moved = any((record["machine"], record["env_name"], record["device"], r) in moved for r in tail)
        if verdict in FLAGS and (on_moved or record["suite"] == "canary"):  # the canary's code never changes
            verdict = "machine changed"
        injected = g["injected"].dropna()
        rows.append(
            {
                **record,
                **asdict(j),
                "verdict": verdict,
                "first_run": ids[j.first_run] if j.first_run is not None else None,
                "newest_run": ids[-1],
                "newest_at": g["started_at"].iloc[-1],
                "value": float(g["value"].iloc[-1]),
                "unit": g["unit"].iloc[-1],
                "injected": injected.iloc[-1] if len(injected) else None,
            }
        )
    return pd.DataFrame(rows), machines


def exit_code(table: pd.DataFrame) -> int:
    """1 when a regression persists in the newest runs (of the code, not the machine), else 0."""
    return 1 if not table.empty and (table["verdict"] == "regression").any() else 0


def render(table: pd.DataFrame, machines: pd.DataFrame, fmt: str, factor: float, alpha: float) -> str:
    rule = (
        f"a series is flagged when its newest run leaves its band: beyond {factor - 1:.0%} and beyond "
        f"t(1 - {alpha:g}/2) x its own run-to-run noise; two newest runs beyond it on one side make a "
        "regression or an improvement, one a suspect (false alarms measured on identical code: docs/verdicts.md)"
    )
    if fmt == "json":
        return json.dumps(
            {
                "rule": rule,
                "factor": factor,
                "alpha": alpha,
                "rows": json.loads(table.to_json(orient="records", date_format="iso")),
                "machine_changes": json.loads(machines[machines["changed"]].to_json(orient="records")),
            },
            indent=2,
        )
    if table.empty:
        return "No series in the store's selected runs."
    counts = table["verdict"].value_counts().to_dict()
    head = f"{len(table)} series: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {rule}."
    moved = machines[machines["changed"]]
    for m in moved.itertuples():
        head += (
            f"\nmachine changed: {m.machine} {m.device} in run {m.run_id} (canary {math.expm1(m.canary_shift):+.1%}, "
            f"suite median {math.expm1(m.suite_shift):+.1%}, {m.share_with_canary:.0%} of series with it)"
        )
    flagged = table[table["verdict"].isin([*FLAGS, "machine changed"])].sort_values("change", ascending=False)
    if flagged.empty:
        return head
    show = flagged.copy()
    spans = zip(show.change, show.change_low, show.change_high, strict=True)
    show["change"] = [f"{c:+.1%} [{lo:+.1%}, {hi:+.1%}]" for c, lo, hi in spans]
    show["band"] = show["detectable"].map(lambda x: f"±{x:.1%}")
    cols = ["verdict", "change", "band", "confirmations", "first_run", "machine", "suite", "case", "batch"]
    cols += ["device", "layout", "dtype", "mode", "injected"]
    cols = [c for c in cols if c != "injected" or show["injected"].notna().any()]
    return head + "\n" + show[cols].to_string(index=False)


def run(results_dir: str, machines: list[str] | None, since: str | None, factor: float, alpha: float, fmt: str) -> int:
    if factor < 1:
        raise ArgumentError(f"--factor {factor} must be at least 1 (e.g. 1.05 for 5%)")
    if not 0 < alpha < 1:
        raise ArgumentError(f"--alpha {alpha} is out of range (accepted: between 0 and 1, e.g. 0.001)")
    store = results.store_of(results_dir)
    keys = store.machine_keys(machines)
    if machines and not keys:
        raise ArgumentError(f"--machine {', '.join(machines)}: no such machine in {results_dir}")
    chosen = store.runs(keys=keys, months=store.months_since(since) if since else None)
    if since:
        try:
            start = pd.Timestamp(since, tz="UTC")
        except ValueError:
            raise ArgumentError(f"--since {since!r} is not a date (accepted: YYYY-MM-DD[THH:MM])") from None
        chosen = chosen[chosen["started_at"] >= start]
    chosen = chosen[chosen["state"].isin(["complete", "interrupted"]) & (chosen["grid"] != "peaks")]
    chosen = chosen.sort_values("started_at").groupby(["hardware_id", "env_name"], dropna=False).tail(WINDOW_RUNS)
    rows = results.rounds_of_runs(store, chosen, series.READ)
    table, changes = scan(series.run_values(rows), factor, alpha)
    print(render(table, changes, fmt, factor, alpha))
    return exit_code(table)
