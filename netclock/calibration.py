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
* each observation may carry an error bound (half a round-trip delay, say); weights favour the
  observations whose error is closest to the best in the window, so a delay spike barely moves
  the fit;
* residual outliers beyond ``outlier_k`` robust sigmas are rejected and the fit redone;
* a run of ``step_confirm`` consecutive observations that all disagree with the current fit by
  more than ``step_threshold_ns`` (beyond their own error) is a *step*: the window restarts from
  them, the rate is kept, and the epoch is bumped;
* window size and threshold can change at run time.

:class:`MonotonicHold` makes a reader never go backwards within one epoch after a
recalibration: it holds the last value until the new fit catches up, as ``gst_clock_get_time``
does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = [
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


def _weighted_line(
    pts: list[tuple[float, float, float]],
) -> tuple[float, float, float] | None:
    """Weighted least squares ``dy = my + s (dx - mx)``. Returns (s, mx, my) or None."""
    sw = math.fsum(w for _, _, w in pts)
    if sw <= 0.0:
        return None
    mx = math.fsum(w * x for x, _, w in pts) / sw
    my = math.fsum(w * y for _, y, w in pts) / sw
    sxx = math.fsum(w * (x - mx) * (x - mx) for x, _, w in pts)
    if sxx <= 0.0:
        return None
    sxy = math.fsum(w * (x - mx) * (y - my) for x, y, w in pts)
    return sxy / sxx, mx, my


def fit_observations(
    obs: Iterable[Observation],
    *,
    epoch: int = 0,
    error_floor_ns: int = 50,
    outlier_k: float = 0.0,
    min_points: int = 2,
) -> FitResult | None:
    """Fit a calibration to observations; ``None`` when they cannot determine a line.

    The anchor (``internal``) is the newest observation's internal time. ``outlier_k`` = 0
    disables outlier rejection; all weights are equal when every ``error_ns`` is equal, which
    gives plain least squares (GStreamer's regression).
    """
    items = list(obs)
    if len(items) < max(2, min_points):
        return None
    base = items[-1]
    xb, yb = base.internal, base.external
    emin = min(o.error_ns for o in items)
    floor2 = float(max(error_floor_ns, 1)) ** 2
    pts: list[tuple[float, float, float]] = []
    for o in items:
        dx = o.internal - xb
        dy = (o.external - yb) - dx
        ex = float(o.error_ns - emin)
        pts.append((float(dx), float(dy), 1.0 / (floor2 + ex * ex)))
    line = _weighted_line(pts)
    if line is None:
        return None
    rejected = 0
    if outlier_k > 0.0 and len(pts) > min_points:
        s, mx, my = line
        res = [y - (my + s * (x - mx)) for x, y, _ in pts]
        med = sorted(res)[len(res) // 2]
        mad = sorted(abs(r - med) for r in res)[len(res) // 2]
        sigma = max(1.4826 * mad, float(max(error_floor_ns, 1)))
        keep = [p for p, r in zip(pts, res, strict=True) if abs(r - med) <= outlier_k * sigma]
        if len(keep) >= max(2, min_points) and len(keep) < len(pts):
            refit = _weighted_line(keep)
            if refit is not None:
                rejected = len(pts) - len(keep)
                pts, line = keep, refit
    s, mx, my = line
    # Offset (external - internal) at the anchor dx = 0.
    off0 = my - s * mx
    rate_num = RATE_DENOM + round(s * RATE_DENOM)
    if not 0 < rate_num <= MAX_RATE_TERM:
        return None
    cal = Calibration(
        internal=xb,
        external=yb + round(off0),
        rate_num=rate_num,
        rate_denom=RATE_DENOM,
        epoch=epoch,
    )
    # Residual statistics (floats: statistics only).
    sw = math.fsum(w for _, _, w in pts)
    ss_res_w = math.fsum(w * (y - (my + s * (x - mx))) ** 2 for x, y, w in pts)
    residual_rms = math.sqrt(ss_res_w / sw)
    # r² of external against internal (GStreamer's definition): SS_tot of y = dx + dy.
    ymean = math.fsum(w * (x + y) for x, y, w in pts) / sw
    ss_tot_w = math.fsum(w * (x + y - ymean) ** 2 for x, y, w in pts)
    r2 = 1.0 - ss_res_w / ss_tot_w if ss_tot_w > 0.0 else 0.0
    return FitResult(
        calibration=cal,
        r_squared=r2,
        used=len(pts),
        rejected=rejected,
        residual_rms_ns=residual_rms,
    )


@dataclass
class _Pending:
    """Observations that disagree with the fit: a step candidate."""

    items: list[Observation] = field(default_factory=list)


class WindowedCalibration:
    """A sliding window of observations and the calibration fitted to it.

    Parameters (all changeable at run time through :meth:`configure` / :meth:`set_window`):

    * ``window_size`` (32): observations kept.
    * ``window_threshold`` (4): observations needed before the first fit.
    * ``outlier_k`` (4.0): residual rejection at k robust sigmas; 0 disables.
    * ``error_floor_ns`` (50): error assumed for an observation with the best error in the
      window; sets how much better-than-others observations are favoured.
    * ``step_threshold_ns`` (1 ms): disagreement, beyond the observation's own error, that
      makes an observation a step candidate; 0 disables step detection.
    * ``step_confirm`` (3): consecutive agreeing candidates that confirm a step.
    """

    def __init__(
        self,
        window_size: int = 32,
        window_threshold: int = 4,
        *,
        outlier_k: float = 4.0,
        error_floor_ns: int = 50,
        step_threshold_ns: int = 1_000_000,
        step_confirm: int = 3,
    ) -> None:
        self._obs: deque[Observation] = deque(maxlen=32)
        self._cal: Calibration | None = None
        self._last_fit: FitResult | None = None
        self._pending = _Pending()
        self._epoch = 0
        self.window_size = 32
        self.window_threshold = 4
        self.outlier_k = 0.0
        self.error_floor_ns = 0
        self.step_threshold_ns = 0
        self.step_confirm = 1
        self.steps = 0
        self.configure(
            window_size=window_size,
            window_threshold=window_threshold,
            outlier_k=outlier_k,
            error_floor_ns=error_floor_ns,
            step_threshold_ns=step_threshold_ns,
            step_confirm=step_confirm,
        )

    # -- configuration ------------------------------------------------------------------------
    def configure(
        self,
        *,
        window_size: int | None = None,
        window_threshold: int | None = None,
        outlier_k: float | None = None,
        error_floor_ns: int | None = None,
        step_threshold_ns: int | None = None,
        step_confirm: int | None = None,
    ) -> None:
        """Change tuning at run time; values are validated before anything changes."""
        size = self.window_size if window_size is None else window_size
        thr = self.window_threshold if window_threshold is None else window_threshold
        if not 2 <= size <= 65536:
            raise ValueError(f"window_size {size} outside 2..65536")
        if not 2 <= thr <= size:
            raise ValueError(f"window_threshold {thr} outside 2..window_size ({size})")
        if outlier_k is not None and not (outlier_k == 0.0 or 1.0 <= outlier_k <= 100.0):
            raise ValueError(f"outlier_k {outlier_k} must be 0 (off) or in 1..100")
        if error_floor_ns is not None and not 1 <= error_floor_ns <= 10**9:
            raise ValueError(f"error_floor_ns {error_floor_ns} outside 1..10^9")
        if step_threshold_ns is not None and not 0 <= step_threshold_ns <= 10**12:
            raise ValueError(f"step_threshold_ns {step_threshold_ns} outside 0..10^12")
        if step_confirm is not None and not 1 <= step_confirm <= 64:
            raise ValueError(f"step_confirm {step_confirm} outside 1..64")
        if size != self._obs.maxlen:
            self._obs = deque(self._obs, maxlen=size)
        self.window_size, self.window_threshold = size, thr
        if outlier_k is not None:
            self.outlier_k = float(outlier_k)
        if error_floor_ns is not None:
            self.error_floor_ns = error_floor_ns
        if step_threshold_ns is not None:
            self.step_threshold_ns = step_threshold_ns
        if step_confirm is not None:
            self.step_confirm = step_confirm

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

    def reset(self) -> None:
        """Forget observations and calibration (the epoch is bumped if one was applied)."""
        if self._cal is not None:
            self._epoch += 1
        self._obs.clear()
        self._pending = _Pending()
        self._cal = None
        self._last_fit = None

    def apply(self, fit: FitResult) -> None:
        """Apply a fit obtained from :meth:`add_observation_unapplied`."""
        self._cal = fit.calibration
        self._last_fit = fit

    # -- observations -------------------------------------------------------------------------
    def add_observation(self, internal: int, external: int, error_ns: int = 0) -> FitResult | None:
        """Add an observation, refit and apply; returns the fit or None (not enough data)."""
        fit = self.add_observation_unapplied(internal, external, error_ns)
        if fit is not None:
            self.apply(fit)
        return fit

    def add_observation_unapplied(
        self, internal: int, external: int, error_ns: int = 0
    ) -> FitResult | None:
        """Add an observation and return the new fit without applying it."""
        for name, v in (("internal", internal), ("external", external), ("error_ns", error_ns)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be int ns, got {type(v).__name__}")
        if error_ns < 0:
            raise ValueError("error_ns must be >= 0")
        if self._obs and internal <= self._obs[-1].internal:
            raise ValueError(
                f"observations must advance: internal {internal} <= {self._obs[-1].internal}"
            )
        ob = Observation(internal, external, error_ns)
        cal = self._cal
        if cal is not None and self.step_threshold_ns > 0:
            resid = external - cal.to_external(internal)
            if abs(resid) - error_ns > self.step_threshold_ns:
                self._pending.items.append(ob)
                if not self._step_confirmed(cal):
                    return None
                # Confirmed step: the master's time jumped. Shift the older observations by
                # the step so the window (and the rate it measured) is kept, then refit.
                cands = self._pending.items
                self._pending = _Pending()
                offs = sorted(o.external - cal.to_external(o.internal) for o in cands)
                shift = offs[len(offs) // 2]
                shifted = [replace(o, external=o.external + shift) for o in self._obs]
                self._obs.clear()
                self._obs.extend(shifted)
                self._obs.extend(cands)
                self._epoch += 1
                self.steps += 1
                fit = self._fit()
                if fit is None:
                    fit = FitResult(cal.stepped(shift), 0.0, len(self._obs), 0, 0.0)
                return replace(fit, stepped=True)
            self._pending = _Pending()
        self._obs.append(ob)
        if len(self._obs) < self.window_threshold:
            return None
        return self._fit()

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
        return fit_observations(
            self._obs,
            epoch=self._epoch,
            error_floor_ns=self.error_floor_ns,
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
