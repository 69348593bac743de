"""netclock PTP against linuxptp (ptp4l -S, free_running 1) in namespaces joined by a bridge.

No clock is touched: every ptp4l runs with ``free_running 1``; netclock never adjusts clocks.
All namespaces share one system clock, so the true offset between nodes is 0 and netclock's
``realtime_error_ns`` (published time as UTC minus CLOCK_REALTIME) is its true error.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.daemons import Lines, mean_offset, wait_for
from tests.support.daemons import start_ptp4l as support_start_ptp4l
from tests.support.netns import Node, Topology, topology_fixture

pytestmark = pytest.mark.interop


topo = topology_fixture(2, 201, "ptp4l", "pmc")


def start_ptp4l(node: Node, p1: int, *, sync: int = -2, extra: str = "",
                uds: str = "") -> subprocess.Popen[str]:
    tmp = Path(tempfile.mkdtemp(prefix="ptp4l-"))
    return support_start_ptp4l(node, p1, tmp, sync=sync,
                               extra=extra + (f"\nuds_address {uds}" if uds else ""))


def start_netclock(node: Node, role: str, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    proc = node.python(["-m", "netclock", "ptp", role, "-i", node.ifname, "--json-log",
                        "--log-announce-interval", "0", "--log-min-delay-req-interval", "-2",
                        *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, Lines(proc)


def pmc(node: Node, uds: str, what: str) -> str:
    return node.run(["pmc", "-u", "-b", "0", "-s", uds, f"GET {what}"], check=False).stdout


def pmc_net(node: Node, what: str) -> dict[str, str]:
    """``pmc -4`` GET over UDP: {responder clock identity: its grandmasterIdentity}."""
    out = node.run(["pmc", "-4", "-i", node.ifname, "-b", "0", f"GET {what}"],
                   check=False).stdout
    blocks = re.split(r"\n\t(?=\S+-\d+ seq)", out)
    res = {}
    for blk in blocks[1:]:
        who = blk.split("-", 1)[0]
        gm = gm_of(blk)
        if gm:
            res[who] = gm
    return res


def gm_of(text: str) -> str | None:
    m = re.search(r"grandmasterIdentity\s+(\S+)", text)
    return m.group(1) if m else None


def test_ptp4l_master_netclock_slave(topo: Topology) -> None:
    a, b = topo.nodes
    # The 10 s count netclock's own start-up and lock against a grandmaster already serving:
    # ptp4l spends its announce receipt timeout (3-4 s here) LISTENING before it takes the
    # role, and that wait is not netclock's.
    gm = Lines(start_ptp4l(a, 100))
    assert wait_for(lambda: any("assuming the grand master role" in ln for ln in gm.lines),
                    15.0), gm.lines[-5:]
    proc, out = start_netclock(b, "slave")
    t0 = time.monotonic()

    def locked() -> bool:
        recs = [r for r in out.json() if r.get("port_state") == "SLAVE"
                and r.get("realtime_error_ns") is not None]
        return bool(recs) and abs(recs[-1]["realtime_error_ns"]) < 10_000

    assert wait_for(locked, 10.0), out.lines[-10:]
    assert time.monotonic() - t0 <= 10.5
    b.stop(proc)


def test_netclock_master_ptp4l_slave(topo: Topology) -> None:
    a, b = topo.nodes
    _proc, out = start_netclock(a, "master", "--priority1", "100", "--log-sync-interval", "-2")
    p = start_ptp4l(b, 200, extra="slaveOnly 1")
    lines = Lines(p)

    def offsets() -> list[int]:
        return [int(m.group(1)) for ln in list(lines.lines)
                if (m := re.search(r"master offset\s+(-?\d+)", ln))]

    # free_running ptp4l prints one offset per freq_est_interval (1 s)
    assert wait_for(lambda: len(offsets()) >= 8, 18.0), (lines.lines[-10:], out.lines[-5:])
    tail = offsets()[2:]
    assert abs(mean_offset(tail)) < 10_000, tail


@pytest.mark.parametrize("netclock_wins", [True, False])
def test_bmca_agreement_and_takeover(topo: Topology, netclock_wins: bool) -> None:
    a, b = topo.nodes
    uds = f"/tmp/ptp4l-{a.ns}"
    p4 = start_ptp4l(a, 128 if netclock_wins else 127, uds=uds, sync=-2)
    Lines(p4)
    nc, out = start_netclock(b, "master", "--priority1", "127" if netclock_wins else "128",
                             "--log-sync-interval", "-2")

    def nc_state() -> tuple[str | None, str | None]:
        recs = [r for r in out.json() if "port_state" in r]
        return (recs[-1]["port_state"], recs[-1]["gm_identity"]) if recs else (None, None)

    def agreed() -> bool:
        state, nc_gm = nc_state()
        ptp_gm = gm_of(pmc(a, uds, "PARENT_DATA_SET"))
        if netclock_wins:
            return state == "MASTER" and ptp_gm == nc_gm
        return state == "SLAVE" and ptp_gm is not None and ptp_gm == nc_gm

    assert wait_for(agreed, 15.0), (nc_state(), pmc(a, uds, "PARENT_DATA_SET"))
    # netclock answers pmc over UDP too, with the same grandmaster
    nc_id = [r for r in out.json() if "clock_identity" in r][-1]["clock_identity"]
    assert wait_for(lambda: pmc_net(a, "PARENT_DATA_SET").get(nc_id) == nc_state()[1], 5.0), \
        pmc_net(a, "PARENT_DATA_SET")
    port_state = re.search(r"portState\s+(\S+)", pmc(a, uds, "PORT_DATA_SET"))
    assert port_state is not None
    # a free_running ptp4l never locks its servo, so it stays UNCALIBRATED under a master
    expected = ("SLAVE", "UNCALIBRATED") if netclock_wins else ("MASTER",)
    assert port_state.group(1) in expected
    # remove the grandmaster: the other node takes over after the announce receipt timeout
    if netclock_wins:
        b.stop(nc)
        assert wait_for(lambda: "MASTER" in pmc(a, uds, "PORT_DATA_SET"), 8.0)
    else:
        a.stop(p4)
        assert wait_for(lambda: nc_state()[0] == "MASTER", 8.0), out.lines[-5:]


def test_netclock_master_netclock_slave_on_high_ports(topo: Topology) -> None:
    """Two netclock nodes on unprivileged ports (no CAP_NET_BIND_SERVICE needed)."""
    a, b = topo.nodes
    ports = ("--event-port", "31900", "--general-port", "32000")
    start_netclock(a, "master", "--priority1", "100", "--log-sync-interval", "-3", *ports)
    proc, out = start_netclock(b, "slave", *ports)

    def locked() -> bool:
        recs = [r for r in out.json() if r.get("port_state") == "SLAVE"
                and r.get("realtime_error_ns") is not None]
        return bool(recs) and abs(recs[-1]["realtime_error_ns"]) < 10_000

    assert wait_for(locked, 15.0), out.lines[-5:]
    rec = [r for r in out.json() if "port_state" in r][-1]
    assert rec["stamps"] == "kernel" and rec["stamp_counters"]["rx_kernel"] > 0
    b.stop(proc)
