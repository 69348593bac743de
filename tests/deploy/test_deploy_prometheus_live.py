"""A real Prometheus server scrapes a real rig with deploy/prometheus's rules; every dashboard
query returns data; killing the grandmaster fires the lock-lost alerts.

`netclock run` child processes on loopback: a grandmaster (local CLOCK_REALTIME reference, NTP
server) and an agent following it over NTP, each with its metrics endpoint on its own loopback
address; when a headless PipeWire session can run, also `netclock capture --metrics-port`
stamping its test pattern with the agent's published time. Debian's Prometheus runs a
configuration derived from deploy/prometheus/prometheus.yml (same jobs, labels and relabelling;
targets rewritten to these processes) with the deploy rule files. Every query of the Grafana
dashboard must then return data. The grandmaster is killed: the agent goes to HOLDOVER, and
NetclockLockLost, NetclockHoldover, NetclockSourceLost and NetclockDown must fire, observed
through the HTTP API.

To fit in ~20 s the copies Prometheus loads are time-compressed, and only in these two ways:
scrape, evaluation and rule-group intervals are 1 s (5 s in deploy/), and every alert's `for:`
is divided by 60 (1m → 1s, 10m → 10s). Expressions, labels and thresholds are the deploy files'.
Dashboard queries run with `$__rate_interval` = 5s (Grafana: 4 x the scrape interval) and
`$instance`/`$domain` = all.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from deploy_helpers import (
    DEPLOY,
    LOCKED,
    Daemon,
    concrete,
    dashboard_exprs,
    free_port,
    is_capture,
    pipewire_unavailable,
    start_agent,
    start_capture,
    start_grandmaster,
    wait_frames,
    wait_metric,
)

yaml = pytest.importorskip("yaml", reason="PyYAML (pip pyyaml) missing")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary missing"),
]

T = TypeVar("T")
COMPRESSION = 60  # `for:` durations in the test's rule copies are divided by this


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"unsupported duration {duration!r}"
    return sum(int(v) * units[u] for v, u in zip(parts.groups(), "hms", strict=True) if v)


def compressed_rules(tmp: Path) -> list[str]:
    """Copies of deploy/prometheus/rules with 1 s group intervals and `for:` / 60."""
    out = []
    for f in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        doc = yaml.safe_load(f.read_text())
        for group in doc["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{max(1, _seconds(rule['for']) // COMPRESSION)}s"
        copy = tmp / f.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(str(copy))
    return out


def prometheus_config(
    tmp: Path, gm: Daemon, agent: Daemon, capture: Daemon | None, port: int
) -> Path:
    """deploy/prometheus/prometheus.yml with loopback targets and 1 s intervals."""
    doc = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval="1s", evaluation_interval="1s")
    doc["rule_files"] = compressed_rules(tmp)
    host = {
        d.name: urllib.parse.urlsplit(d.metrics_url).netloc
        for d in (gm, agent, capture)
        if d is not None
    }
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    static = jobs["netclock"]["static_configs"]
    roles = {s["labels"]["role"]: s for s in static}
    roles["grandmaster"]["targets"] = [host["gm"]]
    roles["agent"]["targets"] = [host["agent"]]
    jobs["netclock"]["static_configs"] = [roles["grandmaster"], roles["agent"]]  # no capture agent
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    doc["scrape_configs"] = [jobs["netclock"], jobs["prometheus"]]
    if capture is not None:
        jobs["netclock-capture"]["static_configs"][0]["targets"] = [host["capture"]]
        doc["scrape_configs"].append(jobs["netclock-capture"])
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=2) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]


def _wait(predicate: Callable[[], T], proc: subprocess.Popen[bytes], log: Path, what: str) -> T:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(OSError):
            got = predicate()
            if got:
                return got
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()}")


def _firing(port: int) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for a in _api(port, "alerts")["alerts"]:
        if a["state"] == "firing":
            out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
    return out


LOSS = {"NetclockLockLost", "NetclockHoldover", "NetclockSourceLost", "NetclockDown"}


def _empty_dashboard_queries(port: int, with_capture: bool) -> list[str]:
    empty = []
    for title, expr in dashboard_exprs():
        if title.startswith("annotation ") or (is_capture(expr) and not with_capture):
            continue  # the Steps annotation marks steps, which happened before any scrape
        if not _api(port, "query", query=concrete(expr, rate_interval="5s"))["result"]:
            empty.append(f"{title}: {expr}")
    return empty


def test_rig_under_prometheus_dashboard_and_lock_lost(tmp_path: Path) -> None:
    from capture.headless import HeadlessPipeWire

    gm, ntp_port = start_grandmaster(tmp_path)
    agent = start_agent(tmp_path, ntp_port, record=False)
    session = None if pipewire_unavailable() else HeadlessPipeWire(tmp_path / "pw")
    capture = proc = None
    try:
        if session is not None:
            session.start()
        wait_metric(agent, LOCKED)
        if session is not None:
            capture = start_capture(tmp_path, tmp_path / "agent" / "clock.shm", session.env)
            wait_frames(capture, 1)
        port = free_port("127.0.0.1")
        cfg = prometheus_config(tmp_path, gm, agent, capture, port)
        check = subprocess.run(
            ["promtool", "check", "config", str(cfg)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        log = tmp_path / "prometheus.log"
        with log.open("wb") as logf:
            proc = subprocess.Popen(
                [
                    shutil.which("prometheus") or "prometheus",
                    f"--config.file={cfg}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
            )

        # Prometheus sees the agent LOCKED (labelled by the deploy relabelling) and the rules run.
        locked = 'netclock_lock_state{netclock_lock_state="locked",role="agent"} == 1'
        got = _wait(lambda: _api(port, "query", query=locked)["result"], proc, log, "LOCKED")
        assert got[0]["metric"]["instance"] == "127.0.0.3" and got[0]["metric"]["job"] == "netclock"

        # Cross-agent view: the agent follows 127.0.0.2, the grandmaster its local reference.
        def following() -> set[str]:
            result = _api(port, "query", query="netclock:agents_following:count")["result"]
            return {r["metric"]["identity"] for r in result}

        _wait(lambda: following() == {"127.0.0.2", "LOCL"}, proc, log, "the recording rules")
        spread = _api(port, "query", query="netclock:cross_agent_offset_spread_seconds")["result"]
        assert {float(r["value"][1]) for r in spread} == {0.0}  # one agent per source
        groups = _api(port, "rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert rules.keys() >= LOSS
        assert all(r["health"] == "ok" for r in rules.values()), groups
        assert not LOSS & _firing(port).keys()

        # Every panel, timeline, table and variable of the dashboard has data from this rig.
        with_capture = capture is not None
        deadline = time.monotonic() + 15
        while (empty := _empty_dashboard_queries(port, with_capture)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert not empty, "\n".join(empty)
        if with_capture:
            up = _api(port, "query", query='up{job="netclock-capture"}')["result"]
            assert [(r["metric"]["instance"], r["value"][1]) for r in up] == [("127.0.0.5", "1")]

        # Kill the grandmaster: the agent's only source goes quiet.
        gm.stop()

        def all_lost() -> dict[str, list[dict[str, str]]]:
            firing = _firing(port)
            return firing if firing.keys() >= LOSS else {}

        names = _wait(all_lost, proc, log, f"{sorted(LOSS)} to fire")
        lost = names["NetclockLockLost"]
        assert [a["role"] for a in lost] == ["agent"] and lost[0]["severity"] == "critical"
        assert [a["domain"] for a in lost] == ["256"]  # the NTP-derived domain
        assert [a["role"] for a in names["NetclockHoldover"]] == ["agent"]
        assert [a["role"] for a in names["NetclockDown"]] == ["grandmaster"]
        assert [a["source"] for a in names["NetclockSourceLost"]] == [f"ntp:127.0.0.2:{ntp_port}"]
        holdover = 'netclock_lock_state{netclock_lock_state="holdover",role="agent"}'
        assert _api(port, "query", query=holdover)["result"][0]["value"][1] == "1"
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if capture is not None:
            capture.stop()
        if session is not None:
            session.stop()
        agent.stop()
        gm.stop()
