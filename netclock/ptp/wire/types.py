"""Basic PTP wire types (IEEE 1588-2019 §5.3, §13.3.2.8) and the codec's only exception."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar


class ParseError(ValueError):
    """Bytes that are not a valid PTP message (the only exception the parsers raise)."""


class MessageType(enum.IntEnum):
    """IEEE 1588-2019 Table 36 messageType values."""

    SYNC = 0x0
    DELAY_REQ = 0x1
    PDELAY_REQ = 0x2
    PDELAY_RESP = 0x3
    FOLLOW_UP = 0x8
    DELAY_RESP = 0x9
    PDELAY_RESP_FOLLOW_UP = 0xA
    ANNOUNCE = 0xB
    SIGNALING = 0xC
    MANAGEMENT = 0xD

    @property
    def is_event(self) -> bool:
        """Event messages (§7.4.1) are timestamped and go to UDP port 319."""
        return self.value < 0x8


class Flags(enum.IntFlag):
    """IEEE 1588-2019 Table 37 flagField as one big-endian 16-bit value (octet 0 = high byte)."""

    NONE = 0
    ALTERNATE_MASTER = 0x0100
    TWO_STEP = 0x0200
    UNICAST = 0x0400
    PROFILE_SPECIFIC_1 = 0x2000
    PROFILE_SPECIFIC_2 = 0x4000
    LEAP_61 = 0x0001
    LEAP_59 = 0x0002
    CURRENT_UTC_OFFSET_VALID = 0x0004
    PTP_TIMESCALE = 0x0008
    TIME_TRACEABLE = 0x0010
    FREQUENCY_TRACEABLE = 0x0020
    SYNCHRONIZATION_UNCERTAIN = 0x0040


#: Flags that belong to timePropertiesDS (§8.2.4) and travel in Announce.
TIME_PROPERTY_FLAGS = (
    Flags.LEAP_61
    | Flags.LEAP_59
    | Flags.CURRENT_UTC_OFFSET_VALID
    | Flags.PTP_TIMESCALE
    | Flags.TIME_TRACEABLE
    | Flags.FREQUENCY_TRACEABLE
)


class TimeSource(enum.IntEnum):
    """IEEE 1588-2019 Table 6 timeSource."""

    ATOMIC_CLOCK = 0x10
    GNSS = 0x20
    TERRESTRIAL_RADIO = 0x30
    SERIAL_TIME_CODE = 0x39
    PTP = 0x40
    NTP = 0x50
    HAND_SET = 0x60
    OTHER = 0x90
    INTERNAL_OSCILLATOR = 0xA0


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name}={value} outside 0..2^{bits}-1")


@dataclass(frozen=True, slots=True, order=True)
class ClockIdentity:
    """IEEE 1588-2019 §5.3.4 ClockIdentity: 8 octets, compared as an unsigned number."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 8:
            raise ValueError(f"ClockIdentity needs 8 bytes, got {len(self.raw)}")

    @classmethod
    def from_mac(cls, mac: bytes) -> ClockIdentity:
        """EUI-48 → EUI-64 with FF FE in the middle, as linuxptp does."""
        if len(mac) != 6:
            raise ValueError("MAC needs 6 bytes")
        return cls(mac[:3] + b"\xff\xfe" + mac[3:])

    def __str__(self) -> str:
        h = self.raw.hex()
        return f"{h[:6]}.{h[6:10]}.{h[10:]}"


@dataclass(frozen=True, slots=True, order=True)
class PortIdentity:
    """IEEE 1588-2019 §5.3.5 PortIdentity: clockIdentity + portNumber (10 octets)."""

    clock_identity: ClockIdentity
    port_number: int

    WIRE_SIZE: ClassVar[int] = 10
    _S: ClassVar[struct.Struct] = struct.Struct("!8sH")

    def __post_init__(self) -> None:
        _check_uint("port_number", self.port_number, 16)

    def pack(self) -> bytes:
        return self._S.pack(self.clock_identity.raw, self.port_number)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PortIdentity:
        if len(data) - offset < cls.WIRE_SIZE:
            raise ParseError("PortIdentity truncated")
        raw, port = cls._S.unpack_from(data, offset)
        return cls(ClockIdentity(raw), port)

    def __str__(self) -> str:
        return f"{self.clock_identity}-{self.port_number}"


#: The all-ones PortIdentity: "all ports" in targetPortIdentity (§15.5.1.1).
ALL_PORTS = PortIdentity(ClockIdentity(b"\xff" * 8), 0xFFFF)


@dataclass(frozen=True, slots=True, order=True)
class ClockQuality:
    """IEEE 1588-2019 §5.3.7 ClockQuality: clockClass, clockAccuracy, offsetScaledLogVariance."""

    clock_class: int = 248
    clock_accuracy: int = 0xFE
    offset_scaled_log_variance: int = 0xFFFF

    WIRE_SIZE: ClassVar[int] = 4
    _S: ClassVar[struct.Struct] = struct.Struct("!BBH")

    def __post_init__(self) -> None:
        _check_uint("clock_class", self.clock_class, 8)
        _check_uint("clock_accuracy", self.clock_accuracy, 8)
        _check_uint("offset_scaled_log_variance", self.offset_scaled_log_variance, 16)

    def pack(self) -> bytes:
        return self._S.pack(self.clock_class, self.clock_accuracy, self.offset_scaled_log_variance)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> ClockQuality:
        if len(data) - offset < cls.WIRE_SIZE:
            raise ParseError("ClockQuality truncated")
        return cls(*cls._S.unpack_from(data, offset))
