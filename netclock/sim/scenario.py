"""Scenarios: one frozen description of a simulated run, and running it.

Pure module. A :class:`Scenario` holds every knob (oscillators, links, impairments, estimator,
measurement). :func:`run_scenario` builds the clocks and links from it with random streams
derived from ``seed`` and a per-part name (so adding an impairment to one link never changes
another link's draws), runs :func:`~netclock.sim.twoway.run_twoway` and returns the metrics.
The same scenario always gives the same result; :func:`result_dict` is what ``netclock sim
--json`` prints.

Time origin: true time starts at ``START_NS`` (2023-11-14 in ns since 1970, master timescale);
the master clock reads true time plus its own frequency terms; the slave's local monotonic
clock starts at ``slave_uptime_s`` (so the two differ by ~53 years, as CLOCK_MONOTONIC and
TAI do).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from netclock.estimators import Estimator, create_estimator
from netclock.sim.clock import ClockStep, SimClock
from netclock.sim.link import LinkSpec, Spike, link_pair
from netclock.sim.metrics import Metrics, compute_metrics
from netclock.sim.twoway import TwoWayRun, run_twoway

__all__ = ["START_NS", "Scenario", "SimResult", "interval_ns", "result_dict", "run_scenario"]

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S


def interval_ns(interval_log2: int) -> int:
    """2^interval_log2 seconds in ns (exact for -9..30)."""
    if interval_log2 >= 0:
        return NS_PER_S << interval_log2
    return NS_PER_S >> -interval_log2


@dataclass(frozen=True, slots=True)
class SpikeSpec:
    """A delay spike: ``extra_us`` more delay for packets sent in [at_s, at_s + duration_s)."""

    at_s: float
    duration_s: float
    extra_us: float
    direction: str = "ms"  # "ms" master→slave, "sm" slave→master, "both"

    def __post_init__(self) -> None:
        if self.direction not in ("ms", "sm", "both"):
            raise ValueError("spike direction must be ms, sm or both")

    def to_spike(self) -> Spike:
        return Spike(
            START_NS + round(self.at_s * NS_PER_S),
            round(self.duration_s * NS_PER_S),
            round(self.extra_us * 1000),
        )


@dataclass(frozen=True, slots=True)
class StepSpec:
    """The master's clock jumps by ``step_ns`` at ``at_s``."""

    at_s: float
    step_ns: int


@dataclass(frozen=True, slots=True)
class Scenario:
    estimator: str = "window"
    seed: int = 1
    duration_s: float = 300.0
    interval_log2: int = 0
    # Slave oscillator (local monotonic).
    drift_ppm: float = 10.0
    wander_ppb: float = 0.0
    temp_ppb: float = 0.0
    temp_period_s: float = 600.0
    slave_uptime_s: float = 12_345.0
    # Master oscillator.
    master_drift_ppm: float = 0.0
    master_wander_ppb: float = 0.0
    steps: tuple[StepSpec, ...] = ()
    # Path.
    delay_us: float = 100.0
    jitter_us: float = 5.0
    jitter_dist: str = "exponential"
    pareto_alpha: float = 2.5
    asymmetry_us: float = 0.0
    loss: float = 0.0
    reorder: float = 0.0
    spikes: tuple[SpikeSpec, ...] = ()
    spike_rate_per_min: float = 0.0
    spike_us: float = 0.0
    spike_mean_s: float = 2.0
    turnaround_us: float = 100.0
    # Measurement.
    sample_interval_ms: float = 100.0
    lock_threshold_us: float = 10.0
    settle_s: float = 0.0
    hold: bool = True

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or not -9 <= self.interval_log2 <= 10:
            raise ValueError("duration_s must be > 0 and interval_log2 in -9..10")


@dataclass(frozen=True, slots=True)
class SimResult:
    scenario: Scenario
    metrics: Metrics
    exchanges: int
    syncs_sent: int
    lost_ms: int
    lost_sm: int
    sent_ms: int
    sent_sm: int
    true_rate_ppb: float
    est_rate_ppb: float | None
    run: TwoWayRun


def _rng(seed: int, part: str) -> random.Random:
    return random.Random(f"netclock-sim:{seed}:{part}")


def _link_spec(sc: Scenario, direction: str) -> LinkSpec:
    spikes = tuple(s.to_spike() for s in sc.spikes if s.direction in (direction, "both"))
    return LinkSpec(
        base_ns=round(sc.delay_us * 1000),
        jitter_ns=sc.jitter_us * 1000.0,
        jitter_dist=sc.jitter_dist if sc.jitter_us > 0 else "none",
        pareto_alpha=sc.pareto_alpha,
        loss=sc.loss,
        reorder=sc.reorder,
        spikes=spikes,
        spike_rate_per_s=sc.spike_rate_per_min / 60.0,
        spike_mean_s=sc.spike_mean_s,
        spike_ns=round(sc.spike_us * 1000),
    )


def run_scenario(sc: Scenario, estimator: Estimator | None = None) -> SimResult:
    """Run ``sc`` (with ``estimator`` instead of ``sc.estimator`` if given)."""
    ivl = interval_ns(sc.interval_log2)
    est = estimator if estimator is not None else create_estimator(sc.estimator, ivl / NS_PER_S)
    master = SimClock(
        start_ns=START_NS,
        freq_ppm=sc.master_drift_ppm,
        wander_ppb=sc.master_wander_ppb,
        steps=[ClockStep(START_NS + round(s.at_s * NS_PER_S), s.step_ns) for s in sc.steps],
        rng=_rng(sc.seed, "master-clock"),
    )
    slave = SimClock(
        start_ns=START_NS,
        offset_ns=round(sc.slave_uptime_s * NS_PER_S) - START_NS,
        freq_ppm=sc.drift_ppm,
        wander_ppb=sc.wander_ppb,
        temp_ppb=sc.temp_ppb,
        temp_period_ns=round(sc.temp_period_s * NS_PER_S),
        rng=_rng(sc.seed, "slave-clock"),
    )
    fwd, rev = link_pair(
        _link_spec(sc, "ms"),
        _link_spec(sc, "sm"),
        round(sc.asymmetry_us * 1000),
        _rng(sc.seed, "link-ms"),
        _rng(sc.seed, "link-sm"),
    )
    run = run_twoway(
        master_clock=master,
        slave_clock=slave,
        forward=fwd,
        reverse=rev,
        estimator=est,
        start_ns=START_NS,
        duration_ns=round(sc.duration_s * NS_PER_S),
        interval_ns=ivl,
        sample_interval_ns=round(sc.sample_interval_ms * 1e6),
        turnaround_ns=round(sc.turnaround_us * 1000),
        hold=sc.hold,
    )
    ferr = None if run.est_rate_ppb_end is None else run.est_rate_ppb_end - run.true_rate_ppb_end
    metrics = compute_metrics(
        run.times_ns,
        run.errors_ns,
        start_ns=START_NS,
        lock_threshold_ns=round(sc.lock_threshold_us * 1000),
        settle_s=sc.settle_s,
        freq_error_ppb=ferr,
    )
    return SimResult(
        scenario=sc,
        metrics=metrics,
        exchanges=run.exchanges,
        syncs_sent=run.syncs_sent,
        lost_ms=fwd.lost,
        lost_sm=rev.lost,
        sent_ms=fwd.sent,
        sent_sm=rev.sent,
        true_rate_ppb=run.true_rate_ppb_end,
        est_rate_ppb=run.est_rate_ppb_end,
        run=run,
    )


def _clean(v: object) -> object:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return None
        return round(v, 3)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def result_dict(res: SimResult) -> dict[str, object]:
    """The JSON object ``netclock sim --json`` prints (floats rounded to 0.001, NaN → null)."""
    m = res.metrics
    out: dict[str, object] = {
        "estimator": res.scenario.estimator,
        "seed": res.scenario.seed,
        "rms_error_ns": m.rms_error_ns,
        "p99_error_ns": m.p99_error_ns,
        "max_error_ns": m.max_error_ns,
        "mean_error_ns": m.mean_error_ns,
        "rms_all_error_ns": m.rms_all_error_ns,
        "rms_settled_error_ns": m.rms_settled_error_ns,
        "p99_settled_error_ns": m.p99_settled_error_ns,
        "settle_s": m.settle_s,
        "freq_error_ppb": m.freq_error_ppb,
        "lock_time_s": m.lock_time_s,
        "locked": m.locked,
        "lock_threshold_ns": m.lock_threshold_ns,
        "error_stats_over": "samples after lock" if m.locked else "all samples (never locked)",
        "samples": m.samples,
        "samples_locked": m.samples_locked,
        "exchanges": res.exchanges,
        "syncs_sent": res.syncs_sent,
        "packets": {
            "sent_ms": res.sent_ms,
            "lost_ms": res.lost_ms,
            "sent_sm": res.sent_sm,
            "lost_sm": res.lost_sm,
        },
        "true_rate_ppb": res.true_rate_ppb,
        "est_rate_ppb": res.est_rate_ppb,
        "scenario": asdict(res.scenario),
    }
    return {k: _clean(v) for k, v in out.items()}
