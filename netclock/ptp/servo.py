"""Servo path: port Measurements → pre-filter → WindowedCalibration (local → PTP ns). Pure.

The port already filters the mean path delay (median + thresholds, :class:`DelayFilter`). Here
each Measurement becomes one calibration observation ``(internal=t2, external=t1 + c + delay)``
after an optional moving median over the offset (``offset_median`` samples; 1 = off) and a
delay gate (a measurement whose raw delay exceeds ``max_delay_ns`` is skipped). Once a first
fit exists, the least queued Sync of a group of at least ``FLOOR_MIN_GROUP`` (a lone Sync
carries its own queueing excess) takes its path delay from the per-direction delay floors
(:class:`DirectionFloors`: the least delay of as many Syncs and exchanges as the group held, at
most ``floor_length``; 0 = off) through that fit; with E2E exchanges and the floors on, an
automatic group (``sync_select=0``) holds at least ``FLOOR_MIN_GROUP`` Syncs at any Sync rate.
The result is the calibration the daemon publishes, plus the per-sample figures ptp4l prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netclock.calibration import Calibration, FitResult, WindowedCalibration
from netclock.ptp.actions import Measurement
from netclock.ptp.filters import DirectionFloors, FlooredSince, MedianFilter
from netclock.time import NS_PER_S

#: the delay floors serve only the least queued Sync of a group at least this large
FLOOR_MIN_GROUP = 4


@dataclass(frozen=True, slots=True)
class ServoSample:
    """One processed measurement. ``offset_ns``: master time minus the published time at t2
    (before this observation was added; 0 until the first fit). ``freq_ppb``: fitted rate − 1."""

    internal: int
    external: int
    offset_ns: int
    path_delay_ns: int
    freq_ppb: float
    fit: FitResult | None


class PtpServo:
    def __init__(
        self,
        window_size: int = 16,
        window_threshold: int = 4,
        offset_median: int = 1,
        max_delay_ns: int = 100_000_000,
        window_ns: int | None = 32 * 1_000_000_000,
        max_window_size: int = 1024,
        step_threshold_ns: int = 1_000_000,
        sync_select: int = 0,
        select_span_ns: int = 500_000_000,
        floor_length: int = 64,
    ) -> None:
        """``window_ns``: when set, the window follows the measurement rate so that it spans
        about this much time (between ``window_size`` and ``max_window_size`` samples); None
        keeps ``window_size`` fixed. ``sync_select``: of every N consecutive measurements only
        the one whose Sync arrived earliest relative to the current calibration (the least
        queued) goes into the fit (1 = all; needs a first fit; 0 = auto: groups spanning
        ``select_span_ns`` at the measured Sync rate). ``step_threshold_ns``:
        disagreement that, confirmed over
        ~4 s, is taken as a step of the master's time (0 = never step)."""
        self.calibration = WindowedCalibration(
            window_size, window_threshold, step_threshold_ns=step_threshold_ns
        )
        self.offset_filter = MedianFilter(offset_median)
        self.max_delay_ns = max_delay_ns
        self.window_ns = window_ns
        self.min_window_size = window_size
        self.max_window_size = max_window_size
        self.skipped = 0
        self._last_t2: int | None = None
        #: consecutive samples far from the published calibration (watchdog)
        self._far = 0
        self.resets = 0
        #: a fitted |rate - 1| above this is impossible for a real oscillator pair: refit
        self.max_rate_ppb = 1_000_000.0
        self._gaps = MedianFilter(15)
        self.sync_select = sync_select
        self.select_span_ns = select_span_ns
        self._auto_select = 1
        #: (queueing proxy, internal, external, master send time t1 + c)
        self._group: list[tuple[int, int, int, int]] = []
        self.floor_length = floor_length
        self.floors = DirectionFloors(max(floor_length, 1))
        self.floor_cut = FlooredSince()

    def configure(
        self,
        *,
        window_size: int | None = None,
        window_threshold: int | None = None,
        offset_median: int | None = None,
        max_delay_ns: int | None = None,
        window_ns: int | None = None,
        sync_select: int | None = None,
        floor_length: int | None = None,
    ) -> None:
        """Change any parameter while running (``window_ns=0`` turns the adaptive window off,
        ``floor_length=0`` the delay floors)."""
        if floor_length is not None:
            if floor_length < 0:
                raise ValueError("floor_length must be >= 0 (0 = off)")
            self.floor_length = floor_length
            self.floors = DirectionFloors(max(floor_length, 1))
        if window_size is not None:
            self.min_window_size = window_size
        if window_ns is not None:
            self.window_ns = window_ns or None
        if sync_select is not None:
            if sync_select < 0:
                raise ValueError("sync_select must be >= 0 (0 = auto)")
            self.sync_select = sync_select
        self.calibration.set_window(window_size, window_threshold)
        if offset_median is not None:
            self.offset_filter.set_length(offset_median)
        if max_delay_ns is not None:
            self.max_delay_ns = max_delay_ns

    def reset(self) -> None:
        self.calibration.reset()
        self.offset_filter.reset()
        self.floors.reset()
        self._group = []
        self.floor_cut.reset()

    @property
    def published(self) -> Calibration | None:
        return self.calibration.calibration

    def sample(self, m: Measurement) -> ServoSample | None:
        if m.raw_delay > self.max_delay_ns or m.delay > self.max_delay_ns:
            self.skipped += 1
            return None
        internal = m.t2
        self._adapt_window(internal)
        observed = m.t1 + m.correction + m.delay  # master time at t2
        self.floors.add_sync(m.t2, m.t1 + m.correction)
        if m.t3 or m.t4:
            self.floors.add_exchange(m.t3, m.t4 - m.resp_correction)
        off = self.offset_filter.sample(observed - internal)
        external = internal + off
        cal = self.calibration.calibration
        offset_ns = observed - cal.to_external(internal) if cal is not None else 0
        # Watchdog: a calibration that every new sample disagrees with (far beyond the step
        # threshold, for longer than a step takes to confirm) was fitted to bad data, e.g. a
        # first window holding reordered Syncs. Start over rather than wait for a step that
        # can never confirm.
        thr = self.calibration.step_threshold_ns
        self._far = self._far + 1 if cal is not None and thr and abs(offset_ns) > thr else 0
        if self._far > 2 * self.calibration.step_confirm + 4:
            self._restart()
            cal = None
        # The Sync path's own noise is not observable per sample, so every observation gets
        # the same uncertainty (0: plain least squares). Per-sample errors derived from the
        # filtered delay made the weighted fit lean on a handful of points (seen in the
        # simulator under exponential jitter: slope errors of ~9 sigma).
        fit = None
        select = self.sync_select or self._auto_select
        if select <= 1 or cal is None:
            self._group = []
            fit = self.calibration.add_observation(internal, external, 0)
        else:
            # queueing proxy: how late this Sync arrived against the current calibration
            self._group.append(
                (cal.to_external(internal) - observed, internal, external, m.t1 + m.correction)
            )
            if len(self._group) >= select:
                _, i, e, sent = min(self._group)
                self._group = []
                if select >= FLOOR_MIN_GROUP:
                    floored = self._floored(cal, sent, select)
                    if floored is not None:
                        e = floored
                        cut = self.floor_cut.note(self.calibration.epoch, i,
                                                self.calibration.window_threshold)
                        if cut is not None:
                            self.calibration.discard_before(cut)
                fit = self.calibration.add_observation(i, e, 0)
        cal = self.calibration.calibration
        if cal is not None and abs(cal.rate_ppb()) > self.max_rate_ppb:
            self._restart()
            cal, fit = None, None
        freq = cal.rate_ppb() if cal is not None else 0.0
        return ServoSample(internal, external, offset_ns, m.delay, freq, fit)


    def _floored(self, cal: Calibration | None, sent: int, group: int) -> int | None:
        """Master time at a Sync's arrival: its ``sent`` time (t1 + c) plus the delay floors'
        path delay through ``cal``; None when there is none (no fit, floors off or not ready:
        the observation keeps the port's filtered delay). The floors are taken over the
        ``group`` Syncs the observed one was the least queued of and as many exchanges (the
        same order statistic each way; at most ``floor_length``)."""
        if cal is None or not self.floor_length:
            return None
        delay = self.floors.delay(cal.to_external, min(group, self.floor_length))
        return None if delay is None else sent + delay

    def _restart(self) -> None:
        self.resets += 1
        self._far = 0
        self.floors.reset()
        self._group = []
        self.floor_cut.reset()
        self.calibration.reset()
        self.offset_filter.reset()

    def _adapt_window(self, t2: int) -> None:
        last, self._last_t2 = self._last_t2, t2
        if last is None or t2 <= last:
            return
        gap = self._gaps.sample(t2 - last)
        select = min(max(self.select_span_ns // max(gap, 1), 1), 16)
        if self.floor_length and self.floors.ready():
            # Below ~8 Sync/s a span holds too few Syncs for the floors; a lone Sync with the
            # port's filtered delay carries its own queueing against a delay filtered another
            # way (µs of error at 1 Sync/s under a long-tailed delay law, where floored groups
            # keep ~0.1 us: tests/unit/ptp/test_servo.py): groups are never smaller than the
            # floors serve.
            select = max(select, FLOOR_MIN_GROUP)
        self._auto_select = select
        per_obs = gap * (self.sync_select or self._auto_select)
        # a step must persist ~4 s before it is believed (delay spikes last ~1 s)
        confirm = min(max(4 * NS_PER_S // max(per_obs, 1), 3), 64)
        if confirm != self.calibration.step_confirm:
            self.calibration.configure(step_confirm=confirm)
        if self.window_ns is None:
            return
        want = min(max(self.window_ns // max(gap, 1), self.min_window_size), self.max_window_size)
        size = self.calibration.window_size
        if abs(want - size) * 4 > size:
            thr = min(self.calibration.window_threshold, want)
            self.calibration.configure(window_threshold=thr, window_size=want)


class OffsetStats:
    """Accumulates offsets for a ptp4l-style summary line (rms, max, mean)."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def add(self, offset_ns: int) -> None:
        self.values.append(offset_ns)

    def summary(self) -> tuple[float, int] | None:
        """(rms, max |offset|) and reset, or None when empty."""
        if not self.values:
            return None
        rms = math.sqrt(sum(v * v for v in self.values) / len(self.values))
        mx = max(abs(v) for v in self.values)
        self.values = []
        return rms, mx
