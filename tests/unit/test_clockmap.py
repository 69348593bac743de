"""REALTIME→MONOTONIC mapping: pure arithmetic on injected readings; a real-clock sanity run."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.platform.clockmap import (
    Bracket,
    ClockMap,
    OffsetEstimate,
    estimate_offset,
    is_step,
)

OFFSET = 1_700_000_000_000_000_000  # REALTIME - MONOTONIC of the fake clocks


def bracket(m1: int, width: int, offset: int = OFFSET, skew: int = 0) -> Bracket:
    """A bracket whose REALTIME read sits ``skew`` ns after the midpoint."""
    mid = m1 + width // 2
    return Bracket(m1, mid + offset + skew, m1 + width)


def test_bracket_width_and_offset() -> None:
    b = Bracket(1_000, 5_000 + OFFSET, 1_080)
    assert b.width == 80
    assert b.offset == 5_000 + OFFSET - 1_040


def test_estimate_keeps_only_tight_brackets() -> None:
    # A preempted (wide) bracket with a wildly wrong midpoint must not move the estimate.
    brackets = [
        bracket(0, 80),
        bracket(1_000, 90, skew=4),
        bracket(2_000, 2_000_000, skew=900_000),
        bracket(3_000, 85, skew=-2),
    ]
    est = estimate_offset(brackets, slack_ns=50)
    assert est.samples == 3
    assert est.offset_ns == OFFSET  # median of {-2, 0, +4} skews
    assert est.width_ns == 90
    assert est.uncertainty_ns == 45
    assert est.measured_at == 2_000 + 2_000_000


def test_estimate_ignores_negative_widths_and_rejects_empty() -> None:
    with pytest.raises(ValueError):
        estimate_offset([])
    with pytest.raises(ValueError):
        estimate_offset([Bracket(100, OFFSET, 50)])
    est = estimate_offset([Bracket(100, OFFSET, 50), bracket(0, 70)])
    assert est.samples == 1


def test_mapping_both_ways() -> None:
    est = OffsetEstimate(offset_ns=OFFSET, width_ns=100, measured_at=0, samples=8)
    assert est.to_mono(OFFSET + 123) == 123
    assert est.to_realtime(123) == OFFSET + 123


def test_is_step() -> None:
    a = OffsetEstimate(OFFSET, 100, 0, 8)
    assert not is_step(a, OffsetEstimate(OFFSET + 1_050, 100, 1, 8), tolerance_ns=1_000)
    assert is_step(a, OffsetEstimate(OFFSET + 1_200, 100, 1, 8), tolerance_ns=1_000)
    assert is_step(a, OffsetEstimate(OFFSET - 1_000_000_000, 100, 1, 8))


@given(
    true_offset=st.integers(-(2**62), 2**62),
    starts=st.lists(st.integers(0, 10**15), min_size=1, max_size=20),
    widths=st.lists(st.integers(0, 10**7), min_size=20, max_size=20),
    fracs=st.lists(st.floats(0, 1), min_size=20, max_size=20),
)
def test_true_offset_within_reported_uncertainty(
    true_offset: int, starts: list[int], widths: list[int], fracs: list[float]
) -> None:
    # The REALTIME read happens anywhere inside the bracket: the truth must lie within
    # ±uncertainty of the estimate (+1 ns for floor rounding).
    brackets = []
    for i, m1 in enumerate(starts):
        w = widths[i]
        read_at = m1 + int(w * fracs[i])
        brackets.append(Bracket(m1, read_at + true_offset, m1 + w))
    est = estimate_offset(brackets)
    assert abs(est.offset_ns - true_offset) <= est.uncertainty_ns + 1


class FakeClocks:
    """Injected readers: MONOTONIC advances 100 ns per read; REALTIME = MONOTONIC + offset."""

    def __init__(self) -> None:
        self.mono = 10_000
        self.offset = OFFSET
        self.reads = 0

    def monotonic(self) -> int:
        self.mono += 100
        return self.mono

    def bracket(self) -> Bracket:
        self.reads += 1
        m1 = self.monotonic()
        rt = self.mono + 40 + self.offset
        m2 = self.monotonic()
        return Bracket(m1, rt, m2)


def test_clockmap_caches_and_rechecks_on_interval() -> None:
    clocks = FakeClocks()
    cmap = ClockMap(
        samples=4, recheck_interval_ns=10_000, reader=clocks.bracket, monotonic=clocks.monotonic
    )
    m = cmap.to_mono(OFFSET + 5_000_000)
    assert abs(m.mono_ns - 5_000_000) <= m.uncertainty_ns + 1
    assert cmap.measurements == 1 and clocks.reads == 4
    cmap.to_mono(OFFSET)  # within the interval: cached
    assert cmap.measurements == 1
    clocks.mono += 20_000  # interval elapsed: re-measured
    cmap.to_mono(OFFSET)
    assert cmap.measurements == 2
    assert cmap.steps == 0


def test_clockmap_detects_realtime_step() -> None:
    clocks = FakeClocks()
    cmap = ClockMap(samples=4, reader=clocks.bracket, monotonic=clocks.monotonic)
    assert cmap.estimate.offset_ns == OFFSET + 40 - 50
    clocks.offset += 1_000_000_000  # settimeofday +1 s
    assert cmap.recheck() is True
    assert cmap.steps == 1
    assert cmap.to_mono(OFFSET + 1_000_000_000 + 7_000).mono_ns == 7_000 + 10
    assert cmap.recheck() is False  # stable again
    assert cmap.steps == 1


def test_stamp_outside_its_window_triggers_remeasure() -> None:
    clocks = FakeClocks()
    cmap = ClockMap(samples=4, reader=clocks.bracket, monotonic=clocks.monotonic)
    before = cmap.to_mono_within(OFFSET + 50_000, 0, 100_000)  # inside: no re-measure
    assert cmap.measurements == 1 and before.mono_ns == 50_000 + 10
    clocks.offset -= 3_000_000_000  # REALTIME stepped back 3 s after the last measurement
    rx_done = clocks.monotonic()
    stamp_rt = rx_done - 1_000 + clocks.offset  # packet stamped 1 µs before recvmsg returned
    m = cmap.to_mono_within(stamp_rt, rx_done - 10**9, rx_done)
    assert cmap.steps == 1 and cmap.measurements == 2
    assert abs(m.mono_ns - (rx_done - 1_000)) <= m.uncertainty_ns + 1


def test_real_clocks_map_consistently() -> None:
    cmap = ClockMap()
    m1 = time.monotonic_ns()
    mapped = cmap.to_mono(time.time_ns())
    m2 = time.monotonic_ns()
    est = cmap.estimate
    assert est.samples >= 1 and est.width_ns >= 0
    # Generous sanity bound only (no timing assertion): the mapped REALTIME read lands near
    # the MONOTONIC reads around it.
    assert m1 - 10_000_000 <= mapped.mono_ns <= m2 + 10_000_000
