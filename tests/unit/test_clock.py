"""Pure clock helpers: flags, CalibratedTime (calibration + monotonic hold), HoldoverBound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.calibration import Calibration
from netclock.clock import CalibratedTime, ClockError, ClockFlags, HoldoverBound


def test_flags_combine() -> None:
    f = ClockFlags.CAN_BE_MASTER | ClockFlags.HARDWARE
    assert ClockFlags.HARDWARE in f
    assert ClockFlags.NETWORK not in f
    assert ClockFlags.CAN_SET_MASTER not in f
    members = [ClockFlags.CAN_BE_MASTER, ClockFlags.CAN_SET_MASTER, ClockFlags.HARDWARE]
    assert len({*members, ClockFlags.NETWORK}) == 4


def test_clock_error_path() -> None:
    e = ClockError("boom", path="/dev/ptp0")
    assert e.path == "/dev/ptp0"
    assert str(e) == "boom"
    assert ClockError("x").path is None


def test_calibrated_time_identity_by_default() -> None:
    ct = CalibratedTime()
    assert ct.read(12345) == 12345
    assert ct.calibration == Calibration()


def test_calibrated_time_applies_calibration() -> None:
    cal = Calibration(internal=1000, external=5_000_000, rate_num=2, rate_denom=1)
    ct = CalibratedTime(cal)
    assert ct.read(1000) == 5_000_000
    assert ct.read(1010) == 5_000_020


def test_hold_within_epoch_and_release_on_new_epoch() -> None:
    ct = CalibratedTime(Calibration(internal=0, external=1_000))
    assert ct.read(100) == 1_100
    # A recalibration 50 ns behind, same epoch: held until it catches up.
    ct.set(Calibration(internal=0, external=950))
    assert ct.read(120) == 1_100
    assert ct.holds == 1
    assert ct.read(151) == 1_101
    # Same values in a new hold epoch: allowed to go back.
    e0 = ct.hold_epoch
    ct.set(Calibration(internal=0, external=0), new_epoch=True)
    assert ct.hold_epoch == e0 + 1
    assert ct.read(152) == 152
    # A calibration whose own epoch changed also starts a new hold epoch.
    ct.set(Calibration(internal=0, external=-100, epoch=3))
    assert ct.read(153) == 53
    assert ct.raw(153) == 53


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(-(10**6), 10**6), st.booleans()),
        min_size=1,
        max_size=50,
    )
)
def test_never_backwards_within_hold_epoch(steps: list[tuple[int, int, bool]]) -> None:
    ct = CalibratedTime()
    internal = 0
    last: tuple[int, int] | None = None
    for dt, shift, recal in steps:
        internal += dt
        if recal:
            ct.set(Calibration(internal=internal, external=internal + shift))
        v = ct.read(internal)
        if last is not None and last[0] == ct.hold_epoch:
            assert v >= last[1]
        last = (ct.hold_epoch, v)


def test_holdover_bound_grows_linearly() -> None:
    hb = HoldoverBound(base_error_ns=500, since_internal=10**9, rate_ppb=1000)
    assert hb.bound(10**9) == 500
    assert hb.bound(0) == 500  # before the last update: no growth
    assert hb.bound(10**9 + 10**9) == 500 + 1000  # 1 s at 1000 ppb = 1 µs
    assert hb.bound(10**9 + 60 * 10**9) == 500 + 60_000
    assert hb.bound(10**9 + 1) == 501  # ceil: any elapsed time adds at least 1 ns
    assert HoldoverBound(7, 0, -20).bound(10**9) == 27  # |rate|
    with pytest.raises(ValueError):
        HoldoverBound(-1, 0, 1)


@given(st.integers(0, 10**15), st.integers(0, 10**15), st.integers(0, 10**6))
def test_holdover_bound_monotonic(a: int, b: int, rate: int) -> None:
    hb = HoldoverBound(10, 0, rate)
    lo, hi = sorted((a, b))
    assert hb.bound(lo) <= hb.bound(hi)
    growth = hb.bound(hi) - 10
    # growth is the smallest integer with growth * 1e9 >= rate * elapsed (a ceiling).
    assert growth * 10**9 >= rate * hi
    assert (growth - 1) * 10**9 < rate * hi or growth == 0
