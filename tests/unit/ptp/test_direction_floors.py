"""DirectionFloors: per-direction minimum delays give an unbiased path delay under one-sided,
asymmetric queueing, whatever the mapping's offset error; steps inside the window reset it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.ptp.filters import DirectionFloors


def feed(
    f: DirectionFloors, rng: random.Random, n: int, floor_ms: int, floor_sm: int, offset: int
) -> None:
    """Local clock = master + ``offset``; each direction its floor plus exponential queueing,
    the master→slave excess ten times the other's (an asymmetric, one-sided path)."""
    t = 1_000_000_000
    for _ in range(n):
        t += 62_500_000
        q = int(rng.expovariate(1 / 20_000))
        f.add_sync(t2=t + offset, master_tx=t - floor_ms - q)
        q = int(rng.expovariate(1 / 2_000))
        f.add_exchange(t3=t + 10_000 + offset, master_rx=t + 10_000 + floor_sm + q)


@given(
    offset=st.integers(-10**12, 10**12),
    mapping_error=st.integers(-50_000, 50_000),
    seed=st.integers(0, 2**32),
)
def test_delay_is_the_mean_of_the_floors_whatever_the_mapping_error(
    offset: int, mapping_error: int, seed: int
) -> None:
    f = DirectionFloors(64)
    feed(f, random.Random(seed), 64, floor_ms=3_000, floor_sm=3_000, offset=offset)
    # a mapping local → master that is off by mapping_error (no rate error)
    d = f.delay(lambda t: t - offset + mapping_error)
    assert d is not None
    # each floor is found to within the smallest excess among 64 draws (mean ~300 ns; above
    # 8 µs with probability e^-25), where the excess itself is 20 µs one way, 2 µs the other
    assert 3_000 <= d <= 3_000 + 4_000, d
    # while the median of whole exchanges carries the excess asymmetry
    fl = f.floors(lambda t: t - offset + mapping_error)
    assert fl is not None
    assert fl[0] - mapping_error >= 3_000 and fl[1] + mapping_error >= 3_000


def test_rate_error_adds_half_of_rate_times_span() -> None:
    f = DirectionFloors(4)
    f.add_sync(t2=1_000_000_000, master_tx=1_000_000_000 - 5_000)
    f.add_exchange(t3=3_000_000_000, master_rx=3_000_000_000 + 5_000)
    exact = f.delay(lambda t: t)
    assert exact == 5_000
    # 1 ppm fast mapping: e(t) grows 1 µs per s; samples 2 s apart: +2 µs in one direction,
    # -(+2 µs + base) in the other; the mean moves by ρ Δt / 2 = 1 µs
    d = f.delay(lambda t: t + (t - 1_000_000_000) // 1_000_000)
    assert d == 5_000 - 1_000


def test_same_exchange_repeated_counts_once_and_windows_slide() -> None:
    f = DirectionFloors(2)
    assert not f.ready() and f.delay(lambda t: t) is None
    f.add_sync(10, 0)
    assert not f.ready()
    for _ in range(5):
        f.add_exchange(100, 110)
    f.add_exchange(200, 260)
    assert f.floors(lambda t: t) == (10, 10)
    f.add_exchange(300, 350)  # the 10 ns exchange slides out of a window of 2
    assert f.floors(lambda t: t) == (10, 50)
    f.add_sync(1_000, 900)
    f.add_sync(2_000, 1_980)  # the 10 ns Sync slides out
    assert f.floors(lambda t: t) == (20, 50)
    assert f.delay(lambda t: t) == 35


def test_negative_round_trip_means_a_step_and_resets() -> None:
    f = DirectionFloors(8)
    f.add_sync(1_000_000, 1_000_000 - 3_000)
    f.add_exchange(1_500_000, 1_500_000 + 3_000)
    # the master stepped 1 ms forward: a new Sync and exchange in the new timescale, the fit
    # already follows it; the old exchange now reads a 1 ms negative delay
    f.add_sync(2_000_000, 3_000_000 - 3_000)
    assert f.delay(lambda t: t + 1_000_000) is None
    assert not f.ready()


def test_length_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DirectionFloors(0)
