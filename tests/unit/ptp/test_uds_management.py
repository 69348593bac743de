"""UdsManagement: PTP management over a Unix datagram socket (ptp4l's uds_address role), with a
real socket pair in a temporary directory; with linuxptp installed, the real ``pmc`` too."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
from pathlib import Path

import pytest

from netclock.platform.ptp_transport import UdsManagement
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import (
    ClockIdentity,
    Header,
    Management,
    ManagementId,
    ManagementTlv,
    PortIdentity,
    parse,
)
from netclock.ptp.wire.mgmt_data import DefaultDataSet

ME = PortIdentity(ClockIdentity(b"\x5a" * 8), 1)


def _port() -> PtpPort:
    port = PtpPort(PortConfig(priority1=42, domain_number=127), ME, random.Random(1))
    port.start(0)
    return port


async def _serve(path: Path, client: object) -> object:
    port = _port()
    uds = UdsManagement(str(path), lambda d: port.handle_management(d, 0))
    try:
        return await client  # type: ignore[misc]
    finally:
        uds.close()


def test_raw_client_gets_default_data_set(tmp_path: Path) -> None:
    server = tmp_path / "netclock.uds"
    me = tmp_path / "client.sock"

    async def client() -> bytes:
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(me))
        s.setblocking(False)
        req = Management(Header(PortIdentity(ClockIdentity(b"\x01" * 8), 2), 7),
                         tlvs=(ManagementTlv(ManagementId.DEFAULT_DATA_SET),))
        s.sendto(req.pack(), str(server))
        try:
            return await asyncio.wait_for(loop.sock_recv(s, 1500), 2.0)
        finally:
            s.close()

    data = asyncio.run(_serve(server, client()))
    reply = parse(data)  # type: ignore[arg-type]
    assert isinstance(reply, Management)
    (tlv,) = reply.tlvs
    assert isinstance(tlv, ManagementTlv)
    d = DefaultDataSet.unpack(tlv.data)
    assert d.priority1 == 42 and d.domain_number == 127 and d.clock_identity == ME.clock_identity
    assert not server.exists()  # removed on close


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    server = tmp_path / "netclock.uds"
    server.write_text("stale")

    async def nothing() -> int:
        return server.is_socket()

    assert asyncio.run(_serve(server, nothing())) is True


@pytest.mark.interop
def test_real_pmc_reads_netclock(tmp_path: Path) -> None:
    if shutil.which("pmc") is None:
        pytest.skip("pmc (linuxptp) not installed")
    server = tmp_path / "netclock.uds"

    async def pmc() -> str:
        p = await asyncio.create_subprocess_exec(
            "pmc", "-u", "-b", "0", "-d", "127", "-s", str(server), "GET DEFAULT_DATA_SET",
            "GET PRIORITY1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(p.communicate(), 10.0)
        return out.decode()

    out = asyncio.run(_serve(server, pmc()))
    assert isinstance(out, str)
    assert "priority1               42" in out and "domainNumber            127" in out, out
    assert "PRIORITY1" in out and "priority1 42" in out, out
