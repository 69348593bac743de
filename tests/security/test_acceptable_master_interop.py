"""ptp.acceptable-masters against a real ptp4l master (network namespaces on a bridge).

One ptp4l master (priority1 0: it wins any BMCA) and two slave-only `netclock run` daemons on
the same segment. The daemon whose table lists the master's port follows it (SLAVE); the one
whose table lists only other identities (and the same clock's port 2) never leaves LISTENING and
counts every Announce it ignored. ptp4l runs with free_running 1: no clock is touched.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from netclock.observe import SourceSnapshot
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.daemons import (
    daemon_config,
    daemon_log,
    ptp_section,
    start_daemon,
    start_ptp4l,
    wait_for,
)
from tests.support.netns import Node, Topology, topology_fixture

pytestmark = pytest.mark.interop


topo = topology_fixture(3, 219, "ptp4l")


def clock_identity(node: Node) -> str:
    """The EUI-64 clockIdentity ptp4l derives from the node's MAC address."""
    mac = node.run(["cat", f"/sys/class/net/{node.ifname}/address"]).stdout.strip()
    raw = bytes.fromhex(mac.replace(":", ""))
    return f"{raw[:3].hex()}.fffe.{raw[3:].hex()}"


def ptp_source(cfg: Path) -> SourceSnapshot | None:
    sock = cfg.parent / cfg.stem / "status.sock"
    try:
        snap = fetch_snapshot(str(sock))
    except (OSError, StatusUnavailable):
        return None
    return next((s for s in snap.sources if s.kind == "ptp"), None)


def state(cfg: Path) -> str:
    src = ptp_source(cfg)
    return src.state if src is not None else ""


def received(cfg: Path, message_type: str) -> int:
    src = ptp_source(cfg)
    if src is None:
        return 0
    return sum(p.received for p in src.packets if p.message_type == message_type)


def rejected(cfg: Path) -> int:
    return received(cfg, "announce_rejected")


def test_only_the_listed_master_is_followed(topo: Topology, tmp_path: Path) -> None:
    gm, n_allowed, n_other = topo.nodes
    start_ptp4l(gm, 0, tmp_path, extra="clockClass 6")
    ident = clock_identity(gm)
    allowed = daemon_config(
        tmp_path, "allowed",
        ptp_section("slave-only", extra=f'acceptable-masters = "aaaaaa.fffe.000001, {ident}-1"'),
    )
    other = daemon_config(
        tmp_path, "other",
        ptp_section("slave-only", extra=f'acceptable-masters = "aaaaaa.fffe.000001 {ident}-2"'),
    )
    start_daemon(n_allowed, allowed)
    start_daemon(n_other, other)
    t0 = time.monotonic()
    # ptp4l becomes master after its announce receipt timeout (~3-4 s), then announces at 1 Hz
    assert wait_for(lambda: state(allowed) in ("uncalibrated", "slave"), 15.0), (
        daemon_log(allowed)
    )
    assert wait_for(lambda: state(allowed) == "slave", 10.0), daemon_log(allowed)
    # by now the other daemon heard the same Announces (>= 2 qualify a master) and ignored them
    assert wait_for(lambda: rejected(other) >= 3, 5.0), daemon_log(other)
    assert state(other) == "listening", daemon_log(other)
    src = ptp_source(other)
    assert src is not None
    counts = {p.message_type: p.received for p in src.packets}
    assert counts["announce_rejected"] == counts["announce"]  # all from the unlisted port
    assert rejected(allowed) == 0
    log = daemon_log(other)
    assert "SLAVE" not in log and "UNCALIBRATED" not in log, log
    assert time.monotonic() - t0 < 25.0
