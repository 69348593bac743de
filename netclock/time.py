"""Time types in integer nanoseconds, and their wire forms.

Pure module: no clock reads, no I/O. Every timestamp in netclock is an ``int`` of
nanoseconds; the classes here convert between that and the forms the protocols put on
the wire:

* :class:`PtpTimestamp`: IEEE 1588-2019 §5.3.3, 48-bit seconds + 32-bit nanoseconds.
* :class:`TimeInterval`: IEEE 1588-2019 §5.3.2, signed 64-bit nanoseconds scaled by 2^16.
* :class:`NtpTimestamp`: RFC 5905 §6, 32-bit seconds + 32-bit fraction, era-aware.
* :class:`NtpShort`: RFC 5905 §6, unsigned 16.16 seconds (root delay, root dispersion).
* :class:`Timespec`: ``struct timespec`` (tv_sec, tv_nsec), as the kernel hands it over.

Round trips ``ns -> wire -> ns`` are exact wherever the wire form can hold the value. A value
that does not fit raises :class:`TimeRangeError`, which names the type and the range.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_US = 1_000

#: Seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET_S = 2_208_988_800
#: Length of one NTP era (2^32 s, about 136 years).
NTP_ERA_S = 1 << 32

#: TAI - UTC in force since 2017-01-01 (IERS Bulletin C). PTP's default currentUtcOffset.
TAI_UTC_OFFSET_S = 37

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT48_MAX = (1 << 48) - 1
UINT32_MAX = (1 << 32) - 1


class TimeRangeError(ValueError):
    """A time value does not fit the form it is converted to."""


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of nanoseconds, got {type(value).__name__}")
    return value


def _div_round(num: int, den: int) -> int:
    """Integer num/den rounded to nearest, ties away from zero (den > 0)."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


# ---------------------------------------------------------------------------------------------
# PTP
# ---------------------------------------------------------------------------------------------

_PTP_TS = struct.Struct("!HII")  # secondsField high 16, low 32, nanosecondsField


@dataclass(frozen=True, slots=True, order=True)
class PtpTimestamp:
    """IEEE 1588-2019 §5.3.3 Timestamp: UInteger48 secondsField, UInteger32 nanosecondsField.

    The value is non-negative nanoseconds since the PTP epoch (1970-01-01 00:00:00 TAI).
    """

    seconds: int
    nanoseconds: int

    WIRE_SIZE: ClassVar[int] = 10
    MAX_NS: ClassVar[int] = UINT48_MAX * NS_PER_S + NS_PER_S - 1

    def __post_init__(self) -> None:
        s, n = self.seconds, self.nanoseconds
        if type(s) is int and type(n) is int and 0 <= s <= UINT48_MAX and 0 <= n < NS_PER_S:
            return  # the common case, without the calls below
        if not 0 <= _check_int("seconds", self.seconds) <= UINT48_MAX:
            raise TimeRangeError(f"PtpTimestamp seconds {self.seconds} outside 0..2^48-1")
        if not 0 <= _check_int("nanoseconds", self.nanoseconds) < NS_PER_S:
            raise TimeRangeError(
                f"PtpTimestamp nanoseconds {self.nanoseconds} outside 0..999999999"
            )

    @classmethod
    def from_ns(cls, ns: int) -> PtpTimestamp:
        _check_int("ns", ns)
        if not 0 <= ns <= cls.MAX_NS:
            raise TimeRangeError(f"PtpTimestamp cannot hold {ns} ns (range 0..{cls.MAX_NS})")
        s, n = divmod(ns, NS_PER_S)
        return cls(s, n)

    def to_ns(self) -> int:
        return self.seconds * NS_PER_S + self.nanoseconds

    def pack(self) -> bytes:
        return _PTP_TS.pack(self.seconds >> 32, self.seconds & UINT32_MAX, self.nanoseconds)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> PtpTimestamp:
        """Decode 10 bytes. Raises :class:`TimeRangeError` for nanoseconds ≥ 10^9."""
        if len(data) - offset < cls.WIRE_SIZE:
            raise TimeRangeError(f"PtpTimestamp needs 10 bytes, got {len(data) - offset}")
        hi, lo, ns = _PTP_TS.unpack_from(data, offset)
        return cls((hi << 32) | lo, ns)


_TI = struct.Struct("!q")


@dataclass(frozen=True, slots=True, order=True)
class TimeInterval:
    """IEEE 1588-2019 §5.3.2 TimeInterval: Integer64 of nanoseconds multiplied by 2^16.

    ``scaled_ns`` is the raw field. :meth:`to_ns` rounds to the nearest ns;
    :meth:`to_fraction` is exact.
    """

    scaled_ns: int

    WIRE_SIZE: ClassVar[int] = 8
    #: Largest whole-ns magnitude that can be held.
    MAX_NS: ClassVar[int] = INT64_MAX >> 16
    MIN_NS: ClassVar[int] = INT64_MIN >> 16

    def __post_init__(self) -> None:
        v = self.scaled_ns
        if type(v) is int and INT64_MIN <= v <= INT64_MAX:
            return
        if not INT64_MIN <= _check_int("scaled_ns", self.scaled_ns) <= INT64_MAX:
            raise TimeRangeError(f"TimeInterval scaled value {self.scaled_ns} outside int64")

    @classmethod
    def from_ns(cls, ns: int, sub_ns: Fraction | int = 0) -> TimeInterval:
        """From whole ns plus an optional fraction of a ns (rounded to 2^-16 ns)."""
        _check_int("ns", ns)
        scaled = (ns << 16) + round(Fraction(sub_ns) * 65536)
        if not INT64_MIN <= scaled <= INT64_MAX:
            raise TimeRangeError(
                f"TimeInterval cannot hold {ns} ns (range {cls.MIN_NS}..{cls.MAX_NS})"
            )
        return cls(scaled)

    def to_ns(self) -> int:
        """Nearest whole nanosecond (ties away from zero)."""
        return _div_round(self.scaled_ns, 1 << 16)

    def to_fraction(self) -> Fraction:
        return Fraction(self.scaled_ns, 1 << 16)

    def pack(self) -> bytes:
        return _TI.pack(self.scaled_ns)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> TimeInterval:
        if len(data) - offset < cls.WIRE_SIZE:
            raise TimeRangeError(f"TimeInterval needs 8 bytes, got {len(data) - offset}")
        return cls(_TI.unpack_from(data, offset)[0])


# ---------------------------------------------------------------------------------------------
# NTP
# ---------------------------------------------------------------------------------------------

_NTP_TS = struct.Struct("!II")
_NTP_SHORT = struct.Struct("!HH")


@dataclass(frozen=True, slots=True, order=True)
class NtpTimestamp:
    """RFC 5905 §6 NTP Timestamp Format: 32-bit seconds and 32-bit fraction.

    The wire form carries no era. :meth:`from_unix_ns` accepts any time in eras 0 and up and
    drops the era; :meth:`to_unix_ns` needs a ``pivot`` (a Unix-ns time known to be within
    68 years of the true value, e.g. the local clock) and returns the value in the era closest
    to it, so 2036's rollover from era 0 to era 1 is handled. ``to_unix_ns(era=...)`` picks
    the era explicitly. The all-zero timestamp means "unknown" (RFC 5905 §6) and is kept as is.
    """

    seconds: int
    fraction: int

    WIRE_SIZE: ClassVar[int] = 8

    def __post_init__(self) -> None:
        if not 0 <= _check_int("seconds", self.seconds) <= UINT32_MAX:
            raise TimeRangeError(f"NtpTimestamp seconds {self.seconds} outside 0..2^32-1")
        if not 0 <= _check_int("fraction", self.fraction) <= UINT32_MAX:
            raise TimeRangeError(f"NtpTimestamp fraction {self.fraction} outside 0..2^32-1")

    @property
    def is_zero(self) -> bool:
        return self.seconds == 0 and self.fraction == 0

    @classmethod
    def from_unix_ns(cls, ns: int) -> NtpTimestamp:
        """Encode Unix-epoch ns (era dropped). Round trip with the matching era is exact."""
        _check_int("ns", ns)
        total = ns + NTP_UNIX_OFFSET_S * NS_PER_S
        if total < 0:
            raise TimeRangeError(f"{ns} ns is before the NTP prime epoch 1900-01-01")
        s, sub = divmod(total, NS_PER_S)
        frac = _div_round(sub << 32, NS_PER_S)
        if frac > UINT32_MAX:  # cannot happen for sub < 10^9, kept for clarity
            s, frac = s + 1, 0
        return cls(s & UINT32_MAX, frac)

    @staticmethod
    def era_of_unix_ns(ns: int) -> int:
        return (ns + NTP_UNIX_OFFSET_S * NS_PER_S) // (NTP_ERA_S * NS_PER_S)

    def ntp_ns(self) -> int:
        """Nanoseconds since the start of this timestamp's era (nearest ns)."""
        return self.seconds * NS_PER_S + _div_round(self.fraction * NS_PER_S, 1 << 32)

    def to_unix_ns(self, pivot: int | None = None, *, era: int | None = None) -> int:
        """Decode to Unix-epoch ns, in ``era`` or in the era that puts it closest to ``pivot``."""
        if (pivot is None) == (era is None):
            raise TypeError("give exactly one of pivot (Unix ns) or era")
        base = self.ntp_ns() - NTP_UNIX_OFFSET_S * NS_PER_S
        era_ns = NTP_ERA_S * NS_PER_S
        if era is not None:
            return base + era * era_ns
        assert pivot is not None
        k = _div_round(pivot - base, era_ns)
        return base + k * era_ns

    def to_fraction_seconds(self) -> Fraction:
        return self.seconds + Fraction(self.fraction, 1 << 32)

    def pack(self) -> bytes:
        return _NTP_TS.pack(self.seconds, self.fraction)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> NtpTimestamp:
        if len(data) - offset < cls.WIRE_SIZE:
            raise TimeRangeError(f"NtpTimestamp needs 8 bytes, got {len(data) - offset}")
        s, f = _NTP_TS.unpack_from(data, offset)
        return cls(s, f)

    def to_u64(self) -> int:
        return (self.seconds << 32) | self.fraction

    @classmethod
    def from_u64(cls, value: int) -> NtpTimestamp:
        if not 0 <= value < 1 << 64:
            raise TimeRangeError(f"NtpTimestamp u64 {value} outside 0..2^64-1")
        return cls(value >> 32, value & UINT32_MAX)


@dataclass(frozen=True, slots=True, order=True)
class NtpShort:
    """RFC 5905 §6 NTP Short Format: unsigned 16-bit seconds, 16-bit fraction."""

    raw: int

    WIRE_SIZE: ClassVar[int] = 4
    MAX_NS: ClassVar[int] = ((1 << 32) - 1) * NS_PER_S >> 16

    def __post_init__(self) -> None:
        if not 0 <= _check_int("raw", self.raw) <= UINT32_MAX:
            raise TimeRangeError(f"NtpShort raw {self.raw} outside 0..2^32-1")

    @classmethod
    def from_ns(cls, ns: int) -> NtpShort:
        """Nearest 2^-16 s. Negative or too large values raise (callers clamp if they mean to)."""
        _check_int("ns", ns)
        raw = _div_round(ns << 16, NS_PER_S) if ns >= 0 else -1
        if not 0 <= raw <= UINT32_MAX:
            raise TimeRangeError(f"NtpShort cannot hold {ns} ns (range 0..{cls.MAX_NS})")
        return cls(raw)

    @classmethod
    def from_ns_clamped(cls, ns: int) -> NtpShort:
        return cls(min(max(_div_round(max(ns, 0) << 16, NS_PER_S), 0), UINT32_MAX))

    def to_ns(self) -> int:
        return _div_round(self.raw * NS_PER_S, 1 << 16)

    def pack(self) -> bytes:
        return struct.pack("!I", self.raw)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> NtpShort:
        if len(data) - offset < cls.WIRE_SIZE:
            raise TimeRangeError(f"NtpShort needs 4 bytes, got {len(data) - offset}")
        return cls(struct.unpack_from("!I", data, offset)[0])


# ---------------------------------------------------------------------------------------------
# timespec
# ---------------------------------------------------------------------------------------------

_TIMESPEC = struct.Struct("@qq")  # 64-bit time_t and long on the Linux targets we support


@dataclass(frozen=True, slots=True, order=True)
class Timespec:
    """``struct timespec``: tv_sec (time_t, signed 64-bit) and tv_nsec in 0..999999999.

    Negative times are normalised as the kernel does: tv_sec is floored and tv_nsec is
    non-negative (``-1 ns`` is ``(-1, 999999999)``).
    """

    tv_sec: int
    tv_nsec: int

    WIRE_SIZE: ClassVar[int] = _TIMESPEC.size

    def __post_init__(self) -> None:
        if not INT64_MIN <= _check_int("tv_sec", self.tv_sec) <= INT64_MAX:
            raise TimeRangeError(f"timespec tv_sec {self.tv_sec} outside int64")
        if not 0 <= _check_int("tv_nsec", self.tv_nsec) < NS_PER_S:
            raise TimeRangeError(f"timespec tv_nsec {self.tv_nsec} outside 0..999999999")

    @classmethod
    def from_ns(cls, ns: int) -> Timespec:
        _check_int("ns", ns)
        s, n = divmod(ns, NS_PER_S)
        return cls(s, n)

    def to_ns(self) -> int:
        return self.tv_sec * NS_PER_S + self.tv_nsec

    def pack(self) -> bytes:
        return _TIMESPEC.pack(self.tv_sec, self.tv_nsec)

    @classmethod
    def unpack(cls, data: bytes | memoryview, offset: int = 0) -> Timespec:
        if len(data) - offset < cls.WIRE_SIZE:
            raise TimeRangeError(f"timespec needs {cls.WIRE_SIZE} bytes, got {len(data) - offset}")
        s, n = _TIMESPEC.unpack_from(data, offset)
        return cls(s, n)


def format_ns(ns: int) -> str:
    """Human-readable signed duration: ``+1.234567 ms``."""
    sign = "-" if ns < 0 else "+"
    a = abs(ns)
    if a < NS_PER_US:
        return f"{sign}{a} ns"
    if a < NS_PER_MS:
        return f"{sign}{a / NS_PER_US:.3f} us"
    if a < NS_PER_S:
        return f"{sign}{a / NS_PER_MS:.6f} ms"
    return f"{sign}{a / NS_PER_S:.9f} s"
