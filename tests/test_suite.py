import collections
import re
import subprocess
import sys

import pytest

from bench_lib.catalogue import registry
from bench_lib.catalogue.cases import Case
from bench_lib.errors import ArgumentError
from bench_lib.suite import asv_adapter, grids, runner
from bench_lib.suite.combination import METRICS, PARAM_NAMES, SUITES, Combination


@pytest.mark.parametrize("name", grids.GRIDS)
def test_grid_params_are_strings_and_ints_only(name):
    g = grids.grid(name, ["cpu-1t", "cpu-2t", "cuda:0"])
    for suite_name in SUITES:
        if not g.has(suite_name):
            continue
        for values in g.params(suite_name):
            assert values and all(isinstance(v, str | int) and not isinstance(v, bool) for v in values)
        for case in g.cases[suite_name]:
            assert str(Case.parse(case)) == case
    assert any(g.has(s) for s in SUITES)


def test_default_grid_has_every_op_and_block_at_two_stage_shapes_with_their_dense_equivalents():
    g = grids.grid("default", ["cpu-1t", "cpu-2t"])
    cases = [Case.parse(c) for c in g.cases["ops"] + g.cases["blocks"]]
    for name in registry.names("op") + registry.names("block"):
        sizes = {c.height for c in cases if c.workload == name and not c.params.get("dense")}
        assert len(sizes) == 2, (name, sizes)
    texts = {str(c) for c in cases}
    assert all(str(c.dense_equivalent()) in texts for c in cases)
    assert g.cases["networks"] == [f"{n}@224x224" for n in registry.names("network")]
    assert g.batches == [1, 8, 64] and g.layouts == ["nchw", "channels_last"] and g.dtypes == ["float32"]
    assert g.modes == {"ops": ["inference"], "blocks": ["inference", "training"], "networks": ["inference"]}


def test_nightly_adds_half_types_op_training_and_four_stage_shapes():
    g = grids.grid("nightly", ["cpu-1t", "cuda:0"])
    assert g.dtypes == ["float32", "bfloat16", "float16"]
    assert g.modes["ops"] == ["inference", "training"] and g.modes["networks"] == ["inference"]
    assert {Case.parse(c).height for c in g.cases["ops"]} == {56, 28, 14, 7}
    assert g.cases["blocks"] == grids.block_cases()  # blocks at their early and late stage, as in default
    kept = [c for c in g.all_combinations() if g.excluded(c) is None]
    assert {(c.device, c.dtype) for c in kept if c.dtype == "float16"} == {("cuda:0", "float16")}
    assert {c.dtype for c in kept if c.device == "cpu-1t"} == {"float32", "bfloat16"}
    per_device = collections.Counter((c.device, c.metric) for c in kept)
    # ops 28 cases x 2 batches x 2 layouts x 2 dtypes x 2 modes, blocks 25 x 16 less the 12 dense equivalents
    # trained at batch 8 (x 2 layouts x 2 dtypes), networks 7 x 2 batches x 2 layouts in float32: what fits an
    # hour per CPU device with 5 rounds (docs/verdicts.md)
    # and the plain suite: the 7 ops at 56x56 in fresh processes, batch 1, NCHW, inference, 2 dtypes
    assert per_device[("cpu-1t", "latency")] == 448 + 448 - 48 + 28 + 14
    assert {c.dtype for c in kept if c.suite == "networks" and c.device == "cpu-1t"} == {"float32"}
    plain = [c for c in kept if c.suite == "plain"]
    assert {(c.device, c.metric, c.batch, c.layout, c.mode) for c in plain} == {
        ("cpu-1t", "latency", 1, "nchw", "inference")
    }
    assert len(plain) == 14 and {Case.parse(c.case).height for c in plain} == {56}


def test_full_grid_leaves_nothing_out():
    g = grids.grid("full", ["cpu-1t"])
    assert {Case.parse(c).height for c in g.cases["blocks"]} == {56, 28, 14, 7}
    assert g.modes["networks"] == ["inference", "training"] and g.batches == grids.FULL_BATCHES
    out = {g.excluded(c) for c in g.all_combinations()} - {None}
    assert out == {"the plain suite times latency only (peak memory and energy are the ops suite's)"}
    assert all(g.excluded(c) is None for c in g.all_combinations() if c.suite != "plain")


def test_smoke_grid_covers_every_benchmark_method_in_a_few_combinations():
    g = grids.grid("smoke", ["cpu-1t"])
    p = runner.plan(g)
    assert {x.metric for x in p.selected} == set(METRICS)
    assert {x.suite for x in p.selected} == {"ops", "blocks", "plain"}
    assert len(p.selected) <= 13
    assert set(p.excluded) == {"the plain suite times latency only (peak memory and energy are the ops suite's)"}


@pytest.mark.parametrize(
    ("metric", "params", "reason"),
    [
        (
            "latency",
            ("pointwise(in=64,out=64,bias=false)@56x56", 64, "cpu-1t", "nchw", "float32", "inference"),
            "batch 64 is not a batch of this grid on cpu (1 and 8)",
        ),
        (
            "latency",
            ("pointwise(in=64,out=64,bias=false)@56x56", 8, "cuda:0", "nchw", "float32", "inference"),
            "batch 8 is not a batch of this grid on cuda (1 and 64)",
        ),
        (
            "latency",
            ("mbconv(in=24,out=24,k=3,dense=true)@56x56", 8, "cpu-1t", "nchw", "float32", "training"),
            "dense equivalents are trained at batch 1 here",
        ),
        ("latency", ("mbconv(in=24,out=24,k=3,dense=true)@56x56", 1, "cpu-1t", "nchw", "float32", "training"), None),
        (
            "peak_memory",
            ("mbconv(in=24,out=24,k=3)@56x56", 1, "cpu-2t", "nchw", "float32", "inference"),
            "CPU peak memory is measured at cpu-1t",
        ),
        (
            "energy",
            ("mbconv(in=24,out=24,k=3)@56x56", 1, "cpu-1t", "nchw", "float32", "inference"),
            "CPU energy is measured with all cores",
        ),
        ("latency", ("mbconv(in=24,out=24,k=3)@56x56", 8, "cpu-2t", "channels_last", "float32", "training"), None),
    ],
)
def test_default_grid_exclusions_say_why(metric, params, reason, monkeypatch):
    monkeypatch.setattr(grids.devices, "physical_cores", lambda: 2)
    g = grids.grid("default", ["cpu-1t", "cpu-2t", "cuda:0"])
    got = g.excluded(Combination.of("blocks", metric, params))
    assert (got is None) if reason is None else reason in got


def test_combination_names_match_asv_parameterised_names():
    p = Combination.of("ops", "latency", ("depthwise(in=32)@14x14", 1, "cpu-1t", "nchw", "float32", "inference"))
    assert p.asv_name == (
        "bench_ops.Latency.track_latency('depthwise(in=32)@14x14', 1, 'cpu-1t', 'nchw', 'float32', 'inference')"
    )


def test_plan_filters_by_regex_and_chunks_keep_order():
    g = grids.grid("smoke", ["cpu-1t"])
    only = runner.plan(g, bench=r"Latency.*depthwise")
    assert [(x.suite, x.params[0]) for x in only.selected] == [
        ("ops", "depthwise(in=32,k=3,bias=false)@14x14"),
        ("plain", "depthwise(in=32,k=3,bias=false)@14x14"),
    ]
    assert [x.suite for x in runner.plan(g, bench=r"bench_plain").selected] == ["plain"]
    everything = runner.plan(g).selected
    assert [x for chunk in asv_adapter.chunks(everything, 3) for x in chunk] == everything
    assert [len(c) for c in asv_adapter.chunks(everything, 3)][:1] == [3]


def test_summary_counts_skips_failures_and_missing():
    planned = [
        Combination.of("ops", "latency", (f"c{i}", 1, "cpu-1t", "nchw", "float32", "inference")) for i in range(4)
    ]

    def event(i, status, **kw):
        return {
            "metric": "latency",
            "suite": "ops",
            "status": status,
            "params": dict(zip(PARAM_NAMES, planned[i].params, strict=True)),
            **kw,
        }

    events = [
        event(0, "ok", measure_s=1.5),
        event(1, "skipped", reason="no GPU"),
        event(2, "failed", error="RuntimeError: boom", measure_s=0.5),
    ]
    s = runner.summarise(planned, events, {}, wall_s=4.0, interrupted=False)
    assert (s.ok, s.skipped, s.missing) == (1, {"no GPU": 1}, 1)
    assert [e for _, e in s.failed] == [
        "RuntimeError: boom",
        "no result: asv timed out or its worker died (see the asv log)",
    ]
    assert s.measure_s == 2.0 and s.overhead_fraction == 0.5
    # the run's own windows (peaks, canaries, breakdowns) are inside measurements too, as the runner timed
    # them: a canary's event is not counted a second time
    params = dict(case="gemm(n=512)", batch=1, device="cpu-1t", layout="nchw", dtype="float32", mode="inference")
    canary = {"suite": "canary", "metric": "latency", "params": params, "status": "ok", "measure_s": 0.25}
    s = runner.summarise(planned, [*events, canary], {}, 4.0, interrupted=False, run_level_s=1.0)
    assert (s.combinations_s, s.run_level_s, s.measure_s, s.overhead_fraction) == (2.0, 1.0, 3.0, 0.25)
    assert s.as_dict()["measure_s"] == 3.0 and s.as_dict()["run_level_s"] == 1.0
    assert (s.ok, len(s.failed)) == (1, 2)  # the canary is no combination
    # combinations never attempted (interrupted before their chunk) are not failures
    s = runner.summarise(planned, events, {}, 4.0, interrupted=True, attempted={planned[0], planned[1]})
    assert s.missing == 0 and len(s.failed) == 1


def test_machine_entry_is_added_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_MACHINE", "testbox")
    path = tmp_path / "asv-machine.json"
    path.write_text('{"other": {"machine": "other"}, "version": 1}')
    assert runner.ensure_machine_entry(path) == ("testbox", True)
    assert runner.ensure_machine_entry(path) == ("testbox", False)
    import json

    data = json.loads(path.read_text())
    assert set(data) == {"other", "testbox", "version"} and data["testbox"]["machine"] == "testbox"
    assert {"gpu", "driver", "torch"} <= set(data["testbox"])


def test_git_head_outside_a_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(ArgumentError, match="is not a git checkout with at least one commit"):
        runner.git_head(tmp_path)


def test_asv_command_never_quick_records_samples_and_passes_rounds(tmp_path):
    g = grids.grid("smoke", ["cpu-1t"])
    chunk = runner.plan(g).selected[:2]
    cmd = runner.asv_command(tmp_path, "/py", "abc123", "box", runner.RunOptions(), chunk, 3)
    assert "--quick" not in cmd and "--record-samples" in cmd
    assert cmd[cmd.index("--set-commit-hash") + 1] == "abc123" and cmd[cmd.index("-E") + 1] == "existing:/py"
    assert cmd[cmd.index("-a") + 1] == "rounds=3" and cmd.count("--bench") == 2
    assert "-a" not in runner.asv_command(tmp_path, "/py", "abc123", "box", runner.RunOptions(), chunk, 1)


def test_latency_gets_the_rounds_and_other_metrics_run_once_in_chunks_of_their_own():
    g = grids.grid("default", ["cpu-1t", "cpu-2t"])
    selected = runner.plan(g, r"bench_ops\.").selected
    planned = runner.chunk_plan(selected, 50, 4)
    latency = [c for c in selected if c.metric == "latency"]
    assert [len(ch) for r, ch in planned if r == 4] == [50, 50, 12] and len(latency) == 112
    assert all(c.metric == "latency" for r, ch in planned if r == 4 for c in ch)
    assert sum(len(ch) for r, ch in planned if r == 1) == len(selected) - 112
    assert grids.grid("nightly", ["cpu-1t"]).rounds == grids.NIGHTLY_ROUNDS and g.rounds == 1


def test_a_combination_round_trips_through_its_event_and_refuses_a_wrong_arity():
    c = Combination.of(
        "blocks", "energy", ("mbconv(in=16,out=16,k=3)@14x14", 8, "cpu-2t", "nchw", "float32", "training")
    )
    assert Combination.from_event({**c.as_event(), "status": "ok"}) == c
    assert c.benchmark == "bench_blocks.Energy.track_energy" and c.unit == "joules"
    with pytest.raises(ValueError, match="a combination takes 6 parameters"):
        Combination.of("ops", "latency", ("depthwise@14x14", 1))


def test_run_ids_started_in_the_same_second_differ():
    ids = {runner.new_run_id("0123456789abcdef" * 2) for _ in range(5000)}  # 40 random bits: no birthday here
    assert len(ids) == 5000
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-01234567-[0-9a-f]{10}", i) for i in ids)


def test_the_full_grid_leaves_no_batch_out_on_any_device():
    g = grids.grid("full", ["cpu-1t", "cuda:0"])
    for device in ("cpu-1t", "cuda:0"):
        for batch in (2, 16, 128):
            c = Combination.of("ops", "latency", (g.cases["ops"][0], batch, device, "nchw", "float32", "inference"))
            assert g.excluded(c) is None


def test_the_cli_reads_grids_dtypes_layouts_and_modes_from_their_owners_without_importing_torch():
    # the parser offers the real tables (no copies to drift), read only when a value is checked
    code = (
        "import sys\n"
        "from bench_lib.cli import build_parser\n"
        "p = build_parser()\n"
        "print('torch' in sys.modules)\n"
        "print(p.parse_args(['run', '--grid', 'fasternet']).grid, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "fasternet", "True"]
    from bench_lib.cli import main

    assert main(["run", "--grid", "weekly"]) == 2
    assert main(["measure", "depthwise", "--dtype", "float8"]) == 2


def test_asvs_discovery_builds_the_grid_the_runner_planned_for_named_devices(monkeypatch):
    # the runner plans grid(name, --device ...) and hands the devices to asv's processes as CONVBENCH_DEVICES:
    # both must build one grid (a GPU-only smoke run once listed cuda:1 twice, and asv selected nothing)
    for name in ("smoke", "papers", "default"):
        planned = grids.grid(name, ["cuda:1"])
        monkeypatch.setenv("CONVBENCH_DEVICES", "cuda:1")
        assert grids.grid(name).devices == planned.devices == ["cuda:1"]
        monkeypatch.delenv("CONVBENCH_DEVICES")
