"""PTP data sets of an ordinary clock (IEEE 1588-2019 §8.2), as frozen snapshots."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from netclock.ptp.wire.types import (
    ClockIdentity,
    ClockQuality,
    Flags,
    PortIdentity,
    TimeSource,
)
from netclock.time import NS_PER_S, TAI_UTC_OFFSET_S

#: ST 2059-1 §5: the SMPTE epoch is the PTP epoch, 1970-01-01T00:00:00 TAI; in ns since it.
SMPTE_EPOCH_TAI_NS = 0


class PortState(enum.IntEnum):
    """§8.2.15.3.1 Table 20 portState (numeric values as on the wire in PORT_DATA_SET)."""

    INITIALIZING = 1
    FAULTY = 2
    DISABLED = 3
    LISTENING = 4
    PRE_MASTER = 5
    MASTER = 6
    PASSIVE = 7
    UNCALIBRATED = 8
    SLAVE = 9


class DelayMechanism(enum.IntEnum):
    """§8.2.15.4.4 Table 21 delayMechanism."""

    E2E = 0x01
    P2P = 0x02
    NO_MECHANISM = 0xFE
    COMMON_P2P = 0x03
    SPECIAL = 0x04


@dataclass(frozen=True, slots=True)
class DefaultDS:
    """§8.2.1 defaultDS: the local clock's own attributes."""

    clock_identity: ClockIdentity
    number_ports: int = 1
    clock_quality: ClockQuality = field(default_factory=ClockQuality)
    priority1: int = 128
    priority2: int = 128
    domain_number: int = 0
    slave_only: bool = False
    sdo_id: int = 0


@dataclass(frozen=True, slots=True)
class CurrentDS:
    """§8.2.2 currentDS: distance to the grandmaster and the latest measurements (ns)."""

    steps_removed: int = 0
    offset_from_master: int = 0
    mean_path_delay: int = 0


@dataclass(frozen=True, slots=True)
class ParentDS:
    """§8.2.3 parentDS: the port we sync to and its grandmaster."""

    parent_port_identity: PortIdentity
    grandmaster_identity: ClockIdentity
    grandmaster_clock_quality: ClockQuality
    grandmaster_priority1: int
    grandmaster_priority2: int


@dataclass(frozen=True, slots=True)
class TimePropertiesDS:
    """§8.2.4 timePropertiesDS: timescale, UTC offset and leap flags of the grandmaster."""

    current_utc_offset: int = TAI_UTC_OFFSET_S
    current_utc_offset_valid: bool = False
    leap61: bool = False
    leap59: bool = False
    time_traceable: bool = False
    frequency_traceable: bool = False
    ptp_timescale: bool = True
    time_source: int = TimeSource.INTERNAL_OSCILLATOR

    @property
    def flags(self) -> Flags:
        f = Flags.NONE
        for bit, on in (
            (Flags.LEAP_61, self.leap61),
            (Flags.LEAP_59, self.leap59),
            (Flags.CURRENT_UTC_OFFSET_VALID, self.current_utc_offset_valid),
            (Flags.PTP_TIMESCALE, self.ptp_timescale),
            (Flags.TIME_TRACEABLE, self.time_traceable),
            (Flags.FREQUENCY_TRACEABLE, self.frequency_traceable),
        ):
            if on:
                f |= bit
        return f

    @classmethod
    def from_flags(
        cls, flags: Flags, current_utc_offset: int, time_source: int
    ) -> TimePropertiesDS:
        return cls(
            current_utc_offset=current_utc_offset,
            current_utc_offset_valid=Flags.CURRENT_UTC_OFFSET_VALID in flags,
            leap61=Flags.LEAP_61 in flags,
            leap59=Flags.LEAP_59 in flags,
            time_traceable=Flags.TIME_TRACEABLE in flags,
            frequency_traceable=Flags.FREQUENCY_TRACEABLE in flags,
            ptp_timescale=Flags.PTP_TIMESCALE in flags,
            time_source=time_source,
        )

    def utc_ns(self, ptp_ns: int) -> int:
        """PTP (TAI) ns → UTC ns with currentUtcOffset (ARB timescales are returned unchanged)."""
        return ptp_ns - self.current_utc_offset * NS_PER_S if self.ptp_timescale else ptp_ns

    def smpte_ns(self, ptp_ns: int) -> int:
        """ST 2059-1 time: ns since the SMPTE epoch (1970-01-01 TAI), i.e. PTP time itself."""
        return ptp_ns - SMPTE_EPOCH_TAI_NS


@dataclass(frozen=True, slots=True)
class PortDS:
    """§8.2.15 portDS."""

    port_identity: PortIdentity
    port_state: PortState = PortState.INITIALIZING
    log_min_delay_req_interval: int = 0
    mean_link_delay: int = 0
    log_announce_interval: int = 1
    announce_receipt_timeout: int = 3
    log_sync_interval: int = 0
    delay_mechanism: DelayMechanism = DelayMechanism.E2E
    version_number: int = 2
    minor_version_number: int = 1
