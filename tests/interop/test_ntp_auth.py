"""NTP symmetric-key authentication against chronyd 4.3, both directions, in namespaces.

* chronyd (``-x -Q``, never touches the clock) as a client with ``key 1`` against
  ``netclock ntp serve --key-file``: it accepts only authenticated answers, so measuring the
  server's +1.234567 s shift at all proves the netclock server signs correctly; the server's
  counters prove it verified chronyd's MACs. With a different secret the server drops every
  request (bad MAC) and chronyd measures nothing.
* netclock's :class:`NtpSource` with a key against ``chronyd -x`` serving with the same keys
  file: samples arrive and measure ~0 (all namespaces share one clock). With a wrong secret
  nothing is measured.

One keys file, in chrony's format, is read by both programs. Each key type: AES128 (RFC 8573
CMAC), SHA1, MD5.
"""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.support` from any cwd

from netclock.ntp.auth import parse_keys
from netclock.ntp.source import Measured, NtpSource, Send, SourceConfig
from tests.support import netns

pytestmark = pytest.mark.interop

SHIFT_NS = 1_234_567_000
SUBNET = 226
KEYS = {
    "AES128": "HEX:2B7E151628AED2A6ABF7158809CF4F3C",
    "SHA1": "HEX:0123456789ABCDEF0123456789ABCDEF01234567",
    "MD5": "ASCII:netclock-md5-secret",
}
WRONG = {
    "AES128": "HEX:00000000000000000000000000000001",
    "SHA1": "HEX:1111111111111111111111111111111111111111",
    "MD5": "ASCII:wrong-secret",
}


def _need(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed")


@pytest.fixture
def veth() -> Iterator[netns.Topology]:
    with netns.veth_pair(subnet=SUBNET) as topo:
        yield topo


def _keyfile(tmp: Path, name: str, key_type: str, secret: str) -> Path:
    p = tmp / name
    p.write_text(f"# chrony keyfile syntax\n1 {key_type} {secret}\n")
    p.chmod(0o600)
    return p


def _wait_line(proc: subprocess.Popen[Any], pattern: str, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 4096).decode()
            seen += chunk
            if re.search(pattern, seen):
                return seen
            if not chunk:
                break
    raise AssertionError(f"no {pattern!r} from {proc.args!r}: {seen!r}")


def _server_counters(node: netns.Node, proc: subprocess.Popen[Any]) -> dict[str, int]:
    node.stop(proc)
    assert proc.stdout is not None
    out = proc.stdout.read()
    m = re.search(r"received (\d+) responded (\d+).*auth-ok (\d+) auth-failed (\d+) "
                  r"crypto-nak (\d+)", out)
    assert m, out
    return {"received": int(m[1]), "responded": int(m[2]), "auth_ok": int(m[3]),
            "auth_failed": int(m[4]), "crypto_nak": int(m[5])}


# -- chronyd client -> netclock server ----------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KEYS))
def test_chronyd_client_with_key_against_netclock_server(
    veth: netns.Topology, tmp_path: Path, key_type: str
) -> None:
    _need("chronyd")
    a, b = veth.nodes
    server_keys = _keyfile(tmp_path, "server.keys", key_type, KEYS[key_type])
    srv = a.python(["-m", "netclock", "ntp", "serve", "--listen", f"{a.ip4}:123",
                    "--shift-ns", str(SHIFT_NS), "--key-file", str(server_keys),
                    "--require-auth"],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(srv, r"serving NTP on")

    def chronyd_q(secret: str, name: str, timeout_s: int) -> str:
        keys = _keyfile(tmp_path, f"{name}.keys", key_type, secret)
        conf = tmp_path / f"{name}.conf"
        conf.write_text(f"server {a.ip4} key 1 iburst minpoll -4 maxpoll -4\n"
                        f"keyfile {keys}\npidfile {tmp_path}/{name}.pid\ncmdport 0\n")
        proc = b.popen(["chronyd", "-x", "-Q", "-t", str(timeout_s), "-u", "root", "-f",
                        str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout_s + 10)
        finally:
            b.stop(proc)
        return str(out)

    out = chronyd_q(KEYS[key_type], "good", 15)
    m = re.search(r"System clock wrong by (-?[\d.]+) seconds", out)
    assert m, out
    assert abs(float(m[1]) * 1e9 - SHIFT_NS) < 1_000_000, out
    good = _server_counters(a, srv)
    print(f"{key_type}: chronyd wrong by {m[1]} s; server {good}")
    assert good["auth_ok"] >= 2 and good["auth_failed"] == 0

    srv = a.python(["-m", "netclock", "ntp", "serve", "--listen", f"{a.ip4}:123",
                    "--key-file", str(server_keys)],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(srv, r"serving NTP on")
    out = chronyd_q(WRONG[key_type], "bad", 4)
    assert "System clock wrong by" not in out, out
    bad = _server_counters(a, srv)
    print(f"{key_type} wrong secret: server {bad}")
    assert bad["received"] >= 1 and bad["auth_failed"] == bad["received"]
    assert bad["responded"] == 0 and bad["auth_ok"] == 0


# -- netclock client -> chronyd server ----------------------------------------------------------


def _query_with_key(host: str, keyfile: str, n: int = 4, timeout_s: float = 8.0) -> dict[str, Any]:
    """Run an NtpSource with key 1 against ``host``:123 (user-space timestamps)."""
    key = parse_keys(Path(keyfile).read_text(), keyfile)[1]
    src = NtpSource(SourceConfig(minpoll=-2, maxpoll=-2, iburst=False, filter_length=1),
                    random.Random(), pivot_unix_ns=time.time_ns(), key=key)
    offsets: list[tuple[int, int]] = []  # (round-trip delay, offset)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + timeout_s
        next_at = time.monotonic_ns()
        while time.monotonic() < deadline and len(offsets) < n:
            now = time.monotonic_ns()
            if now >= next_at:
                for act in src.handle_timer(now):
                    if isinstance(act, Send):
                        sock.sendto(act.data, (host, 123))
                next_at = now + 250_000_000
            r, _, _ = select.select([sock], [], [], max(next_at - now, 0) / 1e9)
            if r:
                data = sock.recv(2048)
                t4 = time.monotonic_ns()
                for act in src.handle_incoming(data, t4, t4):
                    if isinstance(act, Measured):
                        mono_to_unix = time.time_ns() - time.monotonic_ns()
                        offsets.append((act.sample.delay_ns,
                                        act.sample.raw_offset_ns - mono_to_unix))
    finally:
        sock.close()
    snap = src.observe()
    return {"offsets": offsets, "responses": snap.responses, "bogus": snap.bogus,
            "requests": snap.requests}


@pytest.mark.parametrize("key_type", list(KEYS))
def test_netclock_client_with_key_against_chronyd_server(
    veth: netns.Topology, tmp_path: Path, key_type: str
) -> None:
    _need("chronyd")
    a, b = veth.nodes
    keys = _keyfile(tmp_path, "server.keys", key_type, KEYS[key_type])
    conf = tmp_path / "server.conf"
    conf.write_text(f"local stratum 1\nallow\nbindaddress {a.ip4}\nport 123\nkeyfile {keys}\n"
                    f"pidfile {tmp_path}/server.pid\ncmdport 0\n")
    a.popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    res = b.call(_query_with_key, a.ip4, str(keys))
    print(f"{key_type}: netclock -> chronyd {res}")
    assert len(res["offsets"]) >= 3, res
    # one shared clock: the lowest-delay sample measures ~0 (the first exchange may wait for ARP)
    assert abs(min(res["offsets"])[1]) < 1_000_000, res
    wrong = _keyfile(tmp_path, "wrong.keys", key_type, WRONG[key_type])
    res = b.call(_query_with_key, a.ip4, str(wrong), 4, 3.0)
    print(f"{key_type} wrong secret: {res}")
    assert res["offsets"] == [] and res["requests"] >= 3, res
