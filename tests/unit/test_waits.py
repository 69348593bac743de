"""Clock waits: order, results, unschedule (thread and asyncio), periodic ids, re-arm.

Waits are a few ms long. Assertions are on order and results; jitter only gets sanity
bounds (OK/EARLY ≥ 0, UNSCHEDULED-before-target < 0, everything < 1 s).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from netclock.calibration import Calibration
from netclock.clock import ClockError
from netclock.platform.clocks import CalibratedClock, SysClockId, SystemClock
from netclock.platform.slaved import SlavedClock
from netclock.platform.waits import ClockId, WaitResult, new_periodic_id, new_single_shot_id

MS = 1_000_000
NS_PER_S = 1_000_000_000


@pytest.fixture(params=[SysClockId.MONOTONIC, SysClockId.REALTIME, SysClockId.TAI])
def clock(request: pytest.FixtureRequest) -> SystemClock:
    return SystemClock(request.param)


def test_single_shot_ok(clock: SystemClock) -> None:
    target = clock.now_ns() + 10 * MS
    cid = new_single_shot_id(clock, target)
    result, jitter = cid.wait()
    assert result is WaitResult.OK
    assert clock.now_ns() >= target
    assert 0 <= jitter < NS_PER_S


def test_past_target_is_early(clock: SystemClock) -> None:
    cid = new_single_shot_id(clock, clock.now_ns() - 5 * MS)
    result, jitter = cid.wait()
    assert result is WaitResult.EARLY
    assert 5 * MS <= jitter < NS_PER_S


def test_waits_fire_in_target_order() -> None:
    clock = SystemClock()
    # Targets well beyond thread start-up time, 15 ms apart (room for a loaded machine).
    now = clock.now_ns() + 40 * MS
    offsets = [45, 0, 30, 15, 60]
    fired: list[tuple[int, WaitResult]] = []
    lock = threading.Lock()

    def waiter(off: int) -> None:
        r, _ = new_single_shot_id(clock, now + off * MS).wait()
        with lock:
            fired.append((off, r))

    threads = [threading.Thread(target=waiter, args=(o,)) for o in offsets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert [o for o, _ in fired] == sorted(offsets)
    assert all(r is WaitResult.OK for _, r in fired)


def test_unschedule_from_another_thread() -> None:
    clock = SystemClock()
    target = clock.now_ns() + 30 * NS_PER_S
    cid = new_single_shot_id(clock, target)
    out: list[tuple[WaitResult, int]] = []
    t = threading.Thread(target=lambda: out.append(cid.wait()))
    t.start()
    time.sleep(0.01)
    assert t.is_alive()
    cid.unschedule()
    t.join(5)
    assert not t.is_alive()
    result, jitter = out[0]
    assert result is WaitResult.UNSCHEDULED
    assert jitter < 0  # woken well before the target
    # An unscheduled id cannot be reused.
    assert cid.wait()[0] is WaitResult.UNSCHEDULED
    assert cid.unscheduled


def test_unschedule_wakes_several_blocked_waiters() -> None:
    clock = SystemClock()
    cid = new_single_shot_id(clock, clock.now_ns() + 30 * NS_PER_S)
    results: list[WaitResult] = []
    threads = [threading.Thread(target=lambda: results.append(cid.wait()[0])) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    cid.unschedule()
    for t in threads:
        t.join(5)
    assert results == [WaitResult.UNSCHEDULED] * 3


def test_periodic_advances_by_interval(clock: SystemClock) -> None:
    start = clock.now_ns() + 2 * MS
    cid = new_periodic_id(clock, start, 3 * MS)
    targets = []
    for _ in range(4):
        targets.append(cid.time_ns)
        result, jitter = cid.wait()
        assert result in (WaitResult.OK, WaitResult.EARLY)
        assert 0 <= jitter < NS_PER_S
    assert targets == [start + i * 3 * MS for i in range(4)]
    assert cid.time_ns == start + 12 * MS
    assert cid.interval_ns == 3 * MS


def test_periodic_late_wait_is_early_and_advances() -> None:
    clock = SystemClock()
    start = clock.now_ns() - 10 * MS
    cid = new_periodic_id(clock, start, 4 * MS)
    r1, j1 = cid.wait()
    assert r1 is WaitResult.EARLY and j1 >= 10 * MS
    assert cid.time_ns == start + 4 * MS


def test_bad_arguments() -> None:
    clock = SystemClock()
    with pytest.raises(ValueError):
        new_periodic_id(clock, 0, 0)
    with pytest.raises(TypeError):
        ClockId(clock, 1.5)  # type: ignore[arg-type]


def test_asyncio_waits_in_order_and_unschedule() -> None:
    clock = SystemClock()

    async def main() -> None:
        now = clock.now_ns()
        ids = {off: new_single_shot_id(clock, now + off * MS) for off in (40, 10, 25)}
        fired: list[int] = []

        async def one(off: int) -> None:
            r, j = await ids[off].wait_async()
            assert r is WaitResult.OK and 0 <= j < NS_PER_S
            fired.append(off)

        await asyncio.gather(*(one(o) for o in ids))
        assert fired == [10, 25, 40]

        # Unschedule from the loop.
        far = new_single_shot_id(clock, clock.now_ns() + 30 * NS_PER_S)
        task = asyncio.create_task(far.wait_async())
        await asyncio.sleep(0.005)
        far.unschedule()
        r, j = await asyncio.wait_for(task, 5)
        assert r is WaitResult.UNSCHEDULED and j < 0

        # Unschedule from another thread.
        far2 = new_single_shot_id(clock, clock.now_ns() + 30 * NS_PER_S)
        task2 = asyncio.create_task(far2.wait_async())
        await asyncio.sleep(0.005)
        threading.Thread(target=far2.unschedule).start()
        r2, _ = await asyncio.wait_for(task2, 5)
        assert r2 is WaitResult.UNSCHEDULED
        assert (await far2.wait_async())[0] is WaitResult.UNSCHEDULED

        # A target already past is EARLY.
        r3, j3 = await new_single_shot_id(clock, clock.now_ns() - MS).wait_async()
        assert r3 is WaitResult.EARLY and j3 >= MS

    asyncio.run(main())


def test_async_callback_in_loop_periodic_until_unscheduled() -> None:
    clock = SystemClock()

    async def main() -> list[tuple[WaitResult, int]]:
        calls: list[tuple[WaitResult, int]] = []
        start = clock.now_ns() + 2 * MS
        cid = new_periodic_id(clock, start, 2 * MS)

        def cb(i: ClockId, result: WaitResult, jitter: int) -> None:
            assert i is cid
            calls.append((result, jitter))
            if len(calls) == 3:
                i.unschedule()

        task = cid.wait_async(cb)
        with pytest.raises(ClockError, match="already has an async callback"):
            cid.wait_async(cb)
        await asyncio.wait_for(task, 5)
        return calls

    calls = asyncio.run(main())
    assert [r for r, _ in calls[:3]] != [WaitResult.UNSCHEDULED] * 3
    assert all(r in (WaitResult.OK, WaitResult.EARLY) for r, _ in calls[:3])
    # After the third callback unscheduled it, one last UNSCHEDULED callback ends the loop.
    assert calls[3][0] is WaitResult.UNSCHEDULED
    assert len(calls) == 4


def test_async_callback_without_loop_uses_thread() -> None:
    clock = SystemClock()
    done = threading.Event()
    got: list[tuple[WaitResult, str]] = []

    def cb(_i: ClockId, result: WaitResult, _jitter: int) -> None:
        got.append((result, threading.current_thread().name))
        done.set()

    t = new_single_shot_id(clock, clock.now_ns() + 30 * MS).wait_async(cb)
    assert isinstance(t, threading.Thread)
    assert done.wait(5)
    t.join(5)
    assert got[0][0] is WaitResult.OK
    assert got[0][1] != threading.current_thread().name


def test_wait_on_slaved_clock_uses_its_time() -> None:
    s = SlavedClock()
    s.set_calibration(
        Calibration(internal=s.internal_now_ns(), external=50 * NS_PER_S, rate_num=2, rate_denom=1)
    )
    target = s.now_ns() + 20 * MS  # 20 ms of slaved time = 10 ms of base time at rate 2
    r, j = new_single_shot_id(s, target).wait()
    assert r is WaitResult.OK
    assert s.now_ns() >= target
    assert 0 <= j < NS_PER_S


def test_pending_wait_rearms_on_recalibration() -> None:
    s = SlavedClock()
    base0 = s.internal_now_ns()
    s.set_calibration(Calibration(internal=base0, external=0))
    target = 60 * NS_PER_S  # a minute away under the first calibration
    cid = new_single_shot_id(s, target)
    out: list[tuple[WaitResult, int]] = []
    t = threading.Thread(target=lambda: out.append(cid.wait()))
    t.start()
    time.sleep(0.01)
    assert t.is_alive()
    # New calibration: the target is now 5 ms away. The waiter must re-arm, not sleep 60 s.
    b = s.internal_now_ns()
    s.set_calibration(Calibration(internal=b, external=target - 5 * MS))
    t.join(5)
    assert not t.is_alive()
    assert out[0][0] is WaitResult.OK
    assert cid.wakeups >= 1
    assert s.now_ns() >= target


def test_async_wait_rearms_on_recalibration() -> None:
    s = SlavedClock()
    s.set_calibration(Calibration(internal=s.internal_now_ns(), external=0))
    target = 60 * NS_PER_S

    async def main() -> tuple[WaitResult, int]:
        cid = new_single_shot_id(s, target)
        task = asyncio.create_task(cid.wait_async())
        await asyncio.sleep(0.01)
        assert not task.done()
        # Recalibrated from another thread (as the sampler thread does).
        b = s.internal_now_ns()
        threading.Thread(
            target=s.set_calibration,
            args=(Calibration(internal=b, external=target - 3 * MS),),
        ).start()
        res: tuple[WaitResult, int] = await asyncio.wait_for(task, 5)
        return res

    r, _ = asyncio.run(main())
    assert r is WaitResult.OK
    assert s.now_ns() >= target


def test_wait_on_live_slaved_clock() -> None:
    # A slaved clock being sampled on its thread (recalibrating every 2 ms) while periodic
    # waits run on it: every wait completes in order.
    mono = SystemClock()
    t0 = mono.now_ns()
    master_cal = Calibration(
        internal=t0, external=t0 + NS_PER_S, rate_num=1_000_200, rate_denom=1_000_000
    )

    class Master:
        flags = mono.flags
        resolution_ns = 1

        def now_ns(self) -> int:
            return master_cal.to_external(mono.now_ns())

    s = SlavedClock(timeout_ns=2 * MS)
    s.set_master(Master())
    try:
        deadline = time.monotonic() + 5
        while not s.status().synced and time.monotonic() < deadline:
            time.sleep(0.005)
        start = s.now_ns() + 3 * MS
        cid = new_periodic_id(s, start, 3 * MS)
        results = [cid.wait()[0] for _ in range(5)]
        assert all(r in (WaitResult.OK, WaitResult.EARLY) for r in results)
        assert s.now_ns() >= start + 12 * MS
        assert cid.time_ns == start + 15 * MS
    finally:
        s.set_master(None)


def test_wait_on_half_speed_calibrated_clock_rearms() -> None:
    # A clock running at half the base rate: 10 ms of its time take 20 ms of base time. The
    # wait is converted with to_internal (not slept as 10 ms), and a recalibration re-arms it.
    mono = SystemClock()
    clk = CalibratedClock(mono, Calibration(mono.now_ns(), 0, rate_num=1, rate_denom=2))
    target = clk.now_ns() + 10 * MS
    base_before = mono.now_ns()
    r, j = new_single_shot_id(clk, target).wait()
    assert r is WaitResult.OK and 0 <= j < NS_PER_S
    assert mono.now_ns() - base_before >= 20 * MS - 2  # rounding of to_internal
    # Re-arm: a far target brought near by a new calibration from another thread.
    cid = new_single_shot_id(clk, clk.now_ns() + 60 * NS_PER_S)
    out: list[WaitResult] = []
    t = threading.Thread(target=lambda: out.append(cid.wait()[0]))
    t.start()
    time.sleep(0.01)
    clk.set_calibration(Calibration(mono.now_ns(), cid.time_ns - MS), new_epoch=True)
    t.join(5)
    assert out == [WaitResult.OK]
