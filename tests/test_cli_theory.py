import json

import pytest

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
    assert code == 2 and "parameter 'groups' is not key=value: write key=value" in err


def test_workloads_lists_every_name(capsys):
    from bench_lib.catalogue import registry

    code, out, _ = run(capsys, "workloads")
    assert code == 0
    assert all(name in out for name in registry.names())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--chunk-size", "-1"], "argument --chunk-size: -1 is out of range (accepted: 1 or more)"),
        (["run", "--rounds", "0"], "argument --rounds: 0 is out of range (accepted: 1 or more)"),
        (["run", "--grid", "huge"], "argument --grid: invalid choice: 'huge'"),
        (
            ["compare", "--baseline", "a=b", "--candidate", "a=b", "--alpha", "0"],
            "0 is out of range (accepted: (0, 0.5])",
        ),
        (
            ["compare", "--baseline", "a=b", "--candidate", "a=b", "--alpha", "2"],
            "2 is out of range (accepted: (0, 0.5])",
        ),
        (
            ["compare", "--baseline", "a=b", "--candidate", "a=b", "--factor", "nan"],
            "nan is out of range (accepted: [1, 100])",
        ),
        (["measure", "standard", "--samples", "0"], "argument --samples: 0 is out of range (accepted: 3 or more)"),
        (["measure", "standard", "--max-time", "0"], "argument --max-time: 0 is out of range (accepted: (0, 3600])"),
        (["measure", "standard", "--max-time", "nan"], "argument --max-time: nan is out of range"),
        (["theory", "standard", "--height", "0"], "argument --height: 0 is out of range (accepted: 1 or more)"),
        (["theory", "standard", "--dtype", "float64"], "argument --dtype: invalid choice: 'float64'"),
        (["run", "--device", "cpu-1t", "--device", "cpu-1t"], "--device cpu-1t is given twice"),
        (["run", "--device", "gpu"], "--device 'gpu'"),
        (
            ["run", "--lock-gpu-clocks", "fast"],
            "--lock-gpu-clocks 'fast': accepted: none, base, max or a clock in MHz from 1 to 10000",
        ),
        (["theory", "standard", "in_channels=0"], "standard: in_channels=0 must be at least 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_the_flag_and_range(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_internal_error_is_not_called_a_usage_error(monkeypatch, capsys):
    from bench_lib.catalogue import theory

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(theory, "cost", broken)
    assert main(["theory", "standard"]) == 5  # Exit.INTERNAL, never USAGE (2) nor FAILED (3)
    err = capsys.readouterr().err
    assert "internal error: ValueError: a bug, not the user's input" in err and "Traceback" in err
