"""Frame records (JSON Lines) and pure stamping, on fake time."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capture.frame import (
    FrameRecord,
    RecordError,
    SourceKind,
    StampClock,
    StampMeaning,
    dumps,
    loads,
)
from capture.stamping import (
    RateSample,
    SequenceTracker,
    Stamper,
    alsa_first_frame_ns,
    eof_to_sof,
    estimate_device_rate,
    frames_to_ns,
    realtime_to_monotonic,
)
from capture.timedomain import CalibrationDomain, SharedClockDomain, SyncStatus, TimeDomain
from netclock.calibration import Calibration

CAL = Calibration(
    internal=1_000_000_000,
    external=1_700_000_000_000_000_000,
    rate_num=1_000_001,
    rate_denom=1_000_000,
    epoch=3,
)


def _rec(**kw: object) -> FrameRecord:
    base = FrameRecord(
        source=SourceKind.V4L2,
        device="/dev/video0",
        seq=7,
        raw_ns=1_234_567_890_123,
        raw_clock=StampClock.MONOTONIC,
        meaning=StampMeaning.SOE,
        capture_mono_ns=1_234_567_890_123,
        net_ns=1_700_000_000_123_456_789,
        domain="ptp:0",
        epoch=2,
        synced=True,
        sync_error_ns=150,
        stamp_uncertainty_ns=1000,
        arrival_mono_ns=1_234_570_000_000,
        pts_ns=None,
        flags=("gap",),
        extra={"lost": 2, "fmt": "YUYV"},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_record_roundtrip_and_uncertainty() -> None:
    r = _rec()
    line = dumps(r)
    assert "\n" not in line
    assert loads(line) == r
    assert r.uncertainty_ns == 1150
    assert '"uncertainty_ns":1150' in line
    assert r.latency_ns == 1_234_570_000_000 - 1_234_567_890_123


def test_record_optional_fields_roundtrip() -> None:
    r = _rec(capture_mono_ns=None, net_ns=None, pts_ns=99, flags=(), extra={})
    assert loads(dumps(r)) == r
    assert r.latency_ns is None


def test_record_rejects_float_times() -> None:
    with pytest.raises(TypeError):
        _rec(raw_ns=1.5)
    with pytest.raises(TypeError):
        _rec(net_ns=1.0)


def test_record_rejects_inconsistent_uncertainty() -> None:
    d = _rec().to_dict()
    d["uncertainty_ns"] = 1
    with pytest.raises(RecordError):
        FrameRecord.from_dict(d)


@given(st.binary())
def test_loads_garbage_raises_record_error_only(data: bytes) -> None:
    try:
        rec = loads(data)
    except RecordError:
        return
    assert isinstance(rec, FrameRecord)


_VALUES = st.integers() | st.text() | st.none() | st.booleans() | st.lists(st.integers())


@given(st.dictionaries(st.sampled_from(list(_rec().to_dict())), _VALUES))
def test_from_dict_partial_raises_record_error_only(d: dict[str, object]) -> None:
    full = _rec().to_dict()
    full.update(d)
    try:
        rec = FrameRecord.from_dict(full)
    except RecordError:
        return
    assert loads(dumps(rec)) == rec


def test_conversions() -> None:
    assert realtime_to_monotonic(1_700_000_000_000_000_000, 1_699_999_000_000_000_000) == 10**12
    assert eof_to_sof(1_000_000, 33_366_667) == 1_000_000 - 33_366_667
    with pytest.raises(ValueError):
        eof_to_sof(1, 0)
    assert frames_to_ns(48000, 48000) == 1_000_000_000
    assert frames_to_ns(1, 48000) == 20833  # 20833.33 rounds down
    assert frames_to_ns(2, 48000) == 41667  # 41666.67 rounds up
    # 512 frames read, 32 more waiting, at 48 kHz: first frame 544/48000 s before tstamp
    assert alsa_first_frame_ns(10_000_000_000, 32, 512, 48000) == 10_000_000_000 - 11_333_333


def test_sequence_tracker_gaps_wrap_and_resets() -> None:
    t = SequenceTracker(modulus=1 << 32)
    assert [t.update(s) for s in (0, 1, 2, 4, 5, 9)] == [0, 0, 0, 1, 0, 3]
    assert (t.gaps, t.lost, t.frames) == (2, 4, 6)
    t2 = SequenceTracker(modulus=1 << 32)
    assert [t2.update(s) for s in ((1 << 32) - 2, (1 << 32) - 1, 0, 2)] == [0, 0, 0, 1]
    t3 = SequenceTracker(modulus=1 << 32)
    assert [t3.update(s) for s in (10, 11, 11, 3, 4)] == [0, 0, 0, 0, 0]
    assert t3.resets == 2 and t3.lost == 0


def test_device_rate_from_trigger_and_positions() -> None:
    # A device running 50 ppm fast at nominal 48 kHz: position f frames after the trigger
    # is reached at system time f / (48000 * (1 + 50e-6)); plus a constant 2 ms trigger lag.
    true_rate = 48000 * (1 + 50e-6)
    samples = [
        RateSample(round(f / true_rate * 1e9) + 2_000_000, f) for f in range(0, 480_000, 4800)
    ]
    est = estimate_device_rate(samples, 48000)
    assert est is not None
    assert abs(est.ppm - 50.0) < 0.01
    assert abs(est.rate_hz - true_rate) < 0.001
    assert est.ratio < 1.0
    assert estimate_device_rate(samples[:1], 48000) is None
    assert estimate_device_rate([RateSample(1, 5), RateSample(2, 5)], 48000) is None


def test_stamper_monotonic_synced() -> None:
    dom = CalibrationDomain(CAL, "ptp:0", error_bound_ns=200)
    s = Stamper(dom, SourceKind.PIPEWIRE, "ci-video-src")
    r = s.stamp(
        seq=5,
        raw_ns=2_000_000_000,
        raw_clock=StampClock.MONOTONIC,
        meaning=StampMeaning.PTS,
        arrival_mono_ns=2_040_000_000,
        stamp_uncertainty_ns=10,
        pts_ns=2_000_000_000,
    )
    assert r.capture_mono_ns == 2_000_000_000
    assert r.net_ns == CAL.to_external(2_000_000_000) == 1_700_000_001_000_001_000
    assert (r.domain, r.epoch, r.synced, r.uncertainty_ns) == ("ptp:0", 3, True, 210)
    assert r.flags == ()


def test_stamper_realtime_eof_and_gaps() -> None:
    dom = CalibrationDomain.identity()
    s = Stamper(
        dom,
        SourceKind.V4L2,
        "/dev/video0",
        seq_modulus=1 << 32,
        realtime_offset_ns=5_000,
        realtime_offset_uncertainty_ns=40,
        eof_to_sof=True,
        frame_interval_ns=40_000_000,
    )
    r = s.stamp(
        seq=0,
        raw_ns=1_000_005_000,
        raw_clock=StampClock.REALTIME,
        meaning=StampMeaning.EOF,
        arrival_mono_ns=1_001_000_000,
    )
    assert r.capture_mono_ns == 1_000_000_000 - 40_000_000
    assert r.stamp_uncertainty_ns == 40
    assert "eof_to_sof" in r.flags and "realtime_mapped" in r.flags
    r2 = s.stamp(
        seq=3,
        raw_ns=1_120_005_000,
        raw_clock=StampClock.REALTIME,
        meaning=StampMeaning.EOF,
        arrival_mono_ns=1_121_000_000,
    )
    assert "gap" in r2.flags and r2.extra["lost"] == 2
    r3 = s.stamp(
        seq=4,
        raw_ns=9,
        raw_clock=StampClock.OTHER,
        meaning=StampMeaning.EOF,
        arrival_mono_ns=1_161_000_000,
    )
    assert r3.capture_mono_ns is None and r3.net_ns is None and "unmapped_clock" in r3.flags
    assert s.seq.lost == 2 and s.unmapped == 1
    # EOF without a known interval is kept as is and flagged.
    s2 = Stamper(dom, SourceKind.V4L2, "/dev/video0", eof_to_sof=True)
    r4 = s2.stamp(
        seq=0, raw_ns=5, raw_clock=StampClock.MONOTONIC, meaning=StampMeaning.EOF, arrival_mono_ns=6
    )
    assert r4.capture_mono_ns == 5 and "eof" in r4.flags


class _SwitchDomain:
    """A real TimeDomain whose sync state the test flips (standing in for a lost master)."""

    def __init__(self) -> None:
        self.synced = True

    def to_network(self, mono_ns: int) -> int:
        return mono_ns + 1000

    def status(self) -> SyncStatus:
        return SyncStatus(self.synced, 100 if self.synced else 50, 1, "ptp:0")


def test_stamper_unsynced_frames_kept_with_growing_bound() -> None:
    dom = _SwitchDomain()
    assert isinstance(dom, TimeDomain)
    s = Stamper(dom, SourceKind.ALSA, "pipewire", holdover_ppb=100_000)
    r0 = s.stamp(
        seq=0,
        raw_ns=10**9,
        raw_clock=StampClock.MONOTONIC,
        meaning=StampMeaning.PERIOD,
        arrival_mono_ns=10**9,
    )
    assert r0.sync_error_ns == 100
    dom.synced = False
    errs = []
    for i in range(1, 4):
        r = s.stamp(
            seq=i,
            raw_ns=10**9 + i * 10**8,
            raw_clock=StampClock.MONOTONIC,
            meaning=StampMeaning.PERIOD,
            arrival_mono_ns=0,
        )
        assert (
            not r.synced
            and "unsynced" in r.flags
            and r.capture_mono_ns is not None
            and r.net_ns == r.capture_mono_ns + 1000
        )
        errs.append(r.sync_error_ns)
    assert errs == [100 + 10_000, 100 + 20_000, 100 + 30_000]
    assert s.unsynced == 3 and s.frames == 4


def test_shared_clock_adapter_normalises_status() -> None:
    class Reader:
        def __init__(self, st: object) -> None:
            self.st = st

        def to_network(self, mono_ns: int) -> int:
            return mono_ns * 2

        def status(self) -> object:
            return self.st

    class St:
        lock_state = "LOCKED"
        error_bound_ns = 321
        epoch = 4
        domain = "ntp"

    d = SharedClockDomain(Reader(St()))
    assert d.to_network(5) == 10
    assert d.status() == SyncStatus(True, 321, 4, "ntp")
    assert SharedClockDomain(Reader((False, 9, 1, "x"))).status() == SyncStatus(False, 9, 1, "x")
    assert SharedClockDomain(Reader({"locked": False})).status().synced is False


@given(
    raw=st.integers(-(2**62), 2**62),
    offset=st.integers(-(10**12), 10**12),
    unc=st.integers(0, 10**9),
    err=st.integers(0, 10**9),
    num=st.integers(1, 2**40),
    den=st.integers(1, 2**40),
)
def test_stamper_net_time_is_the_domain_map_of_the_capture_instant(
    raw: int, offset: int, unc: int, err: int, num: int, den: int
) -> None:
    cal = Calibration(internal=123, external=10**18, rate_num=num, rate_denom=den)
    s = Stamper(CalibrationDomain(cal, "d", err), SourceKind.ALSA, "x")
    r = s.stamp(
        seq=0,
        raw_ns=raw,
        raw_clock=StampClock.MONOTONIC,
        meaning=StampMeaning.PERIOD,
        arrival_mono_ns=0,
        stamp_uncertainty_ns=unc,
        capture_offset_ns=offset,
    )
    assert r.capture_mono_ns == raw + offset
    assert r.net_ns == cal.to_external(raw + offset)
    assert r.uncertainty_ns == unc + err
    assert loads(dumps(r)) == r
