"""Hybrid E2E (ptp4l's hybrid_e2e) between netclock and ptp4l, seen by a bystander on the bridge.

Three namespaces on one bridge: a master, a slave sending its Delay_Reqs unicast, and a third
node that joins the PTP multicast group and records what it hears. The bystander must hear the
master's multicast Syncs and none of the slave's Delay_Reqs nor the master's answers to them.
No clock is touched: every ptp4l runs with ``free_running 1``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.daemons import Lines, mean_offset, start_ptp4l, wait_for
from tests.support.netns import Node, Topology, topology_fixture

pytestmark = pytest.mark.interop

topo = topology_fixture(3, 211, "ptp4l")

#: joins 224.0.1.129 on both PTP ports and prints one JSON line per datagram heard:
#: source address, messageType, source clockIdentity (hex)
BYSTANDER = r"""
import json, select, socket, struct, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
socks = []
for port in (319, 320):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton("224.0.1.129") + socket.inet_aton(ip))
    socks.append(s)
print(json.dumps({"ready": True}), flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for s in select.select(socks, [], [], 0.2)[0]:
        data, addr = s.recvfrom(2048)
        if len(data) >= 34:
            print(json.dumps({"src": addr[0], "type": data[0] & 0x0F,
                              "from": data[20:28].hex()}), flush=True)
"""

SYNC, DELAY_REQ, DELAY_RESP = 0, 1, 9


def bystander(node: Node, seconds: float) -> tuple[subprocess.Popen[str], Lines]:
    proc = node.python(["-c", BYSTANDER, node.ip4, str(seconds)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    lines = Lines(proc)
    assert wait_for(lambda: any('"ready"' in ln for ln in lines.lines), 5.0), lines.lines
    return proc, lines


def heard(lines: Lines) -> Counter[tuple[str, int]]:
    """(source address, messageType) of every PTP datagram the bystander heard."""
    out: Counter[tuple[str, int]] = Counter()
    for ln in list(lines.lines):
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if "src" in rec:
            out[rec["src"], rec["type"]] += 1
    return out


@pytest.mark.parametrize("hybrid", [True, False])
def test_netclock_hybrid_slave_of_a_hybrid_ptp4l_master(topo: Topology, hybrid: bool) -> None:
    """Without --hybrid-e2e (the control) the bystander hears every Delay_Req and answer."""
    master, slave, third = topo.nodes
    tmp = Path(tempfile.mkdtemp(prefix="ptp4l-"))
    gm = Lines(start_ptp4l(master, 100, tmp, sync=-2, extra="hybrid_e2e 1"))
    assert wait_for(lambda: any("assuming the grand master role" in ln for ln in gm.lines),
                    15.0), gm.lines[-5:]
    watch, seen = bystander(third, 30.0)
    nc = slave.python(["-m", "netclock", "ptp", "slave", "-i", slave.ifname, "--json-log",
                       *(["--hybrid-e2e"] if hybrid else []), "--log-announce-interval", "0",
                       "--log-min-delay-req-interval", "-2"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Lines(nc)

    def locked() -> bool:
        recs = [r for r in out.json() if r.get("port_state") == "SLAVE"
                and r.get("realtime_error_ns") is not None]
        return len(recs) >= 3 and abs(recs[-1]["realtime_error_ns"]) < 10_000

    assert wait_for(locked, 15.0), out.lines[-10:]
    time.sleep(2.0)  # a few more exchanges
    counts = heard(seen)
    slave.stop(nc)
    third.stop(watch)
    # the bystander hears the master's multicast Syncs, and nothing of the hybrid exchange
    assert counts[master.ip4, SYNC] >= 10, counts
    if hybrid:
        assert counts[slave.ip4, DELAY_REQ] == 0, counts
        assert counts[master.ip4, DELAY_RESP] == 0, counts
    else:
        assert counts[slave.ip4, DELAY_REQ] >= 4 and counts[master.ip4, DELAY_RESP] >= 4, counts
    # while the exchanges did happen: netclock measured a path delay
    last = [r for r in out.json() if r.get("port_state") == "SLAVE"][-1]
    assert last["path_delay_ns"] is not None and 0 < last["path_delay_ns"] < 1_000_000, last


def test_netclock_master_answers_a_hybrid_ptp4l_slave_unicast(topo: Topology) -> None:
    master, slave, third = topo.nodes
    tmp = Path(tempfile.mkdtemp(prefix="ptp4l-"))
    nc = master.python(["-m", "netclock", "ptp", "master", "-i", master.ifname, "--json-log",
                        "--priority1", "100", "--log-sync-interval", "-2",
                        "--log-announce-interval", "0", "--log-min-delay-req-interval", "-2"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Lines(nc)
    watch, seen = bystander(third, 40.0)
    p4 = Lines(start_ptp4l(slave, 200, tmp, sync=-2, extra="slaveOnly 1\nhybrid_e2e 1"))

    def offsets() -> list[int]:
        return [int(m.group(1)) for ln in list(p4.lines)
                if (m := re.search(r"master offset\s+(-?\d+)", ln))]

    # free_running ptp4l prints one offset per freq_est_interval (1 s)
    assert wait_for(lambda: len(offsets()) >= 8, 20.0), (p4.lines[-10:], out.lines[-5:])
    counts = heard(seen)
    master.stop(nc)
    third.stop(watch)
    tail = offsets()[2:]
    assert abs(mean_offset(tail)) < 10_000, tail
    assert counts[master.ip4, SYNC] >= 10, counts
    # ptp4l sent its Delay_Reqs unicast, and netclock answered them unicast
    assert counts[slave.ip4, DELAY_REQ] == 0, counts
    assert counts[master.ip4, DELAY_RESP] == 0, counts


def test_daemon_hybrid_e2e_slave(topo: Topology, tmp_path: Path) -> None:
    """`netclock run` with [ptp] hybrid-e2e = true: locked on a hybrid ptp4l master, and its
    Delay_Reqs never reach the bystander."""
    from netclock.observe import Timescale
    from netclock.platform.clockmap import ClockMap
    from tests.support.daemons import (
        daemon_config,
        errors_against,
        open_clock,
        ptp_section,
        start_daemon,
        wait_locked,
    )

    master, slave, third = topo.nodes
    gm = Lines(start_ptp4l(master, 100, tmp_path, extra="hybrid_e2e 1"))
    assert wait_for(lambda: any("assuming the grand master role" in ln for ln in gm.lines),
                    15.0), gm.lines[-5:]
    watch, seen = bystander(third, 40.0)
    cfg = daemon_config(tmp_path, "slave", ptp_section("slave-only", extra="hybrid-e2e = true"))
    proc = start_daemon(slave, cfg)
    clk = open_clock(tmp_path / "slave" / "clock.shm", 20.0)
    assert clk is not None
    assert wait_locked(clk, 20.0)
    errs = errors_against(clk, ClockMap(), 0 if clk.status().timescale != Timescale.TAI
                          else 37_000_000_000, n=10)
    counts = heard(seen)
    slave.stop(proc)
    third.stop(watch)
    clk.close()
    assert max(abs(e) for e in errs) < 20_000, errs
    assert counts[master.ip4, SYNC] >= 10, counts
    assert counts[slave.ip4, DELAY_REQ] == 0 and counts[master.ip4, DELAY_RESP] == 0, counts
