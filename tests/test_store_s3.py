"""The store on an S3-compatible object store: moto's S3 server, started on this machine for the test."""

import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
from test_store import GROUPED, event, run

from bench_lib.analysis import results
from bench_lib.cli import main
from bench_lib.store import store_path
from bench_lib.store.query import Store
from bench_lib.store.writer import RunWriter

pytest.importorskip("moto.server", reason="moto[server] (a dev dependency) runs the S3-compatible server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bucket_url():
    """``s3://convbench/team`` on a moto server of this test's own, with a bucket made for it."""
    import pyarrow.fs as pafs

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until the server accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto's server did not start"
                time.sleep(0.1)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
                mp.setenv(key, value)
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
            fs.create_dir("convbench")
            yield f"s3://convbench/team?endpoint_override=127.0.0.1:{port}&scheme=http"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_fleet_shares_one_bucket(bucket_url, tmp_path, capsys):
    where = store_path(bucket_url)
    nights = [
        ("box", "a" * 12, "2026-11-24", 1.0),
        ("box", "a" * 12, "2026-11-25", 1.0),
        ("gpu", "b" * 12, "2026-11-25", 0.5),
    ]
    for i, (machine, hw, day, scale) in enumerate(nights):
        r = run(f"{day.replace('-', '')}T010000Z-aaaaaaaa-{i:06d}", machine=machine, hw=hw, day=day)
        RunWriter(where, r).save(r, [event(median=1e-3 * scale), event(GROUPED, median=4e-4 * scale)])
    store = Store(where)
    keys = {k for k, _ in store.location.partitions("measurements")}
    assert keys == {"box-aaaaaaaa", "gpu-bbbbbbbb"}  # each machine wrote only its own folder
    assert store.sql("SELECT machine, count(*) AS n FROM measurements GROUP BY ALL ORDER BY 1").n.tolist() == [4, 2]
    df = results.load(bucket_url, history=True)
    assert len(df) == 6 and df[df.case == GROUPED].speedup.round(6).unique().tolist() == [2.5]
    assert (
        main(
            [
                "compare",
                "--results",
                bucket_url,
                "--baseline",
                "date=2026-11-24",
                "--candidate",
                "machine=box,date=2026-11-25",
            ]
        )
        == 0
    )
    assert "2 combinations" in capsys.readouterr().out
    out = tmp_path / "all.csv"
    assert main(["export", "--results", bucket_url, "--out", str(out), "--history"]) == 0
    assert len(pd.read_csv(out)) == 6


def test_a_bucket_url_is_shown_without_its_credentials_and_report_reads_it(bucket_url, tmp_path, capsys):
    from bench_lib.analysis import report

    where = store_path(bucket_url)
    r = run("20261124T010000Z-aaaaaaaa-000009", machine="box", hw="a" * 12, day="2026-11-24")
    RunWriter(where, r).save(r, [event(median=1e-3), event(GROUPED, median=4e-4)])
    index, _ = report.build(bucket_url, str(tmp_path / "report"), publish=False, run_notebooks=False)
    assert "Results: s3://convbench/team?endpoint_override=" in index.read_text()  # the URL, read as a URL
    secret = bucket_url.replace("s3://", "s3://test:top-secret@").replace("/team", "/nothing-here")
    assert main(["regressions", "--results", secret]) == 2
    err = capsys.readouterr().err
    assert "no convbench results there" in err and "top-secret" not in err and "s3://convbench/nothing-here" in err
    assert main(["regressions", "--results", secret + "&secret_key=top-secret-2"]) == 2  # pyarrow refuses it
    err = capsys.readouterr().err
    assert "is not a store URL pyarrow can open" in err and "top-secret" not in err and "secret_key=***" in err
