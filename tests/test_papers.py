import pytest

from bench_lib.analysis import papers as paper_tables
from bench_lib.catalogue import registry, theory
from bench_lib.catalogue.cases import Case
from bench_lib.suite import grids, papers
from bench_lib.suite.combination import Combination


def macs(case: str) -> int:
    c = Case.parse(case)
    return theory.cost(c.workload, height=c.height, width=c.width, **c.params).macs


def test_stack_is_a_catalogue_workload_with_summed_theory():
    m = registry.build("stack", op="grouped", depth=10, in_channels=176, out_channels=176, kernel_size=1, groups=8)
    assert len(m) == 10 and all(layer.groups == 8 for layer in m)
    one = theory.cost("grouped", in_channels=176, out_channels=176, kernel_size=1, groups=8)
    ten = theory.cost("stack", op="grouped", depth=10, in_channels=176, out_channels=176, kernel_size=1, groups=8)
    assert ten.macs == 10 * one.macs and ten.params == 10 * one.params
    assert theory.reduction("stack", op="grouped", in_channels=176, out_channels=176, kernel_size=1, groups=8)[
        "flop_reduction"
    ] == pytest.approx(8)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"op": "mbconv"}, "stack: op='mbconv' must be one of standard, grouped"),
        ({"op": "pointwise", "in_channels": 8, "out_channels": 16}, "stack: out_channels=16 must equal in_channels=8"),
        ({"op": "depthwise", "stride": 2}, "stack: stride=2 must be 1"),
        ({"op": "grouped", "groups": 5}, "grouped: in_channels=64 must be divisible by groups=5"),
        ({"op": "grouped", "depth": 0}, "stack: depth=0 must be at least 1"),
    ],
)
def test_stack_rejects_what_cannot_be_stacked(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        registry.build("stack", **params)


def test_g1_rows_keep_flops_fixed_within_the_papers_rounding():
    for column in ("GPU", "ARM"):
        rows = [r for r in papers.shufflenetv2_g1() if r.column == column]
        assert len(rows) == 4
        first = macs(rows[0].case)
        assert first == 10 * 56 * 56 * 2 * (128 * 128 if column == "GPU" else 32 * 32)
        # (90,180), (52,312), (36,432) are 1.1%, 1.0% and 5.1% under 128² (the paper rounded channel counts)
        for r in rows[1:]:
            assert macs(r.case) / first == pytest.approx(1, abs=0.06)


def test_g2_rows_keep_flops_fixed_and_show_the_width_adjustment():
    gpu = [r for r in papers.shufflenetv2_g2() if r.column == "GPU"]
    assert [Case.parse(r.case).params["groups"] for r in gpu] == [1, 2, 4, 8]
    base = macs(gpu[0].case)
    for r in gpu:
        assert macs(r.case) / base == pytest.approx(1, abs=0.012)  # 128², 180²/2, 256²/4, 360²/8
    cpu = [r for r in papers.shufflenetv2_g2() if r.column == "CPU"]
    assert [r.paper_width for r in cpu] == [None, None, None, 180]
    assert Case.parse(cpu[-1].case).params["in_channels"] == 176 and "runs c=176" in cpu[-1].label
    # the paper's widths keep FLOPs within 1.2%; the runnable 176 leaves them 5.5% under
    assert macs(cpu[-1].case) / macs(cpu[0].case) == pytest.approx(176 * 176 / 8 / 64**2)


@pytest.mark.parametrize(("c", "g", "expected"), [(180, 8, 176), (128, 4, 128), (90, 4, 88), (7, 8, 8)])
def test_nearest_valid_width(c, g, expected):
    assert papers.nearest_valid_width(c, g) == expected


def test_fasternet_table_has_four_operators_at_four_stages():
    rows = papers.fasternet_t1()
    assert len(rows) == 16
    shapes = {(Case.parse(r.case).params["in_channels"], Case.parse(r.case).height) for r in rows}
    assert shapes == {(96, 56), (192, 28), (384, 14), (768, 7)}
    pconv = Case.parse(next(r.case for r in rows if r.label.startswith("PConv") and "96×" in r.label))
    assert pconv.params["partial_ratio"] == 4
    assert macs(str(pconv)) * 16 == macs(next(r.case for r in rows if r.label.startswith("Conv") and "96×" in r.label))


def test_paper_grids():
    g = grids.grid("papers", ["cpu-1t", "cuda:0"])
    assert g.has("papers") and not g.has("ops") and g.metrics == ("latency",)
    assert len(g.cases["papers"]) == 8 + 8 + 16
    assert g.excluded(
        Combination.of("papers", "latency", (g.cases["papers"][0], 32, "cpu-1t", "nchw", "float32", "inference"))
    )
    assert g.excluded(
        Combination.of("papers", "latency", (g.cases["papers"][0], 1, "cuda:0", "nchw", "float32", "inference"))
    )
    assert (
        g.excluded(
            Combination.of("papers", "latency", (g.cases["papers"][0], 32, "cuda:0", "nchw", "float32", "inference"))
        )
        is None
    )
    assert len(grids.grid("fasternet", ["cpu-1t"]).cases["papers"]) == 16


def test_verdict_rule():
    assert paper_tables._judge(0.10, 0.04) == "reproduced"
    assert paper_tables._judge(-0.10, 0.04) == "not reproduced"
    assert paper_tables._judge(0.02, 0.04) == "inconclusive: the difference is within the noise"
