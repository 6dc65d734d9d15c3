"""``convbench compare``: did anything get slower between two sets of results? A yes/no you can trust.

Selectors pick runs from the store: ``key=value[,key=value...]`` with keys ``machine`` (a name, or
``name-<hardware id>`` where one name covers two machines), ``env``, ``torch``, ``commit`` (prefix),
``date`` (prefix of the run's UTC start, e.g. ``2026-11-24`` or ``2026-11-24T01``) and ``run`` (a run id).
Only the selected runs' files are read. Where a selector matches several runs, their samples are pooled.

For each benchmark and combination on both sides: the ratio of medians (candidate / baseline), a
two-sided Mann-Whitney U test on the samples (confidence-interval overlap where samples are missing),
and a verdict: ``slower`` / ``faster`` (significant at ``alpha`` and beyond ``factor``), ``unchanged``,
``new failure``, ``fixed``. Across machines, raw latencies say nothing about regressions, so each side's
latency is divided by the latency of its dense equivalent on the same machine, and those relative
latencies are compared instead (the output says so).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bench_lib.analysis import results
from bench_lib.catalogue.cases import key_values
from bench_lib.errors import ArgumentError

SELECTOR_KEYS = {
    "machine": "machine",
    "env": "env_name",
    "torch": "torch_version",
    "commit": "commit_hash",
    "date": "run_date",
    "run": "run_id",
}
COMBINATION = ["benchmark", "case", "batch", "device", "layout", "dtype", "mode"]
# the store's columns a comparison reads (the rest of a row is never loaded)
READ = [
    *("run_id", "machine", "hardware_id", "started_at", "commit_hash", "env_name", "torch_version"),
    *("suite_version", "suite", "metric", "unit", "case", "batch", "device", "layout", "dtype", "mode"),
    *("round", "status", "value", "n_samples", "samples"),
]


@dataclass(frozen=True)
class Selector:
    text: str
    terms: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Selector:
        terms = {}
        try:
            items = key_values(filter(None, (t.strip() for t in text.split(","))), f"selector {text!r}:")
        except ValueError as e:
            raise ArgumentError(str(e)) from None
        for key, value in items:
            if key not in SELECTOR_KEYS:
                raise ArgumentError(f"selector {text!r}: unknown key {key!r}; accepted: {', '.join(SELECTOR_KEYS)}")
            terms[key] = value
        if not terms:
            raise ArgumentError(f"selector {text!r} is empty; write key=value[,key=value...]")
        return cls(text, terms)

    def select_runs(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The store's runs this selector can match (every term but ``torch``, which rows carry): what
        ``compare`` reads, and nothing more."""
        terms = {k: v for k, v in self.terms.items() if k != "torch"}
        table = runs.rename(columns={"started_at": "run_date"})
        return runs.loc[Selector(self.text, terms).select(table).index] if terms else runs

    def partitions(self, store) -> tuple[set[str] | None, set[str] | None]:
        """The machine folders and months this selector can touch (None: all), so only they are listed."""
        machine, date = self.terms.get("machine"), self.terms.get("date")
        keys = None
        if machine:  # its name, or a prefix of name-<hardware id>; select() then decides row by row
            found = {k for k, _ in store.location.partitions("runs")}
            keys = {k for k in found if k.rsplit("-", 1)[0] == machine or k.startswith(machine)}
        return keys, store.months([date]) if date else None

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=df.index)
        for key, value in self.terms.items():
            column = df[SELECTOR_KEYS[key]]
            hit = column.map(self._matcher(key, value, df)).fillna(False).astype(bool)
            if key == "machine" and "hardware_id" in df:  # a name, or name-<hardware id> where one is shared
                by = "run_id" if "run_id" in df else "machine"  # one machine per run: decide once per run
                pairs = df[[by, "machine", "hardware_id"]].drop_duplicates(by)
                keyed = {
                    k: f"{str(m).split('-')[0]}-{h}".startswith(value)
                    for k, m, h in pairs.itertuples(index=False, name=None)
                }
                hit = hit | df[by].map(keyed).astype(bool)
            if not (mask & hit).any():
                seen = sorted({str(v) for v in column.dropna().unique()})[:8]
                raise ArgumentError(
                    f"selector {self.text!r}: {key}={value} matches nothing"
                    f"{' after the other terms' if mask.sum() < len(mask) else ''}; seen: {', '.join(seen)}"
                )
            mask &= hit
        return df[mask]

    @staticmethod
    def _matcher(key: str, value: str, df: pd.DataFrame):
        """A function of one cell, evaluated once per distinct cell (``Series.map`` with a dict)."""
        column = df[SELECTOR_KEYS[key]]
        uniques = column.dropna().unique()
        if key == "date":
            text = {t: pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S") for t in uniques}
            return {t: x.startswith(value) for t, x in text.items()}
        if key in ("commit", "torch"):
            return {u: str(u).startswith(value) for u in uniques}
        return {u: str(u) == value for u in uniques}


def pooled(df: pd.DataFrame) -> pd.DataFrame:
    """One row per combination: the samples of every matching run pooled, their median as the value
    (the median of the runs' values where no run kept samples); ``runs`` counts the runs."""
    both = _newest_method(df)
    if both.empty:
        return both
    keys = ["machine", *COMBINATION]
    order = both.assign(_ok=both["status"] == "ok").sort_values(["_ok", "run_date"], kind="stable")
    rep = order.drop_duplicates(keys, keep="last").set_index(keys)  # the newest ok row, else the newest
    rep["runs"] = both.groupby(keys, dropna=False).size()
    ok = both[both["status"] == "ok"]
    group = pd.Series(ok.groupby(keys, dropna=False, sort=False).ngroup().to_numpy(), index=ok.index)
    index = pd.MultiIndex.from_frame(ok[keys].drop_duplicates().reset_index(drop=True))  # in ngroup's order
    lengths = np.array([len(x) if x is not None else 0 for x in ok["samples"]])
    flat = np.concatenate([x for x in ok["samples"] if x is not None] or [np.empty(0)]).astype(float)
    flat_group = np.repeat(group.to_numpy(), lengths)
    order = np.argsort(flat_group, kind="stable")
    counts = np.bincount(flat_group, minlength=len(index))
    pieces = np.split(flat[order], np.cumsum(counts)[:-1])
    samples = pd.Series([p if len(p) else None for p in pieces], index=index)
    medians = pd.Series([float(np.median(p)) if len(p) else np.nan for p in pieces], index=index)
    by_values = ok.groupby(keys, dropna=False, sort=False)["value"].median()
    rep["samples"] = samples.reindex(rep.index)
    rep["value"] = medians.reindex(rep.index).fillna(by_values.reindex(rep.index))
    rep.loc[rep["status"] != "ok", "value"] = np.nan
    rep["samples"] = [x if isinstance(x, list | np.ndarray) else None for x in rep["samples"]]
    return rep.drop(columns="_ok").reset_index()


def _version_key(version: str) -> tuple:
    """``"0.1.0-12"`` → ``(0, 1, 0, 12)``: method versions compare as numbers, not as text."""
    return tuple(int(x) if x.isdigit() else x for x in str(version).replace("-", ".").split("."))


def _newest_method(d: pd.DataFrame) -> pd.DataFrame:
    """Only the rows of each combination's newest method version (``SUITE_VERSION``): samples taken by
    different methods are never pooled."""
    if d.empty:
        return d
    keys = ["machine", *COMBINATION]
    ranks = sorted(d["version"].astype(str).unique(), key=_version_key)
    rank = d["version"].astype(str).map({v: i for i, v in enumerate(ranks)})
    newest = rank.groupby([d[k] for k in keys], dropna=False, sort=False).transform("max")
    return d[rank == newest]


def _relative(d: pd.DataFrame) -> pd.DataFrame:
    """Latency divided by the dense equivalent's median latency on the same side, machine and settings."""
    keys = ["machine", "benchmark", "batch", "device", "layout", "dtype", "mode"]
    dense = d.set_index([*keys, "case"])["value"]
    out = d.copy()
    idx = list(zip(*[d[k] for k in keys], d["dense_case"], strict=True))
    base = np.array([dense.get(i, np.nan) for i in idx], dtype=float)
    out["value"] = d["value"] / base
    out["samples"] = [
        None if s is None or not np.isfinite(b) else [x / b for x in s] for s, b in zip(d["samples"], base, strict=True)
    ]
    out["ci_low"], out["ci_high"] = d["ci_low"] / base, d["ci_high"] / base
    return out


def _samples(value: Any) -> list[float] | None:
    """Samples usable by the rank test (at least 3), or None (absent, NaN after a merge, too few)."""
    return list(value) if isinstance(value, list | tuple | np.ndarray) and len(value) >= 3 else None


def rank_tests(pairs: list[tuple[list[float], list[float]]]) -> list[float]:
    """Two-sided Mann-Whitney p-values of many (baseline, candidate) sample pairs, computed in batches of
    pairs with the same sizes (one vectorised scipy call each instead of one call per pair)."""
    p = [math.nan] * len(pairs)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, (b, c) in enumerate(pairs):
        by_shape.setdefault((len(b), len(c)), []).append(i)
    for idx in by_shape.values():
        bs = np.array([pairs[i][0] for i in idx])
        cs = np.array([pairs[i][1] for i in idx])
        for i, value in zip(
            idx, np.atleast_1d(mannwhitneyu(bs, cs, alternative="two-sided", axis=1).pvalue), strict=True
        ):
            p[i] = float(value)
    return p


def _verdict(
    b: dict[str, Any], c: dict[str, Any], factor: float, alpha: float, p_value: float = math.nan
) -> dict[str, Any]:
    if b["version"] != c["version"]:
        why = f"not comparable: method version {b['version']} vs {c['version']}"
        return {"verdict": why, "ratio": math.nan, "p_value": math.nan, "test": "-"}
    if b["status"] != "ok" or c["status"] != "ok":
        if b["status"] == "ok" and c["status"] == "failed":
            return {"verdict": "new failure", "ratio": math.nan, "p_value": math.nan, "test": "-"}
        if b["status"] == "failed" and c["status"] == "ok":
            return {"verdict": "fixed", "ratio": math.nan, "p_value": math.nan, "test": "-"}
        return {"verdict": f"{b['status']} / {c['status']}", "ratio": math.nan, "p_value": math.nan, "test": "-"}
    if not (np.isfinite(b["value"]) and np.isfinite(c["value"])):  # across machines: a dense baseline is missing
        why = "not comparable: no dense equivalent measured on both sides"
        return {"verdict": why, "ratio": math.nan, "p_value": math.nan, "test": "-"}
    ratio = c["value"] / b["value"]
    bs, cs = _samples(b["samples"]), _samples(c["samples"])
    if bs and cs:
        p = p_value if not math.isnan(p_value) else rank_tests([(bs, cs)])[0]
        significant, test = p < alpha, "mann-whitney"
    elif all(np.isfinite([b["ci_low"], b["ci_high"], c["ci_low"], c["ci_high"]])):
        p = math.nan
        significant, test = c["ci_low"] > b["ci_high"] or c["ci_high"] < b["ci_low"], "ci-overlap"
    else:
        p, significant, test = math.nan, False, "none (no samples or bounds)"
    verdict = "unchanged"
    if significant and ratio > factor:
        verdict = "slower"
    elif significant and ratio < 1 / factor:
        verdict = "faster"
    return {"verdict": verdict, "ratio": ratio, "p_value": p, "test": test}


def compare(
    df: pd.DataFrame, baseline: str, candidate: str, factor: float = 1.05, alpha: float = 0.01
) -> tuple[pd.DataFrame, str]:
    """The comparison table (sorted by ratio, worst first) and a note on how it was made."""
    if factor < 1:
        raise ArgumentError(f"--factor {factor} must be at least 1 (e.g. 1.05 for 5%)")
    base = pooled(Selector.parse(baseline).select(df))
    cand = pooled(Selector.parse(candidate).select(df))
    across = set(base["hardware_id"]) != set(cand["hardware_id"])
    note = "same machine: medians of the measured values compared"
    if across and set(base["machine_name"]) == set(cand["machine_name"]):
        note = (
            f"machine {', '.join(sorted(set(base['machine_name'])))} is other hardware on each side (hardware "
            f"{', '.join(sorted(set(base['hardware_id'])))} vs {', '.join(sorted(set(cand['hardware_id'])))}): "
        )
    if across:
        note = ("" if note.startswith("same") else note) + (
            "across machines: each latency divided by its dense equivalent's on the same machine, and those "
            "relative latencies compared (raw latencies of different machines say nothing about regressions)"
        )
        base = _relative(base[base["metric"] == "latency"])
        cand = _relative(cand[cand["metric"] == "latency"])
        keys = COMBINATION
    else:
        keys = ["machine", *COMBINATION]
    merged = base.merge(cand, on=keys, suffixes=("_b", "_c"))
    rows = []
    fields = ("status", "value", "samples", "ci_low", "ci_high", "version")
    records = merged.to_dict("records")
    testable = [i for i, r in enumerate(records) if _samples(r["samples_b"]) and _samples(r["samples_c"])]
    for i in testable:
        records[i]["samples_b"], records[i]["samples_c"] = (
            _samples(records[i]["samples_b"]),
            _samples(records[i]["samples_c"]),
        )
    p_values = dict(
        zip(testable, rank_tests([(records[i]["samples_b"], records[i]["samples_c"]) for i in testable]), strict=True)
    )
    for i, r in enumerate(records):
        b = {k: r[f"{k}_b"] for k in fields}
        c = {k: r[f"{k}_c"] for k in fields}
        rows.append(
            {
                **{k: r[k] for k in keys},
                "unit": r["unit_b"],
                "baseline": r["value_b"],
                "candidate": r["value_c"],
                "runs": f"{r['runs_b']}/{r['runs_c']}",
                **_verdict(b, c, factor, alpha, p_values.get(i, math.nan)),
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("ratio", ascending=False, na_position="first").reset_index(drop=True)
    return table, note


def exit_code(table: pd.DataFrame) -> int:
    return 1 if not table.empty and table["verdict"].isin(["slower", "new failure"]).any() else 0


def render(table: pd.DataFrame, note: str, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps({"note": note, "rows": json.loads(table.to_json(orient="records"))}, indent=2)
    if table.empty:
        return f"No combination is present on both sides. ({note})"
    show = table.copy()
    show["ratio"] = show["ratio"].map(lambda x: f"{x:.3f}" if np.isfinite(x) else "-")
    show["p_value"] = show["p_value"].map(lambda x: f"{x:.2g}" if np.isfinite(x) else "-")
    for col in ("baseline", "candidate"):
        show[col] = show[col].map(lambda x: f"{x:.4g}" if isinstance(x, float) and np.isfinite(x) else "-")
    show = show[show["verdict"] != "skipped / skipped"]  # counted in the header, not listed
    columns = [
        "verdict",
        "ratio",
        "p_value",
        "benchmark",
        "case",
        "batch",
        "device",
        "layout",
        "dtype",
        "mode",
        "baseline",
        "candidate",
        "unit",
        "runs",
    ]
    cols = [c for c in columns if c in show]
    counts = table["verdict"].value_counts().to_dict()
    head = f"{len(table)} combinations: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {note}"
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for _, r in show.iterrows()]
        return head + "\n\n" + "\n".join(lines)
    return head + "\n" + show[cols].to_string(index=False)


def run(results_dir: str, baseline: str, candidate: str, factor: float, alpha: float, fmt: str) -> int:
    """Read only the runs the two selectors can match (the store's ``runs`` table is the index), compare."""
    store = results.store_of(results_dir)
    chosen = []
    for text in (baseline, candidate):
        selector = Selector.parse(text)
        keys, months = selector.partitions(store)
        chosen.append(selector.select_runs(store.runs(keys=keys, months=months)))
    chosen = pd.concat(chosen)
    df = results.of_runs(store, chosen.drop_duplicates("run_id"), derive=False, columns=READ)
    if df.empty:
        raise ArgumentError(f"--results {results_dir}: the selected runs hold no measurements")
    table, note = compare(df, baseline, candidate, factor, alpha)
    print(render(table, note, fmt))
    return exit_code(table)
