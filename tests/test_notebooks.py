"""Every notebook executes headlessly: on the committed results and on a single machine without energy data."""

import re
import shutil
import warnings
from pathlib import Path

import pytest

from bench_lib.analysis import notebook_pages, report

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_all(results_dir: Path):
    outputs = {}
    for path in notebook_pages.notebooks(ROOT / "analysis"):
        nb = notebook_pages.execute(path, {"results_dir": str(results_dir), "machines": []})
        assert notebook_pages.errors(nb) == [], path.name
        outputs[path.name] = notebook_pages.notebook_html(nb)
    return outputs


def test_the_notebooks_exist_without_outputs():
    import nbformat

    paths = notebook_pages.notebooks(ROOT / "analysis")
    assert [p.stem for p in paths] == [
        "01_flops_vs_latency",
        "02_roofline",
        "03_layouts_threads",
        "04_energy_memory",
        "05_compare_machines",
        "06_paper_reproduction",
        "07_networks",
    ]
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), p.name
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), p.name


def test_notebooks_say_plainly_when_there_is_no_data(tmp_path):
    # one machine, latency only: no energy, no memory, one layout, one thread count
    from fake_results import latency_row, machine, result_file, stored

    root = tmp_path / "results"
    box = machine(root, "lonely-box")
    result_file(
        box,
        "a" * 40,
        "env",
        {
            "bench_ops.Latency.track_latency": latency_row(
                [1e-3, 4e-4],
                ["standard(in=64,out=64,k=3,bias=false)@14x14", "grouped(in=64,out=64,k=3,g=4,bias=false)@14x14"],
                samples=[[1e-3] * 5, [4e-4] * 5],
            )
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_all(stored(root))
    assert "No data for energy" in out["04_energy_memory.ipynb"]
    assert "No data for both layouts" in out["03_layouts_threads.ipynb"]
    assert "<img" in out["01_flops_vs_latency.ipynb"]


def test_report_page_is_self_contained(tmp_path):
    """The report of the committed results, its notebooks run on them: no notebook raised (each error would
    be one of ``problems``), the headline figure drawn, and nothing fetched from elsewhere."""
    if not any((ROOT / "results" / "store").glob("runs/*/*/*.parquet")):
        pytest.skip("no committed results under results/")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    page, problems = report.build(
        str(tmp_path / "results"), str(tmp_path / "report"), str(ROOT / "analysis"), publish=False
    )
    html = page.read_text()
    assert problems == []
    assert "At a glance: how much of the FLOP cut" in html and "What changed since the history" in html
    assert html.count("data-figure=") >= 5 and html.count('<table id="itables_') >= 6
    # nothing is fetched: no script, stylesheet or image from elsewhere (the JavaScript is inline)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", html)
    assert page.stat().st_size < 6 * 2**20
    pages = sorted((tmp_path / "report" / "notebooks").glob("*.html"))
    assert len(pages) == len(notebook_pages.notebooks(ROOT / "analysis"))
    assert "data:image/png;base64," in pages[0].read_text()


def test_notebooks_run_side_by_side_but_report_in_their_own_order(tmp_path, monkeypatch):
    """The first notebook ends only after the last one has started, so they end out of order; links and
    errors still come back in the notebooks' order, each error under its own notebook."""
    import threading

    import nbformat

    analysis = tmp_path / "analysis"
    analysis.mkdir()
    names = ["01_first", "02_second", "03_third"]
    for name in names:
        nbformat.write(nbformat.v4.new_notebook(), analysis / f"{name}.ipynb")
    last_started = threading.Event()

    def execute(path, parameters, timeout_s=600):
        if path.stem == names[-1]:
            last_started.set()
        elif path.stem == names[0]:
            assert last_started.wait(timeout=60), "the notebooks did not run side by side"
        out = nbformat.v4.new_output("error", ename="E", evalue=path.stem, traceback=[])
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[out])])

    monkeypatch.setattr(notebook_pages, "execute", execute)
    monkeypatch.setattr(notebook_pages, "NOTEBOOK_WORKERS", len(names))
    problems, links = notebook_pages.run_all(str(analysis), tmp_path / "out", str(tmp_path), None)
    assert problems == [f"{n}.ipynb: E: {n}" for n in names]
    assert links == [(f"notebooks/{n}.html", n, 1) for n in names]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{n}.ipynb" for n in names] + [f"{n}.html" for n in names]
    )
