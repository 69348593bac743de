"""SimNetwork drives byte-level sans-IO cores: the plug-in path for netclock.ntp / netclock.ptp.

``FakeNtpClient`` / ``FakeNtpServer`` stand in for a real protocol core: they speak bytes, take
``now`` and return their *own* action types. ``CoreAdapter`` translates those actions into
``Send`` / ``SetTimer``, exactly as an adapter for the real cores would (see
:mod:`netclock.sim.network`).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from netclock.estimators import TwoWaySample, WindowEstimator
from netclock.sim.clock import SimClock
from netclock.sim.link import Link, LinkSpec
from netclock.sim.network import Send, SetTimer, SimAction, SimNetwork
from netclock.sim.scheduler import Scheduler

S = 1_000_000_000
T0 = 1_700_000_000 * S
PKT = struct.Struct("!Iqqq")  # seq, origin (client t1), server rx (t2), server tx (t3)


# -- a tiny core with its own action vocabulary --------------------------------------------------
@dataclass(frozen=True)
class Transmit:
    data: bytes
    want_tx_timestamp: bool


@dataclass(frozen=True)
class Wake:
    at_ns: int


class FakeNtpServer:
    """Answers a request with (t2 = RX timestamp, t3 = 'now' when answering)."""

    def handle_packet(self, data: bytes, rx_ts: int, now: int) -> list[Transmit | Wake]:
        seq, t1, _, _ = PKT.unpack(data)
        return [Transmit(PKT.pack(seq, t1, rx_ts, now), False)]

    def handle_tx_timestamp(self, seq: int, tx_ts: int, now: int) -> list[Transmit | Wake]:
        return []

    def handle_wake(self, now: int) -> list[Transmit | Wake]:
        return []


class FakeNtpClient:
    """Polls every second; t1 comes from the TX timestamp, t4 from the RX timestamp."""

    def __init__(self, estimator: WindowEstimator) -> None:
        self.est = estimator
        self.seq = 0
        self.t1: dict[int, int] = {}
        self.samples: list[tuple[int, int, int, int]] = []

    def handle_wake(self, now: int) -> list[Transmit | Wake]:
        self.seq += 1
        return [Transmit(PKT.pack(self.seq, 0, 0, 0), True), Wake(now + S)]

    def handle_tx_timestamp(self, seq: int, tx_ts: int, now: int) -> list[Transmit | Wake]:
        self.t1[seq] = tx_ts
        return []

    def handle_packet(self, data: bytes, rx_ts: int, now: int) -> list[Transmit | Wake]:
        seq, _, t2, t3 = PKT.unpack(data)
        t1 = self.t1.pop(seq)
        self.samples.append((t1, t2, t3, rx_ts))
        # Client/server naming to the estimator's master/slave naming: the server is the
        # master, so master TX = t3, slave RX = t4, slave TX = t1, master RX = t2.
        self.est.update(TwoWaySample(t3, rx_ts, t1, t2), now)
        return []


class CoreAdapter:
    """Translates a fake core's actions into SimNetwork actions (the plug-in pattern)."""

    def __init__(self, core: FakeNtpClient | FakeNtpServer, peer: str, start_wake: bool) -> None:
        self.core, self.peer, self.start_wake = core, peer, start_wake
        self.seq_of_send = 0

    def _tr(self, actions: Iterable[Transmit | Wake]) -> list[SimAction]:
        out: list[SimAction] = []
        for a in actions:
            if isinstance(a, Transmit):
                seq = PKT.unpack(a.data)[0]
                out.append(Send(self.peer, a.data, ctx=seq if a.want_tx_timestamp else None))
            else:
                out.append(SetTimer("wake", a.at_ns))
        return out

    def start(self, now: int) -> Iterable[SimAction]:
        return [SetTimer("wake", now)] if self.start_wake else []

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        return self._tr(self.core.handle_packet(data, rx_ts, now))

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        return self._tr(self.core.handle_wake(now))

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        assert isinstance(ctx, int)
        return self._tr(self.core.handle_tx_timestamp(ctx, tx_ts, now))


def _build(delay_c2s: int, delay_s2c: int) -> tuple[Scheduler, SimNetwork, FakeNtpClient]:
    sched = Scheduler(T0)
    net = SimNetwork(sched)
    server_clock = SimClock(start_ns=T0, freq_ppm=0.0)
    client_clock = SimClock(start_ns=T0, offset_ns=-T0 + 1000 * S, freq_ppm=-20.0)
    client = FakeNtpClient(WindowEstimator())
    net.add_node("server", server_clock, CoreAdapter(FakeNtpServer(), "client", False))
    net.add_node("client", client_clock, CoreAdapter(client, "server", True))
    net.connect("client", "server", Link(LinkSpec(base_ns=delay_c2s), random.Random(1)))
    net.connect("server", "client", Link(LinkSpec(base_ns=delay_s2c), random.Random(2)))
    net.start()
    return sched, net, client


def test_fake_core_timestamps_are_the_nodes_clock_readings() -> None:
    sched, net, client = _build(50_000, 50_000)
    sched.run_until(T0 + 30 * S)
    assert len(client.samples) == 30
    cc, sc = net.clock("client"), net.clock("server")
    for k, (t1, t2, t3, t4) in enumerate(client.samples):
        # The client polls when its own clock reads start + k s; TX is stamped then.
        true_tx = T0 + round(k * S / (1 - 20e-6))
        assert abs(cc.read(true_tx) - t1) <= 1
        # RX at the server is exactly 50 us of true time later, read on the server's clock.
        assert abs(t2 - sc.read(true_tx + 50_000)) <= 1
        assert t3 == t2  # the fake server answers at once
        assert abs(t4 - cc.read(true_tx + 100_000)) <= 1
    assert net.delivered[("client", "server")] == 30


def test_fake_core_feeds_an_estimator_that_locks() -> None:
    sched, net, client = _build(50_000, 50_000)
    sched.run_until(T0 + 60 * S)
    t = sched.now
    pub = client.est.to_master(net.clock("client").read(t))
    assert pub is not None
    assert abs(pub - net.clock("server").read(t)) <= 2  # noiseless, symmetric: exact


def test_unconnected_destination_is_counted_not_raised() -> None:
    sched = Scheduler(0)
    net = SimNetwork(sched)

    class Shout:
        def start(self, now: int) -> Iterable[SimAction]:
            return [Send("nowhere", b"x")]

        def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
            return []

        def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
            return []

        def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
            return []

    net.add_node("a", SimClock(), Shout())
    net.start()
    sched.run_until(10)
    assert net.unroutable == 1
