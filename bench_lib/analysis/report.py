"""``convbench report``: execute every notebook on the chosen results and write one self-contained HTML page.

Notebooks in ``analysis/`` take papermill-style parameters (a cell tagged ``parameters``; the values are
injected in a cell after it, tagged ``injected-parameters``, as papermill does) and are executed with
nbclient. The page embeds every figure (PNG, base64) and table, loads nothing from the network, and puts a
summary table on top. ``asv publish`` then writes asv's own site into ``html/``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat

from bench_lib import __version__
from bench_lib.files import write_atomic

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.8rem 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; } th { background: #f0f0f0; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
img { max-width: 100%; } .note { color: #555; } nav a { margin-right: 1rem; }
.error { color: #a00; }
"""


def notebooks(analysis_dir: str | Path = "analysis") -> list[Path]:
    return sorted(Path(analysis_dir).glob("[0-9][0-9]_*.ipynb"))


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Insert ``name = value`` assignments after the cell tagged ``parameters`` (papermill's convention)."""
    source = "# Parameters injected by convbench report\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    for i, c in enumerate(nb.cells):
        if "parameters" in c.get("metadata", {}).get("tags", []):
            nb.cells.insert(i + 1, cell)
            return nb
    nb.cells.insert(0, cell)
    return nb


def execute(path: Path, parameters: dict[str, Any], timeout_s: int = 600) -> nbformat.NotebookNode:
    """Run a notebook headlessly with ``parameters``; an error is kept in the notebook, not raised."""
    from nbclient import NotebookClient

    nb = inject_parameters(nbformat.read(path, as_version=4), parameters)
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    return nb


def _markdown(text: str) -> str:
    import mistune

    return mistune.html(text)


def _output_html(output: nbformat.NotebookNode) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(output.get('text', ''))}</pre>"
    if kind == "error":
        trace = "\n".join(output.get("traceback", []))
        import re

        trace = re.sub(r"\x1b\[[0-9;]*m", "", trace)
        return f"<pre class='error'>{html.escape(trace)}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        png = data["image/png"]
        png = png if isinstance(png, str) else base64.b64encode(png).decode()
        return f"<img src='data:image/png;base64,{png.strip()}'>"
    if "text/html" in data:
        return data["text/html"]
    if "text/markdown" in data:
        return _markdown(data["text/markdown"])
    if "text/plain" in data:
        return f"<pre>{html.escape(data['text/plain'])}</pre>"
    return ""


def notebook_html(nb: nbformat.NotebookNode) -> str:
    """Markdown cells and code outputs (not the code): what a reader of the report needs."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(_markdown(cell.source))
        elif cell.cell_type == "code":
            parts += [_output_html(o) for o in cell.get("outputs", [])]
    return "\n".join(p for p in parts if p)


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def build(
    results_dir: str = "results",
    out_dir: str = "report",
    analysis_dir: str = "analysis",
    machines: list[str] | None = None,
    publish: bool = True,
) -> tuple[Path, list[str]]:
    """Execute every notebook and write ``out_dir/index.html``; return its path and any notebook errors."""
    from bench_lib.analysis import figures, results, tables

    results_abs = str(Path(results_dir).resolve())
    parameters = {"results_dir": results_abs, "machines": machines or []}
    df = results.load(results_abs, machines=machines)  # refuses a folder without results, before any notebook
    summary = tables.summary_table(df) if not df.empty else df
    sections, problems = [], []
    for path in notebooks(analysis_dir):
        nb = execute(path, parameters)
        problems += [f"{path.name}: {e}" for e in errors(nb)]
        executed_dir = Path(out_dir) / "notebooks"
        executed_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed_dir / path.name)
        anchor = path.stem
        sections.append((anchor, path.stem, notebook_html(nb)))
    page = _page(df, summary, sections, results_abs)
    headline = figures.flops_vs_latency(df) if not df.empty else None
    if headline is not None:  # the headline figure on its own, for README files and chat messages
        (Path(out_dir) / "flops_vs_latency.png").write_bytes(figures.png(headline))
    out = Path(out_dir) / "index.html"
    write_atomic(out, page)
    if publish:
        _asv_publish(Path(results_dir).resolve().parent, results_abs)
    return out, problems


def _page(df, summary, sections, results_dir: str) -> str:
    machines = ", ".join(sorted(df["machine"].unique())) if not df.empty else "none"
    nav = " ".join(f"<a href='#{a}'>{html.escape(t)}</a>" for a, t, _ in sections)
    if summary is not None and not summary.empty:
        table = summary.to_html(index=False, float_format=lambda x: f"{x:.3g}")
    else:
        table = "<p class='note'>No dense/variant pairs measured yet: nothing to summarise.</p>"
    body = "\n".join(f"<section id='{a}'><h2>{html.escape(t)}</h2>\n{h}</section>" for a, t, h in sections)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>convbench report</title><style>{STYLE}</style></head>
<body>
<h1>convbench report</h1>
<p class="note">Results: {html.escape(results_dir)} · machines: {html.escape(machines)} · built {stamp} with
convbench {__version__}. Speedup = latency of the dense equivalent / latency of the variant, same machine,
device, layout, dtype, mode and batch; efficiency = speedup / theoretical FLOP reduction (1 = the FLOP cut
fully paid off).</p>
<nav>{nav}</nav>
<h2>Summary: how much of the FLOP cut did the hardware deliver?</h2>
{table}
{body}
</body></html>
"""


def _asv_publish(project: Path, results_dir: str) -> None:
    """asv's files rebuilt from the store into the project's asv results folder, then ``asv publish``."""
    from bench_lib.store import asv_files, store_path
    from bench_lib.store.query import Store

    conf = project / "asv.conf.json"
    if not conf.exists():
        return
    asv_dir = project / json.loads(conf.read_text()).get("results_dir", "results/asv")
    asv_files.write(Store(store_path(results_dir)), asv_dir)
    out = subprocess.run(
        [sys.executable, "-m", "asv", "publish", "--config", str(conf)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    if out.returncode != 0:
        print(
            f"asv publish failed (the report is still written):\n{out.stdout[-2000:]}{out.stderr[-2000:]}",
            file=sys.stderr,
        )
