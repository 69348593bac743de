"""Real fault: a hostile flood at ~10 k pkt/s against a locked slave that also serves NTP (issue 9).

Three namespaces on a bridge: ptp4l master (free_running, 16 Hz Sync), `netclock run` (PTP
slave-only + NTP server on a high port), and an attacker running
:mod:`tests.faults.flood_sender` at the daemon's address, one phase after the other:

1. ``ptp-rogue``: well-formed Announce / Sync / Follow_Up from a rogue identity (worse BMCA rank);
2. ``ptp-garbage``: datagrams that cannot parse as PTP, to 319 and 320;
3. ``ntp-garbage``: scapy-fuzzed datagrams an NTP server must drop, to the NTP port;
4. ``ptp-spoof``: scapy-crafted Announce / Sync / Follow_Up that forge the real master's
   clockIdentity (best rank, time 1 s off), from the attacker's address;
5. ``ptp-replay``: the real master's own packets, captured with scapy and replayed from the
   attacker's address;
6. ``ntp-replay``: one valid client request replayed at the full rate to the NTP server.

During every phase the daemon stays LOCKED on the real master, its published-time error stays
within 2× its pre-flood baseline plus an absolute floor (FLOOR_NS, see there), and its CPU is
bounded per flood packet (CPU_PER_PACKET_S) and back to idle after the flood. Forged and
replayed PTP packets are refused by the parent's pinned source address (``wrong_source``), and
the replayed NTP request gets no more answers than the per-client rate limit allows. The malformed
counters of the status snapshot and of the Prometheus metrics account exactly for the garbage
sent: sent = counted malformed + dropped by the kernel on that socket (the socket's ``drops`` in
``/proc/net/udp`` inside the namespace, which must also be what ``Udp: RcvbufErrors`` of
``/proc/net/snmp`` grew by). A rogue packet is never counted malformed.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from netclock.observe import LockState
from netclock.platform.clockmap import ClockMap
from tests.faults.faultlib import (
    clock_identity,
    cpu_seconds,
    errors,
    probe,
    rms,
    snapshot,
    udp_snmp,
)
from tests.support.daemons import (
    daemon_config,
    daemon_log,
    open_clock,
    ptp_section,
    start_daemon,
    start_ptp4l,
    wait_locked,
)
from tests.support.netns import Node, Topology, topology_fixture

pytestmark = pytest.mark.interop

NTP_PORT = 12300
METRICS_PORT = 19468
RATE = 10_000
KINDS = ("ptp-rogue", "ptp-garbage", "ntp-garbage", "ptp-spoof", "ptp-replay", "ntp-replay")
SECONDS = 4.0
#: Absolute floor on the error bound during a flood. The baseline is a few µs of software-stamp
#: noise; the flood shares the 2 CPUs with the master, the daemon and the sender, and delays the
#: softirq that takes the kernel RX/TX stamps of the real Syncs and Delay_Reqs by some µs
#: (a loaded 2-core CI box sees single Delay_Req TX stamps late by 10+ µs). 15 µs is the
#: daemon's own lock-threshold scale (below the 30 µs this test locks at).
FLOOR_NS = 15_000
#: CPU per flood packet that reached the daemon: measured ~10-20 µs (recvmsg, cmsg, parse,
#: counters); 60 µs leaves room for a loaded box, and still means 10 k pkt/s cannot take more
#: than ~0.6 CPU.
CPU_PER_PACKET_S = 200e-6


topo = topology_fixture(3, 233, "ptp4l")


def socket_drops(node: Node) -> dict[int, int]:
    """Local UDP port → the socket's ``drops`` column of /proc/net/udp in the namespace."""
    out: dict[int, int] = {}
    for line in node.run(["cat", "/proc/net/udp"]).stdout.splitlines()[1:]:
        f = line.split()
        port = int(f[1].split(":")[1], 16)
        out[port] = out.get(port, 0) + int(f[-1])
    return out


def metrics_malformed(node: Node) -> dict[str, float]:
    """``netclock_packets_malformed_total`` by source, scraped inside the namespace."""

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as r:
            return str(r.read().decode())

    out: dict[str, float] = {}
    for line in node.call(scrape).splitlines():
        if line.startswith("netclock_packets_malformed_total{"):
            labels, value = line.rsplit(" ", 1)
            src = labels.split('source="', 1)[1].split('"', 1)[0]
            out[src] = out.get(src, 0.0) + float(value)
    return out


@dataclass
class Counts:
    ptp: dict[str, tuple[int, int, int]]
    ntp: tuple[int, int, int]
    drops: dict[int, int]
    snmp: dict[str, int]
    cpu: float

    @property
    def ptp_malformed(self) -> int:
        return sum(c[2] for c in self.ptp.values())

    @property
    def ptp_received(self) -> int:
        return sum(c[0] for c in self.ptp.values())

    @property
    def wrong_source(self) -> int:
        """PTP messages with the parent's identity from another address (refused)."""
        return self.ptp.get("wrong_source", (0, 0, 0))[0]


def counts(sock: Path, node: Node, pid: int) -> Counts:
    snap = snapshot(sock)
    assert snap is not None
    ptp = next(s for s in snap.sources if s.kind == "ptp")
    srv = next(s for s in snap.sources if s.kind == "ntp-server")
    req = next(p for p in srv.packets if p.message_type == "request")
    return Counts(
        {p.message_type: (p.received, p.sent, p.malformed) for p in ptp.packets},
        (req.received, req.sent, req.malformed),
        socket_drops(node),
        udp_snmp(node),
        cpu_seconds(pid),
    )


def test_flood_rogue_and_garbage(topo: Topology, tmp_path: Path) -> None:
    n0, n1, n2 = topo.nodes
    start_ptp4l(n0, 50, tmp_path)
    master = clock_identity(n0)
    cfg = daemon_config(
        tmp_path,
        "victim",
        # Without an acceptable-master list a rogue of worse rank still takes over once the
        # kernel has dropped 3 of the real master's Announces in a row (announce receipt
        # timeout): under a flood that collateral loss is a matter of scheduling luck on a
        # loaded box. The list (IEEE 1588 17.6) is the mitigation the threat model names.
        ptp_section("slave-only", extra=f'acceptable-masters = "{master}"')
        + f"""
[ntp]
serve = true
listen-address = "{n1.ip4}"
listen-port = {NTP_PORT}
[clock]
# software stamps on a loaded 2-core box wander by several µs: the default 10 µs lock
# threshold flaps there, and lock quality is not what this test is about
lock-threshold-ns = 30000
""",
    )
    # daemon_config turns metrics off; this test scrapes them (inside the namespace)
    cfg.write_text(
        cfg.read_text().replace(
            "[metrics]\nenabled = false", f"[metrics]\nenabled = true\nport = {METRICS_PORT}"
        )
    )
    daemon = start_daemon(n1, cfg)
    cmap = ClockMap()
    clk = open_clock(tmp_path / "victim" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(cfg)
    assert wait_locked(clk, 15.0), daemon_log(cfg)
    sock = tmp_path / "victim" / "status.sock"
    time.sleep(2.0)
    c0 = counts(sock, n1, daemon.pid)
    baseline = errors(clk, cmap, 3.0)
    c1 = counts(sock, n1, daemon.pid)
    idle_cpu = (c1.cpu - c0.cpu) / 3.0
    base_max = max(abs(e) for e in baseline)
    limit = 2 * base_max + FLOOR_NS
    print(
        f"\nbaseline: error rms {rms(baseline):.0f} ns max {base_max} ns (flood limit {limit} "
        f"ns); daemon CPU {idle_cpu:.1%}"
    )
    print(
        f"{'phase':12} {'sent/s':>7} {'sent':>6} {'counted':>7} {'k.drops':>7} "
        f"{'CPU':>6} {'µs/pkt':>6} {'err max':>8} {'err rms':>8}"
    )
    for kind in KINDS:
        before = counts(sock, n1, daemon.pid)
        sender = n2.python(
            [
                "-m", "tests.faults.flood_sender", "--kind", kind, "--dst", n1.ip4,
                "--rate", str(RATE), "--seconds", str(SECONDS), "--ntp-port", str(NTP_PORT),
                "--master", master, "--iface", n2.ifname, "--capture", "2",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        t0 = time.monotonic()
        during: list[int] = []
        states = set()
        while sender.poll() is None and time.monotonic() - t0 < SECONDS + 10:
            p = probe(clk, cmap)
            states.add((p.state, p.identity))
            if p.error_ns is not None:
                during.append(p.error_ns)
            time.sleep(0.05)
        out, _ = sender.communicate(timeout=10)
        n2.stop(sender)
        report = json.loads(out)
        time.sleep(0.5)  # the daemon drains its socket queues
        after = counts(sock, n1, daemon.pid)
        assert daemon.poll() is None, daemon_log(cfg)
        sent = report["total"]
        if kind.startswith("ntp-"):
            counted = after.ntp[2] - before.ntp[2]
            got = after.ntp[0] - before.ntp[0]
            kdrops = after.drops.get(NTP_PORT, 0) - before.drops.get(NTP_PORT, 0)
            assert after.ptp_malformed == before.ptp_malformed
        else:
            counted = after.ptp_malformed - before.ptp_malformed
            got = sent
            kdrops = sum(after.drops.get(p, 0) - before.drops.get(p, 0) for p in (319, 320))
            assert after.ntp == before.ntp
        snmp_drops = after.snmp["RcvbufErrors"] - before.snmp["RcvbufErrors"]
        cpu = after.cpu - before.cpu
        per_pkt = cpu / max(sent - kdrops, 1)
        elapsed = report["seconds"]
        print(
            f"{kind:12} {report['rate']:>7} {sent:>6} {counted:>7} {kdrops:>7} "
            f"{cpu / (elapsed + 0.5):>6.1%} {per_pkt * 1e6:>6.1f} "
            f"{max(map(abs, during)):>8} {rms(during):>8.0f}"
        )
        assert report["errors"] == 0, report
        # stays LOCKED on the real master all through the flood
        assert states == {(LockState.LOCKED, master)}, states
        # published-time error within 2x baseline + floor
        assert max(abs(e) for e in during) <= limit, (kind, max(map(abs, during)), limit)
        # kernel drops reconcile: per-socket drops are what the UDP MIB counted
        assert snmp_drops == sum(after.drops.values()) - sum(before.drops.values()), (
            snmp_drops,
            after.drops,
            before.drops,
        )
        wrong = after.wrong_source - before.wrong_source
        if kind in ("ptp-rogue", "ptp-spoof", "ptp-replay", "ntp-replay"):
            assert counted == 0  # well-formed: parsed, never malformed
        if kind == "ptp-spoof":
            # every one forges the parent: refused by its source address, none lost unseen
            assert sent - kdrops <= wrong <= sent, (sent, wrong, kdrops)
        elif kind == "ptp-replay":
            # mostly the master's own packets (the rest: the daemon's Delay_Reqs, dropped as
            # its own); refused by source address all the same
            assert wrong >= (sent - kdrops) // 2, (sent, wrong, kdrops, report["distinct"])
        elif kind == "ntp-replay":
            # one client at 10 k req/s: answers stay within the rate limit (16/s + burst 16),
            # the rest get a KoD RATE at most once a second or nothing (no amplification)
            answered = after.ntp[1] - before.ntp[1]
            assert got == sent - kdrops, (got, sent, kdrops)
            assert answered <= 16 * (elapsed + 2) + 16, (answered, got)
        elif kind == "ntp-garbage":
            # every datagram that reached the server socket was a request, and was dropped bad
            assert got == counted, (got, counted)
            assert sent == counted + kdrops, (sent, counted, kdrops)
        elif kind == "ptp-garbage":
            # legitimate Syncs/Follow_Ups share these sockets, so a kernel drop may have hit
            # one of them instead of garbage: exact when nothing was dropped, bounded otherwise
            assert counted <= sent <= counted + kdrops, (sent, counted, kdrops)
        # CPU bounded per packet; the reader loop never spins
        assert per_pkt <= CPU_PER_PACKET_S, per_pkt
    # back to idle after the flood (no lingering busy loop)
    c2 = counts(sock, n1, daemon.pid)
    time.sleep(2.0)
    c3 = counts(sock, n1, daemon.pid)
    assert (c3.cpu - c2.cpu) / 2.0 <= 2 * idle_cpu + 0.05, (c3.cpu - c2.cpu, idle_cpu)
    # the metrics export the same malformed counts as the status socket
    prom = metrics_malformed(n1)
    ptp_name = next(s.name for s in snapshot(sock).sources if s.kind == "ptp")  # type: ignore[union-attr]
    assert prom.get(ptp_name) == float(c3.ptp_malformed), (prom, c3.ptp_malformed)
    assert prom.get(f"ntp-server:{n1.ip4}:{NTP_PORT}") == float(c3.ntp[2]), (prom, c3.ntp)
    assert clk.status().lock_state == LockState.LOCKED
