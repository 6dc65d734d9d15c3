import math
import subprocess
import sys

import pytest
import torch

from bench_lib.measure import allocator, devices, harness, memory, metrics, timing
from bench_lib.measure.task import Task
from bench_lib.measure.timing import Measurement


def timed(name: str, samples: int, max_time_s: float, **prepare) -> Measurement:
    """Prepare ``name`` and measure its latency through the measuring service."""
    settings = metrics.Settings(timing={"samples": samples, "max_time_s": max_time_s})
    return metrics.measure(harness.prepare(Task.of(name, **prepare)), "latency", settings).result


def test_measurement_statistics_are_exact():
    m = Measurement(
        samples_s=(1.0, 2.0, 3.0, 4.0, 5.0),
        block=10,
        warmup_calls=3,
        warmup_s=0.1,
        timer_overhead_s=1e-7,
        page_faults_per_call=0.0,
    )
    assert m.median_s == 3.0
    assert m.quartiles_s == (2.0, 4.0) and m.iqr_s == 2.0
    assert m.min_s == 1.0 and m.mean_s == 3.0
    assert m.cv == pytest.approx(math.sqrt(2.5) / 3)
    assert m.relative_iqr == pytest.approx(2 / 3)
    assert m.noisy and m.noisy_reason == "relative IQR 66.7% > 10%"
    assert m.calls == 50
    quiet = Measurement((1.0, 1.01, 0.99, 1.0), 1, 1, 0.0, 0.0, 0.0)
    assert not quiet.noisy and quiet.noisy_reason is None
    assert Measurement((1.0, 1.0), 1, 1, 0.0, 0.0, 0.0).noisy_reason == "only 2 samples"


class FakeClock:
    """A block timer on a fake clock: each call costs `per_call`, each start/stop pair `overhead`."""

    def __init__(self, per_call, overhead):
        self.per_call, self.overhead, self.now, self.calls = per_call, overhead, 0.0, 0

    def call(self):
        self.calls += 1
        self.now += self.per_call


class FakeTimer(devices.BlockTimer):
    def __init__(self, clock):
        self.clock = clock

    def start(self):
        self.t0 = self.clock.now

    def stop(self):
        self.clock.now += self.clock.overhead
        return self.clock.now - self.t0


class FakeBackend(devices.CpuBackend):
    timer_name = "fake"

    def __init__(self, clock):
        super().__init__(devices.parse_spec("cpu-1t"))
        self.clock = clock

    def block_timer(self):
        return FakeTimer(self.clock)


def test_block_size_keeps_timer_overhead_under_one_percent():
    clock = FakeClock(per_call=20e-6, overhead=2e-6)
    m = timing.time_callable(clock.call, FakeBackend(clock), samples=9, min_sample_s=0.001)
    # a sample must last >= 100 x 2 us = 200 us and >= 1 ms: ceil(1 ms / 20 us) = 50 calls
    assert m.block == 50
    assert len(m.samples_s) == 9
    assert m.timer_overhead_s == pytest.approx(2e-6)
    assert all(s == pytest.approx(20e-6 + 2e-6 / 50) for s in m.samples_s)
    assert m.context["timer"] == "fake"

    slow_timer = FakeClock(per_call=20e-6, overhead=50e-6)
    m = timing.time_callable(slow_timer.call, FakeBackend(slow_timer), samples=5, min_sample_s=0.001)
    assert m.block == 250  # 100 x 50 us = 5 ms of calls per sample
    assert m.timer_overhead_s / (m.block * 20e-6) == pytest.approx(0.01)


def test_warm_up_runs_until_the_time_per_call_stops_falling():
    clock = FakeClock(per_call=1e-3, overhead=0.0)
    costs = iter([50e-3, 20e-3, 10e-3, 5e-3, 2e-3])  # the first calls are slow, then 1 ms

    def fn():
        clock.calls += 1
        clock.now += next(costs, 1e-3)

    m = timing.time_callable(fn, FakeBackend(clock), samples=5, min_sample_s=0.001)
    assert m.warmup_calls >= 6 + 3  # the five slow calls, then three rounds without improvement
    assert m.median_s == pytest.approx(1e-3)


def test_steady_allocator_policy_gives_no_page_faults_for_the_depthwise_case():
    m = timed(
        "depthwise",
        device="cpu-1t",
        in_channels=64,
        kernel_size=3,
        batch=1,
        height=56,
        width=56,
        samples=5,
        max_time_s=0.2,
    )
    assert m.page_faults_per_call == 0
    assert "(steady)" in m.context["allocator"] or "preloaded" in m.context["allocator"]


@pytest.mark.skipif(allocator.preloaded_allocator() is not None, reason="a preloaded allocator replaces glibc's")
def test_cold_policy_keeps_a_fresh_process_page_faults_and_steady_removes_them():
    # A fresh process, cold first: the float64 reference check frees large buffers, which would raise
    # glibc's dynamic threshold; cold must hold the fresh-process behaviour regardless. Then steady.
    code = (
        "from bench_lib.measure import harness, metrics\n"
        "from bench_lib.measure.task import Task\n"
        "t = metrics.Settings(timing=dict(samples=5, max_time_s=0.2))\n"
        "kw = dict(in_channels=64, height=56, width=56)\n"
        "cold = metrics.measure(harness.prepare(Task.of('depthwise', allocator='cold', **kw)), 'latency', t).result\n"
        "steady = harness.prepare(Task.of('depthwise', allocator='steady', **kw))\n"
        "steady = metrics.measure(steady, 'latency', t).result\n"
        "print(cold.page_faults_per_call, steady.page_faults_per_call, cold.context['allocator'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cold, steady, description = out.stdout.split(maxsplit=2)
    assert float(cold) > 100  # ~590: every call maps its output afresh
    assert float(steady) == 0
    assert description.strip().endswith("(cold)")


def test_cold_after_steady_needs_a_fresh_process():
    allocator.apply("steady")
    with pytest.raises(RuntimeError, match="allocator='cold' needs a fresh process: this one is already under"):
        allocator.apply("cold")
    with pytest.raises(RuntimeError, match="allocator='plain' needs a fresh process"):
        allocator.apply("plain")


def test_unknown_allocator_policy():
    with pytest.raises(ValueError, match="allocator='warm' is not valid; accepted: steady, cold, plain"):
        allocator.apply("warm")


def test_context_records_what_was_in_force():
    m = timed(
        "grouped",
        device="cpu-1t",
        layout="channels_last",
        batch=2,
        height=14,
        width=14,
        samples=3,
        max_time_s=0.1,
        in_channels=16,
        out_channels=32,
        groups=4,
    )
    ctx = m.context
    assert ctx["case"] == "grouped(in=16,out=32,g=4)@14x14"
    assert (ctx["device"], ctx["threads"], ctx["layout"], ctx["dtype"], ctx["mode"], ctx["batch"]) == (
        "cpu-1t",
        1,
        "channels_last",
        "float32",
        "inference",
        2,
    )
    assert ctx["torch_version"] == torch.__version__ and ctx["graph"] is False
    assert ctx["relative_error"] < 1e-5


def test_channels_last_converts_module_and_input():
    p = harness.prepare(Task.of("standard", device="cpu-1t", layout="channels_last", height=8, width=8))
    assert p.inputs.is_contiguous(memory_format=torch.channels_last)
    assert p.module.weight.is_contiguous(memory_format=torch.channels_last)


def test_training_step_computes_gradients_for_parameters_and_input():
    task = Task.of(
        "mobilenet_v1", device="cpu-1t", mode="training", batch=2, height=8, width=8, in_channels=8, out_channels=16
    )
    p = harness.prepare(task)
    assert p.module.training
    with p.grad_mode():
        p.step()
    assert p.inputs.grad is not None and p.inputs.grad.shape == p.inputs.shape
    assert all(q.grad is not None for q in p.module.parameters())


def test_wrong_answers_are_failures_not_timings(monkeypatch):
    original = harness._to_layout

    def corrupt(t, layout):
        out = original(t, layout)
        if isinstance(out, torch.nn.Module):
            with torch.no_grad():
                out.weight.mul_(1.5)  # what a broken kernel would do to the output
        return out

    monkeypatch.setattr(harness, "_to_layout", corrupt)
    with pytest.raises(
        harness.WrongResult,
        match=r"standard on cpu-1t \(nchw, float32, inference\): relative "
        r"error .* against float64 on the CPU exceeds 0.005",
    ):
        harness.prepare(Task.of("standard", device="cpu-1t", height=8, width=8))


def test_a_runs_reference_is_computed_once_and_shared_by_devices_and_layouts(tmp_path, monkeypatch):
    forwards = []
    original = harness._relative_error

    def counting_build(name, **config):
        module = registry_build(name, **config)
        module.register_forward_hook(lambda m, i, o: forwards.append(o.dtype))
        return module

    from bench_lib.catalogue import registry

    registry_build = registry.build
    monkeypatch.setattr(registry, "build", counting_build)
    kw = dict(height=8, width=8, batch=2)
    first = harness.prepare(Task.of("grouped", device="cpu-1t", **kw), reference_dir=tmp_path)
    assert forwards.count(torch.float64) == 1 and len(list(tmp_path.glob("*.pt"))) == 1
    second = harness.prepare(Task.of("grouped", device="cpu-2t", layout="channels_last", **kw), reference_dir=tmp_path)
    assert forwards.count(torch.float64) == 1  # read, not recomputed
    assert second.relative_error == pytest.approx(first.relative_error, rel=1e-3, abs=1e-9)
    # the same case at another batch (or in training) is another reference
    harness.prepare(Task.of("grouped", device="cpu-1t", **{**kw, "batch": 3}), reference_dir=tmp_path)
    assert forwards.count(torch.float64) == 2 and len(list(tmp_path.glob("*.pt"))) == 2
    # a file that cannot be read is recomputed, and the check still runs against it
    for f in tmp_path.glob("*.pt"):
        f.write_bytes(b"not a tensor")
    monkeypatch.setattr(harness, "_relative_error", lambda y, ref: original(y, ref) + 1.0)
    with pytest.raises(harness.WrongResult):
        harness.prepare(Task.of("grouped", device="cpu-1t", **kw), reference_dir=tmp_path)
    assert forwards.count(torch.float64) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layout": "nhwc"}, ValueError, "layout='nhwc' is not valid; accepted: nchw, channels_last"),
        (
            {"dtype": "float64"},
            ValueError,
            "dtype='float64' is not valid; accepted: float32, bfloat16, float16",
        ),
        ({"mode": "eval"}, ValueError, "mode='eval' is not valid; accepted: inference, training"),
        ({"graph": True}, harness.Unsupported, "CUDA graphs need a CUDA device, not cpu-1t"),
    ],
)
def test_bad_or_impossible_combinations(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        harness.prepare(Task.of("standard", device="cpu-1t", height=8, width=8, **kwargs))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip on a machine without CUDA")
def test_absent_device_is_a_skip_with_the_reason():
    with pytest.raises(harness.Unsupported) as e:
        harness.prepare(Task.of("standard", device="cuda", height=8, width=8))
    assert isinstance(e.value, NotImplementedError)  # what asv records as skipped


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_types_run_natively_or_skip_with_the_reason(dtype):
    native = devices.backend("cpu-1t").supports(dtype, "inference")
    if native[0]:
        p = harness.prepare(Task.of("depthwise_separable", device="cpu-1t", dtype=dtype, height=12, width=12))
        assert p.relative_error < harness.DTYPES[dtype].tolerance
        assert p.inputs.dtype == getattr(torch, dtype)
    else:
        with pytest.raises(harness.Unsupported, match=f"cpu-1t, {dtype}: this CPU has no native {dtype}"):
            harness.prepare(Task.of("depthwise_separable", device="cpu-1t", dtype=dtype, height=12, width=12))


def test_cpu_peak_memory_of_large_activations_is_bounded_by_theory():
    from bench_lib.catalogue import theory

    kw = {"in_channels": 64, "out_channels": 256, "batch": 16, "height": 112, "width": 112}
    p = harness.prepare(Task.of("pointwise", device="cpu-1t", **kw))
    mem = memory.measure_memory(p)
    c = theory.cost("pointwise", **kw)
    output_bytes = math.prod(c.out_shape) * 4
    assert output_bytes > 200e6
    assert mem.peak_bytes >= output_bytes
    # input + output + weights, and at most one more output-sized buffer (oneDNN's reorder)
    assert mem.peak_bytes <= 2.5 * c.min_bytes
    assert mem.resident_bytes == 4 * (64 * 256 + 256) + 16 * 64 * 112 * 112 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
def test_cuda_measurement_with_and_without_graphs():
    for graph in (False, True):
        m = timed("depthwise", device="cuda", graph=graph, samples=5, max_time_s=0.2)
        assert m.median_s > 0 and m.context["graph"] is graph
    p = harness.prepare(Task.of("pointwise", device="cuda", batch=8))
    mem = memory.measure_memory(p)
    assert mem.peak_bytes >= mem.resident_bytes


def test_huge_pages_are_named_only_when_pytorch_asks_and_the_kernel_can_give(tmp_path, monkeypatch):
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    assert allocator.huge_pages(str(mode)) == " + THP"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "true")  # PyTorch 2.13 ignores it: no huge pages
    assert allocator.huge_pages(str(mode)) == ""
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    mode.write_text("always madvise [never]\n")
    assert allocator.huge_pages(str(mode)) == ""
    assert allocator.huge_pages(str(tmp_path / "absent")) == ""
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    mode.write_text("[always] madvise never\n")
    assert allocator.huge_pages(str(mode)) == ""


def test_the_run_asks_workers_for_huge_pages_unless_the_caller_chose(tmp_path, monkeypatch):
    from bench_lib.suite import runner

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    events = tmp_path / "events.jsonl"
    assert runner.asv_environment(runner.RunOptions(), events)["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    assert runner.asv_environment(runner.RunOptions(), events)["THP_MEM_ALLOC_ENABLE"] == "0"


def test_the_sides_of_an_ab_run_start_without_the_huge_pages_a_run_asks_for(tmp_path, monkeypatch):
    from bench_lib.measure import fresh
    from bench_lib.suite import runner

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    env = runner.asv_environment(runner.RunOptions(), tmp_path / "events.jsonl", huge_pages=False)
    assert "THP_MEM_ALLOC_ENABLE" not in env and fresh.RUN_SET_THP not in env
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")  # the caller's own setting stays
    assert runner.asv_environment(runner.RunOptions(), tmp_path / "e", huge_pages=False)["THP_MEM_ALLOC_ENABLE"] == "1"


def test_selfcheck_times_each_case_with_both_timers_and_prints_the_ratio(monkeypatch, capsys):
    from bench_lib.measure import selfcheck

    monkeypatch.setattr(selfcheck, "TIMING_CASES", [("depthwise", {"in_channels": 8, "height": 8, "width": 8})])
    code = selfcheck.timing(rounds=1)
    out = capsys.readouterr().out
    assert code in (0, 1)  # 1: outside ±3 % on a noisy machine, still a measured answer
    assert "depthwise(in=8)@8x8" in out and ("1 of 1 within" in out or "0 of 1 within" in out)


def test_a_metric_is_one_entry_the_service_the_runner_and_the_store_all_read(monkeypatch):
    from bench_lib.store import records
    from bench_lib.suite import asv_adapter
    from bench_lib.suite.combination import Combination, Event

    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))  # the entry below is gone after the test

    @metrics.metric(
        "calls",
        "calls",
        "Calls",
        per_round=False,
        read=lambda f: (f["calls"], {}),
        headline="calls",
        detail="counted",
        column="calls_count",
    )
    def _calls(target, settings):
        target.step()
        return 1, None, {"calls": 1}

    call = metrics.Call(lambda: None, devices.backend("cpu-1t"))
    record = metrics.measure(call, "calls")
    assert (record.metric, record.value, record.fields) == ("calls", 1, {"calls": 1}) and record.measure_s >= 0
    c = Combination("ops", "calls", "depthwise(in=8)@8x8", 1, "cpu-1t", "nchw", "float32", "inference")
    assert asv_adapter.rounds_of(c, 5) == 1
    event = Event(c, "ok", {"measure_s": record.measure_s, **record.fields}).as_dict()
    assert records.event_value(event) == (1, {})
    with pytest.raises(ValueError, match="metric='nope' is not valid; accepted: latency, peak_memory, energy"):
        metrics.get("nope")


def test_latency_reads_back_the_statistics_the_store_keeps():
    call = metrics.Call(lambda: sum(range(100)), devices.backend("cpu-1t"))
    record = metrics.measure(call, "latency", metrics.Settings(timing={"samples": 5, "max_time_s": 0.05}))
    m = record.result
    assert record.value == {"samples": list(m.samples_s), "number": m.block}
    from bench_lib.store import records

    value, stats = records.event_value({"metric": "latency", **record.fields})
    assert value == m.median_s and stats["samples"] == list(m.samples_s) and stats["number"] == m.block
    assert (stats["min"], stats["n_samples"], stats["noisy"]) == (m.min_s, len(m.samples_s), m.noisy)


def test_peak_memory_of_a_plain_call_counts_no_resident_tensors_and_does_not_crash():
    from bench_lib.measure import devices, metrics

    backend = devices.backend("cpu-1t")
    call = metrics.Call(lambda: torch.ones(256, 1024), backend)
    record = metrics.measure(call, "peak_memory", metrics.Settings())
    assert record.result.resident_bytes == 0 and record.value >= 256 * 1024 * 4
