"""``convbench regressions``: every machine × environment × combination series of the store, judged at its
newest runs against its own history.

Per series (time order, the runs :func:`bench_lib.analysis.verdicts.window` keeps; a run's value is its
best round minimum, :func:`bench_lib.analysis.series.run_values`):

1. The band: what this series does on its own. The noise ``sigma`` of the runs before the ones judged
   (:func:`bench_lib.analysis.noise.history_sigma`, moderated toward the machine and device), and
   ``band = max(ln factor, t(1 − alpha/2) × sigma × √(1 + 1/n))`` around their median (n of them).
2. The verdict, HUD-style persistence: the newest two runs beyond the band on the same side:
   ``regression`` (slower) or ``improvement``; only the newest: ``suspect``; neither: ``unchanged`` where the
   band is ``ln factor`` (a change of ``factor`` would have been seen), else ``inconclusive``. Fewer than
   ``MIN_RUNS`` runs (4: a band from at least 3 runs before the judged ones): ``inconclusive``.
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
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from asv import step_detect

from bench_lib.analysis import noise, processes, results, series, tables, verdicts
from bench_lib.analysis.verdicts import FLAGS, INCONCLUSIVE, MACHINE_CHANGED, SUSPECT
from bench_lib.errors import ArgumentError
from bench_lib.store import redact

# A verdict needs at least this many runs of a series: the band is drawn from at least MIN_RUNS - 1 runs
# before the judged ones (3 before the newest for a suspect, 3 before the two newest for a regression). From
# two runs a band's centre cannot tell which of a bimodal series' modes is its usual one (docs/verdicts.md).
MIN_RUNS = 4
MACHINE_SHARE = 0.7  # share of a device's series moving with its canary that makes a run "machine changed"


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


def bands(before: np.ndarray, prior_sigma: np.ndarray, alpha: float, factor: float) -> tuple[np.ndarray, ...]:
    """(center, band, sigma, half) per row of ``before``: the runs before the ones judged (log values, one
    series per row, NaN where a series has fewer runs); ``half`` is the half-width of the prediction
    interval of one new run, t(alpha, moderated df) × sigma × √(1 + 1/runs), the band that width widened to
    the factor; see the module docstring."""
    rows, cols = np.nonzero(np.isfinite(before))
    sigma, df = noise.history_sigmas(rows, before[rows, cols], n_series=len(before))
    sigma, df = noise.moderate(sigma, df, prior_sigma)
    count = np.isfinite(before).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a series with no run before: its row is all NaN
        half = np.where(np.isfinite(sigma), noise.t_quantile(alpha, df) * sigma * np.sqrt(1 + 1 / count), np.inf)
        center = np.nanmedian(before, axis=1) if before.shape[1] else np.full(len(before), np.nan)
    return center, verdicts.band(half, factor), sigma, half


def band(before: np.ndarray, prior_sigma: float, alpha: float, factor: float) -> tuple[float, float, float]:
    """(center, band, sigma) of one series' runs ``before`` the ones judged (log values)."""
    center, width, sigma, _ = bands(np.asarray(before, dtype=float)[None, :], np.array([prior_sigma]), alpha, factor)
    return float(center[0]), float(width[0]), float(sigma[0])


def right_aligned(codes: np.ndarray, firsts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """One row per series (``codes`` 0 … G − 1, contiguous, ``firsts`` their first positions), its values in
    time order ending in the last column, NaN before its first run."""
    n = np.diff(np.r_[firsts, len(codes)])
    m = np.full((len(n), int(n.max()) if len(n) else 0), np.nan)
    position = np.arange(len(codes)) - firsts[codes]
    m[codes, m.shape[1] - n[codes] + position] = values
    return m


def judge_many(m: np.ndarray, prior_sigma: np.ndarray, alpha: float, factor: float) -> pd.DataFrame:
    """:func:`judge_series` of many series at once (rows of :func:`right_aligned`): one row of
    :class:`Judged`'s fields per series, ``first_run`` −1 where there is no step."""
    n = np.isfinite(m).sum(axis=1)
    t = noise.t_quantile(alpha, noise.PRIOR_DF)
    center, width, _, spread = bands(m[:, :-1], prior_sigma, alpha, factor)
    d = m[:, -1] - center if m.shape[1] else np.full(len(m), np.nan)
    suspect = verdicts.direction(d, width) != 0
    out = pd.DataFrame(
        {
            "verdict": np.where(suspect, SUSPECT, verdicts.quiet(width, factor)),
            "change": np.expm1(d),
            "change_low": np.expm1(d - spread),
            "change_high": np.expm1(d + spread),
            "detectable": np.expm1(width),
            "first_run": np.where(suspect, n - 1, -1),
            "confirmations": suspect.astype(int),
            "n_runs": n,
            "reason": "",
        }
    )
    newest = verdicts.PERSISTENT_RUNS
    if m.shape[1] > MIN_RUNS:  # a persistent change (verdicts.persistent)
        center2, width2, sigma2, _ = bands(m[:, :-newest], prior_sigma, alpha, factor)
        up, down = verdicts.persistent(verdicts.direction(m[:, -newest:] - center2[:, None], width2[:, None]))
        for i in np.flatnonzero((n >= MIN_RUNS + 1) & (up | down)):
            v = m[i, -n[i] :]
            step = _step(v, center2[i], width2[i], sigma2[i], t, verdicts.REGRESSION if up[i] else verdicts.IMPROVEMENT)
            out.loc[i, list(out.columns)] = [*asdict(step).values()]
    short = n < MIN_RUNS
    out.loc[short, "verdict"] = INCONCLUSIVE
    out.loc[short, ["change", "change_low", "change_high"]] = math.nan
    out.loc[short, ["detectable", "first_run", "confirmations"]] = [math.inf, -1, 0]
    out.loc[short, "reason"] = [f"{k} runs of history" for k in n[short]]
    return out


def judge_series(v: np.ndarray, prior_sigma: float, alpha: float, factor: float) -> Judged:
    """The verdict of one series of log run values (time order) at its newest run."""
    v = np.asarray(v, dtype=float)
    row = judge_many(v[None, :], np.array([prior_sigma]), alpha, factor).iloc[0].to_dict()
    first = int(row.pop("first_run"))
    return Judged(**{**row, "first_run": first if first >= 0 else None})


def _step(v: np.ndarray, center: float, width: float, sigma: float, t: float, verdict: str) -> Judged:
    """A persistent change: where it started (asv's step detection, kept where every run since is beyond
    the band), its size and interval."""
    n = len(v)
    first = n - verdicts.PERSISTENT_RUNS
    steps = step_detect.detect_steps(list(np.exp(v)))
    if len(steps) > 1:
        p = steps[-1][0]
        sign = 1 if verdict == verdicts.REGRESSION else -1
        beyond = (verdicts.direction(v[p:] - center, width) == sign).all()
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
    ok = runs[runs["status"] == "ok"].sort_values("started_at", kind="stable")
    for (machine, env, device), g in ok.groupby(["machine", "env_name", "device"], dropna=False, sort=False):
        run_ids, wide, is_canary = _wide(g)
        for i in range(2, len(wide)):
            before = wide[:i]
            with warnings.catch_warnings():  # a combination no earlier run measured: an all-NaN column
                warnings.simplefilter("ignore", RuntimeWarning)
                dev = wide[i] - np.nanmedian(before, axis=0)
                canary_before = np.nanmedian(before[:, is_canary], axis=1)
            canary, suite = dev[is_canary], dev[~is_canary]
            canary, suite = canary[~np.isnan(canary)], suite[~np.isnan(suite)]
            if not len(canary) or not len(suite):
                continue
            c_shift = float(np.median(canary))
            c_width = band(canary_before[~np.isnan(canary_before)], math.nan, alpha, factor)[1]
            share = float((np.sign(suite) == np.sign(c_shift)).mean())
            changed = abs(c_shift) > c_width and share >= MACHINE_SHARE
            out.append((machine, env, device, run_ids[i], c_shift, float(np.median(suite)), share, changed))
    cols = ["machine", "env_name", "device", "run_id", "canary_shift", "suite_shift", "share_with_canary", "changed"]
    return pd.DataFrame(out, columns=cols)


def _wide(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(run ids in time order, runs × combinations of ``log_value`` (NaN where a run lacks one; a run's
    first value where it has several), which combinations are the canary's). ``g``: rows sorted by time."""
    run_codes, run_ids = pd.factorize(g["run_id"])
    combos = g.groupby([*series.COMBINATION], dropna=False, observed=True, sort=False)
    combo_codes = combos.ngroup().to_numpy()
    wide = np.full((len(run_ids), combos.ngroups), np.nan)
    first = ~pd.DataFrame({"r": run_codes, "c": combo_codes}).duplicated().to_numpy()
    wide[run_codes[first], combo_codes[first]] = g["log_value"].to_numpy(dtype=float)[first]
    suites = np.empty(combos.ngroups, dtype=object)
    suites[combo_codes] = g["suite"].astype(str).to_numpy()
    return np.asarray(run_ids), wide, suites == "canary"


def scan(
    runs: pd.DataFrame, factor: float = verdicts.FACTOR, alpha: float = verdicts.ALPHA
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every series' verdict (``runs``: :func:`series.run_values`) and the machine changes found (both
    empty where no run has an ok value: a store of A/B runs only, say)."""
    ok, codes, firsts = order = series.ordered(runs)
    if ok.empty:
        machines = pd.DataFrame(columns=["machine", "env_name", "device", "run_id", "changed"])
        machines["changed"] = machines["changed"].astype(bool)
        return pd.DataFrame(columns=[*series.SERIES, "verdict", "change", "n_runs"]), machines
    prior = series.noise_table(runs, order)["history_prior"].to_numpy()
    m = right_aligned(codes, firsts, ok["log_value"].to_numpy())
    keys = ok.loc[firsts, series.SERIES].reset_index(drop=True)
    table = pd.concat([keys, judge_many(m, prior, alpha, factor)], axis=1)
    lasts = np.r_[firsts[1:], len(ok)] - 1
    ids = ok["run_id"].to_numpy()
    first = table["first_run"].to_numpy().astype(int)
    table["first_run"] = np.where(first >= 0, ids[firsts + np.maximum(first, 0)], None)
    table["newest_run"] = ids[lasts]
    for column in ("started_at", "value", "unit"):
        table["newest_at" if column == "started_at" else column] = ok[column].iloc[lasts].to_numpy()
    _kernels(table, ok, firsts, lasts, first)
    injected = ok.groupby(codes)["injected"].last()  # the newest run's fault, if any
    table["injected"] = injected.reindex(range(len(table))).astype(object).where(lambda x: x.notna(), None)
    machines = machine_changes(runs, alpha, factor)
    where = ["machine", "env_name", "device", "run_id"]
    moved = set(machines.loc[machines["changed"], where].itertuples(index=False, name=None))
    for i in np.flatnonzero(table["verdict"].isin(FLAGS).to_numpy()):
        r = table.iloc[i]
        tail = ids[firsts[i] + (first[i] if first[i] >= 0 else lasts[i] - firsts[i]) : lasts[i] + 1]
        on_moved = any((r["machine"], r["env_name"], r["device"], run) in moved for run in tail)
        if on_moved or r["suite"] == "canary":  # the canary's code never changes
            table.loc[i, "verdict"] = MACHINE_CHANGED
    return plain_text(table), plain_text(machines)


def _kernels(table: pd.DataFrame, ok: pd.DataFrame, firsts: np.ndarray, lasts: np.ndarray, first: np.ndarray) -> None:
    """Each series' kernel in the run before its change (the step's first run, or the newest run where there
    is no step) and in its newest run, and what they say (:func:`verdicts.kernel_note`)."""
    kernel = ok["kernel"].astype(object).to_numpy() if "kernel" in ok else np.full(len(ok), None, dtype=object)
    start = firsts + np.where(first >= 0, first, lasts - firsts)
    before, newest = kernel[np.maximum(start - 1, firsts)], kernel[lasts]
    table["kernel_before"] = [k if isinstance(k, str) else None for k in before]
    table["kernel_newest"] = [k if isinstance(k, str) else None for k in newest]
    table["kernels"] = [verdicts.kernel_note(b, a) for b, a in zip(before, newest, strict=True)]


def plain_text(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with categorical columns (rows read with ``categorical=True``) back to text."""
    return df.astype({c: "str" for c in df.columns[df.dtypes == "category"]})


def exit_code(table: pd.DataFrame) -> int:
    """1 when a regression persists in the newest runs (of the code, not the machine), else 0."""
    return verdicts.exit_code(table["verdict"]) if not table.empty else 0


def render(table: pd.DataFrame, machines: pd.DataFrame, fmt: str, factor: float, alpha: float) -> str:
    rule = (
        f"a series is flagged when its newest run leaves its band: beyond {factor - 1:.0%} and beyond "
        f"t(1 - {alpha:g}/2) x its own run-to-run noise; two newest runs beyond it on one side make a "
        "regression or an improvement, one a suspect (false alarms measured on identical code: docs/verdicts.md); "
        f"a plain-suite series also by its share of processes in the slow mode (Fisher, p < {alpha:g}: "
        "docs/allocator.md)"
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
    flagged = table[table["verdict"].isin([*FLAGS, MACHINE_CHANGED])].sort_values("change", ascending=False)
    if flagged.empty:
        return head
    show = flagged.copy()
    spans = zip(show.change, show.change_low, show.change_high, strict=True)
    show["change"] = [f"{c:+.1%} [{lo:+.1%}, {hi:+.1%}]" for c, lo, hi in spans]
    show["band"] = show["detectable"].map(lambda x: f"±{x:.1%}")
    cols = ["verdict", "change", "band", "confirmations", "first_run", "machine", "suite", "case", "batch"]
    cols += ["device", "layout", "dtype", "mode", "injected", "slow_share", "kernels"]
    optional = ("injected", "slow_share", "kernels")  # shown where any row has one
    cols = [c for c in cols if c not in optional or (c in show and show[c].notna().any())]
    if fmt == "markdown":
        return head + "\n\n" + tables.markdown_table(show, cols)
    return head + "\n" + show[cols].to_string(index=False)


def selected_runs(store, machines: list[str] | None = None, since: str | None = None, where: str = "") -> pd.DataFrame:
    """The runs ``regressions`` and the report's "what changed" judge: of each machine (all, or those named),
    from ``since`` on or else from its newest month folders that hold :data:`verdicts.WINDOW_RUNS` runs,
    the newest of each environment through :func:`verdicts.window`. ``where`` names the store in errors."""
    keys = store.machine_keys(machines)
    if machines and not keys:
        raise ArgumentError(f"--machine {', '.join(machines)}: no such machine in {redact(where)}")
    if not since:
        return verdicts.window(store.recent_runs(keys, verdicts.WINDOW_RUNS))
    try:
        start = pd.Timestamp(since, tz="UTC")
    except ValueError:
        raise ArgumentError(f"--since {since!r} is not a date (accepted: YYYY-MM-DD[THH:MM])") from None
    chosen = store.runs(keys=keys, months=store.months_since(since))
    return verdicts.window(chosen[chosen["started_at"] >= start])


def run(results_dir: str, machines: list[str] | None, since: str | None, factor: float, alpha: float, fmt: str) -> int:
    verdicts.check(factor, alpha)
    store = results.store_of(results_dir)
    chosen = selected_runs(store, machines, since, results_dir)
    rows = results.rounds_of_runs(store, chosen, series.READ, categorical=True)
    table, changes = scan(series.run_values(rows), factor, alpha)
    table = processes.in_history(table, rows, alpha, MIN_RUNS)
    print(render(table, changes, fmt, factor, alpha))
    return exit_code(table)
