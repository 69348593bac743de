"""`netclock run` with the studio PTP of issue 5 against linuxptp, in network namespaces.

The daemon runs every transport and delay mechanism `netclock ptp` runs: P2P over UDPv4, UDPv6,
and gPTP (L2, P2P, transportSpecific 1) from linuxptp's own gPTP.cfg; and several domains at
once, one source each, the discipline's failover by priority choosing the domain that drives
the main time.

Every ptp4l runs with ``free_running 1`` and software timestamping, so no clock is touched; a
free-running ptp4l serves CLOCK_REALTIME as ARB time (see tests/daemon/test_daemon_ptp.py), so
the daemon's published time must equal CLOCK_REALTIME, which all namespaces share.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from netclock.client import SharedClock
from netclock.observe import LockState
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.daemons import (
    Lines,
    daemon_config,
    daemon_log,
    errors_against,
    mean_offset,
    open_clock,
    popen_ptp4l,
    ptp4l_offsets,
    start_daemon,
    start_ptp4l_gptp,
    wait_for,
    wait_locked,
)
from tests.support.netns import Node, Topology, require_netns, topology_fixture

pytestmark = pytest.mark.interop

PTP4L_CFG = """[global]
free_running 1
time_stamping software
logAnnounceInterval 0
announceReceiptTimeout 3
logSyncInterval -3
logMinDelayReqInterval -3
logMinPdelayReqInterval -2
neighborPropDelayThresh 20000000
domainNumber {domain}
summary_interval -3
use_syslog 0
verbose 1
priority1 {p1}
freq_est_interval 0
{extra}
"""

LOCK_DEADLINE_S = 30.0
#: the [ptp] keys every daemon here shares: fast intervals, like the ptp4l peers
FAST = """
log-announce-interval = 0
log-sync-interval = -3
log-min-delay-req-interval = -3
log-min-pdelay-req-interval = -2
"""


def clock_identity(node: Node) -> str:
    """The EUI-64 clockIdentity ptp4l and netclock derive from the node's MAC address."""
    mac = node.run(["cat", f"/sys/class/net/{node.ifname}/address"]).stdout.strip()
    raw = bytes.fromhex(mac.replace(":", ""))
    return f"{raw[:3].hex()}.fffe.{raw[3:].hex()}"


def _require_linuxptp() -> None:
    require_netns()
    if shutil.which("ptp4l") is None:
        pytest.skip("linuxptp (ptp4l) not installed")


link = topology_fixture(2, 231, "ptp4l", veth=True)


def start_ptp4l(
    node: Node, tmp: Path, flags: list[str], *, p1: int, domain: int = 0, extra: str = ""
) -> tuple[subprocess.Popen[str], Lines]:
    cfg = tmp / f"ptp4l-{node.ns}-{domain}.cfg"
    cfg.write_text(PTP4L_CFG.format(p1=p1, domain=domain, extra=extra))
    proc = popen_ptp4l(node, cfg, flags)
    return proc, Lines(proc)


def ptp_section(role: str, body: str) -> str:
    return f"""
[ptp]
enabled = true
interface = "eth0"
role = "{role}"
{body}
"""


def assert_locked_to_realtime(clk: SharedClock, cfg: Path, t0: float) -> None:
    """LOCKED before the deadline, and then the published time within 10 us of REALTIME."""
    assert wait_locked(clk, LOCK_DEADLINE_S - (time.monotonic() - t0)), daemon_log(cfg)
    cmap = ClockMap()
    errs: list[int] = []
    while time.monotonic() - t0 < LOCK_DEADLINE_S + 5:
        errs = errors_against(clk, cmap, 0, n=10)
        if max(abs(e) for e in errs) < 10_000:
            break
    assert max(abs(e) for e in errs) < 10_000, (errs, daemon_log(cfg))


def ptp_sources(sock: str) -> dict[str, object]:
    """name → SourceSnapshot of the daemon's PTP sources ({} while the socket is not up)."""
    try:
        snap = fetch_snapshot(sock)
    except (OSError, StatusUnavailable):
        return {}
    return {s.name: s for s in snap.sources if s.kind == "ptp"}


@pytest.mark.parametrize("transport", ["p2p", "udpv6", "gptp"])
def test_ptp4l_master_daemon_slave(link: Topology, tmp_path: Path, transport: str) -> None:
    """ptp4l master → `netclock run` slave-only over P2P (profile default-p2p), UDPv6 (ptp.
    transport) and gPTP (profile gptp: L2, P2P, transportSpecific 1): LOCKED, error < 10 us."""
    a, b = link.nodes
    if transport == "p2p":
        start_ptp4l(a, tmp_path, ["-4", "-P"], p1=100)
        body = 'profile = "default-p2p"\n' + FAST
    elif transport == "udpv6":
        start_ptp4l(a, tmp_path, ["-6", "-E"], p1=100)
        body = 'transport = "udpv6"\n' + FAST
    else:
        start_ptp4l_gptp(a, tmp_path, "priority1 100\n", [])
        body = 'profile = "gptp"\nlog-min-pdelay-req-interval = -2\n'
    cfg = daemon_config(tmp_path, "slave", ptp_section("slave-only", body))
    t0 = time.monotonic()
    start_daemon(b, cfg)
    clk = open_clock(tmp_path / "slave" / "clock.shm", 20.0)
    assert clk is not None, daemon_log(cfg)
    assert_locked_to_realtime(clk, cfg, t0)
    assert clk.status().identity == clock_identity(a)
    (src,) = ptp_sources(str(tmp_path / "slave" / "status.sock")).values()
    counts = {p.message_type: p for p in src.packets}  # type: ignore[attr-defined]
    if transport in ("p2p", "gptp"):
        # peer delay, both ways: the daemon asks, and answers ptp4l's requests
        assert counts["pdelay_req"].sent > 3 and counts["pdelay_resp"].received > 3, counts
        assert counts["pdelay_req"].received > 3 and counts["pdelay_resp"].sent > 3, counts
        assert "delay_req" not in counts, counts
        # it answers each Pdelay_Req as it comes: a P2P port is never polled
        assert src.rx_poll_ms == 0  # type: ignore[attr-defined]
    else:
        assert counts["delay_req"].sent > 3 and counts["delay_resp"].received > 3, counts
        assert src.rx_poll_ms == 250  # type: ignore[attr-defined]
    assert src.stamp_source == "kernel"  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["udpv6", "gptp"])
def test_daemon_grandmaster_ptp4l_slave(link: Topology, tmp_path: Path, transport: str) -> None:
    """`netclock run` grandmaster (reference, master-only) → ptp4l slave over UDPv6 and over
    gPTP (ptp4l follows only a master that sends the Follow_Up information TLV and answers its
    Pdelay_Req): ptp4l's offsets < 10 us."""
    a, b = link.nodes
    body = "priority1 = 100\n" + (
        'transport = "udpv6"\n' + FAST
        if transport == "udpv6"
        else 'profile = "gptp"\nlog-min-pdelay-req-interval = -2\n'
    )
    cfg = daemon_config(
        tmp_path,
        "gm",
        "[reference]\nenabled = true\ninterval-s = 0.1\n" + ptp_section("master-only", body),
    )
    start_daemon(a, cfg)
    clk = open_clock(tmp_path / "gm" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(cfg)
    if transport == "udpv6":
        _, lines = start_ptp4l(b, tmp_path, ["-6", "-E", "-s"], p1=200)
    else:
        _, lines = start_ptp4l_gptp(b, tmp_path, "", ["-s"])
    # a free_running ptp4l prints one "master offset" per freq_est_interval (0: 1 s), whatever
    # the Sync rate and summary_interval
    assert wait_for(lambda: len(ptp4l_offsets(lines.lines)) >= 10, 25.0), (
        lines.lines[-10:],
        daemon_log(cfg),
    )
    tail = ptp4l_offsets(lines.lines)[2:]
    assert abs(mean_offset(tail)) < 10_000, tail


def test_two_domains_failover_to_the_other_domain(tmp_path: Path) -> None:
    """Domains 0 (source-priority 1) and 1 ([[ptp.extra-domain]], priority 2), each served by
    its own ptp4l master: the daemon follows both, domain 0 drives the main time; when domain
    0's master is killed, after failover-after-s of holdover domain 1 does (grandmaster
    identity and domain change), and the time stays right (both masters serve the one system
    clock)."""
    _require_linuxptp()
    with Topology.bridge(3, subnet=233) as topo:
        m0, m1, s = topo.nodes
        p0, _ = start_ptp4l(m0, tmp_path, ["-4", "-E"], p1=100, domain=0)
        start_ptp4l(m1, tmp_path, ["-4", "-E"], p1=100, domain=1)
        body = (
            FAST
            + "source-priority = 1\n[[ptp.extra-domain]]\ndomain = 1\nsource-priority = 2\n"
            + "[holdover]\nsource-timeout-s = 2.0\nfailover-after-s = 1.0\n"
            # Through the bridge the software-stamped path is ~20 us each way with us of
            # jitter (ptp4l measures the same), and two masters share the 2 CPUs: the default
            # 10 us lock threshold can flap for many seconds on a loaded CI box. This test is
            # about the domain failover; the error itself is still checked below 10 us.
            + "[clock]\nlock-threshold-ns = 30000\n"
        )
        cfg = daemon_config(tmp_path, "multi", ptp_section("slave-only", body))
        t0 = time.monotonic()
        start_daemon(s, cfg)
        sock = str(tmp_path / "multi" / "status.sock")
        clk = open_clock(tmp_path / "multi" / "clock.shm", 20.0)
        assert clk is not None, daemon_log(cfg)
        assert_locked_to_realtime(clk, cfg, t0)

        def following_both() -> bool:
            srcs = ptp_sources(sock)
            return len(srcs) == 2 and all(
                x.state == "slave" and x.rate_ppb is not None  # type: ignore[attr-defined]
                for x in srcs.values()
            )

        assert wait_for(following_both, 10.0), (ptp_sources(sock), daemon_log(cfg))
        srcs = ptp_sources(sock)
        assert set(srcs) == {"ptp:eth0:0", "ptp:eth0:1"}
        assert srcs["ptp:eth0:0"].selected  # type: ignore[attr-defined]
        assert srcs["ptp:eth0:0"].identity == clock_identity(m0)  # type: ignore[attr-defined]
        assert srcs["ptp:eth0:1"].identity == clock_identity(m1)  # type: ignore[attr-defined]
        # the other domain's calibration agrees with the published one (same system clock)
        off1 = srcs["ptp:eth0:1"].offset_ns  # type: ignore[attr-defined]
        assert off1 is not None and abs(off1) < 20_000, off1
        st = clk.status()
        assert st.identity == clock_identity(m0) and st.domain == 0

        m0.stop(p0)

        def switched() -> bool:
            return ptp_sources(sock).get("ptp:eth0:1") is not None and bool(
                ptp_sources(sock)["ptp:eth0:1"].selected  # type: ignore[attr-defined]
            )

        assert wait_for(switched, 15.0), (ptp_sources(sock), daemon_log(cfg))
        assert wait_for(lambda: clk.status().domain == 1, 5.0), daemon_log(cfg)
        assert clk.status().identity == clock_identity(m1)
        assert clk.status().lock_state in (LockState.LOCKED, LockState.LOCKING)
        errs = errors_against(clk, ClockMap(), 0, n=10)
        assert max(abs(e) for e in errs) < 20_000, (errs, daemon_log(cfg))


def test_l2_without_cap_net_raw_exits_77_naming_it(tmp_path: Path) -> None:
    """ptp.transport = l2 in a process without CAP_NET_RAW: exit 77, the message names it."""
    import os
    import sys

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root to drop CAP_NET_RAW from a root process")
    cfg = daemon_config(
        tmp_path,
        "l2",
        ptp_section("slave-only", 'interface = "lo"\ntransport = "l2"\n').replace(
            'interface = "eth0"\n', ""
        ),
    )
    res = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", sys.executable,
         "-m", "netclock", "run", "--config", str(cfg)],
        capture_output=True, text=True, timeout=20, check=False,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert res.returncode == 77, (res.returncode, res.stderr)
    assert "CAP_NET_RAW" in res.stderr, res.stderr
