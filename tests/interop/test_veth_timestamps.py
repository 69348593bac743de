"""Kernel timestamps across network namespaces (root): veth two-step exchange, multicast on a
bridge (224.0.1.129 and ff0e::181), children in namespaces, stale-namespace cleanup.

Only functional facts and generous sanity bounds are asserted; the measured offsets are printed
(``pytest -s``) and attached as ``record_property`` values.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.support` from any cwd

from netclock.platform.clockmap import ClockMap
from netclock.platform.timestamping import StampedSocket
from netclock.platform.udp import PTP_PRIMARY_V4, PTP_PRIMARY_V6, open_udp
from tests.support import netns, twostep

pytestmark = pytest.mark.interop


@pytest.fixture
def veth() -> Iterator[netns.Topology]:
    with netns.veth_pair() as topo:
        yield topo


@pytest.fixture
def bridge3() -> Iterator[netns.Topology]:
    with netns.bridge(3) as topo:
        yield topo


def test_veth_two_step_exchange_kernel_stamps(
    veth: netns.Topology, record_property: Any
) -> None:
    a, b = veth.nodes
    port = 32000

    async def main() -> list[twostep.Exchange]:
        cmap = ClockMap()
        server_sock = StampedSocket(b.call(open_udp, b.ip4, port), clock_map=cmap)
        client = StampedSocket(a.call(open_udp, a.ip4, 0), clock_map=cmap)
        server = twostep.TwoStepServer(server_sock)
        try:
            results = []
            for seq in range(64):
                ex = await twostep.exchange(client, (b.ip4, port), seq)
                assert ex is not None, f"exchange {seq} lost"
                results.append(ex)
                await asyncio.sleep(0.002)
            assert server.served == 64 and server.sources == {"kernel": 64}
            assert client.counters.tx_kernel == 64 and client.counters.rx_kernel == 128
            assert server_sock.counters.tx_kernel == 64
            return results
        finally:
            client.close()
            server_sock.close()

    results = asyncio.run(asyncio.wait_for(main(), 20))
    for ex in results:
        assert ex.sources == ("kernel", "kernel")
        assert ex.t1 < ex.t2 <= ex.t3 < ex.t4  # one shared clock: causal order holds
        assert ex.delay >= 0
        assert abs(ex.offset) < 1_000_000  # generous sanity bound: 1 ms on veth
    stats = twostep.summarize([abs(ex.offset) for ex in results])
    delay = twostep.summarize([float(ex.delay) for ex in results])
    record_property("abs_offset_ns", stats)
    record_property("delay_ns", delay)
    print(
        f"\nveth kernel two-step, {stats['n']} exchanges: |offset| mean {stats['mean']:.0f} ns "
        f"p50 {stats['p50']:.0f} p99 {stats['p99']:.0f} max {stats['max']:.0f}; "
        f"delay mean {delay['mean']:.0f} ns"
    )


@pytest.mark.parametrize("group", [PTP_PRIMARY_V4, PTP_PRIMARY_V6])
def test_multicast_between_namespaces_on_a_bridge(bridge3: netns.Topology, group: str) -> None:
    n0, n1, n2 = bridge3.nodes
    port = 31900
    fam = socket.AF_INET6 if ":" in group else socket.AF_INET
    dest: tuple[Any, ...] = (group, port, 0, 0) if fam == socket.AF_INET6 else (group, port)

    async def main() -> None:
        listeners = [
            StampedSocket(
                node.call(open_udp, "", port, interface="eth0", multicast_groups=[group])
            )
            for node in (n1, n2)
        ]
        sender = StampedSocket(n0.call(open_udp, "", 0, family=fam, interface="eth0"))
        try:
            tx = await sender.send_event(b"sync", dest)
            assert tx is not None and tx.source == "kernel"
            for lst, node in zip(listeners, (n1, n2), strict=True):
                r = await asyncio.wait_for(lst.recv(), 2)
                assert r.data == b"sync" and r.stamp_source == "kernel"
                assert r.addr[0] in (n0.ip4, n0.ip6), node.ns
                assert r.rx_ns >= tx.ns - 2 * (tx.uncertainty_ns + 1)
        finally:
            sender.close()
            for lst in listeners:
                lst.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_bind_to_device_and_child_process_in_namespace(veth: netns.Topology) -> None:
    a, b = veth.nodes
    # A child Python in namespace b runs the two-step server; it is stopped by PID and waited.
    proc = b.python(
        ["-m", "tests.support.twostep", "--bind", b.ip4, "--port", "32001"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().split()[0] == "READY"

    async def main() -> twostep.Exchange | None:
        client = StampedSocket(a.call(open_udp, a.ip4, 0, interface="eth0", bind_to_device=True))
        try:
            return await twostep.exchange(client, (b.ip4, 32001), 1, timeout=3)
        finally:
            client.close()

    ex = asyncio.run(main())
    assert ex is not None and ex.t1 < ex.t4 and ex.t2 <= ex.t3
    assert b.stop(proc) == 0
    assert "SERVED 1" in proc.stdout.read()
    assert proc not in b.processes


def test_teardown_and_stale_cleanup() -> None:
    netns.require_netns()
    with netns.Topology.veth_pair() as topo:
        names = topo.names
        assert set(names) <= set(netns.list_namespaces())
        sleeper = topo.nodes[0].popen(["sleep", "30"])
    assert sleeper.returncode is not None  # stopped and waited at teardown
    assert not set(names) & set(netns.list_namespaces())

    # A namespace left by a crashed run (its creator pid no longer exists) is removed by prefix.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}-0v-a"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    mine = f"{netns.PREFIX}{os.getpid()}-999x-a"
    subprocess.run(["ip", "netns", "add", mine], check=True)
    try:
        removed = netns.cleanup_stale()
        assert stale in removed and mine not in removed
        assert stale not in netns.list_namespaces()
    finally:
        for name in (stale, mine):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
