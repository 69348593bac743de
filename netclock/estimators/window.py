"""netclock's estimator: :class:`~netclock.calibration.WindowedCalibration` fed two-way samples.

Pure module. Each exchange becomes one observation: the local midpoint ``(t2 + t3) / 2``, the
master midpoint ``(t1 + t4) / 2`` and, as its error bound, half the measured round trip (the
offset of an exchange can be wrong by at most that much, whatever the path's asymmetry).

Everything else — the window sized by count and by time, the adaptive weighting floor, the
delay-spike hold that gives up after ``reject_hold_ns``, residual outliers, steps and lost-fit
recovery — lives in :class:`~netclock.calibration.WindowedCalibration`, so the daemon, the PTP
servo and the NTP client get exactly what ``bench/estimators.py`` measures. This adapter only
turns exchanges into observations and drops reordered ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from netclock.calibration import DEFAULT_WINDOW_SPAN_NS, Calibration, WindowedCalibration
from netclock.estimators.base import TwoWaySample

__all__ = ["WindowConfig", "WindowEstimator", "default_window_config"]


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """:class:`WindowedCalibration` parameters (same names and defaults, except the 64 s
    ``window_span_ns`` that the daemon's discipline also uses)."""

    window_size: int = 128
    window_threshold: int = 4
    window_span_ns: int = DEFAULT_WINDOW_SPAN_NS
    window_max: int = 1024
    outlier_k: float = 4.0
    error_floor_ns: int = 50
    floor_k: float = 0.25
    floor_scale: float = 0.3
    reject_k: float = 8.0
    reject_min_ns: int = 1_000
    reject_hold_ns: int = 60_000_000_000
    error_horizon: int = 0
    step_threshold_ns: int = 1_000_000
    step_confirm: int = 3
    lost_after: int = 0


def default_window_config(interval_s: float) -> WindowConfig:
    """The window for a sync interval: WindowedCalibration's defaults (128 exchanges, and at
    least 64 s of them up to 1024), whatever the interval."""
    del interval_s  # the time span does the scaling now
    return WindowConfig()


class WindowEstimator:
    """netclock's windowed weighted regression (see the module docstring)."""

    name = "window"

    def __init__(self, config: WindowConfig | None = None) -> None:
        self.config = config if config is not None else WindowConfig()
        kw = asdict(self.config)
        self.wc = WindowedCalibration(kw.pop("window_size"), kw.pop("window_threshold"), **kw)
        self._last_internal: int | None = None

    @property
    def calibration(self) -> Calibration | None:
        return self.wc.calibration

    @property
    def epoch(self) -> int:
        return self.wc.epoch

    @property
    def rejected(self) -> int:
        """Exchanges withheld as delay spikes."""
        return self.wc.rejected

    @property
    def resets(self) -> int:
        """Spike holds given up (the path changed)."""
        return self.wc.spike_resets

    def update(self, sample: TwoWaySample, now: int) -> None:
        del now  # the hold is timed on the observations' own local times
        internal = sample.local_mid
        if self._last_internal is not None and internal <= self._last_internal:
            return  # reordered or duplicate exchange: the window needs advancing times
        self._last_internal = internal
        self.wc.add_observation(internal, sample.master_mid, max(sample.rtt_ns, 0) // 2)

    def to_master(self, local_ns: int) -> int | None:
        cal = self.wc.calibration
        return None if cal is None else cal.to_external(local_ns)

    def rate_ppb(self) -> float | None:
        cal = self.wc.calibration
        return None if cal is None else cal.rate_ppb()
