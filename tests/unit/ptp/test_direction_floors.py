"""DirectionFloors: per-direction minimum delays give an unbiased path delay under one-sided,
asymmetric queueing, whatever the mapping's offset error; steps inside the window reset it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.ptp.filters import DirectionFloors, FlooredSince


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


def bimodal(rng: random.Random) -> int:
    """A software bridge's one-way delay: a warm path (~5 µs) or, more often, a cold one
    (~20 µs), each with a little exponential spread; the same law both ways."""
    if rng.random() < 0.3:
        return 4_000 + int(rng.expovariate(1 / 1_500))
    return 17_000 + int(rng.expovariate(1 / 3_000))


def mean_pick_error(seed: int, group: int, exchanges: int) -> float:
    """Mean offset error when the least delayed of ``group`` Syncs is observed with the delay
    from the least of ``group`` Syncs and the least of ``exchanges`` delay exchanges."""
    rng = random.Random(seed)
    f = DirectionFloors(64)
    t, errors = 10**9, []
    for _ in range(400):
        picked = None
        for _ in range(group):
            t += 62_500_000
            d = bimodal(rng)
            f.add_sync(t2=t, master_tx=t - d)  # true offset 0: local = master
            picked = d if picked is None else min(picked, d)
        for _ in range(max(group, exchanges)):
            t += 1_000
            f.add_exchange(t3=t, master_rx=t + bimodal(rng))
        floors = f.floors(lambda x: x, group)
        wide = f.floors(lambda x: x, exchanges)
        assert floors is not None and wide is not None
        sm = wide[1] if exchanges != group else floors[1]
        assert picked is not None and floors[0] == picked  # the pick is the Sync floor
        # the observation takes master time at t2 as t1 + (ms + sm) / 2 while it is t1 +
        # picked: its offset error (local − master) is picked − (ms + sm) / 2
        errors.append(picked - (floors[0] + sm) / 2)
    return sum(errors) / len(errors)


@pytest.mark.parametrize("seed", range(4))
def test_same_order_statistic_each_way_leaves_no_bias(seed: int) -> None:
    # the least of 8 against the least of 8: the same law both ways, so no bias (the mean
    # of 400 picks of ~1.5 µs spread each lands within ~0.2 µs of zero)
    assert abs(mean_pick_error(seed, 8, 8)) < 300
    # the least of 8 Syncs against the least of 32 exchanges: the exchange floor sits lower,
    # and the error is biased by half the gap between the two order statistics
    assert mean_pick_error(seed, 8, 32) > 400


def test_floors_over_the_last_n_samples() -> None:
    f = DirectionFloors(8)
    for i, (d_ms, d_sm) in enumerate([(1_000, 9_000), (5_000, 2_000), (7_000, 6_000)]):
        t = (i + 1) * 1_000_000
        f.add_sync(t, t - d_ms)
        f.add_exchange(t + 10, t + 10 + d_sm)
    ident = lambda x: x  # noqa: E731
    assert f.floors(ident) == (1_000, 2_000)
    assert f.floors(ident, 1) == (7_000, 6_000)
    assert f.floors(ident, 2) == (5_000, 2_000)
    assert f.floors(ident, 3) == f.floors(ident, 8) == f.floors(ident, 100) == (1_000, 2_000)
    assert f.delay(ident, 1) == 6_500


def test_floored_since_gives_the_cut_once_per_epoch() -> None:
    f = FlooredSince()
    assert [f.note(0, t, 3) for t in (10, 20, 30, 40)] == [None, None, 10, None]
    # a new epoch (a step, a lost fit): counting starts over from its first observation
    assert [f.note(1, t, 3) for t in (50, 60, 70)] == [None, None, 50]
    f.reset()  # a new parent: the same epoch counts again from here
    assert [f.note(1, t, 2) for t in (80, 90)] == [None, 80]
