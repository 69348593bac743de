"""Bench: where the bridge's one-way PTP delay goes, from kernel tracepoints (asserts nothing).

Why: through the issue's bridge the two directions of a PTP exchange differ by µs, and by a
different amount from one run to the next (``bench/ptp_path_asymmetry.py``). This bench shows
the mechanism packet by packet. It records the kernel's ``net:netif_rx`` tracepoint on every
CPU with ``perf`` while the ``bench/ptp_vs_ptp4l.py`` topology runs (a ptp4l master, a ptp4l
slave and a ``netclock ptp slave`` on one bridge). A datagram crosses the bridge in the
sending CPU's context: it enters the bridge at ``netif_rx`` on the sender's hub-side veth
(``pN``) and reaches a node at ``netif_rx`` on that node's ``eth0``, where the kernel takes
its software RX stamp. The time between the two is the bridge's share of the one-way delay
(the sender's own veth, before the first, adds a little more).

For each sender and message length it prints that time for datagrams sent after the sender
was idle (more than ``--idle-ms``, e.g. a Sync on its own timer) and for those that followed
another datagram of the same sender closely (e.g. a Follow_Up right after its Sync). On this
VM the first cross a cold path (~20 µs), the second a warm one (~5 µs). Both slaves' Delay_Reqs
go out after idle, and so do the master's Syncs unless it sent something just before them. In
the runs here (all under ``perf``) both directions crossed cold and even; a run of
``bench/ptp_vs_ptp4l.py`` at logSync 0 can still find the directions µs apart (both slaves read
it), a state this trace has not caught.

Needs root and ``perf`` (Debian: linux-perf); no clock is touched (every ptp4l runs with
``free_running 1``).

    sudo python bench/bridge_path_trace.py [--seconds 15] [--sync 0] [--order p4,gm,nc]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.prereq import missing

#: PTP over UDPv4: IP length of each message as netif_rx reports it (IP header + UDP + PTP)
KINDS = {72: "Sync/Follow_Up/Delay_Req", 82: "Delay_Resp", 92: "Announce"}
EVENT = re.compile(r"(?:^|\s)([\d.]+):\s+net:netif_rx: dev=(\S+) skbaddr=\S+ len=(\d+)")


def crossings(script: str) -> list[tuple[float, str, int, float]]:
    """(time s, hub-side port, length, µs to the first node's netif_rx) per datagram sent."""
    events = []
    for ln in script.splitlines():
        m = EVENT.search(ln)
        if m:
            events.append((float(m.group(1)), m.group(2), int(m.group(3))))
    out = []
    for i, (t, dev, length) in enumerate(events):
        if not re.fullmatch(r"p\d+", dev):
            continue
        for t2, dev2, len2 in events[i + 1:i + 16]:
            if dev2 == "eth0" and len2 == length:
                out.append((t, dev, length, (t2 - t) * 1e6))
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="recording window")
    ap.add_argument("--warmup", type=float, default=12.0, help="before recording")
    ap.add_argument("--sync", type=int, default=0, choices=(0, -4), help="logSyncInterval")
    ap.add_argument("--order", default="p4,gm,nc", help="plug-in order (see ptp_vs_ptp4l.py)")
    ap.add_argument("--idle-ms", type=float, default=50.0,
                    help="a datagram sent this long after the sender's previous one counts as "
                         "sent after idle")
    args = ap.parse_args()
    if missing(("perf", "ptp4l"), "network namespaces, perf -a"):
        return 1
    from bench.ptp_vs_ptp4l import ptp4l
    from tests.support.netns import Topology, stop_process

    names = args.order.split(",")
    if sorted(names) != ["gm", "nc", "p4"]:
        print("--order names gm, p4 and nc once each", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nc-trace-") as tmp, \
            Topology.bridge(len(names)) as topo:
        role = dict(zip(names, topo.nodes, strict=True))
        port_of = {f"p{i}": n for i, n in enumerate(names)}
        procs = [ptp4l(role["gm"], args.sync, 100)]
        time.sleep(0.2)
        procs.append(ptp4l(role["p4"], args.sync, 200, "slaveOnly 1"))
        procs.append(role["nc"].python(
            ["-m", "netclock", "ptp", "slave", "--interface", role["nc"].ifname,
             "--log-announce-interval", "0", "--log-min-delay-req-interval", str(args.sync)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            time.sleep(args.warmup)
            data = f"{tmp}/perf.data"
            subprocess.run(["perf", "record", "-q", "-a", "-o", data, "-e", "net:netif_rx",
                            "--", "sleep", str(args.seconds)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            for p in procs:
                stop_process(p)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "time,event,trace"],
                                capture_output=True, text=True, check=True).stdout
    rows = crossings(script)
    print(f"bridge crossing (hub-side netif_rx → first node's netif_rx), logSync {args.sync}, "
          f"order {args.order}, {args.seconds:.0f} s, µs")
    print(f"{'sender':>6} {'message (IP length)':>30} {'after idle: n':>14} {'p50':>5} "
          f"{'p10':>5} {'following: n':>13} {'p50':>5} {'p10':>5}")
    last: dict[str, float] = {}
    groups: dict[tuple[str, int, bool], list[float]] = {}
    for t, dev, length, us in rows:
        idle = (t - last.get(dev, -1e9)) * 1e3 > args.idle_ms
        last[dev] = t
        groups.setdefault((dev, length, idle), []).append(us)
    for dev in sorted(port_of):
        for length in sorted({k[1] for k in groups if k[0] == dev}):
            cells = []
            for idle in (True, False):
                xs = sorted(groups.get((dev, length, idle), []))
                cells.append(f"{len(xs):>14} {statistics.median(xs):>5.1f} "
                             f"{xs[len(xs) // 10]:>5.1f}" if xs else f"{0:>14} {'-':>5} {'-':>5}")
            kind = KINDS.get(length, "other")
            print(f"{port_of[dev]:>6} {kind + f' ({length})':>30} {cells[0]} {cells[1]}")
    print("gm sends Sync, Follow_Up, Delay_Resp and Announce; p4 and nc send Delay_Req. A "
          "Follow_Up follows its Sync within ~0.1 ms, so it is in the 'following' column.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
