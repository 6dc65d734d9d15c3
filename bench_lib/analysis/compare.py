"""``convbench compare``: did anything get slower between two sets of runs? A verdict with its noise.

Selectors pick runs from the store: ``key=value[,key=value...]`` with keys ``machine`` (a name, or
``name-<hardware id>`` where one name covers two machines), ``env``, ``torch`` (a release or a build:
``2.13`` and ``2.13.0`` match ``2.13.0+cpu``), ``commit`` (prefix), ``date`` (prefix of the run's UTC start,
e.g. ``2026-11-24`` or ``2026-11-24T01``), ``run`` (a run id), ``side`` (an A/B run's side: ``A``, ``B``),
and the filters ``device`` (``cpu-1t``, ``cuda:0``), ``dtype``, ``layout``, ``batch``, ``mode``.

The evidence is one value per run (its best round minimum: :func:`bench_lib.analysis.series.run_values`;
each round is a separate process), never the pooled samples of a run: those share a process and a
minute, and a rank test on them calls the machine's between-process noise significant. Per combination:

- ``change``: candidate / baseline − 1, of the medians of each side's run values;
- its noise: the run-to-run spread of the combination on this machine, from its history in the store
  (the runs a verdict reads, :func:`bench_lib.analysis.verdicts.window`, of the same machine and
  environment), or from the spread of the compared runs' rounds where there is no history
  (:mod:`bench_lib.analysis.series`);
- ``detectable``: the smallest change this comparison could call at confidence 1 − ``alpha``;
- ``verdict``: :func:`bench_lib.analysis.verdicts.pairwise` (``slower`` / ``faster`` beyond both ``factor``
  and ``detectable``; ``unchanged`` when a change of ``factor`` was detectable and none was seen;
  ``inconclusive`` when it was not: the text shows "inconclusive (noise ±x%)"); ``new failure``, ``fixed``,
  or why the sides cannot be compared.

Across hardware (two machines, or two devices of one: ``device=cpu-1t`` against ``device=cuda:0``) the
question is another: which is faster, and by how much. Each combination both ran gets the candidate's speed
over the baseline's with an interval from each side's own run-to-run noise, ``faster`` / ``slower`` /
``same speed`` / ``inconclusive``, each side's speed relative to its own dense equivalent, and the family
summaries (:mod:`bench_lib.analysis.machines`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from bench_lib.analysis import ab_compare, machines, noise, processes, results, series, tables, verdicts
from bench_lib.analysis.selectors import ROW_KEYS, SELECTOR_KEYS, Selector, version_key, version_matches  # noqa: F401
from bench_lib.catalogue.cases import Case
from bench_lib.errors import ArgumentError
from bench_lib.store import redact
from bench_lib.suite.combination import benchmark_name

COMBINATION = series.COMBINATION


def _plain(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` less those of A/B runs (they carry a side; an A/B run is judged by its pairs, not as runs),
    and less the ``samples`` only an A/B comparison reads (arrays, which no run value needs)."""
    rows = rows.drop(columns="samples", errors="ignore")
    return rows[rows["side"].isna()] if "side" in rows else rows


def side(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per combination of one side (``runs``: :func:`series.run_values`, only each combination's
    newest method version): the median of its ok runs' log values, how many runs and rounds, its status,
    its environment and method version, and any injected fault."""
    if runs.empty:
        return pd.DataFrame(columns=[*keys, "log_value", "n_runs", "rounds", "status", "suite_version", "kernel"])
    if "kernel" not in runs:
        runs = runs.assign(kernel=None)
    rank = runs["suite_version"].astype(str).map(version_key)
    newest = rank == rank.groupby([runs[k] for k in keys], dropna=False, sort=False).transform("max")
    runs = runs[newest]
    ok = runs[runs["status"] == "ok"]
    g = runs.assign(is_ok=runs["status"] == "ok").groupby(keys, dropna=False, sort=False)
    out = g.agg(
        any_ok=("is_ok", "any"),
        last_status=("status", "last"),
        suite_version=("suite_version", "last"),
        env_name=("env_name", "last"),
        unit=("unit", "last"),
        hardware_id=("hardware_id", "last"),
        injected=("injected", "first"),  # the first fault named (None where no run had one)
        kernel=("kernel", "last"),  # the newest run's kernel (None where none was recorded)
        **{k: (k, "last") for k in ("machine", "device") if k not in keys and k in runs},
    )
    out.insert(0, "status", np.where(out.pop("any_ok"), "ok", out.pop("last_status")))
    out["injected"] = out["injected"].astype(object).where(out["injected"].notna(), None)
    gk = ok.groupby(keys, dropna=False, sort=False)
    out["log_value"] = gk["log_value"].median()
    out["n_runs"] = gk.size()
    out["rounds"] = gk["n_rounds"].sum()
    out["n_runs"] = out["n_runs"].fillna(0).astype(int)
    out["rounds"] = out["rounds"].fillna(0).astype(int)
    return out.reset_index()


def _relative_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Each ok latency round divided by its dense equivalent's in the same run and round (NaN without one)."""
    lat = rows[rows["metric"] == "latency"].copy()
    dense_of = {c: _dense(c) for c in lat["case"].unique()}
    keys = ["run_id", "round", "suite", "batch", "device", "layout", "dtype", "mode"]
    dense = lat[lat["status"] == "ok"].set_index([*keys, "case"])["value"]
    lookup = list(zip(*[lat[k] for k in keys], lat["case"].map(dense_of), strict=True))
    base = dense.reindex(pd.MultiIndex.from_tuples(lookup, names=[*keys, "case"])).to_numpy()
    lat["value"] = lat["value"].to_numpy() / base
    lat["min"] = np.nan  # a round's fastest sample has no dense counterpart: its value (median ratio) stands
    lat.loc[~np.isfinite(lat["value"]) & (lat["status"] == "ok"), "status"] = "no dense equivalent"
    lat["unit"] = "ratio to dense"
    return lat


def _dense(case_text: str) -> str | None:
    try:
        return str(Case.parse(case_text).dense_equivalent())
    except ValueError:
        return None


def compare(
    rows: pd.DataFrame,
    baseline: str,
    candidate: str,
    factor: float = verdicts.FACTOR,
    alpha: float = verdicts.ALPHA,
    history: pd.DataFrame | Callable[[], pd.DataFrame] | None = None,
    runs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, str]:
    """The comparison table (worst change first) and a note on how it was made.

    ``rows``: the store's per-round rows of the runs the selectors can match, ``machine`` the display name
    and ``run_date`` the run's start; ``history``: per-round rows of the runs the noise is estimated from
    (default: ``rows``), or a function reading them (called only where needed); ``runs``: the store's runs
    rows of the selected runs (an A/B comparison names what differs between the sides from them). Where both
    selectors pick sides of the same A/B runs, the comparison is paired (:mod:`ab_compare`).
    """
    verdicts.check(factor, alpha)
    b_rows = Selector.parse(baseline).select(rows)
    c_rows = Selector.parse(candidate).select(rows)
    if ab_compare.is_paired(b_rows, c_rows):
        table, note = ab_compare.compare(b_rows, c_rows, factor, alpha, runs)
        return processes.with_shares(table, b_rows, c_rows, ["machine", *COMBINATION], alpha), note
    b_rows, c_rows = _plain(b_rows), _plain(c_rows)
    rows = rows.drop(columns="samples", errors="ignore")  # only an A/B comparison reads them
    if _hardware_differs(b_rows, c_rows) or _devices_differ(b_rows, c_rows):
        return across(rows, b_rows, c_rows, history, factor, alpha)
    note = "same machine: median of each side's run values (a run: the fastest sample of its fastest round)"
    keys = ["machine", *COMBINATION]
    history = _history_rows(rows, history)
    b, c, noise_of = _sides(b_rows, c_rows, history, keys)
    merged = b.merge(c, on=keys, suffixes=("_b", "_c"))
    rows_out = [_row(r, keys, noise_of, factor, alpha) for r in merged.to_dict("records")]
    table = pd.DataFrame(rows_out)
    if not table.empty:
        table = table.sort_values("change", ascending=False, na_position="first").reset_index(drop=True)
    return processes.with_shares(table, b_rows, c_rows, keys, alpha), note


def _history_rows(rows: pd.DataFrame, history) -> pd.DataFrame:
    """The rows noise is read from: ``history`` (rows, or a function reading them), else ``rows``; no A/B run."""
    return _plain(rows if history is None else history() if callable(history) else history)


def _hardware_differs(b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> bool:
    """The sides ran on other hardware, or on other machines of the same hardware (a fleet's identical
    instances are machines of their own)."""
    return any(set(b_rows[k]) != set(c_rows[k]) for k in ("hardware_id", "machine"))


def _devices_differ(b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> bool:
    """The two sides ran on no device in common (``device=cpu-1t`` against ``device=cuda:0``)."""
    return not set(b_rows["device"]) & set(c_rows["device"])


def _sides(b_rows: pd.DataFrame, c_rows: pd.DataFrame, history: pd.DataFrame, keys: list[str]):
    """Each side's combinations (:func:`side`) and every series' noise in ``history``."""
    table = series.noise_table(series.run_values(history))
    noise_of = dict(
        zip(
            table[series.SERIES].itertuples(index=False, name=None),
            zip(table["sigma"], table["df"], table["noise_source"], strict=True),
            strict=True,
        )
    )
    return side(series.run_values(b_rows), keys), side(series.run_values(c_rows), keys), noise_of


def across(rows, b_rows, c_rows, history, factor: float, alpha: float) -> tuple[pd.DataFrame, str]:
    """Two machines or devices: each combination's speed ratio, interval and verdict (:mod:`machines`)."""
    keys = [k for k in COMBINATION if k != "device"] if _devices_differ(b_rows, c_rows) else list(COMBINATION)
    history = _history_rows(rows, history)
    dense = _vs_dense(b_rows, c_rows, keys)
    # a machine's noise is its own whatever the environment's path: its environments' runs pool
    pooled = [df.assign(env_name=POOLED_ENV) for df in (history, b_rows, c_rows)]
    b, c, noise_of = _sides(pooled[1], pooled[2], pd.concat(pooled).drop_duplicates(), keys)
    merged = b.merge(c, on=keys, how="outer", suffixes=("_b", "_c"))
    out = []
    for r in merged.to_dict("records"):
        sides = _stand_in(_noise(r, "_b", noise_of), _noise(r, "_c", noise_of))
        out.append({**_describe(r, keys), **machines.row(r, sides, factor, alpha)})
        out[-1].update(dense.get(tuple(r[k] for k in keys), {}))
    table = pd.DataFrame(out)
    if not table.empty:
        table = table.sort_values("ratio", na_position="last").reset_index(drop=True)
    return table, _across_note(rows, b_rows, c_rows)


POOLED_ENV = "every environment of the machine"


def _stand_in(b: tuple, c: tuple) -> tuple[tuple, tuple]:
    """Each side's (sigma, df, source); where one side's noise is unknown (one run of one round) the other
    side's stands in for it, and the source says so."""
    if np.isfinite(b[0]) == np.isfinite(c[0]):
        return b, c
    if np.isfinite(b[0]):
        return b, (b[0], b[1], f"none, the baseline's ({b[2]}) stands in")
    return (c[0], c[1], f"none, the candidate's ({c[2]}) stands in"), c


def _describe(r: dict, keys: list[str]) -> dict:
    """What a row across hardware names: the combination, each side's device, latency, runs and kernel."""
    out = {k: r[k] for k in keys}
    suite = r["suite"]
    out.update(
        benchmark=benchmark_name(suite, r["metric"]) if suite != "canary" else "canary",
        family=machines.family(r["case"]),
        stage=str(r["case"]).rsplit("@", 1)[-1],
        unit=r["unit_b"] if isinstance(r.get("unit_b"), str) else r.get("unit_c"),
    )
    for side_name, x in (("baseline", "_b"), ("candidate", "_c")):
        log_value = r.get(f"log_value{x}")
        out[side_name] = math.exp(log_value) if isinstance(log_value, float) and np.isfinite(log_value) else math.nan
        out[f"device_{side_name}"] = r.get("device", r.get(f"device{x}"))
        out[f"machine_{side_name}"] = r.get(f"machine{x}", r.get("machine"))
        out[f"kernel_{side_name}"] = _text(r.get(f"kernel{x}"))
    out["runs"] = f"{machines.count(r.get('n_runs_b'))}/{machines.count(r.get('n_runs_c'))}"
    out["kernels"] = verdicts.kernel_note(out["kernel_baseline"], out["kernel_candidate"])
    return out


def _vs_dense(b_rows: pd.DataFrame, c_rows: pd.DataFrame, keys: list[str]) -> dict[tuple, dict]:
    """Per combination, each side's speed over its own dense equivalent's in the same runs (dense latency /
    the op's: above 1 the FLOP cut pays off on that hardware)."""
    found: dict[tuple, dict] = {}
    for name, rows in (("vs_dense_baseline", b_rows), ("vs_dense_candidate", c_rows)):
        rel = side(series.run_values(_relative_rows(rows)), keys)
        for r in rel[rel["status"] == "ok"].to_dict("records"):
            found.setdefault(tuple(r[k] for k in keys), {})[name] = math.exp(-r["log_value"])
    return found


def _across_note(rows: pd.DataFrame, b_rows: pd.DataFrame, c_rows: pd.DataFrame) -> str:
    """How a comparison across hardware is made (and which machine name stands for other hardware)."""
    shared = set(b_rows["machine_name"]) & set(c_rows["machine_name"]) if "machine_name" in rows else set()
    hardware = f"{', '.join(sorted(set(b_rows['hardware_id'])))} vs {', '.join(sorted(set(c_rows['hardware_id'])))}"
    other = f"machine {', '.join(sorted(shared))} is other hardware on each side (hardware {hardware}): "
    return (other if shared else "") + (
        "across hardware: ratio = the candidate's speed over the baseline's (baseline latency / candidate "
        "latency: above 1 the candidate is faster), each side the median of its runs, its interval from each "
        "side's own run-to-run noise (docs/machines.md)"
    )


def _noise(r: dict, suffix: str, noise_of: dict[tuple, tuple[float, float, str]]) -> tuple[float, float, str]:
    """(sigma, df, source) of one side's series; NaN where unknown."""
    machine = r.get("machine", r.get(f"machine{suffix}"))
    combination = (r[k] if k in r else r.get(f"{k}{suffix}") for k in COMBINATION)
    key = (machine, r[f"env_name{suffix}"], r[f"suite_version{suffix}"], *combination)
    sigma, df, source = noise_of.get(key, (math.nan, 0.0, "none"))
    return float(sigma), float(df), str(source)


def _row(r: dict, keys: list[str], noise_of: dict, factor: float, alpha: float) -> dict:
    out = {k: r[k] for k in keys}
    out.update(
        benchmark=benchmark_name(r["suite"], r["metric"]) if r["suite"] != "canary" else "canary",
        unit=r["unit_b"],
        baseline=math.exp(r["log_value_b"]) if np.isfinite(r["log_value_b"]) else math.nan,
        candidate=math.exp(r["log_value_c"]) if np.isfinite(r["log_value_c"]) else math.nan,
        runs=f"{r['n_runs_b']}/{r['n_runs_c']}",
        rounds=f"{r['rounds_b']}/{r['rounds_c']}",
        injected=r["injected_c"] if isinstance(r["injected_c"], str) else r["injected_b"],
        kernel_baseline=_text(r.get("kernel_b")),
        kernel_candidate=_text(r.get("kernel_c")),
        kernels=verdicts.kernel_note(_text(r.get("kernel_b")), _text(r.get("kernel_c"))),
        change=math.nan,
        ratio=math.nan,
        detectable=math.nan,
        noise_source="-",
    )
    if r["suite_version_b"] != r["suite_version_c"]:
        why = f"not comparable: method version {r['suite_version_b']} vs {r['suite_version_c']}"
        return {**out, "verdict": why}
    status_b, status_c = r["status_b"], r["status_c"]
    if status_b != "ok" or status_c != "ok":
        verdict = {("ok", "failed"): verdicts.NEW_FAILURE, ("failed", "ok"): verdicts.FIXED}.get((status_b, status_c))
        if "no dense equivalent" in (status_b, status_c):
            verdict = "not comparable: no dense equivalent measured on both sides"
        return {**out, "verdict": verdict or f"{status_b} / {status_c}"}
    sb, db, src_b = _noise(r, "_b", noise_of)
    sc, dc, src_c = _noise(r, "_c", noise_of)
    sb, sc = (sb if np.isfinite(sb) else sc), (sc if np.isfinite(sc) else sb)
    change = r["log_value_c"] - r["log_value_b"]
    mde = noise.detectable(noise.standard_error(sb, r["n_runs_b"], sc, r["n_runs_c"]), min(db, dc), alpha)
    return {
        **out,
        "change": noise.percent(change),
        "ratio": math.exp(change),
        "detectable": noise.percent(mde) if np.isfinite(mde) else math.inf,
        "noise_source": src_c if src_c != "none" else src_b,
        "verdict": verdicts.pairwise(change, mde, factor),
    }


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def exit_code(table: pd.DataFrame) -> int:
    """1 when a combination got slower or newly fails (:data:`verdicts.FAILING`), else 0."""
    return verdicts.exit_code(table["verdict"]) if not table.empty else 0


def verdict_text(row: pd.Series) -> str:
    """The verdict as users read it: ``inconclusive (noise ±12%)``, ``slower (+18%)``."""
    v = row["verdict"]
    if v == verdicts.INCONCLUSIVE:
        d = row["detectable"]
        return f"inconclusive (noise ±{d:.0%})" if np.isfinite(d) else "inconclusive (noise unknown)"
    shift = ", mode shift" if row.get("mode_shift") in (True,) else ""  # the share of slow processes moved
    if v in (verdicts.SLOWER, verdicts.FASTER):
        return f"{v} ({row['change']:+.1%}{shift})"
    return v + (f" ({shift[2:]})" if shift else "")


def render(
    table: pd.DataFrame, note: str, fmt: str = "text", factor: float = verdicts.FACTOR, alpha: float = verdicts.ALPHA
) -> str:
    rule = (
        f"a verdict needs a change beyond {factor - 1:.0%} and beyond the noise at {1 - alpha:.3g} confidence "
        f"(about {alpha:.2g} of unchanged combinations cross the noise by chance; docs/verdicts.md has the rate "
        "measured on identical code)"
    )
    if "pairs" in table:
        rule = (
            f"paired verdicts read the interval at {1 - alpha:.3g} confidence: slower or faster where it excludes "
            f"0 and reaches {factor - 1:.0%}, unchanged where it lies within ±{factor - 1:.0%} (identical sides "
            "cross 0 with chance alpha at most; docs/ab.md has the rates measured on A/A runs)"
        )
    if "family" in table:  # across hardware
        return machines.render(table, note, fmt, factor, alpha)
    if fmt == "json":
        rows = json.loads(table.to_json(orient="records"))
        return json.dumps({"note": note, "rule": rule, "factor": factor, "alpha": alpha, "rows": rows}, indent=2)
    if table.empty:
        return f"No combination is present on both sides. ({note})"
    show = table.copy()
    show["verdict"] = [verdict_text(r) for _, r in show.iterrows()]
    show["change"] = show["change"].map(lambda x: f"{x:+.1%}" if np.isfinite(x) else "-")
    show["detectable"] = show["detectable"].map(lambda x: f"±{x:.1%}" if np.isfinite(x) else "-")
    for col in ("baseline", "candidate"):
        show[col] = show[col].map(lambda x: f"{x:.4g}" if isinstance(x, float) and np.isfinite(x) else "-")
    show = show[show["verdict"] != "skipped / skipped"]  # counted in the header, not listed
    paired = "pairs" in show
    if paired:  # an A/B comparison: the interval of the change, and the pairs it came from
        show["interval"] = [_interval(lo, hi) for lo, hi in zip(show["low"], show["high"], strict=True)]
    columns = ["verdict", "change", "detectable", *(["interval"] if paired else [])]
    columns += ["benchmark", "case", "batch", "device", "layout", "dtype", "mode", "baseline", "candidate", "unit"]
    columns += ["pairs", "injected"] if paired else ["runs", "rounds", "injected"]
    columns += ["slow_share", "kernels"]
    optional = ("injected", "slow_share", "kernels")  # shown where any row has one
    cols = [c for c in columns if c in show and (c not in optional or show[c].notna().any())]
    counts = table["verdict"].value_counts().to_dict()
    head = f"{len(table)} combinations: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {note}. {rule}."
    if fmt == "markdown":
        return head + "\n\n" + tables.markdown_table(show, cols)
    return head + "\n" + show[cols].to_string(index=False)


def _interval(low: float, high: float) -> str:
    return f"{low:+.1%} … {high:+.1%}" if np.isfinite(low) and np.isfinite(high) else "-"


def run(results_dir: str, baseline: str, candidate: str, factor: float, alpha: float, fmt: str) -> int:
    """Read only the runs the two selectors can match (the store's ``runs`` table is the index) and the
    history their noise is estimated from (the same machines' newest runs), compare."""
    store = results.store_of(results_dir)
    chosen, machine_keys = [], set()
    for text in (baseline, candidate):
        selector = Selector.parse(text)
        keys, months = selector.partitions(store)
        picked = selector.select_runs(store.runs(keys=keys, months=months))
        chosen.append(picked)
        machine_keys |= {f"{m}-{str(h)[:8]}" for m, h in zip(picked["machine"], picked["hardware_id"], strict=True)}
    chosen = pd.concat(chosen).drop_duplicates("run_id")
    columns = series.READ_PAIRED if verdicts.is_ab(chosen).any() else series.READ
    rows = results.rounds_of_runs(store, chosen, columns)
    if rows.empty:
        raise ArgumentError(f"--results {redact(results_dir)}: the selected runs hold no measurements")
    history = lambda: _history(store, chosen, machine_keys)  # noqa: E731 (read only by an unpaired comparison)
    table, note = compare(rows, baseline, candidate, factor, alpha, history=history, runs=chosen)
    print(render(table, note, fmt, factor, alpha))
    return exit_code(table)


def _history(store, chosen: pd.DataFrame, machine_keys: set[str]) -> pd.DataFrame:
    """Per-round rows of the runs a verdict reads (:func:`verdicts.window`) up to the newest chosen run,
    restricted to the grids of the chosen runs (where the noise of their combinations is), and the chosen."""
    runs = store.runs(keys=store.machine_keys(machine_keys))
    runs = runs[runs["grid"].isin(set(chosen["grid"])) & (runs["started_at"] <= chosen["started_at"].max())]
    runs = verdicts.window(runs)
    return results.rounds_of_runs(store, pd.concat([runs, chosen]).drop_duplicates("run_id"), series.READ)
