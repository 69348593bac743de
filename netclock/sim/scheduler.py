"""A discrete-event scheduler on true time.

Pure module. Events are callables kept in a heap ordered by ``(time_ns, sequence)``: events at
the same time run in the order they were scheduled, so a run is fully reproducible (nothing
depends on hashing, object ids or wall time). Randomness lives in the parts that schedule
events (links, nodes), each with its own seeded ``random.Random``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Scheduler", "TimerHandle"]


@dataclass(order=True, slots=True)
class TimerHandle:
    """A scheduled event; :meth:`cancel` keeps it from running."""

    at_ns: int
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Heap of events on true time (int ns)."""

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns
        self._heap: list[TimerHandle] = []
        self._seq = 0
        self.events_run = 0

    def at(self, at_ns: int, fn: Callable[[], None]) -> TimerHandle:
        """Run ``fn`` at true time ``at_ns`` (not before the current time)."""
        if at_ns < self.now:
            raise ValueError(f"cannot schedule in the past: {at_ns} < {self.now}")
        self._seq += 1
        h = TimerHandle(at_ns, self._seq, fn)
        heapq.heappush(self._heap, h)
        return h

    def after(self, delay_ns: int, fn: Callable[[], None]) -> TimerHandle:
        return self.at(self.now + max(delay_ns, 0), fn)

    def pending(self) -> int:
        return sum(1 for h in self._heap if not h.cancelled)

    def run_until(self, end_ns: int) -> None:
        """Run every event due at or before ``end_ns``; leaves ``now == end_ns``."""
        heap = self._heap
        while heap and heap[0].at_ns <= end_ns:
            h = heapq.heappop(heap)
            if h.cancelled:
                continue
            self.now = h.at_ns
            self.events_run += 1
            h.fn()
        self.now = max(self.now, end_ns)
