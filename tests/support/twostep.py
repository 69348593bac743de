"""A two-step (PTP-style) timestamped echo, for the veth interop test and bench/timestamps.py.

Client sends a request (t1 = its TX stamp). The server replies with t2 (its RX stamp of the
request) and then sends a follow-up carrying t3 (its TX stamp of the reply). The client stamps
the reply's arrival (t4). All stamps are CLOCK_MONOTONIC ns; every namespace shares the one
system clock, so the true offset is 0 and any measured offset is error.

Run a server as a child (e.g. inside a namespace)::

    python -m tests.support.twostep --bind 10.202.0.2 --port 32000 [--user-stamps]

It prints ``READY`` on stdout once listening and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import struct
import sys
from dataclasses import dataclass

from netclock.platform.timestamping import Address, Received, Stamp, StampedSocket
from netclock.platform.udp import open_udp

_MSG = struct.Struct("!4sBIq")
MAGIC = b"NCTS"
REQ, REPLY, FOLLOW_UP = 1, 2, 3


def pack(kind: int, seq: int, value: int = 0) -> bytes:
    return _MSG.pack(MAGIC, kind, seq, value)


def unpack(data: bytes) -> tuple[int, int, int] | None:
    if len(data) != _MSG.size:
        return None
    magic, kind, seq, value = _MSG.unpack(data)
    return (kind, seq, value) if magic == MAGIC else None


class TwoStepServer:
    """Answers requests on a :class:`StampedSocket` (callback style)."""

    def __init__(self, sock: StampedSocket) -> None:
        self.sock = sock
        self.served = 0
        self.sources: dict[str, int] = {}
        sock.on_receive = self._on_receive

    def _on_receive(self, r: Received) -> None:
        msg = unpack(r.data)
        if msg is None or msg[0] != REQ:
            return
        seq = msg[1]
        self.served += 1
        self.sources[r.stamp_source] = self.sources.get(r.stamp_source, 0) + 1

        def follow_up(t3: Stamp | None, addr: Address = r.addr) -> None:
            if t3 is not None:
                self.sock.send_general(pack(FOLLOW_UP, seq, t3.ns), addr)

        self.sock.send_event_cb(pack(REPLY, seq, r.rx_ns), r.addr, follow_up)


@dataclass(frozen=True, slots=True)
class Exchange:
    t1: int
    t2: int
    t3: int
    t4: int
    sources: tuple[str, str]
    """(client TX source, client RX source)."""

    @property
    def offset(self) -> float:
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2

    @property
    def delay(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)


async def exchange(client: StampedSocket, server: Address, seq: int, timeout: float = 1.0) -> (
    Exchange | None
):
    """One request/reply/follow-up round; ``None`` on loss or a missing stamp."""
    tx = await client.send_event(pack(REQ, seq), server)
    t2 = t3 = t4 = None
    rx_source = "?"
    try:
        async with asyncio.timeout(timeout):
            while t3 is None or t2 is None:
                r = await client.recv()
                msg = unpack(r.data)
                if msg is None or msg[1] != seq:
                    continue
                if msg[0] == REPLY:
                    t2, t4, rx_source = msg[2], r.rx_ns, r.stamp_source
                elif msg[0] == FOLLOW_UP:
                    t3 = msg[2]
    except TimeoutError:
        return None
    if tx is None or t4 is None:
        return None
    return Exchange(tx.ns, t2, t3, t4, (tx.source, rx_source))


def summarize(values: list[float]) -> dict[str, float]:
    """mean / sd / p50 / p99 / max of a list (empty → zeros)."""
    if not values:
        return {"n": 0, "mean": 0.0, "sd": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(values)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    return {
        "n": len(s),
        "mean": statistics.fmean(s),
        "sd": statistics.pstdev(s),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": s[-1],
    }


async def _serve(bind: str, port: int, user_stamps: bool) -> None:
    sock = StampedSocket(open_udp(bind, port), timestamping=not user_stamps)
    server = TwoStepServer(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", sock.mode, flush=True)
    await stop.wait()
    sock.close()
    print("SERVED", server.served, server.sources, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=32000)
    ap.add_argument("--user-stamps", action="store_true", help="userspace stamps only")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.bind, args.port, args.user_stamps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
