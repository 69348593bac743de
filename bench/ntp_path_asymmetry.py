"""Bench: one-way delays of NTP requests and replies on a veth link, seen from outside both clients.

Why: every namespace shares one clock, so netclock's NTP error against a chronyd server is
directly visible (+1.3 µs at minpoll -4 in ``bench/ntp_vs_chrony.py``), while chronyd's own
figure under ``-x`` is its tracking residual. A two-way measurement is off by half the difference
of its two one-way delays, which neither client can observe. This bench measures that difference
for each client with the same instrument: an AF_PACKET socket (``SO_TIMESTAMPNS``) on the veth end
of each namespace stamps every NTP packet leaving one side and arriving at the other.

Topology: namespace A runs ``chronyd -x`` as the server (``local stratum 1``); namespace B runs,
one after the other, ``chronyd -x`` following it (minpoll -4, xleave) and ``netclock ntp query
--xleave`` (poll -4). Packets are paired across the two sniffers by their UDP ports and payload.
The sniffers sit in the packet path (one clone per packet each side), so the absolute delays are
inflated; the request/reply difference is what to compare. Asserts nothing.

    sudo python bench/ntp_path_asymmetry.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import netns  # noqa: E402

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4

Key = tuple[int, int, bytes]
Seen = dict[str, list[tuple[int, bool, Key]]]


def sniffer(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    return s


def parse(data: bytes) -> tuple[int, int, bytes] | None:
    """(source port, destination port, NTP payload) of an IPv4 UDP frame, else None."""
    if len(data) < 14 + 20 + 8 + 48 or data[12:14] != b"\x08\x00" or data[23] != 17:
        return None
    ihl = (data[14] & 0x0F) * 4
    sport, dport = struct.unpack_from("!HH", data, 14 + ihl)
    return sport, dport, data[14 + ihl + 8:]


def capture(socks: dict[str, socket.socket], seconds: float) -> Seen:
    """Per sniffer: (stamp ns, outgoing, key) of every NTP frame for ``seconds``."""
    out: Seen = {name: [] for name in socks}
    by_fd = {s.fileno(): name for name, s in socks.items()}
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(list(socks.values()), [], [], min(left, 0.2))
        for s in ready:
            name = by_fd[s.fileno()]
            while True:
                try:
                    data, anc, _, addr = s.recvmsg(2048, 256)
                except BlockingIOError:
                    break
                frame = parse(data)
                stamp = next((int.from_bytes(d[:8], "little", signed=True) * 10**9
                              + int.from_bytes(d[8:16], "little", signed=True)
                              for lvl, typ, d in anc if typ == SO_TIMESTAMPNS), None)
                if frame is None or stamp is None:
                    continue
                out[name].append((stamp, addr[2] == PACKET_OUTGOING, frame))
    return out


def one_way(seen: Seen, server_port: int) -> dict[str, list[int]]:
    """Request (B out → A in) and reply (A out → B in) one-way delays, paired by frame."""
    a_in = {k: t for t, out, k in seen["a"] if not out}
    a_out = {k: t for t, out, k in seen["a"] if out}
    res: dict[str, list[int]] = {"request": [], "reply": []}
    for t, out, k in seen["b"]:
        if out and k[1] == server_port and k in a_in:
            res["request"].append(a_in[k] - t)
        elif not out and k[0] == server_port and k in a_out:
            res["reply"].append(t - a_out[k])
    return res


def summary(name: str, d: dict[str, list[int]]) -> str:
    req, rep = d["request"], d["reply"]
    if not req or not rep:
        return f"| {name} | {len(req)} | – | – | – |"
    mr, mp = statistics.median(req), statistics.median(rep)
    return (f"| {name} | {len(req)} | {mr / 1e3:.2f} | {mp / 1e3:.2f} | "
            f"{(mr - mp) / 2e3:+.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="per client")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("chronyd") is None:
        print("needs root and chronyd")
        return 1
    netns.cleanup_stale()
    rows = []
    with tempfile.TemporaryDirectory() as d, netns.veth_pair(subnet=218) as topo:
        tmp = Path(d)
        a, b = topo.nodes

        def conf(name: str, lines: list[str]) -> str:
            p = tmp / f"{name}.conf"
            p.write_text("\n".join([*lines, f"pidfile {tmp}/{name}.pid", "cmdport 0", ""]))
            return str(p)

        a.popen(["chronyd", "-x", "-d", "-u", "root", "-f", conf("server", [
            "local stratum 1", "allow", f"bindaddress {a.ip4}", "port 123"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        socks = {"a": a.call(sniffer, a.ifname), "b": b.call(sniffer, b.ifname)}
        try:
            chrony = b.popen(["chronyd", "-x", "-d", "-u", "root", "-f", conf("client", [
                f"server {a.ip4} iburst minpoll -4 maxpoll -4 xleave"])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2.0)  # past iburst
            rows.append(summary("chronyd -x (a socket per request)",
                                one_way(capture(socks, args.seconds), 123)))
            b.stop(chrony)
            count = int(args.seconds * 16)
            query = b.python(["-m", "netclock", "ntp", "query", f"{a.ip4}:123", "--xleave",
                              "--count", str(count), "--poll", "-4", "--json"],
                             stdout=subprocess.PIPE, text=True)
            seen = capture(socks, args.seconds + 2.0)
            out, _ = query.communicate(timeout=60)
            rows.append(summary("netclock ntp query --xleave (one socket)", one_way(seen, 123)))
            own = json.loads(out)
        finally:
            for s in socks.values():
                s.close()
    print(f"\nNTP one-way delays on one veth link, chronyd -x server, {args.seconds:.0f} s per "
          "client, µs (AF_PACKET stamps on both veth ends; true offset 0)")
    print("| client | requests | request median | reply median | half-difference (offset bias) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r)
    print(f"\nnetclock's own measurement meanwhile (kernel stamps): offset {own['offset_ns']} ns, "
          f"delay {own['delay_ns']} ns, {own['timestamping']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
