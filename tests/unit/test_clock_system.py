"""Kernel system clocks through the Clock interface (real clock reads, read-only)."""

from __future__ import annotations

import time

import pytest

from netclock.calibration import Calibration
from netclock.clock import Clock, ClockError, ClockFlags
from netclock.platform.clocks import (
    CalibratedClock,
    SysClockId,
    SystemClock,
    kernel_tai_offset_s,
    monotonic,
)

NS_PER_S = 1_000_000_000


@pytest.mark.parametrize("cid", list(SysClockId))
def test_every_system_clock_reads(cid: SysClockId) -> None:
    clk = SystemClock(cid)
    assert isinstance(clk, Clock)
    assert clk.flags == ClockFlags.CAN_BE_MASTER
    assert clk.resolution_ns == max(1, round(time.clock_getres(cid) * NS_PER_S))
    assert clk.resolution_ns >= 1
    a = clk.now_ns()
    b = time.clock_gettime_ns(cid)
    assert isinstance(a, int)
    assert 0 <= b - a < NS_PER_S
    assert clk.name == f"CLOCK_{cid.name}"
    assert clk.description


@pytest.mark.parametrize(
    "cid", [SysClockId.MONOTONIC, SysClockId.MONOTONIC_RAW, SysClockId.BOOTTIME]
)
def test_monotonic_clocks_never_go_back(cid: SysClockId) -> None:
    clk = SystemClock(cid)
    prev = clk.now_ns()
    for _ in range(10_000):
        v = clk.now_ns()
        assert v >= prev
        prev = v


def test_boottime_not_behind_monotonic() -> None:
    mono = SystemClock(SysClockId.MONOTONIC).now_ns()
    boot = SystemClock(SysClockId.BOOTTIME).now_ns()
    assert boot >= mono


def test_realtime_is_unix_time() -> None:
    rt = SystemClock(SysClockId.REALTIME).now_ns()
    assert abs(rt - time.time_ns()) < NS_PER_S


def test_tai_offset_reported_not_fixed() -> None:
    tai = SystemClock(SysClockId.TAI)
    off = tai.kernel_tai_offset_s
    assert off == kernel_tai_offset_s()
    # Consistent with a direct read of the two clocks.
    diff = time.clock_gettime_ns(time.CLOCK_TAI) - time.clock_gettime_ns(time.CLOCK_REALTIME)
    assert abs(diff - off * NS_PER_S) < NS_PER_S // 10
    assert tai.tai_offset_valid == (off != 0)
    # Plausible values only: unset (0) or a real TAI-UTC offset.
    assert off == 0 or 10 <= off <= 100


def test_unsupported_clock_id() -> None:
    with pytest.raises(ClockError, match="unsupported system clock id 12345"):
        SystemClock(12345)


def test_monotonic_helper() -> None:
    assert monotonic().clock_id is SysClockId.MONOTONIC
    assert repr(monotonic()) == "SystemClock(MONOTONIC)"


def test_calibrated_clock_over_monotonic() -> None:
    mono = SystemClock()
    t0 = mono.now_ns()
    cal = Calibration(internal=t0, external=10**18, rate_num=1_000_001, rate_denom=1_000_000)
    clk = CalibratedClock(mono, cal, flags=ClockFlags.CAN_BE_MASTER | ClockFlags.NETWORK)
    assert isinstance(clk, Clock)
    assert ClockFlags.NETWORK in clk.flags
    assert clk.resolution_ns == mono.resolution_ns
    a = clk.now_ns()
    x = mono.now_ns()
    assert 0 <= cal.to_external(x) - a < NS_PER_S
    # A calibration 1 ms behind in the same epoch: reads hold instead of going back.
    clk.set_calibration(Calibration(internal=t0, external=10**18 - 1_000_000))
    b = clk.now_ns()
    assert b >= a
    # In a new epoch the clock may go back.
    clk.set_calibration(Calibration(internal=t0, external=10**18 - 10**9), new_epoch=True)
    assert clk.now_ns() < a
    assert clk.calibration.external == 10**18 - 10**9
