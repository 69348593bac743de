"""Bench: true one-way PTP delays through the issue's bridge, per port order (asserts nothing).

Why: a two-way exchange is off by half the difference of its two one-way delays, which no
slave can observe. All namespaces share one clock, so here they can be: a netclock port
(``PtpRunner``, slave-only) logs every Measurement, and with CLOCK_MONOTONIC mapped to
CLOCK_REALTIME (tight brackets) each Sync's master→slave delay is ``t2 − t1`` and each
exchange's slave→master delay ``t4 − t3``, both in one timescale (ptp4l's software-stamped
master serves CLOCK_REALTIME as PTP time).

Topology: ``bench/ptp_vs_ptp4l.py``'s, a bridge with a ptp4l master, a ptp4l slave and the
netclock slave, plugged in the order given. The kernel's bridge floods multicast to its ports
newest first, one at a time, and each delivery ahead of a port delays it by a few µs. With the
master plugged first, the netclock port (plugged last) gets every Sync first and every
Delay_Req of its own reaches the master second, behind the ptp4l slave's copy: a slave→master
excess of µs that any two-way method reads as an offset. With the master in the middle, each
slave is in the same place both ways. Per order, it prints each direction's delay quantiles
and, per 10 s, half the difference of the two directions' medians, means and minima (what an
estimator using that statistic would be off by). ``--window S`` also scores each statistic over
every S-second window (a calibration window's span): at a low Sync rate it bounds what an
estimator that reads the path through that statistic can reach on this path. ``--save FILE``
writes the samples as JSON.

    sudo python bench/ptp_path_asymmetry.py [--seconds 60] [--order gm,p4,nc --order p4,gm,nc]
        [--sync 0] [--window 32 --window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (seconds since the first sample, one-way delay in ns)
Samples = list[tuple[float, int]]


def child(iface: str, sync: int, seconds: float) -> None:
    """In the netclock namespace: a slave-only port; one JSON line per Measurement."""
    import random
    from dataclasses import replace

    from netclock.cli.ptp import resolve_profile
    from netclock.platform.clockmap import estimate_offset, read_bracket
    from netclock.platform.ptp_transport import PtpRunner
    from netclock.ptp.actions import Action, Measurement
    from netclock.ptp.port import PtpPort
    from netclock.ptp.wire import ClockIdentity, ClockQuality, PortIdentity

    async def main() -> None:
        prof = replace(resolve_profile("default-e2e"), log_announce_interval=0,
                       log_sync_interval=sync, log_min_delay_req_interval=sync)
        cfg = prof.port_config(clock_quality=ClockQuality(255), slave_only=True)
        port = PtpPort(cfg, PortIdentity(ClockIdentity(b"\x02\x00\x00\xff\xfe\x00\x00\x09"), 1),
                       random.Random())
        runner = PtpRunner(port, iface)
        execute = runner.execute

        def logged(actions: list[Action]) -> None:
            for a in actions:
                if isinstance(a, Measurement):
                    # REALTIME − MONOTONIC now (the map the port's stamps went through may
                    # differ from it by its own bracket error: a constant, cancelling here)
                    off = estimate_offset([read_bracket() for _ in range(5)]).offset_ns
                    print(json.dumps({"t1": a.t1, "t2": a.t2, "t3": a.t3, "t4": a.t4,
                                      "c": a.correction, "cr": a.resp_correction,
                                      "rt_minus_mono": off}), flush=True)
            execute(actions)

        runner.execute = logged  # type: ignore[method-assign]
        runner.start()
        await asyncio.sleep(seconds)
        runner.close()

    asyncio.run(main())


def measure(order: str, sync: int, seconds: float) -> tuple[Samples, Samples]:
    """((t s, master→slave ns) per Sync, (t s, slave→master ns) per exchange)."""
    from bench.ptp_vs_ptp4l import ptp4l
    from tests.support.netns import Topology

    with contextlib.ExitStack() as stack:
        names = order.split(",")
        topo = stack.enter_context(Topology.bridge(len(names)))
        role = dict(zip(names, topo.nodes, strict=True))
        ptp4l(role["gm"], sync, 100)
        if "p4" in role:  # (without it: the master and netclock alone on the bridge)
            time.sleep(0.2)
            ptp4l(role["p4"], sync, 200, "slaveOnly 1")
        nc = role["nc"].python([__file__, "--child", role["nc"].ifname, str(sync),
                                str(seconds)], stdout=subprocess.PIPE, text=True)
        out, _ = nc.communicate(timeout=seconds + 30)
    recs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    recs = recs[len(recs) // 10:]  # from the first fit on
    if not recs:
        raise SystemExit(f"order {order}: the netclock port made no measurement")
    t0 = recs[0]["t2"]
    ms, sm, seen = [], [], set()
    for r in recs:
        # t2 is MONOTONIC: as REALTIME it is t2 + (REALTIME − MONOTONIC)
        ms.append(((r["t2"] - t0) / 1e9, r["t2"] + r["rt_minus_mono"] - r["t1"] - r["c"]))
        if r["t3"] and r["t3"] not in seen:
            seen.add(r["t3"])
            sm.append(((r["t3"] - t0) / 1e9, r["t4"] - r["cr"] - (r["t3"] + r["rt_minus_mono"])))
    return ms, sm


def q(xs: list[int], p: float) -> int:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--sync", type=int, default=-4, help="logSyncInterval (and Delay_Req's)")
    ap.add_argument("--order", action="append",
                    help="plug-in order of gm, p4, nc (repeatable; default gm,p4,nc and p4,gm,nc; "
                         "gm,nc: no ptp4l slave)")
    ap.add_argument("--window", type=float, action="append",
                    help="also score each statistic over sliding windows of this many seconds "
                         "(repeatable; e.g. 32 and 64, the calibration window's span)")
    ap.add_argument("--save", help="write the one-way delays (per order) to this JSON file")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), float(args.child[2]))
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    print(f"one-way delays seen by a netclock slave port through the bridge, logSync {args.sync}, "
          f"{args.seconds:.0f} s per order (first 10 % dropped), µs")
    print(f"{'order':>9} {'dir':>4} {'n':>5} {'min':>6} {'p10':>6} {'p50':>6} {'p90':>6} "
          f"{'mean':>6}   (ms − sm)/2 per 10 s by median / mean / min")
    saved: dict[str, dict[str, Samples]] = {}
    for order in args.order or ["gm,p4,nc", "p4,gm,nc"]:
        ms, sm = measure(order, args.sync, args.seconds)
        saved[order] = {"ms": ms, "sm": sm}
        windows = []
        for w in range(0, int(ms[-1][0]) - 9, 10):
            a = [v for t, v in ms if w <= t < w + 10]
            b = [v for t, v in sm if w <= t < w + 10]
            if len(a) >= 10 and len(b) >= 10:
                windows.append(((statistics.median(a) - statistics.median(b)) / 2e3,
                                (statistics.mean(a) - statistics.mean(b)) / 2e3,
                                (min(a) - min(b)) / 2e3))
        for name, xs in (("ms", [v for _, v in ms]), ("sm", [v for _, v in sm])):
            print(f"{order:>9} {name:>4} {len(xs):>5} {min(xs) / 1e3:>6.1f} "
                  f"{q(xs, 0.1) / 1e3:>6.1f} {q(xs, 0.5) / 1e3:>6.1f} {q(xs, 0.9) / 1e3:>6.1f} "
                  f"{statistics.mean(xs) / 1e3:>6.1f}"
                  + ("   " + " ".join(f"{m:+.1f}/{a:+.1f}/{f:+.1f}" for m, a, f in windows)
                     if name == "ms" else ""))
        for w in args.window or []:
            scored = sliding(ms, sm, w)
            print(f"{order:>9} sliding {w:.0f} s windows, (stat(ms) − stat(sm))/2, RMS / p99 of "
                  "|error|: " + ", ".join(f"{k} {r:.2f}/{p:.2f} µs" for k, (r, p, _) in
                                           scored.items())
                  + f" ({next(iter(scored.values()))[2] if scored else 0} windows)")
    print("ms: master→slave (Sync), sm: slave→master (Delay_Req); an offset estimate built on a "
          "statistic is off by the matching (ms − sm)/2")
    if args.save:
        Path(args.save).write_text(json.dumps({"sync": args.sync, "orders": saved}))
    return 0


def sliding(ms: Samples, sm: Samples, window_s: float) -> dict[str, tuple[float, float, int]]:
    """Per statistic, the RMS and p99 (µs) of ``(stat(ms) − stat(sm))/2`` over every window of
    ``window_s`` seconds ending on a 1 s grid: the error of an offset estimate that reads the
    path through that statistic, with as many samples as a calibration window of that span
    holds. Overlapping windows are not independent: the p99 is that of the path's own wander,
    not of 1 % of independent trials."""
    out: dict[str, tuple[float, float, int]] = {}
    stats: dict[str, Callable[[list[int]], float]] = {
        "median": statistics.median, "mean": statistics.mean, "min": min}
    errs: dict[str, list[float]] = {k: [] for k in stats}
    end = min(ms[-1][0], sm[-1][0])
    t = window_s
    while t <= end:
        a = [v for x, v in ms if t - window_s <= x < t]
        b = [v for x, v in sm if t - window_s <= x < t]
        if len(a) >= 4 and len(b) >= 4:
            for k, f in stats.items():
                errs[k].append((f(a) - f(b)) / 2e3)
        t += 1.0
    for k, e in errs.items():
        if e:
            rms = math.sqrt(sum(x * x for x in e) / len(e))
            out[k] = (rms, sorted(abs(x) for x in e)[min(len(e) - 1, int(0.99 * len(e)))], len(e))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
