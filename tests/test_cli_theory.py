import json

from bench_lib.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_theory_json_has_the_documented_keys(capsys):
    code, out, _ = run(
        capsys,
        "theory",
        "depthwise_separable",
        "in_channels=512",
        "out_channels=512",
        "--height",
        "14",
        "--width",
        "14",
        "--json",
    )
    assert code == 0
    record = json.loads(out)
    for key in (
        "params",
        "macs",
        "flops",
        "elementwise_ops",
        "min_bytes",
        "intensity",
        "train_macs",
        "flop_reduction",
        "param_reduction",
    ):
        assert key in record
    assert record["macs"] == 52_283_392 and record["flops"] == 2 * record["macs"]
    assert record["params"] == 266_752


def test_theory_text_output(capsys):
    code, out, _ = run(capsys, "theory", "grouped", "groups=4", "--layers")
    assert code == 0
    assert "vs dense standard: 4.00x fewer FLOPs" in out


def test_theory_bad_parameter_is_one_line_and_exit_2(capsys):
    code, out, err = run(capsys, "theory", "grouped", "groups=5")
    assert code == 2 and out == ""
    assert err == "convbench theory: error: grouped: in_channels=64 must be divisible by groups=5\n"


def test_theory_malformed_key_value_exit_2(capsys):
    code, _, err = run(capsys, "theory", "grouped", "groups")
    assert code == 2 and "parameter 'groups' must be written key=value" in err


def test_workloads_lists_every_name(capsys):
    from bench_lib import workloads

    code, out, _ = run(capsys, "workloads")
    assert code == 0
    assert all(name in out for name in workloads.names())
