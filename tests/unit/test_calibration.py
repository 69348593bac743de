"""Calibration and windowed fit (netclock.calibration)."""

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.calibration import (
    RATE_DENOM,
    Calibration,
    MonotonicHold,
    Observation,
    WindowedCalibration,
    fit_observations,
)
from netclock.time import NS_PER_S

HUNDRED_YEARS_NS = 36525 * 86400 * NS_PER_S  # 100 Julian years in ns
NEAR_2_63 = (1 << 63) - 200 * NS_PER_S


def truth(x: int, x0: int, rate_ppb: int, offset: int) -> int:
    """Exact reference: y = x0 + offset + (x - x0) * (1 + rate_ppb / 1e9), rounded."""
    d = x - x0
    num = d * (10**9 + rate_ppb)
    q, r = divmod(num, 10**9)
    return x0 + offset + q + (1 if 2 * r >= 10**9 else 0)


class TestCalibration:
    def test_identity(self) -> None:
        c = Calibration()
        assert c.to_external(12345) == 12345
        assert c.to_internal(12345) == 12345

    def test_gstreamer_formula(self) -> None:
        c = Calibration(internal=1000, external=5000, rate_num=3, rate_denom=2)
        assert c.to_external(1000) == 5000
        assert c.to_external(1010) == 5015
        assert c.to_internal(5015) == 1010
        assert c.offset_at(1000) == 4000
        assert c.rate() == 1.5

    def test_hundred_years_no_overflow_both_ways(self) -> None:
        # Rate 1 + 50 ppm with the fit's 2^40 denominator, over 100 years.
        c = Calibration(0, 0, RATE_DENOM + 54_975_581, RATE_DENOM)
        for x in (HUNDRED_YEARS_NS, -HUNDRED_YEARS_NS, NEAR_2_63):
            y = c.to_external(x)
            exact = Fraction(x * (RATE_DENOM + 54_975_581), RATE_DENOM)
            assert abs(y - exact) <= Fraction(1, 2)  # exact integer rounding, no float
            assert abs(c.to_internal(y) - x) <= 1

    def test_rounding_is_to_nearest(self) -> None:
        c = Calibration(0, 0, 1, 3)
        assert [c.to_external(x) for x in (1, 2, 3, -1, -2)] == [0, 1, 1, 0, -1]

    @pytest.mark.parametrize("num,den", [(0, 1), (1, 0), (-1, 1), (1 << 42, 1)])
    def test_bad_rate(self, num: int, den: int) -> None:
        with pytest.raises(ValueError, match="rate"):
            Calibration(rate_num=num, rate_denom=den)

    def test_ints_only(self) -> None:
        with pytest.raises(TypeError, match="internal"):
            Calibration(internal=1.5)  # type: ignore[arg-type]

    def test_step_bumps_epoch(self) -> None:
        c = Calibration(10, 20)
        s = c.stepped(-5)
        assert (s.external, s.epoch) == (15, 1)
        assert c.rebased(110).to_external(200) == c.to_external(200)

    @given(
        st.integers(-HUNDRED_YEARS_NS, HUNDRED_YEARS_NS),
        st.integers(-HUNDRED_YEARS_NS, HUNDRED_YEARS_NS),
        st.integers(-(10**6), 10**6),
        st.integers(-HUNDRED_YEARS_NS, HUNDRED_YEARS_NS),
    )
    def test_round_trip_within_one_ns(self, internal: int, external: int, ppb: int, x: int) -> None:
        num = RATE_DENOM + ppb * RATE_DENOM // 10**9
        c = Calibration(internal, external, num, RATE_DENOM)
        assert abs(c.to_internal(c.to_external(x)) - x) <= 1
        # and monotone
        assert c.to_external(x + 1) >= c.to_external(x)


class TestFit:
    @pytest.mark.parametrize("base", [0, 10**18, NEAR_2_63])
    @pytest.mark.parametrize("rate_ppb", [0, 50_000, -123_456, 7])
    def test_noiseless_recovery(self, base: int, rate_ppb: int) -> None:
        offset = 1_234_567_890_123
        obs = [
            Observation(base + i * NS_PER_S, truth(base + i * NS_PER_S, base, rate_ppb, offset))
            for i in range(32)
        ]
        fit = fit_observations(obs)
        assert fit is not None
        c = fit.calibration
        assert abs(c.rate_ppb() - rate_ppb) < 1.0  # within 1 ppb
        for x in (base, base + 10 * NS_PER_S, base + 31 * NS_PER_S):
            assert abs(c.to_external(x) - truth(x, base, rate_ppb, offset)) <= 1  # within 1 ns
        assert fit.r_squared > 0.999999
        assert fit.used == 32 and fit.rejected == 0

    def test_too_few_points(self) -> None:
        assert fit_observations([Observation(0, 0)]) is None
        assert fit_observations([Observation(5, 0), Observation(5, 9)]) is None

    def test_outlier_rejected(self) -> None:
        obs = [Observation(i * NS_PER_S, i * NS_PER_S + 100) for i in range(20)]
        obs[7] = Observation(7 * NS_PER_S, 7 * NS_PER_S + 5_000_000)
        plain = fit_observations(obs)
        robust = fit_observations(obs, outlier_k=4.0)
        assert plain is not None and robust is not None
        assert robust.rejected == 1
        assert robust.calibration.offset_at(19 * NS_PER_S) == 100
        assert abs(plain.calibration.offset_at(19 * NS_PER_S) - 100) > 10_000

    def test_weights_follow_error(self) -> None:
        # Two bad observations carry big error bounds: they barely move the weighted fit.
        obs = [Observation(i * NS_PER_S, i * NS_PER_S, error_ns=1000) for i in range(10)]
        obs[3] = Observation(3 * NS_PER_S, 3 * NS_PER_S + 400_000, error_ns=400_000)
        obs[6] = Observation(6 * NS_PER_S, 6 * NS_PER_S + 300_000, error_ns=300_000)
        fit = fit_observations(obs)
        assert fit is not None
        assert abs(fit.calibration.offset_at(9 * NS_PER_S)) < 50


class TestWindowedCalibration:
    def feed(self, w: WindowedCalibration, n: int, start: int = 0, offset: int = 0) -> None:
        for i in range(start, start + n):
            w.add_observation(i * NS_PER_S, i * NS_PER_S + offset)

    def test_defaults_and_threshold(self) -> None:
        w = WindowedCalibration()
        assert (w.window_size, w.window_threshold) == (32, 4)
        assert (w.window_span_ns, w.window_max) == (0, 1024)  # count only unless asked
        results = [w.add_observation(i * NS_PER_S, i * NS_PER_S + 7) for i in range(4)]
        assert results[:3] == [None, None, None]
        assert results[3] is not None
        assert w.calibration is not None and w.calibration.offset_at(10**12) == 7

    def test_window_slides(self) -> None:
        w = WindowedCalibration(window_size=8, window_threshold=4, window_span_ns=0)
        self.feed(w, 20)
        assert len(w.observations) == 8
        assert w.observations[0].internal == 12 * NS_PER_S

    def test_window_spans_time_as_well_as_count(self) -> None:
        # 8 per second: at least 10 s of them are kept (80), capped at window_max.
        w = WindowedCalibration(window_size=16, window_span_ns=10 * NS_PER_S, window_max=64)
        for i in range(200):
            w.add_observation(i * NS_PER_S // 8, i * NS_PER_S // 8)
        assert len(w.observations) == 64
        w.configure(window_max=1000)
        for i in range(200, 400):
            w.add_observation(i * NS_PER_S // 8, i * NS_PER_S // 8)
        obs = w.observations
        assert len(obs) == 81 and obs[-1].internal - obs[0].internal == 10 * NS_PER_S
        # A 1 s span holds 9 of them: the count (16) wins.
        w.configure(window_span_ns=NS_PER_S)
        assert len(w.observations) == 16

    def test_runtime_resize(self) -> None:
        w = WindowedCalibration(window_size=32, window_span_ns=0)
        self.feed(w, 40)
        w.set_window(window_size=5, window_threshold=3)
        assert len(w.observations) == 5
        w.set_window(window_size=64)
        self.feed(w, 10, start=40)
        assert len(w.observations) == 15
        with pytest.raises(ValueError, match="window_threshold"):
            w.set_window(window_size=4, window_threshold=6)
        assert w.window_size == 64  # nothing changed on error

    @pytest.mark.parametrize(
        "kw",
        [{"window_size": 1}, {"outlier_k": 0.5}, {"error_floor_ns": 0}, {"step_confirm": 0}],
    )
    def test_bad_tuning(self, kw: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            WindowedCalibration(**kw)  # type: ignore[arg-type]

    def test_unapplied(self) -> None:
        w = WindowedCalibration()
        self.feed(w, 10)
        before = w.calibration
        fit = w.add_observation_unapplied(10 * NS_PER_S, 10 * NS_PER_S + 1000)
        assert fit is not None
        assert w.calibration == before
        w.apply(fit)
        assert w.calibration == fit.calibration

    def test_must_advance(self) -> None:
        w = WindowedCalibration()
        w.add_observation(10, 10)
        with pytest.raises(ValueError, match="advance"):
            w.add_observation(10, 11)
        with pytest.raises(TypeError):
            w.add_observation(11.0, 11)  # type: ignore[arg-type]

    def test_single_spike_ignored(self) -> None:
        w = WindowedCalibration()
        self.feed(w, 20)
        assert w.add_observation(20 * NS_PER_S, 20 * NS_PER_S + 50_000_000) is None
        self.feed(w, 5, start=21)
        assert w.calibration is not None
        assert w.calibration.offset_at(25 * NS_PER_S) == 0
        assert w.epoch == 0 and w.steps == 0

    def test_step_detected_and_epoch_bumped(self) -> None:
        w = WindowedCalibration(window_size=16)
        rate_ppb = 20_000
        for i in range(16):
            x = i * NS_PER_S
            w.add_observation(x, truth(x, 0, rate_ppb, 0))
        results = []
        for i in range(16, 24):
            x = i * NS_PER_S
            results.append(w.add_observation(x, truth(x, 0, rate_ppb, NS_PER_S)))
        stepped = [r for r in results if r is not None and r.stepped]
        assert len(stepped) == 1
        assert w.epoch == 1 and w.steps == 1
        c = w.calibration
        assert c is not None and c.epoch == 1
        x = 30 * NS_PER_S
        assert abs(c.to_external(x) - truth(x, 0, rate_ppb, NS_PER_S)) <= 2
        assert abs(c.rate_ppb() - rate_ppb) < 1.0  # the rate survived the step

    @staticmethod
    def wild_then_good(w: WindowedCalibration, good: int) -> list[int]:
        """A wild burst (ms of scatter over 4 s: a rate hundreds of ppm off), then noiseless
        data at offset 0 and rate 20 ppm; returns |error| at each good observation."""
        burst = [0, 3_000_000, -2_000_000, 6_000_000]
        for i, off in enumerate(burst):
            w.add_observation(i * NS_PER_S, i * NS_PER_S + off)
        assert w.calibration is not None and abs(w.calibration.rate_ppb()) > 100_000
        errs = []
        for i in range(len(burst), len(burst) + good):
            x = i * NS_PER_S
            w.add_observation(x, truth(x, 0, 20_000, 0))
            c = w.calibration
            assert c is not None
            errs.append(abs(c.to_external(x) - truth(x, 0, 20_000, 0)))
        return errs

    def test_wild_first_fit_recovers(self) -> None:
        w = WindowedCalibration(window_size=16)
        assert w.lost_limit == 6
        errs = self.wild_then_good(w, 40)
        # Candidates never agree on a step; after lost_limit + 1 of them the fit is lost and
        # the window restarts from them: exact from then on.
        assert max(errs[7:]) <= 1
        assert w.fit_resets == 1 and w.steps == 0 and w.epoch == 1
        c = w.calibration
        assert c is not None and c.epoch == 1 and abs(c.rate_ppb() - 20_000) < 1.0

    def test_wild_first_fit_without_loss_detection_stays_wrong(self) -> None:
        # The defect the loss detection fixes: disagreeing candidates never confirm a step.
        w = WindowedCalibration(window_size=16, lost_after=65536)
        errs = self.wild_then_good(w, 40)
        assert min(errs) > 1_000_000 and w.fit_resets == 0 and w.steps == 0

    def test_adaptive_floor_keeps_every_point_in_play(self) -> None:
        # Errors a few µs apart but offsets scattering regardless of them (symmetric noise):
        # a fixed 50 ns floor hands the fit to the few lowest-error points; the adaptive
        # floor weighs them nearly evenly and its error is clearly smaller.
        def rms(**kw: float) -> float:
            total = 0.0
            for seed in range(3):
                rng = random.Random(seed)
                w = WindowedCalibration(window_size=64, **kw)  # type: ignore[arg-type]
                sq = []
                for i in range(250):
                    x = i * NS_PER_S
                    err = 10_000 + rng.randrange(4_000)
                    w.add_observation(x, x + round(rng.gauss(0, 2_000)), err)
                    c = w.calibration
                    if i >= 100 and c is not None:
                        sq.append(c.offset_at(x) ** 2)
                total += math.sqrt(sum(sq) / len(sq))
            return total / 3

        fixed, adaptive = rms(floor_k=0.0, floor_scale=0.0), rms()
        assert adaptive < 0.6 * fixed

    def test_delay_spike_withheld_then_path_change_accepted(self) -> None:
        w = WindowedCalibration(window_size=64, reject_hold_ns=10 * NS_PER_S)
        rng = random.Random(2)
        for i in range(30):
            w.add_observation(i * NS_PER_S, i * NS_PER_S, 25_000 + rng.randrange(1_000))
        cal = w.calibration
        # +1 ms on one path: the offset moves by half, the error bound (half RTT) too.
        assert w.add_observation(30 * NS_PER_S, 30 * NS_PER_S + 500_000, 525_000) is None
        assert w.rejected == 1 and w.calibration is cal
        # The path grows by 2 ms both ways for good: after 10 s of local time the hold gives
        # up and the new observations are fitted again.
        for i in range(31, 50):
            w.add_observation(i * NS_PER_S, i * NS_PER_S, 1_025_000)
        assert w.spike_resets == 1 and 10 <= w.rejected <= 11
        assert w.observations[-1].internal == 49 * NS_PER_S
        c = w.calibration
        assert c is not None and c.offset_at(49 * NS_PER_S) == 0
        # Run-time switch: 0 disables the filter.
        w.configure(reject_k=0.0)
        assert w.add_observation(50 * NS_PER_S, 50 * NS_PER_S, 10_000_000) is not None

    def test_reset_bumps_epoch(self) -> None:
        w = WindowedCalibration()
        self.feed(w, 5)
        w.reset()
        assert w.calibration is None and w.epoch == 1 and not w.observations

    def test_noisy_fit_is_unbiased(self) -> None:
        rng = random.Random(4)
        w = WindowedCalibration()
        for i in range(64):
            x = 10**15 + i * NS_PER_S // 8
            w.add_observation(x, truth(x, 10**15, 30_000, 500) + round(rng.gauss(0, 1000)))
        c = w.calibration
        assert c is not None
        assert abs(c.rate_ppb() - 30_000) < 300
        x = 10**15 + 63 * NS_PER_S // 8
        assert abs(c.to_external(x) - truth(x, 10**15, 30_000, 500)) < 1500


class TestMonotonicHold:
    def test_holds_until_caught_up(self) -> None:
        h = MonotonicHold()
        fast = Calibration(0, 0, 11, 10)
        slow = Calibration(0, -50, 1, 1)
        assert h.read(fast, 100) == 110
        assert h.read(slow, 110) == 110  # slow says 60: held
        assert h.read(slow, 150) == 110  # slow says 100: held
        assert h.read(slow, 170) == 120  # caught up
        assert h.holds == 2

    def test_new_epoch_may_go_back(self) -> None:
        h = MonotonicHold()
        assert h.read(Calibration(0, 1000), 0) == 1000
        assert h.read(Calibration(0, 0, epoch=1), 10) == 10

    @given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(1, 100)), min_size=1))
    def test_never_backwards(self, steps: list[tuple[int, int]]) -> None:
        h = MonotonicHold()
        x, last = 0, None
        for shift, dx in steps:
            x += dx
            v = h.read(Calibration(0, shift), x)
            if last is not None:
                assert v >= last
            last = v


@given(
    n=st.integers(5, 40),
    cut=st.integers(0, 45),
    rate_ppb=st.integers(-100_000, 100_000),
    seed=st.integers(0, 2**32),
)
def test_discard_before_leaves_the_fit_of_the_rest(
    n: int, cut: int, rate_ppb: int, seed: int
) -> None:
    """Dropping the oldest observations and refitting gives the fit a fresh window of the
    remaining ones gives; the calibration in force stays until the next fit."""
    rng = random.Random(seed)
    obs = []
    for i in range(n + 1):
        x = 10**12 + i * 250_000_000
        obs.append((x, truth(x, 10**12, rate_ppb, 5 * NS_PER_S) + rng.randint(-3_000, 3_000)))
    w = WindowedCalibration(64, 4, outlier_k=0)
    for x, y in obs[:n]:
        w.add_observation(x, y)
    before = w.calibration
    gone = w.discard_before(obs[min(cut, n)][0] if cut < n else obs[n][0])
    assert gone == min(cut, n)
    assert len(w) == n - gone
    assert w.calibration == before
    fresh = WindowedCalibration(64, 4, outlier_k=0)
    for x, y in obs[gone:n]:
        fresh.add_observation(x, y)
    a, b = w.add_observation(*obs[n]), fresh.add_observation(*obs[n])
    if n + 1 - gone < 4:
        assert a is None and b is None
    else:
        assert a is not None and b is not None
        assert a.calibration.to_external(obs[n][0]) == b.calibration.to_external(obs[n][0])
        assert a.calibration.rate_num == b.calibration.rate_num
