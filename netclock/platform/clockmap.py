"""Map CLOCK_REALTIME stamps (what the kernel's software timestamps are) to CLOCK_MONOTONIC.

REALTIME and MONOTONIC tick at the same rate (adjtimex frequency and slew act on both), so their
difference changes only when REALTIME is stepped. It is measured with *brackets*: read MONOTONIC,
REALTIME, MONOTONIC and take the midpoint of the two MONOTONIC reads. Only tight brackets (width
within ``slack_ns`` of the narrowest) are kept, since a preempted bracket can be milliseconds
wide. Half the bracket width is the mapping's uncertainty (about ±40 ns here).

The arithmetic (:class:`Bracket`, :func:`estimate_offset`, :func:`is_step`,
:class:`OffsetEstimate`) is pure and unit-tested with injected readings. :class:`ClockMap` does
the clock reads, caches the estimate, re-measures it every ``recheck_interval_ns``, when asked, and
when a mapped stamp falls outside the window it must lie in (:meth:`ClockMap.to_mono_within`),
and counts REALTIME steps (an offset jump beyond the brackets' uncertainty plus a tolerance).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Bracket:
    """One MONOTONIC, REALTIME, MONOTONIC reading triple (ns)."""

    mono_before: int
    realtime: int
    mono_after: int

    @property
    def width(self) -> int:
        return self.mono_after - self.mono_before

    @property
    def offset(self) -> int:
        """REALTIME - MONOTONIC at the bracket midpoint (floor)."""
        return self.realtime - (self.mono_before + self.mono_after) // 2


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """REALTIME - MONOTONIC, with the width of the brackets it came from."""

    offset_ns: int
    width_ns: int
    """Widest bracket kept; the true offset lies within ±width/2 of ``offset_ns``."""
    measured_at: int
    """MONOTONIC ns of the measurement (the last bracket's end)."""
    samples: int
    """How many tight brackets were combined."""

    @property
    def uncertainty_ns(self) -> int:
        return (self.width_ns + 1) // 2

    def to_mono(self, realtime_ns: int) -> int:
        return realtime_ns - self.offset_ns

    def to_realtime(self, mono_ns: int) -> int:
        return mono_ns + self.offset_ns


@dataclass(frozen=True, slots=True)
class Mapped:
    """A stamp mapped to CLOCK_MONOTONIC, with the mapping uncertainty (half bracket width)."""

    mono_ns: int
    uncertainty_ns: int


def estimate_offset(brackets: Sequence[Bracket], slack_ns: int = 50) -> OffsetEstimate:
    """Combine brackets: keep those within ``slack_ns`` of the narrowest, take the median offset.

    Brackets with a negative width (a broken reader) are ignored. Raises ``ValueError`` when no
    usable bracket is given.
    """
    usable = [b for b in brackets if b.width >= 0]
    if not usable:
        raise ValueError("no usable clock bracket (empty, or every width negative)")
    narrowest = min(b.width for b in usable)
    tight = [b for b in usable if b.width <= narrowest + slack_ns]
    offsets = sorted(b.offset for b in tight)
    median = offsets[(len(offsets) - 1) // 2]
    return OffsetEstimate(
        offset_ns=median,
        width_ns=max(b.width for b in tight),
        measured_at=max(b.mono_after for b in usable),
        samples=len(tight),
    )


def is_step(old: OffsetEstimate, new: OffsetEstimate, tolerance_ns: int = 1_000) -> bool:
    """True when the offset moved more than both uncertainties plus ``tolerance_ns``."""
    return (
        abs(new.offset_ns - old.offset_ns)
        > old.uncertainty_ns + new.uncertainty_ns + tolerance_ns
    )


def read_bracket() -> Bracket:
    """Read MONOTONIC, REALTIME, MONOTONIC (the fastest readers: ``monotonic_ns``/``time_ns``)."""
    m1 = time.monotonic_ns()
    rt = time.time_ns()
    m2 = time.monotonic_ns()
    return Bracket(m1, rt, m2)


#: How far outside its window (plus the mapping's uncertainty) a mapped stamp may fall before
#: :meth:`ClockMap.to_mono_within` takes REALTIME for stepped and re-measures.
WITHIN_SLACK_NS = 1_000


class ClockMap:
    """Cached REALTIME→MONOTONIC mapping, re-measured periodically and on demand.

    ``reader`` and ``monotonic`` are injectable for tests (defaults read the real clocks).
    """

    def __init__(
        self,
        *,
        samples: int = 16,
        slack_ns: int = 50,
        recheck_interval_ns: int = NS_PER_S,
        step_tolerance_ns: int = 1_000,
        reader: Callable[[], Bracket] = read_bracket,
        monotonic: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be >= 1")
        self.samples = samples
        self.slack_ns = slack_ns
        self.recheck_interval_ns = recheck_interval_ns
        self.step_tolerance_ns = step_tolerance_ns
        self._reader = reader
        self._monotonic = monotonic
        self._estimate: OffsetEstimate | None = None
        #: REALTIME steps detected so far.
        self.steps = 0
        #: Measurements taken so far.
        self.measurements = 0

    def measure(self) -> OffsetEstimate:
        """Take ``samples`` brackets now and return their estimate (does not update the cache)."""
        self.measurements += 1
        return estimate_offset([self._reader() for _ in range(self.samples)], self.slack_ns)

    def recheck(self) -> bool:
        """Re-measure now; returns True (and counts it) if REALTIME stepped since last time."""
        new = self.measure()
        old, self._estimate = self._estimate, new
        if old is not None and is_step(old, new, self.step_tolerance_ns):
            self.steps += 1
            return True
        return False

    @property
    def estimate(self) -> OffsetEstimate:
        """The current estimate, re-measured first if it is missing or older than the interval."""
        est = self._estimate
        if est is None or self._monotonic() - est.measured_at >= self.recheck_interval_ns:
            self.recheck()
            est = self._estimate
            assert est is not None
        return est

    def to_mono(self, realtime_ns: int) -> Mapped:
        est = self.estimate
        return Mapped(est.to_mono(realtime_ns), est.uncertainty_ns)

    def to_mono_within(
        self, realtime_ns: int, earliest: int, latest: int, slack_ns: int = WITHIN_SLACK_NS
    ) -> Mapped:
        """Map a stamp known to lie in MONOTONIC ``[earliest, latest]``; re-measure if it does not.

        A kernel stamp mapped outside the window it must lie in (e.g. an RX stamp later than the
        ``recvmsg`` return) means REALTIME was stepped since the last measurement: the mapping
        is re-measured at once (counted in :attr:`steps` when the offset jumped) and redone.
        """
        m = self.to_mono(realtime_ns)
        pad = m.uncertainty_ns + slack_ns
        if earliest - pad <= m.mono_ns <= latest + pad:
            return m
        self.recheck()
        return self.to_mono(realtime_ns)

    def to_realtime(self, mono_ns: int) -> int:
        return self.estimate.to_realtime(mono_ns)
