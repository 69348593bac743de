"""The time domain a capture agent stamps into: monotonic ns -> network ns, plus sync status.

:class:`TimeDomain` is the small protocol the stamping code needs. Two implementations:

* :class:`CalibrationDomain` wraps a :class:`netclock.calibration.Calibration` (pure; for tests,
  offline re-stamping and replays);
* :class:`SharedClockDomain` adapts ``netclock.client.SharedClock`` (the reader of the agent's
  published calibration). It is imported lazily so capture/ does not depend on it at import time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

from netclock.calibration import Calibration

__all__ = [
    "CalibrationDomain",
    "NoCalibration",
    "SharedClockDomain",
    "SyncStatus",
    "TimeDomain",
    "convert",
    "normalise_status",
]


class SyncStatus(NamedTuple):
    """Sync state at one moment: locked?, error bound (ns, >= 0), calibration epoch, domain."""

    synced: bool
    error_bound_ns: int
    epoch: int
    domain: str


@runtime_checkable
class TimeDomain(Protocol):
    def to_network(self, mono_ns: int) -> int: ...

    def status(self) -> SyncStatus: ...


def convert(domain: TimeDomain, mono_ns: int) -> tuple[int | None, SyncStatus]:
    """Network time of ``mono_ns`` and the sync status *of the same calibration*.

    Reading the status and converting separately is a race with a daemon that republishes in
    between (every refit, and every step, publishes a new calibration): the record would pair
    one calibration's network time with another's error bound, and a step of a few µs then
    lands outside a bound of a few µs. Domains that can read both at once provide
    ``convert(mono_ns)``; for the others (fixed calibrations) the two calls cannot disagree.
    ``None`` when the domain cannot convert (no calibration yet).
    """
    conv = getattr(domain, "convert", None)
    if callable(conv):
        net, st = conv(mono_ns)
        return (None if net is None else int(net)), st
    st = domain.status()
    try:
        return domain.to_network(mono_ns), st
    except (ValueError, LookupError, ArithmeticError):
        return None, st


@dataclass(frozen=True, slots=True)
class CalibrationDomain:
    """A fixed calibration as a time domain (pure)."""

    calibration: Calibration
    domain: str = "calibration"
    error_bound_ns: int = 0
    synced: bool = True

    def __post_init__(self) -> None:
        if self.error_bound_ns < 0:
            raise ValueError("error_bound_ns must be >= 0")

    @classmethod
    def identity(cls, domain: str = "monotonic", error_bound_ns: int = 0) -> CalibrationDomain:
        """Network time == CLOCK_MONOTONIC (a single machine, or tests)."""
        return cls(Calibration(), domain, error_bound_ns, True)

    def to_network(self, mono_ns: int) -> int:
        return self.calibration.to_external(mono_ns)

    def status(self) -> SyncStatus:
        return SyncStatus(self.synced, self.error_bound_ns, self.calibration.epoch, self.domain)


#: Error bound reported when the reader's status carries none (unsynced, never calibrated).
UNKNOWN_ERROR_NS = 1 << 62


def _first_attr(obj: Any, names: tuple[str, ...], default: Any) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


class NoCalibration(LookupError):
    """The domain has no calibration (yet, or any more): network time cannot be computed."""


class SharedClockDomain:
    """Adapts ``netclock.client.SharedClock`` (imported lazily, only when constructed).

    The reader's ``ClockStatus`` becomes a :class:`SyncStatus`: synced means lock state
    ``LOCKED`` with a calibration; ``error_bound_ns`` is the reader's bound now (it already
    grows with the record's age); the domain string is ``TIMESCALE:number[@source identity]``
    so records of two machines following the same master carry the same domain. When the
    daemon stops or loses its calibration, conversions continue with the last calibration seen
    (reported unsynced) so frames keep a network time with a growing bound; before any
    calibration :class:`NoCalibration` is raised.
    """

    def __init__(self, clock: Any = None, **kwargs: Any) -> None:
        if clock is None:
            client = importlib.import_module("netclock.client")  # lazy on purpose
            clock = client.SharedClock(**kwargs)
        self._clock = clock
        self._last_cal: Calibration | None = None
        self._status_cal: Calibration | None = None
        self._last_status: SyncStatus | None = None

    @property
    def clock(self) -> Any:
        return self._clock

    def to_network(self, mono_ns: int) -> int:
        try:
            return int(self._clock.to_network(mono_ns))
        except (RuntimeError, OSError, ValueError) as e:
            if self._last_cal is None:
                raise NoCalibration(str(e)) from e
            return self._last_cal.to_external(mono_ns)

    def convert(self, mono_ns: int) -> tuple[int | None, SyncStatus]:
        """One read of the published record: its calibration converts ``mono_ns`` and its
        bound (grown by its age) is the status, so the two always belong together."""
        st = self.status()
        cal = self._status_cal
        if cal is None:
            cal = self._last_cal  # daemon gone or not calibrated: last one seen, unsynced
        if cal is None:
            try:
                return self.to_network(mono_ns), st
            except NoCalibration:
                return None, st
        return cal.to_external(mono_ns), st

    def status(self) -> SyncStatus:
        self._status_cal = None
        try:
            st = self._clock.status()
        except (RuntimeError, OSError, ValueError):
            last = self._last_status
            dom = last.domain if last else "unknown"
            err = last.error_bound_ns if last else UNKNOWN_ERROR_NS
            return SyncStatus(False, err, last.epoch if last else 0, dom)
        if isinstance(st, tuple) and len(st) == 4 and not hasattr(st, "_fields"):
            synced, err, epoch, dom = st
            out = SyncStatus(bool(synced), int(err), int(epoch), str(dom))
        else:
            out = normalise_status(st)
            cal = getattr(st, "calibration", None)
            if isinstance(cal, Calibration):
                self._last_cal = self._status_cal = cal
        self._last_status = out
        return out


def normalise_status(st: Any) -> SyncStatus:
    """Map a reader status object (``netclock.client.ClockStatus`` or alike) to SyncStatus."""
    synced_v = _first_attr(st, ("synced", "locked", "is_synced", "is_locked"), None)
    if synced_v is None:
        state = _first_attr(st, ("lock_state", "state", "sync_state"), "")
        name = str(getattr(state, "name", state)).lower()
        synced_v = name in ("locked", "synced", "tracking")
        if hasattr(st, "calibration") and st.calibration is None:
            synced_v = False
    err = _first_attr(st, ("error_bound_ns", "error_ns", "max_error_ns", "bound_ns"), None)
    epoch = _first_attr(st, ("epoch",), 0)
    dom: Any = _first_attr(st, ("domain", "domain_name", "time_domain"), "network")
    if isinstance(dom, int) and not isinstance(dom, bool):
        ts = getattr(st, "timescale", None)
        ident = getattr(st, "identity", "")
        dom = f"{getattr(ts, 'name', 'ARB')}:{dom}" + (f"@{ident}" if ident else "")
    return SyncStatus(
        bool(synced_v),
        UNKNOWN_ERROR_NS if err is None else int(err),
        int(epoch or 0),
        str(dom),
    )
