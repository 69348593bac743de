"""Simulated one-way links: delay, jitter, asymmetry, loss, reordering, delay spikes.

Pure module. A :class:`Link` is one direction of a path. :meth:`Link.transit` takes the true
send time and returns the true delivery time, or ``None`` when the packet is lost::

    delay = base + extra + jitter + spike(t) [+ reorder_hold]

* ``jitter``: ``none``; ``normal`` (std dev ``jitter_ns``, the total delay is clamped at 0);
  ``exponential`` (mean ``jitter_ns``, one-sided queueing, clknetsim's model);
  ``pareto`` (heavy tail, shape ``pareto_alpha``, scaled so the mean is ``jitter_ns``);
  ``lognormal`` (sigma 1, scaled so the mean is ``jitter_ns``).
* ``extra_ns`` is a fixed per-direction addition: :func:`link_pair` uses it for the path
  asymmetry (``forward - reverse = asymmetry``).
* ``loss``: probability that a packet is dropped.
* ``reorder``: probability that a packet is held back ``reorder_hold_ns`` more, so it is
  overtaken by the next one sent within that time.
* spikes: :class:`Spike` windows add ``extra_ns`` to every packet sent inside them
  (scheduled), and ``spike_rate_per_s`` draws random ones (Poisson starts, exponential
  durations of mean ``spike_mean_s``, height ``spike_ns``).

Each link owns its ``random.Random``; with the same seeds the same packets get the same fate.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

__all__ = ["JITTER_DISTS", "Link", "LinkSpec", "Spike", "link_pair"]

JITTER_DISTS = ("none", "normal", "exponential", "pareto", "lognormal")


@dataclass(frozen=True, slots=True)
class Spike:
    """Packets sent in ``[start_ns, start_ns + duration_ns)`` get ``extra_ns`` more delay."""

    start_ns: int
    duration_ns: int
    extra_ns: int

    def covers(self, t: int) -> bool:
        return self.start_ns <= t < self.start_ns + self.duration_ns


@dataclass(frozen=True, slots=True)
class LinkSpec:
    base_ns: int = 100_000
    extra_ns: int = 0
    jitter_ns: float = 0.0
    jitter_dist: str = "exponential"
    pareto_alpha: float = 2.5
    loss: float = 0.0
    reorder: float = 0.0
    reorder_hold_ns: int = 2_000_000
    spikes: tuple[Spike, ...] = field(default_factory=tuple)
    spike_rate_per_s: float = 0.0
    spike_mean_s: float = 2.0
    spike_ns: int = 0

    def __post_init__(self) -> None:
        if self.jitter_dist not in JITTER_DISTS:
            raise ValueError(f"jitter_dist {self.jitter_dist!r} not in {JITTER_DISTS}")
        if not 0.0 <= self.loss < 1.0 or not 0.0 <= self.reorder < 1.0:
            raise ValueError("loss and reorder must be in [0, 1)")
        if self.jitter_ns < 0 or self.base_ns < 0 or self.base_ns + self.extra_ns < 0:
            raise ValueError("delays must be >= 0")
        if self.jitter_dist == "pareto" and self.pareto_alpha <= 1.0:
            raise ValueError("pareto_alpha must be > 1 (finite mean)")


class Link:
    """One direction of a path; see the module docstring."""

    def __init__(self, spec: LinkSpec, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self.sent = 0
        self.lost = 0
        self.reordered = 0
        self._random_spikes: list[Spike] = []
        self._next_spike_start: float | None = None

    def _jitter(self) -> float:
        s, r = self.spec, self._rng
        j = s.jitter_ns
        if j == 0.0 or s.jitter_dist == "none":
            return 0.0
        if s.jitter_dist == "normal":
            return r.gauss(0.0, j)
        if s.jitter_dist == "exponential":
            return r.expovariate(1.0 / j)
        if s.jitter_dist == "pareto":
            # paretovariate(a) - 1 has mean 1/(a-1).
            return (r.paretovariate(s.pareto_alpha) - 1.0) * j * (s.pareto_alpha - 1.0)
        # lognormal, sigma 1: mean exp(0.5).
        return r.lognormvariate(0.0, 1.0) * j / math.exp(0.5)

    def _spike_extra(self, t: int) -> int:
        s = self.spec
        extra = sum(sp.extra_ns for sp in s.spikes if sp.covers(t))
        if s.spike_rate_per_s > 0.0 and s.spike_ns:
            if self._next_spike_start is None:
                self._next_spike_start = float(t) + self._rng.expovariate(s.spike_rate_per_s) * 1e9
            while self._next_spike_start <= t:
                start = int(self._next_spike_start)
                dur = int(self._rng.expovariate(1.0 / s.spike_mean_s) * 1e9) + 1
                self._random_spikes.append(Spike(start, dur, s.spike_ns))
                self._next_spike_start += self._rng.expovariate(s.spike_rate_per_s) * 1e9
            self._random_spikes = [
                sp for sp in self._random_spikes if sp.start_ns + sp.duration_ns > t
            ]
            extra += sum(sp.extra_ns for sp in self._random_spikes if sp.covers(t))
        return extra

    def transit(self, send_ns: int) -> int | None:
        """True delivery time of a packet sent at true time ``send_ns``, or None if lost.

        The random draws are made in a fixed order whatever the outcome, so one packet's
        fate never shifts the next packet's draws.
        """
        s, r = self.spec, self._rng
        self.sent += 1
        lost = r.random() < s.loss
        held = r.random() < s.reorder
        jit = self._jitter()
        extra = self._spike_extra(send_ns)
        if lost:
            self.lost += 1
            return None
        delay = s.base_ns + s.extra_ns + round(jit) + extra
        if held:
            self.reordered += 1
            delay += s.reorder_hold_ns
        return send_ns + max(delay, 0)


def link_pair(
    forward: LinkSpec,
    reverse: LinkSpec,
    asymmetry_ns: int,
    rng_forward: random.Random,
    rng_reverse: random.Random,
) -> tuple[Link, Link]:
    """Forward and reverse links with ``forward - reverse = asymmetry_ns`` added to them.

    The asymmetry is split between the two directions (the mean delay moves by at most
    0.5 ns), so a two-way exchange over equal specs measures its offset biased by exactly
    ``asymmetry_ns / 2``.
    """
    rev_extra = -(asymmetry_ns // 2)
    fwd_extra = asymmetry_ns + rev_extra
    fwd = Link(replace(forward, extra_ns=forward.extra_ns + fwd_extra), rng_forward)
    rev = Link(replace(reverse, extra_ns=reverse.extra_ns + rev_extra), rng_reverse)
    return fwd, rev
