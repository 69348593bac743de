"""Error statistics of a simulated run.

Pure module. The simulator samples ``error = published time - true master time`` at a fixed
rate. :func:`compute_metrics` reports:

* ``lock_time_s``: the first sample time (seconds since the start) from which every later
  sample has ``|error| < lock_threshold_ns``; ``None`` if the run ends unlocked;
* ``rms_error_ns``, ``p99_error_ns`` (nearest-rank 99th percentile of ``|error|``),
  ``max_error_ns``, ``mean_error_ns``: over the samples **after lock** (over all samples that
  have an estimate when the run never locks, flagged by ``locked = False``);
* ``rms_all_error_ns``: over every sample that has an estimate;
* ``rms_settled_error_ns``, ``p99_settled_error_ns``: over the samples at or after
  ``settle_s`` (the same sample set for every estimator, which is what
  ``bench/estimators.py`` compares);
* ``samples``: samples taken; ``samples_locked``: samples after lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["Metrics", "compute_metrics"]

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Metrics:
    samples: int
    samples_locked: int
    locked: bool
    lock_time_s: float | None
    lock_threshold_ns: int
    rms_error_ns: float
    p99_error_ns: float
    max_error_ns: float
    mean_error_ns: float
    rms_all_error_ns: float
    rms_settled_error_ns: float
    p99_settled_error_ns: float
    settle_s: float
    freq_error_ppb: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _rms(v: Sequence[int]) -> float:
    return math.sqrt(math.fsum(float(e) * e for e in v) / len(v)) if v else math.nan


def _p99(v: Sequence[int]) -> float:
    if not v:
        return math.nan
    a = sorted(abs(e) for e in v)
    k = max(0, math.ceil(0.99 * len(a)) - 1)
    return float(a[k])


def compute_metrics(
    times_ns: Sequence[int],
    errors_ns: Sequence[int | None],
    *,
    start_ns: int,
    lock_threshold_ns: int = 10_000,
    settle_s: float = 0.0,
    freq_error_ppb: float | None = None,
) -> Metrics:
    """Statistics of ``errors_ns`` (None = no estimate yet) sampled at true ``times_ns``."""
    if len(times_ns) != len(errors_ns):
        raise ValueError("times and errors differ in length")
    n = len(errors_ns)
    last_bad = -1
    for i in range(n - 1, -1, -1):
        e = errors_ns[i]
        if e is None or abs(e) >= lock_threshold_ns:
            last_bad = i
            break
    locked = last_bad < n - 1
    lock_idx = last_bad + 1
    valid = [e for e in errors_ns if e is not None]
    after: list[int] = [e for e in errors_ns[lock_idx:] if e is not None] if locked else valid
    settle_ns = start_ns + round(settle_s * NS_PER_S)
    settled = [
        e for t, e in zip(times_ns, errors_ns, strict=True) if e is not None and t >= settle_ns
    ]
    return Metrics(
        samples=n,
        samples_locked=n - lock_idx if locked else 0,
        locked=locked,
        lock_time_s=(times_ns[lock_idx] - start_ns) / NS_PER_S if locked else None,
        lock_threshold_ns=lock_threshold_ns,
        rms_error_ns=_rms(after),
        p99_error_ns=_p99(after),
        max_error_ns=float(max((abs(e) for e in after), default=0)) if after else math.nan,
        mean_error_ns=math.fsum(after) / len(after) if after else math.nan,
        rms_all_error_ns=_rms(valid),
        rms_settled_error_ns=_rms(settled),
        p99_settled_error_ns=_p99(settled),
        settle_s=settle_s,
        freq_error_ppb=freq_error_ppb,
    )
