"""PipeWire for real: headless daemon + WirePlumber + private D-Bus, started per test."""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import struct
import subprocess
import time
import wave
from pathlib import Path

from capture import pipewire as pw
from capture.frame import SourceKind, StampClock, StampMeaning
from capture.headless import HeadlessPipeWire
from capture.stamping import Stamper
from capture.timedomain import CalibrationDomain
from netclock.calibration import Calibration

STREAMING = pw.CONSTANTS["PW_STREAM_STATE_STREAMING"]


def _collect(c: pw.Consumer, n: int, timeout: float) -> list[pw.PwFrame]:
    got: list[pw.PwFrame] = []
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        with contextlib.suppress(queue.Empty):
            got.append(c.frames.get(timeout=0.2))
    return got


def test_producer_pts_reach_records_exactly(pipewire_session: HeadlessPipeWire) -> None:
    """Known pts in, the same raw stamps out (0 ns), across reconnects; gaps allowed."""
    cal = Calibration(internal=0, external=10**18, rate_num=1, rate_denom=1, epoch=1)
    dom = CalibrationDomain(cal, "test", error_bound_ns=100)
    prod = pw.Producer("netclock-producer")
    try:
        total = 0
        for rnd in range(2):
            with pw.Consumer("netclock-producer", "video", name=f"agent-{rnd}") as c:
                assert c.wait_state(STREAMING, 10), c.error
                frames = _collect(c, 8, 8)
            assert len(frames) >= 5, f"round {rnd}: only {len(frames)} frames"
            st = Stamper(dom, SourceKind.PIPEWIRE, "netclock-producer")
            for f in frames:
                rec = st.stamp_raw(pw.frame_to_raw(f))
                assert f.seq in prod.produced
                assert rec.raw_ns == prod.produced[f.seq] == rec.pts_ns
                assert rec.raw_clock is StampClock.MONOTONIC and rec.meaning is StampMeaning.PTS
                assert rec.net_ns == rec.raw_ns + 10**18
                assert rec.arrival_mono_ns >= rec.raw_ns  # seen after it was produced
                total += 1
            seqs = [f.seq for f in frames if f.seq is not None]
            assert seqs == sorted(seqs) and len(seqs) == len(frames)
        assert total >= 10
    finally:
        prod.close()


def test_video_test_source_spa(pipewire_session: HeadlessPipeWire) -> None:
    """PipeWire's own SPA videotestsrc: pts on a 40 ms grid that advances with seq (a frame the
    consumer missed shows in both), pts before arrival."""
    with pw.Consumer("ci-video-src", "video") as c:
        assert c.wait_state(STREAMING, 5), c.error
        frames = _collect(c, 5, 6)
    assert len(frames) >= 3
    pairs = [(f.seq, f.pts) for f in frames if f.seq is not None and f.pts is not None]
    assert len(pairs) == len(frames)
    for (s0, p0), (s1, p1) in itertools.pairwise(pairs):
        assert s1 > s0 and p1 - p0 == 40_000_000 * (s1 - s0)
    assert all(f.arrival_ns >= p for f, (_, p) in zip(frames, pairs, strict=True))


def _tone(path: Path, seconds: float = 3.0, rate: int = 48000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        frames = b"".join(
            struct.pack("<hh", v, v)
            for v in (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
        )
        w.writeframes(frames)


def test_audio_null_sink_monitor(pipewire_session: HeadlessPipeWire, tmp_path: Path) -> None:
    """Null-sink monitor capture while pw-play sends a tone: graph clock and pw_time advance by
    exactly one quantum per cycle, the tone arrives, and records place the first sample
    before pw_time.now."""
    wav = tmp_path / "tone.wav"
    _tone(wav)
    dom = CalibrationDomain.identity()
    with pw.Consumer("ci-null-sink", "audio", capture_sink=True, keep_data=True) as c:
        assert c.wait_state(STREAMING, 5), c.error
        player = subprocess.Popen(
            ["pw-play", "--target", "ci-null-sink", str(wav)],
            env=pipewire_session.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            frames = _collect(c, 150, 5)
        finally:
            player.terminate()
            player.wait(timeout=5)
    timed = [f for f in frames if f.time.now and f.clock is not None]
    assert len(timed) >= 20
    st = Stamper(dom, SourceKind.PIPEWIRE, "ci-null-sink")
    recs = [st.stamp_raw(pw.frame_to_raw(f)) for f in timed]

    def cycle_start(f: pw.PwFrame) -> tuple[int, int]:
        """(ticks, now) of the cycle that filled this buffer (older if more wait behind it)."""
        behind = f.time.avail_buffers * (f.size // f.stride)
        return f.time.ticks - behind, f.time.now - behind * 1_000_000_000 // f.time.rate_denom

    for (a, b), rb in zip(itertools.pairwise(timed), recs[1:], strict=True):
        assert a.clock is not None
        dur = a.clock.duration
        (ta, na), (tb, nb) = cycle_start(a), cycle_start(b)
        cycles, rem = divmod(tb - ta, dur)
        assert rem == 0 and cycles >= 1  # one buffer per cycle; a late consumer may lose some
        assert abs((nb - na) - cycles * dur * 1_000_000_000 // a.time.rate_denom) <= 2 * cycles
        assert rb.extra.get("lost", 0) == cycles - 1  # ... and the record says so
    peak = max(
        max(
            (abs(v) for (v,) in struct.iter_unpack("<f", f.data[: len(f.data) // 4 * 4])),
            default=0.0,
        )
        for f in frames
        if f.data
    )
    assert peak > 0.1  # 8000/32768 ≈ 0.24 full scale
    rec = recs[-1]
    f = timed[-1]
    assert rec.meaning is StampMeaning.PERIOD and rec.raw_ns == f.time.now
    frames_in = f.size // f.stride * (1 + f.time.avail_buffers)
    assert rec.capture_mono_ns == f.time.now - round(
        (f.time.delay + frames_in) * 1e9 / f.time.rate_denom
    )
    assert rec.stamp_uncertainty_ns > 0
