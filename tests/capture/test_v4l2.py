"""V4L2: layout vs <linux/videodev2.h>, and recorded DQBUF results replayed through the loop."""

from __future__ import annotations

import ctypes
import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from capture import v4l2
from capture.frame import SourceKind, StampClock, StampMeaning
from capture.stamping import Stamper
from capture.timedomain import CalibrationDomain
from capture.v4l2replay import ReplayIO
from netclock.calibration import Calibration

PROBE = Path(__file__).parent / "probes" / "v4l2_layout.c"
K = v4l2.CONSTANTS
MONO, COPY = K["V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC"], K["V4L2_BUF_FLAG_TIMESTAMP_COPY"]
SOE, EOF = K["V4L2_BUF_FLAG_TSTAMP_SRC_SOE"], K["V4L2_BUF_FLAG_TSTAMP_SRC_EOF"]


def test_layout_ioctls_and_constants_match_header(tmp_path: Path) -> None:
    if shutil.which("gcc") is None or not Path("/usr/include/linux/videodev2.h").exists():
        pytest.skip("gcc or linux-libc-dev not installed")
    exe = tmp_path / "probe"
    subprocess.run(["gcc", "-o", str(exe), str(PROBE)], check=True, timeout=60)
    c = json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    c.pop("end")
    checked = 0
    for key, value in c.items():
        if key.startswith("sizeof "):
            got = ctypes.sizeof(v4l2.STRUCTS[key.split()[1]])
        elif key.startswith("offsetof "):
            s, f = key.split()[1].split(".")
            got = getattr(v4l2.STRUCTS[s], f).offset
        elif key.startswith("VIDIOC_"):
            got = v4l2.IOCTLS[key]
        else:
            got = K[key]
        assert got == value, key
        checked += 1
    assert checked == len(c) >= 60
    assert set(v4l2.IOCTLS) | set(K) <= set(c)


def test_layout_agrees_with_linuxpy() -> None:
    raw = pytest.importorskip("linuxpy.video.raw")
    assert ctypes.sizeof(raw.v4l2_buffer) == ctypes.sizeof(v4l2.V4l2Buffer)
    for f in ("timestamp", "flags", "sequence", "m", "length"):
        assert getattr(raw.v4l2_buffer, f).offset == getattr(v4l2.V4l2Buffer, f).offset
    assert v4l2.IOCTLS["VIDIOC_DQBUF"] == raw.IOC.DQBUF & 0xFFFFFFFF


def _rec(seq: int, t_us: int, flags: int) -> dict[str, int]:
    return {"seq": seq, "sec": t_us // 1_000_000, "usec": t_us % 1_000_000, "flags": flags}


def _run(io: ReplayIO, stamper: Stamper, **raw_kw: object) -> list:  # type: ignore[type-arg]
    recs = []
    with v4l2.V4l2Capture(io, n_buffers=3) as cap:
        if stamper.frame_interval_ns is None:
            stamper.frame_interval_ns = cap.frame_interval_ns
        while True:
            try:
                f = cap.read_frame()
            except OSError as e:
                assert e.errno == errno.ENODEV
                break
            recs.append(stamper.stamp_raw(v4l2.frame_to_raw(f, **raw_kw)))  # type: ignore[arg-type]
    return recs


def test_replay_monotonic_soe_with_gaps() -> None:
    t0 = 1_000_000_000  # µs: 1000 s of MONOTONIC
    seqs = [0, 1, 2, 4, 5, 9]
    io = ReplayIO([_rec(s, t0 + 33_333 * s, MONO | SOE) for s in seqs])
    cal = Calibration(internal=0, external=5 * 10**17)
    st = Stamper(
        CalibrationDomain(cal, "ptp:0", 250), SourceKind.V4L2, "/dev/video0", seq_modulus=1 << 32
    )
    recs = _run(io, st)
    assert [r.seq for r in recs] == seqs
    for r, s in zip(recs, seqs, strict=True):
        assert r.raw_ns == (t0 + 33_333 * s) * 1000
        assert r.raw_clock is StampClock.MONOTONIC and r.meaning is StampMeaning.SOE
        assert r.capture_mono_ns == r.raw_ns and r.net_ns == r.raw_ns + 5 * 10**17
        assert r.uncertainty_ns == 250 + v4l2.TIMEVAL_UNCERTAINTY_NS
    assert [r.extra.get("lost", 0) for r in recs] == [0, 0, 0, 1, 0, 3]
    assert st.seq.lost == 4 and st.seq.gaps == 2
    # The loop did the MMAP streaming dance, and every dequeued buffer went back.
    calls = io.calls
    assert calls[:4] == ["VIDIOC_QUERYCAP", "VIDIOC_G_FMT", "VIDIOC_G_PARM", "VIDIOC_REQBUFS"]
    assert calls[4:7] == ["VIDIOC_QUERYBUF"] * 3 and calls[7:10] == ["VIDIOC_QBUF"] * 3
    assert calls[10] == "VIDIOC_STREAMON" and calls[-1] == "VIDIOC_STREAMOFF"
    assert calls.count("VIDIOC_QBUF") == 3 + len(seqs) and io.closed


def test_replay_eof_converted_to_start_of_frame() -> None:
    io = ReplayIO(
        [_rec(s, 2_000_000_000 + 40_000 * s, MONO | EOF) for s in range(4)], timeperframe=(1, 25)
    )
    st = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video0", eof_to_sof=True)
    recs = _run(io, st)
    assert st.frame_interval_ns == 40_000_000
    for r in recs:
        assert r.meaning is StampMeaning.EOF and "eof_to_sof" in r.flags
        assert r.capture_mono_ns == r.raw_ns - 40_000_000
    # Without a known interval, EOF stamps stay as they are and say so.
    io2 = ReplayIO([_rec(0, 5, MONO | EOF)], timeperframe=None)
    st2 = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video0", eof_to_sof=True)
    (r2,) = _run(io2, st2)
    assert r2.capture_mono_ns == 5000 and "eof" in r2.flags


def test_replay_copy_and_unknown_clocks() -> None:
    io = ReplayIO([_rec(0, 7_000_000, COPY | EOF), _rec(1, 7_033_333, 0 | SOE)])
    st = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video1")
    r0, r1 = _run(io, st)
    assert r0.raw_clock is StampClock.OTHER and r0.net_ns is None and r0.capture_mono_ns is None
    assert "timestamp_copy" in r0.flags and "unmapped_clock" in r0.flags
    assert r1.raw_clock is StampClock.OTHER and "timestamp_unknown" in r1.flags
    assert r1.meaning is StampMeaning.SOE
    # A mem2mem user who queued MONOTONIC stamps on the output side can say so.
    io2 = ReplayIO([_rec(0, 7_000_000, COPY | SOE)])
    st2 = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video1")
    (r2,) = _run(io2, st2, copy_clock=StampClock.MONOTONIC)
    assert r2.net_ns == 7_000_000_000 and "timestamp_copy" in r2.flags


def test_replay_sequence_wrap_and_error_flag() -> None:
    top = 1 << 32
    seqs = [top - 2, top - 1, 0, 1, 3]
    io = ReplayIO(
        [
            _rec(s, 1_000 + i, MONO | SOE | (K["V4L2_BUF_FLAG_ERROR"] if i == 3 else 0))
            for i, s in enumerate(seqs)
        ]
    )
    st = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video0", seq_modulus=top)
    recs = _run(io, st)
    assert [r.seq for r in recs] == seqs
    assert st.seq.lost == 1 and st.seq.resets == 0
    assert "corrupted" in recs[3].flags
    assert [r.raw_ns for r in recs] == [(1_000 + i) * 1000 for i in range(5)]


def test_replay_from_jsonl_fixture(tmp_path: Path) -> None:
    p = tmp_path / "dqbuf.jsonl"
    p.write_text("\n".join(json.dumps(_rec(s, 10 + s, MONO | SOE)) for s in range(3)) + "\n")
    st = Stamper(CalibrationDomain.identity(), SourceKind.V4L2, "/dev/video0")
    assert [r.raw_ns for r in _run(ReplayIO.from_jsonl(p), st)] == [10_000, 11_000, 12_000]


def test_not_a_capture_device() -> None:
    class NoStreaming(ReplayIO):
        def _vidioc_querycap(self, c: v4l2.V4l2Capability) -> None:
            c.device_caps = K["V4L2_CAP_VIDEO_CAPTURE"]

    with pytest.raises(OSError) as ei:
        v4l2.V4l2Capture(NoStreaming([]))
    assert ei.value.errno == errno.ENOTSUP
