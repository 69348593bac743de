"""Calibration: the affine map from a local clock to network time, and its windowed fit.

Pure module. GStreamer's model (``gst_clock_set_calibration``)::

    external = (internal_now - internal) * rate_num / rate_denom + external

``internal`` is a local clock reading (CLOCK_MONOTONIC ns for the agent), ``external`` the
network time (ns since 1970 in the domain's timescale) at that reading. Everything is an
``int``; conversions are exact integer arithmetic with round-to-nearest, so they never overflow
(Python ints) and a C reader of the published form needs 128-bit intermediates at most:
``|internal_now - internal| < 2^62`` (146 years of ns) times ``rate_num < 2^41``.

:class:`WindowedCalibration` keeps a ring of (internal, external, error) observations and fits
the calibration by weighted least squares (``gst_clock_add_observation`` with a sliding window,
made robust):

* values are fitted relative to a base (the newest observation) and as *offset* against
  *elapsed*, so ns values near 2^63 keep full precision;
* the window holds ``window_size`` observations, and more (up to ``window_max``) while they
  are within ``window_span_ns`` of the newest (when set): sized by time as well as count;
* each observation may carry an error bound (half a round-trip delay, say); weights favour the
  observations whose error is closest to the best in the window. The weighting floor adapts
  to the measured jitter (a fraction of the typical error excess, raised when the offsets
  scatter regardless of their error), so a few µs between errors never hand the whole fit
  to a handful of points;
* an observation whose error is far above the typical one (a delay spike) is withheld and the
  calibration extrapolates; a hold that lasts ``reject_hold_ns`` gives up (the path changed);
* residual outliers beyond ``outlier_k`` robust sigmas are rejected and the fit redone;
* a run of ``step_confirm`` consecutive observations that all disagree with the current fit by
  more than ``step_threshold_ns`` (beyond their own error) and agree with each other is a
  *step*: the older observations are shifted by it, the rate is kept, and the epoch is bumped;
* a longer run of disagreeing observations that do not agree on a step means the fit itself
  is wrong (a wild first fit): the window restarts from them (epoch bumped, counted);
* every parameter can change at run time (:meth:`WindowedCalibration.configure`);
* a window whose errors are all equal (PTP's kernel or hardware stamps) is fitted from exact
  running sums kept as observations come and go, not by a dozen passes over it on every
  observation (the same fit within float rounding; only the outlier test visits each point).

The defaults (with ``window_span_ns`` = :data:`DEFAULT_WINDOW_SPAN_NS`, as the daemon's
discipline sets it) are what ``bench/estimators.py`` measures through
:mod:`netclock.estimators.window`, a thin adapter; the PTP servo and the NTP client get the
same weighting, spike hold and fit-loss recovery.

:class:`MonotonicHold` makes a reader never go backwards within one epoch after a
recalibration: it holds the last value until the new fit catches up, as ``gst_clock_get_time``
does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from operator import add, mul

__all__ = [
    "DEFAULT_WINDOW_SPAN_NS",
    "RATE_DENOM",
    "Calibration",
    "FitResult",
    "MonotonicHold",
    "Observation",
    "WindowedCalibration",
    "fit_observations",
]

#: Denominator used for fitted rates: 2^40, a resolution of 0.0009 ppb.
RATE_DENOM = 1 << 40
#: The window span the daemon and the benchmark use (see ``WindowedCalibration``).
DEFAULT_WINDOW_SPAN_NS = 64 * 1_000_000_000
#: Largest accepted rate numerator or denominator (keeps published products within 128 bits).
MAX_RATE_TERM = 1 << 41


def _div_round(num: int, den: int) -> int:
    """num/den to nearest, ties away from zero; den > 0."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


@dataclass(frozen=True, slots=True)
class Calibration:
    """An affine map internal → external: ``(x - internal) * rate_num / rate_denom + external``."""

    internal: int = 0
    external: int = 0
    rate_num: int = 1
    rate_denom: int = 1
    epoch: int = 0

    def __post_init__(self) -> None:
        if (
            type(self.internal) is int
            and type(self.external) is int
            and type(self.rate_num) is int
            and type(self.rate_denom) is int
            and type(self.epoch) is int
            and 0 < self.rate_num <= MAX_RATE_TERM
            and 0 < self.rate_denom <= MAX_RATE_TERM
            and self.epoch >= 0
        ):
            return  # the checks below, in one expression (a calibration is made per fit)
        for name in ("internal", "external", "rate_num", "rate_denom", "epoch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"Calibration.{name} must be int, got {type(v).__name__}")
        if not 0 < self.rate_num <= MAX_RATE_TERM or not 0 < self.rate_denom <= MAX_RATE_TERM:
            raise ValueError(
                f"Calibration rate {self.rate_num}/{self.rate_denom} must have terms in 1..2^41"
            )
        if self.epoch < 0:
            raise ValueError("Calibration.epoch must be >= 0")

    def to_external(self, internal_ns: int) -> int:
        return (
            _div_round((internal_ns - self.internal) * self.rate_num, self.rate_denom)
            + self.external
        )

    def to_internal(self, external_ns: int) -> int:
        return (
            _div_round((external_ns - self.external) * self.rate_denom, self.rate_num)
            + self.internal
        )

    def offset_at(self, internal_ns: int) -> int:
        """external - internal at ``internal_ns``."""
        return self.to_external(internal_ns) - internal_ns

    def rate(self) -> float:
        """The rate as a float, for statistics and display only."""
        return self.rate_num / self.rate_denom

    def rate_ppb(self) -> float:
        """(rate - 1) in parts per billion, for statistics and display only."""
        return (self.rate_num - self.rate_denom) * 1e9 / self.rate_denom

    def rebased(self, internal_ns: int) -> Calibration:
        """The same map anchored at ``internal_ns`` (useful before publishing)."""
        return replace(self, internal=internal_ns, external=self.to_external(internal_ns))

    def stepped(self, step_ns: int) -> Calibration:
        """Shift the external side by ``step_ns`` and bump the epoch."""
        return replace(self, external=self.external + step_ns, epoch=self.epoch + 1)


@dataclass(frozen=True, slots=True)
class Observation:
    """One (internal, external) pair; ``error_ns`` ≥ 0 is its uncertainty (0 = unknown/exact)."""

    internal: int
    external: int
    error_ns: int = 0


@dataclass(frozen=True, slots=True)
class FitResult:
    calibration: Calibration
    r_squared: float
    used: int
    rejected: int
    residual_rms_ns: float
    stepped: bool = False


def _dot(a: Iterable[float], b: Iterable[float]) -> float:
    return float(sum(map(mul, a, b)))


def _line_calibration(s: float, off0: float, xb: int, yb: int, epoch: int) -> Calibration | None:
    """The calibration of a fitted line: slope ``s`` (rate − 1) and offset ``off0`` at the
    bases ``(xb, yb)``; None when either is not finite or the rate is out of range."""
    if not (math.isfinite(s) and math.isfinite(off0)):
        return None
    rate_num = RATE_DENOM + round(s * RATE_DENOM)
    if not 0 < rate_num <= MAX_RATE_TERM:
        return None
    return Calibration(
        internal=xb, external=yb + round(off0), rate_num=rate_num, rate_denom=RATE_DENOM,
        epoch=epoch,
    )


def _weighted_line(
    x: Sequence[float], y: Sequence[float], w: Sequence[float]
) -> tuple[float, float, float] | None:
    """Weighted least squares ``y = my + s (x - mx)``. Returns (s, mx, my) or None."""
    sw = sum(w)
    if not sw > 0.0:
        return None
    mx = _dot(w, x) / sw
    my = _dot(w, y) / sw
    xc = [v - mx for v in x]
    wxc = list(map(mul, w, xc))
    sxx = _dot(wxc, xc)
    if not sxx > 0.0:
        return None
    sxy = _dot(wxc, [v - my for v in y])
    return sxy / sxx, mx, my


def _upper_median(v: Sequence[float]) -> float:
    """``sorted(v)[len(v) // 2]``."""
    return sorted(v)[len(v) // 2]


def _sorted_mad(srt: Sequence[float], m: int, med: float) -> float:
    """``_upper_median([abs(r - med) for r in srt])`` for sorted ``srt`` with ``med = srt[m]``,
    in O(log n): the deviations are two ascending runs, ``med - srt[m-1-i]`` (left of the
    median) and ``srt[m+j] - med`` (from it on), and the k-th smallest of two sorted runs is
    found by bisecting how many come from the first. ``med - r`` equals ``abs(r - med)``
    exactly for ``r <= med``, so the value is bit-identical to the list's."""
    n = len(srt)
    k = n // 2  # 0-based rank of the upper median
    len_a, len_b = m, n - m
    lo, hi = max(0, k + 1 - len_b), min(k + 1, len_a)
    while True:
        i = (lo + hi) // 2  # taken from the left run
        j = k + 1 - i  # from the right run
        if i > 0 and j < len_b and med - srt[m - i] > srt[m + j] - med:
            hi = i - 1  # the left run's i-th is past the k-th: take fewer from it
        elif j > 0 and i < len_a and srt[m + j - 1] - med > med - srt[m - 1 - i]:
            lo = i + 1  # the right run's j-th is past the k-th: take more from the left
        else:
            a = med - srt[m - i] if i > 0 else -math.inf
            b = srt[m + j - 1] - med if j > 0 else -math.inf
            return max(a, b)


def fit_observations(
    obs: Iterable[Observation],
    *,
    epoch: int = 0,
    error_floor_ns: int = 50,
    outlier_k: float = 0.0,
    min_points: int = 2,
    weight_floor_ns: int | None = None,
) -> FitResult | None:
    """Fit a calibration to observations; ``None`` when they cannot determine a line.

    The anchor (``internal``) is the newest observation's internal time. ``outlier_k`` = 0
    disables outlier rejection; all weights are equal when every ``error_ns`` is equal, which
    gives plain least squares (GStreamer's regression). Weights are ``1 / (floor² + (error -
    least error)²)`` with ``floor = weight_floor_ns`` (default ``error_floor_ns``);
    ``error_floor_ns`` is also the least robust sigma for outlier rejection. The sums are
    float64 on values relative to the anchor (plain Python: the daemon's windows hold at most
    a few hundred points, and the daemon does not pay numpy's import in memory); the result is
    exact ints.
    """
    items = obs if isinstance(obs, (list, tuple, deque)) else list(obs)
    n = len(items)
    if n < max(2, min_points):
        return None
    base = items[-1]
    xb, yb = base.internal, base.external
    # dx = internal - xb; dy = (external - yb) - dx (offset against elapsed), exact ints first.
    x = [float(o.internal - xb) for o in items]
    y = [float((o.external - yb) - (o.internal - xb)) for o in items]
    emin = min(o.error_ns for o in items)
    floor = float(max(error_floor_ns, 1))
    wfloor = floor if weight_floor_ns is None else float(max(weight_floor_ns, 1))
    wf2 = wfloor * wfloor
    w = [1.0 / (wf2 + float(o.error_ns - emin) ** 2) for o in items]
    line = _weighted_line(x, y, w)
    if line is None:
        return None
    rejected = 0
    if outlier_k > 0.0 and n > min_points:
        s, mx, my = line
        res = [yi - (my + s * (xi - mx)) for xi, yi in zip(x, y, strict=True)]
        med = _upper_median(res)
        dev = [abs(r - med) for r in res]
        mad = _upper_median(dev)
        sigma = max(1.4826 * mad, floor)
        lim = outlier_k * sigma
        keep = [i for i, d in enumerate(dev) if d <= lim]
        kept = len(keep)
        if kept >= max(2, min_points) and kept < n:
            kx, ky, kw = [x[i] for i in keep], [y[i] for i in keep], [w[i] for i in keep]
            refit = _weighted_line(kx, ky, kw)
            if refit is not None:
                rejected = n - kept
                x, y, w, line = kx, ky, kw, refit
    s, mx, my = line
    # Offset (external - internal) at the anchor dx = 0.
    off0 = my - s * mx
    cal = _line_calibration(s, off0, xb, yb, epoch)
    if cal is None:
        return None
    # Residual statistics (floats: statistics only).
    sw = sum(w)
    res = [yi - (my + s * (xi - mx)) for xi, yi in zip(x, y, strict=True)]
    ss_res_w = _dot(map(mul, w, res), res)
    residual_rms = math.sqrt(ss_res_w / sw)
    # r² of external against internal (GStreamer's definition): SS_tot of y = dx + dy.
    yy = list(map(add, x, y))
    my2 = _dot(w, yy) / sw
    yc = [v - my2 for v in yy]
    ss_tot_w = _dot(map(mul, w, yc), yc)
    r2 = 1.0 - ss_res_w / ss_tot_w if ss_tot_w > 0.0 else 0.0
    return FitResult(
        calibration=cal,
        r_squared=r2,
        used=len(x),
        rejected=rejected,
        residual_rms_ns=residual_rms,
    )


class _WindowSums:
    """Exact running sums over a window of observations, for :func:`_fit_sums`.

    Relative to a fixed base (``bx``, ``by``): ``X = internal - bx`` and ``Y = (external - by)
    - X`` (offset against elapsed, as :func:`fit_observations` fits), plus the errors. Python
    ints, so adding and removing observations never loses anything, and the centred sums a
    fit needs come out exact whatever the base.
    """

    __slots__ = (
        "adds", "bx", "by", "n", "se", "see", "sx", "sxx", "sxy", "sy", "syy", "xs", "ys",
    )

    def __init__(self, obs: Iterable[Observation], bx: int, by: int) -> None:
        self.bx, self.by = bx, by
        self.n = self.sx = self.sy = self.sxx = self.sxy = self.syy = self.se = self.see = 0
        self.adds = 0
        #: each observation's X and Y as floats, oldest first (the window's order): the outlier
        #: test's residuals come from these without touching the observations. Exact: the ints
        #: stay far below 2**53 (the base is reset every 4096 adds)
        self.xs: deque[float] = deque()
        self.ys: deque[float] = deque()
        for o in obs:
            self.add(o)

    def add(self, o: Observation) -> None:
        x = o.internal - self.bx
        y = o.external - self.by - x
        e = o.error_ns
        self.xs.append(float(x))
        self.ys.append(float(y))
        self.n += 1
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y
        self.syy += y * y
        self.se += e
        self.see += e * e
        self.adds += 1

    def remove(self, o: Observation) -> None:
        """Take out ``o``, the oldest observation (the window only ever trims its oldest)."""
        x = o.internal - self.bx
        y = o.external - self.by - x
        e = o.error_ns
        self.xs.popleft()
        self.ys.popleft()
        self.n -= 1
        self.sx -= x
        self.sy -= y
        self.sxx -= x * x
        self.sxy -= x * y
        self.syy -= y * y
        self.se -= e
        self.see -= e * e

    def uniform_errors(self) -> bool:
        """Every observation has the same ``error_ns`` (so all weights are equal)."""
        return self.n * self.see == self.se * self.se


def _fit_sums(
    items: Sequence[Observation],
    sums: _WindowSums,
    *,
    epoch: int,
    error_floor_ns: int,
    outlier_k: float,
    min_points: int,
) -> FitResult | None:
    """:func:`fit_observations` of a window whose errors are all equal, from its exact sums.

    Equal errors mean equal weights, so the weighted line is the plain least-squares line:
    its slope, intercept and residual statistics follow from the sums (exact ints, one float
    rounding at the end instead of one per term), and a refit without the outliers from the
    same sums less theirs. Only the outlier test still looks at each residual. The result is
    :func:`fit_observations`' within float rounding.
    """
    n = sums.n
    if n < max(2, min_points):
        return None
    base = items[-1]
    xb, yb = base.internal, base.external
    xo = xb - sums.bx  # the newest observation in the sums' frame
    yo = yb - sums.by - xo
    sx, sy, sxx, sxy, syy = sums.sx, sums.sy, sums.sxx, sums.sxy, sums.syy
    line = _sums_line(n, sx, sy, sxx, sxy, xo, yo)
    if line is None:
        return None
    rejected = 0
    if outlier_k > 0.0 and n > min_points:
        s = line[0]
        floor = float(max(error_floor_ns, 1))
        # The residuals up to one constant (Y - s·X in the sums' frame): the median test is
        # blind to a shift, so the line's intercept is not needed here.
        res = [y - s * x for x, y in zip(sums.xs, sums.ys, strict=True)]
        srt = sorted(res)
        half = n // 2
        med = srt[half]
        lim = outlier_k * max(1.4826 * _sorted_mad(srt, half, med), floor)
        if max(med - srt[0], srt[-1] - med) > lim:
            out = [items[i] for i, r in enumerate(res) if abs(r - med) > lim]
            kept = n - len(out)
            if kept >= max(2, min_points):
                bx, by = sums.bx, sums.by
                for o in out:
                    x = o.internal - bx
                    y = o.external - by - x
                    sx -= x
                    sy -= y
                    sxx -= x * x
                    sxy -= x * y
                    syy -= y * y
                refit = _sums_line(kept, sx, sy, sxx, sxy, xo, yo)
                if refit is not None:
                    rejected, n, line = len(out), kept, refit
    s = line[0]
    cxx = n * sxx - sx * sx  # n × the centred sums
    cxy = n * sxy - sx * sy
    cyy = n * syy - sy * sy
    # Offset (external - internal) at the anchor: my - s·mx, exact but for the last division.
    off0 = ((sy - n * yo) * cxx - cxy * (sx - n * xo)) / (n * cxx)
    cal = _line_calibration(s, off0, xb, yb, epoch)
    if cal is None:
        return None
    # Residual sum of squares of the least-squares line, (Syy·Sxx − Sxy²) / Sxx centred.
    ss_res = max(cyy * cxx - cxy * cxy, 0) / (n * cxx)
    # r² of external against internal: SS_tot of x + y.
    st = sx + sy
    ss_tot = (n * (sxx + 2 * sxy + syy) - st * st) / n
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0.0 else 0.0
    return FitResult(
        calibration=cal,
        r_squared=r2,
        used=n,
        rejected=rejected,
        residual_rms_ns=math.sqrt(ss_res / n),
    )


def _sums_line(
    n: int, sx: int, sy: int, sxx: int, sxy: int, xo: int, yo: int
) -> tuple[float, float, float] | None:
    """:func:`_weighted_line` with equal weights, from exact sums: ``(s, mx, my)`` with the
    means relative to ``(xo, yo)``, or None."""
    cxx = n * sxx - sx * sx
    if cxx <= 0:
        return None
    return (n * sxy - sx * sy) / cxx, (sx - n * xo) / n, (sy - n * yo) / n


@dataclass
class _Pending:
    """Observations that disagree with the fit: a step candidate."""

    items: list[Observation] = field(default_factory=list)


class WindowedCalibration:
    """A sliding window of observations and the calibration fitted to it.

    Parameters (all changeable at run time through :meth:`configure` / :meth:`set_window`):

    Window

    * ``window_size`` (32, GStreamer's default; the daemon uses 128 over 64 s): observations always
      kept (the window's length in count).
    * ``window_span_ns`` (0: count only): older observations are also kept while they are
      within this much local time of the newest one, so a fast exchange rate still fits over
      a useful time. The daemon's discipline (``[clock] window-span-ns``) and the benchmark
      use 64 s (:data:`DEFAULT_WINDOW_SPAN_NS`); the default keeps ``window_size`` meaning
      "observations kept" for callers that size the window themselves.
    * ``window_max`` (1024): hard cap on the window length when ``window_span_ns`` extends it.
    * ``window_threshold`` (4): observations needed before the first fit.

    Fit

    * ``outlier_k`` (4.0): residual rejection at k robust sigmas; 0 disables.
    * ``error_floor_ns`` (50): the least error assumed for the observation with the best error
      in the window; it sets how sharply better-than-others observations are favoured.
    * ``floor_k`` (0.25): the *adaptive* weighting floor follows the measured jitter: at least
      ``floor_k`` times the typical error excess (median error minus the least error over
      the horizon). Exchanges nearest the least delay then get the weight (one-sided
      queueing); a few µs between errors no longer hand the fit to a handful of points
      because the floor scales with them. 0 keeps the floor at ``error_floor_ns``.
    * ``floor_scale`` (0.3): when the offsets scatter regardless of their error (symmetric
      noise, where favouring low errors only discards samples) the floor is raised: the
      residuals against the current fit are regressed as ``resid² = s0² + k·excess²`` and the
      floor is at least ``floor_scale · sqrt(s0² / k)``. 0 disables the model.

    Delay spikes (on ``error_ns``, e.g. half a round trip)

    * ``reject_k`` (8.0): an observation whose error excess is above ``reject_k`` times the
      typical excess (and above ``reject_min_ns``) is withheld from the fit: the calibration
      keeps extrapolating. 0 disables.
    * ``reject_min_ns`` (1 µs): see ``reject_k``.
    * ``reject_hold_ns`` (60 s): if observations keep being withheld for this much local time,
      the path has changed: the error history restarts and they are accepted again.
    * ``error_horizon`` (0): observations over which the least error is taken (0: four
      window lengths).

    Steps and lost fits

    * ``step_threshold_ns`` (1 ms): disagreement, beyond the observation's own error, that
      makes an observation a step candidate; 0 disables step detection (and fit-loss
      detection).
    * ``step_confirm`` (3): consecutive agreeing candidates that confirm a step.
    * ``lost_after`` (0): more than this many consecutive candidates, whether they agree with
      each other or not, mean the fit itself is wrong (a wild first fit, say): the window
      restarts from them (new epoch, counted in :attr:`fit_resets`). 0: ``max(2 ·
      step_confirm, window_threshold)``.

    Counters: :attr:`steps`, :attr:`fit_resets`, :attr:`rejected` (withheld observations),
    :attr:`spike_resets` (holds given up). :attr:`effective_floor_ns` is the floor in use.
    """

    def __init__(
        self,
        window_size: int = 32,
        window_threshold: int = 4,
        *,
        window_span_ns: int = 0,
        window_max: int = 1024,
        outlier_k: float = 4.0,
        error_floor_ns: int = 50,
        floor_k: float = 0.25,
        floor_scale: float = 0.3,
        reject_k: float = 8.0,
        reject_min_ns: int = 1_000,
        reject_hold_ns: int = 60 * 1_000_000_000,
        error_horizon: int = 0,
        step_threshold_ns: int = 1_000_000,
        step_confirm: int = 3,
        lost_after: int = 0,
    ) -> None:
        self._obs: deque[Observation] = deque()
        self._cal: Calibration | None = None
        self._last_fit: FitResult | None = None
        self._pending = _Pending()
        self._far: deque[Observation] = deque()
        self._epoch = 0
        # error history (spike filter and adaptive floor)
        self._seq = 0
        self._emin: deque[tuple[int, int]] = deque()  # (seq, error) increasing errors
        self._recent: deque[int] = deque(maxlen=65536)  # every error, withheld ones too
        self._same_error = 0  # how many of the newest _recent are equal
        self._resid: deque[tuple[int, int]] = deque(maxlen=65536)  # (excess, residual)
        self._zero_excess = 0  # how many of the newest _resid have excess 0
        self._hold_since: int | None = None
        #: exact running sums of the window (None: recomputed at the next fit)
        self._sums: _WindowSums | None = None
        self.window_size = 128
        self.window_threshold = 4
        self.window_span_ns = 0
        self.window_max = 1024
        self.outlier_k = 0.0
        self.error_floor_ns = 0
        self.floor_k = 0.0
        self.floor_scale = 0.0
        self.reject_k = 0.0
        self.reject_min_ns = 0
        self.reject_hold_ns = 0
        self.error_horizon = 0
        self.step_threshold_ns = 0
        self.step_confirm = 1
        self.lost_after = 0
        self.effective_floor_ns = error_floor_ns
        self.steps = 0
        self.fit_resets = 0
        self.rejected = 0
        self.spike_resets = 0
        self.configure(
            window_size=window_size,
            window_threshold=window_threshold,
            window_span_ns=window_span_ns,
            window_max=window_max,
            outlier_k=outlier_k,
            error_floor_ns=error_floor_ns,
            floor_k=floor_k,
            floor_scale=floor_scale,
            reject_k=reject_k,
            reject_min_ns=reject_min_ns,
            reject_hold_ns=reject_hold_ns,
            error_horizon=error_horizon,
            step_threshold_ns=step_threshold_ns,
            step_confirm=step_confirm,
            lost_after=lost_after,
        )

    # -- configuration ------------------------------------------------------------------------
    def configure(
        self,
        *,
        window_size: int | None = None,
        window_threshold: int | None = None,
        window_span_ns: int | None = None,
        window_max: int | None = None,
        outlier_k: float | None = None,
        error_floor_ns: int | None = None,
        floor_k: float | None = None,
        floor_scale: float | None = None,
        reject_k: float | None = None,
        reject_min_ns: int | None = None,
        reject_hold_ns: int | None = None,
        error_horizon: int | None = None,
        step_threshold_ns: int | None = None,
        step_confirm: int | None = None,
        lost_after: int | None = None,
    ) -> None:
        """Change tuning at run time; values are validated before anything changes."""
        size = self.window_size if window_size is None else window_size
        thr = self.window_threshold if window_threshold is None else window_threshold
        if not 2 <= size <= 65536:
            raise ValueError(f"window_size {size} outside 2..65536")
        if not 2 <= thr <= size:
            raise ValueError(f"window_threshold {thr} outside 2..window_size ({size})")
        checks: list[tuple[str, float | None, float, float]] = [
            ("window_span_ns", window_span_ns, 0, 10**15),
            ("window_max", window_max, 2, 65536),
            ("error_floor_ns", error_floor_ns, 1, 10**9),
            ("floor_k", floor_k, 0.0, 100.0),
            ("floor_scale", floor_scale, 0.0, 100.0),
            ("reject_min_ns", reject_min_ns, 0, 10**12),
            ("reject_hold_ns", reject_hold_ns, 0, 10**15),
            ("error_horizon", error_horizon, 0, 65536),
            ("step_threshold_ns", step_threshold_ns, 0, 10**12),
            ("step_confirm", step_confirm, 1, 64),
            ("lost_after", lost_after, 0, 65536),
        ]
        for name, v, lo, hi in checks:
            if v is not None and not lo <= v <= hi:
                raise ValueError(f"{name} {v} outside {lo}..{hi}")
        if outlier_k is not None and not (outlier_k == 0.0 or 1.0 <= outlier_k <= 100.0):
            raise ValueError(f"outlier_k {outlier_k} must be 0 (off) or in 1..100")
        if reject_k is not None and not 0.0 <= reject_k <= 1000.0:
            raise ValueError(f"reject_k {reject_k} outside 0..1000 (0: off)")
        self.window_size, self.window_threshold = size, thr
        if window_span_ns is not None:
            self.window_span_ns = window_span_ns
        if window_max is not None:
            self.window_max = window_max
        if outlier_k is not None:
            self.outlier_k = float(outlier_k)
        if error_floor_ns is not None:
            self.error_floor_ns = error_floor_ns
            self.effective_floor_ns = max(self.effective_floor_ns, error_floor_ns)
        if floor_k is not None:
            self.floor_k = float(floor_k)
        if floor_scale is not None:
            self.floor_scale = float(floor_scale)
        if reject_k is not None:
            self.reject_k = float(reject_k)
        if reject_min_ns is not None:
            self.reject_min_ns = reject_min_ns
        if reject_hold_ns is not None:
            self.reject_hold_ns = reject_hold_ns
        if error_horizon is not None:
            self.error_horizon = error_horizon
        if step_threshold_ns is not None:
            self.step_threshold_ns = step_threshold_ns
        if step_confirm is not None:
            self.step_confirm = step_confirm
        if lost_after is not None:
            self.lost_after = lost_after
        self._trim()

    def set_window(
        self, window_size: int | None = None, window_threshold: int | None = None
    ) -> None:
        self.configure(window_size=window_size, window_threshold=window_threshold)

    # -- state --------------------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration | None:
        """The applied calibration, or None before the first fit."""
        return self._cal

    @property
    def last_fit(self) -> FitResult | None:
        return self._last_fit

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def observations(self) -> tuple[Observation, ...]:
        return tuple(self._obs)

    def __len__(self) -> int:
        """Observations in the window."""
        return len(self._obs)

    def least_error(self) -> int | None:
        """The least ``error_ns`` in the window (None when empty)."""
        if not self._obs:
            return None
        sums = self._sums
        if sums is not None and sums.n == len(self._obs) and sums.uniform_errors():
            return self._obs[-1].error_ns  # all equal (PTP): no pass over the window
        return min([o.error_ns for o in self._obs])

    @property
    def window_limit(self) -> int:
        """The most observations the window may hold (``window_size`` when no span)."""
        return max(self.window_size, self.window_max) if self.window_span_ns else self.window_size

    @property
    def lost_limit(self) -> int:
        """Consecutive disagreeing observations after which the fit is declared lost."""
        return self.lost_after or max(2 * self.step_confirm, self.window_threshold)

    def reset(self) -> None:
        """Forget observations, error history and calibration (epoch bumped if one was applied)."""
        if self._cal is not None:
            self._epoch += 1
        self._obs.clear()
        self._sums = None
        self._pending = _Pending()
        self._far.clear()
        self._cal = None
        self._last_fit = None
        self._forget_errors()

    def discard_before(self, internal: int) -> int:
        """Drop the window's observations older than ``internal`` (the calibration stands
        until the next fit); returns how many went. For observations made by a method since
        replaced, e.g. PTP's first ones, taken before a fit existed to pick the least-queued
        Syncs with: they would tilt every fit until they slid out of the window."""
        obs, gone = self._obs, 0
        while obs and obs[0].internal < internal:
            o = obs.popleft()
            if self._sums is not None:
                self._sums.remove(o)
            gone += 1
        return gone

    def apply(self, fit: FitResult) -> None:
        """Apply a fit obtained from :meth:`add_observation_unapplied`."""
        self._cal = fit.calibration
        self._last_fit = fit

    # -- observations -------------------------------------------------------------------------
    def add_observation(self, internal: int, external: int, error_ns: int = 0) -> FitResult | None:
        """Add an observation, refit and apply; returns the fit or None (no new fit)."""
        fit = self.add_observation_unapplied(internal, external, error_ns)
        if fit is not None:
            self.apply(fit)
        return fit

    def add_observation_unapplied(
        self, internal: int, external: int, error_ns: int = 0
    ) -> FitResult | None:
        """Add an observation and return the new fit without applying it.

        None when there is no new fit: too few observations yet, the observation was withheld
        as a delay spike, or it is a step candidate not (yet) confirmed.
        """
        for name, v in (("internal", internal), ("external", external), ("error_ns", error_ns)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be int ns, got {type(v).__name__}")
        if error_ns < 0:
            raise ValueError("error_ns must be >= 0")
        if self._obs and internal <= self._obs[-1].internal:
            raise ValueError(
                f"observations must advance: internal {internal} <= {self._obs[-1].internal}"
            )
        excess, typical = self._note_error(error_ns)
        if self._withhold(internal, excess, typical):
            return None
        ob = Observation(internal, external, error_ns)
        cal = self._cal
        if cal is not None:
            resid = external - cal.to_external(internal)
            if self.step_threshold_ns > 0 and abs(resid) - error_ns > self.step_threshold_ns:
                return self._disagree(ob, cal)
            self._resid.append((excess, resid))
            self._zero_excess = self._zero_excess + 1 if excess == 0 else 0
        self._pending = _Pending()
        self._far.clear()
        self._obs.append(ob)
        if self._sums is not None:
            self._sums.add(ob)
        self._trim()
        self._adapt_floor(typical)
        if len(self._obs) < self.window_threshold:
            return None
        return self._fit()

    # -- internals ------------------------------------------------------------------------------
    def _trim(self) -> None:
        obs, size = self._obs, self.window_size
        limit, span = self.window_limit, self.window_span_ns
        while len(obs) > size and (
            len(obs) > limit or not span or obs[-1].internal - obs[0].internal > span
        ):
            gone = obs.popleft()
            if self._sums is not None:
                self._sums.remove(gone)

    def _forget_errors(self) -> None:
        self._emin.clear()
        self._recent.clear()
        self._same_error = 0
        self._resid.clear()
        self._zero_excess = 0
        self._hold_since = None
        self.effective_floor_ns = self.error_floor_ns

    def _note_error(self, error_ns: int) -> tuple[int, int]:
        """Record an error; returns (its excess, the typical excess) over the least error."""
        n = max(self.window_size, len(self._obs))
        horizon = self.error_horizon or 4 * n
        self._seq += 1
        q = self._emin
        while q and q[-1][1] >= error_ns:
            q.pop()
        q.append((self._seq, error_ns))
        while q[0][0] <= self._seq - horizon:
            q.popleft()
        lo = q[0][1]
        self._push_error(error_ns)
        k = min(n, len(self._recent))
        if self._same_error >= k:  # the newest k are all this error: it is their median
            return error_ns - lo, error_ns - lo
        recent = sorted(islice(reversed(self._recent), k))
        return error_ns - lo, recent[k // 2] - lo

    def _push_error(self, error_ns: int) -> None:
        recent = self._recent
        self._same_error = self._same_error + 1 if recent and recent[-1] == error_ns else 1
        recent.append(error_ns)

    def _withhold(self, internal: int, excess: int, typical: int) -> bool:
        """Delay-spike filter: True when the observation's error is abnormally high."""
        if self.reject_k <= 0.0 or len(self._recent) < 8:
            self._hold_since = None
            return False
        if excess <= max(self.reject_k * typical, self.reject_min_ns):
            self._hold_since = None
            return False
        if self._hold_since is None:
            self._hold_since = internal
        if internal - self._hold_since < self.reject_hold_ns:
            self.rejected += 1
            return True
        # Withheld for too long: the path changed. Start the error history afresh.
        self.spike_resets += 1
        last = self._recent[-1]
        self._forget_errors()
        self._seq += 1
        self._emin.append((self._seq, last))
        self._push_error(last)
        return False

    def _adapt_floor(self, typical: int) -> None:
        floor = float(self.error_floor_ns)
        if self.floor_k > 0.0:
            # Queueing delay: observations nearest the least error are the good ones; the
            # floor is a fraction of the typical excess so weights favour them, but only as
            # sharply as the measured jitter justifies.
            floor = max(floor, self.floor_k * typical)
            n = min(max(self.window_size, len(self._obs)), len(self._resid))
            if self.floor_scale > 0.0 and n >= 16 and self._zero_excess >= n:
                # Every error equal to the least (PTP's stamps): no excess to regress on, the
                # model below finds k = 0 and takes the flattest weighting, without the passes.
                floor = max(floor, 1e9)
            elif self.floor_scale > 0.0 and n >= 16:
                # If the offsets scatter regardless of their error (symmetric noise), sharp
                # weights only discard samples. Model resid² = s0² + k·excess² (least squares);
                # weights 1/(s0² + k·excess²) mean floor² = s0²/k. Take the flatter weighting.
                pts = list(islice(reversed(self._resid), n))  # the newest n (order is moot)
                xs = [float(a) ** 2 for a, _ in pts]
                ys = [float(b) ** 2 for _, b in pts]
                mx, my = sum(xs) / n, sum(ys) / n
                xc = [v - mx for v in xs]
                sxx = _dot(xc, xc)
                k = _dot(xc, [v - my for v in ys]) / sxx if sxx > 0.0 else 0.0
                s0 = max(my - k * mx, 0.0)
                floor = max(floor, self.floor_scale * math.sqrt(s0 / k) if k > 0.0 else 1e9)
        self.effective_floor_ns = min(round(floor), 10**9)

    def _disagree(self, ob: Observation, cal: Calibration) -> FitResult | None:
        """``ob`` disagrees with the fit beyond the step threshold."""
        self._far.append(ob)
        self._pending.items.append(ob)
        if len(self._far) > self.lost_limit:
            # Many in a row disagree, and not as one step: the fit itself is wrong (e.g. a
            # wild first fit). Restart the window from the recent observations.
            far = list(self._far)
            self._far.clear()
            self._pending = _Pending()
            self._obs.clear()
            self._obs.extend(far)
            self._sums = None
            self._resid.clear()
            self._zero_excess = 0
            self._epoch += 1
            self.fit_resets += 1
            fit = self._fit()
            if fit is None:
                return None
            return replace(fit, stepped=True)
        if not self._step_confirmed(cal):
            return None
        # Confirmed step: the master's time jumped. Shift the older observations by the step
        # so the window (and the rate it measured) is kept, then refit.
        cands = self._pending.items
        self._pending = _Pending()
        self._far.clear()
        offs = sorted(o.external - cal.to_external(o.internal) for o in cands)
        shift = offs[len(offs) // 2]
        shifted = [replace(o, external=o.external + shift) for o in self._obs]
        self._obs.clear()
        self._obs.extend(shifted)
        self._obs.extend(cands)
        self._sums = None
        self._trim()
        self._resid.clear()
        self._zero_excess = 0
        self._epoch += 1
        self.steps += 1
        fit = self._fit()
        if fit is None:
            fit = FitResult(cal.stepped(shift), 0.0, len(self._obs), 0, 0.0)
        return replace(fit, stepped=True)

    def _step_confirmed(self, cal: Calibration) -> bool:
        items = self._pending.items
        if len(items) < self.step_confirm:
            return False
        offs = [o.external - cal.to_external(o.internal) for o in items[-self.step_confirm :]]
        spread = max(offs) - min(offs)
        tol = self.step_threshold_ns + 2 * max(o.error_ns for o in items)
        if spread > tol:
            # Candidates disagree with each other: keep only the newest as a fresh start.
            self._pending.items = items[-1:]
            return False
        self._pending.items = items[-self.step_confirm :]
        return True

    def _fit(self) -> FitResult | None:
        obs = self._obs
        sums = self._sums
        if sums is None or sums.adds > 4096:  # (re)based on the oldest: the ints stay small
            sums = self._sums = (
                _WindowSums(obs, obs[0].internal, obs[0].external) if obs else None
            )
        if sums is not None and sums.uniform_errors():
            # Equal errors (PTP's stamps, a reference clock): the fit from the running sums
            # instead of a dozen passes over the whole window on every observation.
            return _fit_sums(
                obs,
                sums,
                epoch=self._epoch,
                error_floor_ns=self.error_floor_ns,
                outlier_k=self.outlier_k,
                min_points=min(self.window_threshold, len(obs)),
            )
        return fit_observations(
            self._obs,
            epoch=self._epoch,
            error_floor_ns=self.error_floor_ns,
            weight_floor_ns=self.effective_floor_ns,
            outlier_k=self.outlier_k,
            min_points=min(self.window_threshold, len(self._obs)),
        )


class MonotonicHold:
    """Never let a reader go backwards within an epoch (``gst_clock_get_time``'s hold).

    ``read(cal, internal_now)`` returns ``cal.to_external(internal_now)``, unless that is below
    the last value returned in the same epoch, in which case the last value is returned again
    until the calibration catches up. A new epoch (a step) resets the hold.
    """

    __slots__ = ("_epoch", "_last", "holds")

    def __init__(self) -> None:
        self._last: int | None = None
        self._epoch = -1
        self.holds = 0

    def read(self, cal: Calibration, internal_now: int) -> int:
        return self.guard(cal.to_external(internal_now), cal.epoch)

    def guard(self, value: int, epoch: int) -> int:
        if epoch != self._epoch or self._last is None:
            self._epoch, self._last = epoch, value
            return value
        if value < self._last:
            self.holds += 1
            return self._last
        self._last = value
        return value
