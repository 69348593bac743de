"""dataField encodings of the data-set MANAGEMENT TLVs (IEEE 1588-2019 §15.5.3).

Each class packs/unpacks the dataField of one managementId (GET responses, SET requests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from netclock.ptp.wire.tlv import ManagementId
from netclock.ptp.wire.types import ClockIdentity, ClockQuality, ParseError, PortIdentity
from netclock.time import TimeInterval


def _need(data: bytes, n: int, what: str) -> None:
    if len(data) < n:
        raise ParseError(f"{what} dataField needs {n} bytes, got {len(data)}")


@dataclass(frozen=True, slots=True)
class DefaultDataSet:
    """§15.5.3.3.1 DEFAULT_DATA_SET (20 octets)."""

    two_step: bool
    slave_only: bool
    number_ports: int
    priority1: int
    clock_quality: ClockQuality
    priority2: int
    clock_identity: ClockIdentity
    domain_number: int
    reserved1: int = 0
    reserved2: int = 0

    ID: ClassVar[int] = ManagementId.DEFAULT_DATA_SET
    _S: ClassVar[struct.Struct] = struct.Struct("!BBHB4sB8sBB")

    def pack(self) -> bytes:
        flags = int(self.two_step) | (int(self.slave_only) << 1)
        return self._S.pack(flags, self.reserved1, self.number_ports, self.priority1,
                            self.clock_quality.pack(), self.priority2, self.clock_identity.raw,
                            self.domain_number, self.reserved2)

    @classmethod
    def unpack(cls, data: bytes) -> DefaultDataSet:
        _need(data, cls._S.size, "DEFAULT_DATA_SET")
        f, r1, n, p1, q, p2, ci, dom, r2 = cls._S.unpack_from(data)
        if f & ~3:
            raise ParseError("DEFAULT_DATA_SET reserved flag bits set")
        return cls(bool(f & 1), bool(f & 2), n, p1, ClockQuality.unpack(q), p2,
                   ClockIdentity(ci), dom, r1, r2)


@dataclass(frozen=True, slots=True)
class CurrentDataSet:
    """§15.5.3.4.1 CURRENT_DATA_SET (18 octets); times as TimeInterval."""

    steps_removed: int
    offset_from_master: TimeInterval
    mean_path_delay: TimeInterval

    ID: ClassVar[int] = ManagementId.CURRENT_DATA_SET
    _S: ClassVar[struct.Struct] = struct.Struct("!Hqq")

    def pack(self) -> bytes:
        return self._S.pack(self.steps_removed, self.offset_from_master.scaled_ns,
                            self.mean_path_delay.scaled_ns)

    @classmethod
    def unpack(cls, data: bytes) -> CurrentDataSet:
        _need(data, cls._S.size, "CURRENT_DATA_SET")
        s, o, d = cls._S.unpack_from(data)
        return cls(s, TimeInterval(o), TimeInterval(d))


@dataclass(frozen=True, slots=True)
class ParentDataSet:
    """§15.5.3.5.1 PARENT_DATA_SET (32 octets)."""

    parent_port_identity: PortIdentity
    parent_stats: bool
    observed_parent_offset_scaled_log_variance: int
    observed_parent_clock_phase_change_rate: int
    grandmaster_priority1: int
    grandmaster_clock_quality: ClockQuality
    grandmaster_priority2: int
    grandmaster_identity: ClockIdentity
    reserved: int = 0

    ID: ClassVar[int] = ManagementId.PARENT_DATA_SET
    _S: ClassVar[struct.Struct] = struct.Struct("!10sBBHiB4sB8s")

    def pack(self) -> bytes:
        return self._S.pack(
            self.parent_port_identity.pack(), int(self.parent_stats), self.reserved,
            self.observed_parent_offset_scaled_log_variance,
            self.observed_parent_clock_phase_change_rate, self.grandmaster_priority1,
            self.grandmaster_clock_quality.pack(), self.grandmaster_priority2,
            self.grandmaster_identity.raw,
        )

    @classmethod
    def unpack(cls, data: bytes) -> ParentDataSet:
        _need(data, cls._S.size, "PARENT_DATA_SET")
        pid, ps, res, var, rate, p1, q, p2, gm = cls._S.unpack_from(data)
        if ps & ~1:
            raise ParseError("PARENT_DATA_SET reserved flag bits set")
        return cls(PortIdentity.unpack(pid), bool(ps), var, rate, p1, ClockQuality.unpack(q),
                   p2, ClockIdentity(gm), res)


@dataclass(frozen=True, slots=True)
class TimePropertiesDataSet:
    """§15.5.3.6.1 TIME_PROPERTIES_DATA_SET (4 octets); flags as in the header's octet 1."""

    current_utc_offset: int
    flags: int
    time_source: int

    ID: ClassVar[int] = ManagementId.TIME_PROPERTIES_DATA_SET
    _S: ClassVar[struct.Struct] = struct.Struct("!hBB")

    def pack(self) -> bytes:
        return self._S.pack(self.current_utc_offset, self.flags, self.time_source)

    @classmethod
    def unpack(cls, data: bytes) -> TimePropertiesDataSet:
        _need(data, cls._S.size, "TIME_PROPERTIES_DATA_SET")
        return cls(*cls._S.unpack_from(data))


@dataclass(frozen=True, slots=True)
class PortDataSet:
    """§15.5.3.7.1 PORT_DATA_SET (26 octets)."""

    port_identity: PortIdentity
    port_state: int
    log_min_delay_req_interval: int
    peer_mean_path_delay: TimeInterval
    log_announce_interval: int
    announce_receipt_timeout: int
    log_sync_interval: int
    delay_mechanism: int
    log_min_pdelay_req_interval: int
    version_number: int
    minor_version_number: int = 0

    ID: ClassVar[int] = ManagementId.PORT_DATA_SET
    _S: ClassVar[struct.Struct] = struct.Struct("!10sBbqbBbBbB")

    def pack(self) -> bytes:
        return self._S.pack(
            self.port_identity.pack(), self.port_state, self.log_min_delay_req_interval,
            self.peer_mean_path_delay.scaled_ns, self.log_announce_interval,
            self.announce_receipt_timeout, self.log_sync_interval, self.delay_mechanism,
            self.log_min_pdelay_req_interval,
            (self.minor_version_number << 4) | self.version_number,
        )

    @classmethod
    def unpack(cls, data: bytes) -> PortDataSet:
        _need(data, cls._S.size, "PORT_DATA_SET")
        pid, st, lmd, pmpd, lai, art, lsi, dm, lmpd, ver = cls._S.unpack_from(data)
        return cls(PortIdentity.unpack(pid), st, lmd, TimeInterval(pmpd), lai, art, lsi, dm,
                   lmpd, ver & 0xF, ver >> 4)


@dataclass(frozen=True, slots=True)
class OctetValue:
    """PRIORITY1 / PRIORITY2 / DOMAIN / SLAVE_ONLY …: one octet + one reserved octet."""

    value: int
    reserved: int = 0

    def pack(self) -> bytes:
        return bytes((self.value, self.reserved))

    @classmethod
    def unpack(cls, data: bytes) -> OctetValue:
        _need(data, 2, "one-octet")
        return cls(data[0], data[1])


@dataclass(frozen=True, slots=True)
class TimeStatusNp:
    """linuxptp's TIME_STATUS_NP (managementId 0xC000, 50 octets): the servo's view.

    master_offset and ingress_time are Int64 ns; cumulativeScaledRateOffset and
    scaledLastGmPhaseChange Int32; gmTimeBaseIndicator UInt16; lastGmPhaseChange a 12-octet
    ScaledNs; gmPresent Int32 (boolean); gmIdentity the grandmaster's clockIdentity.
    """

    master_offset: int
    ingress_time: int
    cumulative_scaled_rate_offset: int
    scaled_last_gm_phase_change: int
    gm_time_base_indicator: int
    last_gm_phase_change: bytes
    gm_present: bool
    gm_identity: ClockIdentity

    ID: ClassVar[int] = ManagementId.TIME_STATUS_NP
    _S: ClassVar[struct.Struct] = struct.Struct("!qqiiH12si8s")

    def pack(self) -> bytes:
        return self._S.pack(
            self.master_offset, self.ingress_time, self.cumulative_scaled_rate_offset,
            self.scaled_last_gm_phase_change, self.gm_time_base_indicator,
            self.last_gm_phase_change, int(self.gm_present), self.gm_identity.raw,
        )

    @classmethod
    def unpack(cls, data: bytes) -> TimeStatusNp:
        _need(data, cls._S.size, "TIME_STATUS_NP")
        mo, it, csro, slgpc, tbi, lgpc, present, gm = cls._S.unpack_from(data)
        return cls(mo, it, csro, slgpc, tbi, lgpc, bool(present), ClockIdentity(gm))


DATA_SETS: dict[int, type[DefaultDataSet | CurrentDataSet | ParentDataSet
                          | TimePropertiesDataSet | PortDataSet | TimeStatusNp]] = {
    c.ID: c
    for c in (DefaultDataSet, CurrentDataSet, ParentDataSet, TimePropertiesDataSet, PortDataSet,
              TimeStatusNp)
}
