"""Source selection across several NTP servers, and the client that feeds the calibration.

* :func:`intersect` is the RFC 5905 §11.2.1 intersection algorithm (Marzullo's, as NTP uses
  it): the smallest interval that the correctness intervals ``[offset - λ, offset + λ]`` of a
  majority of sources share, allowing ``f`` falsetickers for the smallest possible ``f < n/2``.
* :func:`select` keeps the truechimers (intervals that touch the intersection) and
  :func:`combine` averages their offsets weighted by 1/λ² (RFC 5905 §11.2.3 uses 1/λ).
* :class:`NtpClient` holds the latest filtered sample of every source, runs selection and
  combining whenever one of them produces a sample, and feeds the result to a
  :class:`~netclock.calibration.WindowedCalibration` (internal = local MONOTONIC midpoint,
  external = server-time midpoint, error = delay/2).

Offsets of samples taken at different local times are made comparable by projecting them to
one local time with the current calibration's rate.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from netclock.calibration import Calibration, FitResult, WindowedCalibration
from netclock.ntp.source import NtpSample
from netclock.time import NS_PER_S


@dataclass(frozen=True, slots=True)
class Candidate:
    """One source's estimate: offset and root distance λ (both ns), and its key."""

    key: Hashable
    offset_ns: int
    root_distance_ns: int


@dataclass(frozen=True, slots=True)
class Selection:
    truechimers: tuple[Candidate, ...]
    falsetickers: tuple[Candidate, ...]
    low_ns: int
    high_ns: int
    combined_offset_ns: int


def root_distance_ns(sample: NtpSample) -> int:
    """λ = delay/2 + root delay/2 + root dispersion (RFC 5905 §11.2.1 without jitter terms)."""
    return max(sample.delay_ns, 0) // 2 + sample.root_delay_ns // 2 + sample.root_dispersion_ns


def intersect(cands: Sequence[Candidate]) -> tuple[int, int] | None:
    """The intersection interval (low, high) of a majority, or None when there is none."""
    n = len(cands)
    if n == 0:
        return None
    edges: list[tuple[int, int]] = []
    for c in cands:
        lam = max(c.root_distance_ns, 0)
        edges += [(c.offset_ns - lam, -1), (c.offset_ns, 0), (c.offset_ns + lam, 1)]
    edges.sort()
    for f in range((n + 1) // 2):
        found = 0
        chime = 0
        low: int | None = None
        for value, kind in edges:
            chime -= kind
            if chime >= n - f:
                low = value
                break
            if kind == 0:
                found += 1
        chime = 0
        high: int | None = None
        for value, kind in reversed(edges):
            chime += kind
            if chime >= n - f:
                high = value
                break
            if kind == 0:
                found += 1
        if found > f:
            continue
        if low is not None and high is not None and low <= high:
            return low, high
    return None


def combine(cands: Sequence[Candidate]) -> int:
    """Offset average weighted by 1/λ² (λ floored at 1 ns)."""
    # Offsets are near each other: average their differences to the first one.
    base = cands[0].offset_ns
    num = 0.0
    den = 0.0
    for c in cands:
        w = 1.0 / float(max(c.root_distance_ns, 1)) ** 2
        num += w * (c.offset_ns - base)
        den += w
    return base + round(num / den)


def select(cands: Sequence[Candidate]) -> Selection | None:
    """Intersection, then truechimers = candidates whose interval touches it, then combine."""
    if not cands:
        return None
    base = cands[0].offset_ns
    rel = [Candidate(c.key, c.offset_ns - base, c.root_distance_ns) for c in cands]
    iv = intersect(rel)
    if iv is None:
        return None
    low, high = iv
    true: list[Candidate] = []
    false: list[Candidate] = []
    for c, r in zip(cands, rel, strict=True):
        lam = max(r.root_distance_ns, 0)
        (false if r.offset_ns - lam > high or r.offset_ns + lam < low else true).append(c)
    if not true:
        return None
    rel_true = [Candidate(c.key, c.offset_ns - base, c.root_distance_ns) for c in true]
    return Selection(tuple(true), tuple(false), low + base, high + base,
                     combine(rel_true) + base)


@dataclass(frozen=True, slots=True)
class ClientUpdate:
    """What one sample did: the observation fed (None if the source was not selected)."""

    key: Hashable
    observation: tuple[int, int, int] | None
    selection: Selection | None
    fit: FitResult | None


class NtpClient:
    """Several sources' filtered samples → selection → one :class:`WindowedCalibration`."""

    def __init__(
        self,
        calibration: WindowedCalibration | None = None,
        *,
        max_age_ns: int = 64 * NS_PER_S,
        min_sources: int = 1,
    ) -> None:
        self.calibration = calibration if calibration is not None else WindowedCalibration()
        self.max_age_ns = max_age_ns
        self.min_sources = min_sources
        self._latest: dict[Hashable, NtpSample] = {}
        self._last_internal: int | None = None

    def remove_source(self, key: Hashable) -> None:
        self._latest.pop(key, None)

    def offset_ns(self, sample: NtpSample) -> int | None:
        """Server time minus mapped local time for ``sample`` (None before a calibration)."""
        cal = self.calibration.calibration
        return None if cal is None else sample.external - cal.to_external(sample.internal)

    def add_sample(self, key: Hashable, sample: NtpSample) -> ClientUpdate:
        self._latest[key] = sample
        t = sample.internal
        for k in [k for k, s in self._latest.items() if t - s.internal > self.max_age_ns]:
            del self._latest[k]
        selection: Selection | None = None
        external = sample.external
        if len(self._latest) > 1:
            cal = self.calibration.calibration
            cands = [
                Candidate(k, _project(s, t, cal), root_distance_ns(s))
                for k, s in self._latest.items()
            ]
            selection = select(cands)
            if selection is None or key not in {c.key for c in selection.truechimers}:
                return ClientUpdate(key, None, selection, None)
            if len(selection.truechimers) < self.min_sources:
                return ClientUpdate(key, None, selection, None)
            external = t + selection.combined_offset_ns
        elif self.min_sources > 1:
            return ClientUpdate(key, None, None, None)
        if self._last_internal is not None and t <= self._last_internal:
            return ClientUpdate(key, None, selection, None)
        self._last_internal = t
        obs = (t, external, sample.error_ns)
        fit = self.calibration.add_observation(*obs)
        return ClientUpdate(key, obs, selection, fit)


def _project(sample: NtpSample, t: int, cal: Calibration | None) -> int:
    """The sample's raw offset (server - local) carried to local time ``t`` at the fitted rate."""
    off = sample.raw_offset_ns
    if cal is None:
        return off
    return off + (t - sample.internal) * (cal.rate_num - cal.rate_denom) // cal.rate_denom
