"""SMPTE ST 2059-2 synchronization metadata (SM) TLV, an organization extension.

An ST 2059-2 grandmaster tells its slaves how to turn PTP time into video time: the system
frame rate, whether its own time reference is locked, the local-time offset and its next jump
(daylight saving, leap seconds) and the daily "jam" instants. It sends them as an
ORGANIZATION_EXTENSION TLV (tlvType 0003h) in a Management message whose actionField is
COMMAND and whose targetPortIdentity is every port (no MANAGEMENT TLV, no managementId).

organizationId 68-97-E8 (SMPTE), organizationSubType 00-00-01 (SM TLV version 1), then 42
octets, all big-endian:

=======================  =======  ==================================================
field                    octets   meaning
=======================  =======  ==================================================
defaultSystemFrameRate   4 + 4    numerator / denominator (30000/1001, 25/1, ...)
masterLockingStatus      1        0 not in use, 1 free run, 2 cold locking,
                                  3 warm locking, 4 locked
timeAddressFlags         1        bit 0 drop frame, bit 1 color frame identification
currentLocalOffset       4        seconds from PTP time (UTC) to local time, signed
jumpSeconds              4        the change of currentLocalOffset at the next jump
timeOfNextJump           6        PTP seconds of the next jump (0: none scheduled)
timeOfNextJam            6        PTP seconds of the next daily jam
timeOfPreviousJam        6        PTP seconds of the previous jam
previousJamLocalOffset   4        currentLocalOffset at the previous jam
daylightSaving           1        bit 0 now, bit 1 after the next jump, bit 2 at the
                                  previous jam
leapSecondJump           1        bit 0: the next jump is a leap second
=======================  =======  ==================================================
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from netclock.ptp.wire.header import Header
from netclock.ptp.wire.messages import Management, ManagementAction
from netclock.ptp.wire.tlv import OrganizationExtensionTlv, Tlv
from netclock.ptp.wire.types import ALL_PORTS, ParseError

__all__ = [
    "SMPTE_OUI",
    "SYNC_METADATA_SUBTYPE",
    "LockingStatus",
    "SyncMetadata",
]

SMPTE_OUI = b"\x68\x97\xe8"
SYNC_METADATA_SUBTYPE = b"\x00\x00\x01"
_BODY = struct.Struct("!IIBBii6s6s6siBB")
assert _BODY.size == 42
_U48 = 1 << 48


class LockingStatus(enum.IntEnum):
    """masterLockingStatus."""

    NOT_IN_USE = 0
    FREE_RUN = 1
    COLD_LOCKING = 2
    WARM_LOCKING = 3
    LOCKED = 4


@dataclass(frozen=True, slots=True)
class SyncMetadata:
    """The SM TLV's 42 octets as typed values (see the module docstring)."""

    frame_rate_numerator: int = 30000
    frame_rate_denominator: int = 1001
    locking_status: int = LockingStatus.FREE_RUN
    time_address_flags: int = 0
    current_local_offset: int = 0
    jump_seconds: int = 0
    time_of_next_jump: int = 0
    time_of_next_jam: int = 0
    time_of_previous_jam: int = 0
    previous_jam_local_offset: int = 0
    daylight_saving: int = 0
    leap_second_jump: int = 0

    def __post_init__(self) -> None:
        for name in ("frame_rate_numerator", "frame_rate_denominator"):
            if not 0 <= getattr(self, name) <= 0xFFFFFFFF:
                raise ValueError(f"{name} outside 0..2^32-1")
        for name in ("locking_status", "time_address_flags", "daylight_saving",
                     "leap_second_jump"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} outside 0..255")
        for name in ("current_local_offset", "jump_seconds", "previous_jam_local_offset"):
            if not -(1 << 31) <= getattr(self, name) < (1 << 31):
                raise ValueError(f"{name} outside the Int32 range")
        for name in ("time_of_next_jump", "time_of_next_jam", "time_of_previous_jam"):
            if not 0 <= getattr(self, name) < _U48:
                raise ValueError(f"{name} outside 0..2^48-1")

    @property
    def drop_frame(self) -> bool:
        return bool(self.time_address_flags & 1)

    @property
    def locking_name(self) -> str:
        """masterLockingStatus for people: ``locked``, ``free_run``, ... or ``status N``."""
        try:
            return LockingStatus(self.locking_status).name.lower()
        except ValueError:
            return f"status {self.locking_status}"

    def local_seconds(self, utc_seconds: int) -> int:
        """Local time (seconds) for a UTC time, by currentLocalOffset."""
        return utc_seconds + self.current_local_offset

    def pack_value(self) -> bytes:
        return _BODY.pack(
            self.frame_rate_numerator, self.frame_rate_denominator, self.locking_status,
            self.time_address_flags, self.current_local_offset, self.jump_seconds,
            self.time_of_next_jump.to_bytes(6, "big"), self.time_of_next_jam.to_bytes(6, "big"),
            self.time_of_previous_jam.to_bytes(6, "big"), self.previous_jam_local_offset,
            self.daylight_saving, self.leap_second_jump,
        )

    def tlv(self) -> OrganizationExtensionTlv:
        return OrganizationExtensionTlv(SMPTE_OUI, SYNC_METADATA_SUBTYPE, self.pack_value())

    @classmethod
    def unpack_value(cls, data: bytes) -> SyncMetadata:
        """The 42 octets after organizationSubType. Raises ParseError when short."""
        if len(data) < _BODY.size:
            raise ParseError(f"SMPTE synchronization metadata TLV: {len(data)} of 42 octets")
        (num, den, lock, flags, local, jump, nxt, jam, prev, prev_local, dst,
         leap) = _BODY.unpack_from(data)
        return cls(num, den, lock, flags, local, jump, int.from_bytes(nxt, "big"),
                   int.from_bytes(jam, "big"), int.from_bytes(prev, "big"), prev_local, dst,
                   leap)

    @classmethod
    def from_tlvs(cls, tlvs: tuple[Tlv, ...]) -> SyncMetadata | None:
        """The first SM TLV among ``tlvs`` (None if there is none). Raises ParseError on a
        truncated one."""
        for t in tlvs:
            if (isinstance(t, OrganizationExtensionTlv) and t.organization_id == SMPTE_OUI
                    and t.organization_sub_type == SYNC_METADATA_SUBTYPE):
                return cls.unpack_value(t.data)
        return None

    def message(self, header: Header) -> Management:
        """The Management message (COMMAND, to every port) that carries this TLV."""
        return Management(header, ALL_PORTS, action=ManagementAction.COMMAND, tlvs=(self.tlv(),))
