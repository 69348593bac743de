"""linuxptp-equivalent estimator: ptp4l's PI servo steering a software clock.

Pure module. The reference behaves as ``ptp4l`` with ``time_stamping software`` and
``clock_servo pi`` (linuxptp pi.c, servo.c, clock.c, tsproc.c; read, not copied), except that
the clock it steers is a virtual clock layered on local monotonic time, never a kernel clock:

* gains from the sync interval T (s): ``kp = min(kp_scale * T^kp_exponent, kp_norm_max / T)``,
  ``ki = min(ki_scale * T^ki_exponent, ki_norm_max / T)`` with the software-timestamping
  scales ``kp_scale = 0.1``, ``ki_scale = 0.001``, exponents ``-0.3`` / ``0.4`` and norm
  maxima ``0.7`` / ``0.3`` (config.c defaults);
* first steps (pi.c): sample 0 is only remembered; later samples wait until at least
  ``0.016 / ki`` seconds (≤ 1000 s) separate them from sample 0 and then estimate the
  frequency from the two offsets; that update *jumps* (steps the clock by ``-offset`` and sets
  the frequency) when ``|offset| > first_step_threshold`` (20 µs) or a non-zero
  ``step_threshold`` is exceeded, else locks. From then on
  ``ppb = kp * offset + drift + ki * offset`` with ``drift += ki * offset`` unless the output
  was clamped to ``max_frequency`` (900000000 ppb); exceeding a non-zero ``step_threshold``
  restarts the servo;
* the offset is ``t2 - t1 - delay`` where ``delay`` is ptp4l's filtered mean path delay:
  the moving median of the last ``delay_filter_length`` (10) measurements
  ``((t2 - t1) + (t4 - t3)) / 2`` (``tsproc_mode filter``, ``delay_filter moving_median``);
  as in ptp4l a Sync is only used once a delay is known, so sample k uses the delays of
  samples before k;
* slave stamps t2, t3 are read on the steered clock, like ptp4l's stamps on the clock it
  disciplines; the servo's output is applied (``clockadj_set_freq(-ppb)``, and on a jump
  ``clockadj_step(-offset)``) at the time the sample is processed.

The clock: ``virtual(x) = ext0 + (x - int0) * (1 + freq_adj)``, re-anchored at each
adjustment, so it is continuous except at steps (each step bumps the epoch).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from netclock.estimators.base import TwoWaySample

__all__ = ["PiConfig", "PiEstimator", "pi_gains"]

_FREQ_EST_MARGIN = 0.001


@dataclass(frozen=True, slots=True)
class PiConfig:
    kp_scale: float = 0.1
    ki_scale: float = 0.001
    kp_exponent: float = -0.3
    ki_exponent: float = 0.4
    kp_norm_max: float = 0.7
    ki_norm_max: float = 0.3
    first_step_threshold_ns: int = 20_000
    step_threshold_ns: int = 0
    max_frequency_ppb: float = 900_000_000.0
    delay_filter_length: int = 10


def pi_gains(cfg: PiConfig, interval_s: float) -> tuple[float, float]:
    """(kp, ki) for a sync interval, as pi_sync_interval computes them."""
    kp = min(cfg.kp_scale * interval_s**cfg.kp_exponent, cfg.kp_norm_max / interval_s)
    ki = min(cfg.ki_scale * interval_s**cfg.ki_exponent, cfg.ki_norm_max / interval_s)
    return kp, ki


def _median(values: deque[int]) -> float:
    s = sorted(values)
    n = len(s)
    if n % 2:
        return float(s[n // 2])
    return (s[n // 2 - 1] + s[n // 2]) / 2


class PiEstimator:
    """PI servo on a virtual clock (see the module docstring)."""

    name = "pi"

    def __init__(self, interval_s: float = 1.0, config: PiConfig | None = None) -> None:
        if not interval_s > 0.0:
            raise ValueError("interval_s must be > 0")
        self.config = config if config is not None else PiConfig()
        self.kp, self.ki = pi_gains(self.config, interval_s)
        # Servo state (pi.c).
        self._count = 0
        self._offset0 = 0.0
        self._local0 = 0
        self.drift = 0.0
        self.last_ppb = 0.0
        self._first_update = True
        self.state = "unlocked"
        # Delay filter (tsproc + mmedian).
        self._delays: deque[int] = deque(maxlen=self.config.delay_filter_length)
        # The steered clock: virtual(x) = ext0 + (x - int0) * (1 + adj * 1e-9).
        self._int0: int | None = None
        self._ext0 = 0
        self._adj_ppb = 0.0
        self._epoch = 0
        self.steps = 0

    # -- the virtual clock --------------------------------------------------------------------
    def _virtual(self, x: int) -> int:
        if self._int0 is None:
            return x
        dx = x - self._int0
        return self._ext0 + dx + round(dx * self._adj_ppb * 1e-9)

    def _set_freq(self, now: int, adj_ppb: float) -> None:
        ext = self._virtual(now)
        self._int0, self._ext0, self._adj_ppb = now, ext, adj_ppb

    def _step(self, now: int, step_ns: int) -> None:
        ext = self._virtual(now)
        self._int0, self._ext0 = now, ext + step_ns
        self._epoch += 1
        self.steps += 1

    @property
    def epoch(self) -> int:
        return self._epoch

    def to_master(self, local_ns: int) -> int | None:
        """The steered clock; None until the servo first leaves ``unlocked`` (as ptp4l's port
        stays UNCALIBRATED until then, nobody should read it as master time)."""
        if self._first_update:
            return None
        return self._virtual(local_ns)

    def rate_ppb(self) -> float | None:
        return self._adj_ppb

    # -- the servo ------------------------------------------------------------------------------
    def _servo(self, offset: float, local_ts: int) -> tuple[str, float]:
        """pi_sample: returns (state, ppb)."""
        cfg = self.config
        ppb = self.last_ppb
        state = "unlocked"
        if self._count == 0:
            self._offset0, self._local0 = offset, local_ts
            self._count = 1
        elif self._count == 1:
            if self._local0 >= local_ts:
                self._count = 0
            else:
                localdiff = (local_ts - self._local0) / 1e9
                localdiff += localdiff * _FREQ_EST_MARGIN
                if localdiff >= min(0.016 / self.ki, 1000.0):
                    self.drift += (
                        (1e9 - self.drift) * (offset - self._offset0) / (local_ts - self._local0)
                    )
                    self.drift = max(-cfg.max_frequency_ppb, min(cfg.max_frequency_ppb, self.drift))
                    big = abs(offset)
                    if (
                        self._first_update
                        and cfg.first_step_threshold_ns
                        and big > cfg.first_step_threshold_ns
                    ) or (cfg.step_threshold_ns and big > cfg.step_threshold_ns):
                        state = "jump"
                    else:
                        state = "locked"
                    ppb = self.drift
                    self._count = 2
        else:
            if cfg.step_threshold_ns and abs(offset) > cfg.step_threshold_ns:
                self._count = 0
                state = "unlocked"
            else:
                ki_term = self.ki * offset
                ppb = self.kp * offset + self.drift + ki_term
                if ppb < -cfg.max_frequency_ppb:
                    ppb = -cfg.max_frequency_ppb
                elif ppb > cfg.max_frequency_ppb:
                    ppb = cfg.max_frequency_ppb
                else:
                    self.drift += ki_term
                state = "locked"
        self.last_ppb = ppb
        if state != "unlocked":
            self._first_update = False
        return state, ppb

    def update(self, sample: TwoWaySample, now: int) -> None:
        v2 = self._virtual(sample.t2)
        v3 = self._virtual(sample.t3)
        delay2 = (v2 - sample.t1) + (sample.t4 - v3)  # twice the path delay
        have_delay = bool(self._delays)
        if have_delay:
            offset = (v2 - sample.t1) - _median(self._delays) / 2
            self._apply(offset, v2, now)
        self._delays.append(delay2)

    def _apply(self, offset: float, local_ts: int, now: int) -> None:
        state, ppb = self._servo(offset, local_ts)
        self.state = state
        if state == "jump":
            self._set_freq(now, -ppb)
            self._step(now, -math.floor(offset + 0.5))
            # ptp4l resets the timestamp processor but keeps the delay filter (full=0).
        elif state == "locked":
            self._set_freq(now, -ppb)
