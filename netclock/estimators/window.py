"""netclock's estimator: :class:`~netclock.calibration.WindowedCalibration` fed two-way samples.

Pure module. Each exchange becomes one observation: the local midpoint ``(t2 + t3) / 2``, the
master midpoint ``(t1 + t4) / 2`` and, as its error bound, half the measured round trip (the
offset of an exchange can be wrong by at most that much, whatever the path's asymmetry). The
windowed fit weights observations by how close their round trip is to the best in the window,
rejects residual outliers and detects master steps; see :mod:`netclock.calibration`.

Around the fit, two things driven by the measured round trips (RTT):

* **delay-spike rejection**: the RTT *excess* of an exchange is its RTT minus the smallest RTT
  seen over a long horizon (``min_horizon`` exchanges); the *typical* excess is that of the
  median RTT of the last ``window_size`` exchanges (rejected ones included, so a spike
  shorter than half the window cannot raise it). An exchange whose excess is above
  ``reject_k`` times the typical excess (and above ``reject_min_ns``) is not fed to the fit;
  the calibration simply keeps extrapolating. If exchanges keep being rejected for
  ``max_hold_ns`` of local time, or for more than half the window (the median then moves),
  the path has changed and they are accepted again.
* **adaptive weighting floor**: the fit's ``error_floor_ns`` (the error assumed for the
  best exchange in the window, which sets how sharply low-RTT exchanges are favoured)
  follows the measured jitter: ``floor_k`` times the median excess, which suits queueing
  delay (one-sided: the exchanges nearest the minimum RTT carry the least error). With
  ``floor_model`` it is raised when the offsets scatter independently of their RTT
  (symmetric noise, where favouring low RTTs only discards samples): the prediction
  residuals are regressed as ``resid² = s0² + k·excess²`` and the floor is at least
  ``floor_scale · sqrt(s0² / 4k)``.

Both only pass parameters to, or withhold observations from, ``WindowedCalibration``.
:func:`default_window_config` picks the window length for a sync interval; the constants are
the ones ``bench/estimators.py`` measured (see its docstring).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from netclock.calibration import Calibration, WindowedCalibration
from netclock.estimators.base import TwoWaySample

__all__ = ["WindowConfig", "WindowEstimator", "default_window_config"]


@dataclass(frozen=True, slots=True)
class WindowConfig:
    window_size: int = 128
    window_threshold: int = 4
    outlier_k: float = 4.0
    error_floor_ns: int = 50
    step_threshold_ns: int = 1_000_000
    step_confirm: int = 3
    floor_k: float = 0.25
    floor_model: bool = True
    floor_scale: float = 0.3
    reject_k: float = 8.0
    reject_min_ns: int = 2_000
    min_horizon: int = 512
    max_hold_ns: int = 60_000_000_000


def default_window_config(interval_s: float) -> WindowConfig:
    """The window for a sync interval: 128 exchanges, at least ~64 s of them."""
    size = max(128, min(1024, round(64.0 / interval_s)))
    return WindowConfig(window_size=size, min_horizon=4 * size)


def _median(v: deque[int]) -> int:
    s = sorted(v)
    return s[len(s) // 2]


class WindowEstimator:
    """netclock's windowed weighted regression (see the module docstring)."""

    name = "window"

    def __init__(self, config: WindowConfig | None = None) -> None:
        self.config = config if config is not None else WindowConfig()
        c = self.config
        self.wc = WindowedCalibration(
            c.window_size,
            c.window_threshold,
            outlier_k=c.outlier_k,
            error_floor_ns=c.error_floor_ns,
            step_threshold_ns=c.step_threshold_ns,
            step_confirm=c.step_confirm,
        )
        self._last_internal: int | None = None
        self._rtts: deque[int] = deque(maxlen=max(c.min_horizon, 1))
        self._recent: deque[int] = deque(maxlen=c.window_size)  # every RTT, for the median
        self._excess = 0  # this exchange's RTT above the horizon's minimum
        self._typical = 0  # the median RTT above that minimum
        self._hold_since: int | None = None
        self._resid: deque[tuple[int, int]] = deque(maxlen=c.window_size)  # (excess, resid)
        self.rejected = 0
        self.resets = 0

    @property
    def calibration(self) -> Calibration | None:
        return self.wc.calibration

    @property
    def epoch(self) -> int:
        return self.wc.epoch

    def _accept(self, rtt: int, now: int) -> bool:
        """Spike filter: False when the exchange's RTT is abnormally high."""
        c = self.config
        self._rtts.append(rtt)
        self._recent.append(rtt)
        lo = min(self._rtts)
        self._excess = rtt - lo
        self._typical = _median(self._recent) - lo
        if c.reject_k > 0.0 and len(self._recent) >= 8:
            limit = max(c.reject_k * self._typical, c.reject_min_ns)
            if self._excess > limit:
                if self._hold_since is None:
                    self._hold_since = now
                if now - self._hold_since < c.max_hold_ns:
                    self.rejected += 1
                    return False
                # Rejected for too long: the path changed. Start the RTT history afresh.
                self.resets += 1
                self._rtts.clear()
                self._rtts.append(rtt)
                self._recent.clear()
                self._recent.append(rtt)
                self._excess = self._typical = 0
        self._hold_since = None
        return True

    def update(self, sample: TwoWaySample, now: int) -> None:
        internal = sample.local_mid
        if self._last_internal is not None and internal <= self._last_internal:
            return  # reordered or duplicate exchange: the window needs advancing times
        rtt = max(sample.rtt_ns, 0)
        if not self._accept(rtt, now):
            return
        self._last_internal = internal
        cal = self.wc.calibration
        if cal is not None:
            self._resid.append((self._excess, sample.master_mid - cal.to_external(internal)))
        floor = self._floor()
        if floor is not None and floor != self.wc.error_floor_ns:
            self.wc.configure(error_floor_ns=floor)
        self.wc.add_observation(internal, sample.master_mid, rtt // 2)

    def _floor(self) -> int | None:
        """The weighting floor for the next fit (None: leave it)."""
        c = self.config
        if c.floor_k <= 0.0:
            return None
        # Queueing delay: the exchanges nearest the minimum RTT are the good ones; the floor
        # is a fraction of the typical excess, so the weights favour them sharply.
        floor = c.floor_k * self._typical / 2
        if c.floor_model and len(self._resid) >= 16:
            # But if the offsets scatter regardless of their RTT (symmetric noise, e.g. in
            # software timestamps), sharp weights only throw samples away. Model each
            # exchange's offset error as var = s0² + k·excess² (least squares of resid² on
            # excess²); weights 1/(s0² + k·excess²) mean floor² = s0² / (4k) in the fit's
            # half-RTT units. Take the flatter of the two weightings.
            xs = [float(e) * e for e, _ in self._resid]
            ys = [float(r) * r for _, r in self._resid]
            n = len(xs)
            mx, my = sum(xs) / n, sum(ys) / n
            sxx = sum((x - mx) ** 2 for x in xs)
            sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            k = sxy / sxx if sxx > 0.0 else 0.0
            s0 = max(my - k * mx, 0.0)
            model = c.floor_scale * math.sqrt(s0 / (4.0 * k)) if k > 0.0 else 1e9
            floor = max(floor, model)
        return min(max(round(floor), c.error_floor_ns), 10**9)

    def to_master(self, local_ns: int) -> int | None:
        cal = self.wc.calibration
        return None if cal is None else cal.to_external(local_ns)

    def rate_ppb(self) -> float | None:
        cal = self.wc.calibration
        return None if cal is None else cal.rate_ppb()
