"""PTP over UDPv4 (IEEE 1588-2019 Annex C): multicast 224.0.1.129, event 319 / general 320.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
from netclock.ptp.servo import PtpServo, ServoSample
from netclock.time import NS_PER_S

PTP_PRIMARY_GROUP = "224.0.1.129"
EVENT_PORT = 319
GENERAL_PORT = 320


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
    ) -> None:
        self.interface = interface
        self.group = group
        self.event_port = event_port
        self.general_port = general_port
        kw = {"interface": interface, "multicast_groups": [group], "multicast_loop": False}
        self.event = StampedSocket(
            open_udp("", event_port, **kw),  # type: ignore[arg-type]
            loop=loop, on_receive=on_event, timestamping=timestamping,
        )
        self.general = StampedSocket(
            open_udp("", general_port, **kw),  # type: ignore[arg-type]
            loop=loop, on_receive=on_general, timestamping=False,
        )

    @property
    def mode(self) -> str:
        return str(getattr(self.event, "mode", "unknown"))

    def send_event(self, data: bytes, callback: Callable[[Stamp | None], None]) -> None:
        self.event.send_event_cb(data, (self.group, self.event_port), callback)

    def send_general(self, data: bytes) -> None:
        self.general.send_general(data, (self.group, self.general_port))

    def close(self) -> None:
        self.event.close()
        self.general.close()


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
    ) -> None:
        self.port = port
        self.servo = servo if servo is not None else PtpServo()
        self.stats = RunnerStats()
        self.on_state = on_state
        self.loop = asyncio.get_running_loop()
        self._handles: dict[PortTimer, asyncio.TimerHandle] = {}
        self.transport = UdpPtpTransport(
            interface,
            event_port=event_port,
            general_port=general_port,
            on_event=self._on_event,
            on_general=self._on_general,
            loop=self.loop,
        )
        self._refresh_handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._refresh_time_source()
        self.execute(self.port.start(_mono()))

    def _refresh_time_source(self) -> None:
        tp = self.port.config.time_properties
        self.port.set_time_source(master_time_source(tp.current_utc_offset, tp.ptp_timescale))
        self._refresh_handle = self.loop.call_later(1.0, self._refresh_time_source)

    def close(self) -> None:
        for h in self._handles.values():
            h.cancel()
        if self._refresh_handle is not None:
            self._refresh_handle.cancel()
        self.transport.close()

    # -- I/O callbacks ---------------------------------------------------------------------

    def _on_event(self, r: Received) -> None:
        self.execute(self.port.handle_event_receive(r.data, r.rx_ns, _mono()))

    def _on_general(self, r: Received) -> None:
        self.execute(self.port.handle_general_receive(r.data, _mono()))

    def _fire(self, timer: PortTimer) -> None:
        self._handles.pop(timer, None)
        self.execute(self.port.handle_timer(timer, _mono()))

    # -- actions ---------------------------------------------------------------------------

    def execute(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, SendEvent):
                self._send_event(a)
            elif isinstance(a, SendGeneral):
                with contextlib.suppress(OSError):
                    self.transport.send_general(a.data)
            elif isinstance(a, SetTimer):
                old = self._handles.pop(a.timer, None)
                if old is not None:
                    old.cancel()
                delay_s = max(a.at - _mono(), 0) / NS_PER_S
                self._handles[a.timer] = self.loop.call_later(delay_s, self._fire, a.timer)
            elif isinstance(a, CancelTimer):
                h = self._handles.pop(a.timer, None)
                if h is not None:
                    h.cancel()
            elif isinstance(a, Measurement):
                self.stats.last_measurement = a
                s = self.servo.sample(a)
                if s is not None:
                    self.stats.last = s
                    cal = self.servo.published
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
            self.transport.send_event(a.data, done)

    def published_ptp_ns(self, mono_ns: int | None = None) -> int | None:
        """PTP time now according to the published calibration (None before the first fit)."""
        cal = self.servo.published
        if cal is None:
            return None
        return cal.to_external(_mono() if mono_ns is None else mono_ns)
