"""GStreamer-equivalent estimator: GstClock's windowed linear regression, as the reference.

Pure module. Reproduces, in Python integers, what a slaved ``GstClock`` does with observations
(gst/gstclock.c ``gst_clock_add_observation_unapplied``, ``gst_clock_adjust_with_calibration``
and gst/gstutils.c ``gst_calculate_linear_regression``; read, not copied):

* a ring of ``window_size`` (32) (slave, master) pairs; while the ring is first filling no fit
  is made until ``window_threshold`` (4) pairs are in; then every new pair refits over the
  pairs present (``n`` = filled count, later the whole ring);
* ordinary least squares, unweighted, no outlier rejection
  (GStreamer ≥ 1.12). x and y are reduced by their
  minima, the means are integer (truncating) divisions, every value is first shifted right
  by ``pshift`` bits so that it fits 31 bits (a 32 s window of ns values needs 35 bits: 4 bits,
  16 ns, are dropped, which costs the rate a few ppb, as in GStreamer); ``Sxx = Σ(x² - x̄²)``,
  ``Syy`` and ``Sxy = Σ(xy - x̄ȳ)`` are int64 accumulators whose overflow guard drops two more
  bits and restarts (emulated, though it cannot trigger after the pre-shift); the rate is
  ``Sxy/Sxx`` as unsigned 64-bit terms and the calibration is anchored at the newest
  (largest) x: ``b = ymin + ȳ - round(x̄·Sxy/Sxx) + round((xmax - xmin)·Sxy/Sxx)``;
* the published time is ``gst_clock_adjust_with_calibration``: ``⌊(x - xbase)·num/den⌋ + b``
  (``gst_util_uint64_scale`` truncates), with ``gst_clock_get_time``'s hold left to the
  simulator (it applies the same :class:`~netclock.calibration.MonotonicHold` to every
  estimator).

Observations are what ``GstNetClientClock`` feeds: the local midpoint ``(t2 + t3) / 2`` and the
remote midpoint ``(t1 + t4) / 2`` of each exchange. GstNetClientClock's and GstPtpClock's
round-trip pre-filters (median of 9, discont clamp) are deliberately *not* modelled: this is the
bare ``GstClock`` regression (window 32, threshold 4, no weights, no outlier rejection).
"""

from __future__ import annotations

from collections import deque

from netclock.estimators.base import TwoWaySample

__all__ = ["GstEstimator", "gst_linear_regression"]

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_U64 = (1 << 64) - 1


def _wrap(v: int) -> int:
    """Two's-complement int64 wrap-around (what the C arithmetic does on this platform)."""
    return ((v + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def _tdiv4(v: int) -> int:
    """C's ``v / 4`` (truncates toward zero)."""
    return -((-v) // 4) if v < 0 else v // 4


def _overflow_shift(acc: int, tmp: int) -> int:
    """How many precision bits GStreamer drops before adding ``tmp`` to ``acc`` (0: none):
    the accumulation loop's guard against int64 overflow, two bits per step."""
    if tmp > 0 and acc > 0 and _INT64_MAX - acc <= tmp:
        shift = 0
        while _INT64_MAX - acc <= tmp:
            shift += 1
            acc, tmp = _tdiv4(acc), _tdiv4(tmp)
        return shift
    if tmp < 0 and acc < 0 and _INT64_MIN - acc >= tmp:
        shift = 0
        while _INT64_MIN - acc >= tmp:
            shift += 1
            acc, tmp = _tdiv4(acc), _tdiv4(tmp)
        return shift
    return 0


def _scale(val: int, num: int, den: int) -> int:
    """gst_util_uint64_scale: val * num / den truncated; G_MAXUINT64 when it overflows."""
    return min((val * num) // den, _U64)


def _scale_round(val: int, num: int, den: int) -> int:
    """gst_util_uint64_scale_round: val * num / den to nearest; G_MAXUINT64 on overflow."""
    return min((val * num + den // 2) // den, _U64)


def gst_linear_regression(xs: list[int], ys: list[int]) -> tuple[int, int, int, int, float] | None:
    """(m_num, m_denom, b, xbase, r_squared) for the pairs, or None (Sxx == 0)."""
    n = len(xs)
    if n < 2:
        return None
    xmin, ymin = min(xs), min(ys)
    xmax, ymax = max(xs), max(ys)
    nx = [x - xmin for x in xs]
    ny = [y - ymin for y in ys]
    xbar = sum(nx) // n
    ybar = sum(ny) // n
    # Each value must fit 31 bits so that a product of two (plus a bit) fits int64.
    max_bits = max(1, xmax - xmin, ymax - ymin).bit_length()
    pshift = max(0, max_bits - 31)
    while True:
        restart = False
        xb4, yb4 = xbar >> pshift, ybar >> pshift
        sxx = syy = sxy = 0
        for x, y in zip(nx, ny, strict=True):
            x4, y4 = x >> pshift, y >> pshift
            for which, tmp in (
                (0, _wrap((x4 + xb4) * (x4 - xb4))),
                (1, _wrap(y4 * y4 - yb4 * yb4)),
                (2, _wrap(x4 * y4 - xb4 * yb4)),
            ):
                acc = (sxx, syy, sxy)[which]
                shifted = _overflow_shift(acc, tmp)
                if shifted:
                    pshift += shifted
                    restart = True
                    break
                acc = _wrap(acc + tmp)
                if which == 0:
                    sxx = acc
                elif which == 1:
                    syy = acc
                else:
                    sxy = acc
            if restart:
                break
        if not restart:
            break
    if sxx == 0:
        return None
    # The int64 sums become the unsigned rate terms; b is unsigned (wrapping) arithmetic.
    m_num, m_den = sxy & _U64, sxx & _U64
    b = ((ymin + ybar) - _scale_round(xbar, m_num, m_den)) & _U64
    b = (b + _scale_round(xmax - xmin, m_num, m_den)) & _U64
    r2 = (float(sxy) * float(sxy)) / (float(sxx) * float(syy)) if syy else 1.0
    return m_num, m_den, b, xmax, r2


class GstEstimator:
    """GstClock slaving reference (see the module docstring)."""

    name = "gst"

    def __init__(self, window_size: int = 32, window_threshold: int = 4) -> None:
        if not 2 <= window_threshold <= window_size:
            raise ValueError("need 2 <= window_threshold <= window_size")
        self.window_size = window_size
        self.window_threshold = window_threshold
        self._xs: deque[int] = deque(maxlen=window_size)
        self._ys: deque[int] = deque(maxlen=window_size)
        self._cal: tuple[int, int, int, int] | None = None  # xbase, b, num, den
        self.r_squared = 0.0

    @property
    def epoch(self) -> int:
        return 0

    def add_observation(self, slave: int, master: int) -> bool:
        """gst_clock_add_observation: True when a regression was run and applied."""
        self._xs.append(slave)
        self._ys.append(master)
        if len(self._xs) < self.window_threshold:
            return False
        res = gst_linear_regression(list(self._xs), list(self._ys))
        if res is None:
            return False
        m_num, m_den, b, xbase, self.r_squared = res
        self._cal = (xbase, b, m_num, m_den)
        return True

    def update(self, sample: TwoWaySample, now: int) -> None:
        self.add_observation(sample.local_mid, sample.master_mid)

    def to_master(self, local_ns: int) -> int | None:
        if self._cal is None:
            return None
        xbase, b, num, den = self._cal
        if local_ns >= xbase:
            return (_scale(local_ns - xbase, num, den) + b) & _U64
        d = _scale(xbase - local_ns, num, den)
        return b - d if b > d else 0

    def rate_ppb(self) -> float | None:
        if self._cal is None:
            return None
        _, _, num, den = self._cal
        return (num - den) * 1e9 / den
