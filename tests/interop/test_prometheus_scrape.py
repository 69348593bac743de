"""A real Prometheus server scrapes netclock's metrics endpoint; PromQL reads offset and lock.

Prometheus (Debian package, /usr/bin/prometheus) runs as a child with a temporary config and
TSDB directory on a free loopback port, and is stopped by PID. The endpoint is
:func:`netclock.metrics.start_metrics_server` serving a fixed test snapshot.
"""

from __future__ import annotations

import contextlib
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

from netclock.metrics import start_metrics_server
from netclock.observe import DomainSnapshot, LockState, Snapshot, SourceSnapshot

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus binary (Debian package) missing"
    ),
]

SNAP = Snapshot(
    taken_mono_ns=1,
    domains=(DomainSnapshot(domain=0, lock_state=LockState.LOCKED, grandmaster="aa.bb"),),
    sources=(
        SourceSnapshot(
            name="ptp:veth0:0", kind="ptp", selected=True, offset_ns=-1234, path_delay_ns=5000
        ),
    ),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=2) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_offset_and_lock_state(tmp_path: Path) -> None:
    metrics = start_metrics_server(lambda: SNAP, port=0)
    prom_port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: netclock\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        offset: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not offset:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            with contextlib.suppress(OSError):  # not listening yet
                offset = _query(prom_port, "netclock_source_offset_seconds")
            if not offset:
                time.sleep(0.3)
        assert offset, "Prometheus never scraped the endpoint"
        assert offset[0]["metric"]["source"] == "ptp:veth0:0"
        assert offset[0]["metric"]["job"] == "netclock"
        assert float(offset[0]["value"][1]) == pytest.approx(-1.234e-6, rel=1e-12)

        locked = _query(prom_port, "netclock_lock_state == 1")
        assert [r["metric"]["netclock_lock_state"] for r in locked] == ["locked"]
        gm = _query(prom_port, "netclock_grandmaster_info")
        assert gm[0]["metric"]["identity"] == "aa.bb"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        metrics.close()
