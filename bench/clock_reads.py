"""ns per ``now_ns()`` call for each system clock, a PHC (if any), a slaved and a calibrated read.

Run: ``python bench/clock_reads.py [--calls N] [--repeat R]``. Prints a table (best and median
of R runs of N calls each); asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from collections.abc import Callable

from netclock.calibration import Calibration
from netclock.clock import CalibratedTime, ClockError
from netclock.platform.clocks import SysClockId, SystemClock
from netclock.platform.phc import PhcClock
from netclock.platform.slaved import SlavedClock


def per_call_ns(fn: Callable[[], int], calls: int, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter_ns() - t0) / calls)
    return min(runs), statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    rows: list[tuple[str, Callable[[], int]]] = []
    for cid in SysClockId:
        rows.append((f"SystemClock({cid.name}).now_ns", SystemClock(cid).now_ns))
    rows.append(("time.clock_gettime_ns(MONOTONIC)", lambda: time.clock_gettime_ns(1)))
    for path in sorted(glob.glob("/dev/ptp*"))[:1]:
        try:
            rows.append((f"PhcClock({path}).now_ns", PhcClock(path).now_ns))
        except ClockError as e:
            print(f"# {e}")

    mono = SystemClock()
    ct = CalibratedTime(Calibration(mono.now_ns(), 0, 1_000_000_123, 1_000_000_000))
    rows.append(("CalibratedTime.read(mono.now_ns())", lambda: ct.read(mono.now_ns())))

    slaved = SlavedClock()
    t0 = mono.now_ns()
    master_cal = Calibration(t0, t0 + 10**9, 1_000_050, 1_000_000)
    slaved.set_calibration(master_cal)
    rows.append(("SlavedClock.now_ns (no master)", slaved.now_ns))

    class Master:
        flags = mono.flags
        resolution_ns = 1

        def now_ns(self) -> int:
            return master_cal.to_external(mono.now_ns())

    synced = SlavedClock(timeout_ns=1_000_000)
    synced.set_master(Master())
    while not synced.status().synced:
        time.sleep(0.001)
    rows.append(("SlavedClock.now_ns (sampling at 1 kHz)", synced.now_ns))

    print(f"{'read':<42} {'best ns/call':>13} {'median ns/call':>15}")
    print("-" * 72)
    try:
        for name, fn in rows:
            best, med = per_call_ns(fn, args.calls, args.repeat)
            print(f"{name:<42} {best:>13.1f} {med:>15.1f}")
    finally:
        synced.set_master(None)
    print(f"\n{args.calls} calls x {args.repeat} runs; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
