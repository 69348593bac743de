"""Simulated oscillators: exact maps from true time to a node's clock reading.

Pure module. A :class:`SimClock` turns true time (``int`` ns, the simulator's reference) into
the reading of one node's clock (``int`` ns)::

    reading(t) = t + offset + phase(t) + sum(steps at or before t)

``phase(t)`` is the integral of the clock's fractional frequency error since ``start``:

* a constant error ``freq_ppm``;
* a random-walk *wander* (clknetsim's ``node_freq = sum(normal)``): every ``wander_step_ns``
  the frequency moves by ``N(0, wander_ppb * sqrt(step_s))`` ppb, so its standard deviation
  grows as ``wander_ppb`` ppb per sqrt(second);
* a slow periodic (temperature-like) term ``temp_ppb * sin(2 pi (t - start) / temp_period)``.

The random walk is generated lazily in fixed segments from the injected ``random.Random``;
segments are remembered, so a clock can be read at any time, in any order, and a given seed
always gives the same readings. Phase is a float of at most ~1e9 ns accumulated from ``start``
(never added to the 2^60-sized absolute times as a float) and rounded once per reading, so
readings are exact ints and a clock with no frequency terms reads exactly ``t + offset``.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ClockStep", "SimClock"]

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ClockStep:
    """At true time ``at_ns`` the clock's reading jumps by ``step_ns``."""

    at_ns: int
    step_ns: int


class SimClock:
    """One node's oscillator. Deterministic per ``rng`` seed; see the module docstring."""

    def __init__(
        self,
        *,
        start_ns: int = 0,
        offset_ns: int = 0,
        freq_ppm: float = 0.0,
        wander_ppb: float = 0.0,
        wander_step_ns: int = NS_PER_S,
        temp_ppb: float = 0.0,
        temp_period_ns: int = 600 * NS_PER_S,
        steps: Iterable[ClockStep] = (),
        rng: random.Random | None = None,
    ) -> None:
        if wander_step_ns <= 0 or temp_period_ns <= 0:
            raise ValueError("wander_step_ns and temp_period_ns must be > 0")
        if wander_ppb < 0.0:
            raise ValueError("wander_ppb must be >= 0")
        self.start_ns = start_ns
        self.offset_ns = offset_ns
        self.freq_ppm = freq_ppm
        self.wander_ppb = wander_ppb
        self.wander_step_ns = wander_step_ns
        self.temp_ppb = temp_ppb
        self.temp_period_ns = temp_period_ns
        self._rng = rng if rng is not None else random.Random(0)
        self._steps = sorted(steps, key=lambda s: s.at_ns)
        self._step_times = [s.at_ns for s in self._steps]
        self._step_cum: list[int] = []
        acc = 0
        for s in self._steps:
            acc += s.step_ns
            self._step_cum.append(acc)
        # Random-walk segments: segment k covers [start + k*step, start + (k+1)*step); its
        # wander frequency (ppb) and the wander phase (ns) accumulated at its start.
        self._seg_freq: list[float] = [0.0]
        self._seg_phase: list[float] = [0.0]
        self._wander_sigma = wander_ppb * math.sqrt(wander_step_ns / NS_PER_S)

    # -- frequency terms --------------------------------------------------------------------------
    def _extend(self, k: int) -> None:
        step_s = self.wander_step_ns / NS_PER_S
        while len(self._seg_freq) <= k:
            f = self._seg_freq[-1]
            self._seg_phase.append(self._seg_phase[-1] + f * step_s)
            self._seg_freq.append(f + self._rng.gauss(0.0, self._wander_sigma))

    def _wander_phase(self, el: int) -> float:
        """Wander phase (ns) after ``el`` ns since start."""
        if self._wander_sigma == 0.0 or el <= 0:
            return 0.0
        k, rem = divmod(el, self.wander_step_ns)
        self._extend(k)
        return self._seg_phase[k] + self._seg_freq[k] * (rem / NS_PER_S)

    def _wander_freq(self, el: int) -> float:
        if self._wander_sigma == 0.0 or el <= 0:
            return 0.0
        k = el // self.wander_step_ns
        self._extend(k)
        return self._seg_freq[k]

    def _temp_phase(self, el: int) -> float:
        if self.temp_ppb == 0.0:
            return 0.0
        w = 2.0 * math.pi / self.temp_period_ns
        # ∫ A sin(w t) dt from 0 to el, with A in ns/ns.
        return self.temp_ppb * 1e-9 * (1.0 - math.cos(w * el)) / w

    def phase_ns(self, true_ns: int) -> float:
        """Accumulated frequency error (ns) since ``start`` at true time ``true_ns``."""
        el = true_ns - self.start_ns
        return el * self.freq_ppm * 1e-6 + self._wander_phase(el) + self._temp_phase(el)

    def freq_ppb(self, true_ns: int) -> float:
        """Instantaneous fractional frequency error (ppb) at ``true_ns``."""
        el = true_ns - self.start_ns
        f = self.freq_ppm * 1e3 + self._wander_freq(el)
        if self.temp_ppb != 0.0:
            f += self.temp_ppb * math.sin(2.0 * math.pi * el / self.temp_period_ns)
        return f

    def step_total(self, true_ns: int) -> int:
        i = bisect.bisect_right(self._step_times, true_ns)
        return self._step_cum[i - 1] if i else 0

    # -- readings ---------------------------------------------------------------------------------
    def read(self, true_ns: int) -> int:
        """The clock's reading at true time ``true_ns`` (exact int ns)."""
        ph = self.phase_ns(true_ns)
        return (
            true_ns
            + self.offset_ns
            + (round(ph) if ph != 0.0 else 0)
            + (self.step_total(true_ns) if self._steps else 0)
        )
