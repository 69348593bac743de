"""A clock slaved to a master clock by periodic sampling (GStreamer's ``gst_clock_set_master``).

:class:`SlavedClock` runs on a *base* clock (CLOCK_MONOTONIC by default: its internal time,
``gst_clock_get_internal_time``). When a master is attached it samples it every ``timeout_ns``
(100 ms, GStreamer's default): each sample is the tightest of a few brackets
``base, master, base``; the observation is (bracket midpoint, master reading, half the bracket
width) and goes into a :class:`~netclock.calibration.WindowedCalibration` (window size and
threshold configurable at run time). :meth:`SlavedClock.now_ns` returns the calibrated time
through a monotonic hold (never backwards within an epoch; a new master or a detected step of
the master starts a new epoch).

Sampling runs on a background **thread** by default, because the clock must keep tracking
whether or not its user runs an event loop (capture code often uses plain threads) and a
sample is only a handful of non-blocking clock reads. A program that already runs asyncio can
instead pass ``start_thread=False`` to :meth:`SlavedClock.set_master` and run
:meth:`SlavedClock.run_sampling` as a task; both paths share :meth:`SlavedClock.sample_once`.

**Holdover.** ``set_master(None)`` stops sampling and keeps the last calibration (as GStreamer
does). :meth:`SlavedClock.error_bound_ns` is then
``last_error + ceil(holdover_rate_ppb * elapsed / 1e9)``, where ``last_error`` is the residual
RMS of the last fit plus the half-width of the last bracket, ``elapsed`` is the base time since
the last observation, and ``holdover_rate_ppb`` (default 1000 ppb = 1 µs per second) is the
assumed wander of the base oscillator against the master; it is configurable. The same bound
applies while synced, where ``elapsed`` is at most about one sampling interval.

**Waits.** A target in the slaved clock's time is converted to base time with the calibration's
``to_internal`` (:meth:`SlavedClock.remaining_ns`); listeners registered with
:meth:`SlavedClock.add_calibration_listener` are called after every calibration change so that
pending waits (:mod:`netclock.platform.waits`) re-arm.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from netclock.calibration import Calibration, FitResult, WindowedCalibration
from netclock.clock import Clock, ClockError, ClockFlags, HoldoverBound
from netclock.platform.clocks import CalibratedClock, monotonic

__all__ = ["DEFAULT_TIMEOUT_NS", "SlavedClock", "SlavedStatus"]

NS_PER_S = 1_000_000_000
#: GStreamer's default sampling interval (``GstClock:timeout``).
DEFAULT_TIMEOUT_NS = 100_000_000
DEFAULT_HOLDOVER_RATE_PPB = 1000

CalibrationListener = Callable[[Calibration], None]


@dataclass(frozen=True, slots=True)
class SlavedStatus:
    calibration: Calibration
    #: A master is attached.
    slaved: bool
    #: The calibration comes from a fit (not the initial identity or a manual one).
    synced: bool
    #: Calibrated but no master attached: the calibration is extrapolated.
    holdover: bool
    samples: int
    sample_errors: int
    last_fit: FitResult | None
    last_update_internal: int | None
    error_bound_ns: int | None


class SlavedClock:
    """A ``CAN_SET_MASTER`` clock: base clock + calibration fitted to a master's readings."""

    def __init__(
        self,
        base: Clock | None = None,
        *,
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
        window_size: int = 32,
        window_threshold: int = 4,
        holdover_rate_ppb: int = DEFAULT_HOLDOVER_RATE_PPB,
        brackets_per_sample: int = 3,
        name: str = "slaved",
    ) -> None:
        self._base: Clock = base if base is not None else monotonic()
        self.name = name
        self._lock = threading.Lock()
        self._win = WindowedCalibration(window_size, window_threshold)
        self._out = CalibratedClock(self._base, flags=self.flags, name=name)
        self._epoch = 0
        self._win_epoch = self._win.epoch
        self._new_master = False
        self._synced = False
        self._synced_event = threading.Event()
        self._master: Clock | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._wake = threading.Event()
        self._bound: HoldoverBound | None = None
        self._last_fit: FitResult | None = None
        self._samples = 0
        self._sample_errors = 0
        self.timeout_ns = DEFAULT_TIMEOUT_NS
        self.holdover_rate_ppb = DEFAULT_HOLDOVER_RATE_PPB
        self.brackets_per_sample = 3
        self.configure(
            timeout_ns=timeout_ns,
            holdover_rate_ppb=holdover_rate_ppb,
            brackets_per_sample=brackets_per_sample,
        )

    def __repr__(self) -> str:
        return f"SlavedClock({self.name!r}, base={self._base!r}, master={self._master!r})"

    # -- Clock interface ----------------------------------------------------------------------
    @property
    def flags(self) -> ClockFlags:
        return ClockFlags.CAN_BE_MASTER | ClockFlags.CAN_SET_MASTER

    @property
    def resolution_ns(self) -> int:
        return self._base.resolution_ns

    def now_ns(self) -> int:
        return self._out.now_ns()

    def internal_now_ns(self) -> int:
        """The base clock's time (``gst_clock_get_internal_time``)."""
        return self._base.now_ns()

    @property
    def base(self) -> Clock:
        return self._base

    # -- configuration ------------------------------------------------------------------------
    def configure(
        self,
        *,
        timeout_ns: int | None = None,
        window_size: int | None = None,
        window_threshold: int | None = None,
        holdover_rate_ppb: int | None = None,
        brackets_per_sample: int | None = None,
    ) -> None:
        """Change tuning at run time (takes effect at the next sample)."""
        if timeout_ns is not None and not 1_000 <= timeout_ns <= 3600 * NS_PER_S:
            raise ValueError(f"timeout_ns {timeout_ns} outside 1 µs..1 h")
        if holdover_rate_ppb is not None and not 0 <= holdover_rate_ppb <= 10**6:
            raise ValueError(f"holdover_rate_ppb {holdover_rate_ppb} outside 0..10^6")
        if brackets_per_sample is not None and not 1 <= brackets_per_sample <= 64:
            raise ValueError(f"brackets_per_sample {brackets_per_sample} outside 1..64")
        with self._lock:
            if window_size is not None or window_threshold is not None:
                self._win.set_window(window_size, window_threshold)
            if timeout_ns is not None:
                self.timeout_ns = timeout_ns
            if holdover_rate_ppb is not None:
                self.holdover_rate_ppb = holdover_rate_ppb
                if self._bound is not None:
                    self._bound = replace(self._bound, rate_ppb=holdover_rate_ppb)
            if brackets_per_sample is not None:
                self.brackets_per_sample = brackets_per_sample
        if timeout_ns is not None:
            self._wake.set()  # a sleeping sampler picks up the new interval now

    @property
    def window_size(self) -> int:
        return self._win.window_size

    @property
    def window_threshold(self) -> int:
        return self._win.window_threshold

    # -- calibration --------------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration:
        return self._out.calibration

    def set_calibration(self, calibration: Calibration) -> None:
        """Set the calibration by hand (``gst_clock_set_calibration``); a new hold epoch."""
        with self._lock:
            self._epoch = max(self._epoch, calibration.epoch) + 1
            cal = replace(calibration, epoch=self._epoch)
            self._out.set_calibration(cal, new_epoch=True, notify=False)
            self._synced = False
        self._out.notify(cal)

    def add_calibration_listener(self, listener: CalibrationListener) -> None:
        self._out.add_calibration_listener(listener)

    def remove_calibration_listener(self, listener: CalibrationListener) -> None:
        self._out.remove_calibration_listener(listener)

    def remaining_ns(self, target_ns: int) -> tuple[int, int]:
        """(now in this clock, base-clock ns until ``target_ns``) for waits."""
        return self._out.remaining_ns(target_ns)

    # -- master -------------------------------------------------------------------------------
    @property
    def master(self) -> Clock | None:
        return self._master

    def set_master(self, master: Clock | None, *, start_thread: bool = True) -> bool:
        """Slave to ``master`` (or detach with None: holdover). Returns True (CAN_SET_MASTER).

        A different master restarts the observation window; the old calibration stays in use
        until the first fit from the new master (which starts a new epoch).
        """
        if master is self:
            raise ValueError("a clock cannot be its own master")
        self._stop_thread()
        with self._lock:
            changed = master is not self._master
            self._master = master
            self._generation += 1
            gen = self._generation
            if master is not None and changed:
                self._synced_event.clear()
                self._win.reset()
                self._win_epoch = self._win.epoch
                self._new_master = True
        if master is not None and start_thread:
            stop = threading.Event()
            t = threading.Thread(
                target=self._run_thread, args=(gen, stop), name=f"{self.name}-sampler", daemon=True
            )
            self._stop, self._thread = stop, t
            t.start()
        return True

    def close(self) -> None:
        """Detach the master and stop sampling."""
        self.set_master(None)

    def _stop_thread(self) -> None:
        stop, t = self._stop, self._thread
        self._stop = self._thread = None
        if stop is not None:
            stop.set()
            self._wake.set()
        if t is not None and t is not threading.current_thread():
            t.join()

    def _run_thread(self, gen: int, stop: threading.Event) -> None:
        while not stop.is_set() and gen == self._generation:
            with contextlib.suppress(ClockError):
                self.sample_once()
            self._wake.wait(self.timeout_ns / NS_PER_S)
            self._wake.clear()

    async def run_sampling(self) -> None:
        """Sample the master every ``timeout_ns`` until it is detached or changed (asyncio).

        Use with ``set_master(master, start_thread=False)``.
        """
        gen = self._generation
        while self._master is not None and gen == self._generation:
            with contextlib.suppress(ClockError):
                self.sample_once()
            await asyncio.sleep(self.timeout_ns / NS_PER_S)

    def _bracket(self, master: Clock) -> tuple[int, int, int]:
        """Tightest of ``brackets_per_sample`` (internal midpoint, master, half width)."""
        read_base, read_master = self._base.now_ns, master.now_ns
        best: tuple[int, int, int] | None = None
        for _ in range(self.brackets_per_sample):
            t1 = read_base()
            m = read_master()
            t2 = read_base()
            w = t2 - t1
            if best is None or w < best[2]:
                best = (t1, m, w)
        assert best is not None
        t1, m, w = best
        return t1 + w // 2, m, (w + 1) // 2

    def sample_once(self) -> FitResult | None:
        """Take one sample of the master and refit. Returns the fit (None: not enough data)."""
        with self._lock:
            master, gen = self._master, self._generation
        if master is None:
            raise ClockError("no master clock to sample")
        try:
            internal, external, err = self._bracket(master)
        except (ClockError, OSError) as e:
            with self._lock:
                self._sample_errors += 1
            if isinstance(e, ClockError):
                raise
            raise ClockError(f"sampling master {master!r} failed: {e}") from e
        err += master.resolution_ns // 2
        with self._lock:
            if gen != self._generation:
                return None  # the master changed while we sampled
            try:
                fit = self._win.add_observation(internal, external, err)
            except ValueError:  # a concurrent sample got in first (internal not advancing)
                return None
            self._samples += 1
            if fit is None:
                return None
            new_epoch = self._new_master or self._win.epoch != self._win_epoch
            if new_epoch:
                self._epoch += 1
                self._new_master = False
                self._win_epoch = self._win.epoch
            cal = replace(fit.calibration, epoch=self._epoch)
            self._out.set_calibration(cal, new_epoch=new_epoch, notify=False)
            self._synced = True
            self._synced_event.set()
            self._last_fit = fit
            base_err = math.ceil(fit.residual_rms_ns) + err
            self._bound = HoldoverBound(base_err, internal, self.holdover_rate_ppb)
        self._out.notify(cal)
        return fit

    def wait_for_sync(self, timeout_s: float | None = None) -> bool:
        """Block until the current master's first fit (``gst_clock_wait_for_sync``)."""
        return self._synced_event.wait(timeout_s)

    # -- status -------------------------------------------------------------------------------
    def error_bound_ns(self, internal_now: int | None = None) -> int | None:
        """Error bound at base time ``internal_now`` (default: now); None before the first fit."""
        with self._lock:
            bound = self._bound
        if bound is None:
            return None
        return bound.bound(self._base.now_ns() if internal_now is None else internal_now)

    def status(self, internal_now: int | None = None) -> SlavedStatus:
        now = self._base.now_ns() if internal_now is None else internal_now
        with self._lock:
            bound = self._bound
            return SlavedStatus(
                calibration=self._out.calibration,
                slaved=self._master is not None,
                synced=self._synced,
                holdover=self._master is None and self._synced,
                samples=self._samples,
                sample_errors=self._sample_errors,
                last_fit=self._last_fit,
                last_update_internal=None if bound is None else bound.since_internal,
                error_bound_ns=None if bound is None else bound.bound(now),
            )
