"""A record's network time and its error bound must come from the same published calibration.

The daemon republishes on every refit (and every step). The stamper used to read the status
(bound) and then convert (calibration) in two reads of the shared memory: a republish in
between paired one calibration's time with another's bound. Here the real ShmWriter and the
real netclock.client.SharedClock are used; the republish is forced right after the status read,
which is the interleaving that the concurrent daemon produced under load.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from capture.frame import SourceKind, StampClock, StampMeaning
from capture.stamping import Stamper
from capture.timedomain import SharedClockDomain, convert
from netclock.calibration import Calibration
from netclock.client import SharedClock
from netclock.observe import LockState, Timescale
from netclock.platform.shm_writer import ShmWriter
from netclock.shm import DomainRecord

BASE = 1_700_000_000 * 10**9


def _record(now: int, external: int, bound: int, epoch: int) -> DomainRecord:
    return DomainRecord(
        domain=0,
        calibration=Calibration(internal=now, external=external, epoch=epoch),
        lock_state=LockState.LOCKED,
        timescale=Timescale.TAI,
        error_bound_ns=bound,
        update_mono_ns=now,
    )


class RepublishAfterStatus:
    """The real reader; the real writer publishes a stepped calibration right after each
    status read (what a daemon running concurrently does at the worst moment)."""

    def __init__(self, clock: SharedClock, writer: ShmWriter, now: int) -> None:
        self.clock, self.writer, self.now, self.step = clock, writer, now, 0

    def status(self) -> Any:
        st = self.clock.status()
        self.step += 1
        self.writer.publish([_record(self.now, BASE + 5_000 * self.step, 100, 1 + self.step)])
        return st

    def to_network(self, mono_ns: int) -> int:
        return self.clock.to_network(mono_ns)


def test_time_and_bound_come_from_one_calibration(tmp_path: Path) -> None:
    now = time.monotonic_ns()
    w = ShmWriter(tmp_path / "clock.shm")
    try:
        w.publish([_record(now, BASE, 100, 1)])
        with SharedClock(tmp_path / "clock.shm") as clk:
            dom = SharedClockDomain(RepublishAfterStatus(clk, w, now))
            st = Stamper(dom, SourceKind.PIPEWIRE, "p")
            recs = [
                st.stamp(
                    seq=i,
                    raw_ns=now,
                    raw_clock=StampClock.MONOTONIC,
                    meaning=StampMeaning.PTS,
                    arrival_mono_ns=now,
                )
                for i in range(3)
            ]
            # The truth of epoch k is BASE + 5000 * (k - 1); each record must carry the time
            # of the epoch it reports, so its error vs that truth is 0 (<= its 100 ns bound).
            for r in recs:
                assert r.net_ns == BASE + 5_000 * (r.epoch - 1)
                assert abs(r.net_ns - (BASE + 5_000 * (r.epoch - 1))) <= r.uncertainty_ns
            assert [r.epoch for r in recs] == [1, 2, 3]
            # The two separate calls (the old way) disagree under the same interleaving.
            s = dom.status()
            assert dom.to_network(now) != BASE + 5_000 * (s.epoch - 1)
            net, s2 = convert(dom, now)
            assert net == BASE + 5_000 * (s2.epoch - 1)
    finally:
        w.close(unlink=True)
