"""Bench: two-way exchange error on a veth link, userspace stamps vs kernel SO_TIMESTAMPING.

Creates two network namespaces joined by a veth pair (torn down afterwards), runs a two-step
echo server as a child process in one of them (``tests.support.twostep``) and a client in this
process (sockets created inside the other namespace), then prints |offset| and delay statistics.
Both namespaces read the same system clock, so the true offset is 0: every offset is error.

Modes:
  user    userspace stamps on both sides (clock_gettime after recvmsg / before sendmsg)
  kernel  SO_TIMESTAMPING software RX+TX stamps on both sides (server two-step: follow-up t3)

Run as root (bounded; default about 10 s)::

    python bench/timestamps.py [--rate 128] [--duration 4] [--modes user,kernel]

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netclock.platform.timestamping import StampedSocket
from netclock.platform.udp import open_udp
from tests.support import netns, twostep

PORT = 32100


async def _client(
    topo: netns.Topology, mode: str, rate: float, duration: float
) -> tuple[list[twostep.Exchange], int, dict[str, int]]:
    a, b = topo.nodes
    sock = StampedSocket(a.call(open_udp, a.ip4, 0), timestamping=(mode == "kernel"))
    results: list[twostep.Exchange] = []
    lost = 0
    try:
        # Warm-up (ARP, caches), not counted.
        for seq in range(8):
            await twostep.exchange(sock, (b.ip4, PORT), seq)
        period = 1.0 / rate
        n = max(1, int(rate * duration))
        next_at = time.monotonic()
        for seq in range(100, 100 + n):
            next_at += period
            ex = await twostep.exchange(sock, (b.ip4, PORT), seq, timeout=0.5)
            if ex is None:
                lost += 1
            else:
                results.append(ex)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return results, lost, sock.counters.as_dict()
    finally:
        sock.close()


def run_mode(mode: str, rate: float, duration: float) -> dict[str, object]:
    with netns.Topology.veth_pair() as topo:
        b = topo.nodes[1]
        args = ["-m", "tests.support.twostep", "--bind", b.ip4, "--port", str(PORT)]
        if mode == "user":
            args.append("--user-stamps")
        server = b.python(args, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            ready = server.stdout.readline().split()
            if not ready or ready[0] != "READY":
                raise RuntimeError(f"server did not start: {ready}")
            results, lost, counters = asyncio.run(_client(topo, mode, rate, duration))
        finally:
            b.stop(server)
    sources = sorted({f"{s[0]}/{s[1]}" for s in (ex.sources for ex in results)})
    return {
        "mode": mode,
        "server": ready[1],
        "lost": lost,
        "offset": twostep.summarize([abs(ex.offset) for ex in results]),
        "signed_mean": twostep.summarize([ex.offset for ex in results])["mean"],
        "delay": twostep.summarize([float(ex.delay) for ex in results]),
        "sources": ",".join(sources),
        "counters": counters,
    }


def print_table(rows: list[dict[str, object]], rate: float, duration: float) -> None:
    print(f"\nveth two-way exchanges, {rate:g}/s for {duration:g} s per mode; µs; true offset 0")
    head = (
        f"{'mode':7} {'stamps (tx/rx)':15} {'n':>5} {'lost':>4} | {'|off| mean':>10} {'sd':>7} "
        f"{'p50':>7} {'p99':>7} {'max':>8} | {'signed':>7} | {'delay mean':>10} {'p50':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        o = r["offset"]
        d = r["delay"]
        assert isinstance(o, dict) and isinstance(d, dict)
        signed = r["signed_mean"]
        assert isinstance(signed, float)
        print(
            f"{r['mode']:7} {r['sources']!s:15} {o['n']:5d} {r['lost']!s:>4} | "
            f"{o['mean'] / 1e3:10.2f} {o['sd'] / 1e3:7.2f} {o['p50'] / 1e3:7.2f} "
            f"{o['p99'] / 1e3:7.2f} {o['max'] / 1e3:8.2f} | {signed / 1e3:+7.2f} | "
            f"{d['mean'] / 1e3:10.2f} {d['p50'] / 1e3:7.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=128.0, help="exchanges per second")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per mode")
    ap.add_argument("--modes", default="user,kernel")
    args = ap.parse_args(argv)
    reason = netns.skip_reason()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 1
    netns.cleanup_stale()
    rows = []
    for mode in args.modes.split(","):
        if mode not in ("user", "kernel"):
            ap.error(f"unknown mode {mode}")
        rows.append(run_mode(mode, args.rate, args.duration))
    print_table(rows, args.rate, args.duration)
    print(f"\nkernel {os.uname().release}, python {sys.version.split()[0]}, pid {os.getpid()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
