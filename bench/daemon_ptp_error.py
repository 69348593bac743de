"""Benchmark: `netclock run`'s published-time error against a ptp4l master, per ptp.rx-poll-ms.

Prints a table, asserts nothing. Needs root (namespaces are made and removed here); no clock
is touched: ptp4l runs with ``free_running 1`` and software stamps. All namespaces share one
system clock, so the truth at a CLOCK_MONOTONIC instant is CLOCK_REALTIME: the error is the
published network time minus CLOCK_REALTIME at the same instant (read from the shared memory,
as every local reader does, including the up-to-a-tick-old calibration it holds).

Topology: a direct veth pair (``n0``: ptp4l -S master, logSyncInterval -4; ``n1``: the daemon,
slave-only), one daemon run per ``--rx-poll-ms`` value, one after the other, in one process.
For each: the time from start to LOCKED, CPU over the window, and error mean, RMS, p99 and max
over ``--seconds`` of samples taken every 50 ms once LOCKED.

    sudo python bench/daemon_ptp_error.py [--seconds 30] [--rx-poll-ms 0 250 500]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_cpu_rss import cpu_s
from netclock.platform.clockmap import ClockMap
from tests.support.daemons import (
    daemon_config,
    open_clock,
    ptp_section,
    start_daemon,
    start_ptp4l,
    wait_locked,
)
from tests.support.netns import Topology


def one(topo: Topology, tmp: Path, rx_poll_ms: int, seconds: float) -> dict[str, float]:
    _, n1 = topo.nodes
    name = f"rx{rx_poll_ms}"
    cfg = daemon_config(tmp, name, ptp_section("slave-only", extra=f"rx-poll-ms = {rx_poll_ms}"))
    t0 = time.monotonic()
    proc = start_daemon(n1, cfg)
    try:
        clk = open_clock(tmp / name / "clock.shm", 30.0)
        if clk is None or not wait_locked(clk, 60.0):
            return {"lock_s": math.nan}
        lock_s = time.monotonic() - t0
        cmap = ClockMap()
        c0, w0 = cpu_s(proc.pid), time.monotonic()
        errs: list[int] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            mono = time.monotonic_ns()
            errs.append(clk.to_network(mono) - cmap.to_realtime(mono))
            time.sleep(0.05)
        cpu = (cpu_s(proc.pid) - c0) / (time.monotonic() - w0)
        clk.close()
    finally:
        n1.stop(proc)
    a = sorted(abs(e) for e in errs)
    return {
        "lock_s": lock_s,
        "mean": statistics.fmean(errs),
        "rms": math.sqrt(statistics.fmean(e * e for e in errs)),
        "p99": a[min(len(a) - 1, int(0.99 * len(a)))],
        "max": a[-1],
        "n": len(errs),
        "cpu": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rx-poll-ms", type=int, nargs="+", default=[0, 250, 500])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d, Topology.veth_pair(subnet=219) as topo:
        tmp = Path(d)
        start_ptp4l(topo.nodes[0], 100, tmp)
        time.sleep(2.0)
        for r in args.rx_poll_ms:
            rows.append((r, one(topo, tmp, r, args.seconds)))
    print(f"\nDaemon (PTP slave, 16 Sync/s, veth) published-time error over {args.seconds:.0f} s "
          "once LOCKED, ns")
    print(f"{'rx-poll-ms':>10} {'lock s':>7} {'mean':>7} {'rms':>6} {'p99':>6} {'max':>6} "
          f"{'samples':>7} {'CPU %':>6}")
    for r, m in rows:
        if math.isnan(m["lock_s"]):
            print(f"{r:>10} {'never':>7}")
            continue
        print(f"{r:>10} {m['lock_s']:>7.1f} {m['mean']:>+7.0f} {m['rms']:>6.0f} {m['p99']:>6.0f} "
              f"{m['max']:>6.0f} {m['n']:>7.0f} {100 * m['cpu']:>6.2f}")


if __name__ == "__main__":
    main()
