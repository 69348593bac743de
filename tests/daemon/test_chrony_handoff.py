"""chrony hand-off: a real chronyd reads netclock's time from its SOCK refclock.

chronyd runs with ``-x`` (it never adjusts the clock, it only tracks it), as a direct child,
with a private config in a temporary directory: ``refclock SOCK <dir>/chrony.sock refid NETC
poll 0``, no UDP command port, and a command socket in the same directory for ``chronyc -h``.
A ``netclock run`` whose local reference is CLOCK_REALTIME + shift feeds it
(``[publish] chrony-sock``). All processes share one clock, so the truth is known: chronyd
must select NETC and find REALTIME to be ``shift`` slow of it (tracking "System time"), with
the refclock's samples in its statistics.

The wire layout itself (``struct sock_sample``) is checked byte for byte against a golden
vector of chrony's C layout (LP64), and its parser is fuzzed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.platform.chrony import SOCK_SAMPLE, SockSample, SockSampleParseError
from tests.support.netns import stop_process

#: The agreement demanded between chronyd's view and the truth (both sides read the same
#: clock; the sample is computed from one CLOCK_MONOTONIC reading, so load does not matter).
TOLERANCE_S = 50e-6


def _need() -> None:
    if os.geteuid() != 0:
        pytest.skip("chronyd needs root (it runs with -u root here)")
    for tool in ("chronyd", "chronyc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


@pytest.fixture
def chrony_dir() -> Iterator[Path]:
    # Short path: Unix socket paths are limited to 107 bytes; chronyd wants a private dir.
    d = Path(tempfile.mkdtemp(prefix="ncch-", dir="/tmp"))
    d.chmod(0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _chronyc(d: Path, *args: str) -> list[list[str]]:
    r = subprocess.run(
        ["chronyc", "-h", str(d / "cmd.sock"), "-c", *args],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 0, r.stderr
    return [ln.split(",") for ln in r.stdout.splitlines() if ln]


def _netclock(d: Path, shift_ns: int) -> subprocess.Popen[bytes]:
    (d / "nc").mkdir()
    cfg = d / "nc.toml"
    cfg.write_text(
        f"""
[reference]
enabled = true
interval-s = 0.1
shift-ns = {shift_ns}
[publish]
shm-path = "{d}/nc/clock.shm"
chrony-sock = "{d}/chrony.sock"
[metrics]
enabled = false
"""
    )
    return subprocess.Popen(
        [sys.executable, "-m", "netclock", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


# -- the sample ---------------------------------------------------------------------------------

#: 2026-01-02T03:04:05.678901234Z, true time 1.5 ms ahead, leap insert: chrony's struct
#: sock_sample on LP64 Linux (little-endian): tv_sec, tv_usec (long), offset (double), pulse,
#: leap, _pad, magic (int).
GOLDEN = bytes.fromhex(
    "a535576900000000"  # tv_sec 1767323045
    "f55b0a0000000000"  # tv_usec 678901
    "fa7e6abc7493583f"  # offset 0.0015 (0x3f589374bc6a7efa)
    "00000000"  # pulse
    "01000000"  # leap 1
    "00000000"  # _pad
    "4b434f53"  # magic 0x534f434b
)


@pytest.mark.skipif(SOCK_SAMPLE.size != 40 or sys.byteorder != "little", reason="LP64 LE only")
def test_sample_golden_bytes() -> None:
    s = SockSample(1_767_323_045_678_901_234, 1_500_000, leap=1)
    assert s.pack() == GOLDEN
    # The sub-µs part of the system time is dropped by the timeval; the offset is unchanged.
    assert SockSample.unpack(GOLDEN) == SockSample(1_767_323_045_678_901_000, 1_500_000, 1)


@given(
    st.integers(0, 2**40 * 10**9),
    st.integers(-(10**15), 10**15),
    st.sampled_from([0, 1, 2]),
)
def test_sample_round_trip(system_ns: int, offset_ns: int, leap: int) -> None:
    back = SockSample.unpack(SockSample(system_ns, offset_ns, leap).pack())
    assert back.system_ns == system_ns // 1000 * 1000
    assert abs(back.offset_ns - offset_ns) <= max(1, abs(offset_ns) >> 40)
    assert back.leap == leap and not back.pulse


@given(st.binary(min_size=0, max_size=64))
def test_unpack_random_bytes_gives_sample_or_parse_error(data: bytes) -> None:
    try:
        s = SockSample.unpack(data)
    except SockSampleParseError:
        return
    assert isinstance(s, SockSample)


@given(st.binary(min_size=SOCK_SAMPLE.size - 4, max_size=SOCK_SAMPLE.size - 4))
def test_unpack_right_size_with_magic(body: bytes) -> None:
    data = body + (0x534F434B).to_bytes(4, sys.byteorder)
    try:
        s = SockSample.unpack(data)
    except SockSampleParseError:
        return
    assert s.pack()[:8] == data[:8]  # tv_sec survives


# -- against a real chronyd ---------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("shift_ns", [0, 3_000_000])
def test_chronyd_tracks_netclock_through_sock_refclock(chrony_dir: Path, shift_ns: int) -> None:
    _need()
    d = chrony_dir
    conf = d / "chrony.conf"
    conf.write_text(
        f"refclock SOCK {d}/chrony.sock refid NETC poll 0\n"
        "cmdport 0\n"
        f"bindcmdaddress {d}/cmd.sock\n"
        f"pidfile {d}/chronyd.pid\n"
        f"driftfile {d}/drift\n"
    )
    chronyd = subprocess.Popen(
        ["chronyd", "-x", "-d", "-u", "root", "-f", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    agent: subprocess.Popen[bytes] | None = None
    try:
        end = time.monotonic() + 10
        while not (d / "chrony.sock").exists():
            assert chronyd.poll() is None, "chronyd exited"
            assert time.monotonic() < end, "chronyd did not create its refclock socket"
            time.sleep(0.05)
        agent = _netclock(d, shift_ns)
        # chronyd selects a refclock after a few 1 s polls; then its tracking follows it.
        end = time.monotonic() + 20
        while True:
            sources = _chronyc(d, "sources")
            tracking = _chronyc(d, "tracking")[0]
            stats = _chronyc(d, "sourcestats")
            if sources and sources[0][1] == "*" and tracking[1] == "NETC" and int(stats[0][1]) >= 4:
                break
            assert agent.poll() is None, "netclock exited"
            assert time.monotonic() < end, f"chronyd never selected NETC: {sources} {tracking}"
            time.sleep(0.5)
        print(f"shift {shift_ns} ns: sources {sources} sourcestats {stats} tracking {tracking}")
        mode, state, name = sources[0][:3]
        assert (mode, state, name) == ("#", "*", "NETC")
        assert int(sources[0][5], 8) != 0  # reach: samples arrived
        # sourcestats: name, samples, runs, span, freq, skew, offset, stddev. The offset is
        # against chronyd's (virtual, -x) corrected clock: the shift has been taken up already.
        assert stats[0][0] == "NETC"
        assert abs(float(stats[0][6])) < TOLERANCE_S
        # tracking "System time": how much REALTIME is slow (+) of chronyd's reference time,
        # i.e. of netclock's time: exactly the shift.
        system_slow_s = float(tracking[4])
        assert abs(system_slow_s - shift_ns / 1e9) < TOLERANCE_S, tracking
    finally:
        if agent is not None:
            stop_process(agent, timeout=10)
            out = agent.stdout.read().decode(errors="replace") if agent.stdout else ""
            print(out)
        stop_process(chronyd, timeout=5)
        if chronyd.stdout is not None:
            print(chronyd.stdout.read().decode(errors="replace"))
    assert "Traceback" not in out
