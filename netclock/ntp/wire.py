"""NTPv4 packet codec (RFC 5905 §7.3), with extension fields (RFC 7822) and the legacy MAC.

Pure: bytes in, typed packet out, and back. :meth:`NtpPacket.unpack` raises only
:class:`ParseError`; :meth:`NtpPacket.pack` re-encodes a parsed packet byte for byte.

Layout after the 48-byte header (RFC 7822 §7.5):

* ``4`` bytes left: a crypto-NAK (a MAC that holds only a key id, RFC 5905 §7.4).
* ``20`` or ``24`` bytes left: a legacy MAC (key id + 16-byte MD5 / 20-byte SHA-1 digest).
* ``28`` bytes left: an extension field if its own length field says exactly 28, otherwise a
  MAC with a 24-byte digest.
* anything larger: an extension field (type, length, value; length a multiple of 4 and at least
  16), then the rest is parsed the same way. Unknown field types are kept, not interpreted.

NTP versions 1-3 carry no extension fields: what follows their header must be a MAC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from netclock.time import NtpShort, NtpTimestamp


class ParseError(ValueError):
    """The bytes are not a well-formed NTP packet."""


class Leap(IntEnum):
    """RFC 5905 §7.3 leap indicator."""

    NO_WARNING = 0
    INSERT_SECOND = 1
    DELETE_SECOND = 2
    UNSYNCHRONIZED = 3


class Mode(IntEnum):
    """RFC 5905 §7.3 association mode."""

    RESERVED = 0
    SYMMETRIC_ACTIVE = 1
    SYMMETRIC_PASSIVE = 2
    CLIENT = 3
    SERVER = 4
    BROADCAST = 5
    CONTROL = 6
    PRIVATE = 7


#: Kiss codes this implementation acts on (RFC 5905 §7.4).
KISS_RATE = b"RATE"
KISS_DENY = b"DENY"
KISS_RSTR = b"RSTR"

#: Digest lengths accepted in a MAC (MD5/AES-CMAC 16, SHA-1 20, 24 the RFC 7822 maximum).
MAC_DIGEST_LENGTHS = (16, 20, 24)
HEADER_SIZE = 48
EF_MIN_SIZE = 16

_HEADER = struct.Struct("!BBbbII4sQQQQ")
_EF_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class ExtensionField:
    """RFC 7822 extension field. ``value`` holds the bytes after the 4-byte type/length
    header, padding included, so the field re-encodes exactly."""

    field_type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.field_type <= 0xFFFF:
            raise ValueError(f"extension field type {self.field_type} outside 0..65535")
        size = 4 + len(self.value)
        if size % 4 or size < EF_MIN_SIZE or size > 0xFFFF:
            raise ValueError(f"extension field length {size} must be a multiple of 4, 16..65532")

    @classmethod
    def padded(cls, field_type: int, body: bytes, min_size: int = EF_MIN_SIZE) -> ExtensionField:
        """A field holding ``body`` zero-padded to a multiple of 4 and at least ``min_size``."""
        size = max(min_size, 4 + len(body))
        size += -size % 4
        return cls(field_type, body + bytes(size - 4 - len(body)))

    @property
    def size(self) -> int:
        return 4 + len(self.value)

    def pack(self) -> bytes:
        return _EF_HEADER.pack(self.field_type, self.size) + self.value


@dataclass(frozen=True, slots=True)
class Mac:
    """Legacy message authentication code: 32-bit key id and a digest (empty = crypto-NAK)."""

    key_id: int
    digest: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise ValueError(f"MAC key id {self.key_id} outside 0..2^32-1")
        if self.digest and len(self.digest) not in MAC_DIGEST_LENGTHS:
            raise ValueError(f"MAC digest length {len(self.digest)} not in {MAC_DIGEST_LENGTHS}")

    @property
    def is_crypto_nak(self) -> bool:
        return not self.digest

    @property
    def size(self) -> int:
        return 4 + len(self.digest)

    def pack(self) -> bytes:
        return struct.pack("!I", self.key_id) + self.digest


_ZERO_TS = NtpTimestamp(0, 0)
_ZERO_SHORT = NtpShort(0)


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """One NTP packet (RFC 5905 §7.3 figure 8). Field names follow the RFC.

    ``poll`` and ``precision`` are signed log2 seconds. ``reference_id`` is the raw 4 bytes
    (a kiss code when ``stratum == 0``, an ASCII refclock name at stratum 1, an IPv4 address or
    IPv6 hash above). Timestamps are era-less :class:`NtpTimestamp` values.
    """

    leap: Leap = Leap.NO_WARNING
    version: int = 4
    mode: Mode = Mode.CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: NtpShort = _ZERO_SHORT
    root_dispersion: NtpShort = _ZERO_SHORT
    reference_id: bytes = b"\x00\x00\x00\x00"
    reference_ts: NtpTimestamp = _ZERO_TS
    origin_ts: NtpTimestamp = _ZERO_TS
    receive_ts: NtpTimestamp = _ZERO_TS
    transmit_ts: NtpTimestamp = _ZERO_TS
    extensions: tuple[ExtensionField, ...] = field(default=())
    mac: Mac | None = None

    HEADER_SIZE: ClassVar[int] = HEADER_SIZE

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 7:
            raise ValueError(f"version {self.version} outside 0..7")
        if not 0 <= self.stratum <= 255:
            raise ValueError(f"stratum {self.stratum} outside 0..255")
        if not -128 <= self.poll <= 127 or not -128 <= self.precision <= 127:
            raise ValueError("poll and precision are signed 8-bit")
        if len(self.reference_id) != 4:
            raise ValueError("reference_id must be 4 bytes")
        if self.extensions and self.version < 4:
            raise ValueError("extension fields need NTP version 4")

    # -- KoD ---------------------------------------------------------------------------------

    @property
    def is_kod(self) -> bool:
        """A kiss-o'-death packet: a server response with stratum 0 (RFC 5905 §7.4)."""
        return self.stratum == 0 and self.mode in (Mode.SERVER, Mode.SYMMETRIC_PASSIVE)

    @property
    def kiss_code(self) -> bytes | None:
        """The 4-byte ASCII kiss code of a KoD packet, else None."""
        return self.reference_id if self.is_kod else None

    # -- codec -------------------------------------------------------------------------------

    def pack(self) -> bytes:
        head = _HEADER.pack(
            (int(self.leap) << 6) | (self.version << 3) | int(self.mode),
            self.stratum,
            self.poll,
            self.precision,
            self.root_delay.raw,
            self.root_dispersion.raw,
            self.reference_id,
            self.reference_ts.to_u64(),
            self.origin_ts.to_u64(),
            self.receive_ts.to_u64(),
            self.transmit_ts.to_u64(),
        )
        parts = [head, *(ef.pack() for ef in self.extensions)]
        if self.mac is not None:
            parts.append(self.mac.pack())
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> NtpPacket:
        """Decode one packet. Raises :class:`ParseError` and nothing else."""
        buf = bytes(data)
        if len(buf) < HEADER_SIZE:
            raise ParseError(f"NTP packet needs at least {HEADER_SIZE} bytes, got {len(buf)}")
        (lvm, stratum, poll, precision, rdelay, rdisp, refid, ref, org, rec, xmt) = (
            _HEADER.unpack_from(buf, 0)
        )
        version = (lvm >> 3) & 7
        extensions, mac = _parse_trailer(buf, version)
        return cls(
            leap=Leap(lvm >> 6),
            version=version,
            mode=Mode(lvm & 7),
            stratum=stratum,
            poll=poll,
            precision=precision,
            root_delay=NtpShort(rdelay),
            root_dispersion=NtpShort(rdisp),
            reference_id=refid,
            reference_ts=NtpTimestamp.from_u64(ref),
            origin_ts=NtpTimestamp.from_u64(org),
            receive_ts=NtpTimestamp.from_u64(rec),
            transmit_ts=NtpTimestamp.from_u64(xmt),
            extensions=extensions,
            mac=mac,
        )


def _parse_trailer(buf: bytes, version: int) -> tuple[tuple[ExtensionField, ...], Mac | None]:
    pos = HEADER_SIZE
    fields: list[ExtensionField] = []
    while pos < len(buf):
        left = len(buf) - pos
        if left == 4 or left in (20, 24):
            return tuple(fields), _mac_at(buf, pos)
        if version < 4:
            if left == 28:
                return tuple(fields), _mac_at(buf, pos)
            raise ParseError(f"NTPv{version} packet has {left} trailing bytes, not a MAC")
        if left < EF_MIN_SIZE:
            raise ParseError(f"{left} trailing bytes are neither an extension field nor a MAC")
        ftype, flen = _EF_HEADER.unpack_from(buf, pos)
        ef_ok = flen >= EF_MIN_SIZE and flen % 4 == 0 and flen <= left
        if left == 28 and flen != 28:
            return tuple(fields), _mac_at(buf, pos)
        if not ef_ok:
            raise ParseError(f"bad extension field length {flen} at offset {pos} ({left} left)")
        fields.append(ExtensionField(ftype, buf[pos + 4 : pos + flen]))
        pos += flen
    return tuple(fields), None


def _mac_at(buf: bytes, pos: int) -> Mac:
    (key_id,) = struct.unpack_from("!I", buf, pos)
    return Mac(key_id, buf[pos + 4 :])


# -- reference ids -----------------------------------------------------------------------------


def refid_ascii(name: str) -> bytes:
    """A reference id for a kiss code or a stratum-1 source name (up to 4 ASCII chars)."""
    raw = name.encode("ascii")
    if len(raw) > 4:
        raise ValueError(f"reference id {name!r} longer than 4 characters")
    return raw.ljust(4, b"\x00")


def refid_str(refid: bytes, stratum: int) -> str:
    """Human form of a reference id: ASCII for stratum 0/1 (when printable), else dotted quad."""
    text = refid.rstrip(b"\x00")
    if stratum <= 1 and text and all(0x20 <= b < 0x7F for b in text):
        return text.decode("ascii")
    return ".".join(str(b) for b in refid)
