"""Cost of a netclock.client read: p50/p99 per call, printed as a table (asserts nothing).

    python bench/reader_cost.py [--batches 3000] [--batch 100]

Each figure is the time of a batch of calls divided by the batch size (so the timer's own cost
is amortised); p50/p99 are over batches. Rows:

* ``time.monotonic_ns()``: the floor (one vDSO clock read).
* ``now_ns()``, ``to_network()``, ``to_monotonic()``: the published calibration is unchanged,
  so each call reads the 8-byte seq word, (for now_ns) the clock, and does integer math.
* ``now_ns() + writer 1 kHz``: a writer process republishes at 1 kHz, so some calls take the
  slow path (copy the record under the seqlock, check the CRC, rebuild the cache).
* ``status()``: always a full consistent read of the record.

Target (issue 6): ≤ 1 µs p50 per call.
"""

from __future__ import annotations

import argparse
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netclock.calibration import RATE_DENOM, Calibration
from netclock.client import SharedClock
from netclock.observe import LockState
from netclock.platform.shm_writer import ShmWriter
from netclock.shm import DomainRecord


def _record(k: int) -> DomainRecord:
    m = time.monotonic_ns()
    return DomainRecord(
        domain=0,
        calibration=Calibration(m, m + 1_700_000_000 * 10**9, RATE_DENOM + k, RATE_DENOM, k),
        lock_state=LockState.LOCKED,
        error_bound_ns=100,
        error_growth_ps_per_s=1000,
        update_mono_ns=m,
    )


def _writer(path: str) -> None:
    """Child process: own the file at ``path``, republish at ~1 kHz until stdin closes."""
    w = ShmWriter(path, slots=1)
    w.publish([_record(0)])
    print("ready", flush=True)
    k = 1
    while not select.select([sys.stdin], [], [], 0.001)[0]:  # the 1 ms wait, and the stop
        w.publish([_record(k)])
        k += 1
    print(k, flush=True)
    w.close()


def measure(fn: Callable[[], object], batches: int, batch: int) -> tuple[float, float]:
    per_call = []
    rng = range(batch)
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in rng:
            fn()
        per_call.append((time.perf_counter_ns() - t0) / batch)
    per_call.sort()
    return per_call[len(per_call) // 2], per_call[int(len(per_call) * 0.99)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--writer", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        _writer(args.writer)
        return 0

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "clock.shm")
        w = ShmWriter(path, slots=1)
        w.publish([_record(0)])
        c = SharedClock(path)
        m = time.monotonic_ns()
        net = c.to_network(m)
        rows: list[tuple[str, float, float]] = []
        for name, fn in (
            ("time.monotonic_ns()", time.monotonic_ns),
            ("SharedClock.now_ns()", c.now_ns),
            ("SharedClock.to_network(mono)", lambda: c.to_network(m)),
            ("SharedClock.to_monotonic(net)", lambda: c.to_monotonic(net)),
            ("SharedClock.status()", c.status),
        ):
            n = args.batches if "status" not in name else max(100, args.batches // 10)
            rows.append((name, *measure(fn, n, args.batch)))

        w.close()

        path2 = os.path.join(d, "contended.shm")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", path2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            c2 = SharedClock(path2)
            rows.append(("now_ns() + writer at 1 kHz", *measure(c2.now_ns, args.batches * 20, 10)))
            out, _ = proc.communicate("stop\n", timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        updates = int(out.strip().splitlines()[-1] or 0)

    print(
        f"netclock reader cost — Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {args.batches} batches of {args.batch} calls"
    )
    print(f"{'call':<34}{'p50 ns':>10}{'p99 ns':>10}")
    for name, p50, p99 in rows:
        print(f"{name:<34}{p50:>10.0f}{p99:>10.0f}")
    print(f"(writer published {updates} updates during the contended run; batch of 10 there)")
    print("target: <= 1000 ns p50 per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
