"""Whole simulated runs: reproducibility, ground truth, impairments, and scenario limits.

The limit tests follow linuxptp-testsuite's shape (a scenario, then bounds on the time to lock
and on the error once locked) with bounds loose enough to hold for the fixed seeds used.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from netclock.sim.scenario import Scenario, SpikeSpec, StepSpec, result_dict, run_scenario

QUIET = Scenario(jitter_us=0.0, drift_ppm=0.0, duration_s=40.0)


def _errors(sc: Scenario) -> list[int]:
    return [e for e in run_scenario(sc).run.errors_ns if e is not None]


# -- reproducibility --------------------------------------------------------------------------


@pytest.mark.parametrize("est", ["window", "gst", "pi"])
def test_same_seed_same_run_different_seed_different_run(est: str) -> None:
    sc = Scenario(estimator=est, duration_s=60.0, wander_ppb=2.0, loss=0.05, seed=11)
    a, b = run_scenario(sc), run_scenario(sc)
    assert a.run.errors_ns == b.run.errors_ns
    assert result_dict(a) == result_dict(b)
    c = run_scenario(replace(sc, seed=12))
    assert c.run.errors_ns != a.run.errors_ns


# -- ground truth -----------------------------------------------------------------------------


@pytest.mark.parametrize("est", ["window", "gst"])
def test_noiseless_zero_drift_run_has_zero_error(est: str) -> None:
    res = run_scenario(replace(QUIET, estimator=est))
    errs = [e for e in res.run.errors_ns if e is not None]
    assert len(errs) > 350
    assert set(errs) == {0}
    assert res.metrics.rms_error_ns == 0.0
    assert res.metrics.freq_error_ppb == 0.0


def test_noiseless_zero_drift_pi_is_exact_once_it_has_stepped() -> None:
    res = run_scenario(replace(QUIET, estimator="pi"))
    assert res.metrics.locked
    assert res.metrics.max_error_ns == 0.0


@pytest.mark.parametrize("est", ["window", "gst"])
@pytest.mark.parametrize("asym_us", [40.0, -13.0, 0.002])
def test_asymmetry_biases_the_offset_by_half_of_it_exactly(est: str, asym_us: float) -> None:
    errs = _errors(replace(QUIET, estimator=est, asymmetry_us=asym_us))
    # Forward (master→slave) slower by A: the slave believes it is A/2 further ahead, so the
    # published master time is A/2 early. 2 ns asymmetry: exactly 1 ns.
    assert set(errs) == {-round(asym_us * 1000) // 2}


def test_drift_alone_is_tracked_to_the_ns() -> None:
    errs = _errors(replace(QUIET, drift_ppm=50.0, master_drift_ppm=-3.0))
    assert max(abs(e) for e in errs[100:]) <= 2


# -- each impairment impairs ------------------------------------------------------------------


def test_jitter_impairs() -> None:
    quiet = run_scenario(replace(QUIET, estimator="gst")).metrics
    for dist in ("normal", "exponential", "pareto"):
        m = run_scenario(replace(QUIET, estimator="gst", jitter_us=10.0, jitter_dist=dist)).metrics
        assert m.rms_all_error_ns > 300 > quiet.rms_all_error_ns


def test_loss_drops_about_the_configured_fraction() -> None:
    res = run_scenario(Scenario(duration_s=400.0, loss=0.1, interval_log2=-1, seed=3))
    sent = res.sent_ms + res.sent_sm
    lost = res.lost_ms + res.lost_sm
    assert 0.08 < lost / sent < 0.12
    # Three messages per exchange: ~0.9^3 of the exchanges complete.
    assert 0.65 < res.exchanges / res.syncs_sent < 0.80


def test_spike_impairs_the_unfiltered_regression() -> None:
    base = Scenario(estimator="gst", duration_s=120.0)
    calm = run_scenario(base).metrics
    spiked = run_scenario(replace(base, spikes=(SpikeSpec(60.0, 5.0, 2000.0),))).metrics
    assert spiked.rms_all_error_ns > 20 * calm.rms_all_error_ns


def test_wander_and_temperature_impair() -> None:
    # A perfect path: only the oscillator can make the window fit wrong.
    sc = replace(QUIET, estimator="gst", duration_s=120.0)
    calm = run_scenario(sc).metrics.rms_all_error_ns
    assert run_scenario(replace(sc, wander_ppb=20.0)).metrics.rms_all_error_ns > calm + 5
    hot = replace(sc, temp_ppb=5000.0, temp_period_s=60.0)
    assert run_scenario(hot).metrics.rms_all_error_ns > calm + 5


def test_reordering_happens_and_is_survived() -> None:
    res = run_scenario(Scenario(duration_s=60.0, interval_log2=-3, reorder=0.2))
    link = res.run.net.link("master", "slave") if res.run.net else None
    assert link is not None and link.reordered > 100
    assert res.metrics.locked


# -- scenario limits (netclock's window estimator) ----------------------------------------------

DRIFT = Scenario(duration_s=200.0, drift_ppm=100.0, wander_ppb=1.0)
SPIKE = Scenario(duration_s=200.0, spikes=(SpikeSpec(100.0, 10.0, 2000.0),))
STEP = Scenario(duration_s=200.0, steps=(StepSpec(100.0, 1_000_000_000),))
LIMITS = [
    # name, scenario, max lock time (s), max rms after lock (ns)
    ("default", Scenario(duration_s=200.0), 10.0, 1_500),
    ("large drift + wander", DRIFT, 10.0, 1_500),
    ("large jitter", Scenario(duration_s=200.0, jitter_us=20.0), 60.0, 4_000),
    ("heavy-tailed jitter", Scenario(duration_s=200.0, jitter_dist="pareto"), 20.0, 2_000),
    ("5% loss, 8 Hz", Scenario(duration_s=60.0, loss=0.05, interval_log2=-3), 10.0, 1_500),
    ("2 ms spike", SPIKE, 10.0, 1_500),
    ("master step 1 s", STEP, None, 1_500),
]


@pytest.mark.parametrize(("name", "sc", "lock_s", "rms_ns"), LIMITS, ids=[x[0] for x in LIMITS])
def test_window_estimator_scenario_limits(
    name: str, sc: Scenario, lock_s: float | None, rms_ns: float
) -> None:
    m = run_scenario(replace(sc, estimator="window", seed=5)).metrics
    assert m.locked, name
    assert m.lock_time_s is not None
    if lock_s is not None:
        assert m.lock_time_s <= lock_s
    else:  # a step unlocks; it must relock within 20 s of the step
        assert m.lock_time_s <= 120.0
    assert m.rms_error_ns <= rms_ns
    assert m.freq_error_ppb is not None and abs(m.freq_error_ppb) < 100.0
