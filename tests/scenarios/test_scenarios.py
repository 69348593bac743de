"""The named fault scenarios (netclock.sim.library): each passes its own limits, and
``netclock sim --scenario NAME`` reports the same verdict."""

from __future__ import annotations

import json

import pytest

from netclock.cli.main import main
from netclock.sim.library import SCENARIOS, LibraryScenario, Limits, Series, evaluate

REQUIRED_TOPICS = (
    "large-jitter", "asymmetric-jitter", "intermittent", "loss-30pct", "reordering",
    "delay-spikes", "frequency-wander", "temperature-cycle", "master-step-plus-1s",
    "master-step-minus-1s", "ptp-leap-second", "ptp-utc-offset-change", "ntp-falseticker",
    "ptp-grandmaster-failover", "restart-with-state", "long-holdover",
)


def test_library_covers_the_issue() -> None:
    assert len(SCENARIOS) >= 25
    assert set(REQUIRED_TOPICS) <= set(SCENARIOS)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes_its_limits(name: str) -> None:
    v = evaluate(SCENARIOS[name])
    assert v.passed, (name, v.failures, v.info)
    assert v.metrics.samples > 100


def test_restart_with_state_locks_faster_than_cold() -> None:
    warm = evaluate(SCENARIOS["restart-with-state"])
    cold = evaluate(SCENARIOS["restart-cold"])
    assert warm.info["restored"] and not cold.info["restored"]
    assert warm.metrics.lock_time_s is not None and cold.metrics.lock_time_s is not None
    assert warm.metrics.lock_time_s < cold.metrics.lock_time_s


def test_limits_do_fail() -> None:
    """A verdict is not a rubber stamp: tight limits on a real run fail with reasons."""
    sc = SCENARIOS["large-jitter"]
    tight = LibraryScenario(sc.name, sc.description, Limits(rms_ns=1, max_ns=1, lock_s=0.01),
                            sc.run, sc.harness)
    v = evaluate(tight)
    assert not v.passed
    assert any("rms error" in f for f in v.failures)
    assert any("max error" in f for f in v.failures)

    def failing_check(seed: int) -> Series:
        s = SCENARIOS["clean"].run(seed)
        s.checks.append(("always false", False))
        return s

    v = evaluate(LibraryScenario("x", "", SCENARIOS["clean"].limits, failing_check, "twoway"))
    assert v.failures == ("check failed: always false",)


def test_cli_scenario_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--scenario", "loss-30pct", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["passed"] is True and d["scenario"] == "loss-30pct"
    assert d["rms_error_ns"] <= d["limits"]["rms_ns"]
    assert main(["sim", "--scenario", "no-such-scenario"]) == 2
    assert main(["sim", "--list-scenarios"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SCENARIOS)
