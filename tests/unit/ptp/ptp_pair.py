"""Test helper: PtpPorts on a fake multicast link with fake clocks and an event heap."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

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
)
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import ClockIdentity, PortIdentity


@dataclass
class Node:
    port: PtpPort
    #: local clock = true time + offset (ns); the port sees only local time
    offset: int = 0
    timers: dict[PortTimer, int] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    states: list[StateChanged] = field(default_factory=list)
    up: bool = True

    def local(self, true_ns: int) -> int:
        return true_ns + self.offset


class Net:
    """Deterministic multicast segment. Every node hears every other node's messages after
    ``delay_ns`` (+ optional per-direction asymmetry); TX stamps are exact."""

    def __init__(self, delay_ns: int = 50_000, seed: int = 1, jitter_ns: int = 0) -> None:
        self.now = 0
        self.delay_ns = delay_ns
        self.jitter_ns = jitter_ns
        self.rng = random.Random(seed)
        self.nodes: list[Node] = []
        self._q: list[tuple[int, int, str, int, object]] = []
        self._n = 0

    def add(self, cfg: PortConfig, clock_byte: int, offset: int = 0, ptp_epoch: int = 0) -> Node:
        ident = PortIdentity(ClockIdentity(bytes([clock_byte]) * 8), 1)
        port = PtpPort(cfg, ident, random.Random(clock_byte))
        # local → PTP: master timestamps are local + ptp_epoch
        port.set_time_source(Calibration(0, ptp_epoch))
        node = Node(port, offset)
        self.nodes.append(node)
        return node

    def _push(self, at: int, kind: str, idx: int, payload: object) -> None:
        self._n += 1
        heapq.heappush(self._q, (at, self._n, kind, idx, payload))

    def execute(self, idx: int, actions: list[Action]) -> None:
        node = self.nodes[idx]
        for a in actions:
            if isinstance(a, SendEvent | SendGeneral):
                if not node.up:
                    continue
                event = isinstance(a, SendEvent)
                if event:
                    assert isinstance(a, SendEvent)
                    tx_local = node.local(self.now)
                    self._push(self.now, "txts", idx, (a.context, tx_local))
                for j, _other in enumerate(self.nodes):
                    if j != idx:
                        d = self.delay_ns + (self.rng.randrange(self.jitter_ns)
                                             if self.jitter_ns else 0)
                        self._push(self.now + d, "rx", j, (event, a.data))
            elif isinstance(a, SetTimer):
                # deadline in local time → true time
                node.timers[a.timer] = a.at
                self._push(a.at - node.offset, "timer", idx, (a.timer, a.at))
            elif isinstance(a, CancelTimer):
                node.timers.pop(a.timer, None)
            elif isinstance(a, Measurement):
                node.measurements.append(a)
            elif isinstance(a, StateChanged):
                node.states.append(a)

    def start(self) -> None:
        for i, n in enumerate(self.nodes):
            self.execute(i, n.port.start(n.local(self.now)))

    def run_until(self, t_end: int) -> None:
        while self._q and self._q[0][0] <= t_end:
            at, _, kind, idx, payload = heapq.heappop(self._q)
            self.now = max(self.now, at)
            node = self.nodes[idx]
            local = node.local(self.now)
            if kind == "rx":
                if not node.up:
                    continue
                event, data = payload  # type: ignore[misc]
                if event:
                    acts = node.port.handle_event_receive(data, local, local)
                else:
                    acts = node.port.handle_general_receive(data, local)
            elif kind == "txts":
                ctx, ts = payload  # type: ignore[misc]
                acts = [] if ctx.used else node.port.handle_send_timestamp(ctx, ts, local)
            else:
                timer, deadline = payload  # type: ignore[misc]
                if node.timers.get(timer) != deadline or not node.up:
                    continue
                del node.timers[timer]
                acts = node.port.handle_timer(timer, local)
            self.execute(idx, acts)
        self.now = max(self.now, t_end)
