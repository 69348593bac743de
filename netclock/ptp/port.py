"""Sans-IO PTP port of an ordinary clock (IEEE 1588-2019 §9): E2E, UDPv4-agnostic.

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
"""

from __future__ import annotations

import random
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
from netclock.ptp.bmca import ComparisonDataset, Decision, ForeignMasterList, state_decision
from netclock.ptp.datasets import (
    CurrentDS,
    DefaultDS,
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
    Header,
    Management,
    ManagementAction,
    ManagementErrorId,
    ManagementErrorStatusTlv,
    ManagementId,
    ManagementTlv,
    Message,
    ParseError,
    PortIdentity,
    Sync,
    parse,
)
from netclock.ptp.wire.mgmt_data import (
    CurrentDataSet,
    DefaultDataSet,
    OctetValue,
    ParentDataSet,
    PortDataSet,
    TimePropertiesDataSet,
)
from netclock.time import NS_PER_S, PtpTimestamp, TimeInterval, TimeRangeError

_OWNER_IDS = count(1)


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


@dataclass(slots=True)
class _PendingDelayReq:
    sequence_id: int
    t3: int | None = None
    t4: int | None = None
    c_resp: int = 0


class PtpPort:
    """One PTP port of an ordinary clock, with its own BMCA (Ebest = Erbest)."""

    def __init__(self, config: PortConfig, identity: PortIdentity, rng: random.Random) -> None:
        self.config = config
        self.identity = identity
        self.rng = rng
        self.state = PortState.INITIALIZING
        self.time_source = Calibration()
        self.delay_filter = DelayFilter()
        self.foreign = ForeignMasterList(identity, config.log_announce_interval)
        self._owner = next(_OWNER_IDS)
        self._timers: dict[PortTimer, int] = {}
        self._seq = {"sync": 0, "announce": 0, "delay_req": 0}
        self._parent: PortIdentity | None = None
        self._parent_announce: Announce | None = None
        self._sync: _PendingSync | None = None
        self._early_follow_up: FollowUp | None = None
        self._last_sync: tuple[int, int, int] | None = None  # t1, t2, c_sync
        self._delay_req: _PendingDelayReq | None = None
        self._last_exchange: tuple[int, int] = (0, 0)  # t3, t4
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
        self.counters: dict[str, int] = {
            "rx": 0,
            "tx": 0,
            "parse_errors": 0,
            "dropped": 0,
            "measurements": 0,
            "announce_timeouts": 0,
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
        )

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

    def reconfigure(self, now: int, **changes: object) -> list[Action]:
        """Change :class:`PortConfig` fields while running and re-run the BMCA."""
        self.config = replace(self.config, **changes)  # type: ignore[arg-type]
        self.foreign.log_announce_interval = self.config.log_announce_interval
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

    def handle_event_receive(self, data: bytes, rx_ts: int, now: int) -> list[Action]:
        """A datagram from the event port (319) with its local receive timestamp."""
        msg = self._accept(data)
        if msg is None:
            return []
        if isinstance(msg, Sync):
            return self._on_sync(msg, rx_ts, now)
        if isinstance(msg, DelayReq):
            return self._on_delay_req(msg, rx_ts, now)
        return self._drop()

    def handle_general_receive(self, data: bytes, now: int) -> list[Action]:
        """A datagram from the general port (320)."""
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
        pending = self._delay_req
        if pending is None or pending.sequence_id != ctx.sequence_id:
            return []
        pending.t3 = tx_ts
        return self._complete_delay_exchange()

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
        return self._send_delay_req(now)

    # ------------------------------------------------------------------ receive helpers

    def _drop(self) -> list[Action]:
        self.counters["dropped"] += 1
        return []

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
        return (
            self.state in (PortState.SLAVE, PortState.UNCALIBRATED)
            and self._parent is not None
            and msg._header.source_port_identity == self._parent
        )

    def _on_announce(self, msg: Announce, now: int) -> list[Action]:
        if msg.steps_removed >= 255:  # §9.3.2.5 d
            return self._drop()
        self.foreign.add(msg, now)
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
            self._delay_req = None
            return
        if new == PortState.MASTER:
            self._cancel(PortTimer.ANNOUNCE_RECEIPT, out)
            self._cancel(PortTimer.DELAY_REQ, out)
            self._cancel(PortTimer.QUALIFICATION, out)
            self._delay_req = None
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
            self._delay_req = None
            self._arm_announce_receipt(now, out)
            return
        # UNCALIBRATED / SLAVE
        if PortTimer.ANNOUNCE_RECEIPT not in self._timers:
            self._arm_announce_receipt(now, out)
        if PortTimer.DELAY_REQ not in self._timers:
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
        two_step = Flags.TWO_STEP in h.flags
        pending = _PendingSync(h.sequence_id, h.source_port_identity, rx_ts,
                               h.correction.to_ns(), two_step)
        if not two_step:
            pending.t1 = msg.origin_timestamp.to_ns()
            self._sync = None
            return self._complete_sync(pending)
        fu = self._early_follow_up
        self._early_follow_up = None
        if fu is not None and fu.header.sequence_id == h.sequence_id:
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
        return self._complete_sync(pending)

    def _delay_ready(self) -> int | None:
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
        t3, t4 = self._last_exchange
        out: list[Action] = [
            Measurement(offset, delay, t1, t2, t3, t4, self._raw_delay, c_sync, sequence_id)
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
        self._delay_req = _PendingDelayReq(seq)
        msg = DelayReq(self._header(seq, log_interval=0x7F), PtpTimestamp(0, 0))
        ctx = TxContext(TxKind.DELAY_REQ, seq, self._owner)
        out.append(SendEvent(msg.pack(), ctx))
        self.counters["tx"] += 1
        self._set(PortTimer.DELAY_REQ, now + self._delay_req_spacing(), out)
        return out

    def _on_delay_resp(self, msg: DelayResp, now: int) -> list[Action]:
        pending = self._delay_req
        if (
            not self._from_parent(msg)
            or msg.requesting_port_identity != self.identity
            or pending is None
            or pending.sequence_id != msg.header.sequence_id
            or pending.t4 is not None
        ):
            return self._drop()
        pending.t4 = msg.receive_timestamp.to_ns()
        pending.c_resp = msg.header.correction.to_ns()
        log_iv = msg.header.log_message_interval
        if -10 <= log_iv <= 10:
            self._master_log_min_delay_req = log_iv
        return self._complete_delay_exchange()

    def _complete_delay_exchange(self) -> list[Action]:
        p = self._delay_req
        if p is None or p.t3 is None or p.t4 is None or self._last_sync is None:
            return []
        self._delay_req = None
        t1, t2, c_sync = self._last_sync
        self._exchanges.append((t1, t2, p.t3, p.t4, c_sync, p.c_resp))
        raw = mean_path_delay(t1, t2, p.t3, p.t4, c_sync, p.c_resp,
                              self._rate_num, self._rate_den)
        self._raw_delay = raw
        self._last_exchange = (p.t3, p.t4)
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
        return FollowUp(
            self._header(seq, log_interval=self.config.log_sync_interval),
            self._ptp_ts(tx_ts),
        )

    def _on_delay_req(self, msg: DelayReq, rx_ts: int, now: int) -> list[Action]:
        if self.state != PortState.MASTER:
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
        return [SendGeneral(resp.pack())]

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
            return CurrentDataSet(
                cur.steps_removed,
                TimeInterval.from_ns(max(min(cur.offset_from_master, TimeInterval.MAX_NS),
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
                               pds.log_min_delay_req_interval, TimeInterval(0),
                               pds.log_announce_interval, pds.announce_receipt_timeout,
                               pds.log_sync_interval, int(pds.delay_mechanism), 0,
                               pds.version_number, pds.minor_version_number).pack()
        octet: dict[int, int] = {
            ManagementId.PRIORITY1: ds.priority1,
            ManagementId.PRIORITY2: ds.priority2,
            ManagementId.DOMAIN: ds.domain_number,
            ManagementId.SLAVE_ONLY: int(ds.slave_only),
            ManagementId.VERSION_NUMBER: pds.version_number | (pds.minor_version_number << 4),
            ManagementId.CLOCK_ACCURACY: ds.clock_quality.clock_accuracy,
        }
        if management_id in octet:
            return OctetValue(octet[management_id]).pack()
        return None

    def _on_management(self, msg: Management) -> list[Action]:
        """Answer GET requests for the data sets (read-only: SET/COMMAND → NOT_SUPPORTED)."""
        target = msg.target_port_identity
        if target.clock_identity not in (ALL_PORTS.clock_identity, self.identity.clock_identity):
            return self._drop()
        if target.port_number not in (0xFFFF, self.identity.port_number):
            return self._drop()
        if msg.action not in (ManagementAction.GET, ManagementAction.SET,
                              ManagementAction.COMMAND) or len(msg.tlvs) != 1:
            return self._drop()
        tlv = msg.tlvs[0]
        if not isinstance(tlv, ManagementTlv):
            return self._drop()
        data = self.management_data(tlv.management_id) if msg.action == 0 else None
        reply_tlv: ManagementTlv | ManagementErrorStatusTlv
        if data is None:
            reply_tlv = ManagementErrorStatusTlv(ManagementErrorId.NOT_SUPPORTED,
                                                 tlv.management_id)
        else:
            if len(data) % 2:
                data += b"\0"  # §15.5.2.1: the TLV length is even
            reply_tlv = ManagementTlv(tlv.management_id, data)
        hops = max(msg.starting_boundary_hops - msg.boundary_hops, 0)
        reply = Management(
            header=self._header(msg.header.sequence_id, log_interval=0x7F),
            target_port_identity=msg.header.source_port_identity,
            starting_boundary_hops=hops,
            boundary_hops=hops,
            action=ManagementAction.RESPONSE,
            tlvs=(reply_tlv,),
        )
        self.counters["tx"] += 1
        return [SendGeneral(reply.pack())]
