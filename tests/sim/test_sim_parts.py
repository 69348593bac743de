"""The simulator's parts: oscillators, links, scheduler."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from netclock.sim.clock import ClockStep, SimClock
from netclock.sim.link import Link, LinkSpec, Spike, link_pair
from netclock.sim.scheduler import Scheduler

S = 1_000_000_000
T0 = 1_700_000_000 * S


# -- oscillators ------------------------------------------------------------------------------


def test_clock_without_frequency_terms_is_exact() -> None:
    c = SimClock(start_ns=T0, offset_ns=-T0 + 5 * S)
    for t in (T0, T0 + 1, T0 + 123_456_789_012, T0 - 7):
        assert c.read(t) == t - T0 + 5 * S


def test_clock_constant_drift() -> None:
    c = SimClock(start_ns=T0, freq_ppm=10.0)
    assert c.read(T0 + S) == T0 + S + 10_000
    assert c.read(T0 + 100 * S) == T0 + 100 * S + 1_000_000
    assert c.freq_ppb(T0 + 3 * S) == pytest.approx(10_000.0)


def test_clock_steps_apply_from_their_time() -> None:
    c = SimClock(start_ns=T0, steps=[ClockStep(T0 + 10 * S, 1_000_000), ClockStep(T0 + 20 * S, -5)])
    assert c.read(T0 + 10 * S - 1) == T0 + 10 * S - 1
    assert c.read(T0 + 10 * S) == T0 + 10 * S + 1_000_000
    assert c.read(T0 + 30 * S) == T0 + 30 * S + 1_000_000 - 5


def test_clock_wander_is_seeded_and_order_independent() -> None:
    times = [T0 + k * 250_000_000 for k in range(400)]
    a = SimClock(start_ns=T0, wander_ppb=5.0, rng=random.Random(3))
    b = SimClock(start_ns=T0, wander_ppb=5.0, rng=random.Random(3))
    c = SimClock(start_ns=T0, wander_ppb=5.0, rng=random.Random(4))
    fwd = [a.read(t) for t in times]
    back = [b.read(t) for t in reversed(times)][::-1]
    assert fwd == back
    assert fwd != [c.read(t) for t in times]
    # The random walk does move the frequency (100 s at 5 ppb/sqrt(s): ~50 ppb).
    assert a.freq_ppb(times[-1]) != 0.0
    # Phase is continuous: no jump larger than the frequency allows between close readings.
    for t in times[:50]:
        assert abs((a.read(t + 1000) - a.read(t)) - 1000) <= 1


def test_clock_temperature_term_is_periodic() -> None:
    c = SimClock(start_ns=T0, temp_ppb=100.0, temp_period_ns=600 * S)
    # Zero mean frequency: the phase returns to zero after one period.
    assert c.read(T0 + 600 * S) == T0 + 600 * S
    assert c.read(T0 + 300 * S) - (T0 + 300 * S) == round(100e-9 * 2 * 600e9 / (2 * math.pi))


# -- links --------------------------------------------------------------------------------------


def _delays(spec: LinkSpec, n: int = 20_000, seed: int = 1) -> list[int]:
    link = Link(spec, random.Random(seed))
    out = []
    for k in range(n):
        t = T0 + k * 10_000_000
        at = link.transit(t)
        if at is not None:
            out.append(at - t)
    return out


def test_link_loss_drops_about_the_configured_fraction() -> None:
    spec = LinkSpec(loss=0.05)
    link = Link(spec, random.Random(9))
    got = [link.transit(T0 + k) for k in range(20_000)]
    frac = sum(1 for g in got if g is None) / len(got)
    assert 0.045 < frac < 0.055
    assert link.lost == sum(1 for g in got if g is None)


@pytest.mark.parametrize(
    ("dist", "check"),
    [
        ("exponential", lambda d: statistics.fmean(d) - 100_000),
        ("pareto", lambda d: statistics.fmean(d) - 100_000),
        ("lognormal", lambda d: statistics.fmean(d) - 100_000),
        ("normal", lambda d: statistics.pstdev(d)),
    ],
)
def test_link_jitter_distributions_have_the_configured_scale(dist: str, check: object) -> None:
    d = _delays(LinkSpec(base_ns=100_000, jitter_ns=5_000.0, jitter_dist=dist))
    assert callable(check)
    assert check(d) == pytest.approx(5_000, rel=0.15)
    if dist != "normal":
        assert min(d) >= 100_000  # one-sided queueing jitter


def test_link_heavy_tail_is_heavier_than_exponential() -> None:
    exp = sorted(_delays(LinkSpec(jitter_ns=5_000.0, jitter_dist="exponential")))
    par = sorted(_delays(LinkSpec(jitter_ns=5_000.0, jitter_dist="pareto", pareto_alpha=1.8)))
    assert par[-20] > 2 * exp[-20]


def test_link_scheduled_spike_only_inside_its_window() -> None:
    spec = LinkSpec(base_ns=100_000, spikes=(Spike(T0 + 10 * S, 5 * S, 2_000_000),))
    link = Link(spec, random.Random(1))
    assert link.transit(T0 + 9 * S) == T0 + 9 * S + 100_000
    assert link.transit(T0 + 10 * S) == T0 + 10 * S + 2_100_000
    assert link.transit(T0 + 15 * S) == T0 + 15 * S + 100_000


def test_link_random_spikes_happen_at_about_their_rate() -> None:
    spec = LinkSpec(base_ns=100_000, spike_rate_per_s=1 / 60, spike_mean_s=2.0, spike_ns=1_000_000)
    d = _delays(spec, n=60_000)  # 600 s at 100 Hz: ~10 spikes of ~2 s
    spiked = sum(1 for x in d if x > 500_000) / len(d)
    assert 0.005 < spiked < 0.1


def test_link_reorder_makes_packets_overtake() -> None:
    link = Link(LinkSpec(reorder=0.1, reorder_hold_ns=5_000_000), random.Random(2))
    arrivals = [link.transit(T0 + k * 1_000_000) for k in range(2_000)]
    seq = [a for a in arrivals if a is not None]
    inversions = sum(1 for a, b in itertools.pairwise(seq) if b < a)
    assert inversions > 100
    assert link.reordered == pytest.approx(200, rel=0.25)


def test_link_pair_splits_asymmetry_exactly() -> None:
    for asym in (0, 1, 7, -40_000, 40_001):
        f, r = link_pair(LinkSpec(), LinkSpec(), asym, random.Random(1), random.Random(2))
        df = f.transit(T0)
        dr = r.transit(T0)
        assert df is not None and dr is not None
        assert (df - T0) - (dr - T0) == asym


def test_link_draws_do_not_depend_on_outcomes() -> None:
    # Turning loss on must not reshuffle the jitter of the packets that get through.
    a = Link(LinkSpec(jitter_ns=1000.0), random.Random(5))
    b = Link(LinkSpec(jitter_ns=1000.0, loss=0.3), random.Random(5))
    for k in range(500):
        x, y = a.transit(T0 + k), b.transit(T0 + k)
        if y is not None:
            assert x == y


def test_link_spec_validation() -> None:
    with pytest.raises(ValueError):
        LinkSpec(jitter_dist="uniform")
    with pytest.raises(ValueError):
        LinkSpec(loss=1.0)
    with pytest.raises(ValueError):
        LinkSpec(jitter_dist="pareto", pareto_alpha=1.0)


# -- scheduler ------------------------------------------------------------------------------------


def test_scheduler_runs_in_time_then_insertion_order() -> None:
    s = Scheduler(0)
    log: list[tuple[int, str]] = []
    s.at(20, lambda: log.append((s.now, "b")))
    s.at(10, lambda: log.append((s.now, "a")))
    s.at(20, lambda: log.append((s.now, "c")))
    h = s.at(15, lambda: log.append((s.now, "x")))
    h.cancel()

    def later() -> None:
        s.after(5, lambda: log.append((s.now, "d")))

    s.at(10, later)
    s.run_until(100)
    assert log == [(10, "a"), (15, "d"), (20, "b"), (20, "c")]
    assert s.now == 100
    with pytest.raises(ValueError):
        s.at(99, lambda: None)


def test_scheduler_stops_at_the_end_time() -> None:
    s = Scheduler(0)
    log: list[int] = []
    s.at(50, lambda: log.append(50))
    s.at(51, lambda: log.append(51))
    s.run_until(50)
    assert log == [50]
    assert s.pending() == 1
    s.run_until(60)
    assert log == [50, 51]
