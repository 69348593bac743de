"""Simulator nodes that run the real NTP and PTP cores (pure module).

Each class is a :class:`~netclock.sim.network.SimCore`: it turns the core's actions (sends,
timers) into the simulator's and feeds the simulator's deliveries, timers and transmit
timestamps back into the core. The scenario library and the unit tests share them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from netclock.ntp.select import NtpClient
from netclock.ntp.server import DisciplineState, NtpServer
from netclock.ntp.source import Measured, NtpSource, SampleMode
from netclock.ntp.source import Send as NtpSend
from netclock.ntp.source import SetTimer as NtpSetTimer
from netclock.ptp.actions import Action, SendEvent, SendGeneral, TxContext
from netclock.ptp.actions import CancelTimer as PtpCancel
from netclock.ptp.actions import SetTimer as PtpSet
from netclock.ptp.datasets import TimePropertiesDS
from netclock.ptp.instance import PtpInstance
from netclock.sim.network import CancelTimer, Send, SetTimer, SimAction

__all__ = ["UNIX_BASE", "NtpClientNode", "NtpServerNode", "PtpNode"]

#: what NTP server nodes add to their clock reading: a Unix time in 2026 (ns)
UNIX_BASE = 1_790_000_000 * 1_000_000_000


class NtpServerNode:
    """An :class:`NtpServer` serving its own clock + :data:`UNIX_BASE` + ``offset_ns``."""

    def __init__(self, offset_ns: int = 0) -> None:
        self.server = NtpServer(lambda m: m + UNIX_BASE + offset_ns, DisciplineState(stratum=1),
                                rate_limit=None)

    def start(self, now: int) -> Iterable[SimAction]:
        return []

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        resp = self.server.respond(data, rx_ts, now, src)
        if resp is None:
            return []
        return [Send(src, self.server.restamp(resp, now), ctx=resp.tx_token)]

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        return []

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        if isinstance(ctx, int):
            self.server.handle_tx_timestamp(ctx, tx_ts)
        return []


@dataclass
class NtpClientNode:
    """Several :class:`NtpSource` (one per server node name) feeding one :class:`NtpClient`.

    ``fed`` counts, per server, the samples that reached the calibration window;
    ``interleaved`` counts interleaved-mode samples.
    """

    sources: dict[str, NtpSource]
    client: NtpClient
    fed: dict[str, int] = field(default_factory=dict)
    interleaved: int = 0

    def _tr(self, name: str, actions: Iterable[object]) -> list[SimAction]:
        out: list[SimAction] = []
        for a in actions:
            if isinstance(a, NtpSend):
                out.append(Send(name, a.data, ctx=(name, a.request_id)))
            elif isinstance(a, NtpSetTimer):
                out.append(SetTimer(name, a.at_ns))
            elif isinstance(a, Measured):
                self.interleaved += a.sample.mode == SampleMode.INTERLEAVED
                upd = self.client.add_sample(name, a.sample)
                self.fed[name] = self.fed.get(name, 0) + (upd.observation is not None)
        return out

    def start(self, now: int) -> Iterable[SimAction]:
        return [x for n, s in self.sources.items() for x in self._tr(n, s.handle_timer(now))]

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        return self._tr(src, self.sources[src].handle_incoming(data, rx_ts, now))

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        assert isinstance(timer, str)
        return self._tr(timer, self.sources[timer].handle_timer(now))

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        assert isinstance(ctx, tuple)
        name, rid = ctx
        return self._tr(name, self.sources[name].handle_tx_timestamp(rid, tx_ts))


class PtpNode:
    """One :class:`PtpInstance`, multicasting to ``peers``; event and general messages are
    told apart by messageType. ``up = False`` silences it (a dead grandmaster);
    ``tp_changes`` are (local time, time properties) applied in order as the port's
    configuration (leap second and UTC-offset announcements)."""

    def __init__(self, name: str, peers: list[str], inst: PtpInstance) -> None:
        self.name, self.peers, self.inst = name, peers, inst
        self.up = True
        self.tp_changes: list[tuple[int, TimePropertiesDS]] = []

    def _tr(self, actions: list[Action]) -> list[SimAction]:
        out: list[SimAction] = []
        for a in actions:
            if isinstance(a, SendEvent | SendGeneral) and not self.up:
                continue
            if isinstance(a, SendEvent):
                out += [Send(p, a.data, ctx=(id(a.context), a.context) if i == 0 else None)
                        for i, p in enumerate(self.peers)]
            elif isinstance(a, SendGeneral):
                out += [Send(p, a.data) for p in self.peers]
            elif isinstance(a, PtpSet):
                out.append(SetTimer(a.timer, a.at))
            elif isinstance(a, PtpCancel):
                out.append(CancelTimer(a.timer))
        return out

    def start(self, now: int) -> Iterable[SimAction]:
        return self._tr(self.inst.start(now))

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        if not self.up:
            return []
        if data and data[0] & 0x0F < 8:
            return self._tr(self.inst.handle_event_receive(data, rx_ts, now))
        return self._tr(self.inst.handle_general_receive(data, now))

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        acts: list[Action] = []
        while self.tp_changes and self.tp_changes[0][0] <= now:
            _, tp = self.tp_changes.pop(0)
            acts += self.inst.port.reconfigure(now, time_properties=tp)
        return self._tr(acts + self.inst.handle_timer(timer, now))  # type: ignore[arg-type]

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        assert isinstance(ctx, tuple)
        context = ctx[1]
        assert isinstance(context, TxContext)
        if context.used:  # one-step sends carry their own timestamp
            return []
        return self._tr(self.inst.handle_send_timestamp(context, tx_ts, now))
