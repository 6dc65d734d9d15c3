"""Networks built from the catalogue's blocks against their reference implementations' published figures.

Params must match exactly; MACs (conv + linear, 224×224) within 0.5%. Sources: torchvision's weight
metadata (num_params, _ops in GMACs) for MobileNet V2 (3,504,872; 0.301), ShuffleNet V2 1.0 (2,278,604;
0.145), EfficientNet-B0 (5,288,548; 0.386), ResNeXt-50 32x4d (25,028,904; 4.23) and ResNet-50 (25,557,032;
4.089); MobileNet V1: the paper's Table 1 (569M mult-adds) and Keras' MobileNet (4,231,976 trainable
params); ShuffleNet V1 g=3 1.0x: Megvii's ShuffleNet-Series README (138M FLOPs, 1.9M params, given to 0.1M).
"""

import pytest
import torch

from bench_lib.catalogue import registry, theory

REFERENCE = {
    "net_mobilenet_v1": (4_231_976, 569e6),
    "net_mobilenet_v2": (3_504_872, 0.301e9),
    "net_shufflenet_v1": (None, 138e6),
    "net_shufflenet_v2": (2_278_604, 0.145e9),
    "net_efficientnet_b0": (5_288_548, 0.386e9),
    "net_resnext50_32x4d": (25_028_904, 4.23e9),
    "net_resnet50": (25_557_032, 4.089e9),
}


def test_every_network_is_registered():
    assert set(registry.names("network")) == set(REFERENCE)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_params_and_macs_match_the_reference(name):
    params, macs = REFERENCE[name]
    c = theory.cost(name, height=224, width=224)
    if params is None:  # published only as 1.9M
        assert round(c.params / 1e5) / 10 == 1.9
    else:
        assert c.params == params
    assert c.macs == pytest.approx(macs, rel=0.005)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_output_shape_and_theory_is_the_sum_of_its_blocks(name):
    model = registry.build(name).eval()
    x = registry.example_input(name, 2, 224, 224)
    with torch.inference_mode():
        assert model(x).shape == (2, 1000)
    whole = theory.cost(name, batch=2, height=224, width=224)
    parts = whole.parts()
    assert next(iter(parts)) == "stem" and list(parts)[-1] == "head"
    assert [n for n, _ in model.named_children()] == list(parts)
    assert sum(p["macs"] for p in parts.values()) == whole.macs
    assert sum(p["params"] for p in parts.values()) == whole.params
    # each block part costs what the same block costs on its own, at its input shape
    shape = (2, 3, 224, 224)
    from bench_lib.catalogue import layers

    for part_name, part in model.named_children():
        out, records = layers.trace(part, shape, part_name)
        assert sum(r.macs for r in records) == parts[part_name]["macs"]
        shape = out


def test_width_multipliers():
    half = theory.cost("net_mobilenet_v1", height=224, width=224, width_mult=0.5)
    assert half.macs == pytest.approx(149e6, rel=0.01)  # the paper's Table 6: 149M mult-adds at α = 0.5
    with pytest.raises(ValueError, match=r"net_shufflenet_v2: width_mult=0\.7 must be one of 0\.5, 1\.0, 1\.5, 2\.0"):
        registry.build("net_shufflenet_v2", width_mult=0.7)


def test_breakdown_times_every_part():
    from bench_lib.measure import breakdown, harness
    from bench_lib.measure.task import Task

    p = harness.prepare(Task.of("net_shufflenet_v2", device="cpu-1t", height=64, width=64))
    rows = breakdown.breakdown(p, samples=3, max_time_s=0.01)
    assert [r["part"] for r in rows] == [n for n, _ in p.module.named_children()]
    assert all(r["median_s"] > 0 for r in rows)
    # each part's MACs on its real input are the theory's parts, and they add up to the whole network
    parts = theory.cost("net_shufflenet_v2", height=64, width=64).parts()
    assert {r["part"]: r["macs"] for r in rows} == {k: v["macs"] for k, v in parts.items()}
    with pytest.raises(ValueError, match="a breakdown needs a sequential workload"):
        breakdown.breakdown(harness.prepare(Task.of("mbconv", device="cpu-1t", height=8, width=8)))
