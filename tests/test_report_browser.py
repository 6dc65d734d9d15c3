"""The report in a real browser: headless Chromium opens the page built from the committed results, as a
user would at 1400 px, and checks that it renders without console errors, that every figure was drawn,
that points carry hover data, that every table became a DataTable, and saves screenshots under
``report/screenshots/``. Skipped where Chromium or its driver is absent (Debian: ``apt-get install
chromium chromium-driver``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench_lib.analysis import report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
WIDTH, HEIGHT = 1400, 1000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="no Chromium and chromedriver on this machine"),
]

# Bokeh's documents, once every root is drawn: figures drawn, hover tools and what their points carry
BOKEH_STATE = """
const docs = (window.Bokeh && Bokeh.documents) || [];
const models = docs.flatMap(d => [...d._all_models.values()]);
const hovers = models.filter(m => m.type === "HoverTool" && m.tooltips && m.tooltips.length);
const sources = models.filter(m => m.type === "ColumnDataSource");
const column = (s, name) => s.data.get ? s.data.get(name) : s.data[name];
const pointed = sources.filter(s => column(s, "case_text") !== undefined);
const views = Object.keys(Bokeh.index || {}).length;
return {roots: docs.reduce((n, d) => n + d.roots().length, 0), views, hovers: hovers.length,
        pointed: pointed.length,
        pointed_rows: pointed.reduce((n, s) => n + column(s, "case_text").length, 0)};
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not any((ROOT / "results" / "store").glob("runs/*/*/*.parquet")):
        pytest.skip("no committed results under results/")
    out = tmp_path_factory.mktemp("report")
    index, _ = report.build(str(ROOT / "results"), str(out), str(ROOT / "analysis"), publish=False, run_notebooks=False)
    return index


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def test_report_renders_in_a_browser_with_hover_data_and_tables(page, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    html = page.read_text()
    figures = html.count("data-figure=")
    browser.get(page.as_uri())
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.execute_script("return window.Bokeh && Object.keys(Bokeh.index || {}).length") >= figures)
    tables = html.count('<table id="itables_')
    wait.until(lambda d: d.execute_script("return document.querySelectorAll('.dt-container').length") >= tables)

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    state = browser.execute_script(BOKEH_STATE)
    assert figures >= 5 and state["roots"] == figures and state["views"] >= figures
    assert state["hovers"] >= figures - 1  # every figure has a hover tool (the heatmap's is its own)
    assert state["pointed_rows"] > 100  # the points behind the scatters carry their case for the tooltip
    assert tables >= 6
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH  # nothing runs off

    shots = ROOT / "report" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "first-screen.png"))
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(full, 16000))
    browser.save_screenshot(str(shots / "whole-page.png"))
    browser.set_window_size(WIDTH, HEIGHT)
    assert (shots / "first-screen.png").stat().st_size > 10_000


SCRIPT = '<img src=x onerror="window.__pwned=1">'


def _hostile_store(root: Path) -> Path:
    """A copy of the committed store plus a teammate's run (an identity convbench writes) whose rows carry a
    script in their case, device and reason (strings a fleet member controls that reach tables and hover),
    and a run whose machine name carries it (the notebooks' "no data" notes list machine names)."""
    store = root / "results" / "store"
    shutil.copytree(ROOT / "results" / "store", store)
    _plant(store, "20261124T201324Z-a2dbd3ff", "mate", "1" * 12, hostile_rows=True)  # the default grid
    _plant(store, "20261124T201201Z-a2dbd3ff", "teammate" + SCRIPT, "2" * 12)  # the paper grid
    return store.parent


def _plant(store: Path, source: str, machine: str, hardware_id: str, hostile_rows: bool = False) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench_lib.store.disk import machine_key

    run_id = f"{source}-{hardware_id[:4]}"
    for table in ("runs", "measurements"):
        t = pq.read_table(next((ROOT / "results" / "store").glob(f"{table}/*/*/{source}.parquet")))
        n = t.num_rows
        columns = {"run_id": [run_id] * n, "machine": [machine] * n, "hardware_id": [hardware_id] * n}
        if table == "measurements" and hostile_rows:
            columns["case"] = [c + SCRIPT if i % 50 == 0 else c for i, c in enumerate(t["case"].to_pylist())]
            columns["device"] = [d + SCRIPT if i % 50 == 1 else d for i, d in enumerate(t["device"].to_pylist())]
            columns["reason"] = [SCRIPT] * n
        for name, values in columns.items():
            i = t.schema.get_field_index(name)
            t = t.set_column(i, name, pa.array(values, type=t.schema.field(i).type))
        folder = store / table / f"machine_key={machine_key(machine, hardware_id)}" / "month=2026-11"
        folder.mkdir(parents=True)
        pq.write_table(t, folder / f"{run_id}.parquet")


def test_a_teammates_script_runs_nowhere_in_the_page_or_a_notebook(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    results = _hostile_store(tmp_path)
    notebooks = tmp_path / "analysis"  # the energy notebook: "no data" notes name the machines (no meter here)
    notebooks.mkdir()
    shutil.copy(ROOT / "analysis" / "04_energy_memory.ipynb", notebooks)
    with pytest.warns(UserWarning, match="skipping run '20261124T201201Z-a2dbd3ff-2222': its machine"):
        index, problems = report.build(str(results), str(tmp_path / "report"), str(notebooks), publish=False)
    assert problems == []
    pages = [index, *sorted((tmp_path / "report" / "notebooks").glob("*.html"))]
    assert len(pages) == 2 and "&lt;img src=x onerror=" in index.read_text()  # the string is there, as text
    for page in pages:
        browser.get(page.as_uri())
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
        if page == index:  # tables and figures drawn: what would run a script has had its chance
            count = page.read_text().count('<table id="itables_')
            WebDriverWait(browser, 60).until(
                lambda d, n=count: d.execute_script("return document.querySelectorAll('.dt-container').length") >= n
            )
        ran = browser.execute_script(
            "return [window.__pwned === undefined, document.querySelectorAll('img[src=x]').length]"
        )
        assert ran == [True, 0], page.name
