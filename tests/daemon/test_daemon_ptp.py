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
import time
from pathlib import Path
from typing import Any

import pytest

from netclock.observe import LockState, Timescale
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.daemons import (
    UTC_OFFSET_NS,
    Lines,
    daemon_config,
    daemon_log,
    errors_against,
    mean_offset,
    open_clock,
    ptp4l_offsets,
    ptp_section,
    start_daemon,
    start_ptp4l,
    wait_for,
    wait_locked,
)
from tests.support.netns import Node, Topology, require_netns, topology_fixture

pytestmark = pytest.mark.interop

#: a direct veth pair: ~2-3 us each way with software stamps (through a bridge it is ~20 us
#: with more jitter, which makes the 10 us lock threshold flap on a loaded CI box)
topo = topology_fixture(2, 211, "ptp4l", veth=True)


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

    # read on the tick, not per packet (ptp.rx-poll-ms): the stamps are the kernel's
    src = next(s for s in fetch_snapshot(sock).sources if s.kind == "ptp")
    assert src.rx_poll_ms == 250 and src.stamp_source == "kernel", src
    assert wait_for(lambda: counters().get("sync", (0, 0, 0))[2] >= 1, 5.0), counters()
    c = counters()
    assert c["announce"][2] >= 1 and c["follow_up"][0] > 10 and c["delay_req"][1] > 3, c
    time.sleep(0.5)
    assert clk.status().lock_state in (LockState.LOCKED, LockState.LOCKING)
    assert errors_against(clk, cmap, 0, n=1)[0] < 10_000


def test_daemon_slave_at_4_sync_per_second_locks(topo: Topology, tmp_path: Path) -> None:
    """logSyncInterval -2 (4 Sync/s: a span of Syncs holds one): once the first fit exists the
    daemon groups FLOOR_MIN_GROUP Syncs per observation for the delay floors, and it locks
    within 10 us as at 16 Hz."""
    a, b = topo.nodes
    gm = start_ptp4l(a, 100, tmp_path, sync=-2)
    cfg = daemon_config(tmp_path, "slow", ptp_section("slave-only", sync=-2))
    t0 = time.monotonic()
    proc = start_daemon(b, cfg)
    try:
        cmap = ClockMap()
        clk = open_clock(tmp_path / "slow" / "clock.shm", 15.0)
        assert clk is not None, daemon_log(cfg)
        assert wait_locked(clk, LOCK_DEADLINE_S - (time.monotonic() - t0)), daemon_log(cfg)
        time.sleep(6.0)  # floored observations replace the first, lone ones
        errs = errors_against(clk, cmap, 0, n=10)
        assert max(abs(e) for e in errs) < 10_000, (errs, daemon_log(cfg))
        assert clk.status().lock_state == LockState.LOCKED
        assert clk.status().error_bound_ns < 10_000
    finally:
        b.stop(proc)
        a.stop(gm)


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
    assert wait_for(lambda: len(ptp4l_offsets(lines.lines)) >= 8, 18.0), (
        lines.lines[-10:],
        daemon_log(cfg),
    )
    tail = ptp4l_offsets(lines.lines)[2:]
    assert abs(mean_offset(tail)) < 10_000, tail
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

        def rx_poll_ms() -> int:
            snap = fetch_snapshot(sock)
            return next(s.rx_poll_ms for s in snap.sources if s.kind == "ptp")

        assert wait_for(lambda: port_state() == "slave", 10.0), daemon_log(cfg)
        # a slave reads its sockets on the tick (ptp.rx-poll-ms, default 250 ms)...
        assert rx_poll_ms() == 250
        clk = open_clock(tmp_path / "auto" / "clock.shm", 10.0)
        assert clk is not None, daemon_log(cfg)
        time.sleep(5.0)  # a few seconds of rate measurement for the holdover that follows
        assert clk.status().identity == first_gm(), daemon_log(cfg)
        first = gm_seen_by_slave()
        assert first is not None and first != own
        assert first == first_gm()
        n0.stop(gm)
        assert wait_for(lambda: port_state() == "master", 10.0), daemon_log(cfg)
        # ...a master as each packet comes (it answers Delay_Reqs and sends Follow_Ups)
        assert rx_poll_ms() == 0
        assert wait_for(lambda: gm_seen_by_slave() == own, 8.0), (gm_seen_by_slave(), own)
        n_before = len(ptp4l_offsets(lines.lines))
        assert wait_for(lambda: len(ptp4l_offsets(lines.lines)) >= n_before + 5, 10.0)
        tail = ptp4l_offsets(lines.lines)[n_before + 2 :]
        # held-over time: the rate fitted over a few seconds drifts by some µs per second
        assert abs(sum(tail) / len(tail)) < 100_000, tail
        # it serves its held-over time, in the timescale it learnt (ARB, like ptp4l's)
        assert wait_for(lambda: clk.status().lock_state == LockState.HOLDOVER, 3.0)
        assert clk.status().timescale == Timescale.ARB
