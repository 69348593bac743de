"""Agent loop, durable writer, metrics, align and the SharedClock adapter (no PipeWire needed)."""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from capture.agent import Agent, RecordWriter, V4l2Source, parse_source
from capture.align import align, load, pair, write_histogram_png
from capture.frame import FrameRecord, SourceKind, StampClock, StampMeaning, dumps
from capture.stamping import Stamper
from capture.timedomain import CalibrationDomain, NoCalibration, SharedClockDomain, SyncStatus
from capture.v4l2 import CONSTANTS as K
from capture.v4l2replay import ReplayIO
from netclock.calibration import Calibration

MONO_SOE = K["V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC"] | K["V4L2_BUF_FLAG_TSTAMP_SRC_SOE"]


def _replay(seqs: list[int], t0_us: int = 5_000_000) -> ReplayIO:
    return ReplayIO(
        [
            {
                "seq": s,
                "sec": (t0_us + 40_000 * s) // 10**6,
                "usec": (t0_us + 40_000 * s) % 10**6,
                "flags": MONO_SOE,
            }
            for s in seqs
        ],
        timeperframe=(1, 25),
    )


def test_parse_source() -> None:
    assert parse_source("pipewire:ci-video-src").kind is SourceKind.PIPEWIRE
    assert parse_source("v4l2:/dev/video0").target == "/dev/video0"
    assert parse_source("alsa:hw:0,0").target == "hw:0,0"
    for bad in ("pipewire", "usb:x", "alsa:"):
        with pytest.raises(ValueError):
            parse_source(bad)


def test_agent_writes_every_frame_with_metrics(tmp_path: Path) -> None:
    seqs = [0, 1, 2, 5, 6]
    out = tmp_path / "v.jsonl"
    w = RecordWriter(out)
    src = V4l2Source("/dev/video0", io=_replay(seqs))
    agent = Agent(src, CalibrationDomain.identity(), w)
    m = agent.run()
    w.close()
    recs, bad = load(out)
    assert bad == 0 and [r.seq for r in recs] == seqs
    s = m.summary()
    assert (s["frames"], s["lost"], s["gaps"], s["unsynced"]) == (5, 2, 1, 0)
    assert s["latency_ns_p50"] is not None  # arrival (now) minus a stamp from 1970+5 s
    assert agent.stamper.frame_interval_ns == 40_000_000


class _LosingDomain:
    """A domain that loses sync after N status calls (a master that goes away)."""

    def __init__(self, after: int) -> None:
        self.calls, self.after = 0, after

    def to_network(self, mono_ns: int) -> int:
        return mono_ns + 7

    def status(self) -> SyncStatus:
        self.calls += 1
        return SyncStatus(self.calls <= self.after, 500, 2, "ptp:0")


def test_unsynced_frames_are_written_flagged_with_growing_bound(tmp_path: Path) -> None:
    out = tmp_path / "u.jsonl"
    w = RecordWriter(out)
    agent = Agent(
        V4l2Source("/dev/video0", io=_replay(list(range(6)))),
        _LosingDomain(2),
        w,
        holdover_ppb=1_000_000,
    )
    m = agent.run()
    w.close()
    recs, _ = load(out)
    assert len(recs) == 6 and m.unsynced == 4
    assert [r.synced for r in recs] == [True, True, False, False, False, False]
    unsynced = [r for r in recs if not r.synced]
    assert all("unsynced" in r.flags and r.net_ns is not None for r in unsynced)
    bounds = [r.sync_error_ns for r in unsynced]
    assert bounds == sorted(bounds) and bounds[0] > 500 and len(set(bounds)) == 4
    # 1000 ppm of 40 ms per frame after the last synced one: +40 µs per frame.
    assert bounds == [500 + 40_000 * k for k in range(1, 5)]


def test_writer_appends_and_flushes_per_batch(tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    rec = FrameRecord(
        SourceKind.ALSA,
        "pcm",
        0,
        1,
        StampClock.MONOTONIC,
        StampMeaning.PERIOD,
        1,
        1,
        "d",
        0,
        True,
        0,
        0,
        2,
    )
    w = RecordWriter(out)
    w.write_batch([rec, replace(rec, seq=1)])
    assert out.read_text().count("\n") == 2  # visible before close: flushed
    w.close()
    w2 = RecordWriter(out)
    w2.write_batch([replace(rec, seq=2)])
    w2.close()
    assert [r.seq for r in load(out)[0]] == [0, 1, 2]


def _mk(
    seq: int, net: int | None, unc: int, pts: int | None = None, synced: bool = True
) -> FrameRecord:
    return FrameRecord(
        SourceKind.PIPEWIRE,
        "x",
        seq,
        0,
        StampClock.MONOTONIC,
        StampMeaning.PTS,
        0,
        net,
        "ptp:0",
        0,
        synced,
        unc,
        0,
        0,
        pts_ns=pts,
    )


def test_align_pairs_and_fraction_inside(tmp_path: Path) -> None:
    a = [_mk(s, 1000 * s + d, 100, pts=s * 7) for s, d in ((0, 0), (1, 50), (2, -250), (3, 10))]
    b = [_mk(s, 1000 * s, 100, pts=s * 7) for s in (1, 2, 3, 4)] + [_mk(9, None, 5, pts=63)]
    assert [(x.seq, y.seq) for x, y in pair(a, b)] == [(1, 1), (2, 2), (3, 3)]
    res = align(a, b)
    assert res.deltas_ns == (50, -250, 10)
    assert res.inside == 2 and res.fraction_inside == pytest.approx(2 / 3)
    assert (res.only_a, res.only_b, res.pairs) == (1, 2, 3)
    assert res.abs_quantile(0.5) == 50 and res.abs_quantile(1.0) == 250
    by_pts = align(a, b, "pts")
    assert by_pts.deltas_ns == res.deltas_ns
    # torn last line (power cut) is counted, not fatal
    p = tmp_path / "t.jsonl"
    p.write_text(dumps(a[0]) + "\n" + dumps(a[1])[:20])
    recs, bad = load(p)
    assert len(recs) == 1 and bad == 1


def test_histogram_png_is_valid(tmp_path: Path) -> None:
    p = tmp_path / "h.png"
    lo, hi, counts = write_histogram_png(
        [-300, -10, 0, 5, 5, 40, 900], p, bound_ns=200, bins=10, width=200, height=100
    )
    assert (lo, hi, sum(counts)) == (-300, 900, 7)
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (200, 100)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_len])
    assert len(raw) == h * (1 + 3 * w)
    assert b"\x28\x5a\xc8" in raw  # the bar colour is drawn


def test_shared_clock_adapter_on_real_shm(tmp_path: Path) -> None:
    """The adapter over netclock.client.SharedClock reading a file ShmWriter publishes."""
    client = pytest.importorskip("netclock.client")
    shm_writer = pytest.importorskip("netclock.platform.shm_writer")
    from netclock.observe import LockState, Timescale
    from netclock.shm import DomainRecord

    path = tmp_path / "clock.shm"
    now = time.monotonic_ns()
    cal = Calibration(
        internal=now, external=1_700_000_000 * 10**9, rate_num=1, rate_denom=1, epoch=3
    )
    w = shm_writer.ShmWriter(path)
    try:
        # Daemon up, no calibration yet: frames are still stamped, with no network time.
        w.publish(
            [
                DomainRecord(
                    domain=0,
                    calibration=None,
                    lock_state=LockState.FREERUN,
                    timescale=Timescale.TAI,
                    update_mono_ns=now,
                )
            ]
        )
        dom = SharedClockDomain(client.SharedClock(path))
        early = Stamper(dom, SourceKind.V4L2, "/dev/video0").stamp(
            seq=0,
            raw_ns=now,
            raw_clock=StampClock.MONOTONIC,
            meaning=StampMeaning.SOE,
            arrival_mono_ns=now,
        )
        assert early.net_ns is None and not early.synced
        assert "no_calibration" in early.flags and "unsynced" in early.flags
        with pytest.raises(NoCalibration):
            dom.to_network(now)
        w.publish(
            [
                DomainRecord(
                    domain=0,
                    calibration=cal,
                    lock_state=LockState.LOCKED,
                    timescale=Timescale.TAI,
                    error_bound_ns=800,
                    update_mono_ns=now,
                )
            ]
        )
        st = dom.status()
        assert st.synced and st.epoch == 3 and st.error_bound_ns >= 800
        assert st.domain.startswith("TAI:0")
        assert dom.to_network(now + 5) == 1_700_000_000 * 10**9 + 5
        w.publish(
            [
                DomainRecord(
                    domain=0,
                    calibration=cal,
                    lock_state=LockState.HOLDOVER,
                    timescale=Timescale.TAI,
                    error_bound_ns=900,
                    update_mono_ns=now,
                )
            ]
        )
        assert dom.status().synced is False
    finally:
        w.close(unlink=True)
    # Daemon gone: status says unsynced, conversions continue on the last calibration.
    st2 = dom.status()
    assert st2.synced is False and st2.domain.startswith("TAI:0")
    assert dom.to_network(now + 9) == 1_700_000_000 * 10**9 + 9


def test_json_lines_are_one_object_each(tmp_path: Path) -> None:
    out = tmp_path / "j.jsonl"
    w = RecordWriter(out)
    Agent(V4l2Source("/dev/video0", io=_replay([0, 1])), CalibrationDomain.identity(), w).run()
    w.close()
    for line in out.read_text().splitlines():
        d = json.loads(line)
        assert isinstance(d["raw_ns"], int) and isinstance(d["net_ns"], int)


def test_cli_refuses_bad_source_and_missing_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from netclock.cli.main import main

    out = str(tmp_path / "x.jsonl")
    assert main(["capture", "--source", "usb:1", "--out", out]) == 2
    assert (
        main(
            [
                "capture",
                "--source",
                "v4l2:/dev/video0",
                "--out",
                out,
                "--shm",
                str(tmp_path / "none.shm"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "usb" in err and "not running" in err
    assert not Path(out).exists()


def test_capture_output_replays_as_its_own_fixture(tmp_path: Path) -> None:
    """A capture file from a real camera is a replay fixture: capture -> replay -> capture
    gives the same raw stamps, sequences, flags and meanings."""
    eof_copy = K["V4L2_BUF_FLAG_TIMESTAMP_COPY"] | K["V4L2_BUF_FLAG_TSTAMP_SRC_EOF"]
    first = ReplayIO(
        [
            {"seq": 0, "sec": 12, "usec": 345_678, "flags": MONO_SOE, "bytesused": 1000},
            {"seq": 2, "sec": 12, "usec": 412_345, "flags": eof_copy},
        ]
    )
    outs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    for out, io in ((outs[0], first), (outs[1], None)):
        w = RecordWriter(out)
        src_io = io if io is not None else ReplayIO.from_capture_file(outs[0])
        Agent(V4l2Source("/dev/video0", io=src_io), CalibrationDomain.identity(), w).run()
        w.close()
    a, b = load(outs[0])[0], load(outs[1])[0]
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert (x.seq, x.raw_ns, x.raw_clock, x.meaning, x.extra["v4l2_flags"]) == (
            y.seq,
            y.raw_ns,
            y.raw_clock,
            y.meaning,
            y.extra["v4l2_flags"],
        )
    assert a[0].extra["bytesused"] == 1000 and a[1].raw_clock is StampClock.OTHER


def test_v4l2_unknown_clock_realtime_mapped_with_clockmap(tmp_path: Path) -> None:
    """Pre-3.9 drivers stamp with gettimeofday: with --unknown-clock realtime the stamps go
    through netclock's REALTIME->MONOTONIC ClockMap (real clock reads) into the domain."""
    rt0, mono0 = time.time_ns(), time.monotonic_ns()
    rt_us = [rt0 // 1000 + 40_000 * i for i in range(3)]
    io = ReplayIO(
        [
            {
                "seq": i,
                "sec": t // 10**6,
                "usec": t % 10**6,
                "flags": K["V4L2_BUF_FLAG_TSTAMP_SRC_SOE"],
            }
            for i, t in enumerate(rt_us)
        ]
    )
    w = RecordWriter(tmp_path / "rt.jsonl")
    src = V4l2Source("/dev/video0", io=io, unknown_clock="realtime")
    Agent(src, CalibrationDomain.identity(), w).run()
    w.close()
    recs, _ = load(tmp_path / "rt.jsonl")
    assert len(recs) == 3
    for r, t in zip(recs, rt_us, strict=True):
        assert r.raw_clock is StampClock.REALTIME and "realtime_mapped" in r.flags
        assert r.capture_mono_ns is not None
        # REALTIME - MONOTONIC read back to back above: agrees to well within 1 ms
        assert abs(r.capture_mono_ns - (t * 1000 - (rt0 - mono0))) < 1_000_000
        assert r.stamp_uncertainty_ns >= 1000
