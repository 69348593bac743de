"""PTP TLVs (IEEE 1588-2019 §14) as a typed list; unknown TLVs are kept byte-for-byte.

Every parsed TLV re-encodes to exactly the bytes it came from: a known TLV type whose value
does not re-encode identically (odd reserved bits, a length the typed form cannot hold) is
kept as an :class:`UnknownTlv` instead of being normalised.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from netclock.ptp.wire.types import ClockIdentity, ParseError


class TlvType(enum.IntEnum):
    """IEEE 1588-2019 Table 52 tlvType values (those this codec names)."""

    MANAGEMENT = 0x0001
    MANAGEMENT_ERROR_STATUS = 0x0002
    ORGANIZATION_EXTENSION = 0x0003
    REQUEST_UNICAST_TRANSMISSION = 0x0004
    GRANT_UNICAST_TRANSMISSION = 0x0005
    CANCEL_UNICAST_TRANSMISSION = 0x0006
    ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION = 0x0007
    PATH_TRACE = 0x0008
    ALTERNATE_TIME_OFFSET_INDICATOR = 0x0009
    ORGANIZATION_EXTENSION_PROPAGATE = 0x4000
    ENHANCED_ACCURACY_METRICS = 0x4001
    ORGANIZATION_EXTENSION_DO_NOT_PROPAGATE = 0x8000
    L1_SYNC = 0x8001
    PORT_COMMUNICATION_AVAILABILITY = 0x8002
    PROTOCOL_ADDRESS = 0x8003
    SLAVE_RX_SYNC_TIMING_DATA = 0x8004
    SLAVE_RX_SYNC_COMPUTED_DATA = 0x8005
    SLAVE_TX_EVENT_TIMESTAMPS = 0x8006
    CUMULATIVE_RATE_RATIO = 0x8007
    PAD = 0x8008
    AUTHENTICATION = 0x8009


class ManagementId(enum.IntEnum):
    """IEEE 1588-2019 Table 59 managementId values, plus linuxptp's implementation-specific ones."""

    NULL_PTP_MANAGEMENT = 0x0000
    CLOCK_DESCRIPTION = 0x0001
    USER_DESCRIPTION = 0x0002
    SAVE_IN_NON_VOLATILE_STORAGE = 0x0003
    RESET_NON_VOLATILE_STORAGE = 0x0004
    INITIALIZE = 0x0005
    FAULT_LOG = 0x0006
    FAULT_LOG_RESET = 0x0007
    DEFAULT_DATA_SET = 0x2000
    CURRENT_DATA_SET = 0x2001
    PARENT_DATA_SET = 0x2002
    TIME_PROPERTIES_DATA_SET = 0x2003
    PORT_DATA_SET = 0x2004
    PRIORITY1 = 0x2005
    PRIORITY2 = 0x2006
    DOMAIN = 0x2007
    SLAVE_ONLY = 0x2008
    LOG_ANNOUNCE_INTERVAL = 0x2009
    ANNOUNCE_RECEIPT_TIMEOUT = 0x200A
    LOG_SYNC_INTERVAL = 0x200B
    VERSION_NUMBER = 0x200C
    ENABLE_PORT = 0x200D
    DISABLE_PORT = 0x200E
    TIME = 0x200F
    CLOCK_ACCURACY = 0x2010
    UTC_PROPERTIES = 0x2011
    TRACEABILITY_PROPERTIES = 0x2012
    TIMESCALE_PROPERTIES = 0x2013
    UNICAST_NEGOTIATION_ENABLE = 0x2014
    PATH_TRACE_LIST = 0x2015
    PATH_TRACE_ENABLE = 0x2016
    GRANDMASTER_CLUSTER_TABLE = 0x2017
    UNICAST_MASTER_TABLE = 0x2018
    UNICAST_MASTER_MAX_TABLE_SIZE = 0x2019
    ACCEPTABLE_MASTER_TABLE = 0x201A
    ACCEPTABLE_MASTER_TABLE_ENABLED = 0x201B
    ACCEPTABLE_MASTER_MAX_TABLE_SIZE = 0x201C
    ALTERNATE_MASTER = 0x201D
    ALTERNATE_TIME_OFFSET_ENABLE = 0x201E
    ALTERNATE_TIME_OFFSET_NAME = 0x201F
    ALTERNATE_TIME_OFFSET_MAX_KEY = 0x2020
    ALTERNATE_TIME_OFFSET_PROPERTIES = 0x2021
    EXTERNAL_PORT_CONFIGURATION_ENABLED = 0x3000
    MASTER_ONLY = 0x3001
    HOLDOVER_UPGRADE_ENABLE = 0x3002
    EXT_PORT_CONFIG_PORT_DATA_SET = 0x3003
    TRANSPARENT_CLOCK_DEFAULT_DATA_SET = 0x4000
    TRANSPARENT_CLOCK_PORT_DATA_SET = 0x4001
    PRIMARY_DOMAIN = 0x4002
    DELAY_MECHANISM = 0x6000
    LOG_MIN_PDELAY_REQ_INTERVAL = 0x6001
    # linuxptp implementation-specific (0xC000..0xDFFF)
    TIME_STATUS_NP = 0xC000
    GRANDMASTER_SETTINGS_NP = 0xC001
    PORT_DATA_SET_NP = 0xC002
    SUBSCRIBE_EVENTS_NP = 0xC003
    PORT_PROPERTIES_NP = 0xC004
    PORT_STATS_NP = 0xC005


class ManagementErrorId(enum.IntEnum):
    """IEEE 1588-2019 Table 109 managementErrorId."""

    RESPONSE_TOO_BIG = 0x0001
    NO_SUCH_ID = 0x0002
    WRONG_LENGTH = 0x0003
    WRONG_VALUE = 0x0004
    NOT_SETABLE = 0x0005
    NOT_SUPPORTED = 0x0006
    UNPOPULATED = 0x0007
    GENERAL_ERROR = 0xFFFE


_TL = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class Tlv:
    """Base of every TLV. Subclasses set TLV_TYPE and implement the value codec."""

    TLV_TYPE: ClassVar[int] = -1

    @property
    def tlv_type(self) -> int:
        return self.TLV_TYPE

    def pack_value(self) -> bytes:
        raise NotImplementedError

    def pack(self) -> bytes:
        value = self.pack_value()
        if len(value) > 0xFFFF:
            raise ValueError("TLV value longer than 65535 bytes")
        return _TL.pack(self.tlv_type, len(value)) + value

    @classmethod
    def unpack_value(cls, value: bytes) -> Tlv:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class UnknownTlv(Tlv):
    """A TLV this codec does not type (or could not re-encode exactly): type + raw value."""

    type_: int
    value: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type_ <= 0xFFFF:
            raise ValueError("tlvType outside 0..65535")

    @property
    def tlv_type(self) -> int:
        return self.type_

    def pack_value(self) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class ManagementTlv(Tlv):
    """§15.5.2 MANAGEMENT TLV: managementId + dataField (kept raw)."""

    management_id: int
    data: bytes = b""

    TLV_TYPE: ClassVar[int] = TlvType.MANAGEMENT

    def __post_init__(self) -> None:
        if not 0 <= self.management_id <= 0xFFFF:
            raise ValueError("managementId outside 0..65535")

    def pack_value(self) -> bytes:
        return struct.pack("!H", self.management_id) + self.data

    @classmethod
    def unpack_value(cls, value: bytes) -> ManagementTlv:
        if len(value) < 2:
            raise ParseError("MANAGEMENT TLV shorter than 2 bytes")
        return cls(struct.unpack_from("!H", value)[0], bytes(value[2:]))


@dataclass(frozen=True, slots=True)
class ManagementErrorStatusTlv(Tlv):
    """§15.5.4.4 MANAGEMENT_ERROR_STATUS TLV: error id, managementId, 4 reserved, displayData."""

    management_error_id: int
    management_id: int
    reserved: bytes = b"\0\0\0\0"
    display_data: bytes = b""

    TLV_TYPE: ClassVar[int] = TlvType.MANAGEMENT_ERROR_STATUS

    def pack_value(self) -> bytes:
        return (
            struct.pack("!HH", self.management_error_id, self.management_id)
            + self.reserved
            + self.display_data
        )

    @classmethod
    def unpack_value(cls, value: bytes) -> ManagementErrorStatusTlv:
        if len(value) < 8:
            raise ParseError("MANAGEMENT_ERROR_STATUS TLV shorter than 8 bytes")
        err, mid = struct.unpack_from("!HH", value)
        return cls(err, mid, bytes(value[4:8]), bytes(value[8:]))


@dataclass(frozen=True, slots=True)
class OrganizationExtensionTlv(Tlv):
    """§14.3 ORGANIZATION_EXTENSION TLV (and its _PROPAGATE/_DO_NOT_PROPAGATE variants)."""

    organization_id: bytes
    organization_sub_type: bytes
    data: bytes = b""
    variant: int = TlvType.ORGANIZATION_EXTENSION

    def __post_init__(self) -> None:
        if len(self.organization_id) != 3 or len(self.organization_sub_type) != 3:
            raise ValueError("organizationId and organizationSubType are 3 bytes each")
        if self.variant not in _ORG_TYPES:
            raise ValueError("not an organization extension TLV type")

    @property
    def tlv_type(self) -> int:
        return self.variant

    def pack_value(self) -> bytes:
        return self.organization_id + self.organization_sub_type + self.data

    @classmethod
    def unpack_typed(cls, tlv_type: int, value: bytes) -> OrganizationExtensionTlv:
        if len(value) < 6:
            raise ParseError("ORGANIZATION_EXTENSION TLV shorter than 6 bytes")
        return cls(bytes(value[:3]), bytes(value[3:6]), bytes(value[6:]), tlv_type)


_ORG_TYPES = (
    TlvType.ORGANIZATION_EXTENSION,
    TlvType.ORGANIZATION_EXTENSION_PROPAGATE,
    TlvType.ORGANIZATION_EXTENSION_DO_NOT_PROPAGATE,
)


@dataclass(frozen=True, slots=True)
class PathTraceTlv(Tlv):
    """§16.2.5 PATH_TRACE TLV: the pathSequence of ClockIdentities."""

    path_sequence: tuple[ClockIdentity, ...] = ()

    TLV_TYPE: ClassVar[int] = TlvType.PATH_TRACE

    def pack_value(self) -> bytes:
        return b"".join(c.raw for c in self.path_sequence)

    @classmethod
    def unpack_value(cls, value: bytes) -> PathTraceTlv:
        if len(value) % 8:
            raise ParseError("PATH_TRACE TLV length not a multiple of 8")
        return cls(tuple(ClockIdentity(bytes(value[i : i + 8])) for i in range(0, len(value), 8)))


@dataclass(frozen=True, slots=True)
class RequestUnicastTransmissionTlv(Tlv):
    """§16.1.4.1 REQUEST_UNICAST_TRANSMISSION: messageType, logInterMessagePeriod, duration."""

    message_type: int
    log_inter_message_period: int
    duration_s: int

    TLV_TYPE: ClassVar[int] = TlvType.REQUEST_UNICAST_TRANSMISSION

    def pack_value(self) -> bytes:
        return struct.pack(
            "!BbI", (self.message_type & 0xF) << 4, self.log_inter_message_period, self.duration_s
        )

    @classmethod
    def unpack_value(cls, value: bytes) -> RequestUnicastTransmissionTlv:
        if len(value) != 6:
            raise ParseError("REQUEST_UNICAST_TRANSMISSION TLV is 6 bytes")
        mt, period, dur = struct.unpack("!BbI", value)
        return cls(mt >> 4, period, dur)


@dataclass(frozen=True, slots=True)
class GrantUnicastTransmissionTlv(Tlv):
    """§16.1.4.2 GRANT_UNICAST_TRANSMISSION: as the request, plus the renewal-invited flag."""

    message_type: int
    log_inter_message_period: int
    duration_s: int
    renewal_invited: bool = False

    TLV_TYPE: ClassVar[int] = TlvType.GRANT_UNICAST_TRANSMISSION

    def pack_value(self) -> bytes:
        return struct.pack(
            "!BbIBB",
            (self.message_type & 0xF) << 4,
            self.log_inter_message_period,
            self.duration_s,
            0,
            int(self.renewal_invited),
        )

    @classmethod
    def unpack_value(cls, value: bytes) -> GrantUnicastTransmissionTlv:
        if len(value) != 8:
            raise ParseError("GRANT_UNICAST_TRANSMISSION TLV is 8 bytes")
        mt, period, dur, _res, flags = struct.unpack("!BbIBB", value)
        return cls(mt >> 4, period, dur, bool(flags & 1))


@dataclass(frozen=True, slots=True)
class CancelUnicastTransmissionTlv(Tlv):
    """§16.1.4.3 CANCEL_UNICAST_TRANSMISSION (ACKNOWLEDGE_CANCEL when ``acknowledge``)."""

    message_type: int
    acknowledge: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.message_type <= 0xF:
            raise ValueError("message_type is a nibble")

    @property
    def tlv_type(self) -> int:
        return (
            TlvType.ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION
            if self.acknowledge
            else TlvType.CANCEL_UNICAST_TRANSMISSION
        )

    def pack_value(self) -> bytes:
        return bytes(((self.message_type & 0xF) << 4, 0))

    @classmethod
    def unpack_typed(cls, tlv_type: int, value: bytes) -> CancelUnicastTransmissionTlv:
        if len(value) != 2:
            raise ParseError("CANCEL_UNICAST_TRANSMISSION TLV is 2 bytes")
        return cls(value[0] >> 4, tlv_type == TlvType.ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION)


_SIMPLE: dict[int, type[Tlv]] = {
    TlvType.MANAGEMENT: ManagementTlv,
    TlvType.MANAGEMENT_ERROR_STATUS: ManagementErrorStatusTlv,
    TlvType.PATH_TRACE: PathTraceTlv,
    TlvType.REQUEST_UNICAST_TRANSMISSION: RequestUnicastTransmissionTlv,
    TlvType.GRANT_UNICAST_TRANSMISSION: GrantUnicastTransmissionTlv,
}


def _typed(tlv_type: int, value: bytes) -> Tlv:
    if tlv_type in _SIMPLE:
        return _SIMPLE[tlv_type].unpack_value(value)
    if tlv_type in _ORG_TYPES:
        return OrganizationExtensionTlv.unpack_typed(tlv_type, value)
    if tlv_type in (
        TlvType.CANCEL_UNICAST_TRANSMISSION,
        TlvType.ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION,
    ):
        return CancelUnicastTransmissionTlv.unpack_typed(tlv_type, value)
    return UnknownTlv(tlv_type, value)


def unpack_tlvs(data: bytes) -> tuple[Tlv, ...]:
    """Decode a TLV sequence that fills ``data`` exactly. Raises ParseError on truncation."""
    out: list[Tlv] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 4:
            raise ParseError(f"{n - pos} trailing bytes are not a TLV header")
        tlv_type, length = _TL.unpack_from(data, pos)
        value = bytes(data[pos + 4 : pos + 4 + length])
        if len(value) != length:
            raise ParseError(f"TLV 0x{tlv_type:04x} claims {length} bytes, {len(value)} present")
        pos += 4 + length
        try:
            tlv = _typed(tlv_type, value)
            if tlv.pack_value() != value:
                tlv = UnknownTlv(tlv_type, value)
        except (ParseError, ValueError, struct.error):
            tlv = UnknownTlv(tlv_type, value)
        out.append(tlv)
    return tuple(out)


def pack_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(t.pack() for t in tlvs)
