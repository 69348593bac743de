"""ALSA: layout against <alsa/asoundlib.h>, and real capture through PipeWire's ALSA plugin."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from capture import alsa
from capture.frame import SourceKind, StampClock, StampMeaning
from capture.headless import HeadlessPipeWire
from capture.stamping import Stamper, estimate_device_rate, frames_to_ns
from capture.timedomain import CalibrationDomain

PROBE = Path(__file__).parent / "probes" / "alsa_layout.c"


def test_layout_and_constants_match_headers(tmp_path: Path) -> None:
    if shutil.which("gcc") is None or not Path("/usr/include/alsa/asoundlib.h").exists():
        pytest.skip("gcc or libasound2-dev headers not installed")
    exe = tmp_path / "probe"
    subprocess.run(["gcc", "-o", str(exe), str(PROBE), "-lasound"], check=True, timeout=60)
    c = json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    c.pop("end")
    assert c.pop("sizeof snd_htimestamp_t") == ctypes.sizeof(alsa.Timespec)
    assert c.pop("sizeof snd_pcm_audio_tstamp_config_t") == ctypes.sizeof(alsa.AudioTstampConfig)
    assert c.pop("sizeof snd_pcm_audio_tstamp_report_t") == ctypes.sizeof(alsa.AudioTstampReport)
    assert c.pop("offsetof report.accuracy") == alsa.AudioTstampReport.accuracy.offset
    cfg = alsa.AudioTstampConfig(type_requested=5, report_delay=1)
    assert c.pop("bits config{5,1}") == int.from_bytes(bytes(cfg)[:4], "little")
    rep = alsa.AudioTstampReport(valid=1, actual_type=3, accuracy_report=1, accuracy=12345)
    assert c.pop("bits report{1,3,1}") == int.from_bytes(bytes(rep)[:4], "little")
    assert c == alsa.CONSTANTS


def _read_periods(cap: alsa.AlsaCapture, n: int, timeout: float) -> list[alsa.AlsaPeriod]:
    """``n`` consecutive periods of one run of the stream. A stream silent for 1 s is stalled
    (pipewire-alsa 0.3.65 does that now and then just after the start; ``snd_pcm_readi`` would
    block for ever): it is restarted, as the capture agent does, and reading starts over. Fails
    (never hangs) when the periods do not come within ``timeout`` s."""
    end = time.monotonic() + timeout
    out: list[alsa.AlsaPeriod] = []
    last = time.monotonic()
    while len(out) < n:
        assert time.monotonic() < end, f"no {n} periods in {timeout} s ({cap.restarts} restarts)"
        if cap.wait(100):
            out.append(cap.read_period())
            last = time.monotonic()
        elif time.monotonic() - last > 1.0:
            cap.restart()
            out.clear()
            last = time.monotonic()
    return out


def test_pipewire_plugin_monotonic_period_stamps(
    pipewire_session: HeadlessPipeWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `pipewire` PCM: real-time paced, CLOCK_MONOTONIC stamps, trigger set."""
    if not list(Path("/usr/share/alsa/alsa.conf.d").glob("*pipewire*")):
        pytest.skip("pipewire-alsa not installed")
    monkeypatch.setenv("PIPEWIRE_NODE", "ci-audio-src")
    with alsa.AlsaCapture("pipewire") as cap:
        assert cap.tstamp_type == alsa.CONSTANTS["SND_PCM_TSTAMP_TYPE_MONOTONIC"]
        periods = _read_periods(cap, 12, timeout=20.0)
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    trig = {p.trigger_ns for p in periods}
    assert len(trig) == 1 and 0 not in trig, "one trigger stamp, set"
    (trigger,) = trig
    assert trigger <= periods[0].tstamp_ns
    for p in periods:
        assert p.state == alsa.CONSTANTS["SND_PCM_STATE_RUNNING"]
        assert p.frames == cap.period_size
        assert 0 < now - p.tstamp_ns < 5_000_000_000  # a MONOTONIC reading, not REALTIME
        assert p.delay >= 0 and p.avail >= 0
    stamps = [p.tstamp_ns for p in periods]
    assert stamps == sorted(stamps)
    # Paced by the graph: 12 periods cannot be read much faster than the audio they hold.
    span = periods[-1].first_frame_ns - periods[0].first_frame_ns
    assert span > frames_to_ns(11 * cap.period_size, cap.rate) // 2
    est = estimate_device_rate([p.rate_sample() for p in periods], cap.rate)
    assert est is not None and 0.9 < est.ratio < 1.1
    st = Stamper(CalibrationDomain.identity(), SourceKind.ALSA, "pipewire")
    for p in periods:
        rec = st.stamp_raw(alsa.period_to_raw(p))
        assert rec.raw_ns == p.tstamp_ns and rec.raw_clock is StampClock.MONOTONIC
        assert rec.meaning is StampMeaning.PERIOD
        assert rec.capture_mono_ns == p.tstamp_ns - frames_to_ns(p.delay + p.frames, p.rate)
        assert rec.extra["trigger_ns"] == trigger
    assert st.seq.lost == 0


def test_null_pcm_unpaced_plumbing() -> None:
    """The `null` PCM: no pacing, no trigger; tstamps still CLOCK_MONOTONIC 'now'."""
    try:
        cap = alsa.AlsaCapture("null")
    except alsa.AlsaError as e:
        pytest.skip(f"null PCM unavailable: {e}")
    with cap:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        p = cap.read_period()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert before <= p.tstamp_ns <= after
    assert not p.audio_report_valid or p.audio_ns == 0
    assert "no_trigger" in alsa.period_to_raw(p).flags or p.trigger_ns <= p.tstamp_ns
