"""Regenerate ptp4l_vectors.json: golden PTP packets captured from real linuxptp traffic.

Run as root (creates and removes its own network namespaces; no traffic leaves them; every
ptp4l runs with ``free_running 1`` so no clock is touched)::

    python tests/vectors/ptp/capture_ptp4l.py

Topology: namespaces ``ncv-a`` (10.77.0.1) and ``ncv-b`` (10.77.0.2) joined by a veth pair.
An AF_PACKET socket in ``ncv-a`` records every UDP datagram to or from ports 319/320, in both
directions, and the PTP payload is stored as hex with the scenario that produced it.
Scenarios: E2E two-step master/slave, P2P (Pdelay), path trace + 802.1AS follow_up_info TLVs,
unicast negotiation (Signaling), and ``pmc -4`` management GETs answered by ptp4l over UDP.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NS_A, NS_B = "ncv-a", "ncv-b"
IP_A, IP_B = "10.77.0.1", "10.77.0.2"

BASE = """[global]
free_running 1
time_stamping software
logSyncInterval -2
logAnnounceInterval 0
logMinDelayReqInterval -2
use_syslog 0
verbose 0
summary_interval 0
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def setup() -> None:
    teardown()
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "link", "add", "ncv0", "type", "veth", "peer", "name", "ncv1")
    sh("ip", "link", "set", "ncv0", "netns", NS_A)
    sh("ip", "link", "set", "ncv1", "netns", NS_B)
    for ns, dev, ip in ((NS_A, "ncv0", IP_A), (NS_B, "ncv1", IP_B)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def teardown() -> None:
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")


def open_sniffer() -> socket.socket:
    """AF_PACKET socket created inside NS_A (setns for the duration of the call)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{NS_A}", os.O_RDONLY)
    try:
        _setns(target)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind(("ncv0", 0))
    finally:
        _setns(own)
        os.close(own)
        os.close(target)
    s.settimeout(0.2)
    return s


def drain(s: socket.socket, seconds: float, scenario: str, out: list[dict[str, object]]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame, _addr = s.recvfrom(65535)
        except TimeoutError:
            continue
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue
        src = socket.inet_ntoa(ip[12:16])
        dst = socket.inet_ntoa(ip[16:20])
        _sport, dport, ulen = struct.unpack("!HHH", ip[ihl : ihl + 6])
        if dport not in (319, 320):
            continue
        payload = ip[ihl + 8 : ihl + ulen]
        out.append(
            {
                "scenario": scenario,
                "src": src,
                "dst": dst,
                "dport": dport,
                "message_type": payload[0] & 0x0F,
                "hex": payload.hex(),
            }
        )


def start(ns: str, cfg: str, dev: str, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(cfg)
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "ptp4l", "-f", f.name, "-i", dev, "-4", "-S", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def scenario(name: str, cfg_a: str, cfg_b: str, seconds: float, out: list[dict[str, object]],
             pmc: list[str] | None = None) -> None:
    s = open_sniffer()
    a = start(NS_A, cfg_a, "ncv0")
    b = start(NS_B, cfg_b, "ncv1")
    try:
        if pmc:
            drain(s, seconds / 2, name, out)
            for cmd in pmc:
                subprocess.run(
                    ["ip", "netns", "exec", NS_B, "pmc", "-4", "-i", "ncv1", "-b", "0",
                     cmd],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False,
                )
            drain(s, 1.5, name, out)
        else:
            drain(s, seconds, name, out)
    finally:
        stop(a, b)
        s.close()


def main() -> int:
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    out: list[dict[str, object]] = []
    setup()
    try:
        gm = BASE + "priority1 100\ndomainNumber 0\n"
        sl = BASE + "slaveOnly 1\ndomainNumber 0\n"
        scenario("e2e", gm, sl, 6, out)
        scenario("p2p", gm + "delay_mechanism P2P\n", sl + "delay_mechanism P2P\n", 5, out)
        tlv = "path_trace_enabled 1\nfollow_up_info 1\nasCapable true\n"
        scenario(
            "tlv",
            BASE + "priority1 100\ndomainNumber 24\n" + tlv,
            BASE + "slaveOnly 1\ndomainNumber 24\n" + tlv,
            8,
            out,
        )
        uni_a = BASE + "priority1 100\nunicast_listen 1\n"
        uni_b = (BASE + "slaveOnly 1\n\n[unicast_master_table]\ntable_id 1\n"
                 f"logQueryInterval 2\nUDPv4 {IP_A}\n\n[ncv1]\nunicast_master_table 1\n")
        scenario("unicast", uni_a, uni_b, 6, out)
        scenario(
            "management",
            gm,
            sl,
            4,
            out,
            pmc=["GET DEFAULT_DATA_SET", "GET PARENT_DATA_SET", "GET PORT_DATA_SET",
                 "GET TIME_PROPERTIES_DATA_SET", "GET CURRENT_DATA_SET", "GET CLOCK_DESCRIPTION",
                 "GET NULL_MANAGEMENT", "GET PRIORITY1", "GET DOMAIN"],
        )
    finally:
        teardown()
    # De-duplicate by (scenario, message type, tlv shape) but keep a few of each.
    kept: list[dict[str, object]] = []
    count: dict[tuple[object, ...], int] = {}
    for rec in out:
        key = (rec["scenario"], rec["message_type"], len(str(rec["hex"])), rec["src"])
        if count.get(key, 0) < 3:
            count[key] = count.get(key, 0) + 1
            kept.append(rec)
    meta = {
        "captured_with": subprocess.run(
            ["ptp4l", "-v"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "how": "tests/vectors/ptp/capture_ptp4l.py: ptp4l -S -4 in two netns over veth, "
               "AF_PACKET capture of UDP 319/320 payloads; pmc -4 for management",
        "packets": kept,
    }
    (HERE / "ptp4l_vectors.json").write_text(json.dumps(meta, indent=1) + "\n")
    types: dict[object, int] = {}
    for rec in kept:
        k = (rec["scenario"], rec["message_type"])
        types[k] = types.get(k, 0) + 1
    print(len(kept), "packets kept of", len(out), types)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
