"""The clock interface, and the pure arithmetic of calibrated (slaved) clocks.

Pure module: nothing here reads a clock. A clock is anything with ``now_ns() -> int``,
``flags`` and ``resolution_ns`` (the :class:`Clock` protocol); the implementations that read
the kernel live in :mod:`netclock.platform.clocks`, :mod:`netclock.platform.phc` and
:mod:`netclock.platform.slaved`.

Following GStreamer's ``GstClock``:

* :class:`ClockFlags` says what a clock can do: be the master of a pipeline/agent
  (``CAN_BE_MASTER``), be slaved to another clock (``CAN_SET_MASTER``), whether it is a
  hardware counter (``HARDWARE``, a PHC or sound card) or follows a network master (``NETWORK``).
* :class:`CalibratedTime` composes a base (internal) reading, passed in as an argument, with a
  :class:`~netclock.calibration.Calibration` and a :class:`~netclock.calibration.MonotonicHold`:
  the value ``gst_clock_get_time`` returns for a slaved clock.
* :class:`HoldoverBound` is the error bound of a calibration that is no longer updated:
  ``base_error + ceil(|rate_ppb| * elapsed / 1e9)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from netclock.calibration import Calibration, MonotonicHold

__all__ = [
    "CalibratedTime",
    "Clock",
    "ClockError",
    "ClockFlags",
    "HoldoverBound",
]

NS_PER_S = 1_000_000_000


class ClockError(RuntimeError):
    """A clock cannot be opened or read. ``path`` names the device when there is one."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ClockFlags(enum.Flag):
    """Capabilities of a clock (GStreamer's ``GstClockFlags``, trimmed to what netclock uses)."""

    NONE = 0
    #: May be selected as the master clock (the time every consumer follows).
    CAN_BE_MASTER = enum.auto()
    #: May be slaved to another clock with ``set_master`` (calibrated by sampling).
    CAN_SET_MASTER = enum.auto()
    #: Reads a hardware counter (PTP hardware clock, sound card).
    HARDWARE = enum.auto()
    #: Follows a network master (PTP, NTP).
    NETWORK = enum.auto()


@runtime_checkable
class Clock(Protocol):
    """A source of integer-nanosecond time.

    ``now_ns`` is the clock's *absolute time*: its origin depends on the clock (boot for
    MONOTONIC, 1970 for REALTIME/TAI/PHC, the master's origin for a slaved clock); only
    differences and the mapping to other clocks are meaningful.
    """

    def now_ns(self) -> int:
        """The current time in ns. Raises :class:`ClockError` if the clock cannot be read."""
        ...

    @property
    def flags(self) -> ClockFlags: ...

    @property
    def resolution_ns(self) -> int:
        """The smallest step of the clock in ns (≥ 1)."""
        ...


class CalibratedTime:
    """A calibration applied to base readings, never going backwards within an epoch.

    Not thread safe: the caller (e.g. the slaved clock) serialises ``read`` and ``set``.

    ``epoch`` in :meth:`read` is the *hold* epoch: it is bumped here whenever the calibration's
    own epoch changes or :meth:`set` is called with ``new_epoch=True`` (for example the first
    fit after a new master was attached), so a reader may jump backwards only at those points.
    """

    __slots__ = ("_cal", "_cal_epoch", "_hold", "_hold_epoch")

    def __init__(self, calibration: Calibration | None = None) -> None:
        self._cal = calibration if calibration is not None else Calibration()
        self._cal_epoch = self._cal.epoch
        self._hold = MonotonicHold()
        self._hold_epoch = 0

    @property
    def calibration(self) -> Calibration:
        return self._cal

    @property
    def hold_epoch(self) -> int:
        return self._hold_epoch

    @property
    def holds(self) -> int:
        """How many reads were held at the previous value (the calibration was behind)."""
        return self._hold.holds

    def set(self, calibration: Calibration, *, new_epoch: bool = False) -> None:
        if new_epoch or calibration.epoch != self._cal_epoch:
            self._hold_epoch += 1
        self._cal = calibration
        self._cal_epoch = calibration.epoch

    def read(self, internal_now: int) -> int:
        """The calibrated time at base reading ``internal_now`` (monotonic within an epoch)."""
        return self._hold.guard(self._cal.to_external(internal_now), self._hold_epoch)

    def raw(self, internal_now: int) -> int:
        """The calibrated time without the monotonic hold."""
        return self._cal.to_external(internal_now)


@dataclass(frozen=True, slots=True)
class HoldoverBound:
    """Error bound of a calibration that stopped being updated at ``since_internal``.

    ``bound(now) = base_error_ns + ceil(|rate_ppb| * (now - since_internal) / 1e9)``: the error
    known at the last update (residual of the fit plus half the sampling bracket) plus a
    linear growth at ``rate_ppb`` nanoseconds per second, the assumed wander of the local
    oscillator against the master (1000 ppb = 1 µs/s is a conservative default for a
    temperature-uncompensated crystal; a stable lab oscillator can use 10–100). Before
    ``since_internal`` the bound is just ``base_error_ns``.
    """

    base_error_ns: int
    since_internal: int
    rate_ppb: int

    def __post_init__(self) -> None:
        if self.base_error_ns < 0:
            raise ValueError("base_error_ns must be >= 0")

    def bound(self, internal_now: int) -> int:
        elapsed = max(0, internal_now - self.since_internal)
        growth = -((-abs(self.rate_ppb) * elapsed) // NS_PER_S)  # ceil division
        return self.base_error_ns + growth
