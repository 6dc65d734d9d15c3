"""Which kernel ran: oneDNN's verbose lines, the signature and the fallbacks, and two cases whose dispatch is
known on this machine's CPU."""

import pytest
import torch

from bench_lib.measure import harness, kernels
from bench_lib.measure.task import Task

VERBOSE = """\
onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71049cd69a3df32adcccb623b12cd7baa22)
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:f32::blocked:abcd::f0,,,1x64x56x56,0.09
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,src:f32:a:blocked:aBcd8b::f0,,alg:x,mb1,0.4
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,src:f32:a:blocked:aBcd8b::f0,,alg:x,mb1,0.4
onednn_verbose,v1,primitive,create:cache_hit,cpu,convolution,ref:any,forward_training,,,alg:x,mb1,0.01
dnnl_verbose,exec,cpu,convolution,ref:any,forward_inference,src_f32::blocked:abcd:f0,,alg:x,mb1,2.1
some other line a library printed
"""


def test_the_executed_primitives_are_read_once_each_without_reorders():
    assert kernels.parse_onednn(VERBOSE) == ("convolution jit:avx2", "convolution ref:any")


def test_the_signature_keeps_the_main_ops_and_names_a_fallback():
    k = kernels.Kernels(
        ops=(("aten::_slow_conv2d_forward", 0.51), ("aten::mkldnn_convolution", 0.41), ("aten::view", 0.05)),
        onednn=("convolution jit_dw:avx2",),
    )
    assert k.kernel == "aten::_slow_conv2d_forward + aten::mkldnn_convolution [convolution jit_dw:avx2]"
    assert k.fallback == "aten::_slow_conv2d_forward (im2col + GEMM, no oneDNN)"
    ref = kernels.Kernels(ops=(("aten::mkldnn_convolution", 0.9),), onednn=("convolution ref:any",))
    assert ref.fallback == "oneDNN convolution ref:any (reference kernel)"
    assert kernels.Kernels().kernel is None and kernels.Kernels().fallback is None
    fields = k.fields()
    assert fields["kernels"]["aten"][0] == ["aten::_slow_conv2d_forward", 0.51]


def _captured(case: str) -> kernels.Kernels:
    prepared = harness.prepare(Task(case, device="cpu-1t"))
    with prepared.grad_mode():
        prepared.step()
    return kernels.capture(prepared)


needs_simd = pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() == "DEFAULT" or not torch.backends.mkldnn.is_available(),
    reason="this CPU (or torch build) has no vector ISA oneDNN's JIT kernels need: the dispatch differs",
)


@needs_simd
def test_a_grouped_conv_runs_onednn_and_a_float32_pointwise_conv_does_not():
    """torch 2.13 on an x86 CPU with AVX2 or AVX-512: the 3x3 grouped conv goes to oneDNN's JIT convolution,
    the float32 1x1 conv in NCHW to ATen's im2col + GEMM path."""
    grouped = _captured("grouped(in=64,out=64,k=3,g=4,bias=false)@56x56")
    assert grouped.ops[0][0] == "aten::mkldnn_convolution"
    assert len(grouped.onednn) == 1 and grouped.onednn[0].startswith("convolution jit")
    assert grouped.kernel.startswith("aten::mkldnn_convolution [convolution jit") and grouped.fallback is None
    pointwise = _captured("pointwise(in=64,out=64,bias=false)@56x56")
    assert pointwise.kernel == "aten::_slow_conv2d_forward" and pointwise.onednn == ()
    assert pointwise.fallback.startswith("aten::_slow_conv2d_forward")
    assert pointwise.capture_s < 1.0  # the autograd profiler without Kineto: milliseconds, not Kineto's seconds


def test_the_kernel_note_says_changed_or_same():
    from bench_lib.analysis import verdicts

    assert verdicts.kernel_note("a [x]", "b [y]") == "kernel changed: a [x] → b [y]"
    assert verdicts.kernel_note("a [x]", "a [x]") == "same kernel: a [x]"
    assert verdicts.kernel_note(None, "a") is None and verdicts.kernel_note(float("nan"), "a") is None


def test_an_ab_comparison_names_the_kernel_each_side_ran_most():
    from test_ab import _ab_rows

    from bench_lib.analysis import compare

    rows = _ab_rows({"a(x=1)@8x8": 0.0, "b(x=1)@8x8": 0.3})
    jit, ref = "aten::mkldnn_convolution [convolution jit:avx2]", "aten::mkldnn_convolution [convolution ref:any]"
    rows["kernel"] = jit
    slow_b = (rows["case"] == "b(x=1)@8x8") & (rows["side"] == "B")
    rows.loc[slow_b, "kernel"] = ref
    rows.loc[slow_b & (rows["pair"] == 3), "kernel"] = jit  # one process of eleven: the most common counts
    table, _ = compare.compare(rows, "side=A", "side=B")
    note = dict(zip(table["case"], table["kernels"], strict=True))
    assert note == {"a(x=1)@8x8": f"same kernel: {jit}", "b(x=1)@8x8": f"kernel changed: {jit} → {ref}"}
    shown = compare.render(table, "n", "text")
    assert "kernel changed: " in shown


def test_a_regression_says_whether_its_kernel_changed_at_the_step():
    from test_verdicts import OPS, _runs_frame

    from bench_lib.analysis import regressions, series

    slow = {c: 1.25 for c in OPS if c.startswith("depthwise")}
    rows = _runs_frame([{}] * 8 + [slow, slow], [1.0] * 10, sigma=0.005)
    rows["kernel"] = "aten::mkldnn_convolution [convolution jit_dw:avx2]"
    changed = rows["case"].eq(OPS[0]) & rows["run_id"].isin(["r08", "r09"])
    rows.loc[changed, "kernel"] = "aten::_slow_conv2d_forward"
    table, _ = regressions.scan(series.run_values(rows), 1.05, 0.001)
    flagged = table[table.verdict == "regression"].set_index("case")["kernels"]
    assert OPS[0].startswith("depthwise") and len(flagged) > 1
    for case, note in flagged.items():
        before = "aten::mkldnn_convolution [convolution jit_dw:avx2]"
        expected = (
            f"kernel changed: {before} → aten::_slow_conv2d_forward" if case == OPS[0] else f"same kernel: {before}"
        )
        assert note == expected
