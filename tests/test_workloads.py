import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from bench_lib.catalogue import registry


def _decorated_workloads() -> dict[str, str]:
    """name → kind of every builder decorated with ``@workload(kind=...)`` (its name, or the decorator's
    ``name=``) or ``@network(...)`` (``net_<name>``) in the catalogue's modules, read from their source."""
    found = {}
    for path in sorted((Path(registry.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for d in node.decorator_list:
                decorator = getattr(d.func, "id", None) if isinstance(d, ast.Call) else None
                words = {k.arg: k.value.value for k in getattr(d, "keywords", ()) if isinstance(k.value, ast.Constant)}
                if decorator == "workload":
                    found[words.get("name", node.name)] = words["kind"]
                elif decorator == "network":
                    found[f"net_{node.name}"] = "network"
    return found


def test_every_decorated_builder_is_registered_once_under_its_kind_and_nothing_else_is():
    registered = {name: registry.get(name).kind for name in registry.names()}
    assert registered == _decorated_workloads()
    assert registry.names("op")[0] == "standard"  # the dense op first: listings and grids keep this order


def test_the_grids_can_run_every_op_and_block():
    # an op says its parameters at a stage of C channels, a block its parameters at each stage it has
    for name in registry.names("op"):
        for size, channels in registry.STAGE_CHANNELS.items():
            registry.input_shape(name, 1, size, size, **registry.get(name).at_stage(channels))
    for name in registry.names("block"):
        stages = registry.get(name).stages
        assert stages, f"{name} has no stages"
        for size, params in stages.items():
            registry.input_shape(name, 1, size, size, **params)


@pytest.mark.parametrize("name", registry.names())
def test_every_workload_builds_with_defaults_and_runs(name):
    module = registry.build(name).eval()
    x = registry.example_input(name, batch=2, height=16, width=12)
    with torch.inference_mode():
        y = module(x)
    assert y.shape == registry.output_shape(name, tuple(x.shape))
    assert torch.isfinite(y).all()


def test_seed_parameter_counts_exactly():
    def count(name, **p):
        return sum(t.numel() for t in registry.build(name, **p).parameters())

    assert count("standard", in_channels=64, out_channels=128, kernel_size=3, padding=1) == 73_856
    assert count("grouped", in_channels=64, out_channels=128, kernel_size=3, groups=2) == 36_992
    assert count("grouped", in_channels=64, out_channels=128, kernel_size=3, groups=4) == 18_560
    assert count("depthwise", in_channels=64, kernel_size=3) == 640
    assert count("standard", in_channels=64, out_channels=64, kernel_size=3) == 36_928
    assert count("standard", in_channels=64, out_channels=128, kernel_size=3, bias=False) == 73_728
    assert count("depthwise_separable", in_channels=64, out_channels=128, kernel_size=3) == 8_768


def test_standard_is_a_plain_conv2d_with_conv2d_parameter_names():
    m = registry.build("standard", in_channels=8, out_channels=16, kernel_size=5, stride=2)
    assert isinstance(m, nn.Conv2d)
    assert (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.groups) == (
        8,
        16,
        (5, 5),
        (2, 2),
        (2, 2),
        1,
    )


def test_grouped_conv_equals_concatenation_of_independent_convs(rng):
    g, cin, cout = 4, 16, 24
    conv = registry.build("grouped", in_channels=cin, out_channels=cout, kernel_size=3, groups=g)
    x = torch.randn(2, cin, 9, 7, generator=rng)
    parts = []
    for i in range(g):
        part = nn.Conv2d(cin // g, cout // g, 3, padding=1)
        part.weight.data = conv.weight[i * cout // g : (i + 1) * cout // g].clone()
        part.bias.data = conv.bias[i * cout // g : (i + 1) * cout // g].clone()
        parts.append(part(x[:, i * cin // g : (i + 1) * cin // g]))
    torch.testing.assert_close(conv(x), torch.cat(parts, dim=1), rtol=1e-5, atol=1e-5)


def test_depthwise_separable_is_depthwise_then_pointwise(rng):
    m = registry.build("depthwise_separable", in_channels=8, out_channels=12, kernel_size=3)
    assert m.depthwise.groups == 8 and m.depthwise.bias is None and m.pointwise.kernel_size == (1, 1)
    x = torch.randn(1, 8, 6, 6, generator=rng)
    torch.testing.assert_close(m(x), m.pointwise(m.depthwise(x)))


def test_channel_shuffle_permutes_channels_by_transpose():
    m = registry.build("channel_shuffle", in_channels=6, groups=2)
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert m(x).flatten().tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def test_partial_conv_leaves_the_other_channels_untouched(rng):
    m = registry.build("partial", in_channels=16, kernel_size=3, partial_ratio=4)
    x = torch.randn(1, 16, 8, 8, generator=rng)
    y = m(x)
    torch.testing.assert_close(y[:, 4:], x[:, 4:])
    torch.testing.assert_close(y[:, :4], m.conv(x[:, :4]))


def test_inverted_residual_has_residual_only_at_stride_1_with_equal_channels():
    assert registry.build("inverted_residual", in_channels=24, out_channels=24).use_residual
    assert not registry.build("inverted_residual", in_channels=24, out_channels=32).use_residual
    assert not registry.build("inverted_residual", in_channels=24, out_channels=24, stride=2).use_residual
    no_expand = registry.build("inverted_residual", in_channels=32, out_channels=16, expand_ratio=1)
    assert "expand" not in dict(no_expand.body.named_children())


def test_shufflenet_v1_stride_2_concatenates_a_pooled_shortcut():
    m = registry.build("shufflenet_v1_unit", in_channels=240, out_channels=480, stride=2, groups=3)
    x = registry.example_input("shufflenet_v1_unit", 1, 14, 14, in_channels=240, out_channels=480, stride=2, groups=3)
    y = m(x)
    assert y.shape == (1, 480, 7, 7)
    torch.testing.assert_close(y[:, :240], nn.functional.avg_pool2d(x, 3, 2, 1))


def test_mbconv_squeeze_width_follows_efficientnet():
    m = registry.build("mbconv", in_channels=40, out_channels=80, expand_ratio=6, se_ratio=0.25)
    assert m.body.se.reduce.out_channels == 10 and m.body.se.reduce.in_channels == 240


def test_resnext_width_and_projection_shortcut():
    m = registry.build("resnext_bottleneck", in_channels=64, out_channels=256, groups=32, width_per_group=4)
    assert m.body.conv[0].groups == 32 and m.body.conv[0].in_channels == 128
    assert m.shortcut is not None
    assert registry.build("resnext_bottleneck", in_channels=256, out_channels=256).shortcut is None


def test_dense_equivalents():
    assert registry.dense_equivalent("grouped", in_channels=64, out_channels=128, groups=4) == (
        "standard",
        registry.resolve("standard", in_channels=64, out_channels=128),
    )
    name, params = registry.dense_equivalent("depthwise", in_channels=32, kernel_size=5)
    assert name == "standard" and (params["in_channels"], params["out_channels"], params["kernel_size"]) == (
        32,
        32,
        5,
    )
    name, params = registry.dense_equivalent("mbconv", in_channels=40, out_channels=40)
    assert name == "mbconv" and params["dense"] is True
    dense = registry.build(name, **params)
    assert all(c.groups == 1 for c in dense.modules() if isinstance(c, nn.Conv2d))
    assert registry.dense_equivalent("pointwise") == ("pointwise", registry.resolve("pointwise"))


def test_example_input_is_reproducible_and_shaped():
    a = registry.example_input("grouped", 2, 10, 12, in_channels=8, groups=2, out_channels=8)
    b = registry.example_input("grouped", 2, 10, 12, in_channels=8, groups=2, out_channels=8)
    assert a.shape == (2, 8, 10, 12) and torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown workload 'nope'; known: standard, grouped"),
        (
            "grouped",
            {"chanels": 3},
            "grouped: unknown parameter 'chanels'; accepted: in_channels, out_channels",
        ),
        (
            "grouped",
            {"in_channels": 30, "groups": 4},
            "grouped: in_channels=30 must be divisible by groups=4",
        ),
        (
            "grouped",
            {"in_channels": 64, "out_channels": 30, "groups": 4},
            "grouped: out_channels=30 must be divisible by groups=4",
        ),
        (
            "depthwise",
            {"in_channels": 16, "out_channels": 24},
            "depthwise: out_channels=24 must be divisible by in_channels=16",
        ),
        ("standard", {"kernel_size": 0}, "standard: kernel_size=0 must be at least 1"),
        ("standard", {"stride": 0}, "standard: stride=0 must be at least 1"),
        ("standard", {"padding": -1}, "standard: padding=-1 must be at least 0"),
        ("standard", {"in_channels": 0}, "standard: in_channels=0 must be at least 1"),
        ("standard", {"in_channels": 6.5}, "standard: in_channels=6.5 must be an integer"),
        ("standard", {"bias": "yes"}, "standard: bias='yes' must be a bool"),
        (
            "partial",
            {"in_channels": 30, "partial_ratio": 4},
            "partial: in_channels=30 must be divisible by partial_ratio=4",
        ),
        (
            "channel_shuffle",
            {"in_channels": 10, "groups": 3},
            "channel_shuffle: in_channels=10 must be divisible",
        ),
        (
            "shufflenet_v1_unit",
            {"in_channels": 240, "out_channels": 480},
            "shufflenet_v1_unit: in_channels=240 must equal out_channels=480 at stride 1",
        ),
        ("shufflenet_v2_unit", {"stride": 3}, "shufflenet_v2_unit: stride=3 must be one of 1, 2"),
        ("mbconv", {"se_ratio": 1.5}, "mbconv: se_ratio=1.5 must be between 0 and 1"),
        (
            "resnext_bottleneck",
            {"out_channels": 8, "groups": 1, "width_per_group": 4},
            "resnext_bottleneck: out_channels=8 gives a bottleneck width of 0",
        ),
    ],
)
def test_bad_parameters_name_the_parameter_and_the_rule(name, params, message):
    with pytest.raises(ValueError) as e:
        registry.build(name, **params)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("name", "params", "size", "message"),
    [
        (
            "standard",
            {"kernel_size": 5, "padding": 0},
            (3, 8),
            "standard: height=3 is too small for kernel_size=5 with padding=0",
        ),
        (
            "standard",
            {"kernel_size": 7, "padding": 0},
            (8, 4),
            "standard: width=4 is too small for kernel_size=7 with padding=0",
        ),
        ("mobilenet_v1", {"kernel_size": 3}, (0, 4), "mobilenet_v1: height=0 must be a positive integer"),
        (
            "depthwise_separable",
            {"kernel_size": 5, "padding": 0},
            (4, 9),
            "depthwise_separable: height=4 at layer 'depthwise' is too small for kernel_size=5",
        ),
    ],
)
def test_spatial_sizes_a_layer_cannot_take_are_rejected(name, params, size, message):
    with pytest.raises(ValueError) as e:
        registry.example_input(name, 1, *size, **params)
    assert message in str(e.value)


def test_batch_must_be_positive():
    with pytest.raises(ValueError, match="grouped: batch=0 must be a positive integer"):
        registry.example_input("grouped", 0, 8, 8)


def test_a_block_is_added_by_one_decorated_definition_and_every_stage_sees_it(monkeypatch):
    from torch import nn

    from bench_lib.catalogue import theory
    from bench_lib.catalogue.registry import DENSE, IN, Param, workload
    from bench_lib.suite import grids

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # forget it after the test

    @workload(
        kind="block",
        summary="toy: grouped 3×3 then ReLU",
        params={"in_channels": IN, "groups": Param(int, 2, 1), "dense": DENSE},
        check=lambda p: registry.divisible("toy_block", p, "in_channels", "groups"),
        stages={28: {"in_channels": 32, "groups": 4}, 7: {"in_channels": 64, "groups": 4}},
    )
    def toy_block(p):
        g = 1 if p["dense"] else p["groups"]
        return nn.Sequential(nn.Conv2d(p["in_channels"], p["in_channels"], 3, padding=1, groups=g), nn.ReLU())

    assert "toy_block" in registry.names("block")
    cases = grids.block_cases()
    assert cases[-2:] == ["toy_block(in=64,g=4)@7x7", "toy_block(in=64,g=4,dense=true)@7x7"]
    assert theory.reduction("toy_block", height=7, width=7, in_channels=64, groups=4)["flop_reduction"] > 3.9
    with pytest.raises(ValueError, match="toy_block: in_channels=30 must be divisible by groups=4"):
        registry.resolve("toy_block", in_channels=30, groups=4)
    with pytest.raises(ValueError, match="workload 'toy_block' is registered twice"):
        workload(kind="block", summary="again", params={})(toy_block)
