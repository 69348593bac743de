"""Kernel timestamping constants and pure parsers for the control messages that carry stamps.

Everything here is pure: bytes in, values out. No socket is opened and no clock is read, so the
parsers can be tested on crafted bytes. The socket plumbing that produces these bytes lives in
:mod:`netclock.platform.timestamping`.

Python 3.11's :mod:`socket` module lacks the timestamping constants; they are defined once here
(values from the Linux UAPI headers ``linux/net_tstamp.h``, ``asm-generic/socket.h``,
``linux/errqueue.h``, ``linux/in.h``, ``linux/in6.h``, ``linux/sockios.h``; the unit tests compare
them with the headers when those are installed).

Layouts (64-bit Linux):

* ``struct scm_timestamping { struct timespec ts[3]; }``: 48 bytes. ``ts[0]`` is the software
  stamp (CLOCK_REALTIME), ``ts[1]`` is unused (always zero), ``ts[2]`` the raw hardware stamp
  (the NIC's PHC timescale). A zero timespec means "no stamp of that kind".
* ``struct sock_extended_err { u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad;
  u32 ee_info; u32 ee_data; }``: 16 bytes, possibly followed by an offender address. For a TX
  timestamp ``ee_errno == ENOMSG``, ``ee_origin == SO_EE_ORIGIN_TIMESTAMPING``, ``ee_info`` is
  the stamp type (``SCM_TSTAMP_SND`` for "left the stack") and ``ee_data`` the ``OPT_ID`` key.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterable
from dataclasses import dataclass

# --- socket option levels (these exist in every Python socket module, repeated for purity) ---
SOL_SOCKET = 1
SOL_IP = 0
SOL_IPV6 = 41

# --- asm-generic/socket.h (x86_64, arm64: time_t is 64-bit, so the _OLD numbers apply) ---
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_TIMESTAMPING = 37
SCM_TIMESTAMPING = SO_TIMESTAMPING
SO_SELECT_ERR_QUEUE = 45
SO_RCVBUFFORCE = 33
SCM_TIMESTAMPING_OPT_STATS = 54
SCM_TIMESTAMPING_PKTINFO = 58
#: Linux 6.13+: per-send OPT_ID key (a u32 cmsg); older kernels reject it with EINVAL.
#: Not in older installed headers; value from asm-generic/socket.h of Linux 6.13+.
SCM_TS_OPT_ID = 81

# --- linux/in.h, linux/in6.h: the error-queue cmsg types carrying sock_extended_err ---
IP_RECVERR = 11
IPV6_RECVERR = 25

# --- linux/net_tstamp.h: SOF_TIMESTAMPING_* ---
SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_SYS_HARDWARE = 1 << 5
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_TX_SCHED = 1 << 8
SOF_TIMESTAMPING_TX_ACK = 1 << 9
SOF_TIMESTAMPING_OPT_CMSG = 1 << 10
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_STATS = 1 << 12
SOF_TIMESTAMPING_OPT_PKTINFO = 1 << 13
SOF_TIMESTAMPING_OPT_TX_SWHW = 1 << 14
SOF_TIMESTAMPING_BIND_PHC = 1 << 15
SOF_TIMESTAMPING_TX_RECORD_MASK = (
    SOF_TIMESTAMPING_TX_HARDWARE
    | SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_TX_SCHED
    | SOF_TIMESTAMPING_TX_ACK
)

#: Software RX+TX stamps, reported, keyed by OPT_ID, error queue without the packet copy.
SOFTWARE_FLAGS = (
    SOF_TIMESTAMPING_RX_SOFTWARE
    | SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)
#: Hardware RX+TX stamps on top of the software ones (needs SIOCSHWTSTAMP on the interface).
HARDWARE_FLAGS = (
    SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE
)

# --- linux/errqueue.h ---
SO_EE_ORIGIN_NONE = 0
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
SO_EE_ORIGIN_TIMESTAMPING = 4  # == SO_EE_ORIGIN_TXSTATUS
SCM_TSTAMP_SND = 0
SCM_TSTAMP_SCHED = 1
SCM_TSTAMP_ACK = 2

# --- linux/sockios.h, linux/net_tstamp.h (hwtstamp_config), linux/ethtool.h ---
SIOCETHTOOL = 0x8946
SIOCSHWTSTAMP = 0x89B0
SIOCGHWTSTAMP = 0x89B1
ETHTOOL_GET_TS_INFO = 0x00000041
HWTSTAMP_TX_OFF = 0
HWTSTAMP_TX_ON = 1
HWTSTAMP_FILTER_NONE = 0
HWTSTAMP_FILTER_ALL = 1
HWTSTAMP_FILTER_PTP_V2_EVENT = 12

NS_PER_S = 1_000_000_000

_TIMESPEC3 = struct.Struct("=qqqqqq")
_EXT_ERR = struct.Struct("=IBBBBII")

SCM_TIMESTAMPING_SIZE = _TIMESPEC3.size  # 48
SOCK_EXTENDED_ERR_SIZE = _EXT_ERR.size  # 16


class CmsgError(ValueError):
    """A control message the kernel handed over is malformed (short, or out-of-range fields)."""


@dataclass(frozen=True, slots=True)
class ScmTimestamping:
    """Decoded ``struct scm_timestamping``; ``None`` where the kernel left the timespec zero."""

    software_ns: int | None
    """``ts[0]``: software stamp, CLOCK_REALTIME nanoseconds."""
    hardware_ns: int | None
    """``ts[2]``: raw hardware stamp, in the NIC's PHC timescale."""


@dataclass(frozen=True, slots=True)
class ExtendedError:
    """Decoded ``struct sock_extended_err`` (the offender address, if any, is not decoded)."""

    ee_errno: int
    ee_origin: int
    ee_type: int
    ee_code: int
    ee_info: int
    ee_data: int

    @property
    def is_timestamp(self) -> bool:
        """True when this entry reports a TX timestamp (not an ICMP or local error)."""
        return self.ee_origin == SO_EE_ORIGIN_TIMESTAMPING and self.ee_errno == errno.ENOMSG


@dataclass(frozen=True, slots=True)
class Ancillary:
    """What one ``recvmsg`` call's control messages say about timestamps."""

    timestamping: ScmTimestamping | None = None
    error: ExtendedError | None = None

    @property
    def tx_key(self) -> int | None:
        """The ``OPT_ID`` key of a TX timestamp (``None`` unless this is a TX stamp report)."""
        if self.error is not None and self.error.is_timestamp:
            return self.error.ee_data
        return None

    @property
    def tstamp_type(self) -> int | None:
        """``SCM_TSTAMP_SND``/``SCHED``/``ACK`` for a TX stamp report, else ``None``."""
        if self.error is not None and self.error.is_timestamp:
            return self.error.ee_info
        return None


def _timespec_ns(sec: int, nsec: int, which: str) -> int | None:
    if sec == 0 and nsec == 0:
        return None
    if not 0 <= nsec < NS_PER_S:
        raise CmsgError(f"scm_timestamping {which}: tv_nsec {nsec} outside 0..999999999")
    return sec * NS_PER_S + nsec


def parse_scm_timestamping(data: bytes) -> ScmTimestamping:
    """Decode the 48-byte payload of a ``SCM_TIMESTAMPING`` cmsg. Raises :class:`CmsgError`."""
    if len(data) < SCM_TIMESTAMPING_SIZE:
        raise CmsgError(f"scm_timestamping needs {SCM_TIMESTAMPING_SIZE} bytes, got {len(data)}")
    s0, n0, _s1, _n1, s2, n2 = _TIMESPEC3.unpack_from(data)
    return ScmTimestamping(_timespec_ns(s0, n0, "ts[0]"), _timespec_ns(s2, n2, "ts[2]"))


def parse_extended_err(data: bytes) -> ExtendedError:
    """Decode a ``sock_extended_err`` (IP_RECVERR/IPV6_RECVERR cmsg). Raises :class:`CmsgError`."""
    if len(data) < SOCK_EXTENDED_ERR_SIZE:
        raise CmsgError(f"sock_extended_err needs {SOCK_EXTENDED_ERR_SIZE} bytes, got {len(data)}")
    ee_errno, origin, typ, code, _pad, info, edata = _EXT_ERR.unpack_from(data)
    return ExtendedError(ee_errno, origin, typ, code, info, edata)


def parse_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> Ancillary:
    """Decode the timestamp-related cmsgs of one ``recvmsg`` result; unknown cmsgs are skipped.

    Raises :class:`CmsgError` (only) when a timestamp cmsg is malformed.
    """
    ts: ScmTimestamping | None = None
    err: ExtendedError | None = None
    for level, typ, data in ancdata:
        if level == SOL_SOCKET and typ == SCM_TIMESTAMPING:
            ts = parse_scm_timestamping(data)
        elif (level == SOL_IP and typ == IP_RECVERR) or (level == SOL_IPV6 and typ == IPV6_RECVERR):
            err = parse_extended_err(data)
    return Ancillary(ts, err)


def software_stamp_only(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The software stamp (CLOCK_REALTIME ns) when ``ancdata`` is exactly one well-formed
    ``SCM_TIMESTAMPING`` cmsg holding a software stamp and no hardware one: what every
    received datagram carries on a software-stamping socket. ``None`` otherwise: then
    :func:`parse_ancillary` says what there is (or raises). A fast path, not a second parser:
    it accepts nothing that :func:`parse_ancillary` would decode differently."""
    if len(ancdata) != 1:
        return None
    level, typ, data = ancdata[0]
    if level != SOL_SOCKET or typ != SCM_TIMESTAMPING or len(data) < SCM_TIMESTAMPING_SIZE:
        return None
    s0, n0, _s1, _n1, s2, n2 = _TIMESPEC3.unpack_from(data)
    if s2 or n2 or not (s0 or n0) or not 0 <= n0 < NS_PER_S:
        return None
    ns: int = s0 * NS_PER_S + n0
    return ns


def tx_software_stamp(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
    """``(OPT_ID key, software stamp)`` when ``ancdata`` is exactly a TX timestamp report of a
    software-stamping socket: one well-formed ``SCM_TIMESTAMPING`` cmsg holding a software stamp
    and no hardware one, and one ``IP_RECVERR``/``IPV6_RECVERR`` saying it is a timestamp
    (``ENOMSG`` from ``SO_EE_ORIGIN_TIMESTAMPING``), in either order. ``None`` otherwise. Like
    :func:`software_stamp_only`, a fast path that accepts nothing :func:`parse_ancillary`
    would decode differently."""
    if len(ancdata) != 2:
        return None
    ts = err = None
    for level, typ, data in ancdata:
        if level == SOL_SOCKET and typ == SCM_TIMESTAMPING:
            ts = data
        elif (level == SOL_IP and typ == IP_RECVERR) or (level == SOL_IPV6 and typ == IPV6_RECVERR):
            err = data
        else:
            return None
    if ts is None or err is None or len(ts) < SCM_TIMESTAMPING_SIZE:
        return None
    if len(err) < SOCK_EXTENDED_ERR_SIZE:
        return None
    ee_errno, origin, _typ, _code, _pad, _info, key = _EXT_ERR.unpack_from(err)
    if origin != SO_EE_ORIGIN_TIMESTAMPING or ee_errno != errno.ENOMSG:
        return None
    s0, n0, _s1, _n1, s2, n2 = _TIMESPEC3.unpack_from(ts)
    if s2 or n2 or not (s0 or n0) or not 0 <= n0 < NS_PER_S:
        return None
    sw: int = s0 * NS_PER_S + n0
    return key, sw


def pack_scm_timestamping(software_ns: int | None, hardware_ns: int | None = None) -> bytes:
    """Build the bytes the kernel would put in a ``SCM_TIMESTAMPING`` cmsg (for tests/tools)."""

    def split(ns: int | None) -> tuple[int, int]:
        return (0, 0) if ns is None else divmod(ns, NS_PER_S)

    return _TIMESPEC3.pack(*split(software_ns), 0, 0, *split(hardware_ns))


def pack_extended_err(
    ee_errno: int = errno.ENOMSG,
    ee_origin: int = SO_EE_ORIGIN_TIMESTAMPING,
    ee_type: int = 0,
    ee_code: int = 0,
    ee_info: int = SCM_TSTAMP_SND,
    ee_data: int = 0,
) -> bytes:
    """Build a ``sock_extended_err`` as the kernel lays it out (for tests/tools)."""
    return _EXT_ERR.pack(ee_errno, ee_origin, ee_type, ee_code, 0, ee_info, ee_data)
