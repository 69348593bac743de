"""Offset and mean path delay from PTP timestamps (IEEE 1588-2019 §11.2, §11.3). Pure, ns."""

from __future__ import annotations


def mean_path_delay(
    t1: int,
    t2: int,
    t3: int,
    t4: int,
    c_sync: int,
    c_resp: int,
    rate_num: int = 1,
    rate_den: int = 1,
) -> int:
    """§11.3.2: [(t2 − t3) + (t4 − t1) − c_sync − c_resp] / 2, floor-rounded.

    t1/t4 are master stamps, t2/t3 local ones; only differences within one clock are taken, so
    the two clocks may use different epochs (CLOCK_MONOTONIC vs TAI). The local interval
    (t2 − t3) is scaled by the master/local ratio ``rate_num/rate_den`` when one is known.
    """
    local = (t2 - t3) * rate_num // rate_den
    return (local + (t4 - t1) - c_sync - c_resp) // 2


def offset_from_master(t1: int, t2: int, delay: int, c_sync: int) -> int:
    """§11.2: t2 − t1 − meanPathDelay − c_sync (local minus master)."""
    return t2 - t1 - delay - c_sync
