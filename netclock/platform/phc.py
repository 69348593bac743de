"""PTP hardware clocks (``/dev/ptpN``) behind the :class:`netclock.clock.Clock` interface.

The device is opened **read-only**: reading the time, the capabilities and the PHC/system
cross-timestamps needs no write access, and netclock never adjusts a clock. A PHC is read with
``clock_gettime`` on its *dynamic clock id* (``FD_TO_CLOCKID(fd) = ((~fd) << 3) | 3``, from the
kernel's posix-clock interface), which ``time.clock_gettime_ns`` accepts.

ioctls (layouts from ``<linux/ptp_clock.h>``, numbers built with the generic ``_IOC`` encoding
used by x86-64, arm64 and riscv; tests/unit/test_phc.py checks both against the C header):

* ``PTP_CLOCK_GETCAPS`` → :class:`PtpClockCaps`
* ``PTP_SYS_OFFSET_PRECISE`` → :class:`PreciseOffset` (device, REALTIME, MONOTONIC_RAW read at
  the same instant by the hardware; only NICs with cross-timestamping, e.g. e1000e/igc/ice)
* ``PTP_SYS_OFFSET_EXTENDED`` → :class:`ExtendedSample` triples (system, device, system), the
  system clock being REALTIME, or (kernels ≥ 6.13, ``sys_clock=``) MONOTONIC / MONOTONIC_RAW.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from netclock.clock import ClockError, ClockFlags

__all__ = [
    "PTP_CLOCK_GETCAPS",
    "PTP_MAX_SAMPLES",
    "PTP_SYS_OFFSET_EXTENDED",
    "PTP_SYS_OFFSET_PRECISE",
    "ExtendedSample",
    "PhcClock",
    "PreciseOffset",
    "PtpClockCaps",
    "clockid_to_fd",
    "fd_to_clockid",
    "phc_path_for_interface",
]

NS_PER_S = 1_000_000_000

# --- clock ids ----------------------------------------------------------------------------
_CLOCKFD = 3


def fd_to_clockid(fd: int) -> int:
    """The dynamic POSIX clock id of an open posix-clock device (``FD_TO_CLOCKID``)."""
    if fd < 0:
        raise ValueError(f"bad file descriptor {fd}")
    return ((~fd) << 3) | _CLOCKFD


def clockid_to_fd(clockid: int) -> int:
    """Inverse of :func:`fd_to_clockid` (``CLOCKID_TO_FD``)."""
    if clockid >= 0 or clockid & 7 != _CLOCKFD:
        raise ValueError(f"{clockid} is not a dynamic (fd) clock id")
    return (~clockid) >> 3


# --- ioctl numbers (asm-generic/ioctl.h) --------------------------------------------------
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, typ: int, nr: int, size: int) -> int:
    if not 0 <= size < 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl size {size} too large")
    return (
        (direction << _IOC_DIRSHIFT)
        | (typ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


# --- struct layouts ------------------------------------------------------------------------
PTP_CLK_MAGIC = ord("=")
PTP_MAX_SAMPLES = 25

#: struct ptp_clock_time { __s64 sec; __u32 nsec; __u32 reserved; }
PTP_CLOCK_TIME = struct.Struct("=qII")
#: struct ptp_clock_caps: 8 ints then int rsv[12]
PTP_CLOCK_CAPS = struct.Struct("=8i12i")
#: struct ptp_sys_offset_precise { device, sys_realtime, sys_monoraw; unsigned rsv[4]; }
PTP_SYS_OFFSET_PRECISE_S = struct.Struct("=" + "qII" * 3 + "4I")
#: struct ptp_sys_offset_extended { unsigned n_samples; clockid/rsv[3]; ts[25][3]; }
PTP_SYS_OFFSET_EXTENDED_S = struct.Struct("=I i 2I" + "qII" * (3 * PTP_MAX_SAMPLES))

PTP_CLOCK_GETCAPS = _ioc(_IOC_READ, PTP_CLK_MAGIC, 1, PTP_CLOCK_CAPS.size)
PTP_SYS_OFFSET_PRECISE = _ioc(
    _IOC_READ | _IOC_WRITE, PTP_CLK_MAGIC, 8, PTP_SYS_OFFSET_PRECISE_S.size
)
PTP_SYS_OFFSET_EXTENDED = _ioc(
    _IOC_READ | _IOC_WRITE, PTP_CLK_MAGIC, 9, PTP_SYS_OFFSET_EXTENDED_S.size
)


def _ptp_time_ns(sec: int, nsec: int) -> int:
    return sec * NS_PER_S + nsec


@dataclass(frozen=True, slots=True)
class PtpClockCaps:
    """``struct ptp_clock_caps``."""

    max_adj_ppb: int
    n_alarm: int
    n_ext_ts: int
    n_per_out: int
    pps: bool
    n_pins: int
    cross_timestamping: bool
    adjust_phase: bool

    @classmethod
    def unpack(cls, data: bytes | bytearray) -> PtpClockCaps:
        v = PTP_CLOCK_CAPS.unpack_from(data)
        return cls(v[0], v[1], v[2], v[3], bool(v[4]), v[5], bool(v[6]), bool(v[7]))

    def pack(self) -> bytes:
        return PTP_CLOCK_CAPS.pack(
            self.max_adj_ppb,
            self.n_alarm,
            self.n_ext_ts,
            self.n_per_out,
            int(self.pps),
            self.n_pins,
            int(self.cross_timestamping),
            int(self.adjust_phase),
            *([0] * 12),
        )


@dataclass(frozen=True, slots=True)
class PreciseOffset:
    """One hardware cross-timestamp: the PHC, REALTIME and MONOTONIC_RAW at the same instant."""

    device_ns: int
    realtime_ns: int
    monoraw_ns: int

    @classmethod
    def unpack(cls, data: bytes | bytearray) -> PreciseOffset:
        v = PTP_SYS_OFFSET_PRECISE_S.unpack_from(data)
        return cls(_ptp_time_ns(v[0], v[1]), _ptp_time_ns(v[3], v[4]), _ptp_time_ns(v[6], v[7]))


@dataclass(frozen=True, slots=True)
class ExtendedSample:
    """System clock before, PHC, system clock after (one PTP_SYS_OFFSET_EXTENDED row)."""

    sys_before_ns: int
    device_ns: int
    sys_after_ns: int

    @property
    def width_ns(self) -> int:
        return self.sys_after_ns - self.sys_before_ns

    @property
    def offset_ns(self) -> int:
        """device - system at the bracket midpoint (floor)."""
        return self.device_ns - (self.sys_before_ns + self.sys_after_ns) // 2


def pack_extended_request(n_samples: int, sys_clockid: int = 0) -> bytearray:
    if not 1 <= n_samples <= PTP_MAX_SAMPLES:
        raise ValueError(f"n_samples {n_samples} outside 1..{PTP_MAX_SAMPLES}")
    buf = bytearray(PTP_SYS_OFFSET_EXTENDED_S.size)
    struct.pack_into("=Ii", buf, 0, n_samples, sys_clockid)
    return buf


def unpack_extended(data: bytes | bytearray, n_samples: int) -> list[ExtendedSample]:
    v = PTP_SYS_OFFSET_EXTENDED_S.unpack_from(data)
    ts = v[4:]
    out = []
    for i in range(n_samples):
        row = ts[9 * i : 9 * i + 9]
        out.append(
            ExtendedSample(
                _ptp_time_ns(row[0], row[1]),
                _ptp_time_ns(row[3], row[4]),
                _ptp_time_ns(row[6], row[7]),
            )
        )
    return out


def phc_path_for_interface(ifname: str, sysfs: Path = Path("/sys/class/net")) -> str:
    """``/dev/ptpN`` of a network interface's hardware clock, from sysfs."""
    ptp_dir = sysfs / ifname / "device" / "ptp"
    try:
        names = sorted(p.name for p in ptp_dir.iterdir() if p.name.startswith("ptp"))
    except OSError:
        names = []
    if not names:
        raise ClockError(f"interface {ifname} has no PTP hardware clock ({ptp_dir})", path=None)
    return f"/dev/{names[0]}"


class PhcClock:
    """A PTP hardware clock, opened read-only. Close it (or use ``with``) when done."""

    def __init__(self, path: str = "/dev/ptp0") -> None:
        self._path = path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ClockError(f"PTP hardware clock {path} does not exist", path=path) from None
        except OSError as e:
            msg = f"cannot open PTP hardware clock {path}: {e.strerror}"
            raise ClockError(msg, path=path) from e
        self._fd: int | None = fd
        self._clockid = fd_to_clockid(fd)
        try:
            res = time.clock_getres(self._clockid)
            time.clock_gettime_ns(self._clockid)
        except OSError as e:
            self.close()
            raise ClockError(
                f"{path} is not a PTP hardware clock (clock_gettime: {e.strerror})", path=path
            ) from e
        self._resolution_ns = max(1, round(res * NS_PER_S))

    def __repr__(self) -> str:
        return f"PhcClock({self._path!r})"

    def __enter__(self) -> PhcClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def path(self) -> str:
        return self._path

    @property
    def name(self) -> str:
        return self._path

    @property
    def clockid(self) -> int:
        return self._clockid

    @property
    def flags(self) -> ClockFlags:
        return ClockFlags.CAN_BE_MASTER | ClockFlags.HARDWARE

    @property
    def resolution_ns(self) -> int:
        return self._resolution_ns

    def _need_fd(self) -> int:
        if self._fd is None:
            raise ClockError(f"PTP hardware clock {self._path} is closed", path=self._path)
        return self._fd

    def now_ns(self) -> int:
        self._need_fd()
        try:
            return time.clock_gettime_ns(self._clockid)
        except OSError as e:
            raise ClockError(f"reading {self._path} failed: {e.strerror}", path=self._path) from e

    def _ioctl(self, request: int, buf: bytearray, what: str) -> bytearray:
        fd = self._need_fd()
        try:
            fcntl.ioctl(fd, request, buf, True)
        except OSError as e:
            raise ClockError(f"{what} on {self._path} failed: {e.strerror}", path=self._path) from e
        return buf

    def caps(self) -> PtpClockCaps:
        buf = self._ioctl(PTP_CLOCK_GETCAPS, bytearray(PTP_CLOCK_CAPS.size), "PTP_CLOCK_GETCAPS")
        return PtpClockCaps.unpack(buf)

    def sys_offset_precise(self) -> PreciseOffset:
        """A hardware cross-timestamp (EOPNOTSUPP → ClockError on most NICs)."""
        buf = self._ioctl(
            PTP_SYS_OFFSET_PRECISE,
            bytearray(PTP_SYS_OFFSET_PRECISE_S.size),
            "PTP_SYS_OFFSET_PRECISE",
        )
        return PreciseOffset.unpack(buf)

    def sys_offset_extended(self, n_samples: int = 5, sys_clockid: int = 0) -> list[ExtendedSample]:
        """``n_samples`` (system, PHC, system) brackets; ``sys_clockid`` 0 = REALTIME.

        MONOTONIC (1) or MONOTONIC_RAW (4) need kernel ≥ 6.13; older kernels reject them.
        """
        buf = pack_extended_request(n_samples, sys_clockid)
        buf = self._ioctl(PTP_SYS_OFFSET_EXTENDED, buf, "PTP_SYS_OFFSET_EXTENDED")
        return unpack_extended(buf, n_samples)
