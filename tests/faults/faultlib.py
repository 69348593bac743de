"""Shared pieces of the real-fault tests (issue 9): daemons, masters, probes, CPU, counters.

The daemons and masters are the ones of tests/daemon (``netclock run``, ``ptp4l`` with
``free_running 1`` and software stamps). Every namespace shares one system clock, so a
free-running ptp4l serves CLOCK_REALTIME as is (ARB timescale) and the truth of the daemon's
published time at a CLOCK_MONOTONIC instant is CLOCK_REALTIME at that instant (ClockMap).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netclock.client import ClockUnavailable, SharedClock
from netclock.observe import LockState, Snapshot
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.netns import Node

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (``/proc/PID/stat``), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def clock_identity(node: Node) -> str:
    """The EUI-64 clockIdentity ptp4l and netclock derive from the node's MAC address."""
    mac = node.run(["cat", f"/sys/class/net/{node.ifname}/address"]).stdout.strip()
    raw = bytes.fromhex(mac.replace(":", ""))
    return f"{raw[:3].hex()}.fffe.{raw[3:].hex()}"


def snapshot(sock: Path) -> Snapshot | None:
    try:
        return fetch_snapshot(str(sock))
    except (OSError, StatusUnavailable):
        return None


def ptp_packets(sock: Path) -> dict[str, tuple[int, int, int]]:
    """The PTP source's packet counters: message type → (received, sent, malformed)."""
    snap = snapshot(sock)
    if snap is None:
        return {}
    src = next((s for s in snap.sources if s.kind == "ptp"), None)
    if src is None:
        return {}
    return {p.message_type: (p.received, p.sent, p.malformed) for p in src.packets}


def read_record(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()[1:] if x.strip()]


def published_jumps(recs: list[dict[str, Any]], after_mono_ns: int) -> list[int]:
    """|published-time jump| between consecutive run records whose second one is later than
    ``after_mono_ns``: (Δ t_net − Δ t_mono), i.e. how much the published time stepped."""
    out = []
    for r0, r1 in itertools.pairwise(recs):
        if r1["t_mono_ns"] <= after_mono_ns or r0["t_net_ns"] is None or r1["t_net_ns"] is None:
            continue
        out.append(abs((r1["t_net_ns"] - r0["t_net_ns"]) - (r1["t_mono_ns"] - r0["t_mono_ns"])))
    return out


@dataclass
class Probe:
    """One look at the published clock: state, identity, error against CLOCK_REALTIME."""

    t: float  # time.monotonic() of the probe
    state: LockState
    identity: str
    error_ns: int | None
    bound_ns: int


def probe(clk: SharedClock, cmap: ClockMap) -> Probe:
    mono = time.monotonic_ns()
    st = clk.status()
    try:
        err: int | None = clk.to_network(mono) - cmap.to_realtime(mono)
    except ClockUnavailable:
        err = None
    return Probe(mono / 1e9, st.lock_state, st.identity, err, st.error_bound_ns)


def errors(clk: SharedClock, cmap: ClockMap, seconds: float, every: float = 0.05) -> list[int]:
    """Published time − CLOCK_REALTIME, sampled for ``seconds``."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        p = probe(clk, cmap)
        if p.error_ns is not None:
            out.append(p.error_ns)
        time.sleep(every)
    return out


def rms(xs: list[int]) -> float:
    return (sum(x * x for x in xs) / len(xs)) ** 0.5 if xs else 0.0


def udp_snmp(node: Node) -> dict[str, int]:
    """The ``Udp:`` line of /proc/net/snmp inside the namespace (InDatagrams, InErrors,
    RcvbufErrors, ...)."""
    text = node.run(["cat", "/proc/net/snmp"]).stdout
    lines = [ln.split() for ln in text.splitlines() if ln.startswith("Udp:")]
    names, values = lines[0][1:], lines[1][1:]
    return {n: int(v) for n, v in zip(names, values, strict=True)}
