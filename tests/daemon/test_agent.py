"""The daemon end to end on loopback: real `netclock run` processes, no root needed.

Every process shares the machine's clock, so the truth is known exactly: a grandmaster whose
reference is CLOCK_REALTIME + shift serves NTP, and an agent's published time must equal
REALTIME + shift at the same CLOCK_MONOTONIC instant.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netclock.client import ClockUnavailable, SharedClock
from netclock.observe import LockState
from netclock.platform.clockmap import ClockMap
from netclock.platform.status_socket import fetch_snapshot

SHIFT = 1_234_567_890


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cfg: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "netclock", "run", "--config", str(cfg), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(p: subprocess.Popen[bytes]) -> str:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out.decode(errors="replace")


def write_gm(tmp: Path, port: int) -> Path:
    (tmp / "gm").mkdir(exist_ok=True)
    cfg = tmp / "gm.toml"
    cfg.write_text(
        f"""
[reference]
enabled = true
shift-ns = {SHIFT}
interval-s = 0.1
[ntp]
serve = true
listen-address = "127.0.0.1"
listen-port = {port}
[publish]
shm-path = "{tmp}/gm/clock.shm"
[metrics]
enabled = false
"""
    )
    return cfg


def write_agent(tmp: Path, port: int, metrics_port: int, name: str = "agent") -> Path:
    (tmp / name).mkdir(exist_ok=True)
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f"""
[[ntp.server]]
address = "127.0.0.1"
port = {port}
minpoll = -4
maxpoll = -4
xleave = true
[holdover]
source-timeout-s = 1.0
state-file = "{tmp}/{name}/state.json"
[publish]
shm-path = "{tmp}/{name}/clock.shm"
[metrics]
listen-address = "127.0.0.1"
port = {metrics_port}
"""
    )
    return cfg


def wait_clock(path: Path, timeout: float = 15.0) -> SharedClock:
    end = time.monotonic() + timeout
    while True:
        try:
            clk = SharedClock(path)
            if clk.status().synchronized:
                return clk
            clk.close()
        except ClockUnavailable:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"no synchronized clock at {path} after {timeout} s")
        time.sleep(0.05)


def error_ns(clk: SharedClock, cmap: ClockMap) -> int:
    mono = time.monotonic_ns()
    return clk.to_network(mono) - (cmap.to_realtime(mono) + SHIFT)


@pytest.fixture
def grandmaster(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    p = start(write_gm(tmp_path, port))
    try:
        wait_clock(tmp_path / "gm" / "clock.shm")
        yield port
    finally:
        stop(p)


def test_agent_locks_publishes_and_serves_status_and_metrics(
    tmp_path: Path, grandmaster: int
) -> None:
    import urllib.request

    mport = free_port(socket.SOCK_STREAM)
    agent = start(
        write_agent(tmp_path, grandmaster, mport), "--record", str(tmp_path / "run.jsonl")
    )
    cmap = ClockMap()
    try:
        clk = wait_clock(tmp_path / "agent" / "clock.shm")
        end = time.monotonic() + 15
        while clk.status().lock_state != LockState.LOCKED and time.monotonic() < end:
            time.sleep(0.1)
        assert clk.status().lock_state == LockState.LOCKED
        time.sleep(1.0)
        errs = []
        for _ in range(20):
            errs.append(error_ns(clk, cmap))
            time.sleep(0.05)
        # Loopback with kernel timestamps: a few microseconds at most (generous for a loaded CI).
        assert max(abs(e) for e in errs) < 100_000, errs
        st = clk.status()
        assert st.error_bound_ns > 0 and st.identity == "127.0.0.1"
        # Status socket (next to the shm file) and Prometheus endpoint.
        snap = fetch_snapshot(str(tmp_path / "agent" / "status.sock"))
        assert snap.domains[0].lock_state == LockState.LOCKED
        assert snap.sources[0].name == f"ntp:127.0.0.1:{grandmaster}"
        assert snap.sources[0].stamp_source == "kernel"
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
        text = body.decode()
        assert "netclock_lock_state" in text and "netclock_source_offset_seconds" in text
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "netclock",
                "status",
                "--json",
                "--socket",
                str(tmp_path / "agent" / "status.sock"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["domains"][0]["lock_state"] == "locked"
    finally:
        out = stop(agent)
    assert agent.returncode == 0, out
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["netclock_run_record"] == 1
    states = {json.loads(x)["state"] for x in lines[1:]}
    assert "locked" in states
    # The state file was written at stop.
    state = json.loads((tmp_path / "agent" / "state.json").read_text())
    assert state["version"] == 1 and state["rate_denom"] > 0


def test_restart_with_state_file_relocks_fast(tmp_path: Path, grandmaster: int) -> None:
    """A restarted agent is within 1 us of the truth in under 1 s after its first measurement."""
    cfg = write_agent(tmp_path, grandmaster, free_port(socket.SOCK_STREAM))
    cmap = ClockMap()
    first = start(cfg)
    try:
        clk = wait_clock(tmp_path / "agent" / "clock.shm")
        end = time.monotonic() + 15
        while clk.status().lock_state != LockState.LOCKED and time.monotonic() < end:
            time.sleep(0.1)
        time.sleep(2.0)
    finally:
        stop(first)
    assert (tmp_path / "agent" / "state.json").exists()
    second = start(cfg)
    try:
        clk = wait_clock(tmp_path / "agent" / "clock.shm")
        # The first measurement has just been published; within 1 s we must be within 1 us.
        t_first = time.monotonic()
        errs = []
        while time.monotonic() - t_first < 1.0:
            errs.append(error_ns(clk, cmap))
            time.sleep(0.02)
        tail = errs[len(errs) // 2 :]
        assert max(abs(e) for e in tail) < 1_000 * 5, tail  # 1 us target; 5 us CI margin
        out = ""
    finally:
        out = stop(second)
    assert "restored rate" in out


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[clock]\nwindow-sise = 8\n[ntp]\nlisten-port = 70000\n")
    r = subprocess.run(
        [sys.executable, "-m", "netclock", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "clock.window-sise" in r.stderr and "window-size" in r.stderr
    assert "ntp.listen-port" in r.stderr


def test_privileged_port_needs_capability_error(tmp_path: Path) -> None:
    """Binding NTP port 123 without CAP_NET_BIND_SERVICE: the error names the capability."""
    if os.geteuid() == 0:
        # Keep uid 0 but take CAP_NET_BIND_SERVICE out of the bounding set: the bind fails.
        if subprocess.run(["which", "setpriv"], capture_output=True).returncode != 0:
            pytest.skip("setpriv (util-linux) missing")
        pre = ["setpriv", "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]
    else:
        pre = []
    cfg = tmp_path / "srv.toml"
    cfg.write_text(
        f"""
[reference]
enabled = true
[ntp]
serve = true
listen-address = "127.0.0.1"
listen-port = 123
[publish]
shm-path = "{tmp_path}/x/clock.shm"
socket = false
[metrics]
enabled = false
"""
    )
    r = subprocess.run(
        [*pre, sys.executable, "-m", "netclock", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.returncode == 77, r.stderr
    assert "CAP_NET_BIND_SERVICE" in r.stderr


def test_demo_runs_and_locks() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netclock", "demo", "--duration", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(out["agents"]) == 2
    for a in out["agents"]:
        assert a["final_state"] == "LOCKED"
        assert a["lock_time_s"] is not None
        assert a["max_ns"] < 100_000
