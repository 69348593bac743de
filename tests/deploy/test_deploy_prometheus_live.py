"""A real Prometheus server runs deploy/prometheus's rules against live netclock endpoints.

Two netclock metrics endpoints (:func:`netclock.metrics.start_metrics_server`, the code the
daemon serves) play a grandmaster and an agent; Prometheus (Debian package) scrapes both with
the deploy rule files, and the agent's published time then loses lock. NetclockLockLost must
fire, observed through Prometheus' HTTP API, and the cross-agent spread must be recorded.
Only the rule groups' evaluation interval is shortened (5 s → 1 s) to keep the test short.

TODO(lead): once `netclock run` exists, swap the two endpoints for a real master and slave
daemon pair and kill the master instead of flipping the snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, full_snapshot

from netclock.metrics import start_metrics_server
from netclock.observe import LockState, Quality

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary missing"),
]

SPREAD = "netclock:cross_agent_offset_spread_seconds"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=2) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]


def _wait(predicate: Any, proc: subprocess.Popen[bytes], log: Path, what: str) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(OSError):
            got = predicate()
            if got:
                return got
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()}")


def test_lock_lost_fires_through_the_prometheus_api(tmp_path: Path) -> None:
    base = full_snapshot()
    agent_snap = {"now": base}
    gm_snap = dataclasses.replace(
        base,
        sources=(dataclasses.replace(base.sources[0], offset_ns=-40, name="ptp:eth1:0"),),
    )
    agent = start_metrics_server(lambda: agent_snap["now"], "127.0.0.1", 0, process=False)
    gm = start_metrics_server(lambda: gm_snap, "127.0.0.1", 0, process=False)
    rules = []
    for f in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        copy = tmp_path / f.name
        copy.write_text(f.read_text().replace("interval: 5s", "interval: 1s"))
        rules.append(str(copy))
    port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: {json.dumps(rules)}\n"
        "scrape_configs:\n"
        "  - job_name: netclock\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{agent.port}']\n"
        "        labels: {role: agent}\n"
        f"      - targets: ['127.0.0.1:{gm.port}']\n"
        "        labels: {role: grandmaster}\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("w") as logf:
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
    try:
        # Both scraped, both locked; the recording rule sees the two agents' spread.
        spread = _wait(
            lambda: _api(port, "query", query=SPREAD)["result"],
            proc, log, "the spread recording rule",
        )
        assert float(spread[0]["value"][1]) == pytest.approx(80e-9)
        assert spread[0]["metric"]["identity"] == "001122.fffe.334455-1"
        rules_state = _api(port, "rules")["groups"]
        assert {r["name"] for g in rules_state for r in g["rules"]} >= {
            "NetclockLockLost", "NetclockHoldover", "NetclockOffsetHigh",
        }
        assert all(r["health"] == "ok" for g in rules_state for r in g["rules"]), rules_state

        # The agent's source goes quiet: HOLDOVER, out of spec.
        d = dataclasses.replace(
            base.domains[0], lock_state=LockState.HOLDOVER, quality=Quality.OUT_OF_SPEC
        )
        agent_snap["now"] = dataclasses.replace(base, domains=(d,))

        def firing() -> set[str]:
            alerts = _api(port, "alerts")["alerts"]
            return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

        names = _wait(lambda: {"NetclockLockLost", "NetclockHoldover"} <= firing() and firing(),
                      proc, log, "NetclockLockLost to fire")
        assert "NetclockHoldoverOutOfSpec" in names
        lost = [a for a in _api(port, "alerts")["alerts"]
                if a["labels"]["alertname"] == "NetclockLockLost"]
        assert [a["labels"]["role"] for a in lost] == ["agent"]  # not the grandmaster
        assert lost[0]["labels"]["severity"] == "critical"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        agent.close()
        gm.close()
