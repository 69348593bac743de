"""Clock selection among providers, and running time (GStreamer's pipeline clock model).

Pure module. Providers offer clocks with a priority; :class:`ClockSelector` picks the
available provider with the highest priority whose clock can be a master, and reports every
change as an event (sans-IO: the caller posts them, as ``GstPipeline`` posts
``GST_MESSAGE_NEW_CLOCK`` / ``GST_MESSAGE_CLOCK_LOST`` on its bus):

* :class:`NewClock` when a (different) provider becomes the selected one,
* :class:`ClockLost` when the selected provider is removed or becomes unavailable. Unlike
  GStreamer, which waits for the application to cycle the pipeline through PAUSED, the
  selector re-selects at once, so a ``ClockLost`` is followed by a ``NewClock`` when another
  provider is available (or by nothing, and :attr:`ClockSelector.selected` is ``None``).

Default priorities follow the clock study: network (PTP/NTP) > audio sink > hardware capture
> system monotonic. Ties are broken by registration order (first registered wins), so the
result never depends on dict or set ordering, and an equal-priority newcomer does not take
over from the selected provider.

:class:`RunningTime` implements ``running_time = clock_time - base_time``, including pause/
resume and keeping running time continuous across a clock change (the new base time is chosen
so that running time carries on from where it was on the old clock).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from netclock.clock import ClockFlags

__all__ = [
    "ClockLost",
    "ClockProvider",
    "ClockSelector",
    "LossReason",
    "NewClock",
    "Priority",
    "RunningTime",
    "SelectionEvent",
]

C = TypeVar("C")


class Priority(enum.IntEnum):
    """Default provider priorities (higher wins)."""

    SYSTEM_MONOTONIC = 100
    HARDWARE_CAPTURE = 200
    AUDIO_SINK = 300
    NETWORK = 400


@dataclass(frozen=True, slots=True)
class ClockProvider(Generic[C]):
    """Something that offers a clock: a network agent, an audio sink, a capture device..."""

    name: str
    clock: C
    priority: int
    flags: ClockFlags = ClockFlags.CAN_BE_MASTER
    available: bool = True

    @property
    def eligible(self) -> bool:
        return self.available and ClockFlags.CAN_BE_MASTER in self.flags


class LossReason(enum.Enum):
    REMOVED = "removed"
    UNAVAILABLE = "unavailable"
    #: Its flags were changed and it can no longer be a master.
    INELIGIBLE = "ineligible"


@dataclass(frozen=True, slots=True)
class NewClock(Generic[C]):
    """``provider`` is now selected; ``previous`` was selected before (None at start)."""

    provider: ClockProvider[C]
    previous: ClockProvider[C] | None


@dataclass(frozen=True, slots=True)
class ClockLost(Generic[C]):
    """The selected provider went away; a :class:`NewClock` follows if another is available."""

    provider: ClockProvider[C]
    reason: LossReason


SelectionEvent = NewClock[C] | ClockLost[C]


class ClockSelector(Generic[C]):
    """Keeps the providers and the selected one; every mutation returns the events it caused."""

    def __init__(self) -> None:
        self._providers: dict[str, ClockProvider[C]] = {}
        self._order: dict[str, int] = {}
        self._seq = 0
        self._selected: ClockProvider[C] | None = None

    @property
    def selected(self) -> ClockProvider[C] | None:
        return self._selected

    @property
    def providers(self) -> tuple[ClockProvider[C], ...]:
        """All providers, best first (selection order)."""
        return tuple(sorted(self._providers.values(), key=self._rank))

    def get(self, name: str) -> ClockProvider[C]:
        try:
            return self._providers[name]
        except KeyError:
            raise KeyError(f"no clock provider named {name!r}") from None

    # -- mutations --------------------------------------------------------------------------
    def add(self, provider: ClockProvider[C]) -> list[SelectionEvent[C]]:
        """Register a provider (GST_MESSAGE_CLOCK_PROVIDE). Names are unique."""
        if provider.name in self._providers:
            raise ValueError(f"clock provider {provider.name!r} already registered")
        self._providers[provider.name] = provider
        self._order[provider.name] = self._seq
        self._seq += 1
        return self._reselect(None)

    def remove(self, name: str) -> list[SelectionEvent[C]]:
        self.get(name)
        del self._providers[name]
        del self._order[name]
        return self._reselect(LossReason.REMOVED)

    def set_available(self, name: str, available: bool) -> list[SelectionEvent[C]]:
        return self._update(name, available=available)

    def set_priority(self, name: str, priority: int) -> list[SelectionEvent[C]]:
        return self._update(name, priority=priority)

    def set_flags(self, name: str, flags: ClockFlags) -> list[SelectionEvent[C]]:
        return self._update(name, flags=flags)

    # -- internals --------------------------------------------------------------------------
    def _update(
        self,
        name: str,
        *,
        available: bool | None = None,
        priority: int | None = None,
        flags: ClockFlags | None = None,
    ) -> list[SelectionEvent[C]]:
        old = self.get(name)
        new = replace(
            old,
            available=old.available if available is None else available,
            priority=old.priority if priority is None else priority,
            flags=old.flags if flags is None else flags,
        )
        self._providers[name] = new
        if self._selected is not None and self._selected.name == name:
            self._selected = new
        reason = None
        if old.eligible and not new.eligible:
            reason = LossReason.UNAVAILABLE if not new.available else LossReason.INELIGIBLE
        return self._reselect(reason)

    def _rank(self, p: ClockProvider[C]) -> tuple[int, int, int]:
        return (0 if p.eligible else 1, -p.priority, self._order[p.name])

    def _best(self) -> ClockProvider[C] | None:
        eligible = [p for p in self._providers.values() if p.eligible]
        return min(eligible, key=self._rank) if eligible else None

    def _reselect(self, loss: LossReason | None) -> list[SelectionEvent[C]]:
        events: list[SelectionEvent[C]] = []
        cur = self._selected
        current_gone = cur is not None and (
            cur.name not in self._providers or not self._providers[cur.name].eligible
        )
        if cur is not None and current_gone:
            events.append(ClockLost(cur, loss if loss is not None else LossReason.REMOVED))
        best = self._best()
        if best is None:
            self._selected = None
            return events
        if cur is None or current_gone or best.name != cur.name:
            self._selected = best
            events.append(NewClock(best, cur))
        return events


class RunningTime:
    """``running_time = clock_time - base_time`` with pause/resume and clock changes.

    All arguments are readings of the *current* clock (``clock_now``) in ns.
    """

    __slots__ = ("_base", "_paused_at")

    def __init__(self) -> None:
        self._base: int | None = None
        self._paused_at: int | None = None  # running time frozen while paused

    @property
    def base_time(self) -> int | None:
        return self._base

    @property
    def started(self) -> bool:
        return self._base is not None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def start(self, clock_now: int, running_time: int = 0) -> int:
        """Start (PLAYING) so that the running time is ``running_time`` now. Returns base time."""
        self._base = clock_now - running_time
        self._paused_at = None
        return self._base

    def running(self, clock_now: int) -> int:
        """Running time at ``clock_now`` (frozen while paused)."""
        if self._base is None:
            raise RuntimeError("running time not started")
        if self._paused_at is not None:
            return self._paused_at
        return clock_now - self._base

    def to_clock_time(self, running_time: int) -> int:
        """The clock time at which ``running_time`` is (or was) reached."""
        if self._base is None:
            raise RuntimeError("running time not started")
        return running_time + self._base

    def pause(self, clock_now: int) -> int:
        """Freeze the running time; returns it."""
        rt = self.running(clock_now)
        self._paused_at = rt
        return rt

    def resume(self, clock_now: int) -> int:
        """Carry on from the frozen running time; returns the new base time."""
        if self._paused_at is None:
            raise RuntimeError("not paused")
        return self.start(clock_now, self._paused_at)

    def switch_clock(self, old_clock_now: int, new_clock_now: int) -> int:
        """Move to a new clock without a jump in running time; returns the new base time.

        ``old_clock_now`` and ``new_clock_now`` must be read at (nearly) the same instant.
        """
        if self._paused_at is not None:
            rt = self._paused_at
            self._base = new_clock_now - rt
            return self._base
        rt = self.running(old_clock_now)
        return self.start(new_clock_now, rt)
