"""The capture agent's Prometheus metrics (``netclock_capture_*``, netclock/metrics.py):
the catalogue's conventions, the exposition of counted records, and a live scrape of
``netclock capture --metrics-port`` on a headless PipeWire session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from capture import pipewire as pw
from capture.agent import Metrics
from capture.frame import SourceKind, StampClock, StampMeaning
from capture.headless import HeadlessPipeWire
from capture.stamping import Stamper
from capture.timedomain import CalibrationDomain
from netclock.calibration import Calibration
from netclock.metrics import (
    CAPTURE_CATALOGUE,
    CAPTURE_LATENCY_BUCKETS_NS,
    CATALOGUE,
    CaptureStats,
    make_capture_registry,
)

ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_capture_catalogue_conventions() -> None:
    names = [m.name for m in CAPTURE_CATALOGUE]
    assert len(set(names)) == len(names)
    assert not set(names) & {m.name for m in CATALOGUE}
    for m in CAPTURE_CATALOGUE:
        assert m.name.startswith("netclock_capture_"), m.name
        assert m.type in ("gauge", "counter", "histogram"), m.name
        assert (m.type == "counter") == m.name.endswith("_total"), m.name
        assert not any(u in m.name for u in ("_ns", "_nanoseconds", "_ms", "_us")), m.name
        assert m.labels == ("source", "kind")
    assert list(CAPTURE_LATENCY_BUCKETS_NS) == sorted(set(CAPTURE_LATENCY_BUCKETS_NS))


def _metrics_from_stamps() -> Metrics:
    """Six records: seq 0,1,2,5,6 then (unsynced domain) 7; latencies 0.2 ms .. 2 s."""
    m = Metrics()
    st = Stamper(CalibrationDomain.identity(error_bound_ns=300), SourceKind.V4L2, "/dev/video9")
    lat = {0: 200_000, 1: 200_000, 2: 3_000_000, 5: 3_000_000, 6: 2_000_000_000}
    for seq, latency in lat.items():
        raw = 1_000_000_000 * (seq + 1)
        m.update(
            [
                st.stamp(
                    seq=seq,
                    raw_ns=raw,
                    raw_clock=StampClock.MONOTONIC,
                    meaning=StampMeaning.SOE,
                    arrival_mono_ns=raw + latency,
                    stamp_uncertainty_ns=700,
                )
            ]
        )
    st.domain = CalibrationDomain(Calibration(), "monotonic", 300, synced=False)
    m.update(
        [
            st.stamp(
                seq=7,
                raw_ns=8 * 10**9,
                raw_clock=StampClock.MONOTONIC,
                meaning=StampMeaning.SOE,
                arrival_mono_ns=8 * 10**9 + 100_000,
            )
        ]
    )
    m.dropped = 2
    return m


def test_exposition_of_counted_records() -> None:
    m = _metrics_from_stamps()
    stats = m.stats("v4l2:/dev/video9", "v4l2")
    text = generate_latest(make_capture_registry(lambda: [stats], process=False)).decode()
    s = _samples(text)
    lab = (("kind", "v4l2"), ("source", "v4l2:/dev/video9"))
    assert s[("netclock_capture_frames_total", lab)] == 6
    assert s[("netclock_capture_gaps_total", lab)] == 1
    assert s[("netclock_capture_lost_frames_total", lab)] == 2
    assert s[("netclock_capture_dropped_frames_total", lab)] == 2
    assert s[("netclock_capture_unsynced_frames_total", lab)] == 1
    assert s[("netclock_capture_unmapped_frames_total", lab)] == 0
    assert s[("netclock_capture_synced", lab)] == 0
    # unsynced: bound 300 grown by 100 ppm of the 1 s since the last synced frame (no stamp
    # uncertainty on this one)
    assert s[("netclock_capture_uncertainty_seconds", lab)] == (300 + 100_000) / 1e9
    assert s[("netclock_capture_latency_seconds_count", lab)] == 6
    assert abs(s[("netclock_capture_latency_seconds_sum", lab)] - 2.0065) < 1e-12

    def bucket(le: str) -> float:
        return s[("netclock_capture_latency_seconds_bucket", (*lab[:1], ("le", le), lab[1]))]

    assert bucket("0.0001") == 1  # 0.1 ms (the unsynced frame)
    assert bucket("0.00025") == 3
    assert bucket("0.0025") == 3
    assert bucket("0.005") == 5
    assert bucket("1.0") == 5
    assert bucket("+Inf") == 6
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {m.name.removesuffix("_total") for m in CAPTURE_CATALOGUE}


def test_no_sources_no_series() -> None:
    text = generate_latest(make_capture_registry(lambda: [], process=False)).decode()
    assert not [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    one = CaptureStats(source="alsa:hw:0", kind="alsa")
    s = _samples(generate_latest(make_capture_registry(lambda: [one], process=False)).decode())
    lab = (("kind", "alsa"), ("source", "alsa:hw:0"))
    assert s[("netclock_capture_latency_seconds_count", lab)] == 0
    assert ("netclock_capture_synced", lab) not in s


def test_scrape_running_capture(pipewire_session: HeadlessPipeWire, tmp_path: Path) -> None:
    prod = pw.Producer("netclock-producer")
    out = tmp_path / "m.jsonl"
    env = dict(pipewire_session.env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netclock",
            "capture",
            "--source",
            "pipewire:netclock-producer",
            "--clock",
            "monotonic",
            "--out",
            str(out),
            "--metrics-port",
            "0",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert "metrics at http://127.0.0.1:" in line, line
        url = line.split("metrics at ", 1)[1].strip()
        end = time.monotonic() + 20
        frames = 0.0
        while time.monotonic() < end:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            s = _samples(text)
            lab = (("kind", "pipewire"), ("source", "pipewire:netclock-producer"))
            frames = s.get(("netclock_capture_frames_total", lab), 0.0)
            if frames >= 10:
                break
            time.sleep(0.1)
        assert frames >= 10, text
        assert s[("netclock_capture_latency_seconds_count", lab)] == frames
        assert s[("netclock_capture_latency_seconds_sum", lab)] > 0
        assert s[("netclock_capture_synced", lab)] == 1
        assert s[("netclock_capture_unsynced_frames_total", lab)] == 0
        assert s[("netclock_capture_unmapped_frames_total", lab)] == 0
        assert s[("netclock_capture_uncertainty_seconds", lab)] == 0
        assert ("process_cpu_seconds_total", ()) in s
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        prod.close()
    assert out.read_bytes().count(b"\n") >= frames
