"""The NTP transport and CLI on loopback (127.0.0.1 and ::1): no namespace needed, no root.

A netclock server serving a domain shifted by +1.234567 s and netclock's own client, both with
kernel timestamps (and once with the userspace fallback, which must say so).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netclock.ntp.server import DisciplineState, NtpServer
from netclock.ntp.source import NtpSample, NtpSource, SourceConfig
from netclock.platform.clockmap import ClockMap
from netclock.platform.ntp_transport import (
    WARM_UPS,
    ServerDriver,
    SourceDriver,
    open_client_socket,
    open_server_socket,
    parse_hostport,
    query,
    system_served_time,
)
from netclock.platform.timestamping import Received, StampCounters

SHIFT_NS = 1_234_567_000
TOLERANCE_NS = 100_000
REPO = Path(__file__).resolve().parents[2]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _serve_and_query(
    host: str, *, xleave: bool, timestamping: bool
) -> tuple[dict[str, Any], NtpServer]:
    clock_map = ClockMap()
    server = NtpServer(system_served_time(clock_map, SHIFT_NS), DisciplineState(stratum=2),
                       rate_limit=None)
    sock = open_server_socket(host, 0, timestamping=timestamping, clock_map=clock_map)
    ServerDriver(server, sock)
    port = sock.local_address[1]
    try:
        res = await query(host, port, count=6, poll=-5, xleave=xleave, timestamping=timestamping)
    finally:
        sock.close()
    return res.as_dict(), server


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("xleave", [False, True], ids=["basic", "xleave"])
def test_netclock_client_and_server_on_loopback(host: str, xleave: bool) -> None:
    if host == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    res, server = asyncio.run(_serve_and_query(host, xleave=xleave, timestamping=True))
    print(res)
    assert res["timestamping"] == "kernel" and res["stratum"] == 2
    assert abs(int(res["offset_ns"]) - SHIFT_NS) < TOLERANCE_NS
    assert int(res["samples"]) >= 6
    assert int(res["mapping_uncertainty_ns"]) < 10_000
    if xleave:
        assert res["mode"] == "interleaved" and server.counters.interleaved >= 1


def test_userspace_fallback_is_labelled() -> None:
    res, _ = asyncio.run(_serve_and_query("127.0.0.1", xleave=False, timestamping=False))
    assert res["timestamping"] == "user"
    # userspace stamps: much looser, still the right answer
    assert abs(int(res["offset_ns"]) - SHIFT_NS) < 5_000_000


async def _exchange_with_warm_up(
    host: str, warm: bool
) -> tuple[list[NtpSample], int, NtpServer, list[bytes], StampCounters]:
    """A SourceDriver against our server, its warm-ups going to a listener of ours: the
    samples, the requests it reported (``on_request``), the server, what the listener got,
    and the client socket's stamp counters."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    loop = asyncio.get_running_loop()
    clock_map = ClockMap()
    server = NtpServer(system_served_time(clock_map, SHIFT_NS), DisciplineState(stratum=2),
                       rate_limit=None)
    sock = open_server_socket(host, 0, timestamping=True, clock_map=clock_map)
    ServerDriver(server, sock)
    discard = socket.socket(family, socket.SOCK_DGRAM)
    discard.bind((host, 0))
    discard.setblocking(False)
    got: list[bytes] = []
    loop.add_reader(discard.fileno(), lambda: got.append(discard.recv(64)))
    samples: list[NtpSample] = []
    requests: list[int] = []
    driver: SourceDriver | None = None

    def on_rx(r: Received) -> None:
        assert driver is not None
        driver.handle_received(r)

    client = open_client_socket(family, clock_map=clock_map, on_receive=on_rx)
    cfg = SourceConfig(minpoll=-5, maxpoll=-5, iburst=False, filter_length=1, xleave=True)
    source = NtpSource(cfg, random.Random(5), pivot_unix_ns=time.time_ns())
    driver = SourceDriver(source, client, (host, sock.local_address[1]),
                          lambda s, kind: samples.append(s) if kind == "kernel" else None,
                          on_request=lambda: requests.append(1),
                          warm_up_port=discard.getsockname()[1] if warm else 0)
    try:
        driver.start()
        for _ in range(200):
            if len(samples) >= 4:
                break
            await asyncio.sleep(0.02)
        driver.stop()
        await asyncio.sleep(0.05)  # the last warm-ups and stamps land
    finally:
        loop.remove_reader(discard.fileno())
        discard.close()
        sock.close()
        client.close()
    return samples, len(requests), server, got, client.counters


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_each_request_follows_two_stamped_warm_up_datagrams(host: str) -> None:
    """ntp.server warm-up-port: WARM_UPS (2) empty datagrams from the client to that port of
    the server before every request, each with a kernel TX stamp like the request's (the
    TX-stamp work is part of the path they warm); the server's NTP port never sees them, the
    exchange keeps its kernel stamps, and with 0 nothing is sent."""
    if host == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    assert WARM_UPS == 2
    samples, requests, server, got, counters = asyncio.run(_exchange_with_warm_up(host, True))
    assert len(samples) >= 4
    # raw offsets are server time - MONOTONIC; the served time is REALTIME + SHIFT_NS
    rt_minus_mono = time.time_ns() - time.monotonic_ns()
    assert all(abs(s.raw_offset_ns - rt_minus_mono - SHIFT_NS) < TOLERANCE_NS for s in samples)
    assert requests == server.counters.received and requests >= 4
    assert server.counters.dropped_bad == 0
    assert got == [b""] * (WARM_UPS * requests)
    # every datagram sent asked for a kernel stamp and got one
    assert counters.tx_event == (WARM_UPS + 1) * requests == counters.tx_kernel
    samples, requests, server, got, counters = asyncio.run(_exchange_with_warm_up(host, False))
    assert len(samples) >= 4 and got == []
    assert counters.tx_event == requests == counters.tx_kernel == server.counters.received


def test_query_times_out_cleanly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(TimeoutError):
            asyncio.run(query("127.0.0.1", port, count=1, poll=-6, timeout_s=0.3))


def test_parse_hostport() -> None:
    assert parse_hostport("10.0.0.1") == ("10.0.0.1", 123)
    assert parse_hostport("10.0.0.1:1123") == ("10.0.0.1", 1123)
    assert parse_hostport("[fd00::1]:99") == ("fd00::1", 99)
    assert parse_hostport("[fd00::1]") == ("fd00::1", 123)
    assert parse_hostport("fd00::1") == ("fd00::1", 123)
    assert parse_hostport("ntp.example") == ("ntp.example", 123)


def test_cli_serve_and_query_json() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    srv = subprocess.Popen(
        [sys.executable, "-m", "netclock", "ntp", "serve", "--listen", f"127.0.0.1:{port}",
         "--shift-ns", str(SHIFT_NS), "--duration", "20"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert srv.stdout is not None
        assert "serving NTP on" in srv.stdout.readline()
        out = subprocess.run(
            [sys.executable, "-m", "netclock", "ntp", "query", "--json", "-n", "4",
             f"127.0.0.1:{port}"],
            env=env, capture_output=True, text=True, timeout=20,
        ).stdout
        res = json.loads(out)
        assert {"offset_ns", "delay_ns", "stratum", "timestamping"} <= res.keys()
        assert abs(res["offset_ns"] - SHIFT_NS) < TOLERANCE_NS
        assert res["timestamping"] == "kernel" and res["stratum"] == 1
        human = subprocess.run(
            [sys.executable, "-m", "netclock", "ntp", "query", "-n", "2", f"127.0.0.1:{port}"],
            env=env, capture_output=True, text=True, timeout=20,
        ).stdout
        assert "offset +1.2345" in human and "kernel timestamps" in human
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    assert srv.stdout is not None
    m = re.search(r"responded (\d+)", srv.stdout.read())
    assert m is not None and int(m[1]) >= 6
