"""Discipline: turn observations from several sources into one published time (pure).

The daemon feeds every source's observations here (local CLOCK_MONOTONIC ``internal``, network
``external``, an ``error_ns`` bound) together with ``now`` (local monotonic ns). The
discipline

* fits one :class:`~netclock.calibration.WindowedCalibration` per source;
* selects the best live source by priority (lower number first, like PTP's priority1), with
  failover to the next when a source stops updating for ``timeout_ns``;
* publishes the selected source's calibration. A source switch publishes the new source's
  calibration at once, so the published time moves by exactly the two sources' disagreement
  at that instant and never more; a discontinuity above ``step_threshold_ns`` (for a mere
  refit of the same source's window, above ``refit_step_threshold_ns``) is counted as a step,
  reported as an event and bumps the publication epoch;
* runs the lock state machine FREERUN → LOCKING → LOCKED → HOLDOVER (→ LOCKING when a source
  returns) with a quality class in the spirit of PTP's clockClass;
* in HOLDOVER keeps the last calibration (the last rate continues) and grows the error bound
  with time from the measured rate uncertainty and wander:
  ``bound(t) = bound0 + rate_sigma * t + wander * t² / 2``;
* saves and restores the last rate and state (chrony's driftfile idea): with a restored rate
  the first observation of a restarted agent already gives a full calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from netclock.calibration import (
    DEFAULT_WINDOW_SPAN_NS,
    RATE_DENOM,
    Calibration,
    FitResult,
    WindowedCalibration,
)
from netclock.observe import LockState, Quality
from netclock.time import NS_PER_S

__all__ = [
    "CLOCK_CLASS",
    "Discipline",
    "DisciplineConfig",
    "DisciplineEvent",
    "DisciplineSnapshot",
    "SourceConfig",
    "SourceStatus",
]


#: PTP clockClass (IEEE 1588 §7.6.2.5) to announce for each quality when serving time.
CLOCK_CLASS = {
    Quality.LOCKED: 6,
    Quality.HOLDOVER_IN_SPEC: 7,
    Quality.OUT_OF_SPEC: 52,
    Quality.UNKNOWN: 248,
}


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    priority: int = 100
    #: No observation for this long marks the source lost.
    timeout_ns: int = 8 * NS_PER_S


@dataclass(frozen=True, slots=True)
class DisciplineConfig:
    # The per-source fit: WindowedCalibration's parameters (see netclock.calibration).
    window_size: int = 128
    window_threshold: int = 4
    window_span_ns: int = DEFAULT_WINDOW_SPAN_NS
    window_max: int = 1024
    outlier_k: float = 4.0
    error_floor_ns: int = 50
    floor_k: float = 0.25
    floor_scale: float = 0.3
    spike_reject_k: float = 8.0
    spike_min_ns: int = 1_000
    spike_hold_ns: int = 60 * NS_PER_S
    fit_step_threshold_ns: int = 1_000_000
    step_confirm: int = 3
    lost_after: int = 0
    #: LOCKED needs the error bound below this ...
    lock_threshold_ns: int = 10_000
    #: ... for this many consecutive updates.
    lock_count: int = 4
    #: LOCKED is lost after lock_count consecutive bounds above this many lock thresholds.
    unlock_factor: float = 2.0
    #: A published discontinuity above this is a step (counted, logged, new epoch).
    step_threshold_ns: int = 1_000
    #: A refit of the same source's window that moves the published time by more than this
    #: is counted as a step too (smaller moves are the fit's own noise; readers hold within
    #: an epoch and never see time go backwards).
    refit_step_threshold_ns: int = 100_000
    #: When the selected source is lost while another is alive, stay in HOLDOVER this long
    #: before failing over (0: switch at once). A source that returns in time is kept.
    failover_after_ns: int = 0
    #: Holdover stays "in spec" while the error bound is below this.
    holdover_spec_ns: int = 1_000_000
    #: Floor for the holdover frequency uncertainty (ppb), whatever the fit says.
    holdover_min_rate_sigma_ppb: float = 0.01
    #: Floor for the wander (ppb/s) used in holdover growth.
    holdover_min_wander_ppb_per_s: float = 0.001


@dataclass(frozen=True, slots=True)
class DisciplineEvent:
    kind: str  # "state", "source", "step", "restore"
    detail: str
    value_ns: int = 0


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    priority: int
    alive: bool
    selected: bool
    observations: int
    offset_ns: int | None
    error_ns: int | None
    rate_ppb: float | None
    r_squared: float | None
    residual_rms_ns: float | None
    last_update_ns: int | None


@dataclass(frozen=True, slots=True)
class DisciplineSnapshot:
    state: LockState
    quality: Quality
    calibration: Calibration | None
    error_bound_ns: int
    source: str | None
    steps: int
    holdover_ns: int
    rate_sigma_ppb: float
    wander_ppb_per_s: float
    sources: tuple[SourceStatus, ...] = ()


@dataclass
class _Source:
    cfg: SourceConfig
    window: WindowedCalibration
    prior_rate_num: int | None = None
    fit: FitResult | None = None
    cal: Calibration | None = None
    last_update: int | None = None
    last_error: int | None = None
    best_error: int | None = None
    rate_history: list[tuple[int, float]] = field(default_factory=list)
    early: list[tuple[int, int, int]] = field(default_factory=list)

    def alive(self, now: int) -> bool:
        return (
            self.cal is not None
            and self.last_update is not None
            and now - self.last_update <= self.cfg.timeout_ns
        )


class Discipline:
    """One domain's published time from prioritized sources. All times are int ns."""

    def __init__(
        self, config: DisciplineConfig | None = None, sources: tuple[SourceConfig, ...] = ()
    ):
        self.config = config or DisciplineConfig()
        self._sources: dict[str, _Source] = {}
        self._selected: str | None = None
        self._published: Calibration | None = None
        self._published_origin: tuple[str | None, int] | None = None
        self._epoch = 0
        self._state = LockState.FREERUN
        self._good_updates = 0
        self._bad_updates = 0
        self._bound0 = 0
        self._holdover_since: int | None = None
        self._prior_rate_num: int | None = None
        self.steps = 0
        for s in sources:
            self.add_source(s)

    # -- sources --------------------------------------------------------------------------
    def add_source(self, cfg: SourceConfig) -> None:
        if cfg.name in self._sources:
            raise ValueError(f"source {cfg.name!r} already exists")
        c = self.config
        w = WindowedCalibration(
            c.window_size,
            c.window_threshold,
            window_span_ns=c.window_span_ns,
            window_max=c.window_max,
            outlier_k=c.outlier_k,
            error_floor_ns=c.error_floor_ns,
            floor_k=c.floor_k,
            floor_scale=c.floor_scale,
            reject_k=c.spike_reject_k,
            reject_min_ns=c.spike_min_ns,
            reject_hold_ns=c.spike_hold_ns,
            step_threshold_ns=c.fit_step_threshold_ns,
            step_confirm=c.step_confirm,
            lost_after=c.lost_after,
        )
        self._sources[cfg.name] = _Source(cfg, w, prior_rate_num=self._prior_rate_num)

    def remove_source(self, name: str, now: int) -> list[DisciplineEvent]:
        self._sources.pop(name, None)
        return self.tick(now)

    @property
    def state(self) -> LockState:
        return self._state

    @property
    def published(self) -> Calibration | None:
        return self._published

    # -- observations -----------------------------------------------------------------------
    def observe(
        self, source: str, internal: int, external: int, error_ns: int, now: int
    ) -> list[DisciplineEvent]:
        """One observation from ``source``; returns what changed."""
        try:
            src = self._sources[source]
        except KeyError:
            raise KeyError(f"unknown source {source!r}") from None
        fit = src.window.add_observation(internal, external, error_ns)
        src.last_error = error_ns
        if fit is not None:
            src.fit = fit
            src.cal = fit.calibration
            src.best_error = src.window.least_error()
            src.rate_history.append((internal, fit.calibration.rate_ppb()))
            del src.rate_history[:-64]
            src.last_update = now
        elif src.prior_rate_num is not None and src.window.calibration is None:
            # Before the window has enough points, a restored rate anchored at the newest
            # observation is already a full calibration (fast relock after a restart).
            src.early.append((internal, external, error_ns))
            best = min(src.early, key=lambda o: o[2])
            src.cal = Calibration(
                best[0], best[1], src.prior_rate_num, RATE_DENOM, src.window.epoch
            )
            src.best_error = best[2]
            src.last_update = now
        elif src.window.calibration is not None:
            # A step candidate or rejected observation: the source is alive but unchanged.
            src.last_update = now
        return self._update(now)

    def heard(self, source: str, now: int) -> list[DisciplineEvent]:
        """``source`` answered with a valid measurement that its own filter held back (an
        NTP clock filter passes one sample in up to 8): it is alive and nothing else changed.
        Keeps a calibrated source from being taken for lost between the samples it passes;
        one without a calibration is not made alive by it."""
        try:
            src = self._sources[source]
        except KeyError:
            raise KeyError(f"unknown source {source!r}") from None
        if src.cal is None:
            return []
        src.last_update = now
        return self._update(now)

    def discard_before(self, source: str, internal: int) -> int:
        """Drop ``source``'s observations older than ``internal`` from its window (see
        :meth:`WindowedCalibration.discard_before`); its calibration stands until the next
        fit. Returns how many went."""
        return self._sources[source].window.discard_before(internal)

    def window_epoch(self, source: str) -> int:
        """The epoch of ``source``'s window: it changes when the window restarts (a step, a
        lost fit)."""
        return self._sources[source].window.epoch

    def tick(self, now: int) -> list[DisciplineEvent]:
        """Timer: detect lost sources, holdover, failover."""
        return self._update(now)

    # -- state machine ----------------------------------------------------------------------
    def _best_source(self, now: int) -> _Source | None:
        alive = [s for s in self._sources.values() if s.alive(now)]
        if not alive:
            return None
        return min(alive, key=lambda s: (s.cfg.priority, s.cfg.name))

    def _update(self, now: int) -> list[DisciplineEvent]:
        events: list[DisciplineEvent] = []
        best = self._best_source(now)
        cur = self._sources.get(self._selected) if self._selected is not None else None
        if (
            best is not None
            and cur is not None
            and best is not cur
            and not cur.alive(now)
            and self.config.failover_after_ns > 0
            and cur.last_update is not None
            and now - cur.last_update - cur.cfg.timeout_ns < self.config.failover_after_ns
        ):
            # Hold over on the lost source a little before failing over.
            if self._holdover_since is None:
                self._holdover_since = now
            self._good_updates = 0
            self._set_state(LockState.HOLDOVER, events)
            return events
        new_name = best.cfg.name if best else None
        if new_name != self._selected:
            events.append(
                DisciplineEvent("source", f"{self._selected or '-'} -> {new_name or '-'}")
            )
            self._selected = new_name
        if best is not None and best.cal is not None:
            self._publish(best.cal, now, events)
            self._holdover_since = None
            bound = self._source_bound(best)
            self._bound0 = bound
            # Hysteresis: LOCKED needs lock_count bounds within the threshold in a row; it is
            # lost after lock_count bounds in a row above unlock_factor x the threshold.
            thr = self.config.lock_threshold_ns
            if bound <= thr:
                self._good_updates += 1
            else:
                self._good_updates = 0
            if bound > thr * self.config.unlock_factor:
                self._bad_updates += 1
            else:
                self._bad_updates = 0
            if self._state == LockState.LOCKED:
                if self._bad_updates >= self.config.lock_count:
                    self._set_state(LockState.LOCKING, events)
            elif self._good_updates >= self.config.lock_count:
                self._set_state(LockState.LOCKED, events)
            else:
                self._set_state(LockState.LOCKING, events)
        elif self._published is not None:
            if self._holdover_since is None:
                self._holdover_since = now
            self._good_updates = 0
            self._set_state(LockState.HOLDOVER, events)
        return events

    def _source_bound(self, src: _Source) -> int:
        base = src.best_error or 0
        rms = src.fit.residual_rms_ns if src.fit is not None else 0.0
        return base + math.ceil(3.0 * rms)

    def _publish(self, cal: Calibration, now: int, events: list[DisciplineEvent]) -> None:
        old = self._published
        origin = (self._selected, cal.epoch)
        if old is not None:
            jump = cal.to_external(now) - old.to_external(now)
            # A new source, or a step its window detected, is a discontinuity: counted above
            # step_threshold_ns. A refit of the same window moves the time by its own noise;
            # only a move above refit_step_threshold_ns counts as a step.
            limit = (
                self.config.refit_step_threshold_ns
                if origin == self._published_origin
                else self.config.step_threshold_ns
            )
            if abs(jump) > limit:
                self.steps += 1
                self._epoch += 1
                events.append(DisciplineEvent("step", f"published time stepped {jump} ns", jump))
        self._published_origin = origin
        self._published = Calibration(
            cal.internal, cal.external, cal.rate_num, cal.rate_denom, self._epoch
        )

    def _set_state(self, new: LockState, events: list[DisciplineEvent]) -> None:
        if new != self._state:
            events.append(DisciplineEvent("state", f"{self._state.name} -> {new.name}"))
            self._state = new

    # -- error bound --------------------------------------------------------------------------
    def _rate_stats(self) -> tuple[float, float]:
        """(rate sigma in ppb, wander in ppb/s) measured on the selected (or last) source."""
        src = self._sources.get(self._selected or "") or next(
            (s for s in self._sources.values() if s.rate_history), None
        )
        c = self.config
        sigma, wander = c.holdover_min_rate_sigma_ppb, c.holdover_min_wander_ppb_per_s
        if src is None or len(src.rate_history) < 3:
            return sigma, wander
        rates = [r for _, r in src.rate_history[-16:]]
        mean = math.fsum(rates) / len(rates)
        sd = math.sqrt(math.fsum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
        h = src.rate_history
        span_s = (h[-1][0] - h[0][0]) / NS_PER_S
        drift = abs(h[-1][1] - h[0][1]) / span_s if span_s > 0 else 0.0
        return max(sigma, sd), max(wander, drift)

    def error_bound(self, now: int) -> int:
        if self._published is None:
            return -1
        if self._holdover_since is None:
            return self._bound0
        t = (now - self._holdover_since) / NS_PER_S
        sigma, wander = self._rate_stats()
        return self._bound0 + math.ceil(sigma * t + 0.5 * wander * t * t)

    def quality(self, now: int) -> Quality:
        if self._state == LockState.LOCKED:
            return Quality.LOCKED
        if self._state == LockState.HOLDOVER:
            if self.error_bound(now) <= self.config.holdover_spec_ns:
                return Quality.HOLDOVER_IN_SPEC
            return Quality.OUT_OF_SPEC
        return Quality.OUT_OF_SPEC

    # -- observation ---------------------------------------------------------------------------
    def selected_fit(self) -> FitResult | None:
        """The selected source's last window fit (None before one, or with no selection)."""
        src = self._sources.get(self._selected) if self._selected is not None else None
        return src.fit if src is not None else None

    def snapshot(self, now: int, *, with_sources: bool = True) -> DisciplineSnapshot:
        """The state at ``now``; ``with_sources=False`` leaves ``sources`` empty (cheaper)."""
        sigma, wander = self._rate_stats()
        srcs = () if not with_sources else tuple(
            SourceStatus(
                name=s.cfg.name,
                priority=s.cfg.priority,
                alive=s.alive(now),
                selected=s.cfg.name == self._selected,
                observations=len(s.window),
                offset_ns=s.cal.offset_at(now) if s.cal is not None else None,
                error_ns=s.last_error,
                rate_ppb=s.cal.rate_ppb() if s.cal is not None else None,
                r_squared=s.fit.r_squared if s.fit is not None else None,
                residual_rms_ns=s.fit.residual_rms_ns if s.fit is not None else None,
                last_update_ns=s.last_update,
            )
            for s in sorted(self._sources.values(), key=lambda s: (s.cfg.priority, s.cfg.name))
        )
        return DisciplineSnapshot(
            state=self._state,
            quality=self.quality(now),
            calibration=self._published,
            error_bound_ns=self.error_bound(now),
            source=self._selected,
            steps=self.steps,
            holdover_ns=0 if self._holdover_since is None else now - self._holdover_since,
            rate_sigma_ppb=sigma,
            wander_ppb_per_s=wander,
            sources=srcs,
        )

    # -- persistence ----------------------------------------------------------------------------
    def save_state(self) -> dict[str, object]:
        """What a state file keeps: the last rate (as rate_num over RATE_DENOM) and state."""
        cal = self._published
        num = (
            cal.rate_num * RATE_DENOM // cal.rate_denom if cal is not None else self._prior_rate_num
        )
        sigma, wander = self._rate_stats()
        return {
            "version": 1,
            "rate_num": num,
            "rate_denom": RATE_DENOM,
            "state": self._state.name,
            "rate_sigma_ppb": sigma,
            "wander_ppb_per_s": wander,
            "steps": self.steps,
        }

    def restore_state(self, data: dict[str, object]) -> list[DisciplineEvent]:
        """Restore a saved rate: sources use it until their own window can fit."""
        if data.get("version") != 1:
            raise ValueError(f"unknown state file version {data.get('version')!r}")
        num, den = data.get("rate_num"), data.get("rate_denom")
        if num is None:
            return []
        if not isinstance(num, int) or not isinstance(den, int) or den <= 0:
            raise ValueError("state file rate_num/rate_denom must be positive integers")
        rate_num = num * RATE_DENOM // den
        Calibration(rate_num=rate_num, rate_denom=RATE_DENOM)  # validates the range
        self._prior_rate_num = rate_num
        for s in self._sources.values():
            s.prior_rate_num = rate_num
        ppb = (rate_num - RATE_DENOM) * 1e9 / RATE_DENOM
        return [DisciplineEvent("restore", f"restored rate {ppb:+.3f} ppb")]
