"""Sans-IO PTP port of an ordinary clock (IEEE 1588-2019 §9): E2E, P2P or no delay mechanism.

Every entry point takes ``now`` (int ns in the driver's clock, normally CLOCK_MONOTONIC) and
returns a list of :mod:`~netclock.ptp.actions`. Receive timestamps and TX timestamps are in that
same local clock. On the master side local stamps become PTP time through ``time_source``, a
:class:`~netclock.calibration.Calibration` (local → PTP ns) the driver keeps up to date.

Shape (statime ``Port`` + aioquic ``now``)::

    port = PtpPort(PortConfig(...), PortIdentity(clock_id, 1), random.Random(seed))
    actions = port.start(now)
    actions = port.handle_event_receive(data, rx_ts, now)     # UDP 319
    actions = port.handle_general_receive(data, now)          # UDP 320
    actions = port.handle_send_timestamp(ctx, tx_ts, now)     # once per SendEvent
    actions = port.handle_timer(timer, now)                   # after SetTimer(timer, at)

Delay mechanism (``PortConfig.delay_mechanism``): E2E sends Delay_Req to the parent; P2P runs
the peer delay exchange (§11.4) on the link in every enabled state, as requester and responder,
one- or two-step, and measures neighborRateRatio from successive exchanges; NO_MECHANISM uses
a zero path delay. Event messages (Sync, Delay_Req, Pdelay_Req, Pdelay_Resp) go out as
:class:`SendEvent`; the driver picks the destination from the messageType (peer delay messages
go to the peer-delay address of the transport).
"""

from __future__ import annotations

import random
import struct
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import count

from netclock.calibration import Calibration
from netclock.ptp.actions import (
    Action,
    CancelTimer,
    Measurement,
    PortTimer,
    SendEvent,
    SendGeneral,
    SetTimer,
    StateChanged,
    TxContext,
    TxKind,
)
from netclock.ptp.bmca import (
    AcceptableMaster,
    ComparisonDataset,
    Decision,
    ForeignMasterList,
    acceptable,
    state_decision,
)
from netclock.ptp.datasets import (
    CurrentDS,
    DefaultDS,
    DelayMechanism,
    ParentDS,
    PortDS,
    PortState,
    TimePropertiesDS,
)
from netclock.ptp.filters import DelayFilter
from netclock.ptp.fsm import FsmEvent, ptp_fsm
from netclock.ptp.measurement import mean_path_delay, offset_from_master
from netclock.ptp.wire import (
    ALL_PORTS,
    Announce,
    ClockQuality,
    DelayReq,
    DelayResp,
    Flags,
    FollowUp,
    GrantUnicastTransmissionTlv,
    Header,
    Management,
    ManagementAction,
    ManagementErrorId,
    ManagementErrorStatusTlv,
    ManagementId,
    ManagementTlv,
    Message,
    MessageType,
    ParseError,
    PdelayReq,
    PdelayResp,
    PdelayRespFollowUp,
    PortIdentity,
    RequestUnicastTransmissionTlv,
    Signaling,
    Sync,
    parse,
)
from netclock.ptp.wire.gptp import FollowUpInfo
from netclock.ptp.wire.mgmt_data import (
    CurrentDataSet,
    DefaultDataSet,
    OctetValue,
    ParentDataSet,
    PortDataSet,
    TimePropertiesDataSet,
    TimeStatusNp,
)
from netclock.ptp.wire.smpte import LockingStatus, SyncMetadata
from netclock.time import NS_PER_S, PtpTimestamp, TimeInterval, TimeRangeError

_OWNER_IDS = count(1)

#: what is dropped unparsed (see PtpPort._drop_unparsed): messageType nibbles, and the wire
#: lengths of a Delay_Req (34-byte header + originTimestamp) and of a Delay_Resp (header +
#: receiveTimestamp + requestingPortIdentity), both without TLVs
_DELAY_REQ = int(MessageType.DELAY_REQ)
_DELAY_RESP = int(MessageType.DELAY_RESP)
_DELAY_REQ_LEN = 34 + 10
_REQUESTING_PORT = 34 + 10
_DELAY_RESP_LEN = _REQUESTING_PORT + 10
#: the parent's Sync and Follow_Up (16 a second each at logSyncInterval -4) take a fast path
#: (PtpPort._parent_timing) when they are TLV-less: header + one timestamp
_SYNC = int(MessageType.SYNC)
_FOLLOW_UP = int(MessageType.FOLLOW_UP)
_TIMING_LEN = 34 + 10
#: of such a message: octet 0 (majorSdoId, messageType), domainNumber, flagField,
#: correctionField, sourcePortIdentity, sequenceId, and the timestamp (seconds high 16 and
#: low 32 bits, nanoseconds)
_TIMING = struct.Struct("!B3xBxHq4x10sH2xHII")
_TWO_STEP = int(Flags.TWO_STEP)


def _well_formed(data: bytes, length: int) -> bool:
    """``data`` would parse as a TLV-less message of ``length`` bytes: PTP version 2, a
    messageLength of exactly ``length`` within the datagram, and a valid nanoseconds field in
    the timestamp after the header. Anything else goes through the parser, and malformed
    input is counted as such (a flood of garbage must show as garbage)."""
    return (
        len(data) >= length
        and data[1] & 0x0F == 2
        and int.from_bytes(data[2:4], "big") == length
        and int.from_bytes(data[40:44], "big") < 1_000_000_000
    )


def interval_ns(log_interval: int) -> int:
    """2^log seconds in ns."""
    return NS_PER_S << log_interval if log_interval >= 0 else NS_PER_S >> -log_interval


@dataclass(frozen=True, slots=True)
class PortConfig:
    """Port and clock settings (the linuxptp [global] items of the default profile)."""

    domain_number: int = 0
    #: majorSdoId (transportSpecific) and minorSdoId on transmit; received majorSdoId must match.
    major_sdo_id: int = 0
    minor_sdo_id: int = 0
    priority1: int = 128
    priority2: int = 128
    clock_quality: ClockQuality = field(default_factory=ClockQuality)
    slave_only: bool = False
    master_only: bool = False
    log_announce_interval: int = 1
    log_sync_interval: int = 0
    log_min_delay_req_interval: int = 0
    announce_receipt_timeout: int = 3
    two_step: bool = True
    #: complete Sync measurements from a new parent before UNCALIBRATED → SLAVE
    calibration_measurements: int = 2
    #: delay exchanges needed before offsets are reported (the first delays may be outliers)
    min_delay_samples: int = 3
    time_properties: TimePropertiesDS = field(
        default_factory=lambda: TimePropertiesDS(current_utc_offset_valid=True)
    )
    #: §8.2.15.4.4: E2E (Delay_Req to the master), P2P (peer delay on the link) or NO_MECHANISM
    delay_mechanism: DelayMechanism = DelayMechanism.E2E
    log_min_pdelay_req_interval: int = 0
    #: 802.1AS: Follow_Up carries the Follow_Up information TLV (cumulativeRateRatio)
    follow_up_info_tlv: bool = False
    #: 802.1AS neighborPropDelayThresh in ns (0 = no limit); above it the link is not asCapable
    neighbor_prop_delay_thresh: int = 0
    #: successive peer delay exchanges spanned by the neighborRateRatio measurement
    rate_ratio_window: int = 8
    #: unicast master table (§16.1, §17.5): addresses (opaque to the port, as the driver
    #: reports sources) asked for unicast Announce; the chosen parent also for Sync and
    #: Delay_Resp; Delay_Req then goes to the parent's address. Empty = multicast operation.
    unicast_masters: tuple[str, ...] = ()
    #: hybrid (mixed multicast/unicast) E2E, as ptp4l's hybrid_e2e: Announce and Sync by
    #: multicast, Delay_Req unicast to the address the parent's Announces come from (answered
    #: unicast, §16.1); multicast while that address is unknown (L2, no address from the driver)
    hybrid_e2e: bool = False
    #: durationField of unicast transmission requests (s); renewed at half of it
    unicast_duration_s: int = 60
    #: acceptable master table (§17.6): only Announces from these sender ports are qualified
    #: for the BMCA (others are counted in ``not_acceptable`` and ignored). Empty = accept all.
    acceptable_masters: tuple[AcceptableMaster, ...] = ()
    #: SMPTE ST 2059-2: as master, send this synchronization metadata (SM TLV in a Management
    #: COMMAND to every port) once per announce interval; its masterLockingStatus follows the
    #: port's clockClass (see :func:`locking_status`). None: send none.
    sync_metadata: SyncMetadata | None = None


def locking_status(clock_class: int) -> LockingStatus:
    """ST 2059-2 masterLockingStatus for an IEEE 1588 clockClass: locked to its reference
    (6, 13), in holdover within spec (7, 14: warm), holdover out of spec or degraded (52, 58,
    187, 193: cold), otherwise free running."""
    if clock_class in (6, 13):
        return LockingStatus.LOCKED
    if clock_class in (7, 14):
        return LockingStatus.WARM_LOCKING
    if clock_class in (52, 58, 187, 193):
        return LockingStatus.COLD_LOCKING
    return LockingStatus.FREE_RUN


@dataclass(frozen=True, slots=True)
class PortSnapshot:
    """What :meth:`PtpPort.observe` returns (serialisable view of the data sets)."""

    port_ds: PortDS
    default_ds: DefaultDS
    current_ds: CurrentDS
    parent_ds: ParentDS
    time_properties_ds: TimePropertiesDS
    foreign_masters: int
    counters: dict[str, int]


@dataclass(slots=True)
class _PendingSync:
    sequence_id: int
    source: PortIdentity
    t2: int
    correction: int
    two_step: bool
    t1: int | None = None


#: offset of the common header's sequenceId (§13.3.1)
_SEQ_AT = 30

#: Delay_Reqs a slave keeps waiting for their answers (at 4 a second, 2 s of them)
MAX_PENDING_DELAY_REQS = 8


@dataclass(slots=True)
class _PendingDelayReq:
    sequence_id: int
    t3: int | None = None
    t4: int | None = None
    c_resp: int = 0


@dataclass(slots=True)
class _PendingPdelay:
    sequence_id: int
    t1: int | None = None  # local Pdelay_Req send
    t2: int = 0  # responder receive (responder ns)
    t3: int | None = None  # responder Pdelay_Resp send (responder ns)
    t4: int | None = None  # local Pdelay_Resp receive
    correction: int = 0
    two_step: bool = True
    responder: PortIdentity | None = None


class PtpPort:
    """One PTP port of an ordinary clock, with its own BMCA (Ebest = Erbest)."""

    def __init__(self, config: PortConfig, identity: PortIdentity, rng: random.Random) -> None:
        self.config = config
        self.identity = identity
        self._identity_packed: tuple[PortIdentity, bytes] | None = None
        #: (parent, its portIdentity as on the wire, or None when it is this clock's own)
        self._parent_packed: tuple[PortIdentity, bytes | None] | None = None
        self.rng = rng
        self.state = PortState.INITIALIZING
        self.time_source = Calibration()
        self.delay_filter = DelayFilter()
        self.foreign = ForeignMasterList(identity, config.log_announce_interval)
        self._owner = next(_OWNER_IDS)
        self._timers: dict[PortTimer, int] = {}
        self._seq = {"sync": 0, "announce": 0, "delay_req": 0, "pdelay_req": 0,
                     "signaling": 0, "management": 0}
        self._parent: PortIdentity | None = None
        self._parent_announce: Announce | None = None
        self._sync: _PendingSync | None = None
        self._early_follow_up: FollowUp | None = None
        self._last_sync: tuple[int, int, int] | None = None  # t1, t2, c_sync
        #: Delay_Reqs still waiting for their TX stamp or Delay_Resp, oldest first (a reader
        #: that polls its socket may send the next one before it reads the last one's answer)
        self._delay_reqs: dict[int, _PendingDelayReq] = {}
        self._delay_req_template: tuple[tuple[object, ...], bytes] | None = None
        self._last_exchange: tuple[int, int, int] = (0, 0, 0)  # t3, t4, Delay_Resp correction
        self._raw_delay = 0
        self._measurements_from_parent = 0
        self._offset = 0
        self._delay = 0
        self._master_log_min_delay_req: int | None = None
        #: master/local frequency ratio used to scale local intervals in the delay computation
        self._rate_num, self._rate_den = 1, 1
        #: recent (t1, t2, t3, t4, c_sync, c_resp) exchanges, kept to refilter on rate changes
        self._exchanges: deque[tuple[int, int, int, int, int, int]] = deque(maxlen=64)
        self.time_properties = config.time_properties
        # peer delay (P2P) state: requester, responder and the link estimates
        self.pdelay_filter = DelayFilter()
        self._pdelay: _PendingPdelay | None = None
        self._early_pdelay_fu: PdelayRespFollowUp | None = None
        #: two-step responses awaiting their TX stamp: seq → (requester, scaled correction)
        self._pdelay_resp_pending: dict[int, tuple[PortIdentity, int]] = {}
        self._pdelay_pairs: deque[tuple[int, int]] = deque(maxlen=config.rate_ratio_window + 1)
        self._pdelay_peer: PortIdentity | None = None
        #: latest filtered neighborPropDelay (ns), None before the first exchange
        self.neighbor_prop_delay: int | None = None
        #: neighborRateRatio as a fraction (neighbor / local), 1/1 until measured
        self.neighbor_rate_ratio: tuple[int, int] = (1, 1)
        self._raw_pdelay = 0
        #: the servo's latest (offset, ingress PTP ns), set by the driver for management replies
        self._servo_status: tuple[int, int] | None = None
        self._cumulative_rate_offset = 0
        #: unicast: the address each foreign master's Announce came from, and grants received
        self._addresses: dict[PortIdentity, str] = {}
        self.unicast_grants: dict[tuple[str, int], int] = {}
        self._src: str | None = None
        #: the parent's latest ST 2059-2 synchronization metadata (None: none received)
        self.sync_metadata: SyncMetadata | None = None
        self.counters: dict[str, int] = {
            "rx": 0,
            "tx": 0,
            "parse_errors": 0,
            "dropped": 0,
            "measurements": 0,
            "announce_timeouts": 0,
            "pdelay_exchanges": 0,
            "pdelay_lost": 0,
            "pdelay_multiple_responders": 0,
            "not_acceptable": 0,
            "wrong_source": 0,
        }

    # ------------------------------------------------------------------ data sets / observe

    @property
    def default_ds(self) -> DefaultDS:
        c = self.config
        return DefaultDS(
            clock_identity=self.identity.clock_identity,
            clock_quality=c.clock_quality,
            priority1=c.priority1,
            priority2=c.priority2,
            domain_number=c.domain_number,
            slave_only=c.slave_only,
            sdo_id=(c.major_sdo_id << 8) | c.minor_sdo_id,
        )

    @property
    def parent_ds(self) -> ParentDS:
        a = self._parent_announce
        if a is None or self._parent is None:
            ds = self.default_ds
            return ParentDS(
                PortIdentity(ds.clock_identity, 0),
                ds.clock_identity,
                ds.clock_quality,
                ds.priority1,
                ds.priority2,
            )
        return ParentDS(
            self._parent,
            a.grandmaster_identity,
            a.grandmaster_clock_quality,
            a.grandmaster_priority1,
            a.grandmaster_priority2,
        )

    @property
    def current_ds(self) -> CurrentDS:
        steps = self._parent_announce.steps_removed + 1 if self._parent_announce else 0
        return CurrentDS(steps, self._offset, self._delay)

    @property
    def port_ds(self) -> PortDS:
        c = self.config
        return PortDS(
            port_identity=self.identity,
            port_state=self.state,
            log_min_delay_req_interval=self._delay_req_log_interval,
            log_announce_interval=c.log_announce_interval,
            announce_receipt_timeout=c.announce_receipt_timeout,
            log_sync_interval=c.log_sync_interval,
            delay_mechanism=c.delay_mechanism,
            mean_link_delay=self.neighbor_prop_delay or 0,
        )

    @property
    def as_capable(self) -> bool:
        """802.1AS asCapable: P2P with a measured neighbor delay within the threshold."""
        d = self.neighbor_prop_delay
        thresh = self.config.neighbor_prop_delay_thresh
        return d is not None and (thresh <= 0 or d <= thresh)

    @property
    def neighbor_rate_ratio_float(self) -> float:
        num, den = self.neighbor_rate_ratio
        return num / den

    @property
    def parent(self) -> PortIdentity | None:
        return self._parent

    def observe(self) -> PortSnapshot:
        return PortSnapshot(
            self.port_ds,
            self.default_ds,
            self.current_ds,
            self.parent_ds,
            self.time_properties,
            len(self.foreign),
            dict(self.counters),
        )

    @property
    def _delay_req_log_interval(self) -> int:
        if self._master_log_min_delay_req is not None and self.state in (
            PortState.SLAVE,
            PortState.UNCALIBRATED,
        ):
            return self._master_log_min_delay_req
        return self.config.log_min_delay_req_interval

    # ------------------------------------------------------------------ run-time settings

    def set_time_source(self, calibration: Calibration) -> None:
        """Local → PTP mapping used for the timestamps this port sends as master."""
        self.time_source = calibration

    def set_rate_ratio(self, num: int, den: int) -> None:
        """The master/local frequency ratio (e.g. a fitted calibration's rate_num/rate_denom).

        The mean path delay subtracts a local interval (t3 − t2) from a master one (t4 − t1);
        with the ratio the local interval is scaled first, so a local frequency error does not
        leak into the delay (IEEE 1588-2019 §11.3.2 leaves the rate correction to the slave).
        """
        if num <= 0 or den <= 0:
            raise ValueError("rate ratio terms must be > 0")
        old = self._rate_num * den - num * self._rate_den
        self._rate_num, self._rate_den = num, den
        if abs(old) * 10_000_000 > self._rate_den * den and self._exchanges:
            # rate moved by > 0.1 ppm: recompute the stored exchanges' delays with it
            self.delay_filter.reset()
            for ex in self._exchanges:
                self.delay_filter.sample(mean_path_delay(*ex, num, den))

    def set_servo_status(self, offset_ns: int, ingress_ptp_ns: int) -> None:
        """The servo's latest offset of master time from the published time (ns) and the PTP
        time of that Sync's arrival: what CURRENT_DATA_SET / TIME_STATUS_NP report. Until it is
        set, offsetFromMaster is the raw local-minus-master offset."""
        self._servo_status = (offset_ns, ingress_ptp_ns)

    def reconfigure(self, now: int, **changes: object) -> list[Action]:
        """Change :class:`PortConfig` fields while running and re-run the BMCA."""
        self.config = replace(self.config, **changes)  # type: ignore[arg-type]
        self.foreign.log_announce_interval = self.config.log_announce_interval
        self.foreign.retain_acceptable(self.config.acceptable_masters)
        if "time_properties" in changes and self.state in (PortState.MASTER,):
            self.time_properties = self.config.time_properties
        if self.state in (PortState.INITIALIZING, PortState.FAULTY, PortState.DISABLED):
            return []
        return self._run_bmca(now, "reconfigured")

    # ------------------------------------------------------------------ entry points

    def start(self, now: int) -> list[Action]:
        """INITIALIZING → LISTENING (and straight to MASTER for a master-only port)."""
        out: list[Action] = []
        self._transition(FsmEvent.INIT_COMPLETE, now, out, "init complete")
        if self.config.master_only:
            out += self._run_bmca(now, "master only")
        return out

    def fault(self, now: int, reason: str = "fault detected") -> list[Action]:
        out: list[Action] = []
        self._transition(FsmEvent.FAULT_DETECTED, now, out, reason)
        return out

    def clear_fault(self, now: int) -> list[Action]:
        """FAULTY → INITIALIZING → LISTENING."""
        out: list[Action] = []
        if self.state == PortState.FAULTY:
            self._transition(FsmEvent.FAULT_CLEARED, now, out, "fault cleared")
            out += self.start(now)
        return out

    def disable(self, now: int) -> list[Action]:
        out: list[Action] = []
        self._transition(FsmEvent.DESIGNATED_DISABLED, now, out, "disabled")
        return out

    def enable(self, now: int) -> list[Action]:
        out: list[Action] = []
        if self.state == PortState.DISABLED:
            self._transition(FsmEvent.DESIGNATED_ENABLED, now, out, "enabled")
            out += self.start(now)
        return out

    def handle_event_receive(
        self, data: bytes, rx_ts: int, now: int, src: str | None = None
    ) -> list[Action]:
        """A datagram from the event port (319) with its local receive timestamp. ``src`` (the
        sender's address, opaque) is needed for unicast operation only."""
        self._src = src
        if (
            data[:1]
            and data[0] & 0x0F == _DELAY_REQ
            and self.state != PortState.MASTER
            and _well_formed(data, _DELAY_REQ_LEN)
        ):
            # every other slave's multicast Delay_Req: only a master answers them, so they are
            # dropped unparsed (the counters as after a parse: rx and dropped)
            return self._drop_unparsed()
        if data[:1] and data[0] & 0x0F == _SYNC:
            timing = self._parent_timing(data)
            if timing is not None:
                self.counters["rx"] += 1
                return self._sync_from_parent(*timing, rx_ts)
        msg = self._accept(data)
        if msg is None:
            return []
        if isinstance(msg, Sync):
            return self._on_sync(msg, rx_ts, now)
        if isinstance(msg, DelayReq):
            return self._on_delay_req(msg, rx_ts, now)
        if isinstance(msg, PdelayReq):
            return self._on_pdelay_req(msg, rx_ts, now)
        if isinstance(msg, PdelayResp):
            return self._on_pdelay_resp(msg, rx_ts, now)
        return self._drop()

    def handle_general_receive(
        self, data: bytes, now: int, src: str | None = None
    ) -> list[Action]:
        """A datagram from the general port (320); ``src`` as for handle_event_receive."""
        self._src = src
        if (
            data[:1]
            and data[0] & 0x0F == _DELAY_RESP
            and _well_formed(data, _DELAY_RESP_LEN)
            and data[_REQUESTING_PORT:_DELAY_RESP_LEN] != self._identity_raw
        ):
            # the master's multicast answer to another slave's Delay_Req: dropped unparsed
            return self._drop_unparsed()
        pending = self._sync
        if (
            pending is not None
            and data[:1]
            and data[0] & 0x0F == _FOLLOW_UP
            and not self.config.follow_up_info_tlv
        ):
            timing = self._parent_timing(data)
            if timing is not None and timing[0] == pending.sequence_id:
                self.counters["rx"] += 1
                self._sync = None
                pending.t1 = timing[3]
                pending.correction += timing[2]
                return self._complete_sync(pending)
        msg = self._accept(data)
        if msg is None:
            return []
        if isinstance(msg, Announce):
            return self._on_announce(msg, now)
        if isinstance(msg, FollowUp):
            return self._on_follow_up(msg, now)
        if isinstance(msg, DelayResp):
            return self._on_delay_resp(msg, now)
        if isinstance(msg, Management):
            return self._on_management(msg)
        if isinstance(msg, PdelayRespFollowUp):
            return self._on_pdelay_resp_follow_up(msg, now)
        if isinstance(msg, Signaling):
            return self._on_signaling(msg)
        return self._drop()

    def handle_send_timestamp(self, ctx: TxContext, tx_ts: int, now: int) -> list[Action]:
        """The TX timestamp (local ns) of a :class:`SendEvent`; each context is accepted once."""
        if ctx.owner != self._owner:
            raise ValueError("TX context belongs to another port")
        ctx.consume()
        if ctx.kind is TxKind.SYNC:
            if self.state != PortState.MASTER:
                return []
            return [SendGeneral(self._follow_up(ctx.sequence_id, tx_ts).pack())]
        if ctx.kind is TxKind.PDELAY_RESP:
            return self._pdelay_resp_follow_up(ctx.sequence_id, tx_ts)
        if ctx.kind is TxKind.PDELAY_REQ:
            pd = self._pdelay
            if pd is None or pd.sequence_id != ctx.sequence_id:
                return []
            pd.t1 = tx_ts
            return self._complete_pdelay()
        pending = self._delay_reqs.get(ctx.sequence_id)
        if pending is None:
            return []
        pending.t3 = tx_ts
        return self._complete_delay_exchange(pending)

    def handle_timer(self, timer: PortTimer, now: int) -> list[Action]:
        """A timer armed with :class:`SetTimer` fired. Timers not armed (any more) are ignored."""
        if timer not in self._timers:
            return []
        del self._timers[timer]
        if timer is PortTimer.ANNOUNCE_RECEIPT:
            return self._on_announce_timeout(now)
        if timer is PortTimer.QUALIFICATION:
            out: list[Action] = []
            self._transition(FsmEvent.QUALIFICATION_TIMEOUT_EXPIRES, now, out, "qualified")
            return out
        if timer is PortTimer.ANNOUNCE:
            return self._send_announce(now)
        if timer is PortTimer.SYNC:
            return self._send_sync(now)
        if timer is PortTimer.PDELAY_REQ:
            return self._send_pdelay_req(now)
        if timer is PortTimer.UNICAST_REQUEST:
            return self._request_unicast(now)
        return self._send_delay_req(now)

    # ------------------------------------------------------------------ receive helpers

    def _drop(self) -> list[Action]:
        self.counters["dropped"] += 1
        return []

    def _drop_unparsed(self) -> list[Action]:
        """A message that cannot concern this port, told by its type and a field or two (at
        16 Sync/s each other slave adds its Delay_Reqs and their answers to every slave's
        traffic); counted as a parsed one that was dropped would be."""
        self.counters["rx"] += 1
        self.counters["dropped"] += 1
        return []

    @property
    def _identity_raw(self) -> bytes:
        """This port's portIdentity as on the wire (cached per identity object)."""
        cached = self._identity_packed
        if cached is None or cached[0] is not self.identity:
            cached = self._identity_packed = (self.identity, self.identity.pack())
        return cached[1]

    def _parent_timing(self, data: bytes) -> tuple[int, int, int, int] | None:
        """``(sequenceId, flagField, correction ns, timestamp ns)`` of a TLV-less Sync or
        Follow_Up that the full path (parse, :meth:`_accept`, :meth:`_from_parent`) would take
        as the parent's, read straight off the wire; None for anything else, which then goes
        that way. At 16 Sync/s these two are most of a slave's traffic, and the objects the
        parse builds for them are most of its cost."""
        parent = self._parent
        if (
            parent is None
            or self.state not in (PortState.SLAVE, PortState.UNCALIBRATED)
            or not _well_formed(data, _TIMING_LEN)
        ):
            return None
        cached = self._parent_packed
        if cached is None or cached[0] is not parent:
            own = parent.clock_identity == self.identity.clock_identity  # (_accept drops it)
            cached = self._parent_packed = (parent, None if own else parent.pack())
        b0, domain, flags, correction, spi, seq, s_hi, s_lo, ns = _TIMING.unpack_from(data)
        if (
            spi != cached[1]
            or domain != self.config.domain_number
            or b0 >> 4 != self.config.major_sdo_id
        ):
            return None
        if self._src is not None:
            known = self._addresses.get(parent)
            if known is not None and self._src != known:
                return None  # the full path counts it in wrong_source
        return seq, flags, TimeInterval(correction).to_ns(), ((s_hi << 32) | s_lo) * NS_PER_S + ns

    def _accept(self, data: bytes) -> Message | None:
        self.counters["rx"] += 1
        if self.state in (PortState.INITIALIZING, PortState.FAULTY, PortState.DISABLED):
            self.counters["dropped"] += 1
            return None
        try:
            msg = parse(data)
        except ParseError:
            self.counters["parse_errors"] += 1
            return None
        h = msg._header
        if (
            h.domain_number != self.config.domain_number
            or h.major_sdo_id != self.config.major_sdo_id
            or h.source_port_identity.clock_identity == self.identity.clock_identity
        ):
            self.counters["dropped"] += 1
            return None
        return msg

    def _from_parent(self, msg: Message) -> bool:
        """A message of the parent, from the address its Announces come from.

        PTP has no authentication here, but a clockIdentity is easy to forge and an IP source
        address is not (it takes raw sockets on the path): Sync, Follow_Up and Delay_Resp that
        carry the parent's identity from any other address (a spoofer, or a replay of the
        parent's packets from another host) are dropped and counted in ``wrong_source``.
        Without addresses (L2, or a driver that passes none) only the identity is checked."""
        if not (
            self.state in (PortState.SLAVE, PortState.UNCALIBRATED)
            and self._parent is not None
            and msg._header.source_port_identity == self._parent
        ):
            return False
        known = self._addresses.get(self._parent)
        if self._src is not None and known is not None and self._src != known:
            self.counters["wrong_source"] += 1
            return False
        return True

    def _on_announce(self, msg: Announce, now: int) -> list[Action]:
        if msg.steps_removed >= 255:  # §9.3.2.5 d
            return self._drop()
        if not acceptable(self.config.acceptable_masters, msg.header.source_port_identity):
            self.counters["not_acceptable"] += 1  # §17.6: never a foreign master record
            return []
        sender = msg.header.source_port_identity
        if sender == self._parent and self._src is not None:
            known = self._addresses.get(sender)
            if known is not None and self._src != known:
                # the parent's identity from another address: a spoofer (it must not move the
                # pinned address, see _from_parent). A master that really moved falls silent
                # at its old address: the receipt timeout forgets it and the next Announces
                # qualify it at the new one.
                self.counters["wrong_source"] += 1
                return []
        self.foreign.add(msg, now)
        if self._src is not None:
            self._addresses[sender] = self._src
        out: list[Action] = []
        if msg.header.source_port_identity == self._parent:
            self._parent_announce = msg
            self.time_properties = TimePropertiesDS.from_flags(
                msg.header.flags, msg.current_utc_offset, msg.time_source
            )
        if self.state in (
            PortState.SLAVE,
            PortState.UNCALIBRATED,
            PortState.LISTENING,
            PortState.PASSIVE,
        ) and (msg.header.source_port_identity == self._parent or self._parent is None):
            self._arm_announce_receipt(now, out)
        out += self._run_bmca(now, "announce")
        return out

    def _on_announce_timeout(self, now: int) -> list[Action]:
        self.counters["announce_timeouts"] += 1
        if self._parent is not None:
            self.foreign.remove(self._parent)
            self._addresses.pop(self._parent, None)
        self.foreign.age(now)
        out: list[Action] = []
        d0 = ComparisonDataset.from_default_ds(self.default_ds, self.identity)
        best = self.foreign.best(now)
        erbest = best[0] if best else None
        decision = state_decision(
            d0, erbest, erbest, PortState.LISTENING,
            slave_only=self.config.slave_only, master_only=self.config.master_only,
        )
        if decision is Decision.LISTENING:
            self._transition(FsmEvent.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES, now, out,
                             "announce receipt timeout")
            if self.state in (PortState.LISTENING, PortState.PASSIVE):
                self._arm_announce_receipt(now, out)
            return out
        return self._apply_decision(decision, best, now, "announce receipt timeout")

    def _run_bmca(self, now: int, reason: str) -> list[Action]:
        self.foreign.age(now)
        best = self.foreign.best(now)
        erbest = best[0] if best else None
        d0 = ComparisonDataset.from_default_ds(self.default_ds, self.identity)
        decision = state_decision(
            d0, erbest, erbest, self.state,
            slave_only=self.config.slave_only, master_only=self.config.master_only,
        )
        return self._apply_decision(decision, best, now, reason)

    def _apply_decision(
        self,
        decision: Decision,
        best: tuple[ComparisonDataset, Announce] | None,
        now: int,
        reason: str,
    ) -> list[Action]:
        out: list[Action] = []
        if decision is Decision.LISTENING:
            if self.state not in (PortState.LISTENING,) and self.config.slave_only:
                self._parent = None  # e.g. the parent left the acceptable master table
                self._parent_announce = None
                self._transition(FsmEvent.RS_MASTER, now, out, f"{reason}: no master")
            return out
        why = f"{reason}: BMCA {decision.value}"
        if decision is Decision.S1:
            assert best is not None
            new_parent = best[0].sender
            changed = new_parent != self._parent
            self._parent = new_parent
            self._parent_announce = best[1]
            a = best[1]
            self.time_properties = TimePropertiesDS.from_flags(
                a.header.flags, a.current_utc_offset, a.time_source
            )
            if changed:
                self._measurements_from_parent = 0
                self._sync = None
                self._last_sync = None
                self._early_follow_up = None
                self.delay_filter.reset()
                self._exchanges.clear()
                self._master_log_min_delay_req = None
            self._transition(FsmEvent.RS_SLAVE, now, out, why, new_master=changed)
            return out
        self._parent = None
        self._parent_announce = None
        self.time_properties = self.config.time_properties
        if decision in (Decision.M1, Decision.M2):
            self._transition(FsmEvent.RS_GRAND_MASTER, now, out, why)
        elif decision is Decision.M3:
            self._transition(FsmEvent.RS_MASTER, now, out, why)
        else:
            self._transition(FsmEvent.RS_PASSIVE, now, out, why)
        return out

    # ------------------------------------------------------------------ state machine

    def _transition(
        self, event: FsmEvent, now: int, out: list[Action], reason: str, *, new_master: bool = False
    ) -> None:
        old = self.state
        new = ptp_fsm(
            old, event, new_master=new_master,
            slave_only=self.config.slave_only, master_only=self.config.master_only,
        )
        if new == old:
            return
        self.state = new
        out.append(StateChanged(old, new, f"{event.value}: {reason}"))
        self._enter(old, new, now, out)
        if (
            self.config.delay_mechanism == DelayMechanism.P2P
            and new not in (PortState.INITIALIZING, PortState.FAULTY, PortState.DISABLED)
            and PortTimer.PDELAY_REQ not in self._timers
        ):
            self._set(PortTimer.PDELAY_REQ, now, out)
        unicast_states = (PortState.LISTENING, PortState.UNCALIBRATED, PortState.SLAVE,
                          PortState.PASSIVE)
        if (self.config.unicast_masters and new in unicast_states
                and (PortTimer.UNICAST_REQUEST not in self._timers or new_master)):
            self._set(PortTimer.UNICAST_REQUEST, now, out)

    def _cancel(self, timer: PortTimer, out: list[Action]) -> None:
        if self._timers.pop(timer, None) is not None:
            out.append(CancelTimer(timer))

    def _set(self, timer: PortTimer, at: int, out: list[Action]) -> None:
        self._timers[timer] = at
        out.append(SetTimer(timer, at))

    def _arm_announce_receipt(self, now: int, out: list[Action]) -> None:
        iv = interval_ns(self.config.log_announce_interval)
        jitter = int(self.rng.random() * iv)
        timeout = self.config.announce_receipt_timeout * iv + jitter
        self._set(PortTimer.ANNOUNCE_RECEIPT, now + timeout, out)

    def _enter(self, old: PortState, new: PortState, now: int, out: list[Action]) -> None:
        master_timers = (PortTimer.ANNOUNCE, PortTimer.SYNC)
        if new in (PortState.INITIALIZING, PortState.FAULTY, PortState.DISABLED):
            for t in list(self._timers):
                self._cancel(t, out)
            self._parent = None
            self._parent_announce = None
            self.foreign.clear()
            self._sync = None
            self._delay_reqs.clear()
            self._pdelay = None
            self._pdelay_resp_pending.clear()
            return
        if new == PortState.MASTER:
            self._cancel(PortTimer.ANNOUNCE_RECEIPT, out)
            self._cancel(PortTimer.DELAY_REQ, out)
            self._cancel(PortTimer.QUALIFICATION, out)
            self._delay_reqs.clear()
            self._sync = None
            if old != PortState.MASTER:
                self._set(PortTimer.ANNOUNCE, now, out)
                self._set(PortTimer.SYNC, now, out)
            return
        for t in master_timers:
            self._cancel(t, out)
        if new == PortState.PRE_MASTER:
            self._cancel(PortTimer.DELAY_REQ, out)
            self._cancel(PortTimer.ANNOUNCE_RECEIPT, out)
            steps = self._parent_announce.steps_removed if self._parent_announce else 0
            iv = interval_ns(self.config.log_announce_interval)
            self._set(PortTimer.QUALIFICATION, now + (steps + 1) * iv, out)
            return
        self._cancel(PortTimer.QUALIFICATION, out)
        if new in (PortState.LISTENING, PortState.PASSIVE):
            self._cancel(PortTimer.DELAY_REQ, out)
            self._delay_reqs.clear()
            self._arm_announce_receipt(now, out)
            return
        # UNCALIBRATED / SLAVE
        if PortTimer.ANNOUNCE_RECEIPT not in self._timers:
            self._arm_announce_receipt(now, out)
        if (
            PortTimer.DELAY_REQ not in self._timers
            and self.config.delay_mechanism == DelayMechanism.E2E
        ):
            self._set(PortTimer.DELAY_REQ, now + self._delay_req_spacing(), out)

    # ------------------------------------------------------------------ slave side

    def _delay_req_spacing(self) -> int:
        """§9.5.11.2: uniformly random in (0, 2 × 2^logMinDelayReqInterval]."""
        iv = interval_ns(self._delay_req_log_interval)
        return 1 + int(self.rng.random() * 2 * iv)

    def _on_sync(self, msg: Sync, rx_ts: int, now: int) -> list[Action]:
        if not self._from_parent(msg):
            return self._drop()
        h = msg.header
        return self._sync_from_parent(
            h.sequence_id, int(h.flags), h.correction.to_ns(), msg.origin_timestamp.to_ns(), rx_ts
        )

    def _sync_from_parent(
        self, sequence_id: int, flags: int, correction: int, origin: int, rx_ts: int
    ) -> list[Action]:
        """The parent's Sync (``origin``: its originTimestamp in ns), received at ``rx_ts``."""
        assert self._parent is not None
        two_step = bool(flags & _TWO_STEP)
        pending = _PendingSync(sequence_id, self._parent, rx_ts, correction, two_step)
        if not two_step:
            pending.t1 = origin
            self._sync = None
            return self._complete_sync(pending)
        fu = self._early_follow_up
        self._early_follow_up = None
        if fu is not None and fu.header.sequence_id == sequence_id:
            pending.t1 = fu.precise_origin_timestamp.to_ns()
            pending.correction += fu.header.correction.to_ns()
            return self._complete_sync(pending)
        self._sync = pending
        return []

    def _on_follow_up(self, msg: FollowUp, now: int) -> list[Action]:
        if not self._from_parent(msg):
            return self._drop()
        pending = self._sync
        if pending is None or pending.sequence_id != msg.header.sequence_id:
            self._early_follow_up = msg  # may precede its Sync (§11.3 allows any order)
            return []
        self._sync = None
        pending.t1 = msg.precise_origin_timestamp.to_ns()
        pending.correction += msg.header.correction.to_ns()
        if self.config.follow_up_info_tlv:
            try:
                info = FollowUpInfo.from_tlvs(msg.tlvs)
            except ParseError:
                info = None
            if info is not None:
                self._cumulative_rate_offset = info.cumulative_scaled_rate_offset
        return self._complete_sync(pending)

    def _delay_ready(self) -> int | None:
        mech = self.config.delay_mechanism
        if mech == DelayMechanism.NO_MECHANISM:
            return 0
        if mech == DelayMechanism.P2P:
            if len(self.pdelay_filter.median) < self.config.min_delay_samples:
                return None
            return self.neighbor_prop_delay
        if len(self.delay_filter.median) < self.config.min_delay_samples:
            return None
        return self.delay_filter.value()

    def _complete_sync(self, s: _PendingSync) -> list[Action]:
        assert s.t1 is not None
        self._last_sync = (s.t1, s.t2, s.correction)
        delay = self._delay_ready()
        if delay is None:
            return []
        return self._measure(s.sequence_id, delay)

    def _measure(self, sequence_id: int, delay: int) -> list[Action]:
        assert self._last_sync is not None
        t1, t2, c_sync = self._last_sync
        offset = offset_from_master(t1, t2, delay, c_sync)
        self._offset = offset
        self._delay = delay
        t3, t4, c_resp = self._last_exchange
        raw = self._raw_delay
        if self.config.delay_mechanism != DelayMechanism.E2E:
            t3 = t4 = c_resp = 0
            raw = self._raw_pdelay if self.config.delay_mechanism == DelayMechanism.P2P else 0
        out: list[Action] = [
            Measurement(offset, delay, t1, t2, t3, t4, raw, c_sync, sequence_id, c_resp)
        ]
        self.counters["measurements"] += 1
        self._measurements_from_parent += 1
        if (
            self.state == PortState.UNCALIBRATED
            and self._measurements_from_parent >= self.config.calibration_measurements
        ):
            self._transition(FsmEvent.MASTER_CLOCK_SELECTED, t2, out, "calibrated")
        return out

    def _send_delay_req(self, now: int) -> list[Action]:
        out: list[Action] = []
        if self.state not in (PortState.SLAVE, PortState.UNCALIBRATED):
            return out
        seq = self._next_seq("delay_req")
        pending = self._delay_reqs
        pending[seq] = _PendingDelayReq(seq)
        while len(pending) > MAX_PENDING_DELAY_REQS:
            del pending[next(iter(pending))]
        dest = self._parent_address()
        if dest is None and self.config.hybrid_e2e and self._parent is not None:
            dest = self._addresses.get(self._parent)
        flags = Flags.UNICAST if dest is not None else Flags.NONE
        ctx = TxContext(TxKind.DELAY_REQ, seq, self._owner)
        out.append(SendEvent(self._delay_req_bytes(seq, flags), ctx, dest))
        self.counters["tx"] += 1
        self._set(PortTimer.DELAY_REQ, now + self._delay_req_spacing(), out)
        return out

    def _delay_req_bytes(self, seq: int, flags: Flags) -> bytes:
        """The Delay_Req with ``seq``: only the sequenceId changes from one to the next, so
        the rest is packed once per header content (identity, domain, sdoId, flags)."""
        c = self.config
        key = (self.identity, c.domain_number, c.major_sdo_id, c.minor_sdo_id, flags)
        cached = self._delay_req_template
        if cached is None or cached[0] != key:
            hdr = self._header(0, log_interval=0x7F, flags=flags)
            cached = self._delay_req_template = (key, DelayReq(hdr, PtpTimestamp(0, 0)).pack())
        data = cached[1]
        return data[:_SEQ_AT] + seq.to_bytes(2, "big") + data[_SEQ_AT + 2:]

    def _on_delay_resp(self, msg: DelayResp, now: int) -> list[Action]:
        pending = self._delay_reqs.get(msg.header.sequence_id)
        if (
            not self._from_parent(msg)
            or msg.requesting_port_identity != self.identity
            or pending is None
            or pending.t4 is not None
        ):
            return self._drop()
        pending.t4 = msg.receive_timestamp.to_ns()
        pending.c_resp = msg.header.correction.to_ns()
        log_iv = msg.header.log_message_interval
        if -10 <= log_iv <= 10:
            self._master_log_min_delay_req = log_iv
        return self._complete_delay_exchange(pending)

    def _complete_delay_exchange(self, p: _PendingDelayReq) -> list[Action]:
        if p.t3 is None or p.t4 is None or self._last_sync is None:
            return []
        # this one and the older ones still waiting are done with (exchanges stay in order)
        pending = self._delay_reqs
        while pending:
            if pending.pop(next(iter(pending))) is p:
                break
        t1, t2, c_sync = self._last_sync
        self._exchanges.append((t1, t2, p.t3, p.t4, c_sync, p.c_resp))
        raw = mean_path_delay(t1, t2, p.t3, p.t4, c_sync, p.c_resp,
                              self._rate_num, self._rate_den)
        self._raw_delay = raw
        self._last_exchange = (p.t3, p.t4, p.c_resp)
        had = self._delay_ready() is not None
        self.delay_filter.sample(raw)
        filtered = self._delay_ready()
        if filtered is None or had:
            self._delay = filtered if filtered is not None else self._delay
            return []
        # first delay estimate: the latest Sync can now be turned into a measurement
        return self._measure(p.sequence_id, filtered)

    # ------------------------------------------------------------------ master side

    def _next_seq(self, kind: str) -> int:
        seq = self._seq[kind]
        self._seq[kind] = (seq + 1) & 0xFFFF
        return seq

    def _header(
        self,
        seq: int,
        *,
        log_interval: int,
        flags: Flags = Flags.NONE,
        correction: int = 0,
    ) -> Header:
        c = self.config
        return Header(
            source_port_identity=self.identity,
            sequence_id=seq,
            domain_number=c.domain_number,
            flags=flags,
            correction=TimeInterval(correction),
            log_message_interval=log_interval,
            major_sdo_id=c.major_sdo_id,
            minor_sdo_id=c.minor_sdo_id,
        )

    def _ptp_ts(self, local_ns: int) -> PtpTimestamp:
        try:
            return PtpTimestamp.from_ns(self.time_source.to_external(local_ns))
        except TimeRangeError:
            return PtpTimestamp(0, 0)

    def _send_announce(self, now: int) -> list[Action]:
        out: list[Action] = []
        if self.state != PortState.MASTER:
            return out
        c = self.config
        tp = self.time_properties
        seq = self._next_seq("announce")
        msg = Announce(
            header=self._header(seq, log_interval=c.log_announce_interval, flags=tp.flags),
            origin_timestamp=PtpTimestamp(0, 0),
            current_utc_offset=tp.current_utc_offset,
            grandmaster_priority1=c.priority1,
            grandmaster_clock_quality=c.clock_quality,
            grandmaster_priority2=c.priority2,
            grandmaster_identity=self.identity.clock_identity,
            steps_removed=0,
            time_source=tp.time_source,
        )
        out.append(SendGeneral(msg.pack()))
        self.counters["tx"] += 1
        if c.sync_metadata is not None:
            sm = replace(c.sync_metadata,
                         locking_status=locking_status(c.clock_quality.clock_class))
            header = self._header(self._next_seq("management"), log_interval=0x7F)
            out.append(SendGeneral(sm.message(header).pack()))
            self.counters["tx"] += 1
        self._set(PortTimer.ANNOUNCE, now + interval_ns(c.log_announce_interval), out)
        return out

    def _send_sync(self, now: int) -> list[Action]:
        out: list[Action] = []
        if self.state != PortState.MASTER:
            return out
        c = self.config
        seq = self._next_seq("sync")
        flags = Flags.TWO_STEP if c.two_step else Flags.NONE
        origin = PtpTimestamp(0, 0) if c.two_step else self._ptp_ts(now)
        msg = Sync(self._header(seq, log_interval=c.log_sync_interval, flags=flags), origin)
        ctx = TxContext(TxKind.SYNC, seq, self._owner)
        if not c.two_step:
            ctx.consume()  # one-step: no Follow_Up, the timestamp is not wanted
        out.append(SendEvent(msg.pack(), ctx))
        self.counters["tx"] += 1
        self._set(PortTimer.SYNC, now + interval_ns(c.log_sync_interval), out)
        return out

    def _follow_up(self, seq: int, tx_ts: int) -> FollowUp:
        self.counters["tx"] += 1
        # a grandmaster's cumulativeRateRatio is 1 (802.1AS §11.4.4.3.6)
        tlvs = (FollowUpInfo().tlv(),) if self.config.follow_up_info_tlv else ()
        return FollowUp(
            self._header(seq, log_interval=self.config.log_sync_interval),
            self._ptp_ts(tx_ts),
            tlvs,
        )

    def _on_delay_req(self, msg: DelayReq, rx_ts: int, now: int) -> list[Action]:
        if self.state != PortState.MASTER or self.config.delay_mechanism != DelayMechanism.E2E:
            return self._drop()
        h = msg.header
        resp = DelayResp(
            header=replace(
                self._header(
                    h.sequence_id,
                    log_interval=self.config.log_min_delay_req_interval,
                ),
                correction=h.correction,
            ),
            receive_timestamp=self._ptp_ts(rx_ts),
            requesting_port_identity=h.source_port_identity,
        )
        self.counters["tx"] += 1
        if Flags.UNICAST in h.flags and self._src is not None:
            # §16.1: a unicast Delay_Req is answered unicast, to its sender
            resp = replace(resp, header=replace(resp.header,
                                                flags=resp.header.flags | Flags.UNICAST))
            return [SendGeneral(resp.pack(), self._src)]
        return [SendGeneral(resp.pack())]

    # ------------------------------------------------------------------ unicast (§16.1)

    def _parent_address(self) -> str | None:
        if not self.config.unicast_masters or self._parent is None:
            return None
        return self._addresses.get(self._parent)

    def _request_unicast(self, now: int) -> list[Action]:
        """REQUEST_UNICAST_TRANSMISSION: Announce from every table entry, and Sync and
        Delay_Resp from the parent; re-sent at half the requested duration (renewal)."""
        c = self.config
        out: list[Action] = []
        if not c.unicast_masters:
            return out
        announce = RequestUnicastTransmissionTlv(MessageType.ANNOUNCE, c.log_announce_interval,
                                                 c.unicast_duration_s)
        parent = self._parent_address()
        for addr in c.unicast_masters:
            tlvs: tuple[RequestUnicastTransmissionTlv, ...] = (announce,)
            if addr == parent:
                tlvs += (
                    RequestUnicastTransmissionTlv(MessageType.SYNC, c.log_sync_interval,
                                                  c.unicast_duration_s),
                )
                if c.delay_mechanism == DelayMechanism.E2E:
                    tlvs += (
                        RequestUnicastTransmissionTlv(MessageType.DELAY_RESP,
                                                      self._delay_req_log_interval,
                                                      c.unicast_duration_s),
                    )
            sig = Signaling(self._header(self._next_seq("signaling"), log_interval=0x7F,
                                         flags=Flags.UNICAST), ALL_PORTS, tlvs)
            out.append(SendGeneral(sig.pack(), addr))
            self.counters["tx"] += 1
        renew = max(c.unicast_duration_s * NS_PER_S // 2, NS_PER_S)
        self._set(PortTimer.UNICAST_REQUEST, now + renew, out)
        return out

    def _on_signaling(self, msg: Signaling) -> list[Action]:
        """Record GRANT_UNICAST_TRANSMISSION answers: (address, messageType) → duration s."""
        if msg.target_port_identity not in (ALL_PORTS, self.identity):
            return self._drop()
        for t in msg.tlvs:
            if isinstance(t, GrantUnicastTransmissionTlv) and self._src is not None:
                self.unicast_grants[(self._src, t.message_type)] = t.duration_s
        return []

    # ------------------------------------------------------------------ peer delay (§11.4)

    def _send_pdelay_req(self, now: int) -> list[Action]:
        out: list[Action] = []
        if self._pdelay is not None:
            self.counters["pdelay_lost"] += 1
        c = self.config
        seq = self._next_seq("pdelay_req")
        self._pdelay = _PendingPdelay(seq)
        self._early_pdelay_fu = None
        msg = PdelayReq(self._header(seq, log_interval=0x7F), PtpTimestamp(0, 0))
        out.append(SendEvent(msg.pack(), TxContext(TxKind.PDELAY_REQ, seq, self._owner)))
        self.counters["tx"] += 1
        self._set(PortTimer.PDELAY_REQ, now + interval_ns(c.log_min_pdelay_req_interval), out)
        return out

    def _on_pdelay_req(self, msg: PdelayReq, rx_ts: int, now: int) -> list[Action]:
        """Responder: Pdelay_Resp (+ Pdelay_Resp_Follow_Up in two-step mode), any state."""
        if self.config.delay_mechanism != DelayMechanism.P2P:
            return self._drop()
        h = msg.header
        seq = h.sequence_id
        self.counters["tx"] += 1
        if self.config.two_step:
            resp = PdelayResp(
                self._header(seq, log_interval=0x7F, flags=Flags.TWO_STEP),
                self._ptp_ts(rx_ts),
                h.source_port_identity,
            )
            self._pdelay_resp_pending[seq] = (h.source_port_identity, h.correction.scaled_ns)
            while len(self._pdelay_resp_pending) > 16:
                del self._pdelay_resp_pending[next(iter(self._pdelay_resp_pending))]
            return [SendEvent(resp.pack(), TxContext(TxKind.PDELAY_RESP, seq, self._owner))]
        # one-step: the turnaround time goes into the correctionField (§11.4.2 b); without a
        # timestamping NIC the send instant is taken as ``now``
        turnaround = max(now - rx_ts, 0)
        resp = PdelayResp(
            self._header(seq, log_interval=0x7F,
                         correction=h.correction.scaled_ns + (turnaround << 16)),
            PtpTimestamp(0, 0),
            h.source_port_identity,
        )
        ctx = TxContext(TxKind.PDELAY_RESP, seq, self._owner)
        ctx.consume()
        return [SendEvent(resp.pack(), ctx)]

    def _pdelay_resp_follow_up(self, seq: int, tx_ts: int) -> list[Action]:
        pending = self._pdelay_resp_pending.pop(seq, None)
        if pending is None:
            return []
        requester, correction = pending
        fu = PdelayRespFollowUp(
            self._header(seq, log_interval=0x7F, correction=correction),
            self._ptp_ts(tx_ts),
            requester,
        )
        self.counters["tx"] += 1
        return [SendGeneral(fu.pack())]

    def _on_pdelay_resp(self, msg: PdelayResp, rx_ts: int, now: int) -> list[Action]:
        pd = self._pdelay
        h = msg.header
        if (
            self.config.delay_mechanism != DelayMechanism.P2P
            or msg.requesting_port_identity != self.identity
            or pd is None
            or pd.sequence_id != h.sequence_id
        ):
            return self._drop()
        if pd.responder is not None:
            # §11.4.4: more than one responder on a P2P link – the measurement is unusable
            self.counters["pdelay_multiple_responders"] += 1
            self._pdelay = None
            return []
        pd.responder = h.source_port_identity
        pd.t4 = rx_ts
        pd.t2 = msg.request_receipt_timestamp.to_ns()
        pd.correction = h.correction.to_ns()
        pd.two_step = Flags.TWO_STEP in h.flags
        if not pd.two_step:
            pd.t3 = pd.t2
            return self._complete_pdelay()
        fu = self._early_pdelay_fu
        self._early_pdelay_fu = None
        if fu is not None:
            return self._on_pdelay_resp_follow_up(fu, now)
        return []

    def _on_pdelay_resp_follow_up(self, msg: PdelayRespFollowUp, now: int) -> list[Action]:
        pd = self._pdelay
        h = msg.header
        if (
            msg.requesting_port_identity != self.identity
            or pd is None
            or pd.sequence_id != h.sequence_id
            or pd.t3 is not None
        ):
            return self._drop()
        if pd.responder is None:
            self._early_pdelay_fu = msg  # the general message overtook its Pdelay_Resp
            return []
        if h.source_port_identity != pd.responder:
            return self._drop()
        pd.t3 = msg.response_origin_timestamp.to_ns()
        pd.correction += h.correction.to_ns()
        return self._complete_pdelay()

    def _complete_pdelay(self) -> list[Action]:
        pd = self._pdelay
        if pd is None or pd.t1 is None or pd.t3 is None or pd.t4 is None:
            return []
        self._pdelay = None
        if pd.responder != self._pdelay_peer:
            # a new neighbor: its delay and rate start from scratch
            self._pdelay_peer = pd.responder
            self._pdelay_pairs.clear()
            self.pdelay_filter.reset()
            self.neighbor_rate_ratio = (1, 1)
        # neighborRateRatio = Δ(responder time) / Δ(local time) over successive exchanges,
        # from (t3, t4) in two-step mode and (t2, t1) when a one-step responder gives t2
        if pd.two_step:
            self._pdelay_pairs.append((pd.t3, pd.t4))
        elif pd.t2:
            self._pdelay_pairs.append((pd.t2, pd.t1))
        if len(self._pdelay_pairs) >= 2:
            (r0, l0), (r1, l1) = self._pdelay_pairs[0], self._pdelay_pairs[-1]
            if r1 > r0 and l1 > l0:
                self.neighbor_rate_ratio = (r1 - r0, l1 - l0)
        num, den = self.neighbor_rate_ratio
        raw = ((pd.t4 - pd.t1) * num // den - (pd.t3 - pd.t2) - pd.correction) // 2
        self._raw_pdelay = raw
        self.neighbor_prop_delay = self.pdelay_filter.sample(raw)
        self.counters["pdelay_exchanges"] += 1
        return []

    # ------------------------------------------------------------------ management (§15)

    def management_data(self, management_id: int) -> bytes | None:
        """dataField of a GET response for ``management_id``, or None if not supported."""
        ds, cur, par, tp, pds = (self.default_ds, self.current_ds, self.parent_ds,
                                 self.time_properties, self.port_ds)
        if management_id == ManagementId.NULL_PTP_MANAGEMENT:
            return b""
        if management_id == ManagementId.DEFAULT_DATA_SET:
            return DefaultDataSet(self.config.two_step, ds.slave_only, ds.number_ports,
                                  ds.priority1, ds.clock_quality, ds.priority2,
                                  ds.clock_identity, ds.domain_number).pack()
        if management_id == ManagementId.CURRENT_DATA_SET:
            offset = cur.offset_from_master
            if self._servo_status is not None:
                offset = self._servo_status[0]
            return CurrentDataSet(
                cur.steps_removed,
                TimeInterval.from_ns(max(min(offset, TimeInterval.MAX_NS),
                                         TimeInterval.MIN_NS)),
                TimeInterval.from_ns(max(min(cur.mean_path_delay, TimeInterval.MAX_NS),
                                         TimeInterval.MIN_NS)),
            ).pack()
        if management_id == ManagementId.PARENT_DATA_SET:
            return ParentDataSet(par.parent_port_identity, False, 0xFFFF, 0x7FFFFFFF,
                                 par.grandmaster_priority1, par.grandmaster_clock_quality,
                                 par.grandmaster_priority2, par.grandmaster_identity).pack()
        if management_id == ManagementId.TIME_PROPERTIES_DATA_SET:
            return TimePropertiesDataSet(tp.current_utc_offset, int(tp.flags) & 0xFF,
                                         tp.time_source).pack()
        if management_id == ManagementId.PORT_DATA_SET:
            return PortDataSet(pds.port_identity, int(pds.port_state),
                               pds.log_min_delay_req_interval,
                               TimeInterval.from_ns(pds.mean_link_delay),
                               pds.log_announce_interval, pds.announce_receipt_timeout,
                               pds.log_sync_interval, int(pds.delay_mechanism),
                               self.config.log_min_pdelay_req_interval,
                               # the high nibble is reserved here; ptp4l sends 0 in it too
                               pds.version_number, 0).pack()
        if management_id == ManagementId.TIME_STATUS_NP:
            following = self._parent is not None and self.state in (
                PortState.SLAVE, PortState.UNCALIBRATED)
            offset, ingress = self._servo_status if following and self._servo_status else (0, 0)
            return TimeStatusNp(offset, ingress, self._cumulative_rate_offset if following else 0,
                                0, 0, b"\0" * 12, following, par.grandmaster_identity).pack()
        octet: dict[int, int] = {
            ManagementId.PRIORITY1: ds.priority1,
            ManagementId.PRIORITY2: ds.priority2,
            ManagementId.DOMAIN: ds.domain_number,
            ManagementId.SLAVE_ONLY: int(ds.slave_only),
            ManagementId.VERSION_NUMBER: pds.version_number | (pds.minor_version_number << 4),
            ManagementId.CLOCK_ACCURACY: ds.clock_quality.clock_accuracy,
            ManagementId.LOG_ANNOUNCE_INTERVAL: pds.log_announce_interval & 0xFF,
            ManagementId.ANNOUNCE_RECEIPT_TIMEOUT: pds.announce_receipt_timeout,
            ManagementId.LOG_SYNC_INTERVAL: pds.log_sync_interval & 0xFF,
            ManagementId.DELAY_MECHANISM: int(pds.delay_mechanism),
            ManagementId.LOG_MIN_PDELAY_REQ_INTERVAL:
                self.config.log_min_pdelay_req_interval & 0xFF,
        }
        if management_id in octet:
            return OctetValue(octet[management_id]).pack()
        return None

    def handle_management(self, data: bytes, now: int) -> bytes | None:
        """A management message from a local channel (e.g. pmc over a Unix socket): the reply
        bytes, or None. Unlike the network path, any domain and port state is accepted."""
        try:
            msg = parse(data)
        except ParseError:
            self.counters["parse_errors"] += 1
            return None
        if not isinstance(msg, Management):
            return None
        reply = self._management_reply(msg)
        return reply.pack() if reply is not None else None

    def _on_management(self, msg: Management) -> list[Action]:
        if msg.action == ManagementAction.COMMAND and self._from_parent(msg):
            try:
                sm = SyncMetadata.from_tlvs(msg.tlvs)
            except ParseError:
                self.counters["parse_errors"] += 1
                return []
            if sm is not None:  # ST 2059-2 synchronization metadata: kept, not answered
                self.sync_metadata = sm
                return []
        reply = self._management_reply(msg)
        if reply is None:
            return self._drop()
        return [SendGeneral(reply.pack())]

    def _management_reply(self, msg: Management) -> Management | None:
        """Answer GET requests for the data sets. SET and COMMAND are not enabled: they get a
        MANAGEMENT_ERROR_STATUS TLV (NOT_SUPPORTED; NO_SUCH_ID for an unknown managementId)."""
        target = msg.target_port_identity
        if target.clock_identity not in (ALL_PORTS.clock_identity, self.identity.clock_identity):
            return None
        if target.port_number not in (0xFFFF, 0, self.identity.port_number):
            return None
        if msg.action not in (ManagementAction.GET, ManagementAction.SET,
                              ManagementAction.COMMAND) or len(msg.tlvs) != 1:
            return None
        tlv = msg.tlvs[0]
        if not isinstance(tlv, ManagementTlv):
            return None
        data = self.management_data(tlv.management_id) if msg.action == 0 else None
        reply_tlv: ManagementTlv | ManagementErrorStatusTlv
        if data is None:
            known = tlv.management_id in ManagementId._value2member_map_
            err = ManagementErrorId.NOT_SUPPORTED if known else ManagementErrorId.NO_SUCH_ID
            reply_tlv = ManagementErrorStatusTlv(err, tlv.management_id)
        else:
            if len(data) % 2:
                data += b"\0"  # §15.5.2.1: the TLV length is even
            reply_tlv = ManagementTlv(tlv.management_id, data)
        hops = max(msg.starting_boundary_hops - msg.boundary_hops, 0)
        action = ManagementAction.RESPONSE
        if msg.action == ManagementAction.COMMAND:
            action = ManagementAction.ACKNOWLEDGE
        self.counters["tx"] += 1
        return Management(
            header=self._header(msg.header.sequence_id, log_interval=0x7F),
            target_port_identity=msg.header.source_port_identity,
            starting_boundary_hops=hops,
            boundary_hops=hops,
            action=action,
            tlvs=(reply_tlv,),
        )
