"""netclock daemons against each other in network namespaces (issue 6: master/slave, failover,
restart with persisted state). Needs root for the namespaces; no clock is ever adjusted.

All namespaces share one system clock, so the truth at a CLOCK_MONOTONIC instant is known:
a grandmaster whose reference is CLOCK_REALTIME serves PTP time = CLOCK_REALTIME + 37 s (TAI,
currentUtcOffset 37) and NTP time = CLOCK_REALTIME (+ its configured shift).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netclock.observe import LockState, Timescale
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.daemons import (
    UTC_OFFSET_NS,
    daemon_config,
    daemon_log,
    errors_against,
    open_clock,
    ptp_section,
    start_daemon,
    wait_for,
    wait_locked,
)
from tests.support.netns import Topology, require_netns

pytestmark = pytest.mark.interop

NTP_PORT = 12300
#: the NTP server's reference is shifted by this much, so that failover has a known size
NTP_SHIFT_NS = 200_000


@pytest.fixture
def bridge() -> Iterator[Topology]:
    require_netns()
    with Topology.bridge(2, subnet=216) as t:
        yield t


@pytest.fixture
def veth() -> Iterator[Topology]:
    require_netns()
    with Topology.veth_pair(subnet=217) as t:
        yield t


GM_BODY = """
[reference]
enabled = true
interval-s = 0.1
""" + ptp_section("master-only", extra="priority1 = 100")


def read_record(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()[1:] if x.strip()]


def selected_source(sock: Path) -> str | None:
    try:
        snap = fetch_snapshot(str(sock))
    except (OSError, StatusUnavailable):
        return None
    return next((s.name for s in snap.sources if s.selected), None)


def test_master_slave_daemons_failover_to_ntp_without_step(
    bridge: Topology, tmp_path: Path
) -> None:
    """PTP master daemon + NTP server → slave daemon (PTP priority 1, NTP priority 2).

    Killing the PTP master puts the slave in HOLDOVER, then it fails over to NTP; the
    published time moves by the two sources' disagreement (NTP_SHIFT_NS) and never more.
    """
    a, b = bridge.nodes
    gm_cfg = daemon_config(tmp_path, "gm", GM_BODY)
    gm = start_daemon(a, gm_cfg)
    ntp_cfg = daemon_config(
        tmp_path,
        "ntpsrv",
        f"""
[reference]
enabled = true
interval-s = 0.1
shift-ns = {NTP_SHIFT_NS}
[ntp]
serve = true
listen-address = "{a.ip4}"
listen-port = {NTP_PORT}
""",
    )
    start_daemon(a, ntp_cfg)
    slave_cfg = daemon_config(
        tmp_path,
        "slave",
        ptp_section("slave-only")
        + f"""
[[ntp.server]]
address = "{a.ip4}"
port = {NTP_PORT}
minpoll = -2
maxpoll = -2
priority = 2
[holdover]
source-timeout-s = 2.0
failover-after-s = 2.0
[clock]
# software stamps between two Python daemons on a loaded CI box wander by several µs; the
# default 10 µs lock threshold flaps there, and lock quality is not what this test is about
lock-threshold-ns = 30000
""",
    )
    record = tmp_path / "slave.jsonl"
    start_daemon(b, slave_cfg, "--record", str(record))
    sock = tmp_path / "slave" / "status.sock"
    clk = open_clock(tmp_path / "slave" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(slave_cfg)
    assert wait_locked(clk, 15.0), daemon_log(slave_cfg)
    assert wait_for(lambda: (selected_source(sock) or "").startswith("ptp:"), 5.0)
    # both sources measured for a while: their disagreement is known from the record
    assert wait_for(
        lambda: sum(1 for r in read_record(record) if r["source"].startswith("ntp:")) >= 8, 10.0
    ), daemon_log(slave_cfg)
    time.sleep(3.0)
    cmap = ClockMap()
    before = errors_against(clk, cmap, 0, n=5)  # UTC (PTP converted with currentUtcOffset)
    assert clk.status().timescale == Timescale.UTC
    # A sanity bound, not an accuracy claim: seconds after lock, a fit over few software-
    # stamped Syncs on a loaded 2-core box can still be tens of us off (seen: 20 us).
    assert max(abs(e) for e in before) < 50_000, before
    t_kill = time.monotonic_ns()
    a.stop(gm)  # the primary disappears
    assert wait_for(lambda: clk.status().lock_state == LockState.HOLDOVER, 5.0), daemon_log(
        slave_cfg
    )
    assert wait_for(lambda: (selected_source(sock) or "").startswith("ntp:"), 10.0), daemon_log(
        slave_cfg
    )
    assert wait_locked(clk, 8.0), daemon_log(slave_cfg)
    after = errors_against(clk, cmap, NTP_SHIFT_NS, n=5)
    assert max(abs(e) for e in after) < 50_000, after  # NTP over user-space stamps: tens of µs

    recs = read_record(record)
    states = [r["state"] for r in recs if r["t_mono_ns"] > t_kill]
    assert "holdover" in states
    # published-time jumps between consecutive records after the first lock
    first_lock = next(i for i, r in enumerate(recs) if r["state"] == "locked")
    jumps = []
    for r0, r1 in zip(recs[first_lock:], recs[first_lock + 1 :], strict=False):
        if r0["t_net_ns"] is None or r1["t_net_ns"] is None:
            continue
        jump = (r1["t_net_ns"] - r0["t_net_ns"]) - (r1["t_mono_ns"] - r0["t_mono_ns"])
        jumps.append((abs(jump), r1["t_mono_ns"]))
    # The failover is judged on the jumps after the kill. Refits while locked on PTP are a
    # separate matter (printed; under CI load a software-stamped PTP fit can jump too: issue 6).
    pre_kill = max((j for j, t in jumps if t <= t_kill), default=0)
    biggest = max(j for j, t in jumps if t > t_kill)
    # the sources' disagreement: the NTP observations' offsets from the published (PTP) time
    # in the seconds before the kill (median: NTP samples here carry ~10 µs of noise)
    before_kill = sorted(
        abs(r["offset_ns"])
        for r in recs
        if r["source"].startswith("ntp:")
        and r["offset_ns"] is not None
        and t_kill - 3 * 10**9 <= r["t_mono_ns"] <= t_kill
    )
    assert before_kill, "no NTP observation in the 3 s before the kill"
    disagreement = before_kill[len(before_kill) // 2]
    assert abs(disagreement - NTP_SHIFT_NS) < 50_000, disagreement
    print(
        f"failover: disagreement {disagreement} ns, largest published jump {biggest} ns "
        f"(largest before the kill: {pre_kill} ns)"
    )
    assert biggest <= disagreement + 20_000, (biggest, disagreement)
    assert biggest > NTP_SHIFT_NS // 2  # the switch itself is in the record


def test_restart_with_persisted_state_on_veth(veth: Topology, tmp_path: Path) -> None:
    """A restarted slave daemon is back within a few µs in under 1 s after its first
    measurement (target 1 µs; software timestamps on veth jitter by a few µs, so the CI bound
    is 10 µs and the measured figure is printed)."""
    a, b = veth.nodes
    gm_cfg = daemon_config(tmp_path, "gm", GM_BODY)
    start_daemon(a, gm_cfg)
    slave_cfg = daemon_config(
        tmp_path,
        "slave",
        ptp_section("slave-only")
        + f"""
[holdover]
state-file = "{tmp_path}/slave/state.json"
""",
    )
    cmap = ClockMap()
    first = start_daemon(b, slave_cfg)
    clk = open_clock(tmp_path / "slave" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(slave_cfg)
    assert wait_locked(clk, 15.0), daemon_log(slave_cfg)
    time.sleep(3.0)
    b.stop(first)
    clk.close()
    assert (tmp_path / "slave" / "state.json").exists()
    second = start_daemon(b, slave_cfg)
    clk2 = open_clock(tmp_path / "slave" / "clock.shm", 15.0)
    assert clk2 is not None, daemon_log(slave_cfg)
    # the first measurement has just been published (TAI = CLOCK_REALTIME + 37 s)
    t_first = time.monotonic()
    errs: list[tuple[float, int]] = []
    while time.monotonic() - t_first < 1.0:
        errs.append((time.monotonic() - t_first, errors_against(clk2, cmap, UTC_OFFSET_NS, 1)[0]))
    tail = [e for t, e in errs if t >= 0.5]
    worst = max(abs(e) for e in tail)
    print(f"restart: max |error| in 0.5..1.0 s after the first measurement: {worst} ns")
    assert worst < 10_000, (tail[-10:], daemon_log(slave_cfg))
    b.stop(second)
    assert "restored" in daemon_log(slave_cfg)
