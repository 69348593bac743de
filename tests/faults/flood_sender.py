"""A paced UDP flood of hostile PTP/NTP packets (issue 9), run inside a test namespace.

    python -m tests.faults.flood_sender --kind ptp-garbage --dst 10.233.0.2 --rate 10000 \\
        --seconds 5 [--ntp-port 12300]

Kinds (every packet is addressed to ``--dst`` only, a namespace the test made):

* ``ptp-rogue``: well-formed Announce (priority1 255: worse than any real master, so a BMCA
  never picks it), two-step Sync and Follow_Up (claiming a time 1 s off) from a rogue
  clockIdentity, to the event (319) and general (320) ports in turn. They parse: none is malformed.
* ``ptp-garbage``: datagrams that can never parse as PTP: either shorter than the 34-byte header
  or with a versionPTP nibble other than 2; random otherwise, 1..300 bytes, to 319 and 320 in turn.
* ``ntp-garbage``: datagrams an NTP server must drop, crafted with scapy's ``NTPHeader`` under
  ``fuzz()``: cut shorter than the 48-byte header, or with a mode other than 3 (client); to
  ``--ntp-port``.
* ``ptp-spoof``: scapy-crafted (``scapy.contrib.ptp_v2``) Announce, two-step Sync and Follow_Up
  (claiming a time 1 s off) that carry the *real master's* clockIdentity (``--master``), sent
  from the attacker's own address. They parse and name the parent: only the source-address
  check can tell them apart.
* ``ptp-replay``: the real master's own Announce, Sync and Follow_Up, captured with scapy's
  ``sniff`` on the attacker's interface for ``--capture`` s, then replayed from the attacker's
  address.
* ``ntp-replay``: one valid scapy-crafted NTPv4 client request, replayed to ``--ntp-port``: the
  server's per-client rate limit must keep its answers to a trickle (no amplification).

The sender paces itself (a batch of ``rate/1000`` packets per millisecond) and prints one JSON
line: packets sent per destination port (only sends the kernel accepted count), send errors,
elapsed seconds and the achieved rate. Garbage is generated from a seeded ``random.Random``.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import time

from netclock.ptp.wire import (
    Announce,
    ClockIdentity,
    ClockQuality,
    Flags,
    FollowUp,
    Header,
    PortIdentity,
    Sync,
)
from netclock.time import PtpTimestamp

KINDS = ("ptp-rogue", "ptp-garbage", "ntp-garbage", "ptp-spoof", "ptp-replay", "ntp-replay")
ROGUE = PortIdentity(ClockIdentity(bytes.fromhex("badbadfffe0bad01")), 1)
EVENT_PORT, GENERAL_PORT = 319, 320


def ptp_rogue(n: int, now_ns: int) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    for seq in range(n // 3 + 1):
        seq &= 0xFFFF
        out.append(
            (
                Announce(
                    header=Header(ROGUE, seq, log_message_interval=0),
                    grandmaster_priority1=255,
                    grandmaster_clock_quality=ClockQuality(248),
                    grandmaster_priority2=255,
                    grandmaster_identity=ROGUE.clock_identity,
                ).pack(),
                GENERAL_PORT,
            )
        )
        out.append((Sync(Header(ROGUE, seq, flags=Flags.TWO_STEP)).pack(), EVENT_PORT))
        t1 = PtpTimestamp.from_ns(now_ns + 1_000_000_000 + seq * 1000)
        out.append((FollowUp(Header(ROGUE, seq), t1).pack(), GENERAL_PORT))
    return out[:n]


def ptp_garbage(n: int, rng: random.Random) -> list[tuple[bytes, int]]:
    out = []
    for i in range(n):
        if i % 3 == 0:
            data = rng.randbytes(rng.randint(1, 33))  # shorter than the header
        else:
            data = bytearray(rng.randbytes(rng.randint(34, 300)))
            data[1] = (data[1] & 0xF0) | rng.choice([0, 1, 3, 4, 15])  # versionPTP != 2
            data = bytes(data)
        out.append((data, EVENT_PORT if i % 2 == 0 else GENERAL_PORT))
    return out


def ntp_garbage(n: int, rng: random.Random, port: int) -> list[tuple[bytes, int]]:
    from scapy.layers.ntp import NTPHeader
    from scapy.packet import fuzz

    out = []
    for i in range(n):
        data = bytearray(bytes(fuzz(NTPHeader())))
        if i % 2 == 0:
            data = data[: rng.randint(1, 47)]  # shorter than the header
        else:
            data[0] = (data[0] & 0xF8) | rng.choice([0, 1, 2, 4, 5, 6, 7])  # mode != client
            data += rng.randbytes(rng.randint(0, 150))
        out.append((bytes(data), port))
    return out


def ptp_spoof(n: int, master: bytes, now_ns: int) -> list[tuple[bytes, int]]:
    """The master's identity on Announce (best possible rank), Sync and a Follow_Up 1 s off."""
    from scapy.contrib.ptp_v2 import PTP

    ident = int.from_bytes(master, "big")
    out: list[tuple[bytes, int]] = []
    for seq in range(n // 3 + 1):
        seq &= 0xFFFF
        t1 = now_ns + 1_000_000_000 + seq * 1000
        common = {"clockIdentity": ident, "portNumber": 1, "sequenceId": seq}
        out.append((bytes(PTP(messageType=0xB, grandmasterPriority1=0, grandmasterClockClass=6,
                              grandmasterIdentity=ident, **common)), GENERAL_PORT))
        out.append((bytes(PTP(messageType=0x0, flags="twoStepFlag", **common)), EVENT_PORT))
        out.append((bytes(PTP(messageType=0x8, preciseOriginTimestamp_seconds=t1 // 10**9,
                              preciseOriginTimestamp_nanoseconds=t1 % 10**9,
                              **common)), GENERAL_PORT))
    return out[:n]


def ptp_capture(iface: str, seconds: float) -> list[tuple[bytes, int]]:
    """The PTP payloads (to 319/320) seen on ``iface`` for ``seconds``: the real master's."""
    from scapy.layers.inet import UDP
    from scapy.sendrecv import sniff

    pkts = sniff(iface=iface, timeout=seconds,
                 lfilter=lambda p: UDP in p and p[UDP].dport in (EVENT_PORT, GENERAL_PORT))
    return [(bytes(p[UDP].payload), int(p[UDP].dport)) for p in pkts]


def ntp_request(port: int) -> list[tuple[bytes, int]]:
    from scapy.layers.ntp import NTPHeader

    return [(bytes(NTPHeader(version=4, mode=3, sent=time.time())), port)]


def packets(kind: str, ntp_port: int, seed: int = 9, *, master: bytes = b"",
            iface: str = "eth0", capture_s: float = 2.0) -> list[tuple[bytes, int]]:
    rng = random.Random(seed)
    if kind == "ptp-rogue":
        return ptp_rogue(3000, time.clock_gettime_ns(time.CLOCK_REALTIME))
    if kind == "ptp-garbage":
        return ptp_garbage(4096, rng)
    if kind == "ntp-garbage":
        return ntp_garbage(4096, rng, ntp_port)
    if kind == "ptp-spoof":
        return ptp_spoof(3000, master, time.clock_gettime_ns(time.CLOCK_REALTIME))
    if kind == "ptp-replay":
        return ptp_capture(iface, capture_s)
    if kind == "ntp-replay":
        return ntp_request(ntp_port)
    raise ValueError(f"unknown kind {kind!r}")


def flood(dst: str, kind: str, rate: int, seconds: float, ntp_port: int, *, master: bytes = b"",
          iface: str = "eth0", capture_s: float = 2.0) -> dict[str, object]:
    pkts = packets(kind, ntp_port, master=master, iface=iface, capture_s=capture_s)
    if not pkts:
        raise SystemExit(f"{kind}: nothing to send (no PTP packet captured on {iface}?)")
    total = round(rate * seconds)
    batch = max(1, rate // 1000)
    period = batch / rate
    sent: dict[int, int] = {}
    errors = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        t0 = time.monotonic()
        i = 0
        while i < total:
            delay = t0 + (i // batch) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for _ in range(min(batch, total - i)):
                data, port = pkts[i % len(pkts)]
                i += 1
                try:
                    s.sendto(data, (dst, port))
                except OSError:
                    errors += 1
                    continue
                sent[port] = sent.get(port, 0) + 1
        elapsed = time.monotonic() - t0
    n = sum(sent.values())
    return {
        "kind": kind,
        "sent": {str(k): v for k, v in sorted(sent.items())},
        "total": n,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rate": round(n / elapsed) if elapsed > 0 else 0,
        "distinct": len(pkts),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--dst", required=True, help="IPv4 address of the victim (a test namespace)")
    p.add_argument("--rate", type=int, default=10_000, help="packets per second")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--ntp-port", type=int, default=123)
    p.add_argument("--master", default="", help="ptp-spoof: the clockIdentity to forge "
                   "(xxxxxx.fffe.xxxxxx)")
    p.add_argument("--iface", default="eth0", help="ptp-replay: where to capture")
    p.add_argument("--capture", type=float, default=2.0, help="ptp-replay: capture seconds")
    a = p.parse_args(argv)
    master = bytes.fromhex(a.master.replace(".", "")) if a.master else b""
    if a.kind == "ptp-spoof" and len(master) != 8:
        p.error("ptp-spoof needs --master with an 8-byte clockIdentity")
    print(json.dumps(flood(a.dst, a.kind, a.rate, a.seconds, a.ntp_port, master=master,
                           iface=a.iface, capture_s=a.capture)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
