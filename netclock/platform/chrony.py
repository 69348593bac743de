"""Hand the network time to chronyd through its SOCK refclock (``[publish] chrony-sock``).

chronyd can discipline CLOCK_REALTIME from a local program: with ``refclock SOCK PATH`` in
chrony.conf it creates a Unix datagram socket at PATH and reads fixed-size samples from it.
Each sample says "at system time *tv*, the true time was *offset* seconds ahead". netclock
never adjusts a clock itself; this lets an administrator who wants REALTIME to follow
netclock's time give that job to chronyd, which already knows how to slew it.

The sample is chrony's ``struct sock_sample`` in the host's native layout (chronyd reads it
with the C compiler's layout, and rejects any datagram of another size):

=========  ==========================  ==========================================
offset     C type                      meaning
=========  ==========================  ==========================================
0          ``struct timeval tv``       system time (REALTIME) of the measurement
16         ``double offset``           true time minus system time, seconds
24         ``int pulse``               0: a full time sample (1: a PPS edge)
28         ``int leap``                0 none, 1 insert, 2 delete at the end of the day
32         ``int _pad``                0
36         ``int magic``               0x534f434b ("SOCK")
=========  ==========================  ==========================================

(offsets for LP64 Linux, where ``struct timeval`` is two ``long``; the struct format below
is native, so it matches the host's chronyd on other ABIs too.)

chronyd must be started first (it creates the socket); until it is, sends fail quietly and
are counted, and the daemon logs the first failure and the recovery once each.
"""

from __future__ import annotations

import logging
import socket
import struct
from dataclasses import dataclass

from netclock.time import NS_PER_S

__all__ = [
    "SOCK_MAGIC",
    "SOCK_SAMPLE",
    "ChronySockFeeder",
    "SockSample",
    "SockSampleParseError",
]

log = logging.getLogger("netclock.chrony")

SOCK_MAGIC = 0x534F434B
#: ``struct sock_sample`` in native layout: timeval (2 × long), double, 4 × int.
SOCK_SAMPLE = struct.Struct("@lldiiii")


class SockSampleParseError(ValueError):
    """A datagram that is not a chrony SOCK refclock sample."""


@dataclass(frozen=True, slots=True)
class SockSample:
    """One SOCK refclock sample: at REALTIME ``system_ns`` the true time was ``offset_ns`` ahead.

    The system time travels as a ``timeval`` (µs); the offset as a double (seconds). Because
    REALTIME and network time advance at the same rate over the truncated sub-µs part, the
    offset needs no correction for that truncation.
    """

    system_ns: int
    offset_ns: int
    leap: int = 0
    pulse: bool = False

    def pack(self) -> bytes:
        sec, rem = divmod(self.system_ns, NS_PER_S)
        return SOCK_SAMPLE.pack(
            sec, rem // 1000, self.offset_ns / NS_PER_S, int(self.pulse), self.leap, 0, SOCK_MAGIC
        )

    @classmethod
    def unpack(cls, data: bytes) -> SockSample:
        """Parse a datagram (the inverse of :meth:`pack`, to µs / double precision)."""
        if len(data) != SOCK_SAMPLE.size:
            raise SockSampleParseError(f"sample is {len(data)} bytes, expected {SOCK_SAMPLE.size}")
        sec, usec, off, pulse, leap, _pad, magic = SOCK_SAMPLE.unpack(data)
        if magic != SOCK_MAGIC:
            raise SockSampleParseError(f"bad magic {magic:#x}")
        if not 0 <= usec < 1_000_000:
            raise SockSampleParseError(f"tv_usec {usec} out of range")
        if not abs(off) < 1e9:  # also rejects NaN
            raise SockSampleParseError(f"offset {off!r} s is not a finite time")
        if leap not in (0, 1, 2):
            raise SockSampleParseError(f"leap {leap} not in 0..2")
        return cls(sec * NS_PER_S + usec * 1000, round(off * NS_PER_S), leap, pulse != 0)


class ChronySockFeeder:
    """Sends :class:`SockSample` datagrams to chronyd's SOCK refclock socket at ``path``.

    Never blocks: a full socket buffer drops the sample. Counters: :attr:`sent`, :attr:`failed`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.sent = 0
        self.failed = 0
        self._failing = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def send(self, sample: SockSample) -> bool:
        try:
            self._sock.sendto(sample.pack(), self.path)
        except OSError as e:
            self.failed += 1
            if not self._failing:
                self._failing = True
                log.warning(
                    "chrony SOCK refclock %s: %s (is chronyd running with "
                    "'refclock SOCK %s'?); retrying",
                    self.path,
                    e.strerror or e,
                    self.path,
                )
            return False
        self.sent += 1
        if self._failing:
            self._failing = False
            log.info("chrony SOCK refclock %s: feeding again", self.path)
        return True

    def close(self) -> None:
        self._sock.close()
