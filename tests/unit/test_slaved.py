"""SlavedClock: recovers a real master's rate and offset; holdover; thread and asyncio sampling.

The master is real: CLOCK_MONOTONIC read through a fixed, known Calibration (offset and a
500 ppm rate error), so the true answer is known exactly while the sampling runs on live
clock reads with their real bracket noise.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from netclock.calibration import Calibration
from netclock.clock import Clock, ClockError, ClockFlags
from netclock.platform.clocks import CalibratedClock, SysClockId, SystemClock
from netclock.platform.slaved import DEFAULT_TIMEOUT_NS, SlavedClock

NS_PER_S = 1_000_000_000
RATE_PPM = 500


def make_master(offset_ns: int, rate_ppm: int = RATE_PPM) -> CalibratedClock:
    """A real master: CLOCK_MONOTONIC through a fixed calibration (offset, rate error)."""
    mono = SystemClock(SysClockId.MONOTONIC)
    t0 = mono.now_ns()
    cal = Calibration(
        internal=t0, external=t0 + offset_ns, rate_num=1_000_000 + rate_ppm, rate_denom=1_000_000
    )
    return CalibratedClock(mono, cal, name="master")


def drive(slaved: SlavedClock, n: int, interval_s: float = 0.002) -> None:
    for _ in range(n):
        slaved.sample_once()
        time.sleep(interval_s)


def assert_tracks(slaved: SlavedClock, master: CalibratedClock) -> None:
    cal = slaved.calibration
    # Rate: within 20 ppm of the true 500 ppm (bracket noise over ~0.1 s of samples).
    assert abs(cal.rate_ppb() - master.calibration.rate_ppb()) < 20_000
    # Offset: the two maps agree within 20 µs at the current internal time.
    x = slaved.internal_now_ns()
    assert abs(cal.to_external(x) - master.calibration.to_external(x)) < 20_000
    # And a live read of the slaved clock is close to a live read of the master.
    assert abs(slaved.now_ns() - master.now_ns()) < 1_000_000


def test_defaults_and_flags() -> None:
    s = SlavedClock()
    assert s.timeout_ns == DEFAULT_TIMEOUT_NS == 100_000_000
    assert ClockFlags.CAN_SET_MASTER in s.flags
    assert ClockFlags.CAN_BE_MASTER in s.flags
    assert isinstance(s, Clock)
    assert s.resolution_ns == SystemClock().resolution_ns
    # Unsynced: identity over the base clock.
    a = s.internal_now_ns()
    b = s.now_ns()
    assert 0 <= b - a < NS_PER_S
    assert s.error_bound_ns() is None
    assert not s.status().synced
    with pytest.raises(ValueError):
        s.set_master(s)


def test_recovers_rate_and_offset_ahead() -> None:
    master = make_master(+3 * NS_PER_S)
    s = SlavedClock()
    s.set_master(master, start_thread=False)
    drive(s, 40)
    assert s.status().synced
    assert_tracks(s, master)


def test_recovers_master_behind_base() -> None:
    # The first fit starts a new epoch, so the monotonic hold does not freeze the clock at
    # the (higher) identity reading it returned before the master was known.
    master = make_master(-2 * NS_PER_S, rate_ppm=-300)
    s = SlavedClock()
    before = s.now_ns()
    s.set_master(master, start_thread=False)
    drive(s, 40)
    assert s.now_ns() < before
    assert_tracks(s, master)


def test_thread_sampling_then_holdover() -> None:
    master = make_master(5 * NS_PER_S)
    s = SlavedClock(timeout_ns=2_000_000, holdover_rate_ppb=1000)
    s.set_master(master)
    try:
        deadline = time.monotonic() + 10
        while s.status().samples < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.status().samples >= 40
        # Never backwards while sampling (same epoch throughout: the master is continuous).
        prev = s.now_ns()
        for _ in range(2000):
            v = s.now_ns()
            assert v >= prev
            prev = v
        assert_tracks(s, master)
    finally:
        s.set_master(None)
    st = s.status()
    assert st.holdover and not st.slaved and st.synced
    cal = s.calibration
    n = st.samples
    time.sleep(0.02)
    assert s.status().samples == n  # sampling stopped
    assert s.calibration == cal  # calibration kept
    assert_tracks(s, master)  # and still good shortly after
    # Error bound grows with time since the last update at holdover_rate_ppb.
    last = st.last_update_internal
    assert last is not None
    b0 = s.error_bound_ns(last)
    assert b0 is not None and b0 >= 0
    assert s.error_bound_ns(last + 10 * NS_PER_S) == b0 + 10_000
    assert s.error_bound_ns(last + 3600 * NS_PER_S) == b0 + 3_600_000
    s.configure(holdover_rate_ppb=50)
    assert s.error_bound_ns(last + 10 * NS_PER_S) == b0 + 500
    assert s.status(last + NS_PER_S).error_bound_ns == b0 + 50


def test_asyncio_sampling() -> None:
    master = make_master(NS_PER_S)
    s = SlavedClock(timeout_ns=2_000_000)

    async def main() -> None:
        s.set_master(master, start_thread=False)
        task = asyncio.create_task(s.run_sampling())
        deadline = time.monotonic() + 10
        while s.status().samples < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        s.set_master(None)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert s.status().samples >= 40
    assert s.status().holdover
    assert_tracks(s, master)


def test_runtime_window_configuration() -> None:
    master = make_master(0)
    s = SlavedClock(window_size=16, window_threshold=8)
    s.set_master(master, start_thread=False)
    drive(s, 7, 0.001)
    assert not s.status().synced  # threshold not reached yet
    s.configure(window_threshold=4)
    s.sample_once()
    assert s.status().synced
    s.configure(window_size=4)
    assert s.window_size == 4
    for _ in range(3):
        time.sleep(0.001)
        s.sample_once()
    fit = s.status().last_fit
    assert fit is not None and fit.used <= 4
    with pytest.raises(ValueError):
        s.configure(window_threshold=5)  # above window_size
    with pytest.raises(ValueError):
        s.configure(timeout_ns=0)


def test_new_master_starts_new_epoch() -> None:
    m1, m2 = make_master(NS_PER_S), make_master(-NS_PER_S)
    s = SlavedClock()
    s.set_master(m1, start_thread=False)
    drive(s, 20, 0.001)
    e1 = s.calibration.epoch
    s.set_master(m2, start_thread=False)
    # Until the new master's first fit, the old calibration stays in use.
    assert s.calibration.epoch == e1
    drive(s, 40)
    assert s.calibration.epoch == e1 + 1
    assert_tracks(s, m2)


def test_manual_calibration_notifies_listeners() -> None:
    s = SlavedClock()
    seen: list[Calibration] = []
    s.add_calibration_listener(seen.append)
    s.set_calibration(Calibration(internal=0, external=10 * NS_PER_S))
    assert len(seen) == 1 and seen[0].external == 10 * NS_PER_S
    assert abs(s.now_ns() - (s.internal_now_ns() + 10 * NS_PER_S)) < NS_PER_S
    s.remove_calibration_listener(seen.append)
    s.set_calibration(Calibration())
    assert len(seen) == 1


def test_wait_for_sync() -> None:
    s = SlavedClock(timeout_ns=2_000_000)
    assert not s.wait_for_sync(0)
    s.set_master(make_master(0))
    try:
        assert s.wait_for_sync(10)
        assert s.status().synced
    finally:
        s.close()
    assert s.master is None


class UnpluggedPhc:
    """A master that fails like a removed /dev/ptpN (no such device can be made here)."""

    flags = ClockFlags.CAN_BE_MASTER | ClockFlags.HARDWARE
    resolution_ns = 1

    def now_ns(self) -> int:
        raise ClockError("reading /dev/ptp9 failed: No such device", path="/dev/ptp9")


def test_master_read_errors_are_counted_and_calibration_kept() -> None:
    s = SlavedClock(timeout_ns=1_000_000)
    s.set_master(make_master(NS_PER_S), start_thread=False)
    drive(s, 10, 0.001)
    cal = s.calibration
    s.set_master(UnpluggedPhc())
    try:
        deadline = time.monotonic() + 10
        while s.status().sample_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        st = s.status()
        assert st.sample_errors >= 3
        assert st.slaved and st.synced
        assert s.calibration == cal  # still running on the last good calibration
        with pytest.raises(ClockError, match="/dev/ptp9"):
            s.sample_once()
    finally:
        s.set_master(None)
