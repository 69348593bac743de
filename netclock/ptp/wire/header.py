"""IEEE 1588-2019 §13.3 common message header (34 octets)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from netclock.ptp.wire.types import ClockIdentity, Flags, MessageType, ParseError, PortIdentity
from netclock.time import TimeInterval

#: §13.3.2.13 controlField values (a v1 relic): Sync 0, Delay_Req 1, Follow_Up 2, Delay_Resp 3,
#: Management 4, everything else 5.
CONTROL_FIELD: dict[int, int] = {
    MessageType.SYNC: 0,
    MessageType.DELAY_REQ: 1,
    MessageType.FOLLOW_UP: 2,
    MessageType.DELAY_RESP: 3,
    MessageType.MANAGEMENT: 4,
}

#: logMessageInterval for messages that carry none (§13.3.2.14): 0x7F.
LOG_INTERVAL_NONE = 0x7F

_ZERO_PORT = PortIdentity(ClockIdentity(b"\0" * 8), 0)
_ZERO_CORRECTION = TimeInterval(0)
#: decoded sourcePortIdentity octets → PortIdentity, flagField → Flags (see Header.unpack)
_PORT_IDENTITIES: dict[bytes, PortIdentity] = {}
_FLAGS: dict[int, Flags] = {}
_CACHE_MAX = 256


@dataclass(frozen=True, slots=True)
class Header:
    """The header fields a message class does not own (messageType and messageLength are derived
    from the message on encode).

    ``control_field`` is ``None`` when it holds the standard value for the message type, so that
    freshly built messages and decoded ones compare equal.
    """

    source_port_identity: PortIdentity = _ZERO_PORT
    sequence_id: int = 0
    domain_number: int = 0
    flags: Flags = Flags.NONE
    correction: TimeInterval = field(default_factory=lambda: TimeInterval(0))
    log_message_interval: int = LOG_INTERVAL_NONE
    #: majorSdoId (the 2008 transportSpecific nibble) and minorSdoId (the 2008 reserved octet 5).
    major_sdo_id: int = 0
    minor_sdo_id: int = 0
    version: int = 2
    minor_version: int = 1
    #: §13.3.2.10 messageTypeSpecific (reserved in 2008), 4 octets.
    message_type_specific: int = 0
    control_field: int | None = None

    SIZE: ClassVar[int] = 34
    _S: ClassVar[struct.Struct] = struct.Struct("!BBHBBHq4s10sHBb")

    def __post_init__(self) -> None:
        flags = int(self.flags)
        if (
            0 <= self.sequence_id <= 0xFFFF
            and 0 <= self.domain_number <= 0xFF
            and 0 <= self.major_sdo_id <= 0xF
            and 0 <= self.minor_sdo_id <= 0xFF
            and 0 <= self.version <= 0xF
            and 0 <= self.minor_version <= 0xF
            and 0 <= self.message_type_specific <= 0xFFFFFFFF
            and 0 <= flags <= 0xFFFF
            and -128 <= self.log_message_interval <= 127
            and (self.control_field is None or 0 <= self.control_field <= 0xFF)
        ):
            return  # every decoded header, and almost every built one: no loop below
        for name, value, hi in (
            ("sequence_id", self.sequence_id, 0xFFFF),
            ("domain_number", self.domain_number, 0xFF),
            ("major_sdo_id", self.major_sdo_id, 0xF),
            ("minor_sdo_id", self.minor_sdo_id, 0xFF),
            ("version", self.version, 0xF),
            ("minor_version", self.minor_version, 0xF),
            ("message_type_specific", self.message_type_specific, 0xFFFFFFFF),
            ("flags", flags, 0xFFFF),
        ):
            if not 0 <= value <= hi:
                raise ValueError(f"{name}={value} outside 0..{hi}")
        if not -128 <= self.log_message_interval <= 127:
            raise ValueError("log_message_interval is an int8")
        if self.control_field is not None and not 0 <= self.control_field <= 0xFF:
            raise ValueError("control_field is a uint8")

    @property
    def sdo_id(self) -> int:
        """12-bit sdoId = majorSdoId << 8 | minorSdoId (§7.1.4)."""
        return (self.major_sdo_id << 8) | self.minor_sdo_id

    def pack(self, message_type: int, message_length: int) -> bytes:
        control = self.control_field
        if control is None:
            control = CONTROL_FIELD.get(message_type, 5)
        return self._S.pack(
            (self.major_sdo_id << 4) | message_type,
            (self.minor_version << 4) | self.version,
            message_length,
            self.domain_number,
            self.minor_sdo_id,
            int(self.flags),
            self.correction.scaled_ns,
            self.message_type_specific.to_bytes(4, "big"),
            self.source_port_identity.pack(),
            self.sequence_id,
            control,
            self.log_message_interval,
        )

    @classmethod
    def unpack(cls, data: bytes) -> tuple[int, int, Header]:
        """Decode the header: ``(messageType, messageLength, header)``."""
        if len(data) < cls.SIZE:
            raise ParseError(f"PTP header needs 34 bytes, got {len(data)}")
        (b0, b1, length, domain, minor_sdo, flags, corr, mts, spi, seq, control, log_int) = (
            cls._S.unpack_from(data)
        )
        message_type = b0 & 0xF
        if b1 & 0xF != 2:
            raise ParseError(f"versionPTP {b1 & 0xF} is not 2")
        # A peer sends the same identity, flags and (mostly zero) correction over and over:
        # the immutable values are shared instead of built per message.
        port_identity = _PORT_IDENTITIES.get(spi)
        if port_identity is None:
            port_identity = PortIdentity.unpack(spi)
            if len(_PORT_IDENTITIES) >= _CACHE_MAX:
                _PORT_IDENTITIES.clear()
            _PORT_IDENTITIES[spi] = port_identity
        flag_value = _FLAGS.get(flags)
        if flag_value is None:
            flag_value = _FLAGS[flags] = Flags(flags)  # at most 2^16 of them
        header = cls(
            source_port_identity=port_identity,
            sequence_id=seq,
            domain_number=domain,
            flags=flag_value,
            correction=_ZERO_CORRECTION if corr == 0 else TimeInterval(corr),
            log_message_interval=log_int,
            major_sdo_id=b0 >> 4,
            minor_sdo_id=minor_sdo,
            version=b1 & 0xF,
            minor_version=b1 >> 4,
            message_type_specific=int.from_bytes(mts, "big"),
            control_field=None if CONTROL_FIELD.get(message_type, 5) == control else control,
        )
        return message_type, length, header
