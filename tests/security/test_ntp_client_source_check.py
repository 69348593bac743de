"""Client side: an NTP answer counts only when it comes from the configured server address and
port (on real loopback sockets).

The spoofed answer here is one an off-path attacker who guessed the request could send: it
echoes the request's transmit timestamp (it passes the origin check) and says the time is 1 s
later. It comes from another port of the same host, so only the address/port check stops it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time

from netclock.ntp.server import DisciplineState, NtpServer
from netclock.ntp.source import NtpSample, NtpSource, SourceConfig
from netclock.platform.ntp_transport import SourceDriver, _endpoint, open_client_socket
from netclock.platform.timestamping import Received
from netclock.time import NS_PER_S


def test_endpoints_compare_by_value() -> None:
    assert _endpoint(("FD00:0::1", 123, 0, 0)) == _endpoint(("fd00::1", 123))
    assert _endpoint(("::ffff:127.0.0.1", 123, 0, 0)) == _endpoint(("127.0.0.1", 123))
    assert _endpoint(("fe80::1%eth0", 123, 0, 2)) == _endpoint(("fe80::1", 123))
    assert _endpoint(("127.0.0.1", 123)) != _endpoint(("127.0.0.1", 124))
    assert _endpoint(("127.0.0.1", 123)) != _endpoint(("127.0.0.2", 123))


async def _exchange() -> tuple[list[NtpSample], int, int]:
    loop = asyncio.get_running_loop()
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (real, spoof):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    samples: list[NtpSample] = []
    driver: SourceDriver | None = None

    def on_rx(r: Received) -> None:
        assert driver is not None
        driver.handle_received(r)

    sock = open_client_socket(socket.AF_INET, timestamping=False, on_receive=on_rx)
    cfg = SourceConfig(minpoll=-2, maxpoll=-2, iburst=False, filter_length=1)
    source = NtpSource(cfg, random.Random(3), pivot_unix_ns=time.time_ns())
    driver = SourceDriver(source, sock, real.getsockname(), lambda s, _k: samples.append(s))
    truth = NtpServer(lambda m: time.time_ns() + (m - time.monotonic_ns()), DisciplineState(),
                      rate_limit=None, xleave=False)
    liar = NtpServer(lambda m: time.time_ns() + (m - time.monotonic_ns()) + NS_PER_S,
                     DisciplineState(), rate_limit=None, xleave=False)
    try:
        driver.start()
        for _ in range(3):
            req, client = await asyncio.wait_for(loop.sock_recvfrom(real, 512), 5.0)
            now = time.monotonic_ns()
            lie = liar.respond(req, now, now)
            good = truth.respond(req, now, now)
            assert lie is not None and good is not None
            await loop.sock_sendto(spoof, lie.data, client)  # first, from the wrong port
            await asyncio.sleep(0.02)
            await loop.sock_sendto(real, good.data, client)
            await asyncio.sleep(0.05)
        return samples, driver.stats.foreign, driver.stats.rx_user + driver.stats.rx_kernel
    finally:
        driver.stop()
        sock.close()
        real.close()
        spoof.close()


def test_answer_from_another_port_is_ignored_even_with_a_valid_origin() -> None:
    samples, foreign, accepted = asyncio.run(_exchange())
    assert foreign == 3 and accepted == 3
    assert len(samples) == 3
    # every sample is the true server's: the liar's +1 s never reached the source
    assert all(abs(s.raw_offset_ns - (time.time_ns() - time.monotonic_ns())) < NS_PER_S // 10
               for s in samples)
