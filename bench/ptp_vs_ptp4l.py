"""Benchmark: netclock PTP slave vs ptp4l slave behind one ptp4l master (prints, asserts nothing).

Topology (root; namespaces made and removed here; no clock is touched): a bridge with three
namespaces: ptp4l master (``-S``, ``free_running 1``), ptp4l slave (``-S``, ``free_running 1``,
``slaveOnly 1``) and ``netclock ptp slave``. Run once per logSyncInterval (0 and -4).
They are plugged into the bridge ptp4l slave, master, netclock (``--order``): the bridge floods
multicast to its ports newest first, and a port served after another waits a few µs more.
With the master in the middle each slave is served in the same place both ways; with it
first, the slave plugged last gets Syncs first but its Delay_Reqs reach the master second
(``bench/ptp_path_asymmetry.py``: its slave→master delays ran 4.6 µs longer on average, a
−2.3 µs offset for any two-way method, while the other slave's path stayed symmetric).
``--topology pairs`` instead gives each slave a direct veth link to its own free-running ptp4l
master, at the same time (through this kernel's bridge a software-stamped path is ~20 µs each
way with µs of jitter, for ptp4l as for netclock; a veth link is ~2 µs).

All namespaces share one system clock, so the true offset is 0:
* ptp4l raw offset = its "master offset" lines (one per freq_est_interval = 1 s, free running);
* netclock raw offset = per-sample offset of master time vs. the published calibration
  (``offset_rms_ns`` per second, weighted by samples);
* netclock published-time error = ``realtime_error_ns`` (published time as UTC minus
  CLOCK_REALTIME), sampled once per second;
* time to lock = first SLAVE line with |error| < 10 µs (netclock), first |offset| < 10 µs line
  (ptp4l), measured from process start;
* CPU seconds (utime+stime) and peak RSS from /proc of each slave process.

    sudo python bench/ptp_vs_ptp4l.py [--seconds 30] [--topology bridge|pairs] [--sync -4]
        [--order p4,gm,nc] [--hybrid]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.netns import Node, Topology

CFG = """[global]
free_running 1
time_stamping software
logAnnounceInterval 0
logSyncInterval {sync}
logMinDelayReqInterval {sync}
summary_interval {sync}
freq_est_interval 0
use_syslog 0
verbose 1
priority1 {p1}
{extra}
"""


class Reader:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.t0 = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        assert proc.stdout is not None
        out = proc.stdout

        def run() -> None:
            for ln in iter(out.readline, ""):
                self.lines.append((time.monotonic() - self.t0, ln))

        threading.Thread(target=run, daemon=True).start()


def proc_stats(pid: int) -> tuple[float, int]:
    """(cpu seconds, peak RSS kB) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                rss = int(ln.split()[1])
    return cpu, rss


def ptp4l(node: Node, sync: int, p1: int, extra: str = "") -> subprocess.Popen[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(CFG.format(sync=sync, p1=p1, extra=extra))
    return node.popen(["ptp4l", "-f", f.name, "-i", node.ifname, "-4", "-S", "-m"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rms(xs: list[float]) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs)) if xs else float("nan")


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(abs(x) for x in xs)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def run(sync: int, seconds: float, topology: str = "bridge",
        order: str = "p4,gm,nc", hybrid: bool = False) -> dict[str, Any]:
    hy = "\nhybrid_e2e 1" if hybrid else ""
    with contextlib.ExitStack() as stack:
        if topology == "bridge":
            topo = stack.enter_context(Topology.bridge(3))
            role = dict(zip(order.split(","), topo.nodes, strict=True))
            gm, p4s, ncs = role["gm"], role["p4"], role["nc"]
            ptp4l(gm, sync, 100, hy.strip())
        else:
            # one direct veth link per slave, each behind its own free-running ptp4l master:
            # both masters serve the one system clock, so the truth is the same
            link4 = stack.enter_context(Topology.veth_pair(subnet=208))
            linkn = stack.enter_context(Topology.veth_pair(subnet=209))
            (gm4, p4s), (gmn, ncs) = link4.nodes, linkn.nodes
            ptp4l(gm4, sync, 100, hy.strip())
            ptp4l(gmn, sync, 100, hy.strip())
        time.sleep(0.2)
        p4 = ptp4l(p4s, sync, 200, "slaveOnly 1" + hy)
        nc = ncs.python(["-m", "netclock", "ptp", "slave", "-i", ncs.ifname, "--json-log",
                         *(["--hybrid-e2e"] if hybrid else []), "--log-announce-interval", "0",
                         "--log-min-delay-req-interval", str(sync)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        r4, rn = Reader(p4), Reader(nc)
        time.sleep(seconds)
        cpu4, rss4 = proc_stats(p4.pid)
        cpun, rssn = proc_stats(nc.pid)
    p4_off = [(t, float(m.group(1))) for t, ln in r4.lines
              if (m := re.search(r"master offset\s+(-?\d+)", ln))]
    recs = []
    for t, ln in rn.lines:
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if "port_state" in rec:
            recs.append((t, rec))
    lock4 = next((t for t, o in p4_off if abs(o) < 10_000), float("nan"))
    lockn = next((t for t, r in recs if r["port_state"] == "SLAVE"
                  and r["realtime_error_ns"] is not None
                  and abs(r["realtime_error_ns"]) < 10_000), float("nan"))
    # steady state: drop the first 40 % of the run
    cut = seconds * 0.4
    p4_steady = [o for t, o in p4_off if t >= cut]
    raw_sq, raw_n = 0.0, 0
    errs = []
    for t, r in recs:
        if t < cut:
            continue
        if r["offset_rms_ns"] is not None and r["samples"]:
            raw_sq += r["offset_rms_ns"] ** 2 * r["samples"]
            raw_n += r["samples"]
        if r["realtime_error_ns"] is not None:
            errs.append(float(r["realtime_error_ns"]))
    return {
        "sync": sync,
        "p4_rms": rms(p4_steady), "p4_p95": pct(p4_steady, 0.95), "p4_n": len(p4_steady),
        "nc_raw_rms": math.sqrt(raw_sq / raw_n) if raw_n else float("nan"), "nc_raw_n": raw_n,
        "nc_err_mean": sum(errs) / len(errs) if errs else float("nan"),
        "p4_mean": sum(p4_steady) / len(p4_steady) if p4_steady else float("nan"),
        "nc_err_rms": rms(errs), "nc_err_p99": pct(errs, 0.99), "nc_err_n": len(errs),
        "lock4": lock4, "lockn": lockn, "cpu4": cpu4, "cpun": cpun, "rss4": rss4, "rssn": rssn,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--topology", choices=("bridge", "pairs"), default="bridge",
                    help="bridge: one master and both slaves on one bridge (the issue's setup); "
                         "pairs: each slave on a direct veth link to its own master")
    ap.add_argument("--sync", type=int, action="append", choices=(0, -4),
                    help="logSyncInterval to run (repeatable; default: 0 and -4)")
    ap.add_argument("--order", default="p4,gm,nc",
                    help="bridge: the order gm (master), p4 (ptp4l slave), nc (netclock) are "
                         "plugged in (default p4,gm,nc: each slave's path symmetric)")
    ap.add_argument("--hybrid", action="store_true",
                    help="hybrid E2E everywhere: both slaves send Delay_Req unicast "
                         "(ptp4l hybrid_e2e 1, netclock --hybrid-e2e), the master answers unicast")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    rows = [run(s, args.seconds, args.topology, args.order, args.hybrid)
            for s in (args.sync or [0, -4])]
    print(f"PTP slave comparison ({args.topology}{', hybrid E2E' if args.hybrid else ''}), "
          f"{args.seconds:.0f} s per run, steady state = last 60 %")
    hdr = (f"{'logSync':>7} {'ptp4l rms':>10} {'ptp4l p95':>10} {'nc raw rms':>11} "
           f"{'nc err rms':>11} {'nc err p99':>11} {'err/ptp4l':>9} {'lock p4':>8} "
           f"{'lock nc':>8} {'cpu p4':>7} {'cpu nc':>7} {'rss p4':>8} {'rss nc':>8}")
    print(hdr)
    for r in rows:
        ratio = r["nc_err_rms"] / r["p4_rms"] if r["p4_rms"] else float("nan")
        print(f"{r['sync']:>7} {r['p4_rms']:>10.0f} {r['p4_p95']:>10.0f} {r['nc_raw_rms']:>11.0f} "
              f"{r['nc_err_rms']:>11.0f} {r['nc_err_p99']:>11.0f} {ratio:>9.2f} "
              f"{r['lock4']:>7.1f}s {r['lockn']:>7.1f}s {r['cpu4']:>6.2f}s {r['cpun']:>6.2f}s "
              f"{r['rss4']:>6d}kB {r['rssn']:>6d}kB")
    print("means (bias, e.g. path asymmetry): "
          + ", ".join(f"logSync {r['sync']}: ptp4l {r['p4_mean']:.0f} ns, "
                      f"netclock err {r['nc_err_mean']:.0f} ns" for r in rows))
    print("units: ns; samples per row (ptp4l offsets / netclock raw / netclock error): "
          + ", ".join(f"{r['p4_n']}/{r['nc_raw_n']}/{r['nc_err_n']}" for r in rows))
    print("targets: nc err rms <= 0.5 x ptp4l rms; nc err p99 <= 1000 ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
