"""netclock PTP against linuxptp for issue 5: peer delay (ptp4l -P), UDPv6 (ptp4l -6), the
SMPTE ST 2059-2 profile, and management from the real ``pmc`` over a Unix socket.

Namespaces joined by one veth pair (a real point-to-point link for P2P). Every ptp4l runs with
``free_running 1``; netclock never adjusts a clock. All namespaces share one system clock, so
netclock's ``realtime_error_ns`` is its true error and ptp4l's "master offset" is its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from netclock.ptp.wire import (
    ClockIdentity,
    Header,
    Management,
    ManagementAction,
    ManagementErrorId,
    ManagementErrorStatusTlv,
    ManagementId,
    ManagementTlv,
    PortIdentity,
    parse,
)
from tests.support.daemons import Lines, mean_offset, start_ptp4l_gptp, wait_for
from tests.support.netns import Node, Topology, require_netns, topology_fixture

pytestmark = pytest.mark.interop

PTP4L_CFG = """[global]
free_running 1
time_stamping software
logAnnounceInterval {announce}
announceReceiptTimeout 3
logSyncInterval {sync}
logMinDelayReqInterval {sync}
logMinPdelayReqInterval -2
domainNumber {domain}
summary_interval {sync}
use_syslog 0
verbose 1
priority1 {p1}
freq_est_interval 0
neighborPropDelayThresh 20000000
{extra}
"""


link = topology_fixture(2, 205, "ptp4l", "pmc", veth=True)


def ptp4l(node: Node, flags: list[str], *, p1: int, sync: int = -3, announce: int = 0,
          domain: int = 0, extra: str = "") -> tuple[subprocess.Popen[str], Lines]:
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(PTP4L_CFG.format(p1=p1, sync=sync, announce=announce, domain=domain,
                                 extra=extra))
        f.write(f"uds_address /tmp/ptp4l-{node.ns}\n")
    proc = node.popen(["ptp4l", "-f", f.name, "-i", node.ifname, "-m", *flags],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, Lines(proc)


def netclock(node: Node, role: str, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    proc = node.python(["-m", "netclock", "ptp", role, "-i", node.ifname, "--json-log", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, Lines(proc)


def locked(out: Lines, limit_ns: int = 10_000) -> bool:
    recs = [r for r in out.json() if r.get("port_state") == "SLAVE"
            and r.get("realtime_error_ns") is not None]
    return bool(recs) and abs(recs[-1]["realtime_error_ns"]) < limit_ns


def ptp4l_offsets(lines: Lines) -> list[int]:
    return [int(m.group(1)) for ln in list(lines.lines)
            if (m := re.search(r"master offset\s+(-?\d+)", ln))]


FAST = ("--log-announce-interval", "0", "--log-sync-interval", "-3",
        "--log-min-pdelay-req-interval", "-2", "--log-min-delay-req-interval", "-3")


@pytest.mark.parametrize("transport", ["p2p", "udpv6"])
def test_ptp4l_master_netclock_slave(link: Topology, transport: str) -> None:
    a, b = link.nodes
    if transport == "p2p":
        ptp4l(a, ["-4", "-P"], p1=100)
        args = ["--profile", "default-p2p", *FAST]
    else:
        ptp4l(a, ["-6", "-E"], p1=100)
        args = ["--transport", "udpv6", *FAST]
    _, out = netclock(b, "slave", *args)
    assert wait_for(lambda: locked(out), 12.0), out.lines[-6:]
    rec = [r for r in out.json() if "port_state" in r][-1]
    if transport == "p2p":
        # netclock measured the link with ptp4l as the Pdelay responder
        assert rec["delay_mechanism"] == "P2P"
        assert rec["neighbor_prop_delay_ns"] is not None
        assert 0 <= rec["neighbor_prop_delay_ns"] < 1_000_000


@pytest.mark.parametrize("transport", ["p2p", "udpv6"])
def test_netclock_master_ptp4l_slave(link: Topology, transport: str) -> None:
    a, b = link.nodes
    if transport == "p2p":
        _, out = netclock(a, "master", "--profile", "default-p2p", "--priority1", "100", *FAST)
        _, lines = ptp4l(b, ["-4", "-P", "-s"], p1=200)
    else:
        _, out = netclock(a, "master", "--transport", "udpv6", "--priority1", "100", *FAST)
        _, lines = ptp4l(b, ["-6", "-E", "-s"], p1=200)
    # free_running ptp4l prints one offset per second once it has a master
    assert wait_for(lambda: len(ptp4l_offsets(lines)) >= 6, 18.0), (lines.lines[-8:],
                                                                     out.lines[-3:])
    tail = ptp4l_offsets(lines)[1:]
    assert abs(mean_offset(tail)) < 10_000, tail
    if transport == "p2p":
        # ptp4l answered netclock's Pdelay_Req: netclock knows the link delay too
        assert wait_for(lambda: any(r.get("neighbor_prop_delay_ns") is not None
                                    for r in out.json()), 3.0), out.lines[-3:]


def test_smpte_2059_2_profile_both_ways(link: Topology) -> None:
    a, b = link.nodes
    smpte = dict(sync=-3, announce=-2, domain=127)
    # ptp4l master with the ST 2059-2 values, netclock slave with its profile
    p4, _ = ptp4l(a, ["-4", "-E"], p1=100, **smpte)  # type: ignore[arg-type]
    nc, out = netclock(b, "slave", "--profile", "smpte-2059-2")
    assert wait_for(lambda: locked(out), 10.0), out.lines[-6:]
    a.stop(p4)
    b.stop(nc)
    # and the other way round: ptp4l follows a netclock master that also sends the ST 2059-2
    # synchronization metadata (Management COMMAND messages ptp4l has no use for)
    netclock(a, "master", "--profile", "smpte-2059-2", "--priority1", "100")
    p4, lines = ptp4l(b, ["-4", "-E", "-s"], p1=200, **smpte)  # type: ignore[arg-type]
    assert wait_for(lambda: len(ptp4l_offsets(lines)) >= 7, 14.0), lines.lines[-8:]
    tail = ptp4l_offsets(lines)[1:]
    assert abs(mean_offset(tail)) < 10_000, tail
    b.stop(p4)
    # a netclock slave with the profile locks too and reads the metadata off the wire
    _, out = netclock(b, "slave", "--profile", "smpte-2059-2")

    def metadata() -> dict[str, int] | None:
        recs = [r for r in out.json() if r.get("sync_metadata")]
        return recs[-1]["sync_metadata"] if recs else None

    assert wait_for(lambda: locked(out) and metadata() is not None, 10.0), out.lines[-6:]
    sm = metadata()
    assert sm is not None
    assert (sm["frame_rate_numerator"], sm["frame_rate_denominator"]) == (30000, 1001)
    assert sm["locking_status"] == 1  # a free-running master (clockClass 248): FREE_RUN


def _pmc(node: Node, uds: str, cmd: str, domain: int = 0) -> str:
    return node.run(["pmc", "-u", "-b", "0", "-d", str(domain), "-s", uds, cmd],
                    check=False).stdout


def _field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{name}\s+(\S+)", text, re.M)
    assert m is not None, (name, text)
    return m.group(1)


def test_pmc_over_uds_reads_netclock_data_sets(link: Topology) -> None:
    a, b = link.nodes
    ptp4l(a, ["-4", "-E"], p1=90, sync=-3)
    p4_uds = f"/tmp/ptp4l-{a.ns}"
    uds = f"/tmp/netclock-{b.ns}.uds"
    _, out = netclock(b, "slave", "--uds", uds, "--domain", "0", "--priority2", "77",
                      "--log-announce-interval", "0", "--log-sync-interval", "-3",
                      "--log-min-delay-req-interval", "-3")
    assert wait_for(lambda: locked(out), 10.0), out.lines[-6:]
    rec = [r for r in out.json() if "port_state" in r][-1]
    nc_id, gm = rec["clock_identity"], rec["gm_identity"]

    d = _pmc(b, uds, "GET DEFAULT_DATA_SET")
    assert _field(d, "clockIdentity") == nc_id
    assert _field(d, "priority2") == "77" and _field(d, "slaveOnly") == "1"
    assert _field(d, "domainNumber") == "0" and _field(d, "clockClass") == "255"
    assert _field(d, "twoStepFlag") == "1" and _field(d, "numberPorts") == "1"

    c = _pmc(b, uds, "GET CURRENT_DATA_SET")
    assert _field(c, "stepsRemoved") == "1"
    assert abs(float(_field(c, "offsetFromMaster"))) < 10_000
    assert 0 <= float(_field(c, "meanPathDelay")) < 1_000_000

    p = _pmc(b, uds, "GET PARENT_DATA_SET")
    assert _field(p, "grandmasterIdentity") == gm != nc_id
    assert _field(p, "grandmasterPriority1") == "90"
    assert _field(p, "parentPortIdentity") == f"{gm}-1"

    # the time properties are the grandmaster's: compare with ptp4l's own answer
    t = _pmc(b, uds, "GET TIME_PROPERTIES_DATA_SET")
    t4 = _pmc(a, p4_uds, "GET TIME_PROPERTIES_DATA_SET")
    for name in ("currentUtcOffset", "ptpTimescale", "currentUtcOffsetValid", "leap61",
                 "leap59", "timeTraceable", "frequencyTraceable", "timeSource"):
        assert _field(t, name) == _field(t4, name), name

    pd = _pmc(b, uds, "GET PORT_DATA_SET")
    assert _field(pd, "portState") == "SLAVE"
    assert _field(pd, "portIdentity") == f"{nc_id}-1"
    assert _field(pd, "delayMechanism") == "1" and _field(pd, "logSyncInterval") == "-3"
    assert _field(pd, "versionNumber") == "2" and _field(pd, "logAnnounceInterval") == "0"

    ts = _pmc(b, uds, "GET TIME_STATUS_NP")
    assert _field(ts, "gmPresent") == "true" and _field(ts, "gmIdentity") == gm
    assert abs(int(_field(ts, "master_offset"))) < 10_000
    assert int(_field(ts, "ingress_time")) > 0

    # SET is off: pmc gets the error TLV (pmc prints no error id; the raw reply has it)
    assert "MANAGEMENT_ERROR_STATUS" in _pmc(b, uds, "SET PRIORITY2 10")
    assert _field(_pmc(b, uds, "GET DEFAULT_DATA_SET"), "priority2") == "77"
    for action, mid in ((ManagementAction.SET, ManagementId.PRIORITY2),
                        (ManagementAction.COMMAND, ManagementId.ENABLE_PORT),
                        (ManagementAction.GET, 0x1FFF)):
        reply = b.call(_raw_uds, uds, action, mid)
        (tlv,) = reply.tlvs
        assert isinstance(tlv, ManagementErrorStatusTlv), reply
        want = ManagementErrorId.NO_SUCH_ID if mid == 0x1FFF else ManagementErrorId.NOT_SUPPORTED
        assert tlv.management_error_id == want and tlv.management_id == mid


def _raw_uds(path: str, action: int, mid: int) -> Management:
    """One management request over the Unix socket from a bound client socket, as pmc does."""
    import os
    import socket

    me = f"/tmp/netclock-test-{os.getpid()}-{mid}.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(me)
        s.settimeout(2.0)
        req = Management(Header(source_port_identity=PortIdentity(ClockIdentity(b"\1" * 8), 9),
                                sequence_id=5), action=action, tlvs=(ManagementTlv(mid, b""),))
        s.sendto(req.pack(), path)
        msg = parse(s.recv(1500))
        assert isinstance(msg, Management) and msg.header.sequence_id == 5
        return msg
    finally:
        s.close()
        os.unlink(me)


def ptp4l_gptp(node: Node, extra: str, flags: list[str]) -> tuple[subprocess.Popen[str], Lines]:
    return start_ptp4l_gptp(node, Path(tempfile.mkdtemp(prefix="nc-gptp-")), extra, flags)


GPTP_NC = ("--profile", "gptp", "--log-min-pdelay-req-interval", "-2")


def test_gptp_ptp4l_master_netclock_slave(link: Topology) -> None:
    a, b = link.nodes
    ptp4l_gptp(a, "priority1 100\n", [])
    _, out = netclock(b, "slave", *GPTP_NC)
    assert wait_for(lambda: locked(out), 12.0), out.lines[-4:]
    rec = [r for r in out.json() if "port_state" in r][-1]
    assert rec["profile"] == "gptp" and rec["delay_mechanism"] == "P2P"
    assert rec["neighbor_prop_delay_ns"] is not None and rec["neighbor_prop_delay_ns"] < 1_000_000
    assert abs(rec["neighbor_rate_ratio"] - 1) < 1e-4
    assert rec["stamp_counters"]["tx_kernel"] > 0  # L2 TX stamps come from the kernel


def test_gptp_netclock_master_ptp4l_slave(link: Topology) -> None:
    a, b = link.nodes
    _, out = netclock(a, "master", *GPTP_NC, "--priority1", "100")
    # ptp4l only follows a master that sends gPTP Follow_Up information TLVs and answers its
    # Pdelay_Req (asCapable)
    _, lines = ptp4l_gptp(b, "", ["-s"])
    assert wait_for(lambda: len(ptp4l_offsets(lines)) >= 6, 18.0), (lines.lines[-8:],
                                                                     out.lines[-2:])
    tail = ptp4l_offsets(lines)[1:]
    assert abs(mean_offset(tail)) < 10_000, tail


def test_l2_without_cap_net_raw_says_so() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    import os
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root to drop CAP_NET_RAW from a root process")
    res = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", sys.executable,
         "-m", "netclock", "ptp", "slave", "-i", "lo", "--transport", "l2", "--duration", "1"],
        capture_output=True, text=True, timeout=20, check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert res.returncode == 2
    assert "CAP_NET_RAW" in res.stderr, res.stderr


def test_two_domains_two_ptp4l_masters() -> None:
    """netclock follows domains 0 and 1 (two ptp4l masters) with one calibration each. All
    namespaces share one system clock, so the true offset between the two masters is 0 and the
    published calibrations must agree to within the software-stamping error."""
    require_netns()
    if shutil.which("ptp4l") is None:
        pytest.skip("linuxptp not installed")
    with Topology.bridge(3, subnet=209) as t:
        m0, m1, s = t.nodes
        ptp4l(m0, ["-4", "-E"], p1=100, domain=0)
        ptp4l(m1, ["-4", "-E"], p1=100, domain=1)
        _, out = netclock(s, "slave", "--domain", "0", "--also-domain", "1",
                          "--log-announce-interval", "0", "--log-sync-interval", "-3",
                          "--log-min-delay-req-interval", "-3")

        def both() -> dict[int, dict[str, Any]]:
            last: dict[int, dict[str, Any]] = {}
            for r in out.json():
                if "domain" in r:
                    last[r["domain"]] = r
            return last

        def tracked() -> bool:
            last = both()
            return (len(last) == 2 and all(
                r["port_state"] == "SLAVE" and r["realtime_error_ns"] is not None
                and abs(r["realtime_error_ns"]) < 10_000 for r in last.values())
                and last[1]["domain_offset_ns"] is not None)

        assert wait_for(tracked, 12.0), out.lines[-4:]
        last = both()
        assert last[0]["gm_identity"] != last[1]["gm_identity"]
        assert last[0]["primary_domain"] == 0 and last[0]["domain_offset_ns"] is None
        assert abs(last[1]["domain_offset_ns"]) < 20_000, last[1]


def test_unicast_ptp4l_master_netclock_slave(link: Topology) -> None:
    """ptp4l as a unicast master (unicast_listen 1); netclock, with it in its unicast master
    table, negotiates Announce, Sync and Delay_Resp (§16.1) and locks."""
    a, b = link.nodes
    ptp4l(a, ["-4", "-E"], p1=100, extra="unicast_listen 1\n")
    _, out = netclock(b, "slave", "--unicast-master", a.ip4, "--log-announce-interval", "0",
                      "--log-sync-interval", "-3", "--log-min-delay-req-interval", "-3")
    assert wait_for(lambda: locked(out), 12.0), out.lines[-4:]
    grants = [r for r in out.json() if "unicast_grants" in r][-1]["unicast_grants"]
    # ptp4l granted all three message types (messageType 0xB Announce, 0x0 Sync, 0x9 Delay_Resp)
    assert {f"{a.ip4}/{mt}" for mt in (0xB, 0x0, 0x9)} <= set(grants), grants
    assert all(d > 0 for d in grants.values()), grants
