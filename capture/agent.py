"""The capture agent: a source's raw stamps -> stamped records -> a durable JSON Lines file.

* :func:`parse_source` understands ``pipewire:TARGET``, ``alsa:DEVICE``, ``v4l2:/dev/videoN``.
* A :class:`Source` yields :class:`capture.stamping.RawStamp` batches; :class:`Agent` stamps them
  through a :class:`capture.stamping.Stamper` (whatever the sync state: unsynced frames are
  written, flagged, with a growing bound) and hands them to :class:`RecordWriter`.
* :class:`RecordWriter` appends one line per record, flushes after every batch (so a crash loses
  at most what the kernel had not written back, never what Python held), and fsyncs on close.
  The CLI turns SIGTERM/SIGINT into a stop request: the loop finishes its batch, drains what the
  source already has queued, writes it, fsyncs and exits.
* :class:`Metrics`: frames, lost frames (gaps), dropped, unsynced, unmapped, stamp-to-arrival
  latency; :meth:`Agent.stats` is what ``--metrics-port`` exports (``netclock_capture_*`` in
  :mod:`netclock.metrics`).
"""

from __future__ import annotations

import bisect
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from capture.frame import FrameRecord, SourceKind, StampClock, dumps
from capture.stamping import RawStamp, Stamper, frames_to_ns
from capture.timedomain import TimeDomain
from netclock.metrics import CAPTURE_LATENCY_BUCKETS_NS, CaptureStats

__all__ = [
    "Agent",
    "Metrics",
    "RecordWriter",
    "Source",
    "SourceSpec",
    "open_source",
    "parse_source",
]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    target: str


def parse_source(text: str) -> SourceSpec:
    kind, sep, target = text.partition(":")
    if not sep or not target:
        raise ValueError(f"source {text!r}: expected pipewire:TARGET, alsa:DEVICE or v4l2:PATH")
    try:
        k = SourceKind(kind)
    except ValueError:
        raise ValueError(f"source kind {kind!r}: expected pipewire, alsa or v4l2") from None
    return SourceSpec(k, target)


class Source(Protocol):
    kind: SourceKind
    device: str

    def read(self, timeout: float) -> list[RawStamp]:
        """Block up to about ``timeout`` s; return the stamps that arrived (maybe none)."""

    def drain(self) -> list[RawStamp]:
        """Whatever is already queued, without blocking (called once when stopping)."""

    def stamper_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`Stamper` (sequence modulus, frame interval...)."""

    def close(self) -> None: ...


class PipeWireSource:
    kind = SourceKind.PIPEWIRE

    def __init__(
        self,
        target: str,
        media: str = "video",
        *,
        capture_sink: bool = False,
        connect_timeout: float = 5.0,
    ) -> None:
        from capture import pipewire

        self._pw = pipewire
        self.device = target
        self.consumer = pipewire.Consumer(target, media, capture_sink=capture_sink)
        if not self.consumer.wait_state(
            pipewire.CONSTANTS["PW_STREAM_STATE_STREAMING"], connect_timeout
        ):
            err = self.consumer.error
            self.consumer.close()
            raise OSError(f"pipewire stream to {target!r} did not start: {err or 'timeout'}")

    def read(self, timeout: float) -> list[RawStamp]:
        try:
            first = self.consumer.frames.get(timeout=timeout)
        except queue.Empty:
            return []
        return [self._pw.frame_to_raw(first), *self.drain()]

    def drain(self) -> list[RawStamp]:
        out = []
        while True:
            try:
                out.append(self._pw.frame_to_raw(self.consumer.frames.get_nowait()))
            except queue.Empty:
                return out

    def stamper_options(self) -> dict[str, Any]:
        return {}

    @property
    def dropped(self) -> int:
        """Frames the consumer could not queue because the agent fell behind."""
        return self.consumer.overflows

    def close(self) -> None:
        self.consumer.close()


class AlsaSource:
    kind = SourceKind.ALSA

    def __init__(self, device: str, *, rate: int = 48000, channels: int = 2) -> None:
        from capture import alsa

        self._alsa = alsa
        self.device = device
        self.cap = alsa.AlsaCapture(device, rate=rate, channels=channels)
        self.rate_samples: list[Any] = []
        period_ns = frames_to_ns(self.cap.period_size, self.cap.rate)
        self.stall_ns = max(1_000_000_000, 20 * period_ns)
        """No period for this long while waiting: the stream is restarted."""
        self._last_period_ns = time.monotonic_ns()

    #: The longest single ``snd_pcm_wait``. pipewire-alsa 0.3.65 on the headless test graph
    #: (2026-12-04): a stream started and waited on in 200 ms polls never delivered (0 of ~160
    #: starts), in polls of 10-100 ms it did after a few stall restarts (3-4 s, 10 of 10 runs),
    #: as the in-process test always did with 100 ms. The agent loop calls read() again.
    WAIT_SLICE_S = 0.1

    def read(self, timeout: float) -> list[RawStamp]:
        if not self.cap.wait(max(1, int(min(timeout, self.WAIT_SLICE_S) * 1000))):
            # Nothing this time (the agent loop checks for a stop request). A stream that
            # stays silent for many periods is stalled: restart it (a new trigger).
            if time.monotonic_ns() - self._last_period_ns > self.stall_ns:
                self.cap.restart()
                self.rate_samples.clear()
                self._last_period_ns = time.monotonic_ns()
            return []
        p = self.cap.read_period()  # one period is ready (or an xrun to recover)
        self._last_period_ns = p.arrival_ns
        self.rate_samples.append(p.rate_sample())
        del self.rate_samples[:-4096]
        return [self._alsa.period_to_raw(p)]

    def drain(self) -> list[RawStamp]:
        return []

    def stamper_options(self) -> dict[str, Any]:
        return {}

    @property
    def dropped(self) -> int:
        """Overruns: audio the device overwrote before it was read."""
        return int(self.cap.xruns)

    def report(self) -> dict[str, Any]:
        """Device rate against CLOCK_MONOTONIC from (tstamp - trigger) vs position."""
        from capture.stamping import estimate_device_rate

        est = estimate_device_rate(self.rate_samples, self.cap.rate)
        restarts = {"stream_restarts": self.cap.restarts} if self.cap.restarts else {}
        if est is None:
            return restarts
        rate = {"device_rate_hz": round(est.rate_hz, 3), "device_rate_ppm": round(est.ppm, 3)}
        return {**restarts, **rate}

    def close(self) -> None:
        self.cap.close()


class V4l2Source:
    kind = SourceKind.V4L2

    def __init__(
        self,
        path: str,
        *,
        io: Any = None,
        n_buffers: int = 4,
        copy_clock: str = "other",
        unknown_clock: str = "other",
    ) -> None:
        from capture import v4l2

        self._v4l2 = v4l2
        self.device = path
        self.copy_clock = _clock_arg(copy_clock)
        self.unknown_clock = _clock_arg(unknown_clock)
        self.cap = v4l2.V4l2Capture(
            io if io is not None else v4l2.DeviceIO(path), n_buffers=n_buffers
        )
        self.ended = False

    def read(self, timeout: float) -> list[RawStamp]:
        if self.ended:
            return []
        try:
            f = self.cap.read_frame()
        except OSError as e:
            if e.errno in (19, 5):  # ENODEV, EIO: device gone
                self.ended = True
                return []
            raise
        return [
            self._v4l2.frame_to_raw(f, copy_clock=self.copy_clock, unknown_clock=self.unknown_clock)
        ]

    def drain(self) -> list[RawStamp]:
        return []

    def stamper_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "seq_modulus": 1 << 32,
            "frame_interval_ns": self.cap.frame_interval_ns,
        }
        if StampClock.REALTIME in (self.copy_clock, self.unknown_clock):
            from netclock.platform.clockmap import ClockMap

            cmap = ClockMap()

            def to_mono(realtime_ns: int) -> tuple[int, int]:
                m = cmap.to_mono(realtime_ns)
                return m.mono_ns, m.uncertainty_ns

            opts["realtime_map"] = to_mono
        return opts

    def close(self) -> None:
        self.cap.close()


def _clock_arg(name: str) -> StampClock:
    try:
        return StampClock(name.upper())
    except ValueError:
        raise ValueError(f"clock {name!r}: expected monotonic, realtime or other") from None


def open_source(spec: SourceSpec, **options: Any) -> Source:
    if spec.kind is SourceKind.PIPEWIRE:
        return PipeWireSource(spec.target, **options)
    if spec.kind is SourceKind.ALSA:
        return AlsaSource(spec.target, **options)
    return V4l2Source(spec.target, **options)


class RecordWriter:
    """Append records as JSON Lines; flush per batch, fsync on :meth:`sync`/:meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self.written = 0

    def write_batch(self, records: Iterable[FrameRecord]) -> None:
        lines = [dumps(r) + "\n" for r in records]
        if lines:
            self._fh.write("".join(lines))
            self._fh.flush()
            self.written += len(lines)

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


@dataclass
class Metrics:
    """Counters and a latency summary (floats only for the statistics)."""

    frames: int = 0
    dropped: int = 0
    """Lost inside the agent (queue overflow, ALSA overrun), as opposed to ``lost`` (sequence
    gaps reported by the subsystem)."""
    lost: int = 0
    gaps: int = 0
    unsynced: int = 0
    unmapped: int = 0
    latency_ns: list[int] = field(default_factory=list)
    max_latency_samples: int = 100_000
    latency_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(CAPTURE_LATENCY_BUCKETS_NS) + 1)
    )
    """Every latency observed, per bucket of the exported histogram (the samples list above
    stops growing at ``max_latency_samples``; these never stop)."""
    latency_sum_ns: int = 0
    last_uncertainty_ns: int | None = None
    last_synced: bool | None = None

    def update(self, records: Iterable[FrameRecord]) -> None:
        for r in records:
            self.last_uncertainty_ns = r.uncertainty_ns
            self.last_synced = r.synced
            self.frames += 1
            lost = r.extra.get("lost", 0)
            if isinstance(lost, int) and lost:
                self.gaps += 1
                self.lost += lost
            if not r.synced:
                self.unsynced += 1
            if r.capture_mono_ns is None:
                self.unmapped += 1
            lat = r.latency_ns
            if lat is not None:
                self.latency_buckets[bisect.bisect_left(CAPTURE_LATENCY_BUCKETS_NS, lat)] += 1
                self.latency_sum_ns += lat
                if len(self.latency_ns) < self.max_latency_samples:
                    self.latency_ns.append(lat)

    def stats(self, source: str, kind: str) -> CaptureStats:
        """The exported view (:mod:`netclock.metrics`)."""
        return CaptureStats(
            source=source,
            kind=kind,
            frames=self.frames,
            gaps=self.gaps,
            lost=self.lost,
            dropped=self.dropped,
            unsynced=self.unsynced,
            unmapped=self.unmapped,
            latency_buckets=tuple(self.latency_buckets),
            latency_sum_ns=self.latency_sum_ns,
            uncertainty_ns=self.last_uncertainty_ns,
            synced=self.last_synced,
        )

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latency_ns)

        def q(p: float) -> int | None:
            return lat[min(len(lat) - 1, math.floor(p * len(lat)))] if lat else None

        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "lost": self.lost,
            "gaps": self.gaps,
            "unsynced": self.unsynced,
            "unmapped": self.unmapped,
            "latency_ns_p50": q(0.5),
            "latency_ns_p99": q(0.99),
            "latency_ns_max": lat[-1] if lat else None,
        }


class Agent:
    """Loop: read a batch, stamp it, write it; on stop, drain, write, fsync."""

    def __init__(
        self,
        source: Source,
        domain: TimeDomain,
        writer: RecordWriter,
        *,
        eof_to_sof: bool = False,
        holdover_ppb: int | None = None,
        on_batch: Callable[[list[FrameRecord]], None] | None = None,
    ) -> None:
        opts = dict(source.stamper_options())
        opts["eof_to_sof"] = eof_to_sof
        if holdover_ppb is not None:
            opts["holdover_ppb"] = holdover_ppb
        self.source = source
        self.stamper = Stamper(domain, source.kind, source.device, **opts)
        self.writer = writer
        self.metrics = Metrics()
        self._metrics_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.on_batch = on_batch

    def stop(self) -> None:
        self.stop_event.set()

    def stats(self, source: str) -> CaptureStats:
        """A consistent copy of the counters (safe to call from the metrics HTTP thread)."""
        with self._metrics_lock:
            return self.metrics.stats(source, str(self.source.kind))

    def summary(self) -> dict[str, Any]:
        """Metrics plus whatever the source reports (e.g. the ALSA device rate)."""
        out = self.metrics.summary()
        report = getattr(self.source, "report", None)
        if callable(report):
            out.update(report())
        return out

    def _write(self, raws: list[RawStamp]) -> None:
        recs = [self.stamper.stamp_raw(r) for r in raws]
        self.writer.write_batch(recs)
        with self._metrics_lock:
            self.metrics.update(recs)
            self.metrics.dropped = int(getattr(self.source, "dropped", 0))
        if self.on_batch is not None and recs:
            self.on_batch(recs)

    def run(
        self,
        *,
        max_frames: int | None = None,
        duration_ns: int | None = None,
        now: Callable[[], int] | None = None,
        batch_timeout: float = 0.2,
    ) -> Metrics:
        end = None
        if duration_ns is not None and now is not None:
            end = now() + duration_ns
        try:
            while not self.stop_event.is_set():
                self._write(self.source.read(batch_timeout))
                if max_frames is not None and self.metrics.frames >= max_frames:
                    break
                if end is not None and now is not None and now() >= end:
                    break
                if getattr(self.source, "ended", False):
                    break
        finally:
            try:
                self._write(self.source.drain())
            finally:
                try:
                    self.source.close()
                finally:
                    self.writer.sync()
        return self.metrics
