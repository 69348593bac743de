"""Helpers for the deployment-file tests (tests/deploy): paths, a fully populated snapshot,
the extraction of metric names from PromQL, and a real grandmaster/agent pair of daemons."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netclock.observe import Snapshot

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def full_snapshot() -> Snapshot:
    from netclock.observe import (
        DomainSnapshot,
        LockState,
        PacketCounters,
        Quality,
        Snapshot,
        SourceSnapshot,
        Timescale,
    )

    return Snapshot(
        taken_mono_ns=10_000_000_000,
        started_mono_ns=1_000_000_000,
        domains=(
            DomainSnapshot(
                domain=0,
                lock_state=LockState.LOCKED,
                quality=Quality.LOCKED,
                timescale=Timescale.TAI,
                error_bound_ns=800,
                error_growth_ps_per_s=1000,
                holdover_ns=0,
                steps_total=1,
                epoch=2,
                rate_ppb=10_000.5,
                r_squared=0.999,
                grandmaster="001122.fffe.334455",
                utc_offset_s=37,
                utc_offset_valid=True,
                update_mono_ns=9_900_000_000,
            ),
        ),
        sources=(
            SourceSnapshot(
                name="ptp:eth0:0",
                kind="ptp",
                priority=1,
                selected=True,
                reachable=True,
                state="slave",
                identity="001122.fffe.334455-1",
                offset_ns=-120,
                path_delay_ns=25_000,
                rate_ppb=10_000.4,
                r_squared=0.998,
                stamp_source="kernel",
                packets=(PacketCounters("sync", received=80, sent=0, malformed=1),),
            ),
        ),
    )


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


# -- the Grafana dashboard's queries ---------------------------------------------------------------

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "netclock.json"


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, annotation and query variable."""
    d = dashboard()
    out = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    out += [(f"annotation {a['name']}", a["expr"]) for a in d["annotations"]["list"]]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["definition"]))
    return out


def concrete(expr: str, rate_interval: str = "1m") -> str:
    """Grafana variables replaced the way Grafana does for 'All'."""
    if expr.startswith("label_values("):
        # label_values(metric, label) is Grafana's; the metric part is plain PromQL.
        expr = expr[len("label_values(") :].rsplit(",", 1)[0]
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$instance", ".*")
        .replace("$domain", ".*")
    )


def is_capture(expr: str) -> bool:
    """A query of the capture frame stats (served by `netclock capture`, not the daemon)."""
    return "netclock_capture_" in expr


# -- PromQL metric-name extraction ----------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels and variables removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery selectors
    s = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s
    )  # label lists
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", s):
        tok = m.group(1)
        if tok.lower() not in _KEYWORDS:
            names.add(tok)
    return names


# -- real daemons ----------------------------------------------------------------------------------
# A grandmaster (`[reference]` = the local CLOCK_REALTIME, NTP server on a loopback high port) and
# an agent following it over NTP, as `netclock run` child processes. Each listens for metrics on
# its own loopback address so that Prometheus' `instance` labels differ as they do in the rig.

GM_ADDRESS = "127.0.0.2"
AGENT_ADDRESS = "127.0.0.3"


def free_port(address: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    metrics_url: str
    log: Path
    record: Path | None = None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; always waited for. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def _start(name: str, cfg: Path, metrics_url: str, tmp: Path, record: bool) -> Daemon:
    log = tmp / f"{name}.log"
    extra = ["--record", str(tmp / f"{name}.jsonl")] if record else []
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netclock", "run", "--config", str(cfg), *extra],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )
    return Daemon(name, proc, metrics_url, log, tmp / f"{name}.jsonl" if record else None)


def start_grandmaster(tmp: Path) -> tuple[Daemon, int]:
    """A reference-clock grandmaster serving NTP on loopback; returns it and its NTP port."""
    ntp_port = free_port(GM_ADDRESS, socket.SOCK_DGRAM)
    metrics_port = free_port(GM_ADDRESS)
    (tmp / "gm").mkdir(exist_ok=True)
    cfg = tmp / "gm.toml"
    cfg.write_text(
        f"""
[reference]
enabled = true
interval-s = 0.2
[ntp]
serve = true
listen-address = "{GM_ADDRESS}"
listen-port = {ntp_port}
[publish]
shm-path = "{tmp}/gm/clock.shm"
[metrics]
listen-address = "{GM_ADDRESS}"
port = {metrics_port}
"""
    )
    url = f"http://{GM_ADDRESS}:{metrics_port}/metrics"
    return _start("gm", cfg, url, tmp, record=False), ntp_port


def start_agent(tmp: Path, ntp_port: int, *, record: bool = True) -> Daemon:
    """An agent following the grandmaster's NTP server 16 times a second."""
    metrics_port = free_port(AGENT_ADDRESS)
    (tmp / "agent").mkdir(exist_ok=True)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f"""
[[ntp.server]]
address = "{GM_ADDRESS}"
port = {ntp_port}
minpoll = -4
maxpoll = -4
xleave = true
[holdover]
source-timeout-s = 1.0
[publish]
shm-path = "{tmp}/agent/clock.shm"
[metrics]
listen-address = "{AGENT_ADDRESS}"
port = {metrics_port}
"""
    )
    url = f"http://{AGENT_ADDRESS}:{metrics_port}/metrics"
    return _start("agent", cfg, url, tmp, record=record)


def wait_metric(daemon: Daemon, needle: str, timeout: float = 20.0) -> str:
    """Scrape ``daemon`` until a sample line starts with ``needle``; returns the exposition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"{daemon.name} exited:\n{daemon.log.read_text()}")
        with contextlib.suppress(OSError):
            text = scrape(daemon.metrics_url)
            if any(line.startswith(needle) for line in text.splitlines()):
                return text
        time.sleep(0.2)
    log = daemon.log.read_text()
    raise AssertionError(f"{daemon.name}: no {needle!r} after {timeout} s:\n{log}")


LOCKED = 'netclock_lock_state{domain="256",netclock_lock_state="locked"} 1.0'


def sample_names(exposition: str) -> set[str]:
    """Sample names (metric names as PromQL sees them) in a text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if m:
                names.add(m.group(0))
    return names


# -- a running frame stamper -----------------------------------------------------------------------


def pipewire_unavailable() -> str | None:
    """Why a headless PipeWire session cannot run here, or None."""
    from capture.headless import available

    reason = available()
    if reason:
        return reason
    try:
        from capture.pipewire import library

        library()
    except OSError as e:
        return f"libpipewire-0.3 unavailable: {e}"
    return None


CAPTURE_ADDRESS = "127.0.0.5"


def start_capture(tmp: Path, shm: Path, env: dict[str, str]) -> Daemon:
    """`netclock capture` stamping the headless session's test pattern (``env``: the session's)
    with the published time in ``shm``; metrics on CAPTURE_ADDRESS."""
    port = free_port(CAPTURE_ADDRESS)
    log = tmp / "capture.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "netclock", "capture",
                "--source", "pipewire:ci-video-src", "--shm", str(shm),
                "--out", str(tmp / "frames.jsonl"),
                "--metrics-port", str(port), "--metrics-address", CAPTURE_ADDRESS,
            ],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )
    return Daemon("capture", proc, f"http://{CAPTURE_ADDRESS}:{port}/metrics", log)


def wait_frames(capture: Daemon, count: int, timeout: float = 20.0) -> str:
    """Scrape until ``count`` frames were stamped; returns the exposition."""
    deadline = time.monotonic() + timeout
    while True:
        if capture.proc.poll() is not None:
            raise AssertionError(f"capture exited:\n{capture.log.read_text()}")
        with contextlib.suppress(OSError):
            text = scrape(capture.metrics_url)
            m = re.search(r"^netclock_capture_frames_total\{[^}]*\} (\S+)", text, re.M)
            if m and float(m.group(1)) >= count:
                return text
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} frames:\n{capture.log.read_text()}")
        time.sleep(0.2)
