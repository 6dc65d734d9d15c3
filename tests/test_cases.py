import pytest

from bench_lib.catalogue.cases import Case


@pytest.mark.parametrize(
    "text",
    [
        "grouped(in=64,out=128,k=3,g=4)@56x56",
        "depthwise(in=32,k=5,s=2)@112x112",
        "mbconv(in=40,out=80,k=5,s=2,t=6,se=0.25)@28x28",
        "shufflenet_v1_unit(in=24,out=240,s=2,g=3,fg=false)@56x56",
        "channel_shuffle(in=240,g=3)@28x28",
        "resnet_basic@7x9",
    ],
)
def test_case_strings_round_trip(text):
    case = Case.parse(text)
    assert str(case) == text
    assert Case.parse(str(case)) == case


def test_case_decodes_parameters():
    case = Case.parse("grouped(in=64,out=128,k=3,g=4)@56x28")
    assert case.workload == "grouped"
    assert case.params == {"in_channels": 64, "out_channels": 128, "kernel_size": 3, "groups": 4}
    assert (case.height, case.width) == (56, 28)
    assert case.resolved["padding"] == 1


def test_dense_equivalent_case():
    assert (
        str(Case.parse("depthwise_separable(in=64,out=128,k=3)@56x56").dense_equivalent())
        == "standard(in=64,out=128,k=3,bias=false)@56x56"
    )
    assert str(Case.parse("mbconv(in=40,out=40)@28x28").dense_equivalent()) == "mbconv(in=40,out=40,dense=true)@28x28"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grouped(in=64", "is not of the form name(key=value,...)@HxW"),
        ("grouped(in)@4x4", "parameter 'in' is not key=value"),
        ("grouped(in=30,g=4)@8x8", "grouped: in_channels=30 must be divisible by groups=4"),
        ("warped@8x8", "unknown workload 'warped'"),
    ],
)
def test_malformed_cases_are_rejected(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Case.parse(text)
