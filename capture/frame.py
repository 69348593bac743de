"""One captured frame (or audio period) as a record: what the subsystem stamped, and in which
shared time domain that puts it.

Pure module. Every time is an ``int`` in nanoseconds. Records serialise to one JSON object per
line (JSON Lines); :func:`dumps`/:func:`loads` round-trip exactly.

Fields:

* ``source`` kind (pipewire, alsa, v4l2), ``device`` (node/target, PCM name, /dev path) and
  ``seq`` (the subsystem's sequence number, or our own period counter for ALSA);
* ``raw_ns`` the subsystem's timestamp as read, ``raw_clock`` the clock it is in and
  ``meaning`` what instant it marks (start of exposure, end of frame, period, trigger, pts);
* ``capture_mono_ns`` the instant the record stands for (start of frame / first sample) in
  CLOCK_MONOTONIC after the conversions of :mod:`capture.stamping` (``None`` when the raw clock
  cannot be mapped to MONOTONIC, e.g. a V4L2 COPY stamp of unknown origin);
* ``net_ns`` that instant in the ``domain`` (``None`` when the domain cannot convert yet),
  ``epoch`` of the calibration, ``synced`` the sync state when stamped;
* ``uncertainty_ns`` = ``sync_error_ns`` + ``stamp_uncertainty_ns``;
* ``arrival_mono_ns`` when the agent saw the frame: diagnosis only, never a stamp;
* ``pts_ns`` a stream presentation time when the subsystem has one (pairs frames across machines);
* ``flags`` (``unsynced``, ``gap``, ``eof_to_sof``, ...), ``extra`` subsystem numbers
  (delay/avail/frames/rate ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "FrameRecord",
    "RecordError",
    "SourceKind",
    "StampClock",
    "StampMeaning",
    "dumps",
    "loads",
]


class RecordError(ValueError):
    """A JSON line that is not a valid frame record."""


class SourceKind(StrEnum):
    PIPEWIRE = "pipewire"
    ALSA = "alsa"
    V4L2 = "v4l2"


class StampClock(StrEnum):
    MONOTONIC = "MONOTONIC"
    REALTIME = "REALTIME"
    OTHER = "OTHER"


class StampMeaning(StrEnum):
    SOE = "SOE"  # start of exposure (V4L2 TSTAMP_SRC_SOE)
    EOF = "EOF"  # end of frame: last pixel/sample transferred (V4L2 TSTAMP_SRC_EOF)
    PERIOD = "PERIOD"  # ALSA status tstamp: when hw_ptr/avail/delay were sampled
    TRIGGER = "TRIGGER"  # ALSA trigger_tstamp: stream start
    PTS = "PTS"  # PipeWire spa_meta_header.pts / pw_time.now: the producer's stamp
    UNKNOWN = "UNKNOWN"


_INT_FIELDS = (
    "seq",
    "raw_ns",
    "epoch",
    "sync_error_ns",
    "stamp_uncertainty_ns",
    "arrival_mono_ns",
)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True, slots=True)
class FrameRecord:
    source: SourceKind
    device: str
    seq: int
    raw_ns: int
    raw_clock: StampClock
    meaning: StampMeaning
    capture_mono_ns: int | None
    net_ns: int | None
    domain: str
    epoch: int
    synced: bool
    sync_error_ns: int
    stamp_uncertainty_ns: int
    arrival_mono_ns: int
    pts_ns: int | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            if not _is_int(getattr(self, name)):
                raise TypeError(f"FrameRecord.{name} must be int ns")
        for name in ("capture_mono_ns", "net_ns", "pts_ns"):
            v = getattr(self, name)
            if v is not None and not _is_int(v):
                raise TypeError(f"FrameRecord.{name} must be int ns or None")
        if self.sync_error_ns < 0 or self.stamp_uncertainty_ns < 0:
            raise ValueError("uncertainty components must be >= 0")

    @property
    def uncertainty_ns(self) -> int:
        return self.sync_error_ns + self.stamp_uncertainty_ns

    @property
    def latency_ns(self) -> int | None:
        """Arrival minus capture instant (diagnosis: how late the agent saw the frame)."""
        if self.capture_mono_ns is None:
            return None
        return self.arrival_mono_ns - self.capture_mono_ns

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": str(self.source),
            "device": self.device,
            "seq": self.seq,
            "raw_ns": self.raw_ns,
            "raw_clock": str(self.raw_clock),
            "meaning": str(self.meaning),
            "capture_mono_ns": self.capture_mono_ns,
            "net_ns": self.net_ns,
            "domain": self.domain,
            "epoch": self.epoch,
            "synced": self.synced,
            "uncertainty_ns": self.uncertainty_ns,
            "sync_error_ns": self.sync_error_ns,
            "stamp_uncertainty_ns": self.stamp_uncertainty_ns,
            "arrival_mono_ns": self.arrival_mono_ns,
        }
        if self.pts_ns is not None:
            d["pts_ns"] = self.pts_ns
        if self.flags:
            d["flags"] = list(self.flags)
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FrameRecord:
        try:
            flags = d.get("flags", [])
            extra = d.get("extra", {})
            if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
                raise RecordError("flags must be a list of strings")
            if not isinstance(extra, dict) or not all(
                isinstance(v, str) or _is_int(v) for v in extra.values()
            ):
                raise RecordError("extra must map to int or str")
            rec = cls(
                source=SourceKind(d["source"]),
                device=_str(d["device"]),
                seq=d["seq"],
                raw_ns=d["raw_ns"],
                raw_clock=StampClock(d["raw_clock"]),
                meaning=StampMeaning(d["meaning"]),
                capture_mono_ns=d.get("capture_mono_ns"),
                net_ns=d.get("net_ns"),
                domain=_str(d["domain"]),
                epoch=d["epoch"],
                synced=_bool(d["synced"]),
                sync_error_ns=d["sync_error_ns"],
                stamp_uncertainty_ns=d["stamp_uncertainty_ns"],
                arrival_mono_ns=d["arrival_mono_ns"],
                pts_ns=d.get("pts_ns"),
                flags=tuple(flags),
                extra=dict(extra),
            )
        except RecordError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise RecordError(f"bad frame record: {e!r}") from None
        if "uncertainty_ns" in d and d["uncertainty_ns"] != rec.uncertainty_ns:
            raise RecordError("uncertainty_ns != sync_error_ns + stamp_uncertainty_ns")
        return rec


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise RecordError("expected a string")
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise RecordError("expected a boolean")
    return v


def dumps(rec: FrameRecord) -> str:
    """One JSON line (no trailing newline)."""
    return json.dumps(rec.to_dict(), separators=(",", ":"), sort_keys=False)


def loads(line: str | bytes) -> FrameRecord:
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise RecordError(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise RecordError("a record must be a JSON object")
    return FrameRecord.from_dict(d)
