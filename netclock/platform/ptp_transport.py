"""PTP over UDP (IEEE 1588-2019 Annex C, D): event 319 / general 320.

UDPv4 (Annex C): multicast 224.0.1.129, peer delay messages to 224.0.0.107. UDPv6 (Annex D):
FF0X::181 with X the configured scope (0xE global by default, as ptp4l's ``udp6_scope``), peer
delay messages to FF02::6B. L2 (Annex E): Ethernet frames of ethertype 0x88F7 on an AF_PACKET
socket (needs CAP_NET_RAW), to 01:1B:19:00:00:00 (or the configured primary address, e.g.
01:80:C2:00:00:0E for gPTP) with peer delay messages to 01:80:C2:00:00:0E. The destination of
each send follows from its messageType.

:class:`UdpPtpTransport` owns the two timestamped sockets (SO_TIMESTAMPING through
:class:`~netclock.platform.timestamping.StampedSocket`; every stamp is CLOCK_MONOTONIC ns).
:class:`PtpRunner` drives a sans-IO :class:`~netclock.ptp.port.PtpPort` with it: receive →
``handle_*`` → execute actions (send, timers via ``loop.call_at``, measurements into the
:class:`~netclock.ptp.servo.PtpServo`). Ports below 1024 need CAP_NET_BIND_SERVICE; tests and
unprivileged runs pass high ``event_port``/``general_port`` numbers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netclock.calibration import Calibration
from netclock.platform.timestamping import Received, Stamp, StampedSocket, shared_clock_map
from netclock.platform.udp import open_udp
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
from netclock.ptp.port import PtpPort
from netclock.ptp.profiles import BUILTIN_PROFILES, Profile, load_profile
from netclock.ptp.servo import PtpServo, ServoSample
from netclock.time import NS_PER_S

PTP_PRIMARY_GROUP = "224.0.1.129"
PTP_PDELAY_GROUP = "224.0.0.107"
PTP_PDELAY_GROUP6 = "ff02::6b"
EVENT_PORT = 319
GENERAL_PORT = 320
TRANSPORTS = ("udpv4", "udpv6", "l2")
ETH_P_1588 = 0x88F7
L2_PRIMARY_MAC = "01:1b:19:00:00:00"
L2_PDELAY_MAC = "01:80:c2:00:00:0e"
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_MULTICAST = 0
#: messageType values that go to the peer-delay address (Pdelay_Req/Resp/Resp_Follow_Up)
_PEER_TYPES = frozenset((0x2, 0x3, 0xA))


def primary_group6(scope: int) -> str:
    """FF0X::181 for the IPv6 multicast scope nibble X (Annex D.3)."""
    if not 0 <= scope <= 0xF:
        raise ValueError("IPv6 multicast scope is a nibble 0..15")
    return f"ff0{scope:x}::181"


class UdpPtpTransport:
    """The event and general sockets of one PTP port on one interface."""

    def __init__(
        self,
        interface: str,
        *,
        group: str = PTP_PRIMARY_GROUP,
        event_port: int = EVENT_PORT,
        general_port: int = GENERAL_PORT,
        on_event: Callable[[Received], None],
        on_general: Callable[[Received], None],
        loop: asyncio.AbstractEventLoop | None = None,
        timestamping: bool = True,
        transport: str = "udpv4",
        udp6_scope: int = 0xE,
        ttl: int = 1,
    ) -> None:
        if transport not in ("udpv4", "udpv6"):
            raise ValueError(f"UDP transport {transport!r} is not udpv4 or udpv6")
        self.interface = interface
        self.transport = transport
        if transport == "udpv6":
            group = primary_group6(udp6_scope) if group == PTP_PRIMARY_GROUP else group
            self.pdelay_group = PTP_PDELAY_GROUP6
        else:
            self.pdelay_group = PTP_PDELAY_GROUP
        self.group = group
        self.event_port = event_port
        self.general_port = general_port
        kw = {"interface": interface, "multicast_groups": [group, self.pdelay_group],
              "multicast_loop": False, "multicast_hops": ttl}
        self.event = StampedSocket(
            open_udp("", event_port, **kw),  # type: ignore[arg-type]
            loop=loop, on_receive=on_event, timestamping=timestamping,
        )
        # RX stamps on the general port too: they order Follow_Ups among Syncs when the two
        # sockets are read by an RxPoller (no TX stamp is asked for on this socket)
        self.general = StampedSocket(
            open_udp("", general_port, **kw),  # type: ignore[arg-type]
            loop=loop, on_receive=on_general, timestamping=timestamping,
        )

    @property
    def mode(self) -> str:
        return str(getattr(self.event, "mode", "unknown"))

    @property
    def sockets(self) -> tuple[StampedSocket, ...]:
        """The sockets to read (for an :class:`~netclock.platform.timestamping.RxPoller`)."""
        return (self.event, self.general)

    @property
    def arrival_stamped(self) -> bool:
        """Every socket stamps datagrams in the kernel (or NIC) on arrival: polling is safe."""
        return all(s.mode in ("kernel", "hardware") for s in self.sockets)

    def _dest(self, data: bytes) -> str:
        return self.pdelay_group if data and data[0] & 0x0F in _PEER_TYPES else self.group

    def send_event(self, data: bytes, callback: Callable[[Stamp | None], None],
                   dest: str | None = None) -> None:
        """Send to the multicast group for the messageType, or unicast to ``dest``."""
        self.event.send_event_cb(data, (dest or self._dest(data), self.event_port), callback)

    def send_general(self, data: bytes, dest: str | None = None) -> None:
        self.general.send_general(data, (dest or self._dest(data), self.general_port))

    def close(self) -> None:
        self.event.close()
        self.general.close()


class UdsManagement:
    """A Unix datagram socket at ``path`` answering PTP management messages, as ptp4l's
    ``uds_address``: ``pmc -u -s PATH 'GET ...'`` sends from its own bound socket and gets the
    reply there. ``handler(data) -> reply | None``. The socket file is removed on close."""

    def __init__(
        self,
        path: str,
        handler: Callable[[bytes], bytes | None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        mode: int = 0o660,
    ) -> None:
        self.path = path
        self.handler = handler
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.counters = {"rx": 0, "tx": 0, "errors": 0}
        with contextlib.suppress(FileNotFoundError):
            if os.path.exists(path) and not os.path.isdir(path):
                os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(path)
            os.chmod(path, mode)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.counters["errors"] += 1
                return
            self.counters["rx"] += 1
            reply = self.handler(data)
            if reply is None or not addr:
                continue
            try:
                self.sock.sendto(reply, addr)
                self.counters["tx"] += 1
            except OSError:
                self.counters["errors"] += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


_PACKET_TX_TIMESTAMP = 16
_IP_RECVERR = 11


class _PacketSocket(socket.socket):
    """An AF_PACKET socket whose error-queue TX stamps look like UDP ones: the kernel reports
    them as (SOL_PACKET, PACKET_TX_TIMESTAMP) with the same ``sock_extended_err`` payload as
    IP_RECVERR, so they are relabelled for the shared StampedSocket parser."""

    def recvmsg(self, *args: int) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
        data, anc, flags, addr = super().recvmsg(*args)
        anc = [(socket.SOL_IP, _IP_RECVERR, d)
               if (lvl, typ) == (_SOL_PACKET, _PACKET_TX_TIMESTAMP) else (lvl, typ, d)
               for lvl, typ, d in anc]
        return data, anc, flags, addr


class L2NeedsCapNetRawError(PermissionError):
    """Opening the AF_PACKET socket was refused: the process lacks CAP_NET_RAW."""


def _mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


class L2PtpTransport:
    """PTP over IEEE 802.3 (Annex E): one AF_PACKET datagram socket (ethertype 0x88F7) for event
    and general messages; received messages are split by messageType. Same interface as
    :class:`UdpPtpTransport`.

    RX and TX stamps are kernel (software) stamps like on UDP; see :class:`_PacketSocket`.
    """

    def __init__(
        self,
        interface: str,
        *,
        on_event: Callable[[Received], None],
        on_general: Callable[[Received], None],
        loop: asyncio.AbstractEventLoop | None = None,
        timestamping: bool = True,
        primary_mac: str = L2_PRIMARY_MAC,
        pdelay_mac: str = L2_PDELAY_MAC,
        tx_timeout_s: float = 0.1,
    ) -> None:
        self.interface = interface
        self.transport = "l2"
        self.primary = _mac_bytes(primary_mac)
        self.pdelay = _mac_bytes(pdelay_mac)
        self._on_event, self._on_general = on_event, on_general
        try:
            sock = _PacketSocket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_1588))
        except PermissionError as exc:
            raise L2NeedsCapNetRawError(
                exc.errno,
                "PTP over L2 needs CAP_NET_RAW to open an AF_PACKET socket: run as root, or "
                "grant it (systemd AmbientCapabilities=CAP_NET_RAW, or setcap cap_net_raw+ep)",
            ) from exc
        try:
            sock.bind((interface, ETH_P_1588))
            index = socket.if_nametoindex(interface)
            for mac in {self.primary, self.pdelay}:
                mreq = struct.pack("iHH8s", index, _PACKET_MR_MULTICAST, 6, mac)
                sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)
        except OSError:
            sock.close()
            raise
        self.event = StampedSocket(sock, loop=loop, on_receive=self._dispatch,
                                   timestamping=timestamping, tx_timeout_s=tx_timeout_s)
        self.general = self.event

    def _dispatch(self, r: Received) -> None:
        if r.data and r.data[0] & 0x0F < 8:
            self._on_event(r)
        else:
            self._on_general(r)

    @property
    def mode(self) -> str:
        return str(getattr(self.event, "mode", "unknown"))

    @property
    def sockets(self) -> tuple[StampedSocket, ...]:
        return (self.event,)

    @property
    def arrival_stamped(self) -> bool:
        return self.event.mode in ("kernel", "hardware")

    def _dest(self, data: bytes) -> tuple[str, int, int, int, bytes]:
        mac = self.pdelay if data and data[0] & 0x0F in _PEER_TYPES else self.primary
        return (self.interface, ETH_P_1588, 0, 0, mac)

    def send_event(self, data: bytes, callback: Callable[[Stamp | None], None],
                   dest: str | None = None) -> None:
        self.event.send_event_cb(data, self._dest(data), callback)

    def send_general(self, data: bytes, dest: str | None = None) -> None:
        self.event.send_general(data, self._dest(data))

    def close(self) -> None:
        self.event.close()


PtpTransport = UdpPtpTransport | L2PtpTransport


def open_transport(
    interface: str,
    transport: str,
    *,
    on_event: Callable[[Received], None],
    on_general: Callable[[Received], None],
    loop: asyncio.AbstractEventLoop | None = None,
    timestamping: bool = True,
    event_port: int = EVENT_PORT,
    general_port: int = GENERAL_PORT,
    udp6_scope: int = 0xE,
    l2_primary_mac: str = L2_PRIMARY_MAC,
    ttl: int = 1,
) -> PtpTransport:
    """The transport of one port: ``udpv4``/``udpv6`` (event/general ports, IPv6 scope, TTL) or
    ``l2`` (primary destination MAC; raises :class:`L2NeedsCapNetRawError` without
    CAP_NET_RAW). The one place the CLI's :class:`PtpRunner` and the daemon's PTP source open
    their sockets."""
    if transport == "l2":
        return L2PtpTransport(interface, on_event=on_event, on_general=on_general, loop=loop,
                              timestamping=timestamping, primary_mac=l2_primary_mac)
    if transport not in TRANSPORTS:
        raise ValueError(f"PTP transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
    return UdpPtpTransport(interface, event_port=event_port, general_port=general_port,
                           on_event=on_event, on_general=on_general, loop=loop,
                           timestamping=timestamping, transport=transport,
                           udp6_scope=udp6_scope, ttl=ttl)


def source_address(transport: PtpTransport, r: Received) -> str | None:
    """The sender's address as the port wants it (unicast operation): the IP address on UDP,
    None on L2 (Ethernet operation is multicast only)."""
    if isinstance(transport, L2PtpTransport) or not r.addr:
        return None
    return str(r.addr[0])


#: where ``--profile NAME`` / ``ptp.profile = "NAME"`` looks first (an administrator's own or
#: changed profiles); then the profiles shipped in the package (netclock/ptp/profile_data,
#: documented copy in deploy/profiles)
PROFILE_DIRS = (Path("/etc/netclock/profiles"),)
PROFILE_PACKAGE = "netclock.ptp"
PROFILE_DATA = "profile_data"
PROFILE_ALIASES = {"default": "default-e2e", "smpte": "smpte-2059-2", "st2059-2": "smpte-2059-2",
                   "aes67": "aes67-media", "802.1as": "gptp"}


def builtin_profile_text(name: str) -> str | None:
    """The TOML text of a profile shipped in the package (None if there is no such profile)."""
    from importlib import resources

    res = resources.files(PROFILE_PACKAGE).joinpath(PROFILE_DATA, f"{name}.toml")
    try:
        return res.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def find_profile(spec: str) -> Profile:
    """A profile by file path (``*.toml`` that exists) or by name (or alias): first in
    PROFILE_DIRS, then in the package. Raises ValueError (ProfileError) naming the reason."""
    path = Path(spec)
    if path.suffix == ".toml" and path.is_file():
        where, text = str(path), path.read_text(encoding="utf-8")
    else:
        name = PROFILE_ALIASES.get(spec, spec)
        if "/" in name or name.startswith("."):
            raise ValueError(f"no profile file {spec!r}")
        for d in PROFILE_DIRS:
            if (d / f"{name}.toml").is_file():
                where = str(d / f"{name}.toml")
                text = (d / f"{name}.toml").read_text(encoding="utf-8")
                break
        else:
            found = builtin_profile_text(name)
            if found is None:
                looked = ", ".join([*map(str, PROFILE_DIRS), "the built-in profiles"])
                raise ValueError(f"no profile {spec!r} (looked in {looked}; built in: "
                                 f"{', '.join(BUILTIN_PROFILES)})")
            where, text = f"built-in profile {name}", found
    try:
        return load_profile(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


@dataclass
class RunnerStats:
    """What the CLI prints each second."""

    offsets: list[int] = field(default_factory=list)
    last: ServoSample | None = None
    last_measurement: Measurement | None = None
    state_changes: list[StateChanged] = field(default_factory=list)


def _mono() -> int:
    return time.monotonic_ns()


def master_time_source(utc_offset_s: int, ptp_timescale: bool) -> Calibration:
    """CLOCK_MONOTONIC → PTP time of this host: CLOCK_REALTIME (+ TAI−UTC for the PTP timescale),
    via the shared REALTIME↔MONOTONIC map."""
    est = shared_clock_map().estimate
    now = _mono()
    shift = utc_offset_s * NS_PER_S if ptp_timescale else 0
    return Calibration(internal=now, external=est.to_realtime(now) + shift)


class PortTimers:
    """asyncio timers behind a port's SetTimer/CancelTimer actions: one handle per timer.

    ``fire(timer)`` is called when a timer expires; setting a timer again replaces it."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fire: Callable[[PortTimer], None]
    ) -> None:
        self._loop = loop
        self._fire_cb = fire
        self._handles: dict[PortTimer, asyncio.TimerHandle] = {}

    def set(self, timer: PortTimer, at_ns: int) -> None:
        self.cancel(timer)
        delay_s = max(at_ns - _mono(), 0) / NS_PER_S
        self._handles[timer] = self._loop.call_later(delay_s, self._fire, timer)

    def cancel(self, timer: PortTimer) -> None:
        h = self._handles.pop(timer, None)
        if h is not None:
            h.cancel()

    def cancel_all(self) -> None:
        for h in self._handles.values():
            h.cancel()
        self._handles.clear()

    def _fire(self, timer: PortTimer) -> None:
        self._handles.pop(timer, None)
        self._fire_cb(timer)


class PtpRunner:
    """Runs one PtpPort on a UdpPtpTransport inside an asyncio loop."""

    def __init__(
        self,
        port: PtpPort,
        interface: str,
        *,
        servo: PtpServo | None = None,
        event_port: int = EVENT_PORT,
        general_port: int = GENERAL_PORT,
        on_state: Callable[[StateChanged], None] | None = None,
        transport: str = "udpv4",
        udp6_scope: int = 0xE,
        uds_path: str | None = None,
        l2_primary_mac: str = L2_PRIMARY_MAC,
    ) -> None:
        self.port = port
        self.servo = servo if servo is not None else PtpServo()
        self.stats = RunnerStats()
        self.on_state = on_state
        self.loop = asyncio.get_running_loop()
        self.timers = PortTimers(self.loop, self._fire)
        self.transport: PtpTransport = open_transport(
            interface,
            transport,
            on_event=self._on_event,
            on_general=self._on_general,
            loop=self.loop,
            event_port=event_port,
            general_port=general_port,
            udp6_scope=udp6_scope,
            l2_primary_mac=l2_primary_mac,
        )
        self._refresh_handle: asyncio.TimerHandle | None = None
        self.uds: UdsManagement | None = None
        if uds_path:
            self.uds = UdsManagement(uds_path, self._on_uds, loop=self.loop)

    def start(self) -> None:
        self._refresh_time_source()
        self.execute(self.port.start(_mono()))

    def _refresh_time_source(self) -> None:
        tp = self.port.config.time_properties
        self.port.set_time_source(master_time_source(tp.current_utc_offset, tp.ptp_timescale))
        self._refresh_handle = self.loop.call_later(1.0, self._refresh_time_source)

    def close(self) -> None:
        self.timers.cancel_all()
        if self._refresh_handle is not None:
            self._refresh_handle.cancel()
        if self.uds is not None:
            self.uds.close()
        self.transport.close()

    # -- I/O callbacks ---------------------------------------------------------------------

    def _src(self, r: Received) -> str | None:
        return source_address(self.transport, r)

    def _on_event(self, r: Received) -> None:
        self.execute(self.port.handle_event_receive(r.data, r.rx_ns, _mono(), self._src(r)))

    def _on_general(self, r: Received) -> None:
        self.execute(self.port.handle_general_receive(r.data, _mono(), self._src(r)))

    def _on_uds(self, data: bytes) -> bytes | None:
        return self.port.handle_management(data, _mono())

    def _fire(self, timer: PortTimer) -> None:
        self.execute(self.port.handle_timer(timer, _mono()))

    # -- actions ---------------------------------------------------------------------------

    def execute(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, SendEvent):
                self._send_event(a)
            elif isinstance(a, SendGeneral):
                with contextlib.suppress(OSError):
                    self.transport.send_general(a.data, a.dest)
            elif isinstance(a, SetTimer):
                self.timers.set(a.timer, a.at)
            elif isinstance(a, CancelTimer):
                self.timers.cancel(a.timer)
            elif isinstance(a, Measurement):
                self.stats.last_measurement = a
                s = self.servo.sample(a)
                if s is not None:
                    self.stats.last = s
                    cal = self.servo.published
                    if cal is not None:
                        # pmc/ptp4l sign: offsetFromMaster is slave minus master
                        self.port.set_servo_status(-s.offset_ns, cal.to_external(a.t2))
                    if s.fit is not None and cal is not None:
                        self.port.set_rate_ratio(cal.rate_num, cal.rate_denom)
                    if s.fit is not None or self.servo.published is not None:
                        self.stats.offsets.append(s.offset_ns)
            elif isinstance(a, StateChanged):
                self.stats.state_changes.append(a)
                if self.on_state is not None:
                    self.on_state(a)

    def _send_event(self, a: SendEvent) -> None:
        ctx = a.context

        def done(stamp: Stamp | None) -> None:
            if stamp is not None and not ctx.used:
                self.execute(self.port.handle_send_timestamp(ctx, stamp.ns, _mono()))

        with contextlib.suppress(OSError):
            self.transport.send_event(a.data, done, a.dest)

    def published_ptp_ns(self, mono_ns: int | None = None) -> int | None:
        """PTP time now according to the published calibration (None before the first fit)."""
        cal = self.servo.published
        if cal is None:
            return None
        return cal.to_external(_mono() if mono_ns is None else mono_ns)
