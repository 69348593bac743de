"""Two-way time transfer between a master and a slave, scored against ground truth.

Pure module. Two small byte-level cores run on a :class:`~netclock.sim.network.SimNetwork`
(so this is also the reference use of that plug-in interface):

* the **master** sends ``SYNC(seq, t1)`` every ``interval_ns`` of its own clock (one-step: t1 is
  its clock at the send) and answers ``DELAY_REQ(seq)`` with ``DELAY_RESP(seq, t4)``, t4 being
  the request's RX timestamp;
* the **slave** stamps SYNC on arrival (t2, its local monotonic clock), sends ``DELAY_REQ``
  ``turnaround_ns`` later (t3 = its TX timestamp) and, when ``DELAY_RESP`` arrives, hands
  :class:`~netclock.estimators.base.TwoWaySample` ``(t1, t2, t3, t4)`` to its estimator.
  Any of the three messages may be lost; an exchange missing one is dropped.

A probe samples, every ``sample_interval_ns`` of true time, the slave's **published** time (the
estimator's map applied to the slave's local reading, through a
:class:`~netclock.calibration.MonotonicHold`) minus the **true** master time (the master
clock's reading at that true instant): the error series that
:func:`~netclock.sim.metrics.compute_metrics` summarises.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from netclock.calibration import MonotonicHold
from netclock.estimators.base import Estimator, TwoWaySample
from netclock.sim.clock import SimClock
from netclock.sim.link import Link
from netclock.sim.network import Send, SetTimer, SimAction, SimNetwork
from netclock.sim.scheduler import Scheduler

__all__ = ["MASTER", "SLAVE", "TwoWayMaster", "TwoWayRun", "TwoWaySlave", "run_twoway"]

MASTER = "master"
SLAVE = "slave"

_MSG = struct.Struct("!BIq")  # type, sequence, timestamp
SYNC, DELAY_REQ, DELAY_RESP = 1, 2, 3


def _pack(kind: int, seq: int, ts: int = 0) -> bytes:
    return _MSG.pack(kind, seq & 0xFFFFFFFF, ts)


class TwoWayMaster:
    """Sends SYNC every ``interval_ns`` (own clock), answers DELAY_REQ."""

    def __init__(self, interval_ns: int, first_ns: int = 0) -> None:
        self.interval_ns = interval_ns
        self.first_ns = first_ns
        self._next = 0
        self._seq = 0
        self.syncs_sent = 0

    def start(self, now: int) -> Iterable[SimAction]:
        self._next = now + self.first_ns
        return [SetTimer("sync", self._next)]

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        self._seq += 1
        self.syncs_sent += 1
        self._next += self.interval_ns
        return [Send(SLAVE, _pack(SYNC, self._seq, now)), SetTimer("sync", self._next)]

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        kind, seq, _ = _MSG.unpack(data)
        if kind == DELAY_REQ:
            return [Send(src, _pack(DELAY_RESP, seq, rx_ts))]
        return []

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        return []


@dataclass
class _Pending:
    t1: int
    t2: int
    t3: int | None = None


class TwoWaySlave:
    """Answers SYNC with DELAY_REQ and feeds completed exchanges to ``estimator``."""

    def __init__(self, estimator: Estimator, turnaround_ns: int = 100_000) -> None:
        self.estimator = estimator
        self.turnaround_ns = turnaround_ns
        self._pending: dict[int, _Pending] = {}
        self.exchanges = 0

    def start(self, now: int) -> Iterable[SimAction]:
        return []

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]:
        kind, seq, ts = _MSG.unpack(data)
        if kind == SYNC:
            self._pending[seq] = _Pending(ts, rx_ts)
            for old in [s for s in self._pending if s < seq - 64]:
                del self._pending[old]
            return [SetTimer(("dreq", seq), now + self.turnaround_ns)]
        if kind == DELAY_RESP:
            p = self._pending.pop(seq, None)
            if p is not None and p.t3 is not None:
                self.exchanges += 1
                self.estimator.update(TwoWaySample(p.t1, p.t2, p.t3, ts), now)
        return []

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]:
        assert isinstance(timer, tuple)
        seq = timer[1]
        if seq not in self._pending:
            return []
        return [Send(MASTER, _pack(DELAY_REQ, seq), ctx=seq)]

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]:
        assert isinstance(ctx, int)
        p = self._pending.get(ctx)
        if p is not None:
            p.t3 = tx_ts
        return []


@dataclass
class TwoWayRun:
    """Everything a run produced: the error series and the parts, for inspection."""

    start_ns: int
    times_ns: list[int] = field(default_factory=list)
    errors_ns: list[int | None] = field(default_factory=list)
    exchanges: int = 0
    syncs_sent: int = 0
    net: SimNetwork | None = None
    true_rate_ppb_end: float = 0.0
    est_rate_ppb_end: float | None = None
    holds: int = 0


def run_twoway(
    *,
    master_clock: SimClock,
    slave_clock: SimClock,
    forward: Link,
    reverse: Link,
    estimator: Estimator,
    start_ns: int,
    duration_ns: int,
    interval_ns: int,
    sample_interval_ns: int = 100_000_000,
    turnaround_ns: int = 100_000,
    hold: bool = True,
) -> TwoWayRun:
    """Run one master/slave pair for ``duration_ns`` of true time from ``start_ns``.

    ``forward`` carries master → slave, ``reverse`` slave → master.
    """
    sched = Scheduler(start_ns)
    net = SimNetwork(sched)
    master = TwoWayMaster(interval_ns)
    slave = TwoWaySlave(estimator, turnaround_ns)
    net.add_node(MASTER, master_clock, master)
    net.add_node(SLAVE, slave_clock, slave)
    net.connect(MASTER, SLAVE, forward)
    net.connect(SLAVE, MASTER, reverse)
    run = TwoWayRun(start_ns=start_ns, net=net)
    guard = MonotonicHold()

    def probe() -> None:
        t = sched.now
        local = slave_clock.read(t)
        pub = estimator.to_master(local)
        err: int | None = None
        if pub is not None:
            if hold:
                pub = guard.guard(pub, estimator.epoch)
            err = pub - master_clock.read(t)
        run.times_ns.append(t)
        run.errors_ns.append(err)
        nxt = t + sample_interval_ns
        if nxt <= end:
            sched.at(nxt, probe)

    end = start_ns + duration_ns
    net.start()
    sched.at(start_ns + sample_interval_ns, probe)
    sched.run_until(end)
    run.exchanges = slave.exchanges
    run.syncs_sent = master.syncs_sent
    run.holds = guard.holds
    # True d(master)/d(local) at the end, against the estimator's rate.
    fm = master_clock.freq_ppb(end) * 1e-9
    fs = slave_clock.freq_ppb(end) * 1e-9
    run.true_rate_ppb_end = ((1.0 + fm) / (1.0 + fs) - 1.0) * 1e9
    run.est_rate_ppb_end = estimator.rate_ppb()
    return run
