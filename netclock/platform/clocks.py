"""Kernel system clocks behind the :class:`netclock.clock.Clock` interface.

``SystemClock(SysClockId.MONOTONIC)`` and friends read ``clock_gettime`` through
``time.clock_gettime_ns`` and report ``clock_getres`` as their resolution. Nothing here sets or
adjusts a clock.

TAI: ``CLOCK_TAI`` is ``CLOCK_REALTIME`` plus the kernel's TAI offset, which only a time daemon
sets (ptp4l/phc2sys, chronyd with ``leapsectz``). Until then the offset is 0 and CLOCK_TAI reads
UTC. :attr:`SystemClock.kernel_tai_offset_s` measures the offset (TAI - REALTIME, whole
seconds) and :attr:`SystemClock.tai_offset_valid` says whether it is set; netclock reports it,
never fixes it.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable

from netclock.calibration import Calibration
from netclock.clock import CalibratedTime, Clock, ClockError, ClockFlags

__all__ = ["CalibratedClock", "SysClockId", "SystemClock", "kernel_tai_offset_s", "monotonic"]

NS_PER_S = 1_000_000_000


class SysClockId(enum.IntEnum):
    """The POSIX clock ids netclock reads (values from <linux/time.h>)."""

    REALTIME = time.CLOCK_REALTIME
    MONOTONIC = time.CLOCK_MONOTONIC
    MONOTONIC_RAW = time.CLOCK_MONOTONIC_RAW
    BOOTTIME = time.CLOCK_BOOTTIME
    TAI = time.CLOCK_TAI


_DESCRIPTIONS = {
    SysClockId.REALTIME: "UTC wall clock; stepped and slewed by time daemons",
    SysClockId.MONOTONIC: "since boot, excluding suspend; slewed (not stepped) by time daemons",
    SysClockId.MONOTONIC_RAW: "since boot, the raw oscillator: never slewed",
    SysClockId.BOOTTIME: "MONOTONIC including time spent suspended",
    SysClockId.TAI: "REALTIME + kernel TAI offset (0 until a daemon sets it)",
}


class SystemClock:
    """One of the kernel's system clocks. Thread safe (no state besides the id)."""

    __slots__ = ("_id", "_resolution_ns")

    def __init__(self, clock_id: SysClockId | int = SysClockId.MONOTONIC) -> None:
        try:
            self._id = SysClockId(clock_id)
        except ValueError:
            raise ClockError(f"unsupported system clock id {clock_id}") from None
        try:
            res = time.clock_getres(self._id)
            time.clock_gettime_ns(self._id)
        except OSError as e:
            raise ClockError(f"clock {self._id.name} cannot be read: {e}") from e
        self._resolution_ns = max(1, round(res * NS_PER_S))

    def __repr__(self) -> str:
        return f"SystemClock({self._id.name})"

    @property
    def name(self) -> str:
        return f"CLOCK_{self._id.name}"

    @property
    def clock_id(self) -> SysClockId:
        return self._id

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self._id]

    @property
    def flags(self) -> ClockFlags:
        return ClockFlags.CAN_BE_MASTER

    @property
    def resolution_ns(self) -> int:
        return self._resolution_ns

    def now_ns(self) -> int:
        return time.clock_gettime_ns(self._id)

    # -- TAI ------------------------------------------------------------------------------
    @property
    def kernel_tai_offset_s(self) -> int:
        """TAI - REALTIME in whole seconds as the kernel has it (0 = not set)."""
        return kernel_tai_offset_s()

    @property
    def tai_offset_valid(self) -> bool:
        """Whether CLOCK_TAI really is TAI (the kernel's offset has been set, i.e. ≠ 0)."""
        return self.kernel_tai_offset_s != 0


def kernel_tai_offset_s() -> int:
    """The kernel's TAI offset, measured as CLOCK_TAI - CLOCK_REALTIME (read-only).

    Both clocks are read between two reads of the other, so the difference is within a few
    µs of a whole number of seconds; it is rounded to the nearest second. (The same value is
    ``struct timex.tai`` from ``adjtimex`` with modes = 0; this avoids ctypes.)
    """
    r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    t = time.clock_gettime_ns(time.CLOCK_TAI)
    r2 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    diff = t - (r1 + r2) // 2
    return (diff + NS_PER_S // 2) // NS_PER_S


def monotonic() -> SystemClock:
    """The default base clock of netclock (CLOCK_MONOTONIC)."""
    return SystemClock(SysClockId.MONOTONIC)


class CalibratedClock:
    """A base clock seen through a calibration set from outside (never backwards per epoch).

    This is how a consumer turns a published calibration (MONOTONIC → network time) into a
    clock: ``CalibratedClock(monotonic(), cal, flags=CAN_BE_MASTER | NETWORK)``, updated with
    :meth:`set_calibration` whenever a new one is published. It is also the output stage of
    :class:`netclock.platform.slaved.SlavedClock`. Thread safe.

    For waits (:mod:`netclock.platform.waits`) it converts a target in its own time to base
    time with ``to_internal`` (:meth:`remaining_ns`) and calls the calibration listeners after
    every change so that pending waits re-arm.
    """

    __slots__ = ("_base", "_ct", "_flags", "_listeners", "_lock", "name")

    def __init__(
        self,
        base: Clock,
        calibration: Calibration | None = None,
        *,
        flags: ClockFlags = ClockFlags.CAN_BE_MASTER,
        name: str = "calibrated",
    ) -> None:
        self._base = base
        self._ct = CalibratedTime(calibration)
        self._flags = flags
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Calibration], object]] = []
        self.name = name

    def __repr__(self) -> str:
        return f"CalibratedClock({self.name!r}, base={self._base!r})"

    @property
    def flags(self) -> ClockFlags:
        return self._flags

    @property
    def resolution_ns(self) -> int:
        return self._base.resolution_ns

    @property
    def base(self) -> Clock:
        return self._base

    @property
    def calibration(self) -> Calibration:
        with self._lock:
            return self._ct.calibration

    @property
    def holds(self) -> int:
        """Reads that were held at the previous value (a recalibration was behind)."""
        with self._lock:
            return self._ct.holds

    def set_calibration(
        self, calibration: Calibration, *, new_epoch: bool = False, notify: bool = True
    ) -> None:
        """Apply a calibration; ``notify=False`` lets the caller call :meth:`notify` later."""
        with self._lock:
            self._ct.set(calibration, new_epoch=new_epoch)
        if notify:
            self.notify(calibration)

    def now_ns(self) -> int:
        internal = self._base.now_ns()
        with self._lock:
            return self._ct.read(internal)

    def remaining_ns(self, target_ns: int) -> tuple[int, int]:
        """(now in this clock, base-clock ns until ``target_ns``), for waits."""
        internal = self._base.now_ns()
        with self._lock:
            now = self._ct.read(internal)
            deadline = self._ct.calibration.to_internal(target_ns)
        return now, deadline - internal

    def add_calibration_listener(self, listener: Callable[[Calibration], object]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_calibration_listener(self, listener: Callable[[Calibration], object]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def notify(self, calibration: Calibration) -> None:
        """Call the listeners (outside any lock) with ``calibration``."""
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            cb(calibration)
