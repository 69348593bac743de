"""`netclock capture` / `netclock align` end to end on a headless PipeWire session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capture import pipewire as pw
from capture.align import align, load
from capture.frame import StampClock, StampMeaning
from capture.headless import HeadlessPipeWire
from tests.capture.twomachines import stop_when_all_have

ROOT = Path(__file__).resolve().parents[2]
STREAMING = pw.CONSTANTS["PW_STREAM_STATE_STREAMING"]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "netclock", *args]


def _env(session: HeadlessPipeWire, **extra: str) -> dict[str, str]:
    env = dict(session.env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _wait_lines(path: Path, n: int, timeout: float) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            k = path.read_bytes().count(b"\n")
            if k >= n:
                return k
        time.sleep(0.05)
    return 0


def test_two_agents_same_producer_align_exactly(
    pipewire_session: HeadlessPipeWire, tmp_path: Path
) -> None:
    """Two capture agents on one producer (one machine: domain = MONOTONIC): every paired
    frame has Δ = 0 and raw stamps equal to the produced pts. (Both run until both files hold
    12 frames: they connect at different moments, see ``stop_when_all_have``.)"""
    prod = pw.Producer("netclock-producer")
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    procs = []
    try:
        for out in outs:
            procs.append(
                subprocess.Popen(
                    _cmd(
                        "capture",
                        "--source",
                        "pipewire:netclock-producer",
                        "--clock",
                        "monotonic",
                        "--out",
                        str(out),
                        "--stats",
                    ),
                    env=_env(pipewire_session),
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        assert stop_when_all_have(procs, outs, 12, timeout=30) == [0, 0]
        assert procs[0].stderr is not None
        errs = [procs[0].stderr.read()]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        prod.close()
    stats = json.loads(errs[0].strip().splitlines()[-1])
    assert stats["written"] >= 12 and stats["frames"] == stats["written"]
    a, bad_a = load(outs[0])
    b, bad_b = load(outs[1])
    assert bad_a == bad_b == 0 and len(a) >= 12
    for r in a + b:
        assert r.pts_ns is not None and r.raw_ns == prod.produced[r.seq] == r.pts_ns
        assert r.raw_clock is StampClock.MONOTONIC and r.meaning is StampMeaning.PTS
        assert r.synced and r.domain == "monotonic"
    res = align(a, b, "pts")
    assert res.compared >= 12
    assert set(res.deltas_ns) == {0} and res.fraction_inside == 1.0
    plot = tmp_path / "delta.png"
    done = subprocess.run(
        _cmd("align", str(outs[0]), str(outs[1]), "--by", "seq", "--plot", str(plot), "--json"),
        env=_env(pipewire_session),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    summary = json.loads(done.stdout)
    assert summary["abs_delta_max_ns"] == 0 and summary["fraction_inside"] == 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_flushes_every_record(pipewire_session: HeadlessPipeWire, tmp_path: Path) -> None:
    prod = pw.Producer("netclock-producer")
    out = tmp_path / "c.jsonl"
    p = subprocess.Popen(
        _cmd(
            "capture",
            "--source",
            "pipewire:netclock-producer",
            "--clock",
            "monotonic",
            "--out",
            str(out),
            "--stats",
        ),
        env=_env(pipewire_session),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_lines(out, 5, 15) >= 5
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        prod.close()
    assert p.returncode == 0, err
    stats = json.loads(err.strip().splitlines()[-1])
    data = out.read_bytes()
    assert data.endswith(b"\n")
    recs, bad = load(out)
    assert bad == 0 and len(recs) == stats["written"] == stats["frames"]
    assert all(r.raw_ns == prod.produced[r.seq] for r in recs)


def test_alsa_source_through_cli(pipewire_session: HeadlessPipeWire, tmp_path: Path) -> None:
    if not list(Path("/usr/share/alsa/alsa.conf.d").glob("*pipewire*")):
        pytest.skip("pipewire-alsa not installed")
    out = tmp_path / "alsa.jsonl"
    subprocess.run(
        _cmd(
            "capture",
            "--source",
            "alsa:pipewire",
            "--clock",
            "monotonic",
            "--out",
            str(out),
            "--max-frames",
            "6",
        ),
        env=_env(pipewire_session, PIPEWIRE_NODE="ci-audio-src"),
        check=True,
        timeout=60,  # a hang guard: starting Python alone took 4.5 s at load 8 on 2 cores
    )
    recs, bad = load(out)
    assert bad == 0 and [r.seq for r in recs] == list(range(6))
    # One trigger stamp per run of the stream: the agent restarts a stalled stream (see
    # AlsaSource.read), and each restart is counted on the records that follow it.
    runs = {(r.extra.get("restarts", 0), r.extra["trigger_ns"]) for r in recs}
    trig = {t for _, t in runs}
    assert 0 not in trig and len(trig) == len(runs) == len({k for k, _ in runs})
    for r in recs:
        assert r.meaning is StampMeaning.PERIOD and r.raw_clock is StampClock.MONOTONIC
        assert r.capture_mono_ns is not None and r.capture_mono_ns < r.raw_ns


def test_v4l2_source_through_pw_v4l2(pipewire_session: HeadlessPipeWire, tmp_path: Path) -> None:
    """Real VIDIOC ioctls + mmap on PipeWire's V4L2 emulation (LD_PRELOAD): the loop works;
    the stamps are the emulation's (MONOTONIC at DQBUF, EOF), not a camera's."""
    if shutil.which("pw-v4l2") is None:
        pytest.skip("pipewire-v4l2 not installed")
    out = tmp_path / "v4l2.jsonl"
    subprocess.run(
        [
            "pw-v4l2",
            *_cmd(
                "capture",
                "--source",
                "v4l2:/dev/video0",
                "--clock",
                "monotonic",
                "--out",
                str(out),
                "--max-frames",
                "4",
                "--buffers",
                "2",
            ),
        ],
        env=_env(pipewire_session),
        check=True,
        timeout=30,
    )
    recs, bad = load(out)
    assert bad == 0 and len(recs) == 4
    stamps = [r.raw_ns for r in recs]
    assert stamps == sorted(stamps)
    for r in recs:
        assert r.raw_clock is StampClock.MONOTONIC and r.meaning is StampMeaning.EOF
        assert r.extra["bytesused"] == 320 * 240 * 3
        assert 0 <= r.arrival_mono_ns - r.raw_ns < 1_000_000_000


def test_two_agents_two_published_domains(
    pipewire_session: HeadlessPipeWire, tmp_path: Path
) -> None:
    """The two-machine pipeline minus the network: each agent reads its own daemon's published
    calibration (``--clock shared --shm``); the two calibrations disagree by 600 ns and bound
    1000 ns each, so every pair has Δ = -600 ns, inside the combined bound."""
    client = pytest.importorskip("netclock.client")
    shm_writer = pytest.importorskip("netclock.platform.shm_writer")
    del client
    from netclock.calibration import Calibration
    from netclock.observe import LockState, Timescale
    from netclock.shm import DomainRecord

    now = time.monotonic_ns()
    writers = []
    outs = [tmp_path / "m1.jsonl", tmp_path / "m2.jsonl"]
    procs = []
    prod = pw.Producer("netclock-producer")
    try:
        for i, off in enumerate((0, 600)):
            w = shm_writer.ShmWriter(tmp_path / f"m{i}.shm")
            writers.append(w)
            cal = Calibration(internal=now, external=1_800_000_000 * 10**9 + off, epoch=1)
            w.publish(
                [
                    DomainRecord(
                        domain=0,
                        calibration=cal,
                        lock_state=LockState.LOCKED,
                        timescale=Timescale.TAI,
                        error_bound_ns=1000,
                        update_mono_ns=now,
                    )
                ]
            )
        for i, out in enumerate(outs):
            procs.append(
                subprocess.Popen(
                    _cmd(
                        "capture",
                        "--source",
                        "pipewire:netclock-producer",
                        "--clock",
                        "shared",
                        "--shm",
                        str(tmp_path / f"m{i}.shm"),
                        "--out",
                        str(out),
                    ),
                    env=_env(pipewire_session),
                )
            )
        assert stop_when_all_have(procs, outs, 10, timeout=30) == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for w in writers:
            w.close(unlink=True)
        prod.close()
    a, _ = load(outs[0])
    b, _ = load(outs[1])
    res = align(a, b, "pts")
    assert res.compared >= 10
    assert set(res.deltas_ns) == {-600}
    assert res.fraction_inside == 1.0 and res.domains == ("TAI:0",)
    assert all(r.synced and r.sync_error_ns >= 1000 for r in a + b)
