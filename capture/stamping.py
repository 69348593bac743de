"""Pure stamping: raw subsystem timestamps -> CLOCK_MONOTONIC capture instants -> network time.

No clock is read here: every time comes in as an argument, so all of this is unit-tested on fake
time. The pieces:

* :func:`realtime_to_monotonic`: a REALTIME stamp (V4L2 without TIMESTAMP_MONOTONIC, ALSA left at
  its gettimeofday default) mapped with a measured ``REALTIME - MONOTONIC`` offset
  (:mod:`netclock.platform.clockmap` measures it);
* :func:`eof_to_sof`: an end-of-frame stamp moved back one frame interval to the start of frame;
* :class:`SequenceTracker`: counts lost frames from sequence numbers, with wrap-around;
* :func:`alsa_first_frame_ns`: the capture instant of the first frame of the block just read,
  from ``snd_pcm_status`` (tstamp, delay) and the number of frames read;
* :func:`estimate_device_rate`: the audio device's real rate against MONOTONIC, from
  ``(tstamp - trigger_tstamp)`` against audio time, the ratio of the kernel's ALSA timestamping
  document;
* :class:`Stamper`: turns one raw stamp into a :class:`capture.frame.FrameRecord` through a
  :class:`capture.timedomain.TimeDomain`, with holdover growth of the bound when unsynced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from capture.frame import FrameRecord, SourceKind, StampClock, StampMeaning
from capture.timedomain import TimeDomain, convert

__all__ = [
    "DeviceRate",
    "RateSample",
    "RawStamp",
    "SequenceTracker",
    "Stamper",
    "alsa_first_frame_ns",
    "eof_to_sof",
    "estimate_device_rate",
    "frames_to_ns",
    "realtime_to_monotonic",
]

NS_PER_S = 1_000_000_000


def _div_round(num: int, den: int) -> int:
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def realtime_to_monotonic(realtime_ns: int, realtime_minus_mono_ns: int) -> int:
    """Map a CLOCK_REALTIME stamp to CLOCK_MONOTONIC given ``REALTIME - MONOTONIC``."""
    return realtime_ns - realtime_minus_mono_ns


def eof_to_sof(eof_ns: int, frame_interval_ns: int) -> int:
    """Start of frame from an end-of-frame stamp, assuming readout spans one frame interval."""
    if frame_interval_ns <= 0:
        raise ValueError("frame interval must be > 0")
    return eof_ns - frame_interval_ns


def frames_to_ns(frames: int, rate_hz: int) -> int:
    """Duration of ``frames`` audio frames at ``rate_hz`` (rounded to nearest ns)."""
    if rate_hz <= 0:
        raise ValueError("rate must be > 0")
    return _div_round(frames * NS_PER_S, rate_hz)


def alsa_first_frame_ns(tstamp_ns: int, delay_frames: int, frames_read: int, rate_hz: int) -> int:
    """Capture instant of the first frame of the block just read.

    For a capture stream ``delay`` (snd_pcm_status, sampled at ``tstamp``) is the number of frames
    already captured but not yet read (plus the hardware delay), so the newest frame captured at
    ``tstamp`` lies ``delay`` frames after the end of the block just read, whose first frame is
    ``delay + frames_read`` frames before ``tstamp``.
    """
    return tstamp_ns - frames_to_ns(delay_frames + frames_read, rate_hz)


class SequenceTracker:
    """Counts frames lost between sequence numbers (``modulus`` = wrap, e.g. 2**32 for V4L2).

    A jump forward of ``k > 1`` counts ``k - 1`` lost frames. A sequence number that does not
    advance (repeat or going back by less than half the modulus) counts as a ``reset``: the
    tracker restarts from it without inventing a gap.
    """

    __slots__ = ("frames", "gaps", "last", "lost", "modulus", "resets")

    def __init__(self, modulus: int = 1 << 64) -> None:
        if modulus < 2:
            raise ValueError("modulus must be >= 2")
        self.modulus = modulus
        self.last: int | None = None
        self.frames = 0
        self.lost = 0
        self.gaps = 0
        self.resets = 0

    def update(self, seq: int) -> int:
        """Feed one sequence number; return the frames lost just before it (0 if none)."""
        self.frames += 1
        seq %= self.modulus
        prev, self.last = self.last, seq
        if prev is None:
            return 0
        step = (seq - prev) % self.modulus
        if step == 0 or step > self.modulus // 2:
            self.resets += 1
            return 0
        lost = step - 1
        if lost:
            self.gaps += 1
            self.lost += lost
        return lost


@dataclass(frozen=True, slots=True)
class RateSample:
    """One status snapshot: system elapsed ``tstamp - trigger_tstamp`` and audio position.

    ``audio_frames`` is the device position since the trigger in frames (frames read + delay
    for capture), or use ``audio_ns`` when the hardware reports audio_tstamp.
    """

    system_elapsed_ns: int
    audio_frames: int


@dataclass(frozen=True, slots=True)
class DeviceRate:
    """Measured device rate (floats: statistics only)."""

    ratio: float
    """system elapsed / audio elapsed (the kernel doc's ratio); > 1 means the device is slow."""
    rate_hz: float
    ppm: float
    samples: int


def estimate_device_rate(samples: Sequence[RateSample], nominal_rate_hz: int) -> DeviceRate | None:
    """Least-squares slope of system elapsed time against audio time.

    The slope is insensitive to a constant offset (a late trigger stamp, a constant hardware
    delay). ``None`` with fewer than two distinct audio positions.
    """
    pts = [
        (s.audio_frames * NS_PER_S / nominal_rate_hz, float(s.system_elapsed_ns)) for s in samples
    ]
    if len(pts) < 2:
        return None
    mx = math.fsum(x for x, _ in pts) / len(pts)
    my = math.fsum(y for _, y in pts) / len(pts)
    sxx = math.fsum((x - mx) ** 2 for x, _ in pts)
    if sxx <= 0.0:
        return None
    slope = math.fsum((x - mx) * (y - my) for x, y in pts) / sxx
    if slope <= 0.0:
        return None
    return DeviceRate(
        ratio=slope,
        rate_hz=nominal_rate_hz / slope,
        ppm=(1.0 / slope - 1.0) * 1e6,
        samples=len(pts),
    )


@dataclass(frozen=True, slots=True)
class RawStamp:
    """What a source read for one frame, before conversion (see :meth:`Stamper.stamp`)."""

    seq: int
    raw_ns: int
    raw_clock: StampClock
    meaning: StampMeaning
    arrival_mono_ns: int
    stamp_uncertainty_ns: int = 0
    capture_offset_ns: int = 0
    pts_ns: int | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, int | str] | None = None
    count_gaps: bool = True


#: Default growth of the sync error bound while unsynced: 100 ppm of elapsed time.
DEFAULT_HOLDOVER_PPB = 100_000


class Stamper:
    """Raw stamp -> :class:`FrameRecord` for one source (device/stream).

    * REALTIME stamps need ``realtime_map`` (raw -> (mono, uncertainty), e.g.
      ``netclock.platform.clockmap.ClockMap.to_mono``) or a fixed ``realtime_offset_ns``
      (REALTIME - MONOTONIC) with ``realtime_offset_uncertainty_ns``. OTHER clocks (or
      REALTIME with neither) cannot be mapped: the record keeps the raw stamp, with
      ``net_ns`` None and flag ``unmapped_clock``.
    * EOF stamps are moved to the start of frame when ``eof_to_sof`` is set and
      ``frame_interval_ns`` is known (flag ``eof_to_sof``; else flag ``eof``).
    * When the domain is unsynced the record is flagged ``unsynced`` and its sync error is at
      least the last synced bound grown by ``holdover_ppb`` of the time since.
    * Sequence gaps are counted (flag ``gap``, ``extra['lost']``).
    """

    def __init__(
        self,
        domain: TimeDomain,
        source: SourceKind,
        device: str,
        *,
        seq_modulus: int = 1 << 64,
        realtime_offset_ns: int | None = None,
        realtime_offset_uncertainty_ns: int = 0,
        eof_to_sof: bool = False,
        frame_interval_ns: int | None = None,
        holdover_ppb: int = DEFAULT_HOLDOVER_PPB,
        realtime_map: Callable[[int], tuple[int, int]] | None = None,
    ) -> None:
        self.domain = domain
        self.source = source
        self.device = device
        self.seq = SequenceTracker(seq_modulus)
        self.realtime_offset_ns = realtime_offset_ns
        self.realtime_offset_uncertainty_ns = realtime_offset_uncertainty_ns
        self.eof_to_sof = eof_to_sof
        self.frame_interval_ns = frame_interval_ns
        self.holdover_ppb = holdover_ppb
        self.realtime_map = realtime_map
        self._last_synced: tuple[int, int] | None = None  # (mono, error bound)
        self.frames = 0
        self.unsynced = 0
        self.unmapped = 0

    def _sync_error(self, synced: bool, reported: int, mono: int) -> int:
        if synced:
            self._last_synced = (mono, reported)
            return reported
        if self._last_synced is None:
            return reported
        t0, e0 = self._last_synced
        grown = e0 + -(-abs(mono - t0) * self.holdover_ppb // NS_PER_S)
        return max(reported, grown)

    def stamp_raw(self, r: RawStamp) -> FrameRecord:
        return self.stamp(
            seq=r.seq,
            raw_ns=r.raw_ns,
            raw_clock=r.raw_clock,
            meaning=r.meaning,
            arrival_mono_ns=r.arrival_mono_ns,
            stamp_uncertainty_ns=r.stamp_uncertainty_ns,
            capture_offset_ns=r.capture_offset_ns,
            pts_ns=r.pts_ns,
            flags=r.flags,
            extra=r.extra,
            count_gaps=r.count_gaps,
        )

    def stamp(
        self,
        *,
        seq: int,
        raw_ns: int,
        raw_clock: StampClock,
        meaning: StampMeaning,
        arrival_mono_ns: int,
        stamp_uncertainty_ns: int = 0,
        capture_offset_ns: int = 0,
        pts_ns: int | None = None,
        flags: Sequence[str] = (),
        extra: Mapping[str, int | str] | None = None,
        count_gaps: bool = True,
    ) -> FrameRecord:
        """One record. ``capture_offset_ns`` is added to the MONOTONIC stamp to reach the
        instant the record stands for (e.g. ``-(delay + frames)/rate`` for ALSA)."""
        fl = list(flags)
        ex: dict[str, int | str] = dict(extra or {})
        unc = stamp_uncertainty_ns
        if count_gaps:
            lost = self.seq.update(seq)
            if lost:
                fl.append("gap")
                ex["lost"] = lost
        mono: int | None
        if raw_clock is StampClock.MONOTONIC:
            mono = raw_ns
        elif raw_clock is StampClock.REALTIME and self.realtime_map is not None:
            mono, map_unc = self.realtime_map(raw_ns)
            unc += map_unc
            fl.append("realtime_mapped")
        elif raw_clock is StampClock.REALTIME and self.realtime_offset_ns is not None:
            mono = realtime_to_monotonic(raw_ns, self.realtime_offset_ns)
            unc += self.realtime_offset_uncertainty_ns
            fl.append("realtime_mapped")
        else:
            mono = None
        if mono is not None:
            mono += capture_offset_ns
            if meaning is StampMeaning.EOF:
                if self.eof_to_sof and self.frame_interval_ns:
                    mono = eof_to_sof(mono, self.frame_interval_ns)
                    fl.append("eof_to_sof")
                else:
                    fl.append("eof")
        self.frames += 1
        net: int | None = None
        if mono is None:
            st = self.domain.status()
            self.unmapped += 1
            fl.append("unmapped_clock")
            sync_err = st.error_bound_ns
        else:
            net, st = convert(self.domain, mono)
            if net is None:
                fl.append("no_calibration")
            sync_err = self._sync_error(st.synced, st.error_bound_ns, mono)
        if not st.synced:
            self.unsynced += 1
            fl.append("unsynced")
        return FrameRecord(
            source=self.source,
            device=self.device,
            seq=seq,
            raw_ns=raw_ns,
            raw_clock=raw_clock,
            meaning=meaning,
            capture_mono_ns=mono,
            net_ns=net,
            domain=st.domain,
            epoch=st.epoch,
            synced=st.synced,
            sync_error_ns=sync_err,
            stamp_uncertainty_ns=unc,
            arrival_mono_ns=arrival_mono_ns,
            pts_ns=pts_ns,
            flags=tuple(fl),
            extra=ex,
        )
