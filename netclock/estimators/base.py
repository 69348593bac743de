"""The common estimator interface: two-way samples in, a published time mapping out.

Pure module. A two-way time transfer (PTP E2E naming) gives four stamps::

    t1  master sends          (master clock)
    t2  slave receives        (slave local monotonic)
    t3  slave sends the reply (slave local monotonic)
    t4  master receives it    (master clock)

An :class:`Estimator` takes each completed :class:`TwoWaySample` with ``now`` (the slave's local
monotonic reading when the sample is processed) and publishes a map from a slave local reading
to master time (:meth:`Estimator.to_master`). The simulator scores that published time against
true master time; the daemon publishes the same map to local readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Estimator", "TwoWaySample"]


@dataclass(frozen=True, slots=True)
class TwoWaySample:
    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset2_ns(self) -> int:
        """Twice the measured offset slave - master (exact int)."""
        return (self.t2 - self.t1) + (self.t3 - self.t4)

    @property
    def offset_ns(self) -> float:
        """Measured offset slave - master (float: may be a half ns)."""
        return self.offset2_ns / 2

    @property
    def rtt_ns(self) -> int:
        """Round trip minus the slave's turnaround: ``(t4 - t1) - (t3 - t2)``."""
        return (self.t4 - self.t1) - (self.t3 - self.t2)

    @property
    def delay_ns(self) -> float:
        """Mean path delay (half the round trip)."""
        return self.rtt_ns / 2

    @property
    def local_mid(self) -> int:
        """Slave local time in the middle of the exchange (floor)."""
        return (self.t2 + self.t3) // 2

    @property
    def master_mid(self) -> int:
        """Master time in the middle of the exchange (floor); ``local_mid - offset``."""
        return (self.t1 + self.t4) // 2


class Estimator(Protocol):
    """A slave-side time estimator (see the module docstring)."""

    name: str

    def update(self, sample: TwoWaySample, now: int) -> None:
        """Feed one completed exchange; ``now`` is the slave's local reading."""

    def to_master(self, local_ns: int) -> int | None:
        """Published master time for local reading ``local_ns``; None before the first fit."""

    def rate_ppb(self) -> float | None:
        """Estimated (d master / d local - 1) in ppb; None when unknown."""

    @property
    def epoch(self) -> int:
        """Bumped on every discontinuity (step) of the published map."""
