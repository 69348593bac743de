"""Capture agent figures on a headless PipeWire session: stamp-to-arrival latency per path, and
the CPU cost of stamping + serialising one record.

Run: ``python bench/capture_latency.py [--frames N]`` (needs pipewire, wireplumber, dbus,
pipewire-alsa). Prints tables; asserts nothing. Latency = when Python got the frame minus the
instant the record stands for – diagnosis only, it is never used as a stamp.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import tempfile
import time
from pathlib import Path

from capture import alsa
from capture import pipewire as pw
from capture.frame import SourceKind, StampClock, StampMeaning, dumps
from capture.headless import HeadlessPipeWire
from capture.stamping import RawStamp, Stamper
from capture.timedomain import CalibrationDomain
from netclock.calibration import Calibration


def _row(name: str, vals: list[int]) -> str:
    if not vals:
        return f"{name:<34} {'-':>8}"
    s = sorted(vals)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1e6

    return (
        f"{name:<34} {len(s):>6} {q(0.0):>9.3f} {q(0.5):>9.3f} {q(0.9):>9.3f} "
        f"{q(0.99):>9.3f} {s[-1] / 1e6:>9.3f}"
    )


def _pipewire_video(n: int) -> tuple[list[int], list[int]]:
    lat: list[int] = []
    exact: list[int] = []
    prod = pw.Producer("bench-producer")
    try:
        with pw.Consumer("bench-producer", "video") as c:
            c.wait_state(pw.CONSTANTS["PW_STREAM_STATE_STREAMING"], 5)
            end = time.monotonic() + n / 25 + 5
            while len(lat) < n and time.monotonic() < end:
                try:
                    f = c.frames.get(timeout=0.5)
                except queue.Empty:
                    continue
                if f.pts is not None and f.seq is not None:
                    lat.append(f.arrival_ns - f.pts)
                    exact.append(int(prod.produced.get(f.seq) == f.pts))
    finally:
        prod.close()
    return lat, exact


def _pipewire_audio(n: int) -> list[int]:
    lat: list[int] = []
    with pw.Consumer("ci-null-sink", "audio", capture_sink=True) as c:
        c.wait_state(pw.CONSTANTS["PW_STREAM_STATE_STREAMING"], 5)
        st = Stamper(CalibrationDomain.identity(), SourceKind.PIPEWIRE, "ci-null-sink")
        end = time.monotonic() + 10
        while len(lat) < n and time.monotonic() < end:
            try:
                f = c.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            r = st.stamp_raw(pw.frame_to_raw(f))
            if r.latency_ns is not None and f.time.now:
                lat.append(r.latency_ns)
    return lat


def _alsa(n: int) -> tuple[list[int], list[int]]:
    os.environ["PIPEWIRE_NODE"] = "ci-audio-src"
    lat: list[int] = []
    spacing: list[int] = []
    with alsa.AlsaCapture("pipewire") as cap:
        prev = None
        for _ in range(n):
            p = cap.read_period()
            lat.append(p.arrival_ns - p.first_frame_ns)
            if prev is not None:
                spacing.append(p.tstamp_ns - prev)
            prev = p.tstamp_ns
    return lat, spacing


def _stamp_cost(n: int) -> float:
    dom = CalibrationDomain(Calibration(0, 10**18, 1_000_001, 1_000_000, 1), "ptp:0", 100)
    st = Stamper(dom, SourceKind.V4L2, "/dev/video0")
    raws = [
        RawStamp(
            i,
            10**12 + i * 40_000_000,
            StampClock.MONOTONIC,
            StampMeaning.SOE,
            10**12 + i * 40_000_000 + 1_000_000,
        )
        for i in range(n)
    ]
    t0 = time.perf_counter_ns()
    for r in raws:
        dumps(st.stamp_raw(r))
    return (time.perf_counter_ns() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    print(f"stamp + dumps: {_stamp_cost(20_000):.0f} ns per record (CPU cost, 20000 records)")
    with tempfile.TemporaryDirectory() as d:
        s = HeadlessPipeWire(Path(d))
        s.start()
        try:
            s.apply_env()
            vid, exact = _pipewire_video(args.frames)
            aud = _pipewire_audio(args.frames)
            al, spacing = _alsa(args.frames)
        finally:
            s.stop()
    print(
        f"\n{'stamp-to-arrival latency (ms)':<34} {'n':>6} {'min':>9} {'p50':>9} {'p90':>9} "
        f"{'p99':>9} {'max':>9}"
    )
    print(_row("pipewire video (Producer pts)", vid))
    print(_row("pipewire audio (null-sink monitor)", aud))
    print(_row("alsa 'pipewire' PCM (first frame)", al))
    print(_row("alsa period tstamp spacing", spacing))
    print(f"\npipewire video: consumer pts == producer pts for {sum(exact)}/{len(exact)} frames")
    if spacing:
        print(f"alsa spacing stdev: {statistics.pstdev(spacing) / 1e3:.1f} µs")


if __name__ == "__main__":
    main()
