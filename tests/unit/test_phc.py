"""PTP hardware clock: id arithmetic, ioctl layouts against the C header, clean errors.

There is no /dev/ptp* on the development machines, so reading a real PHC is not tested here;
``test_real_phc_if_present`` runs when one exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.clock import ClockError, ClockFlags
from netclock.platform import phc
from netclock.platform.phc import (
    ExtendedSample,
    PhcClock,
    PreciseOffset,
    PtpClockCaps,
    clockid_to_fd,
    fd_to_clockid,
    pack_extended_request,
    phc_path_for_interface,
    unpack_extended,
)

HEADER = Path("/usr/include/linux/ptp_clock.h")

C_PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/ptp_clock.h>
/* the kernel's macro, clockid_t being int */
#define FD_TO_CLOCKID(fd) ((~(int) (fd) << 3) | 3)
int main(void) {
    printf("sizeof_time %zu\n", sizeof(struct ptp_clock_time));
    printf("sizeof_caps %zu\n", sizeof(struct ptp_clock_caps));
    printf("sizeof_precise %zu\n", sizeof(struct ptp_sys_offset_precise));
    printf("sizeof_extended %zu\n", sizeof(struct ptp_sys_offset_extended));
    printf("off_caps_cross %zu\n", offsetof(struct ptp_clock_caps, cross_timestamping));
    printf("off_precise_monoraw %zu\n", offsetof(struct ptp_sys_offset_precise, sys_monoraw));
    printf("off_extended_ts %zu\n", offsetof(struct ptp_sys_offset_extended, ts));
    printf("PTP_CLOCK_GETCAPS %lu\n", (unsigned long) PTP_CLOCK_GETCAPS);
    printf("PTP_SYS_OFFSET_PRECISE %lu\n", (unsigned long) PTP_SYS_OFFSET_PRECISE);
    printf("PTP_SYS_OFFSET_EXTENDED %lu\n", (unsigned long) PTP_SYS_OFFSET_EXTENDED);
    printf("PTP_MAX_SAMPLES %d\n", PTP_MAX_SAMPLES);
    for (int fd = 0; fd < 5; fd++) printf("clockid%d %d\n", fd, (int) FD_TO_CLOCKID(fd));
    printf("clockid1023 %d\n", (int) FD_TO_CLOCKID(1023));
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    gcc = shutil.which("gcc")
    if gcc is None or not HEADER.exists():
        pytest.skip("gcc or <linux/ptp_clock.h> (linux-libc-dev) not installed")
    d = tmp_path_factory.mktemp("ptpc")
    src, exe = d / "sizes.c", d / "sizes"
    src.write_text(C_PROGRAM)
    subprocess.run([gcc, "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_layouts_match_c_header(c_values: dict[str, int]) -> None:
    assert phc.PTP_CLOCK_TIME.size == c_values["sizeof_time"]
    assert phc.PTP_CLOCK_CAPS.size == c_values["sizeof_caps"]
    assert phc.PTP_SYS_OFFSET_PRECISE_S.size == c_values["sizeof_precise"]
    assert phc.PTP_SYS_OFFSET_EXTENDED_S.size == c_values["sizeof_extended"]
    assert c_values["PTP_MAX_SAMPLES"] == phc.PTP_MAX_SAMPLES
    # Field offsets used by the unpackers.
    assert struct.calcsize("=6i") == c_values["off_caps_cross"]
    assert 2 * phc.PTP_CLOCK_TIME.size == c_values["off_precise_monoraw"]
    assert struct.calcsize("=I i 2I") == c_values["off_extended_ts"]


def test_ioctl_numbers_match_c_header(c_values: dict[str, int]) -> None:
    assert c_values["PTP_CLOCK_GETCAPS"] == phc.PTP_CLOCK_GETCAPS
    assert c_values["PTP_SYS_OFFSET_PRECISE"] == phc.PTP_SYS_OFFSET_PRECISE
    assert c_values["PTP_SYS_OFFSET_EXTENDED"] == phc.PTP_SYS_OFFSET_EXTENDED


def test_clockid_matches_c_macro(c_values: dict[str, int]) -> None:
    for fd in (0, 1, 2, 3, 4, 1023):
        assert fd_to_clockid(fd) == c_values[f"clockid{fd}"]


def test_clockid_known_values() -> None:
    assert fd_to_clockid(3) == -29
    assert fd_to_clockid(0) == -5
    assert clockid_to_fd(-29) == 3
    with pytest.raises(ValueError):
        fd_to_clockid(-1)
    with pytest.raises(ValueError):
        clockid_to_fd(1)  # CLOCK_MONOTONIC is not a dynamic id
    with pytest.raises(ValueError):
        clockid_to_fd(-30)  # low bits are not CLOCKFD


@given(st.integers(min_value=0, max_value=(1 << 28) - 1))
def test_clockid_round_trip(fd: int) -> None:
    cid = fd_to_clockid(fd)
    assert cid < 0
    assert cid & 7 == 3
    assert cid >= -(1 << 31)  # fits a 32-bit clockid_t
    assert clockid_to_fd(cid) == fd


def test_missing_device_names_path(tmp_path: Path) -> None:
    path = str(tmp_path / "ptp7")
    with pytest.raises(ClockError, match="ptp7 does not exist") as ei:
        PhcClock(path)
    assert ei.value.path == path


def test_non_ptp_device_is_rejected() -> None:
    # /dev/null is a character device but not a posix clock: clock_gettime on its dynamic
    # id fails with EINVAL, and the fd must not leak.
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ClockError, match="/dev/null is not a PTP hardware clock") as ei:
        PhcClock("/dev/null")
    assert ei.value.path == "/dev/null"
    assert len(os.listdir("/proc/self/fd")) == before


def test_caps_round_trip() -> None:
    caps = PtpClockCaps(
        max_adj_ppb=62499999,
        n_alarm=0,
        n_ext_ts=2,
        n_per_out=2,
        pps=True,
        n_pins=4,
        cross_timestamping=True,
        adjust_phase=False,
    )
    raw = caps.pack()
    assert len(raw) == 80
    assert PtpClockCaps.unpack(raw) == caps
    assert struct.unpack_from("=i", raw, 24)[0] == 1  # cross_timestamping is the 7th int


def test_precise_unpack() -> None:
    raw = struct.pack("=qII qII qII 4I", 10, 5, 0, 20, 6, 0, 30, 7, 0, 0, 0, 0, 0)
    assert PreciseOffset.unpack(raw) == PreciseOffset(
        10_000_000_005, 20_000_000_006, 30_000_000_007
    )


def test_extended_request_and_unpack() -> None:
    req = pack_extended_request(3, sys_clockid=1)
    assert len(req) == phc.PTP_SYS_OFFSET_EXTENDED_S.size
    assert struct.unpack_from("=Ii", req) == (3, 1)
    # A reply: three (sys, phc, sys) rows.
    buf = bytearray(req)
    for i in range(3):
        for j, (s, ns) in enumerate([(100 + i, 10), (200 + i, 20), (100 + i, 30)]):
            struct.pack_into("=qII", buf, 16 + 48 * i + 16 * j, s, ns, 0)
    rows = unpack_extended(buf, 3)
    assert rows[2] == ExtendedSample(102_000_000_010, 202_000_000_020, 102_000_000_030)
    assert rows[0].width_ns == 20
    assert rows[0].offset_ns == 200_000_000_020 - 100_000_000_020
    with pytest.raises(ValueError):
        pack_extended_request(0)
    with pytest.raises(ValueError):
        pack_extended_request(26)


def test_phc_path_for_interface(tmp_path: Path) -> None:
    (tmp_path / "eth9" / "device" / "ptp" / "ptp3").mkdir(parents=True)
    assert phc_path_for_interface("eth9", sysfs=tmp_path) == "/dev/ptp3"
    with pytest.raises(ClockError, match="lo has no PTP hardware clock"):
        phc_path_for_interface("lo")


@pytest.mark.skipif(not glob.glob("/dev/ptp*"), reason="no PTP hardware clock on this machine")
def test_real_phc_if_present() -> None:  # pragma: no cover - needs hardware
    path = sorted(glob.glob("/dev/ptp*"))[0]
    with PhcClock(path) as clk:
        assert ClockFlags.HARDWARE in clk.flags
        a = clk.now_ns()
        b = clk.now_ns()
        assert b >= a
        caps = clk.caps()
        assert caps.max_adj_ppb >= 0
        try:
            rows = clk.sys_offset_extended(3)
        except ClockError:
            rows = []
        for r in rows:
            assert r.sys_after_ns >= r.sys_before_ns
        if caps.cross_timestamping:
            p = clk.sys_offset_precise()
            assert abs(p.realtime_ns - time.clock_gettime_ns(time.CLOCK_REALTIME)) < 10**9
    with pytest.raises(ClockError, match="closed"):
        clk.now_ns()
