"""``netclock sim``: JSON output, determinism, table output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netclock.cli.main import main

ARGS = ["sim", "--duration", "40", "--jitter-us", "10", "--loss", "0.05", "--seed", "4"]
REQUIRED = (
    "rms_error_ns",
    "p99_error_ns",
    "max_error_ns",
    "freq_error_ppb",
    "lock_time_s",
    "samples",
    "rms_all_error_ns",
)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("est", ["window", "gst", "pi"])
def test_sim_json_has_the_metrics_and_is_byte_identical_per_seed(
    capsys: pytest.CaptureFixture[str], est: str
) -> None:
    argv = [*ARGS, "--estimator", est, "--json"]
    out1 = _run(capsys, argv)
    out2 = _run(capsys, argv)
    assert out1 == out2
    assert out1.count("\n") == 1
    obj = json.loads(out1)
    for k in REQUIRED:
        assert k in obj
    assert obj["estimator"] == est
    assert obj["samples"] == 400
    assert obj["scenario"]["loss"] == 0.05
    other = _run(capsys, [*ARGS[:-1], "5", "--estimator", est, "--json"])
    assert json.loads(other)["seed"] == 5
    assert other != out1


def test_sim_spike_step_and_dist_options_reach_the_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _run(
        capsys,
        [
            "sim",
            "--duration",
            "30",
            "--spike",
            "10:2:500:both",
            "--step",
            "20:1000000",
            "--jitter-dist",
            "pareto",
            "--interval-log2",
            "-2",
            "--asymmetry-us",
            "3",
            "--json",
        ],
    )
    sc = json.loads(out)["scenario"]
    assert sc["spikes"] == [
        {"at_s": 10.0, "duration_s": 2.0, "extra_us": 500.0, "direction": "both"}
    ]
    assert sc["steps"] == [{"at_s": 20.0, "step_ns": 1000000}]
    assert sc["jitter_dist"] == "pareto"
    assert sc["interval_log2"] == -2
    assert sc["asymmetry_us"] == 3.0


def test_sim_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, ["sim", "--duration", "20"])
    assert "rms error (after lock)" in out
    assert "lock time" in out


def test_sim_rejects_bad_spike(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sim", "--spike", "1:2"])


def test_sim_runs_as_a_program() -> None:
    cmd = [sys.executable, "-m", "netclock", *ARGS, "--json"]
    a = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    b = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    assert a == b
    assert json.loads(a)["samples"] == 400
