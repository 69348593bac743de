"""Single-shot and periodic waits on any clock (GStreamer's ``GstClockID``).

A :class:`ClockId` holds a target time *in its clock's time* (and an interval if periodic).

* :meth:`ClockId.wait` blocks until the clock reaches the target and returns
  ``(result, jitter_ns)``; :meth:`ClockId.wait_async` is the asyncio form (``await
  id.wait_async()``) or, given a callback, calls ``callback(id, result, jitter_ns)`` when the
  target is reached (every period for a periodic id, until it is unscheduled).
* ``jitter_ns`` = the clock's time when the wait ended − the target: ≥ 0 for OK/EARLY,
  negative for an UNSCHEDULED wait that was woken before its target.
* Results: ``OK`` (waited, then reached), ``EARLY`` (GStreamer's meaning: the target had
  already passed when the wait was started, so it returned at once; jitter says how late),
  ``UNSCHEDULED`` (:meth:`ClockId.unschedule` was called, from any thread).
* An unscheduled id cannot be used again: every later wait returns UNSCHEDULED.
* A periodic id advances by its interval each time a wait on it completes (OK or EARLY).

**How waiting works on an arbitrary clock.** Waiters sleep on a ``threading.Condition`` (or an
``asyncio`` timer), both timed on CLOCK_MONOTONIC, for the *remaining* time, then re-read the
clock and sleep again if the target is not reached yet, so a clock that runs slightly slower
than MONOTONIC (a PHC) is never returned early. A clock may provide
``remaining_ns(target) -> (now, base_ns_to_sleep)`` (the slaved clock does: it converts the
target to its base clock with the calibration's ``to_internal``) and
``add_calibration_listener`` / ``remove_calibration_listener``: every calibration change wakes
pending waiters, which recompute their deadline (re-arm).

The callback form runs the callback from a task in the caller's event loop when there is one,
otherwise from a helper thread (one per registration), like GstSystemClock's async thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Callable
from typing import Any

from netclock.calibration import Calibration
from netclock.clock import Clock, ClockError

__all__ = ["ClockId", "WaitResult", "new_periodic_id", "new_single_shot_id"]

NS_PER_S = 1_000_000_000
#: Shortest sleep; below it the waiter just re-reads the clock.
_MIN_SLEEP_NS = 5_000


class WaitResult(enum.Enum):
    OK = "ok"
    EARLY = "early"
    UNSCHEDULED = "unscheduled"


WaitCallback = Callable[["ClockId", WaitResult, int], Any]


def _remaining(clock: Clock, target: int) -> tuple[int, int]:
    f = getattr(clock, "remaining_ns", None)
    if f is not None:
        now, rem = f(target)
        return int(now), int(rem)
    now = clock.now_ns()
    return now, target - now


class ClockId:
    """A single-shot (``interval_ns`` None) or periodic wait target on ``clock``."""

    def __init__(self, clock: Clock, time_ns: int, interval_ns: int | None = None) -> None:
        if isinstance(time_ns, bool) or not isinstance(time_ns, int):
            raise TypeError("time_ns must be int nanoseconds")
        if interval_ns is not None and interval_ns <= 0:
            raise ValueError(f"periodic interval {interval_ns} must be > 0")
        self._clock = clock
        self._target = time_ns
        self._interval = interval_ns
        self._cond = threading.Condition()
        self._unscheduled = False
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._callback_registered = False
        self.wakeups = 0  # how many times waiters were woken by a recalibration

    def __repr__(self) -> str:
        kind = "single" if self._interval is None else f"periodic/{self._interval}"
        return f"ClockId({self._clock!r}, {self._target}, {kind})"

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def time_ns(self) -> int:
        """The next target time (advances for periodic ids)."""
        with self._cond:
            return self._target

    @property
    def interval_ns(self) -> int | None:
        return self._interval

    @property
    def unscheduled(self) -> bool:
        return self._unscheduled

    # -- control ------------------------------------------------------------------------------
    def unschedule(self) -> None:
        """Wake every waiter with UNSCHEDULED; the id cannot be waited on again."""
        with self._cond:
            self._unscheduled = True
        self._wake_all()

    def _wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()
            waiters = list(self._async_waiters)
        for loop, ev in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(ev.set)

    def _on_recalibrated(self, _cal: Calibration) -> None:
        self.wakeups += 1
        self._wake_all()

    def _subscribe(self) -> None:
        add = getattr(self._clock, "add_calibration_listener", None)
        if add is not None:
            add(self._on_recalibrated)

    def _unsubscribe(self) -> None:
        rm = getattr(self._clock, "remove_calibration_listener", None)
        if rm is not None:
            rm(self._on_recalibrated)

    def _advance(self, target: int) -> None:
        """After a completed wait on ``target``: move a periodic id on (once per occurrence)."""
        if self._interval is not None:
            with self._cond:
                if self._target == target:
                    self._target = target + self._interval

    # -- blocking -----------------------------------------------------------------------------
    def wait(self) -> tuple[WaitResult, int]:
        """Block until the target; returns (result, jitter_ns)."""
        with self._cond:
            target, unscheduled = self._target, self._unscheduled
        if unscheduled:
            return WaitResult.UNSCHEDULED, self._clock.now_ns() - target
        now, rem = _remaining(self._clock, target)
        if now >= target:
            self._advance(target)
            return WaitResult.EARLY, now - target
        self._subscribe()
        try:
            with self._cond:
                while True:
                    if self._unscheduled:
                        result = WaitResult.UNSCHEDULED
                        now = self._clock.now_ns()
                        break
                    now, rem = _remaining(self._clock, target)
                    if now >= target:
                        result = WaitResult.OK
                        break
                    self._cond.wait(max(rem, _MIN_SLEEP_NS) / NS_PER_S)
        finally:
            self._unsubscribe()
        if result is WaitResult.OK:
            self._advance(target)
        return result, now - target

    # -- asyncio ------------------------------------------------------------------------------
    def wait_async(self, callback: WaitCallback | None = None) -> Any:
        """``await id.wait_async()`` → (result, jitter_ns); or ``wait_async(cb)``.

        With a callback, returns the ``asyncio.Task`` (inside a running loop) or the helper
        ``threading.Thread`` (no loop) that calls ``cb(id, result, jitter_ns)``; a periodic id
        calls it every period until unscheduled. Only one callback registration per id.
        """
        if callback is None:
            return self._wait_coro()
        with self._cond:
            if self._callback_registered:
                raise ClockError(f"{self!r} already has an async callback registered")
            self._callback_registered = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            return loop.create_task(self._callback_coro(callback))
        t = threading.Thread(
            target=self._callback_thread, args=(callback,), name="clockid-async", daemon=True
        )
        t.start()
        return t

    async def _callback_coro(self, callback: WaitCallback) -> None:
        while True:
            result, jitter = await self._wait_coro()
            callback(self, result, jitter)
            if self._interval is None or result is WaitResult.UNSCHEDULED:
                return

    def _callback_thread(self, callback: WaitCallback) -> None:
        while True:
            result, jitter = self.wait()
            callback(self, result, jitter)
            if self._interval is None or result is WaitResult.UNSCHEDULED:
                return

    async def _wait_coro(self) -> tuple[WaitResult, int]:
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()
        entry = (loop, ev)
        with self._cond:
            target, unscheduled = self._target, self._unscheduled
            if not unscheduled:
                self._async_waiters.add(entry)
        if unscheduled:
            return WaitResult.UNSCHEDULED, self._clock.now_ns() - target
        self._subscribe()
        first = True
        try:
            while True:
                ev.clear()  # before reading: a wake-up scheduled from now on is not lost
                if self._unscheduled:
                    result = WaitResult.UNSCHEDULED
                    now = self._clock.now_ns()
                    break
                now, rem = _remaining(self._clock, target)
                if now >= target:
                    result = WaitResult.EARLY if first else WaitResult.OK
                    break
                first = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), max(rem, _MIN_SLEEP_NS) / NS_PER_S)
        finally:
            with self._cond:
                self._async_waiters.discard(entry)
            self._unsubscribe()
        if result is not WaitResult.UNSCHEDULED:
            self._advance(target)
        return result, now - target


def new_single_shot_id(clock: Clock, time_ns: int) -> ClockId:
    """``gst_clock_new_single_shot_id``."""
    return ClockId(clock, time_ns)


def new_periodic_id(clock: Clock, start_ns: int, interval_ns: int) -> ClockId:
    """``gst_clock_new_periodic_id``: first at ``start_ns``, then every ``interval_ns``."""
    return ClockId(clock, start_ns, interval_ns)
