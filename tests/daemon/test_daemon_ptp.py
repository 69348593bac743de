"""`netclock run` with ``[ptp]`` against linuxptp, in network namespaces on a bridge.

Every ptp4l runs with ``free_running 1`` and software timestamping, so no clock is touched; all
namespaces share one system clock, so the truth is known exactly at any CLOCK_MONOTONIC instant.

Which time does a free-running ptp4l master serve? Measured here (see the first test): with
software timestamping its clock is CLOCK_REALTIME and it serves it *as is*, announcing the ARB
timescale (PTP-timescale flag clear, currentUtcOffsetValid clear, currentUtcOffset 37). So the
daemon's published time must equal CLOCK_REALTIME; CLOCK_REALTIME + 37 s is 37 s off. (The
kernel's CLOCK_TAI equals CLOCK_REALTIME on a host whose TAI offset was never set, so it cannot
tell the two apart and is not used as the truth.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netclock.client import ClockUnavailable, SharedClock
from netclock.observe import LockState, Timescale
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.netns import Node, Topology, require_netns

pytestmark = pytest.mark.interop

UTC_OFFSET_NS = 37_000_000_000

PTP4L_CFG = """[global]
free_running 1
time_stamping software
logAnnounceInterval 0
announceReceiptTimeout 3
logSyncInterval {sync}
logMinDelayReqInterval -2
summary_interval {sync}
use_syslog 0
verbose 1
priority1 {p1}
freq_est_interval 0
{extra}
"""


@pytest.fixture
def topo() -> Iterator[Topology]:
    require_netns()
    if shutil.which("ptp4l") is None:
        pytest.skip("linuxptp (ptp4l) not installed")
    with Topology.bridge(2, subnet=211) as t:
        yield t


def start_ptp4l(
    node: Node, p1: int, tmp: Path, *, sync: int = -4, extra: str = ""
) -> subprocess.Popen[str]:
    cfg = tmp / f"ptp4l-{node.ns}.cfg"
    cfg.write_text(PTP4L_CFG.format(p1=p1, sync=sync, extra=extra))
    return node.popen(
        ["ptp4l", "-f", str(cfg), "-i", node.ifname, "-4", "-S", "-m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def daemon_config(tmp: Path, name: str, body: str) -> Path:
    d = tmp / name
    d.mkdir(exist_ok=True)
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        body
        + f"""
[publish]
shm-path = "{d}/clock.shm"
[metrics]
enabled = false
"""
    )
    return cfg


def ptp_section(role: str, *, sync: int = -4, extra: str = "") -> str:
    return f"""
[ptp]
enabled = true
interface = "eth0"
role = "{role}"
log-announce-interval = 0
log-sync-interval = {sync}
log-min-delay-req-interval = -2
{extra}
"""


def start_daemon(node: Node, cfg: Path, *extra: str) -> subprocess.Popen[str]:
    log = open(cfg.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the test's tmp dir
    return node.python(
        ["-m", "netclock", "run", "--config", str(cfg), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def daemon_log(cfg: Path) -> str:
    p = cfg.with_suffix(".log")
    return p.read_text()[-3000:] if p.exists() else ""


def open_clock(path: Path, timeout: float) -> SharedClock | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            clk = SharedClock(path)
            if clk.status().synchronized:
                return clk
            clk.close()
        except ClockUnavailable:
            pass
        time.sleep(0.05)
    return None


def wait_locked(clk: SharedClock, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if clk.status().lock_state == LockState.LOCKED:
            return True
        time.sleep(0.1)
    return False


def errors_against(clk: SharedClock, cmap: ClockMap, shift_ns: int, n: int = 20) -> list[int]:
    """Published network time minus (CLOCK_REALTIME + shift) at the same MONOTONIC instant."""
    out = []
    for _ in range(n):
        mono = time.monotonic_ns()
        out.append(clk.to_network(mono) - (cmap.to_realtime(mono) + shift_ns))
        time.sleep(0.05)
    return out


def kernel_tai_offset_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_TAI) - time.clock_gettime_ns(time.CLOCK_REALTIME)


LOCK_DEADLINE_S = 30.0


def test_ptp4l_master_daemon_slave_locks_within_10us(topo: Topology, tmp_path: Path) -> None:
    """ptp4l -S master (16 Hz Sync) → `netclock run` slave-only: LOCKED, error < 10 us.

    Typically LOCKED 6 s after start; the deadline is LOCK_DEADLINE_S because on a loaded 2-core CI
    box the lock hysteresis (4 bounds in a row under 10 us) can take several more seconds.
    """
    a, b = topo.nodes
    start_ptp4l(a, 100, tmp_path)
    cfg = daemon_config(tmp_path, "slave", ptp_section("slave-only"))
    t0 = time.monotonic()
    start_daemon(b, cfg)
    cmap = ClockMap()
    clk = open_clock(tmp_path / "slave" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(cfg)
    assert wait_locked(clk, LOCK_DEADLINE_S - (time.monotonic() - t0)), daemon_log(cfg)
    st = clk.status()
    assert st.timescale == Timescale.ARB and not st.utc_offset_valid
    assert st.identity and st.hops == 1  # ptp4l's clockIdentity, one step away
    errs: list[int] = []
    while time.monotonic() - t0 < LOCK_DEADLINE_S:
        errs = errors_against(clk, cmap, 0, n=10)
        if max(abs(e) for e in errs) < 10_000:
            break
    assert max(abs(e) for e in errs) < 10_000, (errs, daemon_log(cfg))
    # CLOCK_REALTIME + currentUtcOffset is not what a free-running ptp4l serves
    off = errors_against(clk, cmap, UTC_OFFSET_NS, n=1)[0]
    assert abs(off + UTC_OFFSET_NS) < 1_000_000
    # Malformed packets from the wire are counted per message type and dropped.
    a.call(send_garbage, a.ip4)
    sock = str(tmp_path / "slave" / "status.sock")

    def counters() -> dict[str, tuple[int, int, int]]:
        src = next(s for s in fetch_snapshot(sock).sources if s.kind == "ptp")
        return {p.message_type: (p.received, p.sent, p.malformed) for p in src.packets}

    assert wait_for(lambda: counters().get("sync", (0, 0, 0))[2] >= 1, 5.0), counters()
    c = counters()
    assert c["announce"][2] >= 1 and c["follow_up"][0] > 10 and c["delay_req"][1] > 3, c
    time.sleep(0.5)
    assert clk.status().lock_state in (LockState.LOCKED, LockState.LOCKING)
    assert errors_against(clk, cmap, 0, n=1)[0] < 10_000


def send_garbage(src_ip: str) -> None:
    """Truncated and corrupt PTP messages to the multicast group, event and general ports."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src_ip))
        for data, port in (
            (b"\x10\x02", 319),  # Sync, truncated
            (b"\x00\x02" + bytes(10), 319),
            (b"\x1b\x02\x00\x40" + bytes(30), 320),  # Announce, length lies
            (bytes(range(256)), 320),
        ):
            s.sendto(data, ("224.0.1.129", port))


def _ptp4l_offsets(lines: list[str]) -> list[int]:
    return [
        int(m.group(1)) for ln in list(lines) if (m := re.search(r"master offset\s+(-?\d+)", ln))
    ]


class Lines:
    """A child's stdout, collected on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        import threading

        self.lines: list[str] = []
        assert proc.stdout is not None
        out = proc.stdout
        self._t = threading.Thread(
            target=lambda: self.lines.extend(iter(out.readline, "")), daemon=True
        )
        self._t.start()


def wait_for(pred: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_daemon_grandmaster_ptp4l_slave(topo: Topology, tmp_path: Path) -> None:
    """`netclock run` grandmaster (reference + master-only) → ptp4l -S slave: offsets < 10 us."""
    a, b = topo.nodes
    body = """
[reference]
enabled = true
interval-s = 0.1
""" + ptp_section("master-only", extra="priority1 = 100")
    cfg = daemon_config(tmp_path, "gm", body)
    start_daemon(a, cfg)
    clk = open_clock(tmp_path / "gm" / "clock.shm", 10.0)
    assert clk is not None, daemon_log(cfg)
    uds = f"/tmp/ptp4l-{b.ns}"
    lines = Lines(start_ptp4l(b, 200, tmp_path, sync=-4, extra=f"slaveOnly 1\nuds_address {uds}"))
    # a free_running ptp4l prints one offset per second (freq_est_interval 0 → 1 s)
    assert wait_for(lambda: len(_ptp4l_offsets(lines.lines)) >= 8, 18.0), (
        lines.lines[-10:],
        daemon_log(cfg),
    )
    tail = _ptp4l_offsets(lines.lines)[2:]
    assert abs(sum(tail) / len(tail)) < 10_000, tail
    assert wait_locked(clk, 5.0), daemon_log(cfg)
    # the grandmaster announces the discipline's quality: LOCKED → clockClass 6, PTP timescale
    # (its published UTC goes out as TAI = UTC + 37 s, which ptp4l takes back off)
    parent = b.run(["pmc", "-u", "-b", "0", "-s", uds, "GET PARENT_DATA_SET"], check=False)
    assert re.search(r"gm\.ClockClass\s+6\n", parent.stdout), parent.stdout
    tprops = b.run(["pmc", "-u", "-b", "0", "-s", uds, "GET TIME_PROPERTIES_DATA_SET"], check=False)
    assert re.search(r"ptpTimescale\s+1\n", tprops.stdout), tprops.stdout
    assert re.search(r"currentUtcOffset\s+37\n", tprops.stdout), tprops.stdout


def _record(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()[1:] if x.strip()]


def clock_identity(node: Node) -> str:
    """The EUI-64 clockIdentity ptp4l and netclock derive from the node's MAC address."""
    mac = node.run(["cat", f"/sys/class/net/{node.ifname}/address"]).stdout.strip()
    raw = bytes.fromhex(mac.replace(":", ""))
    return f"{raw[:3].hex()}.fffe.{raw[3:].hex()}"


def test_role_auto_follows_better_master_then_takes_over(tmp_path: Path) -> None:
    """role = auto: the daemon follows a better ptp4l master; when that master stops, the
    daemon wins the BMCA and serves its own published (held-over) time to a ptp4l slave."""
    require_netns()
    if shutil.which("ptp4l") is None or shutil.which("pmc") is None:
        pytest.skip("linuxptp (ptp4l, pmc) not installed")
    with Topology.bridge(3, subnet=215) as topo:
        n0, n1, n2 = topo.nodes
        gm = start_ptp4l(n0, 50, tmp_path)
        cfg = daemon_config(
            tmp_path,
            "auto",
            ptp_section("auto", extra="priority1 = 100") + "[holdover]\nsource-timeout-s = 2.0\n",
        )
        start_daemon(n1, cfg)
        uds = f"/tmp/ptp4l-{n2.ns}"
        lines = Lines(start_ptp4l(n2, 200, tmp_path, extra=f"slaveOnly 1\nuds_address {uds}"))
        own = clock_identity(n1)

        def first_gm() -> str:
            return clock_identity(n0)

        def gm_seen_by_slave() -> str | None:
            out = n2.run(["pmc", "-u", "-b", "0", "-s", uds, "GET PARENT_DATA_SET"], check=False)
            m = re.search(r"grandmasterIdentity\s+(\S+)", out.stdout)
            return m.group(1) if m else None

        sock = str(tmp_path / "auto" / "status.sock")

        def port_state() -> str:
            try:
                snap = fetch_snapshot(sock)
            except (OSError, StatusUnavailable):
                return ""
            return next((s.state for s in snap.sources if s.kind == "ptp"), "")

        assert wait_for(lambda: port_state() == "slave", 10.0), daemon_log(cfg)
        clk = open_clock(tmp_path / "auto" / "clock.shm", 10.0)
        assert clk is not None, daemon_log(cfg)
        time.sleep(5.0)  # a few seconds of rate measurement for the holdover that follows
        assert clk.status().identity == first_gm(), daemon_log(cfg)
        first = gm_seen_by_slave()
        assert first is not None and first != own
        assert first == first_gm()
        n0.stop(gm)
        assert wait_for(lambda: port_state() == "master", 10.0), daemon_log(cfg)
        assert wait_for(lambda: gm_seen_by_slave() == own, 8.0), (gm_seen_by_slave(), own)
        n_before = len(_ptp4l_offsets(lines.lines))
        assert wait_for(lambda: len(_ptp4l_offsets(lines.lines)) >= n_before + 5, 10.0)
        tail = _ptp4l_offsets(lines.lines)[n_before + 2 :]
        # held-over time: the rate fitted over a few seconds drifts by some µs per second
        assert abs(sum(tail) / len(tail)) < 100_000, tail
        # it serves its held-over time, in the timescale it learnt (ARB, like ptp4l's)
        assert wait_for(lambda: clk.status().lock_state == LockState.HOLDOVER, 3.0)
        assert clk.status().timescale == Timescale.ARB
