"""The daemon's PTP port: one ordinary-clock port of ``[ptp]``, one source of the Agent per domain.

``[ptp]`` describes a profile (:func:`effective_profile`: ``ptp.profile``, a built-in name or a
file as ``netclock ptp --profile``, under the [ptp] keys set to non-default values): any
transport (udpv4, udpv6, l2), delay mechanism (E2E, P2P) and profile TLVs the CLI runs, opened
by the same :func:`~netclock.platform.ptp_transport.open_transport`. :class:`PtpSource` runs one
:class:`PtpDomainSource` for the primary domain and one per ``[[ptp.extra-domain]]``; each is a
source ``ptp:IFACE:DOMAIN`` with its own priority, so the discipline's failover by priority
selects the domain that drives the main time.

In each, the sans-IO :class:`~netclock.ptp.port.PtpPort` runs on its transport inside the
agent's asyncio loop:
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
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from netclock.calibration import Calibration
from netclock.discipline import CLOCK_CLASS
from netclock.ntp.wire import Leap
from netclock.observe import Timescale
from netclock.platform.ptp_transport import (
    PortTimers,
    PtpTransport,
    find_profile,
    open_transport,
    source_address,
)
from netclock.platform.timestamping import Received, RxPoller, Stamp
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
from netclock.ptp.datasets import DelayMechanism, PortState, TimePropertiesDS
from netclock.ptp.filters import DirectionFloors, FlooredSince
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.profiles import Profile
from netclock.ptp.wire import ClockIdentity, ClockQuality, PortIdentity
from netclock.ptp.wire.smpte import SyncMetadata
from netclock.time import NS_PER_S

if TYPE_CHECKING:
    from netclock.config import PtpSection
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
#: Syncs grouped per observation: about this much time's worth (1 below 4 Hz), and at least
#: FLOOR_MIN_GROUP once the delay floors can serve the group (E2E, a first fit)
GROUP_SPAN_NS = 250_000_000
STAMP_ERROR_NS = {"hardware": 20, "kernel": 100, "user": 2_000}
#: Syncs and delay exchanges kept for the delay floors (each is taken over as many as the
#: observed Sync's group held: the same order statistic each way; see DirectionFloors)
FLOOR_LENGTH = 16
#: the delay floors serve only the least queued Sync of a group at least this large
FLOOR_MIN_GROUP = 4


#: [ptp] keys a profile sets too: config attribute → Profile field
PROFILE_KEYS = {
    "domain": "domain_number",
    "transport": "transport",
    "delay_mechanism": "delay_mechanism",
    "log_announce_interval": "log_announce_interval",
    "log_sync_interval": "log_sync_interval",
    "log_min_delay_req_interval": "log_min_delay_req_interval",
    "log_min_pdelay_req_interval": "log_min_pdelay_req_interval",
    "announce_receipt_timeout": "announce_receipt_timeout",
    "priority1": "priority1",
    "priority2": "priority2",
    "clock_class": "clock_class",
    "udp6_scope": "udp6_scope",
}


def effective_profile(c: PtpSection) -> Profile:
    """The profile ``[ptp]`` describes: ``ptp.profile`` (a name or file, as ``netclock ptp
    --profile``) with every [ptp] key of PROFILE_KEYS that is set to anything but its default on
    top; without a profile, the [ptp] keys as they are over the default E2E profile. Raises
    ValueError naming a profile that cannot be found or is invalid."""
    from netclock.config import PtpSection

    base = find_profile(c.profile) if c.profile else Profile(name="config")
    defaults = {f.name: f.default for f in fields(PtpSection)}
    changes: dict[str, Any] = {}
    for key, attr in PROFILE_KEYS.items():
        value = getattr(c, key)
        if c.profile and value == defaults[key]:
            continue
        changes[attr] = value.upper() if key == "delay_mechanism" else value
    try:
        return replace(base, **changes)
    except TypeError as exc:  # pragma: no cover - PROFILE_KEYS names Profile fields
        raise ValueError(f"ptp.profile: {exc}") from exc


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


class PtpDomainSource:
    """One domain of the ``[ptp]`` port: one PtpPort on its own transport, one source of the
    agent (see the module docstring)."""

    def __init__(
        self,
        agent: Agent,
        profile: Profile,
        *,
        interface: str,
        identity: PortIdentity,
        priority: int,
        rng: random.Random,
        group: PtpSource | None = None,
    ) -> None:
        from netclock.daemon.agent import _SourceInfo

        self.agent = agent
        c = agent.cfg.ptp
        self.cfg = c
        self.profile = profile
        self.group = group
        self.domain = profile.domain_number
        self.interface = interface
        self.name = f"ptp:{self.interface}:{self.domain}"
        self.rng = rng
        self.identity = identity
        ref = agent.cfg.reference
        #: observe UTC instead of TAI (another source of the agent is UTC)
        self.utc_mode = bool(agent.cfg.ntp.servers) or (ref.enabled and ref.timescale == "utc")
        self.follow_quality = (
            profile.clock_class == DEFAULT_CLOCK_CLASS and c.role != "slave-only"
        )
        self._quality = self._own_quality(DEFAULT_CLOCK_CLASS)
        self._tprops = TimePropertiesDS(
            current_utc_offset=DEFAULT_UTC_OFFSET_S, current_utc_offset_valid=True
        )
        self.port = PtpPort(self._port_config(), self.identity, self.rng)
        #: the agent's Discipline is this source's servo (windowed fit, steps, lock state);
        #: here only the delay gate, the least-queued pick of each group of Syncs and the
        #: per-direction delay floors (master time at each picked Sync) remain
        self.max_delay_ns = MAX_DELAY_NS
        self.skipped = 0
        self._group: list[tuple[int, int, int, int]] = []  # (apparent delay, t2, master@t2, d)
        self.floors = DirectionFloors(FLOOR_LENGTH)
        self.floor_cut = FlooredSince()
        self.info = _SourceInfo(
            self.name,
            "ptp",
            priority,
            identity="",
            timescale=Timescale.UTC if self.utc_mode else Timescale.TAI,
        )
        self.info.state = "initializing"
        self.transport: PtpTransport | None = None
        #: reads the sockets from the agent's tick while not a master (ptp.rx-poll-ms)
        self.poller: RxPoller | None = None
        self._sync_metadata: SyncMetadata | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timers: PortTimers | None = None
        #: loop time of the master's next refresh (from the agent's tick), and how far apart
        self._refresh_due = 0.0
        self._refresh_every = 1.0
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
        elif self.profile.clock_class != DEFAULT_CLOCK_CLASS:
            clock_class = self.profile.clock_class
        return ClockQuality(clock_class, c.clock_accuracy, c.offset_scaled_log_variance)

    def _port_config(self) -> PortConfig:
        c = self.cfg
        return self.profile.port_config(
            clock_quality=self._quality,
            slave_only=c.role == "slave-only",
            master_only=c.role == "master-only",
            time_properties=self._tprops,
            acceptable_masters=parse_acceptable_masters(c.acceptable_masters),
            hybrid_e2e=c.hybrid_e2e,
        )

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        from netclock.daemon.agent import TICK_S, TICK_SLACK_S, bind_error

        self._refresh_every = 1.0 - TICK_SLACK_S

        self.loop = asyncio.get_running_loop()
        self.timers = PortTimers(self.loop, self._fire)
        self.agent._add_source(self.info)
        stamping = self.cfg.timestamping != "user"
        prof = self.profile
        try:
            self.transport = open_transport(
                self.interface,
                prof.transport,
                event_port=self.cfg.event_port,
                general_port=self.cfg.general_port,
                on_event=self._on_event,
                on_general=self._on_general,
                loop=self.loop,
                timestamping=stamping,
                udp6_scope=prof.udp6_scope,
                l2_primary_mac=prof.l2_primary_mac,
                ttl=self.cfg.ttl,
            )
        except PermissionError as e:
            if prof.transport == "l2":
                raise  # L2NeedsCapNetRawError names CAP_NET_RAW
            port = min(self.cfg.event_port, self.cfg.general_port)
            raise bind_error("PTP", port, e) from e
        except OSError as e:
            port = min(self.cfg.event_port, self.cfg.general_port)
            raise bind_error("PTP", port, e) from e
        mode = self.transport.mode
        if self.cfg.timestamping == "kernel" and mode not in ("kernel", "hardware"):
            self.transport.close()
            raise OSError(f"ptp.timestamping = kernel, but the socket gives {mode} stamps")
        self.info.stamp_source = mode
        if (
            self.cfg.rx_poll_ms
            and self.transport.arrival_stamped
            and self.port.config.delay_mechanism == DelayMechanism.E2E
        ):
            # (with P2P every port answers its neighbour's Pdelay_Reqs, and 802.1AS wants
            # that turnaround within ms: such a port reads per packet in every state)
            interval = self.cfg.rx_poll_ms / 1000
            # At least a tick apart: no timer of its own, the agent's tick reads the sockets
            # (the tick also runs in the wake-up of a Delay_Req, so most polls share it).
            driven = interval >= TICK_S
            self.poller = RxPoller(
                self.transport.sockets, interval, loop=self.loop, timer=not driven,
                slack_s=TICK_SLACK_S if driven else 0.0,
            )
            if driven:
                self.agent.add_tick_hook(self.poller.tick)
        self.agent.add_tick_hook(self._on_tick)
        self._refresh_master()
        self._execute(self.port.start(_mono()))
        self._follow_poll_mode()
        where = (
            f"ports {self.cfg.event_port}/{self.cfg.general_port}"
            if prof.transport != "l2"
            else f"to {prof.l2_primary_mac}"
        )
        log.info(
            "PTP source %s (profile %s, %s %s %s, role %s, priority %d, %s stamps, identity %s)",
            self.name,
            prof.name,
            prof.transport,
            prof.delay_mechanism,
            where,
            self.cfg.role,
            self.info.priority,
            mode,
            self.identity.clock_identity,
        )

    def _follow_poll_mode(self) -> None:
        """Poll the sockets unless the port is a master: a master answers Delay_Reqs and
        sends Follow_Ups as they come, a slave's stamps do not depend on when it reads."""
        if self.poller is None or self._stopped:
            return
        if self.port.state == PortState.MASTER:
            self.poller.stop()
            self.info.rx_poll_ms = 0
        else:
            self.poller.start()
            self.info.rx_poll_ms = self.cfg.rx_poll_ms

    def stop(self) -> None:
        self._stopped = True
        if self.poller is not None and self.poller.running:
            self.poller.stop()
        if self.timers is not None:
            self.timers.cancel_all()
        if self.poller is not None:
            self.agent.remove_tick_hook(self.poller.tick)
        self.agent.remove_tick_hook(self._on_tick)
        if self.transport is not None:
            self.transport.close()

    # -- receive -----------------------------------------------------------------------------------
    def _count(self, msg: str, rx: int = 0, tx: int = 0, bad: int = 0) -> None:
        c = self.info.packets.setdefault(msg, [0, 0, 0])
        c[0] += rx
        c[1] += tx
        c[2] += bad

    def _deliver(self, data: bytes, handler: Any, *args: Any) -> None:
        if self._stopped:
            return
        if len(data) > 4 and data[4] != self.domain and self.group is not None:
            # another domain's message, on a socket every domain of the port shares a group
            # with: that domain's source counts it
            return
        kind = message_type(data)
        counters = self.port.counters
        before = counters["parse_errors"]
        rejected_before = counters["not_acceptable"]
        spoofed_before = counters["wrong_source"]
        try:
            actions = handler(data, *args)
        except Exception:  # a peer's packet must never stop the daemon
            self.errors += 1
            log.exception("%s: dropped a %s message that broke the port", self.name, kind)
            self._count(kind, rx=1, bad=1)
            return
        c = self.info.packets.get(kind)
        if c is None:
            c = self.info.packets[kind] = [0, 0, 0]
        c[0] += 1
        if counters["parse_errors"] > before:
            c[2] += 1
        if counters["not_acceptable"] > rejected_before:
            self._count("announce_rejected", rx=1)  # not on ptp.acceptable-masters
        if counters["wrong_source"] > spoofed_before:
            self._count("wrong_source", rx=1)  # the parent's identity from another address
        if actions:
            self._execute(actions)

    def _on_event(self, r: Received) -> None:
        assert self.transport is not None
        src = source_address(self.transport, r)
        self._deliver(r.data, self.port.handle_event_receive, r.rx_ns, _mono(), src)

    def _on_general(self, r: Received) -> None:
        assert self.transport is not None
        src = source_address(self.transport, r)
        self._deliver(r.data, self.port.handle_general_receive, _mono(), src)
        kind = message_type(r.data)
        if kind == "announce":
            self._update_parent()
        elif kind == "management" and self.port.sync_metadata is not self._sync_metadata:
            sm = self._sync_metadata = self.port.sync_metadata
            if sm is not None:
                log.info("%s: ST 2059-2 synchronization metadata: %d/%d fps%s, %s, local offset "
                         "%+d s", self.name, sm.frame_rate_numerator, sm.frame_rate_denominator,
                         " drop-frame" if sm.drop_frame else "", sm.locking_name,
                         sm.current_local_offset)

    def _fire(self, timer: PortTimer) -> None:
        if self._stopped:
            return
        self._execute(self.port.handle_timer(timer, _mono()))
        self.agent.wake()  # the tick (and the sockets' poll) rides on this wake-up when due

    def _on_tick(self, now_s: float) -> None:
        if now_s >= self._refresh_due:
            self._refresh_master()

    # -- actions -------------------------------------------------------------------------------
    def _execute(self, actions: list[Action]) -> None:
        assert self.loop is not None and self.transport is not None and self.timers is not None
        for a in actions:
            if isinstance(a, SendEvent):
                self._send_event(a)
            elif isinstance(a, SendGeneral):
                self._count(message_type(a.data), tx=1)
                with contextlib.suppress(OSError):
                    self.transport.send_general(a.data, a.dest)
            elif isinstance(a, SetTimer):
                self.timers.set(a.timer, a.at)
            elif isinstance(a, CancelTimer):
                self.timers.cancel(a.timer)
            elif isinstance(a, Measurement):
                self._measurement(a)
            elif isinstance(a, StateChanged):
                log.info("%s: port %s -> %s (%s)", self.name, a.old.name, a.new.name, a.reason)
                self.floors.reset()  # a new parent, or none: its stamps no longer apply
                self.floor_cut.reset()
                self.info.state = a.new.name.lower()
                if a.new == PortState.MASTER:
                    self._refresh_master()
                self._update_parent()
                self._follow_poll_mode()

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
            self.transport.send_event(a.data, done, a.dest)

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
        self.floors.add_sync(m.t2, m.t1 + m.correction)
        if m.t3 or m.t4:
            # slave→master is `asym` shorter than the mean path delay
            self.floors.add_exchange(m.t3, m.t4 - m.resp_correction + asym)
        # Of each group of Syncs spanning ~GROUP_SPAN_NS, only the least queued one (smallest
        # t2 − t1, i.e. earliest arrival) is observed: it keeps the discipline's refits at a
        # few per second whatever the Sync rate.
        self._group.append((m.t2 - m.t1 - m.correction, m.t2, master_at_t2, m.delay))
        size = min(max(GROUP_SPAN_NS // max(self._sync_gap_ns(m.t2), 1), 1), 16)
        if (
            size < FLOOR_MIN_GROUP
            and self.floors.ready()
            and self.port.config.delay_mechanism == DelayMechanism.E2E
            and self.agent.discipline._sources[self.name].cal is not None
        ):
            # Below 16 Sync/s a span holds too few Syncs for the floors, and a lone Sync with
            # the port's filtered delay kept its own queueing against a delay filtered another
            # way (µs of error under a long-tailed delay law; see PtpServo). Once there is a
            # fit to floor through, a group is never smaller than the floors serve.
            size = FLOOR_MIN_GROUP
        if len(self._group) < size:
            return
        _, internal, external, delay = min(self._group)
        picked_of = len(self._group)
        self._group = []
        if self._last_internal is not None and internal <= self._last_internal:
            return
        self._last_internal = internal
        tp = self.port.time_properties
        utc = tp.current_utc_offset * NS_PER_S if self.utc_mode and tp.ptp_timescale else 0
        # The path delay from the per-direction delay floors through this source's fit (see
        # DirectionFloors), when the observed Sync is the least queued of a group large enough
        # to sit near its direction's floor: that Sync plus a delay filtered over whole
        # exchanges kept a bias as large as the path's queueing excess. A lone Sync (below
        # ~16 Sync/s) carries its own queueing excess, which only the fit could tell, and keeps
        # the port's filtered delay, as do P2P (no t3/t4) and the time before the first fit.
        fit = self.agent.discipline._sources[self.name].cal
        if (
            fit is not None
            and picked_of >= FLOOR_MIN_GROUP
            and self.port.config.delay_mechanism == DelayMechanism.E2E
        ):
            to_master = fit.to_external
            floor = self.floors.delay(lambda t: to_master(t) + utc, picked_of)  # in PTP time
            if floor is not None:
                external += floor - delay
                delay = floor
                discipline = self.agent.discipline
                cut = self.floor_cut.note(discipline.window_epoch(self.name), internal,
                                        discipline.config.window_threshold)
                if cut is not None:
                    discipline.discard_before(self.name, cut)
        external -= utc
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
        gm = port.parent_ds.grandmaster_identity  # (not port.observe(): every Announce)
        info.identity = str(gm)
        info.identity_bytes = gm.raw
        info.hops = port.current_ds.steps_removed
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
        """Every second (from the agent's tick): served time source, time properties and
        clockClass."""
        if self._stopped or self.loop is None:
            return
        # due half a tick early: the tick that runs it comes at or after that, so the refresh
        # keeps about a second apart (a master's Syncs carry the tick every 125 ms or so)
        self._refresh_due = self.loop.time() + self._refresh_every
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
            # better grandmaster. Time learnt from this very port, in any of its domains
            # (followed or held over), keeps the default 248, as ptp4l does: with a class
            # <= 127 the BMCA would make the port PASSIVE instead of SLAVE, and it could never
            # follow its master again.
            own = self.group.infos() if self.group is not None else [self.info]
            cls = DEFAULT_CLOCK_CLASS
            if self.agent.discipline.published is not None and info is not None and all(
                info is not o for o in own
            ):
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


class PtpSource:
    """The agent's ``[ptp]`` port: one :class:`PtpDomainSource` for the profile's (or
    ``ptp.domain``'s) domain and one for each ``[[ptp.extra-domain]]``, all with the same
    clockIdentity on the same interface and transport. Each domain is a source of the agent
    with its own priority, so the discipline's failover by priority is the selector of the
    domain that drives the main time (lower ``source-priority`` first; the next one when the
    preferred domain's master falls silent for ``holdover.source-timeout-s``)."""

    def __init__(self, agent: Agent, rng: random.Random | None = None) -> None:
        c = agent.cfg.ptp
        self.agent = agent
        self.profile = effective_profile(c)
        self.interface = c.interface or default_route_interface()
        rng = rng or agent.rng
        mac = interface_mac(self.interface) or bytes([0x02]) + rng.randbytes(5)
        identity = PortIdentity(ClockIdentity.from_mac(mac), 1)
        domains = [(self.profile.domain_number, c.source_priority)]
        for extra in c.extra_domains:
            if extra.domain in (d for d, _ in domains):
                raise ValueError(
                    f"ptp.extra-domain: domain {extra.domain} is already followed "
                    f"(profile {self.profile.name!r} sets domain {self.profile.domain_number})"
                )
            domains.append((extra.domain, extra.source_priority))
        self.sources = [
            PtpDomainSource(
                agent,
                replace(self.profile, domain_number=d),
                interface=self.interface,
                identity=identity,
                priority=prio,
                rng=rng,
                group=self if len(domains) > 1 else None,
            )
            for d, prio in domains
        ]

    @property
    def primary(self) -> PtpDomainSource:
        return self.sources[0]

    @property
    def port(self) -> PtpPort:
        """The primary domain's port."""
        return self.primary.port

    def infos(self) -> list[_SourceInfo]:
        return [s.info for s in self.sources]

    async def start(self) -> None:
        self.agent.main_domain = self.primary.domain
        try:
            for s in self.sources:
                await s.start()
        except BaseException:
            self.stop()
            raise
        self.update_main_domain()

    def update_main_domain(self) -> None:
        """The published domain number is the selected domain's (the primary's otherwise).

        The agent calls this on every source switch (the selection changes nowhere else)."""
        if len(self.sources) < 2:
            return
        selected = self.agent._selected_info()
        domain = self.primary.domain
        for s in self.sources:
            if s.info is selected:
                domain = s.domain
        if domain != self.agent.main_domain:
            log.info("PTP domain %d drives the main time", domain)
            self.agent.main_domain = domain

    def stop(self) -> None:
        for s in self.sources:
            s.stop()


def _mono() -> int:
    return time.monotonic_ns()


__all__ = [
    "PtpDomainSource",
    "PtpSource",
    "default_route_interface",
    "effective_profile",
    "message_type",
]
