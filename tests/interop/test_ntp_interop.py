"""NTP interop in network namespaces: netclock against chronyd 4.3, ntpsec ntpdig and ntplib.

Every namespace shares the system clock, so the true offset between them is 0. The netclock
server serves a domain shifted by +1.234567 s, so a correct client measures that shift (an
accidental zero cannot pass); against chronyd the netclock client must measure ~0.

chronyd always runs with ``-x`` (never touches the clock), as a child of this process, and is
stopped by PID and waited for (tests.support.netns does that at teardown).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.support` from any cwd

from tests.support import netns

pytestmark = pytest.mark.interop

SHIFT_NS = 1_234_567_000
TOLERANCE_NS = 100_000
SUBNET = 214


def _need(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed")


@pytest.fixture
def veth() -> Iterator[netns.Topology]:
    with netns.veth_pair(subnet=SUBNET) as topo:
        yield topo


def _wait_line(proc: subprocess.Popen[Any], pattern: str, timeout: float = 10.0) -> str:
    """Read the child's stdout (raw fd, no buffering) until ``pattern`` shows up."""
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


def _netclock_server(node: netns.Node, *extra: str) -> subprocess.Popen[Any]:
    proc = node.python(
        ["-m", "netclock", "ntp", "serve", "--listen", f"{node.ip4}:123",
         "--listen", f"[{node.ip6}]:123", "--shift-ns", str(SHIFT_NS), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    _wait_line(proc, rf"serving NTP on \[{re.escape(node.ip6)}\]")
    return proc


def _server_counters(node: netns.Node, proc: subprocess.Popen[Any]) -> dict[str, int]:
    node.stop(proc)
    assert proc.stdout is not None
    out = proc.stdout.read()
    m = re.search(r"received (\d+) responded (\d+) interleaved (\d+)", out)
    assert m, out
    return {"received": int(m[1]), "responded": int(m[2]), "interleaved": int(m[3])}


def _chrony_conf(tmp: Path, name: str, lines: list[str]) -> Path:
    conf = tmp / f"{name}.conf"
    conf.write_text("\n".join([*lines, f"pidfile {tmp}/{name}.pid", "cmdport 0", ""]))
    return conf


def _chronyd_q(node: netns.Node, conf: Path, timeout: float = 15.0) -> float:
    """chronyd -Q (measure once, never set the clock) as a child; the offset it reports, s.

    chronyd prints "System clock wrong by X seconds": X is how much the local clock must move
    to match the server, i.e. server - local."""
    proc = node.popen(["chronyd", "-x", "-Q", "-u", "root", "-f", str(conf)],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        node.stop(proc)
    m = re.search(r"System clock wrong by (-?[\d.]+) seconds", out)
    assert m, out
    return float(m[1])


# -- clients of a netclock server ----------------------------------------------------------------


def test_ntpdig_measures_shifted_netclock_server(veth: netns.Topology) -> None:
    _need("ntpdig")
    a, b = veth.nodes
    srv = _netclock_server(a)
    for addr, flag in ((a.ip4, "-4"), (a.ip6, "-6")):
        # ntpdig is a Python program stamping in userspace: on a loaded 2-core box one run can
        # be 100+ us late, so its measurement here is the median of 5 runs (of 4 samples each)
        offsets = sorted(
            json.loads(b.run(["ntpdig", "-j", flag, "-p", "4", addr]).stdout)["offset"]
            for _ in range(5)
        )
        print(f"ntpdig {addr}: offsets {offsets} s")
        assert abs(offsets[2] * 1e9 - SHIFT_NS) < TOLERANCE_NS, offsets
    assert _server_counters(a, srv)["responded"] >= 40


def test_ntplib_measures_shifted_netclock_server(veth: netns.Topology) -> None:
    a, b = veth.nodes
    srv = _netclock_server(a)
    code = (
        "import json, ntplib\n"
        "c = ntplib.NTPClient()\n"
        f"rs = [c.request('{a.ip4}', version=v, timeout=2) for v in (2, 3, 4) for _ in range(4)]\n"
        "best = min(rs, key=lambda r: r.delay)\n"
        "print(json.dumps({'offset': best.offset, 'delay': best.delay,"
        " 'versions': sorted({r.version for r in rs})}))\n"
    )
    proc = b.python(["-c", code], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=20)
    b.stop(proc)
    res = json.loads(out)
    print(f"ntplib: offset {res['offset']:.6f} s delay {res['delay'] * 1e6:.1f} us")
    assert res["versions"] == [2, 3, 4]
    # ntplib stamps in userspace with float seconds: its lowest-delay sample is within 100 us
    assert abs(res["offset"] * 1e9 - SHIFT_NS) < TOLERANCE_NS
    _server_counters(a, srv)


@pytest.mark.parametrize("xleave", [False, True], ids=["basic", "xleave"])
def test_chronyd_measures_shifted_netclock_server(
    veth: netns.Topology, tmp_path: Path, xleave: bool
) -> None:
    _need("chronyd")
    a, b = veth.nodes
    srv = _netclock_server(a)
    opts = "iburst minpoll -4 maxpoll -4" + (" xleave" if xleave else "")
    conf = _chrony_conf(tmp_path, "client", [f"server {a.ip4} {opts}"])
    wrong_by = _chronyd_q(b, conf)
    print(f"chronyd -Q ({'xleave' if xleave else 'basic'}): wrong by {wrong_by:+.6f} s")
    assert abs(wrong_by * 1e9 - SHIFT_NS) < TOLERANCE_NS
    counters = _server_counters(a, srv)
    assert counters["responded"] >= 2
    if xleave:
        assert counters["interleaved"] >= 1, counters


# -- netclock client against a chronyd server ----------------------------------------------------


@pytest.fixture
def chronyd_server(veth: netns.Topology, tmp_path: Path) -> tuple[netns.Node, netns.Node]:
    _need("chronyd")
    a, b = veth.nodes
    conf = _chrony_conf(tmp_path, "server", [
        "local stratum 1", "allow", f"bindaddress {a.ip4}", f"bindaddress {a.ip6}", "port 123",
    ])
    a.popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return a, b


def _netclock_query(node: netns.Node, target: str, *extra: str) -> dict[str, Any]:
    proc = node.python(["-m", "netclock", "ntp", "query", "--json", "-n", "8", *extra, target],
                       stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=20)
    node.stop(proc)
    res: dict[str, Any] = json.loads(out)
    assert "error" not in res, res
    return res


@pytest.mark.parametrize("xleave", [False, True], ids=["basic", "xleave"])
def test_netclock_client_against_chronyd(
    chronyd_server: tuple[netns.Node, netns.Node], xleave: bool
) -> None:
    a, b = chronyd_server
    for target in (a.ip4, f"[{a.ip6}]:123"):
        # chronyd needs a moment before its first answer; retry once
        try:
            res = _netclock_query(b, target, *(["--xleave"] if xleave else []))
        except AssertionError:
            time.sleep(1)
            res = _netclock_query(b, target, *(["--xleave"] if xleave else []))
        print(f"netclock -> chronyd {target}: {res}")
        assert res["stratum"] == 1 and res["timestamping"] == "kernel"
        assert res["mode"] == ("interleaved" if xleave else "basic")
        # same system clock on both sides: the true offset is 0
        assert abs(res["offset_ns"]) < TOLERANCE_NS
        assert 0 <= res["delay_ns"] < 1_000_000


def test_netclock_client_against_netclock_server_ipv6_xleave(veth: netns.Topology) -> None:
    a, b = veth.nodes
    srv = _netclock_server(a)
    res = _netclock_query(b, f"[{a.ip6}]:123", "--xleave")
    print(f"netclock -> netclock [{a.ip6}]: {res}")
    assert res["mode"] == "interleaved" and res["timestamping"] == "kernel"
    assert abs(res["offset_ns"] - SHIFT_NS) < TOLERANCE_NS
    assert _server_counters(a, srv)["interleaved"] >= 1
