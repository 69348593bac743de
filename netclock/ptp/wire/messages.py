"""One frozen dataclass per PTP message (IEEE 1588-2019 §13.5-§13.12, §15), with pack/unpack.

Each message is ``header`` + the body fields of its type + ``tlvs`` (any message may carry TLVs
after its body, §14.1). :func:`parse` dispatches on messageType. Bytes after messageLength
(link-layer padding) are ignored; anything malformed raises :class:`ParseError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from netclock.ptp.wire.header import Header
from netclock.ptp.wire.tlv import Tlv, pack_tlvs, unpack_tlvs
from netclock.ptp.wire.types import (
    ALL_PORTS,
    ClockIdentity,
    ClockQuality,
    MessageType,
    ParseError,
    PortIdentity,
)
from netclock.time import PtpTimestamp

_ZERO_TS = PtpTimestamp(0, 0)
_ZERO_CLOCK = ClockIdentity(b"\0" * 8)
_ZERO_PORT = PortIdentity(_ZERO_CLOCK, 0)


@dataclass(frozen=True, slots=True)
class Message:
    """Base class. Subclasses set MESSAGE_TYPE and BODY_SIZE and implement the body codec."""

    MESSAGE_TYPE: ClassVar[MessageType]
    BODY_SIZE: ClassVar[int]

    def _body(self) -> bytes:
        raise NotImplementedError

    # Every subclass declares the fields ``header`` (first) and ``tlvs`` (last); the base can't
    # declare them without breaking the subclasses' field order.
    @property
    def _header(self) -> Header:
        header: Header = self.header  # type: ignore[attr-defined]
        return header

    @property
    def _tlvs(self) -> tuple[Tlv, ...]:
        tlvs: tuple[Tlv, ...] = self.tlvs  # type: ignore[attr-defined]
        return tlvs

    def pack(self) -> bytes:
        body = self._body()
        tlvs = pack_tlvs(self._tlvs)
        length = Header.SIZE + len(body) + len(tlvs)
        if length > 0xFFFF:
            raise ValueError("message longer than 65535 bytes")
        return self._header.pack(self.MESSAGE_TYPE, length) + body + tlvs

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> Message:
        raise NotImplementedError

    @classmethod
    def unpack(cls, data: bytes) -> Message:
        msg = parse(data)
        if not isinstance(msg, cls):
            raise ParseError(f"expected {cls.__name__}, got {type(msg).__name__}")
        return msg


def _ts(data: bytes, offset: int = 0) -> PtpTimestamp:
    return PtpTimestamp.unpack(data, offset)


# --- Sync / Delay_Req / Follow_Up: a single timestamp -------------------------------------------


@dataclass(frozen=True, slots=True)
class Sync(Message):
    """§13.6 Sync: originTimestamp (zero or an estimate in two-step mode)."""

    header: Header = field(default_factory=Header)
    origin_timestamp: PtpTimestamp = _ZERO_TS
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SYNC
    BODY_SIZE: ClassVar[int] = 10

    def _body(self) -> bytes:
        return self.origin_timestamp.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> Sync:
        return cls(header, _ts(body), tlvs)


@dataclass(frozen=True, slots=True)
class DelayReq(Message):
    """§13.6 Delay_Req: originTimestamp (zero or an estimate)."""

    header: Header = field(default_factory=Header)
    origin_timestamp: PtpTimestamp = _ZERO_TS
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.DELAY_REQ
    BODY_SIZE: ClassVar[int] = 10

    def _body(self) -> bytes:
        return self.origin_timestamp.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> DelayReq:
        return cls(header, _ts(body), tlvs)


@dataclass(frozen=True, slots=True)
class FollowUp(Message):
    """§13.7 Follow_Up: preciseOriginTimestamp of the Sync with the same sequenceId."""

    header: Header = field(default_factory=Header)
    precise_origin_timestamp: PtpTimestamp = _ZERO_TS
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.FOLLOW_UP
    BODY_SIZE: ClassVar[int] = 10

    def _body(self) -> bytes:
        return self.precise_origin_timestamp.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> FollowUp:
        return cls(header, _ts(body), tlvs)


# --- timestamp + requestingPortIdentity --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DelayResp(Message):
    """§13.8 Delay_Resp: receiveTimestamp of the Delay_Req and its requestingPortIdentity."""

    header: Header = field(default_factory=Header)
    receive_timestamp: PtpTimestamp = _ZERO_TS
    requesting_port_identity: PortIdentity = _ZERO_PORT
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.DELAY_RESP
    BODY_SIZE: ClassVar[int] = 20

    def _body(self) -> bytes:
        return self.receive_timestamp.pack() + self.requesting_port_identity.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> DelayResp:
        return cls(header, _ts(body), PortIdentity.unpack(body, 10), tlvs)


@dataclass(frozen=True, slots=True)
class PdelayReq(Message):
    """§13.9 Pdelay_Req: originTimestamp and 10 reserved octets (kept as received)."""

    header: Header = field(default_factory=Header)
    origin_timestamp: PtpTimestamp = _ZERO_TS
    reserved: bytes = b"\0" * 10
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.PDELAY_REQ
    BODY_SIZE: ClassVar[int] = 20

    def __post_init__(self) -> None:
        if len(self.reserved) != 10:
            raise ValueError("Pdelay_Req reserved field is 10 bytes")

    def _body(self) -> bytes:
        return self.origin_timestamp.pack() + self.reserved

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> PdelayReq:
        return cls(header, _ts(body), bytes(body[10:20]), tlvs)


@dataclass(frozen=True, slots=True)
class PdelayResp(Message):
    """§13.10 Pdelay_Resp: requestReceiptTimestamp and requestingPortIdentity."""

    header: Header = field(default_factory=Header)
    request_receipt_timestamp: PtpTimestamp = _ZERO_TS
    requesting_port_identity: PortIdentity = _ZERO_PORT
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.PDELAY_RESP
    BODY_SIZE: ClassVar[int] = 20

    def _body(self) -> bytes:
        return self.request_receipt_timestamp.pack() + self.requesting_port_identity.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> PdelayResp:
        return cls(header, _ts(body), PortIdentity.unpack(body, 10), tlvs)


@dataclass(frozen=True, slots=True)
class PdelayRespFollowUp(Message):
    """§13.11 Pdelay_Resp_Follow_Up: responseOriginTimestamp and requestingPortIdentity."""

    header: Header = field(default_factory=Header)
    response_origin_timestamp: PtpTimestamp = _ZERO_TS
    requesting_port_identity: PortIdentity = _ZERO_PORT
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.PDELAY_RESP_FOLLOW_UP
    BODY_SIZE: ClassVar[int] = 20

    def _body(self) -> bytes:
        return self.response_origin_timestamp.pack() + self.requesting_port_identity.pack()

    @classmethod
    def _from_body(
        cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]
    ) -> PdelayRespFollowUp:
        return cls(header, _ts(body), PortIdentity.unpack(body, 10), tlvs)


# --- Announce ----------------------------------------------------------------------------------

_ANNOUNCE = struct.Struct("!hBB4sB8sHB")


@dataclass(frozen=True, slots=True)
class Announce(Message):
    """§13.5 Announce: the sender's grandmaster and time properties (BMCA input)."""

    header: Header = field(default_factory=Header)
    origin_timestamp: PtpTimestamp = _ZERO_TS
    current_utc_offset: int = 37
    grandmaster_priority1: int = 128
    grandmaster_clock_quality: ClockQuality = field(default_factory=ClockQuality)
    grandmaster_priority2: int = 128
    grandmaster_identity: ClockIdentity = _ZERO_CLOCK
    steps_removed: int = 0
    time_source: int = 0xA0
    #: the reserved octet after currentUtcOffset, kept as received.
    reserved: int = 0
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.ANNOUNCE
    BODY_SIZE: ClassVar[int] = 30

    def __post_init__(self) -> None:
        if not -32768 <= self.current_utc_offset <= 32767:
            raise ValueError("current_utc_offset is an int16")
        for name, v, hi in (
            ("grandmaster_priority1", self.grandmaster_priority1, 0xFF),
            ("grandmaster_priority2", self.grandmaster_priority2, 0xFF),
            ("steps_removed", self.steps_removed, 0xFFFF),
            ("time_source", self.time_source, 0xFF),
            ("reserved", self.reserved, 0xFF),
        ):
            if not 0 <= v <= hi:
                raise ValueError(f"{name}={v} outside 0..{hi}")

    def _body(self) -> bytes:
        return self.origin_timestamp.pack() + _ANNOUNCE.pack(
            self.current_utc_offset,
            self.reserved,
            self.grandmaster_priority1,
            self.grandmaster_clock_quality.pack(),
            self.grandmaster_priority2,
            self.grandmaster_identity.raw,
            self.steps_removed,
            self.time_source,
        )

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> Announce:
        utc, res, p1, quality, p2, gm, steps, source = _ANNOUNCE.unpack_from(body, 10)
        return cls(
            header=header,
            origin_timestamp=_ts(body),
            current_utc_offset=utc,
            grandmaster_priority1=p1,
            grandmaster_clock_quality=ClockQuality.unpack(quality),
            grandmaster_priority2=p2,
            grandmaster_identity=ClockIdentity(gm),
            steps_removed=steps,
            time_source=source,
            reserved=res,
            tlvs=tlvs,
        )


# --- Signaling and Management ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signaling(Message):
    """§13.12 Signaling: targetPortIdentity followed by one or more TLVs."""

    header: Header = field(default_factory=Header)
    target_port_identity: PortIdentity = ALL_PORTS
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SIGNALING
    BODY_SIZE: ClassVar[int] = 10

    def _body(self) -> bytes:
        return self.target_port_identity.pack()

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> Signaling:
        return cls(header, PortIdentity.unpack(body), tlvs)


class ManagementAction:
    """§15.4.1.6 Table 57 actionField."""

    GET = 0
    SET = 1
    RESPONSE = 2
    COMMAND = 3
    ACKNOWLEDGE = 4


@dataclass(frozen=True, slots=True)
class Management(Message):
    """§15.4.1 Management message: target, boundary hops, actionField, then the management TLV."""

    header: Header = field(default_factory=Header)
    target_port_identity: PortIdentity = ALL_PORTS
    starting_boundary_hops: int = 0
    boundary_hops: int = 0
    action: int = ManagementAction.GET
    #: the reserved high nibble of the actionField octet and the reserved octet after it.
    action_reserved: int = 0
    reserved: int = 0
    tlvs: tuple[Tlv, ...] = ()

    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.MANAGEMENT
    BODY_SIZE: ClassVar[int] = 14

    def __post_init__(self) -> None:
        for name, v, hi in (
            ("starting_boundary_hops", self.starting_boundary_hops, 0xFF),
            ("boundary_hops", self.boundary_hops, 0xFF),
            ("action", self.action, 0xF),
            ("action_reserved", self.action_reserved, 0xF),
            ("reserved", self.reserved, 0xFF),
        ):
            if not 0 <= v <= hi:
                raise ValueError(f"{name}={v} outside 0..{hi}")

    def _body(self) -> bytes:
        return self.target_port_identity.pack() + bytes(
            (
                self.starting_boundary_hops,
                self.boundary_hops,
                (self.action_reserved << 4) | self.action,
                self.reserved,
            )
        )

    @classmethod
    def _from_body(cls, header: Header, body: bytes, tlvs: tuple[Tlv, ...]) -> Management:
        return cls(
            header,
            PortIdentity.unpack(body),
            body[10],
            body[11],
            body[12] & 0xF,
            body[12] >> 4,
            body[13],
            tlvs,
        )


MESSAGE_CLASSES: dict[int, type[Message]] = {
    c.MESSAGE_TYPE: c
    for c in (
        Sync,
        DelayReq,
        FollowUp,
        DelayResp,
        PdelayReq,
        PdelayResp,
        PdelayRespFollowUp,
        Announce,
        Signaling,
        Management,
    )
}

AnyMessage = (
    Sync
    | DelayReq
    | FollowUp
    | DelayResp
    | PdelayReq
    | PdelayResp
    | PdelayRespFollowUp
    | Announce
    | Signaling
    | Management
)


def parse(data: bytes | bytearray | memoryview) -> Message:
    """Decode one PTP message. Raises :class:`ParseError` (and nothing else) on bad input."""
    try:
        raw = bytes(data)
        message_type, length, header = Header.unpack(raw)
        cls = MESSAGE_CLASSES.get(message_type)
        if cls is None:
            raise ParseError(f"unknown messageType 0x{message_type:x}")
        if length > len(raw):
            raise ParseError(f"messageLength {length} exceeds the {len(raw)} bytes received")
        end_body = Header.SIZE + cls.BODY_SIZE
        if length < end_body:
            raise ParseError(f"{cls.__name__} needs {end_body} bytes, messageLength is {length}")
        body = raw[Header.SIZE : end_body]
        tlvs = unpack_tlvs(raw[end_body:length])
        return cls._from_body(header, body, tlvs)
    except ParseError:
        raise
    except (ValueError, struct.error, IndexError, TypeError) as exc:
        raise ParseError(f"malformed PTP message: {exc}") from exc
