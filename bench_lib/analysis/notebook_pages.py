"""The report's notebooks: each executed with the results' parameters (papermill's way: a cell tagged
``parameters`` overridden by an injected one), kept as .ipynb and as a static page, errors collected.
"""

from __future__ import annotations

import base64
import html
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from bench_lib.files import write_atomic

# Notebooks executed at once: each is a kernel process whose start (imports) is CPU-bound, so more than
# the cores only queues (the measured gain: docs/verdicts.md, "Run time").
NOTEBOOK_WORKERS = max(1, min(4, os.cpu_count() or 1))


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
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "running over TCP" warnings on the terminal
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    return nb


def markdown(text: str) -> str:
    """Markdown to HTML with raw HTML escaped: a notebook's markdown outputs quote the store's strings."""
    import mistune

    return mistune.create_markdown(escape=True)(text)


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
        return markdown(data["text/markdown"])
    if "text/plain" in data:
        return f"<pre>{html.escape(data['text/plain'])}</pre>"
    return ""


def notebook_html(nb: nbformat.NotebookNode) -> str:
    """Markdown cells and code outputs (not the code): what a reader of the report needs."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(markdown(cell.source))
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


def run_all(analysis_dir: str, out: Path, results_abs: str, machines: list[str] | None):
    """Execute the notebooks, ``NOTEBOOK_WORKERS`` at a time (one progress line each, in the order they end),
    keep each as .ipynb and as a static page; links and errors come back in the notebooks' order."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    paths = notebooks(analysis_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=NOTEBOOK_WORKERS) as pool:
        futures = {pool.submit(_run_notebook, path, out, results_abs, machines): path for path in paths}
        done: dict[Path, list[str]] = {}
        for i, future in enumerate(as_completed(futures), 1):
            path = futures[future]
            done[path] = future.result()
            found = done[path]
            progress(f"notebook {i}/{len(paths)} {path.stem}{f' ({len(found)} errors)' if found else ''}", started)
    problems = [f"{path.name}: {e}" for path in paths for e in done[path]]
    links = [(f"notebooks/{path.stem}.html", path.stem, len(done[path])) for path in paths]
    return problems, links


def _run_notebook(path: Path, out: Path, results_abs: str, machines: list[str] | None) -> list[str]:
    """Execute one notebook and write it as .ipynb and as a static page; return its errors."""
    nb = execute(path, {"results_dir": results_abs, "machines": machines or []})
    nbformat.write(nb, out / path.name)
    body = f"<p><a href='../index.html'>← report</a></p>{notebook_html(nb)}"
    write_atomic(out / f"{path.stem}.html", document(path.stem, body))
    return errors(nb)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { border-bottom: 2px solid #444; margin-bottom: 0.3rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #bbb; }
.note { color: #555; font-size: 0.9rem; } nav { position: sticky; top: 0; background: #fff; padding: 0.4rem 0;
  border-bottom: 1px solid #eee; z-index: 10; font-size: 0.9rem; } nav a { margin-right: 0.9rem; }
ul.headline li { margin: 0.35rem 0; } .verdicts span { margin-right: 1rem; }
table.dataTable { font-size: 0.8rem; } .figure { margin: 1rem 0; overflow-x: auto; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
img { max-width: 100%; } .error { color: #a00; } th, td { white-space: nowrap; }
.regression, .suspect { color: #b2182b; font-weight: 600; } .improvement { color: #2166ac; font-weight: 600; }
"""


def document(title: str, body: str, scripts: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style>
{scripts}</head>
<body>
{body}
</body></html>
"""


def progress(what: str, started: float) -> None:
    print(f"report: {what} [{time.monotonic() - started:.1f} s]", file=sys.stderr, flush=True)
