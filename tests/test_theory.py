import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from bench_lib.catalogue import registry, theory


def measured(name, batch, height, width, **params):
    """Parameter count, FlopCounterMode's forward FLOPs and the output shape of the built module."""
    module = registry.build(name, **params).eval()
    x = registry.example_input(name, batch, height, width, **params)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        y = module(x)
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops(), tuple(y.shape)


def assert_theory_matches_module(name, batch, height, width, **params):
    c = theory.cost(name, batch=batch, height=height, width=width, **params)
    n_params, flops, out_shape = measured(name, batch, height, width, **params)
    assert c.params == n_params
    assert c.flops == flops == 2 * c.macs
    assert c.out_shape == out_shape
    # one traced conv or linear layer per conv or linear module of the built model
    module = registry.build(name, **params)
    counted = sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in module.modules())
    assert sum(layer.kind in ("conv", "linear") for layer in c.layers) == counted


spatial = st.tuples(st.integers(1, 3), st.integers(5, 17), st.integers(5, 17))


@st.composite
def op_configs(draw):
    name = draw(st.sampled_from(registry.names("op")))
    g = draw(st.integers(1, 4))
    params = {"in_channels": g * draw(st.integers(1, 6))}
    spec = registry.get(name).params
    if "out_channels" in spec:
        params["out_channels"] = (
            params["in_channels"] * draw(st.integers(1, 3)) if name == "depthwise" else g * draw(st.integers(1, 6))
        )
    if "groups" in spec:
        params["groups"] = g
    if "kernel_size" in spec:
        params["kernel_size"] = draw(st.sampled_from([1, 3, 5]) if name == "partial" else st.integers(1, 5))
    if "stride" in spec:
        params["stride"] = draw(st.integers(1, 3))
    if "padding" in spec:
        params["padding"] = draw(st.integers(0, 2))
    if "bias" in spec:
        params["bias"] = draw(st.booleans())
    if "partial_ratio" in spec:
        params["partial_ratio"] = draw(st.sampled_from([2, 4]))
        params["in_channels"] = params["partial_ratio"] * draw(st.integers(1, 4))
    return name, params


@st.composite
def block_configs(draw):
    name = draw(st.sampled_from(registry.names("block")))
    stride = draw(st.sampled_from([1, 2]))
    c = draw(st.integers(2, 12))
    if name == "shufflenet_v1_unit":
        g = draw(st.sampled_from([1, 2, 3]))
        out = 4 * g * draw(st.integers(1, 3))
        cin = out if stride == 1 else g * draw(st.integers(1, out // g - 1)) if out // g > 1 else None
        assume(cin is not None)
        return name, {
            "in_channels": cin,
            "out_channels": out,
            "stride": stride,
            "groups": g,
            "first_grouped": draw(st.booleans()),
            "dense": draw(st.booleans()),
        }
    if name == "shufflenet_v2_unit":
        out = 2 * c
        cin = out if stride == 1 else draw(st.integers(1, 12))
        return name, {
            "in_channels": cin,
            "out_channels": out,
            "stride": stride,
            "kernel_size": draw(st.sampled_from([3, 5])),
            "dense": draw(st.booleans()),
        }
    params = {"in_channels": c, "out_channels": draw(st.sampled_from([c, c + 4])), "stride": stride}
    if name in ("mobilenet_v1", "inverted_residual", "mbconv"):
        params["kernel_size"] = draw(st.sampled_from([3, 5]))
        params["dense"] = draw(st.booleans())
    if name in ("inverted_residual", "mbconv"):
        params["expand_ratio"] = draw(st.sampled_from([1, 3, 6]))
    if name == "mbconv":
        params["se_ratio"] = draw(st.sampled_from([0.0, 0.25, 0.5]))
    if name in ("resnext_bottleneck", "resnet_bottleneck"):
        params["out_channels"] = 4 * draw(st.integers(4, 16))
    if name == "resnext_bottleneck":
        params["groups"] = draw(st.sampled_from([1, 2, 4]))
        params["width_per_group"] = draw(st.sampled_from([16, 32, 64]))
        params["dense"] = draw(st.booleans())
    return name, params


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op_configs(), spatial)
def test_op_theory_matches_the_built_module(config, geometry):
    name, params = config
    batch, height, width = geometry
    try:
        registry.input_shape(name, batch, height, width, **params)
    except ValueError:
        assume(False)
    assert_theory_matches_module(name, batch, height, width, **params)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(block_configs(), spatial)
def test_block_theory_matches_the_built_module(config, geometry):
    name, params = config
    batch, height, width = geometry
    assert_theory_matches_module(name, batch, height, width, **params)


@pytest.mark.parametrize("name", registry.names())
def test_every_workload_at_defaults_matches(name):
    assert_theory_matches_module(name, 2, 13, 11)


def test_mobilenet_v1_table_3():
    kw = {"in_channels": 512, "out_channels": 512, "kernel_size": 3, "bias": False, "height": 14, "width": 14}
    standard = theory.cost("standard", **kw)
    separable = theory.cost("depthwise_separable", **kw)
    assert standard.macs == 14 * 14 * 512 * 512 * 9 == 462_422_016  # "462M"
    assert standard.params == 2_359_296  # "2.36M"
    assert separable.macs == 14 * 14 * 512 * (9 + 512) == 52_283_392  # "52.3M"
    assert separable.params == 266_752  # "0.27M"
    assert separable.macs / standard.macs == pytest.approx(1 / 512 + 1 / 9)
    red = theory.reduction("depthwise_separable", **kw)
    assert red["dense_workload"] == "standard"
    assert red["flop_reduction"] == pytest.approx(462_422_016 / 52_283_392)


@pytest.mark.parametrize(
    ("h", "w", "d_in", "t", "k", "d_out"),
    [(56, 56, 24, 6, 3, 24), (14, 14, 64, 6, 3, 96), (7, 9, 160, 6, 5, 320), (112, 112, 32, 1, 3, 16)],
)
def test_mobilenet_v2_block_formula(h, w, d_in, t, k, d_out):
    c = theory.cost(
        "inverted_residual",
        height=h,
        width=w,
        in_channels=d_in,
        out_channels=d_out,
        expand_ratio=t,
        kernel_size=k,
    )
    if t == 1:  # no expansion layer: the formula's d'·t·d' term is absent
        assert c.macs == h * w * d_in * (k * k + d_out)
    else:
        assert c.macs == h * w * d_in * t * (d_in + k * k + d_out)


@pytest.mark.parametrize(("c1", "c2", "g"), [(128, 128, 1), (90, 180, 1), (128, 256, 4), (360, 360, 8)])
def test_shufflenet_v2_memory_access_cost_of_a_1x1_conv(c1, c2, g):
    h = w = 56
    c = theory.cost("grouped", height=h, width=w, in_channels=c1, out_channels=c2, kernel_size=1, groups=g, bias=False)
    assert c.min_bytes == 4 * (h * w * (c1 + c2) + c1 * c2 // g)
    assert c.macs == h * w * c1 * c2 // g
    half = theory.cost(
        "grouped",
        height=h,
        width=w,
        in_channels=c1,
        out_channels=c2,
        kernel_size=1,
        groups=g,
        bias=False,
        dtype="bfloat16",
    )
    assert half.min_bytes * 2 == c.min_bytes


def test_reduction_against_dense_equivalents():
    assert theory.reduction("grouped", in_channels=64, out_channels=128, groups=4)["flop_reduction"] == pytest.approx(4)
    assert theory.reduction("grouped", in_channels=64, out_channels=128, groups=4)["param_reduction"] == pytest.approx(
        (73_728 + 128) / (18_432 + 128)
    )
    assert theory.reduction("partial", in_channels=64, partial_ratio=4)["flop_reduction"] == pytest.approx(16)
    assert theory.reduction("pointwise")["flop_reduction"] == 1.0
    assert theory.reduction("channel_shuffle")["flop_reduction"] == math.inf
    dw = theory.reduction("depthwise", in_channels=64)
    assert dw["flop_reduction"] == pytest.approx(64) and dw["dense_workload"] == "standard"


def test_block_dense_equivalent_makes_every_conv_dense():
    sparse = theory.cost("mobilenet_v1", in_channels=32, out_channels=64, height=8, width=8)
    dense = theory.cost("mobilenet_v1", in_channels=32, out_channels=64, height=8, width=8, dense=True)
    assert dense.macs - sparse.macs == 64 * 9 * 32 * (32 - 1)


def test_min_bytes_is_input_weights_output_once():
    c = theory.cost("standard", batch=2, height=10, width=10, in_channels=8, out_channels=16, kernel_size=3)
    assert c.min_bytes == 4 * (2 * 8 * 100 + (16 * 8 * 9 + 16) + 2 * 16 * 100)
    assert c.intensity == c.flops / c.min_bytes


def test_elementwise_ops_are_counted_apart_from_macs():
    plain = theory.cost("standard", bias=False, height=8, width=8)
    biased = theory.cost("standard", bias=True, height=8, width=8)
    assert plain.macs == biased.macs
    assert biased.elementwise_ops - plain.elementwise_ops == 64 * 8 * 8
    shuffle = theory.cost("channel_shuffle", in_channels=12, groups=3, height=4, width=4)
    assert shuffle.macs == 0 and shuffle.elementwise_ops == 12 * 16
    v1 = theory.cost("mobilenet_v1", in_channels=4, out_channels=8, height=5, width=5)
    # BN (2 ops) and ReLU (1 op) on the depthwise output (4 ch) and pointwise output (8 ch)
    assert v1.elementwise_ops == 3 * 25 * (4 + 8)


def test_unknown_dtype_is_rejected():
    with pytest.raises(ValueError, match="dtype='float8' is not valid; accepted: float32, bfloat16, float16"):
        theory.cost("standard", dtype="float8")


@pytest.mark.skipif(
    not torch.__version__.startswith("2.13."),
    reason=f"pins torch 2.13's FlopCounterMode behaviour; this is torch {torch.__version__}",
)
def test_flop_counter_overcounts_grouped_grad_weight_in_torch_2_13_while_train_macs_is_right():
    g = 4
    conv = registry.build("grouped", in_channels=64, out_channels=64, kernel_size=3, groups=g, bias=False)
    x = registry.example_input("grouped", 2, 14, 14, in_channels=64, out_channels=64, groups=g)
    x.requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        conv(x).sum().backward()
    c = theory.cost("grouped", batch=2, height=14, width=14, in_channels=64, out_channels=64, groups=g, bias=False)
    forward = c.flops
    # grad-input counted right (1x forward), grad-weight as if dense (g x forward): 5x instead of 2x
    assert counter.get_total_flops() == forward + (1 + g) * forward
    assert 2 * c.train_macs == 3 * forward


def autograd_flops(name, batch, height, width, **params):
    """FlopCounterMode's count of one real forward and backward (input gradients included)."""
    module = registry.build(name, **params).train()
    x = registry.example_input(name, batch, height, width, **params).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        module(x).sum().backward()
    return counter.get_total_flops()


DENSE_TRAINING_CASES = [
    ("standard", {"in_channels": 16, "out_channels": 24, "kernel_size": 3}),
    ("pointwise", {"in_channels": 16, "out_channels": 32}),
    *[(name, {"dense": True}) for name in registry.names("block") if "dense" in registry.get(name).params],
    ("resnet_basic", {"in_channels": 32, "out_channels": 32}),
    ("resnet_bottleneck", {"in_channels": 64, "out_channels": 64}),
]


@pytest.mark.parametrize(("name", "params"), DENSE_TRAINING_CASES, ids=[c[0] for c in DENSE_TRAINING_CASES])
def test_training_macs_match_autograds_own_count_where_torch_counts_right(name, params):
    # torch counts dense convolutions' and linear layers' backward right (grad-input + grad-weight), so a
    # real forward and backward must cost exactly 2 x train_macs FLOPs; grouped convs: see the pin below
    c = theory.cost(name, batch=2, height=14, width=14, **params)
    assert autograd_flops(name, 2, 14, 14, **params) == 2 * c.train_macs
