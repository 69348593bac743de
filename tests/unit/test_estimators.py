"""netclock.estimators: the common interface, GStreamer's regression, linuxptp's PI, netclock's."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.estimators import (
    ESTIMATORS,
    GstEstimator,
    PiConfig,
    PiEstimator,
    TwoWaySample,
    WindowConfig,
    WindowEstimator,
    create_estimator,
    default_window_config,
)
from netclock.estimators.gst import gst_linear_regression
from netclock.estimators.pi import pi_gains

S = 1_000_000_000
T0 = 1_700_000_000 * S


def exchange(
    t: int, *, offset: int = 0, ppm: float = 0.0, d_ms: int = 50_000, d_sm: int = 50_000
) -> TwoWaySample:
    """A two-way exchange at master time ``t``; slave local = t + offset + ppm drift."""

    def local(x: int) -> int:
        return x + offset + round((x - T0) * ppm * 1e-6)

    t2 = local(t + d_ms)
    t3 = t2 + 100_000
    # True time of t3 on the slave (drift is small over 100 us: ignore it).
    t4 = t + d_ms + 100_000 + d_sm
    return TwoWaySample(t, t2, t3, t4)


# -- TwoWaySample ---------------------------------------------------------------------------------


def test_two_way_sample_arithmetic() -> None:
    s = exchange(T0, offset=1_000, d_ms=70_000, d_sm=30_000)
    assert s.rtt_ns == 100_000
    assert s.delay_ns == 50_000
    # offset measured = true offset + asymmetry / 2
    assert s.offset_ns == 1_000 + 20_000
    assert s.local_mid - s.master_mid == 21_000


# -- GStreamer regression -------------------------------------------------------------------------


def test_gst_regression_on_a_perfect_line() -> None:
    xs = [10**13 + k * S for k in range(32)]
    ys = [T0 + (x - xs[0]) + (x - xs[0]) // 100_000 for x in xs]  # rate 1 + 10 ppm
    res = gst_linear_regression(xs, ys)
    assert res is not None
    num, den, b, xbase, r2 = res
    assert xbase == xs[-1]
    # GStreamer drops precision bits to keep its int64 sums from overflowing (ns values over
    # 32 s): the rate is off by a few ppb, the anchor by a few tens of ns.
    assert num / den == pytest.approx(1.00001, abs=1e-8)
    assert abs(b - ys[-1]) <= 100
    assert r2 == pytest.approx(1.0)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([100_000_000, 125_000_000, 500_000_000, S, 2 * S]),
    st.lists(
        st.tuples(st.integers(-1_000_000, 1_000_000), st.integers(-100_000, 100_000)),
        min_size=4,
        max_size=32,
    ),
    st.integers(-50_000, 50_000),
)
def test_gst_regression_matches_exact_least_squares(
    interval: int, steps: list[tuple[int, int]], ppb: int
) -> None:
    # GStreamer's regimes: up to 32 observations every 100 ms (GstClock's default timeout)
    # to 2 s (PTP sync intervals), with jitter and noise.
    xs, ys = [], []
    x = 10**13
    for jit, noise in steps:
        x += interval + jit
        xs.append(x)
        ys.append(T0 + x + (x - 10**13) * ppb // S + noise)
    res = gst_linear_regression(xs, ys)
    n = len(xs)
    mx = Fraction(sum(xs), n)
    my = Fraction(sum(ys), n)
    sxx = sum((Fraction(v) - mx) ** 2 for v in xs)
    sxy = sum((Fraction(a) - mx) * (Fraction(b) - my) for a, b in zip(xs, ys, strict=True))
    slope = sxy / sxx
    assert res is not None
    num, den, b, xbase, _ = res
    assert xbase == max(xs)
    # The bits shifted off (up to 6 for a 64 s span) cost GStreamer a few ppb on the rate
    # and some tens of ns on the anchor.
    assert float(Fraction(num, den) - slope) == pytest.approx(0.0, abs=2e-8)
    exact_b = my + slope * (xbase - mx)
    assert abs(float(b - exact_b)) < 500


def test_gst_regression_drops_precision_for_long_windows() -> None:
    # 32 observations 1 s apart span 35 bits of ns: GStreamer shifts 4 bits (16 ns) off.
    xs = [10**13 + k * S for k in range(32)]
    ys = [T0 + x + (x - xs[0]) * 3 // S for x in xs]  # +3 ppb
    res = gst_linear_regression(xs, ys)
    assert res is not None
    num, den, b, _, _ = res
    assert abs(num / den - (1 + 3e-9)) > 1e-10  # precision lost
    assert abs(num / den - (1 + 3e-9)) < 5e-8
    assert abs(b - ys[-1]) < 1_000


def test_gst_estimator_threshold_window_and_no_outlier_rejection() -> None:
    g = GstEstimator()
    for k in range(3):
        g.update(exchange(T0 + k * S, offset=-T0 + 5 * S), 0)
        assert g.to_master(5 * S) is None
    g.update(exchange(T0 + 3 * S, offset=-T0 + 5 * S), 0)
    local_now = 3 * S + 5 * S
    assert g.to_master(local_now) == T0 + 3 * S
    # One 1 ms outlier moves the unweighted fit: GStreamer has no rejection.
    g.update(exchange(T0 + 4 * S, offset=-T0 + 5 * S, d_ms=2_050_000), 0)
    moved = g.to_master(4 * S + 5 * S)
    assert moved is not None and abs(moved - (T0 + 4 * S)) > 50_000
    # ... until it slides out of the 32-observation window.
    for k in range(5, 37):
        g.update(exchange(T0 + k * S, offset=-T0 + 5 * S), 0)
    assert g.to_master(36 * S + 5 * S) == T0 + 36 * S
    assert g.epoch == 0


# -- linuxptp PI ----------------------------------------------------------------------------------


def test_pi_gains_follow_linuxptp_software_constants() -> None:
    cfg = PiConfig()
    assert pi_gains(cfg, 1.0) == pytest.approx((0.1, 0.001))
    kp, ki = pi_gains(cfg, 0.125)
    assert kp == pytest.approx(0.1 * 0.125**-0.3)
    assert ki == pytest.approx(0.001 * 0.125**0.4)
    # Long intervals hit kp_norm_max / T.
    kp, ki = pi_gains(cfg, 64.0)
    assert kp == pytest.approx(0.7 / 64)
    assert ki == pytest.approx(0.3 / 64)


def _feed(pi: PiEstimator, n: int, step_s: float = 1.0, **kw: float | int) -> None:
    for k in range(n):
        t = T0 + round(k * step_s * S)
        s = exchange(t, **kw)  # type: ignore[arg-type]
        pi.update(s, s.t3 + 200_000)


def test_pi_first_steps_wait_then_jump() -> None:
    pi = PiEstimator(1.0)
    off = -T0 + 5 * S  # local monotonic vs master: decades apart
    # ptp4l needs a delay first, then remembers sample 0, then waits 0.016/ki = 16 s.
    _feed(pi, 17, offset=off)
    assert pi.to_master(10 * S) is None
    assert pi.state == "unlocked"
    _feed_from(pi, 17, 19, offset=off)
    assert pi.state == "locked"  # jumped at the 18th exchange, locked afterwards
    assert pi.steps == 1 and pi.epoch == 1
    t = T0 + 18 * S
    assert pi.to_master(t + off) == t


def _feed_from(pi: PiEstimator, start: int, stop: int, **kw: float | int) -> None:
    for k in range(start, stop):
        s = exchange(T0 + k * S, **kw)  # type: ignore[arg-type]
        pi.update(s, s.t3 + 200_000)


def test_pi_small_first_offset_locks_without_a_step() -> None:
    pi = PiEstimator(1.0)
    _feed(pi, 25, offset=15_000)  # below first_step_threshold (20 us)
    assert pi.steps == 0
    assert pi.state == "locked"


def test_pi_estimates_the_drift_at_its_first_update() -> None:
    pi = PiEstimator(1.0)
    _feed(pi, 19, offset=3 * S, ppm=10.0)
    rate = pi.rate_ppb()
    assert rate is not None
    assert rate == pytest.approx(-10_000.0, abs=20.0)


def test_pi_uses_the_median_filtered_delay() -> None:
    pi = PiEstimator(1.0)
    _feed(pi, 30)
    before = pi.last_ppb
    # One exchange whose Delay_Req path is 1 ms slower: the median of 10 ignores it, and
    # the Sync path (t2 - t1) is unchanged, so the servo sees ~no offset.
    _feed_from(pi, 30, 31, d_sm=1_050_000)
    _feed_from(pi, 31, 32)
    assert abs(pi.last_ppb - before) < 1.0


def test_pi_step_threshold_restarts_the_servo() -> None:
    pi = PiEstimator(1.0, PiConfig(step_threshold_ns=1_000_000))
    _feed(pi, 30)
    assert pi.state == "locked"
    _feed_from(pi, 30, 32, offset=5_000_000)
    assert pi.state == "unlocked"


# -- netclock window ------------------------------------------------------------------------------


def test_window_estimator_rejects_a_delay_spike_and_holds() -> None:
    w = WindowEstimator(WindowConfig(window_size=32))
    off = -T0 + 5 * S
    rng = random.Random(1)
    for k in range(40):
        w.update(exchange(T0 + k * S, offset=off, d_ms=50_000 + rng.randrange(2_000)), 0)
    cal = w.calibration
    w.update(exchange(T0 + 40 * S, offset=off, d_ms=2_050_000), 0)
    assert w.rejected == 1
    assert w.calibration is cal  # not refitted
    t = T0 + 41 * S
    got = w.to_master(t + off)
    assert got is not None and abs(got - t) < 2_000


def test_window_estimator_accepts_a_new_path_after_max_hold() -> None:
    w = WindowEstimator(WindowConfig(window_size=32, reject_hold_ns=10 * S))
    off = -T0 + 5 * S
    for k in range(40):
        w.update(exchange(T0 + k * S, offset=off), (k + 5) * S)
    # The path becomes 2 ms longer in both directions for good.
    for k in range(40, 70):
        w.update(exchange(T0 + k * S, offset=off, d_ms=2_050_000, d_sm=2_050_000), (k + 5) * S)
    assert w.resets == 1
    assert 9 <= w.rejected <= 11
    t = T0 + 70 * S
    assert w.to_master(t + off) == t


def test_window_estimator_weights_by_round_trip() -> None:
    # Exponential queueing: the RTT-weighted window beats GStreamer's plain regression.
    rng = random.Random(7)
    w, g = WindowEstimator(), GstEstimator()
    errs_w, errs_g = [], []
    off = -T0 + 5 * S
    for k in range(300):
        s = exchange(
            T0 + k * S,
            offset=off,
            d_ms=50_000 + round(rng.expovariate(1 / 10_000)),
            d_sm=50_000 + round(rng.expovariate(1 / 10_000)),
        )
        w.update(s, 0)
        g.update(s, 0)
        if k >= 100:
            t = T0 + k * S + 500_000_000
            pw, pg = w.to_master(t + off), g.to_master(t + off)
            assert pw is not None and pg is not None
            errs_w.append(pw - t)
            errs_g.append(pg - t)
    assert _rms(errs_w) < 0.5 * _rms(errs_g)


def _rms(v: list[int]) -> float:
    return float((sum(x * x for x in v) / len(v)) ** 0.5)


def test_window_floor_flattens_for_symmetric_noise() -> None:
    # Gaussian jitter: a low RTT does not mean a good offset, so the weights go (nearly) flat
    # and the longer window beats GStreamer's 32-point regression anyway.
    def run(gauss: bool) -> tuple[int, float, float]:
        rng = random.Random(3)
        w, g = WindowEstimator(), GstEstimator()
        errs_w, errs_g = [], []
        off = -T0 + 5 * S
        for k in range(400):
            if gauss:
                a, b = rng.gauss(0, 5_000), rng.gauss(0, 5_000)
            else:
                a, b = rng.expovariate(1 / 5_000), rng.expovariate(1 / 5_000)
            s = exchange(T0 + k * S, offset=off, d_ms=50_000 + round(a), d_sm=50_000 + round(b))
            w.update(s, 0)
            g.update(s, 0)
            if k >= 150:
                t = T0 + k * S + 500_000_000
                pw, pg = w.to_master(t + off), g.to_master(t + off)
                assert pw is not None and pg is not None
                errs_w.append(pw - t)
                errs_g.append(pg - t)
        return w.wc.effective_floor_ns, _rms(errs_w), _rms(errs_g)

    floor_g, rms_wg, rms_gg = run(True)
    floor_e, rms_we, rms_ge = run(False)
    assert floor_g > 3 * floor_e
    assert rms_wg < 0.8 * rms_gg
    assert rms_we < 0.5 * rms_ge


def test_window_ignores_reordered_exchanges() -> None:
    w = WindowEstimator()
    off = -T0
    for k in (0, 1, 2, 3, 5, 4, 6):
        w.update(exchange(T0 + k * S, offset=off), 0)
    assert len(w.wc.observations) == 6


def test_default_window_scales_with_the_interval() -> None:
    # 128 exchanges, and at least 64 s of them: 512 at 2^-3 s.
    for interval, expect in ((S, 128), (S // 8, 513), (16 * S, 128)):
        w = WindowEstimator(default_window_config(interval / S))
        for k in range(700):
            w.update(exchange(T0 + k * interval, offset=-T0), 0)
        assert len(w.wc.observations) == expect


# -- registry -------------------------------------------------------------------------------------


def test_registry() -> None:
    assert sorted(ESTIMATORS) == ["gst", "pi", "window"]
    for name in ESTIMATORS:
        e = create_estimator(name, 1.0)
        assert e.name == name
        assert e.to_master(0) is None
    with pytest.raises(ValueError, match="unknown estimator"):
        create_estimator("kalman", 1.0)
