"""The daemon's PTP port: one ordinary-clock port of ``[ptp]`` as a source of the Agent.

The sans-IO :class:`~netclock.ptp.port.PtpPort` runs on a
:class:`~netclock.platform.ptp_transport.UdpPtpTransport` inside the agent's asyncio loop:
received datagrams go to ``handle_*``, the returned actions are executed here (sends, timers via
``loop.call_later``, state changes), and every :class:`Measurement` passes the
delay gate and, of each group of Syncs spanning ~0.25 s, only the least queued one becomes an
:meth:`Agent.observe` call ``(t2, master time at t2)``. The agent's Discipline is the servo
(windowed fit, steps, selection, lock state); its fitted rate for this source goes back to the
port to scale local intervals in the delay computation. (The CLI's PtpServo would fit the same
data a second time: at 16 Hz that doubled the daemon's CPU.)

As a slave the source ``ptp:IFACE:DOMAIN`` carries the grandmaster identity, steps removed,
timescale, UTC offset and leap flags of the latest Announce. As MASTER (role ``auto`` winning
the BMCA, or ``master-only``) the port serves the agent's *published* time: each Sync's
Follow_Up carries published(TX stamp), and the announced clockClass follows the discipline's
quality (:data:`netclock.discipline.CLOCK_CLASS`) while that time comes from an independent
source (reference, NTP), and stays 248 while it comes from this port, unless ``clock-class`` is
set to something other than its default 248.

Timescales. PTP time is TAI (PTP timescale flag) or arbitrary. When the agent also has a UTC
source (an NTP server, or a ``utc`` reference) PTP observations are converted to UTC with the
announced currentUtcOffset, so that failover between PTP and NTP compares like with like;
otherwise the published time is PTP time itself (timescale TAI or ARB). Serving works the other
way round: a UTC published time goes out as TAI = UTC + currentUtcOffset.

Malformed or foreign packets are counted per message type and dropped; nothing a peer sends can
stop the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netclock.calibration import Calibration
from netclock.discipline import CLOCK_CLASS
from netclock.ntp.wire import Leap
from netclock.observe import Timescale
from netclock.platform.ptp_transport import PortTimers, UdpPtpTransport
from netclock.platform.timestamping import Received, Stamp
from netclock.ptp.actions import (
    Action,
    CancelTimer,
    Measurement,
    PortTimer,
    SendEvent,
    SendGeneral,
    SetTimer,
    StateChanged,
)
from netclock.ptp.bmca import parse_acceptable_masters
from netclock.ptp.datasets import PortState, TimePropertiesDS
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import ClockIdentity, ClockQuality, PortIdentity
from netclock.time import NS_PER_S

if TYPE_CHECKING:
    from netclock.daemon.agent import Agent, _SourceInfo

log = logging.getLogger("netclock")

#: messageType nibble → counter name (IEEE 1588-2019 Table 36).
MESSAGE_TYPES = {
    0x0: "sync",
    0x1: "delay_req",
    0x2: "pdelay_req",
    0x3: "pdelay_resp",
    0x8: "follow_up",
    0x9: "delay_resp",
    0xA: "pdelay_resp_follow_up",
    0xB: "announce",
    0xC: "signaling",
    0xD: "management",
}
#: currentUtcOffset announced when serving a UTC reference (TAI − UTC since 2017).
DEFAULT_UTC_OFFSET_S = 37
#: clockClass of the configuration default; any other configured value is kept fixed.
DEFAULT_CLOCK_CLASS = 248
#: Uncertainty given to each observation, by timestamp source (uniform weights in the fit).
#: a measurement whose path delay exceeds this is dropped (as PtpServo's default gate)
MAX_DELAY_NS = 100_000_000
#: Syncs grouped per observation: about this much time's worth (1 below 4 Hz)
GROUP_SPAN_NS = 250_000_000
STAMP_ERROR_NS = {"hardware": 20, "kernel": 100, "user": 2_000}


def message_type(data: bytes) -> str:
    if not data:
        return "other"
    return MESSAGE_TYPES.get(data[0] & 0x0F, "other")


def default_route_interface() -> str:
    """The interface of the IPv4 default route (``/proc/net/route``), or ``lo``."""
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if len(parts) > 2 and parts[1] == "00000000":
                    return parts[0]
    except OSError:
        pass
    return "lo"


def interface_mac(interface: str) -> bytes | None:
    try:
        with open(f"/sys/class/net/{interface}/address", encoding="ascii") as f:
            mac = bytes.fromhex(f.read().strip().replace(":", ""))
    except (OSError, ValueError):
        return None
    return mac if len(mac) == 6 and any(mac) else None


class PtpSource:
    """The ``[ptp]`` port of one agent (see the module docstring)."""

    def __init__(self, agent: Agent, rng: random.Random | None = None) -> None:
        from netclock.daemon.agent import _SourceInfo

        self.agent = agent
        c = agent.cfg.ptp
        self.cfg = c
        if c.transport != "udpv4":
            raise ValueError(f"ptp.transport = {c.transport!r} is not supported by the daemon yet")
        if c.delay_mechanism != "e2e":
            raise ValueError(
                f"ptp.delay-mechanism = {c.delay_mechanism!r} is not supported by the daemon yet"
            )
        self.interface = c.interface or default_route_interface()
        self.name = f"ptp:{self.interface}:{c.domain}"
        self.rng = rng or agent.rng
        mac = interface_mac(self.interface) or bytes([0x02]) + self.rng.randbytes(5)
        self.identity = PortIdentity(ClockIdentity.from_mac(mac), 1)
        ref = agent.cfg.reference
        #: observe UTC instead of TAI (another source of the agent is UTC)
        self.utc_mode = bool(agent.cfg.ntp.servers) or (ref.enabled and ref.timescale == "utc")
        self.follow_quality = c.clock_class == DEFAULT_CLOCK_CLASS and c.role != "slave-only"
        self._quality = self._own_quality(DEFAULT_CLOCK_CLASS)
        self._tprops = TimePropertiesDS(
            current_utc_offset=DEFAULT_UTC_OFFSET_S, current_utc_offset_valid=True
        )
        self.port = PtpPort(self._port_config(), self.identity, self.rng)
        #: the agent's Discipline is this source's servo (windowed fit, steps, lock state);
        #: here only the delay gate and the least-queued pick of each group of Syncs remain
        self.max_delay_ns = MAX_DELAY_NS
        self.skipped = 0
        self._group: list[tuple[int, int, int, int]] = []  # (apparent delay, t2, master@t2, d)
        self.info = _SourceInfo(
            self.name,
            "ptp",
            c.source_priority,
            identity="",
            timescale=Timescale.UTC if self.utc_mode else Timescale.TAI,
        )
        self.info.state = "initializing"
        self.transport: UdpPtpTransport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timers: PortTimers | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._last_internal: int | None = None
        self._last_selected: _SourceInfo | None = None
        self._last_t2: int | None = None
        self._gap_ns: int | None = None
        self._stopped = False
        self.measurements = 0
        self.errors = 0

    # -- configuration ---------------------------------------------------------------------------
    def _own_quality(self, clock_class: int) -> ClockQuality:
        c = self.cfg
        if c.role == "slave-only":
            clock_class = 255
        elif c.clock_class != DEFAULT_CLOCK_CLASS:
            clock_class = c.clock_class
        return ClockQuality(clock_class, c.clock_accuracy, c.offset_scaled_log_variance)

    def _port_config(self) -> PortConfig:
        c = self.cfg
        return PortConfig(
            domain_number=c.domain,
            priority1=c.priority1,
            priority2=c.priority2,
            clock_quality=self._quality,
            slave_only=c.role == "slave-only",
            master_only=c.role == "master-only",
            log_announce_interval=c.log_announce_interval,
            log_sync_interval=c.log_sync_interval,
            log_min_delay_req_interval=c.log_min_delay_req_interval,
            announce_receipt_timeout=c.announce_receipt_timeout,
            time_properties=self._tprops,
            acceptable_masters=parse_acceptable_masters(c.acceptable_masters),
        )

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        from netclock.daemon.agent import bind_error

        self.loop = asyncio.get_running_loop()
        self.timers = PortTimers(self.loop, self._fire)
        self.agent._add_source(self.info)
        stamping = self.cfg.timestamping != "user"
        try:
            self.transport = UdpPtpTransport(
                self.interface,
                event_port=self.cfg.event_port,
                general_port=self.cfg.general_port,
                on_event=self._on_event,
                on_general=self._on_general,
                loop=self.loop,
                timestamping=stamping,
            )
        except OSError as e:
            port = min(self.cfg.event_port, self.cfg.general_port)
            raise bind_error("PTP", port, e) from e
        mode = self.transport.mode
        if self.cfg.timestamping == "kernel" and mode not in ("kernel", "hardware"):
            self.transport.close()
            raise OSError(f"ptp.timestamping = kernel, but the socket gives {mode} stamps")
        self.info.stamp_source = mode
        if self.cfg.ttl != 1:
            for s in (self.transport.event.sock, self.transport.general.sock):
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.cfg.ttl)
        self._refresh_master()
        self._execute(self.port.start(_mono()))
        log.info(
            "PTP source %s (role %s, priority %d, ports %d/%d, %s stamps, identity %s)",
            self.name,
            self.cfg.role,
            self.cfg.source_priority,
            self.cfg.event_port,
            self.cfg.general_port,
            mode,
            self.identity.clock_identity,
        )

    def stop(self) -> None:
        self._stopped = True
        if self.timers is not None:
            self.timers.cancel_all()
        if self._refresh is not None:
            self._refresh.cancel()
        if self.transport is not None:
            self.transport.close()

    # -- receive -----------------------------------------------------------------------------------
    def _count(self, msg: str, rx: int = 0, tx: int = 0, bad: int = 0) -> None:
        c = self.info.packets.setdefault(msg, [0, 0, 0])
        c[0] += rx
        c[1] += tx
        c[2] += bad

    def _deliver(self, data: bytes, handler: Any, *args: int) -> None:
        if self._stopped:
            return
        kind = message_type(data)
        before = self.port.counters["parse_errors"]
        rejected_before = self.port.counters["not_acceptable"]
        try:
            actions = handler(data, *args, _mono())
        except Exception:  # a peer's packet must never stop the daemon
            self.errors += 1
            log.exception("%s: dropped a %s message that broke the port", self.name, kind)
            self._count(kind, rx=1, bad=1)
            return
        bad = int(self.port.counters["parse_errors"] > before)
        self._count(kind, rx=1, bad=bad)
        if self.port.counters["not_acceptable"] > rejected_before:
            self._count("announce_rejected", rx=1)  # not on ptp.acceptable-masters
        self._execute(actions)

    def _on_event(self, r: Received) -> None:
        self._deliver(r.data, self.port.handle_event_receive, r.rx_ns)

    def _on_general(self, r: Received) -> None:
        self._deliver(r.data, self.port.handle_general_receive)
        if message_type(r.data) == "announce":
            self._update_parent()

    def _fire(self, timer: PortTimer) -> None:
        if self._stopped:
            return
        self._execute(self.port.handle_timer(timer, _mono()))

    # -- actions -------------------------------------------------------------------------------
    def _execute(self, actions: list[Action]) -> None:
        assert self.loop is not None and self.transport is not None and self.timers is not None
        for a in actions:
            if isinstance(a, SendEvent):
                self._send_event(a)
            elif isinstance(a, SendGeneral):
                self._count(message_type(a.data), tx=1)
                with contextlib.suppress(OSError):
                    self.transport.send_general(a.data)
            elif isinstance(a, SetTimer):
                self.timers.set(a.timer, a.at)
            elif isinstance(a, CancelTimer):
                self.timers.cancel(a.timer)
            elif isinstance(a, Measurement):
                self._measurement(a)
            elif isinstance(a, StateChanged):
                log.info("%s: port %s -> %s (%s)", self.name, a.old.name, a.new.name, a.reason)
                self.info.state = a.new.name.lower()
                if a.new == PortState.MASTER:
                    self._refresh_master()
                self._update_parent()

    def _send_event(self, a: SendEvent) -> None:
        assert self.transport is not None
        ctx = a.context
        self._count(message_type(a.data), tx=1)

        def done(stamp: Stamp | None) -> None:
            if stamp is None or ctx.used or self._stopped:
                return
            if self.port.state == PortState.MASTER:
                # serve the time published at the very TX instant
                self._set_time_source(stamp.ns)
            self._execute(self.port.handle_send_timestamp(ctx, stamp.ns, _mono()))

        with contextlib.suppress(OSError):
            self.transport.send_event(a.data, done)

    # -- slave side ----------------------------------------------------------------------------
    def _measurement(self, m: Measurement) -> None:
        asym = self.cfg.delay_asymmetry_ns
        if asym:
            # master→slave is `asym` longer than the mean path delay: master time at t2 is later
            m = replace(m, correction=m.correction + asym)
        if m.raw_delay > self.max_delay_ns or m.delay > self.max_delay_ns:
            self.skipped += 1
            return
        master_at_t2 = m.t1 + m.correction + m.delay
        # Of each group of Syncs spanning ~GROUP_SPAN_NS, only the least queued one (smallest
        # t2 − t1, i.e. earliest arrival) is observed: it filters queueing noise and keeps the
        # discipline's refits at a few per second whatever the Sync rate.
        self._group.append((m.t2 - m.t1 - m.correction, m.t2, master_at_t2, m.delay))
        size = max(GROUP_SPAN_NS // max(self._sync_gap_ns(m.t2), 1), 1)
        if len(self._group) < min(size, 16):
            return
        _, internal, external, delay = min(self._group)
        self._group = []
        if self._last_internal is not None and internal <= self._last_internal:
            return
        self._last_internal = internal
        tp = self.port.time_properties
        if self.utc_mode and tp.ptp_timescale:
            external -= tp.current_utc_offset * NS_PER_S
        self.measurements += 1
        err = STAMP_ERROR_NS.get(self.info.stamp_source, 2_000)
        self.agent.observe(self.name, internal, external, err, delay_ns=delay)
        # the fitted master/local rate scales local intervals in the port's delay computation
        fit = self.agent.discipline._sources[self.name].cal
        if fit is not None:
            with contextlib.suppress(ValueError):
                self.port.set_rate_ratio(fit.rate_num, fit.rate_denom)

    def _sync_gap_ns(self, t2: int) -> int:
        """Smoothed measured time between Syncs (the master's rate, not our configured one)."""
        last, self._last_t2 = self._last_t2, t2
        if last is not None and 0 < t2 - last < 4 * NS_PER_S:
            gap = t2 - last
            self._gap_ns = gap if self._gap_ns is None else (3 * self._gap_ns + gap) // 4
        return self._gap_ns or NS_PER_S

    def _update_parent(self) -> None:
        """Copy the grandmaster's Announce data into the source info."""
        port, info = self.port, self.info
        if port.state not in (PortState.SLAVE, PortState.UNCALIBRATED):
            return
        snap = port.observe()
        gm = snap.parent_ds.grandmaster_identity
        info.identity = str(gm)
        info.identity_bytes = gm.raw
        info.hops = snap.current_ds.steps_removed
        tp = port.time_properties
        if self.utc_mode and tp.ptp_timescale:
            info.timescale = Timescale.UTC
        else:
            info.timescale = Timescale.TAI if tp.ptp_timescale else Timescale.ARB
        info.utc_offset_s = tp.current_utc_offset
        info.utc_offset_valid = tp.current_utc_offset_valid
        info.leap = (
            Leap.INSERT_SECOND
            if tp.leap61
            else Leap.DELETE_SECOND
            if tp.leap59
            else Leap.NO_WARNING
        )

    # -- master side ----------------------------------------------------------------------------
    def _published_info(self) -> _SourceInfo | None:
        """The source the published time came from: the selection, or in holdover (when the
        discipline selects nothing) the last one selected."""
        info = self.agent._selected_info()
        if info is not None:
            self._last_selected = info
        return self._last_selected

    def _served_timescale(self) -> tuple[Timescale, int, bool]:
        """(timescale of the published time, UTC offset, valid) of the agent's selection."""
        info = self._published_info()
        if info is None or self.agent.discipline.published is None:
            return Timescale.UTC, DEFAULT_UTC_OFFSET_S, True
        if info.timescale == Timescale.UTC:
            off = info.utc_offset_s if info.utc_offset_valid else DEFAULT_UTC_OFFSET_S
            return Timescale.UTC, off, True
        return info.timescale, info.utc_offset_s, info.utc_offset_valid

    def _set_time_source(self, mono: int) -> None:
        """Port time source: the agent's published time (as PTP time) around ``mono``."""
        pub = self.agent.discipline.published
        ts, off, _valid = self._served_timescale()
        shift = off * NS_PER_S if ts == Timescale.UTC else 0
        if pub is None:
            # nothing published yet: CLOCK_REALTIME as UTC (clockClass 248 says how good)
            ext = self.agent.clock_map.to_realtime(mono) + DEFAULT_UTC_OFFSET_S * NS_PER_S
            self.port.set_time_source(Calibration(internal=mono, external=ext))
            return
        self.port.set_time_source(
            Calibration(
                internal=mono,
                external=pub.to_external(mono) + shift,
                rate_num=pub.rate_num,
                rate_denom=pub.rate_denom,
                epoch=pub.epoch,
            )
        )

    def _refresh_master(self) -> None:
        """Every second: served time source, time properties and clockClass."""
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        if self._stopped or self.loop is None:
            return
        now = _mono()
        self._set_time_source(now)
        if self.cfg.role != "slave-only":
            ts, off, valid = self._served_timescale()
            info = self._published_info()
            tp = TimePropertiesDS(
                current_utc_offset=off,
                current_utc_offset_valid=valid and ts != Timescale.ARB,
                leap61=bool(info and info.leap == Leap.INSERT_SECOND),
                leap59=bool(info and info.leap == Leap.DELETE_SECOND),
                ptp_timescale=ts != Timescale.ARB,
            )
            # Only time from an independent source (reference, NTP) makes this clock a
            # better grandmaster. Time learnt from this very port (followed or held over) keeps
            # the default 248, as ptp4l does: with a class <= 127 the BMCA would make the port
            # PASSIVE instead of SLAVE, and it could never follow its master again.
            cls = DEFAULT_CLOCK_CLASS
            if self.agent.discipline.published is not None and info not in (None, self.info):
                cls = CLOCK_CLASS[self.agent.discipline.quality(now)]
            quality = self._own_quality(cls) if self.follow_quality else self._quality
            changes: dict[str, object] = {}
            if tp != self._tprops:
                self._tprops = tp
                changes["time_properties"] = tp
            if quality != self._quality:
                self._quality = quality
                changes["clock_quality"] = quality
            if changes:
                log.info(
                    "%s: serving %s", self.name, ", ".join(f"{k}={v}" for k, v in changes.items())
                )
                self._execute(self.port.reconfigure(now, **changes))
        self._refresh = self.loop.call_later(1.0, self._refresh_master)


def _mono() -> int:
    return time.monotonic_ns()


__all__ = ["PtpSource", "default_route_interface", "message_type"]
